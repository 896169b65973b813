/*
 * check_refusals.c — the refusal log: one report row per refused address
 * with its count, last time, senders and latest reason; the --since window;
 * the bound; and a table that lives beside the key cache's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keycache.h"
#include "refusals.h"
#include "testutil.h"

static char *dir;
static char dbpath[512];

static void
setup(void)
{
	dir = testutil_tmpdir();
	ck_assert_ptr_nonnull(dir);
	snprintf(dbpath, sizeof(dbpath), "%s/cache.db", dir);
}

static void
teardown(void)
{
	testutil_rmtree(dir);
	free(dir);
}

static struct refusals *
open_log(void)
{
	struct refusals *rf = NULL;
	char err[256] = "";

	ck_assert_msg(refusals_open("sqlite", dbpath, &rf, err, sizeof(err)) == SM_OK,
	    "open: %s", err);
	return rf;
}

START_TEST(report_groups_refusals_per_recipient)
{
	struct refusals *rf = open_log();
	struct refusal_row *v;
	size_t n;

	ck_assert_int_eq(refusals_note(rf, "bob@partner.example", "alice@org.example",
	    "no certificate exchanged", 1000), SM_OK);
	refusals_note(rf, "carol@partner.example", "alice@org.example", "no certificate exchanged", 1100);
	refusals_note(rf, "bob@partner.example", "dave@org.example", "no certificate exchanged", 1200);
	refusals_note(rf, "bob@partner.example", "alice@org.example",
	    "certificate expired on 2026-01-01", 1300);

	ck_assert_int_eq(refusals_report(rf, 0, &v, &n), SM_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(v[0].address, "bob@partner.example");
	ck_assert_int_eq(v[0].count, 3);
	ck_assert_int_eq(v[0].first, 1000);
	ck_assert_int_eq(v[0].last, 1300);
	ck_assert_str_eq(v[0].reason, "certificate expired on 2026-01-01");
	ck_assert_int_eq(v[0].nsenders, 2);
	ck_assert_str_eq(v[0].senders[0], "alice@org.example");
	ck_assert_str_eq(v[0].senders[1], "dave@org.example");
	ck_assert_str_eq(v[1].address, "carol@partner.example");
	ck_assert_int_eq(v[1].count, 1);
	refusal_rows_free(v, n);

	/* the window: only what happened at or after since */
	ck_assert_int_eq(refusals_report(rf, 1150, &v, &n), SM_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(v[0].address, "bob@partner.example");
	ck_assert_int_eq(v[0].count, 2);
	ck_assert_int_eq(v[0].first, 1200);
	refusal_rows_free(v, n);
	ck_assert_int_eq(refusals_report(rf, 5000, &v, &n), SM_OK);
	ck_assert_int_eq(n, 0);
	refusal_rows_free(v, n);
	refusals_close(rf);
}
END_TEST

START_TEST(the_log_keeps_only_the_newest_notes)
{
	struct refusals *rf = open_log();
	struct refusal_row *v;
	size_t n;
	char a[64];

	refusals_set_limit(rf, 5);
	for (int i = 0; i < 12; i++) {
		snprintf(a, sizeof(a), "r%02d@partner.example", i);
		ck_assert_int_eq(refusals_note(rf, a, "", "no certificate exchanged", 100 + i), SM_OK);
	}
	ck_assert_int_eq(refusals_report(rf, 0, &v, &n), SM_OK);
	ck_assert_msg(n == 5, "got %zu rows, want 5", n);
	for (size_t i = 0; i < n; i++) {
		snprintf(a, sizeof(a), "r%02zu@partner.example", i + 7);
		ck_assert_str_eq(v[i].address, a);
		ck_assert_int_eq(v[i].nsenders, 1);
		ck_assert_str_eq(v[i].senders[0], "");
	}
	refusal_rows_free(v, n);
	refusals_close(rf);
}
END_TEST

/* The table joins the key cache's file: both open it, in either order,
 * and the cache's own check still passes. */
START_TEST(the_log_lives_beside_the_key_cache)
{
	struct keycache *kc = NULL;
	struct refusals *rf;
	struct refusal_row *v;
	char err[256] = "";
	int ver = 0;
	size_t n;

	ck_assert_msg(keycache_open("sqlite", dbpath, &kc, err, sizeof(err)) == SM_OK, "%s", err);
	rf = open_log();
	ck_assert_int_eq(refusals_note(rf, "bob@partner.example", "a@org.example", "x", 1), SM_OK);
	ck_assert_msg(keycache_check(kc, &ver, err, sizeof(err)) == SM_OK, "check: %s", err);
	refusals_close(rf);
	keycache_close(kc);
	rf = open_log();
	ck_assert_int_eq(refusals_report(rf, 0, &v, &n), SM_OK);
	ck_assert_int_eq(n, 1);
	refusal_rows_free(v, n);
	refusals_close(rf);
}
END_TEST

START_TEST(unknown_backends_and_null_logs)
{
	struct refusals *rf = (void *)1;
	char err[256] = "";

	ck_assert_int_eq(refusals_open("ldap", dbpath, &rf, err, sizeof(err)), SM_ERR_ARG);
	ck_assert_ptr_null(rf);
	ck_assert_str_eq(err, "refusal log: unknown backend \"ldap\"");
	ck_assert_int_eq(refusals_note(NULL, "bob@partner.example", "", "x", 1), SM_OK);
	refusals_close(NULL);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("refusals");
	TCase *tc = tcase_create("refusals");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, report_groups_refusals_per_recipient);
	tcase_add_test(tc, the_log_keeps_only_the_newest_notes);
	tcase_add_test(tc, the_log_lives_beside_the_key_cache);
	tcase_add_test(tc, unknown_backends_and_null_logs);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
