/*
 * config_policy.c — policy rules (see config_int.h): read from the file,
 * completed from the global revocation group, matched against a sender
 * and a recipient.
 */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

/* Members a rule's revocation group leaves out, until
 * config_policy_inherit fills them from the global group. */
#define REV_UNSET_INT UINT64_MAX
#define REV_UNSET_CHECK (-1)

static void
policy_revocation(struct loadctx *lc, struct cfg_policy *r, config_setting_t *m,
    const char *path)
{
	const struct schema e = { "revocation", T_GROUP, 0, NULL, 0, 0, NULL,
		config_revocation_schema, C_NONE, 0, 0 };

	r->has_rev = true;
	*(int *)&r->rev.check = REV_UNSET_CHECK;
	r->rev.grace_days = r->rev.timeout_ms = REV_UNSET_INT;
	config_load_one(lc, &e, m, (char *)&r->rev, path, NULL);
}

void
config_policy_inherit(struct loadctx *lc, struct config *c)
{
	for (size_t i = 0; i < c->n_policy; i++) {
		struct cfg_revocation *rv = &c->policy[i].rev;

		if (!c->policy[i].has_rev)
			continue;
		if (*(int *)&rv->check == REV_UNSET_CHECK)
			rv->check = c->revocation.check;
		if (rv->grace_days == REV_UNSET_INT)
			rv->grace_days = c->revocation.grace_days;
		if (rv->timeout_ms == REV_UNSET_INT)
			rv->timeout_ms = c->revocation.timeout_ms;
		if (rv->proxy == NULL && c->revocation.proxy &&
		    (rv->proxy = strdup(c->revocation.proxy)) == NULL)
			lc->oom = 1;
	}
}

/* One rule { … }: its address keys, then the outbound keys it may
 * override (checked with the same table as the outbound group itself) and
 * its revocation group. */
static void
policy_rule(struct loadctx *lc, config_setting_t *el, struct cfg_policy *r, const char *rpath)
{
	config_load_group(lc, el, config_policy_schema, (char *)r, rpath, NULL);
	for (unsigned j = 0; j < (unsigned)config_setting_length(el); j++) {
		config_setting_t *m = config_setting_get_elem(el, j);
		const char *name = config_setting_name(m);
		char kpath[128];

		snprintf(kpath, sizeof(kpath), "%s.%s", rpath, name);
		for (const struct schema *o = config_outbound_schema; o->name; o++)
			if (strcmp(o->name, name) == 0 && o->setbit) {
				config_load_one(lc, o, m, (char *)&r->o, kpath, NULL);
				r->set |= o->setbit;
			}
		if (strcmp(name, "revocation") == 0)
			policy_revocation(lc, r, m, kpath);
	}
	if ((config_setting_get_member(el, "recipient") == NULL) ==
	    (config_setting_get_member(el, "sender") == NULL))
		config_lc_error(lc, r->line, rpath, "a rule needs exactly one of recipient or sender");
}

void
config_policy_load(struct loadctx *lc, config_setting_t *s, const char *path,
    struct config *cfg)
{
	int line = config_setting_source_line(s);
	int t = config_setting_type(s);
	int n = config_setting_length(s);

	if (t != CONFIG_TYPE_LIST) {
		config_lc_error(lc, line, path, "expected a list of rules ( { … }, … ); got %s",
		    config_type_name(t));
		return;
	}
	cfg->policy = calloc((size_t)n + 1, sizeof(*cfg->policy));
	if (cfg->policy == NULL) {
		lc->oom = 1;
		return;
	}
	for (int i = 0; i < n; i++) {
		config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
		struct cfg_policy *r = &cfg->policy[cfg->n_policy++];
		char rpath[64];

		snprintf(rpath, sizeof(rpath), "policy[%d]", i + 1);
		r->line = config_setting_source_line(el);
		if (config_setting_type(el) != CONFIG_TYPE_GROUP) {
			config_lc_error(lc, r->line, rpath,
			    "expected a rule { recipient = \"…\"; … }; got %s",
			    config_type_name(config_setting_type(el)));
			continue;
		}
		policy_rule(lc, el, r, rpath);
	}
}

/* ---- matching ---- */

static bool
policy_matches(const char *pattern, const char *addr)
{
	if (pattern == NULL || addr == NULL)
		return false;
	if (pattern[0] == '@')
		return addr_in_domain(addr, pattern + 1);
	return addr_equal(pattern, addr);
}

void
config_outbound_for(const struct config *cfg, const char *sender, const char *rcpt,
    struct cfg_outbound *out, int *rule_line)
{
	*out = cfg->outbound;
	if (rule_line)
		*rule_line = 0;
	for (size_t i = 0; i < cfg->n_policy; i++) {
		const struct cfg_policy *r = &cfg->policy[i];

		if (!(policy_matches(r->recipient, rcpt) || policy_matches(r->sender, sender)))
			continue;
		if (r->set & CFG_SET_SIGN)
			out->sign = r->o.sign;
		if (r->set & CFG_SET_ENCRYPT)
			out->encrypt = r->o.encrypt;
		if (r->set & CFG_SET_MISSING_CERT)
			out->missing_cert = r->o.missing_cert;
		if (r->set & CFG_SET_MIXED)
			out->mixed = r->o.mixed;
		if (r->set & CFG_SET_CIPHER)
			out->cipher = r->o.cipher;
		if (r->set & CFG_SET_RSA_PADDING)
			out->rsa_padding = r->o.rsa_padding;
		if (r->set & CFG_SET_DIGEST)
			out->digest = r->o.digest;
		if (r->set & CFG_SET_SIGN_FORMAT)
			out->sign_format = r->o.sign_format;
		if (r->set & CFG_SET_ENCRYPT_TO_SENDER)
			out->encrypt_to_sender = r->o.encrypt_to_sender;
		if (r->set & CFG_SET_ON_ERROR)
			out->on_error = r->o.on_error;
		if (r->set & CFG_SET_HEADER_PROTECTION)
			out->header_protection = r->o.header_protection;
		if (r->set & CFG_SET_LEGACY_DISPLAY)
			out->legacy_display = r->o.legacy_display;
		if (rule_line)
			*rule_line = r->line;
		return;
	}
}

const struct cfg_revocation *
config_revocation_for(const struct config *cfg, const char *sender, const char *rcpt)
{
	for (size_t i = 0; i < cfg->n_policy; i++) {
		const struct cfg_policy *r = &cfg->policy[i];

		if (!(policy_matches(r->recipient, rcpt) || policy_matches(r->sender, sender)))
			continue;
		return r->has_rev ? &r->rev : &cfg->revocation;
	}
	return &cfg->revocation;
}

bool
config_revocation_on(const struct config *cfg)
{
	if (cfg->revocation.check != CFG_REV_OFF)
		return true;
	for (size_t i = 0; i < cfg->n_policy; i++)
		if (cfg->policy[i].has_rev && cfg->policy[i].rev.check != CFG_REV_OFF)
			return true;
	return false;
}
