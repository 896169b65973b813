/*
 * pgprobe.c — see pgprobe.h.
 */
#include "pgprobe.h"

#include <ctype.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define PGPROBE_TIMEOUT_MS 5000

/* Is the SQLSTATE at s (5 characters) one the server is sure about? */
static bool
pgprobe_certain(const char *s)
{
	return strncmp(s, "28", 2) == 0 || strncmp(s, "3D000", 5) == 0 ||
	       strncmp(s, "42", 2) == 0;
}

/* A verbose server message reads "SEVERITY:  XXXXX: text"; find each
 * "XXXXX: " that follows ":  ". */
enum pgprobe_result
pgprobe_classify(const char *msg, int needs_password)
{
	if (needs_password)
		return PGPROBE_REFUSED;
	for (const char *p = msg ? strstr(msg, ":  ") : NULL; p; p = strstr(p + 1, ":  ")) {
		const char *s = p + 3;
		int i;

		for (i = 0; i < 5 && (isdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])); i++)
			;
		if (i == 5 && s[5] == ':' && pgprobe_certain(s))
			return PGPROBE_REFUSED;
	}
	return PGPROBE_UNREACHABLE;
}

/* libpq's text on one line, without the server's LOCATION lines. */
static void
pgprobe_oneline(const char *msg, char *err, size_t errlen)
{
	size_t n = 0;

	if (errlen == 0)
		return;
	for (const char *line = msg; *line && n + 1 < errlen;) {
		const char *end = strchr(line, '\n'), *t = line;
		size_t len = end ? (size_t)(end - line) : strlen(line);

		while (t < line + len && (*t == ' ' || *t == '\t'))
			t++;
		len -= (size_t)(t - line);
		if (len > 0 && strncmp(t, "LOCATION:", 9) != 0) {
			n += (size_t)snprintf(err + n, errlen - n, "%s%.*s", n ? "; " : "",
			    (int)len, t);
			if (n >= errlen)
				n = errlen - 1;
		}
		if (end == NULL)
			break;
		line = end + 1;
	}
	err[n] = '\0';
}

static long
pgprobe_ms_left(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return PGPROBE_TIMEOUT_MS - ((now.tv_sec - start->tv_sec) * 1000L +
					(now.tv_nsec - start->tv_nsec) / 1000000L);
}

/* Drive the non-blocking connection to its end; false on the deadline. */
static bool
pgprobe_poll(PGconn *c)
{
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
		struct pollfd p = { .fd = PQsocket(c),
			.events = ps == PGRES_POLLING_READING ? POLLIN : POLLOUT };
		long left = pgprobe_ms_left(&start);

		if (left <= 0)
			return false;
		if (p.fd >= 0 && poll(&p, 1, (int)left) == 0)
			return false;
		ps = PQconnectPoll(c);
	}
	return true;
}

enum pgprobe_result
pgprobe_connect(const char *conninfo, char *err, size_t errlen)
{
	const char *const keys[] = { "dbname", NULL };
	const char *const vals[] = { conninfo, NULL };
	enum pgprobe_result r = PGPROBE_UNREACHABLE;
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	PGconn *c;

	if (opts == NULL) {
		pgprobe_oneline(perr ? perr : "out of memory", err, errlen);
		PQfreemem(perr);
		return perr ? PGPROBE_REFUSED : PGPROBE_UNREACHABLE;
	}
	PQconninfoFree(opts);
	c = PQconnectStartParams(keys, vals, 1);
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return PGPROBE_UNREACHABLE;
	}
	/* The SQLSTATE is in the text only when verbose. */
	PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
	if (PQstatus(c) != CONNECTION_BAD && !pgprobe_poll(c))
		snprintf(err, errlen, "no answer within %d s", PGPROBE_TIMEOUT_MS / 1000);
	else if (PQstatus(c) == CONNECTION_OK)
		r = PGPROBE_OK;
	else {
		r = pgprobe_classify(PQerrorMessage(c), PQconnectionNeedsPassword(c));
		pgprobe_oneline(PQerrorMessage(c), err, errlen);
	}
	PQfinish(c);
	return r;
}
