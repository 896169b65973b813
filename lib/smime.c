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
const char *
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

/* The digests signers use, fetched from the providers once (a fetch by
 * name takes OpenSSL's locks on every call). */
static struct {
	int nid;
	EVP_MD *md;
} mds[] = { { NID_sha1, NULL }, { NID_sha224, NULL }, { NID_sha256, NULL },
	{ NID_sha384, NULL }, { NID_sha512, NULL } };
static pthread_once_t mds_once = PTHREAD_ONCE_INIT;

static void
mds_fetch(void)
{
	for (size_t i = 0; i < sizeof(mds) / sizeof(mds[0]); i++)
		mds[i].md = EVP_MD_fetch(NULL, OBJ_nid2sn(mds[i].nid), NULL);
	ERR_clear_error();
}

EVP_MD *
md_fetch(int nid)
{
	if (nid == NID_undef)
		return NULL;
	if (pthread_once(&mds_once, mds_fetch) == 0)
		for (size_t i = 0; i < sizeof(mds) / sizeof(mds[0]); i++)
			if (mds[i].nid == nid && mds[i].md != NULL &&
			    EVP_MD_up_ref(mds[i].md))
				return mds[i].md;
	return EVP_MD_fetch(NULL, OBJ_nid2sn(nid), NULL);
}

bool
bio_write_all(BIO *b, const unsigned char *p, size_t n)
{
	while (n > 0) {
		int w = BIO_write(b, p, n > INT_MAX ? INT_MAX : (int)n);

		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
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
	const unsigned char *p = der;

	if (der == NULL || n == 0 || n > LONG_MAX)
		return NULL;
	/* Decoded in place: d2i_CMS_bio would first copy the whole input
	 * into a buffer of its own (one more copy of a message that may be
	 * tens of megabytes). BER is read all the same: indefinite lengths
	 * and constructed OCTET STRINGs (gpgsm writes both) are collected. */
	return d2i_CMS_ContentInfo(NULL, &p, (long)n);
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
