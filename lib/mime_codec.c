/*
 * mime_codec.c — base64 and quoted-printable (RFC 2045 §6.7, §6.8) and
 * random boundaries.
 *
 * Bodies reach 50 MB, so the encoders write straight into the output
 * buffer instead of appending byte by byte, and every function is one
 * linear pass.
 */
#include "mime.h"

#include <stdint.h>
#include <string.h>

#include <openssl/rand.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decoding classes: 0..63 the value; the rest below. */
enum { B64_BAD = 64, B64_SPACE = 65, B64_PAD = 66 };

/* A function rather than a lazily built table: nothing to initialise,
 * nothing shared between threads. */
static unsigned char
b64_class(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (unsigned char)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (unsigned char)(c - '0' + 52);
	switch (c) {
	case '+': return 62;
	case '/': return 63;
	case '=': return B64_PAD;
	case ' ': case '\t': case '\r': case '\n': return B64_SPACE;
	default: return B64_BAD;
	}
}

/* The base64 character of a 6-bit value, as a constant expression, so
 * that the pair table below is built by the compiler: nothing to
 * initialise at run time, nothing shared that is written. */
#define B64C(v) ((v) < 26 ? 'A' + (v) : (v) < 52 ? 'a' + (v) - 26 : \
    (v) < 62 ? '0' + (v) - 52 : (v) == 62 ? '+' : '/')
#define B64P(i) { (unsigned char)B64C((i) >> 6), (unsigned char)B64C((i) & 63) }
#define B64P4(i) B64P(i), B64P((i) + 1), B64P((i) + 2), B64P((i) + 3)
#define B64P16(i) B64P4(i), B64P4((i) + 4), B64P4((i) + 8), B64P4((i) + 12)
#define B64P64(i) B64P16(i), B64P16((i) + 16), B64P16((i) + 32), B64P16((i) + 48)
#define B64P256(i) B64P64(i), B64P64((i) + 64), B64P64((i) + 128), B64P64((i) + 192)
#define B64P1K(i) B64P256(i), B64P256((i) + 256), B64P256((i) + 512), B64P256((i) + 768)

/* Two base64 characters for each 12-bit value: half the lookups. */
static const unsigned char b64_pairs[4096][2] = {
	B64P1K(0), B64P1K(1024), B64P1K(2048), B64P1K(3072)
};

/* Three bytes as four base64 characters at w. */
static inline unsigned char *
b64_quad(unsigned char *w, const unsigned char *in)
{
	uint32_t v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];

	memcpy(w, b64_pairs[v >> 12], 2);
	memcpy(w + 2, b64_pairs[v & 4095], 2);
	return w + 4;
}

/* Whole 57-byte lines without a test per byte (bodies reach 50 MB); the
 * last, shorter line with its padding after them. */
sm_status
mime_b64_encode(const unsigned char *in, size_t n, struct buf *out)
{
	size_t chars, lines, total, i, j, full;
	unsigned char *w;
	uint32_t v;

	if (n == 0)
		return SM_OK;
	if (n > SIZE_MAX / 2)
		return SM_ERR_NOMEM;
	chars = (n + 2) / 3 * 4;
	lines = (chars + 75) / 76;
	total = chars + 2 * lines;
	if (buf_reserve(out, total) != SM_OK)
		return SM_ERR_NOMEM;
	w = out->data + out->len;
	full = n / 57 * 57;
	for (i = 0; i < full; i += 57) {
		for (j = 0; j < 57; j += 3)
			w = b64_quad(w, in + i + j);
		*w++ = '\r';
		*w++ = '\n';
	}
	if (i < n) {
		for (; i + 3 <= n; i += 3)
			w = b64_quad(w, in + i);
		if (i < n) {
			v = (uint32_t)in[i] << 16;
			if (i + 1 < n)
				v |= (uint32_t)in[i + 1] << 8;
			*w++ = (unsigned char)b64_alphabet[v >> 18];
			*w++ = (unsigned char)b64_alphabet[(v >> 12) & 63];
			*w++ = i + 1 < n ? (unsigned char)b64_alphabet[(v >> 6) & 63] : '=';
			*w++ = '=';
		}
		*w++ = '\r';
		*w++ = '\n';
	}
	out->len += total;
	out->data[out->len] = '\0';
	return SM_OK;
}

sm_status
mime_b64_decode(const unsigned char *in, size_t n, struct buf *out)
{
	size_t i, start = out->len;
	unsigned q = 0, pad = 0;
	bool done = false;
	uint32_t v = 0;
	unsigned char *w, k;
	sm_status st = SM_ERR_PARSE;

	if (buf_reserve(out, n / 4 * 3 + 3) != SM_OK)
		return SM_ERR_NOMEM;
	w = out->data + out->len;
	for (i = 0; i < n; i++) {
		k = b64_class(in[i]);
		if (k == B64_SPACE)
			continue;
		if (k == B64_BAD || done)
			goto out;
		if (k == B64_PAD) {
			/* "=" may only fill the last one or two places. */
			if (q < 2)
				goto out;
			pad++;
			k = 0;
		} else if (pad > 0) {
			goto out; /* a data character after "=" */
		}
		v = v << 6 | k;
		if (++q < 4)
			continue;
		*w++ = (unsigned char)(v >> 16);
		if (pad < 2)
			*w++ = (unsigned char)(v >> 8);
		if (pad < 1)
			*w++ = (unsigned char)v;
		done = pad > 0;
		q = 0;
		v = 0;
	}
	if (q != 0)
		goto out; /* truncated: not a whole number of quads */
	out->len = (size_t)(w - out->data);
	st = SM_OK;
out:
	if (st != SM_OK)
		out->len = start;
	out->data[out->len] = '\0';
	return st;
}

/*
 * A cursor writing into a buf, growing it in large steps: the QP encoder's
 * output size depends on the data, and growing per byte would cost a call
 * per byte on 50 MB bodies.
 */
struct qpw {
	struct buf *b;
	size_t room; /* writable bytes left before the next reserve */
};

static sm_status
qpw_put(struct qpw *w, const char *s, size_t n)
{
	if (w->room < n) {
		if (buf_reserve(w->b, 65536) != SM_OK)
			return SM_ERR_NOMEM;
		w->room = w->b->cap - w->b->len - 1;
	}
	memcpy(w->b->data + w->b->len, s, n);
	w->b->len += n;
	w->room -= n;
	return SM_OK;
}

static bool
crlf_at(const unsigned char *in, size_t n, size_t i)
{
	return i + 1 < n && in[i] == '\r' && in[i + 1] == '\n';
}

/* Must byte i be written as =XX, given the column it would land in and
 * whether that column starts a line made by a soft break? */
static bool
qp_must_encode(const unsigned char *in, size_t n, size_t i, size_t col,
    bool last, bool after_soft)
{
	unsigned char c = in[i];

	if (c == '=' || c > 126 || (c < 32 && c != '\t'))
		return true;
	if ((c == ' ' || c == '\t') && last)
		return true; /* trailing whitespace gets stripped in transit */
	if (col == 0 && c == '.')
		return true; /* a lone "." ends the SMTP DATA phase */
	if (col == 0 && c == 'F' && n - i >= 5 && memcmp(in + i, "From ", 5) == 0)
		return true; /* mbox writers would turn it into ">From " */
	if (after_soft && c == '-')
		return true; /* a new line "--boundary" would be a delimiter */
	return false;
}

sm_status
mime_qp_encode(const unsigned char *in, size_t n, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	struct qpw w = { out, 0 };
	size_t i = 0, col = 0, start = out->len, width;
	char trip[3];
	bool last, enc, soft = false;
	sm_status st = SM_ERR_NOMEM;

	while (i < n) {
		if (crlf_at(in, n, i)) {
			if (qpw_put(&w, "\r\n", 2) != SM_OK)
				goto out;
			col = 0;
			soft = false;
			i += 2;
			continue;
		}
		last = i + 1 == n || crlf_at(in, n, i + 1);
		enc = qp_must_encode(in, n, i, col, last, soft && col == 0);
		width = enc ? 3 : 1;
		/* A hard line's final character may use column 76; any
		 * other must leave room for the "=" of a soft break. */
		if (col + width > (last ? 76u : 75u)) {
			if (qpw_put(&w, "=\r\n", 3) != SM_OK)
				goto out;
			col = 0;
			soft = true;
			enc = qp_must_encode(in, n, i, col, last, true);
			width = enc ? 3 : 1;
		}
		if (enc) {
			trip[0] = '=';
			trip[1] = hex[in[i] >> 4];
			trip[2] = hex[in[i] & 15];
		} else {
			trip[0] = (char)in[i];
		}
		if (qpw_put(&w, trip, width) != SM_OK)
			goto out;
		col += width;
		i++;
	}
	st = SM_OK;
out:
	if (st != SM_OK)
		out->len = start;
	if (out->data)
		out->data[out->len] = '\0';
	return st;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Length of the line break at i (CRLF 2, LF 1), 0 when there is none. */
static size_t
linebreak_at(const unsigned char *in, size_t n, size_t i)
{
	if (i < n && in[i] == '\n')
		return 1;
	return crlf_at(in, n, i) ? 2 : 0;
}

sm_status
mime_qp_decode(const unsigned char *in, size_t n, struct buf *out)
{
	size_t i = 0, j, lb;
	unsigned char *w;
	int hi, lo;

	/* Decoding never grows the data. */
	if (buf_reserve(out, n) != SM_OK)
		return SM_ERR_NOMEM;
	w = out->data + out->len;
	while (i < n) {
		if (in[i] == '=') {
			if (i + 2 < n && (hi = hexval(in[i + 1])) >= 0 &&
			    (lo = hexval(in[i + 2])) >= 0) {
				*w++ = (unsigned char)(hi << 4 | lo);
				i += 3;
				continue;
			}
			j = i + 1;
			while (j < n && (in[j] == ' ' || in[j] == '\t'))
				j++;
			if (j == n) { /* soft break at the very end */
				i = n;
				continue;
			}
			if ((lb = linebreak_at(in, n, j)) > 0) {
				i = j + lb;
				continue;
			}
			*w++ = '=';
			i++;
			continue;
		}
		if (in[i] == ' ' || in[i] == '\t') {
			j = i;
			while (j < n && (in[j] == ' ' || in[j] == '\t'))
				j++;
			if (j == n || linebreak_at(in, n, j) > 0) {
				i = j; /* trailing whitespace: transport noise */
				continue;
			}
			memcpy(w, in + i, j - i);
			w += j - i;
			i = j;
			continue;
		}
		*w++ = in[i++];
	}
	out->len = (size_t)(w - out->data);
	out->data[out->len] = '\0';
	return SM_OK;
}

sm_status
mime_boundary_new(char *out, size_t outlen)
{
	/* 64 symbols, so six random bits pick one without bias; all of
	 * them are RFC 2046 bchars. */
	static const char sym[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.";
	static const char prefix[] = "=_smime_";
	enum { NRAND = 30 };
	unsigned char rnd[NRAND];
	size_t plen = sizeof(prefix) - 1, i;

	if (out == NULL || outlen < plen + NRAND + 1 ||
	    outlen < MIME_BOUNDARY_SIZE)
		return SM_ERR_ARG;
	if (RAND_bytes(rnd, NRAND) != 1)
		return SM_ERR_CRYPTO;
	memcpy(out, prefix, plen);
	for (i = 0; i < NRAND; i++)
		out[plen + i] = sym[rnd[i] & 63];
	out[plen + NRAND] = '\0';
	return SM_OK;
}

/* ------------------------------------------------------------------ */
/* Base64 in pieces                                                     */
/* ------------------------------------------------------------------ */

void
mime_b64w_init(struct mime_b64w *w, const struct mime_sink *sink)
{
	memset(w, 0, sizeof(*w));
	w->sink = sink;
}

static sm_status
b64w_spill(struct mime_b64w *w, bool all)
{
	sm_status st;

	if (w->out.len == 0 || (!all && w->out.len < MIME_CHUNK))
		return SM_OK;
	st = w->sink->write(w->sink->arg, w->out.data, w->out.len);
	buf_reset(&w->out);
	return st;
}

/* 57 input bytes make one full 76-character line, so encoding in
 * multiples of 57 gives exactly the lines of one encoding of the whole. */
sm_status
mime_b64w_write(struct mime_b64w *w, const unsigned char *p, size_t n)
{
	sm_status st;

	if (w->nrest > 0) {
		size_t k = sizeof(w->rest) - w->nrest < n ? sizeof(w->rest) - w->nrest : n;

		memcpy(w->rest + w->nrest, p, k);
		w->nrest += k;
		p += k;
		n -= k;
		if (w->nrest < sizeof(w->rest))
			return SM_OK;
		if ((st = mime_b64_encode(w->rest, w->nrest, &w->out)) != SM_OK)
			return st;
		w->nrest = 0;
	}
	while (n >= sizeof(w->rest)) {
		size_t k = n / sizeof(w->rest) * sizeof(w->rest);

		if (k > 57 * 1024)
			k = 57 * 1024;
		if ((st = mime_b64_encode(p, k, &w->out)) != SM_OK ||
		    (st = b64w_spill(w, false)) != SM_OK)
			return st;
		p += k;
		n -= k;
	}
	memcpy(w->rest, p, n);
	w->nrest = n;
	return b64w_spill(w, false);
}

sm_status
mime_b64w_finish(struct mime_b64w *w)
{
	sm_status st = mime_b64_encode(w->rest, w->nrest, &w->out);

	w->nrest = 0;
	if (st == SM_OK)
		st = b64w_spill(w, true);
	mime_b64w_free(w);
	return st;
}

void
mime_b64w_free(struct mime_b64w *w)
{
	buf_free(&w->out);
	w->nrest = 0;
}
