/*
 * smimectl_cache.c — `smimectl cache`: the key cache as a whole.
 *
 *   cache backup FILE        a consistent copy (SQLite online backup API)
 *   cache restore FILE       put a backup back, daemon running or not
 *   cache export --json      every binding, as JSON on stdout
 *   cache import --json FILE bindings from an export (any backend, machine)
 *
 * backup/restore work on the SQLite file whatever its schema
 * (lib/cachefile); export/import go through the keycache API only, so
 * they move a cache between schema versions, backends and machines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "buf.h"
#include "cachefile.h"
#include "keycache.h"
#include "smimectl.h"

/* ---- backup / restore ------------------------------------------------ */

/* Backup and restore copy the SQLite file; a PostgreSQL cache has its own
 * tools (export/import work on either backend). */
static int
cache_file_backend(struct ctl *c, const char *what)
{
	if (c->cfg->cache_backend == CFG_BACKEND_SQLITE)
		return CTL_OK;
	ctl_err("%s: the cache is in PostgreSQL (cache.backend = \"%s\"): use pg_dump / "
	    "pg_restore, or cache export --json / cache import --json", what,
	    config_cache_backend(c->cfg));
	return CTL_ERR;
}

static int
cache_backup(struct ctl *c, int argc, char **argv)
{
	char *pos[1], err[1024] = "";
	int npos, rc, pages = 0;
	struct stat sb;

	if ((rc = ctl_parse("cache backup", argc, argv, NULL, pos, 1, &npos)) != CTL_OK)
		return rc;
	if (npos != 1)
		return ctl_usage_error("cache backup", "missing FILE");
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	if (cache_file_backend(c, "cache backup") != CTL_OK)
		return CTL_ERR;
	if (stat(c->cfg->cache_path, &sb) != 0) {
		ctl_err("cache backup: %s: %s", c->cfg->cache_path, strerror(errno));
		return CTL_ERR;
	}
	if (cachefile_backup(c->cfg->cache_path, pos[0], &pages, err, sizeof(err)) != SM_OK) {
		ctl_err("cache backup: %s", err);
		return CTL_ERR;
	}
	printf("backed up %s to %s (%d pages, integrity ok)\n", c->cfg->cache_path, pos[0], pages);
	return CTL_OK;
}

static int
cache_restore(struct ctl *c, int argc, char **argv)
{
	char *pos[1], err[1024] = "";
	struct keycache *kc = NULL;
	int npos, rc, pages = 0, version = 0;

	if ((rc = ctl_parse("cache restore", argc, argv, NULL, pos, 1, &npos)) != CTL_OK)
		return rc;
	if (npos != 1)
		return ctl_usage_error("cache restore", "missing FILE");
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	if (cache_file_backend(c, "cache restore") != CTL_OK)
		return CTL_ERR;
	if (cachefile_restore(pos[0], c->cfg->cache_path, &pages, err, sizeof(err)) != SM_OK) {
		ctl_err("cache restore: %s", err);
		return CTL_ERR;
	}
	/* Opening it brings an older backup's schema up to date, and proves
	 * the result is a key cache. */
	if (keycache_open("sqlite", c->cfg->cache_path, &kc, err, sizeof(err)) != SM_OK ||
	    keycache_check(kc, &version, err, sizeof(err)) != SM_OK) {
		ctl_err("cache restore: %s: restored, but not a usable key cache: %s",
		    c->cfg->cache_path, err);
		keycache_close(kc);
		return CTL_ERR;
	}
	keycache_close(kc);
	printf("restored %s from %s (%d pages, schema %d)\n", c->cfg->cache_path, pos[0], pages,
	    version);
	return CTL_OK;
}

/* ---- export ---------------------------------------------------------- */

static char *
b64(const unsigned char *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

static int
export_one(const struct kc_record *r, void *arg)
{
	struct json *j = arg;
	char *der = b64(r->der, r->der_len);
	char *chain = r->chain_len ? b64(r->chain, r->chain_len) : NULL;

	json_begin(j, '{');
	json_key(j, "address");
	json_str(j, r->address);
	json_key(j, "status");
	json_str(j, r->status == KC_ST_EXPIRED ? "active" : kc_status_name(r->status));
	json_key(j, "source");
	json_str(j, kc_source_name(r->source));
	json_key(j, "assurance");
	json_str(j, kc_assurance_name(r->assurance));
	json_key(j, "caps");
	json_int(j, (long long)r->caps);
	json_key(j, "signer");
	json_bool(j, r->signer);
	json_key(j, "enc_fp");
	json_str(j, r->enc_fp[0] ? r->enc_fp : NULL);
	json_key(j, "signing_time");
	json_int(j, (long long)r->signing_time);
	json_key(j, "fingerprint");
	json_str(j, r->fingerprint);
	json_key(j, "first_seen");
	json_int(j, (long long)r->first_seen);
	json_key(j, "last_seen");
	json_int(j, (long long)r->last_seen);
	json_key(j, "cert");
	json_str(j, der ? der : "");
	json_key(j, "chain");
	json_str(j, chain);
	json_end(j, '}');
	free(der);
	free(chain);
	return 0;
}

static int
cache_export(struct ctl *c, int argc, char **argv)
{
	bool json = false;
	const struct ctl_opt opts[] = { { "--json", NULL, &json }, { NULL, NULL, NULL } };
	struct json j;
	int npos, rc;

	if ((rc = ctl_parse("cache export", argc, argv, opts, NULL, 0, &npos)) != CTL_OK)
		return rc;
	if (!json)
		return ctl_usage_error("cache export", "--json is the only format");
	if (ctl_open_cache(c, false) != CTL_OK)
		return CTL_ERR;
	json_init(&j, stdout);
	json_begin(&j, '[');
	if (c->kc && keycache_iterate(c->kc, export_one, &j) != SM_OK) {
		ctl_err("cache export: cannot read %s", c->cfg->cache_path);
		return CTL_ERR;
	}
	json_end(&j, ']');
	fputc('\n', stdout);
	return CTL_OK;
}

/* ---- import: a reader for what export writes -------------------------- */

/* One exported binding. */
struct imp {
	char *address, *status, *source, *assurance, *enc_fp, *fingerprint, *cert, *chain;
	long long caps, signing_time, first_seen, last_seen;
	bool signer;
};

struct jr {
	const char *p, *end;
	const char *why;
};

static void
jr_ws(struct jr *r)
{
	while (r->p < r->end && strchr(" \t\r\n", *r->p))
		r->p++;
}

static bool
jr_lit(struct jr *r, const char *lit)
{
	size_t n = strlen(lit);

	jr_ws(r);
	if ((size_t)(r->end - r->p) >= n && memcmp(r->p, lit, n) == 0) {
		r->p += n;
		return true;
	}
	return false;
}

/* A string (escapes undone; \u only in the Basic Multilingual Plane). */
static char *
jr_str(struct jr *r)
{
	struct buf b = BUF_INIT;

	if (!jr_lit(r, "\""))
		return r->why = "expected a string", NULL;
	while (r->p < r->end && *r->p != '"') {
		char ch = *r->p++;
		unsigned u;

		if (ch != '\\') {
			buf_printf(&b, "%c", ch);
			continue;
		}
		if (r->p >= r->end)
			break;
		switch ((ch = *r->p++)) {
		case 'n': buf_printf(&b, "\n"); break;
		case 't': buf_printf(&b, "\t"); break;
		case 'r': buf_printf(&b, "\r"); break;
		case 'b': buf_printf(&b, "\b"); break;
		case 'f': buf_printf(&b, "\f"); break;
		case 'u':
			if (r->end - r->p < 4 || sscanf(r->p, "%4x", &u) != 1)
				goto bad;
			r->p += 4;
			if (u < 0x80)
				buf_printf(&b, "%c", (char)u);
			else if (u < 0x800)
				buf_printf(&b, "%c%c", (char)(0xc0 | u >> 6), (char)(0x80 | (u & 0x3f)));
			else
				buf_printf(&b, "%c%c%c", (char)(0xe0 | u >> 12),
				    (char)(0x80 | ((u >> 6) & 0x3f)), (char)(0x80 | (u & 0x3f)));
			break;
		default: buf_printf(&b, "%c", ch); break;
		}
	}
	if (r->p >= r->end)
		goto bad;
	r->p++;
	{
		char *s = strdup(buf_cstr(&b) ? buf_cstr(&b) : "");
		buf_free(&b);
		return s;
	}
bad:
	buf_free(&b);
	r->why = "bad string";
	return NULL;
}

/* One "key": value of a binding. */
static bool
jr_member(struct jr *r, struct imp *m)
{
	char *key = jr_str(r), **sv = NULL;
	long long *iv = NULL;
	bool ok = true, is_signer;

	if (key == NULL || !jr_lit(r, ":")) {
		free(key);
		return r->why = r->why ? r->why : "expected ':'", false;
	}
	if (strcmp(key, "address") == 0) sv = &m->address;
	else if (strcmp(key, "status") == 0) sv = &m->status;
	else if (strcmp(key, "source") == 0) sv = &m->source;
	else if (strcmp(key, "fingerprint") == 0) sv = &m->fingerprint;
	else if (strcmp(key, "cert") == 0) sv = &m->cert;
	else if (strcmp(key, "chain") == 0) sv = &m->chain;
	else if (strcmp(key, "assurance") == 0) sv = &m->assurance;
	else if (strcmp(key, "enc_fp") == 0) sv = &m->enc_fp;
	else if (strcmp(key, "caps") == 0) iv = &m->caps;
	else if (strcmp(key, "signing_time") == 0) iv = &m->signing_time;
	else if (strcmp(key, "first_seen") == 0) iv = &m->first_seen;
	else if (strcmp(key, "last_seen") == 0) iv = &m->last_seen;
	is_signer = strcmp(key, "signer") == 0;
	free(key);
	jr_ws(r);
	if (jr_lit(r, "null")) {
		/* nothing */
	} else if (jr_lit(r, "true")) {
		m->signer = m->signer || is_signer;
	} else if (jr_lit(r, "false")) {
		/* nothing */
	} else if (*r->p == '"') {
		char *v = jr_str(r);
		if (v == NULL)
			return false;
		if (sv) {
			free(*sv);
			*sv = v;
		} else {
			free(v);
		}
	} else {
		char *e;
		long long v = strtoll(r->p, &e, 10);
		if (e == r->p)
			return r->why = "expected a value", false;
		r->p = e;
		if (iv)
			*iv = v;
	}
	return ok;
}

static void
imp_free(struct imp *m)
{
	free(m->address);
	free(m->status);
	free(m->source);
	free(m->fingerprint);
	free(m->cert);
	free(m->chain);
	free(m->assurance);
	free(m->enc_fp);
	memset(m, 0, sizeof(*m));
}

/* DER certificates, back to back, as a stack (NULL for none). */
static STACK_OF(X509) *
chain_of(const unsigned char *p, long n)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;

	while (sk && n > 0) {
		const unsigned char *start = p;
		if ((x = d2i_X509(NULL, &p, n)) == NULL || sk_X509_push(sk, x) <= 0) {
			X509_free(x);
			break;
		}
		n -= p - start;
	}
	return sk;
}

static unsigned char *
unb64(const char *s, long *len)
{
	size_t n = strlen(s);
	unsigned char *out = malloc(n / 4 * 3 + 3);
	int got;

	if (out == NULL || (got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n)) < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as data. */
	while (n > 0 && s[n - 1] == '=') {
		got--;
		n--;
	}
	*len = got;
	return out;
}

static enum kc_source
source_of(const char *s)
{
	if (s && strcmp(s, "harvested") == 0)
		return KC_SRC_HARVESTED;
	if (s && strcmp(s, "discovered") == 0)
		return KC_SRC_DISCOVERED;
	return KC_SRC_IMPORTED;
}

static enum kc_assurance
assurance_of(const char *s, X509 *x)
{
	if (s && strcmp(s, "admin") == 0)
		return KC_AS_ADMIN;
	if (s && strcmp(s, "self-signed") == 0)
		return KC_AS_SELF_SIGNED;
	if (s && strcmp(s, "ca") == 0)
		return KC_AS_CA;
	return x509u_is_self_signed(x) ? KC_AS_SELF_SIGNED : KC_AS_CA;
}

/* Store one binding as exported: status, pairing, assurance and times. */
static sm_status
import_one(struct keycache *kc, const struct imp *m, char *err, size_t errlen)
{
	unsigned char *der = NULL, *chd = NULL;
	const unsigned char *p;
	STACK_OF(X509) *chain = NULL;
	struct kc_record b;
	long len = 0, clen = 0;
	X509 *x = NULL;
	sm_status st = SM_ERR_PARSE;

	if (m->address == NULL || m->cert == NULL || (der = unb64(m->cert, &len)) == NULL ||
	    (p = der, x = d2i_X509(NULL, &p, len)) == NULL) {
		snprintf(err, errlen, "%s: no readable certificate", m->address ? m->address : "?");
		goto done;
	}
	if (m->chain && (chd = unb64(m->chain, &clen)) != NULL)
		chain = chain_of(chd, clen);
	memset(&b, 0, sizeof(b));
	b.address = m->address;
	b.status = m->status && strcmp(m->status, "removed") == 0 ? KC_ST_REMOVED : KC_ST_ACTIVE;
	b.caps = (caps_t)m->caps;
	b.source = source_of(m->source);
	b.assurance = assurance_of(m->assurance, x);
	b.signer = m->signer;
	snprintf(b.enc_fp, sizeof(b.enc_fp), "%s", m->enc_fp ? m->enc_fp : "");
	b.signing_time = (time_t)m->signing_time;
	b.first_seen = (time_t)m->first_seen;
	b.last_seen = (time_t)m->last_seen;
	st = keycache_restore(kc, x, chain, &b);
	if (st != SM_OK)
		snprintf(err, errlen, "%s: %s", m->address, sm_strstatus(st));
done:
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	free(der);
	free(chd);
	return st;
}

/* Read every binding of the export in text into *v. */
static bool
parse_export(struct jr *r, struct imp **v, size_t *n)
{
	*v = NULL;
	*n = 0;
	if (!jr_lit(r, "["))
		return r->why = "expected '['", false;
	if (jr_lit(r, "]"))
		return true;
	do {
		struct imp m, *nv;

		memset(&m, 0, sizeof(m));
		if (!jr_lit(r, "{"))
			return r->why = "expected '{'", false;
		if (!jr_lit(r, "}")) {
			do {
				if (!jr_member(r, &m)) {
					imp_free(&m);
					return false;
				}
			} while (jr_lit(r, ","));
			if (!jr_lit(r, "}")) {
				imp_free(&m);
				return r->why = "expected '}'", false;
			}
		}
		if ((nv = realloc(*v, (*n + 1) * sizeof(**v))) == NULL) {
			imp_free(&m);
			return r->why = "out of memory", false;
		}
		*v = nv;
		(*v)[(*n)++] = m;
	} while (jr_lit(r, ","));
	if (!jr_lit(r, "]"))
		return r->why = "expected ']'", false;
	return true;
}

/* Certificates exported as removed for every address they had (each
 * binding came back removed, as exported). */
static size_t
import_removals(const struct imp *v, size_t n)
{
	size_t done = 0;

	for (size_t i = 0; i < n; i++) {
		bool all = v[i].status && strcmp(v[i].status, "removed") == 0 && v[i].fingerprint;
		bool first = true;

		for (size_t k = 0; all && k < n; k++) {
			if (!v[k].fingerprint || strcmp(v[k].fingerprint, v[i].fingerprint) != 0)
				continue;
			all = v[k].status && strcmp(v[k].status, "removed") == 0;
			first = first && k >= i;
		}
		if (all && first)
			done++;
	}
	return done;
}

static int
cache_import(struct ctl *c, int argc, char **argv)
{
	bool json = false;
	const struct ctl_opt opts[] = { { "--json", NULL, &json }, { NULL, NULL, NULL } };
	char *pos[1], err[512] = "";
	struct buf text = BUF_INIT;
	struct imp *v = NULL;
	size_t n = 0, stored = 0;
	struct jr r;
	int npos, rc;

	if ((rc = ctl_parse("cache import", argc, argv, opts, pos, 1, &npos)) != CTL_OK)
		return rc;
	if (!json)
		return ctl_usage_error("cache import", "--json is the only format");
	if (npos != 1)
		return ctl_usage_error("cache import", "missing FILE (- for standard input)");
	if (ctl_read_file(pos[0], &text, err, sizeof(err)) != CTL_OK) {
		ctl_err("cache import: %s", err);
		return CTL_ERR;
	}
	r.p = buf_cstr(&text) ? buf_cstr(&text) : "";
	r.end = r.p + strlen(r.p);
	r.why = NULL;
	if (!parse_export(&r, &v, &n)) {
		ctl_err("cache import: %s: not a cache export: %s at byte %ld", pos[0],
		    r.why ? r.why : "syntax error", (long)(r.p - buf_cstr(&text)));
		rc = CTL_ERR;
		goto out;
	}
	if ((rc = ctl_open_cache(c, true)) != CTL_OK)
		goto out;
	/* A pairing names its encryption certificate, which may come later
	 * in the export: those go in a second pass. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			if ((v[i].enc_fp && v[i].enc_fp[0]) != (pass == 1))
				continue;
			if (import_one(c->kc, &v[i], err, sizeof(err)) == SM_OK) {
				stored++;
			} else {
				ctl_err("cache import: %s", err);
				rc = CTL_ERR;
			}
		}
	}
	printf("imported %zu of %zu bindings into %s (%zu certificates removed again)\n", stored,
	    n, c->cfg->cache_path, import_removals(v, n));
out:
	for (size_t i = 0; i < n; i++)
		imp_free(&v[i]);
	free(v);
	buf_free(&text);
	return rc;
}

int
cmd_cache(struct ctl *c, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage_error("cache", "missing init, migrate, backup, restore, export or "
		    "import");
	if (strcmp(argv[0], "init") == 0)
		return cmd_cache_init(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "migrate") == 0)
		return cmd_cache_migrate(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "backup") == 0)
		return cache_backup(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "restore") == 0)
		return cache_restore(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "export") == 0)
		return cache_export(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "import") == 0)
		return cache_import(c, argc - 1, argv + 1);
	return ctl_usage_error("cache", "unknown subcommand \"%s\"", argv[0]);
}
