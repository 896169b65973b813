/*
 * keycache_sqlite_rec.c — the SQLite backend's record I/O: rows into
 * records, the store (certificate, bindings and the pairing plan), the
 * reads, remove, check, the origins of discovered certificates, restore,
 * and the kc_ops table. Every operation runs on a pooled connection
 * through SQ_RUN (keycache_sqlite_int.h); the pool, the statements and the
 * schema are in keycache_sqlite.c.
 */
#include "keycache_sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

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
