/*
 * discover.h — find a recipient's certificate when none was exchanged.
 *
 * At RCPT time, when the key cache holds no usable certificate for an
 * address, discover_rcpt() asks, in parallel and within
 * discovery.budget_ms in all:
 *   - every LDAP directory configured for the address's domain
 *     (discover_ldap.c: userSMIMECertificate, then userCertificate, each
 *     asked for with and without ";binary");
 *   - DNS SMIMEA records (RFC 8162) with DNSSEC validation, when
 *     discovery.smimea.enabled (discover_smimea.c).
 * Every certificate found goes through the harvest rules (harvest.h) with
 * the address as "From": it must chain to the trust store (or come in a
 * DNSSEC-secure SMIMEA DANE-EE record), be valid now, name the address,
 * and allow encryption. Those that pass are stored in the key cache with
 * their origin ("ldap:URI", "smimea", KC_ORIGIN_DANE_EE).
 *
 * Outcomes: FOUND (the cache now has a certificate: look again);
 * NOT_FOUND (every source answered, nothing usable: remembered for
 * discovery.negative_ttl seconds, during which the address is not looked
 * up again); TEMPFAIL (a source timed out or failed, or DNSSEC said
 * bogus, and nothing was found elsewhere: try again later, nothing is
 * remembered); SKIPPED (no source applies to the address).
 *
 * Privacy: a lookup tells the directory or the resolver which address is
 * being written to. Only sources configured for the domain are asked, and
 * SMIMEA only when enabled. Addresses of internal_domains are never looked
 * up.
 *
 * Thread safety: a struct discover is shared by all connections of one
 * configuration generation. Queries that outlive the budget finish in the
 * background holding a reference, so discover_free() never waits for them.
 */
#ifndef SMIME_DISCOVER_H
#define SMIME_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

#include "config.h"
#include "status.h"

struct keycache;
struct discover;

enum disc_result { DISC_SKIPPED, DISC_FOUND, DISC_NOT_FOUND, DISC_TEMPFAIL };

#define DISC_TEXT_SIZE 256

struct disc_outcome {
	enum disc_result result;
	bool cached;                   /* NOT_FOUND from the negative cache */
	char sources[DISC_TEXT_SIZE];  /* the sources asked: "ldap://…, smimea" */
	char why[DISC_TEXT_SIZE];      /* TEMPFAIL: what failed; FOUND: origin */
};

/* Build from the configuration (NULL *out when nothing is configured).
 * Reads bind passwords and the DNSSEC trust anchor now. */
sm_status discover_new(const struct config *cfg, struct discover **out, char *err,
    size_t errlen);
void discover_free(struct discover *d); /* NULL-safe */

/* Look addr (normalised) up; see the outcomes above. trust and
 * allow_self_signed: the harvest rules' trust store. */
sm_status discover_rcpt(struct discover *d, const char *qid, const char *addr,
    struct keycache *kc, X509_STORE *trust, bool allow_self_signed,
    struct disc_outcome *out);

/* RFC 8162 §3 owner name of addr's SMIMEA record: hex of the first 28
 * octets of SHA-256(local part), "._smimecert.", the domain. */
sm_status discover_smimea_name(const char *addr, char *out, size_t outlen);
/* The LDAP filter for addr: filter's one %s replaced by addr escaped with
 * ldap_bv2escaped_filter_value. Caller frees. */
char *discover_ldap_filter(const char *filter, const char *addr);

#endif
