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
#include "keycache.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sqlite3.h>

#include "log.h"

#define SQ_BUSY_TIMEOUT_MS 5000
#define SQ_BUSY_RETRIES 3

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
static sm_status
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
static sqlite3_stmt *
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

static sm_status
sq_begin(struct sq_conn *c, bool write)
{
	int rc = sq_exec(c, write ? Q_BEGIN_IMM : Q_BEGIN);

	return rc == SQLITE_DONE ? SM_OK : sq_fail(c, rc);
}

static sm_status
sq_commit(struct sq_conn *c)
{
	int rc = sq_exec(c, Q_COMMIT);

	return rc == SQLITE_DONE ? SM_OK : sq_fail(c, rc);
}

/* Run a PRAGMA and optionally capture the first column of its first row. */
static int
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
static sm_status
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

static void
sq_release(struct kc_backend *be, struct sq_conn *c)
{
	pthread_mutex_lock(&be->mu);
	c->next = be->idle;
	be->idle = c;
	pthread_cond_signal(&be->cv);
	pthread_mutex_unlock(&be->mu);
}

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

static sm_status
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

static void
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

/* ---- rows ---- */

static enum kc_status
status_from_db(const unsigned char *s)
{
	if (s && strcmp((const char *)s, "removed") == 0)
		return KC_ST_REMOVED;
	return KC_ST_ACTIVE;
}

static enum kc_assurance
assurance_from_db(int v)
{
	return v <= 0 ? KC_AS_SELF_SIGNED : v == 1 ? KC_AS_CA : KC_AS_ADMIN;
}

static char *
col_strdup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return strdup(t ? (const char *)t : "");
}

static sm_status
col_blob(sqlite3_stmt *s, int i, unsigned char **out, size_t *len)
{
	const void *p = sqlite3_column_blob(s, i);
	int n = sqlite3_column_bytes(s, i);

	*out = NULL;
	*len = 0;
	if (p == NULL || n <= 0)
		return SM_OK;
	if ((*out = malloc((size_t)n)) == NULL)
		return SM_ERR_NOMEM;
	memcpy(*out, p, (size_t)n);
	*len = (size_t)n;
	return SM_OK;
}

static void
col_fp(sqlite3_stmt *s, int i, char out[X509U_FP_SIZE])
{
	const unsigned char *t = sqlite3_column_text(s, i);

	snprintf(out, X509U_FP_SIZE, "%s", t ? (const char *)t : "");
}

/* The certificate's addresses, from cert_emails. */
static sm_status
load_emails(struct sq_conn *c, sqlite3_int64 cert_id, struct kc_record *r)
{
	sqlite3_stmt *s = sq_stmt(c, Q_EMAILS);
	char **nv;
	int rc;

	if (s == NULL)
		return sq_fail(c, c->last_rc);
	sqlite3_bind_int64(s, 1, cert_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char *e = col_strdup(s, 0);

		nv = e ? realloc(r->emails, (r->n_emails + 1) * sizeof(*nv))
		       : NULL;
		if (nv == NULL) {
			free(e);
			sqlite3_reset(s);
			return SM_ERR_NOMEM;
		}
		nv[r->n_emails++] = e;
		r->emails = nv;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SM_OK : sq_fail(c, rc);
}

/* One REC_COLS row into a record (stored status). */
static sm_status
row_to_record(struct sq_conn *c, sqlite3_stmt *s, struct kc_record *r)
{
	sm_status st;

	memset(r, 0, sizeof(*r));
	r->address = col_strdup(s, 0);
	r->status = status_from_db(sqlite3_column_text(s, 1));
	r->caps = (caps_t)sqlite3_column_int64(s, 2);
	r->source = sqlite3_column_text(s, 3) != NULL &&
			    strcmp((const char *)sqlite3_column_text(s, 3),
				   "imported") == 0
			? KC_SRC_IMPORTED
			: KC_SRC_HARVESTED;
	r->first_seen = (time_t)sqlite3_column_int64(s, 4);
	r->last_seen = (time_t)sqlite3_column_int64(s, 5);
	col_fp(s, 7, r->fingerprint);
	col_fp(s, 8, r->key_fingerprint);
	r->subject = col_strdup(s, 9);
	r->issuer = col_strdup(s, 10);
	r->serial = col_strdup(s, 11);
	r->not_before = (time_t)sqlite3_column_int64(s, 12);
	r->not_after = (time_t)sqlite3_column_int64(s, 13);
	r->key_type =
	    x509u_key_type_from_name((const char *)sqlite3_column_text(s, 14));
	r->key_bits = sqlite3_column_int(s, 15);
	r->assurance = assurance_from_db(sqlite3_column_int(s, 18));
	r->signer = sqlite3_column_int(s, 19) != 0;
	col_fp(s, 20, r->enc_fp);
	r->signing_time = (time_t)sqlite3_column_int64(s, 21);
	r->can_encrypt = sqlite3_column_int(s, 22) != 0;
	if (r->address == NULL || r->subject == NULL || r->issuer == NULL ||
	    r->serial == NULL) {
		st = SM_ERR_NOMEM;
		goto fail;
	}
	if ((st = col_blob(s, 16, &r->der, &r->der_len)) != SM_OK ||
	    (st = col_blob(s, 17, &r->chain, &r->chain_len)) != SM_OK ||
	    (st = load_emails(c, sqlite3_column_int64(s, 6), r)) != SM_OK)
		goto fail;
	return SM_OK;
fail:
	kc_record_free(r);
	return st;
}

/* Collect every row of a prepared and bound REC_COLS query. */
static sm_status
collect(struct sq_conn *c, sqlite3_stmt *s, struct kc_record **out,
	size_t *n)
{
	struct kc_record *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	sm_status st = SM_OK;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				st = SM_ERR_NOMEM;
				break;
			}
			v = nv;
		}
		if ((st = row_to_record(c, s, &v[cnt])) != SM_OK)
			break;
		cnt++;
	}
	if (st == SM_OK && rc != SQLITE_DONE)
		st = sq_fail(c, rc);
	sqlite3_reset(s);
	if (st != SM_OK) {
		kc_records_free(v, cnt);
		return st;
	}
	*out = v;
	*n = cnt;
	return SM_OK;
}

/* ---- operations ---- */

struct view_row {
	sqlite3_int64 cert_id;
	char fp[X509U_FP_SIZE];
	char kfp[X509U_FP_SIZE];
	char efp[X509U_FP_SIZE];
	struct kc_binding_view v;
};

/* The address's bindings, for the rule. */
static sm_status
load_views(struct sq_conn *c, const char *address, struct view_row **out,
	   size_t *n)
{
	sqlite3_stmt *s = sq_stmt(c, Q_BIND_VIEW);
	struct view_row *v = NULL, *nv;
	size_t cnt = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return sq_fail(c, c->last_rc);
	sqlite3_bind_text(s, 1, address, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct view_row *w;

		if ((nv = realloc(v, (cnt + 1) * sizeof(*v))) == NULL) {
			free(v);
			sqlite3_reset(s);
			return SM_ERR_NOMEM;
		}
		v = nv;
		w = &v[cnt++];
		memset(w, 0, sizeof(*w));
		w->cert_id = sqlite3_column_int64(s, 0);
		col_fp(s, 1, w->fp);
		col_fp(s, 2, w->kfp);
		w->v.not_before = (time_t)sqlite3_column_int64(s, 3);
		w->v.not_after = (time_t)sqlite3_column_int64(s, 4);
		w->v.status = status_from_db(sqlite3_column_text(s, 5));
		w->v.signer = sqlite3_column_int(s, 6) != 0;
		col_fp(s, 7, w->efp);
		w->v.signing_time = (time_t)sqlite3_column_int64(s, 8);
		w->v.last_seen = (time_t)sqlite3_column_int64(s, 9);
		w->v.can_encrypt = sqlite3_column_int(s, 10) != 0;
		w->v.assurance = assurance_from_db(sqlite3_column_int(s, 11));
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		free(v);
		return sq_fail(c, rc);
	}
	/* Point the views at their own strings only now: realloc moves. */
	for (size_t i = 0; i < cnt; i++) {
		v[i].v.fingerprint = v[i].fp;
		v[i].v.key_fingerprint = v[i].kfp;
		v[i].v.enc_fp = v[i].efp;
	}
	*out = v;
	*n = cnt;
	return SM_OK;
}

/* Find or insert the certificate row. */
static sm_status
put_cert(struct sq_conn *c, const struct kc_record *r, sqlite3_int64 *id)
{
	sqlite3_stmt *s;
	size_t i;
	int rc;

	if ((s = sq_stmt(c, Q_CERT_ID)) == NULL)
		return sq_fail(c, c->last_rc);
	sqlite3_bind_text(s, 1, r->fingerprint, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW) {
		if (r->chain_len == 0)
			return SM_OK;
		if ((s = sq_stmt(c, Q_CERT_CHAIN)) == NULL)
			return sq_fail(c, c->last_rc);
		sqlite3_bind_int64(s, 1, *id);
		sqlite3_bind_blob(s, 2, r->chain, (int)r->chain_len,
				  SQLITE_STATIC);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? SM_OK : sq_fail(c, rc);
	}
	if (rc != SQLITE_DONE)
		return sq_fail(c, rc);

	if ((s = sq_stmt(c, Q_CERT_INS)) == NULL)
		return sq_fail(c, c->last_rc);
	sqlite3_bind_text(s, 1, r->fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, r->key_fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, r->der, (int)r->der_len, SQLITE_STATIC);
	if (r->chain_len)
		sqlite3_bind_blob(s, 4, r->chain, (int)r->chain_len,
				  SQLITE_STATIC);
	sqlite3_bind_text(s, 5, r->subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, r->issuer, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, r->serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 8, (sqlite3_int64)r->not_before);
	sqlite3_bind_int64(s, 9, (sqlite3_int64)r->not_after);
	sqlite3_bind_text(s, 10, x509u_key_type_name(r->key_type), -1,
			  SQLITE_STATIC);
	sqlite3_bind_int(s, 11, r->key_bits);
	sqlite3_bind_int(s, 12, r->can_encrypt);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return sq_fail(c, rc);
	*id = sqlite3_last_insert_rowid(c->db);

	for (i = 0; i < r->n_emails; i++) {
		char *lc = x509u_addr_lower(r->emails[i]);

		if (lc == NULL)
			return SM_ERR_NOMEM;
		if ((s = sq_stmt(c, Q_EMAIL_INS)) == NULL) {
			free(lc);
			return sq_fail(c, c->last_rc);
		}
		sqlite3_bind_int64(s, 1, *id);
		sqlite3_bind_text(s, 2, r->emails[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, lc, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		free(lc);
		if (rc != SQLITE_DONE)
			return sq_fail(c, rc);
	}
	return SM_OK;
}

/* Upsert one binding (Q_BIND_HEAD or Q_BIND_ENC). */
static sm_status
put_binding(struct sq_conn *c, enum sq_stmt q, const struct kc_record *r,
	    sqlite3_int64 id, sqlite3_int64 enc_id, time_t now)
{
	sqlite3_stmt *s = sq_stmt(c, q);
	int rc;

	if (s == NULL)
		return sq_fail(c, c->last_rc);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, r->address, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)r->caps);
	sqlite3_bind_text(s, 4,
			  r->source == KC_SRC_IMPORTED ? "imported"
						       : "harvested",
			  -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, (int)r->assurance);
	if (q == Q_BIND_HEAD) {
		if (enc_id != 0)
			sqlite3_bind_int64(s, 6, enc_id);
		sqlite3_bind_int64(s, 7, (sqlite3_int64)r->signing_time);
	}
	sqlite3_bind_int64(s, 8, (sqlite3_int64)now);
	sqlite3_bind_int(s, 9, (r->caps & CAP_KNOWN) != 0);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SM_OK : sq_fail(c, rc);
}

static struct kc_binding_view *
views_copy(const struct view_row *rows, size_t n)
{
	struct kc_binding_view *v = calloc(n ? n : 1, sizeof(*v));

	for (size_t i = 0; v != NULL && i < n; i++)
		v[i] = rows[i].v;
	return v;
}

static sm_status
put_impl(struct sq_conn *c, const struct kc_record *head,
	 const struct kc_record *enc, time_t now, struct kc_plan *plan)
{
	struct view_row *before = NULL, *after = NULL;
	struct kc_binding_view *vb = NULL, *va = NULL;
	sqlite3_int64 hid = 0, eid = 0;
	size_t nb = 0, na = 0, i;
	bool was_live = false;
	sm_status st;

	if ((st = sq_begin(c, true)) != SM_OK)
		goto done;
	if ((st = put_cert(c, head, &hid)) != SM_OK ||
	    (enc && (st = put_cert(c, enc, &eid)) != SM_OK) ||
	    (st = load_views(c, head->address, &before, &nb)) != SM_OK)
		goto done;
	for (i = 0; i < nb; i++)
		if (before[i].cert_id == hid && before[i].v.signer &&
		    before[i].v.status != KC_ST_REMOVED)
			was_live = true;
	if ((enc && (st = put_binding(c, Q_BIND_ENC, enc, eid, 0, now)) !=
			SM_OK) ||
	    (st = put_binding(c, Q_BIND_HEAD, head, hid, eid, now)) != SM_OK ||
	    (st = load_views(c, head->address, &after, &na)) != SM_OK)
		goto done;
	if ((vb = views_copy(before, nb)) == NULL ||
	    (va = views_copy(after, na)) == NULL) {
		st = SM_ERR_NOMEM;
		goto done;
	}
	kc_plan_outcome(vb, nb, va, na, head->fingerprint, was_live, now,
			plan);
	st = sq_commit(c);
done:
	if (st != SM_OK && !sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	free(vb);
	free(va);
	free(before);
	free(after);
	return st;
}

static sm_status
sq_put(struct kc_backend *be, const struct kc_record *head,
       const struct kc_record *enc, time_t now, struct kc_plan *plan)
{
	sm_status st;

	SQ_RUN(be, "store", put_impl(c_, head, enc, now, plan));
	return st;
}

/* A read: a deferred transaction so the records and their e-mail rows
 * come from one snapshot. */
static sm_status
query_impl(struct sq_conn *c, enum sq_stmt q, const char *text,
	   time_t a, time_t b, struct kc_record **out, size_t *n)
{
	sqlite3_stmt *s;
	sm_status st;

	*out = NULL;
	*n = 0;
	if ((st = sq_begin(c, false)) != SM_OK)
		return st;
	if ((s = sq_stmt(c, q)) == NULL)
		return sq_fail(c, c->last_rc);
	if (text)
		sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
	if (q == Q_REC_EXPIRING) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)a);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)b);
	}
	if ((st = collect(c, s, out, n)) != SM_OK) {
		if (!sqlite3_get_autocommit(c->db))
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		return st;
	}
	if ((st = sq_commit(c)) != SM_OK) {
		kc_records_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return st;
}

static sm_status
sq_lookup_address(struct kc_backend *be, const char *address,
		  struct kc_record **out, size_t *n)
{
	sm_status st;

	SQ_RUN(be, "look-up",
	       query_impl(c_, Q_REC_ADDR, address, 0, 0, out, n));
	return st;
}

static sm_status
sq_lookup_fingerprint(struct kc_backend *be, const char *fp,
		      struct kc_record **out, size_t *n)
{
	sm_status st;

	SQ_RUN(be, "look-up", query_impl(c_, Q_REC_FP, fp, 0, 0, out, n));
	return st;
}

static sm_status
sq_list(struct kc_backend *be, time_t after, time_t before,
	struct kc_record **out, size_t *n)
{
	sm_status st;

	SQ_RUN(be, "list",
	       query_impl(c_, before ? Q_REC_EXPIRING : Q_REC_ALL, NULL, after,
			  before, out, n));
	return st;
}

static sm_status
remove_impl(struct sq_conn *c, const char *address, const char *fp,
	    size_t *count)
{
	sqlite3_stmt *s;
	const char *key = address ? address : fp;
	sm_status st;
	int rc, total = 0;

	if ((st = sq_begin(c, true)) != SM_OK)
		goto done;
	if ((s = sq_stmt(c, address ? Q_CNT_ADDR : Q_CNT_FP)) == NULL) {
		st = sq_fail(c, c->last_rc);
		goto done;
	}
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		total = sqlite3_column_int(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW) {
		st = sq_fail(c, rc);
		goto done;
	}
	if ((s = sq_stmt(c, address ? Q_RM_ADDR : Q_RM_FP)) == NULL) {
		st = sq_fail(c, c->last_rc);
		goto done;
	}
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		st = sq_fail(c, rc);
		goto done;
	}
	if (count)
		*count = (size_t)sqlite3_changes(c->db);
	if ((st = sq_commit(c)) == SM_OK && total == 0)
		st = SM_ERR_NOTFOUND;
done:
	return st;
}

static sm_status
sq_remove(struct kc_backend *be, const char *address, const char *fp,
	  size_t *count)
{
	sm_status st;

	if ((address == NULL) == (fp == NULL))
		return SM_ERR_ARG;
	SQ_RUN(be, "remove", remove_impl(c_, address, fp, count));
	return st;
}

/* A failure inside check: also tell the caller why. */
static sm_status
check_fail(struct sq_conn *c, int rc, char *err, size_t errlen)
{
	sm_status st = sq_fail(c, rc);

	snprintf(err, errlen, "%s", c->last_err);
	return st;
}

static sm_status
check_impl(struct sq_conn *c, int *version, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	char first[256] = "";
	sm_status st = SM_OK;
	int rc;

	if ((s = sq_stmt(c, Q_VERSION)) == NULL)
		return check_fail(c, c->last_rc, err, errlen);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && version)
		*version = sqlite3_column_int(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return check_fail(c, rc, err, errlen);
	if ((rc = sq_pragma(c->db, "PRAGMA integrity_check", first,
			    sizeof(first))) != SQLITE_OK)
		return check_fail(c, rc, err, errlen);
	if (strcmp(first, "ok") != 0) {
		snprintf(err, errlen, "integrity check: %s", first);
		snprintf(c->last_err, sizeof(c->last_err), "%s", err);
		return SM_ERR_DB;
	}
	first[0] = '\0';
	if ((rc = sq_pragma(c->db, "PRAGMA foreign_key_check", first,
			    sizeof(first))) != SQLITE_OK)
		return check_fail(c, rc, err, errlen);
	if (first[0] != '\0') {
		snprintf(err, errlen, "foreign key check: table %s", first);
		snprintf(c->last_err, sizeof(c->last_err), "%s", err);
		st = SM_ERR_DB;
	}
	return st;
}

static sm_status
sq_check(struct kc_backend *be, int *schema_version, char *err,
	 size_t errlen)
{
	sm_status st;

	if (errlen)
		err[0] = '\0';
	SQ_RUN(be, "check", check_impl(c_, schema_version, err, errlen));
	return st;
}

/* ---- origins of discovered certificates: an additive table, created on
 * first use, outside the numbered schema (older programs ignore it) ---- */

#define SQ_ORIGINS_DDL                                                      \
	"CREATE TABLE IF NOT EXISTS origins ("                              \
	"  fingerprint TEXT NOT NULL, address TEXT NOT NULL,"               \
	"  origin TEXT NOT NULL, seen INTEGER NOT NULL,"                    \
	"  PRIMARY KEY (fingerprint, address))"

static sm_status
origin_impl(struct sq_conn *c, const char *fp, const char *address,
	    const char *origin, time_t now, char *out, size_t outlen)
{
	sqlite3_stmt *s;
	int rc;

	/* Once per connection, not per look-up: every RCPT asks. */
	if (!c->origins &&
	    (rc = sqlite3_exec(c->db, SQ_ORIGINS_DDL, NULL, NULL, NULL)) !=
		    SQLITE_OK)
		return sq_fail(c, rc);
	c->origins = true;
	if ((s = sq_stmt(c, origin ? Q_ORIGIN_PUT : Q_ORIGIN_GET)) == NULL)
		return sq_fail(c, c->last_rc);
	sqlite3_bind_text(s, 1, fp, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, address, -1, SQLITE_STATIC);
	if (origin) {
		sqlite3_bind_text(s, 3, origin, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)now);
	}
	rc = sqlite3_step(s);
	if (out && outlen) {
		out[0] = '\0';
		if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
			snprintf(out, outlen, "%s",
				 (const char *)sqlite3_column_text(s, 0));
	}
	sqlite3_reset(s); /* ends the read: no transaction left open */
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_fail(c, rc);
	return SM_OK;
}

static sm_status
sq_put_origin(struct kc_backend *be, const char *fp, const char *address,
	      const char *origin, time_t now)
{
	sm_status st;

	SQ_RUN(be, "origin",
	       origin_impl(c_, fp, address, origin, now, NULL, 0));
	return st;
}

static sm_status
sq_get_origin(struct kc_backend *be, const char *fp, const char *address,
	      char *out, size_t outlen)
{
	sm_status st;

	SQ_RUN(be, "origin",
	       origin_impl(c_, fp, address, NULL, 0, out, outlen));
	return st;
}

/* Store one binding exactly as given (a cache being copied in). */
static sm_status
restore_impl(struct sq_conn *c, const struct kc_record *r)
{
	static const char q[] =
		"INSERT INTO bindings (cert_id, address, caps, source, assurance,"
		" signer, enc_cert_id, signing_time, status, first_seen,"
		" last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
		" (SELECT id FROM certs WHERE fingerprint = ?7), ?8, ?9, ?10, ?11)"
		" ON CONFLICT (address, cert_id) DO UPDATE SET caps = excluded.caps,"
		" source = excluded.source, assurance = excluded.assurance,"
		" signer = excluded.signer, enc_cert_id = excluded.enc_cert_id,"
		" signing_time = excluded.signing_time, status = excluded.status,"
		" first_seen = excluded.first_seen, last_seen = excluded.last_seen";
	sqlite3_stmt *s = NULL;
	sqlite3_int64 id = 0;
	sm_status st;
	int rc;

	if ((st = sq_begin(c, true)) != SM_OK)
		return st;
	if ((st = put_cert(c, r, &id)) != SM_OK)
		goto done;
	if ((rc = sqlite3_prepare_v2(c->db, q, -1, &s, NULL)) != SQLITE_OK) {
		st = sq_fail(c, rc);
		goto done;
	}
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, r->address, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)r->caps);
	sqlite3_bind_text(s, 4, kc_source_name(r->source), -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, (int)r->assurance);
	sqlite3_bind_int(s, 6, r->signer);
	sqlite3_bind_text(s, 7, r->enc_fp, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 8, (sqlite3_int64)r->signing_time);
	sqlite3_bind_text(s, 9, r->status == KC_ST_REMOVED ? "removed" : "active",
			  -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)r->first_seen);
	sqlite3_bind_int64(s, 11, (sqlite3_int64)r->last_seen);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	st = rc == SQLITE_DONE ? sq_commit(c) : sq_fail(c, rc);
done:
	if (st != SM_OK && !sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return st;
}

static sm_status
sq_restore(struct kc_backend *be, const struct kc_record *r)
{
	sm_status st;

	SQ_RUN(be, "restore", restore_impl(c_, r));
	return st;
}

const struct kc_ops kc_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.put = sq_put,
	.lookup_address = sq_lookup_address,
	.lookup_fingerprint = sq_lookup_fingerprint,
	.list = sq_list,
	.remove = sq_remove,
	.check = sq_check,
	.put_origin = sq_put_origin,
	.get_origin = sq_get_origin,
	.restore = sq_restore,
};
