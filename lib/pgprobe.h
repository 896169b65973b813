/*
 * pgprobe.h — when a PostgreSQL server does not let us in: is it an outage
 * the daemon rides out (it starts, answers from its local copy and
 * tempfails the rest), or a configuration that can never work?
 *
 * Certain configuration problems are the ones the server itself states
 * (SQLSTATE class 28, invalid authorization: a wrong password, a role
 * that does not exist, no pg_hba.conf entry; 3D000, the database does not
 * exist; class 42, e.g. no CONNECT privilege), a password the server asks
 * for and the connection string does not provide, and a connection string
 * libpq cannot parse. Everything else (refused, timed out, a name that does
 * not resolve, a server starting up or out of connections, TLS trouble) is
 * counted as unreachable: it may pass by itself.
 */
#ifndef SMIME_PGPROBE_H
#define SMIME_PGPROBE_H

#include <stddef.h>

enum pgprobe_result {
	PGPROBE_OK,	     /* connected */
	PGPROBE_UNREACHABLE, /* may be an outage */
	PGPROBE_REFUSED,     /* a certain configuration problem */
};

/* Connect once to conninfo (a libpq connection string or URI), within
 * 5 seconds. Unless PGPROBE_OK, err receives libpq's reason on one line
 * (with the server's SQLSTATE when it sent one). */
enum pgprobe_result pgprobe_connect(const char *conninfo, char *err, size_t errlen);

/* The classification alone: msg is libpq's error text for a failed
 * connection made with PQERRORS_VERBOSE (so "FATAL:  28P01: ..."). */
enum pgprobe_result pgprobe_classify(const char *msg, int needs_password);

#endif
