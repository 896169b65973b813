/*
 * keycache-v1-gen.c — made tests/data/keycache/v1.db with the key cache of
 * release 0.1.0 (schema version 1: bindings with the sticky enc_pref flag,
 * local part stored as written). Kept for the record; not built. Built
 * against that release's tree:
 *   cc -Ilib -Itests/unit -o gen v1-gen.c build/libsmime.a \
 *      -lcheck -lsubunit -lm -lrt -lcrypto -lconfig -lsqlite3 -lpthread && ./gen v1.db
 * Every certificate is valid from CG_NOW - 300 days (or later) to
 * CG_NOW + 3650 days; the test selects at CG_NOW + 1 day without trust.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "certgen.h"
#include "clock.h"
#include "keycache.h"

static EVP_PKEY *ca_key;
static X509 *ca;

static X509 *
leaf(const char *san, long nb_days, bool self_signed)
{
	struct cg_spec s;

	memset(&s, 0, sizeof(s));
	s.key = cg_ec();
	s.ca = self_signed ? NULL : ca;
	s.ca_key = self_signed ? NULL : ca_key;
	s.cn = "Partner";
	s.san = san;
	s.not_before = CG_NOW + nb_days * CG_DAY;
	s.not_after = CG_NOW + 3650 * CG_DAY;
	s.ku = "critical,digitalSignature,keyAgreement";
	s.eku = "emailProtection";
	return cg_make(&s);
}

static void
put(struct keycache *kc, X509 *x, const char *addr, bool enc_pref)
{
	if (keycache_store(kc, x, NULL, addr, CAP_KNOWN | CAP_AES128_CBC, enc_pref,
		KC_SRC_HARVESTED, NULL, NULL) != SM_OK) {
		ck_abort_msg("store %s failed", addr);
	}
}

static const char *out_path;

/* certgen.h asserts with Check, so the work runs as a Check test. */
START_TEST(generate)
{
	struct keycache *kc;
	char err[256];
	X509 *a, *b, *bs, *c1, *c2, *d, *e;

	ca_key = cg_ec();
	ca = cg_ca(ca_key, "Fixture CA");
	clock_set(CG_NOW);
	ck_assert_msg(keycache_open("sqlite", out_path, &kc, err, sizeof(err)) == SM_OK, "%s",
	    err);
	/* bob: the renewal bug. A named by sMIMEEncryptionKeyPreference,
	 * then the renewed B without it; version 1 keeps using A. */
	a = leaf("email:bob@partner.example", -300, false);
	b = leaf("email:bob@partner.example", -10, false);
	put(kc, a, "bob@partner.example", true);
	put(kc, b, "bob@partner.example", false);
	/* A mixed-case SAN, stored under two spellings of the local part. */
	bs = leaf("email:Bob.Smith@Partner.example", -20, false);
	put(kc, bs, "Bob.Smith@partner.example", false);
	put(kc, bs, "bob.smith@partner.example", false);
	/* carol: a plain renewal, the old one superseded. */
	c1 = leaf("email:carol@partner.example", -300, false);
	c2 = leaf("email:carol@partner.example", -10, false);
	put(kc, c1, "carol@partner.example", false);
	put(kc, c2, "carol@partner.example", false);
	/* dave: removed by the admin. */
	d = leaf("email:dave@partner.example", -10, false);
	put(kc, d, "dave@partner.example", false);
	keycache_remove_address(kc, "dave@partner.example", NULL);
	/* eve: self-signed (allow_self_signed). */
	e = leaf("email:eve@partner.example", -10, true);
	put(kc, e, "eve@partner.example", false);
	keycache_close(kc);
}
END_TEST

int
main(int argc, char **argv)
{
	Suite *s = suite_create("gen");
	TCase *tc = tcase_create("gen");
	SRunner *sr;
	int failed;

	if (argc != 2)
		return 2;
	out_path = argv[1];
	tcase_add_test(tc, generate);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
