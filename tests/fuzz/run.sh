#!/bin/sh
# tests/fuzz/run.sh replay|fuzz [TARGET...] — the libFuzzer targets
# (tests/fuzz/fuzz_*.c, built by `make fuzz-build` into build-fuzz/fuzz/).
#
#   replay  run every seed and every past finding once per target, with a
#           1 s limit per input (a slower one is a failure: a "slow unit");
#           what `make check` does, in seconds.
#   fuzz    fuzz each target for FUZZ_SECONDS (default 60) from its seeds;
#           new inputs go to build-fuzz/corpus/TARGET, crashes, leaks and
#           slow units to build-fuzz/findings/TARGET (copy a finding into
#           tests/fuzz/regressions/TARGET/ once it is fixed).
#
# Seeds: tests/data (every message and DER file), tests/fuzz/corpus/TARGET,
# and for inbound/outbound a few messages made with the test PKI at run time
# (signed by bob, signed and encrypted to alice). Past findings:
# tests/fuzz/regressions/TARGET. The dictionary: tests/fuzz/smime.dict.
set -eu
top=${SMIME_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
fz=$top/build-fuzz
mode=${1:-replay}
[ $# -gt 0 ] && shift
targets=${*:-address cms config inbound mime outbound}

for t in $targets; do
	[ -x "$fz/fuzz/fuzz_$t" ] || { echo "fuzz: $fz/fuzz/fuzz_$t is missing: run make fuzz-build" >&2; exit 1; }
done

# Leaks in third-party libraries we cannot fix (each one explained there).
export LSAN_OPTIONS="suppressions=$top/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

# The test PKI the targets load (fresh keys, dates relative to now: remade daily).
export SMIME_FUZZ_PKI="$fz/pki"
if [ ! -f "$SMIME_FUZZ_PKI/ca.pem" ] || [ -n "$(find "$SMIME_FUZZ_PKI/ca.pem" -mtime +0)" ]; then
	rm -rf "$SMIME_FUZZ_PKI"
	sh "$top/tests/pki/mkpki.sh" "$SMIME_FUZZ_PKI" >"$fz/mkpki.log" 2>&1 ||
		{ echo "fuzz: tests/pki/mkpki.sh failed: $(tail -n 3 "$fz/mkpki.log")" >&2; exit 1; }
	rm -rf "$fz/generated"
fi

# Messages made with this PKI: the paths deliver and harvest take.
gen=$fz/generated
if [ ! -d "$gen" ]; then
	mkdir -p "$gen.tmp"
	p=$SMIME_FUZZ_PKI
	printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nthe numbers are 4, 8, 15, 16, 23 and 42.\r\n' >"$gen.tmp/clear"
	hdr='From: Bob <bob@partner.example>\r\nTo: Alice <alice@org.example>\r\nSubject: seed\r\nMIME-Version: 1.0\r\n'
	openssl cms -sign -in "$gen.tmp/clear" -signer "$p/bob.crt" -inkey "$p/bob.key" \
		-certfile "$p/chain.pem" -out "$gen.tmp/signed" 2>/dev/null
	openssl cms -sign -nodetach -in "$gen.tmp/clear" -signer "$p/bob.crt" -inkey "$p/bob.key" \
		-certfile "$p/chain.pem" -out "$gen.tmp/opaque" 2>/dev/null
	for c in aes-256-cbc aes-128-gcm; do
		openssl cms -encrypt "-$c" -in "$gen.tmp/signed" -recip "$p/alice.crt" \
			-out "$gen.tmp/env-$c" 2>/dev/null
		{ printf "$hdr"; cat "$gen.tmp/env-$c"; } >"$gen.tmp/seed-signed-encrypted-$c.eml"
	done
	{ printf "$hdr"; cat "$gen.tmp/signed"; } >"$gen.tmp/seed-signed.eml"
	{ printf "$hdr"; cat "$gen.tmp/opaque"; } >"$gen.tmp/seed-opaque.eml"
	{ printf "$hdr"; cat "$gen.tmp/clear"; } >"$gen.tmp/seed-plain.eml"
	rm -f "$gen.tmp/clear" "$gen.tmp/signed" "$gen.tmp/opaque" "$gen.tmp"/env-*
	mv "$gen.tmp" "$gen"
fi

# seeds TARGET — the seed files, one per line.
seeds() {
	case $1 in
	mime | cms | inbound | outbound) find "$top/tests/data" -type f ! -name '*.md' ! -name SOURCES ;;
	esac
	case $1 in
	inbound | outbound | mime) find "$gen" -type f ;;
	config) echo "$top/conf/smime-milter.conf" ;;
	esac
	find "$top/tests/fuzz/corpus/$1" -type f 2>/dev/null || true
}

status=0
for t in $targets; do
	bin=$fz/fuzz/fuzz_$t
	log=$fz/$t.$mode.log
	case $mode in
	replay)
		list=$(seeds "$t"; find "$top/tests/fuzz/regressions/$t" -type f 2>/dev/null || true)
		n=$(printf '%s\n' "$list" | grep -c . || true)
		# Files only, so libFuzzer runs each once (a directory would
		# start a campaign); names may hold spaces.
		if printf '%s\n' "$list" | xargs -d '\n' "$bin" -timeout=1 -rss_limit_mb=2048 \
			-detect_leaks=1 >"$log" 2>&1; then
			echo "fuzz_$t: $n inputs replayed, none crashed, leaked or took over 1 s"
		else
			echo "fuzz_$t: FAILED on an input (log: $log)"
			grep -E 'ERROR|ALARM|Running|SUMMARY|property broken' "$log" | tail -n 8
			status=1
		fi
		;;
	fuzz)
		work=$fz/corpus/$t
		mkdir -p "$work" "$fz/findings/$t"
		seeds "$t" | while read -r f; do cp "$f" "$work/seed-$(basename "$f")"; done
		cp "$top/tests/fuzz/regressions/$t/"* "$work/" 2>/dev/null || true
		if "$bin" -max_total_time="${FUZZ_SECONDS:-60}" -timeout=1 -rss_limit_mb=2048 \
			-max_len=65536 -dict="$top/tests/fuzz/smime.dict" \
			-artifact_prefix="$fz/findings/$t/" -print_final_stats=1 "$work" >"$log" 2>&1; then
			echo "fuzz_$t: $(grep -m1 'stat::number_of_executed_units' "$log" | sed 's/.*: *//') executions in ${FUZZ_SECONDS:-60} s, no finding"
		else
			echo "fuzz_$t: FINDING (log: $log; input in $fz/findings/$t/)"
			grep -E 'ERROR|ALARM|SUMMARY|property broken' "$log" | tail -n 8
			status=1
		fi
		;;
	*)
		echo "usage: tests/fuzz/run.sh replay|fuzz [TARGET...]" >&2
		exit 2
		;;
	esac
done
exit $status
