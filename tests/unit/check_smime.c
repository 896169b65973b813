/*
 * check_smime.c — the CMS layer (lib/smime.c) and trust anchors
 * (lib/trust.c).
 *
 * Keys come from tests/pki/mkpki.sh, run into a private temp directory when
 * the suite starts. Real-client messages come from tests/data/corpus (see
 * its SOURCES); the little MIME cutter below exists only to get the CMS
 * blob and the signed part out of them — the real MIME layer is lib/mime.
 */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "buf.h"
#include "caps.h"
#include "clock.h"
#include "cmsscan.h"
#include "smime.h"
#include "testutil.h"
#include "trust.h"

#define DAY (24 * 60 * 60)

static char *pki;           /* mkpki.sh output */
static char *scratch;       /* files the tests write */
static struct trust *anchors;  /* pki/ca.pem */

/* Every identity the tests use, loaded once from NAME.pem. */
static struct ident {
	const char *name;
	struct smime_key k;
} idents[] = {
	{ "alice", { 0 } }, { "alice-renewed", { 0 } },
	{ "alice-expired", { 0 } }, { "bob", { 0 } }, { "carol", { 0 } },
	{ "dave", { 0 } }, { "expired", { 0 } }, { "notyet", { 0 } },
	{ "untrusted", { 0 } }, { "selfsigned", { 0 } },
	{ "no-emailprot", { 0 } }, { "sign-only", { 0 } }, { "sha1", { 0 } },
	{ "rsa1024", { 0 } }, { "erin-sign", { 0 } }, { "erin-enc", { 0 } },
};

static const struct smime_key *
key(const char *name)
{
	for (size_t i = 0; i < sizeof(idents) / sizeof(idents[0]); i++)
		if (strcmp(idents[i].name, name) == 0)
			return &idents[i].k;
	ck_abort_msg("test bug: no identity %s", name);
	return NULL;
}

static const char *
path_in(const char *dir, const char *name)
{
	static char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

/* Run a shell command, output to a log; returns the exit status. */
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

static X509 *
load_cert(const char *path)
{
	FILE *f = fopen(path, "rb");
	X509 *x = NULL;

	if (f == NULL)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	if (x == NULL) {
		rewind(f);
		x = d2i_X509_fp(f, NULL);
	}
	fclose(f);
	ERR_clear_error();
	return x;
}

static char *
serial_hex(X509 *x)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *h = bn != NULL ? BN_bn2hex(bn) : NULL;

	BN_free(bn);
	return h;
}

/* Some readable text, CRLF line ends, len bytes. */
static unsigned char *
text(size_t len)
{
	unsigned char *p = malloc(len + 1);
	static const char line[] = "The quick brown fox jumps over the lazy "
	    "dog 0123456789.\r\n";

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)line[i % (sizeof(line) - 1)];
	p[len] = 0;
	return p;
}

static STACK_OF(X509) *
rcpts(const char *a, const char *b, const char *c)
{
	STACK_OF(X509) *s = sk_X509_new_null();
	const char *names[] = { a, b, c };

	ck_assert_ptr_nonnull(s);
	for (int i = 0; i < 3; i++)
		if (names[i] != NULL)
			sk_X509_push(s, key(names[i])->cert);
	return s;
}

static bool
contains(const struct buf *b, const unsigned char *needle, size_t n)
{
	return b->len >= n && memmem(b->data, b->len, needle, n) != NULL;
}

static void
unpin_clock(void)
{
	clock_set(0);
}

/* -------------------------------------------------------- sign / verify */

static const struct {
	const char *who;
	const char *md;
	bool detached;
} sign_rows[] = {
	{ "alice", "SHA256", true }, { "alice", "SHA384", true },
	{ "alice", "SHA512", true }, { "alice", "SHA256", false },
	{ "alice", "SHA384", false }, { "alice", "SHA512", false },
	{ "dave", "SHA256", true }, { "dave", "SHA512", false },
	{ "dave", "SHA384", true }, { "carol", "SHA256", true },
	{ "carol", "SHA384", false }, { "carol", "SHA512", true },
};

START_TEST(sign_then_verify_round_trips_for_every_key_digest_and_form)
{
	const struct smime_key *k = key(sign_rows[_i].who);
	const EVP_MD *md = EVP_get_digestbyname(sign_rows[_i].md);
	static const unsigned char msg[] = "Content-Type: text/plain\r\n\r\n"
	    "Hello partner,\r\nthis is signed.\r\n";
	struct buf der = BUF_INIT, out = BUF_INIT;
	struct smime_verify_result res;
	char err[256];
	sm_status st;

	st = smime_sign(k, md, sign_rows[_i].detached, msg, sizeof(msg) - 1,
	    &der, err, sizeof(err));
	ck_assert_msg(st == SM_OK, "%s/%s: sign: got %s (%s), want ok",
	    sign_rows[_i].who, sign_rows[_i].md, sm_strstatus(st), err);
	ck_assert_int_eq(smime_content_type(der.data, der.len), SMIME_CT_SIGNED);
	st = smime_verify(der.data, der.len,
	    sign_rows[_i].detached ? msg : NULL,
	    sign_rows[_i].detached ? sizeof(msg) - 1 : 0,
	    trust_store(anchors), false, &res, &out);
	ck_assert_msg(st == SM_OK && res.status == SMIME_VERIFY_OK &&
	    res.signature_ok,
	    "%s/%s/%s: verify: got %s/%s (%s), want ok", sign_rows[_i].who,
	    sign_rows[_i].md, sign_rows[_i].detached ? "detached" : "opaque",
	    sm_strstatus(st), smime_verify_status_name(res.status), res.reason);
	ck_assert_msg(X509_cmp(res.signer, k->cert) == 0,
	    "signer: got another certificate, want %s's", sign_rows[_i].who);
	ck_assert_msg(res.digest_nid == EVP_MD_get_type(md),
	    "digest: got %s, want %s", OBJ_nid2sn(res.digest_nid),
	    sign_rows[_i].md);
	ck_assert_uint_eq(res.nsigners, 1);
	/* signer + intermediate travel with every signature */
	ck_assert_int_eq(sk_X509_num(res.certs), 2);
	if (sign_rows[_i].detached) {
		ck_assert_msg(out.len == 0, "detached: content_out got %zu "
		    "bytes, want none", out.len);
	} else {
		ck_assert_msg(out.len == sizeof(msg) - 1 &&
		    memcmp(out.data, msg, out.len) == 0,
		    "opaque: content_out differs from what was signed");
	}
	smime_verify_result_free(&res);
	buf_free(&der);
	buf_free(&out);
}
END_TEST

START_TEST(micalg_names_the_signing_digest)
{
	ck_assert_str_eq(smime_micalg(EVP_sha256()), "sha-256");
	ck_assert_str_eq(smime_micalg(EVP_sha384()), "sha-384");
	ck_assert_str_eq(smime_micalg(EVP_sha512()), "sha-512");
	ck_assert_str_eq(smime_micalg(EVP_sha1()), "sha-1");
	ck_assert_str_eq(smime_micalg(NULL), "unknown");
}
END_TEST

START_TEST(sign_refuses_weak_digests_and_missing_keys)
{
	struct buf der = BUF_INIT;
	struct smime_key nokey = { 0 };
	char err[256];
	sm_status st;

	st = smime_sign(key("alice"), EVP_sha1(), true,
	    (const unsigned char *)"x", 1, &der, err, sizeof(err));
	ck_assert_msg(st == SM_ERR_UNSUPPORTED, "sha1: got %s, want "
	    "unsupported", sm_strstatus(st));
	st = smime_sign(key("alice"), EVP_md5(), true,
	    (const unsigned char *)"x", 1, &der, err, sizeof(err));
	ck_assert_msg(st == SM_ERR_UNSUPPORTED, "md5: got %s, want "
	    "unsupported", sm_strstatus(st));
	st = smime_sign(&nokey, NULL, true, (const unsigned char *)"x", 1,
	    &der, err, sizeof(err));
	ck_assert_msg(st == SM_ERR_ARG, "no key: got %s, want invalid "
	    "argument", sm_strstatus(st));
	ck_assert_uint_eq(der.len, 0);
	buf_free(&der);
}
END_TEST

START_TEST(empty_content_signs_and_verifies)
{
	struct buf der = BUF_INIT, out = BUF_INIT;
	struct smime_verify_result res;
	char err[256];

	ck_assert_int_eq(smime_sign(key("alice"), NULL, false, NULL, 0, &der,
	    err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_verify(der.data, der.len, NULL, 0,
	    trust_store(anchors), false, &res, &out), SM_OK);
	ck_assert_msg(res.status == SMIME_VERIFY_OK, "got %s (%s), want ok",
	    smime_verify_status_name(res.status), res.reason);
	ck_assert_uint_eq(out.len, 0);
	smime_verify_result_free(&res);
	buf_free(&der);
	buf_free(&out);
}
END_TEST

START_TEST(capabilities_and_key_preference_survive_a_round_trip)
{
	const caps_t want = CAP_KNOWN | CAP_AES256_GCM | CAP_AES128_GCM |
	    CAP_AES256_CBC | CAP_AES128_CBC | CAP_RSA_OAEP;
	time_t t = time(NULL) - 3600;
	struct buf der = BUF_INIT;
	struct smime_verify_result res;
	char err[256];

	clock_set(t);
	ck_assert_int_eq(smime_sign(key("alice"), NULL, true,
	    (const unsigned char *)"abc", 3, &der, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_verify(der.data, der.len,
	    (const unsigned char *)"abc", 3, trust_store(anchors), false, &res,
	    NULL), SM_OK);
	ck_assert_msg(res.caps == want, "caps: got %#x, want %#x",
	    (unsigned)res.caps, (unsigned)want);
	ck_assert_msg(!(res.caps & (CAP_DES3 | CAP_RC2)),
	    "caps: we must never advertise 3DES or RC2");
	ck_assert_msg(res.enc_pref != NULL &&
	    X509_cmp(res.enc_pref, key("alice")->cert) == 0,
	    "encryption key preference: got %s, want alice's certificate",
	    res.enc_pref ? "another certificate" : "none");
	ck_assert_msg(res.signing_time == t, "signingTime: got %lld, want "
	    "%lld (the pinned clock)", (long long)res.signing_time,
	    (long long)t);
	smime_verify_result_free(&res);
	buf_free(&der);
}
END_TEST

START_TEST(signing_time_after_2049_is_generalized_time)
{
	/* RFC 5652: UTCTime until 2049, GeneralizedTime from 2050. */
	time_t t = 2600000000; /* 2052 */
	struct buf der = BUF_INIT;
	struct smime_verify_result res;
	char err[256];

	clock_set(t);
	ck_assert_int_eq(smime_sign(key("alice"), NULL, true,
	    (const unsigned char *)"abc", 3, &der, err, sizeof(err)), SM_OK);
	ck_assert_msg(contains(&der, (const unsigned char *)"\x18\x0f" "2052",
	    6), "want a GeneralizedTime 2052... in the signature");
	smime_verify(der.data, der.len, (const unsigned char *)"abc", 3, NULL,
	    false, &res, NULL);
	ck_assert_msg(res.signature_ok && res.signing_time == t,
	    "signingTime: got %lld, want %lld", (long long)res.signing_time,
	    (long long)t);
	smime_verify_result_free(&res);
	buf_free(&der);
}
END_TEST

START_TEST(changed_content_is_content_altered)
{
	static const unsigned char msg[] = "Pay Bob 100 EUR.\r\n";
	unsigned char changed[sizeof(msg)];
	const char *who[] = { "alice", "carol" };
	struct buf der = BUF_INIT;
	struct smime_verify_result res;
	unsigned char *p;
	char err[256];

	for (int w = 0; w < 2; w++) {
		/* detached: the caller's content differs */
		buf_reset(&der);
		ck_assert_int_eq(smime_sign(key(who[w]), NULL, true, msg,
		    sizeof(msg) - 1, &der, err, sizeof(err)), SM_OK);
		memcpy(changed, msg, sizeof(msg));
		changed[8] = '9';
		ck_assert_int_eq(smime_verify(der.data, der.len, changed,
		    sizeof(msg) - 1, trust_store(anchors), false, &res, NULL),
		    SM_OK);
		ck_assert_msg(!res.signature_ok &&
		    res.status == SMIME_VERIFY_CONTENT_ALTERED,
		    "%s detached: got %s (%s), want content-altered", who[w],
		    smime_verify_status_name(res.status), res.reason);
		smime_verify_result_free(&res);

		/* opaque: the encapsulated content is changed in the DER */
		buf_reset(&der);
		ck_assert_int_eq(smime_sign(key(who[w]), NULL, false, msg,
		    sizeof(msg) - 1, &der, err, sizeof(err)), SM_OK);
		p = memmem(der.data, der.len, msg, sizeof(msg) - 1);
		ck_assert_ptr_nonnull(p);
		p[8] = '9';
		ck_assert_int_eq(smime_verify(der.data, der.len, NULL, 0,
		    trust_store(anchors), false, &res, NULL), SM_OK);
		ck_assert_msg(!res.signature_ok &&
		    res.status == SMIME_VERIFY_CONTENT_ALTERED,
		    "%s opaque: got %s (%s), want content-altered", who[w],
		    smime_verify_status_name(res.status), res.reason);
		/* the signer is still named, for the log line */
		ck_assert_ptr_nonnull(res.signer);
		smime_verify_result_free(&res);
	}
	buf_free(&der);
}
END_TEST

START_TEST(changed_signature_or_signed_attributes_is_bad_signature)
{
	static const unsigned char msg[] = "Pay Bob 100 EUR.\r\n";
	const char *who[] = { "alice", "dave", "carol" };
	struct buf der = BUF_INIT;
	struct smime_verify_result res;
	time_t t = time(NULL) - 600;
	char stamp[16], err[256];
	unsigned char *p;

	clock_set(t);
	strftime(stamp, sizeof(stamp), "%y%m%d%H%M%SZ", gmtime(&t));
	for (int w = 0; w < 3; w++) {
		/* The signature value is the last thing in our DER. */
		buf_reset(&der);
		ck_assert_int_eq(smime_sign(key(who[w]), NULL, true, msg,
		    sizeof(msg) - 1, &der, err, sizeof(err)), SM_OK);
		der.data[der.len - 1] ^= 0x01;
		ck_assert_int_eq(smime_verify(der.data, der.len, msg,
		    sizeof(msg) - 1, trust_store(anchors), false, &res, NULL),
		    SM_OK);
		ck_assert_msg(!res.signature_ok &&
		    res.status == SMIME_VERIFY_BAD_SIGNATURE,
		    "%s signature byte: got %s (%s), want bad-signature",
		    who[w], smime_verify_status_name(res.status), res.reason);
		smime_verify_result_free(&res);

		/* A signed attribute (signingTime) changed: the content
		 * digest still matches, the signature does not. */
		der.data[der.len - 1] ^= 0x01;
		p = memmem(der.data, der.len, stamp, strlen(stamp));
		ck_assert_msg(p != NULL, "signingTime %s not found", stamp);
		p[0] = p[0] == '1' ? '2' : '1';
		ck_assert_int_eq(smime_verify(der.data, der.len, msg,
		    sizeof(msg) - 1, trust_store(anchors), false, &res, NULL),
		    SM_OK);
		ck_assert_msg(!res.signature_ok &&
		    res.status == SMIME_VERIFY_BAD_SIGNATURE,
		    "%s signingTime: got %s (%s), want bad-signature", who[w],
		    smime_verify_status_name(res.status), res.reason);
		smime_verify_result_free(&res);
	}
	buf_free(&der);
}
END_TEST

/* Trust of the signer at a pinned time. */
static const struct {
	const char *who;
	int days;            /* clock offset from now */
	bool store;          /* use pki/ca.pem */
	bool allow_ss;
	enum smime_verify_status want;
	const char *why;
} chain_rows[] = {
	{ "alice", 0, true, false, SMIME_VERIFY_OK, "valid, chains to root" },
	{ "alice", 0, false, false, SMIME_VERIFY_UNTRUSTED, "no anchors" },
	{ "alice", 400, true, false, SMIME_VERIFY_EXPIRED, "after notAfter" },
	{ "alice", -40, true, false, SMIME_VERIFY_NOT_YET_VALID, "before notBefore" },
	{ "alice-expired", 0, true, false, SMIME_VERIFY_EXPIRED, "old key" },
	{ "alice-expired", -100, true, false, SMIME_VERIFY_OK, "old key, back then" },
	{ "expired", 0, true, false, SMIME_VERIFY_EXPIRED, "expired" },
	{ "expired", -100, true, false, SMIME_VERIFY_OK, "expired, back then" },
	{ "notyet", 0, true, false, SMIME_VERIFY_NOT_YET_VALID, "not yet valid" },
	{ "notyet", 60, true, false, SMIME_VERIFY_OK, "not yet valid, later" },
	{ "untrusted", 0, true, false, SMIME_VERIFY_UNTRUSTED, "other root" },
	{ "selfsigned", 0, true, false, SMIME_VERIFY_SELF_SIGNED, "self-signed" },
	{ "selfsigned", 0, false, false, SMIME_VERIFY_SELF_SIGNED, "self-signed, no store" },
	{ "selfsigned", 0, true, true, SMIME_VERIFY_OK, "self-signed allowed" },
	{ "selfsigned", 0, false, true, SMIME_VERIFY_OK, "self-signed allowed, no store" },
	{ "selfsigned", 400, true, true, SMIME_VERIFY_EXPIRED, "self-signed allowed, expired" },
	{ "no-emailprot", 0, true, false, SMIME_VERIFY_UNTRUSTED, "EKU lacks emailProtection" },
	{ "erin-enc", 0, true, false, SMIME_VERIFY_UNTRUSTED, "keyUsage keyEncipherment only" },
	{ "erin-sign", 0, true, false, SMIME_VERIFY_OK, "signing certificate" },
	{ "sign-only", 0, true, false, SMIME_VERIFY_OK, "digitalSignature only" },
	{ "carol", 0, true, false, SMIME_VERIFY_OK, "EC" },
	{ "dave", 0, true, false, SMIME_VERIFY_OK, "RSA-4096" },
	/* Chain validation alone does not judge digest strength: the
	 * harvest rules (weak digest) are the key cache's. RSA-1024 signers
	 * are refused before any work: signers_with_unfit_keys_are_refused. */
	{ "sha1", 0, true, false, SMIME_VERIFY_OK, "SHA-1 certificate" },
};

START_TEST(chain_status_reflects_trust_and_validity_at_the_pinned_time)
{
	static const unsigned char msg[] = "hello\r\n";
	struct buf der = BUF_INIT;
	struct smime_verify_result res;
	char err[256];

	clock_set(time(NULL) + (time_t)chain_rows[_i].days * DAY);
	ck_assert_int_eq(smime_sign(key(chain_rows[_i].who), NULL, true, msg,
	    sizeof(msg) - 1, &der, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_verify(der.data, der.len, msg, sizeof(msg) - 1,
	    chain_rows[_i].store ? trust_store(anchors) : NULL,
	    chain_rows[_i].allow_ss, &res, NULL), SM_OK);
	ck_assert_msg(res.signature_ok, "%s: signature must hold whatever the "
	    "trust (%s)", chain_rows[_i].why, res.reason);
	ck_assert_msg(res.chain_status == chain_rows[_i].want &&
	    res.status == chain_rows[_i].want,
	    "%s (%s): got chain %s, status %s (%s), want %s",
	    chain_rows[_i].who, chain_rows[_i].why,
	    smime_verify_status_name(res.chain_status),
	    smime_verify_status_name(res.status), res.reason,
	    smime_verify_status_name(chain_rows[_i].want));
	smime_verify_result_free(&res);
	buf_free(&der);
}
END_TEST

START_TEST(streamed_ber_with_indefinite_lengths_verifies)
{
	static const unsigned char msg[] = "streamed content\r\n";
	const struct smime_key *k = key("bob");
	CMS_ContentInfo *cms;
	BIO *in, *mem;
	struct buf out = BUF_INIT;
	struct smime_verify_result res;
	char *p;
	long n;

	/* What gpgsm and streaming encoders produce: BER, not DER. */
	in = BIO_new_mem_buf(msg, sizeof(msg) - 1);
	mem = BIO_new(BIO_s_mem());
	cms = CMS_sign(k->cert, k->pkey, k->chain, in, CMS_STREAM | CMS_BINARY);
	ck_assert_ptr_nonnull(cms);
	ck_assert_int_eq(i2d_CMS_bio_stream(mem, cms, in, CMS_STREAM |
	    CMS_BINARY), 1);
	n = BIO_get_mem_data(mem, &p);
	ck_assert_msg(n > 2 && (unsigned char)p[1] == 0x80,
	    "test setup: want an indefinite-length encoding");
	ck_assert_int_eq(smime_verify((unsigned char *)p, (size_t)n, NULL, 0,
	    trust_store(anchors), false, &res, &out), SM_OK);
	ck_assert_msg(res.status == SMIME_VERIFY_OK, "got %s (%s), want ok",
	    smime_verify_status_name(res.status), res.reason);
	ck_assert_msg(out.len == sizeof(msg) - 1 &&
	    memcmp(out.data, msg, out.len) == 0, "content differs");
	ck_assert_msg(X509_cmp(res.signer, k->cert) == 0, "signer: want bob");
	smime_verify_result_free(&res);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(mem);
	buf_free(&out);
}
END_TEST

START_TEST(garbage_and_truncated_input_gives_an_error_not_a_crash)
{
	static const unsigned char msg[] = "short message\r\n";
	static const char *junk[] = { "", "x", "\x30", "\x30\x80",
		"\x30\x82\xff\xff\x06\x09", "-----BEGIN PKCS7-----",
		"\x30\x03\x06\x01\x00" };
	struct buf sig = BUF_INIT, env = BUF_INIT, out = BUF_INIT;
	struct smime_verify_result res;
	STACK_OF(X509) *r = rcpts("alice", NULL, NULL);
	char err[256];
	sm_status st;

	ck_assert_int_eq(smime_sign(key("alice"), NULL, true, msg,
	    sizeof(msg) - 1, &sig, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES128_CBC, false, msg,
	    sizeof(msg) - 1, &env, err, sizeof(err)), SM_OK);
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		size_t n = strlen(junk[i]) + (i == 0);

		st = smime_verify((const unsigned char *)junk[i], n, msg,
		    sizeof(msg) - 1, trust_store(anchors), false, &res, NULL);
		ck_assert_msg(st == SM_ERR_PARSE &&
		    res.status == SMIME_VERIFY_MALFORMED, "junk %zu: got %s/%s, "
		    "want malformed", i, sm_strstatus(st),
		    smime_verify_status_name(res.status));
		smime_verify_result_free(&res);
		st = smime_decrypt((const unsigned char *)junk[i], n, key("alice"),
		    1, &out, err, sizeof(err));
		ck_assert_msg(st == SM_ERR_PARSE, "junk %zu: decrypt got %s, "
		    "want malformed input", i, sm_strstatus(st));
		ck_assert_int_eq(smime_content_type((const unsigned char *)junk[i],
		    n), SMIME_CT_INVALID);
	}
	/* Every proper prefix of a good signature and envelope. */
	for (size_t n = 0; n < sig.len; n++) {
		st = smime_verify(sig.data, n, msg, sizeof(msg) - 1,
		    trust_store(anchors), false, &res, NULL);
		ck_assert_msg(st != SM_OK || res.status != SMIME_VERIFY_OK,
		    "signature cut at %zu of %zu bytes was accepted", n, sig.len);
		smime_verify_result_free(&res);
		smime_content_type(sig.data, n);
	}
	for (size_t n = 0; n < env.len; n++) {
		st = smime_decrypt(env.data, n, key("alice"), 1, &out, err,
		    sizeof(err));
		ck_assert_msg(st != SM_OK, "envelope cut at %zu of %zu bytes "
		    "decrypted", n, env.len);
		ck_assert_msg(out.len == 0, "cut envelope left %zu bytes of "
		    "output", out.len);
		smime_content_type(env.data, n);
	}
	sk_X509_free(r);
	buf_free(&sig);
	buf_free(&env);
	buf_free(&out);
}
END_TEST

START_TEST(flipped_bytes_never_verify_as_valid_content_of_another_message)
{
	/* Flip every byte of an opaque signature: whatever the verdict, an
	 * OK verdict must come with exactly the signed content. */
	static const unsigned char msg[] = "flip me\r\n";
	struct buf der = BUF_INIT, out = BUF_INIT;
	struct smime_verify_result res;
	char err[256];

	ck_assert_int_eq(smime_sign(key("carol"), NULL, false, msg,
	    sizeof(msg) - 1, &der, err, sizeof(err)), SM_OK);
	for (size_t i = 0; i < der.len; i++) {
		der.data[i] ^= 0x20;
		buf_reset(&out);
		smime_verify(der.data, der.len, NULL, 0, trust_store(anchors),
		    false, &res, &out);
		if (res.status == SMIME_VERIFY_OK)
			ck_assert_msg(out.len == sizeof(msg) - 1 &&
			    memcmp(out.data, msg, out.len) == 0,
			    "byte %zu flipped: ok with different content", i);
		smime_verify_result_free(&res);
		der.data[i] ^= 0x20;
	}
	buf_free(&der);
	buf_free(&out);
}
END_TEST

START_TEST(detached_and_opaque_mismatches_are_refused)
{
	static const unsigned char msg[] = "x\r\n";
	struct buf det = BUF_INIT, opq = BUF_INIT;
	struct smime_verify_result res;
	char err[256];

	ck_assert_int_eq(smime_sign(key("alice"), NULL, true, msg, 3, &det,
	    err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_sign(key("alice"), NULL, false, msg, 3, &opq,
	    err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_verify(det.data, det.len, NULL, 0,
	    trust_store(anchors), false, &res, NULL), SM_ERR_ARG);
	ck_assert_int_eq(res.status, SMIME_VERIFY_MALFORMED);
	smime_verify_result_free(&res);
	ck_assert_int_eq(smime_verify(opq.data, opq.len, msg, 3,
	    trust_store(anchors), false, &res, NULL), SM_ERR_PARSE);
	ck_assert_int_eq(res.status, SMIME_VERIFY_MALFORMED);
	smime_verify_result_free(&res);
	buf_free(&det);
	buf_free(&opq);
}
END_TEST

/* ------------------------------------------------------ encrypt/decrypt */

static const struct {
	const char *who;
	enum smime_cipher c;
	bool oaep;
} enc_rows[] = {
	{ "alice", SMIME_CIPHER_AES128_CBC, false },
	{ "alice", SMIME_CIPHER_AES256_CBC, false },
	{ "alice", SMIME_CIPHER_AES128_GCM, false },
	{ "alice", SMIME_CIPHER_AES256_GCM, false },
	{ "alice", SMIME_CIPHER_AES128_CBC, true },
	{ "alice", SMIME_CIPHER_AES256_CBC, true },
	{ "alice", SMIME_CIPHER_AES128_GCM, true },
	{ "alice", SMIME_CIPHER_AES256_GCM, true },
	{ "dave", SMIME_CIPHER_AES128_CBC, false },
	{ "dave", SMIME_CIPHER_AES256_CBC, true },
	{ "dave", SMIME_CIPHER_AES128_GCM, true },
	{ "dave", SMIME_CIPHER_AES256_GCM, false },
	{ "carol", SMIME_CIPHER_AES128_CBC, false },
	{ "carol", SMIME_CIPHER_AES256_CBC, false },
	{ "carol", SMIME_CIPHER_AES128_GCM, false },
	{ "carol", SMIME_CIPHER_AES256_GCM, false },
};

/* OIDs as they appear in DER, to see which key transport was used. */
static const unsigned char oid_rsa[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
	0xf7, 0x0d, 0x01, 0x01, 0x01 };
static const unsigned char oid_oaep[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
	0xf7, 0x0d, 0x01, 0x01, 0x07 };
static const unsigned char oid_ecdh_sha1kdf[] = { 0x06, 0x09, 0x2b, 0x81,
	0x05, 0x10, 0x86, 0x48, 0x3f, 0x00, 0x02 };

START_TEST(encrypt_then_decrypt_round_trips_for_every_key_cipher_and_padding)
{
	const char *who = enc_rows[_i].who;
	enum smime_cipher c = enc_rows[_i].c;
	bool gcm = c == SMIME_CIPHER_AES128_GCM || c == SMIME_CIPHER_AES256_GCM;
	unsigned char *msg = text(1000);
	STACK_OF(X509) *r = rcpts(who, NULL, NULL);
	struct buf env = BUF_INIT, out = BUF_INIT;
	char err[256];
	sm_status st;

	st = smime_encrypt(r, c, enc_rows[_i].oaep, msg, 1000, &env, err,
	    sizeof(err));
	ck_assert_msg(st == SM_OK, "%s/%s: encrypt got %s (%s)", who,
	    smime_cipher_name(c), sm_strstatus(st), err);
	ck_assert_msg(smime_content_type(env.data, env.len) ==
	    (gcm ? SMIME_CT_AUTH_ENVELOPED : SMIME_CT_ENVELOPED),
	    "%s: got %s, want %s", smime_cipher_name(c),
	    smime_content_type_name(smime_content_type(env.data, env.len)),
	    smime_cipher_smime_type(c));
	if (strcmp(who, "carol") == 0) {
		ck_assert_msg(contains(&env, oid_ecdh_sha1kdf,
		    sizeof(oid_ecdh_sha1kdf)), "EC: want ECDH key agreement");
		ck_assert_msg(!contains(&env, oid_oaep, sizeof(oid_oaep)),
		    "EC: no OAEP");
	} else if (enc_rows[_i].oaep) {
		ck_assert_msg(contains(&env, oid_oaep, sizeof(oid_oaep)),
		    "oaep: want id-RSAES-OAEP in the envelope");
	} else {
		ck_assert_msg(contains(&env, oid_rsa, sizeof(oid_rsa)) &&
		    !contains(&env, oid_oaep, sizeof(oid_oaep)),
		    "pkcs1: want rsaEncryption and no OAEP");
	}
	st = smime_decrypt(env.data, env.len, key(who), 1, &out, err,
	    sizeof(err));
	ck_assert_msg(st == SM_OK, "%s/%s%s: decrypt got %s (%s)", who,
	    smime_cipher_name(c), enc_rows[_i].oaep ? "/oaep" : "",
	    sm_strstatus(st), err);
	ck_assert_msg(out.len == 1000 && memcmp(out.data, msg, 1000) == 0,
	    "plaintext differs (%zu bytes, want 1000)", out.len);
	sk_X509_free(r);
	buf_free(&env);
	buf_free(&out);
	free(msg);
}
END_TEST

START_TEST(every_recipient_of_a_shared_envelope_decrypts_it)
{
	static const unsigned char msg[] = "for all of you\r\n";
	STACK_OF(X509) *r = rcpts("alice", "dave", "carol");
	const char *who[] = { "alice", "dave", "carol" };
	struct buf env = BUF_INIT, out = BUF_INIT;
	char err[256];

	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES256_CBC, false, msg,
	    sizeof(msg) - 1, &env, err, sizeof(err)), SM_OK);
	for (int i = 0; i < 3; i++) {
		buf_reset(&out);
		ck_assert_msg(smime_decrypt(env.data, env.len, key(who[i]), 1,
		    &out, err, sizeof(err)) == SM_OK, "%s: %s", who[i], err);
		ck_assert_msg(out.len == sizeof(msg) - 1 &&
		    memcmp(out.data, msg, out.len) == 0, "%s: plaintext "
		    "differs", who[i]);
	}
	sk_X509_free(r);
	buf_free(&env);
	buf_free(&out);
}
END_TEST

START_TEST(old_keys_still_decrypt_and_strangers_get_nokey)
{
	static const unsigned char msg[] = "sent to the old key\r\n";
	struct smime_key keys[3];
	STACK_OF(X509) *r;
	struct buf env = BUF_INIT, out = BUF_INIT;
	char err[256];
	sm_status st;

	keys[0] = *key("alice-renewed");
	keys[1] = *key("alice-expired");
	keys[2] = *key("alice");
	/* to the expired key: the second of three decrypts */
	r = rcpts("alice-expired", NULL, NULL);
	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES256_CBC, false, msg,
	    sizeof(msg) - 1, &env, err, sizeof(err)), SM_OK);
	st = smime_decrypt(env.data, env.len, keys, 3, &out, err, sizeof(err));
	ck_assert_msg(st == SM_OK, "expired key: got %s (%s), want ok",
	    sm_strstatus(st), err);
	ck_assert_msg(out.len == sizeof(msg) - 1 &&
	    memcmp(out.data, msg, out.len) == 0, "plaintext differs");
	sk_X509_free(r);

	/* to bob and the current key: the third decrypts */
	buf_reset(&env);
	buf_reset(&out);
	r = rcpts("bob", "alice", NULL);
	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES128_GCM, false, msg,
	    sizeof(msg) - 1, &env, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_decrypt(env.data, env.len, keys, 3, &out, err,
	    sizeof(err)), SM_OK);
	sk_X509_free(r);

	/* to bob alone: none of ours */
	buf_reset(&env);
	buf_reset(&out);
	r = rcpts("bob", NULL, NULL);
	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES128_GCM, false, msg,
	    sizeof(msg) - 1, &env, err, sizeof(err)), SM_OK);
	st = smime_decrypt(env.data, env.len, keys, 3, &out, err, sizeof(err));
	ck_assert_msg(st == SM_ERR_NOKEY && out.len == 0, "stranger: got %s, "
	    "%zu bytes, want no usable key and nothing", sm_strstatus(st),
	    out.len);
	st = smime_decrypt(env.data, env.len, NULL, 0, &out, err, sizeof(err));
	ck_assert_msg(st == SM_ERR_NOKEY, "no keys: got %s, want no usable "
	    "key", sm_strstatus(st));
	sk_X509_free(r);
	buf_free(&env);
	buf_free(&out);
}
END_TEST

START_TEST(corrupt_envelopes_fail_without_partial_plaintext)
{
	unsigned char *msg = text(4000);
	static const enum smime_cipher ciphers[] = { SMIME_CIPHER_AES256_CBC,
		SMIME_CIPHER_AES256_GCM };
	STACK_OF(X509) *r = rcpts("alice", NULL, NULL);
	struct buf env = BUF_INIT, out = BUF_INIT;
	char err[256];
	sm_status st;

	for (int i = 0; i < 2; i++) {
		buf_reset(&env);
		ck_assert_int_eq(smime_encrypt(r, ciphers[i], false, msg, 4000,
		    &env, err, sizeof(err)), SM_OK);
		/* CBC: last byte of the next-to-last block breaks the padding
		 * for sure; GCM: the tag is the last thing in the DER. */
		env.data[env.len - (i == 0 ? 17 : 1)] ^= 0x01;
		buf_reset(&out);
		buf_append_str(&out, "KEEP");
		st = smime_decrypt(env.data, env.len, key("alice"), 1, &out, err,
		    sizeof(err));
		ck_assert_msg(st == SM_ERR_CRYPTO, "%s: got %s (%s), want "
		    "cryptographic failure", smime_cipher_name(ciphers[i]),
		    sm_strstatus(st), err);
		ck_assert_msg(out.len == 4 && memcmp(out.data, "KEEP", 4) == 0,
		    "%s: output got %zu bytes, want the 4 it had before",
		    smime_cipher_name(ciphers[i]), out.len);
	}
	/* A wrong key: a_wrong_key_and_a_corrupt_envelope_fail_alike. */
	sk_X509_free(r);
	buf_free(&env);
	buf_free(&out);
	free(msg);
}
END_TEST

/* No padding oracle: OpenSSL's debug mode (CMS_DEBUG_DECRYPT) reports a
 * recipient key that fails to open the content-encryption key, which tells
 * an attacker which of his forged key blocks had valid padding. Without it
 * a failing key block carries on with a random key, so a wrong key and a
 * corrupt content take the same path to the same answer. */
START_TEST(a_wrong_key_and_a_corrupt_envelope_fail_alike)
{
	unsigned char *msg = text(4000);
	STACK_OF(X509) *r = rcpts("alice", NULL, NULL);
	struct buf env = BUF_INIT, out = BUF_INIT;
	struct smime_key wrong;
	char err_key[256], err_env[256];
	sm_status st_key, st_env;

	/* GCM, so that a random content key fails for sure (CBC padding
	 * would come out valid once in 256). */
	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES256_GCM, false, msg,
	    4000, &env, err_key, sizeof(err_key)), SM_OK);
	wrong = *key("alice");
	wrong.pkey = key("bob")->pkey;
	st_key = smime_decrypt(env.data, env.len, &wrong, 1, &out, err_key,
	    sizeof(err_key));
	ck_assert_msg(out.len == 0, "wrong key: %zu bytes of output", out.len);
	env.data[env.len - 1] ^= 0x01;
	st_env = smime_decrypt(env.data, env.len, key("alice"), 1, &out,
	    err_env, sizeof(err_env));
	ck_assert_msg(out.len == 0, "corrupt: %zu bytes of output", out.len);
	ck_assert_msg(st_key == SM_ERR_CRYPTO && st_env == SM_ERR_CRYPTO,
	    "got %s (wrong key) and %s (corrupt), want cryptographic failure "
	    "for both", sm_strstatus(st_key), sm_strstatus(st_env));
	ck_assert_msg(strcmp(err_key, err_env) == 0, "wrong key said \"%s\", "
	    "corrupt envelope said \"%s\": want the same words", err_key,
	    err_env);
	sk_X509_free(r);
	buf_free(&env);
	buf_free(&out);
	free(msg);
}
END_TEST

START_TEST(flipped_envelope_bytes_never_yield_wrong_plaintext)
{
	/* GCM authenticates everything that matters: any flip either fails
	 * or (in fields nobody reads) still gives the exact plaintext. */
	static const unsigned char msg[] = "authenticated\r\n";
	STACK_OF(X509) *r = rcpts("carol", NULL, NULL);
	struct buf env = BUF_INIT, out = BUF_INIT;
	char err[256];
	sm_status st;

	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES128_GCM, false, msg,
	    sizeof(msg) - 1, &env, err, sizeof(err)), SM_OK);
	for (size_t i = 0; i < env.len; i++) {
		env.data[i] ^= 0x04;
		buf_reset(&out);
		st = smime_decrypt(env.data, env.len, key("carol"), 1, &out,
		    err, sizeof(err));
		if (st == SM_OK)
			ck_assert_msg(out.len == sizeof(msg) - 1 &&
			    memcmp(out.data, msg, out.len) == 0,
			    "byte %zu flipped: wrong plaintext accepted", i);
		else
			ck_assert_msg(out.len == 0, "byte %zu flipped: %s with "
			    "%zu bytes of output", i, sm_strstatus(st), out.len);
		env.data[i] ^= 0x04;
	}
	sk_X509_free(r);
	buf_free(&env);
	buf_free(&out);
}
END_TEST

START_TEST(encrypt_needs_an_explicit_cipher_and_usable_recipients)
{
	STACK_OF(X509) *none = sk_X509_new_null();
	STACK_OF(X509) *r = rcpts("alice", NULL, NULL);
	struct buf env = BUF_INIT;
	char err[256];

	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AUTO, false,
	    (const unsigned char *)"x", 1, &env, err, sizeof(err)), SM_ERR_ARG);
	ck_assert_int_eq(smime_encrypt(none, SMIME_CIPHER_AES128_CBC, false,
	    (const unsigned char *)"x", 1, &env, err, sizeof(err)), SM_ERR_ARG);
	ck_assert_uint_eq(env.len, 0);
	sk_X509_free(none);
	sk_X509_free(r);
	buf_free(&env);
}
END_TEST

START_TEST(twenty_megabytes_round_trip)
{
	const size_t n = 20 * 1024 * 1024;
	unsigned char *msg = text(n);
	STACK_OF(X509) *r = rcpts("alice", "carol", NULL);
	struct buf sig = BUF_INIT, env = BUF_INIT, out = BUF_INIT;
	struct smime_verify_result res;
	char err[256];

	ck_assert_int_eq(smime_sign(key("alice"), NULL, true, msg, n, &sig,
	    err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_verify(sig.data, sig.len, msg, n,
	    trust_store(anchors), false, &res, NULL), SM_OK);
	ck_assert_msg(res.status == SMIME_VERIFY_OK, "detached: got %s (%s)",
	    smime_verify_status_name(res.status), res.reason);
	smime_verify_result_free(&res);

	buf_free(&sig);
	ck_assert_int_eq(smime_sign(key("alice"), EVP_sha512(), false, msg, n,
	    &sig, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_verify(sig.data, sig.len, NULL, 0,
	    trust_store(anchors), false, &res, &out), SM_OK);
	ck_assert_msg(res.status == SMIME_VERIFY_OK, "opaque: got %s (%s)",
	    smime_verify_status_name(res.status), res.reason);
	ck_assert_msg(out.len == n && memcmp(out.data, msg, n) == 0,
	    "opaque content differs");
	smime_verify_result_free(&res);

	for (int gcm = 0; gcm < 2; gcm++) {
		buf_free(&env);
		buf_free(&out);
		ck_assert_int_eq(smime_encrypt(r, gcm ? SMIME_CIPHER_AES256_GCM
		    : SMIME_CIPHER_AES256_CBC, false, msg, n, &env, err,
		    sizeof(err)), SM_OK);
		ck_assert_int_eq(smime_decrypt(env.data, env.len, key("carol"),
		    1, &out, err, sizeof(err)), SM_OK);
		ck_assert_msg(out.len == n && memcmp(out.data, msg, n) == 0,
		    "%s: plaintext differs", gcm ? "gcm" : "cbc");
	}
	sk_X509_free(r);
	buf_free(&sig);
	buf_free(&env);
	buf_free(&out);
	free(msg);
}
END_TEST

START_TEST(sign_then_encrypt_composes)
{
	/* The documented recipe: sign detached, wrap, encrypt; then reverse. */
	static const unsigned char entity[] = "Content-Type: text/plain\r\n\r\n"
	    "secret and signed\r\n";
	STACK_OF(X509) *r = rcpts("bob", "alice", NULL);
	struct buf sig = BUF_INIT, ms = BUF_INIT, env = BUF_INIT, out = BUF_INIT;
	struct smime_verify_result res;
	char err[256];
	unsigned char *p;

	ck_assert_int_eq(smime_sign(key("alice"), NULL, true, entity,
	    sizeof(entity) - 1, &sig, err, sizeof(err)), SM_OK);
	/* stand-in for the MIME layer: entity || signature */
	buf_append(&ms, entity, sizeof(entity) - 1);
	buf_append(&ms, sig.data, sig.len);
	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES256_CBC, false,
	    ms.data, ms.len, &env, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_decrypt(env.data, env.len, key("bob"), 1, &out,
	    err, sizeof(err)), SM_OK);
	ck_assert_uint_eq(out.len, ms.len);
	p = out.data + sizeof(entity) - 1;
	ck_assert_int_eq(smime_verify(p, out.len - (sizeof(entity) - 1),
	    out.data, sizeof(entity) - 1, trust_store(anchors), false, &res,
	    NULL), SM_OK);
	ck_assert_msg(res.status == SMIME_VERIFY_OK, "got %s (%s)",
	    smime_verify_status_name(res.status), res.reason);
	smime_verify_result_free(&res);
	sk_X509_free(r);
	buf_free(&sig);
	buf_free(&ms);
	buf_free(&env);
	buf_free(&out);
}
END_TEST

/* ---------------------------------------------------------- content type */

START_TEST(content_type_tells_signed_enveloped_and_certs_only_apart)
{
	STACK_OF(X509) *r = rcpts("alice", NULL, NULL);
	STACK_OF(X509) *certs = NULL;
	struct buf b = BUF_INIT;
	CMS_ContentInfo *cms;
	BIO *in;
	unsigned char *der = NULL;
	int len;
	char err[256];

	/* certs-only, as smimectl cert import may get it */
	STACK_OF(X509) *two = rcpts("alice", "bob", NULL);
	cms = CMS_sign(NULL, NULL, two, NULL, CMS_PARTIAL);
	sk_X509_free(two);
	ck_assert_ptr_nonnull(cms);
	len = i2d_CMS_ContentInfo(cms, &der);
	ck_assert_int_eq(smime_content_type(der, (size_t)len),
	    SMIME_CT_CERTS_ONLY);
	ck_assert_int_eq(smime_get_certs(der, (size_t)len, &certs), SM_OK);
	ck_assert_int_eq(sk_X509_num(certs), 2);
	sk_X509_pop_free(certs, X509_free);
	CMS_ContentInfo_free(cms);
	OPENSSL_free(der);
	der = NULL;

	/* plain id-data */
	in = BIO_new_mem_buf("x", 1);
	cms = CMS_data_create(in, CMS_BINARY);
	len = i2d_CMS_ContentInfo(cms, &der);
	ck_assert_int_eq(smime_content_type(der, (size_t)len), SMIME_CT_OTHER);
	ck_assert_int_eq(smime_get_certs(der, (size_t)len, &certs),
	    SM_ERR_PARSE);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	OPENSSL_free(der);

	ck_assert_int_eq(smime_sign(key("alice"), NULL, true,
	    (const unsigned char *)"x", 1, &b, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_content_type(b.data, b.len), SMIME_CT_SIGNED);
	buf_reset(&b);
	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES128_CBC, false,
	    (const unsigned char *)"x", 1, &b, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_content_type(b.data, b.len),
	    SMIME_CT_ENVELOPED);
	buf_reset(&b);
	ck_assert_int_eq(smime_encrypt(r, SMIME_CIPHER_AES128_GCM, false,
	    (const unsigned char *)"x", 1, &b, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_content_type(b.data, b.len),
	    SMIME_CT_AUTH_ENVELOPED);
	ck_assert_str_eq(smime_content_type_name(SMIME_CT_AUTH_ENVELOPED),
	    "authEnveloped-data");
	sk_X509_free(r);
	buf_free(&b);
}
END_TEST

/* ---------------------------------------------------------- cipher choice */

#define U 0u
#define GPGSM (CAP_KNOWN | CAP_AES128_CBC | CAP_DES3)
#define OURS (CAP_KNOWN | CAP_AES256_GCM | CAP_AES128_GCM | CAP_AES256_CBC | \
    CAP_AES128_CBC | CAP_RSA_OAEP)
#define GCM128 (CAP_KNOWN | CAP_AES128_GCM | CAP_AES128_CBC)
#define TBIRD (CAP_KNOWN | CAP_AES256_CBC | CAP_AES128_CBC | CAP_DES3)
#define DES3ONLY (CAP_KNOWN | CAP_DES3 | CAP_RC2)
#define RSA EVP_PKEY_RSA
#define EC EVP_PKEY_EC

static const struct {
	const char *name;
	size_t n;
	caps_t caps[3];
	int types[3];
	enum smime_cipher configured;
	bool oaep_configured;
	sm_status st;
	enum smime_cipher want;
	bool oaep, mixed;
} choice_rows[] = {
	{ "unknown caps mean aes-256-cbc", 1, { U }, { RSA },
	  SMIME_CIPHER_AUTO, false, SM_OK, SMIME_CIPHER_AES256_CBC, false, false },
	{ "a gpgsm user means aes-128-cbc", 1, { GPGSM }, { RSA },
	  SMIME_CIPHER_AUTO, false, SM_OK, SMIME_CIPHER_AES128_CBC, false, false },
	{ "gpgsm among others still means aes-128-cbc", 3, { OURS, GPGSM, U },
	  { RSA, RSA, RSA }, SMIME_CIPHER_AUTO, false, SM_OK,
	  SMIME_CIPHER_AES128_CBC, false, false },
	{ "all advertise gcm and oaep", 2, { OURS, OURS }, { RSA, RSA },
	  SMIME_CIPHER_AUTO, false, SM_OK, SMIME_CIPHER_AES256_GCM, true, false },
	{ "one without gcm means cbc", 2, { OURS, TBIRD }, { RSA, RSA },
	  SMIME_CIPHER_AUTO, false, SM_OK, SMIME_CIPHER_AES256_CBC, false, false },
	{ "one unknown means cbc", 2, { OURS, U }, { RSA, RSA },
	  SMIME_CIPHER_AUTO, false, SM_OK, SMIME_CIPHER_AES256_CBC, false, false },
	{ "aes-128-gcm when that is the strongest common", 2, { GCM128, OURS },
	  { RSA, RSA }, SMIME_CIPHER_AUTO, false, SM_OK,
	  SMIME_CIPHER_AES128_GCM, false, false },
	{ "3des-only never gets 3des", 1, { DES3ONLY }, { RSA },
	  SMIME_CIPHER_AUTO, false, SM_OK, SMIME_CIPHER_AES128_CBC, false, false },
	{ "configured gcm overrides unknown caps", 1, { U }, { RSA },
	  SMIME_CIPHER_AES128_GCM, false, SM_OK, SMIME_CIPHER_AES128_GCM,
	  false, false },
	{ "configured aes-256-cbc overrides gpgsm", 1, { GPGSM }, { RSA },
	  SMIME_CIPHER_AES256_CBC, false, SM_OK, SMIME_CIPHER_AES256_CBC,
	  false, false },
	{ "configured oaep overrides caps", 1, { GPGSM }, { RSA },
	  SMIME_CIPHER_AUTO, true, SM_OK, SMIME_CIPHER_AES128_CBC, true, false },
	{ "oaep only when all rsa recipients advertise it", 2, { OURS, GCM128 },
	  { RSA, RSA }, SMIME_CIPHER_AUTO, false, SM_OK,
	  SMIME_CIPHER_AES128_GCM, false, false },
	{ "ec and rsa together are flagged mixed", 2, { OURS, OURS }, { RSA, EC },
	  SMIME_CIPHER_AUTO, false, SM_OK, SMIME_CIPHER_AES256_GCM, true, true },
	{ "ec alone needs no oaep", 1, { OURS }, { EC },
	  SMIME_CIPHER_AUTO, false, SM_OK, SMIME_CIPHER_AES256_GCM, false, false },
	{ "mixed with gpgsm", 2, { TBIRD, GPGSM }, { EC, RSA },
	  SMIME_CIPHER_AUTO, false, SM_OK, SMIME_CIPHER_AES128_CBC, false, true },
	{ "no recipients is an error", 0, { U }, { RSA },
	  SMIME_CIPHER_AUTO, false, SM_ERR_ARG, SMIME_CIPHER_AUTO, false, false },
	{ "a DSA recipient is unsupported", 1, { U }, { EVP_PKEY_DSA },
	  SMIME_CIPHER_AUTO, false, SM_ERR_UNSUPPORTED, SMIME_CIPHER_AUTO,
	  false, false },
};

START_TEST(cipher_choice_follows_the_table)
{
	struct smime_choice ch;
	sm_status st;

	st = smime_choose(choice_rows[_i].caps, choice_rows[_i].types,
	    choice_rows[_i].n, choice_rows[_i].configured,
	    choice_rows[_i].oaep_configured, &ch);
	ck_assert_msg(st == choice_rows[_i].st, "%s: status got %s, want %s",
	    choice_rows[_i].name, sm_strstatus(st),
	    sm_strstatus(choice_rows[_i].st));
	if (st != SM_OK)
		return;
	ck_assert_msg(ch.cipher == choice_rows[_i].want, "%s: cipher got %s, "
	    "want %s (%s)", choice_rows[_i].name, smime_cipher_name(ch.cipher),
	    smime_cipher_name(choice_rows[_i].want), ch.reason);
	ck_assert_msg(ch.oaep == choice_rows[_i].oaep, "%s: oaep got %d, "
	    "want %d", choice_rows[_i].name, ch.oaep, choice_rows[_i].oaep);
	ck_assert_msg(ch.mixed_key_types == choice_rows[_i].mixed, "%s: mixed "
	    "got %d, want %d", choice_rows[_i].name, ch.mixed_key_types,
	    choice_rows[_i].mixed);
	ck_assert_msg(ch.reason[0] != '\0', "%s: want a reason",
	    choice_rows[_i].name);
}
END_TEST

START_TEST(cipher_names_parse_back)
{
	static const enum smime_cipher all[] = { SMIME_CIPHER_AUTO,
		SMIME_CIPHER_AES128_CBC, SMIME_CIPHER_AES256_CBC,
		SMIME_CIPHER_AES128_GCM, SMIME_CIPHER_AES256_GCM };
	enum smime_cipher c;

	for (size_t i = 0; i < 5; i++) {
		ck_assert_int_eq(smime_cipher_parse(smime_cipher_name(all[i]),
		    &c), SM_OK);
		ck_assert_int_eq(c, all[i]);
	}
	ck_assert_str_eq(smime_cipher_name(SMIME_CIPHER_AES256_CBC),
	    "aes-256-cbc");
	ck_assert_int_eq(smime_cipher_parse("AES-128-GCM", &c), SM_OK);
	ck_assert_int_eq(c, SMIME_CIPHER_AES128_GCM);
	ck_assert_int_eq(smime_cipher_parse("des-ede3-cbc", &c), SM_ERR_ARG);
	ck_assert_int_eq(smime_cipher_parse("rc2", &c), SM_ERR_ARG);
	ck_assert_str_eq(smime_cipher_smime_type(SMIME_CIPHER_AES256_GCM),
	    "authEnveloped-data");
	ck_assert_str_eq(smime_cipher_smime_type(SMIME_CIPHER_AES128_CBC),
	    "enveloped-data");
}
END_TEST

/* ------------------------------------------------------------- key files */

static void
write_file(const char *path, mode_t mode, const char *a, const char *b)
{
	FILE *f = fopen(path, "w");
	size_t n;
	unsigned char *p;

	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 2; i++) {
		const char *src = i == 0 ? a : b;

		if (src == NULL)
			continue;
		if (src[0] == '@') {
			p = testutil_slurp(src + 1, &n);
			ck_assert_msg(p != NULL, "cannot read %s", src + 1);
			fwrite(p, 1, n, f);
			free(p);
		} else {
			fputs(src, f);
		}
	}
	fclose(f);
	chmod(path, mode);
}

START_TEST(key_files_load_with_their_chain_and_unsafe_ones_are_refused)
{
	struct smime_key k;
	char err[512], f[4096], alice_pem[4200], alice_crt[4200], alice_key[4200],
	    bob_crt[4200];
	X509 *crt;
	BIO *b;
	FILE *fp;

	snprintf(alice_pem, sizeof(alice_pem), "@%s/alice.pem", pki);
	snprintf(alice_crt, sizeof(alice_crt), "@%s/alice.crt", pki);
	snprintf(alice_key, sizeof(alice_key), "@%s/alice.key", pki);
	snprintf(bob_crt, sizeof(bob_crt), "@%s/bob.crt", pki);
	crt = load_cert(path_in(pki, "alice.crt"));

	/* the mkpki.sh format: key, cert, chain */
	snprintf(f, sizeof(f), "%s/k1.pem", scratch);
	write_file(f, 0600, "comment before the first block\n", alice_pem);
	ck_assert_msg(smime_key_load_pem(f, &k, err, sizeof(err)) == SM_OK,
	    "good file: %s", err);
	ck_assert_msg(X509_cmp(k.cert, crt) == 0, "cert: want alice.crt");
	ck_assert_int_eq(sk_X509_num(k.chain), 1);
	smime_key_free(&k);
	smime_key_free(&k);  /* idempotent */

	/* certificate first, key after */
	write_file(f, 0600, alice_crt + 0, alice_key);
	ck_assert_msg(smime_key_load_pem(f, &k, err, sizeof(err)) == SM_OK,
	    "cert then key: %s", err);
	ck_assert_int_eq(sk_X509_num(k.chain), 0);
	smime_key_free(&k);

	/* readable by others: refused, and the message names the file */
	static const mode_t bad_modes[] = { 0644, 0640, 0604, 0620 };
	for (size_t i = 0; i < 4; i++) {
		write_file(f, bad_modes[i], alice_pem, NULL);
		ck_assert_msg(smime_key_load_pem(f, &k, err, sizeof(err)) ==
		    SM_ERR_PERM, "mode %04o: want refused", bad_modes[i]);
		ck_assert_msg(strstr(err, f) != NULL, "message '%s' must name "
		    "%s", err, f);
		ck_assert_ptr_null(k.cert);
	}

	write_file(f, 0600, alice_crt, NULL);
	ck_assert_int_eq(smime_key_load_pem(f, &k, err, sizeof(err)),
	    SM_ERR_NOKEY);
	write_file(f, 0600, alice_key, NULL);
	ck_assert_int_eq(smime_key_load_pem(f, &k, err, sizeof(err)),
	    SM_ERR_NOKEY);
	write_file(f, 0600, alice_key, bob_crt);
	ck_assert_msg(smime_key_load_pem(f, &k, err, sizeof(err)) ==
	    SM_ERR_NOKEY, "key with a stranger's certificate: want no key");
	write_file(f, 0600, "not a key file\n", NULL);
	ck_assert_int_eq(smime_key_load_pem(f, &k, err, sizeof(err)),
	    SM_ERR_NOKEY);
	ck_assert_int_eq(smime_key_load_pem(path_in(scratch, "nonexistent"),
	    &k, err, sizeof(err)), SM_ERR_IO);

	/* encrypted keys, PKCS#8 and traditional */
	for (int trad = 0; trad < 2; trad++) {
		fp = fopen(f, "w");
		ck_assert_ptr_nonnull(fp);
		b = BIO_new_fp(fp, BIO_NOCLOSE);
		if (trad)
			PEM_write_bio_PrivateKey_traditional(b,
			    key("alice")->pkey, EVP_aes_128_cbc(),
			    (unsigned char *)"pw", 2, NULL, NULL);
		else
			PEM_write_bio_PrivateKey(b, key("alice")->pkey,
			    EVP_aes_128_cbc(), (unsigned char *)"pw", 2, NULL,
			    NULL);
		PEM_write_bio_X509(b, key("alice")->cert);
		BIO_free(b);
		fclose(fp);
		chmod(f, 0600);
		ck_assert_msg(smime_key_load_pem(f, &k, err, sizeof(err)) ==
		    SM_ERR_PARSE && strstr(err, "encrypted") != NULL,
		    "encrypted key (%s): got '%s'", trad ? "traditional" :
		    "pkcs8", err);
	}

	/* unencrypted traditional RSA and EC keys */
	for (int ec = 0; ec < 2; ec++) {
		const struct smime_key *src = key(ec ? "carol" : "alice");

		fp = fopen(f, "w");
		ck_assert_ptr_nonnull(fp);
		b = BIO_new_fp(fp, BIO_NOCLOSE);
		PEM_write_bio_X509(b, src->cert);
		PEM_write_bio_PrivateKey_traditional(b, src->pkey, NULL, NULL,
		    0, NULL, NULL);
		BIO_free(b);
		fclose(fp);
		chmod(f, 0600);
		ck_assert_msg(smime_key_load_pem(f, &k, err, sizeof(err)) ==
		    SM_OK, "traditional %s key: %s", ec ? "EC" : "RSA", err);
		ck_assert_int_eq(X509_cmp(k.cert, src->cert), 0);
		smime_key_free(&k);
	}
	X509_free(crt);
	ERR_clear_error();
}
END_TEST

/* ---------------------------------------------------------------- trust */

START_TEST(trust_anchors_load_once_and_outlive_their_files)
{
	struct trust *t = NULL, *t2;
	struct buf sig = BUF_INIT;
	struct smime_verify_result res;
	char err[512], copy[4096], dir[4096];
	X509 *root = load_cert(path_in(pki, "root.crt"));
	FILE *f;

	snprintf(copy, sizeof(copy), "%s/anchors.pem", scratch);
	ck_assert_int_eq(run("cp %s/ca.pem %s", pki, copy), 0);
	ck_assert_msg(trust_load(copy, NULL, &t, err, sizeof(err)) == SM_OK,
	    "ca.pem: %s", err);
	ck_assert_uint_eq(trust_count(t), 1);
	/* nothing is read from disk per message */
	unlink(copy);
	ck_assert_int_eq(smime_sign(key("alice"), NULL, true,
	    (const unsigned char *)"x", 1, &sig, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(smime_verify(sig.data, sig.len,
	    (const unsigned char *)"x", 1, trust_store(t), false, &res, NULL),
	    SM_OK);
	ck_assert_msg(res.status == SMIME_VERIFY_OK, "after unlink: got %s "
	    "(%s)", smime_verify_status_name(res.status), res.reason);
	smime_verify_result_free(&res);

	/* a reload holds the old one alive until its last user lets go */
	t2 = trust_ref(t);
	ck_assert_ptr_eq(t2, t);
	trust_free(t);
	ck_assert_int_eq(smime_verify(sig.data, sig.len,
	    (const unsigned char *)"x", 1, trust_store(t2), false, &res, NULL),
	    SM_OK);
	ck_assert_int_eq(res.status, SMIME_VERIFY_OK);
	smime_verify_result_free(&res);
	trust_free(t2);
	trust_free(NULL);

	/* a directory: PEM, DER, and files that are no certificates */
	snprintf(dir, sizeof(dir), "%s/cadir", scratch);
	mkdir(dir, 0700);
	ck_assert_int_eq(run("cp %s/root.crt %s/root.pem && "
	    "openssl x509 -in %s/untrusted-root.crt -outform DER "
	    "-out %s/other.der && echo hello >%s/README", pki, dir, pki, dir,
	    dir), 0);
	ck_assert_msg(trust_load(NULL, dir, &t, err, sizeof(err)) == SM_OK,
	    "dir: %s", err);
	ck_assert_uint_eq(trust_count(t), 2);
	trust_free(t);

	/* both, overlapping: duplicates count once */
	ck_assert_int_eq(trust_load(path_in(pki, "ca.pem"), dir, &t, err,
	    sizeof(err)), SM_OK);
	ck_assert_uint_eq(trust_count(t), 2);
	trust_free(t);

	/* none: trusts nothing */
	ck_assert_int_eq(trust_load(NULL, NULL, &t, err, sizeof(err)), SM_OK);
	ck_assert_uint_eq(trust_count(t), 0);
	trust_free(t);

	ck_assert_int_eq(trust_load(path_in(scratch, "missing.pem"), NULL, &t,
	    err, sizeof(err)), SM_ERR_IO);
	ck_assert_ptr_null(t);
	ck_assert_msg(strstr(err, "missing.pem") != NULL, "message '%s' must "
	    "name the file", err);
	snprintf(copy, sizeof(copy), "%s/empty.pem", scratch);
	f = fopen(copy, "w");
	fputs("no certificates here\n", f);
	fclose(f);
	ck_assert_int_eq(trust_load(copy, NULL, &t, err, sizeof(err)),
	    SM_ERR_PARSE);
	ck_assert_int_eq(trust_load(NULL, path_in(scratch, "nodir"), &t, err,
	    sizeof(err)), SM_ERR_IO);
	X509_free(root);
	buf_free(&sig);
}
END_TEST

/* --------------------------------------------------------------- corpus */

/*
 * Just enough MIME to get the CMS and the signed part out of the corpus
 * messages: CRLF normalisation, an mbox "From " line, unfolded top-level
 * headers, one level of multipart, base64 bodies.
 */
struct msgparts {
	unsigned char *crlf;   /* whole message, CRLF line ends (owned) */
	size_t crlf_len;
	const unsigned char *content;  /* signed part (detached) */
	size_t content_len;
	struct buf der;        /* the CMS blob, decoded */
};

static unsigned char *
to_crlf(const unsigned char *in, size_t n, size_t *outn)
{
	unsigned char *out = malloc(2 * n + 1);
	size_t j = 0;

	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[j++] = '\r';
		out[j++] = in[i];
	}
	out[j] = 0;
	*outn = j;
	return out;
}

/* End of the header block starting at p (points past the blank line). */
static const unsigned char *
body_of(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *b;

	if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
		return p + 2;
	b = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
	return b != NULL ? b + 4 : end;
}

/* The value of a header (unfolded, lower-cased) in [p, body). */
static char *
header(const unsigned char *p, const unsigned char *body, const char *name)
{
	size_t nl = strlen(name);
	struct buf v = BUF_INIT;

	for (const unsigned char *l = p; l < body;) {
		const unsigned char *e = memmem(l, (size_t)(body - l), "\r\n", 2);

		if (e == NULL)
			e = body;
		if ((size_t)(e - l) > nl && strncasecmp((const char *)l, name,
		    nl) == 0 && l[nl] == ':') {
			const unsigned char *s = l + nl + 1;

			for (;;) {
				for (; s < e; s++)
					buf_append_char(&v, (char)tolower(*s));
				/* folded continuation lines */
				if (e + 2 < body && (e[2] == ' ' || e[2] == '\t')) {
					s = e + 2;
					e = memmem(s, (size_t)(body - s), "\r\n", 2);
					if (e == NULL)
						e = body;
					continue;
				}
				break;
			}
			return buf_steal(&v);
		}
		l = e + 2;
	}
	return NULL;
}

/* A parameter of a (lower-cased) header value; the boundary keeps its
 * case, so it is looked up in the original text. */
static char *
param(const unsigned char *p, const unsigned char *body, const char *hname,
    const char *pname)
{
	char *v = header(p, body, hname), *s, *r = NULL;
	size_t pl = strlen(pname);

	if (v == NULL)
		return NULL;
	free(v);
	/* redo without lower-casing: find "pname=" case-insensitively */
	for (const unsigned char *q = p; q + pl + 1 < body; q++) {
		if (strncasecmp((const char *)q, pname, pl) == 0 &&
		    q[pl] == '=') {
			const unsigned char *a = q + pl + 1, *e;

			while (a < body && (*a == '\r' || *a == '\n' ||
			    *a == ' ' || *a == '\t'))
				a++;
			if (*a == '"') {
				a++;
				e = memchr(a, '"', (size_t)(body - a));
			} else {
				e = a;
				while (e < body && !strchr(";\r\n \t", *e))
					e++;
			}
			if (e == NULL)
				return NULL;
			s = strndup((const char *)a, (size_t)(e - a));
			return s;
		}
	}
	return r;
}

struct part {
	const unsigned char *p;
	size_t n;
};

/* Split a multipart body at its delimiters; returns the part count. */
static int
split_parts(const unsigned char *body, const unsigned char *end,
    const char *boundary, struct part *parts, int max)
{
	char delim[300];
	size_t dl;
	const unsigned char *s = body, *start = NULL;
	int n = 0;

	dl = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
	while (s < end) {
		const unsigned char *eol = memmem(s, (size_t)(end - s), "\r\n", 2);
		const unsigned char *next = eol ? eol + 2 : end;

		if ((size_t)(end - s) >= dl && memcmp(s, delim, dl) == 0) {
			if (start != NULL && n < max) {
				/* the CRLF before a delimiter belongs to it */
				parts[n].p = start;
				parts[n].n = (size_t)(s - 2 - start);
				n++;
			}
			if ((size_t)(end - s) >= dl + 2 && s[dl] == '-' &&
			    s[dl + 1] == '-')
				break;
			start = next;
		}
		s = next;
	}
	return n;
}

static void
base64_into(const unsigned char *p, size_t n, struct buf *out)
{
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	unsigned char *tmp = malloc(n + 4);
	int len = 0, fin = 0;

	ck_assert_ptr_nonnull(tmp);
	EVP_DecodeInit(ctx);
	ck_assert_msg(EVP_DecodeUpdate(ctx, tmp, &len, p, (int)n) >= 0,
	    "bad base64");
	ck_assert_msg(EVP_DecodeFinal(ctx, tmp + len, &fin) >= 0,
	    "bad base64 end");
	buf_append(out, tmp, (size_t)(len + fin));
	EVP_ENCODE_CTX_free(ctx);
	free(tmp);
}

/* Cut a corpus message (or an entity from a decrypted envelope). */
static void
cut_message(const unsigned char *raw, size_t rawn, struct msgparts *m)
{
	const unsigned char *p, *end, *body;
	char *ct, *boundary;
	struct part parts[8];
	int np;

	memset(m, 0, sizeof(*m));
	m->crlf = to_crlf(raw, rawn, &m->crlf_len);
	p = m->crlf;
	end = p + m->crlf_len;
	if (m->crlf_len > 5 && memcmp(p, "From ", 5) == 0)
		p = (const unsigned char *)memmem(p, m->crlf_len, "\r\n", 2) + 2;
	body = body_of(p, end);
	ct = header(p, body, "Content-Type");
	ck_assert_msg(ct != NULL, "no Content-Type");
	if (strstr(ct, "pkcs7-mime") != NULL) {
		base64_into(body, (size_t)(end - body), &m->der);
		free(ct);
		return;
	}
	boundary = param(p, body, "Content-Type", "boundary");
	ck_assert_msg(boundary != NULL, "no boundary in '%s'", ct);
	np = split_parts(body, end, boundary, parts, 8);
	ck_assert_msg(np >= 2, "multipart with %d parts", np);
	if (strstr(ct, "multipart/signed") != NULL) {
		const unsigned char *sb = body_of(parts[1].p, parts[1].p +
		    parts[1].n);

		m->content = parts[0].p;
		m->content_len = parts[0].n;
		base64_into(sb, (size_t)(parts[1].p + parts[1].n - sb), &m->der);
	} else {
		/* multipart/mixed with a detached signature over the part
		 * before it (1996 style): that part's body, without trailing
		 * line breaks, was signed. */
		for (int i = 1; i < np; i++) {
			const unsigned char *pe = parts[i].p + parts[i].n;
			const unsigned char *sb = body_of(parts[i].p, pe);
			char *pct = header(parts[i].p, sb, "Content-Type");

			if (pct != NULL && strstr(pct, "pkcs7-signature")) {
				const unsigned char *cb = body_of(parts[i - 1].p,
				    parts[i - 1].p + parts[i - 1].n);
				size_t cn = (size_t)(parts[i - 1].p +
				    parts[i - 1].n - cb);

				while (cn >= 2 && cb[cn - 2] == '\r' &&
				    cb[cn - 1] == '\n')
					cn -= 2;
				m->content = cb;
				m->content_len = cn;
				base64_into(sb, (size_t)(pe - sb), &m->der);
			}
			free(pct);
		}
		ck_assert_msg(m->der.len > 0, "no signature part");
	}
	free(boundary);
	free(ct);
}

static void
msgparts_free(struct msgparts *m)
{
	free(m->crlf);
	buf_free(&m->der);
}

enum corpus_kind { MSG, BIN, BIN_DETACHED };

static const struct {
	const char *path;
	enum corpus_kind kind;
	const char *content;      /* BIN_DETACHED: the signed bytes */
	enum smime_verify_status want;  /* signature verdict (trust aside) */
	const char *serial;       /* signer serial, as openssl prints it */
	int digest;
	bool openssl_mime;        /* openssl's MIME reader handles the file */
	bool openssl_rejects;     /* a known, explained difference */
} corpus_signed[] = {
	{ "mimekit/thunderbird-signed.txt", MSG, NULL, SMIME_VERIFY_OK,
	  "0800F7", NID_sha1, true, false },
	{ "thunderbird/alice.dsig.SHA1.multipart.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "1E", NID_sha1, true, false },
	{ "thunderbird/alice.dsig.SHA256.multipart.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "1E", NID_sha256, true, false },
	{ "thunderbird/alice.sig.SHA256.opaque.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "1E", NID_sha256, true, false },
	{ "simple-java-mail/pkcs12/test messages/S_MIME test message "
	  "signed.eml", MSG, NULL, SMIME_VERIFY_OK, "01", NID_sha512, true, false },
	{ "simple-java-mail/test-messages/SMIME (signed and clear text).eml",
	  MSG, NULL, SMIME_VERIFY_OK, "6FEE6E03A7EBE626", NID_sha1, true, false },
	{ "rfc4134/4.8.eml", MSG, NULL, SMIME_VERIFY_OK, "C8", NID_sha1, true, false },
	{ "rfc4134/4.9.eml", MSG, NULL, SMIME_VERIFY_OK, "C8", NID_sha1, true, false },
	{ "rfc4134/4.1.bin", BIN, NULL, SMIME_VERIFY_OK, "C8", NID_sha1, false, false },
	{ "rfc4134/4.2.bin", BIN, NULL, SMIME_VERIFY_OK,
	  "46346BC7800056BC11D36E2EC410B3B0", NID_sha1, false, false },
	{ "rfc4134/4.3.bin", BIN_DETACHED, "rfc4134/ExContent.bin",
	  SMIME_VERIFY_OK, "C8", NID_sha1, false, false },
	{ "rfc4134/4.4.bin", BIN, NULL, SMIME_VERIFY_OK, "C8", NID_sha1, false, false },
	{ "rfc4134/4.5.bin", BIN, NULL, SMIME_VERIFY_OK,
	  "46346BC7800056BC11D36E2EC410B3B0", NID_sha1, false, false },
	{ "rfc4134/4.7.bin", BIN, NULL, SMIME_VERIFY_OK, "C8", NID_sha1, false, false },
	{ "rfc4134/4.10.bin", BIN, NULL, SMIME_VERIFY_OK, "C8", NID_sha1, false, false },
	{ "mimekit/content-length-mbox/msg-L11643.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "DF30B36BD91FBD2481CFDA60F01BEC4B", NID_md5, true, false },
	{ "mimekit/content-length-mbox/msg-L11905.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "290FC617F46E9A8744F96B5788F26684", NID_sha1, true, false },
	{ "mimekit/content-length-mbox/msg-L12194.eml", MSG, NULL,
	  SMIME_VERIFY_OK, NULL, NID_undef, false, false },
	{ "mimekit/content-length-mbox/msg-L12540.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "449D31F92AB83DD737D6BA688CA4060F", NID_sha1, true, false },
	{ "mimekit/content-length-mbox/msg-L12812.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "06", NID_undef, true, false },
	{ "mimekit/content-length-mbox/msg-L12916.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "966FA6E8494D35E530107EE968298BD6", NID_undef, true, false },
	{ "mimekit/content-length-mbox/msg-L12976.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "EB6CC48871D5EED697A352B76BD94AE9", NID_undef, true, false },
	{ "mimekit/content-length-mbox/msg-L13105.eml", MSG, NULL,
	  SMIME_VERIFY_OK, NULL, NID_undef, false, false },
	{ "mimekit/content-length-mbox/msg-L13198.eml", MSG, NULL,
	  SMIME_VERIFY_OK, NULL, NID_undef, false, false },
	{ "mimekit/content-length-mbox/msg-L13296.eml", MSG, NULL,
	  SMIME_VERIFY_OK, "51497F6A98FA01C85B4B7E4AECAE6022", NID_undef, true, false },
	/* What must not verify, and how we say it. */
	{ "kde-messagelib/smime-signed-apple.mbox", MSG, NULL,
	  SMIME_VERIFY_CONTENT_ALTERED, NULL, NID_sha1, true, false },
	/* No signed attributes: the RSA signature is over the content digest
	 * itself, so an altered content looks like a bad signature. */
	{ "mimekit/content-length-mbox/msg-L13029.eml", MSG, NULL,
	  SMIME_VERIFY_BAD_SIGNATURE, NULL, NID_md5, true, false },
	{ "mimekit/content-length-mbox/msg-L12289.eml", MSG, NULL,
	  SMIME_VERIFY_UNSUPPORTED_ALGORITHM, NULL, NID_md2, true, false },
	{ "kde-mimetreeparser/smime-signed-charset.mbox", MSG, NULL,
	  SMIME_VERIFY_NO_SIGNER, NULL, NID_sha256, true, false },
	/* Two signers; OpenSSL cannot decode the second one's DSA key (its
	 * parameters are inherited from the CA) and rejects the message. We
	 * report the first signer, whose signature holds. */
	{ "rfc4134/4.6.bin", BIN, NULL, SMIME_VERIFY_OK, "C8", NID_sha1, false,
	  true },
};

static const char *
corpus(const char *rel)
{
	static char p[4096];

	snprintf(p, sizeof(p), "%s/tests/data/corpus/%s",
	    getenv("SMIME_TOP") ? getenv("SMIME_TOP") : ".", rel);
	return p;
}

/* Write bytes to a scratch file; returns its path (static). */
static const char *
scratch_file(const char *name, const unsigned char *p, size_t n)
{
	static char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", scratch, name);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	fclose(f);
	return path;
}

START_TEST(corpus_signatures_verify_like_openssl_with_the_same_signer)
{
	const char *rel = corpus_signed[_i].path;
	unsigned char *raw;
	size_t rawn = 0;
	struct msgparts m;
	struct smime_verify_result res;
	struct buf out = BUF_INIT;
	const unsigned char *content = NULL;
	size_t clen = 0;
	unsigned char *extc = NULL;
	char sigf[4096], contf[4096], signerf[4096], *ser;
	int rc;
	bool refused, good;
	struct cmsscan_counts cc;
	sm_status st;

	raw = testutil_slurp(corpus(rel), &rawn);
	ck_assert_msg(raw != NULL, "cannot read %s", corpus(rel));
	memset(&m, 0, sizeof(m));
	if (corpus_signed[_i].kind == MSG) {
		cut_message(raw, rawn, &m);
		content = m.content;
		clen = m.content_len;
	} else {
		buf_append(&m.der, raw, rawn);
		if (corpus_signed[_i].kind == BIN_DETACHED) {
			extc = testutil_slurp(corpus(corpus_signed[_i].content),
			    &clen);
			content = extc;
		}
	}
	st = smime_verify(m.der.data, m.der.len, content, clen, NULL, false,
	    &res, &out);
	ck_assert_msg(st == SM_OK, "%s: got %s (%s)", rel, sm_strstatus(st),
	    res.reason);
	/* The raw-BER count (what the limits are checked on) agrees with
	 * what OpenSSL decoded, whatever encoder made the signature. */
	ck_assert_msg(cmsscan_signed(m.der.data, m.der.len, NULL, &cc) == SM_OK &&
	    cc.nsigners == res.nsigners && cc.ncerts == (size_t)sk_X509_num(res.certs),
	    "%s: the BER scan counts %zu signers and %zu certificates, OpenSSL %zu and %d",
	    rel, cc.nsigners, cc.ncerts, res.nsigners, sk_X509_num(res.certs));
	/* Old corpus signers with RSA below 2048 bits or DSA keys: refused
	 * before any work, where openssl goes on (and agrees with the row). */
	refused = res.signer != NULL &&
	    !smime_key_fit(X509_get0_pubkey(res.signer), NULL, 0);
	good = refused ? corpus_signed[_i].want == SMIME_VERIFY_OK :
	    res.signature_ok;
	if (refused) {
		ck_assert_msg(!res.signature_ok &&
		    res.status == SMIME_VERIFY_UNSUPPORTED_ALGORITHM,
		    "%s: got %s (%s), want the signer key refused", rel,
		    smime_verify_status_name(res.status), res.reason);
	} else if (corpus_signed[_i].want == SMIME_VERIFY_OK) {
		ck_assert_msg(res.signature_ok, "%s: got %s (%s), want a good "
		    "signature", rel, smime_verify_status_name(res.status),
		    res.reason);
		/* no anchors given: untrusted, expired or self-signed */
		ck_assert_msg(res.status == res.chain_status, "%s: status %s "
		    "must be the chain's %s", rel,
		    smime_verify_status_name(res.status),
		    smime_verify_status_name(res.chain_status));
	} else {
		ck_assert_msg(!res.signature_ok &&
		    res.status == corpus_signed[_i].want, "%s: got %s (%s), "
		    "want %s", rel, smime_verify_status_name(res.status),
		    res.reason,
		    smime_verify_status_name(corpus_signed[_i].want));
	}
	if (corpus_signed[_i].digest != NID_undef)
		ck_assert_msg(res.digest_nid == corpus_signed[_i].digest,
		    "%s: digest got %s, want %s", rel,
		    OBJ_nid2sn(res.digest_nid),
		    OBJ_nid2sn(corpus_signed[_i].digest));
	if (corpus_signed[_i].serial != NULL) {
		ck_assert_ptr_nonnull(res.signer);
		ser = serial_hex(res.signer);
		ck_assert_msg(strcmp(ser, corpus_signed[_i].serial) == 0,
		    "%s: signer serial got %s, want %s", rel, ser,
		    corpus_signed[_i].serial);
		OPENSSL_free(ser);
	}

	/* Cross-check with the openssl CLI on the same bytes: it accepts
	 * exactly when we see a good signature, and names the same signer. */
	snprintf(signerf, sizeof(signerf), "%s/signer-%d.pem", scratch, _i);
	unlink(signerf);
	if (corpus_signed[_i].openssl_mime) {
		rc = run("openssl cms -verify -noverify -in '%s' -out /dev/null "
		    "-signer %s", corpus(rel), signerf);
	} else {
		snprintf(sigf, sizeof(sigf), "%s", scratch_file("sig.der",
		    m.der.data, m.der.len));
		if (content != NULL) {
			snprintf(contf, sizeof(contf), "%s", scratch_file(
			    "content.bin", content, clen));
			rc = run("openssl cms -verify -noverify -binary -inform DER "
			    "-in %s -content %s -out /dev/null -signer %s",
			    sigf, contf, signerf);
		} else {
			rc = run("openssl cms -verify -noverify -binary -inform DER "
			    "-in %s -out /dev/null -signer %s", sigf, signerf);
		}
	}
	if (corpus_signed[_i].openssl_rejects && refused)
		ck_assert_msg(rc != 0, "%s: openssl accepts", rel);
	else if (corpus_signed[_i].openssl_rejects)
		ck_assert_msg(rc != 0 && res.signature_ok, "%s: want openssl "
		    "to reject and us to accept (got openssl %d, us %s): the "
		    "known difference changed", rel, rc,
		    smime_verify_status_name(res.status));
	else
		ck_assert_msg((rc == 0) == good, "%s: openssl cms "
		    "says %s, we say %s", rel, rc == 0 ? "good" : "bad",
		    smime_verify_status_name(res.status));
	if (rc == 0) {
		X509 *theirs = load_cert(signerf);

		ck_assert_msg(theirs != NULL && res.signer != NULL &&
		    X509_cmp(theirs, res.signer) == 0, "%s: openssl names "
		    "another signer", rel);
		X509_free(theirs);
	}
	/* opaque: the content came out */
	if (content == NULL && res.signature_ok)
		ck_assert_msg(out.len > 0, "%s: opaque content missing", rel);
	smime_verify_result_free(&res);
	msgparts_free(&m);
	buf_free(&out);
	free(extc);
	free(raw);
}
END_TEST

/* Real chains, anchored where the corpus README says, at signing time. */
static const struct {
	const char *path;
	const char *ca[2];   /* anchors; none: the message's own root */
} corpus_chain[] = {
	{ "simple-java-mail/pkcs12/test messages/S_MIME test message "
	  "signed.eml", { "simple-java-mail/pkcs12/ca.crt", NULL } },
	{ "thunderbird/alice.dsig.SHA1.multipart.eml",
	  { "thunderbird/TestCA.pem", NULL } },
	/* the StartCom intermediate is not in the message: the store
	 * supplies it */
	{ "mimekit/thunderbird-signed.txt",
	  { "mimekit/StartComCertificationAuthority.crt",
	    "mimekit/StartComClass1PrimaryIntermediateClientCA.crt" } },
	{ "simple-java-mail/test-messages/SMIME (signed and clear text).eml",
	  { NULL, NULL } },
};

START_TEST(corpus_chains_are_trusted_at_their_signing_time)
{
	const char *rel = corpus_chain[_i].path;
	unsigned char *raw;
	size_t rawn;
	struct msgparts m;
	struct smime_verify_result res;
	X509_STORE *store = X509_STORE_new();
	time_t t;

	raw = testutil_slurp(corpus(rel), &rawn);
	ck_assert_ptr_nonnull(raw);
	cut_message(raw, rawn, &m);
	ck_assert_int_eq(smime_verify(m.der.data, m.der.len, m.content,
	    m.content_len, NULL, false, &res, NULL), SM_OK);
	t = res.signing_time;
	ck_assert_msg(t != 0, "%s: want a signingTime", rel);
	for (int i = 0; i < 2; i++) {
		X509 *x;

		if (corpus_chain[_i].ca[i] == NULL)
			continue;
		x = load_cert(corpus(corpus_chain[_i].ca[i]));
		ck_assert_ptr_nonnull(x);
		X509_STORE_add_cert(store, x);
		X509_free(x);
	}
	if (corpus_chain[_i].ca[0] == NULL)
		for (int i = 0; i < sk_X509_num(res.certs); i++) {
			X509 *x = sk_X509_value(res.certs, i);

			if (X509_check_issued(x, x) == X509_V_OK)
				X509_STORE_add_cert(store, x);
		}
	smime_verify_result_free(&res);

	clock_set(t);
	ck_assert_int_eq(smime_verify(m.der.data, m.der.len, m.content,
	    m.content_len, store, false, &res, NULL), SM_OK);
	ck_assert_msg(res.status == SMIME_VERIFY_OK, "%s at signing time: got "
	    "%s (%s), want ok", rel, smime_verify_status_name(res.status),
	    res.reason);
	smime_verify_result_free(&res);

	clock_set(4102444800); /* 2100 */
	ck_assert_int_eq(smime_verify(m.der.data, m.der.len, m.content,
	    m.content_len, store, false, &res, NULL), SM_OK);
	ck_assert_msg(res.signature_ok && res.status == SMIME_VERIFY_EXPIRED,
	    "%s in 2100: got %s (%s), want expired", rel,
	    smime_verify_status_name(res.status), res.reason);
	smime_verify_result_free(&res);
	X509_STORE_free(store);
	msgparts_free(&m);
	free(raw);
}
END_TEST

START_TEST(corpus_certs_only_messages_yield_their_certificates)
{
	unsigned char *raw;
	size_t n;
	STACK_OF(X509) *certs = NULL;
	struct smime_verify_result res;

	raw = testutil_slurp(corpus("rfc4134/4.11.bin"), &n);
	ck_assert_ptr_nonnull(raw);
	ck_assert_int_eq(smime_content_type(raw, n), SMIME_CT_CERTS_ONLY);
	ck_assert_int_eq(smime_get_certs(raw, n, &certs), SM_OK);
	ck_assert_int_eq(sk_X509_num(certs), 2);
	ck_assert_int_eq(smime_verify(raw, n, NULL, 0, NULL, false, &res,
	    NULL), SM_OK);
	ck_assert_int_eq(res.status, SMIME_VERIFY_NO_SIGNER);
	ck_assert_int_eq(sk_X509_num(res.certs), 2);
	smime_verify_result_free(&res);
	sk_X509_pop_free(certs, X509_free);
	free(raw);
}
END_TEST

static EVP_PKEY *
load_key_any(const char *path, const char *pass)
{
	FILE *f = fopen(path, "rb");
	EVP_PKEY *k = NULL;

	ck_assert_ptr_nonnull(f);
	k = PEM_read_PrivateKey(f, NULL, NULL, (void *)pass);
	if (k == NULL) {
		rewind(f);
		k = d2i_PrivateKey_fp(f, NULL);
	}
	fclose(f);
	ERR_clear_error();
	return k;
}

static const struct {
	const char *path;
	bool mime;
	const char *key, *cert, *pass;
	sm_status want;
	const char *expect;       /* plaintext begins with this */
	const char *inner_serial; /* signed inside: the signer */
} corpus_enc[] = {
	{ "simple-java-mail/pkcs12/test messages/S_MIME test message "
	  "encrypted.eml", true, "simple-java-mail/pkcs12/smime_test_user.key",
	  "simple-java-mail/pkcs12/smime_test_user.pem.standard.crt", "letmein",
	  SM_OK, "Content-Type: multipart/mixed", NULL },
	{ "simple-java-mail/pkcs12/test messages/S_MIME test message signed & "
	  "encrypted.eml", true, "simple-java-mail/pkcs12/smime_test_user.key",
	  "simple-java-mail/pkcs12/smime_test_user.pem.standard.crt", "letmein",
	  SM_OK, "Content-Type: multipart/signed", "01" },
	{ "rfc4134/5.1.bin", false, "rfc4134/BobPrivRSAEncrypt.pri",
	  "rfc4134/BobRSASignByCarl.cer", NULL, SM_OK,
	  "This is some sample content.", NULL },
	{ "rfc4134/5.3.eml", true, "rfc4134/BobPrivRSAEncrypt.pri",
	  "rfc4134/BobRSASignByCarl.cer", NULL, SM_OK,
	  "This is some sample content.", NULL },
	/* RC2: only after smime_enable_legacy(), see the next test */
	{ "rfc4134/5.2.bin", false, "rfc4134/BobPrivRSAEncrypt.pri",
	  "rfc4134/BobRSASignByCarl.cer", NULL, SM_ERR_UNSUPPORTED, NULL, NULL },
	/* Real envelopes for keys we do not have: parsed, and not ours. */
	{ "thunderbird/alice.env.eml", true, "rfc4134/BobPrivRSAEncrypt.pri",
	  "rfc4134/BobRSASignByCarl.cer", NULL, SM_ERR_NOKEY, NULL, NULL },
	{ "thunderbird/alice.dsig.SHA256.multipart.env.eml", true,
	  "rfc4134/BobPrivRSAEncrypt.pri", "rfc4134/BobRSASignByCarl.cer",
	  NULL, SM_ERR_NOKEY, NULL, NULL },
	{ "mimekit/content-length-mbox/msg-L12149.eml", true,
	  "rfc4134/BobPrivRSAEncrypt.pri", "rfc4134/BobRSASignByCarl.cer",
	  NULL, SM_ERR_NOKEY, NULL, NULL },
};

START_TEST(corpus_envelopes_decrypt_with_their_keys)
{
	unsigned char *raw;
	size_t n;
	struct msgparts m;
	struct smime_key k = { 0 };
	struct buf out = BUF_INIT;
	char err[256];
	sm_status st;

	raw = testutil_slurp(corpus(corpus_enc[_i].path), &n);
	ck_assert_ptr_nonnull(raw);
	memset(&m, 0, sizeof(m));
	if (corpus_enc[_i].mime)
		cut_message(raw, n, &m);
	else
		buf_append(&m.der, raw, n);
	k.pkey = load_key_any(corpus(corpus_enc[_i].key), corpus_enc[_i].pass);
	k.cert = load_cert(corpus(corpus_enc[_i].cert));
	ck_assert_msg(k.pkey != NULL && k.cert != NULL, "test key/cert");
	st = smime_decrypt(m.der.data, m.der.len, &k, 1, &out, err,
	    sizeof(err));
	ck_assert_msg(st == corpus_enc[_i].want, "%s: got %s (%s), want %s",
	    corpus_enc[_i].path, sm_strstatus(st), err,
	    sm_strstatus(corpus_enc[_i].want));
	if (st == SM_OK)
		ck_assert_msg(out.len >= strlen(corpus_enc[_i].expect) &&
		    memcmp(out.data, corpus_enc[_i].expect,
		    strlen(corpus_enc[_i].expect)) == 0, "%s: plaintext starts "
		    "'%.30s', want '%s'", corpus_enc[_i].path, out.data,
		    corpus_enc[_i].expect);
	else
		ck_assert_uint_eq(out.len, 0);
	if (st == SM_OK && corpus_enc[_i].inner_serial != NULL) {
		struct msgparts in;
		struct smime_verify_result res;
		char *ser;

		cut_message(out.data, out.len, &in);
		ck_assert_int_eq(smime_verify(in.der.data, in.der.len,
		    in.content, in.content_len, NULL, false, &res, NULL), SM_OK);
		ck_assert_msg(res.signature_ok, "inner signature: got %s (%s)",
		    smime_verify_status_name(res.status), res.reason);
		ser = serial_hex(res.signer);
		ck_assert_str_eq(ser, corpus_enc[_i].inner_serial);
		OPENSSL_free(ser);
		smime_verify_result_free(&res);
		msgparts_free(&in);
	}
	smime_key_free(&k);
	msgparts_free(&m);
	buf_free(&out);
	free(raw);
}
END_TEST

START_TEST(rc2_envelopes_decrypt_once_legacy_ciphers_are_enabled)
{
	unsigned char *raw;
	size_t n;
	struct smime_key k = { 0 };
	struct buf out = BUF_INIT;
	char err[256];
	sm_status st;

	raw = testutil_slurp(corpus("rfc4134/5.2.bin"), &n);
	k.pkey = load_key_any(corpus("rfc4134/BobPrivRSAEncrypt.pri"), NULL);
	k.cert = load_cert(corpus("rfc4134/BobRSASignByCarl.cer"));
	ck_assert_msg(smime_enable_legacy(err, sizeof(err)) == SM_OK,
	    "legacy provider: %s", err);
	st = smime_decrypt(raw, n, &k, 1, &out, err, sizeof(err));
	ck_assert_msg(st == SM_OK, "RC2: got %s (%s), want ok",
	    sm_strstatus(st), err);
	ck_assert_str_eq((char *)out.data, "This is some sample content.");
	smime_key_free(&k);
	buf_free(&out);
	free(raw);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *
smime_suite(void)
{
	Suite *s = suite_create("smime");
	TCase *tc;

	tc = tcase_create("sign");
	tcase_add_checked_fixture(tc, NULL, unpin_clock);
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc,
	    sign_then_verify_round_trips_for_every_key_digest_and_form, 0,
	    sizeof(sign_rows) / sizeof(sign_rows[0]));
	tcase_add_test(tc, micalg_names_the_signing_digest);
	tcase_add_test(tc, sign_refuses_weak_digests_and_missing_keys);
	tcase_add_test(tc, empty_content_signs_and_verifies);
	tcase_add_test(tc, capabilities_and_key_preference_survive_a_round_trip);
	tcase_add_test(tc, signing_time_after_2049_is_generalized_time);
	tcase_add_test(tc, changed_content_is_content_altered);
	tcase_add_test(tc, changed_signature_or_signed_attributes_is_bad_signature);
	tcase_add_loop_test(tc,
	    chain_status_reflects_trust_and_validity_at_the_pinned_time, 0,
	    sizeof(chain_rows) / sizeof(chain_rows[0]));
	tcase_add_test(tc, streamed_ber_with_indefinite_lengths_verifies);
	tcase_add_test(tc, garbage_and_truncated_input_gives_an_error_not_a_crash);
	tcase_add_test(tc,
	    flipped_bytes_never_verify_as_valid_content_of_another_message);
	tcase_add_test(tc, detached_and_opaque_mismatches_are_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("encrypt");
	tcase_add_checked_fixture(tc, NULL, unpin_clock);
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc,
	    encrypt_then_decrypt_round_trips_for_every_key_cipher_and_padding,
	    0, sizeof(enc_rows) / sizeof(enc_rows[0]));
	tcase_add_test(tc, every_recipient_of_a_shared_envelope_decrypts_it);
	tcase_add_test(tc, old_keys_still_decrypt_and_strangers_get_nokey);
	tcase_add_test(tc, a_wrong_key_and_a_corrupt_envelope_fail_alike);
	tcase_add_test(tc, corrupt_envelopes_fail_without_partial_plaintext);
	tcase_add_test(tc, flipped_envelope_bytes_never_yield_wrong_plaintext);
	tcase_add_test(tc, encrypt_needs_an_explicit_cipher_and_usable_recipients);
	tcase_add_test(tc, twenty_megabytes_round_trip);
	tcase_add_test(tc, sign_then_encrypt_composes);
	tcase_add_test(tc, content_type_tells_signed_enveloped_and_certs_only_apart);
	suite_add_tcase(s, tc);

	tc = tcase_create("choice");
	tcase_add_loop_test(tc, cipher_choice_follows_the_table, 0,
	    sizeof(choice_rows) / sizeof(choice_rows[0]));
	tcase_add_test(tc, cipher_names_parse_back);
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc,
	    key_files_load_with_their_chain_and_unsafe_ones_are_refused);
	tcase_add_test(tc, trust_anchors_load_once_and_outlive_their_files);
	suite_add_tcase(s, tc);

	tc = tcase_create("corpus");
	tcase_add_checked_fixture(tc, NULL, unpin_clock);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, corpus_chains_are_trusted_at_their_signing_time,
	    0, sizeof(corpus_chain) / sizeof(corpus_chain[0]));
	tcase_add_loop_test(tc,
	    corpus_signatures_verify_like_openssl_with_the_same_signer, 0,
	    sizeof(corpus_signed) / sizeof(corpus_signed[0]));
	tcase_add_test(tc, corpus_certs_only_messages_yield_their_certificates);
	tcase_add_loop_test(tc, corpus_envelopes_decrypt_with_their_keys, 0,
	    sizeof(corpus_enc) / sizeof(corpus_enc[0]));
	/* last: it loads a provider into the process for good */
	tcase_add_test(tc, rc2_envelopes_decrypt_once_legacy_ciphers_are_enabled);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	char cmd[8192], err[512];
	int rc = 1;

	pki = testutil_tmpdir();
	scratch = testutil_tmpdir();
	if (pki == NULL || scratch == NULL) {
		fprintf(stderr, "check_smime: cannot make temp directories\n");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "sh %s %s >%s/mkpki.log 2>&1",
	    testutil_path("tests/pki/mkpki.sh"), pki, scratch);
	if (system(cmd) != 0) {
		fprintf(stderr, "check_smime: tests/pki/mkpki.sh failed (is "
		    "SMIME_TOP the source tree?):\n");
		snprintf(cmd, sizeof(cmd), "cat %s/mkpki.log >&2", scratch);
		if (system(cmd) != 0)
			fprintf(stderr, "(no log)\n");
		goto done;
	}
	for (size_t i = 0; i < sizeof(idents) / sizeof(idents[0]); i++) {
		char f[4096];

		snprintf(f, sizeof(f), "%s/%s.pem", pki, idents[i].name);
		if (smime_key_load_pem(f, &idents[i].k, err, sizeof(err)) !=
		    SM_OK) {
			fprintf(stderr, "check_smime: %s\n", err);
			goto done;
		}
	}
	if (trust_load(path_in(pki, "ca.pem"), NULL, &anchors, err,
	    sizeof(err)) != SM_OK) {
		fprintf(stderr, "check_smime: %s\n", err);
		goto done;
	}
	rc = testutil_run(smime_suite());
done:
	for (size_t i = 0; i < sizeof(idents) / sizeof(idents[0]); i++)
		smime_key_free(&idents[i].k);
	trust_free(anchors);
	testutil_rmtree(pki);
	testutil_rmtree(scratch);
	free(pki);
	free(scratch);
	return rc;
}
