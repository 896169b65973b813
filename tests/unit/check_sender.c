/*
 * check_sender.c — the sender login map and the authorisation of personal
 * signatures (sender.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sender.h"
#include "testutil.h"

static char *dir;
static char mappath[512];

static const char map_text[] =
    "# who may send as whom\n"
    "ceo@org.example        ceo, Assistant@org.example\n"
    "\n"
    "@sales.org.example     sales-gw\n"
    "boss@sales.org.example boss\n"
    "team@org.example       alice@org.example,\n"
    "                       bob@org.example\n"
    "info@b\xc3\xbc" "cher.example  carol\n";

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void
setup(void)
{
	dir = testutil_tmpdir();
	ck_assert_ptr_nonnull(dir);
	snprintf(mappath, sizeof(mappath), "%s/sender_login", dir);
	write_file(mappath, map_text);
}

static void
teardown(void)
{
	testutil_rmtree(dir);
	free(dir);
}

static const struct owns_case {
	const char *login, *addr;
	bool owns;
	int line; /* the map line that decided; 0: the login is the address */
} owns_cases[] = {
	{ "alice@org.example", "alice@org.example", true, 0 },
	{ "ALICE@Org.Example", "alice@org.example", true, 0 },
	{ "alice@org.example", "ceo@org.example", false, 0 },
	{ "ceo", "ceo@org.example", true, 2 },
	{ "CEO", "ceo@org.example", true, 2 },
	{ "assistant@org.example", "ceo@org.example", true, 2 },
	{ "dave@org.example", "ceo@org.example", false, 0 },
	{ "sales-gw", "anyone@sales.org.example", true, 4 },
	/* an exact entry wins over its @domain entry, as in Postfix */
	{ "sales-gw", "boss@sales.org.example", false, 0 },
	{ "boss", "boss@sales.org.example", true, 5 },
	/* a continuation line belongs to the entry above */
	{ "alice@org.example", "team@org.example", true, 6 },
	{ "bob@org.example", "team@org.example", true, 6 },
	/* the domain compares IDNA-normalised */
	{ "carol", "info@xn--bcher-kva.example", true, 8 },
	{ "", "alice@org.example", false, 0 },
	{ "alice", "alice@org.example", false, 0 },
};

START_TEST(logins_own_the_addresses_the_map_gives_them)
{
	const struct owns_case *tc = &owns_cases[_i];
	struct sender_map *m = NULL;
	char err[512] = "";
	int line = -1;
	bool owns;

	ck_assert_msg(sender_map_load(mappath, &m, err, sizeof(err)) == SM_OK, "load: %s", err);
	owns = sender_map_owns(m, tc->login, tc->addr, &line);
	ck_assert_msg(owns == tc->owns, "%s as %s: got %d, want %d", tc->login, tc->addr, owns,
	    tc->owns);
	if (owns)
		ck_assert_msg(line == tc->line, "%s as %s: line got %d, want %d", tc->login, tc->addr,
		    line, tc->line);
	sender_map_free(m);
}
END_TEST

static const struct bad_case {
	const char *text;
	const char *want; /* after the path */
} bad_cases[] = {
	{ "ok@org.example a\nnot-an-address b\n", ":2: \"not-an-address\" is neither an address nor @domain" },
	{ "ok@org.example\n", ":1: \"ok@org.example\" lists no login" },
	{ "  b\n", ":1: continuation line without an entry" },
	{ "@bad..domain x\n", ":1: \"@bad..domain\" is not a valid @domain" },
};

START_TEST(a_broken_map_is_refused_with_file_and_line)
{
	const struct bad_case *tc = &bad_cases[_i];
	struct sender_map *m = NULL;
	char err[512] = "", want[1024];

	write_file(mappath, tc->text);
	ck_assert_int_eq(sender_map_load(mappath, &m, err, sizeof(err)), SM_ERR_PARSE);
	ck_assert_ptr_null(m);
	snprintf(want, sizeof(want), "%s%s", mappath, tc->want);
	ck_assert_msg(strcmp(err, want) == 0, "got \"%s\", want \"%s\"", err, want);
}
END_TEST

START_TEST(a_missing_map_is_an_io_error_naming_the_file)
{
	struct sender_map *m = NULL;
	char err[512] = "", want[1024];

	strcat(mappath, ".missing");
	ck_assert_int_eq(sender_map_load(mappath, &m, err, sizeof(err)), SM_ERR_IO);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", mappath);
	ck_assert_msg(strcmp(err, want) == 0, "got \"%s\", want \"%s\"", err, want);
}
END_TEST

static struct sockaddr_in
v4(const char *a)
{
	struct sockaddr_in s;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	inet_pton(AF_INET, a, &s.sin_addr);
	return s;
}

static const struct auth_case {
	const char *name;
	const char *login;   /* NULL: not authenticated */
	const char *client;  /* NULL: local submission */
	const char *from, *env;
	bool ok;
	const char *rule;
} auth_cases[] = {
	{ "alice signs as alice", "alice@org.example", "192.0.2.7", "alice@org.example",
	    "alice@org.example", true, "login alice@org.example is the address" },
	{ "dave as the CEO is refused", "dave@org.example", "192.0.2.7", "ceo@org.example",
	    "dave@org.example", false, "login dave@org.example does not own ceo@org.example" },
	{ "the assistant may send as the CEO", "assistant@org.example", "192.0.2.7",
	    "ceo@org.example", "assistant@org.example", true,
	    "sender_login_map line 2 lists login assistant@org.example" },
	{ "an owned From with a foreign envelope sender is refused", "ceo", "192.0.2.7",
	    "ceo@org.example", "dave@org.example", false,
	    "login ceo does not own the envelope sender <dave@org.example>" },
	{ "the null envelope sender is owned by nobody", "alice@org.example", "192.0.2.7",
	    "alice@org.example", "", false,
	    "login alice@org.example does not own the envelope sender <>" },
	{ "unauthenticated from an untrusted host is refused", NULL, "192.0.2.7",
	    "alice@org.example", "alice@org.example", false,
	    "client 192.0.2.7 did not authenticate and is not a trusted relay" },
	{ "a trusted relay signs for anyone", NULL, "10.0.0.5", "ceo@org.example",
	    "ceo@org.example", true, "trusted relay 10.0.0.5" },
	{ "a login failing at a trusted relay still passes as the relay", "dave@org.example",
	    "10.0.0.5", "ceo@org.example", "ceo@org.example", true, "trusted relay 10.0.0.5" },
	{ "local submission counts as 127.0.0.1, not trusted here", NULL, NULL,
	    "alice@org.example", "alice@org.example", false,
	    "client 127.0.0.1 (local submission) did not authenticate and is not a trusted relay" },
	{ "a From without exactly one mailbox is never authorised", "alice@org.example", "10.0.0.5",
	    "", "alice@org.example", false, "the From header does not hold exactly one mailbox" },
};

START_TEST(personal_signatures_need_an_authorised_sender)
{
	const struct auth_case *tc = &auth_cases[_i];
	struct sender_map *m = NULL;
	struct cidr relays[1];
	struct sockaddr_in sa;
	struct sender_id id;
	struct sender_verdict v;
	char err[512] = "";

	ck_assert_msg(sender_map_load(mappath, &m, err, sizeof(err)) == SM_OK, "load: %s", err);
	ck_assert_int_eq(cidr_parse("10.0.0.0/24", &relays[0]), SM_OK);
	if (tc->client)
		sa = v4(tc->client);
	id.login = tc->login;
	id.client = tc->client ? (const struct sockaddr *)&sa : NULL;
	sender_authorise(m, relays, 1, &id, tc->from, tc->env, &v);
	ck_assert_msg(v.ok == tc->ok, "%s: got %d (%s), want %d", tc->name, v.ok, v.rule, tc->ok);
	ck_assert_msg(strcmp(v.rule, tc->rule) == 0, "%s: rule got \"%s\", want \"%s\"", tc->name,
	    v.rule, tc->rule);
	sender_map_free(m);
}
END_TEST

START_TEST(local_submission_is_trusted_when_loopback_is_listed)
{
	struct cidr relays[1];
	struct sender_id id = { NULL, NULL };
	struct sender_verdict v;

	ck_assert_int_eq(cidr_parse("127.0.0.1", &relays[0]), SM_OK);
	sender_authorise(NULL, relays, 1, &id, "ceo@org.example", "ceo@org.example", &v);
	ck_assert_msg(v.ok, "got refused (%s), want trusted", v.rule);
}
END_TEST

/* The configuration reads the map at load: -n and a reload see a missing or
 * broken map as an error at the key's line, and a good one is kept. */
START_TEST(the_configuration_reads_the_map_and_reports_its_line)
{
	char conf[600], text[2400], want[2400];
	struct config *cfg = NULL;
	struct config_errors errs = { NULL, 0 };

	snprintf(conf, sizeof(conf), "%s/smime-milter.conf", dir);
	snprintf(text, sizeof(text), "trust = { ca_file = \"%s\"; };\noutbound = {\n"
	    "  sender_login_map = \"%s\";\n  trusted_relays = [ \"10.0.0.5\" ];\n};\n", conf, mappath);
	write_file(conf, text);
	ck_assert_int_eq(config_load(conf, &cfg, &errs), SM_OK);
	ck_assert_ptr_nonnull(cfg->sender_map);
	ck_assert(sender_map_owns(cfg->sender_map, "ceo", "ceo@org.example", NULL));
	ck_assert_uint_eq(cfg->outbound.n_trusted_relays, 1);
	ck_assert_int_eq(cfg->outbound.unauthorised_sender, CFG_UNAUTH_REJECT);
	config_unref(cfg);

	strcat(mappath, ".missing");
	snprintf(text, sizeof(text), "trust = { ca_file = \"%s\"; };\noutbound = {\n"
	    "  sender_login_map = \"%s\";\n};\n", conf, mappath);
	write_file(conf, text);
	ck_assert_int_eq(config_load(conf, &cfg, &errs), SM_ERR_CONFIG);
	ck_assert_uint_eq(errs.n, 1);
	snprintf(want, sizeof(want),
	    "%s:3: outbound.sender_login_map: %s: cannot open: No such file or directory", conf,
	    mappath);
	ck_assert_msg(strcmp(errs.msg[0], want) == 0, "got \"%s\", want \"%s\"", errs.msg[0], want);
	config_errors_free(&errs);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sender");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, logins_own_the_addresses_the_map_gives_them, 0,
	    (int)(sizeof(owns_cases) / sizeof(owns_cases[0])));
	tcase_add_loop_test(tc, a_broken_map_is_refused_with_file_and_line, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, a_missing_map_is_an_io_error_naming_the_file);
	tcase_add_loop_test(tc, personal_signatures_need_an_authorised_sender, 0,
	    (int)(sizeof(auth_cases) / sizeof(auth_cases[0])));
	tcase_add_test(tc, local_submission_is_trusted_when_loopback_is_listed);
	tcase_add_test(tc, the_configuration_reads_the_map_and_reports_its_line);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
