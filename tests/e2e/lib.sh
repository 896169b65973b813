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
# Ports of the kernel's ephemeral range (32768-60999 by default) are left
# out: a busy machine's outgoing connections take them between our check
# and Postfix's bind ("Address already in use").
e2e_free_port() {
	_fp_n=0
	_fp_span=20000
	_fp_eph=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	case $_fp_eph in
	'' | *[!0-9]*) ;;
	*) [ "$_fp_eph" -gt 21000 ] && [ "$_fp_eph" -lt 40000 ] && _fp_span=$((_fp_eph - 20000)) ;;
	esac
	while [ "$_fp_n" -lt 200 ]; do
		_fp_r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		_fp=$((20000 + (_fp_r + $$) % _fp_span))
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
	for _h in ${E2E_EXIT_HOOKS:-}; do $_h; done
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
# Loopback is a trusted relay (outbound.trusted_relays), so unauthenticated
# test submissions may be signed with personal keys, unless EXTRA-LINES
# name trusted_relays themselves (the sender authorisation tests do).
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
	# The daemon refuses to run as root unless told so: tests run as root.
	_mc_user=
	[ "$(id -u)" = 0 ] && _mc_user='user = "root";'
	cat >"$1" <<EOF
# written by tests/e2e/lib.sh for $E2E_NAME
$_mc_user
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
	grep -q trusted_relays "$1" && return 0
	_mc_tr='trusted_relays = [ "127.0.0.1", "::1" ];'
	if grep -Eq 'outbound[[:space:]]*=[[:space:]]*\{' "$1"; then
		sed -E "0,/outbound[[:space:]]*=[[:space:]]*\{/s//outbound = { $_mc_tr/" "$1" >"$1.tmp" &&
			mv "$1.tmp" "$1"
	else
		echo "outbound = { $_mc_tr };" >>"$1"
	fi
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
# PF_MASTER_EXTRA (lines) is appended to master.cf: more services.
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
	# Extra settings replace the defaults above (postconf -e), rather than
	# appearing twice, which makes every Postfix process warn at start.
	for _l in "$@"; do postconf -c "$_pf_cf" -e "$_l" || fail "postconf -e '$_l' failed"; done
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
${PF_MASTER_EXTRA:-}
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
	timeout 30 postfix -c "$PF_DIR/etc" stop >>"$E2E_DIR/postfix-start.out" 2>&1
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

# ============================================================ S/MIME helpers
#
# For the tests that check what the milter does to mail: the test PKI,
# signed test messages, S/MIME opened by three independent engines
# (openssl cms, GnuPG's gpgsm, Mozilla NSS's cmsutil), and waiting for one
# message by its queue id.

# e2e_on_exit FUNCTION — have the cleanup trap run FUNCTION (no arguments),
# after the milter is stopped, also on failure.
e2e_on_exit() {
	E2E_EXIT_HOOKS="${E2E_EXIT_HOOKS:-} $1"
}

# pki_make — generate the test PKI (tests/pki/mkpki.sh, fresh keys, dates
# relative to now) into PKI=E2E_DIR/pki and make its root the milter's
# trust anchor (E2E_DIR/ca.pem; call it before milter_write_config).
pki_make() {
	need openssl
	PKI=$E2E_DIR/pki
	sh "$SMIME_TOP/tests/pki/mkpki.sh" "$PKI" >"$E2E_DIR/mkpki.log" 2>&1 ||
		fail "tests/pki/mkpki.sh failed: $(tail -n 5 "$E2E_DIR/mkpki.log")"
	cp "$PKI/ca.pem" "$E2E_DIR/ca.pem"
}

# pki_utc SECONDS — the UTC time SECONDS from now as openssl ca takes it.
pki_utc() {
	date -u -d "@$(($(date +%s) + $1))" +%Y%m%d%H%M%SZ
}

# pki_issue NAME ADDRESS NOT-AFTER [BITS] — one more RSA end entity (2048
# bits unless BITS) from the test intermediate (the mkpki.sh profile: keyUsage digitalSignature,
# keyEncipherment, EKU emailProtection, SAN email:ADDRESS), valid from an
# hour ago until NOT-AFTER (YYYYMMDDHHMMSSZ, see pki_utc). Writes
# PKI/NAME.key, NAME.crt and NAME.pem (key + certificate + chain).
pki_issue() {
	_pi=$E2E_DIR/pki-issue
	mkdir -p "$_pi/new"
	[ -f "$_pi/index.txt" ] || : >"$_pi/index.txt"
	[ -f "$_pi/serial" ] || echo "2$(openssl rand -hex 7)0" >"$_pi/serial"
	cat >"$_pi/ca.cnf" <<PKIEOF
[ ca ]
default_ca = ca_default
[ ca_default ]
database = $_pi/index.txt
new_certs_dir = $_pi/new
serial = $_pi/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = yes
[ policy_any ]
organizationName = optional
commonName = optional
emailAddress = optional
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ ee ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:$2
PKIEOF
	(
		umask 077
		openssl genpkey -quiet -algorithm RSA -pkeyopt "rsa_keygen_bits:${4:-2048}" \
			-out "$PKI/$1.key" &&
			openssl req -new -config "$_pi/ca.cnf" -key "$PKI/$1.key" \
				-subj "/O=smime-milter tests/CN=$1/emailAddress=$2" -out "$_pi/$1.csr" &&
			openssl ca -batch -notext -preserveDN -config "$_pi/ca.cnf" \
				-cert "$PKI/inter.crt" -keyfile "$PKI/inter.key" -in "$_pi/$1.csr" \
				-out "$PKI/$1.crt" -extfile "$_pi/ca.cnf" -extensions ee \
				-startdate "$(pki_utc -3600)" -enddate "$3" &&
			cat "$PKI/$1.key" "$PKI/$1.crt" "$PKI/chain.pem" >"$PKI/$1.pem"
	) >"$_pi/$1.log" 2>&1 || fail "pki_issue $1: $(tail -n 5 "$_pi/$1.log")"
	chmod 644 "$PKI/$1.crt"
}

# pki_chain_of NAME — the certificates a signature by NAME carries besides
# its own: the intermediate, the untrusted root for "untrusted", none for
# "selfsigned".
pki_chain_of() {
	case $1 in
	untrusted) echo "$PKI/untrusted-root.crt" ;;
	selfsigned) ;;
	*) echo "$PKI/chain.pem" ;;
	esac
}

# mail_signed NAME FROM TO SUBJECT TEXT OUT [OPENSSL-CMS-ARGS...] — a
# detached S/MIME signed message (multipart/signed, SHA-256, certificate
# chain included) by PKI identity NAME, made with openssl cms; TEXT is the
# text/plain body (one line, or lines joined with \r\n by printf).
mail_signed() {
	_ms_name=$1 _ms_from=$2 _ms_to=$3 _ms_subj=$4 _ms_text=$5 _ms_out=$6
	shift 6
	printf '%s\r\n' "$_ms_text" >"$_ms_out.txt"
	_ms_chain=$(pki_chain_of "$_ms_name")
	openssl cms -sign -md sha256 -in "$_ms_out.txt" -text -from "$_ms_from" \
		-to "$_ms_to" -subject "$_ms_subj" -signer "$PKI/$_ms_name.crt" \
		-inkey "$PKI/$_ms_name.key" ${_ms_chain:+-certfile "$_ms_chain"} \
		-out "$_ms_out" "$@" 2>"$_ms_out.err" ||
		fail "openssl cms -sign as $_ms_name failed: $(cat "$_ms_out.err")"
}

# send_ok PORT FROM TO [FILE | --body TEXT] [SWAKS-ARGS...] — send_mail
# that must end in 250; sets QID to the queue id.
send_ok() {
	send_mail "$@" || fail "message from $2 to $3 was not accepted: '$(reply_final)'"
	expect_reply 250
	QID=$(queue_id_of_last)
}

# e2e_qid_delivered QUEUEID — the sink holds QUEUEID and Postfix logged it sent.
e2e_qid_delivered() {
	grep -q " $1: to=.* status=sent " "$PF_LOG" 2>/dev/null || return 1
	for _f in $(sink_files); do
		grep -q -E "[[:space:]]id $1([;[:space:]]|\$)" "$_f" && return 0
	done
	return 1
}

# wait_qid QUEUEID OUT [SECONDS] — wait (default 30 s) until QUEUEID is
# delivered and write the message as received (sink_message) to OUT.
wait_qid() {
	wait_until "${3:-30}" e2e_qid_delivered "$1" ||
		fail "$1 was not delivered within ${3:-30} s (sink holds $(sink_count))"
	sink_message "$(sink_file_of "$1")" >"$2"
}

# milter_line QUEUEID [SECONDS] — wait for the milter's summary line of
# QUEUEID and print it (the text after "QUEUEID: "). A refused recipient's
# RCPT-time line looks like the summary of a refused message ("rejected
# ADDRESS: REASON"): the last such line is the summary, so call this once
# the transaction is over (the reply is in, or the message delivered).
milter_line() {
	_ml_re="(^|\\]: ([a-z]+: )?)$1: (inbound|outbound|tempfail:|rejected |deferred )"
	log_wait "$MILTER_LOG" 0 "$_ml_re" "${2:-10}" >/dev/null ||
		fail "no summary line for $1 in the milter log"
	grep -i -E -e "$_ml_re" "$MILTER_LOG" | tail -n 1 | sed "s/.*$1: //"
}

# msg_body FILE — the body of a message file (after the first empty line),
# line ends as LF.
msg_body() {
	tr -d '\r' <"$1" | awk 'b { print } /^$/ && !b { b = 1 }'
}

# msg_header FILE NAME — the header field(s) NAME of a message file,
# unfolded, one per line.
msg_header() {
	tr -d '\r' <"$1" | awk -v name="$2" '
		/^$/ { exit }
		/^[ \t]/ { if (cur != "") cur = cur $0; next }
		{ if (cur != "") print cur; cur = "" }
		tolower(substr($0, 1, length(name) + 1)) == tolower(name) ":" { cur = $0 }
		END { if (cur != "") print cur }
	'
}

# smime_der FILE OUT — the DER inside an application/pkcs7-mime message or
# entity FILE (its base64 body, decoded).
smime_der() {
	perl -MMIME::Base64 -0777 -ne 's/\r\n/\n/g; s/\A.*?\n\n//s or die "no body\n";
		print decode_base64($_)' "$1" >"$2" 2>"$2.err" ||
		fail "cannot decode the S/MIME body of $1: $(cat "$2.err")"
	[ -s "$2" ] || fail "the S/MIME body of $1 is empty"
}

# mime_signed_split FILE CONTENT SIG — of the multipart/signed entity FILE,
# the signed part exactly as signed (CRLF line ends) into CONTENT and the
# DER of the signature part into SIG.
mime_signed_split() {
	perl -MMIME::Base64 -e '
		local $/; open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!\n"; my $m = <$f>;
		$m =~ s/\r?\n/\r\n/g;
		my ($h, $b) = split(/\r\n\r\n/, $m, 2);
		$h =~ s/\r\n[ \t]+/ /g;
		$h =~ m{^content-type:\s*multipart/signed}im or die "not multipart/signed\n";
		my ($bd) = $h =~ m{boundary="?([^";\r\n]+)"?}i or die "no boundary\n";
		my $d = "--$bd";
		my $i = ($b =~ /^\Q$d\E\r\n/) ? 0 : index($b, "\r\n$d\r\n") + 2;
		die "no first delimiter\n" if $i < 0 || ($i == 1);
		my $s = $i + length($d) + 2;
		my $j = index($b, "\r\n$d\r\n", $s);
		die "no second delimiter\n" if $j < 0;
		my $k = $j + 2 + length($d) + 2;
		my $l = index($b, "\r\n$d--", $k);
		die "no close delimiter\n" if $l < 0;
		my (undef, $sig) = split(/\r\n\r\n/, substr($b, $k, $l - $k), 2);
		open(my $c, ">", $ARGV[1]) or die; print $c substr($b, $s, $j - $s); close $c;
		open(my $g, ">", $ARGV[2]) or die; print $g decode_base64($sig); close $g;
	' "$1" "$2" "$3" 2>"$3.err" || fail "cannot split the multipart/signed entity $1: $(cat "$3.err")"
}

# gpgsm_home NAME — a private GnuPG home (E2E_DIR/gnupg-NAME) holding PKI
# identity NAME's key and certificate, with the test root in its trust
# list; its agent is stopped on exit. gpgsm 2.2 needs legacy PKCS#12 and
# still rejects a few exports (salt-dependent, about 1 in 20): re-export
# and retry. Whether the key arrived is tested by decrypting a probe
# (openssl-encrypted to NAME): `gpgsm --list-secret-keys ADDRESS` exits 0
# even when the PKCS#12 import failed.
gpgsm_home() {
	need gpgsm gpgconf
	_gh=$E2E_DIR/gnupg-$1
	[ -d "$_gh" ] && return 0
	mkdir -m 700 "$_gh"
	echo allow-loopback-pinentry >"$_gh/gpg-agent.conf"
	echo disable-crl-checks >"$_gh/gpgsm.conf"
	E2E_GNUPG_HOMES="${E2E_GNUPG_HOMES:-} $_gh"
	[ -n "${E2E_GPG_HOOKED:-}" ] || { e2e_on_exit gpgsm_stop_agents; E2E_GPG_HOOKED=1; }
	gpgsm_as "$1" --import "$PKI/root.crt" "$PKI/inter.crt" >"$_gh/import.log" 2>&1 ||
		fail "gpgsm ($1): importing the test CA failed: $(cat "$_gh/import.log")"
	echo "probe for $1" >"$_gh/probe.txt"
	openssl cms -encrypt -aes128 -binary -in "$_gh/probe.txt" -outform DER \
		-out "$_gh/probe.der" "$PKI/$1.crt" 2>>"$_gh/import.log" ||
		fail "gpgsm ($1): cannot make the probe: $(tail -n 3 "$_gh/import.log")"
	cp "$PKI/$1.p12" "$_gh/key.p12"
	_gh_n=0
	while :; do
		gpgsm_as "$1" --import "$_gh/key.p12" >>"$_gh/import.log" 2>&1
		rm -f "$_gh/probe.out"
		gpgsm_as "$1" --decrypt -o "$_gh/probe.out" "$_gh/probe.der" >>"$_gh/import.log" 2>&1 &&
			cmp -s "$_gh/probe.out" "$_gh/probe.txt" && break
		_gh_n=$((_gh_n + 1))
		[ "$_gh_n" -lt 6 ] ||
			fail "gpgsm ($1): importing $1.p12 failed 6 times: $(tail -n 5 "$_gh/import.log")"
		openssl pkcs12 -export -legacy -name "$1" -inkey "$PKI/$1.key" -in "$PKI/$1.crt" \
			-certfile "$PKI/chain.pem" -passout "file:$PKI/p12.pass" -out "$_gh/key.p12"
	done
	_gh_fpr=$(GNUPGHOME=$_gh gpgsm --batch --with-colons --list-keys \
		'smime-milter Test Root CA' | awk -F: '/^fpr/ { print $10; exit }')
	[ -n "$_gh_fpr" ] || fail "gpgsm ($1): the test root is not in the keybox"
	echo "$_gh_fpr S relax" >"$_gh/trustlist.txt"
}

# gpgsm_as NAME ARGS... — gpgsm in NAME's home, batch mode, the PKCS#12
# password on fd 3, status lines on stdout.
gpgsm_as() {
	_ga=$1
	shift
	GNUPGHOME=$E2E_DIR/gnupg-$_ga gpgsm --batch --no-tty --pinentry-mode loopback \
		--passphrase-fd 3 --status-fd 1 "$@" 3<"$PKI/p12.pass"
}

gpgsm_stop_agents() {
	for _gh in ${E2E_GNUPG_HOMES:-}; do
		GNUPGHOME=$_gh gpgconf --kill gpg-agent >/dev/null 2>&1
	done
}

# nss_db NAME — an NSS database (E2E_DIR/nss-NAME, empty password) holding
# PKI identity NAME's key and certificate, the test root trusted (C,C,C).
nss_db() {
	need certutil pk12util cmsutil
	_nd=$E2E_DIR/nss-$1
	[ -d "$_nd" ] && return 0
	mkdir "$_nd"
	{
		certutil -N -d "sql:$_nd" --empty-password &&
			certutil -A -d "sql:$_nd" -n root -t C,C,C -a -i "$PKI/root.crt" &&
			certutil -A -d "sql:$_nd" -n inter -t ,, -a -i "$PKI/inter.crt" &&
			pk12util -i "$PKI/$1.p12" -d "sql:$_nd" -W "$(head -n 1 "$PKI/p12.pass")"
	} >"$_nd.log" 2>&1 || fail "NSS database for $1: $(tail -n 5 "$_nd.log")"
}

# smime_open ENGINE NAME FILE OUT — open the signed and encrypted message
# FILE as PKI identity NAME with ENGINE (openssl, gpgsm or nss): decrypt,
# then verify the inner multipart/signed signature against the test root
# with the same engine. OUT gets the decrypted entity, OUT.content the
# signed part exactly as signed. Fails with the engine's words.
smime_open() {
	_so_e=$1 _so_n=$2 _so_f=$3 _so_o=$4
	rm -f "$_so_o" "$_so_o.content" "$_so_o.sig"
	case $_so_e in
	openssl)
		openssl cms -decrypt -in "$_so_f" -recip "$PKI/$_so_n.crt" -inkey "$PKI/$_so_n.key" \
			-out "$_so_o" >"$_so_o.log" 2>&1 ||
			fail "openssl cannot decrypt $_so_f as $_so_n: $(cat "$_so_o.log")"
		openssl cms -verify -in "$_so_o" -CAfile "$PKI/ca.pem" -purpose smimesign \
			-out /dev/null >"$_so_o.log" 2>&1 ||
			fail "openssl: the signature inside $_so_f (as $_so_n) does not verify: $(cat "$_so_o.log")"
		mime_signed_split "$_so_o" "$_so_o.content" "$_so_o.sig"
		;;
	gpgsm)
		gpgsm_home "$_so_n"
		smime_der "$_so_f" "$_so_o.der"
		# gpgsm exits 2 when it holds the key of only one of the
		# recipients, yet decrypts: DECRYPTION_OKAY is what counts.
		gpgsm_as "$_so_n" --decrypt -o "$_so_o" "$_so_o.der" >"$_so_o.log" 2>&1
		grep -q '^\[GNUPG:\] DECRYPTION_OKAY' "$_so_o.log" && [ -s "$_so_o" ] ||
			fail "gpgsm cannot decrypt $_so_f as $_so_n: $(cat "$_so_o.log")"
		mime_signed_split "$_so_o" "$_so_o.content" "$_so_o.sig"
		gpgsm_as "$_so_n" --verify "$_so_o.sig" "$_so_o.content" >"$_so_o.log" 2>&1 &&
			grep -q '^\[GNUPG:\] GOODSIG' "$_so_o.log" &&
			grep -q '^\[GNUPG:\] TRUST_FULLY' "$_so_o.log" ||
			fail "gpgsm: the signature inside $_so_f (as $_so_n) does not verify: $(cat "$_so_o.log")"
		;;
	nss)
		nss_db "$_so_n"
		smime_der "$_so_f" "$_so_o.der"
		cmsutil -D -d "sql:$E2E_DIR/nss-$_so_n" -i "$_so_o.der" -o "$_so_o" >"$_so_o.log" 2>&1 ||
			fail "NSS cmsutil cannot decrypt $_so_f as $_so_n: $(cat "$_so_o.log")"
		mime_signed_split "$_so_o" "$_so_o.content" "$_so_o.sig"
		cmsutil -D -d "sql:$E2E_DIR/nss-$_so_n" -i "$_so_o.sig" -c "$_so_o.content" \
			-o /dev/null >"$_so_o.log" 2>&1 ||
			fail "NSS cmsutil: the signature inside $_so_f (as $_so_n) does not verify: $(cat "$_so_o.log")"
		;;
	*) fail "smime_open: unknown engine $_so_e" ;;
	esac
}

# cache_rows ADDRESS — rows the key cache holds for ADDRESS (read-only look
# with the sqlite3 CLI; the daemon keeps writing meanwhile, WAL mode).
cache_rows() {
	need sqlite3
	sqlite3 -readonly "$E2E_DIR/cache/cache.db" \
		"SELECT count(*) FROM bindings WHERE address = lower('$1');" 2>&1
}

# mail_multipart_signed FROM TO SUBJECT CONTENT SIG MICALG OUT — a
# multipart/signed message around the entity CONTENT (its exact bytes,
# CRLF line ends) and the DER detached signature SIG, for signatures made
# by other engines (gpgsm --detach-sign, cmsutil -S -T).
mail_multipart_signed() {
	_mb="----=_e2e_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
	{
		printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\n' "$1" "$2" "$3"
		printf 'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
		printf '\tmicalg=%s; boundary="%s"\r\n\r\n' "$6" "$_mb"
		printf 'This is an S/MIME signed message.\r\n\r\n--%s\r\n' "$_mb"
		cat "$4"
		printf '\r\n--%s\r\n' "$_mb"
		printf 'Content-Type: application/pkcs7-signature; name=smime.p7s\r\n'
		printf 'Content-Transfer-Encoding: base64\r\n'
		printf 'Content-Disposition: attachment; filename=smime.p7s\r\n\r\n'
		openssl base64 -in "$5" | sed 's/$/\r/'
		printf '\r\n--%s--\r\n' "$_mb"
	} >"$7" || fail "cannot write $7"
}

# ------------------------------------------------------------ S/MIME clients
#
# For the decrypt*.test files: bob's signed-then-encrypted mail to alice,
# made the way gpgsm, NSS (cmsutil) and openssl users make it. gpgsm and
# cmsutil produce bare CMS; the MIME around it is what a mail client adds
# (mime_signed, mime_pkcs7). Built on the helpers above (pki_make,
# gpgsm_home/gpgsm_as, nss_db); everything lives under E2E_DIR.
#
#   gpgsm_bob / nss_bob       bob's gpgsm home / NSS database, also
#                             holding alice's certificates
#   sign_gpgsm|sign_nss|sign_openssl ENTITY OUT ...
#   encrypt_gpgsm|encrypt_nss|encrypt_openssl ENTITY OUT ...
#   mk_cleartext OUT, mk_mail OUT SUBJECT ENTITY, sink_as_sent FILE
#   cms_cipher DER / cms_keytransport DER   what an envelope uses

gpgsm_bob() {
	gpgsm_home bob
	gpgsm_as bob --import "$PKI/alice.crt" "$PKI/alice-renewed.crt" \
		>>"$E2E_DIR/gnupg-bob/import.log" 2>&1 ||
		fail "gpgsm (bob): importing alice's certificates failed ($E2E_DIR/gnupg-bob/import.log)"
}

nss_bob() {
	nss_db bob
	NSS_DB=sql:$E2E_DIR/nss-bob
	certutil -A -d "$NSS_DB" -n alice -t ,, -a -i "$PKI/alice-renewed.crt" ||
		fail "NSS (bob): importing alice's certificate failed"
}

# cms_cipher DER — the content-encryption algorithm's name ("aes-128-cbc").
cms_cipher() {
	openssl cms -cmsout -inform DER -in "$1" -print 2>/dev/null |
		awk '/contentEncryptionAlgorithm:/ { getline; print $2; exit }'
}

# cms_keytransport DER — rsaEncryption or rsaesOaep.
cms_keytransport() {
	openssl cms -cmsout -inform DER -in "$1" -print 2>/dev/null |
		awk '/keyEncryptionAlgorithm:/ { getline; print $2; exit }'
}

e2e_b64() { base64 -w 76 "$1" | sed 's/$/\r/'; }

# mime_signed ENTITY SIGDER OUT — multipart/signed: ENTITY verbatim (the
# bytes SIGDER signs), then the signature.
mime_signed() {
	_ms_b="=_e2e-signed-$$"
	{
		printf 'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;\r\n\tboundary="%s"\r\n\r\n' "$_ms_b"
		printf 'This is an S/MIME signed message.\r\n\r\n--%s\r\n' "$_ms_b"
		cat "$1"
		printf '\r\n--%s\r\n' "$_ms_b"
		printf 'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
		printf 'Content-Transfer-Encoding: base64\r\n'
		printf 'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
		e2e_b64 "$2"
		printf '\r\n--%s--\r\n' "$_ms_b"
	} >"$3"
}

# mime_pkcs7 DER SMIME-TYPE OUT [TYPE] — an application/pkcs7-mime entity
# (TYPE application/x-pkcs7-mime, as mutt writes it, also works).
mime_pkcs7() {
	{
		printf 'Content-Type: %s; smime-type=%s; name="smime.p7m"\r\n' \
			"${4:-application/pkcs7-mime}" "$2"
		printf 'Content-Transfer-Encoding: base64\r\n'
		printf 'Content-Disposition: attachment; filename="smime.p7m"\r\n\r\n'
		e2e_b64 "$1"
	} >"$3"
}

# sign_gpgsm ENTITY OUT — bob signs detached with gpgsm (mutt's way).
sign_gpgsm() {
	rm -f "$2.sig"
	gpgsm_as bob -u bob@partner.example --detach-sign -o "$2.sig" "$1" >>"$E2E_DIR/gpgsm.log" 2>&1 ||
		fail "gpgsm --detach-sign failed (see $E2E_DIR/gpgsm.log)"
	mime_signed "$1" "$2.sig" "$2"
}

# sign_nss ENTITY OUT detached|opaque — bob signs with cmsutil, with
# signingTime and sMIMECapabilities as Thunderbird does.
sign_nss() {
	_sn_t=
	[ "$3" = detached ] && _sn_t=-T
	cmsutil -S -N bob -H SHA256 -G -P $_sn_t -d "$NSS_DB" -i "$1" -o "$2.sig" \
		>>"$E2E_DIR/nss.log" 2>&1 || fail "cmsutil -S failed ($E2E_DIR/nss.log)"
	if [ "$3" = detached ]; then
		mime_signed "$1" "$2.sig" "$2"
	else
		mime_pkcs7 "$2.sig" signed-data "$2"
	fi
}

# sign_openssl ENTITY OUT [SIGNER [detached|opaque]] — openssl cms -sign
# with its own MIME output (SIGNER: a PKI name, default bob).
sign_openssl() {
	_so_n=-nodetach
	[ "${4:-detached}" = detached ] && _so_n=
	openssl cms -sign $_so_n -in "$1" -signer "$PKI/${3:-bob}.crt" \
		-inkey "$PKI/${3:-bob}.key" -certfile "$PKI/chain.pem" -out "$2" \
		2>>"$E2E_DIR/openssl.log" || fail "openssl cms -sign failed ($E2E_DIR/openssl.log)"
}

# encrypt_gpgsm ENTITY OUT AES128|AES256 — gpgsm encrypts to alice's
# current certificate (named by fingerprint: gpgsm knows two of hers).
encrypt_gpgsm() {
	_eg_fpr=$(openssl x509 -in "$PKI/alice-renewed.crt" -noout -fingerprint -sha1 |
		sed 's/.*=//; s/://g')
	rm -f "$2.der"
	gpgsm_as bob -r "$_eg_fpr" --cipher-algo "$3" --encrypt -o "$2.der" "$1" >>"$E2E_DIR/gpgsm.log" 2>&1 ||
		fail "gpgsm --encrypt failed (see $E2E_DIR/gpgsm.log)"
	mime_pkcs7 "$2.der" enveloped-data "$2" application/x-pkcs7-mime
}

# encrypt_nss ENTITY OUT — cmsutil encrypts to alice; NSS picks the cipher
# itself (AES-128-CBC without a stored S/MIME profile of hers).
encrypt_nss() {
	cmsutil -E -r alice@org.example -d "$NSS_DB" -i "$1" -o "$2.der" \
		>>"$E2E_DIR/nss.log" 2>&1 || fail "cmsutil -E failed ($E2E_DIR/nss.log)"
	mime_pkcs7 "$2.der" enveloped-data "$2"
}

# encrypt_openssl ENTITY OUT CIPHER [CERT [oaep]] — openssl cms -encrypt
# (CIPHER: aes-128-cbc, aes-256-cbc, aes-256-gcm; CERT: a PKI name,
# default alice-renewed).
encrypt_openssl() {
	_eo_k=
	[ "${5:-}" = oaep ] && _eo_k="-keyopt rsa_padding_mode:oaep"
	_eo_t=enveloped-data
	case $3 in *gcm) _eo_t=authEnveloped-data ;; esac
	openssl cms -encrypt "-$3" -in "$1" -recip "$PKI/${4:-alice-renewed}.crt" $_eo_k \
		-outform DER -out "$2.der" 2>>"$E2E_DIR/openssl.log" ||
		fail "openssl cms -encrypt failed ($E2E_DIR/openssl.log)"
	mime_pkcs7 "$2.der" "$_eo_t" "$2"
}

# mk_cleartext OUT — what bob writes: canonical 7bit MIME (CRLF), a
# multipart/alternative so that the structure has to survive too.
mk_cleartext() {
	printf '%s\r\n' \
		'Content-Type: multipart/alternative; boundary="alt-e2e"' \
		'' \
		'--alt-e2e' \
		'Content-Type: text/plain; charset=us-ascii' \
		'Content-Transfer-Encoding: 7bit' \
		'' \
		'Hello Alice,' \
		'the numbers are 4, 8, 15, 16, 23 and 42.' \
		'--alt-e2e' \
		'Content-Type: text/html; charset=us-ascii' \
		'Content-Transfer-Encoding: quoted-printable' \
		'' \
		'<p>Hello Alice,<br>the numbers are 4, 8, 15, 16, 23 and 42.</p>' \
		'--alt-e2e--' >"$1"
}

# mk_mail OUT SUBJECT ENTITY [EXTRA-HEADER-LINES] — bob's message to alice.
E2E_MAIL_N=0
mk_mail() {
	E2E_MAIL_N=$((E2E_MAIL_N + 1))
	{
		printf 'From: Bob <bob@partner.example>\r\n'
		printf 'To: Alice <alice@org.example>\r\n'
		printf 'Subject: %s\r\n' "$2"
		printf 'Date: %s\r\n' "$(LC_ALL=C date -R)"
		printf 'Message-ID: <e2e-%s-%s@partner.example>\r\n' "$$" "$E2E_MAIL_N"
		[ -n "${4:-}" ] && printf '%s\r\n' "$4"
		printf 'MIME-Version: 1.0\r\n'
		cat "$3"
	} >"$1"
}

# mail_header_block FILE — the header lines of a message (unfolded, no CR).
mail_header_block() {
	tr -d '\r' <"$1" | awk '/^$/ { exit } /^[ \t]/ { cur = cur $0; next }
		{ if (cur != "") print cur; cur = $0 } END { if (cur != "") print cur }'
}

# mail_body FILE — the body of a message (no CR).
mail_body() {
	tr -d '\r' <"$1" | awk 'b { print } /^$/ && !b { b = 1 }'
}

# sink_as_sent FILE — the delivered message less what the MTA path adds on
# top (Postfix's Received, our Authentication-Results), without CR: equal
# to the sent file (tr -d '\r') when nothing else was changed.
sink_as_sent() {
	sink_message "$1" | tr -d '\r' | awk '
		!body && /^$/ { body = 1 }
		!body && /^[ \t]/ { if (skip) next }
		!body && /^[^ \t]/ { skip = /^Received:/ || /^Authentication-Results: mx\.e2e\.example;/ }
		!body && skip { next }
		{ print }'
}
