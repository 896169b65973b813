/*
 * keycache_pg.c — the PostgreSQL key cache backend (libpq), for several
 * gateways sharing one cache.
 *
 * Target: a libpq connection string or URI ("host=… dbname=…",
 * "postgresql://…"); connect_timeout defaults to 5 s unless it names one.
 *
 * Schema: versioned in smime_meta ('schema_version'); created or migrated
 * on the first connection, inside one transaction that holds an advisory
 * lock (PG_MIGRATE_LOCK), so two daemons starting at once never both
 * migrate: the second waits, then finds the schema current.
 *
 * Writes: one transaction each. Certificates and e-mail rows are upserted
 * (INSERT … ON CONFLICT), the address's bindings are serialised by a
 * transaction-scoped advisory lock on the address (so the before/after
 * views of kc_plan_outcome are this writer's own), every write bumps the
 * 'generation' counter and publishes pg_notify(PG_CHANNEL, address) in the
 * same transaction: other nodes hear of it exactly when it commits. A
 * deadlock or serialisation failure is retried from the start.
 *
 * Reads are served from a local copy when it is current (keycache_pgl.c:
 * invalidated by the notifications, cleared when the generation moved
 * while the listener was away); when the database is down, from the local
 * copy up to max_stale, else SM_ERR_DB. Writes made while it is down go to
 * a durable outbox on local disk and are replayed when it returns.
 *
 * Threads: one connection for operations, guarded by a mutex (reads mostly
 * hit the local copy), and one listener thread with its own connection.
 * While the database is down an operation does not wait for a connect: it
 * reconnects at most once per back-off interval (1 s doubling to 30 s).
 */
#include "keycache_pg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "clock.h"
#include "log.h"

/* Schema migrations: pg_migrations[i] takes version i to i + 1. Append
 * only. Version 1 holds what SQLite schema 2 holds. */
static const char *const pg_migrations[] = {
	"CREATE TABLE certs ("
	"  id BIGSERIAL PRIMARY KEY,"
	"  fingerprint TEXT NOT NULL UNIQUE CHECK (length(fingerprint) = 64),"
	"  key_fingerprint TEXT NOT NULL,"
	"  der BYTEA NOT NULL,"
	"  chain BYTEA,"
	"  subject TEXT NOT NULL,"
	"  issuer TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  not_before BIGINT NOT NULL,"
	"  not_after BIGINT NOT NULL,"
	"  key_type TEXT NOT NULL,"
	"  key_bits INTEGER NOT NULL,"
	"  can_encrypt BOOLEAN NOT NULL);"
	"CREATE INDEX certs_not_after ON certs(not_after);"
	"CREATE TABLE cert_emails ("
	"  cert_id BIGINT NOT NULL REFERENCES certs(id) ON DELETE CASCADE,"
	"  pos INTEGER NOT NULL,"
	"  email TEXT NOT NULL,"
	"  PRIMARY KEY (cert_id, email));"
	"CREATE TABLE bindings ("
	"  cert_id BIGINT NOT NULL REFERENCES certs(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL,"
	"  caps BIGINT NOT NULL DEFAULT 0,"
	"  source TEXT NOT NULL CHECK (source IN ('harvested', 'imported')),"
	"  assurance INTEGER NOT NULL CHECK (assurance IN (0, 1, 2)),"
	"  signer BOOLEAN NOT NULL,"
	"  enc_cert_id BIGINT REFERENCES certs(id) ON DELETE SET NULL,"
	"  signing_time BIGINT NOT NULL DEFAULT 0,"
	"  status TEXT NOT NULL CHECK (status IN ('active', 'removed')),"
	"  first_seen BIGINT NOT NULL,"
	"  last_seen BIGINT NOT NULL,"
	"  PRIMARY KEY (address, cert_id));"
	"CREATE INDEX bindings_cert ON bindings(cert_id);"
	"INSERT INTO smime_meta VALUES ('generation', 0)"
	" ON CONFLICT DO NOTHING;",
};
#define PG_SCHEMA_VERSION \
	((int)(sizeof(pg_migrations) / sizeof(pg_migrations[0])))

#define REC_COLS                                                              \
	"SELECT b.address, b.status, b.caps, b.source,"                       \
	" b.first_seen, b.last_seen, c.id, c.fingerprint, c.key_fingerprint," \
	" c.subject, c.issuer, c.serial, c.not_before, c.not_after,"          \
	" c.key_type, c.key_bits, c.der, c.chain, b.assurance, b.signer,"     \
	" coalesce(e.fingerprint, ''), b.signing_time, c.can_encrypt,"        \
	" coalesce((SELECT string_agg(m.email, E'\\n' ORDER BY m.pos)"        \
	"  FROM cert_emails m WHERE m.cert_id = c.id), '')"                   \
	" FROM bindings b JOIN certs c ON c.id = b.cert_id"                   \
	" LEFT JOIN certs e ON e.id = b.enc_cert_id "
#define REC_ORDER " ORDER BY b.address, c.not_before DESC, c.id"

/* ---- connections ---- */

/* Server notices go to the log (libpq would print them on stderr). */
static void
pg_notice(void *arg, const char *message)
{
	size_t n = strlen(message);

	(void)arg;
	while (n > 0 && message[n - 1] == '\n')
		n--;
	log_msg(LOG_DEBUG, "key cache (postgresql): %.*s", (int)n, message);
}

/* Connect with a default connect_timeout the target may override. */
PGconn *
pg_connect(const char *conninfo)
{
	const char *const keys[] = { "connect_timeout", "dbname", NULL };
	const char *const vals[] = { "5", conninfo, NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	if (c != NULL)
		PQsetNoticeProcessor(c, pg_notice, NULL);
	return c;
}

/* The message of the last failure on conn, one line. */
static void
pg_errtext(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *m = res ? PQresultErrorMessage(res) : NULL;
	size_t n;

	if (m == NULL || *m == '\0')
		m = conn ? PQerrorMessage(conn) : "no connection";
	snprintf(err, errlen, "%s", m);
	n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (char *p = err; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/* Run one statement with text parameters; NULL on failure (message in
 * be->last_err). Binary parameters: lens[i] > 0 marks parameter i as
 * binary of that length. */
static PGresult *
pg_run(struct kc_backend *be, const char *q, int n, const char *const *v,
       const int *lens)
{
	int fmts[16] = { 0 };
	PGresult *res;
	ExecStatusType es;

	for (int i = 0; lens && i < n && i < 16; i++)
		fmts[i] = lens[i] > 0;
	res = PQexecParams(be->conn, q, n, NULL, v, lens, lens ? fmts : NULL,
			   0);
	es = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK)
		return res;
	pg_errtext(be->conn, res, be->last_err, sizeof(be->last_err));
	snprintf(be->last_state, sizeof(be->last_state), "%s",
		 res && PQresultErrorField(res, PG_DIAG_SQLSTATE)
			 ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
			 : "");
	PQclear(res);
	return NULL;
}

static sm_status
pg_cmd(struct kc_backend *be, const char *q)
{
	PGresult *res = pg_run(be, q, 0, NULL, NULL);

	PQclear(res);
	return res ? SM_OK : SM_ERR_DB;
}

static void
pg_rollback(struct kc_backend *be)
{
	if (be->conn && PQtransactionStatus(be->conn) != PQTRANS_IDLE)
		PQclear(PQexec(be->conn, "ROLLBACK"));
}

/* Create or migrate the schema on conn, under the advisory lock. */
static sm_status
pg_migrate(PGconn *conn, char *err, size_t errlen)
{
	PGresult *res;
	int version = 0;
	char lock[64];
	sm_status st = SM_ERR_DB;

	res = PQexec(conn, "SET client_min_messages = warning");
	PQclear(res);
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)",
		 PG_MIGRATE_LOCK);
	const char *const steps[] = {
		"BEGIN", lock,
		"CREATE TABLE IF NOT EXISTS smime_meta ("
		"  name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
		"INSERT INTO smime_meta VALUES ('schema_version', 0)"
		" ON CONFLICT DO NOTHING",
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		res = PQexec(conn, steps[i]);
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		    PQresultStatus(res) != PGRES_TUPLES_OK)
			goto fail;
		PQclear(res);
	}
	res = PQexec(conn, "SELECT value FROM smime_meta"
			   " WHERE name = 'schema_version'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		goto fail;
	version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	res = NULL;
	if (version > PG_SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "key cache schema version %d is newer than this "
			 "program's %d",
			 version, PG_SCHEMA_VERSION);
		PQclear(PQexec(conn, "ROLLBACK"));
		return SM_ERR_DB;
	}
	for (; version < PG_SCHEMA_VERSION; version++) {
		char q[96];

		res = PQexec(conn, pg_migrations[version]);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			goto fail;
		PQclear(res);
		snprintf(q, sizeof(q),
			 "UPDATE smime_meta SET value = %d"
			 " WHERE name = 'schema_version'",
			 version + 1);
		res = PQexec(conn, q);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			goto fail;
		PQclear(res);
	}
	res = PQexec(conn, "COMMIT");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		goto fail;
	PQclear(res);
	return SM_OK;
fail:
	pg_errtext(conn, res, err, errlen);
	PQclear(res);
	PQclear(PQexec(conn, "ROLLBACK"));
	return st;
}

sm_status
pg_migrate_target(const char *conninfo, int *version, char *err,
		  size_t errlen)
{
	PGconn *conn = pg_connect(conninfo);
	sm_status st = SM_ERR_DB;

	if (PQstatus(conn) != CONNECTION_OK)
		pg_errtext(conn, NULL, err, errlen);
	else
		st = pg_migrate(conn, err, errlen);
	if (st == SM_OK && version)
		*version = PG_SCHEMA_VERSION;
	PQfinish(conn);
	return st;
}

/* Make sure the operation connection is up. Called with be->mu held. A
 * broken connection is retried at most once per back-off interval, so
 * callers fail fast while the database is down. */
static sm_status
pg_ensure(struct kc_backend *be)
{
	time_t now = time(NULL);
	char err[200];

	if (be->conn && PQstatus(be->conn) == CONNECTION_OK)
		return SM_OK;
	if (now < be->next_try) {
		snprintf(be->last_err, sizeof(be->last_err),
			 "database unreachable (next attempt in %llds)",
			 (long long)(be->next_try - now));
		return SM_ERR_DB;
	}
	PQfinish(be->conn);
	be->conn = pg_connect(be->conninfo);
	if (PQstatus(be->conn) == CONNECTION_OK &&
	    (be->migrated || pg_migrate(be->conn, err, sizeof(err)) == SM_OK)) {
		be->migrated = true;
		be->backoff = 0;
		be->next_try = 0;
		return SM_OK;
	}
	if (PQstatus(be->conn) != CONNECTION_OK)
		pg_errtext(be->conn, NULL, be->last_err, sizeof(be->last_err));
	else
		snprintf(be->last_err, sizeof(be->last_err), "%s", err);
	PQfinish(be->conn);
	be->conn = NULL;
	be->backoff = be->backoff ? be->backoff * 2 : 1;
	if (be->backoff > PG_BACKOFF_MAX)
		be->backoff = PG_BACKOFF_MAX;
	be->next_try = now + be->backoff;
	return SM_ERR_DB;
}

/* Was the last failure the connection's (not the statement's)? */
static bool
pg_conn_lost(struct kc_backend *be)
{
	return be->conn == NULL || PQstatus(be->conn) != CONNECTION_OK ||
	       strncmp(be->last_state, "08", 2) == 0 ||
	       strncmp(be->last_state, "57P", 3) == 0;
}

/* ---- rows ---- */

static char *
col_dup(const PGresult *r, int row, int col)
{
	return strdup(PQgetvalue(r, row, col));
}

static void
col_fp(const PGresult *r, int row, int col, char out[X509U_FP_SIZE])
{
	snprintf(out, X509U_FP_SIZE, "%s", PQgetvalue(r, row, col));
}

static time_t
col_time(const PGresult *r, int row, int col)
{
	return (time_t)strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool
col_bool(const PGresult *r, int row, int col)
{
	return PQgetvalue(r, row, col)[0] == 't';
}

static sm_status
col_bytea(const PGresult *r, int row, int col, unsigned char **out,
	  size_t *len)
{
	unsigned char *u;
	size_t n = 0;

	*out = NULL;
	*len = 0;
	if (PQgetisnull(r, row, col))
		return SM_OK;
	u = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col),
			    &n);
	if (u == NULL)
		return SM_ERR_NOMEM;
	if (n > 0 && (*out = malloc(n)) == NULL) {
		PQfreemem(u);
		return SM_ERR_NOMEM;
	}
	if (n > 0)
		memcpy(*out, u, n);
	PQfreemem(u);
	*len = n;
	return SM_OK;
}

static sm_status
split_emails(const char *s, struct kc_record *r)
{
	size_t cnt = 0;
	const char *p;

	if (*s == '\0')
		return SM_OK;
	cnt = 1;
	for (p = s; *p; p++)
		cnt += *p == '\n';
	if ((r->emails = calloc(cnt, sizeof(*r->emails))) == NULL)
		return SM_ERR_NOMEM;
	for (p = s;;) {
		const char *e = strchr(p, '\n');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if ((r->emails[r->n_emails] = strndup(p, l)) == NULL)
			return SM_ERR_NOMEM;
		r->n_emails++;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return SM_OK;
}

static sm_status
row_to_record(const PGresult *res, int i, struct kc_record *r)
{
	sm_status st;

	memset(r, 0, sizeof(*r));
	r->address = col_dup(res, i, 0);
	r->status = strcmp(PQgetvalue(res, i, 1), "removed") == 0
			    ? KC_ST_REMOVED
			    : KC_ST_ACTIVE;
	r->caps = (caps_t)strtoull(PQgetvalue(res, i, 2), NULL, 10);
	r->source = strcmp(PQgetvalue(res, i, 3), "imported") == 0
			    ? KC_SRC_IMPORTED
			    : KC_SRC_HARVESTED;
	r->first_seen = col_time(res, i, 4);
	r->last_seen = col_time(res, i, 5);
	col_fp(res, i, 7, r->fingerprint);
	col_fp(res, i, 8, r->key_fingerprint);
	r->subject = col_dup(res, i, 9);
	r->issuer = col_dup(res, i, 10);
	r->serial = col_dup(res, i, 11);
	r->not_before = col_time(res, i, 12);
	r->not_after = col_time(res, i, 13);
	r->key_type = x509u_key_type_from_name(PQgetvalue(res, i, 14));
	r->key_bits = atoi(PQgetvalue(res, i, 15));
	switch (atoi(PQgetvalue(res, i, 18))) {
	case 2: r->assurance = KC_AS_ADMIN; break;
	case 1: r->assurance = KC_AS_CA; break;
	default: r->assurance = KC_AS_SELF_SIGNED; break;
	}
	r->signer = col_bool(res, i, 19);
	col_fp(res, i, 20, r->enc_fp);
	r->signing_time = col_time(res, i, 21);
	r->can_encrypt = col_bool(res, i, 22);
	if (r->address == NULL || r->subject == NULL || r->issuer == NULL ||
	    r->serial == NULL)
		return SM_ERR_NOMEM;
	if ((st = col_bytea(res, i, 16, &r->der, &r->der_len)) != SM_OK ||
	    (st = col_bytea(res, i, 17, &r->chain, &r->chain_len)) != SM_OK)
		return st;
	return split_emails(PQgetvalue(res, i, 23), r);
}

static sm_status
collect(const PGresult *res, struct kc_record **out, size_t *n)
{
	int rows = PQntuples(res);
	struct kc_record *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	sm_status st = SM_OK;
	int i;

	if (v == NULL)
		return SM_ERR_NOMEM;
	for (i = 0; i < rows && st == SM_OK; i++)
		st = row_to_record(res, i, &v[i]);
	if (st != SM_OK) {
		kc_records_free(v, (size_t)i);
		return st;
	}
	*out = v;
	*n = (size_t)rows;
	return SM_OK;
}

/* ---- operations (be->mu held, connection up) ---- */

struct view_row {
	char id[24];
	char fp[X509U_FP_SIZE];
	char kfp[X509U_FP_SIZE];
	char efp[X509U_FP_SIZE];
	struct kc_binding_view v;
};

static sm_status
load_views(struct kc_backend *be, const char *address, struct view_row **out,
	   size_t *n)
{
	const char *q =
		"SELECT b.cert_id, c.fingerprint, c.key_fingerprint,"
		" c.not_before, c.not_after, b.status, b.signer,"
		" coalesce(e.fingerprint, ''), b.signing_time, b.last_seen,"
		" c.can_encrypt, b.assurance"
		" FROM bindings b JOIN certs c ON c.id = b.cert_id"
		" LEFT JOIN certs e ON e.id = b.enc_cert_id"
		" WHERE b.address = $1";
	const char *args[1] = { address };
	PGresult *res = pg_run(be, q, 1, args, NULL);
	struct view_row *v;
	int rows, i;

	*out = NULL;
	*n = 0;
	if (res == NULL)
		return SM_ERR_DB;
	rows = PQntuples(res);
	if ((v = calloc(rows ? (size_t)rows : 1, sizeof(*v))) == NULL) {
		PQclear(res);
		return SM_ERR_NOMEM;
	}
	for (i = 0; i < rows; i++) {
		snprintf(v[i].id, sizeof(v[i].id), "%s", PQgetvalue(res, i, 0));
		col_fp(res, i, 1, v[i].fp);
		col_fp(res, i, 2, v[i].kfp);
		col_fp(res, i, 7, v[i].efp);
		v[i].v.fingerprint = v[i].fp;
		v[i].v.key_fingerprint = v[i].kfp;
		v[i].v.enc_fp = v[i].efp;
		v[i].v.not_before = col_time(res, i, 3);
		v[i].v.not_after = col_time(res, i, 4);
		v[i].v.status = strcmp(PQgetvalue(res, i, 5), "removed") == 0
					? KC_ST_REMOVED
					: KC_ST_ACTIVE;
		v[i].v.signer = col_bool(res, i, 6);
		v[i].v.signing_time = col_time(res, i, 8);
		v[i].v.last_seen = col_time(res, i, 9);
		v[i].v.can_encrypt = col_bool(res, i, 10);
		v[i].v.assurance = (enum kc_assurance)atoi(
			PQgetvalue(res, i, 11));
	}
	PQclear(res);
	*out = v;
	*n = (size_t)rows;
	return SM_OK;
}

/* Insert the certificate when new (refresh its chain when one came) and
 * its e-mail rows; the id in id. */
static sm_status
put_cert(struct kc_backend *be, const struct kc_record *r, char id[24])
{
	char nb[24], na[24], bits[24], pos[24];
	const char *v[12];
	int lens[12] = { 0 };
	PGresult *res;

	snprintf(nb, sizeof(nb), "%lld", (long long)r->not_before);
	snprintf(na, sizeof(na), "%lld", (long long)r->not_after);
	snprintf(bits, sizeof(bits), "%d", r->key_bits);
	v[0] = r->fingerprint;
	v[1] = r->key_fingerprint;
	v[2] = (const char *)r->der;
	lens[2] = (int)r->der_len;
	v[3] = r->chain_len ? (const char *)r->chain : NULL;
	lens[3] = (int)r->chain_len;
	v[4] = r->subject;
	v[5] = r->issuer;
	v[6] = r->serial;
	v[7] = nb;
	v[8] = na;
	v[9] = x509u_key_type_name(r->key_type);
	v[10] = bits;
	v[11] = r->can_encrypt ? "t" : "f";
	res = pg_run(be,
		     "INSERT INTO certs (fingerprint, key_fingerprint, der,"
		     " chain, subject, issuer, serial, not_before, not_after,"
		     " key_type, key_bits, can_encrypt)"
		     " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
		     " $12) ON CONFLICT (fingerprint) DO UPDATE SET"
		     " chain = coalesce(excluded.chain, certs.chain)"
		     " RETURNING id",
		     12, v, lens);
	if (res == NULL)
		return SM_ERR_DB;
	snprintf(id, 24, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	for (size_t i = 0; i < r->n_emails; i++) {
		const char *ev[3] = { id, pos, r->emails[i] };

		snprintf(pos, sizeof(pos), "%zu", i);
		res = pg_run(be,
			     "INSERT INTO cert_emails (cert_id, pos, email)"
			     " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			     3, ev, NULL);
		if (res == NULL)
			return SM_ERR_DB;
		PQclear(res);
	}
	return SM_OK;
}

/* Upsert one binding: the pairing rules of keycache.h. */
static sm_status
put_binding(struct kc_backend *be, bool head, const struct kc_record *r,
	    const char *id, const char *enc_id, time_t now)
{
	char caps[24], as[8], st[24], nw[24];
	const char *v[9];
	PGresult *res;

	snprintf(caps, sizeof(caps), "%llu", (unsigned long long)r->caps);
	snprintf(as, sizeof(as), "%d", (int)r->assurance);
	snprintf(st, sizeof(st), "%lld", (long long)r->signing_time);
	snprintf(nw, sizeof(nw), "%lld", (long long)now);
	v[0] = id;
	v[1] = r->address;
	v[2] = caps;
	v[3] = r->source == KC_SRC_IMPORTED ? "imported" : "harvested";
	v[4] = as;
	v[5] = head && enc_id[0] ? enc_id : NULL;
	v[6] = head ? st : "0";
	v[7] = nw;
	v[8] = (r->caps & CAP_KNOWN) ? "t" : "f";
	res = pg_run(
		be,
		head ? "INSERT INTO bindings AS b (cert_id, address, caps,"
		       " source, assurance, signer, enc_cert_id, signing_time,"
		       " status, first_seen, last_seen)"
		       " VALUES ($1, $2, $3, $4, $5, true, $6, $7, 'active',"
		       " $8, $8) ON CONFLICT (address, cert_id) DO UPDATE SET"
		       " status = 'active', signer = true,"
		       " last_seen = greatest(b.last_seen, excluded.last_seen),"
		       " caps = CASE WHEN $9::boolean THEN excluded.caps"
		       "  ELSE b.caps END,"
		       " enc_cert_id = CASE WHEN excluded.signing_time >="
		       "  b.signing_time THEN excluded.enc_cert_id"
		       "  ELSE b.enc_cert_id END,"
		       " signing_time = greatest(b.signing_time,"
		       "  excluded.signing_time),"
		       " assurance = greatest(b.assurance, excluded.assurance)"
		     : "INSERT INTO bindings AS b (cert_id, address, caps,"
		       " source, assurance, signer, enc_cert_id, signing_time,"
		       " status, first_seen, last_seen)"
		       " VALUES ($1, $2, $3, $4, $5, false, $6, $7, 'active',"
		       " $8, $8) ON CONFLICT (address, cert_id) DO UPDATE SET"
		       " status = 'active',"
		       " last_seen = greatest(b.last_seen, excluded.last_seen),"
		       " caps = CASE WHEN $9::boolean THEN excluded.caps"
		       "  ELSE b.caps END,"
		       " assurance = greatest(b.assurance, excluded.assurance)",
		9, v, NULL);
	PQclear(res);
	return res ? SM_OK : SM_ERR_DB;
}

/* Lock the address for this transaction, bump the generation and tell the
 * other nodes at commit. */
static sm_status
pg_publish(struct kc_backend *be, const char *address)
{
	const char *v[2] = { PG_CHANNEL, address };
	PGresult *res;

	/* Payload "GENERATION ADDRESS": a listener that follows the numbers
	 * knows, after a reconnect, whether it missed any. */
	res = pg_run(be,
		     "WITH g AS (UPDATE smime_meta SET value = value + 1"
		     " WHERE name = 'generation' RETURNING value)"
		     " SELECT pg_notify($1, (SELECT value FROM g) || ' ' || $2)",
		     2, v, NULL);
	PQclear(res);
	return res ? SM_OK : SM_ERR_DB;
}

static sm_status
pg_lock_address(struct kc_backend *be, const char *address)
{
	const char *v[1] = { address };
	PGresult *res = pg_run(be,
			       "SELECT pg_advisory_xact_lock(" 
			       "hashtextextended($1, 0))",
			       1, v, NULL);

	PQclear(res);
	return res ? SM_OK : SM_ERR_DB;
}

static sm_status
put_once(struct kc_backend *be, const struct kc_record *head,
	 const struct kc_record *enc, time_t now, struct kc_plan *plan)
{
	struct view_row *vb = NULL, *va = NULL;
	char hid[24] = "", eid[24] = "";
	size_t nb = 0, na = 0, i;
	bool was_live = false;
	sm_status st;

	if ((st = pg_cmd(be, "BEGIN")) != SM_OK)
		return st;
	if ((st = pg_lock_address(be, head->address)) != SM_OK ||
	    (st = put_cert(be, head, hid)) != SM_OK ||
	    (enc && (st = put_cert(be, enc, eid)) != SM_OK) ||
	    (st = load_views(be, head->address, &vb, &nb)) != SM_OK)
		goto done;
	for (i = 0; i < nb; i++) {
		struct view_row *w = &vb[i];

		if (strcmp(w->id, hid) == 0 && w->v.signer &&
		    w->v.status != KC_ST_REMOVED)
			was_live = true;
	}
	if ((enc && (st = put_binding(be, false, enc, eid, "", now)) !=
			SM_OK) ||
	    (st = put_binding(be, true, head, hid, eid, now)) != SM_OK ||
	    (st = load_views(be, head->address, &va, &na)) != SM_OK)
		goto done;
	{
		struct kc_binding_view *b2 = calloc(nb ? nb : 1, sizeof(*b2));
		struct kc_binding_view *a2 = calloc(na ? na : 1, sizeof(*a2));

		if (b2 == NULL || a2 == NULL) {
			free(b2);
			free(a2);
			st = SM_ERR_NOMEM;
			goto done;
		}
		for (i = 0; i < nb; i++)
			b2[i] = vb[i].v;
		for (i = 0; i < na; i++)
			a2[i] = va[i].v;
		kc_plan_outcome(b2, nb, a2, na, head->fingerprint, was_live,
				now, plan);
		free(b2);
		free(a2);
	}
	if ((st = pg_publish(be, head->address)) == SM_OK)
		st = pg_cmd(be, "COMMIT");
done:
	if (st != SM_OK)
		pg_rollback(be);
	free(vb);
	free(va);
	return st;
}

/* Run a write; retry from the start after a deadlock or a serialisation
 * failure (40P01, 40001) or a unique violation of a racing insert. */
static sm_status
retry_put(struct kc_backend *be, const struct kc_record *head,
	  const struct kc_record *enc, time_t now, struct kc_plan *plan)
{
	sm_status st = SM_ERR_DB;

	for (int t = 0; t < PG_RETRIES; t++) {
		be->last_state[0] = '\0';
		st = put_once(be, head, enc, now, plan);
		if (st != SM_ERR_DB || (strcmp(be->last_state, "40P01") != 0 &&
					strcmp(be->last_state, "40001") != 0 &&
					strcmp(be->last_state, "23505") != 0))
			break;
	}
	return st;
}

sm_status
pg_put_direct(struct kc_backend *be, const struct kc_record *head,
	      const struct kc_record *enc, time_t now, struct kc_plan *plan)
{
	sm_status st;

	pthread_mutex_lock(&be->mu);
	if ((st = pg_ensure(be)) == SM_OK)
		st = retry_put(be, head, enc, now, plan);
	if (st == SM_ERR_DB && pg_conn_lost(be)) {
		PQfinish(be->conn);
		be->conn = NULL;
		st = SM_ERR_DB;
	}
	pthread_mutex_unlock(&be->mu);
	return st;
}

sm_status
pg_query(struct kc_backend *be, int kind, const char *text, time_t a,
	 time_t b, struct kc_record **out, size_t *n)
{
	char as[24], bs[24];
	const char *v[2];
	const char *q;
	int nargs = 0;
	PGresult *res;
	sm_status st;

	*out = NULL;
	*n = 0;
	switch (kind) {
	case PG_Q_ADDR:
		q = REC_COLS "WHERE b.address = $1" REC_ORDER;
		v[0] = text;
		nargs = 1;
		break;
	case PG_Q_FP:
		q = REC_COLS "WHERE c.fingerprint = $1" REC_ORDER;
		v[0] = text;
		nargs = 1;
		break;
	case PG_Q_EXPIRING:
		snprintf(as, sizeof(as), "%lld", (long long)a);
		snprintf(bs, sizeof(bs), "%lld", (long long)b);
		q = REC_COLS "WHERE c.not_after > $1 AND c.not_after <= $2"
			REC_ORDER;
		v[0] = as;
		v[1] = bs;
		nargs = 2;
		break;
	default:
		q = REC_COLS REC_ORDER;
		break;
	}
	pthread_mutex_lock(&be->mu);
	if ((st = pg_ensure(be)) == SM_OK) {
		res = pg_run(be, q, nargs, v, NULL);
		if (res == NULL) {
			st = SM_ERR_DB;
			if (pg_conn_lost(be)) {
				PQfinish(be->conn);
				be->conn = NULL;
			}
		} else {
			st = collect(res, out, n);
			PQclear(res);
		}
	}
	if (st == SM_ERR_DB)
		log_msg(LOG_ERR, "key cache (postgresql): %s", be->last_err);
	pthread_mutex_unlock(&be->mu);
	return st;
}

static sm_status
remove_once(struct kc_backend *be, const char *address, const char *fp,
	    size_t *count)
{
	const char *v[1] = { address ? address : fp };
	PGresult *res;
	sm_status st;
	long total;

	if ((st = pg_cmd(be, "BEGIN")) != SM_OK)
		return st;
	res = pg_run(be,
		     address ? "SELECT count(*) FROM bindings WHERE address = $1"
			     : "SELECT count(*) FROM bindings b JOIN certs c"
			       " ON c.id = b.cert_id WHERE c.fingerprint = $1",
		     1, v, NULL);
	if (res == NULL)
		goto fail;
	total = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	res = pg_run(be,
		     address ? "UPDATE bindings SET status = 'removed'"
			       " WHERE address = $1 AND status <> 'removed'"
			       " RETURNING address"
			     : "UPDATE bindings SET status = 'removed'"
			       " WHERE status <> 'removed' AND cert_id ="
			       " (SELECT id FROM certs WHERE fingerprint = $1)"
			       " RETURNING address",
		     1, v, NULL);
	if (res == NULL)
		goto fail;
	if (count)
		*count = (size_t)PQntuples(res);
	for (int i = 0; i < PQntuples(res) && st == SM_OK; i++)
		st = pg_publish(be, PQgetvalue(res, i, 0));
	PQclear(res);
	if (st != SM_OK || (st = pg_cmd(be, "COMMIT")) != SM_OK)
		goto fail;
	return total == 0 ? SM_ERR_NOTFOUND : SM_OK;
fail:
	pg_rollback(be);
	return SM_ERR_DB;
}

sm_status
pg_remove_direct(struct kc_backend *be, const char *address, const char *fp,
		 size_t *count)
{
	sm_status st;

	pthread_mutex_lock(&be->mu);
	if ((st = pg_ensure(be)) == SM_OK)
		st = remove_once(be, address, fp, count);
	if (st == SM_ERR_DB) {
		log_msg(LOG_ERR, "key cache (postgresql): remove: %s",
			be->last_err);
		if (pg_conn_lost(be)) {
			PQfinish(be->conn);
			be->conn = NULL;
		}
	}
	pthread_mutex_unlock(&be->mu);
	return st;
}

/* Schema version and the generation, for check and the listener. */
sm_status
pg_meta(struct kc_backend *be, int *version, long long *generation)
{
	PGresult *res;
	sm_status st;

	pthread_mutex_lock(&be->mu);
	if ((st = pg_ensure(be)) == SM_OK) {
		res = pg_run(be,
			     "SELECT name, value FROM smime_meta"
			     " WHERE name IN ('schema_version', 'generation')",
			     0, NULL, NULL);
		if (res == NULL) {
			st = SM_ERR_DB;
		} else {
			for (int i = 0; i < PQntuples(res); i++) {
				long long val =
					strtoll(PQgetvalue(res, i, 1), NULL, 10);

				if (strcmp(PQgetvalue(res, i, 0),
					   "generation") == 0) {
					if (generation)
						*generation = val;
				} else if (version) {
					*version = (int)val;
				}
			}
			PQclear(res);
		}
	}
	pthread_mutex_unlock(&be->mu);
	return st;
}

int
pg_schema_version(void)
{
	return PG_SCHEMA_VERSION;
}

static sm_status
restore_once(struct kc_backend *be, const struct kc_record *r)
{
	char id[24] = "", caps[24], as[8], sg[24], fs[24], ls[24];
	const char *v[11];
	PGresult *res;
	sm_status st;

	snprintf(caps, sizeof(caps), "%llu", (unsigned long long)r->caps);
	snprintf(as, sizeof(as), "%d", (int)r->assurance);
	snprintf(sg, sizeof(sg), "%lld", (long long)r->signing_time);
	snprintf(fs, sizeof(fs), "%lld", (long long)r->first_seen);
	snprintf(ls, sizeof(ls), "%lld", (long long)r->last_seen);
	if ((st = pg_cmd(be, "BEGIN")) != SM_OK)
		return st;
	if ((st = pg_lock_address(be, r->address)) != SM_OK ||
	    (st = put_cert(be, r, id)) != SM_OK)
		goto done;
	v[0] = id;
	v[1] = r->address;
	v[2] = caps;
	v[3] = kc_source_name(r->source);
	v[4] = as;
	v[5] = r->signer ? "t" : "f";
	v[6] = r->enc_fp;
	v[7] = sg;
	v[8] = r->status == KC_ST_REMOVED ? "removed" : "active";
	v[9] = fs;
	v[10] = ls;
	res = pg_run(be,
		     "INSERT INTO bindings (cert_id, address, caps, source,"
		     " assurance, signer, enc_cert_id, signing_time, status,"
		     " first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6,"
		     " (SELECT id FROM certs WHERE fingerprint = $7), $8, $9,"
		     " $10, $11) ON CONFLICT (address, cert_id) DO UPDATE SET"
		     " caps = excluded.caps, source = excluded.source,"
		     " assurance = excluded.assurance, signer = excluded.signer,"
		     " enc_cert_id = excluded.enc_cert_id,"
		     " signing_time = excluded.signing_time,"
		     " status = excluded.status, first_seen = excluded.first_seen,"
		     " last_seen = excluded.last_seen",
		     11, v, NULL);
	PQclear(res);
	if (res == NULL)
		st = SM_ERR_DB;
	else if ((st = pg_publish(be, r->address)) == SM_OK)
		st = pg_cmd(be, "COMMIT");
done:
	if (st != SM_OK)
		pg_rollback(be);
	return st;
}

sm_status
pg_restore_direct(struct kc_backend *be, const struct kc_record *r)
{
	sm_status st;

	pthread_mutex_lock(&be->mu);
	if ((st = pg_ensure(be)) == SM_OK)
		st = restore_once(be, r);
	if (st == SM_ERR_DB)
		log_msg(LOG_ERR, "key cache (postgresql): restore: %s",
			be->last_err);
	pthread_mutex_unlock(&be->mu);
	return st;
}
