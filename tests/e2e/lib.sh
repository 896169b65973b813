# tests/e2e/lib.sh — end-to-end harness: a private Postfix on loopback with
# smime-milter in it, smtp-sink as the next hop, swaks as the client.
#
# POSIX sh (tests run as `sh FILE`). A test does:
#
#   . "$SMIME_TOP/tests/e2e/lib.sh"
#   e2e_setup                       # temp dir, ports, cleanup trap
#   sink_start
#   milter_write_config "$E2E_DIR/milter.conf"
#   milter_start "$E2E_DIR/milter.conf"
#   postfix_start
#   send_mail "$PF_IN_PORT" alice@partner.example bob@org.example --body hi
#   expect_reply 250
#   wait_delivered 1
#
# Everything started here is stopped by its PID on exit (trap), also on
# failure. E2E_KEEP=1 keeps the temp dir of a failed run and says where;
# E2E_KEEP=always keeps it in any case.
#
# Variables set by e2e_setup (read them, do not change them):
#   E2E_DIR        the temp dir (mode 0755 so that user postfix can enter)
#   SINK_PORT      smtp-sink port; SINK_DIR holds one file per message
#   MILTER_PORT    the milter's port; MILTER_SOCKET=inet:PORT@127.0.0.1
#   MILTER_LOG     the daemon's stderr
#   PF_IN_PORT     Postfix smtpd, inbound (no daemon name)
#   PF_OUT_PORT    Postfix smtpd, outbound (milter_macro_daemon_name=ORIGINATING)
#   PF_DIR         Postfix config_directory; PF_LOG its maillog_file
#   SWAKS_LOG      transcript of the last send_mail

# shellcheck disable=SC2034 # read by sendmail-lib.sh
E2E_LIB_LOADED=1
E2E_HOST=127.0.0.1
E2E_NAME=$(basename "$0" .test)

SINK_PID=
MILTER_PID=
PF_STARTED=
E2E_PORTS_USED=

# ---------------------------------------------------------------- reporting

e2e_log() { printf '%s: %s\n' "$E2E_NAME" "$*" >&2; }

# e2e_tail FILE [LINES] — print the tail of a log, labelled.
e2e_tail() {
	[ -n "$1" ] || return 0
	if [ -s "$1" ]; then
		printf -- '--- tail of %s\n' "$1" >&2
		tail -n "${2:-25}" "$1" | sed 's/^/  | /' >&2
	fi
}

# fail REASON... — print the reason and the tails of the logs, exit 1.
fail() {
	printf '%s: FAIL: %s\n' "$E2E_NAME" "$*" >&2
	e2e_tail "${SWAKS_LOG:-}" 30
	e2e_tail "${MILTER_LOG:-}" 30
	e2e_tail "${PF_LOG:-}" 30
	e2e_tail "${SINK_LOG:-}" 10
	exit 1
}

# need CMD... — every command must exist; a missing one fails the test.
need() {
	for _c in "$@"; do
		command -v "$_c" >/dev/null 2>&1 ||
			fail "prerequisite missing: '$_c' not found in PATH (run 'make deps' as root)"
	done
}

# ------------------------------------------------------------ waiting

# wait_until SECONDS COMMAND... — retry COMMAND every 0.1 s; false on timeout.
wait_until() {
	_wu_tries=$(($1 * 10))
	shift
	while [ "$_wu_tries" -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		_wu_tries=$((_wu_tries - 1))
	done
	"$@"
}

e2e_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
e2e_dead() { ! e2e_alive "$1"; }
# e2e_running PID — alive and not a zombie (a process that is not our child
# may wait a while for its new parent to reap it).
e2e_running() {
	e2e_alive "$1" || return 1
	case $(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) in
	Z | X) return 1 ;;
	esac
	return 0
}
e2e_stopped() { ! e2e_running "$1"; }

# e2e_stop_pid PID NAME [SECONDS] — SIGTERM, bounded wait, then SIGKILL.
# Returns 1 when SIGKILL was needed.
e2e_stop_pid() {
	e2e_alive "$1" || return 0
	kill -TERM "$1" 2>/dev/null
	if wait_until "${3:-10}" e2e_dead "$1"; then
		wait "$1" 2>/dev/null
		return 0
	fi
	e2e_log "$2 (pid $1) ignored SIGTERM; sending SIGKILL"
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 1
}

# ------------------------------------------------------------ ports

e2e_port_listening() { # PORT
	[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

e2e_port_in_use() { # PORT: listening, or connected, or handed out already
	case " $E2E_PORTS_USED " in *" $1 "*) return 0 ;; esac
	[ -n "$(ss -Htan "sport = :$1" 2>/dev/null)" ]
}

# e2e_free_port — print a free TCP port in 20000-39999 and remember it.
e2e_free_port() {
	_fp_n=0
	while [ "$_fp_n" -lt 200 ]; do
		_fp_r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		_fp=$((20000 + (_fp_r + $$) % 20000))
		if ! e2e_port_in_use "$_fp"; then
			E2E_PORTS_USED="$E2E_PORTS_USED $_fp"
			echo "$_fp"
			return 0
		fi
		_fp_n=$((_fp_n + 1))
	done
	fail "no free loopback port found in 20000-39999"
}

# ------------------------------------------------------------ setup/cleanup

e2e_cleanup() {
	_st=$?
	trap - EXIT HUP INT TERM
	# A reader that went away (| head) must not cut the cleanup short.
	trap '' PIPE
	set +e
	_leak=
	[ -n "$PF_STARTED" ] && { postfix_stop || _leak="$_leak postfix"; }
	if [ -n "$MILTER_PID" ]; then
		e2e_stop_pid "$MILTER_PID" smime-milter || _leak="$_leak smime-milter"
		MILTER_PID=
	fi
	if [ -n "${SM_CLEANUP:-}" ]; then $SM_CLEANUP; fi
	if [ -n "$SINK_PID" ]; then
		e2e_stop_pid "$SINK_PID" smtp-sink
		SINK_PID=
	fi
	if [ -n "$_leak" ] && [ "$_st" -eq 0 ]; then
		e2e_log "FAIL: did not stop cleanly:$_leak"
		_st=1
	fi
	if { [ "$_st" -ne 0 ] && [ "${E2E_KEEP:-}" = 1 ]; } || [ "${E2E_KEEP:-}" = always ]; then
		e2e_log "keeping $E2E_DIR (E2E_KEEP=${E2E_KEEP:-})"
	elif [ -n "${E2E_DIR:-}" ] && [ -d "$E2E_DIR" ]; then
		rm -rf "$E2E_DIR"
	fi
	[ "$_st" -ne 0 ] && [ "${E2E_KEEP:-}" != 1 ] &&
		e2e_log "exit $_st (E2E_KEEP=1 keeps the temp dir for a look)"
	exit "$_st"
}

# e2e_setup — temp dir, free ports, cleanup trap. Fails when a prerequisite
# (root, postfix, smtp-sink, swaks, ss) is missing.
e2e_setup() {
	need ss od mktemp
	[ -n "${SMIME_TOP:-}" ] || SMIME_TOP=$(cd "$(dirname "$0")/../.." && pwd)
	[ -n "${SMIME_BINDIR:-}" ] || SMIME_BINDIR=$SMIME_TOP/milter
	export SMIME_TOP SMIME_BINDIR
	E2E_DIR=$(mktemp -d /tmp/smime-e2e.XXXXXX) || fail "mktemp -d failed"
	trap e2e_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 141' PIPE
	# Postfix daemons run as user postfix and must traverse this directory.
	chmod 0755 "$E2E_DIR"
	SINK_PORT=$(e2e_free_port) || exit 1
	MILTER_PORT=$(e2e_free_port) || exit 1
	E2E_PORTS_USED="$E2E_PORTS_USED $SINK_PORT $MILTER_PORT"
	PF_IN_PORT=$(e2e_free_port) || exit 1
	E2E_PORTS_USED="$E2E_PORTS_USED $PF_IN_PORT"
	PF_OUT_PORT=$(e2e_free_port) || exit 1
	E2E_PORTS_USED="$E2E_PORTS_USED $PF_OUT_PORT"
	MILTER_SOCKET="inet:$MILTER_PORT@$E2E_HOST"
	MILTER_LOG=$E2E_DIR/milter.log
	SINK_DIR=$E2E_DIR/sink
	SINK_LOG=$E2E_DIR/sink.log
	PF_DIR=$E2E_DIR/postfix
	PF_LOG=$E2E_DIR/postfix.log
	SWAKS_LOG=
	SWAKS_N=0
	e2e_log "temp dir $E2E_DIR; ports sink=$SINK_PORT milter=$MILTER_PORT postfix in=$PF_IN_PORT out=$PF_OUT_PORT"
}

# ------------------------------------------------------------ smtp-sink

# sink_start — smtp-sink on 127.0.0.1:SINK_PORT writing one file per message
# into SINK_DIR. Runs as user postfix (smtp-sink refuses to keep root).
sink_start() {
	need smtp-sink
	mkdir -p "$SINK_DIR"
	chown postfix "$SINK_DIR" 2>/dev/null ||
		fail "cannot chown $SINK_DIR to user postfix (is postfix installed?)"
	# -d: one file per transaction (TEMPLATE + random hex); -u: drop root.
	smtp-sink -4 -u postfix -h sink.e2e.example -d "$SINK_DIR/%H%M%S." \
		"$E2E_HOST:$SINK_PORT" 64 >"$SINK_LOG" 2>&1 &
	SINK_PID=$!
	wait_until 10 e2e_port_listening "$SINK_PORT" ||
		fail "smtp-sink did not listen on $E2E_HOST:$SINK_PORT"
}

# sink_count — number of messages the sink has written.
sink_count() {
	find "$SINK_DIR" -type f | wc -l | tr -d ' '
}

# sink_files — the message files, oldest first (names sort by time).
sink_files() {
	find "$SINK_DIR" -type f | sort
}

# sink_message FILE — the message as received (sink's own X-*/Received
# lines and its trailing empty line removed).
sink_message() {
	awk '
		!done && /^Received: from .* \(\[/ { skip = 3 }
		!done && skip > 0 { skip--; if (skip == 0) done = 1; next }
		!done { next }
		{ lines[n++] = $0 }
		END { if (n > 0 && lines[n-1] == "") n--; for (i = 0; i < n; i++) print lines[i] }
	' "$1"
}

# sink_body FILE — the body of the received message (after the first empty line).
sink_body() {
	sink_message "$1" | awk 'b { print } /^\r?$/ && !b { b = 1 }'
}

# sink_header FILE NAME — the header field(s) NAME (unfolded), one per line.
sink_header() {
	sink_message "$1" | awk -v name="$2" '
		/^\r?$/ { exit }
		/^[ \t]/ { if (cur != "") cur = cur $0; next }
		{ if (cur != "") print cur; cur = "" }
		tolower(substr($0, 1, length(name) + 1)) == tolower(name) ":" { cur = $0 }
		END { if (cur != "") print cur }
	' | tr -d '\r'
}

# ------------------------------------------------------------ smime-milter

# milter_write_config FILE [EXTRA-LINES] — a minimal configuration pointing
# into E2E_DIR (socket, pid file, spool, cache, keys, trust, domains).
# Direction is decided by {daemon_name} only (internal_hosts empty), and
# outbound signing/encryption is off unless EXTRA-LINES turn it on.
milter_write_config() {
	mkdir -p "$E2E_DIR/spool" "$E2E_DIR/keys" "$E2E_DIR/cache"
	chmod 0700 "$E2E_DIR/keys"
	# The daemon refuses to start without a trust anchor: give it a
	# throwaway one unless the test put its own CA there.
	[ -s "$E2E_DIR/ca.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
		-subj "/CN=e2e throwaway CA" -keyout "$E2E_DIR/ca.key" -out "$E2E_DIR/ca.pem" \
		>/dev/null 2>&1 || fail "cannot make a throwaway CA with openssl"
	_mc_extra='outbound = { sign = false; encrypt = "never"; };'
	[ $# -ge 2 ] && _mc_extra=$2
	cat >"$1" <<EOF
# written by tests/e2e/lib.sh for $E2E_NAME
socket = "$MILTER_SOCKET";
pid_file = "$E2E_DIR/smime-milter.pid";
spool_dir = "$E2E_DIR/spool";
authserv_id = "mx.e2e.example";
internal_domains = [ "org.example" ];
internal_hosts = [ ];
outbound_daemons = [ "ORIGINATING" ];
cache = { path = "$E2E_DIR/cache/cache.db"; };
keys_dir = "$E2E_DIR/keys";
trust = { ca_file = "$E2E_DIR/ca.pem"; };
$_mc_extra
EOF
}

# milter_socket_port — the port of an inet:PORT@HOST MILTER_SOCKET.
milter_socket_port() {
	_msp=${MILTER_SOCKET#inet:}
	echo "${_msp%%@*}"
}

# milter_wait_ready — bounded wait until MILTER_SOCKET accepts connections;
# fails with the log tail when the daemon exits or never listens.
milter_wait_ready() {
	_mw_n=100
	while [ "$_mw_n" -gt 0 ]; do
		e2e_alive "$MILTER_PID" || {
			wait "$MILTER_PID" 2>/dev/null
			_mw_rc=$?
			MILTER_PID=
			fail "smime-milter exited (status $_mw_rc) before listening on $MILTER_SOCKET"
		}
		case "$MILTER_SOCKET" in
		inet:*) e2e_port_listening "$(milter_socket_port)" && return 0 ;;
		unix:* | local:*) [ -S "${MILTER_SOCKET#*:}" ] && return 0 ;;
		esac
		sleep 0.1
		_mw_n=$((_mw_n - 1))
	done
	fail "smime-milter (pid $MILTER_PID) did not listen on $MILTER_SOCKET within 10 s"
}

# milter_start CONF [ARGS...] — run smime-milter -f -c CONF ARGS in the
# background, stderr appended to MILTER_LOG; returns when the socket listens.
milter_start() {
	_ms_bin=$SMIME_BINDIR/smime-milter
	[ -x "$_ms_bin" ] || fail "prerequisite missing: $_ms_bin not built (run 'make')"
	[ -z "$MILTER_PID" ] || fail "milter_start: already running (pid $MILTER_PID)"
	_ms_conf=$1
	shift
	printf '=== %s milter_start -c %s %s\n' "$(date +%T)" "$_ms_conf" "$*" >>"$MILTER_LOG"
	"$_ms_bin" -f -c "$_ms_conf" "$@" </dev/null >>"$MILTER_LOG" 2>&1 &
	MILTER_PID=$!
	milter_wait_ready
}

# milter_stop — SIGTERM, wait (10 s); fails when the daemon needed SIGKILL
# or exited with a non-zero status.
milter_stop() {
	[ -n "$MILTER_PID" ] || fail "milter_stop: not running"
	_mp=$MILTER_PID
	kill -TERM "$_mp" 2>/dev/null
	if ! wait_until 10 e2e_dead "$_mp"; then
		kill -KILL "$_mp" 2>/dev/null
		wait "$_mp" 2>/dev/null
		MILTER_PID=
		fail "smime-milter (pid $_mp) did not stop within 10 s of SIGTERM"
	fi
	wait "$_mp" 2>/dev/null
	_rc=$?
	MILTER_PID=
	[ "$_rc" -eq 0 ] || fail "smime-milter exited with status $_rc after SIGTERM"
}

# milter_log_has_qid QUEUEID — the milter logged a line whose message starts
# with QUEUEID (after the "HH:MM:SS smime-milter[PID]: LEVEL: " prefix of -f).
milter_log_has_qid() {
	grep -q -E "(^|\]: ([a-z]+: )?)$1: " "$MILTER_LOG"
}

# milter_kill — SIGKILL (a crash, as far as the MTA can tell).
milter_kill() {
	[ -n "$MILTER_PID" ] || fail "milter_kill: not running"
	kill -KILL "$MILTER_PID" 2>/dev/null
	wait "$MILTER_PID" 2>/dev/null
	MILTER_PID=
	case "$MILTER_SOCKET" in
	inet:*) wait_until 5 e2e_not_listening "$(milter_socket_port)" ||
		fail "milter port still listening after SIGKILL" ;;
	esac
}
e2e_not_listening() { ! e2e_port_listening "$1"; }

# milter_reload — SIGUSR1. Check the outcome with log_wait.
milter_reload() {
	e2e_alive "$MILTER_PID" || fail "milter_reload: not running"
	kill -USR1 "$MILTER_PID"
}

# log_mark FILE — print the current line count (for log_wait / log_since).
log_mark() {
	if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi
}

# log_since FILE MARK — the lines added after MARK.
log_since() {
	[ -f "$1" ] && tail -n +"$(($2 + 1))" "$1"
}

# log_wait FILE MARK ERE [SECONDS] — wait until a line after MARK matches
# ERE (case-insensitive); print it.
log_wait() {
	_lw_n=$((${4:-10} * 10))
	while :; do
		_lw=$(log_since "$1" "$2" | grep -i -E -m1 -e "$3") && {
			echo "$_lw"
			return 0
		}
		[ "$_lw_n" -gt 0 ] || return 1
		sleep 0.1
		_lw_n=$((_lw_n - 1))
	done
}

# ------------------------------------------------------------ Postfix

# Macros the milter reads; Postfix sends only what is listed.
PF_MACROS_CONNECT='j {daemon_name} {daemon_addr} {client_addr} {client_name} {client_port} v _'
PF_MACROS_HELO='{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}'
PF_MACROS_MAIL='i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer} {daemon_name} {client_addr}'
PF_MACROS_RCPT='i {rcpt_addr} {rcpt_host} {rcpt_mailer}'
PF_MACROS_EOH='i'
PF_MACROS_EOD='i {daemon_name} {auth_authen} {client_addr}'

# postfix_start [MAIN.CF-LINE...] — a private Postfix instance in PF_DIR:
# its own config, queue and data directories, log in PF_LOG, two smtpd
# services on loopback (PF_IN_PORT inbound, PF_OUT_PORT outbound with
# daemon name ORIGINATING), everything relayed to the sink.
# PF_MILTER (default inet:127.0.0.1:MILTER_PORT) is the smtpd_milters value
# of both services; set PF_MILTER=none for no milter at all.
# Extra arguments are appended to main.cf as they are (override anything).
postfix_start() {
	need postfix postconf
	[ "$(id -u)" = 0 ] || fail "prerequisite missing: a private Postfix instance needs root (postfix start)"
	[ -z "$PF_STARTED" ] || fail "postfix_start: already running"
	_pf_milter=${PF_MILTER:-inet:$E2E_HOST:$MILTER_PORT}
	[ "$_pf_milter" = none ] && _pf_milter=
	mkdir -p "$PF_DIR/etc" "$PF_DIR/queue" "$PF_DIR/data"
	# master and the daemons write locks and caches here as user postfix.
	chown postfix "$PF_DIR/data" || fail "cannot chown $PF_DIR/data to user postfix"
	chmod 0700 "$PF_DIR/data"
	_pf_cf=$PF_DIR/etc
	: >"$PF_LOG"
	cat >"$_pf_cf/main.cf" <<EOF
# private instance written by tests/e2e/lib.sh for $E2E_NAME
compatibility_level = 3.6
config_directory = $_pf_cf
queue_directory = $PF_DIR/queue
data_directory = $PF_DIR/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.e2e.example
mydomain = e2e.example
myorigin = \$mydomain
mydestination =
local_transport = error:local delivery is off in this test instance
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = $E2E_HOST
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [$E2E_HOST]:$SINK_PORT
smtp_dns_support_level = disabled
smtp_host_lookup = native
disable_dns_lookups = yes
smtputf8_enable = no
biff = no
maillog_file = $PF_LOG
maillog_file_prefixes = $E2E_DIR
syslog_name = postfix-e2e
smtpd_banner = \$myhostname ESMTP e2e
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_delay_reject = yes
# retry quickly: a deferred message in this instance is a test failure anyway
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
smtp_connect_timeout = 5s
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 5s
milter_command_timeout = 20s
milter_content_timeout = 40s
milter_connect_macros = $PF_MACROS_CONNECT
milter_helo_macros = $PF_MACROS_HELO
milter_mail_macros = $PF_MACROS_MAIL
milter_rcpt_macros = $PF_MACROS_RCPT
milter_end_of_header_macros = $PF_MACROS_EOH
milter_end_of_data_macros = $PF_MACROS_EOD
EOF
	for _l in "$@"; do printf '%s\n' "$_l" >>"$_pf_cf/main.cf"; done
	_pf_o_in=
	_pf_o_out="-o milter_macro_daemon_name=ORIGINATING"
	if [ -n "$_pf_milter" ]; then
		_pf_o_in="-o smtpd_milters=$_pf_milter"
		_pf_o_out="$_pf_o_out -o smtpd_milters=$_pf_milter"
	fi
	# Debian's master.cf structure, without chroot (nothing to copy into
	# a jail) and without local delivery or TLS.
	cat >"$_pf_cf/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
$E2E_HOST:$PF_IN_PORT inet n - n - - smtpd
  -o syslog_name=postfix-e2e/inbound $_pf_o_in
$E2E_HOST:$PF_OUT_PORT inet n - n - - smtpd
  -o syslog_name=postfix-e2e/outbound $_pf_o_out
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	# check creates the queue directories and fixes their ownership.
	postfix -c "$_pf_cf" check >"$E2E_DIR/postfix-check.out" 2>&1 ||
		fail "postfix -c $_pf_cf check failed: $(cat "$E2E_DIR/postfix-check.out")"
	PF_STARTED=1
	postfix -c "$_pf_cf" start >"$E2E_DIR/postfix-start.out" 2>&1 ||
		fail "postfix -c $_pf_cf start failed: $(cat "$E2E_DIR/postfix-start.out")"
	for _p in "$PF_IN_PORT" "$PF_OUT_PORT"; do
		wait_until 15 e2e_port_listening "$_p" ||
			fail "private Postfix does not listen on $E2E_HOST:$_p"
	done
	PF_MASTER_PID=$(postfix_master_pid)
	[ -n "$PF_MASTER_PID" ] || fail "no master pid in $PF_DIR/queue/pid/master.pid"
}

postfix_master_pid() {
	[ -f "$PF_DIR/queue/pid/master.pid" ] &&
		tr -d ' \n' <"$PF_DIR/queue/pid/master.pid"
}

# postfix_stop — `postfix -c DIR stop` (Postfix's own PID-based stop of
# this instance), then make sure the master process is gone; SIGKILL it
# (by PID) and return 1 if it lingers.
postfix_stop() {
	[ -n "$PF_STARTED" ] || return 0
	PF_STARTED=
	_pid=${PF_MASTER_PID:-$(postfix_master_pid)}
	postfix -c "$PF_DIR/etc" stop >>"$E2E_DIR/postfix-start.out" 2>&1
	[ -n "$_pid" ] || return 0
	wait_until 15 e2e_dead "$_pid" && return 0
	e2e_log "postfix master (pid $_pid) still running after 'postfix stop'; SIGKILL"
	kill -KILL "$_pid" 2>/dev/null
	return 1
}

# postfix_queue_count — messages in this instance's queue.
postfix_queue_count() {
	find "$PF_DIR/queue/incoming" "$PF_DIR/queue/active" "$PF_DIR/queue/deferred" \
		"$PF_DIR/queue/hold" "$PF_DIR/queue/maildrop" -type f 2>/dev/null | wc -l | tr -d ' '
}

# postfix_flush — ask the queue manager to retry deferred mail now.
postfix_flush() {
	postqueue -c "$PF_DIR/etc" -f >/dev/null 2>&1
}

# ------------------------------------------------------------ swaks

# e2e_swaks_data FILE — copy FILE to SWAKS_LOG.data without its final line
# ending: swaks ends DATA with CRLF "." CRLF of its own, so a file ending in
# a newline would arrive with an extra empty line.
e2e_swaks_data() {
	perl -0777 -pe 's/\r?\n\z//' "$1" >"$SWAKS_LOG.data" ||
		fail "cannot copy $1 for swaks"
}

# send_mail PORT FROM TO [FILE | --body TEXT] [SWAKS-ARGS...]
# One SMTP transaction through 127.0.0.1:PORT with swaks. TO may be a
# comma-separated list. FILE is the whole message (headers and body);
# --body TEXT gets swaks' default headers. Further arguments go to swaks
# (e.g. --header 'X-Foo: bar'). swaks reads "\n" (backslash, n) and
# %TOKENS% in FILE as its own escapes: keep them out of test messages.
# The transcript lands in SWAKS_LOG
# (a new file per call). Returns swaks' exit status (0: accepted).
send_mail() {
	need swaks perl
	[ $# -ge 3 ] || fail "send_mail: usage: send_mail PORT FROM TO [FILE|--body TEXT] [ARGS]"
	_sm_port=$1 _sm_from=$2 _sm_to=$3
	shift 3
	SWAKS_N=$((SWAKS_N + 1))
	SWAKS_LOG=$E2E_DIR/swaks.$SWAKS_N.log
	if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
		[ -f "$1" ] || fail "send_mail: no such message file: $1"
		e2e_swaks_data "$1"
		shift
		set -- --data "@$SWAKS_LOG.data" "$@"
	fi
	swaks --server "$E2E_HOST" --port "$_sm_port" --helo client.e2e.example \
		--from "$_sm_from" --to "$_sm_to" --timeout 60s "$@" \
		>"$SWAKS_LOG" 2>&1 </dev/null
}

# send_mail_pipe COMMAND FROM TO [FILE | ARGS] — like send_mail, talking
# SMTP to COMMAND's stdin/stdout (swaks --pipe), e.g. sendmail -bs.
send_mail_pipe() {
	need swaks perl
	_sp_cmd=$1 _sm_from=$2 _sm_to=$3
	shift 3
	SWAKS_N=$((SWAKS_N + 1))
	SWAKS_LOG=$E2E_DIR/swaks.$SWAKS_N.log
	if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
		[ -f "$1" ] || fail "send_mail_pipe: no such message file: $1"
		e2e_swaks_data "$1"
		shift
		set -- --data "@$SWAKS_LOG.data" "$@"
	fi
	swaks --pipe "$_sp_cmd" --helo client.e2e.example \
		--from "$_sm_from" --to "$_sm_to" --timeout 60s "$@" \
		>"$SWAKS_LOG" 2>&1 </dev/null
}

# reply_final — the reply that decided the last transaction: the first
# error reply (swaks marks it "<**"), otherwise the last reply before QUIT.
# Multi-line replies are reported by their first line, "CODE-" read as "CODE ".
reply_final() {
	[ -f "${SWAKS_LOG:-/nonexistent}" ] || fail "reply_final: no transcript yet"
	_rf=$(grep -m1 -E '^<\*\* +[0-9]{3}' "$SWAKS_LOG") ||
		_rf=$(grep -E '^<- +[0-9]{3}' "$SWAKS_LOG" | grep -v -E '^<- +221[ -]' | tail -n 1)
	printf '%s\n' "$_rf" | sed -e 's/^<[-*]* *//' -e 's/^\([0-9][0-9][0-9]\)-/\1 /' | tr -d '\r'
}

# expect_reply CODE — the deciding reply starts with CODE ("4", "451",
# "451 4.3.2", "250 2.0.0 Ok: queued").
expect_reply() {
	_er=$(reply_final)
	case "$_er" in
	"$1"*) return 0 ;;
	esac
	fail "expected reply $1, got '${_er:-no reply}' (transcript $SWAKS_LOG)"
}

# queue_id_of_last — the queue id in "250 ... queued as ID" of the last
# transcript (Postfix); fails when there is none.
queue_id_of_last() {
	_q=$(sed -n 's/^<- *250.*queued as \([0-9A-Za-z]*\).*/\1/p' "$SWAKS_LOG" | tail -n 1)
	[ -n "$_q" ] || fail "no 'queued as' in the transcript $SWAKS_LOG"
	echo "$_q"
}

# postfix_sent_count — distinct queue ids Postfix logged as delivered.
postfix_sent_count() {
	grep ' status=sent ' "$PF_LOG" 2>/dev/null |
		sed -n 's/.*\]: \([0-9A-Za-z]*\): to=.*/\1/p' | sort -u | wc -l | tr -d ' '
}

e2e_delivered_at_least() { # N
	[ "$(sink_count)" -ge "$1" ] && [ "$(postfix_sent_count)" -ge "$1" ]
}

# wait_delivered N [SECONDS] — wait (default 30 s) until the sink holds N
# complete messages (Postfix logged status=sent for N queue ids); fails on
# timeout and when more than N arrived.
wait_delivered() {
	wait_until "${2:-30}" e2e_delivered_at_least "$1" ||
		fail "expected $1 delivered message(s), sink holds $(sink_count), postfix logged $(postfix_sent_count) sent"
	[ "$(sink_count)" -eq "$1" ] ||
		fail "expected $1 delivered message(s), sink holds $(sink_count)"
}

# sink_file_of QUEUEID — the sink file of the message Postfix queued as QUEUEID
# (Postfix's Received header names the queue id: "with ESMTP id QUEUEID").
sink_file_of() {
	for _f in $(sink_files); do
		grep -q -E "[[:space:]]id $1([;[:space:]]|\$)" "$_f" &&
			{ echo "$_f"; return 0; }
	done
	fail "no message with queue id $1 in $SINK_DIR"
}
