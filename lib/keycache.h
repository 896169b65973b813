/*
 * keycache.h — the cache of partners' certificates (harvested or imported).
 *
 * Model. A certificate row holds what the certificate is (DER, SHA-256
 * fingerprint, subject, issuer, serial, validity, key type and size, the
 * addresses it speaks for, the CA certificates it arrived with). A binding
 * row ties one certificate to one address: how we got it (harvested or
 * imported), the sMIMECapabilities seen with it, whether it is the
 * partner's designated encryption certificate, first/last seen, and its
 * status. Status lives on the binding because one certificate can carry
 * several addresses and be superseded for one of them only.
 *
 * Addresses. Bindings store the address with the local part exactly as
 * written and the domain lowercased, plus a fully lowercased copy.
 * Everything that picks a key for mail (keycache_store, keycache_select)
 * compares the local part exactly: RFC 5321 makes it case-sensitive, and
 * encrypting Bob's mail to a certificate harvested from "BOB" would be a
 * guess with someone's confidentiality. Admin look-ups and removal
 * (keycache_find_address, keycache_remove_address) fold case, so
 * `smimectl cert remove Bob@x` leaves nothing behind.
 *
 * Renewal. Per address there is at most one active binding per class
 * (designated encryption certificate or not). A new certificate for the
 * address supersedes the active one of its class when its notBefore is
 * newer (equal notBefore: a later notAfter), or when the active one has
 * already expired and the new one has not; otherwise the newcomer is kept
 * as history (status superseded). Superseded, expired and removed
 * certificates stay in the cache for history and are never selected.
 * Re-storing a removed certificate brings it back (the FAQ's "delete the
 * contact, exchange again").
 *
 * Status as reported: removed, superseded, expired (an active binding past
 * its notAfter, computed at read time with clock_now()), active.
 *
 * Threads and processes. A struct keycache is safe to share between
 * threads. The SQLite backend keeps a small pool of connections (one per
 * concurrent caller, at most KC_SQLITE_MAX_CONN, opened on demand); each
 * connection is used by one thread at a time and keeps its prepared
 * statements. The database runs in WAL mode with a 5 s busy timeout, so
 * readers never wait for writers and another process (smimectl) can import
 * and remove while the daemon runs. Every change is one transaction
 * (BEGIN IMMEDIATE), so a killed process leaves either the whole change or
 * none of it. A process that forks must open its own keycache in the
 * child; never use a parent's handle across fork().
 */
#ifndef SMIME_KEYCACHE_H
#define SMIME_KEYCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "caps.h"
#include "status.h"
#include "x509util.h"

#define KC_SQLITE_MAX_CONN 8
/* Size of the reason buffer that always fits keycache_select's texts. */
#define KC_REASON_SIZE 128

enum kc_source {
	KC_SRC_HARVESTED = 0,
	KC_SRC_IMPORTED,
};

enum kc_status {
	KC_ST_ACTIVE = 0,
	KC_ST_SUPERSEDED,
	KC_ST_EXPIRED, /* reported only; never stored */
	KC_ST_REMOVED,
};

enum keycache_outcome {
	KC_INSERTED,		  /* new for this address, now its active one */
	KC_UPDATED,		  /* seen before: last_seen and caps refreshed */
	KC_SUPERSEDED_OLD,	  /* replaced a different key: a key change */
	KC_RENEWED_SAME_KEY,	  /* replaced a certificate with the same
				     public key: renewal, not a key change */
	KC_OLDER_KEPT_AS_HISTORY, /* an older certificate; stored as
				     superseded, the active one stays */
};

/* One binding with its certificate: what `smimectl cert list/show` prints. */
struct kc_record {
	/* the binding */
	char *address;		/* local part exact, domain lowercased */
	enum kc_status status;	/* as reported (expired computed) */
	caps_t caps;
	bool enc_pref;
	enum kc_source source;
	time_t first_seen, last_seen;
	/* the certificate */
	char fingerprint[X509U_FP_SIZE];
	char key_fingerprint[X509U_FP_SIZE];
	char *subject, *issuer, *serial;
	time_t not_before, not_after;
	enum x509u_key_type key_type;
	int key_bits;
	char **emails; /* the addresses the certificate speaks for */
	size_t n_emails;
	unsigned char *der;
	size_t der_len;
	unsigned char *chain; /* concatenated DER of CA certificates seen with
				 it (may be NULL) */
	size_t chain_len;
};

struct keycache;

/* backend: "sqlite" (path: the database file, created when missing).
 * Creates or migrates the schema. err receives a one-line reason. */
sm_status keycache_open(const char *backend, const char *path,
			struct keycache **out, char *err, size_t errlen);
/* NULL-safe. No other thread may be using kc. */
void keycache_close(struct keycache *kc);

/* Store cert for address (a harvest, or an import). chain: CA certificates
 * that came with it (the SignedData's set is fine: end-entity certificates
 * and the cert itself are filtered out; may be NULL) — kept so that trust
 * can be re-checked at selection time. caps: CAP_KNOWN unset means "none
 * seen" and keeps what was known. enc_pref: the partner designated it for
 * encryption. *outcome says what happened; old_fp (X509U_FP_SIZE bytes,
 * may be NULL) receives the replaced certificate's fingerprint for
 * KC_SUPERSEDED_OLD / KC_RENEWED_SAME_KEY, the still-active one's for
 * KC_OLDER_KEPT_AS_HISTORY, "" otherwise. The caller logs key changes.
 * Does not apply the harvest rules (harvest_judge does). */
sm_status keycache_store(struct keycache *kc, X509 *cert,
			 STACK_OF(X509) *chain, const char *address,
			 caps_t caps, bool enc_pref, enum kc_source src,
			 enum keycache_outcome *outcome,
			 char old_fp[X509U_FP_SIZE]);

/* The certificate to encrypt to for address, now (clock_now()): among the
 * active bindings, valid now, chaining to trust now (trust NULL: not
 * checked; allow_self_signed as in the harvest rules), with a key usage
 * that allows encryption and an EKU (if any) with emailProtection; the
 * designated encryption certificate first,
 * then the newest notBefore. On success *cert_out is a new reference
 * (caller frees) and *caps_out its caps (either may be NULL). Without one:
 * SM_ERR_NOKEY and reason (KC_REASON_SIZE is enough) is exactly one of
 *   "no certificate exchanged"
 *   "certificate expired on YYYY-MM-DD"
 *   "certificate not yet valid"
 *   "certificate not trusted"
 *   "certificate not usable for encryption"
 *   "certificate removed"
 * (about the best candidate when several fail). SM_ERR_PARSE: address is
 * not an address. */
sm_status keycache_select(struct keycache *kc, const char *address,
			  X509_STORE *trust, bool allow_self_signed,
			  X509 **cert_out, caps_t *caps_out, char *reason,
			  size_t reasonlen);

/* Every binding (expiring_days < 0), or the active ones that expire
 * within expiring_days days from now and have not yet. Ordered by
 * address, newest notBefore first. Free with kc_records_free. */
sm_status keycache_list(struct keycache *kc, int expiring_days,
			struct kc_record **out, size_t *n);
/* All bindings (history included) of an address, case folded; or of a
 * fingerprint (64 hex digits, colons allowed). None: SM_OK with *n == 0. */
sm_status keycache_find_address(struct keycache *kc, const char *address,
				struct kc_record **out, size_t *n);
sm_status keycache_find_fingerprint(struct keycache *kc, const char *fp,
				    struct kc_record **out, size_t *n);
/* Mark bindings removed (history kept): every binding of the address
 * (case folded) or of the certificate. *count (may be NULL) receives how
 * many changed. SM_ERR_NOTFOUND when the cache never had any. */
sm_status keycache_remove_address(struct keycache *kc, const char *address,
				  size_t *count);
sm_status keycache_remove_fingerprint(struct keycache *kc, const char *fp,
				      size_t *count);

/* Call fn for every binding, in keycache_list order, without loading all
 * of them. fn returns 0 to go on, anything else to stop (returned as
 * SM_OK). The record is valid during the call only. fn must not call into
 * the same keycache (it holds a read transaction open). */
typedef int (*kc_iter_fn)(const struct kc_record *rec, void *arg);
sm_status keycache_iterate(struct keycache *kc, kc_iter_fn fn, void *arg);

/* Storage health for `smimectl check`: schema version and an integrity
 * check. err receives the first problem. */
sm_status keycache_check(struct keycache *kc, int *schema_version, char *err,
			 size_t errlen);

/* The record's certificate (new reference), NULL when unparsable. */
X509 *kc_record_cert(const struct kc_record *r);
void kc_record_free(struct kc_record *r); /* members only */
void kc_records_free(struct kc_record *v, size_t n);
const char *kc_status_name(enum kc_status st);	 /* "active", … */
const char *kc_source_name(enum kc_source src);	 /* "harvested", … */
const char *keycache_outcome_name(enum keycache_outcome o);

/* ------------------------------------------------------------------------
 * Backend interface: for storage implementations only, not for callers.
 *
 * A backend stores records and runs each operation atomically; the policy
 * (what supersedes what) is kc_plan_store(), which put() calls inside its
 * write transaction with the address's current bindings, so every backend
 * decides the same way. Records handed to put() are complete and
 * normalised; records a backend returns carry the stored status (active,
 * superseded or removed) and the generic layer derives "expired".
 */

struct kc_backend;

/* What the planner needs to know about one binding. */
struct kc_binding_view {
	const char *fingerprint;
	const char *key_fingerprint;
	time_t not_before, not_after;
	bool enc_pref;
	enum kc_status status; /* stored: active, superseded or removed */
};

struct kc_plan {
	enum keycache_outcome outcome;
	bool update_only;	/* the binding exists and is not removed:
				   refresh last_seen, caps, enc_pref */
	enum kc_status status;	/* the newcomer's binding status otherwise */
	char old_fp[X509U_FP_SIZE];
};

/* Decide a store. existing: the address's bindings (any status, the
 * newcomer's own included if present); supersede[i] is set for each
 * existing binding to mark superseded. */
void kc_plan_store(const struct kc_binding_view *existing, size_t n,
		   const struct kc_binding_view *newcomer, time_t now,
		   bool *supersede, struct kc_plan *plan);

struct kc_ops {
	const char *name;
	sm_status (*open)(const char *path, struct kc_backend **out,
			  char *err, size_t errlen);
	void (*close)(struct kc_backend *be);
	/* rec->status is ignored; caps without CAP_KNOWN keep the stored
	 * ones; enc_pref is sticky. */
	sm_status (*put)(struct kc_backend *be, const struct kc_record *rec,
			 time_t now, struct kc_plan *plan);
	sm_status (*lookup_address)(struct kc_backend *be, const char *address,
				    bool fold_case, struct kc_record **out,
				    size_t *n);
	sm_status (*lookup_fingerprint)(struct kc_backend *be, const char *fp,
					struct kc_record **out, size_t *n);
	/* not_after in (after, before]; before == 0: every binding, any
	 * status; otherwise stored-active bindings only. */
	sm_status (*list)(struct kc_backend *be, time_t after, time_t before,
			  struct kc_record **out, size_t *n);
	/* Exactly one of address (case folded) and fp is non-NULL. */
	sm_status (*remove)(struct kc_backend *be, const char *address,
			    const char *fp, size_t *count);
	sm_status (*iterate)(struct kc_backend *be, kc_iter_fn fn, void *arg);
	sm_status (*check)(struct kc_backend *be, int *schema_version,
			   char *err, size_t errlen);
};

extern const struct kc_ops kc_sqlite_ops;

#endif
