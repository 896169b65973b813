/*
 * log.h — the one logging facade.
 *
 * Everything goes to syslog (facility mail); with log_open(..., true) each
 * line is also written to stderr. Lines about a message start with the MTA
 * queue id ("QUEUEID: ..."), "NOQUEUE" when the MTA has not assigned one yet,
 * exactly as Postfix itself logs.
 */
#ifndef SMIME_LOG_H
#define SMIME_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

/* ident: program name for syslog; to_stderr: mirror to stderr;
 * debug: also emit LOG_DEBUG lines. Safe to call again (reopens). */
void log_open(const char *ident, bool to_stderr, bool debug);
void log_close(void);

/* A line not about any message (start-up, reload, configuration). */
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line about a message: "QID: text". qid NULL or "" logs "NOQUEUE". */
void log_qid(int prio, const char *qid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vqid(int prio, const char *qid, const char *fmt, va_list ap);

#endif
