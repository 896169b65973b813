/*
 * check_metrics_http.c — the metrics endpoint's HTTP: a scrape with the
 * right bearer token gets the body, anything else gets the status it
 * deserves; the client reads the body back and reports refusals; a silent
 * client cannot hold the server; token files are read as documented.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics_http.h"
#include "testutil.h"

static char *dir;
static char addr[300];
static int lfd = -1;

static sm_status
body_fn(struct buf *out, void *arg)
{
	(void)arg;
	return buf_append_str(out, "# TYPE x counter\nx 42\n");
}

struct server {
	const char *token;
	int nreq;
	int codes[8];
};

static void *
serve_n(void *arg)
{
	struct server *s = arg;

	for (int i = 0; i < s->nreq; i++) {
		int c = accept(lfd, NULL, NULL);
		s->codes[i] = c < 0 ? -1 : metrics_http_serve(c, s->token, body_fn, NULL);
	}
	return NULL;
}

static void
setup(void)
{
	char err[256] = "";

	dir = testutil_tmpdir();
	snprintf(addr, sizeof(addr), "unix:%s/metrics.sock", dir);
	ck_assert_msg(metrics_http_listen(addr, &lfd, err, sizeof(err)) == SM_OK, "listen: %s", err);
}

static void
teardown(void)
{
	close(lfd);
	testutil_rmtree(dir);
	free(dir);
}

START_TEST(the_right_token_gets_the_metrics)
{
	struct server s = { "s3cret", 3, { 0 } };
	struct buf out = BUF_INIT;
	char err[256] = "";
	pthread_t t;

	pthread_create(&t, NULL, serve_n, &s);
	ck_assert_int_eq(metrics_http_fetch(addr, "s3cret", &out, err, sizeof(err)), SM_OK);
	ck_assert_str_eq(buf_cstr(&out), "# TYPE x counter\nx 42\n");
	buf_reset(&out);
	ck_assert_int_eq(metrics_http_fetch(addr, "s3cre", &out, err, sizeof(err)), SM_ERR_PERM);
	ck_assert_str_eq(err, "HTTP 401 Unauthorized");
	ck_assert_int_eq(out.len, 0);
	ck_assert_int_eq(metrics_http_fetch(addr, NULL, &out, err, sizeof(err)), SM_ERR_PERM);
	pthread_join(t, NULL);
	ck_assert_int_eq(s.codes[0], 200);
	ck_assert_int_eq(s.codes[1], 401);
	ck_assert_int_eq(s.codes[2], 401);
	buf_free(&out);
}
END_TEST

START_TEST(no_token_configured_means_none_asked)
{
	struct server s = { NULL, 1, { 0 } };
	struct buf out = BUF_INIT;
	char err[256] = "";
	pthread_t t;

	pthread_create(&t, NULL, serve_n, &s);
	ck_assert_int_eq(metrics_http_fetch(addr, "anything", &out, err, sizeof(err)), SM_OK);
	pthread_join(t, NULL);
	ck_assert_int_eq(s.codes[0], 200);
	buf_free(&out);
}
END_TEST

/* Raw requests over a socketpair: what the server answers. */
static const struct raw_case {
	const char *req;
	const char *token;
	const char *want; /* start of the answer */
} raw_cases[] = {
	{ "GET /metrics HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n", "t", "HTTP/1.1 200 OK\r\n" },
	{ "GET /metrics HTTP/1.1\r\nauthorization:   bearer t  \r\n\r\n", "t", "HTTP/1.1 200 OK\r\n" },
	{ "GET /metrics HTTP/1.1\r\nAuthorization: Bearer tt\r\n\r\n", "t", "HTTP/1.1 401 " },
	{ "GET /metrics HTTP/1.1\r\nAuthorization: Basic dDp0\r\n\r\n", "t", "HTTP/1.1 401 " },
	{ "GET /metrics HTTP/1.1\r\nX-Authorization: Bearer t\r\n\r\n", "t", "HTTP/1.1 401 " },
	{ "GET / HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n", "t", "HTTP/1.1 404 " },
	{ "GET /other HTTP/1.0\r\n\r\n", NULL, "HTTP/1.1 404 " },
	{ "POST /metrics HTTP/1.1\r\n\r\n", NULL, "HTTP/1.1 405 " },
	{ "HEAD /metrics HTTP/1.1\r\n\r\n", NULL, "HTTP/1.1 200 OK\r\n" },
	{ "garbage\r\n\r\n", NULL, "HTTP/1.1 400 " },
};

START_TEST(requests_get_the_status_they_deserve)
{
	const struct raw_case *tc = &raw_cases[_i];
	int sv[2];
	char got[4096];
	ssize_t n;
	size_t len = 0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[0], tc->req, strlen(tc->req)), (ssize_t)strlen(tc->req));
	metrics_http_serve(sv[1], tc->token, body_fn, NULL);
	while ((n = read(sv[0], got + len, sizeof(got) - 1 - len)) > 0)
		len += (size_t)n;
	got[len] = '\0';
	close(sv[0]);
	ck_assert_msg(strncmp(got, tc->want, strlen(tc->want)) == 0, "%s: got \"%.40s\", want \"%s\"",
	    tc->req, got, tc->want);
	if (strncmp(tc->req, "HEAD", 4) == 0)
		ck_assert_msg(strstr(got, "x 42") == NULL, "HEAD answered with a body");
	else if (strstr(tc->want, " 200 "))
		ck_assert_msg(strstr(got, "\r\n\r\n# TYPE x counter\nx 42\n") != NULL, "no body: %s", got);
	if (strstr(tc->want, " 401 "))
		ck_assert_msg(strstr(got, "x 42") == NULL, "401 leaked the metrics");
}
END_TEST

START_TEST(a_silent_client_is_dropped_after_the_timeout)
{
	int sv[2];
	struct timespec a, b;
	long ms;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[0], "GET /metrics HTTP/1.1\r\n", 23), 23); /* never finished */
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(metrics_http_serve(sv[1], NULL, body_fn, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	ck_assert_msg(ms >= METRICS_HTTP_TIMEOUT_MS - 100 && ms < METRICS_HTTP_TIMEOUT_MS + 2000,
	    "dropped after %ld ms, want about %d", ms, METRICS_HTTP_TIMEOUT_MS);
	close(sv[0]);
}
END_TEST

START_TEST(token_files_give_their_first_line)
{
	char path[400], tok[METRICS_TOKEN_MAX], err[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/token", dir);
	f = fopen(path, "w");
	fputs("abc def\r\nsecond line\n", f);
	fclose(f);
	ck_assert_int_eq(metrics_http_read_token(path, tok, sizeof(tok), err, sizeof(err)), SM_OK);
	ck_assert_str_eq(tok, "abc def");
	f = fopen(path, "w");
	fputs("\nlater\n", f);
	fclose(f);
	ck_assert_int_eq(metrics_http_read_token(path, tok, sizeof(tok), err, sizeof(err)),
	    SM_ERR_CONFIG);
	ck_assert_msg(strstr(err, "the first line holds no token") != NULL, "got \"%s\"", err);
	snprintf(path, sizeof(path), "%s/missing", dir);
	ck_assert_int_eq(metrics_http_read_token(path, tok, sizeof(tok), err, sizeof(err)), SM_ERR_IO);
}
END_TEST

START_TEST(bad_addresses_and_absent_servers_say_why)
{
	int fd;
	char err[256] = "";
	struct buf out = BUF_INIT;

	ck_assert_int_eq(metrics_http_listen("http://x", &fd, err, sizeof(err)), SM_ERR_ARG);
	ck_assert_int_eq(metrics_http_listen("inet:99999999@127.0.0.1", &fd, err, sizeof(err)),
	    SM_ERR_ARG);
	ck_assert_int_eq(metrics_http_fetch("unix:/nonexistent/sock", NULL, &out, err, sizeof(err)),
	    SM_ERR_IO);
	ck_assert_msg(strstr(err, "cannot connect to /nonexistent/sock") != NULL, "got \"%s\"", err);
	buf_free(&out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics_http");
	TCase *tc = tcase_create("metrics_http");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, the_right_token_gets_the_metrics);
	tcase_add_test(tc, no_token_configured_means_none_asked);
	tcase_add_loop_test(tc, requests_get_the_status_they_deserve, 0,
	    (int)(sizeof(raw_cases) / sizeof(raw_cases[0])));
	tcase_add_test(tc, a_silent_client_is_dropped_after_the_timeout);
	tcase_add_test(tc, token_files_give_their_first_line);
	tcase_add_test(tc, bad_addresses_and_absent_servers_say_why);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
