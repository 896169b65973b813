/*
 * recipient.c — recipient classification (see recipient.h).
 */
#include "recipient.h"

#include <stdbool.h>
#include <stdio.h>

#include "address.h"

/* Could any policy make a recipient's encryption required? */
static bool
may_require(const struct config *cfg)
{
	if (cfg->outbound.encrypt == CFG_ENCRYPT_REQUIRED)
		return true;
	for (size_t i = 0; i < cfg->n_policy; i++)
		if ((cfg->policy[i].set & CFG_SET_ENCRYPT) &&
		    cfg->policy[i].o.encrypt == CFG_ENCRYPT_REQUIRED)
			return true;
	return false;
}

/*
 * The address a recipient's policy and certificate are decided on: where
 * Postfix will route it (addr_canonical). SM_OK: out holds it.
 * SM_ERR_NOTFOUND: a local name, or nothing any rule could require
 * encryption for: left to the MTA, never encrypted. SM_ERR_PARSE: it cannot
 * be classified with certainty while a required rule could match (why says
 * why): the caller refuses it.
 */
sm_status
recipient_classify(const struct config *cfg, const char *sender, const char *rcpt, char *out,
    size_t outlen, char *why, size_t whylen)
{
	char lit[320];
	unsigned flags = 0;
	struct cfg_outbound to, tl;
	sm_status st = addr_canonical(rcpt, out, outlen, lit, sizeof(lit), &flags);

	if (st == SM_ERR_NOTFOUND)
		return st;
	if (st != SM_OK) {
		if (!may_require(cfg))
			return SM_ERR_NOTFOUND;
		snprintf(why, whylen, "cannot tell where this address form is delivered "
		    "(address literal, invalid UTF-8 or malformed) and encryption may be required");
		return SM_ERR_PARSE;
	}
	if (!(flags & ADDR_CANON_ROUTED) || lit[0] == '\0')
		return SM_OK;
	/* "zoe%x@y" goes to x when Postfix applies the percent hack, else to
	 * y: both must come out the same, or the stricter one must be ours. */
	config_outbound_for(cfg, sender, out, &to, NULL);
	config_outbound_for(cfg, sender, lit, &tl, NULL);
	if (tl.encrypt == CFG_ENCRYPT_REQUIRED && to.encrypt != CFG_ENCRYPT_REQUIRED) {
		snprintf(why, whylen, "this address form may be delivered to %s or to %s, and "
		    "encryption is required for one of them", out, lit);
		return SM_ERR_PARSE;
	}
	return SM_OK;
}
