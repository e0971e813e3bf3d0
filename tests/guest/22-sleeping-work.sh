#!/bin/sh
# Sleeping work that really sleeps, and the head-of-line blocking it causes (issue 11 item 1):
#   1. msleep, usleep_range and schedule_timeout_uninterruptible (work kinds msleep, usleep,
#      timeout) in the threaded handler, a workqueue (wq_system) and the kthread: every
#      record's bottom half ran at least as long as the sleep guarantees, every event acked.
#      usleep_range is an hrtimer on the clocksource: at least the time asked. msleep(ms) is
#      schedule_timeout(msecs_to_jiffies(ms) + 1) and schedule_timeout(j) waits for j jiffy
#      ticks: at least j - 1 whole jiffies on the clock, less what the jiffies counter lagged
#      the clock when the sleep began (seen here under TCG: msleep(10) = 4 jiffies took
#      9.7 ms by the TSC, 2.3 ms under 3 jiffies). The check allows one jiffy of lag: j - 2;
#      the figures go to the diagnostics;
#   2. a burst of 4 events whose work sleeps 50 ms each, with 4 work items per workqueue
#      mechanism (module parameter work_items=4), wq_max_active=1 and the IRQ on CPU 0:
#      wq_ordered, wq_dedicated (max_active 1 on the queueing CPU), threaded and kthread run
#      one record at a time (debugfs bh `running ... max 1`, and each record starts at least
#      50 ms after the one before: the later ones wait behind the sleeping one), while
#      wq_system, wq_unbound and wq_cpu_intensive run them side by side (max >= 2).
# Lower bounds only: a loaded host makes sleeps longer, never shorter.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
irqstorm_require_device

khz=$(irqstorm_tsc_khz)
hz=$(awk '$1 == "hz" { print $2 }' $D/timing)
if [ "${khz:-0}" -le 0 ] || [ -z "$hz" ]; then
	ktap_plan 1
	ktap_fail "TSC frequency and HZ known" "khz='$khz' hz='$hz'"
	ktap_finish
fi
ktap_plan 12
ktap_diag "HZ $hz, TSC $khz kHz"

# Per record of mechanism $1 in the events log: "start_us run_us" (TSC, from the first record).
records_of() {
	awk -v m="$1" -v khz="$khz" '!/^#/ && $2 == m {
		if (t0 == "") t0 = $5
		printf "%.0f %.0f %.0f\n", ($6 - t0) / khz * 1000, ($7 - $6) / khz * 1000, ($6 - $5) / khz * 1000
	}' $D/events
}

# 1. Each sleep primitive in each kind of thread: 4 events, 60 ms apart, 10 ms of sleep each.
US=10000
jus=$((1000000 / hz))
for m in threaded wq_system kthread; do
	bad=""
	for k in msleep usleep timeout; do
		echo "0 work none" > $D/sources
		echo "0 $m" > $D/sources && echo "0 work $k $US" > $D/sources || { bad="$bad $k refused;"; continue; }
		a0=$(cnt acks_posted)
		echo clear > $D/events
		echo 1 > $D/events_enable
		echo "0 periodic 60000000 4" > $D/timer
		wait_acks $((a0 + 4))
		echo 0 > $D/events_enable
		got=$(($(cnt acks_posted) - a0))
		[ "$got" = 4 ] || bad="$bad $k: $got of 4 acked;"
		# Jiffies of the request: msecs_to_jiffies rounds up; msleep adds one.
		j=$(( (US / 1000 * hz + 999) / 1000 ))
		case $k in
		msleep) min=$(( (j + 1 - 2) * jus )) ;;
		timeout) min=$(( (j - 2) * jus )) ;;
		*) min=$US ;;
		esac
		short=$(records_of $m | awk -v min=$min '$2 < min { n++ } END { print n + 0 }')
		runs=$(records_of $m | awk '{ printf "%s ", $2 }')
		ktap_diag "$m $k $US us: run times (us) $runs"
		[ "$short" = 0 ] || bad="$bad $k: $short runs shorter than $min us;"
	done
	echo "0 work none" > $D/sources
	if [ -z "$bad" ]; then ktap_ok "$m: msleep, usleep_range and schedule_timeout sleep at least as asked"; else ktap_fail "$m: msleep, usleep_range and schedule_timeout sleep at least as asked" "$bad"; fi
done

# 2. Head-of-line blocking per queue type.
irqstorm_reload work_items=4 wq_max_active=1
irq=$(awk '/irqstorm/ { sub(":", "", $1); print $1; exit }' /proc/interrupts)
echo 0 > "/proc/irq/$irq/smp_affinity_list"
# A warm-up interrupt moves the IRQ to CPU 0 (x86 moves it at its next interrupt).
a0=$(cnt acks_posted); echo "0 oneshot 1000000" > $D/timer; wait_acks $((a0 + 1))
SLEEP=50000
hol_case() {
	m=$1
	echo "0 work none" > $D/sources
	echo "0 $m" > $D/sources && echo "0 work usleep $SLEEP" > $D/sources || { echo "refused"; return; }
	a0=$(cnt acks_posted)
	echo clear > $D/events
	echo 1 > $D/events_enable
	# One burst of 4 events (storm: 4 per 100 ms, 4 in all).
	echo "0 40 4 0 4" > $D/storm
	wait_acks $((a0 + 4)) 150
	echo 0 > $D/events_enable
	got=$(($(cnt acks_posted) - a0))
	max=$(awk -v m="$m" '$1 == "running" && $2 == m { print $5 }' $D/bh)
	# Records in start order; "gap" = the smallest start-to-start step, "wait" = the largest
	# hard IRQ -> start.
	records_of "$m" | sort -n | awk -v got="$got" -v max="$max" '
		{ if (NR > 1 && (gap == "" || $1 - prev < gap)) gap = $1 - prev; prev = $1; if ($3 > wait) wait = $3 }
		END { printf "%d %d %d %d %d\n", got, max, NR, gap, wait }'
	echo "0 work none" > $D/sources
}
for m in wq_ordered wq_dedicated threaded kthread; do
	set -- $(hol_case $m)
	ktap_diag "$m: $1 acked, at most $2 at once, $3 records, smallest start step $4 us, longest wait $5 us"
	if [ "$1" = 4 ] && [ "$2" = 1 ] && [ "$3" = 4 ] && [ "${4:-0}" -ge $SLEEP ]; then
		ktap_ok "$m runs one sleeping record at a time: the later ones wait behind it"
	else
		ktap_fail "$m runs one sleeping record at a time: the later ones wait behind it" "acked $1, max $2, records $3, step $4 us (>= $SLEEP)"
	fi
done
for m in wq_system wq_unbound wq_cpu_intensive; do
	set -- $(hol_case $m)
	ktap_diag "$m: $1 acked, at most $2 at once, $3 records, smallest start step $4 us, longest wait $5 us"
	if [ "$1" = 4 ] && [ "${2:-0}" -ge 2 ] && [ "$3" = 4 ]; then
		ktap_ok "$m runs sleeping records side by side (work_items=4)"
	else
		ktap_fail "$m runs sleeping records side by side (work_items=4)" "acked $1, max $2 (>= 2), records $3"
	fi
done
# Every pooled item idle again, nothing left queued.
busy=$(awk '$1 == "work_items" { s += $5 } END { print s + 0 }' $D/bh)
queued=$(awk '$1 == "queued" { s += $3 } END { print s + 0 }' $D/bh)
if [ "$busy" = 0 ] && [ "$queued" = 0 ]; then ktap_ok "work items idle, nothing queued after the bursts"; else ktap_fail "work items idle, nothing queued after the bursts" "busy $busy, queued $queued"; fi
# Bad module parameters are refused at probe, with a message.
bad=""
for p in work_items=0 work_items=17 wq_max_active=-1 wq_max_active=2049; do
	rmmod irqstorm
	insmod "$mod" $p 2>/dev/null
	sleep 0.5
	[ -e $D/sources ] && bad="$bad $p bound;"
	dmesg | grep -q "${p%%=*}=${p#*=}: must be" || bad="$bad $p: no message;"
done
irqstorm_reload
if [ -z "$bad" ]; then ktap_ok "work_items and wq_max_active out of range: the probe refuses, and says why"; else ktap_fail "work_items and wq_max_active out of range: the probe refuses, and says why" "$bad"; fi
ktap_finish
