/*
 * keycache_pgl.c — the PostgreSQL backend's local side: the read copy,
 * the listener thread that keeps it current, and the kc_ops table.
 *
 * The local copy holds one entry per address looked up (an empty entry
 * means "known to have none"). It is served only while the listener is
 * connected and LISTENing, since then every committed write reaches it as
 * a notification "GENERATION ADDRESS" that drops the address's entry.
 * After a reconnect the listener compares the stored generation with the
 * last one it heard of and drops everything when they differ: a
 * notification sent while it was away is lost. While the listener is away
 * lookups go to the database; when that fails too, the local copy is
 * served for up to max_stale after the connection was lost, and an
 * address not in it is SM_ERR_DB (the caller defers the recipient).
 *
 * A write that fails because the database is unreachable goes to the
 * outbox (keycache_pgo.c) when one is configured (the daemon), and the
 * listener replays the outbox whenever it (re)connects.
 */
#include "keycache_pg.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "certcache.h"
#include "clock.h"
#include "log.h"

#define PG_POLL_MS 200

/* ---- the local copy ---- */

static unsigned
bucket_of(const char *address)
{
	unsigned h = 5381;

	for (const unsigned char *p = (const unsigned char *)address; *p; p++)
		h = h * 33 + *p;
	return h % PG_BUCKETS;
}

static void
entry_free(struct pg_entry *e)
{
	if (e == NULL)
		return;
	free(e->address);
	kc_records_free(e->recs, e->n);
	free(e);
}

/* Drop every entry. lmu held. */
static void
copy_clear(struct kc_backend *be)
{
	for (size_t i = 0; i < PG_BUCKETS; i++) {
		struct pg_entry *e = be->bucket[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			entry_free(e);
		}
		be->bucket[i] = NULL;
	}
	be->entries = 0;
	be->epoch++;
	certcache_bump();
}

/* Drop one address's entry. lmu held. */
static void
copy_drop(struct kc_backend *be, const char *address)
{
	struct pg_entry **pp = &be->bucket[bucket_of(address)], *e;

	be->epoch++;
	/* Ours or another gateway's write (heard): verdicts and the
	 * lookups messages keep are re-made. */
	certcache_bump();
	for (; (e = *pp) != NULL; pp = &e->next) {
		if (strcmp(e->address, address) == 0) {
			*pp = e->next;
			entry_free(e);
			be->entries--;
			return;
		}
	}
}

static char *
dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = true;
	return d;
}

static unsigned char *
mem_dup(const unsigned char *p, size_t n, bool *oom)
{
	unsigned char *d;

	if (p == NULL || n == 0)
		return NULL;
	if ((d = malloc(n)) == NULL) {
		*oom = true;
		return NULL;
	}
	memcpy(d, p, n);
	return d;
}

/* A deep copy of n records (NULL on allocation failure). */
static struct kc_record *
recs_copy(const struct kc_record *src, size_t n)
{
	struct kc_record *v = calloc(n ? n : 1, sizeof(*v));
	bool oom = v == NULL;
	size_t i, k;

	for (i = 0; !oom && i < n; i++) {
		struct kc_record *d = &v[i];
		const struct kc_record *s = &src[i];

		*d = *s;
		d->address = dup_or_null(s->address, &oom);
		d->subject = dup_or_null(s->subject, &oom);
		d->issuer = dup_or_null(s->issuer, &oom);
		d->serial = dup_or_null(s->serial, &oom);
		d->der = mem_dup(s->der, s->der_len, &oom);
		d->chain = mem_dup(s->chain, s->chain_len, &oom);
		d->n_emails = 0;
		d->emails = calloc(s->n_emails ? s->n_emails : 1,
				   sizeof(*d->emails));
		oom |= d->emails == NULL;
		for (k = 0; !oom && k < s->n_emails; k++) {
			d->emails[k] = dup_or_null(s->emails[k], &oom);
			d->n_emails += !oom;
		}
	}
	if (oom) {
		kc_records_free(v, v ? n : 0);
		return NULL;
	}
	return v;
}

/* A copy of the address's entry into out; false when there is none or the
 * copy may not be served. lmu held. */
static bool
copy_get(struct kc_backend *be, const char *address, struct kc_record **out,
	 size_t *n)
{
	struct pg_entry *e = be->bucket[bucket_of(address)];

	for (; e != NULL; e = e->next) {
		if (strcmp(e->address, address) != 0)
			continue;
		if ((*out = recs_copy(e->recs, e->n)) == NULL)
			return false;
		*n = e->n;
		return true;
	}
	return false;
}

/* Remember an answer fetched while the copy was at epoch. lmu held. */
static void
copy_put(struct kc_backend *be, const char *address,
	 const struct kc_record *recs, size_t n, unsigned long epoch)
{
	struct pg_entry *e;
	unsigned b = bucket_of(address);

	if (epoch != be->epoch)
		return; /* something changed meanwhile: it may be stale */
	if (be->entries >= PG_MAX_ENTRIES)
		copy_clear(be);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return;
	if ((e->address = strdup(address)) == NULL ||
	    (e->recs = recs_copy(recs, n)) == NULL) {
		entry_free(e);
		return;
	}
	e->n = n;
	e->next = be->bucket[b];
	be->bucket[b] = e;
	be->entries++;
}

/* ---- the listener ---- */

/* Handle one notification "GENERATION ADDRESS". lmu not held. */
static void
heard(struct kc_backend *be, const char *payload)
{
	char *end;
	long long gen = strtoll(payload, &end, 10);

	pthread_mutex_lock(&be->lmu);
	if (*end == ' ') {
		copy_drop(be, end + 1);
		if (gen > be->generation)
			be->generation = gen;
	} else {
		copy_clear(be);
	}
	pthread_mutex_unlock(&be->lmu);
}

static void
set_listening(struct kc_backend *be, bool on)
{
	pthread_mutex_lock(&be->lmu);
	if (be->listening && !on)
		be->lost_at = time(NULL);
	be->listening = on;
	pthread_mutex_unlock(&be->lmu);
}

/* Connect, LISTEN, and reconcile the generation. NULL on failure. */
static PGconn *
listen_connect(struct kc_backend *be)
{
	PGconn *c = pg_connect(be->conninfo);
	PGresult *r;
	long long gen = -1;

	if (PQstatus(c) != CONNECTION_OK)
		goto fail;
	r = PQexec(c, "LISTEN " PG_CHANNEL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	/* The database is back: let operations reconnect at once. */
	pthread_mutex_lock(&be->mu);
	be->next_try = 0;
	be->backoff = 0;
	pthread_mutex_unlock(&be->mu);
	/* After LISTEN: any write committed from here on is heard. */
	if (pg_meta(be, NULL, &gen) != SM_OK)
		goto fail;
	pthread_mutex_lock(&be->lmu);
	if (gen != be->generation) {
		copy_clear(be);
		be->generation = gen;
	}
	be->listening = true;
	pthread_mutex_unlock(&be->lmu);
	return c;
fail:
	PQfinish(c);
	return NULL;
}

/* Wait up to ms for the socket or the stop flag. */
static void
listen_wait(PGconn *c, int ms)
{
	struct pollfd p = { .fd = c ? PQsocket(c) : -1, .events = POLLIN };

	if (p.fd < 0) {
		poll(NULL, 0, ms);
		return;
	}
	poll(&p, 1, ms);
}

/* Is an outbox configured and not empty? */
static bool
pgl_outbox(struct kc_backend *be)
{
	char dir[4096] = "";

	pthread_mutex_lock(&be->lmu);
	if (be->outbox_dir)
		snprintf(dir, sizeof(dir), "%s", be->outbox_dir);
	pthread_mutex_unlock(&be->lmu);
	return dir[0] && pg_outbox_count(dir) > 0;
}

static void *
listener(void *arg)
{
	struct kc_backend *be = arg;
	PGconn *c = NULL;
	int backoff = 0, waited = 0;
	unsigned tick = 0;
	bool said_down = false;

	while (!atomic_load(&be->stop)) {
		PGnotify *n;

		if (c == NULL) {
			if (waited < backoff * 1000) {
				poll(NULL, 0, PG_POLL_MS);
				waited += PG_POLL_MS;
				continue;
			}
			waited = 0;
			if ((c = listen_connect(be)) == NULL) {
				backoff = backoff ? backoff * 2 : 1;
				if (backoff > PG_BACKOFF_MAX)
					backoff = PG_BACKOFF_MAX;
				if (!said_down)
					log_msg(LOG_WARNING,
						"key cache (postgresql): "
						"database unreachable; "
						"retrying with back-off");
				said_down = true;
				continue;
			}
			if (said_down)
				log_msg(LOG_NOTICE, "key cache (postgresql): "
						    "database reachable again");
			said_down = false;
			backoff = 0;
			tick = 0;
		}
		/* Queued writes: on reconnect and then every few seconds
		 * while any wait (a replay stops at the first failure). */
		if (tick++ % (5000 / PG_POLL_MS) == 0 && pgl_outbox(be))
			pg_outbox_replay(be, NULL);
		listen_wait(c, PG_POLL_MS);
		if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
			set_listening(be, false);
			PQfinish(c);
			c = NULL;
			continue;
		}
		while ((n = PQnotifies(c)) != NULL) {
			heard(be, n->extra);
			PQfreemem(n);
		}
	}
	set_listening(be, false);
	PQfinish(c);
	return NULL;
}

/* ---- operations ---- */

sm_status
keycache_conninfo_check(const char *conninfo, char *err, size_t errlen)
{
	PQconninfoOption *opts;
	char *perr = NULL;
	size_t n;

	if ((opts = PQconninfoParse(conninfo, &perr)) != NULL) {
		PQconninfoFree(opts);
		return SM_OK;
	}
	snprintf(err, errlen, "%s", perr ? perr : "out of memory");
	PQfreemem(perr);
	for (char *p = err; *p; p++)
		if (*p == '\n')
			*p = ' ';
	n = strlen(err);
	while (n > 0 && err[n - 1] == ' ')
		err[--n] = '\0';
	return SM_ERR_CONFIG;
}

static sm_status
pgl_open(const char *conninfo, struct kc_backend **out, char *err,
	 size_t errlen)
{
	struct kc_backend *be;
	char why[200];
	sm_status st;

	*out = NULL;
	if (keycache_conninfo_check(conninfo, why, sizeof(why)) != SM_OK) {
		snprintf(err, errlen, "cache.conninfo: %s", why);
		return SM_ERR_CONFIG;
	}
	if ((be = calloc(1, sizeof(*be))) == NULL ||
	    (be->conninfo = strdup(conninfo)) == NULL) {
		free(be);
		snprintf(err, errlen, "out of memory");
		return SM_ERR_NOMEM;
	}
	pthread_mutex_init(&be->mu, NULL);
	pthread_mutex_init(&be->lmu, NULL);
	be->generation = -1;
	be->max_stale = 3600;
	be->lost_at = time(NULL);
	atomic_init(&be->stop, false);
	/* Connect and migrate now so that a wrong database shows at start;
	 * an unreachable one does not stop the start (keycache_health says
	 * so, and the listener keeps trying). */
	pthread_mutex_lock(&be->mu);
	be->conn = pg_connect(conninfo);
	pthread_mutex_unlock(&be->mu);
	if (PQstatus(be->conn) == CONNECTION_OK) {
		int v;

		st = pg_migrate_target(conninfo, &v, err, errlen);
		if (st != SM_OK && PQstatus(be->conn) == CONNECTION_OK) {
			PQfinish(be->conn);
			pthread_mutex_destroy(&be->mu);
			pthread_mutex_destroy(&be->lmu);
			free(be->conninfo);
			free(be);
			return st;
		}
		be->migrated = st == SM_OK;
	} else {
		char why[256];

		snprintf(why, sizeof(why), "%s", PQerrorMessage(be->conn));
		for (char *p = why; *p; p++)
			if (*p == '\n' || *p == '\t')
				*p = ' ';
		log_msg(LOG_WARNING,
			"key cache (postgresql): database unreachable at "
			"start-up (%s); starting anyway, lookups use the "
			"local copy and harvests are queued",
			why);
		PQfinish(be->conn);
		be->conn = NULL;
	}
	{
		/* Signals are the daemon's business (libmilter waits for
		 * them in its own thread): the listener takes none. */
		sigset_t all, old;

		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		if (pthread_create(&be->thr, NULL, listener, be) == 0)
			be->thr_started = true;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	*out = be;
	return SM_OK;
}

static void
pgl_close(struct kc_backend *be)
{
	if (be == NULL)
		return;
	atomic_store(&be->stop, true);
	if (be->thr_started)
		pthread_join(be->thr, NULL);
	PQfinish(be->conn);
	pthread_mutex_lock(&be->lmu);
	copy_clear(be);
	pthread_mutex_unlock(&be->lmu);
	pthread_mutex_destroy(&be->mu);
	pthread_mutex_destroy(&be->lmu);
	free(be->outbox_dir);
	free(be->conninfo);
	free(be);
}

static sm_status
pgl_put(struct kc_backend *be, const struct kc_record *head,
	const struct kc_record *enc, time_t now, struct kc_plan *plan)
{
	sm_status st = pg_put_direct(be, head, enc, now, plan);
	bool down;

	if (st == SM_OK) {
		/* Read our own writes at once; others hear of them by
		 * notification. */
		pthread_mutex_lock(&be->lmu);
		copy_drop(be, head->address);
		pthread_mutex_unlock(&be->lmu);
		return st;
	}
	pthread_mutex_lock(&be->mu);
	down = be->conn == NULL;
	pthread_mutex_unlock(&be->mu);
	if (st != SM_ERR_DB || !down || be->outbox_dir == NULL)
		return st;
	/* Unreachable: keep it on disk until the database is back. */
	if ((st = pg_outbox_add(be->outbox_dir, head, enc, now)) != SM_OK)
		return st;
	log_msg(LOG_WARNING,
		"key cache (postgresql): database unreachable; the "
		"certificate for %s is queued in %s",
		head->address, be->outbox_dir);
	memset(plan, 0, sizeof(*plan));
	plan->outcome = KC_UPDATED;
	return SM_OK;
}

static sm_status
pgl_lookup_address(struct kc_backend *be, const char *address,
		   struct kc_record **out, size_t *n)
{
	unsigned long epoch;
	bool listening, stale_ok;
	sm_status st;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&be->lmu);
	listening = be->listening;
	epoch = be->epoch;
	if (listening && copy_get(be, address, out, n)) {
		pthread_mutex_unlock(&be->lmu);
		return SM_OK;
	}
	pthread_mutex_unlock(&be->lmu);

	st = pg_query(be, PG_Q_ADDR, address, 0, 0, out, n);
	pthread_mutex_lock(&be->lmu);
	if (st == SM_OK && listening)
		copy_put(be, address, *out, *n, epoch);
	stale_ok = !be->listening &&
		   time(NULL) - be->lost_at <= be->max_stale;
	if (st == SM_ERR_DB && stale_ok && copy_get(be, address, out, n))
		st = SM_OK;
	pthread_mutex_unlock(&be->lmu);
	return st;
}

static sm_status
pgl_lookup_fingerprint(struct kc_backend *be, const char *fp,
		       struct kc_record **out, size_t *n)
{
	return pg_query(be, PG_Q_FP, fp, 0, 0, out, n);
}

static sm_status
pgl_list(struct kc_backend *be, time_t after, time_t before,
	 struct kc_record **out, size_t *n)
{
	return pg_query(be, before ? PG_Q_EXPIRING : PG_Q_ALL, NULL, after,
			before, out, n);
}

static sm_status
pgl_remove(struct kc_backend *be, const char *address, const char *fp,
	   size_t *count)
{
	sm_status st = pg_remove_direct(be, address, fp, count);

	pthread_mutex_lock(&be->lmu);
	if (address)
		copy_drop(be, address);
	else
		copy_clear(be);
	pthread_mutex_unlock(&be->lmu);
	return st;
}

static sm_status
pgl_restore(struct kc_backend *be, const struct kc_record *r)
{
	sm_status st = pg_restore_direct(be, r);

	pthread_mutex_lock(&be->lmu);
	copy_drop(be, r->address);
	pthread_mutex_unlock(&be->lmu);
	return st;
}

static sm_status
pgl_check(struct kc_backend *be, int *schema_version, char *err,
	  size_t errlen)
{
	sm_status st = pg_meta(be, schema_version, NULL);

	if (st != SM_OK) {
		pthread_mutex_lock(&be->mu);
		snprintf(err, errlen, "%s", be->last_err);
		pthread_mutex_unlock(&be->mu);
	} else if (*schema_version != pg_schema_version()) {
		snprintf(err, errlen, "schema version %d, want %d",
			 *schema_version, pg_schema_version());
		st = SM_ERR_DB;
	}
	return st;
}

static sm_status
pgl_configure(struct kc_backend *be, const struct kc_options *o, char *err,
	      size_t errlen)
{
	char *dir = NULL;

	if (o->outbox_dir && (dir = strdup(o->outbox_dir)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return SM_ERR_NOMEM;
	}
	pthread_mutex_lock(&be->lmu);
	if (o->max_stale > 0)
		be->max_stale = o->max_stale;
	/* Set once, before the daemon's first message; the listener
	 * replays what waits there. */
	free(be->outbox_dir);
	be->outbox_dir = dir;
	pthread_mutex_unlock(&be->lmu);
	return SM_OK;
}

static sm_status
pgl_health(struct kc_backend *be, struct kc_health *h)
{
	sm_status st = pg_meta(be, &h->schema_version, NULL);

	h->remote = true;
	h->connected = st == SM_OK;
	if (st != SM_OK) {
		pthread_mutex_lock(&be->mu);
		snprintf(h->err, sizeof(h->err), "%s", be->last_err);
		pthread_mutex_unlock(&be->mu);
	}
	pthread_mutex_lock(&be->lmu);
	h->lag = be->listening ? 0 : (long long)(time(NULL) - be->lost_at);
	h->listening = be->listening;
	pthread_mutex_unlock(&be->lmu);
	h->outbox = be->outbox_dir ? pg_outbox_count(be->outbox_dir) : 0;
	return SM_OK;
}

const struct kc_ops kc_pg_ops = {
	.name = "postgresql",
	.open = pgl_open,
	.close = pgl_close,
	.put = pgl_put,
	.lookup_address = pgl_lookup_address,
	.lookup_fingerprint = pgl_lookup_fingerprint,
	.list = pgl_list,
	.remove = pgl_remove,
	.check = pgl_check,
	.configure = pgl_configure,
	.health = pgl_health,
	.restore = pgl_restore,
};
