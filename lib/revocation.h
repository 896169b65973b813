/*
 * revocation.h — is a certificate revoked? Verification of the two
 * answers a CA gives (a CRL, an OCSP response) as pure functions of bytes,
 * certificates and a time, plus the URLs a certificate names for them.
 *
 * Nothing here touches the network or a store: revfetch fetches, revstore
 * keeps results, revworker runs the checks off the hot path.
 *
 * What counts as an answer:
 *  - a CRL counts when it is issued by the certificate's issuer (name), its
 *    signature verifies with the issuer's key, thisUpdate is not in the
 *    future and nextUpdate is present and not past (REV_LEEWAY both ways);
 *  - an OCSP response counts when it is "successful", signed by the issuer
 *    itself or by a responder certificate the issuer issued for
 *    id-kp-OCSPSigning, its nonce equals the request's when both carry
 *    one, it holds a SingleResponse for the certificate, and thisUpdate /
 *    nextUpdate hold as for a CRL (no nextUpdate: good for REV_OCSP_TTL).
 * Anything else is not an answer: REV_UNKNOWN with the reason in why.
 * A responder that says "unknown" gives REV_UNKNOWN too.
 */
#ifndef SMIME_REVOCATION_H
#define SMIME_REVOCATION_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "status.h"

#define REV_LEEWAY 300		/* seconds of clock skew tolerated */
#define REV_OCSP_TTL 3600	/* an OCSP answer without nextUpdate */
#define REV_WHY_SIZE 160

enum rev_status {
	REV_UNKNOWN = 0, /* no valid answer (yet) */
	REV_GOOD,
	REV_REVOKED,
};

enum rev_source { REV_SRC_NONE = 0, REV_SRC_OCSP, REV_SRC_CRL, REV_SRC_CRL_MAIL };

struct rev_result {
	enum rev_status status;
	enum rev_source source;
	time_t revoked_at;	/* REV_REVOKED */
	int reason;		/* CRL reason code, -1 none given */
	time_t this_update;
	time_t next_update;	/* the answer is good until then */
	char why[REV_WHY_SIZE]; /* REV_UNKNOWN: why there is no answer */
};

/* A CRL (DER, or PEM) about cert, issued by issuer, at now. Returns SM_OK
 * with res filled (REV_UNKNOWN with why when the CRL does not count),
 * SM_ERR_PARSE when the bytes are no CRL. */
sm_status rev_crl_check(const unsigned char *der, size_t len, X509 *cert,
			X509 *issuer, time_t now, struct rev_result *res);
/* The same for a parsed CRL. */
sm_status rev_crl_check_x(X509_CRL *crl, X509 *cert, X509 *issuer,
			  time_t now, struct rev_result *res);
/* Does crl come from issuer (name and signature)? For CRLs carried in
 * signed mail, which are stored only when they do. */
bool rev_crl_from(X509_CRL *crl, X509 *issuer);

/* An OCSP request for cert (SHA-1 CertID, as RFC 5019 responders expect),
 * with a fresh nonce when nonce is true. *der and *len: its encoding
 * (OPENSSL_free). *req: the request, kept for the nonce check. */
sm_status rev_ocsp_request(X509 *cert, X509 *issuer, bool nonce,
			   OCSP_REQUEST **req, unsigned char **der,
			   size_t *len);
/* An OCSP response (DER) to req (NULL: no nonce check). */
sm_status rev_ocsp_check(const unsigned char *der, size_t len,
			 OCSP_REQUEST *req, X509 *cert, X509 *issuer,
			 time_t now, struct rev_result *res);

/* The HTTP(S) URLs in the certificate's AIA (OCSP) and CRL distribution
 * points; other schemes (ldap) are left out. Free with rev_urls_free. */
sm_status rev_ocsp_urls(X509 *cert, char ***out, size_t *n);
sm_status rev_crl_urls(X509 *cert, char ***out, size_t *n);
void rev_urls_free(char **v, size_t n);

/* The issuer of cert among certs (name and key identifier match and the
 * signature verifies), or NULL. Not a new reference. */
X509 *rev_find_issuer(X509 *cert, STACK_OF(X509) *certs);

/* "keyCompromise", … ; "unspecified" for -1 or an unknown code. */
const char *rev_reason_name(int reason);
const char *rev_status_name(enum rev_status s); /* "good", … */
const char *rev_source_name(enum rev_source s); /* "ocsp", "crl", … */

#endif
