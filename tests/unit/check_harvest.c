/*
 * check_harvest.c — the harvest rules and the certificate helpers under them.
 *
 * Every case builds real certificates with OpenSSL (certgen.h) and runs
 * them through harvest_judge(); the expected reason texts are the exact
 * strings admins see in logs and `smimectl inspect`.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/objects.h>

#include "certgen.h"
#include "harvest.h"
#include "testutil.h"
#include "x509util.h"

/* ---- fixture: keys and CAs, made once per test case in the parent ---- */

enum key_kind { K_RSA2048, K_RSA2048B, K_RSA4096, K_RSA1024, K_EC, K_ED25519,
		K_COUNT };

static EVP_PKEY *keys[K_COUNT];
static EVP_PKEY *ca_key, *other_ca_key;
static X509 *ca, *other_ca;
static X509_STORE *store;

static void
keys_setup(void)
{
	keys[K_RSA2048] = cg_rsa(2048);
	keys[K_RSA2048B] = cg_rsa(2048);
	keys[K_RSA4096] = cg_rsa(4096);
	keys[K_RSA1024] = cg_rsa(1024);
	keys[K_EC] = cg_ec();
	keys[K_ED25519] = cg_ed25519();
	ca_key = cg_rsa(2048);
	other_ca_key = cg_ec();
	ca = cg_ca(ca_key, "Test CA");
	other_ca = cg_ca(other_ca_key, "Other CA");
	store = cg_store(ca);
}

static void
keys_teardown(void)
{
	int i;

	for (i = 0; i < K_COUNT; i++)
		EVP_PKEY_free(keys[i]);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_ca_key);
	X509_free(ca);
	X509_free(other_ca);
	X509_STORE_free(store);
}

/* ---- the rule table ---- */

enum issuer_kind { I_CA, I_OTHER_CA, I_SELF };
enum validity_kind { V_OK, V_EXPIRED, V_NOT_YET };

#define KU_RSA "critical,digitalSignature,keyEncipherment"
#define KU_EC "critical,digitalSignature,keyAgreement"
#define KU_SIGN "critical,digitalSignature,nonRepudiation"
#define KU_ENC_ONLY "critical,keyEncipherment"
#define EKU_EMAIL "emailProtection"
#define BOB "bob@partner.example"
#define SAN_BOB "email:" BOB

struct certdesc {
	bool present;
	enum key_kind key;
	enum issuer_kind issuer;
	enum validity_kind validity;
	const char *san;
	const char *subj_email;
	const char *ku;
	const char *eku;
	bool sha1_signed; /* the certificate's own signature uses SHA-1 */
};

enum want_cert { W_NONE, W_SIGNER, W_EXTRA };

struct harvest_case {
	const char *name;
	struct certdesc signer;
	struct certdesc extra;	 /* another certificate in the SignedData */
	bool extra_is_enc_pref;	 /* named by sMIMEEncryptionKeyPreference */
	bool signature_bad;
	enum harvest_chain chain;
	bool allow_self_signed;
	int digest;		 /* 0: SHA-256 */
	const char *from;	 /* NULL: BOB */
	enum want_cert want;
	bool want_enc_pref;
	const char *want_reason;
};

/* Shorthands for the common signer shapes. */
#define RSA_OK(k) { true, k, I_CA, V_OK, SAN_BOB, NULL, KU_RSA, EKU_EMAIL, false }
#define EC_OK { true, K_EC, I_CA, V_OK, SAN_BOB, NULL, KU_EC, EKU_EMAIL, false }

static const struct harvest_case cases[] = {
	{ .name = "a valid RSA-2048 signer is harvested",
	  .signer = RSA_OK(K_RSA2048), .want = W_SIGNER,
	  .want_reason = "signer certificate" },
	{ .name = "a valid RSA-4096 signer is harvested",
	  .signer = RSA_OK(K_RSA4096), .want = W_SIGNER,
	  .want_reason = "signer certificate" },
	{ .name = "a valid EC P-256 signer is harvested",
	  .signer = EC_OK, .want = W_SIGNER,
	  .want_reason = "signer certificate" },
	{ .name = "a signature that does not verify is refused first",
	  .signer = RSA_OK(K_RSA1024), .signature_bad = true,
	  .chain = HARVEST_CHAIN_UNTRUSTED,
	  .want_reason = "signature does not verify" },
	{ .name = "an expired certificate is refused with its date",
	  .signer = { true, K_RSA2048, I_CA, V_EXPIRED, SAN_BOB, NULL, KU_RSA,
		      EKU_EMAIL, false },
	  .want_reason = "certificate expired on 2025-01-31" },
	{ .name = "an expired certificate reported as an expired chain keeps "
		  "its date",
	  .signer = { true, K_RSA2048, I_CA, V_EXPIRED, SAN_BOB, NULL, KU_RSA,
		      EKU_EMAIL, false },
	  .chain = HARVEST_CHAIN_EXPIRED,
	  .want_reason = "certificate expired on 2025-01-31" },
	{ .name = "a valid leaf under an expired CA is refused",
	  .signer = RSA_OK(K_RSA2048), .chain = HARVEST_CHAIN_EXPIRED,
	  .want_reason = "certificate chain expired" },
	{ .name = "a not yet valid certificate is refused",
	  .signer = { true, K_RSA2048, I_CA, V_NOT_YET, SAN_BOB, NULL, KU_RSA,
		      EKU_EMAIL, false },
	  .want_reason = "certificate not yet valid" },
	{ .name = "a certificate from an untrusted CA is refused",
	  .signer = { true, K_RSA2048, I_OTHER_CA, V_OK, SAN_BOB, NULL, KU_RSA,
		      EKU_EMAIL, false },
	  .chain = HARVEST_CHAIN_UNTRUSTED,
	  .want_reason = "certificate not trusted" },
	{ .name = "a self-signed certificate is refused by default",
	  .signer = { true, K_RSA2048, I_SELF, V_OK, SAN_BOB, NULL, KU_RSA,
		      EKU_EMAIL, false },
	  .chain = HARVEST_CHAIN_SELF_SIGNED,
	  .want_reason = "self-signed certificate not allowed" },
	{ .name = "a self-signed certificate is harvested when allowed",
	  .signer = { true, K_RSA2048, I_SELF, V_OK, SAN_BOB, NULL, KU_RSA,
		      EKU_EMAIL, false },
	  .chain = HARVEST_CHAIN_SELF_SIGNED, .allow_self_signed = true,
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "a CA-issued certificate claimed self-signed is not trusted",
	  .signer = { true, K_RSA2048, I_OTHER_CA, V_OK, SAN_BOB, NULL, KU_RSA,
		      EKU_EMAIL, false },
	  .chain = HARVEST_CHAIN_SELF_SIGNED, .allow_self_signed = true,
	  .want_reason = "certificate not trusted" },
	{ .name = "a certificate for another address is refused",
	  .signer = RSA_OK(K_RSA2048), .from = "carol@partner.example",
	  .want_reason = "no certificate address matches From "
			 "carol@partner.example" },
	{ .name = "the From address found among several SAN entries matches",
	  .signer = { true, K_RSA2048, I_CA, V_OK,
		      "email:b.o.b@partner.example,email:" BOB, NULL, KU_RSA,
		      EKU_EMAIL, false },
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "an address only in the SAN matches",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB,
		      "alice@partner.example", KU_RSA, EKU_EMAIL, false },
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "an address only in the subject matches when there is no SAN",
	  .signer = { true, K_RSA2048, I_CA, V_OK, NULL, BOB, KU_RSA,
		      EKU_EMAIL, false },
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "a subject address is ignored when the SAN has another one",
	  .signer = { true, K_RSA2048, I_CA, V_OK,
		      "email:alice@partner.example", BOB, KU_RSA, EKU_EMAIL,
		      false },
	  .want_reason = "no certificate address matches From " BOB },
	{ .name = "a subject address counts when the SAN has only a DNS name",
	  .signer = { true, K_RSA2048, I_CA, V_OK, "DNS:partner.example", BOB,
		      KU_RSA, EKU_EMAIL, false },
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "the domain compares case-insensitively",
	  .signer = RSA_OK(K_RSA2048), .from = "bob@Partner.EXAMPLE",
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "the local part compares case-insensitively",
	  .signer = RSA_OK(K_RSA2048), .from = "Bob@partner.example",
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "a mixed-case SAN address matches the lowercased From",
	  .signer = { true, K_RSA2048, I_CA, V_OK,
		      "email:Bob.Smith@Partner.example", NULL, KU_RSA, NULL,
		      false },
	  .from = "bob.smith@partner.example",
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "an EKU without emailProtection is refused",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, KU_RSA,
		      "clientAuth,serverAuth", false },
	  .want_reason = "extended key usage lacks emailProtection" },
	{ .name = "an EKU with anyExtendedKeyUsage is accepted",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, KU_RSA,
		      "clientAuth,anyExtendedKeyUsage", false },
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "no EKU at all is accepted",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, KU_RSA, NULL,
		      false },
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "a signing-only key usage is refused",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, KU_SIGN,
		      EKU_EMAIL, false },
	  .want_reason = "key usage does not allow encryption" },
	{ .name = "an EC key without keyAgreement is refused",
	  .signer = { true, K_EC, I_CA, V_OK, SAN_BOB, NULL, KU_RSA, EKU_EMAIL,
		      false },
	  .want_reason = "key usage does not allow encryption" },
	{ .name = "no key usage extension at all is accepted",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, NULL,
		      EKU_EMAIL, false },
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "an Ed25519 key cannot be encrypted to",
	  .signer = { true, K_ED25519, I_CA, V_OK, SAN_BOB, NULL, NULL,
		      EKU_EMAIL, false },
	  .want_reason = "key type ed25519 cannot encrypt" },
	{ .name = "a SHA-1 message signature is refused",
	  .signer = RSA_OK(K_RSA2048), .digest = NID_sha1,
	  .want_reason = "weak digest sha1" },
	{ .name = "an MD5 message signature is refused",
	  .signer = RSA_OK(K_RSA2048), .digest = NID_md5,
	  .want_reason = "weak digest md5" },
	{ .name = "a SHA-384 message signature is accepted",
	  .signer = RSA_OK(K_RSA2048), .digest = NID_sha384,
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "a certificate signed with SHA-1 is refused",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, KU_RSA,
		      EKU_EMAIL, true },
	  .want_reason = "certificate signed with weak digest sha1" },
	{ .name = "an RSA-1024 key is refused",
	  .signer = RSA_OK(K_RSA1024),
	  .want_reason = "RSA key too small (1024 bits)" },
	{ .name = "the first failing rule is the reason (expired before From)",
	  .signer = { true, K_RSA2048, I_CA, V_EXPIRED, SAN_BOB, NULL, KU_SIGN,
		      EKU_EMAIL, false },
	  .from = "carol@partner.example",
	  .want_reason = "certificate expired on 2025-01-31" },
	{ .name = "the first failing rule is the reason (key usage before "
		  "digest and size)",
	  .signer = { true, K_RSA1024, I_CA, V_OK, SAN_BOB, NULL, KU_SIGN,
		      EKU_EMAIL, false },
	  .digest = NID_sha1,
	  .want_reason = "key usage does not allow encryption" },
	{ .name = "a separate encryption certificate is harvested instead of "
		  "a signing-only signer",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, KU_SIGN,
		      EKU_EMAIL, false },
	  .extra = { true, K_RSA2048B, I_CA, V_OK, SAN_BOB, NULL, KU_ENC_ONLY,
		     EKU_EMAIL, false },
	  .want = W_EXTRA, .want_enc_pref = true,
	  .want_reason = "separate encryption certificate" },
	{ .name = "a separate encryption certificate is preferred over a "
		  "dual-use signer",
	  .signer = RSA_OK(K_RSA2048),
	  .extra = { true, K_RSA2048B, I_CA, V_OK, SAN_BOB, NULL, KU_ENC_ONLY,
		     EKU_EMAIL, false },
	  .want = W_EXTRA, .want_enc_pref = true,
	  .want_reason = "separate encryption certificate" },
	{ .name = "the certificate named by sMIMEEncryptionKeyPreference is "
		  "harvested",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, KU_SIGN,
		      EKU_EMAIL, false },
	  .extra = { true, K_EC, I_CA, V_OK, SAN_BOB, NULL, KU_EC, EKU_EMAIL,
		     false },
	  .extra_is_enc_pref = true, .want = W_EXTRA, .want_enc_pref = true,
	  .want_reason = "encryption certificate named by "
			 "sMIMEEncryptionKeyPreference" },
	{ .name = "an injected encryption certificate from an untrusted CA is "
		  "not harvested",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, KU_SIGN,
		      EKU_EMAIL, false },
	  .extra = { true, K_RSA2048B, I_OTHER_CA, V_OK, SAN_BOB, NULL,
		     KU_ENC_ONLY, EKU_EMAIL, false },
	  .want_reason = "encryption certificate: certificate not trusted" },
	{ .name = "an injected encryption certificate does not displace a "
		  "dual-use signer",
	  .signer = RSA_OK(K_RSA2048),
	  .extra = { true, K_RSA2048B, I_OTHER_CA, V_OK, SAN_BOB, NULL,
		     KU_ENC_ONLY, EKU_EMAIL, false },
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "an expired encryption certificate falls back to a dual-use "
		  "signer",
	  .signer = RSA_OK(K_RSA2048),
	  .extra = { true, K_RSA2048B, I_CA, V_EXPIRED, SAN_BOB, NULL,
		     KU_ENC_ONLY, EKU_EMAIL, false },
	  .want = W_SIGNER, .want_reason = "signer certificate" },
	{ .name = "an encryption certificate for another address is ignored",
	  .signer = { true, K_RSA2048, I_CA, V_OK, SAN_BOB, NULL, KU_SIGN,
		      EKU_EMAIL, false },
	  .extra = { true, K_RSA2048B, I_CA, V_OK,
		     "email:carol@partner.example", NULL, KU_ENC_ONLY,
		     EKU_EMAIL, false },
	  .want_reason = "key usage does not allow encryption" },
};

static X509 *
build(const struct certdesc *d)
{
	struct cg_spec s = {
		.key = keys[d->key],
		.cn = "Bob Partner",
		.subj_email = d->subj_email,
		.san = d->san,
		.ku = d->ku,
		.eku = d->eku,
		.md = d->sha1_signed ? EVP_sha1() : NULL,
	};

	switch (d->issuer) {
	case I_CA: s.ca = ca; s.ca_key = ca_key; break;
	case I_OTHER_CA: s.ca = other_ca; s.ca_key = other_ca_key; break;
	case I_SELF: break;
	}
	switch (d->validity) {
	case V_OK: break;
	case V_EXPIRED:
		/* 2025-01-31T23:59:59Z */
		s.not_before = CG_NOW - 500 * CG_DAY;
		s.not_after = (time_t)1738367999;
		break;
	case V_NOT_YET:
		s.not_before = CG_NOW + 10 * CG_DAY;
		s.not_after = CG_NOW + 400 * CG_DAY;
		break;
	}
	return cg_make(&s);
}

START_TEST(test_harvest_rules)
{
	const struct harvest_case *c = &cases[_i];
	struct harvest_input in;
	struct harvest_verdict v;
	STACK_OF(X509) *set = sk_X509_new_null();
	X509 *signer = build(&c->signer);
	X509 *extra = c->extra.present ? build(&c->extra) : NULL;
	X509 *want_cert = NULL;
	sm_status st;

	ck_assert(set != NULL);
	/* The certificate set as a CMS signature carries it: the signer,
	 * its CA, and any further certificate. */
	ck_assert(sk_X509_push(set, signer) > 0);
	ck_assert(sk_X509_push(set, ca) > 0);
	if (extra)
		ck_assert(sk_X509_push(set, extra) > 0);

	memset(&in, 0, sizeof(in));
	in.signer = signer;
	in.certs = set;
	in.signature_ok = !c->signature_bad;
	in.chain = c->chain;
	in.allow_self_signed = c->allow_self_signed;
	in.digest_nid = c->digest ? c->digest : NID_sha256;
	in.from = c->from ? c->from : BOB;
	in.enc_pref = c->extra_is_enc_pref ? extra : NULL;
	in.trust = store;
	in.now = CG_NOW;

	st = harvest_judge(&in, &v);
	ck_assert_msg(st == SM_OK, "%s: got status %s, want ok", c->name,
		      sm_strstatus(st));
	ck_assert_msg(strcmp(v.reason, c->want_reason) == 0,
		      "%s: got reason \"%s\", want \"%s\"", c->name, v.reason,
		      c->want_reason);
	ck_assert_msg(v.harvest == (c->want != W_NONE),
		      "%s: got harvest=%d, want %d", c->name, v.harvest,
		      c->want != W_NONE);
	if (c->want == W_SIGNER)
		want_cert = signer;
	else if (c->want == W_EXTRA)
		want_cert = extra;
	ck_assert_msg(v.cert == want_cert, "%s: got cert %p, want %s", c->name,
		      (void *)v.cert,
		      c->want == W_SIGNER  ? "the signer"
		      : c->want == W_EXTRA ? "the encryption certificate"
					   : "none");
	ck_assert_msg(v.enc_pref == c->want_enc_pref,
		      "%s: got enc_pref=%d, want %d", c->name, v.enc_pref,
		      c->want_enc_pref);

	sk_X509_free(set);
	X509_free(signer);
	X509_free(extra);
}
END_TEST

START_TEST(test_harvest_without_signer_or_from_is_an_argument_error)
{
	struct harvest_input in;
	struct harvest_verdict v;

	memset(&in, 0, sizeof(in));
	in.signature_ok = true;
	in.from = BOB;
	ck_assert_int_eq(harvest_judge(&in, &v), SM_ERR_ARG);
	ck_assert(!v.harvest && v.cert == NULL);
	ck_assert_int_eq(harvest_judge(NULL, &v), SM_ERR_ARG);
}
END_TEST

START_TEST(test_without_trust_store_only_the_signer_is_considered)
{
	struct cg_spec sig = { .key = keys[K_RSA2048], .ca = ca,
			       .ca_key = ca_key, .san = SAN_BOB, .ku = KU_RSA };
	struct cg_spec enc = { .key = keys[K_RSA2048B], .ca = ca,
			       .ca_key = ca_key, .san = SAN_BOB,
			       .ku = KU_ENC_ONLY };
	X509 *s = cg_make(&sig), *e = cg_make(&enc);
	STACK_OF(X509) *set = sk_X509_new_null();
	struct harvest_input in = { .signer = s, .certs = set,
				    .signature_ok = true,
				    .digest_nid = NID_sha256, .from = BOB,
				    .now = CG_NOW };
	struct harvest_verdict v;

	ck_assert(set && sk_X509_push(set, e) > 0);
	ck_assert_int_eq(harvest_judge(&in, &v), SM_OK);
	ck_assert_msg(v.harvest && v.cert == s && !v.enc_pref,
		      "got harvest=%d cert=%s, want the signer", v.harvest,
		      v.cert == e ? "enc" : "other");
	sk_X509_free(set);
	X509_free(s);
	X509_free(e);
}
END_TEST

/* ---- x509util ---- */

static const struct {
	const char *a, *b;
	bool equal;
} addr_eq_cases[] = {
	{ "bob@x.example", "bob@x.example", true },
	{ "bob@x.example", "bob@X.Example", true },
	{ "bob@x.example", "Bob@x.example", true },
	{ "Bob.Smith@Partner.example", "bob.smith@partner.example", true },
	{ "bob@x.example", "bob@x.example.org", false },
	{ "bob@x.example", "bobx.example", false },
	{ "\"a@b\"@x.example", "\"a@b\"@X.EXAMPLE", true },
	{ "@x.example", "@x.example", false },
	{ "bob@", "bob@", false },
	{ "bob@x", "bo@bx", false },
};

START_TEST(test_addresses_compare_case_insensitively)
{
	bool got = x509u_addr_equal(addr_eq_cases[_i].a, addr_eq_cases[_i].b);

	ck_assert_msg(got == addr_eq_cases[_i].equal,
		      "equal(%s, %s): got %d, want %d", addr_eq_cases[_i].a,
		      addr_eq_cases[_i].b, got, addr_eq_cases[_i].equal);
}
END_TEST

static const struct {
	const char *in, *want; /* want NULL: SM_ERR_PARSE */
} norm_cases[] = {
	{ "Bob@Partner.EXAMPLE", "bob@partner.example" },
	{ "a.b+c@x.example", "a.b+c@x.example" },
	{ "\"a@b\"@X.example", "\"a@b\"@x.example" },
	{ "bob", NULL },
	{ "@x.example", NULL },
	{ "bob@", NULL },
	{ "bob @x.example", NULL },
	{ "bob@x.example\r\n", NULL },
	{ "", NULL },
};

START_TEST(test_address_normalisation_folds_case)
{
	char *out = NULL;
	sm_status st = x509u_addr_normalise(norm_cases[_i].in, &out);

	if (norm_cases[_i].want == NULL) {
		ck_assert_msg(st == SM_ERR_PARSE && out == NULL,
			      "normalise(%s): got %s, want parse error",
			      norm_cases[_i].in, sm_strstatus(st));
	} else {
		ck_assert_msg(st == SM_OK && strcmp(out, norm_cases[_i].want) == 0,
			      "normalise(%s): got %s, want %s",
			      norm_cases[_i].in, out ? out : sm_strstatus(st),
			      norm_cases[_i].want);
	}
	free(out);
}
END_TEST

/* A certificate whose SAN rfc822Name hides a NUL: "bob@partner.example\0".
 * Built by hand because the config parser cannot express it. */
static X509 *
cert_with_nul_san(void)
{
	static const char evil[] = "bob@partner.example\0@evil.example";
	struct cg_spec s = { .key = keys[K_RSA2048], .ca = ca, .ca_key = ca_key,
			     .subj_email = BOB };
	X509 *x = cg_make(&s);
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

	ck_assert(gens && g && ia5);
	ck_assert(ASN1_STRING_set(ia5, evil, sizeof(evil) - 1) == 1);
	GENERAL_NAME_set0_value(g, GEN_EMAIL, ia5);
	ck_assert(sk_GENERAL_NAME_push(gens, g) > 0);
	ck_assert(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
				    X509V3_ADD_DEFAULT) == 1);
	GENERAL_NAMES_free(gens);
	ck_assert(X509_sign(x, ca_key, EVP_sha256()) > 0);
	return x;
}

START_TEST(test_address_with_embedded_nul_is_never_matched)
{
	X509 *x = cert_with_nul_san();
	char **v = NULL;
	size_t n = 9;

	ck_assert_int_eq(x509u_addresses(x, &v, &n, NULL), SM_OK);
	/* The SAN has an rfc822Name (a bad one), so the subject address must
	 * not be used as a fallback either. */
	ck_assert_msg(n == 0, "got %zu addresses (first %s), want none", n,
		      n ? v[0] : "");
	ck_assert(!x509u_has_address(x, BOB));
	x509u_strv_free(v, n);
	X509_free(x);
}
END_TEST

START_TEST(test_addresses_come_from_san_or_else_subject)
{
	struct cg_spec both = { .key = keys[K_EC], .ca = ca, .ca_key = ca_key,
				.san = "email:a@x.example,DNS:x.example,"
				       "email:B@X.example",
				.subj_email = "c@x.example" };
	struct cg_spec subj = { .key = keys[K_EC], .ca = ca, .ca_key = ca_key,
				.subj_email = "c@x.example" };
	X509 *x1 = cg_make(&both), *x2 = cg_make(&subj);
	char **v = NULL;
	size_t n = 0;
	bool from_subject = true;

	ck_assert_int_eq(x509u_addresses(x1, &v, &n, &from_subject), SM_OK);
	ck_assert_msg(n == 2 && strcmp(v[0], "a@x.example") == 0 &&
			  strcmp(v[1], "B@X.example") == 0 && !from_subject,
		      "got %zu addresses, want a@x.example and B@X.example "
		      "from the SAN",
		      n);
	x509u_strv_free(v, n);
	ck_assert_int_eq(x509u_addresses(x2, &v, &n, &from_subject), SM_OK);
	ck_assert_msg(n == 1 && strcmp(v[0], "c@x.example") == 0 &&
			  from_subject,
		      "got %zu addresses, want c@x.example from the subject",
		      n);
	x509u_strv_free(v, n);
	X509_free(x1);
	X509_free(x2);
}
END_TEST

START_TEST(test_validity_window_is_inclusive_and_dated_in_utc)
{
	struct cg_spec s = { .key = keys[K_EC], .ca = ca, .ca_key = ca_key,
			     .not_before = CG_NOW,
			     .not_after = CG_NOW + CG_DAY - 1 };
	X509 *x = cg_make(&s);
	char date[16];
	time_t na = 0;

	ck_assert_int_eq(x509u_validity(x, CG_NOW - 1), X509U_NOT_YET_VALID);
	ck_assert_int_eq(x509u_validity(x, CG_NOW), X509U_VALID);
	ck_assert_int_eq(x509u_validity(x, CG_NOW + CG_DAY - 1), X509U_VALID);
	ck_assert_int_eq(x509u_validity(x, CG_NOW + CG_DAY), X509U_EXPIRED);
	ck_assert_int_eq(x509u_not_after(x, &na), SM_OK);
	x509u_date(na, date, sizeof(date));
	ck_assert_str_eq(date, "2025-06-01");
	X509_free(x);
}
END_TEST

START_TEST(test_fingerprints_parse_with_or_without_colons)
{
	struct cg_spec s = { .key = keys[K_EC], .ca = ca, .ca_key = ca_key };
	X509 *x = cg_make(&s);
	char fp[X509U_FP_SIZE], back[X509U_FP_SIZE], colons[200];
	unsigned char md[32];
	unsigned int len = 0;
	size_t i, o = 0;

	ck_assert_int_eq(x509u_fingerprint(x, fp), SM_OK);
	ck_assert(X509_digest(x, EVP_sha256(), md, &len) && len == 32);
	for (i = 0; i < 32; i++)
		o += (size_t)snprintf(colons + o, sizeof(colons) - o, "%s%02X",
				      i ? ":" : "", md[i]);
	ck_assert(x509u_fingerprint_parse(colons, back));
	ck_assert_msg(strcmp(back, fp) == 0, "got %s, want %s", back, fp);
	ck_assert(!x509u_fingerprint_parse("abcd", back));
	ck_assert(!x509u_fingerprint_parse("bob@x.example", back));
	X509_free(x);
}
END_TEST

START_TEST(test_verify_ignores_leaf_validity_but_not_trust)
{
	struct cg_spec ok = { .key = keys[K_EC], .ca = ca, .ca_key = ca_key };
	struct cg_spec expired = { .key = keys[K_EC], .ca = ca,
				   .ca_key = ca_key,
				   .not_before = CG_NOW - 400 * CG_DAY,
				   .not_after = CG_NOW - 10 * CG_DAY };
	struct cg_spec foreign = { .key = keys[K_EC], .ca = other_ca,
				   .ca_key = other_ca_key };
	struct cg_spec self = { .key = keys[K_RSA2048], .ku = KU_RSA,
				.san = SAN_BOB };
	X509 *x_ok = cg_make(&ok), *x_exp = cg_make(&expired);
	X509 *x_for = cg_make(&foreign), *x_self = cg_make(&self);
	int verr = 0;

	ck_assert_int_eq(x509u_verify(x_ok, NULL, store, false, CG_NOW, &verr),
			 SM_OK);
	ck_assert_int_eq(x509u_verify(x_exp, NULL, store, false, CG_NOW, &verr),
			 SM_OK);
	ck_assert_int_eq(x509u_verify(x_for, NULL, store, false, CG_NOW, &verr),
			 SM_ERR_VERIFY);
	ck_assert_int_ne(verr, X509_V_OK);
	ck_assert_int_eq(x509u_verify(x_self, NULL, store, false, CG_NOW, NULL),
			 SM_ERR_VERIFY);
	ck_assert_int_eq(x509u_verify(x_self, NULL, store, true, CG_NOW, NULL),
			 SM_OK);
	ck_assert_int_eq(x509u_verify(x_self, NULL, NULL, true, CG_NOW, NULL),
			 SM_OK);
	ck_assert_int_eq(x509u_verify(x_ok, NULL, NULL, true, CG_NOW, NULL),
			 SM_ERR_VERIFY);
	/* The CA itself is outside its window 20 years on. */
	ck_assert_int_eq(x509u_verify(x_ok, NULL, store, false,
				      CG_NOW + 7300 * CG_DAY, NULL),
			 SM_ERR_VERIFY);
	X509_free(x_ok);
	X509_free(x_exp);
	X509_free(x_for);
	X509_free(x_self);
}
END_TEST

START_TEST(test_key_types_and_usage_are_read_from_the_certificate)
{
	struct cg_spec rsa = { .key = keys[K_RSA4096], .ca = ca,
			       .ca_key = ca_key, .ku = KU_SIGN };
	struct cg_spec ec = { .key = keys[K_EC], .ca = ca, .ca_key = ca_key,
			      .ku = KU_EC, .eku = "emailProtection" };
	X509 *xr = cg_make(&rsa), *xe = cg_make(&ec);
	int bits = 0;

	ck_assert_int_eq(x509u_key_type(xr, &bits), X509U_KEY_RSA);
	ck_assert_int_eq(bits, 4096);
	ck_assert(!x509u_ku_allows_encryption(xr));
	ck_assert(x509u_eku_allows_email(xr)); /* no EKU */
	ck_assert_int_eq(x509u_key_type(xe, &bits), X509U_KEY_EC);
	ck_assert_int_eq(bits, 256);
	ck_assert(x509u_ku_allows_encryption(xe));
	ck_assert(x509u_eku_allows_email(xe));
	ck_assert_str_eq(x509u_key_type_name(X509U_KEY_EC), "ec");
	ck_assert_int_eq(x509u_key_type_from_name("rsa"), X509U_KEY_RSA);
	X509_free(xr);
	X509_free(xe);
}
END_TEST

static Suite *
harvest_suite(void)
{
	Suite *s = suite_create("harvest");
	/* One test case so the keys (RSA-4096 among them) are generated
	 * once, in the parent, before the tests fork. */
	TCase *tc = tcase_create("harvest");

	tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_harvest_rules, 0,
			    (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_harvest_without_signer_or_from_is_an_argument_error);
	tcase_add_test(tc, test_without_trust_store_only_the_signer_is_considered);
	tcase_add_loop_test(tc, test_addresses_compare_case_insensitively,
			    0,
			    (int)(sizeof(addr_eq_cases) / sizeof(addr_eq_cases[0])));
	tcase_add_loop_test(tc, test_address_normalisation_folds_case,
			    0, (int)(sizeof(norm_cases) / sizeof(norm_cases[0])));
	tcase_add_test(tc, test_address_with_embedded_nul_is_never_matched);
	tcase_add_test(tc, test_addresses_come_from_san_or_else_subject);
	tcase_add_test(tc, test_validity_window_is_inclusive_and_dated_in_utc);
	tcase_add_test(tc, test_fingerprints_parse_with_or_without_colons);
	tcase_add_test(tc, test_verify_ignores_leaf_validity_but_not_trust);
	tcase_add_test(tc, test_key_types_and_usage_are_read_from_the_certificate);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(harvest_suite());
}
