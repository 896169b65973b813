/*
 * expiry.h — which of our own certificates (keys_dir) expire soon.
 *
 * A key is reported when its certificate's notAfter falls within `days`
 * days from now (or has passed), unless it has been renewed: another key
 * of the store covers every address and domain it speaks for and stays
 * valid beyond the window. The daemon logs these at start and daily;
 * `smimectl check` fails on them.
 */
#ifndef SMIME_EXPIRY_H
#define SMIME_EXPIRY_H

#include <stddef.h>
#include <time.h>

#include "keystore.h"

/* Called for each expiring key: its description and the whole days left
 * (negative: expired that many days ago; 0: expires within a day). */
typedef void (*expiry_fn)(const struct keystore_info *in, long days_left, void *arg);

/* Returns how many keys were reported. days == 0 reports nothing. */
size_t expiry_own(const struct keystore *ks, time_t now, long days, expiry_fn fn, void *arg);

/* "alice@org.example, @org.example": the names a key speaks for, for
 * messages. Writes into buf (always terminated). */
const char *expiry_names(const struct keystore_info *in, char *buf, size_t len);

#endif
