/*
 * address.h — e-mail addresses, domains and client networks.
 *
 * Addresses are compared the way mail admins expect (addr_equal): the
 * domain case-insensitively and IDNA-normalised, the local part
 * case-insensitively for ASCII (every real-world mailbox provider folds
 * case); addr_normalize() lowercases the whole address for storage.
 */
#ifndef SMIME_ADDRESS_H
#define SMIME_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "status.h"

/* Strip angle brackets, comments and surrounding space from an envelope or
 * From address and lowercase it: "<Bob@Partner.Example>" → "bob@partner.example".
 * Returns SM_ERR_PARSE for something that is not local@domain. */
sm_status addr_normalize(const char *in, char *out, size_t outlen);
/* The one mailbox of a From: header value ("Bob <bob@x>" → "bob@x"),
 * normalised, parsed per RFC 5322 (addrlist.h). SM_ERR_PARSE unless the
 * value holds exactly one mailbox: signing and deliver decisions rest on it. */
sm_status addr_from_header(const char *value, char *out, size_t outlen);
/*
 * The one address comparison rule (policy, key selection, sender checks):
 * the domain is compared case-insensitively after IDNA normalisation (a
 * U-label and its A-label are the same domain; a trailing dot is ignored);
 * the local part is compared case-insensitively for ASCII letters and
 * byte for byte otherwise. Both arguments are addr-specs (normalised or not).
 */
bool addr_equal(const char *a, const char *b);
bool addr_equal_domain(const char *a, const char *b);

/*
 * Recipient canonicalisation: the address Postfix will route an envelope
 * recipient to. Angle brackets and a source route ("<@a,@b:zoe@x>") are
 * dropped; trailing dots of the domain go; a quoted local part is unquoted
 * when it needs no quotes; a UTF-8 domain becomes its A-label (IDNA2008);
 * ASCII is lowercased (UTF-8 local parts are kept as written). The
 * percent hack ("zoe%partner.example@localhost") and a UUCP path
 * ("partner.example!zoe@localhost", "partner.example!zoe") are resolved
 * to the final destination, and ADDR_CANON_ROUTED is set: Postfix delivers
 * such an address either there or, when the hack does not apply, to the
 * literal address, which `literal` receives (normalised the same way).
 * SM_ERR_PARSE for anything else that cannot be routed with certainty:
 * an address literal ("zoe@[192.0.2.1]"), invalid UTF-8, an unbalanced
 * quote, no domain. An address without '@' (a local name such as
 * "postmaster") is SM_ERR_NOTFOUND: it is local, not a domain address.
 */
#define ADDR_CANON_ROUTED 1u
sm_status addr_canonical(const char *in, char *out, size_t outlen, char *literal,
    size_t litlen, unsigned *flags);

/* The domain part of a normalised address (pointer into addr), or NULL. */
const char *addr_domain(const char *addr);
/* Syntax checks used by the configuration. */
bool addr_valid_domain(const char *domain);
bool addr_valid_mailbox(const char *addr);
/* Does addr belong to domain (exactly; compared as addr_equal_domain)? */
bool addr_in_domain(const char *addr, const char *domain);

/* One network, IPv4 or IPv6. */
struct cidr {
	int family;          /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;     /* bits */
};

/* Parse "192.0.2.0/24", "2001:db8::/32", "127.0.0.1" (a host). */
sm_status cidr_parse(const char *text, struct cidr *out);
/* Does the socket address fall inside the network? IPv4-mapped IPv6
 * addresses (::ffff:192.0.2.1) match IPv4 networks. */
bool cidr_match(const struct cidr *net, const struct sockaddr *sa);
bool cidr_match_list(const struct cidr *nets, size_t n, const struct sockaddr *sa);

#endif
