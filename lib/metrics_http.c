/*
 * metrics_http.c — GET /metrics over plain HTTP/1.x, server and client.
 */
#include "metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- addresses ---- */

struct maddr {
	int family;                 /* AF_UNIX, AF_INET, AF_INET6 */
	char host[256];
	char port[8];
	char path[108];
};

static sm_status
addr_parse(const char *a, struct maddr *m, char *err, size_t errlen)
{
	const char *p, *at;
	size_t plen;

	memset(m, 0, sizeof(*m));
	if (strncmp(a, "unix:", 5) == 0 || strncmp(a, "local:", 6) == 0) {
		p = strchr(a, ':') + 1;
		if (*p != '/' || strlen(p) >= sizeof(m->path)) {
			sm_seterr(err, errlen, "%s: expected unix:/absolute/path", a);
			return SM_ERR_ARG;
		}
		m->family = AF_UNIX;
		snprintf(m->path, sizeof(m->path), "%s", p);
		return SM_OK;
	}
	if (strncmp(a, "inet:", 5) == 0) {
		m->family = AF_INET;
		p = a + 5;
	} else if (strncmp(a, "inet6:", 6) == 0) {
		m->family = AF_INET6;
		p = a + 6;
	} else {
		sm_seterr(err, errlen, "%s: expected inet:PORT@HOST, inet6:PORT@HOST or unix:PATH", a);
		return SM_ERR_ARG;
	}
	at = strchr(p, '@');
	plen = at ? (size_t)(at - p) : strlen(p);
	if (plen == 0 || plen >= sizeof(m->port) || strspn(p, "0123456789") != plen) {
		sm_seterr(err, errlen, "%s: bad port", a);
		return SM_ERR_ARG;
	}
	memcpy(m->port, p, plen);
	snprintf(m->host, sizeof(m->host), "%s",
	    at && at[1] ? at + 1 : m->family == AF_INET6 ? "::1" : "127.0.0.1");
	return SM_OK;
}

/* Open a socket for m, bound (listen) or connected (!listen). */
static sm_status
addr_socket(const struct maddr *m, bool listen_it, int *fd, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	int s = -1, rc, one = 1;

	if (m->family == AF_UNIX) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", m->path);
		if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			goto fail;
		if (listen_it) {
			struct stat st;
			mode_t old;

			if (lstat(m->path, &st) == 0 && S_ISSOCK(st.st_mode))
				unlink(m->path);
			old = umask(0117);
			rc = bind(s, (struct sockaddr *)&sun, sizeof(sun));
			umask(old);
			if (rc != 0 || listen(s, 16) != 0)
				goto fail;
		} else if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
			goto fail;
		}
		*fd = s;
		return SM_OK;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = m->family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = listen_it ? AI_PASSIVE : 0;
	if ((rc = getaddrinfo(m->host, m->port, &hints, &res)) != 0) {
		sm_seterr(err, errlen, "%s: %s", m->host, gai_strerror(rc));
		return SM_ERR_IO;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		if ((s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0)) < 0)
			continue;
		if (listen_it) {
			setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(s, ai->ai_addr, ai->ai_addrlen) == 0 && listen(s, 16) == 0)
				break;
		} else if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0) {
			break;
		}
		rc = errno;
		close(s);
		s = -1;
		errno = rc;
	}
	freeaddrinfo(res);
	if (s < 0)
		goto fail;
	*fd = s;
	return SM_OK;
fail:
	sm_seterr(err, errlen, "%s %s%s%s%s: %s", listen_it ? "cannot listen on" : "cannot connect to",
	    m->family == AF_UNIX ? m->path : m->host, m->family == AF_UNIX ? "" : " port",
	    m->family == AF_UNIX ? "" : " ", m->port, strerror(errno));
	if (s >= 0)
		close(s);
	return SM_ERR_IO;
}

sm_status
metrics_http_listen(const char *addr, int *fd, char *err, size_t errlen)
{
	struct maddr m;
	sm_status st;

	*fd = -1;
	if ((st = addr_parse(addr, &m, err, errlen)) != SM_OK)
		return st;
	return addr_socket(&m, true, fd, err, errlen);
}

/* ---- I/O with a deadline ---- */

static long
ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static void
deadline_in(struct timespec *d, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, d);
	d->tv_sec += ms / 1000;
	d->tv_nsec += (ms % 1000) * 1000000;
	if (d->tv_nsec >= 1000000000) {
		d->tv_sec++;
		d->tv_nsec -= 1000000000;
	}
}

/* Wait until fd is ready for events; false on timeout or error. */
static bool
wait_fd(int fd, short events, const struct timespec *deadline)
{
	struct pollfd p = { fd, events, 0 };
	long left = ms_left(deadline);

	return left > 0 && poll(&p, 1, (int)left) == 1;
}

static bool
write_all(int fd, const void *data, size_t len, const struct timespec *deadline)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n;

		if (!wait_fd(fd, POLLOUT, deadline))
			return false;
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* ---- server ---- */

static bool
token_equal(const char *got, size_t glen, const char *want)
{
	size_t wlen = strlen(want);
	unsigned char diff = (unsigned char)(glen != wlen);

	/* constant time in the token's length */
	for (size_t i = 0; i < wlen; i++)
		diff |= (unsigned char)(want[i] ^ (i < glen ? got[i] : 0));
	return diff == 0;
}

/* The value of header name in the request head (NUL-terminated), or NULL;
 * *len receives its length without trailing blanks. */
static const char *
header_value(const char *head, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	for (const char *p = strstr(head, "\r\n"); p; p = strstr(p, "\r\n")) {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1, *e;
			while (*v == ' ' || *v == '\t')
				v++;
			e = strstr(v, "\r\n");
			e = e ? e : v + strlen(v);
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			*len = (size_t)(e - v);
			return v;
		}
	}
	return NULL;
}

static int
reply(int fd, int code, const char *reason, const char *extra, const char *ctype,
    const void *body, size_t blen, bool head_only, const struct timespec *deadline)
{
	char h[512];
	int n = snprintf(h, sizeof(h),
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
	    code, reason, ctype, blen, extra ? extra : "");

	if (n < 0 || (size_t)n >= sizeof(h) || !write_all(fd, h, (size_t)n, deadline))
		return 0;
	if (!head_only && blen > 0 && !write_all(fd, body, blen, deadline))
		return 0;
	return code;
}

/* Read the request head (up to the blank line) into buf. */
static bool
read_head(int fd, char *buf, size_t size, const struct timespec *deadline)
{
	size_t len = 0;

	while (len + 1 < size) {
		ssize_t n;

		if (!wait_fd(fd, POLLIN, deadline))
			return false;
		n = recv(fd, buf + len, size - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			return true;
	}
	return false;
}

static int
serve(int fd, const char *token, metrics_http_body_fn fn, void *arg,
    const struct timespec *deadline)
{
	static const char text[] = "text/plain; charset=utf-8";
	char req[METRICS_HTTP_MAX_REQUEST + 1];
	char method[16], target[256];
	const char *auth;
	size_t alen = 0;
	bool head;
	struct buf body = BUF_INIT;
	int code;

	if (!read_head(fd, req, sizeof(req), deadline))
		return 0;
	if (sscanf(req, "%15s %255s HTTP/1.%*c", method, target) != 2)
		return reply(fd, 400, "Bad Request", NULL, text, "bad request\n", 12, false, deadline);
	head = strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !head)
		return reply(fd, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", text,
		    "only GET\n", 9, false, deadline);
	if (token && *token) {
		auth = header_value(req, "Authorization", &alen);
		if (auth == NULL || alen < 7 || strncasecmp(auth, "Bearer ", 7) != 0 ||
		    !token_equal(auth + 7, alen - 7, token))
			return reply(fd, 401, "Unauthorized", "WWW-Authenticate: Bearer\r\n", text,
			    "a bearer token is required\n", 27, head, deadline);
	}
	if (strcmp(target, "/metrics") != 0 && strncmp(target, "/metrics?", 9) != 0)
		return reply(fd, 404, "Not Found", NULL, text, "try /metrics\n", 13, head, deadline);
	if (fn(&body, arg) != SM_OK) {
		buf_free(&body);
		return reply(fd, 500, "Internal Server Error", NULL, text, "error\n", 6, head, deadline);
	}
	code = reply(fd, 200, "OK", NULL, "text/plain; version=0.0.4; charset=utf-8", body.data,
	    body.len, head, deadline);
	buf_free(&body);
	return code;
}

int
metrics_http_serve(int fd, const char *token, metrics_http_body_fn fn, void *arg)
{
	struct timespec deadline;
	int code;

	deadline_in(&deadline, METRICS_HTTP_TIMEOUT_MS);
	code = serve(fd, token, fn, arg, &deadline);
	shutdown(fd, SHUT_WR);
	close(fd);
	return code;
}

/* ---- client ---- */

static sm_status
read_response(int fd, struct buf *resp, const struct timespec *deadline, char *err,
    size_t errlen)
{
	char chunk[8192];

	for (;;) {
		ssize_t n;

		if (!wait_fd(fd, POLLIN, deadline)) {
			sm_seterr(err, errlen, "no answer from the metrics endpoint in time");
			return SM_ERR_IO;
		}
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sm_seterr(err, errlen, "reading the answer: %s", strerror(errno));
			return SM_ERR_IO;
		}
		if (n == 0)
			return SM_OK;
		if (resp->len > 64u * 1024 * 1024 || buf_append(resp, chunk, (size_t)n) != SM_OK) {
			sm_seterr(err, errlen, "answer too large");
			return SM_ERR_LIMIT;
		}
	}
}

sm_status
metrics_http_fetch(const char *addr, const char *token, struct buf *out, char *err,
    size_t errlen)
{
	struct maddr m;
	struct buf req = BUF_INIT, resp = BUF_INIT;
	struct timespec deadline;
	const char *hdr_end, *line_end;
	int fd = -1, code = 0;
	sm_status st;

	if ((st = addr_parse(addr, &m, err, errlen)) != SM_OK ||
	    (st = addr_socket(&m, false, &fd, err, errlen)) != SM_OK)
		return st;
	deadline_in(&deadline, METRICS_HTTP_TIMEOUT_MS);
	buf_printf(&req, "GET /metrics HTTP/1.1\r\nHost: %s\r\n", m.family == AF_UNIX ? "localhost" : m.host);
	if (token && *token)
		buf_printf(&req, "Authorization: Bearer %s\r\n", token);
	buf_append_str(&req, "Connection: close\r\n\r\n");
	if (req.data == NULL || !write_all(fd, req.data, req.len, &deadline)) {
		sm_seterr(err, errlen, "cannot send the request: %s", strerror(errno));
		st = SM_ERR_IO;
		goto out;
	}
	if ((st = read_response(fd, &resp, &deadline, err, errlen)) != SM_OK)
		goto out;
	hdr_end = resp.data ? strstr(buf_cstr(&resp), "\r\n\r\n") : NULL;
	if (hdr_end == NULL || sscanf(buf_cstr(&resp), "HTTP/1.%*c %d", &code) != 1) {
		sm_seterr(err, errlen, "not an HTTP answer");
		st = SM_ERR_PARSE;
		goto out;
	}
	if (code != 200) {
		line_end = strstr(buf_cstr(&resp), "\r\n");
		sm_seterr(err, errlen, "HTTP %.*s", (int)(line_end - buf_cstr(&resp)) - 9,
		    buf_cstr(&resp) + 9);
		st = code == 401 ? SM_ERR_PERM : SM_ERR_IO;
		goto out;
	}
	st = buf_append(out, hdr_end + 4, resp.len - (size_t)(hdr_end + 4 - buf_cstr(&resp)));
out:
	buf_free(&req);
	buf_free(&resp);
	close(fd);
	return st;
}

sm_status
metrics_http_read_token(const char *file, char *token, size_t len, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");

	token[0] = '\0';
	if (f == NULL) {
		sm_seterr(err, errlen, "cannot read %s: %s", file, strerror(errno));
		return SM_ERR_IO;
	}
	if (fgets(token, (int)len, f) == NULL)
		token[0] = '\0';
	fclose(f);
	token[strcspn(token, "\r\n")] = '\0';
	if (token[0] == '\0') {
		sm_seterr(err, errlen, "%s: the first line holds no token", file);
		return SM_ERR_CONFIG;
	}
	return SM_OK;
}
