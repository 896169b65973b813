/*
 * check_expiry.c — which of our own certificates the daemon warns about
 * (and smimectl check fails on): those expiring within warn_expiry_days or
 * expired, unless a renewed key for every name they speak for outlives the
 * window.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certgen.h"
#include "expiry.h"
#include "keystore.h"
#include "testutil.h"

static char *dir;
static EVP_PKEY *key;

static void
put(const char *file, const char *san, time_t not_after)
{
	struct cg_spec s = { 0 };
	char path[512];
	X509 *x;

	s.key = key;
	s.san = san;
	s.not_after = not_after;
	s.ku = "digitalSignature,keyEncipherment";
	x = cg_make(&s);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	cg_write_pem(path, key, x, NULL, 0600);
	X509_free(x);
}

struct seen {
	char names[8][128];
	long days[8];
	size_t n;
};

static void
collect(const struct keystore_info *in, long days_left, void *arg)
{
	struct seen *s = arg;

	ck_assert(s->n < 8);
	expiry_names(in, s->names[s->n], sizeof(s->names[0]));
	s->days[s->n++] = days_left;
}

static struct seen
run(long days)
{
	struct keystore *ks = NULL;
	struct seen s;
	char err[512] = "";

	memset(&s, 0, sizeof(s));
	ck_assert_msg(keystore_load(dir, &ks, err, sizeof(err)) == SM_OK, "load: %s", err);
	ck_assert_int_eq(expiry_own(ks, CG_NOW, days, collect, &s), s.n);
	keystore_free(ks);
	return s;
}

static void
setup(void)
{
	dir = testutil_tmpdir();
	key = cg_rsa(2048);
}

static void
teardown(void)
{
	EVP_PKEY_free(key);
	testutil_rmtree(dir);
	free(dir);
}

START_TEST(keys_inside_the_window_are_reported_with_their_days)
{
	struct seen s;

	put("alice.pem", "email:alice@org.example", CG_NOW + 10 * CG_DAY + 3600);
	put("bob.pem", "email:bob@org.example", CG_NOW + 100 * CG_DAY);
	put("old.pem", "email:old@org.example", CG_NOW - 2 * CG_DAY);
	s = run(30);
	ck_assert_int_eq(s.n, 2);
	ck_assert_str_eq(s.names[0], "alice@org.example");
	ck_assert_int_eq(s.days[0], 10);
	ck_assert_str_eq(s.names[1], "old@org.example");
	ck_assert_int_eq(s.days[1], -2);
	/* a wider window takes bob in; 0 turns the warning off */
	ck_assert_int_eq(run(101).n, 3);
	ck_assert_int_eq(run(0).n, 0);
}
END_TEST

START_TEST(a_renewed_key_silences_the_old_one)
{
	struct seen s;

	put("a1.pem", "email:alice@org.example", CG_NOW + 5 * CG_DAY);
	put("a2.pem", "email:alice@org.example", CG_NOW + 400 * CG_DAY);
	/* carol's renewal covers only one of her two addresses: still warned */
	put("c1.pem", "email:carol@org.example,email:c@org.example", CG_NOW + 5 * CG_DAY);
	put("c2.pem", "email:carol@org.example", CG_NOW + 400 * CG_DAY);
	/* dave's "renewal" expires inside the window too: both warned */
	put("d1.pem", "email:dave@org.example", CG_NOW + 5 * CG_DAY);
	put("d2.pem", "email:dave@org.example", CG_NOW + 20 * CG_DAY);
	s = run(30);
	ck_assert_int_eq(s.n, 3);
	ck_assert_str_eq(s.names[0], "carol@org.example, c@org.example");
	ck_assert_str_eq(s.names[1], "dave@org.example");
	ck_assert_str_eq(s.names[2], "dave@org.example");
	ck_assert_int_eq(s.days[2], 20);
}
END_TEST

START_TEST(domain_keys_are_named_by_their_domain)
{
	struct seen s;

	put("@org.example.pem", "email:postmaster@org.example", CG_NOW + 3 * CG_DAY);
	s = run(30);
	ck_assert_int_eq(s.n, 1);
	ck_assert_str_eq(s.names[0], "@org.example");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("expiry");
	TCase *tc = tcase_create("expiry");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, keys_inside_the_window_are_reported_with_their_days);
	tcase_add_test(tc, a_renewed_key_silences_the_old_one);
	tcase_add_test(tc, domain_keys_are_named_by_their_domain);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
