/*
 * discover_int.h — between discover.c and its sources. Not for callers.
 */
#ifndef SMIME_DISCOVER_INT_H
#define SMIME_DISCOVER_INT_H

#include <openssl/x509.h>

#include "config.h"
#include "status.h"

enum disc_answer_status { DA_NONE, DA_FOUND, DA_TEMP };

/* What one source answered. */
struct disc_answer {
	enum disc_answer_status status;
	STACK_OF(X509) *certs; /* end-entity candidates, preferred first */
	STACK_OF(X509) *cas;   /* other certificates that came along */
	STACK_OF(X509) *dane_ee; /* those of certs that a secure SMIMEA DANE-EE
				    record named (references of their own) */
	char why[160];         /* DA_TEMP: the failure */
};

/* Cap on values read per attribute and on one value's size. */
#define DISC_MAX_VALUES 8
#define DISC_MAX_VALUE_SIZE (64 * 1024)
#define DISC_MAX_ENTRIES 4

/* Add the certificates in one value (DER certificate, or PKCS#7 with a
 * certificate set) to a: those naming addr as candidates, others as CAs. */
void disc_answer_add_der(struct disc_answer *a, const unsigned char *der, size_t len,
    const char *addr);
void disc_answer_free(struct disc_answer *a);

/* One LDAP directory: bind (password may be NULL), search, collect. */
void disc_ldap_query(const struct cfg_ldap *src, const char *password, const char *addr,
    int timeout_ms, struct disc_answer *out);

struct disc_smimea;
sm_status disc_smimea_new(const struct config *cfg, struct disc_smimea **out, char *err,
    size_t errlen);
void disc_smimea_free(struct disc_smimea *s);
void disc_smimea_query(struct disc_smimea *s, const char *addr, struct disc_answer *out);

#endif
