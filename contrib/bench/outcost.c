/*
 * outcost.c — what the outbound transformation of one message costs, away
 * from Postfix and the load of the machine (issue 14: "CPU at 1 MB:
 * sign+encrypt <= 1.5x OpenDKIM's"). gw_outbound() runs N times on one
 * message of SIZE bytes of CRLF text, spooled in 64 KiB pieces and viewed
 * as mlfi_body and mlfi_eom do (spool_threshold 1 MiB: a larger body is a
 * file, mapped), and the new body is read back in 64 KiB pieces as the
 * milter's replacebody loop does.
 *
 *   outcost PKI WORK MODE SIZE N
 *
 * PKI: a directory made by tests/pki/mkpki.sh (alice signs, bob receives).
 * WORK: an empty directory for the configuration, keys_dir, the key cache
 * and spool_dir. MODE: "sign" (encrypt = "never", as bench scenario b) or
 * "enc" (sign+encrypt to bob, aes-256-cbc via auto, as scenario c). SIZE
 * in bytes (suffix k or m). Prints the user and system CPU time and the
 * minor page faults per message (this process).
 * The load-independent number comes from
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=outcost_loop
 *   perf stat -e instructions:u
 * (callgrind counts only the loop; perf stat the whole run, so subtract a
 * run with N = 0 or compare two N).
 *
 * Build (from the top of the tree, after make):
 *   cc -O2 -g -Ilib -o outcost contrib/bench/outcost.c build/libsmime.a \
 *      $(make -s --eval='l: ; @echo $(LIBS)' l)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config.h"
#include "gateway.h"
#include "keycache.h"
#include "keystore.h"
#include "mime.h"
#include "spool.h"
#include "trust.h"

static X509 *
read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = NULL;

	if (f != NULL) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	return x;
}

static int
copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "r"), *b = fopen(to, "w");
	char chunk[4096];
	size_t n;
	int ok = a != NULL && b != NULL;

	while (ok && (n = fread(chunk, 1, sizeof(chunk), a)) > 0)
		ok = fwrite(chunk, 1, n, b) == n;
	if (a)
		fclose(a);
	if (b)
		ok = fclose(b) == 0 && ok;
	return ok && chmod(to, 0600) == 0; /* keys_dir skips a key others can read */
}

static size_t
parse_size(const char *s)
{
	char *end;
	size_t n = strtoul(s, &end, 10);

	if (*end == 'k' || *end == 'K')
		n <<= 10;
	else if (*end == 'm' || *end == 'M')
		n <<= 20;
	return n;
}

static double
tv_ms(const struct timeval *b, const struct timeval *a)
{
	return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_usec - a->tv_usec) / 1e3;
}

/* The body into a spool in 64 KiB pieces (as mlfi_body gets it), viewed
 * the way mlfi_eom hands it to gw_outbound. */
static int
spool_body(const struct config *cfg, struct gw_msg *m, const struct buf *body)
{
	struct spool *sp;

	if (spool_new(cfg->spool_dir, cfg->spool_threshold, cfg->max_message_size, &sp) != SM_OK)
		return 1;
	for (size_t at = 0; at < body->len; at += 65535)
		if (spool_write(sp, body->data + at, body->len - at < 65535 ? body->len - at :
		    65535) != SM_OK)
			return spool_free(sp), 1;
	m->body_spool = sp;
	return spool_view(sp, &m->body, &m->body_len) != SM_OK;
}

/* One message into a spool, through gw_outbound and out again in
 * pieces, n times. */
__attribute__((noinline)) static int
outcost_loop(const struct gw_env *env, struct gw_msg *m, const struct buf *body, long n)
{
	static unsigned char piece[65535];

	for (long i = 0; i < n; i++) {
		struct gw_result res = { 0 };
		uint64_t off = 0;
		size_t got = 0;
		int rc = spool_body(env->cfg, m, body);

		if (rc == 0 && (gw_outbound(env, m, &res) != SM_OK || !res.replace_body)) {
			fprintf(stderr, "outcost: gw_outbound failed: %s\n", buf_cstr(&res.summary));
			rc = 1;
		}
		while (rc == 0 && (rc = gw_result_body_read(&res, off, piece, sizeof(piece),
		    &got) != SM_OK) == 0 && got > 0)
			off += got;
		gw_result_free(&res);
		spool_free(m->body_spool);
		if (rc != 0)
			return 1;
	}
	return 0;
}

static int
write_config(const char *work, const char *pki, const char *mode)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/smime-milter.conf", work);
	if ((f = fopen(path, "w")) == NULL)
		return 0;
	fprintf(f, "authserv_id = \"mx.org.example\";\nspool_dir = \"%s\";\n"
	    "internal_domains = [ \"org.example\" ];\nkeys_dir = \"%s/keys\";\n"
	    "trust = { ca_file = \"%s/ca.pem\"; };\n"
	    "cache = { backend = \"sqlite\"; path = \"%s/cache.db\"; };\n"
	    "outbound = { sign = true; encrypt = \"%s\"; cipher = \"auto\"; };\n",
	    work, work, pki, work, strcmp(mode, "enc") == 0 ? "required" : "never");
	return fclose(f) == 0;
}

static void
make_body(struct buf *b, size_t len)
{
	static const char line[] =
	    "The quick brown fox jumps over the lazy dog; smime-milter benchmark text.\r\n";

	while (b->len < len)
		buf_append(b, line, sizeof(line) - 1);
}

int
main(int argc, char **argv)
{
	char path[4096], path2[4096], err[512];
	struct config_errors errs = { NULL, 0 };
	struct config *cfg = NULL;
	struct trust *anchors = NULL;
	struct keystore *ks = NULL;
	struct keycache *kc = NULL;
	struct mime_headers h = MIME_HEADERS_INIT;
	struct buf body = BUF_INIT;
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509 *bob, *inter;
	enum keycache_outcome oc;
	char *rcpts[] = { "bob@partner.example" };
	struct rusage r0, r1;
	long n;
	int rc;

	if (argc != 6) {
		fprintf(stderr, "usage: outcost PKI WORK sign|enc SIZE N\n");
		return 2;
	}
	n = atol(argv[5]);
	snprintf(path, sizeof(path), "%s/keys", argv[2]);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/alice.pem", argv[1]);
	snprintf(path2, sizeof(path2), "%s/keys/alice.pem", argv[2]);
	if (!copy_file(path, path2) || !write_config(argv[2], argv[1], argv[3]))
		return fprintf(stderr, "outcost: cannot set up %s\n", argv[2]), 1;
	snprintf(path, sizeof(path), "%s/smime-milter.conf", argv[2]);
	if (config_load(path, &cfg, &errs) != SM_OK)
		return fprintf(stderr, "outcost: config: %s\n", errs.n ? errs.msg[0] : "?"), 1;
	snprintf(path, sizeof(path), "%s/ca.pem", argv[1]);
	if (trust_load(path, NULL, &anchors, err, sizeof(err)) != SM_OK ||
	    keystore_load(cfg->keys_dir, &ks, err, sizeof(err)) != SM_OK ||
	    keycache_open("sqlite", cfg->cache_path, &kc, err, sizeof(err)) != SM_OK)
		return fprintf(stderr, "outcost: %s\n", err), 1;
	snprintf(path, sizeof(path), "%s/bob.crt", argv[1]);
	snprintf(path2, sizeof(path2), "%s/inter.crt", argv[1]);
	if ((bob = read_cert(path)) == NULL || (inter = read_cert(path2)) == NULL ||
	    !sk_X509_push(chain, inter) ||
	    keycache_store(kc, bob, chain, rcpts[0], 0, KC_SRC_IMPORTED, &oc, NULL) != SM_OK)
		return fprintf(stderr, "outcost: cannot store bob's certificate\n"), 1;

	mime_headers_add(&h, "From", "Alice Example <alice@org.example>");
	mime_headers_add(&h, "To", "Bob Partner <bob@partner.example>");
	mime_headers_add(&h, "Subject", "outcost");
	mime_headers_add(&h, "Message-ID", "<outcost@org.example>");
	mime_headers_add(&h, "MIME-Version", "1.0");
	mime_headers_add(&h, "Content-Type", "text/plain; charset=us-ascii");
	make_body(&body, parse_size(argv[4]));
	{
		struct gw_env env = { cfg, anchors, ks, kc, NULL, NULL, NULL, NULL };
		struct gw_msg m = { "OUTCOST", "alice@org.example", rcpts, 1, &h, NULL, 0, NULL,
			NULL };

		rc = outcost_loop(&env, &m, &body, 1); /* warm-up: the first fetches */
		getrusage(RUSAGE_SELF, &r0);
		if (rc == 0)
			rc = outcost_loop(&env, &m, &body, n);
		getrusage(RUSAGE_SELF, &r1);
	}
	if (rc == 0 && n > 0)
		printf("%s %zu bytes: %.3f ms user + %.3f ms system CPU, %.0f minor faults per "
		    "message (%ld messages)\n", argv[3], body.len, tv_ms(&r1.ru_utime, &r0.ru_utime) / n,
		    tv_ms(&r1.ru_stime, &r0.ru_stime) / n, (double)(r1.ru_minflt - r0.ru_minflt) / n, n);
	mime_headers_free(&h);
	buf_free(&body);
	sk_X509_pop_free(chain, X509_free);
	X509_free(bob);
	keycache_close(kc);
	keystore_free(ks);
	trust_free(anchors);
	config_unref(cfg);
	return rc;
}
