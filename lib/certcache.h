/*
 * certcache.h — parsed certificates, parsed chains and chain verdicts,
 * shared by the whole process, so that a certificate the key cache hands
 * out again and again is decoded from DER and verified once.
 *
 * Keys. Certificates and chains are found by the SHA-256 of their DER
 * (certcache_key): the same bytes always decode to the same object, so
 * these entries never go stale. A verdict (does this certificate, with
 * this chain, chain to this trust store, allowing self-signed or not?) is
 * found by the certificate's and chain's keys, the store's identity and
 * the flag, and is used only while all of these hold:
 *   - the generation is the one it was computed at: the key cache bumps it
 *     on every write (harvest, import, supersede, removal, restore; for
 *     PostgreSQL also on every change another gateway announces, and on
 *     reconnecting), revstore on every revocation result, and the daemon
 *     on every reload (SIGUSR1);
 *   - now lies within the validity of every certificate of the chain that
 *     was built (latest notBefore .. earliest notAfter);
 *   - it is at most CERTCACHE_VERDICT_TTL seconds old (by clock_now(), so
 *     tests move it): whatever else changes, a verdict is re-checked.
 * Only stores handed to certcache_trust_adopt (trust_load does it) have an
 * identity; a verdict against any other store is computed every time (a
 * store the caller may change or free and reallocate must not be
 * confused with another). trust NULL (no anchors) has an identity too.
 * A negative verdict that a clock change could turn (an intermediate not
 * yet valid or expired) is not remembered.
 *
 * Memos. A caller may keep a small value of its own that it derived from
 * certificates (revstore keeps its revocation judgment of a chain), under
 * a key of its own, by the same rules as a verdict: it is found only
 * while the generation is the one read before it was computed, now lies
 * within the [from, until] the caller gives, and it is at most
 * CERTCACHE_VERDICT_TTL seconds old. A certificate handed out by
 * certcache_cert carries its key (certcache_key_of), so a memo about it
 * is found without hashing anything.
 *
 * Threads. Entries live in CERTCACHE_SHARDS shards, each under a rwlock:
 * a hit takes one shard's read lock and hands out a new reference
 * (X509_up_ref); only a miss writes. Objects handed out stay valid after
 * the entry goes (references). Size: at most CERTCACHE_MAX entries; a
 * full shard is emptied (clear-on-full).
 */
#ifndef SMIME_CERTCACHE_H
#define SMIME_CERTCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "status.h"

#define CERTCACHE_KEY_SIZE 32
#define CERTCACHE_SHARDS 16
#define CERTCACHE_MAX 4096
#define CERTCACHE_VERDICT_TTL 300

/* SHA-256 of der; false when it could not be computed (then key must
 * not be used: pass NULL instead, and nothing is kept). */
bool certcache_key(const unsigned char *der, size_t len,
		   unsigned char key[CERTCACHE_KEY_SIZE]);

/* The certificate der encodes: a new reference (X509_free), or NULL when
 * it does not parse (or memory ran out). key: certcache_key(der) when the
 * caller has it, else NULL. */
X509 *certcache_cert(const unsigned char *der, size_t len,
		     const unsigned char *key);

/* The certcache key (SHA-256 of the DER) of a certificate handed out by
 * certcache_cert or certcache_chain, kept with the object (valid while
 * the caller holds its reference); NULL for any other X509. */
const unsigned char *certcache_key_of(X509 *x);

/* The certificates of a concatenated-DER chain: a new stack of new
 * references (sk_X509_pop_free). NULL or empty der: an empty stack; a
 * damaged tail: what parsed before it. NULL only when memory ran out. */
STACK_OF(X509) *certcache_chain(const unsigned char *der, size_t len,
				const unsigned char *key);

/* x509u_verify(cert, chain, trust, allow_self_signed, now), remembered:
 * cert_key is certcache_key of cert's DER, chain_der (may be NULL) the
 * concatenated DER the chain comes from, chain_key its certcache_key (NULL:
 * computed here). SM_OK (trusted), SM_ERR_VERIFY, or an internal error
 * (never remembered). */
sm_status certcache_verify(X509 *cert, const unsigned char *cert_key,
			   const unsigned char *chain_der, size_t chain_len,
			   const unsigned char *chain_key, X509_STORE *trust,
			   bool allow_self_signed, time_t now);

/* Give store an identity: its contents never change again, so verdicts
 * against it may be remembered. Call before any other thread sees it. */
void certcache_trust_adopt(X509_STORE *store);

/* Memos (see above). key: keylen bytes (at least CERTCACHE_KEY_SIZE),
 * the first CERTCACHE_KEY_SIZE of them a SHA-256 (they pick the shard);
 * the whole key is compared. put: gen is certcache_generation() read
 * before the value was computed, at the time it was computed for; a memo
 * of the same key is replaced. get: true and val filled (vallen must be
 * the length it was put with) when a current one is found at now. */
void certcache_memo_put(const void *key, size_t keylen, unsigned long gen,
			time_t at, time_t from, time_t until, const void *val,
			size_t vallen);
bool certcache_memo_get(const void *key, size_t keylen, time_t now,
			void *val, size_t vallen);

/* Drop every verdict and memo (cheap: one atomic increment). */
void certcache_bump(void);
unsigned long certcache_generation(void);

/* Drop every entry (tests; the end of the process, for leak checkers).
 * No other thread may be inside certcache. */
void certcache_clear(void);

/* What happened so far, for tests and benchmarks. */
struct certcache_stats {
	unsigned long decodes;	   /* certificates decoded from DER */
	unsigned long verifies;	   /* chain verifications run */
	unsigned long verdict_hits;
	unsigned long memo_hits;
	unsigned long entries;	   /* now */
};
void certcache_stats(struct certcache_stats *s);

#endif
