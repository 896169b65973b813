/*
 * certgen.h — a small certificate factory for the Check suites.
 *
 * Header-only (static functions) because the Makefile links each suite from
 * its own check_X.c plus testutil.o. Every knob the harvest rules look at is
 * controllable: key type and size, validity window, SAN and subject
 * addresses, key usage, extended key usage, signature digest, issuer.
 *
 * Failures here are test-setup failures: the helpers abort via ck_abort_msg
 * so a broken fixture can never masquerade as a passing rule.
 */
#ifndef SMIME_TEST_CERTGEN_H
#define SMIME_TEST_CERTGEN_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* 2025-06-01T00:00:00Z: the "now" of every suite. */
#define CG_NOW ((time_t)1748736000)
#define CG_DAY ((time_t)86400)

struct cg_spec {
	EVP_PKEY *key;	      /* subject key (required) */
	X509 *ca;	      /* issuer certificate; NULL: self-signed */
	EVP_PKEY *ca_key;     /* issuer key (required with ca) */
	const char *cn;	      /* subject CN (default "test") */
	const char *subj_email; /* subject emailAddress or NULL */
	const char *san;      /* X509v3 config text, e.g. "email:a@b.example" */
	time_t not_before;    /* 0: CG_NOW - 30 days */
	time_t not_after;     /* 0: CG_NOW + 365 days */
	const char *ku;	      /* keyUsage config text or NULL (absent) */
	const char *eku;      /* extendedKeyUsage config text or NULL */
	const EVP_MD *md;     /* NULL: SHA-256 (ignored for Ed25519) */
	bool is_ca;
};

static inline EVP_PKEY *
cg_rsa(unsigned int bits)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);

	ck_assert_msg(k != NULL, "RSA-%u key generation failed", bits);
	return k;
}

static inline EVP_PKEY *
cg_ec(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	ck_assert_msg(k != NULL, "EC P-256 key generation failed");
	return k;
}

static inline EVP_PKEY *
cg_ed25519(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	ck_assert_msg(k != NULL, "Ed25519 key generation failed");
	return k;
}

static inline void
cg_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

	ck_assert_msg(e != NULL, "extension %s=%s rejected", OBJ_nid2sn(nid),
		      value);
	ck_assert(X509_add_ext(x, e, -1) == 1);
	X509_EXTENSION_free(e);
}

/* A fresh 63-bit random serial, so that no two generated certificates
 * share issuer+serial (or a fingerprint). */
static inline void
cg_serial(X509 *x)
{
	unsigned char r[8];
	BIGNUM *bn;

	ck_assert(RAND_bytes(r, sizeof(r)) == 1);
	r[0] &= 0x7f;
	r[0] |= 0x01;
	bn = BN_bin2bn(r, sizeof(r), NULL);
	ck_assert(bn != NULL);
	ck_assert(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL);
	BN_free(bn);
}

static inline X509 *
cg_make(const struct cg_spec *s)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	EVP_PKEY *signer = s->ca ? s->ca_key : s->key;
	const EVP_MD *md = s->md ? s->md : EVP_sha256();
	time_t nb = s->not_before ? s->not_before : CG_NOW - 30 * CG_DAY;
	time_t na = s->not_after ? s->not_after : CG_NOW + 365 * CG_DAY;

	ck_assert(x != NULL && s->key != NULL && signer != NULL);
	ck_assert(X509_set_version(x, 2) == 1);
	cg_serial(x);
	name = X509_get_subject_name(x);
	ck_assert(X509_NAME_add_entry_by_txt(
		      name, "CN", MBSTRING_UTF8,
		      (const unsigned char *)(s->cn ? s->cn : "test"), -1, -1,
		      0) == 1);
	if (s->subj_email)
		ck_assert(X509_NAME_add_entry_by_NID(
			      name, NID_pkcs9_emailAddress, MBSTRING_ASC,
			      (const unsigned char *)s->subj_email, -1, -1,
			      0) == 1);
	ck_assert(X509_set_issuer_name(x, s->ca ? X509_get_subject_name(s->ca)
						: name) == 1);
	ck_assert(ASN1_TIME_set(X509_getm_notBefore(x), nb) != NULL);
	ck_assert(ASN1_TIME_set(X509_getm_notAfter(x), na) != NULL);
	ck_assert(X509_set_pubkey(x, s->key) == 1);

	X509V3_set_ctx(&ctx, s->ca ? s->ca : x, x, NULL, NULL, 0);
	cg_ext(x, &ctx, NID_basic_constraints,
	       s->is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	cg_ext(x, &ctx, NID_subject_key_identifier, "hash");
	if (s->ca)
		cg_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
	if (s->ku)
		cg_ext(x, &ctx, NID_key_usage, s->ku);
	if (s->eku)
		cg_ext(x, &ctx, NID_ext_key_usage, s->eku);
	if (s->san)
		cg_ext(x, &ctx, NID_subject_alt_name, s->san);

	if (EVP_PKEY_get_base_id(signer) == EVP_PKEY_ED25519)
		md = NULL;
	ck_assert_msg(X509_sign(x, signer, md) > 0, "X509_sign failed");
	return x;
}

/* A CA certificate with its own key. */
static inline X509 *
cg_ca(EVP_PKEY *key, const char *cn)
{
	struct cg_spec s = {
		.key = key,
		.cn = cn,
		.not_before = CG_NOW - 3650 * CG_DAY,
		.not_after = CG_NOW + 3650 * CG_DAY,
		.ku = "critical,keyCertSign,cRLSign",
		.is_ca = true,
	};

	return cg_make(&s);
}

/* A trust store holding one anchor. */
static inline X509_STORE *
cg_store(X509 *anchor)
{
	X509_STORE *st = X509_STORE_new();

	ck_assert(st != NULL);
	ck_assert(X509_STORE_add_cert(st, anchor) == 1);
	return st;
}

/* A PEM file holding key, cert and chain certificates. mode: file mode. */
static inline void
cg_write_pem(const char *path, EVP_PKEY *key, X509 *cert, X509 *chain1,
	     mode_t mode)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "cannot create %s", path);
	if (key)
		ck_assert(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL,
					       NULL) == 1);
	if (cert)
		ck_assert(PEM_write_X509(f, cert) == 1);
	if (chain1)
		ck_assert(PEM_write_X509(f, chain1) == 1);
	ck_assert(fclose(f) == 0);
	ck_assert(chmod(path, mode) == 0);
}

#endif
