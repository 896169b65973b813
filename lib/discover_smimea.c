/*
 * discover_smimea.c — DANE SMIMEA records (RFC 8162) through libunbound,
 * validated with DNSSEC against the configured trust anchor.
 *
 * The resolver (smimea.resolver, "ADDR" or "ADDR@PORT") is used as a
 * forwarder; with smimea.stub_zone it is asked as the authoritative server
 * of that zone instead (a private or test zone). Only a secure answer
 * counts: bogus is a temporary failure (never plaintext), insecure or
 * missing data is "nothing found".
 *
 * Records with selector 0 (full certificate) and matching type 0 (the
 * certificate itself) carry a certificate we can encrypt to:
 *   usage 1 PKIX-EE: the certificate, which must also chain to the trust
 *                    store (the harvest rules check that);
 *   usage 3 DANE-EE: the certificate, vouched for by DNSSEC alone: it
 *                    needs no chain to the trust store (the other harvest
 *                    rules apply), and is cached with origin
 *                    KC_ORIGIN_DANE_EE so that selection does not ask for
 *                    one either;
 *   usage 2 DANE-TA: a trust anchor, not an end entity: its certificate
 *                    joins the chain material of the other records.
 * Digest-only records (matching types 1, 2) name no certificate we could
 * encrypt to and are ignored.
 */
#include "discover.h"
#include "discover_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>
#include <unistd.h>

#include <openssl/sha.h>

#define RR_TYPE_SMIMEA 53
#define RR_CLASS_IN 1

struct disc_smimea {
	struct ub_ctx *ctx;
};

sm_status
discover_smimea_name(const char *addr, char *out, size_t outlen)
{
	const char *at = strrchr(addr, '@');
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t o = 0;

	if (at == NULL || at == addr || at[1] == '\0' || outlen < 56 + 13 + strlen(at + 1) + 1)
		return SM_ERR_PARSE;
	SHA256((const unsigned char *)addr, (size_t)(at - addr), md);
	for (int i = 0; i < 28; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%02x", md[i]);
	snprintf(out + o, outlen - o, "._smimecert.%s", at + 1);
	return SM_OK;
}

sm_status
disc_smimea_new(const struct config *cfg, struct disc_smimea **out, char *err, size_t errlen)
{
	struct disc_smimea *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	/* libunbound reads the file only at the first query: check now. */
	if (access(cfg->smimea_trust_anchor_file, R_OK) != 0) {
		snprintf(err, errlen, "discovery: smimea trust_anchor_file %s: %s",
		    cfg->smimea_trust_anchor_file, strerror(errno));
		free(s);
		return SM_ERR_CONFIG;
	}
	if (s == NULL || (s->ctx = ub_ctx_create()) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return SM_ERR_NOMEM;
	}
	ub_ctx_set_option(s->ctx, "do-not-query-localhost:", "no");
	if (cfg->smimea_stub_zone)
		rc = ub_ctx_set_stub(s->ctx, cfg->smimea_stub_zone, cfg->smimea_resolver, 0);
	else
		rc = ub_ctx_set_fwd(s->ctx, cfg->smimea_resolver);
	if (rc == 0)
		rc = ub_ctx_add_ta_file(s->ctx, cfg->smimea_trust_anchor_file);
	if (rc != 0) {
		snprintf(err, errlen, "discovery: smimea: %s (resolver %s, trust anchor %s)", ub_strerror(rc),
		    cfg->smimea_resolver, cfg->smimea_trust_anchor_file);
		disc_smimea_free(s);
		return SM_ERR_CONFIG;
	}
	*out = s;
	return SM_OK;
}

void
disc_smimea_free(struct disc_smimea *s)
{
	if (s == NULL)
		return;
	if (s->ctx)
		ub_ctx_delete(s->ctx);
	free(s);
}

/* One SMIMEA rdata: usage, selector, matching type, data. */
static void
add_rdata(const unsigned char *rd, size_t len, const char *addr, struct disc_answer *out)
{

	if (len < 4 || rd[1] != 0 || rd[2] != 0)
		return;
	switch (rd[0]) {
	case 1: /* PKIX-EE */
		disc_answer_add_der(out, rd + 3, len - 3, addr);
		break;
	case 3: { /* DANE-EE: DNSSEC vouches for it (the answer is secure) */
		int n = sk_X509_num(out->certs);

		disc_answer_add_der(out, rd + 3, len - 3, addr);
		if (sk_X509_num(out->certs) > n) {
			X509 *x = sk_X509_value(out->certs, n);

			if (X509_up_ref(x) == 1 && sk_X509_push(out->dane_ee, x) == 0)
				X509_free(x);
		}
		break;
	}
	case 2: /* DANE-TA */
		disc_answer_add_der(out, rd + 3, len - 3, "");
		break;
	default:
		break;
	}
}

void
disc_smimea_query(struct disc_smimea *s, const char *addr, struct disc_answer *out)
{
	struct ub_result *r = NULL;
	char name[320];
	int rc;

	out->status = DA_NONE;
	if (discover_smimea_name(addr, name, sizeof(name)) != SM_OK)
		return;
	if ((rc = ub_resolve(s->ctx, name, RR_TYPE_SMIMEA, RR_CLASS_IN, &r)) != 0) {
		out->status = DA_TEMP;
		snprintf(out->why, sizeof(out->why), "smimea: %s", ub_strerror(rc));
		return;
	}
	if (r->bogus) {
		out->status = DA_TEMP;
		snprintf(out->why, sizeof(out->why), "smimea: DNSSEC answer bogus (%s)",
		    r->why_bogus ? r->why_bogus : "no reason given");
	} else if (r->rcode == 2 /* SERVFAIL */) {
		out->status = DA_TEMP;
		snprintf(out->why, sizeof(out->why), "smimea: resolver failure (SERVFAIL)");
	} else if (r->secure && r->havedata) {
		for (int i = 0; r->data[i] != NULL; i++)
			add_rdata((unsigned char *)r->data[i], (size_t)r->len[i], addr, out);
		out->status = sk_X509_num(out->certs) > 0 ? DA_FOUND : DA_NONE;
	}
	ub_resolve_free(r);
}
