/*
 * keycache_rule.c — the selection rule of keycache.h, as pure functions of
 * binding views: ranking pairings, finding a pairing's encryption
 * certificate, the pick from stored data, and the outcome of a store.
 * Every backend and the generic layer decide with these, so they decide
 * alike.
 */
#include "keycache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the selection rule (pure) ---- */

/* Rule 3: negative when a ranks before b. */
static int
rank_cmp(const struct kc_binding_view *a, const struct kc_binding_view *b)
{
	if (a->not_before != b->not_before)
		return a->not_before > b->not_before ? -1 : 1;
	if (a->signing_time != b->signing_time)
		return a->signing_time > b->signing_time ? -1 : 1;
	if (a->last_seen != b->last_seen)
		return a->last_seen > b->last_seen ? -1 : 1;
	return strcmp(a->fingerprint, b->fingerprint);
}

/* Why a ranks before b, for `cert show`. */
const char *
kc_rank_why(const struct kc_binding_view *a, const struct kc_binding_view *b)
{
	if (a->not_before != b->not_before)
		return "newer notBefore";
	if (a->signing_time != b->signing_time)
		return "later signing time";
	if (a->last_seen != b->last_seen)
		return "later harvest";
	return "same dates, lower fingerprint";
}

static bool
view_live(const struct kc_binding_view *v)
{
	return v->status != KC_ST_REMOVED;
}

size_t
kc_rank(const struct kc_binding_view *v, size_t n, size_t *order,
	bool *blocked)
{
	bool has_ca = false;
	size_t i, j, m = 0;

	for (i = 0; i < n; i++)
		if (v[i].signer && view_live(&v[i]) &&
		    v[i].assurance >= KC_AS_CA)
			has_ca = true;
	for (i = 0; i < n; i++) {
		if (blocked)
			blocked[i] = false;
		if (!v[i].signer || !view_live(&v[i]))
			continue;
		if (has_ca && v[i].assurance == KC_AS_SELF_SIGNED) {
			if (blocked)
				blocked[i] = true;
			continue;
		}
		/* Insertion sort: an address has a handful of pairings. */
		for (j = m; j > 0 && rank_cmp(&v[i], &v[order[j - 1]]) < 0; j--)
			order[j] = order[j - 1];
		order[j] = i;
		m++;
	}
	return m;
}

long
kc_pairing_enc(const struct kc_binding_view *v, size_t n, size_t head)
{
	const char *want = v[head].enc_fp;
	size_t i;

	if (want == NULL || want[0] == '\0' ||
	    strcmp(want, v[head].fingerprint) == 0)
		return (long)head;
	for (i = 0; i < n; i++)
		if (strcmp(v[i].fingerprint, want) == 0)
			return (long)i;
	return -1;
}

/* Usable by stored data: not removed, valid now, may encrypt. */
static bool
view_usable(const struct kc_binding_view *v, time_t now)
{
	return view_live(v) && v->can_encrypt && now >= v->not_before &&
	       now <= v->not_after;
}

/* The pairing the rule picks from stored data: its encryption binding's
 * index (or -1), and its head's in *head. */
long
kc_current_pair(const struct kc_binding_view *v, size_t n, time_t now,
	     long *head)
{
	size_t *order = calloc(n ? n : 1, sizeof(*order));
	size_t m, i;
	long e, found = -1;

	*head = -1;
	if (order == NULL)
		return -1; /* reported as "no change": only the log line */
	m = kc_rank(v, n, order, NULL);
	for (i = 0; i < m && found < 0; i++) {
		e = kc_pairing_enc(v, n, order[i]);
		if (e >= 0 && view_usable(&v[e], now)) {
			found = e;
			*head = (long)order[i];
		}
	}
	free(order);
	return found;
}

long
kc_current(const struct kc_binding_view *v, size_t n, time_t now)
{
	long head;

	return kc_current_pair(v, n, now, &head);
}

static long
view_find(const struct kc_binding_view *v, size_t n, const char *fp)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].fingerprint, fp) == 0)
			return (long)i;
	return -1;
}

void
kc_plan_outcome(const struct kc_binding_view *before, size_t nb,
		const struct kc_binding_view *after, size_t na,
		const char *head_fp, bool head_was_live, time_t now,
		struct kc_plan *plan)
{
	long hb, ha, cb, ca, h;

	memset(plan, 0, sizeof(*plan));
	cb = kc_current_pair(before, nb, now, &hb);
	ca = kc_current_pair(after, na, now, &ha);
	if (ca >= 0 && (cb < 0 || strcmp(after[ca].fingerprint,
					 before[cb].fingerprint) != 0)) {
		if (cb < 0) {
			plan->outcome = KC_INSERTED;
			return;
		}
		plan->outcome = strcmp(after[ca].key_fingerprint,
				       before[cb].key_fingerprint) == 0
				    ? KC_RENEWED_SAME_KEY
				    : KC_SUPERSEDED_OLD;
		snprintf(plan->old_fp, sizeof(plan->old_fp), "%s",
			 before[cb].fingerprint);
		return;
	}
	h = view_find(after, na, head_fp);
	if (head_was_live || ca < 0 || h == ha) {
		plan->outcome = head_was_live || h == ha ? KC_UPDATED
							 : KC_INSERTED;
		return;
	}
	snprintf(plan->old_fp, sizeof(plan->old_fp), "%s",
		 after[ca].fingerprint);
	plan->outcome = KC_OLDER_KEPT_AS_HISTORY;
	/* Would it have won but for rule 2? */
	if (h >= 0 && after[h].assurance == KC_AS_SELF_SIGNED && ha >= 0 &&
	    rank_cmp(&after[h], &after[ha]) < 0) {
		long e = kc_pairing_enc(after, na, (size_t)h);

		if (e >= 0 && view_usable(&after[e], now))
			plan->outcome = KC_REFUSED_SELF_SIGNED;
	}
}

