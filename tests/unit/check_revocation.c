/*
 * check_revocation.c — CRL and OCSP verification: what counts as an answer
 * (issuer, signature, delegation, times, nonce) and what it says; the
 * rule of the hot path, and the judgment it keeps between lookups.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ocsp.h>

#include "certcache.h"
#include "certgen.h"
#include "config.h"
#include "revocation.h"
#include "revstore.h"
#include "revworker.h"
#include "testutil.h"

static EVP_PKEY *ca_key, *other_key, *bob_key, *resp_key;
static X509 *ca, *other_ca, *impostor;

static void
keys_setup(void)
{
	ca_key = cg_rsa(2048);
	other_key = cg_rsa(2048);
	bob_key = cg_rsa(2048);
	resp_key = cg_rsa(2048);
	ca = cg_ca(ca_key, "Partner CA");
	other_ca = cg_ca(other_key, "Other CA");
	/* Same name as the partner CA, another key: a forged issuer. */
	impostor = cg_ca(other_key, "Partner CA");
}

static void
keys_teardown(void)
{
	X509_free(ca);
	X509_free(other_ca);
	X509_free(impostor);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(bob_key);
	EVP_PKEY_free(resp_key);
}

static X509 *
bob_cert(void)
{
	struct cg_spec s = { .key = bob_key, .ca = ca, .ca_key = ca_key,
			     .san = "email:bob@partner.example",
			     .ku = "digitalSignature,keyEncipherment",
			     .eku = "emailProtection" };
	return cg_make(&s);
}

/* ---- CRLs ---- */

struct crl_case {
	const char *name;
	int signer;		/* 0 the CA, 1 another key under the CA's name */
	bool list_bob;
	int reason;		/* -1: no reason extension */
	time_t next_update;	/* relative to CG_NOW */
	enum rev_status want;
	const char *want_why;	/* substring, REV_UNKNOWN */
};

static const struct crl_case crl_cases[] = {
	{ "a CRL without bob says good", 0, false, -1, 7 * CG_DAY, REV_GOOD, NULL },
	{ "a CRL listing bob says revoked, with the reason", 0, true, 1, 7 * CG_DAY, REV_REVOKED, NULL },
	{ "a CRL listing bob without a reason", 0, true, -1, 7 * CG_DAY, REV_REVOKED, NULL },
	{ "a CRL signed by another key is no answer", 1, true, 1, 7 * CG_DAY, REV_UNKNOWN, "does not verify" },
	{ "an expired CRL is no answer", 0, true, 1, -2 * CG_DAY, REV_UNKNOWN, "CRL expired on 2025-05-30" },
	{ "a CRL within the clock leeway still counts", 0, false, -1, -60, REV_GOOD, NULL },
};

static unsigned char *
make_crl(X509 *bob, const struct crl_case *c, size_t *len)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t;
	unsigned char *der = NULL;
	int n;

	ck_assert(crl != NULL);
	ck_assert(X509_CRL_set_version(crl, 1) == 1);
	ck_assert(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) == 1);
	t = ASN1_TIME_set(NULL, CG_NOW - CG_DAY + (c->next_update < 0 ? c->next_update : 0));
	ck_assert(X509_CRL_set1_lastUpdate(crl, t) == 1);
	ASN1_TIME_free(t);
	t = ASN1_TIME_set(NULL, CG_NOW + c->next_update);
	ck_assert(X509_CRL_set1_nextUpdate(crl, t) == 1);
	ASN1_TIME_free(t);
	if (c->list_bob) {
		X509_REVOKED *r = X509_REVOKED_new();

		ck_assert(X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(bob)) == 1);
		t = ASN1_TIME_set(NULL, CG_NOW - 3 * CG_DAY);
		ck_assert(X509_REVOKED_set_revocationDate(r, t) == 1);
		ASN1_TIME_free(t);
		if (c->reason >= 0) {
			ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();

			ck_assert(ASN1_ENUMERATED_set(e, c->reason) == 1);
			ck_assert(X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, e, 0, 0) == 1);
			ASN1_ENUMERATED_free(e);
		}
		ck_assert(X509_CRL_add0_revoked(crl, r) == 1);
	}
	ck_assert(X509_CRL_sort(crl) == 1);
	ck_assert(X509_CRL_sign(crl, c->signer ? other_key : ca_key, EVP_sha256()) > 0);
	n = i2d_X509_CRL(crl, &der);
	ck_assert(n > 0);
	*len = (size_t)n;
	X509_CRL_free(crl);
	return der;
}

START_TEST(test_crl_cases)
{
	const struct crl_case *c = &crl_cases[_i];
	X509 *bob = bob_cert();
	struct rev_result r;
	size_t len;
	unsigned char *der = make_crl(bob, c, &len);

	ck_assert_int_eq(rev_crl_check(der, len, bob, ca, CG_NOW, &r), SM_OK);
	ck_assert_msg(r.status == c->want, "%s: got %s (%s), want %s", c->name,
		      rev_status_name(r.status), r.why, rev_status_name(c->want));
	ck_assert_int_eq(r.source, REV_SRC_CRL);
	if (c->want_why)
		ck_assert_msg(strstr(r.why, c->want_why) != NULL, "%s: got why \"%s\", want \"%s\"",
			      c->name, r.why, c->want_why);
	if (c->want == REV_REVOKED) {
		ck_assert_int_eq(r.revoked_at, CG_NOW - 3 * CG_DAY);
		ck_assert_str_eq(rev_reason_name(r.reason), c->reason < 0 ? "unspecified" : "keyCompromise");
	}
	if (c->want != REV_UNKNOWN)
		ck_assert_int_eq(r.next_update, CG_NOW + c->next_update);
	OPENSSL_free(der);
	X509_free(bob);
}
END_TEST

START_TEST(test_crl_of_another_issuer_is_no_answer)
{
	X509 *bob = bob_cert();
	struct crl_case c = { "x", 0, true, 1, 7 * CG_DAY, REV_UNKNOWN, NULL };
	struct rev_result r;
	size_t len;
	unsigned char *der = make_crl(bob, &c, &len);

	/* The right CRL, judged against another CA as the issuer. */
	ck_assert_int_eq(rev_crl_check(der, len, bob, other_ca, CG_NOW, &r), SM_OK);
	ck_assert_int_eq(r.status, REV_UNKNOWN);
	ck_assert_msg(strstr(r.why, "not from the certificate's issuer"), "got \"%s\"", r.why);
	/* And a CA with the right name and the wrong key. */
	ck_assert_int_eq(rev_crl_check(der, len, bob, impostor, CG_NOW, &r), SM_OK);
	ck_assert_int_eq(r.status, REV_UNKNOWN);
	ck_assert_int_eq(rev_crl_check((const unsigned char *)"garbage", 7, bob, ca, CG_NOW, &r),
			 SM_ERR_PARSE);
	OPENSSL_free(der);
	X509_free(bob);
}
END_TEST

/* ---- OCSP ---- */

enum signer { S_CA, S_OTHER, S_DELEGATE, S_DELEGATE_NO_EKU };
enum nonce { N_ECHO, N_NONE, N_WRONG };

struct ocsp_case {
	const char *name;
	enum signer signer;
	int status;		/* V_OCSP_CERTSTATUS_* */
	time_t next_update;	/* relative to CG_NOW; 0: absent */
	enum nonce nonce;
	int rsp_status;		/* OCSP_RESPONSE_STATUS_* */
	enum rev_status want;
	const char *want_why;
};

static const struct ocsp_case ocsp_cases[] = {
	{ "good, signed by the CA", S_CA, V_OCSP_CERTSTATUS_GOOD, CG_DAY, N_ECHO, 0, REV_GOOD, NULL },
	{ "revoked, signed by the CA", S_CA, V_OCSP_CERTSTATUS_REVOKED, CG_DAY, N_ECHO, 0, REV_REVOKED, NULL },
	{ "good from a delegated responder", S_DELEGATE, V_OCSP_CERTSTATUS_GOOD, CG_DAY, N_ECHO, 0, REV_GOOD, NULL },
	{ "a responder without id-kp-OCSPSigning is not delegated", S_DELEGATE_NO_EKU, V_OCSP_CERTSTATUS_GOOD, CG_DAY, N_ECHO, 0, REV_UNKNOWN, "not signed by the issuer" },
	{ "signed by another CA: wrong signer", S_OTHER, V_OCSP_CERTSTATUS_GOOD, CG_DAY, N_ECHO, 0, REV_UNKNOWN, "not signed by the issuer" },
	{ "an expired response is no answer", S_CA, V_OCSP_CERTSTATUS_GOOD, -CG_DAY, N_ECHO, 0, REV_UNKNOWN, "OCSP response expired on 2025-05-31" },
	{ "a response with another nonce is a replay", S_CA, V_OCSP_CERTSTATUS_GOOD, CG_DAY, N_WRONG, 0, REV_UNKNOWN, "nonce does not match" },
	{ "a response without a nonce still counts while current", S_CA, V_OCSP_CERTSTATUS_GOOD, CG_DAY, N_NONE, 0, REV_GOOD, NULL },
	{ "no nextUpdate: good for an hour", S_CA, V_OCSP_CERTSTATUS_GOOD, 0, N_ECHO, 0, REV_GOOD, NULL },
	{ "status unknown is no answer", S_CA, V_OCSP_CERTSTATUS_UNKNOWN, CG_DAY, N_ECHO, 0, REV_UNKNOWN, "does not know the certificate" },
	{ "tryLater is no answer", S_CA, V_OCSP_CERTSTATUS_GOOD, CG_DAY, N_ECHO, OCSP_RESPONSE_STATUS_TRYLATER, REV_UNKNOWN, "trylater" },
};

static X509 *
responder_cert(bool eku)
{
	struct cg_spec s = { .key = resp_key, .ca = ca, .ca_key = ca_key, .cn = "OCSP responder",
			     .ku = "digitalSignature", .eku = eku ? "OCSPSigning" : "emailProtection" };
	return cg_make(&s);
}

static unsigned char *
make_ocsp(X509 *bob, OCSP_REQUEST *req, const struct ocsp_case *c, size_t *len)
{
	OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
	OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), bob, ca);
	ASN1_GENERALIZEDTIME *thisu = ASN1_GENERALIZEDTIME_set(NULL, CG_NOW - 2 * CG_DAY);
	ASN1_GENERALIZEDTIME *nextu = c->next_update ? ASN1_GENERALIZEDTIME_set(NULL, CG_NOW + c->next_update) : NULL;
	ASN1_GENERALIZEDTIME *revt = ASN1_GENERALIZEDTIME_set(NULL, CG_NOW - 3 * CG_DAY);
	X509 *rc = NULL, *signer = ca;
	EVP_PKEY *key = ca_key;
	STACK_OF(X509) *extra = sk_X509_new_null();
	OCSP_RESPONSE *rsp;
	unsigned char *der = NULL;
	int n;

	ck_assert(OCSP_basic_add1_status(bs, id, c->status,
					 c->status == V_OCSP_CERTSTATUS_REVOKED ? OCSP_REVOKED_STATUS_KEYCOMPROMISE : -1,
					 revt, thisu, nextu) != NULL);
	if (c->nonce == N_ECHO)
		ck_assert(OCSP_copy_nonce(bs, req) == 1);
	else if (c->nonce == N_WRONG)
		ck_assert(OCSP_basic_add1_nonce(bs, (unsigned char *)"0123456789abcdef", 16) == 1);
	switch (c->signer) {
	case S_CA: break;
	case S_OTHER: signer = other_ca; key = other_key; break;
	case S_DELEGATE:
	case S_DELEGATE_NO_EKU:
		rc = responder_cert(c->signer == S_DELEGATE);
		signer = rc;
		key = resp_key;
		break;
	}
	ck_assert(OCSP_basic_sign(bs, signer, key, EVP_sha256(), extra, 0) == 1);
	rsp = OCSP_response_create(c->rsp_status ? c->rsp_status : OCSP_RESPONSE_STATUS_SUCCESSFUL,
				   c->rsp_status ? NULL : bs);
	ck_assert(rsp != NULL);
	n = i2d_OCSP_RESPONSE(rsp, &der);
	ck_assert(n > 0);
	*len = (size_t)n;
	OCSP_RESPONSE_free(rsp);
	OCSP_BASICRESP_free(bs);
	OCSP_CERTID_free(id);
	ASN1_GENERALIZEDTIME_free(thisu);
	ASN1_GENERALIZEDTIME_free(nextu);
	ASN1_GENERALIZEDTIME_free(revt);
	sk_X509_free(extra);
	X509_free(rc);
	return der;
}

START_TEST(test_ocsp_cases)
{
	const struct ocsp_case *c = &ocsp_cases[_i];
	X509 *bob = bob_cert();
	OCSP_REQUEST *req;
	unsigned char *qder, *der;
	size_t qlen, len;
	struct rev_result r;

	ck_assert_int_eq(rev_ocsp_request(bob, ca, true, &req, &qder, &qlen), SM_OK);
	ck_assert(qlen > 0);
	der = make_ocsp(bob, req, c, &len);
	ck_assert_int_eq(rev_ocsp_check(der, len, req, bob, ca, CG_NOW, &r), SM_OK);
	ck_assert_msg(r.status == c->want, "%s: got %s (%s), want %s", c->name,
		      rev_status_name(r.status), r.why, rev_status_name(c->want));
	ck_assert_int_eq(r.source, REV_SRC_OCSP);
	if (c->want_why)
		ck_assert_msg(strstr(r.why, c->want_why) != NULL, "%s: got why \"%s\", want \"%s\"",
			      c->name, r.why, c->want_why);
	if (c->want == REV_REVOKED) {
		ck_assert_int_eq(r.revoked_at, CG_NOW - 3 * CG_DAY);
		ck_assert_str_eq(rev_reason_name(r.reason), "keyCompromise");
	}
	if (c->want == REV_GOOD)
		ck_assert_int_eq(r.next_update, CG_NOW + (c->next_update ? c->next_update : REV_OCSP_TTL));
	OPENSSL_free(der);
	OPENSSL_free(qder);
	OCSP_REQUEST_free(req);
	X509_free(bob);
}
END_TEST

START_TEST(test_ocsp_answer_about_another_certificate_is_no_answer)
{
	X509 *bob = bob_cert(), *bob2 = bob_cert();
	const struct ocsp_case c = { "x", S_CA, V_OCSP_CERTSTATUS_GOOD, CG_DAY, N_NONE, 0, 0, NULL };
	OCSP_REQUEST *req;
	unsigned char *qder, *der;
	size_t qlen, len;
	struct rev_result r;

	ck_assert_int_eq(rev_ocsp_request(bob2, ca, false, &req, &qder, &qlen), SM_OK);
	der = make_ocsp(bob, req, &c, &len);
	ck_assert_int_eq(rev_ocsp_check(der, len, req, bob2, ca, CG_NOW, &r), SM_OK);
	ck_assert_int_eq(r.status, REV_UNKNOWN);
	ck_assert_msg(strstr(r.why, "another certificate"), "got \"%s\"", r.why);
	ck_assert_int_eq(rev_ocsp_check((const unsigned char *)"x", 1, req, bob2, ca, CG_NOW, &r),
			 SM_ERR_PARSE);
	OPENSSL_free(der);
	OPENSSL_free(qder);
	OCSP_REQUEST_free(req);
	X509_free(bob);
	X509_free(bob2);
}
END_TEST

START_TEST(test_urls_come_from_aia_and_distribution_points_http_only)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	char **u;
	size_t n;

	ck_assert(X509_set_pubkey(x, bob_key) == 1);
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	cg_ext(x, &ctx, NID_info_access, "OCSP;URI:http://127.0.0.1:9/ocsp,OCSP;URI:ldap://x/");
	cg_ext(x, &ctx, NID_crl_distribution_points, "URI:ldap://x/crl,URI:http://127.0.0.1:9/ca.crl");
	ck_assert_int_eq(rev_ocsp_urls(x, &u, &n), SM_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(u[0], "http://127.0.0.1:9/ocsp");
	rev_urls_free(u, n);
	ck_assert_int_eq(rev_crl_urls(x, &u, &n), SM_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(u[0], "http://127.0.0.1:9/ca.crl");
	rev_urls_free(u, n);
	X509_free(x);
}
END_TEST

START_TEST(test_issuer_is_found_by_signature_not_name)
{
	X509 *bob = bob_cert();
	STACK_OF(X509) *s = sk_X509_new_null();

	sk_X509_push(s, impostor);
	sk_X509_push(s, other_ca);
	ck_assert_ptr_null(rev_find_issuer(bob, s));
	sk_X509_push(s, ca);
	ck_assert_ptr_eq(rev_find_issuer(bob, s), ca);
	sk_X509_free(s);
	X509_free(bob);
}
END_TEST

/* ---- the store and the rule the hot path applies ---- */

static struct revstore *
store_new(char **dir)
{
	struct revstore *rs;
	char path[512], err[256];

	*dir = testutil_tmpdir();
	snprintf(path, sizeof(path), "%s/rev.db", *dir);
	ck_assert_msg(revstore_open(path, &rs, err, sizeof(err)) == SM_OK, "%s", err);
	return rs;
}

struct judge_case {
	const char *name;
	enum cfg_rev_check check;
	int grace_days;
	int state;		/* 0 never seen, 1 good, 2 revoked, 3 unknown, 4 good but stale */
	time_t age;		/* how long ago it was queued / answered */
	bool want_usable;
	const char *want_reason;
};

static const struct judge_case judge_cases[] = {
	{ "off: revoked is used", CFG_REV_OFF, 3, 2, CG_DAY, true, NULL },
	{ "soft: never seen is used (and queued)", CFG_REV_SOFT, 3, 0, 0, true, NULL },
	{ "soft: unknown for weeks is used", CFG_REV_SOFT, 3, 3, 30 * CG_DAY, true, NULL },
	{ "soft: revoked is refused", CFG_REV_SOFT, 3, 2, CG_DAY, false, "certificate revoked on 2025-05-28 (keyCompromise)" },
	{ "hard: good is used", CFG_REV_HARD, 0, 1, CG_DAY, true, NULL },
	{ "hard: never seen is used within grace", CFG_REV_HARD, 3, 0, 0, true, NULL },
	{ "hard: unknown within grace is used", CFG_REV_HARD, 3, 3, 2 * CG_DAY, true, NULL },
	{ "hard: unknown past grace is refused", CFG_REV_HARD, 3, 3, 4 * CG_DAY, false, "revocation status unknown since 2025-05-28" },
	{ "hard: a stale good answer counts as unknown from its nextUpdate", CFG_REV_HARD, 1, 4, 0, false, "revocation status unknown since 2025-05-29" },
	{ "hard: revoked is refused", CFG_REV_HARD, 3, 2, CG_DAY, false, "certificate revoked on" },
};

START_TEST(test_the_hot_path_rule)
{
	const struct judge_case *c = &judge_cases[_i];
	struct cfg_revocation rc = { c->check, (uint64_t)c->grace_days, 2000, NULL };
	X509 *bob = bob_cert();
	char *dir, fp[X509U_FP_SIZE], reason[160] = "";
	struct revstore *rs = store_new(&dir);
	struct rev_result r = { .reason = -1 };
	struct rev_entry e;
	time_t t0 = CG_NOW - c->age;
	STACK_OF(X509) *chain;
	bool ok;

	ck_assert_int_eq(x509u_fingerprint(bob, fp), SM_OK);
	if (c->state != 0)
		ck_assert_int_eq(revstore_enqueue(rs, bob, ca, t0), SM_OK);
	switch (c->state) {
	case 1: r.status = REV_GOOD; r.source = REV_SRC_OCSP; r.next_update = CG_NOW + CG_DAY; break;
	case 2: r.status = REV_REVOKED; r.source = REV_SRC_CRL; r.revoked_at = CG_NOW - 4 * CG_DAY;
		r.reason = 1; r.next_update = CG_NOW + CG_DAY; break;
	case 3: snprintf(r.why, sizeof(r.why), "Could not connect"); break;
	case 4: r.status = REV_GOOD; r.source = REV_SRC_CRL; r.next_update = CG_NOW - 3 * CG_DAY; break;
	}
	if (c->state != 0)
		ck_assert_int_eq(revstore_put(rs, fp, &r, c->state == 4 ? CG_NOW - 10 * CG_DAY : t0), SM_OK);
	chain = sk_X509_new_null();
	sk_X509_push(chain, other_ca);
	sk_X509_push(chain, ca);
	ok = revstore_usable(rs, &rc, bob, chain, NULL, CG_NOW, reason, sizeof(reason));
	sk_X509_free(chain);
	ck_assert_msg(ok == c->want_usable, "%s: got usable=%d (%s), want %d", c->name, ok, reason,
		      c->want_usable);
	if (c->want_reason)
		ck_assert_msg(strstr(reason, c->want_reason) != NULL, "%s: got \"%s\", want \"%s\"",
			      c->name, reason, c->want_reason);
	/* Never seen: queued for the worker, due now (unless off). */
	if (c->state == 0)
		ck_assert_int_eq(revstore_get(rs, fp, &e), c->check == CFG_REV_OFF ? SM_ERR_NOTFOUND : SM_OK);
	if (c->state == 0 && c->check != CFG_REV_OFF) {
		ck_assert_int_eq(e.due, CG_NOW);
		ck_assert_int_eq(e.unknown_since, CG_NOW);
		ck_assert(e.issuer != NULL);
		rev_entry_free(&e);
	}
	revstore_close(rs);
	testutil_rmtree(dir);
	free(dir);
	X509_free(bob);
}
END_TEST

START_TEST(test_a_failed_check_keeps_a_current_answer_and_backs_off)
{
	X509 *bob = bob_cert();
	char *dir, fp[X509U_FP_SIZE];
	struct revstore *rs = store_new(&dir);
	struct rev_result good = { .status = REV_GOOD, .source = REV_SRC_OCSP, .reason = -1,
				   .next_update = CG_NOW + CG_DAY };
	struct rev_result none = { .status = REV_UNKNOWN, .reason = -1, .why = "HTTP 500" };
	struct rev_entry e, *due;
	size_t n;

	ck_assert_int_eq(x509u_fingerprint(bob, fp), SM_OK);
	ck_assert_int_eq(revstore_enqueue(rs, bob, ca, CG_NOW), SM_OK);
	ck_assert_int_eq(revstore_put(rs, fp, &good, CG_NOW), SM_OK);
	/* Refreshed ahead of nextUpdate: after three quarters of a day. */
	ck_assert_int_eq(revstore_get(rs, fp, &e), SM_OK);
	ck_assert_int_eq(e.due, CG_NOW + CG_DAY - CG_DAY / 4);
	rev_entry_free(&e);
	ck_assert_int_eq(revstore_due(rs, CG_NOW + 3600, 16, &due, &n), SM_OK);
	ck_assert_uint_eq(n, 0);
	rev_entries_free(due, n);
	ck_assert_int_eq(revstore_put(rs, fp, &none, CG_NOW + 3600), SM_OK);
	ck_assert_int_eq(revstore_get(rs, fp, &e), SM_OK);
	ck_assert_int_eq(e.r.status, REV_GOOD);
	ck_assert_int_eq(e.unknown_since, 0);
	ck_assert_str_eq(e.last_error, "HTTP 500");
	ck_assert_int_eq(e.due, CG_NOW + 3600 + 60);
	rev_entry_free(&e);
	/* Past nextUpdate a failure makes it unknown since then. */
	ck_assert_int_eq(revstore_put(rs, fp, &none, CG_NOW + 2 * CG_DAY), SM_OK);
	ck_assert_int_eq(revstore_get(rs, fp, &e), SM_OK);
	ck_assert_int_eq(e.r.status, REV_UNKNOWN);
	ck_assert_int_eq(e.unknown_since, CG_NOW + CG_DAY);
	ck_assert_int_eq(e.due, CG_NOW + 2 * CG_DAY + 120); /* second failure: doubled */
	rev_entry_free(&e);
	revstore_close(rs);
	testutil_rmtree(dir);
	free(dir);
	X509_free(bob);
}
END_TEST

START_TEST(test_a_crl_carried_in_mail_is_stored_and_applied_when_the_issuer_signed_it)
{
	X509 *bob = bob_cert();
	char *dir, fp[X509U_FP_SIZE];
	struct revstore *rs = store_new(&dir);
	struct crl_case c = { "x", 0, true, 1, 7 * CG_DAY, REV_REVOKED, NULL };
	struct crl_case forged = { "x", 1, true, 1, 7 * CG_DAY, REV_REVOKED, NULL };
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	STACK_OF(X509) *certs = sk_X509_new_null();
	const unsigned char *p;
	unsigned char *der;
	size_t len;
	struct rev_entry e;
	X509_CRL *crl;

	sk_X509_push(certs, ca);
	ck_assert_int_eq(x509u_fingerprint(bob, fp), SM_OK);
	/* A CRL naming the CA but signed by another key changes nothing. */
	der = make_crl(bob, &forged, &len);
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	sk_X509_CRL_push(crls, crl);
	ck_assert_int_eq(revworker_mail_crls(rs, crls, certs, bob, CG_NOW), SM_OK);
	ck_assert_int_eq(revstore_get(rs, fp, &e), SM_OK);
	ck_assert_int_eq(e.r.status, REV_UNKNOWN);
	rev_entry_free(&e);
	OPENSSL_free(der);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	/* The CA's own CRL revokes bob at once, source crl-in-mail. */
	crls = sk_X509_CRL_new_null();
	der = make_crl(bob, &c, &len);
	p = der;
	sk_X509_CRL_push(crls, d2i_X509_CRL(NULL, &p, (long)len));
	ck_assert_int_eq(revworker_mail_crls(rs, crls, certs, bob, CG_NOW), SM_OK);
	ck_assert_int_eq(revstore_get(rs, fp, &e), SM_OK);
	ck_assert_int_eq(e.r.status, REV_REVOKED);
	ck_assert_int_eq(e.r.source, REV_SRC_CRL_MAIL);
	ck_assert_str_eq(rev_reason_name(e.r.reason), "keyCompromise");
	rev_entry_free(&e);
	OPENSSL_free(der);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	sk_X509_free(certs);
	revstore_close(rs);
	testutil_rmtree(dir);
	free(dir);
	X509_free(bob);
}
END_TEST

/* ---- intermediates: root (ca) → Partner Sub CA → carol ---- */

/* A sub CA under the partner root; with_source: it names a CRL
 * distribution point (then it is signed again). */
static X509 *
sub_ca(EVP_PKEY *key, bool with_source)
{
	struct cg_spec s = { .key = key, .ca = ca, .ca_key = ca_key, .cn = "Partner Sub CA",
			     .ku = "critical,keyCertSign,cRLSign", .is_ca = true };
	X509 *x = cg_make(&s);
	X509V3_CTX ctx;

	if (with_source) {
		X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
		cg_ext(x, &ctx, NID_crl_distribution_points, "URI:http://127.0.0.1:9/root.crl");
		ck_assert(X509_sign(x, ca_key, EVP_sha256()) > 0);
	}
	return x;
}

static X509 *
carol_cert(X509 *sub, EVP_PKEY *sub_key)
{
	struct cg_spec s = { .key = bob_key, .ca = sub, .ca_key = sub_key,
			     .san = "email:carol@partner.example",
			     .ku = "digitalSignature,keyEncipherment",
			     .eku = "emailProtection" };
	return cg_make(&s);
}

/* The worker's answer about carol herself: good. */
static void
carol_good(struct revstore *rs, X509 *carol, X509 *sub)
{
	struct rev_result good = { .status = REV_GOOD, .source = REV_SRC_OCSP, .reason = -1,
				   .next_update = CG_NOW + CG_DAY };
	char fp[X509U_FP_SIZE];

	ck_assert_int_eq(x509u_fingerprint(carol, fp), SM_OK);
	ck_assert_int_eq(revstore_enqueue(rs, carol, sub, CG_NOW - 10 * CG_DAY), SM_OK);
	ck_assert_int_eq(revstore_put(rs, fp, &good, CG_NOW - CG_DAY / 2), SM_OK);
}

/* The root's CRL (listing the sub CA or not), judged as the worker and the
 * harvest path do: verified against the root, stored under the sub CA. */
static void
root_crl_about(struct revstore *rs, X509 *sub, bool revoked)
{
	struct crl_case c = { "x", 0, revoked, 1, 7 * CG_DAY, REV_REVOKED, NULL };
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	STACK_OF(X509) *certs = sk_X509_new_null();
	const unsigned char *p;
	unsigned char *der;
	size_t len;

	der = make_crl(sub, &c, &len);
	p = der;
	sk_X509_CRL_push(crls, d2i_X509_CRL(NULL, &p, (long)len));
	sk_X509_push(certs, ca);
	ck_assert_int_eq(revworker_mail_crls(rs, crls, certs, sub, CG_NOW), SM_OK);
	OPENSSL_free(der);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	sk_X509_free(certs);
}

static bool
carol_usable(struct revstore *rs, enum cfg_rev_check check, X509 *carol, X509 *sub,
	     X509_STORE *anchors, char *reason, size_t len)
{
	struct cfg_revocation rc = { check, 3, 2000, NULL };
	STACK_OF(X509) *chain = sk_X509_new_null();
	bool ok;

	sk_X509_push(chain, sub);
	if (anchors == NULL)
		sk_X509_push(chain, ca);
	reason[0] = '\0';
	ok = revstore_usable(rs, &rc, carol, chain, anchors, CG_NOW, reason, len);
	sk_X509_free(chain);
	return ok;
}

START_TEST(test_an_intermediate_revoked_by_its_roots_crl_refuses_the_leaf)
{
	EVP_PKEY *sub_key = cg_rsa(2048);
	X509 *sub = sub_ca(sub_key, true), *carol = carol_cert(sub, sub_key);
	char *dir, reason[160];
	struct revstore *rs = store_new(&dir);

	carol_good(rs, carol, sub);
	/* The root's CRL does not list the sub CA: carol is used, soft and hard. */
	root_crl_about(rs, sub, false);
	ck_assert(carol_usable(rs, CFG_REV_SOFT, carol, sub, NULL, reason, sizeof(reason)));
	ck_assert(carol_usable(rs, CFG_REV_HARD, carol, sub, NULL, reason, sizeof(reason)));
	/* Now it does: carol is refused under soft too, naming the CA. */
	root_crl_about(rs, sub, true);
	ck_assert(!carol_usable(rs, CFG_REV_SOFT, carol, sub, NULL, reason, sizeof(reason)));
	ck_assert_str_eq(reason,
			 "issuing CA CN=Partner Sub CA revoked on 2025-05-29 (keyCompromise)");
	ck_assert(!carol_usable(rs, CFG_REV_HARD, carol, sub, NULL, reason, sizeof(reason)));
	ck_assert_str_eq(reason,
			 "issuing CA CN=Partner Sub CA revoked on 2025-05-29 (keyCompromise)");
	revstore_close(rs);
	testutil_rmtree(dir);
	free(dir);
	X509_free(carol);
	X509_free(sub);
	EVP_PKEY_free(sub_key);
}
END_TEST

START_TEST(test_a_good_intermediate_leaves_the_leaf_decision_alone)
{
	EVP_PKEY *sub_key = cg_rsa(2048);
	X509 *sub = sub_ca(sub_key, true), *carol = carol_cert(sub, sub_key);
	struct rev_result revoked = { .status = REV_REVOKED, .source = REV_SRC_CRL, .reason = 1,
				      .revoked_at = CG_NOW - 4 * CG_DAY, .next_update = CG_NOW + CG_DAY };
	char *dir, fp[X509U_FP_SIZE], reason[160];
	struct revstore *rs = store_new(&dir);

	root_crl_about(rs, sub, false);
	/* carol never seen: soft and hard (within grace) use her, and queue her. */
	ck_assert(carol_usable(rs, CFG_REV_HARD, carol, sub, NULL, reason, sizeof(reason)));
	/* carol revoked: the leaf's own reason, as before. */
	ck_assert_int_eq(x509u_fingerprint(carol, fp), SM_OK);
	ck_assert_int_eq(revstore_put(rs, fp, &revoked, CG_NOW), SM_OK);
	ck_assert(!carol_usable(rs, CFG_REV_SOFT, carol, sub, NULL, reason, sizeof(reason)));
	ck_assert_str_eq(reason, "certificate revoked on 2025-05-28 (keyCompromise)");
	revstore_close(rs);
	testutil_rmtree(dir);
	free(dir);
	X509_free(carol);
	X509_free(sub);
	EVP_PKEY_free(sub_key);
}
END_TEST

START_TEST(test_an_intermediate_without_sources_is_accepted_under_soft_and_hard)
{
	EVP_PKEY *sub_key = cg_rsa(2048);
	X509 *bare = sub_ca(sub_key, false), *sub = sub_ca(sub_key, true);
	X509 *carol = carol_cert(bare, sub_key);
	char *dir, fp[X509U_FP_SIZE], reason[160];
	struct revstore *rs = store_new(&dir);
	struct rev_result none = { .status = REV_UNKNOWN, .reason = -1, .why = "HTTP 500" };
	X509_STORE *anchors = X509_STORE_new();
	struct rev_entry e;

	/* No CRL DP, no AIA: accepted, and never queued. */
	carol_good(rs, carol, bare);
	ck_assert(carol_usable(rs, CFG_REV_SOFT, carol, bare, NULL, reason, sizeof(reason)));
	ck_assert(carol_usable(rs, CFG_REV_HARD, carol, bare, NULL, reason, sizeof(reason)));
	ck_assert_int_eq(x509u_fingerprint(bare, fp), SM_OK);
	ck_assert_int_eq(revstore_get(rs, fp, &e), SM_ERR_NOTFOUND);
	/* The same CA naming a source that never answers: soft uses carol, hard
	 * refuses her past the grace, naming the CA. The root is found among
	 * the anchors for the worker. */
	ck_assert_int_eq(X509_STORE_add_cert(anchors, ca), 1);
	ck_assert_int_eq(x509u_fingerprint(sub, fp), SM_OK);
	ck_assert_int_eq(revstore_enqueue(rs, sub, NULL, CG_NOW - 5 * CG_DAY), SM_OK);
	ck_assert_int_eq(revstore_put(rs, fp, &none, CG_NOW - 5 * CG_DAY), SM_OK);
	ck_assert(carol_usable(rs, CFG_REV_SOFT, carol, sub, anchors, reason, sizeof(reason)));
	ck_assert(!carol_usable(rs, CFG_REV_HARD, carol, sub, anchors, reason, sizeof(reason)));
	ck_assert_str_eq(reason,
			 "revocation status of issuing CA CN=Partner Sub CA unknown since 2025-05-27");
	ck_assert_int_eq(revstore_get(rs, fp, &e), SM_OK);
	ck_assert(e.issuer != NULL);
	rev_entry_free(&e);
	X509_STORE_free(anchors);
	revstore_close(rs);
	testutil_rmtree(dir);
	free(dir);
	X509_free(carol);
	X509_free(sub);
	X509_free(bare);
	EVP_PKEY_free(sub_key);
}
END_TEST

/* ---- the judgment kept for the hot path (certcache memo) ---- */

/* x as the key cache hands it out: the certcache's object for its DER. */
static X509 *
cached(X509 *x)
{
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);
	X509 *c;

	ck_assert_int_gt(len, 0);
	c = certcache_cert(der, (size_t)len, NULL);
	OPENSSL_free(der);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(certcache_key_of(c));
	return c;
}

/* bob (from the certcache) and his chain (the CA, from the certcache). */
struct kept {
	X509 *bob;
	STACK_OF(X509) *chain;
	char fp[X509U_FP_SIZE];
};

static void
kept_new(struct kept *k)
{
	X509 *b = bob_cert();

	k->bob = cached(b);
	X509_free(b);
	k->chain = sk_X509_new_null();
	ck_assert_int_gt(sk_X509_push(k->chain, cached(ca)), 0);
	ck_assert_int_eq(x509u_fingerprint(k->bob, k->fp), SM_OK);
}

static void
kept_free(struct kept *k)
{
	sk_X509_pop_free(k->chain, X509_free);
	X509_free(k->bob);
}

static bool
kept_usable(struct revstore *rs, struct kept *k, enum cfg_rev_check check,
	    int grace_days, time_t now, char *reason, size_t len)
{
	struct cfg_revocation rc = { check, (uint64_t)grace_days, 2000, NULL };

	reason[0] = '\0';
	return revstore_usable(rs, &rc, k->bob, k->chain, NULL, now, reason,
			       len);
}

START_TEST(test_a_kept_judgment_ends_with_its_good_answer)
{
	struct rev_result good = { .status = REV_GOOD, .source = REV_SRC_OCSP, .reason = -1,
				   .next_update = CG_NOW - 200 }; /* good within the leeway */
	char *dir, reason[160];
	struct revstore *rs = store_new(&dir);
	struct kept k;
	unsigned long reads;

	kept_new(&k);
	ck_assert_int_eq(revstore_enqueue(rs, k.bob, ca, CG_NOW - CG_DAY), SM_OK);
	ck_assert_int_eq(revstore_put(rs, k.fp, &good, CG_NOW - CG_DAY), SM_OK);
	ck_assert(kept_usable(rs, &k, CFG_REV_HARD, 0, CG_NOW, reason, sizeof(reason)));
	reads = revstore_reads(rs);
	ck_assert(kept_usable(rs, &k, CFG_REV_HARD, 0, CG_NOW + 50, reason, sizeof(reason)));
	ck_assert_uint_eq(revstore_reads(rs), reads);
	/* Past nextUpdate + leeway (within the memo's TTL): unknown since
	 * nextUpdate, so hard without grace refuses. */
	ck_assert(!kept_usable(rs, &k, CFG_REV_HARD, 0, CG_NOW + 101, reason, sizeof(reason)));
	ck_assert_str_eq(reason, "revocation status unknown since 2025-05-31");
	ck_assert_uint_gt(revstore_reads(rs), reads);
	revstore_close(rs);
	testutil_rmtree(dir);
	free(dir);
	kept_free(&k);
}
END_TEST

START_TEST(test_the_policy_is_applied_to_a_kept_judgment_every_time)
{
	struct rev_result none = { .status = REV_UNKNOWN, .reason = -1, .why = "HTTP 500" };
	char *dir, reason[160];
	struct revstore *rs = store_new(&dir);
	struct kept k;
	unsigned long reads;

	kept_new(&k);
	ck_assert_int_eq(revstore_enqueue(rs, k.bob, ca, CG_NOW - 2 * CG_DAY), SM_OK);
	ck_assert_int_eq(revstore_put(rs, k.fp, &none, CG_NOW - 2 * CG_DAY), SM_OK);
	ck_assert(kept_usable(rs, &k, CFG_REV_HARD, 3, CG_NOW, reason, sizeof(reason)));
	reads = revstore_reads(rs);
	/* The same judgment, another policy: the grace counts from when the
	 * status became unknown, on every call. */
	ck_assert(!kept_usable(rs, &k, CFG_REV_HARD, 1, CG_NOW, reason, sizeof(reason)));
	ck_assert_str_eq(reason, "revocation status unknown since 2025-05-30");
	ck_assert(kept_usable(rs, &k, CFG_REV_SOFT, 1, CG_NOW, reason, sizeof(reason)));
	ck_assert(kept_usable(rs, &k, CFG_REV_HARD, 3, CG_NOW + 60, reason, sizeof(reason)));
	ck_assert_uint_eq(revstore_reads(rs), reads);
	revstore_close(rs);
	testutil_rmtree(dir);
	free(dir);
	kept_free(&k);
}
END_TEST

START_TEST(test_a_certificate_never_seen_is_queued_and_read_again)
{
	char *dir, reason[160];
	struct revstore *rs = store_new(&dir);
	struct rev_entry e;
	struct kept k;
	unsigned long reads;
	X509 *plain = bob_cert();

	kept_new(&k);
	/* Queued (not kept: the next lookup reads the row)... */
	ck_assert(kept_usable(rs, &k, CFG_REV_HARD, 3, CG_NOW, reason, sizeof(reason)));
	ck_assert_int_eq(revstore_get(rs, k.fp, &e), SM_OK);
	ck_assert_int_eq(e.due, CG_NOW);
	ck_assert_int_eq(e.unknown_since, CG_NOW);
	rev_entry_free(&e);
	reads = revstore_reads(rs);
	ck_assert(kept_usable(rs, &k, CFG_REV_HARD, 3, CG_NOW + 10, reason, sizeof(reason)));
	ck_assert_uint_eq(revstore_reads(rs), reads + 1);
	/* ...then kept: unknown since it was queued. */
	ck_assert(kept_usable(rs, &k, CFG_REV_HARD, 3, CG_NOW + 20, reason, sizeof(reason)));
	ck_assert_uint_eq(revstore_reads(rs), reads + 1);
	/* A certificate that is not the certcache's is read every time. */
	X509_free(k.bob);
	k.bob = plain;
	ck_assert(kept_usable(rs, &k, CFG_REV_SOFT, 3, CG_NOW + 30, reason, sizeof(reason)));
	ck_assert(kept_usable(rs, &k, CFG_REV_SOFT, 3, CG_NOW + 40, reason, sizeof(reason)));
	ck_assert_uint_eq(revstore_reads(rs), reads + 3);
	revstore_close(rs);
	testutil_rmtree(dir);
	free(dir);
	kept_free(&k);
}
END_TEST

static Suite *
revocation_suite(void)
{
	Suite *s = suite_create("revocation");
	TCase *tc = tcase_create("revocation");

	tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_crl_cases, 0, (int)(sizeof(crl_cases) / sizeof(crl_cases[0])));
	tcase_add_test(tc, test_crl_of_another_issuer_is_no_answer);
	tcase_add_loop_test(tc, test_ocsp_cases, 0, (int)(sizeof(ocsp_cases) / sizeof(ocsp_cases[0])));
	tcase_add_test(tc, test_ocsp_answer_about_another_certificate_is_no_answer);
	tcase_add_test(tc, test_urls_come_from_aia_and_distribution_points_http_only);
	tcase_add_test(tc, test_issuer_is_found_by_signature_not_name);
	tcase_add_loop_test(tc, test_the_hot_path_rule, 0, (int)(sizeof(judge_cases) / sizeof(judge_cases[0])));
	tcase_add_test(tc, test_a_failed_check_keeps_a_current_answer_and_backs_off);
	tcase_add_test(tc, test_a_crl_carried_in_mail_is_stored_and_applied_when_the_issuer_signed_it);
	tcase_add_test(tc, test_an_intermediate_revoked_by_its_roots_crl_refuses_the_leaf);
	tcase_add_test(tc, test_a_good_intermediate_leaves_the_leaf_decision_alone);
	tcase_add_test(tc, test_an_intermediate_without_sources_is_accepted_under_soft_and_hard);
	tcase_add_test(tc, test_a_kept_judgment_ends_with_its_good_answer);
	tcase_add_test(tc, test_the_policy_is_applied_to_a_kept_judgment_every_time);
	tcase_add_test(tc, test_a_certificate_never_seen_is_queued_and_read_again);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(revocation_suite());
}
