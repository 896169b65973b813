/*
 * gw_inbound.c — the inbound pipeline: forged results removed → S/MIME
 * structure (walk) → verify → harvest → Authentication-Results.
 *
 * gw_examine() describes a message (gateway.h); gw_inbound() acts on the
 * description. Opening an envelope and delivering its content are
 * gw_decrypt.c's. A detached signature's content streams from the body
 * (bodyio.h): a spooled body is never copied.
 */
#include "gateway.h"
#include "gateway_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "address.h"
#include "bodyio.h"
#include "cmsscan.h"
#include "cmsstrip.h"
#include "clock.h"
#include "harvest.h"
#include "keycache.h"
#include "log.h"
#include "metrics.h"
#include "revstore.h"
#include "revworker.h"
#include "smime.h"
#include "x509util.h"

/* Is the header field called want? Whitespace before the colon (RFC 5322
 * obsolete syntax) does not make it another field. */
static bool
field_is(const char *name, const char *want)
{
	size_t n = strlen(want);

	if (strncasecmp(name, want, n) != 0)
		return false;
	for (name += n; *name == ' ' || *name == '\t'; name++)
		;
	return *name == '\0';
}

/* Skip white space and (nested) comments: RFC 5322 CFWS. An unterminated
 * comment swallows the rest, as it does for any parser. */
static const char *
skip_cfws(const char *p)
{
	int depth = 0;

	for (; *p != '\0'; p++) {
		if (depth > 0) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
		} else if (*p == '(') {
			depth = 1;
		} else if (*p != ' ' && *p != '\t') {
			break;
		}
	}
	return p;
}

/* The authserv-id as a reader sees it, from p (after CFWS): a quoted string
 * unquoted (quoted pairs resolved, blanks at either end trimmed; without its
 * closing quote, up to the first ';'), or the token up to ';', blank or
 * comment; then one trailing dot (the DNS root) dropped. False when it does
 * not fit in n bytes. */
static bool
authserv_read(const char *p, char *out, size_t n)
{
	size_t len = 0, start = 0;
	bool quoted = *p == '"', closed = false;
	char *semi;

	for (p += quoted; *p != '\0'; p++) {
		if (quoted && *p == '"') {
			closed = true;
			break;
		}
		if (!quoted && (*p == ';' || *p == ' ' || *p == '\t' || *p == '('))
			break;
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		if (len + 1 >= n)
			return false;
		out[len++] = *p;
	}
	out[len] = '\0';
	if (quoted && !closed && (semi = strchr(out, ';')) != NULL)
		len = (size_t)(semi - out);
	while (len > 0 && (out[len - 1] == ' ' || out[len - 1] == '\t'))
		len--;
	while (start < len && (out[start] == ' ' || out[start] == '\t'))
		start++;
	if (len > start && out[len - 1] == '.')
		len--;
	out[len] = '\0';
	memmove(out, out + start, len - start + 1);
	return true;
}

/* Does this Authentication-Results header claim our authserv-id? Compared
 * as a reader compares it (authserv_read, any case); comments before the id
 * (RFC 8601 allows them) do not hide the claim. */
static bool
is_our_results(const struct mime_header *h, const void *arg)
{
	const char *id = arg;
	char theirs[256], ours[256];
	char *v;
	bool claim;

	if (!field_is(h->name, "Authentication-Results"))
		return false;
	if ((v = mime_header_unfold(h->value)) == NULL)
		return true; /* cannot read it: cannot trust it either */
	claim = authserv_read(skip_cfws(v), theirs, sizeof(theirs)) &&
	    authserv_read(id, ours, sizeof(ours)) && strcasecmp(theirs, ours) == 0;
	free(v);
	return claim;
}

static bool
is_decrypted_marker(const struct mime_header *h, const void *arg)
{
	(void)arg;
	return field_is(h->name, "X-SMIME-Decrypted");
}

/* Free a buffer that may have held plaintext, wiping it first. */
void
gw_buf_wipe_free(struct buf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->cap);
	buf_free(b);
}

void
gw_report_free(struct gw_report *r)
{
	if (r == NULL)
		return;
	mime_entity_free(r->root);
	mime_entity_free(r->inner);
	for (size_t i = 0; i < GW_MAX_SIGNATURES; i++) {
		mime_entity_free(r->ctree[i]);
		gw_buf_wipe_free(&r->ctext[i]);
		smime_verify_result_free(&r->sig[i].vr);
	}
	gw_buf_wipe_free(&r->content);
	gw_buf_wipe_free(&r->der);
	gw_buf_wipe_free(&r->tmp);
	gw_buf_wipe_free(&r->plain);
	buf_free(&r->envder);
	if (r->have_vr)
		smime_verify_result_free(&r->vr);
	if (r->have_outer)
		smime_verify_result_free(&r->outer.vr);
	memset(r, 0, sizeof(*r));
}

/* Note one layer in r->structure: "enveloped-data > signed-detached > …". */
static void
structure_add(struct gw_report *r, const char *name)
{
	size_t l = strlen(r->structure);

	if (l + 4 < sizeof(r->structure))
		snprintf(r->structure + l, sizeof(r->structure) - l, "%s%s", l ? " > " : "", name);
}

static void
structure_add_entity(struct gw_report *r, const struct mime_entity *e)
{
	char t[140];

	snprintf(t, sizeof(t), "%s/%s", e->ct.type ? e->ct.type : "?",
	    e->ct.subtype ? e->ct.subtype : "?");
	structure_add(r, t);
}

static bool
is_envelope_kind(enum mime_smime_kind k)
{
	return k == MIME_SMIME_ENVELOPED || k == MIME_SMIME_AUTH_ENVELOPED;
}

/* Is there an encrypted part somewhere below e (never e itself)? It stays
 * closed: decrypting it would merge its plaintext with whatever the sender
 * of the multipart put around it (EFAIL). */
static bool
has_envelope_part(const struct mime_entity *e)
{
	for (size_t i = 0; i < e->nparts; i++) {
		enum mime_smime_kind k = mime_smime_kind(e->parts[i]);
		bool env = is_envelope_kind(k);

		if (k == MIME_SMIME_PKCS7_UNKNOWN) {
			/* a .p7m attachment: an envelope only if the CMS says so */
			struct buf der = BUF_INIT;
			enum smime_content_type ct = SMIME_CT_INVALID;

			if (mime_decode_body(e->parts[i], &der) == SM_OK)
				ct = smime_content_type(der.data, der.len);
			env = ct == SMIME_CT_ENVELOPED || ct == SMIME_CT_AUTH_ENVELOPED;
			buf_free(&der);
		}
		if (env || has_envelope_part(e->parts[i]))
			return true;
	}
	return false;
}

/* The configured bounds on one signature's work. */
static const struct smime_limits *
verify_limits(const struct gw_env *env, struct smime_limits *lim)
{
	lim->max_signers = (size_t)env->cfg->max_signers;
	lim->max_digests = (size_t)env->cfg->max_digest_algorithms;
	lim->max_certs = (size_t)env->cfg->max_certs;
	return lim;
}

/* Has this message used up limits.inbound_cpu_ms? Then it is judged no
 * further: r->over_budget, and r->what says so. */
static bool
budget_spent(const struct gw_env *env, struct gw_report *r)
{
	uint64_t used = clock_cpu_ms() - r->cpu_start;

	if (r->over_budget)
		return true;
	if (env->cfg->inbound_cpu_ms == 0 || used <= env->cfg->inbound_cpu_ms)
		return false;
	r->over_budget = true;
	snprintf(r->what, sizeof(r->what), "CPU budget of %llu ms spent after %llu ms",
	    (unsigned long long)env->cfg->inbound_cpu_ms, (unsigned long long)used);
	return true;
}

/* mime_decode_body() of e into out; a base64 body in a file mapping is
 * decoded in pieces with its pages given back behind (bodyio.h), any
 * other one's pages after: a signature part of tens of megabytes (a
 * certificate bag) costs its decoded size, not that plus its own. */
static sm_status
decode_paged(const struct mime_entity *e, struct buf *out)
{
	sm_status st;

	if (strcmp(e->cte, "base64") == 0)
		return bodyio_b64_decode(e->body, e->body_len, out);
	st = mime_decode_body(e, out);
	bodyio_drop(e->body, e->body_len);
	return st;
}

/* Verify a detached signature (multipart/signed e) into slot s. The
 * signed part streams through the digests in its canonical form (bare LF
 * made CRLF on the way), never copied; the pages of a spooled body are
 * given back behind the reader (bodyio.h). SM_OK with s->vr holding a
 * verdict; SM_ERR_PARSE (r->what says why) when the signature cannot even
 * be read. */
static sm_status
verify_detached(const struct gw_env *env, struct gw_report *r, struct gw_sig *s,
    const struct mime_entity *e)
{
	struct smime_limits lim;
	BIO *content;
	uint64_t t0;
	sm_status st;

	s->kind = MIME_SMIME_SIGNED_DETACHED;
	buf_reset(&r->der);
	if ((st = decode_paged(e->parts[1], &r->der)) != SM_OK) {
		if (st == SM_ERR_NOMEM)
			return st;
		snprintf(r->what, sizeof(r->what), "signature part: %s", sm_strstatus(st));
		return SM_ERR_PARSE;
	}
	if ((content = bodyio_crlf_bio(e->parts[0]->raw, e->parts[0]->raw_len, true)) == NULL)
		return SM_ERR_NOMEM;
	t0 = metrics_now();
	st = smime_verify_stream(r->der.data, r->der.len, content, gw_env_store(env),
	    env->cfg->trust_allow_self_signed, verify_limits(env, &lim), &s->vr);
	metrics_observe(METRICS_STAGE_VERIFY, t0);
	BIO_free(content);
	s->verified = st == SM_OK;
	if (st == SM_ERR_PARSE)
		snprintf(r->what, sizeof(r->what), "%s", s->vr.reason);
	return st;
}

/* Would the pre-parse bounds (cmsscan.h) refuse der unread? */
static bool
over_limits(const struct gw_env *env, const unsigned char *der, size_t n)
{
	struct cmsscan_limits cl = { (size_t)env->cfg->max_digest_algorithms,
		(size_t)env->cfg->max_certs, (size_t)env->cfg->max_signers };
	struct cmsscan_counts c;

	return cmsscan_signed(der, n, &cl, &c) == SM_ERR_LIMIT;
}

/* Verify the opaque signed-data left in r->der taken apart (cmsstrip.h):
 * the shell decoded, the content streamed from where it lies and, once
 * read, moved to the front of that buffer, which becomes content's. No
 * second copy of the content exists at any time. */
static sm_status
verify_split(const struct gw_env *env, struct gw_report *r, struct gw_sig *s,
    const struct buf *shell, size_t off, size_t clen, struct buf *content)
{
	struct smime_limits lim;
	BIO *src = clen <= INT_MAX ? BIO_new_mem_buf(clen > 0 ? r->der.data + off :
	    (const unsigned char *)"", (int)clen) : NULL;
	bool read;
	sm_status st;

	if (src == NULL)
		return SM_ERR_NOMEM;
	st = smime_verify_stream(shell->data, shell->len, src, gw_env_store(env),
	    env->cfg->trust_allow_self_signed, verify_limits(env, &lim), &s->vr);
	/* refused unread (limits, no signer): no content, as before */
	read = BIO_ctrl_pending(src) == 0;
	BIO_free(src);
	if (st != SM_OK || !read)
		return st;
	memmove(r->der.data, r->der.data + off, clen);
	r->der.len = clen;
	r->der.data[clen] = '\0';
	buf_free(content);
	*content = r->der;
	memset(&r->der, 0, sizeof(r->der));
	return SM_OK;
}

/* Verify opaque signed-data der into slot s; the encapsulated content is
 * appended to content. own: der is r->der, which may be taken apart.
 * Same returns as verify_detached(). */
static sm_status
verify_opaque(const struct gw_env *env, struct gw_report *r, struct gw_sig *s,
    const unsigned char *der, size_t n, bool own, struct buf *content)
{
	struct smime_limits lim;
	struct buf shell = BUF_INIT;
	size_t off, clen;
	sm_status st;
	uint64_t t0 = metrics_now();

	s->kind = MIME_SMIME_SIGNED_OPAQUE;
	/* what the limits refuse unread is never taken apart: its shell
	 * would be a second copy of a certificate bag */
	own = own && !over_limits(env, der, n);
	if (own && (st = cmsstrip_content(r->der.data, r->der.len, &shell, &off, &clen)) == SM_OK)
		st = verify_split(env, r, s, &shell, off, clen, content);
	else if (own && st == SM_ERR_NOMEM)
		return st;
	else
		st = smime_verify_bounded(der, n, NULL, 0, gw_env_store(env),
		    env->cfg->trust_allow_self_signed, verify_limits(env, &lim), &s->vr, content);
	buf_free(&shell);
	metrics_observe(METRICS_STAGE_VERIFY, t0);
	s->verified = st == SM_OK;
	if (st == SM_ERR_PARSE)
		snprintf(r->what, sizeof(r->what), "%s", s->vr.reason);
	return st;
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

/* Judge the harvest of one signature (never stores): the same rules for
 * every signature, encrypted or not. */
static sm_status
judge(const struct gw_env *env, const char *from, const struct smime_verify_result *vr,
    bool *judged, struct harvest_verdict *hv, char *note, size_t notelen)
{
	const struct config *cfg = env->cfg;
	struct harvest_input hi;

	if (from[0] == '\0') {
		snprintf(note, notelen, "no From address");
		return SM_OK;
	}
	if (config_is_internal(cfg, from)) {
		snprintf(note, notelen, "%s is internal: never harvested from inbound mail", from);
		return SM_OK;
	}
	memset(&hi, 0, sizeof(hi));
	hi.signer = vr->signer;
	hi.certs = vr->certs;
	hi.signature_ok = vr->signature_ok;
	hi.chain = chain_of(vr->chain_status);
	hi.allow_self_signed = cfg->trust_allow_self_signed;
	hi.digest_nid = vr->digest_nid;
	hi.from = from;
	hi.enc_pref = vr->enc_pref;
	hi.trust = gw_env_store(env);
	hi.now = clock_now();
	if (hi.signer == NULL) {
		snprintf(note, notelen, "no signer certificate");
		return SM_OK;
	}
	*judged = true;
	return harvest_judge(&hi, hv);
}

/* A signer whose certificate is revoked (by the stored result, or by a
 * CRL the message itself carries) fails verification and is never
 * harvested. Only "revoked" counts here: an unknown status harvests (the
 * outbound selection applies soft or hard later), and the signer is
 * queued for the worker. */
static void
signer_revocation(const struct gw_env *env, struct smime_verify_result *vr,
    struct harvest_verdict *hv)
{
	struct cfg_revocation soft = env->cfg->revocation;
	char why[KC_REASON_SIZE];
	time_t now = clock_now();

	if (env->rs == NULL || vr->signer == NULL || soft.check == CFG_REV_OFF)
		return;
	if (vr->crls != NULL)
		revworker_mail_crls(env->rs, vr->crls, vr->certs, vr->signer, now);
	soft.check = CFG_REV_SOFT;
	if (revstore_usable(env->rs, &soft, vr->signer, vr->certs, gw_env_store(env), now, why,
	    sizeof(why)))
		return;
	vr->status = SMIME_VERIFY_REVOKED;
	snprintf(vr->reason, sizeof(vr->reason), "signer %s", why);
	if (hv != NULL) {
		hv->harvest = false;
		hv->cert = NULL;
		snprintf(hv->reason, sizeof(hv->reason), "signer %s", why);
	}
}

/* Move the signatures found while walking into the report: the innermost
 * one (over the content) into vr, one around it into outer. */
static void
settle_signatures(struct gw_report *r)
{
	struct gw_sig *in;

	if (r->nsig == 0)
		return;
	in = &r->sig[r->nsig - 1];
	r->vr = in->vr;
	r->have_vr = true;
	r->is_signed = in->verified;
	r->signed_kind = in->kind;
	r->sig_inside_envelope = in->inside_envelope;
	if (in->kind == MIME_SMIME_SIGNED_OPAQUE) {
		/* the buffer moves, its bytes (and the tree's views) stay */
		r->content = r->ctext[r->nsig - 1];
		memset(&r->ctext[r->nsig - 1], 0, sizeof(r->ctext[0]));
	}
	memset(in, 0, sizeof(*in));
	if (r->nsig == 2) {
		r->outer = r->sig[0];
		r->have_outer = true;
		memset(&r->sig[0], 0, sizeof(r->sig[0]));
	}
	r->nsig = 0;
}

/* Where walk() stands: the entity at hand, or NULL when the layer at hand
 * is a bare CMS blob (raw/rawlen); the envelopes opened so far. */
struct walkpos {
	const struct mime_entity *e;
	const unsigned char *raw;
	size_t rawlen, nenv;
	bool done;              /* stop walking (SM_OK) */
};

/* Stop at this layer: nothing further to examine. */
static sm_status
walk_stop(struct walkpos *w)
{
	w->done = true;
	return SM_OK;
}

/* The next layer is content: a MIME entity parsed from it, else (when it
 * is signed-data without MIME around it) the bare blob, else the walk
 * stops there with r->what saying why when what is given. */
static sm_status
walk_into(struct gw_report *r, struct walkpos *w, const struct buf *content,
    struct mime_entity **tree, const char *what)
{
	sm_status st = mime_parse(content->data, content->len, NULL, tree);

	if (st == SM_ERR_NOMEM)
		return st;
	if (st == SM_OK) {
		w->e = *tree;
	} else if (smime_content_type(content->data, content->len) == SMIME_CT_SIGNED) {
		w->e = NULL;
		w->raw = content->data;
		w->rawlen = content->len;
	} else {
		if (what != NULL)
			snprintf(r->what, sizeof(r->what), "%s: %s", what, sm_strstatus(st));
		structure_add(r, "not MIME");
		return walk_stop(w);
	}
	return SM_OK;
}

/* An entity that is no S/MIME layer, or a detached signature. */
static sm_status
walk_plain_or_detached(const struct gw_env *env, struct gw_report *r, struct walkpos *w,
    enum mime_smime_kind k)
{
	const struct mime_entity *e = w->e;
	struct gw_sig *s;
	sm_status st;

	if (k == MIME_SMIME_NONE || k == MIME_SMIME_CERTS_ONLY) {
		r->content_e = e;
		if (k == MIME_SMIME_NONE)
			structure_add_entity(r, e);
		else
			structure_add(r, "certs-only");
		r->envelope_in_part = has_envelope_part(e);
		return walk_stop(w);
	}
	structure_add(r, "signed-detached");
	if (r->nsig == GW_MAX_SIGNATURES) {
		r->too_deep = true;
		return walk_stop(w);
	}
	s = &r->sig[r->nsig++];
	s->inside_envelope = w->nenv > 0;
	if ((st = verify_detached(env, r, s, e)) == SM_ERR_PARSE) {
		r->malformed = true;
		return walk_stop(w);
	}
	w->e = e->parts[0];
	return st;
}

/* The body of an application/(x-)pkcs7-mime or .p7m entity decoded into
 * r->der, a spooled body's pages dropped behind the decoder. */
static sm_status
walk_decode(struct gw_report *r, struct walkpos *w, enum mime_smime_kind k)
{
	const struct mime_entity *e = w->e;
	sm_status st;

	buf_reset(&r->der);
	st = decode_paged(e, &r->der);
	if (st == SM_OK || st == SM_ERR_NOMEM)
		return st;
	structure_add(r, mime_smime_kind_name(k));
	r->malformed = true;
	snprintf(r->what, sizeof(r->what), "%s: the %s body does not decode (%s)",
	    is_envelope_kind(k) ? "corrupt envelope" : "malformed PKCS#7", e->cte, sm_strstatus(st));
	return walk_stop(w);
}

/* An envelope: opened (decrypt) and its content the next layer. */
static sm_status
walk_envelope(const struct gw_env *env, struct gw_report *r, struct walkpos *w, bool decrypt,
    enum smime_content_type ct)
{
	sm_status st;

	structure_add(r, smime_content_type_name(ct));
	if (w->nenv == GW_MAX_ENVELOPES || w->e == NULL) {
		r->too_deep = true;
		return walk_stop(w);
	}
	w->nenv++;
	r->encrypted = true;
	if (!decrypt)
		return walk_stop(w);
	/* keep the envelope: `deliver` checks its recipients */
	buf_free(&r->envder);
	r->envder = r->der;
	memset(&r->der, 0, sizeof(r->der));
	st = gw_decrypt_open(env, r);
	if (st == SM_ERR_NOMEM)
		return st;
	if (st != SM_OK) {
		r->decrypt_failed = true;
		r->decrypt_status = st;
		return walk_stop(w);
	}
	r->decrypted = true;
	return walk_into(r, w, &r->plain, &r->inner, "decrypted content is not MIME");
}

/* Opaque signed-data: verified, its content the next layer. own: der is
 * r->der, which the verification may take apart. */
static sm_status
walk_opaque(const struct gw_env *env, struct gw_report *r, struct walkpos *w,
    const unsigned char *der, size_t dlen, bool own)
{
	size_t i = r->nsig;
	struct gw_sig *s;
	sm_status st;

	structure_add(r, "signed-opaque");
	if (r->nsig == GW_MAX_SIGNATURES) {
		r->too_deep = true;
		return walk_stop(w);
	}
	s = &r->sig[r->nsig++];
	s->inside_envelope = w->nenv > 0;
	st = verify_opaque(env, r, s, der, dlen, own, &r->ctext[i]);
	if (st == SM_ERR_PARSE) {
		r->malformed = true;
		return walk_stop(w);
	}
	if (st != SM_OK)
		return st;
	/* Signed, but what was signed may be no MIME entity: nothing to show
	 * or deliver then. */
	return walk_into(r, w, &r->ctext[i], &r->ctree[i], NULL);
}

/* One CMS layer, by what the CMS says it is (not its label). */
static sm_status
walk_cms(const struct gw_env *env, struct gw_report *r, struct walkpos *w, bool decrypt,
    enum mime_smime_kind k, bool own)
{
	const unsigned char *der = own ? r->der.data : w->raw;
	size_t dlen = own ? r->der.len : w->rawlen;
	enum smime_content_type ct = smime_content_type(der, dlen);

	switch (ct) {
	case SMIME_CT_ENVELOPED:
	case SMIME_CT_AUTH_ENVELOPED:
		return walk_envelope(env, r, w, decrypt, ct);
	case SMIME_CT_SIGNED:
		return walk_opaque(env, r, w, der, dlen, own);
	case SMIME_CT_CERTS_ONLY:
		structure_add(r, "certs-only");
		r->content_e = w->e;
		return walk_stop(w);
	case SMIME_CT_OTHER:
		structure_add(r, "other CMS content");
		snprintf(r->what, sizeof(r->what), "CMS content type not supported here");
		return walk_stop(w);
	case SMIME_CT_INVALID:
	default:
		structure_add(r, mime_smime_kind_name(k));
		r->malformed = true;
		snprintf(r->what, sizeof(r->what), "%s: not a CMS structure",
		    is_envelope_kind(k) ? "corrupt envelope" : "malformed PKCS#7");
		return walk_stop(w);
	}
}

/*
 * Follow the S/MIME layers of the message from the outside in (struct
 * walkpos). Stops at the first layer that is no S/MIME, at anything
 * malformed, at a failed decryption, and at GW_MAX_ENVELOPES /
 * GW_MAX_SIGNATURES.
 */
static sm_status
walk(const struct gw_env *env, struct gw_report *r, bool decrypt)
{
	struct walkpos w = { r->root, NULL, 0, 0, false };
	enum mime_smime_kind k;
	sm_status st = SM_OK;

	while (st == SM_OK && !w.done && !budget_spent(env, r)) {
		if (w.e == NULL) {
			st = walk_cms(env, r, &w, decrypt, MIME_SMIME_PKCS7_UNKNOWN, false);
			continue;
		}
		k = mime_smime_kind(w.e);
		if (k == MIME_SMIME_NONE || k == MIME_SMIME_CERTS_ONLY ||
		    k == MIME_SMIME_SIGNED_DETACHED)
			st = walk_plain_or_detached(env, r, &w, k);
		else if ((st = walk_decode(r, &w, k)) == SM_OK && !w.done)
			st = walk_cms(env, r, &w, decrypt, k, true);
	}
	return st;
}

sm_status
gw_examine(const struct gw_env *env, const struct mime_headers *hdrs, const unsigned char *body,
    size_t len, bool decrypt, struct gw_report *r)
{
	struct bodyio_pager pg;
	const struct mime_sink pager = { NULL, bodyio_pager_done, &pg };
	const char *fromh;
	sm_status st;

	memset(r, 0, sizeof(*r));
	r->cpu_start = clock_cpu_ms();
	bodyio_pager_init(&pg, body, len);
	st = mime_parse_message_paged(hdrs, body, len, NULL, &pager, &r->root);
	if (st != SM_OK) {
		if (st == SM_ERR_NOMEM)
			return st;
		r->malformed = true;
		snprintf(r->what, sizeof(r->what), "malformed MIME: %s", sm_strstatus(st));
		return SM_OK;
	}
	/* The parse read all of a spooled body: its pages go back before
	 * the signature is checked (and went back while it read). */
	bodyio_pager_done(&pg);
	r->kind = mime_smime_kind(r->root);
	st = walk(env, r, decrypt);
	settle_signatures(r);
	if (st != SM_OK || budget_spent(env, r))
		return st;

	fromh = mime_headers_get(hdrs, "From");
	if (fromh == NULL || addr_from_header(fromh, r->from, sizeof(r->from)) != SM_OK)
		r->from[0] = '\0';
	if (r->is_signed && r->vr.signature_ok &&
	    (st = judge(env, r->from, &r->vr, &r->judged, &r->hv, r->harvest_note,
		 sizeof(r->harvest_note))) != SM_OK)
		return st;
	if (r->is_signed && r->vr.signature_ok)
		signer_revocation(env, &r->vr, r->judged ? &r->hv : NULL);
	if (r->have_outer && r->outer.verified && r->outer.vr.signature_ok &&
	    (st = judge(env, r->from, &r->outer.vr, &r->outer.judged, &r->outer.hv,
		 r->outer.harvest_note, sizeof(r->outer.harvest_note))) != SM_OK)
		return st;
	if (r->have_outer && r->outer.verified && r->outer.vr.signature_ok)
		signer_revocation(env, &r->outer.vr, r->outer.judged ? &r->outer.hv : NULL);
	return SM_OK;
}

/* RFC 7281 result for a verification. */
static const char *
ar_result(const struct smime_verify_result *vr)
{
	if (vr->status == SMIME_VERIFY_OK)
		return "pass";
	if (vr->status == SMIME_VERIFY_REVOKED)
		return "fail";
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

/* Append " (text)" as a comment: no parentheses, backslashes or controls
 * from message data. */
static void
ar_comment(struct buf *b, const char *s)
{
	buf_append_str(b, " (");
	for (; *s; s++)
		if (*s != '(' && *s != ')' && *s != '\\' && (unsigned char)*s >= ' ' &&
		    (unsigned char)*s != 0x7f)
			buf_append_char(b, *s);
	buf_append_str(b, ")");
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

/* One resinfo: "smime=RESULT (reason) (note) body.smime-…". verified
 * false: the signature could not be read (why says so). */
static void
ar_resinfo(struct buf *b, const struct smime_verify_result *vr, bool verified, const char *why,
    const char *note)
{
	buf_printf(b, "smime=%s", verified ? ar_result(vr) : "permerror");
	if (!verified)
		ar_comment(b, vr->reason[0] ? vr->reason : why);
	else if (vr->status != SMIME_VERIFY_OK)
		ar_comment(b, vr->reason);
	if (note != NULL)
		ar_comment(b, note);
	ar_signer_props(b, vr->signer);
}

/* The key cache's verdict on a store, logged once: the store that changed
 * the selected certificate is the only one that reports it. */
static void
harvest_log_outcome(const char *qid, const char *from, enum keycache_outcome oc,
    const char *fp, const char *old_fp)
{
	switch (oc) {
	case KC_SUPERSEDED_OLD:
		log_qid(LOG_NOTICE, qid, "key change for %s: sha256=%s replaces sha256=%s", from,
		    fp, old_fp);
		break;
	case KC_RENEWED_SAME_KEY:
		log_qid(LOG_INFO, qid,
		    "certificate renewed for %s (same key): sha256=%s replaces sha256=%s", from, fp,
		    old_fp);
		break;
	case KC_REFUSED_SELF_SIGNED:
		log_qid(LOG_WARNING, qid,
		    "key change refused: self-signed would replace CA-issued for %s: sha256=%s kept, "
		    "sha256=%s stored unused",
		    from, old_fp, fp);
		break;
	case KC_OLDER_KEPT_AS_HISTORY:
		log_qid(LOG_INFO, qid, "older certificate for %s kept as history: sha256=%s stays in use",
		    from, old_fp);
		break;
	case KC_INSERTED:
	case KC_UPDATED: break;
	}
}

/* Store what one harvest verdict allows; appends to the summary. */
static sm_status
harvest_store(const struct gw_env *env, const char *qid, const char *from, bool judged,
    const struct harvest_verdict *hv, const char *note, const struct smime_verify_result *vr,
    struct buf *summary)
{
	struct kc_pairing p;
	enum keycache_outcome oc;
	char fp[X509U_FP_SIZE] = "", old_fp[X509U_FP_SIZE] = "";
	sm_status st;

	if (!judged) {
		buf_printf(summary, " not harvested: %s", note);
		return SM_OK;
	}
	if (!hv->harvest) {
		buf_printf(summary, " not harvested %s: %s", from, hv->reason);
		metrics_harvest(metrics_harvest_class(hv->reason));
		return SM_OK;
	}
	memset(&p, 0, sizeof(p));
	p.signer = vr->signer;
	p.enc = hv->cert;
	p.chain = vr->certs;
	p.address = from;
	p.caps = vr->caps;
	p.signing_time = vr->signing_time;
	p.assurance = hv->self_signed ? KC_AS_SELF_SIGNED : KC_AS_CA;
	p.source = KC_SRC_HARVESTED;
	if ((st = keycache_store_pairing(env->kc, &p, &oc, old_fp)) != SM_OK)
		return st;
	metrics_harvest(oc == KC_INSERTED ? METRICS_HARVEST_NEW : oc == KC_UPDATED ? METRICS_HARVEST_SEEN :
	    oc == KC_OLDER_KEPT_AS_HISTORY || oc == KC_REFUSED_SELF_SIGNED ? METRICS_HARVEST_HISTORY :
	    METRICS_HARVEST_SUPERSEDED);
	x509u_fingerprint(hv->cert, fp);
	buf_printf(summary, " harvested %s sha256=%s", from, fp);
	harvest_log_outcome(qid, from, oc, fp, old_fp);
	return SM_OK;
}

/* Harvest from every signature that verified: the innermost one, and one
 * around it unless it is the same certificate. Once per message, however
 * many recipients it has. */
static void
harvest_all(const struct gw_env *env, const struct gw_msg *m, const struct gw_report *r,
    struct buf *summary)
{
	sm_status st = SM_OK;

	if (r->is_signed && r->vr.signature_ok)
		st = harvest_store(env, m->qid, r->from, r->judged, &r->hv, r->harvest_note, &r->vr,
		    summary);
	if (st == SM_OK && r->have_outer && r->outer.verified && r->outer.vr.signature_ok &&
	    !(r->judged && r->outer.judged && r->hv.harvest && r->outer.hv.harvest &&
		X509_cmp(r->hv.cert, r->outer.hv.cert) == 0)) {
		buf_append_str(summary, " outer:");
		st = harvest_store(env, m->qid, r->from, r->outer.judged, &r->outer.hv,
		    r->outer.harvest_note, &r->outer.vr, summary);
	}
	if (st != SM_OK) {
		log_qid(LOG_ERR, m->qid, "harvest failed: %s", sm_strstatus(st));
		buf_printf(summary, " harvest failed: %s", sm_strstatus(st));
	}
}

const char *
gw_report_result(const struct gw_report *r)
{
	if (r->over_budget)
		return "temperror";
	if (r->is_signed)
		return ar_result(&r->vr);
	if (r->have_vr)
		return "permerror"; /* a signature that cannot be read */
	if (r->malformed && r->kind != MIME_SMIME_NONE && !is_envelope_kind(r->kind) &&
	    !r->encrypted)
		return "permerror";
	return NULL;
}

/* The summary line, first half: what the message is and its signatures. */
static void
summary_head(const struct gw_report *r, struct buf *s)
{
	bool enc = r->encrypted || is_envelope_kind(r->kind);

	buf_append_str(s, "inbound");
	if (r->decrypted)
		buf_append_str(s, " decrypted");
	else if (enc && !r->have_vr)
		buf_append_str(s, " encrypted");
	if (r->have_vr) {
		buf_printf(s, " smime=%s", gw_report_result(r));
		if (!r->is_signed)
			buf_printf(s, " (%s)", r->vr.reason[0] ? r->vr.reason : r->what);
		else if (r->vr.status != SMIME_VERIFY_OK)
			buf_printf(s, " (%s)", r->vr.reason);
		if (r->have_outer)
			buf_printf(s, " outer smime=%s", r->outer.verified ? ar_result(&r->outer.vr) :
			    "permerror");
	}
}

/* Second half, after the harvest: what else there is to know. */
static void
summary_tail(const struct config *cfg, const struct gw_report *r, struct buf *s)
{
	bool enc = r->encrypted || is_envelope_kind(r->kind);

	if (r->have_vr) {
		/* said in summary_head */
	} else if (r->decrypted) {
		buf_append_str(s, ", unsigned inside: nothing to harvest");
		if (r->what[0])
			buf_printf(s, " (%s)", r->what);
	} else if (!enc) {
		if (r->malformed)
			buf_printf(s, " %s, passed untouched", r->what);
		else if (r->kind == MIME_SMIME_NONE)
			buf_append_str(s, " unsigned");
		else if (strstr(r->structure, "certs-only") != NULL)
			buf_append_str(s, " certs-only message, nothing verified");
		else
			buf_printf(s, " S/MIME, unsigned%s%s", r->what[0] ? ": " : "", r->what);
	}
	if (enc && !r->decrypted)
		buf_printf(s, "%s not decrypted: %s", r->have_vr ? ", encrypted inside," : ",",
		    cfg->inbound_decrypt == CFG_DECRYPT_OFF ? "decrypt = off" :
		    r->too_deep ? "nested deeper than one envelope and two signatures" : r->what);
	else if (r->too_deep)
		buf_append_str(s, ", nested deeper than one envelope and two signatures: "
		    "inner layers not examined");
	if (r->envelope_in_part)
		buf_append_str(s, ", encrypted part inside a multipart left closed "
		    "(only a whole-message envelope is decrypted)");
	if (r->structure[0] && (enc || r->have_outer || r->too_deep))
		buf_printf(s, " [%s]", r->structure);
}

/* The inbound counters: the smime= result and the decryption. */
static void
gw_count_inbound(const struct config *cfg, const struct gw_report *r, const char *result)
{
	enum metrics_decrypt_mode mode = cfg->inbound_decrypt == CFG_DECRYPT_DELIVER ?
	    METRICS_DECRYPT_DELIVER : METRICS_DECRYPT_HARVEST;

	metrics_inbound_result(result);
	if (r->decrypted)
		metrics_decryption(mode, METRICS_DECRYPT_OK);
	else if (r->decrypt_failed)
		metrics_decryption(mode, r->decrypt_status == SM_ERR_NOKEY ? METRICS_DECRYPT_NO_KEY :
		    METRICS_DECRYPT_FAILED);
}

/* The CPU budget ran out: the message passes as received, unjudged, with
 * smime=temperror (RFC 8601: a later retry may succeed). */
static sm_status
inbound_unjudged(const struct config *cfg, const struct gw_report *r, struct gw_result *out)
{
	struct buf ar = BUF_INIT;
	sm_status st = SM_OK;

	buf_printf(&out->summary, "inbound smime=temperror (%s), passed unjudged", r->what);
	if (cfg->inbound_results_header) {
		buf_printf(&ar, "%s; smime=temperror", cfg->authserv_id);
		ar_comment(&ar, r->what);
		st = buf_cstr(&ar) == NULL ? SM_ERR_NOMEM :
		    gw_edit_add(out, GW_HDR_INSERT_TOP, "Authentication-Results", 0, buf_cstr(&ar));
	}
	buf_free(&ar);
	return st;
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
	if ((st = gw_edit_delete_where(out, m->hdrs, is_our_results, cfg->authserv_id)) != SM_OK ||
	    (st = gw_edit_delete_where(out, m->hdrs, is_decrypted_marker, NULL)) != SM_OK)
		return st;
	st = gw_examine(env, m->hdrs, m->body, m->body_len,
	    cfg->inbound_decrypt != CFG_DECRYPT_OFF, &r);
	if (st != SM_OK) {
		gw_report_free(&r);
		return st;
	}
	if (r.over_budget) {
		gw_count_inbound(cfg, &r, "temperror");
		st = inbound_unjudged(cfg, &r, out);
		gw_report_free(&r);
		return st;
	}
	result = gw_report_result(&r);
	gw_count_inbound(cfg, &r, result);
	summary_head(&r, &out->summary);
	if (r.have_vr && cfg->inbound_harvest)
		harvest_all(env, m, &r, &out->summary);
	summary_tail(cfg, &r, &out->summary);

	/* What reaches the recipients. */
	if (r.decrypted && cfg->inbound_decrypt == CFG_DECRYPT_DELIVER) {
		if ((st = gw_decrypt_deliver(env, m, &r, out)) != SM_OK)
			goto fail;
	} else if (r.encrypted || is_envelope_kind(r.kind) || r.envelope_in_part) {
		buf_append_str(&out->summary, ", delivered as received");
	}

	if (cfg->inbound_results_header && result) {
		buf_printf(&ar, "%s; ", cfg->authserv_id);
		ar_resinfo(&ar, &r.vr, r.is_signed, r.what, NULL);
		if (r.have_outer) {
			buf_append_str(&ar, "; ");
			ar_resinfo(&ar, &r.outer.vr, r.outer.verified, r.what, "outer signature");
		}
		if ((st = gw_edit_add(out, GW_HDR_INSERT_TOP, "Authentication-Results", 0, buf_cstr(&ar))) != SM_OK)
			goto fail;
	}
	buf_free(&ar);
	gw_report_free(&r);
	metrics_message(METRICS_INBOUND, out->replace_body ? METRICS_DECRYPTED : METRICS_UNCHANGED);
	return SM_OK;
fail:
	buf_free(&ar);
	gw_report_free(&r);
	return st;
}
