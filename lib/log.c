#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prio_name(int prio);

static int log_stderr_max = -1; /* lines up to this priority go to stderr */
static bool log_debug;
static bool log_syslog_open;
static int log_file_fd = -1;	 /* log_file, or -1 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void
log_open(const char *ident, bool to_stderr, bool debug)
{
	if (log_syslog_open)
		closelog();
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	log_syslog_open = true;
	log_stderr_max = to_stderr ? LOG_DEBUG : -1;
	log_debug = debug;
}

void
log_stderr_level(int max_prio)
{
	log_stderr_max = max_prio;
}

int
log_set_file(const char *path, char *err, size_t errlen)
{
	int fd;

	if (strcmp(path, "-") == 0) {
		log_stderr_max = LOG_DEBUG;
		return 0;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0640);
	if (fd < 0) {
		if (err && errlen)
			snprintf(err, errlen, "log_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (log_file_fd >= 0)
		close(log_file_fd);
	log_file_fd = fd;
	return 0;
}

void
log_close(void)
{
	if (log_syslog_open)
		closelog();
	log_syslog_open = false;
	if (log_file_fd >= 0)
		close(log_file_fd);
	log_file_fd = -1;
}

/* "2026-12-07T03:27:06+00:00 smime-milter[PID]: level: text\n" */
static void
log_write_line(int fd, int prio, const char *line)
{
	char out[2300], stamp[40], zone[8];
	struct tm tm;
	time_t now = time(NULL);
	int len;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	len = snprintf(out, sizeof(out), "%s%.3s:%.2s smime-milter[%ld]: %s: %s\n", stamp, zone,
	    zone + 3, (long)getpid(), log_prio_name(prio), line);
	if (len > (int)sizeof(out) - 1) {
		len = (int)sizeof(out) - 1;
		out[len - 1] = '\n';
	}
	pthread_mutex_lock(&log_lock);
	if (len > 0 && write(fd, out, (size_t)len) < 0) {
		/* nowhere left to complain */
	}
	pthread_mutex_unlock(&log_lock);
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
	if (prio <= log_stderr_max)
		log_write_line(STDERR_FILENO, prio, line);
	if (log_file_fd >= 0)
		log_write_line(log_file_fd, prio, line);
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
