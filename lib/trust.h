/*
 * trust.h — the trust anchors, loaded once into an X509_STORE.
 *
 * trust_load() reads every certificate up front (the CA file and every file
 * in the CA directory), so verifying a message never touches the disk. A
 * struct trust is reference counted: a reload builds a new one off to the
 * side and swaps the pointer, while messages still being processed hold a
 * reference to the old one (trust_ref() when a message starts using it,
 * trust_free() when it is done). The store is only read after loading, which
 * OpenSSL allows from many threads at once.
 */
#ifndef SMIME_TRUST_H
#define SMIME_TRUST_H

#include <stddef.h>

#include <openssl/x509.h>

#include "status.h"

struct trust;

/*
 * Build a store from ca_file (PEM bundle; DER for a single certificate)
 * and/or every regular file in ca_dir (PEM or DER certificates; files that
 * hold no certificate, such as CRLs or READMEs, are skipped). Either may be
 * NULL; both NULL gives an empty store that trusts nothing. A given ca_file
 * that is unreadable or holds no certificate is an error (SM_ERR_IO /
 * SM_ERR_PARSE), as is an unreadable ca_dir. The result has one reference.
 */
sm_status trust_load(const char *ca_file, const char *ca_dir,
    struct trust **out, char *err, size_t errlen);
/* The store, for smime_verify(); valid as long as the caller's reference. */
X509_STORE *trust_store(struct trust *t);
/* Number of distinct anchors loaded. */
size_t trust_count(const struct trust *t);
/* Take another reference; returns t. */
struct trust *trust_ref(struct trust *t);
/* Drop a reference; the last one frees everything. NULL is fine. */
void trust_free(struct trust *t);

#endif
