#!/bin/sh
# irqstorm hotplug soak: the guest side of `cargo xtask soak hotplug`.
#
# Booted as rdinit=/tests/lib/hotplug.sh with no irqstorm device: the host
# hot-adds it behind the PCIe root port `rp0` (QMP chardev-add + device_add)
# and removes it (device_del) under a storm, irqstorm_hp_cycles times.
# Settings: irqstorm_hp_rate=HZ (the storm, source 0, bursts of 1).
# Protocol (host -> guest lines on the serial console):
#   guest: IRQSTORM_HP_READY threads=T          driver loaded, no device; T = irqstorm threads
#   host:  added N MECH -> guest waits for the bound device, sets every source to MECH, starts the
#          storm and waits for records:
#          IRQSTORM_HP_BOUND N bdf=B irq=I records=R   or   IRQSTORM_SC_FAIL N WHY (ends the soak)
#   host:  removed N    -> guest waits until the driver has no device, then checks what is left:
#          IRQSTORM_HP_REMOVED N workqueues=W kthreads=K irq_lines=L threads=T debugfs=0|1
#          uevents=ACTIONS problems=P refcnt=R bound=none   (W, K: /sys/class/irqstorm/live)
#          (ACTIONS: the pci uevents of 1af4:1055 the helper saw this cycle, in SEQNUM order)
#   host:  done         -> guest powers off
. /tests/lib/console-init.sh "hotplug soak"

D=/sys/kernel/debug/irqstorm
DRV=/sys/bus/pci/drivers/irqstorm
rate=50000
for w in $(cat /proc/cmdline); do
	case "$w" in
	irqstorm_hp_rate=*) rate="${w#irqstorm_hp_rate=}" ;;
	esac
done

# The uevent helper: one line per uevent of the device (PCI id 1af4:1055). The kernel starts
# helpers without waiting for them, so they may finish out of order: SEQNUM restores it.
cat > /tmp/uevent.sh <<'EOS'
#!/bin/sh
[ "$PCI_ID" = "1AF4:1055" ] && echo "$SEQNUM $ACTION" >> /tmp/uevents.log
exit 0
EOS
chmod +x /tmp/uevent.sh
echo /tmp/uevent.sh > /proc/sys/kernel/hotplug || { echo "IRQSTORM_SC_FAIL 0 no /proc/sys/kernel/hotplug"; poweroff -f; }

# Kernel threads whose name says irqstorm (the driver's kthreads, IRQ threads).
threads() {
	n=0
	for c in /proc/[0-9]*/comm; do
		case "$(cat "$c" 2>/dev/null)" in
		*irqstorm*) n=$((n + 1)) ;;
		esac
	done
	echo $n
}
problems() { dmesg | grep -cE '(WARNING:|BUG:|Oops|general protection fault|Call Trace:|refcount_t)'; }
bound() { for d in "$DRV"/0000:*; do [ -e "$d" ] && { basename "$d"; return 0; }; done; return 1; }
counter() { grep "^$1 " $D/counters | cut -d' ' -f2; }

insmod /lib/modules/irqstorm.ko || { echo "IRQSTORM_SC_FAIL 0 insmod irqstorm.ko"; poweroff -f; }
base_threads=$(threads)
base_problems=$(problems)
echo "IRQSTORM_HP_READY threads=$base_threads"
while read -r cmd n mech; do
	case "$cmd" in
	added)
		i=0
		while ! bdf=$(bound) || [ ! -e $D/storm ]; do
			i=$((i + 1))
			[ $i -gt 600 ] && break
			sleep 0.05
		done
		if [ ! -e $D/storm ]; then
			echo "IRQSTORM_SC_FAIL $n no device bound within 30 s"
			continue
		fi
		echo 0 > $D/storm_threshold
		echo "all $mech" > $D/sources || { echo "IRQSTORM_SC_FAIL $n sources all $mech"; continue; }
		echo "0 $rate 1" > $D/storm || { echo "IRQSTORM_SC_FAIL $n storm 0 $rate 1"; continue; }
		i=0
		while [ "$(counter records)" -lt 100 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
		irq=$(awk '/irqstorm/ { sub(":", "", $1); print $1; exit }' /proc/interrupts)
		echo "IRQSTORM_HP_BOUND $n bdf=$bdf irq=$irq records=$(counter records)"
		;;
	removed)
		i=0
		while bound > /dev/null && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
		# The helper runs asynchronously: give the last uevents a moment.
		sleep 0.2
		ev=$(sort -n /tmp/uevents.log 2>/dev/null | cut -d' ' -f2 | tr '\n' ',')
		rm -f /tmp/uevents.log
		[ -e $D ] && dbg=1 || dbg=0
		# The module's own count of its workqueues and kthreads (nothing else shows workqueues).
		wqs=$(awk '$1 == "workqueues" { print $2 }' /sys/class/irqstorm/live)
		kts=$(awk '$1 == "kthreads" { print $2 }' /sys/class/irqstorm/live)
		echo "IRQSTORM_HP_REMOVED $n workqueues=$wqs kthreads=$kts irq_lines=$(grep -c irqstorm /proc/interrupts) threads=$(($(threads) - base_threads)) debugfs=$dbg uevents=${ev%,} problems=$(($(problems) - base_problems)) refcnt=$(cat /sys/module/irqstorm/refcnt) bound=$(bound || echo none)"
		;;
	done)
		break
		;;
	esac
done
echo "IRQSTORM_HP_DONE"
poweroff -f
