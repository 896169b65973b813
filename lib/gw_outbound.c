/*
 * gw_outbound.c — the outbound pipeline at end of data: triggers →
 * certificate lookups → plan (policy) → one MIME parse → (gw_transform.c:
 * canonical entity → sign → encrypt, streamed through spools) → header
 * edits and the new body.
 *
 * The message is parsed once; the tree feeds detection (already S/MIME?),
 * header protection and the canonical form. The result's body comes back
 * in gw_result.body when it stayed under spool_threshold, else as a spool
 * the milter feeds to the MTA in pieces.
 */
#include "gateway.h"
#include "gateway_int.h"
#include "gw_outbound_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "address.h"
#include "bcc.h"
#include "clock.h"
#include "cmscheck.h"
#include "hprot.h"
#include "keystore.h"
#include "log.h"
#include "metrics.h"
#include "recipient.h"
#include "revstore.h"
#include "smime.h"
#include "spool.h"
#include "subject.h"

static bool
trigger_value_yes(const char *v)
{
	char *u = mime_header_unfold(v);
	bool yes;

	if (u == NULL)
		return false;
	yes = strcasecmp(u, "yes") == 0 || strcasecmp(u, "true") == 0 ||
	    strcmp(u, "1") == 0 || strcasecmp(u, "on") == 0;
	free(u);
	return yes;
}

static bool
is_named(const struct mime_header *h, const void *arg)
{
	return strcasecmp(h->name, (const char *)arg) == 0;
}

/* Is the message already S/MIME (the client did it)? Only a body that
 * really is a CMS envelope counts as encrypted: a plaintext body labelled
 * application/pkcs7-mime must not slip out unencrypted. root: the one
 * parse of the message (NULL when it did not parse). */
static enum mime_smime_kind
outbound_existing_smime(const struct mime_entity *root)
{
	enum mime_smime_kind k;
	struct buf der = BUF_INIT;

	if (root == NULL)
		return MIME_SMIME_NONE;
	k = mime_smime_kind(root);
	if (k == MIME_SMIME_ENVELOPED || k == MIME_SMIME_AUTH_ENVELOPED ||
	    k == MIME_SMIME_PKCS7_UNKNOWN || k == MIME_SMIME_SIGNED_OPAQUE) {
		enum smime_content_type ct = SMIME_CT_INVALID;

		if (mime_decode_body(root, &der) == SM_OK)
			ct = smime_content_type(der.data, der.len);
		/* "Already encrypted" only for a complete envelope: a body that
		 * merely starts like one is plaintext (and encrypted here). */
		if ((ct == SMIME_CT_ENVELOPED || ct == SMIME_CT_AUTH_ENVELOPED) &&
		    cmscheck_complete_envelope(der.data, der.len))
			k = MIME_SMIME_ENVELOPED;
		else if (ct == SMIME_CT_SIGNED)
			k = MIME_SMIME_SIGNED_OPAQUE;
		else
			k = MIME_SMIME_NONE;
	} else if (k != MIME_SMIME_SIGNED_DETACHED) {
		k = MIME_SMIME_NONE;
	}
	buf_free(&der);
	return k;
}

static void
outbound_free(struct outbound *o)
{
	for (size_t i = 0; i < o->nrk; i++)
		X509_free(o->rk[i].cert);
	free(o->rk);
	free(o->pr);
	policy_plan_free(&o->plan);
	buf_free(&o->subject);
	sk_X509_free(o->rcpt_certs);
	mime_headers_free(&o->outer);
	mime_headers_free(&o->content);
	mime_headers_free(&o->newhdrs);
	mime_entity_free(o->root);
	hp_out_free(&o->hp);
	buf_free(&o->legacy);
	spool_free(o->canon);
	spool_free(o->signd);
	spool_free(o->env);
}


/* Our own signing certificate: queued for the revocation worker like any
 * other; a revoked one still signs (the key is ours, and refusing mail
 * would not help), but every message says so in the log, for the admin to
 * import the renewed key. */
static void
own_revocation(const struct gw_env *env, const char *qid, const char *from,
    const struct keystore_key *k)
{
	struct cfg_revocation soft = env->cfg->revocation;
	char why[KC_REASON_SIZE];

	if (env->rs == NULL || soft.check == CFG_REV_OFF || k == NULL || k->cert == NULL)
		return;
	soft.check = CFG_REV_SOFT;
	if (!revstore_usable(env->rs, &soft, k->cert, k->chain, gw_env_store(env), clock_now(), why,
	    sizeof(why)))
		log_qid(LOG_WARNING, qid, "signing as %s with a revoked certificate: %s", from, why);
}


/* The outer header edits header protection asks for: changes, then
 * deletions from the last field up, so occurrence indexes stay valid. */
static sm_status
outbound_hp_edits(const struct outbound *o, struct gw_result *out)
{
	sm_status st = SM_OK;

	if (!o->hp.applied)
		return SM_OK;
	for (int pass = 0; pass < 2; pass++)
		for (size_t k = 0; k < o->hp.n && st == SM_OK; k++) {
			size_t i = pass == 0 ? k : o->hp.n - 1 - k;
			const char *name = o->outer.v[i].name;
			int occ = 1;

			if (o->hp.fate[i] != (pass == 0 ? HP_CHANGE : HP_DELETE))
				continue;
			for (size_t j = 0; j < i; j++)
				occ += strcasecmp(o->outer.v[j].name, name) == 0;
			st = gw_edit_add(out, pass == 0 ? GW_HDR_CHANGE : GW_HDR_DELETE, name, occ,
			    pass == 0 ? o->hp.value[i] : NULL);
		}
	return st;
}

/* The domain key for the From (or envelope sender) domain, or NULL. */
static const struct keystore_key *
domain_signer(const struct gw_env *env, const char *addr)
{
	const char *d = addr_domain(addr);
	char who[300];
	long i;

	if (d == NULL || env->ks == NULL)
		return NULL;
	snprintf(who, sizeof(who), "@%s", d);
	i = keystore_pick(env->ks, who, clock_now(), NULL);
	return i < 0 ? NULL : keystore_key_at(env->ks, (size_t)i);
}

/*
 * May the personal key chosen for from sign this message? (sender.h)
 * Unauthorised: under unauthorised_sender = reject, out becomes a 550 5.7.1
 * refusal; under "unsigned", *signer becomes the domain key (or NULL).
 * from is "" when the From header does not hold exactly one mailbox.
 */
static sm_status
outbound_authorise(const struct gw_env *env, const struct gw_msg *m, const char *from,
    const char *sender, const struct keystore_key **signer, struct gw_result *out)
{
	const struct cfg_outbound *ob = &env->cfg->outbound;
	struct sender_verdict v;
	char l1[1024], l2[1024];
	const char *lines[2] = { l1, l2 };
	const char *shown = *from ? from : "the From address";

	sender_authorise(env->cfg->sender_map, ob->trusted_relays, ob->n_trusted_relays, m->who,
	    from, sender, &v);
	if (v.ok) {
		log_qid(LOG_INFO, m->qid, "personal signature for %s authorised: %s", from, v.rule);
		return SM_OK;
	}
	if (ob->unauthorised_sender == CFG_UNAUTH_REJECT) {
		out->verdict = POL_REJECT;
		buf_printf(&out->summary, "rejected %s: unauthorised sender, %s", shown, v.rule);
		snprintf(l1, sizeof(l1), "%s may not send as %s: %s", v.who, shown, v.rule);
		snprintf(l2, sizeof(l2), "Only %s itself (its login, or a login the sender login map "
		    "lists for it) or a trusted relay may send mail signed as it", shown);
		return policy_reply_set(&out->reply, "550", "5.7.1", lines, 2);
	}
	*signer = domain_signer(env, *from ? from : sender);
	log_qid(LOG_NOTICE, m->qid, "%s may not sign as %s (%s): personal signature left out%s",
	    v.who, shown, v.rule, *signer ? ", signed with the domain key" : "");
	return SM_OK;
}

/*
 * Would a blind recipient share the envelope with another one (bcc.h)?
 * Then the message is deferred once (451 4.7.0) and the blind recipients
 * are remembered, so that the retry gives each a transaction of its own.
 */
static sm_status
outbound_bcc(const struct gw_msg *m, const struct outbound *o, const char *sender,
    struct gw_result *out)
{
	char **addrs;
	bool *blind;
	size_t nenc = 0, nblind = 0;
	sm_status st;

	for (size_t i = 0; i < o->nrk; i++)
		nenc += o->rk[i].cert != NULL;
	if (nenc < 2) {
		/* alone in its envelope: a remembered blind copy is done */
		for (size_t i = 0; i < o->nrk; i++)
			if (o->rk[i].cert != NULL)
				bcc_memo_del(sender, o->rk[i].addr);
		return SM_OK;
	}
	addrs = calloc(o->nrk, sizeof(*addrs));
	blind = calloc(o->nrk, sizeof(*blind));
	if (addrs == NULL || blind == NULL) {
		free(addrs);
		free(blind);
		return SM_ERR_NOMEM;
	}
	for (size_t i = 0; i < o->nrk; i++)
		addrs[i] = (char *)o->rk[i].addr;
	if ((st = bcc_find(m->hdrs, addrs, o->nrk, blind)) == SM_OK) {
		for (size_t i = 0; i < o->nrk; i++) {
			if (!blind[i] || o->rk[i].cert == NULL)
				continue;
			bcc_memo_add(sender, o->rk[i].addr, clock_now());
			buf_printf(&out->summary, "%s%s", nblind++ ? ", " : "deferred: blind copies ",
			    o->rk[i].addr);
		}
	}
	free(addrs);
	free(blind);
	if (st != SM_OK || nblind == 0)
		return st;
	buf_printf(&out->summary, " would share an envelope with other recipients: retried one "
	    "transaction each");
	out->verdict = POL_TEMPFAIL;
	return set_reply(&out->reply, "451", "4.7.0", "S/MIME gateway: blind copies (Bcc) get "
	    "encrypted mail of their own; please retry, each will be sent separately");
}

/* The log line of a message refused at end of data: the recipients the
 * refusal names (those that need encryption and have no key), or the
 * treatment conflict. */
static void
outbound_refusal_summary(const struct gw_env *env, const char *sender, const struct outbound *o,
    size_t n, bool triggered, const struct pol_plan *plan, struct buf *s)
{
	const struct config *cfg = env->cfg;
	size_t k = 0;

	buf_printf(s, "%s", plan->verdict == POL_REJECT ? "rejected" : "deferred");
	for (size_t i = 0; i < n; i++)
		if (!o->pr[i].lk.has_cert &&
		    policy_needs_encryption(cfg, sender, o->pr[i].addr, triggered)) {
			buf_printf(s, "%s %s: %s", k++ ? "," : "", o->pr[i].addr, o->pr[i].lk.reason);
			refused(env, sender, o->pr[i].addr, o->pr[i].lk.reason);
		}
	if (k == 0)
		buf_printf(s, " rcpts=%zu: recipients need different treatment", n);
}

/* ------------------------------------------------------------------ */
/* The decision                                                         */
/* ------------------------------------------------------------------ */

/* Sender, From, and the sender's own request for encryption. */
static sm_status
outbound_request(const struct gw_env *env, const struct gw_msg *m, struct outbound *o)
{
	const struct config *cfg = env->cfg;
	const char *from = mime_headers_get(m->hdrs, "From");
	sm_status st;

	addr_normalize(m->sender, o->sender, sizeof(o->sender));
	o->from_ok = true;
	if (from == NULL || addr_from_header(from, o->from, sizeof(o->from)) != SM_OK) {
		snprintf(o->from, sizeof(o->from), "%s", o->sender);
		o->from_ok = false;
	}
	if ((st = subject_untag(m->qid, mime_headers_get(m->hdrs, "Subject"),
		 cfg->outbound.subject_tag, &o->tagged, &o->subject)) != SM_OK)
		return st;
	if (o->tagged) {
		o->triggered = true;
		o->trigger_what = "requested with the subject tag";
	}
	if (cfg->outbound.trigger_header[0]) {
		const char *v = mime_headers_get(m->hdrs, cfg->outbound.trigger_header);
		if (v && trigger_value_yes(v)) {
			o->triggered = o->by_header = true;
			if (o->trigger_what == NULL)
				o->trigger_what = "requested with the trigger header";
		}
	}
	return SM_OK;
}

/* Look every recipient up once. */
static sm_status
outbound_lookup(const struct gw_env *env, const struct gw_msg *m, struct outbound *o)
{
	sm_status st;

	o->rk = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*o->rk));
	o->pr = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*o->pr));
	if (o->rk == NULL || o->pr == NULL)
		return SM_ERR_NOMEM;
	for (size_t i = 0; i < m->nrcpts; i++) {
		char r[320], why[800];

		if (recipient_classify(env->cfg, o->sender, m->rcpts[i], r, sizeof(r), why,
			sizeof(why)) != SM_OK)
			snprintf(r, sizeof(r), "%s", m->rcpts[i]);
		if ((st = lookup_rcpt(env, o->sender, r, &o->rk[i])) != SM_OK)
			return st;
		if (o->rk[i].cert == NULL && strstr(o->rk[i].reason, "revo") != NULL)
			log_qid(LOG_NOTICE, m->qid, "not encrypted to %s: %s", r, o->rk[i].reason);
		o->nrk++;
		o->pr[i].addr = o->rk[i].addr;
		o->pr[i].lk.has_cert = o->rk[i].cert != NULL;
		o->pr[i].lk.key_type = o->rk[i].cert ? pol_key_of(o->rk[i].cert) : POL_KEY_NONE;
		o->pr[i].lk.reason = o->rk[i].reason;
	}
	return SM_OK;
}

/* The plan: refused, deferred for blind copies, or what to do. */
static sm_status
outbound_planned(const struct gw_env *env, const struct gw_msg *m, struct outbound *o,
    struct gw_result *out)
{
	struct pol_plan *plan = &o->plan;
	sm_status st;

	if ((st = policy_plan(env->cfg, o->sender, o->pr, m->nrcpts, o->triggered,
		 o->trigger_what, plan)) != SM_OK)
		return st;
	if (plan->verdict != POL_ACCEPT) {
		out->verdict = plan->verdict;
		out->reply = plan->reply;
		memset(&plan->reply, 0, sizeof(plan->reply));
		outbound_refusal_summary(env, o->sender, o, m->nrcpts, o->triggered, plan,
		    &out->summary);
		metrics_message(METRICS_OUTBOUND,
		    plan->verdict == POL_REJECT ? METRICS_REFUSED : METRICS_TEMPFAILED);
		o->done = true;
		return SM_OK;
	}
	o->sign = plan->sign;
	o->encrypt = plan->encrypt;
	if (o->encrypt && (st = outbound_bcc(m, o, o->sender, out)) != SM_OK)
		return st;
	if (out->verdict != POL_ACCEPT) {
		metrics_message(METRICS_OUTBOUND, METRICS_TEMPFAILED);
		o->done = true;
	}
	return SM_OK;
}

/* The one parse: the Content-* fields split off (the protected entity's
 * header), the body parsed under them. A parse error is kept for the
 * canonical form, which needs the tree; detection then sees no S/MIME. */
static void
outbound_parse(const struct gw_msg *m, struct outbound *o)
{
	struct stage_sink k = { NULL, m->body_spool, NULL, NULL };
	struct mime_sink pager = { NULL, gw_stage_read_done, &k };

	o->split_st = mime_split_headers(m->hdrs, &o->outer, &o->content);
	o->parse_st = o->split_st;
	if (o->split_st == SM_OK)
		o->parse_st = mime_parse_message_paged(&o->content, m->body, m->body_len, NULL,
		    &pager, &o->root);
	o->existing = outbound_existing_smime(o->root);
	spool_drop_pages(m->body_spool);
}

/* Whose key signs, if any (sign is dropped when none may). */
static sm_status
outbound_signer(const struct gw_env *env, const struct gw_msg *m, struct outbound *o,
    struct gw_result *out)
{
	const struct keystore_key *personal;
	sm_status st;

	if (keystore_signer(env->ks, o->from, clock_now(), &o->signer, &o->domain_key) != SM_OK)
		o->signer = NULL;
	if (o->signer == NULL && keystore_broken_for(env->ks, o->from)) {
		/* Its key file is in keys_dir but did not load: a signing
		 * failure (on_error), not a user without a key. */
		snprintf(o->err, sizeof(o->err), "%.180s: its key file in keys_dir did not load "
		    "(see the start-up log)", o->from);
		o->crypto = true;
		return SM_ERR_NOKEY;
	}
	if (o->signer && !o->domain_key && m->who) {
		personal = o->signer;
		if ((st = outbound_authorise(env, m, o->from_ok ? o->from : "", o->sender,
			 &o->signer, out)) != SM_OK)
			return st;
		if (out->verdict != POL_ACCEPT) {
			metrics_message(METRICS_OUTBOUND, METRICS_REFUSED);
			o->done = true;
			return SM_OK;
		}
		o->unauthorised = o->signer != personal;
	}
	if (o->signer == NULL) {
		log_qid(LOG_NOTICE, m->qid, "no signing key for %s: not signed", o->from);
		o->sign = false;
		o->no_key = true;
	}
	return SM_OK;
}

/* Everything up to the transformation: sets o->done when the message
 * leaves as it is (or is refused). */
static sm_status
outbound_decide(const struct gw_env *env, const struct gw_msg *m, struct outbound *o,
    struct gw_result *out)
{
	sm_status st;

	if ((st = outbound_request(env, m, o)) != SM_OK ||
	    (st = outbound_lookup(env, m, o)) != SM_OK ||
	    (st = outbound_planned(env, m, o, out)) != SM_OK || o->done)
		return st;
	outbound_parse(m, o);
	if (o->existing == MIME_SMIME_ENVELOPED) {
		buf_printf(&out->summary, "outbound already encrypted by the client, unchanged rcpts=%zu",
		    m->nrcpts);
		metrics_message(METRICS_OUTBOUND, METRICS_UNCHANGED);
		o->done = true;
		return SM_OK;
	}
	if (o->existing != MIME_SMIME_NONE)
		o->sign = false; /* signed by the client: never wrap a signature again */
	if (o->sign && ((st = outbound_signer(env, m, o, out)) != SM_OK || o->done))
		return st;
	if (o->sign)
		own_revocation(env, m->qid, o->from, o->signer);
	if (!o->sign && !o->encrypt) {
		buf_printf(&out->summary, "outbound unchanged (%s) rcpts=%zu",
		    o->existing != MIME_SMIME_NONE ? "signed by the client" :
		    o->no_key ? "sender has no key" : "nothing to do", m->nrcpts);
		metrics_message(METRICS_OUTBOUND, METRICS_UNCHANGED);
		o->done = true;
	}
	return SM_OK;
}

/* ------------------------------------------------------------------ */
/* The result                                                           */
/* ------------------------------------------------------------------ */

/* Header edits: old Content-* out, new ones in, MIME-Version, the
 * trigger header removed and the tag taken out of the Subject. */
static sm_status
outbound_edits(const struct config *cfg, const struct gw_msg *m, const struct outbound *o,
    struct gw_result *out)
{
	sm_status st;

	if ((st = gw_edit_delete_where(out, m->hdrs, gw_is_content_header, NULL)) != SM_OK)
		return st;
	if (o->by_header &&
	    (st = gw_edit_delete_where(out, m->hdrs, is_named, cfg->outbound.trigger_header)) != SM_OK)
		return st;
	if (o->tagged && o->encrypt && !o->hp.applied &&
	    (st = gw_edit_add(out, GW_HDR_CHANGE, "Subject", 1, buf_cstr(&o->subject))) != SM_OK)
		return st;
	if ((st = outbound_hp_edits(o, out)) != SM_OK)
		return st;
	if (mime_headers_get(m->hdrs, "MIME-Version") == NULL &&
	    (st = gw_edit_add(out, GW_HDR_ADD, "MIME-Version", 0, "1.0")) != SM_OK)
		return st;
	for (size_t i = 0; i < o->newhdrs.n; i++) {
		char *v = mime_header_unfold(o->newhdrs.v[i].value);

		st = v ? gw_edit_add(out, GW_HDR_ADD, o->newhdrs.v[i].name, 0, v) : SM_ERR_NOMEM;
		free(v);
		if (st != SM_OK)
			return SM_ERR_NOMEM;
	}
	return SM_OK;
}

static void
outbound_summary(const struct gw_msg *m, const struct outbound *o, struct gw_result *out)
{
	buf_printf(&out->summary, "outbound %s%s%s", o->sign ? "signed" : "",
	    o->sign && o->encrypt ? "+" : "", o->encrypt ? "encrypted" : "");
	metrics_message(METRICS_OUTBOUND, !o->encrypt ? METRICS_SIGNED :
	    o->sign ? METRICS_SIGNED_ENCRYPTED : METRICS_ENCRYPTED);
	if (o->encrypt)
		buf_printf(&out->summary, " cipher=%s%s", smime_cipher_name(o->choice.cipher),
		    o->choice.oaep ? " oaep" : "");
	buf_printf(&out->summary, " rcpts=%zu", m->nrcpts);
	if (o->sign) {
		const char *at = strrchr(o->from, '@');
		/* Whose key signed: the sender's own, or its domain's. */
		buf_printf(&out->summary, " signer=%s%s", o->domain_key && at ? "" : o->from,
		    o->domain_key && at ? at : "");
	}
	if (o->encrypt && !o->sender_copy && o->plan.o.encrypt_to_sender)
		buf_printf(&out->summary, " sender-copy=no");
	if (o->triggered)
		buf_printf(&out->summary, " requested-by=%s", o->by_header ? "header" : "subject");
}

/* Fail closed: encryption needed → temporary failure, never plaintext.
 * A signing failure follows on_error. */
static void
outbound_crypto_fail(const struct gw_msg *m, const struct outbound *o, sm_status st,
    struct gw_result *out)
{
	if (o->encrypt || o->plan.o.on_error == CFG_ON_ERROR_TEMPFAIL) {
		char why[400];
		snprintf(why, sizeof(why), "%s: %s", o->encrypt ? "encryption" : "signing",
		    o->err[0] ? o->err : sm_strstatus(st));
		gw_result_free(out);
		tempfail(out, m->qid, why);
		return;
	}
	log_qid(LOG_WARNING, m->qid, "signing failed (%s); sent unsigned (on_error = accept)",
	    o->err[0] ? o->err : sm_strstatus(st));
	gw_result_free(out);
	out->verdict = POL_ACCEPT;
	buf_printf(&out->summary, "outbound unsigned after a signing failure rcpts=%zu", m->nrcpts);
	metrics_message(METRICS_OUTBOUND, METRICS_PASSED_ON_ERROR);
}

sm_status
gw_outbound(const struct gw_env *env, const struct gw_msg *m, struct gw_result *out)
{
	struct outbound o;
	sm_status st;

	memset(out, 0, sizeof(*out));
	memset(&o, 0, sizeof(o));
	out->verdict = POL_ACCEPT;
	if ((st = outbound_decide(env, m, &o, out)) == SM_OK && !o.done &&
	    (st = gw_outbound_transform(env, m, &o)) == SM_OK &&
	    (st = outbound_edits(env->cfg, m, &o, out)) == SM_OK &&
	    (st = gw_outbound_body(&o, out)) == SM_OK)
		outbound_summary(m, &o, out);
	if (st != SM_OK && o.crypto) {
		outbound_crypto_fail(m, &o, st, out);
		st = SM_OK;
	}
	outbound_free(&o);
	return st;
}
