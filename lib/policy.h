/*
 * policy.h — who gets what: direction, per-recipient treatment at RCPT
 * time, the whole message's plan at end of message, and the SMTP replies
 * (with the diagnostics that tell the sender what to do).
 *
 * Pure functions of plain data: the caller looks certificates up and passes
 * what it found; nothing here touches the key cache or libmilter.
 */
#ifndef SMIME_POLICY_H
#define SMIME_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "status.h"

enum pol_direction { POL_INBOUND, POL_OUTBOUND };

/* Outbound when daemon_name is in outbound_daemons, or auth_authen is set,
 * or the client address is in internal_hosts. Any argument may be NULL. */
enum pol_direction policy_direction(const struct config *cfg, const char *daemon_name,
    const char *auth_authen, const struct sockaddr *client);

enum pol_keytype { POL_KEY_NONE, POL_KEY_RSA, POL_KEY_EC };

/* What the key cache said about one recipient. */
struct pol_lookup {
	bool has_cert;
	enum pol_keytype key_type;
	const char *reason;   /* when !has_cert: "no certificate exchanged", … */
};

/* A transaction's treatment so far: encrypted (and with which key type),
 * or not. One message body serves every recipient of a transaction, so
 * recipients whose treatment differs cannot share it, unless every one of
 * them allows the downgrade to a signed-only message.
 *
 * The rule, the same whatever the order of the RCPT commands:
 *  - a recipient whose policy requires encryption and who has no usable
 *    key is refused (550 5.7.1, or 450 4.7.1 with missing_cert =
 *    tempfail), alone;
 *  - a recipient joins the transaction when its own treatment (encrypted
 *    when its policy allows and it has a key) equals the transaction's;
 *  - when they differ, it joins, and the message goes signed only, when
 *    nobody involved forbids that: no recipient whose policy requires
 *    encryption (hard), and no recipient with mixed = "split" (firm), on
 *    either side;
 *  - otherwise (and when both encrypt with different key types) it is
 *    deferred (452 4.7.0) and the MTA retries it in a transaction of its
 *    own, where the same rule gives it its own treatment.
 * So nobody is refused whose own policy allows delivery, a required
 * recipient with a key is always encrypted to, and a split recipient
 * always gets its own treatment; which recipient is deferred depends on
 * the order, the outcome for each does not (except that a mixed =
 * "sign-only" recipient with a key may end up signed-only or encrypted,
 * depending on whom it shares a transaction with: both are what its
 * policy allows). */
struct pol_treatment {
	bool encrypt;
	enum pol_keytype key_type;
	bool hard; /* a recipient whose policy requires encryption */
	bool firm; /* a recipient with mixed = "split" */
};

#define POL_REPLY_LINES 32
struct pol_reply {
	char code[4];       /* "550" */
	char xcode[8];      /* "5.7.1" */
	char *lines[POL_REPLY_LINES];
	size_t nlines;
};
void policy_reply_free(struct pol_reply *r);

enum pol_verdict { POL_ACCEPT, POL_REJECT, POL_TEMPFAIL };

struct pol_rcpt_decision {
	enum pol_verdict verdict;
	struct pol_treatment treatment; /* when accepted */
	struct pol_reply reply;         /* when not accepted */
	char log[200];                  /* why, for the log line */
};

/* Decide one recipient at RCPT time by the rule above. first: the
 * transaction's treatment so far (the out->treatment of the last accepted
 * recipient), or NULL for the first one. When accepted, out->treatment is
 * the transaction's treatment with this recipient in: keep it for the
 * next. Replies:
 *  - encrypt required by policy and no usable certificate: reject 550 5.7.1
 *    (missing_cert = tempfail: 450 4.7.1) with a diagnostic;
 *  - a treatment that cannot share the transaction, or a key type that
 *    differs from the transaction's when both encrypt (key types never
 *    share an envelope): 452 4.7.0, retried on its own. */
sm_status policy_rcpt(const struct config *cfg, const char *sender, const char *rcpt,
    const struct pol_lookup *lk, const struct pol_treatment *first,
    struct pol_rcpt_decision *out);

/* The plan for the whole message at end of message. */
struct pol_plan {
	bool sign;
	bool encrypt;
	struct cfg_outbound o;     /* the settings used (first recipient's) */
	bool triggered;            /* the sender asked (subject tag / header) */
	enum pol_verdict verdict;  /* REJECT: some recipient cannot be encrypted to */
	struct pol_reply reply;
};

struct pol_msg_rcpt {
	const char *addr;
	struct pol_lookup lk;
};

/* rcpts: the accepted recipients with their lookups; triggered: the sender
 * asked for encryption (trigger_what names how, for the diagnostic).
 * REJECT (or TEMPFAIL with missing_cert = tempfail) names exactly the
 * recipients that need encryption (own policy, or triggered) and have no
 * usable key. A treatment conflict the RCPT stage would have split (the
 * key cache changed in between, say) is a TEMPFAIL (451 4.7.0), never a
 * rejection: the retry meets the RCPT rule. */
sm_status policy_plan(const struct config *cfg, const char *sender,
    const struct pol_msg_rcpt *rcpts, size_t n, bool triggered, const char *trigger_what,
    struct pol_plan *out);
void policy_plan_free(struct pol_plan *p);
/* Does this recipient need encryption (its policy requires it, or the
 * sender triggered it) — is it named when it has no key? */
bool policy_needs_encryption(const struct config *cfg, const char *sender, const char *rcpt,
    bool triggered);

/* Fill a reply: code, extended code and lines (copied). */
sm_status policy_reply_set(struct pol_reply *r, const char *code, const char *xcode,
    const char *const *lines, size_t n);

#endif
