/*
 * recipient.h — which address a recipient's policy and certificate are
 * decided on: where Postfix will route it (addr_canonical), or a refusal
 * when that cannot be told with certainty while encryption may be required.
 */
#ifndef SMIME_RECIPIENT_H
#define SMIME_RECIPIENT_H

#include <stddef.h>

#include "config.h"
#include "status.h"

/*
 * SM_OK: out holds the canonical address. SM_ERR_NOTFOUND: a local name,
 * or an unparseable address while no rule could require encryption: left
 * to the MTA, never encrypted. SM_ERR_PARSE: it cannot be classified with
 * certainty while a required rule could match (why says why): refuse it.
 * sender: normalised (for sender rules).
 */
sm_status recipient_classify(const struct config *cfg, const char *sender, const char *rcpt,
    char *out, size_t outlen, char *why, size_t whylen);

#endif
