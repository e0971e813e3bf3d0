#!/bin/sh
# Delay mechanisms (issue 11 item 2): timer_list, hrtimer, wq_delayed, kthread_msleep and
# kthread_usleep with a requested delay per source (`echo "SRC delay US" > sources`):
#   - each runs the events it is given, conservation exact (every event acked);
#   - no run's first record starts before its delay has passed (events log: bh_start_tsc -
#     hardirq_tsc >= the delay for every ACK_F_FIRST record; the driver's delay_early stays 0);
#   - kthread_msleep of 100 us sleeps at least a jiffy (HZ from debugfs timing);
#   - delays on other mechanisms, above 1 s, or malformed are refused (EINVAL/ERANGE), counted.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
irqstorm_require_device

hz=$(awk '$1 == "hz" { print $2 }' $D/timing)
khz=$(irqstorm_tsc_khz)
N=20
if [ "${khz:-0}" -le 0 ]; then
	ktap_plan 1
	ktap_fail "TSC frequency known" "not in dmesg nor /proc/cpuinfo"
	ktap_finish
fi

ktap_plan 7
ktap_diag "HZ $hz, TSC $khz kHz, $N events per case, 30 ms apart"

# One case: mechanism $1 with delay $2 us; prints "FIRST min_us early" of its records.
run_case() {
	echo all > $D/reset
	echo "0 delay 0" > $D/sources
	echo "0 $1" > $D/sources && echo "0 delay $2" > $D/sources || { echo "refused"; return; }
	a0=$(cnt acks_posted)
	echo clear > $D/events
	echo 1 > $D/events_enable
	echo "0 periodic 30000000 $N" > $D/timer
	wait_acks $((a0 + N)) 150
	echo 0 > $D/events_enable
	got=$(($(cnt acks_posted) - a0))
	awk -v m="$1" -v d="$2" -v khz="$khz" -v got="$got" '
		!/^#/ && $2 == m && $9 % 2 == 1 {
			us = ($6 - $5) / khz * 1000; n++
			if (n == 1 || us < min) min = us
			if (us < d) early++
		}
		END { printf "%d %d %.1f %d\n", got, n, min, early }' $D/events
	echo "0 delay 0" > $D/sources
}

e0=$(cnt delay_early)
for m in timer_list hrtimer wq_delayed kthread_msleep kthread_usleep; do
	bad=""
	for d in 100 1000 10000; do
		r=$(run_case $m $d)
		set -- $r
		ktap_diag "$m delay $d us: $1 acks, $2 first records, min hardirq->bh $3 us, $4 before the delay"
		[ "$1" = "$N" ] || bad="$bad delay $d: $1 of $N acked;"
		[ "${2:-0}" -ge 1 ] || bad="$bad delay $d: no first record;"
		[ "${4:-1}" = 0 ] || bad="$bad delay $d: $4 runs before the delay;"
		if [ "$m" = kthread_msleep ] && [ "$d" = 100 ] && [ -n "$hz" ]; then
			# msleep(1) waits at least one jiffy (and 1 ms).
			jus=$((1000000 / hz))
			awk -v x="$3" -v j="$jus" 'BEGIN { exit !(x + 0 >= j && x + 0 >= 1000) }' || bad="$bad msleep(1) took $3 us < a jiffy ($jus us);"
		fi
	done
	if [ -z "$bad" ]; then ktap_ok "$m: every event run, no run before its delay"; else ktap_fail "$m: every event run, no run before its delay" "$bad"; fi
done
e1=$(cnt delay_early)
if [ "$e1" = "$e0" ]; then ktap_ok "delay_early stays $e1"; else ktap_fail "delay_early stays $e0" "now $e1"; fi

# Refusals.
r0=$(cnt delay_refused)
why=""
echo "0 tasklet" > $D/sources
echo "0 delay 100" 2> /tmp/e1 > $D/sources && why="$why tasklet accepted a delay;"
grep -q "Invalid argument" /tmp/e1 || why="$why tasklet: not EINVAL ($(cat /tmp/e1));"
echo "0 hrtimer" > $D/sources
echo "0 delay 1000001" 2> /tmp/e2 > $D/sources && why="$why 1000001 us accepted;"
grep -q "out of range" /tmp/e2 || why="$why above 1 s: not ERANGE ($(cat /tmp/e2));"
echo "0 delay x" 2> /dev/null > $D/sources && why="$why 'delay x' accepted;"
echo "0 delay" 2> /dev/null > $D/sources && why="$why 'delay' without a value accepted;"
echo "0 delay 500" > $D/sources
echo "0 tasklet" 2> /dev/null > $D/sources && why="$why mechanism change to tasklet accepted with a delay set;"
echo "0 delay 0" > $D/sources
r1=$(cnt delay_refused)
[ $((r1 - r0)) -eq 5 ] || why="$why delay_refused +$((r1 - r0)) (5 wanted: 3 refused, 2 malformed);"
if [ -z "$why" ]; then ktap_ok "bad delays refused and counted (+$((r1 - r0)))"; else ktap_fail "bad delays refused and counted" "$why"; fi

echo "all threaded" > $D/sources
ktap_finish
