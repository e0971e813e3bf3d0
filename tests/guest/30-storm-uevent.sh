#!/bin/sh
# A storm above the detector's threshold emits a KOBJ_CHANGE uevent with the rate and runs the
# configured helper (call_usermodehelper); the end of the storm reports "calm". The uevent comes
# from the class device irqstormN (SUBSYSTEM=irqstorm, with the class's IRQSTORM_INDEX and
# IRQSTORM_STORM), where `udevadm monitor --subsystem-match=irqstorm` would see it.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
irqstorm_require_device

W=/tmp/irqstorm-uevent
mkdir -p $W
rm -f $W/uevent.log $W/helper.log
cat > $W/uevent.sh <<'EOS'
#!/bin/sh
[ -n "$IRQSTORM_STATE" ] && echo "$ACTION $IRQSTORM_STATE $IRQSTORM_RATE $IRQSTORM_THRESHOLD $SUBSYSTEM ${IRQSTORM_INDEX:--} ${IRQSTORM_STORM:--} $DEVPATH" >> /tmp/irqstorm-uevent/uevent.log
EOS
cat > $W/helper.sh <<'EOS'
#!/bin/sh
echo "$*" >> /tmp/irqstorm-uevent/helper.log
EOS
chmod +x $W/uevent.sh $W/helper.sh

ktap_plan 5
old_hp=$(cat /proc/sys/kernel/hotplug 2>/dev/null)
if echo $W/uevent.sh > /proc/sys/kernel/hotplug 2>/dev/null; then have_hp=1; else have_hp=0; fi
echo "all bh_wq" > $D/sources
echo 3000 > $D/storm_threshold
echo $W/helper.sh > $D/storm_helper
before=$(grep "^uevents " $D/counters | cut -d' ' -f2)
ktap_check "storm requested (source 0, 8000/s, 1.5 s)" sh -c "echo '0 8000 1 1500' > $D/storm"
sleep 3
after=$(grep "^uevents " $D/counters | cut -d' ' -f2)
grep "^storm " $D/stats | sed 's/^/# /'
if [ "$after" -ge $((before + 2)) ]; then ktap_ok "uevents emitted (storm + calm)"; else ktap_fail "uevents emitted (storm + calm)" "uevents $before -> $after"; fi
if [ $have_hp = 1 ]; then
	sed 's/^/# uevent: /' $W/uevent.log 2>/dev/null
	if grep -q "^change storm [0-9]* 3000" $W/uevent.log 2>/dev/null && awk '$2=="storm" && $3>=3000 {f=1} END {exit !f}' $W/uevent.log; then
		ktap_ok "KOBJ_CHANGE uevent carries IRQSTORM_STATE=storm and IRQSTORM_RATE >= threshold"
	else
		ktap_fail "KOBJ_CHANGE uevent carries IRQSTORM_STATE=storm and IRQSTORM_RATE >= threshold" "not seen"
	fi
	# From the class device: its subsystem, its index (the class's `index` file) and the
	# class's own storm variable agreeing with IRQSTORM_STATE, for storm and calm.
	n=$(cat "$C/index" 2>/dev/null)
	if awk -v n="$n" '$5 == "irqstorm" && $6 == n && $7 == $2 && $8 ~ ("/irqstorm/irqstorm" n "$") { s[$2] = 1 } END { exit !(s["storm"] && s["calm"]) }' $W/uevent.log 2>/dev/null; then
		ktap_ok "storm and calm uevents come from the class device irqstorm$n (SUBSYSTEM=irqstorm, IRQSTORM_INDEX, IRQSTORM_STORM)"
	else
		ktap_fail "storm and calm uevents come from the class device irqstorm$n (SUBSYSTEM=irqstorm, IRQSTORM_INDEX, IRQSTORM_STORM)" "not seen"
	fi
else
	ktap_skip "KOBJ_CHANGE uevent carries IRQSTORM_STATE=storm and IRQSTORM_RATE >= threshold" "no /proc/sys/kernel/hotplug"
	ktap_skip "storm and calm uevents come from the class device" "no /proc/sys/kernel/hotplug"
fi
sed 's/^/# helper: /' $W/helper.log 2>/dev/null
if grep -q "^storm [0-9]" $W/helper.log 2>/dev/null && grep -q "^calm " $W/helper.log 2>/dev/null; then
	ktap_ok "helper ran for storm and calm"
else
	ktap_fail "helper ran for storm and calm" "helper log: $(cat $W/helper.log 2>/dev/null | tr '\n' ';')"
fi
echo "$old_hp" > /proc/sys/kernel/hotplug 2>/dev/null
echo "" > $D/storm_helper 2>/dev/null
echo 5000 > $D/storm_threshold
echo "all threaded" > $D/sources
ktap_finish
