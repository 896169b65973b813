/*
 * metrics_http.h — the smallest HTTP/1.x that a Prometheus scrape needs,
 * both ends: the daemon's listener answers GET /metrics (with an optional
 * bearer token), and `smimectl stats` fetches it.
 *
 * Addresses are written as the milter socket is: inet:PORT@HOST,
 * inet6:PORT@HOST or unix:PATH. One request per connection (Connection:
 * close); a request must arrive within METRICS_HTTP_TIMEOUT_MS and fit in
 * METRICS_HTTP_MAX_REQUEST bytes, or the connection is dropped.
 */
#ifndef SMIME_METRICS_HTTP_H
#define SMIME_METRICS_HTTP_H

#include <stddef.h>

#include "buf.h"
#include "status.h"

#define METRICS_HTTP_TIMEOUT_MS 5000
#define METRICS_HTTP_MAX_REQUEST 8192
#define METRICS_TOKEN_MAX 256

/* Bind and listen (a unix socket is replaced if stale and made mode 0660).
 * *fd receives the listening socket. */
sm_status metrics_http_listen(const char *addr, int *fd, char *err, size_t errlen);

/* The body of a successful scrape; called once per authorised GET of
 * /metrics. Returns SM_OK with text appended to out. */
typedef sm_status (*metrics_http_body_fn)(struct buf *out, void *arg);

/* Serve one accepted connection: read the request, check the token (NULL
 * or "": none asked), answer 200 with fn's body, 401, 404, 405 or 400, and
 * close fd. Returns the status code sent (0 when nothing could be sent). */
int metrics_http_serve(int fd, const char *token, metrics_http_body_fn fn, void *arg);

/* GET /metrics from addr, with the token when not NULL/"". The body goes to
 * out; err gets "HTTP 401 Unauthorized" and the like on failure. */
sm_status metrics_http_fetch(const char *addr, const char *token, struct buf *out, char *err,
    size_t errlen);

/* Read a token file: its first line without the line ending. SM_ERR_IO
 * when unreadable, SM_ERR_CONFIG when empty. */
sm_status metrics_http_read_token(const char *file, char *token, size_t len, char *err,
    size_t errlen);

#endif
