/*
 * fuzz_env.h — what the libFuzzer targets share: a real gateway environment
 * built once per process from the test PKI (tests/pki/mkpki.sh output in
 * $SMIME_FUZZ_PKI, which tests/fuzz/run.sh makes), and turning fuzz bytes
 * into a message as the milter would hand it over.
 *
 * Header-only (static functions): each target is one .c file linked with
 * libsmime.a. A missing prerequisite aborts with a reason: a target that
 * cannot build its environment must not pass quietly.
 */
#ifndef SMIME_FUZZ_ENV_H
#define SMIME_FUZZ_ENV_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "gateway.h"
#include "keycache.h"
#include "keystore.h"
#include "mime.h"
#include "smime.h"
#include "trust.h"

#define FZ_DIE(...)                                                                   \
	do {                                                                          \
		fprintf(stderr, "fuzz setup: " __VA_ARGS__);                          \
		fputc('\n', stderr);                                                  \
		abort();                                                              \
	} while (0)

static char fz_dir[256];

static inline const char *
fz_pki(void)
{
	const char *p = getenv("SMIME_FUZZ_PKI");

	if (p == NULL || access(p, R_OK) != 0)
		FZ_DIE("SMIME_FUZZ_PKI must name a test PKI (tests/pki/mkpki.sh DIR); "
		    "tests/fuzz/run.sh makes one");
	return p;
}

/* The environment of tests/unit/check_gateway.c: alice's three keys in the
 * key store, the test root as trust anchor, a fresh SQLite key cache, and
 * bob's certificate already harvested so that outbound mail encrypts. */
static inline void
fz_env(struct gw_env *env, enum cfg_decrypt mode)
{
	static struct config_errors errs;
	struct config *cfg;
	struct trust *tr;
	struct keystore *ks;
	struct keycache *kc;
	struct smime_key bob;
	enum keycache_outcome oc;
	const char *pki = fz_pki();
	char path[512], cmd[1400], err[300];
	FILE *f;

	snprintf(fz_dir, sizeof(fz_dir), "/tmp/smime-fuzz.XXXXXX");
	if (mkdtemp(fz_dir) == NULL)
		FZ_DIE("mkdtemp failed");
	snprintf(cmd, sizeof(cmd), "mkdir -m 700 %s/keys && cp %s/alice.pem %s/alice-renewed.pem "
	    "%s/alice-expired.pem %s/keys/ && chmod 600 %s/keys/*", fz_dir, pki, pki, pki, fz_dir,
	    fz_dir);
	if (system(cmd) != 0)
		FZ_DIE("copying the keys failed: %s", cmd);
	snprintf(path, sizeof(path), "%s/smime-milter.conf", fz_dir);
	if ((f = fopen(path, "w")) == NULL)
		FZ_DIE("cannot write %s", path);
	fprintf(f, "socket = \"inet:8894@127.0.0.1\";\nauthserv_id = \"mx.test.example\";\n"
	    "internal_domains = [ \"org.example\" ];\nspool_dir = \"%s\";\n"
	    "pid_file = \"%s/pid\";\ncache = { path = \"%s/unused.db\"; };\n"
	    "keys_dir = \"%s/keys\";\ntrust = { ca_file = \"%s/ca.pem\"; };\n",
	    fz_dir, fz_dir, fz_dir, fz_dir, pki);
	fclose(f);
	if (config_load(path, &cfg, &errs) != SM_OK)
		FZ_DIE("config: %s", errs.n ? errs.msg[0] : "?");
	cfg->inbound_decrypt = mode;
	snprintf(path, sizeof(path), "%s/ca.pem", pki);
	if (trust_load(path, NULL, &tr, err, sizeof(err)) != SM_OK)
		FZ_DIE("trust: %s", err);
	snprintf(path, sizeof(path), "%s/keys", fz_dir);
	if (keystore_load(path, &ks, err, sizeof(err)) != SM_OK)
		FZ_DIE("keys: %s", err);
	snprintf(path, sizeof(path), "%s/cache.db", fz_dir);
	if (keycache_open("sqlite", path, &kc, err, sizeof(err)) != SM_OK)
		FZ_DIE("cache: %s", err);
	snprintf(path, sizeof(path), "%s/bob.pem", pki);
	if (smime_key_load_pem(path, &bob, err, sizeof(err)) != SM_OK)
		FZ_DIE("bob: %s", err);
	if (keycache_store(kc, bob.cert, bob.chain, "bob@partner.example", 0,
	    KC_SRC_IMPORTED, &oc, NULL) != SM_OK)
		FZ_DIE("storing bob's certificate failed");
	smime_key_free(&bob);
	env->cfg = cfg;
	env->trust = tr;
	env->ks = ks;
	env->kc = kc;
}

/* A message as the MTA hands it over: header fields up to the first empty
 * line (lines without a colon are dropped, as the MTA would refuse them),
 * the rest as the body. */
struct fz_msg {
	struct mime_headers hdrs;
	struct gw_msg m;
	char *rcpt[1];
};

static inline void
fz_msg(struct fz_msg *f, const uint8_t *data, size_t size, const char *sender, char *rcpt)
{
	size_t pos = 0;

	memset(f, 0, sizeof(*f));
	while (pos < size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t end = nl ? (size_t)(nl - data) : size, next = nl ? end + 1 : size, e = end;
		const uint8_t *colon;
		char *name, *value;

		if (e > pos && data[e - 1] == '\r')
			e--;
		if (e == pos) {
			pos = next;
			break;
		}
		colon = memchr(data + pos, ':', e - pos);
		if (colon != NULL && memchr(data + pos, '\0', e - pos) == NULL) {
			name = strndup((const char *)data + pos, (size_t)(colon - data) - pos);
			value = strndup((const char *)colon + 1, e - (size_t)(colon - data) - 1);
			if (name && value)
				mime_headers_add(&f->hdrs, name, value[0] == ' ' ? value + 1 : value);
			free(name);
			free(value);
		}
		pos = next;
	}
	f->rcpt[0] = rcpt;
	f->m.qid = "FUZZ";
	f->m.sender = sender;
	f->m.rcpts = f->rcpt;
	f->m.nrcpts = 1;
	f->m.hdrs = &f->hdrs;
	f->m.body = data + pos;
	f->m.body_len = size - pos;
}

static inline void
fz_msg_free(struct fz_msg *f)
{
	mime_headers_free(&f->hdrs);
}

#endif
