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

/* Append p/n with every bare LF turned into CRLF. */
static sm_status
append_crlf(struct buf *out, const unsigned char *p, size_t n)
{
	const unsigned char *nl;
	size_t pos = 0, i;

	while (pos < n && (nl = memchr(p + pos, '\n', n - pos)) != NULL) {
		i = (size_t)(nl - p);
		if (i > 0 && p[i - 1] == '\r') {
			if (buf_append(out, p + pos, i + 1 - pos) != SM_OK)
				return SM_ERR_NOMEM;
		} else if (buf_append(out, p + pos, i - pos) != SM_OK ||
		           buf_append(out, "\r\n", 2) != SM_OK) {
			return SM_ERR_NOMEM;
		}
		pos = i + 1;
	}
	return buf_append(out, p + pos, n - pos);
}

/* 7-bit clean in the RFC 2045 §2.7 sense once LFs become CRLFs: no NUL,
 * no 8-bit byte, no bare CR, no line over 998 octets. */
static bool
bytes_clean(const unsigned char *p, size_t n)
{
	size_t i, col = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (c == '\n') {
			col = 0;
		} else if (c == '\r') {
			if (i + 1 == n || p[i + 1] != '\n')
				return false;
		} else if (c == 0 || c >= 128 || ++col > LINE_HARD) {
			return false;
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

/*
 * Per-entity verdicts computed once, bottom-up, indexed in pre-order, so
 * that deciding what to rewrite scans each byte once however deep the
 * tree is.
 */
struct canon {
	bool *clean;  /* the entity can be copied as it is */
	size_t *size; /* entities in its subtree, itself included */
	size_t i;     /* pre-order cursor */
};

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
		if (!bytes_clean(from, (size_t)(to - from)))
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
		ok = ok && bytes_clean(e->body, e->body_len);
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
 * Re-encode a leaf that is not 7-bit clean into enc; *cte gets the new
 * encoding. 7bit and 8bit data is line-oriented by definition (RFC 2045
 * §2.7-2.8), so its LFs are line ends and become CRLF before encoding;
 * binary data is taken byte for byte unless it is text, whose canonical
 * form is CRLF (RFC 8551 §3.1.1).
 */
static sm_status
reencode_leaf(const struct mime_entity *e, struct buf *enc, const char **cte)
{
	struct buf dec = BUF_INIT, norm = BUF_INIT;
	const unsigned char *d = e->body;
	size_t dn = e->body_len;
	bool is_text = mime_ctype_is(&e->ct, "text", NULL);
	bool fix_eol; /* LFs are line ends that must become CRLF */
	bool qp;      /* encode quoted-printable, else base64 */
	sm_status st;

	if (strcmp(e->cte, "base64") == 0) {
		/* Repair only: base64 stays base64, bytes untouched. */
		st = mime_b64_decode(d, dn, &dec);
		fix_eol = false;
		qp = false;
	} else if (strcmp(e->cte, "quoted-printable") == 0) {
		st = mime_qp_decode(d, dn, &dec);
		fix_eol = is_text;
		qp = true;
	} else if (mime_ctype_is(&e->ct, "message", NULL)) {
		/* RFC 2046 §5.2.1 allows message/rfc822 no encoding but
		 * 7bit, 8bit and binary; one we could not parse into
		 * parts cannot be repaired inside either. */
		st = SM_ERR_UNSUPPORTED;
	} else if (mime_is_identity_cte(e->cte)) {
		st = SM_OK;
		fix_eol = is_text || strcmp(e->cte, "binary") != 0;
		qp = is_text;
	} else {
		st = SM_ERR_UNSUPPORTED;
	}
	if (st != SM_OK)
		goto out;
	if (dec.data != NULL) {
		d = dec.data;
		dn = dec.len;
	}
	if (fix_eol) {
		if ((st = append_crlf(&norm, d, dn)) != SM_OK)
			goto out;
		d = norm.data;
		dn = norm.len;
	}
	*cte = qp ? "quoted-printable" : "base64";
	st = qp ? mime_qp_encode(d, dn, enc) : mime_b64_encode(d, dn, enc);
out:
	buf_free(&dec);
	buf_free(&norm);
	return st;
}

static sm_status
canon_entity(const struct mime_entity *e, struct canon *c, struct buf *out)
{
	struct buf enc = BUF_INIT;
	const char *cte = NULL, *b;
	size_t me = c->i++, k;
	sm_status st;

	if (c->clean[me]) {
		c->i = me + c->size[me];
		if (e->raw != NULL)
			return append_crlf(out, e->raw, e->raw_len);
		/* The root: its headers were given separately. */
		if ((st = emit_headers(out, &e->hdrs, NULL)) != SM_OK ||
		    (st = buf_append(out, "\r\n", 2)) != SM_OK)
			return st;
		return append_crlf(out, e->body, e->body_len);
	}
	if (e->nparts == 0) {
		if (cte_is_8bit(e->cte) || !bytes_clean(e->body, e->body_len)) {
			if ((st = reencode_leaf(e, &enc, &cte)) != SM_OK)
				goto out;
		}
		if ((st = emit_headers(out, &e->hdrs, cte)) != SM_OK ||
		    (st = buf_append(out, "\r\n", 2)) != SM_OK)
			goto out;
		st = cte ? buf_append(out, enc.data, enc.len)
		         : append_crlf(out, e->body, e->body_len);
		goto out;
	}
	/* A container: once its contents are 7bit, so is it. */
	if (cte_is_8bit(e->cte))
		cte = "7bit";
	if ((st = emit_headers(out, &e->hdrs, cte)) != SM_OK ||
	    (st = buf_append(out, "\r\n", 2)) != SM_OK)
		goto out;
	if (!mime_ctype_is(&e->ct, "multipart", NULL)) {
		st = canon_entity(e->parts[0], c, out);
		goto out;
	}
	/* Rebuild the multipart body: the parts canonical, delimiters
	 * without padding, an unclean preamble or epilogue dropped. */
	b = mime_ctype_param(&e->ct, "boundary");
	if (e->preamble_len > 0 && bytes_clean(e->preamble, e->preamble_len)) {
		if ((st = append_crlf(out, e->preamble, e->preamble_len)) !=
		        SM_OK ||
		    (st = buf_append(out, "\r\n", 2)) != SM_OK)
			goto out;
	}
	for (k = 0; k < e->nparts; k++) {
		if ((st = buf_printf(out, "--%s\r\n", b)) != SM_OK ||
		    (st = canon_entity(e->parts[k], c, out)) != SM_OK ||
		    (st = buf_append(out, "\r\n", 2)) != SM_OK)
			goto out;
	}
	if ((st = buf_printf(out, "--%s--", b)) != SM_OK)
		goto out;
	/* A nested multipart ends right after its close delimiter (the
	 * line break belongs to the enclosing delimiter); keep it so, or
	 * every rebuild would add an empty epilogue line. */
	if (e->epilogue_len == 0 &&
	    (e->body_len == 0 || e->body[e->body_len - 1] != '\n'))
		goto out;
	if ((st = buf_append(out, "\r\n", 2)) != SM_OK)
		goto out;
	if (e->epilogue_len > 0 && bytes_clean(e->epilogue, e->epilogue_len))
		st = append_crlf(out, e->epilogue, e->epilogue_len);
out:
	buf_free(&enc);
	return st;
}

sm_status
mime_canonicalize(const struct mime_headers *content_hdrs,
    const unsigned char *body, size_t n, const struct mime_limits *lim,
    struct buf *out)
{
	struct mime_entity *e = NULL;
	struct canon c = { NULL, NULL, 0 };
	size_t start, count;
	sm_status st;

	if (content_hdrs == NULL || out == NULL)
		return SM_ERR_ARG;
	start = out->len;
	if ((st = mime_parse_message(content_hdrs, body, n, lim, &e)) != SM_OK)
		goto out;
	count = tree_count(e);
	st = SM_ERR_NOMEM;
	c.clean = calloc(count, sizeof(*c.clean));
	c.size = calloc(count, sizeof(*c.size));
	if (c.clean == NULL || c.size == NULL)
		goto out;
	canon_mark(e, &c);
	c.i = 0;
	st = canon_entity(e, &c, out);
out:
	if (st != SM_OK) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	free(c.clean);
	free(c.size);
	mime_entity_free(e);
	return st;
}
