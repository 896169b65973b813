/*
 * config.c — the loader and the other queries (see config_int.h for the
 * parts of the module).
 *
 * The loader applies the schema's defaults, walks the file with the
 * schema table, reports unknown keys and bad values with FILE:LINE, and
 * runs the cross-key checks.
 */
#include "config_int.h"

#include <ctype.h>
#include <pwd.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "keycache.h"
#include "sender.h"

void
config_lc_error(struct loadctx *lc, int line, const char *key, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	char **v;

	lc->nerr++;
	if (lc->errs == NULL)
		return;
	if (line > 0)
		buf_printf(&b, "%s:%d: %s: ", lc->file, line, key);
	else
		buf_printf(&b, "%s: %s: ", lc->file, key);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	v = realloc(lc->errs->msg, (lc->errs->n + 1) * sizeof(*v));
	if (v != NULL)
		lc->errs->msg = v;
	if (v == NULL || b.data == NULL) {
		buf_free(&b);
		lc->oom = 1;
		return;
	}
	v[lc->errs->n++] = buf_steal(&b);
}

void
config_errors_free(struct config_errors *errs)
{
	if (errs == NULL)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	errs->msg = NULL;
	errs->n = 0;
}

const char *
config_type_name(int t)
{
	switch (t) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "a number";
	case CONFIG_TYPE_FLOAT: return "a decimal number";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	}
	return "something else";
}

static void
enum_expect(struct buf *b, const char *const *names)
{
	for (size_t i = 0; names[i]; i++)
		buf_printf(b, "%s%s", i ? ", " : "", names[i]);
}

sm_status
config_socket_milter(const char *v, char *out, size_t len)
{
	const char *host, *colon, *p;
	bool v6;
	int n;

	if (strncmp(v, "inet:", 5) != 0 || strchr(v, '@') != NULL)
		goto as_is;
	host = v + 5;
	colon = strrchr(host, ':');
	if (colon == NULL || colon == host || colon[1] == '\0')
		goto as_is;
	for (p = colon + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			goto as_is;
	v6 = host[0] == '[' && colon[-1] == ']';
	if (v6)
		n = snprintf(out, len, "inet6:%s@%.*s", colon + 1, (int)(colon - host - 2), host + 1);
	else
		n = snprintf(out, len, "inet:%s@%.*s", colon + 1, (int)(colon - host), host);
	return n > 0 && (size_t)n < len ? SM_OK : SM_ERR_LIMIT;
as_is:
	n = snprintf(out, len, "%s", v);
	return n >= 0 && (size_t)n < len ? SM_OK : SM_ERR_LIMIT;
}

/* Value checks shared by single strings and list elements. NULL = fine. */
static const char *
check_value(enum sch_check c, const char *v, char *msg, size_t len)
{
	struct stat st;

	switch (c) {
	case C_NONE:
		return NULL;
	case C_NONEMPTY:
		return *v ? NULL : "must not be empty";
	case C_CONNINFO:
		if (*v == '\0')
			return "must not be empty";
		return keycache_conninfo_check(v, msg, len) == SM_OK ? NULL : msg;
	case C_SOCKET: {
		const char *p;
		char *end, conv[512];
		long port;

		/* Postfix's own spelling (inet:HOST:PORT), copied from main.cf,
		 * is checked in the form libmilter gets. */
		if (config_socket_milter(v, conv, sizeof(conv)) == SM_OK)
			v = conv;
		if (strncmp(v, "unix:", 5) == 0 || strncmp(v, "local:", 6) == 0) {
			p = strchr(v, ':') + 1;
			if (*p != '/')
				return "expected an absolute path after unix:";
			return NULL;
		}
		if (strncmp(v, "inet:", 5) == 0)
			p = v + 5;
		else if (strncmp(v, "inet6:", 6) == 0)
			p = v + 6;
		else
			return "expected inet:PORT@HOST, inet6:PORT@HOST or unix:PATH";
		port = strtol(p, &end, 10);
		if (end == p || port < 1 || port > 65535 || (*end != '@' && *end != '\0'))
			return "port must be a number from 1 to 65535";
		if (*end == '@' && end[1] == '\0')
			return "expected a host after @";
		return NULL;
	}
	case C_AUTHSERV:
		if (*v == '\0')
			return "must not be empty";
		for (const char *p = v; *p; p++)
			if (isspace((unsigned char)*p) || *p == ';' || *p == '(' ||
			    *p == ')' || (unsigned char)*p >= 0x7f)
				return "must be a host name (no spaces, semicolons or parentheses)";
		return NULL;
	case C_DOMAINS:
		return addr_valid_domain(v) ? NULL : "not a valid domain name";
	case C_CIDRS: {
		struct cidr n;
		return cidr_parse(v, &n) == SM_OK ? NULL :
		    "expected an IPv4 or IPv6 address or network (192.0.2.0/24, 2001:db8::/32)";
	}
	case C_FILE_EXISTS:
		if (stat(v, &st) != 0) {
			snprintf(msg, len, "cannot open \"%s\": %s", v, strerror(errno));
			return msg;
		}
		if (!S_ISREG(st.st_mode)) {
			snprintf(msg, len, "\"%s\" is not a regular file", v);
			return msg;
		}
		return NULL;
	case C_RULE_ADDR:
		if (v[0] == '@')
			return addr_valid_domain(v + 1) ? NULL :
			    "expected an address or @domain; the domain is not valid";
		return addr_valid_mailbox(v) ? NULL : "expected an address or @domain";
	case C_HEADER_NAME:
		for (const char *p = v; *p; p++)
			if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == ':')
				return "not a valid header field name";
		return NULL;
	case C_LDAP_FILTER: {
		const char *p = strstr(v, "%s");

		if (v[0] != '(' || p == NULL || strchr(p + 2, '%') != NULL ||
		    memchr(v, '%', (size_t)(p - v)) != NULL)
			return "expected an LDAP filter in parentheses with exactly one %s";
		return NULL;
	}
	}
	return NULL;
}

static char *
lower_dup(const char *s, int lower)
{
	char *d = strdup(s);

	if (d && lower)
		for (char *p = d; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	return d;
}

/* Store one string list (already validated) into the field. */
static int
store_strlist(struct loadctx *lc, const struct schema *e, char *base,
    const char **items, size_t n)
{
	size_t *count = (size_t *)(base + e->count_off);

	if (e->check == C_CIDRS) {
		struct cidr *v = calloc(n ? n : 1, sizeof(*v));
		if (v == NULL)
			return lc->oom = 1, -1;
		for (size_t i = 0; i < n; i++)
			cidr_parse(items[i], &v[i]);
		free(*(struct cidr **)(base + e->off));
		*(struct cidr **)(base + e->off) = v;
	} else {
		char **v = calloc(n + 1, sizeof(*v));
		char **old = *(char ***)(base + e->off);
		if (v == NULL)
			return lc->oom = 1, -1;
		for (size_t i = 0; i < n; i++)
			if ((v[i] = lower_dup(items[i], e->check == C_DOMAINS)) == NULL)
				lc->oom = 1;
		if (old)
			for (size_t i = 0; old[i]; i++)
				free(old[i]);
		free(old);
		*(char ***)(base + e->off) = v;
	}
	*count = n;
	return 0;
}

static int
parse_mode(const char *v, unsigned *out)
{
	char *end;
	unsigned long m;

	if (*v == '\0' || strspn(v, "01234567") != strlen(v))
		return -1;
	m = strtoul(v, &end, 8);
	if (m > 0777)
		return -1;
	*out = (unsigned)m;
	return 0;
}

/* Apply one default (from the schema's text). */
static void
apply_default(struct loadctx *lc, const struct schema *e, char *base)
{
	switch (e->type) {
	case T_BOOL:
		*(bool *)(base + e->off) = strcmp(e->def, "true") == 0;
		break;
	case T_INT:
		*(uint64_t *)(base + e->off) = strtoull(e->def, NULL, 10);
		break;
	case T_ENUM:
		for (int i = 0; e->enums[i]; i++)
			if (strcmp(e->enums[i], e->def) == 0)
				*(int *)(base + e->off) = i;
		break;
	case T_MODE:
		parse_mode(e->def, (unsigned *)(base + e->off));
		break;
	case T_STR:
		if (e->def && (*(char **)(base + e->off) = strdup(e->def)) == NULL)
			lc->oom = 1;
		break;
	case T_STRLIST: {
		const char *items[8];
		size_t n = 0;
		char tmp[256];
		char *save = NULL, *tok;

		snprintf(tmp, sizeof(tmp), "%s", e->def);
		for (tok = strtok_r(tmp, ",", &save); tok && n < 8; tok = strtok_r(NULL, ",", &save))
			items[n++] = tok;
		store_strlist(lc, e, base, items, n);
		break;
	}
	case T_GROUP:
		for (const struct schema *s = e->sub; s->name; s++)
			apply_default(lc, s, base + e->off);
		break;
	case T_POLICY:
	case T_LIST:
		break;
	}
}

static void load_list(struct loadctx *lc, const struct schema *e, config_setting_t *s, char *base,
    const char *path);

/* Read one setting into its field. path is the dotted key for messages. */
void
config_load_one(struct loadctx *lc, const struct schema *e, config_setting_t *s, char *base,
    const char *path, struct config *cfg)
{
	int line = config_setting_source_line(s);
	int t = config_setting_type(s);
	char msg[512];
	const char *why;

	switch (e->type) {
	case T_BOOL:
		if (t != CONFIG_TYPE_BOOL) {
			config_lc_error(lc, line, path, "expected true or false; got %s", config_type_name(t));
			return;
		}
		*(bool *)(base + e->off) = config_setting_get_bool(s);
		return;
	case T_INT: {
		long long v;

		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
			config_lc_error(lc, line, path, "expected a number; got %s", config_type_name(t));
			return;
		}
		v = config_setting_get_int64(s);
		if (v < e->min || v > e->max) {
			config_lc_error(lc, line, path, "expected a number from %lld to %lld; got %lld",
			    e->min, e->max, v);
			return;
		}
		*(uint64_t *)(base + e->off) = (uint64_t)v;
		return;
	}
	case T_ENUM: {
		const char *v;
		struct buf b = BUF_INIT;

		if (t == CONFIG_TYPE_STRING) {
			v = config_setting_get_string(s);
			for (int i = 0; e->enums[i]; i++)
				if (strcmp(e->enums[i], v) == 0) {
					*(int *)(base + e->off) = i;
					return;
				}
		}
		enum_expect(&b, e->enums);
		if (t == CONFIG_TYPE_STRING)
			config_lc_error(lc, line, path, "expected one of %s; got \"%s\"", buf_cstr(&b),
			    config_setting_get_string(s));
		else
			config_lc_error(lc, line, path, "expected one of %s; got %s", buf_cstr(&b),
			    config_type_name(t));
		buf_free(&b);
		return;
	}
	case T_MODE:
		if (t != CONFIG_TYPE_STRING) {
			config_lc_error(lc, line, path,
			    "expected an octal mode as a string such as \"0660\"; got %s",
			    config_type_name(t));
			return;
		}
		if (parse_mode(config_setting_get_string(s), (unsigned *)(base + e->off)) != 0)
			config_lc_error(lc, line, path,
			    "expected an octal mode from \"0000\" to \"0777\"; got \"%s\"",
			    config_setting_get_string(s));
		return;
	case T_STR: {
		const char *v;
		char **field = (char **)(base + e->off);

		if (t != CONFIG_TYPE_STRING) {
			config_lc_error(lc, line, path, "expected a string; got %s", config_type_name(t));
			return;
		}
		v = config_setting_get_string(s);
		if ((why = check_value(e->check, v, msg, sizeof(msg))) != NULL) {
			config_lc_error(lc, line, path, "%s; got \"%s\"", why, v);
			return;
		}
		free(*field);
		if ((*field = lower_dup(v, e->check == C_RULE_ADDR)) == NULL)
			lc->oom = 1;
		return;
	}
	case T_STRLIST: {
		int n = config_setting_length(s);
		const char **items;
		int bad = 0;

		if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
			config_lc_error(lc, line, path, "expected a list of strings [ \"…\", … ]; got %s",
			    config_type_name(t));
			return;
		}
		items = calloc((size_t)n + 1, sizeof(*items));
		if (items == NULL) {
			lc->oom = 1;
			return;
		}
		for (int i = 0; i < n; i++) {
			config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
			int et = config_setting_type(el);
			if (et != CONFIG_TYPE_STRING) {
				config_lc_error(lc, line, path, "element %d: expected a string; got %s",
				    i + 1, config_type_name(et));
				bad = 1;
				continue;
			}
			items[i] = config_setting_get_string(el);
			if ((why = check_value(e->check, items[i], msg, sizeof(msg))) != NULL) {
				config_lc_error(lc, line, path, "%s; got \"%s\"", why, items[i]);
				bad = 1;
			}
		}
		if (!bad)
			store_strlist(lc, e, base, items, (size_t)n);
		free(items);
		return;
	}
	case T_GROUP:
		if (t != CONFIG_TYPE_GROUP) {
			config_lc_error(lc, line, path, "expected a group { … }; got %s", config_type_name(t));
			return;
		}
		config_load_group(lc, s, e->sub, base + e->off, path, cfg);
		return;
	case T_LIST:
		load_list(lc, e, s, base, path);
		return;
	case T_POLICY:
		config_policy_load(lc, s, path, cfg);
		return;
	}
}

/* A list of groups ( { … }, … ), each read with e->sub into an element of
 * e->max bytes (defaults applied first). */
static void
load_list(struct loadctx *lc, const struct schema *e, config_setting_t *s, char *base,
    const char *path)
{
	int n = config_setting_length(s);
	size_t *count = (size_t *)(base + e->count_off);
	char **arr = (char **)(base + e->off);

	if (config_setting_type(s) != CONFIG_TYPE_LIST) {
		config_lc_error(lc, config_setting_source_line(s), path,
		    "expected a list of groups ( { … }, … ); got %s",
		    config_type_name(config_setting_type(s)));
		return;
	}
	if ((*arr = calloc((size_t)n + 1, (size_t)e->max)) == NULL) {
		lc->oom = 1;
		return;
	}
	for (int i = 0; i < n; i++) {
		config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
		char *item = *arr + (size_t)i * (size_t)e->max;
		char ipath[128];

		snprintf(ipath, sizeof(ipath), "%s[%d]", path, i + 1);
		(*count)++;
		for (const struct schema *m = e->sub; m->name; m++)
			apply_default(lc, m, item);
		if (config_setting_type(el) != CONFIG_TYPE_GROUP) {
			config_lc_error(lc, config_setting_source_line(el), ipath,
			    "expected a group { … }; got %s",
			    config_type_name(config_setting_type(el)));
			continue;
		}
		config_load_group(lc, el, e->sub, item, ipath, NULL);
		if (e->sub == config_ldap_schema && (config_setting_get_member(el, "uri") == NULL ||
		    config_setting_get_member(el, "domains") == NULL))
			config_lc_error(lc, config_setting_source_line(el), ipath,
			    "a directory needs uri and domains");
	}
}

static const struct schema *
schema_find(const struct schema *tab, const char *name)
{
	for (; tab->name; tab++)
		if (strcmp(tab->name, name) == 0)
			return tab;
	return NULL;
}

void
config_load_group(struct loadctx *lc, config_setting_t *grp, const struct schema *tab,
    char *base, const char *prefix, struct config *cfg)
{
	int n = config_setting_length(grp);

	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct schema *e = schema_find(tab, name);
		char path[192];

		if (*prefix)
			snprintf(path, sizeof(path), "%s.%s", prefix, name);
		else
			snprintf(path, sizeof(path), "%s", name);
		if (e == NULL) {
			/* policy rules may also carry outbound keys */
			if (tab == config_policy_schema && ((schema_find(config_outbound_schema, name) &&
			    schema_find(config_outbound_schema, name)->setbit) ||
			    strcmp(name, "revocation") == 0))
				continue;
			config_lc_error(lc, config_setting_source_line(s), path, "unknown key");
			continue;
		}
		config_load_one(lc, e, s, base, path, cfg);
	}
}

static struct config *
config_new(struct loadctx *lc)
{
	struct config *c = calloc(1, sizeof(*c));
	char host[256];

	if (c == NULL)
		return NULL;
	c->refs = 1;
	for (const struct schema *e = config_top_schema; e->name; e++)
		apply_default(lc, e, (char *)c);
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	c->authserv_id = strdup(host);
	if (c->authserv_id == NULL)
		lc->oom = 1;
	return c;
}

static void
strv_free(char **v)
{
	if (v)
		for (size_t i = 0; v[i]; i++)
			free(v[i]);
	free(v);
}

static void
outbound_free(struct cfg_outbound *o)
{
	free(o->subject_tag);
	free(o->trigger_header);
	free(o->sender_login_map);
	free(o->trusted_relays);
}

static void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->file);
	free(c->socket);
	free(c->user);
	free(c->log_file);
	free(c->pid_file);
	free(c->spool_dir);
	free(c->authserv_id);
	strv_free(c->internal_domains);
	free(c->internal_hosts);
	strv_free(c->outbound_daemons);
	free(c->cache_path);
	free(c->cache_conninfo);
	free(c->cache_outbox_dir);
	free(c->keys_dir);
	free(c->trust_ca_file);
	free(c->metrics_listen);
	free(c->metrics_token_file);
	outbound_free(&c->outbound);
	sender_map_free(c->sender_map);
	for (size_t i = 0; i < c->n_policy; i++) {
		free(c->policy[i].recipient);
		free(c->policy[i].sender);
		outbound_free(&c->policy[i].o);
		free(c->policy[i].rev.proxy);
	}
	free(c->revocation.proxy);
	free(c->policy);
	for (size_t i = 0; i < c->n_discovery_ldap; i++) {
		struct cfg_ldap *l = &c->discovery_ldap[i];

		strv_free(l->domains);
		free(l->uri);
		free(l->base);
		free(l->filter);
		free(l->bind_dn);
		free(l->password_file);
	}
	free(c->discovery_ldap);
	free(c->smimea_resolver);
	free(c->smimea_trust_anchor_file);
	free(c->smimea_stub_zone);
	free(c);
}

sm_status
config_defaults(struct config **out)
{
	struct loadctx lc = { "(defaults)", NULL, 0, 0 };
	struct config *c = config_new(&lc);

	if (c == NULL || lc.oom) {
		config_free(c);
		return SM_ERR_NOMEM;
	}
	*out = c;
	return SM_OK;
}

/* The first line on which a string is still open at the end of the line
 * (libconfig strings are "..." with backslash escapes; comments are #,
 * // and C-style), or 0. */
static int
unclosed_quote_line(FILE *f)
{
	int c, prev = 0, line = 1;
	enum { CODE, STR, LINE_COMMENT, BLOCK_COMMENT } st = CODE;

	while ((c = getc(f)) != EOF) {
		switch (st) {
		case CODE:
			if (c == '"')
				st = STR;
			else if (c == '#' || (c == '/' && prev == '/'))
				st = LINE_COMMENT;
			else if (c == '*' && prev == '/')
				st = BLOCK_COMMENT;
			break;
		case STR:
			if (c == '\\') {
				if ((c = getc(f)) == EOF)
					return line;
				if (c != '\n')
					c = 0;
			} else if (c == '"') {
				st = CODE;
			}
			if (c == '\n' && st == STR)
				return line;
			break;
		case LINE_COMMENT:
			if (c == '\n')
				st = CODE;
			break;
		case BLOCK_COMMENT:
			if (c == '/' && prev == '*')
				st = CODE, c = 0;
			break;
		}
		if (c == '\n')
			line++;
		prev = c;
	}
	return st == STR ? line : 0;
}

/* Read outbound.sender_login_map now, so that -n and a reload see a missing
 * or broken map as a configuration error at the key's line. */
static void
load_sender_map(struct loadctx *lc, config_t *cf, struct config *c)
{
	config_setting_t *s = config_lookup(cf, "outbound.sender_login_map");
	char err[512];
	sm_status st;

	st = sender_map_load(c->outbound.sender_login_map, &c->sender_map, err, sizeof(err));
	if (st == SM_ERR_NOMEM)
		lc->oom = 1;
	else if (st != SM_OK)
		config_lc_error(lc, s ? config_setting_source_line(s) : 0, "outbound.sender_login_map", "%s",
		    err);
}

sm_status
config_load(const char *path, struct config **out, struct config_errors *errs)
{
	struct loadctx lc = { path, errs, 0, 0 };
	config_t cf;
	struct config *c;
	FILE *f;

	*out = NULL;
	f = fopen(path, "r");
	if (f == NULL) {
		config_lc_error(&lc, 0, "file", "cannot open: %s", strerror(errno));
		return SM_ERR_IO;
	}
	config_init(&cf);
	if (!config_read(&cf, f)) {
		int qline;

		rewind(f);
		/* libconfig reports an unclosed quote where the file ends;
		 * the admin needs the line where the string starts. */
		if ((qline = unclosed_quote_line(f)) > 0)
			config_lc_error(&lc, qline, "syntax",
			    "unclosed quote: the string that starts on this line does not end on it");
		else
			config_lc_error(&lc, config_error_line(&cf), "syntax", "%s",
			    config_error_text(&cf));
		config_destroy(&cf);
		fclose(f);
		return SM_ERR_CONFIG;
	}
	fclose(f);
	c = config_new(&lc);
	if (c == NULL) {
		config_destroy(&cf);
		return SM_ERR_NOMEM;
	}
	config_load_group(&lc, config_root_setting(&cf), config_top_schema, (char *)c, "", c);
	config_policy_inherit(&lc, c);

	/* Checks across keys. */
	if (c->spool_threshold > c->max_message_size) {
		config_setting_t *s = config_lookup(&cf, "limits.spool_threshold");
		config_lc_error(&lc, s ? config_setting_source_line(s) : 0, "limits.spool_threshold",
		    "must not exceed limits.max_message_size (%llu)",
		    (unsigned long long)c->max_message_size);
	}
	if (c->cache_backend == CFG_BACKEND_POSTGRESQL && c->cache_conninfo == NULL &&
	    config_lookup(&cf, "cache.conninfo") == NULL) {
		config_setting_t *s = config_lookup(&cf, "cache.backend");
		config_lc_error(&lc, s ? config_setting_source_line(s) : 0, "cache.conninfo",
		    "must be set when cache.backend is \"postgresql\"");
	}
	if (c->trust_ca_file && config_lookup(&cf, "trust.ca_file") == NULL) {
		char msg[512];
		const char *why = check_value(C_FILE_EXISTS, c->trust_ca_file, msg, sizeof(msg));
		if (why)
			config_lc_error(&lc, 0, "trust.ca_file", "(default) %s", why);
	}
	if (c->outbound.sender_login_map)
		load_sender_map(&lc, &cf, c);
	config_destroy(&cf);
	if ((c->file = strdup(path)) == NULL)
		lc.oom = 1;
	if (lc.oom) {
		config_free(c);
		return SM_ERR_NOMEM;
	}
	if (lc.nerr) {
		config_free(c);
		return SM_ERR_CONFIG;
	}
	*out = c;
	return SM_OK;
}

struct config *
config_ref(struct config *c)
{
	if (c)
		__atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
	return c;
}

void
config_unref(struct config *c)
{
	if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(c);
}

char *
config_revocation_store(const struct config *cfg)
{
	struct buf b = BUF_INIT;

	if (buf_printf(&b, "%s.revocation", cfg->cache_path) != SM_OK) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

bool
config_is_internal(const struct config *cfg, const char *addr)
{
	for (size_t i = 0; i < cfg->n_internal_domains; i++)
		if (addr_in_domain(addr, cfg->internal_domains[i]))
			return true;
	return false;
}

uid_t
config_daemon_uid(const struct config *cfg)
{
	struct passwd pwd, *pw = NULL;
	char buf[4096];

	if (cfg && cfg->user && cfg->user[0] &&
	    getpwnam_r(cfg->user, &pwd, buf, sizeof(buf), &pw) == 0 && pw)
		return pw->pw_uid;
	return geteuid();
}

const char *
config_cache_target(const struct config *c)
{
	return c->cache_backend == CFG_BACKEND_POSTGRESQL ? c->cache_conninfo
							  : c->cache_path;
}
