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
#include "smimectl.h"
#include "trust.h"
#include "x509util.h"

/* A signing key expiring within this many days is a problem. */
#define CHECK_WARN_DAYS 30

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

/* Every *.pem of keys_dir (the names keystore_load() reads): can the
 * daemon's user read it on a reload? (Mode, owner and links are the key
 * store's own rules: see check_keys.) */
static void
check_key_files(struct check *k, const char *dir)
{
	struct dirent *de;
	DIR *d;

	if (k->pw == NULL || (d = opendir(dir)) == NULL)
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
		if (!user_may(k->pw, &sb, false))
			problem(k,
			    "keys: %s: owned by uid %ld, so smime-milter (user %s) cannot read it "
			    "on a reload; chown %s it",
			    path, (long)sb.st_uid, k->pw->pw_name, k->pw->pw_name);
	}
	closedir(d);
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
	if (na - now < (time_t)CHECK_WARN_DAYS * 86400) {
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

	if (k->pw && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && !user_may(k->pw, &sb, true))
		problem(k, "keys: %s: smime-milter (user %s) cannot read this directory on a reload",
		    dir, k->pw->pw_name);
	if (keystore_load_for(dir, ctl_daemon_uid(k->c), &ks, why, sizeof(why)) != SM_OK) {
		problem(k, "keys: %s", why);
		problem(k, "keys: %s: smime-milter refuses to load its keys until this is fixed",
		    dir);
		return;
	}
	for (size_t i = 0; i < keystore_problem_count(ks); i++)
		problem(k, "keys: %s; smime-milter skips this file", keystore_problem_at(ks, i));
	check_key_files(k, dir);
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
	if (k.problems) {
		fprintf(stderr, "smimectl: check: %d problem%s found\n", k.problems,
		    k.problems == 1 ? "" : "s");
		return CTL_ERR;
	}
	return CTL_OK;
}
