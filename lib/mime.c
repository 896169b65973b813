/*
 * mime.c — header lists, Content-Type, the entity parser, S/MIME
 * detection, RFC 8551 canonicalisation and the output builders.
 *
 * The parser works on a read-only view of the message (the caller may
 * have mmap'd a 50 MB spool file): entities record pointers into it and
 * bodies are never copied. Every bound in struct mime_limits is checked
 * before the excess is allocated, and every malformed construct that
 * could make two readers disagree about where a part starts or ends is an
 * error, because a detached signature covers exactly those bytes.
 */
#include "mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Recursion depth never exceeds this, whatever the limits say. */
#define MIME_HARD_MAX_DEPTH 1000u
/* Parameters in one Content-Type or Content-Disposition. */
#define MIME_MAX_PARAMS 128
/* RFC 5322 §2.1.1 line limits, CRLF excluded. */
#define LINE_SOFT 78
#define LINE_HARD 998

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

static char *
xstrndup(const void *p, size_t n)
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
static unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static void
str_lower(char *s)
{
	for (; *s; s++)
		*s = (char)ascii_lower((unsigned char)*s);
}

static bool
ascii_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (ascii_lower((unsigned char)*a) !=
		    ascii_lower((unsigned char)*b))
			return false;
	return *a == *b;
}

static bool
ascii_starts_with(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++)
		if (ascii_lower((unsigned char)*s) !=
		    ascii_lower((unsigned char)*prefix))
			return false;
	return true;
}

/* Does s end with suffix, ignoring ASCII case? */
static bool
ascii_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && ascii_eq(s + n - m, suffix);
}

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 ftext: printable US-ASCII except ":". */
static bool
valid_field_name(const char *s, size_t n)
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
static sm_status
headers_push(struct mime_headers *h, char *name, char *value)
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
static void
headers_truncate(struct mime_headers *h, size_t keep)
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
	    !valid_field_name(name, strlen(name)))
		goto out;
	st = SM_ERR_NOMEM;
	nm = strdup(name);
	val = strdup(value);
	if (nm == NULL || val == NULL)
		goto out;
	st = headers_push(h, nm, val);
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
		if (ascii_eq(h->v[i].name, name))
			return h->v[i].value;
	return NULL;
}

size_t
mime_headers_count(const struct mime_headers *h, const char *name)
{
	size_t i, k = 0;

	for (i = 0; h != NULL && i < h->n; i++)
		if (ascii_eq(h->v[i].name, name))
			k++;
	return k;
}

size_t
mime_headers_remove(struct mime_headers *h, const char *name)
{
	size_t i, j = 0, removed = 0;

	for (i = 0; h != NULL && i < h->n; i++) {
		if (ascii_eq(h->v[i].name, name)) {
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
	    !valid_field_name(name, strlen(name)))
		return SM_ERR_ARG;
	for (i = 0; i < h->n; i++)
		if (ascii_eq(h->v[i].name, name))
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
		if (ascii_eq(h->v[j].name, name)) {
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
		headers_truncate(dst, keep);
	return st;
}

void
mime_headers_free(struct mime_headers *h)
{
	if (h == NULL)
		return;
	headers_truncate(h, 0);
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
	while (j > 0 && is_wsp((unsigned char)s[j - 1]))
		j--;
	while (lead < j && is_wsp((unsigned char)s[lead]))
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
	if (!valid_field_name(name, nlen))
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
		while (is_wsp((unsigned char)v[i]))
			i++;
		word = i;
		while (v[i] != '\0' && !is_wsp((unsigned char)v[i]))
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
			    : (ascii_lower((unsigned char)v[1]) >= 'a' &&
			       ascii_lower((unsigned char)v[1]) <= 'f')
			    ? ascii_lower((unsigned char)v[1]) - 'a' + 10 : -1;
			lo = (v[2] >= '0' && v[2] <= '9') ? v[2] - '0'
			    : (ascii_lower((unsigned char)v[2]) >= 'a' &&
			       ascii_lower((unsigned char)v[2]) <= 'f')
			    ? ascii_lower((unsigned char)v[2]) - 'a' + 10 : -1;
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
static sm_status
ctype_parse(const char *s, bool want_subtype, struct mime_ctype *out)
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
	if ((out->type = xstrndup(s + t0, i - t0)) == NULL)
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
		if ((out->subtype = xstrndup(s + t0, i - t0)) == NULL)
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
		raw[nraw].name = xstrndup(s + a, nend - a);
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
		str_lower(raw[nraw - 1].name);
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
	str_lower(out->type);
	if (out->subtype)
		str_lower(out->subtype);
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
	return ctype_parse(value, true, out);
}

const char *
mime_ctype_param(const struct mime_ctype *ct, const char *name)
{
	size_t i;

	for (i = 0; ct != NULL && i < ct->nparams; i++)
		if (ascii_eq(ct->params[i].name, name))
			return ct->params[i].value;
	return NULL;
}

bool
mime_ctype_is(const struct mime_ctype *ct, const char *type,
    const char *subtype)
{
	if (ct == NULL || ct->type == NULL || !ascii_eq(ct->type, type))
		return false;
	return subtype == NULL ||
	    (ct->subtype != NULL && ascii_eq(ct->subtype, subtype));
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
/* Entity parser                                                        */
/* ------------------------------------------------------------------ */

struct pctx {
	const struct mime_limits *lim;
	unsigned max_depth;
	size_t nentities; /* entities created so far, whole tree */
	size_t nheaders;  /* header fields stored so far, whole tree */
};

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
	while (nlen > 0 && is_wsp(p[start + nlen - 1]))
		nlen--;
	if (!valid_field_name((const char *)p + start, nlen))
		goto out;
	st = SM_ERR_LIMIT;
	if (h->n >= c->lim->max_headers ||
	    c->nheaders >= c->lim->max_total_headers)
		goto out;
	st = SM_ERR_NOMEM;
	name = xstrndup(p + start, nlen);
	value = xstrndup(p + colon + 1, end - colon - 1);
	if (name == NULL || value == NULL)
		goto out;
	if ((st = headers_push(h, name, value)) != SM_OK)
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
		if (is_wsp(p[pos])) {
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
	str_lower(u);
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
	while (q < n && is_wsp(p[q]))
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

	for (;;) { /* pos is always the start of a line */
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

static bool
is_identity_cte(const char *cte)
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
	           is_identity_cte(e->cte)) {
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
	static const struct mime_headers none = MIME_HEADERS_INIT;
	struct pctx c;

	if (out == NULL)
		return SM_ERR_ARG;
	*out = NULL;
	if (body == NULL && n > 0)
		return SM_ERR_ARG;
	pctx_init(&c, lim);
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
	if (is_identity_cte(e->cte))
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
	bool yes = v != NULL && ascii_ends_with(v, suffix);

	if (!yes && (v = mime_headers_get(&e->hdrs, "Content-Disposition")) &&
	    (u = mime_header_unfold(v)) != NULL) {
		if (ctype_parse(u, false, &cd) == SM_OK &&
		    (v = mime_ctype_param(&cd, "filename")) != NULL)
			yes = ascii_ends_with(v, suffix);
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
			sig = ascii_eq(u, "application/pkcs7-signature") ||
			    ascii_eq(u, "application/x-pkcs7-signature");
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
			if (ascii_eq(v, "signed-data"))
				return MIME_SMIME_SIGNED_OPAQUE;
			if (ascii_eq(v, "enveloped-data"))
				return MIME_SMIME_ENVELOPED;
			if (ascii_eq(v, "authEnveloped-data"))
				return MIME_SMIME_AUTH_ENVELOPED;
			if (ascii_eq(v, "certs-only"))
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
		bool inner = ascii_starts_with(f->name, "Content-");

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
static bool
field_lines_ok(const char *name, const char *value)
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
static sm_status
emit_field(struct buf *out, const char *name, const char *value, bool fold78)
{
	size_t vlen = strlen(value), i, start = out->len;
	bool folded = strpbrk(value, "\r\n") != NULL;
	sm_status st = SM_ERR_PARSE;

	if (!field_lines_ok(name, value) ||
	    (fold78 && !folded && strlen(name) + 2 + vlen > LINE_SOFT))
		return mime_header_fold(name, value, out);
	while (vlen > 0 && (value[vlen - 1] == '\r' || value[vlen - 1] == '\n'))
		vlen--;
	for (i = 0; i < vlen; i++)
		if (value[i] == '\n' && !is_wsp((unsigned char)value[i + 1]))
			goto out;
	st = SM_ERR_NOMEM;
	if (buf_append_str(out, name) != SM_OK ||
	    buf_append_char(out, ':') != SM_OK)
		goto out;
	if (vlen > 0 && !is_wsp((unsigned char)value[0]) && value[0] != '\r' &&
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
		if ((st = emit_field(out, hdrs->v[i].name, hdrs->v[i].value,
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
		if (!field_lines_ok(h->v[i].name, h->v[i].value))
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
		    ascii_eq(h->v[i].name, "Content-Transfer-Encoding")) {
			if (!done &&
			    (st = emit_field(out, h->v[i].name, cte, false)) !=
			        SM_OK)
				return st;
			done = true;
			continue;
		}
		if ((st = emit_field(out, h->v[i].name, h->v[i].value,
		         false)) != SM_OK)
			return st;
	}
	if (cte != NULL && !done)
		return emit_field(out, "Content-Transfer-Encoding", cte, false);
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
	} else if (is_identity_cte(e->cte)) {
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

/* ------------------------------------------------------------------ */
/* Output builders                                                      */
/* ------------------------------------------------------------------ */

sm_status
mime_build_signed(const unsigned char *entity, size_t n,
    const unsigned char *sig_der, size_t sig_len, const char *micalg,
    struct mime_headers *out_hdrs, struct buf *out_body)
{
	char b[MIME_BOUNDARY_SIZE];
	struct buf ct = BUF_INIT;
	size_t hstart, bstart, i;
	sm_status st = SM_ERR_ARG;

	if (out_hdrs == NULL || out_body == NULL)
		return SM_ERR_ARG;
	hstart = out_hdrs->n;
	bstart = out_body->len;
	if (entity == NULL || n == 0 || sig_der == NULL || sig_len == 0)
		goto out;
	if (micalg == NULL)
		micalg = "sha-256";
	if (micalg[0] == '\0' || strlen(micalg) > 32)
		goto out;
	for (i = 0; micalg[i]; i++) {
		unsigned char ch = (unsigned char)micalg[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-'))
			goto out;
	}
	if ((st = mime_boundary_new(b, sizeof(b))) != SM_OK)
		goto out;
	if ((st = buf_printf(&ct,
	         "multipart/signed; protocol=\"application/pkcs7-signature\"; "
	         "micalg=%s; boundary=\"%s\"", micalg, b)) != SM_OK ||
	    (st = mime_headers_add(out_hdrs, "Content-Type", buf_cstr(&ct))) !=
	        SM_OK)
		goto out;
	/* The CRLF after the entity belongs to the delimiter, so the first
	 * part is exactly the signed bytes. The base64 text ends in CRLF,
	 * which serves as the close delimiter's line break. */
	if ((st = buf_printf(out_body,
	         "This is an S/MIME signed message in MIME format.\r\n"
	         "\r\n--%s\r\n", b)) != SM_OK ||
	    (st = buf_append(out_body, entity, n)) != SM_OK ||
	    (st = buf_printf(out_body,
	         "\r\n--%s\r\n"
	         "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
	         "Content-Transfer-Encoding: base64\r\n"
	         "Content-Disposition: attachment; filename=smime.p7s\r\n"
	         "Content-Description: S/MIME Cryptographic Signature\r\n"
	         "\r\n", b)) != SM_OK ||
	    (st = mime_b64_encode(sig_der, sig_len, out_body)) != SM_OK ||
	    (st = buf_printf(out_body, "--%s--\r\n", b)) != SM_OK)
		goto out;
	st = SM_OK;
out:
	if (st != SM_OK) {
		headers_truncate(out_hdrs, hstart);
		out_body->len = bstart;
		if (out_body->data)
			out_body->data[bstart] = '\0';
	}
	buf_free(&ct);
	return st;
}

sm_status
mime_build_pkcs7(const unsigned char *der, size_t n, const char *smime_type,
    struct mime_headers *out_hdrs, struct buf *out_body)
{
	static const struct {
		const char *type, *file, *desc;
	} kinds[] = {
		{ "signed-data", "smime.p7m", "S/MIME Signed Message" },
		{ "enveloped-data", "smime.p7m", "S/MIME Encrypted Message" },
		{ "authEnveloped-data", "smime.p7m",
		    "S/MIME Encrypted Message" },
		{ "certs-only", "smime.p7c", "S/MIME Certificates" },
		{ "compressed-data", "smime.p7z", "S/MIME Compressed Message" },
	};
	struct buf v = BUF_INIT;
	size_t hstart, bstart, k;
	sm_status st = SM_ERR_ARG;

	if (out_hdrs == NULL || out_body == NULL)
		return SM_ERR_ARG;
	hstart = out_hdrs->n;
	bstart = out_body->len;
	if (der == NULL || n == 0 || smime_type == NULL)
		goto out;
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (strcmp(smime_type, kinds[k].type) == 0)
			break;
	if (k == sizeof(kinds) / sizeof(kinds[0]))
		goto out;
	if ((st = buf_printf(&v, "application/pkcs7-mime; smime-type=%s; "
	                         "name=%s", kinds[k].type, kinds[k].file)) !=
	        SM_OK ||
	    (st = mime_headers_add(out_hdrs, "Content-Type", buf_cstr(&v))) !=
	        SM_OK ||
	    (st = mime_headers_add(out_hdrs, "Content-Transfer-Encoding",
	         "base64")) != SM_OK)
		goto out;
	buf_reset(&v);
	if ((st = buf_printf(&v, "attachment; filename=%s", kinds[k].file)) !=
	        SM_OK ||
	    (st = mime_headers_add(out_hdrs, "Content-Disposition",
	         buf_cstr(&v))) != SM_OK ||
	    (st = mime_headers_add(out_hdrs, "Content-Description",
	         kinds[k].desc)) != SM_OK ||
	    (st = mime_b64_encode(der, n, out_body)) != SM_OK)
		goto out;
	st = SM_OK;
out:
	if (st != SM_OK) {
		headers_truncate(out_hdrs, hstart);
		out_body->len = bstart;
		if (out_body->data)
			out_body->data[bstart] = '\0';
	}
	buf_free(&v);
	return st;
}
