/*
 * check_addrlist.c — the RFC 5322 address-list parser: every mailbox of a
 * header value, and nothing that only looks like one.
 */
#include <stdio.h>
#include <string.h>

#include "addrlist.h"
#include "buf.h"
#include "testutil.h"

static const struct list_case {
	const char *in;
	const char *want; /* mailboxes joined by a space; NULL: a parse error */
} list_cases[] = {
	/* plain forms */
	{ "bob@partner.example", "bob@partner.example" },
	{ "<bob@partner.example>", "bob@partner.example" },
	{ "Bob <Bob@Partner.Example>", "bob@partner.example" },
	{ "Bob Smith <bob@partner.example>, alice@org.example",
	    "bob@partner.example alice@org.example" },
	{ "", "" },
	{ "  ", "" },
	/* display names: quoted strings, specials inside them, encoded-words */
	{ "\"Smith, Bob\" <bob@partner.example>", "bob@partner.example" },
	{ "\"<bob@partner.example>\" <ceo@org.example>", "ceo@org.example" },
	{ "\"bob@partner.example\" <ceo@org.example>", "ceo@org.example" },
	{ "\"a \\\" <b@x.example>\" <ceo@org.example>", "ceo@org.example" },
	{ "=?UTF-8?B?PGJvYkBwYXJ0bmVyLmV4YW1wbGU+?= <ceo@org.example>", "ceo@org.example" },
	{ "=?UTF-8?Q?J=C3=BCrgen?= <j@org.example>", "j@org.example" },
	{ "Bob J. Smith <bob@partner.example>", "bob@partner.example" },
	{ "J\xc3\xbcrgen <j@org.example>", "j@org.example" },
	/* comments anywhere, nested, with quoted-pairs */
	{ "bob@partner.example (Bob)", "bob@partner.example" },
	{ "(<evil@x.example>) ceo@org.example", "ceo@org.example" },
	{ "Bob (the (real) one \\) <evil@x.example>) <bob@partner.example>",
	    "bob@partner.example" },
	{ "bob(c)@(c)partner.example", "bob@partner.example" },
	/* folded header values */
	{ "Bob\r\n <bob@partner.example>,\r\n\talice@org.example",
	    "bob@partner.example alice@org.example" },
	/* groups */
	{ "undisclosed-recipients:;", "" },
	{ "Team: a@org.example, b@org.example;", "a@org.example b@org.example" },
	{ "Team: a@org.example;, c@org.example", "a@org.example c@org.example" },
	{ "Team: Ann <a@org.example>, ;", "a@org.example" },
	/* obsolete forms still seen in the wild */
	{ "<@relay.example:bob@partner.example>", "bob@partner.example" },
	{ "<@a.example,@b.example:bob@partner.example>", "bob@partner.example" },
	{ "a@org.example,, ,b@org.example", "a@org.example b@org.example" },
	{ "\"bob\"@partner.example", "bob@partner.example" },
	{ "bob . smith @ partner . example", "bob.smith@partner.example" },
	/* not an address list */
	{ "Bob <bob@partner.example", NULL },
	{ "Bob bob@partner.example", NULL },
	{ "bob", NULL },
	{ "<>", NULL },
	{ "\"unclosed <bob@partner.example>", NULL },
	{ "(unclosed <bob@partner.example>", NULL },
	{ "bob@partner.example>", NULL },
	{ "bob@[192.0.2.1]", NULL },
	{ "Outer: Inner: a@x.example;;", NULL },
	{ "a@x.example; b@x.example", NULL },
	{ "bob@partner..example", NULL },
	{ ".bob@partner.example", NULL },
	{ "bob.@partner.example", NULL },
	{ "Team: a@org.example", NULL },
	{ "bob@partner.example\x01", NULL },
};

START_TEST(address_lists_yield_every_mailbox_and_nothing_else)
{
	const struct list_case *tc = &list_cases[_i];
	struct alist l;
	struct buf got = BUF_INIT;
	sm_status st = alist_parse(tc->in, &l);

	for (size_t i = 0; st == SM_OK && i < l.al_n; i++)
		buf_printf(&got, "%s%s", i ? " " : "", l.al_addr[i]);
	if (tc->want == NULL)
		ck_assert_msg(st != SM_OK, "\"%s\": got \"%s\", want an error", tc->in,
		    buf_cstr(&got));
	else
		ck_assert_msg(st == SM_OK && strcmp(buf_cstr(&got), tc->want) == 0,
		    "\"%s\": got \"%s\" (%s), want \"%s\"", tc->in, buf_cstr(&got),
		    sm_strstatus(st), tc->want);
	ck_assert_msg(st == SM_OK || (l.al_n == 0 && l.al_addr == NULL),
	    "\"%s\": a failed parse kept %zu mailboxes", tc->in, l.al_n);
	alist_free(&l);
	buf_free(&got);
}
END_TEST

START_TEST(membership_uses_the_normalised_form)
{
	struct alist l;

	ck_assert_int_eq(alist_parse("Bob <Bob@Partner.Example>, c@org.example", &l), SM_OK);
	ck_assert(alist_contains(&l, "bob@partner.example"));
	ck_assert(alist_contains(&l, "c@org.example"));
	ck_assert(!alist_contains(&l, "alice@org.example"));
	alist_free(&l);
}
END_TEST

START_TEST(a_list_longer_than_the_limit_is_refused_not_truncated)
{
	struct buf in = BUF_INIT;
	struct alist l;

	for (int i = 0; i <= ALIST_MAX; i++)
		buf_printf(&in, "%su%d@org.example", i ? "," : "", i);
	ck_assert_int_eq(alist_parse(buf_cstr(&in), &l), SM_ERR_LIMIT);
	ck_assert_uint_eq(l.al_n, 0);
	buf_free(&in);
}
END_TEST

START_TEST(deep_comments_and_long_values_do_not_recurse_or_overflow)
{
	struct buf in = BUF_INIT;
	struct alist l;

	for (int i = 0; i < 100000; i++)
		buf_append_char(&in, '(');
	for (int i = 0; i < 100000; i++)
		buf_append_char(&in, ')');
	buf_append_str(&in, " bob@partner.example");
	ck_assert_int_eq(alist_parse(buf_cstr(&in), &l), SM_OK);
	ck_assert_uint_eq(l.al_n, 1);
	alist_free(&l);
	buf_reset(&in);
	for (int i = 0; i < 200000; i++)
		buf_append_str(&in, "a ");
	buf_append_str(&in, "<bob@partner.example>");
	ck_assert_int_eq(alist_parse(buf_cstr(&in), &l), SM_OK);
	ck_assert_str_eq(l.al_addr[0], "bob@partner.example");
	alist_free(&l);
	buf_free(&in);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("addrlist");
	TCase *tc = tcase_create("addrlist");

	tcase_add_loop_test(tc, address_lists_yield_every_mailbox_and_nothing_else, 0,
	    (int)(sizeof(list_cases) / sizeof(list_cases[0])));
	tcase_add_test(tc, membership_uses_the_normalised_form);
	tcase_add_test(tc, a_list_longer_than_the_limit_is_refused_not_truncated);
	tcase_add_test(tc, deep_comments_and_long_values_do_not_recurse_or_overflow);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
