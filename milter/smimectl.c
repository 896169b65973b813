/*
 * smimectl — the administrator's tool: the key cache of partners'
 * certificates, our own keys, message inspection and a health check.
 *
 * Exit status: 0 success, 1 a user error (one line on stderr), 2 usage.
 * This file holds the command line; the commands live in smimectl_cert.c,
 * smimectl_key.c, smimectl_inspect.c and smimectl_check.c, the shared
 * helpers in smimectl_util.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smimectl.h"

void
ctl_usage(FILE *f)
{
	fprintf(f,
	    "usage: smimectl [-c FILE] cert list [--expiring DAYS] [--json]\n"
	    "       smimectl [-c FILE] cert show ADDRESS|FINGERPRINT [--json]\n"
	    "       smimectl [-c FILE] cert import [--force] FILE...\n"
	    "       smimectl [-c FILE] cert remove ADDRESS|FINGERPRINT\n"
	    "       smimectl [-c FILE] cert export ADDRESS\n"
	    "       smimectl [-c FILE] key list [--json]\n"
	    "       smimectl [-c FILE] key import FILE.p12 [--password-file F]\n"
	    "       smimectl [-c FILE] key export ADDRESS [--password-file F] [--legacy] [--out FILE]\n"
	    "       smimectl [-c FILE] inspect FILE.eml [--json]\n"
	    "       smimectl [-c FILE] revocation refresh [ADDRESS]\n"
	    "       smimectl [-c FILE] check\n"
	    "       smimectl [-c FILE] stats [--json]\n"
	    "       smimectl [-c FILE] refused [--since 24h] [--json]\n"
	    "       smimectl [-c FILE] cache init\n"
	    "       smimectl [-c FILE] cache migrate --from sqlite:PATH|postgresql:CONNINFO\n"
	    "       smimectl [-c FILE] cache backup FILE\n"
	    "       smimectl [-c FILE] cache restore FILE\n"
	    "       smimectl [-c FILE] cache export --json\n"
	    "       smimectl [-c FILE] cache import --json FILE\n"
	    "       smimectl -V | -h\n"
	    "  -c FILE   configuration (default " CONFIG_DEFAULT_FILE ")\n"
	    "  -V        print the version\n"
	    "  -h        this help\n");
}

int
ctl_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "smimectl: %s%s", cmd ? cmd : "", cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ctl_usage(stderr);
	return CTL_USAGE;
}

void
ctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("smimectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const struct ctl_opt *
find_opt(const struct ctl_opt *opts, const char *name, size_t len)
{
	for (; opts && opts->name; opts++)
		if (strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
			return opts;
	return NULL;
}

int
ctl_parse(const char *cmd, int argc, char **argv, const struct ctl_opt *opts,
    char **pos, int maxpos, int *npos)
{
	bool only_pos = false;

	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const struct ctl_opt *o;
		const char *eq;

		if (!only_pos && strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (!only_pos && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0))
			return CTL_HELP;
		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (*npos >= maxpos)
				return ctl_usage_error(cmd, "unexpected argument \"%s\"", a);
			pos[(*npos)++] = argv[i];
			continue;
		}
		eq = strchr(a, '=');
		o = find_opt(opts, a, eq ? (size_t)(eq - a) : strlen(a));
		if (o == NULL)
			return ctl_usage_error(cmd, "unknown option \"%s\"", a);
		if (o->val) {
			if (eq)
				*o->val = eq + 1;
			else if (i + 1 < argc)
				*o->val = argv[++i];
			else
				return ctl_usage_error(cmd, "%s needs a value", o->name);
		} else {
			if (eq)
				return ctl_usage_error(cmd, "%s takes no value", o->name);
			*o->flag = true;
		}
	}
	return CTL_OK;
}

int
main(int argc, char **argv)
{
	struct ctl c;
	const char *cmd;
	int opt, rc;

	memset(&c, 0, sizeof(c));
	c.conf_file = CONFIG_DEFAULT_FILE;
	opterr = 0;
	while ((opt = getopt(argc, argv, "+:c:hV")) != -1) {
		switch (opt) {
		case 'c': c.conf_file = optarg; break;
		case 'V': printf("smimectl %s\n", SMIME_VERSION); return CTL_OK;
		case 'h': ctl_usage(stdout); return CTL_OK;
		case ':':
		case '?':
		default:
			if (optopt == 'c')
				return ctl_usage_error(NULL, "-c needs a file");
			return ctl_usage_error(NULL, "unknown option \"-%c\"", optopt);
		}
	}
	if (optind >= argc)
		return ctl_usage_error(NULL, "no command given");
	cmd = argv[optind++];
	argc -= optind;
	argv += optind;
	if (strcmp(cmd, "cert") == 0)
		rc = cmd_cert(&c, argc, argv);
	else if (strcmp(cmd, "key") == 0)
		rc = cmd_key(&c, argc, argv);
	else if (strcmp(cmd, "inspect") == 0)
		rc = cmd_inspect(&c, argc, argv);
	else if (strcmp(cmd, "revocation") == 0)
		rc = cmd_revocation(&c, argc, argv);
	else if (strcmp(cmd, "check") == 0)
		rc = cmd_check(&c, argc, argv);
	else if (strcmp(cmd, "stats") == 0)
		rc = cmd_stats(&c, argc, argv);
	else if (strcmp(cmd, "refused") == 0)
		rc = cmd_refused(&c, argc, argv);
	else if (strcmp(cmd, "cache") == 0)
		rc = cmd_cache(&c, argc, argv);
	else
		rc = ctl_usage_error(NULL, "unknown command \"%s\"", cmd);
	if (rc == CTL_HELP) {
		ctl_usage(stdout);
		rc = CTL_OK;
	}
	ctl_free(&c);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err("cannot write to standard output");
		if (rc == CTL_OK)
			rc = CTL_ERR;
	}
	return rc;
}
