/*
 * smimectl_observe.c — `smimectl stats` (the running daemon's counters,
 * read from its metrics endpoint) and `smimectl refused` (the refusal log
 * in the key cache).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "metrics.h"
#include "metrics_http.h"
#include "refusals.h"
#include "smimectl.h"

/* ---- stats ---- */

static void
stats_json(const struct metrics_point *v, size_t n)
{
	struct json j;

	json_init(&j, stdout);
	json_begin(&j, '[');
	for (size_t i = 0; i < n; i++) {
		json_begin(&j, '{');
		json_key(&j, "name");
		json_str(&j, v[i].name);
		json_key(&j, "labels");
		json_begin(&j, '{');
		for (size_t l = 0; l < v[i].nlabels; l++) {
			json_key(&j, v[i].labels[l].name);
			json_str(&j, v[i].labels[l].value);
		}
		json_end(&j, '}');
		json_key(&j, "value");
		json_num(&j, v[i].value);
		json_end(&j, '}');
	}
	json_end(&j, ']');
	json_finish(&j);
}

/* The table leaves out histogram buckets: their _count and _sum say it. */
static int
stats_table(const struct metrics_point *v, size_t n)
{
	static const char *const hdr[] = { "SERIES", "VALUE" };
	struct table t;
	int rc;

	table_init(&t, 2, hdr);
	for (size_t i = 0; i < n; i++) {
		struct buf s = BUF_INIT;
		char val[64];
		const char *row[2];
		size_t nl = strlen(v[i].name);

		if (nl > 7 && strcmp(v[i].name + nl - 7, "_bucket") == 0)
			continue;
		buf_append_str(&s, v[i].name);
		for (size_t l = 0; l < v[i].nlabels; l++)
			buf_printf(&s, "%s%s=%s", l ? "," : "{", v[i].labels[l].name,
			    v[i].labels[l].value);
		if (v[i].nlabels)
			buf_append_char(&s, '}');
		snprintf(val, sizeof(val), "%.15g", v[i].value);
		row[0] = buf_cstr(&s);
		row[1] = val;
		table_row(&t, row);
		buf_free(&s);
	}
	rc = table_print(&t, stdout);
	table_free(&t);
	return rc;
}

int
cmd_stats(struct ctl *c, int argc, char **argv)
{
	bool json = false;
	const struct ctl_opt opts[] = { { "--json", NULL, &json }, { NULL, NULL, NULL } };
	char token[METRICS_TOKEN_MAX] = "", err[512] = "";
	struct buf body = BUF_INIT;
	struct metrics_point *v = NULL;
	size_t n = 0, bad = 0;
	int npos, rc;

	if ((rc = ctl_parse("stats", argc, argv, opts, NULL, 0, &npos)) != CTL_OK)
		return rc;
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	if (c->cfg->metrics_listen == NULL) {
		ctl_err("stats: metrics.listen is not set in %s: the daemon serves no counters",
		    c->conf_file);
		return CTL_ERR;
	}
	if (c->cfg->metrics_token_file &&
	    metrics_http_read_token(c->cfg->metrics_token_file, token, sizeof(token), err,
		sizeof(err)) != SM_OK) {
		ctl_err("stats: metrics.token_file: %s", err);
		return CTL_ERR;
	}
	if (metrics_http_fetch(c->cfg->metrics_listen, token, &body, err, sizeof(err)) != SM_OK) {
		ctl_err("stats: %s: %s", c->cfg->metrics_listen, err);
		buf_free(&body);
		return CTL_ERR;
	}
	if (metrics_parse(body.data ? (const char *)body.data : "", body.len, &v, &n, &bad) != SM_OK) {
		ctl_err("stats: %s: unreadable answer (line %zu)", c->cfg->metrics_listen, bad);
		buf_free(&body);
		return CTL_ERR;
	}
	buf_free(&body);
	if (json)
		stats_json(v, n);
	else
		rc = stats_table(v, n);
	metrics_points_free(v, n);
	return rc;
}

/* ---- refused ---- */

/* "24h", "7d", "30m", "90s" or plain seconds. */
static int
parse_since(const char *s, time_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || v < 0 || errno != 0)
		return -1;
	switch (*end) {
	case '\0': case 's': break;
	case 'm': v *= 60; break;
	case 'h': v *= 3600; break;
	case 'd': v *= 86400; break;
	case 'w': v *= 7 * 86400; break;
	default: return -1;
	}
	if (*end && end[1] != '\0')
		return -1;
	*out = (time_t)v;
	return 0;
}

static void
refused_json(const struct refusal_row *v, size_t n)
{
	struct json j;

	json_init(&j, stdout);
	json_begin(&j, '[');
	for (size_t i = 0; i < n; i++) {
		json_begin(&j, '{');
		json_key(&j, "recipient");
		json_str(&j, v[i].address);
		json_key(&j, "count");
		json_int(&j, (long long)v[i].count);
		json_key(&j, "first");
		json_time(&j, v[i].first);
		json_key(&j, "last");
		json_time(&j, v[i].last);
		json_key(&j, "reason");
		json_str(&j, v[i].reason);
		json_key(&j, "senders");
		json_strv(&j, v[i].senders, v[i].nsenders);
		json_end(&j, '}');
	}
	json_end(&j, ']');
	json_finish(&j);
}

static int
refused_table(const struct refusal_row *v, size_t n)
{
	static const char *const hdr[] = { "RECIPIENT", "REFUSED", "LAST", "REASON", "SENDERS" };
	struct table t;
	int rc;

	table_init(&t, 5, hdr);
	for (size_t i = 0; i < n; i++) {
		struct buf s = BUF_INIT;
		char count[32], last[32];
		const char *row[5];

		for (size_t k = 0; k < v[i].nsenders; k++)
			buf_printf(&s, "%s%s", k ? ", " : "", v[i].senders[k][0] ? v[i].senders[k] : "<>");
		snprintf(count, sizeof(count), "%lu", v[i].count);
		row[0] = v[i].address;
		row[1] = count;
		row[2] = ctl_iso(v[i].last, last);
		row[3] = v[i].reason;
		row[4] = buf_cstr(&s);
		table_row(&t, row);
		buf_free(&s);
	}
	rc = table_print(&t, stdout);
	table_free(&t);
	return rc;
}

int
cmd_refused(struct ctl *c, int argc, char **argv)
{
	bool json = false;
	const char *since_s = "24h";
	const struct ctl_opt opts[] = { { "--json", NULL, &json }, { "--since", &since_s, NULL },
		{ NULL, NULL, NULL } };
	struct refusals *rf = NULL;
	struct refusal_row *v = NULL;
	char err[512] = "";
	time_t since;
	struct stat sb;
	size_t n = 0;
	int npos, rc;

	if ((rc = ctl_parse("refused", argc, argv, opts, NULL, 0, &npos)) != CTL_OK)
		return rc;
	if (parse_since(since_s, &since) != 0)
		return ctl_usage_error("refused", "--since: expected a duration such as 24h, 7d, 30m; got \"%s\"",
		    since_s);
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	/* No cache yet: nothing was refused. Never create one here. */
	if (stat(c->cfg->cache_path, &sb) == 0) {
		if (refusals_open("sqlite", c->cfg->cache_path, &rf, err, sizeof(err)) != SM_OK ||
		    refusals_report(rf, clock_now() - since, &v, &n) != SM_OK) {
			ctl_err("refused: %s", err[0] ? err : "cannot read the refusal log");
			refusals_close(rf);
			return CTL_ERR;
		}
		refusals_close(rf);
	}
	if (json)
		refused_json(v, n);
	else
		rc = refused_table(v, n);
	refusal_rows_free(v, n);
	return rc;
}
