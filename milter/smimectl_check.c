/*
 * smimectl_check.c — `smimectl check`: is this installation healthy?
 *
 * The configuration (exactly the lines `smime-milter -n` prints), the trust
 * anchors, the key files (permissions, ownership, that keys_dir loads, and
 * that every address and domain has a signing key valid for more than
 * CHECK_WARN_DAYS days) and the key cache (schema and integrity). What is
 * fine goes to stdout, one line per area; each problem is one line on
 * stderr; the exit status is 1 when there was any, so that cron or a
 * monitoring system can run it.
 */
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "keycache.h"
#include "keyfile.h"
#include "keystore.h"
#include "metrics_http.h"
#include "smimectl.h"
#include "discover.h"
#include "trust.h"
#include "x509util.h"

struct check {
	struct ctl *c;
	int problems;
	struct passwd *pw; /* the daemon's user, when it changes to one */
};

static void
problem(struct check *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
problem(struct check *k, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	k->problems++;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	/* One problem, one line (SQLite's integrity report has several). */
	fputs("smimectl: check: ", stderr);
	for (const char *p = buf_cstr(&b); *p; p++) {
		if (*p == '\n') {
			if (p[1] != '\0')
				fputs("; ", stderr);
		} else if (*p != '\r') {
			fputc(*p, stderr);
		}
	}
	fputc('\n', stderr);
	buf_free(&b);
}

/* May pw open (r) or list (r+x) a file or directory with this stat? */
static bool
user_may(const struct passwd *pw, const struct stat *sb, bool dir)
{
	mode_t need = dir ? 05 : 04;

	if (pw->pw_uid == 0)
		return true;
	if (sb->st_uid == pw->pw_uid)
		return ((sb->st_mode >> 6) & need) == need;
	if (sb->st_gid == pw->pw_gid)
		return ((sb->st_mode >> 3) & need) == need;
	return (sb->st_mode & need) == need;
}

static void
check_user(struct check *k)
{
	const struct config *cfg = k->c->cfg;

	if (cfg->user == NULL || cfg->user[0] == '\0')
		return;
	if ((k->pw = getpwnam(cfg->user)) == NULL) {
		problem(k, "user \"%s\" does not exist: smime-milter will not start", cfg->user);
		return;
	}
	if (k->pw->pw_uid == geteuid() && geteuid() != 0)
		k->pw = NULL; /* the daemon runs as whoever runs this */
}

static void
check_trust(struct check *k)
{
	const struct config *cfg = k->c->cfg;
	struct trust *t = NULL;
	char why[512] = "";

	if (trust_load(cfg->trust_ca_file, NULL, &t, why, sizeof(why)) != SM_OK) {
		problem(k, "trust: %s: %s", cfg->trust_ca_file, why);
		return;
	}
	if (trust_count(t) == 0)
		problem(k, "trust: %s: no trust anchors: nothing can be harvested",
		    cfg->trust_ca_file);
	else
		printf("trust: %s: %zu anchor%s\n", cfg->trust_ca_file, trust_count(t),
		    trust_count(t) == 1 ? "" : "s");
	trust_free(t);
}

/* Key discovery: bind passwords and the DNSSEC trust anchor load, as the
 * daemon will load them at start. */
static void
check_discovery(struct check *k)
{
	const struct config *cfg = k->c->cfg;
	struct discover *d = NULL;
	char why[512] = "";

	if (discover_new(cfg, &d, why, sizeof(why)) != SM_OK) {
		problem(k, "%s: smime-milter will not start", why);
		return;
	}
	if (d != NULL)
		printf("discovery: %zu director%s, smimea %s: ok\n", cfg->n_discovery_ldap,
		    cfg->n_discovery_ldap == 1 ? "y" : "ies", cfg->smimea_enabled ? "on" : "off");
	discover_free(d);
}

/* Every *.pem of keys_dir (the names keystore_load() reads): mode and
 * owner. Returns true when some file has an unsafe mode. */
static bool
check_key_files(struct check *k, const char *dir)
{
	struct dirent *de;
	bool unsafe = false;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		problem(k, "keys: %s: %s", dir, strerror(errno));
		return false;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char path[4096], why[4200];
		struct stat sb;

		if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &sb) != 0) {
			problem(k, "keys: %s: %s", path, strerror(errno));
			continue;
		}
		if (!S_ISREG(sb.st_mode)) {
			problem(k, "keys: %s: not a regular file", path);
			continue;
		}
		if (keyfile_check_mode(path, sb.st_mode, why, sizeof(why)) != SM_OK) {
			/* The words keystore_load() uses when it refuses. */
			problem(k, "keys: %s", why);
			unsafe = true;
		}
		if (k->pw && !user_may(k->pw, &sb, false))
			problem(k,
			    "keys: %s: owned by uid %ld, so smime-milter (user %s) cannot read it "
			    "on a reload; chown %s it",
			    path, (long)sb.st_uid, k->pw->pw_name, k->pw->pw_name);
	}
	closedir(d);
	return unsafe;
}

/* One address or "@domain": does it have a signing key that stays valid? */
static void
check_signer(struct check *k, const struct keystore *ks, const char *name)
{
	char date[16];
	time_t now = clock_now(), na;
	long i, newest, next;
	const struct keystore_info *in;

	if ((i = keystore_pick(ks, name, now, &newest)) < 0) {
		in = keystore_info_at(ks, (size_t)newest);
		switch (x509u_validity(keystore_key_at(ks, (size_t)newest)->cert, now)) {
		case X509U_EXPIRED:
			x509u_date(in->not_after, date, sizeof(date));
			problem(k, "keys: %s: no valid key: the newest, %s, expired on %s", name,
			    in->path, date);
			break;
		case X509U_NOT_YET_VALID:
			x509u_date(in->not_before, date, sizeof(date));
			problem(k, "keys: %s: no valid key yet: %s is valid from %s", name, in->path,
			    date);
			break;
		default:
			problem(k, "keys: %s: no key that may sign (key usage of %s)", name,
			    in->path);
			break;
		}
		return;
	}
	in = keystore_info_at(ks, (size_t)i);
	na = in->not_after;
	x509u_date(na, date, sizeof(date));
	/* A signing key expiring within warn_expiry_days is a problem. */
	if (k->c->cfg->warn_expiry_days > 0 && na - now < (time_t)k->c->cfg->warn_expiry_days * 86400) {
		/* A renewed key already in place takes over: fine. */
		next = keystore_pick(ks, name, na + 1, NULL);
		if (next < 0) {
			problem(k,
			    "keys: %s: the signing key %s expires on %s, in %ld day%s; import the "
			    "renewed key",
			    name, in->path, date, (long)((na - now) / 86400),
			    (na - now) / 86400 == 1 ? "" : "s");
			return;
		}
	}
	printf("keys: %s: signs with %s until %s\n", name, in->path, date);
}

static void
check_keys(struct check *k)
{
	const char *dir = k->c->cfg->keys_dir;
	struct keystore *ks = NULL;
	char why[1024] = "";
	struct stat sb;
	bool unsafe;
	sm_status st;

	if (stat(dir, &sb) != 0) {
		if (errno == ENOENT)
			printf("keys: %s: does not exist yet (smime-milter creates it)\n", dir);
		else
			problem(k, "keys: %s: %s", dir, strerror(errno));
		return;
	}
	if (!S_ISDIR(sb.st_mode)) {
		problem(k, "keys: %s: not a directory", dir);
		return;
	}
	if (k->pw && !user_may(k->pw, &sb, true))
		problem(k, "keys: %s: smime-milter (user %s) cannot read this directory on a reload",
		    dir, k->pw->pw_name);
	unsafe = check_key_files(k, dir);
	if ((st = keystore_load(dir, &ks, why, sizeof(why))) != SM_OK) {
		if (!(unsafe && st == SM_ERR_PERM))
			problem(k, "keys: %s", why);
		problem(k, "keys: %s: smime-milter refuses to load its keys until this is fixed",
		    dir);
		return;
	}
	printf("keys: %s: %zu key%s\n", dir, keystore_count(ks), keystore_count(ks) == 1 ? "" : "s");
	/* Every address and domain once, in the order of the files. */
	for (size_t i = 0; i < keystore_count(ks); i++) {
		const struct keystore_info *in = keystore_info_at(ks, i);

		for (size_t a = 0; a < in->n_addresses; a++) {
			bool seen = false;
			for (size_t p = 0; p < i && !seen; p++)
				seen = keystore_info_covers(keystore_info_at(ks, p), in->addresses[a]);
			if (!seen)
				check_signer(k, ks, in->addresses[a]);
		}
		for (size_t d = 0; d < in->n_domains; d++) {
			char who[300];
			bool seen = false;

			snprintf(who, sizeof(who), "@%s", in->domains[d]);
			for (size_t p = 0; p < i && !seen; p++)
				seen = keystore_info_covers(keystore_info_at(ks, p), who);
			if (!seen)
				check_signer(k, ks, who);
		}
	}
	keystore_free(ks);
}

/* A cache on a database server: backend, schema, connectivity, how far
 * the local copy may be behind, and the outbox. */
static void
check_cache_remote(struct check *k)
{
	const struct config *cfg = k->c->cfg;
	struct keycache *kc = NULL;
	struct kc_health h;
	char why[512] = "";
	size_t queued = keycache_outbox_count(cfg->cache_outbox_dir);

	if (keycache_open(config_cache_backend(cfg), config_cache_target(cfg), &kc, why,
		sizeof(why)) != SM_OK) {
		problem(k, "cache: %s: %s", config_cache_backend(cfg), why);
		return;
	}
	keycache_health(kc, &h);
	if (!h.connected)
		problem(k, "cache: %s: database unreachable: %s", h.backend, h.err);
	else
		printf("cache: %s: schema %d, connected, local copy lag %llds\n", h.backend,
		    h.schema_version, h.lag);
	if (queued > 0)
		printf("cache: outbox %s: %zu write%s waiting for the database\n",
		    cfg->cache_outbox_dir, queued, queued == 1 ? "" : "s");
	else
		printf("cache: outbox %s: empty\n", cfg->cache_outbox_dir);
	keycache_close(kc);
}

static void
check_cache(struct check *k)
{
	const char *path = k->c->cfg->cache_path;
	struct kc_record *recs = NULL;
	struct keycache *kc = NULL;
	char why[512] = "";
	size_t n = 0, active = 0;
	struct stat sb;
	int version = 0;

	if (k->c->cfg->cache_backend != CFG_BACKEND_SQLITE) {
		check_cache_remote(k);
		return;
	}
	if (stat(path, &sb) != 0) {
		if (errno == ENOENT)
			printf("cache: %s: not created yet (smime-milter creates it)\n", path);
		else
			problem(k, "cache: %s: %s", path, strerror(errno));
		return;
	}
	if (keycache_open("sqlite", path, &kc, why, sizeof(why)) != SM_OK) {
		problem(k, "cache: %s", why[0] ? why : path);
		return;
	}
	if (keycache_check(kc, &version, why, sizeof(why)) != SM_OK) {
		problem(k, "cache: %s: %s", path, why[0] ? why : "check failed");
	} else if (keycache_list(kc, -1, &recs, &n) != SM_OK) {
		problem(k, "cache: %s: cannot read the certificates", path);
	} else {
		for (size_t i = 0; i < n; i++)
			active += recs[i].status == KC_ST_ACTIVE;
		printf("cache: %s: schema %d, integrity ok, %zu certificate binding%s (%zu active)\n",
		    path, version, n, n == 1 ? "" : "s", active);
	}
	kc_records_free(recs, n);
	keycache_close(kc);
}

/* The metrics token must be readable, or the daemon does not start. */
static void
check_metrics(struct check *k)
{
	const struct config *cfg = k->c->cfg;
	char tok[METRICS_TOKEN_MAX], why[512] = "";

	if (cfg->metrics_listen == NULL)
		return;
	if (cfg->metrics_token_file &&
	    metrics_http_read_token(cfg->metrics_token_file, tok, sizeof(tok), why, sizeof(why)) != SM_OK) {
		problem(k, "metrics: token_file: %s; smime-milter will not start", why);
		return;
	}
	printf("metrics: %s%s\n", cfg->metrics_listen,
	    cfg->metrics_token_file ? " (bearer token required)" : " (no token: anyone who can connect reads it)");
}

int
cmd_check(struct ctl *c, int argc, char **argv)
{
	struct check k;
	int npos, rc;

	if ((rc = ctl_parse("check", argc, argv, NULL, NULL, 0, &npos)) != CTL_OK)
		return rc;
	/* Configuration problems print exactly as smime-milter -n does, and
	 * nothing else can be checked without it. */
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	memset(&k, 0, sizeof(k));
	k.c = c;
	printf("config: %s: ok\n", c->conf_file);
	check_user(&k);
	check_trust(&k);
	check_keys(&k);
	check_cache(&k);
	check_discovery(&k);
	check_metrics(&k);
	{
		char why[512];

		if (ctl_revocation_check(c, why, sizeof(why)) != CTL_OK)
			problem(&k, "%s", why);
	}
	if (k.problems) {
		fprintf(stderr, "smimectl: check: %d problem%s found\n", k.problems,
		    k.problems == 1 ? "" : "s");
		return CTL_ERR;
	}
	return CTL_OK;
}
