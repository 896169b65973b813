/*
 * keyfile.h — reading private key files safely, in one place.
 *
 * A private key file must be a regular file that neither group nor others
 * may read, write or execute; the check is made on the opened descriptor,
 * so a rename between check and read cannot swap in another file. The key
 * store, the CMS layer and `smimectl check` all use these, so they refuse
 * the same files with the same words.
 */
#ifndef SMIME_KEYFILE_H
#define SMIME_KEYFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "status.h"

/* The largest key file read (a key, its certificate and a long chain). */
#define KEYFILE_MAX_SIZE (1024 * 1024)

/* SM_OK when mode is safe for a private key file; otherwise SM_ERR_PERM
 * and err receives "PATH: private key file is accessible by group or
 * others (mode 0640); chmod 600 it". */
sm_status keyfile_check_mode(const char *path, mode_t mode, char *err, size_t errlen);

/* Read the whole file (NUL-terminated; *len excludes the NUL) after the
 * checks above and a size limit (KEYFILE_MAX_SIZE). *data is malloc'ed;
 * the caller should OPENSSL_cleanse it before freeing. Errors: SM_ERR_IO
 * (cannot open or read, not a regular file), SM_ERR_PERM, SM_ERR_LIMIT,
 * SM_ERR_NOMEM; err names the file. */
sm_status keyfile_read(const char *path, unsigned char **data, size_t *len, char *err,
    size_t errlen);

/* keys_dir's own files, where whoever may write them may swap our keys:
 * as keyfile_read(), and also refused (SM_ERR_PERM) when path is a
 * symbolic link (opened with O_NOFOLLOW: "PATH: is a symbolic link; ...")
 * or when the file belongs to anyone but root and owner (the daemon's
 * user). */
sm_status keyfile_read_owned(const char *path, uid_t owner, unsigned char **data,
    size_t *len, char *err, size_t errlen);
/* The owner rule alone, for checks that only stat: SM_OK or SM_ERR_PERM. */
sm_status keyfile_check_owner(const char *path, uid_t file_uid, uid_t owner, char *err,
    size_t errlen);
/* keys_dir itself: a directory belonging to root or owner that neither
 * group nor others may write (or they could add or replace a key).
 * SM_ERR_IO when it cannot be examined, SM_ERR_PERM when unsafe. */
sm_status keyfile_check_dir(const char *dir, uid_t owner, char *err, size_t errlen);

#endif
