/*
 * keycache.h — the cache of partners' certificates (harvested or imported).
 *
 * Model. A certificate row holds what the certificate is (DER, SHA-256
 * fingerprint, subject, issuer, serial, validity, key type and size,
 * whether its key usage allows encryption, the addresses it speaks for, the
 * CA certificates it arrived with). A binding row ties one certificate to
 * one address: how we got it (harvested or imported), the
 * sMIMECapabilities seen with it, first/last seen, its assurance (chains to
 * a configured CA, only self-signed, or forced in by the admin) and whether
 * it is removed.
 *
 * Pairings (RFC 8551 §2.5.3). A binding whose certificate signed a message
 * from the address (or was imported on its own) is a *signing binding*; it
 * heads a pairing: signing certificate → preferred encryption certificate.
 * The preference is the certificate the signer named with
 * sMIMEEncryptionKeyPreference, or a separate encryption certificate that
 * came with the signature; none means the signing certificate itself. A
 * pairing's preference is replaced only by a signature from the same
 * signing certificate whose signing time is not older than the stored one;
 * it never outlives or leaks to another signing certificate.
 *
 * The selection rule (one rule, written in smime-milter.conf(5) too):
 *   1. Candidates are the address's pairings whose signing binding is not
 *      removed and whose encryption certificate is usable now: not removed,
 *      valid now, trusted now, key usage allows encryption.
 *   2. A pairing whose signing certificate is only self-signed
 *      (allow_self_signed) is no candidate while the address has a
 *      signing binding, not removed, that chains to a configured CA: assurance
 *      never goes down by itself. `cert import --force` stores with admin
 *      assurance, which counts as CA-issued.
 *   3. Of the candidates, the pairing whose signing certificate has the
 *      newest notBefore wins; ties: the later signing time, then the later
 *      harvest (last seen), then the lower fingerprint.
 *   4. Its encryption certificate is used.
 * So an older certificate arriving later (a second device not yet renewed)
 * never displaces a newer one, and a renewal takes effect at once whatever
 * the preference attributes said before.
 *
 * Status as reported (computed at read time with clock_now(), without the
 * trust check): removed; expired (past notAfter); active (part of the
 * pairing the rule picks from stored data); superseded (anything else:
 * history, never used while the active pairing is usable).
 *
 * Addresses. Every address is stored and compared normalised
 * (x509u_addr_normalise: addr_normalize, so case-insensitive): a
 * certificate for Bob.Smith@Partner.example serves bob.smith@partner.example.
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
 *
 * Decoded once. Selection takes certificates, chains and trust verdicts
 * from the process-wide certcache (certcache.h), so a certificate looked
 * up again is neither decoded nor verified again. Every write through a
 * keycache (and, for PostgreSQL, every change another gateway announces)
 * bumps the certcache generation, which drops the kept verdicts and the
 * look-ups messages keep (rcptmemo.h). With SQLite, a write by another
 * process (smimectl) is seen by the next selection, which always reads
 * the database; a verdict is about a certificate's bytes, not the cache,
 * and lives at most CERTCACHE_VERDICT_TTL seconds anyway.
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
	KC_SRC_DISCOVERED, /* reported only: stored as imported, with an
			      origin row (ops->put_origin) */
};

/* How far a binding's certificate is vouched for; higher is stronger. */
enum kc_assurance {
	KC_AS_SELF_SIGNED = 0, /* chains only because of allow_self_signed */
	KC_AS_CA,	       /* chains to a configured trust anchor */
	KC_AS_ADMIN,	       /* stored with `cert import --force` */
};

enum kc_status {
	KC_ST_ACTIVE = 0,
	KC_ST_SUPERSEDED, /* reported only; never stored */
	KC_ST_EXPIRED,	  /* reported only; never stored */
	KC_ST_REMOVED,
};

enum keycache_outcome {
	KC_INSERTED,		  /* the first usable pairing of the address */
	KC_UPDATED,		  /* seen before: last_seen and caps refreshed */
	KC_SUPERSEDED_OLD,	  /* the selected certificate changed to a
				     different key: a key change */
	KC_RENEWED_SAME_KEY,	  /* changed to a certificate with the same
				     public key: renewal, not a key change */
	KC_OLDER_KEPT_AS_HISTORY, /* stored; the selected one stays (older
				     notBefore, or not usable) */
	KC_REFUSED_SELF_SIGNED,	  /* stored; it would have won, but it is
				     self-signed and the address has a
				     CA-issued certificate */
};

/* One binding with its certificate: what `smimectl cert list/show` prints. */
struct kc_record {
	/* the binding */
	char *address;		/* normalised */
	enum kc_status status;	/* as reported (superseded, expired computed) */
	caps_t caps;
	enum kc_source source;
	enum kc_assurance assurance;
	bool signer;		/* a signing binding: heads a pairing */
	char enc_fp[X509U_FP_SIZE]; /* its preferred encryption certificate,
				       "" for the certificate itself */
	time_t signing_time;	/* of the latest signature stored, 0 unknown */
	time_t first_seen, last_seen;
	/* the certificate */
	char fingerprint[X509U_FP_SIZE];
	char key_fingerprint[X509U_FP_SIZE];
	char *subject, *issuer, *serial;
	time_t not_before, not_after;
	enum x509u_key_type key_type;
	int key_bits;
	bool can_encrypt; /* key usage and EKU allow e-mail encryption */
	char **emails; /* the addresses the certificate speaks for */
	size_t n_emails;
	unsigned char *der;
	size_t der_len;
	unsigned char *chain; /* concatenated DER of CA certificates seen with
				 it (may be NULL) */
	size_t chain_len;
	char *origin; /* discovered: where from ("ldap:URI", "smimea");
			 NULL otherwise */
};

struct keycache;

/* backend: "sqlite" (path: the database file, created when missing) or
 * "postgresql" (path: a libpq connection string or URI; an unreachable
 * database does not fail the open, see keycache_health). Creates or
 * migrates the schema. err receives a one-line reason. */
sm_status keycache_open(const char *backend, const char *path,
			struct keycache **out, char *err, size_t errlen);
/* NULL-safe. No other thread may be using kc. */
void keycache_close(struct keycache *kc);

/* One signature's worth of keys for an address: the signing certificate
 * and the encryption certificate it prefers. */
struct kc_pairing {
	X509 *signer;		/* required */
	X509 *enc;		/* preferred encryption certificate; NULL or
				   the signer: the signer itself */
	STACK_OF(X509) *chain;	/* CA certificates that came with them (the
				   SignedData's set is fine: end-entity
				   certificates are filtered out; may be
				   NULL) — kept so that trust can be
				   re-checked at selection time */
	const char *address;
	caps_t caps;		/* CAP_KNOWN unset: keep what was known */
	time_t signing_time;	/* signingTime, 0 when absent */
	enum kc_assurance assurance;
	enum kc_source source;
};

/* Store a pairing (a harvest, or an import). *outcome compares the
 * certificate the rule picks from stored data (no trust check) before and
 * after; old_fp (X509U_FP_SIZE bytes, may be NULL) receives the previously
 * picked certificate's fingerprint for KC_SUPERSEDED_OLD /
 * KC_RENEWED_SAME_KEY, the still-picked one's for KC_OLDER_KEPT_AS_HISTORY
 * and KC_REFUSED_SELF_SIGNED, "" otherwise. The caller logs key changes, so
 * a key change is reported by the one store that made it. Re-storing a
 * removed certificate brings it back. Does not apply the harvest rules
 * (harvest_judge does). */
sm_status keycache_store_pairing(struct keycache *kc,
				 const struct kc_pairing *p,
				 enum keycache_outcome *outcome,
				 char old_fp[X509U_FP_SIZE]);

/* A certificate on its own (its own encryption certificate, no signing
 * time), with assurance self-signed when it is, CA otherwise. */
sm_status keycache_store(struct keycache *kc, X509 *cert,
			 STACK_OF(X509) *chain, const char *address,
			 caps_t caps, enum kc_source src,
			 enum keycache_outcome *outcome,
			 char old_fp[X509U_FP_SIZE]);

/* A certificate found by discovery (lib/discover.h), already judged by the
 * harvest rules: stored like an import (its own encryption certificate)
 * and remembered with its origin ("ldap:URI", "smimea"), which
 * keycache_find_* report as source KC_SRC_DISCOVERED with r->origin.
 * Discovery only runs when an address has no usable certificate, and a
 * discovered binding carries no signing time, so a harvested certificate
 * of the same notBefore wins the tie (rule 3: later signing time).
 * Origin KC_ORIGIN_DANE_EE marks a certificate that DNSSEC vouched for
 * (SMIMEA usage DANE-EE, secure answer): selection then skips the trust
 * check for it (validity and key usage still apply). */
#define KC_ORIGIN_DANE_EE "smimea:dane-ee"
sm_status keycache_store_discovered(struct keycache *kc, X509 *cert,
				    STACK_OF(X509) *chain, const char *address,
				    const char *origin,
				    enum keycache_outcome *outcome);

/* The certificate to encrypt to for address, now (clock_now()): among the
 * address's bindings, by the selection rule above: valid now, chaining
 * to trust now (trust NULL: not checked; allow_self_signed as in the
 * harvest rules). On success *cert_out is a new reference
 * (caller frees) and *caps_out its caps (either may be NULL). Without one:
 * SM_ERR_NOKEY and reason (KC_REASON_SIZE is enough) is exactly one of
 *   "no certificate exchanged"
 *   "certificate expired on YYYY-MM-DD"
 *   "certificate not yet valid"
 *   "certificate not trusted"
 *   "certificate not usable for encryption"
 *   "certificate removed"
 * (about the best-ranked candidate when several fail). SM_ERR_PARSE: address is
 * not an address. */
sm_status keycache_select(struct keycache *kc, const char *address,
			  X509_STORE *trust, bool allow_self_signed,
			  X509 **cert_out, caps_t *caps_out, char *reason,
			  size_t reasonlen);

/* One more usability condition the caller adds (revocation): called for
 * a candidate that passed every other test, with its certificate and the
 * CA certificates stored with it. SM_ERR_NOKEY with a reason (such as
 * "certificate revoked on 2026-12-01 (keyCompromise)") makes it unusable,
 * like an expired one; the rule then goes on to the next candidate. */
struct kc_hook {
	sm_status (*usable)(void *arg, X509 *cert, STACK_OF(X509) *chain,
			    time_t now, char *reason, size_t len);
	void *arg;
};
/* keycache_select with the hook (NULL: none). */
sm_status keycache_select_hook(struct keycache *kc, const char *address,
			       X509_STORE *trust, bool allow_self_signed,
			       const struct kc_hook *hook, X509 **cert_out,
			       caps_t *caps_out, char *reason,
			       size_t reasonlen);

/* Why each certificate of an address is or is not used now: one line per
 * record, in the order of keycache_find_address, e.g. "used for
 * encryption", "superseded by sha256 1a2b… (newer notBefore)", "not used:
 * certificate expired on 2026-01-01". reasons[i] has KC_EXPLAIN_SIZE bytes.
 * trust, allow_self_signed: as for keycache_select. */
#define KC_EXPLAIN_SIZE 256
sm_status keycache_explain(struct keycache *kc, const struct kc_record *recs,
			   size_t n, X509_STORE *trust, bool allow_self_signed,
			   char (*reasons)[KC_EXPLAIN_SIZE]);
sm_status keycache_explain_hook(struct keycache *kc,
				const struct kc_record *recs, size_t n,
				X509_STORE *trust, bool allow_self_signed,
				const struct kc_hook *hook,
				char (*reasons)[KC_EXPLAIN_SIZE]);

/* Every binding (expiring_days < 0), or the active ones that expire
 * within expiring_days days from now and have not yet. Ordered by
 * address, newest notBefore first. Free with kc_records_free. */
sm_status keycache_list(struct keycache *kc, int expiring_days,
			struct kc_record **out, size_t *n);
/* All bindings (history included) of an address (normalised); or of a
 * fingerprint (64 hex digits, colons allowed). None: SM_OK with *n == 0. */
sm_status keycache_find_address(struct keycache *kc, const char *address,
				struct kc_record **out, size_t *n);
sm_status keycache_find_fingerprint(struct keycache *kc, const char *fp,
				    struct kc_record **out, size_t *n);
/* Mark bindings removed (history kept): every binding of the address
 * (normalised) or of the certificate. *count (may be NULL) receives how
 * many changed. SM_ERR_NOTFOUND when the cache never had any. */
sm_status keycache_remove_address(struct keycache *kc, const char *address,
				  size_t *count);
sm_status keycache_remove_fingerprint(struct keycache *kc, const char *fp,
				      size_t *count);

/* Call fn for every binding, in keycache_list order (statuses as
 * keycache_list reports them). fn returns 0 to go on, anything else to
 * stop (returned as SM_OK). The record is valid during the call only. */
typedef int (*kc_iter_fn)(const struct kc_record *rec, void *arg);
sm_status keycache_iterate(struct keycache *kc, kc_iter_fn fn, void *arg);

/* Storage health for `smimectl check`: schema version and an integrity
 * check. err receives the first problem. */
sm_status keycache_check(struct keycache *kc, int *schema_version, char *err,
			 size_t errlen);

/* Is conninfo a well-formed libpq connection string or URI? SM_OK, or
 * SM_ERR_CONFIG with libpq's one-line reason in err. Connects to nothing. */
sm_status keycache_conninfo_check(const char *conninfo, char *err,
				  size_t errlen);
/* Settings a backend may use (the PostgreSQL one does; SQLite ignores
 * them). max_stale: how long after losing the database the local copy is
 * still served (seconds, 0: the backend's default); outbox_dir: where
 * writes made while the database is down wait (NULL: they fail, as
 * smimectl wants). */
struct kc_options {
	time_t max_stale;
	const char *outbox_dir;
};
sm_status keycache_configure(struct keycache *kc, const struct kc_options *o,
			     char *err, size_t errlen);

/* What `smimectl check` reports about the storage. */
struct kc_health {
	const char *backend;	/* "sqlite", "postgresql" */
	bool remote;		/* a database server (connectivity applies) */
	bool connected;		/* it answered just now */
	bool listening;		/* change notifications arrive */
	int schema_version;
	long long lag;		/* seconds the local copy may be behind */
	size_t outbox;		/* writes waiting for the database */
	char err[256];		/* why not connected */
};
sm_status keycache_health(struct keycache *kc, struct kc_health *h);
/* Copy every binding of from into to, losing nothing (statuses, first
 * and last seen, pairings, assurance, capabilities, chains); bindings to
 * already has are overwritten with from's. *n: how many were copied.
 * SM_ERR_UNSUPPORTED when to's backend cannot restore records. */
/* Store one binding exactly as b describes it (address, status, caps,
 * source, assurance, signer, enc_fp, signing_time, first and last seen)
 * for cert (with chain): what a JSON export brings back. A pairing's
 * encryption certificate (b->enc_fp) must be in the cache already.
 * SM_ERR_UNSUPPORTED when the backend cannot restore records. */
sm_status keycache_restore(struct keycache *kc, X509 *cert,
			   STACK_OF(X509) *chain, const struct kc_record *b);
sm_status keycache_copy(struct keycache *from, struct keycache *to,
			size_t *n);

/* How many writes wait in an outbox directory (0 when it is missing). */
size_t keycache_outbox_count(const char *dir);

/* The record's certificate (new reference), NULL when unparsable. */
X509 *kc_record_cert(const struct kc_record *r);
void kc_record_free(struct kc_record *r); /* members only */
void kc_records_free(struct kc_record *v, size_t n);
const char *kc_status_name(enum kc_status st);	 /* "active", … */
const char *kc_source_name(enum kc_source src);	 /* "harvested", … */
const char *kc_assurance_name(enum kc_assurance a); /* "ca", "self-signed",
						       "admin" */
const char *keycache_outcome_name(enum keycache_outcome o);

/* ------------------------------------------------------------------------
 * Backend interface: for storage implementations only, not for callers.
 *
 * A backend stores records and runs each operation atomically. put()
 * writes a pairing with these rules, inside one write transaction:
 *   - certificate rows are inserted when new (the chain is refreshed when
 *     one came along);
 *   - the signer's binding becomes a signing binding (not removed); its
 *     preference (enc_fp) and signing time are replaced when the new
 *     signing time is not older than the stored one; caps with CAP_KNOWN
 *     replace the stored ones; last_seen is the latest; assurance never
 *     goes down;
 *   - a separate encryption certificate gets a binding (not removed) of
 *     its own, which does not by itself head a pairing;
 * and calls kc_plan_outcome() with the address's bindings before and after,
 * so every backend reports the same outcome. Records handed out carry the
 * stored status (active or removed); the generic layer derives the rest.
 */

struct kc_backend;

/* What the rule needs to know about one binding. */
struct kc_binding_view {
	const char *fingerprint;
	const char *key_fingerprint;
	const char *enc_fp; /* "" or NULL: itself */
	time_t not_before, not_after;
	time_t signing_time, last_seen;
	bool signer, can_encrypt;
	enum kc_assurance assurance;
	enum kc_status status; /* stored: active or removed */
};

/* Shared by keycache.c and keycache_select.c. Views of records (pointing
 * into them; free() the array, NULL when memory ran out); the source and
 * origin of records that discovery stored. */
struct kc_binding_view *kc_views_of(const struct kc_record *r, size_t n);
sm_status kc_records_origins(struct keycache *kc, struct kc_record *v,
			     size_t n);
/* Every binding of the (normalised) address, with origins, stored
 * statuses. */
sm_status kc_lookup_address(struct keycache *kc, const char *norm,
			    struct kc_record **out, size_t *n);

struct kc_plan {
	enum keycache_outcome outcome;
	char old_fp[X509U_FP_SIZE];
};

/* Rank the address's pairings by the selection rule (steps 2 and 3; no
 * validity or trust check): order[] receives the indices of the signing
 * bindings that are candidates, best first; blocked[i] (may be NULL) is
 * set for a self-signed signing binding held back by rule 2. Returns how
 * many were ranked. order and blocked hold n entries. */
size_t kc_rank(const struct kc_binding_view *v, size_t n, size_t *order,
	       bool *blocked);
/* The index of head's encryption binding (head itself when it named none),
 * or -1 when the named one is missing. */
long kc_pairing_enc(const struct kc_binding_view *v, size_t n, size_t head);
/* The encryption binding the rule picks from stored data at now (validity
 * and key usage checked, trust not), or -1. */
long kc_current(const struct kc_binding_view *v, size_t n, time_t now);
/* The same, with the pairing's signing binding in *head (-1 with none). */
long kc_current_pair(const struct kc_binding_view *v, size_t n, time_t now,
		     long *head);
/* Why a ranks before b by rule 3: "newer notBefore", "later signing
 * time", "later harvest" or "same dates, lower fingerprint". */
const char *kc_rank_why(const struct kc_binding_view *a,
			const struct kc_binding_view *b);
/* Outcome of a put: before/after are the address's bindings around it;
 * head_fp the stored signer; head_was_live: its binding existed, not
 * removed, before. */
void kc_plan_outcome(const struct kc_binding_view *before, size_t nb,
		     const struct kc_binding_view *after, size_t na,
		     const char *head_fp, bool head_was_live, time_t now,
		     struct kc_plan *plan);

struct kc_ops {
	const char *name;
	sm_status (*open)(const char *path, struct kc_backend **out,
			  char *err, size_t errlen);
	void (*close)(struct kc_backend *be);
	/* head: the signing certificate's record (address, caps, source,
	 * assurance, signing_time, enc_fp filled); enc: the separate
	 * encryption certificate's record, or NULL. */
	sm_status (*put)(struct kc_backend *be, const struct kc_record *head,
			 const struct kc_record *enc, time_t now,
			 struct kc_plan *plan);
	/* Every binding of the (normalised) address, any status. */
	sm_status (*lookup_address)(struct kc_backend *be, const char *address,
				    struct kc_record **out, size_t *n);
	sm_status (*lookup_fingerprint)(struct kc_backend *be, const char *fp,
					struct kc_record **out, size_t *n);
	/* not_after in (after, before]; before == 0: every binding. Any
	 * status; ordered by address, then newest notBefore. */
	sm_status (*list)(struct kc_backend *be, time_t after, time_t before,
			  struct kc_record **out, size_t *n);
	/* Exactly one of address and fp is non-NULL. */
	sm_status (*remove)(struct kc_backend *be, const char *address,
			    const char *fp, size_t *count);
	sm_status (*check)(struct kc_backend *be, int *schema_version,
			   char *err, size_t errlen);
	/* Optional (NULL: discovered certificates are reported as
	 * imported). Remember / read where a discovered certificate
	 * (fingerprint) for an address came from. get_origin: SM_OK with
	 * out "" when none is known. */
	sm_status (*put_origin)(struct kc_backend *be, const char *fp,
				const char *address, const char *origin,
				time_t now);
	sm_status (*get_origin)(struct kc_backend *be, const char *fp,
				const char *address, char *out, size_t outlen);
	/* Optional (NULL: not supported; the generic layer copes). */
	sm_status (*configure)(struct kc_backend *be,
			       const struct kc_options *o, char *err,
			       size_t errlen);
	sm_status (*health)(struct kc_backend *be, struct kc_health *h);
	/* Store one binding (and its certificate) exactly as given: stored
	 * status, times, assurance, pairing. For keycache_copy. */
	sm_status (*restore)(struct kc_backend *be, const struct kc_record *r);
};

extern const struct kc_ops kc_sqlite_ops;
extern const struct kc_ops kc_pg_ops;

#endif
