/*
 * gateway_int.h — what the gateway's files (gateway.c, gw_inbound.c,
 * gw_decrypt.c) share; not part of the library's API.
 */
#ifndef SMIME_GATEWAY_INT_H
#define SMIME_GATEWAY_INT_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "buf.h"
#include "gateway.h"
#include "mime.h"
#include "status.h"

/* Wipe a buffer that may have held plaintext, then free it. */
void gw_buf_wipe_free(struct buf *b);
/* decrypt = "deliver": the decrypted content replaces the message when it
 * may (the summary says why not otherwise). */
sm_status gw_decrypt_deliver(const struct gw_env *env, const struct gw_msg *m,
    const struct gw_report *r, struct gw_result *out);
/* Open the envelope in r->envder with every key we hold into r->plain. */
sm_status gw_decrypt_open(const struct gw_env *env, struct gw_report *r);
/* Append one header edit. */
sm_status gw_edit_add(struct gw_result *r, enum gw_hdr_op op, const char *name, int index,
    const char *value);
/* Delete every header of h for which pred holds (highest index first). */
sm_status gw_edit_delete_where(struct gw_result *r, const struct mime_headers *h,
    bool (*pred)(const struct mime_header *, const void *), const void *arg);
/* The trust anchors of env (NULL when none). */
X509_STORE *gw_env_store(const struct gw_env *env);
/* Is h a Content-* header? */
bool gw_is_content_header(const struct mime_header *h, const void *arg);

#endif
