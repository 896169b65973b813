/*
 * pidfile.h — the daemon's pid file: one instance per file, never a way to
 * overwrite someone else's file.
 *
 * The pid file is opened before anything else is claimed (socket, cache),
 * by root when the daemon starts as root. So:
 *  * its directory must belong to root (or to the user running the daemon,
 *    when that is not root) and be writable by nobody else: whoever may
 *    write the directory could otherwise plant a symbolic or hard link there
 *    and have root truncate any file at start;
 *  * the file is opened with O_NOFOLLOW (a symbolic link is refused, never
 *    followed), must be a regular file with one link, and is then made ours
 *    (fchown, mode 0644);
 *  * it is locked (flock, held for the life of the process and inherited by
 *    the daemonised child): a second instance with the same pid file refuses
 *    to start, naming the process that holds it, before it touches the
 *    first one's socket or cache;
 *  * on stop, the file is removed only when the path still names the file
 *    this process opened; when the directory does not let us remove it any
 *    more (privileges dropped), it is emptied instead.
 */
#ifndef SMIME_PIDFILE_H
#define SMIME_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "status.h"

struct pidfile;

/* Open, check and lock path. Errors (err names the file and the fix):
 * SM_ERR_PERM for an unsafe directory or file, SM_ERR_LIMIT when another
 * process holds the lock, SM_ERR_IO otherwise. */
sm_status pidfile_open(const char *path, struct pidfile **out, char *err, size_t errlen);
/* The directory rules alone (for -n and smimectl check). */
sm_status pidfile_check(const char *path, char *err, size_t errlen);
/* Write pid (call after daemonising). */
sm_status pidfile_write(struct pidfile *pf, pid_t pid, char *err, size_t errlen);
/* Remove (see above), unlock and free. NULL-safe. */
void pidfile_close(struct pidfile *pf);

#endif
