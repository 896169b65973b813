/*
 * encword.c — RFC 2047 encoded-words: decode for matching, encode after
 * editing.
 */
#include "encword.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"

/* One encoded-word found at p: its parts (pointers into the value). */
struct ew {
	const char *cs, *text;
	size_t cslen, textlen;
	char enc;             /* 'B' or 'Q' */
	const char *end;      /* just past "?=" */
};

/* Is there an encoded-word at p? RFC 2047 §2: no white space inside,
 * charset and encoding are tokens, text has no '?' or space. */
static bool
ew_at(const char *p, struct ew *w)
{
	const char *q;

	if (p[0] != '=' || p[1] != '?')
		return false;
	w->cs = p + 2;
	for (q = w->cs; *q && *q != '?'; q++)
		if (isspace((unsigned char)*q) || (unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e)
			return false;
	if (*q != '?' || q == w->cs)
		return false;
	w->cslen = (size_t)(q - w->cs);
	w->enc = (char)toupper((unsigned char)q[1]);
	if ((w->enc != 'B' && w->enc != 'Q') || q[2] != '?')
		return false;
	w->text = q + 3;
	for (q = w->text; *q && !(q[0] == '?' && q[1] == '='); q++)
		if (isspace((unsigned char)*q) || *q == '?')
			return false;
	if (*q == '\0')
		return false;
	w->textlen = (size_t)(q - w->text);
	w->end = q + 2;
	return true;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = toupper(c);
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The bytes an encoded-word's text stands for. */
static sm_status
ew_bytes(const struct ew *w, struct buf *out)
{
	sm_status st = SM_OK;

	if (w->enc == 'B')
		return mime_b64_decode((const unsigned char *)w->text, w->textlen, out);
	for (size_t i = 0; i < w->textlen && st == SM_OK; i++) {
		int c = (unsigned char)w->text[i];

		if (c == '_') {
			c = ' ';
		} else if (c == '=') {
			int h, l;

			if (i + 2 >= w->textlen || (h = hexval(w->text[i + 1])) < 0 ||
			    (l = hexval(w->text[i + 2])) < 0)
				return SM_ERR_PARSE;
			c = h * 16 + l;
			i += 2;
		}
		st = buf_append_char(out, (char)c);
	}
	return st;
}

/* Convert bytes in charset cs to UTF-8, appending to out. */
static sm_status
to_utf8(const char *cs, const struct buf *in, struct buf *out)
{
	iconv_t cd = iconv_open("UTF-8", cs);
	char *ip = (char *)in->data, *op;
	size_t il = in->len, ol;
	sm_status st = SM_OK;

	if (cd == (iconv_t)-1)
		return SM_ERR_UNSUPPORTED;
	while (il > 0 && st == SM_OK) {
		if ((st = buf_reserve(out, il * 4 + 16)) != SM_OK)
			break;
		op = (char *)out->data + out->len;
		ol = out->cap - out->len - 1;
		if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1 && errno != E2BIG)
			st = SM_ERR_PARSE;
		out->len = (size_t)(op - (char *)out->data);
	}
	if (out->data)
		out->data[out->len] = '\0';
	iconv_close(cd);
	return st;
}

/* Decode one encoded-word into out (UTF-8). */
static sm_status
ew_decode(const struct ew *w, struct buf *out, char *why, size_t whylen)
{
	char cs[64];
	size_t n = w->cslen;
	const char *star = memchr(w->cs, '*', w->cslen); /* RFC 2231 language */
	struct buf raw = BUF_INIT;
	sm_status st;

	if (star)
		n = (size_t)(star - w->cs);
	if (n == 0 || n >= sizeof(cs)) {
		sm_seterr(why, whylen, "encoded-word with an unusable charset name");
		return SM_ERR_PARSE;
	}
	memcpy(cs, w->cs, n);
	cs[n] = '\0';
	if ((st = ew_bytes(w, &raw)) != SM_OK) {
		buf_free(&raw);
		if (st == SM_ERR_PARSE)
			sm_seterr(why, whylen, "encoded-word (%s, %c) does not decode", cs, w->enc);
		return st;
	}
	st = raw.len ? to_utf8(cs, &raw, out) : SM_OK;
	buf_free(&raw);
	if (st == SM_ERR_UNSUPPORTED || st == SM_ERR_PARSE) {
		sm_seterr(why, whylen, st == SM_ERR_UNSUPPORTED ? "unknown charset \"%s\"" :
		    "bytes invalid in charset \"%s\"", cs);
		return SM_ERR_PARSE;
	}
	return st;
}

sm_status
encword_decode(const char *value, struct buf *out, bool *had_words, char *why, size_t whylen)
{
	char *v = mime_header_unfold(value);
	const char *p;
	bool prev_word = false;
	sm_status st = SM_OK;

	if (had_words)
		*had_words = false;
	if (v == NULL)
		return SM_ERR_NOMEM;
	for (p = v; *p && st == SM_OK;) {
		struct ew w;
		size_t ws = strspn(p, " \t");

		/* white space between two encoded-words is not text */
		if (ws && prev_word && ew_at(p + ws, &w)) {
			p += ws;
			continue;
		}
		if (ew_at(p, &w) && (p == v || isspace((unsigned char)p[-1]) || prev_word)) {
			if (had_words)
				*had_words = true;
			st = ew_decode(&w, out, why, whylen);
			p = w.end;
			prev_word = true;
			continue;
		}
		prev_word = false;
		if (ws) {
			st = buf_append(out, p, ws);
			p += ws;
		} else {
			st = buf_append_char(out, *p++);
		}
	}
	if (st == SM_OK && out->data == NULL)
		st = buf_append_str(out, "");
	free(v);
	return st;
}

sm_status
encword_encode(const char *utf8, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)utf8;
	size_t n = strlen(utf8), i = 0;
	bool ascii = true;
	sm_status st = SM_OK;

	for (size_t k = 0; k < n; k++)
		ascii = ascii && s[k] >= 0x20 && s[k] < 0x7f;
	/* "=?" in plain text would read as an encoded-word: encode that too */
	if (ascii && strstr(utf8, "=?") == NULL)
		return buf_append_str(out, utf8);
	/* 75 - strlen("=?UTF-8?B??=") = 63 base64 characters: 45 bytes */
	while (i < n && st == SM_OK) {
		size_t take = 0;
		struct buf b = BUF_INIT;

		while (i + take < n) {
			size_t k = 1;
			while (i + take + k < n && (s[i + take + k] & 0xc0) == 0x80)
				k++;
			if (take + k > 45)
				break;
			take += k;
		}
		if (take == 0)
			take = n - i; /* a broken sequence longer than a word */
		if ((st = mime_b64_encode(s + i, take, &b)) == SM_OK) {
			while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
				b.len--;
			st = buf_printf(out, "%s=?UTF-8?B?%.*s?=", i ? " " : "", (int)b.len, b.data);
		}
		buf_free(&b);
		i += take;
	}
	return st;
}
