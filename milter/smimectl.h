/*
 * smimectl.h — what the smimectl_*.c files share: the loaded environment
 * (configuration, trust anchors, key store, key cache), argument parsing,
 * output helpers (tables, JSON) and small file utilities.
 *
 * Every command returns an exit status: CTL_OK, CTL_ERR (a user error, one
 * line on stderr via ctl_err()) or CTL_USAGE.
 */
#ifndef SMIMECTL_H
#define SMIMECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include <openssl/x509.h>

#include "buf.h"
#include "caps.h"
#include "config.h"
#include "gateway.h"

enum { CTL_OK = 0, CTL_ERR = 1, CTL_USAGE = 2 };
/* ctl_parse(): -h/--help was given; print the usage to stdout, exit 0. */
#define CTL_HELP (-1)

/* What a command works with; members are loaded on demand. */
struct ctl {
	const char *conf_file;
	struct config *cfg;
	struct trust *trust;
	struct keystore *ks;
	struct keycache *kc;
	struct revstore *rs;
	struct gw_env env; /* points at the members above */
};

/* ---- environment ---- */

/* Load the configuration; prints its problems and returns CTL_ERR. */
int ctl_load_config(struct ctl *c);
/* Trust anchors from trust.ca_file. */
int ctl_load_trust(struct ctl *c);
/* The key store from keys_dir. On failure err (if given) receives the
 * reason and CTL_ERR is returned without printing; with err NULL the
 * reason is printed. */
int ctl_load_keys(struct ctl *c, char *err, size_t errlen);
/* Whose key files are ours: the configured user's uid; with no user set,
 * our own uid, except that root assumes the owner of keys_dir (the systemd
 * unit runs the daemon as its own user with `user` unset). */
uid_t ctl_daemon_uid(const struct ctl *c);
/* Open the key cache. create: make a new one when missing (as root, owned
 * like its directory); otherwise a missing cache leaves c->kc NULL and
 * returns CTL_OK, so that read-only commands never create files. */
int ctl_open_cache(struct ctl *c, bool create);
void ctl_free(struct ctl *c);
/* Open the revocation store (create: make it when missing; otherwise a
 * missing one leaves c->rs NULL). */
int ctl_open_revstore(struct ctl *c, bool create);
/* One line about a certificate's revocation status, source and age. */
void ctl_revocation_text(struct ctl *c, const char *fp, char *out, size_t len);
int cmd_revocation(struct ctl *c, int argc, char **argv);

/* ---- arguments ---- */

struct ctl_opt {
	const char *name;  /* "--json" */
	const char **val;  /* option takes a value: stored here */
	bool *flag;	   /* option is a flag: set here */
};
/* Split argv (after the subcommand words) into options and positional
 * arguments (pos receives pointers into argv, at most maxpos; more is a
 * usage error). Options may come anywhere; "--name=value" is accepted;
 * "--" ends the options. Returns CTL_OK, CTL_USAGE (message printed) or
 * CTL_HELP. */
int ctl_parse(const char *cmd, int argc, char **argv,
	      const struct ctl_opt *opts, char **pos, int maxpos, int *npos);
/* "smimectl: CMD: text" plus the usage summary on stderr; CTL_USAGE. */
int ctl_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ctl_usage(FILE *f);

/* ---- messages ---- */

/* "smimectl: text" on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- files ---- */

/* Read a whole file (at most CTL_MAX_FILE bytes); err gets the reason. */
#define CTL_MAX_FILE (256u * 1024 * 1024)
int ctl_read_file(const char *path, struct buf *out, char *err, size_t errlen);
/* The password: the first line of file without its line ending, or
 * asked on the terminal (twice when confirm). *out is freed with
 * ctl_password_free(), which wipes it. */
int ctl_password(const char *file, bool confirm, char **out);
void ctl_password_free(char *pw);
/* When running as root, give the open file fd (at path, for messages)
 * the owner and group of the directory dir, so the daemon running as its
 * own user can read it. Prints a warning when that fails. */
void ctl_own_like_dir(int fd, const char *path, const char *dir);

/* ---- output ---- */

/* "YYYY-MM-DDTHH:MM:SSZ"; "" for 0. */
const char *ctl_iso(time_t t, char buf[32]);
/* Capability names, space separated ("aes-256-cbc aes-128-cbc"); "none
 * seen" without CAP_KNOWN. */
const char *ctl_caps_text(caps_t caps, char *buf, size_t len);

/* A table: a header row and rows of cells, columns padded to the widest
 * cell, the last column unpadded. */
struct table {
	size_t ncols;
	size_t nrows; /* header included */
	size_t cap;
	char **cells;
	bool oom;
};
void table_init(struct table *t, size_t ncols, const char *const *headers);
void table_row(struct table *t, const char *const *cells);
int table_print(struct table *t, FILE *f);
void table_free(struct table *t);

/* A streaming JSON writer, indented by two spaces. Strings are written as
 * valid UTF-8 (invalid bytes become U+FFFD). */
struct json {
	FILE *f;
	int depth;
	bool comma[128]; /* per nesting level; deeper levels share the last */
	bool after_key;
};
void json_init(struct json *j, FILE *f);
void json_begin(struct json *j, char open);	 /* '{' or '[' */
void json_end(struct json *j, char close);	 /* '}' or ']' */
void json_key(struct json *j, const char *name);
void json_str(struct json *j, const char *s); /* NULL: null */
void json_int(struct json *j, long long v);
void json_bool(struct json *j, bool v);
void json_num(struct json *j, double v); /* NaN, infinities: null */
void json_null(struct json *j);
void json_time(struct json *j, time_t t); /* 0: null */
void json_caps(struct json *j, caps_t caps); /* null without CAP_KNOWN */
void json_strv(struct json *j, char *const *v, size_t n);
/* Final newline; CTL_ERR when writing failed. */
int json_finish(struct json *j);

/* A certificate's description, for inspect and cert show. */
void ctl_json_cert(struct json *j, X509 *cert);
void ctl_print_cert(FILE *f, const char *indent, X509 *cert);
/* Split a message file into its header fields (folding kept, an mbox
 * "From " line skipped) and the offset of its body. CTL_ERR with err when
 * the header section is not one. */
int ctl_split_message(const unsigned char *p, size_t n, struct mime_headers *h,
    size_t *body_off, char *err, size_t errlen);

/* Comma-separated addresses the certificate speaks for ("(none)"). */
char *ctl_cert_addresses(X509 *cert);

/* ---- commands ---- */

int cmd_cert(struct ctl *c, int argc, char **argv);
int cmd_key(struct ctl *c, int argc, char **argv);
int cmd_inspect(struct ctl *c, int argc, char **argv);
int cmd_check(struct ctl *c, int argc, char **argv);
int cmd_cache(struct ctl *c, int argc, char **argv); /* smimectl_cache.c: the family; */
int cmd_stats(struct ctl *c, int argc, char **argv);   /* smimectl_observe.c */
int cmd_refused(struct ctl *c, int argc, char **argv);
int cmd_cache_init(struct ctl *c, int argc, char **argv); /* smimectl_cacheinit.c */
int cmd_cache_migrate(struct ctl *c, int argc, char **argv);

#endif
