/*
 * metrics.h — the daemon's counters and latency histograms, and the
 * Prometheus text exposition format (version 0.0.4) they are read in.
 *
 * Counting is a relaxed atomic add on a process-wide array: no lock, no
 * allocation, safe from every thread, cheap enough for every message.
 * Reading (a scrape) takes a snapshot counter by counter; a scrape racing
 * a message may see half of that message's counts, never a torn value.
 *
 * Series. Every family, label and value is fixed here, so the output
 * always lists every series (zero included) and alerts never see a series
 * appear from nowhere:
 *
 *   smime_milter_messages_total{direction,outcome}
 *   smime_milter_rcpt_refusals_total{reason}
 *   smime_milter_rcpt_tempfails_total{reason}
 *   smime_milter_harvests_total{result}
 *   smime_milter_inbound_results_total{smime}
 *   smime_milter_decryptions_total{mode,result}
 *   smime_milter_discovery_queries_total{source,result}
 *   smime_milter_stage_seconds{stage}          (histogram)
 *   smime_milter_config_reloads_total{result}
 *
 * Gauges that are read at scrape time (cache size, expiry seconds, build
 * info) are written by the caller with metrics_family()/metrics_sample().
 */
#ifndef SMIME_METRICS_H
#define SMIME_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

enum metrics_dir { METRICS_OUTBOUND, METRICS_INBOUND, METRICS_NDIR };

enum metrics_outcome {
	METRICS_SIGNED,
	METRICS_ENCRYPTED,
	METRICS_SIGNED_ENCRYPTED,
	METRICS_UNCHANGED,
	METRICS_REFUSED,
	METRICS_TEMPFAILED,
	METRICS_PASSED_ON_ERROR,
	METRICS_DECRYPTED,          /* inbound: delivered decrypted */
	METRICS_NOUTCOME
};

enum metrics_refusal {
	METRICS_REFUSAL_NO_CERTIFICATE,
	METRICS_REFUSAL_EXPIRED,
	METRICS_REFUSAL_NOT_YET_VALID,
	METRICS_REFUSAL_REVOKED,
	METRICS_REFUSAL_UNTRUSTED,
	METRICS_REFUSAL_NOT_USABLE,
	METRICS_REFUSAL_REMOVED,
	METRICS_REFUSAL_UNAUTHORISED_SENDER,
	METRICS_NREFUSAL
};

/* A recipient answered 451 at RCPT time for a failure of ours, not of
 * the recipient's certificate: the client retries. */
enum metrics_rcpt_tempfail {
	METRICS_RCPT_TEMPFAIL_CACHE,    /* key cache backend down, no local answer (4.3.0) */
	METRICS_RCPT_TEMPFAIL_LOOKUP,   /* directory/DNS look-up failed for now (4.7.1) */
	METRICS_NRCPT_TEMPFAIL
};

enum metrics_harvest {
	METRICS_HARVEST_NEW,            /* first certificate for the address */
	METRICS_HARVEST_SUPERSEDED,     /* replaced an older one (renewal or key change) */
	METRICS_HARVEST_SEEN,           /* already known: refreshed */
	METRICS_HARVEST_HISTORY,        /* older than the active one: kept as history */
	METRICS_HARVEST_REFUSED_SIGNATURE,
	METRICS_HARVEST_REFUSED_UNTRUSTED,
	METRICS_HARVEST_REFUSED_VALIDITY,
	METRICS_HARVEST_REFUSED_ADDRESS,
	METRICS_HARVEST_REFUSED_USAGE,
	METRICS_HARVEST_REFUSED_WEAK,
	METRICS_HARVEST_REFUSED_OTHER,
	METRICS_NHARVEST
};

enum metrics_smime {
	METRICS_SMIME_NONE, METRICS_SMIME_PASS, METRICS_SMIME_FAIL, METRICS_SMIME_POLICY,
	METRICS_SMIME_PERMERROR, METRICS_SMIME_TEMPERROR, METRICS_SMIME_NEUTRAL,
	METRICS_NSMIME
};

enum metrics_decrypt_mode { METRICS_DECRYPT_HARVEST, METRICS_DECRYPT_DELIVER, METRICS_NDMODE };
enum metrics_decrypt_result {
	METRICS_DECRYPT_OK, METRICS_DECRYPT_NO_KEY, METRICS_DECRYPT_FAILED, METRICS_NDRESULT
};

/* Key discovery at RCPT (discover.h): one count per source asked. */
enum metrics_disc_source { METRICS_DISC_LDAP, METRICS_DISC_SMIMEA, METRICS_NDSOURCE };
enum metrics_disc_result {
	METRICS_DISC_FOUND,     /* a usable certificate, stored */
	METRICS_DISC_UNUSABLE,  /* certificates published, none passed the harvest rules */
	METRICS_DISC_NOT_FOUND, /* the source answered: nothing published */
	METRICS_DISC_ERROR,     /* it failed (unreachable, refused, DNSSEC bogus) */
	METRICS_DISC_TIMEOUT,   /* no answer within discovery.budget_ms */
	METRICS_NDISC_RESULT
};

enum metrics_stage {
	METRICS_STAGE_RCPT_LOOKUP,
	METRICS_STAGE_SIGN,
	METRICS_STAGE_ENCRYPT,
	METRICS_STAGE_VERIFY,
	METRICS_STAGE_DECRYPT,
	METRICS_STAGE_EOM,
	METRICS_NSTAGE
};

/* Histogram bucket upper bounds in seconds (+Inf is implied). */
#define METRICS_NBUCKET 12

/* ---- counting (any thread, never blocks, never fails) ---- */
void metrics_message(enum metrics_dir d, enum metrics_outcome o);
void metrics_refusal(enum metrics_refusal r);
/* The refusal class of a key cache reason text ("no certificate
 * exchanged", "certificate expired on …", …; see keycache_select). */
enum metrics_refusal metrics_refusal_class(const char *reason);
void metrics_rcpt_tempfail(enum metrics_rcpt_tempfail t);
void metrics_harvest(enum metrics_harvest h);
/* The class of a harvest_judge() refusal reason. */
enum metrics_harvest metrics_harvest_class(const char *reason);
/* result: "pass", "fail", …, or NULL for an unsigned message. */
void metrics_inbound_result(const char *smime);
void metrics_decryption(enum metrics_decrypt_mode m, enum metrics_decrypt_result r);
void metrics_reload(bool ok);
void metrics_discovery(enum metrics_disc_source s, enum metrics_disc_result r);

/* Monotonic nanoseconds, for metrics_observe(). */
uint64_t metrics_now(void);
/* Record the time since start (a metrics_now() value) for a stage. */
void metrics_observe(enum metrics_stage s, uint64_t start);
void metrics_observe_ns(enum metrics_stage s, uint64_t ns);

/* Zero everything (tests). Not atomic with respect to concurrent counting. */
void metrics_reset(void);
/* One counter's value, for tests: the sample as formatted, e.g.
 * "smime_milter_messages_total{direction=\"outbound\",outcome=\"signed\"}".
 * Returns false when no such series exists. */
bool metrics_value(const char *series, double *out);

/* ---- exposition ---- */
/* Append every counter and histogram family. */
sm_status metrics_format(struct buf *out);
/* Append "# HELP" and "# TYPE" lines for a family of the caller's.
 * type: "gauge", "counter". */
sm_status metrics_family(struct buf *out, const char *name, const char *type, const char *help);
/* Append one sample. labels: NULL-terminated name, value, name, value, …
 * (values are escaped as the format requires); may be NULL. */
sm_status metrics_sample(struct buf *out, const char *name, const char *const *labels,
    double value);

/* ---- reading the exposition back (smimectl stats) ---- */
struct metrics_label {
	char *name, *value;
};
struct metrics_point {
	char *name;                 /* metric name, with _bucket/_sum/_count */
	struct metrics_label *labels;
	size_t nlabels;
	double value;
};
/* Parse exposition text: every sample line (comments skipped). SM_ERR_PARSE
 * on a malformed line (line number in *bad_line when not NULL). */
sm_status metrics_parse(const char *text, size_t len, struct metrics_point **out, size_t *n,
    size_t *bad_line);
void metrics_points_free(struct metrics_point *v, size_t n);

#endif
