# tests/e2e/sendmail-lib.sh — Sendmail 8.17 as the MTA, unpacked privately.
#
# Postfix and Sendmail cannot both be installed as Debian packages, so the
# Debian sendmail-bin and sendmail-cf packages are downloaded once (apt-get
# download, cached in SM_DEBS) and unpacked with dpkg -x into the test's temp
# dir. No daemon and no port: each message is one `sendmail -bs` session
# (SMTP on stdin/stdout) driven by swaks --pipe, run inside `unshare -u -m`
# with a qualified host name, a private /etc/hosts and a private
# /etc/nsswitch.conf ("hosts: files") — so Sendmail starts at once and makes
# no DNS queries. With -odq the accepted message stays in the private queue:
# qf* (envelope and headers, after the milter's changes) and df* (body).
#
# Source after lib.sh, then:
#   e2e_setup
#   sm_setup                         # unpack, write .mc, build .cf
#   milter_write_config ...; milter_start ...
#   sm_send alice@partner.example bob@org.example FILE   # inbound
#   sm_send --outbound bob@org.example alice@partner.example FILE
#   expect_reply "250 2.0.0"; q=$(sm_queue_id_of_last); sm_body "$q"
#
# Variables: SM_DEBS (download cache; default $SMIME_TOP/build/sendmail-debs,
# override with SMIME_SENDMAIL_DEBS), SM_DIR (private root, .mc/.cf, queue),
# SM_ROOT (unpacked packages), SM_CF, SM_QUEUE, SM_BIN.

[ -n "${E2E_LIB_LOADED:-}" ] || {
	echo "sendmail-lib.sh: source tests/e2e/lib.sh first" >&2
	exit 1
}

SM_HOSTNAME=mx.e2e.example

# sm_fetch_debs — make sure SM_DEBS holds sendmail-bin and sendmail-cf .debs
# (downloaded once with apt-get download; a failed download fails the test).
sm_fetch_debs() {
	SM_DEBS=${SMIME_SENDMAIL_DEBS:-$SMIME_TOP/build/sendmail-debs}
	mkdir -p "$SM_DEBS" || fail "cannot create $SM_DEBS"
	set -- "$SM_DEBS"/sendmail-bin_*.deb
	_have_bin=$1
	set -- "$SM_DEBS"/sendmail-cf_*.deb
	_have_cf=$1
	[ -f "$_have_bin" ] && [ -f "$_have_cf" ] && return 0
	need apt-get
	# Download into a private dir and move into place: tests running in
	# parallel never see half a .deb.
	_dl=$(mktemp -d "$SM_DEBS/.dl.XXXXXX") || fail "cannot create a download dir in $SM_DEBS"
	chmod 0755 "$_dl"
	if ! (cd "$_dl" && apt-get download sendmail-bin sendmail-cf) >"$E2E_DIR/apt-download.out" 2>&1; then
		rm -rf "$_dl"
		fail "prerequisite missing: 'apt-get download sendmail-bin sendmail-cf' failed (no network or no package lists? try 'apt-get update'): $(tail -n 3 "$E2E_DIR/apt-download.out")"
	fi
	mv -f "$_dl"/*.deb "$SM_DEBS"/ || fail "cannot move the downloaded .debs into $SM_DEBS"
	rmdir "$_dl"
	e2e_log "downloaded sendmail-bin and sendmail-cf into $SM_DEBS"
}

# sm_setup [MC-LINES] — unpack Sendmail into SM_DIR, write the .mc (with
# INPUT_MAIL_FILTER pointing at MILTER_PORT, F=T: fail closed) and build
# the .cf with m4. MC-LINES (one string, may hold newlines) go in before the
# filter and MAILER lines.
sm_setup() {
	need m4 unshare mount hostname dpkg
	[ "$(id -u)" = 0 ] || fail "prerequisite missing: Sendmail in a private mount namespace needs root (unshare -m)"
	sm_fetch_debs
	SM_DIR=$E2E_DIR/sendmail
	SM_ROOT=$SM_DIR/root
	SM_QUEUE=$SM_DIR/queue
	SM_CF=$SM_DIR/e2e.cf
	SM_BIN=$SM_ROOT/usr/libexec/sendmail/sendmail
	mkdir -p "$SM_ROOT" "$SM_QUEUE" || fail "cannot create $SM_DIR"
	chmod 0700 "$SM_QUEUE"
	for _deb in "$SM_DEBS"/sendmail-bin_*.deb "$SM_DEBS"/sendmail-cf_*.deb; do
		dpkg -x "$_deb" "$SM_ROOT" || fail "dpkg -x $_deb failed"
	done
	[ -x "$SM_BIN" ] || fail "no $SM_BIN in the unpacked sendmail-bin"
	_missing=$(ldd "$SM_BIN" 2>&1 | sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | tr '\n' ' ')
	[ -z "$_missing" ] ||
		fail "prerequisite missing: sendmail needs shared libraries: $_missing(apt-get install libwrap0; 'make deps')"
	_cfdir=$SM_ROOT/usr/share/sendmail/cf
	[ -f "$_cfdir/m4/cf.m4" ] || fail "no m4/cf.m4 in the unpacked sendmail-cf"

	printf '127.0.0.1\t%s mx localhost\n::1\tlocalhost\n' "$SM_HOSTNAME" >"$SM_DIR/hosts"
	printf 'passwd: files\ngroup: files\nhosts: files\nservices: files\n' >"$SM_DIR/nsswitch.conf"

	cat >"$SM_DIR/e2e.mc" <<EOF
divert(-1)
# private Sendmail written by tests/e2e/sendmail-lib.sh for $E2E_NAME
divert(0)dnl
VERSIONID(\`smime-milter e2e')dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`$SM_HOSTNAME')dnl
define(\`QUEUE_DIR', \`$SM_QUEUE')dnl
define(\`confPID_FILE', \`$SM_DIR/sendmail.pid')dnl
define(\`STATUS_FILE', \`$SM_DIR/statistics')dnl
define(\`HELP_FILE', \`$SM_ROOT/etc/mail/helpfile')dnl
define(\`ALIAS_FILE', \`')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`confLOG_LEVEL', \`9')dnl
define(\`confMILTER_LOG_LEVEL', \`6')dnl
FEATURE(\`nocanonify')dnl
FEATURE(\`accept_unresolvable_domains')dnl
FEATURE(\`promiscuous_relay')dnl
define(\`confMILTER_MACROS_CONNECT', \`j, _, {daemon_name}, {daemon_addr}, {client_addr}, {client_name}, {if_name}, {if_addr}')dnl
define(\`confMILTER_MACROS_HELO', \`{tls_version}, {cipher}, {cipher_bits}, {cert_subject}, {cert_issuer}')dnl
define(\`confMILTER_MACROS_ENVFROM', \`i, {auth_type}, {auth_authen}, {auth_ssf}, {auth_author}, {mail_mailer}, {mail_host}, {mail_addr}, {daemon_name}')dnl
define(\`confMILTER_MACROS_ENVRCPT', \`i, {rcpt_mailer}, {rcpt_host}, {rcpt_addr}')dnl
define(\`confMILTER_MACROS_EOH', \`i')dnl
define(\`confMILTER_MACROS_EOM', \`i, {msg_id}, {daemon_name}, {auth_authen}')dnl
${1:-}
INPUT_MAIL_FILTER(\`smime-milter', \`S=inet:$MILTER_PORT@$E2E_HOST, F=T, T=S:30s;R:60s;E:5m')dnl
MAILER(\`smtp')dnl
EOF
	m4 -D_CF_DIR_="$_cfdir/" "$_cfdir/m4/cf.m4" "$SM_DIR/e2e.mc" >"$SM_CF" 2>"$SM_DIR/m4.err" ||
		fail "m4 could not build $SM_CF: $(cat "$SM_DIR/m4.err")"
	grep -q "^Xsmime-milter, S=inet:$MILTER_PORT@$E2E_HOST, F=T" "$SM_CF" ||
		fail "the generated $SM_CF has no smime-milter filter line"

	# One wrapper per direction, for swaks --pipe. unshare and sh exec
	# sendmail in place, so the PID each wrapper records is sendmail's.
	sm_write_wrapper "$SM_DIR/sendmail-bs" ""
	sm_write_wrapper "$SM_DIR/sendmail-bs-outbound" "-M{daemon_name}ORIGINATING"
	# shellcheck disable=SC2034 # e2e_cleanup (lib.sh) calls it
	SM_CLEANUP=sm_cleanup
}

# sm_write_wrapper FILE EXTRA-ARGS — a script running sendmail -bs -odq -Am
# -C SM_CF inside a private UTS and mount namespace.
sm_write_wrapper() {
	cat >"$1" <<EOF
#!/bin/sh
echo \$\$ >>"$SM_DIR/sendmail.pids"
exec unshare -u -m sh -c 'hostname $SM_HOSTNAME &&
	mount --bind "$SM_DIR/hosts" /etc/hosts &&
	mount --bind "$SM_DIR/nsswitch.conf" /etc/nsswitch.conf &&
	exec "$SM_BIN" -C "$SM_CF" -bs -odq -Am $2'
EOF
	chmod 0755 "$1"
}

# sm_cleanup — stop (by PID) any sendmail -bs session still running.
sm_cleanup() {
	[ -f "${SM_DIR:-/nonexistent}/sendmail.pids" ] || return 0
	# shellcheck disable=SC2013 # one number per line
	for _p in $(cat "$SM_DIR/sendmail.pids"); do
		# only a process still running our private configuration
		if e2e_running "$_p" && tr '\0' ' ' <"/proc/$_p/cmdline" 2>/dev/null | grep -q -F "$SM_CF"; then
			e2e_log "sendmail session (pid $_p) still running; stopping it"
			kill -TERM "$_p" 2>/dev/null
			wait_until 5 e2e_stopped "$_p" || kill -KILL "$_p" 2>/dev/null
		fi
	done
}

# sm_send [--outbound] FROM TO [FILE | ARGS...] — one SMTP session with
# sendmail -bs through swaks --pipe; --outbound sets {daemon_name} to
# ORIGINATING (as a submission daemon would). Transcript in SWAKS_LOG;
# returns swaks' exit status.
sm_send() {
	_sm_wrap=$SM_DIR/sendmail-bs
	if [ "${1:-}" = --outbound ]; then
		_sm_wrap=$SM_DIR/sendmail-bs-outbound
		shift
	fi
	send_mail_pipe "$_sm_wrap" "$@"
	_sm_rc=$?
	# swaks does not wait for its child: make sure the session is over
	# (and its queue files complete) before anyone looks at the queue.
	# shellcheck disable=SC2013 # one number per line
	for _p in $(cat "$SM_DIR/sendmail.pids" 2>/dev/null); do
		wait_until 10 e2e_stopped "$_p" ||
			fail "sendmail -bs session (pid $_p) still running 10 s after swaks ended"
	done
	return "$_sm_rc"
}

# sm_queue_id_of_last — the id in "250 2.0.0 ID Message accepted for delivery".
sm_queue_id_of_last() {
	_q=$(sed -n 's/^<- *250 [0-9.]* \([0-9A-Za-z]*\) Message accepted.*/\1/p' "$SWAKS_LOG" | tail -n 1)
	[ -n "$_q" ] || fail "no 'Message accepted' in the transcript $SWAKS_LOG"
	echo "$_q"
}

# sm_queue_count — messages in the private queue.
sm_queue_count() {
	find "$SM_QUEUE" -name 'qf*' -type f | wc -l | tr -d ' '
}

# sm_body QUEUEID — the queued body (df file).
sm_body() {
	[ -f "$SM_QUEUE/df$1" ] || fail "no $SM_QUEUE/df$1"
	cat "$SM_QUEUE/df$1"
}

# sm_headers QUEUEID — the queued header section (qf H lines, unfolded-free:
# continuation lines kept as they are), "H??" / "H?x?" prefixes removed.
sm_headers() {
	[ -f "$SM_QUEUE/qf$1" ] || fail "no $SM_QUEUE/qf$1"
	awk '
		/^H/ { inh = 1; sub(/^H(\?[^?]*\?)?/, ""); print; next }
		/^[ \t]/ && inh { print; next }
		{ inh = 0 }
	' "$SM_QUEUE/qf$1"
}

# sm_header QUEUEID NAME — header field NAME (unfolded), one per line.
sm_header() {
	sm_headers "$1" | awk -v name="$2" '
		/^[ \t]/ { if (cur != "") cur = cur $0; next }
		{ if (cur != "") print cur; cur = "" }
		tolower(substr($0, 1, length(name) + 1)) == tolower(name) ":" { cur = $0 }
		END { if (cur != "") print cur }
	'
}
