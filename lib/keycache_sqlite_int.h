/*
 * keycache_sqlite_int.h — internals shared by the SQLite backend's two
 * halves: keycache_sqlite.c (the connection pool, the statement
 * catalogue, schema and migration) and keycache_sqlite_rec.c (rows to
 * records and back: store, look-up, list, remove, check, origins,
 * restore, and the kc_ops table). Not for callers: they use keycache.h.
 */
#ifndef SMIME_KEYCACHE_SQLITE_INT_H
#define SMIME_KEYCACHE_SQLITE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include <sqlite3.h>

#include "keycache.h"
#include "log.h"

#define SQ_BUSY_RETRIES 3

/* The prepared statements, by name; their text is in keycache_sqlite.c. */
enum sq_stmt {
	Q_BEGIN,
	Q_BEGIN_IMM,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_CERT_ID,
	Q_CERT_INS,
	Q_CERT_CHAIN,
	Q_EMAIL_INS,
	Q_BIND_VIEW,
	Q_BIND_HEAD,
	Q_BIND_ENC,
	Q_REC_ADDR,
	Q_REC_FP,
	Q_REC_ALL,
	Q_REC_EXPIRING,
	Q_EMAILS,
	Q_CNT_ADDR,
	Q_CNT_FP,
	Q_RM_ADDR,
	Q_RM_FP,
	Q_VERSION,
	Q_ORIGIN_PUT,
	Q_ORIGIN_GET,
	Q_NSTMT
};

struct sq_conn {
	sqlite3 *db;
	sqlite3_stmt *st[Q_NSTMT];
	bool origins;	    /* the origins table is known to exist */
	int last_rc;	    /* SQLite result code of the last failure */
	char last_err[256]; /* and its message */
	struct sq_conn *next;
};

struct kc_backend {
	char *path;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sq_conn *idle;
	int nconn;
};

/* keycache_sqlite.c: the pool and its statements. */
sm_status sq_fail(struct sq_conn *c, int rc);
sqlite3_stmt *sq_stmt(struct sq_conn *c, enum sq_stmt q);
sm_status sq_begin(struct sq_conn *c, bool write);
sm_status sq_commit(struct sq_conn *c);
int sq_pragma(sqlite3 *db, const char *text, char *out, size_t outlen);
sm_status sq_get(struct kc_backend *be, struct sq_conn **out);
void sq_release(struct kc_backend *be, struct sq_conn *c);
sm_status sq_open(const char *path, struct kc_backend **out, char *err,
		  size_t errlen);
void sq_close(struct kc_backend *be);

/* Run op on a pooled connection; retry from scratch when the database
 * stayed busy past the busy timeout. Log the final failure once. */
#define SQ_RUN(be, what, call)                                              \
	do {                                                                \
		struct sq_conn *c_;                                         \
		int try_;                                                   \
		if ((st = sq_get((be), &c_)) != SM_OK)                      \
			break;                                              \
		for (try_ = 0; try_ < SQ_BUSY_RETRIES; try_++) {            \
			c_->last_rc = SQLITE_OK;                            \
			st = call;                                          \
			if (st != SM_ERR_DB ||                              \
			    ((c_->last_rc & 0xff) != SQLITE_BUSY &&         \
			     (c_->last_rc & 0xff) != SQLITE_LOCKED))        \
				break;                                      \
		}                                                           \
		if (st == SM_ERR_DB || st == SM_ERR_NOMEM)                  \
			log_msg(LOG_ERR, "key cache %s: %s: %s", (be)->path, \
				(what), c_->last_err);                      \
		sq_release((be), c_);                                       \
	} while (0)

#endif
