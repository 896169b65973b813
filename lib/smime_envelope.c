/*
 * smime_envelope.c — EnvelopedData and AuthEnvelopedData: encrypting to
 * recipients (in memory or streamed) and opening an envelope with our keys.
 */
#include "smime.h"
#include "smime_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

/* --------------------------------------------------------------- encrypt */

/* One recipient entry for x: key transport (RSA, PKCS#1 v1.5 or OAEP) or
 * key agreement (EC). */
static sm_status
envelope_add(CMS_ContentInfo *cms, X509 *x, bool oaep, char *err, size_t errlen)
{
	EVP_PKEY *pk = x != NULL ? X509_get0_pubkey(x) : NULL;
	int type = pk != NULL ? EVP_PKEY_get_base_id(pk) : NID_undef;
	CMS_RecipientInfo *ri;
	char who[256];

	name_str(x, who, sizeof(who));
	if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC) {
		sm_seterr(err, errlen, "encrypt: recipient %s: key type %s "
		    "cannot receive encrypted mail", who,
		    type == NID_undef ? "unknown" : OBJ_nid2sn(type));
		return SM_ERR_UNSUPPORTED;
	}
	/* CMS_KEY_PARAM leaves the key transport context open so the
	 * padding can be switched to OAEP before CMS_final(). */
	ri = CMS_add1_recipient_cert(cms, x, type == EVP_PKEY_RSA && oaep ? CMS_KEY_PARAM : 0);
	if (ri == NULL) {
		char what[300];

		snprintf(what, sizeof(what), "encrypt: recipient %s", who);
		seterr_ossl(err, errlen, what);
		return SM_ERR_CRYPTO;
	}
	if (type == EVP_PKEY_RSA && oaep) {
		EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);

		if (pctx == NULL || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0) {
			seterr_ossl(err, errlen, "encrypt: RSA-OAEP");
			return SM_ERR_CRYPTO;
		}
	}
	return SM_OK;
}

/* An envelope for rcpts, its content still to come. flags: 0 or
 * CMS_STREAM. With an AEAD cipher OpenSSL 3.0 makes AuthEnvelopedData. */
static sm_status
envelope_prepare(STACK_OF(X509) *rcpts, enum smime_cipher c, bool oaep, unsigned flags,
    CMS_ContentInfo **out, char *err, size_t errlen)
{
	const EVP_CIPHER *cipher = cipher_evp(c);
	CMS_ContentInfo *cms;
	sm_status st = SM_OK;

	*out = NULL;
	if (rcpts == NULL || sk_X509_num(rcpts) == 0) {
		sm_seterr(err, errlen, "encrypt: no recipients or no buffer");
		return SM_ERR_ARG;
	}
	if (cipher == NULL) {
		sm_seterr(err, errlen, "encrypt: an explicit cipher is required "
		    "(got %s)", smime_cipher_name(c));
		return SM_ERR_ARG;
	}
	if ((cms = CMS_encrypt(NULL, NULL, cipher, flags | CMS_BINARY | CMS_PARTIAL)) == NULL) {
		seterr_ossl(err, errlen, "encrypt: CMS_encrypt");
		return SM_ERR_CRYPTO;
	}
	for (int i = 0; i < sk_X509_num(rcpts) && st == SM_OK; i++)
		st = envelope_add(cms, sk_X509_value(rcpts, i), oaep, err, errlen);
	if (st != SM_OK)
		CMS_ContentInfo_free(cms);
	else
		*out = cms;
	return st;
}

sm_status
smime_encrypt(STACK_OF(X509) *rcpts, enum smime_cipher c, bool oaep,
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
		sm_seterr(err, errlen, "encrypt: no recipients or no buffer");
		return SM_ERR_ARG;
	}
	if ((st = envelope_prepare(rcpts, c, oaep, 0, &cms, err, errlen)) != SM_OK)
		goto done;
	if ((in = membio(content, n)) == NULL) {
		sm_seterr(err, errlen, "encrypt: content too large");
		st = SM_ERR_LIMIT;
		goto done;
	}
	st = SM_ERR_CRYPTO;
	if (!CMS_final(cms, in, NULL, CMS_BINARY)) {
		seterr_ossl(err, errlen, "encrypt");
		goto done;
	}
	if ((st = cms_to_buf(cms, der_out)) != SM_OK) {
		buf_truncate_wipe(der_out, keep);
		sm_seterr(err, errlen, "encrypt: encoding failed (%s)", sm_strstatus(st));
		goto done;
	}
done:
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	ERR_clear_error();
	return st;
}

/* CMS_STREAM: i2d_CMS_bio_stream() writes the envelope (BER, indefinite
 * lengths) to out while the content passes through the cipher in pieces;
 * the recipients' keys and (GCM) the tag go in at the end. */
sm_status
smime_encrypt_stream(STACK_OF(X509) *rcpts, enum smime_cipher c, bool oaep,
    const struct smime_src *src, const struct smime_out *out, char *err, size_t errlen)
{
	CMS_ContentInfo *cms = NULL;
	BIO *in = NULL, *ob = NULL;
	sm_status st;

	ERR_clear_error();
	sm_seterr(err, errlen, "ok");
	if (src == NULL || out == NULL) {
		sm_seterr(err, errlen, "encrypt: no recipients or no buffer");
		return SM_ERR_ARG;
	}
	if ((st = envelope_prepare(rcpts, c, oaep, CMS_STREAM, &cms, err, errlen)) != SM_OK)
		goto done;
	st = SM_ERR_NOMEM;
	if ((in = src_bio_new(src)) == NULL || (ob = out_bio_new(out)) == NULL)
		goto done;
	st = SM_OK;
	if (!i2d_CMS_bio_stream(ob, cms, in, CMS_BINARY | CMS_STREAM)) {
		st = src_bio_status(in, out_bio_status(ob, SM_ERR_CRYPTO));
		seterr_ossl(err, errlen, "encrypt");
	} else if ((st = src_bio_status(in, SM_OK)) != SM_OK) {
		/* OpenSSL's copy loop ends quietly on a read error. */
		sm_seterr(err, errlen, "encrypt: reading the content failed (%s)",
		    sm_strstatus(st));
	}
done:
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(ob);
	ERR_clear_error();
	return st;
}

/*
 * The envelope written to: what i2d_CMS_bio_stream() does with a source
 * BIO (BIO_new_NDEF, copy, flush), with the copy driven by the caller, who
 * makes the content anyway (the multipart/signed of a sign+encrypt): no
 * spool of it to read back.
 */
struct smime_sealer {
	CMS_ContentInfo *cms;
	BIO *ob;	/* out, wrapped */
	BIO *bio;	/* the NDEF chain in front of ob */
	bool failed;
};

sm_status
smime_sealer_begin(STACK_OF(X509) *rcpts, enum smime_cipher c, bool oaep,
    const struct smime_out *out, struct smime_sealer **sp, char *err, size_t errlen)
{
	struct smime_sealer *s;
	sm_status st;

	ERR_clear_error();
	sm_seterr(err, errlen, "ok");
	*sp = NULL;
	if (out == NULL)
		return SM_ERR_ARG;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return SM_ERR_NOMEM;
	if ((st = envelope_prepare(rcpts, c, oaep, CMS_STREAM, &s->cms, err, errlen)) != SM_OK) {
		free(s);
		return st;
	}
	st = SM_ERR_NOMEM;
	if ((s->ob = out_bio_new(out)) == NULL)
		goto fail;
	st = SM_ERR_CRYPTO;
	if ((s->bio = BIO_new_NDEF(s->ob, (ASN1_VALUE *)s->cms,
	    ASN1_ITEM_rptr(CMS_ContentInfo))) == NULL) {
		st = out_bio_status(s->ob, SM_ERR_CRYPTO);
		seterr_ossl(err, errlen, "encrypt");
		goto fail;
	}
	*sp = s;
	return SM_OK;
fail:
	smime_sealer_free(s);
	return st;
}

sm_status
smime_sealer_write(struct smime_sealer *s, const unsigned char *p, size_t n)
{
	if (!s->failed && !bio_write_all(s->bio, p, n))
		s->failed = true;
	return s->failed ? out_bio_status(s->ob, SM_ERR_CRYPTO) : SM_OK;
}

sm_status
smime_sealer_end(struct smime_sealer *s, char *err, size_t errlen)
{
	sm_status st = SM_ERR_CRYPTO;

	sm_seterr(err, errlen, "ok");
	if (!s->failed && BIO_flush(s->bio) > 0)
		st = out_bio_status(s->ob, SM_OK);
	else
		st = out_bio_status(s->ob, SM_ERR_CRYPTO);
	if (st != SM_OK)
		seterr_ossl(err, errlen, "encrypt");
	smime_sealer_free(s);
	ERR_clear_error();
	return st;
}

void
smime_sealer_free(struct smime_sealer *s)
{
	if (s == NULL)
		return;
	/* The chain up to ob, then ob (as i2d_ASN1_bio_stream frees it). */
	while (s->bio != NULL && s->bio != s->ob) {
		BIO *next = BIO_pop(s->bio);

		BIO_free(s->bio);
		s->bio = next;
	}
	BIO_free(s->ob);
	CMS_ContentInfo_free(s->cms);
	free(s);
}

/* --------------------------------------------------------------- decrypt */

/* Does a RecipientInfo name this certificate (issuerAndSerialNumber or
 * subjectKeyIdentifier, key transport or key agreement)? */
static bool
is_recipient(CMS_ContentInfo *cms, X509 *cert)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);

	for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
		STACK_OF(CMS_RecipientEncryptedKey) *reks;

		switch (CMS_RecipientInfo_type(ri)) {
		case CMS_RECIPINFO_TRANS:
			if (CMS_RecipientInfo_ktri_cert_cmp(ri, cert) == 0)
				return true;
			break;
		case CMS_RECIPINFO_AGREE:
			reks = CMS_RecipientInfo_kari_get0_reks(ri);
			for (int j = 0; j < sk_CMS_RecipientEncryptedKey_num(reks);
			    j++)
				if (CMS_RecipientEncryptedKey_cert_cmp(
				    sk_CMS_RecipientEncryptedKey_value(reks, j),
				    cert) == 0)
					return true;
			break;
		default:
			break;
		}
	}
	ERR_clear_error();
	return false;
}

/*
 * No CMS_DEBUG_DECRYPT: a recipient entry that names our certificate
 * but does not open with our key goes on with a random content key
 * (OpenSSL's defence against Bleichenbacher-style padding oracles),
 * so it fails exactly as a corrupt content does. The first of our keys
 * that a recipient entry names is the one we try.
 */
sm_status
decrypt_pick_key(CMS_ContentInfo *cms, const struct smime_key *keys, size_t nkeys,
    bool *matched, char *err, size_t errlen)
{
	for (size_t i = 0; i < nkeys && !*matched; i++) {
		if (keys[i].pkey == NULL || keys[i].cert == NULL ||
		    !is_recipient(cms, keys[i].cert))
			continue;
		if (!CMS_decrypt_set1_pkey_and_peer(cms, keys[i].pkey,
		    keys[i].cert, NULL)) {
			sm_seterr(err, errlen, "decrypt: content does not decrypt "
			    "(wrong key or corrupt envelope)");
			return SM_ERR_CRYPTO;
		}
		*matched = true;
	}
	return SM_OK;
}

sm_status
smime_decrypt(const unsigned char *der, size_t n, const struct smime_key *keys,
    size_t nkeys, struct buf *out, char *err, size_t errlen)
{
	CMS_ContentInfo *cms = NULL;
	BIO *sink = NULL;
	size_t keep = out != NULL ? out->len : 0;
	sm_status st = SM_ERR_NOKEY;
	bool matched = false;
	char tmp[256];
	int type;

	ERR_clear_error();
	sm_seterr(err, errlen, "ok");
	if (out == NULL || (keys == NULL && nkeys > 0)) {
		sm_seterr(err, errlen, "decrypt: no output buffer");
		return SM_ERR_ARG;
	}
	if ((cms = cms_parse(der, n)) == NULL) {
		seterr_ossl(err, errlen, "decrypt: not a CMS structure");
		st = SM_ERR_PARSE;
		goto done;
	}
	type = OBJ_obj2nid(CMS_get0_type(cms));
	if (type != NID_pkcs7_enveloped &&
	    type != NID_id_smime_ct_authEnvelopedData) {
		sm_seterr(err, errlen, "decrypt: CMS content is %s, not an "
		    "envelope", OBJ_nid2ln(type));
		st = SM_ERR_PARSE;
		goto done;
	}
	if ((st = decrypt_pick_key(cms, keys, nkeys, &matched, err, errlen)) != SM_OK)
		goto done;
	st = SM_ERR_NOKEY;
	ERR_clear_error();
	if (!matched) {
		sm_seterr(err, errlen, "decrypt: none of our %zu key(s) is a "
		    "recipient", nkeys);
		goto done;
	}
	if ((sink = sink_new(out)) == NULL) {
		sm_seterr(err, errlen, "decrypt: out of memory");
		st = SM_ERR_NOMEM;
		goto done;
	}
	if (!CMS_decrypt(cms, NULL, NULL, NULL, sink, CMS_BINARY)) {
		buf_truncate_wipe(out, keep);
		if (ossl_drain(tmp, sizeof(tmp))) {
			sm_seterr(err, errlen, "decrypt: content cipher not "
			    "available (%s; RC2 and DES need "
			    "smime_enable_legacy())", tmp);
			st = SM_ERR_UNSUPPORTED;
		} else {
			sm_seterr(err, errlen, "decrypt: content does not "
			    "decrypt (wrong key or corrupt envelope)");
			st = SM_ERR_CRYPTO;
		}
		goto done;
	}
	st = SM_OK;
done:
	BIO_free(sink);
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return st;
}
