/*
 * rcptmemo.c — one message's recipient look-ups (see rcptmemo.h): a small
 * array, searched linearly (a message has few recipients).
 */
#include "rcptmemo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certcache.h"
#include "x509util.h"

struct rm_entry {
	char *sender, *addr, *reason;
	X509 *cert; /* NULL: no usable certificate */
	caps_t caps;
	unsigned long gen;
	time_t at;
};

struct rcptmemo {
	struct rm_entry *v;
	size_t n, cap;
};

struct rcptmemo *
rcptmemo_new(void)
{
	return calloc(1, sizeof(struct rcptmemo));
}

static void
entry_clear(struct rm_entry *e)
{
	free(e->sender);
	free(e->addr);
	free(e->reason);
	X509_free(e->cert);
	memset(e, 0, sizeof(*e));
}

void
rcptmemo_free(struct rcptmemo *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		entry_clear(&m->v[i]);
	free(m->v);
	free(m);
}

static struct rm_entry *
find(struct rcptmemo *m, const char *sender, const char *addr)
{
	for (size_t i = 0; m != NULL && i < m->n; i++)
		if (strcmp(m->v[i].addr, addr) == 0 &&
		    strcmp(m->v[i].sender, sender) == 0)
			return &m->v[i];
	return NULL;
}

static bool
still_good(const struct rm_entry *e, time_t now)
{
	if (e->gen != certcache_generation() || now < e->at ||
	    now - e->at > CERTCACHE_VERDICT_TTL)
		return false;
	return e->cert == NULL || x509u_validity(e->cert, now) == X509U_VALID;
}

bool
rcptmemo_get(struct rcptmemo *m, const char *sender, const char *addr,
	     time_t now, X509 **cert, caps_t *caps, char *reason, size_t len)
{
	struct rm_entry *e;

	if (sender == NULL || addr == NULL ||
	    (e = find(m, sender, addr)) == NULL || !still_good(e, now))
		return false;
	if (e->cert != NULL)
		X509_up_ref(e->cert);
	*cert = e->cert;
	*caps = e->caps;
	if (len > 0)
		snprintf(reason, len, "%s", e->reason);
	return true;
}

/* A fresh slot for (sender, addr), or NULL. */
static struct rm_entry *
slot(struct rcptmemo *m, const char *sender, const char *addr)
{
	struct rm_entry *e = find(m, sender, addr), *v;

	if (e != NULL) {
		entry_clear(e);
		return e;
	}
	if (m->n >= RCPTMEMO_MAX)
		return NULL;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 4;

		if ((v = realloc(m->v, cap * sizeof(*v))) == NULL)
			return NULL;
		m->v = v;
		m->cap = cap;
	}
	e = &m->v[m->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

void
rcptmemo_put(struct rcptmemo *m, const char *sender, const char *addr,
	     unsigned long gen, time_t now, X509 *cert, caps_t caps,
	     const char *reason)
{
	struct rm_entry *e;
	char *s, *a, *r;

	if (m == NULL || sender == NULL || addr == NULL)
		return;
	s = strdup(sender);
	a = strdup(addr);
	r = strdup(reason ? reason : "");
	if (s == NULL || a == NULL || r == NULL ||
	    (e = slot(m, sender, addr)) == NULL) {
		free(s);
		free(a);
		free(r);
		/* An older answer must not outlive a newer look-up. */
		if ((e = find(m, sender, addr)) != NULL)
			e->gen = 0; /* generations start at 1 */
		return;
	}
	if (cert != NULL)
		X509_up_ref(cert);
	e->sender = s;
	e->addr = a;
	e->reason = r;
	e->cert = cert;
	e->caps = caps;
	e->gen = gen;
	e->at = now;
}
