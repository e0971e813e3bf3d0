#!/bin/sh
# Measurement (always passes when the device is there): per mechanism, a 1 kHz device timer
# (N events) through that mechanism, then the local reference hrtimer cycling through all
# mechanisms; prints the hardirq -> bottom-half-start summary (ns) and the rtla-style
# histograms as KTAP diagnostics.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
N=${IRQSTORM_MEASURE_EVENTS:-500}
MECHS="hardirq threaded tasklet tasklet_hi bh_wq bh_wq_highpri wq_system wq_highpri wq_unbound wq_dedicated kthread completion timer_list hrtimer"
irqstorm_require_device
ktap_plan 2
echo all > $D/reset
echo "all work none" > $D/sources
for m in $MECHS; do
	echo "0 $m" > $D/sources
	echo "0 periodic 1000000 $N" > $D/timer 2>/dev/null || { sleep 1; echo "0 periodic 1000000 $N" > $D/timer; }
	i=0
	while [ $i -lt 100 ]; do
		got=$(grep "^$m " $D/stats | head -1 | awk '{print $2}')
		[ "$got" -ge "$N" ] 2>/dev/null && break
		sleep 0.2
		i=$((i + 1))
	done
done
echo "# device timer, $N events at 1 kHz per mechanism (latency = hardirq -> bh start, ns):"
sed -n '/^# device events/,/^# local/p' $D/stats | grep -v '^#' | sed 's/^/# /'
tot=$(grep "^records " $D/counters | cut -d' ' -f2)
if [ "$tot" -ge $((N * 14)) ]; then ktap_ok "device timer through all 14 mechanisms ($tot records)"; else ktap_fail "device timer through all 14 mechanisms" "$tot records"; fi
sed 's/^/# /' $D/hist
echo "start 250" > $D/local
sleep 4
echo stop > $D/local
echo "# local reference hrtimer (4 kHz, round robin):"
sed -n '/^# local reference/,$p' $D/stats | grep -v '^#' | sed 's/^/# /'
sed 's/^/# /' $D/hist_local
n=$(grep "^local_events " $D/counters | cut -d' ' -f2)
if [ "$n" -gt 0 ]; then ktap_ok "local reference source ($n events)"; else ktap_fail "local reference source" "no events"; fi
echo "all threaded" > $D/sources
ktap_finish
