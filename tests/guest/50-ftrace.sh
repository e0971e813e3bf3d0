#!/bin/sh
# irqstorm: not-in-all: a timing cross-check (3 us); under TCG on 2 shared cores the threaded IRQ sits at the limit (2.7-3.3 us, 5 of 9 runs pass, README); run it with: cargo xtask run --only 50-ftrace --device
# The driver's stamps against the kernel's own tracing (issue 9 item 4). For each mechanism a
# 1 kHz device timer runs with the driver's events log (debugfs events) and the tracepoints
# irq:irq_handler_entry, irq:softirq_entry, workqueue:workqueue_execute_start and
# sched:sched_switch on, the trace clock being x86-tsc: trace timestamps and the driver's TSC
# stamps are then the same counter. Each ACK_F_FIRST event (the first record a bottom-half
# run processed, its bh start the woken context's own stamp) is joined with
#   - the irq_handler_entry of the device's IRQ on the hard-IRQ CPU, the last one at or before
#     hardirq_tsc, and
#   - the bottom-half entry on the bottom-half CPU, the last one at or before bh_start_tsc:
#     threaded / kthread: sched_switch to the IRQ thread / the driver's kthread; tasklet:
#     softirq_entry vec=6 (TASKLET); bh_wq / wq_system: workqueue_execute_start of a function
#     of the module ("function NAME [irqstorm]"; the storm detector's work is kept off).
# An event is matched if both exist and the bottom-half entry is not before the IRQ entry.
# Per mechanism: p50 of the driver's hardirq->bh (bh_start_tsc - hardirq_tsc) and the trace's
# (bh entry - irq entry); the test fails when they differ by more than 3 us or fewer than 95%
# of the FIRST events matched. "before" is the same figure with the bottom-half start taken
# where it was before ACK_F_FIRST (when processing of the record began: record_tsc).
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
MECHS="${IRQSTORM_FTRACE_MECHS:-threaded tasklet bh_wq wq_system kthread}"
N="${IRQSTORM_FTRACE_EVENTS:-2000}"   # events per mechanism (1 kHz)
MAX_P50_DIFF_NS=3000
MIN_MATCHED_PCT=95
T=/sys/kernel/tracing
W=/tmp/ftrace
irqstorm_require_device
[ -d $T/events ] || mount -t tracefs none $T 2>/dev/null
nm=$(echo $MECHS | wc -w)

skip_all() {
	ktap_plan "$nm"
	for m in $MECHS; do ktap_skip "ftrace cross-check $m" "$1"; done
	ktap_finish
}
[ -f $T/trace_clock ] || skip_all "no tracefs at $T"
grep -q x86-tsc $T/trace_clock || skip_all "no x86-tsc trace clock"
for e in irq/irq_handler_entry irq/softirq_entry workqueue/workqueue_execute_start sched/sched_switch; do
	[ -d "$T/events/$e" ] || skip_all "tracepoint $e missing"
done
[ -f $D/events ] || skip_all "driver without events log"

IRQ=$(awk '/irqstorm/ { sub(":", "", $1); print $1; exit }' /proc/interrupts)
# TSC kHz: the refined calibration if the kernel logged one, else the first estimate.
khz=$(dmesg | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -n 1)
[ -n "$khz" ] || khz=$(dmesg | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz.*/\1/p' | tail -n 1)
[ -n "$khz" ] || khz=$(awk -F': ' '/^cpu MHz/ { print $2; exit }' /proc/cpuinfo)
khz=$(echo "$khz" | awk '{ printf "%d", $1 * 1000 }')
if [ -z "$IRQ" ] || [ "${khz:-0}" -le 0 ]; then skip_all "IRQ ($IRQ) or TSC kHz ($khz) unknown"; fi
ithread=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -m 1 "^irq/$IRQ-")
# sched_switch shows TASK_COMM_LEN - 1 characters (/proc may show a kthread's full name).
kthread=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -m 1 '^irqstorm_kth' | cut -c1-15)
mkdir -p $W
ktap_plan "$nm"
ktap_diag "irq $IRQ ($ithread), kthread $kthread, tsc $khz kHz, $N events per mechanism at 1 kHz"
# No storm-detector work item in the trace (it is the module's only other work function).
echo 0 > $D/storm_threshold

echo 0 > $T/tracing_on
echo x86-tsc > $T/trace_clock
echo 8192 > $T/buffer_size_kb
echo "irq == $IRQ" > $T/events/irq/irq_handler_entry/filter
echo "vec == 6" > $T/events/irq/softirq_entry/filter
echo 'next_comm ~ "*irqstorm*"' > $T/events/sched/sched_switch/filter
for e in irq/irq_handler_entry irq/softirq_entry workqueue/workqueue_execute_start sched/sched_switch; do
	echo 1 > "$T/events/$e/enable"
done

# p50 of the values on stdin (empty: "-").
p50() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }

# Trace lines -> "ts 0 I|B cpu" for the IRQ entries and the bottom-half entries of kind $1.
trace_points() {
	awk -v irq="irq=$IRQ" -v kind="$1" -v comm="$2" '
	{
		for (i = 1; i <= NF; i++) if ($i ~ /^\[[0-9]+\]$/) break
		for (j = i + 1; j <= NF; j++) if ($j ~ /^[0-9]+:$/) break
		if (j >= NF) next
		cpu = substr($i, 2, length($i) - 2) + 0; ts = substr($j, 1, length($j) - 1); ev = $(j + 1)
		if (ev == "irq_handler_entry:") { if ($(j + 2) == irq) print ts, 0, "I", cpu }
		else if (kind == "softirq" && ev == "softirq_entry:") { if ($(j + 2) == "vec=6") print ts, 0, "B", cpu }
		else if (kind == "work" && ev == "workqueue_execute_start:") { if ($NF == "[irqstorm]") print ts, 0, "B", cpu }
		else if (kind == "switch" && ev == "sched_switch:") {
			for (k = j + 2; k <= NF; k++) if ($k == "next_comm=" comm) { print ts, 0, "B", cpu; break }
		}
	}'
}

for m in $MECHS; do
	case $m in
	threaded) kind=switch comm=$ithread ;;
	kthread) kind=switch comm=$kthread ;;
	tasklet | tasklet_hi) kind=softirq comm= ;;
	bh_wq | bh_wq_highpri | wq_*) kind=work comm= ;;
	*) ktap_fail "ftrace cross-check $m" "no bottom-half tracepoint known for $m"; continue ;;
	esac
	echo all > $D/reset
	echo "all work none" > $D/sources
	echo "all $m" > $D/sources || { ktap_fail "ftrace cross-check $m" "cannot select $m"; continue; }
	echo clear > $D/events
	echo 1 > $D/events_enable
	echo > $T/trace
	echo 1 > $T/tracing_on
	echo "0 periodic 1000000 $N" > $D/timer || { ktap_fail "ftrace cross-check $m" "timer refused"; continue; }
	i=0
	while [ "$(grep '^acks_posted ' $D/counters | cut -d' ' -f2)" -lt "$N" ] && [ $i -lt 100 ]; do
		sleep 0.2
		i=$((i + 1))
	done
	echo 0 > $T/tracing_on
	echo 0 > $D/events_enable
	cat $D/events > $W/events
	cat $T/trace > $W/trace
	lost=$(grep -c 'LOST' $W/trace)
	# Queries at hardirq_tsc and bh_start_tsc of every FIRST event of this mechanism; the
	# trace points sort before a query at the same tick ("at or before").
	{
		trace_points $kind "$comm" < $W/trace
		awk -v m=$m '!/^#/ && $2 == m && $9 % 2 == 1 { print $5, 1, "QH", $3, $1; print $6, 1, "QB", $4, $1, $8 }' $W/events
	} | sort -k1,1n -k2,2n | awk -v khz="$khz" -v out=$W/vals '
		$3 == "I" { li[$4] = $1; next }
		$3 == "B" { lb[$4] = $1; next }
		$3 == "QH" { h[$5] = $1; qi[$5] = ($4 in li) ? li[$4] : ""; next }
		$3 == "QB" { b[$5] = $1; r[$5] = $6; qb[$5] = ($4 in lb) ? lb[$4] : ""; next }
		END {
			for (s in h) {
				n++
				if (!(s in b) || qi[s] == "" || qb[s] == "" || qb[s] + 0 < qi[s] + 0) continue
				k++
				f = 1e6 / khz
				print "D", (b[s] - h[s]) * f > out
				print "T", (qb[s] - qi[s]) * f > out
				print "O", (r[s] - h[s]) * f > out
				print "E", (b[s] - qb[s]) * f > out
				print "H", (h[s] - qi[s]) * f > out
				print "X", ((b[s] - h[s]) - (qb[s] - qi[s])) * f > out
			}
			print n + 0, k + 0
		}' > $W/counts
	[ -f $W/vals ] || : > $W/vals
	read first matched < $W/counts
	all=$(awk -v m=$m '!/^#/ && $2 == m' $W/events | wc -l)
	pb=$(awk -v m=$m '!/^#/ && $2 == m && int($9 / 2) % 2 == 1' $W/events | wc -l)
	pd=$(awk '$1 == "D" { print $2 }' $W/vals | p50)
	pt=$(awk '$1 == "T" { print $2 }' $W/vals | p50)
	po=$(awk '$1 == "O" { print $2 }' $W/vals | p50)
	pe=$(awk '$1 == "E" { print $2 }' $W/vals | p50)
	ph=$(awk '$1 == "H" { print $2 }' $W/vals | p50)
	px=$(awk '$1 == "X" { print $2 }' $W/vals | p50)
	rm -f $W/vals
	pct=$(awk -v k="$matched" -v n="$first" 'BEGIN { if (n) printf "%.1f", 100 * k / n; else print 0 }')
	ktap_diag "$m: events $all, FIRST $first, past_budget $pb, matched $matched ($pct%), trace lost $lost"
	ktap_diag "$m: hardirq->bh p50 driver $pd ns, trace $pt ns; before ACK_F_FIRST (record start) $po ns; trace bh entry -> driver bh start $pe ns, irq entry -> driver hardirq $ph ns, per-event driver - trace $px ns"
	why=""
	[ "$first" -gt 0 ] || why="no FIRST events"
	if [ -z "$why" ]; then
		why=$(awk -v d="$pd" -v t="$pt" -v pct="$pct" -v lim=$MAX_P50_DIFF_NS -v min=$MIN_MATCHED_PCT 'BEGIN {
			w = ""
			if (pct + 0 < min) w = w sprintf(" matched %s%% < %d%%", pct, min)
			if (d == "-" || t == "-") w = w " no p50"
			else { x = d - t; if (x < 0) x = -x; if (x > lim) w = w sprintf(" |p50 driver - trace| = %.0f ns > %d ns", x, lim) }
			print w }')
	fi
	if [ -z "$why" ]; then
		ktap_ok "ftrace cross-check $m"
	else
		ktap_diag "$m: sample trace lines:"
		grep -v '^#' $W/trace | head -n 4 | sed 's/^/#   /'
		ktap_fail "ftrace cross-check $m" "$why"
	fi
done

for e in irq/irq_handler_entry irq/softirq_entry workqueue/workqueue_execute_start sched/sched_switch; do
	echo 0 > "$T/events/$e/enable"
	echo 0 > "$T/events/$e/filter" 2>/dev/null
done
echo > $T/trace
echo local > $T/trace_clock
echo "all threaded" > $D/sources
echo 5000 > $D/storm_threshold
ktap_finish
