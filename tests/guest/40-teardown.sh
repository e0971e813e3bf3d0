#!/bin/sh
# Teardown under load: 20 unbind/rebind and 20 rmmod/insmod cycles during a 100k events/s storm
# (two sources), cycling the bottom half each time; no oops or WARN in dmesg, and the device works
# afterwards. `cargo xtask soak rebind` runs it with IRQSTORM_TEARDOWN_CYCLES=1000; the rate is
# IRQSTORM_TEARDOWN_RATE_HZ. Every 50 cycles it prints a "# progress:" line.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
DRV=/sys/bus/pci/drivers/irqstorm
CYCLES=${IRQSTORM_TEARDOWN_CYCLES:-20}
RATE=${IRQSTORM_TEARDOWN_RATE_HZ:-100000}
HALF=$((RATE / 2))
MECHS="hardirq threaded tasklet tasklet_hi bh_wq bh_wq_highpri wq_system wq_highpri wq_unbound wq_dedicated kthread completion timer_list hrtimer wq_delayed kthread_msleep kthread_usleep wq_ordered wq_cpu_intensive user"
irqstorm_require_device
BDF=$(basename "$P")
problems() { dmesg | grep -cE '(WARNING:|BUG:|Oops|general protection fault|Call Trace:|refcount_t)'; }
before=$(problems)

# nth MECH (1-based, wraps)
nth() { echo $MECHS | awk -v n="$1" '{print $(((n - 1) % NF) + 1)}'; }
load() {
	# Storm at $RATE events/s on two sources (no limit: it runs until the device is reset),
	# plus the local reference source.
	echo "all $1" > $D/sources 2>/dev/null
	echo "0 $HALF 1" > $D/storm 2>/dev/null
	echo "1 $HALF 1" > $D/storm 2>/dev/null
	echo "start 500" > $D/local 2>/dev/null
	sleep 0.2
	echo "stats all" > $D/ctrl 2>/dev/null
	echo "# load $1: device raised $(grep '^raised ' $D/ctrl | cut -d' ' -f2), guest records $(grep '^records ' $D/counters | cut -d' ' -f2)"
}
progress() { [ $(($2 % 50)) -eq 0 ] && echo "# progress: $1 cycle $2/$CYCLES, dmesg problems $(($(problems) - before))"; :; }

ktap_plan 5
ok=0; i=1
while [ $i -le $CYCLES ]; do
	load "$(nth $i)"
	echo "$BDF" > $DRV/unbind || break
	echo "$BDF" > $DRV/bind || break
	[ -f $D/stats ] || break
	ok=$i
	progress unbind/bind $i
	i=$((i + 1))
done
if [ $ok -eq $CYCLES ]; then ktap_ok "$CYCLES unbind/bind cycles under a $RATE/s storm"; else ktap_fail "$CYCLES unbind/bind cycles under a $RATE/s storm" "stopped after $ok"; fi

ok=0; i=1
while [ $i -le $CYCLES ]; do
	load "$(nth $((i + 7)))"
	rmmod irqstorm || break
	insmod "$mod" || break
	[ -f $D/stats ] || break
	ok=$i
	progress rmmod/insmod $i
	i=$((i + 1))
done
if [ $ok -eq $CYCLES ]; then ktap_ok "$CYCLES rmmod/insmod cycles under a $RATE/s storm"; else ktap_fail "$CYCLES rmmod/insmod cycles under a $RATE/s storm" "stopped after $ok"; fi

# Still functional: an exact periodic timer after all that. Only the guest's
# statistics are reset: the device's ledger of the whole run stays for the
# host's end-of-run conservation check, so the device count is a difference.
echo stats > $D/reset
echo "all tasklet" > $D/sources
dev_records() { echo "stats 0" > $D/ctrl && grep "^records " $D/ctrl | cut -d' ' -f2; }
r0=$(dev_records)
echo "0 periodic 1000000 20" > $D/timer
sleep 1
rec=$(($(dev_records) - r0))
grec=$(grep "^records " $D/counters | cut -d' ' -f2)
if [ "$rec" = 20 ] && [ "$grec" = 20 ]; then ktap_ok "device works after the cycles (20/20 timer events)"; else ktap_fail "device works after the cycles (20/20 timer events)" "device $rec guest $grec"; fi
ktap_check "rmmod at the end" rmmod irqstorm
after=$(problems)
if [ "$after" -eq "$before" ]; then
	ktap_ok "no WARN/BUG/Oops in dmesg"
else
	dmesg | grep -B2 -A20 -E '(WARNING:|BUG:|Oops)' | head -60 | sed 's/^/# /'
	ktap_fail "no WARN/BUG/Oops in dmesg" "$((after - before)) new problem line(s)"
fi
ktap_finish
