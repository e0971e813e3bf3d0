#!/bin/sh
# Fault injection (spec §7/§8): with IRQSTORM_F_FAULT_INJECT negotiated the host injects bogus
# used-ring ids, bad lengths, bad sources, zero counts and sequence gaps while a storm runs.
# The driver must count and skip them and keep working. The host side arms the faults
# (back end `fault` command) and compares faults_injected with the guest's bad_total printed
# here. Skips unless the device offers fault injection.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
WAIT=${IRQSTORM_FAULT_WAIT:-30}
irqstorm_require_device
f=$(grep "^features " $D/stats | cut -d' ' -f2)
if [ $(( f & 2 )) -eq 0 ]; then
	ktap_plan 1
	ktap_skip "fault injection" "IRQSTORM_F_FAULT_INJECT not offered (back end without --fault-injection)"
	ktap_finish
fi
problems() { dmesg | grep -cE '(WARNING:|BUG:|Oops|general protection fault|Call Trace:)'; }
before=$(problems)
ktap_plan 4
echo "all tasklet" > $D/sources
echo "IRQSTORM_FAULT_READY" > /dev/kmsg
echo "# IRQSTORM_FAULT_READY: host may inject now"
# Keep events flowing so record-carried faults find records.
# Wait until at least IRQSTORM_EXPECT_FAULTS faults were seen and the count has been stable
# for 3 s (the host may inject several kinds one after the other).
i=0; bad=0; last=-1; stable=0
while [ $i -lt $WAIT ]; do
	echo "0 2000 1 0 400" > $D/storm 2>/dev/null
	sleep 1
	bad=$(grep "^bad_total " $D/counters | cut -d' ' -f2)
	if [ "$bad" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
	last=$bad
	[ "$bad" -ge "${IRQSTORM_EXPECT_FAULTS:-1}" ] && [ $stable -ge 3 ] && break
	i=$((i + 1))
done
sleep 1
grep -E "^(bad_|seq_gap)" $D/counters | sed 's/^/# /'
echo "# IRQSTORM_GUEST_BAD_TOTAL=$(grep '^bad_total ' $D/counters | cut -d' ' -f2)"
if [ "$bad" -ge "${IRQSTORM_EXPECT_FAULTS:-1}" ]; then ktap_ok "faults counted and skipped ($bad)"; else ktap_fail "faults counted and skipped" "bad_total=$bad"; fi
echo "stop all" > $D/storm 2>/dev/null
sleep 0.5
echo all > $D/reset
echo "1 periodic 1000000 20" > $D/timer
sleep 1
echo "stats 1" > $D/ctrl
rec=$(grep "^records " $D/ctrl | cut -d' ' -f2)
acked=$(grep "^acked " $D/ctrl | cut -d' ' -f2)
if [ "$rec" = 20 ] && [ "$acked" = 20 ]; then ktap_ok "driver still delivers exactly after faults"; else ktap_fail "driver still delivers exactly after faults" "records $rec acked $acked"; fi
ktap_check "unbind/bind after faults" sh -c "echo $(basename $P) > /sys/bus/pci/drivers/irqstorm/unbind && echo $(basename $P) > /sys/bus/pci/drivers/irqstorm/bind"
after=$(problems)
if [ "$after" -eq "$before" ]; then ktap_ok "no WARN/BUG/Oops in dmesg"; else ktap_fail "no WARN/BUG/Oops in dmesg" "$((after - before)) new"; fi
ktap_finish
