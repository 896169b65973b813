/*
 * smimectl — the administrator's tool. Exit status: 0 success, 1 a user
 * error (one line on stderr), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static int
usage(void)
{
	fprintf(stderr,
	    "usage: smimectl [-c FILE] check\n"
	    "  -c FILE   configuration (default " CONFIG_DEFAULT_FILE ")\n");
	return 2;
}

/* Validate the configuration exactly as smime-milter -n does. */
static int
cmd_check(const char *file)
{
	struct config *cfg = NULL;
	struct config_errors errs = { NULL, 0 };
	sm_status st = config_load(file, &cfg, &errs);

	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (st != SM_OK && errs.n == 0)
		fprintf(stderr, "%s: %s\n", file, sm_strstatus(st));
	config_errors_free(&errs);
	if (cfg == NULL)
		return 1;
	config_unref(cfg);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *file = CONFIG_DEFAULT_FILE;
	int opt;

	while ((opt = getopt(argc, argv, "+c:hV")) != -1) {
		switch (opt) {
		case 'c': file = optarg; break;
		case 'V': printf("smimectl %s\n", SMIME_VERSION); return 0;
		case 'h':
		default: return usage();
		}
	}
	if (optind >= argc)
		return usage();
	if (strcmp(argv[optind], "check") == 0 && optind + 1 == argc)
		return cmd_check(file);
	return usage();
}
