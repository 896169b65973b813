/*
 * revworker.c — the background revocation worker (see revworker.h).
 */
#include "revworker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "clock.h"
#include "log.h"

#define RW_BATCH 16

static void
why_add(struct rev_result *out, const char *src, const char *why)
{
	size_t l = strlen(out->why);

	snprintf(out->why + l, sizeof(out->why) - l, "%s%s: %s",
		 l ? "; " : "", src, why);
}

/* RFC 5019: GET URL/base64(DER), percent-encoded, when it is short. */
static bool
ocsp_get_url(const char *base, const unsigned char *der, size_t len,
	     char *out, size_t outlen)
{
	unsigned char b64[512];
	size_t n = 0, i;
	int bl;

	if (len > 300)
		return false;
	bl = EVP_EncodeBlock(b64, der, (int)len);
	n = (size_t)snprintf(out, outlen, "%s%s", base,
			     base[strlen(base) - 1] == '/' ? "" : "/");
	for (i = 0; i < (size_t)bl && n + 4 < outlen; i++)
		n += (size_t)snprintf(out + n, outlen - n,
				      b64[i] == '+'   ? "%%2B"
				      : b64[i] == '/' ? "%%2F"
				      : b64[i] == '=' ? "%%3D"
						      : "%c",
				      b64[i]);
	return i == (size_t)bl && n <= 255 + strlen(base);
}

static bool
try_ocsp(const char *url, const struct revfetch_opts *o, X509 *cert,
	 X509 *issuer, time_t now, struct rev_result *out)
{
	struct revfetch_opts oo = *o;
	OCSP_REQUEST *req = NULL;
	unsigned char *der = NULL;
	size_t len;
	struct buf body = BUF_INIT;
	struct rev_result r;
	char err[160], get[1024];
	sm_status st;

	oo.max_bytes = REVFETCH_MAX_OCSP;
	if (rev_ocsp_request(cert, issuer, true, &req, &der, &len) != SM_OK) {
		why_add(out, "ocsp", "cannot build a request");
		return false;
	}
	st = SM_ERR_IO;
	if (ocsp_get_url(url, der, len, get, sizeof(get)))
		st = revfetch(get, NULL, 0, NULL, &oo, &body, err, sizeof(err));
	if (st != SM_OK)
		st = revfetch(url, der, len, "application/ocsp-request", &oo,
			      &body, err, sizeof(err));
	if (st == SM_OK)
		rev_ocsp_check(body.data, body.len, req, cert, issuer, now, &r);
	else
		snprintf(r.why, sizeof(r.why), "%s", err);
	OPENSSL_free(der);
	OCSP_REQUEST_free(req);
	buf_free(&body);
	if (st == SM_OK && r.status != REV_UNKNOWN) {
		*out = r;
		return true;
	}
	why_add(out, url, r.why);
	return false;
}

/* A CRL under key: stored and current, else fetched (url non-NULL). */
static bool
try_crl(struct revstore *rs, const char *key, const char *url,
	const struct revfetch_opts *o, X509 *cert, X509 *issuer, time_t now,
	struct rev_result *out)
{
	struct revfetch_opts oo;
	unsigned char *der = NULL;
	size_t len = 0;
	time_t next = 0;
	struct buf body = BUF_INIT;
	struct rev_result r;
	char err[160];
	bool ok = false;

	if (revstore_crl_get(rs, key, &der, &len, &next) == SM_OK &&
	    next + REV_LEEWAY >= now &&
	    rev_crl_check(der, len, cert, issuer, now, &r) == SM_OK &&
	    r.status != REV_UNKNOWN) {
		ok = true;
		goto done;
	}
	if (url == NULL || o == NULL)
		goto done;
	oo = *o;
	oo.max_bytes = REVFETCH_MAX_CRL;
	if (revfetch(url, NULL, 0, NULL, &oo, &body, err, sizeof(err)) != SM_OK) {
		why_add(out, url, err);
		goto done;
	}
	rev_crl_check(body.data, body.len, cert, issuer, now, &r);
	if (r.status == REV_UNKNOWN) {
		why_add(out, url, r.why);
		goto done;
	}
	revstore_crl_put(rs, key, body.data, body.len, r.this_update,
			 r.next_update, now);
	ok = true;
done:
	if (ok) {
		r.source = strncmp(key, "issuer:", 7) == 0 ? REV_SRC_CRL_MAIL
							  : REV_SRC_CRL;
		*out = r;
	}
	free(der);
	buf_free(&body);
	return ok;
}

static void
check_certs(struct revstore *rs, const struct revfetch_opts *o, X509 *cert,
	    X509 *issuer, time_t now, struct rev_result *out)
{
	char **urls = NULL, key[8 + X509U_FP_SIZE], fp[X509U_FP_SIZE];
	size_t n = 0, i;
	bool done = false;

	if (x509u_fingerprint(issuer, fp) == SM_OK) {
		snprintf(key, sizeof(key), "issuer:%s", fp);
		done = try_crl(rs, key, NULL, o, cert, issuer, now, out);
	}
	if (!done && rev_ocsp_urls(cert, &urls, &n) == SM_OK) {
		for (i = 0; !done && i < n; i++)
			done = try_ocsp(urls[i], o, cert, issuer, now, out);
		rev_urls_free(urls, n);
	}
	if (!done && rev_crl_urls(cert, &urls, &n) == SM_OK) {
		for (i = 0; !done && i < n; i++)
			done = try_crl(rs, urls[i], urls[i], o, cert, issuer,
				       now, out);
		rev_urls_free(urls, n);
	}
	if (!done && out->why[0] == '\0')
		snprintf(out->why, sizeof(out->why),
			 "the certificate names no OCSP responder or CRL");
}

void
revworker_check(struct revstore *rs, const struct revfetch_opts *o,
		const struct rev_entry *e, time_t now, struct rev_result *out)
{
	const unsigned char *p;
	X509 *cert = NULL, *issuer = NULL;

	memset(out, 0, sizeof(*out));
	out->status = REV_UNKNOWN;
	out->reason = -1;
	p = e->cert;
	cert = d2i_X509(NULL, &p, (long)e->cert_len);
	if (e->issuer != NULL) {
		p = e->issuer;
		issuer = d2i_X509(NULL, &p, (long)e->issuer_len);
	}
	if (cert == NULL)
		snprintf(out->why, sizeof(out->why), "stored certificate unreadable");
	else if (issuer == NULL)
		snprintf(out->why, sizeof(out->why),
			 "the issuer's certificate is not known");
	else
		check_certs(rs, o, cert, issuer, now, out);
	X509_free(cert);
	X509_free(issuer);
}

sm_status
revworker_round(struct revstore *rs, const struct revfetch_opts *o,
		time_t now, size_t *count)
{
	struct rev_entry *v;
	struct rev_result r;
	size_t n, i;
	sm_status st;

	*count = 0;
	if ((st = revstore_due(rs, now, RW_BATCH, &v, &n)) != SM_OK)
		return st;
	for (i = 0; i < n; i++) {
		revworker_check(rs, o, &v[i], now, &r);
		if (r.status == REV_REVOKED)
			log_msg(LOG_WARNING, "revocation: sha256 %s revoked (%s, %s)",
				v[i].fp, rev_reason_name(r.reason),
				rev_source_name(r.source));
		else if (r.status == REV_UNKNOWN)
			log_msg(LOG_INFO, "revocation: sha256 %s unknown: %s",
				v[i].fp, r.why);
		if ((st = revstore_put(rs, v[i].fp, &r, now)) != SM_OK)
			break;
		(*count)++;
	}
	rev_entries_free(v, n);
	return st;
}

sm_status
revworker_mail_crls(struct revstore *rs, STACK_OF(X509_CRL) *crls,
		    STACK_OF(X509) *certs, X509 *cert, time_t now)
{
	char key[8 + X509U_FP_SIZE], fp[X509U_FP_SIZE];
	X509 *issuer = NULL;
	struct rev_result r;
	unsigned char *der;
	int len;

	for (int i = 0; i < sk_X509_CRL_num(crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(crls, i);

		for (int j = 0; j < sk_X509_num(certs); j++) {
			X509 *ca = sk_X509_value(certs, j);

			if (!rev_crl_from(crl, ca) ||
			    x509u_fingerprint(ca, fp) != SM_OK)
				continue;
			der = NULL;
			/* Kept only when it is current and about the
			 * signer's issuer: what the store can use. */
			if ((len = i2d_X509_CRL(crl, &der)) > 0 &&
			    rev_crl_check_x(crl, cert, ca, now, &r) == SM_OK &&
			    r.status != REV_UNKNOWN) {
				snprintf(key, sizeof(key), "issuer:%s", fp);
				revstore_crl_put(rs, key, der, (size_t)len,
						 r.this_update, r.next_update,
						 now);
			}
			OPENSSL_free(der);
		}
	}
	/* Judge the signer now against what the store holds for its issuer. */
	if (cert == NULL || (issuer = rev_find_issuer(cert, certs)) == NULL ||
	    x509u_fingerprint(issuer, fp) != SM_OK)
		return SM_OK;
	revstore_enqueue(rs, cert, issuer, now);
	snprintf(key, sizeof(key), "issuer:%s", fp);
	memset(&r, 0, sizeof(r));
	if (try_crl(rs, key, NULL, NULL, cert, issuer, now, &r) &&
	    x509u_fingerprint(cert, fp) == SM_OK)
		revstore_put(rs, fp, &r, now);
	return SM_OK;
}

/* ---- the thread ---- */

struct revworker {
	struct revstore *rs;
	struct revfetch_opts o;
	char *proxy;
	unsigned interval;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, kick;
};

static void *
worker_main(void *arg)
{
	struct revworker *w = arg;
	struct timespec ts;
	size_t n;

	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		pthread_mutex_unlock(&w->mu);
		if (revworker_round(w->rs, &w->o, clock_now(), &n) != SM_OK)
			log_msg(LOG_ERR, "revocation: the store failed");
		pthread_mutex_lock(&w->mu);
		if (n == RW_BATCH && !w->stop)
			continue; /* more are due */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += w->interval;
		while (!w->stop && !w->kick &&
		       pthread_cond_timedwait(&w->cv, &w->mu, &ts) != ETIMEDOUT)
			;
		w->kick = false;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

sm_status
revworker_start(const char *path, long timeout_ms, const char *proxy,
		unsigned interval_s, struct revworker **out, char *err,
		size_t errlen)
{
	struct revworker *w = calloc(1, sizeof(*w));
	sm_status st;

	*out = NULL;
	if (w == NULL || (proxy && (w->proxy = strdup(proxy)) == NULL)) {
		free(w);
		return SM_ERR_NOMEM;
	}
	if ((st = revstore_open(path, &w->rs, err, errlen)) != SM_OK) {
		free(w->proxy);
		free(w);
		return st;
	}
	w->o.timeout_ms = timeout_ms;
	w->o.proxy = w->proxy;
	w->interval = interval_s ? interval_s : 1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		revstore_close(w->rs);
		free(w->proxy);
		free(w);
		return SM_ERR_NOMEM;
	}
	*out = w;
	return SM_OK;
}

void
revworker_wake(struct revworker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->kick = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void
revworker_stop(struct revworker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	revstore_close(w->rs);
	free(w->proxy);
	free(w);
}
