#!/bin/sh
# The driver's KUnit suites (pure logic: record checks, histogram buckets, mechanism names,
# FIFO, wire records, events log, bottom-half start). Module suites run when the module loads; their results stay in
# /sys/kernel/debug/kunit/<suite>/results while it is loaded. Each suite becomes one result
# here, with KUnit's own case lines nested under it. Needs no device.
. /tests/lib/ktap.sh
mod="${IRQSTORM_MODULE:-/lib/modules/irqstorm.ko}"
K=/sys/kernel/debug/kunit
SUITES="irqstorm_mech irqstorm_sources irqstorm_fifo irqstorm_eventq irqstorm_stats irqstorm_protocol irqstorm_calibrate irqstorm_event_log irqstorm_bh irqstorm_user irqstorm_uapi irqstorm_cancel irqstorm_local irqstorm_index_pool"

ktap_plan $(($(echo $SUITES | wc -w) + 1))
loaded_here=0
if grep -q '^irqstorm ' /proc/modules; then
	ktap_diag "module already loaded: reading the results of that load"
	ktap_ok "insmod"
elif out=$(insmod "$mod" 2>&1); then
	loaded_here=1
	ktap_ok "insmod"
else
	ktap_fail "insmod" "$out"
fi

for s in $SUITES; do
	f="$K/$s/results"
	if [ ! -r "$f" ]; then
		ktap_fail "$s" "suite missing ($f)"
		continue
	fi
	# Drop the file's own top level ("KTAP version 1", "1..1", "ok 1 SUITE"); keep the
	# suite's nested lines, which are already indented one level.
	grep '^ ' "$f"
	last=$(grep -v '^ ' "$f" | grep -E '^(not )?ok ' | tail -n 1)
	case "$last" in
	"ok 1 $s"*"# SKIP"*) ktap_fail "$s" "suite skipped: $last" ;;
	"ok 1 $s"*) ktap_ok "$s" ;;
	*) ktap_fail "$s" "suite result: ${last:-none}" ;;
	esac
done

[ "$loaded_here" = 1 ] && rmmod irqstorm
ktap_finish
