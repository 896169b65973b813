/*
 * revstore.c — the revocation store (see revstore.h).
 */
#include "revstore.h"

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certcache.h"

#define RS_RETRY_MIN 60		/* back-off after a failed check */
#define RS_RETRY_MAX 3600
#define RS_REFRESH_MIN 60

struct revstore {
	sqlite3 *db;
	sqlite3_stmt *dv;	/* PRAGMA data_version, kept prepared */
	pthread_mutex_t mu;
	unsigned long id;	/* this store's identity, in memo keys */
	atomic_ulong reads;	/* revstore_get calls (revstore_reads) */
};

static atomic_ulong rs_next_id = 1;

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS rev_status("
	" fp TEXT PRIMARY KEY, cert BLOB NOT NULL, issuer BLOB,"
	" status INTEGER NOT NULL DEFAULT 0, source INTEGER NOT NULL DEFAULT 0,"
	" revoked_at INTEGER NOT NULL DEFAULT 0, reason INTEGER NOT NULL DEFAULT -1,"
	" this_update INTEGER NOT NULL DEFAULT 0, next_update INTEGER NOT NULL DEFAULT 0,"
	" checked_at INTEGER NOT NULL DEFAULT 0, unknown_since INTEGER NOT NULL DEFAULT 0,"
	" due INTEGER NOT NULL DEFAULT 0, tries INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX IF NOT EXISTS rev_status_due ON rev_status(due);"
	"CREATE TABLE IF NOT EXISTS rev_crl("
	" key TEXT PRIMARY KEY, der BLOB NOT NULL, this_update INTEGER NOT NULL,"
	" next_update INTEGER NOT NULL, fetched_at INTEGER NOT NULL);";

sm_status
revstore_open(const char *path, struct revstore **out, char *err,
	      size_t errlen)
{
	struct revstore *rs;
	char *msg = NULL;

	*out = NULL;
	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		return SM_ERR_NOMEM;
	pthread_mutex_init(&rs->mu, NULL);
	if (sqlite3_open_v2(path, &rs->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				    SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		sm_seterr(err, errlen, "%s: %s", path,
			  rs->db ? sqlite3_errmsg(rs->db) : "cannot open");
		revstore_close(rs);
		return SM_ERR_DB;
	}
	sqlite3_busy_timeout(rs->db, 5000);
	if (sqlite3_exec(rs->db,
			 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
			 NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(rs->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
		sm_seterr(err, errlen, "%s: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		revstore_close(rs);
		return SM_ERR_DB;
	}
	if (sqlite3_prepare_v3(rs->db, "PRAGMA data_version", -1,
			       SQLITE_PREPARE_PERSISTENT, &rs->dv,
			       NULL) != SQLITE_OK) {
		sm_seterr(err, errlen, "%s: %s", path, sqlite3_errmsg(rs->db));
		revstore_close(rs);
		return SM_ERR_DB;
	}
	rs->id = atomic_fetch_add(&rs_next_id, 1);
	*out = rs;
	return SM_OK;
}

void
revstore_close(struct revstore *rs)
{
	if (rs == NULL)
		return;
	sqlite3_finalize(rs->dv);
	sqlite3_close(rs->db);
	pthread_mutex_destroy(&rs->mu);
	free(rs);
}

void
rev_entry_free(struct rev_entry *e)
{
	if (e == NULL)
		return;
	free(e->cert);
	free(e->issuer);
	e->cert = e->issuer = NULL;
}

void
rev_entries_free(struct rev_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rev_entry_free(&v[i]);
	free(v);
}

#define ROW_COLS                                                              \
	"fp, cert, issuer, status, source, revoked_at, reason, this_update," \
	" next_update, checked_at, unknown_since, due, last_error"

static unsigned char *
blob_dup(sqlite3_stmt *q, int col, size_t *len)
{
	const void *p = sqlite3_column_blob(q, col);
	int n = sqlite3_column_bytes(q, col);
	unsigned char *d;

	*len = 0;
	if (p == NULL || n <= 0 || (d = malloc((size_t)n)) == NULL)
		return NULL;
	memcpy(d, p, (size_t)n);
	*len = (size_t)n;
	return d;
}

static sm_status
row_read(sqlite3_stmt *q, struct rev_entry *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->fp, sizeof(e->fp), "%s",
		 (const char *)sqlite3_column_text(q, 0));
	e->cert = blob_dup(q, 1, &e->cert_len);
	e->issuer = blob_dup(q, 2, &e->issuer_len);
	if (e->cert == NULL)
		return SM_ERR_NOMEM;
	e->r.status = (enum rev_status)sqlite3_column_int(q, 3);
	e->r.source = (enum rev_source)sqlite3_column_int(q, 4);
	e->r.revoked_at = (time_t)sqlite3_column_int64(q, 5);
	e->r.reason = sqlite3_column_int(q, 6);
	e->r.this_update = (time_t)sqlite3_column_int64(q, 7);
	e->r.next_update = (time_t)sqlite3_column_int64(q, 8);
	e->checked_at = (time_t)sqlite3_column_int64(q, 9);
	e->unknown_since = (time_t)sqlite3_column_int64(q, 10);
	e->due = (time_t)sqlite3_column_int64(q, 11);
	snprintf(e->last_error, sizeof(e->last_error), "%s",
		 (const char *)sqlite3_column_text(q, 12));
	return SM_OK;
}

sm_status
revstore_get(struct revstore *rs, const char *fp, struct rev_entry *e)
{
	sqlite3_stmt *q = NULL;
	sm_status st = SM_ERR_DB;
	int rc;

	memset(e, 0, sizeof(*e));
	atomic_fetch_add(&rs->reads, 1);
	pthread_mutex_lock(&rs->mu);
	if (sqlite3_prepare_v2(rs->db,
			       "SELECT " ROW_COLS " FROM rev_status WHERE fp = ?",
			       -1, &q, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(q, 1, fp, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		st = row_read(q, e);
	else if (rc == SQLITE_DONE)
		st = SM_ERR_NOTFOUND;
done:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&rs->mu);
	if (st != SM_OK)
		rev_entry_free(e);
	return st;
}

static sm_status
der_of(X509 *x, unsigned char **der, int *len)
{
	*der = NULL;
	*len = x ? i2d_X509(x, der) : 0;
	return x && *len <= 0 ? SM_ERR_CRYPTO : SM_OK;
}

sm_status
revstore_enqueue(struct revstore *rs, X509 *cert, X509 *issuer, time_t now)
{
	char fp[X509U_FP_SIZE];
	unsigned char *cd = NULL, *id = NULL;
	int cl, il;
	sqlite3_stmt *q = NULL;
	sm_status st;

	if ((st = x509u_fingerprint(cert, fp)) != SM_OK ||
	    (st = der_of(cert, &cd, &cl)) != SM_OK ||
	    (st = der_of(issuer, &id, &il)) != SM_OK)
		goto out;
	st = SM_ERR_DB;
	pthread_mutex_lock(&rs->mu);
	if (sqlite3_prepare_v2(
		    rs->db,
		    "INSERT INTO rev_status(fp, cert, issuer, unknown_since, due)"
		    " VALUES(?, ?, ?, ?, ?) ON CONFLICT(fp) DO UPDATE SET"
		    " issuer = coalesce(issuer, excluded.issuer)",
		    -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_text(q, 1, fp, -1, SQLITE_STATIC);
		sqlite3_bind_blob(q, 2, cd, cl, SQLITE_STATIC);
		if (id)
			sqlite3_bind_blob(q, 3, id, il, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 3);
		sqlite3_bind_int64(q, 4, (sqlite3_int64)now);
		sqlite3_bind_int64(q, 5, (sqlite3_int64)now);
		if (sqlite3_step(q) == SQLITE_DONE)
			st = SM_OK;
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&rs->mu);
out:
	OPENSSL_free(cd);
	OPENSSL_free(id);
	return st;
}

/* When to look again after an answer good until next: ahead of it, by a
 * quarter of the remaining time (a CRL valid a week is fetched again after
 * five days and a quarter), never sooner than a minute. */
static time_t
refresh_at(time_t now, time_t next)
{
	time_t left = next > now ? next - now : 0;
	time_t at = now + left - left / 4;

	return at < now + RS_REFRESH_MIN ? now + RS_REFRESH_MIN : at;
}

static int
exec_put(sqlite3 *db, const char *sql, const char *fp,
	 const struct rev_result *r, time_t now)
{
	sqlite3_stmt *q = NULL;
	int rc = SQLITE_ERROR;

	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		return rc;
	sqlite3_bind_int(q, 1, (int)r->status);
	sqlite3_bind_int(q, 2, (int)r->source);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)r->revoked_at);
	sqlite3_bind_int(q, 4, r->reason);
	sqlite3_bind_int64(q, 5, (sqlite3_int64)r->this_update);
	sqlite3_bind_int64(q, 6, (sqlite3_int64)r->next_update);
	sqlite3_bind_int64(q, 7, (sqlite3_int64)now);
	sqlite3_bind_int64(q, 8, (sqlite3_int64)refresh_at(now, r->next_update));
	sqlite3_bind_text(q, 9, r->why, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 10, RS_RETRY_MIN);
	sqlite3_bind_int64(q, 11, RS_RETRY_MAX);
	sqlite3_bind_text(q, 12, fp, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc;
}

sm_status
revstore_put(struct revstore *rs, const char *fp, const struct rev_result *r,
	     time_t now)
{
	/* ?1 status ?2 source ?3 revoked_at ?4 reason ?5 this ?6 next ?7 now
	 * ?8 refresh ?9 why ?10 retry min ?11 retry max ?12 fp */
	static const char answer[] =
		"UPDATE rev_status SET status = ?1, source = ?2,"
		" revoked_at = ?3, reason = ?4, this_update = ?5,"
		" next_update = ?6, checked_at = ?7, unknown_since = 0,"
		" due = ?8, tries = 0, last_error = '' WHERE fp = ?12";
	static const char none[] =
		"UPDATE rev_status SET last_error = ?9, tries = tries + 1,"
		" due = ?7 + min(?11, ?10 << min(tries, 6)),"
		" unknown_since = CASE WHEN status != 0 AND next_update >= ?7"
		"  THEN 0 WHEN unknown_since != 0 THEN unknown_since"
		"  WHEN status != 0 THEN next_update ELSE ?7 END,"
		" status = CASE WHEN status != 0 AND next_update >= ?7"
		"  THEN status ELSE 0 END WHERE fp = ?12";
	int rc;

	pthread_mutex_lock(&rs->mu);
	rc = exec_put(rs->db, r->status == REV_UNKNOWN ? none : answer, fp, r,
		      now);
	pthread_mutex_unlock(&rs->mu);
	certcache_bump(); /* a recipient looked up at RCPT is judged again */
	return rc == SQLITE_DONE ? SM_OK : SM_ERR_DB;
}

sm_status
revstore_due(struct revstore *rs, time_t now, size_t max,
	     struct rev_entry **out, size_t *n)
{
	sqlite3_stmt *q = NULL;
	sm_status st = SM_ERR_DB;
	struct rev_entry *v;
	int rc;

	*out = NULL;
	*n = 0;
	if ((v = calloc(max ? max : 1, sizeof(*v))) == NULL)
		return SM_ERR_NOMEM;
	pthread_mutex_lock(&rs->mu);
	if (sqlite3_prepare_v2(rs->db,
			       "SELECT " ROW_COLS " FROM rev_status WHERE due <= ?"
			       " ORDER BY due LIMIT ?",
			       -1, &q, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_int64(q, 1, (sqlite3_int64)now);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)max);
	st = SM_OK;
	while (st == SM_OK && *n < max && (rc = sqlite3_step(q)) == SQLITE_ROW)
		if ((st = row_read(q, &v[*n])) == SM_OK)
			(*n)++;
done:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&rs->mu);
	if (st != SM_OK) {
		rev_entries_free(v, *n);
		*n = 0;
		return st;
	}
	*out = v;
	return SM_OK;
}

sm_status
revstore_mark_due(struct revstore *rs, const char *fp, time_t now,
		  size_t *count)
{
	sqlite3_stmt *q = NULL;
	sm_status st = SM_ERR_DB;

	pthread_mutex_lock(&rs->mu);
	if (sqlite3_prepare_v2(rs->db,
			       "UPDATE rev_status SET due = ?1, tries = 0"
			       " WHERE ?2 IS NULL OR fp = ?2",
			       -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, (sqlite3_int64)now);
		if (fp)
			sqlite3_bind_text(q, 2, fp, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 2);
		if (sqlite3_step(q) == SQLITE_DONE) {
			st = SM_OK;
			if (count)
				*count = (size_t)sqlite3_changes(rs->db);
		}
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&rs->mu);
	return st;
}

sm_status
revstore_crl_get(struct revstore *rs, const char *key, unsigned char **der,
		 size_t *len, time_t *next_update)
{
	sqlite3_stmt *q = NULL;
	sm_status st = SM_ERR_DB;
	int rc;

	*der = NULL;
	*len = 0;
	pthread_mutex_lock(&rs->mu);
	if (sqlite3_prepare_v2(rs->db,
			       "SELECT der, next_update FROM rev_crl WHERE key = ?",
			       -1, &q, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*der = blob_dup(q, 0, len);
		*next_update = (time_t)sqlite3_column_int64(q, 1);
		st = *der ? SM_OK : SM_ERR_NOMEM;
	} else if (rc == SQLITE_DONE) {
		st = SM_ERR_NOTFOUND;
	}
done:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&rs->mu);
	return st;
}

sm_status
revstore_crl_put(struct revstore *rs, const char *key,
		 const unsigned char *der, size_t len, time_t this_update,
		 time_t next_update, time_t now)
{
	sqlite3_stmt *q = NULL;
	sm_status st = SM_ERR_DB;

	if (len > 0x7fffffff)
		return SM_ERR_LIMIT;
	pthread_mutex_lock(&rs->mu);
	/* A CRL never replaces a newer one (mail may carry an old CRL). */
	if (sqlite3_prepare_v2(
		    rs->db,
		    "INSERT INTO rev_crl(key, der, this_update, next_update,"
		    " fetched_at) VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(key)"
		    " DO UPDATE SET der = excluded.der, this_update ="
		    " excluded.this_update, next_update = excluded.next_update,"
		    " fetched_at = excluded.fetched_at"
		    " WHERE excluded.this_update >= rev_crl.this_update",
		    -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_blob(q, 2, der, (int)len, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, (sqlite3_int64)this_update);
		sqlite3_bind_int64(q, 4, (sqlite3_int64)next_update);
		sqlite3_bind_int64(q, 5, (sqlite3_int64)now);
		if (sqlite3_step(q) == SQLITE_DONE)
			st = SM_OK;
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&rs->mu);
	return st;
}

sm_status
revstore_health(struct revstore *rs, time_t now, struct rev_health *h)
{
	sqlite3_stmt *q = NULL;
	sm_status st = SM_ERR_DB;

	memset(h, 0, sizeof(*h));
	pthread_mutex_lock(&rs->mu);
	if (sqlite3_prepare_v2(
		    rs->db,
		    "SELECT count(*), coalesce(sum(status = 0 OR next_update < ?1), 0),"
		    " coalesce(sum(last_error != ''), 0),"
		    " (SELECT last_error FROM rev_status WHERE last_error != ''"
		    "  ORDER BY due DESC LIMIT 1) FROM rev_status",
		    -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, (sqlite3_int64)now);
		if (sqlite3_step(q) == SQLITE_ROW) {
			h->rows = (size_t)sqlite3_column_int64(q, 0);
			h->stale = (size_t)sqlite3_column_int64(q, 1);
			h->errors = (size_t)sqlite3_column_int64(q, 2);
			if (sqlite3_column_text(q, 3))
				snprintf(h->last_error, sizeof(h->last_error),
					 "%s", sqlite3_column_text(q, 3));
			st = SM_OK;
		}
	}
	sqlite3_finalize(q);
	pthread_mutex_unlock(&rs->mu);
	return st;
}

sm_status
revstore_hook(void *arg, X509 *cert, STACK_OF(X509) *chain, time_t now,
	      char *reason, size_t len)
{
	const struct revstore_hook_arg *a = arg;

	return revstore_usable(a->rs, a->rc, cert, chain, a->anchors, now,
			       reason, len)
		       ? SM_OK
		       : SM_ERR_NOKEY;
}

/* The issuer of cert among chain, else among the trust anchors: a new
 * reference, or NULL. Only needed when a row is queued. */
static X509 *
issuer_of(X509 *cert, STACK_OF(X509) *chain, X509_STORE *anchors)
{
	X509 *i = rev_find_issuer(cert, chain);
	STACK_OF(X509) *all;

	if (i == NULL && anchors != NULL &&
	    (all = X509_STORE_get1_all_certs(anchors)) != NULL) {
		if ((i = rev_find_issuer(cert, all)) != NULL)
			X509_up_ref(i);
		sk_X509_pop_free(all, X509_free);
		return i;
	}
	if (i != NULL)
		X509_up_ref(i);
	return i;
}

/* Queue cert; a row that exists only learns an issuer (when found).
 * true: the store was written. */
static bool
enqueue_with_issuer(struct revstore *rs, X509 *cert, STACK_OF(X509) *chain,
		    X509_STORE *anchors, bool is_new, time_t now)
{
	X509 *issuer = issuer_of(cert, chain, anchors);
	bool wrote = false;

	if (issuer != NULL || is_new)
		wrote = revstore_enqueue(rs, cert, issuer, now) == SM_OK;
	X509_free(issuer);
	return wrote;
}

#define RS_TEXT_SIZE 256
#define RS_FOREVER ((time_t)LLONG_MAX)

/* What the store says about a certificate and its chain, whatever the
 * policy: revoked (text: the refusal), else unknown since `since` (text:
 * whose status, "" for the certificate itself), else all good. keep: it
 * may be remembered (certcache memo) until `until`; version: the store's
 * data version it was read at. */
struct rs_judgment {
	long long version;
	time_t since, until;
	bool revoked, unknown, keep;
	char text[RS_TEXT_SIZE];
};

static void
until_min(struct rs_judgment *j, time_t t)
{
	if (t < j->until)
		j->until = t;
}

/* What the store says about one certificate at now: REV_GOOD (a current
 * answer), REV_REVOKED (*revoked_at, *reason_code) or REV_UNKNOWN (*since:
 * from when). A certificate without a row is queued. j learns how long
 * the answer holds, and whether it may be kept at all: not when nothing
 * was read, or the store was written (queued: the next lookup reads the
 * row), or the answer moves with the clock by itself. */
static enum rev_status
judge(struct revstore *rs, X509 *cert, STACK_OF(X509) *chain,
      X509_STORE *anchors, time_t now, struct rev_result *out, time_t *since,
      struct rs_judgment *j)
{
	struct rev_entry e;
	char fp[X509U_FP_SIZE];
	sm_status st;
	enum rev_status v = REV_UNKNOWN;

	*since = now;
	if (x509u_fingerprint(cert, fp) != SM_OK) {
		j->keep = false;
		return REV_UNKNOWN;
	}
	if ((st = revstore_get(rs, fp, &e)) == SM_ERR_NOTFOUND)
		enqueue_with_issuer(rs, cert, chain, anchors, true, now);
	if (st != SM_OK) {
		j->keep = false;
		return REV_UNKNOWN;
	}
	if (e.issuer == NULL &&
	    enqueue_with_issuer(rs, cert, chain, anchors, false, now))
		j->keep = false;
	if (e.r.status == REV_REVOKED && e.r.revoked_at <= now) {
		*out = e.r;
		v = REV_REVOKED;
	} else if (e.r.status == REV_GOOD &&
		   e.r.next_update + REV_LEEWAY >= now) {
		v = REV_GOOD;
		until_min(j, e.r.next_update + REV_LEEWAY);
	} else {
		if (e.r.status == REV_REVOKED) /* revoked from then on */
			until_min(j, e.r.revoked_at - 1);
		*since = e.unknown_since ? e.unknown_since
			 : e.r.status != REV_UNKNOWN ? e.r.next_update
						     : now;
		if (*since == now && e.unknown_since == 0)
			j->keep = false; /* "since now" moves */
	}
	rev_entry_free(&e);
	return v;
}

/* Does a CA certificate name a revocation source (an OCSP responder or a
 * CRL distribution point, http)? One that names none is accepted. */
static bool
names_a_source(X509 *ca)
{
	char **u;
	size_t n = 0, m = 0;

	if (rev_ocsp_urls(ca, &u, &n) == SM_OK)
		rev_urls_free(u, n);
	if (rev_crl_urls(ca, &u, &m) == SM_OK)
		rev_urls_free(u, m);
	return n + m > 0;
}

static void
say_revoked(const char *who, const struct rev_result *r, char *reason,
	    size_t len)
{
	char date[16];

	x509u_date(r->revoked_at, date, sizeof(date));
	snprintf(reason, len, "%s revoked on %s (%s)", who, date,
		 rev_reason_name(r->reason));
}

#define RS_CHAIN_MAX 8	/* intermediates looked at, at most */

/* The intermediates of cert's chain (up to, not including, a self-signed
 * anchor), into j: the first revoked one, else the longest-lasting
 * unknown of one that names a source. */
static void
intermediates_judge(struct revstore *rs, X509 *cert, STACK_OF(X509) *chain,
		    X509_STORE *anchors, time_t now, struct rs_judgment *j)
{
	X509 *cur = cert, *ca;
	struct rev_result r;
	enum rev_status v;
	time_t s;
	char *name = NULL, buf[REV_WHY_SIZE];

	for (int d = 0; d < RS_CHAIN_MAX; d++, cur = ca) {
		if ((ca = rev_find_issuer(cur, chain)) == NULL ||
		    x509u_is_self_signed(ca))
			break;
		if (!names_a_source(ca))
			continue;
		if ((v = judge(rs, ca, chain, anchors, now, &r, &s, j)) ==
		    REV_GOOD)
			continue;
		if (x509u_name_text(X509_get_subject_name(ca), &name) != SM_OK)
			name = NULL;
		snprintf(buf, sizeof(buf), "issuing CA %s", name ? name : "?");
		free(name);
		if (v == REV_REVOKED) {
			j->revoked = true;
			say_revoked(buf, &r, j->text, sizeof(j->text));
			return;
		}
		if (!j->unknown || s < j->since) {
			j->unknown = true;
			j->since = s;
			snprintf(j->text, sizeof(j->text), "%s", buf);
		}
	}
}

/* Read the store about cert and its chain (the slow path). */
static void
chain_judge(struct revstore *rs, X509 *cert, STACK_OF(X509) *chain,
	    X509_STORE *anchors, time_t now, struct rs_judgment *j)
{
	struct rev_result r;
	enum rev_status v;
	time_t s;

	memset(j, 0, sizeof(*j));
	j->keep = true;
	j->until = RS_FOREVER;
	v = judge(rs, cert, chain, anchors, now, &r, &s, j);
	if (v == REV_REVOKED) {
		j->revoked = true;
		say_revoked("certificate", &r, j->text, sizeof(j->text));
		return;
	}
	if (v == REV_UNKNOWN) {
		j->unknown = true;
		j->since = s;
	}
	intermediates_judge(rs, cert, chain, anchors, now, j);
}

/* The policy applied to a judgment at now. */
static bool
decide(const struct rs_judgment *j, const struct cfg_revocation *rc,
       time_t now, char *reason, size_t len)
{
	char date[16];

	if (j->revoked) {
		snprintf(reason, len, "%s", j->text);
		return false;
	}
	if (!j->unknown || rc->check == CFG_REV_SOFT ||
	    now - j->since <= (time_t)rc->grace_days * 86400)
		return true;
	x509u_date(j->since, date, sizeof(date));
	if (j->text[0] != '\0')
		snprintf(reason, len, "revocation status of %s unknown since %s",
			 j->text, date);
	else
		snprintf(reason, len, "revocation status unknown since %s", date);
	return false;
}

/* The store's data version: it changes when another connection commits
 * (smimectl revocation refresh, another process); -1 on an error. */
static long long
store_version(struct revstore *rs)
{
	long long v = -1;

	pthread_mutex_lock(&rs->mu);
	if (sqlite3_step(rs->dv) == SQLITE_ROW)
		v = sqlite3_column_int64(rs->dv, 0);
	sqlite3_reset(rs->dv);
	pthread_mutex_unlock(&rs->mu);
	return v;
}

unsigned long
revstore_reads(struct revstore *rs)
{
	return atomic_load(&rs->reads);
}

#define RS_MEMO_CHAIN 8	/* longer chains are not remembered */
#define RS_MEMO_KEY_MAX                                                       \
	(CERTCACHE_KEY_SIZE + 1 + sizeof(unsigned long) +                     \
	 RS_MEMO_CHAIN * CERTCACHE_KEY_SIZE)

/* The memo key of a judgment: the certificate's certcache key, a tag,
 * the store's identity, and the key of every certificate of the chain,
 * in order. 0: no key (a certificate not from the certcache). */
static size_t
memo_key(const struct revstore *rs, X509 *cert, STACK_OF(X509) *chain,
	 unsigned char key[RS_MEMO_KEY_MAX])
{
	const unsigned char *k = certcache_key_of(cert);
	int n = sk_X509_num(chain);
	size_t len;

	if (k == NULL || n > RS_MEMO_CHAIN)
		return 0;
	memcpy(key, k, CERTCACHE_KEY_SIZE);
	key[CERTCACHE_KEY_SIZE] = 'R';
	memcpy(key + CERTCACHE_KEY_SIZE + 1, &rs->id, sizeof(rs->id));
	len = CERTCACHE_KEY_SIZE + 1 + sizeof(rs->id);
	for (int i = 0; i < n; i++, len += CERTCACHE_KEY_SIZE) {
		if ((k = certcache_key_of(sk_X509_value(chain, i))) == NULL)
			return 0;
		memcpy(key + len, k, CERTCACHE_KEY_SIZE);
	}
	return len;
}

bool
revstore_usable(struct revstore *rs, const struct cfg_revocation *rc,
		X509 *cert, STACK_OF(X509) *chain, X509_STORE *anchors,
		time_t now, char *reason, size_t len)
{
	unsigned char key[RS_MEMO_KEY_MAX];
	struct rs_judgment j;
	size_t keylen;
	unsigned long gen;
	long long version;

	if (rc == NULL || rc->check == CFG_REV_OFF || rs == NULL)
		return true;
	/* The fast path: the judgment kept for this certificate and chain,
	 * while nothing was written here (generation) or by another
	 * connection (data version) since. */
	keylen = memo_key(rs, cert, chain, key);
	if (keylen != 0 &&
	    certcache_memo_get(key, keylen, now, &j, sizeof(j)) &&
	    j.version == store_version(rs))
		return decide(&j, rc, now, reason, len);
	gen = certcache_generation(); /* both read before the store */
	version = store_version(rs);
	chain_judge(rs, cert, chain, anchors, now, &j);
	j.version = version;
	if (keylen != 0 && j.keep && j.version >= 0)
		certcache_memo_put(key, keylen, gen, now, now, j.until, &j,
				   sizeof(j));
	return decide(&j, rc, now, reason, len);
}
