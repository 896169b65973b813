/*
 * sender.c — sender authorisation for personal signatures.
 */
#include "sender.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

struct sender_entry {
	char *key;      /* normalised address, or "@domain" (lowercase) */
	char **logins;  /* NULL-terminated */
	int line;
};

struct sender_map {
	struct sender_entry *v;
	size_t n;
};

static void
entry_free(struct sender_entry *e)
{
	free(e->key);
	if (e->logins)
		for (size_t i = 0; e->logins[i]; i++)
			free(e->logins[i]);
	free(e->logins);
}

void
sender_map_free(struct sender_map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		entry_free(&m->v[i]);
	free(m->v);
	free(m);
}

/* Split the value into logins at commas and white space. */
static sm_status
entry_logins(struct sender_entry *e, char *value)
{
	size_t n = 0;
	char *save = NULL;

	for (char *t = strtok_r(value, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
		char **v = realloc(e->logins, (n + 2) * sizeof(*v));

		if (v == NULL)
			return SM_ERR_NOMEM;
		e->logins = v;
		if ((v[n] = strdup(t)) == NULL)
			return SM_ERR_NOMEM;
		v[++n] = NULL;
	}
	return n ? SM_OK : SM_ERR_PARSE;
}

/* A map key in the form addr_equal() compares: a canonical address, or
 * "@" and a canonical domain (IDNA A-label, lower case). */
static sm_status
key_canonical(const char *key, char *out, size_t outlen)
{
	char tmp[320], lit[320];
	unsigned flags;
	sm_status st;

	snprintf(tmp, sizeof(tmp), "%s%s", key[0] == '@' ? "x" : "", key);
	if ((st = addr_canonical(tmp, out, outlen, lit, sizeof(lit), &flags)) != SM_OK)
		return st;
	if (flags & ADDR_CANON_ROUTED)
		return SM_ERR_PARSE;
	if (key[0] == '@')
		memmove(out, strrchr(out, '@'), strlen(strrchr(out, '@')) + 1);
	return SM_OK;
}

/* One logical line (continuations joined): "KEY VALUE". */
static sm_status
map_add(struct sender_map *m, char *text, int line, char *err, size_t errlen, const char *path)
{
	struct sender_entry e = { NULL, NULL, line };
	char *key = text, *value;
	char norm[320];
	struct sender_entry *v;
	sm_status st;

	value = key + strcspn(key, " \t");
	if (*value)
		*value++ = '\0';
	if (key_canonical(key, norm, sizeof(norm)) != SM_OK) {
		sm_seterr(err, errlen, key[0] == '@' ? "%s:%d: \"%s\" is not a valid @domain" :
		    "%s:%d: \"%s\" is neither an address nor @domain", path, line, key);
		return SM_ERR_PARSE;
	}
	if ((e.key = strdup(norm)) == NULL)
		return SM_ERR_NOMEM;
	if ((st = entry_logins(&e, value)) != SM_OK) {
		entry_free(&e);
		if (st == SM_ERR_PARSE)
			sm_seterr(err, errlen, "%s:%d: \"%s\" lists no login", path, line, key);
		return st;
	}
	if ((v = realloc(m->v, (m->n + 1) * sizeof(*v))) == NULL) {
		entry_free(&e);
		return SM_ERR_NOMEM;
	}
	m->v = v;
	v[m->n++] = e;
	return SM_OK;
}

/* Feed one physical line: a continuation (leading white space) joins the
 * pending logical line; anything else flushes it first. */
static sm_status
map_line(struct sender_map *m, struct buf *pending, int *pline, char *l, int line,
    const char *path, char *err, size_t errlen)
{
	size_t n = strlen(l);
	sm_status st = SM_OK;

	while (n > 0 && (l[n - 1] == '\n' || l[n - 1] == '\r' || l[n - 1] == ' ' || l[n - 1] == '\t'))
		l[--n] = '\0';
	if (l[0] == '#' || l[strspn(l, " \t")] == '\0')
		return SM_OK; /* comments and blank lines end nothing (Postfix) */
	if (l[0] == ' ' || l[0] == '\t') {
		if (pending->len == 0) {
			sm_seterr(err, errlen, "%s:%d: continuation line without an entry", path, line);
			return SM_ERR_PARSE;
		}
		return buf_printf(pending, " %s", l + strspn(l, " \t"));
	}
	if (pending->len > 0) {
		char *text = buf_steal(pending);

		if (text == NULL)
			return SM_ERR_NOMEM;
		st = map_add(m, text, *pline, err, errlen, path);
		free(text);
	}
	*pline = line;
	return st == SM_OK ? buf_append_str(pending, l) : st;
}

sm_status
sender_map_load(const char *path, struct sender_map **out, char *err, size_t errlen)
{
	struct sender_map *m;
	struct buf pending = BUF_INIT;
	char *l = NULL;
	size_t cap = 0;
	int line = 0, pline = 0;
	sm_status st = SM_OK;
	FILE *f;

	*out = NULL;
	if ((f = fopen(path, "r")) == NULL) {
		sm_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return SM_ERR_IO;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		fclose(f);
		return SM_ERR_NOMEM;
	}
	while (st == SM_OK && getline(&l, &cap, f) != -1)
		st = map_line(m, &pending, &pline, l, ++line, path, err, errlen);
	if (st == SM_OK && ferror(f)) {
		sm_seterr(err, errlen, "%s: read error: %s", path, strerror(errno));
		st = SM_ERR_IO;
	}
	if (st == SM_OK && pending.len > 0) {
		char *text = buf_steal(&pending);

		st = text ? map_add(m, text, pline, err, errlen, path) : SM_ERR_NOMEM;
		free(text);
	}
	free(l);
	buf_free(&pending);
	fclose(f);
	if (st != SM_OK) {
		if (st == SM_ERR_NOMEM)
			sm_seterr(err, errlen, "%s: out of memory", path);
		sender_map_free(m);
		return st;
	}
	*out = m;
	return SM_OK;
}

static const struct sender_entry *
map_find(const struct sender_map *m, const char *key, bool domain)
{
	for (size_t i = 0; m && i < m->n; i++) {
		const char *k = m->v[i].key;

		if (domain ? k[0] == '@' && addr_equal_domain(k + 1, key) :
		    k[0] != '@' && addr_equal(k, key))
			return &m->v[i];
	}
	return NULL;
}

bool
sender_map_owns(const struct sender_map *m, const char *login, const char *addr, int *line)
{
	const struct sender_entry *e;
	const char *dom;

	if (line)
		*line = 0;
	if (login == NULL || *login == '\0' || addr == NULL || *addr == '\0')
		return false;
	if (addr_equal(login, addr))
		return true;
	/* The exact address first; its @domain only when it has no entry. */
	e = map_find(m, addr, false);
	if (e == NULL && (dom = addr_domain(addr)) != NULL)
		e = map_find(m, dom, true);
	if (e == NULL)
		return false;
	for (size_t i = 0; e->logins[i]; i++)
		if (strcasecmp(e->logins[i], login) == 0) {
			if (line)
				*line = e->line;
			return true;
		}
	return false;
}

static void
client_text(const struct sockaddr *sa, char *out, size_t len)
{
	const void *a = NULL;

	if (sa == NULL) {
		snprintf(out, len, "127.0.0.1 (local submission)");
		return;
	}
	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (a == NULL || inet_ntop(sa->sa_family, a, out, (socklen_t)len) == NULL)
		snprintf(out, len, "unknown");
}

/* Does the login own both addresses? Says which rule decided. */
static bool
login_owns(const struct sender_map *m, const char *login, const char *from, const char *env_from,
    struct sender_verdict *v)
{
	int lf = 0, le = 0;

	if (!sender_map_owns(m, login, from, &lf)) {
		snprintf(v->rule, sizeof(v->rule), "login %s does not own %s", login, from);
		return false;
	}
	if (env_from[0] == '\0' || !sender_map_owns(m, login, env_from, &le)) {
		snprintf(v->rule, sizeof(v->rule), "login %s does not own the envelope sender <%s>",
		    login, env_from);
		return false;
	}
	if (lf == 0 && le == 0)
		snprintf(v->rule, sizeof(v->rule), "login %s is the address", login);
	else
		snprintf(v->rule, sizeof(v->rule), "sender_login_map line %d lists login %s", lf ? lf : le,
		    login);
	return true;
}

void
sender_authorise(const struct sender_map *m, const struct cidr *relays, size_t nrelays,
    const struct sender_id *id, const char *from, const char *env_from,
    struct sender_verdict *v)
{
	struct sockaddr_in local;
	const struct sockaddr *client = id->client;
	const char *login = id->login && *id->login ? id->login : NULL;
	char ctext[64];

	memset(v, 0, sizeof(*v));
	if (client == NULL) {
		memset(&local, 0, sizeof(local));
		local.sin_family = AF_INET;
		local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		client = (const struct sockaddr *)&local;
	}
	client_text(id->client, ctext, sizeof(ctext));
	if (login)
		snprintf(v->who, sizeof(v->who), "login %s", login);
	else
		snprintf(v->who, sizeof(v->who), "client %s", ctext);
	if (from == NULL || *from == '\0') {
		snprintf(v->rule, sizeof(v->rule), "the From header does not hold exactly one mailbox");
		return;
	}
	if (env_from == NULL)
		env_from = "";
	if (login && login_owns(m, login, from, env_from, v)) {
		v->ok = true;
		return;
	}
	if (cidr_match_list(relays, nrelays, client)) {
		snprintf(v->rule, sizeof(v->rule), "trusted relay %s", ctext);
		v->ok = true;
		return;
	}
	if (login == NULL)
		snprintf(v->rule, sizeof(v->rule),
		    "client %s did not authenticate and is not a trusted relay", ctext);
}
