/*
 * encword.h — RFC 2047 encoded-words in unstructured header fields (the
 * Subject), so that a subject tag is found however the client encoded it:
 * "=?UTF-8?B?W2VuY3J5cHRdIEdyw7zDn2U=?=" and "=?UTF-8?Q?=5Bencrypt=5D?=" both
 * carry "[encrypt]".
 */
#ifndef SMIME_ENCWORD_H
#define SMIME_ENCWORD_H

#include <stdbool.h>

#include "buf.h"
#include "status.h"

/*
 * Decode an unstructured header value into UTF-8 (RFC 2047 §6): each
 * encoded-word "=?CHARSET[*LANG]?B|Q?TEXT?=" is decoded and converted from
 * its charset (any charset iconv knows); white space between two adjacent
 * encoded-words is dropped; everything else is kept as it is. The value
 * may be folded. *had_words (may be NULL) tells whether there was any
 * encoded-word. SM_ERR_PARSE (why says why) for an encoded-word that
 * cannot be decoded: unknown charset, bad base64, bytes invalid in the
 * charset. SM_ERR_NOMEM.
 */
sm_status encword_decode(const char *value, struct buf *out, bool *had_words, char *why,
    size_t whylen);

/* Encode UTF-8 text as an unstructured header value: as it is when it is
 * printable ASCII, else as "=?UTF-8?B?...?=" words of at most 75
 * characters, split at character boundaries, separated by a space. */
sm_status encword_encode(const char *utf8, struct buf *out);

#endif
