/*
 * harvest.c — the harvest rules (see harvest.h for the rules and texts).
 */
#include "harvest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "x509util.h"

/* The smallest RSA modulus we encrypt to (DESIGN.md: never below 2048). */
#define HARVEST_MIN_RSA_BITS 2048

static void
verdict_reason(struct harvest_verdict *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
verdict_reason(struct harvest_verdict *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

/* A digest we refuse to harvest under, or NULL when it is acceptable. The
 * name is the lowercase short name used in the reason text. */
static const char *
weak_digest(int nid)
{
	switch (nid) {
	case NID_md2: return "md2";
	case NID_md4: return "md4";
	case NID_md5: return "md5";
	case NID_md5_sha1: return "md5-sha1";
	case NID_sha1: return "sha1";
	default: return NULL;
	}
}

/* Rule 3, validity now. Writes the reason and returns false on failure. */
static bool
rule_valid_now(X509 *cert, time_t now, char *why, size_t len)
{
	char date[16];
	time_t na;

	switch (x509u_validity(cert, now)) {
	case X509U_VALID: return true;
	case X509U_EXPIRED:
		if (x509u_not_after(cert, &na) != SM_OK)
			na = 0;
		x509u_date(na, date, sizeof(date));
		snprintf(why, len, "certificate expired on %s", date);
		return false;
	case X509U_NOT_YET_VALID:
		snprintf(why, len, "certificate not yet valid");
		return false;
	case X509U_BAD_TIME: break;
	}
	snprintf(why, len, "certificate validity period unreadable");
	return false;
}

/* Rules 5–8 for the certificate that would be stored. */
static bool
rules_for_encryption(X509 *cert, int digest_nid, char *why, size_t len)
{
	enum x509u_key_type kt;
	const char *weak;
	int bits = 0, mdnid = NID_undef, pknid = NID_undef;

	if (x509u_extensions_invalid(cert)) {
		snprintf(why, len, "certificate extensions malformed");
		return false;
	}
	kt = x509u_key_type(cert, &bits);
	if (kt != X509U_KEY_RSA && kt != X509U_KEY_EC) {
		snprintf(why, len, "key type %s cannot encrypt",
			 x509u_key_type_name(kt));
		return false;
	}
	if (!x509u_ku_allows_encryption(cert)) {
		snprintf(why, len, "key usage does not allow encryption");
		return false;
	}
	if (!x509u_eku_allows_email(cert)) {
		snprintf(why, len, "extended key usage lacks emailProtection");
		return false;
	}
	if (digest_nid == NID_undef) {
		snprintf(why, len, "unknown digest");
		return false;
	}
	if ((weak = weak_digest(digest_nid)) != NULL) {
		snprintf(why, len, "weak digest %s", weak);
		return false;
	}
	/* A certificate whose own signature uses a broken digest can be
	 * forged by collision (the 2008 MD5 rogue CA), however good the
	 * message signature is. */
	if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &mdnid,
				&pknid) &&
	    (weak = weak_digest(mdnid)) != NULL) {
		snprintf(why, len, "certificate signed with weak digest %s",
			 weak);
		return false;
	}
	if (kt == X509U_KEY_RSA && bits < HARVEST_MIN_RSA_BITS) {
		snprintf(why, len, "RSA key too small (%d bits)", bits);
		return false;
	}
	return true;
}

/* Judge one separate encryption certificate candidate: its own chain
 * (never self-signed: the certificate set is not signed), validity, the
 * From address, then rules 5–8. */
static bool
candidate_ok(const struct harvest_input *in, X509 *c, char *why, size_t len,
	     sm_status *st)
{
	sm_status vst;

	vst = x509u_verify(c, in->certs, in->trust, false, in->now, NULL);
	if (vst == SM_ERR_NOMEM || vst == SM_ERR_CRYPTO || vst == SM_ERR_ARG) {
		*st = vst;
		snprintf(why, len, "internal error verifying certificate");
		return false;
	}
	if (vst != SM_OK) {
		snprintf(why, len, "certificate not trusted");
		return false;
	}
	if (!rule_valid_now(c, in->now, why, len))
		return false;
	if (!x509u_has_address(c, in->from)) {
		snprintf(why, len, "no certificate address matches From %s",
			 in->from);
		return false;
	}
	return rules_for_encryption(c, in->digest_nid, why, len);
}

/* Could c be a separate encryption certificate for From? A cheap filter
 * before the full rules: an end-entity certificate other than the signer
 * that speaks for the From address. */
static bool
candidate_plausible(const struct harvest_input *in, X509 *c)
{
	return c != NULL && X509_cmp(c, in->signer) != 0 &&
	       X509_check_ca(c) == 0 && x509u_has_address(c, in->from);
}

enum cand_result { CAND_REFUSED, CAND_TAKEN, CAND_ERROR };

/* Judge candidate c; on success fill the verdict. The first refusal's
 * reason is kept in first_why for the final message. */
static enum cand_result
try_candidate(const struct harvest_input *in, X509 *c,
	      struct harvest_verdict *out, char *first_why, size_t len,
	      sm_status *st)
{
	char why[HARVEST_REASON_SIZE];

	if (!candidate_plausible(in, c))
		return CAND_REFUSED;
	if (candidate_ok(in, c, why, sizeof(why), st)) {
		out->harvest = true;
		out->cert = c;
		out->enc_pref = true;
		verdict_reason(out, "%s",
			       c == in->enc_pref
				   ? "encryption certificate named by "
				     "sMIMEEncryptionKeyPreference"
				   : "separate encryption certificate");
		return CAND_TAKEN;
	}
	if (*st != SM_OK) {
		verdict_reason(out, "%s", why);
		return CAND_ERROR;
	}
	if (first_why[0] == '\0')
		snprintf(first_why, len, "%s", why);
	return CAND_REFUSED;
}

sm_status
harvest_judge(const struct harvest_input *in, struct harvest_verdict *out)
{
	char cand_why[HARVEST_REASON_SIZE] = "";
	char why[HARVEST_REASON_SIZE];
	sm_status st = SM_OK;
	int i, ncerts;

	memset(out, 0, sizeof(*out));
	if (in == NULL || in->signer == NULL || in->from == NULL) {
		verdict_reason(out, "no signer certificate or From address");
		return SM_ERR_ARG;
	}

	/* 1. */
	if (!in->signature_ok) {
		verdict_reason(out, "signature does not verify");
		return SM_OK;
	}

	/* 2. */
	switch (in->chain) {
	case HARVEST_CHAIN_TRUSTED: break;
	case HARVEST_CHAIN_SELF_SIGNED:
		/* Trust the CMS layer's mapping only as far as the
		 * certificate really is self-signed. */
		if (!x509u_is_self_signed(in->signer)) {
			verdict_reason(out, "certificate not trusted");
			return SM_OK;
		}
		if (!in->allow_self_signed) {
			verdict_reason(out,
				       "self-signed certificate not allowed");
			return SM_OK;
		}
		break;
	case HARVEST_CHAIN_EXPIRED:
		/* An expired leaf is better reported with its date. */
		if (!rule_valid_now(in->signer, in->now, why, sizeof(why))) {
			verdict_reason(out, "%s", why);
			return SM_OK;
		}
		verdict_reason(out, "certificate chain expired");
		return SM_OK;
	case HARVEST_CHAIN_UNTRUSTED:
	default:
		verdict_reason(out, "certificate not trusted");
		return SM_OK;
	}

	/* Trusted only because the admin allows self-signed certificates? */
	out->self_signed = in->chain == HARVEST_CHAIN_SELF_SIGNED ||
			   (x509u_is_self_signed(in->signer) &&
			    (in->trust == NULL ||
			     x509u_verify(in->signer, in->certs, in->trust,
					  false, in->now, NULL) != SM_OK));

	/* 3. */
	if (!rule_valid_now(in->signer, in->now, why, sizeof(why))) {
		verdict_reason(out, "%s", why);
		return SM_OK;
	}

	/* 4. */
	if (!x509u_has_address(in->signer, in->from)) {
		verdict_reason(out, "no certificate address matches From %s",
			       in->from);
		return SM_OK;
	}

	/* A separate encryption certificate, if one qualifies: the one the
	 * signer named first, then the certificate set in order. */
	if (in->trust != NULL) {
		ncerts = in->certs ? sk_X509_num(in->certs) : 0;
		for (i = -1; i < ncerts; i++) {
			X509 *c = i < 0 ? in->enc_pref : sk_X509_value(in->certs, i);

			if (i >= 0 && in->enc_pref != NULL &&
			    X509_cmp(c, in->enc_pref) == 0)
				continue; /* already judged */
			switch (try_candidate(in, c, out, cand_why,
					      sizeof(cand_why), &st)) {
			case CAND_TAKEN: return SM_OK;
			case CAND_ERROR: return st;
			case CAND_REFUSED: break;
			}
		}
	}

	/* The signer itself, rules 5–8. */
	if (!rules_for_encryption(in->signer, in->digest_nid, why,
				  sizeof(why))) {
		/* A signing-only signer with a failing encryption
		 * certificate: the encryption certificate's failure is the
		 * interesting one. */
		if (cand_why[0] != '\0' &&
		    (strcmp(why, "key usage does not allow encryption") == 0 ||
		     strncmp(why, "key type ", 9) == 0))
			verdict_reason(out, "encryption certificate: %s",
				       cand_why);
		else
			verdict_reason(out, "%s", why);
		return SM_OK;
	}
	out->harvest = true;
	out->cert = in->signer;
	/* The signer naming itself as its encryption preference is a
	 * dual-use certificate the partner explicitly wants us to use. */
	out->enc_pref =
	    in->enc_pref != NULL && X509_cmp(in->enc_pref, in->signer) == 0;
	verdict_reason(out, "signer certificate");
	return SM_OK;
}
