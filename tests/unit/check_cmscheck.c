/*
 * check_cmscheck.c — "already encrypted by the client" means a complete
 * envelope: recipients, encrypted content, and nothing after it.
 */
#include <string.h>

#include <openssl/cms.h>

#include "certgen.h"
#include "cmscheck.h"
#include "smime.h"
#include "testutil.h"

static struct buf env_der;

static void
setup(void)
{
	EVP_PKEY *k = cg_rsa(2048);
	struct cg_spec s = { .key = k, .san = "email:bob@partner.example",
		.ku = "keyEncipherment" };
	X509 *c = cg_make(&s);
	STACK_OF(X509) *r = sk_X509_new_null();
	static const char msg[] = "Content-Type: text/plain\r\n\r\nsecret\r\n";
	char err[256] = "";

	sk_X509_push(r, c);
	buf_reset(&env_der);
	ck_assert_msg(smime_encrypt(r, SMIME_CIPHER_AES256_CBC, false, (const unsigned char *)msg,
	    strlen(msg), &env_der, err, sizeof(err)) == SM_OK, "%s", err);
	sk_X509_free(r);
	X509_free(c);
	EVP_PKEY_free(k);
}

static void
teardown(void)
{
	buf_free(&env_der);
}

START_TEST(a_complete_envelope_counts)
{
	ck_assert(cmscheck_complete_envelope(env_der.data, env_der.len));
}
END_TEST

START_TEST(an_envelope_with_plaintext_after_it_does_not)
{
	struct buf b = BUF_INIT;

	buf_append(&b, env_der.data, env_der.len);
	buf_append_str(&b, "\r\nand here is the plaintext the client did not encrypt\r\n");
	ck_assert(!cmscheck_complete_envelope(b.data, b.len));
	buf_free(&b);
}
END_TEST

START_TEST(a_truncated_envelope_does_not)
{
	/* the ContentInfo header, the OID and a few bytes: what
	 * smime_content_type() alone took for an envelope */
	for (size_t n = 1; n < env_der.len; n += n < 64 ? 1 : 97)
		ck_assert_msg(!cmscheck_complete_envelope(env_der.data, n), "%zu of %zu bytes", n,
		    env_der.len);
}
END_TEST

START_TEST(a_fake_header_followed_by_plaintext_does_not)
{
	/* SEQUENCE, OID 1.2.840.113549.1.7.3 (envelopedData), then text */
	static const unsigned char fake[] = { 0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
		0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 'p', 'l', 'a', 'i', 'n', ' ', 't', 'e', 'x', 't' };

	ck_assert(!cmscheck_complete_envelope(fake, sizeof(fake)));
}
END_TEST

START_TEST(an_envelope_without_encrypted_content_does_not)
{
	CMS_ContentInfo *cms;
	const unsigned char *p = env_der.data;
	unsigned char *out = NULL;
	ASN1_OCTET_STRING **content;
	int n;

	/* strip the encrypted content: a detached envelope */
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)env_der.len);
	ck_assert_ptr_nonnull(cms);
	content = CMS_get0_content(cms);
	ck_assert_ptr_nonnull(content);
	ASN1_OCTET_STRING_free(*content);
	*content = NULL;
	n = i2d_CMS_ContentInfo(cms, &out);
	ck_assert_int_gt(n, 0);
	ck_assert(!cmscheck_complete_envelope(out, (size_t)n));
	OPENSSL_free(out);
	CMS_ContentInfo_free(cms);
	ck_assert(!cmscheck_complete_envelope(NULL, 0));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cmscheck");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, a_complete_envelope_counts);
	tcase_add_test(tc, an_envelope_with_plaintext_after_it_does_not);
	tcase_add_test(tc, a_truncated_envelope_does_not);
	tcase_add_test(tc, a_fake_header_followed_by_plaintext_does_not);
	tcase_add_test(tc, an_envelope_without_encrypted_content_does_not);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
