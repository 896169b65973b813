/*
 * revfetch.h — HTTP for revocation data, through libcurl: only http and
 * https (redirects included, at most 3), a size limit, a total timeout,
 * an optional proxy (and none from the environment otherwise). Used only
 * off the hot path: by the worker thread and by smimectl.
 */
#ifndef SMIME_REVFETCH_H
#define SMIME_REVFETCH_H

#include <stddef.h>

#include "buf.h"
#include "status.h"

#define REVFETCH_MAX_CRL (32u * 1024 * 1024)
#define REVFETCH_MAX_OCSP (1024u * 1024)

struct revfetch_opts {
	long timeout_ms;
	const char *proxy;	/* NULL: no proxy */
	size_t max_bytes;
};

/* GET url (post NULL), or POST post with content_type. The body of a 200
 * answer goes to out. err: a one-line reason ("HTTP 404", "timed out",
 * "larger than 33554432 bytes", ...). */
sm_status revfetch(const char *url, const unsigned char *post, size_t post_len,
		   const char *content_type, const struct revfetch_opts *o,
		   struct buf *out, char *err, size_t errlen);

#endif
