#!/bin/sh
# metricscost.sh [MESSAGES [SCRAPES [SIZE_BYTES]]] — what the metrics
# endpoint costs, in instructions (callgrind), independent of the load.
#
# One smime-milter as bench scenario f (sign-only, the metrics endpoint on
# inet) runs under valgrind --tool=callgrind behind a private Postfix
# (tests/e2e/lib.sh). After a warm-up (2 messages, 1 scrape) the counts
# are zeroed; then MESSAGES (default 100) sign-only messages of SIZE_BYTES
# (default 1024) go through smtp-source, one at a time, and the counts are
# dumped; then SCRAPES (default 20) curl scrapes of /metrics, dumped again.
# Printed, one "key value" line each:
#   msg_ins        instructions of the whole daemon per message (all threads
#                  but the revocation worker, which runs on a timer)
#   count_ins      of which the metrics counting: the own instructions of
#                  metrics_now, metrics_observe(_ns) and metrics_message and
#                  the clock_gettime calls (under valgrind a system call:
#                  the native vDSO read is not in this count)
#   clock_reads    clock_gettime calls per message for the stage histograms
#   scrape_ins     instructions of the daemon per scrape (accept,
#                  request, the exposition text, the gauges, the answer)
#   break_even     messages per second at which one scrape a second costs
#                  2 % of the messages' instructions (scrape_ins / 0.02 msg_ins)
# Needs root (private Postfix), valgrind, curl, smtp-source.
set -u
SMIME_TOP=${SMIME_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SMIME_TOP/tests/e2e/lib.sh"
need valgrind callgrind_control curl smtp-source

N_MSG=${1:-100}
N_SCRAPE=${2:-20}
SIZE=${3:-1024}

e2e_setup
pki_make
sink_start
MPORT=$(e2e_free_port) || exit 1
conf=$E2E_DIR/milter.conf
milter_write_config "$conf" "outbound = { sign = true; trusted_relays = [ \"127.0.0.1\" ]; encrypt = \"never\"; };
metrics = { listen = \"inet:$MPORT@127.0.0.1\"; };"
cp "$PKI/alice.pem" "$E2E_DIR/keys/alice.pem"
CG=$E2E_DIR/callgrind.out
# callgrind_control -z/-d reach the daemon through vgdb.
valgrind --tool=callgrind --callgrind-out-file="$CG" --vgdb=yes \
	"$SMIME_BINDIR/smime-milter" -f -c "$conf" </dev/null >>"$MILTER_LOG" 2>&1 &
MILTER_PID=$!
_n=600 # valgrind starts slowly: up to 60 s
until e2e_port_listening "$MILTER_PORT" && e2e_port_listening "$MPORT"; do
	e2e_alive "$MILTER_PID" || fail "smime-milter under callgrind exited: $(tail -n 3 "$MILTER_LOG")"
	_n=$((_n - 1))
	[ "$_n" -gt 0 ] || fail "smime-milter under callgrind did not listen within 60 s"
	sleep 0.1
done
postfix_start "milter_command_timeout = 120s" "milter_content_timeout = 300s"

URL=http://127.0.0.1:$MPORT/metrics
# send COUNT — COUNT messages, one session, one at a time; wait for them.
send() {
	_before=$(sink_count)
	smtp-source -s 1 -m "$1" -l "$SIZE" -f alice@org.example -t bob@partner.example \
		-M client.bench.example "127.0.0.1:$PF_OUT_PORT" >"$E2E_DIR/source.out" 2>&1 ||
		fail "smtp-source failed: $(tail -n 3 "$E2E_DIR/source.out")"
	_want=$((_before + $1))
	wait_until $((60 + $1)) sh -c "[ \$(find '$SINK_DIR' -type f | wc -l) -ge $_want ]" ||
		fail "only $(sink_count) of $_want messages arrived at the sink"
}
scrape() {
	curl -s -o "$E2E_DIR/scrape.txt" --max-time 60 "$URL" || fail "curl could not scrape $URL"
}
dump() { # LABEL
	callgrind_control -d "$1" "$MILTER_PID" >/dev/null 2>&1 || fail "callgrind_control -d $1 failed"
}
totals() { # LABEL — the totals of the dump named LABEL
	_f=$(grep -l "^desc: Trigger: Client Request: $1\$\|^desc: Trigger: .*$1" "$CG".* 2>/dev/null | head -n 1)
	[ -n "$_f" ] || fail "no callgrind dump named $1 (files: $(ls "$CG".* 2>/dev/null))"
	awk '/^(totals|summary):/ { print $2; exit }' "$_f"
}
# inclusive LABEL NAME — inclusive instructions of function NAME in dump LABEL
inclusive() {
	_f=$(grep -l "^desc: Trigger: .*$1" "$CG".* | head -n 1)
	callgrind_annotate --inclusive=yes --threshold=100 "$_f" 2>/dev/null |
		awk -v fn="$2" '{ f = $0; sub(/ \[.*/, "", f); sub(/.*:/, "", f) }
			f == fn { v = $1; gsub(",", "", v); print v; exit }' | grep . || echo 0
}
# counting LABEL — "INSTRUCTIONS CLOCK_READS" of the counting in dump LABEL:
# the own instructions of metrics_now, metrics_observe, metrics_observe_ns
# and metrics_message, and the clock_gettime calls they make (metrics_now
# is inlined into metrics_observe).
counting() {
	_f=$(grep -l "^desc: Trigger: .*$1" "$CG".* | head -n 1)
	callgrind_annotate --tree=calling --threshold=100 "$_f" 2>/dev/null | awk '
		/\*  .*:metrics_(now|observe|observe_ns|message) \[/ {
			f = $0; sub(/ \[.*/, "", f); sub(/.*:/, "", f)
			v = $1; gsub(",", "", v); s += v; in_now = f == "metrics_now" || f == "metrics_observe"; next }
		/\*  / { in_now = 0; next }
		in_now && />.*clock_gettime/ {
			v = $1; gsub(",", "", v); s += v
			n = $0; sub(/.*\(/, "", n); sub(/x\).*/, "", n); calls += n }
		END { print s + 0, calls + 0 }'
}

send 2
scrape
callgrind_control -z "$MILTER_PID" >/dev/null 2>&1 || fail "callgrind_control -z failed"
send "$N_MSG"
# The signing log line and the sink: every message was signed.
grep -c "outbound signed" "$MILTER_LOG" >"$E2E_DIR/signed.n"
[ "$(cat "$E2E_DIR/signed.n")" -ge $((N_MSG + 2)) ] ||
	fail "only $(cat "$E2E_DIR/signed.n") messages were signed (want $((N_MSG + 2)))"
dump messages
_i=0
while [ "$_i" -lt "$N_SCRAPE" ]; do
	scrape
	_i=$((_i + 1))
done
grep -q '^smime_milter_messages_total{direction="outbound",outcome="signed"} ' "$E2E_DIR/scrape.txt" ||
	fail "the scrape holds no message counter"
dump scrapes

# The revocation worker wakes on a timer, not per message (and the run
# lasts 50 times longer under callgrind): left out of both counts.
m=$(totals messages)
w=$(inclusive messages worker_main)
s=$(totals scrapes)
ws=$(inclusive scrapes worker_main)
set -- $(counting messages)
[ -n "$m" ] && [ -n "$s" ] || fail "no totals in the callgrind dumps"
awk -v m="$m" -v w="$w" -v s="$s" -v ws="$ws" -v c="$1" -v cr="$2" -v nm="$N_MSG" -v ns="$N_SCRAPE" 'BEGIN {
	printf "msg_ins %.0f\ncount_ins %.0f\nclock_reads %.1f\nscrape_ins %.0f\nbreak_even %.1f\n",
		(m - w) / nm, c / nm, cr / nm, (s - ws) / ns, ((s - ws) / ns) / (0.02 * (m - w) / nm) }'
kill -TERM "$MILTER_PID" 2>/dev/null
wait_until 60 e2e_dead "$MILTER_PID" || kill -KILL "$MILTER_PID" 2>/dev/null
MILTER_PID=
