/*
 * bcc.h — blind copies must stay blind when they are encrypted.
 *
 * One CMS envelope lists a RecipientInfo (issuer and serial, or key id)
 * for every recipient it is encrypted to, so every recipient of a shared
 * envelope learns who else got it. A Bcc recipient (an envelope recipient
 * absent from To, Cc and the Resent-* fields) must therefore get an
 * envelope of its own: only its key and the sender's copy.
 *
 * One transaction carries one body, and the Bcc recipients are known only
 * at end of data. So the gateway defers such a message once (451 4.7.0)
 * and remembers, per sender, which recipients were blind; when the client
 * retries, each remembered recipient is accepted only as the first of a
 * transaction, and nothing after it (452 4.7.0): the sending MTA then
 * delivers it in a transaction of its own, the same per-recipient split
 * that outbound.mixed = "split" uses. Once the blind copy went out alone,
 * the memo forgets it.
 */
#ifndef SMIME_BCC_H
#define SMIME_BCC_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "mime.h"
#include "status.h"

/* How long a blind recipient is remembered: Postfix's default
 * maximal_queue_lifetime. */
#define BCC_MEMO_SECONDS (5 * 86400)
/* At most this many are remembered; the oldest go first. */
#define BCC_MEMO_MAX 20000

/* is_bcc[i]: rcpts[i] (canonical addresses) is named by none of To, Cc,
 * Resent-To, Resent-Cc, Resent-Bcc. A field that does not parse names
 * nobody (so its recipients count as blind: never disclosed). */
sm_status bcc_find(const struct mime_headers *hdrs, char *const *rcpts, size_t n, bool *is_bcc);

/* The process-wide memo of blind recipients (thread-safe). */
void bcc_memo_add(const char *sender, const char *rcpt, time_t now);
bool bcc_memo_has(const char *sender, const char *rcpt, time_t now);
/* The blind copy went out alone: forget it, so that later mail naming the
 * recipient openly shares an envelope again. */
void bcc_memo_del(const char *sender, const char *rcpt);
void bcc_memo_clear(void);

#endif
