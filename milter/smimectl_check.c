/*
 * smimectl_check.c — `smimectl check`: is this installation healthy?
 *
 * The configuration (exactly the lines `smime-milter -n` prints), then the
 * checks of lib/preflight (user, trust anchors, keys_dir and its keys, the
 * cache on SQLite or PostgreSQL, the directories the daemon writes, key
 * discovery's files, the metrics token, the revocation store), which
 * `smime-milter -n` runs too. What is fine goes to stdout, one line per area; each problem is one
 * line on stderr; the exit status is 1 when there was any, so that cron
 * or a monitoring system can run it. Warnings (a PostgreSQL cache that
 * does not answer now) go to stderr too and do not change the status.
 */
#include <stdio.h>
#include <string.h>

#include "preflight.h"
#include "smimectl.h"

static void
report(void *arg, enum preflight_level level, const char *line)
{
	(void)arg;
	if (level == PREFLIGHT_PROBLEM)
		fprintf(stderr, "smimectl: check: %s\n", line);
	else if (level == PREFLIGHT_WARNING)
		fprintf(stderr, "smimectl: check: warning: %s\n", line);
	else
		printf("%s\n", line);
}

int
cmd_check(struct ctl *c, int argc, char **argv)
{
	int npos, rc, problems;

	if ((rc = ctl_parse("check", argc, argv, NULL, NULL, 0, &npos)) != CTL_OK)
		return rc;
	/* Configuration problems print exactly as smime-milter -n does, and
	 * nothing else can be checked without it. */
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	printf("config: %s: ok\n", c->conf_file);
	fflush(stdout);
	problems = preflight_run(c->cfg, report, NULL);
	if (problems) {
		fprintf(stderr, "smimectl: check: %d problem%s found\n", problems,
		    problems == 1 ? "" : "s");
		return CTL_ERR;
	}
	return CTL_OK;
}
