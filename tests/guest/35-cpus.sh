#!/bin/sh
# CPUs and threads (issue 11 item 5):
#   - the device IRQ's /proc/interrupts count (summed over CPUs) moves with the driver's `irqs`;
#   - the IRQ thread irq/N-irqstorm and the driver's kthreads are listed by ps, the IRQ thread at
#     SCHED_FIFO, the kthread and completion waiter at SCHED_NORMAL, and at SCHED_FIFO after
#     reloading the module with kthread_fifo=1;
#   - IRQ affinity: with /proc/irq/N/smp_affinity_list set to one CPU, every record's hard IRQ
#     (the events log's hard_cpu) runs there, and a tasklet's bottom half with it;
#   - wq_cpu=1 (module parameter, queue_work_on) with the IRQ on CPU 0: every wq_system and
#     wq_dedicated bottom half runs on CPU 1.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
irqstorm_require_device

ncpu=$(grep -c '^processor' /proc/cpuinfo)
irq_of() { awk '/irqstorm/ { sub(":", "", $1); print $1; exit }' /proc/interrupts; }
IRQ=$(irq_of)
# The IRQ's count summed over the CPU columns.
irq_total() {
	awk -v irq="$1:" -v n="$ncpu" '$1 == irq { s = 0; for (i = 2; i <= n + 1; i++) s += $i; print s }' /proc/interrupts
}
# "policy rt_priority" of the thread whose comm is $1 (from /proc/PID/stat, fields 41 and 40).
policy_of() {
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = "$1" ] || continue
		sed 's/^.*) //' "$p/stat" | awk '{ print $39, $38 }'
		return
	done
}

# Reloads the module with parameters "$@" (its IRQ number may change).
reload() {
	irqstorm_reload "$@"
	IRQ=$(irq_of)
}

# The events log of $1 events at 1 kHz from each of sources $2..., after 20 events of warm-up
# (an IRQ affinity change takes effect from the next interrupt on).
log_events() {
	n=$1
	shift
	a0=$(cnt acks_posted)
	echo "0 periodic 1000000 20" > $D/timer
	wait_acks $((a0 + 20))
	echo clear > $D/events
	echo 1 > $D/events_enable
	a0=$(cnt acks_posted)
	for src in "$@"; do echo "$src periodic 1000000 $n" > $D/timer; done
	wait_acks $((a0 + n * $#))
	echo 0 > $D/events_enable
}

ktap_plan 6
ktap_diag "$ncpu CPUs, irqstorm IRQ $IRQ"

# 1. /proc/interrupts against the driver's count, over a quiet start and end.
echo all > $D/reset
echo "all work none" > $D/sources
echo "all tasklet" > $D/sources
a0=$(cnt acks_posted)
p0=$(irq_total "$IRQ"); d0=$(cnt irqs)
echo "0 periodic 2000000 200" > $D/timer
wait_acks $((a0 + 200))
sleep 0.2
p1=$(irq_total "$IRQ"); d1=$(cnt irqs)
dp=$((p1 - p0)); dd=$((d1 - d0))
# Two records can share an interrupt (EVENT_IDX): at least half as many interrupts as events.
if [ "$dp" -eq "$dd" ] && [ "$dd" -ge 100 ]; then
	ktap_ok "/proc/interrupts counts the driver's interrupts ($dd)"
else
	ktap_fail "/proc/interrupts counts the driver's interrupts" "/proc/interrupts +$dp, driver irqs +$dd (>= 100 wanted)"
fi

# 2. The threads in ps, with their policy (0 SCHED_NORMAL, 1 SCHED_FIFO).
ithread="irq/$IRQ-irqstorm"
# ps shows TASK_COMM_LEN - 1 characters (/proc/PID/comm a kthread's full name).
listed=$(ps -o comm 2>/dev/null | grep -c -e "^$ithread\$" -e '^irqstorm_kthrea$' -e '^irqstorm_compl$')
pi=$(policy_of "$ithread"); pk=$(policy_of irqstorm_kthread); pc=$(policy_of irqstorm_compl)
ktap_diag "ps: $listed of 3 listed; policy rt_priority: $ithread $pi, irqstorm_kthread $pk, irqstorm_compl $pc"
if [ "$listed" -eq 3 ] && [ "${pi%% *}" = 1 ] && [ "${pk%% *}" = 0 ] && [ "${pc%% *}" = 0 ]; then
	ktap_ok "ps lists the IRQ thread (SCHED_FIFO) and the kthreads (SCHED_NORMAL)"
else
	ktap_fail "ps lists the IRQ thread (SCHED_FIFO) and the kthreads (SCHED_NORMAL)" "listed $listed, policies '$pi' '$pk' '$pc'"
fi

# 3. kthread_fifo=1 puts the kthreads at SCHED_FIFO.
reload kthread_fifo=1
pk=$(policy_of irqstorm_kthread); pc=$(policy_of irqstorm_compl)
if [ "${pk%% *}" = 1 ] && [ "${pc%% *}" = 1 ]; then
	ktap_ok "kthread_fifo=1: the kthreads run at SCHED_FIFO ($pk, $pc)"
else
	ktap_fail "kthread_fifo=1: the kthreads run at SCHED_FIFO" "policies '$pk' '$pc'"
fi
reload

# 4-5. IRQ affinity: hard IRQ and tasklet on the chosen CPU.
affinity_check() {
	cpu=$1
	name="smp_affinity_list $cpu: every hard IRQ and tasklet on CPU $cpu"
	if ! echo "$cpu" > "/proc/irq/$IRQ/smp_affinity_list" 2>/tmp/aff.err; then
		ktap_fail "$name" "write refused: $(cat /tmp/aff.err)"
		return
	fi
	echo "all tasklet" > $D/sources
	log_events 200 0
	res=$(awk -v c="$cpu" '!/^#/ && $2 == "tasklet" { n++; if ($3 != c) h++; if ($4 != c) b++ } END { printf "%d %d %d", n, h, b }' $D/events)
	set -- $res
	eff=$(cat "/proc/irq/$IRQ/effective_affinity_list" 2>/dev/null)
	ktap_diag "affinity $cpu (effective $eff): $1 records, $2 hard IRQs elsewhere, $3 bottom halves elsewhere"
	if [ "$1" -ge 200 ] && [ "$2" -eq 0 ] && [ "$3" -eq 0 ]; then
		ktap_ok "$name"
	else
		ktap_fail "$name" "$1 records, $2 hard IRQs and $3 tasklets on another CPU"
	fi
}
if [ "$ncpu" -ge 2 ]; then
	affinity_check 0
	affinity_check 1
	echo "0-$((ncpu - 1))" > "/proc/irq/$IRQ/smp_affinity_list"
	# 6. queue_work_on: the per-CPU queues' work on the CPU asked for, away from the IRQ.
	reload wq_cpu=1
	echo 0 > "/proc/irq/$IRQ/smp_affinity_list"
	echo "0 wq_system" > $D/sources
	echo "1 wq_dedicated" > $D/sources
	log_events 100 0 1
	res=$(awk '!/^#/ && ($2 == "wq_system" || $2 == "wq_dedicated") { n++; if ($3 != 0) h++; if ($4 != 1) b++ } END { printf "%d %d %d", n, h, b }' $D/events)
	set -- $res
	ktap_diag "wq_cpu=1, IRQ on CPU 0: $1 records, $2 hard IRQs off CPU 0, $3 bottom halves off CPU 1"
	if [ "$1" -ge 200 ] && [ "$2" -eq 0 ] && [ "$3" -eq 0 ]; then
		ktap_ok "wq_cpu=1: wq_system and wq_dedicated run on CPU 1, the IRQ on CPU 0"
	else
		ktap_fail "wq_cpu=1: wq_system and wq_dedicated run on CPU 1, the IRQ on CPU 0" "$1 records, $2 hard IRQs, $3 bottom halves elsewhere"
	fi
	reload
else
	ktap_skip "smp_affinity_list 0" "one CPU"
	ktap_skip "smp_affinity_list 1" "one CPU"
	ktap_skip "wq_cpu=1" "one CPU"
fi

echo "all threaded" > $D/sources
ktap_finish
