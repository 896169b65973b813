/*
 * gateway.c — the outbound and inbound pipelines. The helpers they share
 * (declared in gateway_int.h) and the RCPT-time decision are here; the
 * outbound pipeline at end of data is in gw_outbound.c.
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
#include "spool.h"
#include "trust.h"
#include "x509util.h"
#include "gateway_int.h"

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
	spool_free(r->body_spool);
	buf_free(&r->summary);
	memset(r, 0, sizeof(*r));
}

sm_status
gw_edit_add(struct gw_result *r, enum gw_hdr_op op, const char *name, int index, const char *value)
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
sm_status
gw_edit_delete_where(struct gw_result *r, const struct mime_headers *h,
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
		if ((st = gw_edit_add(r, GW_HDR_DELETE, h->v[i].name, index, NULL)) != SM_OK)
			return st;
	}
	return SM_OK;
}

sm_status
set_reply(struct pol_reply *rp, const char *code, const char *xcode, const char *text)
{
	const char *lines[1] = { text };

	return policy_reply_set(rp, code, xcode, lines, 1);
}

/* Internal trouble: a temporary failure, so the client retries and no
 * plaintext leaves where encryption was needed. */
sm_status
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

int
key_type_of(X509 *cert)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);

	return pk ? EVP_PKEY_get_base_id(pk) : EVP_PKEY_NONE;
}

enum pol_keytype
pol_key_of(X509 *cert)
{
	switch (key_type_of(cert)) {
	case EVP_PKEY_RSA: return POL_KEY_RSA;
	case EVP_PKEY_EC: return POL_KEY_EC;
	default: return POL_KEY_NONE;
	}
}

X509_STORE *
gw_env_store(const struct gw_env *env)
{
	return env->trust ? trust_store(env->trust) : NULL;
}

/* ------------------------------------------------------------------ */
/* Recipients (RCPT time; end of data in gw_outbound.c)                 */
/* ------------------------------------------------------------------ */

sm_status
lookup_rcpt(const struct gw_env *env, const char *sender, const char *addr,
    struct rcpt_key *rk)
{
	/* Revocation: the selection rule's last usability condition. */
	struct revstore_hook_arg ra = { env->rs, config_revocation_for(env->cfg, sender, addr),
	    gw_env_store(env) };
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
	st = keycache_select_hook(env->kc, addr, gw_env_store(env),
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
	if ((st = discover_rcpt(env->disc, NULL, r, env->kc, gw_env_store(env),
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
void
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

/* A Content-* field (edit_delete_where predicate). */
bool
gw_is_content_header(const struct mime_header *h, const void *arg)
{
	(void)arg;
	return strncasecmp(h->name, "Content-", 8) == 0;
}
