/*
 * buf.h — the growable byte string used everywhere instead of fixed arrays.
 *
 * A zeroed struct buf is a valid empty buffer. data is always NUL-terminated
 * (one spare byte past len) once anything was appended, so text can be used
 * as a C string; binary data may contain NULs. buf_free(NULL-data) is safe.
 */
#ifndef SMIME_BUF_H
#define SMIME_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "status.h"

struct buf {
	unsigned char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

/* Make room for at least n more bytes. */
sm_status buf_reserve(struct buf *b, size_t n);
sm_status buf_append(struct buf *b, const void *p, size_t n);
sm_status buf_append_str(struct buf *b, const char *s);
sm_status buf_append_char(struct buf *b, char c);
sm_status buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
sm_status buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Forget the contents, keep the allocation. */
void buf_reset(struct buf *b);
/* Release the memory; b becomes an empty buffer again. */
void buf_free(struct buf *b);
/* Hand the bytes to the caller (NUL-terminated, caller frees); b is emptied.
 * Returns an empty string (not NULL) for an empty buffer, NULL on ENOMEM. */
char *buf_steal(struct buf *b);
/* The contents as a C string ("" when empty). */
const char *buf_cstr(const struct buf *b);

#endif
