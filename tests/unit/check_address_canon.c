/*
 * check_address_canon.c — recipient canonicalisation (the address Postfix
 * will route to) and the one address comparison rule (address.h).
 */
#include <stdbool.h>
#include <string.h>

#include "address.h"
#include "testutil.h"

static const struct canon_case {
	const char *in;
	sm_status want_st;
	const char *want;     /* canonical address when SM_OK */
	bool routed;          /* ADDR_CANON_ROUTED */
	const char *literal;  /* the literal address ("" when none) */
} canon_cases[] = {
	/* plain, case, brackets */
	{ "<Zoe@Partner.Example>", SM_OK, "zoe@partner.example", false, "zoe@partner.example" },
	{ " zoe@partner.example ", SM_OK, "zoe@partner.example", false, "zoe@partner.example" },
	/* trailing dots go: Postfix routes zoe@partner.example. to partner.example */
	{ "<zoe@partner.example.>", SM_OK, "zoe@partner.example", false, "zoe@partner.example" },
	{ "<zoe@partner.example..>", SM_OK, "zoe@partner.example", false, "zoe@partner.example" },
	/* the percent hack: on by default in Postfix */
	{ "<zoe%partner.example@localhost>", SM_OK, "zoe@partner.example", true,
	    "zoe%partner.example@localhost" },
	{ "<zoe%partner.example%relay.example@localhost>", SM_OK, "zoe@partner.example", true,
	    "zoe%partner.example%relay.example@localhost" },
	{ "<zoe%Partner.Example.@org.example>", SM_OK, "zoe@partner.example", true,
	    "\"zoe%partner.example.\"@org.example" },
	/* UUCP bang paths (swap_bangpath) */
	{ "<partner.example!zoe@localhost>", SM_OK, "zoe@partner.example", true,
	    "partner.example!zoe@localhost" },
	{ "<partner.example!zoe>", SM_OK, "zoe@partner.example", true, "" },
	/* source routes are dropped */
	{ "<@relay.example:zoe@partner.example>", SM_OK, "zoe@partner.example", false,
	    "zoe@partner.example" },
	{ "<@a.example,@b.example:zoe@partner.example>", SM_OK, "zoe@partner.example", false,
	    "zoe@partner.example" },
	/* quoted local parts: unquoted when they need no quotes */
	{ "<\"zoe\"@partner.example>", SM_OK, "zoe@partner.example", false, "zoe@partner.example" },
	{ "<\"Zoe.Smith\"@partner.example>", SM_OK, "zoe.smith@partner.example", false,
	    "zoe.smith@partner.example" },
	{ "<\"zoe smith\"@partner.example>", SM_OK, "\"zoe smith\"@partner.example", false,
	    "\"zoe smith\"@partner.example" },
	{ "<\"zoe@x\"@partner.example>", SM_OK, "\"zoe@x\"@partner.example", false,
	    "\"zoe@x\"@partner.example" },
	/* a quoted % is resolved too, and the literal form is kept for the
	 * caller to judge both */
	{ "<\"zoe%evil.example\"@partner.example>", SM_OK, "zoe@evil.example", true,
	    "zoe%evil.example@partner.example" },
	/* UTF-8: local parts kept as written, domains become A-labels */
	{ "<zo\xc3\xab@partner.example>", SM_OK, "zo\xc3\xab@partner.example", false,
	    "zo\xc3\xab@partner.example" },
	{ "<Zo\xc3\xab@partner.example>", SM_OK, "zo\xc3\xab@partner.example", false,
	    "zo\xc3\xab@partner.example" },
	{ "<zoe@b\xc3\xbc" "cher.example>", SM_OK, "zoe@xn--bcher-kva.example", false,
	    "zoe@xn--bcher-kva.example" },
	{ "<zoe@B\xc3\x9c" "CHER.example>", SM_OK, "zoe@xn--bcher-kva.example", false,
	    "zoe@xn--bcher-kva.example" },
	/* what cannot be routed with certainty */
	{ "<zoe@[192.0.2.1]>", SM_ERR_PARSE, NULL, false, NULL },
	{ "<zoe@[IPv6:2001:db8::1]>", SM_ERR_PARSE, NULL, false, NULL },
	{ "<zo\xc3@partner.example>", SM_ERR_PARSE, NULL, false, NULL },
	{ "<zoe@partner\xff.example>", SM_ERR_PARSE, NULL, false, NULL },
	{ "<\"zoe@partner.example>", SM_ERR_PARSE, NULL, false, NULL },
	{ "<zoe@>", SM_ERR_PARSE, NULL, false, NULL },
	{ "<zoe%@localhost>", SM_ERR_PARSE, NULL, false, NULL },
	{ "<@relay.example>", SM_ERR_PARSE, NULL, false, NULL },
	{ "<zoe@partner.example", SM_ERR_PARSE, NULL, false, NULL },
	{ "<>", SM_ERR_PARSE, NULL, false, NULL },
	{ "<zoe\x01@partner.example>", SM_ERR_PARSE, NULL, false, NULL },
	/* a local name is no domain address */
	{ "<postmaster>", SM_ERR_NOTFOUND, NULL, false, NULL },
};

START_TEST(recipients_canonicalise_to_where_postfix_routes_them)
{
	const struct canon_case *tc = &canon_cases[_i];
	char out[512] = "", lit[512] = "";
	unsigned flags = 0;
	sm_status st = addr_canonical(tc->in, out, sizeof(out), lit, sizeof(lit), &flags);

	ck_assert_msg(st == tc->want_st, "%s: got %s (\"%s\"), want %s", tc->in, sm_strstatus(st),
	    out, sm_strstatus(tc->want_st));
	if (st != SM_OK)
		return;
	ck_assert_msg(strcmp(out, tc->want) == 0, "%s: got \"%s\", want \"%s\"", tc->in, out,
	    tc->want);
	ck_assert_msg(((flags & ADDR_CANON_ROUTED) != 0) == tc->routed, "%s: routed: got %d, want %d",
	    tc->in, (flags & ADDR_CANON_ROUTED) != 0, tc->routed);
	ck_assert_msg(strcmp(lit, tc->literal) == 0, "%s: literal: got \"%s\", want \"%s\"", tc->in,
	    lit, tc->literal);
}
END_TEST

static const struct eq_case {
	const char *a, *b;
	bool equal;
} eq_cases[] = {
	{ "zoe@partner.example", "ZOE@PARTNER.EXAMPLE", true },
	{ "zoe@partner.example", "zoe@partner.example.", true },
	{ "zoe@b\xc3\xbc" "cher.example", "zoe@xn--bcher-kva.example", true },
	{ "zoe@B\xc3\x9c" "CHER.example", "zoe@XN--BCHER-KVA.example", true },
	{ "zo\xc3\xab@partner.example", "zo\xc3\xab@partner.example", true },
	/* no Unicode case folding in local parts: Ë and ë stay apart */
	{ "zo\xc3\x8b@partner.example", "zo\xc3\xab@partner.example", false },
	{ "zoe@partner.example", "zoe@partner.example.evil", false },
	{ "zoe@partner.example", "zoey@partner.example", false },
	{ "zoe@partner.example", "zo@partner.example", false },
	{ "zoe@partner.example", "zoe@other.example", false },
};

START_TEST(addresses_compare_by_the_one_rule)
{
	const struct eq_case *tc = &eq_cases[_i];

	ck_assert_msg(addr_equal(tc->a, tc->b) == tc->equal, "%s vs %s: got %d, want %d", tc->a,
	    tc->b, !tc->equal, tc->equal);
	ck_assert_msg(addr_equal(tc->b, tc->a) == tc->equal, "%s vs %s (swapped): got %d, want %d",
	    tc->b, tc->a, !tc->equal, tc->equal);
}
END_TEST

START_TEST(domains_of_policy_rules_compare_by_the_same_rule)
{
	ck_assert(addr_in_domain("zoe@xn--bcher-kva.example", "b\xc3\xbc" "cher.example"));
	ck_assert(addr_in_domain("zoe@Partner.Example", "partner.example."));
	ck_assert(!addr_in_domain("zoe@sub.partner.example", "partner.example"));
	ck_assert(!addr_in_domain("zoe@partner.example.evil", "partner.example"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("address canonicalisation");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, recipients_canonicalise_to_where_postfix_routes_them, 0,
	    (int)(sizeof(canon_cases) / sizeof(canon_cases[0])));
	tcase_add_loop_test(tc, addresses_compare_by_the_one_rule, 0,
	    (int)(sizeof(eq_cases) / sizeof(eq_cases[0])));
	tcase_add_test(tc, domains_of_policy_rules_compare_by_the_same_rule);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
