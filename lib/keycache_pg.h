/*
 * keycache_pg.h — internals shared by the PostgreSQL backend's two halves:
 * keycache_pg.c (SQL: schema, writes, reads) and keycache_pgl.c (the
 * local copy, the listener thread, the outbox and the kc_ops table).
 * Not for callers: they use keycache.h.
 */
#ifndef SMIME_KEYCACHE_PG_H
#define SMIME_KEYCACHE_PG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <libpq-fe.h>

#include "keycache.h"

#define PG_CHANNEL "smime_keycache"
#define PG_MIGRATE_LOCK 0x534d494d /* "SMIM" */
#define PG_BACKOFF_MAX 30	   /* seconds */
#define PG_RETRIES 4
#define PG_BUCKETS 1024
#define PG_MAX_ENTRIES 20000

enum { PG_Q_ADDR, PG_Q_FP, PG_Q_EXPIRING, PG_Q_ALL };

/* One address's records in the local copy (n == 0: known to have none). */
struct pg_entry {
	char *address;
	struct kc_record *recs;
	size_t n;
	struct pg_entry *next;
};

struct kc_backend {
	char *conninfo;
	/* the operation connection */
	pthread_mutex_t mu;
	PGconn *conn;
	bool migrated;
	time_t next_try;
	int backoff;
	char last_err[200];
	char last_state[8];
	/* the local copy */
	pthread_mutex_t lmu;
	struct pg_entry *bucket[PG_BUCKETS];
	size_t entries;
	unsigned long epoch;	 /* bumped by every invalidation */
	bool listening;		 /* the listener is connected: copy current */
	time_t lost_at;		 /* when it stopped listening */
	long long generation;	 /* last generation heard of, -1 unknown */
	time_t max_stale;
	char *outbox_dir;	 /* NULL: writes fail while the database is
				    down (smimectl) */
	/* the listener */
	pthread_t thr;
	bool thr_started;
	atomic_bool stop;
};

PGconn *pg_connect(const char *conninfo);
sm_status pg_migrate_target(const char *conninfo, int *version, char *err,
			    size_t errlen);
sm_status pg_put_direct(struct kc_backend *be, const struct kc_record *head,
			const struct kc_record *enc, time_t now,
			struct kc_plan *plan);
sm_status pg_query(struct kc_backend *be, int kind, const char *text,
		   time_t a, time_t b, struct kc_record **out, size_t *n);
sm_status pg_remove_direct(struct kc_backend *be, const char *address,
			   const char *fp, size_t *count);
sm_status pg_restore_direct(struct kc_backend *be, const struct kc_record *r);
sm_status pg_meta(struct kc_backend *be, int *version,
		  long long *generation);
int pg_schema_version(void);

/* keycache_pgo.c: the outbox, one file per write. */
sm_status pg_outbox_add(const char *dir, const struct kc_record *head,
			const struct kc_record *enc, time_t now);
/* Replay every queued write in order; stops at the first database error. */
sm_status pg_outbox_replay(struct kc_backend *be, size_t *done);
size_t pg_outbox_count(const char *dir);

#endif
