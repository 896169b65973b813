/*
 * clock.h — the injectable clock.
 *
 * Every validity check and CMS signingTime asks clock_now() instead of
 * time(), so tests (and the -T option of the tools, if ever added) can pin
 * the time and get deterministic results.
 */
#ifndef SMIME_CLOCK_H
#define SMIME_CLOCK_H

#include <time.h>

/* The current time, or the pinned time when one is set. */
time_t clock_now(void);
/* Pin the clock to t; clock_set(0) returns to the real clock. */
void clock_set(time_t t);

#endif
