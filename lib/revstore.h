/*
 * revstore.h — revocation results and CRLs, kept in a SQLite file of their
 * own beside the key cache (config_revocation_store: cache.path +
 * ".revocation"), whatever the key cache's backend.
 *
 * Why a file of its own: the results are a cache of what CAs publish, not
 * partner data; every gateway can rebuild them; and they must not wait on
 * (or for) the key cache's backend. WAL mode, one transaction per change,
 * synchronous=FULL: a killed process leaves the last committed state.
 *
 * Rows. One per certificate the gateway relies on (by SHA-256
 * fingerprint), with the certificate and its issuer (so the worker can ask
 * about it), the last answer (status, source, revocation date and reason,
 * thisUpdate/nextUpdate), when the status became unknown, the last error,
 * and when the worker should look again (due). The queue of the background
 * worker is exactly the rows that are due: it survives restarts, and
 * `smimectl revocation refresh` makes rows due. CRLs are kept by URL
 * (fetched) or by issuer ("issuer:FP", carried in signed mail).
 *
 * A struct revstore is safe to share between threads (one connection
 * under a mutex; every call is short).
 */
#ifndef SMIME_REVSTORE_H
#define SMIME_REVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "config.h"
#include "revocation.h"
#include "status.h"
#include "x509util.h"

struct revstore;

struct rev_entry {
	char fp[X509U_FP_SIZE];
	struct rev_result r;	 /* the last answer, or REV_UNKNOWN */
	time_t checked_at;	 /* of the last answer; 0 never */
	time_t unknown_since;	 /* 0 while an answer is current */
	time_t due;		 /* the worker looks again then */
	char last_error[REV_WHY_SIZE];
	unsigned char *cert, *issuer; /* DER; issuer may be NULL */
	size_t cert_len, issuer_len;
};

sm_status revstore_open(const char *path, struct revstore **out, char *err,
			size_t errlen);
void revstore_close(struct revstore *rs); /* NULL-safe */

/* The row of a certificate (fingerprint), or SM_ERR_NOTFOUND. Free the
 * entry with rev_entry_free. */
sm_status revstore_get(struct revstore *rs, const char *fp,
		       struct rev_entry *e);
void rev_entry_free(struct rev_entry *e); /* members only */

/* Queue cert (with its issuer, NULL when unknown) for the worker: a new
 * row is unknown since now and due now; an existing row only learns the
 * issuer it lacked. */
sm_status revstore_enqueue(struct revstore *rs, X509 *cert, X509 *issuer,
			   time_t now);
/* Store the worker's result. An answer (good, revoked) replaces the row's
 * and makes it due again ahead of nextUpdate. No answer keeps a still
 * current one (only last_error changes); otherwise the row becomes
 * unknown (since its old nextUpdate, or since it was queued) and is due
 * again after a back-off. */
sm_status revstore_put(struct revstore *rs, const char *fp,
		       const struct rev_result *r, time_t now);
/* Rows due at now, at most max, oldest due first. */
sm_status revstore_due(struct revstore *rs, time_t now, size_t max,
		       struct rev_entry **out, size_t *n);
/* Make a row (fp), or every row (fp NULL), due now. *count: how many. */
sm_status revstore_mark_due(struct revstore *rs, const char *fp, time_t now,
			    size_t *count);
void rev_entries_free(struct rev_entry *v, size_t n);

/* CRLs: key is the URL, or "issuer:" + the issuer's fingerprint for one
 * carried in mail. get: SM_ERR_NOTFOUND when none; *der malloc'd. */
sm_status revstore_crl_get(struct revstore *rs, const char *key,
			   unsigned char **der, size_t *len,
			   time_t *next_update);
sm_status revstore_crl_put(struct revstore *rs, const char *key,
			   const unsigned char *der, size_t len,
			   time_t this_update, time_t next_update, time_t now);

/* For `smimectl check`: rows, rows whose answer is stale (unknown, or
 * past nextUpdate), rows with an error, and the newest error. */
struct rev_health {
	size_t rows, stale, errors;
	char last_error[REV_WHY_SIZE];
};
sm_status revstore_health(struct revstore *rs, time_t now,
			  struct rev_health *h);

/* The hot path: may cert be used now under rc? Reads stored results only
 * (never the network); a certificate without a row is queued. true:
 * usable; false: reason says why, one of
 *   "certificate revoked on YYYY-MM-DD (REASON)"
 *   "issuing CA SUBJECT revoked on YYYY-MM-DD (REASON)"
 *   "revocation status unknown since YYYY-MM-DD"
 *   "revocation status of issuing CA SUBJECT unknown since YYYY-MM-DD"
 * soft: revoked refuses, unknown is tolerated; hard: revoked refuses, and
 * unknown refuses once it has lasted longer than grace_days; off: always
 * usable, nothing read or queued. Errors of the store count as unknown.
 *
 * Intermediates: every CA certificate of cert's chain above it (each
 * found by signature in chain, stopping at a self-signed one, the anchor)
 * is judged the same way, under its own row, and is queued for the
 * worker with its own issuer (from chain, else from anchors; may be
 * NULL). A CA certificate that names no revocation source (no http CRL
 * distribution point, no OCSP responder) is accepted under soft and hard
 * alike and is not queued.
 *
 * Kept: what the store said about a certificate and its chain (revoked,
 * unknown since when, or good; the policy is applied on every call) is
 * remembered as a certcache memo when the certificate and the chain came
 * from the certcache (certcache_key_of), so that a lookup with nothing
 * changed reads neither the rows nor the chain's signatures. It is used
 * only while the certcache generation holds (revstore_put, every key
 * cache write and every reload bump it), while the store's data version
 * is the same (another connection's commit, such as `smimectl revocation
 * refresh`, changes it), until the first good answer runs out or a
 * future revocation date comes, and for CERTCACHE_VERDICT_TTL at most.
 * Never kept: a judgment that queued a certificate or taught a row its
 * issuer (the next call reads the row), or one the store could not give. */
bool revstore_usable(struct revstore *rs, const struct cfg_revocation *rc,
		     X509 *cert, STACK_OF(X509) *chain, X509_STORE *anchors,
		     time_t now, char *reason, size_t len);

/* revstore_usable as a key cache selection hook (struct kc_hook's
 * usable, keycache.h): arg is a struct revstore_hook_arg; the chain is
 * the one stored with the certificate, anchors the trust anchors (may be
 * NULL: an intermediate whose issuer is not in the chain is then queued
 * without one). */
struct revstore_hook_arg {
	struct revstore *rs;
	const struct cfg_revocation *rc;
	X509_STORE *anchors;
};
sm_status revstore_hook(void *arg, X509 *cert, STACK_OF(X509) *chain,
			time_t now, char *reason, size_t len);

/* How many rows were read (revstore_get) through rs so far: tests and
 * benchmarks show with it that a kept judgment was used. */
unsigned long revstore_reads(struct revstore *rs);

#endif
