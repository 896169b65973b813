/*
 * smime_int.h — what the smime*.c files share; not part of the API.
 */
#ifndef SMIME_INT_H
#define SMIME_INT_H

#include <stddef.h>

#include <openssl/cms.h>

#include "buf.h"

/* Read size when streaming content through OpenSSL's digest BIOs. */
#define SMIME_CHUNK 65536

/* Undo what was appended to out since it had length keep, wiping it. */
void smime_buf_truncate_wipe(struct buf *out, size_t keep);
/* CMS from DER/BER bytes; NULL when it does not parse. */
CMS_ContentInfo *smime_cms_parse(const unsigned char *der, size_t n);
/* A read-only memory BIO over the caller's bytes (no copy). */
BIO *smime_membio(const unsigned char *p, size_t n);
/* The subject of x as one line ("(unknown)" for none). */
void smime_name_str(const X509 *x, char *s, size_t len);
/* OpenSSL's innermost reason for the last error, as text. */
const char *smime_ossl_reason(char *tmp, size_t len);

#endif
