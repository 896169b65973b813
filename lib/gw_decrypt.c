/*
 * gw_decrypt.c — inbound envelopes: opened with every key we hold, and,
 * with decrypt = "deliver", the decrypted content delivered in place of
 * the message when a signature inside vouches for it, every recipient
 * could open it and the author is the one it would bounce to (EFAIL).
 * The protected header (RFC 9788) comes back out on delivery.
 */
#include "gateway.h"
#include "gateway_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "address.h"
#include "cmsstrip.h"
#include "hprot.h"
#include "keystore.h"
#include "log.h"
#include "metrics.h"
#include "smime.h"
#include "smime_open.h"
#include "spool.h"
#include "x509util.h"

/* Why a decryption failed, in the words an admin looks for. */
static const char *
decrypt_failure_kind(sm_status st)
{
	switch (st) {
	case SM_ERR_NOKEY: return "no matching key";
	case SM_ERR_UNSUPPORTED: return "unsupported algorithm";
	case SM_ERR_NOMEM: return "out of memory";
	default: return "corrupt envelope";
	}
}

/* The tail of the encrypted content kept in the envelope `deliver` checks
 * recipients against: two AES blocks, four DES ones (cmsstrip.h). */
#define ENVELOPE_TAIL 32

/* Decrypt r->envder in place (cmsstrip.h, smime_open.h): the plaintext
 * takes the envelope's buffer (r->plain), r->envder becomes the envelope
 * with the tail of its content only. SM_ERR_PARSE untouched when the
 * envelope is not one this takes apart (authEnveloped-data, odd BER). */
static sm_status
decrypt_inplace(struct gw_report *r, const struct smime_key *keys, size_t n, char *err,
    size_t errlen)
{
	struct buf shell = BUF_INIT, mini = BUF_INIT;
	size_t off, len, plen = 0;
	sm_status st;

	st = cmsstrip_envelope(r->envder.data, r->envder.len, ENVELOPE_TAIL, &shell, &mini, &off,
	    &len);
	if (st != SM_OK)
		return st == SM_ERR_NOMEM ? st : SM_ERR_PARSE;
	st = smime_decrypt_inplace(shell.data, shell.len, r->envder.data, off, len, keys, n, &plen,
	    err, errlen);
	buf_free(&shell);
	gw_buf_wipe_free(&r->plain);
	if (st == SM_OK) {
		r->plain = r->envder;
		r->plain.len = plen;
		r->plain.data[plen] = '\0';
	} else {
		gw_buf_wipe_free(&r->envder);
	}
	r->envder = mini;
	/* the parse error of a kept-apart envelope is no reason to retry */
	return st == SM_ERR_PARSE ? SM_ERR_CRYPTO : st;
}

/* Decrypt the envelope in r->envder with every key we hold (current,
 * renewed and expired alike) into r->plain: in place when it can be taken
 * apart (no copy of a large envelope), else as a whole. */
sm_status
gw_decrypt_open(const struct gw_env *env, struct gw_report *r)
{
	const struct keystore_key *keys = NULL;
	size_t n = 0;
	char err[256] = "";
	const char *e;
	uint64_t t0;
	sm_status st;

	if (env->ks)
		keystore_decrypt_keys(env->ks, &keys, &n);
	if (n == 0) {
		snprintf(r->what, sizeof(r->what), "no matching key: no private keys to decrypt with");
		return SM_ERR_NOKEY;
	}
	/* struct keystore_key and struct smime_key have the same layout. */
	t0 = metrics_now();
	st = decrypt_inplace(r, (const struct smime_key *)keys, n, err, sizeof(err));
	if (st == SM_ERR_PARSE)
		st = smime_decrypt(r->envder.data, r->envder.len, (const struct smime_key *)keys, n,
		    &r->plain, err, sizeof(err));
	metrics_observe(METRICS_STAGE_DECRYPT, t0);
	if (st != SM_OK) {
		e = err[0] ? err : sm_strstatus(st);
		if (strncmp(e, "decrypt: ", 9) == 0)
			e += 9;
		snprintf(r->what, sizeof(r->what), "%s: %s", decrypt_failure_kind(st), e);
	}
	return st;
}

/* Does key i of the key store belong to address a (a user key for it, or
 * the domain key of its domain)? */
static bool
key_is_for(const struct keystore_info *ki, const char *a)
{
	const char *dom = addr_domain(a);

	for (size_t j = 0; j < ki->n_addresses; j++)
		if (x509u_addr_equal(ki->addresses[j], a))
			return true;
	for (size_t j = 0; dom != NULL && j < ki->n_domains; j++)
		if (strcasecmp(ki->domains[j], dom) == 0)
			return true;
	return false;
}

/*
 * Could every envelope recipient open the envelope with keys of their own?
 * Only then may `deliver` hand out plaintext: otherwise anyone could send
 * a captured envelope to their own internal address and have the gateway
 * decrypt it with a colleague's key. *ok false with why on refusal.
 */
static sm_status
rcpts_can_open(const struct gw_env *env, const struct gw_msg *m, const struct gw_report *r,
    bool *ok, char *why, size_t whylen)
{
	size_t nk = env->ks ? keystore_count(env->ks) : 0;
	struct smime_key *sub;
	struct buf scratch = BUF_INIT;
	char a[320], err[256];
	sm_status st = SM_OK;

	*ok = false;
	if (m->nrcpts == 0) {
		snprintf(why, whylen, "no envelope recipients");
		return SM_OK;
	}
	if ((sub = calloc(nk ? nk : 1, sizeof(*sub))) == NULL)
		return SM_ERR_NOMEM;
	for (size_t i = 0; i < m->nrcpts; i++) {
		size_t n = 0;

		if (addr_normalize(m->rcpts[i], a, sizeof(a)) != SM_OK) {
			snprintf(why, whylen, "recipient %s is not an address", m->rcpts[i]);
			goto out;
		}
		for (size_t j = 0; j < nk; j++)
			if (key_is_for(keystore_info_at(env->ks, j), a))
				sub[n++] = *(const struct smime_key *)keystore_key_at(env->ks, j);
		if (n == 0) {
			snprintf(why, whylen, "no key of ours belongs to recipient %s", a);
			goto out;
		}
		st = smime_decrypt(r->envder.data, r->envder.len, sub, n, &scratch, err, sizeof(err));
		gw_buf_wipe_free(&scratch);
		if (st == SM_ERR_NOMEM)
			goto out;
		if (st != SM_OK) {
			snprintf(why, whylen, "not encrypted to recipient %s (%s)", a,
			    st == SM_ERR_NOKEY ? "none of their keys is a recipient" : err);
			st = SM_OK;
			goto out;
		}
	}
	*ok = true;
out:
	free(sub);
	return st;
}

/* Plaintext goes only where its author's words may go: the signer's
 * certificate carries the From address (RFC 8551 §3.4), and the envelope
 * sender is that address too, so any bounce (ours, or a later hop's, with
 * RET=FULL) returns the plaintext to its author, never to whoever replayed
 * the envelope. */
static bool
author_conversation(const struct gw_msg *m, const struct gw_report *r, char *why, size_t whylen)
{
	char sender[320];
	const char *shown;
	bool valid, bracket;

	if (r->from[0] == '\0') {
		snprintf(why, whylen, "no single From address");
		return false;
	}
	if (r->vr.signer == NULL || !x509u_has_address(r->vr.signer, r->from)) {
		snprintf(why, whylen, "the signer's certificate does not carry the From address %s",
		    r->from);
		return false;
	}
	valid = m->sender != NULL && addr_normalize(m->sender, sender, sizeof(sender)) == SM_OK;
	if (!valid || strcmp(sender, r->from) != 0) {
		shown = valid ? sender : m->sender ? m->sender : "";
		bracket = shown[0] != '<';
		snprintf(why, whylen, "the envelope sender %s%s%s is not the From address %s "
		    "(a bounce must return to the author)", bracket ? "<" : "", shown,
		    bracket ? ">" : "", r->from);
		return false;
	}
	return true;
}

/* May the decrypted content replace the message? Only content whose
 * integrity a signature inside the envelope vouches for: an unsigned or
 * broken CBC envelope may be an attacker's splice of someone else's
 * ciphertext (EFAIL's gadget attack), and the recipient would read it as
 * genuine. */
static bool
deliverable(const struct gw_msg *m, const struct gw_report *r, char *why, size_t whylen)
{
	if (r->too_deep) {
		snprintf(why, whylen, "nested deeper than one envelope and two signatures");
		return false;
	}
	if (!r->have_vr && r->content_e == NULL) {
		snprintf(why, whylen, "decrypted content is no readable MIME");
		return false;
	}
	if (!r->have_vr || !r->sig_inside_envelope) {
		snprintf(why, whylen, "decrypted content is not signed");
		return false;
	}
	if (!r->is_signed || !r->vr.signature_ok ||
	    (r->have_outer && r->outer.inside_envelope &&
		(!r->outer.verified || !r->outer.vr.signature_ok))) {
		snprintf(why, whylen, "the signature inside does not verify");
		return false;
	}
	if (r->content_e == NULL) {
		snprintf(why, whylen, "the signed content is no MIME entity");
		return false;
	}
	return author_conversation(m, r, why, whylen);
}

static void
edits_truncate(struct gw_result *r, size_t n)
{
	while (r->nedits > n) {
		r->nedits--;
		free(r->edits[r->nedits].name);
		free(r->edits[r->nedits].value);
	}
}

/* The protected fields a delivered message may get back (RFC 9788 §4):
 * what a reader shows and threads by, never trace or results fields. */
static bool
restorable(const char *name)
{
	static const char *const ok[] = { "Subject", "From", "To", "Cc", "Reply-To", "Date",
		"Message-ID", "In-Reply-To", "References", "Keywords", "Comments", NULL };
	for (size_t i = 0; ok[i]; i++)
		if (strcasecmp(name, ok[i]) == 0)
			return true;
	return false;
}

/* May the protected field h replace the outer one? A From only when its
 * address is the signer's. */
static bool
restore_allowed(const struct gw_msg *m, const struct gw_report *r, const struct mime_header *h)
{
	char addr[320];

	if (!restorable(h->name))
		return false;
	if (strcasecmp(h->name, "From") != 0)
		return true;
	if (addr_from_header(h->value, addr, sizeof(addr)) == SM_OK && r->vr.signer &&
	    x509u_has_address(r->vr.signer, addr))
		return true;
	log_qid(LOG_NOTICE, m->qid, "protected From %s is not the signer's address: not restored",
	    addr);
	return false;
}

/* Put one protected field back outside: its outer occurrences replaced. */
static sm_status
restore_field(const struct gw_msg *m, const struct hp_parsed *p, const char *name,
    struct gw_result *out)
{
	size_t nout = mime_headers_count(m->hdrs, name), nin = mime_headers_count(&p->fields, name);
	sm_status st = SM_OK;

	if (nout == 1 && nin == 1) {
		char *v = mime_header_unfold(mime_headers_get(&p->fields, name));
		char *o = mime_header_unfold(mime_headers_get(m->hdrs, name));
		if (v == NULL || o == NULL)
			st = SM_ERR_NOMEM;
		else if (strcmp(v, o) != 0)
			st = gw_edit_add(out, GW_HDR_CHANGE, name, 1, v);
		free(v);
		free(o);
		return st;
	}
	for (size_t i = nout; i > 0 && st == SM_OK; i--)
		st = gw_edit_add(out, GW_HDR_DELETE, name, (int)i, NULL);
	for (size_t i = 0; i < p->fields.n && st == SM_OK; i++) {
		char *v;
		if (strcasecmp(p->fields.v[i].name, name) != 0)
			continue;
		if ((v = mime_header_unfold(p->fields.v[i].value)) == NULL)
			return SM_ERR_NOMEM;
		st = gw_edit_add(out, GW_HDR_ADD, name, 0, v);
		free(v);

	}
	return st;
}

/* RFC 9788 on delivery: the signed content carries the real header
 * (hp="cipher"), the outside only what travelled in clear ("[...]"). Give
 * the delivered message the protected fields back: only from content a
 * verified signature covers (deliverable() holds), only the fields
 * restorable() lists, and a From only when it is the signer's. */
static sm_status
deliver_restore_header(const struct gw_msg *m, const struct gw_report *r, struct gw_result *out)
{
	struct hp_parsed p;
	sm_status st = SM_OK;
	size_t n = 0;

	if (!r->is_signed || !r->vr.signature_ok || hp_parse(&r->content_e->hdrs, &p) != SM_OK)
		return SM_OK;
	for (size_t i = 0; p.kind == HP_CIPHER && i < p.fields.n && st == SM_OK; i++) {
		const struct mime_header *h = &p.fields.v[i];
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen |= strcasecmp(p.fields.v[j].name, h->name) == 0;
		if (seen || !restore_allowed(m, r, h))
			continue;
		st = restore_field(m, &p, h->name, out);
		n++;
	}
	if (st == SM_OK && n > 0)
		log_qid(LOG_INFO, m->qid, "protected header restored (%zu fields)", n);
	hp_parsed_free(&p);
	return st;
}

/* Where the rebuilt content goes: a spool (memory up to spool_threshold,
 * then a private file), the end of its header noted on the way. */
struct deliver_sink {
	struct spool *sp;
	uint64_t n;          /* bytes written */
	uint64_t body_off;   /* past the first CRLFCRLF; 0 until seen */
	unsigned char last[3];
};

static sm_status
deliver_write(void *arg, const unsigned char *p, size_t n)
{
	struct deliver_sink *k = arg;

	for (size_t i = 0; i < n && k->body_off == 0; i++) {
		if (k->last[0] == '\r' && k->last[1] == '\n' && k->last[2] == '\r' && p[i] == '\n')
			k->body_off = k->n + i + 1;
		k->last[0] = k->last[1];
		k->last[1] = k->last[2];
		k->last[2] = p[i];
	}
	k->n += n;
	return spool_write(k->sp, p, n);
}

/* The rebuilt body into out: in out->body while it is small, else from
 * the spool it was written to (gw_result_body_read serves both). */
static sm_status
deliver_body(struct deliver_sink *k, struct gw_result *out)
{
	sm_status st;

	if (k->body_off == 0)
		return SM_ERR_PARSE;
	if (spool_on_disk(k->sp)) {
		out->body_spool = k->sp;
		out->body_off = k->body_off;
		k->sp = NULL;
		return SM_OK;
	}
	gw_buf_wipe_free(&out->body);
	if ((st = spool_take(k->sp, &out->body)) != SM_OK)
		return st;
	memmove(out->body.data, out->body.data + k->body_off, out->body.len - k->body_off);
	out->body.len -= k->body_off;
	out->body.data[out->body.len] = '\0';
	return SM_OK;
}

/* The content's own Content-* fields become the message's. */
static sm_status
deliver_headers(const struct gw_msg *m, const struct mime_headers *content, struct gw_result *out)
{
	sm_status st;

	if ((st = gw_edit_delete_where(out, m->hdrs, gw_is_content_header, NULL)) != SM_OK)
		return st;
	if (mime_headers_get(m->hdrs, "MIME-Version") == NULL &&
	    (st = gw_edit_add(out, GW_HDR_ADD, "MIME-Version", 0, "1.0")) != SM_OK)
		return st;
	for (size_t i = 0; i < content->n; i++) {
		char *v = mime_header_unfold(content->v[i].value);
		st = v ? gw_edit_add(out, GW_HDR_ADD, content->v[i].name, 0, v) : SM_ERR_NOMEM;
		free(v);
		if (st != SM_OK)
			return st;
	}
	return SM_OK;
}

/* Replace the message by the decrypted content (decrypt = "deliver"),
 * rebuilt in pieces into a spool: never a second copy of it in memory. */
static sm_status
deliver_decrypted(const struct gw_env *env, const struct gw_msg *m, const struct gw_report *r,
    struct gw_result *out)
{
	const struct mime_entity *e = r->content_e;
	struct mime_headers outer = MIME_HEADERS_INIT, content = MIME_HEADERS_INIT;
	struct mime_entity *tree = NULL;
	struct deliver_sink k = { NULL, 0, 0, { 0, 0, 0 } };
	const struct mime_sink sink = { deliver_write, NULL, &k };
	sm_status st;

	/* Fresh canonical MIME from the content entity: nothing of the
	 * envelope's or the signatures' bytes survives around it, and the
	 * RFC 5322 headers stay those of the message (EFAIL). */
	if ((st = mime_split_headers(&e->hdrs, &outer, &content)) != SM_OK ||
	    (st = mime_parse_message(&content, e->body, e->body_len, NULL, &tree)) != SM_OK ||
	    (st = spool_new(env->cfg->spool_dir, env->cfg->spool_threshold, UINT64_MAX,
		&k.sp)) != SM_OK ||
	    (st = mime_canonicalize_tree(tree, &content, &sink)) != SM_OK)
		goto out;
	if ((st = deliver_headers(m, &content, out)) != SM_OK ||
	    (st = deliver_restore_header(m, r, out)) != SM_OK)
		goto out;
	st = deliver_body(&k, out);
	out->replace_body = st == SM_OK;
out:
	mime_entity_free(tree);
	if (k.sp != NULL && !spool_on_disk(k.sp)) {
		struct buf left = BUF_INIT;

		/* plaintext never stays behind in freed memory */
		if (spool_take(k.sp, &left) == SM_OK)
			gw_buf_wipe_free(&left);
	}
	spool_free(k.sp);
	mime_headers_free(&outer);
	mime_headers_free(&content);
	return st;
}

sm_status
gw_decrypt_deliver(const struct gw_env *env, const struct gw_msg *m, const struct gw_report *r,
    struct gw_result *out)
{
	size_t nedits = out->nedits;
	char why[1024], mark[300];
	bool ok;
	sm_status st;

	ok = deliverable(m, r, why, sizeof(why));
	if (ok && (st = rcpts_can_open(env, m, r, &ok, why, sizeof(why))) != SM_OK)
		return st;
	if (ok && (st = deliver_decrypted(env, m, r, out)) != SM_OK) {
		if (st == SM_ERR_NOMEM)
			return st;
		/* Never partial plaintext: the original goes through. */
		snprintf(why, sizeof(why), "cannot rebuild the decrypted content: %s",
		    sm_strstatus(st));
		ok = false;
	}
	if (ok) {
		snprintf(mark, sizeof(mark), "%s; %s opened by smime-milter", env->cfg->authserv_id,
		    strstr(r->structure, "authEnveloped-data") ? "authEnveloped-data" :
		    "enveloped-data");
		if ((st = gw_edit_add(out, GW_HDR_ADD, "X-SMIME-Decrypted", 0, mark)) != SM_OK)
			return st;
		buf_append_str(&out->summary, ", delivered decrypted");
		return SM_OK;
	}
	/* Undo what deliver_decrypted began; the removal of forgeries
	 * stays. */
	edits_truncate(out, nedits);
	out->replace_body = false;
	gw_buf_wipe_free(&out->body);
	spool_free(out->body_spool);
	out->body_spool = NULL;
	out->body_off = 0;
	buf_printf(&out->summary, ", delivered as received: %s", why);
	return SM_OK;
}
