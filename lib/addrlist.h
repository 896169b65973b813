/*
 * addrlist.h — RFC 5322 address lists: the mailboxes of a From, To, Cc,
 * Resent-* or Reply-To header value.
 *
 * The parser follows RFC 5322 §3.4 with the obsolete forms of §4.4 that
 * real mail still carries: display names made of words, quoted strings and
 * RFC 2047 encoded-words; comments anywhere (nested, with quoted-pairs);
 * groups ("undisclosed-recipients:;", "team: a@x, b@y;"); angle-addr with an
 * obsolete source route ("<@relay:bob@x>", the route is dropped); a bare
 * addr-spec. A '<' inside a quoted string or a comment is text, never the
 * start of an address: "\"<bob@x>\" <ceo@y>" yields ceo@y.
 *
 * Each mailbox comes out as an addr-spec normalised by addr_normalize()
 * (lower case); a quoted local part keeps its quotes only when it needs them.
 */
#ifndef SMIME_ADDRLIST_H
#define SMIME_ADDRLIST_H

#include <stddef.h>

#include "status.h"

/* At most this many mailboxes are kept; a longer list is SM_ERR_LIMIT. */
#define ALIST_MAX 1024

struct alist {
	size_t al_n;
	char **al_addr; /* normalised addr-specs, al_n of them */
};

/* Parse an address-list. Empty groups and an empty value give al_n == 0.
 * SM_ERR_PARSE on a syntax error anywhere in the value (nothing is kept),
 * SM_ERR_NOMEM, SM_ERR_LIMIT. *out is always initialised; alist_free() it. */
sm_status alist_parse(const char *value, struct alist *out);
void alist_free(struct alist *l);
/* Is addr (normalised) one of the list's mailboxes? */
int alist_contains(const struct alist *l, const char *addr);

#endif
