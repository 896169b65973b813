/*
 * callbacks.c — the libmilter callbacks. Each fetches its context, makes one
 * library call and maps the result; every decision and transformation is
 * in lib/ (gateway.c, policy.c).
 *
 * Two contexts: the connection context (struct conn, freed in mlfi_close,
 * which may arrive without one) and the message context inside it, released
 * by msg_reset() from envfrom, eom, abort and close.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "buf.h"
#include "gateway.h"
#include "log.h"
#include "metrics.h"
#include "milter.h"
#include "mime.h"
#include "policy.h"
#include "rcptmemo.h"
#include "spool.h"
#include "status.h"

struct msg {
	bool active;
	enum pol_direction dir;
	char qid[64];
	char *sender;
	char auth_authen[256];        /* {auth_authen}: the SASL login */
	char **rcpts;
	size_t nrcpts;
	bool have_first;
	bool bcc_solo;                /* a blind copy goes alone (bcc.h) */
	struct pol_treatment first;   /* the transaction's, so far */
	struct mime_headers hdrs;
	struct spool *body;
	struct rcptmemo *memo;        /* RCPT look-ups, reused at eom */
	struct timespec start;
};

struct conn {
	struct runtime *rt;
	struct sockaddr_storage client;
	bool have_client;
	char daemon_name[64];
	struct msg msg;
};

static void
msg_reset(struct msg *m)
{
	free(m->sender);
	for (size_t i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	mime_headers_free(&m->hdrs);
	spool_free(m->body);
	rcptmemo_free(m->memo);
	memset(m, 0, sizeof(*m));
}

/* Copy a macro's value: libmilter owns its memory. */
static void
macro_copy(SMFICTX *ctx, const char *name, char *out, size_t len)
{
	const char *v = smfi_getsymval(ctx, (char *)name);

	if (v && *v)
		snprintf(out, len, "%s", v);
}

static void
msg_refresh_qid(SMFICTX *ctx, struct msg *m)
{
	/* Postfix assigns the queue id late: ask again at every stage. */
	macro_copy(ctx, "i", m->qid, sizeof(m->qid));
}

/* Hand a reply to the MTA: one line, or a multi-line reply. */
static void
set_reply(SMFICTX *ctx, const struct pol_reply *r)
{
	char *l[POL_REPLY_LINES + 1] = { NULL };

	if (r->nlines == 0)
		return;
	if (r->nlines == 1) {
		smfi_setreply(ctx, (char *)r->code, (char *)r->xcode, r->lines[0]);
		return;
	}
	for (size_t i = 0; i < r->nlines && i < POL_REPLY_LINES; i++)
		l[i] = r->lines[i];
	/* setmlreply stops at the first NULL. */
	smfi_setmlreply(ctx, r->code, r->xcode, l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7],
	    l[8], l[9], l[10], l[11], l[12], l[13], l[14], l[15], l[16], l[17], l[18], l[19],
	    l[20], l[21], l[22], l[23], l[24], l[25], l[26], l[27], l[28], l[29], l[30], l[31],
	    (char *)NULL);
}

static sfsistat
tempfail(SMFICTX *ctx, struct conn *c, const char *why)
{
	log_qid(LOG_ERR, c ? c->msg.qid : NULL, "temporary failure: %s", why);
	smfi_setreply(ctx, (char *)"451", (char *)"4.7.0",
	    (char *)"S/MIME gateway: temporary local problem, please try again later");
	return SMFIS_TEMPFAIL;
}

static sfsistat
mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1, unsigned long *pf2,
    unsigned long *pf3)
{
	(void)f1;
	(void)f2;
	(void)f3;
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_SETSYMLIST);
	/* We answer every stage, so the MTA never sends two packets back to
	 * back without waiting for us (no Nagle stalls over TCP). */
	*pf1 = 0;
	*pf2 = 0;
	*pf3 = 0;
	if (f0 & SMFIF_SETSYMLIST) {
		smfi_setsymlist(ctx, SMFIM_CONNECT, (char *)"j {daemon_name} {client_addr}");
		smfi_setsymlist(ctx, SMFIM_ENVFROM, (char *)"i {auth_authen} {auth_type}");
		smfi_setsymlist(ctx, SMFIM_ENVRCPT, (char *)"i");
		smfi_setsymlist(ctx, SMFIM_EOH, (char *)"i");
		smfi_setsymlist(ctx, SMFIM_EOM, (char *)"i");
	}
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa)
{
	struct conn *c = calloc(1, sizeof(*c));

	(void)hostname;
	if (c == NULL)
		return tempfail(ctx, NULL, "out of memory");
	c->rt = runtime_get();
	if (sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
		memcpy(&c->client, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
		    sizeof(struct sockaddr_in6));
		c->have_client = true;
	}
	macro_copy(ctx, "{daemon_name}", c->daemon_name, sizeof(c->daemon_name));
	smfi_setpriv(ctx, c);
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_helo(SMFICTX *ctx, char *helo)
{
	(void)ctx;
	(void)helo;
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn *c = smfi_getpriv(ctx);
	const struct config *cfg;

	if (c == NULL)
		return tempfail(ctx, NULL, "no connection context");
	cfg = c->rt->cfg;
	msg_reset(&c->msg);
	c->msg.active = true;
	clock_gettime(CLOCK_MONOTONIC, &c->msg.start);
	c->msg.memo = rcptmemo_new(); /* NULL: each look-up made again */
	msg_refresh_qid(ctx, &c->msg);
	macro_copy(ctx, "{auth_authen}", c->msg.auth_authen, sizeof(c->msg.auth_authen));
	c->msg.dir = policy_direction(cfg, c->daemon_name, c->msg.auth_authen,
	    c->have_client ? (const struct sockaddr *)&c->client : NULL);
	if ((c->msg.sender = strdup(argv[0] ? argv[0] : "<>")) == NULL ||
	    spool_new(cfg->spool_dir, cfg->spool_threshold, cfg->max_message_size,
		&c->msg.body) != SM_OK)
		return tempfail(ctx, c, "out of memory");
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_envrcpt(SMFICTX *ctx, char **argv)
{
	struct conn *c = smfi_getpriv(ctx);
	struct pol_rcpt_decision d;
	struct gw_env env;
	char **v;
	sm_status st;

	if (c == NULL || !c->msg.active)
		return tempfail(ctx, c, "recipient outside a transaction");
	msg_refresh_qid(ctx, &c->msg);
	if (c->msg.dir == POL_OUTBOUND) {
		env = c->rt->env;
		env.memo = c->msg.memo;
		st = gw_rcpt(&env, c->msg.sender, argv[0],
		    c->msg.have_first ? &c->msg.first : NULL, &d);
		if (st == SM_OK)
			st = gw_rcpt_bcc(c->msg.sender, argv[0], c->msg.nrcpts, &c->msg.bcc_solo, &d);
		if (st != SM_OK)
			return tempfail(ctx, c, sm_strstatus(st));
		if (d.verdict != POL_ACCEPT) {
			/* The address as DESIGN.md's log lines show it, without
			 * the envelope's angle brackets. */
			const char *a = argv[0][0] == '<' ? argv[0] + 1 : argv[0];
			int alen = (int)strcspn(a, ">");

			log_qid(LOG_NOTICE, c->msg.qid, "%s %.*s: %s",
			    d.verdict == POL_REJECT ? "rejected" : "deferred", alen, a, d.log);
			set_reply(ctx, &d.reply);
			policy_reply_free(&d.reply);
			return d.verdict == POL_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
		}
		c->msg.first = d.treatment; /* with this recipient in */
		c->msg.have_first = true;
	}
	v = realloc(c->msg.rcpts, (c->msg.nrcpts + 1) * sizeof(*v));
	if (v == NULL)
		return tempfail(ctx, c, "out of memory");
	c->msg.rcpts = v;
	if ((v[c->msg.nrcpts] = strdup(argv[0])) == NULL)
		return tempfail(ctx, c, "out of memory");
	c->msg.nrcpts++;
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_data(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = smfi_getpriv(ctx);
	sm_status st;

	if (c == NULL || !c->msg.active)
		return tempfail(ctx, c, "header outside a transaction");
	st = mime_headers_add(&c->msg.hdrs, name, value);
	if (st == SM_ERR_NOMEM)
		return tempfail(ctx, c, "out of memory");
	if (st != SM_OK)
		log_qid(LOG_NOTICE, c->msg.qid, "ignoring malformed header name");
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_eoh(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c)
		msg_refresh_qid(ctx, &c->msg);
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct conn *c = smfi_getpriv(ctx);
	sm_status st;

	if (c == NULL || !c->msg.active)
		return tempfail(ctx, c, "body outside a transaction");
	st = spool_write(c->msg.body, chunk, len);
	if (st == SM_ERR_LIMIT) {
		log_qid(LOG_NOTICE, c->msg.qid, "rejected: message larger than %llu bytes",
		    (unsigned long long)c->rt->cfg->max_message_size);
		smfi_setreply(ctx, (char *)"552", (char *)"5.3.4",
		    (char *)"Message too big for the S/MIME gateway");
		return SMFIS_REJECT;
	}
	if (st != SM_OK)
		return tempfail(ctx, c, sm_strstatus(st));
	return SMFIS_CONTINUE;
}

/* Apply header edits and the new body. */
static int
apply_result(SMFICTX *ctx, const struct gw_result *r)
{
	for (size_t i = 0; i < r->nedits; i++) {
		const struct gw_hdr_edit *e = &r->edits[i];
		int rc = MI_SUCCESS;

		switch (e->op) {
		case GW_HDR_DELETE:
			rc = smfi_chgheader(ctx, e->name, e->index, NULL);
			break;
		case GW_HDR_CHANGE:
			rc = smfi_chgheader(ctx, e->name, e->index, e->value);
			break;
		case GW_HDR_ADD:
			rc = smfi_addheader(ctx, e->name, e->value);
			break;
		case GW_HDR_INSERT_TOP:
			rc = smfi_insheader(ctx, 0, e->name, e->value);
			break;
		}
		if (rc != MI_SUCCESS)
			return -1;
	}
	if (r->replace_body) {
		/* In chunks read from wherever the body is (memory or its
		 * spool): libmilter sends at most 64 KiB per packet anyway. */
		const size_t size = 65535;
		unsigned char *chunk = malloc(size);
		uint64_t off = 0;
		size_t n = 0;
		int rc = chunk ? 0 : -1;

		do {
			if (rc == 0 && (gw_result_body_read(r, off, chunk, size, &n) != SM_OK ||
			    ((n > 0 || off == 0) && smfi_replacebody(ctx, chunk, (int)n) != MI_SUCCESS)))
				rc = -1;
			off += n;
		} while (rc == 0 && n > 0);
		free(chunk);
		return rc;
	}
	return 0;
}

static sfsistat
mlfi_eom(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	struct gw_env env;
	struct gw_msg gm;
	struct sender_id who;
	struct gw_result r;
	struct timespec end;
	sfsistat ret = SMFIS_CONTINUE;
	sm_status st;
	uint64_t t0;
	long ms;

	if (c == NULL || !c->msg.active)
		return tempfail(ctx, c, "end of message outside a transaction");
	msg_refresh_qid(ctx, &c->msg);
	memset(&gm, 0, sizeof(gm));
	gm.qid = c->msg.qid;
	gm.sender = c->msg.sender;
	gm.rcpts = c->msg.rcpts;
	gm.nrcpts = c->msg.nrcpts;
	gm.hdrs = &c->msg.hdrs;
	/* No client address: a local submission (sendmail(1) through
	 * non_smtpd_milters), which sender.h takes as 127.0.0.1. */
	who.login = c->msg.auth_authen;
	who.client = c->have_client ? (const struct sockaddr *)&c->client : NULL;
	gm.who = &who;
	gm.body_spool = c->msg.body;
	if ((st = spool_view(c->msg.body, &gm.body, &gm.body_len)) != SM_OK) {
		ret = tempfail(ctx, c, "cannot read the spooled body");
		goto out;
	}
	/* The look-ups made at RCPT, unless something changed since. */
	env = c->rt->env;
	env.memo = c->msg.memo;
	t0 = metrics_now();
	st = c->msg.dir == POL_OUTBOUND ? gw_outbound(&env, &gm, &r) :
	    gw_inbound(&c->rt->env, &gm, &r);
	metrics_observe(METRICS_STAGE_EOM, t0);
	if (st != SM_OK) {
		metrics_message(c->msg.dir == POL_OUTBOUND ? METRICS_OUTBOUND : METRICS_INBOUND,
		    METRICS_TEMPFAILED);
		ret = tempfail(ctx, c, sm_strstatus(st));
		gw_result_free(&r);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	ms = (end.tv_sec - c->msg.start.tv_sec) * 1000 +
	    (end.tv_nsec - c->msg.start.tv_nsec) / 1000000;
	switch (r.verdict) {
	case POL_REJECT:
	case POL_TEMPFAIL:
		/* The level of a refusal at RCPT time: a refusal is a refusal. */
		log_qid(LOG_NOTICE, c->msg.qid, "%s", buf_cstr(&r.summary));
		set_reply(ctx, &r.reply);
		ret = r.verdict == POL_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
		break;
	case POL_ACCEPT:
		if (apply_result(ctx, &r) != 0) {
			/* A half-applied change must not be delivered. */
			ret = tempfail(ctx, c, "the MTA refused a header or body change");
			break;
		}
		log_qid(LOG_INFO, c->msg.qid, "%s ms=%ld", buf_cstr(&r.summary), ms);
		break;
	}
	gw_result_free(&r);
out:
	msg_reset(&c->msg);
	return ret;
}

static sfsistat
mlfi_abort(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c)
		msg_reset(&c->msg);
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_close(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	msg_reset(&c->msg);
	runtime_put(c->rt);
	free(c);
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

struct smfiDesc milter_desc = {
	.xxfi_name = (char *)"smime-milter",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY,
	.xxfi_connect = mlfi_connect,
	.xxfi_helo = mlfi_helo,
	.xxfi_envfrom = mlfi_envfrom,
	.xxfi_envrcpt = mlfi_envrcpt,
	.xxfi_header = mlfi_header,
	.xxfi_eoh = mlfi_eoh,
	.xxfi_body = mlfi_body,
	.xxfi_eom = mlfi_eom,
	.xxfi_abort = mlfi_abort,
	.xxfi_close = mlfi_close,
	.xxfi_unknown = NULL,
	.xxfi_data = mlfi_data,
	.xxfi_negotiate = mlfi_negotiate,
};
