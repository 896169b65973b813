/*
 * smimectl_inspect.c — `smimectl inspect FILE.eml`: what the daemon would
 * make of a message. Everything comes from gw_examine(), the function the
 * daemon's inbound path uses, so the two cannot disagree; nothing is
 * stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/objects.h>

#include "address.h"
#include "smime.h"
#include "smimectl.h"
#include "x509util.h"

#define TREE_MAX_DEPTH 32

static const char *
enc_type(const struct mime_entity *e)
{
	return e->cte ? e->cte : "7bit";
}

static void
print_tree(const struct mime_entity *e, int depth)
{
	const char *st = mime_ctype_param(&e->ct, "smime-type");
	const char *proto = mime_ctype_param(&e->ct, "protocol");

	printf("%*s%s/%s", 2 + 2 * depth, "", e->ct.type ? e->ct.type : "?",
	    e->ct.subtype ? e->ct.subtype : "?");
	if (st)
		printf("; smime-type=%s", st);
	if (proto)
		printf("; protocol=%s", proto);
	if (e->nparts > 0 && mime_ctype_is(&e->ct, "multipart", NULL))
		printf("  (%zu part%s)\n", e->nparts, e->nparts == 1 ? "" : "s");
	else
		printf("  %s, %zu bytes\n", enc_type(e), e->body_len);
	if (depth >= TREE_MAX_DEPTH)
		return;
	for (size_t i = 0; i < e->nparts; i++)
		print_tree(e->parts[i], depth + 1);
}

static void
json_tree(struct json *j, const struct mime_entity *e, int depth)
{
	char type[256];

	if (e == NULL) {
		json_null(j);
		return;
	}
	snprintf(type, sizeof(type), "%s/%s", e->ct.type ? e->ct.type : "?",
	    e->ct.subtype ? e->ct.subtype : "?");
	json_begin(j, '{');
	json_key(j, "type");
	json_str(j, type);
	json_key(j, "smime_type");
	json_str(j, mime_ctype_param(&e->ct, "smime-type"));
	json_key(j, "transfer_encoding");
	json_str(j, enc_type(e));
	json_key(j, "size");
	json_int(j, (long long)e->body_len);
	json_key(j, "parts");
	json_begin(j, '[');
	for (size_t i = 0; depth < TREE_MAX_DEPTH && i < e->nparts; i++)
		json_tree(j, e->parts[i], depth + 1);
	json_end(j, ']');
	json_end(j, '}');
}

/* The verdict on harvesting, in words, from the report. */
struct verdict {
	bool harvest;
	char text[1024];
	char fp[X509U_FP_SIZE];
};

static void
harvest_verdict(const struct ctl *c, const struct gw_report *r, const char *keys_err,
    struct verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (r->malformed) {
		snprintf(v->text, sizeof(v->text), "not harvested: %s", r->what);
	} else if (r->kind == MIME_SMIME_NONE) {
		snprintf(v->text, sizeof(v->text), "not harvested: the message is not signed");
	} else if (r->kind == MIME_SMIME_CERTS_ONLY) {
		snprintf(v->text, sizeof(v->text),
		    "not harvested: a certs-only message carries no signature "
		    "(smimectl cert import takes its certificates)");
	} else if (r->encrypted && !r->decrypted) {
		snprintf(v->text, sizeof(v->text), "not harvested: encrypted, cannot decrypt: %s",
		    c->ks == NULL && keys_err[0] ? keys_err : r->what);
	} else if (!r->is_signed) {
		snprintf(v->text, sizeof(v->text), "not harvested: the %s is not signed",
		    r->decrypted ? "decrypted message" : "message");
	} else if (r->judged && r->hv.harvest) {
		v->harvest = true;
		if (x509u_fingerprint(r->hv.cert, v->fp) != SM_OK)
			v->fp[0] = '\0';
		snprintf(v->text, sizeof(v->text), "would harvest %s: %s, sha256 %s", r->from,
		    r->hv.reason, v->fp);
	} else if (r->judged) {
		snprintf(v->text, sizeof(v->text), "not harvested: %s", r->hv.reason);
	} else if (r->harvest_note[0]) {
		snprintf(v->text, sizeof(v->text), "not harvested: %s", r->harvest_note);
	} else {
		snprintf(v->text, sizeof(v->text), "not harvested: signature does not verify (%s)",
		    r->vr.reason);
	}
}

static const char *
encryption_text(const struct gw_report *r, const struct ctl *c, const char *keys_err, char *buf,
    size_t len)
{
	if (!r->encrypted)
		snprintf(buf, len, "no");
	else if (r->decrypted)
		snprintf(buf, len, "yes (%s), decrypted with the key store",
		    mime_smime_kind_name(r->kind));
	else
		snprintf(buf, len, "yes (%s), not decrypted: %s", mime_smime_kind_name(r->kind),
		    c->ks == NULL && keys_err[0] ? keys_err : r->what);
	return buf;
}

static const char *
digest_name(int nid)
{
	const char *s = nid != NID_undef ? OBJ_nid2ln(nid) : NULL;
	return s ? s : "unknown";
}

static void
print_report(const struct ctl *c, const char *path, const struct gw_report *r,
    const struct mime_entity *content, STACK_OF(X509) *bundle, const char *keys_err,
    const struct verdict *v)
{
	char buf[1024], caps[256], b[32];
	const char *result = gw_report_result(r);

	printf("file:         %s\n", path);
	printf("from:         %s\n", r->from[0] ? r->from : "(none)");
	printf("s/mime:       %s\n", mime_smime_kind_name(r->kind));
	if (r->malformed)
		printf("malformed:    %s\n", r->what);
	if (r->root) {
		printf("structure:\n");
		print_tree(r->root, 0);
	}
	printf("encrypted:    %s\n", encryption_text(r, c, keys_err, buf, sizeof(buf)));
	if (r->inner) {
		printf("decrypted structure:\n");
		print_tree(r->inner, 0);
	}
	if (content) {
		printf("signed content:\n");
		print_tree(content, 0);
	}
	if (r->have_vr) {
		printf("signature:    %s", result ? result : "none");
		if (r->vr.status != SMIME_VERIFY_OK)
			printf(" (%s: %s)", smime_verify_status_name(r->vr.status), r->vr.reason);
		printf("\n");
		printf("  format:     %s\n", mime_smime_kind_name(r->signed_kind));
		printf("  signature over the content: %s\n", r->vr.signature_ok ? "valid" : "invalid");
		if (r->vr.signer)
			printf("  signer's chain: %s\n", smime_verify_status_name(r->vr.chain_status));
		printf("  digest:     %s\n", digest_name(r->vr.digest_nid));
		printf("  signed at:  %s\n",
		    r->vr.signing_time ? ctl_iso(r->vr.signing_time, b) : "(no signingTime)");
		printf("  signers:    %zu\n", r->vr.nsigners);
		printf("  capabilities: %s\n", ctl_caps_text(r->vr.caps, caps, sizeof(caps)));
		if (r->vr.signer) {
			printf("signer:\n");
			ctl_print_cert(stdout, "  ", r->vr.signer);
		}
		if (r->vr.enc_pref) {
			char fp[X509U_FP_SIZE] = "";
			x509u_fingerprint(r->vr.enc_pref, fp);
			printf("encryption key preference: sha256 %s\n", fp);
		}
		if (r->vr.certs) {
			int n = sk_X509_num(r->vr.certs);
			printf("certificates: %d in the signature\n", n);
			for (int i = 0; i < n; i++) {
				printf("  [%d]\n", i + 1);
				ctl_print_cert(stdout, "    ", sk_X509_value(r->vr.certs, i));
			}
		}
	} else {
		printf("signature:    none\n");
	}
	if (bundle) {
		printf("certificates: %d in the certs-only bundle\n", sk_X509_num(bundle));
		for (int i = 0; i < sk_X509_num(bundle); i++) {
			printf("  [%d]\n", i + 1);
			ctl_print_cert(stdout, "    ", sk_X509_value(bundle, i));
		}
	}
	printf("harvest:      %s\n", v->text);
	if (!c->cfg->inbound_harvest)
		printf("              (inbound.harvest = false: the daemon harvests nothing)\n");
}

static void
json_report(const struct ctl *c, const char *path, const struct gw_report *r,
    const struct mime_entity *content, STACK_OF(X509) *bundle, const char *keys_err,
    const struct verdict *v)
{
	struct json j;

	json_init(&j, stdout);
	json_begin(&j, '{');
	json_key(&j, "file");
	json_str(&j, path);
	json_key(&j, "from");
	json_str(&j, r->from[0] ? r->from : NULL);
	json_key(&j, "kind");
	json_str(&j, mime_smime_kind_name(r->kind));
	json_key(&j, "malformed");
	json_bool(&j, r->malformed);
	json_key(&j, "problem");
	json_str(&j, r->malformed ? r->what : NULL);
	json_key(&j, "structure");
	json_tree(&j, r->root, 0);
	json_key(&j, "encrypted");
	json_bool(&j, r->encrypted);
	json_key(&j, "decrypted");
	json_bool(&j, r->decrypted);
	json_key(&j, "decrypt_error");
	if (r->encrypted && !r->decrypted)
		json_str(&j, c->ks == NULL && keys_err[0] ? keys_err : r->what);
	else
		json_null(&j);
	json_key(&j, "decrypted_structure");
	json_tree(&j, r->inner, 0);
	json_key(&j, "signed_content");
	json_tree(&j, content, 0);
	json_key(&j, "signed");
	json_bool(&j, r->have_vr);
	json_key(&j, "result");
	json_str(&j, gw_report_result(r));
	json_key(&j, "signature");
	if (r->have_vr) {
		json_begin(&j, '{');
		json_key(&j, "format");
		json_str(&j, mime_smime_kind_name(r->signed_kind));
		json_key(&j, "status");
		json_str(&j, smime_verify_status_name(r->vr.status));
		json_key(&j, "reason");
		json_str(&j, r->vr.reason);
		json_key(&j, "signature_ok");
		json_bool(&j, r->vr.signature_ok);
		json_key(&j, "chain");
		json_str(&j, r->vr.signer ? smime_verify_status_name(r->vr.chain_status) : NULL);
		json_key(&j, "digest");
		json_str(&j, digest_name(r->vr.digest_nid));
		json_key(&j, "signing_time");
		json_time(&j, r->vr.signing_time);
		json_key(&j, "signers");
		json_int(&j, (long long)r->vr.nsigners);
		json_key(&j, "capabilities");
		json_caps(&j, r->vr.caps);
		json_key(&j, "signer");
		ctl_json_cert(&j, r->vr.signer);
		json_key(&j, "encryption_key_preference");
		ctl_json_cert(&j, r->vr.enc_pref);
		json_key(&j, "certificates");
		json_begin(&j, '[');
		for (int i = 0; r->vr.certs && i < sk_X509_num(r->vr.certs); i++)
			ctl_json_cert(&j, sk_X509_value(r->vr.certs, i));
		json_end(&j, ']');
		json_end(&j, '}');
	} else {
		json_null(&j);
	}
	json_key(&j, "bundle");
	if (bundle) {
		json_begin(&j, '[');
		for (int i = 0; i < sk_X509_num(bundle); i++)
			ctl_json_cert(&j, sk_X509_value(bundle, i));
		json_end(&j, ']');
	} else {
		json_null(&j);
	}
	json_key(&j, "harvest");
	json_begin(&j, '{');
	json_key(&j, "harvest");
	json_bool(&j, v->harvest);
	json_key(&j, "address");
	json_str(&j, r->from[0] ? r->from : NULL);
	json_key(&j, "verdict");
	json_str(&j, v->text);
	json_key(&j, "reason");
	json_str(&j, r->judged ? r->hv.reason : strncmp(v->text, "not harvested: ", 15) == 0
		? v->text + 15 : v->text);
	json_key(&j, "sha256");
	json_str(&j, v->fp[0] ? v->fp : NULL);
	json_key(&j, "encryption_certificate");
	json_bool(&j, v->harvest && r->hv.enc_pref);
	json_key(&j, "daemon_harvests");
	json_bool(&j, c->cfg->inbound_harvest);
	json_end(&j, '}');
	json_end(&j, '}');
	json_finish(&j);
}

int
cmd_inspect(struct ctl *c, int argc, char **argv)
{
	bool json = false;
	const struct ctl_opt opts[] = {
		{ "--json", NULL, &json },
		{ NULL, NULL, NULL },
	};
	struct mime_headers h = MIME_HEADERS_INIT;
	struct mime_entity *content = NULL;
	STACK_OF(X509) *bundle = NULL;
	struct buf data = BUF_INIT;
	struct gw_report r;
	struct verdict v;
	char err[600] = "", keys_err[600] = "", *pos[1];
	size_t off;
	int npos, rc;
	sm_status st;

	memset(&r, 0, sizeof(r));
	if ((rc = ctl_parse("inspect", argc, argv, opts, pos, 1, &npos)) != CTL_OK)
		return rc;
	if (npos != 1)
		return ctl_usage_error("inspect", "missing FILE.eml");
	if (ctl_load_trust(c) != CTL_OK || ctl_open_revstore(c, false) != CTL_OK)
		return CTL_ERR;
	if (ctl_read_file(pos[0], &data, err, sizeof(err)) != CTL_OK) {
		ctl_err("inspect: %s", err);
		return CTL_ERR;
	}
	if (ctl_split_message(data.data, data.len, &h, &off, err, sizeof(err)) != CTL_OK) {
		ctl_err("inspect: %s: not a message: %s", pos[0], err);
		rc = CTL_ERR;
		goto out;
	}
	/* Our keys open an envelope; a key store that does not load is
	 * reported as the reason the message could not be decrypted. */
	ctl_load_keys(c, keys_err, sizeof(keys_err));
	if ((st = gw_examine(&c->env, &h, data.data + off, data.len - off, true, &r)) != SM_OK) {
		ctl_err("inspect: %s: %s", pos[0], sm_strstatus(st));
		rc = CTL_ERR;
		goto out;
	}
	/* Opaque signed-data: show what it encapsulates. */
	if (r.have_vr && r.signed_kind == MIME_SMIME_SIGNED_OPAQUE && r.content.len > 0 &&
	    mime_parse(r.content.data, r.content.len, NULL, &content) != SM_OK)
		content = NULL;
	/* A certs-only message: list what it carries. */
	if (r.kind == MIME_SMIME_CERTS_ONLY && r.root) {
		struct buf der = BUF_INIT;

		if (mime_decode_body(r.root, &der) != SM_OK ||
		    smime_get_certs(der.data, der.len, &bundle) != SM_OK)
			bundle = NULL;
		buf_free(&der);
	}
	/* gw_examine() reads From only to judge a harvest. */
	if (r.from[0] == '\0' && mime_headers_get(&h, "From") != NULL &&
	    addr_from_header(mime_headers_get(&h, "From"), r.from, sizeof(r.from)) != SM_OK)
		r.from[0] = '\0';
	harvest_verdict(c, &r, keys_err, &v);
	if (json)
		json_report(c, pos[0], &r, content, bundle, keys_err, &v);
	else
		print_report(c, pos[0], &r, content, bundle, keys_err, &v);
	rc = CTL_OK;
out:
	mime_entity_free(content);
	sk_X509_pop_free(bundle, X509_free);
	gw_report_free(&r);
	mime_headers_free(&h);
	buf_free(&data);
	return rc;
}
