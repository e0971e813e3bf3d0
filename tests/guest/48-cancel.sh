#!/bin/sh
# Cancel and flush under a storm (issue 11 item 3). For each mechanism with a kernel cancel
# call (tasklet_kill, cancel_work_sync, cancel_delayed_work_sync, timer_delete_sync,
# hrtimer_cancel): a 10000/s storm in bursts of 8 with 20 us of work per record (a softirq
# bottom half at 100 % of a vCPU would starve this script until the storm ends), then
# `cancel MECH` (debugfs bh) hands back what waits and everything that comes while the
# mechanism is closed, `reopen MECH` resumes. Checked: records handed back (> 0), none of its
# runs after the cancel returned (ran_after_cancel 0), conservation on both sides (device:
# raised = records + coalesced, every record acked; driver: records = processed +
# cancelled). Then `flush MECH` on the work items under a storm, and refusals.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
irqstorm_require_device

dstat() { grep "^$1 " $D/ctrl | cut -d' ' -f2; }
# Waits (at most 30 s) until the device has raised $1 events (the storm is over), every
# record is acked and nothing is pending. A loaded host runs the guest slowly: wall time
# says nothing about how far the storm got.
settle() {
	i=0
	while [ $i -lt 300 ]; do
		echo "stats all" > $D/ctrl
		[ "$(dstat raised)" -ge "$1" ] && [ "$(dstat pending)" -eq 0 ] && [ "$(dstat acked)" -eq "$(dstat records)" ] && return
		sleep 0.1
		i=$((i + 1))
	done
}
# Waits (at most 30 s) until the device has raised $1 events.
raised_at_least() {
	i=0
	while [ $i -lt 300 ]; do
		echo "stats all" > $D/ctrl
		[ "$(dstat raised)" -ge "$1" ] && return
		sleep 0.05
		i=$((i + 1))
	done
}
CASES="tasklet:0 bh_wq:0 wq_system:0 wq_dedicated:0 wq_ordered:0 wq_cpu_intensive:0 wq_delayed:5000 timer_list:0 hrtimer:2000"
FLUSH="bh_wq wq_system wq_unbound wq_dedicated wq_ordered wq_cpu_intensive wq_delayed"
ktap_plan $(($(echo $CASES | wc -w) + $(echo $FLUSH | wc -w) + 2))

for c in $CASES; do
	m=${c%%:*} delay=${c#*:}
	name="cancel $m under a storm: handed back, nothing after, conserved"
	echo all > $D/reset
	echo "0 delay 0" > $D/sources
	echo "0 $m" > $D/sources
	echo "0 work busy 20" > $D/sources
	echo "0 delay $delay" > $D/sources
	a0=$(cnt ran_after_cancel)
	echo "0 10000 8 1000" > $D/storm
	raised_at_least 1500
	if ! echo "cancel $m" > $D/bh; then ktap_fail "$name" "cancel refused"; continue; fi
	k1=$(cnt cancelled)
	raised_at_least 4000
	echo "reopen $m" > $D/bh
	settle 10000
	echo "stats all" > $D/ctrl
	r=$(dstat raised); rec=$(dstat records); co=$(dstat coalesced); ack=$(dstat acked)
	grec=$(cnt records); k=$(cnt cancelled); ran=$(($(cnt ran_after_cancel) - a0))
	done_=$(grep "^$m " $D/stats | head -1 | awk '{print $2}')
	ktap_diag "$m: raised $r records $rec coalesced $co acked $ack; driver records $grec processed $done_ cancelled $k ($k1 at the cancel's return), ran after cancel $ran"
	why=""
	[ "$k" -gt 0 ] || why="$why nothing handed back;"
	[ "$ran" -eq 0 ] || why="$why $ran runs after the cancel returned;"
	[ "$r" -eq $((rec + co)) ] || why="$why raised != records + coalesced;"
	[ "$ack" -eq "$rec" ] || why="$why acked != records;"
	[ "$grec" -eq "$rec" ] || why="$why driver records != device records;"
	[ "$grec" -eq $((done_ + k)) ] || why="$why records != processed + cancelled;"
	if [ -z "$why" ]; then ktap_ok "$name"; else ktap_fail "$name" "$why"; fi
	echo "0 work none" > $D/sources
	echo "0 delay 0" > $D/sources
done

for m in $FLUSH; do
	name="flush $m under a storm returns, nothing lost"
	echo all > $D/reset
	echo "0 $m" > $D/sources
	echo "0 work busy 20" > $D/sources
	f0=$(cnt flushes)
	echo "0 10000 8 500" > $D/storm
	raised_at_least 1000
	ok=1
	echo "flush $m" > $D/bh || ok=0
	settle 5000
	echo "stats all" > $D/ctrl
	rec=$(dstat records); ack=$(dstat acked); k=$(cnt cancelled)
	why=""
	[ "$ok" = 1 ] || why="$why flush refused;"
	[ $(($(cnt flushes) - f0)) -eq 1 ] || why="$why flushes not counted;"
	[ "$ack" -eq "$rec" ] && [ "$k" -eq 0 ] || why="$why acked $ack of $rec, $k cancelled;"
	if [ -z "$why" ]; then ktap_ok "$name"; else ktap_fail "$name" "$why"; fi
	echo "0 work none" > $D/sources
done

# The race of a hard IRQ on another CPU with the cancel: the IRQ checked "open", then the
# cancel closed the mechanism, killed the tasklet and returned, then the IRQ queued its record
# and scheduled the tasklet, which ran after the cancel had returned (ran_after_cancel). The
# module parameter dispatch_delay_us=50 widens the IRQ's window between its check and its
# queueing; the IRQ on CPU 1, this shell on CPU 0; 60 cancel/reopen cycles under a storm.
if [ "$(nproc)" -ge 2 ]; then
	irqstorm_reload dispatch_delay_us=50
	echo all > $D/reset
	irq=$(awk '/irqstorm/ { sub(":", "", $1); print $1; exit }' /proc/interrupts)
	echo 1 > "/proc/irq/$irq/smp_affinity_list"
	taskset -p -c 0 $$ > /dev/null
	echo "0 tasklet" > $D/sources
	a0=$(cnt ran_after_cancel)
	echo "0 10000 1 3000" > $D/storm
	raised_at_least 500
	n=0
	while [ $n -lt 60 ]; do
		echo "cancel tasklet" > $D/bh
		echo "reopen tasklet" > $D/bh
		n=$((n + 1))
	done
	settle 30000
	echo "stats all" > $D/ctrl
	rec=$(dstat records); ack=$(dstat acked)
	ran=$(($(cnt ran_after_cancel) - a0)); k=$(cnt cancelled)
	ktap_diag "cancel race: 60 cycles, $k handed back, $ran runs after a cancel returned; device records $rec acked $ack"
	if [ "$ran" -eq 0 ] && [ "$ack" -eq "$rec" ] && [ "$k" -gt 0 ]; then
		ktap_ok "no run after a cancel returned with the IRQ on another CPU (dispatch_delay_us=50)"
	else
		ktap_fail "no run after a cancel returned with the IRQ on another CPU (dispatch_delay_us=50)" "$ran runs after the cancel, $k handed back, acked $ack of $rec"
	fi
	taskset -p -c 0-$(($(nproc) - 1)) $$ > /dev/null
	irqstorm_reload
else
	ktap_skip "no run after a cancel returned with the IRQ on another CPU" "one CPU: the race needs two"
fi

r0=$(cnt cancel_refused)
why=""
echo "cancel threaded" 2> /dev/null > $D/bh && why="$why threaded cancelled;"
echo "flush timer_list" 2> /dev/null > $D/bh && why="$why timer_list flushed;"
echo "cancel nope" 2> /dev/null > $D/bh && why="$why unknown mechanism accepted;"
echo "cancel" 2> /dev/null > $D/bh && why="$why no mechanism accepted;"
[ $(($(cnt cancel_refused) - r0)) -eq 4 ] || why="$why cancel_refused +$(($(cnt cancel_refused) - r0)) (4 wanted);"
grep -q "^closed$" $D/bh || why="$why still closed: $(head -1 $D/bh);"
if [ -z "$why" ]; then ktap_ok "bad bh commands refused and counted, nothing left closed"; else ktap_fail "bad bh commands refused and counted, nothing left closed" "$why"; fi
echo "all threaded" > $D/sources
ktap_finish
