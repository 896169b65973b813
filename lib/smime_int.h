/*
 * smime_int.h — what the parts of the CMS layer share (smime.c,
 * smime_sign.c, smime_envelope.c, smime_verify.c). Not for other modules.
 */
#ifndef SMIME_SMIME_INT_H
#define SMIME_SMIME_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "buf.h"
#include "smime.h"
#include "status.h"

#define CHUNK 65536

/* OpenSSL's innermost reason for the last error, as text (tmp may hold it). */
const char *ossl_reason(char *tmp, size_t len);
/* "what: OpenSSL reason" into err; clears the queue. */
void seterr_ossl(char *err, size_t errlen, const char *what);
/* Empty the error queue, keeping the innermost reason as text; true when it
 * held an "algorithm not available" error. */
bool ossl_drain(char *text, size_t len);
/* A write-only BIO appending to out. */
BIO *sink_new(struct buf *out);
/* Undo (and wipe) what was appended to out past keep. */
void buf_truncate_wipe(struct buf *out, size_t keep);
/* A read-only memory BIO over the caller's bytes (no copy). */
BIO *membio(const unsigned char *p, size_t n);
CMS_ContentInfo *cms_parse(const unsigned char *der, size_t n);
/* DER of cms appended to out. */
sm_status cms_to_buf(CMS_ContentInfo *cms, struct buf *out);
void name_str(const X509 *x, char *s, size_t len);
/* The cipher's implementation, fetched once; NULL for AUTO. */
const EVP_CIPHER *cipher_evp(enum smime_cipher c);

/* BIOs over a streaming source (read-only) and out (write-only). The
 * status of the callback that failed, or fallback when none did. */
BIO *src_bio_new(const struct smime_src *src);
BIO *out_bio_new(const struct smime_out *out);
sm_status src_bio_status(BIO *b, sm_status fallback);
sm_status out_bio_status(BIO *b, sm_status fallback);

/* The digest for nid (EVP_MD_free it): the common ones fetched once per
 * process, others fetched now; NULL when no provider implements it. */
EVP_MD *md_fetch(int nid);
/* Write all n bytes of p to b; false when the chain refuses some. */
bool bio_write_all(BIO *b, const unsigned char *p, size_t n);
/* Give cms the first of our keys that one of its recipient entries names
 * (*matched); SM_ERR_CRYPTO when that key does not open it (smime_envelope.c). */
sm_status decrypt_pick_key(CMS_ContentInfo *cms, const struct smime_key *keys, size_t nkeys,
    bool *matched, char *err, size_t errlen);

#endif
