/*
 * smime_verify.c — signature verification: a SignedData turned into a
 * plain verdict (smime.h).
 *
 * The content is digested once per distinct digest, streamed through
 * OpenSSL's digest BIOs: from the caller's BIO for a detached signature
 * (smime_verify_stream(), so a spooled body is never copied), from the
 * encapsulated content of an opaque one.
 */
#include "smime.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/err.h>

#include "clock.h"
#include "cmsscan.h"
#include "smime_int.h"

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

	md = md_fetch(nid);
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

/* One verification under way. */
struct vctx {
	CMS_ContentInfo *cms;
	STACK_OF(CMS_SignerInfo) *sis;
	int nsi;
	struct si_verdict *v;     /* one per SignerInfo */
	BIO *chain;               /* digest BIOs over src */
	BIO *src;                 /* the content's source BIO */
	bool own_src;             /* src is ours to free */
	bool final;               /* res holds the verdict already */
};

static void
vctx_free(struct vctx *c)
{
	/* Our digest BIOs come off the source one by one: a caller's source
	 * stays theirs. */
	for (BIO *b = c->chain; b != NULL && b != c->src;) {
		BIO *next = BIO_pop(b);

		BIO_free(b);
		b = next;
	}
	if (c->own_src)
		BIO_free(c->src);
	free(c->v);
	CMS_ContentInfo_free(c->cms);
}

/* Feed the content through OpenSSL's digest BIOs. Opaque content is
 * copied to out on the way. SM_ERR_PARSE when the chain cannot be read
 * (broken encapsulated content, a failing source), SM_ERR_NOMEM when out
 * cannot grow. */
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
	/* Our sources are memory or body BIOs: 0 is the end, anything below
	 * an error (they never ask for a retry). */
	st = r == 0 ? SM_OK : SM_ERR_PARSE;
done:
	OPENSSL_free(chunk);
	return st;
}

/* Push one digest BIO for signer i unless its digest is in seen already. */
static bool
digest_push(struct vctx *c, int i, int *seen, int *nseen, int max)
{
	CMS_SignerInfo *si = sk_CMS_SignerInfo_value(c->sis, i);
	X509_ALGOR *dig = NULL;
	const ASN1_OBJECT *obj;
	EVP_MD *md;
	BIO *b;
	int nid, k;

	CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
	X509_ALGOR_get0(&obj, NULL, NULL, dig);
	nid = OBJ_obj2nid(obj);
	for (k = 0; k < *nseen && seen[k] != nid; k++)
		;
	if (k < *nseen)
		return true;
	if (*nseen == max || (md = md_fetch(nid)) == NULL) {
		verdict(&c->v[i], SMIME_VERIFY_UNSUPPORTED_ALGORITHM,
		    "cannot digest the content with %s", OBJ_nid2ln(nid));
		return true;
	}
	seen[(*nseen)++] = nid;
	b = BIO_new(BIO_f_md());
	if (b == NULL || !BIO_set_md(b, md)) {
		BIO_free(b);
		EVP_MD_free(md);
		return false;
	}
	EVP_MD_free(md);
	c->chain = BIO_push(b, c->chain);
	return true;
}

/* The content source under one digest BIO per distinct digest of the
 * signers still in the running (CMS_dataInit stacks one per
 * digestAlgorithms entry, so that thousands of entries cost thousands of
 * passes). src: the detached content, or NULL for the encapsulated one.
 * False when there is no content to read. */
static bool
digest_chain(struct vctx *c, BIO *src)
{
	ASN1_OCTET_STRING **pos;
	int seen[8], nseen = 0;

	if (src == NULL) {
		if ((pos = CMS_get0_content(c->cms)) == NULL || *pos == NULL ||
		    (src = membio((*pos)->data, (size_t)(*pos)->length)) == NULL)
			return false;
		c->own_src = true;
	}
	c->src = c->chain = src;
	for (int i = 0; i < c->nsi; i++)
		if (c->v[i].status == SMIME_VERIFY_OK &&
		    !digest_push(c, i, seen, &nseen, (int)(sizeof(seen) / sizeof(seen[0]))))
			break;
	ERR_clear_error();
	return true;
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

/* Within limits, a CMS, signed-data: its certificates and CRLs into res.
 * c->final when res holds the verdict already. */
static sm_status
verify_open(struct vctx *c, const unsigned char *der, size_t n,
    const struct smime_limits *lim, struct smime_verify_result *res)
{
	char tmp[256];

	c->final = true;
	if (!within_limits(der, n, lim, res))
		return SM_OK;
	if ((c->cms = cms_parse(der, n)) == NULL) {
		res_set(res, SMIME_VERIFY_MALFORMED, "not a CMS structure: %s",
		    ossl_reason(tmp, sizeof(tmp)));
		return SM_ERR_PARSE;
	}
	if (OBJ_obj2nid(CMS_get0_type(c->cms)) != NID_pkcs7_signed) {
		res_set(res, SMIME_VERIFY_MALFORMED, "CMS content is %s, not "
		    "signed-data", OBJ_nid2ln(OBJ_obj2nid(CMS_get0_type(c->cms))));
		return SM_ERR_PARSE;
	}
	res->certs = CMS_get1_certs(c->cms);
	res->crls = CMS_get1_crls(c->cms);
	if (res->certs == NULL && (res->certs = sk_X509_new_null()) == NULL)
		return SM_ERR_NOMEM;
	c->final = false;
	return SM_OK;
}

/* Signers present, and the content where the signature says it is. */
static sm_status
verify_shape(struct vctx *c, bool have_content, struct smime_verify_result *res)
{
	int detached;

	c->final = true;
	c->sis = CMS_get0_SignerInfos(c->cms);
	c->nsi = sk_CMS_SignerInfo_num(c->sis);
	res->nsigners = c->nsi > 0 ? (size_t)c->nsi : 0;
	if (c->nsi <= 0) {
		res_set(res, SMIME_VERIFY_NO_SIGNER, "no signer "
		    "(certificates-only message)");
		return SM_OK;
	}
	detached = CMS_is_detached(c->cms);
	if (detached && !have_content) {
		res_set(res, SMIME_VERIFY_MALFORMED, "detached signature but "
		    "no signed content given");
		return SM_ERR_ARG;
	}
	if (!detached && have_content) {
		/* Two candidate contents; which one was meant to be signed is
		 * anyone's guess, so neither is trusted. */
		res_set(res, SMIME_VERIFY_MALFORMED, "signature encapsulates "
		    "its content but detached content was given too");
		return SM_ERR_PARSE;
	}
	if ((c->v = calloc((size_t)c->nsi, sizeof(*c->v))) == NULL)
		return SM_ERR_NOMEM;
	c->final = false;
	return SM_OK;
}

/* Signers we can check at all: certificate present, digest known, key
 * acceptable. */
static void
screen_signers(struct vctx *c)
{
	char tmp[256];

	/* Pair each SignerInfo with its certificate from the message. */
	CMS_set1_signers_certs(c->cms, NULL, 0);
	ERR_clear_error();
	for (int i = 0; i < c->nsi; i++) {
		CMS_SignerInfo *si = sk_CMS_SignerInfo_value(c->sis, i);
		X509 *signer = NULL;
		X509_ALGOR *dig = NULL;
		const ASN1_OBJECT *obj;
		int dnid;

		CMS_SignerInfo_get0_algs(si, NULL, &signer, &dig, NULL);
		X509_ALGOR_get0(&obj, NULL, NULL, dig);
		dnid = OBJ_obj2nid(obj);
		if (signer == NULL)
			verdict(&c->v[i], SMIME_VERIFY_NO_SIGNER, "signer "
			    "certificate not included in the message");
		else if (!digest_supported(dnid))
			verdict(&c->v[i], SMIME_VERIFY_UNSUPPORTED_ALGORITHM,
			    "digest algorithm %s not supported",
			    dnid == NID_undef ? "(unknown)" : OBJ_nid2ln(dnid));
		else if (X509_get0_pubkey(signer) == NULL)
			verdict(&c->v[i], SMIME_VERIFY_UNSUPPORTED_ALGORITHM,
			    "signer public key type not supported");
		else if (!smime_key_fit(X509_get0_pubkey(signer), tmp, sizeof(tmp)))
			verdict(&c->v[i], SMIME_VERIFY_UNSUPPORTED_ALGORITHM,
			    "signer key refused: %s", tmp);
		else
			verdict(&c->v[i], SMIME_VERIFY_OK, "pending");
	}
}

/* The signature over the signed attributes (independent of content). */
static void
check_signed_attrs(struct vctx *c)
{
	char tmp[256];

	for (int i = 0; i < c->nsi; i++) {
		CMS_SignerInfo *si = sk_CMS_SignerInfo_value(c->sis, i);

		if (c->v[i].status != SMIME_VERIFY_OK ||
		    CMS_signed_get_attr_count(si) < 0)
			continue;
		if (CMS_SignerInfo_verify(si) != 1)
			verdict(&c->v[i], SMIME_VERIFY_BAD_SIGNATURE, "signature "
			    "does not verify: %s", ossl_reason(tmp, sizeof(tmp)));
		ERR_clear_error();
	}
}

/* Digest the content once for all signers; for opaque signatures the
 * encapsulated content streams to out on the way. */
static sm_status
digest_content(struct vctx *c, BIO *src, struct smime_verify_result *res,
    struct buf *out)
{
	size_t keep = out != NULL ? out->len : 0;
	char tmp[256];
	sm_status st;

	if (!digest_chain(c, src)) {
		res_set(res, SMIME_VERIFY_MALFORMED, "no encapsulated content");
		return SM_ERR_PARSE;
	}
	if ((st = pump(c->chain, src != NULL ? NULL : out)) != SM_OK) {
		res_set(res, SMIME_VERIFY_MALFORMED, "reading the signed "
		    "content failed: %s", st == SM_ERR_NOMEM ? "out of memory"
		    : ossl_reason(tmp, sizeof(tmp)));
		if (out != NULL)
			buf_truncate_wipe(out, keep);
	}
	return st;
}

/* Each signer's messageDigest (or its signature, without signed
 * attributes) against the digest of the content. */
static void
check_content(struct vctx *c)
{
	char tmp[256];
	int r;

	for (int i = 0; i < c->nsi; i++) {
		CMS_SignerInfo *si = sk_CMS_SignerInfo_value(c->sis, i);

		if (c->v[i].status != SMIME_VERIFY_OK)
			continue;
		if (CMS_signed_get_attr_count(si) < 0) {
			/* No signed attributes: the signature is directly over
			 * the content digest, so a change to either looks the
			 * same. */
			if (CMS_SignerInfo_verify_content(si, c->chain) != 1)
				verdict(&c->v[i], SMIME_VERIFY_BAD_SIGNATURE,
				    "signature over the content does not "
				    "verify (no signed attributes: content or "
				    "signature altered)");
		} else if (CMS_signed_get0_data_by_OBJ(si,
		    OBJ_nid2obj(NID_pkcs9_messageDigest), -3,
		    V_ASN1_OCTET_STRING) == NULL) {
			verdict(&c->v[i], SMIME_VERIFY_BAD_SIGNATURE, "signed "
			    "attributes lack a single messageDigest");
		} else if ((r = CMS_SignerInfo_verify_content(si, c->chain)) != 1) {
			if (r == 0)
				verdict(&c->v[i], SMIME_VERIFY_CONTENT_ALTERED,
				    "content does not match the signed digest "
				    "(altered in transit)");
			else
				verdict(&c->v[i], SMIME_VERIFY_MALFORMED,
				    "content digest could not be checked: %s",
				    ossl_reason(tmp, sizeof(tmp)));
		}
		ERR_clear_error();
	}
}

/* The reported signer's attributes and chain into res: the first good
 * signer, else the first one. */
static sm_status
report_signer(struct vctx *c, X509_STORE *store, bool allow_self_signed,
    struct smime_verify_result *res)
{
	STACK_OF(X509) *untrusted;
	CMS_SignerInfo *si;
	X509 *signer = NULL;
	X509_ALGOR *dig = NULL;
	const ASN1_OBJECT *obj;
	char chain_reason[256] = "no signer certificate";
	int pick = -1;

	for (int i = 0; i < c->nsi && pick < 0; i++)
		if (c->v[i].status == SMIME_VERIFY_OK)
			pick = i;
	res->signature_ok = pick >= 0;
	if (pick < 0)
		pick = 0;
	si = sk_CMS_SignerInfo_value(c->sis, pick);
	CMS_SignerInfo_get0_algs(si, NULL, &signer, &dig, NULL);
	X509_ALGOR_get0(&obj, NULL, NULL, dig);
	res->digest_nid = OBJ_obj2nid(obj);
	res->signing_time = signer_time(si);
	res->caps = signer_caps(si);
	res->enc_pref = signer_enc_pref(si, res->certs);
	if (signer != NULL) {
		X509_up_ref(signer);
		res->signer = signer;
		if ((untrusted = fit_certs(res->certs)) == NULL)
			return SM_ERR_NOMEM;
		res->chain_status = check_chain(signer, untrusted, store,
		    allow_self_signed, chain_reason, sizeof(chain_reason));
		sk_X509_free(untrusted);
	}
	if (!res->signature_ok)
		res_set(res, c->v[pick].status, "%s", c->v[pick].reason);
	else if (res->chain_status != SMIME_VERIFY_OK)
		res_set(res, res->chain_status, "signature good, but %s",
		    chain_reason);
	else
		res_set(res, SMIME_VERIFY_OK, "signature good, %s",
		    chain_reason);
	return SM_OK;
}

/* Every verification: src is the detached content's source (read to its
 * end), NULL for an opaque signature. */
static sm_status
verify_core(const unsigned char *der, size_t n, BIO *src, X509_STORE *store,
    bool allow_self_signed, const struct smime_limits *lim,
    struct smime_verify_result *res, struct buf *content_out)
{
	static const struct smime_limits def = SMIME_LIMITS_DEFAULT;
	struct vctx c;
	sm_status st;

	if (res == NULL)
		return SM_ERR_ARG;
	memset(&c, 0, sizeof(c));
	memset(res, 0, sizeof(*res));
	res->status = SMIME_VERIFY_MALFORMED;
	res->chain_status = SMIME_VERIFY_UNTRUSTED;
	ERR_clear_error();
	if ((st = verify_open(&c, der, n, lim ? lim : &def, res)) != SM_OK || c.final ||
	    (st = verify_shape(&c, src != NULL, res)) != SM_OK || c.final)
		goto done;
	screen_signers(&c);
	check_signed_attrs(&c);
	if ((st = digest_content(&c, src, res, content_out)) != SM_OK)
		goto done;
	check_content(&c);
	st = report_signer(&c, store, allow_self_signed, res);
done:
	vctx_free(&c);
	ERR_clear_error();
	return st;
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

sm_status
smime_verify_bounded(const unsigned char *der, size_t n,
    const unsigned char *content, size_t clen, X509_STORE *store,
    bool allow_self_signed, const struct smime_limits *lim,
    struct smime_verify_result *res, struct buf *content_out)
{
	BIO *src = NULL;
	sm_status st;

	if (content != NULL && (src = membio(content, clen)) == NULL) {
		if (res == NULL)
			return SM_ERR_ARG;
		memset(res, 0, sizeof(*res));
		res->chain_status = SMIME_VERIFY_UNTRUSTED;
		res_set(res, SMIME_VERIFY_MALFORMED, "content too large");
		return SM_ERR_LIMIT;
	}
	st = verify_core(der, n, src, store, allow_self_signed, lim, res,
	    content_out);
	BIO_free(src);
	return st;
}

sm_status
smime_verify_stream(const unsigned char *der, size_t n, BIO *content,
    X509_STORE *store, bool allow_self_signed, const struct smime_limits *lim,
    struct smime_verify_result *res)
{
	if (content == NULL) {
		if (res != NULL) {
			memset(res, 0, sizeof(*res));
			res->chain_status = SMIME_VERIFY_UNTRUSTED;
			res_set(res, SMIME_VERIFY_MALFORMED, "no signed content given");
		}
		return SM_ERR_ARG;
	}
	return verify_core(der, n, content, store, allow_self_signed, lim, res,
	    NULL);
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
