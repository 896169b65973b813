/*
 * refusals.c — the refusal log's generic layer: backend choice, the bound,
 * and the per-address report.
 */
#include "refusals.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct refusals {
	const struct rf_ops *ops;
	struct rf_backend *be;
	size_t max_rows;
};

static const struct rf_ops *const rf_backends[] = {
	&rf_sqlite_ops,
};

sm_status
refusals_open(const char *backend, const char *path, struct refusals **out, char *err,
    size_t errlen)
{
	const struct rf_ops *ops = NULL;
	struct refusals *rf;
	sm_status st;

	*out = NULL;
	for (size_t i = 0; i < sizeof(rf_backends) / sizeof(rf_backends[0]); i++)
		if (strcmp(rf_backends[i]->name, backend) == 0)
			ops = rf_backends[i];
	if (ops == NULL) {
		sm_seterr(err, errlen, "refusal log: unknown backend \"%s\"", backend);
		return SM_ERR_ARG;
	}
	if ((rf = calloc(1, sizeof(*rf))) == NULL)
		return SM_ERR_NOMEM;
	rf->ops = ops;
	rf->max_rows = REFUSALS_MAX_ROWS;
	if ((st = ops->open(path, &rf->be, err, errlen)) != SM_OK) {
		free(rf);
		return st;
	}
	*out = rf;
	return SM_OK;
}

void
refusals_close(struct refusals *rf)
{
	if (rf == NULL)
		return;
	rf->ops->close(rf->be);
	free(rf);
}

sm_status
refusals_note(struct refusals *rf, const char *rcpt, const char *sender, const char *reason,
    time_t when)
{
	struct rf_note n = { rcpt, sender ? sender : "", reason ? reason : "", when };

	if (rf == NULL || rcpt == NULL)
		return SM_OK;
	return rf->ops->note(rf->be, &n, rf->max_rows);
}

void
refusals_set_limit(struct refusals *rf, size_t max_rows)
{
	rf->max_rows = max_rows ? max_rows : 1;
}

struct report {
	struct refusal_row *v;
	size_t n;
	bool oom;
};

static int
strv_add_front(struct refusal_row *r, const char *s)
{
	char **v;

	for (size_t i = 0; i < r->nsenders; i++)
		if (strcmp(r->senders[i], s) == 0) {
			/* move to the front: most recent first */
			char *hit = r->senders[i];
			memmove(&r->senders[1], &r->senders[0], i * sizeof(char *));
			r->senders[0] = hit;
			return 0;
		}
	if ((v = realloc(r->senders, (r->nsenders + 1) * sizeof(*v))) == NULL)
		return -1;
	r->senders = v;
	memmove(&v[1], &v[0], r->nsenders * sizeof(char *));
	if ((v[0] = strdup(s)) == NULL) {
		memmove(&v[0], &v[1], r->nsenders * sizeof(char *));
		return -1;
	}
	r->nsenders++;
	return 0;
}

/* Notes arrive ordered by address, then time: one row per run. */
static int
report_add(const struct rf_note *n, void *arg)
{
	struct report *rep = arg;
	struct refusal_row *r = rep->n ? &rep->v[rep->n - 1] : NULL;
	char *reason;

	if (r == NULL || strcmp(r->address, n->address) != 0) {
		struct refusal_row *v = realloc(rep->v, (rep->n + 1) * sizeof(*v));
		if (v == NULL)
			return rep->oom = true, 1;
		rep->v = v;
		r = &v[rep->n];
		memset(r, 0, sizeof(*r));
		if ((r->address = strdup(n->address)) == NULL)
			return rep->oom = true, 1;
		rep->n++;
		r->first = n->when;
	}
	r->count++;
	r->last = n->when;
	if ((reason = strdup(n->reason)) == NULL)
		return rep->oom = true, 1;
	free(r->reason);
	r->reason = reason;
	if (strv_add_front(r, n->sender) != 0)
		return rep->oom = true, 1;
	return 0;
}

static int
row_cmp(const void *a, const void *b)
{
	const struct refusal_row *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->address, y->address);
}

sm_status
refusals_report(struct refusals *rf, time_t since, struct refusal_row **out, size_t *n)
{
	struct report rep = { NULL, 0, false };
	sm_status st;

	*out = NULL;
	*n = 0;
	st = rf->ops->iterate(rf->be, since, report_add, &rep);
	if (st == SM_OK && rep.oom)
		st = SM_ERR_NOMEM;
	if (st != SM_OK) {
		refusal_rows_free(rep.v, rep.n);
		return st;
	}
	if (rep.n > 1)
		qsort(rep.v, rep.n, sizeof(*rep.v), row_cmp);
	*out = rep.v;
	*n = rep.n;
	return SM_OK;
}

void
refusal_rows_free(struct refusal_row *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].address);
		free(v[i].reason);
		for (size_t j = 0; j < v[i].nsenders; j++)
			free(v[i].senders[j]);
		free(v[i].senders);
	}
	free(v);
}
