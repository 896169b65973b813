/*
 * cmsscan.c — counting SignedData members in raw BER (see cmsscan.h).
 */
#include "cmsscan.h"

#include <stdbool.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

/* Deeper BER than this is refused; real CMS nests a dozen levels. */
#define CMSSCAN_MAX_DEPTH 48

/* One tag-length header. */
struct tlv {
	unsigned cls;      /* 0 universal, 2 context-specific, ... */
	bool cons;         /* constructed */
	unsigned long tag;
	bool indef;        /* indefinite length: contents end in 00 00 */
	size_t hdr;        /* header bytes */
	size_t len;        /* contents bytes (definite only) */
};

/* Read the header at p (n bytes available). A definite length must fit. */
static bool
tlv_read(const unsigned char *p, size_t n, struct tlv *t)
{
	size_t i = 1, k;
	unsigned char l;

	if (n < 2)
		return false;
	t->cls = p[0] >> 6;
	t->cons = (p[0] & 0x20) != 0;
	t->tag = p[0] & 0x1f;
	if (t->tag == 0x1f) {
		t->tag = 0;
		do {
			if (i >= n || t->tag > (ULONG_MAX >> 8))
				return false;
			t->tag = (t->tag << 7) | (p[i] & 0x7f);
		} while (p[i++] & 0x80);
	}
	if (i >= n)
		return false;
	l = p[i++];
	t->indef = l == 0x80;
	t->len = 0;
	if (t->indef) {
		if (!t->cons)
			return false;
	} else if (l < 0x80) {
		t->len = l;
	} else {
		k = l & 0x7f;
		if (k > sizeof(size_t) || k > n - i)
			return false;
		while (k-- > 0) {
			if (t->len > (SIZE_MAX >> 8))
				return false;
			t->len = (t->len << 8) | p[i++];
		}
	}
	t->hdr = i;
	return t->indef || t->len <= n - i;
}

/* The constructed value being walked: its contents start at p; n bytes
 * are its contents (definite) or all that is left (indefinite). */
struct walk {
	const unsigned char *p;
	size_t n, pos;
	bool indef;
	int depth;
};

static bool skip(const unsigned char *p, size_t n, int depth, size_t *size);

/* Next member: 1 with *t and its start in *at, 0 at the end, -1 when
 * malformed. The member is not consumed: call walk_past() next. */
static int
walk_next(struct walk *w, struct tlv *t, const unsigned char **at)
{
	if (w->indef) {
		if (w->n - w->pos >= 2 && w->p[w->pos] == 0 && w->p[w->pos + 1] == 0)
			return 0;
	} else if (w->pos == w->n) {
		return 0;
	}
	if (!tlv_read(w->p + w->pos, w->n - w->pos, t))
		return -1;
	*at = w->p + w->pos;
	return 1;
}

static bool
walk_past(struct walk *w)
{
	size_t size;

	if (!skip(w->p + w->pos, w->n - w->pos, w->depth + 1, &size))
		return false;
	w->pos += size;
	return true;
}

/* Enter the constructed value at p, whose header is t. */
static bool
walk_enter(struct walk *w, const unsigned char *p, size_t n, const struct tlv *t, int depth)
{
	if (!t->cons || depth > CMSSCAN_MAX_DEPTH)
		return false;
	w->p = p + t->hdr;
	w->n = t->indef ? n - t->hdr : t->len;
	w->pos = 0;
	w->indef = t->indef;
	w->depth = depth;
	return true;
}

/* Size of the whole value at p (header, contents, end-of-contents). */
static bool
skip(const unsigned char *p, size_t n, int depth, size_t *size)
{
	struct tlv t, m;
	struct walk w;
	const unsigned char *at;
	int r;

	if (!tlv_read(p, n, &t))
		return false;
	if (!t.indef) {
		*size = t.hdr + t.len;
		return true;
	}
	if (!walk_enter(&w, p, n, &t, depth))
		return false;
	while ((r = walk_next(&w, &m, &at)) == 1)
		if (!walk_past(&w))
			return false;
	if (r < 0)
		return false;
	*size = t.hdr + w.pos + 2;
	return true;
}

/* Count the members of the constructed value at p, stopping at max + 1. */
static sm_status
count(const unsigned char *p, size_t n, const struct tlv *t, int depth, size_t max, size_t *out)
{
	struct walk w;
	struct tlv m;
	const unsigned char *at;
	int r;

	*out = 0;
	if (!walk_enter(&w, p, n, t, depth))
		return SM_ERR_PARSE;
	while ((r = walk_next(&w, &m, &at)) == 1) {
		if (++*out > max)
			return SM_ERR_LIMIT;
		if (!walk_past(&w))
			return SM_ERR_PARSE;
	}
	return r == 0 ? SM_OK : SM_ERR_PARSE;
}

/* id-signedData, 1.2.840.113549.1.7.2, as a DER OID value. */
static const unsigned char oid_signed[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02 };

/* Step into the only or first member of the value at p, which must be
 * constructed with the given class and tag. */
static bool
enter_member(struct walk *w, const unsigned char **at, struct tlv *t, unsigned cls,
    unsigned long tag)
{
	return walk_next(w, t, at) == 1 && t->cls == cls && t->tag == tag && t->cons;
}

sm_status
cmsscan_signed(const unsigned char *der, size_t n, const struct cmsscan_limits *lim,
    struct cmsscan_counts *c)
{
	static const struct cmsscan_limits none = { SIZE_MAX - 1, SIZE_MAX - 1, SIZE_MAX - 1 };
	struct walk ci, sd, sdseq;
	struct tlv t;
	const unsigned char *at;
	sm_status st;

	memset(c, 0, sizeof(*c));
	if (lim == NULL)
		lim = &none;
	/* ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT } */
	if (der == NULL || !tlv_read(der, n, &t) || t.cls != 0 || t.tag != 16 ||
	    !walk_enter(&ci, der, n, &t, 0))
		return SM_ERR_PARSE;
	if (walk_next(&ci, &t, &at) != 1 || t.cls != 0 || t.tag != 6 || t.indef ||
	    t.len != sizeof(oid_signed) || memcmp(at + t.hdr, oid_signed, t.len) != 0 ||
	    !walk_past(&ci))
		return SM_ERR_PARSE;
	if (!enter_member(&ci, &at, &t, 2, 0) ||
	    !walk_enter(&sd, at, ci.n - (size_t)(at - ci.p), &t, 1))
		return SM_ERR_PARSE;
	/* SignedData ::= SEQUENCE { version, digestAlgorithms SET, encap
	 * SEQUENCE, certificates [0] OPTIONAL, crls [1] OPTIONAL, signerInfos
	 * SET } */
	if (!enter_member(&sd, &at, &t, 0, 16) ||
	    !walk_enter(&sdseq, at, sd.n - (size_t)(at - sd.p), &t, 2))
		return SM_ERR_PARSE;
	if (walk_next(&sdseq, &t, &at) != 1 || t.cls != 0 || t.tag != 2 || !walk_past(&sdseq))
		return SM_ERR_PARSE;
	if (walk_next(&sdseq, &t, &at) != 1 || t.cls != 0 || t.tag != 17)
		return SM_ERR_PARSE;
	st = count(at, sdseq.n - (size_t)(at - sdseq.p), &t, 3, lim->max_digests, &c->ndigests);
	if (st == SM_ERR_LIMIT)
		c->over = "digestAlgorithms";
	if (st != SM_OK || !walk_past(&sdseq))
		return st != SM_OK ? st : SM_ERR_PARSE;
	if (walk_next(&sdseq, &t, &at) != 1 || t.cls != 0 || t.tag != 16 || !walk_past(&sdseq))
		return SM_ERR_PARSE;
	if (walk_next(&sdseq, &t, &at) != 1)
		return SM_ERR_PARSE;
	if (t.cls == 2 && t.tag == 0) {
		st = count(at, sdseq.n - (size_t)(at - sdseq.p), &t, 3, lim->max_certs, &c->ncerts);
		if (st == SM_ERR_LIMIT)
			c->over = "certificates";
		if (st != SM_OK || !walk_past(&sdseq))
			return st != SM_OK ? st : SM_ERR_PARSE;
		if (walk_next(&sdseq, &t, &at) != 1)
			return SM_ERR_PARSE;
	}
	if (t.cls == 2 && t.tag == 1) {
		if (!walk_past(&sdseq) || walk_next(&sdseq, &t, &at) != 1)
			return SM_ERR_PARSE;
	}
	if (t.cls != 0 || t.tag != 17)
		return SM_ERR_PARSE;
	st = count(at, sdseq.n - (size_t)(at - sdseq.p), &t, 3, lim->max_signers, &c->nsigners);
	if (st == SM_ERR_LIMIT)
		c->over = "SignerInfos";
	return st;
}
