/*
 * bcc.c — Bcc detection and the memo of blind recipients.
 */
#include "bcc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "addrlist.h"

static const char *const visible_fields[] = { "To", "Cc", "Resent-To", "Resent-Cc",
	"Resent-Bcc" };

/* Does any mailbox of l stand for rcpt (the one comparison rule, after
 * canonicalising the header's address like an envelope's)? */
static bool
list_names(const struct alist *l, const char *rcpt)
{
	for (size_t i = 0; i < l->al_n; i++) {
		char c[320], lit[320];
		unsigned flags;

		if (addr_canonical(l->al_addr[i], c, sizeof(c), lit, sizeof(lit), &flags) != SM_OK)
			snprintf(c, sizeof(c), "%s", l->al_addr[i]);
		if (addr_equal(c, rcpt))
			return true;
	}
	return false;
}

sm_status
bcc_find(const struct mime_headers *hdrs, char *const *rcpts, size_t n, bool *is_bcc)
{
	for (size_t i = 0; i < n; i++)
		is_bcc[i] = true;
	for (size_t h = 0; h < hdrs->n; h++) {
		struct alist l;
		bool visible = false;
		sm_status st;

		for (size_t f = 0; f < sizeof(visible_fields) / sizeof(visible_fields[0]); f++)
			visible = visible || strcasecmp(hdrs->v[h].name, visible_fields[f]) == 0;
		if (!visible)
			continue;
		st = alist_parse(hdrs->v[h].value, &l);
		if (st == SM_ERR_NOMEM) {
			alist_free(&l);
			return st;
		}
		for (size_t i = 0; st == SM_OK && i < n; i++)
			if (is_bcc[i] && list_names(&l, rcpts[i]))
				is_bcc[i] = false;
		alist_free(&l);
	}
	return SM_OK;
}

struct memo_entry {
	char *key;      /* "sender\nrcpt" */
	time_t expires;
};

static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;
static struct memo_entry *memo;
static size_t memo_n;

static char *
memo_key(const char *sender, const char *rcpt)
{
	size_t a = strlen(sender), b = strlen(rcpt);
	char *k = malloc(a + b + 2);

	if (k) {
		memcpy(k, sender, a);
		k[a] = '\n';
		memcpy(k + a + 1, rcpt, b + 1);
		for (char *p = k; *p; p++)
			if ((unsigned char)*p < 0x80 && *p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	return k;
}

/* Drop expired entries (and the oldest when full). Locked. */
static void
memo_prune(time_t now)
{
	size_t j = 0;

	for (size_t i = 0; i < memo_n; i++) {
		if (memo[i].expires <= now) {
			free(memo[i].key);
			continue;
		}
		memo[j++] = memo[i];
	}
	memo_n = j;
	if (memo_n >= BCC_MEMO_MAX) {
		free(memo[0].key);
		memmove(memo, memo + 1, (memo_n - 1) * sizeof(*memo));
		memo_n--;
	}
}

void
bcc_memo_add(const char *sender, const char *rcpt, time_t now)
{
	char *k = memo_key(sender, rcpt);
	struct memo_entry *v;

	if (k == NULL)
		return;
	pthread_mutex_lock(&memo_lock);
	memo_prune(now);
	for (size_t i = 0; i < memo_n; i++)
		if (strcmp(memo[i].key, k) == 0) {
			memo[i].expires = now + BCC_MEMO_SECONDS;
			free(k);
			pthread_mutex_unlock(&memo_lock);
			return;
		}
	if ((v = realloc(memo, (memo_n + 1) * sizeof(*v))) != NULL) {
		memo = v;
		memo[memo_n].key = k;
		memo[memo_n++].expires = now + BCC_MEMO_SECONDS;
		k = NULL;
	}
	pthread_mutex_unlock(&memo_lock);
	free(k);
}

bool
bcc_memo_has(const char *sender, const char *rcpt, time_t now)
{
	char *k = memo_key(sender, rcpt);
	bool found = false;

	if (k == NULL)
		return true; /* out of memory: the stricter answer */
	pthread_mutex_lock(&memo_lock);
	for (size_t i = 0; i < memo_n && !found; i++)
		found = memo[i].expires > now && strcmp(memo[i].key, k) == 0;
	pthread_mutex_unlock(&memo_lock);
	free(k);
	return found;
}

void
bcc_memo_del(const char *sender, const char *rcpt)
{
	char *k = memo_key(sender, rcpt);

	if (k == NULL)
		return;
	pthread_mutex_lock(&memo_lock);
	for (size_t i = 0; i < memo_n; i++)
		if (strcmp(memo[i].key, k) == 0) {
			free(memo[i].key);
			memmove(memo + i, memo + i + 1, (memo_n - i - 1) * sizeof(*memo));
			memo_n--;
			break;
		}
	pthread_mutex_unlock(&memo_lock);
	free(k);
}

void
bcc_memo_clear(void)
{
	pthread_mutex_lock(&memo_lock);
	for (size_t i = 0; i < memo_n; i++)
		free(memo[i].key);
	free(memo);
	memo = NULL;
	memo_n = 0;
	pthread_mutex_unlock(&memo_lock);
}
