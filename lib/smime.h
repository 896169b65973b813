/*
 * smime.h — the CMS layer: sign, verify, encrypt, decrypt raw bytes.
 *
 * Every function here works on bytes, never on MIME: the MIME layer hands in
 * the canonical entity (CRLF line ends, 7bit-safe transfer encodings) and
 * gets DER back, which it wraps in multipart/signed or application/pkcs7-mime.
 *
 * Sign-then-encrypt (RFC 8551 §3.7) is two calls, because the MIME layer has
 * to put the multipart/signed around the signature before encrypting:
 *
 *     smime_sign(key, md, true, entity, n, &sig, ...);        detached
 *     build "multipart/signed; micalg=<smime_micalg(md)>"
 *           = entity + application/pkcs7-signature(base64(sig))  -> ms
 *     smime_encrypt(rcpts, choice.cipher, choice.oaep, ms, len, &env, ...);
 *     wrap env as application/pkcs7-mime; smime-type=enveloped-data
 *          (authEnveloped-data for the GCM ciphers)
 *
 * Receiving reverses it: smime_decrypt() the envelope, parse the MIME that
 * comes out, smime_verify() the signature in it.
 *
 * Conventions: output buffers are appended to (never reset); on failure
 * nothing is appended. err/errlen receive a one-line human-readable reason
 * (may be NULL/0). OpenSSL's per-thread error queue is left empty. All
 * functions are thread-safe; keys, certificates and trust stores may be
 * shared between threads as long as nobody frees them meanwhile.
 */
#ifndef SMIME_SMIME_H
#define SMIME_SMIME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "buf.h"
#include "caps.h"
#include "status.h"

/* Our own signing or decryption identity, parsed once at start-up (or
 * reload) and reused for every message. chain excludes cert and may be
 * NULL. */
struct smime_key {
	X509 *cert;
	EVP_PKEY *pkey;
	STACK_OF(X509) *chain;
};

enum smime_cipher {
	SMIME_CIPHER_AUTO,        /* smime_choose() picks; invalid for encrypt */
	SMIME_CIPHER_AES128_CBC,  /* EnvelopedData */
	SMIME_CIPHER_AES256_CBC,  /* EnvelopedData */
	SMIME_CIPHER_AES128_GCM,  /* AuthEnvelopedData (RFC 5083/5084) */
	SMIME_CIPHER_AES256_GCM,  /* AuthEnvelopedData */
};

/*
 * Sign content[0..n) with k. md: EVP_sha256() (also when NULL), EVP_sha384()
 * or EVP_sha512(); anything else is SM_ERR_UNSUPPORTED. detached: a
 * signature for multipart/signed; otherwise opaque signed-data with the
 * content encapsulated. The SignedData carries k->cert and k->chain, and
 * signed attributes contentType, messageDigest, signingTime (clock_now()),
 * sMIMECapabilities (AES-256-GCM, AES-128-GCM, AES-256-CBC, AES-128-CBC,
 * RSAES-OAEP: what smime_decrypt handles) and sMIMEEncryptionKeyPreference
 * (issuerAndSerialNumber of k->cert, RFC 8551 §2.5.3). RSA keys sign with
 * PKCS#1 v1.5, EC keys with ECDSA. DER is appended to der_out.
 */
sm_status smime_sign(const struct smime_key *k, const EVP_MD *md, bool detached,
    const unsigned char *content, size_t n, struct buf *der_out, char *err,
    size_t errlen);

/*
 * Encrypt content[0..n) to every certificate in rcpts (at least one).
 * c: an explicit cipher (SMIME_CIPHER_AUTO is SM_ERR_ARG: choose first).
 * CBC ciphers give EnvelopedData, GCM ciphers AuthEnvelopedData. RSA
 * recipients get key transport with PKCS#1 v1.5, or RSAES-OAEP (SHA-1 and
 * MGF1-SHA-1, RFC 3560's default parameters, which is what our
 * sMIMECapabilities advertise) when oaep; EC recipients get ECDH key
 * agreement (dhSinglePass-stdDH, AES key wrap). Mixing key types is allowed
 * here; whether it is wise is policy's business (NSS refuses the whole
 * envelope, see smime_choose()). Other key types: SM_ERR_UNSUPPORTED.
 */
sm_status smime_encrypt(STACK_OF(X509) *rcpts, enum smime_cipher c, bool oaep,
    const unsigned char *content, size_t n, struct buf *der_out, char *err,
    size_t errlen);

/*
 * Streaming: content is read from a source and CMS output written to an
 * out in pieces, so neither needs to be in memory at once (a body spooled
 * to disk stays there). read() fills up to n bytes and sets *got, 0 at the
 * end; write() takes every byte or fails. A failing callback's status is
 * what the streaming call returns.
 */
struct smime_src {
	sm_status (*read)(void *arg, unsigned char *p, size_t n, size_t *got);
	void *arg;
};
struct smime_out {
	sm_status (*write)(void *arg, const unsigned char *p, size_t n);
	void *arg;
};

/*
 * smime_sign() over content read from src. detached: the signature DER is
 * appended to der_out, byte-identical to smime_sign()'s for the same
 * content, key and clock; out is unused. Opaque: the SignedData with the
 * content inside goes to out as BER (indefinite lengths, the content in
 * pieces); der_out is unused.
 */
sm_status smime_sign_stream(const struct smime_key *k, const EVP_MD *md, bool detached,
    const struct smime_src *src, struct buf *der_out, const struct smime_out *out,
    char *err, size_t errlen);

/*
 * A detached signature made while the content is written to it, for a
 * caller that produces the content anyway (the canonical entity on its way
 * into the multipart/signed): no second pass, no copy to read back.
 * smime_signer_end() appends the DER to der_out, byte-identical to
 * smime_sign()'s over the same bytes, key and clock, and frees s;
 * smime_signer_free() abandons one (NULL-safe).
 */
struct smime_signer;
sm_status smime_signer_begin(const struct smime_key *k, const EVP_MD *md,
    struct smime_signer **out, char *err, size_t errlen);
sm_status smime_signer_write(struct smime_signer *s, const unsigned char *p, size_t n);
sm_status smime_signer_end(struct smime_signer *s, struct buf *der_out, char *err,
    size_t errlen);
void smime_signer_free(struct smime_signer *s);

/* smime_encrypt() of content read from src, the envelope written to out
 * as BER (indefinite lengths, the encrypted content in pieces). */
sm_status smime_encrypt_stream(STACK_OF(X509) *rcpts, enum smime_cipher c, bool oaep,
    const struct smime_src *src, const struct smime_out *out, char *err, size_t errlen);

/*
 * smime_encrypt_stream() with the content written to it rather than read
 * from a source: the envelope goes to out as BER while the content is
 * written; smime_sealer_end() finishes it and frees s; smime_sealer_free()
 * abandons one (NULL-safe).
 */
struct smime_sealer;
sm_status smime_sealer_begin(STACK_OF(X509) *rcpts, enum smime_cipher c, bool oaep,
    const struct smime_out *out, struct smime_sealer **s, char *err, size_t errlen);
sm_status smime_sealer_write(struct smime_sealer *s, const unsigned char *p, size_t n);
sm_status smime_sealer_end(struct smime_sealer *s, char *err, size_t errlen);
void smime_sealer_free(struct smime_sealer *s);

enum smime_verify_status {
	SMIME_VERIFY_OK,
	SMIME_VERIFY_BAD_SIGNATURE,        /* signature over the attributes fails */
	SMIME_VERIFY_CONTENT_ALTERED,      /* messageDigest != digest of content */
	SMIME_VERIFY_UNTRUSTED,            /* no path to a trust anchor, or the
	                                      certificate is unfit for S/MIME signing */
	SMIME_VERIFY_EXPIRED,
	SMIME_VERIFY_NOT_YET_VALID,
	SMIME_VERIFY_SELF_SIGNED,          /* self-signed and not allowed */
	SMIME_VERIFY_UNSUPPORTED_ALGORITHM,/* e.g. MD2: cannot even be checked */
	SMIME_VERIFY_MALFORMED,            /* not a parseable SignedData */
	SMIME_VERIFY_NO_SIGNER,            /* no SignerInfo, or its certificate is
	                                      not in the message */
	SMIME_VERIFY_REVOKED,              /* the signer's certificate is revoked
	                                      (set by the gateway from the
	                                      revocation store, never by smime.c) */
};

struct smime_verify_result {
	/* The cryptographic signature over the content holds (trust aside). */
	bool signature_ok;
	/* Overall verdict: OK only when signature_ok and chain_status is OK. */
	enum smime_verify_status status;
	char reason[256];
	/* Trust of the signer's certificate at clock_now(), S/MIME signing
	 * purpose: OK, UNTRUSTED, EXPIRED, NOT_YET_VALID or SELF_SIGNED. Only
	 * meaningful when signer != NULL. */
	enum smime_verify_status chain_status;
	X509 *signer;            /* the signer's certificate (owned) */
	STACK_OF(X509) *certs;   /* every certificate in the SignedData (owned) */
	STACK_OF(X509_CRL) *crls; /* every CRL in the SignedData, NULL none (owned) */
	int digest_nid;          /* NID of the signer's digest algorithm */
	time_t signing_time;     /* signingTime attribute, 0 when absent */
	caps_t caps;             /* sMIMECapabilities; CAP_KNOWN when present */
	X509 *enc_pref;          /* certificate named by sMIMEEncryptionKeyPreference,
	                            found among certs; NULL if absent/not found (owned) */
	size_t nsigners;         /* SignerInfos in the message */
};

/*
 * Verify a SignedData (DER or BER, indefinite lengths included).
 * Detached (multipart/signed): content/clen are the signed part's bytes,
 * canonicalised to CRLF by the caller. Opaque: content == NULL, and the
 * encapsulated content is appended to content_out (if not NULL) whenever it
 * could be read, whatever the verdict.
 *
 * store: trust anchors (NULL: none, so chains are UNTRUSTED). Certificates
 * in the message serve as untrusted intermediates. allow_self_signed: a
 * self-signed signer certificate counts as trusted (still checked for
 * validity and purpose). Times are clock_now().
 *
 * With several SignerInfos, the first whose signature verifies is reported
 * (signer, digest, attributes); if none does, the first one's failure is.
 *
 * Returns SM_OK when res holds a verdict (which may be any status), or
 * SM_ERR_PARSE (res->status MALFORMED) for input that is no SignedData,
 * SM_ERR_NOMEM, SM_ERR_ARG. res is always initialised and must be released
 * with smime_verify_result_free().
 */
sm_status smime_verify(const unsigned char *der, size_t n,
    const unsigned char *content, size_t clen, X509_STORE *store,
    bool allow_self_signed, struct smime_verify_result *res,
    struct buf *content_out);

/*
 * Bounds on the work one signature may cause; smime_verify() uses
 * SMIME_LIMITS_DEFAULT. The counts are taken in the raw BER before OpenSSL
 * decodes anything (cmsscan.h); more than a limit gives the verdict
 * MALFORMED ("refused unread: ...") without decoding. Whatever the limits,
 * the content is digested once per distinct digest the signers use (never
 * once per digestAlgorithms entry), and a signer or chain certificate is
 * used only with an acceptable key (smime_key_fit()).
 */
struct smime_limits {
	size_t max_signers;   /* SignerInfos */
	size_t max_digests;   /* digestAlgorithms entries */
	size_t max_certs;     /* certificates in the bag */
};
#define SMIME_LIMITS_DEFAULT { 4, 16, 50 }

sm_status smime_verify_bounded(const unsigned char *der, size_t n,
    const unsigned char *content, size_t clen, X509_STORE *store,
    bool allow_self_signed, const struct smime_limits *lim,
    struct smime_verify_result *res, struct buf *content_out);

/*
 * A detached signature over content read from a BIO to its end, in chunks
 * (a spooled body is never copied whole). The caller's BIO gives the
 * canonical (CRLF) form and stays the caller's; 0 from BIO_read is the end,
 * less an error (verdict MALFORMED, SM_ERR_PARSE). Otherwise the same
 * verdicts and returns as smime_verify_bounded().
 */
sm_status smime_verify_stream(const unsigned char *der, size_t n, BIO *content,
    X509_STORE *store, bool allow_self_signed, const struct smime_limits *lim,
    struct smime_verify_result *res);

/*
 * Is pkey a key we spend work on? RSA (and RSA-PSS) from 2048 to 16384
 * bits with a public exponent of at most 32 bits; EC on a named curve. DSA
 * and everything else: no. Writes why not into why.
 */
bool smime_key_fit(const EVP_PKEY *pkey, char *why, size_t whylen);
void smime_verify_result_free(struct smime_verify_result *res);
const char *smime_verify_status_name(enum smime_verify_status s); /* "bad-signature" … */

/*
 * Decrypt EnvelopedData or AuthEnvelopedData with whichever of keys[]
 * matches a RecipientInfo (by certificate: issuerAndSerialNumber or
 * subjectKeyIdentifier), so renewed and expired keys still decrypt old mail.
 * Plaintext is appended to out only when everything (padding, GCM tag)
 * checked out. Returns SM_ERR_NOKEY when no key matches a recipient,
 * SM_ERR_PARSE when der is no envelope, SM_ERR_UNSUPPORTED for a content
 * cipher the loaded providers lack (RC2 and DES unless smime_enable_legacy()
 * was called), SM_ERR_CRYPTO for a corrupt envelope (bad padding, GCM tag,
 * or a recipient entry for our certificate that our key does not open: that
 * one goes on with a random content key, as OpenSSL does without
 * CMS_DEBUG_DECRYPT, so both fail alike and no padding oracle exists; with
 * CBC, 1 in 256 such envelopes "decrypts" to garbage, which carries no valid
 * signature).
 */
sm_status smime_decrypt(const unsigned char *der, size_t n,
    const struct smime_key *keys, size_t nkeys, struct buf *out, char *err,
    size_t errlen);

/*
 * Opt in to decrypting inbound mail that uses ciphers only OpenSSL's legacy
 * provider implements (RC2, DES; 3DES needs nothing). Loads the legacy and
 * default providers into the default library context; call once at start-up
 * before other threads run. Our own signatures and envelopes never use
 * these algorithms: they always name their algorithms explicitly.
 * SM_ERR_UNSUPPORTED when the provider module is not installed.
 */
sm_status smime_enable_legacy(char *err, size_t errlen);

enum smime_content_type {
	SMIME_CT_INVALID,          /* not a CMS ContentInfo */
	SMIME_CT_SIGNED,           /* signed-data with at least one signer */
	SMIME_CT_ENVELOPED,        /* enveloped-data */
	SMIME_CT_AUTH_ENVELOPED,   /* authEnveloped-data (RFC 5083) */
	SMIME_CT_CERTS_ONLY,       /* signed-data without signers */
	SMIME_CT_OTHER,            /* any other CMS content type */
};
/* What is inside a CMS blob (DER or BER). Cheap for envelopes: only the
 * outer ContentInfo is read; signed-data is parsed to count signers. */
enum smime_content_type smime_content_type(const unsigned char *der, size_t n);
const char *smime_content_type_name(enum smime_content_type t); /* smime-type value */

/* Every certificate in a SignedData (also certs-only), for `cert import`.
 * *out receives a new stack the caller frees with
 * sk_X509_pop_free(*out, X509_free); an empty set is SM_ERR_NOTFOUND. */
sm_status smime_get_certs(const unsigned char *der, size_t n,
    STACK_OF(X509) **out);

/*
 * Cipher choice, a pure function of what we know about the recipients.
 * caps[i], key_types[i] (EVP_PKEY_RSA or EVP_PKEY_EC) describe recipient i.
 *
 * configured != AUTO wins. AUTO picks the strongest of AES-256-GCM,
 * AES-128-GCM, AES-256-CBC, AES-128-CBC that every recipient advertises; a
 * recipient without CAP_KNOWN counts as advertising AES-256-CBC and
 * AES-128-CBC (RFC 8551 makes AES-128-CBC mandatory; the design prefers
 * 256 when nothing is known). When no AES cipher is common to all (someone
 * advertises only 3DES/RC2), AES-128-CBC — the one every RFC 8551 agent must
 * decrypt — is used: never 3DES or RC2. So a gpgsm user (AES-128-CBC, 3DES)
 * means AES-128-CBC.
 *
 * oaep: oaep_configured, or every RSA recipient advertises RSAES-OAEP (and
 * there is at least one). mixed_key_types: both RSA and EC recipients are
 * present — NSS rejects such an envelope outright, so callers split.
 * Other key types are SM_ERR_UNSUPPORTED; n == 0 is SM_ERR_ARG.
 */
struct smime_choice {
	enum smime_cipher cipher;
	bool oaep;
	bool mixed_key_types;
	char reason[128];
};
sm_status smime_choose(const caps_t *caps, const int *key_types, size_t n,
    enum smime_cipher configured, bool oaep_configured,
    struct smime_choice *out);

/* "auto", "aes-128-cbc", "aes-256-cbc", "aes-128-gcm", "aes-256-gcm". */
const char *smime_cipher_name(enum smime_cipher c);
/* Parse one of the names above (case-insensitive); SM_ERR_ARG otherwise. */
sm_status smime_cipher_parse(const char *name, enum smime_cipher *out);
/* smime-type for an envelope made with c: "enveloped-data" or
 * "authEnveloped-data". */
const char *smime_cipher_smime_type(enum smime_cipher c);
/* micalg parameter (RFC 8551 §3.5.3.2): "sha-256", "sha-384", "sha-512",
 * also "sha-1"/"md5" for what we may receive; "unknown" otherwise. */
const char *smime_micalg(const EVP_MD *md);

/*
 * Load our identity from one PEM file: private key (PKCS#8 or traditional,
 * unencrypted), its certificate, and any further certificates as the chain
 * (in file order). Refuses a file that group or others may read or write
 * (SM_ERR_PERM, the message names the file and its mode). SM_ERR_NOKEY when
 * there is no key or no certificate matching it, SM_ERR_PARSE for a broken
 * or encrypted key, SM_ERR_IO when unreadable. out is zeroed on failure.
 */
sm_status smime_key_load_pem(const char *path, struct smime_key *out,
    char *err, size_t errlen);
/* Releases the members (not k itself); safe on a zeroed struct. */
void smime_key_free(struct smime_key *k);

#endif
