/*
 * mime_int.h — what the parts of the MIME module share (mime.c,
 * mime_parse.c, mime_canon.c, mime_build.c). Not for other modules.
 */
#ifndef SMIME_MIME_INT_H
#define SMIME_MIME_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "mime.h"

/* Recursion depth never exceeds this, whatever the limits say. */
#define MIME_HARD_MAX_DEPTH 1000u
/* RFC 5322 §2.1.1 line limits, CRLF excluded. */
#define LINE_SOFT 78
#define LINE_HARD 998

/* mime.c: small string helpers (ASCII only, locale-free). */
char *mime_xstrndup(const void *p, size_t n);
unsigned char mime_ascii_lower(unsigned char c);
void mime_str_lower(char *s);
bool mime_ascii_eq(const char *a, const char *b);
bool mime_ascii_starts_with(const char *s, const char *prefix);
bool mime_ascii_ends_with(const char *s, const char *suffix);
bool mime_is_wsp(unsigned char c);
bool mime_valid_field_name(const char *s, size_t n);
/* Append a field, taking name and value (allocated) over. */
sm_status mime_headers_push(struct mime_headers *h, char *name, char *value);
/* A Content-Type or (want_subtype false) Content-Disposition value. */
sm_status mime_ctype_parse_any(const char *s, bool want_subtype, struct mime_ctype *out);
/* Drop the fields from index keep on. */
void mime_headers_truncate(struct mime_headers *h, size_t keep);
/* Would "name:value" fit the 998-octet line limit without a bare CR? */
bool mime_field_lines_ok(const char *name, const char *value);
/* Write one field with CRLF line ends (see mime.c). */
sm_status mime_emit_field(struct buf *out, const char *name, const char *value, bool fold78);

/* mime_parse.c: 7bit, 8bit or binary. */
bool mime_is_identity_cte(const char *cte);

#endif
