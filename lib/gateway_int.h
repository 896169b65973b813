/*
 * gateway_int.h — what the parts of the gateway share (gateway.c,
 * gw_outbound.c). Not for other modules.
 */
#ifndef SMIME_GATEWAY_INT_H
#define SMIME_GATEWAY_INT_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "caps.h"
#include "discover.h"
#include "gateway.h"
#include "keycache.h"

/* What the cache knows about one recipient. */
struct rcpt_key {
	char addr[320];
	X509 *cert;        /* owned; NULL when none usable */
	caps_t caps;
	char reason[KC_REASON_SIZE + DISC_TEXT_SIZE];
};

/* Append one header edit to r. */
sm_status edit_add(struct gw_result *r, enum gw_hdr_op op, const char *name, int index,
    const char *value);
/* Delete every occurrence of the headers for which pred() holds, highest
 * index first per name so that earlier indexes stay valid. */
sm_status edit_delete_where(struct gw_result *r, const struct mime_headers *h,
    bool (*pred)(const struct mime_header *, const void *), const void *arg);
bool is_content_header(const struct mime_header *h, const void *arg);
sm_status set_reply(struct pol_reply *rp, const char *code, const char *xcode, const char *text);
/* Internal trouble: 451 4.7.0, so the client retries and no plaintext
 * leaves where encryption was needed. */
sm_status tempfail(struct gw_result *r, const char *qid, const char *why);
int key_type_of(X509 *cert);
enum pol_keytype pol_key_of(X509 *cert);
X509_STORE *env_store(const struct gw_env *env);
/* The cache's answer for one recipient (rk->cert NULL with a reason when
 * none is usable). */
sm_status lookup_rcpt(const struct gw_env *env, const char *sender, const char *addr,
    struct rcpt_key *rk);
/* A recipient refused for lack of a usable certificate: counted and
 * noted for `smimectl refused`. */
void refused(const struct gw_env *env, const char *sender, const char *rcpt, const char *reason);

#endif
