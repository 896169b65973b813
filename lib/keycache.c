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

#include "certcache.h"
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
	&kc_pg_ops,
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
	free(r->origin);
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
	return certcache_cert(r->der, r->der_len, NULL);
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
	case KC_SRC_DISCOVERED: return "discovered";
	}
	return "unknown";
}

const char *
kc_assurance_name(enum kc_assurance a)
{
	switch (a) {
	case KC_AS_SELF_SIGNED: return "self-signed";
	case KC_AS_CA: return "ca";
	case KC_AS_ADMIN: return "admin";
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
	case KC_REFUSED_SELF_SIGNED:
		return "key change refused: self-signed would replace CA-issued";
	}
	return "unknown";
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

/* Everything the cache stores about cert, bound to address. */
static sm_status
record_from_cert(X509 *cert, STACK_OF(X509) *chain, const char *address,
		 caps_t caps, enum kc_source src, time_t now,
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
	r->can_encrypt = x509u_ku_allows_encryption(cert) &&
			 x509u_eku_allows_email(cert);
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

struct kc_binding_view *
kc_views_of(const struct kc_record *r, size_t n)
{
	struct kc_binding_view *v = calloc(n ? n : 1, sizeof(*v));
	size_t i;

	if (v == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		v[i].fingerprint = r[i].fingerprint;
		v[i].key_fingerprint = r[i].key_fingerprint;
		v[i].enc_fp = r[i].enc_fp;
		v[i].not_before = r[i].not_before;
		v[i].not_after = r[i].not_after;
		v[i].signing_time = r[i].signing_time;
		v[i].last_seen = r[i].last_seen;
		v[i].signer = r[i].signer;
		v[i].can_encrypt = r[i].can_encrypt;
		v[i].assurance = r[i].assurance;
		v[i].status = r[i].status == KC_ST_REMOVED ? KC_ST_REMOVED
							   : KC_ST_ACTIVE;
	}
	return v;
}

/* Reported statuses of one address's records (stored status in). */
static sm_status
group_effective(struct kc_record *r, size_t n, time_t now)
{
	struct kc_binding_view *v = kc_views_of(r, n);
	long head, enc;
	size_t i;

	if (v == NULL)
		return SM_ERR_NOMEM;
	enc = kc_current_pair(v, n, now, &head);
	for (i = 0; i < n; i++) {
		if (r[i].status == KC_ST_REMOVED)
			continue;
		if (now > r[i].not_after)
			r[i].status = KC_ST_EXPIRED;
		else if ((long)i == enc || (long)i == head)
			r[i].status = KC_ST_ACTIVE;
		else
			r[i].status = KC_ST_SUPERSEDED;
	}
	free(v);
	return SM_OK;
}

/* Reported statuses of records grouped by address (consecutive). */
static sm_status
records_effective(struct kc_record *v, size_t n, time_t now)
{
	size_t i = 0, j;
	sm_status st;

	while (i < n) {
		for (j = i + 1; j < n && strcmp(v[j].address, v[i].address) == 0;
		     j++)
			;
		if ((st = group_effective(v + i, j - i, now)) != SM_OK)
			return st;
		i = j;
	}
	return SM_OK;
}

/* ---- operations ---- */

sm_status
keycache_store_pairing(struct keycache *kc, const struct kc_pairing *p,
		       enum keycache_outcome *outcome,
		       char old_fp[X509U_FP_SIZE])
{
	struct kc_record head, enc;
	bool separate;
	struct kc_plan plan;
	time_t now = clock_now();
	sm_status st;

	if (old_fp)
		old_fp[0] = '\0';
	if (kc == NULL || p == NULL || p->signer == NULL || p->address == NULL)
		return SM_ERR_ARG;
	separate = p->enc != NULL && X509_cmp(p->enc, p->signer) != 0;
	memset(&enc, 0, sizeof(enc));
	st = record_from_cert(p->signer, p->chain, p->address, p->caps,
			      p->source, now, &head);
	if (st != SM_OK)
		return st;
	head.signer = true;
	head.signing_time = p->signing_time;
	head.assurance = p->assurance;
	if (separate) {
		st = record_from_cert(p->enc, p->chain, p->address, p->caps,
				      p->source, now, &enc);
		if (st != SM_OK)
			goto done;
		enc.assurance = p->assurance;
		memcpy(head.enc_fp, enc.fingerprint, X509U_FP_SIZE);
	}
	st = kc->ops->put(kc->be, &head, separate ? &enc : NULL, now, &plan);
	certcache_bump(); /* a write: verdicts and lookups are re-made */
	if (st == SM_OK) {
		if (outcome)
			*outcome = plan.outcome;
		if (old_fp)
			memcpy(old_fp, plan.old_fp, X509U_FP_SIZE);
	}
done:
	kc_record_free(&head);
	kc_record_free(&enc);
	return st;
}

sm_status
keycache_store(struct keycache *kc, X509 *cert, STACK_OF(X509) *chain,
	       const char *address, caps_t caps, enum kc_source src,
	       enum keycache_outcome *outcome, char old_fp[X509U_FP_SIZE])
{
	struct kc_pairing p;

	memset(&p, 0, sizeof(p));
	p.signer = cert;
	p.chain = chain;
	p.address = address;
	p.caps = caps;
	p.source = src;
	p.assurance = cert && x509u_is_self_signed(cert) ? KC_AS_SELF_SIGNED
							 : KC_AS_CA;
	return keycache_store_pairing(kc, &p, outcome, old_fp);
}

sm_status
keycache_store_discovered(struct keycache *kc, X509 *cert,
			  STACK_OF(X509) *chain, const char *address,
			  const char *origin, enum keycache_outcome *outcome)
{
	char fp[X509U_FP_SIZE], *norm = NULL;
	sm_status st;

	if (kc == NULL || cert == NULL || address == NULL || origin == NULL)
		return SM_ERR_ARG;
	st = keycache_store(kc, cert, chain, address, 0,
			    KC_SRC_IMPORTED, outcome, NULL);
	if (st != SM_OK || kc->ops->put_origin == NULL)
		return st;
	if ((st = x509u_fingerprint(cert, fp)) != SM_OK ||
	    (st = x509u_addr_normalise(address, &norm)) != SM_OK)
		return st;
	st = kc->ops->put_origin(kc->be, fp, norm, origin, clock_now());
	certcache_bump();
	free(norm);
	return st;
}

sm_status
kc_records_origins(struct keycache *kc, struct kc_record *v, size_t n)
{
	char buf[512];
	sm_status st;

	if (kc->ops->get_origin == NULL)
		return SM_OK;
	for (size_t i = 0; i < n; i++) {
		if (v[i].source != KC_SRC_IMPORTED)
			continue;
		if ((st = kc->ops->get_origin(kc->be, v[i].fingerprint,
					      v[i].address, buf,
					      sizeof(buf))) != SM_OK)
			return st;
		if (buf[0] == '\0')
			continue;
		if ((v[i].origin = strdup(buf)) == NULL)
			return SM_ERR_NOMEM;
		v[i].source = KC_SRC_DISCOVERED;
	}
	return SM_OK;
}

sm_status
kc_lookup_address(struct keycache *kc, const char *norm,
		  struct kc_record **out, size_t *n)
{
	sm_status st = kc->ops->lookup_address(kc->be, norm, out, n);

	if (st == SM_OK)
		st = kc_records_origins(kc, *out, *n);
	return st;
}

sm_status
keycache_list(struct keycache *kc, int expiring_days, struct kc_record **out,
	      size_t *n)
{
	time_t now = clock_now(), until;
	size_t i, k = 0;
	sm_status st;

	*out = NULL;
	*n = 0;
	if (kc == NULL)
		return SM_ERR_ARG;
	/* Statuses need whole addresses, so filter afterwards. */
	st = kc->ops->list(kc->be, 0, 0, out, n);
	if (st == SM_OK)
		st = records_effective(*out, *n, now);
	if (st == SM_OK)
		st = kc_records_origins(kc, *out, *n);
	if (st != SM_OK) {
		kc_records_free(*out, *n);
		*out = NULL;
		*n = 0;
		return st;
	}
	if (expiring_days < 0)
		return SM_OK;
	until = now + (time_t)expiring_days * 86400;
	for (i = 0; i < *n; i++) {
		struct kc_record *r = &(*out)[i];

		if (r->status == KC_ST_ACTIVE && r->not_after > now &&
		    r->not_after <= until) {
			if (k != i)
				(*out)[k] = *r;
			k++;
		} else {
			kc_record_free(r);
		}
	}
	*n = k;
	return SM_OK;
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
	st = kc->ops->lookup_address(kc->be, norm, out, n);
	if (st == SM_OK && ((st = group_effective(*out, *n, clock_now())) !=
				SM_OK ||
			    (st = kc_records_origins(kc, *out, *n)) != SM_OK)) {
		kc_records_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	free(norm);
	return st;
}

/* The reported status of r: its address's bindings decide. */
static sm_status
status_in_address(struct keycache *kc, struct kc_record *r, time_t now)
{
	struct kc_record *all = NULL;
	size_t n = 0, i;
	sm_status st;

	if ((st = kc->ops->lookup_address(kc->be, r->address, &all, &n)) !=
	    SM_OK)
		return st;
	if ((st = group_effective(all, n, now)) == SM_OK)
		for (i = 0; i < n; i++)
			if (strcmp(all[i].fingerprint, r->fingerprint) == 0)
				r->status = all[i].status;
	kc_records_free(all, n);
	return st;
}

sm_status
keycache_find_fingerprint(struct keycache *kc, const char *fp,
			  struct kc_record **out, size_t *n)
{
	char canon[X509U_FP_SIZE];
	time_t now = clock_now();
	size_t i;
	sm_status st;

	*out = NULL;
	*n = 0;
	if (kc == NULL)
		return SM_ERR_ARG;
	if (!x509u_fingerprint_parse(fp, canon))
		return SM_ERR_PARSE;
	st = kc->ops->lookup_fingerprint(kc->be, canon, out, n);
	for (i = 0; st == SM_OK && i < *n; i++)
		st = status_in_address(kc, &(*out)[i], now);
	if (st == SM_OK)
		st = kc_records_origins(kc, *out, *n);
	if (st != SM_OK) {
		kc_records_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
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
	certcache_bump();
	free(norm);
	return st;
}

sm_status
keycache_remove_fingerprint(struct keycache *kc, const char *fp,
			    size_t *count)
{
	char canon[X509U_FP_SIZE];
	sm_status st;

	if (count)
		*count = 0;
	if (kc == NULL)
		return SM_ERR_ARG;
	if (!x509u_fingerprint_parse(fp, canon))
		return SM_ERR_PARSE;
	st = kc->ops->remove(kc->be, NULL, canon, count);
	certcache_bump();
	return st;
}

sm_status
keycache_iterate(struct keycache *kc, kc_iter_fn fn, void *arg)
{
	struct kc_record *v = NULL;
	size_t n = 0, i;
	sm_status st;

	if (kc == NULL || fn == NULL)
		return SM_ERR_ARG;
	if ((st = keycache_list(kc, -1, &v, &n)) != SM_OK)
		return st;
	for (i = 0; i < n; i++)
		if (fn(&v[i], arg) != 0)
			break;
	kc_records_free(v, n);
	return SM_OK;
}

sm_status
keycache_check(struct keycache *kc, int *schema_version, char *err,
	       size_t errlen)
{
	if (kc == NULL)
		return SM_ERR_ARG;
	return kc->ops->check(kc->be, schema_version, err, errlen);
}

sm_status
keycache_configure(struct keycache *kc, const struct kc_options *o, char *err,
		   size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	if (kc == NULL || o == NULL)
		return SM_ERR_ARG;
	return kc->ops->configure ? kc->ops->configure(kc->be, o, err, errlen)
				  : SM_OK;
}

sm_status
keycache_health(struct keycache *kc, struct kc_health *h)
{
	sm_status st = SM_OK;

	if (kc == NULL || h == NULL)
		return SM_ERR_ARG;
	memset(h, 0, sizeof(*h));
	h->backend = kc->ops->name;
	if (kc->ops->health)
		return kc->ops->health(kc->be, h);
	/* A local file: connected when it checks out. */
	st = kc->ops->check(kc->be, &h->schema_version, h->err,
			    sizeof(h->err));
	h->connected = h->listening = st == SM_OK;
	return SM_OK;
}

sm_status
keycache_restore(struct keycache *kc, X509 *cert, STACK_OF(X509) *chain,
		 const struct kc_record *b)
{
	struct kc_record r;
	sm_status st;

	if (kc == NULL || cert == NULL || b == NULL || b->address == NULL)
		return SM_ERR_ARG;
	if (kc->ops->restore == NULL)
		return SM_ERR_UNSUPPORTED;
	if ((st = record_from_cert(cert, chain, b->address, b->caps, b->source,
				   clock_now(), &r)) != SM_OK)
		return st;
	r.status = b->status == KC_ST_REMOVED ? KC_ST_REMOVED : KC_ST_ACTIVE;
	r.assurance = b->assurance;
	r.signer = b->signer;
	memcpy(r.enc_fp, b->enc_fp, sizeof(r.enc_fp));
	r.signing_time = b->signing_time;
	if (b->first_seen)
		r.first_seen = b->first_seen;
	if (b->last_seen)
		r.last_seen = b->last_seen;
	st = kc->ops->restore(kc->be, &r);
	certcache_bump();
	kc_record_free(&r);
	return st;
}

sm_status
keycache_copy(struct keycache *from, struct keycache *to, size_t *n)
{
	struct kc_record *v = NULL;
	size_t cnt = 0, i;
	sm_status st;
	int pass;

	if (n)
		*n = 0;
	if (from == NULL || to == NULL)
		return SM_ERR_ARG;
	if (to->ops->restore == NULL)
		return SM_ERR_UNSUPPORTED;
	if ((st = from->ops->list(from->be, 0, 0, &v, &cnt)) != SM_OK)
		return st;
	/* A pairing names its encryption certificate, which may come later
	 * in the list: the second pass links what the first could not. */
	for (pass = 0; pass < 2 && st == SM_OK; pass++)
		for (i = 0; i < cnt && st == SM_OK; i++)
			if (pass == 0 || v[i].enc_fp[0] != '\0')
				st = to->ops->restore(to->be, &v[i]);
	certcache_bump();
	if (st == SM_OK && n)
		*n = cnt;
	kc_records_free(v, cnt);
	return st;
}
