/*
 * pidfile.c — see pidfile.h.
 */
#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "path.h"

struct pidfile {
	int fd;
	char *path;
	dev_t dev;
	ino_t ino;
};

/* The directory of path must belong to root or to us, writable by no one
 * else. */
sm_status
pidfile_check(const char *path, char *err, size_t errlen)
{
	char dir[4096];
	struct stat sb;
	uid_t me = geteuid();

	path_dirname(path, dir, sizeof(dir));
	if (stat(dir, &sb) != 0) {
		sm_seterr(err, errlen, "pid file %s: directory %s: %s", path, dir, strerror(errno));
		return SM_ERR_IO;
	}
	if (sb.st_uid != 0 && sb.st_uid != me) {
		sm_seterr(err, errlen,
		    "pid file %s: directory %s belongs to uid %ld, not to %s; whoever owns it can "
		    "point the pid file at any file (chown %s %s)",
		    path, dir, (long)sb.st_uid, me == 0 ? "root" : "root or this user",
		    me == 0 ? "root:" : "root: or to this user", dir);
		return SM_ERR_PERM;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		sm_seterr(err, errlen,
		    "pid file %s: directory %s is writable by group or others (mode %04o); "
		    "chmod go-w %s, or use a directory of its own such as /run/smime-milter",
		    path, dir, (unsigned)(sb.st_mode & 07777), dir);
		return SM_ERR_PERM;
	}
	return SM_OK;
}

/* Who holds the lock, as far as the file says. */
static void
pidfile_holder(int fd, char *who, size_t len)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	snprintf(who, len, "another process");
	if (n > 0) {
		buf[n] = '\0';
		buf[strcspn(buf, "\r\n")] = '\0';
		if (buf[0] && strspn(buf, "0123456789") == strlen(buf))
			snprintf(who, len, "process %s", buf);
	}
}

static sm_status
pidfile_claim(struct pidfile *pf, char *err, size_t errlen)
{
	struct stat sb;
	char who[64];

	if (fstat(pf->fd, &sb) != 0) {
		sm_seterr(err, errlen, "pid file %s: %s", pf->path, strerror(errno));
		return SM_ERR_IO;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
		sm_seterr(err, errlen, "pid file %s: not a regular file with one link; remove it",
		    pf->path);
		return SM_ERR_PERM;
	}
	if (flock(pf->fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK) {
			sm_seterr(err, errlen, "pid file %s: cannot lock: %s", pf->path,
			    strerror(errno));
			return SM_ERR_IO;
		}
		pidfile_holder(pf->fd, who, sizeof(who));
		sm_seterr(err, errlen,
		    "pid file %s is locked by %s: another smime-milter runs with it; stop that "
		    "one, or give this one a pid_file of its own",
		    pf->path, who);
		return SM_ERR_LIMIT;
	}
	if ((sb.st_uid != geteuid() || sb.st_gid != getegid()) &&
	    fchown(pf->fd, geteuid(), getegid()) != 0) {
		sm_seterr(err, errlen, "pid file %s: cannot make it ours: %s", pf->path,
		    strerror(errno));
		return SM_ERR_PERM;
	}
	if ((sb.st_mode & 07777) != 0644 && fchmod(pf->fd, 0644) != 0) {
		sm_seterr(err, errlen, "pid file %s: chmod: %s", pf->path, strerror(errno));
		return SM_ERR_PERM;
	}
	pf->dev = sb.st_dev;
	pf->ino = sb.st_ino;
	return SM_OK;
}

sm_status
pidfile_open(const char *path, struct pidfile **out, char *err, size_t errlen)
{
	struct pidfile *pf;
	sm_status st;

	*out = NULL;
	if ((st = pidfile_check(path, err, errlen)) != SM_OK)
		return st;
	if ((pf = calloc(1, sizeof(*pf))) == NULL || (pf->path = strdup(path)) == NULL) {
		free(pf);
		sm_seterr(err, errlen, "out of memory");
		return SM_ERR_NOMEM;
	}
	pf->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
	if (pf->fd < 0) {
		if (errno == ELOOP)
			sm_seterr(err, errlen,
			    "pid file %s is a symbolic link; refusing to follow it (remove it)", path);
		else
			sm_seterr(err, errlen, "cannot open pid file %s: %s", path, strerror(errno));
		st = errno == ELOOP ? SM_ERR_PERM : SM_ERR_IO;
		free(pf->path);
		free(pf);
		return st;
	}
	if ((st = pidfile_claim(pf, err, errlen)) != SM_OK) {
		close(pf->fd);
		free(pf->path);
		free(pf);
		return st;
	}
	*out = pf;
	return SM_OK;
}

sm_status
pidfile_write(struct pidfile *pf, pid_t pid, char *err, size_t errlen)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "%ld\n", (long)pid);

	if (ftruncate(pf->fd, 0) != 0 || pwrite(pf->fd, line, (size_t)n, 0) != n) {
		sm_seterr(err, errlen, "cannot write pid file %s: %s", pf->path, strerror(errno));
		return SM_ERR_IO;
	}
	return SM_OK;
}

void
pidfile_close(struct pidfile *pf)
{
	struct stat sb;

	if (pf == NULL)
		return;
	/* Only the file we opened: a path now naming another file (a second
	 * instance that replaced it, an admin) is left alone. */
	if (lstat(pf->path, &sb) == 0 && sb.st_dev == pf->dev && sb.st_ino == pf->ino &&
	    unlink(pf->path) != 0) {
		if (ftruncate(pf->fd, 0) != 0) {
			/* nothing more to do: the lock goes with the process */
		}
	}
	close(pf->fd);
	free(pf->path);
	free(pf);
}
