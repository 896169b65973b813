/*
 * lookupcost.c — what one RCPT lookup of a cached address costs in the key
 * cache, per backend (issue 15: "RCPT lookups hitting the local copy cost
 * the same CPU as SQLite, within 10 %"). Used by contrib/bench/bench.sh.
 *
 *   lookupcost BACKEND WHERE CERT CHAIN CA N [off|soft REVSTORE]
 *
 * BACKEND "sqlite" (WHERE: the database file) or "postgresql" (WHERE: a
 * libpq conninfo). Stores CERT (with the CA certificates in CHAIN) for the
 * address bob@partner.example, waits a second and does two warm-up
 * keycache_select calls (which fill the PostgreSQL backend's local copy), then N keycache_select calls
 * in lookupcost_loop, each checking trust against CA as the daemon does.
 * Prints the CPU time per lookup (this process, all threads). The
 * load-independent number comes from running it under
 *   valgrind --tool=callgrind --collect-atstart=no
 *            --toggle-collect=lookupcost_loop
 * which counts the instructions executed inside the loop only.
 *
 * With the two optional arguments (issue 16: "revocation checking adds no
 * measurable CPU to the hot path, within 5 %, once statuses are cached"),
 * every lookup goes through keycache_select_hook with revstore_hook, as
 * the daemon's RCPT path does, against the revocation store REVSTORE (a
 * SQLite file, created): "off" is revocation = { check = "off"; } (the
 * hook returns at once), "soft" judges CERT against the store, where a
 * good answer for CERT, valid for a day, was written before the loop. The
 * warm-up lookups read it; the measured ones use the judgment revstore
 * keeps in the certcache (statuses cached: the store is not read again
 * until something is written), which the program prints as "store reads
 * in the loop: N" (0). After the loop, "soft" marks CERT revoked, as the
 * worker does, and checks that the next lookup is refused, proving the
 * kept judgment gives way to a new answer; it prints
 * "revoked: refused (REASON)".
 *
 * Build (from the top of the tree, after make):
 *   cc -O2 -Ilib -o lookupcost contrib/bench/lookupcost.c build/libsmime.a \
 *      $(pkg-config --cflags --libs libcrypto libconfig sqlite3 libidn2 \
 *        libcurl ldap libunbound libpq) -lpthread
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "keycache.h"
#include "trust.h"
#include "revstore.h"

#define ADDR "bob@partner.example"

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = NULL;

	if (f != NULL) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	return x;
}

static STACK_OF(X509) *read_chain(const char *path)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL || sk == NULL) {
		if (f != NULL)
			fclose(f);
		sk_X509_free(sk);
		return NULL;
	}
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
		sk_X509_push(sk, x);
	fclose(f);
	return sk;
}

/* The revocation hook of the lookups; NULL: keycache_select alone. */
static const struct kc_hook *rev_hook;

/* One cached RCPT lookup, as milter/ does it: select, use, release. */
static int lookup(struct keycache *kc, X509_STORE *trust)
{
	char reason[KC_REASON_SIZE];
	X509 *cert = NULL;
	caps_t caps;

	if (keycache_select_hook(kc, ADDR, trust, false, rev_hook, &cert,
				 &caps, reason, sizeof(reason)) != SM_OK) {
		fprintf(stderr, "lookupcost: select: %s\n", reason);
		return -1;
	}
	X509_free(cert);
	return 0;
}

/* Kept out of line: callgrind collects inside this function only. */
__attribute__((noinline)) int lookupcost_loop(struct keycache *kc,
					      X509_STORE *trust, long n)
{
	for (long i = 0; i < n; i++)
		if (lookup(kc, trust) != 0)
			return -1;
	return 0;
}

/* Write an answer about cert into the store (its row queued first). */
static int rev_answer(struct revstore *rs, X509 *cert, enum rev_status v)
{
	struct rev_result r = { .status = v, .source = REV_SRC_OCSP,
				.reason = 1 /* keyCompromise */ };
	char fp[X509U_FP_SIZE];
	time_t now = time(NULL);

	r.this_update = now;
	r.next_update = now + 86400;
	r.revoked_at = now - 60;
	if (x509u_fingerprint(cert, fp) != SM_OK ||
	    revstore_enqueue(rs, cert, NULL, now) != SM_OK ||
	    revstore_put(rs, fp, &r, now) != SM_OK) {
		fprintf(stderr, "lookupcost: cannot write the revocation answer\n");
		return -1;
	}
	return 0;
}

/* soft: the lookups were served the good answer; one made after it is
 * replaced by a revoked one must be refused. */
static int rev_prove(struct keycache *kc, X509_STORE *trust,
		     struct revstore *rs, X509 *cert)
{
	char reason[KC_REASON_SIZE];
	X509 *got = NULL;

	if (rev_answer(rs, cert, REV_REVOKED) != 0)
		return -1;
	if (keycache_select_hook(kc, ADDR, trust, false, rev_hook, &got, NULL,
				 reason, sizeof(reason)) == SM_OK) {
		X509_free(got);
		fprintf(stderr, "lookupcost: a revoked certificate was selected: "
				"the store was not read\n");
		return -1;
	}
	printf("revoked: refused (%s)\n", reason);
	return 0;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char err[256];
	struct keycache *kc = NULL;
	struct revstore *rs = NULL;
	struct cfg_revocation rc = { .check = CFG_REV_OFF };
	struct revstore_hook_arg ra = { NULL, &rc, NULL };
	struct kc_hook hook = { revstore_hook, &ra };
	const char *mode = "none";
	enum keycache_outcome out;
	struct trust *anchors = NULL;
	X509_STORE *trust;
	STACK_OF(X509) *chain;
	X509 *cert;
	long n;
	unsigned long reads = 0;
	double t0, t1;
	int ret = 1;

	if ((argc != 7 && argc != 9) || (n = atol(argv[6])) <= 0 ||
	    (argc == 9 && strcmp(argv[7], "off") != 0 &&
	     strcmp(argv[7], "soft") != 0)) {
		fprintf(stderr, "usage: lookupcost BACKEND WHERE CERT CHAIN CA N "
				"[off|soft REVSTORE]\n");
		return 2;
	}
	cert = read_cert(argv[3]);
	chain = read_chain(argv[4]);
	/* The anchors as the daemon loads them (trust_load): a store of
	 * its own identity, whose verdicts the certcache may keep. */
	if (cert == NULL || chain == NULL ||
	    trust_load(argv[5], NULL, &anchors, err, sizeof(err)) != SM_OK) {
		fprintf(stderr, "lookupcost: cannot read the certificates\n");
		return 1;
	}
	trust = trust_store(anchors);
	if (keycache_open(argv[1], argv[2], &kc, err, sizeof(err)) != SM_OK) {
		fprintf(stderr, "lookupcost: open %s: %s\n", argv[1], err);
		return 1;
	}
	if (argc == 9) {
		mode = argv[7];
		if (revstore_open(argv[8], &rs, err, sizeof(err)) != SM_OK) {
			fprintf(stderr, "lookupcost: revocation store %s: %s\n",
				argv[8], err);
			goto done;
		}
		ra.rs = rs;
		ra.anchors = trust;
		if (strcmp(mode, "soft") == 0)
			rc.check = CFG_REV_SOFT;
		if (rev_answer(rs, cert, REV_GOOD) != 0)
			goto done;
		rev_hook = &hook;
	}
	if (keycache_store(kc, cert, chain, ADDR, CAP_KNOWN, KC_SRC_IMPORTED,
			   &out, NULL) != SM_OK) {
		fprintf(stderr, "lookupcost: store failed\n");
		goto done;
	}
	/* Warm-up, outside the loop callgrind counts: our own store's change
	 * notification comes back to the PostgreSQL backend's listener and
	 * clears its local copy; after it, a lookup fills the copy again. */
	sleep(1);
	if (lookup(kc, trust) != 0 || lookup(kc, trust) != 0)
		goto done;
	if (rs != NULL)
		reads = revstore_reads(rs);
	t0 = cpu_now();
	if (lookupcost_loop(kc, trust, n) != 0)
		goto done;
	t1 = cpu_now();
	printf("%s %ld lookups, %.2f us CPU per lookup (revocation %s)\n",
	       argv[1], n, (t1 - t0) * 1e6 / (double)n, mode);
	if (rs != NULL)
		printf("store reads in the loop: %lu\n", revstore_reads(rs) - reads);
	if (rc.check == CFG_REV_SOFT && rev_prove(kc, trust, rs, cert) != 0)
		goto done;
	ret = 0;
done:
	revstore_close(rs);
	keycache_close(kc);
	trust_free(anchors);
	sk_X509_pop_free(chain, X509_free);
	X509_free(cert);
	return ret;
}
