/*
 * mime.c — header lists, Content-Type and header serialisation. The
 * parser is in mime_parse.c, canonical form in mime_canon.c, builders in
 * mime_build.c; what they share is in mime_int.h.
 */
#include "mime.h"
#include "mime_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Parameters in one Content-Type or Content-Disposition. */
#define MIME_MAX_PARAMS 128

const struct mime_limits mime_default_limits = {
	.max_headers = 1000,
	.max_total_headers = 20000,
	.max_header_len = 64 * 1024,
	.max_parts = 1000,
	.max_boundary_len = 200,
	.max_depth = 32,
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

char *
mime_xstrndup(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s != NULL) {
		if (n > 0)
			memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* ASCII only: header and parameter names are ASCII, and the C library's
 * tolower() would follow whatever locale the daemon runs in. */
unsigned char
mime_ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

void
mime_str_lower(char *s)
{
	for (; *s; s++)
		*s = (char)mime_ascii_lower((unsigned char)*s);
}

bool
mime_ascii_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (mime_ascii_lower((unsigned char)*a) !=
		    mime_ascii_lower((unsigned char)*b))
			return false;
	return *a == *b;
}

bool
mime_ascii_starts_with(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++)
		if (mime_ascii_lower((unsigned char)*s) !=
		    mime_ascii_lower((unsigned char)*prefix))
			return false;
	return true;
}

/* Does s end with suffix, ignoring ASCII case? */
bool
mime_ascii_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && mime_ascii_eq(s + n - m, suffix);
}

bool
mime_is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 ftext: printable US-ASCII except ":". */
bool
mime_valid_field_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126 || c == ':')
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Header lists                                                         */
/* ------------------------------------------------------------------ */

/* Append name/value, taking ownership on success only. */
sm_status
mime_headers_push(struct mime_headers *h, char *name, char *value)
{
	struct mime_header *v;
	size_t cap;

	if (h->n == h->cap) {
		cap = h->cap ? h->cap * 2 : 8;
		if (cap > SIZE_MAX / sizeof(*v))
			return SM_ERR_NOMEM;
		v = realloc(h->v, cap * sizeof(*v));
		if (v == NULL)
			return SM_ERR_NOMEM;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n].name = name;
	h->v[h->n].value = value;
	h->n++;
	return SM_OK;
}

/* Drop fields from index keep onwards (undo after a failure). */
void
mime_headers_truncate(struct mime_headers *h, size_t keep)
{
	while (h->n > keep) {
		h->n--;
		free(h->v[h->n].name);
		free(h->v[h->n].value);
	}
}

sm_status
mime_headers_add(struct mime_headers *h, const char *name, const char *value)
{
	char *nm = NULL, *val = NULL;
	sm_status st = SM_ERR_ARG;

	if (h == NULL || name == NULL || value == NULL ||
	    !mime_valid_field_name(name, strlen(name)))
		goto out;
	st = SM_ERR_NOMEM;
	nm = strdup(name);
	val = strdup(value);
	if (nm == NULL || val == NULL)
		goto out;
	st = mime_headers_push(h, nm, val);
	if (st == SM_OK)
		nm = val = NULL;
out:
	free(nm);
	free(val);
	return st;
}

const char *
mime_headers_get(const struct mime_headers *h, const char *name)
{
	size_t i;

	for (i = 0; h != NULL && i < h->n; i++)
		if (mime_ascii_eq(h->v[i].name, name))
			return h->v[i].value;
	return NULL;
}

size_t
mime_headers_count(const struct mime_headers *h, const char *name)
{
	size_t i, k = 0;

	for (i = 0; h != NULL && i < h->n; i++)
		if (mime_ascii_eq(h->v[i].name, name))
			k++;
	return k;
}

size_t
mime_headers_remove(struct mime_headers *h, const char *name)
{
	size_t i, j = 0, removed = 0;

	for (i = 0; h != NULL && i < h->n; i++) {
		if (mime_ascii_eq(h->v[i].name, name)) {
			free(h->v[i].name);
			free(h->v[i].value);
			removed++;
		} else {
			h->v[j++] = h->v[i];
		}
	}
	if (h != NULL)
		h->n = j;
	return removed;
}

sm_status
mime_headers_set(struct mime_headers *h, const char *name, const char *value)
{
	size_t i, j;
	char *val;

	if (h == NULL || name == NULL || value == NULL ||
	    !mime_valid_field_name(name, strlen(name)))
		return SM_ERR_ARG;
	for (i = 0; i < h->n; i++)
		if (mime_ascii_eq(h->v[i].name, name))
			break;
	if (i == h->n)
		return mime_headers_add(h, name, value);
	val = strdup(value);
	if (val == NULL)
		return SM_ERR_NOMEM;
	free(h->v[i].value);
	h->v[i].value = val;
	/* Later duplicates go; the first keeps its position. */
	for (j = i + 1; j < h->n;) {
		if (mime_ascii_eq(h->v[j].name, name)) {
			free(h->v[j].name);
			free(h->v[j].value);
			memmove(&h->v[j], &h->v[j + 1],
			    (h->n - j - 1) * sizeof(h->v[0]));
			h->n--;
		} else {
			j++;
		}
	}
	return SM_OK;
}

sm_status
mime_headers_copy(struct mime_headers *dst, const struct mime_headers *src)
{
	size_t keep = dst->n, i;
	sm_status st = SM_OK;

	for (i = 0; src != NULL && i < src->n && st == SM_OK; i++)
		st = mime_headers_add(dst, src->v[i].name, src->v[i].value);
	if (st != SM_OK)
		mime_headers_truncate(dst, keep);
	return st;
}

void
mime_headers_free(struct mime_headers *h)
{
	if (h == NULL)
		return;
	mime_headers_truncate(h, 0);
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

char *
mime_header_unfold(const char *value)
{
	size_t n = strlen(value), i, j = 0, lead = 0;
	char *s = malloc(n + 1);

	if (s == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (value[i] != '\r' && value[i] != '\n')
			s[j++] = value[i];
	while (j > 0 && mime_is_wsp((unsigned char)s[j - 1]))
		j--;
	while (lead < j && mime_is_wsp((unsigned char)s[lead]))
		lead++;
	memmove(s, s + lead, j - lead);
	s[j - lead] = '\0';
	return s;
}

sm_status
mime_header_fold(const char *name, const char *value, struct buf *out)
{
	size_t start = out->len, nlen, col, i = 0, ws, word, seg;
	char *v = NULL;
	bool first = true;
	sm_status st = SM_ERR_ARG;

	if (name == NULL || value == NULL)
		goto out;
	nlen = strlen(name);
	if (!mime_valid_field_name(name, nlen))
		goto out;
	st = SM_ERR_LIMIT;
	if (nlen + 1 > LINE_HARD)
		goto out;
	st = SM_ERR_NOMEM;
	if ((v = mime_header_unfold(value)) == NULL)
		goto out;
	if (buf_append(out, name, nlen) != SM_OK ||
	    buf_append_char(out, ':') != SM_OK)
		goto out;
	col = nlen + 1;
	/*
	 * Greedy: each segment is a run of whitespace plus the word after
	 * it; a line break goes in front of the whitespace when the segment
	 * would pass column 78, so unfolding gives back exactly v.
	 */
	while (v[i] != '\0') {
		ws = i;
		while (mime_is_wsp((unsigned char)v[i]))
			i++;
		word = i;
		while (v[i] != '\0' && !mime_is_wsp((unsigned char)v[i]))
			i++;
		seg = (first ? 1 : word - ws) + (i - word);
		if (!first && col + seg > LINE_SOFT) {
			if (buf_append(out, "\r\n", 2) != SM_OK)
				goto out;
			col = 0;
		}
		if (col + seg > LINE_HARD) {
			st = SM_ERR_LIMIT;
			goto out;
		}
		if ((first ? buf_append_char(out, ' ')
		           : buf_append(out, v + ws, word - ws)) != SM_OK ||
		    buf_append(out, v + word, i - word) != SM_OK)
			goto out;
		col += seg;
		first = false;
	}
	if (buf_append(out, "\r\n", 2) != SM_OK)
		goto out;
	st = SM_OK;
out:
	if (st != SM_OK) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	free(v);
	return st;
}

/* ------------------------------------------------------------------ */
/* Content-Type parameters                                              */
/* ------------------------------------------------------------------ */

/* RFC 2045 token characters. */
static bool
is_token_char(unsigned char c)
{
	if (c <= 32 || c >= 127)
		return false;
	return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* Line breaks inside structured values are folding: whitespace. */
static bool
is_lws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip whitespace and (nested, escaped) comments. */
static sm_status
skip_cfws(const char *s, size_t *ip)
{
	size_t i = *ip, depth;

	for (;;) {
		while (is_lws((unsigned char)s[i]))
			i++;
		if (s[i] != '(')
			break;
		depth = 0;
		do {
			if (s[i] == '\0')
				return SM_ERR_PARSE; /* unterminated comment */
			if (s[i] == '\\') {
				if (s[i + 1] == '\0')
					return SM_ERR_PARSE;
				i += 2;
				continue;
			}
			if (s[i] == '(')
				depth++;
			else if (s[i] == ')')
				depth--;
			i++;
		} while (depth > 0);
	}
	*ip = i;
	return SM_OK;
}

/* Read a quoted string starting at the '"' at *ip into out. */
static sm_status
read_quoted(const char *s, size_t *ip, struct buf *out)
{
	size_t i = *ip + 1;

	for (;;) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0')
			return SM_ERR_PARSE;
		if (c == '"')
			break;
		if (c == '\\') {
			if (s[i + 1] == '\0')
				return SM_ERR_PARSE;
			c = (unsigned char)s[++i];
		} else if (c == '\r' || c == '\n') {
			i++; /* folding inside the string: unfold */
			continue;
		}
		if (buf_append_char(out, (char)c) != SM_OK)
			return SM_ERR_NOMEM;
		i++;
	}
	*ip = i + 1;
	return SM_OK;
}

/* Skip junk up to the next ';' that is not inside quotes or a comment. */
static sm_status
skip_to_semicolon(const char *s, size_t *ip)
{
	struct buf scratch = BUF_INIT;
	size_t i = *ip;
	sm_status st = SM_OK;

	while (s[i] != '\0' && s[i] != ';' && st == SM_OK) {
		if (s[i] == '"') {
			st = read_quoted(s, &i, &scratch);
			buf_reset(&scratch);
		} else if (s[i] == '(') {
			st = skip_cfws(s, &i);
		} else {
			i++;
		}
	}
	buf_free(&scratch);
	*ip = i;
	return st;
}

/* A parameter as written, before RFC 2231 sections are joined. */
struct rawparam {
	char *name;    /* lowercased, without the "*N*" suffix */
	int section;   /* -1 when not a continuation */
	bool ext;      /* trailing "*": charset'lang'%XX encoding */
	char *value;   /* unquoted */
	bool used;
};

/* Split "name*3*" into base name, section and the extended flag. Names
 * that merely contain a '*' in some other shape stay literal. */
static sm_status
rawparam_split(struct rawparam *r)
{
	char *star = strchr(r->name, '*'), *d;
	int sec = 0, digits = 0;

	r->section = -1;
	r->ext = false;
	if (star == NULL || star == r->name)
		return SM_OK;
	d = star + 1;
	if (*d == '\0') {
		r->ext = true;
		*star = '\0';
		return SM_OK;
	}
	while (*d >= '0' && *d <= '9') {
		if (++digits > 3)
			return SM_ERR_PARSE; /* no message has 1000 sections */
		sec = sec * 10 + (*d - '0');
		d++;
	}
	if (digits == 0 || (*d != '\0' && strcmp(d, "*") != 0))
		return SM_OK; /* not RFC 2231 after all */
	if (digits > 1 && star[1] == '0')
		return SM_ERR_PARSE; /* RFC 2231: no leading zeros */
	r->ext = *d == '*';
	r->section = sec;
	*star = '\0';
	return SM_OK;
}

/* Percent-decode an RFC 2231 value; skip "charset'lang'" when first. */
static sm_status
ext_decode(const char *v, bool first, struct buf *out)
{
	const char *q1, *q2;
	int hi, lo;

	if (first && (q1 = strchr(v, '\'')) != NULL &&
	    (q2 = strchr(q1 + 1, '\'')) != NULL)
		v = q2 + 1;
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;

		if (c == '%' && v[1] && v[2]) {
			hi = (v[1] >= '0' && v[1] <= '9') ? v[1] - '0'
			    : (mime_ascii_lower((unsigned char)v[1]) >= 'a' &&
			       mime_ascii_lower((unsigned char)v[1]) <= 'f')
			    ? mime_ascii_lower((unsigned char)v[1]) - 'a' + 10 : -1;
			lo = (v[2] >= '0' && v[2] <= '9') ? v[2] - '0'
			    : (mime_ascii_lower((unsigned char)v[2]) >= 'a' &&
			       mime_ascii_lower((unsigned char)v[2]) <= 'f')
			    ? mime_ascii_lower((unsigned char)v[2]) - 'a' + 10 : -1;
			if (hi >= 0 && lo >= 0) {
				c = (unsigned char)(hi << 4 | lo);
				if (c == '\0')
					return SM_ERR_PARSE;
				v += 2;
			}
		}
		if (buf_append_char(out, (char)c) != SM_OK)
			return SM_ERR_NOMEM;
	}
	return SM_OK;
}

/* Join the raw parameters named like raw[a] into one value. */
static sm_status
assemble_param(struct rawparam *raw, size_t nraw, size_t a, struct buf *val)
{
	const char *base = raw[a].name;
	size_t b, k, nsegs = 0;
	long plain = -1, star = -1;
	sm_status st;

	for (b = a; b < nraw; b++) {
		if (strcmp(raw[b].name, base) != 0)
			continue;
		raw[b].used = true;
		if (raw[b].section < 0 && !raw[b].ext) {
			if (plain >= 0)
				return SM_ERR_PARSE; /* duplicate parameter */
			plain = (long)b;
		} else if (raw[b].section < 0) {
			if (star >= 0)
				return SM_ERR_PARSE;
			star = (long)b;
		} else {
			nsegs++;
		}
	}
	if (nsegs > 0) {
		if (star >= 0)
			return SM_ERR_PARSE; /* name*= and name*0= together */
		/* Sections 0..nsegs-1, each exactly once: anything else is
		 * a gap or a duplicate. At most 128 of them, so O(n^2). */
		for (k = 0; k < nsegs; k++) {
			long found = -1;

			for (b = a; b < nraw; b++) {
				if (raw[b].section != (int)k ||
				    strcmp(raw[b].name, base) != 0)
					continue;
				if (found >= 0)
					return SM_ERR_PARSE;
				found = (long)b;
			}
			if (found < 0)
				return SM_ERR_PARSE;
			st = raw[found].ext
			    ? ext_decode(raw[found].value, k == 0, val)
			    : buf_append_str(val, raw[found].value);
			if (st != SM_OK)
				return st;
		}
		return SM_OK;
	}
	/* RFC 2231 wins over the plain fallback some mailers add. */
	if (star >= 0)
		return ext_decode(raw[star].value, true, val);
	return buf_append_str(val, raw[plain].value);
}

static void
rawparams_free(struct rawparam *raw, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(raw[i].name);
		free(raw[i].value);
	}
	free(raw);
}

/*
 * Parse "type/subtype; params" (want_subtype) or "type; params" (a
 * Content-Disposition) into out.
 */
sm_status
mime_ctype_parse_any(const char *s, bool want_subtype, struct mime_ctype *out)
{
	struct rawparam *raw = NULL;
	struct buf val = BUF_INIT;
	size_t nraw = 0, i = 0, t0, a, nend;
	sm_status st = SM_ERR_ARG;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		goto out;
	st = SM_ERR_NOMEM;
	raw = calloc(MIME_MAX_PARAMS, sizeof(*raw));
	if (raw == NULL)
		goto out;
	if ((st = skip_cfws(s, &i)) != SM_OK)
		goto out;
	st = SM_ERR_PARSE;
	for (t0 = i; is_token_char((unsigned char)s[i]); i++)
		;
	if (i == t0)
		goto out;
	st = SM_ERR_NOMEM;
	if ((out->type = mime_xstrndup(s + t0, i - t0)) == NULL)
		goto out;
	if (want_subtype) {
		if ((st = skip_cfws(s, &i)) != SM_OK)
			goto out;
		st = SM_ERR_PARSE;
		if (s[i] != '/')
			goto out;
		i++;
		if ((st = skip_cfws(s, &i)) != SM_OK)
			goto out;
		st = SM_ERR_PARSE;
		for (t0 = i; is_token_char((unsigned char)s[i]); i++)
			;
		if (i == t0)
			goto out;
		st = SM_ERR_NOMEM;
		if ((out->subtype = mime_xstrndup(s + t0, i - t0)) == NULL)
			goto out;
	}

	for (;;) {
		if ((st = skip_cfws(s, &i)) != SM_OK)
			goto out;
		if (s[i] == '\0')
			break;
		if (s[i] != ';') {
			/* Text where a ';' belongs: skip it, as readers do. */
			if ((st = skip_to_semicolon(s, &i)) != SM_OK)
				goto out;
			continue;
		}
		i++;
		if ((st = skip_cfws(s, &i)) != SM_OK)
			goto out;
		if (s[i] == '\0' || s[i] == ';')
			continue; /* empty parameter: "a/b;" or ";;" */
		for (t0 = i; is_token_char((unsigned char)s[i]); i++)
			;
		if (i == t0) {
			if ((st = skip_to_semicolon(s, &i)) != SM_OK)
				goto out;
			continue;
		}
		a = t0;
		nend = i;
		if ((st = skip_cfws(s, &i)) != SM_OK)
			goto out;
		if (s[i] != '=') {
			/* A parameter without a value says nothing. */
			if ((st = skip_to_semicolon(s, &i)) != SM_OK)
				goto out;
			continue;
		}
		st = SM_ERR_LIMIT;
		if (nraw == MIME_MAX_PARAMS)
			goto out;
		st = SM_ERR_NOMEM;
		raw[nraw].name = mime_xstrndup(s + a, nend - a);
		if (raw[nraw].name == NULL)
			goto out;
		nraw++;
		i++;
		if ((st = skip_cfws(s, &i)) != SM_OK)
			goto out;
		buf_reset(&val);
		if (s[i] == '"') {
			if ((st = read_quoted(s, &i, &val)) != SM_OK)
				goto out;
		} else {
			/* Unquoted values are read leniently: real mailers
			 * write boundary=----=_Part_1 with tspecials. */
			for (t0 = i; s[i] != '\0' && s[i] != ';' && s[i] != '"' &&
			             s[i] != '(' && !is_lws((unsigned char)s[i]);
			     i++)
				;
			if ((st = buf_append(&val, s + t0, i - t0)) != SM_OK)
				goto out;
		}
		st = SM_ERR_NOMEM;
		if ((raw[nraw - 1].value = buf_steal(&val)) == NULL)
			goto out;
		mime_str_lower(raw[nraw - 1].name);
		if ((st = rawparam_split(&raw[nraw - 1])) != SM_OK)
			goto out;
	}

	st = SM_ERR_NOMEM;
	out->params = calloc(nraw ? nraw : 1, sizeof(*out->params));
	if (out->params == NULL)
		goto out;
	for (a = 0; a < nraw; a++) {
		struct mime_param *p;

		if (raw[a].used)
			continue;
		buf_reset(&val);
		if ((st = assemble_param(raw, nraw, a, &val)) != SM_OK)
			goto out;
		st = SM_ERR_NOMEM;
		p = &out->params[out->nparams];
		if ((p->name = strdup(raw[a].name)) == NULL)
			goto out;
		if ((p->value = buf_steal(&val)) == NULL) {
			free(p->name);
			p->name = NULL;
			goto out;
		}
		out->nparams++;
	}
	mime_str_lower(out->type);
	if (out->subtype)
		mime_str_lower(out->subtype);
	st = SM_OK;
out:
	if (st != SM_OK)
		mime_ctype_free(out);
	rawparams_free(raw, nraw);
	buf_free(&val);
	return st;
}

sm_status
mime_ctype_parse(const char *value, struct mime_ctype *out)
{
	if (out == NULL)
		return SM_ERR_ARG;
	return mime_ctype_parse_any(value, true, out);
}

const char *
mime_ctype_param(const struct mime_ctype *ct, const char *name)
{
	size_t i;

	for (i = 0; ct != NULL && i < ct->nparams; i++)
		if (mime_ascii_eq(ct->params[i].name, name))
			return ct->params[i].value;
	return NULL;
}

bool
mime_ctype_is(const struct mime_ctype *ct, const char *type,
    const char *subtype)
{
	if (ct == NULL || ct->type == NULL || !mime_ascii_eq(ct->type, type))
		return false;
	return subtype == NULL ||
	    (ct->subtype != NULL && mime_ascii_eq(ct->subtype, subtype));
}

void
mime_ctype_free(struct mime_ctype *ct)
{
	size_t i;

	if (ct == NULL)
		return;
	for (i = 0; i < ct->nparams; i++) {
		free(ct->params[i].name);
		free(ct->params[i].value);
	}
	free(ct->params);
	free(ct->type);
	free(ct->subtype);
	memset(ct, 0, sizeof(*ct));
}


/* ------------------------------------------------------------------ */
/* Header splitting and serialisation                                   */
/* ------------------------------------------------------------------ */

sm_status
mime_split_headers(const struct mime_headers *all, struct mime_headers *outer,
    struct mime_headers *content)
{
	size_t i;
	sm_status st = SM_ERR_ARG;

	if (all == NULL || outer == NULL || content == NULL ||
	    outer->n != 0 || content->n != 0)
		return SM_ERR_ARG;
	for (i = 0; i < all->n; i++) {
		const struct mime_header *f = &all->v[i];
		bool inner = mime_ascii_starts_with(f->name, "Content-");

		st = mime_headers_add(inner ? content : outer, f->name,
		    f->value);
		if (st != SM_OK)
			goto out;
	}
	st = SM_OK;
	if (mime_headers_get(content, "Content-Type") == NULL)
		st = mime_headers_add(content, "Content-Type",
		    "text/plain; charset=us-ascii");
out:
	if (st != SM_OK) {
		mime_headers_free(outer);
		mime_headers_free(content);
	}
	return st;
}

/* Would "name:value" as written have a line over 998 octets or a bare
 * CR? Then it is refolded rather than copied. */
bool
mime_field_lines_ok(const char *name, const char *value)
{
	size_t col = strlen(name) + 1;
	const char *v;

	for (v = value; *v; v++) {
		if (*v == '\n') {
			col = 0;
		} else if (*v == '\r') {
			if (v[1] != '\n')
				return false;
		} else if (++col > LINE_HARD) {
			return false;
		}
	}
	return col <= LINE_HARD;
}

/*
 * Write one field with CRLF line ends. The value is copied as given (so
 * parsed fields come out as they went in) unless a line would break the
 * 998 limit, or fold78 is set and a single-line value passes column 78:
 * then it is refolded. A line break inside the value that is not followed
 * by whitespace would start a new field: SM_ERR_PARSE.
 */
sm_status
mime_emit_field(struct buf *out, const char *name, const char *value, bool fold78)
{
	size_t vlen = strlen(value), i, start = out->len;
	bool folded = strpbrk(value, "\r\n") != NULL;
	sm_status st = SM_ERR_PARSE;

	if (!mime_field_lines_ok(name, value) ||
	    (fold78 && !folded && strlen(name) + 2 + vlen > LINE_SOFT))
		return mime_header_fold(name, value, out);
	while (vlen > 0 && (value[vlen - 1] == '\r' || value[vlen - 1] == '\n'))
		vlen--;
	for (i = 0; i < vlen; i++)
		if (value[i] == '\n' && !mime_is_wsp((unsigned char)value[i + 1]))
			goto out;
	st = SM_ERR_NOMEM;
	if (buf_append_str(out, name) != SM_OK ||
	    buf_append_char(out, ':') != SM_OK)
		goto out;
	if (vlen > 0 && !mime_is_wsp((unsigned char)value[0]) && value[0] != '\r' &&
	    value[0] != '\n' && buf_append_char(out, ' ') != SM_OK)
		goto out;
	for (i = 0; i < vlen; i++) {
		if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r')) {
			if (buf_append(out, "\r\n", 2) != SM_OK)
				goto out;
		} else if (buf_append_char(out, value[i]) != SM_OK) {
			goto out;
		}
	}
	if (buf_append(out, "\r\n", 2) != SM_OK)
		goto out;
	st = SM_OK;
out:
	if (st != SM_OK) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return st;
}

sm_status
mime_entity_serialize(const struct mime_headers *hdrs,
    const unsigned char *body, size_t n, struct buf *out)
{
	size_t start, i;
	sm_status st = SM_ERR_ARG;

	if (hdrs == NULL || out == NULL || (body == NULL && n > 0))
		return SM_ERR_ARG;
	start = out->len;
	for (i = 0; i < hdrs->n; i++)
		if ((st = mime_emit_field(out, hdrs->v[i].name, hdrs->v[i].value,
		         true)) != SM_OK)
			goto out;
	st = SM_ERR_NOMEM;
	if (buf_append(out, "\r\n", 2) != SM_OK ||
	    buf_append(out, body, n) != SM_OK)
		goto out;
	st = SM_OK;
out:
	if (st != SM_OK) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return st;
}

