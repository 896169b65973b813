/*
 * smimectl_revocation.c — `smimectl revocation refresh [ADDRESS]`, the
 * revocation line of `cert show`, and the revocation part of `check`.
 *
 * refresh does the checks itself, in the foreground (the same code as the
 * daemon's worker), and stores the results where the daemon reads them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "keycache.h"
#include "revstore.h"
#include "revworker.h"
#include "smimectl.h"

int
ctl_open_revstore(struct ctl *c, bool create)
{
	char why[512] = "", *path;
	struct stat sb;
	int rc = CTL_OK;

	if (c->rs)
		return CTL_OK;
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	if ((path = config_revocation_store(c->cfg)) == NULL)
		return CTL_ERR;
	if (!create && stat(path, &sb) != 0) {
		free(path);
		return CTL_OK; /* nothing checked yet */
	}
	if (revstore_open(path, &c->rs, why, sizeof(why)) != SM_OK) {
		ctl_err("revocation store: %s", why);
		rc = CTL_ERR;
	}
	c->env.rs = c->rs;
	free(path);
	return rc;
}

static const char *
age_text(time_t t, time_t now, char *buf, size_t len)
{
	long d = (long)(now - t);

	if (d < 120)
		snprintf(buf, len, "%ld s ago", d < 0 ? 0 : d);
	else if (d < 7200)
		snprintf(buf, len, "%ld min ago", d / 60);
	else if (d < 172800)
		snprintf(buf, len, "%ld h ago", d / 3600);
	else
		snprintf(buf, len, "%ld days ago", d / 86400);
	return buf;
}

void
ctl_revocation_text(struct ctl *c, const char *fp, char *out, size_t len)
{
	struct rev_entry e;
	char age[32], d1[16], d2[16];
	time_t now = clock_now();
	sm_status st;

	if (c->rs == NULL || (st = revstore_get(c->rs, fp, &e)) == SM_ERR_NOTFOUND) {
		snprintf(out, len, "not checked yet");
		return;
	}
	if (st != SM_OK) {
		snprintf(out, len, "cannot read the revocation store");
		return;
	}
	if (e.r.status == REV_REVOKED) {
		x509u_date(e.r.revoked_at, d1, sizeof(d1));
		snprintf(out, len, "revoked on %s (%s); source %s, checked %s", d1,
		    rev_reason_name(e.r.reason), rev_source_name(e.r.source),
		    age_text(e.checked_at, now, age, sizeof(age)));
	} else if (e.r.status == REV_GOOD) {
		x509u_date(e.r.next_update, d2, sizeof(d2));
		snprintf(out, len, "good; source %s, checked %s, %s %s%s%s",
		    rev_source_name(e.r.source), age_text(e.checked_at, now, age, sizeof(age)),
		    e.r.next_update < now ? "stale since" : "next update", d2,
		    e.last_error[0] ? "; last attempt: " : "", e.last_error);
	} else {
		x509u_date(e.unknown_since, d1, sizeof(d1));
		snprintf(out, len, "unknown since %s%s%s", d1,
		    e.last_error[0] ? ": " : " (queued)", e.last_error);
	}
	rev_entry_free(&e);
}

/* Queue every certificate of recs (not removed) with its issuer. */
static size_t
queue_records(struct ctl *c, const struct kc_record *recs, size_t n, time_t now)
{
	size_t queued = 0;

	for (size_t i = 0; i < n; i++) {
		STACK_OF(X509) *chain = sk_X509_new_null();
		const unsigned char *p = recs[i].chain, *end = p + recs[i].chain_len;
		X509 *cert = kc_record_cert(&recs[i]), *x;

		while (chain && p && p < end && (x = d2i_X509(NULL, &p, end - p)) != NULL)
			sk_X509_push(chain, x);
		if (cert && recs[i].status != KC_ST_REMOVED &&
		    revstore_enqueue(c->rs, cert, rev_find_issuer(cert, chain), now) == SM_OK &&
		    revstore_mark_due(c->rs, recs[i].fingerprint, now, NULL) == SM_OK)
			queued++;
		X509_free(cert);
		sk_X509_pop_free(chain, X509_free);
	}
	return queued;
}

static void
print_results(struct ctl *c, const struct kc_record *recs, size_t n)
{
	char text[512];

	for (size_t i = 0; i < n; i++) {
		if (recs[i].status == KC_ST_REMOVED)
			continue;
		ctl_revocation_text(c, recs[i].fingerprint, text, sizeof(text));
		printf("%s sha256 %s: %s\n", recs[i].address, recs[i].fingerprint, text);
	}
}

static int
revocation_refresh(struct ctl *c, int argc, char **argv)
{
	const struct cfg_revocation *rc;
	struct revfetch_opts o;
	struct kc_record *recs = NULL;
	char *pos[1];
	size_t n = 0, done, total = 0;
	time_t now = clock_now();
	int npos, r;
	sm_status st = SM_OK;

	if ((r = ctl_parse("revocation refresh", argc, argv, NULL, pos, 1, &npos)) != CTL_OK)
		return r;
	if (ctl_open_cache(c, false) != CTL_OK || ctl_open_revstore(c, true) != CTL_OK)
		return CTL_ERR;
	if (c->kc != NULL)
		st = npos ? keycache_find_address(c->kc, pos[0], &recs, &n)
			  : keycache_list(c->kc, -1, &recs, &n);
	if (st != SM_OK) {
		ctl_err("revocation refresh: cannot read the key cache: %s", sm_strstatus(st));
		return CTL_ERR;
	}
	if (npos && n == 0) {
		ctl_err("revocation refresh: no certificate for %s in the key cache", pos[0]);
		return CTL_ERR;
	}
	queue_records(c, recs, n, now);
	if (!npos)
		revstore_mark_due(c->rs, NULL, now, NULL);
	rc = &c->cfg->revocation;
	o.timeout_ms = (long)rc->timeout_ms;
	o.proxy = rc->proxy;
	o.max_bytes = 0;
	/* Rounds of the worker's batch size until nothing is due. */
	do {
		st = revworker_round(c->rs, &o, now, &done);
		total += done;
	} while (st == SM_OK && done > 0 && total < 100000);
	if (st != SM_OK) {
		ctl_err("revocation refresh: the revocation store failed");
		kc_records_free(recs, n);
		return CTL_ERR;
	}
	print_results(c, recs, n);
	kc_records_free(recs, n);
	return CTL_OK;
}

int
cmd_revocation(struct ctl *c, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage_error("revocation", "missing subcommand (refresh)");
	if (strcmp(argv[0], "refresh") == 0)
		return revocation_refresh(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)
		return CTL_HELP;
	return ctl_usage_error("revocation", "unknown subcommand \"%s\"", argv[0]);
}
