#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool log_stderr;
static bool log_debug;
static bool log_syslog_open;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void
log_open(const char *ident, bool to_stderr, bool debug)
{
	if (log_syslog_open)
		closelog();
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	log_syslog_open = true;
	log_stderr = to_stderr;
	log_debug = debug;
}

void
log_close(void)
{
	if (log_syslog_open)
		closelog();
	log_syslog_open = false;
}

static const char *
log_prio_name(int prio)
{
	switch (prio) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT: return "fatal";
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

static void
log_emit(int prio, const char *prefix, const char *fmt, va_list ap)
{
	char line[2048];
	int n = 0;

	if (prio == LOG_DEBUG && !log_debug)
		return;
	if (prefix)
		n = snprintf(line, sizeof(line), "%s: ", prefix);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* Never let message data inject line breaks into the log. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (log_syslog_open)
		syslog(prio, "%s", line);
	if (log_stderr) {
		char out[2200];
		struct tm tm;
		time_t now = time(NULL);
		int len;

		localtime_r(&now, &tm);
		len = snprintf(out, sizeof(out), "%02d:%02d:%02d smime-milter[%ld]: %s: %s\n",
		    tm.tm_hour, tm.tm_min, tm.tm_sec, (long)getpid(),
		    log_prio_name(prio), line);
		if (len > (int)sizeof(out) - 1)
			len = (int)sizeof(out) - 1;
		pthread_mutex_lock(&log_lock);
		if (len > 0 && write(STDERR_FILENO, out, (size_t)len) < 0) {
			/* nowhere left to complain */
		}
		pthread_mutex_unlock(&log_lock);
	}
}

void
log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(prio, NULL, fmt, ap);
	va_end(ap);
}

void
log_vqid(int prio, const char *qid, const char *fmt, va_list ap)
{
	log_emit(prio, (qid && *qid) ? qid : "NOQUEUE", fmt, ap);
}

void
log_qid(int prio, const char *qid, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vqid(prio, qid, fmt, ap);
	va_end(ap);
}
