#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
keyfile_err(char *err, size_t errlen, const char *fmt, const char *path, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, path, what);
}

sm_status
keyfile_check_mode(const char *path, mode_t mode, char *err, size_t errlen)
{
	if ((mode & (S_IRWXG | S_IRWXO)) == 0)
		return SM_OK;
	if (err && errlen)
		snprintf(err, errlen,
		    "%s: private key file is accessible by group or others (mode %04o); chmod 600 it",
		    path, (unsigned)(mode & 07777));
	return SM_ERR_PERM;
}

sm_status
keyfile_read(const char *path, unsigned char **data, size_t *len, char *err, size_t errlen)
{
	struct stat sb;
	unsigned char *p = NULL;
	size_t got = 0;
	sm_status st = SM_ERR_IO;
	ssize_t r;
	int fd;

	*data = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		keyfile_err(err, errlen, "%s: %s", path, strerror(errno));
		return SM_ERR_IO;
	}
	if (fstat(fd, &sb) != 0) {
		keyfile_err(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(sb.st_mode)) {
		keyfile_err(err, errlen, "%s: %s", path, "not a regular file");
		goto done;
	}
	if ((st = keyfile_check_mode(path, sb.st_mode, err, errlen)) != SM_OK)
		goto done;
	st = SM_ERR_LIMIT;
	if (sb.st_size > KEYFILE_MAX_SIZE) {
		keyfile_err(err, errlen, "%s: %s", path, "too large for a key file");
		goto done;
	}
	st = SM_ERR_NOMEM;
	if ((p = malloc((size_t)sb.st_size + 1)) == NULL) {
		keyfile_err(err, errlen, "%s: %s", path, "out of memory");
		goto done;
	}
	st = SM_ERR_IO;
	while (got < (size_t)sb.st_size) {
		r = read(fd, p + got, (size_t)sb.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			keyfile_err(err, errlen, "%s: %s", path,
			    r < 0 ? strerror(errno) : "file shrank while reading");
			goto done;
		}
		got += (size_t)r;
	}
	p[got] = '\0';
	*data = p;
	*len = got;
	p = NULL;
	st = SM_OK;
done:
	free(p);
	close(fd);
	return st;
}
