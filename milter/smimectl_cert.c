/*
 * smimectl_cert.c — `smimectl cert …`: the key cache of partners'
 * certificates (list, show, import, remove, export).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "harvest.h"
#include "keycache.h"
#include "revstore.h"
#include "smime.h"
#include "smimectl.h"
#include "trust.h"
#include "x509util.h"

/* ------------------------------------------------------------------ */
/* Records                                                              */
/* ------------------------------------------------------------------ */

/* Why a record is or is not what outbound mail to its address uses now
 * (keycache_explain: the selection rule's own words). Returns true when it
 * is the one. */
static bool
record_usable(struct ctl *c, const struct kc_record *r, char *why, size_t len)
{
	struct kc_record *all = NULL;
	char (*reasons)[KC_EXPLAIN_SIZE] = NULL;
	struct revstore_hook_arg ra;
	struct kc_hook hook = { revstore_hook, &ra };
	size_t n = 0;
	bool ok = false;

	snprintf(why, len, "not used: the key cache cannot say why");
	if (keycache_find_address(c->kc, r->address, &all, &n) != SM_OK || n == 0)
		goto out;
	ra.rs = c->rs;
	ra.rc = config_revocation_for(c->cfg, "", r->address);
	if ((reasons = calloc(n, sizeof(*reasons))) == NULL ||
	    keycache_explain_hook(c->kc, all, n, trust_store(c->trust),
		c->cfg->trust_allow_self_signed, c->rs ? &hook : NULL, reasons) != SM_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(all[i].fingerprint, r->fingerprint) != 0)
			continue;
		ok = strncmp(reasons[i], "used for encryption", 19) == 0;
		if (ok)
			snprintf(why, len, "yes: outbound mail to %s uses it%s", r->address,
			    reasons[i] + 19);
		else
			snprintf(why, len, "%s", reasons[i]);
	}
out:
	free(reasons);
	kc_records_free(all, n);
	return ok;
}

static void
json_record(struct json *j, const struct kc_record *r)
{
	json_key(j, "address");
	json_str(j, r->address);
	json_key(j, "status");
	json_str(j, kc_status_name(r->status));
	json_key(j, "not_before");
	json_time(j, r->not_before);
	json_key(j, "not_after");
	json_time(j, r->not_after);
	json_key(j, "sha256");
	json_str(j, r->fingerprint);
	json_key(j, "issuer");
	json_str(j, r->issuer);
	json_key(j, "subject");
	json_str(j, r->subject);
	json_key(j, "serial");
	json_str(j, r->serial);
	json_key(j, "emails");
	json_strv(j, r->emails, r->n_emails);
	json_key(j, "key_type");
	json_str(j, x509u_key_type_name(r->key_type));
	json_key(j, "key_bits");
	json_int(j, r->key_bits);
	json_key(j, "key_sha256");
	json_str(j, r->key_fingerprint);
	json_key(j, "source");
	json_str(j, kc_source_name(r->source));
	if (r->origin) {
		json_key(j, "origin");
		json_str(j, r->origin);
	}
	json_key(j, "assurance");
	json_str(j, kc_assurance_name(r->assurance));
	json_key(j, "signing_certificate");
	json_bool(j, r->signer);
	json_key(j, "prefers_sha256");
	if (r->signer)
		json_str(j, r->enc_fp[0] ? r->enc_fp : r->fingerprint);
	else
		json_null(j);
	json_key(j, "signing_time");
	json_time(j, r->signing_time);
	json_key(j, "capabilities");
	json_caps(j, r->caps);
	json_key(j, "first_seen");
	json_time(j, r->first_seen);
	json_key(j, "last_seen");
	json_time(j, r->last_seen);
}

/* ------------------------------------------------------------------ */
/* cert list                                                            */
/* ------------------------------------------------------------------ */

static int
cert_list(struct ctl *c, int argc, char **argv)
{
	const char *expiring = NULL;
	bool json = false;
	const struct ctl_opt opts[] = {
		{ "--expiring", &expiring, NULL },
		{ "--json", NULL, &json },
		{ NULL, NULL, NULL },
	};
	struct kc_record *recs = NULL;
	size_t n = 0;
	long days = -1;
	char *end;
	int npos, rc;
	sm_status st;

	if ((rc = ctl_parse("cert list", argc, argv, opts, NULL, 0, &npos)) != CTL_OK)
		return rc;
	if (expiring) {
		days = strtol(expiring, &end, 10);
		if (*expiring == '\0' || *end != '\0' || days < 0 || days > 36500)
			return ctl_usage_error("cert list",
			    "--expiring needs a number of days from 0 to 36500, not \"%s\"", expiring);
	}
	if (ctl_open_cache(c, false) != CTL_OK)
		return CTL_ERR;
	if (c->kc && (st = keycache_list(c->kc, (int)days, &recs, &n)) != SM_OK) {
		ctl_err("key cache %s: %s", c->cfg->cache_path, sm_strstatus(st));
		return CTL_ERR;
	}
	if (json) {
		struct json j;

		json_init(&j, stdout);
		json_begin(&j, '[');
		for (size_t i = 0; i < n; i++) {
			json_begin(&j, '{');
			json_record(&j, &recs[i]);
			json_end(&j, '}');
		}
		json_end(&j, ']');
		rc = json_finish(&j);
	} else {
		static const char *const hdr[] = { "ADDRESS", "STATUS", "NOT_AFTER", "SHA256",
			"ISSUER" };
		struct table t;
		char na[32];

		table_init(&t, 5, hdr);
		for (size_t i = 0; i < n; i++) {
			const char *row[] = { recs[i].address, kc_status_name(recs[i].status),
				ctl_iso(recs[i].not_after, na), recs[i].fingerprint, recs[i].issuer };
			table_row(&t, row);
		}
		rc = table_print(&t, stdout);
		table_free(&t);
	}
	kc_records_free(recs, n);
	return rc;
}

/* ------------------------------------------------------------------ */
/* cert show                                                            */
/* ------------------------------------------------------------------ */

static int
newest_first(const void *a, const void *b)
{
	const struct kc_record *x = a, *y = b;

	if (x->not_before != y->not_before)
		return x->not_before > y->not_before ? -1 : 1;
	return strcmp(x->address, y->address);
}

/* Look up an address or fingerprint. CTL_ERR (message printed) when it is
 * neither, or on a cache error; *n == 0 when the cache has nothing. */
static int
lookup(struct ctl *c, const char *cmd, const char *what, bool *is_fp, struct kc_record **recs,
    size_t *n)
{
	char fp[X509U_FP_SIZE];
	sm_status st;

	*recs = NULL;
	*n = 0;
	*is_fp = x509u_fingerprint_parse(what, fp);
	if (!*is_fp && strchr(what, '@') == NULL) {
		ctl_err("%s: \"%s\" is neither an address nor a SHA-256 fingerprint", cmd, what);
		return CTL_ERR;
	}
	if (c->kc == NULL)
		return CTL_OK;
	st = *is_fp ? keycache_find_fingerprint(c->kc, fp, recs, n)
		    : keycache_find_address(c->kc, what, recs, n);
	if (st == SM_ERR_PARSE) {
		ctl_err("%s: \"%s\" is not an address", cmd, what);
		return CTL_ERR;
	}
	if (st != SM_OK) {
		ctl_err("key cache %s: %s", c->cfg->cache_path, sm_strstatus(st));
		return CTL_ERR;
	}
	return CTL_OK;
}

static void
print_record(struct ctl *c, const struct kc_record *r)
{
	char why[256], caps[256], b1[32], b2[32];
	X509 *cert;

	record_usable(c, r, why, sizeof(why));
	printf("%s\n", r->address);
	printf("  status:      %s\n", kc_status_name(r->status));
	printf("  used now:    %s\n", why);
	if ((cert = kc_record_cert(r)) != NULL) {
		ctl_print_cert(stdout, "  ", cert);
		X509_free(cert);
	} else {
		printf("  sha256:      %s (stored certificate unreadable)\n", r->fingerprint);
	}
	printf("  key sha256:  %s\n", r->key_fingerprint);
	printf("  source:      %s%s%s%s, first seen %s, last seen %s\n", kc_source_name(r->source),
	    r->origin ? " (" : "", r->origin ? r->origin : "", r->origin ? ")" : "",
	    ctl_iso(r->first_seen, b1), ctl_iso(r->last_seen, b2));
	printf("  capabilities: %s\n", ctl_caps_text(r->caps, caps, sizeof(caps)));
	printf("  assurance:   %s\n", kc_assurance_name(r->assurance));
	ctl_revocation_text(c, r->fingerprint, why, sizeof(why));
	printf("  revocation:  %s\n", why);
	if (r->signer)
		printf("  pairing:     signing certificate; encrypt to %s%s%s\n",
		    r->enc_fp[0] ? "sha256 " : "itself", r->enc_fp,
		    r->signing_time ? "" : " (signing time unknown)");
	else
		printf("  pairing:     encryption certificate named by a signing certificate\n");
	if (r->signing_time)
		printf("  signed at:   %s\n", ctl_iso(r->signing_time, b1));
}

static int
cert_show(struct ctl *c, int argc, char **argv)
{
	bool json = false, is_fp;
	const struct ctl_opt opts[] = {
		{ "--json", NULL, &json },
		{ NULL, NULL, NULL },
	};
	struct kc_record *recs = NULL;
	char *pos[1];
	size_t n = 0;
	int npos, rc;

	if ((rc = ctl_parse("cert show", argc, argv, opts, pos, 1, &npos)) != CTL_OK)
		return rc;
	if (npos != 1)
		return ctl_usage_error("cert show", "missing ADDRESS or FINGERPRINT");
	if (ctl_open_cache(c, false) != CTL_OK || ctl_load_trust(c) != CTL_OK ||
	    ctl_open_revstore(c, false) != CTL_OK ||
	    lookup(c, "cert show", pos[0], &is_fp, &recs, &n) != CTL_OK)
		return CTL_ERR;
	if (n == 0) {
		ctl_err("cert show: no certificate for %s in the key cache", pos[0]);
		return CTL_ERR;
	}
	qsort(recs, n, sizeof(*recs), newest_first);
	if (json) {
		struct json j;
		char why[256];

		json_init(&j, stdout);
		json_begin(&j, '[');
		for (size_t i = 0; i < n; i++) {
			bool usable = record_usable(c, &recs[i], why, sizeof(why));

			json_begin(&j, '{');
			json_record(&j, &recs[i]);
			json_key(&j, "usable");
			json_bool(&j, usable);
			json_key(&j, "usable_reason");
			json_str(&j, why);
			ctl_revocation_text(c, recs[i].fingerprint, why, sizeof(why));
			json_key(&j, "revocation");
			json_str(&j, why);
			json_end(&j, '}');
		}
		json_end(&j, ']');
		rc = json_finish(&j);
	} else {
		for (size_t i = 0; i < n; i++) {
			if (i)
				putchar('\n');
			print_record(c, &recs[i]);
		}
	}
	kc_records_free(recs, n);
	return rc;
}

/* ------------------------------------------------------------------ */
/* cert remove                                                          */
/* ------------------------------------------------------------------ */

static int
cert_remove(struct ctl *c, int argc, char **argv)
{
	char fp[X509U_FP_SIZE], *pos[1];
	size_t count = 0;
	int npos, rc;
	sm_status st;

	if ((rc = ctl_parse("cert remove", argc, argv, NULL, pos, 1, &npos)) != CTL_OK)
		return rc;
	if (npos != 1)
		return ctl_usage_error("cert remove", "missing ADDRESS or FINGERPRINT");
	if (ctl_open_cache(c, false) != CTL_OK)
		return CTL_ERR;
	if (x509u_fingerprint_parse(pos[0], fp)) {
		st = c->kc ? keycache_remove_fingerprint(c->kc, fp, &count) : SM_ERR_NOTFOUND;
	} else if (strchr(pos[0], '@') != NULL) {
		st = c->kc ? keycache_remove_address(c->kc, pos[0], &count) : SM_ERR_NOTFOUND;
	} else {
		ctl_err("cert remove: \"%s\" is neither an address nor a SHA-256 fingerprint",
		    pos[0]);
		return CTL_ERR;
	}
	if (st == SM_ERR_NOTFOUND) {
		ctl_err("cert remove: no certificate for %s in the key cache", pos[0]);
		return CTL_ERR;
	}
	if (st == SM_ERR_PARSE) {
		ctl_err("cert remove: \"%s\" is not an address", pos[0]);
		return CTL_ERR;
	}
	if (st != SM_OK) {
		ctl_err("key cache %s: %s", c->cfg->cache_path, sm_strstatus(st));
		return CTL_ERR;
	}
	if (count == 0)
		printf("%s: already removed\n", pos[0]);
	else
		printf("%s: removed %zu certificate%s (kept as history; outbound mail no longer "
		       "uses %s)\n",
		    pos[0], count, count == 1 ? "" : "s", count == 1 ? "it" : "them");
	return CTL_OK;
}

/* ------------------------------------------------------------------ */
/* cert export                                                          */
/* ------------------------------------------------------------------ */

static int
cert_export(struct ctl *c, int argc, char **argv)
{
	char reason[KC_REASON_SIZE] = "", *pos[1];
	X509 *cert = NULL;
	int npos, rc;
	sm_status st;

	if ((rc = ctl_parse("cert export", argc, argv, NULL, pos, 1, &npos)) != CTL_OK)
		return rc;
	if (npos != 1)
		return ctl_usage_error("cert export", "missing ADDRESS");
	if (ctl_open_cache(c, false) != CTL_OK || ctl_load_trust(c) != CTL_OK ||
	    ctl_open_revstore(c, false) != CTL_OK)
		return CTL_ERR;
	if (c->kc == NULL) {
		st = SM_ERR_NOKEY;
		snprintf(reason, sizeof(reason), "no certificate exchanged");
	} else {
		struct revstore_hook_arg ra = { c->rs, config_revocation_for(c->cfg, "", pos[0]) };
		struct kc_hook hook = { revstore_hook, &ra };

		st = keycache_select_hook(c->kc, pos[0], trust_store(c->trust),
		    c->cfg->trust_allow_self_signed, c->rs ? &hook : NULL, &cert, NULL, reason,
		    sizeof(reason));
	}
	if (st == SM_ERR_PARSE) {
		ctl_err("cert export: \"%s\" is not an address", pos[0]);
		return CTL_ERR;
	}
	if (st == SM_ERR_NOKEY) {
		ctl_err("cert export: %s: %s", pos[0], reason);
		return CTL_ERR;
	}
	if (st != SM_OK) {
		ctl_err("key cache %s: %s", c->cfg->cache_path, sm_strstatus(st));
		return CTL_ERR;
	}
	rc = PEM_write_X509(stdout, cert) ? CTL_OK : CTL_ERR;
	if (rc != CTL_OK)
		ctl_err("cert export: cannot write the certificate");
	X509_free(cert);
	return rc;
}

/* ------------------------------------------------------------------ */
/* cert import                                                          */
/* ------------------------------------------------------------------ */

/* One input file, classified. */
struct infile {
	const char *path;
	struct buf data;
	STACK_OF(X509) *certs; /* certificate files and bundles */
	bool is_msg;	       /* a message: gw_examine() it */
	bool ca_only;	       /* nothing but CA certificates */
	char err[512];	       /* unreadable or unrecognised */
};

/* What happened to the files: stored certificates and refusals. */
struct import_run {
	struct ctl *c;
	bool force;
	STACK_OF(X509) *pool; /* every certificate given: intermediates */
	size_t stored;
	bool keys_tried;
	char keys_err[600];
};

static bool
push_cert(STACK_OF(X509) *sk, X509 *x)
{
	if (x == NULL)
		return true; /* nothing to add */
	if (!sk_X509_push(sk, x)) {
		X509_free(x);
		return false;
	}
	return true;
}

/* Certificates of PEM blocks: CERTIFICATE, X509 CERTIFICATE, TRUSTED
 * CERTIFICATE and PKCS7 (a bundle). */
static void
classify_pem(struct infile *f)
{
	BIO *b = BIO_new_mem_buf(f->data.data, (int)f->data.len);
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long len = 0;

	while (b && PEM_read_bio(b, &name, &header, &der, &len)) {
		const unsigned char *p = der;

		if (strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "X509 CERTIFICATE") == 0) {
			push_cert(f->certs, d2i_X509(NULL, &p, len));
		} else if (strcmp(name, "TRUSTED CERTIFICATE") == 0) {
			push_cert(f->certs, d2i_X509_AUX(NULL, &p, len));
		} else if (strcmp(name, "PKCS7") == 0 || strcmp(name, "CMS") == 0) {
			STACK_OF(X509) *sk = NULL;
			if (smime_get_certs(der, (size_t)len, &sk) == SM_OK)
				while (sk_X509_num(sk) > 0)
					push_cert(f->certs, sk_X509_shift(sk));
			sk_X509_pop_free(sk, X509_free);
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(der);
		name = header = NULL;
		der = NULL;
	}
	BIO_free(b);
	ERR_clear_error();
}

/* Does the file start like a message: a parseable header section with a
 * field every message has? */
static bool
looks_like_message(const struct buf *d)
{
	struct mime_headers h = MIME_HEADERS_INIT;
	size_t off;
	char err[128];
	bool yes;

	if (ctl_split_message(d->data, d->len, &h, &off, err, sizeof(err)) != CTL_OK)
		return false;
	yes = mime_headers_get(&h, "From") || mime_headers_get(&h, "Content-Type") ||
	    mime_headers_get(&h, "MIME-Version");
	mime_headers_free(&h);
	return yes;
}

static void
classify(struct infile *f)
{
	const unsigned char *p;
	X509 *x;

	if (ctl_read_file(f->path, &f->data, f->err, sizeof(f->err)) != CTL_OK)
		return;
	if (f->data.len == 0) {
		snprintf(f->err, sizeof(f->err), "%s: empty file", f->path);
		return;
	}
	if ((f->certs = sk_X509_new_null()) == NULL) {
		snprintf(f->err, sizeof(f->err), "%s: out of memory", f->path);
		return;
	}
	if (looks_like_message(&f->data)) {
		f->is_msg = true;
		return;
	}
	if (f->data.len > INT_MAX) {
		snprintf(f->err, sizeof(f->err), "%s: too large for a certificate file", f->path);
		return;
	}
	if (memmem(f->data.data, f->data.len, "-----BEGIN ", 11) != NULL) {
		classify_pem(f);
		if (sk_X509_num(f->certs) == 0)
			snprintf(f->err, sizeof(f->err), "%s: no certificate in this PEM file", f->path);
		return;
	}
	p = f->data.data;
	x = d2i_X509(NULL, &p, (long)f->data.len);
	if (x != NULL && p == f->data.data + f->data.len) {
		push_cert(f->certs, x);
		return;
	}
	X509_free(x);
	ERR_clear_error();
	switch (smime_content_type(f->data.data, f->data.len)) {
	case SMIME_CT_SIGNED:
	case SMIME_CT_CERTS_ONLY: {
		STACK_OF(X509) *sk = NULL;
		if (smime_get_certs(f->data.data, f->data.len, &sk) == SM_OK)
			while (sk_X509_num(sk) > 0)
				push_cert(f->certs, sk_X509_shift(sk));
		sk_X509_pop_free(sk, X509_free);
		if (sk_X509_num(f->certs) == 0)
			snprintf(f->err, sizeof(f->err), "%s: a PKCS#7 structure without certificates",
			    f->path);
		return;
	}
	default: break;
	}
	snprintf(f->err, sizeof(f->err),
	    "%s: not a certificate (PEM or DER), PKCS#7 bundle or message", f->path);
}

/* The harvest rules for a certificate that came without a message: its
 * own address plays From, and there is no message signature to judge
 * (only the certificate's own signature digest is). */
static sm_status
judge_bare(struct import_run *run, X509 *cert, STACK_OF(X509) *untrusted, const char *addr,
    struct harvest_verdict *v)
{
	const struct config *cfg = run->c->cfg;
	struct harvest_input hi;
	int verr = 0;
	sm_status st;

	memset(&hi, 0, sizeof(hi));
	hi.signer = cert;
	hi.signature_ok = true;
	hi.allow_self_signed = cfg->trust_allow_self_signed;
	hi.digest_nid = NID_sha256; /* no message signature to judge */
	hi.from = addr;
	hi.now = clock_now();
	st = x509u_verify(cert, untrusted, trust_store(run->c->trust), cfg->trust_allow_self_signed,
	    hi.now, &verr);
	if (st == SM_OK)
		hi.chain = HARVEST_CHAIN_TRUSTED;
	else if (st != SM_ERR_VERIFY)
		return st;
	else if (x509u_is_self_signed(cert))
		hi.chain = HARVEST_CHAIN_SELF_SIGNED;
	else if (verr == X509_V_ERR_CERT_HAS_EXPIRED || verr == X509_V_ERR_CERT_NOT_YET_VALID)
		hi.chain = HARVEST_CHAIN_EXPIRED; /* a CA certificate's window */
	else
		hi.chain = HARVEST_CHAIN_UNTRUSTED;
	return harvest_judge(&hi, v);
}

/* What one import stores: a pairing, as a harvest would (see
 * keycache_store_pairing). */
struct import_pair {
	X509 *signer;
	X509 *enc;	     /* NULL: the signer itself */
	STACK_OF(X509) *chain;
	const char *addr;
	caps_t caps;
	time_t signing_time;
	bool self_signed;    /* trusted only through allow_self_signed */
	const char *forced;  /* --force overrode this refusal, or NULL */
};

/* Store a pair for addr and say so on stdout. With --force the admin
 * vouches for it: admin assurance, which a self-signed certificate needs
 * to replace a CA-issued one. */
static sm_status
store_one(struct import_run *run, const char *path, const struct import_pair *ip)
{
	char fp[X509U_FP_SIZE] = "", old[X509U_FP_SIZE] = "";
	X509 *cert = ip->enc ? ip->enc : ip->signer;
	const char *addr = ip->addr;
	enum keycache_outcome oc;
	struct kc_pairing p;
	sm_status st;

	memset(&p, 0, sizeof(p));
	p.signer = ip->signer;
	p.enc = ip->enc;
	p.chain = ip->chain;
	p.address = addr;
	p.caps = ip->caps;
	p.signing_time = ip->signing_time;
	p.assurance = run->force ? KC_AS_ADMIN : ip->self_signed ? KC_AS_SELF_SIGNED : KC_AS_CA;
	p.source = KC_SRC_IMPORTED;
	st = keycache_store_pairing(run->c->kc, &p, &oc, old);
	if (st != SM_OK)
		return st;
	run->stored++;
	x509u_fingerprint(cert, fp);
	printf("%s: %s: ", path, addr);
	switch (oc) {
	case KC_INSERTED: printf("stored sha256=%s", fp); break;
	case KC_UPDATED: {
		struct kc_record *recs = NULL;
		const char *status = "active";
		size_t n = 0;

		if (keycache_find_fingerprint(run->c->kc, fp, &recs, &n) == SM_OK)
			for (size_t i = 0; i < n; i++)
				if (x509u_addr_equal(recs[i].address, addr))
					status = kc_status_name(recs[i].status);
		printf("already in the cache (%s), last seen updated, sha256=%s", status, fp);
		kc_records_free(recs, n);
		break;
	}
	case KC_SUPERSEDED_OLD:
		printf("stored sha256=%s, key change: supersedes sha256=%s", fp, old);
		break;
	case KC_RENEWED_SAME_KEY:
		printf("stored sha256=%s, renewal with the same key: supersedes sha256=%s", fp, old);
		break;
	case KC_OLDER_KEPT_AS_HISTORY:
		printf("stored sha256=%s as history (superseded): sha256=%s stays in use", fp, old);
		break;
	case KC_REFUSED_SELF_SIGNED:
		printf("stored sha256=%s unused: key change refused: self-signed would replace "
		       "CA-issued sha256=%s (cert import --force overrides)",
		    fp, old);
		break;
	}
	if (ip->enc != NULL && X509_cmp(ip->enc, ip->signer) != 0)
		printf(", encryption certificate");
	if (ip->forced)
		printf(" (--force: %s)", ip->forced);
	putchar('\n');
	return SM_OK;
}

static void
note(struct buf *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note(struct buf *why, const char *fmt, ...)
{
	va_list ap;

	if (why->len)
		buf_append_str(why, "; ");
	va_start(ap, fmt);
	buf_vprintf(why, fmt, ap);
	va_end(ap);
}

/* Store every address of cert (--force, or a bare certificate that
 * passes). */
static sm_status
import_cert(struct import_run *run, const char *path, X509 *cert, STACK_OF(X509) *chain,
    caps_t caps, struct buf *why)
{
	struct harvest_verdict v;
	char **addrs = NULL, *subj = NULL;
	size_t n = 0;
	sm_status st;

	if ((st = x509u_addresses(cert, &addrs, &n, NULL)) != SM_OK)
		return st;
	if (n == 0) {
		x509u_name_text(X509_get_subject_name(cert), &subj);
		note(why, "certificate %s carries no e-mail address", subj ? subj : "?");
		free(subj);
	}
	for (size_t i = 0; i < n && st == SM_OK; i++) {
		struct import_pair ip = { cert, NULL, chain, addrs[i], caps, 0, false, NULL };

		if ((st = judge_bare(run, cert, chain, addrs[i], &v)) != SM_OK)
			break;
		ip.self_signed = v.self_signed;
		if (v.harvest) {
			ip.enc = v.cert;
			st = store_one(run, path, &ip);
		} else if (run->force) {
			ip.forced = v.reason;
			st = store_one(run, path, &ip);
		} else {
			note(why, "%s: %s", addrs[i], v.reason);
		}
	}
	x509u_strv_free(addrs, n);
	return st;
}

static sm_status
import_bundle(struct import_run *run, struct infile *f, struct buf *why)
{
	STACK_OF(X509) *chain;
	size_t ee = 0;
	sm_status st = SM_OK;

	/* Intermediates: the file's own certificates first, then those of
	 * the other files (the key cache keeps only the first few CA
	 * certificates of a chain). The stack borrows its entries. */
	if ((chain = sk_X509_dup(f->certs)) == NULL)
		return SM_ERR_NOMEM;
	for (int i = 0; i < sk_X509_num(run->pool); i++) {
		X509 *x = sk_X509_value(run->pool, i);

		if (sk_X509_find(f->certs, x) < 0 && !sk_X509_push(chain, x)) {
			sk_X509_free(chain);
			return SM_ERR_NOMEM;
		}
	}
	for (int i = 0; i < sk_X509_num(f->certs) && st == SM_OK; i++) {
		X509 *x = sk_X509_value(f->certs, i);

		if (X509_check_ca(x) != 0)
			continue; /* an intermediate or root: a helper only */
		ee++;
		st = import_cert(run, f->path, x, chain, 0, why);
	}
	sk_X509_free(chain);
	if (st == SM_OK && ee == 0)
		f->ca_only = true; /* reported only when nothing was stored */
	return st;
}

static sm_status
import_message(struct import_run *run, struct infile *f, struct buf *why)
{
	struct mime_headers h = MIME_HEADERS_INIT;
	struct gw_report r;
	char err[256];
	size_t off;
	sm_status st;

	if (ctl_split_message(f->data.data, f->data.len, &h, &off, err, sizeof(err)) != CTL_OK) {
		note(why, "not a message: %s", err);
		return SM_OK;
	}
	/* Encrypted mail is opened with our keys; without them it is still
	 * worth trying the rest. */
	if (!run->keys_tried) {
		run->keys_tried = true;
		ctl_load_keys(run->c, run->keys_err, sizeof(run->keys_err));
	}
	st = gw_examine(&run->c->env, &h, f->data.data + off, f->data.len - off, true, &r);
	if (st != SM_OK) {
		mime_headers_free(&h);
		return st;
	}
	if (r.kind == MIME_SMIME_CERTS_ONLY) {
		struct buf der = BUF_INIT;
		STACK_OF(X509) *sk = NULL;

		if (mime_decode_body(r.root, &der) != SM_OK ||
		    smime_get_certs(der.data, der.len, &sk) != SM_OK) {
			note(why, "certs-only message without readable certificates");
		} else {
			/* A certificate bundle in a message: as a bundle file. */
			while (st == SM_OK && sk_X509_num(sk) > 0) {
				X509 *x = sk_X509_shift(sk);

				X509_up_ref(x);
				if (!push_cert(f->certs, x) || !push_cert(run->pool, x))
					st = SM_ERR_NOMEM;
			}
			if (st == SM_OK)
				st = import_bundle(run, f, why);
		}
		sk_X509_pop_free(sk, X509_free);
		buf_free(&der);
	} else if (r.malformed) {
		note(why, "%s", r.what);
	} else if (r.encrypted && !r.decrypted) {
		note(why, "encrypted, cannot decrypt: %s",
		    run->c->ks == NULL && run->keys_err[0] ? run->keys_err : r.what);
	} else if (!r.is_signed) {
		note(why, "%s is not signed", r.decrypted ? "the decrypted message" : "message");
	} else if (r.judged && r.hv.harvest) {
		struct import_pair ip = { r.vr.signer, r.hv.cert, r.vr.certs, r.from, r.vr.caps,
			r.vr.signing_time, r.hv.self_signed, NULL };

		st = store_one(run, f->path, &ip);
	} else {
		const char *reason = r.judged ? r.hv.reason
		    : r.harvest_note[0]       ? r.harvest_note
		    : !r.vr.signature_ok      ? "signature does not verify"
					      : "not harvestable";
		if (run->force && r.vr.signer != NULL) {
			/* The admin vouches for the certificate itself: store
			 * it under the addresses it carries. */
			struct buf why2 = BUF_INIT;
			size_t before = run->stored;

			st = import_cert(run, f->path, r.vr.signer, r.vr.certs, r.vr.caps, &why2);
			if (run->stored == before)
				note(why, "%s", buf_cstr(&why2));
			buf_free(&why2);
		} else if (r.from[0] && r.judged && strstr(reason, r.from) == NULL) {
			note(why, "%s: %s", r.from, reason);
		} else {
			note(why, "%s", reason);
		}
	}
	gw_report_free(&r);
	mime_headers_free(&h);
	return st;
}

static int
cert_import(struct ctl *c, int argc, char **argv)
{
	bool force = false;
	const struct ctl_opt opts[] = {
		{ "--force", NULL, &force },
		{ NULL, NULL, NULL },
	};
	struct import_run run;
	struct infile *files = NULL;
	char **pos = NULL;
	int npos = 0, rc;
	sm_status st = SM_OK;

	if (argc > 0 && (pos = calloc((size_t)argc, sizeof(*pos))) == NULL) {
		ctl_err("out of memory");
		return CTL_ERR;
	}
	if ((rc = ctl_parse("cert import", argc, argv, opts, pos, argc, &npos)) != CTL_OK) {
		free(pos);
		return rc;
	}
	if (npos == 0) {
		free(pos);
		return ctl_usage_error("cert import", "missing FILE");
	}
	memset(&run, 0, sizeof(run));
	run.c = c;
	run.force = force;
	if (ctl_load_trust(c) != CTL_OK || ctl_open_cache(c, true) != CTL_OK ||
	    ctl_open_revstore(c, false) != CTL_OK) {
		free(pos);
		return CTL_ERR;
	}
	if ((files = calloc((size_t)npos, sizeof(*files))) == NULL ||
	    (run.pool = sk_X509_new_null()) == NULL) {
		ctl_err("out of memory");
		rc = CTL_ERR;
		goto out;
	}
	/* Read everything first: certificates of every file serve as
	 * intermediates for the others ("cert import bob.der chain.pem"). */
	for (int i = 0; i < npos; i++) {
		files[i].path = pos[i];
		classify(&files[i]);
		for (int k = 0; files[i].certs && k < sk_X509_num(files[i].certs); k++) {
			X509 *x = sk_X509_value(files[i].certs, k);
			X509_up_ref(x);
			if (!push_cert(run.pool, x)) {
				ctl_err("out of memory");
				rc = CTL_ERR;
				goto out;
			}
		}
	}
	for (int i = 0; i < npos && st == SM_OK; i++) {
		struct buf why = BUF_INIT;

		if (files[i].err[0]) {
			ctl_err("%s", files[i].err);
			continue;
		}
		st = files[i].is_msg ? import_message(&run, &files[i], &why)
				     : import_bundle(&run, &files[i], &why);
		if (st == SM_OK && why.len)
			ctl_err("%s: %s", files[i].path, buf_cstr(&why));
		buf_free(&why);
	}
	/* CA certificates help the other files as intermediates; they are
	 * only worth a word when nothing at all was stored. */
	for (int i = 0; i < npos && st == SM_OK && run.stored == 0; i++)
		if (files[i].ca_only)
			ctl_err("%s: only CA certificates: nothing to store (they serve as "
				"intermediates for certificates given with them)",
			    files[i].path);
	if (st != SM_OK) {
		ctl_err("cert import: %s", sm_strstatus(st));
		rc = CTL_ERR;
	} else {
		rc = run.stored > 0 ? CTL_OK : CTL_ERR;
	}
out:
	for (int i = 0; files && i < npos; i++) {
		buf_free(&files[i].data);
		sk_X509_pop_free(files[i].certs, X509_free);
	}
	free(files);
	sk_X509_pop_free(run.pool, X509_free);
	free(pos);
	return rc;
}

int
cmd_cert(struct ctl *c, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage_error("cert", "missing list, show, import, remove or export");
	if (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)
		return CTL_HELP;
	if (strcmp(argv[0], "list") == 0)
		return cert_list(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "show") == 0)
		return cert_show(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "import") == 0)
		return cert_import(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "remove") == 0)
		return cert_remove(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "export") == 0)
		return cert_export(c, argc - 1, argv + 1);
	return ctl_usage_error("cert", "unknown subcommand \"%s\"", argv[0]);
}
