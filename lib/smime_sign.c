/*
 * smime_sign.c — making signatures: SignedData with our attributes, over
 * content in memory (smime_sign) or streamed from a source
 * (smime_sign_stream).
 */
#include "smime.h"
#include "smime_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>

#include "clock.h"


/*
 * sMIMECapabilities (RFC 8551 §2.5.2): what we decrypt, strongest first, so
 * partners pick GCM when they can. RC2/3DES are deliberately absent.
 * RSAES-OAEP is listed with RFC 3560's default parameters (an empty
 * RSAES-OAEP-params SEQUENCE: SHA-1, MGF1-SHA-1), which smime_decrypt
 * handles like any other OAEP parameters OpenSSL knows.
 */
static sm_status
add_smimecap(CMS_SignerInfo *si)
{
	static const int nids[] = { NID_aes_256_gcm, NID_aes_128_gcm,
		NID_aes_256_cbc, NID_aes_128_cbc };
	static const unsigned char empty_seq[] = { 0x30, 0x00 };
	STACK_OF(X509_ALGOR) *caps = NULL;
	X509_ALGOR *oaep = NULL;
	ASN1_STRING *params = NULL;
	sm_status st = SM_ERR_CRYPTO;

	for (size_t i = 0; i < sizeof(nids) / sizeof(nids[0]); i++)
		if (!CMS_add_simple_smimecap(&caps, nids[i], -1))
			goto done;
	if ((oaep = X509_ALGOR_new()) == NULL ||
	    (params = ASN1_STRING_new()) == NULL ||
	    !ASN1_STRING_set(params, empty_seq, sizeof(empty_seq)) ||
	    !X509_ALGOR_set0(oaep, OBJ_nid2obj(NID_rsaesOaep), V_ASN1_SEQUENCE,
	        params))
		goto done;
	params = NULL;
	if (!sk_X509_ALGOR_push(caps, oaep))
		goto done;
	oaep = NULL;
	if (!CMS_add_smimecap(si, caps))
		goto done;
	st = SM_OK;
done:
	ASN1_STRING_free(params);
	X509_ALGOR_free(oaep);
	sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
	return st;
}

/*
 * sMIMEEncryptionKeyPreference (RFC 8551 §2.5.3) naming our certificate by
 * issuerAndSerialNumber. The S/MIME ASN.1 module uses implicit tags, so the
 * value is [0] (constructed) wrapping the IssuerAndSerialNumber's contents:
 * the issuer Name and the serial INTEGER. OpenSSL has no public type for it,
 * so the DER is assembled here. An ASN1_TYPE of type V_ASN1_SEQUENCE holds
 * a complete encoding and writes it verbatim, tag included (V_ASN1_OTHER
 * would do the same but is negative, which X509_ATTRIBUTE_set1_data takes
 * for a multibyte-string flag).
 */
static sm_status
add_enckeypref(CMS_SignerInfo *si, X509 *cert)
{
	unsigned char *name = NULL, *serial = NULL, *der = NULL, *p;
	int nlen, slen, clen, hlen, total;
	sm_status st = SM_ERR_CRYPTO;

	nlen = i2d_X509_NAME(X509_get_issuer_name(cert), &name);
	slen = i2d_ASN1_INTEGER((ASN1_INTEGER *)X509_get0_serialNumber(cert),
	    &serial);
	if (nlen <= 0 || slen <= 0)
		goto done;
	clen = nlen + slen;
	hlen = ASN1_object_size(1, clen, 0) - clen;  /* tag + length octets */
	total = hlen + clen;
	if ((der = OPENSSL_malloc((size_t)total)) == NULL) {
		st = SM_ERR_NOMEM;
		goto done;
	}
	p = der;
	ASN1_put_object(&p, 1, clen, 0, V_ASN1_CONTEXT_SPECIFIC);
	memcpy(p, name, (size_t)nlen);
	memcpy(p + nlen, serial, (size_t)slen);
	if (!CMS_signed_add1_attr_by_NID(si, NID_id_smime_aa_encrypKeyPref,
	    V_ASN1_SEQUENCE, der, total))
		goto done;
	st = SM_OK;
done:
	OPENSSL_free(name);
	OPENSSL_free(serial);
	OPENSSL_free(der);
	return st;
}

/* A SignedData for k, built in pieces (CMS_PARTIAL) so our attributes go
 * in before the content is digested and signed. flags: CMS_DETACHED and/or
 * CMS_STREAM on top of CMS_BINARY | CMS_PARTIAL. */
static sm_status
sign_prepare(const struct smime_key *k, const EVP_MD *md, unsigned flags,
    CMS_ContentInfo **out, char *err, size_t errlen)
{
	CMS_ContentInfo *cms;
	CMS_SignerInfo *si;
	ASN1_TIME *now = NULL;
	sm_status st = SM_ERR_CRYPTO;

	*out = NULL;
	if ((cms = CMS_sign(NULL, NULL, NULL, NULL, flags | CMS_BINARY | CMS_PARTIAL)) == NULL) {
		seterr_ossl(err, errlen, "sign: CMS_sign");
		return SM_ERR_CRYPTO;
	}
	/* CMS_NOSMIMECAP: OpenSSL's default list advertises 3DES and RC2;
	 * ours is added below. */
	si = CMS_add1_signer(cms, k->cert, k->pkey, md,
	    CMS_BINARY | CMS_NOSMIMECAP | CMS_PARTIAL);
	if (si == NULL) {
		seterr_ossl(err, errlen, "sign: signer key or certificate unusable");
		goto done;
	}
	for (int i = 0; k->chain != NULL && i < sk_X509_num(k->chain); i++) {
		X509 *c = sk_X509_value(k->chain, i);
		bool dup = X509_cmp(c, k->cert) == 0;

		/* OpenSSL 3.0 refuses a certificate already present. */
		for (int j = 0; j < i && !dup; j++)
			dup = X509_cmp(c, sk_X509_value(k->chain, j)) == 0;
		if (!dup && !CMS_add1_cert(cms, c)) {
			seterr_ossl(err, errlen, "sign: adding chain");
			goto done;
		}
	}
	/* signingTime from the injectable clock; OpenSSL would use time()
	 * when the attribute is absent. ASN1_TIME_set picks UTCTime until 2049
	 * and GeneralizedTime after, as RFC 5652 §11.3 requires. */
	if ((now = ASN1_TIME_set(NULL, clock_now())) == NULL ||
	    !CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, now->type, now, -1)) {
		seterr_ossl(err, errlen, "sign: signingTime");
		goto done;
	}
	if (add_smimecap(si) != SM_OK) {
		seterr_ossl(err, errlen, "sign: sMIMECapabilities");
		goto done;
	}
	if (add_enckeypref(si, k->cert) != SM_OK) {
		seterr_ossl(err, errlen, "sign: sMIMEEncryptionKeyPreference");
		goto done;
	}
	*out = cms;
	cms = NULL;
	st = SM_OK;
done:
	ASN1_TIME_free(now);
	CMS_ContentInfo_free(cms);
	return st;
}

/* The arguments every signing entry point checks the same way. */
static sm_status
sign_args(const struct smime_key *k, const EVP_MD **md, char *err, size_t errlen)
{
	int nid;

	if (k == NULL || k->cert == NULL || k->pkey == NULL) {
		sm_seterr(err, errlen, "sign: missing key, certificate or buffer");
		return SM_ERR_ARG;
	}
	if (*md == NULL)
		*md = EVP_sha256();
	nid = EVP_MD_get_type(*md);
	if (nid != NID_sha256 && nid != NID_sha384 && nid != NID_sha512) {
		sm_seterr(err, errlen, "sign: digest %s not allowed "
		    "(sha256, sha384, sha512)", OBJ_nid2sn(nid));
		return SM_ERR_UNSUPPORTED;
	}
	return SM_OK;
}

sm_status
smime_sign(const struct smime_key *k, const EVP_MD *md, bool detached,
    const unsigned char *content, size_t n, struct buf *der_out, char *err,
    size_t errlen)
{
	CMS_ContentInfo *cms = NULL;
	BIO *in = NULL;
	size_t keep = der_out != NULL ? der_out->len : 0;
	sm_status st;

	ERR_clear_error();
	sm_seterr(err, errlen, "ok");
	if (der_out == NULL || (content == NULL && n > 0)) {
		sm_seterr(err, errlen, "sign: missing key, certificate or buffer");
		return SM_ERR_ARG;
	}
	if ((st = sign_args(k, &md, err, errlen)) != SM_OK)
		return st;
	if ((in = membio(content, n)) == NULL) {
		sm_seterr(err, errlen, "sign: content too large");
		return SM_ERR_LIMIT;
	}
	if ((st = sign_prepare(k, md, detached ? CMS_DETACHED : 0, &cms, err, errlen)) != SM_OK)
		goto done;
	st = SM_ERR_CRYPTO;
	if (!CMS_final(cms, in, NULL, CMS_BINARY)) {
		seterr_ossl(err, errlen, "sign");
		goto done;
	}
	if ((st = cms_to_buf(cms, der_out)) != SM_OK) {
		buf_truncate_wipe(der_out, keep);
		sm_seterr(err, errlen, "sign: encoding failed (%s)", sm_strstatus(st));
		goto done;
	}
done:
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	ERR_clear_error();
	return st;
}

/*
 * Detached: the content is read through the digest in pieces (CMS_final
 * copies from the source BIO) and the small signature lands in der_out,
 * byte for byte what smime_sign() gives. Opaque: CMS_STREAM, and
 * i2d_CMS_bio_stream() writes the SignedData (BER, indefinite lengths)
 * to out while the content passes through; the signature goes in at the
 * end.
 */
sm_status
smime_sign_stream(const struct smime_key *k, const EVP_MD *md, bool detached,
    const struct smime_src *src, struct buf *der_out, const struct smime_out *out,
    char *err, size_t errlen)
{
	CMS_ContentInfo *cms = NULL;
	BIO *in = NULL, *ob = NULL;
	size_t keep = der_out != NULL ? der_out->len : 0;
	sm_status st;

	ERR_clear_error();
	sm_seterr(err, errlen, "ok");
	if (src == NULL || (detached ? der_out == NULL : out == NULL)) {
		sm_seterr(err, errlen, "sign: missing key, certificate or buffer");
		return SM_ERR_ARG;
	}
	if ((st = sign_args(k, &md, err, errlen)) != SM_OK)
		return st;
	st = SM_ERR_NOMEM;
	if ((in = src_bio_new(src)) == NULL || (!detached && (ob = out_bio_new(out)) == NULL))
		goto done;
	if ((st = sign_prepare(k, md, detached ? CMS_DETACHED : CMS_STREAM, &cms, err,
	    errlen)) != SM_OK)
		goto done;
	st = SM_ERR_CRYPTO;
	if (detached ? !CMS_final(cms, in, NULL, CMS_BINARY) :
	    !i2d_CMS_bio_stream(ob, cms, in, CMS_BINARY | CMS_STREAM)) {
		st = src_bio_status(in, out_bio_status(ob, SM_ERR_CRYPTO));
		seterr_ossl(err, errlen, "sign");
		goto done;
	}
	/* OpenSSL's copy loop ends quietly on a read error: the content
	 * would be cut short, so the source's status decides. */
	if ((st = src_bio_status(in, SM_OK)) != SM_OK) {
		sm_seterr(err, errlen, "sign: reading the content failed (%s)", sm_strstatus(st));
		goto done;
	}
	if (detached && (st = cms_to_buf(cms, der_out)) != SM_OK) {
		buf_truncate_wipe(der_out, keep);
		sm_seterr(err, errlen, "sign: encoding failed (%s)", sm_strstatus(st));
		goto done;
	}
	st = SM_OK;
done:
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(ob);
	ERR_clear_error();
	return st;
}

/*
 * The detached signature written to: what CMS_final() does with a source
 * BIO (CMS_dataInit, copy, CMS_dataFinal), with the copy driven by the
 * caller. Detached content goes through the digest into a null BIO.
 */
struct smime_signer {
	CMS_ContentInfo *cms;
	BIO *bio;	/* the digest chain from CMS_dataInit */
	bool failed;
};

sm_status
smime_signer_begin(const struct smime_key *k, const EVP_MD *md, struct smime_signer **out,
    char *err, size_t errlen)
{
	struct smime_signer *s;
	sm_status st;

	ERR_clear_error();
	sm_seterr(err, errlen, "ok");
	*out = NULL;
	if ((st = sign_args(k, &md, err, errlen)) != SM_OK)
		return st;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return SM_ERR_NOMEM;
	if ((st = sign_prepare(k, md, CMS_DETACHED, &s->cms, err, errlen)) != SM_OK) {
		free(s);
		return st;
	}
	if ((s->bio = CMS_dataInit(s->cms, NULL)) == NULL) {
		seterr_ossl(err, errlen, "sign: CMS_dataInit");
		smime_signer_free(s);
		return SM_ERR_CRYPTO;
	}
	*out = s;
	return SM_OK;
}

sm_status
smime_signer_write(struct smime_signer *s, const unsigned char *p, size_t n)
{
	if (!s->failed && !bio_write_all(s->bio, p, n))
		s->failed = true;
	return s->failed ? SM_ERR_CRYPTO : SM_OK;
}

sm_status
smime_signer_end(struct smime_signer *s, struct buf *der_out, char *err, size_t errlen)
{
	size_t keep = der_out->len;
	sm_status st = SM_ERR_CRYPTO;

	sm_seterr(err, errlen, "ok");
	(void)BIO_flush(s->bio);
	if (s->failed || !CMS_dataFinal(s->cms, s->bio)) {
		seterr_ossl(err, errlen, "sign");
	} else if ((st = cms_to_buf(s->cms, der_out)) != SM_OK) {
		buf_truncate_wipe(der_out, keep);
		sm_seterr(err, errlen, "sign: encoding failed (%s)", sm_strstatus(st));
	}
	smime_signer_free(s);
	ERR_clear_error();
	return st;
}

void
smime_signer_free(struct smime_signer *s)
{
	if (s == NULL)
		return;
	BIO_free_all(s->bio);
	CMS_ContentInfo_free(s->cms);
	free(s);
}
