/*
 * observe.c — the daemon's operational side: the metrics endpoint (one
 * thread accepting scrapes) and the expiry warnings for our own
 * certificates (at start, then daily).
 *
 * The counters themselves live in lib/metrics.c and are bumped by the
 * gateway; a scrape adds the gauges read now from the current runtime:
 * key cache size and health, seconds until our certificates and the trust
 * anchors expire, build information and start time.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "clock.h"
#include "expiry.h"
#include "keycache.h"
#include "keystore.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "milter.h"
#include "trust.h"
#include "x509util.h"

static time_t observe_started;
static int observe_fd = -1;
static char observe_token[METRICS_TOKEN_MAX];

/* ---- gauges ---- */

struct cache_count {
	double n[4]; /* by enum kc_status */
};

static int
count_binding(const struct kc_record *rec, void *arg)
{
	struct cache_count *c = arg;

	if ((unsigned)rec->status < 4)
		c->n[rec->status]++;
	return 0;
}

static void
gauges_cache(struct buf *out, struct runtime *rt)
{
	struct cache_count c = { { 0, 0, 0, 0 } };
	bool up = keycache_iterate(rt->kc, count_binding, &c) == SM_OK;

	metrics_family(out, "smime_milter_cache_up", "gauge",
	    "1 when the key cache backend answered this scrape, else 0.");
	metrics_sample(out, "smime_milter_cache_up", NULL, up ? 1 : 0);
	metrics_family(out, "smime_milter_cache_bindings", "gauge",
	    "Address-to-certificate bindings in the key cache, by status.");
	for (int s = 0; s < 4 && up; s++) {
		const char *lab[] = { "status", kc_status_name((enum kc_status)s), NULL };
		metrics_sample(out, "smime_milter_cache_bindings", lab, c.n[s]);
	}
}

static void
gauges_own(struct buf *out, struct runtime *rt, time_t now)
{
	const char *name = "smime_milter_own_certificate_expiry_seconds";

	metrics_family(out, name, "gauge",
	    "Seconds until each of our own certificates (keys_dir) expires; negative once expired.");
	for (size_t i = 0; i < keystore_count(rt->ks); i++) {
		const struct keystore_info *in = keystore_info_at(rt->ks, i);
		char fp[17], dom[300];
		double left = difftime(in->not_after, now);

		snprintf(fp, sizeof(fp), "%.16s", in->fingerprint);
		for (size_t a = 0; a < in->n_addresses; a++) {
			const char *lab[] = { "address", in->addresses[a], "sha256", fp, NULL };
			metrics_sample(out, name, lab, left);
		}
		for (size_t d = 0; d < in->n_domains; d++) {
			const char *lab[] = { "address", dom, "sha256", fp, NULL };
			snprintf(dom, sizeof(dom), "@%s", in->domains[d]);
			metrics_sample(out, name, lab, left);
		}
	}
}

static void
gauges_trust(struct buf *out, struct runtime *rt, time_t now)
{
	const char *name = "smime_milter_trust_anchor_expiry_seconds";
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(trust_store(rt->trust));

	metrics_family(out, name, "gauge",
	    "Seconds until each trust anchor (trust.ca_file) expires; negative once expired.");
	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		char fp[X509U_FP_SIZE], subj[256] = "";
		int pday = 0, psec = 0;

		if (x == NULL || x509u_fingerprint(x, fp) != SM_OK)
			continue;
		X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
		{
			ASN1_TIME *t = ASN1_TIME_new();
			if (t && ASN1_TIME_set(t, now) &&
			    ASN1_TIME_diff(&pday, &psec, t, X509_get0_notAfter(x))) {
				const char *lab[] = { "subject", subj, "sha256", fp, NULL };
				fp[16] = '\0';
				metrics_sample(out, name, lab, (double)pday * 86400 + psec);
			}
			ASN1_TIME_free(t);
		}
	}
}

static void
gauges_process(struct buf *out)
{
	char lc[32];
	const char *lab[] = { "version", SMIME_VERSION, "openssl", OpenSSL_version(OPENSSL_VERSION),
		"sqlite", sqlite3_libversion(), "libconfig", lc, NULL };

	snprintf(lc, sizeof(lc), "%d.%d.%d", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
	    LIBCONFIG_VER_REVISION);
	metrics_family(out, "smime_milter_build_info", "gauge",
	    "Versions of smime-milter and the libraries it runs with; always 1.");
	metrics_sample(out, "smime_milter_build_info", lab, 1);
	metrics_family(out, "smime_milter_start_time_seconds", "gauge",
	    "When the daemon started, in seconds since the Unix epoch.");
	metrics_sample(out, "smime_milter_start_time_seconds", NULL, (double)observe_started);
}

static sm_status
scrape(struct buf *out, void *arg)
{
	struct runtime *rt = runtime_get();
	time_t now = clock_now();
	sm_status st;

	(void)arg;
	if (rt == NULL)
		return SM_ERR_ARG;
	st = metrics_format(out);
	gauges_cache(out, rt);
	gauges_own(out, rt, now);
	gauges_trust(out, rt, now);
	gauges_process(out);
	runtime_put(rt);
	return st == SM_OK && out->data ? SM_OK : SM_ERR_NOMEM;
}

static void *
serve_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept4(observe_fd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(100000); /* EMFILE and the like: do not spin */
			continue;
		}
		metrics_http_serve(c, observe_token, scrape, NULL);
	}
	return NULL;
}

/* ---- expiry warnings ---- */

static void
warn_one(const struct keystore_info *in, long days_left, void *arg)
{
	char names[512], date[32];
	struct tm tm;

	(void)arg;
	gmtime_r(&in->not_after, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	expiry_names(in, names, sizeof(names));
	if (in->not_after < clock_now())
		log_msg(LOG_WARNING, "own certificate for %s expired on %s (sha256=%s, %s)", names,
		    date, in->fingerprint, in->path);
	else
		log_msg(LOG_WARNING, "own certificate for %s expires on %s, in %ld days (sha256=%s, %s)",
		    names, date, days_left, in->fingerprint, in->path);
}

static void *
expiry_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct runtime *rt = runtime_get();

		if (rt) {
			expiry_own(rt->ks, clock_now(), (long)rt->cfg->warn_expiry_days, warn_one, NULL);
			runtime_put(rt);
		}
		sleep(86400);
	}
	return NULL;
}

/* ---- start ---- */

/* A thread that never takes the signals libmilter and the reload thread
 * wait for: a stop signal delivered here would kill the process without
 * libmilter's clean shutdown. */
static int
start_thread(void *(*fn)(void *))
{
	sigset_t all, old;
	pthread_t tid;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&tid, NULL, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0)
		pthread_detach(tid);
	return rc;
}

int
observe_start(void)
{
	struct runtime *rt = runtime_get();
	char err[512] = "";
	int rc = -1;

	observe_started = time(NULL);
	if (rt == NULL)
		return -1;
	if (rt->cfg->metrics_listen) {
		if (rt->cfg->metrics_token_file &&
		    metrics_http_read_token(rt->cfg->metrics_token_file, observe_token,
			sizeof(observe_token), err, sizeof(err)) != SM_OK) {
			log_msg(LOG_ERR, "metrics.token_file: %s", err);
			goto out;
		}
		if (metrics_http_listen(rt->cfg->metrics_listen, &observe_fd, err, sizeof(err)) != SM_OK) {
			log_msg(LOG_ERR, "metrics.listen: %s", err);
			goto out;
		}
		if (start_thread(serve_thread) != 0) {
			log_msg(LOG_ERR, "cannot start the metrics thread");
			goto out;
		}
		log_msg(LOG_NOTICE, "metrics on %s%s", rt->cfg->metrics_listen,
		    observe_token[0] ? " (bearer token required)" : "");
	}
	if (start_thread(expiry_thread) != 0) {
		log_msg(LOG_ERR, "cannot start the expiry warning thread");
		goto out;
	}
	rc = 0;
out:
	runtime_put(rt);
	return rc;
}
