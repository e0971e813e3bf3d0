#!/bin/sh
# Asking a non-sleepable mechanism to sleep is refused with -EINVAL and a message saying why;
# sleepable mechanisms accept it.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
irqstorm_require_device

ktap_plan 18
echo "all work none" > $D/sources
for m in hardirq tasklet tasklet_hi bh_wq bh_wq_highpri timer_list hrtimer; do
	echo "0 $m" > "$P/mechanism"
	out=$(echo "0 sleep 100" 2>&1 > "$P/work")
	rc=$?
	msg=$(dmesg | grep "source 0: refusing to sleep: mechanism $m " | tail -1)
	if [ $rc -ne 0 ] && echo "$out" | grep -q "Invalid argument" && [ -n "$msg" ]; then
		ktap_ok "sleep refused in $m (EINVAL)"
	else
		ktap_fail "sleep refused in $m (EINVAL)" "rc=$rc out='$out' msg='$msg'"
	fi
done
for m in threaded wq_system wq_highpri wq_unbound wq_dedicated kthread completion wq_delayed kthread_msleep kthread_usleep; do
	echo "0 $m" > "$P/mechanism"
	if echo "0 sleep 100" > "$P/work"; then ktap_ok "sleep accepted in $m"; else ktap_fail "sleep accepted in $m" "write failed"; fi
	echo "0 none" > "$P/work"
done
# Switching a sleeping source to an atomic mechanism is refused too.
echo "0 threaded" > "$P/mechanism"; echo "0 sleep 100" > "$P/work"
if echo "0 tasklet" > "$P/mechanism" 2>/dev/null; then
	ktap_fail "mechanism change to tasklet refused while the source sleeps" "accepted"
else
	ktap_ok "mechanism change to tasklet refused while the source sleeps"
fi
echo "0 none" > "$P/work"
ktap_finish
