#include "clock.h"

#include <stdatomic.h>

static _Atomic long long clock_fixed;

time_t
clock_now(void)
{
	long long t = atomic_load(&clock_fixed);

	return t ? (time_t)t : time(NULL);
}

void
clock_set(time_t t)
{
	atomic_store(&clock_fixed, (long long)t);
}

static uint64_t (*_Atomic clock_cpu_hook)(void);

uint64_t
clock_cpu_ms(void)
{
	uint64_t (*fn)(void) = atomic_load(&clock_cpu_hook);
	struct timespec ts;

	if (fn != NULL)
		return fn();
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
clock_cpu_set_hook(uint64_t (*fn)(void))
{
	atomic_store(&clock_cpu_hook, fn);
}
