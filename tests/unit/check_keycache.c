/*
 * check_keycache.c — the key cache: storing, renewal, selection, removal,
 * listing, the SQLite schema, concurrent threads and processes, and crash
 * safety under SIGKILL. The contract tests (everything not about SQLite's
 * file) run twice: on SQLite and on a private PostgreSQL cluster.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "certgen.h"
#include "clock.h"
#include "keycache.h"
#include "testutil.h"
#include "x509util.h"

#define BOB "bob@partner.example"
#define KU_EC "critical,digitalSignature,keyAgreement"
#define KU_SIGN "critical,digitalSignature"

/* ---- fixture ---- */

enum { NKEYS = 4 };

static EVP_PKEY *ca_key, *other_ca_key, *inter_key, *ee_keys[NKEYS];
static X509 *ca, *other_ca, *inter;
static X509_STORE *trust;

static void
keys_setup(void)
{
	struct cg_spec is;
	int i;

	ca_key = cg_ec();
	other_ca_key = cg_ec();
	inter_key = cg_ec();
	for (i = 0; i < NKEYS; i++)
		ee_keys[i] = cg_ec();
	ca = cg_ca(ca_key, "Root CA");
	other_ca = cg_ca(other_ca_key, "Other CA");
	memset(&is, 0, sizeof(is));
	is.key = inter_key;
	is.ca = ca;
	is.ca_key = ca_key;
	is.cn = "Intermediate CA";
	is.not_before = CG_NOW - 1000 * CG_DAY;
	is.not_after = CG_NOW + 1000 * CG_DAY;
	is.ku = "critical,keyCertSign,cRLSign";
	is.is_ca = true;
	inter = cg_make(&is);
	trust = cg_store(ca);
}

static void
keys_teardown(void)
{
	int i;

	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_ca_key);
	EVP_PKEY_free(inter_key);
	for (i = 0; i < NKEYS; i++)
		EVP_PKEY_free(ee_keys[i]);
	X509_free(ca);
	X509_free(other_ca);
	X509_free(inter);
	X509_STORE_free(trust);
}

static char *dir;
static char dbpath[512];
static struct keycache *kc;
/* The backend under test and its target (a path or a conninfo). */
static const char *kc_backend = "sqlite";
static char kc_target[512];
static char *pg_dir;

static void
pg_cluster_setup(void)
{
	kc_backend = "postgresql";
	testutil_pg_start(&pg_dir, kc_target, sizeof(kc_target));
}

static void
pg_cluster_teardown(void)
{
	testutil_pg_stop(pg_dir);
	pg_dir = NULL;
	kc_backend = "sqlite";
}

static void
cache_setup(void)
{
	char err[256];
	sm_status st;

	clock_set(CG_NOW);
	dir = testutil_tmpdir();
	ck_assert(dir != NULL);
	snprintf(dbpath, sizeof(dbpath), "%s/cache.db", dir);
	if (strcmp(kc_backend, "sqlite") == 0)
		snprintf(kc_target, sizeof(kc_target), "%s", dbpath);
	else
		testutil_pg_reset(kc_target);
	st = keycache_open(kc_backend, kc_target, &kc, err, sizeof(err));
	ck_assert_msg(st == SM_OK, "open: got %s (%s), want ok",
		      sm_strstatus(st), err);
}

static void
cache_teardown(void)
{
	keycache_close(kc);
	kc = NULL;
	testutil_rmtree(dir);
	free(dir);
	dir = NULL;
	clock_set(0);
}

/* An end-entity certificate for san (X509v3 config text), valid from
 * now + nb days to now + na days. issuer: 0 root, 1 other (untrusted)
 * root, 2 intermediate, 3 self-signed. */
static X509 *
leaf_eku(int key, const char *san, long nb, long na, int issuer,
	 const char *ku, const char *eku)
{
	struct cg_spec s;

	memset(&s, 0, sizeof(s));
	s.key = ee_keys[key];
	s.cn = "Partner";
	s.san = san;
	s.not_before = CG_NOW + nb * CG_DAY;
	s.not_after = CG_NOW + na * CG_DAY;
	s.ku = ku ? ku : KU_EC;
	s.eku = eku ? eku : "emailProtection";
	switch (issuer) {
	case 0: s.ca = ca; s.ca_key = ca_key; break;
	case 1: s.ca = other_ca; s.ca_key = other_ca_key; break;
	case 3: break; /* self-signed */
	default: s.ca = inter; s.ca_key = inter_key; break;
	}
	return cg_make(&s);
}

static X509 *
leaf(int key, const char *san, long nb, long na, int issuer, const char *ku)
{
	return leaf_eku(key, san, nb, na, issuer, ku, NULL);
}

static void
fp_of(X509 *x, char fp[X509U_FP_SIZE])
{
	ck_assert(x509u_fingerprint(x, fp) == SM_OK);
}

static void
store_ok(X509 *x, const char *addr, caps_t caps, enum keycache_outcome want,
	 const char *want_old)
{
	enum keycache_outcome got = (enum keycache_outcome)-1;
	char old[X509U_FP_SIZE];
	sm_status st;

	st = keycache_store(kc, x, NULL, addr, caps, KC_SRC_HARVESTED, &got,
			    old);
	ck_assert_msg(st == SM_OK, "store: got %s, want ok", sm_strstatus(st));
	ck_assert_msg(got == want, "store outcome: got %s, want %s",
		      keycache_outcome_name(got), keycache_outcome_name(want));
	ck_assert_msg(strcmp(old, want_old ? want_old : "") == 0,
		      "old fingerprint: got \"%s\", want \"%s\"", old,
		      want_old ? want_old : "");
}

/* The fingerprint select returns, or its reason. */
static sm_status
select_fp(const char *addr, X509_STORE *store, char fp[X509U_FP_SIZE],
	  caps_t *caps, char *reason)
{
	X509 *x = NULL;
	sm_status st;

	fp[0] = '\0';
	st = keycache_select(kc, addr, store, false, &x, caps, reason,
			     KC_REASON_SIZE);
	if (x) {
		fp_of(x, fp);
		X509_free(x);
	}
	return st;
}

/* The one record of (address, fp). */
static struct kc_record *
find_binding(struct kc_record *v, size_t n, const char *fp)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].fingerprint, fp) == 0)
			return &v[i];
	return NULL;
}

/* ---- schema ---- */

START_TEST(test_a_new_cache_has_schema_version_wal_and_integrity)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char err[256];
	int v = -1;

	ck_assert_int_eq(keycache_check(kc, &v, err, sizeof(err)), SM_OK);
	ck_assert_msg(v == 2, "schema version: got %d, want 2", v);

	/* Independently of our code: what is in the file. */
	ck_assert(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) ==
		  SQLITE_OK);
	ck_assert(sqlite3_prepare_v2(db, "SELECT version FROM schema_version",
				     -1, &s, NULL) == SQLITE_OK);
	ck_assert(sqlite3_step(s) == SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(s, 0), 2);
	sqlite3_finalize(s);
	ck_assert(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL) ==
		  SQLITE_OK);
	ck_assert(sqlite3_step(s) == SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	ck_assert(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s,
				     NULL) == SQLITE_OK);
	ck_assert(sqlite3_step(s) == SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_a_cache_from_a_newer_program_is_refused)
{
	struct keycache *k2 = NULL;
	sqlite3 *db;
	char err[256] = "";
	sm_status st;

	ck_assert(sqlite3_open(dbpath, &db) == SQLITE_OK);
	ck_assert(sqlite3_exec(db, "UPDATE schema_version SET version = 99",
			       NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	st = keycache_open("sqlite", dbpath, &k2, err, sizeof(err));
	ck_assert_msg(st == SM_ERR_DB && k2 == NULL,
		      "open: got %s, want key cache error", sm_strstatus(st));
	ck_assert_msg(strstr(err, "schema version 99, newer than this "
				  "program's 2") != NULL,
		      "got error \"%s\"", err);
}
END_TEST

/* One schema-1 binding as the release left it. */
struct v1_row {
	char addr[128], fp[X509U_FP_SIZE];
	bool removed;
	time_t nb;
};

static size_t
v1_rows(const char *path, struct v1_row *rows, size_t max, int *ncerts)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	size_t n = 0;

	ck_assert(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
		  SQLITE_OK);
	ck_assert(sqlite3_prepare_v2(db, "SELECT version FROM schema_version",
				     -1, &s, NULL) == SQLITE_OK);
	ck_assert(sqlite3_step(s) == SQLITE_ROW);
	ck_assert_msg(sqlite3_column_int(s, 0) == 1,
		      "the fixture must be a schema-1 cache");
	sqlite3_finalize(s);
	ck_assert(sqlite3_prepare_v2(db, "SELECT count(*) FROM certs", -1, &s,
				     NULL) == SQLITE_OK);
	ck_assert(sqlite3_step(s) == SQLITE_ROW);
	*ncerts = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	ck_assert(sqlite3_prepare_v2(db,
				     "SELECT b.address_lc, c.fingerprint,"
				     " b.status = 'removed', c.not_before"
				     " FROM bindings b JOIN certs c"
				     " ON c.id = b.cert_id",
				     -1, &s, NULL) == SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW && n < max) {
		snprintf(rows[n].addr, sizeof(rows[n].addr), "%s",
			 (const char *)sqlite3_column_text(s, 0));
		snprintf(rows[n].fp, sizeof(rows[n].fp), "%s",
			 (const char *)sqlite3_column_text(s, 1));
		rows[n].removed = sqlite3_column_int(s, 2) != 0;
		rows[n].nb = (time_t)sqlite3_column_int64(s, 3);
		n++;
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/* What the rule must pick for a migrated address: the newest notBefore
 * among its bindings that are not removed ("" when none). */
static void
v1_expected(const struct v1_row *rows, size_t n, const char *addr,
	    char fp[X509U_FP_SIZE])
{
	time_t best = 0;
	size_t i;

	fp[0] = '\0';
	for (i = 0; i < n; i++)
		if (strcmp(rows[i].addr, addr) == 0 && !rows[i].removed &&
		    (fp[0] == '\0' || rows[i].nb > best)) {
			best = rows[i].nb;
			memcpy(fp, rows[i].fp, X509U_FP_SIZE);
		}
}

/* tests/data/keycache/v1.db was written by release 0.1.0's own code (see
 * v1-gen.c next to it): opening it migrates it, and no certificate or
 * binding is lost. */
START_TEST(test_a_release_cache_is_migrated_without_losing_a_certificate)
{
	struct v1_row rows[32];
	struct kc_record *v = NULL;
	struct keycache *k2 = NULL;
	char path[600], err[256], want[X509U_FP_SIZE], got[X509U_FP_SIZE];
	char reason[KC_REASON_SIZE];
	unsigned char *data;
	size_t n, len, nv = 0, i, j;
	sqlite3 *db;
	sqlite3_stmt *s;
	int ncerts = 0, ver = 0;
	FILE *f;

	data = testutil_slurp(testutil_path("tests/data/keycache/v1.db"), &len);
	ck_assert_msg(data != NULL, "cannot read tests/data/keycache/v1.db");
	snprintf(path, sizeof(path), "%s/v1.db", dir);
	ck_assert((f = fopen(path, "wb")) != NULL);
	ck_assert(fwrite(data, 1, len, f) == len);
	fclose(f);
	free(data);
	n = v1_rows(path, rows, 32, &ncerts);
	ck_assert_msg(n == 8 && ncerts == 7, "fixture: got %zu bindings, %d "
		      "certificates; want 8, 7", n, ncerts);

	clock_set(CG_NOW + CG_DAY);
	ck_assert_msg(keycache_open("sqlite", path, &k2, err, sizeof(err)) ==
			  SM_OK,
		      "open: %s", err);
	ck_assert_int_eq(keycache_check(k2, &ver, err, sizeof(err)), SM_OK);
	ck_assert_msg(ver == 2, "schema version: got %d, want 2", ver);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(keycache_find_address(k2, rows[i].addr, &v, &nv),
				 SM_OK);
		for (j = 0; j < nv; j++)
			if (strcmp(v[j].fingerprint, rows[i].fp) == 0)
				break;
		ck_assert_msg(j < nv, "%s lost sha256 %.16s", rows[i].addr,
			      rows[i].fp);
		ck_assert_msg((v[j].status == KC_ST_REMOVED) == rows[i].removed,
			      "%s sha256 %.16s: got %s", rows[i].addr,
			      rows[i].fp, kc_status_name(v[j].status));
		kc_records_free(v, nv);
		/* The rule picks the newest: bob's renewal takes effect
		 * although schema 1 preferred his old certificate. */
		v1_expected(rows, n, rows[i].addr, want);
		got[0] = '\0';
		{
			X509 *x = NULL;
			sm_status st = keycache_select(k2, rows[i].addr, NULL,
						       false, &x, NULL, reason,
						       sizeof(reason));

			if (x) {
				fp_of(x, got);
				X509_free(x);
			}
			ck_assert_msg(strcmp(got, want) == 0 &&
					  (want[0] || st == SM_ERR_NOKEY),
				      "%s: selected %.16s (%s), want %.16s",
				      rows[i].addr, got, reason, want);
		}
	}
	/* Two spellings of one address became one binding; eve's
	 * self-signed certificate is known as such. */
	ck_assert_int_eq(keycache_find_address(k2, "Bob.Smith@Partner.example",
					       &v, &nv),
			 SM_OK);
	ck_assert_uint_eq(nv, 1);
	kc_records_free(v, nv);
	ck_assert_int_eq(keycache_find_address(k2, "eve@partner.example", &v,
					       &nv),
			 SM_OK);
	ck_assert(nv == 1 && v[0].assurance == KC_AS_SELF_SIGNED);
	kc_records_free(v, nv);
	keycache_close(k2);

	/* Independently: every certificate row is still there. */
	ck_assert(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
		  SQLITE_OK);
	ck_assert(sqlite3_prepare_v2(db, "SELECT count(*) FROM certs", -1, &s,
				     NULL) == SQLITE_OK);
	ck_assert(sqlite3_step(s) == SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(s, 0), ncerts);
	sqlite3_finalize(s);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_an_unknown_backend_is_a_configuration_error)
{
	struct keycache *k2 = NULL;
	char err[256] = "";

	ck_assert_int_eq(keycache_open("postgres", dbpath, &k2, err,
				       sizeof(err)),
			 SM_ERR_CONFIG);
	ck_assert_str_eq(err, "unknown key cache backend \"postgres\"");
}
END_TEST

START_TEST(test_an_unopenable_path_fails_with_the_path_in_the_message)
{
	struct keycache *k2 = NULL;
	char err[256] = "";

	ck_assert_int_eq(keycache_open("sqlite", "/nonexistent/dir/c.db", &k2,
				       err, sizeof(err)),
			 SM_ERR_DB);
	ck_assert_msg(strstr(err, "/nonexistent/dir/c.db") != NULL,
		      "got error \"%s\"", err);
}
END_TEST

/* ---- store ---- */

START_TEST(test_an_empty_cache_has_no_certificate_exchanged)
{
	char fp[X509U_FP_SIZE], reason[KC_REASON_SIZE];

	ck_assert_int_eq(select_fp(BOB, trust, fp, NULL, reason), SM_ERR_NOKEY);
	ck_assert_str_eq(reason, "no certificate exchanged");
}
END_TEST

START_TEST(test_a_stored_certificate_is_selected_with_its_caps)
{
	X509 *x = leaf(0, "email:" BOB, -30, 300, 0, NULL);
	char fp[X509U_FP_SIZE], got[X509U_FP_SIZE], reason[KC_REASON_SIZE];
	caps_t caps = 0;

	fp_of(x, fp);
	store_ok(x, BOB, CAP_KNOWN | CAP_AES128_CBC | CAP_DES3,
		 KC_INSERTED, NULL);
	ck_assert_int_eq(select_fp(BOB, trust, got, &caps, reason), SM_OK);
	ck_assert_str_eq(got, fp);
	ck_assert_uint_eq(caps, CAP_KNOWN | CAP_AES128_CBC | CAP_DES3);
	X509_free(x);
}
END_TEST

START_TEST(test_reharvesting_the_same_certificate_updates_last_seen_and_caps)
{
	X509 *x = leaf(0, "email:" BOB, -30, 300, 0, NULL);
	struct kc_record *v = NULL;
	size_t n = 0;
	char fp[X509U_FP_SIZE];

	fp_of(x, fp);
	store_ok(x, BOB, CAP_KNOWN | CAP_AES128_CBC, KC_INSERTED, NULL);
	clock_set(CG_NOW + 3600);
	store_ok(x, BOB, CAP_KNOWN | CAP_AES256_GCM, KC_UPDATED, NULL);
	/* No capabilities in this signature: keep what we knew. */
	clock_set(CG_NOW + 7200);
	store_ok(x, BOB, 0, KC_UPDATED, NULL);

	ck_assert_int_eq(keycache_find_address(kc, BOB, &v, &n), SM_OK);
	ck_assert_msg(n == 1, "got %zu records, want 1", n);
	ck_assert_str_eq(v[0].fingerprint, fp);
	ck_assert_msg(v[0].first_seen == CG_NOW, "first_seen: got %lld, want %lld",
		      (long long)v[0].first_seen, (long long)CG_NOW);
	ck_assert_msg(v[0].last_seen == CG_NOW + 7200,
		      "last_seen: got %lld, want %lld",
		      (long long)v[0].last_seen, (long long)CG_NOW + 7200);
	ck_assert_msg(v[0].caps == (CAP_KNOWN | CAP_AES256_GCM),
		      "caps: got %#x, want %#x", v[0].caps,
		      CAP_KNOWN | CAP_AES256_GCM);
	ck_assert_int_eq(v[0].status, KC_ST_ACTIVE);
	kc_records_free(v, n);
	X509_free(x);
}
END_TEST

START_TEST(test_renewal_with_a_new_key_supersedes_and_reports_a_key_change)
{
	X509 *a = leaf(0, "email:" BOB, -300, 60, 0, NULL);
	X509 *b = leaf(1, "email:" BOB, -1, 700, 0, NULL);
	char fa[X509U_FP_SIZE], fb[X509U_FP_SIZE], got[X509U_FP_SIZE];
	char reason[KC_REASON_SIZE];
	struct kc_record *v = NULL, *ra, *rb;
	size_t n = 0;

	fp_of(a, fa);
	fp_of(b, fb);
	store_ok(a, BOB, 0, KC_INSERTED, NULL);
	store_ok(b, BOB, 0, KC_SUPERSEDED_OLD, fa);
	ck_assert_int_eq(select_fp(BOB, trust, got, NULL, reason), SM_OK);
	ck_assert_msg(strcmp(got, fb) == 0, "selected %s, want the renewed %s",
		      got, fb);
	ck_assert_int_eq(keycache_find_address(kc, BOB, &v, &n), SM_OK);
	ck_assert_uint_eq(n, 2);
	ra = find_binding(v, n, fa);
	rb = find_binding(v, n, fb);
	ck_assert(ra && rb);
	ck_assert_msg(ra->status == KC_ST_SUPERSEDED,
		      "old status: got %s, want superseded",
		      kc_status_name(ra->status));
	ck_assert_msg(rb->status == KC_ST_ACTIVE,
		      "new status: got %s, want active",
		      kc_status_name(rb->status));
	kc_records_free(v, n);
	X509_free(a);
	X509_free(b);
}
END_TEST

START_TEST(test_renewal_with_the_same_key_is_not_a_key_change)
{
	X509 *a = leaf(0, "email:" BOB, -300, 60, 0, NULL);
	X509 *b = leaf(0, "email:" BOB, -1, 700, 0, NULL);
	char fa[X509U_FP_SIZE];

	fp_of(a, fa);
	store_ok(a, BOB, 0, KC_INSERTED, NULL);
	store_ok(b, BOB, 0, KC_RENEWED_SAME_KEY, fa);
	X509_free(a);
	X509_free(b);
}
END_TEST

START_TEST(test_an_older_certificate_arriving_later_is_kept_as_history)
{
	X509 *newer = leaf(1, "email:" BOB, -1, 700, 0, NULL);
	X509 *older = leaf(0, "email:" BOB, -300, 60, 0, NULL);
	char fn[X509U_FP_SIZE], fo[X509U_FP_SIZE], got[X509U_FP_SIZE];
	char reason[KC_REASON_SIZE];
	struct kc_record *v = NULL, *r;
	size_t n = 0;

	fp_of(newer, fn);
	fp_of(older, fo);
	store_ok(newer, BOB, 0, KC_INSERTED, NULL);
	store_ok(older, BOB, 0, KC_OLDER_KEPT_AS_HISTORY, fn);
	ck_assert_int_eq(select_fp(BOB, trust, got, NULL, reason), SM_OK);
	ck_assert_str_eq(got, fn);
	ck_assert_int_eq(keycache_find_address(kc, BOB, &v, &n), SM_OK);
	r = find_binding(v, n, fo);
	ck_assert(r && r->status == KC_ST_SUPERSEDED);
	kc_records_free(v, n);
	X509_free(newer);
	X509_free(older);
}
END_TEST

/* ---- selection table ---- */

struct sel_cert {
	int key;
	long nb, na; /* days from now */
	int issuer;  /* 0 root, 1 untrusted root, 2 intermediate */
	const char *ku;
	bool with_chain;
	const char *eku; /* NULL: emailProtection */
};

struct sel_case {
	const char *name;
	struct sel_cert certs[4];
	int ncerts;
	int want;	  /* index selected, -1: none */
	const char *want_reason;
};

static const struct sel_case sel_cases[] = {
	{ "the newest notBefore is chosen",
	  { { 0, -200, 200, 0, NULL, false, NULL },
	    { 1, -10, 200, 0, NULL, false, NULL } },
	  2, 1, NULL },
	{ "an expired newer certificate falls back to the older one",
	  { { 0, -400, 300, 0, NULL, false, NULL },
	    { 1, -10, -5, 0, NULL, false, NULL } },
	  2, 0, NULL },
	{ "an expired certificate gives its expiry date",
	  { { 0, -400, -122, 0, NULL, false, NULL } },
	  1, -1, "certificate expired on 2025-01-30" },
	{ "a certificate from an untrusted CA is not used",
	  { { 0, -10, 200, 1, NULL, false, NULL } },
	  1, -1, "certificate not trusted" },
	{ "a not yet valid certificate is not used",
	  { { 0, 5, 200, 0, NULL, false, NULL } },
	  1, -1, "certificate not yet valid" },
	{ "a signing-only certificate is not used",
	  { { 0, -10, 200, 0, KU_SIGN, false, NULL } },
	  1, -1, "certificate not usable for encryption" },
	{ "a certificate without emailProtection is not used",
	  { { 0, -10, 200, 0, NULL, false, "serverAuth" } },
	  1, -1, "certificate not usable for encryption" },
	{ "only usable certificates compete: an untrusted newer one does not "
	  "win",
	  { { 0, -200, 200, 0, NULL, false, NULL },
	    { 1, -10, 200, 1, NULL, false, NULL } },
	  2, 0, NULL },
	{ "with none usable the best-ranked one's reason is given",
	  { { 0, -200, -100, 0, NULL, false, NULL },
	    { 1, -10, 200, 1, NULL, false, NULL } },
	  2, -1, "certificate not trusted" },
	{ "a valid certificate replaces an expired one with a later "
	  "notBefore",
	  { { 0, -20, -1, 0, NULL, false, NULL },
	    { 1, -40, 300, 0, NULL, false, NULL } },
	  2, 1, NULL },
	{ "an intermediate stored with the certificate lets trust be "
	  "re-checked",
	  { { 0, -10, 200, 2, NULL, true, NULL } },
	  1, 0, NULL },
	{ "without its intermediate the certificate is not trusted",
	  { { 0, -10, 200, 2, NULL, false, NULL } },
	  1, -1, "certificate not trusted" },
};

START_TEST(test_selection)
{
	const struct sel_case *c = &sel_cases[_i];
	char fps[4][X509U_FP_SIZE], got[X509U_FP_SIZE];
	char reason[KC_REASON_SIZE];
	caps_t caps = 0;
	sm_status st;
	int i;

	for (i = 0; i < c->ncerts; i++) {
		const struct sel_cert *d = &c->certs[i];
		X509 *x = leaf_eku(d->key, "email:" BOB, d->nb, d->na,
				   d->issuer, d->ku, d->eku);
		STACK_OF(X509) *chain = sk_X509_new_null();

		ck_assert(chain != NULL);
		if (d->with_chain)
			ck_assert(sk_X509_push(chain, inter) > 0);
		fp_of(x, fps[i]);
		st = keycache_store(kc, x, chain, BOB,
				    CAP_KNOWN | (1u << i), KC_SRC_IMPORTED, NULL, NULL);
		ck_assert_msg(st == SM_OK, "%s: store %d: got %s", c->name, i,
			      sm_strstatus(st));
		sk_X509_free(chain);
		X509_free(x);
	}
	st = select_fp(BOB, trust, got, &caps, reason);
	if (c->want < 0) {
		ck_assert_msg(st == SM_ERR_NOKEY,
			      "%s: got %s (selected %s), want no key", c->name,
			      sm_strstatus(st), got);
		ck_assert_msg(strcmp(reason, c->want_reason) == 0,
			      "%s: got reason \"%s\", want \"%s\"", c->name,
			      reason, c->want_reason);
	} else {
		ck_assert_msg(st == SM_OK, "%s: got %s (%s), want ok", c->name,
			      sm_strstatus(st), reason);
		ck_assert_msg(strcmp(got, fps[c->want]) == 0 &&
				  caps == (CAP_KNOWN | (1u << c->want)),
			      "%s: got caps %#x, want certificate %d", c->name,
			      caps, c->want);
	}
}
END_TEST

/* ---- pairings: the stories of the issue, step by step ---- */

struct pair_cert {
	int key;
	long nb, na; /* days from now */
	int issuer;  /* as for leaf() */
	const char *ku;
};

struct pair_step {
	int signer;	     /* certificate index */
	int enc;	     /* preferred encryption certificate, -1: none */
	long signed_at;	     /* signing time, seconds from now; 0 unknown */
	enum kc_assurance as;
	enum keycache_outcome want;
	int want_old;	     /* certificate index of old_fp, -1: "" */
};

struct pair_case {
	const char *name;
	struct pair_cert certs[4];
	int ncerts;
	struct pair_step steps[4];
	int nsteps;
	int want; /* certificate selected in the end */
	bool allow_self_signed;
};

#define CA KC_AS_CA
#define SS KC_AS_SELF_SIGNED
static const struct pair_case pair_cases[] = {
	{ "a renewal takes effect although the old certificate named itself",
	  { { 0, -300, 60, 0, NULL }, { 1, -1, 700, 0, NULL } }, 2,
	  { { 0, 0, -9000, CA, KC_INSERTED, -1 },
	    { 1, -1, -60, CA, KC_SUPERSEDED_OLD, 0 },
	    /* the old certificate signs again, naming itself, later */
	    { 0, 0, 60, CA, KC_UPDATED, -1 } }, 3,
	  1, false },
	{ "an older certificate arriving later does not displace a newer one",
	  { { 1, -1, 700, 0, NULL }, { 0, -300, 60, 0, NULL } }, 2,
	  { { 0, -1, -60, CA, KC_INSERTED, -1 },
	    { 1, 1, 60, CA, KC_OLDER_KEPT_AS_HISTORY, 0 } }, 2,
	  0, false },
	{ "a self-signed certificate never supersedes a CA-issued one",
	  { { 0, -300, 60, 0, NULL }, { 1, -1, 700, 3, NULL } }, 2,
	  { { 0, -1, -60, CA, KC_INSERTED, -1 },
	    { 1, -1, 60, SS, KC_REFUSED_SELF_SIGNED, 0 } }, 2,
	  0, true },
	{ "a CA-issued certificate supersedes a self-signed one, even older",
	  { { 1, -1, 700, 3, NULL }, { 0, -300, 60, 0, NULL } }, 2,
	  { { 0, -1, -60, SS, KC_INSERTED, -1 },
	    { 1, -1, 60, CA, KC_SUPERSEDED_OLD, 0 } }, 2,
	  1, true },
	{ "the admin's forced import lets a self-signed certificate win",
	  { { 0, -300, 60, 0, NULL }, { 1, -1, 700, 3, NULL } }, 2,
	  { { 0, -1, -60, CA, KC_INSERTED, -1 },
	    { 1, -1, 0, KC_AS_ADMIN, KC_SUPERSEDED_OLD, 0 } }, 2,
	  1, true },
	{ "a separate encryption certificate named by the signer is used",
	  { { 0, -10, 300, 0, KU_SIGN }, { 1, -10, 300, 0, NULL } }, 2,
	  { { 0, 1, -60, CA, KC_INSERTED, -1 } }, 1,
	  1, false },
	{ "a renewed dual-use certificate replaces a separate-encryption "
	  "pairing",
	  { { 0, -300, 60, 0, KU_SIGN }, { 1, -300, 60, 0, NULL },
	    { 2, -1, 700, 0, NULL } }, 3,
	  { { 0, 1, -9000, CA, KC_INSERTED, -1 },
	    { 2, -1, -60, CA, KC_SUPERSEDED_OLD, 1 } }, 2,
	  2, false },
	{ "a preference with an older signing time does not replace a newer "
	  "one",
	  { { 0, -10, 300, 0, NULL }, { 1, -10, 300, 0, NULL },
	    { 2, -10, 300, 0, NULL } }, 3,
	  { { 0, 1, 100, CA, KC_INSERTED, -1 },
	    { 0, 2, 50, CA, KC_UPDATED, -1 },
	    { 0, 2, 200, CA, KC_SUPERSEDED_OLD, 1 } }, 3,
	  2, false },
	{ "a renewal with the same key is not a key change",
	  { { 0, -300, 60, 0, NULL }, { 0, -1, 700, 0, NULL } }, 2,
	  { { 0, -1, 0, CA, KC_INSERTED, -1 },
	    { 1, -1, 0, CA, KC_RENEWED_SAME_KEY, 0 } }, 2,
	  1, false },
};
#undef CA
#undef SS

START_TEST(test_pairings)
{
	const struct pair_case *c = &pair_cases[_i];
	X509 *x[4] = { NULL };
	char fps[4][X509U_FP_SIZE], got[X509U_FP_SIZE], old[X509U_FP_SIZE];
	char reason[KC_REASON_SIZE];
	enum keycache_outcome oc;
	X509 *sel = NULL;
	sm_status st;
	int i;

	for (i = 0; i < c->ncerts; i++) {
		const struct pair_cert *d = &c->certs[i];

		x[i] = leaf(d->key, "email:" BOB, d->nb, d->na, d->issuer, d->ku);
		fp_of(x[i], fps[i]);
	}
	for (i = 0; i < c->nsteps; i++) {
		const struct pair_step *t = &c->steps[i];
		struct kc_pairing p = {
			.signer = x[t->signer],
			.enc = t->enc >= 0 ? x[t->enc] : NULL,
			.address = BOB,
			.caps = CAP_KNOWN,
			.signing_time = t->signed_at ? CG_NOW + t->signed_at : 0,
			.assurance = t->as,
			.source = KC_SRC_HARVESTED,
		};

		clock_set(CG_NOW + i * 3600);
		st = keycache_store_pairing(kc, &p, &oc, old);
		ck_assert_msg(st == SM_OK, "%s: step %d: got %s", c->name, i,
			      sm_strstatus(st));
		ck_assert_msg(oc == t->want && strcmp(old, t->want_old >= 0 ?
						   fps[t->want_old] : "") == 0,
			      "%s: step %d: got %s (old %.8s), want %s (old %.8s)",
			      c->name, i, keycache_outcome_name(oc), old,
			      keycache_outcome_name(t->want),
			      t->want_old >= 0 ? fps[t->want_old] : "");
	}
	st = keycache_select(kc, BOB, trust, c->allow_self_signed, &sel, NULL,
			     reason, sizeof(reason));
	got[0] = '\0';
	if (sel)
		fp_of(sel, got);
	ck_assert_msg(st == SM_OK && strcmp(got, fps[c->want]) == 0,
		      "%s: selected %.8s (%s), want certificate %d (%.8s)",
		      c->name, got, st == SM_OK ? "ok" : reason, c->want,
		      fps[c->want]);
	X509_free(sel);
	for (i = 0; i < c->ncerts; i++)
		X509_free(x[i]);
}
END_TEST

START_TEST(test_explain_says_why_each_certificate_is_or_is_not_used)
{
	X509 *a = leaf(0, "email:" BOB, -300, 60, 0, NULL);
	X509 *b = leaf(1, "email:" BOB, -1, 700, 0, NULL);
	X509 *ss = leaf(2, "email:" BOB, -1, 700, 3, NULL);
	X509 *old = leaf(3, "email:" BOB, -400, -10, 0, NULL);
	char fb[X509U_FP_SIZE], (*why)[KC_EXPLAIN_SIZE] = NULL;
	struct kc_pairing p = { .address = BOB, .assurance = KC_AS_CA };
	struct kc_record *v = NULL;
	const char *want;
	size_t n = 0, i;

	fp_of(b, fb);
	p.signer = old;
	clock_set(CG_NOW - 20 * CG_DAY);
	ck_assert_int_eq(keycache_store_pairing(kc, &p, NULL, NULL), SM_OK);
	clock_set(CG_NOW);
	p.signer = a;
	ck_assert_int_eq(keycache_store_pairing(kc, &p, NULL, NULL), SM_OK);
	p.signer = b;
	ck_assert_int_eq(keycache_store_pairing(kc, &p, NULL, NULL), SM_OK);
	p.signer = ss;
	p.assurance = KC_AS_SELF_SIGNED;
	ck_assert_int_eq(keycache_store_pairing(kc, &p, NULL, NULL), SM_OK);
	ck_assert_int_eq(keycache_find_address(kc, BOB, &v, &n), SM_OK);
	ck_assert_uint_eq(n, 4);
	why = calloc(n, sizeof(*why));
	ck_assert(why != NULL);
	ck_assert_int_eq(keycache_explain(kc, v, n, trust, true, why), SM_OK);
	for (i = 0; i < n; i++) {
		X509 *x = kc_record_cert(&v[i]);

		want = X509_cmp(x, b) == 0	? "used for encryption"
		       : X509_cmp(x, a) == 0	? "superseded by sha256 "
		       : X509_cmp(x, ss) == 0 ? "not used: self-signed would "
						  "replace CA-issued sha256 "
					      : "not used: certificate expired "
						"on ";
		ck_assert_msg(strncmp(why[i], want, strlen(want)) == 0,
			      "record %zu: got \"%s\", want \"%s…\"", i, why[i],
			      want);
		if (X509_cmp(x, a) == 0)
			ck_assert_msg(strstr(why[i], fb) != NULL &&
					  strstr(why[i], "(newer notBefore)"),
				      "got \"%s\"", why[i]);
		X509_free(x);
	}
	free(why);
	kc_records_free(v, n);
	X509_free(a);
	X509_free(b);
	X509_free(ss);
	X509_free(old);
}
END_TEST

START_TEST(test_selection_without_a_trust_store_skips_the_trust_check)
{
	X509 *x = leaf(0, "email:" BOB, -10, 200, 1, NULL);
	char got[X509U_FP_SIZE], reason[KC_REASON_SIZE];

	store_ok(x, BOB, 0, KC_INSERTED, NULL);
	ck_assert_int_eq(select_fp(BOB, NULL, got, NULL, reason), SM_OK);
	X509_free(x);
}
END_TEST

START_TEST(test_addresses_are_compared_case_insensitively)
{
	X509 *x = leaf(0, "email:Bob.Smith@Partner.example", -10, 200, 0, NULL);
	char got[X509U_FP_SIZE], reason[KC_REASON_SIZE];
	struct kc_record *v = NULL;
	size_t n = 0;

	store_ok(x, "Bob.Smith@Partner.example", 0, KC_INSERTED, NULL);
	ck_assert_int_eq(select_fp("bob.smith@partner.example", trust, got,
				   NULL, reason),
			 SM_OK);
	ck_assert_int_eq(select_fp("BOB.SMITH@PARTNER.EXAMPLE", trust, got,
				   NULL, reason),
			 SM_OK);
	/* Stored once, normalised: a second spelling is the same binding. */
	store_ok(x, "bob.smith@partner.example", 0, KC_UPDATED, NULL);
	ck_assert_int_eq(keycache_find_address(kc, "Bob.Smith@partner.example",
					       &v, &n),
			 SM_OK);
	ck_assert_msg(n == 1 && strcmp(v[0].address,
				       "bob.smith@partner.example") == 0,
		      "got %zu records, first \"%s\"; want one, normalised", n,
		      n ? v[0].address : "-");
	kc_records_free(v, n);
	ck_assert_int_eq(select_fp("not an address", trust, got, NULL, reason),
			 SM_ERR_PARSE);
	X509_free(x);
}
END_TEST

START_TEST(test_a_certificate_is_bound_only_to_the_address_it_was_stored_for)
{
	X509 *x = leaf(0, "email:a@partner.example,email:B@Partner.Example",
		       -10, 200, 0, NULL);
	char got[X509U_FP_SIZE], reason[KC_REASON_SIZE];
	struct kc_record *v = NULL;
	size_t n = 0;

	store_ok(x, "a@partner.example", 0, KC_INSERTED, NULL);
	ck_assert_int_eq(select_fp("B@partner.example", trust, got, NULL,
				   reason),
			 SM_ERR_NOKEY);
	ck_assert_int_eq(keycache_find_address(kc, "a@partner.example", &v, &n),
			 SM_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_msg(v[0].n_emails == 2 &&
			  strcmp(v[0].emails[0], "a@partner.example") == 0 &&
			  strcmp(v[0].emails[1], "b@partner.example") == 0,
		      "got %zu e-mail addresses, want a@ and b@ (normalised)",
		      v[0].n_emails);
	kc_records_free(v, n);
	X509_free(x);
}
END_TEST

/* ---- removal ---- */

START_TEST(test_removal_by_address_keeps_history_and_says_removed)
{
	X509 *x = leaf(0, "email:" BOB, -10, 200, 0, NULL);
	X509 *y = leaf(1, "email:" BOB, -5, 200, 0, NULL);
	char got[X509U_FP_SIZE], reason[KC_REASON_SIZE], fy[X509U_FP_SIZE];
	struct kc_record *v = NULL;
	size_t n = 0, count = 0, i;

	store_ok(x, BOB, 0, KC_INSERTED, NULL);
	/* Admin removal folds case. */
	ck_assert_int_eq(keycache_remove_address(kc, "BOB@partner.example",
						 &count),
			 SM_OK);
	ck_assert_uint_eq(count, 1);
	ck_assert_int_eq(select_fp(BOB, trust, got, NULL, reason),
			 SM_ERR_NOKEY);
	ck_assert_str_eq(reason, "certificate removed");
	ck_assert_int_eq(keycache_find_address(kc, BOB, &v, &n), SM_OK);
	ck_assert_msg(n == 1 && v[0].status == KC_ST_REMOVED,
		      "got %zu records, first %s; want 1 removed", n,
		      n ? kc_status_name(v[0].status) : "-");
	kc_records_free(v, n);
	/* Removing again changes nothing but is not an error. */
	ck_assert_int_eq(keycache_remove_address(kc, BOB, &count), SM_OK);
	ck_assert_uint_eq(count, 0);
	ck_assert_int_eq(keycache_remove_address(kc, "nobody@partner.example",
						 &count),
			 SM_ERR_NOTFOUND);
	/* Exchange again: a new certificate is active. */
	fp_of(y, fy);
	store_ok(y, BOB, 0, KC_INSERTED, NULL);
	ck_assert_int_eq(select_fp(BOB, trust, got, NULL, reason), SM_OK);
	ck_assert_str_eq(got, fy);
	/* And the removed one, harvested again, comes back as history. */
	store_ok(x, BOB, 0, KC_OLDER_KEPT_AS_HISTORY, fy);
	ck_assert_int_eq(keycache_find_address(kc, BOB, &v, &n), SM_OK);
	for (i = 0; i < n; i++)
		ck_assert(v[i].status != KC_ST_REMOVED);
	kc_records_free(v, n);
	X509_free(x);
	X509_free(y);
}
END_TEST

START_TEST(test_removal_by_fingerprint_covers_every_address_of_the_certificate)
{
	X509 *x = leaf(0, "email:a@partner.example,email:b@partner.example",
		       -10, 200, 0, NULL);
	char fp[X509U_FP_SIZE], colons[200], reason[KC_REASON_SIZE];
	char got[X509U_FP_SIZE];
	size_t count = 0, i, o = 0;

	fp_of(x, fp);
	for (i = 0; i < 64; i += 2)
		o += (size_t)snprintf(colons + o, sizeof(colons) - o, "%s%c%c",
				      i ? ":" : "", fp[i] - 32 * (fp[i] >= 'a'),
				      fp[i + 1] - 32 * (fp[i + 1] >= 'a'));
	store_ok(x, "a@partner.example", 0, KC_INSERTED, NULL);
	store_ok(x, "b@partner.example", 0, KC_INSERTED, NULL);
	ck_assert_int_eq(keycache_remove_fingerprint(kc, colons, &count), SM_OK);
	ck_assert_uint_eq(count, 2);
	ck_assert_int_eq(select_fp("b@partner.example", trust, got, NULL,
				   reason),
			 SM_ERR_NOKEY);
	ck_assert_str_eq(reason, "certificate removed");
	ck_assert_int_eq(keycache_remove_fingerprint(kc, "00", &count),
			 SM_ERR_PARSE);
	X509_free(x);
}
END_TEST

/* ---- listing ---- */

/* keycache_restore (what `smimectl cache import` uses): a binding comes
 * back exactly as described, its pairing included, also over one the
 * cache already has. */
START_TEST(test_restore_brings_a_binding_back_as_described)
{
	X509 *sig = leaf(0, "email:" BOB, -30, 300, 0, KU_SIGN);
	X509 *enc = leaf(1, "email:" BOB, -30, 300, 0, NULL);
	char sfp[X509U_FP_SIZE], efp[X509U_FP_SIZE];
	struct kc_record b, *v = NULL;
	size_t n = 0;

	fp_of(sig, sfp);
	fp_of(enc, efp);
	ck_assert_int_eq(keycache_store(kc, enc, NULL, BOB, CAP_KNOWN, KC_SRC_HARVESTED,
					NULL, NULL), SM_OK);
	memset(&b, 0, sizeof(b));
	b.address = BOB;
	b.status = KC_ST_REMOVED;
	b.caps = CAP_KNOWN;
	b.source = KC_SRC_HARVESTED;
	b.assurance = KC_AS_ADMIN;
	b.signer = true;
	memcpy(b.enc_fp, efp, sizeof(b.enc_fp));
	b.signing_time = CG_NOW - 5 * CG_DAY;
	b.first_seen = CG_NOW - 9 * CG_DAY;
	b.last_seen = CG_NOW - 2 * CG_DAY;
	ck_assert_int_eq(keycache_restore(kc, NULL, NULL, &b), SM_ERR_ARG);
	ck_assert_int_eq(keycache_restore(kc, sig, NULL, &b), SM_OK);
	ck_assert_int_eq(keycache_find_fingerprint(kc, sfp, &v, &n), SM_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0].status, KC_ST_REMOVED);
	ck_assert_int_eq(v[0].assurance, KC_AS_ADMIN);
	ck_assert_int_eq(v[0].source, KC_SRC_HARVESTED);
	ck_assert(v[0].signer && v[0].caps == CAP_KNOWN);
	ck_assert_str_eq(v[0].enc_fp, efp);
	ck_assert(v[0].signing_time == CG_NOW - 5 * CG_DAY);
	ck_assert(v[0].first_seen == CG_NOW - 9 * CG_DAY);
	ck_assert(v[0].last_seen == CG_NOW - 2 * CG_DAY);
	kc_records_free(v, n);
	/* Over an existing binding: its times become the restored ones. */
	memset(&b, 0, sizeof(b));
	b.address = BOB;
	b.status = KC_ST_ACTIVE;
	b.source = KC_SRC_IMPORTED;
	b.assurance = KC_AS_CA;
	b.first_seen = CG_NOW - 20 * CG_DAY;
	b.last_seen = CG_NOW - 10 * CG_DAY;
	ck_assert_int_eq(keycache_restore(kc, enc, NULL, &b), SM_OK);
	ck_assert_int_eq(keycache_find_fingerprint(kc, efp, &v, &n), SM_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0].source, KC_SRC_IMPORTED);
	ck_assert(v[0].first_seen == CG_NOW - 20 * CG_DAY);
	ck_assert(v[0].last_seen == CG_NOW - 10 * CG_DAY);
	kc_records_free(v, n);
	X509_free(sig);
	X509_free(enc);
}
END_TEST

START_TEST(test_records_carry_every_listed_field)
{
	EVP_PKEY *rsa = cg_rsa(2048);
	struct cg_spec s = { .key = rsa, .ca = ca, .ca_key = ca_key,
			     .cn = "Bob Partner", .san = "email:" BOB,
			     .ku = "critical,keyEncipherment" };
	X509 *x = cg_make(&s), *back;
	char fp[X509U_FP_SIZE], kfp[X509U_FP_SIZE], *serial = NULL;
	struct kc_record *v = NULL;
	size_t n = 0;
	sm_status st;

	fp_of(x, fp);
	ck_assert(x509u_key_fingerprint(x, kfp) == SM_OK);
	ck_assert(x509u_serial_hex(x, &serial) == SM_OK);
	st = keycache_store(kc, x, NULL, BOB, CAP_KNOWN, KC_SRC_IMPORTED,
			    NULL, NULL);
	ck_assert_int_eq(st, SM_OK);
	ck_assert_int_eq(keycache_find_fingerprint(kc, fp, &v, &n), SM_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].address, BOB);
	ck_assert_str_eq(v[0].fingerprint, fp);
	ck_assert_str_eq(v[0].key_fingerprint, kfp);
	ck_assert_str_eq(v[0].subject, "CN=Bob Partner");
	ck_assert_str_eq(v[0].issuer, "CN=Root CA");
	ck_assert_str_eq(v[0].serial, serial);
	ck_assert_int_eq(v[0].key_type, X509U_KEY_RSA);
	ck_assert_int_eq(v[0].key_bits, 2048);
	ck_assert(v[0].signer && v[0].enc_fp[0] == '\0' && v[0].can_encrypt);
	ck_assert_int_eq(v[0].assurance, KC_AS_CA);
	ck_assert_int_eq(v[0].source, KC_SRC_IMPORTED);
	ck_assert_str_eq(kc_source_name(v[0].source), "imported");
	ck_assert_str_eq(kc_status_name(v[0].status), "active");
	ck_assert(v[0].not_before == CG_NOW - 30 * CG_DAY);
	ck_assert(v[0].not_after == CG_NOW + 365 * CG_DAY);
	ck_assert(v[0].n_emails == 1 && strcmp(v[0].emails[0], BOB) == 0);
	back = kc_record_cert(&v[0]);
	ck_assert_msg(back != NULL && X509_cmp(back, x) == 0,
		      "the stored DER does not give back the certificate");
	X509_free(back);
	kc_records_free(v, n);
	free(serial);
	X509_free(x);
	EVP_PKEY_free(rsa);
}
END_TEST

START_TEST(test_list_shows_statuses_and_filters_expiring)
{
	X509 *soon = leaf(0, "email:a@partner.example", -10, 5, 0, NULL);
	X509 *later = leaf(1, "email:b@partner.example", -10, 40, 0, NULL);
	X509 *gone = leaf(2, "email:c@partner.example", -100, -1, 0, NULL);
	struct kc_record *v = NULL;
	size_t n = 0;

	store_ok(soon, "a@partner.example", 0, KC_INSERTED, NULL);
	store_ok(later, "b@partner.example", 0, KC_INSERTED, NULL);
	store_ok(gone, "c@partner.example", 0, KC_INSERTED, NULL);

	ck_assert_int_eq(keycache_list(kc, -1, &v, &n), SM_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0].address, "a@partner.example");
	ck_assert_str_eq(v[2].address, "c@partner.example");
	ck_assert_msg(v[2].status == KC_ST_EXPIRED,
		      "c@: got status %s, want expired",
		      kc_status_name(v[2].status));
	ck_assert_int_eq(v[0].status, KC_ST_ACTIVE);
	kc_records_free(v, n);

	ck_assert_int_eq(keycache_list(kc, 30, &v, &n), SM_OK);
	ck_assert_msg(n == 1 && strcmp(v[0].address, "a@partner.example") == 0,
		      "got %zu records expiring in 30 days, want only a@", n);
	kc_records_free(v, n);
	X509_free(soon);
	X509_free(later);
	X509_free(gone);
}
END_TEST

static int
count_cb(const struct kc_record *r, void *arg)
{
	int *cnt = arg;

	ck_assert(r->address != NULL && r->der_len > 0);
	return ++*cnt == 2; /* stop after the second */
}

START_TEST(test_iterate_visits_records_and_can_stop)
{
	char addr[64];
	int i, cnt = 0;

	for (i = 0; i < 3; i++) {
		X509 *x;

		snprintf(addr, sizeof(addr), "u%d@partner.example", i);
		{
			char san[80];

			snprintf(san, sizeof(san), "email:%s", addr);
			x = leaf(i, san, -10, 200, 0, NULL);
		}
		store_ok(x, addr, 0, KC_INSERTED, NULL);
		X509_free(x);
	}
	ck_assert_int_eq(keycache_iterate(kc, count_cb, &cnt), SM_OK);
	ck_assert_int_eq(cnt, 2);
}
END_TEST

/* ---- planner (pure) ---- */

/* A view for the pure rule tests: signing binding fp, its own encryption
 * certificate unless enc names another. */
static struct kc_binding_view
view(const char *fp, const char *kfp, time_t nb, time_t st, time_t seen,
     enum kc_assurance as, const char *enc)
{
	struct kc_binding_view v;

	memset(&v, 0, sizeof(v));
	v.fingerprint = fp;
	v.key_fingerprint = kfp;
	v.enc_fp = enc ? enc : "";
	v.not_before = nb;
	v.not_after = nb + 100000;
	v.signing_time = st;
	v.last_seen = seen;
	v.signer = true;
	v.can_encrypt = true;
	v.assurance = as;
	v.status = KC_ST_ACTIVE;
	return v;
}

START_TEST(test_the_rule_ranks_notbefore_then_signing_time_then_harvest)
{
	struct kc_binding_view v[3];
	size_t order[3];

	/* Same notBefore: the later signing time wins, whatever was seen
	 * last. */
	v[0] = view("aa", "k1", 100, 500, 900, KC_AS_CA, NULL);
	v[1] = view("bb", "k2", 100, 600, 800, KC_AS_CA, NULL);
	v[2] = view("cc", "k3", 50, 999, 999, KC_AS_CA, NULL);
	ck_assert_uint_eq(kc_rank(v, 3, order, NULL), 3);
	ck_assert_msg(order[0] == 1 && order[1] == 0 && order[2] == 2,
		      "order: got %zu %zu %zu, want 1 0 2", order[0], order[1],
		      order[2]);
	/* Same signing time: the later harvest. */
	v[1].signing_time = 500;
	ck_assert_uint_eq(kc_rank(v, 3, order, NULL), 3);
	ck_assert_msg(order[0] == 0, "got %zu first, want 0 (later harvest)",
		      order[0]);
	/* The winner by stored data at time 200. */
	ck_assert_int_eq(kc_current(v, 3, 200), 0);
	/* A full tie is decided by the fingerprint, so the outcome is
	 * stable. */
	v[1].last_seen = 900;
	ck_assert_uint_eq(kc_rank(v, 3, order, NULL), 3);
	ck_assert_uint_eq(order[0], 0);
}
END_TEST

START_TEST(test_a_self_signed_pairing_is_held_back_while_a_ca_issued_one_lives)
{
	struct kc_binding_view v[2];
	size_t order[2];
	bool blocked[2];
	struct kc_plan p;

	v[0] = view("aa", "k1", 100, 0, 10, KC_AS_CA, NULL);
	v[1] = view("bb", "k2", 200, 0, 20, KC_AS_SELF_SIGNED, NULL);
	ck_assert_uint_eq(kc_rank(v, 2, order, blocked), 1);
	ck_assert(order[0] == 0 && blocked[1] && !blocked[0]);
	kc_plan_outcome(v, 1, v, 2, "bb", false, 300, &p);
	ck_assert_msg(p.outcome == KC_REFUSED_SELF_SIGNED,
		      "outcome: got %s, want the refusal",
		      keycache_outcome_name(p.outcome));
	ck_assert_str_eq(p.old_fp, "aa");
	/* Forced in by the admin, it competes again, and wins. */
	v[1].assurance = KC_AS_ADMIN;
	ck_assert_uint_eq(kc_rank(v, 2, order, blocked), 2);
	ck_assert_uint_eq(order[0], 1);
	/* The CA-issued one removed: the self-signed one is used. */
	v[1].assurance = KC_AS_SELF_SIGNED;
	v[0].status = KC_ST_REMOVED;
	ck_assert_int_eq(kc_current(v, 2, 300), 1);
}
END_TEST

START_TEST(test_a_pairing_encrypts_to_its_preferred_certificate)
{
	struct kc_binding_view v[2];

	v[0] = view("55", "k1", 100, 0, 10, KC_AS_CA, "ee");
	v[0].can_encrypt = false; /* a signing-only certificate */
	v[1] = view("ee", "k2", 90, 0, 10, KC_AS_CA, NULL);
	v[1].signer = false;
	ck_assert_int_eq(kc_pairing_enc(v, 2, 0), 1);
	ck_assert_int_eq(kc_current(v, 2, 300), 1);
	/* The preferred certificate removed: nothing usable by this
	 * pairing, and the signing-only certificate is never used. */
	v[1].status = KC_ST_REMOVED;
	ck_assert_int_eq(kc_current(v, 2, 300), -1);
}
END_TEST

/* ---- concurrency ---- */

/* Threads share addresses so that they really contend for the same rows;
 * notBefore is unique per certificate, so whatever the interleaving the
 * newest one per address must end up the only active one. */
enum { NTHREADS = 6, PER_THREAD = 24, SHARED_ADDRS = 4, NCHILD = 40 };

static X509 *tcerts[NTHREADS][PER_THREAD];
static X509 *ccerts[NCHILD];

static long
tcert_nb(int i, int j)
{
	return -1000 + (long)j * NTHREADS + i;
}

struct worker {
	int idx;
	int errors;
	char msg[256];
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char addr[64], reason[KC_REASON_SIZE];
	struct kc_record *v;
	size_t n;
	int j;

	for (j = 0; j < PER_THREAD; j++) {
		X509 *x = NULL;
		sm_status st;

		snprintf(addr, sizeof(addr), "shared%d@partner.example",
			 j % SHARED_ADDRS);
		st = keycache_store(kc, tcerts[w->idx][j], NULL, addr,
				    CAP_KNOWN, KC_SRC_HARVESTED, NULL,
				    NULL);
		if (st != SM_OK) {
			w->errors++;
			snprintf(w->msg, sizeof(w->msg), "store %s: %s", addr,
				 sm_strstatus(st));
			continue;
		}
		st = keycache_select(kc, addr, NULL, false, &x, NULL, reason,
				     sizeof(reason));
		X509_free(x);
		if (st != SM_OK) {
			w->errors++;
			snprintf(w->msg, sizeof(w->msg), "select %s: %s %s",
				 addr, sm_strstatus(st), reason);
			continue;
		}
		if (j % 8 == 0) {
			if ((st = keycache_list(kc, -1, &v, &n)) != SM_OK) {
				w->errors++;
				snprintf(w->msg, sizeof(w->msg), "list: %s",
					 sm_strstatus(st));
			} else {
				kc_records_free(v, n);
			}
		}
	}
	return NULL;
}

/* The other process: its own connection, storing and removing. Exit
 * status: 0 fine, 10 + step on failure. No Check calls in here. */
static void
child_main(int go_fd)
{
	struct keycache *k = NULL;
	char err[256], addr[64], fp[X509U_FP_SIZE];
	char c;
	int i;

	if (keycache_open(kc_backend, kc_target, &k, err, sizeof(err)) !=
	    SM_OK)
		_exit(10);
	if (read(go_fd, &c, 1) != 1)
		_exit(11);
	for (i = 0; i < NCHILD; i++) {
		snprintf(addr, sizeof(addr), "child%d@partner.example", i);
		if (keycache_store(k, ccerts[i], NULL, addr, CAP_KNOWN,
				   KC_SRC_IMPORTED, NULL, NULL) != SM_OK)
			_exit(12);
		if (i % 2 == 1) {
			x509u_fingerprint(ccerts[i], fp);
			if (keycache_remove_fingerprint(k, fp, NULL) != SM_OK)
				_exit(13);
		}
	}
	keycache_close(k);
	_exit(0);
}

START_TEST(test_threads_and_another_process_lose_no_rows_and_see_no_busy)
{
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];
	int go[2], status = 0, i, j, newest_i[SHARED_ADDRS],
	    newest_j[SHARED_ADDRS];
	char san[96], fp[X509U_FP_SIZE];
	struct kc_record *v;
	size_t n;
	pid_t pid;

	/* Every certificate is made up front: no Check calls in threads. */
	for (i = 0; i < NTHREADS; i++)
		for (j = 0; j < PER_THREAD; j++) {
			snprintf(san, sizeof(san),
				 "email:shared%d@partner.example",
				 j % SHARED_ADDRS);
			tcerts[i][j] = leaf((i + j) % NKEYS, san, tcert_nb(i, j),
					    300, 0, NULL);
		}
	for (i = 0; i < NCHILD; i++) {
		snprintf(san, sizeof(san), "email:child%d@partner.example", i);
		ccerts[i] = leaf(i % NKEYS, san, -10, 300, 0, NULL);
	}
	/* The child must not inherit an open SQLite handle (it may not use
	 * or close it, and Valgrind would count its memory as lost at the
	 * child's exit): fork with the cache closed, then reopen. */
	keycache_close(kc);
	kc = NULL;
	ck_assert(pipe(go) == 0);
	pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		child_main(go[0]);
	}
	close(go[0]);
	{
		char err[256];

		ck_assert_int_eq(keycache_open(kc_backend, kc_target, &kc, err,
					       sizeof(err)),
				 SM_OK);
	}
	for (i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].idx = i;
		ck_assert(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
	}
	ck_assert(write(go[1], "g", 1) == 1);
	close(go[1]);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert(waitpid(pid, &status, 0) == pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child: got exit status %d, want 0",
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_msg(w[i].errors == 0,
			      "thread %d: got %d errors (last: %s), want 0", i,
			      w[i].errors, w[i].msg);

	/* No lost rows, and per address only the newest is active. */
	for (j = 0; j < SHARED_ADDRS; j++)
		newest_i[j] = newest_j[j] = -1;
	for (i = 0; i < NTHREADS; i++)
		for (j = 0; j < PER_THREAD; j++) {
			int a = j % SHARED_ADDRS;

			if (newest_i[a] < 0 ||
			    tcert_nb(i, j) > tcert_nb(newest_i[a], newest_j[a])) {
				newest_i[a] = i;
				newest_j[a] = j;
			}
		}
	for (i = 0; i < NTHREADS; i++)
		for (j = 0; j < PER_THREAD; j++) {
			int a = j % SHARED_ADDRS;
			bool newest = newest_i[a] == i && newest_j[a] == j;

			fp_of(tcerts[i][j], fp);
			ck_assert_int_eq(keycache_find_fingerprint(kc, fp, &v, &n),
					 SM_OK);
			ck_assert_msg(n == 1, "thread %d cert %d: got %zu rows, "
					      "want 1", i, j, n);
			ck_assert_msg(v[0].status == (newest ? KC_ST_ACTIVE
							     : KC_ST_SUPERSEDED),
				      "thread %d cert %d: got %s, want %s", i, j,
				      kc_status_name(v[0].status),
				      newest ? "active" : "superseded");
			kc_records_free(v, n);
			X509_free(tcerts[i][j]);
		}
	for (i = 0; i < NCHILD; i++) {
		fp_of(ccerts[i], fp);
		ck_assert_int_eq(keycache_find_fingerprint(kc, fp, &v, &n),
				 SM_OK);
		ck_assert_msg(n == 1 && v[0].status == (i % 2 ? KC_ST_REMOVED
							      : KC_ST_ACTIVE),
			      "child cert %d: got %zu rows, status %s", i, n,
			      n ? kc_status_name(v[0].status) : "-");
		kc_records_free(v, n);
		X509_free(ccerts[i]);
	}
	ck_assert_int_eq(keycache_list(kc, -1, &v, &n), SM_OK);
	ck_assert_uint_eq(n, NTHREADS * PER_THREAD + NCHILD);
	kc_records_free(v, n);
}
END_TEST

/* ---- crash safety ---- */

/* The harvests form one sequence of certificates, made up front so the
 * children spend their time inside store transactions. Each certificate
 * is newer than the previous one for its address, so every store
 * supersedes: a multi-row transaction a kill can tear. */
enum { CRASH_ROUNDS = 40, CRASH_ADDRS = 5, CRASH_CERTS = 3000 };

static X509 *crash_certs[CRASH_CERTS];

/* The harvesting process: store certificates from index start on and
 * report each committed fingerprint on the pipe once keycache_store has
 * returned. Runs until killed (noreturn: the loop has no exit). */
static void
crash_child(size_t start, int out_fd)
{
	struct keycache *k = NULL;
	char err[256], addr[64], line[X509U_FP_SIZE];
	size_t i;

	if (keycache_open(kc_backend, kc_target, &k, err, sizeof(err)) !=
	    SM_OK)
		_exit(10);
	/* Past the end, start over: re-storing is an update, still a
	 * transaction to tear, and the parent always gets a first report. */
	for (i = start;; i++) {
		X509 *x = crash_certs[i % CRASH_CERTS];

		snprintf(addr, sizeof(addr), "crash%zu@partner.example",
			 (i % CRASH_CERTS) % CRASH_ADDRS);
		if (keycache_store(k, x, NULL, addr, CAP_KNOWN,
				   KC_SRC_HARVESTED, NULL, NULL) != SM_OK)
			_exit(12);
		x509u_fingerprint(x, line);
		line[X509U_FP_SIZE - 1] = '\n';
		/* 65 bytes < PIPE_BUF: the line arrives whole or not at all. */
		if (write(out_fd, line, X509U_FP_SIZE) != X509U_FP_SIZE)
			_exit(13);
	}
}

/* Read exactly one report line ("hex\n") into line, NUL-terminated. */
static bool
read_line(int fd, char line[X509U_FP_SIZE])
{
	size_t have = 0;
	ssize_t r;

	while (have < X509U_FP_SIZE) {
		r = read(fd, line + have, X509U_FP_SIZE - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		have += (size_t)r;
	}
	if (line[X509U_FP_SIZE - 1] != '\n')
		return false;
	line[X509U_FP_SIZE - 1] = '\0';
	return true;
}

/* Append every whole line from fd to a growing array of fingerprints. */
static void
read_reports(int fd, char (**fps)[X509U_FP_SIZE], size_t *n)
{
	char buf[4096], line[X509U_FP_SIZE];
	size_t have = 0;
	ssize_t r;

	while ((r = read(fd, buf, sizeof(buf))) > 0 ||
	       (r < 0 && errno == EINTR)) {
		ssize_t i;

		for (i = 0; i < r; i++) {
			if (buf[i] != '\n') {
				if (have < X509U_FP_SIZE - 1)
					line[have++] = buf[i];
				continue;
			}
			line[have] = '\0';
			have = 0;
			*fps = realloc(*fps, (*n + 1) * sizeof(**fps));
			ck_assert(*fps != NULL);
			memcpy((*fps)[(*n)++], line, X509U_FP_SIZE);
		}
	}
}

/* What a killed writer must never leave behind, checked with SQLite
 * directly after every kill (the next harvest would repair a torn
 * supersede, so checking only at the end would miss it): the integrity
 * check passes, and no address has two active bindings of one class. */
static void
assert_consistent(int round, unsigned int seed)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int rc;

	ck_assert(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL) ==
		  SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	ck_assert(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s,
				     NULL) == SQLITE_OK);
	rc = sqlite3_step(s);
	ck_assert_msg(rc == SQLITE_ROW &&
			  strcmp((const char *)sqlite3_column_text(s, 0),
				 "ok") == 0,
		      "round %d: integrity_check: got %s, want ok (seed %u)",
		      round,
		      rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0)
				       : sqlite3_errmsg(db),
		      seed);
	sqlite3_finalize(s);
	ck_assert(sqlite3_prepare_v2(db,
				     "SELECT address, count(*) FROM bindings"
				     " WHERE signer = 1 AND enc_cert_id IS NOT NULL"
				     " AND enc_cert_id NOT IN (SELECT id FROM certs)"
				     " GROUP BY address",
				     -1, &s, NULL) == SQLITE_OK);
	rc = sqlite3_step(s);
	ck_assert_msg(rc == SQLITE_DONE,
		      "round %d: address %s has %d pairings naming a missing "
		      "certificate (seed %u)",
		      round,
		      rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0)
				       : "?",
		      rc == SQLITE_ROW ? sqlite3_column_int(s, 1) : -1, seed);
	sqlite3_finalize(s);
	ck_assert(sqlite3_close(db) == SQLITE_OK);
}

START_TEST(test_a_harvester_killed_at_random_leaves_a_consistent_cache)
{
	char (*fps)[X509U_FP_SIZE] = NULL;
	char err[256], san[96];
	size_t nfp = 0, i;
	unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	int round, version = 0;

	for (i = 0; i < CRASH_CERTS; i++) {
		struct cg_spec s;

		snprintf(san, sizeof(san), "email:crash%zu@partner.example",
			 i % CRASH_ADDRS);
		memset(&s, 0, sizeof(s));
		s.key = ee_keys[i % NKEYS];
		s.ca = ca;
		s.ca_key = ca_key;
		s.san = san;
		s.ku = KU_EC;
		s.not_before = CG_NOW - 1000 * CG_DAY + (time_t)i;
		crash_certs[i] = cg_make(&s);
	}
	/* Only the children and the final check touch the file. */
	keycache_close(kc);
	kc = NULL;
	for (round = 0; round < CRASH_ROUNDS; round++) {
		int p[2], status;
		pid_t pid;

		ck_assert(pipe(p) == 0);
		pid = fork();
		ck_assert(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			/* A harvest committed but not reported is simply
			 * stored again (an update). */
			crash_child(nfp, p[1]);
		}
		close(p[1]);
		/* Mostly while it harvests (after its first commit, however
		 * slow the machine or Valgrind makes it); now and then while
		 * it opens the cache and recovers the previous victim's
		 * journal. */
		if (round % 4 != 0) {
			char line[X509U_FP_SIZE];

			ck_assert_msg(read_line(p[0], line),
				      "round %d: child died before its first "
				      "harvest", round);
			fps = realloc(fps, (nfp + 1) * sizeof(*fps));
			ck_assert(fps != NULL);
			memcpy(fps[nfp++], line, X509U_FP_SIZE);
			usleep((useconds_t)(rand_r(&seed) % 10000));
		} else {
			usleep((useconds_t)(rand_r(&seed) % 2000));
		}
		kill(pid, SIGKILL);
		ck_assert(waitpid(pid, &status, 0) == pid);
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			      "round %d: child ended otherwise (status %#x, "
			      "seed %u)",
			      round, status, seed);
		read_reports(p[0], &fps, &nfp);
		close(p[0]);
		assert_consistent(round, seed);
	}
	/* Three rounds in four were killed after at least one harvest (a
	 * slow machine or Valgrind commits no more than that). */
	ck_assert_msg(nfp >= CRASH_ROUNDS * 3 / 4,
		      "got %zu committed harvests in %d rounds, want at least "
		      "%d for the test to mean something",
		      nfp, CRASH_ROUNDS, CRASH_ROUNDS * 3 / 4);

	ck_assert_int_eq(keycache_open("sqlite", dbpath, &kc, err, sizeof(err)),
			 SM_OK);
	ck_assert_msg(keycache_check(kc, &version, err, sizeof(err)) == SM_OK,
		      "after the kills: %s (seed %u)", err, seed);
	for (i = 0; i < nfp; i++) {
		struct kc_record *v = NULL;
		size_t n = 0;

		ck_assert_int_eq(keycache_find_fingerprint(kc, fps[i], &v, &n),
				 SM_OK);
		ck_assert_msg(n == 1, "committed harvest %zu (%.16s) lost: "
				      "got %zu rows, want 1 (seed %u)",
			      i, fps[i], n, seed);
		kc_records_free(v, n);
	}
	for (i = 0; i < CRASH_CERTS; i++)
		X509_free(crash_certs[i]);
	free(fps);
}
END_TEST

/* Key discovery stores with an origin; a harvested certificate of the same
 * notBefore wins in either order (a discovered one has no signing time). */
START_TEST(test_discovered_certificates_keep_their_origin_and_yield_to_harvested)
{
	const char *addrs[2] = { BOB, "carol@partner.example" };

	for (int order = 0; order < 2; order++) {
		const char *addr = addrs[order];
		char san[96], fh[X509U_FP_SIZE], fd[X509U_FP_SIZE], got[X509U_FP_SIZE];
		char reason[KC_REASON_SIZE];
		struct kc_pairing p = { .address = addr, .assurance = KC_AS_CA,
					.source = KC_SRC_HARVESTED,
					.signing_time = CG_NOW - 60 };
		struct kc_record *v = NULL;
		size_t n = 0, seen = 0;
		X509 *h, *d;

		snprintf(san, sizeof(san), "email:%s", addr);
		h = leaf(2 * order, san, -1, 300, 0, NULL);
		d = leaf(2 * order + 1, san, -1, 300, 0, NULL);
		fp_of(h, fh);
		fp_of(d, fd);
		p.signer = h;
		clock_set(CG_NOW);
		if (order == 0)
			ck_assert_int_eq(keycache_store_discovered(kc, d, NULL, addr,
			    "ldap:ldap://127.0.0.1:1/", NULL), SM_OK);
		clock_set(CG_NOW + 10);
		ck_assert_int_eq(keycache_store_pairing(kc, &p, NULL, NULL), SM_OK);
		clock_set(CG_NOW + 20);
		if (order == 1)
			ck_assert_int_eq(keycache_store_discovered(kc, d, NULL, addr,
			    "smimea", NULL), SM_OK);
		ck_assert_int_eq(select_fp(addr, trust, got, NULL, reason), SM_OK);
		ck_assert_msg(strcmp(got, fh) == 0, "order %d: the discovered certificate won", order);
		ck_assert_int_eq(keycache_find_address(kc, addr, &v, &n), SM_OK);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(v[i].fingerprint, fd) == 0) {
				ck_assert_int_eq(v[i].source, KC_SRC_DISCOVERED);
				ck_assert_str_eq(v[i].origin,
				    order == 0 ? "ldap:ldap://127.0.0.1:1/" : "smimea");
				seen++;
			} else {
				ck_assert_int_eq(v[i].source, KC_SRC_HARVESTED);
				ck_assert_ptr_null(v[i].origin);
			}
		}
		ck_assert_uint_eq(seen, 1);
		kc_records_free(v, n);
		X509_free(h);
		X509_free(d);
	}
	clock_set(CG_NOW);
}
END_TEST

/* A DANE-EE certificate (DNSSEC vouched for it) needs no chain at
 * selection; the same self-signed certificate from any other origin does. */
START_TEST(test_a_dane_ee_certificate_is_used_without_a_chain)
{
	X509 *ss = leaf(0, "email:" BOB, -1, 300, 3, NULL);
	X509 *ss2 = leaf(1, "email:carol@partner.example", -1, 300, 3, NULL);
	char fp[X509U_FP_SIZE], got[X509U_FP_SIZE], reason[KC_REASON_SIZE];

	fp_of(ss, fp);
	ck_assert_int_eq(keycache_store_discovered(kc, ss, NULL, BOB, KC_ORIGIN_DANE_EE, NULL), SM_OK);
	ck_assert_int_eq(select_fp(BOB, trust, got, NULL, reason), SM_OK);
	ck_assert_str_eq(got, fp);
	ck_assert_int_eq(keycache_store_discovered(kc, ss2, NULL, "carol@partner.example", "smimea",
	    NULL), SM_OK);
	ck_assert_int_eq(select_fp("carol@partner.example", trust, got, NULL, reason), SM_ERR_NOKEY);
	ck_assert_str_eq(reason, "certificate not trusted");
	X509_free(ss);
	X509_free(ss2);
}
END_TEST

/* The contract: what every backend does alike. */
static void
add_contract(TCase *tc)
{
	tcase_add_test(tc, test_an_empty_cache_has_no_certificate_exchanged);
	tcase_add_test(tc, test_a_stored_certificate_is_selected_with_its_caps);
	tcase_add_test(tc, test_reharvesting_the_same_certificate_updates_last_seen_and_caps);
	tcase_add_test(tc, test_renewal_with_a_new_key_supersedes_and_reports_a_key_change);
	tcase_add_test(tc, test_renewal_with_the_same_key_is_not_a_key_change);
	tcase_add_test(tc, test_an_older_certificate_arriving_later_is_kept_as_history);
	tcase_add_loop_test(tc, test_selection, 0,
			    (int)(sizeof(sel_cases) / sizeof(sel_cases[0])));
	tcase_add_loop_test(tc, test_pairings, 0,
			    sizeof(pair_cases) / sizeof(pair_cases[0]));
	tcase_add_test(tc, test_explain_says_why_each_certificate_is_or_is_not_used);
	tcase_add_test(tc, test_selection_without_a_trust_store_skips_the_trust_check);
	tcase_add_test(tc, test_addresses_are_compared_case_insensitively);
	tcase_add_test(tc, test_a_certificate_is_bound_only_to_the_address_it_was_stored_for);
	tcase_add_test(tc, test_removal_by_address_keeps_history_and_says_removed);
	tcase_add_test(tc, test_removal_by_fingerprint_covers_every_address_of_the_certificate);
	tcase_add_test(tc, test_records_carry_every_listed_field);
	tcase_add_test(tc, test_restore_brings_a_binding_back_as_described);
	tcase_add_test(tc, test_list_shows_statuses_and_filters_expiring);
	tcase_add_test(tc, test_iterate_visits_records_and_can_stop);
	tcase_add_test(tc, test_the_rule_ranks_notbefore_then_signing_time_then_harvest);
	tcase_add_test(tc, test_a_self_signed_pairing_is_held_back_while_a_ca_issued_one_lives);
	tcase_add_test(tc, test_a_pairing_encrypts_to_its_preferred_certificate);
	tcase_add_test(tc, test_threads_and_another_process_lose_no_rows_and_see_no_busy);
}

static Suite *
keycache_suite(void)
{
	Suite *s = suite_create("keycache");
	TCase *tc = tcase_create("keycache");
	TCase *pg = tcase_create("contract-postgresql");

	tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
	tcase_add_checked_fixture(tc, cache_setup, cache_teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_a_new_cache_has_schema_version_wal_and_integrity);
	/* Origins of discovered certificates: SQLite only for now (the
	 * PostgreSQL backend leaves the optional origin ops NULL). */
	tcase_add_test(tc, test_discovered_certificates_keep_their_origin_and_yield_to_harvested);
	tcase_add_test(tc, test_a_dane_ee_certificate_is_used_without_a_chain);
	tcase_add_test(tc, test_a_cache_from_a_newer_program_is_refused);
	tcase_add_test(tc, test_a_release_cache_is_migrated_without_losing_a_certificate);
	tcase_add_test(tc, test_an_unknown_backend_is_a_configuration_error);
	tcase_add_test(tc, test_an_unopenable_path_fails_with_the_path_in_the_message);
	add_contract(tc);
	tcase_add_test(tc, test_a_harvester_killed_at_random_leaves_a_consistent_cache);
	suite_add_tcase(s, tc);

	/* The same contract on PostgreSQL: the cluster is the test's own. */
	tcase_add_unchecked_fixture(pg, keys_setup, keys_teardown);
	tcase_add_unchecked_fixture(pg, pg_cluster_setup, pg_cluster_teardown);
	tcase_add_checked_fixture(pg, cache_setup, cache_teardown);
	tcase_set_timeout(pg, 300);
	add_contract(pg);
	suite_add_tcase(s, pg);
	return s;
}


int
main(void)
{
	return testutil_run(keycache_suite());
}
