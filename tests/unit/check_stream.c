/*
 * check_stream.c — the streamed outbound path gives what the in-memory
 * path gives.
 *
 * For each body (empty, one byte, exactly the 64 KiB piece size and one
 * byte either side, a CR on a piece edge, 8bit text, binary, CRLF/LF
 * mixed, a multipart, 50 MB):
 *  - the canonical form streamed into a spool on disk is byte for byte
 *    mime_canonicalize()'s;
 *  - the detached signature digested from that spool, and the one written
 *    to in uneven pieces (smime_signer, gw_transform's one pass), are byte
 *    for byte smime_sign()'s (signingTime pinned with clock_set) and verify with
 *    `openssl cms` over the spooled content;
 *  - the opaque signature and the envelope streamed out (BER), and the
 *    envelope written to in uneven pieces (smime_sealer, CBC and GCM), open
 *    with `openssl cms` and give the canonical form back byte for byte (an
 *    envelope's content key is random, so the plaintext is compared).
 * (The 50 MB body is too slow under Valgrind: SMIME_VALGRIND=1 or
 * SMIME_SKIP_HUGE=1 leaves it out and says so on stderr.)
 * Base64 in pieces is mime_b64_encode()'s, however the input is cut, and
 * that is OpenSSL's base64 in 76-character CRLF lines for every length;
 * the 7-bit verdict of the canonical form (kept as it is, or re-encoded)
 * is the byte-by-byte one for an odd byte in every place of a word and
 * lines of 997-999 octets; and a
 * source that fails mid-way fails the signature instead of signing what
 * was read so far.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <openssl/cms.h>
#include <openssl/evp.h>

#include "buf.h"
#include "certgen.h"
#include "clock.h"
#include "mime.h"
#include "smime.h"
#include "spool.h"
#include "testutil.h"

static char *scratch;
static EVP_PKEY *ca_key, *signer_key, *rcpt_key;
static X509 *ca, *signer, *rcpt;

/* ------------------------------------------------------------ helpers */

static int __attribute__((format(printf, 1, 2)))
run(const char *fmt, ...)
{
	char cmd[8192], full[8400];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "( %s ) >>%s/run.log 2>&1", cmd, scratch);
	r = system(full);
	return WIFEXITED(r) ? WEXITSTATUS(r) : 255;
}

/* Several may be used in one call: a few buffers in turn. */
static const char *
path(const char *name)
{
	static char p[4][4096];
	static unsigned next;
	char *r = p[next++ % 4];

	snprintf(r, sizeof(p[0]), "%s/%s", scratch, name);
	return r;
}

static void
put_file(const char *name, const void *p, size_t n)
{
	FILE *f = fopen(path(name), "wb");

	ck_assert_msg(f != NULL, "cannot create %s", path(name));
	ck_assert(n == 0 || fwrite(p, 1, n, f) == n);
	ck_assert_int_eq(fclose(f), 0);
}

/* The file's bytes equal want/n? */
static bool
file_is(const char *name, const unsigned char *want, size_t n)
{
	size_t got = 0;
	unsigned char *p = testutil_slurp(path(name), &got);
	bool same = p != NULL && got == n && (n == 0 || memcmp(p, want, n) == 0);

	free(p);
	return same;
}

/* Everything in a spool. */
static void
spool_all(struct spool *sp, struct buf *out)
{
	uint64_t off = 0;
	size_t got = 0;

	buf_reset(out);
	ck_assert_int_eq(buf_reserve(out, (size_t)spool_size(sp) + 1), SM_OK);
	do {
		ck_assert_int_eq(spool_pread(sp, off, out->data + off, 1 << 20, &got), SM_OK);
		off += got;
	} while (got > 0);
	ck_assert_uint_eq(off, spool_size(sp));
	out->len = (size_t)off;
}

/* A spool that goes to disk past 4 KiB (the smallest threshold the
 * configuration allows), so the file paths are the ones tested. */
static struct spool *
disk_spool(void)
{
	struct spool *sp;

	ck_assert_int_eq(spool_new(scratch, 4096, UINT64_MAX, &sp), SM_OK);
	return sp;
}

static sm_status
to_spool(void *arg, const unsigned char *p, size_t n)
{
	return spool_write(arg, p, n);
}

struct src {
	struct spool *sp;
	uint64_t off;
	uint64_t fail_at; /* 0: never */
};

static sm_status
from_spool(void *arg, unsigned char *p, size_t n, size_t *got)
{
	struct src *s = arg;
	sm_status st;

	*got = 0;
	if (s->fail_at && s->off >= s->fail_at)
		return SM_ERR_IO;
	if (s->fail_at && n > s->fail_at - s->off)
		n = (size_t)(s->fail_at - s->off);
	st = spool_pread(s->sp, s->off, p, n, got);
	s->off += *got;
	return st;
}

/* ------------------------------------------------------------- bodies */

struct body {
	const char *name;
	const char *ctype, *cte;
	size_t len;
	void (*make)(struct buf *b, size_t len);
};

static void
make_text(struct buf *b, size_t len)
{
	static const char line[] = "The quick brown fox jumps over the lazy dog 0123456789.\n";

	while (b->len < len)
		ck_assert_int_eq(buf_append(b, line, len - b->len < sizeof(line) - 1 ?
		    len - b->len : sizeof(line) - 1), SM_OK);
}

/* CRLF lines of 100 bytes after a first one of 37, so that a CR is the
 * last byte of the first piece and its LF the first of the next. */
static void
make_cr_edge(struct buf *b, size_t len)
{
	size_t first = (MIME_CHUNK - 99) % 100;

	ck_assert_int_eq(buf_reserve(b, len), SM_OK);
	memset(b->data, 'y', len);
	for (size_t at = first - 2; at + 1 < len; at += 100) {
		b->data[at] = '\r';
		b->data[at + 1] = '\n';
	}
	b->len = len;
	ck_assert(b->data[MIME_CHUNK - 1] == '\r' && b->data[MIME_CHUNK] == '\n');
}

static void
make_8bit(struct buf *b, size_t len)
{
	static const char line[] = "Gr\xc3\xbc\xc3\x9f""e aus K\xc3\xb6ln, \xc3\xa4\xc3\xb6\xc3\xbc "
	    "trailing space \n=3D equals and tab\t\n";

	while (b->len < len)
		ck_assert_int_eq(buf_append(b, line, sizeof(line) - 1), SM_OK);
}

static void
make_binary(struct buf *b, size_t len)
{
	uint32_t x = 2463534242u;

	ck_assert_int_eq(buf_reserve(b, len), SM_OK);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b->data[i] = (unsigned char)(i % 97 == 0 ? '\r' : i % 101 == 0 ? '\n' : x);
	}
	b->len = len;
}

/* CRLF and bare LF lines, and a bare CR now and then. */
static void
make_mixed(struct buf *b, size_t len)
{
	for (unsigned i = 0; b->len < len; i++)
		ck_assert_int_eq(buf_printf(b, "line %u ends %s", i,
		    i % 3 == 0 ? "in CRLF\r\n" : i % 3 == 1 ? "in LF\n" :
		    i % 17 == 2 ? "with a bare CR\r" : "in LF again\n"), SM_OK);
}

static void
make_multipart(struct buf *b, size_t len)
{
	struct buf bin = BUF_INIT;

	make_binary(&bin, len / 2);
	ck_assert_int_eq(buf_printf(b, "preamble\n--XyZ\nContent-Type: text/plain\n\n"), SM_OK);
	make_text(b, b->len + len / 2);
	ck_assert_int_eq(buf_printf(b, "\n--XyZ\nContent-Type: application/octet-stream\n"
	    "Content-Transfer-Encoding: binary\n\n"), SM_OK);
	ck_assert_int_eq(buf_append(b, bin.data, bin.len), SM_OK);
	ck_assert_int_eq(buf_printf(b, "\n--XyZ--\nepilogue\n"), SM_OK);
	buf_free(&bin);
}

static const struct body bodies[] = {
	{ "empty", "text/plain", NULL, 0, make_text },
	{ "one byte", "text/plain", NULL, 1, make_text },
	{ "chunk - 1", "text/plain", NULL, MIME_CHUNK - 1, make_text },
	{ "chunk", "text/plain", NULL, MIME_CHUNK, make_text },
	{ "chunk + 1", "text/plain", NULL, MIME_CHUNK + 1, make_text },
	{ "CR on the piece edge", "text/plain", NULL, 3 * MIME_CHUNK, make_cr_edge },
	{ "8bit text", "text/plain; charset=utf-8", "8bit", 5 * MIME_CHUNK + 7, make_8bit },
	{ "binary", "application/octet-stream", "binary", 4 * MIME_CHUNK + 3, make_binary },
	{ "CRLF/LF mixed", "text/plain", NULL, 3 * MIME_CHUNK, make_mixed },
	{ "multipart", "multipart/mixed; boundary=XyZ", NULL, 3 * MIME_CHUNK, make_multipart },
	{ "50 MB", "text/plain", NULL, 50u << 20, make_text },
};
/* All of them; under Valgrind (SMIME_VALGRIND=1, which `make
 * check-valgrind` sets, or SMIME_SKIP_HUGE=1) the 50 MB one is left out,
 * and main says so. */
static size_t NBODIES = sizeof(bodies) / sizeof(bodies[0]);

static void
body_headers(const struct body *bd, struct mime_headers *h)
{
	ck_assert_int_eq(mime_headers_add(h, "Content-Type", bd->ctype), SM_OK);
	if (bd->cte)
		ck_assert_int_eq(mime_headers_add(h, "Content-Transfer-Encoding", bd->cte), SM_OK);
}

/* The canonical form both ways: want in memory, *sp streamed. */
static void
canon_both(const struct body *bd, struct buf *want, struct spool **sp)
{
	struct mime_headers h = MIME_HEADERS_INIT;
	struct buf body = BUF_INIT, got = BUF_INIT;
	struct mime_entity *root = NULL;
	struct mime_sink sink = { to_spool, NULL, NULL };

	bd->make(&body, bd->len);
	body_headers(bd, &h);
	ck_assert_int_eq(mime_canonicalize(&h, body.data, body.len, NULL, want), SM_OK);
	*sp = disk_spool();
	sink.arg = *sp;
	ck_assert_int_eq(mime_parse_message(&h, body.data, body.len, NULL, &root), SM_OK);
	ck_assert_int_eq(mime_canonicalize_tree(root, &h, &sink), SM_OK);
	spool_all(*sp, &got);
	ck_assert_msg(got.len == want->len && memcmp(got.data, want->data, got.len) == 0,
	    "%s: streamed canonical form differs (%zu bytes, want %zu)", bd->name, got.len,
	    want->len);
	mime_entity_free(root);
	mime_headers_free(&h);
	buf_free(&body);
	buf_free(&got);
}

/* ------------------------------------------------------------- tests */

START_TEST(the_streamed_canonical_form_is_the_in_memory_one)
{
	const struct body *bd = &bodies[_i];
	struct buf want = BUF_INIT;
	struct spool *sp;

	canon_both(bd, &want, &sp);
	ck_assert(bd->len < 8192 || spool_on_disk(sp));
	spool_free(sp);
	buf_free(&want);
}
END_TEST

START_TEST(a_detached_signature_from_the_spool_is_byte_identical)
{
	const struct body *bd = &bodies[_i];
	struct smime_key k = { signer, signer_key, NULL };
	struct buf want = BUF_INIT, mem_sig = BUF_INIT, str_sig = BUF_INIT;
	struct spool *sp;
	struct src s = { NULL, 0, 0 };
	struct smime_src src = { from_spool, &s };
	char err[256];

	canon_both(bd, &want, &sp);
	s.sp = sp;
	clock_set(CG_NOW);
	ck_assert_int_eq(smime_sign(&k, NULL, true, want.data, want.len, &mem_sig, err,
	    sizeof(err)), SM_OK);
	ck_assert_msg(smime_sign_stream(&k, NULL, true, &src, &str_sig, NULL, err, sizeof(err)) ==
	    SM_OK, "%s: %s", bd->name, err);
	ck_assert_msg(str_sig.len == mem_sig.len && memcmp(str_sig.data, mem_sig.data,
	    str_sig.len) == 0, "%s: the streamed signature differs", bd->name);
	/* and written to while the entity is made (gw_transform's one pass),
	 * in uneven pieces */
	{
		static const size_t cuts[] = { 1, 1000, 65536, 7 };
		struct smime_signer *sg = NULL;
		struct buf tee_sig = BUF_INIT;

		ck_assert_msg(smime_signer_begin(&k, NULL, &sg, err, sizeof(err)) == SM_OK, "%s: %s",
		    bd->name, err);
		for (size_t at = 0, c = 0; at < want.len; at += cuts[c++ % 4])
			ck_assert_int_eq(smime_signer_write(sg, want.data + at, want.len - at <
			    cuts[c % 4] ? want.len - at : cuts[c % 4]), SM_OK);
		ck_assert_msg(smime_signer_end(sg, &tee_sig, err, sizeof(err)) == SM_OK, "%s: %s",
		    bd->name, err);
		ck_assert_msg(tee_sig.len == mem_sig.len && memcmp(tee_sig.data, mem_sig.data,
		    tee_sig.len) == 0, "%s: the signature written to differs", bd->name);
		buf_free(&tee_sig);
	}
	put_file("detached.der", str_sig.data, str_sig.len);
	put_file("content.bin", want.data, want.len);
	ck_assert_msg(run("openssl cms -verify -binary -inform DER -in '%s' -content '%s' "
	    "-CAfile '%s' -purpose any -attime %lld -out /dev/null", path("detached.der"),
	    path("content.bin"), path("ca.pem"), (long long)CG_NOW) == 0,
	    "%s: openssl cms does not verify the detached signature (see %s)", bd->name,
	    path("run.log"));
	spool_free(sp);
	buf_free(&want);
	buf_free(&mem_sig);
	buf_free(&str_sig);
}
END_TEST

START_TEST(an_opaque_signature_streamed_gives_the_content_back)
{
	const struct body *bd = &bodies[_i];
	struct smime_key k = { signer, signer_key, NULL };
	struct buf want = BUF_INIT;
	struct spool *sp, *out = disk_spool();
	struct src s = { NULL, 0, 0 };
	struct smime_src src = { from_spool, &s };
	struct smime_out so = { to_spool, out };
	char err[256];

	canon_both(bd, &want, &sp);
	s.sp = sp;
	clock_set(CG_NOW);
	ck_assert_msg(smime_sign_stream(&k, NULL, false, &src, NULL, &so, err, sizeof(err)) ==
	    SM_OK, "%s: %s", bd->name, err);
	spool_free(sp);
	spool_all(out, &want); /* reuse: the BER */
	put_file("opaque.ber", want.data, want.len);
	buf_free(&want);
	canon_both(bd, &want, &sp);
	ck_assert_msg(run("openssl cms -verify -binary -inform DER -in '%s' -CAfile '%s' "
	    "-purpose any -attime %lld -out '%s'", path("opaque.ber"), path("ca.pem"),
	    (long long)CG_NOW, path("opaque.out")) == 0,
	    "%s: openssl cms does not verify the opaque signature", bd->name);
	ck_assert_msg(file_is("opaque.out", want.data, want.len),
	    "%s: the signed content is not the canonical form", bd->name);
	spool_free(sp);
	spool_free(out);
	buf_free(&want);
}
END_TEST

/* The content written to an smime_sealer in uneven pieces (gw_transform's
 * one pass of sign+encrypt). */
static void
seal_written(STACK_OF(X509) *rcpts, enum smime_cipher c, bool oaep, const struct buf *want,
    const struct smime_out *so, const char *name)
{
	static const size_t cuts[] = { 7, 65536, 1, 1000 };
	struct smime_sealer *sl = NULL;
	char err[256];

	ck_assert_msg(smime_sealer_begin(rcpts, c, oaep, so, &sl, err, sizeof(err)) == SM_OK,
	    "%s: %s", name, err);
	for (size_t at = 0, k = 0; at < want->len; at += cuts[k++ % 4])
		ck_assert_int_eq(smime_sealer_write(sl, want->data + at, want->len - at <
		    cuts[k % 4] ? want->len - at : cuts[k % 4]), SM_OK);
	ck_assert_msg(smime_sealer_end(sl, err, sizeof(err)) == SM_OK, "%s: %s", name, err);
}

static void
encrypt_and_open(const struct body *bd, enum smime_cipher c, bool oaep, bool written)
{
	STACK_OF(X509) *rcpts = sk_X509_new_null();
	struct buf want = BUF_INIT, ber = BUF_INIT;
	struct spool *sp, *out = disk_spool();
	struct src s = { NULL, 0, 0 };
	struct smime_src src = { from_spool, &s };
	struct smime_out so = { to_spool, out };
	char err[256];

	ck_assert(rcpts != NULL && sk_X509_push(rcpts, rcpt) > 0);
	canon_both(bd, &want, &sp);
	s.sp = sp;
	if (written)
		seal_written(rcpts, c, oaep, &want, &so, bd->name);
	else
		ck_assert_msg(smime_encrypt_stream(rcpts, c, oaep, &src, &so, err, sizeof(err)) ==
		    SM_OK, "%s: %s", bd->name, err);
	spool_all(out, &ber);
	put_file("env.ber", ber.data, ber.len);
	ck_assert_msg(run("openssl cms -decrypt -binary -inform DER -in '%s' -recip '%s' "
	    "-inkey '%s' -out '%s'", path("env.ber"), path("rcpt.pem"), path("rcpt.key"),
	    path("env.out")) == 0, "%s (%s): openssl cms does not decrypt the envelope",
	    bd->name, smime_cipher_name(c));
	ck_assert_msg(file_is("env.out", want.data, want.len),
	    "%s (%s): the decrypted content is not the canonical form", bd->name,
	    smime_cipher_name(c));
	sk_X509_free(rcpts);
	spool_free(sp);
	spool_free(out);
	buf_free(&want);
	buf_free(&ber);
}

START_TEST(an_envelope_streamed_decrypts_to_the_content)
{
	encrypt_and_open(&bodies[_i], SMIME_CIPHER_AES256_CBC, false, false);
}
END_TEST

START_TEST(a_gcm_envelope_with_oaep_streamed_decrypts_to_the_content)
{
	encrypt_and_open(&bodies[_i], SMIME_CIPHER_AES128_GCM, true, false);
}
END_TEST

START_TEST(an_envelope_written_to_decrypts_to_the_content)
{
	encrypt_and_open(&bodies[_i], SMIME_CIPHER_AES256_CBC, false, true);
}
END_TEST

START_TEST(a_gcm_envelope_written_to_decrypts_to_the_content)
{
	encrypt_and_open(&bodies[_i], SMIME_CIPHER_AES256_GCM, false, true);
}
END_TEST

static sm_status
to_buf(void *arg, const unsigned char *p, size_t n)
{
	return buf_append(arg, p, n);
}

START_TEST(base64_in_pieces_is_base64_of_the_whole)
{
	static const size_t cuts[] = { 1, 2, 3, 56, 57, 58, 1000, 65536, 200000 };
	struct buf in = BUF_INIT, want = BUF_INIT, got = BUF_INIT;
	struct mime_sink sink = { to_buf, NULL, &got };

	make_binary(&in, 3 * MIME_CHUNK + 11);
	for (size_t n = 0; n < in.len; n = n * 3 + 1) {
		buf_reset(&want);
		ck_assert_int_eq(mime_b64_encode(in.data, n, &want), SM_OK);
		for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
			struct mime_b64w w;

			buf_reset(&got);
			mime_b64w_init(&w, &sink);
			for (size_t at = 0; at < n; at += cuts[c])
				ck_assert_int_eq(mime_b64w_write(&w, in.data + at,
				    n - at < cuts[c] ? n - at : cuts[c]), SM_OK);
			ck_assert_int_eq(mime_b64w_finish(&w), SM_OK);
			ck_assert_msg(got.len == want.len &&
			    (got.len == 0 || memcmp(got.data, want.data, got.len) == 0),
			    "%zu bytes written %zu at a time: base64 differs", n, cuts[c]);
		}
	}
	buf_free(&in);
	buf_free(&want);
	buf_free(&got);
}
END_TEST

/* The line-at-a-time encoder against OpenSSL's: one base64 string,
 * a CRLF after every 76 characters and at the end. */
START_TEST(base64_is_openssls_for_every_length)
{
	struct buf in = BUF_INIT, got = BUF_INIT, want = BUF_INIT;
	unsigned char *flat = malloc(4 * 1024 + 8);

	ck_assert_ptr_nonnull(flat);
	make_binary(&in, 3 * 1024);
	for (size_t n = 0; n <= in.len; n += n < 400 ? 1 : 97) {
		int k = EVP_EncodeBlock(flat, in.data, (int)n);

		buf_reset(&want);
		for (int at = 0; at < k; at += 76)
			ck_assert(buf_append(&want, flat + at, k - at < 76 ? (size_t)(k - at) : 76) ==
			    SM_OK && buf_append(&want, "\r\n", 2) == SM_OK);
		buf_reset(&got);
		ck_assert_int_eq(mime_b64_encode(in.data, n, &got), SM_OK);
		ck_assert_msg(got.len == want.len &&
		    (got.len == 0 || memcmp(got.data, want.data, got.len) == 0),
		    "%zu bytes: base64 differs from OpenSSL's", n);
	}
	free(flat);
	buf_free(&in);
	buf_free(&got);
	buf_free(&want);
}
END_TEST

/* RFC 2045 7bit, byte by byte (the reference for the word-at-a-time
 * check): no NUL, no 8-bit byte, CR only before LF, lines of at most 998
 * octets besides the CRLF. */
static bool
ref_7bit_clean(const unsigned char *p, size_t n)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			col = 0;
		else if (p[i] == '\r') {
			if (i + 1 == n || p[i + 1] != '\n')
				return false;
		} else if (p[i] == 0 || p[i] >= 128 || ++col > 998)
			return false;
	}
	return true;
}

/* One text body through mime_canonicalize: kept as it is (no CTE added)
 * exactly when it is 7-bit clean. */
static void
check_7bit_verdict(const unsigned char *p, size_t n, const char *what, size_t at)
{
	struct mime_headers h = MIME_HEADERS_INIT;
	struct buf out = BUF_INIT;
	bool clean = ref_7bit_clean(p, n), kept;

	ck_assert_int_eq(mime_headers_add(&h, "Content-Type", "text/plain"), SM_OK);
	ck_assert_int_eq(mime_canonicalize(&h, p, n, NULL, &out), SM_OK);
	kept = strstr(buf_cstr(&out), "Content-Transfer-Encoding") == NULL;
	ck_assert_msg(kept == clean, "%s at %zu (%zu bytes): kept as is %d, 7-bit clean %d", what,
	    at, n, (int)kept, (int)clean);
	mime_headers_free(&h);
	buf_free(&out);
}

START_TEST(the_7bit_verdict_is_the_byte_by_byte_one)
{
	static const unsigned char bad[] = { 0, 0x80, 0xff, '\r', '\n' };
	static const size_t lens[] = { 1, 7, 8, 9, 17, 997, 998, 999, 1500 };
	unsigned char b[1600];

	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		size_t n = lens[l];

		/* a line of n octets ending in LF, in CRLF, in a lone CR, in nothing */
		memset(b, 'a', n);
		memcpy(b + n, "\r\n", 2);
		check_7bit_verdict(b, n + 1, "line ending in CR", n);
		check_7bit_verdict(b, n, "line ending in nothing", n);
		check_7bit_verdict(b, n + 2, "line ending in CRLF", n);
		b[n] = '\n';
		check_7bit_verdict(b, n + 1, "line ending in LF", n);
		if (n > 40)
			continue;
		/* one odd byte at every place of the line (every lane of a word) */
		for (size_t k = 0; k < sizeof(bad); k++)
			for (size_t at = 0; at < n; at++) {
				memset(b, 'a', n);
				memcpy(b + n, "\r\n", 2);
				b[at] = bad[k];
				check_7bit_verdict(b, n + 2, bad[k] == '\r' ? "bare CR" : "odd byte",
				    at);
			}
	}
}
END_TEST

/* OpenSSL's copy loop stops quietly at a read error; signing what was
 * read so far would sign a truncated message. */
START_TEST(a_source_failing_mid_way_fails_the_signature_and_the_envelope)
{
	struct smime_key k = { signer, signer_key, NULL };
	STACK_OF(X509) *rcpts = sk_X509_new_null();
	struct buf want = BUF_INIT, sig = BUF_INIT;
	struct spool *sp, *out = disk_spool();
	struct src s = { NULL, 0, 100000 };
	struct smime_src src = { from_spool, &s };
	struct smime_out so = { to_spool, out };
	char err[256];

	ck_assert(rcpts != NULL && sk_X509_push(rcpts, rcpt) > 0);
	canon_both(&bodies[7], &want, &sp);
	s.sp = sp;
	ck_assert_int_eq(smime_sign_stream(&k, NULL, true, &src, &sig, NULL, err, sizeof(err)),
	    SM_ERR_IO);
	ck_assert_uint_eq(sig.len, 0);
	s.off = 0;
	ck_assert_int_eq(smime_sign_stream(&k, NULL, false, &src, NULL, &so, err, sizeof(err)),
	    SM_ERR_IO);
	s.off = 0;
	ck_assert_int_eq(smime_encrypt_stream(rcpts, SMIME_CIPHER_AES256_CBC, false, &src, &so,
	    err, sizeof(err)), SM_ERR_IO);
	sk_X509_free(rcpts);
	spool_free(sp);
	spool_free(out);
	buf_free(&want);
	buf_free(&sig);
}
END_TEST

/* ------------------------------------------------------------- setup */

static void
pki_make(void)
{
	struct cg_spec s = { 0 };
	FILE *f;

	ca_key = cg_rsa(2048);
	ca = cg_ca(ca_key, "Stream Test CA");
	signer_key = cg_rsa(2048);
	s.key = signer_key;
	s.ca = ca;
	s.ca_key = ca_key;
	s.cn = "alice";
	s.san = "email:alice@org.example";
	s.ku = "critical,digitalSignature,keyEncipherment";
	s.eku = "emailProtection";
	signer = cg_make(&s);
	rcpt_key = cg_rsa(2048);
	s.key = rcpt_key;
	s.cn = "bob";
	s.san = "email:bob@example.net";
	rcpt = cg_make(&s);
	cg_write_pem(path("ca.pem"), NULL, ca, NULL, 0600);
	cg_write_pem(path("rcpt.pem"), NULL, rcpt, NULL, 0600);
	f = fopen(path("rcpt.key"), "w");
	ck_assert(f != NULL && PEM_write_PrivateKey(f, rcpt_key, NULL, NULL, 0, NULL, NULL) == 1);
	ck_assert_int_eq(fclose(f), 0);
}

static void
pki_free(void)
{
	X509_free(ca);
	X509_free(signer);
	X509_free(rcpt);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(signer_key);
	EVP_PKEY_free(rcpt_key);
}

static Suite *
stream_suite(void)
{
	Suite *s = suite_create("stream");
	TCase *tc = tcase_create("stream");

	tcase_set_timeout(tc, 600);
	tcase_add_unchecked_fixture(tc, pki_make, pki_free);
	tcase_add_loop_test(tc, the_streamed_canonical_form_is_the_in_memory_one, 0, NBODIES);
	tcase_add_loop_test(tc, a_detached_signature_from_the_spool_is_byte_identical, 0, NBODIES);
	tcase_add_loop_test(tc, an_opaque_signature_streamed_gives_the_content_back, 0, NBODIES);
	tcase_add_loop_test(tc, an_envelope_streamed_decrypts_to_the_content, 0, NBODIES);
	tcase_add_loop_test(tc, a_gcm_envelope_with_oaep_streamed_decrypts_to_the_content, 0,
	    NBODIES);
	tcase_add_loop_test(tc, an_envelope_written_to_decrypts_to_the_content, 0, NBODIES);
	tcase_add_loop_test(tc, a_gcm_envelope_written_to_decrypts_to_the_content, 0, NBODIES);
	tcase_add_test(tc, base64_in_pieces_is_base64_of_the_whole);
	tcase_add_test(tc, base64_is_openssls_for_every_length);
	tcase_add_test(tc, the_7bit_verdict_is_the_byte_by_byte_one);
	tcase_add_test(tc, a_source_failing_mid_way_fails_the_signature_and_the_envelope);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	int rc;

	const char *v = getenv("SMIME_VALGRIND"), *h = getenv("SMIME_SKIP_HUGE");

	if ((v && strcmp(v, "1") == 0) || (h && strcmp(h, "1") == 0)) {
		NBODIES--;
		fprintf(stderr, "check_stream: NOT RUN: the 50 MB body (SMIME_SKIP_HUGE=1 or "
		    "SMIME_VALGRIND=1: meant for Valgrind runs only)\n");
	}
	scratch = testutil_tmpdir();
	rc = testutil_run(stream_suite());
	if (getenv("STREAM_KEEP") == NULL)
		testutil_rmtree(scratch);
	else
		fprintf(stderr, "kept %s\n", scratch);
	free(scratch);
	return rc;
}
