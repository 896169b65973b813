/*
 * smime_open.c — an envelope decrypted in place (smime.h,
 * smime_decrypt_inplace): the same decision as smime_decrypt(), without
 * OpenSSL's copy of the encrypted content and without a second buffer
 * for the plaintext.
 *
 * The recipient matching is smime_envelope.c's (decrypt_pick_key), so
 * both paths pick the same key and fail alike.
 */
#include "smime.h"
#include "smime_int.h"
#include "smime_open.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>

/* The plaintext written to buf[0..w), never past what the source (the
 * ciphertext at buf[off..off+len)) has handed out: a block cipher's output
 * never runs ahead of its input. */
struct inplace {
	unsigned char *buf;
	size_t off, len, w;
	BIO *src;
};

static int
inplace_write(BIO *b, const char *p, int n)
{
	struct inplace *s = BIO_get_data(b);
	size_t read;

	if (s == NULL || n < 0)
		return -1;
	read = s->len - (size_t)BIO_ctrl_pending(s->src);
	if (s->w + (size_t)n > s->off + read)
		return -1;
	memcpy(s->buf + s->w, p, (size_t)n);
	s->w += (size_t)n;
	return n;
}

static long
inplace_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *inplace_method;
static pthread_once_t inplace_once = PTHREAD_ONCE_INIT;

static void
inplace_init_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "smime in-place sink");

	if (m == NULL)
		return;
	if (!BIO_meth_set_write(m, inplace_write) || !BIO_meth_set_ctrl(m, inplace_ctrl)) {
		BIO_meth_free(m);
		return;
	}
	inplace_method = m;
}

static BIO *
inplace_new(struct inplace *s)
{
	BIO *b;

	if (pthread_once(&inplace_once, inplace_init_method) != 0 || inplace_method == NULL ||
	    (b = BIO_new(inplace_method)) == NULL)
		return NULL;
	BIO_set_data(b, s);
	BIO_set_init(b, 1);
	return b;
}

/* CMS_decrypt of the detached content into the sink; the status and err
 * as smime_decrypt() words them. */
static sm_status
open_run(CMS_ContentInfo *cms, struct inplace *s, char *err, size_t errlen)
{
	BIO *sink = inplace_new(s);
	char tmp[256];
	sm_status st = SM_OK;

	if (sink == NULL) {
		sm_seterr(err, errlen, "decrypt: out of memory");
		return SM_ERR_NOMEM;
	}
	if (!CMS_decrypt(cms, NULL, NULL, s->src, sink, CMS_BINARY)) {
		if (ossl_drain(tmp, sizeof(tmp))) {
			sm_seterr(err, errlen, "decrypt: content cipher not available (%s; RC2 and "
			    "DES need smime_enable_legacy())", tmp);
			st = SM_ERR_UNSUPPORTED;
		} else {
			sm_seterr(err, errlen, "decrypt: content does not decrypt "
			    "(wrong key or corrupt envelope)");
			st = SM_ERR_CRYPTO;
		}
	}
	BIO_free(sink);
	return st;
}

sm_status
smime_decrypt_inplace(const unsigned char *shell, size_t sn, unsigned char *buf, size_t off,
    size_t len, const struct smime_key *keys, size_t nkeys, size_t *plen, char *err,
    size_t errlen)
{
	struct inplace s = { buf, off, len, 0, NULL };
	CMS_ContentInfo *cms = NULL;
	sm_status st = SM_ERR_NOKEY;
	bool matched = false;

	ERR_clear_error();
	sm_seterr(err, errlen, "ok");
	*plen = 0;
	if (buf == NULL || (keys == NULL && nkeys > 0) || len > INT_MAX) {
		sm_seterr(err, errlen, "decrypt: no output buffer");
		return SM_ERR_ARG;
	}
	if ((cms = cms_parse(shell, sn)) == NULL) {
		seterr_ossl(err, errlen, "decrypt: not a CMS structure");
		st = SM_ERR_PARSE;
		goto done;
	}
	if ((st = decrypt_pick_key(cms, keys, nkeys, &matched, err, errlen)) != SM_OK)
		goto done;
	st = SM_ERR_NOKEY;
	ERR_clear_error();
	if (!matched) {
		sm_seterr(err, errlen, "decrypt: none of our %zu key(s) is a recipient", nkeys);
		goto done;
	}
	if ((s.src = membio(buf + off, len)) == NULL) {
		sm_seterr(err, errlen, "decrypt: out of memory");
		st = SM_ERR_NOMEM;
		goto done;
	}
	if ((st = open_run(cms, &s, err, errlen)) == SM_OK)
		*plen = s.w;
	else
		OPENSSL_cleanse(buf, s.w);
done:
	BIO_free(s.src);
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return st;
}
