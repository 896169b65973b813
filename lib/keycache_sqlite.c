/*
 * keycache_sqlite.c — the embedded key cache backend.
 *
 * Concurrency (see keycache.h): a pool of up to KC_SQLITE_MAX_CONN
 * connections, opened on demand, each used by one thread at a time
 * (SQLITE_OPEN_NOMUTEX: the pool is the mutex) and keeping its own prepared
 * statements. WAL journal so readers never block on writers, in this
 * process or in smimectl; a 5 s busy timeout, and writes start with BEGIN
 * IMMEDIATE so a transaction takes the write lock up front (and waits for
 * it under the busy handler) instead of failing with SQLITE_BUSY when it
 * upgrades from reading. An operation that still meets SQLITE_BUSY after
 * the timeout is retried from the start a couple of times.
 *
 * Durability: synchronous=NORMAL. In WAL mode that keeps the database
 * consistent across a crash or power loss and keeps every committed
 * transaction across a killed process; a power loss may forget the last
 * harvests, which the next signed message re-delivers.
 */
#include "keycache_sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define SQ_BUSY_TIMEOUT_MS 5000

/* Schema migrations: migrations[i] takes version i to i + 1. Append only;
 * never edit a released step. */
static const char *const migrations[] = {
	/* 0 → 1: the initial schema. */
	"CREATE TABLE certs ("
	"  id INTEGER PRIMARY KEY,"
	"  fingerprint TEXT NOT NULL UNIQUE CHECK (length(fingerprint) = 64),"
	"  key_fingerprint TEXT NOT NULL,"
	"  der BLOB NOT NULL,"
	"  chain BLOB,"
	"  subject TEXT NOT NULL,"
	"  issuer TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  not_before INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  key_type TEXT NOT NULL,"
	"  key_bits INTEGER NOT NULL);"
	"CREATE INDEX certs_not_after ON certs(not_after);"
	"CREATE TABLE cert_emails ("
	"  cert_id INTEGER NOT NULL REFERENCES certs(id) ON DELETE CASCADE,"
	"  email TEXT NOT NULL,"
	"  email_lc TEXT NOT NULL,"
	"  PRIMARY KEY (cert_id, email));"
	"CREATE INDEX cert_emails_lc ON cert_emails(email_lc);"
	"CREATE TABLE bindings ("
	"  cert_id INTEGER NOT NULL REFERENCES certs(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL,"
	"  address_lc TEXT NOT NULL,"
	"  caps INTEGER NOT NULL DEFAULT 0,"
	"  enc_pref INTEGER NOT NULL DEFAULT 0 CHECK (enc_pref IN (0, 1)),"
	"  source TEXT NOT NULL CHECK (source IN ('harvested', 'imported')),"
	"  status TEXT NOT NULL"
	"    CHECK (status IN ('active', 'superseded', 'removed')),"
	"  first_seen INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  PRIMARY KEY (address, cert_id));"
	"CREATE INDEX bindings_address_lc ON bindings(address_lc);"
	"CREATE INDEX bindings_cert ON bindings(cert_id);",
	/* 1 → 2: pairings (signing certificate → preferred encryption
	 * certificate) replace the sticky enc_pref flag; assurance; addresses
	 * normalised (case folded); the stored status is active or removed
	 * (superseded is computed). Every version-1 binding becomes a signing
	 * binding of its own: version 1 never stored the signer of a separate
	 * encryption certificate. Self-signed means subject = issuer. */
	"ALTER TABLE certs ADD COLUMN can_encrypt INTEGER NOT NULL DEFAULT 1;"
	"CREATE TABLE bindings2 ("
	"  cert_id INTEGER NOT NULL REFERENCES certs(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL,"
	"  caps INTEGER NOT NULL DEFAULT 0,"
	"  source TEXT NOT NULL CHECK (source IN ('harvested', 'imported')),"
	"  assurance INTEGER NOT NULL CHECK (assurance IN (0, 1, 2)),"
	"  signer INTEGER NOT NULL CHECK (signer IN (0, 1)),"
	"  enc_cert_id INTEGER REFERENCES certs(id) ON DELETE SET NULL,"
	"  signing_time INTEGER NOT NULL DEFAULT 0,"
	"  status TEXT NOT NULL CHECK (status IN ('active', 'removed')),"
	"  first_seen INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  PRIMARY KEY (address, cert_id));"
	"INSERT INTO bindings2 (cert_id, address, caps, source, assurance,"
	"  signer, enc_cert_id, signing_time, status, first_seen, last_seen)"
	" SELECT b.cert_id, b.address_lc, max(b.caps), min(b.source),"
	"  CASE WHEN c.subject = c.issuer THEN 0 ELSE 1 END, 1, NULL, 0,"
	"  CASE WHEN min(b.status = 'removed') THEN 'removed' ELSE 'active' END,"
	"  min(b.first_seen), max(b.last_seen)"
	" FROM bindings b JOIN certs c ON c.id = b.cert_id"
	" GROUP BY b.address_lc, b.cert_id;"
	"DROP TABLE bindings;"
	"ALTER TABLE bindings2 RENAME TO bindings;"
	"CREATE INDEX bindings_cert ON bindings(cert_id);",
};
#define SQ_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

#define REC_COLS                                                              \
	"SELECT b.address, b.status, b.caps, b.source,"                       \
	" b.first_seen, b.last_seen, c.id, c.fingerprint, c.key_fingerprint," \
	" c.subject, c.issuer, c.serial, c.not_before, c.not_after,"          \
	" c.key_type, c.key_bits, c.der, c.chain, b.assurance, b.signer,"     \
	" coalesce(e.fingerprint, ''), b.signing_time, c.can_encrypt"         \
	" FROM bindings b JOIN certs c ON c.id = b.cert_id"                   \
	" LEFT JOIN certs e ON e.id = b.enc_cert_id "
#define REC_ORDER " ORDER BY b.address, c.not_before DESC, c.id"

static const char *const sql[Q_NSTMT] = {
	[Q_BEGIN] = "BEGIN",
	[Q_BEGIN_IMM] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_CERT_ID] = "SELECT id FROM certs WHERE fingerprint = ?1",
	[Q_CERT_INS] = "INSERT INTO certs (fingerprint, key_fingerprint, der,"
		       " chain, subject, issuer, serial, not_before, not_after,"
		       " key_type, key_bits, can_encrypt)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
		       " ?12)",
	/* The CA certificates it came with most recently: intermediates get
	 * renewed too. */
	[Q_CERT_CHAIN] = "UPDATE certs SET chain = ?2 WHERE id = ?1",
	[Q_EMAIL_INS] = "INSERT OR IGNORE INTO cert_emails (cert_id, email,"
			" email_lc) VALUES (?1, ?2, ?3)",
	[Q_BIND_VIEW] = "SELECT b.cert_id, c.fingerprint, c.key_fingerprint,"
			" c.not_before, c.not_after, b.status, b.signer,"
			" coalesce(e.fingerprint, ''), b.signing_time,"
			" b.last_seen, c.can_encrypt, b.assurance"
			" FROM bindings b JOIN certs c ON c.id = b.cert_id"
			" LEFT JOIN certs e ON e.id = b.enc_cert_id"
			" WHERE b.address = ?1",
	/* The pairing rules of keycache.h: the preference follows the
	 * latest signing time, assurance never goes down. */
	[Q_BIND_HEAD] = "INSERT INTO bindings (cert_id, address, caps, source,"
			" assurance, signer, enc_cert_id, signing_time, status,"
			" first_seen, last_seen)"
			" VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, 'active', ?8, ?8)"
			" ON CONFLICT (address, cert_id) DO UPDATE SET"
			" status = 'active', signer = 1,"
			" last_seen = max(last_seen, excluded.last_seen),"
			" caps = CASE WHEN ?9 THEN excluded.caps ELSE caps END,"
			" enc_cert_id = CASE WHEN excluded.signing_time >="
			"  signing_time THEN excluded.enc_cert_id"
			"  ELSE enc_cert_id END,"
			" signing_time = max(signing_time, excluded.signing_time),"
			" assurance = max(assurance, excluded.assurance)",
	[Q_BIND_ENC] = "INSERT INTO bindings (cert_id, address, caps, source,"
		       " assurance, signer, enc_cert_id, signing_time, status,"
		       " first_seen, last_seen)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, 0, NULL, 0, 'active', ?8, ?8)"
		       " ON CONFLICT (address, cert_id) DO UPDATE SET"
		       " status = 'active',"
		       " last_seen = max(last_seen, excluded.last_seen),"
		       " caps = CASE WHEN ?9 THEN excluded.caps ELSE caps END,"
		       " assurance = max(assurance, excluded.assurance)",
	[Q_REC_ADDR] = REC_COLS "WHERE b.address = ?1" REC_ORDER,
	[Q_REC_FP] = REC_COLS "WHERE c.fingerprint = ?1" REC_ORDER,
	[Q_REC_ALL] = REC_COLS REC_ORDER,
	[Q_REC_EXPIRING] = REC_COLS "WHERE c.not_after > ?1"
				    " AND c.not_after <= ?2" REC_ORDER,
	[Q_EMAILS] = "SELECT email FROM cert_emails WHERE cert_id = ?1"
		     " ORDER BY rowid",
	[Q_CNT_ADDR] = "SELECT count(*) FROM bindings WHERE address = ?1",
	[Q_CNT_FP] = "SELECT count(*) FROM bindings b JOIN certs c"
		     " ON c.id = b.cert_id WHERE c.fingerprint = ?1",
	[Q_RM_ADDR] = "UPDATE bindings SET status = 'removed'"
		      " WHERE address = ?1 AND status <> 'removed'",
	[Q_RM_FP] = "UPDATE bindings SET status = 'removed'"
		    " WHERE status <> 'removed' AND cert_id ="
		    " (SELECT id FROM certs WHERE fingerprint = ?1)",
	[Q_VERSION] = "SELECT coalesce(max(version), 0) FROM schema_version",
	/* Prepared once the origins table exists (origin_impl). */
	[Q_ORIGIN_PUT] = "INSERT OR REPLACE INTO origins VALUES (?1, ?2, ?3, ?4)",
	[Q_ORIGIN_GET] = "SELECT origin FROM origins WHERE fingerprint = ?1"
			 " AND address = ?2",
};

/* ---- connections ---- */

static void
sq_conn_close(struct sq_conn *c)
{
	int i;

	if (c == NULL)
		return;
	for (i = 0; i < Q_NSTMT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c);
}

/* Record a failure: keep the code and message, end any open transaction
 * so the connection goes back to the pool clean, and map the status. */
sm_status
sq_fail(struct sq_conn *c, int rc)
{
	c->last_rc = rc;
	snprintf(c->last_err, sizeof(c->last_err), "%s",
		 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	if (c->db && !sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return (rc & 0xff) == SQLITE_NOMEM ? SM_ERR_NOMEM : SM_ERR_DB;
}

/* A prepared statement, reset and unbound, ready to use. Statements are
 * prepared on first use and kept for the connection's life. */
sqlite3_stmt *
sq_stmt(struct sq_conn *c, enum sq_stmt q)
{
	sqlite3_stmt *s = c->st[q];

	if (s == NULL) {
		int rc = sqlite3_prepare_v3(c->db, sql[q], -1,
					    SQLITE_PREPARE_PERSISTENT, &s,
					    NULL);
		if (rc != SQLITE_OK) {
			c->last_rc = rc;
			snprintf(c->last_err, sizeof(c->last_err), "%s",
				 sqlite3_errmsg(c->db));
			return NULL;
		}
		c->st[q] = s;
		return s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Run a statement that returns no rows (or whose rows we ignore). */
static int
sq_exec(struct sq_conn *c, enum sq_stmt q)
{
	sqlite3_stmt *s = sq_stmt(c, q);
	int rc;

	if (s == NULL)
		return c->last_rc;
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

sm_status
sq_begin(struct sq_conn *c, bool write)
{
	int rc = sq_exec(c, write ? Q_BEGIN_IMM : Q_BEGIN);

	return rc == SQLITE_DONE ? SM_OK : sq_fail(c, rc);
}

sm_status
sq_commit(struct sq_conn *c)
{
	int rc = sq_exec(c, Q_COMMIT);

	return rc == SQLITE_DONE ? SM_OK : sq_fail(c, rc);
}

/* Run a PRAGMA and optionally capture the first column of its first row. */
int
sq_pragma(sqlite3 *db, const char *text, char *out, size_t outlen)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, text, -1, &s, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && out && outlen) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		snprintf(out, outlen, "%s", t ? (const char *)t : "");
	}
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_finalize(s);
	return rc;
}

static sm_status
sq_conn_open(const char *path, struct sq_conn **out, char *err,
	     size_t errlen)
{
	struct sq_conn *c;
	char mode[32] = "";
	int rc;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return SM_ERR_NOMEM;
	}
	rc = sqlite3_open_v2(path, &c->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
	/* Per connection: foreign keys are off by default in SQLite. */
	if ((rc = sq_pragma(c->db, "PRAGMA foreign_keys = ON", NULL, 0)) !=
		SQLITE_OK ||
	    (rc = sq_pragma(c->db, "PRAGMA journal_mode = WAL", mode,
			    sizeof(mode))) != SQLITE_OK ||
	    (rc = sq_pragma(c->db, "PRAGMA synchronous = NORMAL", NULL, 0)) !=
		SQLITE_OK)
		goto fail;
	if (strcmp(mode, "wal") != 0) {
		snprintf(err, errlen,
			 "key cache %s: cannot use WAL journal (got \"%s\")",
			 path, mode);
		sq_conn_close(c);
		return SM_ERR_DB;
	}
	*out = c;
	return SM_OK;
fail:
	snprintf(err, errlen, "key cache %s: %s", path,
		 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	sq_conn_close(c);
	return (rc & 0xff) == SQLITE_NOMEM ? SM_ERR_NOMEM : SM_ERR_DB;
}

/* Bring the schema to SQ_SCHEMA_VERSION in one transaction, so that two
 * processes starting at once cannot both migrate, and a crash mid-way
 * leaves the old version. */
static sm_status
sq_migrate(struct sq_conn *c, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	char *msg = NULL;
	int rc, version = 0, v;

	rc = sqlite3_exec(c->db,
			  "BEGIN IMMEDIATE;"
			  "CREATE TABLE IF NOT EXISTS schema_version"
			  " (version INTEGER NOT NULL);",
			  NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		goto fail;
	if ((s = sq_stmt(c, Q_VERSION)) == NULL) {
		rc = c->last_rc;
		goto fail;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		version = sqlite3_column_int(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		goto fail;
	if (version > SQ_SCHEMA_VERSION) {
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		snprintf(err, errlen,
			 "key cache %s has schema version %d, newer than this "
			 "program's %d",
			 path, version, SQ_SCHEMA_VERSION);
		return SM_ERR_DB;
	}
	for (v = version; v < SQ_SCHEMA_VERSION; v++)
		if ((rc = sqlite3_exec(c->db, migrations[v], NULL, NULL,
				       &msg)) != SQLITE_OK)
			goto fail;
	if (version != SQ_SCHEMA_VERSION) {
		char upd[128];

		snprintf(upd, sizeof(upd),
			 "DELETE FROM schema_version;"
			 "INSERT INTO schema_version (version) VALUES (%d);",
			 SQ_SCHEMA_VERSION);
		if ((rc = sqlite3_exec(c->db, upd, NULL, NULL, &msg)) !=
		    SQLITE_OK)
			goto fail;
		log_msg(LOG_NOTICE, "key cache %s: schema version %d -> %d",
			path, version, SQ_SCHEMA_VERSION);
	}
	if ((rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, &msg)) !=
	    SQLITE_OK)
		goto fail;
	return SM_OK;
fail:
	snprintf(err, errlen, "key cache %s: schema: %s", path,
		 msg ? msg : sqlite3_errmsg(c->db));
	sqlite3_free(msg);
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return (rc & 0xff) == SQLITE_NOMEM ? SM_ERR_NOMEM : SM_ERR_DB;
}

/* Take a connection from the pool, opening one when none is idle and the
 * pool is not full; otherwise wait for one. */
sm_status
sq_get(struct kc_backend *be, struct sq_conn **out)
{
	char err[512];
	sm_status st;

	pthread_mutex_lock(&be->mu);
	while (be->idle == NULL && be->nconn >= KC_SQLITE_MAX_CONN)
		pthread_cond_wait(&be->cv, &be->mu);
	if (be->idle != NULL) {
		*out = be->idle;
		be->idle = (*out)->next;
		pthread_mutex_unlock(&be->mu);
		(*out)->next = NULL;
		return SM_OK;
	}
	be->nconn++;
	pthread_mutex_unlock(&be->mu);

	st = sq_conn_open(be->path, out, err, sizeof(err));
	if (st != SM_OK) {
		log_msg(LOG_ERR, "%s", err);
		pthread_mutex_lock(&be->mu);
		be->nconn--;
		pthread_cond_signal(&be->cv);
		pthread_mutex_unlock(&be->mu);
	}
	return st;
}

void
sq_release(struct kc_backend *be, struct sq_conn *c)
{
	pthread_mutex_lock(&be->mu);
	c->next = be->idle;
	be->idle = c;
	pthread_cond_signal(&be->cv);
	pthread_mutex_unlock(&be->mu);
}

sm_status
sq_open(const char *path, struct kc_backend **out, char *err, size_t errlen)
{
	struct kc_backend *be;
	struct sq_conn *c = NULL;
	sm_status st;

	*out = NULL;
	if (!sqlite3_threadsafe()) {
		snprintf(err, errlen, "SQLite was built without thread support");
		return SM_ERR_DB;
	}
	if ((be = calloc(1, sizeof(*be))) == NULL ||
	    (be->path = strdup(path)) == NULL) {
		free(be);
		snprintf(err, errlen, "out of memory");
		return SM_ERR_NOMEM;
	}
	pthread_mutex_init(&be->mu, NULL);
	pthread_cond_init(&be->cv, NULL);
	/* The first connection checks the path, the journal and the schema
	 * now, so a bad configuration fails at start-up, not at the first
	 * message. It stays in the pool. */
	st = sq_conn_open(path, &c, err, errlen);
	if (st == SM_OK)
		st = sq_migrate(c, path, err, errlen);
	if (st != SM_OK) {
		sq_conn_close(c);
		pthread_cond_destroy(&be->cv);
		pthread_mutex_destroy(&be->mu);
		free(be->path);
		free(be);
		return st;
	}
	be->idle = c;
	be->nconn = 1;
	*out = be;
	return SM_OK;
}

void
sq_close(struct kc_backend *be)
{
	struct sq_conn *c, *next;

	if (be == NULL)
		return;
	for (c = be->idle; c != NULL; c = next) {
		next = c->next;
		sq_conn_close(c);
	}
	pthread_cond_destroy(&be->cv);
	pthread_mutex_destroy(&be->mu);
	free(be->path);
	free(be);
}
