/*
 * clock.h — the injectable clock.
 *
 * Every validity check and CMS signingTime asks clock_now() instead of
 * time(), so tests (and the -T option of the tools, if ever added) can pin
 * the time and get deterministic results.
 */
#ifndef SMIME_CLOCK_H
#define SMIME_CLOCK_H

#include <stdint.h>
#include <time.h>

/* The current time, or the pinned time when one is set. */
time_t clock_now(void);
/* Pin the clock to t; clock_set(0) returns to the real clock. */
void clock_set(time_t t);

/* CPU time used by the calling thread, in milliseconds (the inbound CPU
 * budget counts it; a milter callback runs on its connection's thread). */
uint64_t clock_cpu_ms(void);
/* Tests: answer clock_cpu_ms() with fn instead (NULL: the real clock). */
void clock_cpu_set_hook(uint64_t (*fn)(void));

#endif
