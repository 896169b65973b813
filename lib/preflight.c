/*
 * preflight.c — see preflight.h. One function per area.
 */
#include "preflight.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "discover.h"
#include "keycache.h"
#include "keystore.h"
#include "metrics_http.h"
#include "path.h"
#include "pgprobe.h"
#include "pidfile.h"
#include "revstore.h"
#include "trust.h"
#include "x509util.h"

struct pf {
	const struct config *cfg;
	preflight_report_fn report;
	void *arg;
	int problems;
	bool have_user;	      /* the daemon changes to cfg->user */
	struct passwd pw;     /* valid when have_user */
	char pwbuf[4096];
	gid_t groups[64];
	int ngroups;
};

static void pf_say(struct pf *k, enum preflight_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
pf_say(struct pf *k, enum preflight_level level, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (level == PREFLIGHT_PROBLEM)
		k->problems++;
	if (buf_cstr(&b) == NULL) {
		k->report(k->arg, level, "out of memory");
		return;
	}
	/* One problem, one line (SQLite's integrity report has several). */
	{
		struct buf line = BUF_INIT;

		for (const char *p = buf_cstr(&b); *p; p++) {
			if (*p == '\n' && p[1] != '\0')
				buf_printf(&line, "; ");
			else if (*p != '\n' && *p != '\r')
				buf_printf(&line, "%c", *p);
		}
		k->report(k->arg, level, buf_cstr(&line) ? buf_cstr(&line) : "");
		buf_free(&line);
	}
	buf_free(&b);
}
#define PROBLEM(k, ...) pf_say((k), PREFLIGHT_PROBLEM, __VA_ARGS__)
#define WARNING(k, ...) pf_say((k), PREFLIGHT_WARNING, __VA_ARGS__)
#define OK(k, ...) pf_say((k), PREFLIGHT_OK, __VA_ARGS__)

/* May the daemon's user do need (4 read, 2 write, 1 search) on sb? */
static bool
user_may(const struct pf *k, const struct stat *sb, mode_t need)
{
	if (!k->have_user) {
		return true; /* judged by access() where it matters */
	}
	if (k->pw.pw_uid == 0)
		return true;
	if (sb->st_uid == k->pw.pw_uid)
		return ((sb->st_mode >> 6) & need) == need;
	for (int i = 0; i < k->ngroups; i++)
		if (sb->st_gid == k->groups[i])
			return ((sb->st_mode >> 3) & need) == need;
	return (sb->st_mode & need) == need;
}

/* Can the daemon write in (and search) dir? Without a user: access(). */
static bool
may_write_dir(const struct pf *k, const char *dir, const struct stat *sb)
{
	if (!k->have_user)
		return access(dir, W_OK | X_OK) == 0;
	return user_may(k, sb, 03);
}

static const char *
who(const struct pf *k)
{
	return k->have_user ? k->pw.pw_name : "the user running it";
}

uid_t
preflight_daemon_uid(const struct config *cfg)
{
	struct stat sb;

	if ((cfg->user == NULL || cfg->user[0] == '\0') && geteuid() == 0 &&
	    stat(cfg->keys_dir, &sb) == 0)
		return sb.st_uid;
	return config_daemon_uid(cfg);
}

static void
check_user(struct pf *k)
{
	const struct config *cfg = k->cfg;
	struct passwd *pw = NULL;

	if (cfg->user == NULL || cfg->user[0] == '\0')
		return;
	if (getpwnam_r(cfg->user, &k->pw, k->pwbuf, sizeof(k->pwbuf), &pw) != 0 || pw == NULL) {
		PROBLEM(k, "user \"%s\" does not exist: smime-milter will not start", cfg->user);
		return;
	}
	if (k->pw.pw_uid == geteuid() && geteuid() != 0)
		return; /* the daemon runs as whoever runs this */
	k->have_user = true;
	k->ngroups = (int)(sizeof(k->groups) / sizeof(k->groups[0]));
	if (getgrouplist(k->pw.pw_name, k->pw.pw_gid, k->groups, &k->ngroups) < 0) {
		k->groups[0] = k->pw.pw_gid;
		k->ngroups = 1;
	}
}

static void
check_trust(struct pf *k)
{
	const struct config *cfg = k->cfg;
	struct trust *t = NULL;
	char why[512] = "";

	if (trust_load(cfg->trust_ca_file, NULL, &t, why, sizeof(why)) != SM_OK) {
		PROBLEM(k, "trust: %s: %s", cfg->trust_ca_file, why);
		return;
	}
	if (trust_count(t) == 0)
		PROBLEM(k, "trust: %s: no trust anchors: nothing can be harvested",
		    cfg->trust_ca_file);
	else
		OK(k, "trust: %s: %zu anchor%s", cfg->trust_ca_file, trust_count(t),
		    trust_count(t) == 1 ? "" : "s");
	trust_free(t);
}

/* Every *.pem of keys_dir: can the daemon's user read it on a reload?
 * (Mode, owner and links are the key store's own rules.) */
static void
check_key_files(struct pf *k, const char *dir)
{
	struct dirent *de;
	DIR *d;

	if (!k->have_user || (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char path[4096];
		struct stat sb;

		if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		if (!user_may(k, &sb, 04))
			PROBLEM(k,
			    "keys: %s: owned by uid %ld, so smime-milter (user %s) cannot read it "
			    "on a reload; chown %s it",
			    path, (long)sb.st_uid, k->pw.pw_name, k->pw.pw_name);
	}
	closedir(d);
}

/* One address or "@domain": does it have a signing key that stays valid? */
static void
check_signer(struct pf *k, const struct keystore *ks, const char *name)
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
			PROBLEM(k, "keys: %s: no valid key: the newest, %s, expired on %s", name,
			    in->path, date);
			break;
		case X509U_NOT_YET_VALID:
			x509u_date(in->not_before, date, sizeof(date));
			PROBLEM(k, "keys: %s: no valid key yet: %s is valid from %s", name, in->path,
			    date);
			break;
		default:
			PROBLEM(k, "keys: %s: no key that may sign (key usage of %s)", name,
			    in->path);
			break;
		}
		return;
	}
	in = keystore_info_at(ks, (size_t)i);
	na = in->not_after;
	x509u_date(na, date, sizeof(date));
	if (k->cfg->warn_expiry_days > 0 &&
	    na - now < (time_t)k->cfg->warn_expiry_days * 86400) {
		/* A renewed key already in place takes over: fine. */
		next = keystore_pick(ks, name, na + 1, NULL);
		if (next < 0) {
			PROBLEM(k,
			    "keys: %s: the signing key %s expires on %s, in %ld day%s; import the "
			    "renewed key",
			    name, in->path, date, (long)((na - now) / 86400),
			    (na - now) / 86400 == 1 ? "" : "s");
			return;
		}
	}
	OK(k, "keys: %s: signs with %s until %s", name, in->path, date);
}

/* Every address and domain once, in the order of the files. */
static void
check_signers(struct pf *k, const struct keystore *ks)
{
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
			char name[300];
			bool seen = false;

			snprintf(name, sizeof(name), "@%s", in->domains[d]);
			for (size_t p = 0; p < i && !seen; p++)
				seen = keystore_info_covers(keystore_info_at(ks, p), name);
			if (!seen)
				check_signer(k, ks, name);
		}
	}
}

static void
check_keys(struct pf *k)
{
	const char *dir = k->cfg->keys_dir;
	struct keystore *ks = NULL;
	char why[1024] = "";
	struct stat sb;

	if (k->have_user && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && !user_may(k, &sb, 05))
		PROBLEM(k, "keys: %s: smime-milter (user %s) cannot read this directory on a reload",
		    dir, k->pw.pw_name);
	if (keystore_load_for(dir, preflight_daemon_uid(k->cfg), &ks, why, sizeof(why)) != SM_OK) {
		PROBLEM(k, "keys: %s", why);
		PROBLEM(k, "keys: %s: smime-milter refuses to load its keys until this is fixed",
		    dir);
		return;
	}
	for (size_t i = 0; i < keystore_problem_count(ks); i++)
		PROBLEM(k, "keys: %s; smime-milter skips this file", keystore_problem_at(ks, i));
	check_key_files(k, dir);
	OK(k, "keys: %s: %zu key%s", dir, keystore_count(ks), keystore_count(ks) == 1 ? "" : "s");
	check_signers(k, ks);
	keystore_free(ks);
}

/* A directory the daemon creates (one level) when missing, and then
 * writes in as its user (user_writes) or only at start. */
static bool
check_dir(struct pf *k, const char *area, const char *dir, bool user_writes)
{
	char parent[4096];
	struct stat sb;

	if (stat(dir, &sb) != 0) {
		if (errno == ENOENT && stat(path_dirname(dir, parent, sizeof(parent)), &sb) == 0 &&
		    S_ISDIR(sb.st_mode))
			return true; /* smime-milter creates it */
		PROBLEM(k, "%s: directory %s: %s%s", area, dir, strerror(errno),
		    errno == ENOENT ? " (smime-milter creates one level, not its parents)" : "");
		return false;
	}
	if (!S_ISDIR(sb.st_mode)) {
		PROBLEM(k, "%s: %s: not a directory", area, dir);
		return false;
	}
	if (user_writes && !may_write_dir(k, dir, &sb)) {
		PROBLEM(k, "%s: directory %s: smime-milter (%s) cannot write in it; chown %s it",
		    area, dir, who(k), k->have_user ? k->pw.pw_name : "that user");
		return false;
	}
	return true;
}

static void
check_cache_writable(struct pf *k, const char *path, const struct stat *sb)
{
	char dir[4096];
	bool ok = k->have_user ? user_may(k, sb, 06) : access(path, R_OK | W_OK) == 0;

	if (!ok)
		PROBLEM(k,
		    "cache: %s: smime-milter (%s) cannot write it, so every harvest would fail "
		    "(\"attempt to write a readonly database\"); chown %s it",
		    path, who(k), k->have_user ? k->pw.pw_name : "that user");
	check_dir(k, "cache", path_dirname(path, dir, sizeof(dir)), true);
}

/* The database did not answer the key cache: an outage (the daemon starts,
 * answers from its local copy and tempfails the rest, so an ExecReload
 * guard must not refuse a reload for it), or a login or database the
 * server refuses, which never passes by itself. */
static void
check_cache_unreachable(struct pf *k, const struct kc_health *h)
{
	char why[512];

	switch (pgprobe_connect(config_cache_target(k->cfg), why, sizeof(why))) {
	case PGPROBE_REFUSED:
		PROBLEM(k, "cache: %s: the database server refuses the configured conninfo: %s",
		    h->backend, why);
		break;
	case PGPROBE_UNREACHABLE:
		WARNING(k,
		    "cache: %s: database unreachable: %s (smime-milter starts anyway: it "
		    "answers from its local copy, tempfails the rest and reconnects)",
		    h->backend, why);
		break;
	case PGPROBE_OK: /* answers now, but did not let the cache in */
		PROBLEM(k, "cache: %s: database unreachable: %s", h->backend, h->err);
		break;
	}
}

/* A cache on a database server: backend, schema, connectivity, how far
 * the local copy may be behind, and the outbox. */
static void
check_cache_remote(struct pf *k)
{
	const struct config *cfg = k->cfg;
	struct keycache *kc = NULL;
	struct kc_health h;
	char why[512] = "";
	size_t queued = keycache_outbox_count(cfg->cache_outbox_dir);

	if (keycache_open(config_cache_backend(cfg), config_cache_target(cfg), &kc, why,
		sizeof(why)) != SM_OK) {
		PROBLEM(k, "cache: %s: %s", config_cache_backend(cfg), why);
		return;
	}
	keycache_health(kc, &h);
	if (!h.connected)
		check_cache_unreachable(k, &h);
	else
		OK(k, "cache: %s: schema %d, connected, local copy lag %llds", h.backend,
		    h.schema_version, h.lag);
	if (queued > 0)
		OK(k, "cache: outbox %s: %zu write%s waiting for the database",
		    cfg->cache_outbox_dir, queued, queued == 1 ? "" : "s");
	else
		OK(k, "cache: outbox %s: empty", cfg->cache_outbox_dir);
	keycache_close(kc);
}

static void
check_cache(struct pf *k)
{
	const char *path = k->cfg->cache_path;
	struct kc_record *recs = NULL;
	struct keycache *kc = NULL;
	char why[512] = "", dir[4096];
	size_t n = 0, active = 0;
	struct stat sb;
	int version = 0;

	if (k->cfg->cache_backend != CFG_BACKEND_SQLITE) {
		check_cache_remote(k);
		return;
	}
	if (stat(path, &sb) != 0) {
		if (errno == ENOENT) {
			if (check_dir(k, "cache", path_dirname(path, dir, sizeof(dir)), true))
				OK(k, "cache: %s: not created yet (smime-milter creates it)", path);
		} else {
			PROBLEM(k, "cache: %s: %s", path, strerror(errno));
		}
		return;
	}
	if (keycache_open("sqlite", path, &kc, why, sizeof(why)) != SM_OK) {
		PROBLEM(k, "cache: %s", why[0] ? why : path);
		return;
	}
	if (keycache_check(kc, &version, why, sizeof(why)) != SM_OK) {
		PROBLEM(k, "cache: %s: %s", path, why[0] ? why : "check failed");
	} else if (keycache_list(kc, -1, &recs, &n) != SM_OK) {
		PROBLEM(k, "cache: %s: cannot read the certificates", path);
	} else {
		for (size_t i = 0; i < n; i++)
			active += recs[i].status == KC_ST_ACTIVE;
		OK(k, "cache: %s: schema %d, integrity ok, %zu certificate binding%s (%zu active)",
		    path, version, n, n == 1 ? "" : "s", active);
	}
	kc_records_free(recs, n);
	keycache_close(kc);
	check_cache_writable(k, path, &sb);
}

/* Spool (written by the user), pid file (opened at start), socket. */
static void
check_run_dirs(struct pf *k)
{
	const struct config *cfg = k->cfg;
	char dir[4096], why[1024] = "";
	const char *sock = cfg->socket;
	struct stat sb;

	check_dir(k, "spool", cfg->spool_dir, true);
	path_dirname(cfg->pid_file, dir, sizeof(dir));
	if (check_dir(k, "pid_file", dir, false) && stat(dir, &sb) == 0 &&
	    pidfile_check(cfg->pid_file, why, sizeof(why)) != SM_OK)
		PROBLEM(k, "%s", why);
	if (strncmp(sock, "unix:", 5) == 0 || strncmp(sock, "local:", 6) == 0)
		check_dir(k, "socket", path_dirname(strchr(sock, ':') + 1, dir, sizeof(dir)), false);
}

/* Key discovery: bind passwords and the DNSSEC trust anchor load, as the
 * daemon will load them at start. */
static void
check_discovery(struct pf *k)
{
	const struct config *cfg = k->cfg;
	struct discover *d = NULL;
	char why[512] = "";

	if (discover_new(cfg, &d, why, sizeof(why)) != SM_OK) {
		PROBLEM(k, "%s: smime-milter will not start", why);
		return;
	}
	if (d != NULL)
		OK(k, "discovery: %zu director%s, smimea %s: ok", cfg->n_discovery_ldap,
		    cfg->n_discovery_ldap == 1 ? "y" : "ies", cfg->smimea_enabled ? "on" : "off");
	discover_free(d);
}

/* The metrics token must be readable, or the daemon does not start. */
static void
check_metrics(struct pf *k)
{
	const struct config *cfg = k->cfg;
	char tok[METRICS_TOKEN_MAX], why[512] = "";

	if (cfg->metrics_listen == NULL)
		return;
	if (cfg->metrics_token_file &&
	    metrics_http_read_token(cfg->metrics_token_file, tok, sizeof(tok), why,
		sizeof(why)) != SM_OK) {
		PROBLEM(k, "metrics: token_file: %s; smime-milter will not start", why);
		return;
	}
	OK(k, "metrics: %s%s", cfg->metrics_listen,
	    cfg->metrics_token_file ? " (bearer token required)" :
	    " (no token: anyone who can connect reads it)");
}

/* The revocation store the worker keeps: readable, and how current. */
static void
check_revocation(struct pf *k)
{
	const struct config *cfg = k->cfg;
	const char *mode = config_rev_check_name(cfg->revocation.check);
	struct revstore *rs = NULL;
	struct rev_health h;
	char why[512] = "", *path;
	struct stat sb;

	if ((path = config_revocation_store(cfg)) == NULL) {
		PROBLEM(k, "revocation: out of memory");
		return;
	}
	if (stat(path, &sb) != 0) {
		OK(k, "revocation: %s: not created yet (check = %s)", path, mode);
	} else if (revstore_open(path, &rs, why, sizeof(why)) != SM_OK) {
		PROBLEM(k, "revocation: the store cannot be opened: %s", why);
	} else if (revstore_health(rs, clock_now(), &h) != SM_OK) {
		PROBLEM(k, "revocation: %s: cannot be read", path);
	} else {
		OK(k, "revocation: %s: check = %s, %zu certificate%s, %zu without a current "
		      "answer, %zu with fetch errors%s%s",
		    path, mode, h.rows, h.rows == 1 ? "" : "s", h.stale, h.errors,
		    h.last_error[0] ? "; latest: " : "", h.last_error);
	}
	revstore_close(rs);
	free(path);
}

int
preflight_run(const struct config *cfg, preflight_report_fn report, void *arg)
{
	struct pf *k = calloc(1, sizeof(*k));
	int n;

	if (k == NULL) {
		report(arg, PREFLIGHT_PROBLEM, "out of memory");
		return 1;
	}
	k->cfg = cfg;
	k->report = report;
	k->arg = arg;
	check_user(k);
	check_trust(k);
	check_keys(k);
	check_cache(k);
	check_run_dirs(k);
	check_discovery(k);
	check_metrics(k);
	check_revocation(k);
	n = k->problems;
	free(k);
	return n;
}
