/*
 * gateway.h — what happens to one message: the outbound and inbound
 * pipelines as functions of plain data.
 *
 * The milter (and smimectl) hand in the envelope, the header list and a
 * view of the body; they get back a verdict with its SMTP reply, a list of
 * header edits, an optional new body and the text of the summary log line.
 * Nothing here includes libmilter.
 */
#ifndef SMIME_GATEWAY_H
#define SMIME_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "mime.h"
#include "policy.h"
#include "status.h"

struct trust;
struct keystore;
struct keycache;

/* Everything a message is processed with. Read-only for the gateway; the
 * daemon keeps one per configuration generation. */
struct gw_env {
	const struct config *cfg;
	struct trust *trust;
	struct keystore *ks;
	struct keycache *kc;
};

/* One message as the MTA handed it over. */
struct gw_msg {
	const char *qid;                  /* for log lines; may be NULL */
	const char *sender;               /* envelope sender as given */
	char *const *rcpts;               /* accepted envelope recipients */
	size_t nrcpts;
	const struct mime_headers *hdrs;  /* top-level headers, in order */
	const unsigned char *body;        /* body view (memory or mmap) */
	size_t body_len;
};

enum gw_hdr_op {
	GW_HDR_DELETE,      /* delete occurrence `index` (1-based) of name */
	GW_HDR_CHANGE,      /* replace occurrence `index` of name by value */
	GW_HDR_ADD,         /* append name: value */
	GW_HDR_INSERT_TOP,  /* insert name: value as the first header */
};

/* Header edits are listed in the order they must be applied; deletions of
 * one name come highest index first, so indexes stay valid. */
struct gw_hdr_edit {
	enum gw_hdr_op op;
	char *name;
	int index;
	char *value;
};

struct gw_result {
	enum pol_verdict verdict;   /* ACCEPT, REJECT or TEMPFAIL */
	struct pol_reply reply;     /* when not ACCEPT */
	struct gw_hdr_edit *edits;
	size_t nedits;
	bool replace_body;
	struct buf body;            /* the new body when replace_body */
	struct buf summary;         /* the log line after "QUEUEID: " */
};

/* Decide one recipient at RCPT time: look its certificate up and apply the
 * policy (see policy_rcpt). */
sm_status gw_rcpt(const struct gw_env *env, const char *sender, const char *rcpt,
    const struct pol_treatment *first, struct pol_rcpt_decision *out);

/* Sign and/or encrypt an outbound message, or refuse it. Internal errors
 * on a message that needed encryption give TEMPFAIL (451 4.7.0), never
 * plaintext. */
sm_status gw_outbound(const struct gw_env *env, const struct gw_msg *m, struct gw_result *out);

/* Verify, harvest, decrypt as configured, and add Authentication-Results.
 * Malformed input leaves the body untouched and says why in the summary. */
sm_status gw_inbound(const struct gw_env *env, const struct gw_msg *m, struct gw_result *out);

void gw_result_free(struct gw_result *r);

#endif
