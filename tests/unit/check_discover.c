/*
 * check_discover.c — key discovery's pure parts and its configuration:
 * the RFC 8162 owner name, the escaped LDAP filter, the discovery keys of
 * the schema, which addresses are looked up at all, and a directory that
 * refuses connections (a temporary failure, never cached as "nothing"),
 * one that never answers (a timeout), and the metrics they count.
 * The servers themselves are exercised by tests/e2e/discovery-*.test.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "discover.h"
#include "keycache.h"
#include "metrics.h"
#include "testutil.h"

static char *tmpdir;

static sm_status
load(const char *text, struct config **out, struct config_errors *errs)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/d.conf", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return config_load(path, out, errs);
}

static double
disc_count(const char *source, const char *result)
{
	char series[160];
	double v = -1;

	snprintf(series, sizeof(series),
	    "smime_milter_discovery_queries_total{source=\"%s\",result=\"%s\"}", source, result);
	ck_assert_msg(metrics_value(series, &v), "series %s: got none, want one", series);
	return v;
}

static void
setup(void)
{
	tmpdir = testutil_tmpdir();
}

static void
teardown(void)
{
	testutil_rmtree(tmpdir);
	free(tmpdir);
}

START_TEST(smimea_owner_name_is_rfc8162s_example)
{
	char name[256];

	ck_assert_int_eq(discover_smimea_name("hugh@example.com", name, sizeof(name)), SM_OK);
	ck_assert_str_eq(name,
	    "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.example.com");
	ck_assert_int_eq(discover_smimea_name("nodomain", name, sizeof(name)), SM_ERR_PARSE);
	ck_assert_int_eq(discover_smimea_name("@example.com", name, sizeof(name)), SM_ERR_PARSE);
	ck_assert_int_eq(discover_smimea_name("hugh@example.com", name, 40), SM_ERR_PARSE);
}
END_TEST

START_TEST(ldap_filter_escapes_metacharacters)
{
	char *f = discover_ldap_filter("(mail=%s)", "*)(mail=*@partner.example");
	char *g = discover_ldap_filter("(&(objectClass=person)(mail=%s))", "a\\b@x.example");

	ck_assert_ptr_nonnull(f);
	/* RFC 4515: every *, ( and ) becomes \XX: nothing of the address can
	 * close the filter or widen it into a wildcard. */
	ck_assert_str_eq(f, "(mail=\\2A\\29\\28mail=\\2A@partner.example)");
	ck_assert_ptr_nonnull(g);
	ck_assert_str_eq(g, "(&(objectClass=person)(mail=a\\5Cb@x.example))");
	free(f);
	free(g);
}
END_TEST

START_TEST(discovery_keys_load_with_defaults)
{
	struct config *c = NULL;
	struct config_errors errs = { NULL, 0 };

	ck_assert_msg(load("discovery = { ldap = ( { domains = [ \"@partner.example\" ];"
			   " uri = \"ldap://127.0.0.1:1/\"; } ); };\n", &c, &errs) == SM_OK,
	    "%s", errs.n ? errs.msg[0] : "?");
	ck_assert_uint_eq(c->discovery_budget_ms, 300);
	ck_assert_uint_eq(c->discovery_negative_ttl, 3600);
	ck_assert_uint_eq(c->n_discovery_ldap, 1);
	ck_assert_str_eq(c->discovery_ldap[0].filter, "(mail=%s)");
	ck_assert_str_eq(c->discovery_ldap[0].base, "");
	ck_assert_ptr_null(c->discovery_ldap[0].bind_dn);
	ck_assert(!c->smimea_enabled);
	ck_assert_str_eq(c->smimea_trust_anchor_file, "/usr/share/dns/root.key");
	config_unref(c);
	config_errors_free(&errs);
}
END_TEST

static const struct {
	const char *text;
	const char *want; /* a substring of the first error */
} bad_cases[] = {
	{ "discovery = { ldap = ( { domains = [ \"@p.example\" ]; } ); };", "needs uri and domains" },
	{ "discovery = { ldap = ( { uri = \"ldap://x\"; } ); };", "needs uri and domains" },
	{ "discovery = { ldap = ( { domains = [ \"@p.example\" ]; uri = \"ldap://x\"; filter = \"mail=%s\"; } ); };",
	  "exactly one %s" },
	{ "discovery = { ldap = ( { domains = [ \"@p.example\" ]; uri = \"ldap://x\"; filter = \"(mail=%s%s)\"; } ); };",
	  "exactly one %s" },
	{ "discovery = { ldap = ( { domains = [ \"p..example\" ]; uri = \"ldap://x\"; } ); };", "address or @domain" },
	{ "discovery = { ldap = ( { domains = [ \"@p.example\" ]; uri = \"ldap://x\"; bogus = 1; } ); };",
	  "discovery.ldap[1].bogus: unknown key" },
	{ "discovery = { budget_ms = 5; };", "from 10 to 60000" },
	{ "discovery = { ldap = { uri = \"x\"; }; };", "expected a list of groups" },
};

START_TEST(discovery_config_errors_say_what_is_wrong)
{
	struct config *c = NULL;
	struct config_errors errs = { NULL, 0 };

	ck_assert_int_ne(load(bad_cases[_i].text, &c, &errs), SM_OK);
	ck_assert_ptr_null(c);
	ck_assert_uint_ge(errs.n, 1);
	ck_assert_msg(strstr(errs.msg[0], bad_cases[_i].want) != NULL, "case %d: got \"%s\"", _i,
	    errs.msg[0]);
	config_errors_free(&errs);
}
END_TEST

/* A directory that refuses connections: a temporary failure naming it,
 * asked again next time (not remembered as "nothing found"); addresses
 * outside its domains, and internal ones, are never looked up. */
START_TEST(only_configured_domains_are_asked_and_failures_are_not_cached)
{
	struct config *c = NULL;
	struct config_errors errs = { NULL, 0 };
	struct discover *d = NULL;
	struct keycache *kc = NULL;
	struct disc_outcome o;
	char path[512], err[256];

	ck_assert_int_eq(load("internal_domains = [ \"org.example\" ];\n"
			      "discovery = { budget_ms = 2000; ldap = ( { domains = [ \"@partner.example\","
			      " \"@org.example\" ]; uri = \"ldap://127.0.0.1:1/\"; } ); };\n",
			     &c, &errs), SM_OK);
	snprintf(path, sizeof(path), "%s/cache.db", tmpdir);
	ck_assert_int_eq(keycache_open("sqlite", path, &kc, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(discover_new(c, &d, err, sizeof(err)), SM_OK);
	ck_assert_ptr_nonnull(d);
	metrics_reset();

	ck_assert_int_eq(discover_rcpt(d, "T1", "bob@elsewhere.example", kc, NULL, false, &o), SM_OK);
	ck_assert_int_eq(o.result, DISC_SKIPPED);
	ck_assert_int_eq(discover_rcpt(d, "T1", "carol@org.example", kc, NULL, false, &o), SM_OK);
	ck_assert_int_eq(o.result, DISC_SKIPPED);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(discover_rcpt(d, "T1", "bob@partner.example", kc, NULL, false, &o),
		    SM_OK);
		ck_assert_int_eq(o.result, DISC_TEMPFAIL);
		ck_assert(!o.cached);
		ck_assert_str_eq(o.sources, "ldap:ldap://127.0.0.1:1/");
		ck_assert_msg(strstr(o.why, "ldap://127.0.0.1:1/") != NULL, "why: %s", o.why);
	}
	/* Two queries asked, both failed; the skipped addresses asked none. */
	ck_assert_double_eq(disc_count("ldap", "error"), 2);
	ck_assert_double_eq(disc_count("ldap", "not_found"), 0);
	ck_assert_double_eq(disc_count("ldap", "timeout"), 0);
	ck_assert_double_eq(disc_count("smimea", "error"), 0);
	discover_free(d);
	keycache_close(kc);
	config_unref(c);

	/* Nothing configured: no discovery at all. */
	ck_assert_int_eq(load("log_debug = false;\n", &c, &errs), SM_OK);
	ck_assert_int_eq(discover_new(c, &d, err, sizeof(err)), SM_OK);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(discover_rcpt(NULL, "T1", "bob@partner.example", NULL, NULL, false, &o),
	    SM_OK);
	ck_assert_int_eq(o.result, DISC_SKIPPED);
	config_unref(c);
}
END_TEST

/* A directory that accepts the connection and never answers: the budget
 * holds, the look-up is a temporary failure, counted as a timeout. */
START_TEST(a_directory_that_never_answers_is_a_counted_timeout)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct config *c = NULL;
	struct config_errors errs = { NULL, 0 };
	struct discover *d = NULL;
	struct keycache *kc = NULL;
	struct disc_outcome o;
	char path[512], err[256], conf[512];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 8), 0); /* the kernel accepts; nobody reads */
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(conf, sizeof(conf),
	    "discovery = { budget_ms = 200; ldap = ( { domains = [ \"@partner.example\" ];"
	    " uri = \"ldap://127.0.0.1:%d/\"; } ); };\n", ntohs(sa.sin_port));
	ck_assert_int_eq(load(conf, &c, &errs), SM_OK);
	snprintf(path, sizeof(path), "%s/cache.db", tmpdir);
	ck_assert_int_eq(keycache_open("sqlite", path, &kc, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(discover_new(c, &d, err, sizeof(err)), SM_OK);
	metrics_reset();

	ck_assert_int_eq(discover_rcpt(d, "T1", "bob@partner.example", kc, NULL, false, &o), SM_OK);
	ck_assert_int_eq(o.result, DISC_TEMPFAIL);
	ck_assert_str_eq(o.why, "no answer within 200 ms");
	ck_assert_double_eq(disc_count("ldap", "timeout"), 1);
	ck_assert_double_eq(disc_count("ldap", "error"), 0);
	discover_free(d); /* the abandoned query finishes on its own */
	keycache_close(kc);
	config_unref(c);
	close(fd);
}
END_TEST

/* What the daemon needs at start is checked at start, with the path. */
START_TEST(missing_password_and_trust_anchor_files_are_named)
{
	struct config *c = NULL;
	struct config_errors errs = { NULL, 0 };
	struct discover *d = NULL;
	char err[512];

	ck_assert_int_eq(load("discovery = { ldap = ( { domains = [ \"@p.example\" ]; uri = \"ldap://x\";"
			      " bind_dn = \"cn=x\"; password_file = \"/nonexistent/pw\"; } ); };\n",
			     &c, &errs), SM_OK);
	ck_assert_int_ne(discover_new(c, &d, err, sizeof(err)), SM_OK);
	ck_assert_ptr_null(d);
	ck_assert_msg(strstr(err, "/nonexistent/pw") != NULL, "%s", err);
	config_unref(c);
	ck_assert_int_eq(load("discovery = { smimea = { enabled = true;"
			      " trust_anchor_file = \"/nonexistent/root.key\"; }; };\n", &c, &errs), SM_OK);
	ck_assert_int_ne(discover_new(c, &d, err, sizeof(err)), SM_OK);
	ck_assert_ptr_null(d);
	ck_assert_msg(strstr(err, "/nonexistent/root.key") != NULL, "%s", err);
	config_unref(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("discover");
	TCase *tc = tcase_create("discover");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, smimea_owner_name_is_rfc8162s_example);
	tcase_add_test(tc, ldap_filter_escapes_metacharacters);
	tcase_add_test(tc, discovery_keys_load_with_defaults);
	tcase_add_loop_test(tc, discovery_config_errors_say_what_is_wrong, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, only_configured_domains_are_asked_and_failures_are_not_cached);
	tcase_add_test(tc, a_directory_that_never_answers_is_a_counted_timeout);
	tcase_add_test(tc, missing_password_and_trust_anchor_files_are_named);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
