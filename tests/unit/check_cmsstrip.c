/*
 * check_cmsstrip.c — CMS content taken out in place (lib/cmsstrip.c), an
 * envelope decrypted in place (lib/smime_open.c) and base64 decoded in
 * pieces from a file mapping (lib/bodyio.c): each against the whole-copy
 * path it replaces, in DER and in BER (indefinite lengths, constructed
 * strings, as streaming signers write), and every broken input refused
 * with the bytes untouched.
 */
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/err.h>

#include "bodyio.h"
#include "buf.h"
#include "cmsstrip.h"
#include "mime.h"
#include "smime.h"
#include "smime_open.h"
#include "testutil.h"

static char *T;
static struct smime_key bob, alice, carol;

static int __attribute__((format(printf, 1, 2)))
sh(const char *fmt, ...)
{
	char cmd[4096], full[4600];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd %s && { %s ; } >sh.out 2>&1", T, cmd);
	r = system(full);
	return WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}

static void
load(const char *name, struct smime_key *k)
{
	char path[4200], err[256];

	snprintf(path, sizeof(path), "%s/pki/%s.pem", T, name);
	ck_assert_msg(smime_key_load_pem(path, k, err, sizeof(err)) == SM_OK, "%s", err);
}

static void
setup(void)
{
	char path[4200];

	T = testutil_tmpdir();
	ck_assert_ptr_nonnull(T);
	ck_assert_msg(realpath(testutil_path("tests/pki/mkpki.sh"), path) != NULL,
	    "tests/pki/mkpki.sh not found: set SMIME_TOP to the source tree");
	ck_assert_msg(sh("sh %s pki", path) == 0, "mkpki.sh failed (see %s/sh.out)", T);
	load("bob", &bob);
	load("alice", &alice);
	load("carol", &carol);
}

static void
teardown(void)
{
	smime_key_free(&bob);
	smime_key_free(&alice);
	smime_key_free(&carol);
	testutil_rmtree(T);
	free(T);
}

/* n bytes of text with line breaks. */
static void
text(size_t n, struct buf *out)
{
	/* (no assertion per byte: Check reports each one through a pipe) */
	buf_reset(out);
	ck_assert_int_eq(buf_reserve(out, n), SM_OK);
	for (size_t i = 0; i < n; i++)
		out->data[i] = i % 61 == 60 ? '\n' : (unsigned char)('a' + i % 26);
	out->len = n;
}

/* The CMS as DER, or streamed (BER: indefinite lengths, the content in
 * constructed pieces). */
static void
encode(CMS_ContentInfo *cms, BIO *in, bool ber, struct buf *out)
{
	BIO *mem = BIO_new(BIO_s_mem());
	char *p;
	long n;

	ck_assert_ptr_nonnull(mem);
	ck_assert(ber ? i2d_CMS_bio_stream(mem, cms, in, CMS_BINARY | CMS_STREAM) == 1 :
	    i2d_CMS_bio(mem, cms) == 1);
	n = BIO_get_mem_data(mem, &p);
	buf_reset(out);
	ck_assert_int_eq(buf_append(out, p, (size_t)n), SM_OK);
	BIO_free(mem);
}

static void
signed_data(const struct buf *content, bool ber, struct buf *der)
{
	BIO *in = BIO_new_mem_buf(content->len ? (void *)content->data : (void *)"",
	    (int)content->len);
	CMS_ContentInfo *cms = CMS_sign(bob.cert, bob.pkey, NULL, in,
	    CMS_BINARY | (ber ? CMS_STREAM : 0));

	ck_assert_ptr_nonnull(cms);
	encode(cms, in, ber, der);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
}

static void
enveloped_data(const struct buf *content, bool ber, const EVP_CIPHER *c, struct buf *der)
{
	BIO *in = BIO_new_mem_buf(content->len ? (void *)content->data : (void *)"",
	    (int)content->len);
	STACK_OF(X509) *to = sk_X509_new_null();
	CMS_ContentInfo *cms;

	sk_X509_push(to, alice.cert);
	cms = CMS_encrypt(to, in, c, CMS_BINARY | (ber ? CMS_STREAM : 0));
	ck_assert_ptr_nonnull(cms);
	encode(cms, in, ber, der);
	CMS_ContentInfo_free(cms);
	sk_X509_free(to);
	BIO_free(in);
}

static const size_t sizes[] = { 0, 1, 15, 16, 17, 4095, 4096, 70000 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* _i: size index, DER or BER. The shell verifies as a detached signature
 * over the content left in place, which is the content signed. */
START_TEST(signed_data_comes_apart_into_shell_and_content)
{
	struct buf c = BUF_INIT, der = BUF_INIT, shell = BUF_INIT;
	struct smime_verify_result vr;
	/* (OpenSSL cannot stream-sign empty content: DER for that one) */
	bool ber = _i % 2 && sizes[_i / 2] > 0;
	size_t off, len;
	BIO *src;

	text(sizes[_i / 2], &c);
	signed_data(&c, ber, &der);
	ck_assert_int_eq(cmsstrip_content(der.data, der.len, &shell, &off, &len), SM_OK);
	ck_assert_uint_eq(len, c.len);
	ck_assert(len == 0 || memcmp(der.data + off, c.data, len) == 0);
	ck_assert_uint_lt(shell.len, der.len - c.len + 16);
	src = BIO_new_mem_buf(len ? der.data + off : (unsigned char *)"", (int)len);
	ck_assert_int_eq(smime_verify_stream(shell.data, shell.len, src, NULL, true, NULL, &vr),
	    SM_OK);
	ck_assert_msg(vr.signature_ok, "%s", vr.reason);
	smime_verify_result_free(&vr);
	BIO_free(src);
	buf_free(&c);
	buf_free(&der);
	buf_free(&shell);
}
END_TEST

/* An envelope decrypted in place gives what smime_decrypt gives; the
 * envelope with only its tail opens with the same keys only. */
START_TEST(an_envelope_decrypts_in_place_as_a_whole)
{
	struct buf c = BUF_INIT, der = BUF_INIT, shell = BUF_INIT, mini = BUF_INIT,
	    whole = BUF_INIT, scratch = BUF_INIT;
	bool ber = _i % 2;
	size_t off, len, plen;
	char err[256];

	text(sizes[_i / 2], &c);
	enveloped_data(&c, ber, EVP_aes_256_cbc(), &der);
	ck_assert_int_eq(smime_decrypt(der.data, der.len, &alice, 1, &whole, err, sizeof(err)),
	    SM_OK);
	ck_assert_int_eq(cmsstrip_envelope(der.data, der.len, 32, &shell, &mini, &off, &len),
	    SM_OK);
	ck_assert_int_eq(smime_decrypt_inplace(shell.data, shell.len, der.data, off, len, &bob, 1,
	    &plen, err, sizeof(err)), SM_ERR_NOKEY);
	ck_assert_int_eq(smime_decrypt_inplace(shell.data, shell.len, der.data, off, len, &alice, 1,
	    &plen, err, sizeof(err)), SM_OK);
	ck_assert_uint_eq(plen, whole.len);
	ck_assert(plen == 0 || memcmp(der.data, whole.data, plen) == 0);
	ck_assert_int_eq(smime_decrypt(mini.data, mini.len, &alice, 1, &scratch, err, sizeof(err)),
	    SM_OK);
	buf_reset(&scratch);
	ck_assert_int_eq(smime_decrypt(mini.data, mini.len, &carol, 1, &scratch, err, sizeof(err)),
	    SM_ERR_NOKEY);
	buf_free(&scratch);
	buf_free(&c);
	buf_free(&der);
	buf_free(&shell);
	buf_free(&mini);
	buf_free(&whole);
}
END_TEST

/* A wrong key behind a matching recipient entry (the entry altered so the
 * key transport gives a random key): the whole and the tail both fail. */
START_TEST(a_corrupt_content_fails_in_place_as_a_whole)
{
	struct buf c = BUF_INIT, der = BUF_INIT, shell = BUF_INIT, mini = BUF_INIT,
	    whole = BUF_INIT;
	size_t off, len, plen;
	char err[256];
	sm_status a, b;

	text(70000, &c);
	enveloped_data(&c, false, EVP_aes_256_cbc(), &der);
	/* the last block altered: its padding no longer holds */
	der.data[der.len - 1] ^= 0x5a;
	der.data[der.len - 20] ^= 0x33;
	a = smime_decrypt(der.data, der.len, &alice, 1, &whole, err, sizeof(err));
	ck_assert_int_eq(cmsstrip_envelope(der.data, der.len, 32, &shell, &mini, &off, &len),
	    SM_OK);
	b = smime_decrypt_inplace(shell.data, shell.len, der.data, off, len, &alice, 1, &plen, err,
	    sizeof(err));
	ck_assert_int_eq(a, b);
	buf_reset(&whole);
	ck_assert_int_eq(smime_decrypt(mini.data, mini.len, &alice, 1, &whole, err, sizeof(err)), a);
	buf_free(&c);
	buf_free(&der);
	buf_free(&shell);
	buf_free(&mini);
	buf_free(&whole);
}
END_TEST

START_TEST(auth_enveloped_and_detached_signatures_are_left_whole)
{
	struct buf c = BUF_INIT, der = BUF_INIT, shell = BUF_INIT, mini = BUF_INIT, copy = BUF_INIT;
	size_t off, len;
	char err[256];

	text(5000, &c);
	enveloped_data(&c, false, EVP_aes_128_gcm(), &der);
	buf_append(&copy, der.data, der.len);
	ck_assert_int_eq(cmsstrip_envelope(der.data, der.len, 32, &shell, &mini, &off, &len),
	    SM_ERR_PARSE);
	ck_assert(memcmp(der.data, copy.data, der.len) == 0 && shell.len == 0 && mini.len == 0);
	buf_reset(&der);
	ck_assert_int_eq(smime_sign(&bob, NULL, true, c.data, c.len, &der, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(cmsstrip_content(der.data, der.len, &shell, &off, &len), SM_ERR_PARSE);
	buf_free(&c);
	buf_free(&der);
	buf_free(&copy);
	buf_free(&shell);
	buf_free(&mini);
}
END_TEST

/* Every prefix and many single-byte changes of a signed and an enveloped
 * BER blob: refused with the bytes untouched, or taken apart (never read
 * out of bounds: ASan/Valgrind watch). */
START_TEST(broken_blobs_are_refused_untouched)
{
	struct buf c = BUF_INIT, der = BUF_INIT, work = BUF_INIT, shell = BUF_INIT, mini = BUF_INIT;
	size_t off, len;

	text(3000, &c);
	for (int kind = 0; kind < 2; kind++) {
		if (kind == 0)
			signed_data(&c, true, &der);
		else
			enveloped_data(&c, true, EVP_aes_256_cbc(), &der);
		for (size_t k = 0; k < der.len + 600; k++) {
			size_t n = k < der.len ? k : der.len;
			sm_status st;

			buf_reset(&work);
			buf_append(&work, der.data, der.len);
			if (k >= der.len)
				work.data[(k * 7919) % der.len] ^= (unsigned char)(1 + k % 255);
			buf_reset(&shell);
			buf_reset(&mini);
			st = kind == 0 ? cmsstrip_content(work.data, n, &shell, &off, &len) :
			    cmsstrip_envelope(work.data, n, 32, &shell, &mini, &off, &len);
			if (st != SM_OK) {
				ck_assert_int_eq(st, SM_ERR_PARSE);
				ck_assert_msg(memcmp(work.data, der.data, n) == 0 || k >= der.len,
				    "prefix %zu changed", k);
				ck_assert_uint_eq(shell.len, 0);
			} else {
				ck_assert_uint_le(off + len, n);
			}
		}
	}
	buf_free(&c);
	buf_free(&der);
	buf_free(&work);
	buf_free(&shell);
	buf_free(&mini);
}
END_TEST

/* base64 of n bytes with 76-character lines, into a file mapping. */
static unsigned char *
mapped_b64(const struct buf *b64, int *fd)
{
	char path[4200];
	unsigned char *p;

	snprintf(path, sizeof(path), "%s/b64.XXXXXX", T);
	ck_assert_int_ge(*fd = mkstemp(path), 0);
	unlink(path);
	ck_assert_int_eq(write(*fd, b64->data, b64->len), (ssize_t)b64->len);
	p = mmap(NULL, b64->len, PROT_READ, MAP_PRIVATE, *fd, 0);
	ck_assert(p != MAP_FAILED);
	return p;
}

/* _i: 0 valid, 1 padding in the middle, 2 a bad character near the end,
 * 3 a quad cut short at the end, 4 lines of 4n+1 characters. */
START_TEST(base64_in_pieces_decodes_as_a_whole)
{
	struct buf raw = BUF_INIT, b64 = BUF_INIT, a = BUF_INIT, b = BUF_INIT;
	unsigned char *p;
	int fd;
	sm_status sa, sb;

	text(3u << 20, &raw);
	ck_assert_int_eq(mime_b64_encode(raw.data, raw.len, &b64), SM_OK);
	if (_i == 1)
		b64.data[b64.len / 2] = '=';
	if (_i == 2)
		b64.data[b64.len - 10] = '*';
	if (_i == 3)
		b64.len -= 3;
	if (_i == 4) {
		buf_reset(&b64);
		for (size_t i = 0; b64.len < (5u << 20); i++)
			buf_append_str(&b64, i % 2 ? "QUJD\r\n" : "QUJDR\r\nEVG\r\n");
	}
	p = mapped_b64(&b64, &fd);
	sa = mime_b64_decode(b64.data, b64.len, &a);
	sb = bodyio_b64_decode(p, b64.len, &b);
	ck_assert_int_eq(sa, sb);
	ck_assert_int_eq(sa, _i == 0 || _i == 4 ? SM_OK : SM_ERR_PARSE);
	ck_assert_uint_eq(a.len, b.len);
	ck_assert(a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
	munmap(p, b64.len);
	close(fd);
	buf_free(&raw);
	buf_free(&b64);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("cmsstrip");
	TCase *tc = tcase_create("strip");

	tcase_set_timeout(tc, 300);
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, signed_data_comes_apart_into_shell_and_content, 0, 2 * NSIZES);
	tcase_add_loop_test(tc, an_envelope_decrypts_in_place_as_a_whole, 0, 2 * NSIZES);
	tcase_add_test(tc, a_corrupt_content_fails_in_place_as_a_whole);
	tcase_add_test(tc, auth_enveloped_and_detached_signatures_are_left_whole);
	tcase_add_test(tc, broken_blobs_are_refused_untouched);
	tcase_add_loop_test(tc, base64_in_pieces_decodes_as_a_whole, 0, 5);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(suite());
}
