/*
 * hprot_legacy.c — the Legacy Display Element of RFC 9788 (§2.1.2,
 * §4.5): the obscured user-facing header fields, shown in the main body
 * parts themselves for readers that do not understand the protected
 * header section. See hp_legacy_insert() in hprot.h.
 *
 * The main body parts (RFC 9788 §4.5.1): a text/plain or text/html leaf
 * root; the first part of a multipart/mixed or multipart/related (and of
 * any other multipart we do not know, never of multipart/signed or
 * /encrypted); of a multipart/alternative the first text/plain and the
 * first text/html leaf. Attachments (Content-Disposition: attachment) are
 * never touched.
 */
#include "hprot.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HP_LEGACY_MAX 4 /* main body parts we mark, at most */

/* ------------------------------------------------------------------ */
/* Finding the main body parts                                          */
/* ------------------------------------------------------------------ */

struct hp_leaves {
	const struct mime_entity *e[HP_LEGACY_MAX];
	size_t n;
};

static bool
hp_is_attachment(const struct mime_entity *e)
{
	const char *cd = mime_headers_get(&e->hdrs, "Content-Disposition");
	char *v = cd ? mime_header_unfold(cd) : NULL;
	bool att = v && strncasecmp(v, "attachment", 10) == 0;

	free(v);
	return att;
}

static bool
hp_is_text_leaf(const struct mime_entity *e, const char *subtype)
{
	return e->nparts == 0 && mime_ctype_is(&e->ct, "text", subtype) && !hp_is_attachment(e);
}

static bool
hp_has(const struct hp_leaves *l, const char *subtype)
{
	for (size_t i = 0; i < l->n; i++)
		if (mime_ctype_is(&l->e[i]->ct, "text", subtype))
			return true;
	return false;
}

static void
hp_collect(const struct mime_entity *e, unsigned depth, struct hp_leaves *l)
{
	if (depth > 8 || l->n >= HP_LEGACY_MAX)
		return;
	if (hp_is_text_leaf(e, "plain") || hp_is_text_leaf(e, "html")) {
		if (!hp_has(l, e->ct.subtype))
			l->e[l->n++] = e;
		return;
	}
	if (!mime_ctype_is(&e->ct, "multipart", NULL) || e->nparts == 0 ||
	    mime_ctype_is(&e->ct, "multipart", "signed") ||
	    mime_ctype_is(&e->ct, "multipart", "encrypted"))
		return;
	if (mime_ctype_is(&e->ct, "multipart", "alternative")) {
		for (size_t i = 0; i < e->nparts; i++)
			hp_collect(e->parts[i], depth + 1, l);
		return;
	}
	hp_collect(e->parts[0], depth + 1, l);
}

/* ------------------------------------------------------------------ */
/* Building the element                                                 */
/* ------------------------------------------------------------------ */

static bool
hp_is_ascii(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] >= 0x80)
			return false;
	return true;
}

/* The next code point of UTF-8 text at *p (U+FFFD for a bad sequence). */
static unsigned long
hp_utf8_next(const unsigned char **p, const unsigned char *lim)
{
	const unsigned char *s = *p;
	unsigned long c = *s++;
	int more = c >= 0xf0 && c < 0xf5 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : -1;

	if (c < 0x80) {
		*p = s;
		return c;
	}
	if (more < 0 || c >= 0xf5) {
		*p = s;
		return 0xfffd;
	}
	c &= 0x3fUL >> more;
	for (int i = 0; i < more; i++, s++) {
		if (s >= lim || (*s & 0xc0) != 0x80) {
			*p = s;
			return 0xfffd;
		}
		c = c << 6 | (*s & 0x3f);
	}
	*p = s;
	return c;
}

/* Append UTF-8 text as HTML character data: markup characters as
 * entities, everything beyond ASCII as a numeric reference, so that the
 * element reads the same whatever the part's charset. */
static sm_status
hp_html_escape(const struct buf *in, struct buf *out)
{
	const unsigned char *p = in->data, *lim = in->data + in->len;
	sm_status st = SM_OK;

	while (p < lim && st == SM_OK) {
		unsigned long c = hp_utf8_next(&p, lim);

		if (c == '&')
			st = buf_append_str(out, "&amp;");
		else if (c == '<')
			st = buf_append_str(out, "&lt;");
		else if (c == '>')
			st = buf_append_str(out, "&gt;");
		else if (c == '"')
			st = buf_append_str(out, "&quot;");
		else if (c < 0x80)
			st = buf_append_char(out, (char)c);
		else
			st = buf_printf(out, "&#x%lX;", c);
	}
	return st;
}

/* Convert UTF-8 in to charset cs. SM_ERR_UNSUPPORTED when iconv cannot. */
static sm_status
hp_from_utf8(const char *cs, const struct buf *in, struct buf *out)
{
	iconv_t cd = iconv_open(cs, "UTF-8");
	char *ip = (char *)in->data, *op;
	size_t il = in->len, ol;
	sm_status st = SM_OK;

	if (cd == (iconv_t)-1)
		return SM_ERR_UNSUPPORTED;
	for (int flush = 0; st == SM_OK && flush < 2; flush += il == 0) {
		if ((st = buf_reserve(out, il * 4 + 16)) != SM_OK)
			break;
		op = (char *)out->data + out->len;
		ol = out->cap - out->len - 1;
		if (iconv(cd, flush ? NULL : &ip, flush ? NULL : &il, &op, &ol) == (size_t)-1 &&
		    errno != E2BIG)
			st = SM_ERR_UNSUPPORTED;
		out->len = (size_t)(op - (char *)out->data);
		if (flush)
			break;
	}
	if (out->data)
		out->data[out->len] = '\0';
	iconv_close(cd);
	return st;
}

/* Charsets in which ASCII text is ASCII bytes (not UTF-16 and its kin). */
static bool
hp_ascii_compatible(const char *cs)
{
	static const char *const wide[] = { "utf-16", "utf-32", "ucs-2", "ucs-4", "utf-7", NULL };

	for (size_t i = 0; cs && wide[i]; i++)
		if (strncasecmp(cs, wide[i], strlen(wide[i])) == 0)
			return false;
	return true;
}

/*
 * The element for one part, in the part's charset: "Name: value" lines
 * and an empty line (text/plain), or a div holding them in a <pre>
 * (text/html), as RFC 9788 Appendix E.1/E.2 show them. *relabel is set
 * when a us-ascii part needs charset=utf-8 to carry the text.
 * SM_ERR_UNSUPPORTED when the text cannot be written in the charset.
 */
static sm_status
hp_element(const struct mime_headers *lines, bool html, const char *cs, struct buf *out,
    bool *relabel)
{
	struct buf u = BUF_INIT;
	sm_status st = SM_OK;

	*relabel = false;
	for (size_t i = 0; i < lines->n && st == SM_OK; i++)
		st = buf_printf(&u, "%s%s: %s", i ? "\r\n" : "", lines->v[i].name, lines->v[i].value);
	if (st == SM_OK && !hp_ascii_compatible(cs))
		st = SM_ERR_UNSUPPORTED;
	if (st == SM_OK && html) {
		st = buf_append_str(out, "<div class=\"header-protection-legacy-display\">\r\n<pre>");
		if (st == SM_OK)
			st = hp_html_escape(&u, out);
		if (st == SM_OK)
			st = buf_append_str(out, "</pre>\r\n</div>\r\n");
	} else if (st == SM_OK) {
		if (hp_is_ascii(&u) || (cs && strcasecmp(cs, "utf-8") == 0))
			st = buf_append(out, u.data, u.len);
		else if (cs == NULL || strcasecmp(cs, "us-ascii") == 0)
			*relabel = true, st = buf_append(out, u.data, u.len);
		else
			st = hp_from_utf8(cs, &u, out);
		if (st == SM_OK)
			st = buf_append_str(out, "\r\n\r\n");
	}
	buf_free(&u);
	return st;
}

/* ------------------------------------------------------------------ */
/* Putting it into a part                                               */
/* ------------------------------------------------------------------ */

static const unsigned char *
hp_find_ci(const unsigned char *h, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; k <= n && i <= n - k; i++)
		if (strncasecmp((const char *)h + i, needle, k) == 0)
			return h + i;
	return NULL;
}

/* Past the line break at p, if there is one. */
static size_t
hp_eol(const unsigned char *doc, size_t n, size_t at)
{
	if (at + 1 < n && doc[at] == '\r' && doc[at + 1] == '\n')
		return at + 2;
	return at < n && doc[at] == '\n' ? at + 1 : at;
}

/* Where the element goes in an HTML document: just after the <body>
 * start tag (and its line break, as in RFC 9788 Appendix E.2); without
 * one, after </head>; without that, at the start. */
size_t
hp_legacy_html_at(const unsigned char *doc, size_t n)
{
	const unsigned char *lim = doc + n, *p = doc, *b;

	while ((b = hp_find_ci(p, (size_t)(lim - p), "<body")) != NULL) {
		const unsigned char *q = b + 5;
		char quote = 0;

		if (q < lim && *q != '>' && *q != '/' && *q != ' ' && *q != '\t' && *q != '\r' &&
		    *q != '\n') {
			p = q; /* <bodyfoo> is another element */
			continue;
		}
		for (; q < lim; q++) {
			if (quote && *q == quote)
				quote = 0;
			else if (!quote && (*q == '"' || *q == '\''))
				quote = (char)*q;
			else if (!quote && *q == '>')
				return hp_eol(doc, n, (size_t)(q + 1 - doc));
		}
		return 0; /* an unterminated tag: do not cut into it */
	}
	b = hp_find_ci(doc, n, "</head>");
	return b ? hp_eol(doc, n, (size_t)(b + 7 - doc)) : 0;
}

/* A Content-Type value from ct with charset (when not NULL) replaced and
 * hp-legacy-display="1" added when mark. */
static sm_status
hp_ctype_build(const struct mime_ctype *ct, const char *charset, bool mark, struct buf *out)
{
	sm_status st = buf_printf(out, "%s/%s", ct->type, ct->subtype);
	bool had = false;

	for (size_t i = 0; i < ct->nparams && st == SM_OK; i++) {
		const struct mime_param *p = &ct->params[i];
		const char *v = p->value;

		if (strcmp(p->name, "hp-legacy-display") == 0)
			continue;
		if (charset && strcmp(p->name, "charset") == 0)
			v = charset, had = true;
		st = buf_printf(out, "; %s=\"", p->name);
		for (const char *c = v; *c && st == SM_OK; c++)
			st = *c == '"' || *c == '\\' ? buf_printf(out, "\\%c", *c) :
			    (unsigned char)*c < ' ' ? SM_OK : buf_append_char(out, *c);
		if (st == SM_OK)
			st = buf_append_char(out, '"');
	}
	if (st == SM_OK && charset && !had)
		st = buf_printf(out, "; charset=\"%s\"", charset);
	if (st == SM_OK && mark)
		st = buf_append_str(out, "; hp-legacy-display=\"1\"");
	return st;
}

/* A Content-Type value (NULL: the RFC 2045 default) with
 * hp-legacy-display="1" appended. */
static sm_status
hp_ctype_mark(const char *value, struct buf *out)
{
	char *v = mime_header_unfold(value ? value : "text/plain; charset=us-ascii");
	sm_status st;

	if (v == NULL)
		return SM_ERR_NOMEM;
	st = buf_printf(out, "%s; hp-legacy-display=\"1\"", v);
	free(v);
	return st;
}

/* The part's new body, encoded as its Content-Transfer-Encoding says. */
static sm_status
hp_reencode(const struct mime_entity *e, const struct buf *dec, struct buf *out)
{
	sm_status st;

	if (strcmp(e->cte, "base64") == 0) {
		st = mime_b64_encode(dec->data, dec->len, out);
		if (st == SM_OK && out->len >= 2) /* the delimiter's CRLF follows */
			out->len -= 2, out->data[out->len] = '\0';
		return st;
	}
	if (strcmp(e->cte, "quoted-printable") == 0)
		return mime_qp_encode(dec->data, dec->len, out);
	return buf_append(out, dec->data, dec->len);
}

/* The legacy display element put into part e: its new header section
 * (hdrs) and body. SM_ERR_UNSUPPORTED when this part cannot take it. */
static sm_status
hp_part(const struct mime_entity *e, const struct mime_headers *lines, bool mark_ct,
    struct mime_headers *hdrs, struct buf *body)
{
	bool html = mime_ctype_is(&e->ct, "text", "html"), relabel;
	const char *cs = mime_ctype_param(&e->ct, "charset");
	struct buf dec = BUF_INIT, el = BUF_INIT, nb = BUF_INIT, ct = BUF_INIT;
	size_t at;
	sm_status st = mime_ctype_param(&e->ct, "hp-legacy-display") ? SM_ERR_UNSUPPORTED :
	    mime_decode_body(e, &dec); /* marked already: not ours to mark twice */

	if (st == SM_OK)
		st = hp_element(lines, html, cs, &el, &relabel);
	at = st == SM_OK && html ? hp_legacy_html_at(dec.data, dec.len) : 0;
	if (st == SM_OK && (st = buf_append(&nb, dec.data, at)) == SM_OK &&
	    (st = buf_append(&nb, el.data, el.len)) == SM_OK)
		st = buf_append(&nb, dec.data + at, dec.len - at);
	if (st == SM_OK)
		st = hp_reencode(e, &nb, body);
	if (st == SM_OK && (st = mime_headers_copy(hdrs, &e->hdrs)) == SM_OK &&
	    (relabel || mark_ct)) {
		if (relabel)
			st = hp_ctype_build(&e->ct, "utf-8", mark_ct, &ct);
		else /* only the mark: the field as it was, parameter added */
			st = hp_ctype_mark(mime_headers_get(&e->hdrs, "Content-Type"), &ct);
		if (st == SM_OK)
			st = mime_headers_set(hdrs, "Content-Type", buf_cstr(&ct));
	}
	buf_free(&dec);
	buf_free(&el);
	buf_free(&nb);
	buf_free(&ct);
	return st;
}

/* One part's replacement: the byte range it had, the bytes it gets. */
struct hp_edit {
	size_t off, len;
	struct buf with;
};

static sm_status
hp_edit_part(const struct mime_entity *e, const unsigned char *base,
    const struct mime_headers *lines, struct hp_edit *ed)
{
	struct mime_headers h = MIME_HEADERS_INIT;
	struct buf b = BUF_INIT;
	sm_status st = hp_part(e, lines, true, &h, &b);

	if (st == SM_OK)
		st = mime_entity_serialize(&h, b.data, b.len, &ed->with);
	ed->off = (size_t)(e->raw - base);
	ed->len = e->raw_len;
	mime_headers_free(&h);
	buf_free(&b);
	return st;
}

sm_status
hp_legacy_insert(const struct mime_headers *lines, struct mime_headers *content,
    const unsigned char **body, size_t *body_len, struct buf *out, bool *root_marked)
{
	struct mime_entity *root = NULL;
	struct hp_leaves l = { { NULL }, 0 };
	struct hp_edit ed[HP_LEGACY_MAX];
	size_t ne = 0, pos = 0;
	sm_status st = SM_OK;

	*root_marked = false;
	memset(ed, 0, sizeof(ed));
	if (lines->n == 0 ||
	    mime_parse_message(content, *body, *body_len, NULL, &root) != SM_OK)
		return SM_OK; /* nothing to show, or not ours to rewrite */
	hp_collect(root, 0, &l);
	if (l.n == 1 && l.e[0] == root) {
		struct mime_headers h = MIME_HEADERS_INIT;

		st = hp_part(root, lines, false, &h, out);
		if (st == SM_OK) {
			mime_headers_free(content);
			*content = h;
			*root_marked = true;
		} else {
			mime_headers_free(&h);
		}
		goto done;
	}
	for (size_t i = 0; i < l.n; i++) {
		st = hp_edit_part(l.e[i], *body, lines, &ed[ne]);
		if (st == SM_OK)
			ne++;
		else if (st != SM_ERR_UNSUPPORTED && st != SM_ERR_PARSE)
			goto done;
		else
			buf_free(&ed[ne].with);
		st = SM_OK;
	}
	for (size_t i = 0; i < ne && st == SM_OK; i++) {
		st = buf_append(out, *body + pos, ed[i].off - pos);
		if (st == SM_OK)
			st = buf_append(out, ed[i].with.data, ed[i].with.len);
		pos = ed[i].off + ed[i].len;
	}
	if (st == SM_OK && ne > 0)
		st = buf_append(out, *body + pos, *body_len - pos);
done:
	if (st == SM_ERR_UNSUPPORTED || st == SM_ERR_PARSE)
		st = SM_OK; /* the element is a courtesy: no element, same message */
	if (st == SM_OK && (*root_marked || ne > 0)) {
		*body = out->data;
		*body_len = out->len;
	} else {
		buf_reset(out);
		*root_marked = false;
	}
	for (size_t i = 0; i < HP_LEGACY_MAX; i++)
		buf_free(&ed[i].with);
	mime_entity_free(root);
	return st;
}
