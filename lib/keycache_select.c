/*
 * keycache_select.c — the selection half of the key cache: which stored
 * certificate is used to encrypt to an address now (validity, key usage,
 * trust, the caller's revocation hook), and why each other one is not
 * (keycache_explain). Certificates, chains and trust verdicts come from
 * the process-wide certcache, so a certificate looked up again is neither
 * decoded nor verified again.
 */
#include "keycache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certcache.h"
#include "clock.h"

/* Why a certificate that decodes is not usable at now, or NULL. */
static const char *
cert_unusable(const struct kc_record *r, X509 *cert, time_t now, char *date,
	      size_t dlen)
{
	switch (x509u_validity(cert, now)) {
	case X509U_VALID: break;
	case X509U_EXPIRED:
		x509u_date(r->not_after, date, dlen);
		return "certificate expired on ";
	case X509U_NOT_YET_VALID: return "certificate not yet valid";
	case X509U_BAD_TIME: return "certificate not usable for encryption";
	}
	/* The harvest rules already hold these for harvested certificates;
	 * an import with --force may not. */
	if (!x509u_ku_allows_encryption(cert) || !x509u_eku_allows_email(cert))
		return "certificate not usable for encryption";
	return NULL;
}

/* Does cert chain to trust (through the certcache's verdicts)? SM_OK,
 * SM_ERR_NOKEY with the reason, or an internal error. DNSSEC vouched for
 * a DANE-EE certificate when it was found: it needs no chain (see
 * keycache_store_discovered). */
static sm_status
cert_trusted(const struct kc_record *r, X509 *cert, const unsigned char *key,
	     const unsigned char *chain_key, X509_STORE *trust,
	     bool allow_self_signed, time_t now, char *reason, size_t len)
{
	sm_status st;

	if ((trust == NULL && !allow_self_signed) ||
	    (r->origin != NULL && strcmp(r->origin, KC_ORIGIN_DANE_EE) == 0))
		return SM_OK;
	st = certcache_verify(cert, key, r->chain, r->chain_len, chain_key,
			      trust, allow_self_signed, now);
	if (st == SM_ERR_VERIFY) {
		snprintf(reason, len, "certificate not trusted");
		st = SM_ERR_NOKEY;
	}
	return st;
}

/* Is r usable now? SM_OK with a certificate, SM_ERR_NOKEY with the reason,
 * or an internal error. */
static sm_status
candidate_usable(const struct kc_record *r, X509_STORE *trust,
		 bool allow_self_signed, const struct kc_hook *hook, time_t now,
		 X509 **out, char *reason, size_t len)
{
	unsigned char key[CERTCACHE_KEY_SIZE], chain_key[CERTCACHE_KEY_SIZE];
	const unsigned char *hk, *ck; /* the keys, NULL without a digest */
	STACK_OF(X509) *chain = NULL;
	X509 *cert;
	char date[16] = "";
	const char *why;
	sm_status st = SM_ERR_NOKEY;

	*out = NULL;
	if (r->status == KC_ST_REMOVED) {
		snprintf(reason, len, "certificate removed");
		return SM_ERR_NOKEY;
	}
	hk = certcache_key(r->der, r->der_len, key) ? key : NULL;
	if ((cert = certcache_cert(r->der, r->der_len, hk)) == NULL) {
		/* A damaged row must not stop mail to everyone else. */
		snprintf(reason, len, "certificate not usable for encryption");
		return SM_ERR_NOKEY;
	}
	if ((why = cert_unusable(r, cert, now, date, sizeof(date))) != NULL) {
		snprintf(reason, len, "%s%s", why, date);
		goto done;
	}
	ck = certcache_key(r->chain, r->chain ? r->chain_len : 0, chain_key)
		     ? chain_key
		     : NULL;
	if ((st = cert_trusted(r, cert, hk, ck, trust,
			       allow_self_signed, now, reason, len)) != SM_OK)
		goto done;
	/* The last condition: one the caller adds (revocation). */
	if (hook != NULL && hook->usable != NULL) {
		if ((chain = certcache_chain(r->chain, r->chain_len, ck)) ==
		    NULL) {
			st = SM_ERR_NOMEM;
			goto done;
		}
		if ((st = hook->usable(hook->arg, cert, chain, now, reason,
				       len)) != SM_OK)
			goto done;
	}
	*out = cert;
	cert = NULL;
done:
	sk_X509_pop_free(chain, X509_free);
	X509_free(cert);
	return st;
}

/* What the rule picks for one address's records, with the trust check.
 * head/enc: indices (-1 none); cert (may be NULL): the encryption
 * certificate; reason: why none, about the best-ranked candidate. */
struct pick {
	long head, enc;
	X509 *cert;
	char reason[KC_REASON_SIZE];
};

static sm_status
pick_one(const struct kc_record *r, const struct kc_binding_view *v,
	 size_t n, X509_STORE *trust, bool allow_self_signed,
	 const struct kc_hook *hook, time_t now,
	 const size_t *order, size_t m, struct pick *pk)
{
	char why[KC_REASON_SIZE];
	size_t i;
	bool removed = false;
	sm_status st;

	pk->head = pk->enc = -1;
	pk->cert = NULL;
	pk->reason[0] = '\0';
	for (i = 0; i < m; i++) {
		long e = kc_pairing_enc(v, n, order[i]);

		if (e < 0) {
			snprintf(why, sizeof(why), "%s",
				 "certificate not usable for encryption");
			st = SM_ERR_NOKEY;
		} else {
			st = candidate_usable(&r[e], trust, allow_self_signed,
					      hook, now, &pk->cert, why,
					      sizeof(why));
		}
		if (st == SM_OK) {
			pk->head = (long)order[i];
			pk->enc = e;
			return SM_OK;
		}
		if (st != SM_ERR_NOKEY)
			return st;
		if (pk->reason[0] == '\0')
			memcpy(pk->reason, why, sizeof(pk->reason));
	}
	if (pk->reason[0] == '\0') {
		for (i = 0; i < n; i++)
			removed |= r[i].status == KC_ST_REMOVED;
		snprintf(pk->reason, sizeof(pk->reason), "%s",
			 removed ? "certificate removed"
				 : "no certificate exchanged");
	}
	return SM_ERR_NOKEY;
}

/* Rank and pick for one address's records. order/blocked: n entries. */
static sm_status
pick_records(const struct kc_record *r, size_t n, X509_STORE *trust,
	     bool allow_self_signed, const struct kc_hook *hook, time_t now, struct kc_binding_view **vout,
	     size_t **order_out, bool **blocked_out, size_t *m,
	     struct pick *pk)
{
	struct kc_binding_view *v = kc_views_of(r, n);
	size_t *order = calloc(n ? n : 1, sizeof(*order));
	bool *blocked = calloc(n ? n : 1, sizeof(*blocked));
	sm_status st = SM_ERR_NOMEM;

	pk->head = pk->enc = -1;
	pk->cert = NULL;
	if (v != NULL && order != NULL && blocked != NULL) {
		*m = kc_rank(v, n, order, blocked);
		st = pick_one(r, v, n, trust, allow_self_signed, hook, now, order,
			      *m, pk);
	}
	if (vout && st != SM_ERR_NOMEM) {
		*vout = v;
		*order_out = order;
		*blocked_out = blocked;
		return st;
	}
	free(v);
	free(order);
	free(blocked);
	return st;
}

sm_status
keycache_select(struct keycache *kc, const char *address, X509_STORE *trust,
		bool allow_self_signed, X509 **cert_out, caps_t *caps_out,
		char *reason, size_t reasonlen)
{
	return keycache_select_hook(kc, address, trust, allow_self_signed, NULL,
				    cert_out, caps_out, reason, reasonlen);
}

sm_status
keycache_select_hook(struct keycache *kc, const char *address,
		     X509_STORE *trust, bool allow_self_signed,
		     const struct kc_hook *hook, X509 **cert_out,
		     caps_t *caps_out, char *reason, size_t reasonlen)
{
	struct kc_record *recs = NULL;
	struct pick pk;
	char *norm = NULL;
	size_t n = 0, m = 0;
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
	if ((st = kc_lookup_address(kc, norm, &recs, &n)) != SM_OK)
		goto done;
	st = pick_records(recs, n, trust, allow_self_signed, hook, clock_now(), NULL,
			  NULL, NULL, &m, &pk);
	if (st == SM_OK) {
		/* The capabilities came with the signature that set up the
		 * pairing. */
		if (caps_out)
			*caps_out = recs[pk.head].caps;
		if (cert_out) {
			*cert_out = pk.cert;
			pk.cert = NULL;
		}
	} else if (st == SM_ERR_NOKEY) {
		snprintf(reason, reasonlen, "%s", pk.reason);
	}
	X509_free(pk.cert);
done:
	kc_records_free(recs, n);
	free(norm);
	return st;
}

/* The one-line reason for record i (see keycache_explain). */
static void
explain_one(const struct kc_record *r, const struct kc_binding_view *v,
	    size_t n, size_t i, const struct pick *pk, const bool *blocked,
	    X509_STORE *trust, bool allow_self_signed,
	    const struct kc_hook *hook, time_t now, char *out,
	    size_t len)
{
	char why[KC_REASON_SIZE];
	X509 *x = NULL;
	long e, j;
	size_t k;

	if (r[i].status == KC_ST_REMOVED) {
		snprintf(out, len, "not used: removed");
		return;
	}
	if ((long)i == pk->enc) {
		snprintf(out, len, "used for encryption%s",
			 (long)i == pk->head ? ""
					     : " (preferred by the signing "
					       "certificate in use)");
		return;
	}
	if ((long)i == pk->head) {
		snprintf(out, len,
			 "signing certificate in use; it prefers sha256 %s "
			 "for encryption",
			 r[pk->enc].fingerprint);
		return;
	}
	if (blocked[i]) {
		/* Name the certificate in use, or else a CA-issued one. */
		for (k = 0; k < n; k++)
			if (v[k].signer && v[k].status != KC_ST_REMOVED &&
			    v[k].assurance >= KC_AS_CA)
				break;
		snprintf(out, len,
			 "not used: self-signed would replace CA-issued sha256 "
			 "%s (cert import --force overrides)",
			 pk->enc >= 0 ? r[pk->enc].fingerprint
			 : k < n      ? r[k].fingerprint
				      : "?");
		return;
	}
	/* A signing binding: is its own pairing usable? */
	j = (long)i;
	if (!r[i].signer) {
		/* An encryption certificate: judged through the pairing
		 * that names it. */
		for (k = 0; k < n; k++)
			if (v[k].signer && kc_pairing_enc(v, n, k) == (long)i)
				break;
		if (k == n) {
			snprintf(out, len, "not used: no signing certificate "
					   "of the address prefers it");
			return;
		}
		j = (long)k;
	}
	e = kc_pairing_enc(v, n, (size_t)j);
	if (e < 0) {
		snprintf(out, len, "not used: its preferred encryption "
				   "certificate is missing");
		return;
	}
	if (candidate_usable(&r[e], trust, allow_self_signed, hook, now, &x,
			     why, sizeof(why)) != SM_OK) {
		snprintf(out, len, "not used: %s%s", e == (long)i ? "" :
			 "its encryption certificate: ", why);
		return;
	}
	X509_free(x);
	if (pk->head >= 0)
		snprintf(out, len, "superseded by sha256 %s (%s)",
			 r[pk->enc].fingerprint,
			 kc_rank_why(&v[pk->head], &v[j]));
	else
		snprintf(out, len, "not used");
}

sm_status
keycache_explain(struct keycache *kc, const struct kc_record *recs, size_t n,
		 X509_STORE *trust, bool allow_self_signed,
		 char (*reasons)[KC_EXPLAIN_SIZE])
{
	return keycache_explain_hook(kc, recs, n, trust, allow_self_signed,
				     NULL, reasons);
}

sm_status
keycache_explain_hook(struct keycache *kc, const struct kc_record *recs,
		      size_t n, X509_STORE *trust, bool allow_self_signed,
		      const struct kc_hook *hook,
		      char (*reasons)[KC_EXPLAIN_SIZE])
{
	struct kc_binding_view *v = NULL;
	size_t *order = NULL, m = 0, i;
	bool *blocked = NULL;
	struct pick pk;
	time_t now = clock_now();
	sm_status st;

	if (kc == NULL || (n > 0 && (recs == NULL || reasons == NULL)))
		return SM_ERR_ARG;
	st = pick_records(recs, n, trust, allow_self_signed, hook, now, &v,
			  &order,
			  &blocked, &m, &pk);
	if (st != SM_OK && st != SM_ERR_NOKEY)
		return st;
	for (i = 0; i < n; i++)
		explain_one(recs, v, n, i, &pk, blocked, trust,
			    allow_self_signed, hook, now, reasons[i],
			    KC_EXPLAIN_SIZE);
	X509_free(pk.cert);
	free(v);
	free(order);
	free(blocked);
	return SM_OK;
}

