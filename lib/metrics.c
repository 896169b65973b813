/*
 * metrics.c — lock-free counters, histograms and the Prometheus text format.
 */
#include "metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef _Atomic uint64_t counter_t;

static counter_t c_messages[METRICS_NDIR][METRICS_NOUTCOME];
static counter_t c_refusals[METRICS_NREFUSAL];
static counter_t c_rcpt_tempfails[METRICS_NRCPT_TEMPFAIL];
static counter_t c_harvests[METRICS_NHARVEST];
static counter_t c_inbound[METRICS_NSMIME];
static counter_t c_decrypt[METRICS_NDMODE][METRICS_NDRESULT];
static counter_t c_reloads[2];
static counter_t c_discovery[METRICS_NDSOURCE][METRICS_NDISC_RESULT];
/* Histograms: per-bucket counts (not cumulative; summed when formatted),
 * the +Inf bucket last, and the sum in nanoseconds. */
static counter_t h_bucket[METRICS_NSTAGE][METRICS_NBUCKET + 1];
static counter_t h_sum_ns[METRICS_NSTAGE];

static const double bucket_le[METRICS_NBUCKET] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5
};

static const char *const dir_names[] = { "outbound", "inbound", NULL };
static const char *const outcome_names[] = { "signed", "encrypted", "signed_encrypted",
	"unchanged", "refused", "tempfailed", "passed_on_error", "decrypted", NULL };
static const char *const refusal_names[] = { "no_certificate", "expired", "not_yet_valid",
	"revoked", "untrusted", "not_usable", "removed", "unauthorised_sender", NULL };
static const char *const rcpt_tempfail_names[] = { "cache_unavailable", "lookup_failed", NULL };
static const char *const harvest_names[] = { "harvested", "superseded", "seen", "history",
	"refused_signature", "refused_untrusted", "refused_validity", "refused_address",
	"refused_usage", "refused_weak", "refused_other", NULL };
static const char *const smime_names[] = { "none", "pass", "fail", "policy", "permerror",
	"temperror", "neutral", NULL };
static const char *const dmode_names[] = { "harvest", "deliver", NULL };
static const char *const dresult_names[] = { "decrypted", "no_key", "failed", NULL };
static const char *const reload_names[] = { "success", "failure", NULL };
static const char *const dsource_names[] = { "ldap", "smimea", NULL };
static const char *const ddresult_names[] = { "found", "unusable", "not_found", "error",
	"timeout", NULL };
static const char *const stage_names[] = { "rcpt_lookup", "sign", "encrypt", "verify",
	"decrypt", "eom", NULL };

/* A counter family: one or two labels; counters laid out row-major. */
struct family {
	const char *name, *help;
	const char *label[2];
	const char *const *vals[2];
	size_t n[2];
	counter_t *c;
};

static const struct family families[] = {
	{ "smime_milter_messages_total", "Messages by direction and what was done to them.",
	    { "direction", "outcome" }, { dir_names, outcome_names },
	    { METRICS_NDIR, METRICS_NOUTCOME }, &c_messages[0][0] },
	{ "smime_milter_rcpt_refusals_total",
	    "Recipients refused (RCPT or end of data) by the reason a certificate was unusable.",
	    { "reason", NULL }, { refusal_names, NULL }, { METRICS_NREFUSAL, 1 }, c_refusals },
	{ "smime_milter_rcpt_tempfails_total",
	    "Recipients tempfailed (451) at RCPT by a failure of ours: key cache down, look-up failed.",
	    { "reason", NULL }, { rcpt_tempfail_names, NULL }, { METRICS_NRCPT_TEMPFAIL, 1 },
	    c_rcpt_tempfails },
	{ "smime_milter_harvests_total", "Harvest decisions on verified inbound signatures.",
	    { "result", NULL }, { harvest_names, NULL }, { METRICS_NHARVEST, 1 }, c_harvests },
	{ "smime_milter_inbound_results_total", "Inbound messages by their smime= result.",
	    { "smime", NULL }, { smime_names, NULL }, { METRICS_NSMIME, 1 }, c_inbound },
	{ "smime_milter_decryptions_total", "Inbound decryptions by mode and result.",
	    { "mode", "result" }, { dmode_names, dresult_names },
	    { METRICS_NDMODE, METRICS_NDRESULT }, &c_decrypt[0][0] },
	{ "smime_milter_config_reloads_total", "Configuration reloads (SIGUSR1) by result.",
	    { "result", NULL }, { reload_names, NULL }, { 2, 1 }, c_reloads },
	{ "smime_milter_discovery_queries_total",
	    "Key discovery queries at RCPT (one per source asked) by source and result.",
	    { "source", "result" }, { dsource_names, ddresult_names },
	    { METRICS_NDSOURCE, METRICS_NDISC_RESULT }, &c_discovery[0][0] },
};
#define NFAMILY (sizeof(families) / sizeof(families[0]))

static inline void
bump(counter_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline uint64_t
get(counter_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void
metrics_message(enum metrics_dir d, enum metrics_outcome o)
{
	if ((unsigned)d < METRICS_NDIR && (unsigned)o < METRICS_NOUTCOME)
		bump(&c_messages[d][o]);
}

void
metrics_refusal(enum metrics_refusal r)
{
	if ((unsigned)r < METRICS_NREFUSAL)
		bump(&c_refusals[r]);
}

void
metrics_rcpt_tempfail(enum metrics_rcpt_tempfail t)
{
	if ((unsigned)t < METRICS_NRCPT_TEMPFAIL)
		bump(&c_rcpt_tempfails[t]);
}

void
metrics_harvest(enum metrics_harvest h)
{
	if ((unsigned)h < METRICS_NHARVEST)
		bump(&c_harvests[h]);
}

void
metrics_decryption(enum metrics_decrypt_mode m, enum metrics_decrypt_result r)
{
	if ((unsigned)m < METRICS_NDMODE && (unsigned)r < METRICS_NDRESULT)
		bump(&c_decrypt[m][r]);
}

void
metrics_reload(bool ok)
{
	bump(&c_reloads[ok ? 0 : 1]);
}

void
metrics_discovery(enum metrics_disc_source s, enum metrics_disc_result r)
{
	if ((unsigned)s < METRICS_NDSOURCE && (unsigned)r < METRICS_NDISC_RESULT)
		bump(&c_discovery[s][r]);
}

void
metrics_inbound_result(const char *smime)
{
	size_t i = METRICS_SMIME_NONE;

	if (smime != NULL)
		for (i = 1; smime_names[i] && strcmp(smime_names[i], smime) != 0; i++)
			;
	if (smime_names[i] == NULL)
		i = METRICS_SMIME_PERMERROR; /* an unknown result is still counted */
	bump(&c_inbound[i]);
}

static bool
has(const char *s, const char *part)
{
	return s != NULL && strstr(s, part) != NULL;
}

enum metrics_refusal
metrics_refusal_class(const char *reason)
{
	if (has(reason, "expired"))
		return METRICS_REFUSAL_EXPIRED;
	if (has(reason, "not yet valid"))
		return METRICS_REFUSAL_NOT_YET_VALID;
	if (has(reason, "revoked"))
		return METRICS_REFUSAL_REVOKED;
	if (has(reason, "not trusted"))
		return METRICS_REFUSAL_UNTRUSTED;
	if (has(reason, "not usable"))
		return METRICS_REFUSAL_NOT_USABLE;
	if (has(reason, "removed"))
		return METRICS_REFUSAL_REMOVED;
	if (has(reason, "not authorised") || has(reason, "unauthorised"))
		return METRICS_REFUSAL_UNAUTHORISED_SENDER;
	return METRICS_REFUSAL_NO_CERTIFICATE;
}

enum metrics_harvest
metrics_harvest_class(const char *reason)
{
	if (has(reason, "signature does not verify"))
		return METRICS_HARVEST_REFUSED_SIGNATURE;
	if (has(reason, "not trusted") || has(reason, "self-signed") || has(reason, "chain expired"))
		return METRICS_HARVEST_REFUSED_UNTRUSTED;
	if (has(reason, "expired") || has(reason, "not yet valid") || has(reason, "validity"))
		return METRICS_HARVEST_REFUSED_VALIDITY;
	if (has(reason, "address"))
		return METRICS_HARVEST_REFUSED_ADDRESS;
	if (has(reason, "key usage") || has(reason, "cannot encrypt"))
		return METRICS_HARVEST_REFUSED_USAGE;
	if (has(reason, "weak digest") || has(reason, "too small"))
		return METRICS_HARVEST_REFUSED_WEAK;
	return METRICS_HARVEST_REFUSED_OTHER;
}

uint64_t
metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
metrics_observe_ns(enum metrics_stage s, uint64_t ns)
{
	size_t b = 0;
	double sec = (double)ns / 1e9;

	if ((unsigned)s >= METRICS_NSTAGE)
		return;
	while (b < METRICS_NBUCKET && sec > bucket_le[b])
		b++;
	bump(&h_bucket[s][b]);
	atomic_fetch_add_explicit(&h_sum_ns[s], ns, memory_order_relaxed);
}

void
metrics_observe(enum metrics_stage s, uint64_t start)
{
	uint64_t now = metrics_now();

	metrics_observe_ns(s, now > start ? now - start : 0);
}

void
metrics_reset(void)
{
	for (size_t f = 0; f < NFAMILY; f++)
		for (size_t i = 0; i < families[f].n[0] * families[f].n[1]; i++)
			atomic_store(&families[f].c[i], 0);
	for (size_t s = 0; s < METRICS_NSTAGE; s++) {
		for (size_t b = 0; b <= METRICS_NBUCKET; b++)
			atomic_store(&h_bucket[s][b], 0);
		atomic_store(&h_sum_ns[s], 0);
	}
}

/* ---- exposition ---- */

static sm_status
escape_value(struct buf *out, const char *v)
{
	sm_status st = SM_OK;

	for (; *v && st == SM_OK; v++) {
		if (*v == '\\')
			st = buf_append_str(out, "\\\\");
		else if (*v == '"')
			st = buf_append_str(out, "\\\"");
		else if (*v == '\n')
			st = buf_append_str(out, "\\n");
		else
			st = buf_append_char(out, *v);
	}
	return st;
}

/* Text for a help line: backslash and newline escaped. */
sm_status
metrics_family(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s ", name);
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			buf_append_str(out, "\\\\");
		else if (*p == '\n')
			buf_append_str(out, "\\n");
		else
			buf_append_char(out, *p);
	}
	return buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

static sm_status
format_value(struct buf *out, double v)
{
	if (isnan(v))
		return buf_append_str(out, "NaN");
	if (isinf(v))
		return buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
	if (v == (double)(int64_t)v && v > -9e15 && v < 9e15)
		return buf_printf(out, "%lld", (long long)v);
	return buf_printf(out, "%.15g", v);
}

sm_status
metrics_sample(struct buf *out, const char *name, const char *const *labels, double value)
{
	buf_append_str(out, name);
	if (labels && labels[0]) {
		buf_append_char(out, '{');
		for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
			buf_printf(out, "%s%s=\"", i ? "," : "", labels[i]);
			escape_value(out, labels[i + 1]);
			buf_append_char(out, '"');
		}
		buf_append_char(out, '}');
	}
	buf_append_char(out, ' ');
	format_value(out, value);
	return buf_append_char(out, '\n');
}

static void
format_family(struct buf *out, const struct family *f)
{
	metrics_family(out, f->name, "counter", f->help);
	for (size_t i = 0; i < f->n[0]; i++)
		for (size_t j = 0; j < f->n[1]; j++) {
			const char *lab[5] = { f->label[0], f->vals[0][i], NULL, NULL, NULL };
			if (f->label[1]) {
				lab[2] = f->label[1];
				lab[3] = f->vals[1][j];
			}
			metrics_sample(out, f->name, lab, (double)get(&f->c[i * f->n[1] + j]));
		}
}

static void
format_histograms(struct buf *out)
{
	const char *name = "smime_milter_stage_seconds";

	metrics_family(out, name, "histogram",
	    "Time spent per stage: RCPT look-up, sign, encrypt, verify, decrypt, whole end of data.");
	for (size_t s = 0; s < METRICS_NSTAGE; s++) {
		uint64_t cum = 0;
		char le[32];
		const char *lab[5] = { "stage", stage_names[s], "le", le, NULL };

		for (size_t b = 0; b <= METRICS_NBUCKET; b++) {
			cum += get(&h_bucket[s][b]);
			if (b < METRICS_NBUCKET)
				snprintf(le, sizeof(le), "%g", bucket_le[b]);
			else
				snprintf(le, sizeof(le), "+Inf");
			metrics_sample(out, "smime_milter_stage_seconds_bucket", lab, (double)cum);
		}
		lab[2] = NULL;
		metrics_sample(out, "smime_milter_stage_seconds_sum", lab,
		    (double)get(&h_sum_ns[s]) / 1e9);
		metrics_sample(out, "smime_milter_stage_seconds_count", lab, (double)cum);
	}
}

sm_status
metrics_format(struct buf *out)
{
	size_t before = out->len;

	for (size_t f = 0; f < NFAMILY; f++)
		format_family(out, &families[f]);
	format_histograms(out);
	/* buf_* calls fail only on memory; one check at the end is enough,
	 * as a failed append leaves earlier text intact. */
	if (out->data == NULL || out->len == before)
		return SM_ERR_NOMEM;
	return buf_append(out, "", 0);
}

bool
metrics_value(const char *series, double *out)
{
	struct buf b = BUF_INIT;
	struct metrics_point *v = NULL;
	size_t n = 0;
	bool found = false;

	if (metrics_format(&b) == SM_OK &&
	    metrics_parse((const char *)b.data, b.len, &v, &n, NULL) == SM_OK) {
		for (size_t i = 0; i < n && !found; i++) {
			struct buf s = BUF_INIT;
			/* rebuild "name{a="x",b="y"}" to compare */
			buf_append_str(&s, v[i].name);
			for (size_t j = 0; j < v[i].nlabels; j++) {
				buf_printf(&s, "%s%s=\"", j ? "," : "{", v[i].labels[j].name);
				escape_value(&s, v[i].labels[j].value);
				buf_append_char(&s, '"');
			}
			if (v[i].nlabels)
				buf_append_char(&s, '}');
			if (strcmp(buf_cstr(&s), series) == 0) {
				*out = v[i].value;
				found = true;
			}
			buf_free(&s);
		}
	}
	metrics_points_free(v, n);
	buf_free(&b);
	return found;
}

/* ---- parsing ---- */

static bool
name_char(char c, bool first)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':' ||
	    (!first && isdigit((unsigned char)c));
}

static char *
dup_n(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* Parse one label value after the opening quote; *p ends past the quote. */
static char *
parse_quoted(const char **pp, const char *end)
{
	struct buf b = BUF_INIT;
	const char *p = *pp;

	buf_append(&b, "", 0);
	for (; p < end && *p != '"'; p++) {
		if (*p == '\\' && p + 1 < end) {
			p++;
			buf_append_char(&b, *p == 'n' ? '\n' : *p);
		} else {
			buf_append_char(&b, *p);
		}
	}
	if (p >= end || b.data == NULL) {
		buf_free(&b);
		return NULL;
	}
	*pp = p + 1;
	return buf_steal(&b);
}

static sm_status
parse_labels(const char **pp, const char *end, struct metrics_point *pt)
{
	const char *p = *pp + 1; /* past '{' */

	while (p < end && *p != '}') {
		const char *n0 = p;
		struct metrics_label *l;

		while (p < end && name_char(*p, p == n0))
			p++;
		if (p == n0 || p + 1 >= end || p[0] != '=' || p[1] != '"')
			return SM_ERR_PARSE;
		l = realloc(pt->labels, (pt->nlabels + 1) * sizeof(*l));
		if (l == NULL)
			return SM_ERR_NOMEM;
		pt->labels = l;
		l = &pt->labels[pt->nlabels];
		l->name = dup_n(n0, (size_t)(p - n0));
		p += 2;
		l->value = parse_quoted(&p, end);
		pt->nlabels++;
		if (l->name == NULL || l->value == NULL)
			return SM_ERR_PARSE;
		if (p < end && *p == ',')
			p++;
	}
	if (p >= end)
		return SM_ERR_PARSE;
	*pp = p + 1;
	return SM_OK;
}

static sm_status
parse_line(const char *p, const char *end, struct metrics_point *pt)
{
	const char *n0 = p;
	char num[64], *e;
	size_t len;
	sm_status st;

	while (p < end && name_char(*p, p == n0))
		p++;
	if (p == n0 || (pt->name = dup_n(n0, (size_t)(p - n0))) == NULL)
		return SM_ERR_PARSE;
	if (p < end && *p == '{' && (st = parse_labels(&p, end, pt)) != SM_OK)
		return st;
	if (p >= end || (*p != ' ' && *p != '\t'))
		return SM_ERR_PARSE;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	len = strcspn(p, " \t\n");
	if (len == 0 || len >= sizeof(num) || p + len > end)
		return SM_ERR_PARSE;
	memcpy(num, p, len);
	num[len] = '\0';
	pt->value = strtod(num, &e); /* accepts NaN, +Inf, -Inf */
	return *e == '\0' ? SM_OK : SM_ERR_PARSE;
}

sm_status
metrics_parse(const char *text, size_t len, struct metrics_point **out, size_t *n,
    size_t *bad_line)
{
	const char *p = text, *end = text + len;
	struct metrics_point *v = NULL;
	size_t nv = 0, line = 0;
	sm_status st = SM_OK;

	*out = NULL;
	*n = 0;
	while (p < end && st == SM_OK) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		line++;
		if (le > p && *p != '#') {
			struct metrics_point *nv2 = realloc(v, (nv + 1) * sizeof(*v));
			if (nv2 == NULL) {
				st = SM_ERR_NOMEM;
				break;
			}
			v = nv2;
			memset(&v[nv], 0, sizeof(v[nv]));
			st = parse_line(p, le, &v[nv++]);
		}
		p = nl ? nl + 1 : end;
	}
	if (st != SM_OK) {
		if (bad_line)
			*bad_line = line;
		metrics_points_free(v, nv);
		return st;
	}
	*out = v;
	*n = nv;
	return SM_OK;
}

void
metrics_points_free(struct metrics_point *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		for (size_t j = 0; j < v[i].nlabels; j++) {
			free(v[i].labels[j].name);
			free(v[i].labels[j].value);
		}
		free(v[i].labels);
	}
	free(v);
}
