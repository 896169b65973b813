/*
 * fuzz_address — the address parsers: envelope addresses (addr_normalize),
 * the one mailbox of From (addr_from_header) and RFC 5322 address lists
 * (alist_parse), with their agreement checked: a From that yields one
 * mailbox is an address list of exactly that mailbox.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "addrlist.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), out[512], again[512];
	struct alist l;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (addr_normalize(s, out, sizeof(out)) == SM_OK &&
	    (addr_normalize(out, again, sizeof(again)) != SM_OK || strcmp(out, again) != 0)) {
		fprintf(stderr, "addr_normalize is not idempotent: '%s' -> '%s'\n", s, out);
		abort();
	}
	if (alist_parse(s, &l) == SM_OK && addr_from_header(s, out, sizeof(out)) == SM_OK &&
	    (l.al_n != 1 || strcmp(l.al_addr[0], out) != 0)) {
		fprintf(stderr, "From '%s' is '%s', the list has %zu mailbox(es)\n", s, out, l.al_n);
		abort();
	}
	alist_free(&l);
	free(s);
	return 0;
}
