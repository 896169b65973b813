/*
 * revocation.c — CRL and OCSP verification (see revocation.h).
 */
#include "revocation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "x509util.h"

static const char *const reason_names[] = {
	"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", "unused",
	"removeFromCRL", "privilegeWithdrawn", "aACompromise",
};

const char *
rev_reason_name(int reason)
{
	if (reason < 0 ||
	    (size_t)reason >= sizeof(reason_names) / sizeof(reason_names[0]))
		return "unspecified";
	return reason_names[reason];
}

const char *
rev_status_name(enum rev_status s)
{
	switch (s) {
	case REV_GOOD: return "good";
	case REV_REVOKED: return "revoked";
	case REV_UNKNOWN: break;
	}
	return "unknown";
}

const char *
rev_source_name(enum rev_source s)
{
	switch (s) {
	case REV_SRC_OCSP: return "ocsp";
	case REV_SRC_CRL: return "crl";
	case REV_SRC_CRL_MAIL: return "crl-in-mail";
	case REV_SRC_NONE: break;
	}
	return "none";
}

static void
res_unknown(struct rev_result *res, enum rev_source src, const char *why)
{
	memset(res, 0, sizeof(*res));
	res->status = REV_UNKNOWN;
	res->source = src;
	res->reason = -1;
	snprintf(res->why, sizeof(res->why), "%s", why);
}

/* thisUpdate/nextUpdate against now; false (with why) when the answer is
 * not current. */
static bool
times_ok(const ASN1_TIME *thisu, const ASN1_TIME *nextu, time_t now,
	 time_t ttl, const char *what, struct rev_result *res)
{
	char date[16];

	if (thisu == NULL || x509u_time(thisu, &res->this_update) != SM_OK) {
		snprintf(res->why, sizeof(res->why), "%s has no valid thisUpdate",
			 what);
		return false;
	}
	if (res->this_update > now + REV_LEEWAY) {
		snprintf(res->why, sizeof(res->why), "%s is not yet valid", what);
		return false;
	}
	if (nextu == NULL) {
		if (ttl == 0) {
			snprintf(res->why, sizeof(res->why),
				 "%s has no nextUpdate", what);
			return false;
		}
		res->next_update = now + ttl;
		return true;
	}
	if (x509u_time(nextu, &res->next_update) != SM_OK) {
		snprintf(res->why, sizeof(res->why), "%s has no valid nextUpdate",
			 what);
		return false;
	}
	if (res->next_update + REV_LEEWAY < now) {
		x509u_date(res->next_update, date, sizeof(date));
		snprintf(res->why, sizeof(res->why), "%s expired on %s", what,
			 date);
		return false;
	}
	return true;
}

/* ---- CRL ---- */

bool
rev_crl_from(X509_CRL *crl, X509 *issuer)
{
	EVP_PKEY *k;

	if (crl == NULL || issuer == NULL ||
	    X509_NAME_cmp(X509_CRL_get_issuer(crl),
			  X509_get_subject_name(issuer)) != 0)
		return false;
	if ((k = X509_get0_pubkey(issuer)) == NULL)
		return false;
	return X509_CRL_verify(crl, k) == 1;
}

sm_status
rev_crl_check_x(X509_CRL *crl, X509 *cert, X509 *issuer, time_t now,
		struct rev_result *res)
{
	X509_REVOKED *rv = NULL;
	ASN1_ENUMERATED *code;

	res_unknown(res, REV_SRC_CRL, "");
	if (crl == NULL || cert == NULL || issuer == NULL)
		return SM_ERR_ARG;
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl),
			  X509_get_issuer_name(cert)) != 0 ||
	    X509_NAME_cmp(X509_CRL_get_issuer(crl),
			  X509_get_subject_name(issuer)) != 0) {
		snprintf(res->why, sizeof(res->why),
			 "CRL is not from the certificate's issuer");
		return SM_OK;
	}
	if (!rev_crl_from(crl, issuer)) {
		snprintf(res->why, sizeof(res->why),
			 "CRL signature does not verify with the issuer's key");
		return SM_OK;
	}
	if (!times_ok(X509_CRL_get0_lastUpdate(crl),
		      X509_CRL_get0_nextUpdate(crl), now, 0, "CRL", res))
		return SM_OK;
	if (X509_CRL_get0_by_cert(crl, &rv, cert) == 1 && rv != NULL) {
		res->status = REV_REVOKED;
		if (x509u_time(X509_REVOKED_get0_revocationDate(rv),
			       &res->revoked_at) != SM_OK)
			res->revoked_at = res->this_update;
		code = X509_REVOKED_get_ext_d2i(rv, NID_crl_reason, NULL, NULL);
		res->reason = code ? (int)ASN1_ENUMERATED_get(code) : -1;
		ASN1_ENUMERATED_free(code);
	} else {
		res->status = REV_GOOD;
	}
	res->why[0] = '\0';
	return SM_OK;
}

sm_status
rev_crl_check(const unsigned char *der, size_t len, X509 *cert, X509 *issuer,
	      time_t now, struct rev_result *res)
{
	const unsigned char *p = der;
	X509_CRL *crl;
	sm_status st;

	res_unknown(res, REV_SRC_CRL, "no CRL");
	if (der == NULL || len == 0 || len > 0x7fffffff)
		return SM_ERR_PARSE;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	if (crl == NULL) {
		BIO *b = BIO_new_mem_buf(der, (int)len);

		crl = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
	}
	if (crl == NULL) {
		snprintf(res->why, sizeof(res->why), "not a CRL");
		return SM_ERR_PARSE;
	}
	st = rev_crl_check_x(crl, cert, issuer, now, res);
	X509_CRL_free(crl);
	return st;
}

/* ---- OCSP ---- */

sm_status
rev_ocsp_request(X509 *cert, X509 *issuer, bool nonce, OCSP_REQUEST **req,
		 unsigned char **der, size_t *len)
{
	OCSP_CERTID *id;
	int n;

	*req = NULL;
	*der = NULL;
	*len = 0;
	if ((*req = OCSP_REQUEST_new()) == NULL)
		return SM_ERR_NOMEM;
	id = OCSP_cert_to_id(EVP_sha1(), cert, issuer);
	if (id == NULL || OCSP_request_add0_id(*req, id) == NULL) {
		OCSP_CERTID_free(id);
		goto fail;
	}
	if (nonce && OCSP_request_add1_nonce(*req, NULL, 16) != 1)
		goto fail;
	if ((n = i2d_OCSP_REQUEST(*req, der)) <= 0)
		goto fail;
	*len = (size_t)n;
	return SM_OK;
fail:
	OCSP_REQUEST_free(*req);
	*req = NULL;
	return SM_ERR_CRYPTO;
}

/* Is the basic response signed by issuer, or by a responder issuer
 * delegated (id-kp-OCSPSigning)? OCSP_basic_verify against a store that
 * holds only the issuer, as a partial-chain anchor, at now. */
static bool
ocsp_signed_by(OCSP_BASICRESP *bs, X509 *issuer, time_t now)
{
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509) *certs = sk_X509_new_null();
	X509_VERIFY_PARAM *vp;
	bool ok = false;

	if (store == NULL || certs == NULL || !X509_STORE_add_cert(store, issuer) ||
	    !sk_X509_push(certs, issuer))
		goto done;
	vp = X509_STORE_get0_param(store);
	X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_PARTIAL_CHAIN);
	X509_VERIFY_PARAM_set_time(vp, now);
	ok = OCSP_basic_verify(bs, certs, store, 0) == 1;
done:
	sk_X509_free(certs);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

static sm_status
ocsp_single(OCSP_BASICRESP *bs, X509 *cert, X509 *issuer, time_t now,
	    struct rev_result *res)
{
	ASN1_GENERALIZEDTIME *rev = NULL, *thisu = NULL, *nextu = NULL;
	OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), cert, issuer);
	int status = -1, reason = -1;

	if (id == NULL)
		return SM_ERR_CRYPTO;
	if (OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisu,
				  &nextu) != 1) {
		OCSP_CERTID_free(id);
		snprintf(res->why, sizeof(res->why),
			 "OCSP response is about another certificate");
		return SM_OK;
	}
	OCSP_CERTID_free(id);
	if (!times_ok(thisu, nextu, now, REV_OCSP_TTL, "OCSP response", res))
		return SM_OK;
	switch (status) {
	case V_OCSP_CERTSTATUS_GOOD:
		res->status = REV_GOOD;
		break;
	case V_OCSP_CERTSTATUS_REVOKED:
		res->status = REV_REVOKED;
		res->reason = reason;
		if (rev == NULL || x509u_time(rev, &res->revoked_at) != SM_OK)
			res->revoked_at = res->this_update;
		break;
	default:
		snprintf(res->why, sizeof(res->why),
			 "OCSP responder does not know the certificate");
		return SM_OK;
	}
	res->why[0] = '\0';
	return SM_OK;
}

sm_status
rev_ocsp_check(const unsigned char *der, size_t len, OCSP_REQUEST *req,
	       X509 *cert, X509 *issuer, time_t now, struct rev_result *res)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *rsp = NULL;
	OCSP_BASICRESP *bs = NULL;
	sm_status st = SM_OK;
	int rs;

	res_unknown(res, REV_SRC_OCSP, "");
	if (der == NULL || len == 0 || len > 0x7fffffff ||
	    (rsp = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) == NULL) {
		snprintf(res->why, sizeof(res->why), "not an OCSP response");
		return SM_ERR_PARSE;
	}
	if ((rs = OCSP_response_status(rsp)) !=
	    OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		snprintf(res->why, sizeof(res->why), "OCSP responder said %s",
			 OCSP_response_status_str(rs));
		goto done;
	}
	if ((bs = OCSP_response_get1_basic(rsp)) == NULL) {
		snprintf(res->why, sizeof(res->why),
			 "OCSP response is not a basic response");
		goto done;
	}
	/* 1 equal, 2 neither has one, 3 only the response: fine; -1 the
	 * responder dropped ours (pre-produced answers do): fine, the time
	 * checks still bound its age; 0 a different nonce: a replay. */
	if (req != NULL && OCSP_check_nonce(req, bs) == 0) {
		snprintf(res->why, sizeof(res->why),
			 "OCSP response nonce does not match the request");
		goto done;
	}
	if (!ocsp_signed_by(bs, issuer, now)) {
		snprintf(res->why, sizeof(res->why),
			 "OCSP response is not signed by the issuer or its "
			 "delegated responder");
		goto done;
	}
	st = ocsp_single(bs, cert, issuer, now, res);
done:
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(rsp);
	return st;
}

/* ---- URLs and issuers ---- */

static bool
http_url(const char *u)
{
	return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

static sm_status
url_push(char ***v, size_t *n, const char *u)
{
	char **nv;

	if (!http_url(u) || *n >= 8)
		return SM_OK;
	if ((nv = realloc(*v, (*n + 1) * sizeof(*nv))) == NULL)
		return SM_ERR_NOMEM;
	*v = nv;
	if ((nv[*n] = strdup(u)) == NULL)
		return SM_ERR_NOMEM;
	(*n)++;
	return SM_OK;
}

void
rev_urls_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

sm_status
rev_ocsp_urls(X509 *cert, char ***out, size_t *n)
{
	STACK_OF(OPENSSL_STRING) *s = X509_get1_ocsp(cert);
	sm_status st = SM_OK;

	*out = NULL;
	*n = 0;
	for (int i = 0; st == SM_OK && i < sk_OPENSSL_STRING_num(s); i++)
		st = url_push(out, n, sk_OPENSSL_STRING_value(s, i));
	X509_email_free(s);
	if (st != SM_OK) {
		rev_urls_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return st;
}

sm_status
rev_crl_urls(X509 *cert, char ***out, size_t *n)
{
	STACK_OF(DIST_POINT) *dps =
		X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
	sm_status st = SM_OK;

	*out = NULL;
	*n = 0;
	for (int i = 0; st == SM_OK && i < sk_DIST_POINT_num(dps); i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		GENERAL_NAMES *names;

		if (dp->distpoint == NULL || dp->distpoint->type != 0)
			continue;
		names = dp->distpoint->name.fullname;
		for (int j = 0; st == SM_OK && j < sk_GENERAL_NAME_num(names);
		     j++) {
			GENERAL_NAME *g = sk_GENERAL_NAME_value(names, j);
			const unsigned char *d;
			char *u;
			int l;

			if (g->type != GEN_URI)
				continue;
			d = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
			l = ASN1_STRING_length(g->d.uniformResourceIdentifier);
			if (l <= 0 || memchr(d, '\0', (size_t)l) != NULL ||
			    (u = strndup((const char *)d, (size_t)l)) == NULL)
				continue;
			st = url_push(out, n, u);
			free(u);
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	if (st != SM_OK) {
		rev_urls_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return st;
}

X509 *
rev_find_issuer(X509 *cert, STACK_OF(X509) *certs)
{
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);

		if (c != cert && X509_check_issued(c, cert) == X509_V_OK &&
		    X509_verify(cert, X509_get0_pubkey(c)) == 1)
			return c;
	}
	ERR_clear_error();
	return NULL;
}
