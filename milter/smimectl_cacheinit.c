/*
 * smimectl_cacheinit.c — `smimectl cache init`: create the key cache (or
 * migrate it to this program's schema) now, rather than at the daemon's
 * first start: the SQLite file, or the tables in a PostgreSQL database.
 * Fails when the database cannot be reached.
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
