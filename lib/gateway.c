/*
 * gateway.c — the outbound and inbound pipelines.
 *
 * Outbound: triggers → certificate lookups → plan (policy) → canonical
 * entity → sign → encrypt → header edits. Inbound: forged results removed →
 * S/MIME structure → (decrypt) → verify → harvest → Authentication-Results.
 * Every step returns a status; the daemon never sees an exception path.
 */
#include "gateway.h"

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
#include "certcache.h"
#include "clock.h"
#include "rcptmemo.h"
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
	unsigned long gen = certcache_generation();
	uint64_t t0;

	memset(rk, 0, sizeof(*rk));
	snprintf(rk->addr, sizeof(rk->addr), "%s", addr);
	/* Looked up at RCPT, and nothing changed since: the same answer. */
	if (rcptmemo_get(env->memo, sender, addr, clock_now(), &rk->cert, &rk->caps, rk->reason,
		sizeof(rk->reason)))
		return SM_OK;
	t0 = metrics_now();
	st = keycache_select_hook(env->kc, addr, env_store(env),
	    env->cfg->trust_allow_self_signed, env->rs ? &hook : NULL, &rk->cert, &rk->caps,
	    rk->reason, sizeof(rk->reason));
	metrics_observe(METRICS_STAGE_RCPT_LOOKUP, t0);
	if (st == SM_ERR_NOKEY || st == SM_ERR_PARSE || (st == SM_OK && rk->cert == NULL)) {
		if (rk->reason[0] == '\0')
			snprintf(rk->reason, sizeof(rk->reason), "no certificate exchanged");
		st = SM_OK;
	}
	if (st == SM_OK)
		rcptmemo_put(env->memo, sender, addr, gen, clock_now(), rk->cert, rk->caps,
		    rk->reason);
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
/* Inbound                                                              */
/* ------------------------------------------------------------------ */

/* Is the header field called want? Whitespace before the colon (RFC 5322
 * obsolete syntax) does not make it another field. */
static bool
field_is(const char *name, const char *want)
{
	size_t n = strlen(want);

	if (strncasecmp(name, want, n) != 0)
		return false;
	for (name += n; *name == ' ' || *name == '\t'; name++)
		;
	return *name == '\0';
}

/* Skip white space and (nested) comments: RFC 5322 CFWS. An unterminated
 * comment swallows the rest, as it does for any parser. */
static const char *
skip_cfws(const char *p)
{
	int depth = 0;

	for (; *p != '\0'; p++) {
		if (depth > 0) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
		} else if (*p == '(') {
			depth = 1;
		} else if (*p != ' ' && *p != '\t') {
			break;
		}
	}
	return p;
}

/* The authserv-id as a reader sees it, from p (after CFWS): a quoted string
 * unquoted (quoted pairs resolved, blanks at either end trimmed; without its
 * closing quote, up to the first ';'), or the token up to ';', blank or
 * comment; then one trailing dot (the DNS root) dropped. False when it does
 * not fit in n bytes. */
static bool
authserv_read(const char *p, char *out, size_t n)
{
	size_t len = 0, start = 0;
	bool quoted = *p == '"', closed = false;
	char *semi;

	for (p += quoted; *p != '\0'; p++) {
		if (quoted && *p == '"') {
			closed = true;
			break;
		}
		if (!quoted && (*p == ';' || *p == ' ' || *p == '\t' || *p == '('))
			break;
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		if (len + 1 >= n)
			return false;
		out[len++] = *p;
	}
	out[len] = '\0';
	if (quoted && !closed && (semi = strchr(out, ';')) != NULL)
		len = (size_t)(semi - out);
	while (len > 0 && (out[len - 1] == ' ' || out[len - 1] == '\t'))
		len--;
	while (start < len && (out[start] == ' ' || out[start] == '\t'))
		start++;
	if (len > start && out[len - 1] == '.')
		len--;
	out[len] = '\0';
	memmove(out, out + start, len - start + 1);
	return true;
}

/* Does this Authentication-Results header claim our authserv-id? Compared
 * as a reader compares it (authserv_read, any case); comments before the id
 * (RFC 8601 allows them) do not hide the claim. */
static bool
is_our_results(const struct mime_header *h, const void *arg)
{
	const char *id = arg;
	char theirs[256], ours[256];
	char *v;
	bool claim;

	if (!field_is(h->name, "Authentication-Results"))
		return false;
	if ((v = mime_header_unfold(h->value)) == NULL)
		return true; /* cannot read it: cannot trust it either */
	claim = authserv_read(skip_cfws(v), theirs, sizeof(theirs)) &&
	    authserv_read(id, ours, sizeof(ours)) && strcasecmp(theirs, ours) == 0;
	free(v);
	return claim;
}

static bool
is_decrypted_marker(const struct mime_header *h, const void *arg)
{
	(void)arg;
	return field_is(h->name, "X-SMIME-Decrypted");
}

/* Bytes with bare LF turned into CRLF (detached signatures cover the
 * canonical form); returns the input itself when it already is. */
static sm_status
crlf_view(const unsigned char *p, size_t n, struct buf *tmp, const unsigned char **out,
    size_t *outlen)
{
	bool bare = false;
	sm_status st = SM_OK;

	for (size_t i = 0; i < n && !bare; i++)
		bare = p[i] == '\n' && (i == 0 || p[i - 1] != '\r');
	if (!bare) {
		*out = p;
		*outlen = n;
		return SM_OK;
	}
	for (size_t i = 0; i < n && st == SM_OK; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			st = buf_append_char(tmp, '\r');
		if (st == SM_OK)
			st = buf_append_char(tmp, (char)p[i]);
	}
	*out = tmp->data;
	*outlen = tmp->len;
	return st;
}

/* Free a buffer that may have held plaintext, wiping it first. */
static void
buf_wipe_free(struct buf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->cap);
	buf_free(b);
}

void
gw_report_free(struct gw_report *r)
{
	if (r == NULL)
		return;
	mime_entity_free(r->root);
	mime_entity_free(r->inner);
	for (size_t i = 0; i < GW_MAX_SIGNATURES; i++) {
		mime_entity_free(r->ctree[i]);
		buf_wipe_free(&r->ctext[i]);
		smime_verify_result_free(&r->sig[i].vr);
	}
	buf_wipe_free(&r->content);
	buf_wipe_free(&r->der);
	buf_wipe_free(&r->tmp);
	buf_wipe_free(&r->plain);
	buf_free(&r->envder);
	if (r->have_vr)
		smime_verify_result_free(&r->vr);
	if (r->have_outer)
		smime_verify_result_free(&r->outer.vr);
	memset(r, 0, sizeof(*r));
}

/* Note one layer in r->structure: "enveloped-data > signed-detached > …". */
static void
structure_add(struct gw_report *r, const char *name)
{
	size_t l = strlen(r->structure);

	if (l + 4 < sizeof(r->structure))
		snprintf(r->structure + l, sizeof(r->structure) - l, "%s%s", l ? " > " : "", name);
}

static void
structure_add_entity(struct gw_report *r, const struct mime_entity *e)
{
	char t[140];

	snprintf(t, sizeof(t), "%s/%s", e->ct.type ? e->ct.type : "?",
	    e->ct.subtype ? e->ct.subtype : "?");
	structure_add(r, t);
}

static bool
is_envelope_kind(enum mime_smime_kind k)
{
	return k == MIME_SMIME_ENVELOPED || k == MIME_SMIME_AUTH_ENVELOPED;
}

/* Is there an encrypted part somewhere below e (never e itself)? It stays
 * closed: decrypting it would merge its plaintext with whatever the sender
 * of the multipart put around it (EFAIL). */
static bool
has_envelope_part(const struct mime_entity *e)
{
	for (size_t i = 0; i < e->nparts; i++) {
		enum mime_smime_kind k = mime_smime_kind(e->parts[i]);
		bool env = is_envelope_kind(k);

		if (k == MIME_SMIME_PKCS7_UNKNOWN) {
			/* a .p7m attachment: an envelope only if the CMS says so */
			struct buf der = BUF_INIT;
			enum smime_content_type ct = SMIME_CT_INVALID;

			if (mime_decode_body(e->parts[i], &der) == SM_OK)
				ct = smime_content_type(der.data, der.len);
			env = ct == SMIME_CT_ENVELOPED || ct == SMIME_CT_AUTH_ENVELOPED;
			buf_free(&der);
		}
		if (env || has_envelope_part(e->parts[i]))
			return true;
	}
	return false;
}

/* The configured bounds on one signature's work. */
static const struct smime_limits *
verify_limits(const struct gw_env *env, struct smime_limits *lim)
{
	lim->max_signers = (size_t)env->cfg->max_signers;
	lim->max_digests = (size_t)env->cfg->max_digest_algorithms;
	lim->max_certs = (size_t)env->cfg->max_certs;
	return lim;
}

/* Has this message used up limits.inbound_cpu_ms? Then it is judged no
 * further: r->over_budget, and r->what says so. */
static bool
budget_spent(const struct gw_env *env, struct gw_report *r)
{
	uint64_t used = clock_cpu_ms() - r->cpu_start;

	if (r->over_budget)
		return true;
	if (env->cfg->inbound_cpu_ms == 0 || used <= env->cfg->inbound_cpu_ms)
		return false;
	r->over_budget = true;
	snprintf(r->what, sizeof(r->what), "CPU budget of %llu ms spent after %llu ms",
	    (unsigned long long)env->cfg->inbound_cpu_ms, (unsigned long long)used);
	return true;
}

/* Verify a detached signature (multipart/signed e) into slot s. SM_OK with
 * s->vr holding a verdict; SM_ERR_PARSE (r->what says why) when the
 * signature cannot even be read. */
static sm_status
verify_detached(const struct gw_env *env, struct gw_report *r, struct gw_sig *s,
    const struct mime_entity *e)
{
	struct smime_limits lim;
	const unsigned char *c;
	size_t clen;
	uint64_t t0;
	sm_status st;

	s->kind = MIME_SMIME_SIGNED_DETACHED;
	buf_reset(&r->der);
	if ((st = mime_decode_body(e->parts[1], &r->der)) != SM_OK) {
		if (st == SM_ERR_NOMEM)
			return st;
		snprintf(r->what, sizeof(r->what), "signature part: %s", sm_strstatus(st));
		return SM_ERR_PARSE;
	}
	buf_reset(&r->tmp);
	if ((st = crlf_view(e->parts[0]->raw, e->parts[0]->raw_len, &r->tmp, &c, &clen)) != SM_OK)
		return st;
	t0 = metrics_now();
	st = smime_verify_bounded(r->der.data, r->der.len, c, clen, env_store(env),
	    env->cfg->trust_allow_self_signed, verify_limits(env, &lim), &s->vr, NULL);
	metrics_observe(METRICS_STAGE_VERIFY, t0);
	s->verified = st == SM_OK;
	if (st == SM_ERR_PARSE)
		snprintf(r->what, sizeof(r->what), "%s", s->vr.reason);
	return st;
}

/* Verify opaque signed-data der into slot s; the encapsulated content is
 * appended to content. Same returns as verify_detached(). */
static sm_status
verify_opaque(const struct gw_env *env, struct gw_report *r, struct gw_sig *s,
    const unsigned char *der, size_t n, struct buf *content)
{
	struct smime_limits lim;
	sm_status st;

	uint64_t t0 = metrics_now();

	s->kind = MIME_SMIME_SIGNED_OPAQUE;
	st = smime_verify_bounded(der, n, NULL, 0, env_store(env),
	    env->cfg->trust_allow_self_signed, verify_limits(env, &lim), &s->vr, content);
	metrics_observe(METRICS_STAGE_VERIFY, t0);
	s->verified = st == SM_OK;
	if (st == SM_ERR_PARSE)
		snprintf(r->what, sizeof(r->what), "%s", s->vr.reason);
	return st;
}

/* Why a decryption failed, in the words an admin looks for. */
static const char *
decrypt_failure_kind(sm_status st)
{
	switch (st) {
	case SM_ERR_NOKEY: return "no matching key";
	case SM_ERR_UNSUPPORTED: return "unsupported algorithm";
	case SM_ERR_NOMEM: return "out of memory";
	default: return "corrupt envelope";
	}
}

/* Decrypt the envelope in r->envder with every key we hold (current,
 * renewed and expired alike) into r->plain. */
static sm_status
open_envelope(const struct gw_env *env, struct gw_report *r)
{
	const struct keystore_key *keys = NULL;
	size_t n = 0;
	char err[256] = "";
	const char *e;
	uint64_t t0;
	sm_status st;

	if (env->ks)
		keystore_decrypt_keys(env->ks, &keys, &n);
	if (n == 0) {
		snprintf(r->what, sizeof(r->what), "no matching key: no private keys to decrypt with");
		return SM_ERR_NOKEY;
	}
	/* struct keystore_key and struct smime_key have the same layout. */
	t0 = metrics_now();
	st = smime_decrypt(r->envder.data, r->envder.len, (const struct smime_key *)keys, n,
	    &r->plain, err, sizeof(err));
	metrics_observe(METRICS_STAGE_DECRYPT, t0);
	if (st != SM_OK) {
		e = err[0] ? err : sm_strstatus(st);
		if (strncmp(e, "decrypt: ", 9) == 0)
			e += 9;
		snprintf(r->what, sizeof(r->what), "%s: %s", decrypt_failure_kind(st), e);
	}
	return st;
}

static enum harvest_chain
chain_of(enum smime_verify_status s)
{
	switch (s) {
	case SMIME_VERIFY_OK: return HARVEST_CHAIN_TRUSTED;
	case SMIME_VERIFY_EXPIRED:
	case SMIME_VERIFY_NOT_YET_VALID: return HARVEST_CHAIN_EXPIRED;
	case SMIME_VERIFY_SELF_SIGNED: return HARVEST_CHAIN_SELF_SIGNED;
	default: return HARVEST_CHAIN_UNTRUSTED;
	}
}

/* Judge the harvest of one signature (never stores): the same rules for
 * every signature, encrypted or not. */
static sm_status
judge(const struct gw_env *env, const char *from, const struct smime_verify_result *vr,
    bool *judged, struct harvest_verdict *hv, char *note, size_t notelen)
{
	const struct config *cfg = env->cfg;
	struct harvest_input hi;

	if (from[0] == '\0') {
		snprintf(note, notelen, "no From address");
		return SM_OK;
	}
	if (config_is_internal(cfg, from)) {
		snprintf(note, notelen, "%s is internal: never harvested from inbound mail", from);
		return SM_OK;
	}
	memset(&hi, 0, sizeof(hi));
	hi.signer = vr->signer;
	hi.certs = vr->certs;
	hi.signature_ok = vr->signature_ok;
	hi.chain = chain_of(vr->chain_status);
	hi.allow_self_signed = cfg->trust_allow_self_signed;
	hi.digest_nid = vr->digest_nid;
	hi.from = from;
	hi.enc_pref = vr->enc_pref;
	hi.trust = env_store(env);
	hi.now = clock_now();
	if (hi.signer == NULL) {
		snprintf(note, notelen, "no signer certificate");
		return SM_OK;
	}
	*judged = true;
	return harvest_judge(&hi, hv);
}

/* A signer whose certificate is revoked (by the stored result, or by a
 * CRL the message itself carries) fails verification and is never
 * harvested. Only "revoked" counts here: an unknown status harvests (the
 * outbound selection applies soft or hard later), and the signer is
 * queued for the worker. */
static void
signer_revocation(const struct gw_env *env, struct smime_verify_result *vr,
    struct harvest_verdict *hv)
{
	struct cfg_revocation soft = env->cfg->revocation;
	char why[KC_REASON_SIZE];
	time_t now = clock_now();

	if (env->rs == NULL || vr->signer == NULL || soft.check == CFG_REV_OFF)
		return;
	if (vr->crls != NULL)
		revworker_mail_crls(env->rs, vr->crls, vr->certs, vr->signer, now);
	soft.check = CFG_REV_SOFT;
	if (revstore_usable(env->rs, &soft, vr->signer, vr->certs, env_store(env), now, why,
	    sizeof(why)))
		return;
	vr->status = SMIME_VERIFY_REVOKED;
	snprintf(vr->reason, sizeof(vr->reason), "signer %s", why);
	if (hv != NULL) {
		hv->harvest = false;
		hv->cert = NULL;
		snprintf(hv->reason, sizeof(hv->reason), "signer %s", why);
	}
}

/* Move the signatures found while walking into the report: the innermost
 * one (over the content) into vr, one around it into outer. */
static void
settle_signatures(struct gw_report *r)
{
	struct gw_sig *in;

	if (r->nsig == 0)
		return;
	in = &r->sig[r->nsig - 1];
	r->vr = in->vr;
	r->have_vr = true;
	r->is_signed = in->verified;
	r->signed_kind = in->kind;
	r->sig_inside_envelope = in->inside_envelope;
	if (in->kind == MIME_SMIME_SIGNED_OPAQUE) {
		/* the buffer moves, its bytes (and the tree's views) stay */
		r->content = r->ctext[r->nsig - 1];
		memset(&r->ctext[r->nsig - 1], 0, sizeof(r->ctext[0]));
	}
	memset(in, 0, sizeof(*in));
	if (r->nsig == 2) {
		r->outer = r->sig[0];
		r->have_outer = true;
		memset(&r->sig[0], 0, sizeof(r->sig[0]));
	}
	r->nsig = 0;
}

/*
 * Follow the S/MIME layers of the message from the outside in. e is the
 * entity at hand, or NULL when the layer at hand is a bare CMS blob
 * (raw/rawlen: decrypted content that is signed-data without MIME around
 * it, as `gpgsm --sign | gpgsm --encrypt` makes). Stops at the first layer
 * that is no S/MIME, at anything malformed, at a failed decryption, and at
 * GW_MAX_ENVELOPES / GW_MAX_SIGNATURES.
 */
static sm_status
walk(const struct gw_env *env, struct gw_report *r, bool decrypt)
{
	const struct mime_entity *e = r->root;
	const unsigned char *raw = NULL, *der;
	size_t rawlen = 0, dlen, nenv = 0;
	enum mime_smime_kind k;
	enum smime_content_type ct;
	sm_status st;

	for (;;) {
		struct gw_sig *s;

		if (budget_spent(env, r))
			return SM_OK;
		if (e != NULL) {
			k = mime_smime_kind(e);
			if (k == MIME_SMIME_NONE || k == MIME_SMIME_CERTS_ONLY) {
				r->content_e = e;
				if (k == MIME_SMIME_NONE)
					structure_add_entity(r, e);
				else
					structure_add(r, "certs-only");
				r->envelope_in_part = has_envelope_part(e);
				return SM_OK;
			}
			if (k == MIME_SMIME_SIGNED_DETACHED) {
				structure_add(r, "signed-detached");
				if (r->nsig == GW_MAX_SIGNATURES) {
					r->too_deep = true;
					return SM_OK;
				}
				s = &r->sig[r->nsig++];
				s->inside_envelope = nenv > 0;
				if ((st = verify_detached(env, r, s, e)) == SM_ERR_PARSE) {
					r->malformed = true;
					return SM_OK;
				}
				if (st != SM_OK)
					return st;
				e = e->parts[0];
				continue;
			}
			/* application/(x-)pkcs7-mime or a .p7m: what the CMS
			 * says it is counts, not the label. */
			buf_reset(&r->der);
			if ((st = mime_decode_body(e, &r->der)) != SM_OK) {
				if (st == SM_ERR_NOMEM)
					return st;
				structure_add(r, mime_smime_kind_name(k));
				r->malformed = true;
				snprintf(r->what, sizeof(r->what), "%s: the %s body does not decode (%s)",
				    is_envelope_kind(k) ? "corrupt envelope" : "malformed PKCS#7",
				    e->cte, sm_strstatus(st));
				return SM_OK;
			}
			der = r->der.data;
			dlen = r->der.len;
		} else {
			k = MIME_SMIME_PKCS7_UNKNOWN;
			der = raw;
			dlen = rawlen;
		}
		ct = smime_content_type(der, dlen);
		switch (ct) {
		case SMIME_CT_ENVELOPED:
		case SMIME_CT_AUTH_ENVELOPED:
			structure_add(r, smime_content_type_name(ct));
			if (nenv == GW_MAX_ENVELOPES || e == NULL) {
				r->too_deep = true;
				return SM_OK;
			}
			nenv++;
			r->encrypted = true;
			if (!decrypt)
				return SM_OK;
			/* keep the envelope: `deliver` checks its recipients */
			buf_free(&r->envder);
			r->envder = r->der;
			memset(&r->der, 0, sizeof(r->der));
			st = open_envelope(env, r);
			if (st == SM_ERR_NOMEM)
				return st;
			if (st != SM_OK) {
				r->decrypt_failed = true;
				r->decrypt_status = st;
				return SM_OK;
			}
			r->decrypted = true;
			st = mime_parse(r->plain.data, r->plain.len, NULL, &r->inner);
			if (st == SM_ERR_NOMEM)
				return st;
			if (st == SM_OK) {
				e = r->inner;
			} else if (smime_content_type(r->plain.data, r->plain.len) == SMIME_CT_SIGNED) {
				e = NULL;
				raw = r->plain.data;
				rawlen = r->plain.len;
			} else {
				snprintf(r->what, sizeof(r->what), "decrypted content is not MIME: %s",
				    sm_strstatus(st));
				structure_add(r, "not MIME");
				return SM_OK;
			}
			continue;
		case SMIME_CT_SIGNED:
			structure_add(r, "signed-opaque");
			if (r->nsig == GW_MAX_SIGNATURES) {
				r->too_deep = true;
				return SM_OK;
			}
			{
				size_t i = r->nsig;
				s = &r->sig[r->nsig++];
				s->inside_envelope = nenv > 0;
				if ((st = verify_opaque(env, r, s, der, dlen, &r->ctext[i])) == SM_ERR_PARSE) {
					r->malformed = true;
					return SM_OK;
				}
				if (st != SM_OK)
					return st;
				st = mime_parse(r->ctext[i].data, r->ctext[i].len, NULL, &r->ctree[i]);
				if (st == SM_ERR_NOMEM)
					return st;
				if (st == SM_OK) {
					e = r->ctree[i];
				} else if (smime_content_type(r->ctext[i].data, r->ctext[i].len) ==
				    SMIME_CT_SIGNED) {
					e = NULL;
					raw = r->ctext[i].data;
					rawlen = r->ctext[i].len;
				} else {
					/* Signed, but what was signed is no MIME entity:
					 * nothing to show or deliver. */
					structure_add(r, "not MIME");
					return SM_OK;
				}
			}
			continue;
		case SMIME_CT_CERTS_ONLY:
			structure_add(r, "certs-only");
			r->content_e = e;
			return SM_OK;
		case SMIME_CT_OTHER:
			structure_add(r, "other CMS content");
			snprintf(r->what, sizeof(r->what), "CMS content type not supported here");
			return SM_OK;
		case SMIME_CT_INVALID:
		default:
			structure_add(r, mime_smime_kind_name(k));
			r->malformed = true;
			snprintf(r->what, sizeof(r->what), "%s: not a CMS structure",
			    is_envelope_kind(k) ? "corrupt envelope" : "malformed PKCS#7");
			return SM_OK;
		}
	}
}

sm_status
gw_examine(const struct gw_env *env, const struct mime_headers *hdrs, const unsigned char *body,
    size_t len, bool decrypt, struct gw_report *r)
{
	const char *fromh;
	sm_status st;

	memset(r, 0, sizeof(*r));
	r->cpu_start = clock_cpu_ms();
	st = mime_parse_message(hdrs, body, len, NULL, &r->root);
	if (st != SM_OK) {
		if (st == SM_ERR_NOMEM)
			return st;
		r->malformed = true;
		snprintf(r->what, sizeof(r->what), "malformed MIME: %s", sm_strstatus(st));
		return SM_OK;
	}
	r->kind = mime_smime_kind(r->root);
	st = walk(env, r, decrypt);
	settle_signatures(r);
	if (st != SM_OK || budget_spent(env, r))
		return st;

	fromh = mime_headers_get(hdrs, "From");
	if (fromh == NULL || addr_from_header(fromh, r->from, sizeof(r->from)) != SM_OK)
		r->from[0] = '\0';
	if (r->is_signed && r->vr.signature_ok &&
	    (st = judge(env, r->from, &r->vr, &r->judged, &r->hv, r->harvest_note,
		 sizeof(r->harvest_note))) != SM_OK)
		return st;
	if (r->is_signed && r->vr.signature_ok)
		signer_revocation(env, &r->vr, r->judged ? &r->hv : NULL);
	if (r->have_outer && r->outer.verified && r->outer.vr.signature_ok &&
	    (st = judge(env, r->from, &r->outer.vr, &r->outer.judged, &r->outer.hv,
		 r->outer.harvest_note, sizeof(r->outer.harvest_note))) != SM_OK)
		return st;
	if (r->have_outer && r->outer.verified && r->outer.vr.signature_ok)
		signer_revocation(env, &r->outer.vr, r->outer.judged ? &r->outer.hv : NULL);
	return SM_OK;
}

/* RFC 7281 result for a verification. */
static const char *
ar_result(const struct smime_verify_result *vr)
{
	if (vr->status == SMIME_VERIFY_OK)
		return "pass";
	if (vr->status == SMIME_VERIFY_REVOKED)
		return "fail";
	if (!vr->signature_ok) {
		if (vr->status == SMIME_VERIFY_MALFORMED ||
		    vr->status == SMIME_VERIFY_UNSUPPORTED_ALGORITHM ||
		    vr->status == SMIME_VERIFY_NO_SIGNER)
			return "permerror";
		return "fail";
	}
	return "policy"; /* valid signature, certificate not trusted now */
}

/* Append a quoted-string value (RFC 5322) without control characters. */
static void
ar_quoted(struct buf *b, const char *s)
{
	buf_append_char(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			continue;
		if (c == '"' || c == '\\')
			buf_append_char(b, '\\');
		buf_append_char(b, (char)c);
	}
	buf_append_char(b, '"');
}

/* Append " (text)" as a comment: no parentheses, backslashes or controls
 * from message data. */
static void
ar_comment(struct buf *b, const char *s)
{
	buf_append_str(b, " (");
	for (; *s; s++)
		if (*s != '(' && *s != ')' && *s != '\\' && (unsigned char)*s >= ' ' &&
		    (unsigned char)*s != 0x7f)
			buf_append_char(b, *s);
	buf_append_str(b, ")");
}

static bool
ar_token_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strchr("()<>@,;:\\\"/[]?=", *s))
			if (*s != '@' && *s != '.')
				return false;
	return true;
}

static void
ar_signer_props(struct buf *b, X509 *signer)
{
	char **addrs = NULL;
	size_t n = 0;
	char *serial = NULL, *issuer = NULL;

	if (signer == NULL)
		return;
	if (x509u_addresses(signer, &addrs, &n, NULL) == SM_OK && n > 0 && ar_token_ok(addrs[0]))
		buf_printf(b, " body.smime-identifier=%s", addrs[0]);
	x509u_strv_free(addrs, n);
	if (x509u_serial_hex(signer, &serial) == SM_OK)
		buf_printf(b, " body.smime-serial=%s", serial);
	if (x509u_name_text(X509_get_issuer_name(signer), &issuer) == SM_OK) {
		buf_append_str(b, " body.smime-issuer=");
		ar_quoted(b, issuer);
	}
	free(serial);
	free(issuer);
}

/* One resinfo: "smime=RESULT (reason) (note) body.smime-…". verified
 * false: the signature could not be read (why says so). */
static void
ar_resinfo(struct buf *b, const struct smime_verify_result *vr, bool verified, const char *why,
    const char *note)
{
	buf_printf(b, "smime=%s", verified ? ar_result(vr) : "permerror");
	if (!verified)
		ar_comment(b, vr->reason[0] ? vr->reason : why);
	else if (vr->status != SMIME_VERIFY_OK)
		ar_comment(b, vr->reason);
	if (note != NULL)
		ar_comment(b, note);
	ar_signer_props(b, vr->signer);
}

/* The key cache's verdict on a store, logged once: the store that changed
 * the selected certificate is the only one that reports it. */
static void
harvest_log_outcome(const char *qid, const char *from, enum keycache_outcome oc,
    const char *fp, const char *old_fp)
{
	switch (oc) {
	case KC_SUPERSEDED_OLD:
		log_qid(LOG_NOTICE, qid, "key change for %s: sha256=%s replaces sha256=%s", from,
		    fp, old_fp);
		break;
	case KC_RENEWED_SAME_KEY:
		log_qid(LOG_INFO, qid,
		    "certificate renewed for %s (same key): sha256=%s replaces sha256=%s", from, fp,
		    old_fp);
		break;
	case KC_REFUSED_SELF_SIGNED:
		log_qid(LOG_WARNING, qid,
		    "key change refused: self-signed would replace CA-issued for %s: sha256=%s kept, "
		    "sha256=%s stored unused",
		    from, old_fp, fp);
		break;
	case KC_OLDER_KEPT_AS_HISTORY:
		log_qid(LOG_INFO, qid, "older certificate for %s kept as history: sha256=%s stays in use",
		    from, old_fp);
		break;
	case KC_INSERTED:
	case KC_UPDATED: break;
	}
}

/* Store what one harvest verdict allows; appends to the summary. */
static sm_status
harvest_store(const struct gw_env *env, const char *qid, const char *from, bool judged,
    const struct harvest_verdict *hv, const char *note, const struct smime_verify_result *vr,
    struct buf *summary)
{
	struct kc_pairing p;
	enum keycache_outcome oc;
	char fp[X509U_FP_SIZE] = "", old_fp[X509U_FP_SIZE] = "";
	sm_status st;

	if (!judged) {
		buf_printf(summary, " not harvested: %s", note);
		return SM_OK;
	}
	if (!hv->harvest) {
		buf_printf(summary, " not harvested %s: %s", from, hv->reason);
		metrics_harvest(metrics_harvest_class(hv->reason));
		return SM_OK;
	}
	memset(&p, 0, sizeof(p));
	p.signer = vr->signer;
	p.enc = hv->cert;
	p.chain = vr->certs;
	p.address = from;
	p.caps = vr->caps;
	p.signing_time = vr->signing_time;
	p.assurance = hv->self_signed ? KC_AS_SELF_SIGNED : KC_AS_CA;
	p.source = KC_SRC_HARVESTED;
	if ((st = keycache_store_pairing(env->kc, &p, &oc, old_fp)) != SM_OK)
		return st;
	metrics_harvest(oc == KC_INSERTED ? METRICS_HARVEST_NEW : oc == KC_UPDATED ? METRICS_HARVEST_SEEN :
	    oc == KC_OLDER_KEPT_AS_HISTORY || oc == KC_REFUSED_SELF_SIGNED ? METRICS_HARVEST_HISTORY :
	    METRICS_HARVEST_SUPERSEDED);
	x509u_fingerprint(hv->cert, fp);
	buf_printf(summary, " harvested %s sha256=%s", from, fp);
	harvest_log_outcome(qid, from, oc, fp, old_fp);
	return SM_OK;
}

/* Harvest from every signature that verified: the innermost one, and one
 * around it unless it is the same certificate. Once per message, however
 * many recipients it has. */
static void
harvest_all(const struct gw_env *env, const struct gw_msg *m, const struct gw_report *r,
    struct buf *summary)
{
	sm_status st = SM_OK;

	if (r->is_signed && r->vr.signature_ok)
		st = harvest_store(env, m->qid, r->from, r->judged, &r->hv, r->harvest_note, &r->vr,
		    summary);
	if (st == SM_OK && r->have_outer && r->outer.verified && r->outer.vr.signature_ok &&
	    !(r->judged && r->outer.judged && r->hv.harvest && r->outer.hv.harvest &&
		X509_cmp(r->hv.cert, r->outer.hv.cert) == 0)) {
		buf_append_str(summary, " outer:");
		st = harvest_store(env, m->qid, r->from, r->outer.judged, &r->outer.hv,
		    r->outer.harvest_note, &r->outer.vr, summary);
	}
	if (st != SM_OK) {
		log_qid(LOG_ERR, m->qid, "harvest failed: %s", sm_strstatus(st));
		buf_printf(summary, " harvest failed: %s", sm_strstatus(st));
	}
}

/* Does key i of the key store belong to address a (a user key for it, or
 * the domain key of its domain)? */
static bool
key_is_for(const struct keystore_info *ki, const char *a)
{
	const char *dom = addr_domain(a);

	for (size_t j = 0; j < ki->n_addresses; j++)
		if (x509u_addr_equal(ki->addresses[j], a))
			return true;
	for (size_t j = 0; dom != NULL && j < ki->n_domains; j++)
		if (strcasecmp(ki->domains[j], dom) == 0)
			return true;
	return false;
}

/*
 * Could every envelope recipient open the envelope with keys of their own?
 * Only then may `deliver` hand out plaintext: otherwise anyone could send
 * a captured envelope to their own internal address and have the gateway
 * decrypt it with a colleague's key. *ok false with why on refusal.
 */
static sm_status
rcpts_can_open(const struct gw_env *env, const struct gw_msg *m, const struct gw_report *r,
    bool *ok, char *why, size_t whylen)
{
	size_t nk = env->ks ? keystore_count(env->ks) : 0;
	struct smime_key *sub;
	struct buf scratch = BUF_INIT;
	char a[320], err[256];
	sm_status st = SM_OK;

	*ok = false;
	if (m->nrcpts == 0) {
		snprintf(why, whylen, "no envelope recipients");
		return SM_OK;
	}
	if ((sub = calloc(nk ? nk : 1, sizeof(*sub))) == NULL)
		return SM_ERR_NOMEM;
	for (size_t i = 0; i < m->nrcpts; i++) {
		size_t n = 0;

		if (addr_normalize(m->rcpts[i], a, sizeof(a)) != SM_OK) {
			snprintf(why, whylen, "recipient %s is not an address", m->rcpts[i]);
			goto out;
		}
		for (size_t j = 0; j < nk; j++)
			if (key_is_for(keystore_info_at(env->ks, j), a))
				sub[n++] = *(const struct smime_key *)keystore_key_at(env->ks, j);
		if (n == 0) {
			snprintf(why, whylen, "no key of ours belongs to recipient %s", a);
			goto out;
		}
		st = smime_decrypt(r->envder.data, r->envder.len, sub, n, &scratch, err, sizeof(err));
		buf_wipe_free(&scratch);
		if (st == SM_ERR_NOMEM)
			goto out;
		if (st != SM_OK) {
			snprintf(why, whylen, "not encrypted to recipient %s (%s)", a,
			    st == SM_ERR_NOKEY ? "none of their keys is a recipient" : err);
			st = SM_OK;
			goto out;
		}
	}
	*ok = true;
out:
	free(sub);
	return st;
}

/* Plaintext goes only where its author's words may go: the signer's
 * certificate carries the From address (RFC 8551 §3.4), and the envelope
 * sender is that address too, so any bounce (ours, or a later hop's, with
 * RET=FULL) returns the plaintext to its author, never to whoever replayed
 * the envelope. */
static bool
author_conversation(const struct gw_msg *m, const struct gw_report *r, char *why, size_t whylen)
{
	char sender[320];
	const char *shown;
	bool valid, bracket;

	if (r->from[0] == '\0') {
		snprintf(why, whylen, "no single From address");
		return false;
	}
	if (r->vr.signer == NULL || !x509u_has_address(r->vr.signer, r->from)) {
		snprintf(why, whylen, "the signer's certificate does not carry the From address %s",
		    r->from);
		return false;
	}
	valid = m->sender != NULL && addr_normalize(m->sender, sender, sizeof(sender)) == SM_OK;
	if (!valid || strcmp(sender, r->from) != 0) {
		shown = valid ? sender : m->sender ? m->sender : "";
		bracket = shown[0] != '<';
		snprintf(why, whylen, "the envelope sender %s%s%s is not the From address %s "
		    "(a bounce must return to the author)", bracket ? "<" : "", shown,
		    bracket ? ">" : "", r->from);
		return false;
	}
	return true;
}

/* May the decrypted content replace the message? Only content whose
 * integrity a signature inside the envelope vouches for: an unsigned or
 * broken CBC envelope may be an attacker's splice of someone else's
 * ciphertext (EFAIL's gadget attack), and the recipient would read it as
 * genuine. */
static bool
deliverable(const struct gw_msg *m, const struct gw_report *r, char *why, size_t whylen)
{
	if (r->too_deep) {
		snprintf(why, whylen, "nested deeper than one envelope and two signatures");
		return false;
	}
	if (!r->have_vr && r->content_e == NULL) {
		snprintf(why, whylen, "decrypted content is no readable MIME");
		return false;
	}
	if (!r->have_vr || !r->sig_inside_envelope) {
		snprintf(why, whylen, "decrypted content is not signed");
		return false;
	}
	if (!r->is_signed || !r->vr.signature_ok ||
	    (r->have_outer && r->outer.inside_envelope &&
		(!r->outer.verified || !r->outer.vr.signature_ok))) {
		snprintf(why, whylen, "the signature inside does not verify");
		return false;
	}
	if (r->content_e == NULL) {
		snprintf(why, whylen, "the signed content is no MIME entity");
		return false;
	}
	return author_conversation(m, r, why, whylen);
}

static void
edits_truncate(struct gw_result *r, size_t n)
{
	while (r->nedits > n) {
		r->nedits--;
		free(r->edits[r->nedits].name);
		free(r->edits[r->nedits].value);
	}
}

/* The protected fields a delivered message may get back (RFC 9788 §4):
 * what a reader shows and threads by, never trace or results fields. */
static bool
restorable(const char *name)
{
	static const char *const ok[] = { "Subject", "From", "To", "Cc", "Reply-To", "Date",
		"Message-ID", "In-Reply-To", "References", "Keywords", "Comments", NULL };
	for (size_t i = 0; ok[i]; i++)
		if (strcasecmp(name, ok[i]) == 0)
			return true;
	return false;
}

/* May the protected field h replace the outer one? A From only when its
 * address is the signer's. */
static bool
restore_allowed(const struct gw_msg *m, const struct gw_report *r, const struct mime_header *h)
{
	char addr[320];

	if (!restorable(h->name))
		return false;
	if (strcasecmp(h->name, "From") != 0)
		return true;
	if (addr_from_header(h->value, addr, sizeof(addr)) == SM_OK && r->vr.signer &&
	    x509u_has_address(r->vr.signer, addr))
		return true;
	log_qid(LOG_NOTICE, m->qid, "protected From %s is not the signer's address: not restored",
	    addr);
	return false;
}

/* Put one protected field back outside: its outer occurrences replaced. */
static sm_status
restore_field(const struct gw_msg *m, const struct hp_parsed *p, const char *name,
    struct gw_result *out)
{
	size_t nout = mime_headers_count(m->hdrs, name), nin = mime_headers_count(&p->fields, name);
	sm_status st = SM_OK;

	if (nout == 1 && nin == 1) {
		char *v = mime_header_unfold(mime_headers_get(&p->fields, name));
		char *o = mime_header_unfold(mime_headers_get(m->hdrs, name));
		if (v == NULL || o == NULL)
			st = SM_ERR_NOMEM;
		else if (strcmp(v, o) != 0)
			st = edit_add(out, GW_HDR_CHANGE, name, 1, v);
		free(v);
		free(o);
		return st;
	}
	for (size_t i = nout; i > 0 && st == SM_OK; i--)
		st = edit_add(out, GW_HDR_DELETE, name, (int)i, NULL);
	for (size_t i = 0; i < p->fields.n && st == SM_OK; i++) {
		char *v;
		if (strcasecmp(p->fields.v[i].name, name) != 0)
			continue;
		if ((v = mime_header_unfold(p->fields.v[i].value)) == NULL)
			return SM_ERR_NOMEM;
		st = edit_add(out, GW_HDR_ADD, name, 0, v);
		free(v);

	}
	return st;
}

/* RFC 9788 on delivery: the signed content carries the real header
 * (hp="cipher"), the outside only what travelled in clear ("[...]"). Give
 * the delivered message the protected fields back: only from content a
 * verified signature covers (deliverable() holds), only the fields
 * restorable() lists, and a From only when it is the signer's. */
static sm_status
deliver_restore_header(const struct gw_msg *m, const struct gw_report *r, struct gw_result *out)
{
	struct hp_parsed p;
	sm_status st = SM_OK;
	size_t n = 0;

	if (!r->is_signed || !r->vr.signature_ok || hp_parse(&r->content_e->hdrs, &p) != SM_OK)
		return SM_OK;
	for (size_t i = 0; p.kind == HP_CIPHER && i < p.fields.n && st == SM_OK; i++) {
		const struct mime_header *h = &p.fields.v[i];
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen |= strcasecmp(p.fields.v[j].name, h->name) == 0;
		if (seen || !restore_allowed(m, r, h))
			continue;
		st = restore_field(m, &p, h->name, out);
		n++;
	}
	if (st == SM_OK && n > 0)
		log_qid(LOG_INFO, m->qid, "protected header restored (%zu fields)", n);
	hp_parsed_free(&p);
	return st;
}

/* Replace the message by the decrypted content (decrypt = "deliver"). */
static sm_status
deliver_decrypted(const struct gw_msg *m, const struct gw_report *r, struct gw_result *out)
{
	const struct mime_entity *e = r->content_e;
	struct mime_headers outer = MIME_HEADERS_INIT, content = MIME_HEADERS_INIT;
	struct buf canon = BUF_INIT;
	const unsigned char *body;
	sm_status st;

	/* Fresh canonical MIME from the content entity: nothing of the
	 * envelope's or the signatures' bytes survives around it, and the
	 * RFC 5322 headers stay those of the message (EFAIL). */
	if ((st = mime_split_headers(&e->hdrs, &outer, &content)) != SM_OK ||
	    (st = mime_canonicalize(&content, e->body, e->body_len, NULL, &canon)) != SM_OK)
		goto out;
	body = canon.data ? (const unsigned char *)strstr((const char *)canon.data, "\r\n\r\n") : NULL;
	if (body == NULL) {
		st = SM_ERR_PARSE;
		goto out;
	}
	if ((st = edit_delete_where(out, m->hdrs, is_content_header, NULL)) != SM_OK)
		goto out;
	if (mime_headers_get(m->hdrs, "MIME-Version") == NULL &&
	    (st = edit_add(out, GW_HDR_ADD, "MIME-Version", 0, "1.0")) != SM_OK)
		goto out;
	for (size_t i = 0; i < content.n; i++) {
		char *v = mime_header_unfold(content.v[i].value);
		st = v ? edit_add(out, GW_HDR_ADD, content.v[i].name, 0, v) : SM_ERR_NOMEM;
		free(v);
		if (st != SM_OK)
			goto out;
	}
	if ((st = deliver_restore_header(m, r, out)) != SM_OK)
		goto out;
	body += 4;
	buf_reset(&out->body);
	st = buf_append(&out->body, body, canon.len - (size_t)(body - canon.data));
	out->replace_body = st == SM_OK;
out:
	mime_headers_free(&outer);
	mime_headers_free(&content);
	buf_wipe_free(&canon);
	return st;
}

const char *
gw_report_result(const struct gw_report *r)
{
	if (r->over_budget)
		return "temperror";
	if (r->is_signed)
		return ar_result(&r->vr);
	if (r->have_vr)
		return "permerror"; /* a signature that cannot be read */
	if (r->malformed && r->kind != MIME_SMIME_NONE && !is_envelope_kind(r->kind) &&
	    !r->encrypted)
		return "permerror";
	return NULL;
}

/* The summary line, first half: what the message is and its signatures. */
static void
summary_head(const struct gw_report *r, struct buf *s)
{
	bool enc = r->encrypted || is_envelope_kind(r->kind);

	buf_append_str(s, "inbound");
	if (r->decrypted)
		buf_append_str(s, " decrypted");
	else if (enc && !r->have_vr)
		buf_append_str(s, " encrypted");
	if (r->have_vr) {
		buf_printf(s, " smime=%s", gw_report_result(r));
		if (!r->is_signed)
			buf_printf(s, " (%s)", r->vr.reason[0] ? r->vr.reason : r->what);
		else if (r->vr.status != SMIME_VERIFY_OK)
			buf_printf(s, " (%s)", r->vr.reason);
		if (r->have_outer)
			buf_printf(s, " outer smime=%s", r->outer.verified ? ar_result(&r->outer.vr) :
			    "permerror");
	}
}

/* Second half, after the harvest: what else there is to know. */
static void
summary_tail(const struct config *cfg, const struct gw_report *r, struct buf *s)
{
	bool enc = r->encrypted || is_envelope_kind(r->kind);

	if (r->have_vr) {
		/* said in summary_head */
	} else if (r->decrypted) {
		buf_append_str(s, ", unsigned inside: nothing to harvest");
		if (r->what[0])
			buf_printf(s, " (%s)", r->what);
	} else if (!enc) {
		if (r->malformed)
			buf_printf(s, " %s, passed untouched", r->what);
		else if (r->kind == MIME_SMIME_NONE)
			buf_append_str(s, " unsigned");
		else if (strstr(r->structure, "certs-only") != NULL)
			buf_append_str(s, " certs-only message, nothing verified");
		else
			buf_printf(s, " S/MIME, unsigned%s%s", r->what[0] ? ": " : "", r->what);
	}
	if (enc && !r->decrypted)
		buf_printf(s, "%s not decrypted: %s", r->have_vr ? ", encrypted inside," : ",",
		    cfg->inbound_decrypt == CFG_DECRYPT_OFF ? "decrypt = off" :
		    r->too_deep ? "nested deeper than one envelope and two signatures" : r->what);
	else if (r->too_deep)
		buf_append_str(s, ", nested deeper than one envelope and two signatures: "
		    "inner layers not examined");
	if (r->envelope_in_part)
		buf_append_str(s, ", encrypted part inside a multipart left closed "
		    "(only a whole-message envelope is decrypted)");
	if (r->structure[0] && (enc || r->have_outer || r->too_deep))
		buf_printf(s, " [%s]", r->structure);
}

/* The inbound counters: the smime= result and the decryption. */
static void
gw_count_inbound(const struct config *cfg, const struct gw_report *r, const char *result)
{
	enum metrics_decrypt_mode mode = cfg->inbound_decrypt == CFG_DECRYPT_DELIVER ?
	    METRICS_DECRYPT_DELIVER : METRICS_DECRYPT_HARVEST;

	metrics_inbound_result(result);
	if (r->decrypted)
		metrics_decryption(mode, METRICS_DECRYPT_OK);
	else if (r->decrypt_failed)
		metrics_decryption(mode, r->decrypt_status == SM_ERR_NOKEY ? METRICS_DECRYPT_NO_KEY :
		    METRICS_DECRYPT_FAILED);
}

/* The CPU budget ran out: the message passes as received, unjudged, with
 * smime=temperror (RFC 8601: a later retry may succeed). */
static sm_status
inbound_unjudged(const struct config *cfg, const struct gw_report *r, struct gw_result *out)
{
	struct buf ar = BUF_INIT;
	sm_status st = SM_OK;

	buf_printf(&out->summary, "inbound smime=temperror (%s), passed unjudged", r->what);
	if (cfg->inbound_results_header) {
		buf_printf(&ar, "%s; smime=temperror", cfg->authserv_id);
		ar_comment(&ar, r->what);
		st = buf_cstr(&ar) == NULL ? SM_ERR_NOMEM :
		    edit_add(out, GW_HDR_INSERT_TOP, "Authentication-Results", 0, buf_cstr(&ar));
	}
	buf_free(&ar);
	return st;
}

sm_status
gw_inbound(const struct gw_env *env, const struct gw_msg *m, struct gw_result *out)
{
	const struct config *cfg = env->cfg;
	struct gw_report r;
	struct buf ar = BUF_INIT;
	const char *result;
	char why[1024];
	bool ok;
	sm_status st;

	memset(out, 0, sizeof(*out));
	out->verdict = POL_ACCEPT;

	/* Results claiming our authserv-id, and decryption markers, can only
	 * be forgeries: we add ours below. */
	if ((st = edit_delete_where(out, m->hdrs, is_our_results, cfg->authserv_id)) != SM_OK ||
	    (st = edit_delete_where(out, m->hdrs, is_decrypted_marker, NULL)) != SM_OK)
		return st;
	st = gw_examine(env, m->hdrs, m->body, m->body_len,
	    cfg->inbound_decrypt != CFG_DECRYPT_OFF, &r);
	if (st != SM_OK) {
		gw_report_free(&r);
		return st;
	}
	if (r.over_budget) {
		gw_count_inbound(cfg, &r, "temperror");
		st = inbound_unjudged(cfg, &r, out);
		gw_report_free(&r);
		return st;
	}
	result = gw_report_result(&r);
	gw_count_inbound(cfg, &r, result);
	summary_head(&r, &out->summary);
	if (r.have_vr && cfg->inbound_harvest)
		harvest_all(env, m, &r, &out->summary);
	summary_tail(cfg, &r, &out->summary);

	/* What reaches the recipients. */
	if (r.decrypted && cfg->inbound_decrypt == CFG_DECRYPT_DELIVER) {
		size_t nedits = out->nedits;

		ok = deliverable(m, &r, why, sizeof(why));
		if (ok && (st = rcpts_can_open(env, m, &r, &ok, why, sizeof(why))) != SM_OK)
			goto fail;
		if (ok && (st = deliver_decrypted(m, &r, out)) != SM_OK) {
			if (st == SM_ERR_NOMEM)
				goto fail;
			/* Never partial plaintext: the original goes through. */
			snprintf(why, sizeof(why), "cannot rebuild the decrypted content: %s",
			    sm_strstatus(st));
			ok = false;
		}
		if (ok) {
			char mark[300];
			snprintf(mark, sizeof(mark), "%s; %s opened by smime-milter", cfg->authserv_id,
			    strstr(r.structure, "authEnveloped-data") ? "authEnveloped-data" :
			    "enveloped-data");
			if ((st = edit_add(out, GW_HDR_ADD, "X-SMIME-Decrypted", 0, mark)) != SM_OK)
				goto fail;
			buf_append_str(&out->summary, ", delivered decrypted");
		} else {
			/* Undo what deliver_decrypted began; the removal of
			 * forgeries stays. */
			edits_truncate(out, nedits);
			out->replace_body = false;
			buf_wipe_free(&out->body);
			buf_printf(&out->summary, ", delivered as received: %s", why);
		}
	} else if (r.encrypted || is_envelope_kind(r.kind) || r.envelope_in_part) {
		buf_append_str(&out->summary, ", delivered as received");
	}

	if (cfg->inbound_results_header && result) {
		buf_printf(&ar, "%s; ", cfg->authserv_id);
		ar_resinfo(&ar, &r.vr, r.is_signed, r.what, NULL);
		if (r.have_outer) {
			buf_append_str(&ar, "; ");
			ar_resinfo(&ar, &r.outer.vr, r.outer.verified, r.what, "outer signature");
		}
		if ((st = edit_add(out, GW_HDR_INSERT_TOP, "Authentication-Results", 0, buf_cstr(&ar))) != SM_OK)
			goto fail;
	}
	buf_free(&ar);
	gw_report_free(&r);
	metrics_message(METRICS_INBOUND, out->replace_body ? METRICS_DECRYPTED : METRICS_UNCHANGED);
	return SM_OK;
fail:
	buf_free(&ar);
	gw_report_free(&r);
	return st;
}
