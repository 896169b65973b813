/*
 * check_certcache.c — the process-wide cache of parsed certificates and
 * chain verdicts, through the key cache's selection as the daemon uses
 * it: a second lookup decodes and verifies nothing, and a kept verdict is
 * dropped when the trust store reloads, when a certificate of the chain
 * expires (injectable clock) and when the cache changes (harvest,
 * supersede, removal, revocation result). The revocation judgment kept
 * beside it is used without reading the store, and dropped by a
 * revocation result, ours or another process's. Threads hammer lookups while
 * another writes and bumps the generation (run under ASan and valgrind).
 */
#include <check.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certcache.h"
#include "certgen.h"
#include "clock.h"
#include "keycache.h"
#include "revstore.h"
#include "x509util.h"
#include "testutil.h"
#include "trust.h"

#define BOB "bob@partner.example"
#define KU_EC "critical,digitalSignature,keyAgreement"

static EVP_PKEY *root_key, *other_key, *inter_key, *ee_key;
static X509 *root, *other, *inter, *short_inter;
static char *dir;
static struct keycache *kc;

static X509 *
make(EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, const char *cn,
     const char *san, long na_days, bool is_ca) /* na_days 0: 120 s */
{
	struct cg_spec s;

	memset(&s, 0, sizeof(s));
	s.key = key;
	s.ca = ca;
	s.ca_key = ca_key;
	s.cn = cn;
	s.san = san;
	s.not_before = CG_NOW - 100 * CG_DAY;
	s.not_after = na_days ? CG_NOW + na_days * CG_DAY : CG_NOW + 120;
	s.ku = is_ca ? "critical,keyCertSign,cRLSign" : KU_EC;
	s.eku = is_ca ? NULL : "emailProtection";
	s.is_ca = is_ca;
	return cg_make(&s);
}

static void
setup(void)
{
	char err[256], path[600];

	clock_set(CG_NOW);
	certcache_clear();
	root_key = cg_ec();
	other_key = cg_ec();
	inter_key = cg_ec();
	ee_key = cg_ec();
	root = cg_ca(root_key, "Root CA");
	other = cg_ca(other_key, "Other CA");
	inter = make(inter_key, root, root_key, "Intermediate CA", NULL, 1000,
		     true);
	/* The same intermediate key, certified for two more minutes only
	 * (within a verdict's TTL, so only its expiry can drop it). */
	short_inter = make(inter_key, root, root_key, "Intermediate CA", NULL,
			   0, true);
	dir = testutil_tmpdir();
	ck_assert(dir != NULL);
	cg_write_pem(strcat(strcpy(path, dir), "/root.pem"), NULL, root, NULL,
		     0600);
	cg_write_pem(strcat(strcpy(path, dir), "/other.pem"), NULL, other,
		     NULL, 0600);
	snprintf(path, sizeof(path), "%s/cache.db", dir);
	ck_assert_msg(keycache_open("sqlite", path, &kc, err, sizeof(err)) ==
			      SM_OK,
		      "open: %s", err);
}

static void
teardown(void)
{
	keycache_close(kc);
	kc = NULL;
	testutil_rmtree(dir);
	free(dir);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(inter_key);
	EVP_PKEY_free(ee_key);
	X509_free(root);
	X509_free(other);
	X509_free(inter);
	X509_free(short_inter);
	certcache_clear();
	clock_set(0);
}

/* Anchors as the daemon loads them: file "root" or "other". */
static struct trust *
anchors(const char *name)
{
	char path[600], err[256];
	struct trust *t = NULL;

	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	ck_assert_msg(trust_load(path, NULL, &t, err, sizeof(err)) == SM_OK,
		      "trust_load: %s", err);
	return t;
}

/* Store a certificate for addr issued by the intermediate (the given
 * one goes into the chain). */
static void
store_leaf(const char *addr, X509 *chain_ca)
{
	char san[300];
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509 *x;

	snprintf(san, sizeof(san), "email:%s", addr);
	x = make(ee_key, chain_ca, inter_key, "Partner", san, 365, false);
	ck_assert(chain != NULL && sk_X509_push(chain, chain_ca) > 0);
	ck_assert(keycache_store(kc, x, chain, addr, CAP_KNOWN,
				 KC_SRC_HARVESTED, NULL, NULL) == SM_OK);
	sk_X509_free(chain);
	X509_free(x);
}

/* keycache_select of BOB: its status, and the reason into why. */
static sm_status
lookup(struct trust *t, char why[KC_REASON_SIZE])
{
	X509 *x = NULL;
	sm_status st;

	st = keycache_select(kc, BOB, trust_store(t), false, &x, NULL, why,
			     KC_REASON_SIZE);
	ck_assert((st == SM_OK) == (x != NULL));
	X509_free(x);
	return st;
}

static void
lookup_ok(struct trust *t)
{
	char why[KC_REASON_SIZE];
	sm_status st = lookup(t, why);

	ck_assert_msg(st == SM_OK, "select: got %s (%s), want ok",
		      sm_strstatus(st), why);
}

static void
lookup_untrusted(struct trust *t)
{
	char why[KC_REASON_SIZE];
	sm_status st = lookup(t, why);

	ck_assert_msg(st == SM_ERR_NOKEY &&
			      strcmp(why, "certificate not trusted") == 0,
		      "select: got %s (%s), want \"certificate not trusted\"",
		      sm_strstatus(st), why);
}

static struct certcache_stats
stats(void)
{
	struct certcache_stats s;

	certcache_stats(&s);
	return s;
}

/* How many verifications ran since before. */
static unsigned long
verified_since(struct certcache_stats before)
{
	return stats().verifies - before.verifies;
}

START_TEST(test_a_second_lookup_decodes_and_verifies_nothing)
{
	struct trust *t = anchors("root");
	struct certcache_stats a, b;

	store_leaf(BOB, inter);
	lookup_ok(t);
	a = stats();
	lookup_ok(t);
	b = stats();
	ck_assert_msg(b.decodes == a.decodes, "decodes: got %lu more, want 0",
		      b.decodes - a.decodes);
	ck_assert_msg(b.verifies == a.verifies,
		      "verifications: got %lu more, want 0",
		      b.verifies - a.verifies);
	ck_assert_msg(b.verdict_hits == a.verdict_hits + 1,
		      "verdict hits: got %lu more, want 1",
		      b.verdict_hits - a.verdict_hits);
	trust_free(t);
}
END_TEST

START_TEST(test_a_negative_verdict_is_kept_too)
{
	struct trust *t = anchors("other");
	struct certcache_stats a;

	store_leaf(BOB, inter);
	lookup_untrusted(t);
	a = stats();
	lookup_untrusted(t);
	ck_assert_uint_eq(verified_since(a), 0);
	trust_free(t);
}
END_TEST

START_TEST(test_a_store_without_identity_is_verified_every_time)
{
	X509_STORE *st = cg_store(root);
	char why[KC_REASON_SIZE];
	struct certcache_stats a;
	X509 *x = NULL;

	store_leaf(BOB, inter);
	a = stats();
	for (int i = 0; i < 2; i++) {
		ck_assert(keycache_select(kc, BOB, st, false, &x, NULL, why,
					  sizeof(why)) == SM_OK);
		X509_free(x);
	}
	ck_assert_msg(verified_since(a) == 2,
		      "verifications: got %lu, want 2 (no identity, no "
		      "verdict kept)",
		      verified_since(a));
	X509_STORE_free(st);
}
END_TEST

START_TEST(test_a_verdict_is_dropped_when_the_trust_store_reloads)
{
	struct trust *t = anchors("root"), *t2, *t3;
	struct certcache_stats a;

	store_leaf(BOB, inter);
	lookup_ok(t);
	/* The reload drops the root: the kept "trusted" must not answer. */
	t2 = anchors("other");
	lookup_untrusted(t2);
	/* The root is back: verified again, not taken from before. */
	t3 = anchors("root");
	a = stats();
	lookup_ok(t3);
	ck_assert_uint_eq(verified_since(a), 1);
	trust_free(t);
	trust_free(t2);
	trust_free(t3);
}
END_TEST

START_TEST(test_a_verdict_is_dropped_when_a_chain_certificate_expires)
{
	struct trust *t = anchors("root");
	struct certcache_stats a;

	/* The leaf is valid for a year, its intermediate for 120 s. */
	store_leaf(BOB, short_inter);
	lookup_ok(t);
	clock_set(CG_NOW + 60);
	a = stats();
	lookup_ok(t);
	ck_assert_uint_eq(verified_since(a), 0);
	clock_set(CG_NOW + 121);
	lookup_untrusted(t);
	trust_free(t);
}
END_TEST

START_TEST(test_a_verdict_is_at_most_the_ttl_old)
{
	struct trust *t = anchors("root");
	struct certcache_stats a;

	store_leaf(BOB, inter);
	lookup_ok(t);
	clock_set(CG_NOW + CERTCACHE_VERDICT_TTL + 1);
	a = stats();
	lookup_ok(t);
	ck_assert_uint_eq(verified_since(a), 1);
	trust_free(t);
}
END_TEST

/* One kind of write between two lookups of BOB. */
static void
write_harvest(void)
{
	store_leaf("carol@partner.example", inter);
}

static void
write_supersede(void)
{
	EVP_PKEY *k = cg_ec();
	STACK_OF(X509) *chain = sk_X509_new_null();
	struct cg_spec s;
	enum keycache_outcome out;
	X509 *x;

	memset(&s, 0, sizeof(s));
	s.key = k;
	s.ca = inter;
	s.ca_key = inter_key;
	s.san = "email:" BOB;
	s.not_before = CG_NOW - 10 * CG_DAY; /* newer: it wins */
	s.not_after = CG_NOW + 365 * CG_DAY;
	s.ku = KU_EC;
	s.eku = "emailProtection";
	x = cg_make(&s);
	ck_assert(sk_X509_push(chain, inter) > 0);
	ck_assert(keycache_store(kc, x, chain, BOB, CAP_KNOWN,
				 KC_SRC_HARVESTED, &out, NULL) == SM_OK);
	ck_assert_str_eq(keycache_outcome_name(out), "key change");
	sk_X509_free(chain);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
write_removal(void)
{
	store_leaf("carol@partner.example", inter);
	ck_assert(keycache_remove_address(kc, "carol@partner.example", NULL) ==
		  SM_OK);
}

static void
write_revocation(void)
{
	char path[600], err[256];
	struct rev_result r;
	struct revstore *rs = NULL;

	snprintf(path, sizeof(path), "%s/cache.db.revocation", dir);
	ck_assert_msg(revstore_open(path, &rs, err, sizeof(err)) == SM_OK,
		      "revstore_open: %s", err);
	memset(&r, 0, sizeof(r));
	r.status = REV_GOOD;
	ck_assert(revstore_put(rs, "00", &r, CG_NOW) == SM_OK);
	revstore_close(rs);
}

static const struct {
	const char *what;
	void (*write)(void);
} writes[] = {
	{ "a harvest", write_harvest },
	{ "a supersede", write_supersede },
	{ "a removal", write_removal },
	{ "a revocation result", write_revocation },
};

START_TEST(test_a_verdict_is_dropped_when_the_cache_changes)
{
	struct trust *t = anchors("root");
	struct certcache_stats a;
	unsigned long gen;

	store_leaf(BOB, inter);
	lookup_ok(t);
	gen = certcache_generation();
	writes[_i].write();
	ck_assert_msg(certcache_generation() != gen,
		      "%s left the generation alone", writes[_i].what);
	a = stats();
	lookup_ok(t);
	ck_assert_msg(verified_since(a) == 1,
		      "after %s: got %lu verifications, want 1",
		      writes[_i].what, verified_since(a));
	trust_free(t);
}
END_TEST

/* ---- the revocation judgment, kept as a memo ---- */

static struct revstore *
rev_open(void)
{
	char path[600], err[256];
	struct revstore *rs = NULL;

	snprintf(path, sizeof(path), "%s/cache.db.revocation", dir);
	ck_assert_msg(revstore_open(path, &rs, err, sizeof(err)) == SM_OK,
		      "revstore_open: %s", err);
	return rs;
}

/* keycache_select_hook of BOB through revstore_hook, as the RCPT path. */
static sm_status
rev_lookup(struct trust *t, struct revstore *rs,
	   const struct cfg_revocation *rc, char why[KC_REASON_SIZE])
{
	struct revstore_hook_arg ra = { rs, rc, trust_store(t) };
	struct kc_hook hook = { revstore_hook, &ra };
	X509 *x = NULL;
	sm_status st;

	why[0] = '\0';
	st = keycache_select_hook(kc, BOB, trust_store(t), false, &hook, &x,
				  NULL, why, KC_REASON_SIZE);
	ck_assert((st == SM_OK) == (x != NULL));
	X509_free(x);
	return st;
}

/* BOB stored, and a good answer about his certificate (fingerprint into
 * fp) valid for a day; one lookup reads it and keeps the judgment. */
static void
rev_good(struct trust *t, struct revstore *rs,
	 const struct cfg_revocation *rc, char fp[X509U_FP_SIZE])
{
	struct rev_result r = { .status = REV_GOOD, .source = REV_SRC_OCSP,
				.reason = -1, .this_update = CG_NOW,
				.next_update = CG_NOW + CG_DAY };
	char why[KC_REASON_SIZE];
	X509 *x = NULL;

	store_leaf(BOB, inter);
	ck_assert(keycache_select(kc, BOB, trust_store(t), false, &x, NULL,
				  why, sizeof(why)) == SM_OK);
	ck_assert(x509u_fingerprint(x, fp) == SM_OK);
	ck_assert(revstore_enqueue(rs, x, inter, CG_NOW) == SM_OK);
	ck_assert(revstore_put(rs, fp, &r, CG_NOW) == SM_OK);
	X509_free(x);
	ck_assert_int_eq(rev_lookup(t, rs, rc, why), SM_OK);
}

START_TEST(test_a_kept_revocation_judgment_is_dropped_when_the_store_is_written)
{
	struct trust *t = anchors("root");
	struct revstore *rs = rev_open();
	struct cfg_revocation rc = { .check = CFG_REV_SOFT, .grace_days = 3 };
	struct rev_result r = { .status = REV_REVOKED, .source = REV_SRC_OCSP,
				.reason = 1, .this_update = CG_NOW,
				.next_update = CG_NOW + CG_DAY,
				.revoked_at = CG_NOW - 60 };
	char fp[X509U_FP_SIZE], why[KC_REASON_SIZE];
	struct certcache_stats a;
	unsigned long reads;

	rev_good(t, rs, &rc, fp);
	/* The fast path: no row read, the memo used. */
	reads = revstore_reads(rs);
	a = stats();
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(rev_lookup(t, rs, &rc, why), SM_OK);
	ck_assert_uint_eq(revstore_reads(rs), reads);
	ck_assert_uint_eq(stats().memo_hits - a.memo_hits, 5);
	/* The worker's next answer: revoked. The next lookup reads it. */
	ck_assert(revstore_put(rs, fp, &r, CG_NOW) == SM_OK);
	ck_assert_int_eq(rev_lookup(t, rs, &rc, why), SM_ERR_NOKEY);
	ck_assert_str_eq(why, "certificate revoked on 2025-05-31 (keyCompromise)");
	ck_assert_uint_gt(revstore_reads(rs), reads);
	revstore_close(rs);
	trust_free(t);
}
END_TEST

/* smimectl revocation refresh writes from a process of its own: no
 * generation moves here, the store's data version does. */
START_TEST(test_a_kept_revocation_judgment_is_dropped_when_another_process_writes)
{
	struct trust *t = anchors("root");
	struct revstore *rs = rev_open();
	struct cfg_revocation rc = { .check = CFG_REV_SOFT, .grace_days = 3 };
	char fp[X509U_FP_SIZE], why[KC_REASON_SIZE], path[600];
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	unsigned long gen;

	rev_good(t, rs, &rc, fp);
	ck_assert_int_eq(rev_lookup(t, rs, &rc, why), SM_OK);
	gen = certcache_generation();
	snprintf(path, sizeof(path), "%s/cache.db.revocation", dir);
	ck_assert(sqlite3_open(path, &db) == SQLITE_OK);
	ck_assert(sqlite3_prepare_v2(db,
				     "UPDATE rev_status SET status = ?1,"
				     " revoked_at = ?2, reason = 1 WHERE fp = ?3",
				     -1, &q, NULL) == SQLITE_OK);
	sqlite3_bind_int(q, 1, REV_REVOKED);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)(CG_NOW - 60));
	sqlite3_bind_text(q, 3, fp, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_DONE);
	ck_assert_int_eq(sqlite3_changes(db), 1);
	sqlite3_finalize(q);
	sqlite3_close(db);
	ck_assert_uint_eq(certcache_generation(), gen);
	ck_assert_int_eq(rev_lookup(t, rs, &rc, why), SM_ERR_NOKEY);
	ck_assert_str_eq(why, "certificate revoked on 2025-05-31 (keyCompromise)");
	revstore_close(rs);
	trust_free(t);
}
END_TEST

/* ---- threads ---- */

enum { NTHREADS = 4, NLOOKUPS = 60, NWRITES = 20 };

static struct trust *shared_trust;
static atomic_int failures;

static void *
hammer(void *arg)
{
	char why[KC_REASON_SIZE];

	(void)arg;
	for (int i = 0; i < NLOOKUPS; i++) {
		X509 *x = NULL;

		if (keycache_select(kc, BOB, trust_store(shared_trust), false,
				    &x, NULL, why, sizeof(why)) != SM_OK ||
		    x == NULL)
			atomic_fetch_add(&failures, 1);
		X509_free(x);
	}
	return NULL;
}

static void *
writer(void *arg)
{
	(void)arg;
	for (int i = 0; i < NWRITES; i++) {
		certcache_bump();
		if (i % 5 == 0)
			store_leaf("carol@partner.example", inter);
	}
	return NULL;
}

START_TEST(test_threads_look_up_while_the_generation_moves)
{
	pthread_t t[NTHREADS + 1];

	shared_trust = anchors("root");
	store_leaf(BOB, inter);
	atomic_store(&failures, 0);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert(pthread_create(&t[i], NULL, hammer, NULL) == 0);
	ck_assert(pthread_create(&t[NTHREADS], NULL, writer, NULL) == 0);
	for (int i = 0; i <= NTHREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_msg(atomic_load(&failures) == 0,
		      "lookups that failed: got %d, want 0",
		      atomic_load(&failures));
	trust_free(shared_trust);
}
END_TEST

/* The same, through the revocation hook, while the worker writes good
 * answers (each one bumps the generation and drops the kept judgment). */
static struct revstore *shared_rs;
static char shared_fp[X509U_FP_SIZE];

static void *
rev_hammer(void *arg)
{
	struct cfg_revocation rc = { .check = CFG_REV_HARD, .grace_days = 0 };
	struct revstore_hook_arg ra = { shared_rs, &rc,
					trust_store(shared_trust) };
	struct kc_hook hook = { revstore_hook, &ra };
	char why[KC_REASON_SIZE];

	(void)arg;
	for (int i = 0; i < NLOOKUPS; i++) {
		X509 *x = NULL;

		if (keycache_select_hook(kc, BOB, trust_store(shared_trust),
					 false, &hook, &x, NULL, why,
					 sizeof(why)) != SM_OK ||
		    x == NULL)
			atomic_fetch_add(&failures, 1);
		X509_free(x);
	}
	return NULL;
}

static void *
rev_writer(void *arg)
{
	struct rev_result r = { .status = REV_GOOD, .source = REV_SRC_CRL,
				.reason = -1, .this_update = CG_NOW,
				.next_update = CG_NOW + CG_DAY };

	(void)arg;
	for (int i = 0; i < NWRITES; i++)
		if (revstore_put(shared_rs, shared_fp, &r, CG_NOW) != SM_OK)
			atomic_fetch_add(&failures, 1);
	return NULL;
}

START_TEST(test_threads_judge_revocation_while_answers_are_written)
{
	struct cfg_revocation rc = { .check = CFG_REV_HARD, .grace_days = 0 };
	pthread_t t[NTHREADS + 1];

	shared_trust = anchors("root");
	shared_rs = rev_open();
	rev_good(shared_trust, shared_rs, &rc, shared_fp);
	atomic_store(&failures, 0);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert(pthread_create(&t[i], NULL, rev_hammer, NULL) == 0);
	ck_assert(pthread_create(&t[NTHREADS], NULL, rev_writer, NULL) == 0);
	for (int i = 0; i <= NTHREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_msg(atomic_load(&failures) == 0,
		      "lookups or writes that failed: got %d, want 0",
		      atomic_load(&failures));
	revstore_close(shared_rs);
	trust_free(shared_trust);
}
END_TEST

START_TEST(test_a_full_cache_is_emptied_not_grown)
{
	unsigned char junk[64], *der = NULL;
	X509 *first = NULL, *x;
	int len;

	/* Garbage never enters. */
	memset(junk, 0x30, sizeof(junk));
	ck_assert_ptr_null(certcache_cert(junk, sizeof(junk), NULL));
	/* Distinct certificates (the signature's last bytes differ: they
	 * still decode), half as many again as the bound. */
	x = make(ee_key, inter, inter_key, "Partner", "email:" BOB, 365,
		 false);
	ck_assert((len = i2d_X509(x, &der)) > 2);
	X509_free(x);
	for (int i = 0; i < CERTCACHE_MAX + CERTCACHE_MAX / 2; i++) {
		der[len - 2] = (unsigned char)(i >> 8);
		der[len - 1] = (unsigned char)i;
		x = certcache_cert(der, (size_t)len, NULL);
		ck_assert_msg(x != NULL, "certificate %d did not decode", i);
		if (first == NULL)
			first = x;
		else
			X509_free(x);
	}
	ck_assert_msg(stats().entries <= CERTCACHE_MAX,
		      "entries: got %lu, want at most %d", stats().entries,
		      CERTCACHE_MAX);
	/* What was handed out outlives its entry. */
	ck_assert_ptr_nonnull(X509_get_subject_name(first));
	ck_assert_int_eq(X509_check_email(first, BOB, 0, 0), 1);
	X509_free(first);
	OPENSSL_free(der);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("certcache");
	TCase *tc = tcase_create("certcache");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_a_second_lookup_decodes_and_verifies_nothing);
	tcase_add_test(tc, test_a_negative_verdict_is_kept_too);
	tcase_add_test(tc, test_a_store_without_identity_is_verified_every_time);
	tcase_add_test(tc, test_a_verdict_is_dropped_when_the_trust_store_reloads);
	tcase_add_test(tc,
		       test_a_verdict_is_dropped_when_a_chain_certificate_expires);
	tcase_add_test(tc, test_a_verdict_is_at_most_the_ttl_old);
	tcase_add_loop_test(tc, test_a_verdict_is_dropped_when_the_cache_changes,
			    0, (int)(sizeof(writes) / sizeof(writes[0])));
	tcase_add_test(
		tc,
		test_a_kept_revocation_judgment_is_dropped_when_the_store_is_written);
	tcase_add_test(
		tc,
		test_a_kept_revocation_judgment_is_dropped_when_another_process_writes);
	tcase_add_test(tc, test_threads_look_up_while_the_generation_moves);
	tcase_add_test(tc,
		       test_threads_judge_revocation_while_answers_are_written);
	tcase_add_test(tc, test_a_full_cache_is_emptied_not_grown);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(suite());
}
