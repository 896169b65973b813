/*
 * check_rcptmemo.c — one message's recipient look-ups: an RCPT-time answer
 * is reused later in the same message only while nothing it depends on
 * changed (generation, clock, age, the certificate's own expiry); and
 * through the gateway, a recipient decided at RCPT is not looked up in the
 * key cache again unless the cache changed.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certcache.h"
#include "certgen.h"
#include "clock.h"
#include "config.h"
#include "gateway.h"
#include "keycache.h"
#include "rcptmemo.h"
#include "testutil.h"
#include "trust.h"

#define S "alice@org.example"
#define BOB "bob@partner.example"

static EVP_PKEY *ca_key, *ee_key;
static X509 *ca, *bob;

static void
keys_setup(void)
{
	struct cg_spec s;

	clock_set(CG_NOW);
	ca_key = cg_ec();
	ee_key = cg_ec();
	ca = cg_ca(ca_key, "Root CA");
	memset(&s, 0, sizeof(s));
	s.key = ee_key;
	s.ca = ca;
	s.ca_key = ca_key;
	s.san = "email:" BOB;
	s.not_after = CG_NOW + 3600; /* an hour left */
	s.ku = "critical,digitalSignature,keyAgreement";
	s.eku = "emailProtection";
	bob = cg_make(&s);
}

static void
keys_teardown(void)
{
	X509_free(bob);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(ee_key);
	certcache_clear();
	clock_set(0);
}

/* Is an answer for BOB there at now, and which? */
static bool
got(struct rcptmemo *m, time_t now, X509 **cert, char *reason)
{
	caps_t caps = 0;

	*cert = NULL;
	return rcptmemo_get(m, S, BOB, now, cert, &caps, reason,
			    KC_REASON_SIZE);
}

START_TEST(test_an_answer_is_reused_with_its_certificate_and_reason)
{
	struct rcptmemo *m = rcptmemo_new();
	char why[KC_REASON_SIZE];
	caps_t caps = 0;
	X509 *x = NULL;

	ck_assert(!got(m, CG_NOW, &x, why));
	rcptmemo_put(m, S, BOB, certcache_generation(), CG_NOW, bob, 7, "");
	ck_assert(rcptmemo_get(m, S, BOB, CG_NOW + 5, &x, &caps, why,
			       sizeof(why)));
	ck_assert_msg(x != NULL && X509_cmp(x, bob) == 0,
		      "certificate: got another one, want bob's");
	ck_assert_uint_eq(caps, 7);
	X509_free(x);
	/* Another sender's or address's look-up is not this one. */
	ck_assert(!rcptmemo_get(m, "other@org.example", BOB, CG_NOW, &x, &caps,
				why, sizeof(why)));
	/* "None" is an answer too, replacing the one before. */
	rcptmemo_put(m, S, BOB, certcache_generation(), CG_NOW, NULL, 0,
		     "no certificate exchanged");
	ck_assert(got(m, CG_NOW, &x, why));
	ck_assert_ptr_null(x);
	ck_assert_str_eq(why, "no certificate exchanged");
	rcptmemo_free(m);
}
END_TEST

/* What makes a kept answer go. */
static const struct {
	const char *what;
	bool bump;
	time_t at; /* seconds after CG_NOW the second look-up happens */
} stale[] = {
	{ "the generation moved", true, 1 },
	{ "the clock went back", false, -1 },
	{ "it is older than the TTL", false, CERTCACHE_VERDICT_TTL + 1 },
	{ "its certificate expired", false, 3601 },
};

START_TEST(test_an_answer_is_not_reused_when)
{
	struct rcptmemo *m = rcptmemo_new();
	char why[KC_REASON_SIZE];
	X509 *x = NULL;

	ck_assert(CERTCACHE_VERDICT_TTL < 3600); /* the cases stay apart */
	rcptmemo_put(m, S, BOB, certcache_generation(), CG_NOW, bob, 0, "");
	if (stale[_i].bump)
		certcache_bump();
	ck_assert_msg(!got(m, CG_NOW + stale[_i].at, &x, why),
		      "reused although %s", stale[_i].what);
	ck_assert_ptr_null(x);
	rcptmemo_free(m);
}
END_TEST

START_TEST(test_a_null_memo_keeps_nothing)
{
	char why[KC_REASON_SIZE];
	X509 *x = NULL;

	rcptmemo_put(NULL, S, BOB, certcache_generation(), CG_NOW, bob, 0, "");
	ck_assert(!got(NULL, CG_NOW, &x, why));
	rcptmemo_free(NULL);
}
END_TEST

/* ---- through the gateway ---- */

static char *T;
static struct config *cfg;
static struct keycache *kc;
static struct trust *tr;

static void
gw_setup(void)
{
	char path[600], err[256] = "";
	struct config_errors errs = { NULL, 0 };
	FILE *f;

	T = testutil_tmpdir();
	ck_assert_ptr_nonnull(T);
	snprintf(path, sizeof(path), "%s/ca.pem", T);
	cg_write_pem(path, NULL, ca, NULL, 0600);
	ck_assert_msg(trust_load(path, NULL, &tr, err, sizeof(err)) == SM_OK,
		      "%s", err);
	snprintf(path, sizeof(path), "%s/smime-milter.conf", T);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"internal_domains = [ \"org.example\" ];\n"
		"trust = { ca_file = \"%s/ca.pem\"; };\n"
		"cache = { path = \"%s/cache.db\"; };\n"
		"policy = ( { recipient = \"@partner.example\";"
		" encrypt = \"required\"; } );\n",
		T, T);
	fclose(f);
	ck_assert_msg(config_load(path, &cfg, &errs) == SM_OK, "config: %s",
		      errs.n ? errs.msg[0] : "?");
	config_errors_free(&errs);
	snprintf(path, sizeof(path), "%s/cache.db", T);
	ck_assert_msg(keycache_open("sqlite", path, &kc, err, sizeof(err)) ==
			      SM_OK,
		      "%s", err);
	ck_assert(keycache_store(kc, bob, NULL, BOB, CAP_KNOWN,
				 KC_SRC_IMPORTED, NULL, NULL) == SM_OK);
}

static void
gw_teardown(void)
{
	keycache_close(kc);
	trust_free(tr);
	config_unref(cfg);
	testutil_rmtree(T);
	free(T);
}

/* gw_rcpt of BOB, accepted (a certificate was found). */
static void
rcpt_accepted(struct gw_env *env)
{
	struct pol_rcpt_decision d;

	ck_assert(gw_rcpt(env, S, "<" BOB ">", NULL, &d) == SM_OK);
	ck_assert_msg(d.verdict == POL_ACCEPT, "verdict: got %d (%s), want "
			      "accept", (int)d.verdict, d.log);
	policy_reply_free(&d.reply);
}

/* How many key cache selections ran (each ends in a verdict hit or a
 * verification). */
static unsigned long
selections(void)
{
	struct certcache_stats s;

	certcache_stats(&s);
	return s.verdict_hits + s.verifies;
}

START_TEST(test_the_gateway_looks_a_recipient_up_once_per_message)
{
	struct gw_env env;
	unsigned long n;

	memset(&env, 0, sizeof(env));
	env.cfg = cfg;
	env.trust = tr;
	env.kc = kc;
	env.memo = rcptmemo_new();
	ck_assert_ptr_nonnull(env.memo);
	rcpt_accepted(&env);
	n = selections();
	rcpt_accepted(&env);
	ck_assert_msg(selections() == n,
		      "key cache selections: got %lu more, want 0",
		      selections() - n);
	/* A write to the cache: looked up again. */
	ck_assert(keycache_store(kc, bob, NULL, BOB, CAP_KNOWN,
				 KC_SRC_IMPORTED, NULL, NULL) == SM_OK);
	rcpt_accepted(&env);
	ck_assert_msg(selections() == n + 1,
		      "key cache selections after a write: got %lu more, "
		      "want 1",
		      selections() - n);
	/* Without a memo (another message): looked up each time. */
	env.memo = (rcptmemo_free(env.memo), NULL);
	n = selections();
	rcpt_accepted(&env);
	rcpt_accepted(&env);
	ck_assert_uint_eq(selections() - n, 2);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("rcptmemo");
	TCase *tc = tcase_create("memo"), *gw = tcase_create("gateway");

	tcase_add_checked_fixture(tc, keys_setup, keys_teardown);
	tcase_add_test(tc,
		       test_an_answer_is_reused_with_its_certificate_and_reason);
	tcase_add_loop_test(tc, test_an_answer_is_not_reused_when, 0,
			    (int)(sizeof(stale) / sizeof(stale[0])));
	tcase_add_test(tc, test_a_null_memo_keeps_nothing);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(gw, keys_setup, keys_teardown);
	tcase_add_checked_fixture(gw, gw_setup, gw_teardown);
	tcase_add_test(gw, test_the_gateway_looks_a_recipient_up_once_per_message);
	suite_add_tcase(s, gw);
	return s;
}

int
main(void)
{
	return testutil_run(suite());
}
