#include "keyfile.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

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
keyfile_check_owner(const char *path, uid_t file_uid, uid_t owner, char *err, size_t errlen)
{
	if (file_uid == 0 || file_uid == owner)
		return SM_OK;
	sm_seterr(err, errlen,
	    "%s: private key file belongs to uid %ld, who could replace our key; it must belong "
	    "to root or to the daemon's user (uid %ld): chown it",
	    path, (long)file_uid, (long)owner);
	return SM_ERR_PERM;
}

sm_status
keyfile_check_dir(const char *dir, uid_t owner, char *err, size_t errlen)
{
	struct stat sb;

	if (stat(dir, &sb) != 0) {
		if (errno == ENOENT)
			sm_seterr(err, errlen,
			    "keys_dir %s does not exist: create it (install -d -m 700 %s) or correct "
			    "the path; smime-milter never creates it",
			    dir, dir);
		else
			sm_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		return SM_ERR_IO;
	}
	if (!S_ISDIR(sb.st_mode)) {
		sm_seterr(err, errlen, "%s: not a directory", dir);
		return SM_ERR_IO;
	}
	if (sb.st_uid != 0 && sb.st_uid != owner) {
		sm_seterr(err, errlen,
		    "%s: keys_dir belongs to uid %ld, who could swap our keys; it must belong to "
		    "root or to the daemon's user (uid %ld): chown it",
		    dir, (long)sb.st_uid, (long)owner);
		return SM_ERR_PERM;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		sm_seterr(err, errlen,
		    "%s: keys_dir is writable by group or others (mode %04o), so they could add or "
		    "replace keys; chmod 700 it",
		    dir, (unsigned)(sb.st_mode & 07777));
		return SM_ERR_PERM;
	}
	return SM_OK;
}

static sm_status
keyfile_read_fd(const char *path, bool owned, uid_t owner, unsigned char **data, size_t *len,
    char *err, size_t errlen)
{
	struct stat sb;
	unsigned char *p = NULL;
	size_t got = 0;
	sm_status st = SM_ERR_IO;
	ssize_t r;
	int fd;

	*data = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (owned ? O_NOFOLLOW : 0))) < 0) {
		if (owned && errno == ELOOP) {
			keyfile_err(err, errlen, "%s: %s", path,
			    "is a symbolic link; keys_dir must hold the key file itself "
			    "(replace the link by the file)");
			return SM_ERR_PERM;
		}
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
	if (owned && (st = keyfile_check_owner(path, sb.st_uid, owner, err, errlen)) != SM_OK)
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

sm_status
keyfile_read(const char *path, unsigned char **data, size_t *len, char *err, size_t errlen)
{
	return keyfile_read_fd(path, false, 0, data, len, err, errlen);
}

sm_status
keyfile_read_owned(const char *path, uid_t owner, unsigned char **data, size_t *len, char *err,
    size_t errlen)
{
	return keyfile_read_fd(path, true, owner, data, len, err, errlen);
}
