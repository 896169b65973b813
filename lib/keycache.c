/*
 * keycache.c — the backend-independent half of the key cache: turning a
 * certificate into a record, the renewal policy (kc_plan_store) and the
 * selection of the certificate to encrypt to.
 */
#include "keycache.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "clock.h"

/* More CA certificates than this arriving with one certificate is noise
 * (or an attack on the cache's size); keep the first ones. */
#define KC_MAX_CHAIN 10

struct keycache {
	const struct kc_ops *ops;
	struct kc_backend *be;
};

static const struct kc_ops *const backends[] = {
	&kc_sqlite_ops,
};

sm_status
keycache_open(const char *backend, const char *path, struct keycache **out,
	      char *err, size_t errlen)
{
	const struct kc_ops *ops = NULL;
	struct keycache *kc;
	sm_status st;
	size_t i;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (backend == NULL || path == NULL) {
		snprintf(err, errlen, "no key cache backend or path");
		return SM_ERR_ARG;
	}
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, backend) == 0)
			ops = backends[i];
	if (ops == NULL) {
		snprintf(err, errlen, "unknown key cache backend \"%s\"",
			 backend);
		return SM_ERR_CONFIG;
	}
	if ((kc = calloc(1, sizeof(*kc))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return SM_ERR_NOMEM;
	}
	kc->ops = ops;
	st = ops->open(path, &kc->be, err, errlen);
	if (st != SM_OK) {
		free(kc);
		return st;
	}
	*out = kc;
	return SM_OK;
}

void
keycache_close(struct keycache *kc)
{
	if (kc == NULL)
		return;
	kc->ops->close(kc->be);
	free(kc);
}

/* ---- records ---- */

void
kc_record_free(struct kc_record *r)
{
	if (r == NULL)
		return;
	free(r->address);
	free(r->subject);
	free(r->issuer);
	free(r->serial);
	x509u_strv_free(r->emails, r->n_emails);
	free(r->der);
	free(r->chain);
	memset(r, 0, sizeof(*r));
}

void
kc_records_free(struct kc_record *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		kc_record_free(&v[i]);
	free(v);
}

X509 *
kc_record_cert(const struct kc_record *r)
{
	const unsigned char *p = r->der;

	if (r->der == NULL || r->der_len == 0 || r->der_len > LONG_MAX)
		return NULL;
	return d2i_X509(NULL, &p, (long)r->der_len);
}

const char *
kc_status_name(enum kc_status st)
{
	switch (st) {
	case KC_ST_ACTIVE: return "active";
	case KC_ST_SUPERSEDED: return "superseded";
	case KC_ST_EXPIRED: return "expired";
	case KC_ST_REMOVED: return "removed";
	}
	return "unknown";
}

const char *
kc_source_name(enum kc_source src)
{
	switch (src) {
	case KC_SRC_HARVESTED: return "harvested";
	case KC_SRC_IMPORTED: return "imported";
	}
	return "unknown";
}

const char *
keycache_outcome_name(enum keycache_outcome o)
{
	switch (o) {
	case KC_INSERTED: return "inserted";
	case KC_UPDATED: return "updated";
	case KC_SUPERSEDED_OLD: return "key change";
	case KC_RENEWED_SAME_KEY: return "renewed with the same key";
	case KC_OLDER_KEPT_AS_HISTORY: return "older certificate kept as history";
	}
	return "unknown";
}

/* The status to report: stored status, with an active binding past its
 * notAfter shown as expired. */
static enum kc_status
effective_status(const struct kc_record *r, time_t now)
{
	if (r->status == KC_ST_ACTIVE && now > r->not_after)
		return KC_ST_EXPIRED;
	return r->status;
}

static void
records_effective(struct kc_record *v, size_t n, time_t now)
{
	size_t i;

	for (i = 0; i < n; i++)
		v[i].status = effective_status(&v[i], now);
}

/* DER-encode cert into a fresh buffer. */
static sm_status
der_of(X509 *cert, unsigned char **out, size_t *len)
{
	unsigned char *p = NULL;
	int n = i2d_X509(cert, &p);

	if (n <= 0)
		return SM_ERR_CRYPTO;
	*out = malloc((size_t)n);
	if (*out == NULL) {
		OPENSSL_free(p);
		return SM_ERR_NOMEM;
	}
	memcpy(*out, p, (size_t)n);
	OPENSSL_free(p);
	*len = (size_t)n;
	return SM_OK;
}

/* Concatenated DER of the CA certificates in chain (other end-entity
 * certificates and the certificate itself are not part of its chain). */
static sm_status
chain_der(X509 *cert, STACK_OF(X509) *chain, unsigned char **out,
	  size_t *len)
{
	unsigned char *buf = NULL, *nb, *one;
	size_t total = 0, olen;
	int i, kept = 0;
	sm_status st = SM_OK;

	*out = NULL;
	*len = 0;
	for (i = 0; chain && i < sk_X509_num(chain) && kept < KC_MAX_CHAIN;
	     i++) {
		X509 *c = sk_X509_value(chain, i);

		if (c == NULL || X509_cmp(c, cert) == 0 || X509_check_ca(c) == 0)
			continue;
		if ((st = der_of(c, &one, &olen)) != SM_OK)
			break;
		nb = realloc(buf, total + olen);
		if (nb == NULL) {
			free(one);
			st = SM_ERR_NOMEM;
			break;
		}
		memcpy(nb + total, one, olen);
		free(one);
		buf = nb;
		total += olen;
		kept++;
	}
	if (st != SM_OK) {
		free(buf);
		return st;
	}
	*out = buf;
	*len = total;
	return SM_OK;
}

/* Parse a concatenated-DER chain. NULL/empty gives an empty stack. */
static STACK_OF(X509) *
chain_parse(const unsigned char *der, size_t len)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	const unsigned char *p = der, *end = der + len;

	if (sk == NULL)
		return NULL;
	while (der != NULL && p < end) {
		X509 *c = d2i_X509(NULL, &p, (long)(end - p));

		if (c == NULL)
			break; /* a damaged tail: verify with what parsed */
		if (sk_X509_push(sk, c) <= 0) {
			X509_free(c);
			break;
		}
	}
	return sk;
}

/* Everything the cache stores about cert, bound to address. */
static sm_status
record_from_cert(X509 *cert, STACK_OF(X509) *chain, const char *address,
		 caps_t caps, bool enc_pref, enum kc_source src, time_t now,
		 struct kc_record *r)
{
	char **emails = NULL;
	size_t n = 0, i;
	sm_status st;

	memset(r, 0, sizeof(*r));
	if ((st = x509u_addr_normalise(address, &r->address)) != SM_OK)
		goto fail;
	if ((st = x509u_fingerprint(cert, r->fingerprint)) != SM_OK ||
	    (st = x509u_key_fingerprint(cert, r->key_fingerprint)) != SM_OK ||
	    (st = x509u_name_text(X509_get_subject_name(cert), &r->subject)) !=
		SM_OK ||
	    (st = x509u_name_text(X509_get_issuer_name(cert), &r->issuer)) !=
		SM_OK ||
	    (st = x509u_serial_hex(cert, &r->serial)) != SM_OK ||
	    (st = x509u_not_before(cert, &r->not_before)) != SM_OK ||
	    (st = x509u_not_after(cert, &r->not_after)) != SM_OK ||
	    (st = der_of(cert, &r->der, &r->der_len)) != SM_OK ||
	    (st = chain_der(cert, chain, &r->chain, &r->chain_len)) != SM_OK)
		goto fail;
	r->key_type = x509u_key_type(cert, &r->key_bits);
	if ((st = x509u_addresses(cert, &emails, &n, NULL)) != SM_OK)
		goto fail;
	/* Stored normalised (domain lowercased) like every address here. */
	r->emails = calloc(n ? n : 1, sizeof(*r->emails));
	if (r->emails == NULL) {
		st = SM_ERR_NOMEM;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if ((st = x509u_addr_normalise(emails[i], &r->emails[i])) !=
		    SM_OK)
			goto fail;
		r->n_emails++;
	}
	r->caps = caps;
	r->enc_pref = enc_pref;
	r->source = src;
	r->status = KC_ST_ACTIVE;
	r->first_seen = r->last_seen = now;
	x509u_strv_free(emails, n);
	return SM_OK;
fail:
	x509u_strv_free(emails, n);
	kc_record_free(r);
	return st;
}

/* ---- policy ---- */

static bool
view_expired(const struct kc_binding_view *v, time_t now)
{
	return now > v->not_after;
}

/* Does the newcomer replace the active binding r of its class? */
static bool
newcomer_wins(const struct kc_binding_view *nw,
	      const struct kc_binding_view *r, time_t now)
{
	if (view_expired(r, now) && !view_expired(nw, now))
		return true;
	if (nw->not_before != r->not_before)
		return nw->not_before > r->not_before;
	/* Equal notBefore: the longer-lived one; a full tie keeps the
	 * incumbent, so two certificates seen alternately do not flap and
	 * log a key change every time. */
	return nw->not_after > r->not_after;
}

void
kc_plan_store(const struct kc_binding_view *existing, size_t n,
	      const struct kc_binding_view *newcomer, time_t now,
	      bool *supersede, struct kc_plan *plan)
{
	const struct kc_binding_view *newest = NULL, *keeper = NULL;
	size_t i;

	memset(plan, 0, sizeof(*plan));
	for (i = 0; i < n; i++)
		supersede[i] = false;
	for (i = 0; i < n; i++) {
		if (strcmp(existing[i].fingerprint, newcomer->fingerprint) != 0)
			continue;
		if (existing[i].status != KC_ST_REMOVED) {
			plan->update_only = true;
			plan->outcome = KC_UPDATED;
			plan->status = existing[i].status;
			return;
		}
	}
	for (i = 0; i < n; i++) {
		const struct kc_binding_view *r = &existing[i];

		if (r->status != KC_ST_ACTIVE || r->enc_pref != newcomer->enc_pref ||
		    strcmp(r->fingerprint, newcomer->fingerprint) == 0)
			continue;
		if (!newcomer_wins(newcomer, r, now)) {
			keeper = r;
			break;
		}
		if (newest == NULL || r->not_before > newest->not_before)
			newest = r;
	}
	if (keeper != NULL) {
		plan->status = KC_ST_SUPERSEDED;
		plan->outcome = KC_OLDER_KEPT_AS_HISTORY;
		snprintf(plan->old_fp, sizeof(plan->old_fp), "%s",
			 keeper->fingerprint);
		return;
	}
	plan->status = KC_ST_ACTIVE;
	if (newest == NULL) {
		plan->outcome = KC_INSERTED;
		return;
	}
	for (i = 0; i < n; i++) {
		const struct kc_binding_view *r = &existing[i];

		if (r->status == KC_ST_ACTIVE &&
		    r->enc_pref == newcomer->enc_pref &&
		    strcmp(r->fingerprint, newcomer->fingerprint) != 0)
			supersede[i] = true;
	}
	plan->outcome = strcmp(newest->key_fingerprint,
			       newcomer->key_fingerprint) == 0
			    ? KC_RENEWED_SAME_KEY
			    : KC_SUPERSEDED_OLD;
	snprintf(plan->old_fp, sizeof(plan->old_fp), "%s", newest->fingerprint);
}

/* ---- operations ---- */

sm_status
keycache_store(struct keycache *kc, X509 *cert, STACK_OF(X509) *chain,
	       const char *address, caps_t caps, bool enc_pref,
	       enum kc_source src, enum keycache_outcome *outcome,
	       char old_fp[X509U_FP_SIZE])
{
	struct kc_record rec;
	struct kc_plan plan;
	sm_status st;

	if (old_fp)
		old_fp[0] = '\0';
	if (kc == NULL || cert == NULL || address == NULL)
		return SM_ERR_ARG;
	st = record_from_cert(cert, chain, address, caps, enc_pref, src,
			      clock_now(), &rec);
	if (st != SM_OK)
		return st;
	st = kc->ops->put(kc->be, &rec, rec.last_seen, &plan);
	if (st == SM_OK) {
		if (outcome)
			*outcome = plan.outcome;
		if (old_fp)
			memcpy(old_fp, plan.old_fp, X509U_FP_SIZE);
	}
	kc_record_free(&rec);
	return st;
}

/* Selection order: designated encryption certificate first, then newest
 * notBefore, then latest notAfter. */
static int
candidate_cmp(const void *a, const void *b)
{
	const struct kc_record *x = *(const struct kc_record *const *)a;
	const struct kc_record *y = *(const struct kc_record *const *)b;

	if (x->enc_pref != y->enc_pref)
		return x->enc_pref ? -1 : 1;
	if (x->not_before != y->not_before)
		return x->not_before > y->not_before ? -1 : 1;
	if (x->not_after != y->not_after)
		return x->not_after > y->not_after ? -1 : 1;
	return 0;
}

/* Is r usable now? SM_OK with a certificate, SM_ERR_NOKEY with the reason,
 * or an internal error. */
static sm_status
candidate_usable(const struct kc_record *r, X509_STORE *trust,
		 bool allow_self_signed, time_t now, X509 **out, char *reason,
		 size_t len)
{
	STACK_OF(X509) *chain = NULL;
	X509 *cert;
	char date[16];
	sm_status st = SM_ERR_NOKEY;

	*out = NULL;
	if ((cert = kc_record_cert(r)) == NULL) {
		/* A damaged row must not stop mail to everyone else. */
		snprintf(reason, len, "certificate not usable for encryption");
		return SM_ERR_NOKEY;
	}
	switch (x509u_validity(cert, now)) {
	case X509U_VALID: break;
	case X509U_EXPIRED:
		x509u_date(r->not_after, date, sizeof(date));
		snprintf(reason, len, "certificate expired on %s", date);
		goto done;
	case X509U_NOT_YET_VALID:
		snprintf(reason, len, "certificate not yet valid");
		goto done;
	case X509U_BAD_TIME:
		snprintf(reason, len, "certificate not usable for encryption");
		goto done;
	}
	/* The harvest rules already hold these for harvested certificates;
	 * an import with --force may not. */
	if (!x509u_ku_allows_encryption(cert) || !x509u_eku_allows_email(cert)) {
		snprintf(reason, len, "certificate not usable for encryption");
		goto done;
	}
	if (trust != NULL || allow_self_signed) {
		if ((chain = chain_parse(r->chain, r->chain_len)) == NULL) {
			st = SM_ERR_NOMEM;
			goto done;
		}
		st = x509u_verify(cert, chain, trust, allow_self_signed, now,
				  NULL);
		if (st == SM_ERR_VERIFY) {
			snprintf(reason, len, "certificate not trusted");
			st = SM_ERR_NOKEY;
		}
		if (st != SM_OK)
			goto done;
	}
	st = SM_OK;
	*out = cert;
	cert = NULL;
done:
	sk_X509_pop_free(chain, X509_free);
	X509_free(cert);
	return st;
}

sm_status
keycache_select(struct keycache *kc, const char *address, X509_STORE *trust,
		bool allow_self_signed, X509 **cert_out, caps_t *caps_out,
		char *reason, size_t reasonlen)
{
	struct kc_record *recs = NULL;
	const struct kc_record **cand = NULL;
	char first_reason[KC_REASON_SIZE] = "";
	char why[KC_REASON_SIZE];
	char *norm = NULL;
	size_t n = 0, nc = 0, i;
	bool removed = false;
	time_t now = clock_now();
	X509 *cert = NULL;
	sm_status st;

	if (cert_out)
		*cert_out = NULL;
	if (caps_out)
		*caps_out = 0;
	if (reasonlen)
		reason[0] = '\0';
	if (kc == NULL || address == NULL)
		return SM_ERR_ARG;
	if ((st = x509u_addr_normalise(address, &norm)) != SM_OK)
		return st;
	st = kc->ops->lookup_address(kc->be, norm, false, &recs, &n);
	if (st != SM_OK)
		goto done;
	if ((cand = calloc(n ? n : 1, sizeof(*cand))) == NULL) {
		st = SM_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < n; i++) {
		if (recs[i].status == KC_ST_ACTIVE)
			cand[nc++] = &recs[i];
		else if (recs[i].status == KC_ST_REMOVED)
			removed = true;
	}
	if (nc == 0) {
		snprintf(reason, reasonlen, "%s",
			 removed ? "certificate removed"
				 : "no certificate exchanged");
		st = SM_ERR_NOKEY;
		goto done;
	}
	qsort(cand, nc, sizeof(*cand), candidate_cmp);
	for (i = 0; i < nc; i++) {
		st = candidate_usable(cand[i], trust, allow_self_signed, now,
				      &cert, why, sizeof(why));
		if (st == SM_OK) {
			if (caps_out)
				*caps_out = cand[i]->caps;
			if (cert_out) {
				*cert_out = cert;
				cert = NULL;
			}
			goto done;
		}
		if (st != SM_ERR_NOKEY)
			goto done;
		if (first_reason[0] == '\0')
			memcpy(first_reason, why, sizeof(first_reason));
	}
	snprintf(reason, reasonlen, "%s", first_reason);
	st = SM_ERR_NOKEY;
done:
	X509_free(cert);
	free(cand);
	kc_records_free(recs, n);
	free(norm);
	return st;
}

sm_status
keycache_list(struct keycache *kc, int expiring_days, struct kc_record **out,
	      size_t *n)
{
	time_t now = clock_now();
	sm_status st;

	*out = NULL;
	*n = 0;
	if (kc == NULL)
		return SM_ERR_ARG;
	if (expiring_days < 0)
		st = kc->ops->list(kc->be, 0, 0, out, n);
	else
		st = kc->ops->list(kc->be, now,
				   now + (time_t)expiring_days * 86400, out, n);
	if (st == SM_OK)
		records_effective(*out, *n, now);
	return st;
}

sm_status
keycache_find_address(struct keycache *kc, const char *address,
		      struct kc_record **out, size_t *n)
{
	char *norm = NULL;
	sm_status st;

	*out = NULL;
	*n = 0;
	if (kc == NULL || address == NULL)
		return SM_ERR_ARG;
	if ((st = x509u_addr_normalise(address, &norm)) != SM_OK)
		return st;
	st = kc->ops->lookup_address(kc->be, norm, true, out, n);
	if (st == SM_OK)
		records_effective(*out, *n, clock_now());
	free(norm);
	return st;
}

sm_status
keycache_find_fingerprint(struct keycache *kc, const char *fp,
			  struct kc_record **out, size_t *n)
{
	char canon[X509U_FP_SIZE];
	sm_status st;

	*out = NULL;
	*n = 0;
	if (kc == NULL)
		return SM_ERR_ARG;
	if (!x509u_fingerprint_parse(fp, canon))
		return SM_ERR_PARSE;
	st = kc->ops->lookup_fingerprint(kc->be, canon, out, n);
	if (st == SM_OK)
		records_effective(*out, *n, clock_now());
	return st;
}

sm_status
keycache_remove_address(struct keycache *kc, const char *address,
			size_t *count)
{
	char *norm = NULL;
	sm_status st;

	if (count)
		*count = 0;
	if (kc == NULL || address == NULL)
		return SM_ERR_ARG;
	if ((st = x509u_addr_normalise(address, &norm)) != SM_OK)
		return st;
	st = kc->ops->remove(kc->be, norm, NULL, count);
	free(norm);
	return st;
}

sm_status
keycache_remove_fingerprint(struct keycache *kc, const char *fp,
			    size_t *count)
{
	char canon[X509U_FP_SIZE];

	if (count)
		*count = 0;
	if (kc == NULL)
		return SM_ERR_ARG;
	if (!x509u_fingerprint_parse(fp, canon))
		return SM_ERR_PARSE;
	return kc->ops->remove(kc->be, NULL, canon, count);
}

struct iter_wrap {
	kc_iter_fn fn;
	void *arg;
	time_t now;
};

/* Report the effective status without touching the backend's record. */
static int
iter_effective(const struct kc_record *rec, void *arg)
{
	const struct iter_wrap *w = arg;
	struct kc_record copy = *rec;

	copy.status = effective_status(rec, w->now);
	return w->fn(&copy, w->arg);
}

sm_status
keycache_iterate(struct keycache *kc, kc_iter_fn fn, void *arg)
{
	struct iter_wrap w = { fn, arg, clock_now() };

	if (kc == NULL || fn == NULL)
		return SM_ERR_ARG;
	return kc->ops->iterate(kc->be, iter_effective, &w);
}

sm_status
keycache_check(struct keycache *kc, int *schema_version, char *err,
	       size_t errlen)
{
	if (kc == NULL)
		return SM_ERR_ARG;
	return kc->ops->check(kc->be, schema_version, err, errlen);
}
