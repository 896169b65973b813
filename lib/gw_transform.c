/*
 * gw_transform.c — the outbound body, streamed through spools: the
 * canonical entity is written in 64 KiB pieces from the one parse; a
 * detached signature digests it on its way into the multipart/signed
 * spool (one pass, no copy of the entity to read back), and with
 * encryption the multipart/signed goes straight into the envelope
 * (smime_sealer); opaque signatures and
 * envelopes are streamed (CMS_STREAM) through base64 into the next spool.
 * Every spool stays in memory up to spool_threshold and moves to a private
 * file in spool_dir past it, so no stage holds the whole body in memory.
 * While the message body (an mmap'd spool) is read, its pages are dropped
 * behind the reader.
 */
#include "gw_outbound_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <openssl/evp.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "spool.h"

/* The digests, fetched once from the providers (a fetch by name per
 * message takes OpenSSL's locks for nothing); kept for the process. */
static EVP_MD *digests[3];
static pthread_once_t digests_once = PTHREAD_ONCE_INIT;

static void
digests_fetch(void)
{
	digests[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
	digests[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
	digests[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
}

static const EVP_MD *
digest_md(enum cfg_digest d)
{
	size_t i = d == CFG_DIGEST_SHA384 ? 1 : d == CFG_DIGEST_SHA512 ? 2 : 0;

	if (pthread_once(&digests_once, digests_fetch) != 0 || digests[i] == NULL)
		return i == 1 ? EVP_sha384() : i == 2 ? EVP_sha512() : EVP_sha256();
	return digests[i];
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

void
gw_stage_read_done(void *arg)
{
	spool_drop_pages(((struct stage_sink *)arg)->from);
}

/* ------------------------------------------------------------------ */
/* The body, streamed through spools                                    */
/* ------------------------------------------------------------------ */

/* A spool for one stage's output: memory up to spool_threshold, then a
 * private file in spool_dir. */
static sm_status
stage_spool(const struct gw_env *env, struct spool **sp)
{
	return spool_new(env->cfg->spool_dir, env->cfg->spool_threshold, UINT64_MAX, sp);
}

static sm_status
stage_write(void *arg, const unsigned char *p, size_t n)
{
	struct stage_sink *k = arg;
	sm_status st = k->seal ? smime_sealer_write(k->seal, p, n) : spool_write(k->to, p, n);

	if (st == SM_OK && k->tee != NULL)
		st = smime_signer_write(k->tee, p, n);
	return st;
}

/* Reading a spool from the start. OpenSSL's copy loops read 1 KiB at a
 * time (SMIME_crlf_copy's MAX_SMLEN): a spool on disk would take a pread
 * per KiB, about 2,000 system calls per MB and stage, so the spool is
 * read ahead in MIME_CHUNK pieces and served from there. */
struct stage_src {
	struct spool *sp;
	uint64_t off;		/* of the spool, where ahead starts */
	unsigned char *ahead;	/* MIME_CHUNK bytes; NULL until the first read */
	size_t pos, len;	/* served / held in ahead */
};

static sm_status
stage_read(void *arg, unsigned char *p, size_t n, size_t *got)
{
	struct stage_src *s = arg;
	sm_status st;

	*got = 0;
	if (n >= MIME_CHUNK && s->pos == s->len) {
		/* a large read needs no copy through ahead */
		st = spool_pread(s->sp, s->off, p, n, got);
		s->off += *got;
		return st;
	}
	if (s->pos == s->len) {
		if (s->ahead == NULL && (s->ahead = malloc(MIME_CHUNK)) == NULL)
			return SM_ERR_NOMEM;
		s->pos = s->len = 0;
		if ((st = spool_pread(s->sp, s->off, s->ahead, MIME_CHUNK, &s->len)) != SM_OK)
			return st;
		s->off += s->len;
	}
	*got = s->len - s->pos < n ? s->len - s->pos : n;
	memcpy(p, s->ahead + s->pos, *got);
	s->pos += *got;
	return SM_OK;
}

static void
stage_src_free(struct stage_src *s)
{
	free(s->ahead);
	s->ahead = NULL;
}

/* CMS output, base64 on its way into a spool. */
static sm_status
stage_b64(void *arg, const unsigned char *p, size_t n)
{
	return mime_b64w_write(arg, p, n);
}

/* hdrs serialised (and the blank line) at the start of sp: the entity a
 * later stage may wrap. *off: where the body starts. */
static sm_status
stage_head(struct stage_sink *k, const struct mime_headers *hdrs, uint64_t *off)
{
	struct buf h = BUF_INIT;
	sm_status st = mime_entity_serialize(hdrs, NULL, 0, &h);

	if (st == SM_OK)
		st = stage_write(k, h.data, h.len);
	*off = h.len;
	buf_free(&h);
	return st;
}

/* A client's signature covers the bytes as they are: re-encoding anything
 * would break it, and inside the envelope no relay can touch 8bit, so the
 * entity is the Content-* fields and the body unchanged. */
static sm_status
outbound_copy_entity(const struct gw_msg *m, struct outbound *o, const struct mime_sink *s)
{
	struct buf h = BUF_INIT;
	sm_status st = mime_entity_serialize(&o->content, NULL, 0, &h);

	if (st == SM_OK)
		st = s->write(s->arg, h.data, h.len);
	buf_free(&h);

	for (size_t at = 0; st == SM_OK && at < m->body_len; at += MIME_CHUNK) {
		size_t k = m->body_len - at < MIME_CHUNK ? m->body_len - at : MIME_CHUNK;

		st = s->write(s->arg, m->body + at, k);
		if ((at / MIME_CHUNK) % 64 == 63)
			s->read_done(s->arg);
	}
	s->read_done(s->arg);
	return st;
}

/* The canonical entity, its header section protected (RFC 9788) as the
 * policy says, written where to says (a spool or an envelope, and the
 * signer tee when there is one). */
static sm_status
outbound_canon(const struct gw_env *env, const struct gw_msg *m, struct outbound *o,
    const struct stage_sink *to)
{
	const struct cfg_outbound *set = &o->plan.o;
	const char *skip = o->by_header ? env->cfg->outbound.trigger_header : NULL;
	struct stage_sink k = { to->to, m->body_spool, to->tee, to->seal };
	struct mime_sink sink = { stage_write, gw_stage_read_done, &k };
	const unsigned char *body = m->body;
	size_t len = m->body_len;
	sm_status st;

	if (o->split_st != SM_OK)
		return o->split_st;
	if (o->existing != MIME_SMIME_NONE)
		return outbound_copy_entity(m, o, &sink);
	st = hp_protect(set->header_protection, o->encrypt, set->legacy_display, &o->outer,
	    o->tagged && o->encrypt ? buf_cstr(&o->subject) : NULL, skip, &o->content, &body,
	    &len, &o->legacy, &o->hp);
	if (st != SM_OK)
		return st;
	if (body != m->body) {
		/* The legacy display element made a new body: parse that. */
		mime_entity_free(o->root);
		o->root = NULL;
		if ((o->parse_st = mime_parse_message(&o->content, body, len, NULL, &o->root)) != SM_OK)
			return o->parse_st;
	}
	if (o->root == NULL)
		return o->parse_st;
	return mime_canonicalize_tree(o->root, &o->content, &sink);
}

/* multipart/signed, made in one pass into out (o->signd, or the
 * envelope): the headers and the preamble, then the canonical entity
 * written out and into the signature's digest at once, then the signature
 * part. No copy of the entity to read back. */
static sm_status
sign_detached(const struct gw_env *env, const struct gw_msg *m, struct outbound *o,
    const struct smime_key *sk, const EVP_MD *md, struct stage_sink *out)
{
	struct buf der = BUF_INIT, pre = BUF_INIT, post = BUF_INIT;
	char b[MIME_BOUNDARY_SIZE];
	sm_status st;

	if ((st = mime_build_signed_head(smime_micalg(md), &o->newhdrs, b, &pre)) != SM_OK ||
	    (st = stage_head(out, &o->newhdrs, &o->signd_off)) != SM_OK ||
	    (st = stage_write(out, pre.data, pre.len)) != SM_OK ||
	    (st = smime_signer_begin(sk, md, &out->tee, o->err, sizeof(o->err))) != SM_OK)
		goto out;
	if ((st = outbound_canon(env, m, o, out)) != SM_OK) {
		snprintf(o->err, sizeof(o->err), "cannot canonicalise the message: %s",
		    sm_strstatus(st));
		goto out;
	}
	st = smime_signer_end(out->tee, &der, o->err, sizeof(o->err));
	out->tee = NULL;
	if (st != SM_OK || (st = mime_build_signed_tail(b, der.data, der.len, &post)) != SM_OK)
		goto out;
	st = stage_write(out, post.data, post.len);
out:
	smime_signer_free(out->tee);
	out->tee = NULL;
	buf_free(&der);
	buf_free(&pre);
	buf_free(&post);
	return st;
}

/* application/pkcs7-mime; smime-type=signed-data: the SignedData streamed
 * through base64 into the spool. */
static sm_status
sign_opaque(struct outbound *o, const struct smime_key *sk, const EVP_MD *md,
    const struct smime_src *src)
{
	struct stage_sink k = { o->signd, NULL, NULL, NULL };
	struct mime_sink sink = { stage_write, NULL, &k };
	struct mime_b64w w;
	struct smime_out so = { stage_b64, &w };
	sm_status st;

	if ((st = mime_build_pkcs7_headers("signed-data", &o->newhdrs)) != SM_OK ||
	    (st = stage_head(&k, &o->newhdrs, &o->signd_off)) != SM_OK)
		return st;
	mime_b64w_init(&w, &sink);
	st = smime_sign_stream(sk, md, false, src, NULL, &so, o->err, sizeof(o->err));
	if (st == SM_OK)
		st = mime_b64w_finish(&w);
	mime_b64w_free(&w);
	return st;
}

/* Sign the canonical entity into o->signd (headers, then the body): a
 * detached signature while the entity is made, an opaque one from
 * o->canon. */
static sm_status
outbound_sign(const struct gw_env *env, const struct gw_msg *m, struct outbound *o)
{
	const struct keystore_key *k = o->signer;
	struct smime_key sk = { k->cert, k->pkey, k->chain };
	const EVP_MD *md = digest_md(o->plan.o.digest);
	struct stage_src from = { o->canon, 0, NULL, 0, 0 };
	struct smime_src src = { stage_read, &from };
	uint64_t t0 = metrics_now();
	struct stage_sink to = { NULL, NULL, NULL, NULL };
	sm_status st;

	if ((st = stage_spool(env, &o->signd)) != SM_OK)
		return st;
	to.to = o->signd;
	st = o->plan.o.sign_format == CFG_SIGN_DETACHED ? sign_detached(env, m, o, &sk, md, &to) :
	    sign_opaque(o, &sk, md, &src);
	stage_src_free(&from);
	metrics_observe(METRICS_STAGE_SIGN, t0);
	spool_free(o->canon); /* now inside the signed body: one copy, not two */
	o->canon = NULL;
	return st;
}

/* The canonical entity into a spool of its own (o->canon), for an opaque
 * signature or an envelope without a signature. */
static sm_status
outbound_canon_spool(const struct gw_env *env, const struct gw_msg *m, struct outbound *o)
{
	struct stage_sink to = { NULL, NULL, NULL, NULL };
	sm_status st = stage_spool(env, &o->canon);

	to.to = o->canon;
	if (st == SM_OK)
		st = outbound_canon(env, m, o, &to);
	if (st != SM_OK)
		snprintf(o->err, sizeof(o->err), "cannot canonicalise the message: %s",
		    sm_strstatus(st));
	return st;
}

/* The recipients' certificates (and the sender's copy) and the cipher
 * they all take. */
static sm_status
outbound_recipients(const struct gw_env *env, const struct gw_msg *m, struct outbound *o)
{
	caps_t *caps = calloc(m->nrcpts + 1, sizeof(*caps));
	int *kt = calloc(m->nrcpts + 1, sizeof(*kt));
	const struct keystore_key *own = o->signer;
	size_t nenc = 0;
	sm_status st = SM_ERR_NOMEM;

	if (caps == NULL || kt == NULL || (o->rcpt_certs = sk_X509_new_null()) == NULL)
		goto out;
	for (size_t i = 0; i < m->nrcpts; i++) {
		if (o->rk[i].cert == NULL)
			continue;
		sk_X509_push(o->rcpt_certs, o->rk[i].cert);
		caps[nenc] = o->rk[i].caps;
		kt[nenc++] = key_type_of(o->rk[i].cert);
	}
	/* The sender's copy joins only an envelope of its own key type. */
	if (o->plan.o.encrypt_to_sender) {
		if (own == NULL && !o->unauthorised &&
		    keystore_signer(env->ks, o->from, clock_now(), &own, NULL) != SM_OK)
			own = NULL;
		if (own && nenc > 0 && key_type_of(own->cert) == kt[0]) {
			sk_X509_push(o->rcpt_certs, own->cert);
			o->sender_copy = true;
		} else if (own) {
			log_qid(LOG_INFO, m->qid,
			    "sender copy left out: %s key type differs from the recipients'", o->from);
		}
	}
	o->crypto = true;
	st = nenc ? smime_choose(caps, kt, nenc, cipher_of(o->plan.o.cipher),
	    o->plan.o.rsa_padding == CFG_PADDING_OAEP, &o->choice) : SM_ERR_NOKEY;
	if (st != SM_OK) {
		snprintf(o->err, sizeof(o->err), "no usable recipient certificate");
	} else if (o->choice.mixed_key_types) {
		st = SM_ERR_UNSUPPORTED;
		snprintf(o->err, sizeof(o->err), "recipients mix EC and RSA keys");
	}
out:
	free(caps);
	free(kt);
	return st;
}

/* Encrypt the signed entity (or the canonical one) into o->env. */
static sm_status
outbound_encrypt(const struct gw_env *env, struct outbound *o)
{
	struct stage_src from = { o->signd ? o->signd : o->canon, 0, NULL, 0, 0 };
	struct smime_src src = { stage_read, &from };
	struct stage_sink k = { NULL, NULL, NULL, NULL };
	struct mime_sink sink = { stage_write, NULL, &k };
	struct mime_b64w w;
	struct smime_out so = { stage_b64, &w };
	uint64_t t0 = metrics_now();
	sm_status st;

	if ((st = stage_spool(env, &o->env)) != SM_OK)
		return st;
	k.to = o->env;
	mime_b64w_init(&w, &sink);
	st = smime_encrypt_stream(o->rcpt_certs, o->choice.cipher, o->choice.oaep, &src, &so,
	    o->err, sizeof(o->err));
	stage_src_free(&from);
	if (st == SM_OK)
		st = mime_b64w_finish(&w);
	mime_b64w_free(&w);
	metrics_observe(METRICS_STAGE_ENCRYPT, t0);
	mime_headers_free(&o->newhdrs);
	if (st == SM_OK)
		st = mime_build_pkcs7_headers(smime_cipher_smime_type(o->choice.cipher),
		    &o->newhdrs);
	return st;
}

/* Sign (detached) and encrypt in one pass: the multipart/signed is
 * written straight into the envelope, which goes through base64 into
 * o->env; no spool of the signed entity to read back. The sign stage's
 * time includes encrypting the content as it passes; the encrypt stage's
 * is the envelope's end (key transport, tag). */
static sm_status
outbound_sign_sealed(const struct gw_env *env, const struct gw_msg *m, struct outbound *o)
{
	const struct keystore_key *key = o->signer;
	struct smime_key sk = { key->cert, key->pkey, key->chain };
	struct stage_sink k = { NULL, NULL, NULL, NULL }, to = { NULL, NULL, NULL, NULL };
	struct mime_sink sink = { stage_write, NULL, &k };
	struct mime_b64w w;
	struct smime_out so = { stage_b64, &w };
	uint64_t t0 = metrics_now();
	sm_status st;

	if ((st = stage_spool(env, &o->env)) != SM_OK)
		return st;
	k.to = o->env;
	mime_b64w_init(&w, &sink);
	st = smime_sealer_begin(o->rcpt_certs, o->choice.cipher, o->choice.oaep, &so, &to.seal,
	    o->err, sizeof(o->err));
	if (st == SM_OK)
		st = sign_detached(env, m, o, &sk, digest_md(o->plan.o.digest), &to);
	metrics_observe(METRICS_STAGE_SIGN, t0);
	t0 = metrics_now();
	if (st == SM_OK) {
		st = smime_sealer_end(to.seal, o->err, sizeof(o->err));
		to.seal = NULL;
	}
	if (st == SM_OK)
		st = mime_b64w_finish(&w);
	smime_sealer_free(to.seal);
	mime_b64w_free(&w);
	metrics_observe(METRICS_STAGE_ENCRYPT, t0);
	mime_headers_free(&o->newhdrs);
	if (st == SM_OK)
		st = mime_build_pkcs7_headers(smime_cipher_smime_type(o->choice.cipher),
		    &o->newhdrs);
	return st;
}

/* Canonical form, signature, envelope. A failure of these sets o->crypto
 * (fail closed or on_error, outbound_crypto_fail). */
sm_status
gw_outbound_transform(const struct gw_env *env, const struct gw_msg *m, struct outbound *o)
{
	bool tee = o->sign && o->plan.o.sign_format == CFG_SIGN_DETACHED;
	sm_status st;

	if (tee && o->encrypt) {
		if ((st = outbound_recipients(env, m, o)) != SM_OK)
			return st;
		st = outbound_sign_sealed(env, m, o);
		o->crypto = st != SM_OK;
		return st;
	}
	if (!tee && (st = outbound_canon_spool(env, m, o)) != SM_OK) {
		o->crypto = true;
		return st;
	}
	if (o->sign && (st = outbound_sign(env, m, o)) != SM_OK) {
		o->crypto = true;
		return st;
	}
	if (!o->encrypt)
		return SM_OK;
	if ((st = outbound_recipients(env, m, o)) != SM_OK)
		return st;
	st = outbound_encrypt(env, o);
	o->crypto = st != SM_OK;
	return st;
}

/* The new body: the last stage's spool from where its body starts; one
 * still in memory is handed over as a buffer. */
sm_status
gw_outbound_body(struct outbound *o, struct gw_result *out)
{
	struct spool **last = o->env ? &o->env : &o->signd;
	uint64_t off = o->env ? 0 : o->signd_off;

	out->replace_body = true;
	if (spool_on_disk(*last)) {
		out->body_spool = *last;
		out->body_off = off;
		*last = NULL;
		return SM_OK;
	}
	if (spool_take(*last, &out->body) != SM_OK)
		return SM_ERR_ARG;
	memmove(out->body.data, out->body.data + off, out->body.len - (size_t)off);
	out->body.len -= (size_t)off;
	if (out->body.data)
		out->body.data[out->body.len] = '\0';
	return SM_OK;
}

uint64_t
gw_result_body_len(const struct gw_result *r)
{
	return r->body_spool ? spool_size(r->body_spool) - r->body_off : r->body.len;
}

sm_status
gw_result_body_read(const struct gw_result *r, uint64_t off, void *p, size_t n, size_t *got)
{
	*got = 0;
	if (r->body_spool != NULL)
		return spool_pread(r->body_spool, r->body_off + off, p, n, got);
	if (off < r->body.len) {
		*got = r->body.len - (size_t)off < n ? r->body.len - (size_t)off : n;
		memcpy(p, r->body.data + off, *got);
	}
	return SM_OK;
}
