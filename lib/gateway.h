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
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "harvest.h"
#include "mime.h"
#include "policy.h"
#include "sender.h"
#include "smime.h"
#include "status.h"

struct trust;
struct keystore;
struct keycache;
struct discover;
struct refusals;
struct spool;
struct rcptmemo;

/* Everything a message is processed with. Read-only for the gateway; the
 * daemon keeps one per configuration generation. */
struct gw_env {
	const struct config *cfg;
	struct trust *trust;
	struct keystore *ks;
	struct keycache *kc;
	struct discover *disc;  /* key discovery at RCPT; NULL: off */
	struct revstore *rs;  /* revocation results; NULL: not checked */
	struct refusals *rf;   /* refusal log; NULL: not kept */
	/* One message's look-ups, RCPT-time answers reused at end of data
	 * (rcptmemo.h); NULL: none kept. The daemon sets it in a per-message
	 * copy of its env. */
	struct rcptmemo *memo;
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
	/* Who handed the message over, for the sender authorisation of a
	 * personal signature (sender.h). The milter always sets it; NULL
	 * (smimectl, unit tests of other stages) means the caller vouches. */
	const struct sender_id *who;
	/* The spool body is a view of (spool_view()), or NULL: its pages are
	 * dropped while the body is read, so a large body never becomes
	 * resident all at once. */
	struct spool *body_spool;
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
	/* The new body when replace_body: in body, or (too large to keep in
	 * memory) from offset body_off of body_spool. Read it with
	 * gw_result_body_read() to serve both. */
	struct buf body;
	struct spool *body_spool;
	uint64_t body_off;
	struct buf summary;         /* the log line after "QUEUEID: " */
};

/* Decide one recipient at RCPT time on the address Postfix will route it
 * to (addr_canonical): look its certificate up and apply the policy (see
 * policy_rcpt). A recipient that cannot be classified with certainty while
 * any rule could require encryption is refused (550 5.7.1). first: the
 * transaction's treatment so far (the last accepted recipient's
 * out->treatment), NULL for the first one. */
sm_status gw_rcpt(const struct gw_env *env, const char *sender, const char *rcpt,
    const struct pol_treatment *first, struct pol_rcpt_decision *out);

/* After gw_rcpt() accepted rcpt: keep blind copies in transactions of
 * their own (bcc.h). accepted: recipients already accepted in this
 * transaction; *solo (false at the start of a transaction) is set when this
 * one is a remembered blind copy accepted first. A recipient that must wait
 * turns out into a 452 4.7.0. */
sm_status gw_rcpt_bcc(const char *sender, const char *rcpt, size_t accepted, bool *solo,
    struct pol_rcpt_decision *out);

/* Sign and/or encrypt an outbound message, or refuse it. Internal errors
 * on a message that needed encryption give TEMPFAIL (451 4.7.0), never
 * plaintext. */
sm_status gw_outbound(const struct gw_env *env, const struct gw_msg *m, struct gw_result *out);

/* Verify, harvest, decrypt as configured, and add Authentication-Results.
 * Malformed input leaves the body untouched and says why in the summary. */
sm_status gw_inbound(const struct gw_env *env, const struct gw_msg *m, struct gw_result *out);

void gw_result_free(struct gw_result *r);

/* The new body's length, and up to n of its bytes from off (*got 0 at the
 * end), wherever it is. */
uint64_t gw_result_body_len(const struct gw_result *r);
sm_status gw_result_body_read(const struct gw_result *r, uint64_t off, void *p, size_t n,
    size_t *got);

/*
 * What an inbound message is, cryptographically: its S/MIME structure, the
 * decryption, the signatures and the harvest verdicts. Nothing is stored.
 * gw_inbound() acts on it; `smimectl inspect` and `cert import` print and
 * store from it, so the three can never disagree.
 *
 * The layers are followed from the outside in, at most one envelope and
 * two signatures deep (RFC 8551 sign-then-encrypt, a signature nested once
 * more, or RFC 2634's sign-encrypt-sign). An envelope is opened only when
 * it is the whole message, or the whole content of a signature that is the
 * whole message: never an encrypted part next to other parts (EFAIL).
 */
#define GW_MAX_ENVELOPES 1
#define GW_MAX_SIGNATURES 2

/* One signature layer. */
struct gw_sig {
	enum mime_smime_kind kind;     /* SIGNED_DETACHED or SIGNED_OPAQUE */
	bool inside_envelope;          /* found in the decrypted content */
	bool verified;                 /* vr holds a verdict (false: the
	                                * signature could not be read) */
	struct smime_verify_result vr;
	bool judged;                   /* hv holds the harvest verdict */
	struct harvest_verdict hv;
	char harvest_note[400];        /* why not judged */
};

struct gw_report {
	enum mime_smime_kind kind;     /* of the whole message */
	bool malformed;                /* what says why */
	bool encrypted;                /* a whole-message envelope */
	bool decrypted;
	bool decrypt_failed;           /* what says why */
	sm_status decrypt_status;      /* NOKEY, CRYPTO, UNSUPPORTED, PARSE */
	bool is_signed;                /* vr holds the verification */
	enum mime_smime_kind signed_kind;
	bool sig_inside_envelope;      /* the signature in vr was encrypted */
	char what[300];
	/* The innermost signature: the one over the content. */
	struct smime_verify_result vr;
	bool have_vr;
	char from[320];                /* From address ("" when none) */
	bool judged;                   /* hv holds the harvest verdict */
	struct harvest_verdict hv;
	char harvest_note[400];        /* why not judged */
	/* A second signature around the one in vr, when there is one. */
	bool have_outer;
	struct gw_sig outer;
	/* The content under every layer that was opened: what `deliver`
	 * delivers. NULL when it is no MIME entity. */
	const struct mime_entity *content_e;
	bool too_deep;                 /* S/MIME nested deeper than the bound */
	bool over_budget;              /* limits.inbound_cpu_ms spent: nothing
	                                * judged (what says so) */
	uint64_t cpu_start;            /* clock_cpu_ms() when examining began */
	bool envelope_in_part;         /* an encrypted part inside a multipart,
	                                * left closed */
	char structure[200];           /* "enveloped-data > signed-detached >
	                                * text/plain" */
	/* internals: the parsed trees and buffers the above point into */
	struct mime_entity *root, *inner;
	struct mime_entity *ctree[GW_MAX_SIGNATURES];
	struct buf content;            /* what the innermost signature
	                                * encapsulates, when it is opaque */
	struct buf der, tmp, plain, envder;
	struct buf ctext[GW_MAX_SIGNATURES];
	struct gw_sig sig[GW_MAX_SIGNATURES]; /* while walking */
	size_t nsig;
};

/* Examine a message given as headers + body. decrypt: open a
 * whole-message envelope with every key of the key store. Returns SM_OK
 * whenever the report describes the message (malformed input included);
 * r must be released with gw_report_free(), which wipes the plaintext. */
sm_status gw_examine(const struct gw_env *env, const struct mime_headers *hdrs,
    const unsigned char *body, size_t len, bool decrypt, struct gw_report *r);
void gw_report_free(struct gw_report *r);
/* The RFC 7281 smime result of the innermost signature ("pass", "fail",
 * "policy", "permerror") or NULL when the message carries no signature. */
const char *gw_report_result(const struct gw_report *r);

#endif
