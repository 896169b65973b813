/*
 * smimectl_cacheinit.c — `smimectl cache init`: create the key cache (or
 * migrate it to this program's schema) now, rather than at the daemon's
 * first start: the SQLite file, or the tables in a PostgreSQL database.
 * Fails when the database cannot be reached.
 *
 * `smimectl cache migrate --from BACKEND:TARGET`: copy every binding of
 * another cache (sqlite:PATH, postgresql:CONNINFO) into the configured
 * one without loss (keycache_copy): SQLite into PostgreSQL and back.
 */
#include <stdio.h>
#include <string.h>

#include "keycache.h"
#include "smimectl.h"

int
cmd_cache_init(struct ctl *c, int argc, char **argv)
{
	char *pos[1];
	char why[512] = "";
	int npos, rc, version = 0;

	if ((rc = ctl_parse("cache init", argc, argv, NULL, pos, 0, &npos)) != CTL_OK)
		return rc;
	if (ctl_open_cache(c, true) != CTL_OK)
		return CTL_ERR;
	if (keycache_check(c->kc, &version, why, sizeof(why)) != SM_OK) {
		ctl_err("cache init: %s: %s", config_cache_backend(c->cfg),
		    why[0] ? why : "check failed");
		return CTL_ERR;
	}
	if (c->cfg->cache_backend == CFG_BACKEND_SQLITE)
		printf("key cache ready: sqlite %s, schema %d\n", c->cfg->cache_path, version);
	else
		printf("key cache ready: %s, schema %d\n", config_cache_backend(c->cfg), version);
	return CTL_OK;
}

int
cmd_cache_migrate(struct ctl *c, int argc, char **argv)
{
	const char *from = NULL;
	const struct ctl_opt opts[] = { { "--from", &from, NULL }, { NULL, NULL, NULL } };
	struct keycache *src = NULL;
	char *pos[1], backend[16], why[512] = "";
	const char *colon;
	size_t n = 0;
	int npos, rc, version = 0;
	sm_status st;

	if ((rc = ctl_parse("cache migrate", argc, argv, opts, pos, 0, &npos)) != CTL_OK)
		return rc;
	if (from == NULL || (colon = strchr(from, ':')) == NULL ||
	    (size_t)(colon - from) >= sizeof(backend))
		return ctl_usage_error("cache migrate", "--from sqlite:PATH or postgresql:CONNINFO");
	snprintf(backend, sizeof(backend), "%.*s", (int)(colon - from), from);
	if (keycache_open(backend, colon + 1, &src, why, sizeof(why)) != SM_OK) {
		ctl_err("cache migrate: %s: %s", backend, why);
		return CTL_ERR;
	}
	if (keycache_check(src, &version, why, sizeof(why)) != SM_OK) {
		ctl_err("cache migrate: %s: %s", backend, why);
		keycache_close(src);
		return CTL_ERR;
	}
	if (ctl_open_cache(c, true) != CTL_OK) {
		keycache_close(src);
		return CTL_ERR;
	}
	st = keycache_copy(src, c->kc, &n);
	keycache_close(src);
	if (st != SM_OK) {
		ctl_err("cache migrate: %s", sm_strstatus(st));
		return CTL_ERR;
	}
	printf("copied %zu certificate binding%s from %s into %s\n", n, n == 1 ? "" : "s",
	    backend, config_cache_backend(c->cfg));
	return CTL_OK;
}
