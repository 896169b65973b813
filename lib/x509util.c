/*
 * x509util.c — certificate helpers (see x509util.h for the rules).
 */
#include "x509util.h"

#include "address.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

/* ASCII-only case folding: domains are compared byte-wise in the C sense,
 * independent of the process locale (a Turkish locale must not make "I"
 * and "i" different). */
static int
ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Bytes a mailbox may contain: printable ASCII without space, or UTF-8
 * (SMTPUTF8 local parts). Controls, space and DEL never. */
static bool
addr_byte_ok(unsigned char c)
{
	return c > 0x20 && c != 0x7f;
}

sm_status
x509u_addr_normalise(const char *in, char **out)
{
	char norm[512];
	const char *at;
	size_t i, len;
	char *s;

	*out = NULL;
	if (in == NULL)
		return SM_ERR_ARG;
	len = strlen(in);
	at = strrchr(in, '@');
	if (at == NULL || at == in || at[1] == '\0')
		return SM_ERR_PARSE;
	for (i = 0; i < len; i++)
		if (!addr_byte_ok((unsigned char)in[i]))
			return SM_ERR_PARSE;
	/* The one comparison rule (address.h) wherever it accepts the
	 * address; otherwise (a UTF-8 local part, say) ASCII case folding of
	 * the whole address, which is what it does for ASCII. */
	if (addr_normalize(in, norm, sizeof(norm)) == SM_OK)
		s = strdup(norm);
	else if ((s = strdup(in)) != NULL)
		for (i = 0; i < len; i++)
			s[i] = (char)ascii_lower((unsigned char)s[i]);
	if (s == NULL)
		return SM_ERR_NOMEM;
	*out = s;
	return SM_OK;
}

bool
x509u_addr_equal(const char *a, const char *b)
{
	char *na = NULL, *nb = NULL;
	bool eq;

	if (x509u_addr_normalise(a, &na) != SM_OK ||
	    x509u_addr_normalise(b, &nb) != SM_OK) {
		free(na);
		return false;
	}
	eq = strcmp(na, nb) == 0;
	free(na);
	free(nb);
	return eq;
}

char *
x509u_addr_lower(const char *in)
{
	char *s;
	size_t i;

	if (in == NULL || (s = strdup(in)) == NULL)
		return NULL;
	for (i = 0; s[i]; i++)
		s[i] = (char)ascii_lower((unsigned char)s[i]);
	return s;
}

void
x509u_strv_free(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Append a copy of (p, len) to a string vector. */
static sm_status
strv_push(char ***v, size_t *n, const char *p, size_t len)
{
	char **nv, *s;

	s = malloc(len + 1);
	if (s == NULL)
		return SM_ERR_NOMEM;
	memcpy(s, p, len);
	s[len] = '\0';
	nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (nv == NULL) {
		free(s);
		return SM_ERR_NOMEM;
	}
	nv[(*n)++] = s;
	*v = nv;
	return SM_OK;
}

/* The text of an ASN.1 string when it is a clean single-byte string: no
 * NULs and no bytes an address may not contain. */
static bool
asn1_clean_text(const ASN1_STRING *s, const char **p, size_t *len)
{
	const unsigned char *d = ASN1_STRING_get0_data(s);
	int n = ASN1_STRING_length(s);
	int i;

	if (d == NULL || n <= 0)
		return false;
	for (i = 0; i < n; i++)
		if (!addr_byte_ok(d[i]))
			return false;
	*p = (const char *)d;
	*len = (size_t)n;
	return true;
}

/* Is (p, len) a mailbox: a non-empty local part, '@', a non-empty domain? */
static bool
text_is_address(const char *p, size_t len)
{
	const char *at = NULL;
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] == '@')
			at = p + i;
	return at != NULL && at != p && at != p + len - 1;
}

/* The SAN rfc822Name entries. *present tells whether the certificate has
 * any rfc822Name at all, clean or not. */
static sm_status
san_emails(X509 *cert, GENERAL_NAMES **gens_out, bool *present)
{
	GENERAL_NAMES *gens;
	int crit = -1, i;

	*gens_out = NULL;
	*present = false;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL)
		/* -1: absent. -2 (duplicate extension) or a parse error: the
		 * certificate is malformed, and we must not fall back to the
		 * subject for it. */
		return crit == -1 ? SM_OK : SM_ERR_PARSE;
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++)
		if (sk_GENERAL_NAME_value(gens, i)->type == GEN_EMAIL)
			*present = true;
	*gens_out = gens;
	return SM_OK;
}

sm_status
x509u_addresses(X509 *cert, char ***out, size_t *n, bool *from_subject)
{
	GENERAL_NAMES *gens = NULL;
	X509_NAME *subj;
	bool present;
	char **v = NULL;
	size_t cnt = 0, len;
	const char *p;
	sm_status st;
	int i;

	*out = NULL;
	*n = 0;
	if (from_subject)
		*from_subject = false;
	st = san_emails(cert, &gens, &present);
	if (st != SM_OK)
		goto done;
	if (present) {
		for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
			GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

			if (g->type != GEN_EMAIL ||
			    !asn1_clean_text(g->d.rfc822Name, &p, &len) ||
			    !text_is_address(p, len))
				continue;
			if ((st = strv_push(&v, &cnt, p, len)) != SM_OK)
				goto done;
		}
		goto done;
	}
	if (from_subject)
		*from_subject = true;
	subj = X509_get_subject_name(cert);
	for (i = -1; (i = X509_NAME_get_index_by_NID(
			  subj, NID_pkcs9_emailAddress, i)) >= 0;) {
		X509_NAME_ENTRY *e = X509_NAME_get_entry(subj, i);

		if (!asn1_clean_text(X509_NAME_ENTRY_get_data(e), &p, &len) ||
		    !text_is_address(p, len))
			continue;
		if ((st = strv_push(&v, &cnt, p, len)) != SM_OK)
			goto done;
	}
done:
	GENERAL_NAMES_free(gens);
	if (st != SM_OK) {
		x509u_strv_free(v, cnt);
		return st;
	}
	*out = v;
	*n = cnt;
	return SM_OK;
}

bool
x509u_has_address(X509 *cert, const char *addr)
{
	char **v = NULL;
	size_t n = 0, i;
	bool found = false;

	if (x509u_addresses(cert, &v, &n, NULL) != SM_OK)
		return false;
	for (i = 0; i < n && !found; i++)
		found = x509u_addr_equal(v[i], addr);
	x509u_strv_free(v, n);
	return found;
}

sm_status
x509u_domains(X509 *cert, char ***out, size_t *n)
{
	GENERAL_NAMES *gens = NULL;
	bool present;
	char **v = NULL;
	size_t cnt = 0, len, j;
	const char *p;
	sm_status st;
	int i;

	*out = NULL;
	*n = 0;
	st = san_emails(cert, &gens, &present);
	for (i = 0; st == SM_OK && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_EMAIL ||
		    !asn1_clean_text(g->d.rfc822Name, &p, &len))
			continue;
		if (p[0] == '@') {
			p++;
			len--;
		}
		if (len == 0 || memchr(p, '@', len) != NULL)
			continue;
		if ((st = strv_push(&v, &cnt, p, len)) != SM_OK)
			break;
		for (j = 0; j < len; j++)
			v[cnt - 1][j] =
			    (char)ascii_lower((unsigned char)v[cnt - 1][j]);
	}
	GENERAL_NAMES_free(gens);
	if (st != SM_OK) {
		x509u_strv_free(v, cnt);
		return st;
	}
	*out = v;
	*n = cnt;
	return SM_OK;
}

static void
hex_encode(const unsigned char *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 0xf];
	}
	out[2 * n] = '\0';
}

sm_status
x509u_fingerprint(X509 *cert, char out[X509U_FP_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	out[0] = '\0';
	if (cert == NULL)
		return SM_ERR_ARG;
	if (!X509_digest(cert, EVP_sha256(), md, &len) || len != 32)
		return SM_ERR_CRYPTO;
	hex_encode(md, len, out);
	return SM_OK;
}

sm_status
x509u_key_fingerprint(X509 *cert, char out[X509U_FP_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	out[0] = '\0';
	if (cert == NULL)
		return SM_ERR_ARG;
	if (!X509_pubkey_digest(cert, EVP_sha256(), md, &len) || len != 32)
		return SM_ERR_CRYPTO;
	hex_encode(md, len, out);
	return SM_OK;
}

bool
x509u_fingerprint_parse(const char *in, char out[X509U_FP_SIZE])
{
	size_t n = 0;

	if (in == NULL)
		return false;
	for (; *in; in++) {
		int c = ascii_lower((unsigned char)*in);

		if (c == ':')
			continue;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) ||
		    n == 64)
			return false;
		out[n++] = (char)c;
	}
	if (n != 64)
		return false;
	out[64] = '\0';
	return true;
}

/* Drain a memory BIO into a fresh C string. */
static sm_status
bio_to_string(BIO *b, char **out)
{
	char *p, *s;
	long n = BIO_get_mem_data(b, &p);

	if (n < 0)
		return SM_ERR_CRYPTO;
	s = malloc((size_t)n + 1);
	if (s == NULL)
		return SM_ERR_NOMEM;
	if (n > 0)
		memcpy(s, p, (size_t)n);
	s[n] = '\0';
	*out = s;
	return SM_OK;
}

sm_status
x509u_name_text(const X509_NAME *name, char **out)
{
	BIO *b;
	sm_status st = SM_ERR_CRYPTO;

	*out = NULL;
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return SM_ERR_NOMEM;
	/* RFC 2253 with UTF-8 kept as UTF-8 (not \XX escapes), readable in
	 * `smimectl cert list` and valid in JSON. */
	if (X509_NAME_print_ex(b, name, 0,
			       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0)
		st = bio_to_string(b, out);
	BIO_free(b);
	return st;
}

sm_status
x509u_serial_hex(X509 *cert, char **out)
{
	BIGNUM *bn;
	char *hex, *s = NULL;
	size_t i;

	*out = NULL;
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	if (bn == NULL)
		return SM_ERR_CRYPTO;
	hex = BN_bn2hex(bn);
	BN_free(bn);
	if (hex == NULL)
		return SM_ERR_NOMEM;
	s = strdup(hex);
	OPENSSL_free(hex);
	if (s == NULL)
		return SM_ERR_NOMEM;
	for (i = 0; s[i]; i++)
		s[i] = (char)ascii_lower((unsigned char)s[i]);
	*out = s;
	return SM_OK;
}

enum x509u_key_type
x509u_key_type(X509 *cert, int *bits)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	enum x509u_key_type t = X509U_KEY_OTHER;

	if (bits)
		*bits = pk ? EVP_PKEY_get_bits(pk) : 0;
	if (pk == NULL)
		return t;
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA: t = X509U_KEY_RSA; break;
	case EVP_PKEY_EC: t = X509U_KEY_EC; break;
	case EVP_PKEY_ED25519: t = X509U_KEY_ED25519; break;
	case EVP_PKEY_ED448: t = X509U_KEY_ED448; break;
	case EVP_PKEY_DSA: t = X509U_KEY_DSA; break;
	default: break; /* RSA-PSS keys among them: they cannot encrypt */
	}
	return t;
}

static const char *const key_type_names[] = {
	[X509U_KEY_OTHER] = "other",	 [X509U_KEY_RSA] = "rsa",
	[X509U_KEY_EC] = "ec",		 [X509U_KEY_ED25519] = "ed25519",
	[X509U_KEY_ED448] = "ed448",	 [X509U_KEY_DSA] = "dsa",
};

const char *
x509u_key_type_name(enum x509u_key_type t)
{
	if ((size_t)t >= sizeof(key_type_names) / sizeof(key_type_names[0]))
		return "other";
	return key_type_names[t];
}

enum x509u_key_type
x509u_key_type_from_name(const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof(key_type_names) / sizeof(key_type_names[0]);
	     i++)
		if (strcmp(name, key_type_names[i]) == 0)
			return (enum x509u_key_type)i;
	return X509U_KEY_OTHER;
}

bool
x509u_ku_allows_encryption(X509 *cert)
{
	uint32_t ku = X509_get_key_usage(cert);
	uint32_t need;

	switch (x509u_key_type(cert, NULL)) {
	case X509U_KEY_RSA: need = KU_KEY_ENCIPHERMENT; break;
	case X509U_KEY_EC: need = KU_KEY_AGREEMENT; break;
	default: return false;
	}
	/* X509_get_key_usage() reports "no extension" as all bits set. */
	return (ku & need) != 0;
}

bool
x509u_eku_allows_email(X509 *cert)
{
	uint32_t xku = X509_get_extended_key_usage(cert);

	return (xku & (XKU_SMIME | XKU_ANYEKU)) != 0;
}

bool
x509u_extensions_invalid(X509 *cert)
{
	return (X509_get_extension_flags(cert) & EXFLAG_INVALID) != 0;
}

sm_status
x509u_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return SM_ERR_PARSE;
	*out = timegm(&tm);
	return SM_OK;
}

sm_status
x509u_not_before(X509 *cert, time_t *out)
{
	return x509u_time(X509_get0_notBefore(cert), out);
}

sm_status
x509u_not_after(X509 *cert, time_t *out)
{
	return x509u_time(X509_get0_notAfter(cert), out);
}

enum x509u_validity
x509u_validity(X509 *cert, time_t now)
{
	time_t nb, na;

	if (x509u_not_before(cert, &nb) != SM_OK ||
	    x509u_not_after(cert, &na) != SM_OK)
		return X509U_BAD_TIME;
	if (now < nb)
		return X509U_NOT_YET_VALID;
	/* notAfter is the last second of validity (RFC 5280 §4.1.2.5). */
	if (now > na)
		return X509U_EXPIRED;
	return X509U_VALID;
}

void
x509u_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (len == 0)
		return;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d", &tm) == 0)
		buf[0] = '\0';
}

bool
x509u_is_self_signed(X509 *cert)
{
	return cert != NULL && X509_self_signed(cert, 1) == 1;
}

struct verify_opts {
	bool allow_self_signed;
};

/* Ignore the leaf's own validity window (the callers report expiry with
 * its date, before asking about trust) and, when the admin opted in,
 * accept a self-signed leaf. Everything else keeps OpenSSL's verdict. */
static int
verify_cb(int ok, X509_STORE_CTX *ctx)
{
	const struct verify_opts *o = X509_STORE_CTX_get_app_data(ctx);
	int err = X509_STORE_CTX_get_error(ctx);
	int depth = X509_STORE_CTX_get_error_depth(ctx);

	if (ok || depth != 0 || o == NULL)
		return ok;
	if (err == X509_V_ERR_CERT_HAS_EXPIRED ||
	    err == X509_V_ERR_CERT_NOT_YET_VALID)
		return 1;
	if (o->allow_self_signed &&
	    err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT &&
	    x509u_is_self_signed(X509_STORE_CTX_get_current_cert(ctx)))
		return 1;
	return ok;
}

/* The span in which every certificate of a built chain is valid. */
static void
chain_span(STACK_OF(X509) *chain, time_t *from, time_t *until)
{
	time_t nb, na;

	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);

		if (x509u_not_before(c, &nb) != SM_OK ||
		    x509u_not_after(c, &na) != SM_OK) {
			*from = 1; /* unknown: an empty span */
			*until = 0;
			return;
		}
		if (nb > *from)
			*from = nb;
		if (na < *until)
			*until = na;
	}
}

sm_status
x509u_verify(X509 *cert, STACK_OF(X509) *untrusted, X509_STORE *trust,
	     bool allow_self_signed, time_t now, int *verr)
{
	return x509u_verify_span(cert, untrusted, trust, allow_self_signed,
				 now, verr, NULL, NULL);
}

sm_status
x509u_verify_span(X509 *cert, STACK_OF(X509) *untrusted, X509_STORE *trust,
		  bool allow_self_signed, time_t now, int *verr,
		  time_t *from, time_t *until)
{
	struct verify_opts o = { allow_self_signed };
	X509_STORE *empty = NULL;
	X509_STORE_CTX *ctx = NULL;
	sm_status st = SM_ERR_NOMEM;
	int rc;

	if (verr)
		*verr = X509_V_OK;
	if (from && until) {
		*from = (time_t)LLONG_MIN;
		*until = (time_t)LLONG_MAX;
	}
	if (cert == NULL)
		return SM_ERR_ARG;
	if (trust == NULL) {
		/* No anchors: only an allowed self-signed certificate can
		 * pass. */
		if ((empty = X509_STORE_new()) == NULL)
			goto done;
		trust = empty;
	}
	if ((ctx = X509_STORE_CTX_new()) == NULL)
		goto done;
	if (!X509_STORE_CTX_init(ctx, trust, cert, untrusted)) {
		st = SM_ERR_CRYPTO;
		goto done;
	}
	X509_STORE_CTX_set_app_data(ctx, &o);
	X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
	rc = X509_verify_cert(ctx);
	if (rc == 1) {
		st = SM_OK;
		if (from && until)
			chain_span(X509_STORE_CTX_get0_chain(ctx), from, until);
	} else {
		st = SM_ERR_VERIFY;
		if (verr)
			*verr = X509_STORE_CTX_get_error(ctx);
	}
done:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(empty);
	return st;
}
