#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

enum pol_direction
policy_direction(const struct config *cfg, const char *daemon_name, const char *auth_authen,
    const struct sockaddr *client)
{
	if (daemon_name && *daemon_name)
		for (size_t i = 0; i < cfg->n_outbound_daemons; i++)
			if (strcmp(cfg->outbound_daemons[i], daemon_name) == 0)
				return POL_OUTBOUND;
	if (auth_authen && *auth_authen)
		return POL_OUTBOUND;
	if (client && cidr_match_list(cfg->internal_hosts, cfg->n_internal_hosts, client))
		return POL_OUTBOUND;
	return POL_INBOUND;
}

void
policy_reply_free(struct pol_reply *r)
{
	for (size_t i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	memset(r, 0, sizeof(*r));
}

sm_status
policy_reply_set(struct pol_reply *r, const char *code, const char *xcode,
    const char *const *lines, size_t n)
{
	policy_reply_free(r);
	snprintf(r->code, sizeof(r->code), "%s", code);
	snprintf(r->xcode, sizeof(r->xcode), "%s", xcode);
	for (size_t i = 0; i < n && i < POL_REPLY_LINES; i++) {
		if ((r->lines[i] = strdup(lines[i])) == NULL) {
			policy_reply_free(r);
			return SM_ERR_NOMEM;
		}
		r->nlines++;
	}
	return SM_OK;
}

static sm_status
reply_add(struct pol_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static sm_status
reply_add(struct pol_reply *r, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	sm_status st;

	if (r->nlines >= POL_REPLY_LINES)
		return SM_OK; /* SMTP replies are bounded; the first lines matter */
	va_start(ap, fmt);
	st = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (st != SM_OK)
		return st;
	/* Reply text must not carry CR, LF or %, which libmilter would mangle. */
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] == '\r' || b.data[i] == '\n' || b.data[i] == '%')
			b.data[i] = ' ';
	r->lines[r->nlines++] = buf_steal(&b);
	return r->lines[r->nlines - 1] ? SM_OK : SM_ERR_NOMEM;
}

static const char *
key_name(enum pol_keytype k)
{
	return k == POL_KEY_EC ? "EC" : k == POL_KEY_RSA ? "RSA" : "no";
}

/* 452 4.7.0: this recipient cannot share the transaction; the MTA
 * retries it in one of its own. */
static sm_status
rcpt_defer(struct pol_rcpt_decision *out, const char *log, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sm_status
rcpt_defer(struct pol_rcpt_decision *out, const char *log, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	out->verdict = POL_TEMPFAIL;
	snprintf(out->log, sizeof(out->log), "%s", log);
	snprintf(out->reply.code, sizeof(out->reply.code), "452");
	snprintf(out->reply.xcode, sizeof(out->reply.xcode), "4.7.0");
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	return reply_add(&out->reply, "%s", line);
}

/* Join a recipient whose own treatment is mine to the transaction so far
 * (the rule in policy.h). */
static sm_status
rcpt_join(const struct pol_treatment *tx, const struct pol_treatment *mine, const char *rcpt,
    struct pol_rcpt_decision *out)
{
	struct pol_treatment joined = *tx;

	joined.hard |= mine->hard;
	joined.firm |= mine->firm;
	if (tx->encrypt && mine->encrypt && tx->key_type != mine->key_type)
		/* Key types never share an envelope: NSS refuses a whole
		 * envelope with one ECDH recipient among RSA ones. */
		return rcpt_defer(out, "key type differs from the first recipient's",
		    "<%s> needs an envelope of its own (%s key, first recipient %s); please retry it separately",
		    rcpt, key_name(mine->key_type), key_name(tx->key_type));
	if (tx->encrypt != mine->encrypt) {
		if (tx->hard || tx->firm || mine->hard || mine->firm)
			return rcpt_defer(out,
			    tx->hard || mine->hard ?
				"treatment differs from the first recipient's (encryption required)" :
				"treatment differs from the first recipient's (mixed = split)",
			    "<%s> is %s, the first recipient %s; please retry it in a separate transaction",
			    rcpt, mine->encrypt ? "encrypted" : "not encrypted",
			    tx->encrypt ? "is" : "is not");
		/* Everyone involved allows it: the message goes signed only. */
		joined.encrypt = false;
		joined.key_type = POL_KEY_NONE;
	}
	out->treatment = joined;
	return SM_OK;
}

sm_status
policy_rcpt(const struct config *cfg, const char *sender, const char *rcpt,
    const struct pol_lookup *lk, const struct pol_treatment *first,
    struct pol_rcpt_decision *out)
{
	struct pol_treatment mine;
	struct cfg_outbound o;
	sm_status st = SM_OK;

	memset(out, 0, sizeof(*out));
	config_outbound_for(cfg, sender, rcpt, &o, NULL);
	out->verdict = POL_ACCEPT;
	memset(&mine, 0, sizeof(mine));
	mine.encrypt = o.encrypt != CFG_ENCRYPT_NEVER && lk->has_cert;
	mine.key_type = mine.encrypt ? lk->key_type : POL_KEY_NONE;
	mine.hard = o.encrypt == CFG_ENCRYPT_REQUIRED;
	mine.firm = o.encrypt != CFG_ENCRYPT_REQUIRED && o.mixed == CFG_MIXED_SPLIT;
	out->treatment = mine;
	snprintf(out->log, sizeof(out->log), "%s", "accepted");

	if (o.encrypt == CFG_ENCRYPT_REQUIRED && !lk->has_cert) {
		const char *why = lk->reason ? lk->reason : "no certificate exchanged";
		bool temp = o.missing_cert == CFG_MISSING_TEMPFAIL;

		out->verdict = temp ? POL_TEMPFAIL : POL_REJECT;
		snprintf(out->log, sizeof(out->log), "%s", why);
		snprintf(out->reply.code, sizeof(out->reply.code), "%s", temp ? "450" : "550");
		snprintf(out->reply.xcode, sizeof(out->reply.xcode), "%s", temp ? "4.7.1" : "5.7.1");
		if ((st = reply_add(&out->reply, "Encrypted delivery to <%s> is required, but %s.",
			 rcpt, why)) != SM_OK ||
		    (st = reply_add(&out->reply, "Ask <%s> to send you a digitally signed message;", rcpt)) != SM_OK ||
		    (st = reply_add(&out->reply, "its certificate will be picked up automatically. Then send again.")) != SM_OK)
			policy_reply_free(&out->reply);
		return st;
	}
	if (first == NULL)
		return SM_OK;
	if ((st = rcpt_join(first, &mine, rcpt, out)) != SM_OK)
		policy_reply_free(&out->reply);
	return st;
}

void
policy_plan_free(struct pol_plan *p)
{
	policy_reply_free(&p->reply);
}

bool
policy_needs_encryption(const struct config *cfg, const char *sender, const char *rcpt,
    bool triggered)
{
	struct cfg_outbound o;

	config_outbound_for(cfg, sender, rcpt, &o, NULL);
	return triggered || o.encrypt == CFG_ENCRYPT_REQUIRED;
}

/* The refusal at end of message: the recipients that need encryption and
 * have no key, and nobody else. */
static sm_status
plan_refuse(const struct config *cfg, const char *sender, const struct pol_msg_rcpt *rcpts,
    size_t n, bool triggered, const char *trigger_what, struct pol_plan *out)
{
	sm_status st;

	out->verdict = out->o.missing_cert == CFG_MISSING_TEMPFAIL ? POL_TEMPFAIL : POL_REJECT;
	snprintf(out->reply.code, sizeof(out->reply.code), "%s",
	    out->verdict == POL_TEMPFAIL ? "450" : "550");
	snprintf(out->reply.xcode, sizeof(out->reply.xcode), "%s",
	    out->verdict == POL_TEMPFAIL ? "4.7.1" : "5.7.1");
	st = reply_add(&out->reply, "Encryption was %s, but not every recipient has exchanged keys:",
	    triggered && trigger_what ? trigger_what : "required by policy");
	for (size_t i = 0; st == SM_OK && i < n && out->reply.nlines < POL_REPLY_LINES - 1; i++)
		if (!rcpts[i].lk.has_cert &&
		    policy_needs_encryption(cfg, sender, rcpts[i].addr, triggered))
			st = reply_add(&out->reply, "<%s>: %s", rcpts[i].addr,
			    rcpts[i].lk.reason ? rcpts[i].lk.reason : "no certificate exchanged");
	if (st == SM_OK)
		st = reply_add(&out->reply,
		    "Ask each of them to send you a digitally signed message, then send again.");
	if (st != SM_OK)
		policy_reply_free(&out->reply);
	return st;
}

sm_status
policy_plan(const struct config *cfg, const char *sender, const struct pol_msg_rcpt *rcpts,
    size_t n, bool triggered, const char *trigger_what, struct pol_plan *out)
{
	bool any_required = triggered, all_have = true, any_have = false, any_sign = false;
	size_t missing = 0;
	sm_status st;

	memset(out, 0, sizeof(*out));
	out->triggered = triggered;
	out->verdict = POL_ACCEPT;
	config_outbound_for(cfg, sender, n ? rcpts[0].addr : NULL, &out->o, NULL);
	for (size_t i = 0; i < n; i++) {
		struct cfg_outbound o;

		config_outbound_for(cfg, sender, rcpts[i].addr, &o, NULL);
		any_sign |= o.sign;
		if (o.encrypt == CFG_ENCRYPT_REQUIRED)
			any_required = true;
		if ((o.encrypt == CFG_ENCRYPT_REQUIRED || triggered) && !rcpts[i].lk.has_cert)
			missing++;
		if ((o.encrypt != CFG_ENCRYPT_NEVER || triggered) && rcpts[i].lk.has_cert)
			any_have = true;
		else
			all_have = false;
	}
	out->sign = any_sign;
	if (n == 0)
		return SM_OK;
	if (missing > 0)
		return plan_refuse(cfg, sender, rcpts, n, triggered, trigger_what, out);
	if (any_required && !all_have) {
		/* Someone must be encrypted to and someone cannot be: the RCPT
		 * stage splits such a transaction, so the cache changed since.
		 * Never a rejection: the retry meets the RCPT rule. */
		static const char *const lines[] = {
			"The recipients of this message now need different treatment",
			"(some must be encrypted to, some cannot be); please try again.",
		};
		out->verdict = POL_TEMPFAIL;
		if ((st = policy_reply_set(&out->reply, "451", "4.7.0", lines, 2)) != SM_OK)
			return st;
		return SM_OK;
	}
	/* Opportunistic: encrypt when everyone can be encrypted to; mixed
	 * recipients under sign-only get a signed, unencrypted message. */
	out->encrypt = any_have && all_have;
	return SM_OK;
}
