/*
 * gw_outbound_int.h — the two halves of the outbound pipeline:
 * gw_outbound.c decides what happens to a message, gw_transform.c
 * streams its body through canonical form, signature and envelope.
 */
#ifndef SMIME_GW_OUTBOUND_INT_H
#define SMIME_GW_OUTBOUND_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway.h"
#include "gateway_int.h"
#include "hprot.h"
#include "keystore.h"
#include "mime.h"
#include "smime.h"

struct spool;

/* The state of one outbound transformation, freed in one place. */
struct outbound {
	char from[320], sender[320];
	bool from_ok;
	struct rcpt_key *rk;
	size_t nrk;
	struct pol_msg_rcpt *pr;
	struct pol_plan plan;
	/* the request */
	bool tagged, triggered, by_header;
	const char *trigger_what;
	struct buf subject;   /* the Subject without the tag */
	/* the decision */
	bool sign, encrypt, done;
	enum mime_smime_kind existing;
	const struct keystore_key *signer;
	bool domain_key, no_key, unauthorised, sender_copy;
	struct smime_choice choice;
	STACK_OF(X509) *rcpt_certs;
	/* the message */
	struct mime_headers outer, content, newhdrs;
	sm_status split_st, parse_st;
	struct mime_entity *root; /* the one parse */
	struct hp_out hp;     /* RFC 9788 header protection (hprot.h) */
	struct buf legacy;    /* the body with the legacy display element */
	/* the body as it goes: canonical entity, then signed, then
	 * encrypted; each spool holds serialised headers before body_off */
	struct spool *canon, *signd, *env;
	uint64_t signd_off;
	/* a failure of the transformation (fail closed, on_error) */
	bool crypto;
	char err[256];
};

/* Writing into a spool; read_done drops the pages of the body read. */
struct stage_sink {
	struct spool *to;
	struct spool *from; /* the message body's spool, or NULL */
	struct smime_signer *tee; /* also digested for a detached signature, or NULL */
	struct smime_sealer *seal; /* into an envelope instead of to, or NULL */
};

/* A mime_sink read_done(): drop the read pages of the body's spool. */
void gw_stage_read_done(void *arg);

/* Canonical form, signature, envelope, as o says. A failure of these
 * sets o->crypto (fail closed, or on_error). */
sm_status gw_outbound_transform(const struct gw_env *env, const struct gw_msg *m,
    struct outbound *o);

/* The new body into out: from the last stage's spool, or in memory. */
sm_status gw_outbound_body(struct outbound *o, struct gw_result *out);

#endif
