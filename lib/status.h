/*
 * status.h — the one status type every lib/ function returns.
 *
 * Library code never exits or asserts on message data: it returns one of
 * these, and the caller (milter glue, smimectl, tests) decides what to do.
 */
#ifndef SMIME_STATUS_H
#define SMIME_STATUS_H

#include <stddef.h>

typedef enum sm_status {
	SM_OK = 0,
	SM_ERR_NOMEM,       /* allocation failed */
	SM_ERR_IO,          /* file or socket I/O failed */
	SM_ERR_ARG,         /* caller passed something invalid */
	SM_ERR_PARSE,       /* malformed input (MIME, PKCS#7, PEM, config) */
	SM_ERR_LIMIT,       /* input exceeds a configured or built-in bound */
	SM_ERR_CRYPTO,      /* an OpenSSL operation failed */
	SM_ERR_VERIFY,      /* a signature did not verify */
	SM_ERR_NOKEY,       /* no usable key or certificate */
	SM_ERR_UNSUPPORTED, /* valid input we deliberately do not handle */
	SM_ERR_DB,          /* key cache storage error */
	SM_ERR_NOTFOUND,    /* looked-up item does not exist */
	SM_ERR_CONFIG,      /* configuration invalid */
	SM_ERR_PERM,        /* unsafe file permissions, or access denied */
} sm_status;

/* A short, static, human-readable name for a status ("out of memory"). */
const char *sm_strstatus(sm_status st);

/* Format a one-line reason into err (the err/errlen convention of every
 * lib/ function); does nothing when err is NULL or errlen is 0. */
void sm_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
