#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sm_status
buf_reserve(struct buf *b, size_t n)
{
	size_t need, cap;
	unsigned char *p;

	if (n > SIZE_MAX - b->len - 1)
		return SM_ERR_NOMEM;
	need = b->len + n + 1;
	if (need <= b->cap)
		return SM_OK;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (p == NULL)
		return SM_ERR_NOMEM;
	b->data = p;
	b->cap = cap;
	return SM_OK;
}

sm_status
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) != SM_OK)
		return SM_ERR_NOMEM;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return SM_OK;
}

sm_status
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

sm_status
buf_append_char(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

sm_status
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		return SM_ERR_ARG;
	if (buf_reserve(b, (size_t)n) != SM_OK)
		return SM_ERR_NOMEM;
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return SM_OK;
}

sm_status
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	sm_status st;

	va_start(ap, fmt);
	st = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return st;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *
buf_steal(struct buf *b)
{
	char *s;

	if (b->data == NULL)
		return strdup("");
	s = (char *)b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

const char *
buf_cstr(const struct buf *b)
{
	return b->data ? (const char *)b->data : "";
}
