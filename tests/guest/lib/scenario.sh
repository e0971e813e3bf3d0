#!/bin/sh
# irqstorm scenario runner: the guest side of `cargo xtask run`.
#
# Booted as rdinit=/tests/lib/scenario.sh (instead of /init). Settings come
# from the kernel command line (written by xtask from the scenario file):
#   irqstorm_sc_src=ID:MECH:KIND:US:DELAY,...   mechanism, simulated work and requested delay (us) per source
#   irqstorm_sc_ref=PERIOD_US:HEXMASK|off local hrtimer reference source
#   irqstorm_sc_pings=N                    PING exchanges before and after the run
#   irqstorm_sc_irq_affinity=CPULIST       the device IRQ's smp_affinity_list (guest.irq_affinity)
#   irqstorm_sc_user_fifo=PRIO             SCHED_FIFO priority of the `user` reader (guest.user_fifo)
# A source on mechanism `user` has the guest program /bin/irqstorm-wait as its reader, started
# before READY and stopped (SIGTERM) at `dump`, which then prints its summary:
#   IRQSTORM_SC_USER irqstorm-wait: records N first F policy FF 50 hardirq_to_user_us ...
#   irqstorm.NAME=VALUE                    guest driver module parameter, handed to insmod
#                                          (`cargo xtask run --module-param NAME=VALUE`)
# Protocol on the console (host -> guest lines arrive on the serial input):
#   guest: IRQSTORM_SC_READY                 settings applied, stats reset
#   host:  reset        -> guest: IRQSTORM_SC_ACK reset   (guest stats + counters cleared)
#   host:  w FILE ARGS  -> guest: IRQSTORM_SC_ACK w|IRQSTORM_SC_NAK w ERR (echo ARGS > debugfs FILE)
#   host:  show FILE    -> guest: debugfs FILE between IRQSTORM_SC_BEGIN FILE / IRQSTORM_SC_END FILE,
#                          IRQSTORM_SC_ACK show
#   host:  calibrate    -> guest: one CALIBRATE (IRQSTORM_SC_CALIB line), IRQSTORM_SC_ACK calibrate
#   host:  dump         -> guest: reference stopped, PINGs, tables between
#                          IRQSTORM_SC_BEGIN NAME / IRQSTORM_SC_END NAME, IRQSTORM_SC_ACK dump
#   host:  done         -> guest powers off
# With irqstorm_sc_trace=1 (`cargo xtask run --trace`) the guest traces from READY on: trace
# clock x86-tsc (the driver's TSC stamps are the same counter), irq:irq_handler_entry of the
# device's IRQ, irq:softirq_entry, workqueue:workqueue_execute_start, sched:sched_switch to
# the driver's threads, and the driver's events log (debugfs events); `dump` stops both and
# adds them as the sections `events` and `trace` (the host keeps events.txt, trace.txt).
# With irqstorm_sc_timerlat=PERIOD_US:BUFFER_KB (scenario [timerlat], `cargo xtask run --timerlat`)
# the kernel's timerlat tracer runs in its own tracefs instance over the measured phase (from
# READY, its buffer emptied at `reset` after a warm-up, to `calibrate`); `dump` adds the section `timerlat`: period_us, cpus, `overrun CPU N`
# per CPU and one `s CPU ACTIVATION irq|thread NS` per sample (`bad LINE` for a line it cannot
# split). The host computes every figure (report/src/input/timerlat.rs).
# PING lines: IRQSTORM_SC_PING t1_guest t2_host t3_host t4_guest (ns, CLOCK_MONOTONIC each).
# Run conditions (before READY, and the clocksource again in dump):
#   IRQSTORM_SC_CLOCKSOURCE NAME             current clocksource (e.g. tsc-early, tsc)
#   IRQSTORM_SC_CPUFLAGS cpus=N FLAG=0|1 ... CPUs and the TSC flags of /proc/cpuinfo
# CALIBRATE lines (spec §6.1.3; after set-up, and on the host's "calibrate" after the measured phase; the
# in-phase ones print none):
#   IRQSTORM_SC_CALIB lower upper host_tsc_mid host_samples guest_samples result
#   (host TSC - guest TSC bounds in ticks; the back end's stats keep every calibration,
#   these are for humans and a cross-check), or IRQSTORM_SC_CALIB failed ERR: DRIVER-LOG-LINE.
. /tests/lib/console-init.sh "scenario runner"

D=/sys/kernel/debug/irqstorm
src=""
ref=off
pings=16
modparams=""
irq_affinity=""
user_fifo=""
trace=0
timerlat=""
calib_ms=""
T=/sys/kernel/tracing
TL=$T/instances/irqstorm-timerlat
TRACE_EVENTS="irq/irq_handler_entry irq/softirq_entry workqueue/workqueue_execute_start sched/sched_switch"
for w in $(cat /proc/cmdline); do
	case "$w" in
	irqstorm_sc_src=*) src="${w#irqstorm_sc_src=}" ;;
	irqstorm_sc_ref=*) ref="${w#irqstorm_sc_ref=}" ;;
	irqstorm_sc_pings=*) pings="${w#irqstorm_sc_pings=}" ;;
	irqstorm_sc_irq_affinity=*) irq_affinity="${w#irqstorm_sc_irq_affinity=}" ;;
	irqstorm_sc_user_fifo=*) user_fifo="${w#irqstorm_sc_user_fifo=}" ;;
	irqstorm.*=*) modparams="$modparams ${w#irqstorm.}" ;;
	irqstorm_sc_trace=1) trace=1 ;;
	irqstorm_sc_timerlat=*) timerlat="${w#irqstorm_sc_timerlat=}" ;;
	irqstorm_sc_calib_ms=*) calib_ms="${w#irqstorm_sc_calib_ms=}" ;;
	esac
done

fail() {
	echo "IRQSTORM_SC_FAIL $*"
	poweroff -f
}

# shellcheck disable=SC2086 # one word per parameter
insmod /lib/modules/irqstorm.ko $modparams || fail "insmod irqstorm.ko$modparams"
i=0
while [ ! -e $D/sources ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -e $D/sources ] || fail "no $D (device not bound?)"
echo 0 > $D/storm_threshold
# The device IRQ: where it may run (guest.irq_affinity) and where it does.
irq=$(awk '/irqstorm/ { sub(":", "", $1); print $1; exit }' /proc/interrupts)
if [ -n "$irq_affinity" ]; then
	echo "$irq_affinity" > "/proc/irq/$irq/smp_affinity_list" || fail "irq $irq: smp_affinity_list $irq_affinity"
fi
irq_line() {
	echo "IRQSTORM_SC_IRQ irq=$irq affinity=$(cat /proc/irq/$irq/smp_affinity_list) effective=$(cat /proc/irq/$irq/effective_affinity_list 2>/dev/null)"
}
irq_line
echo "IRQSTORM_SC_TIMING $(awk '$1 == "hz" { print "hz=" $2 }' $D/timing 2>/dev/null)"

for s in $(echo "$src" | tr ',' ' '); do
	IFS=: read -r id mech kind us delay <<EOT
$s
EOT
	echo "$id work none" > $D/sources || fail "source $id: work none"
	echo "$id $mech" > $D/sources || fail "source $id: mechanism $mech"
	if [ "$kind" != none ]; then
		echo "$id work $kind $us" > $D/sources || fail "source $id: work $kind $us"
	fi
	if [ "${delay:-0}" != 0 ]; then
		echo "$id delay $delay" > $D/sources || fail "source $id: delay $delay"
	fi
done


do_pings() {
	n=0
	while [ $n -lt "$pings" ]; do
		n=$((n + 1))
		echo ping > $D/ctrl || continue
		# t4 is the driver's hard-IRQ stamp of the reply (guest_recv_ns): a
		# stamp taken here, after wake-up and the return to user space, would
		# make the return path look slow and bias the offset estimate.
		t1="" t2="" t3="" t4=""
		while read -r k v; do
			case "$k" in
			host_ns) t2=$v ;;
			guest_ns) t1=$v ;;
			host_send_ns) t3=$v ;;
			guest_recv_ns) t4=$v ;;
			esac
		done <$D/ctrl
		echo "IRQSTORM_SC_PING $t1 $t2 $t3 $t4"
	done
}

clocksource() {
	echo "IRQSTORM_SC_CLOCKSOURCE $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo unknown)"
}

cpuflags() {
	fl=" $(grep -m1 '^flags' /proc/cpuinfo | sed 's/^[^:]*://') "
	line="cpus=$(grep -c '^processor' /proc/cpuinfo)"
	for f in tsc constant_tsc nonstop_tsc tsc_known_freq rdtscp; do
		case "$fl" in
		*" $f "*) line="$line $f=1" ;;
		*) line="$line $f=0" ;;
		esac
	done
	echo "IRQSTORM_SC_CPUFLAGS $line"
}

do_calibrate() {
	# 20 ms: on a loaded host the vCPU and the back end must run at the same
	# time for a tight bound; a longer window makes that likelier.
	if ! err=$(echo calibrate 20000 2>&1 > $D/ctrl); then
		# The driver logs every calibration (result, bounds, samples) in one line.
		echo "IRQSTORM_SC_CALIB failed $err: $(dmesg | grep 'irqstorm.*calibration' | tail -n 1)"
		return
	fi
	lo="" up="" mid="" hs="" gs="" res=""
	while read -r k v; do
		case "$k" in
		lower) lo=$v ;;
		upper) up=$v ;;
		host_tsc_mid) mid=$v ;;
		host_samples) hs=$v ;;
		guest_samples) gs=$v ;;
		result) res=$v ;;
		esac
	done <$D/ctrl
	echo "IRQSTORM_SC_CALIB $lo $up $mid $hs $gs $res"
}

# Tracing for --trace; a kernel without x86-tsc or a tracepoint says so and the run goes on.
trace_start() {
	[ -d $T/events ] || mount -t tracefs none $T 2>/dev/null
	grep -q x86-tsc $T/trace_clock 2>/dev/null || { echo "IRQSTORM_SC_TRACE unavailable: no x86-tsc trace clock"; trace=0; return; }
	irq=$(awk '/irqstorm/ { sub(":", "", $1); print $1; exit }' /proc/interrupts)
	echo 0 > $T/tracing_on
	echo x86-tsc > $T/trace_clock
	echo 1024 > $T/buffer_size_kb
	[ -n "$irq" ] && echo "irq == $irq" > $T/events/irq/irq_handler_entry/filter
	echo 'next_comm ~ "*irqstorm*"' > $T/events/sched/sched_switch/filter
	for e in $TRACE_EVENTS; do
		echo 1 > "$T/events/$e/enable" || echo "IRQSTORM_SC_TRACE unavailable: tracepoint $e"
	done
	echo 1 > $D/events_enable
	echo > $T/trace
	echo 1 > $T/tracing_on
	echo "IRQSTORM_SC_TRACE on: irq $irq, tsc $(dmesg | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -n 1) MHz"
}

trace_dump() {
	echo 0 > $T/tracing_on
	echo 0 > $D/events_enable
	dump events
	echo "IRQSTORM_SC_BEGIN trace"
	cat $T/trace
	echo "IRQSTORM_SC_END trace"
}

# timerlat in an instance of its own, so --trace's buffer and settings are untouched.
timerlat_on=0
timerlat_start() {
	[ -n "$timerlat" ] || return 0
	[ -d $T/events ] || mount -t tracefs none $T 2>/dev/null
	[ -d $TL ] || mkdir $TL || fail "timerlat: mkdir $TL"
	grep -qw timerlat $TL/available_tracers || fail "timerlat: not in $TL/available_tracers (CONFIG_TIMERLAT_TRACER)"
	echo "${timerlat%%:*}" > $T/osnoise/timerlat_period_us || fail "timerlat: period ${timerlat%%:*} us"
	echo "${timerlat#*:}" > $TL/buffer_size_kb || fail "timerlat: buffer_size_kb ${timerlat#*:}"
	echo > $TL/trace
	echo timerlat > $TL/current_tracer || fail "timerlat: current_tracer"
	timerlat_on=1
}
timerlat_stop() {
	[ "$timerlat_on" = 1 ] || return 0
	echo 0 > $TL/tracing_on
	timerlat_on=2
}
timerlat_dump() {
	[ -n "$timerlat" ] || return 0
	timerlat_stop
	echo "IRQSTORM_SC_BEGIN timerlat"
	echo "period_us $(cat $T/osnoise/timerlat_period_us)"
	echo "cpus $(cat $T/osnoise/cpus)"
	for c in "$TL"/per_cpu/cpu*; do
		echo "overrun ${c##*cpu} $(awk '$1 == "overrun:" { print $2 }' "$c/stats")"
	done
	# `<idle>-0 [000] d.h1. 54.029328: #1 context irq timer_latency 932 ns`
	awk '/timer_latency/ {
		cpu = ""; id = ""; ctx = ""; ns = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^\[[0-9]+\]$/) cpu = substr($i, 2, length($i) - 2) + 0
			else if ($i ~ /^#[0-9]+$/) id = substr($i, 2)
			else if ($i == "context") ctx = $(i + 1)
			else if ($i == "timer_latency") ns = $(i + 1)
		}
		if (cpu == "" || id == "" || ctx == "" || ns == "") print "bad " $0
		else print "s " cpu " " id " " ctx " " ns
	}' $TL/trace
	echo "IRQSTORM_SC_END timerlat"
	echo nop > $TL/current_tracer
}

dump() {
	echo "IRQSTORM_SC_BEGIN $1"
	cat "$D/$1"
	echo "IRQSTORM_SC_END $1"
}

# Calibrations during the measured phase, from its reset to the host's
# "calibrate": 1 ms windows every irqstorm_sc_calib_ms (scenario [time_base]
# calibrate_every_ms, default 250 ms). Under TCG the guest TSC gains on the
# host's irregularly (QEMU ratchets its tick offset forward whenever a vCPU
# reads a tick below the last one read: 0.1-1.3 us per 0.5 s in a storm); the
# fit re-anchors on each calibration, and each one bounds the estimates made
# since the one before; the device runs their loop without its lock, so
# events go on meanwhile (docs/clock-offset.md).
CAL_ON=/tmp/irqstorm-cal-on
cal_loop_start() {
	touch $CAL_ON
	(
		while [ -e $CAL_ON ]; do
			usleep $((${calib_ms:-250} * 1000))
			[ -e $CAL_ON ] && echo calibrate 1000 2>/dev/null > $D/ctrl
		done
	) &
	cal_pid=$!
}
cal_loop_stop() {
	rm -f $CAL_ON
	[ -n "$cal_pid" ] && wait "$cal_pid" 2>/dev/null
	cal_pid=""
}

# The `user` reader, when a source needs one.
user_pid=""
user_start() {
	case ",$src" in
	*:user:*) ;;
	*) return ;;
	esac
	/bin/irqstorm-wait ${user_fifo:+--fifo $user_fifo} > /tmp/irqstorm-wait.out 2>&1 &
	user_pid=$!
}
user_stop() {
	[ -n "$user_pid" ] || return
	kill "$user_pid" 2>/dev/null
	wait "$user_pid"
	echo "IRQSTORM_SC_USER $(tail -n 1 /tmp/irqstorm-wait.out)"
	user_pid=""
}

do_calibrate
do_pings
user_start
echo all > $D/reset
if [ "$ref" != off ]; then
	echo "start ${ref%%:*} ${ref#*:}" > $D/local || fail "local start $ref"
fi
clocksource
cpuflags
[ "$trace" = 1 ] && trace_start
timerlat_start
echo "IRQSTORM_SC_READY"
while read -r cmd rest; do
	case "$cmd" in
	reset)
		echo stats > $D/reset
		cal_loop_stop
		cal_loop_start
		# timerlat keeps running; its samples start with the measured phase.
		[ "$timerlat_on" = 1 ] && echo > $TL/trace
		echo "IRQSTORM_SC_ACK reset"
		;;
	w)
		f="${rest%% *}"
		a="${rest#* }"
		if err=$(echo "$a" 2>&1 > "$D/$f"); then
			echo "IRQSTORM_SC_ACK w"
		else
			echo "IRQSTORM_SC_NAK w $f $a: $err"
		fi
		;;
	show)
		dump "$rest"
		echo "IRQSTORM_SC_ACK show"
		;;
	calibrate)
		# After the measured phase, before the host takes its stats: this
		# calibration checks the last one the phase was measured with.
		cal_loop_stop
		timerlat_stop
		do_calibrate
		echo "IRQSTORM_SC_ACK calibrate"
		;;
	dump)
		[ "$ref" != off ] && echo stop > $D/local
		user_stop
		do_pings
		clocksource
		# x86 moves an IRQ at its next interrupt: the effective CPUs after the phase.
		irq_line
		for t in stats counters hist hist_work hist_local; do dump $t; done
		[ "$trace" = 1 ] && trace_dump
		timerlat_dump
		echo "IRQSTORM_SC_ACK dump"
		;;
	done)
		break
		;;
	esac
done
echo "IRQSTORM_SC_DONE"
bad=$(dmesg | grep -cE '(WARNING:|BUG:|Oops|Kernel panic|general protection fault|Call Trace:)')
echo "# irqstorm-init: dmesg-scan problems=$bad"
poweroff -f
