/*
 * mime_parse.c — the entity parser and S/MIME detection.
 *
 * The parser works on a read-only view of the message (the caller may
 * have mmap'd a 50 MB spool file): entities record pointers into it and
 * bodies are never copied. Every bound in struct mime_limits is checked
 * before the excess is allocated, and every malformed construct that
 * could make two readers disagree about where a part starts or ends is an
 * error, because a detached signature covers exactly those bytes.
 */
#include "mime.h"
#include "mime_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------------ */
/* Entity parser                                                        */
/* ------------------------------------------------------------------ */

struct pctx {
	const struct mime_limits *lim;
	unsigned max_depth;
	size_t nentities; /* entities created so far, whole tree */
	size_t nheaders;  /* header fields stored so far, whole tree */
	const struct mime_sink *pager; /* read_done() while scanning, or NULL */
};

/* Scanning this much of a large body earns a read_done() call. */
#define PARSE_READ_STEP (4u << 20)

/* The boundaries of the enclosing multiparts, innermost first. */
struct bframe {
	const char *b;
	size_t len;
	const struct bframe *up;
};

static sm_status parse_entity(struct pctx *c, const unsigned char *p,
    size_t n, const struct mime_headers *given, bool digest_child,
    unsigned depth, const struct bframe *up, struct mime_entity **out);

/* Store the field p[start..end) whose colon is at p[colon]. */
static sm_status
field_add(struct pctx *c, struct mime_headers *h, const unsigned char *p,
    size_t start, size_t colon, size_t end)
{
	size_t nlen = colon - start;
	char *name = NULL, *value = NULL;
	sm_status st = SM_ERR_PARSE;

	/* "Subject :" is obsolete syntax (RFC 5322 §4.5) but harmless. */
	while (nlen > 0 && mime_is_wsp(p[start + nlen - 1]))
		nlen--;
	if (!mime_valid_field_name((const char *)p + start, nlen))
		goto out;
	st = SM_ERR_LIMIT;
	if (h->n >= c->lim->max_headers ||
	    c->nheaders >= c->lim->max_total_headers)
		goto out;
	st = SM_ERR_NOMEM;
	name = mime_xstrndup(p + start, nlen);
	value = mime_xstrndup(p + colon + 1, end - colon - 1);
	if (name == NULL || value == NULL)
		goto out;
	if ((st = mime_headers_push(h, name, value)) != SM_OK)
		goto out;
	name = value = NULL;
	c->nheaders++;
out:
	free(name);
	free(value);
	return st;
}

/*
 * Parse the header section at the start of p/n into h; *body_off gets the
 * offset just past the blank line, or n when the section runs to the end.
 * Lines end in LF or CRLF. Lengths are checked while scanning, so a 1 MB
 * header costs one scan and no allocation.
 */
static sm_status
parse_headers(struct pctx *c, const unsigned char *p, size_t n,
    struct mime_headers *h, size_t *body_off)
{
	size_t pos = 0, fstart = SIZE_MAX, fcolon = 0, fend = 0;
	size_t eol, next, end;
	const unsigned char *nl, *colon;
	sm_status st;

	*body_off = n;
	/* An mbox envelope line ("From addr date", or ">From ..." once
	 * escaped) heads messages saved from mailboxes and then forwarded
	 * as message/rfc822. Field names hold no space, so it is never a
	 * header: skip it. */
	if ((n >= 5 && memcmp(p, "From ", 5) == 0) ||
	    (n >= 6 && memcmp(p, ">From ", 6) == 0)) {
		nl = memchr(p, '\n', n);
		pos = nl ? (size_t)(nl - p) + 1 : n;
	}
	while (pos < n) {
		nl = memchr(p + pos, '\n', n - pos);
		eol = nl ? (size_t)(nl - p) : n;
		next = nl ? eol + 1 : n;
		end = eol;
		/* Only CR LF ends a line: a CR at the very end of the section
		 * (a part's last header line, whose CRLF belongs to the next
		 * delimiter) is a bare CR and is refused below. */
		if (nl != NULL && end > pos && p[end - 1] == '\r')
			end--;
		if (end == pos) { /* the blank line */
			*body_off = next;
			break;
		}
		/* NULs and bare CRs: readers disagree on them, so refuse. */
		if (memchr(p + pos, '\0', end - pos) != NULL ||
		    memchr(p + pos, '\r', end - pos) != NULL)
			return SM_ERR_PARSE;
		if (mime_is_wsp(p[pos])) {
			if (fstart == SIZE_MAX)
				return SM_ERR_PARSE; /* continuation of nothing */
		} else {
			if (fstart != SIZE_MAX &&
			    (st = field_add(c, h, p, fstart, fcolon, fend)) !=
			        SM_OK)
				return st;
			colon = memchr(p + pos, ':', end - pos);
			if (colon == NULL)
				return SM_ERR_PARSE;
			fstart = pos;
			fcolon = (size_t)(colon - p);
		}
		fend = end;
		if (fend - fstart > c->lim->max_header_len)
			return SM_ERR_LIMIT;
		pos = next;
	}
	if (fstart != SIZE_MAX)
		return field_add(c, h, p, fstart, fcolon, fend);
	return SM_OK;
}

/* Copy headers that arrived one by one, applying the same limits. */
static sm_status
adopt_headers(struct pctx *c, struct mime_headers *dst,
    const struct mime_headers *src)
{
	size_t i;

	if (src->n > c->lim->max_headers || src->n > c->lim->max_total_headers)
		return SM_ERR_LIMIT;
	for (i = 0; i < src->n; i++)
		if (strlen(src->v[i].name) + 1 + strlen(src->v[i].value) >
		    c->lim->max_header_len)
			return SM_ERR_LIMIT;
	c->nheaders += src->n;
	return mime_headers_copy(dst, src);
}

/* Fill e->ct and e->cte from e->hdrs. */
static sm_status
entity_types(struct mime_entity *e, bool digest_child)
{
	const char *v;
	char *u = NULL;
	size_t k;
	sm_status st = SM_ERR_PARSE;

	/* Two Content-Types, or two encodings, mean two readers may pick
	 * different ones. */
	if (mime_headers_count(&e->hdrs, "Content-Type") > 1 ||
	    mime_headers_count(&e->hdrs, "Content-Transfer-Encoding") > 1)
		goto out;
	v = mime_headers_get(&e->hdrs, "Content-Type");
	if (v != NULL) {
		st = SM_ERR_NOMEM;
		if ((u = mime_header_unfold(v)) == NULL)
			goto out;
		if ((st = mime_ctype_parse(u, &e->ct)) != SM_OK)
			goto out;
		free(u);
		u = NULL;
	} else {
		/* RFC 2045 §5.2 default; RFC 2046 §5.1.5 for digests. */
		st = mime_ctype_parse(digest_child ? "message/rfc822"
		                                   : "text/plain; charset=us-ascii",
		    &e->ct);
		if (st != SM_OK)
			goto out;
	}
	v = mime_headers_get(&e->hdrs, "Content-Transfer-Encoding");
	st = SM_ERR_NOMEM;
	if ((u = mime_header_unfold(v ? v : "")) == NULL)
		goto out;
	k = strcspn(u, " \t;(");
	u[k] = '\0';
	mime_str_lower(u);
	if (k == 0) {
		free(u);
		u = strdup("7bit");
		if (u == NULL)
			goto out;
	}
	e->cte = u;
	u = NULL;
	st = SM_OK;
out:
	free(u);
	return st;
}

/*
 * Is the delimiter line that starts at the dash-boundary ending at q well
 * formed: optional "--", transport padding, then a line break or the end?
 * *close says whether it was the close delimiter; *next gets the offset
 * after its line break.
 */
static bool
delimiter_end(const unsigned char *p, size_t n, size_t q, bool *close,
    size_t *next)
{
	*close = false;
	if (n - q >= 2 && p[q] == '-' && p[q + 1] == '-') {
		*close = true;
		q += 2;
	}
	while (q < n && mime_is_wsp(p[q]))
		q++;
	if (q == n) {
		*next = n;
		return true;
	}
	if (p[q] == '\n') {
		*next = q + 1;
		return true;
	}
	if (p[q] == '\r' && q + 1 < n && p[q + 1] == '\n') {
		*next = q + 2;
		return true;
	}
	return false;
}

static sm_status
add_part(struct pctx *c, struct mime_entity *e, const unsigned char *p,
    size_t n, bool digest, unsigned depth, const struct bframe *up)
{
	struct mime_entity **v, *child = NULL;
	size_t cap;
	sm_status st;

	/* Capacity is 4, 8, 16, ...: grow when nparts reaches it. Growth
	 * is bounded: parse_entity refuses entity max_parts + 1. */
	if (e->nparts == 0 ||
	    (e->nparts >= 4 && (e->nparts & (e->nparts - 1)) == 0)) {
		cap = e->nparts ? e->nparts * 2 : 4;
		if (cap > SIZE_MAX / sizeof(*v))
			return SM_ERR_NOMEM;
		v = realloc(e->parts, cap * sizeof(*v));
		if (v == NULL)
			return SM_ERR_NOMEM;
		e->parts = v;
	}
	st = parse_entity(c, p, n, NULL, digest, depth, up, &child);
	if (st != SM_OK)
		return st;
	e->parts[e->nparts++] = child;
	return SM_OK;
}

/* Validate e's boundary and split its body into parts (RFC 2046 §5.1). */
static sm_status
parse_multipart(struct pctx *c, struct mime_entity *e, unsigned depth,
    const struct bframe *up)
{
	const char *b = mime_ctype_param(&e->ct, "boundary");
	const unsigned char *p = e->body, *nl;
	size_t n = e->body_len, blen, pos = 0, part = SIZE_MAX, end, next, i;
	bool digest = mime_ctype_is(&e->ct, "multipart", "digest"), close;
	const struct bframe *f;
	struct bframe me;
	sm_status st;

	if (b == NULL)
		return SM_ERR_PARSE;
	blen = strlen(b);
	if (blen > c->lim->max_boundary_len)
		return SM_ERR_LIMIT;
	if (blen == 0 || b[blen - 1] == ' ')
		return SM_ERR_PARSE;
	for (i = 0; i < blen; i++)
		if ((unsigned char)b[i] < 32 || (unsigned char)b[i] > 126)
			return SM_ERR_PARSE;
	/*
	 * An enclosing boundary equal to this one or a prefix of it puts
	 * its delimiter at the start of our delimiter lines (RFC 2046
	 * §5.1.1 forbids that): readers matching by prefix would cut the
	 * enclosing part there. The reverse is harmless: our part holds no
	 * enclosing delimiter lines.
	 */
	for (f = up; f != NULL; f = f->up)
		if (blen >= f->len && memcmp(b, f->b, f->len) == 0)
			return SM_ERR_PARSE;
	me.b = b;
	me.len = blen;
	me.up = up;

	for (size_t paged = 0;;) { /* pos is always the start of a line */
		if (c->pager != NULL && c->pager->read_done != NULL && pos - paged >= PARSE_READ_STEP) {
			c->pager->read_done(c->pager->arg);
			paged = pos;
		}
		if (n - pos >= 2 + blen && p[pos] == '-' && p[pos + 1] == '-' &&
		    memcmp(p + pos + 2, b, blen) == 0 &&
		    delimiter_end(p, n, pos + 2 + blen, &close, &next)) {
			/* The line break before a delimiter belongs to it. */
			end = pos;
			if (part == SIZE_MAX) {
				if (end > 0)
					end--;
				if (end > 0 && p[end - 1] == '\r')
					end--;
				e->preamble = p;
				e->preamble_len = end;
			} else {
				if (end > part)
					end--;
				if (end > part && p[end - 1] == '\r')
					end--;
				st = add_part(c, e, p + part, end - part, digest,
				    depth + 1, &me);
				if (st != SM_OK)
					return st;
			}
			if (close) {
				e->epilogue = p + next;
				e->epilogue_len = n - next;
				return e->nparts > 0 ? SM_OK : SM_ERR_PARSE;
			}
			part = next;
		}
		nl = pos < n ? memchr(p + pos, '\n', n - pos) : NULL;
		if (nl == NULL)
			break;
		pos = (size_t)(nl - p) + 1;
	}
	return SM_ERR_PARSE; /* no close delimiter */
}

bool
mime_is_identity_cte(const char *cte)
{
	return strcmp(cte, "7bit") == 0 || strcmp(cte, "8bit") == 0 ||
	    strcmp(cte, "binary") == 0;
}

static sm_status
parse_entity(struct pctx *c, const unsigned char *p, size_t n,
    const struct mime_headers *given, bool digest_child, unsigned depth,
    const struct bframe *up, struct mime_entity **out)
{
	struct mime_entity *e = NULL, *child = NULL;
	size_t body_off;
	sm_status st = SM_ERR_LIMIT;

	*out = NULL;
	if (depth > c->max_depth || c->nentities >= c->lim->max_parts)
		goto out;
	c->nentities++;
	st = SM_ERR_NOMEM;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		goto out;
	if (given != NULL) {
		st = adopt_headers(c, &e->hdrs, given);
		e->body = p;
		e->body_len = n;
	} else {
		st = parse_headers(c, p, n, &e->hdrs, &body_off);
		e->raw = p;
		e->raw_len = n;
		e->body = p + body_off;
		e->body_len = n - body_off;
	}
	if (st != SM_OK)
		goto out;
	if ((st = entity_types(e, digest_child)) != SM_OK)
		goto out;
	if (mime_ctype_is(&e->ct, "multipart", NULL)) {
		st = parse_multipart(c, e, depth, up);
	} else if ((mime_ctype_is(&e->ct, "message", "rfc822") ||
	               mime_ctype_is(&e->ct, "message", "global")) &&
	           mime_is_identity_cte(e->cte)) {
		/* The embedded message is parsed too: canonicalisation
		 * must reach 8bit parts inside it (RFC 2046 §5.2.1 forbids
		 * encoding the message/rfc822 itself). */
		st = SM_ERR_NOMEM;
		if ((e->parts = calloc(1, sizeof(*e->parts))) == NULL)
			goto out;
		st = parse_entity(c, e->body, e->body_len, NULL, false,
		    depth + 1, up, &child);
		if (st == SM_OK) {
			e->parts[0] = child;
			e->nparts = 1;
		} else if (st == SM_ERR_PARSE) {
			/* A malformed embedded message is still just the
			 * content of this part: it stays an opaque leaf.
			 * Limits, however, hold for the whole tree. */
			free(e->parts);
			e->parts = NULL;
			st = SM_OK;
		}
	}
out:
	if (st != SM_OK) {
		mime_entity_free(e);
		e = NULL;
	}
	*out = e;
	return st;
}

static void
pctx_init(struct pctx *c, const struct mime_limits *lim)
{
	c->lim = lim ? lim : &mime_default_limits;
	c->max_depth = c->lim->max_depth < MIME_HARD_MAX_DEPTH
	    ? c->lim->max_depth : MIME_HARD_MAX_DEPTH;
	c->nentities = 0;
	c->nheaders = 0;
	c->pager = NULL;
}

sm_status
mime_parse(const unsigned char *p, size_t n, const struct mime_limits *lim,
    struct mime_entity **out)
{
	struct pctx c;

	if (out == NULL)
		return SM_ERR_ARG;
	*out = NULL;
	if (p == NULL && n > 0)
		return SM_ERR_ARG;
	pctx_init(&c, lim);
	return parse_entity(&c, p ? p : (const unsigned char *)"", n, NULL,
	    false, 0, NULL, out);
}

sm_status
mime_parse_message(const struct mime_headers *hdrs, const unsigned char *body,
    size_t n, const struct mime_limits *lim, struct mime_entity **out)
{
	return mime_parse_message_paged(hdrs, body, n, lim, NULL, out);
}

sm_status
mime_parse_message_paged(const struct mime_headers *hdrs, const unsigned char *body,
    size_t n, const struct mime_limits *lim, const struct mime_sink *pager,
    struct mime_entity **out)
{
	static const struct mime_headers none = MIME_HEADERS_INIT;
	struct pctx c;

	if (out == NULL)
		return SM_ERR_ARG;
	*out = NULL;
	if (body == NULL && n > 0)
		return SM_ERR_ARG;
	pctx_init(&c, lim);
	c.pager = pager;
	return parse_entity(&c, body ? body : (const unsigned char *)"", n,
	    hdrs ? hdrs : &none, false, 0, NULL, out);
}

void
mime_entity_free(struct mime_entity *e)
{
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; i < e->nparts; i++)
		mime_entity_free(e->parts[i]);
	free(e->parts);
	mime_headers_free(&e->hdrs);
	mime_ctype_free(&e->ct);
	free(e->cte);
	free(e);
}

sm_status
mime_decode_body(const struct mime_entity *e, struct buf *out)
{
	if (e == NULL || out == NULL)
		return SM_ERR_ARG;
	if (strcmp(e->cte, "base64") == 0)
		return mime_b64_decode(e->body, e->body_len, out);
	if (strcmp(e->cte, "quoted-printable") == 0)
		return mime_qp_decode(e->body, e->body_len, out);
	if (mime_is_identity_cte(e->cte))
		return buf_append(out, e->body, e->body_len);
	return SM_ERR_UNSUPPORTED;
}

/* ------------------------------------------------------------------ */
/* S/MIME structure                                                     */
/* ------------------------------------------------------------------ */

static bool
is_pkcs7_signature(const struct mime_ctype *ct)
{
	return mime_ctype_is(ct, "application", "pkcs7-signature") ||
	    mime_ctype_is(ct, "application", "x-pkcs7-signature");
}

/* Does the Content-Type name or the Content-Disposition filename end
 * in suffix? */
static bool
entity_named(const struct mime_entity *e, const char *suffix)
{
	struct mime_ctype cd = MIME_CTYPE_INIT;
	const char *v = mime_ctype_param(&e->ct, "name");
	char *u;
	bool yes = v != NULL && mime_ascii_ends_with(v, suffix);

	if (!yes && (v = mime_headers_get(&e->hdrs, "Content-Disposition")) &&
	    (u = mime_header_unfold(v)) != NULL) {
		if (mime_ctype_parse_any(u, false, &cd) == SM_OK &&
		    (v = mime_ctype_param(&cd, "filename")) != NULL)
			yes = mime_ascii_ends_with(v, suffix);
		mime_ctype_free(&cd);
		free(u);
	}
	return yes;
}

enum mime_smime_kind
mime_smime_kind(const struct mime_entity *e)
{
	const char *v;
	char *u;
	bool sig = false;

	if (e == NULL)
		return MIME_SMIME_NONE;
	if (mime_ctype_is(&e->ct, "multipart", "signed")) {
		v = mime_ctype_param(&e->ct, "protocol");
		if (v != NULL && (u = mime_header_unfold(v)) != NULL) {
			sig = mime_ascii_eq(u, "application/pkcs7-signature") ||
			    mime_ascii_eq(u, "application/x-pkcs7-signature");
			free(u);
		}
		if (sig && e->nparts == 2 && is_pkcs7_signature(&e->parts[1]->ct))
			return MIME_SMIME_SIGNED_DETACHED;
		return MIME_SMIME_NONE;
	}
	if (mime_ctype_is(&e->ct, "application", "pkcs7-mime") ||
	    mime_ctype_is(&e->ct, "application", "x-pkcs7-mime")) {
		v = mime_ctype_param(&e->ct, "smime-type");
		if (v != NULL) {
			if (mime_ascii_eq(v, "signed-data"))
				return MIME_SMIME_SIGNED_OPAQUE;
			if (mime_ascii_eq(v, "enveloped-data"))
				return MIME_SMIME_ENVELOPED;
			if (mime_ascii_eq(v, "authEnveloped-data"))
				return MIME_SMIME_AUTH_ENVELOPED;
			if (mime_ascii_eq(v, "certs-only"))
				return MIME_SMIME_CERTS_ONLY;
		}
		return entity_named(e, ".p7c") ? MIME_SMIME_CERTS_ONLY
		                               : MIME_SMIME_PKCS7_UNKNOWN;
	}
	if (mime_ctype_is(&e->ct, "application", "octet-stream")) {
		if (entity_named(e, ".p7m"))
			return MIME_SMIME_PKCS7_UNKNOWN;
		if (entity_named(e, ".p7c"))
			return MIME_SMIME_CERTS_ONLY;
	}
	return MIME_SMIME_NONE;
}

const char *
mime_smime_kind_name(enum mime_smime_kind k)
{
	switch (k) {
	case MIME_SMIME_NONE: return "none";
	case MIME_SMIME_SIGNED_DETACHED: return "signed-detached";
	case MIME_SMIME_SIGNED_OPAQUE: return "signed-opaque";
	case MIME_SMIME_ENVELOPED: return "enveloped";
	case MIME_SMIME_AUTH_ENVELOPED: return "auth-enveloped";
	case MIME_SMIME_CERTS_ONLY: return "certs-only";
	case MIME_SMIME_PKCS7_UNKNOWN: return "pkcs7-unknown";
	}
	return "unknown";
}
