/*
 * preflight.h — is this installation able to run? The checks that
 * `smimectl check` and `smime-milter -n` share, line for line.
 *
 * With a valid configuration: the daemon's user exists; the trust anchors
 * load; keys_dir exists, is safe (owner, mode), and every key file loads
 * (each file that does not is one problem), and every address and domain
 * has a signing key valid for more than warn_expiry_days days; the
 * cache opens, passes its integrity check, and the daemon's user may write
 * it and its directory (a read-only cache fails every harvest later), or,
 * on PostgreSQL, the database answers (one that does not answer is a
 * warning, since the daemon starts and tempfails through an outage; one
 * that refuses the configured login or database is a problem, see
 * pgprobe.h); the spool directory is writable by
 * that user; the pid file's directory follows pidfile.h's rules; a unix
 * socket's directory exists or can be created; key discovery's files
 * (bind passwords, DNSSEC trust anchor) and the metrics token load; the
 * revocation store, when there is one, opens. "The daemon's user" is `user` when set; with no `user`, whoever
 * runs the check (root assumes the owner of keys_dir: the systemd unit
 * runs the daemon as its own user with `user` unset). Access is judged
 * from owner, group (supplementary groups included) and mode bits.
 */
#ifndef SMIME_PREFLIGHT_H
#define SMIME_PREFLIGHT_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

enum preflight_level {
	PREFLIGHT_OK,	   /* a healthy area's summary */
	PREFLIGHT_WARNING, /* worth knowing, but the daemon runs through it
			      (a PostgreSQL cache that does not answer now) */
	PREFLIGHT_PROBLEM, /* something to fix */
};

/* One line of the given level. */
typedef void (*preflight_report_fn)(void *arg, enum preflight_level level, const char *line);

/* Run every check on cfg; returns the number of problems reported
 * (warnings do not count). */
int preflight_run(const struct config *cfg, preflight_report_fn report, void *arg);

/* The uid that must own key files (besides root); see above. */
uid_t preflight_daemon_uid(const struct config *cfg);

#endif
