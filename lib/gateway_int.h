/*
 * gateway_int.h — what the gateway's files (gateway.c, gw_outbound.c,
 * gw_transform.c, gw_inbound.c, gw_decrypt.c) share; not part of the
 * library's API.
 */
#ifndef SMIME_GATEWAY_INT_H
#define SMIME_GATEWAY_INT_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "buf.h"
#include "caps.h"
#include "discover.h"
#include "gateway.h"
#include "keycache.h"
#include "mime.h"
#include "status.h"

/* What the cache knows about one recipient. */
struct rcpt_key {
	char addr[320];
	X509 *cert;        /* owned; NULL when none usable */
	caps_t caps;
	char reason[KC_REASON_SIZE + DISC_TEXT_SIZE];
};

sm_status set_reply(struct pol_reply *rp, const char *code, const char *xcode, const char *text);
/* Internal trouble: 451 4.7.0, so the client retries and no plaintext
 * leaves where encryption was needed. */
sm_status tempfail(struct gw_result *r, const char *qid, const char *why);
int key_type_of(X509 *cert);
enum pol_keytype pol_key_of(X509 *cert);
/* The cache's answer for one recipient (rk->cert NULL with a reason when
 * none is usable). */
sm_status lookup_rcpt(const struct gw_env *env, const char *sender, const char *addr,
    struct rcpt_key *rk);
/* A recipient refused for lack of a usable certificate: counted and
 * noted for `smimectl refused`. */
void refused(const struct gw_env *env, const char *sender, const char *rcpt, const char *reason);
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
