/*
 * sender.h — who may have mail signed with a personal key.
 *
 * A personal signature asserts a person's identity (RFC 8550/8551 receivers
 * compare the From address with the signer), so it is made only when the
 * submitting party is authorised for the From address:
 *
 *  - the client authenticated ({auth_authen}) and the login owns the From
 *    address AND the envelope sender: the login equals the address
 *    (addr_equal), or the sender login map lists the login for the address
 *    (or for its @domain); or
 *  - the client address is one of outbound.trusted_relays (hosts that
 *    enforce sender identity themselves).
 *
 * The sender login map is a text file in the format of Postfix's
 * smtpd_sender_login_maps: "ADDRESS-or-@DOMAIN  LOGIN[, LOGIN...]" per
 * line, '#' comments, blank lines, continuation lines starting with white
 * space. An exact address entry wins over its @DOMAIN entry, as in Postfix.
 * Logins compare case-insensitively, as Postfix compares them.
 */
#ifndef SMIME_SENDER_H
#define SMIME_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "address.h"
#include "status.h"

struct sender_map;

/* Read a sender login map. On failure err holds "FILE:LINE: why" (or
 * "FILE: why" when the file cannot be read). SM_ERR_IO, SM_ERR_PARSE,
 * SM_ERR_NOMEM. */
sm_status sender_map_load(const char *path, struct sender_map **out, char *err, size_t errlen);
void sender_map_free(struct sender_map *m); /* NULL-safe */
/* Does login own addr (normalised)? *line (may be NULL) receives the map
 * line that decided, 0 when the login is the address itself or nothing
 * matched. m may be NULL (no map: only login == address owns). */
bool sender_map_owns(const struct sender_map *m, const char *login, const char *addr, int *line);

/* Who handed the message over. */
struct sender_id {
	const char *login;            /* {auth_authen}, NULL or "" when none */
	const struct sockaddr *client; /* NULL: local submission (sendmail(1)),
	                                * taken as 127.0.0.1 */
};

/* The verdict, with the words for the log line and the SMTP reply. */
struct sender_verdict {
	bool ok;
	char rule[200];  /* which rule decided: "login alice@x is the address",
	                  * "sender_login_map line 3", "trusted relay 10.0.0.5",
	                  * "not authenticated", ... */
	char who[160];   /* "login dave" or "client 192.0.2.7" */
};

/* May id have mail with From address from (normalised; NULL or "" when the
 * From header does not hold exactly one mailbox) and envelope sender
 * env_from (normalised; "" for the null sender) signed with from's
 * personal key? relays: outbound.trusted_relays. */
void sender_authorise(const struct sender_map *m, const struct cidr *relays, size_t nrelays,
    const struct sender_id *id, const char *from, const char *env_from,
    struct sender_verdict *v);

#endif
