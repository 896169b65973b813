/*
 * callbacks.c — the libmilter callbacks. Each fetches its context, makes one
 * library call and maps the result; nothing here decides S/MIME matters.
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
#include "log.h"
#include "milter.h"
#include "policy.h"
#include "spool.h"
#include "status.h"

struct hdr {
	char *name;
	char *value;
};

struct msg {
	bool active;
	char qid[64];
	char *sender;
	char **rcpts;
	size_t nrcpts;
	struct hdr *hdrs;
	size_t nhdrs;
	struct spool *body;
	bool too_big;
	struct timespec start;
};

struct conn {
	struct runtime *rt;
	struct sockaddr_storage client;
	bool have_client;
	char hostname[256];
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
	for (size_t i = 0; i < m->nhdrs; i++) {
		free(m->hdrs[i].name);
		free(m->hdrs[i].value);
	}
	free(m->hdrs);
	spool_free(m->body);
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

static sfsistat
tempfail(SMFICTX *ctx, struct conn *c, const char *why)
{
	log_qid(LOG_ERR, c ? c->msg.qid : NULL, "temporary failure: %s", why);
	smfi_setreply(ctx, "451", "4.3.0", (char *)"smime-milter: temporary local problem, try again later");
	return SMFIS_TEMPFAIL;
}

static sfsistat
mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1, unsigned long *pf2,
    unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_SETSYMLIST);
	/* Every stage gets a reply from us, so the MTA never sends two
	 * packets back to back without waiting (no Nagle stalls over TCP). */
	*pf1 = f1 & SMFIP_SKIP;
	*pf2 = 0;
	*pf3 = 0;
	if (f0 & SMFIF_SETSYMLIST) {
		smfi_setsymlist(ctx, SMFIM_CONNECT, (char *)"j {daemon_name} {client_addr}");
		smfi_setsymlist(ctx, SMFIM_ENVFROM, (char *)"i {auth_authen} {auth_type}");
		smfi_setsymlist(ctx, SMFIM_EOH, (char *)"i");
		smfi_setsymlist(ctx, SMFIM_EOM, (char *)"i");
	}
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return tempfail(ctx, NULL, "out of memory");
	c->rt = runtime_get();
	snprintf(c->hostname, sizeof(c->hostname), "%s", hostname ? hostname : "unknown");
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
	msg_refresh_qid(ctx, &c->msg);
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
	char **v;

	if (c == NULL || !c->msg.active)
		return tempfail(ctx, c, "recipient outside a transaction");
	msg_refresh_qid(ctx, &c->msg);
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
	struct hdr *v;

	if (c == NULL || !c->msg.active)
		return tempfail(ctx, c, "header outside a transaction");
	v = realloc(c->msg.hdrs, (c->msg.nhdrs + 1) * sizeof(*v));
	if (v == NULL)
		return tempfail(ctx, c, "out of memory");
	c->msg.hdrs = v;
	v[c->msg.nhdrs].name = strdup(name);
	v[c->msg.nhdrs].value = strdup(value);
	c->msg.nhdrs++;
	if (v[c->msg.nhdrs - 1].name == NULL || v[c->msg.nhdrs - 1].value == NULL)
		return tempfail(ctx, c, "out of memory");
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
		smfi_setreply(ctx, "552", "5.3.4", (char *)"Message too big for the S/MIME gateway");
		return SMFIS_REJECT;
	}
	if (st != SM_OK)
		return tempfail(ctx, c, sm_strstatus(st));
	return SMFIS_CONTINUE;
}

static bool
conn_is_outbound(const struct conn *c, SMFICTX *ctx)
{
	return policy_direction(c->rt->cfg, c->daemon_name,
	    smfi_getsymval(ctx, (char *)"{auth_authen}"),
	    c->have_client ? (const struct sockaddr *)&c->client : NULL) == POL_OUTBOUND;
}

static sfsistat
mlfi_eom(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	struct timespec end;
	long ms;

	if (c == NULL || !c->msg.active)
		return tempfail(ctx, c, "end of message outside a transaction");
	msg_refresh_qid(ctx, &c->msg);
	clock_gettime(CLOCK_MONOTONIC, &end);
	ms = (end.tv_sec - c->msg.start.tv_sec) * 1000 +
	    (end.tv_nsec - c->msg.start.tv_nsec) / 1000000;
	log_qid(LOG_INFO, c->msg.qid, "%s passed unchanged rcpts=%zu size=%llu ms=%ld",
	    conn_is_outbound(c, ctx) ? "outbound" : "inbound", c->msg.nrcpts,
	    (unsigned long long)spool_size(c->msg.body), ms);
	msg_reset(&c->msg);
	return SMFIS_CONTINUE;
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
