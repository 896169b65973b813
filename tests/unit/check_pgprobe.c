/*
 * check_pgprobe.c — which failed PostgreSQL connections are an outage to
 * ride out and which a configuration the server refuses for certain. (The
 * real server's texts are checked in tests/cli/preflight-pg.test.)
 */
#include <string.h>

#include "pgprobe.h"
#include "testutil.h"

static const struct classify_case {
	const char *msg;
	int needs_password;
	enum pgprobe_result want;
} classify_cases[] = {
	{ "connection to server at \"127.0.0.1\", port 5432 failed: Connection refused\n"
	  "\tIs the server running on that host and accepting TCP/IP connections?\n",
	    0, PGPROBE_UNREACHABLE },
	{ "could not translate host name \"db.example\" to address: Name or service not known\n",
	    0, PGPROBE_UNREACHABLE },
	{ "connection to server at \"127.0.0.1\", port 5432 failed: timeout expired\n", 0,
	    PGPROBE_UNREACHABLE },
	{ "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  57P03: the database "
	  "system is starting up\nLOCATION:  ProcessStartupPacket, postmaster.c:2352\n",
	    0, PGPROBE_UNREACHABLE },
	{ "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  53300: sorry, too "
	  "many clients already\n",
	    0, PGPROBE_UNREACHABLE },
	{ "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  3D000: database "
	  "\"nosuch\" does not exist\nLOCATION:  InitPostgres, postinit.c:885\n",
	    0, PGPROBE_REFUSED },
	{ "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  28P01: password "
	  "authentication failed for user \"x\"\n",
	    0, PGPROBE_REFUSED },
	{ "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  28000: no "
	  "pg_hba.conf entry for host \"127.0.0.1\", user \"x\", database \"smime\", no "
	  "encryption\n",
	    0, PGPROBE_REFUSED },
	{ "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  42501: permission "
	  "denied for database \"smime\"\n",
	    0, PGPROBE_REFUSED },
	/* A second host refused the login: certain, whatever the first did. */
	{ "connection to server at \"a\", port 5432 failed: Connection refused\n"
	  "connection to server at \"b\", port 5432 failed: FATAL:  28P01: password "
	  "authentication failed for user \"x\"\n",
	    0, PGPROBE_REFUSED },
	{ "connection to server at \"127.0.0.1\", port 5432 failed: fe_sendauth: no password "
	  "supplied\n",
	    1, PGPROBE_REFUSED },
	/* Not an SQLSTATE: five characters without the colon after them. */
	{ "failed: FATAL:  28P01 nothing\n", 0, PGPROBE_UNREACHABLE },
	{ "", 0, PGPROBE_UNREACHABLE },
	{ NULL, 0, PGPROBE_UNREACHABLE },
};

START_TEST(a_failure_is_classified_by_its_sqlstate)
{
	const struct classify_case *tc = &classify_cases[_i];
	enum pgprobe_result got = pgprobe_classify(tc->msg, tc->needs_password);

	ck_assert_msg(got == tc->want, "%s: got %d, want %d", tc->msg ? tc->msg : "(null)", got,
	    tc->want);
}
END_TEST

START_TEST(an_unparsable_conninfo_is_refused_without_connecting)
{
	char why[256] = "";

	ck_assert_int_eq(pgprobe_connect("host=127.0.0.1 nosuchoption=1", why, sizeof(why)),
	    PGPROBE_REFUSED);
	ck_assert_msg(strstr(why, "nosuchoption") != NULL, "got \"%s\", want the option named",
	    why);
	ck_assert_msg(strchr(why, '\n') == NULL, "got \"%s\", want one line", why);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("pgprobe");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, a_failure_is_classified_by_its_sqlstate, 0,
	    (int)(sizeof(classify_cases) / sizeof(classify_cases[0])));
	tcase_add_test(tc, an_unparsable_conninfo_is_refused_without_connecting);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
