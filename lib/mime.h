/*
 * mime.h — the gateway's MIME layer: headers, Content-Type, entity trees,
 * transfer encodings, S/MIME structure detection, RFC 8551 canonical form
 * and the builders for signed and enveloped output.
 *
 * Conventions for the whole module:
 *  - Every function returns an sm_status (or a plain value that cannot
 *    fail). Malformed input gives SM_ERR_PARSE, input over a limit gives
 *    SM_ERR_LIMIT, a failed allocation SM_ERR_NOMEM. Nothing here exits or
 *    asserts on message data.
 *  - Input line endings may be CRLF (what Postfix passes) or bare LF (files
 *    on disk); both are accepted everywhere. Everything this module
 *    *produces* uses CRLF.
 *  - The parser never copies bodies: entities hold views (pointer + length)
 *    into the caller's bytes, which must outlive the entity tree. Header
 *    names and values are copied (they are small and bounded by limits).
 *  - Output buffers (struct buf) are appended to, never reset. On failure
 *    their length is restored to what it was on entry.
 *  - Destructors accept NULL and zeroed structs.
 */
#ifndef SMIME_MIME_H
#define SMIME_MIME_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "status.h"

/* ------------------------------------------------------------------ */
/* Header lists                                                         */
/* ------------------------------------------------------------------ */

/*
 * One header field. name is the field name without the colon; value is
 * everything after the colon exactly as given: it may start with a space
 * and may contain folding ("\r\n\t...", or "\n\t..." from LF files).
 * Use mime_header_unfold() before interpreting a value.
 */
struct mime_header {
	char *name;
	char *value;
};

/* An ordered list of header fields. A zeroed struct is an empty list. */
struct mime_headers {
	struct mime_header *v;
	size_t n, cap;
};

#define MIME_HEADERS_INIT { NULL, 0, 0 }

/*
 * Append a copy of name/value. name must be a valid field name (printable
 * US-ASCII without ':' or space, not empty): SM_ERR_ARG otherwise, so that
 * serialising the list can never produce a broken header. value is stored
 * as given. Returns SM_OK, SM_ERR_ARG or SM_ERR_NOMEM.
 */
sm_status mime_headers_add(struct mime_headers *h, const char *name,
    const char *value);

/* The value of the first field called name (ASCII case-insensitive), or
 * NULL. The pointer is owned by h and valid until h changes. */
const char *mime_headers_get(const struct mime_headers *h, const char *name);

/* How many fields are called name (case-insensitive). */
size_t mime_headers_count(const struct mime_headers *h, const char *name);

/* Remove every field called name (case-insensitive), keeping the order of
 * the others. Returns how many were removed; cannot fail. */
size_t mime_headers_remove(struct mime_headers *h, const char *name);

/*
 * Give the field called name the value value: the first occurrence is
 * replaced in place (its position kept), further occurrences are removed;
 * without one, the field is appended. SM_OK, SM_ERR_ARG, SM_ERR_NOMEM;
 * on failure h is unchanged.
 */
sm_status mime_headers_set(struct mime_headers *h, const char *name,
    const char *value);

/* Append copies of every field of src to dst. On failure dst is unchanged.
 * SM_OK or SM_ERR_NOMEM. */
sm_status mime_headers_copy(struct mime_headers *dst,
    const struct mime_headers *src);

/* Free every field and the array; h becomes an empty list. NULL-safe. */
void mime_headers_free(struct mime_headers *h);

/*
 * Unfold a header value: every CR and LF is removed (RFC 5322 unfolding
 * keeps the whitespace that follows a line break; dropping *every* line
 * break, not only those before whitespace, also defuses header injection
 * in values that did not come from a parser), then leading and trailing
 * spaces and tabs are trimmed. Returns a new string the caller frees, or
 * NULL when out of memory.
 */
char *mime_header_unfold(const char *value);

/*
 * Append "Name: value\r\n" to out with the value unfolded first and then
 * folded at whitespace so that lines stay within 78 octets where possible.
 * A word that cannot be broken may make a line longer than 78, but never
 * longer than 998 (RFC 5322 §2.1.1): such a value gives SM_ERR_LIMIT.
 * SM_ERR_ARG for an invalid name. On failure out is unchanged.
 */
sm_status mime_header_fold(const char *name, const char *value,
    struct buf *out);

/* ------------------------------------------------------------------ */
/* Content-Type                                                         */
/* ------------------------------------------------------------------ */

/* A parameter: name lowercased, value unquoted and unescaped (RFC 2231
 * continuations joined and percent-decoded; the charset is not converted). */
struct mime_param {
	char *name;
	char *value;
};

/* A parsed Content-Type: type and subtype lowercased. */
struct mime_ctype {
	char *type;
	char *subtype;
	struct mime_param *params;
	size_t nparams;
};

#define MIME_CTYPE_INIT { NULL, NULL, NULL, 0 }

/*
 * Parse a Content-Type value (folded or not, with or without a leading
 * space) into *out, which must be zeroed or freed. Handles quoted and
 * unquoted values, backslash escapes in quoted strings, (nested) comments,
 * case-insensitive names and RFC 2231 (name*=, name*0=, name*1*= ...).
 *
 * Errors, SM_ERR_PARSE: no "type/subtype"; an unterminated quoted string
 * or comment; a parameter given twice; RFC 2231 sections with a gap, a
 * duplicate or a leading zero; a value decoding to a NUL byte.
 * SM_ERR_LIMIT: more than 128 parameters. Junk that does not hide a
 * parameter (a parameter without "=", text between a value and the next
 * ";") is skipped, as mail readers do. When both "name" and "name*" forms
 * are present the RFC 2231 form wins.
 * On failure *out is left zeroed. Free with mime_ctype_free().
 */
sm_status mime_ctype_parse(const char *value, struct mime_ctype *out);

/* The value of parameter name (case-insensitive), or NULL. */
const char *mime_ctype_param(const struct mime_ctype *ct, const char *name);

/* True when ct is type/subtype; subtype NULL matches any subtype. */
bool mime_ctype_is(const struct mime_ctype *ct, const char *type,
    const char *subtype);

/* Free the strings and params; ct becomes zeroed. NULL-safe. */
void mime_ctype_free(struct mime_ctype *ct);

/* ------------------------------------------------------------------ */
/* Entity trees                                                         */
/* ------------------------------------------------------------------ */

/*
 * Bounds applied while parsing; every one of them, when exceeded, makes
 * the parse fail with SM_ERR_LIMIT before the excess is allocated.
 */
struct mime_limits {
	size_t max_headers;       /* header fields in one entity */
	size_t max_total_headers; /* header fields in the whole tree */
	size_t max_header_len;    /* one field: name, colon, value, folding */
	size_t max_parts;         /* entities in the whole tree (root too) */
	size_t max_boundary_len;  /* length of a boundary parameter */
	unsigned max_depth;       /* nesting; the root is depth 0. Values
	                           * above 1000 count as 1000 so recursion
	                           * never threatens the stack. */
};

/* 1000 headers per entity, 20000 in all, 64 KiB per header, 1000 parts,
 * boundaries up to 200 octets (RFC 2046 says 70; real mailers exceed it),
 * depth 32. */
extern const struct mime_limits mime_default_limits;

/*
 * One MIME entity. All pointers into the source bytes are views: they stay
 * valid only while the caller's buffer does.
 *
 * raw/raw_len: the whole entity (headers, blank line, body) exactly as in
 *   the source. For a part of a multipart it runs from the byte after the
 *   line break that ends the delimiter line up to (excluding) the line
 *   break that precedes the next delimiter: that line break belongs to the
 *   delimiter (RFC 2046 §5.1.1). This is the byte range a detached
 *   signature covers. NULL/0 for the root of mime_parse_message(), whose
 *   headers never were bytes.
 * body/body_len: the body still transfer-encoded.
 * preamble/epilogue: multipart only (otherwise NULL/0). The preamble ends
 *   before the line break preceding the first delimiter; the epilogue
 *   starts after the line break ending the close delimiter.
 * parts/nparts: the children of a multipart; for message/rfc822 (and
 *   message/global) carried as 7bit, 8bit or binary, the one embedded
 *   message — unless that message is itself malformed, which leaves the
 *   part an opaque leaf rather than failing the enclosing message.
 *   Leaves have none.
 * ct: parsed Content-Type, or text/plain; charset=us-ascii when absent
 *   (message/rfc822 inside multipart/digest), per RFC 2045/2046.
 * cte: Content-Transfer-Encoding lowercased, first word only; "7bit" when
 *   absent.
 */
struct mime_entity {
	struct mime_headers hdrs;
	struct mime_ctype ct;
	char *cte;
	const unsigned char *raw;
	size_t raw_len;
	const unsigned char *body;
	size_t body_len;
	const unsigned char *preamble;
	size_t preamble_len;
	const unsigned char *epilogue;
	size_t epilogue_len;
	struct mime_entity **parts;
	size_t nparts;
};

/*
 * Parse a whole entity (headers, blank line, body) from p/n. lim NULL
 * means mime_default_limits. On success *out is a new tree the caller
 * frees with mime_entity_free(); it points into p, which must stay valid.
 * On failure *out is NULL.
 *
 * A first line "From ..." or ">From ..." (an mbox envelope line, common in
 * forwarded messages saved from a mailbox) is skipped.
 *
 * SM_ERR_PARSE: a header line that is neither a field nor a continuation;
 * a NUL or bare CR in a header; Content-Type or Content-Transfer-Encoding
 * given twice; an unparseable Content-Type; a multipart without boundary,
 * with an empty boundary, one ending in a space, holding a control or
 * 8-bit character, or starting with an enclosing boundary (equal to it
 * or extending it: readers that match delimiters by prefix would cut
 * the enclosing part at the inner delimiter lines); no delimiter, no
 * part, or no close delimiter.
 * SM_ERR_LIMIT: any mime_limits bound, including a boundary longer than
 * max_boundary_len. SM_ERR_NOMEM.
 */
sm_status mime_parse(const unsigned char *p, size_t n,
    const struct mime_limits *lim, struct mime_entity **out);

/*
 * The milter case: top-level headers arrived one by one (hdrs, copied into
 * the root entity; values may hold folding), the body separately. Same
 * rules, limits and ownership as mime_parse(); the root's raw is NULL.
 */
sm_status mime_parse_message(const struct mime_headers *hdrs,
    const unsigned char *body, size_t n, const struct mime_limits *lim,
    struct mime_entity **out);

/* Free a tree from mime_parse*(). NULL-safe. */
void mime_entity_free(struct mime_entity *e);

/*
 * Append e's body with the transfer encoding undone: base64 (strict, see
 * mime_b64_decode) and quoted-printable decoded; 7bit, 8bit and binary
 * copied as they are. SM_ERR_UNSUPPORTED for any other encoding,
 * SM_ERR_PARSE for invalid base64, SM_ERR_NOMEM.
 */
sm_status mime_decode_body(const struct mime_entity *e, struct buf *out);

/* ------------------------------------------------------------------ */
/* S/MIME structure                                                     */
/* ------------------------------------------------------------------ */

enum mime_smime_kind {
	MIME_SMIME_NONE,             /* not an S/MIME message */
	MIME_SMIME_SIGNED_DETACHED,  /* multipart/signed, pkcs7-signature */
	MIME_SMIME_SIGNED_OPAQUE,    /* pkcs7-mime; smime-type=signed-data */
	MIME_SMIME_ENVELOPED,        /* smime-type=enveloped-data */
	MIME_SMIME_AUTH_ENVELOPED,   /* smime-type=authEnveloped-data */
	MIME_SMIME_CERTS_ONLY,       /* smime-type=certs-only, or *.p7c */
	MIME_SMIME_PKCS7_UNKNOWN,    /* PKCS#7 whose content type the CMS
	                              * layer has to sniff */
};

/*
 * Classify the S/MIME structure of entity e (normally the root). Pure:
 * looks only at the tree.
 *  - multipart/signed with protocol application/pkcs7-signature or
 *    application/x-pkcs7-signature, exactly two parts, the second of
 *    type application/(x-)pkcs7-signature: SIGNED_DETACHED. Anything else
 *    claiming that protocol is malformed: NONE.
 *  - application/pkcs7-mime or application/x-pkcs7-mime: by smime-type
 *    (case-insensitive) signed-data, enveloped-data, authEnveloped-data,
 *    certs-only; without a known smime-type a name/filename ending in
 *    .p7c means CERTS_ONLY, anything else PKCS7_UNKNOWN.
 *  - application/octet-stream named *.p7m: PKCS7_UNKNOWN; *.p7c:
 *    CERTS_ONLY (old clients sent these).
 *  - Anything else: NONE. S/MIME parts nested inside another multipart
 *    do not make the message S/MIME.
 */
enum mime_smime_kind mime_smime_kind(const struct mime_entity *e);

/* A static name for a kind ("signed-detached", ...), for logs. */
const char *mime_smime_kind_name(enum mime_smime_kind k);

/* ------------------------------------------------------------------ */
/* Outbound transformation                                              */
/* ------------------------------------------------------------------ */

/*
 * Split a message's header list: every field whose name starts with
 * "Content-" (case-insensitive) goes, in order, to content; everything
 * else, MIME-Version included, to outer. When content receives no
 * Content-Type, "Content-Type: text/plain; charset=us-ascii" is appended
 * (the RFC 2045 default, made explicit because the entity is about to
 * travel inside another one). outer and content must be empty
 * (SM_ERR_ARG otherwise, and they are not touched); on SM_ERR_NOMEM both
 * are left empty.
 */
sm_status mime_split_headers(const struct mime_headers *all,
    struct mime_headers *outer, struct mime_headers *content);

/*
 * Produce the canonical entity to sign or encrypt (RFC 8551 §3.1.1-3.1.2):
 * content_hdrs + CRLF + body, appended to out, with
 *  - every line ending CRLF;
 *  - every leaf labelled 8bit or binary, or holding 8-bit bytes, NULs,
 *    bare CRs or lines over 998 octets, re-encoded (recursively, inside
 *    multiparts and message/rfc822): text parts to quoted-printable,
 *    everything else to base64, Content-Transfer-Encoding updated. A
 *    base64 or quoted-printable part needing repair keeps its encoding;
 *  - multipart and message/rfc822 containers relabelled 7bit when they
 *    were 8bit or binary;
 *  - a preamble or epilogue that is not 7-bit clean dropped (readers
 *    ignore them);
 *  - anything already clean, base64/QP parts in particular, left
 *    byte-for-byte as it was (apart from LF -> CRLF).
 * After this the body is pure 7bit: a relay's 8bit->7bit downgrade leaves
 * it alone. Header *values* keep any 8-bit bytes they had (their charset
 * is unknown and relays do not rewrite headers); header lines over 998
 * octets are refolded. Parsing follows mime_parse_message() (same errors,
 * lim NULL = defaults). SM_ERR_UNSUPPORTED for a part that would need
 * re-encoding but cannot be: an unknown transfer encoding, or a
 * message/rfc822 whose embedded message did not parse (RFC 2046 forbids
 * base64 there). On failure out is unchanged.
 */
sm_status mime_canonicalize(const struct mime_headers *content_hdrs,
    const unsigned char *body, size_t n, const struct mime_limits *lim,
    struct buf *out);

/* ------------------------------------------------------------------ */
/* Streaming                                                            */
/* ------------------------------------------------------------------ */

/* The piece size of streamed output (and of the body it reads). */
#define MIME_CHUNK 65536

/*
 * Where streamed output goes: write() gets the bytes in order, in pieces
 * of about MIME_CHUNK. read_done (may be NULL) is called now and then
 * while a large body is read: the bytes of the view read so far are no
 * longer needed resident (spool_drop_pages()).
 */
struct mime_sink {
	sm_status (*write)(void *arg, const unsigned char *p, size_t n);
	void (*read_done)(void *arg);
	void *arg;
};

/*
 * mime_canonicalize() of a tree mime_parse_message() already made (one
 * parse feeds detection and canonical form), streamed to sink: the same
 * bytes, in pieces. content_hdrs replace the root's header fields (its
 * Content-* fields, as header protection left them; Content-Type and
 * Content-Transfer-Encoding must be those the tree was parsed with, bar
 * parameters other than boundary). Leaves that need re-encoding are
 * decoded in pieces, except base64 and quoted-printable ones needing
 * repair, which are decoded whole. On failure part of the output may have
 * been written: the caller discards it.
 */
/* mime_parse_message() calling pager->read_done() now and then while it
 * scans a large body for delimiters (pager->write is not used). */
sm_status mime_parse_message_paged(const struct mime_headers *hdrs,
    const unsigned char *body, size_t n, const struct mime_limits *lim,
    const struct mime_sink *pager, struct mime_entity **out);

sm_status mime_canonicalize_tree(struct mime_entity *root,
    const struct mime_headers *content_hdrs, const struct mime_sink *sink);

/*
 * Base64 in pieces, byte-identical to mime_b64_encode() of everything
 * written (76-character lines, CRLF): write() as often as needed, then
 * finish() once, which writes the rest and releases the writer.
 */
struct mime_b64w {
	const struct mime_sink *sink;
	unsigned char rest[57];
	size_t nrest;
	struct buf out;
};
void mime_b64w_init(struct mime_b64w *w, const struct mime_sink *sink);
sm_status mime_b64w_write(struct mime_b64w *w, const unsigned char *p, size_t n);
sm_status mime_b64w_finish(struct mime_b64w *w);
void mime_b64w_free(struct mime_b64w *w);

/* ------------------------------------------------------------------ */
/* Encodings                                                            */
/* ------------------------------------------------------------------ */

/* Room for a boundary from mime_boundary_new(), NUL included. */
#define MIME_BOUNDARY_SIZE 48

/*
 * Write a fresh random boundary (NUL-terminated, under 70 octets, only
 * RFC 2046 bchars) into out, which must hold MIME_BOUNDARY_SIZE bytes.
 * It starts with "=_" which cannot occur in base64 or quoted-printable
 * text, and carries 180 random bits from RAND_bytes. SM_ERR_ARG when
 * outlen is too small, SM_ERR_CRYPTO when the RNG fails.
 */
sm_status mime_boundary_new(char *out, size_t outlen);

/* Append base64 of in: 76-character lines, each ended by CRLF (none for
 * empty input). SM_OK or SM_ERR_NOMEM. */
sm_status mime_b64_encode(const unsigned char *in, size_t n, struct buf *out);

/*
 * Append the bytes base64 text in encodes. Spaces, tabs, CR and LF are
 * ignored anywhere. SM_ERR_PARSE for any other character outside the
 * alphabet, a length that is not a multiple of four, misplaced or excess
 * "=" padding, or anything after the padding. On failure out is unchanged.
 */
sm_status mime_b64_decode(const unsigned char *in, size_t n, struct buf *out);

/*
 * Append in quoted-printable (RFC 2045 §6.7). CRLF pairs are hard line
 * breaks; every other byte, bare CR and LF included, is encoded so that
 * decoding gives back exactly in. Lines stay within 76 characters (soft
 * breaks "=\r\n"); whitespace before a line end is encoded; a line never
 * starts with "." or "From " (both encoded, =2E and =46), and a line made
 * by a soft break never starts with "-" (=2D), so re-encoded text inside
 * a multipart cannot grow a new delimiter line. SM_ERR_NOMEM.
 */
sm_status mime_qp_encode(const unsigned char *in, size_t n, struct buf *out);

/*
 * Append the bytes quoted-printable text in encodes. Soft breaks ("=" at
 * the end of a line, even followed by spaces) vanish, "=XX" (either case)
 * becomes the byte, whitespace at the end of a line is dropped (RFC 2045
 * rule 3: transports add it), line breaks are kept as they are, and an
 * "=" starting no valid sequence is kept literally, as RFC 2045
 * recommends. SM_OK or SM_ERR_NOMEM.
 */
sm_status mime_qp_decode(const unsigned char *in, size_t n, struct buf *out);

/* ------------------------------------------------------------------ */
/* Output builders                                                      */
/* ------------------------------------------------------------------ */

/*
 * Build a detached signature (RFC 8551 §3.5.3). Appends to out_hdrs
 *   Content-Type: multipart/signed; protocol="application/pkcs7-signature";
 *     micalg=<micalg>; boundary="<fresh boundary>"
 * and to out_body the multipart body: a short preamble, part 1 = entity
 * verbatim (the bytes that were signed: its raw range when parsed back is
 * exactly entity/n), part 2 = application/pkcs7-signature; name=smime.p7s
 * with sig_der in base64 and Content-Disposition: attachment;
 * filename=smime.p7s. micalg NULL means "sha-256"; it must be a token of
 * letters, digits and "-" (SM_ERR_ARG otherwise). The caller keeps
 * MIME-Version in the outer headers. On failure both outputs are as on
 * entry. SM_OK, SM_ERR_ARG, SM_ERR_CRYPTO (RNG), SM_ERR_NOMEM.
 */
sm_status mime_build_signed(const unsigned char *entity, size_t n,
    const unsigned char *sig_der, size_t sig_len, const char *micalg,
    struct mime_headers *out_hdrs, struct buf *out_body);

/*
 * Build an application/pkcs7-mime entity (RFC 8551 §3.2). smime_type is
 * one of signed-data, enveloped-data, authEnveloped-data, certs-only,
 * compressed-data (SM_ERR_ARG otherwise). Appends to out_hdrs
 *   Content-Type: application/pkcs7-mime; smime-type=<type>; name=smime.p7m
 *   Content-Transfer-Encoding: base64
 *   Content-Disposition: attachment; filename=smime.p7m
 *   Content-Description: S/MIME ...
 * (smime.p7c for certs-only, RFC 8551 §3.2.2) and der in base64 to
 * out_body. On failure both outputs are as on entry.
 */
sm_status mime_build_pkcs7(const unsigned char *der, size_t n,
    const char *smime_type, struct mime_headers *out_hdrs,
    struct buf *out_body);

/*
 * The pieces of mime_build_signed(), for a body streamed in between:
 * _head adds the Content-Type to out_hdrs, writes a fresh boundary into b
 * and the preamble up to the first part into pre; the entity follows
 * verbatim; _tail appends the signature part and the close delimiter to
 * post.
 */
sm_status mime_build_signed_head(const char *micalg, struct mime_headers *out_hdrs,
    char b[MIME_BOUNDARY_SIZE], struct buf *pre);
sm_status mime_build_signed_tail(const char *b, const unsigned char *sig_der, size_t sig_len,
    struct buf *post);

/* The header fields of mime_build_pkcs7(), for a body written in pieces
 * (mime_b64w). */
sm_status mime_build_pkcs7_headers(const char *smime_type, struct mime_headers *out_hdrs);

/*
 * Append hdrs, a blank line and body as one entity (to nest
 * sign-then-encrypt). Each field is written "Name: value" with the value's
 * line breaks turned into CRLF, a single-line value longer than the
 * 78-octet line folded, and any line over 998 octets refolded. body is
 * appended unchanged (the builders already produce CRLF). SM_ERR_PARSE
 * when a value holds a line break not followed by a space or tab (it
 * would start a new header field); on failure out is unchanged.
 */
sm_status mime_entity_serialize(const struct mime_headers *hdrs,
    const unsigned char *body, size_t n, struct buf *out);

#endif
