/*
 * check_metrics.c — the counters count exactly (from many threads at once),
 * histograms fill the right buckets, reason texts land in the right class,
 * and the exposition text is well-formed and reads back as written.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "testutil.h"

static double
value_of(const char *series)
{
	double v = -1;

	ck_assert_msg(metrics_value(series, &v), "series %s: got none, want one", series);
	return v;
}

START_TEST(each_event_moves_its_own_counter_only)
{
	metrics_reset();
	metrics_message(METRICS_OUTBOUND, METRICS_SIGNED_ENCRYPTED);
	metrics_message(METRICS_OUTBOUND, METRICS_SIGNED_ENCRYPTED);
	metrics_message(METRICS_INBOUND, METRICS_UNCHANGED);
	metrics_refusal(metrics_refusal_class("no certificate exchanged"));
	metrics_rcpt_tempfail(METRICS_RCPT_TEMPFAIL_CACHE);
	metrics_harvest(METRICS_HARVEST_NEW);
	metrics_inbound_result("pass");
	metrics_inbound_result(NULL);
	metrics_decryption(METRICS_DECRYPT_DELIVER, METRICS_DECRYPT_NO_KEY);
	metrics_reload(false);
	metrics_discovery(METRICS_DISC_SMIMEA, METRICS_DISC_NOT_FOUND);
	metrics_discovery(METRICS_DISC_LDAP, METRICS_DISC_TIMEOUT);

	ck_assert_double_eq(value_of("smime_milter_messages_total{direction=\"outbound\",outcome=\"signed_encrypted\"}"), 2);
	ck_assert_double_eq(value_of("smime_milter_messages_total{direction=\"outbound\",outcome=\"signed\"}"), 0);
	ck_assert_double_eq(value_of("smime_milter_messages_total{direction=\"inbound\",outcome=\"unchanged\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_rcpt_refusals_total{reason=\"no_certificate\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_rcpt_refusals_total{reason=\"expired\"}"), 0);
	ck_assert_double_eq(value_of("smime_milter_rcpt_tempfails_total{reason=\"cache_unavailable\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_rcpt_tempfails_total{reason=\"lookup_failed\"}"), 0);
	ck_assert_double_eq(value_of("smime_milter_harvests_total{result=\"harvested\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_inbound_results_total{smime=\"pass\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_inbound_results_total{smime=\"none\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_decryptions_total{mode=\"deliver\",result=\"no_key\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_decryptions_total{mode=\"harvest\",result=\"no_key\"}"), 0);
	ck_assert_double_eq(value_of("smime_milter_config_reloads_total{result=\"failure\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_config_reloads_total{result=\"success\"}"), 0);
	ck_assert_double_eq(value_of("smime_milter_discovery_queries_total{source=\"smimea\",result=\"not_found\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_discovery_queries_total{source=\"ldap\",result=\"timeout\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_discovery_queries_total{source=\"ldap\",result=\"found\"}"), 0);
	/* out-of-range enums are ignored, not written past the array */
	metrics_message(METRICS_NDIR, METRICS_SIGNED);
	metrics_refusal(METRICS_NREFUSAL);
	metrics_rcpt_tempfail(METRICS_NRCPT_TEMPFAIL);
	metrics_harvest(METRICS_NHARVEST);
	metrics_discovery(METRICS_NDSOURCE, METRICS_DISC_FOUND);
	metrics_discovery(METRICS_DISC_LDAP, METRICS_NDISC_RESULT);
	metrics_observe_ns(METRICS_NSTAGE, 5);
}
END_TEST

#define NTHREAD 4
#define PER_THREAD 100000

static void *
count_many(void *arg)
{
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		metrics_message(METRICS_INBOUND, METRICS_UNCHANGED);
		metrics_observe_ns(METRICS_STAGE_VERIFY, 1000);
	}
	return NULL;
}

START_TEST(counting_from_many_threads_loses_nothing)
{
	pthread_t t[NTHREAD];

	metrics_reset();
	for (int i = 0; i < NTHREAD; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, count_many, NULL), 0);
	for (int i = 0; i < NTHREAD; i++)
		pthread_join(t[i], NULL);
	ck_assert_double_eq(value_of("smime_milter_messages_total{direction=\"inbound\",outcome=\"unchanged\"}"),
	    NTHREAD * PER_THREAD);
	ck_assert_double_eq(value_of("smime_milter_stage_seconds_count{stage=\"verify\"}"),
	    NTHREAD * PER_THREAD);
	ck_assert_double_eq_tol(value_of("smime_milter_stage_seconds_sum{stage=\"verify\"}"),
	    NTHREAD * PER_THREAD * 1e-6, 1e-9);
}
END_TEST

START_TEST(histogram_buckets_are_cumulative)
{
	metrics_reset();
	metrics_observe_ns(METRICS_STAGE_SIGN, 300000);        /* 0.3 ms */
	metrics_observe_ns(METRICS_STAGE_SIGN, 3000000);       /* 3 ms */
	metrics_observe_ns(METRICS_STAGE_SIGN, 1000000);       /* exactly 1 ms: le="0.001" */
	metrics_observe_ns(METRICS_STAGE_SIGN, 20000000000ull); /* 20 s */

	ck_assert_double_eq(value_of("smime_milter_stage_seconds_bucket{stage=\"sign\",le=\"0.0005\"}"), 1);
	ck_assert_double_eq(value_of("smime_milter_stage_seconds_bucket{stage=\"sign\",le=\"0.001\"}"), 2);
	ck_assert_double_eq(value_of("smime_milter_stage_seconds_bucket{stage=\"sign\",le=\"0.0025\"}"), 2);
	ck_assert_double_eq(value_of("smime_milter_stage_seconds_bucket{stage=\"sign\",le=\"0.005\"}"), 3);
	ck_assert_double_eq(value_of("smime_milter_stage_seconds_bucket{stage=\"sign\",le=\"5\"}"), 3);
	ck_assert_double_eq(value_of("smime_milter_stage_seconds_bucket{stage=\"sign\",le=\"+Inf\"}"), 4);
	ck_assert_double_eq(value_of("smime_milter_stage_seconds_count{stage=\"sign\"}"), 4);
	ck_assert_double_eq_tol(value_of("smime_milter_stage_seconds_sum{stage=\"sign\"}"), 20.0043, 1e-9);
	ck_assert_double_eq(value_of("smime_milter_stage_seconds_count{stage=\"encrypt\"}"), 0);
}
END_TEST

static const struct class_case {
	const char *reason;
	int want;
} refusal_cases[] = {
	{ "no certificate exchanged", METRICS_REFUSAL_NO_CERTIFICATE },
	{ "certificate expired on 2026-01-02", METRICS_REFUSAL_EXPIRED },
	{ "certificate not yet valid", METRICS_REFUSAL_NOT_YET_VALID },
	{ "certificate not trusted", METRICS_REFUSAL_UNTRUSTED },
	{ "certificate not usable for encryption", METRICS_REFUSAL_NOT_USABLE },
	{ "certificate removed", METRICS_REFUSAL_REMOVED },
	{ "certificate revoked on 2026-01-02", METRICS_REFUSAL_REVOKED },
	{ "sender not authorised for alice@org.example", METRICS_REFUSAL_UNAUTHORISED_SENDER },
	{ NULL, METRICS_REFUSAL_NO_CERTIFICATE },
}, harvest_cases[] = {
	{ "signature does not verify", METRICS_HARVEST_REFUSED_SIGNATURE },
	{ "certificate not trusted", METRICS_HARVEST_REFUSED_UNTRUSTED },
	{ "self-signed certificate not allowed", METRICS_HARVEST_REFUSED_UNTRUSTED },
	{ "certificate chain expired", METRICS_HARVEST_REFUSED_UNTRUSTED },
	{ "certificate expired on 2020-01-01", METRICS_HARVEST_REFUSED_VALIDITY },
	{ "certificate not yet valid", METRICS_HARVEST_REFUSED_VALIDITY },
	{ "no certificate address matches From bob@x.example", METRICS_HARVEST_REFUSED_ADDRESS },
	{ "key usage does not allow encryption", METRICS_HARVEST_REFUSED_USAGE },
	{ "extended key usage lacks emailProtection", METRICS_HARVEST_REFUSED_USAGE },
	{ "key type ed25519 cannot encrypt", METRICS_HARVEST_REFUSED_USAGE },
	{ "weak digest sha1", METRICS_HARVEST_REFUSED_WEAK },
	{ "RSA key too small (1024 bits)", METRICS_HARVEST_REFUSED_WEAK },
	{ "internal error verifying certificate", METRICS_HARVEST_REFUSED_OTHER },
};

START_TEST(refusal_reasons_fall_into_their_class)
{
	const struct class_case *tc = &refusal_cases[_i];
	int got = metrics_refusal_class(tc->reason);

	ck_assert_msg(got == tc->want, "\"%s\": got class %d, want %d",
	    tc->reason ? tc->reason : "(null)", got, tc->want);
}
END_TEST

START_TEST(harvest_reasons_fall_into_their_class)
{
	const struct class_case *tc = &harvest_cases[_i];
	int got = metrics_harvest_class(tc->reason);

	ck_assert_msg(got == tc->want, "\"%s\": got class %d, want %d", tc->reason, got, tc->want);
}
END_TEST

/* Every sample's family was announced with HELP and TYPE before it, each
 * family exactly once, and nothing but comments and samples appears. */
START_TEST(every_family_is_announced_once_before_its_samples)
{
	struct buf b = BUF_INIT;
	char *text, *save = NULL, *line;
	char typed[64][64];
	size_t ntyped = 0, nsamples = 0;

	metrics_reset();
	ck_assert_int_eq(metrics_format(&b), SM_OK);
	ck_assert_msg(b.len > 0 && b.data[b.len - 1] == '\n', "output does not end in a newline");
	text = buf_steal(&b);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[64];
		bool known = false;

		if (sscanf(line, "# TYPE %63s", name) == 1) {
			for (size_t i = 0; i < ntyped; i++)
				ck_assert_msg(strcmp(typed[i], name) != 0, "family %s typed twice", name);
			ck_assert(ntyped < 64);
			snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
			continue;
		}
		if (line[0] == '#') {
			ck_assert_msg(strncmp(line, "# HELP ", 7) == 0, "stray comment: %s", line);
			continue;
		}
		nsamples++;
		for (size_t i = 0; i < ntyped && !known; i++) {
			size_t n = strlen(typed[i]);
			known = strncmp(line, typed[i], n) == 0 &&
			    (line[n] == '{' || line[n] == ' ' || line[n] == '_');
		}
		ck_assert_msg(known, "sample before its family's TYPE line: %s", line);
	}
	ck_assert_int_eq(ntyped, 9);
	/* 16 messages + 8 refusals + 2 RCPT tempfails + 11 harvests + 7 results + 6 decryptions +
	 * 2 reloads + 2 × 5 discovery queries + 6 stages × (13 buckets + sum + count) */
	ck_assert_int_eq(nsamples, 16 + 8 + 2 + 11 + 7 + 6 + 2 + 10 + 6 * 15);
	free(text);
}
END_TEST

START_TEST(label_values_are_escaped_and_read_back)
{
	struct buf b = BUF_INIT;
	const char *lab[] = { "address", "we\"ird\\name\nx@example", "k", "v", NULL };
	struct metrics_point *v;
	size_t n, bad = 0;

	metrics_family(&b, "g", "gauge", "help with \\ and\nnewline");
	metrics_sample(&b, "g", lab, 1.5);
	metrics_sample(&b, "g", NULL, 86400);
	metrics_sample(&b, "g", NULL, -3);
	ck_assert_str_eq(buf_cstr(&b),
	    "# HELP g help with \\\\ and\\nnewline\n# TYPE g gauge\n"
	    "g{address=\"we\\\"ird\\\\name\\nx@example\",k=\"v\"} 1.5\n"
	    "g 86400\ng -3\n");
	ck_assert_int_eq(metrics_parse((const char *)b.data, b.len, &v, &n, &bad), SM_OK);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(v[0].name, "g");
	ck_assert_int_eq(v[0].nlabels, 2);
	ck_assert_str_eq(v[0].labels[0].value, "we\"ird\\name\nx@example");
	ck_assert_str_eq(v[0].labels[1].name, "k");
	ck_assert_double_eq(v[0].value, 1.5);
	ck_assert_double_eq(v[1].value, 86400);
	ck_assert_double_eq(v[2].value, -3);
	metrics_points_free(v, n);
	buf_free(&b);
}
END_TEST

static const struct bad_case {
	const char *text;
	size_t line;
} bad_cases[] = {
	{ "ok 1\nbroken\n", 2 },
	{ "x{a=\"unterminated} 1\n", 1 },
	{ "x{a=b} 1\n", 1 },
	{ "x 12abc\n", 1 },
	{ "# c\n\n{a=\"b\"} 1\n", 3 },
	{ "x{a=\"b\"}\n", 1 },
};

START_TEST(malformed_exposition_is_refused_with_its_line)
{
	const struct bad_case *tc = &bad_cases[_i];
	struct metrics_point *v = (void *)1;
	size_t n = 99, bad = 0;
	sm_status st = metrics_parse(tc->text, strlen(tc->text), &v, &n, &bad);

	ck_assert_msg(st == SM_ERR_PARSE, "\"%s\": got %s, want a parse error", tc->text,
	    sm_strstatus(st));
	ck_assert_msg(bad == tc->line, "\"%s\": got line %zu, want %zu", tc->text, bad, tc->line);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(n, 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, each_event_moves_its_own_counter_only);
	tcase_add_test(tc, counting_from_many_threads_loses_nothing);
	tcase_add_test(tc, histogram_buckets_are_cumulative);
	tcase_add_loop_test(tc, refusal_reasons_fall_into_their_class, 0,
	    (int)(sizeof(refusal_cases) / sizeof(refusal_cases[0])));
	tcase_add_loop_test(tc, harvest_reasons_fall_into_their_class, 0,
	    (int)(sizeof(harvest_cases) / sizeof(harvest_cases[0])));
	tcase_add_test(tc, every_family_is_announced_once_before_its_samples);
	tcase_add_test(tc, label_values_are_escaped_and_read_back);
	tcase_add_loop_test(tc, malformed_exposition_is_refused_with_its_line, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
