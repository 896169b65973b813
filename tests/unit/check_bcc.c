/*
 * check_bcc.c — blind copies: which recipients are blind, the memo that
 * splits them into transactions of their own, and the RCPT-time split.
 */
#include <string.h>

#include "bcc.h"
#include "gateway.h"
#include "testutil.h"

static const struct find_case {
	const char *name;
	const char *hdrs[4][2];   /* name, value; NULL name ends */
	const char *rcpts[4];     /* canonical; NULL ends */
	bool blind[4];
} find_cases[] = {
	{ "To and Cc are visible, the rest are blind",
	    { { "To", "Zoe <zoe@partner.example>" }, { "Cc", "bob@partner.example" } },
	    { "zoe@partner.example", "bob@partner.example", "eve@partner.example" },
	    { false, false, true } },
	{ "case does not make a visible recipient blind",
	    { { "To", "ZOE@Partner.Example" } }, { "zoe@partner.example" }, { false } },
	{ "nor does IDNA",
	    { { "To", "info@xn--bcher-kva.example" } }, { "info@xn--bcher-kva.example" },
	    { false } },
	{ "Resent-* fields count as visible",
	    { { "Resent-To", "zoe@partner.example" }, { "Resent-Cc", "bob@partner.example" },
		{ "Resent-Bcc", "eve@partner.example" } },
	    { "zoe@partner.example", "bob@partner.example", "eve@partner.example",
		"joe@partner.example" },
	    { false, false, false, true } },
	{ "a '<' inside a quoted display name is no address",
	    { { "To", "\"<eve@partner.example>\" <zoe@partner.example>" } },
	    { "zoe@partner.example", "eve@partner.example" }, { false, true } },
	{ "groups name their members; undisclosed-recipients names nobody",
	    { { "To", "team: zoe@partner.example, bob@partner.example;" },
		{ "Cc", "undisclosed-recipients:;" } },
	    { "zoe@partner.example", "bob@partner.example", "eve@partner.example" },
	    { false, false, true } },
	{ "a field that does not parse names nobody",
	    { { "To", "zoe@partner.example, \"unbalanced" } },
	    { "zoe@partner.example" }, { true } },
	{ "Bcc, Reply-To and From do not make a recipient visible",
	    { { "Bcc", "eve@partner.example" }, { "Reply-To", "eve@partner.example" },
		{ "From", "eve@partner.example" } },
	    { "eve@partner.example" }, { true } },
};

START_TEST(blind_recipients_are_those_no_visible_field_names)
{
	const struct find_case *tc = &find_cases[_i];
	struct mime_headers h = MIME_HEADERS_INIT;
	char *rcpts[4];
	bool blind[4];
	size_t n = 0;

	for (size_t i = 0; i < 4 && tc->hdrs[i][0]; i++)
		ck_assert_int_eq(mime_headers_add(&h, tc->hdrs[i][0], tc->hdrs[i][1]), SM_OK);
	for (; n < 4 && tc->rcpts[n]; n++)
		rcpts[n] = (char *)tc->rcpts[n];
	ck_assert_int_eq(bcc_find(&h, rcpts, n, blind), SM_OK);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(blind[i] == tc->blind[i], "%s: %s: got blind=%d, want %d", tc->name,
		    rcpts[i], blind[i], tc->blind[i]);
	mime_headers_free(&h);
}
END_TEST

START_TEST(the_memo_remembers_per_sender_until_it_expires)
{
	bcc_memo_clear();
	bcc_memo_add("alice@org.example", "eve@partner.example", 1000);
	ck_assert(bcc_memo_has("alice@org.example", "eve@partner.example", 1000));
	ck_assert(bcc_memo_has("Alice@Org.Example", "EVE@partner.example", 1001));
	ck_assert(!bcc_memo_has("bob@org.example", "eve@partner.example", 1000));
	ck_assert(!bcc_memo_has("alice@org.example", "zoe@partner.example", 1000));
	ck_assert(bcc_memo_has("alice@org.example", "eve@partner.example",
	    1000 + BCC_MEMO_SECONDS - 1));
	ck_assert(!bcc_memo_has("alice@org.example", "eve@partner.example",
	    1000 + BCC_MEMO_SECONDS));
	bcc_memo_add("alice@org.example", "zoe@partner.example", 1000);
	bcc_memo_del("alice@org.example", "eve@partner.example");
	ck_assert(!bcc_memo_has("alice@org.example", "eve@partner.example", 1000));
	ck_assert(bcc_memo_has("alice@org.example", "zoe@partner.example", 1000));
	bcc_memo_clear();
}
END_TEST

static struct pol_rcpt_decision
accepted(void)
{
	struct pol_rcpt_decision d;

	memset(&d, 0, sizeof(d));
	d.verdict = POL_ACCEPT;
	return d;
}

START_TEST(a_remembered_blind_copy_travels_alone)
{
	struct pol_rcpt_decision d;
	bool solo = false;

	bcc_memo_clear();
	bcc_memo_add("alice@org.example", "eve@partner.example", time(NULL));

	/* retry of the whole message: zoe first, then eve must wait */
	d = accepted();
	ck_assert_int_eq(gw_rcpt_bcc("<alice@org.example>", "<zoe@partner.example>", 0, &solo, &d),
	    SM_OK);
	ck_assert_int_eq(d.verdict, POL_ACCEPT);
	d = accepted();
	ck_assert_int_eq(gw_rcpt_bcc("<alice@org.example>", "<Eve@Partner.Example.>", 1, &solo, &d),
	    SM_OK);
	ck_assert_msg(d.verdict == POL_TEMPFAIL && strcmp(d.reply.code, "452") == 0 &&
	    strcmp(d.reply.xcode, "4.7.0") == 0, "eve after zoe: got %d %s %s, want 452 4.7.0",
	    d.verdict, d.reply.code, d.reply.xcode);
	policy_reply_free(&d.reply);
	ck_assert(!solo);

	/* eve's own transaction: first, alone; anyone after her waits */
	d = accepted();
	ck_assert_int_eq(gw_rcpt_bcc("<alice@org.example>", "<eve@partner.example>", 0, &solo, &d),
	    SM_OK);
	ck_assert_int_eq(d.verdict, POL_ACCEPT);
	ck_assert(solo);
	d = accepted();
	ck_assert_int_eq(gw_rcpt_bcc("<alice@org.example>", "<zoe@partner.example>", 1, &solo, &d),
	    SM_OK);
	ck_assert_int_eq(d.verdict, POL_TEMPFAIL);
	policy_reply_free(&d.reply);
	bcc_memo_clear();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("bcc");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, blind_recipients_are_those_no_visible_field_names, 0,
	    (int)(sizeof(find_cases) / sizeof(find_cases[0])));
	tcase_add_test(tc, the_memo_remembers_per_sender_until_it_expires);
	tcase_add_test(tc, a_remembered_blind_copy_travels_alone);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
