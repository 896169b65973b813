/*
 * smime-milter — the daemon: options, socket, privileges, signals, reload.
 *
 * Order of work: load and check the configuration; bind the socket (and,
 * later, read keys and trust anchors) as root; create the state directories;
 * daemonise unless -f; write the pid file; drop to the configured user;
 * hand over to smfi_main(). SIGUSR1 reloads (libmilter itself treats SIGHUP
 * as "stop"), SIGTERM and SIGINT stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <sqlite3.h>

#include <curl/curl.h>
#include <idn2.h>
#include <ldap.h>
#include <libpq-fe.h>
#include <unbound.h>

#include "config.h"
#include "keycache.h"
#include "keystore.h"
#include "log.h"
#include "certcache.h"
#include "discover.h"
#include "metrics.h"
#include "milter.h"
#include "pidfile.h"
#include "preflight.h"
#include "refusals.h"
#include "revstore.h"
#include "revworker.h"
#include "trust.h"

static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct runtime *rt_current;

static void
runtime_free(struct runtime *rt)
{
	if (rt == NULL)
		return;
	discover_free(rt->disc);
	keycache_close(rt->kc);
	revstore_close(rt->rs);
	refusals_close(rt->rf);
	keystore_free(rt->ks);
	trust_free(rt->trust);
	config_unref(rt->cfg);
	free(rt);
}

struct runtime *
runtime_new(struct config *cfg, char *err, size_t errlen)
{
	struct runtime *rt = calloc(1, sizeof(*rt));
	char why[512] = "", *path = NULL;

	if (rt == NULL) {
		snprintf(err, errlen, "out of memory");
		config_unref(cfg);
		return NULL;
	}
	rt->cfg = cfg;
	rt->refs = 1;
	/* Everything is parsed once here, never per message. */
	if (trust_load(cfg->trust_ca_file, NULL, &rt->trust, why, sizeof(why)) != SM_OK) {
		snprintf(err, errlen, "trust anchors %s: %s", cfg->trust_ca_file, why);
		goto fail;
	}
	if (keystore_load_for(cfg->keys_dir, config_daemon_uid(cfg), &rt->ks, why,
	    sizeof(why)) != SM_OK) {
		snprintf(err, errlen, "keys %s: %s", cfg->keys_dir, why);
		goto fail;
	}
	/* One broken key file stops nobody else's mail. */
	for (size_t i = 0; i < keystore_problem_count(rt->ks); i++)
		log_msg(LOG_ERR, "keys: %s; skipped: mail from its addresses follows on_error",
		    keystore_problem_at(rt->ks, i));
	if (keycache_open(config_cache_backend(cfg), config_cache_target(cfg), &rt->kc, why,
		sizeof(why)) != SM_OK) {
		snprintf(err, errlen, "key cache %s: %s",
		    cfg->cache_backend == CFG_BACKEND_SQLITE ? cfg->cache_path : "(postgresql)", why);
		goto fail;
	}
	if (discover_new(cfg, &rt->disc, why, sizeof(why)) != SM_OK) {
		snprintf(err, errlen, "%s", why);
		goto fail;
	}
	{
		/* Only the daemon queues harvests while the database is down. */
		struct kc_options ko = { (time_t)cfg->cache_max_stale, cfg->cache_outbox_dir };

		if (keycache_configure(rt->kc, &ko, why, sizeof(why)) != SM_OK) {
			snprintf(err, errlen, "key cache: %s", why);
			goto fail;
		}
	}
	rt->env.cfg = cfg;
	rt->env.trust = rt->trust;
	rt->env.ks = rt->ks;
	if ((path = config_revocation_store(cfg)) == NULL ||
	    revstore_open(path, &rt->rs, why, sizeof(why)) != SM_OK) {
		snprintf(err, errlen, "revocation store: %s", path ? why : "out of memory");
		free(path);
		goto fail;
	}
	free(path);
	rt->env.kc = rt->kc;
	rt->env.disc = rt->disc;
	rt->env.rs = rt->rs;
	if (refusals_open("sqlite", cfg->cache_path, &rt->rf, why, sizeof(why)) != SM_OK)
		log_msg(LOG_WARNING, "%s; refusals are not logged", why);
	rt->env.rf = rt->rf;
	return rt;
fail:
	runtime_free(rt);
	return NULL;
}

struct runtime *
runtime_get(void)
{
	struct runtime *rt;

	pthread_mutex_lock(&rt_lock);
	rt = rt_current;
	if (rt)
		rt->refs++;
	pthread_mutex_unlock(&rt_lock);
	return rt;
}

void
runtime_put(struct runtime *rt)
{
	int left;

	if (rt == NULL)
		return;
	pthread_mutex_lock(&rt_lock);
	left = --rt->refs;
	pthread_mutex_unlock(&rt_lock);
	if (left == 0)
		runtime_free(rt);
}

void
runtime_swap(struct runtime *rt)
{
	struct runtime *old;

	pthread_mutex_lock(&rt_lock);
	old = rt_current;
	rt_current = rt;
	pthread_mutex_unlock(&rt_lock);
	runtime_put(old);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: smime-milter [-c FILE] [-f] [-p SOCKET] [-n] [-V] [-h]\n"
	    "  -c FILE    configuration (default " CONFIG_DEFAULT_FILE ")\n"
	    "  -f         stay in the foreground, log to stderr as well as syslog\n"
	    "  -p SOCKET  override the configured socket (inet:PORT@HOST, unix:PATH)\n"
	    "  -n         check the configuration, print problems, exit 0 or 1\n"
	    "  -V         print the version\n"
	    "  -h         this help\n");
}

/* Load a configuration, printing (check mode) or logging every problem. */
static struct config *
load_config(const char *file, bool print)
{
	struct config *cfg = NULL;
	struct config_errors errs = { NULL, 0 };
	sm_status st = config_load(file, &cfg, &errs);

	for (size_t i = 0; i < errs.n; i++) {
		if (print)
			fprintf(stderr, "%s\n", errs.msg[i]);
		else
			log_msg(LOG_ERR, "%s", errs.msg[i]);
	}
	if (st != SM_OK && errs.n == 0) {
		if (print)
			fprintf(stderr, "%s: %s\n", file, sm_strstatus(st));
		else
			log_msg(LOG_ERR, "%s: %s", file, sm_strstatus(st));
	}
	config_errors_free(&errs);
	return cfg;
}

static void
check_report(void *arg, enum preflight_level level, const char *line)
{
	(void)arg;
	if (level == PREFLIGHT_PROBLEM)
		fprintf(stderr, "smime-milter: %s\n", line);
	else if (level == PREFLIGHT_WARNING)
		fprintf(stderr, "smime-milter: warning: %s\n", line);
}

/* -n: the configuration, then everything `smimectl check` checks (only
 * problems and warnings are printed). 0: nothing to fix (warnings
 * included); 1: something to fix. */
static int
check_installation(const char *file)
{
	struct config *cfg = load_config(file, true);
	int problems;

	if (cfg == NULL)
		return 1;
	problems = preflight_run(cfg, check_report, NULL);
	config_unref(cfg);
	return problems ? 1 : 0;
}

/* mkdir -p for one level below an existing parent, owned by uid/gid. */
static int
ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, bool chown_it)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			log_msg(LOG_ERR, "%s: exists and is not a directory", path);
			return -1;
		}
		return 0;
	}
	if (mkdir(path, mode) != 0) {
		log_msg(LOG_ERR, "cannot create directory %s: %s", path, strerror(errno));
		return -1;
	}
	if (chown_it && chown(path, uid, gid) != 0)
		log_msg(LOG_WARNING, "cannot chown %s: %s", path, strerror(errno));
	return 0;
}

static int
ensure_parent(const char *file, mode_t mode, uid_t uid, gid_t gid, bool chown_it)
{
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", file);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	return ensure_dir(dir, mode, uid, gid, chown_it);
}

/* Turn off Nagle on libmilter's listening socket: accepted sockets inherit
 * it on Linux, and libmilter writes its end-of-message replies back to back,
 * which otherwise costs a delayed-ACK round (40 ms) per message. */
static void
listener_nodelay(void)
{
	for (int fd = 3; fd < 1024; fd++) {
		int on = 0, one = 1;
		socklen_t len = sizeof(on);
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 || !on)
			continue;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
			continue;
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
}

static const char *
unix_path(const char *sock)
{
	if (strncmp(sock, "unix:", 5) == 0)
		return sock + 5;
	if (strncmp(sock, "local:", 6) == 0)
		return sock + 6;
	return NULL;
}

/* What the daemon listens on, fixed at start: a reload can change the
 * configuration file, never the socket. */
static char listen_sock[512];	  /* as libmilter got it */
static char listen_conf_sock[512]; /* the configuration's, at start ("" with -p) */

static void
reload_socket_note(const struct config *cfg)
{
	char want[512];

	if (listen_conf_sock[0] == '\0')
		return; /* -p decides, whatever the file says */
	if (config_socket_milter(cfg->socket, want, sizeof(want)) != SM_OK ||
	    strcmp(want, listen_conf_sock) != 0)
		log_msg(LOG_WARNING,
		    "reload: socket changes need a restart; still listening on %s, not on %s",
		    listen_sock, cfg->socket);
}

static void revocation_follow(const struct config *cfg);

static void *
reload_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	for (;;) {
		struct runtime *cur, *rt;
		struct config *cfg;
		char err[256];

		if (sigwait(set, &sig) != 0)
			continue;
		cur = runtime_get();
		log_msg(LOG_NOTICE, "SIGUSR1: reloading %s", cur->cfg->file);
		cfg = load_config(cur->cfg->file, false);
		runtime_put(cur);
		if (cfg == NULL) {
			log_msg(LOG_ERR, "reload failed: keeping the old configuration");
			metrics_reload(false);
			continue;
		}
		reload_socket_note(cfg);
		rt = runtime_new(cfg, err, sizeof(err));
		if (rt == NULL) {
			log_msg(LOG_ERR, "reload failed: %s; keeping the old configuration", err);
			metrics_reload(false);
			continue;
		}
		runtime_swap(rt);
		revocation_follow(rt->cfg);
		/* Verdicts and the lookups messages keep are made again. */
		certcache_bump();
		metrics_reload(true);
		log_msg(LOG_NOTICE, "reloaded configuration from %s", rt->cfg->file);
	}
	return NULL;
}

/* How often the revocation worker looks for due rows (an indexed query). */
#define REVWORKER_INTERVAL 2

/* The revocation worker: one thread for the process, with a store handle
 * of its own; reloads keep it (a changed timeout or proxy takes a
 * restart). Started after the signal mask is set, so it never takes a
 * signal meant for libmilter. None while revocation.check is off (the
 * global one and every rule's): the store (next to cache.path, whatever
 * the backend) may hold rows queued by a run with checks on or by
 * smimectl, and off means that nothing is checked, queued or logged
 * about revocation. */
static pthread_mutex_t rw_lock = PTHREAD_MUTEX_INITIALIZER;
static struct revworker *rw_current;

static struct revworker *
revocation_worker(const struct config *cfg)
{
	struct revworker *w = NULL;
	char why[512] = "", *path = config_revocation_store(cfg);

	if (path == NULL ||
	    revworker_start(path, (long)cfg->revocation.timeout_ms, cfg->revocation.proxy,
		REVWORKER_INTERVAL, &w, why, sizeof(why)) != SM_OK)
		log_msg(LOG_ERR, "revocation worker not started: %s", path ? why : "out of memory");
	free(path);
	return w;
}

/* Start or stop the worker as cfg's revocation checks want (NULL: stop);
 * at start and after every reload. */
static void
revocation_follow(const struct config *cfg)
{
	struct revworker *old = NULL;

	pthread_mutex_lock(&rw_lock);
	if (cfg != NULL && config_revocation_on(cfg)) {
		if (rw_current == NULL)
			rw_current = revocation_worker(cfg);
	} else {
		old = rw_current;
		rw_current = NULL;
	}
	pthread_mutex_unlock(&rw_lock);
	revworker_stop(old);
}

static void
print_versions(void)
{
	unsigned int maj = 0, min = 0, pl = 0;

	smfi_version(&maj, &min, &pl);
	printf("smime-milter %s\n", SMIME_VERSION);
	printf("%s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
	printf("SQLite %s\n", sqlite3_libversion());
	printf("libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
	    LIBCONFIG_VER_REVISION);
	printf("libmilter %u.%u.%u\n", maj, min, pl);
	printf("libcurl %s\n", curl_version_info(CURLVERSION_NOW)->version);
	printf("libpq %d.%d\n", PQlibVersion() / 10000, PQlibVersion() % 10000);
	printf("libunbound %s\n", ub_version());
	printf("%s %d.%d.%d\n", LDAP_VENDOR_NAME, LDAP_VENDOR_VERSION_MAJOR,
	    LDAP_VENDOR_VERSION_MINOR, LDAP_VENDOR_VERSION_PATCH);
	printf("libidn2 %s\n", idn2_check_version(NULL));
}

/* Everything start-up decides, handed from one step to the next. */
struct start {
	const char *file, *sock_override;
	bool foreground;
	struct config *cfg;
	struct passwd *pw; /* the user to become, NULL: stay */
	const char *sock;  /* libmilter's spelling */
	struct pidfile *pidf;
	int ready_fd;	   /* to the waiting parent (background), or -1 */
};

/* The configured user: exists, and we can become it. */
static int
start_user(struct start *s)
{
	const struct config *cfg = s->cfg;

	if (cfg->user == NULL || *cfg->user == '\0') {
		if (geteuid() == 0) {
			log_msg(LOG_ERR,
			    "refusing to run as root: set user = \"smime-milter\" (the daemon drops "
			    "to it after binding its socket), or user = \"root\" to run as root "
			    "knowingly");
			return -1;
		}
		return 0;
	}
	if ((s->pw = getpwnam(cfg->user)) == NULL) {
		log_msg(LOG_ERR, "user \"%s\" does not exist", cfg->user);
		return -1;
	}
	if (s->pw->pw_uid == geteuid()) {
		s->pw = NULL; /* already that user (or root by choice): nothing to change */
	} else if (geteuid() != 0) {
		log_msg(LOG_ERR, "cannot switch to user \"%s\": not running as root", cfg->user);
		return -1;
	}
	return 0;
}

/* The mode of a unix socket's directory: the socket's, searchable. */
static mode_t
socket_dir_mode(unsigned sock_mode)
{
	mode_t m = 0700;

	if (sock_mode & 0070)
		m |= 0050;
	if (sock_mode & 0007)
		m |= 0005;
	return m;
}

/* Directories, the pid file, keys, cache: all before the socket. */
static int
start_state(struct start *s)
{
	const struct config *cfg = s->cfg;
	uid_t uid = s->pw ? s->pw->pw_uid : 0;
	gid_t gid = s->pw ? s->pw->pw_gid : 0;
	const char *upath = unix_path(s->sock);
	char err[512];

	if (ensure_dir(cfg->spool_dir, 0700, uid, gid, s->pw != NULL) ||
	    ensure_parent(cfg->cache_path, 0750, uid, gid, s->pw != NULL) ||
	    ensure_parent(cfg->pid_file, 0755, 0, 0, false) ||
	    (upath && ensure_parent(upath, socket_dir_mode(cfg->socket_mode), uid, gid,
	    s->pw != NULL)))
		return -1;
	chmod(cfg->spool_dir, 0700);
	/* The pid file before the socket and the cache: a second instance
	 * with the same pid file stops here, before it could unlink the first
	 * one's unix socket. */
	if (pidfile_open(cfg->pid_file, &s->pidf, err, sizeof(err)) != SM_OK) {
		log_msg(LOG_ERR, "%s; not starting", err);
		return -1;
	}
	return 0;
}

static int
start_runtime(struct start *s)
{
	struct runtime *rt;
	char err[1024];

	rt = runtime_new(config_ref(s->cfg), err, sizeof(err));
	if (rt == NULL) {
		log_msg(LOG_ERR, "%s; not starting", err);
		return -1;
	}
	runtime_swap(rt);
	if (s->pw) {
		/* The cache was opened as root: its files must belong to the
		 * user we become, or harvesting fails after the switch. */
		const char *sfx[] = { "", "-wal", "-shm", ".revocation", ".revocation-wal",
			".revocation-shm" };
		for (size_t i = 0; i < 6; i++) {
			char p[4096];
			snprintf(p, sizeof(p), "%s%s", s->cfg->cache_path, sfx[i]);
			if (access(p, F_OK) == 0 && chown(p, s->pw->pw_uid, s->pw->pw_gid) != 0)
				log_msg(LOG_WARNING, "cannot chown %s: %s", p, strerror(errno));
		}
	}
	return 0;
}

static int
start_socket(struct start *s)
{
	const char *upath = unix_path(s->sock);
	mode_t old_umask;
	int rc;

	if (smfi_setconn((char *)s->sock) == MI_FAILURE ||
	    smfi_register(milter_desc) == MI_FAILURE) {
		log_msg(LOG_ERR, "cannot use socket %s", s->sock);
		return -1;
	}
	old_umask = umask(0777 & ~(mode_t)s->cfg->socket_mode);
	rc = smfi_opensocket(true);
	umask(old_umask);
	if (rc == MI_FAILURE) {
		log_msg(LOG_ERR, "cannot listen on %s (in use, or no permission?)", s->sock);
		return -1;
	}
	if (upath) {
		chmod(upath, s->cfg->socket_mode);
		if (s->pw && chown(upath, s->pw->pw_uid, s->pw->pw_gid) != 0)
			log_msg(LOG_WARNING, "cannot chown %s: %s", upath, strerror(errno));
	}
	listener_nodelay();
	return 0;
}

/* Detach (unless -f). The parent waits until the child is ready (pid file
 * written, privileges dropped, listening) and exits 0, or 1 when the child
 * fails first: `systemctl start` and scripts see a failed start, and the
 * child's errors still reach the caller's stderr until then. */
static int
start_detach(struct start *s)
{
	int p[2];
	pid_t pid;
	char c;

	if (s->foreground)
		return 0;
	if (pipe(p) != 0 || (pid = fork()) < 0) {
		log_msg(LOG_ERR, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		ssize_t n;

		close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 && c == 'R' ? 0 : 1);
	}
	close(p[0]);
	s->ready_fd = p[1];
	setsid();
	return 0;
}

/* Tell the waiting parent we are up; stdin/stdout (and stderr, unless
 * log_file = "-" keeps it for a container's log) become /dev/null. */
static void
start_ready(struct start *s)
{
	bool keep_stderr = s->cfg->log_file && strcmp(s->cfg->log_file, "-") == 0;
	int fd;

	if (s->ready_fd < 0)
		return;
	if (!keep_stderr)
		log_stderr_level(-1);
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (!keep_stderr)
			dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (write(s->ready_fd, "R", 1) != 1) {
		/* the parent is gone: nobody left to tell */
	}
	close(s->ready_fd);
	s->ready_fd = -1;
}

static int
start_drop(struct start *s)
{
	char err[512];

	if (pidfile_write(s->pidf, getpid(), err, sizeof(err)) != SM_OK) {
		log_msg(LOG_ERR, "%s; not starting", err);
		return -1;
	}
	/* Metrics listener and expiry warnings (observe.c), before the
	 * privileges go: a unix metrics socket may live in a root-owned dir. */
	if (observe_start() != 0)
		return -1;
	if (s->pw && (initgroups(s->pw->pw_name, s->pw->pw_gid) != 0 ||
	    setgid(s->pw->pw_gid) != 0 || setuid(s->pw->pw_uid) != 0 || setuid(0) == 0)) {
		log_msg(LOG_ERR, "cannot drop privileges to %s", s->pw->pw_name);
		return -1;
	}
	return 0;
}

/* SIGUSR1 is blocked everywhere and taken by one thread with sigwait;
 * libmilter's own signal thread handles SIGHUP, SIGTERM and SIGINT. */
static int
start_signals(struct start *s)
{
	static sigset_t usr1;
	sigset_t all;
	pthread_t tid;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	/* Block the stop signals too before any thread exists, so they
	 * reach libmilter's sigwait and not the reload thread. */
	all = usr1;
	sigaddset(&all, SIGTERM);
	sigaddset(&all, SIGINT);
	sigaddset(&all, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	revocation_follow(s->cfg);
	if (pthread_create(&tid, NULL, reload_thread, &usr1) != 0) {
		log_msg(LOG_ERR, "cannot start the reload thread");
		return -1;
	}
	pthread_detach(tid);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Logging as configured; until the daemon detaches, errors also reach
 * stderr, so a failed start is never silent where there is no syslog. */
static int
start_logging(struct start *s)
{
	char err[512];

	log_open("smime-milter", s->foreground, s->cfg->log_debug);
	if (s->cfg->log_file && *s->cfg->log_file &&
	    log_set_file(s->cfg->log_file, err, sizeof(err)) != 0) {
		log_msg(LOG_ERR, "%s; not starting", err);
		return -1;
	}
	if (!s->foreground && !(s->cfg->log_file && strcmp(s->cfg->log_file, "-") == 0))
		log_stderr_level(LOG_ERR);
	return 0;
}

static int
start(struct start *s)
{
	static char sockbuf[512];

	log_open("smime-milter", s->foreground, false);
	if (!s->foreground)
		log_stderr_level(LOG_ERR);
	s->cfg = load_config(s->file, s->foreground);
	if (s->cfg == NULL) {
		log_msg(LOG_ERR, "%s: configuration invalid, not starting", s->file);
		return 1;
	}
	if (start_logging(s) != 0)
		return 1;
	if (config_socket_milter(s->sock_override ? s->sock_override : s->cfg->socket, sockbuf,
	    sizeof(sockbuf)) != SM_OK) {
		log_msg(LOG_ERR, "socket name too long; not starting");
		return 1;
	}
	s->sock = sockbuf;
	snprintf(listen_sock, sizeof(listen_sock), "%s", sockbuf);
	if (s->sock_override == NULL)
		snprintf(listen_conf_sock, sizeof(listen_conf_sock), "%s", sockbuf);
	if (start_user(s) || start_state(s) || start_runtime(s) || start_socket(s) ||
	    start_detach(s) || start_drop(s) || start_signals(s))
		return 1;
	log_msg(LOG_NOTICE, "smime-milter %s listening on %s%s%s", SMIME_VERSION, s->sock,
	    s->pw ? " as user " : "", s->pw ? s->pw->pw_name : "");
	start_ready(s);
	return 0;
}

int
main(int argc, char **argv)
{
	struct start s = { CONFIG_DEFAULT_FILE, NULL, false, NULL, NULL, NULL, NULL, -1 };
	bool check_only = false;
	int opt, rc;

	while ((opt = getopt(argc, argv, "c:fp:nVh")) != -1) {
		switch (opt) {
		case 'c': s.file = optarg; break;
		case 'f': s.foreground = true; break;
		case 'p': s.sock_override = optarg; break;
		case 'n': check_only = true; break;
		case 'V': print_versions(); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (check_only)
		return check_installation(s.file);
	if (start(&s) != 0) {
		pidfile_close(s.pidf);
		return 1;
	}
	config_unref(s.cfg);
	rc = smfi_main();
	log_msg(LOG_NOTICE, "stopping");
	revocation_follow(NULL);
	pidfile_close(s.pidf);
	return rc == MI_SUCCESS ? 0 : 1;
}
