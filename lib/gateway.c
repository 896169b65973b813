/*
 * gateway.c — the outbound and inbound pipelines.
 *
 * Outbound: triggers → certificate lookups → plan (policy) → canonical
 * entity → sign → encrypt → header edits. Inbound: forged results removed →
 * S/MIME structure → (decrypt) → verify → harvest → Authentication-Results.
 * Every step returns a status; the daemon never sees an exception path.
 */
#include "gateway.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "address.h"
#include "clock.h"
#include "harvest.h"
#include "keycache.h"
#include "keystore.h"
#include "log.h"
#include "smime.h"
#include "trust.h"
#include "x509util.h"

/* ------------------------------------------------------------------ */
/* Results                                                              */
/* ------------------------------------------------------------------ */

void
gw_result_free(struct gw_result *r)
{
	if (r == NULL)
		return;
	policy_reply_free(&r->reply);
	for (size_t i = 0; i < r->nedits; i++) {
		free(r->edits[i].name);
		free(r->edits[i].value);
	}
	free(r->edits);
	buf_free(&r->body);
	buf_free(&r->summary);
	memset(r, 0, sizeof(*r));
}

static sm_status
edit_add(struct gw_result *r, enum gw_hdr_op op, const char *name, int index, const char *value)
{
	struct gw_hdr_edit *v = realloc(r->edits, (r->nedits + 1) * sizeof(*v));

	if (v == NULL)
		return SM_ERR_NOMEM;
	r->edits = v;
	v[r->nedits].op = op;
	v[r->nedits].index = index;
	v[r->nedits].name = strdup(name);
	v[r->nedits].value = value ? strdup(value) : NULL;
	if (v[r->nedits].name == NULL || (value && v[r->nedits].value == NULL)) {
		free(v[r->nedits].name);
		free(v[r->nedits].value);
		return SM_ERR_NOMEM;
	}
	r->nedits++;
	return SM_OK;
}

/* Delete every occurrence of the headers for which pred() holds, highest
 * index first per name so that earlier indexes stay valid. */
static sm_status
edit_delete_where(struct gw_result *r, const struct mime_headers *h,
    bool (*pred)(const struct mime_header *, const void *), const void *arg)
{
	for (size_t i = h->n; i-- > 0;) {
		int index = 0;
		sm_status st;

		if (!pred(&h->v[i], arg))
			continue;
		for (size_t j = 0; j <= i; j++)
			if (strcasecmp(h->v[j].name, h->v[i].name) == 0)
				index++;
		if ((st = edit_add(r, GW_HDR_DELETE, h->v[i].name, index, NULL)) != SM_OK)
			return st;
	}
	return SM_OK;
}

static sm_status
set_reply(struct pol_reply *rp, const char *code, const char *xcode, const char *text)
{
	const char *lines[1] = { text };

	return policy_reply_set(rp, code, xcode, lines, 1);
}

/* Internal trouble: a temporary failure, so the client retries and no
 * plaintext leaves where encryption was needed. */
static sm_status
tempfail(struct gw_result *r, const char *qid, const char *why)
{
	log_qid(LOG_ERR, qid, "temporary failure: %s", why);
	r->verdict = POL_TEMPFAIL;
	buf_reset(&r->summary);
	buf_printf(&r->summary, "tempfail: %s", why);
	return set_reply(&r->reply, "451", "4.7.0",
	    "S/MIME processing failed temporarily; please try again later");
}

static int
key_type_of(X509 *cert)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);

	return pk ? EVP_PKEY_get_base_id(pk) : EVP_PKEY_NONE;
}

static enum pol_keytype
pol_key_of(X509 *cert)
{
	switch (key_type_of(cert)) {
	case EVP_PKEY_RSA: return POL_KEY_RSA;
	case EVP_PKEY_EC: return POL_KEY_EC;
	default: return POL_KEY_NONE;
	}
}

static X509_STORE *
env_store(const struct gw_env *env)
{
	return env->trust ? trust_store(env->trust) : NULL;
}

/* ------------------------------------------------------------------ */
/* Outbound                                                             */
/* ------------------------------------------------------------------ */

/* What the cache knows about one recipient. */
struct rcpt_key {
	char addr[320];
	X509 *cert;        /* owned; NULL when none usable */
	caps_t caps;
	char reason[KC_REASON_SIZE];
};

static sm_status
lookup_rcpt(const struct gw_env *env, const char *addr, struct rcpt_key *rk)
{
	sm_status st;

	memset(rk, 0, sizeof(*rk));
	snprintf(rk->addr, sizeof(rk->addr), "%s", addr);
	st = keycache_select(env->kc, addr, env_store(env), env->cfg->trust_allow_self_signed,
	    &rk->cert, &rk->caps, rk->reason, sizeof(rk->reason));
	if (st == SM_ERR_NOKEY || st == SM_ERR_PARSE || (st == SM_OK && rk->cert == NULL)) {
		if (rk->reason[0] == '\0')
			snprintf(rk->reason, sizeof(rk->reason), "no certificate exchanged");
		return SM_OK;
	}
	return st;
}

sm_status
gw_rcpt(const struct gw_env *env, const char *sender, const char *rcpt,
    const struct pol_treatment *first, struct pol_rcpt_decision *out)
{
	char s[320] = "", r[320];
	struct rcpt_key rk;
	struct pol_lookup lk;
	sm_status st;

	memset(out, 0, sizeof(*out));
	if (addr_normalize(rcpt, r, sizeof(r)) != SM_OK) {
		/* Not an address we can look up (a local alias, say): let the
		 * MTA judge it; it can never be encrypted to. */
		out->verdict = POL_ACCEPT;
		snprintf(out->log, sizeof(out->log), "not a domain address");
		return SM_OK;
	}
	addr_normalize(sender, s, sizeof(s));
	if ((st = lookup_rcpt(env, r, &rk)) != SM_OK)
		return st;
	lk.has_cert = rk.cert != NULL;
	lk.key_type = rk.cert ? pol_key_of(rk.cert) : POL_KEY_NONE;
	lk.reason = rk.reason;
	st = policy_rcpt(env->cfg, s, r, &lk, first, out);
	X509_free(rk.cert);
	return st;
}

/* Does the Subject carry the tag (case-insensitive)? Returns its offset. */
static const char *
subject_tag_at(const char *subject, const char *tag)
{
	size_t tl = strlen(tag);

	if (tl == 0 || subject == NULL)
		return NULL;
	for (const char *p = subject; *p; p++)
		if (strncasecmp(p, tag, tl) == 0)
			return p;
	return NULL;
}

static bool
trigger_value_yes(const char *v)
{
	char *u = mime_header_unfold(v);
	bool yes;

	if (u == NULL)
		return false;
	yes = strcasecmp(u, "yes") == 0 || strcasecmp(u, "true") == 0 ||
	    strcmp(u, "1") == 0 || strcasecmp(u, "on") == 0;
	free(u);
	return yes;
}

static bool
is_content_header(const struct mime_header *h, const void *arg)
{
	(void)arg;
	return strncasecmp(h->name, "Content-", 8) == 0;
}

static bool
is_named(const struct mime_header *h, const void *arg)
{
	return strcasecmp(h->name, (const char *)arg) == 0;
}

/* Is the message already S/MIME (the client did it)? Only a body that
 * really is a CMS envelope counts as encrypted: a plaintext body labelled
 * application/pkcs7-mime must not slip out unencrypted. */
static enum mime_smime_kind
outbound_existing_smime(const struct mime_headers *hdrs, const unsigned char *body, size_t len)
{
	struct mime_entity *root = NULL;
	enum mime_smime_kind k;
	struct buf der = BUF_INIT;

	if (mime_parse_message(hdrs, body, len, NULL, &root) != SM_OK)
		return MIME_SMIME_NONE;
	k = mime_smime_kind(root);
	if (k == MIME_SMIME_ENVELOPED || k == MIME_SMIME_AUTH_ENVELOPED ||
	    k == MIME_SMIME_PKCS7_UNKNOWN || k == MIME_SMIME_SIGNED_OPAQUE) {
		enum smime_content_type ct = SMIME_CT_INVALID;

		if (mime_decode_body(root, &der) == SM_OK)
			ct = smime_content_type(der.data, der.len);
		if (ct == SMIME_CT_ENVELOPED || ct == SMIME_CT_AUTH_ENVELOPED)
			k = MIME_SMIME_ENVELOPED;
		else if (ct == SMIME_CT_SIGNED)
			k = MIME_SMIME_SIGNED_OPAQUE;
		else
			k = MIME_SMIME_NONE;
	} else if (k != MIME_SMIME_SIGNED_DETACHED) {
		k = MIME_SMIME_NONE;
	}
	buf_free(&der);
	mime_entity_free(root);
	return k;
}

static const EVP_MD *
digest_md(enum cfg_digest d)
{
	switch (d) {
	case CFG_DIGEST_SHA384: return EVP_sha384();
	case CFG_DIGEST_SHA512: return EVP_sha512();
	default: return EVP_sha256();
	}
}

static enum smime_cipher
cipher_of(enum cfg_cipher c)
{
	switch (c) {
	case CFG_CIPHER_AES128_CBC: return SMIME_CIPHER_AES128_CBC;
	case CFG_CIPHER_AES256_CBC: return SMIME_CIPHER_AES256_CBC;
	case CFG_CIPHER_AES128_GCM: return SMIME_CIPHER_AES128_GCM;
	case CFG_CIPHER_AES256_GCM: return SMIME_CIPHER_AES256_GCM;
	default: return SMIME_CIPHER_AUTO;
	}
}

/* The state of one outbound transformation, freed in one place. */
struct outbound {
	char from[320];
	struct rcpt_key *rk;
	size_t nrk;
	struct pol_msg_rcpt *pr;
	struct mime_headers outer, content, newhdrs;
	struct buf entity, der, newbody, inner;
	STACK_OF(X509) *rcpt_certs;
};

static void
outbound_free(struct outbound *o)
{
	for (size_t i = 0; i < o->nrk; i++)
		X509_free(o->rk[i].cert);
	free(o->rk);
	free(o->pr);
	mime_headers_free(&o->outer);
	mime_headers_free(&o->content);
	mime_headers_free(&o->newhdrs);
	buf_free(&o->entity);
	buf_free(&o->der);
	buf_free(&o->newbody);
	buf_free(&o->inner);
	sk_X509_free(o->rcpt_certs);
}

/* Sign the canonical entity into newhdrs/newbody. */
static sm_status
outbound_sign(struct outbound *o, const struct cfg_outbound *set,
    const struct keystore_key *k, char *err, size_t errlen)
{
	struct smime_key sk = { k->cert, k->pkey, k->chain };
	const EVP_MD *md = digest_md(set->digest);
	bool detached = set->sign_format == CFG_SIGN_DETACHED;
	sm_status st;

	buf_reset(&o->der);
	st = smime_sign(&sk, md, detached, o->entity.data, o->entity.len, &o->der, err, errlen);
	if (st != SM_OK)
		return st;
	if (detached)
		return mime_build_signed(o->entity.data, o->entity.len, o->der.data, o->der.len,
		    smime_micalg(md), &o->newhdrs, &o->newbody);
	return mime_build_pkcs7(o->der.data, o->der.len, "signed-data", &o->newhdrs, &o->newbody);
}

sm_status
gw_outbound(const struct gw_env *env, const struct gw_msg *m, struct gw_result *out)
{
	const struct config *cfg = env->cfg;
	struct outbound o;
	struct pol_plan plan;
	const char *subject = mime_headers_get(m->hdrs, "Subject");
	const char *tag_at = NULL;
	const struct keystore_key *signer = NULL;
	bool triggered = false, by_header = false, sign, encrypt;
	const char *trigger_what = NULL;
	enum mime_smime_kind existing;
	char err[256] = "", sender[320] = "";
	struct smime_choice choice = { SMIME_CIPHER_AUTO, false, false, "" };
	bool sender_copy = false;
	size_t nenc = 0;
	sm_status st;

	memset(out, 0, sizeof(*out));
	memset(&o, 0, sizeof(o));
	memset(&plan, 0, sizeof(plan));
	out->verdict = POL_ACCEPT;

	addr_normalize(m->sender, sender, sizeof(sender));
	{
		const char *from = mime_headers_get(m->hdrs, "From");
		if (from == NULL || addr_from_header(from, o.from, sizeof(o.from)) != SM_OK)
			snprintf(o.from, sizeof(o.from), "%s", sender);
	}

	/* The sender's own request for encryption. */
	if (cfg->outbound.subject_tag[0] &&
	    (tag_at = subject_tag_at(subject, cfg->outbound.subject_tag)) != NULL) {
		triggered = true;
		trigger_what = "requested with the subject tag";
	}
	if (cfg->outbound.trigger_header[0]) {
		const char *v = mime_headers_get(m->hdrs, cfg->outbound.trigger_header);
		if (v && trigger_value_yes(v)) {
			triggered = by_header = true;
			if (trigger_what == NULL)
				trigger_what = "requested with the trigger header";
		}
	}

	/* Look every recipient up once. */
	o.rk = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*o.rk));
	o.pr = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*o.pr));
	if (o.rk == NULL || o.pr == NULL) {
		st = SM_ERR_NOMEM;
		goto fail;
	}
	for (size_t i = 0; i < m->nrcpts; i++) {
		char r[320];

		if (addr_normalize(m->rcpts[i], r, sizeof(r)) != SM_OK)
			snprintf(r, sizeof(r), "%s", m->rcpts[i]);
		if ((st = lookup_rcpt(env, r, &o.rk[i])) != SM_OK)
			goto fail;
		o.nrk++;
		o.pr[i].addr = o.rk[i].addr;
		o.pr[i].lk.has_cert = o.rk[i].cert != NULL;
		o.pr[i].lk.key_type = o.rk[i].cert ? pol_key_of(o.rk[i].cert) : POL_KEY_NONE;
		o.pr[i].lk.reason = o.rk[i].reason;
	}
	if ((st = policy_plan(cfg, sender, o.pr, m->nrcpts, triggered, trigger_what, &plan)) != SM_OK)
		goto fail;
	if (plan.verdict != POL_ACCEPT) {
		out->verdict = plan.verdict;
		out->reply = plan.reply;
		memset(&plan.reply, 0, sizeof(plan.reply));
		buf_printf(&out->summary, "%s", plan.verdict == POL_REJECT ? "rejected" : "deferred");
		for (size_t i = 0, k = 0; i < m->nrcpts; i++)
			if (!o.pr[i].lk.has_cert)
				buf_printf(&out->summary, "%s %s: %s", k++ ? "," : "", o.pr[i].addr,
				    o.pr[i].lk.reason);
		goto done;
	}
	sign = plan.sign;
	encrypt = plan.encrypt;

	existing = outbound_existing_smime(m->hdrs, m->body, m->body_len);
	if (existing == MIME_SMIME_ENVELOPED) {
		buf_printf(&out->summary, "outbound already encrypted by the client, unchanged rcpts=%zu",
		    m->nrcpts);
		goto done;
	}
	if (existing != MIME_SMIME_NONE)
		sign = false; /* signed by the client: never wrap a signature again */

	if (sign) {
		if (keystore_signer(env->ks, o.from, clock_now(), &signer, NULL) != SM_OK)
			signer = NULL;
		if (signer == NULL) {
			log_qid(LOG_NOTICE, m->qid, "no signing key for %s: not signed", o.from);
			sign = false;
		}
	}
	if (!sign && !encrypt) {
		buf_printf(&out->summary, "outbound unchanged (%s) rcpts=%zu",
		    existing != MIME_SMIME_NONE ? "signed by the client" : "nothing to do", m->nrcpts);
		goto done;
	}

	/* The protected entity: Content-* headers and the body, canonical
	 * when we sign it. A signature the client made covers the bytes as
	 * they are: re-encoding anything would break it, and inside the
	 * envelope no relay can touch 8bit, so it goes in unchanged. */
	if ((st = mime_split_headers(m->hdrs, &o.outer, &o.content)) == SM_OK)
		st = existing != MIME_SMIME_NONE ?
		    mime_entity_serialize(&o.content, m->body, m->body_len, &o.entity) :
		    mime_canonicalize(&o.content, m->body, m->body_len, NULL, &o.entity);
	if (st != SM_OK) {
		snprintf(err, sizeof(err), "cannot canonicalise the message: %s", sm_strstatus(st));
		goto crypto_fail;
	}

	if (sign && (st = outbound_sign(&o, &plan.o, signer, err, sizeof(err))) != SM_OK)
		goto crypto_fail;
	if (sign)
		buf_free(&o.entity); /* now inside newbody: hold one copy, not two */

	if (encrypt) {
		caps_t *caps = calloc(m->nrcpts + 1, sizeof(*caps));
		int *kt = calloc(m->nrcpts + 1, sizeof(*kt));

		o.rcpt_certs = sk_X509_new_null();
		if (caps == NULL || kt == NULL || o.rcpt_certs == NULL) {
			free(caps);
			free(kt);
			st = SM_ERR_NOMEM;
			goto fail;
		}
		for (size_t i = 0; i < m->nrcpts; i++) {
			if (o.rk[i].cert == NULL)
				continue;
			sk_X509_push(o.rcpt_certs, o.rk[i].cert);
			caps[nenc] = o.rk[i].caps;
			kt[nenc++] = key_type_of(o.rk[i].cert);
		}
		/* The sender's copy joins only an envelope of its own key type. */
		if (plan.o.encrypt_to_sender) {
			const struct keystore_key *own = signer;
			if (own == NULL &&
			    keystore_signer(env->ks, o.from, clock_now(), &own, NULL) != SM_OK)
				own = NULL;
			if (own && nenc > 0 && key_type_of(own->cert) == kt[0]) {
				sk_X509_push(o.rcpt_certs, own->cert);
				sender_copy = true;
			} else if (own) {
				log_qid(LOG_INFO, m->qid,
				    "sender copy left out: %s key type differs from the recipients'", o.from);
			}
		}
		st = nenc ? smime_choose(caps, kt, nenc, cipher_of(plan.o.cipher),
		    plan.o.rsa_padding == CFG_PADDING_OAEP, &choice) : SM_ERR_NOKEY;
		free(caps);
		free(kt);
		if (st != SM_OK) {
			snprintf(err, sizeof(err), "no usable recipient certificate");
			goto crypto_fail;
		}
		if (choice.mixed_key_types) {
			st = SM_ERR_UNSUPPORTED;
			snprintf(err, sizeof(err), "recipients mix EC and RSA keys");
			goto crypto_fail;
		}
		if (sign) {
			st = mime_entity_serialize(&o.newhdrs, o.newbody.data, o.newbody.len, &o.inner);
			buf_free(&o.newbody);
		} else {
			/* the canonical entity itself is what gets encrypted */
			o.inner = o.entity;
			memset(&o.entity, 0, sizeof(o.entity));
		}
		if (st != SM_OK)
			goto crypto_fail;
		buf_reset(&o.der);
		if ((st = smime_encrypt(o.rcpt_certs, choice.cipher, choice.oaep, o.inner.data,
			 o.inner.len, &o.der, err, sizeof(err))) != SM_OK)
			goto crypto_fail;
		buf_free(&o.inner);
		mime_headers_free(&o.newhdrs);
		buf_free(&o.newbody);
		if ((st = mime_build_pkcs7(o.der.data, o.der.len, smime_cipher_smime_type(choice.cipher),
			 &o.newhdrs, &o.newbody)) != SM_OK)
			goto crypto_fail;
	}

	/* Header edits: old Content-* out, new ones in, MIME-Version, the
	 * trigger header removed and the tag taken out of the Subject. */
	if ((st = edit_delete_where(out, m->hdrs, is_content_header, NULL)) != SM_OK)
		goto fail;
	if (by_header &&
	    (st = edit_delete_where(out, m->hdrs, is_named, cfg->outbound.trigger_header)) != SM_OK)
		goto fail;
	if (tag_at && encrypt) {
		struct buf s = BUF_INIT;
		size_t tl = strlen(cfg->outbound.subject_tag);
		const char *rest = tag_at + tl;
		char *u;

		/* "Re: [encrypt] plans" becomes "Re: plans", not "Re:  plans":
		 * the tag takes the whitespace after it along. */
		if (tag_at == subject || tag_at[-1] == ' ' || tag_at[-1] == '\t')
			while (*rest == ' ' || *rest == '\t')
				rest++;
		buf_append(&s, subject, (size_t)(tag_at - subject));
		buf_append_str(&s, rest);
		u = mime_header_unfold(buf_cstr(&s));
		buf_free(&s);
		if (u == NULL || (st = edit_add(out, GW_HDR_CHANGE, "Subject", 1, u)) != SM_OK) {
			free(u);
			st = SM_ERR_NOMEM;
			goto fail;
		}
		free(u);
	}
	if (mime_headers_get(m->hdrs, "MIME-Version") == NULL &&
	    (st = edit_add(out, GW_HDR_ADD, "MIME-Version", 0, "1.0")) != SM_OK)
		goto fail;
	for (size_t i = 0; i < o.newhdrs.n; i++) {
		char *v = mime_header_unfold(o.newhdrs.v[i].value);
		if (v == NULL || (st = edit_add(out, GW_HDR_ADD, o.newhdrs.v[i].name, 0, v)) != SM_OK) {
			free(v);
			st = SM_ERR_NOMEM;
			goto fail;
		}
		free(v);
	}
	out->replace_body = true;
	out->body = o.newbody;
	memset(&o.newbody, 0, sizeof(o.newbody));
	buf_printf(&out->summary, "outbound %s%s%s", sign ? "signed" : "",
	    sign && encrypt ? "+" : "", encrypt ? "encrypted" : "");
	if (encrypt)
		buf_printf(&out->summary, " cipher=%s%s", smime_cipher_name(choice.cipher),
		    choice.oaep ? " oaep" : "");
	buf_printf(&out->summary, " rcpts=%zu", m->nrcpts);
	if (encrypt && !sender_copy && plan.o.encrypt_to_sender)
		buf_printf(&out->summary, " sender-copy=no");
	if (triggered)
		buf_printf(&out->summary, " requested-by=%s", by_header ? "header" : "subject");
	goto done;

crypto_fail:
	/* Fail closed: encryption needed → temporary failure, never plaintext.
	 * A signing failure follows on_error. */
	if (encrypt || plan.o.on_error == CFG_ON_ERROR_TEMPFAIL) {
		char why[400];
		snprintf(why, sizeof(why), "%s: %s", encrypt ? "encryption" : "signing",
		    err[0] ? err : sm_strstatus(st));
		gw_result_free(out);
		tempfail(out, m->qid, why);
		st = SM_OK;
		goto done;
	}
	log_qid(LOG_WARNING, m->qid, "signing failed (%s); sent unsigned (on_error = accept)",
	    err[0] ? err : sm_strstatus(st));
	gw_result_free(out);
	out->verdict = POL_ACCEPT;
	buf_printf(&out->summary, "outbound unsigned after a signing failure rcpts=%zu", m->nrcpts);
	st = SM_OK;
	goto done;

fail:
	outbound_free(&o);
	policy_plan_free(&plan);
	return st;
done:
	outbound_free(&o);
	policy_plan_free(&plan);
	return SM_OK;
}

/* ------------------------------------------------------------------ */
/* Inbound                                                              */
/* ------------------------------------------------------------------ */

/* Does this Authentication-Results header claim our authserv-id? */
static bool
is_our_results(const struct mime_header *h, const void *arg)
{
	const char *id = arg;
	size_t idl = strlen(id);
	char *v;
	const char *p;
	bool ours;

	if (strcasecmp(h->name, "Authentication-Results") != 0)
		return false;
	if ((v = mime_header_unfold(h->value)) == NULL)
		return true; /* cannot read it: cannot trust it either */
	p = v;
	while (*p == ' ' || *p == '\t')
		p++;
	ours = strncasecmp(p, id, idl) == 0 &&
	    (p[idl] == ';' || p[idl] == ' ' || p[idl] == '\t' || p[idl] == '(' || p[idl] == '\0');
	free(v);
	return ours;
}

static bool
is_decrypted_marker(const struct mime_header *h, const void *arg)
{
	(void)arg;
	return strcasecmp(h->name, "X-SMIME-Decrypted") == 0;
}

/* Bytes with bare LF turned into CRLF (detached signatures cover the
 * canonical form); returns the input itself when it already is. */
static sm_status
crlf_view(const unsigned char *p, size_t n, struct buf *tmp, const unsigned char **out,
    size_t *outlen)
{
	bool bare = false;
	sm_status st = SM_OK;

	for (size_t i = 0; i < n && !bare; i++)
		bare = p[i] == '\n' && (i == 0 || p[i - 1] != '\r');
	if (!bare) {
		*out = p;
		*outlen = n;
		return SM_OK;
	}
	for (size_t i = 0; i < n && st == SM_OK; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			st = buf_append_char(tmp, '\r');
		if (st == SM_OK)
			st = buf_append_char(tmp, (char)p[i]);
	}
	*out = tmp->data;
	*outlen = tmp->len;
	return st;
}

void
gw_report_free(struct gw_report *r)
{
	if (r == NULL)
		return;
	mime_entity_free(r->root);
	mime_entity_free(r->inner);
	buf_free(&r->der);
	buf_free(&r->content);
	buf_free(&r->tmp);
	buf_free(&r->plain);
	if (r->have_vr)
		smime_verify_result_free(&r->vr);
	memset(r, 0, sizeof(*r));
}

/* Verify the signature of entity e (detached or opaque). Returns SM_OK
 * with r->vr filled, SM_ERR_NOTFOUND when e is not signed. */
static sm_status
verify_entity(const struct gw_env *env, struct gw_report *r, const struct mime_entity *e)
{
	enum mime_smime_kind k = mime_smime_kind(e);
	const unsigned char *c;
	size_t clen;
	sm_status st;

	buf_reset(&r->der);
	if (k == MIME_SMIME_SIGNED_DETACHED) {
		r->signed_kind = k;
		if ((st = mime_decode_body(e->parts[1], &r->der)) != SM_OK) {
			snprintf(r->what, sizeof(r->what), "signature part: %s", sm_strstatus(st));
			return SM_ERR_PARSE;
		}
		buf_reset(&r->tmp);
		if ((st = crlf_view(e->parts[0]->raw, e->parts[0]->raw_len, &r->tmp, &c, &clen)) != SM_OK)
			return st;
		st = smime_verify(r->der.data, r->der.len, c, clen, env_store(env),
		    env->cfg->trust_allow_self_signed, &r->vr, NULL);
	} else if (k == MIME_SMIME_SIGNED_OPAQUE || k == MIME_SMIME_PKCS7_UNKNOWN) {
		if ((st = mime_decode_body(e, &r->der)) != SM_OK) {
			snprintf(r->what, sizeof(r->what), "PKCS#7 body: %s", sm_strstatus(st));
			return SM_ERR_PARSE;
		}
		switch (smime_content_type(r->der.data, r->der.len)) {
		case SMIME_CT_SIGNED:
			break;
		case SMIME_CT_INVALID:
			/* Garbage is malformed S/MIME, not "unsigned inside". */
			snprintf(r->what, sizeof(r->what), "PKCS#7 body: not a CMS structure");
			return SM_ERR_PARSE;
		default:
			return SM_ERR_NOTFOUND;
		}
		r->signed_kind = MIME_SMIME_SIGNED_OPAQUE;
		buf_reset(&r->content);
		st = smime_verify(r->der.data, r->der.len, NULL, 0, env_store(env),
		    env->cfg->trust_allow_self_signed, &r->vr, &r->content);
	} else {
		return SM_ERR_NOTFOUND;
	}
	r->have_vr = true;
	if (st == SM_ERR_PARSE)
		snprintf(r->what, sizeof(r->what), "%s", r->vr.reason);
	return st;
}

/* Decrypt a whole-message envelope (its DER in r->der) with every key we
 * hold: current, renewed and expired ones alike. */
static sm_status
decrypt_der(const struct gw_env *env, struct gw_report *r)
{
	const struct keystore_key *keys = NULL;
	size_t n = 0;
	char err[256] = "";
	sm_status st;

	if (env->ks)
		keystore_decrypt_keys(env->ks, &keys, &n);
	if (n == 0) {
		snprintf(r->what, sizeof(r->what), "no private keys to decrypt with");
		return SM_ERR_NOKEY;
	}
	/* struct keystore_key and struct smime_key have the same layout. */
	st = smime_decrypt(r->der.data, r->der.len, (const struct smime_key *)keys, n, &r->plain,
	    err, sizeof(err));
	if (st != SM_OK) {
		snprintf(r->what, sizeof(r->what), "%s", err[0] ? err : sm_strstatus(st));
		return st;
	}
	if ((st = mime_parse(r->plain.data, r->plain.len, NULL, &r->inner)) != SM_OK) {
		snprintf(r->what, sizeof(r->what), "decrypted content is not MIME: %s",
		    sm_strstatus(st));
		return st;
	}
	r->decrypted = true;
	return SM_OK;
}

static enum harvest_chain
chain_of(enum smime_verify_status s)
{
	switch (s) {
	case SMIME_VERIFY_OK: return HARVEST_CHAIN_TRUSTED;
	case SMIME_VERIFY_EXPIRED:
	case SMIME_VERIFY_NOT_YET_VALID: return HARVEST_CHAIN_EXPIRED;
	case SMIME_VERIFY_SELF_SIGNED: return HARVEST_CHAIN_SELF_SIGNED;
	default: return HARVEST_CHAIN_UNTRUSTED;
	}
}

/* Judge the harvest (never stores). */
static sm_status
judge(const struct gw_env *env, const struct mime_headers *hdrs, struct gw_report *r)
{
	const struct config *cfg = env->cfg;
	const char *fromh = mime_headers_get(hdrs, "From");
	struct harvest_input hi;

	if (fromh == NULL || addr_from_header(fromh, r->from, sizeof(r->from)) != SM_OK) {
		r->from[0] = '\0';
		snprintf(r->harvest_note, sizeof(r->harvest_note), "no From address");
		return SM_OK;
	}
	if (config_is_internal(cfg, r->from)) {
		snprintf(r->harvest_note, sizeof(r->harvest_note),
		    "%s is internal: never harvested from inbound mail", r->from);
		return SM_OK;
	}
	memset(&hi, 0, sizeof(hi));
	hi.signer = r->vr.signer;
	hi.certs = r->vr.certs;
	hi.signature_ok = r->vr.signature_ok;
	hi.chain = chain_of(r->vr.chain_status);
	hi.allow_self_signed = cfg->trust_allow_self_signed;
	hi.digest_nid = r->vr.digest_nid;
	hi.from = r->from;
	hi.enc_pref = r->vr.enc_pref;
	hi.trust = env_store(env);
	hi.now = clock_now();
	if (hi.signer == NULL) {
		snprintf(r->harvest_note, sizeof(r->harvest_note), "no signer certificate");
		return SM_OK;
	}
	r->judged = true;
	return harvest_judge(&hi, &r->hv);
}

sm_status
gw_examine(const struct gw_env *env, const struct mime_headers *hdrs, const unsigned char *body,
    size_t len, bool decrypt, struct gw_report *r)
{
	const struct mime_entity *signed_e;
	enum smime_content_type ct;
	sm_status st;

	memset(r, 0, sizeof(*r));
	st = mime_parse_message(hdrs, body, len, NULL, &r->root);
	if (st != SM_OK) {
		if (st == SM_ERR_NOMEM)
			return st;
		r->malformed = true;
		snprintf(r->what, sizeof(r->what), "malformed MIME: %s", sm_strstatus(st));
		return SM_OK;
	}
	r->kind = mime_smime_kind(r->root);
	signed_e = r->root;
	if (r->kind == MIME_SMIME_NONE || r->kind == MIME_SMIME_CERTS_ONLY)
		return SM_OK;
	if (r->kind == MIME_SMIME_ENVELOPED || r->kind == MIME_SMIME_AUTH_ENVELOPED ||
	    r->kind == MIME_SMIME_PKCS7_UNKNOWN) {
		/* Only the whole message's envelope is ever opened (EFAIL):
		 * an encrypted part inside a multipart is not S/MIME here. */
		if ((st = mime_decode_body(r->root, &r->der)) != SM_OK) {
			r->malformed = true;
			snprintf(r->what, sizeof(r->what), "PKCS#7 body: %s", sm_strstatus(st));
			return SM_OK;
		}
		ct = smime_content_type(r->der.data, r->der.len);
		if (ct == SMIME_CT_ENVELOPED || ct == SMIME_CT_AUTH_ENVELOPED) {
			r->encrypted = true;
			if (!decrypt)
				return SM_OK;
			st = decrypt_der(env, r);
			if (st == SM_ERR_NOMEM)
				return st;
			if (st != SM_OK) {
				r->decrypt_failed = true;
				return SM_OK;
			}
			signed_e = r->inner;
		} else if (ct == SMIME_CT_INVALID) {
			r->malformed = true;
			snprintf(r->what, sizeof(r->what), "not a CMS structure");
			return SM_OK;
		}
	}
	st = verify_entity(env, r, signed_e);
	if (st == SM_ERR_NOTFOUND)
		return SM_OK;
	if (st == SM_ERR_PARSE) {
		r->malformed = true;
		return SM_OK;
	}
	if (st != SM_OK)
		return st;
	r->is_signed = true;
	if (r->vr.signature_ok)
		return judge(env, hdrs, r);
	return SM_OK;
}

/* RFC 7281 result for a verification. */
static const char *
ar_result(const struct smime_verify_result *vr)
{
	if (vr->status == SMIME_VERIFY_OK)
		return "pass";
	if (!vr->signature_ok) {
		if (vr->status == SMIME_VERIFY_MALFORMED ||
		    vr->status == SMIME_VERIFY_UNSUPPORTED_ALGORITHM ||
		    vr->status == SMIME_VERIFY_NO_SIGNER)
			return "permerror";
		return "fail";
	}
	return "policy"; /* valid signature, certificate not trusted now */
}

/* Append a quoted-string value (RFC 5322) without control characters. */
static void
ar_quoted(struct buf *b, const char *s)
{
	buf_append_char(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			continue;
		if (c == '"' || c == '\\')
			buf_append_char(b, '\\');
		buf_append_char(b, (char)c);
	}
	buf_append_char(b, '"');
}

static bool
ar_token_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strchr("()<>@,;:\\\"/[]?=", *s))
			if (*s != '@' && *s != '.')
				return false;
	return true;
}

static void
ar_signer_props(struct buf *b, X509 *signer)
{
	char **addrs = NULL;
	size_t n = 0;
	char *serial = NULL, *issuer = NULL;

	if (signer == NULL)
		return;
	if (x509u_addresses(signer, &addrs, &n, NULL) == SM_OK && n > 0 && ar_token_ok(addrs[0]))
		buf_printf(b, " body.smime-identifier=%s", addrs[0]);
	x509u_strv_free(addrs, n);
	if (x509u_serial_hex(signer, &serial) == SM_OK)
		buf_printf(b, " body.smime-serial=%s", serial);
	if (x509u_name_text(X509_get_issuer_name(signer), &issuer) == SM_OK) {
		buf_append_str(b, " body.smime-issuer=");
		ar_quoted(b, issuer);
	}
	free(serial);
	free(issuer);
}

/* Store what the harvest verdict allows; appends to the summary. */
static sm_status
harvest_store(const struct gw_env *env, const char *qid, const struct gw_report *r,
    struct buf *summary)
{
	enum keycache_outcome oc;
	char fp[X509U_FP_SIZE] = "", old_fp[X509U_FP_SIZE] = "";
	sm_status st;

	if (!r->judged) {
		buf_printf(summary, " not harvested: %s", r->harvest_note);
		return SM_OK;
	}
	if (!r->hv.harvest) {
		buf_printf(summary, " not harvested %s: %s", r->from, r->hv.reason);
		return SM_OK;
	}
	if ((st = keycache_store(env->kc, r->hv.cert, r->vr.certs, r->from, r->vr.caps,
		 r->hv.enc_pref, KC_SRC_HARVESTED, &oc, old_fp)) != SM_OK)
		return st;
	x509u_fingerprint(r->hv.cert, fp);
	buf_printf(summary, " harvested %s sha256=%s", r->from, fp);
	if (oc == KC_SUPERSEDED_OLD)
		log_qid(LOG_NOTICE, qid, "key change for %s: sha256=%s replaces sha256=%s", r->from,
		    fp, old_fp);
	else if (oc == KC_RENEWED_SAME_KEY)
		log_qid(LOG_INFO, qid, "certificate renewed for %s (same key): sha256=%s replaces sha256=%s",
		    r->from, fp, old_fp);
	return SM_OK;
}

/* Replace the message by the decrypted entity (decrypt = "deliver"). */
static sm_status
deliver_decrypted(const struct gw_msg *m, const struct gw_report *r, struct gw_result *out)
{
	struct mime_headers outer = MIME_HEADERS_INIT, content = MIME_HEADERS_INIT;
	struct buf canon = BUF_INIT;
	const unsigned char *body;
	sm_status st;

	/* Fresh canonical MIME from the decrypted entity: nothing of the
	 * original envelope's bytes survives around it (EFAIL). */
	if ((st = mime_split_headers(&r->inner->hdrs, &outer, &content)) != SM_OK ||
	    (st = mime_canonicalize(&content, r->inner->body, r->inner->body_len, NULL, &canon)) != SM_OK)
		goto out;
	body = (const unsigned char *)strstr((const char *)canon.data, "\r\n\r\n");
	if (body == NULL) {
		st = SM_ERR_PARSE;
		goto out;
	}
	if ((st = edit_delete_where(out, m->hdrs, is_content_header, NULL)) != SM_OK)
		goto out;
	for (size_t i = 0; i < content.n; i++) {
		char *v = mime_header_unfold(content.v[i].value);
		st = v ? edit_add(out, GW_HDR_ADD, content.v[i].name, 0, v) : SM_ERR_NOMEM;
		free(v);
		if (st != SM_OK)
			goto out;
	}
	body += 4;
	buf_reset(&out->body);
	st = buf_append(&out->body, body, canon.len - (size_t)(body - canon.data));
	out->replace_body = st == SM_OK;
out:
	mime_headers_free(&outer);
	mime_headers_free(&content);
	buf_free(&canon);
	return st;
}

const char *
gw_report_result(const struct gw_report *r)
{
	if (r->is_signed)
		return ar_result(&r->vr);
	if (r->malformed && r->kind != MIME_SMIME_NONE)
		return "permerror";
	return NULL;
}

sm_status
gw_inbound(const struct gw_env *env, const struct gw_msg *m, struct gw_result *out)
{
	const struct config *cfg = env->cfg;
	struct gw_report r;
	struct buf ar = BUF_INIT;
	const char *result;
	sm_status st;

	memset(out, 0, sizeof(*out));
	out->verdict = POL_ACCEPT;

	/* Results claiming our authserv-id, and decryption markers, can only
	 * be forgeries: we add ours below. */
	if ((st = edit_delete_where(out, m->hdrs, is_our_results, cfg->authserv_id)) != SM_OK ||
	    (st = edit_delete_where(out, m->hdrs, is_decrypted_marker, NULL)) != SM_OK)
		return st;
	st = gw_examine(env, m->hdrs, m->body, m->body_len,
	    cfg->inbound_decrypt != CFG_DECRYPT_OFF, &r);
	if (st != SM_OK) {
		gw_report_free(&r);
		return st;
	}
	result = gw_report_result(&r);

	if (r.malformed) {
		buf_printf(&out->summary, "inbound %s, passed untouched", r.what);
	} else if (r.kind == MIME_SMIME_NONE) {
		buf_printf(&out->summary, "inbound unsigned");
	} else if (r.kind == MIME_SMIME_CERTS_ONLY) {
		buf_printf(&out->summary, "inbound certs-only message, nothing verified");
	} else if (r.encrypted && !r.decrypted) {
		buf_printf(&out->summary, "inbound encrypted, not decrypted: %s",
		    r.decrypt_failed ? r.what : "decrypt = off");
	} else if (!r.is_signed) {
		buf_printf(&out->summary, "inbound %s, unsigned inside",
		    r.decrypted ? "decrypted" : "S/MIME");
	} else {
		buf_printf(&out->summary, "inbound%s smime=%s", r.decrypted ? " decrypted" : "", result);
		if (r.vr.status != SMIME_VERIFY_OK)
			buf_printf(&out->summary, " (%s)", r.vr.reason);
		if (r.vr.signature_ok && cfg->inbound_harvest &&
		    (st = harvest_store(env, m->qid, &r, &out->summary)) != SM_OK) {
			log_qid(LOG_ERR, m->qid, "harvest failed: %s", sm_strstatus(st));
			buf_printf(&out->summary, " harvest failed: %s", sm_strstatus(st));
		}
	}

	if (r.decrypted && cfg->inbound_decrypt == CFG_DECRYPT_DELIVER) {
		if ((st = deliver_decrypted(m, &r, out)) != SM_OK) {
			/* Never partial plaintext: the original goes through. */
			out->replace_body = false;
			buf_free(&out->body);
			buf_printf(&out->summary, " delivered encrypted: %s", sm_strstatus(st));
		} else {
			char mark[256];
			snprintf(mark, sizeof(mark), "%s; decrypted by smime-milter", cfg->authserv_id);
			if ((st = edit_add(out, GW_HDR_ADD, "X-SMIME-Decrypted", 0, mark)) != SM_OK)
				goto fail;
			buf_printf(&out->summary, " delivered decrypted");
		}
	}

	if (cfg->inbound_results_header && result) {
		buf_printf(&ar, "%s; smime=%s", cfg->authserv_id, result);
		if (r.have_vr && r.vr.status != SMIME_VERIFY_OK) {
			buf_append_str(&ar, " (");
			for (const char *p = r.vr.reason; *p; p++)
				if (*p != '(' && *p != ')' && *p != '\\' && (unsigned char)*p >= ' ')
					buf_append_char(&ar, *p);
			buf_append_str(&ar, ")");
		}
		if (r.have_vr)
			ar_signer_props(&ar, r.vr.signer);
		if ((st = edit_add(out, GW_HDR_INSERT_TOP, "Authentication-Results", 0, buf_cstr(&ar))) != SM_OK)
			goto fail;
	}
	buf_free(&ar);
	gw_report_free(&r);
	return SM_OK;
fail:
	buf_free(&ar);
	gw_report_free(&r);
	return st;
}
