/*
 * discover.c — the one entry point of key discovery (see discover.h):
 * which sources apply, the negative cache, the parallel queries under one
 * time budget, and the harvest rules for what they found.
 */
#include "discover.h"
#include "discover_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include <openssl/x509_vfy.h>

#include "address.h"
#include "clock.h"
#include "harvest.h"
#include "keycache.h"
#include "log.h"
#include "metrics.h"
#include "x509util.h"

#define DISC_NEG_MAX 4096

struct neg_entry {
	char *addr;
	time_t until;
	char sources[DISC_TEXT_SIZE];
};

struct discover {
	struct config *cfg;       /* a reference: abandoned jobs still read it */
	char **passwords;         /* per LDAP source, NULL without bind_dn */
	struct disc_smimea *smimea;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;                 /* the owner plus every running job */
	struct neg_entry *neg;
	size_t n_neg;
};

/* One query, run by a thread of its own. */
struct disc_job {
	struct discover *d;
	const struct cfg_ldap *ldap; /* NULL: SMIMEA */
	char addr[320];
	int timeout_ms;
	bool done, abandoned;
	struct disc_answer ans;
};

static void
discover_unref(struct discover *d)
{
	int left;

	pthread_mutex_lock(&d->mu);
	left = --d->refs;
	pthread_mutex_unlock(&d->mu);
	if (left > 0)
		return;
	for (size_t i = 0; i < d->cfg->n_discovery_ldap; i++)
		free(d->passwords ? d->passwords[i] : NULL);
	free(d->passwords);
	disc_smimea_free(d->smimea);
	for (size_t i = 0; i < d->n_neg; i++)
		free(d->neg[i].addr);
	free(d->neg);
	config_unref(d->cfg);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d);
}

static sm_status
read_password(const char *path, char **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[512] = "";

	if (f == NULL) {
		snprintf(err, errlen, "discovery: password_file %s: %s", path, strerror(errno));
		return SM_ERR_IO;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return (*out = strdup(line)) ? SM_OK : SM_ERR_NOMEM;
}

sm_status
discover_new(const struct config *cfg, struct discover **out, char *err, size_t errlen)
{
	struct discover *d;
	sm_status st = SM_OK;

	*out = NULL;
	if (cfg->n_discovery_ldap == 0 && !cfg->smimea_enabled)
		return SM_OK;
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->passwords = calloc(cfg->n_discovery_ldap + 1, sizeof(char *))) == NULL) {
		free(d);
		return SM_ERR_NOMEM;
	}
	d->cfg = config_ref((struct config *)cfg);
	d->refs = 1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	for (size_t i = 0; st == SM_OK && i < cfg->n_discovery_ldap; i++)
		if (cfg->discovery_ldap[i].password_file)
			st = read_password(cfg->discovery_ldap[i].password_file, &d->passwords[i],
			    err, errlen);
	if (st == SM_OK && cfg->smimea_enabled)
		st = disc_smimea_new(cfg, &d->smimea, err, errlen);
	if (st != SM_OK) {
		discover_unref(d);
		return st;
	}
	*out = d;
	return SM_OK;
}

void
discover_free(struct discover *d)
{
	if (d != NULL)
		discover_unref(d);
}

void
disc_answer_free(struct disc_answer *a)
{
	sk_X509_pop_free(a->certs, X509_free);
	sk_X509_pop_free(a->cas, X509_free);
	sk_X509_pop_free(a->dane_ee, X509_free);
	a->certs = a->cas = a->dane_ee = NULL;
}

/* ---- which sources apply ---- */

static bool
ldap_applies(const struct cfg_ldap *l, const char *addr)
{
	const char *dom = addr_domain(addr);

	for (size_t i = 0; i < l->n_domains; i++) {
		const char *m = l->domains[i];

		if (m[0] == '@' ? dom && strcasecmp(m + 1, dom) == 0 : strcasecmp(m, addr) == 0)
			return true;
	}
	return false;
}

static bool
is_internal(const struct config *cfg, const char *addr)
{
	for (size_t i = 0; i < cfg->n_internal_domains; i++)
		if (addr_in_domain(addr, cfg->internal_domains[i]))
			return true;
	return false;
}

/* ---- negative cache ---- */

static bool
neg_lookup(struct discover *d, const char *addr, time_t now, char *sources, size_t len)
{
	bool hit = false;

	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->n_neg; i++)
		if (strcmp(d->neg[i].addr, addr) == 0 && d->neg[i].until > now) {
			snprintf(sources, len, "%s", d->neg[i].sources);
			hit = true;
			break;
		}
	pthread_mutex_unlock(&d->mu);
	return hit;
}

static void
neg_store(struct discover *d, const char *addr, time_t now, const char *sources)
{
	struct neg_entry *e = NULL;

	if (d->cfg->discovery_negative_ttl == 0)
		return;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->n_neg && e == NULL; i++)
		if (strcmp(d->neg[i].addr, addr) == 0 || d->neg[i].until <= now)
			e = &d->neg[i];
	if (e == NULL && d->n_neg < DISC_NEG_MAX) {
		struct neg_entry *v = realloc(d->neg, (d->n_neg + 1) * sizeof(*v));

		if (v != NULL) {
			d->neg = v;
			e = &v[d->n_neg++];
			e->addr = NULL;
		}
	}
	if (e == NULL && d->n_neg == 0) {
		pthread_mutex_unlock(&d->mu);
		return;
	}
	if (e == NULL)
		e = &d->neg[(size_t)now % d->n_neg]; /* full: replace one */
	free(e->addr);
	e->addr = strdup(addr);
	e->until = now + (time_t)d->cfg->discovery_negative_ttl;
	snprintf(e->sources, sizeof(e->sources), "%s", sources);
	if (e->addr == NULL)
		e->until = 0;
	pthread_mutex_unlock(&d->mu);
}

/* ---- the queries ---- */

static void *
job_run(void *arg)
{
	struct disc_job *j = arg;
	struct discover *d = j->d;
	bool abandoned;

	if (j->ldap != NULL)
		disc_ldap_query(j->ldap, d->passwords[j->ldap - d->cfg->discovery_ldap], j->addr,
		    j->timeout_ms, &j->ans);
	else
		disc_smimea_query(d->smimea, j->addr, &j->ans);
	pthread_mutex_lock(&d->mu);
	j->done = true;
	abandoned = j->abandoned;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	if (abandoned) {
		disc_answer_free(&j->ans);
		free(j);
	}
	discover_unref(d);
	return NULL;
}

static sm_status
job_start(struct discover *d, const struct cfg_ldap *l, const char *addr, struct disc_job **out)
{
	struct disc_job *j = calloc(1, sizeof(*j));
	pthread_attr_t at;
	pthread_t t;
	int rc;

	*out = NULL;
	if (j == NULL || (j->ans.certs = sk_X509_new_null()) == NULL ||
	    (j->ans.cas = sk_X509_new_null()) == NULL ||
	    (j->ans.dane_ee = sk_X509_new_null()) == NULL)
		goto nomem;
	j->d = d;
	j->ldap = l;
	j->timeout_ms = (int)d->cfg->discovery_budget_ms;
	snprintf(j->addr, sizeof(j->addr), "%s", addr);
	pthread_mutex_lock(&d->mu);
	d->refs++;
	pthread_mutex_unlock(&d->mu);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &at, job_run, j);
	pthread_attr_destroy(&at);
	if (rc != 0) {
		discover_unref(d);
		goto nomem;
	}
	*out = j;
	return SM_OK;
nomem:
	if (j)
		disc_answer_free(&j->ans);
	free(j);
	return SM_ERR_NOMEM;
}

/* Wait for every job until the deadline; jobs still running are left to
 * finish on their own (they free themselves). Returns how many finished. */
static size_t
jobs_wait(struct discover *d, struct disc_job **jobs, size_t n)
{
	struct timespec dl;
	size_t done = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)(d->cfg->discovery_budget_ms / 1000);
	dl.tv_nsec += (long)(d->cfg->discovery_budget_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&d->mu);
	for (;;) {
		done = 0;
		for (size_t i = 0; i < n; i++)
			done += jobs[i]->done;
		if (done == n || pthread_cond_timedwait(&d->cv, &d->mu, &dl) == ETIMEDOUT)
			break;
	}
	done = 0;
	for (size_t i = 0; i < n; i++) {
		if (jobs[i]->done) {
			done++;
			continue;
		}
		jobs[i]->abandoned = true;
		jobs[i] = NULL;
	}
	pthread_mutex_unlock(&d->mu);
	return done;
}

/* ---- what was found ---- */

/* The harvest rules for a found certificate: the address plays From, no
 * message signature to judge. dane: a secure DANE-EE record named it,
 * which stands in for the chain to the trust store. */
static sm_status
judge(X509 *cert, STACK_OF(X509) *cas, bool dane, const char *addr, X509_STORE *trust,
    bool allow_self_signed, struct harvest_verdict *v)
{
	struct harvest_input hi;
	int verr = 0;
	sm_status st;

	memset(&hi, 0, sizeof(hi));
	hi.signer = cert;
	hi.signature_ok = true;
	hi.allow_self_signed = allow_self_signed;
	hi.digest_nid = NID_sha256;
	hi.from = addr;
	hi.now = clock_now();
	st = dane ? SM_OK : x509u_verify(cert, cas, trust, allow_self_signed, hi.now, &verr);
	if (st == SM_OK)
		hi.chain = HARVEST_CHAIN_TRUSTED;
	else if (st != SM_ERR_VERIFY)
		return st;
	else if (x509u_is_self_signed(cert))
		hi.chain = HARVEST_CHAIN_SELF_SIGNED;
	else if (verr == X509_V_ERR_CERT_HAS_EXPIRED || verr == X509_V_ERR_CERT_NOT_YET_VALID)
		hi.chain = HARVEST_CHAIN_EXPIRED;
	else
		hi.chain = HARVEST_CHAIN_UNTRUSTED;
	return harvest_judge(&hi, v);
}

static void
source_name(const struct disc_job *j, char *out, size_t len)
{
	if (j->ldap)
		snprintf(out, len, "ldap:%s", j->ldap->uri);
	else
		snprintf(out, len, "smimea");
}

/* Store every candidate of one answer that passes; returns how many. */
static size_t
store_found(struct disc_job *j, const char *qid, struct keycache *kc, X509_STORE *trust,
    bool allow_self_signed)
{
	char origin[DISC_TEXT_SIZE], fp[X509U_FP_SIZE];
	enum keycache_outcome oc;
	size_t stored = 0;

	source_name(j, origin, sizeof(origin));
	for (int i = 0; i < sk_X509_num(j->ans.certs); i++) {
		X509 *c = sk_X509_value(j->ans.certs, i);
		bool dane = sk_X509_find(j->ans.dane_ee, c) >= 0;
		struct harvest_verdict v;

		x509u_fingerprint(c, fp);
		source_name(j, origin, sizeof(origin));
		if (dane)
			snprintf(origin, sizeof(origin), "%s", KC_ORIGIN_DANE_EE);
		if (judge(c, j->ans.cas, dane, j->addr, trust, allow_self_signed, &v) != SM_OK ||
		    !v.harvest) {
			log_qid(LOG_INFO, qid, "discovery %s: %s sha256=%s not used: %s", origin,
			    j->addr, fp, v.reason);
			continue;
		}
		if (keycache_store_discovered(kc, c, j->ans.cas, j->addr, origin, &oc) != SM_OK)
			continue;
		log_qid(LOG_INFO, qid, "discovery %s: %s sha256=%s stored (%s)", origin, j->addr, fp,
		    keycache_outcome_name(oc));
		stored++;
	}
	return stored;
}

static void
text_add(char *buf, size_t len, const char *item)
{
	size_t o = strlen(buf);

	snprintf(buf + o, len - o, "%s%s", o ? ", " : "", item);
}

/* Start the queries that apply to addr; *n receives how many started. */
static sm_status
start_all(struct discover *d, const char *addr, struct disc_job **jobs, size_t *n,
    struct disc_outcome *out)
{
	char name[DISC_TEXT_SIZE];
	sm_status st = SM_OK;

	*n = 0;
	for (size_t i = 0; st == SM_OK && i < d->cfg->n_discovery_ldap; i++) {
		const struct cfg_ldap *l = &d->cfg->discovery_ldap[i];

		if (!ldap_applies(l, addr))
			continue;
		if ((st = job_start(d, l, addr, &jobs[*n])) == SM_OK) {
			source_name(jobs[(*n)++], name, sizeof(name));
			text_add(out->sources, sizeof(out->sources), name);
		}
	}
	if (st == SM_OK && d->smimea != NULL && (st = job_start(d, NULL, addr, &jobs[*n])) == SM_OK) {
		(*n)++;
		text_add(out->sources, sizeof(out->sources), "smimea");
	}
	return st;
}

/* What one finished (or abandoned: NULL) query gave: certificates stored
 * (added to *stored), a temporary failure (*temp, out->why), counted in
 * the metrics by its source. */
static void
job_collect(struct discover *d, struct disc_job *j, enum metrics_disc_source src,
    const char *qid, struct keycache *kc, X509_STORE *trust, bool allow_self_signed,
    size_t *stored, bool *temp, struct disc_outcome *out)
{
	char name[DISC_TEXT_SIZE];
	size_t k;

	if (j == NULL) {
		*temp = true;
		snprintf(out->why, sizeof(out->why), "no answer within %llu ms",
		    (unsigned long long)d->cfg->discovery_budget_ms);
		metrics_discovery(src, METRICS_DISC_TIMEOUT);
		return;
	}
	if (j->ans.status == DA_TEMP) {
		*temp = true;
		snprintf(out->why, sizeof(out->why), "%s", j->ans.why);
		metrics_discovery(src, METRICS_DISC_ERROR);
	} else if (j->ans.status == DA_FOUND) {
		k = store_found(j, qid, kc, trust, allow_self_signed);
		source_name(j, name, sizeof(name));
		if (k > 0 && *stored == 0)
			snprintf(out->why, sizeof(out->why), "%s", name);
		*stored += k;
		metrics_discovery(src, k > 0 ? METRICS_DISC_FOUND : METRICS_DISC_UNUSABLE);
	} else {
		metrics_discovery(src, METRICS_DISC_NOT_FOUND);
	}
	disc_answer_free(&j->ans);
	free(j);
}

sm_status
discover_rcpt(struct discover *d, const char *qid, const char *addr, struct keycache *kc,
    X509_STORE *trust, bool allow_self_signed, struct disc_outcome *out)
{
	struct disc_job **jobs;
	enum metrics_disc_source *src;
	size_t n = 0, stored = 0;
	bool temp = false;
	time_t now = clock_now();
	sm_status st;

	memset(out, 0, sizeof(*out));
	out->result = DISC_SKIPPED;
	if (d == NULL || kc == NULL || is_internal(d->cfg, addr))
		return SM_OK;
	if (neg_lookup(d, addr, now, out->sources, sizeof(out->sources))) {
		out->result = DISC_NOT_FOUND;
		out->cached = true;
		return SM_OK;
	}
	jobs = calloc(d->cfg->n_discovery_ldap + 2, sizeof(*jobs));
	src = calloc(d->cfg->n_discovery_ldap + 2, sizeof(*src));
	if (jobs == NULL || src == NULL) {
		free(jobs);
		free(src);
		return SM_ERR_NOMEM;
	}
	st = start_all(d, addr, jobs, &n, out);
	/* Known before the wait, which forgets the queries it gives up on. */
	for (size_t i = 0; i < n; i++)
		src[i] = jobs[i]->ldap ? METRICS_DISC_LDAP : METRICS_DISC_SMIMEA;
	if (n > 0)
		jobs_wait(d, jobs, n);
	for (size_t i = 0; i < n; i++)
		job_collect(d, jobs[i], src[i], qid, kc, trust, allow_self_signed, &stored, &temp,
		    out);
	free(jobs);
	free(src);
	if (n == 0)
		return st;
	out->result = stored ? DISC_FOUND : temp ? DISC_TEMPFAIL : DISC_NOT_FOUND;
	if (out->result == DISC_NOT_FOUND)
		neg_store(d, addr, now, out->sources);
	log_qid(LOG_INFO, qid, "discovery %s: %s (asked %s%s%s)", addr,
	    stored ? "found" : temp ? "temporary failure" : "nothing found", out->sources,
	    temp && !stored ? "; " : "", temp && !stored ? out->why : "");
	return st;
}
