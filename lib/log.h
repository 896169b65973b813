/*
 * log.h — the one logging facade.
 *
 * Everything goes to syslog (facility mail); with log_open(..., true) each
 * line is also written to stderr, and with log_set_file() to a file, as
 * "2026-12-07T03:27:06+01:00 smime-milter[PID]: LEVEL: text". Lines about a message start with the MTA
 * queue id ("QUEUEID: ..."), "NOQUEUE" when the MTA has not assigned one yet,
 * exactly as Postfix itself logs.
 */
#ifndef SMIME_LOG_H
#define SMIME_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

/* ident: program name for syslog; to_stderr: mirror to stderr;
 * debug: also emit LOG_DEBUG lines. Safe to call again (reopens). */
void log_open(const char *ident, bool to_stderr, bool debug);
void log_close(void);
/* Mirror lines up to max_prio (LOG_ERR: errors only) to stderr; -1: none.
 * log_open() sets LOG_DEBUG with to_stderr, -1 without. */
void log_stderr_level(int max_prio);
/* Also append every line to path (created 0640, never through a symbolic
 * link); "-" means stderr. Lines there and on stderr carry a full
 * ISO 8601 time stamp. 0, or -1 with err set. */
int log_set_file(const char *path, char *err, size_t errlen);

/* A line not about any message (start-up, reload, configuration). */
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line about a message: "QID: text". qid NULL or "" logs "NOQUEUE". */
void log_qid(int prio, const char *qid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vqid(int prio, const char *qid, const char *fmt, va_list ap);

#endif
