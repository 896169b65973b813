/*
 * check_keycache_pg.c — what the PostgreSQL backend does beyond the
 * contract (which check_keycache runs on both backends): the schema and
 * its advisory lock, two nodes sharing one database (freshness through
 * LISTEN/NOTIFY, concurrent harvests), and the database going down and
 * coming back (the local copy, max_stale, the outbox across a restart,
 * notifications resuming), and moving a SQLite cache there and back. On a private cluster the test starts itself.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "certcache.h"
#include "certgen.h"
#include "clock.h"
#include "keycache.h"
#include "testutil.h"
#include "x509util.h"

#define BOB "bob@partner.example"
#define CAROL "carol@partner.example"
#define DAVE "dave@partner.example"

static EVP_PKEY *ca_key, *ee_key[3];
static X509 *ca;
static char *pg_dir, *dir;
static char conninfo[512], outbox[600];

static void
keys_setup(void)
{
	ca_key = cg_ec();
	for (int i = 0; i < 3; i++)
		ee_key[i] = cg_ec();
	ca = cg_ca(ca_key, "Root CA");
	testutil_pg_start(&pg_dir, conninfo, sizeof(conninfo));
}

static void
keys_teardown(void)
{
	testutil_pg_stop(pg_dir);
	EVP_PKEY_free(ca_key);
	for (int i = 0; i < 3; i++)
		EVP_PKEY_free(ee_key[i]);
	X509_free(ca);
}

static void
setup(void)
{
	clock_set(CG_NOW);
	testutil_pg_restart(pg_dir); /* when a failed test left it down */
	testutil_pg_reset(conninfo);
	dir = testutil_tmpdir();
	snprintf(outbox, sizeof(outbox), "%s/outbox", dir);
}

static void
teardown(void)
{
	testutil_rmtree(dir);
	free(dir);
	clock_set(0);
}

static X509 *
leaf(int key, const char *addr, long nb_days)
{
	struct cg_spec s;
	char san[128];

	snprintf(san, sizeof(san), "email:%s", addr);
	memset(&s, 0, sizeof(s));
	s.key = ee_key[key];
	s.cn = "Partner";
	s.san = san;
	s.not_before = CG_NOW + nb_days * CG_DAY;
	s.not_after = CG_NOW + 300 * CG_DAY;
	s.ku = "critical,digitalSignature,keyAgreement";
	s.eku = "emailProtection";
	s.ca = ca;
	s.ca_key = ca_key;
	return cg_make(&s);
}

/* A node: its own keycache on the shared database. outbox: configure
 * one (the daemon does). */
static struct keycache *
node(bool with_outbox, time_t max_stale)
{
	struct keycache *k = NULL;
	struct kc_options o = { max_stale, with_outbox ? outbox : NULL };
	char err[256] = "";
	sm_status st = keycache_open("postgresql", conninfo, &k, err,
				     sizeof(err));

	ck_assert_msg(st == SM_OK, "open: got %s (%s), want ok",
		      sm_strstatus(st), err);
	ck_assert_int_eq(keycache_configure(k, &o, err, sizeof(err)), SM_OK);
	return k;
}

/* The fingerprint k selects for addr ("" none), and the status. */
static sm_status
sel(struct keycache *k, const char *addr, char fp[X509U_FP_SIZE])
{
	char reason[KC_REASON_SIZE];
	X509 *x = NULL;
	sm_status st = keycache_select(k, addr, NULL, false, &x, NULL, reason,
				       sizeof(reason));

	fp[0] = '\0';
	if (x)
		x509u_fingerprint(x, fp);
	X509_free(x);
	return st;
}

/* Wait up to ms for k to select want for addr. */
static bool
sel_within(struct keycache *k, const char *addr, const char *want, int ms)
{
	char fp[X509U_FP_SIZE];

	for (int t = 0; t <= ms; t += 20) {
		if (sel(k, addr, fp) == SM_OK && strcmp(fp, want) == 0)
			return true;
		usleep(20000);
	}
	return false;
}

static void
store(struct keycache *k, X509 *x, const char *addr)
{
	sm_status st = keycache_store(k, x, NULL, addr, CAP_KNOWN,
				      KC_SRC_HARVESTED, NULL, NULL);

	ck_assert_msg(st == SM_OK, "store %s: got %s, want ok", addr,
		      sm_strstatus(st));
}

static bool
listening(struct keycache *k)
{
	struct kc_health h;

	keycache_health(k, &h);
	return h.listening;
}

static void
wait_listening(struct keycache *k)
{
	for (int i = 0; i < 200 && !listening(k); i++)
		usleep(50000);
	ck_assert_msg(listening(k), "the listener never connected");
}

START_TEST(test_the_schema_is_versioned_in_the_database)
{
	struct keycache *k = node(false, 0);
	char err[256];
	int v = -1;

	ck_assert_int_eq(keycache_check(k, &v, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(v, 1);
	/* Independently of our code: what the database holds. */
	ck_assert_str_eq(testutil_pg_sql(conninfo,
					 "SELECT value FROM smime_meta WHERE "
					 "name = 'schema_version'"),
			 "1");
	ck_assert_str_eq(testutil_pg_sql(conninfo,
					 "SELECT count(*) FROM pg_tables WHERE "
					 "tablename IN ('certs', 'cert_emails',"
					 " 'bindings')"),
			 "3");
	keycache_close(k);
}
END_TEST

START_TEST(test_a_schema_from_a_newer_program_is_refused)
{
	struct keycache *k = node(false, 0);
	char err[256] = "";

	keycache_close(k);
	testutil_pg_sql(conninfo, "UPDATE smime_meta SET value = 99 WHERE "
				  "name = 'schema_version'");
	k = NULL;
	ck_assert_int_eq(keycache_open("postgresql", conninfo, &k, err,
				       sizeof(err)),
			 SM_ERR_DB);
	ck_assert_msg(strstr(err, "schema version 99 is newer than this "
				  "program's 1") != NULL,
		      "got error \"%s\"", err);
}
END_TEST

START_TEST(test_gateways_starting_at_once_migrate_once)
{
	enum { N = 4 };
	pid_t pid[N];
	int status;

	for (int i = 0; i < N; i++) {
		pid[i] = fork();
		ck_assert(pid[i] >= 0);
		if (pid[i] == 0) {
			struct keycache *k = NULL;
			char err[256];
			int v = 0;

			if (keycache_open("postgresql", conninfo, &k, err,
					  sizeof(err)) != SM_OK ||
			    keycache_check(k, &v, err, sizeof(err)) != SM_OK ||
			    v != 1)
				_exit(1);
			keycache_close(k);
			_exit(0);
		}
	}
	for (int i = 0; i < N; i++) {
		ck_assert(waitpid(pid[i], &status, 0) == pid[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "gateway %d: got exit %d, want 0", i,
			      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	ck_assert_str_eq(testutil_pg_sql(conninfo,
					 "SELECT count(*) FROM smime_meta"),
			 "2");
}
END_TEST

START_TEST(test_a_harvest_on_one_node_is_used_by_the_other_within_a_second)
{
	struct keycache *mx = node(true, 0), *relay = node(true, 0);
	X509 *x = leaf(0, BOB, -10);
	char fp[X509U_FP_SIZE], want[X509U_FP_SIZE];

	wait_listening(relay);
	/* The relay knows bob has none (and keeps that in its copy). */
	ck_assert_int_eq(sel(relay, BOB, fp), SM_ERR_NOKEY);
	ck_assert_int_eq(sel(relay, BOB, fp), SM_ERR_NOKEY);
	store(mx, x, BOB);
	x509u_fingerprint(x, want);
	ck_assert_msg(sel_within(relay, BOB, want, 1000),
		      "the relay did not use the new certificate within 1 s");
	X509_free(x);
	keycache_close(mx);
	keycache_close(relay);
}
END_TEST

START_TEST(test_concurrent_harvests_leave_one_row_per_certificate_and_one_selection)
{
	enum { N = 2, ROUNDS = 10 };
	X509 *a = leaf(0, BOB, -20), *b = leaf(1, BOB, -10);
	struct keycache *k1, *k2;
	char f1[X509U_FP_SIZE], f2[X509U_FP_SIZE], want[X509U_FP_SIZE];
	pid_t pid[N];
	int status;

	k1 = node(false, 0);
	keycache_close(k1); /* schema made; no handle across fork */
	for (int i = 0; i < N; i++) {
		pid[i] = fork();
		ck_assert(pid[i] >= 0);
		if (pid[i] == 0) {
			struct keycache *k = NULL;
			char err[256];

			if (keycache_open("postgresql", conninfo, &k, err,
					  sizeof(err)) != SM_OK)
				_exit(1);
			int bad = 0;

			for (int r = 0; r < ROUNDS && !bad; r++)
				bad = keycache_store(k, (r + i) % 2 ? a : b,
						     NULL, BOB, CAP_KNOWN,
						     KC_SRC_HARVESTED, NULL,
						     NULL) != SM_OK;
			keycache_close(k);
			X509_free(a); /* for Valgrind's count at exit */
			X509_free(b);
			_exit(bad ? 2 : 0);
		}
	}
	for (int i = 0; i < N; i++) {
		ck_assert(waitpid(pid[i], &status, 0) == pid[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "gateway %d: got exit %d, want 0", i,
			      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	ck_assert_str_eq(testutil_pg_sql(conninfo,
					 "SELECT count(*) FROM certs"),
			 "2");
	ck_assert_str_eq(testutil_pg_sql(conninfo,
					 "SELECT count(*) FROM bindings"),
			 "2");
	k1 = node(false, 0);
	k2 = node(false, 0);
	ck_assert_int_eq(sel(k1, BOB, f1), SM_OK);
	ck_assert_int_eq(sel(k2, BOB, f2), SM_OK);
	x509u_fingerprint(b, want); /* newer notBefore */
	ck_assert_str_eq(f1, want);
	ck_assert_str_eq(f2, want);
	keycache_close(k1);
	keycache_close(k2);
	X509_free(a);
	X509_free(b);
}
END_TEST

START_TEST(test_with_the_database_down_the_copy_serves_and_harvests_wait_on_disk)
{
	struct keycache *mx = node(true, 0), *relay = node(true, 0);
	X509 *xb = leaf(0, BOB, -10), *xc = leaf(1, CAROL, -10),
	     *xd = leaf(2, DAVE, -10);
	char fp[X509U_FP_SIZE], fb[X509U_FP_SIZE], fc[X509U_FP_SIZE],
		fd[X509U_FP_SIZE];
	struct kc_health h;

	x509u_fingerprint(xb, fb);
	x509u_fingerprint(xc, fc);
	x509u_fingerprint(xd, fd);
	wait_listening(relay);
	store(mx, xb, BOB);
	ck_assert(sel_within(relay, BOB, fb, 1000));
	/* Once the notification is in, a look-up fills the copy. */
	usleep(300000);
	ck_assert_int_eq(sel(relay, BOB, fp), SM_OK);
	/* The relay has looked dave up: none. */
	ck_assert_int_eq(sel(relay, DAVE, fp), SM_ERR_NOKEY);

	testutil_pg_halt(pg_dir);
	/* Cached: still encrypted to. Not cached: unavailable, not "none". */
	ck_assert_int_eq(sel(relay, BOB, fp), SM_OK);
	ck_assert_str_eq(fp, fb);
	ck_assert_int_eq(sel(relay, CAROL, fp), SM_ERR_DB);
	/* A harvest on the MX waits in its outbox, and survives a restart
	 * of the MX daemon. */
	store(mx, xc, CAROL);
	ck_assert_uint_eq(keycache_outbox_count(outbox), 1);
	keycache_health(mx, &h);
	ck_assert(!h.connected);
	ck_assert_uint_eq(h.outbox, 1);
	keycache_close(mx);
	mx = node(true, 0); /* starts with the database down */
	keycache_health(mx, &h);
	ck_assert(!h.connected);

	testutil_pg_restart(pg_dir);
	/* Replayed once the MX reconnects; the relay hears of it. */
	ck_assert_msg(sel_within(relay, CAROL, fc, 40000),
		      "carol's harvest from the outage never arrived");
	ck_assert_uint_eq(keycache_outbox_count(outbox), 0);
	/* Notifications resumed without a restart: the relay's "none" for
	 * dave is dropped when the MX harvests dave. */
	wait_listening(relay);
	ck_assert_int_eq(sel(relay, DAVE, fp), SM_ERR_NOKEY);
	store(mx, xd, DAVE);
	ck_assert_msg(sel_within(relay, DAVE, fd, 1000),
		      "after the restart the relay missed dave's harvest");
	keycache_close(mx);
	keycache_close(relay);
	X509_free(xb);
	X509_free(xc);
	X509_free(xd);
}
END_TEST

START_TEST(test_the_copy_is_not_served_past_max_stale)
{
	struct keycache *relay = node(true, 5), *mx = node(false, 0);
	X509 *xb = leaf(0, BOB, -10);
	char fp[X509U_FP_SIZE], fb[X509U_FP_SIZE];

	x509u_fingerprint(xb, fb);
	wait_listening(relay);
	store(mx, xb, BOB);
	keycache_close(mx);
	ck_assert(sel_within(relay, BOB, fb, 1000));
	usleep(300000);
	ck_assert_int_eq(sel(relay, BOB, fp), SM_OK);
	testutil_pg_halt(pg_dir);
	/* Within max_stale (5 s; the halt itself takes a moment): served. */
	ck_assert_int_eq(sel(relay, BOB, fp), SM_OK);
	sleep(6);
	ck_assert_int_eq(sel(relay, BOB, fp), SM_ERR_DB);
	testutil_pg_restart(pg_dir);
	keycache_close(relay);
	X509_free(xb);
}
END_TEST

/* Every field a copy must keep. */
static void
same_records(const struct kc_record *a, size_t na, const struct kc_record *b,
	     size_t nb, const char *what)
{
	ck_assert_msg(na == nb, "%s: got %zu records, want %zu", what, nb, na);
	for (size_t i = 0; i < na; i++) {
		const struct kc_record *x = &a[i], *y = &b[i];

		ck_assert_msg(strcmp(x->address, y->address) == 0 &&
				      strcmp(x->fingerprint, y->fingerprint) == 0,
			      "%s: record %zu: got %s %.12s, want %s %.12s",
			      what, i, y->address, y->fingerprint, x->address,
			      x->fingerprint);
		ck_assert_msg(x->status == y->status && x->caps == y->caps &&
				      x->source == y->source &&
				      x->assurance == y->assurance &&
				      x->signer == y->signer &&
				      strcmp(x->enc_fp, y->enc_fp) == 0 &&
				      x->signing_time == y->signing_time &&
				      x->first_seen == y->first_seen &&
				      x->last_seen == y->last_seen,
			      "%s: %s %.12s: binding fields differ (status "
			      "%s/%s, enc %.12s/%.12s, seen %lld/%lld)",
			      what, x->address, x->fingerprint,
			      kc_status_name(x->status),
			      kc_status_name(y->status), x->enc_fp, y->enc_fp,
			      (long long)x->first_seen,
			      (long long)y->first_seen);
		ck_assert_msg(x->der_len == y->der_len &&
				      memcmp(x->der, y->der, x->der_len) == 0 &&
				      x->chain_len == y->chain_len &&
				      x->n_emails == y->n_emails &&
				      x->can_encrypt == y->can_encrypt &&
				      strcmp(x->subject, y->subject) == 0,
			      "%s: %s: certificate fields differ", what,
			      x->address);
	}
}

START_TEST(test_a_sqlite_cache_moves_to_postgresql_and_back_without_loss)
{
	struct keycache *sq = NULL, *pg = node(false, 0), *back = NULL;
	X509 *a = leaf(0, BOB, -20), *b = leaf(1, BOB, -10),
	     *c = leaf(2, CAROL, -10);
	struct kc_pairing p;
	struct kc_record *v0, *v1, *v2;
	size_t n0, n1, n2, n;
	char path[700], err[256], fp[X509U_FP_SIZE];
	STACK_OF(X509) *chain = sk_X509_new_null();

	snprintf(path, sizeof(path), "%s/old.db", dir);
	ck_assert_int_eq(keycache_open("sqlite", path, &sq, err, sizeof(err)),
			 SM_OK);
	/* A pairing with a separate encryption certificate, a chain, a
	 * removed binding, and times that differ. */
	sk_X509_push(chain, ca);
	memset(&p, 0, sizeof(p));
	p.signer = a;
	p.enc = b;
	p.chain = chain;
	p.address = BOB;
	p.caps = CAP_KNOWN | 1;
	p.signing_time = CG_NOW - 3600;
	p.assurance = KC_AS_ADMIN;
	p.source = KC_SRC_IMPORTED;
	ck_assert_int_eq(keycache_store_pairing(sq, &p, NULL, NULL), SM_OK);
	clock_set(CG_NOW + 500);
	ck_assert_int_eq(keycache_store(sq, c, NULL, CAROL, CAP_KNOWN,
					KC_SRC_HARVESTED, NULL, NULL),
			 SM_OK);
	x509u_fingerprint(c, fp);
	ck_assert_int_eq(keycache_remove_fingerprint(sq, fp, NULL), SM_OK);

	ck_assert_int_eq(keycache_copy(sq, pg, &n), SM_OK);
	ck_assert_uint_eq(n, 3);
	snprintf(path, sizeof(path), "%s/back.db", dir);
	ck_assert_int_eq(keycache_open("sqlite", path, &back, err,
				       sizeof(err)),
			 SM_OK);
	ck_assert_int_eq(keycache_copy(pg, back, &n), SM_OK);
	ck_assert_int_eq(keycache_list(sq, -1, &v0, &n0), SM_OK);
	ck_assert_int_eq(keycache_list(pg, -1, &v1, &n1), SM_OK);
	ck_assert_int_eq(keycache_list(back, -1, &v2, &n2), SM_OK);
	same_records(v0, n0, v1, n1, "sqlite to postgresql");
	same_records(v0, n0, v2, n2, "and back to sqlite");
	/* And it still selects what it did. */
	x509u_fingerprint(b, fp);
	{
		char got[X509U_FP_SIZE];

		ck_assert_int_eq(sel(pg, BOB, got), SM_OK);
		ck_assert_str_eq(got, fp);
	}
	kc_records_free(v0, n0);
	kc_records_free(v1, n1);
	kc_records_free(v2, n2);
	sk_X509_free(chain);
	keycache_close(sq);
	keycache_close(pg);
	keycache_close(back);
	X509_free(a);
	X509_free(b);
	X509_free(c);
}
END_TEST

START_TEST(test_a_malformed_conninfo_is_a_configuration_error)
{
	struct keycache *k = NULL;
	char err[256] = "";

	ck_assert_int_eq(keycache_open("postgresql", "host=x nonsense=1", &k,
				       err, sizeof(err)),
			 SM_ERR_CONFIG);
	ck_assert_str_eq(err,
			 "cache.conninfo: invalid connection option "
			 "\"nonsense\"");
}
END_TEST

/* Another gateway's write (here: another process, so that only this
 * process's listener can move the generation) drops the verdicts and the
 * RCPT-time look-ups this gateway keeps (certcache.h, rcptmemo.h). The
 * other gateway is forked before this one opens its cache, so that it
 * inherits no handle, connection or listener thread (Valgrind counts a
 * child's inherited state as lost when it exits), and writes when told. */
START_TEST(test_a_write_by_another_gateway_moves_the_generation)
{
	struct keycache *relay;
	X509 *x = leaf(1, CAROL, -10);
	unsigned long gen;
	int status = -1, go[2];
	pid_t pid;
	char c = 0;

	ck_assert(pipe(go) == 0);
	if ((pid = fork()) == 0) {
		struct keycache *other = NULL;
		char err[256];
		int rc = 1;

		close(go[1]);
		if (read(go[0], &c, 1) == 1 &&
		    keycache_open("postgresql", conninfo, &other, err, sizeof(err)) == SM_OK)
			rc = keycache_store(other, x, NULL, CAROL, CAP_KNOWN, KC_SRC_HARVESTED,
			    NULL, NULL) == SM_OK ? 0 : 2;
		keycache_close(other);
		X509_free(x); /* for Valgrind's count at exit */
		close(go[0]);
		_exit(rc);
	}
	ck_assert(pid > 0);
	close(go[0]);
	relay = node(true, 0);
	wait_listening(relay);
	gen = certcache_generation();
	ck_assert(write(go[1], "g", 1) == 1);
	close(go[1]);
	ck_assert(waitpid(pid, &status, 0) == pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the other gateway's store failed (exit %d)",
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	for (int t = 0; t < 2000 && certcache_generation() == gen; t += 20)
		usleep(20000);
	ck_assert_msg(certcache_generation() != gen,
		      "the generation did not move within 2 s of another "
		      "gateway's write");
	X509_free(x);
	keycache_close(relay);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("keycache_pg");
	TCase *tc = tcase_create("postgresql");

	tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_the_schema_is_versioned_in_the_database);
	tcase_add_test(tc, test_a_schema_from_a_newer_program_is_refused);
	tcase_add_test(tc, test_gateways_starting_at_once_migrate_once);
	tcase_add_test(tc, test_a_harvest_on_one_node_is_used_by_the_other_within_a_second);
	tcase_add_test(tc, test_a_write_by_another_gateway_moves_the_generation);
	tcase_add_test(tc, test_concurrent_harvests_leave_one_row_per_certificate_and_one_selection);
	tcase_add_test(tc, test_with_the_database_down_the_copy_serves_and_harvests_wait_on_disk);
	tcase_add_test(tc, test_the_copy_is_not_served_past_max_stale);
	tcase_add_test(tc, test_a_sqlite_cache_moves_to_postgresql_and_back_without_loss);
	tcase_add_test(tc, test_a_malformed_conninfo_is_a_configuration_error);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(suite());
}
