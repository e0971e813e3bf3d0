#!/bin/sh
# The device model of the driver: bus -> device -> driver -> class. The PCI function's driver
# link, the driver's device link, the class device /sys/class/irqstorm/irqstormN (its `device`
# link is the PCI function, its `subsystem` the class, the same directory as
# <pci device>/irqstorm/irqstormN), its attributes from the class's attribute group, its uevent
# variables (the `uevent` file and the ADD/REMOVE uevents at the helper on unbind/bind), the
# class attribute `live` (the driver's workqueues and kthreads), and
# the module parameters under /sys/module/irqstorm/parameters (read-only, load-time values).
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
irqstorm_require_device
BDF=$(basename "$P")
DRV=/sys/bus/pci/drivers/irqstorm
MP=/sys/module/irqstorm/parameters
real() { readlink -f "$1"; }
N=${C##*irqstorm}

ktap_plan 9
if [ "$(real "$P/driver")" = "$(real $DRV)" ] && [ "$(real "$DRV/$BDF")" = "$(real "$P")" ]; then
	ktap_ok "bus -> device -> driver: $BDF's driver is irqstorm and the driver links back"
else
	ktap_fail "bus -> device -> driver: $BDF's driver is irqstorm and the driver links back" "driver $(real "$P/driver"), $DRV/$BDF -> $(real "$DRV/$BDF")"
fi
if [ -n "$C" ] && [ "$(real "/sys/class/irqstorm/irqstorm$N")" = "$(real "$C")" ] &&
	[ "$(real "$C/device")" = "$(real "$P")" ] && [ "$(real "$C/subsystem")" = "$(real /sys/class/irqstorm)" ]; then
	ktap_ok "class: /sys/class/irqstorm/irqstorm$N is $BDF's, its device link is the PCI function"
else
	ktap_fail "class: /sys/class/irqstorm/irqstorm$N is $BDF's, its device link is the PCI function" "class dev '$C', device $(real "$C/device"), subsystem $(real "$C/subsystem")"
fi

# Attributes of the class's group (no device_create_file left on the PCI function).
bad=""
for a in mechanism work counters index mechanism_mask storm; do [ -f "$C/$a" ] || bad="$bad $a"; done
for a in mechanism work counters; do [ -e "$P/$a" ] && bad="$bad pci:$a"; done
[ "$(cat "$C/index")" = "$N" ] || bad="$bad index=$(cat "$C/index")"
grep -q "^records " "$C/counters" || bad="$bad counters"
[ "$(cat "$C/storm")" = calm ] || bad="$bad storm=$(cat "$C/storm")"
if [ -z "$bad" ]; then ktap_ok "class attributes: mechanism work counters index mechanism_mask storm"; else ktap_fail "class attributes: mechanism work counters index mechanism_mask storm" "$bad"; fi
# threaded = 1, tasklet = 2 (spec 6.5): the mask follows the sources.
echo "all tasklet" > "$C/mechanism"
m1=$(cat "$C/mechanism_mask")
echo "0 threaded" > "$C/mechanism"
m2=$(cat "$C/mechanism_mask")
if [ "$m1" = 0x4 ] && [ "$m2" = 0x6 ]; then ktap_ok "mechanism_mask follows the sources (0x4, then 0x6)"; else ktap_fail "mechanism_mask follows the sources (0x4, then 0x6)" "$m1, $m2"; fi
if echo "0 nosuch" > "$C/mechanism" 2>/dev/null || echo x > "$C/index" 2>/dev/null; then
	ktap_fail "bad writes are refused (unknown mechanism, read-only index)" "accepted"
else
	ktap_ok "bad writes are refused (unknown mechanism, read-only index)"
fi
ue=$(cat "$C/uevent")
echo "$ue" | sed 's/^/# uevent: /'
case "$ue" in
*"IRQSTORM_INDEX=$N"*"IRQSTORM_MECHANISMS=0x6"*"IRQSTORM_STORM=calm"*) ktap_ok "uevent variables: IRQSTORM_INDEX, IRQSTORM_MECHANISMS, IRQSTORM_STORM" ;;
*) ktap_fail "uevent variables: IRQSTORM_INDEX, IRQSTORM_MECHANISMS, IRQSTORM_STORM" "not in the uevent file" ;;
esac

# REMOVE and ADD of the class device at the uevent helper, with the variables.
W=/tmp/irqstorm-model
mkdir -p $W
rm -f $W/uevent.log
cat > $W/uevent.sh <<'EOS'
#!/bin/sh
[ "$SUBSYSTEM" = irqstorm ] && echo "$SEQNUM $ACTION $DEVPATH $IRQSTORM_INDEX $IRQSTORM_MECHANISMS $IRQSTORM_STORM" >> /tmp/irqstorm-model/uevent.log
exit 0
EOS
chmod +x $W/uevent.sh
old_hp=$(cat /proc/sys/kernel/hotplug 2>/dev/null)
echo $W/uevent.sh > /proc/sys/kernel/hotplug
live() { awk -v k="$1" '$1 == k { print $2 }' /sys/class/irqstorm/live; }
live_bound="$(live workqueues) $(live kthreads)"
echo "$BDF" > $DRV/unbind
live_unbound="$(live workqueues) $(live kthreads)"
echo "$BDF" > $DRV/bind
i=0
while [ ! -e $D/sources ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
echo "$old_hp" > /proc/sys/kernel/hotplug
sort -n $W/uevent.log 2>/dev/null | sed 's/^/# helper: /'
if sort -n $W/uevent.log 2>/dev/null | awk -v n="$N" '
	$2 == "remove" && $3 ~ /\/irqstorm\/irqstorm/ && $4 == n && $5 ~ /^0x/ { r = NR }
	$2 == "add" && $3 ~ /\/irqstorm\/irqstorm/ && $4 == n && $5 ~ /^0x/ && $6 == "calm" && r { a = 1 }
	END { exit !a }'; then
	ktap_ok "unbind/bind: REMOVE then ADD of irqstorm$N at the helper, with its variables"
else
	ktap_fail "unbind/bind: REMOVE then ADD of irqstorm$N at the helper, with its variables" "not seen"
fi

# The class attribute `live`: the driver's own workqueues (3) and kthreads while bound, none after.
case "$live_bound/$live_unbound" in
"3 "[1-9]*"/0 0") ktap_ok "/sys/class/irqstorm/live: workqueues and kthreads while bound ($live_bound), 0 0 unbound" ;;
*) ktap_fail "/sys/class/irqstorm/live: workqueues and kthreads while bound ($live_bound), 0 0 unbound" "bound '$live_bound', unbound '$live_unbound'" ;;
esac

# Module parameters: visible, read-only, the load-time values.
bad=""
for p in default_mech event_idx inject_delay_us inject_delay_mech wq_cpu dispatch_delay_us work_items wq_max_active kthread_fifo; do
	[ -r "$MP/$p" ] || bad="$bad $p"
done
echo 9 > $MP/work_items 2>/dev/null && bad="$bad work_items-writable"
vals="$(cat $MP/default_mech) $(cat $MP/event_idx) $(cat $MP/wq_cpu) $(cat $MP/kthread_fifo)"
[ "$vals" = "1 Y -1 N" ] || bad="$bad defaults($vals)"
irqstorm_reload work_items=4 kthread_fifo=1
[ "$(cat $MP/work_items) $(cat $MP/kthread_fifo)" = "4 Y" ] || bad="$bad reload($(cat $MP/work_items) $(cat $MP/kthread_fifo))"
irqstorm_reload
if [ -z "$bad" ]; then ktap_ok "module parameters under $MP: 9, read-only, load-time values"; else ktap_fail "module parameters under $MP: 9, read-only, load-time values" "$bad"; fi
ktap_finish
