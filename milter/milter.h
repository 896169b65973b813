/*
 * milter.h — glue between libmilter and lib/. Only milter/ includes
 * libmilter; everything it decides or transforms is a call into lib/.
 */
#ifndef SMIME_MILTER_H
#define SMIME_MILTER_H

#include <libmilter/mfapi.h>

#include "config.h"
#include "gateway.h"

/* What the daemon runs with: configuration plus everything loaded from it
 * (trust anchors, our keys, the key cache). A reload builds a new runtime
 * and swaps it in; connections keep the one they started with (a
 * reference) until they close. */
struct runtime {
	struct config *cfg;
	struct trust *trust;
	struct keystore *ks;
	struct keycache *kc;
	struct discover *disc;
	struct revstore *rs;
	struct refusals *rf;      /* refusal log (NULL when it cannot open) */
	struct gw_env env;
	int refs;
};

/* The current runtime with a reference taken; release with runtime_put. */
struct runtime *runtime_get(void);
void runtime_put(struct runtime *rt);
/* Build a runtime from a loaded configuration (takes the config's ref).
 * On failure returns NULL and writes the reason into err. */
struct runtime *runtime_new(struct config *cfg, char *err, size_t errlen);
/* Make rt the current runtime (takes over the caller's reference). */
void runtime_swap(struct runtime *rt);

/* Start the metrics endpoint (when metrics.listen is set) and the daily
 * expiry warnings (observe.c). Call after the fork, before dropping
 * privileges. Returns -1 (logged) when the endpoint cannot start. */
int observe_start(void);

/* The libmilter callback table. */
extern struct smfiDesc milter_desc;

#endif
