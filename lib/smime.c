/*
 * smime.c — the CMS layer on top of OpenSSL 3.0's CMS API: what the
 * parts share (errors, BIOs, tables), verification, choice and key files.
 * Signing is in smime_sign.c, envelopes in smime_envelope.c.
 *
 * OpenSSL does the cryptography; this file decides what goes into our
 * signatures and envelopes (attributes, ciphers, padding), and turns what
 * comes out of theirs into plain verdicts. Design notes are next to the code
 * they explain; the contract is in smime.h.
 */
#include "smime.h"
#include "smime_int.h"
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#include "clock.h"
#include "cmsscan.h"

/* Private key files are tiny; anything bigger is not what we think. */
/* Read size when streaming content through OpenSSL's digest BIOs. */
#define CHUNK 65536

/* ---------------------------------------------------------------- errors */

/* The most specific thing OpenSSL said, as text: the last error queued is
 * the innermost cause ("wrong tag", "bad decrypt"). */
static const char *
ossl_reason(char *tmp, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r;

	if (e == 0)
		return "no details from OpenSSL";
	r = ERR_reason_error_string(e);
	if (r != NULL)
		return r;
	ERR_error_string_n(e, tmp, len);
	return tmp;
}

/* "what: OpenSSL reason" into err; clears the queue. */
void
seterr_ossl(char *err, size_t errlen, const char *what)
{
	char tmp[256];

	sm_seterr(err, errlen, "%s: %s", what, ossl_reason(tmp, sizeof(tmp)));
	ERR_clear_error();
}

/*
 * Empty the error queue, keeping the innermost reason as text, and tell
 * whether it held an "algorithm not available" error (a cipher or digest
 * the loaded providers lack).
 */
bool
ossl_drain(char *text, size_t len)
{
	unsigned long e, last = 0;
	bool unsupported = false;

	while ((e = ERR_get_error()) != 0) {
		if ((ERR_GET_LIB(e) == ERR_LIB_CMS &&
		    (ERR_GET_REASON(e) == CMS_R_UNKNOWN_CIPHER ||
		     ERR_GET_REASON(e) == CMS_R_UNKNOWN_DIGEST_ALGORITHM)) ||
		    ERR_GET_REASON(e) == ERR_R_UNSUPPORTED)
			unsupported = true;
		last = e;
	}
	if (text != NULL && len > 0) {
		const char *r = last ? ERR_reason_error_string(last) : NULL;

		if (r != NULL)
			snprintf(text, len, "%s", r);
		else if (last)
			ERR_error_string_n(last, text, len);
		else
			snprintf(text, len, "no details from OpenSSL");
	}
	return unsupported;
}

/* ------------------------------------------------------------ buf sink BIO */

/*
 * A write-only BIO that appends to a struct buf, so decrypted or extracted
 * content lands in the caller's buffer without an intermediate memory BIO
 * (one copy less of a message body that may be tens of megabytes).
 */
static BIO_METHOD *sink_method;
static pthread_once_t sink_once = PTHREAD_ONCE_INIT;

static int
sink_write(BIO *b, const char *data, int len)
{
	struct buf *out = BIO_get_data(b);

	if (len <= 0)
		return 0;
	if (buf_append(out, data, (size_t)len) != SM_OK)
		return -1;
	return len;
}

static long
sink_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
sink_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void
sink_init_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "smime buf sink");

	if (m == NULL)
		return;
	if (!BIO_meth_set_write(m, sink_write) ||
	    !BIO_meth_set_ctrl(m, sink_ctrl) ||
	    !BIO_meth_set_create(m, sink_create)) {
		BIO_meth_free(m);
		return;
	}
	sink_method = m;
}

BIO *
sink_new(struct buf *out)
{
	BIO *b;

	if (pthread_once(&sink_once, sink_init_method) != 0 ||
	    sink_method == NULL)
		return NULL;
	b = BIO_new(sink_method);
	if (b != NULL)
		BIO_set_data(b, out);
	return b;
}

/* ------------------------------------------------------ stream BIOs */

/*
 * BIOs over a caller's source or out (smime.h), for the streaming sign
 * and encrypt: OpenSSL pulls the content in pieces and pushes the CMS
 * encoding out in pieces. The callback's failure status is kept, so the
 * caller learns "disk full" rather than "crypto error".
 */
struct cb_bio {
	const struct smime_src *src;
	const struct smime_out *out;
	sm_status st;
};

static BIO_METHOD *cb_method;
static pthread_once_t cb_once = PTHREAD_ONCE_INIT;

static int
cb_read(BIO *b, char *data, int len)
{
	struct cb_bio *c = BIO_get_data(b);
	size_t got = 0;

	BIO_clear_retry_flags(b);
	if (c == NULL || c->src == NULL || len <= 0)
		return 0;
	if ((c->st = c->src->read(c->src->arg, (unsigned char *)data, (size_t)len, &got)) != SM_OK)
		return -1;
	return (int)got;
}

static int
cb_write(BIO *b, const char *data, int len)
{
	struct cb_bio *c = BIO_get_data(b);

	if (c == NULL || c->out == NULL || len < 0)
		return -1;
	if (len == 0)
		return 0;
	if ((c->st = c->out->write(c->out->arg, (const unsigned char *)data, (size_t)len)) != SM_OK)
		return -1;
	return len;
}

static int
cb_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static void
cb_init_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "smime stream");

	if (m == NULL)
		return;
	if (!BIO_meth_set_read(m, cb_read) || !BIO_meth_set_write(m, cb_write) ||
	    !BIO_meth_set_ctrl(m, sink_ctrl) || !BIO_meth_set_create(m, sink_create) ||
	    !BIO_meth_set_destroy(m, cb_destroy)) {
		BIO_meth_free(m);
		return;
	}
	cb_method = m;
}

static BIO *
cb_new(const struct smime_src *src, const struct smime_out *out)
{
	struct cb_bio *c;
	BIO *b;

	if (pthread_once(&cb_once, cb_init_method) != 0 || cb_method == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((b = BIO_new(cb_method)) == NULL) {
		free(c);
		return NULL;
	}
	c->src = src;
	c->out = out;
	BIO_set_data(b, c);
	return b;
}

BIO *
src_bio_new(const struct smime_src *src)
{
	return cb_new(src, NULL);
}

BIO *
out_bio_new(const struct smime_out *out)
{
	return cb_new(NULL, out);
}

sm_status
src_bio_status(BIO *b, sm_status fallback)
{
	struct cb_bio *c = b ? BIO_get_data(b) : NULL;

	return c != NULL && c->st != SM_OK ? c->st : fallback;
}

sm_status
out_bio_status(BIO *b, sm_status fallback)
{
	return src_bio_status(b, fallback);
}

/* Undo what was appended to out since it had length keep; wipe it, since it
 * may be plaintext we must not leave lying around. */
void
buf_truncate_wipe(struct buf *out, size_t keep)
{
	if (out->data != NULL && out->len > keep) {
		OPENSSL_cleanse(out->data + keep, out->len - keep);
		out->len = keep;
		out->data[keep] = '\0';
	}
}

/* --------------------------------------------------------------- helpers */

/* A read-only memory BIO over the caller's bytes (no copy). */
BIO *
membio(const unsigned char *p, size_t n)
{
	static const unsigned char empty[1];

	if (n > INT_MAX)
		return NULL;
	return BIO_new_mem_buf(n ? (const void *)p : (const void *)empty,
	    (int)n);
}

CMS_ContentInfo *
cms_parse(const unsigned char *der, size_t n)
{
	BIO *in;
	CMS_ContentInfo *cms = NULL;

	if (der == NULL || n == 0 || (in = membio(der, n)) == NULL)
		return NULL;
	/* d2i_CMS_bio reads BER too: indefinite lengths and constructed
	 * OCTET STRINGs (gpgsm writes both) are collected. */
	cms = d2i_CMS_bio(in, NULL);
	BIO_free(in);
	return cms;
}

/* DER of cms appended to out, encoded straight into the buffer. */
sm_status
cms_to_buf(CMS_ContentInfo *cms, struct buf *out)
{
	int len = i2d_CMS_ContentInfo(cms, NULL);
	unsigned char *p;

	if (len <= 0)
		return SM_ERR_CRYPTO;
	if (buf_reserve(out, (size_t)len) != SM_OK)
		return SM_ERR_NOMEM;
	p = out->data + out->len;
	if (i2d_CMS_ContentInfo(cms, &p) != len)
		return SM_ERR_CRYPTO;
	out->len += (size_t)len;
	out->data[out->len] = '\0';
	return SM_OK;
}

void
name_str(const X509 *x, char *s, size_t len)
{
	if (x == NULL || X509_NAME_oneline(X509_get_subject_name(x), s,
	    (int)len) == NULL)
		snprintf(s, len, "(unknown)");
}

/* ----------------------------------------------------------- small tables */

const char *
smime_cipher_name(enum smime_cipher c)
{
	switch (c) {
	case SMIME_CIPHER_AUTO: return "auto";
	case SMIME_CIPHER_AES128_CBC: return "aes-128-cbc";
	case SMIME_CIPHER_AES256_CBC: return "aes-256-cbc";
	case SMIME_CIPHER_AES128_GCM: return "aes-128-gcm";
	case SMIME_CIPHER_AES256_GCM: return "aes-256-gcm";
	}
	return "unknown";
}

sm_status
smime_cipher_parse(const char *name, enum smime_cipher *out)
{
	static const enum smime_cipher all[] = {
		SMIME_CIPHER_AUTO, SMIME_CIPHER_AES128_CBC,
		SMIME_CIPHER_AES256_CBC, SMIME_CIPHER_AES128_GCM,
		SMIME_CIPHER_AES256_GCM,
	};

	if (name == NULL || out == NULL)
		return SM_ERR_ARG;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcasecmp(name, smime_cipher_name(all[i])) == 0) {
			*out = all[i];
			return SM_OK;
		}
	}
	return SM_ERR_ARG;
}

const char *
smime_cipher_smime_type(enum smime_cipher c)
{
	return c == SMIME_CIPHER_AES128_GCM || c == SMIME_CIPHER_AES256_GCM
	    ? "authEnveloped-data" : "enveloped-data";
}

/* The content ciphers, fetched once from the providers (a fetch by name
 * on every message takes OpenSSL's locks for nothing); kept for the life
 * of the process. */
static EVP_CIPHER *ciphers[4];
static pthread_once_t ciphers_once = PTHREAD_ONCE_INIT;

static void
ciphers_fetch(void)
{
	static const char *const names[4] = { "AES-128-CBC", "AES-256-CBC", "AES-128-GCM",
		"AES-256-GCM" };

	for (size_t i = 0; i < 4; i++)
		ciphers[i] = EVP_CIPHER_fetch(NULL, names[i], NULL);
	ERR_clear_error();
}

const EVP_CIPHER *
cipher_evp(enum smime_cipher c)
{
	if (pthread_once(&ciphers_once, ciphers_fetch) != 0)
		return NULL;
	switch (c) {
	case SMIME_CIPHER_AES128_CBC: return ciphers[0];
	case SMIME_CIPHER_AES256_CBC: return ciphers[1];
	case SMIME_CIPHER_AES128_GCM: return ciphers[2];
	case SMIME_CIPHER_AES256_GCM: return ciphers[3];
	case SMIME_CIPHER_AUTO: break;
	}
	return NULL;
}

const char *
smime_micalg(const EVP_MD *md)
{
	switch (md != NULL ? EVP_MD_get_type(md) : NID_undef) {
	case NID_sha256: return "sha-256";
	case NID_sha384: return "sha-384";
	case NID_sha512: return "sha-512";
	case NID_sha224: return "sha-224";
	case NID_sha1: return "sha-1";
	case NID_md5: return "md5";
	}
	return "unknown";
}

const char *
smime_verify_status_name(enum smime_verify_status s)
{
	switch (s) {
	case SMIME_VERIFY_OK: return "ok";
	case SMIME_VERIFY_BAD_SIGNATURE: return "bad-signature";
	case SMIME_VERIFY_CONTENT_ALTERED: return "content-altered";
	case SMIME_VERIFY_UNTRUSTED: return "untrusted";
	case SMIME_VERIFY_EXPIRED: return "expired";
	case SMIME_VERIFY_NOT_YET_VALID: return "not-yet-valid";
	case SMIME_VERIFY_SELF_SIGNED: return "self-signed";
	case SMIME_VERIFY_UNSUPPORTED_ALGORITHM: return "unsupported-algorithm";
	case SMIME_VERIFY_MALFORMED: return "malformed";
	case SMIME_VERIFY_NO_SIGNER: return "no-signer";
	case SMIME_VERIFY_REVOKED: return "revoked";
	}
	return "unknown";
}

const char *
smime_content_type_name(enum smime_content_type t)
{
	switch (t) {
	case SMIME_CT_INVALID: return "invalid";
	case SMIME_CT_SIGNED: return "signed-data";
	case SMIME_CT_ENVELOPED: return "enveloped-data";
	case SMIME_CT_AUTH_ENVELOPED: return "authEnveloped-data";
	case SMIME_CT_CERTS_ONLY: return "certs-only";
	case SMIME_CT_OTHER: return "other";
	}
	return "invalid";
}


sm_status
smime_enable_legacy(char *err, size_t errlen)
{
	/* Kept for the life of the process: providers stay loaded. */
	static OSSL_PROVIDER *legacy, *deflt;

	ERR_clear_error();
	sm_seterr(err, errlen, "ok");
	/* Loading any provider explicitly switches off the implicit default
	 * one, so both are loaded. */
	if (deflt == NULL && (deflt = OSSL_PROVIDER_load(NULL, "default")) ==
	    NULL) {
		seterr_ossl(err, errlen, "loading OpenSSL's default provider");
		return SM_ERR_UNSUPPORTED;
	}
	if (legacy == NULL && (legacy = OSSL_PROVIDER_load(NULL, "legacy")) ==
	    NULL) {
		seterr_ossl(err, errlen, "loading OpenSSL's legacy provider");
		return SM_ERR_UNSUPPORTED;
	}
	return SM_OK;
}

/* ---------------------------------------------------------- content type */

enum smime_content_type
smime_content_type(const unsigned char *der, size_t n)
{
	const unsigned char *p = der, *q;
	long len = 0;
	/* ASN1_get_object leaves these unset on some errors. */
	int tag = -1, cls = -1, ret, nid;
	ASN1_OBJECT *oid = NULL;
	enum smime_content_type t = SMIME_CT_INVALID;

	if (der == NULL || n == 0 || n > LONG_MAX)
		return SMIME_CT_INVALID;
	/* ContentInfo ::= SEQUENCE { contentType OID, [0] content }: read
	 * only the header and the OID. */
	ret = ASN1_get_object(&p, &len, &tag, &cls, (long)n);
	if ((ret & 0x80) || tag != V_ASN1_SEQUENCE ||
	    cls != V_ASN1_UNIVERSAL || !(ret & V_ASN1_CONSTRUCTED))
		goto done;
	q = p;
	oid = d2i_ASN1_OBJECT(NULL, &q, (long)n - (p - der));
	if (oid == NULL)
		goto done;
	nid = OBJ_obj2nid(oid);
	switch (nid) {
	case NID_pkcs7_enveloped:
		t = SMIME_CT_ENVELOPED;
		break;
	case NID_id_smime_ct_authEnvelopedData:
		t = SMIME_CT_AUTH_ENVELOPED;
		break;
	case NID_pkcs7_signed: {
		/* Signers or none (certs-only): counted in the BER, not decoded
		 * (smime_verify parses it, once). */
		struct cmsscan_counts c;

		if (cmsscan_signed(der, n, NULL, &c) != SM_OK)
			goto done;
		t = c.nsigners > 0 ? SMIME_CT_SIGNED : SMIME_CT_CERTS_ONLY;
		break;
	}
	default:
		t = SMIME_CT_OTHER;
		break;
	}
done:
	ASN1_OBJECT_free(oid);
	ERR_clear_error();
	return t;
}

sm_status
smime_get_certs(const unsigned char *der, size_t n, STACK_OF(X509) **out)
{
	CMS_ContentInfo *cms = NULL;
	sm_status st = SM_ERR_PARSE;

	if (out == NULL)
		return SM_ERR_ARG;
	*out = NULL;
	if ((cms = cms_parse(der, n)) == NULL ||
	    OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
		goto done;
	*out = CMS_get1_certs(cms);
	st = *out != NULL && sk_X509_num(*out) > 0 ? SM_OK : SM_ERR_NOTFOUND;
	if (st != SM_OK) {
		sk_X509_pop_free(*out, X509_free);
		*out = NULL;
	}
done:
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return st;
}

/* ---------------------------------------------------------------- verify */

static enum smime_verify_status
map_x509_error(int e)
{
	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return SMIME_VERIFY_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return SMIME_VERIFY_NOT_YET_VALID;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		return SMIME_VERIFY_SELF_SIGNED;
	default:
		return SMIME_VERIFY_UNTRUSTED;
	}
}

/* One X509_verify_cert run; returns the X509_V_ERR code (X509_V_OK). */
static int
verify_once(X509_STORE *store, X509 *signer, STACK_OF(X509) *untrusted,
    int *depth, X509 **bad)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int e = X509_V_ERR_OUT_OF_MEM;

	*depth = 0;
	*bad = NULL;
	if (ctx == NULL || !X509_STORE_CTX_init(ctx, store, signer, untrusted))
		goto done;
	/* smimesign: keyUsage digitalSignature or nonRepudiation, EKU
	 * emailProtection when an EKU is present, and CA certificates fit to
	 * issue S/MIME certificates. Time: the injectable clock. */
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SMIME_SIGN);
	X509_STORE_CTX_set_time(ctx, 0, clock_now());
	if (X509_verify_cert(ctx) == 1) {
		e = X509_V_OK;
	} else {
		e = X509_STORE_CTX_get_error(ctx);
		*depth = X509_STORE_CTX_get_error_depth(ctx);
		*bad = X509_STORE_CTX_get_current_cert(ctx);
		if (*bad != NULL)
			X509_up_ref(*bad);
		if (e == X509_V_OK)
			e = X509_V_ERR_UNSPECIFIED;
	}
done:
	X509_STORE_CTX_free(ctx);
	return e;
}

static enum smime_verify_status
check_chain(X509 *signer, STACK_OF(X509) *untrusted, X509_STORE *store,
    bool allow_self_signed, char *reason, size_t rlen)
{
	X509_STORE *own = NULL;
	X509 *bad = NULL;
	enum smime_verify_status s = SMIME_VERIFY_UNTRUSTED;
	int e, depth;
	char who[256];

	/* No anchors: an empty store still reports self-signed, expired
	 * (for self-signed) and missing issuers the usual way. */
	if (store == NULL && (store = own = X509_STORE_new()) == NULL) {
		sm_seterr(reason, rlen, "out of memory checking the chain");
		goto done;
	}
	e = verify_once(store, signer, untrusted, &depth, &bad);
	if (e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT && allow_self_signed) {
		/* Opted in: the certificate is its own anchor, and still has
		 * to be valid now and fit for S/MIME signing. */
		X509_STORE_free(own);
		X509_free(bad);
		bad = NULL;
		if ((own = X509_STORE_new()) == NULL ||
		    !X509_STORE_add_cert(own, signer)) {
			sm_seterr(reason, rlen, "out of memory checking the chain");
			goto done;
		}
		e = verify_once(own, signer, untrusted, &depth, &bad);
	}
	if (e == X509_V_OK) {
		s = SMIME_VERIFY_OK;
		sm_seterr(reason, rlen, "certificate chain trusted");
		goto done;
	}
	s = map_x509_error(e);
	name_str(bad != NULL ? bad : signer, who, sizeof(who));
	sm_seterr(reason, rlen, "%s (%s)", X509_verify_cert_error_string(e),
	    who);
done:
	X509_free(bad);
	X509_STORE_free(own);
	ERR_clear_error();
	return s;
}

static time_t
signer_time(CMS_SignerInfo *si)
{
	int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
	X509_ATTRIBUTE *a = idx >= 0 ? CMS_signed_get_attr(si, idx) : NULL;
	ASN1_TYPE *t = a != NULL ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
	struct tm tm;

	if (t == NULL || (t->type != V_ASN1_UTCTIME &&
	    t->type != V_ASN1_GENERALIZEDTIME))
		return 0;
	memset(&tm, 0, sizeof(tm));
	if (!ASN1_TIME_to_tm((ASN1_TIME *)t->value.asn1_string, &tm))
		return 0;
	return timegm(&tm);
}

static caps_t
signer_caps(CMS_SignerInfo *si)
{
	ASN1_STRING *s = CMS_signed_get0_data_by_OBJ(si,
	    OBJ_nid2obj(NID_SMIMECapabilities), -3, V_ASN1_SEQUENCE);
	STACK_OF(X509_ALGOR) *algs;
	const unsigned char *p;
	caps_t caps = 0;

	if (s == NULL)
		return 0;
	p = s->data;
	algs = d2i_X509_ALGORS(NULL, &p, s->length);
	if (algs == NULL)
		return 0;
	caps = CAP_KNOWN;
	for (int i = 0; i < sk_X509_ALGOR_num(algs); i++) {
		const ASN1_OBJECT *obj;

		X509_ALGOR_get0(&obj, NULL, NULL, sk_X509_ALGOR_value(algs, i));
		switch (OBJ_obj2nid(obj)) {
		case NID_aes_128_cbc: caps |= CAP_AES128_CBC; break;
		case NID_aes_192_cbc: caps |= CAP_AES192_CBC; break;
		case NID_aes_256_cbc: caps |= CAP_AES256_CBC; break;
		case NID_aes_128_gcm: caps |= CAP_AES128_GCM; break;
		case NID_aes_192_gcm: caps |= CAP_AES192_GCM; break;
		case NID_aes_256_gcm: caps |= CAP_AES256_GCM; break;
		case NID_des_ede3_cbc: caps |= CAP_DES3; break;
		case NID_rc2_cbc: caps |= CAP_RC2; break;
		case NID_rsaesOaep: caps |= CAP_RSA_OAEP; break;
		default: break;
		}
	}
	sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
	return caps;
}

static bool
ski_matches(X509 *x, const unsigned char *ski, long len)
{
	const ASN1_OCTET_STRING *own = X509_get0_subject_key_id(x);

	return own != NULL && own->length == len &&
	    memcmp(own->data, ski, (size_t)len) == 0;
}

/*
 * Resolve sMIMEEncryptionKeyPreference within the message's certificates.
 * The value is a CHOICE of implicitly tagged alternatives:
 *   [0] IssuerAndSerialNumber, [1] RecipientKeyIdentifier (starts with the
 *   subjectKeyIdentifier OCTET STRING), [2] SubjectKeyIdentifier.
 */
static X509 *
signer_enc_pref(CMS_SignerInfo *si, STACK_OF(X509) *certs)
{
	int idx = CMS_signed_get_attr_by_NID(si, NID_id_smime_aa_encrypKeyPref,
	    -1);
	X509_ATTRIBUTE *a = idx >= 0 ? CMS_signed_get_attr(si, idx) : NULL;
	ASN1_TYPE *t = a != NULL ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
	const unsigned char *p, *end, *q;
	X509_NAME *issuer = NULL;
	ASN1_INTEGER *serial = NULL;
	ASN1_OCTET_STRING *ski = NULL;
	X509 *found = NULL;
	long len = 0, ilen;
	int tag = -1, cls = -1, ret;

	/* Context-tagged values decode as V_ASN1_OTHER holding the whole
	 * encoding, tag included; freshly built ones are V_ASN1_SEQUENCE. */
	if (t == NULL || (t->type != V_ASN1_OTHER &&
	    t->type != V_ASN1_SEQUENCE) || t->value.asn1_string == NULL)
		return NULL;
	p = t->value.asn1_string->data;
	end = p + t->value.asn1_string->length;
	ret = ASN1_get_object(&p, &len, &tag, &cls, end - p);
	if ((ret & 0x80) || cls != V_ASN1_CONTEXT_SPECIFIC || (ret & 0x01))
		return NULL;
	end = p + len;
	switch (tag) {
	case 0:
		q = p;
		if ((issuer = d2i_X509_NAME(NULL, &q, end - q)) == NULL ||
		    (serial = d2i_ASN1_INTEGER(NULL, &q, end - q)) == NULL)
			goto done;
		for (int i = 0; i < sk_X509_num(certs) && found == NULL; i++) {
			X509 *x = sk_X509_value(certs, i);

			if (X509_NAME_cmp(X509_get_issuer_name(x), issuer) == 0 &&
			    ASN1_INTEGER_cmp(X509_get0_serialNumber(x),
			        serial) == 0)
				found = x;
		}
		break;
	case 1:
		q = p;
		if ((ski = d2i_ASN1_OCTET_STRING(NULL, &q, end - q)) == NULL)
			goto done;
		p = ski->data;
		len = ski->length;
		/* fall through */
	case 2:
		ilen = len;
		for (int i = 0; i < sk_X509_num(certs) && found == NULL; i++)
			if (ski_matches(sk_X509_value(certs, i), p, ilen))
				found = sk_X509_value(certs, i);
		break;
	default:
		break;
	}
	if (found != NULL)
		X509_up_ref(found);
done:
	X509_NAME_free(issuer);
	ASN1_INTEGER_free(serial);
	ASN1_OCTET_STRING_free(ski);
	return found;
}

/* Is the digest algorithm of si one the default provider implements? */
static bool
digest_supported(int nid)
{
	EVP_MD *md;

	if (nid == NID_undef)
		return false;
	md = EVP_MD_fetch(NULL, OBJ_nid2sn(nid), NULL);
	EVP_MD_free(md);
	ERR_clear_error();
	return md != NULL;
}

bool
smime_key_fit(const EVP_PKEY *pkey, char *why, size_t whylen)
{
	BIGNUM *e = NULL;
	char curve[80];
	int bits, eb, explicit = 0;

	sm_seterr(why, whylen, "ok");
	if (pkey == NULL) {
		sm_seterr(why, whylen, "no public key");
		return false;
	}
	bits = EVP_PKEY_get_bits(pkey);
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		if (bits < 2048 || bits > 16384) {
			sm_seterr(why, whylen, "RSA key of %d bits (2048 to 16384 "
			    "accepted)", bits);
			return false;
		}
		if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e)) {
			ERR_clear_error();
			sm_seterr(why, whylen, "RSA key without a readable exponent");
			return false;
		}
		eb = BN_num_bits(e);
		BN_free(e);
		if (eb > 32) {
			sm_seterr(why, whylen, "RSA public exponent of %d bits (at "
			    "most 32 accepted)", eb);
			return false;
		}
		return true;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_utf8_string_param(pkey,
		    OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve), NULL) ||
		    (EVP_PKEY_get_int_param(pkey,
		    OSSL_PKEY_PARAM_EC_DECODED_FROM_EXPLICIT_PARAMS, &explicit) &&
		    explicit)) {
			ERR_clear_error();
			sm_seterr(why, whylen, "EC key with explicit curve "
			    "parameters (named curves only)");
			return false;
		}
		return true;
	case EVP_PKEY_DSA:
		sm_seterr(why, whylen, "DSA key (not accepted)");
		return false;
	default:
		sm_seterr(why, whylen, "%s key (not accepted)",
		    OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
		return false;
	}
}

/* The certificates of the bag whose keys we would check a signature with:
 * a chain is built only through those. NULL when out of memory. */
static STACK_OF(X509) *
fit_certs(STACK_OF(X509) *certs)
{
	STACK_OF(X509) *out = sk_X509_new_null();

	for (int i = 0; out != NULL && i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);

		if (smime_key_fit(X509_get0_pubkey(x), NULL, 0) &&
		    !sk_X509_push(out, x)) {
			sk_X509_free(out);
			out = NULL;
		}
	}
	ERR_clear_error();
	return out;
}

/* Per-signer outcome while verifying. */
struct si_verdict {
	enum smime_verify_status status;
	char reason[200];
};

static void
verdict(struct si_verdict *v, enum smime_verify_status s, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
static void
verdict(struct si_verdict *v, enum smime_verify_status s, const char *fmt, ...)
{
	va_list ap;

	v->status = s;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
}

/* Feed the content through OpenSSL's digest BIOs. Opaque content is
 * copied to out on the way. SM_ERR_PARSE when the chain cannot be read
 * (broken encapsulated content), SM_ERR_NOMEM when out cannot grow. */
static sm_status
pump(BIO *chain, struct buf *out)
{
	unsigned char *chunk = OPENSSL_malloc(CHUNK);
	sm_status st = SM_ERR_NOMEM;
	int r;

	if (chunk == NULL)
		return SM_ERR_NOMEM;
	while ((r = BIO_read(chain, chunk, CHUNK)) > 0)
		if (out != NULL && buf_append(out, chunk, (size_t)r) != SM_OK)
			goto done;
	/* Our sources are memory BIOs: 0 is the end, anything below an
	 * error (they never ask for a retry). */
	st = r == 0 ? SM_OK : SM_ERR_PARSE;
done:
	OPENSSL_free(chunk);
	return st;
}

/* The content bytes through one digest BIO per distinct digest of the
 * signers still in the running (CMS_dataInit stacks one per digestAlgorithms
 * entry, so that thousands of entries cost thousands of passes). *dcont
 * gets the source BIO: the detached content, or the encapsulated one. NULL
 * when out of memory or when there is no content to read. */
static BIO *
digest_chain(CMS_ContentInfo *cms, const unsigned char *content, size_t clen,
    STACK_OF(CMS_SignerInfo) *sis, struct si_verdict *v, int nsi, BIO **dcont)
{
	ASN1_OCTET_STRING **pos;
	BIO *chain, *b;
	int seen[8], nseen = 0;

	if (content == NULL) {
		if ((pos = CMS_get0_content(cms)) == NULL || *pos == NULL)
			return NULL;
		content = (*pos)->data;
		clen = (size_t)(*pos)->length;
	}
	if ((*dcont = chain = membio(content, clen)) == NULL)
		return NULL;
	for (int i = 0; i < nsi; i++) {
		CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, i);
		X509_ALGOR *dig = NULL;
		const ASN1_OBJECT *obj;
		EVP_MD *md;
		int nid, k;

		if (v[i].status != SMIME_VERIFY_OK)
			continue;
		CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
		X509_ALGOR_get0(&obj, NULL, NULL, dig);
		nid = OBJ_obj2nid(obj);
		for (k = 0; k < nseen && seen[k] != nid; k++)
			;
		if (k < nseen)
			continue;
		if (nseen == (int)(sizeof(seen) / sizeof(seen[0])) ||
		    (md = EVP_MD_fetch(NULL, OBJ_nid2sn(nid), NULL)) == NULL) {
			verdict(&v[i], SMIME_VERIFY_UNSUPPORTED_ALGORITHM,
			    "cannot digest the content with %s", OBJ_nid2ln(nid));
			continue;
		}
		seen[nseen++] = nid;
		b = BIO_new(BIO_f_md());
		if (b == NULL || !BIO_set_md(b, md)) {
			BIO_free(b);
			EVP_MD_free(md);
			return chain;
		}
		EVP_MD_free(md);
		chain = BIO_push(b, chain);
	}
	ERR_clear_error();
	return chain;
}

static void
res_set(struct smime_verify_result *res, enum smime_verify_status s,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void
res_set(struct smime_verify_result *res, enum smime_verify_status s,
    const char *fmt, ...)
{
	va_list ap;

	res->status = s;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
}

sm_status
smime_verify(const unsigned char *der, size_t n, const unsigned char *content,
    size_t clen, X509_STORE *store, bool allow_self_signed,
    struct smime_verify_result *res, struct buf *content_out)
{
	static const struct smime_limits def = SMIME_LIMITS_DEFAULT;

	return smime_verify_bounded(der, n, content, clen, store,
	    allow_self_signed, &def, res, content_out);
}

/* Count before decoding: true when the message is within lim (or cannot
 * be walked, which OpenSSL then reports in its words); false with the
 * verdict in res otherwise. */
static bool
within_limits(const unsigned char *der, size_t n,
    const struct smime_limits *lim, struct smime_verify_result *res)
{
	struct cmsscan_limits cl = { lim->max_digests, lim->max_certs,
		lim->max_signers };
	struct cmsscan_counts c;

	if (cmsscan_signed(der, n, &cl, &c) != SM_ERR_LIMIT)
		return true;
	res_set(res, SMIME_VERIFY_MALFORMED, "refused unread: more than %zu "
	    "%s", strcmp(c.over, "SignerInfos") == 0 ? lim->max_signers :
	    strcmp(c.over, "certificates") == 0 ? lim->max_certs :
	    lim->max_digests, c.over);
	return false;
}

sm_status
smime_verify_bounded(const unsigned char *der, size_t n,
    const unsigned char *content, size_t clen, X509_STORE *store,
    bool allow_self_signed, const struct smime_limits *lim,
    struct smime_verify_result *res, struct buf *content_out)
{
	static const struct smime_limits def = SMIME_LIMITS_DEFAULT;
	CMS_ContentInfo *cms = NULL;
	STACK_OF(X509) *untrusted = NULL;
	STACK_OF(CMS_SignerInfo) *sis;
	struct si_verdict *v = NULL;
	BIO *dcont = NULL, *chain = NULL;
	size_t keep = content_out != NULL ? content_out->len : 0;
	sm_status st = SM_ERR_PARSE;
	int nsi, pick = -1, detached;
	char tmp[256], chain_reason[256];

	if (res == NULL)
		return SM_ERR_ARG;
	memset(res, 0, sizeof(*res));
	res->status = SMIME_VERIFY_MALFORMED;
	res->chain_status = SMIME_VERIFY_UNTRUSTED;
	ERR_clear_error();

	if (lim == NULL)
		lim = &def;
	if (!within_limits(der, n, lim, res)) {
		st = SM_OK;
		goto done;
	}
	if ((cms = cms_parse(der, n)) == NULL) {
		res_set(res, SMIME_VERIFY_MALFORMED, "not a CMS structure: %s",
		    ossl_reason(tmp, sizeof(tmp)));
		goto done;
	}
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		res_set(res, SMIME_VERIFY_MALFORMED, "CMS content is %s, not "
		    "signed-data", OBJ_nid2ln(OBJ_obj2nid(CMS_get0_type(cms))));
		goto done;
	}
	st = SM_ERR_NOMEM;
	res->certs = CMS_get1_certs(cms);
	res->crls = CMS_get1_crls(cms);
	if (res->certs == NULL && (res->certs = sk_X509_new_null()) == NULL)
		goto done;
	sis = CMS_get0_SignerInfos(cms);
	nsi = sk_CMS_SignerInfo_num(sis);
	res->nsigners = nsi > 0 ? (size_t)nsi : 0;
	if (nsi <= 0) {
		res_set(res, SMIME_VERIFY_NO_SIGNER, "no signer "
		    "(certificates-only message)");
		st = SM_OK;
		goto done;
	}
	detached = CMS_is_detached(cms);
	if (detached && content == NULL) {
		res_set(res, SMIME_VERIFY_MALFORMED, "detached signature but "
		    "no signed content given");
		st = SM_ERR_ARG;
		goto done;
	}
	if (!detached && content != NULL) {
		/* Two candidate contents; which one was meant to be signed is
		 * anyone's guess, so neither is trusted. */
		res_set(res, SMIME_VERIFY_MALFORMED, "signature encapsulates "
		    "its content but detached content was given too");
		st = SM_ERR_PARSE;
		goto done;
	}
	if ((v = calloc((size_t)nsi, sizeof(*v))) == NULL)
		goto done;

	/* Pair each SignerInfo with its certificate from the message. */
	CMS_set1_signers_certs(cms, NULL, 0);
	ERR_clear_error();

	/* Signers we can check at all: certificate present, digest known. */
	for (int i = 0; i < nsi; i++) {
		CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, i);
		X509 *signer = NULL;
		X509_ALGOR *dig = NULL;
		const ASN1_OBJECT *obj;
		int dnid;

		CMS_SignerInfo_get0_algs(si, NULL, &signer, &dig, NULL);
		X509_ALGOR_get0(&obj, NULL, NULL, dig);
		dnid = OBJ_obj2nid(obj);
		if (signer == NULL)
			verdict(&v[i], SMIME_VERIFY_NO_SIGNER, "signer "
			    "certificate not included in the message");
		else if (!digest_supported(dnid))
			verdict(&v[i], SMIME_VERIFY_UNSUPPORTED_ALGORITHM,
			    "digest algorithm %s not supported",
			    dnid == NID_undef ? "(unknown)" : OBJ_nid2ln(dnid));
		else if (X509_get0_pubkey(signer) == NULL)
			verdict(&v[i], SMIME_VERIFY_UNSUPPORTED_ALGORITHM,
			    "signer public key type not supported");
		else if (!smime_key_fit(X509_get0_pubkey(signer), tmp,
		    sizeof(tmp)))
			verdict(&v[i], SMIME_VERIFY_UNSUPPORTED_ALGORITHM,
			    "signer key refused: %s", tmp);
		else
			verdict(&v[i], SMIME_VERIFY_OK, "pending");
	}

	/* Signature over the signed attributes (independent of content). */
	for (int i = 0; i < nsi; i++) {
		CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, i);

		if (v[i].status != SMIME_VERIFY_OK ||
		    CMS_signed_get_attr_count(si) < 0)
			continue;
		if (CMS_SignerInfo_verify(si) != 1)
			verdict(&v[i], SMIME_VERIFY_BAD_SIGNATURE, "signature "
			    "does not verify: %s", ossl_reason(tmp, sizeof(tmp)));
		ERR_clear_error();
	}

	/* Digest the content once for all signers; for opaque signatures the
	 * encapsulated content streams to content_out on the way. */
	chain = digest_chain(cms, detached ? content : NULL, clen, sis, v, nsi,
	    &dcont);
	if (chain == NULL) {
		res_set(res, SMIME_VERIFY_MALFORMED, detached ? "content too "
		    "large" : "no encapsulated content");
		st = detached ? SM_ERR_LIMIT : SM_ERR_PARSE;
		goto done;
	} else if ((st = pump(chain, detached ? NULL : content_out)) != SM_OK) {
		res_set(res, SMIME_VERIFY_MALFORMED, "reading the signed "
		    "content failed: %s", st == SM_ERR_NOMEM ? "out of memory"
		    : ossl_reason(tmp, sizeof(tmp)));
		if (content_out != NULL)
			buf_truncate_wipe(content_out, keep);
		goto done;
	}

	for (int i = 0; chain != NULL && i < nsi; i++) {
		CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, i);
		int r;

		if (v[i].status != SMIME_VERIFY_OK)
			continue;
		if (CMS_signed_get_attr_count(si) < 0) {
			/* No signed attributes: the signature is directly over
			 * the content digest, so a change to either looks the
			 * same. */
			if (CMS_SignerInfo_verify_content(si, chain) != 1)
				verdict(&v[i], SMIME_VERIFY_BAD_SIGNATURE,
				    "signature over the content does not "
				    "verify (no signed attributes: content or "
				    "signature altered)");
		} else if (CMS_signed_get0_data_by_OBJ(si,
		    OBJ_nid2obj(NID_pkcs9_messageDigest), -3,
		    V_ASN1_OCTET_STRING) == NULL) {
			verdict(&v[i], SMIME_VERIFY_BAD_SIGNATURE, "signed "
			    "attributes lack a single messageDigest");
		} else if ((r = CMS_SignerInfo_verify_content(si, chain)) != 1) {
			if (r == 0)
				verdict(&v[i], SMIME_VERIFY_CONTENT_ALTERED,
				    "content does not match the signed digest "
				    "(altered in transit)");
			else
				verdict(&v[i], SMIME_VERIFY_MALFORMED,
				    "content digest could not be checked: %s",
				    ossl_reason(tmp, sizeof(tmp)));
		}
		ERR_clear_error();
	}

	/* Report the first good signer, else the first one. */
	for (int i = 0; i < nsi && pick < 0; i++)
		if (v[i].status == SMIME_VERIFY_OK)
			pick = i;
	res->signature_ok = pick >= 0;
	if (pick < 0)
		pick = 0;
	{
		CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, pick);
		X509 *signer = NULL;
		X509_ALGOR *dig = NULL;
		const ASN1_OBJECT *obj;

		CMS_SignerInfo_get0_algs(si, NULL, &signer, &dig, NULL);
		X509_ALGOR_get0(&obj, NULL, NULL, dig);
		res->digest_nid = OBJ_obj2nid(obj);
		res->signing_time = signer_time(si);
		res->caps = signer_caps(si);
		res->enc_pref = signer_enc_pref(si, res->certs);
		if (signer != NULL) {
			X509_up_ref(signer);
			res->signer = signer;
			if ((untrusted = fit_certs(res->certs)) == NULL) {
				st = SM_ERR_NOMEM;
				goto done;
			}
			res->chain_status = check_chain(signer, untrusted,
			    store, allow_self_signed, chain_reason,
			    sizeof(chain_reason));
		} else {
			snprintf(chain_reason, sizeof(chain_reason),
			    "no signer certificate");
		}
	}
	if (!res->signature_ok)
		res_set(res, v[pick].status, "%s", v[pick].reason);
	else if (res->chain_status != SMIME_VERIFY_OK)
		res_set(res, res->chain_status, "signature good, but %s",
		    chain_reason);
	else
		res_set(res, SMIME_VERIFY_OK, "signature good, %s",
		    chain_reason);
	st = SM_OK;
done:
	if (chain != NULL) {
		/* CMS_dataInit chained its digest BIOs onto dcont; free
		 * ours separately. */
		BIO *b = chain;

		while (b != NULL && b != dcont) {
			BIO *next = BIO_pop(b);

			BIO_free(b);
			b = next;
		}
	}
	BIO_free(dcont);
	sk_X509_free(untrusted);
	free(v);
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return st;
}

void
smime_verify_result_free(struct smime_verify_result *res)
{
	if (res == NULL)
		return;
	X509_free(res->signer);
	X509_free(res->enc_pref);
	sk_X509_pop_free(res->certs, X509_free);
	sk_X509_CRL_pop_free(res->crls, X509_CRL_free);
	res->crls = NULL;
	res->signer = NULL;
	res->enc_pref = NULL;
	res->certs = NULL;
}

/* ---------------------------------------------------------------- choice */

sm_status
smime_choose(const caps_t *caps, const int *key_types, size_t n,
    enum smime_cipher configured, bool oaep_configured,
    struct smime_choice *out)
{
	/* Strongest first: GCM for integrity, then key size. */
	static const struct {
		enum smime_cipher c;
		caps_t bit;
	} order[] = {
		{ SMIME_CIPHER_AES256_GCM, CAP_AES256_GCM },
		{ SMIME_CIPHER_AES128_GCM, CAP_AES128_GCM },
		{ SMIME_CIPHER_AES256_CBC, CAP_AES256_CBC },
		{ SMIME_CIPHER_AES128_CBC, CAP_AES128_CBC },
	};
	caps_t common = ~(caps_t)0;
	size_t nrsa = 0, nec = 0, nrsa_oaep = 0, nunknown = 0;

	if (out == NULL)
		return SM_ERR_ARG;
	memset(out, 0, sizeof(*out));
	if (caps == NULL || key_types == NULL || n == 0) {
		snprintf(out->reason, sizeof(out->reason), "no recipients");
		return SM_ERR_ARG;
	}
	for (size_t i = 0; i < n; i++) {
		/* Nothing known: RFC 8551 makes AES-128-CBC mandatory and the
		 * design prefers AES-256-CBC; both count as advertised. */
		caps_t c = (caps[i] & CAP_KNOWN) ? caps[i]
		    : CAP_AES256_CBC | CAP_AES128_CBC;

		if (!(caps[i] & CAP_KNOWN))
			nunknown++;
		common &= c;
		if (key_types[i] == EVP_PKEY_RSA) {
			nrsa++;
			if ((caps[i] & CAP_KNOWN) && (caps[i] & CAP_RSA_OAEP))
				nrsa_oaep++;
		} else if (key_types[i] == EVP_PKEY_EC) {
			nec++;
		} else {
			snprintf(out->reason, sizeof(out->reason),
			    "recipient %zu: key type %d cannot receive "
			    "encrypted mail", i + 1, key_types[i]);
			return SM_ERR_UNSUPPORTED;
		}
	}
	out->mixed_key_types = nrsa > 0 && nec > 0;
	out->oaep = oaep_configured || (nrsa > 0 && nrsa_oaep == nrsa);

	if (configured != SMIME_CIPHER_AUTO) {
		if (cipher_evp(configured) == NULL) {
			snprintf(out->reason, sizeof(out->reason),
			    "configured cipher %d unknown", (int)configured);
			return SM_ERR_ARG;
		}
		out->cipher = configured;
		snprintf(out->reason, sizeof(out->reason), "%s configured",
		    smime_cipher_name(configured));
		return SM_OK;
	}
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (common & order[i].bit) {
			out->cipher = order[i].c;
			snprintf(out->reason, sizeof(out->reason),
			    "%s: strongest advertised by all %zu "
			    "recipient(s)%s", smime_cipher_name(order[i].c), n,
			    nunknown ? ", unknown capabilities count as "
			    "AES-CBC" : "");
			return SM_OK;
		}
	}
	/* Someone advertises only 3DES/RC2 (or nothing we do): we never
	 * fall back to those; AES-128-CBC is what RFC 8551 requires every
	 * receiving agent to support. */
	out->cipher = SMIME_CIPHER_AES128_CBC;
	snprintf(out->reason, sizeof(out->reason), "aes-128-cbc: no AES "
	    "cipher common to all recipients; 3DES/RC2 never used");
	return SM_OK;
}

/* -------------------------------------------------------------- key file */

void
smime_key_free(struct smime_key *k)
{
	if (k == NULL)
		return;
	X509_free(k->cert);
	EVP_PKEY_free(k->pkey);
	sk_X509_pop_free(k->chain, X509_free);
	k->cert = NULL;
	k->pkey = NULL;
	k->chain = NULL;
}


sm_status
smime_key_load_pem(const char *path, struct smime_key *out, char *err,
    size_t errlen)
{
	unsigned char *file = NULL, *data = NULL;
	size_t flen = 0;
	char *name = NULL, *header = NULL;
	long dlen = 0;
	BIO *bio = NULL;
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *pkey = NULL;
	sm_status st;
	int match = -1;

	ERR_clear_error();
	sm_seterr(err, errlen, "ok");
	if (out == NULL || path == NULL)
		return SM_ERR_ARG;
	memset(out, 0, sizeof(*out));
	if ((st = keyfile_read(path, &file, &flen, err, errlen)) != SM_OK)
		goto done;
	st = SM_ERR_NOMEM;
	if ((bio = membio(file, flen)) == NULL ||
	    (certs = sk_X509_new_null()) == NULL) {
		sm_seterr(err, errlen, "%s: out of memory", path);
		goto done;
	}
	/* Walk the PEM blocks ourselves: text between them (comments, RFC
	 * excerpts) is skipped, and an encrypted key is named as such. */
	while (PEM_read_bio(bio, &name, &header, &data, &dlen)) {
		const unsigned char *q = data;

		if (strcmp(name, "CERTIFICATE") == 0 ||
		    strcmp(name, "X509 CERTIFICATE") == 0 ||
		    strcmp(name, "TRUSTED CERTIFICATE") == 0) {
			X509 *x = strcmp(name, "TRUSTED CERTIFICATE") == 0
			    ? d2i_X509_AUX(NULL, &q, dlen)
			    : d2i_X509(NULL, &q, dlen);

			if (x == NULL || !sk_X509_push(certs, x)) {
				X509_free(x);
				seterr_ossl(err, errlen, "bad certificate");
				st = SM_ERR_PARSE;
				goto done;
			}
		} else if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0 ||
		    (strstr(name, "PRIVATE KEY") != NULL &&
		        strstr(header, "ENCRYPTED") != NULL)) {
			sm_seterr(err, errlen, "%s: the private key is encrypted; "
			    "store it unencrypted (mode 0600)", path);
			st = SM_ERR_PARSE;
			goto done;
		} else if (strstr(name, "PRIVATE KEY") != NULL) {
			if (pkey != NULL) {
				sm_seterr(err, errlen, "%s: more than one private "
				    "key", path);
				st = SM_ERR_PARSE;
				goto done;
			}
			if (strcmp(name, "RSA PRIVATE KEY") == 0)
				pkey = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &q, dlen);
			else if (strcmp(name, "EC PRIVATE KEY") == 0)
				pkey = d2i_PrivateKey(EVP_PKEY_EC, NULL, &q, dlen);
			else
				pkey = d2i_AutoPrivateKey(NULL, &q, dlen);
			if (pkey == NULL) {
				char what[300];

				snprintf(what, sizeof(what), "%s: bad private "
				    "key", path);
				seterr_ossl(err, errlen, what);
				st = SM_ERR_PARSE;
				goto done;
			}
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(data, (size_t)dlen);
		name = header = NULL;
		data = NULL;
	}
	/* The loop ends at the first non-PEM tail (PEM_R_NO_START_LINE). */
	ERR_clear_error();
	if (pkey == NULL) {
		sm_seterr(err, errlen, "%s: no private key found", path);
		st = SM_ERR_NOKEY;
		goto done;
	}
	for (int i = 0; i < sk_X509_num(certs) && match < 0; i++)
		if (X509_check_private_key(sk_X509_value(certs, i), pkey) == 1)
			match = i;
	ERR_clear_error();
	if (match < 0) {
		sm_seterr(err, errlen, "%s: no certificate matching the private "
		    "key", path);
		st = SM_ERR_NOKEY;
		goto done;
	}
	out->cert = sk_X509_delete(certs, match);
	out->pkey = pkey;
	out->chain = certs;
	pkey = NULL;
	certs = NULL;
	st = SM_OK;
done:
	OPENSSL_free(name);
	OPENSSL_free(header);
	if (data != NULL)
		OPENSSL_clear_free(data, (size_t)dlen);
	EVP_PKEY_free(pkey);
	sk_X509_pop_free(certs, X509_free);
	BIO_free(bio);
	if (file != NULL) {
		OPENSSL_cleanse(file, flen);
		free(file);
	}
	ERR_clear_error();
	return st;
}
