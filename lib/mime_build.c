/*
 * mime_build.c — the output builders: multipart/signed and
 * application/pkcs7-mime entities.
 */
#include "mime.h"
#include "mime_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------------ */
/* Output builders                                                      */
/* ------------------------------------------------------------------ */

static bool
micalg_ok(const char *micalg)
{
	if (micalg[0] == '\0' || strlen(micalg) > 32)
		return false;
	for (size_t i = 0; micalg[i]; i++) {
		unsigned char ch = (unsigned char)micalg[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
	}
	return true;
}

sm_status
mime_build_signed_head(const char *micalg, struct mime_headers *out_hdrs,
    char b[MIME_BOUNDARY_SIZE], struct buf *pre)
{
	struct buf ct = BUF_INIT;
	size_t hstart = out_hdrs->n;
	sm_status st;

	if (micalg == NULL)
		micalg = "sha-256";
	if (!micalg_ok(micalg))
		return SM_ERR_ARG;
	if ((st = mime_boundary_new(b, MIME_BOUNDARY_SIZE)) != SM_OK)
		return st;
	if ((st = buf_printf(&ct,
	         "multipart/signed; protocol=\"application/pkcs7-signature\"; "
	         "micalg=%s; boundary=\"%s\"", micalg, b)) != SM_OK ||
	    (st = mime_headers_add(out_hdrs, "Content-Type", buf_cstr(&ct))) != SM_OK ||
	    (st = buf_printf(pre, "This is an S/MIME signed message in MIME format.\r\n"
	         "\r\n--%s\r\n", b)) != SM_OK)
		mime_headers_truncate(out_hdrs, hstart);
	buf_free(&ct);
	return st;
}

/* The CRLF after the entity belongs to the delimiter, so the first part is
 * exactly the signed bytes. The base64 text ends in CRLF, which serves as
 * the close delimiter's line break. */
sm_status
mime_build_signed_tail(const char *b, const unsigned char *sig_der, size_t sig_len,
    struct buf *post)
{
	sm_status st;

	if (sig_der == NULL || sig_len == 0)
		return SM_ERR_ARG;
	if ((st = buf_printf(post,
	         "\r\n--%s\r\n"
	         "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
	         "Content-Transfer-Encoding: base64\r\n"
	         "Content-Disposition: attachment; filename=smime.p7s\r\n"
	         "Content-Description: S/MIME Cryptographic Signature\r\n"
	         "\r\n", b)) != SM_OK ||
	    (st = mime_b64_encode(sig_der, sig_len, post)) != SM_OK)
		return st;
	return buf_printf(post, "--%s--\r\n", b);
}

sm_status
mime_build_signed(const unsigned char *entity, size_t n,
    const unsigned char *sig_der, size_t sig_len, const char *micalg,
    struct mime_headers *out_hdrs, struct buf *out_body)
{
	char b[MIME_BOUNDARY_SIZE];
	size_t hstart, bstart;
	sm_status st = SM_ERR_ARG;

	if (out_hdrs == NULL || out_body == NULL)
		return SM_ERR_ARG;
	hstart = out_hdrs->n;
	bstart = out_body->len;
	if (entity == NULL || n == 0 || sig_der == NULL || sig_len == 0)
		goto out;
	if ((st = mime_build_signed_head(micalg, out_hdrs, b, out_body)) != SM_OK ||
	    (st = buf_append(out_body, entity, n)) != SM_OK ||
	    (st = mime_build_signed_tail(b, sig_der, sig_len, out_body)) != SM_OK)
		goto out;
out:
	if (st != SM_OK) {
		mime_headers_truncate(out_hdrs, hstart);
		out_body->len = bstart;
		if (out_body->data)
			out_body->data[bstart] = '\0';
	}
	return st;
}

sm_status
mime_build_pkcs7_headers(const char *smime_type, struct mime_headers *out_hdrs)
{
	static const struct {
		const char *type, *file, *desc;
	} kinds[] = {
		{ "signed-data", "smime.p7m", "S/MIME Signed Message" },
		{ "enveloped-data", "smime.p7m", "S/MIME Encrypted Message" },
		{ "authEnveloped-data", "smime.p7m",
		    "S/MIME Encrypted Message" },
		{ "certs-only", "smime.p7c", "S/MIME Certificates" },
		{ "compressed-data", "smime.p7z", "S/MIME Compressed Message" },
	};
	struct buf v = BUF_INIT;
	size_t hstart = out_hdrs->n, k;
	sm_status st = SM_ERR_ARG;

	for (k = 0; smime_type != NULL && k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (strcmp(smime_type, kinds[k].type) == 0)
			break;
	if (smime_type == NULL || k == sizeof(kinds) / sizeof(kinds[0]))
		return SM_ERR_ARG;
	if ((st = buf_printf(&v, "application/pkcs7-mime; smime-type=%s; "
	                         "name=%s", kinds[k].type, kinds[k].file)) != SM_OK ||
	    (st = mime_headers_add(out_hdrs, "Content-Type", buf_cstr(&v))) != SM_OK ||
	    (st = mime_headers_add(out_hdrs, "Content-Transfer-Encoding", "base64")) != SM_OK)
		goto out;
	buf_reset(&v);
	if ((st = buf_printf(&v, "attachment; filename=%s", kinds[k].file)) != SM_OK ||
	    (st = mime_headers_add(out_hdrs, "Content-Disposition", buf_cstr(&v))) != SM_OK)
		goto out;
	st = mime_headers_add(out_hdrs, "Content-Description", kinds[k].desc);
out:
	if (st != SM_OK)
		mime_headers_truncate(out_hdrs, hstart);
	buf_free(&v);
	return st;
}

sm_status
mime_build_pkcs7(const unsigned char *der, size_t n, const char *smime_type,
    struct mime_headers *out_hdrs, struct buf *out_body)
{
	size_t hstart, bstart;
	sm_status st = SM_ERR_ARG;

	if (out_hdrs == NULL || out_body == NULL)
		return SM_ERR_ARG;
	hstart = out_hdrs->n;
	bstart = out_body->len;
	if (der == NULL || n == 0 || smime_type == NULL)
		goto out;
	if ((st = mime_build_pkcs7_headers(smime_type, out_hdrs)) != SM_OK)
		goto out;
	st = mime_b64_encode(der, n, out_body);
out:
	if (st != SM_OK) {
		mime_headers_truncate(out_hdrs, hstart);
		out_body->len = bstart;
		if (out_body->data)
			out_body->data[bstart] = '\0';
	}
	return st;
}
