/*
 * mime_canon.c — RFC 8551 §3.1 canonical form of the entity to protect.
 */
#include "mime.h"
#include "mime_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Canonicalisation (RFC 8551 §3.1)                                     */
/* ------------------------------------------------------------------ */

/* Append p/n with every bare LF turned into CRLF. Runs of CRLF lines go
 * in one append: only a bare LF cuts the run. */
static sm_status
append_crlf(struct buf *out, const unsigned char *p, size_t n)
{
	const unsigned char *nl;
	size_t pos = 0, from = 0, i;

	while (pos < n && (nl = memchr(p + pos, '\n', n - pos)) != NULL) {
		i = (size_t)(nl - p);
		pos = i + 1;
		if (i > 0 && p[i - 1] == '\r')
			continue;
		if (buf_append(out, p + from, i - from) != SM_OK ||
		    buf_append(out, "\r\n", 2) != SM_OK)
			return SM_ERR_NOMEM;
		from = pos;
	}
	return buf_append(out, p + from, n - from);
}

/*
 * Per-entity verdicts computed once, bottom-up, indexed in pre-order, so
 * that deciding what to rewrite scans each byte once however deep the
 * tree is. sink: where the output goes in pieces (NULL: all stays in the
 * output buffer).
 */
struct canon {
	bool *clean;  /* the entity can be copied as it is */
	size_t *size; /* entities in its subtree, itself included */
	size_t i;     /* pre-order cursor */
	const struct mime_sink *sink;
};

/* Read this much of a large body between two read_done() calls. */
#define CANON_READ_STEP (4u << 20)

static void
canon_read_done(const struct mime_sink *sink)
{
	if (sink != NULL && sink->read_done != NULL)
		sink->read_done(sink->arg);
}

/* Does any of the 8 bytes in w have its top bit set, or equal zero or
 * CR? (The classic word-at-a-time tests; a hit is checked byte by byte.) */
#define W_ONES 0x0101010101010101ULL
#define W_HIGH 0x8080808080808080ULL

static inline bool
word_suspect(uint64_t w)
{
	uint64_t cr = w ^ (W_ONES * '\r');

	return ((w | ((w - W_ONES) & ~w) | ((cr - W_ONES) & ~cr)) & W_HIGH) != 0;
}

/* One line's bytes (no LF): no NUL, no 8-bit byte, no CR but a last one
 * (before the LF), at most LINE_HARD octets besides that CR. */
static bool
line_clean(const unsigned char *p, size_t n, bool lf_follows)
{
	size_t i = 0;

	if (lf_follows && n > 0 && p[n - 1] == '\r')
		n--;
	if (n > LINE_HARD)
		return false;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		if (word_suspect(w))
			break;
	}
	for (; i < n; i++)
		if (p[i] == 0 || p[i] >= 128 || p[i] == '\r')
			return false;
	return true;
}

/* 7-bit clean in the RFC 2045 §2.7 sense once LFs become CRLFs: no NUL,
 * no 8-bit byte, no bare CR, no line over 998 octets. Line by line
 * (memchr finds the LFs), each line a word at a time. */
static bool
bytes_clean(const struct mime_sink *sink, const unsigned char *p, size_t n)
{
	size_t pos = 0, step = CANON_READ_STEP;

	while (pos < n) {
		const unsigned char *nl = memchr(p + pos, '\n', n - pos);
		size_t end = nl ? (size_t)(nl - p) : n;

		if (!line_clean(p + pos, end - pos, nl != NULL))
			return false;
		pos = nl ? end + 1 : n;
		if (pos >= step) {
			canon_read_done(sink);
			step = pos + CANON_READ_STEP;
		}
	}
	return true;
}

static bool
headers_clean(const struct mime_headers *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (!mime_field_lines_ok(h->v[i].name, h->v[i].value))
			return false;
	return true;
}

static bool
cte_is_8bit(const char *cte)
{
	return strcmp(cte, "8bit") == 0 || strcmp(cte, "binary") == 0;
}

/* Hand what out holds to the sink once it is a chunk (all: whatever it
 * holds). Without a sink everything stays in out. */
static sm_status
canon_spill(const struct canon *c, struct buf *out, bool all)
{
	sm_status st;

	if (c->sink == NULL || out->len == 0 || (!all && out->len < MIME_CHUNK))
		return SM_OK;
	st = c->sink->write(c->sink->arg, out->data, out->len);
	buf_reset(out);
	return st;
}

/* append_crlf() in pieces, spilling as it goes. A piece never ends on a
 * CR, so no CRLF is cut in two. */
static sm_status
canon_crlf(const struct canon *c, struct buf *out, const unsigned char *p, size_t n)
{
	size_t done = 0;
	sm_status st;

	while (n > 0) {
		size_t k = n < MIME_CHUNK ? n : MIME_CHUNK;

		if (k < n && p[k - 1] == '\r')
			k++;
		if ((st = append_crlf(out, p, k)) != SM_OK || (st = canon_spill(c, out, false)) != SM_OK)
			return st;
		p += k;
		n -= k;
		if ((done += k) >= CANON_READ_STEP) {
			canon_read_done(c->sink);
			done = 0;
		}
	}
	return SM_OK;
}

static size_t
tree_count(const struct mime_entity *e)
{
	size_t k, n = 1;

	for (k = 0; k < e->nparts; k++)
		n += tree_count(e->parts[k]);
	return n;
}

/* The multipart body outside the parts: preamble, delimiter lines and
 * their padding, epilogue. */
static bool
gaps_clean(const struct mime_entity *e)
{
	const unsigned char *from = e->body, *to;
	size_t k;

	for (k = 0; k <= e->nparts; k++) {
		to = k < e->nparts ? e->parts[k]->raw : e->body + e->body_len;
		if (!bytes_clean(NULL, from, (size_t)(to - from)))
			return false;
		if (k < e->nparts)
			from = e->parts[k]->raw + e->parts[k]->raw_len;
	}
	return true;
}

static bool
canon_mark(const struct mime_entity *e, struct canon *c)
{
	size_t me = c->i++, k;
	bool ok = headers_clean(&e->hdrs) && !cte_is_8bit(e->cte);

	if (e->nparts > 0) {
		/* Visit every child even after a failure: the pre-order
		 * indices must match the second walk. */
		for (k = 0; k < e->nparts; k++)
			ok = canon_mark(e->parts[k], c) && ok;
		if (mime_ctype_is(&e->ct, "multipart", NULL))
			ok = ok && gaps_clean(e);
	} else {
		ok = ok && bytes_clean(c->sink, e->body, e->body_len);
	}
	c->clean[me] = ok;
	c->size[me] = c->i - me;
	return ok;
}

/* Write e's header fields, replacing Content-Transfer-Encoding by cte
 * when cte is not NULL. */
static sm_status
emit_headers(struct buf *out, const struct mime_headers *h, const char *cte)
{
	bool done = false;
	size_t i;
	sm_status st;

	for (i = 0; i < h->n; i++) {
		if (cte != NULL &&
		    mime_ascii_eq(h->v[i].name, "Content-Transfer-Encoding")) {
			if (!done &&
			    (st = mime_emit_field(out, h->v[i].name, cte, false)) !=
			        SM_OK)
				return st;
			done = true;
			continue;
		}
		if ((st = mime_emit_field(out, h->v[i].name, h->v[i].value,
		         false)) != SM_OK)
			return st;
	}
	if (cte != NULL && !done)
		return mime_emit_field(out, "Content-Transfer-Encoding", cte, false);
	return SM_OK;
}

/*
 * How a leaf that is not 7-bit clean is re-encoded. 7bit and 8bit data is
 * line-oriented by definition (RFC 2045 §2.7-2.8), so its LFs are line
 * ends and become CRLF before encoding; binary data is taken byte for byte
 * unless it is text, whose canonical form is CRLF (RFC 8551 §3.1.1).
 */
struct leaf_plan {
	enum { LEAF_AS_IS, LEAF_B64, LEAF_QP } decode;
	bool fix_eol; /* LFs are line ends that must become CRLF */
	bool qp;      /* encode quoted-printable, else base64 */
};

static sm_status
leaf_plan(const struct mime_entity *e, struct leaf_plan *lp)
{
	bool is_text = mime_ctype_is(&e->ct, "text", NULL);

	if (strcmp(e->cte, "base64") == 0) {
		/* Repair only: base64 stays base64, bytes untouched. */
		*lp = (struct leaf_plan){ LEAF_B64, false, false };
	} else if (strcmp(e->cte, "quoted-printable") == 0) {
		*lp = (struct leaf_plan){ LEAF_QP, is_text, true };
	} else if (mime_ctype_is(&e->ct, "message", NULL)) {
		/* RFC 2046 §5.2.1 allows message/rfc822 no encoding but
		 * 7bit, 8bit and binary; one we could not parse into
		 * parts cannot be repaired inside either. */
		return SM_ERR_UNSUPPORTED;
	} else if (mime_is_identity_cte(e->cte)) {
		*lp = (struct leaf_plan){ LEAF_AS_IS, is_text || strcmp(e->cte, "binary") != 0,
		    is_text };
	} else {
		return SM_ERR_UNSUPPORTED;
	}
	return SM_OK;
}

/* The next piece of d to encode: quoted-printable is cut only after a
 * line end (each hard line encodes on its own), and only when line ends
 * become CRLF; base64 anywhere (mime_b64w carries the rest). */
static size_t
leaf_piece(const struct leaf_plan *lp, const unsigned char *d, size_t dn)
{
	const unsigned char *nl;

	if (dn <= MIME_CHUNK)
		return dn;
	if (lp->qp && !lp->fix_eol)
		return dn;
	if (!lp->qp)
		return d[MIME_CHUNK - 1] == '\r' ? MIME_CHUNK + 1 : MIME_CHUNK;
	nl = memchr(d + MIME_CHUNK, '\n', dn - MIME_CHUNK);
	return nl ? (size_t)(nl - d) + 1 : dn;
}

/* An adapter: base64 text from mime_b64w goes into the staged output. */
struct canon_out {
	const struct canon *c;
	struct buf *out;
};

static sm_status
canon_out_write(void *arg, const unsigned char *p, size_t n)
{
	struct canon_out *co = arg;

	if (buf_append(co->out, p, n) != SM_OK)
		return SM_ERR_NOMEM;
	return canon_spill(co->c, co->out, false);
}

/* Encode d piece by piece after the plan into out. */
static sm_status
leaf_encode(const struct canon *c, const struct leaf_plan *lp, const unsigned char *d,
    size_t dn, struct buf *out)
{
	struct canon_out co = { c, out };
	struct mime_sink s = { canon_out_write, NULL, &co };
	struct mime_b64w w;
	struct buf norm = BUF_INIT;
	size_t done = 0;
	sm_status st = SM_OK;

	mime_b64w_init(&w, &s);
	while (dn > 0 && st == SM_OK) {
		size_t k = leaf_piece(lp, d, dn);
		const unsigned char *q = d;
		size_t qn = k;

		buf_reset(&norm);
		if (lp->fix_eol) {
			if ((st = append_crlf(&norm, d, k)) != SM_OK)
				break;
			q = norm.data;
			qn = norm.len;
		}
		st = lp->qp ? mime_qp_encode(q, qn, out) : mime_b64w_write(&w, q, qn);
		if (st == SM_OK)
			st = canon_spill(c, out, false);
		d += k;
		dn -= k;
		if ((done += k) >= CANON_READ_STEP) {
			canon_read_done(c->sink);
			done = 0;
		}
	}
	if (st == SM_OK && !lp->qp)
		st = mime_b64w_finish(&w);
	mime_b64w_free(&w);
	buf_free(&norm);
	return st;
}

/* A leaf that is not 7-bit clean, re-encoded: headers with the new
 * Content-Transfer-Encoding, then the body in pieces. */
static sm_status
canon_leaf(const struct mime_entity *e, struct canon *c, struct buf *out)
{
	struct leaf_plan lp;
	struct buf dec = BUF_INIT;
	const unsigned char *d = e->body;
	size_t dn = e->body_len;
	sm_status st;

	if ((st = leaf_plan(e, &lp)) != SM_OK)
		return st;
	if (lp.decode != LEAF_AS_IS) {
		st = lp.decode == LEAF_B64 ? mime_b64_decode(d, dn, &dec) :
		    mime_qp_decode(d, dn, &dec);
		if (st != SM_OK)
			goto out;
		d = dec.data ? dec.data : (const unsigned char *)"";
		dn = dec.len;
	}
	if ((st = emit_headers(out, &e->hdrs, lp.qp ? "quoted-printable" : "base64")) != SM_OK ||
	    (st = buf_append(out, "\r\n", 2)) != SM_OK)
		goto out;
	st = leaf_encode(c, &lp, d, dn, out);
out:
	buf_free(&dec);
	return st;
}

static sm_status canon_entity(const struct mime_entity *e, struct canon *c, struct buf *out);

/* Rebuild a multipart body: the parts canonical, delimiters without
 * padding, an unclean preamble or epilogue dropped. */
static sm_status
canon_multipart(const struct mime_entity *e, struct canon *c, struct buf *out)
{
	const char *b = mime_ctype_param(&e->ct, "boundary");
	sm_status st;

	if (e->preamble_len > 0 && bytes_clean(NULL, e->preamble, e->preamble_len)) {
		if ((st = canon_crlf(c, out, e->preamble, e->preamble_len)) != SM_OK ||
		    (st = buf_append(out, "\r\n", 2)) != SM_OK)
			return st;
	}
	for (size_t k = 0; k < e->nparts; k++) {
		if ((st = buf_printf(out, "--%s\r\n", b)) != SM_OK ||
		    (st = canon_entity(e->parts[k], c, out)) != SM_OK ||
		    (st = buf_append(out, "\r\n", 2)) != SM_OK)
			return st;
	}
	if ((st = buf_printf(out, "--%s--", b)) != SM_OK)
		return st;
	/* A nested multipart ends right after its close delimiter (the
	 * line break belongs to the enclosing delimiter); keep it so, or
	 * every rebuild would add an empty epilogue line. */
	if (e->epilogue_len == 0 &&
	    (e->body_len == 0 || e->body[e->body_len - 1] != '\n'))
		return SM_OK;
	if ((st = buf_append(out, "\r\n", 2)) != SM_OK)
		return st;
	if (e->epilogue_len > 0 && bytes_clean(NULL, e->epilogue, e->epilogue_len))
		return canon_crlf(c, out, e->epilogue, e->epilogue_len);
	return SM_OK;
}

static sm_status
canon_entity(const struct mime_entity *e, struct canon *c, struct buf *out)
{
	const char *cte = NULL;
	size_t me = c->i++;
	sm_status st;

	if (c->clean[me]) {
		c->i = me + c->size[me];
		if (e->raw != NULL)
			return canon_crlf(c, out, e->raw, e->raw_len);
		/* The root: its headers were given separately. */
		if ((st = emit_headers(out, &e->hdrs, NULL)) != SM_OK ||
		    (st = buf_append(out, "\r\n", 2)) != SM_OK)
			return st;
		return canon_crlf(c, out, e->body, e->body_len);
	}
	if (e->nparts == 0) {
		if (cte_is_8bit(e->cte) || !bytes_clean(NULL, e->body, e->body_len))
			return canon_leaf(e, c, out);
		if ((st = emit_headers(out, &e->hdrs, NULL)) != SM_OK ||
		    (st = buf_append(out, "\r\n", 2)) != SM_OK)
			return st;
		return canon_crlf(c, out, e->body, e->body_len);
	}
	/* A container: once its contents are 7bit, so is it. */
	if (cte_is_8bit(e->cte))
		cte = "7bit";
	if ((st = emit_headers(out, &e->hdrs, cte)) != SM_OK ||
	    (st = buf_append(out, "\r\n", 2)) != SM_OK)
		return st;
	if (!mime_ctype_is(&e->ct, "multipart", NULL))
		return canon_entity(e->parts[0], c, out);
	return canon_multipart(e, c, out);
}

/* Mark, then write the tree's canonical form into out (and the sink). */
static sm_status
canon_tree(const struct mime_entity *e, const struct mime_sink *sink, struct buf *out)
{
	struct canon c = { NULL, NULL, 0, sink };
	size_t count = tree_count(e);
	sm_status st = SM_ERR_NOMEM;

	c.clean = calloc(count, sizeof(*c.clean));
	c.size = calloc(count, sizeof(*c.size));
	if (c.clean == NULL || c.size == NULL)
		goto out;
	canon_mark(e, &c);
	canon_read_done(sink);
	c.i = 0;
	if ((st = canon_entity(e, &c, out)) == SM_OK)
		st = canon_spill(&c, out, true);
out:
	free(c.clean);
	free(c.size);
	return st;
}

sm_status
mime_canonicalize(const struct mime_headers *content_hdrs,
    const unsigned char *body, size_t n, const struct mime_limits *lim,
    struct buf *out)
{
	struct mime_entity *e = NULL;
	size_t start;
	sm_status st;

	if (content_hdrs == NULL || out == NULL)
		return SM_ERR_ARG;
	start = out->len;
	if ((st = mime_parse_message(content_hdrs, body, n, lim, &e)) == SM_OK)
		st = canon_tree(e, NULL, out);
	if (st != SM_OK) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	mime_entity_free(e);
	return st;
}

sm_status
mime_canonicalize_tree(struct mime_entity *root, const struct mime_headers *content_hdrs,
    const struct mime_sink *sink)
{
	struct mime_headers saved;
	struct buf out = BUF_INIT;
	sm_status st;

	if (root == NULL || content_hdrs == NULL || sink == NULL || sink->write == NULL)
		return SM_ERR_ARG;
	/* The root's fields are written from root->hdrs: lend it the given
	 * ones for the walk (a shallow swap, undone below). */
	saved = root->hdrs;
	root->hdrs = *content_hdrs;
	st = canon_tree(root, sink, &out);
	root->hdrs = saved;
	buf_free(&out);
	return st;
}
