/*
 * revworker.h — revocation checks off the hot path.
 *
 * revworker_check asks about one stored certificate: OCSP first (every
 * AIA responder URL; GET when the request fits a 255-byte URL as RFC 5019
 * wants, else POST, and POST again when GET fails), then CRLs (a CRL
 * carried in signed mail for the issuer, a stored CRL of a distribution
 * point while it is current, else the distribution point fetched). The
 * first answer (good or revoked) wins.
 *
 * The worker is one thread that wakes every interval (or when woken),
 * takes the rows that are due from the store, checks them one by one and
 * stores the results. RCPT and end of data never wait for it: they read
 * what it stored (revstore_usable).
 */
#ifndef SMIME_REVWORKER_H
#define SMIME_REVWORKER_H

#include <stdbool.h>
#include <time.h>

#include <openssl/x509.h>

#include "revfetch.h"
#include "revstore.h"

/* Check e now (network allowed). out: the answer, or REV_UNKNOWN with the
 * reasons of every source tried. */
void revworker_check(struct revstore *rs, const struct revfetch_opts *o,
		     const struct rev_entry *e, time_t now,
		     struct rev_result *out);

/* Check every due row now (smimectl revocation refresh; and the worker's
 * own round). Returns how many rows were checked in *n. */
sm_status revworker_round(struct revstore *rs, const struct revfetch_opts *o,
			  time_t now, size_t *n);

/* CRLs carried in a signed message: each one that its issuer among certs
 * signed is stored (by issuer), and cert (the signer) is judged against it
 * at once. Returns SM_OK whatever the CRLs say. */
sm_status revworker_mail_crls(struct revstore *rs, STACK_OF(X509_CRL) *crls,
			      STACK_OF(X509) *certs, X509 *cert, time_t now);

struct revworker;
/* Start the thread, with a store handle of its own opened on path.
 * timeout_ms and proxy (copied) apply to every fetch. */
sm_status revworker_start(const char *path, long timeout_ms,
			  const char *proxy, unsigned interval_s,
			  struct revworker **out, char *err, size_t errlen);
void revworker_wake(struct revworker *w);
void revworker_stop(struct revworker *w); /* joins; NULL-safe */

#endif
