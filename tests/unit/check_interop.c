/*
 * check_interop.c — our CMS against three independent implementations:
 * GnuPG's gpgsm, Mozilla NSS's cmsutil (what Thunderbird runs on) and the
 * openssl cms command line.
 *
 * Both directions: what we sign and encrypt must verify and decrypt there
 * (content byte-equal), and what they sign and encrypt to our key must
 * verify and decrypt here, with the right signer. The "facts" case pins the
 * limits DESIGN.md builds on (NSS 3.87 and gpgsm 2.2.40 read neither
 * AES-GCM, RSA-OAEP nor ECDH; NSS rejects a whole envelope holding one ECDH
 * recipient), so a Debian upgrade that changes them fails here.
 *
 * Every tool runs in a private temp directory: its own GNUPGHOME (agent
 * killed at the end), its own NSS database. A missing tool is a failure
 * with the reason, never a skip. Cases: openssl, gpgsm, nss, facts
 * (CK_RUN_CASE selects one; the scripts in tests/interop do that).
 */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "buf.h"
#include "smime.h"
#include "testutil.h"
#include "trust.h"

static char *T;                 /* private temp directory */
static struct trust *anchors;   /* T/pki/ca.pem */

static struct ident {
	const char *name;
	struct smime_key k;
} idents[] = {
	{ "alice", { 0 } }, { "alice-renewed", { 0 } }, { "bob", { 0 } },
	{ "carol", { 0 } }, { "dave", { 0 } },
};

static const struct smime_key *
key(const char *name)
{
	for (size_t i = 0; i < sizeof(idents) / sizeof(idents[0]); i++)
		if (strcmp(idents[i].name, name) == 0)
			return &idents[i].k;
	ck_abort_msg("test bug: no identity %s", name);
	return NULL;
}

/* What the entity looks like when the MIME layer hands it to us. */
static const unsigned char entity[] =
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "this went through smime-milter.\r\n";
#define ENTITY_LEN (sizeof(entity) - 1)

/* ------------------------------------------------------------- helpers */

/* Run a shell command in T; stdout+stderr go to T/out.txt. */
static int __attribute__((format(printf, 1, 2)))
sh(const char *fmt, ...)
{
	char cmd[8192], full[9000];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	/* no core files from tools that crash on purpose (gpgsm, EC p12) */
	snprintf(full, sizeof(full), "cd %s && ulimit -c 0 && { %s ; } "
	    ">out.txt 2>&1", T, cmd);
	r = system(full);
	return WIFEXITED(r) ? WEXITSTATUS(r) : 128 + WTERMSIG(r);
}

/* The tail of the last command's output, for failure messages. */
static const char *
said(void)
{
	static char tail[1600];
	char p[4096];
	FILE *f;
	long n;
	size_t got;

	snprintf(p, sizeof(p), "%s/out.txt", T);
	tail[0] = 0;
	if ((f = fopen(p, "rb")) == NULL)
		return "(no output)";
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, n > (long)sizeof(tail) - 1 ? n - (long)sizeof(tail) + 1 : 0,
	    SEEK_SET);
	got = fread(tail, 1, sizeof(tail) - 1, f);
	tail[got] = 0;
	fclose(f);
	return tail;
}

static void
put(const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", T, name);
	f = fopen(path, "wb");
	ck_assert_msg(f != NULL, "cannot write %s", path);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	fclose(f);
}

static unsigned char *
get(const char *name, size_t *n)
{
	char path[4096];
	unsigned char *p;

	snprintf(path, sizeof(path), "%s/%s", T, name);
	p = testutil_slurp(path, n);
	ck_assert_msg(p != NULL, "cannot read %s", path);
	return p;
}

static bool
file_is(const char *name, const unsigned char *want, size_t n)
{
	size_t got;
	unsigned char *p = get(name, &got);
	bool same = got == n && memcmp(p, want, n) == 0;

	free(p);
	return same;
}

static X509 *
cert_file(const char *name)
{
	char path[4096];
	FILE *f;
	X509 *x;

	snprintf(path, sizeof(path), "%s/pki/%s.crt", T, name);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static STACK_OF(X509) *
rcpts(const char *a, const char *b)
{
	STACK_OF(X509) *s = sk_X509_new_null();

	sk_X509_push(s, key(a)->cert);
	if (b != NULL)
		sk_X509_push(s, key(b)->cert);
	return s;
}

static void
sign_to(const char *file, const char *who, const EVP_MD *md, bool detached,
    const unsigned char *c, size_t n)
{
	struct buf der = BUF_INIT;
	char err[256];

	ck_assert_msg(smime_sign(key(who), md, detached, c, n, &der, err,
	    sizeof(err)) == SM_OK, "sign: %s", err);
	put(file, der.data, der.len);
	buf_free(&der);
}

static void
encrypt_to(const char *file, STACK_OF(X509) *r, enum smime_cipher ci,
    bool oaep, const unsigned char *c, size_t n)
{
	struct buf der = BUF_INIT;
	char err[256];

	ck_assert_msg(smime_encrypt(r, ci, oaep, c, n, &der, err,
	    sizeof(err)) == SM_OK, "encrypt: %s", err);
	put(file, der.data, der.len);
	buf_free(&der);
	sk_X509_free(r);
}

/* Verify a file made by a foreign tool; returns the verdict (caller frees).
 * content NULL: opaque, the content must come out equal to want. */
static void
verify_theirs(const char *file, const char *content_file, const char *signer,
    struct smime_verify_result *res, const unsigned char *want, size_t wn)
{
	size_t n, cn = 0;
	unsigned char *der = get(file, &n);
	unsigned char *c = content_file ? get(content_file, &cn) : NULL;
	struct buf out = BUF_INIT;
	X509 *who = cert_file(signer);

	ck_assert_int_eq(smime_verify(der, n, c, cn, trust_store(anchors),
	    false, res, &out), SM_OK);
	ck_assert_msg(res->status == SMIME_VERIFY_OK && res->signature_ok,
	    "%s: got %s (%s), want ok", file,
	    smime_verify_status_name(res->status), res->reason);
	ck_assert_msg(res->signer != NULL && X509_cmp(res->signer, who) == 0,
	    "%s: signer is not %s", file, signer);
	if (content_file == NULL)
		ck_assert_msg(out.len == wn && memcmp(out.data, want, wn) == 0,
		    "%s: encapsulated content differs (%zu bytes, want %zu)",
		    file, out.len, wn);
	X509_free(who);
	buf_free(&out);
	free(c);
	free(der);
}

/* Decrypt a foreign envelope with our keys; returns the plaintext. */
static unsigned char *
decrypt_theirs(const char *file, const char *k1, const char *k2, size_t *len)
{
	struct smime_key keys[2];
	size_t n, nk = 0;
	unsigned char *der = get(file, &n), *p;
	struct buf out = BUF_INIT;
	char err[256];
	sm_status st;

	keys[nk++] = *key(k1);
	if (k2 != NULL)
		keys[nk++] = *key(k2);
	st = smime_decrypt(der, n, keys, nk, &out, err, sizeof(err));
	ck_assert_msg(st == SM_OK, "%s: decrypt got %s (%s), want ok", file,
	    sm_strstatus(st), err);
	free(der);
	*len = out.len;
	p = (unsigned char *)buf_steal(&out);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* gpgsm --list-secret-keys exits 0 even when an import failed and no
 * secret key exists: look for a secret certificate record ("crs"). */
#define GPGSM_HAS_BOB_KEY \
	"gpgsm --batch --with-colons --list-secret-keys bob@partner.example | grep -q '^crs:'"
#define GPGSM "gpgsm --batch --no-tty --pinentry-mode loopback " \
	"--passphrase-fd 3 --status-fd 1"
#define GPGPASS "3<pki/p12.pass"
#define CMSUTIL "cmsutil -d sql:nss"
#define OSSL_VERIFY "openssl cms -verify -binary -CAfile pki/ca.pem " \
	"-purpose smimesign"

/* ------------------------------------------------------------- openssl */

static const struct {
	const char *who, *md;
	bool detached;
} sig_rows[] = {
	{ "alice", "SHA256", true }, { "alice", "SHA512", false },
	{ "carol", "SHA256", true }, { "carol", "SHA384", false },
	{ "dave", "SHA384", true },
};

START_TEST(our_signatures_verify_in_openssl)
{
	const char *who = sig_rows[_i].who;
	bool det = sig_rows[_i].detached;

	put("content.txt", entity, ENTITY_LEN);
	sign_to("sig.der", who, EVP_get_digestbyname(sig_rows[_i].md), det,
	    entity, ENTITY_LEN);
	if (det) {
		ck_assert_msg(sh(OSSL_VERIFY " -inform DER -in sig.der -content "
		    "content.txt -out out.txt") == 0, "%s detached: openssl "
		    "says:\n%s", who, said());
		put("content.txt", "tampered", 8);
		ck_assert_msg(sh(OSSL_VERIFY " -inform DER -in sig.der -content "
		    "content.txt -out /dev/null") != 0, "tampered content "
		    "accepted by openssl");
	} else {
		ck_assert_msg(sh(OSSL_VERIFY " -inform DER -in sig.der -out "
		    "opened.txt") == 0, "%s opaque: openssl says:\n%s", who,
		    said());
		ck_assert_msg(file_is("opened.txt", entity, ENTITY_LEN),
		    "%s opaque: content differs", who);
	}
}
END_TEST

START_TEST(our_multipart_signed_message_verifies_in_openssl)
{
	struct buf der = BUF_INIT, msg = BUF_INIT;
	char err[256];
	unsigned char *b64;
	int n;

	/* a stand-in for the MIME layer's multipart/signed */
	ck_assert_int_eq(smime_sign(key("alice"), EVP_sha256(), true, entity,
	    ENTITY_LEN, &der, err, sizeof(err)), SM_OK);
	b64 = malloc(der.len * 2 + 8);
	n = EVP_EncodeBlock(b64, der.data, (int)der.len);
	buf_printf(&msg, "MIME-Version: 1.0\r\nContent-Type: multipart/signed; "
	    "protocol=\"application/pkcs7-signature\"; micalg=%s; "
	    "boundary=\"XYZ\"\r\n\r\n--XYZ\r\n",
	    smime_micalg(EVP_sha256()));
	buf_append(&msg, entity, ENTITY_LEN);
	buf_append_str(&msg, "\r\n--XYZ\r\nContent-Type: application/pkcs7-"
	    "signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n"
	    "\r\n");
	for (int i = 0; i < n; i += 76) {
		buf_append(&msg, b64 + i, (size_t)(n - i < 76 ? n - i : 76));
		buf_append_str(&msg, "\r\n");
	}
	buf_append_str(&msg, "--XYZ--\r\n");
	put("signed.eml", msg.data, msg.len);
	/* No -binary: openssl's MIME reader then canonicalises the part
	 * itself; with -binary it keeps the CR of the delimiter's CRLF. */
	ck_assert_msg(sh("openssl cms -verify -CAfile pki/ca.pem -in signed.eml "
	    "-out opened.txt") == 0, "openssl says:\n%s", said());
	ck_assert_msg(file_is("opened.txt", entity, ENTITY_LEN),
	    "signed part differs");
	free(b64);
	buf_free(&der);
	buf_free(&msg);
}
END_TEST

static const struct {
	const char *to;
	enum smime_cipher c;
	bool oaep;
} env_rows[] = {
	{ "bob", SMIME_CIPHER_AES128_CBC, false },
	{ "bob", SMIME_CIPHER_AES256_CBC, false },
	{ "bob", SMIME_CIPHER_AES128_GCM, false },
	{ "bob", SMIME_CIPHER_AES256_GCM, true },
	{ "dave", SMIME_CIPHER_AES256_CBC, true },
	{ "carol", SMIME_CIPHER_AES256_CBC, false },
	{ "carol", SMIME_CIPHER_AES128_GCM, false },
};

START_TEST(our_signed_and_encrypted_mail_opens_in_openssl)
{
	const char *to = env_rows[_i].to;
	struct buf sig = BUF_INIT;
	char err[256];

	/* sign (opaque) as alice, then encrypt to the partner */
	ck_assert_int_eq(smime_sign(key("alice"), NULL, false, entity,
	    ENTITY_LEN, &sig, err, sizeof(err)), SM_OK);
	encrypt_to("env.der", rcpts(to, NULL), env_rows[_i].c,
	    env_rows[_i].oaep, sig.data, sig.len);
	ck_assert_msg(sh("openssl cms -decrypt -binary -inform DER -in env.der "
	    "-inkey pki/%s.key -recip pki/%s.crt -out inner.der", to, to) == 0,
	    "%s/%s%s: openssl says:\n%s", to,
	    smime_cipher_name(env_rows[_i].c), env_rows[_i].oaep ? "/oaep" : "",
	    said());
	ck_assert_msg(file_is("inner.der", sig.data, sig.len),
	    "decrypted signature differs");
	ck_assert_msg(sh(OSSL_VERIFY " -inform DER -in inner.der -out "
	    "opened.txt") == 0, "inner signature: openssl says:\n%s", said());
	ck_assert_msg(file_is("opened.txt", entity, ENTITY_LEN),
	    "content differs");
	buf_free(&sig);
}
END_TEST

START_TEST(openssl_signatures_verify_here)
{
	struct smime_verify_result res;

	put("content.txt", entity, ENTITY_LEN);
	ck_assert_msg(sh("openssl cms -sign -binary -md sha512 -in content.txt "
	    "-signer pki/bob.pem -certfile pki/chain.pem -outform DER -out sig.der") == 0, "%s",
	    said());
	verify_theirs("sig.der", "content.txt", "bob", &res, NULL, 0);
	ck_assert_int_eq(res.digest_nid, NID_sha512);
	smime_verify_result_free(&res);

	ck_assert_msg(sh("openssl cms -sign -binary -nodetach -in content.txt "
	    "-signer pki/carol.pem -certfile pki/chain.pem -outform DER -out sig.der") == 0, "%s",
	    said());
	verify_theirs("sig.der", NULL, "carol", &res, entity, ENTITY_LEN);
	/* openssl's default capabilities include what it decrypts */
	ck_assert_msg((res.caps & (CAP_KNOWN | CAP_AES256_CBC)) ==
	    (CAP_KNOWN | CAP_AES256_CBC), "caps got %#x", (unsigned)res.caps);
	smime_verify_result_free(&res);

	/* streamed: BER with indefinite lengths */
	ck_assert_msg(sh("openssl cms -sign -binary -nodetach -stream "
	    "-in content.txt -signer pki/bob.pem -certfile pki/chain.pem -outform DER -out sig.der") ==
	    0, "%s", said());
	verify_theirs("sig.der", NULL, "bob", &res, entity, ENTITY_LEN);
	smime_verify_result_free(&res);
}
END_TEST

static const struct {
	const char *opts;   /* cipher and recipient options */
	const char *key;    /* ours that opens it */
} ossl_env_rows[] = {
	{ "-aes-128-cbc pki/alice.crt", "alice" },
	{ "-aes-256-cbc pki/alice.crt", "alice" },
	{ "-aes-128-gcm pki/alice.crt", "alice" },
	{ "-aes-256-gcm pki/alice.crt", "alice" },
	{ "-aes-256-cbc -recip pki/alice.crt -keyopt rsa_padding_mode:oaep",
	  "alice" },
	{ "-aes-256-cbc -recip pki/alice.crt -keyopt rsa_padding_mode:oaep "
	  "-keyopt rsa_oaep_md:sha256", "alice" },
	{ "-aes-256-cbc pki/carol.crt", "carol" },
	{ "-aes-256-gcm pki/carol.crt", "carol" },
	{ "-aes-128-cbc pki/bob.crt pki/alice-renewed.crt", "alice-renewed" },
};

START_TEST(openssl_signed_and_encrypted_mail_opens_here)
{
	struct smime_verify_result res;
	unsigned char *inner;
	size_t n;

	put("content.txt", entity, ENTITY_LEN);
	ck_assert_msg(sh("openssl cms -sign -binary -nodetach -in content.txt "
	    "-signer pki/bob.pem -certfile pki/chain.pem -outform DER -out sig.der") == 0, "%s",
	    said());
	ck_assert_msg(sh("openssl cms -encrypt -binary -in sig.der "
	    "-outform DER -out env.der %s", ossl_env_rows[_i].opts) == 0,
	    "%s", said());
	/* decrypt with two keys, so the matching one has to be found */
	inner = decrypt_theirs("env.der", "alice-renewed",
	    strcmp(ossl_env_rows[_i].key, "alice-renewed") == 0 ? NULL
	    : ossl_env_rows[_i].key, &n);
	put("inner.der", inner, n);
	verify_theirs("inner.der", NULL, "bob", &res, entity, ENTITY_LEN);
	smime_verify_result_free(&res);
	free(inner);
}
END_TEST

/* --------------------------------------------------------------- gpgsm */

START_TEST(our_signatures_verify_in_gpgsm)
{
	const char *who = sig_rows[_i].who;

	put("content.txt", entity, ENTITY_LEN);
	sign_to("sig.der", who, EVP_get_digestbyname(sig_rows[_i].md),
	    sig_rows[_i].detached, entity, ENTITY_LEN);
	if (sig_rows[_i].detached) {
		ck_assert_msg(sh(GPGSM " --verify sig.der content.txt") == 0 &&
		    strstr(said(), "[GNUPG:] GOODSIG") &&
		    strstr(said(), "[GNUPG:] TRUST_FULLY"), "%s detached: "
		    "gpgsm says:\n%s", who, said());
		put("content.txt", "tampered", 8);
		ck_assert_msg(sh(GPGSM " --verify sig.der content.txt") != 0 &&
		    !strstr(said(), "GOODSIG"), "tampered content accepted "
		    "by gpgsm:\n%s", said());
	} else {
		ck_assert_msg(sh("rm -f opened.txt; " GPGSM " --verify -o "
		    "opened.txt sig.der") == 0 &&
		    strstr(said(), "[GNUPG:] GOODSIG") &&
		    strstr(said(), "[GNUPG:] TRUST_FULLY"), "%s opaque: gpgsm "
		    "says:\n%s", who, said());
		ck_assert_msg(file_is("opened.txt", entity, ENTITY_LEN),
		    "%s opaque: content differs", who);
	}
}
END_TEST

static const enum smime_cipher gpgsm_ciphers[] = { SMIME_CIPHER_AES128_CBC,
	SMIME_CIPHER_AES256_CBC };

START_TEST(our_signed_and_encrypted_mail_opens_in_gpgsm)
{
	struct buf sig = BUF_INIT;
	char err[256];

	ck_assert_int_eq(smime_sign(key("alice"), NULL, false, entity,
	    ENTITY_LEN, &sig, err, sizeof(err)), SM_OK);
	/* to the partner and to the sender's own copy */
	encrypt_to("env.der", rcpts("bob", "alice"), gpgsm_ciphers[_i], false,
	    sig.data, sig.len);
	/* gpgsm knows alice's certificate but not her key: it complains
	 * about that recipient and exits 2, yet decrypts for bob
	 * (DECRYPTION_OKAY), which is what its front ends look at. */
	sh("rm -f inner.der; " GPGSM " --decrypt -o inner.der env.der "
	    GPGPASS);
	ck_assert_msg(strstr(said(), "[GNUPG:] DECRYPTION_OKAY") != NULL,
	    "%s: gpgsm says:\n%s", smime_cipher_name(gpgsm_ciphers[_i]),
	    said());
	ck_assert_msg(file_is("inner.der", sig.data, sig.len),
	    "decrypted signature differs");
	ck_assert_msg(sh("rm -f opened.txt; " GPGSM " --verify -o opened.txt "
	    "inner.der") == 0 && strstr(said(), "[GNUPG:] GOODSIG"),
	    "inner signature: gpgsm says:\n%s", said());
	ck_assert_msg(file_is("opened.txt", entity, ENTITY_LEN),
	    "content differs");
	buf_free(&sig);
}
END_TEST

START_TEST(gpgsm_signatures_verify_here_and_advertise_aes128_cbc)
{
	struct smime_verify_result res;
	struct smime_choice ch;
	int type = EVP_PKEY_RSA;
	caps_t want = CAP_KNOWN | CAP_AES128_CBC | CAP_DES3;

	put("content.txt", entity, ENTITY_LEN);
	ck_assert_msg(sh("rm -f sig.der; " GPGSM " -u bob@partner.example "
	    "--detach-sign -o sig.der content.txt " GPGPASS) == 0, "%s",
	    said());
	verify_theirs("sig.der", "content.txt", "bob", &res, NULL, 0);
	/* DESIGN.md: gpgsm advertises only AES-128-CBC and 3DES ... */
	ck_assert_msg(res.caps == want, "gpgsm caps: got %#x, want %#x "
	    "(AES-128-CBC and 3DES) -- DESIGN.md fact changed",
	    (unsigned)res.caps, (unsigned)want);
	/* ... so a gpgsm user in the envelope means AES-128-CBC */
	ck_assert_int_eq(smime_choose(&res.caps, &type, 1, SMIME_CIPHER_AUTO,
	    false, &ch), SM_OK);
	ck_assert_msg(ch.cipher == SMIME_CIPHER_AES128_CBC && !ch.oaep,
	    "choice for gpgsm: got %s, want aes-128-cbc",
	    smime_cipher_name(ch.cipher));
	ck_assert_msg(res.signing_time != 0, "gpgsm sets signingTime");
	smime_verify_result_free(&res);

	ck_assert_msg(sh("rm -f sig.der; " GPGSM " -u bob@partner.example "
	    "--sign -o sig.der content.txt " GPGPASS) == 0, "%s", said());
	verify_theirs("sig.der", NULL, "bob", &res, entity, ENTITY_LEN);
	smime_verify_result_free(&res);
}
END_TEST

START_TEST(gpgsm_signed_and_encrypted_mail_opens_here)
{
	struct smime_verify_result res;
	unsigned char *inner;
	size_t n;

	put("content.txt", entity, ENTITY_LEN);
	/* gpgsm cannot sign and encrypt in one go: two steps, as RFC 8551.
	 * alice has two certificates in gpgsm's keybox (current, renewed):
	 * name the current one by fingerprint. */
	ck_assert_msg(sh("rm -f sig.der env.der; " GPGSM " -u "
	    "bob@partner.example --sign -o sig.der content.txt " GPGPASS
	    " && fpr=$(openssl x509 -in pki/alice.crt -noout -fingerprint -sha1 "
	    "| sed 's/.*=//; s/://g') && " GPGSM " -r \"$fpr\" --encrypt "
	    "-o env.der sig.der")
	    == 0, "%s", said());
	inner = decrypt_theirs("env.der", "alice-renewed", "alice", &n);
	put("inner.der", inner, n);
	verify_theirs("inner.der", NULL, "bob", &res, entity, ENTITY_LEN);
	smime_verify_result_free(&res);
	free(inner);
}
END_TEST

/* ----------------------------------------------------------------- nss */

START_TEST(our_signatures_verify_in_nss)
{
	const char *who = sig_rows[_i].who;

	put("content.txt", entity, ENTITY_LEN);
	sign_to("sig.der", who, EVP_get_digestbyname(sig_rows[_i].md),
	    sig_rows[_i].detached, entity, ENTITY_LEN);
	if (sig_rows[_i].detached) {
		ck_assert_msg(sh(CMSUTIL " -D -i sig.der -c content.txt -o "
		    "/dev/null") == 0, "%s detached: cmsutil says:\n%s", who,
		    said());
		put("content.txt", "tampered", 8);
		ck_assert_msg(sh(CMSUTIL " -D -i sig.der -c content.txt -o "
		    "/dev/null") != 0, "tampered content accepted by NSS");
	} else {
		ck_assert_msg(sh(CMSUTIL " -D -i sig.der -o opened.txt") == 0,
		    "%s opaque: cmsutil says:\n%s", who, said());
		ck_assert_msg(file_is("opened.txt", entity, ENTITY_LEN),
		    "%s opaque: content differs", who);
	}
}
END_TEST

START_TEST(our_signed_and_encrypted_mail_opens_in_nss)
{
	struct buf sig = BUF_INIT;
	char err[256];

	ck_assert_int_eq(smime_sign(key("alice"), NULL, false, entity,
	    ENTITY_LEN, &sig, err, sizeof(err)), SM_OK);
	encrypt_to("env.der", rcpts("bob", "alice"), gpgsm_ciphers[_i], false,
	    sig.data, sig.len);
	ck_assert_msg(sh(CMSUTIL " -D -i env.der -o inner.der") == 0,
	    "%s: cmsutil says:\n%s", smime_cipher_name(gpgsm_ciphers[_i]),
	    said());
	ck_assert_msg(file_is("inner.der", sig.data, sig.len),
	    "decrypted signature differs");
	ck_assert_msg(sh(CMSUTIL " -D -i inner.der -o opened.txt") == 0,
	    "inner signature: cmsutil says:\n%s", said());
	ck_assert_msg(file_is("opened.txt", entity, ENTITY_LEN),
	    "content differs");
	buf_free(&sig);
}
END_TEST

START_TEST(nss_signatures_verify_here_with_key_preference)
{
	struct smime_verify_result res;
	X509 *bob = cert_file("bob");

	put("content.txt", entity, ENTITY_LEN);
	/* -G signingTime, -P sMIMECapabilities, -Y encryption key pref */
	ck_assert_msg(sh(CMSUTIL " -S -N bob -H SHA256 -G -P -Y bob -T "
	    "-i content.txt -o sig.der") == 0, "%s", said());
	verify_theirs("sig.der", "content.txt", "bob", &res, NULL, 0);
	ck_assert_msg(res.enc_pref != NULL && X509_cmp(res.enc_pref, bob) == 0,
	    "NSS encryption key preference: want bob's certificate");
	ck_assert_msg((res.caps & (CAP_KNOWN | CAP_AES256_CBC |
	    CAP_AES128_CBC)) == (CAP_KNOWN | CAP_AES256_CBC | CAP_AES128_CBC) &&
	    !(res.caps & (CAP_AES128_GCM | CAP_AES256_GCM)),
	    "NSS caps: got %#x, want AES-CBC and no GCM", (unsigned)res.caps);
	ck_assert_msg(res.signing_time != 0, "NSS -G sets signingTime");
	smime_verify_result_free(&res);

	ck_assert_msg(sh(CMSUTIL " -S -N bob -H SHA512 -G -P -i content.txt "
	    "-o sig.der") == 0, "%s", said());
	verify_theirs("sig.der", NULL, "bob", &res, entity, ENTITY_LEN);
	ck_assert_int_eq(res.digest_nid, NID_sha512);
	smime_verify_result_free(&res);
	X509_free(bob);
}
END_TEST

START_TEST(nss_signed_and_encrypted_mail_opens_here)
{
	struct smime_verify_result res;
	unsigned char *inner;
	size_t n;

	put("content.txt", entity, ENTITY_LEN);
	ck_assert_msg(sh(CMSUTIL " -S -N bob -H SHA256 -G -P -i content.txt "
	    "-o sig.der && " CMSUTIL " -E -r alice@org.example -i sig.der "
	    "-o env.der") == 0, "%s", said());
	inner = decrypt_theirs("env.der", "alice-renewed", "alice", &n);
	put("inner.der", inner, n);
	verify_theirs("inner.der", NULL, "bob", &res, entity, ENTITY_LEN);
	smime_verify_result_free(&res);
	free(inner);
}
END_TEST

/* --------------------------------------------------------------- facts */

START_TEST(nss_decrypts_aes_cbc_but_not_gcm_oaep_or_ecdh)
{
	/* control first: the plain envelope does open */
	encrypt_to("env.der", rcpts("bob", NULL), SMIME_CIPHER_AES256_CBC,
	    false, entity, ENTITY_LEN);
	ck_assert_msg(sh(CMSUTIL " -D -i env.der -o out.txt") == 0 &&
	    file_is("out.txt", entity, ENTITY_LEN), "control (AES-256-CBC, "
	    "PKCS#1 v1.5) must open in NSS:\n%s", said());

	encrypt_to("env.der", rcpts("bob", NULL), SMIME_CIPHER_AES128_GCM,
	    false, entity, ENTITY_LEN);
	ck_assert_msg(sh(CMSUTIL " -D -i env.der -o out.txt") != 0,
	    "DESIGN.md fact changed: NSS now decrypts AES-GCM "
	    "AuthEnvelopedData; revisit the cipher choice");
	encrypt_to("env.der", rcpts("bob", NULL), SMIME_CIPHER_AES256_CBC,
	    true, entity, ENTITY_LEN);
	ck_assert_msg(sh(CMSUTIL " -D -i env.der -o out.txt") != 0,
	    "DESIGN.md fact changed: NSS now decrypts RSA-OAEP");
	encrypt_to("env.der", rcpts("carol", NULL), SMIME_CIPHER_AES256_CBC,
	    false, entity, ENTITY_LEN);
	ck_assert_msg(sh(CMSUTIL " -D -i env.der -o out.txt") != 0,
	    "DESIGN.md fact changed: NSS now decrypts ECDH (carol's key is "
	    "in its database)");
}
END_TEST

START_TEST(nss_rejects_a_whole_envelope_with_one_ecdh_recipient)
{
	encrypt_to("env.der", rcpts("bob", "dave"), SMIME_CIPHER_AES256_CBC,
	    false, entity, ENTITY_LEN);
	ck_assert_msg(sh(CMSUTIL " -D -i env.der -o out.txt") == 0 &&
	    file_is("out.txt", entity, ENTITY_LEN), "control (bob + dave, "
	    "both RSA) must open for bob in NSS:\n%s", said());
	encrypt_to("env.der", rcpts("bob", "carol"), SMIME_CIPHER_AES256_CBC,
	    false, entity, ENTITY_LEN);
	ck_assert_msg(sh(CMSUTIL " -D -i env.der -o out.txt") != 0,
	    "DESIGN.md fact changed: NSS now opens an envelope holding an "
	    "ECDH recipient next to RSA ones; key types could share");
}
END_TEST

START_TEST(gpgsm_decrypts_aes_cbc_but_not_gcm_oaep_or_ecdh)
{
	encrypt_to("env.der", rcpts("bob", NULL), SMIME_CIPHER_AES256_CBC,
	    false, entity, ENTITY_LEN);
	ck_assert_msg(sh("rm -f out.txt; " GPGSM " --decrypt -o out.txt env.der "
	    GPGPASS) == 0 && file_is("out.txt", entity, ENTITY_LEN),
	    "control (AES-256-CBC, PKCS#1 v1.5) must open in gpgsm:\n%s",
	    said());

	encrypt_to("env.der", rcpts("bob", NULL), SMIME_CIPHER_AES128_GCM,
	    false, entity, ENTITY_LEN);
	ck_assert_msg(sh("rm -f out.txt; " GPGSM " --decrypt -o out.txt env.der "
	    GPGPASS) != 0, "DESIGN.md fact changed: gpgsm now decrypts "
	    "AES-GCM AuthEnvelopedData");
	encrypt_to("env.der", rcpts("bob", NULL), SMIME_CIPHER_AES256_CBC,
	    true, entity, ENTITY_LEN);
	ck_assert_msg(sh("rm -f out.txt; " GPGSM " --decrypt -o out.txt env.der "
	    GPGPASS) != 0, "DESIGN.md fact changed: gpgsm now decrypts "
	    "RSA-OAEP");
	/* gpgsm 2.2 cannot even hold an EC key: importing one crashes it
	 * (TESTING-NOTES.md). Try anyway, then try the ECDH envelope. */
	sh(GPGSM " --import pki/carol.p12 " GPGPASS);
	encrypt_to("env.der", rcpts("carol", NULL), SMIME_CIPHER_AES256_CBC,
	    false, entity, ENTITY_LEN);
	ck_assert_msg(sh("rm -f out.txt; " GPGSM " --decrypt -o out.txt env.der "
	    GPGPASS) != 0, "DESIGN.md fact changed: gpgsm now decrypts ECDH");
}
END_TEST

/* ----------------------------------------------------------------- setup */

static const char *
want_case(void)
{
	const char *c = getenv("CK_RUN_CASE");

	return c != NULL && *c ? c : NULL;
}

static bool
wants(const char *tc)
{
	const char *c = want_case();

	return c == NULL || strcmp(c, tc) == 0;
}

/* Fail loudly when a tool is missing. */
static bool
need(const char *tool, const char *package)
{
	if (sh("command -v %s", tool) == 0)
		return true;
	fprintf(stderr, "check_interop: FAIL: %s not found; install the "
	    "Debian package %s (make deps does)\n", tool, package);
	return false;
}

static bool
setup_gpgsm(void)
{
	/* A private home: agent, keybox and trust list of our own. */
	if (sh("mkdir -m 700 gnupg && echo allow-loopback-pinentry "
	    ">gnupg/gpg-agent.conf && echo disable-crl-checks "
	    ">gnupg/gpgsm.conf") != 0)
		return false;
	if (sh(GPGSM " --import pki/root.crt pki/inter.crt pki/alice.crt "
	    "pki/alice-renewed.crt") != 0) {
		fprintf(stderr, "gpgsm: importing certificates failed:\n%s\n",
		    said());
		return false;
	}
	/* gpgsm 2.2 needs legacy PKCS#12 and still rejects a few exports
	 * (salt-dependent): re-export and retry. */
	for (int i = 0; i < 6; i++) {
		if (i > 0)
			sh("openssl pkcs12 -export -legacy -name bob "
			    "-inkey pki/bob.key -in pki/bob.crt -certfile "
			    "pki/chain.pem -passout file:pki/p12.pass "
			    "-out pki/bob.p12");
		if (sh(GPGSM " --import pki/bob.p12 " GPGPASS) == 0 &&
		    sh(GPGSM_HAS_BOB_KEY) == 0)
			break;
	}
	if (sh(GPGSM_HAS_BOB_KEY) != 0) {
		fprintf(stderr, "gpgsm: importing bob.p12 failed 6 times:\n%s\n",
		    said());
		return false;
	}
	/* The test root, trusted for S/MIME ("S"); "relax" skips checks our
	 * root does not need. */
	if (sh("fpr=$(gpgsm --with-colons --list-keys 'smime-milter Test Root"
	    " CA' | awk -F: '/^fpr/ {print $10; exit}') && test -n \"$fpr\" "
	    "&& echo \"$fpr S relax\" >gnupg/trustlist.txt") != 0) {
		fprintf(stderr, "gpgsm: trust list:\n%s\n", said());
		return false;
	}
	return true;
}

static bool
setup_nss(void)
{
	if (sh("mkdir nss && certutil -N -d sql:nss --empty-password && "
	    "certutil -A -d sql:nss -n root -t C,C,C -a -i pki/root.crt && "
	    "certutil -A -d sql:nss -n inter -t ,, -a -i pki/inter.crt && "
	    "certutil -A -d sql:nss -n alice -t ,, -a -i pki/alice.crt && "
	    "pk12util -i pki/bob.p12 -d sql:nss -W $(head -n1 pki/p12.pass) "
	    "&& pk12util -i pki/dave.p12 -d sql:nss -W "
	    "$(head -n1 pki/p12.pass) && pk12util -i pki/carol.p12 "
	    "-d sql:nss -W $(head -n1 pki/p12.pass)") != 0) {
		fprintf(stderr, "NSS database setup failed:\n%s\n", said());
		return false;
	}
	return true;
}

static Suite *
interop_suite(void)
{
	Suite *s = suite_create("interop");
	TCase *tc;

	tc = tcase_create("openssl");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, our_signatures_verify_in_openssl, 0,
	    sizeof(sig_rows) / sizeof(sig_rows[0]));
	tcase_add_test(tc, our_multipart_signed_message_verifies_in_openssl);
	tcase_add_loop_test(tc, our_signed_and_encrypted_mail_opens_in_openssl,
	    0, sizeof(env_rows) / sizeof(env_rows[0]));
	tcase_add_test(tc, openssl_signatures_verify_here);
	tcase_add_loop_test(tc, openssl_signed_and_encrypted_mail_opens_here,
	    0, sizeof(ossl_env_rows) / sizeof(ossl_env_rows[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("gpgsm");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, our_signatures_verify_in_gpgsm, 0,
	    sizeof(sig_rows) / sizeof(sig_rows[0]));
	tcase_add_loop_test(tc, our_signed_and_encrypted_mail_opens_in_gpgsm,
	    0, 2);
	tcase_add_test(tc, gpgsm_signatures_verify_here_and_advertise_aes128_cbc);
	tcase_add_test(tc, gpgsm_signed_and_encrypted_mail_opens_here);
	suite_add_tcase(s, tc);

	tc = tcase_create("nss");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, our_signatures_verify_in_nss, 0,
	    sizeof(sig_rows) / sizeof(sig_rows[0]));
	tcase_add_loop_test(tc, our_signed_and_encrypted_mail_opens_in_nss, 0,
	    2);
	tcase_add_test(tc, nss_signatures_verify_here_with_key_preference);
	tcase_add_test(tc, nss_signed_and_encrypted_mail_opens_here);
	suite_add_tcase(s, tc);

	tc = tcase_create("facts");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, nss_decrypts_aes_cbc_but_not_gcm_oaep_or_ecdh);
	tcase_add_test(tc, nss_rejects_a_whole_envelope_with_one_ecdh_recipient);
	tcase_add_test(tc, gpgsm_decrypts_aes_cbc_but_not_gcm_oaep_or_ecdh);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	char path[4096], err[512], home[4200];
	bool gpg = wants("gpgsm") || wants("facts");
	bool nss = wants("nss") || wants("facts");
	bool agent = false;
	int rc = 1;

	if ((T = testutil_tmpdir()) == NULL) {
		fprintf(stderr, "check_interop: cannot make a temp directory\n");
		return 1;
	}
	snprintf(home, sizeof(home), "%s/gnupg", T);
	setenv("GNUPGHOME", home, 1);
	if (!need("openssl", "openssl") ||
	    (gpg && (!need("gpgsm", "gpgsm") || !need("gpgconf", "gnupg"))) ||
	    (nss && (!need("cmsutil", "libnss3-tools") ||
	     !need("certutil", "libnss3-tools") ||
	     !need("pk12util", "libnss3-tools"))))
		goto done;
	/* the tools run in T, so the script's path must be absolute */
	if (realpath(testutil_path("tests/pki/mkpki.sh"), path) == NULL) {
		fprintf(stderr, "check_interop: tests/pki/mkpki.sh not found "
		    "(set SMIME_TOP to the source tree)\n");
		goto done;
	}
	if (sh("sh %s pki", path) != 0) {
		fprintf(stderr, "check_interop: tests/pki/mkpki.sh failed (is "
		    "SMIME_TOP the source tree?):\n%s\n", said());
		goto done;
	}
	for (size_t i = 0; i < sizeof(idents) / sizeof(idents[0]); i++) {
		snprintf(path, sizeof(path), "%s/pki/%s.pem", T, idents[i].name);
		if (smime_key_load_pem(path, &idents[i].k, err, sizeof(err)) !=
		    SM_OK) {
			fprintf(stderr, "check_interop: %s\n", err);
			goto done;
		}
	}
	snprintf(path, sizeof(path), "%s/pki/ca.pem", T);
	if (trust_load(path, NULL, &anchors, err, sizeof(err)) != SM_OK) {
		fprintf(stderr, "check_interop: %s\n", err);
		goto done;
	}
	agent = gpg;
	if ((gpg && !setup_gpgsm()) || (nss && !setup_nss()))
		goto done;
	rc = testutil_run(interop_suite());
done:
	/* the agent gpgsm started, scoped to our GNUPGHOME */
	if (agent)
		sh("gpgconf --kill all");
	for (size_t i = 0; i < sizeof(idents) / sizeof(idents[0]); i++)
		smime_key_free(&idents[i].k);
	trust_free(anchors);
	testutil_rmtree(T);
	free(T);
	return rc;
}
