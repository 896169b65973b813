#!/bin/sh
# contrib/bench/adversarial.sh [--report FILE] — the adversarial inbound
# scenario of `make bench` (issue 11): signatures built to burn CPU or
# memory (contrib/bench/bombs.c) sent inbound through a real Postfix to
# smime-milter, one at a time, measuring what each costs the milter.
#
# Goal: no inbound message costs more than 50 ms of milter CPU plus 5 ms per
# MB, and the milter's peak RSS grows by less than 1.5x the message size.
# CPU is the daemon's user+system time (/proc/PID/stat, 10 ms ticks) around
# each message; peak RSS is VmHWM, reset before each message (clear_refs 5),
# less VmRSS before it. Exit status 1 when a message misses the goal.
#
# Needs root (a private Postfix), postfix (smtp-sink), openssl, cc and
# libssl-dev (bombs.c is compiled here).
set -u
BENCH_TOP=$(cd "$(dirname "$0")/../.." && pwd)
: "${SMIME_TOP:=$BENCH_TOP}"
: "${SMIME_BINDIR:=$SMIME_TOP/milter}"
. "$SMIME_TOP/tests/e2e/lib.sh"
E2E_NAME=adversarial
REPORT=
while [ $# -gt 0 ]; do
	case $1 in
	--report) shift; REPORT=${1:?--report needs a file} ;;
	--report=*) REPORT=${1#*=} ;;
	--keep) E2E_KEEP=always ;;
	*) echo "adversarial.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$REPORT" ] || REPORT=$SMIME_TOP/build/bench/adversarial.txt
[ "$(id -u)" = 0 ] || { echo "adversarial.sh: needs root (a private Postfix instance)" >&2; exit 1; }
CLK_TCK=$(getconf CLK_TCK)

proc_cpu_ms() {
	sed 's/^.*) //' "/proc/$1/stat" | awk -v hz="$CLK_TCK" '{ print ($12 + $13) * 1000 / hz }'
}
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

e2e_setup
pki_make
need cc
cc -O2 -o "$E2E_DIR/bombs" "$SMIME_TOP/contrib/bench/bombs.c" \
	$(pkg-config --cflags --libs libcrypto) 2>"$E2E_DIR/cc.log" ||
	fail "compiling contrib/bench/bombs.c failed: $(head -n 5 "$E2E_DIR/cc.log")"
mkdir -p "$E2E_DIR/msg"
e2e_log "building the messages (a DSA key and an RSA key with a 256-bit exponent take a while)"
"$E2E_DIR/bombs" "$E2E_DIR/msg" "$PKI/bob.crt" "$PKI/bob.key" || fail "bombs failed"

sink_start
milter_write_config "$E2E_DIR/milter.conf" \
	'inbound = { decrypt = "harvest"; }; limits = { max_message_size = 104857600; };'
cp "$PKI/alice.pem" "$E2E_DIR/keys/"
chmod 600 "$E2E_DIR/keys/alice.pem"
milter_start "$E2E_DIR/milter.conf"
postfix_start "message_size_limit = 104857600" "milter_content_timeout = 300s"

n=0 missed=0
rows=$E2E_DIR/rows
: >"$rows"
for name in control-1mb dsa-signers rsa-exponent digest-algs cert-bag cert-bag-38mb; do
	m=$E2E_DIR/msg/$name.eml
	size=$(wc -c <"$m")
	echo 5 >"/proc/$MILTER_PID/clear_refs" 2>/dev/null || fail "cannot reset the milter's peak RSS (clear_refs)"
	rss0=$(proc_kb "$MILTER_PID" VmRSS)
	cpu0=$(proc_cpu_ms "$MILTER_PID")
	send_mail "$PF_IN_PORT" bob@partner.example alice@org.example "$m"
	expect_reply 250
	q=$(queue_id_of_last)
	line=$(log_wait "$MILTER_LOG" 0 "$q: inbound " 120) || fail "$name: no summary line for $q"
	cpu1=$(proc_cpu_ms "$MILTER_PID")
	hwm=$(proc_kb "$MILTER_PID" VmHWM)
	n=$((n + 1))
	verdict=$(printf '%s\n' "$line" | sed -e 's/.*: inbound //' -e 's/ ms=[0-9]*$//' | cut -c1-90)
	awk -v name="$name" -v size="$size" -v c0="$cpu0" -v c1="$cpu1" -v r0="$rss0" -v h="$hwm" \
		-v verdict="$verdict" 'BEGIN {
		mb = size / 1048576; cpu = c1 - c0; goal = 50 + 5 * mb
		mem = (h - r0) / 1024; mgoal = 1.5 * mb
		ok = (cpu <= goal && mem <= mgoal) ? "ok" : "MISSED"
		printf "%-15s %8.2f %8.0f %8.0f %8.1f %8.1f  %-6s %s\n", name, mb, cpu, goal, mem, mgoal, ok, verdict
	}' >>"$rows"
	tail -n 1 "$rows" | grep -q ' MISSED ' && missed=$((missed + 1))
	e2e_log "$(tail -n 1 "$rows")"
done
milter_stop

mkdir -p "$(dirname "$REPORT")"
{
	echo "Adversarial inbound messages ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, smime-milter via Postfix)"
	echo "goal: CPU <= 50 ms + 5 ms/MB; peak RSS growth <= 1.5 x message size"
	echo
	printf "%-15s %8s %8s %8s %8s %8s  %-6s %s\n" message MB cpu-ms goal-ms rss-MB goal-MB result "milter's verdict"
	cat "$rows"
	echo
	echo "$n messages, $missed missed the goal"
} | tee "$REPORT"
[ "$missed" -eq 0 ]
