/*
 * addrlist.c — RFC 5322 address lists (see addrlist.h).
 *
 * A small tokenizer skips white space and comments and hands out atoms,
 * quoted strings, domain literals and single special characters; a
 * recursive-descent parser over one token of look-ahead builds each mailbox.
 * The grammar is §3.4 with the obsolete forms of §4.4 (phrases with dots,
 * routes, empty list elements, white space around the dots of an addr-spec).
 */
#include "addrlist.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "buf.h"

enum al_tok {
	AL_END,
	AL_ATOM,    /* run of atext */
	AL_QSTRING, /* "..." (text between the quotes, still escaped) */
	AL_DLIT,    /* [...] */
	AL_SPECIAL, /* one of < > @ , ; : . */
	AL_BAD,     /* an unbalanced quote, comment or bracket, a control byte */
};

struct al_lex {
	const char *p;      /* next unread byte */
	enum al_tok tok;    /* the current token */
	const char *ts;     /* its text */
	size_t tn;
	char tc;            /* the character of an AL_SPECIAL */
};

static bool
al_atext(unsigned char c)
{
	if (c >= 0x80) /* RFC 6532: UTF-8 in display names and local parts */
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Skip white space and (nested) comments. False on an unclosed comment. */
static bool
al_skip_cfws(struct al_lex *lx)
{
	for (;;) {
		unsigned char c = (unsigned char)*lx->p;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			lx->p++;
		} else if (c == '(') {
			unsigned depth = 0;
			do {
				c = (unsigned char)*lx->p;
				if (c == '\0')
					return false;
				if (c == '\\' && lx->p[1] != '\0')
					lx->p++;
				else if (c == '(')
					depth++;
				else if (c == ')')
					depth--;
				lx->p++;
			} while (depth > 0);
		} else {
			return true;
		}
	}
}

/* Scan to the closing delimiter of a quoted string or domain literal. */
static bool
al_scan_delimited(struct al_lex *lx, char close)
{
	const char *s = ++lx->p;

	while (*lx->p != close) {
		if (*lx->p == '\0')
			return false;
		if (*lx->p == '\\' && lx->p[1] != '\0')
			lx->p++;
		lx->p++;
	}
	lx->ts = s;
	lx->tn = (size_t)(lx->p - s);
	lx->p++;
	return true;
}

static void
al_next(struct al_lex *lx)
{
	unsigned char c;

	lx->tok = AL_BAD;
	if (!al_skip_cfws(lx))
		return;
	c = (unsigned char)*lx->p;
	if (c == '\0') {
		lx->tok = AL_END;
	} else if (c == '"') {
		if (al_scan_delimited(lx, '"'))
			lx->tok = AL_QSTRING;
	} else if (c == '[') {
		if (al_scan_delimited(lx, ']'))
			lx->tok = AL_DLIT;
	} else if (strchr("<>@,;:.", c) != NULL) {
		lx->tok = AL_SPECIAL;
		lx->tc = (char)c;
		lx->p++;
	} else if (al_atext(c)) {
		lx->ts = lx->p;
		while (al_atext((unsigned char)*lx->p))
			lx->p++;
		lx->tn = (size_t)(lx->p - lx->ts);
		lx->tok = AL_ATOM;
	}
}

static bool
al_is(const struct al_lex *lx, char c)
{
	return lx->tok == AL_SPECIAL && lx->tc == c;
}

/* Append a quoted string's text to b: the quotes are dropped, quoted-pairs
 * unescaped. The caller re-quotes when the result is not a dot-atom. */
static sm_status
al_append_unquoted(struct buf *b, const char *s, size_t n)
{
	sm_status st = SM_OK;

	for (size_t i = 0; i < n && st == SM_OK; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		if (s[i] == '\r' || s[i] == '\n') /* folding inside the quotes */
			continue;
		st = buf_append_char(b, s[i]);
	}
	return st;
}

/* word *("." word), collected into local; the lexer ends on '@'. */
static sm_status
al_local_part(struct al_lex *lx, struct buf *local)
{
	sm_status st;

	for (;;) {
		if (lx->tok == AL_ATOM)
			st = buf_append(local, lx->ts, lx->tn);
		else if (lx->tok == AL_QSTRING)
			st = al_append_unquoted(local, lx->ts, lx->tn);
		else
			return SM_ERR_PARSE;
		if (st != SM_OK)
			return st;
		al_next(lx);
		if (!al_is(lx, '.'))
			return al_is(lx, '@') ? SM_OK : SM_ERR_PARSE;
		if ((st = buf_append_char(local, '.')) != SM_OK)
			return st;
		al_next(lx);
	}
}

/* dot-atom (or obs-domain); a domain literal is not an address we can use. */
static sm_status
al_domain(struct al_lex *lx, struct buf *out)
{
	sm_status st;

	for (;;) {
		if (lx->tok != AL_ATOM)
			return SM_ERR_PARSE;
		if ((st = buf_append(out, lx->ts, lx->tn)) != SM_OK)
			return st;
		al_next(lx);
		if (!al_is(lx, '.'))
			return SM_OK;
		if ((st = buf_append_char(out, '.')) != SM_OK)
			return st;
		al_next(lx);
	}
}

/* Is s a dot-atom local part (no quoting needed)? */
static bool
al_dot_atom(const char *s)
{
	bool prev_dot = true;

	for (; *s; s++) {
		if (*s == '.') {
			if (prev_dot)
				return false;
			prev_dot = true;
		} else if (al_atext((unsigned char)*s) && (unsigned char)*s < 0x80) {
			prev_dot = false;
		} else {
			return false;
		}
	}
	return !prev_dot;
}

/* The addr-spec after its local part: '@' domain; normalised into list. */
static sm_status
al_finish_mailbox(struct al_lex *lx, struct buf *local, struct alist *l)
{
	struct buf spec = BUF_INIT;
	char *norm = NULL;
	size_t cap;
	sm_status st;

	if (!al_is(lx, '@'))
		return SM_ERR_PARSE;
	al_next(lx);
	if (al_dot_atom(buf_cstr(local))) {
		st = buf_append_str(&spec, buf_cstr(local));
	} else {
		/* Needs quotes: keep them, escaping what must be escaped. */
		st = buf_append_char(&spec, '"');
		for (const char *s = buf_cstr(local); st == SM_OK && *s; s++) {
			if (*s == '"' || *s == '\\')
				st = buf_append_char(&spec, '\\');
			if (st == SM_OK)
				st = buf_append_char(&spec, *s);
		}
		if (st == SM_OK)
			st = buf_append_char(&spec, '"');
	}
	if (st == SM_OK)
		st = buf_append_char(&spec, '@');
	if (st == SM_OK)
		st = al_domain(lx, &spec);
	if (st == SM_OK && l->al_n >= ALIST_MAX)
		st = SM_ERR_LIMIT;
	if (st == SM_OK) {
		cap = spec.len + 1;
		norm = malloc(cap);
		if (norm == NULL)
			st = SM_ERR_NOMEM;
		else if ((st = addr_normalize(buf_cstr(&spec), norm, cap)) == SM_OK)
			l->al_addr[l->al_n++] = norm, norm = NULL;
	}
	free(norm);
	buf_free(&spec);
	return st;
}

/* angle-addr after its '<': [obs-route] addr-spec '>'. */
static sm_status
al_angle_addr(struct al_lex *lx, struct alist *l)
{
	struct buf local = BUF_INIT, route = BUF_INIT;
	sm_status st = SM_OK;

	al_next(lx);
	/* obs-route: "@a.example,@b.example:" — routing advice, dropped. */
	while (st == SM_OK && (al_is(lx, '@') || al_is(lx, ','))) {
		bool at = al_is(lx, '@');
		al_next(lx);
		if (at) {
			buf_reset(&route);
			st = al_domain(lx, &route);
		}
		if (st == SM_OK && al_is(lx, ':')) {
			al_next(lx);
			break;
		}
	}
	if (st == SM_OK)
		st = al_local_part(lx, &local);
	if (st == SM_OK)
		st = al_finish_mailbox(lx, &local, l);
	if (st == SM_OK && !al_is(lx, '>'))
		st = SM_ERR_PARSE;
	if (st == SM_OK)
		al_next(lx);
	buf_free(&local);
	buf_free(&route);
	return st;
}

/*
 * One mailbox, or (when allow_group) a group. A phrase is read first; what
 * follows it decides: '<' an angle-addr, ':' a group, '@' the phrase was the
 * local part of a bare addr-spec.
 */
static sm_status
al_address(struct al_lex *lx, struct alist *l, bool allow_group)
{
	struct buf local = BUF_INIT;
	bool words = false, local_ok = true, want_word = true;
	sm_status st = SM_OK;

	while (st == SM_OK && (lx->tok == AL_ATOM || lx->tok == AL_QSTRING || al_is(lx, '.'))) {
		if (al_is(lx, '.')) {
			local_ok = local_ok && !want_word;
			want_word = true;
			st = buf_append_char(&local, '.');
		} else {
			local_ok = local_ok && want_word;
			want_word = false;
			words = true;
			st = lx->tok == AL_ATOM ? buf_append(&local, lx->ts, lx->tn)
			                        : al_append_unquoted(&local, lx->ts, lx->tn);
		}
		al_next(lx);
	}
	if (st != SM_OK) {
		/* allocation failure: fall through to cleanup */
	} else if (al_is(lx, '<')) {
		st = al_angle_addr(lx, l);
	} else if (al_is(lx, '@') && words && local_ok && !want_word) {
		st = al_finish_mailbox(lx, &local, l);
	} else if (al_is(lx, ':') && words && allow_group) {
		al_next(lx);
		while (st == SM_OK && !al_is(lx, ';')) {
			if (al_is(lx, ',')) {
				al_next(lx);
				continue;
			}
			st = al_address(lx, l, false);
			if (st == SM_OK && !al_is(lx, ',') && !al_is(lx, ';'))
				st = SM_ERR_PARSE;
		}
		if (st == SM_OK)
			al_next(lx);
	} else {
		st = SM_ERR_PARSE;
	}
	buf_free(&local);
	return st;
}

sm_status
alist_parse(const char *value, struct alist *out)
{
	struct al_lex lx = { .p = value };
	sm_status st = SM_OK;

	memset(out, 0, sizeof(*out));
	if (value == NULL)
		return SM_ERR_ARG;
	out->al_addr = calloc(ALIST_MAX, sizeof(*out->al_addr));
	if (out->al_addr == NULL)
		return SM_ERR_NOMEM;
	al_next(&lx);
	while (st == SM_OK && lx.tok != AL_END) {
		if (al_is(&lx, ',')) { /* obs-addr-list: empty elements */
			al_next(&lx);
			continue;
		}
		st = al_address(&lx, out, true);
		if (st == SM_OK && !al_is(&lx, ',') && lx.tok != AL_END)
			st = SM_ERR_PARSE;
	}
	if (st != SM_OK)
		alist_free(out);
	return st;
}

void
alist_free(struct alist *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->al_n; i++)
		free(l->al_addr[i]);
	free(l->al_addr);
	l->al_addr = NULL;
	l->al_n = 0;
}

int
alist_contains(const struct alist *l, const char *addr)
{
	for (size_t i = 0; i < l->al_n; i++)
		if (strcmp(l->al_addr[i], addr) == 0)
			return 1;
	return 0;
}
