/*
 * refusals_sqlite.c — the refusal log in the SQLite key cache file.
 *
 * One table of its own (CREATE TABLE IF NOT EXISTS), beside the
 * certificate tables and independent of their schema version. One
 * connection, serialised by a mutex: refusals are rare next to messages,
 * and each write is one short transaction.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refusals.h"

#define RF_BUSY_TIMEOUT_MS 5000

struct rf_backend {
	sqlite3 *db;
	pthread_mutex_t lock;
};

static const char rf_schema[] =
	"CREATE TABLE IF NOT EXISTS refusal_log ("
	" id INTEGER PRIMARY KEY,"
	" address TEXT NOT NULL,"
	" sender TEXT NOT NULL,"
	" reason TEXT NOT NULL,"
	" at INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS refusal_log_at ON refusal_log(at);";

static sm_status
rf_sq_status(sqlite3 *db, int rc, char *err, size_t errlen, const char *what)
{
	if (err)
		sm_seterr(err, errlen, "refusal log: %s: %s", what, sqlite3_errmsg(db));
	return (rc & 0xff) == SQLITE_NOMEM ? SM_ERR_NOMEM : SM_ERR_DB;
}

static void
rf_sq_close(struct rf_backend *be)
{
	if (be == NULL)
		return;
	sqlite3_close(be->db);
	pthread_mutex_destroy(&be->lock);
	free(be);
}

static sm_status
rf_sq_open(const char *path, struct rf_backend **out, char *err, size_t errlen)
{
	struct rf_backend *be = calloc(1, sizeof(*be));
	int rc;

	*out = NULL;
	if (be == NULL)
		return SM_ERR_NOMEM;
	pthread_mutex_init(&be->lock, NULL);
	rc = sqlite3_open_v2(path, &be->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sm_seterr(err, errlen, "refusal log %s: %s", path,
		    be->db ? sqlite3_errmsg(be->db) : sqlite3_errstr(rc));
		rf_sq_close(be);
		return SM_ERR_DB;
	}
	sqlite3_busy_timeout(be->db, RF_BUSY_TIMEOUT_MS);
	if ((rc = sqlite3_exec(be->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_exec(be->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_exec(be->db, rf_schema, NULL, NULL, NULL)) != SQLITE_OK) {
		sm_status st = rf_sq_status(be->db, rc, err, errlen, "creating the table");
		rf_sq_close(be);
		return st;
	}
	*out = be;
	return SM_OK;
}

static sm_status
rf_sq_note(struct rf_backend *be, const struct rf_note *n, size_t max_rows)
{
	static const char sql[] =
		"INSERT INTO refusal_log(address, sender, reason, at) VALUES (?1, ?2, ?3, ?4);"
		"DELETE FROM refusal_log WHERE id <= last_insert_rowid() - ?5;";
	sqlite3_stmt *s = NULL;
	const char *tail = sql;
	int rc = SQLITE_OK;
	sm_status st = SM_OK;

	pthread_mutex_lock(&be->lock);
	if ((rc = sqlite3_exec(be->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) {
		st = rf_sq_status(be->db, rc, NULL, 0, "begin");
		goto out;
	}
	while (rc == SQLITE_OK && tail && *tail) {
		if ((rc = sqlite3_prepare_v2(be->db, tail, -1, &s, &tail)) != SQLITE_OK || s == NULL)
			break;
		for (int i = 1; i <= sqlite3_bind_parameter_count(s); i++) {
			const char *name = sqlite3_bind_parameter_name(s, i);
			switch (name ? name[1] : '0') {
			case '1': sqlite3_bind_text(s, i, n->address, -1, SQLITE_STATIC); break;
			case '2': sqlite3_bind_text(s, i, n->sender, -1, SQLITE_STATIC); break;
			case '3': sqlite3_bind_text(s, i, n->reason, -1, SQLITE_STATIC); break;
			case '4': sqlite3_bind_int64(s, i, (sqlite3_int64)n->when); break;
			case '5': sqlite3_bind_int64(s, i, (sqlite3_int64)max_rows); break;
			}
		}
		rc = sqlite3_step(s);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		sqlite3_finalize(s);
		s = NULL;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(be->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		st = rf_sq_status(be->db, rc, NULL, 0, "insert");
		sqlite3_exec(be->db, "ROLLBACK", NULL, NULL, NULL);
	}
out:
	pthread_mutex_unlock(&be->lock);
	return st;
}

static sm_status
rf_sq_iterate(struct rf_backend *be, time_t since, rf_iter_fn fn, void *arg)
{
	sqlite3_stmt *s = NULL;
	int rc;

	pthread_mutex_lock(&be->lock);
	rc = sqlite3_prepare_v2(be->db,
	    "SELECT address, sender, reason, at FROM refusal_log WHERE at >= ?1"
	    " ORDER BY address, at, id", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)since);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			struct rf_note n = {
				(const char *)sqlite3_column_text(s, 0),
				(const char *)sqlite3_column_text(s, 1),
				(const char *)sqlite3_column_text(s, 2),
				(time_t)sqlite3_column_int64(s, 3),
			};
			if (n.address == NULL || n.sender == NULL || n.reason == NULL)
				continue;
			if (fn(&n, arg) != 0) {
				rc = SQLITE_DONE;
				break;
			}
		}
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&be->lock);
	return rc == SQLITE_DONE ? SM_OK : rf_sq_status(be->db, rc, NULL, 0, "select");
}

const struct rf_ops rf_sqlite_ops = {
	"sqlite", rf_sq_open, rf_sq_close, rf_sq_note, rf_sq_iterate,
};
