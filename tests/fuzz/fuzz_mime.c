/*
 * fuzz_mime — the MIME parser and the RFC 8551 canonicaliser on arbitrary
 * bytes, with the properties checked on every input: whatever the
 * canonicaliser accepts comes out with CRLF line ends only (no bare CR, no
 * bare LF) and is a fixed point of canonicalisation (canonicalising it
 * again changes nothing).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mime.h"

static void
must(int cond, const char *what, const struct buf *b)
{
	if (!cond) {
		fprintf(stderr, "property broken: %s\n%.*s\n", what, (int)b->len,
		    b->data ? (const char *)b->data : "");
		abort();
	}
}

static void
crlf_only(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\n')
			must(i > 0 && b->data[i - 1] == '\r', "bare LF in the canonical form", b);
		if (b->data[i] == '\r')
			must(i + 1 < b->len && b->data[i + 1] == '\n',
			    "bare CR in the canonical form", b);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_entity *e = NULL, *e2 = NULL;
	struct buf once = BUF_INIT, twice = BUF_INIT, dec = BUF_INIT;

	if (mime_parse(data, size, NULL, &e) != SM_OK)
		return 0;
	(void)mime_smime_kind(e);
	(void)mime_decode_body(e, &dec);
	if (mime_canonicalize(&e->hdrs, e->body, e->body_len, NULL, &once) == SM_OK) {
		crlf_only(&once);
		must(mime_parse(once.data, once.len, NULL, &e2) == SM_OK,
		    "the canonical form does not parse", &once);
		must(mime_canonicalize(&e2->hdrs, e2->body, e2->body_len, NULL, &twice) == SM_OK,
		    "the canonical form does not canonicalise", &once);
		must(once.len == twice.len && memcmp(once.data, twice.data, once.len) == 0,
		    "canonicalisation is not a fixed point", &once);
	}
	mime_entity_free(e);
	mime_entity_free(e2);
	buf_free(&once);
	buf_free(&twice);
	buf_free(&dec);
	return 0;
}
