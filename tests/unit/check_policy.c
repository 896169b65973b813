/*
 * check_policy.c — direction, RCPT-time decisions with their exact replies,
 * and the end-of-message plan.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "testutil.h"

static struct config *cfg;
static char *tmpdir;

static void
load(const char *text)
{
	char path[512];
	FILE *f;
	struct config_errors errs = { NULL, 0 };

	snprintf(path, sizeof(path), "%s/p.conf", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	config_unref(cfg);
	cfg = NULL;
	ck_assert_msg(config_load(path, &cfg, &errs) == SM_OK, "config: %s",
	    errs.n ? errs.msg[0] : "?");
	config_errors_free(&errs);
}

static void
setup(void)
{
	tmpdir = testutil_tmpdir();
	load("internal_domains = [ \"org.example\" ];\n"
	     "internal_hosts = [ \"192.0.2.0/24\", \"2001:db8::/32\" ];\n"
	     "policy = (\n"
	     "  { recipient = \"@partner.example\"; encrypt = \"required\"; },\n"
	     "  { recipient = \"@soft.example\"; encrypt = \"required\"; missing_cert = \"tempfail\"; },\n"
	     "  { recipient = \"@split.example\"; mixed = \"split\"; },\n"
	     "  { recipient = \"@never.example\"; encrypt = \"never\"; },\n"
	     "  { sender = \"noreply@org.example\"; sign = false; }\n"
	     ");\n");
}

static void
teardown(void)
{
	config_unref(cfg);
	cfg = NULL;
	testutil_rmtree(tmpdir);
	free(tmpdir);
}

START_TEST(direction_follows_daemon_name_auth_and_client_address)
{
	struct sockaddr_in in4 = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

	ck_assert_int_eq(policy_direction(cfg, "ORIGINATING", NULL, NULL), POL_OUTBOUND);
	ck_assert_int_eq(policy_direction(cfg, "smtpd", NULL, NULL), POL_INBOUND);
	ck_assert_int_eq(policy_direction(cfg, NULL, "alice", NULL), POL_OUTBOUND);
	ck_assert_int_eq(policy_direction(cfg, NULL, "", NULL), POL_INBOUND);
	inet_pton(AF_INET, "192.0.2.10", &in4.sin_addr);
	ck_assert_int_eq(policy_direction(cfg, NULL, NULL, (struct sockaddr *)&in4), POL_OUTBOUND);
	inet_pton(AF_INET, "198.51.100.1", &in4.sin_addr);
	ck_assert_int_eq(policy_direction(cfg, NULL, NULL, (struct sockaddr *)&in4), POL_INBOUND);
	inet_pton(AF_INET6, "2001:db8::25", &in6.sin6_addr);
	ck_assert_int_eq(policy_direction(cfg, NULL, NULL, (struct sockaddr *)&in6), POL_OUTBOUND);
}
END_TEST

static const struct pol_lookup have_rsa = { true, POL_KEY_RSA, NULL };
static const struct pol_lookup have_ec = { true, POL_KEY_EC, NULL };
static const struct pol_lookup none = { false, POL_KEY_NONE, "no certificate exchanged" };
static const struct pol_lookup expired = { false, POL_KEY_NONE, "certificate expired on 2026-01-31" };

static const struct pol_treatment first_rsa = { true, POL_KEY_RSA, false, false };
static const struct pol_treatment first_plain = { false, POL_KEY_NONE, false, false };
static const struct pol_treatment first_required = { true, POL_KEY_RSA, true, false };

static const struct rcpt_case {
	const char *rcpt;
	const struct pol_lookup *lk;
	const struct pol_treatment *first;
	enum pol_verdict want;
	const char *code, *xcode, *line0;
} rcpt_cases[] = {
	{ "bob@partner.example", &have_rsa, NULL, POL_ACCEPT, "", "", NULL },
	{ "zoe@partner.example", &none, NULL, POL_REJECT, "550", "5.7.1",
	  "Encrypted delivery to <zoe@partner.example> is required, but no certificate exchanged." },
	{ "old@partner.example", &expired, NULL, POL_REJECT, "550", "5.7.1",
	  "Encrypted delivery to <old@partner.example> is required, but certificate expired on 2026-01-31." },
	{ "zoe@soft.example", &none, NULL, POL_TEMPFAIL, "450", "4.7.1",
	  "Encrypted delivery to <zoe@soft.example> is required, but no certificate exchanged." },
	{ "x@other.example", &none, NULL, POL_ACCEPT, "", "", NULL },          /* opportunistic */
	{ "x@other.example", &none, &first_rsa, POL_ACCEPT, "", "", NULL },    /* sign-only mixes */
	{ "x@split.example", &none, &first_rsa, POL_TEMPFAIL, "452", "4.7.0",
	  "<x@split.example> is not encrypted, the first recipient is; please retry it in a separate transaction" },
	{ "x@split.example", &have_rsa, &first_plain, POL_TEMPFAIL, "452", "4.7.0",
	  "<x@split.example> is encrypted, the first recipient is not; please retry it in a separate transaction" },
	{ "x@split.example", &have_rsa, &first_rsa, POL_ACCEPT, "", "", NULL },
	{ "carol@partner.example", &have_ec, &first_rsa, POL_TEMPFAIL, "452", "4.7.0",
	  "<carol@partner.example> needs an envelope of its own (EC key, first recipient RSA); please retry it separately" },
	{ "x@never.example", &have_ec, &first_rsa, POL_ACCEPT, "", "", NULL }, /* never encrypts */
	/* The order of the example, reversed: a required recipient
	 * with a key after one who cannot be encrypted to is deferred, never
	 * mixed in (and the other way round). */
	{ "bob@partner.example", &have_rsa, &first_plain, POL_TEMPFAIL, "452", "4.7.0",
	  "<bob@partner.example> is encrypted, the first recipient is not; please retry it in a separate transaction" },
	{ "x@other.example", &none, &first_required, POL_TEMPFAIL, "452", "4.7.0",
	  "<x@other.example> is not encrypted, the first recipient is; please retry it in a separate transaction" },
};

START_TEST(recipients_are_decided_with_exact_replies)
{
	const struct rcpt_case *tc = &rcpt_cases[_i];
	struct pol_rcpt_decision d;

	ck_assert_int_eq(policy_rcpt(cfg, "alice@org.example", tc->rcpt, tc->lk, tc->first, &d), SM_OK);
	ck_assert_msg(d.verdict == tc->want, "case %d (%s): got verdict %d, want %d", _i, tc->rcpt,
	    d.verdict, tc->want);
	if (tc->line0) {
		ck_assert_str_eq(d.reply.code, tc->code);
		ck_assert_str_eq(d.reply.xcode, tc->xcode);
		ck_assert_msg(d.reply.nlines >= 1 && strcmp(d.reply.lines[0], tc->line0) == 0,
		    "case %d: got \"%s\", want \"%s\"", _i, d.reply.nlines ? d.reply.lines[0] : "",
		    tc->line0);
	}
	policy_reply_free(&d.reply);
}
END_TEST

START_TEST(a_rejected_recipient_is_told_what_to_do)
{
	struct pol_rcpt_decision d;

	policy_rcpt(cfg, "alice@org.example", "zoe@partner.example", &none, NULL, &d);
	ck_assert_uint_eq(d.reply.nlines, 3);
	ck_assert_str_eq(d.reply.lines[1],
	    "Ask <zoe@partner.example> to send you a digitally signed message;");
	ck_assert_str_eq(d.reply.lines[2],
	    "its certificate will be picked up automatically. Then send again.");
	policy_reply_free(&d.reply);
}
END_TEST

START_TEST(a_triggered_message_lists_every_recipient_without_a_key)
{
	struct pol_msg_rcpt r[] = {
		{ "bob@other.example", { true, POL_KEY_RSA, NULL } },
		{ "zoe@other.example", { false, POL_KEY_NONE, "no certificate exchanged" } },
		{ "old@other.example", { false, POL_KEY_NONE, "certificate expired on 2026-01-31" } },
	};
	struct pol_plan p;

	ck_assert_int_eq(policy_plan(cfg, "alice@org.example", r, 3, true,
			     "requested with [encrypt] in the subject", &p), SM_OK);
	ck_assert_int_eq(p.verdict, POL_REJECT);
	ck_assert_str_eq(p.reply.code, "550");
	ck_assert_str_eq(p.reply.xcode, "5.7.1");
	ck_assert_uint_eq(p.reply.nlines, 4);
	ck_assert_str_eq(p.reply.lines[0],
	    "Encryption was requested with [encrypt] in the subject, but not every recipient has exchanged keys:");
	ck_assert_str_eq(p.reply.lines[1], "<zoe@other.example>: no certificate exchanged");
	ck_assert_str_eq(p.reply.lines[2], "<old@other.example>: certificate expired on 2026-01-31");
	policy_plan_free(&p);
}
END_TEST

START_TEST(opportunistic_plans_encrypt_only_when_everyone_has_a_key)
{
	struct pol_msg_rcpt both[] = {
		{ "bob@other.example", { true, POL_KEY_RSA, NULL } },
		{ "dan@other.example", { true, POL_KEY_RSA, NULL } },
	};
	struct pol_msg_rcpt mixed[] = {
		{ "bob@other.example", { true, POL_KEY_RSA, NULL } },
		{ "zoe@other.example", { false, POL_KEY_NONE, "no certificate exchanged" } },
	};
	struct pol_plan p;

	ck_assert_int_eq(policy_plan(cfg, "alice@org.example", both, 2, false, NULL, &p), SM_OK);
	ck_assert(p.sign && p.encrypt && p.verdict == POL_ACCEPT);
	policy_plan_free(&p);
	ck_assert_int_eq(policy_plan(cfg, "alice@org.example", mixed, 2, false, NULL, &p), SM_OK);
	ck_assert_msg(p.sign && !p.encrypt && p.verdict == POL_ACCEPT,
	    "got sign=%d encrypt=%d verdict=%d, want signed only", p.sign, p.encrypt, p.verdict);
	policy_plan_free(&p);
	ck_assert_int_eq(policy_plan(cfg, "noreply@org.example", both, 2, false, NULL, &p), SM_OK);
	ck_assert_msg(!p.sign && p.encrypt, "got sign=%d encrypt=%d, want encrypt without signing",
	    p.sign, p.encrypt);
	policy_plan_free(&p);
}
END_TEST

/* ---- recipient order: every permutation, through to the retries ---- */

enum { O_ENC = 1, O_SIGNED = 2, O_REFUSED = 4 };

struct perm_rcpt {
	const char *addr;
	struct pol_lookup lk;
	int allowed; /* outcomes its own policy allows here */
};

struct perm_case {
	const char *name;
	const char *conf;
	struct perm_rcpt r[3];
};

#define RSA { true, POL_KEY_RSA, NULL }
#define EC { true, POL_KEY_EC, NULL }
#define NONE { false, POL_KEY_NONE, "no certificate exchanged" }
#define PARTNER_REQUIRED "policy = ( { recipient = \"@partner.example\"; encrypt = \"required\"; }"
static const struct perm_case perm_cases[] = {
	{ "the issue: required bob, opportunistic nick without a key, mixed = split",
	  "outbound = { mixed = \"split\"; };\n" PARTNER_REQUIRED " );\n",
	  { { "bob@partner.example", RSA, O_ENC },
	    { "nick@other.example", NONE, O_SIGNED },
	    { "carol@other.example", RSA, O_ENC } } },
	{ "required with and without a key, and nick, mixed = sign-only",
	  PARTNER_REQUIRED " );\n",
	  { { "bob@partner.example", RSA, O_ENC },
	    { "nick@other.example", NONE, O_SIGNED },
	    { "zoe@partner.example", NONE, O_REFUSED } } },
	{ "a split domain, nick, and a never domain with a key",
	  PARTNER_REQUIRED ", { recipient = \"@split.example\"; mixed = \"split\"; },"
	  " { recipient = \"@never.example\"; encrypt = \"never\"; } );\n",
	  { { "x@split.example", RSA, O_ENC },
	    { "nick@other.example", NONE, O_SIGNED },
	    { "y@never.example", RSA, O_SIGNED } } },
	{ "RSA and EC required recipients never share an envelope",
	  PARTNER_REQUIRED " );\n",
	  { { "bob@partner.example", RSA, O_ENC },
	    { "carol@partner.example", EC, O_ENC },
	    { "nick@other.example", NONE, O_SIGNED } } },
	{ "mixed = sign-only: carol may go signed-only or encrypted, both allowed",
	  PARTNER_REQUIRED " );\n",
	  { { "bob@partner.example", RSA, O_ENC },
	    { "carol@other.example", RSA, O_ENC | O_SIGNED },
	    { "nick@other.example", NONE, O_SIGNED } } },
};
#undef RSA
#undef EC
#undef NONE
#undef PARTNER_REQUIRED

/* Deliver the recipients in this order as Postfix does: RCPT decisions,
 * the end-of-message plan for the accepted ones, and a new transaction for
 * the deferred ones, until none is left. out[i]: recipient i's outcome. */
static void
deliver(const struct perm_case *c, const size_t *order, int *out)
{
	size_t pending[3], npending = 3, round;

	memcpy(pending, order, sizeof(pending));
	for (round = 0; npending > 0; round++) {
		struct pol_treatment tx;
		struct pol_msg_rcpt acc[3];
		size_t idx[3], nacc = 0, next[3], nnext = 0, i;
		struct pol_plan p;

		ck_assert_msg(round < 3, "%s: no progress after 3 transactions", c->name);
		for (i = 0; i < npending; i++) {
			const struct perm_rcpt *r = &c->r[pending[i]];
			struct pol_rcpt_decision d;

			ck_assert_int_eq(policy_rcpt(cfg, "alice@org.example", r->addr, &r->lk,
					     nacc ? &tx : NULL, &d), SM_OK);
			if (d.verdict == POL_ACCEPT) {
				tx = d.treatment;
				acc[nacc].addr = r->addr;
				acc[nacc].lk = r->lk;
				idx[nacc++] = pending[i];
			} else if (strcmp(d.reply.code, "452") == 0) {
				next[nnext++] = pending[i];
			} else {
				out[pending[i]] = O_REFUSED;
			}
			policy_reply_free(&d.reply);
		}
		if (nacc > 0) {
			ck_assert_int_eq(policy_plan(cfg, "alice@org.example", acc, nacc, false, NULL, &p),
			    SM_OK);
			ck_assert_msg(p.verdict == POL_ACCEPT,
			    "%s: end of data refused a transaction the RCPT stage accepted (%s %s)",
			    c->name, p.reply.code, p.reply.nlines ? p.reply.lines[0] : "");
			for (i = 0; i < nacc; i++)
				out[idx[i]] = p.encrypt ? O_ENC : O_SIGNED;
			policy_plan_free(&p);
		}
		memcpy(pending, next, sizeof(next));
		npending = nnext;
	}
}

START_TEST(the_outcome_for_each_recipient_does_not_depend_on_the_order)
{
	static const size_t perms[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
					    { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
	const struct perm_case *c = &perm_cases[_i];
	int first[3] = { 0, 0, 0 };

	load(c->conf);
	for (size_t k = 0; k < 6; k++) {
		int out[3] = { 0, 0, 0 };

		deliver(c, perms[k], out);
		for (size_t i = 0; i < 3; i++) {
			ck_assert_msg(out[i] & c->r[i].allowed,
			    "%s: order %zu%zu%zu: %s got outcome %d, want one of %d", c->name,
			    perms[k][0], perms[k][1], perms[k][2], c->r[i].addr, out[i],
			    c->r[i].allowed);
			/* Where its policy allows one outcome only, every order
			 * gives the same. */
			if (k > 0 && (c->r[i].allowed & (c->r[i].allowed - 1)) == 0)
				ck_assert_int_eq(out[i], first[i]);
			first[i] = k == 0 ? out[i] : first[i];
		}
	}
}
END_TEST

START_TEST(end_of_data_names_only_the_recipients_that_need_a_key)
{
	struct pol_msg_rcpt r[] = {
		{ "bob@partner.example", { true, POL_KEY_RSA, NULL } },
		{ "nick@other.example", { false, POL_KEY_NONE, "no certificate exchanged" } },
		{ "zoe@partner.example", { false, POL_KEY_NONE, "no certificate exchanged" } },
	};
	struct pol_plan p;

	/* zoe lost her key between RCPT and end of data: she is named, nick
	 * (whose policy allows plain delivery) is not. */
	ck_assert_int_eq(policy_plan(cfg, "alice@org.example", r, 3, false, NULL, &p), SM_OK);
	ck_assert_int_eq(p.verdict, POL_REJECT);
	ck_assert_uint_eq(p.reply.nlines, 3);
	ck_assert_str_eq(p.reply.lines[1], "<zoe@partner.example>: no certificate exchanged");
	policy_plan_free(&p);
	/* Without zoe, bob and nick conflict: a temporary failure, never a
	 * rejection of the whole message. */
	ck_assert_int_eq(policy_plan(cfg, "alice@org.example", r, 2, false, NULL, &p), SM_OK);
	ck_assert_msg(p.verdict == POL_TEMPFAIL && strcmp(p.reply.code, "451") == 0 &&
			  strcmp(p.reply.xcode, "4.7.0") == 0,
	    "got verdict %d %s %s, want 451 4.7.0", p.verdict, p.reply.code, p.reply.xcode);
	policy_plan_free(&p);
}
END_TEST

START_TEST(reply_text_cannot_carry_line_breaks)
{
	struct pol_rcpt_decision d;
	const struct pol_lookup evil = { false, POL_KEY_NONE, "bad\r\n250 ok %s" };

	policy_rcpt(cfg, "alice@org.example", "zoe@partner.example", &evil, NULL, &d);
	ck_assert_ptr_null(strpbrk(d.reply.lines[0], "\r\n%"));
	policy_reply_free(&d.reply);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("policy");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, direction_follows_daemon_name_auth_and_client_address);
	tcase_add_loop_test(tc, recipients_are_decided_with_exact_replies, 0,
	    (int)(sizeof(rcpt_cases) / sizeof(rcpt_cases[0])));
	tcase_add_test(tc, a_rejected_recipient_is_told_what_to_do);
	tcase_add_test(tc, a_triggered_message_lists_every_recipient_without_a_key);
	tcase_add_test(tc, opportunistic_plans_encrypt_only_when_everyone_has_a_key);
	tcase_add_test(tc, reply_text_cannot_carry_line_breaks);
	tcase_add_loop_test(tc, the_outcome_for_each_recipient_does_not_depend_on_the_order, 0,
	    (int)(sizeof(perm_cases) / sizeof(perm_cases[0])));
	tcase_add_test(tc, end_of_data_names_only_the_recipients_that_need_a_key);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
