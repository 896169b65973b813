/*
 * rcptmemo.h — one message's recipient look-ups: made at RCPT, reused at
 * end of data, so that each recipient is looked up once per message.
 *
 * An answer (the certificate to encrypt to, or none with the reason) is
 * reused only while nothing it depends on changed: the certcache
 * generation is still the one read before the look-up (every key cache
 * write, revocation result and reload moves it), the clock has not gone
 * back, the answer is at most CERTCACHE_VERDICT_TTL seconds old and its
 * certificate has not expired. Otherwise the caller looks up again.
 *
 * A memo belongs to one message, whose callbacks never run at the same
 * time: it has no lock. Every function is NULL-safe (NULL: nothing kept).
 */
#ifndef SMIME_RCPTMEMO_H
#define SMIME_RCPTMEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "caps.h"
#include "status.h"

/* More recipients than this in one message: the rest are looked up each
 * time. */
#define RCPTMEMO_MAX 1000

struct rcptmemo;

/* NULL when memory ran out (then nothing is kept). */
struct rcptmemo *rcptmemo_new(void);
void rcptmemo_free(struct rcptmemo *m);

/* The answer kept for (sender, addr), when still good at now: true, with
 * *cert a new reference (NULL: no usable certificate), *caps and the
 * reason copied. */
bool rcptmemo_get(struct rcptmemo *m, const char *sender, const char *addr,
		  time_t now, X509 **cert, caps_t *caps, char *reason,
		  size_t len);
/* Keep an answer looked up at now; gen: certcache_generation() read
 * before the look-up. Replaces what was kept for (sender, addr). */
void rcptmemo_put(struct rcptmemo *m, const char *sender, const char *addr,
		  unsigned long gen, time_t now, X509 *cert, caps_t caps,
		  const char *reason);

#endif
