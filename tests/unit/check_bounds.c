/*
 * check_bounds.c — the work one inbound signature may cause is bounded
 * before it is done: counts taken in the raw BER (cmsscan), signer keys
 * that cost too much refused (smime_key_fit), and smime_verify_bounded()
 * refusing unread what passes a limit.
 *
 * The malicious messages are built here: a real signature, then its
 * SignedData rebuilt with one member's contents repeated. Assertions count
 * (what was refused, and why) instead of timing anything: timing goals
 * belong to `make bench`.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* EC_KEY, for an explicit-curve key */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/ec.h>

#include "buf.h"
#include "certgen.h"
#include "cmsscan.h"
#include "smime.h"
#include "testutil.h"

static const unsigned char msg[] = "bounded work\r\n";

static EVP_PKEY *rsa_key;
static X509 *rsa_cert;

static void
setup(void)
{
	struct cg_spec s = { 0 };

	rsa_key = cg_rsa(2048);
	s.key = rsa_key;
	s.cn = "bounds";
	rsa_cert = cg_make(&s);
}

static void
teardown(void)
{
	EVP_PKEY_free(rsa_key);
	X509_free(rsa_cert);
}

/* A detached (or opaque) SignedData over msg by cert/key, as DER. */
static void
sign_der(X509 *cert, EVP_PKEY *key, bool detached, struct buf *out)
{
	BIO *in = BIO_new_mem_buf(msg, sizeof(msg) - 1);
	CMS_ContentInfo *cms;
	unsigned char *der = NULL;
	int n;

	cms = CMS_sign(cert, key, NULL, in, CMS_BINARY | (detached ? CMS_DETACHED : 0));
	ck_assert_msg(cms != NULL, "test bug: CMS_sign failed");
	n = i2d_CMS_ContentInfo(cms, &der);
	ck_assert_int_gt(n, 0);
	buf_reset(out);
	ck_assert_int_eq(buf_append(out, der, (size_t)n), SM_OK);
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
}

/* ---- DER surgery: rebuild a SignedData with one member inflated ---- */

static size_t
der_hdr(const unsigned char *p, size_t *len)
{
	size_t h = 2, l = p[1];

	if (l & 0x80) {
		size_t k = l & 0x7f;

		l = 0;
		for (size_t i = 0; i < k; i++)
			l = (l << 8) | p[2 + i];
		h += k;
	}
	*len = l;
	return h;
}

static void
der_put(struct buf *b, unsigned char tag, const unsigned char *c, size_t len)
{
	unsigned char h[6] = { tag };
	size_t hl;

	if (len < 0x80) {
		h[1] = (unsigned char)len;
		hl = 2;
	} else {
		h[1] = 0x84;
		for (int i = 0; i < 4; i++)
			h[2 + i] = (unsigned char)(len >> (24 - 8 * i));
		hl = 6;
	}
	ck_assert_int_eq(buf_append(b, h, hl), SM_OK);
	if (c != NULL)
		ck_assert_int_eq(buf_append(b, c, len), SM_OK);
}

enum member { M_DIGESTS, M_CERTS, M_SIGNERS };

/* der: ContentInfo { OID, [0] { SignedData } }; the member's contents
 * (its SET or [0] elements) are repeated `times` times. */
static void
inflate(const struct buf *der, enum member which, size_t times, struct buf *out)
{
	const unsigned char *p = der->data, *ci, *sd, *oid, *m, *end;
	size_t l, h, oidlen, sets = 0, nsets = 0;
	struct buf sdc = BUF_INIT, wrap = BUF_INIT, inner = BUF_INIT;

	h = der_hdr(p, &l);
	ci = p + h;                             /* ContentInfo contents */
	oid = ci;
	oidlen = der_hdr(oid, &l) + l;
	h = der_hdr(ci + oidlen, &l);           /* [0] */
	sd = ci + oidlen + h;
	h = der_hdr(sd, &l);                    /* SignedData SEQUENCE */
	m = sd + h;
	end = m + l;
	for (const unsigned char *q = m; q < end; q += der_hdr(q, &l) + l)
		nsets += *q == 0x31;
	while (m < end) {
		size_t mh = der_hdr(m, &l);
		bool pick = false;

		if (*m == 0x31)
			sets++;
		pick = (which == M_DIGESTS && *m == 0x31 && sets == 1) ||
		    (which == M_CERTS && *m == 0xa0) ||
		    (which == M_SIGNERS && *m == 0x31 && sets == nsets);
		if (pick) {
			der_put(&sdc, *m, NULL, l * times);
			for (size_t i = 0; i < times; i++)
				ck_assert_int_eq(buf_append(&sdc, m + mh, l), SM_OK);
		} else {
			ck_assert_int_eq(buf_append(&sdc, m, mh + l), SM_OK);
		}
		m += mh + l;
	}
	der_put(&inner, 0x30, sdc.data, sdc.len);
	der_put(&wrap, 0xa0, inner.data, inner.len);
	buf_reset(&sdc);
	ck_assert_int_eq(buf_append(&sdc, oid, oidlen), SM_OK);
	ck_assert_int_eq(buf_append(&sdc, wrap.data, wrap.len), SM_OK);
	buf_reset(out);
	der_put(out, 0x30, sdc.data, sdc.len);
	buf_free(&sdc);
	buf_free(&wrap);
	buf_free(&inner);
}

/* ---- tests ---- */

START_TEST(the_scan_counts_what_openssl_decodes)
{
	struct buf der = BUF_INIT, big = BUF_INIT;
	struct cmsscan_counts c;

	sign_der(rsa_cert, rsa_key, true, &der);
	ck_assert_int_eq(cmsscan_signed(der.data, der.len, NULL, &c), SM_OK);
	ck_assert_msg(c.ndigests == 1 && c.ncerts == 1 && c.nsigners == 1,
	    "got %zu digests, %zu certificates, %zu signers; want 1, 1, 1",
	    c.ndigests, c.ncerts, c.nsigners);
	inflate(&der, M_CERTS, 7, &big);
	ck_assert_int_eq(cmsscan_signed(big.data, big.len, NULL, &c), SM_OK);
	ck_assert_uint_eq(c.ncerts, 7);
	inflate(&der, M_SIGNERS, 3, &big);
	ck_assert_int_eq(cmsscan_signed(big.data, big.len, NULL, &c), SM_OK);
	ck_assert_uint_eq(c.nsigners, 3);
	/* any prefix is refused, never read past its end (ASan watches) */
	for (size_t n = 0; n < der.len; n++)
		ck_assert_msg(cmsscan_signed(der.data, n, NULL, &c) == SM_ERR_PARSE,
		    "a %zu-byte prefix scanned as complete", n);
	buf_free(&der);
	buf_free(&big);
}
END_TEST

START_TEST(the_scan_reads_indefinite_length_ber)
{
	BIO *in = BIO_new_mem_buf(msg, sizeof(msg) - 1), *out = BIO_new(BIO_s_mem());
	CMS_ContentInfo *cms;
	struct cmsscan_counts c;
	char *p;
	long n;

	cms = CMS_sign(rsa_cert, rsa_key, NULL, in, CMS_BINARY | CMS_STREAM);
	ck_assert_ptr_nonnull(cms);
	ck_assert_int_eq(i2d_CMS_bio_stream(out, cms, in, CMS_BINARY | CMS_STREAM), 1);
	n = BIO_get_mem_data(out, &p);
	ck_assert_msg(n > 2 && (unsigned char)p[1] == 0x80, "test bug: not indefinite BER");
	ck_assert_int_eq(cmsscan_signed((unsigned char *)p, (size_t)n, NULL, &c), SM_OK);
	ck_assert_msg(c.ndigests == 1 && c.nsigners == 1, "got %zu digests, %zu signers",
	    c.ndigests, c.nsigners);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(out);
}
END_TEST

START_TEST(deep_nesting_is_refused_not_recursed)
{
	/* 100,000 nested indefinite-length SEQUENCEs inside a SignedData
	 * digestAlgorithms SET: refused at the depth bound. */
	static const unsigned char head[] = { 0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
		0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0x31, 0x80 };
	struct buf b = BUF_INIT;
	struct cmsscan_counts c;

	ck_assert_int_eq(buf_append(&b, head, sizeof(head)), SM_OK);
	for (int i = 0; i < 100000; i++)
		ck_assert_int_eq(buf_append(&b, "\x30\x80", 2), SM_OK);
	ck_assert_int_eq(cmsscan_signed(b.data, b.len, NULL, &c), SM_ERR_PARSE);
	buf_free(&b);
}
END_TEST

static const struct {
	enum member m;
	size_t times;
	const char *want; /* NULL: verifies */
} count_rows[] = {
	{ M_SIGNERS, 4, NULL },
	{ M_SIGNERS, 5, "refused unread: more than 4 SignerInfos" },
	{ M_SIGNERS, 300, "refused unread: more than 4 SignerInfos" },
	{ M_DIGESTS, 16, NULL },
	{ M_DIGESTS, 17, "refused unread: more than 16 digestAlgorithms" },
	{ M_DIGESTS, 16000, "refused unread: more than 16 digestAlgorithms" },
	{ M_CERTS, 50, NULL },
	{ M_CERTS, 51, "refused unread: more than 50 certificates" },
	{ M_CERTS, 4000, "refused unread: more than 50 certificates" },
};

START_TEST(counts_past_a_limit_are_refused_unread)
{
	struct buf der = BUF_INIT, big = BUF_INIT;
	struct smime_verify_result res;

	sign_der(rsa_cert, rsa_key, true, &der);
	inflate(&der, count_rows[_i].m, count_rows[_i].times, &big);
	ck_assert_int_eq(smime_verify(big.data, big.len, msg, sizeof(msg) - 1, NULL, true,
	    &res, NULL), SM_OK);
	if (count_rows[_i].want == NULL) {
		ck_assert_msg(res.signature_ok, "%zu copies: got %s (%s), want a good signature",
		    count_rows[_i].times, smime_verify_status_name(res.status), res.reason);
	} else {
		ck_assert_msg(res.status == SMIME_VERIFY_MALFORMED &&
		    strcmp(res.reason, count_rows[_i].want) == 0 && res.certs == NULL,
		    "%zu copies: got %s (%s), %s certificates decoded; want \"%s\" and "
		    "nothing decoded", count_rows[_i].times, smime_verify_status_name(res.status),
		    res.reason, res.certs ? "some" : "no", count_rows[_i].want);
	}
	smime_verify_result_free(&res);
	buf_free(&der);
	buf_free(&big);
}
END_TEST

START_TEST(limits_are_configurable)
{
	struct smime_limits lim = { 2, 1, 1 };
	struct buf der = BUF_INIT, big = BUF_INIT;
	struct smime_verify_result res;

	sign_der(rsa_cert, rsa_key, true, &der);
	inflate(&der, M_SIGNERS, 3, &big);
	ck_assert_int_eq(smime_verify_bounded(big.data, big.len, msg, sizeof(msg) - 1, NULL,
	    true, &lim, &res, NULL), SM_OK);
	ck_assert_str_eq(res.reason, "refused unread: more than 2 SignerInfos");
	smime_verify_result_free(&res);
	inflate(&der, M_SIGNERS, 2, &big);
	ck_assert_int_eq(smime_verify_bounded(big.data, big.len, msg, sizeof(msg) - 1, NULL,
	    true, &lim, &res, NULL), SM_OK);
	ck_assert_msg(res.signature_ok, "2 signers, limit 2: got %s", res.reason);
	smime_verify_result_free(&res);
	buf_free(&der);
	buf_free(&big);
}
END_TEST

static EVP_PKEY *
rsa_with_exponent(unsigned long long e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	BIGNUM *bn = BN_new();
	EVP_PKEY *k = NULL;

	ck_assert(ctx != NULL && bn != NULL);
	ck_assert(BN_set_word(bn, (BN_ULONG)e) == 1);
	ck_assert(EVP_PKEY_keygen_init(ctx) == 1);
	ck_assert(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) == 1);
	ck_assert(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, bn) == 1);
	ck_assert_msg(EVP_PKEY_keygen(ctx, &k) == 1, "test bug: RSA keygen with e=%llx", e);
	BN_free(bn);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static EVP_PKEY *
dsa_key(void)
{
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL), *kctx;
	EVP_PKEY *params = NULL, *k = NULL;

	ck_assert(pctx != NULL && EVP_PKEY_paramgen_init(pctx) == 1);
	ck_assert(EVP_PKEY_CTX_set_dsa_paramgen_bits(pctx, 2048) == 1);
	ck_assert(EVP_PKEY_paramgen(pctx, &params) == 1);
	kctx = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
	ck_assert(kctx != NULL && EVP_PKEY_keygen_init(kctx) == 1);
	ck_assert(EVP_PKEY_keygen(kctx, &k) == 1);
	EVP_PKEY_CTX_free(kctx);
	EVP_PKEY_CTX_free(pctx);
	EVP_PKEY_free(params);
	return k;
}

/* A self-signed certificate for key, and a detached signature by it. */
static void
signed_by(EVP_PKEY *key, struct buf *der)
{
	struct cg_spec s = { 0 };
	X509 *x;

	s.key = key;
	s.cn = "unfit";
	x = cg_make(&s);
	sign_der(x, key, true, der);
	X509_free(x);
}

START_TEST(signers_with_unfit_keys_are_refused)
{
	struct {
		const char *what;
		EVP_PKEY *key;
		const char *want;
	} rows[] = {
		{ "DSA-2048", dsa_key(), "signer key refused: DSA key (not accepted)" },
		{ "RSA e=2^33+1", rsa_with_exponent(0x200000001ULL),
		  "signer key refused: RSA public exponent of 34 bits (at most 32 accepted)" },
		{ "RSA-1024", cg_rsa(1024),
		  "signer key refused: RSA key of 1024 bits (2048 to 16384 accepted)" },
		{ "RSA e=2^32+15 is 33 bits", rsa_with_exponent(0x10000000fULL),
		  "signer key refused: RSA public exponent of 33 bits (at most 32 accepted)" },
		{ "RSA e=2^32-5 is fine", rsa_with_exponent(0xfffffffbULL), NULL },
		{ "EC P-256 is fine", cg_ec(), NULL },
	};
	struct buf der = BUF_INIT;
	struct smime_verify_result res;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		signed_by(rows[i].key, &der);
		ck_assert_int_eq(smime_verify(der.data, der.len, msg, sizeof(msg) - 1, NULL, true,
		    &res, NULL), SM_OK);
		if (rows[i].want == NULL)
			ck_assert_msg(res.signature_ok, "%s: got %s (%s), want a good signature",
			    rows[i].what, smime_verify_status_name(res.status), res.reason);
		else
			ck_assert_msg(!res.signature_ok &&
			    res.status == SMIME_VERIFY_UNSUPPORTED_ALGORITHM &&
			    strcmp(res.reason, rows[i].want) == 0, "%s: got %s (%s), want \"%s\"",
			    rows[i].what, smime_verify_status_name(res.status), res.reason,
			    rows[i].want);
		smime_verify_result_free(&res);
		EVP_PKEY_free(rows[i].key);
	}
	buf_free(&der);
}
END_TEST

START_TEST(ec_keys_with_explicit_curve_parameters_are_unfit)
{
	EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	EVP_PKEY *named = EVP_PKEY_new(), *explicit;
	unsigned char *der = NULL;
	const unsigned char *p;
	char why[200];
	int n;

	ck_assert(ec != NULL && named != NULL && EC_KEY_generate_key(ec) == 1);
	ck_assert(smime_key_fit(NULL, why, sizeof(why)) == false);
	EC_KEY_set_asn1_flag(ec, OPENSSL_EC_EXPLICIT_CURVE);
	ck_assert(EVP_PKEY_set1_EC_KEY(named, ec) == 1);
	n = i2d_PUBKEY(named, &der);
	ck_assert_int_gt(n, 0);
	p = der;
	explicit = d2i_PUBKEY(NULL, &p, n);
	ck_assert_msg(explicit != NULL, "test bug: explicit-curve key does not decode");
	ck_assert_msg(!smime_key_fit(explicit, why, sizeof(why)), "an explicit-curve key is fit");
	ck_assert_str_eq(why, "EC key with explicit curve parameters (named curves only)");
	OPENSSL_free(der);
	EVP_PKEY_free(explicit);
	EVP_PKEY_free(named);
	EC_KEY_free(ec);
}
END_TEST

static Suite *
bounds_suite(void)
{
	Suite *s = suite_create("bounds");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, the_scan_counts_what_openssl_decodes);
	tcase_add_test(tc, the_scan_reads_indefinite_length_ber);
	tcase_add_test(tc, deep_nesting_is_refused_not_recursed);
	tcase_add_loop_test(tc, counts_past_a_limit_are_refused_unread, 0,
	    sizeof(count_rows) / sizeof(count_rows[0]));
	tcase_add_test(tc, limits_are_configurable);
	tcase_add_test(tc, signers_with_unfit_keys_are_refused);
	tcase_add_test(tc, ec_keys_with_explicit_curve_parameters_are_unfit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(bounds_suite());
}
