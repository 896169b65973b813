/*
 * check_mime.c — the MIME layer: headers, Content-Type, codecs, the
 * entity parser and its limits, S/MIME detection, canonicalisation and
 * the output builders.
 *
 * Messages in the tables are written with CRLF; most tests run each one a
 * second time with every CR removed, because files on disk use LF only.
 * Signed corpus messages are cross-checked with OpenSSL's CMS code, an
 * independent judge of where a signed part starts and ends.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>

#include "buf.h"
#include "mime.h"
#include "testutil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define U(s) ((const unsigned char *)(s))
/* A string literal and its length, NULs included. */
#define LIT(s) s, sizeof(s) - 1

#define ck_status(got, want, what)                                        \
	ck_assert_msg((got) == (want), "%s: got %s, want %s", (what),      \
	    sm_strstatus(got), sm_strstatus(want))

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* Printable rendering of bytes for failure messages (static, truncated). */
static const char *
esc(const unsigned char *p, size_t n)
{
	static char out[2][1024];
	static int which;
	char *o = out[which ^= 1];
	size_t i, k = 0;

	for (i = 0; i < n && k < sizeof(out[0]) - 8; i++) {
		if (p[i] == '\r')
			k += (size_t)sprintf(o + k, "\\r");
		else if (p[i] == '\n')
			k += (size_t)sprintf(o + k, "\\n");
		else if (p[i] < 32 || p[i] >= 127)
			k += (size_t)sprintf(o + k, "\\x%02x", p[i]);
		else
			o[k++] = (char)p[i];
	}
	if (i < n)
		k += (size_t)sprintf(o + k, "...");
	o[k] = '\0';
	return o;
}

static void
ck_bytes(const unsigned char *got, size_t gn, const void *want, size_t wn,
    const char *what)
{
	ck_assert_msg(gn == wn && (wn == 0 || memcmp(got, want, wn) == 0),
	    "%s: got \"%s\" (%zu bytes), want \"%s\" (%zu bytes)", what,
	    esc(got, gn), gn, esc(want, wn), wn);
}

/* s with every CR removed: the LF-only form of a table message. */
static char *
lf_only(const char *s)
{
	char *d = malloc(strlen(s) + 1), *w = d;

	ck_assert_ptr_nonnull(d);
	for (; *s; s++)
		if (*s != '\r')
			*w++ = *s;
	*w = '\0';
	return d;
}

/* Bare LFs to CRLF, as a test-side reference independent of mime.c. */
static struct buf
to_crlf(const unsigned char *p, size_t n)
{
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			ck_assert_int_eq(buf_append_char(&b, '\r'), SM_OK);
		ck_assert_int_eq(buf_append_char(&b, (char)p[i]), SM_OK);
	}
	return b;
}

/*
 * What a relay downgrading 8bit to 7bit would look at. Returns NULL when
 * the bytes are pure 7bit with CRLF line ends and no line over 998
 * octets, or a description of the first problem.
 */
static const char *
why_not_7bit(const unsigned char *p, size_t n)
{
	static char why[128];
	size_t i, col = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == 0 || p[i] >= 128) {
			snprintf(why, sizeof(why), "byte 0x%02x at %zu", p[i], i);
			return why;
		}
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) {
			snprintf(why, sizeof(why), "bare LF at %zu", i);
			return why;
		}
		if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')) {
			snprintf(why, sizeof(why), "bare CR at %zu", i);
			return why;
		}
		if (p[i] == '\n')
			col = 0;
		else if (p[i] != '\r' && ++col > 998) {
			snprintf(why, sizeof(why), "line over 998 at %zu", i);
			return why;
		}
	}
	return NULL;
}

/* Deterministic pseudo-random bytes (no seeding differences between
 * runs, so a failure reproduces). */
static void
fill_random(unsigned char *p, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
}

static struct mime_entity *
must_parse(const char *msg, const char *what)
{
	struct mime_entity *e = NULL;
	sm_status st = mime_parse(U(msg), strlen(msg), NULL, &e);

	ck_status(st, SM_OK, what);
	return e;
}

/* ------------------------------------------------------------------ */
/* Header lists, unfolding, folding                                     */
/* ------------------------------------------------------------------ */

START_TEST(header_lists_find_set_and_remove_fields_case_insensitively)
{
	struct mime_headers h = MIME_HEADERS_INIT, c = MIME_HEADERS_INIT;
	static const char *bad[] = { "", "Bad Name", "a:b", "caf\xc3\xa9",
		"tab\there" };
	size_t i;

	ck_assert_int_eq(mime_headers_add(&h, "Subject", "one"), SM_OK);
	ck_assert_int_eq(mime_headers_add(&h, "X-A", " a1"), SM_OK);
	ck_assert_int_eq(mime_headers_add(&h, "x-a", "a2"), SM_OK);
	ck_assert_int_eq(mime_headers_add(&h, "To", "t"), SM_OK);
	ck_assert_str_eq(mime_headers_get(&h, "X-a"), " a1");
	ck_assert_ptr_null(mime_headers_get(&h, "Cc"));
	ck_assert_uint_eq(mime_headers_count(&h, "X-A"), 2);

	ck_assert_int_eq(mime_headers_set(&h, "X-A", "new"), SM_OK);
	ck_assert_uint_eq(h.n, 3);
	ck_assert_str_eq(h.v[1].name, "X-A");
	ck_assert_str_eq(h.v[1].value, "new");
	ck_assert_str_eq(h.v[2].name, "To");
	ck_assert_int_eq(mime_headers_set(&h, "Cc", "c"), SM_OK);
	ck_assert_str_eq(h.v[3].name, "Cc");

	ck_assert_int_eq(mime_headers_copy(&c, &h), SM_OK);
	ck_assert_uint_eq(c.n, 4);
	ck_assert_uint_eq(mime_headers_remove(&c, "SUBJECT"), 1);
	ck_assert_uint_eq(mime_headers_remove(&c, "subject"), 0);
	ck_assert_str_eq(c.v[0].name, "X-A");
	ck_assert_uint_eq(h.n, 4); /* the copy is independent */

	for (i = 0; i < N(bad); i++) {
		sm_status st = mime_headers_add(&h, bad[i], "v");

		ck_assert_msg(st == SM_ERR_ARG,
		    "name \"%s\": got %s, want %s", bad[i], sm_strstatus(st),
		    sm_strstatus(SM_ERR_ARG));
	}
	ck_assert_uint_eq(h.n, 4);
	mime_headers_free(&h);
	mime_headers_free(&h); /* idempotent */
	mime_headers_free(&c);
	mime_headers_free(NULL);
}
END_TEST

static const struct {
	const char *in, *want;
} unfold_cases[] = {
	{ "simple", "simple" },
	{ " \t leading and trailing \t ", "leading and trailing" },
	{ " multipart/mixed;\r\n\tboundary=\"b\"", "multipart/mixed;\tboundary=\"b\"" },
	{ "a;\n b", "a; b" },
	{ "\r\n starts folded", "starts folded" },
	{ "", "" },
	{ "   ", "" },
	/* A line break not before whitespace is not folding: it is an
	 * injection attempt, and the line break goes. */
	{ "x\r\nBcc: victim@example.org", "xBcc: victim@example.org" },
};

START_TEST(unfolding_removes_line_breaks_and_trims_whitespace)
{
	char *got = mime_header_unfold(unfold_cases[_i].in);

	ck_assert_ptr_nonnull(got);
	ck_assert_msg(strcmp(got, unfold_cases[_i].want) == 0,
	    "unfold(\"%s\"): got \"%s\", want \"%s\"",
	    esc(U(unfold_cases[_i].in), strlen(unfold_cases[_i].in)), got,
	    unfold_cases[_i].want);
	free(got);
}
END_TEST

static char long_word[1200];

static const struct {
	const char *name;
	const char *value; /* NULL: long_word truncated to len */
	size_t len;
	sm_status st;
	bool fits78; /* every line must stay within 78 */
} fold_cases[] = {
	{ "Subject", "short", 0, SM_OK, true },
	{ "Subject", "", 0, SM_OK, true },
	{ "Subject",
	    "A rather long subject line that certainly does not fit on one "
	    "line of seventy-eight characters, so it has to be folded twice "
	    "or even three times before it ends",
	    0, SM_OK, true },
	{ "Content-Type",
	    "multipart/signed; protocol=\"application/pkcs7-signature\"; "
	    "micalg=sha-256; boundary=\"=_smime_0123456789abcdefghijklmnopq\"",
	    0, SM_OK, true },
	{ "Content-Type", " multipart/mixed;\r\n\tboundary=\"already folded\"",
	    0, SM_OK, true },
	{ "X-Spaces", "several   spaces    between\t\twords  and a long run "
	    "of text to force a fold somewhere in the middle of it all",
	    0, SM_OK, true },
	{ "X-Long", NULL, 500, SM_OK, false },   /* unbreakable, <= 998 */
	{ "X-Long", NULL, 1100, SM_ERR_LIMIT, false },
	{ "Bad Name", "v", 0, SM_ERR_ARG, true },
};

START_TEST(folded_headers_unfold_to_the_original_and_keep_lines_short)
{
	struct buf out = BUF_INIT;
	char *val, *want, *got, *nl;
	const char *line, *end;
	size_t nlen = strlen(fold_cases[_i].name), llen;
	sm_status st;

	memset(long_word, 'x', sizeof(long_word) - 1);
	val = fold_cases[_i].value ? strdup(fold_cases[_i].value)
	                           : strndup(long_word, fold_cases[_i].len);
	ck_assert_ptr_nonnull(val);
	ck_assert_int_eq(buf_append_str(&out, "keep"), SM_OK);
	st = mime_header_fold(fold_cases[_i].name, val, &out);
	ck_status(st, fold_cases[_i].st, fold_cases[_i].name);
	if (st != SM_OK) {
		ck_assert_str_eq(buf_cstr(&out), "keep"); /* untouched */
		goto done;
	}
	got = (char *)out.data + 4;
	ck_assert_msg(strncmp(got, fold_cases[_i].name, nlen) == 0 &&
	        got[nlen] == ':',
	    "got \"%s\", want it to start with \"%s:\"", got,
	    fold_cases[_i].name);
	ck_assert_msg(out.len >= 6 && memcmp(out.data + out.len - 2, "\r\n", 2) == 0,
	    "got \"%s\", want a CRLF at the end", esc(out.data, out.len));
	for (line = got; *line; line = end + 2) {
		end = strstr(line, "\r\n");
		ck_assert_ptr_nonnull(end);
		llen = (size_t)(end - line);
		ck_assert_msg(llen <= 998, "line of %zu octets", llen);
		ck_assert_msg(!fold_cases[_i].fits78 || llen <= 78,
		    "got a line of %zu octets, want <= 78: \"%s\"", llen,
		    esc(U(line), llen));
		ck_assert_msg(line == got || line[0] == ' ' || line[0] == '\t',
		    "continuation line does not start with whitespace: \"%s\"",
		    esc(U(line), llen));
		ck_assert_ptr_null(memchr(line, '\r', llen));
	}
	/* Unfolding the folded value gives the unfolded original back. */
	nl = strndup(got + nlen + 1, out.len - 4 - nlen - 1);
	ck_assert_ptr_nonnull(nl);
	got = mime_header_unfold(nl);
	want = mime_header_unfold(val);
	ck_assert_msg(strcmp(got, want) == 0, "round trip: got \"%s\", want \"%s\"",
	    got, want);
	free(got);
	free(want);
	free(nl);
done:
	free(val);
	buf_free(&out);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Content-Type                                                         */
/* ------------------------------------------------------------------ */

struct kv {
	const char *k, *v;
};

static const struct {
	const char *in;
	sm_status st;
	const char *type, *subtype;
	size_t nparams;
	struct kv p[3];
} ct_cases[] = {
	{ "text/plain", SM_OK, "text", "plain", 0, { { 0 } } },
	{ " Text/PLAIN; Charset=US-ASCII", SM_OK, "text", "plain", 1,
	    { { "charset", "US-ASCII" } } },
	{ "multipart/mixed; boundary=\"a b;c\"", SM_OK, "multipart", "mixed",
	    1, { { "boundary", "a b;c" } } },
	{ "multipart/mixed; boundary=----=_Part_1_2.3", SM_OK, "multipart",
	    "mixed", 1, { { "boundary", "----=_Part_1_2.3" } } },
	{ "text/plain; name=\"a \\\"quoted\\\" \\\\ name\"", SM_OK, "text",
	    "plain", 1, { { "name", "a \"quoted\" \\ name" } } },
	{ "text/plain (comment (nested \\) paren)) ; (c) charset (x) = (y) "
	  "utf-8 (z)", SM_OK, "text", "plain", 1, { { "charset", "utf-8" } } },
	{ "multipart/signed;\r\n\tprotocol=\"application/pkcs7-signature\";"
	  "\r\n micalg=sha-256; boundary=\"xyz\"",
	    SM_OK, "multipart", "signed", 3,
	    { { "protocol", "application/pkcs7-signature" },
	        { "micalg", "sha-256" }, { "boundary", "xyz" } } },
	{ "multipart/mixed; BOUNDARY=\"folded\r\n inside\"", SM_OK,
	    "multipart", "mixed", 1, { { "boundary", "folded inside" } } },
	/* RFC 2231 */
	{ "application/x-stuff; "
	  "title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A",
	    SM_OK, "application", "x-stuff", 1,
	    { { "title", "This is ***fun***" } } },
	{ "multipart/mixed; boundary*0=\"abc\"; boundary*1=def; "
	  "boundary*2*=%41%42",
	    SM_OK, "multipart", "mixed", 1, { { "boundary", "abcdefAB" } } },
	{ "multipart/mixed; boundary*1=def; boundary*0=abc", SM_OK,
	    "multipart", "mixed", 1, { { "boundary", "abcdef" } } },
	{ "application/octet-stream; name*0*=utf-8''%E2%82%AC; name*1=.p7m",
	    SM_OK, "application", "octet-stream", 1,
	    { { "name", "\xe2\x82\xac.p7m" } } },
	{ "a/b; name=plain; NAME*=utf-8''ext", SM_OK, "a", "b", 1,
	    { { "name", "ext" } } },
	/* Junk that hides no parameter is skipped. */
	{ "text/plain; format; charset=utf-8", SM_OK, "text", "plain", 1,
	    { { "charset", "utf-8" } } },
	{ "text/plain charset=utf-8", SM_OK, "text", "plain", 0, { { 0 } } },
	{ "text/plain; a=1 junk; b=2", SM_OK, "text", "plain", 2,
	    { { "a", "1" }, { "b", "2" } } },
	{ "text/plain;", SM_OK, "text", "plain", 0, { { 0 } } },
	{ "text/plain; a=1;; b=\"\"", SM_OK, "text", "plain", 2,
	    { { "a", "1" }, { "b", "" } } },
	/* Errors */
	{ "", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "text", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "/plain", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "text/", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "text/plain; a=\"unterminated", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "text/plain; a=\"ends in backslash\\", SM_ERR_PARSE, NULL, NULL, 0,
	    { { 0 } } },
	{ "text/plain (unterminated comment", SM_ERR_PARSE, NULL, NULL, 0,
	    { { 0 } } },
	{ "a/b; x=1; X=2", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "a/b; x*0=a; x*2=c", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "a/b; x*0=a; x*0=b", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "a/b; x*00=a", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "a/b; x*0=a; x*=b", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "a/b; x*=utf-8''a%00b", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
	{ "\xff\xfe/\x01", SM_ERR_PARSE, NULL, NULL, 0, { { 0 } } },
};

START_TEST(content_type_parameters_parse_like_mail_readers_do)
{
	struct mime_ctype ct = MIME_CTYPE_INIT;
	sm_status st = mime_ctype_parse(ct_cases[_i].in, &ct);
	size_t k;
	const char *v;

	ck_status(st, ct_cases[_i].st,
	    esc(U(ct_cases[_i].in), strlen(ct_cases[_i].in)));
	if (st != SM_OK) {
		ck_assert_ptr_null(ct.type);
		ck_assert_uint_eq(ct.nparams, 0);
		return;
	}
	ck_assert_str_eq(ct.type, ct_cases[_i].type);
	ck_assert_str_eq(ct.subtype, ct_cases[_i].subtype);
	ck_assert_msg(ct.nparams == ct_cases[_i].nparams,
	    "%s: got %zu params, want %zu", ct_cases[_i].in, ct.nparams,
	    ct_cases[_i].nparams);
	for (k = 0; k < ct_cases[_i].nparams; k++) {
		v = mime_ctype_param(&ct, ct_cases[_i].p[k].k);
		ck_assert_msg(v != NULL && strcmp(v, ct_cases[_i].p[k].v) == 0,
		    "%s: param %s got \"%s\", want \"%s\"", ct_cases[_i].in,
		    ct_cases[_i].p[k].k, v ? v : "(none)", ct_cases[_i].p[k].v);
	}
	ck_assert(mime_ctype_is(&ct, ct_cases[_i].type, NULL));
	mime_ctype_free(&ct);
	mime_ctype_free(&ct);
}
END_TEST

START_TEST(content_type_with_too_many_parameters_is_refused)
{
	struct mime_ctype ct = MIME_CTYPE_INIT;
	struct buf b = BUF_INIT;
	int i;

	ck_assert_int_eq(buf_append_str(&b, "text/plain"), SM_OK);
	for (i = 0; i < 128; i++)
		ck_assert_int_eq(buf_printf(&b, "; p%d=v", i), SM_OK);
	ck_status(mime_ctype_parse(buf_cstr(&b), &ct), SM_OK, "128 params");
	ck_assert_uint_eq(ct.nparams, 128);
	mime_ctype_free(&ct);
	ck_assert_int_eq(buf_append_str(&b, "; one=more"), SM_OK);
	ck_status(mime_ctype_parse(buf_cstr(&b), &ct), SM_ERR_LIMIT,
	    "129 params");
	buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* base64 and quoted-printable                                          */
/* ------------------------------------------------------------------ */

/* RFC 4648 §10 test vectors. */
static const struct {
	const char *plain, *b64;
} b64_vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

START_TEST(base64_matches_the_rfc_4648_vectors_both_ways)
{
	struct buf enc = BUF_INIT, dec = BUF_INIT, want = BUF_INIT;
	const char *p = b64_vectors[_i].plain, *b = b64_vectors[_i].b64;

	ck_assert_int_eq(mime_b64_encode(U(p), strlen(p), &enc), SM_OK);
	if (*b)
		ck_assert_int_eq(buf_printf(&want, "%s\r\n", b), SM_OK);
	ck_bytes(enc.data, enc.len, want.data, want.len, p);
	ck_assert_int_eq(mime_b64_decode(U(b), strlen(b), &dec), SM_OK);
	ck_bytes(dec.data, dec.len, p, strlen(p), b);
	buf_free(&enc);
	buf_free(&dec);
	buf_free(&want);
}
END_TEST

START_TEST(base64_lines_hold_76_characters_and_end_in_crlf)
{
	unsigned char in[400];
	struct buf enc = BUF_INIT, dec = BUF_INIT;
	size_t n, i, col;

	fill_random(in, sizeof(in), 7);
	for (n = 0; n <= sizeof(in); n++) {
		buf_reset(&enc);
		buf_reset(&dec);
		ck_assert_int_eq(mime_b64_encode(in, n, &enc), SM_OK);
		for (i = 0, col = 0; i < enc.len; i++) {
			if (enc.data[i] == '\r') {
				ck_assert_int_eq(enc.data[i + 1], '\n');
				ck_assert_msg(col == 76 || i + 2 == enc.len,
				    "n=%zu: short line of %zu before the end", n,
				    col);
				col = 0;
				i++;
				continue;
			}
			ck_assert_msg(++col <= 76, "n=%zu: line over 76", n);
		}
		ck_assert_msg(n == 0 || (enc.len >= 2 &&
		    enc.data[enc.len - 1] == '\n'), "n=%zu: no final CRLF", n);
		ck_assert_int_eq(mime_b64_decode(enc.data, enc.len, &dec), SM_OK);
		ck_bytes(dec.data, dec.len, in, n, "round trip");
	}
	buf_free(&enc);
	buf_free(&dec);
}
END_TEST

static const struct {
	const char *in;
	size_t len;
	sm_status st;
	const char *want;
} b64_decode_cases[] = {
	{ LIT("Zm9v\r\nYmFy\n"), SM_OK, "foobar" },
	{ LIT(" Z m\t9 v "), SM_OK, "foo" },
	{ LIT("Zm9vYg==\r\n"), SM_OK, "foob" },
	{ LIT("Zm9"), SM_ERR_PARSE, NULL },     /* truncated */
	{ LIT("Zg="), SM_ERR_PARSE, NULL },     /* padding cut short */
	{ LIT("Z"), SM_ERR_PARSE, NULL },
	{ LIT("Zm9vY"), SM_ERR_PARSE, NULL },
	{ LIT("Z==="), SM_ERR_PARSE, NULL },    /* too much padding */
	{ LIT("=Zg="), SM_ERR_PARSE, NULL },
	{ LIT("Zg=a"), SM_ERR_PARSE, NULL },    /* data inside the padding */
	{ LIT("Zg==Zg=="), SM_ERR_PARSE, NULL }, /* data after the padding */
	{ LIT("Zm9v!"), SM_ERR_PARSE, NULL },
	{ LIT("Zm9v-_=="), SM_ERR_PARSE, NULL }, /* base64url is not MIME */
	{ LIT("Zm9v\x80"), SM_ERR_PARSE, NULL },
	{ LIT("Zm\0v"), SM_ERR_PARSE, NULL },
};

START_TEST(base64_decoding_rejects_invalid_and_truncated_input)
{
	struct buf out = BUF_INIT;
	const char *in = b64_decode_cases[_i].in;
	size_t n = b64_decode_cases[_i].len;
	sm_status st;

	ck_assert_int_eq(buf_append_str(&out, "keep"), SM_OK);
	st = mime_b64_decode(U(in), n, &out);
	ck_status(st, b64_decode_cases[_i].st, esc(U(in), n));
	if (st == SM_OK)
		ck_bytes(out.data + 4, out.len - 4, b64_decode_cases[_i].want,
		    strlen(b64_decode_cases[_i].want), in);
	else
		ck_bytes(out.data, out.len, "keep", 4, "output after failure");
	buf_free(&out);
}
END_TEST

static const char a73[] =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char a75[] =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static const struct {
	const char *in;
	const char *want;
} qp_encode_cases[] = {
	{ "hello", "hello" },
	{ "a=b", "a=3Db" },
	{ "caf\xc3\xa9", "caf=C3=A9" },
	{ "trailing \r\nx", "trailing=20\r\nx" },
	{ "tab\t", "tab=09" },
	{ "in the middle is fine", "in the middle is fine" },
	{ "From me\r\nFrom you\r\nx From y", "=46rom me\r\n=46rom you\r\nx From y" },
	{ "From", "From" },
	{ ".\r\n..", "=2E\r\n=2E." },
	{ "bare\nlf", "bare=0Alf" },
	{ "bare\rcr", "bare=0Dcr" },
	{ "\r\n\r\n", "\r\n\r\n" },
	{ "\x01\x7f", "=01=7F" },
};

START_TEST(quoted_printable_encodes_the_rfc_2045_cases)
{
	struct buf out = BUF_INIT;
	const char *in = qp_encode_cases[_i].in;

	ck_assert_int_eq(mime_qp_encode(U(in), strlen(in), &out), SM_OK);
	ck_bytes(out.data, out.len, qp_encode_cases[_i].want,
	    strlen(qp_encode_cases[_i].want), in);
	buf_free(&out);
}
END_TEST

/* Soft breaks: in[] built from a prefix of 'a's, then want[]. */
static const struct {
	size_t as;
	const char *tail;
	const char *want_head; /* a's in the first line */
	const char *want_rest;
} qp_wrap_cases[] = {
	{ 76, "", NULL, "" },            /* exactly 76 fits on a last line */
	{ 77, "", a75, "=\r\naa" },
	{ 80, "", a75, "=\r\naaaaa" },
	{ 73, "\xff", a73, "=FF" },      /* =FF ends the line at col 76 */
	{ 74, "\xff", NULL, "=\r\n=FF" },
	{ 73, "\xff" "b", a73, "=\r\n=FFb" },
	{ 75, ".x", a75, "=\r\n=2Ex" }, /* no line may start with "." */
	{ 75, "From x", a75, "=\r\n=46rom x" },
	{ 75, " \r\n", a75, "=\r\n=20\r\n" },
	/* A soft break must not start a line that could read as a MIME
	 * delimiter when the text sits inside a multipart. */
	{ 75, "--b", a75, "=\r\n=2D-b" },
	{ 0, "--b", NULL, "--b" }, /* a hard line keeps its dashes */
};

START_TEST(quoted_printable_soft_breaks_keep_lines_within_76)
{
	struct buf in = BUF_INIT, want = BUF_INIT, out = BUF_INIT;
	size_t k;

	for (k = 0; k < qp_wrap_cases[_i].as; k++)
		ck_assert_int_eq(buf_append_char(&in, 'a'), SM_OK);
	ck_assert_int_eq(buf_append_str(&in, qp_wrap_cases[_i].tail), SM_OK);
	if (qp_wrap_cases[_i].want_head)
		ck_assert_int_eq(buf_append_str(&want, qp_wrap_cases[_i].want_head),
		    SM_OK);
	else
		for (k = 0; k < qp_wrap_cases[_i].as; k++)
			ck_assert_int_eq(buf_append_char(&want, 'a'), SM_OK);
	ck_assert_int_eq(buf_append_str(&want, qp_wrap_cases[_i].want_rest),
	    SM_OK);
	ck_assert_int_eq(mime_qp_encode(in.data, in.len, &out), SM_OK);
	ck_bytes(out.data, out.len, want.data, want.len, "wrap");
	buf_free(&in);
	buf_free(&want);
	buf_free(&out);
}
END_TEST

static const struct {
	const char *in, *want;
} qp_decode_cases[] = {
	{ "a=3Db", "a=b" },
	{ "soft=\r\nbreak", "softbreak" },
	{ "soft=\nbreak", "softbreak" },
	{ "soft=  \r\nbreak", "softbreak" },
	{ "lower=c3=a9", "lower\xc3\xa9" },
	{ "trail  \r\nx", "trail\r\nx" },
	{ "trail\t\nx", "trail\nx" },
	{ "keep  inner  space", "keep  inner  space" },
	{ "bad=ZZ", "bad=ZZ" },
	{ "end=", "end" },
	{ "=4", "=4" },
	{ "keep\nlf", "keep\nlf" },
};

START_TEST(quoted_printable_decodes_leniently_as_rfc_2045_recommends)
{
	struct buf out = BUF_INIT;
	const char *in = qp_decode_cases[_i].in;

	ck_assert_int_eq(mime_qp_decode(U(in), strlen(in), &out), SM_OK);
	ck_bytes(out.data, out.len, qp_decode_cases[_i].want,
	    strlen(qp_decode_cases[_i].want), in);
	buf_free(&out);
}
END_TEST

START_TEST(quoted_printable_round_trips_any_bytes_in_safe_lines)
{
	static const char *pieces[] = { "\r\n", "\n", "\r", " ", "\t", ".",
		"From ", "=", "x", "\xc3\xa9", "\0", "word " };
	unsigned char rnd[4000];
	struct buf in = BUF_INIT, enc = BUF_INIT, dec = BUF_INIT;
	size_t i, col = 0, len;
	const unsigned char *line;

	/* Text made of the awkward pieces, plus a stretch of noise. */
	fill_random(rnd, sizeof(rnd), 42);
	for (i = 0; i < sizeof(rnd); i++) {
		const char *p = pieces[rnd[i] % N(pieces)];

		len = rnd[i] % N(pieces) == 10 ? 1 : strlen(p);
		ck_assert_int_eq(buf_append(&in, p, len), SM_OK);
	}
	ck_assert_int_eq(buf_append(&in, rnd, 500), SM_OK);
	ck_assert_int_eq(mime_qp_encode(in.data, in.len, &enc), SM_OK);
	ck_assert_ptr_null(why_not_7bit(enc.data, enc.len));
	for (i = 0, line = enc.data; i <= enc.len; i++) {
		if (i < enc.len && enc.data[i] != '\r') {
			col++;
			continue;
		}
		ck_assert_msg(col <= 76, "line of %zu", col);
		if (col > 0) {
			ck_assert_msg(line[col - 1] != ' ' && line[col - 1] != '\t',
			    "trailing whitespace: \"%s\"", esc(line, col));
			ck_assert_msg(line[0] != '.' &&
			        (col < 5 || memcmp(line, "From ", 5) != 0),
			    "unsafe line start: \"%s\"", esc(line, col));
		}
		col = 0;
		i++; /* skip LF */
		line = enc.data + i + 1;
	}
	ck_assert_int_eq(mime_qp_decode(enc.data, enc.len, &dec), SM_OK);
	ck_assert_msg(dec.len == in.len && memcmp(dec.data, in.data, in.len) == 0,
	    "round trip differs: %zu bytes back for %zu", dec.len, in.len);
	buf_free(&in);
	buf_free(&enc);
	buf_free(&dec);
}
END_TEST

START_TEST(boundaries_are_fresh_short_and_made_of_bchars)
{
	static const char bchars[] =
	    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "'()+_,-./:=?";
	char seen[20][MIME_BOUNDARY_SIZE], small[10];
	size_t i, j, n;

	for (i = 0; i < N(seen); i++) {
		ck_assert_int_eq(mime_boundary_new(seen[i], sizeof(seen[i])), SM_OK);
		n = strlen(seen[i]);
		ck_assert_msg(n >= 30 && n <= 70, "length %zu", n);
		ck_assert_msg(strspn(seen[i], bchars) == n, "got \"%s\"", seen[i]);
		ck_assert_msg(strncmp(seen[i], "=_", 2) == 0, "got \"%s\"", seen[i]);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(seen[i], seen[j]);
	}
	ck_status(mime_boundary_new(small, sizeof(small)), SM_ERR_ARG,
	    "10-byte buffer");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Entity parser: part limits                                           */
/* ------------------------------------------------------------------ */

#define SIGNED_HDR                                                        \
	"Content-Type: multipart/signed; protocol=\"application/pkcs7-"    \
	"signature\"; micalg=sha-256; boundary=\"sig\"\r\n\r\n"

static const struct {
	const char *what;
	const char *msg;
	size_t part;      /* index of the part checked */
	const char *raw;  /* its raw bytes */
	const char *body; /* its body bytes */
	const char *preamble, *epilogue; /* of the multipart */
} raw_cases[] = {
	{ "signed part is the bytes between the delimiters",
	    SIGNED_HDR "preamble\r\n--sig\r\nContent-Type: text/plain\r\n\r\n"
	    "Hello\r\n\r\n--sig\r\nContent-Type: application/pkcs7-signature"
	    "\r\n\r\nAAAA\r\n--sig--\r\nepilogue\r\n",
	    0, "Content-Type: text/plain\r\n\r\nHello\r\n", "Hello\r\n",
	    "preamble", "epilogue\r\n" },
	{ "the last part ends before the close delimiter's line break",
	    SIGNED_HDR "--sig\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
	    "--sig\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA"
	    "\r\n--sig--",
	    1, "Content-Type: application/pkcs7-signature\r\n\r\nAAAA", "AAAA",
	    "", "" },
	{ "transport padding after delimiters is allowed",
	    SIGNED_HDR "--sig  \r\nContent-Type: text/plain\r\n\r\nHi\r\n"
	    "--sig\t\r\nX: y\r\n\r\nz\r\n--sig-- \r\n",
	    0, "Content-Type: text/plain\r\n\r\nHi", "Hi", "", "" },
	{ "a part without headers starts with the blank line",
	    SIGNED_HDR "--sig\r\n\r\nno headers\r\n--sig\r\n\r\nx\r\n--sig--\r\n",
	    0, "\r\nno headers", "no headers", "", "" },
	{ "an empty part is empty",
	    SIGNED_HDR "--sig\r\n--sig\r\n\r\nx\r\n--sig--\r\n",
	    0, "", "", "", "" },
	{ "lines that only start like a delimiter are content",
	    SIGNED_HDR "--sig\r\n\r\n--sigx\r\n--sig -\r\n---sig\r\n"
	    "--sig\r\n\r\nx\r\n--sig--\r\n",
	    0, "\r\n--sigx\r\n--sig -\r\n---sig", "--sigx\r\n--sig -\r\n---sig",
	    "", "" },
	{ "a boundary may hold spaces and tspecials",
	    "Content-Type: multipart/mixed; boundary=\"---=_=_ 65 _=_=---\""
	    "\r\n\r\n-----=_=_ 65 _=_=---\r\n\r\nA\r\n-----=_=_ 65 _=_=-----\r\n",
	    0, "\r\nA", "A", "", "" },
	{ "an inner boundary may be a prefix of the enclosing one",
	    "Content-Type: multipart/mixed; boundary=bb\r\n\r\n--bb\r\n"
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
	    "A\r\n--b--\r\n--bb--\r\n",
	    0, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
	    "A\r\n--b--", "--b\r\n\r\nA\r\n--b--", "", "" },
	{ "nested multiparts are cut by their own boundary",
	    "Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n"
	    "Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
	    "--inner\r\n\r\none\r\n--inner--\r\n--outer--\r\n",
	    0, "Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
	    "--inner\r\n\r\none\r\n--inner--",
	    "--inner\r\n\r\none\r\n--inner--", "", "" },
};

START_TEST(part_raw_bytes_run_between_delimiter_line_breaks)
{
	int pass;

	for (pass = 0; pass < 2; pass++) {
		/* pass 0: CRLF as written; pass 1: the LF-only file form */
		char *msg = pass ? lf_only(raw_cases[_i].msg)
		                 : strdup(raw_cases[_i].msg);
		char *raw = pass ? lf_only(raw_cases[_i].raw)
		                 : strdup(raw_cases[_i].raw);
		char *body = pass ? lf_only(raw_cases[_i].body)
		                  : strdup(raw_cases[_i].body);
		char *pre = pass ? lf_only(raw_cases[_i].preamble)
		                 : strdup(raw_cases[_i].preamble);
		char *epi = pass ? lf_only(raw_cases[_i].epilogue)
		                 : strdup(raw_cases[_i].epilogue);
		struct mime_entity *e = must_parse(msg, raw_cases[_i].what);
		const struct mime_entity *p;

		ck_assert_msg(e->nparts > raw_cases[_i].part,
		    "%s: got %zu parts", raw_cases[_i].what, e->nparts);
		p = e->parts[raw_cases[_i].part];
		ck_bytes(p->raw, p->raw_len, raw, strlen(raw), raw_cases[_i].what);
		ck_bytes(p->body, p->body_len, body, strlen(body), "body");
		ck_bytes(e->preamble, e->preamble_len, pre, strlen(pre), "preamble");
		ck_bytes(e->epilogue, e->epilogue_len, epi, strlen(epi), "epilogue");
		/* Views into the source, never copies. */
		ck_assert(p->raw >= U(msg) && p->raw + p->raw_len <= U(msg) + strlen(msg));
		mime_entity_free(e);
		free(msg);
		free(raw);
		free(body);
		free(pre);
		free(epi);
	}
}
END_TEST

START_TEST(milter_headers_with_folding_parse_like_a_whole_message)
{
	static const char body[] =
	    "--b1\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n"
	    "--b1\r\nContent-Type: application/x-pkcs7-signature\r\n\r\nAA==\r\n"
	    "--b1--\r\n";
	struct mime_headers h = MIME_HEADERS_INIT;
	struct mime_entity *e = NULL;

	/* As Postfix passes them: leading space kept, folding inside. */
	ck_assert_int_eq(mime_headers_add(&h, "From", " a@example.org"), SM_OK);
	ck_assert_int_eq(mime_headers_add(&h, "Content-Type",
	    " multipart/signed;\r\n\tprotocol=\"application/x-pkcs7-signature\";"
	    "\r\n\tmicalg=sha-256;\r\n\tboundary=\"b1\""), SM_OK);
	ck_status(mime_parse_message(&h, U(body), strlen(body), NULL, &e), SM_OK,
	    "parse");
	ck_assert_ptr_null(e->raw);
	ck_assert_int_eq(mime_smime_kind(e), MIME_SMIME_SIGNED_DETACHED);
	ck_bytes(e->parts[0]->raw, e->parts[0]->raw_len,
	    "Content-Type: text/plain\r\n\r\nsigned text",
	    strlen("Content-Type: text/plain\r\n\r\nsigned text"), "signed part");
	mime_entity_free(e);
	mime_headers_free(&h);
}
END_TEST

START_TEST(multi_megabyte_bodies_are_viewed_not_copied)
{
	static const char head[] =
	    "Content-Type: multipart/mixed; boundary=big\r\n\r\n--big\r\n"
	    "Content-Type: text/plain\r\n\r\nhi\r\n--big\r\n"
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n";
	static const char tail[] = "--big--\r\n";
	unsigned char *raw = malloc(6 << 20);
	struct buf msg = BUF_INIT, dec = BUF_INIT;
	struct mime_entity *e = NULL;
	const struct mime_entity *att;

	ck_assert_ptr_nonnull(raw);
	fill_random(raw, 6 << 20, 99);
	ck_assert_int_eq(buf_append_str(&msg, head), SM_OK);
	ck_assert_int_eq(mime_b64_encode(raw, 6 << 20, &msg), SM_OK);
	ck_assert_int_eq(buf_append_str(&msg, tail), SM_OK);
	ck_status(mime_parse(msg.data, msg.len, NULL, &e), SM_OK, "parse 8 MB");
	ck_assert_uint_eq(e->nparts, 2);
	att = e->parts[1];
	ck_assert(att->body > msg.data && att->body + att->body_len < msg.data + msg.len);
	ck_assert_int_eq(mime_decode_body(att, &dec), SM_OK);
	ck_assert(dec.len == (6u << 20) && memcmp(dec.data, raw, dec.len) == 0);
	mime_entity_free(e);
	buf_free(&msg);
	buf_free(&dec);
	free(raw);
}
END_TEST

START_TEST(entities_without_content_type_get_the_rfc_defaults)
{
	struct mime_entity *e = must_parse(
	    "Subject: x\r\n\r\nbody", "no content-type");
	struct mime_entity *d = must_parse(
	    "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
	    "Subject: inner\r\n\r\ntext\r\n--d--\r\n", "digest");

	ck_assert(mime_ctype_is(&e->ct, "text", "plain"));
	ck_assert_str_eq(mime_ctype_param(&e->ct, "charset"), "us-ascii");
	ck_assert_str_eq(e->cte, "7bit");
	ck_assert(mime_ctype_is(&d->parts[0]->ct, "message", "rfc822"));
	ck_assert_uint_eq(d->parts[0]->nparts, 1);
	ck_assert_str_eq(mime_headers_get(&d->parts[0]->parts[0]->hdrs,
	    "subject"), " inner");
	mime_entity_free(e);
	mime_entity_free(d);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Entity parser: malformed input                                       */
/* ------------------------------------------------------------------ */

static char huge_boundary_msg[1024];

static const struct {
	const char *what;
	const char *msg;
	size_t len; /* 0: measured when the message is built in code */
	sm_status st;
} bad_cases[] = {
	{ "multipart without boundary",
	    LIT("Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nA\r\n--x--\r\n"),
	    SM_ERR_PARSE },
	{ "empty boundary",
	    LIT("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\n--\r\n"),
	    SM_ERR_PARSE },
	{ "boundary ending in a space",
	    LIT("Content-Type: multipart/mixed; boundary=\"b \"\r\n\r\n--b \r\n\r\n"
	    "A\r\n--b --\r\n"), SM_ERR_PARSE },
	{ "boundary with a control character",
	    LIT("Content-Type: multipart/mixed; boundary=\"b\x01\"\r\n\r\n--b\x01\r\n"
	    "\r\nA\r\n--b\x01--\r\n"), SM_ERR_PARSE },
	{ "missing close delimiter",
	    LIT("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nA\r\n"),
	    SM_ERR_PARSE },
	{ "no delimiter at all",
	    LIT("Content-Type: multipart/mixed; boundary=b\r\n\r\njust text\r\n"),
	    SM_ERR_PARSE },
	{ "close delimiter without any part",
	    LIT("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n"),
	    SM_ERR_PARSE },
	{ "nested multipart reusing the enclosing boundary",
	    LIT("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nA\r\n"
	    "--b--\r\n--b--\r\n"), SM_ERR_PARSE },
	{ "nested boundary extending the enclosing one",
	    LIT("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	    "Content-Type: multipart/mixed; boundary=bb\r\n\r\n--bb\r\n\r\nA\r\n"
	    "--bb--\r\n--b--\r\n"), SM_ERR_PARSE },
	{ "unterminated inner multipart",
	    LIT("Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	    "Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\r\nA\r\n"
	    "--o--\r\n"), SM_ERR_PARSE },
	{ "NUL in a header value",
	    LIT("Subject: a\0b\r\n\r\nbody"), SM_ERR_PARSE },
	{ "NUL in a header name",
	    LIT("Sub\0ject: ab\r\n\r\nbody"), SM_ERR_PARSE },
	{ "bare CR in a header",
	    LIT("Subject: a\rb\r\n\r\nbody"), SM_ERR_PARSE },
	{ "bare CR ending a header section without a line feed",
	    LIT("Subject: a\r"), SM_ERR_PARSE },
	{ "bare CR ending a part's headers before the delimiter (fuzzer)",
	    LIT("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	    "X: a\r\r\n--b--\r\n"), SM_ERR_PARSE },
	{ "header line without a colon",
	    LIT("Subject: a\r\nnot a header\r\n\r\nbody"), SM_ERR_PARSE },
	{ "continuation line first",
	    LIT(" folded: nothing\r\n\r\nbody"), SM_ERR_PARSE },
	{ "space inside a field name",
	    LIT("Sub ject: x\r\n\r\nbody"), SM_ERR_PARSE },
	{ "two Content-Type fields",
	    LIT("Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\nx"),
	    SM_ERR_PARSE },
	{ "two Content-Transfer-Encoding fields",
	    LIT("Content-Transfer-Encoding: base64\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\nx"), SM_ERR_PARSE },
	{ "unparseable Content-Type",
	    LIT("Content-Type: text\r\n\r\nx"), SM_ERR_PARSE },
	{ "unterminated quote in Content-Type",
	    LIT("Content-Type: multipart/mixed; boundary=\"b\r\n\r\n--b\r\n"), SM_ERR_PARSE },
	{ "bad part inside a multipart",
	    LIT("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	    "Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\nx\r\n"
	    "--b--\r\n"), SM_ERR_PARSE },
	{ "boundary over 200 octets", huge_boundary_msg, 0, SM_ERR_LIMIT },
};

START_TEST(malformed_messages_are_refused_with_a_status)
{
	struct mime_entity *e = (struct mime_entity *)1;
	const char *msg = bad_cases[_i].msg;
	size_t n = bad_cases[_i].len;
	sm_status st;

	if (msg == huge_boundary_msg) {
		struct buf b = BUF_INIT;
		char bnd[202];

		memset(bnd, 'b', 201);
		bnd[201] = '\0';
		ck_assert_int_eq(buf_printf(&b, "Content-Type: multipart/mixed; "
		    "boundary=%s\r\n\r\n--%s\r\n\r\nA\r\n--%s--\r\n", bnd, bnd,
		    bnd), SM_OK);
		ck_assert(b.len < sizeof(huge_boundary_msg));
		memcpy(huge_boundary_msg, b.data, b.len + 1);
		n = b.len;
		buf_free(&b);
	}
	st = mime_parse(U(msg), n, NULL, &e);
	ck_status(st, bad_cases[_i].st, bad_cases[_i].what);
	ck_assert_ptr_null(e);
}
END_TEST

START_TEST(a_200_octet_boundary_is_still_accepted)
{
	struct buf b = BUF_INIT;
	struct mime_entity *e = NULL;
	char bnd[201];

	memset(bnd, 'b', 200);
	bnd[200] = '\0';
	ck_assert_int_eq(buf_printf(&b, "Content-Type: multipart/mixed; "
	    "boundary=%s\r\n\r\n--%s\r\n\r\nA\r\n--%s--\r\n", bnd, bnd, bnd),
	    SM_OK);
	ck_status(mime_parse(b.data, b.len, NULL, &e), SM_OK, "200 octets");
	mime_entity_free(e);
	buf_free(&b);
}
END_TEST

/* Messages built in code: too big to write out. */
enum gen { GEN_BIG_HEADER, GEN_MANY_HEADERS, GEN_MANY_PARTS, GEN_DEEP_UNIQUE,
	GEN_DEEP_SAME, GEN_DEEP_RFC822, GEN_DEEP_UNTERMINATED };

static const struct {
	const char *what;
	enum gen gen;
	sm_status st;
} gen_cases[] = {
	{ "a 1 MB header", GEN_BIG_HEADER, SM_ERR_LIMIT },
	{ "1001 header fields", GEN_MANY_HEADERS, SM_ERR_LIMIT },
	{ "100,000 parts", GEN_MANY_PARTS, SM_ERR_LIMIT },
	{ "10,000 nested multiparts", GEN_DEEP_UNIQUE, SM_ERR_LIMIT },
	{ "10,000 nested multiparts sharing a boundary", GEN_DEEP_SAME,
	    SM_ERR_PARSE },
	{ "10,000 nested message/rfc822", GEN_DEEP_RFC822, SM_ERR_LIMIT },
	{ "10,000 nested multiparts never closed", GEN_DEEP_UNTERMINATED,
	    SM_ERR_PARSE },
};

START_TEST(absurd_messages_hit_a_limit_instead_of_the_allocator)
{
	struct buf b = BUF_INIT;
	struct mime_entity *e = (struct mime_entity *)1;
	int i;
	sm_status st;

	switch (gen_cases[_i].gen) {
	case GEN_BIG_HEADER:
		ck_assert_int_eq(buf_append_str(&b, "Subject: "), SM_OK);
		for (i = 0; i < (1 << 20) / 16; i++)
			ck_assert_int_eq(buf_append_str(&b, "0123456789abcdef"),
			    SM_OK);
		ck_assert_int_eq(buf_append_str(&b, "\r\n\r\nbody\r\n"), SM_OK);
		break;
	case GEN_MANY_HEADERS:
		for (i = 0; i < 1001; i++)
			ck_assert_int_eq(buf_printf(&b, "X-H%d: v\r\n", i), SM_OK);
		ck_assert_int_eq(buf_append_str(&b, "\r\nbody\r\n"), SM_OK);
		break;
	case GEN_MANY_PARTS:
		ck_assert_int_eq(buf_append_str(&b,
		    "Content-Type: multipart/mixed; boundary=p\r\n\r\n"), SM_OK);
		for (i = 0; i < 100000; i++)
			ck_assert_int_eq(buf_append_str(&b, "--p\r\n\r\nx\r\n"),
			    SM_OK);
		ck_assert_int_eq(buf_append_str(&b, "--p--\r\n"), SM_OK);
		break;
	case GEN_DEEP_UNIQUE:
	case GEN_DEEP_SAME:
	case GEN_DEEP_UNTERMINATED:
		for (i = 0; i < 10000; i++) {
			int id = gen_cases[_i].gen == GEN_DEEP_SAME ? 0 : i;

			ck_assert_int_eq(buf_printf(&b, "Content-Type: multipart/"
			    "mixed; boundary=b%05d\r\n\r\n--b%05d\r\n", id, id),
			    SM_OK);
		}
		ck_assert_int_eq(buf_append_str(&b, "\r\nleaf\r\n"), SM_OK);
		for (i = 9999; i >= 0 && gen_cases[_i].gen != GEN_DEEP_UNTERMINATED;
		     i--)
			ck_assert_int_eq(buf_printf(&b, "--b%05d--\r\n",
			    gen_cases[_i].gen == GEN_DEEP_SAME ? 0 : i), SM_OK);
		break;
	case GEN_DEEP_RFC822:
		for (i = 0; i < 10000; i++)
			ck_assert_int_eq(buf_append_str(&b,
			    "Content-Type: message/rfc822\r\n\r\n"), SM_OK);
		ck_assert_int_eq(buf_append_str(&b, "Subject: x\r\n\r\nleaf\r\n"),
		    SM_OK);
		break;
	}
	st = mime_parse(b.data, b.len, NULL, &e);
	ck_status(st, gen_cases[_i].st, gen_cases[_i].what);
	ck_assert_ptr_null(e);
	buf_free(&b);
}
END_TEST

START_TEST(limits_count_the_whole_tree_and_can_be_tightened)
{
	static const char msg[] =
	    "Content-Type: multipart/mixed; boundary=o\r\nX-A: 1\r\n\r\n"
	    "--o\r\nX-B: 1\r\n\r\nA\r\n--o\r\n"
	    "Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\r\nB\r\n"
	    "--i--\r\n--o--\r\n";
	struct mime_limits lim = mime_default_limits;
	struct mime_entity *e = NULL;

	/* root, part A, the inner multipart, part B: 4 entities, depth 2,
	 * 4 header fields, the longest 41 octets. */
	ck_status(mime_parse(U(msg), strlen(msg), &lim, &e), SM_OK, "defaults");
	mime_entity_free(e);
	lim.max_parts = 4;
	lim.max_depth = 2;
	lim.max_total_headers = 4;
	lim.max_header_len = 41;
	ck_status(mime_parse(U(msg), strlen(msg), &lim, &e), SM_OK, "exact fit");
	mime_entity_free(e);
	lim.max_parts = 3;
	ck_status(mime_parse(U(msg), strlen(msg), &lim, &e), SM_ERR_LIMIT,
	    "max_parts 3");
	lim = mime_default_limits;
	lim.max_depth = 1;
	ck_status(mime_parse(U(msg), strlen(msg), &lim, &e), SM_ERR_LIMIT,
	    "max_depth 1");
	lim = mime_default_limits;
	lim.max_total_headers = 3;
	ck_status(mime_parse(U(msg), strlen(msg), &lim, &e), SM_ERR_LIMIT,
	    "max_total_headers 3");
	lim = mime_default_limits;
	lim.max_header_len = 40;
	ck_status(mime_parse(U(msg), strlen(msg), &lim, &e), SM_ERR_LIMIT,
	    "max_header_len 40");
	lim = mime_default_limits;
	lim.max_boundary_len = 0;
	ck_status(mime_parse(U(msg), strlen(msg), &lim, &e), SM_ERR_LIMIT,
	    "max_boundary_len 0");
	ck_assert_ptr_null(e);
}
END_TEST

START_TEST(a_malformed_embedded_message_stays_an_opaque_part)
{
	static const char msg[] =
	    "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	    "Content-Type: message/rfc822\r\n\r\nnot a header line\r\n\r\n"
	    "text\r\n--o--\r\n";
	struct mime_entity *e = must_parse(msg, "embedded garbage");

	ck_assert_uint_eq(e->nparts, 1);
	ck_assert(mime_ctype_is(&e->parts[0]->ct, "message", "rfc822"));
	ck_assert_uint_eq(e->parts[0]->nparts, 0);
	mime_entity_free(e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Decoding bodies                                                      */
/* ------------------------------------------------------------------ */

static const struct {
	const char *msg;
	sm_status st;
	const char *want;
} decode_cases[] = {
	{ "Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n", SM_OK,
	    "hello" },
	{ "Content-Transfer-Encoding:  Quoted-Printable (comment)\r\n\r\n"
	  "caf=C3=A9=\r\n!", SM_OK, "caf\xc3\xa9!" },
	{ "Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n", SM_OK,
	    "caf\xc3\xa9\r\n" },
	{ "Subject: no encoding given\r\n\r\nplain", SM_OK, "plain" },
	{ "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8\r\n", SM_ERR_PARSE,
	    NULL },
	{ "Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n",
	    SM_ERR_UNSUPPORTED, NULL },
};

START_TEST(bodies_decode_according_to_their_transfer_encoding)
{
	struct mime_entity *e = must_parse(decode_cases[_i].msg, "decode");
	struct buf out = BUF_INIT;
	sm_status st = mime_decode_body(e, &out);

	ck_status(st, decode_cases[_i].st, decode_cases[_i].msg);
	if (st == SM_OK)
		ck_bytes(out.data, out.len, decode_cases[_i].want,
		    strlen(decode_cases[_i].want), "decoded");
	mime_entity_free(e);
	buf_free(&out);
}
END_TEST

/* ------------------------------------------------------------------ */
/* S/MIME structure                                                     */
/* ------------------------------------------------------------------ */

#define TWO_PARTS(ct1, ct2)                                               \
	"--s\r\nContent-Type: " ct1 "\r\n\r\nA\r\n--s\r\nContent-Type: "  \
	ct2 "\r\n\r\nAAAA\r\n--s--\r\n"

static const struct {
	const char *what, *msg;
	enum mime_smime_kind kind;
} kind_cases[] = {
	{ "multipart/signed, pkcs7-signature",
	    "Content-Type: multipart/signed; protocol=\"application/pkcs7-"
	    "signature\"; micalg=sha-256; boundary=s\r\n\r\n"
	    TWO_PARTS("text/plain", "application/pkcs7-signature"),
	    MIME_SMIME_SIGNED_DETACHED },
	{ "multipart/signed, x-pkcs7-signature, odd case",
	    "Content-Type: Multipart/Signed; Protocol=\"Application/X-PKCS7-"
	    "Signature\"; micalg=sha1; boundary=s\r\n\r\n"
	    TWO_PARTS("text/plain", "application/x-pkcs7-signature"),
	    MIME_SMIME_SIGNED_DETACHED },
	{ "multipart/signed, protocol and part disagree on x-",
	    "Content-Type: multipart/signed; protocol=\"application/pkcs7-"
	    "signature\"; boundary=s\r\n\r\n"
	    TWO_PARTS("text/plain", "application/x-pkcs7-signature"),
	    MIME_SMIME_SIGNED_DETACHED },
	{ "multipart/signed, OpenPGP",
	    "Content-Type: multipart/signed; protocol=\"application/pgp-"
	    "signature\"; boundary=s\r\n\r\n"
	    TWO_PARTS("text/plain", "application/pgp-signature"),
	    MIME_SMIME_NONE },
	{ "multipart/signed without protocol",
	    "Content-Type: multipart/signed; boundary=s\r\n\r\n"
	    TWO_PARTS("text/plain", "application/pkcs7-signature"),
	    MIME_SMIME_NONE },
	{ "multipart/signed whose second part is no signature",
	    "Content-Type: multipart/signed; protocol=\"application/pkcs7-"
	    "signature\"; boundary=s\r\n\r\n"
	    TWO_PARTS("text/plain", "text/plain"), MIME_SMIME_NONE },
	{ "multipart/signed with a third part after the signature",
	    "Content-Type: multipart/signed; protocol=\"application/pkcs7-"
	    "signature\"; boundary=s\r\n\r\n--s\r\nContent-Type: text/plain"
	    "\r\n\r\nA\r\n--s\r\nContent-Type: application/pkcs7-signature"
	    "\r\n\r\nAAAA\r\n--s\r\n\r\nextra\r\n--s--\r\n",
	    MIME_SMIME_NONE },
	{ "pkcs7-mime signed-data",
	    "Content-Type: application/pkcs7-mime; smime-type=signed-data; "
	    "name=smime.p7m\r\n\r\nAAAA", MIME_SMIME_SIGNED_OPAQUE },
	{ "x-pkcs7-mime signed-data",
	    "Content-Type: application/x-pkcs7-mime; smime-type=signed-data\r\n"
	    "\r\nAAAA", MIME_SMIME_SIGNED_OPAQUE },
	{ "pkcs7-mime enveloped-data",
	    "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
	    "\r\nAAAA", MIME_SMIME_ENVELOPED },
	{ "x-pkcs7-mime enveloped-data, quoted, upper case",
	    "Content-Type: application/x-pkcs7-mime; smime-type=\"Enveloped-Data\""
	    "\r\n\r\nAAAA", MIME_SMIME_ENVELOPED },
	{ "pkcs7-mime authEnveloped-data",
	    "Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data"
	    "\r\n\r\nAAAA", MIME_SMIME_AUTH_ENVELOPED },
	{ "x-pkcs7-mime authenveloped-data",
	    "Content-Type: application/x-pkcs7-mime; smime-type=authenveloped-"
	    "data\r\n\r\nAAAA", MIME_SMIME_AUTH_ENVELOPED },
	{ "pkcs7-mime certs-only",
	    "Content-Type: application/pkcs7-mime; smime-type=certs-only\r\n"
	    "\r\nAAAA", MIME_SMIME_CERTS_ONLY },
	{ "x-pkcs7-mime named .p7m without smime-type",
	    "Content-Type: application/x-pkcs7-mime; name=\"smime.p7m\"\r\n\r\n"
	    "AAAA", MIME_SMIME_PKCS7_UNKNOWN },
	{ "pkcs7-mime without any parameter",
	    "Content-Type: application/pkcs7-mime\r\n\r\nAAAA",
	    MIME_SMIME_PKCS7_UNKNOWN },
	{ "pkcs7-mime compressed-data",
	    "Content-Type: application/pkcs7-mime; smime-type=compressed-data"
	    "\r\n\r\nAAAA", MIME_SMIME_PKCS7_UNKNOWN },
	{ "x-pkcs7-mime whose disposition names a .P7C file",
	    "Content-Type: application/x-pkcs7-mime\r\nContent-Disposition: "
	    "attachment; filename=\"certs.P7C\"\r\n\r\nAAAA",
	    MIME_SMIME_CERTS_ONLY },
	{ "octet-stream named .p7m",
	    "Content-Type: application/octet-stream; name=smime.p7m\r\n\r\nAAAA",
	    MIME_SMIME_PKCS7_UNKNOWN },
	{ "octet-stream with an RFC 2231 filename .p7m",
	    "Content-Type: application/octet-stream\r\nContent-Disposition: "
	    "attachment; filename*=utf-8''smime.p7m\r\n\r\nAAAA",
	    MIME_SMIME_PKCS7_UNKNOWN },
	{ "octet-stream named .p7c",
	    "Content-Type: application/octet-stream; name=x.p7c\r\n\r\nAAAA",
	    MIME_SMIME_CERTS_ONLY },
	{ "octet-stream named otherwise",
	    "Content-Type: application/octet-stream; name=data.bin\r\n\r\nAAAA",
	    MIME_SMIME_NONE },
	{ "a lone pkcs7-signature",
	    "Content-Type: application/pkcs7-signature\r\n\r\nAAAA",
	    MIME_SMIME_NONE },
	{ "plain text", "Subject: hi\r\n\r\nhello", MIME_SMIME_NONE },
	{ "an encrypted attachment inside multipart/mixed",
	    "Content-Type: multipart/mixed; boundary=s\r\n\r\n"
	    TWO_PARTS("text/plain", "application/pkcs7-mime; smime-type="
	    "enveloped-data"), MIME_SMIME_NONE },
};

START_TEST(smime_structures_are_recognised_in_every_spelling)
{
	struct mime_entity *e = must_parse(kind_cases[_i].msg, kind_cases[_i].what);
	enum mime_smime_kind k = mime_smime_kind(e);

	ck_assert_msg(k == kind_cases[_i].kind, "%s: got %s, want %s",
	    kind_cases[_i].what, mime_smime_kind_name(k),
	    mime_smime_kind_name(kind_cases[_i].kind));
	mime_entity_free(e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Splitting headers                                                    */
/* ------------------------------------------------------------------ */

static const struct {
	const char *what;
	const char *in[9][2];
	const char *outer, *content; /* field names joined by "," */
} split_cases[] = {
	{ "Content-* move inside, everything else stays",
	    { { "Received", "from x" }, { "From", "a@b" }, { "MIME-Version", "1.0" },
	        { "Content-Type", "text/plain; charset=utf-8" },
	        { "content-transfer-encoding", "8bit" }, { "Subject", "s" },
	        { "X-Content-Scan", "ok" }, { "Contents", "odd" },
	        { "CONTENT-DISPOSITION", "inline" } },
	    "Received,From,MIME-Version,Subject,X-Content-Scan,Contents",
	    "Content-Type,content-transfer-encoding,CONTENT-DISPOSITION" },
	{ "a missing Content-Type becomes the explicit default",
	    { { "From", "a@b" }, { "Content-Transfer-Encoding", "7bit" } },
	    "From", "Content-Transfer-Encoding,Content-Type" },
	{ "no headers at all", { { NULL, NULL } }, "", "Content-Type" },
};

static void
ck_names(const struct mime_headers *h, const char *want, const char *what)
{
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < h->n; i++)
		ck_assert_int_eq(buf_printf(&b, "%s%s", i ? "," : "", h->v[i].name),
		    SM_OK);
	ck_assert_msg(strcmp(buf_cstr(&b), want) == 0, "%s: got \"%s\", want \"%s\"",
	    what, buf_cstr(&b), want);
	buf_free(&b);
}

START_TEST(splitting_moves_exactly_the_content_headers_inside)
{
	struct mime_headers all = MIME_HEADERS_INIT, outer = MIME_HEADERS_INIT,
	    content = MIME_HEADERS_INIT;
	size_t i;

	for (i = 0; i < 9 && split_cases[_i].in[i][0]; i++)
		ck_assert_int_eq(mime_headers_add(&all, split_cases[_i].in[i][0],
		    split_cases[_i].in[i][1]), SM_OK);
	ck_status(mime_split_headers(&all, &outer, &content), SM_OK,
	    split_cases[_i].what);
	ck_names(&outer, split_cases[_i].outer, "outer");
	ck_names(&content, split_cases[_i].content, "content");
	if (mime_headers_count(&all, "Content-Type") == 0)
		ck_assert_str_eq(mime_headers_get(&content, "content-type"),
		    "text/plain; charset=us-ascii");
	/* Outputs must start empty. */
	ck_status(mime_split_headers(&all, &outer, &content), SM_ERR_ARG,
	    "second split into full lists");
	mime_headers_free(&all);
	mime_headers_free(&outer);
	mime_headers_free(&content);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Canonicalisation                                                     */
/* ------------------------------------------------------------------ */

/* Canonicalise "headers\r\n\r\nbody" written as one string. */
static sm_status
canon_str(const char *msg, size_t n, struct buf *out)
{
	struct mime_entity *tmp = NULL;
	const unsigned char *body;
	sm_status st;

	/* Parse once only to split the string into headers and body. */
	st = mime_parse(U(msg), n, NULL, &tmp);
	if (st != SM_OK)
		return st;
	body = tmp->body;
	st = mime_canonicalize(&tmp->hdrs, body, tmp->body_len, NULL, out);
	mime_entity_free(tmp);
	return st;
}

static const struct {
	const char *what;
	const char *in;
	size_t len;
	const char *want;
} canon_cases[] = {
	{ "LF line ends become CRLF",
	    LIT("Content-Type: text/plain\n\nline 1\nline 2\n"),
	    "Content-Type: text/plain\r\n\r\nline 1\r\nline 2\r\n" },
	{ "8bit text becomes quoted-printable",
	    LIT("Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\nContent-Language: de\r\n\r\n"
	    "Gr\xc3\xbc\xc3\x9f""e\nFrom Bonn\r\n"),
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "Content-Language: de\r\n\r\n"
	    "Gr=C3=BC=C3=9Fe\r\n=46rom Bonn\r\n" },
	{ "8bit text that is pure ASCII is still relabelled",
	    LIT("Content-Type: text/plain\r\nContent-Transfer-Encoding: 8BIT\r\n\r\nok\r\n"),
	    "Content-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\nok\r\n" },
	{ "binary data becomes base64, every byte kept",
	    LIT("Content-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: binary\r\n\r\n\x00\n\r\xff"),
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nAAoN/w==\r\n" },
	{ "8bit non-text becomes base64 after LF to CRLF",
	    LIT("Content-Type: application/x-thing\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n\xe9\n"),
	    "Content-Type: application/x-thing\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n6Q0K\r\n" },
	{ "text/plain without encoding header gets one when it must change",
	    LIT("Content-Type: text/plain\r\n\r\n\xe9t\xe9"),
	    "Content-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9t=E9" },
	{ "a bare CR in 7bit text is encoded",
	    LIT("Content-Type: text/plain\r\n\r\na\rb\r\n"),
	    "Content-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\na=0Db\r\n" },
	{ "already encoded parts are untouched",
	    LIT("Content-Type: multipart/mixed; boundary=b\n\npreamble\n--b  \n"
	    "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable"
	    "\n\nGr=C3=BC=C3=9Fe=\n\n--b\nContent-Type: image/png\n"
	    "Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--b--\nepilogue\n"),
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b  \r\n"
	    "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable"
	    "\r\n\r\nGr=C3=BC=C3=9Fe=\r\n\r\n--b\r\nContent-Type: image/png\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n"
	    "epilogue\r\n" },
	{ "only the 8bit part of a multipart changes",
	    LIT("Content-Type: multipart/mixed; boundary=b\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n"
	    "pre\xe9mble\r\n--b\r\nContent-Type: text/plain; charset=latin1\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9\r\n--b\r\n"
	    "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	    "iVBORw0KGgo=\r\n--b--\r\n"),
	    "Content-Type: multipart/mixed; boundary=b\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n"
	    "--b\r\nContent-Type: text/plain; charset=latin1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n--b\r\n"
	    "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	    "iVBORw0KGgo=\r\n--b--\r\n" },
	{ "an 8bit part inside a nested multipart changes",
	    LIT("Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	    "Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n"
	    "Content-Type: text/html\r\n\r\n<p>\xc3\xa9</p>\r\n--i--\r\n--o--\r\n"),
	    "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	    "Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n"
	    "Content-Type: text/html\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>=C3=A9</p>\r\n"
	    "--i--\r\n--o--\r\n" },
	{ "8bit inside an attached message is reached and relabelled",
	    LIT("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n"
	    "\r\nSubject: fwd\r\nContent-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n"),
	    "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n"
	    "\r\nSubject: fwd\r\nContent-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n" },
	{ "base64 with 8-bit junk is decoded and rewritten",
	    LIT("Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	    "iVBO\xe9Rw0KGgo=\r\n"), NULL },
};

START_TEST(canonical_form_is_crlf_and_7bit_with_minimal_changes)
{
	const char *in = canon_cases[_i].in;
	size_t n = canon_cases[_i].len;
	struct buf out = BUF_INIT;
	sm_status st;

	ck_assert_int_eq(buf_append_str(&out, "keep"), SM_OK);
	st = canon_str(in, n, &out);
	if (canon_cases[_i].want == NULL) {
		/* The junk byte makes the base64 invalid. */
		ck_status(st, SM_ERR_PARSE, canon_cases[_i].what);
		ck_bytes(out.data, out.len, "keep", 4, "output after failure");
	} else {
		ck_status(st, SM_OK, canon_cases[_i].what);
		ck_bytes(out.data + 4, out.len - 4, canon_cases[_i].want,
		    strlen(canon_cases[_i].want), canon_cases[_i].what);
	}
	buf_free(&out);
}
END_TEST

/* The fuzzer's 64-byte reproducer: the CRLF before a delimiter belongs to
 * the delimiter, so the part is "X: a" CR. Whatever the canonicaliser does
 * with it, its output must not hold a bare CR (a relay would rewrite it
 * and break the signature, or turn it into a blank line). */
START_TEST(canonical_form_never_keeps_a_bare_cr)
{
	static const char in[] = "Content-Type: multipart/mixed; boundary=b"
	    "\r\n\r\n--b\r\nX: a\r\r\n--b--\r\n";
	struct mime_headers h = { 0 };
	struct buf out = BUF_INIT;
	const char *why;
	sm_status st;

	ck_assert_int_eq(mime_headers_add(&h, "Content-Type",
	    "multipart/mixed; boundary=b"), SM_OK);
	st = mime_canonicalize(&h, U(in) + 45, sizeof(in) - 1 - 45, NULL,
	    &out);
	if (st == SM_OK) {
		why = why_not_7bit(out.data, out.len);
		ck_assert_msg(why == NULL, "canonical form has a %s", why);
	} else {
		ck_assert_uint_eq(out.len, 0);
	}
	mime_headers_free(&h);
	buf_free(&out);
}
END_TEST

START_TEST(long_lines_are_reencoded_and_long_headers_refolded)
{
	static const char *types[] = { "text/plain", "application/x-long" };
	struct buf in = BUF_INIT, out = BUF_INIT, dec = BUF_INIT, want = BUF_INIT;
	struct mime_entity *e = NULL;
	size_t t, i;

	for (t = 0; t < N(types); t++) {
		buf_reset(&in);
		buf_reset(&out);
		buf_reset(&dec);
		buf_reset(&want);
		ck_assert_int_eq(buf_printf(&in, "Content-Type: %s\r\n"
		    "Content-Description:", types[t]), SM_OK);
		for (i = 0; i < 120; i++) /* a 1200-octet header line */
			ck_assert_int_eq(buf_append_str(&in, " ten chars"), SM_OK);
		ck_assert_int_eq(buf_append_str(&in, "\r\n\r\n"), SM_OK);
		for (i = 0; i < 1500; i++)
			ck_assert_int_eq(buf_append_char(&want, (char)('a' + i % 26)),
			    SM_OK);
		ck_assert_int_eq(buf_append_str(&want, "\r\nshort\r\n"), SM_OK);
		ck_assert_int_eq(buf_append(&in, want.data, want.len), SM_OK);
		ck_status(canon_str((const char *)in.data, in.len, &out), SM_OK,
		    types[t]);
		ck_assert_msg(why_not_7bit(out.data, out.len) == NULL, "%s: %s",
		    types[t], why_not_7bit(out.data, out.len));
		ck_status(mime_parse(out.data, out.len, NULL, &e), SM_OK, "reparse");
		ck_assert_str_eq(e->cte, t == 0 ? "quoted-printable" : "base64");
		ck_assert_int_eq(mime_decode_body(e, &dec), SM_OK);
		ck_bytes(dec.data, dec.len, want.data, want.len, types[t]);
		mime_entity_free(e);
	}
	buf_free(&in);
	buf_free(&out);
	buf_free(&dec);
	buf_free(&want);
}
END_TEST

START_TEST(canonical_8bit_text_and_binary_attachment_survive_a_7bit_relay)
{
	static const char text[] =
	    "Gr\xc3\xbc\xc3\x9f""e aus K\xc3\xb6ln \xe2\x80\x93 \xe2\x82\xac 5\r\n"
	    "From here, a line with trailing space \r\n.\r\n"
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\r\n";
	unsigned char bin[3000];
	struct mime_headers h = MIME_HEADERS_INIT;
	struct buf body = BUF_INIT, out = BUF_INIT, dec = BUF_INIT, again = BUF_INIT;
	struct mime_entity *e = NULL;
	const char *why;

	fill_random(bin, sizeof(bin), 2024);
	ck_assert_int_eq(mime_headers_add(&h, "Content-Type",
	    " multipart/mixed; boundary=\"mix\""), SM_OK);
	ck_assert_int_eq(mime_headers_add(&h, "Content-Transfer-Encoding",
	    " 8bit"), SM_OK);
	ck_assert_int_eq(buf_printf(&body, "--mix\r\nContent-Type: text/plain;"
	    " charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s"
	    "\r\n--mix\r\nContent-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: binary\r\n\r\n", text), SM_OK);
	ck_assert_int_eq(buf_append(&body, bin, sizeof(bin)), SM_OK);
	ck_assert_int_eq(buf_append_str(&body, "\r\n--mix--\r\n"), SM_OK);

	ck_status(mime_canonicalize(&h, body.data, body.len, NULL, &out), SM_OK,
	    "canonicalize");
	why = why_not_7bit(out.data, out.len);
	ck_assert_msg(why == NULL, "canonical form is not 7bit: %s", why);

	ck_status(mime_parse(out.data, out.len, NULL, &e), SM_OK, "reparse");
	ck_assert_str_eq(e->cte, "7bit");
	ck_assert_uint_eq(e->nparts, 2);
	ck_assert_str_eq(e->parts[0]->cte, "quoted-printable");
	ck_assert_str_eq(e->parts[1]->cte, "base64");
	ck_assert_int_eq(mime_decode_body(e->parts[0], &dec), SM_OK);
	ck_bytes(dec.data, dec.len, text, strlen(text), "text part");
	buf_reset(&dec);
	ck_assert_int_eq(mime_decode_body(e->parts[1], &dec), SM_OK);
	ck_bytes(dec.data, dec.len, bin, sizeof(bin), "binary part");

	/* Canonical form is a fixed point. */
	ck_status(mime_canonicalize(&e->hdrs, e->body, e->body_len, NULL, &again),
	    SM_OK, "canonicalize again");
	ck_bytes(again.data, again.len, out.data, out.len, "second pass");

	mime_entity_free(e);
	mime_headers_free(&h);
	buf_free(&body);
	buf_free(&out);
	buf_free(&dec);
	buf_free(&again);
}
END_TEST

START_TEST(reencoding_never_creates_a_delimiter_line)
{
	struct buf in = BUF_INIT, out = BUF_INIT, dec = BUF_INIT, text = BUF_INIT;
	struct mime_entity *e = NULL;
	size_t i;

	/* An 8bit line ending in "--b" exactly where the soft break falls
	 * ("=C3=A9" and 69 x fill 75 columns): re-encoded naively, the
	 * next line would read "--b", a delimiter of the enclosing part. */
	ck_assert_int_eq(buf_append_str(&text, "\xc3\xa9"), SM_OK);
	for (i = 0; i < 69; i++)
		ck_assert_int_eq(buf_append_char(&text, 'x'), SM_OK);
	ck_assert_int_eq(buf_append_str(&text, "--b\r\n"), SM_OK);
	ck_assert_int_eq(buf_printf(&in, "Content-Type: multipart/mixed; "
	    "boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n--b\r\n\r\nsecond"
	    "\r\n--b--\r\n", buf_cstr(&text)), SM_OK);
	ck_status(canon_str((const char *)in.data, in.len, &out), SM_OK, "canon");
	ck_status(mime_parse(out.data, out.len, NULL, &e), SM_OK, "reparse");
	ck_assert_msg(e->nparts == 2, "got %zu parts, want 2: \"%s\"", e->nparts,
	    esc(out.data, out.len));
	ck_assert_int_eq(mime_decode_body(e->parts[0], &dec), SM_OK);
	ck_bytes(dec.data, dec.len, text.data, text.len, "text part");
	mime_entity_free(e);
	buf_free(&in);
	buf_free(&out);
	buf_free(&dec);
	buf_free(&text);
}
END_TEST

START_TEST(canonicalisation_refuses_what_it_cannot_repair)
{
	static const struct {
		const char *what, *ct, *cte, *body;
		sm_status st;
	} cases[] = {
		{ "unknown encoding with 8-bit data", "text/plain", "x-custom",
		    "\xe9\r\n", SM_ERR_UNSUPPORTED },
		{ "8-bit unparseable embedded message", "message/rfc822", NULL,
		    "not a header\r\n\r\n\xe9\r\n", SM_ERR_UNSUPPORTED },
		{ "malformed multipart", "multipart/mixed; boundary=b", NULL,
		    "--b\r\n\r\nx", SM_ERR_PARSE },
	};
	struct buf out = BUF_INIT;
	size_t k;

	ck_assert_int_eq(buf_append_str(&out, "keep"), SM_OK);
	for (k = 0; k < N(cases); k++) {
		struct mime_headers h = MIME_HEADERS_INIT;

		ck_assert_int_eq(mime_headers_add(&h, "Content-Type", cases[k].ct),
		    SM_OK);
		if (cases[k].cte)
			ck_assert_int_eq(mime_headers_add(&h,
			    "Content-Transfer-Encoding", cases[k].cte), SM_OK);
		ck_status(mime_canonicalize(&h, U(cases[k].body),
		    strlen(cases[k].body), NULL, &out), cases[k].st, cases[k].what);
		ck_bytes(out.data, out.len, "keep", 4, "output after failure");
		mime_headers_free(&h);
	}
	buf_free(&out);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Builders and serialisation                                           */
/* ------------------------------------------------------------------ */

START_TEST(a_detached_signature_carries_the_entity_verbatim)
{
	static const char entity[] =
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned text.\r\n";
	static const unsigned char sig[] = { 0x30, 0x82, 0x01, 0x00, 0xff, 0 };
	struct mime_headers h = MIME_HEADERS_INIT, h2 = MIME_HEADERS_INIT;
	struct buf body = BUF_INIT, body2 = BUF_INIT, dec = BUF_INIT,
	    ser = BUF_INIT;
	struct mime_entity *e = NULL, *whole = NULL;
	const char *line, *end;

	ck_assert_int_eq(mime_build_signed(U(entity), strlen(entity), sig,
	    sizeof(sig), NULL, &h, &body), SM_OK);
	ck_status(mime_parse_message(&h, body.data, body.len, NULL, &e), SM_OK,
	    "parse back");
	ck_assert_int_eq(mime_smime_kind(e), MIME_SMIME_SIGNED_DETACHED);
	ck_assert_str_eq(mime_ctype_param(&e->ct, "micalg"), "sha-256");
	ck_assert_str_eq(mime_ctype_param(&e->ct, "protocol"),
	    "application/pkcs7-signature");
	ck_bytes(e->parts[0]->raw, e->parts[0]->raw_len, entity, strlen(entity),
	    "signed part");
	ck_assert_str_eq(mime_ctype_param(&e->parts[1]->ct, "name"), "smime.p7s");
	ck_assert_int_eq(mime_decode_body(e->parts[1], &dec), SM_OK);
	ck_bytes(dec.data, dec.len, sig, sizeof(sig), "signature");
	ck_assert_ptr_null(why_not_7bit(body.data, body.len));

	/* Serialised for sign-then-encrypt: folded at 78, parses back. */
	ck_assert_int_eq(mime_entity_serialize(&h, body.data, body.len, &ser),
	    SM_OK);
	for (line = (const char *)ser.data; *line != '\r'; line = end + 2) {
		end = strstr(line, "\r\n");
		ck_assert_msg(end - line <= 78, "header line of %td octets",
		    end - line);
	}
	ck_status(mime_parse(ser.data, ser.len, NULL, &whole), SM_OK, "reparse");
	ck_assert_int_eq(mime_smime_kind(whole), MIME_SMIME_SIGNED_DETACHED);
	ck_bytes(whole->parts[0]->raw, whole->parts[0]->raw_len, entity,
	    strlen(entity), "signed part after serialising");

	/* A second signature gets a different boundary. */
	ck_assert_int_eq(mime_build_signed(U(entity), strlen(entity), sig,
	    sizeof(sig), "sha-512", &h2, &body2), SM_OK);
	ck_assert_str_ne(mime_headers_get(&h, "Content-Type"),
	    mime_headers_get(&h2, "Content-Type"));
	ck_assert_ptr_nonnull(strstr(mime_headers_get(&h2, "Content-Type"),
	    "micalg=sha-512;"));

	/* Bad arguments change nothing. */
	ck_status(mime_build_signed(U(entity), strlen(entity), sig, sizeof(sig),
	    "sha-256\"; boundary=x", &h2, &body2), SM_ERR_ARG, "micalg");
	ck_status(mime_build_signed(U(entity), 0, sig, sizeof(sig), NULL, &h2,
	    &body2), SM_ERR_ARG, "empty entity");
	ck_assert_uint_eq(h2.n, 1);

	mime_entity_free(e);
	mime_entity_free(whole);
	mime_headers_free(&h);
	mime_headers_free(&h2);
	buf_free(&body);
	buf_free(&body2);
	buf_free(&dec);
	buf_free(&ser);
}
END_TEST

static const struct {
	const char *type;
	enum mime_smime_kind kind;
	const char *file;
} pkcs7_cases[] = {
	{ "signed-data", MIME_SMIME_SIGNED_OPAQUE, "smime.p7m" },
	{ "enveloped-data", MIME_SMIME_ENVELOPED, "smime.p7m" },
	{ "authEnveloped-data", MIME_SMIME_AUTH_ENVELOPED, "smime.p7m" },
	{ "certs-only", MIME_SMIME_CERTS_ONLY, "smime.p7c" },
	{ "compressed-data", MIME_SMIME_PKCS7_UNKNOWN, "smime.p7z" },
};

START_TEST(pkcs7_entities_are_labelled_by_smime_type)
{
	unsigned char der[200];
	struct mime_headers h = MIME_HEADERS_INIT;
	struct buf body = BUF_INIT, dec = BUF_INIT;
	struct mime_entity *e = NULL;
	struct mime_ctype cd = MIME_CTYPE_INIT;

	fill_random(der, sizeof(der), (uint32_t)_i);
	ck_assert_int_eq(mime_build_pkcs7(der, sizeof(der), pkcs7_cases[_i].type,
	    &h, &body), SM_OK);
	ck_status(mime_parse_message(&h, body.data, body.len, NULL, &e), SM_OK,
	    pkcs7_cases[_i].type);
	ck_assert_msg(mime_smime_kind(e) == pkcs7_cases[_i].kind,
	    "%s: got %s, want %s", pkcs7_cases[_i].type,
	    mime_smime_kind_name(mime_smime_kind(e)),
	    mime_smime_kind_name(pkcs7_cases[_i].kind));
	ck_assert_str_eq(e->cte, "base64");
	ck_assert_str_eq(mime_ctype_param(&e->ct, "name"), pkcs7_cases[_i].file);
	/* Content-Disposition has the Content-Type grammar minus the
	 * subtype: lend it one to reuse the parser. */
	buf_reset(&dec);
	ck_assert_int_eq(buf_printf(&dec, "x/%s",
	    mime_headers_get(&h, "Content-Disposition")), SM_OK);
	ck_assert_int_eq(mime_ctype_parse(buf_cstr(&dec), &cd), SM_OK);
	buf_reset(&dec);
	ck_assert_str_eq(mime_ctype_param(&cd, "filename"), pkcs7_cases[_i].file);
	ck_assert_ptr_nonnull(mime_headers_get(&h, "Content-Description"));
	ck_assert_int_eq(mime_decode_body(e, &dec), SM_OK);
	ck_bytes(dec.data, dec.len, der, sizeof(der), "payload");
	mime_ctype_free(&cd);
	mime_entity_free(e);
	mime_headers_free(&h);
	buf_free(&body);
	buf_free(&dec);
}
END_TEST

START_TEST(pkcs7_builder_refuses_unknown_types_and_changes_nothing)
{
	struct mime_headers h = MIME_HEADERS_INIT;
	struct buf body = BUF_INIT;

	ck_status(mime_build_pkcs7(U("x"), 1, "enveloped", &h, &body), SM_ERR_ARG,
	    "enveloped");
	ck_status(mime_build_pkcs7(U("x"), 1, "Enveloped-Data", &h, &body),
	    SM_ERR_ARG, "wrong case");
	ck_status(mime_build_pkcs7(U("x"), 0, "enveloped-data", &h, &body),
	    SM_ERR_ARG, "empty payload");
	ck_assert_uint_eq(h.n, 0);
	ck_assert_uint_eq(body.len, 0);
}
END_TEST

static const struct {
	const char *what;
	const char *name, *value;
	sm_status st;
	const char *want;
} serialize_cases[] = {
	{ "a value's own leading space is kept", "Subject", " hi", SM_OK,
	    "Subject: hi\r\n" },
	{ "a value without one gets a space", "Subject", "hi", SM_OK,
	    "Subject: hi\r\n" },
	{ "LF folding becomes CRLF folding", "Content-Type",
	    " multipart/mixed;\n\tboundary=b", SM_OK,
	    "Content-Type: multipart/mixed;\r\n\tboundary=b\r\n" },
	{ "a trailing line break is dropped", "X", "v\r\n", SM_OK, "X: v\r\n" },
	{ "a long single line is folded", "Content-Type",
	    "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m; "
	    "x=y", SM_OK,
	    "Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n"
	    " name=smime.p7m; x=y\r\n" },
	{ "an injected header is refused", "Subject", "x\r\nBcc: victim",
	    SM_ERR_PARSE, NULL },
	{ "an injected LF header is refused", "Subject", "x\nBcc: victim",
	    SM_ERR_PARSE, NULL },
	{ "a bare CR is unfolded away", "Subject", "x\rBcc: y", SM_OK,
	    "Subject: xBcc: y\r\n" },
};

START_TEST(serialising_writes_crlf_fields_and_refuses_injection)
{
	struct mime_headers h = MIME_HEADERS_INIT;
	struct buf out = BUF_INIT, want = BUF_INIT;
	sm_status st;

	ck_assert_int_eq(mime_headers_add(&h, serialize_cases[_i].name,
	    serialize_cases[_i].value), SM_OK);
	ck_assert_int_eq(buf_append_str(&out, "keep"), SM_OK);
	st = mime_entity_serialize(&h, U("body"), 4, &out);
	ck_status(st, serialize_cases[_i].st, serialize_cases[_i].what);
	if (st == SM_OK) {
		ck_assert_int_eq(buf_printf(&want, "keep%s\r\nbody",
		    serialize_cases[_i].want), SM_OK);
		ck_bytes(out.data, out.len, want.data, want.len,
		    serialize_cases[_i].what);
	} else {
		ck_bytes(out.data, out.len, "keep", 4, "output after failure");
	}
	mime_headers_free(&h);
	buf_free(&out);
	buf_free(&want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Real messages                                                        */
/* ------------------------------------------------------------------ */

static const struct {
	const char *file;
	enum mime_smime_kind kind;
	size_t nparts;
	bool verify; /* part 1 must verify against part 2 (OpenSSL CMS) */
} corpus_cases[] = {
	{ "alice.dsig.SHA256.multipart.eml", MIME_SMIME_SIGNED_DETACHED, 2, true },
	{ "msg-L12194.eml", MIME_SMIME_SIGNED_DETACHED, 2, true },
	{ "4.8.eml", MIME_SMIME_SIGNED_DETACHED, 2, true },
	{ "smime-signed-apple.mbox", MIME_SMIME_SIGNED_DETACHED, 2, false },
	{ "alice.sig.SHA256.opaque.eml", MIME_SMIME_SIGNED_OPAQUE, 0, false },
	{ "alice.env.eml", MIME_SMIME_ENVELOPED, 0, false },
	{ "msg-L12149.eml", MIME_SMIME_PKCS7_UNKNOWN, 0, false },
	{ "msg-L12463.eml", MIME_SMIME_NONE, 2, false },
	{ "smime-encrypted-not-so-ambiguous-mime.mbox", MIME_SMIME_NONE, 3, false },
};

/* Verify the detached signature over part 1's bytes (CRLF, as sent):
 * only the signature value is checked, not the signer's chain. */
static bool
cms_verifies(const struct mime_entity *e, char *why, size_t whylen)
{
	struct buf content = to_crlf(e->parts[0]->raw, e->parts[0]->raw_len);
	struct buf der = BUF_INIT;
	const unsigned char *p;
	CMS_ContentInfo *cms = NULL;
	BIO *in = NULL;
	bool ok = false;

	if (mime_decode_body(e->parts[1], &der) != SM_OK) {
		snprintf(why, whylen, "signature part does not decode");
		goto out;
	}
	p = der.data;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)der.len);
	in = BIO_new_mem_buf(content.data, (int)content.len);
	if (cms == NULL || in == NULL) {
		snprintf(why, whylen, "signature does not parse as CMS");
		goto out;
	}
	ok = CMS_verify(cms, NULL, NULL, in, NULL,
	         CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1;
	if (!ok)
		snprintf(why, whylen, "CMS_verify refused %zu content bytes",
		    content.len);
out:
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	buf_free(&content);
	buf_free(&der);
	return ok;
}

START_TEST(corpus_messages_parse_and_their_signed_parts_verify)
{
	char path[256], why[128] = "";
	struct mime_entity *e = NULL;
	struct mime_headers outer = MIME_HEADERS_INIT, content = MIME_HEADERS_INIT;
	struct buf canon = BUF_INIT;
	unsigned char *msg;
	size_t n = 0;
	const char *bad;

	snprintf(path, sizeof(path), "tests/data/mime/%s", corpus_cases[_i].file);
	msg = testutil_slurp(testutil_path(path), &n);
	ck_assert_msg(msg != NULL, "cannot read %s (is SMIME_TOP the source tree?)",
	    testutil_path(path));
	ck_status(mime_parse(msg, n, NULL, &e), SM_OK, corpus_cases[_i].file);
	ck_assert_msg(mime_smime_kind(e) == corpus_cases[_i].kind,
	    "%s: got %s, want %s", corpus_cases[_i].file,
	    mime_smime_kind_name(mime_smime_kind(e)),
	    mime_smime_kind_name(corpus_cases[_i].kind));
	ck_assert_msg(e->nparts == corpus_cases[_i].nparts,
	    "%s: got %zu parts, want %zu", corpus_cases[_i].file, e->nparts,
	    corpus_cases[_i].nparts);
	if (corpus_cases[_i].verify)
		ck_assert_msg(cms_verifies(e, why, sizeof(why)), "%s: %s",
		    corpus_cases[_i].file, why);
	/* Every real message canonicalises to pure 7bit. */
	ck_assert_int_eq(mime_split_headers(&e->hdrs, &outer, &content), SM_OK);
	ck_status(mime_canonicalize(&content, e->body, e->body_len, NULL, &canon),
	    SM_OK, "canonicalize");
	bad = why_not_7bit(canon.data, canon.len);
	ck_assert_msg(bad == NULL, "%s canonical: %s", corpus_cases[_i].file, bad);
	mime_entity_free(e);
	mime_headers_free(&outer);
	mime_headers_free(&content);
	buf_free(&canon);
	free(msg);
}
END_TEST

/* A signed part whose raw range is off by one byte must not verify:
 * proves the cross-check above can fail. */
START_TEST(a_signed_part_one_byte_too_long_fails_the_cms_check)
{
	char why[128];
	struct mime_entity *e = NULL;
	unsigned char *msg;
	size_t n = 0;

	msg = testutil_slurp(testutil_path(
	    "tests/data/mime/alice.dsig.SHA256.multipart.eml"), &n);
	ck_assert_ptr_nonnull(msg);
	ck_status(mime_parse(msg, n, NULL, &e), SM_OK, "parse");
	e->parts[0]->raw_len++; /* take the delimiter's line break too */
	ck_assert_msg(!cms_verifies(e, why, sizeof(why)),
	    "got a verified signature over one byte too many, want a refusal");
	e->parts[0]->raw_len--;
	ck_assert_msg(cms_verifies(e, why, sizeof(why)), "%s", why);
	mime_entity_free(e);
	free(msg);
}
END_TEST

/*
 * The whole shared corpus, on request: SMIME_MIME_CORPUS=DIR (a corpus
 * with README.md and MANIFEST.tsv). Every message listed in the manifest
 * must parse and canonicalise to 7bit; every detached signature the
 * manifest records as verifying must verify over our part bytes. Only the
 * fixtures above live in the tree, so this runs when asked, and then it
 * fails loudly if the corpus is not where it was said to be.
 */
static bool
corpus_is_message(const char *path, const char *kind)
{
	size_t n = strlen(path);

	if (!(n > 4 && (strcmp(path + n - 4, ".eml") == 0 ||
	                   strcmp(path + n - 4, ".txt") == 0)) &&
	    !(n > 5 && strcmp(path + n - 5, ".mbox") == 0))
		return false;
	/* The manifest's non-messages: notes and the RFC's own text. */
	return strncmp(kind, "notes", 5) != 0 && strncmp(kind, "\"notes", 6) != 0 &&
	    strncmp(kind, "the RFC text", 12) != 0;
}

START_TEST(the_whole_corpus_parses_and_every_good_signature_verifies)
{
	const char *dir = getenv("SMIME_MIME_CORPUS");
	char path[1024], why[128];
	struct buf failures = BUF_INIT, canon = BUF_INIT;
	unsigned char *manifest, *msg;
	char *line, *next, *f[10];
	size_t mlen = 0, n, k, nmsg = 0, nverified = 0;

	snprintf(path, sizeof(path), "%s/MANIFEST.tsv", dir);
	manifest = testutil_slurp(path, &mlen);
	ck_assert_msg(manifest != NULL, "cannot read %s", path);
	for (line = strchr((char *)manifest, '\n') + 1; line && *line; line = next) {
		struct mime_entity *e = NULL;
		struct mime_headers outer = MIME_HEADERS_INIT,
		    content = MIME_HEADERS_INIT;
		bool detached, verifies;
		sm_status st;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		for (k = 0, f[0] = line; k < 9 && f[k]; k++)
			if ((f[k + 1] = strchr(f[k], '\t')) != NULL)
				*f[k + 1]++ = '\0';
		if (k < 9 || f[9] == NULL || !corpus_is_message(f[0], f[5]))
			continue;
		detached = strncmp(f[5], "signed-detached", 15) == 0;
		verifies = detached && strstr(f[9], "FAILS") == NULL &&
		    strstr(f[9], "cannot verify") == NULL;
		snprintf(path, sizeof(path), "%s/%s", dir, f[0]);
		msg = testutil_slurp(path, &n);
		ck_assert_msg(msg != NULL, "cannot read %s", path);
		nmsg++;
		buf_reset(&canon);
		if ((st = mime_parse(msg, n, NULL, &e)) != SM_OK)
			buf_printf(&failures, "\n  %s: parse: %s", f[0], sm_strstatus(st));
		else if (detached && mime_smime_kind(e) != MIME_SMIME_SIGNED_DETACHED)
			buf_printf(&failures, "\n  %s: got %s, want signed-detached",
			    f[0], mime_smime_kind_name(mime_smime_kind(e)));
		else if (verifies && !cms_verifies(e, why, sizeof(why)))
			buf_printf(&failures, "\n  %s: %s", f[0], why);
		else if (mime_split_headers(&e->hdrs, &outer, &content) != SM_OK ||
		         (st = mime_canonicalize(&content, e->body, e->body_len,
		              NULL, &canon)) != SM_OK)
			buf_printf(&failures, "\n  %s: canonicalize: %s", f[0],
			    sm_strstatus(st));
		else if (why_not_7bit(canon.data, canon.len) != NULL)
			buf_printf(&failures, "\n  %s: canonical form: %s", f[0],
			    why_not_7bit(canon.data, canon.len));
		else if (verifies)
			nverified++;
		mime_entity_free(e);
		mime_headers_free(&outer);
		mime_headers_free(&content);
		free(msg);
	}
	fprintf(stderr, "check_mime: corpus %s: %zu messages, %zu detached "
	    "signatures verified over our part bytes\n", dir, nmsg, nverified);
	ck_assert_msg(failures.len == 0, "corpus failures:%s", buf_cstr(&failures));
	ck_assert_msg(nmsg > 0, "no messages listed in %s/MANIFEST.tsv", dir);
	buf_free(&failures);
	buf_free(&canon);
	free(manifest);
}
END_TEST

static Suite *
mime_suite(void)
{
	Suite *s = suite_create("mime");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, header_lists_find_set_and_remove_fields_case_insensitively);
	tcase_add_loop_test(tc, unfolding_removes_line_breaks_and_trims_whitespace,
	    0, N(unfold_cases));
	tcase_add_loop_test(tc,
	    folded_headers_unfold_to_the_original_and_keep_lines_short, 0,
	    N(fold_cases));
	tcase_add_loop_test(tc, content_type_parameters_parse_like_mail_readers_do,
	    0, N(ct_cases));
	tcase_add_test(tc, content_type_with_too_many_parameters_is_refused);
	tcase_add_loop_test(tc, base64_matches_the_rfc_4648_vectors_both_ways, 0,
	    N(b64_vectors));
	tcase_add_test(tc, base64_lines_hold_76_characters_and_end_in_crlf);
	tcase_add_loop_test(tc, base64_decoding_rejects_invalid_and_truncated_input,
	    0, N(b64_decode_cases));
	tcase_add_loop_test(tc, quoted_printable_encodes_the_rfc_2045_cases, 0,
	    N(qp_encode_cases));
	tcase_add_loop_test(tc, quoted_printable_soft_breaks_keep_lines_within_76,
	    0, N(qp_wrap_cases));
	tcase_add_loop_test(tc,
	    quoted_printable_decodes_leniently_as_rfc_2045_recommends, 0,
	    N(qp_decode_cases));
	tcase_add_test(tc, quoted_printable_round_trips_any_bytes_in_safe_lines);
	tcase_add_test(tc, boundaries_are_fresh_short_and_made_of_bchars);
	tcase_add_loop_test(tc, part_raw_bytes_run_between_delimiter_line_breaks,
	    0, N(raw_cases));
	tcase_add_test(tc, milter_headers_with_folding_parse_like_a_whole_message);
	tcase_add_test(tc, multi_megabyte_bodies_are_viewed_not_copied);
	tcase_add_test(tc, entities_without_content_type_get_the_rfc_defaults);
	tcase_add_loop_test(tc, malformed_messages_are_refused_with_a_status, 0,
	    N(bad_cases));
	tcase_add_test(tc, a_200_octet_boundary_is_still_accepted);
	tcase_add_loop_test(tc, absurd_messages_hit_a_limit_instead_of_the_allocator,
	    0, N(gen_cases));
	tcase_add_test(tc, limits_count_the_whole_tree_and_can_be_tightened);
	tcase_add_test(tc, a_malformed_embedded_message_stays_an_opaque_part);
	tcase_add_loop_test(tc, bodies_decode_according_to_their_transfer_encoding,
	    0, N(decode_cases));
	tcase_add_loop_test(tc, smime_structures_are_recognised_in_every_spelling,
	    0, N(kind_cases));
	tcase_add_loop_test(tc, splitting_moves_exactly_the_content_headers_inside,
	    0, N(split_cases));
	tcase_add_loop_test(tc, canonical_form_is_crlf_and_7bit_with_minimal_changes,
	    0, N(canon_cases));
	tcase_add_test(tc, canonical_form_never_keeps_a_bare_cr);
	tcase_add_test(tc, long_lines_are_reencoded_and_long_headers_refolded);
	tcase_add_test(tc,
	    canonical_8bit_text_and_binary_attachment_survive_a_7bit_relay);
	tcase_add_test(tc, reencoding_never_creates_a_delimiter_line);
	tcase_add_test(tc, canonicalisation_refuses_what_it_cannot_repair);
	tcase_add_test(tc, a_detached_signature_carries_the_entity_verbatim);
	tcase_add_loop_test(tc, pkcs7_entities_are_labelled_by_smime_type, 0,
	    N(pkcs7_cases));
	tcase_add_test(tc, pkcs7_builder_refuses_unknown_types_and_changes_nothing);
	tcase_add_loop_test(tc, serialising_writes_crlf_fields_and_refuses_injection,
	    0, N(serialize_cases));
	tcase_add_loop_test(tc, corpus_messages_parse_and_their_signed_parts_verify,
	    0, N(corpus_cases));
	tcase_add_test(tc, a_signed_part_one_byte_too_long_fails_the_cms_check);
	if (getenv("SMIME_MIME_CORPUS") != NULL)
		tcase_add_test(tc,
		    the_whole_corpus_parses_and_every_good_signature_verifies);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(mime_suite());
}
