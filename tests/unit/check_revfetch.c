/*
 * check_revfetch.c — HTTP for revocation data through libcurl, against a
 * one-shot server of the test's own on 127.0.0.1: bodies, the size limit,
 * HTTP errors, the timeout, and redirects to anything but http(s) refused.
 */
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "revfetch.h"
#include "testutil.h"

/* A server that answers one connection with a canned response (NULL:
 * reads the request and says nothing until the client gives up). */
struct srv {
	int fd, port;
	const char *response;
	size_t len;
	pthread_t th;
};

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	char req[4096];
	int c = accept(s->fd, NULL, NULL);

	if (c < 0)
		return NULL;
	if (read(c, req, sizeof(req)) < 0)
		req[0] = '\0';
	if (s->response != NULL) {
		size_t off = 0;
		ssize_t w;

		while (off < s->len && (w = write(c, s->response + off, s->len - off)) > 0)
			off += (size_t)w;
	} else {
		sleep(2);
	}
	close(c);
	return NULL;
}

static void
srv_start(struct srv *s, const char *response, size_t len)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	signal(SIGPIPE, SIG_IGN); /* a client that stops reading */
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert(s->fd >= 0);
	ck_assert(bind(s->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	ck_assert(listen(s->fd, 1) == 0);
	ck_assert(getsockname(s->fd, (struct sockaddr *)&a, &al) == 0);
	s->port = ntohs(a.sin_port);
	s->response = response;
	s->len = len;
	ck_assert(pthread_create(&s->th, NULL, srv_main, s) == 0);
}

static void
srv_stop(struct srv *s)
{
	pthread_join(s->th, NULL);
	close(s->fd);
}

static sm_status
fetch(struct srv *s, size_t max, long timeout_ms, struct buf *out, char *err, size_t errlen)
{
	struct revfetch_opts o = { timeout_ms, NULL, max };
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/inter.crl", s->port);
	return revfetch(url, NULL, 0, NULL, &o, out, err, errlen);
}

START_TEST(test_a_200_answer_gives_its_body)
{
	static const char r[] = "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	struct srv s;
	struct buf b = BUF_INIT;
	char err[160] = "";

	srv_start(&s, r, sizeof(r) - 1);
	ck_assert_msg(fetch(&s, 1024, 2000, &b, err, sizeof(err)) == SM_OK, "got error %s", err);
	ck_assert_uint_eq(b.len, 5);
	ck_assert(memcmp(b.data, "hello", 5) == 0);
	srv_stop(&s);
	buf_free(&b);
}
END_TEST

START_TEST(test_a_body_over_the_limit_is_refused)
{
	static char r[8192];
	struct srv s;
	struct buf b = BUF_INIT;
	char err[160] = "";
	int n = snprintf(r, sizeof(r), "HTTP/1.0 200 OK\r\n\r\n");

	memset(r + n, 'x', sizeof(r) - (size_t)n);
	srv_start(&s, r, sizeof(r));
	ck_assert_int_eq(fetch(&s, 1000, 2000, &b, err, sizeof(err)), SM_ERR_LIMIT);
	ck_assert_msg(strstr(err, "larger than 1000 bytes") != NULL, "got \"%s\"", err);
	srv_stop(&s);
	buf_free(&b);
}
END_TEST

START_TEST(test_an_http_error_is_no_body)
{
	static const char r[] = "HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\n\r\nno!";
	struct srv s;
	struct buf b = BUF_INIT;
	char err[160] = "";

	srv_start(&s, r, sizeof(r) - 1);
	ck_assert_int_eq(fetch(&s, 1024, 2000, &b, err, sizeof(err)), SM_ERR_IO);
	ck_assert_str_eq(err, "HTTP 404");
	srv_stop(&s);
	buf_free(&b);
}
END_TEST

START_TEST(test_a_redirect_to_a_file_url_is_refused)
{
	static const char r[] = "HTTP/1.0 302 Found\r\nLocation: file:///etc/passwd\r\n"
				"Content-Length: 0\r\n\r\n";
	struct srv s;
	struct buf b = BUF_INIT;
	char err[160] = "";

	srv_start(&s, r, sizeof(r) - 1);
	ck_assert_int_eq(fetch(&s, 1 << 20, 2000, &b, err, sizeof(err)), SM_ERR_IO);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_msg(strstr(err, "rotocol") != NULL, "got \"%s\", want an unsupported protocol", err);
	srv_stop(&s);
	buf_free(&b);
}
END_TEST

START_TEST(test_a_silent_server_times_out)
{
	struct srv s;
	struct buf b = BUF_INIT;
	char err[160] = "";

	srv_start(&s, NULL, 0);
	ck_assert_int_eq(fetch(&s, 1024, 300, &b, err, sizeof(err)), SM_ERR_IO);
	ck_assert_msg(strstr(err, "imeout") != NULL || strstr(err, "timed out") != NULL,
		      "got \"%s\", want a timeout", err);
	srv_stop(&s);
	buf_free(&b);
}
END_TEST

START_TEST(test_only_http_and_https_urls_are_fetched)
{
	struct revfetch_opts o = { 500, NULL, 1024 };
	struct buf b = BUF_INIT;
	char err[160] = "";

	ck_assert_int_eq(revfetch("file:///etc/passwd", NULL, 0, NULL, &o, &b, err, sizeof(err)),
			 SM_ERR_IO);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(revfetch("ldap://127.0.0.1/cn=x", NULL, 0, NULL, &o, &b, err, sizeof(err)),
			 SM_ERR_IO);
	buf_free(&b);
}
END_TEST

static Suite *
revfetch_suite(void)
{
	Suite *s = suite_create("revfetch");
	TCase *tc = tcase_create("revfetch");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_a_200_answer_gives_its_body);
	tcase_add_test(tc, test_a_body_over_the_limit_is_refused);
	tcase_add_test(tc, test_an_http_error_is_no_body);
	tcase_add_test(tc, test_a_redirect_to_a_file_url_is_refused);
	tcase_add_test(tc, test_a_silent_server_times_out);
	tcase_add_test(tc, test_only_http_and_https_urls_are_fetched);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(revfetch_suite());
}
