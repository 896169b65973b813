/*
 * check_keystore.c — our own keys: loading keys_dir, choosing the signing
 * key, decryption keys, unsafe files, PKCS#12 import and export.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>

#include "certgen.h"
#include "keystore.h"
#include "testutil.h"
#include "x509util.h"

#define KU_SIGN_ENC "critical,digitalSignature,keyEncipherment"
#define KU_ENC_ONLY "critical,keyEncipherment"
#define KU_EC_BOTH "critical,digitalSignature,keyAgreement"

static EVP_PKEY *ca_key, *rsa_a, *rsa_b, *ec_keys[6];
static X509 *ca;
/* GnuPG's home for the gpgsm cross-check: made and cleaned up in the
 * parent, so a failing test (whose checked teardown does not run) cannot
 * leave a gpg-agent behind. */
static char *gnupg_home;

static void
keys_setup(void)
{
	int i;

	ca_key = cg_ec();
	ca = cg_ca(ca_key, "Org CA");
	rsa_a = cg_rsa(2048);
	rsa_b = cg_rsa(2048);
	for (i = 0; i < 6; i++)
		ec_keys[i] = cg_ec();
	gnupg_home = testutil_tmpdir();
	ck_assert(gnupg_home != NULL);
}

static void
keys_teardown(void)
{
	int i;

	EVP_PKEY_free(ca_key);
	X509_free(ca);
	EVP_PKEY_free(rsa_a);
	EVP_PKEY_free(rsa_b);
	for (i = 0; i < 6; i++)
		EVP_PKEY_free(ec_keys[i]);
	if (gnupg_home) {
		char cmd[1024];

		snprintf(cmd, sizeof(cmd),
			 "GNUPGHOME=%s gpgconf --kill gpg-agent >/dev/null 2>&1",
			 gnupg_home);
		if (system(cmd) != 0)
			fprintf(stderr, "could not stop gpg-agent in %s\n",
				gnupg_home);
		testutil_rmtree(gnupg_home);
		free(gnupg_home);
		gnupg_home = NULL;
	}
}

static char *dir;
static struct keystore *ks;

static void
dir_setup(void)
{
	dir = testutil_tmpdir();
	ck_assert(dir != NULL);
	ks = NULL;
}

static void
dir_teardown(void)
{
	keystore_free(ks);
	ks = NULL;
	testutil_rmtree(dir);
	free(dir);
	dir = NULL;
}

static const char *
in_dir(const char *name)
{
	static char path[1024];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static X509 *
ee(EVP_PKEY *key, const char *san, long nb, long na, const char *ku)
{
	struct cg_spec s;

	memset(&s, 0, sizeof(s));
	s.key = key;
	s.ca = ca;
	s.ca_key = ca_key;
	s.cn = "Org User";
	s.san = san;
	s.not_before = CG_NOW + nb * CG_DAY;
	s.not_after = CG_NOW + na * CG_DAY;
	s.ku = ku;
	return cg_make(&s);
}

static void
load_ok(void)
{
	char err[512] = "";
	sm_status st = keystore_load(dir, &ks, err, sizeof(err));

	ck_assert_msg(st == SM_OK, "load: got %s (%s), want ok",
		      sm_strstatus(st), err);
}

/* ---- choosing the signer ---- */

enum { K_OLD, K_CUR, K_NEW, K_FUTURE, K_ENC_ONLY, K_DOMAIN, K_N };

static const char *const key_files[K_N] = {
	"bob-2022.pem", "bob-2024.pem", "bob-2025.pem",
	"bob-2026.pem", "bob-enc.pem", "@org.example.pem",
};

static X509 *certs[K_N];

/* A keys_dir with bob's history and the domain key. */
static void
make_bob_dir(void)
{
	static const struct {
		long nb, na;
		const char *ku;
		const char *san;
	} d[K_N] = {
		[K_OLD] = { -800, -400, KU_EC_BOTH, "email:bob@org.example" },
		[K_CUR] = { -400, 100, KU_EC_BOTH, "email:bob@org.example" },
		[K_NEW] = { -10, 700, KU_EC_BOTH, "email:bob@org.example" },
		[K_FUTURE] = { 30, 800, KU_EC_BOTH, "email:bob@org.example" },
		/* Newest of all, but it cannot sign. */
		[K_ENC_ONLY] = { -5, 700, "critical,keyAgreement",
				 "email:bob@org.example" },
		[K_DOMAIN] = { -100, 500, KU_EC_BOTH,
			       "email:postmaster@org.example" },
	};
	int i;

	for (i = 0; i < K_N; i++) {
		certs[i] = ee(ec_keys[i], d[i].san, d[i].nb, d[i].na, d[i].ku);
		cg_write_pem(in_dir(key_files[i]), ec_keys[i], certs[i], ca,
			     0600);
	}
}

static void
free_bob_certs(void)
{
	int i;

	for (i = 0; i < K_N; i++) {
		X509_free(certs[i]);
		certs[i] = NULL;
	}
}

static const struct {
	const char *name;
	const char *address;
	long day; /* now = CG_NOW + day days */
	int want; /* K_…, or -1 for none */
	bool want_domain;
} signer_cases[] = {
	{ "the newest valid signing key signs", "bob@org.example", 0, K_NEW,
	  false },
	{ "before the renewal the previous key signs", "bob@org.example",
	  -200, K_CUR, false },
	{ "long ago the oldest key signed", "bob@org.example", -600, K_OLD,
	  false },
	{ "a key issued ahead of time takes over once valid",
	  "bob@org.example", 200, K_FUTURE, false },
	{ "after the newest expired the one issued ahead still signs",
	  "bob@org.example", 750, K_FUTURE, false },
	{ "the domain of the address is case-insensitive", "bob@ORG.Example",
	  0, K_NEW, false },
	{ "the local part is case-insensitive too (one address rule)",
	  "Bob@org.example", 0, K_NEW, false },
	{ "a user without a key gets the domain key", "carol@org.example", 0,
	  K_DOMAIN, true },
	{ "another domain has no key", "carol@other.example", 0, -1, false },
	{ "when every key has expired there is none", "bob@org.example", 1000,
	  -1, false },
};

START_TEST(test_signer_choice)
{
	const struct keystore_key *k = NULL;
	bool dom = true;
	sm_status st;
	int got = -1, i;

	make_bob_dir();
	load_ok();
	st = keystore_signer(ks, signer_cases[_i].address,
			     CG_NOW + signer_cases[_i].day * CG_DAY, &k, &dom);
	for (i = 0; k && i < K_N; i++)
		if (X509_cmp(k->cert, certs[i]) == 0)
			got = i;
	if (signer_cases[_i].want < 0) {
		ck_assert_msg(st == SM_ERR_NOKEY && k == NULL,
			      "%s: got %s (key %s), want no key",
			      signer_cases[_i].name, sm_strstatus(st),
			      got >= 0 ? key_files[got] : "-");
	} else {
		ck_assert_msg(st == SM_OK && got == signer_cases[_i].want,
			      "%s: got %s, key %s; want %s",
			      signer_cases[_i].name, sm_strstatus(st),
			      got >= 0 ? key_files[got] : "-",
			      key_files[signer_cases[_i].want]);
		ck_assert_msg(dom == signer_cases[_i].want_domain,
			      "%s: got domain_key=%d, want %d",
			      signer_cases[_i].name, dom,
			      signer_cases[_i].want_domain);
		ck_assert(X509_check_private_key(k->cert, k->pkey) == 1);
	}
	free_bob_certs();
}
END_TEST

START_TEST(test_the_domain_key_covers_expired_user_keys)
{
	const struct keystore_key *k = NULL;
	bool dom = false;
	int i;

	/* Only bob's old, expired key and the domain key. */
	make_bob_dir();
	for (i = K_CUR; i < K_DOMAIN; i++)
		ck_assert(unlink(in_dir(key_files[i])) == 0);
	load_ok();
	ck_assert_int_eq(keystore_signer(ks, "bob@org.example", CG_NOW, &k,
					 &dom),
			 SM_OK);
	ck_assert_msg(X509_cmp(k->cert, certs[K_DOMAIN]) == 0 && dom,
		      "got a user key, want the domain key");
	free_bob_certs();
}
END_TEST

/* keystore_pick is the rule keystore_signer applies, without the fallback
 * from an address to its domain. */
START_TEST(test_pick_names_the_signing_key_of_an_address_or_a_domain)
{
	const struct keystore_key *k = NULL;
	long i, newest;
	bool dom;

	make_bob_dir();
	load_ok();
	ck_assert_int_eq(keystore_signer(ks, "bob@org.example", CG_NOW, &k, &dom), SM_OK);
	i = keystore_pick(ks, "bob@org.example", CG_NOW, &newest);
	ck_assert_msg(i >= 0 && keystore_key_at(ks, (size_t)i) == k,
	    "got index %ld, want the key keystore_signer chose", i);
	i = keystore_pick(ks, "@org.example", CG_NOW, NULL);
	ck_assert_msg(i >= 0 && X509_cmp(keystore_key_at(ks, (size_t)i)->cert, certs[K_DOMAIN]) == 0,
	    "got index %ld, want the domain key", i);
	ck_assert(keystore_info_covers(keystore_info_at(ks, (size_t)i), "@org.example"));
	ck_assert(!keystore_info_covers(keystore_info_at(ks, (size_t)i), "bob@org.example"));
	/* No fallback: an address without keys of its own has none here. */
	ck_assert_int_eq(keystore_pick(ks, "carol@org.example", CG_NOW, &newest), -1);
	ck_assert_int_eq(newest, -1);
	/* Every key expired: none signs, and newest names the newest one. */
	i = keystore_pick(ks, "bob@org.example", CG_NOW + 1000 * CG_DAY, &newest);
	ck_assert_int_eq(i, -1);
	ck_assert_msg(newest >= 0 && X509_cmp(keystore_key_at(ks, (size_t)newest)->cert,
	    certs[K_FUTURE]) == 0, "got newest %ld, want bob's latest key", newest);
	free_bob_certs();
}
END_TEST

START_TEST(test_every_key_decrypts_current_renewed_and_expired)
{
	const struct keystore_key *keys = NULL;
	size_t n = 0, i;
	int j, seen[K_N] = { 0 };

	make_bob_dir();
	load_ok();
	keystore_decrypt_keys(ks, &keys, &n);
	ck_assert_msg(n == K_N, "got %zu decryption keys, want %d", n, K_N);
	for (i = 0; i < n; i++) {
		ck_assert(X509_check_private_key(keys[i].cert, keys[i].pkey) ==
			  1);
		ck_assert_msg(keys[i].chain != NULL &&
				  sk_X509_num(keys[i].chain) == 1 &&
				  X509_cmp(sk_X509_value(keys[i].chain, 0),
					   ca) == 0,
			      "key %zu: the chain is not the CA", i);
		for (j = 0; j < K_N; j++)
			if (X509_cmp(keys[i].cert, certs[j]) == 0)
				seen[j]++;
	}
	for (j = 0; j < K_N; j++)
		ck_assert_msg(seen[j] == 1, "%s: seen %d times, want once",
			      key_files[j], seen[j]);
	free_bob_certs();
}
END_TEST

START_TEST(test_the_listing_describes_each_key)
{
	const struct keystore_info *in;
	size_t i;
	bool found_domain = false, found_enc = false;

	make_bob_dir();
	load_ok();
	ck_assert_uint_eq(keystore_count(ks), K_N);
	for (i = 0; i < keystore_count(ks); i++) {
		in = keystore_info_at(ks, i);
		ck_assert(in != NULL && in->path != NULL);
		ck_assert(strlen(in->fingerprint) == 64);
		ck_assert_int_eq(in->key_type, X509U_KEY_EC);
		ck_assert_str_eq(in->issuer, "CN=Org CA");
		if (strstr(in->path, "/@org.example.pem")) {
			found_domain = true;
			ck_assert_msg(in->n_domains == 1 &&
					  strcmp(in->domains[0],
						 "org.example") == 0 &&
					  in->n_addresses == 0,
				      "domain file: got %zu domains, %zu "
				      "addresses",
				      in->n_domains, in->n_addresses);
		}
		if (strstr(in->path, "/bob-enc.pem")) {
			found_enc = true;
			ck_assert(!in->can_sign && in->can_encrypt);
			ck_assert(in->n_addresses == 1 &&
				  strcmp(in->addresses[0], "bob@org.example") ==
				      0);
		}
	}
	ck_assert(found_domain && found_enc);
	ck_assert(keystore_info_at(ks, K_N) == NULL);
	free_bob_certs();
}
END_TEST

START_TEST(test_domain_keys_by_san_or_by_import_file_name)
{
	X509 *san = ee(ec_keys[0], "email:@dept.example", -10, 300, NULL);
	X509 *named = ee(ec_keys[1], "email:robot@org2.example", -10, 300,
			 NULL);
	const struct keystore_key *k = NULL;
	bool dom = false;

	cg_write_pem(in_dir("dept.pem"), ec_keys[0], san, NULL, 0600);
	cg_write_pem(in_dir("@Org2.Example_0123456789abcdef.pem"), ec_keys[1],
		     named, NULL, 0600);
	load_ok();
	ck_assert_int_eq(keystore_signer(ks, "anyone@dept.example", CG_NOW, &k,
					 &dom),
			 SM_OK);
	ck_assert(X509_cmp(k->cert, san) == 0 && dom);
	ck_assert_int_eq(keystore_signer(ks, "x@org2.example", CG_NOW, &k,
					 &dom),
			 SM_OK);
	ck_assert(X509_cmp(k->cert, named) == 0 && dom);
	/* A file named after a domain is not also robot's user key. */
	ck_assert_int_eq(keystore_signer(ks, "robot@org2.example", CG_NOW, &k,
					 &dom),
			 SM_OK);
	ck_assert(dom);
	X509_free(san);
	X509_free(named);
}
END_TEST

/* ---- unsafe and bad files ---- */

static const struct {
	mode_t mode;
	bool refused;
} mode_cases[] = {
	{ 0600, false }, { 0400, false }, { 0640, true }, { 0604, true },
	{ 0644, true },	 { 0660, true },  { 0620, true }, { 0602, true },
};

START_TEST(test_key_files_others_can_access_are_skipped_naming_them)
{
	X509 *x = ee(ec_keys[0], "email:bob@org.example", -10, 300, NULL);
	char want[64];
	const char *why;

	cg_write_pem(in_dir("bob.pem"), ec_keys[0], x, NULL,
		     mode_cases[_i].mode);
	load_ok();
	if (!mode_cases[_i].refused) {
		ck_assert_msg(keystore_count(ks) == 1 &&
				  keystore_problem_count(ks) == 0,
			      "mode %04o: got %zu keys, %zu problems, want 1, 0",
			      (unsigned int)mode_cases[_i].mode,
			      keystore_count(ks), keystore_problem_count(ks));
	} else {
		ck_assert_msg(keystore_count(ks) == 0 &&
				  keystore_problem_count(ks) == 1,
			      "mode %04o: got %zu keys, %zu problems, want 0, 1",
			      (unsigned int)mode_cases[_i].mode,
			      keystore_count(ks), keystore_problem_count(ks));
		why = keystore_problem_at(ks, 0);
		ck_assert_msg(strstr(why, in_dir("bob.pem")) == why,
			      "problem does not start with the file name: %s",
			      why);
		snprintf(want, sizeof(want), "(mode %04o)",
			 (unsigned int)mode_cases[_i].mode);
		ck_assert_msg(strstr(why, want) != NULL,
			      "problem does not give the mode: %s", why);
	}
	X509_free(x);
}
END_TEST

enum bad_kind { B_CERT_ONLY, B_KEY_ONLY, B_WRONG_CERT, B_TWO_KEYS,
		B_ENCRYPTED, B_GARBAGE };

static const struct {
	enum bad_kind kind;
	const char *want; /* after "PATH: " */
} bad_cases[] = {
	{ B_CERT_ONLY, "no private key" },
	{ B_KEY_ONLY, "no certificate matches the private key" },
	{ B_WRONG_CERT, "no certificate matches the private key" },
	{ B_TWO_KEYS, "more than one private key (one key per file)" },
	{ B_ENCRYPTED, "private key is encrypted; keys_dir files hold "
		       "unencrypted keys protected by mode 0600" },
	{ B_GARBAGE, "no private key" },
};

START_TEST(test_a_bad_key_file_is_skipped_naming_it)
{
	X509 *x = ee(ec_keys[0], "email:bob@org.example", -10, 300, NULL);
	char path[1024], err[2048] = "", want[2048];
	FILE *f;
	sm_status st;

	/* A good file next to it must not hide the bad one (in_dir's
	 * buffer is static: keep our own copy of the path). */
	cg_write_pem(in_dir("good.pem"), ec_keys[0], x, NULL, 0600);
	snprintf(path, sizeof(path), "%s", in_dir("bad.pem"));
	switch (bad_cases[_i].kind) {
	case B_CERT_ONLY: cg_write_pem(path, NULL, x, NULL, 0600); break;
	case B_KEY_ONLY: cg_write_pem(path, ec_keys[1], NULL, NULL, 0600); break;
	case B_WRONG_CERT: cg_write_pem(path, ec_keys[1], x, NULL, 0600); break;
	case B_TWO_KEYS:
		cg_write_pem(path, ec_keys[0], x, NULL, 0600);
		f = fopen(path, "a");
		ck_assert(f && PEM_write_PrivateKey(f, ec_keys[1], NULL, NULL,
						    0, NULL, NULL) == 1);
		fclose(f);
		break;
	case B_ENCRYPTED:
		f = fopen(path, "w");
		ck_assert(f && PEM_write_PrivateKey(f, ec_keys[0],
						    EVP_aes_256_cbc(),
						    (unsigned char *)"pw", 2,
						    NULL, NULL) == 1);
		ck_assert(PEM_write_X509(f, x) == 1);
		fclose(f);
		ck_assert(chmod(path, 0600) == 0);
		break;
	case B_GARBAGE:
		f = fopen(path, "w");
		ck_assert(f != NULL);
		fputs("this is not PEM\n", f);
		fclose(f);
		ck_assert(chmod(path, 0600) == 0);
		break;
	}
	/* The good key loads; the bad one is skipped, named, with why. */
	st = keystore_load(dir, &ks, err, sizeof(err));
	snprintf(want, sizeof(want), "%s: %s", path, bad_cases[_i].want);
	ck_assert_msg(st == SM_OK && keystore_count(ks) == 1,
		      "got %s and %zu keys (%s | %s), want ok and the good one",
		      sm_strstatus(st), keystore_count(ks),
		      keystore_problem_at(ks, 0), keystore_problem_at(ks, 1));
	ck_assert_msg(keystore_problem_count(ks) == 1 &&
			  strcmp(keystore_problem_at(ks, 0), want) == 0,
		      "got problem \"%s\", want \"%s\"",
		      keystore_problem_at(ks, 0), want);
	X509_free(x);
}
END_TEST

START_TEST(test_files_other_than_visible_pem_files_are_ignored)
{
	X509 *x = ee(ec_keys[0], "email:bob@org.example", -10, 300, NULL);
	FILE *f;

	cg_write_pem(in_dir("bob.pem"), ec_keys[0], x, NULL, 0600);
	f = fopen(in_dir("README"), "w");
	ck_assert(f != NULL);
	fputs("keys live here\n", f);
	fclose(f);
	/* An interrupted import's temporary file, and other non-PEM names. */
	cg_write_pem(in_dir(".import-abc123"), NULL, x, NULL, 0644);
	cg_write_pem(in_dir("bob.pem.bak"), NULL, x, NULL, 0644);
	ck_assert(mkdir(in_dir("old"), 0700) == 0);
	load_ok();
	ck_assert_uint_eq(keystore_count(ks), 1);
	X509_free(x);
}
END_TEST

START_TEST(test_an_empty_directory_has_no_keys_and_a_missing_one_fails)
{
	const struct keystore_key *k = NULL;
	char err[512] = "";

	load_ok();
	ck_assert_uint_eq(keystore_count(ks), 0);
	ck_assert_int_eq(keystore_signer(ks, "bob@org.example", CG_NOW, &k,
					 NULL),
			 SM_ERR_NOKEY);
	keystore_free(ks);
	ks = NULL;
	ck_assert_int_eq(keystore_load(in_dir("missing"), &ks, err,
				       sizeof(err)),
			 SM_ERR_IO);
	ck_assert_msg(strstr(err, in_dir("missing")) != NULL, "got \"%s\"",
		      err);
}
END_TEST

/* keys_dir itself: whoever may write it may add or swap keys. */
static const struct {
	mode_t mode;
	uid_t dir_uid, owner;
	const char *want; /* after "DIR: ", NULL: loads */
} dir_cases[] = {
	{ 0700, 0, 1234, NULL },
	{ 0755, 0, 1234, NULL },
	{ 0700, 1234, 1234, NULL },
	{ 0777, 0, 1234, "keys_dir is writable by group or others (mode 0777), so they could add or replace keys; chmod 700 it" },
	{ 0770, 0, 1234, "keys_dir is writable by group or others (mode 0770), so they could add or replace keys; chmod 700 it" },
	{ 0702, 0, 1234, "keys_dir is writable by group or others (mode 0702), so they could add or replace keys; chmod 700 it" },
	{ 0700, 4321, 1234, "keys_dir belongs to uid 4321, who could swap our keys; it must belong to root or to the daemon's user (uid 1234): chown it" },
};

START_TEST(test_an_unsafe_keys_dir_loads_nothing)
{
	X509 *x = ee(ec_keys[0], "email:bob@org.example", -10, 300, NULL);
	char err[1024] = "", want[1024];
	sm_status st;

	cg_write_pem(in_dir("bob.pem"), ec_keys[0], x, NULL, 0600);
	ck_assert(chmod(dir, dir_cases[_i].mode) == 0);
	ck_assert(chown(dir, dir_cases[_i].dir_uid, (gid_t)-1) == 0);
	st = keystore_load_for(dir, dir_cases[_i].owner, &ks, err, sizeof(err));
	if (dir_cases[_i].want == NULL) {
		ck_assert_msg(st == SM_OK && keystore_count(ks) == 1,
			      "case %d: got %s (%s), want the key loaded", _i,
			      sm_strstatus(st), err);
	} else {
		snprintf(want, sizeof(want), "%s: %s", dir, dir_cases[_i].want);
		ck_assert_msg(st == SM_ERR_PERM && ks == NULL,
			      "case %d: got %s, want unsafe permissions", _i,
			      sm_strstatus(st));
		ck_assert_msg(strcmp(err, want) == 0,
			      "case %d: got \"%s\", want \"%s\"", _i, err, want);
	}
	ck_assert(chown(dir, 0, (gid_t)-1) == 0);
	X509_free(x);
}
END_TEST

START_TEST(test_linked_and_foreign_key_files_are_skipped)
{
	X509 *x = ee(ec_keys[0], "email:bob@org.example", -10, 300, NULL);
	X509 *y = ee(ec_keys[1], "email:carol@org.example", -10, 300, NULL);
	char outside[1100], want[2048];

	/* A symbolic link to a perfectly good key file elsewhere. */
	snprintf(outside, sizeof(outside), "%s.outside.pem", dir);
	cg_write_pem(outside, ec_keys[0], x, NULL, 0600);
	ck_assert(symlink(outside, in_dir("bob.pem")) == 0);
	/* carol's file belongs to uid 4321; the daemon's user is 1234. */
	cg_write_pem(in_dir("carol.pem"), ec_keys[1], y, NULL, 0600);
	ck_assert(chown(in_dir("carol.pem"), 4321, (gid_t)-1) == 0);
	ck_assert_int_eq(keystore_load_for(dir, 1234, &ks, NULL, 0), SM_OK);
	ck_assert_uint_eq(keystore_count(ks), 0);
	ck_assert_uint_eq(keystore_problem_count(ks), 2);
	snprintf(want, sizeof(want),
		 "%s: is a symbolic link; keys_dir must hold the key file itself "
		 "(replace the link by the file)", in_dir("bob.pem"));
	ck_assert_msg(strcmp(keystore_problem_at(ks, 0), want) == 0,
		      "got \"%s\", want \"%s\"", keystore_problem_at(ks, 0), want);
	snprintf(want, sizeof(want),
		 "%s: private key file belongs to uid 4321, who could replace our "
		 "key; it must belong to root or to the daemon's user (uid 1234): "
		 "chown it", in_dir("carol.pem"));
	ck_assert_msg(strcmp(keystore_problem_at(ks, 1), want) == 0,
		      "got \"%s\", want \"%s\"", keystore_problem_at(ks, 1), want);
	keystore_free(ks);
	ks = NULL;
	/* The daemon's own user may own its key files. */
	ck_assert_int_eq(keystore_load_for(dir, 4321, &ks, NULL, 0), SM_OK);
	ck_assert_uint_eq(keystore_count(ks), 1);
	unlink(outside);
	X509_free(x);
	X509_free(y);
}
END_TEST

START_TEST(test_a_skipped_file_marks_its_address_broken_by_name)
{
	FILE *f;
	const char *names[] = { "bob@Org.Example_0123456789abcdef.pem", "@dept.example.pem" };

	for (size_t i = 0; i < 2; i++) {
		f = fopen(in_dir(names[i]), "w");
		ck_assert(f != NULL);
		fputs("garbage\n", f);
		fclose(f);
		ck_assert(chmod(in_dir(names[i]), 0600) == 0);
	}
	load_ok();
	ck_assert_uint_eq(keystore_problem_count(ks), 2);
	ck_assert(keystore_broken_for(ks, "bob@org.example"));
	ck_assert(keystore_broken_for(ks, "anyone@DEPT.example"));
	ck_assert(!keystore_broken_for(ks, "alice@org.example"));
	ck_assert(!keystore_broken_for(ks, "bob@other.example"));
}
END_TEST

/* ---- PKCS#12 ---- */

static unsigned char *
make_p12(EVP_PKEY *key, X509 *cert, const char *pass, int nid_cert,
	 size_t *len)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	PKCS12 *p12;
	unsigned char *der = NULL, *out;
	int n;

	ck_assert(chain && sk_X509_push(chain, ca) > 0);
	p12 = PKCS12_create(pass, "test", key, cert, chain, 0, nid_cert, 0, 0,
			    0);
	ck_assert_msg(p12 != NULL, "PKCS12_create failed");
	n = i2d_PKCS12(p12, &der);
	ck_assert(n > 0);
	out = malloc((size_t)n);
	ck_assert(out != NULL);
	memcpy(out, der, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(der);
	PKCS12_free(p12);
	sk_X509_free(chain);
	return out;
}

/* The entries of dir other than "." and "..". */
static int
dir_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	ck_assert(d != NULL);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* The PBE algorithm of the shrouded key bag, the encryption algorithm of
 * the certificate bag and the MAC digest of a PKCS#12. */
static void
p12_algs(const unsigned char *der, size_t len, int *key_alg, int *cert_alg,
	 int *mac_md)
{
	const unsigned char *p = der;
	PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
	STACK_OF(PKCS7) *safes;
	const X509_ALGOR *macalg = NULL;
	const ASN1_OBJECT *obj;
	int i, j;

	ck_assert(p12 != NULL);
	*key_alg = *cert_alg = *mac_md = NID_undef;
	safes = PKCS12_unpack_authsafes(p12);
	ck_assert(safes != NULL);
	for (i = 0; i < sk_PKCS7_num(safes); i++) {
		PKCS7 *p7 = sk_PKCS7_value(safes, i);
		STACK_OF(PKCS12_SAFEBAG) *bags;

		if (OBJ_obj2nid(p7->type) == NID_pkcs7_encrypted) {
			X509_ALGOR_get0(&obj, NULL, NULL,
					p7->d.encrypted->enc_data->algorithm);
			*cert_alg = OBJ_obj2nid(obj);
			continue;
		}
		bags = PKCS12_unpack_p7data(p7);
		for (j = 0; bags && j < sk_PKCS12_SAFEBAG_num(bags); j++) {
			const PKCS12_SAFEBAG *bag =
			    sk_PKCS12_SAFEBAG_value(bags, j);
			const X509_ALGOR *alg;

			if (PKCS12_SAFEBAG_get_nid(bag) !=
			    NID_pkcs8ShroudedKeyBag)
				continue;
			X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg,
				      NULL);
			X509_ALGOR_get0(&obj, NULL, NULL, alg);
			*key_alg = OBJ_obj2nid(obj);
		}
		sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	}
	sk_PKCS7_pop_free(safes, PKCS7_free);
	PKCS12_get0_mac(NULL, &macalg, NULL, NULL, p12);
	if (macalg) {
		X509_ALGOR_get0(&obj, NULL, NULL, macalg);
		*mac_md = OBJ_obj2nid(obj);
	}
	PKCS12_free(p12);
}

/* Parse an exported PKCS#12 and compare it with the original. */
static void
assert_p12_holds(const unsigned char *der, size_t len, const char *pass,
		 EVP_PKEY *key, X509 *cert)
{
	const unsigned char *p = der;
	PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	STACK_OF(X509) *chain = NULL;

	ck_assert(p12 != NULL);
	ck_assert_msg(PKCS12_parse(p12, pass, &k, &c, &chain) == 1,
		      "the export does not parse with its password");
	ck_assert_msg(EVP_PKEY_eq(k, key) == 1, "exported key differs");
	ck_assert_msg(X509_cmp(c, cert) == 0, "exported certificate differs");
	ck_assert_msg(chain && sk_X509_num(chain) == 1 &&
			  X509_cmp(sk_X509_value(chain, 0), ca) == 0,
		      "exported chain is not the CA");
	EVP_PKEY_free(k);
	X509_free(c);
	sk_X509_pop_free(chain, X509_free);
	PKCS12_free(p12);
}

START_TEST(test_pkcs12_import_then_export_round_trips)
{
	X509 *x = ee(rsa_a, "email:Bob@Org.Example", -10, 300, KU_SIGN_ENC);
	const struct keystore_key *k = NULL;
	unsigned char *p12, *out = NULL;
	size_t len, olen = 0;
	char path[1024], err[512], fp[X509U_FP_SIZE], want[1024];
	struct stat sb;
	mode_t old_umask;
	int key_alg, cert_alg, mac_md;
	sm_status st;

	p12 = make_p12(rsa_a, x, "secret", 0, &len);
	/* Even with a careless umask the key file is private. */
	old_umask = umask(0);
	st = keystore_import_p12(dir, p12, len, "secret", path, sizeof(path),
				 err, sizeof(err));
	umask(old_umask);
	ck_assert_msg(st == SM_OK, "import: got %s (%s)", sm_strstatus(st),
		      err);
	ck_assert(x509u_fingerprint(x, fp) == SM_OK);
	snprintf(want, sizeof(want), "%s/bob@org.example_%.16s.pem", dir, fp);
	ck_assert_msg(strcmp(path, want) == 0, "got path %s, want %s", path,
		      want);
	ck_assert(stat(path, &sb) == 0);
	ck_assert_msg((sb.st_mode & 07777) == 0600, "got mode %04o, want 0600",
		      (unsigned int)(sb.st_mode & 07777));
	ck_assert_int_eq(dir_entries(), 1);

	load_ok();
	ck_assert_int_eq(keystore_signer(ks, "Bob@org.example", CG_NOW, &k,
					 NULL),
			 SM_OK);
	ck_assert(X509_cmp(k->cert, x) == 0 && EVP_PKEY_eq(k->pkey, rsa_a) == 1);

	st = keystore_export_p12(ks, "Bob@org.example", CG_NOW, "other pw",
				 KEYSTORE_P12_DEFAULT, &out, &olen, err,
				 sizeof(err));
	ck_assert_msg(st == SM_OK, "export: %s (%s)", sm_strstatus(st), err);
	assert_p12_holds(out, olen, "other pw", rsa_a, x);
	p12_algs(out, olen, &key_alg, &cert_alg, &mac_md);
	ck_assert_msg(key_alg == NID_pbes2 && cert_alg == NID_pbes2 &&
			  mac_md == NID_sha256,
		      "default export: got key %s, certs %s, MAC %s; want "
		      "PBES2, PBES2, SHA256",
		      OBJ_nid2sn(key_alg), OBJ_nid2sn(cert_alg),
		      OBJ_nid2sn(mac_md));
	free(out);

	st = keystore_export_p12(ks, "Bob@org.example", CG_NOW, "other pw",
				 KEYSTORE_P12_LEGACY, &out, &olen, err,
				 sizeof(err));
	ck_assert_msg(st == SM_OK, "legacy export: %s (%s)", sm_strstatus(st),
		      err);
	assert_p12_holds(out, olen, "other pw", rsa_a, x);
	p12_algs(out, olen, &key_alg, &cert_alg, &mac_md);
	ck_assert_msg(key_alg == NID_pbe_WithSHA1And3_Key_TripleDES_CBC &&
			  cert_alg == NID_pbe_WithSHA1And3_Key_TripleDES_CBC &&
			  mac_md == NID_sha1,
		      "legacy export: got key %s, certs %s, MAC %s; want 3DES, "
		      "3DES, SHA1",
		      OBJ_nid2sn(key_alg), OBJ_nid2sn(cert_alg),
		      OBJ_nid2sn(mac_md));
	free(out);
	free(p12);
	X509_free(x);
}
END_TEST

START_TEST(test_pkcs12_with_a_wrong_password_fails_cleanly)
{
	X509 *x = ee(rsa_b, "email:bob@org.example", -10, 300, KU_SIGN_ENC);
	unsigned char *p12;
	size_t len;
	char path[1024] = "x", err[512] = "";
	sm_status st;

	p12 = make_p12(rsa_b, x, "secret", 0, &len);
	st = keystore_import_p12(dir, p12, len, "Secret", path, sizeof(path),
				 err, sizeof(err));
	ck_assert_msg(st == SM_ERR_VERIFY, "got %s, want verification failed",
		      sm_strstatus(st));
	ck_assert_str_eq(err, "PKCS#12: wrong password");
	ck_assert_str_eq(path, "");
	ck_assert_msg(dir_entries() == 0, "import left %d files behind",
		      dir_entries());
	ck_assert_msg(ERR_peek_error() == 0, "OpenSSL errors left queued");
	free(p12);
	X509_free(x);
}
END_TEST

START_TEST(test_something_that_is_not_pkcs12_is_refused)
{
	static const unsigned char junk[] = "-----BEGIN CERTIFICATE-----\n";
	char err[512] = "";

	ck_assert_int_eq(keystore_import_p12(dir, junk, sizeof(junk) - 1, "pw",
					     NULL, 0, err, sizeof(err)),
			 SM_ERR_PARSE);
	ck_assert_str_eq(err, "PKCS#12: not a PKCS#12 file");
	ck_assert_int_eq(dir_entries(), 0);
}
END_TEST

START_TEST(test_pkcs12_without_a_password_imports)
{
	X509 *x = ee(ec_keys[2], "email:nopw@org.example", -10, 300, NULL);
	unsigned char *p12;
	size_t len;
	char err[512] = "";
	sm_status st;

	p12 = make_p12(ec_keys[2], x, "", 0, &len);
	st = keystore_import_p12(dir, p12, len, NULL, NULL, 0, err,
				 sizeof(err));
	ck_assert_msg(st == SM_OK, "got %s (%s)", sm_strstatus(st), err);
	free(p12);
	X509_free(x);
}
END_TEST

START_TEST(test_an_old_rc2_pkcs12_imports)
{
	X509 *x = ee(rsa_b, "email:old@org.example", -10, 300, KU_SIGN_ENC);
	OSSL_PROVIDER *legacy;
	unsigned char *p12;
	size_t len;
	char err[512] = "";
	sm_status st;

	/* Making one needs the legacy provider; the import must cope
	 * without it being loaded. No silent skip: fail if it is missing. */
	legacy = OSSL_PROVIDER_try_load(NULL, "legacy", 1);
	ck_assert_msg(legacy != NULL,
		      "the OpenSSL legacy provider is needed to build an RC2 "
		      "PKCS#12 (libssl3 ships it)");
	p12 = make_p12(rsa_b, x, "pw", NID_pbe_WithSHA1And40BitRC2_CBC, &len);
	ck_assert(OSSL_PROVIDER_unload(legacy) == 1);
	ERR_clear_error();
	st = keystore_import_p12(dir, p12, len, "pw", NULL, 0, err,
				 sizeof(err));
	ck_assert_msg(st == SM_OK, "got %s (%s)", sm_strstatus(st), err);
	free(p12);
	X509_free(x);
}
END_TEST

START_TEST(test_a_domain_certificate_imports_as_a_domain_key_file)
{
	X509 *x = ee(ec_keys[3], "email:@org.example", -10, 300, NULL);
	const struct keystore_key *k = NULL;
	unsigned char *p12;
	size_t len;
	char path[1024], err[512] = "", fp[X509U_FP_SIZE];
	bool dom = false;

	p12 = make_p12(ec_keys[3], x, "pw", 0, &len);
	ck_assert_int_eq(keystore_import_p12(dir, p12, len, "pw", path,
					     sizeof(path), err, sizeof(err)),
			 SM_OK);
	ck_assert(x509u_fingerprint(x, fp) == SM_OK);
	ck_assert_msg(strstr(path, "/@org.example_") != NULL &&
			  strstr(path, fp) == NULL &&
			  strncmp(strrchr(path, '_') + 1, fp, 16) == 0,
		      "got path %s", path);
	load_ok();
	ck_assert_int_eq(keystore_signer(ks, "anyone@org.example", CG_NOW, &k,
					 &dom),
			 SM_OK);
	ck_assert(dom && X509_cmp(k->cert, x) == 0);
	free(p12);
	X509_free(x);
}
END_TEST

START_TEST(test_export_takes_the_newest_key_even_when_expired)
{
	X509 *old = ee(ec_keys[0], "email:gone@org.example", -800, -400, NULL);
	X509 *older = ee(ec_keys[1], "email:gone@org.example", -900, -500, NULL);
	unsigned char *out = NULL;
	size_t olen = 0;
	char err[512] = "";

	cg_write_pem(in_dir("gone-1.pem"), ec_keys[0], old, ca, 0600);
	cg_write_pem(in_dir("gone-0.pem"), ec_keys[1], older, ca, 0600);
	load_ok();
	ck_assert_int_eq(keystore_export_p12(ks, "gone@org.example", CG_NOW,
					     "pw", KEYSTORE_P12_DEFAULT, &out,
					     &olen, err, sizeof(err)),
			 SM_OK);
	assert_p12_holds(out, olen, "pw", ec_keys[0], old);
	free(out);
	ck_assert_int_eq(keystore_export_p12(ks, "nobody@org.example", CG_NOW,
					     "pw", KEYSTORE_P12_DEFAULT, &out,
					     &olen, err, sizeof(err)),
			 SM_ERR_NOKEY);
	ck_assert_str_eq(err, "no key for nobody@org.example");
	ck_assert(out == NULL);
	X509_free(old);
	X509_free(older);
}
END_TEST

/* Run a shell command, collecting its output (stdout and stderr). */
static int
run(const char *cmd, char *out, size_t outlen)
{
	FILE *p = popen(cmd, "r");
	size_t have = 0, r;
	int status;

	ck_assert_msg(p != NULL, "cannot run %s", cmd);
	while (have + 1 < outlen &&
	       (r = fread(out + have, 1, outlen - have - 1, p)) > 0)
		have += r;
	out[have] = '\0';
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
write_file(const char *path, const unsigned char *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert(f != NULL && fwrite(p, 1, len, f) == len);
	ck_assert(fclose(f) == 0);
}

/* Cross-check with an independent implementation (STYLE.md): gpgsm 2.2
 * must import our legacy export, and what gpgsm exports (RC2-40
 * certificate bags, which plain OpenSSL 3 cannot decrypt) must import
 * here. */
START_TEST(test_pkcs12_round_trips_through_gpgsm)
{
	X509 *x = ee(rsa_a, "email:gpg@org.example", -10, 300, KU_SIGN_ENC);
	const struct keystore_key *k = NULL;
	char gh[1024], cmd[4096], out[8192], err[512] = "", fpr[64] = "";
	char outdir[1024];
	unsigned char *p12 = NULL, *back;
	size_t len = 0, blen = 0;
	const char *l;
	sm_status st;

	ck_assert_msg(run("gpgsm --version 2>&1", out, sizeof(out)) == 0,
		      "gpgsm is needed for this cross-check (scripts/deps "
		      "installs it): %s",
		      out);
	cg_write_pem(in_dir("gpg.pem"), rsa_a, x, ca, 0600);
	load_ok();
	snprintf(gh, sizeof(gh), "%s", gnupg_home);
	snprintf(outdir, sizeof(outdir), "%s/imported", dir);
	ck_assert(mkdir(outdir, 0700) == 0);
	snprintf(cmd, sizeof(cmd), "%s/gpg-agent.conf", gh);
	write_file(cmd, (const unsigned char *)"allow-loopback-pinentry\n", 24);
	snprintf(cmd, sizeof(cmd), "%s/pw", gh);
	write_file(cmd, (const unsigned char *)"pw\npw\npw\npw\n", 12);
	/* gpgsm 2.2 rejects a few legacy exports depending on the random
	 * salt (TESTING-NOTES.md): a fresh export is a fresh salt. Five
	 * failures in a row would be a real incompatibility. */
	for (int attempt = 0; attempt < 5; attempt++) {
		free(p12);
		p12 = NULL;
		ck_assert_int_eq(keystore_export_p12(ks, "gpg@org.example", CG_NOW,
						     "pw", KEYSTORE_P12_LEGACY, &p12,
						     &len, err, sizeof(err)),
				 SM_OK);
		write_file(in_dir("ours.p12"), p12, len);
		snprintf(cmd, sizeof(cmd),
			 "GNUPGHOME=%s gpgsm --batch --pinentry-mode loopback "
			 "--passphrase-fd 0 --import %s/ours.p12 < %s/pw 2>&1",
			 gh, dir, gh);
		run(cmd, out, sizeof(out));
		if (strstr(out, "secret keys imported: 1") != NULL)
			break;
	}
	ck_assert_msg(strstr(out, "secret keys imported: 1") != NULL,
		      "gpgsm did not import our legacy PKCS#12 in 5 fresh exports:\n%s", out);

	snprintf(cmd, sizeof(cmd),
		 "GNUPGHOME=%s gpgsm --list-secret-keys --with-colons 2>&1",
		 gh);
	run(cmd, out, sizeof(out));
	l = strstr(out, "\nfpr:");
	ck_assert_msg(l != NULL && sscanf(l + 1, "fpr:::::::::%40[0-9A-F]",
					  fpr) == 1,
		      "no fingerprint in gpgsm's listing:\n%s", out);
	snprintf(cmd, sizeof(cmd),
		 "GNUPGHOME=%s gpgsm --batch --pinentry-mode loopback "
		 "--passphrase-fd 0 --export-secret-key-p12 %s "
		 "> %s/theirs.p12 < %s/pw 2>/dev/null",
		 gh, fpr, dir, gh);
	run(cmd, out, sizeof(out));
	back = testutil_slurp(in_dir("theirs.p12"), &blen);
	ck_assert_msg(back != NULL && blen > 0, "gpgsm exported nothing");
	st = keystore_import_p12(outdir, back, blen, "pw", NULL, 0, err,
				 sizeof(err));
	ck_assert_msg(st == SM_OK, "importing gpgsm's export: got %s (%s)",
		      sm_strstatus(st), err);
	keystore_free(ks);
	ks = NULL;
	ck_assert_int_eq(keystore_load(outdir, &ks, err, sizeof(err)), SM_OK);
	ck_assert_int_eq(keystore_signer(ks, "gpg@org.example", CG_NOW, &k,
					 NULL),
			 SM_OK);
	ck_assert(X509_cmp(k->cert, x) == 0 && EVP_PKEY_eq(k->pkey, rsa_a) == 1);
	free(back);
	free(p12);
	X509_free(x);
}
END_TEST

static Suite *
keystore_suite(void)
{
	Suite *s = suite_create("keystore");
	TCase *tc = tcase_create("keystore");

	tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_signer_choice, 0,
			    (int)(sizeof(signer_cases) / sizeof(signer_cases[0])));
	tcase_add_test(tc, test_the_domain_key_covers_expired_user_keys);
	tcase_add_test(tc, test_pick_names_the_signing_key_of_an_address_or_a_domain);
	tcase_add_test(tc, test_every_key_decrypts_current_renewed_and_expired);
	tcase_add_test(tc, test_the_listing_describes_each_key);
	tcase_add_test(tc, test_domain_keys_by_san_or_by_import_file_name);
	tcase_add_loop_test(tc, test_key_files_others_can_access_are_skipped_naming_them, 0,
			    (int)(sizeof(mode_cases) / sizeof(mode_cases[0])));
	tcase_add_loop_test(tc, test_a_bad_key_file_is_skipped_naming_it, 0,
			    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_loop_test(tc, test_an_unsafe_keys_dir_loads_nothing, 0,
			    sizeof(dir_cases) / sizeof(dir_cases[0]));
	tcase_add_test(tc, test_linked_and_foreign_key_files_are_skipped);
	tcase_add_test(tc, test_a_skipped_file_marks_its_address_broken_by_name);
	tcase_add_test(tc, test_files_other_than_visible_pem_files_are_ignored);
	tcase_add_test(tc, test_an_empty_directory_has_no_keys_and_a_missing_one_fails);
	tcase_add_test(tc, test_pkcs12_import_then_export_round_trips);
	tcase_add_test(tc, test_pkcs12_with_a_wrong_password_fails_cleanly);
	tcase_add_test(tc, test_something_that_is_not_pkcs12_is_refused);
	tcase_add_test(tc, test_pkcs12_without_a_password_imports);
	tcase_add_test(tc, test_an_old_rc2_pkcs12_imports);
	tcase_add_test(tc, test_a_domain_certificate_imports_as_a_domain_key_file);
	tcase_add_test(tc, test_export_takes_the_newest_key_even_when_expired);
	tcase_add_test(tc, test_pkcs12_round_trips_through_gpgsm);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(keystore_suite());
}
