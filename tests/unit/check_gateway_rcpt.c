/*
 * check_gateway_rcpt.c — gw_rcpt() decides on the address Postfix will
 * route to: every form of a recipient in a domain whose policy requires
 * encryption is refused when no certificate was exchanged, never accepted
 * as "no rule matched" (which would let the mail leave in plain text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gateway.h"
#include "keycache.h"
#include "testutil.h"

static char *T;
static struct gw_env env;
static struct config *cfg_req, *cfg_none;
static struct keycache *kc;

static struct config *
load(const char *extra)
{
	char path[600];
	struct config *c = NULL;
	struct config_errors errs = { NULL, 0 };
	FILE *f;

	snprintf(path, sizeof(path), "%s/smime-milter.conf", T);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "internal_domains = [ \"org.example\" ];\n"
	    "trust = { ca_file = \"%s\"; };\n"
	    "cache = { path = \"%s/cache.db\"; };\n%s\n", path, T, extra);
	fclose(f);
	ck_assert_msg(config_load(path, &c, &errs) == SM_OK, "config: %s",
	    errs.n ? errs.msg[0] : "?");
	config_errors_free(&errs);
	return c;
}

static void
setup(void)
{
	char path[600], err[256] = "";

	T = testutil_tmpdir();
	ck_assert_ptr_nonnull(T);
	/* the file must exist before the config naming it as ca_file loads */
	snprintf(path, sizeof(path), "%s/smime-milter.conf", T);
	fclose(fopen(path, "w"));
	cfg_req = load("policy = ( { recipient = \"@partner.example\"; encrypt = \"required\"; } );");
	cfg_none = load("");
	snprintf(path, sizeof(path), "%s/cache.db", T);
	ck_assert_msg(keycache_open("sqlite", path, &kc, err, sizeof(err)) == SM_OK, "%s", err);
	memset(&env, 0, sizeof(env));
	env.kc = kc;
}

static void
teardown(void)
{
	keycache_close(kc);
	config_unref(cfg_req);
	config_unref(cfg_none);
	testutil_rmtree(T);
	free(T);
}

static const struct rcpt_case {
	const char *rcpt;
	bool required_cfg;    /* with the @partner.example required rule */
	enum pol_verdict want;
} rcpt_cases[] = {
	{ "<zoe@partner.example>", true, POL_REJECT },
	{ "<ZOE@Partner.Example>", true, POL_REJECT },
	{ "<zoe@partner.example.>", true, POL_REJECT },
	{ "<zoe%partner.example@localhost>", true, POL_REJECT },
	{ "<zoe%partner.example@org.example>", true, POL_REJECT },
	{ "<partner.example!zoe@localhost>", true, POL_REJECT },
	{ "<partner.example!zoe>", true, POL_REJECT },
	{ "<@relay.example:zoe@partner.example>", true, POL_REJECT },
	{ "<\"zoe\"@partner.example>", true, POL_REJECT },
	{ "<zo\xc3\xab@partner.example>", true, POL_REJECT },
	{ "<zoe@PARTNER.example..>", true, POL_REJECT },
	/* Postfix may deliver it to partner.example after all (no percent
	 * hack for a remote domain): cannot be classified */
	{ "<zoe%elsewhere.example@partner.example>", true, POL_REJECT },
	/* cannot be classified while a required rule could match */
	{ "<zoe@[192.0.2.1]>", true, POL_REJECT },
	{ "<zoe@partner\xff.example>", true, POL_REJECT },
	/* … but left to the MTA when nothing could require encryption */
	{ "<zoe@[192.0.2.1]>", false, POL_ACCEPT },
	/* not required: accepted (opportunistic, no certificate) */
	{ "<zoe@other.example>", true, POL_ACCEPT },
	{ "<zoe%other.example@localhost>", true, POL_ACCEPT },
	{ "<postmaster>", true, POL_ACCEPT },
	{ "<zoe@partner.example>", false, POL_ACCEPT },
};

START_TEST(every_form_of_a_required_recipient_is_refused_without_a_certificate)
{
	const struct rcpt_case *tc = &rcpt_cases[_i];
	struct pol_rcpt_decision d;
	sm_status st;

	env.cfg = tc->required_cfg ? cfg_req : cfg_none;
	st = gw_rcpt(&env, "<alice@org.example>", tc->rcpt, NULL, &d);
	ck_assert_msg(st == SM_OK, "%s: got %s, want ok", tc->rcpt, sm_strstatus(st));
	ck_assert_msg(d.verdict == tc->want, "%s: got verdict %d (%s), want %d", tc->rcpt, d.verdict,
	    d.log, tc->want);
	if (d.verdict == POL_REJECT)
		ck_assert_msg(strcmp(d.reply.code, "550") == 0 && strcmp(d.reply.xcode, "5.7.1") == 0,
		    "%s: got %s %s, want 550 5.7.1", tc->rcpt, d.reply.code, d.reply.xcode);
	policy_reply_free(&d.reply);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("gateway recipients");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, every_form_of_a_required_recipient_is_refused_without_a_certificate,
	    0, (int)(sizeof(rcpt_cases) / sizeof(rcpt_cases[0])));
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
