# lib.sh — sourced by tests/interop/*.test.
#
# The interop tests themselves live in the Check binary check_interop
# (tests/unit/check_interop.c), which drives our library and the external
# tools side by side; each .test script runs one of its cases. A missing
# tool or binary is a failure that says what to do, never a skip.

top=${SMIME_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
export SMIME_TOP="$top"
bin=${SMIME_TESTBIN:-$top/build/tests}/check_interop

# need TOOL PACKAGE
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "FAIL: $1 not found: install the Debian package $2 (make deps does)" >&2
	exit 1
}

# run_case CASE: run one Check case; at least one test must have run.
run_case() {
	if [ ! -x "$bin" ]; then
		echo "FAIL: $bin is missing: build it with 'make build/tests/check_interop'" >&2
		exit 1
	fi
	out=$(CK_RUN_CASE=$1 "$bin" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	case $out in
	*"Checks: 0,"*)
		echo "FAIL: case $1 ran no tests" >&2
		exit 1
		;;
	*"Checks: "*) ;;
	*)
		echo "FAIL: check_interop did not run (exit $rc)" >&2
		exit 1
		;;
	esac
	exit $rc
}
