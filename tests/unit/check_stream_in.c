/*
 * check_stream_in.c — inbound detached signatures verified with the content
 * streamed (bodyio.h, smime_verify_stream()), against the in-memory path.
 *
 * For every content shape (empty, one byte, the read chunk and one byte
 * either side, 8bit, binary, CRLF/LF-mixed, 50 MB), signed by the openssl
 * CLI (`openssl cms -sign -binary` over the canonical form) and by our own
 * smime_sign(): the streamed verification gives the same verdict, reason
 * and signer as smime_verify_bounded() over a CRLF copy. The whole
 * pipeline (gw_inbound) runs on a spooled, mmap'd 50 MB body: it verifies
 * and harvests, a byte changed at its very end fails, and (outside ASan
 * and valgrind) its peak RSS rises by at most 32 MB.
 */
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bodyio.h"
#include "buf.h"
#include "config.h"
#include "gateway.h"
#include "keycache.h"
#include "keystore.h"
#include "mime.h"
#include "smime.h"
#include "spool.h"
#include "testutil.h"
#include "trust.h"

#define CHUNK 65536              /* smime_verify's read size */
#define BIG (50u * 1024 * 1024)
/* Peak RSS rise for an opaque or enveloped message, times its size:
 * measured 2.43 and 3.23 (4.06 and 4.69 before the CMS was decoded in
 * place and the spooled pages given back after the base64 decode). */
#define OPAQUE_BOUND 1.2
#define ENVELOPE_BOUND 1.6

static char *T;
static struct config *cfg;
static struct trust *tr;
static struct keycache *kc;
static struct keystore *ks;
static struct gw_env env;
static struct smime_key bob, alice;

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

/* The canonical form the old path built: bare LF made CRLF. */
static void
crlf_ref(const unsigned char *p, size_t n, struct buf *out)
{
	size_t k = 0;

	/* (no assertion per byte: Check reports each one through a pipe) */
	buf_reset(out);
	ck_assert_int_eq(buf_reserve(out, 2 * n + 1), SM_OK);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			out->data[k++] = '\r';
		out->data[k++] = p[i];
	}
	out->len = k;
	out->data[k] = '\0';
}

/* Everything a BIO gives, read rd bytes at a time. */
static void
drain(BIO *b, size_t rd, struct buf *out)
{
	unsigned char *tmp = malloc(rd);
	int r;

	ck_assert_ptr_nonnull(tmp);
	buf_reset(out);
	while ((r = BIO_read(b, tmp, (int)rd)) > 0)
		ck_assert_int_eq(buf_append(out, tmp, (size_t)r), SM_OK);
	ck_assert_int_eq(r, 0);
	free(tmp);
}

enum shape { S_EMPTY, S_ONE, S_CHUNK_LESS, S_CHUNK, S_CHUNK_MORE, S_8BIT, S_BINARY, S_MIXED,
	S_BIG, S_COUNT };

/* Content of one shape. Text lines break with LF, CRLF or both. */
static void
content_of(enum shape s, struct buf *out)
{
	static const size_t len[S_COUNT] = { 0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5000, 70000,
		200000, BIG };
	size_t n = len[s];

	buf_reset(out);
	ck_assert_int_eq(buf_reserve(out, n + 1), SM_OK);
	for (size_t i = 0; i < n; i++) {
		unsigned char c;

		switch (s) {
		case S_ONE: c = 'x'; break;
		case S_8BIT: c = i % 61 == 60 ? '\n' : (unsigned char)(0xa0 + i % 90); break;
		case S_BINARY: c = (unsigned char)((i * 2654435761u) >> 13); break;
		case S_MIXED:
		case S_BIG: c = i % 73 == 72 ? '\n' : i % 73 == 71 && i % 2 ? '\r' :
		    (unsigned char)('a' + i % 26); break;
		default: c = i % 77 == 76 ? '\n' : i % 77 == 75 ? '\r' : (unsigned char)('A' + i % 26);
			/* the chunk sizes: a CRLF straddling the chunk edge */
			if (i == CHUNK - 1)
				c = '\n';
			break;
		}
		out->data[i] = c;
	}
	out->len = n;
	out->data[n] = '\0';
}

static void
write_file(const char *name, const unsigned char *p, size_t n)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", T, name);
	ck_assert_ptr_nonnull(f = fopen(path, "wb"));
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

/* The detached signature over canon, by the CLI or by smime_sign(). */
static void
sign_canon(bool cli, const struct buf *canon, struct buf *der)
{
	char err[256], path[4200];
	unsigned char *p;
	size_t n;

	buf_reset(der);
	if (!cli) {
		ck_assert_msg(smime_sign(&bob, NULL, true, canon->data, canon->len, der, err,
		    sizeof(err)) == SM_OK, "sign: %s", err);
		return;
	}
	write_file("content.bin", canon->data, canon->len);
	ck_assert_msg(sh("openssl cms -sign -binary -md sha256 -in content.bin -signer pki/bob.crt "
	    "-inkey pki/bob.key -certfile pki/chain.pem -outform DER -out sig.der") == 0,
	    "openssl cms -sign failed (see %s/sh.out)", T);
	snprintf(path, sizeof(path), "%s/sig.der", T);
	ck_assert_ptr_nonnull(p = testutil_slurp(path, &n));
	ck_assert_int_eq(buf_append(der, p, n), SM_OK);
	free(p);
}

/* Streamed and in-memory verification of content against der agree;
 * returns the streamed verdict. */
static enum smime_verify_status
verify_both(const struct buf *der, const struct buf *content)
{
	struct smime_verify_result a, b;
	struct smime_limits lim = SMIME_LIMITS_DEFAULT;
	struct buf canon = BUF_INIT;
	enum smime_verify_status s;
	BIO *src;

	crlf_ref(content->data, content->len, &canon);
	ck_assert_int_eq(smime_verify_bounded(der->data, der->len, canon.data, canon.len,
	    trust_store(tr), false, &lim, &a, NULL), SM_OK);
	ck_assert_ptr_nonnull(src = bodyio_crlf_bio(content->data, content->len, true));
	ck_assert_int_eq(smime_verify_stream(der->data, der->len, src, trust_store(tr), false, &lim,
	    &b), SM_OK);
	BIO_free(src);
	ck_assert_int_eq(a.status, b.status);
	ck_assert_int_eq(a.signature_ok, b.signature_ok);
	ck_assert_str_eq(a.reason, b.reason);
	ck_assert_int_eq(a.digest_nid, b.digest_nid);
	ck_assert_ptr_nonnull(a.signer);
	ck_assert_ptr_nonnull(b.signer);
	ck_assert_int_eq(X509_cmp(a.signer, b.signer), 0);
	s = b.status;
	smime_verify_result_free(&a);
	smime_verify_result_free(&b);
	buf_free(&canon);
	return s;
}

/* ------------------------------------------------------------ memory */

#if defined(__SANITIZE_ADDRESS__)
#define SI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SI_ASAN 1
#endif
#endif

/* ASan's shadow and quarantine, or Valgrind: RSS says nothing there. */
static bool
instrumented(void)
{
	const char *pre = getenv("LD_PRELOAD"), *v = getenv("SMIME_VALGRIND");

#ifdef SI_ASAN
	return true;
#endif
	return (v && strcmp(v, "1") == 0) || (pre && strstr(pre, "vgpreload") != NULL);
}

/* A /proc/self/status field in bytes, -1 when unreadable. */
static long
status_bytes(const char *field)
{
	char line[256];
	long kib = -1;
	size_t fl = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, fl) == 0 && line[fl] == ':')
			kib = strtol(line + fl + 1, NULL, 10);
	fclose(f);
	return kib < 0 ? -1 : kib * 1024;
}

/* Reset VmHWM to the current RSS (clear_refs 5); the RSS now. */
static long
peak_rss_reset(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);
	bool ok = fd >= 0 && write(fd, "5", 1) == 1;

	if (fd >= 0)
		close(fd);
	ck_assert_msg(ok, "cannot reset VmHWM through /proc/self/clear_refs");
	return status_bytes("VmRSS");
}

/* How far the peak rose above before. */
static long
peak_rss_rise(long before)
{
	long hwm = status_bytes("VmHWM");

	ck_assert_msg(hwm > 0 && before > 0, "cannot read VmHWM/VmRSS from /proc/self/status");
	return hwm - before;
}

/* ------------------------------------------------------------ fixture */

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
	snprintf(path, sizeof(path), "%s/smime-milter.conf", T);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "socket = \"inet:8894@127.0.0.1\";\n"
	    "authserv_id = \"mx.test.example\";\n"
	    "internal_domains = [ \"org.example\" ];\n"
	    "spool_dir = \"%s\";\n"
	    "pid_file = \"%s/pid\";\n"
	    "cache = { path = \"%s/unused.db\"; };\n"
	    "trust = { ca_file = \"%s/pki/ca.pem\"; };\n", T, T, T, T);
	fclose(f);
	ck_assert_msg(config_load(path, &cfg, &errs) == SM_OK, "config: %s",
	    errs.n ? errs.msg[0] : "?");
	config_errors_free(&errs);
	snprintf(path, sizeof(path), "%s/pki/ca.pem", T);
	ck_assert_msg(trust_load(path, NULL, &tr, err, sizeof(err)) == SM_OK, "%s", err);
	snprintf(path, sizeof(path), "%s/pki/bob.pem", T);
	ck_assert_msg(smime_key_load_pem(path, &bob, err, sizeof(err)) == SM_OK, "%s", err);
	snprintf(path, sizeof(path), "%s/pki/alice.pem", T);
	ck_assert_msg(smime_key_load_pem(path, &alice, err, sizeof(err)) == SM_OK, "%s", err);
	ck_assert_int_eq(sh("mkdir -m 700 keys && cp pki/alice.pem keys/ && chmod 600 keys/*"), 0);
	snprintf(path, sizeof(path), "%s/keys", T);
	ck_assert_msg(keystore_load(path, &ks, err, sizeof(err)) == SM_OK, "%s", err);
	env.ks = ks;
	snprintf(path, sizeof(path), "%s/cache.db", T);
	ck_assert_msg(keycache_open("sqlite", path, &kc, err, sizeof(err)) == SM_OK, "%s", err);
	env.cfg = cfg;
	env.trust = tr;
	env.kc = kc;
	cfg->inbound_harvest = true;
	cfg->inbound_results_header = true;
	cfg->inbound_decrypt = CFG_DECRYPT_OFF;
	/* Valgrind runs these 50 MB messages ten to forty times slower (ASan
	 * a few times): the default 2 s CPU budget would leave them unjudged
	 * (temperror), and the budget is check_bounds' subject, not this
	 * suite's. */
	if (instrumented())
		cfg->inbound_cpu_ms = 0;
}

static void
suite_teardown(void)
{
	keycache_close(kc);
	keystore_free(ks);
	smime_key_free(&bob);
	smime_key_free(&alice);
	trust_free(tr);
	config_unref(cfg);
	testutil_rmtree(T);
	free(T);
}

/* ------------------------------------------------------------ the BIO */

START_TEST(the_crlf_reader_gives_the_canonical_form_at_any_read_size)
{
	static const char *const in[] = { "", "a", "\n", "\r\n", "\r", "a\nb", "a\r\nb\n",
		"\n\n\r\n\r\r\n\n", "no line end", "x\r", "\r\r\n\n" };
	static const size_t rd[] = { 1, 2, 3, 7, 65536 };
	struct buf ref = BUF_INIT, got = BUF_INIT;

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		for (size_t j = 0; j < sizeof(rd) / sizeof(rd[0]); j++) {
			size_t n = strlen(in[i]);
			BIO *b = bodyio_crlf_bio((const unsigned char *)in[i], n, true);

			ck_assert_ptr_nonnull(b);
			crlf_ref((const unsigned char *)in[i], n, &ref);
			drain(b, rd[j], &got);
			ck_assert_uint_eq(got.len, ref.len);
			ck_assert_msg(got.len == 0 || memcmp(got.data, ref.data, got.len) == 0,
			    "input %zu, reads of %zu", i, rd[j]);
			BIO_free(b);
		}
	buf_free(&ref);
	buf_free(&got);
}
END_TEST

START_TEST(the_crlf_reader_matches_for_every_shape)
{
	struct buf c = BUF_INIT, ref = BUF_INIT, got = BUF_INIT;
	BIO *b;

	content_of((enum shape)_i, &c);
	crlf_ref(c.data, c.len, &ref);
	ck_assert_ptr_nonnull(b = bodyio_crlf_bio(c.data, c.len, true));
	drain(b, CHUNK, &got);
	BIO_free(b);
	ck_assert_uint_eq(got.len, ref.len);
	ck_assert(got.len == 0 || memcmp(got.data, ref.data, got.len) == 0);
	buf_free(&c);
	buf_free(&ref);
	buf_free(&got);
}
END_TEST

/* Memory that is no file mapping is never given back. */
START_TEST(heap_memory_is_never_dropped)
{
	size_t n = 4 * BODYIO_DROP_MIN;
	unsigned char *p = malloc(n);

	ck_assert_ptr_nonnull(p);
	memset(p, 'q', n);
	ck_assert(!bodyio_file_mapped(p, n));
	bodyio_drop(p, n);
	for (size_t i = 0; i < n; i += 4096)
		ck_assert_int_eq(p[i], 'q');
	free(p);
}
END_TEST

/* ------------------------------------------------------------ verify */

START_TEST(streamed_and_in_memory_verification_agree)
{
	struct buf c = BUF_INIT, canon = BUF_INIT, der = BUF_INIT;

	for (int cli = 0; cli < 2; cli++) {
		content_of((enum shape)_i, &c);
		crlf_ref(c.data, c.len, &canon);
		sign_canon(cli, &canon, &der);
		ck_assert_int_eq(verify_both(&der, &c), SMIME_VERIFY_OK);
		/* the last byte changed: both say altered */
		if (c.len > 0) {
			c.data[c.len - 1] ^= 0x01;
			ck_assert_int_eq(verify_both(&der, &c), SMIME_VERIFY_CONTENT_ALTERED);
		}
	}
	buf_free(&c);
	buf_free(&canon);
	buf_free(&der);
}
END_TEST

/* ------------------------------------------------------------ gw_inbound */

/* Run gw_inbound on a message as the milter sees it: the headers apart
 * (From, To, MIME-Version and h), the body spooled to a file and mapped.
 * *rise: the peak RSS growth during the call, in bytes. */
static void
inbound_spooled(const struct mime_headers *h, const struct buf *body, struct gw_result *res,
    long *rise)
{
	struct mime_headers hdrs = MIME_HEADERS_INIT;
	struct spool *sp;
	const unsigned char *view;
	size_t vlen;
	struct gw_msg m;
	char *rcpts[1] = { "alice@org.example" };

	ck_assert_int_eq(mime_headers_add(&hdrs, "From", "Bob <bob@partner.example>"), SM_OK);
	ck_assert_int_eq(mime_headers_add(&hdrs, "To", "alice@org.example"), SM_OK);
	ck_assert_int_eq(mime_headers_add(&hdrs, "MIME-Version", "1.0"), SM_OK);
	for (size_t i = 0; i < h->n; i++)
		ck_assert_int_eq(mime_headers_add(&hdrs, h->v[i].name, h->v[i].value), SM_OK);
	ck_assert_int_eq(spool_new(T, 1024, (uint64_t)BIG * 3, &sp), SM_OK);
	ck_assert_int_eq(spool_write(sp, body->data, body->len), SM_OK);
	ck_assert_int_eq(spool_view(sp, &view, &vlen), SM_OK);
	memset(&m, 0, sizeof(m));
	m.qid = "STREAMQID";
	m.sender = "bob@partner.example";
	m.rcpts = rcpts;
	m.nrcpts = 1;
	m.hdrs = &hdrs;
	m.body = view;
	m.body_len = vlen;
	*rise = peak_rss_reset();
	ck_assert_int_eq(gw_inbound(&env, &m, res), SM_OK);
	*rise = peak_rss_rise(*rise);
	spool_free(sp);
	mime_headers_free(&hdrs);
}

/* An entity (binary application/octet-stream) holding content. */
static void
entity_of(const struct buf *content, struct buf *entity)
{
	buf_reset(entity);
	ck_assert_int_eq(buf_append_str(entity, "Content-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: binary\r\n\r\n"), SM_OK);
	ck_assert_int_eq(buf_append(entity, content->data, content->len), SM_OK);
}

/* multipart/signed over content, through gw_inbound. tamper: change the
 * last byte of the signed part. */
static void
inbound_detached(const struct buf *content, bool tamper, struct gw_result *res, long *rise)
{
	struct buf entity = BUF_INIT, canon = BUF_INIT, der = BUF_INIT, body = BUF_INIT;
	struct mime_headers h = MIME_HEADERS_INIT;
	const char *eop;

	entity_of(content, &entity);
	crlf_ref(entity.data, entity.len, &canon);
	sign_canon(false, &canon, &der);
	ck_assert_int_eq(mime_build_signed(entity.data, entity.len, der.data, der.len, "sha-256",
	    &h, &body), SM_OK);
	buf_free(&entity);
	buf_free(&canon);
	buf_free(&der);
	if (tamper) {
		/* the byte before the CRLF that ends the signed part */
		eop = (const char *)memmem(body.data + 200, body.len - 200, "\r\n--", 4);
		ck_assert_ptr_nonnull(eop);
		((unsigned char *)eop)[-1] ^= 0x01;
	}
	inbound_spooled(&h, &body, res, rise);
	buf_free(&body);
	mime_headers_free(&h);
}

/* application/pkcs7-mime around content: signed-data by bob, or an
 * envelope to alice (of a signed entity, as sign-then-encrypt makes). */
static size_t
inbound_pkcs7(const struct buf *content, bool envelope, struct gw_result *res, long *rise)
{
	struct buf entity = BUF_INIT, der = BUF_INIT, body = BUF_INIT;
	struct mime_headers h = MIME_HEADERS_INIT;
	STACK_OF(X509) *to = sk_X509_new_null();
	char err[256];
	size_t n;

	entity_of(content, &entity);
	ck_assert_msg(smime_sign(&bob, NULL, false, entity.data, entity.len, &der, err,
	    sizeof(err)) == SM_OK, "sign: %s", err);
	if (envelope) {
		buf_reset(&entity);
		ck_assert_int_eq(mime_build_pkcs7(der.data, der.len, "signed-data", &h, &body), SM_OK);
		ck_assert_int_eq(mime_entity_serialize(&h, body.data, body.len, &entity), SM_OK);
		mime_headers_free(&h);
		buf_reset(&body);
		buf_reset(&der);
		ck_assert_ptr_nonnull(to);
		sk_X509_push(to, alice.cert);
		ck_assert_msg(smime_encrypt(to, SMIME_CIPHER_AES256_CBC, false, entity.data,
		    entity.len, &der, err, sizeof(err)) == SM_OK, "encrypt: %s", err);
	}
	sk_X509_free(to);
	buf_free(&entity);
	ck_assert_int_eq(mime_build_pkcs7(der.data, der.len, envelope ? "enveloped-data" :
	    "signed-data", &h, &body), SM_OK);
	buf_free(&der);
	n = body.len;
	inbound_spooled(&h, &body, res, rise);
	buf_free(&body);
	mime_headers_free(&h);
	return n;
}

/* The body gw_inbound delivers, read the way the milter reads it. */
static void
delivered_body(const struct gw_result *r, struct buf *out)
{
	unsigned char chunk[65536];
	uint64_t off = 0;
	size_t got;

	buf_reset(out);
	do {
		ck_assert_int_eq(gw_result_body_read(r, off, chunk, sizeof(chunk), &got), SM_OK);
		ck_assert_int_eq(buf_append(out, chunk, got), SM_OK);
		off += got;
	} while (got > 0);
	ck_assert_uint_eq(off, gw_result_body_len(r));
}

/* What bench scenario v sends: multipart/signed over content (detached,
 * by bob) encrypted to alice; with decrypt = "deliver". canon: the body
 * the decrypted message must get (the signed part's canonical form, as
 * mime_canonicalize() makes it in memory, without its header). Returns the size of the message body. */
static size_t
inbound_enveloped_detached(const struct buf *content, struct gw_result *res, long *rise,
    struct buf *canon)
{
	struct buf entity = BUF_INIT, cr = BUF_INIT, der = BUF_INIT, body = BUF_INIT;
	struct mime_headers h = MIME_HEADERS_INIT;
	STACK_OF(X509) *to = sk_X509_new_null();
	struct mime_entity *signed_part = NULL;
	const unsigned char *eoh;
	char err[256];
	size_t n;

	entity_of(content, &entity);
	crlf_ref(entity.data, entity.len, &cr);
	sign_canon(false, &cr, &der);
	buf_free(&cr);
	/* what is delivered: the signed part, canonical */
	ck_assert_int_eq(mime_parse(entity.data, entity.len, NULL, &signed_part), SM_OK);
	buf_reset(canon);
	ck_assert_int_eq(mime_canonicalize(&signed_part->hdrs, signed_part->body,
	    signed_part->body_len, NULL, canon), SM_OK);
	mime_entity_free(signed_part);
	ck_assert_int_eq(mime_build_signed(entity.data, entity.len, der.data, der.len, "sha-256",
	    &h, &body), SM_OK);
	eoh = memmem(canon->data, canon->len, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(eoh);
	n = (size_t)(eoh + 4 - canon->data);
	memmove(canon->data, canon->data + n, canon->len - n);
	canon->len -= n;
	buf_reset(&entity);
	ck_assert_int_eq(mime_entity_serialize(&h, body.data, body.len, &entity), SM_OK);
	mime_headers_free(&h);
	buf_reset(&body);
	buf_reset(&der);
	ck_assert_ptr_nonnull(to);
	sk_X509_push(to, alice.cert);
	ck_assert_msg(smime_encrypt(to, SMIME_CIPHER_AES256_CBC, false, entity.data, entity.len,
	    &der, err, sizeof(err)) == SM_OK, "encrypt: %s", err);
	sk_X509_free(to);
	buf_free(&entity);
	ck_assert_int_eq(mime_build_pkcs7(der.data, der.len, "enveloped-data", &h, &body), SM_OK);
	buf_free(&der);
	n = body.len;
	inbound_spooled(&h, &body, res, rise);
	buf_free(&body);
	mime_headers_free(&h);
	return n;
}

static const char *
ar_of(const struct gw_result *r)
{
	for (size_t i = 0; i < r->nedits; i++)
		if (strcmp(r->edits[i].name, "Authentication-Results") == 0)
			return r->edits[i].value;
	return "";
}

START_TEST(a_spooled_50mb_detached_message_verifies_and_harvests_in_flat_memory)
{
	struct buf c = BUF_INIT;
	struct gw_result res;
	long rise;

	content_of(S_BIG, &c);
	inbound_detached(&c, false, &res, &rise);
	buf_free(&c);
	ck_assert_msg(strstr(ar_of(&res), "smime=pass") != NULL, "A-R: %s", ar_of(&res));
	ck_assert_msg(strstr(buf_cstr(&res.summary), "harvested bob@partner.example") != NULL,
	    "summary: %s", buf_cstr(&res.summary));
	fprintf(stderr, "50 MB detached verify+harvest: peak RSS rise %.1f MB\n",
	    (double)rise / 1048576);
	/* Issue 14's goal: at most 32 MB. The MIME parse gives the pages of
	 * the mapping back while it reads (they count in VmHWM: the body's
	 * size before), and the CRLF copy the verification used to make of
	 * this LF text alone was another 50 MB. */
	if (!instrumented())
		ck_assert_msg(rise <= 32L * 1024 * 1024, "peak RSS rose by %ld bytes", rise);
	gw_result_free(&res);
}
END_TEST

START_TEST(a_byte_changed_at_the_end_of_50mb_fails)
{
	struct buf c = BUF_INIT;
	struct gw_result res;
	long rise;

	content_of(S_BIG, &c);
	inbound_detached(&c, true, &res, &rise);
	buf_free(&c);
	ck_assert_msg(strstr(ar_of(&res), "smime=fail") != NULL, "A-R: %s", ar_of(&res));
	ck_assert_msg(strstr(ar_of(&res), "altered") != NULL, "A-R: %s", ar_of(&res));
	ck_assert(strstr(buf_cstr(&res.summary), "harvested bob") == NULL);
	gw_result_free(&res);
}
END_TEST

/* Opaque and enveloped messages need their CMS in memory (OpenSSL decodes
 * it whole), but nothing more of that size: the opaque one at issue 14's
 * goal (1.2x the message). The envelope here holds opaque signed-data in
 * base64 (sign, then encrypt, as two layers of pkcs7-mime): its
 * plaintext (the base64 text) and the decoded signed-data are both held
 * while the inner layer is verified, about 1.45x; the bench's shape
 * (multipart/signed inside) is the deliver test below, at the goal. */
START_TEST(a_spooled_50mb_opaque_or_enveloped_message_stays_within_its_bound)
{
	struct buf c = BUF_INIT;
	struct gw_result res;
	bool envelope = _i == 1;
	size_t n;
	long rise;

	cfg->inbound_decrypt = envelope ? CFG_DECRYPT_HARVEST : CFG_DECRYPT_OFF;
	content_of(S_BIG, &c);
	n = inbound_pkcs7(&c, envelope, &res, &rise);
	buf_free(&c);
	cfg->inbound_decrypt = CFG_DECRYPT_OFF;
	ck_assert_msg(strstr(ar_of(&res), "smime=pass") != NULL, "A-R: %s", ar_of(&res));
	ck_assert_msg(strstr(buf_cstr(&res.summary), "harvested bob@partner.example") != NULL,
	    "summary: %s", buf_cstr(&res.summary));
	fprintf(stderr, "%.1f MB %s message: peak RSS rise %.1f MB (%.2fx its size)\n",
	    (double)n / 1048576, envelope ? "enveloped" : "opaque-signed",
	    (double)rise / 1048576, (double)rise / (double)n);
	if (!instrumented())
		ck_assert_msg((double)rise <= (envelope ? ENVELOPE_BOUND : OPAQUE_BOUND) * (double)n,
		    "peak RSS rose by %ld bytes for %zu", rise, n);
	gw_result_free(&res);
}
END_TEST

/* Bench scenario v: the envelope opened in place, the content verified
 * from the plaintext, the rebuilt body written to a spool: the same
 * bytes as the canonical form in memory, and the peak at the goal. */
START_TEST(a_spooled_50mb_envelope_is_delivered_decrypted_within_the_goal)
{
	struct buf c = BUF_INIT, canon = BUF_INIT, got = BUF_INIT;
	struct gw_result res;
	size_t n;
	long rise;

	cfg->inbound_decrypt = CFG_DECRYPT_DELIVER;
	content_of(S_BIG, &c);
	n = inbound_enveloped_detached(&c, &res, &rise, &canon);
	buf_free(&c);
	cfg->inbound_decrypt = CFG_DECRYPT_OFF;
	ck_assert_msg(strstr(ar_of(&res), "smime=pass") != NULL, "A-R: %s", ar_of(&res));
	ck_assert_msg(strstr(buf_cstr(&res.summary), "delivered decrypted") != NULL, "summary: %s",
	    buf_cstr(&res.summary));
	ck_assert(res.replace_body);
	ck_assert_msg(res.body_spool != NULL, "a 50 MB body is not kept in memory");
	delivered_body(&res, &got);
	ck_assert_uint_eq(got.len, canon.len);
	ck_assert(memcmp(got.data, canon.data, canon.len) == 0);
	buf_free(&got);
	buf_free(&canon);
	fprintf(stderr, "%.1f MB enveloped message, delivered decrypted: peak RSS rise %.1f MB "
	    "(%.2fx its size)\n", (double)n / 1048576, (double)rise / 1048576,
	    (double)rise / (double)n);
	if (!instrumented())
		ck_assert_msg((double)rise <= 1.2 * (double)n, "peak RSS rose by %ld bytes for %zu",
		    rise, n);
	gw_result_free(&res);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("stream_in");
	TCase *tc = tcase_create("bio");

	tcase_add_test(tc, the_crlf_reader_gives_the_canonical_form_at_any_read_size);
	tcase_add_loop_test(tc, the_crlf_reader_matches_for_every_shape, 0, S_COUNT);
	tcase_add_test(tc, heap_memory_is_never_dropped);
	suite_add_tcase(s, tc);
	tc = tcase_create("verify");
	tcase_set_timeout(tc, 600);
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_loop_test(tc, streamed_and_in_memory_verification_agree, 0, S_COUNT);
	tcase_add_test(tc, a_spooled_50mb_detached_message_verifies_and_harvests_in_flat_memory);
	tcase_add_test(tc, a_byte_changed_at_the_end_of_50mb_fails);
	tcase_add_loop_test(tc, a_spooled_50mb_opaque_or_enveloped_message_stays_within_its_bound,
	    0, 2);
	tcase_add_test(tc, a_spooled_50mb_envelope_is_delivered_decrypted_within_the_goal);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(suite());
}
