/*
 * cmsstrip.c — the content taken out of a CMS ContentInfo (cmsstrip.h).
 */
#include "cmsstrip.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define STRIP_MAX_DEPTH 16

/* One tag-length header: single-byte tags only. */
struct hdr {
	size_t at, hlen, len;    /* len: of the contents; 0 when indefinite */
	unsigned char tag;
	bool indef;
};

static bool
hdr_read(const unsigned char *p, size_t n, size_t at, struct hdr *h)
{
	size_t i = at, k;

	if (at + 2 > n || (p[at] & 0x1f) == 0x1f)
		return false;
	h->at = at;
	h->tag = p[i++];
	h->indef = false;
	h->len = 0;
	if (p[i] < 0x80) {
		h->len = p[i++];
	} else if (p[i] == 0x80) {
		if (!(h->tag & 0x20))
			return false;
		h->indef = true;
		i++;
	} else {
		k = p[i++] & 0x7f;
		if (k > sizeof(size_t) || i + k > n)
			return false;
		for (; k > 0; k--) {
			if (h->len > (SIZE_MAX >> 8))
				return false;
			h->len = h->len << 8 | p[i++];
		}
	}
	h->hlen = i - at;
	return h->indef || h->len <= n - i;
}

/* Where the element at `at` ends (past an indefinite one's end-of-contents). */
static bool
elem_end(const unsigned char *p, size_t n, size_t at, int depth, size_t *end)
{
	struct hdr h;
	size_t i;

	if (depth > STRIP_MAX_DEPTH || !hdr_read(p, n, at, &h))
		return false;
	if (!h.indef) {
		*end = at + h.hlen + h.len;
		return true;
	}
	for (i = at + h.hlen; i + 2 <= n; ) {
		if (p[i] == 0 && p[i + 1] == 0) {
			*end = i + 2;
			return true;
		}
		if (!elem_end(p, n, i, depth + 1, &i))
			return false;
	}
	return false;
}

/* The string's octets (primitive, or constructed of primitive pieces)
 * moved together to der[h->at + h->hlen ...]; only after every piece was
 * found well-formed. *len: how many octets; *end: past the string. */
static bool
string_gather(unsigned char *p, size_t n, const struct hdr *h, size_t *len, size_t *end)
{
	size_t i = h->at + h->hlen, w, stop = h->indef ? n : i + h->len;
	struct hdr c;

	if (!(h->tag & 0x20)) {
		*len = h->len;
		*end = i + h->len;
		return true;
	}
	for (w = i; ; i = c.at + c.hlen + c.len) { /* check first */
		if (h->indef && i + 2 <= n && p[i] == 0 && p[i + 1] == 0) {
			*end = i + 2;
			break;
		}
		if (!h->indef && i == stop) {
			*end = i;
			break;
		}
		if (i >= stop || !hdr_read(p, stop, i, &c) || c.tag != 0x04)
			return false;
	}
	*len = 0;
	for (i = h->at + h->hlen; i < *end && !(h->indef && p[i] == 0 && p[i + 1] == 0);
	    i = c.at + c.hlen + c.len) {
		(void)hdr_read(p, n, i, &c);
		memmove(p + w + *len, p + c.at + c.hlen, c.len);
		*len += c.len;
	}
	return true;
}

/* The size of h's header with contents of len (or indefinite). */
static size_t
hdr_size(const struct hdr *h, size_t len)
{
	size_t nb = 0;

	if (h->indef || len < 0x80)
		return 2;
	for (; len > 0; len >>= 8)
		nb++;
	return 2 + nb;
}

/* A header for an element whose contents are now len (or indefinite). */
static sm_status
hdr_put(struct buf *b, const struct hdr *h, size_t len)
{
	unsigned char t[2 + sizeof(size_t)];
	size_t k = 0;

	t[k++] = h->tag;
	if (h->indef) {
		t[k++] = 0x80;
	} else if (len < 0x80) {
		t[k++] = (unsigned char)len;
	} else {
		size_t nb = 0;
		for (size_t v = len; v > 0; v >>= 8)
			nb++;
		t[k++] = (unsigned char)(0x80 | nb);
		for (size_t j = nb; j > 0; j--)
			t[k++] = (unsigned char)(len >> (8 * (j - 1)));
	}
	return buf_append(b, t, k);
}

static bool
oid_is(const unsigned char *p, const struct hdr *h, const unsigned char *oid, size_t olen)
{
	return h->tag == 0x06 && !h->indef && h->len == olen &&
	    memcmp(p + h->at + h->hlen, oid, olen) == 0;
}

/* 1.2.840.113549.1.7.2 signed-data, .7.3 enveloped-data;
 * 1.2.840.113549.1.9.16.1.23 authEnveloped-data. */
static const unsigned char OID_SIGNED[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02 };
static const unsigned char OID_ENV[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03 };
static const unsigned char OID_AUTHENV[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09,
	0x10, 0x01, 0x17 };

/* The four enclosing headers (ContentInfo, [0], the content type's
 * SEQUENCE, the content info's SEQUENCE) and the content element. */
struct frame {
	struct hdr h[4], c;
	bool env, auth;
};

/* Walk to the content element; false when the shape is another. */
static bool
find_content(const unsigned char *p, size_t n, struct frame *f)
{
	struct hdr t;
	size_t i;
	bool env;

	f->env = f->auth = false;
	if (!hdr_read(p, n, 0, &f->h[0]) || f->h[0].tag != 0x30 ||
	    !hdr_read(p, n, f->h[0].hlen, &t))
		return false;
	f->auth = oid_is(p, &t, OID_AUTHENV, sizeof(OID_AUTHENV));
	env = f->auth || oid_is(p, &t, OID_ENV, sizeof(OID_ENV));
	if (!env && !oid_is(p, &t, OID_SIGNED, sizeof(OID_SIGNED)))
		return false;
	i = t.at + t.hlen + t.len;
	if (!hdr_read(p, n, i, &f->h[1]) || f->h[1].tag != 0xa0 ||
	    !hdr_read(p, n, i + f->h[1].hlen, &f->h[2]) || f->h[2].tag != 0x30)
		return false;
	i = f->h[2].at + f->h[2].hlen;
	/* version; then digestAlgorithms, or originatorInfo and recipientInfos */
	if (!hdr_read(p, n, i, &t) || t.tag != 0x02 || !elem_end(p, n, i, 0, &i) ||
	    !hdr_read(p, n, i, &t))
		return false;
	if (env && t.tag == 0xa0 && (!elem_end(p, n, i, 0, &i) || !hdr_read(p, n, i, &t)))
		return false;
	if (t.tag != 0x31 || !elem_end(p, n, i, 0, &i) || !hdr_read(p, n, i, &f->h[3]) ||
	    f->h[3].tag != 0x30)
		return false;
	i = f->h[3].at + f->h[3].hlen;
	/* the content type; for an envelope its algorithm too */
	if (!hdr_read(p, n, i, &t) || t.tag != 0x06 || !elem_end(p, n, i, 0, &i))
		return false;
	if (env && (!hdr_read(p, n, i, &t) || t.tag != 0x30 || !elem_end(p, n, i, 0, &i)))
		return false;
	if (!hdr_read(p, n, i, &f->c))
		return false;
	f->env = env;
	return env ? f->c.tag == 0x80 || f->c.tag == 0xa0 : f->c.tag == 0xa0;
}

/* The ContentInfo of der with its content element (f->c up to cend)
 * replaced by repl[0..rlen) (nothing when rlen is 0), appended to out.
 * Each definite length shrinks by what leaves inside it: the content, and
 * the shorter headers nested in it. */
static sm_status
strip_build(const unsigned char *der, size_t n, const struct frame *f, size_t cend,
    const unsigned char *repl, size_t rlen, struct buf *out)
{
	size_t cut = cend - f->c.at - rlen, newlen[4], at;
	sm_status st = SM_OK;

	for (int k = 3; k >= 0; k--) {
		newlen[k] = f->h[k].indef ? 0 : f->h[k].len - cut;
		cut += f->h[k].hlen - hdr_size(&f->h[k], newlen[k]);
	}
	for (int k = 0; k < 4 && st == SM_OK; k++) {
		at = f->h[k].at + f->h[k].hlen;
		st = hdr_put(out, &f->h[k], newlen[k]);
		if (st == SM_OK)
			st = buf_append(out, der + at, (k < 3 ? f->h[k + 1].at : f->c.at) - at);
	}
	if (st == SM_OK && rlen > 0)
		st = buf_append(out, repl, rlen);
	if (st == SM_OK)
		st = buf_append(out, der + cend, n - cend);
	return st;
}

/* Find and check the content; *s: the string holding its octets. */
static bool
strip_find(const unsigned char *der, size_t n, struct frame *f, struct hdr *s, size_t *cend)
{
	size_t send;

	if (der == NULL || !find_content(der, n, f) || !elem_end(der, n, f->c.at, 0, cend))
		return false;
	/* signed-data: [0] EXPLICIT around the OCTET STRING; an envelope's
	 * [0] IMPLICIT is the string itself. */
	if (f->env)
		*s = f->c;
	else if (!hdr_read(der, n, f->c.at + f->c.hlen, s) || (s->tag != 0x04 && s->tag != 0x24))
		return false;
	if (!elem_end(der, n, s->at, 0, &send) || send > *cend)
		return false;
	/* definite enclosing lengths must hold the content */
	for (int k = 0; k < 4; k++)
		if (!f->h[k].indef && f->h[k].at + f->h[k].hlen + f->h[k].len < *cend)
			return false;
	return true;
}

sm_status
cmsstrip_content(unsigned char *der, size_t n, struct buf *shell, size_t *off, size_t *len)
{
	struct frame f;
	struct hdr s;
	size_t cend, send, keep = shell->len;
	sm_status st;

	if (!strip_find(der, n, &f, &s, &cend))
		return SM_ERR_PARSE;
	if ((st = strip_build(der, n, &f, cend, NULL, 0, shell)) == SM_OK &&
	    !string_gather(der, n, &s, len, &send))
		st = SM_ERR_PARSE;
	if (st != SM_OK) {
		shell->len = keep;
		return st;
	}
	*off = s.at + s.hlen;
	return SM_OK;
}

sm_status
cmsstrip_envelope(unsigned char *der, size_t n, size_t tail, struct buf *shell,
    struct buf *mini, size_t *off, size_t *len)
{
	struct frame f;
	struct hdr s, t = { 0, 0, 0, 0x80, false };
	struct buf repl = BUF_INIT;
	size_t cend, send, keep = shell->len, keepm = mini->len, k;
	sm_status st;

	if (!strip_find(der, n, &f, &s, &cend) || !f.env || f.auth)
		return SM_ERR_PARSE;
	if ((st = strip_build(der, n, &f, cend, NULL, 0, shell)) == SM_OK &&
	    !string_gather(der, n, &s, len, &send))
		st = SM_ERR_PARSE;
	if (st == SM_OK) {
		k = *len < tail ? *len : tail;
		*off = s.at + s.hlen;
		if ((st = hdr_put(&repl, &t, k)) == SM_OK &&
		    (st = buf_append(&repl, der + *off + *len - k, k)) == SM_OK)
			st = strip_build(der, n, &f, cend, repl.data, repl.len, mini);
	}
	buf_free(&repl);
	if (st != SM_OK) {
		shell->len = keep;
		mini->len = keepm;
	}
	return st;
}
