/*
 * refusals.h — the refusal log: recipients refused because no usable
 * certificate was exchanged, for `smimectl refused`.
 *
 * The daemon notes each refused recipient (address, sender, reason, time);
 * the report groups them per recipient address with the count, the last
 * time, the senders affected and the latest reason: the list an admin
 * sends round saying "ask these partners for a signed mail".
 *
 * The log lives in the key cache's store (its own table, created when
 * missing, so it joins any schema version of the certificate tables) and
 * is bounded: only the newest REFUSALS_MAX_ROWS notes are kept, older ones
 * are deleted as new ones arrive. Writes are one short transaction each;
 * a struct refusals may be shared by threads (it serialises them).
 */
#ifndef SMIME_REFUSALS_H
#define SMIME_REFUSALS_H

#include <stddef.h>
#include <time.h>

#include "status.h"

#define REFUSALS_MAX_ROWS 10000

struct refusals;

struct refusal_row {
	char *address;       /* the refused recipient (normalised) */
	unsigned long count; /* refusals in the window */
	time_t first, last;  /* in the window */
	char *reason;        /* the latest reason */
	char **senders;      /* distinct senders, most recent first */
	size_t nsenders;
};

/* backend: as for keycache_open ("sqlite"); path: the same store. */
sm_status refusals_open(const char *backend, const char *path, struct refusals **out,
    char *err, size_t errlen);
void refusals_close(struct refusals *rf); /* NULL-safe */
/* Note one refusal. sender may be "" (null sender). NULL rf: nothing. */
sm_status refusals_note(struct refusals *rf, const char *rcpt, const char *sender,
    const char *reason, time_t when);
/* Keep at most max_rows notes (default REFUSALS_MAX_ROWS; for tests). */
void refusals_set_limit(struct refusals *rf, size_t max_rows);
/* Refusals noted at or after since, one row per address, ordered by
 * count (highest first), then address. */
sm_status refusals_report(struct refusals *rf, time_t since, struct refusal_row **out,
    size_t *n);
void refusal_rows_free(struct refusal_row *v, size_t n);

/* Backend interface: for storage implementations only. */
struct rf_backend;
struct rf_note {
	const char *address, *sender, *reason;
	time_t when;
};
/* fn receives the notes at or after since, ordered by address then time
 * (oldest first); returns 0 to go on. */
typedef int (*rf_iter_fn)(const struct rf_note *note, void *arg);
struct rf_ops {
	const char *name;
	sm_status (*open)(const char *path, struct rf_backend **out, char *err, size_t errlen);
	void (*close)(struct rf_backend *be);
	/* Insert and trim to max_rows, atomically. */
	sm_status (*note)(struct rf_backend *be, const struct rf_note *n, size_t max_rows);
	sm_status (*iterate)(struct rf_backend *be, time_t since, rf_iter_fn fn, void *arg);
};

extern const struct rf_ops rf_sqlite_ops;

#endif
