/*
 * check_address.c — address normalisation and CIDR matching, IPv4 and IPv6
 * edges included.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "address.h"
#include "testutil.h"

static const struct norm_case {
	const char *in;
	const char *want; /* NULL: must fail */
} norm_cases[] = {
	{ "bob@partner.example", "bob@partner.example" },
	{ "<Bob@Partner.EXAMPLE>", "bob@partner.example" },
	{ "  <alice@org.example>  ", "alice@org.example" },
	{ "<>", NULL },
	{ "", NULL },
	{ "no-at-sign", NULL },
	{ "@org.example", NULL },
	{ "bob@", NULL },
	{ "bob@bad..domain", NULL },
	{ "bob smith@org.example", NULL },
	{ "bob@org.example\n", "bob@org.example" },
};

START_TEST(addresses_normalise_or_fail)
{
	const struct norm_case *tc = &norm_cases[_i];
	char out[256];
	sm_status st = addr_normalize(tc->in, out, sizeof(out));

	if (tc->want == NULL) {
		ck_assert_msg(st != SM_OK, "\"%s\": got \"%s\", want an error", tc->in, out);
	} else {
		ck_assert_msg(st == SM_OK, "\"%s\": got %s, want ok", tc->in, sm_strstatus(st));
		ck_assert_msg(strcmp(out, tc->want) == 0, "\"%s\": got \"%s\", want \"%s\"", tc->in,
		    out, tc->want);
	}
}
END_TEST

static const struct from_case {
	const char *in;
	const char *want;
} from_cases[] = {
	{ "Bob <bob@partner.example>", "bob@partner.example" },
	{ "\"Smith, Bob\" <Bob@Partner.Example>", "bob@partner.example" },
	{ "bob@partner.example (Bob)", "bob@partner.example" },
	{ " bob@partner.example", "bob@partner.example" },
	{ "undisclosed", NULL },
	{ "Bob <bob@partner.example", NULL },
	/* a '<' inside a quoted display name is text, not the address */
	{ "\"<bob@partner.example>\" <ceo@org.example>", "ceo@org.example" },
	{ "(<bob@partner.example>) ceo@org.example", "ceo@org.example" },
	/* a From that names two mailboxes, or none, vouches for nobody */
	{ "alice@org.example, ceo@org.example", NULL },
	{ "Staff: alice@org.example;", "alice@org.example" },
	{ "Staff: alice@org.example, ceo@org.example;", NULL },
	{ "undisclosed-recipients:;", NULL },
	{ "", NULL },
};

START_TEST(from_headers_yield_their_one_mailbox)
{
	const struct from_case *tc = &from_cases[_i];
	char out[256] = "";
	sm_status st = addr_from_header(tc->in, out, sizeof(out));

	if (tc->want == NULL)
		ck_assert_msg(st != SM_OK, "\"%s\": got \"%s\", want an error", tc->in, out);
	else
		ck_assert_msg(st == SM_OK && strcmp(out, tc->want) == 0,
		    "\"%s\": got \"%s\", want \"%s\"", tc->in, out, tc->want);
}
END_TEST

static struct sockaddr_storage
sa_of(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static const struct cidr_case {
	const char *net;
	const char *ip;
	bool want;
} cidr_cases[] = {
	{ "127.0.0.0/8", "127.0.0.1", true },
	{ "127.0.0.0/8", "127.255.255.255", true },
	{ "127.0.0.0/8", "128.0.0.0", false },
	{ "192.0.2.0/24", "192.0.2.255", true },
	{ "192.0.2.0/24", "192.0.3.0", false },
	{ "192.0.2.128/25", "192.0.2.127", false },
	{ "192.0.2.128/25", "192.0.2.128", true },
	{ "10.1.2.3", "10.1.2.3", true },
	{ "10.1.2.3", "10.1.2.4", false },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "0.0.0.0/0", "2001:db8::1", false },
	{ "192.0.2.0/24", "::ffff:192.0.2.7", true },   /* v4-mapped */
	{ "192.0.2.0/24", "::ffff:192.0.3.7", false },
	{ "::1", "::1", true },
	{ "::1", "::2", false },
	{ "2001:db8::/32", "2001:db8:ffff:ffff::1", true },
	{ "2001:db8::/32", "2001:db9::1", false },
	{ "2001:db8::/33", "2001:db8:8000::1", false },
	{ "2001:db8::/33", "2001:db8:7fff::1", true },
	{ "::/0", "2001:db8::1", true },
	{ "::/0", "192.0.2.1", false },
	{ "fe80::/10", "febf::1", true },
	{ "fe80::/10", "fec0::1", false },
	{ "2001:db8::1/128", "2001:db8::1", true },
};

START_TEST(networks_match_their_addresses_and_nothing_else)
{
	const struct cidr_case *tc = &cidr_cases[_i];
	struct cidr n;
	struct sockaddr_storage ss = sa_of(tc->ip);

	ck_assert_int_eq(cidr_parse(tc->net, &n), SM_OK);
	ck_assert_msg(cidr_match(&n, (struct sockaddr *)&ss) == tc->want,
	    "%s in %s: got %d, want %d", tc->ip, tc->net, !tc->want, tc->want);
}
END_TEST

static const char *const bad_nets[] = {
	"", "/8", "127.0.0.1/", "127.0.0.1/33", "::1/129", "256.0.0.0/8", "1.2.3/8",
	"127.0.0.1/-1", "127.0.0.1/8x", "localhost", "2001:db8::g/32",
};

START_TEST(bad_networks_are_refused)
{
	struct cidr n;

	ck_assert_msg(cidr_parse(bad_nets[_i], &n) != SM_OK, "\"%s\": got ok, want an error",
	    bad_nets[_i]);
}
END_TEST

START_TEST(domain_syntax_is_checked)
{
	ck_assert(addr_valid_domain("org.example"));
	ck_assert(addr_valid_domain("a-b.example"));
	ck_assert(!addr_valid_domain("-a.example"));
	ck_assert(!addr_valid_domain("a-.example"));
	ck_assert(!addr_valid_domain("a..example"));
	ck_assert(!addr_valid_domain("example."));
	ck_assert(!addr_valid_domain(""));
	ck_assert(!addr_valid_domain("exa mple"));
	ck_assert(addr_in_domain("bob@partner.example", "Partner.Example"));
	ck_assert(!addr_in_domain("bob@sub.partner.example", "partner.example"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("address");
	TCase *tc = tcase_create("address");

	tcase_add_loop_test(tc, addresses_normalise_or_fail, 0,
	    (int)(sizeof(norm_cases) / sizeof(norm_cases[0])));
	tcase_add_loop_test(tc, from_headers_yield_their_one_mailbox, 0,
	    (int)(sizeof(from_cases) / sizeof(from_cases[0])));
	tcase_add_loop_test(tc, networks_match_their_addresses_and_nothing_else, 0,
	    (int)(sizeof(cidr_cases) / sizeof(cidr_cases[0])));
	tcase_add_loop_test(tc, bad_networks_are_refused, 0,
	    (int)(sizeof(bad_nets) / sizeof(bad_nets[0])));
	tcase_add_test(tc, domain_syntax_is_checked);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
