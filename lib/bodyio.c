/*
 * bodyio.c — chunked readers over a message body (bodyio.h).
 */
#include "bodyio.h"

#include "mime.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Pages are given back in batches of at least this much. */
#define BODYIO_DROP_STEP (1024 * 1024)

struct crlf_src {
	const unsigned char *p;
	size_t n, off;
	unsigned char prev;      /* the input byte before off (0 at start) */
	bool cr_sent;            /* the CR of a bare LF at off is out */
	bool drop;
	uintptr_t dropped;       /* page-aligned: pages below are given back */
};

static uintptr_t
page_down(uintptr_t a)
{
	uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);

	return a - a % ps;
}

static uintptr_t
page_up(uintptr_t a)
{
	uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);

	return page_down(a + ps - 1);
}

/* Give back the pages wholly below upto (all of them at the end). */
static void
crlf_drop_behind(struct crlf_src *s, bool end)
{
	uintptr_t upto = (uintptr_t)(s->p + s->off);

	upto = end ? page_up(upto) : page_down(upto);
	if (!s->drop || upto <= s->dropped || (!end && upto - s->dropped < BODYIO_DROP_STEP))
		return;
	(void)madvise((void *)s->dropped, upto - s->dropped, MADV_DONTNEED);
	s->dropped = upto;
}

/* Copy up to room bytes of the canonical form into out. */
static size_t
crlf_fill(struct crlf_src *s, unsigned char *out, size_t room)
{
	size_t got = 0;

	while (got < room && s->off < s->n) {
		size_t run = s->n - s->off < room - got ? s->n - s->off : room - got;
		const unsigned char *nl = memchr(s->p + s->off, '\n', run);
		size_t k = nl != NULL ? (size_t)(nl - (s->p + s->off)) : run;

		memcpy(out + got, s->p + s->off, k);
		got += k;
		s->off += k;
		if (k > 0)
			s->prev = s->p[s->off - 1];
		if (nl == NULL || got == room)
			continue;
		if (s->prev != '\r' && !s->cr_sent) {
			out[got++] = '\r';
			s->cr_sent = true;
			if (got == room)
				break;
		}
		out[got++] = '\n';
		s->off++;
		s->prev = '\n';
		s->cr_sent = false;
	}
	return got;
}

static int
crlf_read(BIO *b, char *out, int len)
{
	struct crlf_src *s = BIO_get_data(b);
	size_t got;

	if (s == NULL || len <= 0)
		return 0;
	got = crlf_fill(s, (unsigned char *)out, (size_t)len);
	crlf_drop_behind(s, s->off == s->n);
	return (int)got;
}

static long
crlf_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct crlf_src *s = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_EOF: return s == NULL || s->off == s->n;
	case BIO_CTRL_FLUSH: return 1;
	default: return 0;
	}
}

static int
crlf_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *crlf_method;
static pthread_once_t crlf_once = PTHREAD_ONCE_INIT;

static void
crlf_init_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "smime body crlf");

	if (m == NULL)
		return;
	if (!BIO_meth_set_read(m, crlf_read) || !BIO_meth_set_ctrl(m, crlf_ctrl) ||
	    !BIO_meth_set_destroy(m, crlf_destroy)) {
		BIO_meth_free(m);
		return;
	}
	crlf_method = m;
}

BIO *
bodyio_crlf_bio(const unsigned char *p, size_t n, bool drop)
{
	struct crlf_src *s;
	BIO *b;

	if (pthread_once(&crlf_once, crlf_init_method) != 0 || crlf_method == NULL)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((b = BIO_new(crlf_method)) == NULL) {
		free(s);
		return NULL;
	}
	s->p = p;
	s->n = p != NULL ? n : 0;
	s->drop = drop && bodyio_file_mapped(p, n);
	s->dropped = page_down((uintptr_t)p);
	BIO_set_data(b, s);
	BIO_set_init(b, 1);
	return b;
}

/* Is one line of /proc/self/maps a private read-only file mapping that
 * holds [a, z)? */
static bool
maps_line_holds(const char *line, uintptr_t a, uintptr_t z)
{
	uintmax_t lo, hi, off, inode;
	char perms[8];
	unsigned major, minor;

	if (sscanf(line, "%" SCNxMAX "-%" SCNxMAX " %7s %" SCNxMAX " %x:%x %" SCNuMAX,
	    &lo, &hi, perms, &off, &major, &minor, &inode) != 7)
		return false;
	if (a < (uintptr_t)lo || z > (uintptr_t)hi)
		return false;
	return strcmp(perms, "r--p") == 0 && inode != 0;
}

bool
bodyio_file_mapped(const void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p, z = a + n;
	char *line = NULL;
	size_t cap = 0;
	bool yes = false;
	FILE *f;

	if (p == NULL || n < BODYIO_DROP_MIN || z < a ||
	    (f = fopen("/proc/self/maps", "re")) == NULL)
		return false;
	while (!yes && getline(&line, &cap, f) > 0)
		yes = maps_line_holds(line, a, z);
	free(line);
	fclose(f);
	return yes;
}

void
bodyio_drop(const void *p, size_t n)
{
	uintptr_t a, z;

	if (!bodyio_file_mapped(p, n))
		return;
	a = page_down((uintptr_t)p);
	z = page_up((uintptr_t)p + n);
	(void)madvise((void *)a, z - a, MADV_DONTNEED);
}

void
bodyio_pager_init(struct bodyio_pager *pg, const void *p, size_t n)
{
	pg->p = p;
	pg->n = n;
	pg->mapped = bodyio_file_mapped(p, n);
}

void
bodyio_pager_done(void *arg)
{
	struct bodyio_pager *pg = arg;
	uintptr_t a, z;

	if (pg == NULL || !pg->mapped)
		return;
	a = page_down((uintptr_t)pg->p);
	z = page_up((uintptr_t)pg->p + pg->n);
	(void)madvise((void *)a, z - a, MADV_DONTNEED);
}

static bool
b64_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The end of the piece from s: past BODYIO_DROP_STEP, at a line end where
 * the base64 characters since s make whole quads (else the end of in). */
static size_t
b64_piece_end(const unsigned char *in, size_t n, size_t s)
{
	size_t e = s, quad = 0;

	while (e < n) {
		const unsigned char *nl = memchr(in + e, '\n', n - e);
		size_t z = nl != NULL ? (size_t)(nl - in) + 1 : n;

		for (; e < z; e++)
			quad += !b64_blank(in[e]);
		if (e - s >= BODYIO_DROP_STEP && quad % 4 == 0)
			break;
	}
	return e;
}

/* Any base64 data (not blank) in in[0..n)? */
static bool
b64_any_data(const unsigned char *in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!b64_blank(in[i]))
			return true;
	return false;
}

sm_status
bodyio_b64_decode(const unsigned char *in, size_t n, struct buf *out)
{
	size_t start = out->len, s = 0, e;
	uintptr_t dropped = page_down((uintptr_t)in);
	sm_status st = SM_OK;

	if (!bodyio_file_mapped(in, n))
		return mime_b64_decode(in, n, out);
	if (buf_reserve(out, n / 4 * 3 + 4) != SM_OK)
		return SM_ERR_NOMEM;
	for (; s < n && st == SM_OK; s = e) {
		uintptr_t upto;

		e = b64_piece_end(in, n, s);
		st = mime_b64_decode(in + s, e - s, out);
		/* padding ends the data: nothing but blanks may follow */
		if (st == SM_OK && memchr(in + s, '=', e - s) != NULL && b64_any_data(in + e, n - e))
			st = SM_ERR_PARSE;
		upto = page_down((uintptr_t)(in + e));
		if (upto > dropped) {
			(void)madvise((void *)dropped, upto - dropped, MADV_DONTNEED);
			dropped = upto;
		}
	}
	if (st == SM_ERR_PARSE) {
		/* A piece boundary the whole decoder would not see: judge the
		 * whole, as it would. */
		out->len = start;
		st = mime_b64_decode(in, n, out);
	}
	bodyio_drop(in, n);
	return st;
}
