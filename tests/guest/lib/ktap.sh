# KTAP helpers for guest test scripts (busybox ash). Source with:
#   . /tests/lib/ktap.sh
#   ktap_plan 3
#   ktap_check "insmod" insmod "$IRQSTORM_MODULE"
#   ktap_ok "name" / ktap_fail "name" "reason" / ktap_skip "name" "reason"
#   ktap_finish            # exit 0 if nothing failed, 1 otherwise, 4 if all skipped
#
# Output: kselftest-style KTAP ("KTAP version 1", "1..N", "ok i name"),
# indented by /init under the script's own result line.

KTAP_N=0
KTAP_FAIL=0
KTAP_SKIP=0

ktap_plan() {
	echo "KTAP version 1"
	echo "1..$1"
}

ktap_diag() {
	echo "# $*"
}

ktap_ok() {
	KTAP_N=$((KTAP_N + 1))
	echo "ok $KTAP_N $1"
}

ktap_fail() {
	KTAP_N=$((KTAP_N + 1))
	KTAP_FAIL=$((KTAP_FAIL + 1))
	[ -n "$2" ] && echo "# $1: $2"
	echo "not ok $KTAP_N $1"
}

ktap_skip() {
	KTAP_N=$((KTAP_N + 1))
	KTAP_SKIP=$((KTAP_SKIP + 1))
	echo "ok $KTAP_N $1 # SKIP $2"
}

# ktap_check NAME CMD...: run CMD, ok if it exits 0; its output becomes diagnostics.
ktap_check() {
	name="$1"
	shift
	if out=$("$@" 2>&1); then
		[ -n "$out" ] && echo "$out" | sed 's/^/# /'
		ktap_ok "$name"
	else
		rc=$?
		[ -n "$out" ] && echo "$out" | sed 's/^/# /'
		ktap_fail "$name" "'$*' exited $rc"
	fi
}

ktap_finish() {
	[ "$KTAP_FAIL" -gt 0 ] && exit 1
	[ "$KTAP_N" -gt 0 ] && [ "$KTAP_SKIP" -eq "$KTAP_N" ] && exit 4
	exit 0
}
