/*
 * rtutil.h — what an MTA does with a gw_result, for tests: apply the
 * header edits to a header list and serialise headers + body into the
 * message that would leave the gateway. Plus the small checks the round
 * trip needs on that message (7-bit clean, CRLF), the process's peak
 * memory, and running an external program without a shell.
 *
 * Header-only (static inline) so that any suite can include it without a
 * Makefile change.
 */
#ifndef SMIME_RTUTIL_H
#define SMIME_RTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "gateway.h"
#include "mime.h"

extern char **environ;

/* Remove field i of h, keeping the order of the others. */
static inline void
rt_headers_remove_at(struct mime_headers *h, size_t i)
{
	free(h->v[i].name);
	free(h->v[i].value);
	memmove(&h->v[i], &h->v[i + 1], (h->n - i - 1) * sizeof(h->v[0]));
	h->n--;
}

/* The position of occurrence `index` (1-based) of name, or h->n. */
static inline size_t
rt_headers_find(const struct mime_headers *h, const char *name, int index)
{
	int seen = 0;

	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0 && ++seen == index)
			return i;
	return h->n;
}

/*
 * Apply r's header edits to h in order, as smfi_chgheader, smfi_addheader
 * and smfi_insheader do: DELETE/CHANGE name the index-th occurrence
 * (1-based) of the name; CHANGE of a missing occurrence appends (Sendmail
 * and Postfix both do). Returns false with a reason when an edit names a
 * header that is not there (an MTA would ignore it; a test should not).
 */
static inline bool
rt_headers_apply(struct mime_headers *h, const struct gw_result *r, char *why,
    size_t whylen)
{
	for (size_t k = 0; k < r->nedits; k++) {
		const struct gw_hdr_edit *e = &r->edits[k];
		size_t i;

		switch (e->op) {
		case GW_HDR_DELETE:
			if ((i = rt_headers_find(h, e->name, e->index)) == h->n) {
				snprintf(why, whylen, "edit %zu deletes %s #%d, which does "
				    "not exist", k, e->name, e->index);
				return false;
			}
			rt_headers_remove_at(h, i);
			break;
		case GW_HDR_CHANGE:
			if ((i = rt_headers_find(h, e->name, e->index)) == h->n) {
				if (mime_headers_add(h, e->name, e->value) != SM_OK)
					goto nomem;
				break;
			}
			{
				char *v = strdup(e->value);
				if (v == NULL)
					goto nomem;
				free(h->v[i].value);
				h->v[i].value = v;
			}
			break;
		case GW_HDR_ADD:
			if (mime_headers_add(h, e->name, e->value) != SM_OK)
				goto nomem;
			break;
		case GW_HDR_INSERT_TOP:
			if (mime_headers_add(h, e->name, e->value) != SM_OK)
				goto nomem;
			{
				struct mime_header last = h->v[h->n - 1];
				memmove(&h->v[1], &h->v[0], (h->n - 1) * sizeof(h->v[0]));
				h->v[0] = last;
			}
			break;
		default:
			snprintf(why, whylen, "edit %zu has unknown op %d", k, (int)e->op);
			return false;
		}
	}
	return true;
nomem:
	snprintf(why, whylen, "out of memory");
	return false;
}

/*
 * Append "Name: value" CRLF for every field (value written as stored,
 * with any line break inside it made CRLF; a value that already starts
 * with a space or tab gets no extra one), a blank line and body. This is
 * what a MTA writes: no refolding.
 */
static inline sm_status
rt_serialize(const struct mime_headers *h, const unsigned char *body, size_t n,
    struct buf *out)
{
	sm_status st = SM_OK;

	for (size_t i = 0; i < h->n && st == SM_OK; i++) {
		const char *v = h->v[i].value;

		st = buf_append_str(out, h->v[i].name);
		if (st == SM_OK)
			st = buf_append_str(out, (*v == ' ' || *v == '\t') ? ":" : ": ");
		for (; *v && st == SM_OK; v++) {
			if (*v == '\r')
				continue;
			if (*v == '\n')
				st = buf_append_char(out, '\r');
			if (st == SM_OK)
				st = buf_append_char(out, *v);
		}
		if (st == SM_OK)
			st = buf_append(out, "\r\n", 2);
	}
	if (st == SM_OK)
		st = buf_append(out, "\r\n", 2);
	if (st == SM_OK)
		st = buf_append(out, body, n);
	return st;
}

/*
 * Is p[0..n) something no relay can break: every byte 1..127, every line
 * ended by CRLF (no bare CR or LF; the last line may be unterminated) and
 * no line longer than 998 octets? On false, why says where.
 */
static inline bool
rt_is_7bit_crlf(const unsigned char *p, size_t n, char *why, size_t whylen)
{
	size_t line = 0, linestart = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == 0 || p[i] >= 128) {
			snprintf(why, whylen, "byte 0x%02x at offset %zu (line %zu)", p[i], i,
			    line + 1);
			return false;
		}
		if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')) {
			snprintf(why, whylen, "bare CR at offset %zu (line %zu)", i, line + 1);
			return false;
		}
		if (p[i] == '\n') {
			if (i == 0 || p[i - 1] != '\r') {
				snprintf(why, whylen, "bare LF at offset %zu (line %zu)", i,
				    line + 1);
				return false;
			}
			if (i - 1 - linestart > 998) {
				snprintf(why, whylen, "line %zu is %zu octets long (limit 998)",
				    line + 1, i - 1 - linestart);
				return false;
			}
			line++;
			linestart = i + 1;
		}
	}
	if (n - linestart > 998) {
		snprintf(why, whylen, "last line is %zu octets long (limit 998)", n - linestart);
		return false;
	}
	return true;
}

/* A "Vm...:" line of /proc/self/status in KiB, -1 when unreadable. */
static inline long
rt_proc_status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t fl = strlen(field);
	long v = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtol(line + fl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0: "5" > clear_refs), so
 * that a later VmHWM reading measures only what happened in between.
 * False when the kernel does not allow it. */
static inline bool
rt_reset_hwm(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, "5", 1) == 1;
	close(fd);
	return ok;
}

/*
 * Run argv[0] (found on PATH) with stdin from /dev/null and stdout and
 * stderr appended to log. Returns the exit status, 128 + signal when
 * killed, or -1 when it could not be started (errno set).
 */
static inline int
rt_spawn(const char *log, char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, rc;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

#endif
