/*
 * gateway.c — the outbound and inbound pipelines.
 *
 * Outbound: triggers → certificate lookups → plan (policy) → canonical
 * entity → sign → encrypt → header edits. Inbound: forged results removed →
 * S/MIME structure → (decrypt) → verify → harvest → Authentication-Results.
 * Every step returns a status; the daemon never sees an exception path.
 * The inbound pipeline is in gw_inbound.c and gw_decrypt.c.
 */
#include "gateway.h"
#include "gateway_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "address.h"
#include "bcc.h"
#include "bodyio.h"
#include "clock.h"
#include "recipient.h"
#include "subject.h"
#include "cmscheck.h"
#include "harvest.h"
#include "discover.h"
#include "hprot.h"
#include "keycache.h"
#include "keystore.h"
#include "log.h"
#include "revstore.h"
#include "revworker.h"
#include "metrics.h"
#include "refusals.h"
#include "smime.h"
#include "trust.h"
#include "x509util.h"

/* ------------------------------------------------------------------ */
/* Results                                                              */
/* ------------------------------------------------------------------ */

void
gw_result_free(struct gw_result *r)
{
	if (r == NULL)
		return;
	policy_reply_free(&r->reply);
	for (size_t i = 0; i < r->nedits; i++) {
		free(r->edits[i].name);
		free(r->edits[i].value);
	}
	free(r->edits);
	buf_free(&r->body);
	buf_free(&r->summary);
	memset(r, 0, sizeof(*r));
}

static sm_status
edit_add(struct gw_result *r, enum gw_hdr_op op, const char *name, int index, const char *value)
{
	struct gw_hdr_edit *v = realloc(r->edits, (r->nedits + 1) * sizeof(*v));

	if (v == NULL)
		return SM_ERR_NOMEM;
	r->edits = v;
	v[r->nedits].op = op;
	v[r->nedits].index = index;
	v[r->nedits].name = strdup(name);
	v[r->nedits].value = value ? strdup(value) : NULL;
	if (v[r->nedits].name == NULL || (value && v[r->nedits].value == NULL)) {
		free(v[r->nedits].name);
		free(v[r->nedits].value);
		return SM_ERR_NOMEM;
	}
	r->nedits++;
	return SM_OK;
}

/* Delete every occurrence of the headers for which pred() holds, highest
 * index first per name so that earlier indexes stay valid. */
static sm_status
edit_delete_where(struct gw_result *r, const struct mime_headers *h,
    bool (*pred)(const struct mime_header *, const void *), const void *arg)
{
	for (size_t i = h->n; i-- > 0;) {
		int index = 0;
		sm_status st;

		if (!pred(&h->v[i], arg))
			continue;
		for (size_t j = 0; j <= i; j++)
			if (strcasecmp(h->v[j].name, h->v[i].name) == 0)
				index++;
		if ((st = edit_add(r, GW_HDR_DELETE, h->v[i].name, index, NULL)) != SM_OK)
			return st;
	}
	return SM_OK;
}

static sm_status
set_reply(struct pol_reply *rp, const char *code, const char *xcode, const char *text)
{
	const char *lines[1] = { text };

	return policy_reply_set(rp, code, xcode, lines, 1);
}

/* Internal trouble: a temporary failure, so the client retries and no
 * plaintext leaves where encryption was needed. */
static sm_status
tempfail(struct gw_result *r, const char *qid, const char *why)
{
	log_qid(LOG_ERR, qid, "temporary failure: %s", why);
	r->verdict = POL_TEMPFAIL;
	metrics_message(METRICS_OUTBOUND, METRICS_TEMPFAILED);
	buf_reset(&r->summary);
	buf_printf(&r->summary, "tempfail: %s", why);
	return set_reply(&r->reply, "451", "4.7.0",
	    "S/MIME processing failed temporarily; please try again later");
}

static int
key_type_of(X509 *cert)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);

	return pk ? EVP_PKEY_get_base_id(pk) : EVP_PKEY_NONE;
}

static enum pol_keytype
pol_key_of(X509 *cert)
{
	switch (key_type_of(cert)) {
	case EVP_PKEY_RSA: return POL_KEY_RSA;
	case EVP_PKEY_EC: return POL_KEY_EC;
	default: return POL_KEY_NONE;
	}
}

static X509_STORE *
env_store(const struct gw_env *env)
{
	return env->trust ? trust_store(env->trust) : NULL;
}

/* ------------------------------------------------------------------ */
/* Outbound                                                             */
/* ------------------------------------------------------------------ */

/* What the cache knows about one recipient. */
struct rcpt_key {
	char addr[320];
	X509 *cert;        /* owned; NULL when none usable */
	caps_t caps;
	char reason[KC_REASON_SIZE + DISC_TEXT_SIZE];
};

static sm_status
lookup_rcpt(const struct gw_env *env, const char *sender, const char *addr,
    struct rcpt_key *rk)
{
	/* Revocation: the selection rule's last usability condition. */
	struct revstore_hook_arg ra = { env->rs, config_revocation_for(env->cfg, sender, addr),
	    env_store(env) };
	struct kc_hook hook = { revstore_hook, &ra };
	sm_status st;
	uint64_t t0 = metrics_now();

	memset(rk, 0, sizeof(*rk));
	snprintf(rk->addr, sizeof(rk->addr), "%s", addr);
	st = keycache_select_hook(env->kc, addr, env_store(env),
	    env->cfg->trust_allow_self_signed, env->rs ? &hook : NULL, &rk->cert, &rk->caps,
	    rk->reason, sizeof(rk->reason));
	metrics_observe(METRICS_STAGE_RCPT_LOOKUP, t0);
	if (st == SM_ERR_NOKEY || st == SM_ERR_PARSE || (st == SM_OK && rk->cert == NULL)) {
		if (rk->reason[0] == '\0')
			snprintf(rk->reason, sizeof(rk->reason), "no certificate exchanged");
		return SM_OK;
	}
	return st;
}

/* No usable certificate in the cache: ask the directories and DNS (see
 * discover.h), where the pair's policy would encrypt at all. */
static sm_status
rcpt_discover(const struct gw_env *env, const char *s, const char *r, struct rcpt_key *rk,
    struct disc_outcome *d)
{
	struct cfg_outbound o;
	sm_status st;

	memset(d, 0, sizeof(*d));
	config_outbound_for(env->cfg, s, r, &o, NULL);
	if (env->disc == NULL || o.encrypt == CFG_ENCRYPT_NEVER)
		return SM_OK;
	if ((st = discover_rcpt(env->disc, NULL, r, env->kc, env_store(env),
		 env->cfg->trust_allow_self_signed, d)) != SM_OK)
		return st;
	if (d->result == DISC_FOUND) {
		X509_free(rk->cert);
		return lookup_rcpt(env, s, r, rk);
	}
	if (d->result == DISC_NOT_FOUND) {
		size_t o = strlen(rk->reason);

		if (snprintf(rk->reason + o, sizeof(rk->reason) - o, " and none is published (asked %s)",
			d->sources) < 0)
			rk->reason[o] = '\0';
	}
	return SM_OK;
}

/* A refusal for want of a key while a look-up failed for now: 451 4.7.1,
 * so the client retries instead of bouncing. */
static sm_status
rcpt_lookup_tempfail(const char *r, const struct disc_outcome *d, struct pol_rcpt_decision *out)
{
	char l1[600];
	const char *lines[2] = { l1, "Please try again later." };

	if (snprintf(l1, sizeof(l1), "Encrypted delivery to <%s> is required, but its certificate "
		"could not be looked up just now (%s).", r, d->why) < 0)
		l1[0] = '\0';
	policy_reply_free(&out->reply);
	out->verdict = POL_TEMPFAIL;
	if (snprintf(out->log, sizeof(out->log), "certificate look-up failed: %s", d->why) < 0)
		out->log[0] = '\0';
	return policy_reply_set(&out->reply, "451", "4.7.1", lines, 2);
}

/* A recipient refused for lack of a usable certificate: counted and
 * noted for `smimectl refused`. */
static void
refused(const struct gw_env *env, const char *sender, const char *rcpt, const char *reason)
{
	metrics_refusal(metrics_refusal_class(reason));
	if (refusals_note(env->rf, rcpt, sender, reason, clock_now()) != SM_OK)
		log_msg(LOG_WARNING, "cannot note the refusal of %s in the refusal log", rcpt);
}

sm_status
gw_rcpt(const struct gw_env *env, const char *sender, const char *rcpt,
    const struct pol_treatment *first, struct pol_rcpt_decision *out)
{
	char s[320] = "", r[320], why[800];
	struct rcpt_key rk;
	struct pol_lookup lk;
	struct disc_outcome disc = { .result = DISC_SKIPPED };
	sm_status st;

	memset(out, 0, sizeof(*out));
	memset(&rk, 0, sizeof(rk));
	addr_normalize(sender, s, sizeof(s));
	st = recipient_classify(env->cfg, s, rcpt, r, sizeof(r), why, sizeof(why));
	if (st == SM_ERR_NOTFOUND) {
		/* Not an address we can look up (a local alias, say): let the
		 * MTA judge it; it can never be encrypted to. */
		out->verdict = POL_ACCEPT;
		snprintf(out->log, sizeof(out->log), "not a domain address");
		return SM_OK;
	}
	if (st == SM_ERR_PARSE) {
		out->verdict = POL_REJECT;
		snprintf(out->log, sizeof(out->log), "unclassifiable address: %.160s", why);
		return set_reply(&out->reply, "550", "5.7.1", why);
	}
	if (st != SM_OK)
		return st;
	if ((st = lookup_rcpt(env, s, r, &rk)) == SM_ERR_DB) {
		/* The shared cache is down and its local copy has no answer:
		 * whether this recipient must be encrypted to is unknown, so
		 * neither 550 nor plaintext; the client retries. */
		X509_free(rk.cert);
		metrics_rcpt_tempfail(METRICS_RCPT_TEMPFAIL_CACHE);
		out->verdict = POL_TEMPFAIL;
		snprintf(out->log, sizeof(out->log), "key cache unavailable");
		return set_reply(&out->reply, "451", "4.3.0",
		    "key cache unavailable, try again later");
	}
	if (st != SM_OK ||
	    (rk.cert == NULL && (st = rcpt_discover(env, s, r, &rk, &disc)) != SM_OK)) {
		X509_free(rk.cert);
		return st;
	}
	lk.has_cert = rk.cert != NULL;
	lk.key_type = rk.cert ? pol_key_of(rk.cert) : POL_KEY_NONE;
	lk.reason = rk.reason;
	st = policy_rcpt(env->cfg, s, r, &lk, first, out);
	if (st == SM_OK && !lk.has_cert && out->verdict != POL_ACCEPT &&
	    disc.result == DISC_TEMPFAIL) {
		metrics_rcpt_tempfail(METRICS_RCPT_TEMPFAIL_LOOKUP);
		st = rcpt_lookup_tempfail(r, &disc, out);
	}
	if (st == SM_OK && out->verdict != POL_ACCEPT && !lk.has_cert && strcmp(out->log, rk.reason) == 0)
		refused(env, s, r, rk.reason);
	X509_free(rk.cert);
	return st;
}

sm_status
gw_rcpt_bcc(const char *sender, const char *rcpt, size_t accepted, bool *solo,
    struct pol_rcpt_decision *out)
{
	char s[320] = "", r[320], lit[320], line[800];
	unsigned flags;

	if (out->verdict != POL_ACCEPT)
		return SM_OK;
	addr_normalize(sender, s, sizeof(s));
	if (addr_canonical(rcpt, r, sizeof(r), lit, sizeof(lit), &flags) != SM_OK)
		snprintf(r, sizeof(r), "%s", rcpt);
	if (!*solo && !bcc_memo_has(s, r, clock_now()))
		return SM_OK;
	if (!*solo && accepted == 0) {
		*solo = true; /* a blind copy, first of its transaction: it goes alone */
		return SM_OK;
	}
	out->verdict = POL_TEMPFAIL;
	snprintf(out->log, sizeof(out->log), "%s", *solo ?
	    "after a blind copy: retried in a transaction of its own" :
	    "blind copy: retried in a transaction of its own");
	snprintf(line, sizeof(line), "%s: S/MIME gateway: %s, please retry", r, out->log);
	return set_reply(&out->reply, "452", "4.7.0", line);
}

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
is_content_header(const struct mime_header *h, const void *arg)
{
	(void)arg;
	return strncasecmp(h->name, "Content-", 8) == 0;
}

static bool
is_named(const struct mime_header *h, const void *arg)
{
	return strcasecmp(h->name, (const char *)arg) == 0;
}

/* Is the message already S/MIME (the client did it)? Only a body that
 * really is a CMS envelope counts as encrypted: a plaintext body labelled
 * application/pkcs7-mime must not slip out unencrypted. */
static enum mime_smime_kind
outbound_existing_smime(const struct mime_headers *hdrs, const unsigned char *body, size_t len)
{
	struct mime_entity *root = NULL;
	enum mime_smime_kind k;
	struct buf der = BUF_INIT;

	if (mime_parse_message(hdrs, body, len, NULL, &root) != SM_OK)
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
	mime_entity_free(root);
	return k;
}

static const EVP_MD *
digest_md(enum cfg_digest d)
{
	switch (d) {
	case CFG_DIGEST_SHA384: return EVP_sha384();
	case CFG_DIGEST_SHA512: return EVP_sha512();
	default: return EVP_sha256();
	}
}

static enum smime_cipher
cipher_of(enum cfg_cipher c)
{
	switch (c) {
	case CFG_CIPHER_AES128_CBC: return SMIME_CIPHER_AES128_CBC;
	case CFG_CIPHER_AES256_CBC: return SMIME_CIPHER_AES256_CBC;
	case CFG_CIPHER_AES128_GCM: return SMIME_CIPHER_AES128_GCM;
	case CFG_CIPHER_AES256_GCM: return SMIME_CIPHER_AES256_GCM;
	default: return SMIME_CIPHER_AUTO;
	}
}

/* The state of one outbound transformation, freed in one place. */
struct outbound {
	char from[320];
	struct rcpt_key *rk;
	size_t nrk;
	struct pol_msg_rcpt *pr;
	struct mime_headers outer, content, newhdrs;
	struct buf entity, der, newbody, inner;
	struct buf subject;   /* the Subject without the tag */
	STACK_OF(X509) *rcpt_certs;
	struct hp_out hp;     /* RFC 9788 header protection (hprot.h) */
	struct buf legacy;    /* the body with the legacy display element */
};

static void
outbound_free(struct outbound *o)
{
	for (size_t i = 0; i < o->nrk; i++)
		X509_free(o->rk[i].cert);
	free(o->rk);
	free(o->pr);
	mime_headers_free(&o->outer);
	mime_headers_free(&o->content);
	mime_headers_free(&o->newhdrs);
	buf_free(&o->entity);
	buf_free(&o->der);
	buf_free(&o->newbody);
	buf_free(&o->inner);
	buf_free(&o->subject);
	sk_X509_free(o->rcpt_certs);
	hp_out_free(&o->hp);
	buf_free(&o->legacy);
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
	if (!revstore_usable(env->rs, &soft, k->cert, k->chain, env_store(env), clock_now(), why,
	    sizeof(why)))
		log_qid(LOG_WARNING, qid, "signing as %s with a revoked certificate: %s", from, why);
}

/* Sign the canonical entity into newhdrs/newbody. */
static sm_status
outbound_sign(struct outbound *o, const struct cfg_outbound *set,
    const struct keystore_key *k, char *err, size_t errlen)
{
	struct smime_key sk = { k->cert, k->pkey, k->chain };
	const EVP_MD *md = digest_md(set->digest);
	bool detached = set->sign_format == CFG_SIGN_DETACHED;
	sm_status st;

	uint64_t t0 = metrics_now();

	buf_reset(&o->der);
	st = smime_sign(&sk, md, detached, o->entity.data, o->entity.len, &o->der, err, errlen);
	metrics_observe(METRICS_STAGE_SIGN, t0);
	if (st != SM_OK)
		return st;
	if (detached)
		return mime_build_signed(o->entity.data, o->entity.len, o->der.data, o->der.len,
		    smime_micalg(md), &o->newhdrs, &o->newbody);
	return mime_build_pkcs7(o->der.data, o->der.len, "signed-data", &o->newhdrs, &o->newbody);
}

/* The canonical entity, its header section protected (RFC 9788) as
 * the policy says. skip: the trigger header, removed outside. */
static sm_status
outbound_entity(struct outbound *o, const struct cfg_outbound *set, const struct gw_msg *m,
    bool encrypt, bool tagged, const char *skip)
{
	const unsigned char *body = m->body;
	size_t len = m->body_len;
	sm_status st;

	st = hp_protect(set->header_protection, encrypt, set->legacy_display, &o->outer,
	    tagged && encrypt ? buf_cstr(&o->subject) : NULL, skip, &o->content, &body, &len,
	    &o->legacy, &o->hp);
	if (st != SM_OK)
		return st;
	return mime_canonicalize(&o->content, body, len, NULL, &o->entity);
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
			st = edit_add(out, pass == 0 ? GW_HDR_CHANGE : GW_HDR_DELETE, name, occ,
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

sm_status
gw_outbound(const struct gw_env *env, const struct gw_msg *m, struct gw_result *out)
{
	const struct config *cfg = env->cfg;
	struct outbound o;
	struct pol_plan plan;
	const char *subject = mime_headers_get(m->hdrs, "Subject");
	bool tagged = false;
	const struct keystore_key *signer = NULL;
	bool domain_key = false, no_key = false;
	bool triggered = false, by_header = false, sign, encrypt;
	const char *trigger_what = NULL;
	enum mime_smime_kind existing;
	char err[256] = "", sender[320] = "";
	struct smime_choice choice = { SMIME_CIPHER_AUTO, false, false, "" };
	bool sender_copy = false;
	size_t nenc = 0;
	bool from_ok = true, unauthorised = false;
	uint64_t t_enc;
	sm_status st;

	memset(out, 0, sizeof(*out));
	memset(&o, 0, sizeof(o));
	memset(&plan, 0, sizeof(plan));
	out->verdict = POL_ACCEPT;

	addr_normalize(m->sender, sender, sizeof(sender));
	{
		const char *from = mime_headers_get(m->hdrs, "From");
		if (from == NULL || addr_from_header(from, o.from, sizeof(o.from)) != SM_OK) {
			snprintf(o.from, sizeof(o.from), "%s", sender);
			from_ok = false;
		}
	}

	/* The sender's own request for encryption. */
	if ((st = subject_untag(m->qid, subject, cfg->outbound.subject_tag, &tagged,
		 &o.subject)) != SM_OK)
		goto fail;
	if (tagged) {
		triggered = true;
		trigger_what = "requested with the subject tag";
	}
	if (cfg->outbound.trigger_header[0]) {
		const char *v = mime_headers_get(m->hdrs, cfg->outbound.trigger_header);
		if (v && trigger_value_yes(v)) {
			triggered = by_header = true;
			if (trigger_what == NULL)
				trigger_what = "requested with the trigger header";
		}
	}

	/* Look every recipient up once. */
	o.rk = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*o.rk));
	o.pr = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*o.pr));
	if (o.rk == NULL || o.pr == NULL) {
		st = SM_ERR_NOMEM;
		goto fail;
	}
	for (size_t i = 0; i < m->nrcpts; i++) {
		char r[320];

		char why[800];

		if (recipient_classify(cfg, sender, m->rcpts[i], r, sizeof(r), why, sizeof(why)) != SM_OK)
			snprintf(r, sizeof(r), "%s", m->rcpts[i]);
		if ((st = lookup_rcpt(env, sender, r, &o.rk[i])) != SM_OK)
			goto fail;
		if (o.rk[i].cert == NULL && strstr(o.rk[i].reason, "revo") != NULL)
			log_qid(LOG_NOTICE, m->qid, "not encrypted to %s: %s", r, o.rk[i].reason);
		o.nrk++;
		o.pr[i].addr = o.rk[i].addr;
		o.pr[i].lk.has_cert = o.rk[i].cert != NULL;
		o.pr[i].lk.key_type = o.rk[i].cert ? pol_key_of(o.rk[i].cert) : POL_KEY_NONE;
		o.pr[i].lk.reason = o.rk[i].reason;
	}
	if ((st = policy_plan(cfg, sender, o.pr, m->nrcpts, triggered, trigger_what, &plan)) != SM_OK)
		goto fail;
	if (plan.verdict != POL_ACCEPT) {
		out->verdict = plan.verdict;
		out->reply = plan.reply;
		memset(&plan.reply, 0, sizeof(plan.reply));
		outbound_refusal_summary(env, sender, &o, m->nrcpts, triggered, &plan, &out->summary);
		metrics_message(METRICS_OUTBOUND,
		    plan.verdict == POL_REJECT ? METRICS_REFUSED : METRICS_TEMPFAILED);
		goto done;
	}
	sign = plan.sign;
	encrypt = plan.encrypt;
	if (encrypt && (st = outbound_bcc(m, &o, sender, out)) != SM_OK)
		goto fail;
	if (out->verdict != POL_ACCEPT) {
		metrics_message(METRICS_OUTBOUND, METRICS_TEMPFAILED);
		goto done;
	}

	existing = outbound_existing_smime(m->hdrs, m->body, m->body_len);
	if (existing == MIME_SMIME_ENVELOPED) {
		buf_printf(&out->summary, "outbound already encrypted by the client, unchanged rcpts=%zu",
		    m->nrcpts);
		metrics_message(METRICS_OUTBOUND, METRICS_UNCHANGED);
		goto done;
	}
	if (existing != MIME_SMIME_NONE)
		sign = false; /* signed by the client: never wrap a signature again */

	if (sign) {
		if (keystore_signer(env->ks, o.from, clock_now(), &signer, &domain_key) != SM_OK)
			signer = NULL;
		if (signer == NULL && keystore_broken_for(env->ks, o.from)) {
			/* Its key file is in keys_dir but did not load: a
			 * signing failure (on_error), not a user without a key. */
			snprintf(err, sizeof(err), "%.180s: its key file in keys_dir did not load "
			    "(see the start-up log)", o.from);
			st = SM_ERR_NOKEY;
			goto crypto_fail;
		}
		if (signer && !domain_key && m->who) {
			const struct keystore_key *personal = signer;

			if ((st = outbound_authorise(env, m, from_ok ? o.from : "", sender, &signer,
				 out)) != SM_OK)
				goto fail;
			if (out->verdict != POL_ACCEPT) {
				metrics_message(METRICS_OUTBOUND, METRICS_REFUSED);
				goto done;
			}
			unauthorised = signer != personal;
		}
		if (signer == NULL) {
			log_qid(LOG_NOTICE, m->qid, "no signing key for %s: not signed", o.from);
			sign = false;
			no_key = true;
		}
	}
	if (sign)
		own_revocation(env, m->qid, o.from, signer);
	if (!sign && !encrypt) {
		buf_printf(&out->summary, "outbound unchanged (%s) rcpts=%zu",
		    existing != MIME_SMIME_NONE ? "signed by the client" :
		    no_key ? "sender has no key" : "nothing to do", m->nrcpts);
		metrics_message(METRICS_OUTBOUND, METRICS_UNCHANGED);
		goto done;
	}

	/* The protected entity: Content-* headers and the body, canonical
	 * when we sign it. A signature the client made covers the bytes as
	 * they are: re-encoding anything would break it, and inside the
	 * envelope no relay can touch 8bit, so it goes in unchanged. */
	if ((st = mime_split_headers(m->hdrs, &o.outer, &o.content)) == SM_OK)
		st = existing != MIME_SMIME_NONE ?
		    mime_entity_serialize(&o.content, m->body, m->body_len, &o.entity) :
		    outbound_entity(&o, &plan.o, m, encrypt, tagged,
			by_header ? cfg->outbound.trigger_header : NULL);
	if (st != SM_OK) {
		snprintf(err, sizeof(err), "cannot canonicalise the message: %s", sm_strstatus(st));
		goto crypto_fail;
	}

	if (sign && (st = outbound_sign(&o, &plan.o, signer, err, sizeof(err))) != SM_OK)
		goto crypto_fail;
	if (sign)
		buf_free(&o.entity); /* now inside newbody: hold one copy, not two */

	if (encrypt) {
		caps_t *caps = calloc(m->nrcpts + 1, sizeof(*caps));
		int *kt = calloc(m->nrcpts + 1, sizeof(*kt));

		o.rcpt_certs = sk_X509_new_null();
		if (caps == NULL || kt == NULL || o.rcpt_certs == NULL) {
			free(caps);
			free(kt);
			st = SM_ERR_NOMEM;
			goto fail;
		}
		for (size_t i = 0; i < m->nrcpts; i++) {
			if (o.rk[i].cert == NULL)
				continue;
			sk_X509_push(o.rcpt_certs, o.rk[i].cert);
			caps[nenc] = o.rk[i].caps;
			kt[nenc++] = key_type_of(o.rk[i].cert);
		}
		/* The sender's copy joins only an envelope of its own key type. */
		if (plan.o.encrypt_to_sender) {
			const struct keystore_key *own = signer;
			if (own == NULL && !unauthorised &&
			    keystore_signer(env->ks, o.from, clock_now(), &own, NULL) != SM_OK)
				own = NULL;
			if (own && nenc > 0 && key_type_of(own->cert) == kt[0]) {
				sk_X509_push(o.rcpt_certs, own->cert);
				sender_copy = true;
			} else if (own) {
				log_qid(LOG_INFO, m->qid,
				    "sender copy left out: %s key type differs from the recipients'", o.from);
			}
		}
		st = nenc ? smime_choose(caps, kt, nenc, cipher_of(plan.o.cipher),
		    plan.o.rsa_padding == CFG_PADDING_OAEP, &choice) : SM_ERR_NOKEY;
		free(caps);
		free(kt);
		if (st != SM_OK) {
			snprintf(err, sizeof(err), "no usable recipient certificate");
			goto crypto_fail;
		}
		if (choice.mixed_key_types) {
			st = SM_ERR_UNSUPPORTED;
			snprintf(err, sizeof(err), "recipients mix EC and RSA keys");
			goto crypto_fail;
		}
		if (sign) {
			st = mime_entity_serialize(&o.newhdrs, o.newbody.data, o.newbody.len, &o.inner);
			buf_free(&o.newbody);
		} else {
			/* the canonical entity itself is what gets encrypted */
			o.inner = o.entity;
			memset(&o.entity, 0, sizeof(o.entity));
		}
		if (st != SM_OK)
			goto crypto_fail;
		buf_reset(&o.der);
		t_enc = metrics_now();
		if ((st = smime_encrypt(o.rcpt_certs, choice.cipher, choice.oaep, o.inner.data,
			 o.inner.len, &o.der, err, sizeof(err))) != SM_OK)
			goto crypto_fail;
		metrics_observe(METRICS_STAGE_ENCRYPT, t_enc);
		buf_free(&o.inner);
		mime_headers_free(&o.newhdrs);
		buf_free(&o.newbody);
		if ((st = mime_build_pkcs7(o.der.data, o.der.len, smime_cipher_smime_type(choice.cipher),
			 &o.newhdrs, &o.newbody)) != SM_OK)
			goto crypto_fail;
	}

	/* Header edits: old Content-* out, new ones in, MIME-Version, the
	 * trigger header removed and the tag taken out of the Subject. */
	if ((st = edit_delete_where(out, m->hdrs, is_content_header, NULL)) != SM_OK)
		goto fail;
	if (by_header &&
	    (st = edit_delete_where(out, m->hdrs, is_named, cfg->outbound.trigger_header)) != SM_OK)
		goto fail;
	if (tagged && encrypt && !o.hp.applied &&
	    (st = edit_add(out, GW_HDR_CHANGE, "Subject", 1, buf_cstr(&o.subject))) != SM_OK)
		goto fail;
	if ((st = outbound_hp_edits(&o, out)) != SM_OK)
		goto fail;
	if (mime_headers_get(m->hdrs, "MIME-Version") == NULL &&
	    (st = edit_add(out, GW_HDR_ADD, "MIME-Version", 0, "1.0")) != SM_OK)
		goto fail;
	for (size_t i = 0; i < o.newhdrs.n; i++) {
		char *v = mime_header_unfold(o.newhdrs.v[i].value);
		if (v == NULL || (st = edit_add(out, GW_HDR_ADD, o.newhdrs.v[i].name, 0, v)) != SM_OK) {
			free(v);
			st = SM_ERR_NOMEM;
			goto fail;
		}
		free(v);
	}
	out->replace_body = true;
	out->body = o.newbody;
	memset(&o.newbody, 0, sizeof(o.newbody));
	buf_printf(&out->summary, "outbound %s%s%s", sign ? "signed" : "",
	    sign && encrypt ? "+" : "", encrypt ? "encrypted" : "");
	metrics_message(METRICS_OUTBOUND, !encrypt ? METRICS_SIGNED :
	    sign ? METRICS_SIGNED_ENCRYPTED : METRICS_ENCRYPTED);
	if (encrypt)
		buf_printf(&out->summary, " cipher=%s%s", smime_cipher_name(choice.cipher),
		    choice.oaep ? " oaep" : "");
	buf_printf(&out->summary, " rcpts=%zu", m->nrcpts);
	if (sign) {
		const char *at = strrchr(o.from, '@');
		/* Whose key signed: the sender's own, or its domain's. */
		buf_printf(&out->summary, " signer=%s%s", domain_key && at ? "" : o.from,
		    domain_key && at ? at : "");
	}
	if (encrypt && !sender_copy && plan.o.encrypt_to_sender)
		buf_printf(&out->summary, " sender-copy=no");
	if (triggered)
		buf_printf(&out->summary, " requested-by=%s", by_header ? "header" : "subject");
	goto done;

crypto_fail:
	/* Fail closed: encryption needed → temporary failure, never plaintext.
	 * A signing failure follows on_error. */
	if (encrypt || plan.o.on_error == CFG_ON_ERROR_TEMPFAIL) {
		char why[400];
		snprintf(why, sizeof(why), "%s: %s", encrypt ? "encryption" : "signing",
		    err[0] ? err : sm_strstatus(st));
		gw_result_free(out);
		tempfail(out, m->qid, why);
		st = SM_OK;
		goto done;
	}
	log_qid(LOG_WARNING, m->qid, "signing failed (%s); sent unsigned (on_error = accept)",
	    err[0] ? err : sm_strstatus(st));
	gw_result_free(out);
	out->verdict = POL_ACCEPT;
	buf_printf(&out->summary, "outbound unsigned after a signing failure rcpts=%zu", m->nrcpts);
	metrics_message(METRICS_OUTBOUND, METRICS_PASSED_ON_ERROR);
	st = SM_OK;
	goto done;

fail:
	outbound_free(&o);
	policy_plan_free(&plan);
	return st;
done:
	outbound_free(&o);
	policy_plan_free(&plan);
	return SM_OK;
}

/* ------------------------------------------------------------------ */
/* For the pipelines in other files (gateway_int.h)                     */
/* ------------------------------------------------------------------ */

sm_status
gw_edit_add(struct gw_result *r, enum gw_hdr_op op, const char *name, int index, const char *value)
{
	return edit_add(r, op, name, index, value);
}

sm_status
gw_edit_delete_where(struct gw_result *r, const struct mime_headers *h,
    bool (*pred)(const struct mime_header *, const void *), const void *arg)
{
	return edit_delete_where(r, h, pred, arg);
}

X509_STORE *
gw_env_store(const struct gw_env *env)
{
	return env_store(env);
}

bool
gw_is_content_header(const struct mime_header *h, const void *arg)
{
	return is_content_header(h, arg);
}
