#!/bin/sh
# For every bottom-half mechanism: a device timer and a storm, run through that mechanism;
# the guest's counts must equal the device's STATS and conservation must be exact.
# `user` has the guest program /bin/irqstorm-wait as its reader (55-user tests it further).
# Needs the device (harness device mode); skips without it.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
MECHS="hardirq threaded tasklet tasklet_hi bh_wq bh_wq_highpri wq_system wq_highpri wq_unbound wq_dedicated kthread completion timer_list hrtimer wq_delayed kthread_msleep kthread_usleep wq_ordered wq_cpu_intensive user"
irqstorm_require_device

# dstat FIELD: device-side STATS (all sources) over controlq.
dstat() { grep "^$1 " $D/ctrl | cut -d' ' -f2; }
devstats() { echo "stats all" > $D/ctrl; }

NT=10     # periodic timer events on source 0
NS=200    # storm events on source 1
TOTAL=$((NT + NS))

ktap_plan 22
if [ -f $D/stats ]; then ktap_ok "driver bound, debugfs present"; else ktap_fail "driver bound, debugfs present" "$D/stats missing"; fi
# The driver's mechanism table (name, context, may sleep) against the host's, from which the
# README's teaching table is generated (protocol/src/mechanisms.rs -> /tests/lib/mechanisms.txt).
if [ ! -f /tests/lib/mechanisms.txt ]; then
	ktap_fail "mechanism table matches the host's" "/tests/lib/mechanisms.txt missing from the initramfs"
elif diff /tests/lib/mechanisms.txt $D/mechanisms > /tmp/mech.diff 2>&1; then
	ktap_ok "mechanism table matches the host's"
else
	sed 's/^/# /' /tmp/mech.diff
	ktap_fail "mechanism table matches the host's" "driver and protocol/src/mechanisms.rs differ"
fi

for m in $MECHS; do
	echo all > $D/reset
	echo "all work none" > $D/sources
	if ! echo "all $m" > $D/sources; then ktap_fail "mechanism $m" "cannot select"; continue; fi
	reader=""
	if [ "$m" = user ]; then
		/bin/irqstorm-wait --duration-ms 60000 > /tmp/reader.out 2>&1 &
		reader=$!
	fi
	echo "0 periodic 2000000 $NT" > $D/timer || { ktap_fail "mechanism $m" "timer program refused"; continue; }
	echo "1 2000 1 0 $NS" > $D/storm || { ktap_fail "mechanism $m" "storm program refused"; continue; }
	i=0
	while [ $i -lt 150 ]; do
		devstats
		r=$(dstat raised); a=$(dstat acked); rec=$(dstat records); pend=$(dstat pending)
		[ "$r" -ge $TOTAL ] && [ "$pend" -eq 0 ] && [ "$a" -eq "$rec" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	if [ -n "$reader" ]; then
		kill "$reader"
		wait "$reader"
		echo "# $(cat /tmp/reader.out)"
	fi
	devstats
	r=$(dstat raised); rec=$(dstat records); co=$(dstat coalesced); pend=$(dstat pending); a=$(dstat acked)
	grec=$(cnt records); gra=$(cnt raises); gack=$(cnt acks_posted); bad=$(cnt bad_total)
	mev=$(grep "^$m " $D/stats | head -1 | awk '{print $2}')
	line=$(grep "^$m " $D/stats | head -1)
	echo "# $m: device raised=$r records=$rec coalesced=$co pending=$pend acked=$a; guest records=$grec raises=$gra acks=$gack bad=$bad"
	echo "# $line"
	why=""
	[ "$r" -eq $TOTAL ] || why="$why raised($r)!=$TOTAL"
	[ "$r" -eq $((rec + co + pend)) ] || why="$why raised!=records+coalesced+pending"
	[ "$grec" -eq "$rec" ] || why="$why guest-records!=device-records"
	[ "$gra" -eq $((rec + co)) ] || why="$why guest-raises!=records+coalesced"
	[ "$gack" -eq "$a" ] || why="$why guest-acks!=device-acked"
	[ "$a" -eq "$rec" ] || why="$why acked!=records"
	[ "$mev" = "$grec" ] || why="$why $m-events($mev)!=records"
	[ "$bad" -eq 0 ] || why="$why bad=$bad"
	if [ -z "$why" ]; then ktap_ok "mechanism $m: $rec records, conservation exact"; else ktap_fail "mechanism $m" "$why"; fi
done
echo "all threaded" > $D/sources
ktap_finish
