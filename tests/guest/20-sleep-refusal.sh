#!/bin/sh
# Asking a non-sleepable mechanism to sleep (sleep, msleep, usleep or timeout work) is refused
# with -EINVAL and a message saying why, counted `sleep_refused`; sleepable mechanisms accept
# every kind; `user` (a user thread is its bottom half) takes no simulated work at all
# (`work_refused`).
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
irqstorm_require_device

KINDS="sleep msleep usleep timeout"
ktap_plan 21
echo "all work none" > $D/sources
for m in hardirq tasklet tasklet_hi bh_wq bh_wq_highpri timer_list hrtimer; do
	echo "0 $m" > "$C/mechanism"
	bad=""
	r0=$(cnt sleep_refused)
	for k in $KINDS; do
		out=$(echo "0 $k 100" 2>&1 > "$C/work")
		rc=$?
		msg=$(dmesg | grep "source 0: refusing to sleep: mechanism $m " | tail -1)
		if [ $rc -eq 0 ] || ! echo "$out" | grep -q "Invalid argument" || [ -z "$msg" ]; then
			bad="$bad $k: rc=$rc out='$out' msg='$msg';"
		fi
	done
	r1=$(cnt sleep_refused)
	[ $((r1 - r0)) -eq 4 ] || bad="$bad sleep_refused +$((r1 - r0)), not +4;"
	if [ -z "$bad" ]; then ktap_ok "every sleep kind refused in $m (EINVAL, counted)"; else ktap_fail "every sleep kind refused in $m (EINVAL, counted)" "$bad"; fi
done
for m in threaded wq_system wq_highpri wq_unbound wq_dedicated wq_ordered wq_cpu_intensive kthread completion wq_delayed kthread_msleep kthread_usleep; do
	echo "0 $m" > "$C/mechanism"
	bad=""
	for k in $KINDS; do
		echo "0 $k 100" > "$C/work" || bad="$bad $k;"
	done
	echo "0 none" > "$C/work"
	if [ -z "$bad" ]; then ktap_ok "every sleep kind accepted in $m"; else ktap_fail "every sleep kind accepted in $m" "refused:$bad"; fi
done
# Switching a sleeping source to an atomic mechanism is refused too.
echo "0 threaded" > "$C/mechanism"; echo "0 msleep 100" > "$C/work"
if echo "0 tasklet" > "$C/mechanism" 2>/dev/null; then
	ktap_fail "mechanism change to tasklet refused while the source sleeps" "accepted"
else
	ktap_ok "mechanism change to tasklet refused while the source sleeps"
fi
# `user` runs no simulated work: refused both ways, counted.
w0=$(cnt work_refused)
bad=""
echo "0 user" > "$C/mechanism" 2>/dev/null && bad="$bad mechanism user accepted with msleep work;"
echo "0 none" > "$C/work"
echo "0 user" > "$C/mechanism" || bad="$bad mechanism user refused without work;"
echo "0 busy 10" > "$C/work" 2>/dev/null && bad="$bad busy work accepted on user;"
[ $(($(cnt work_refused) - w0)) -eq 2 ] || bad="$bad work_refused +$(($(cnt work_refused) - w0)), not +2;"
echo "0 threaded" > "$C/mechanism"
if [ -z "$bad" ]; then ktap_ok "user takes no simulated work (EINVAL, work_refused)"; else ktap_fail "user takes no simulated work (EINVAL, work_refused)" "$bad"; fi
echo "0 none" > "$C/work"
ktap_finish
