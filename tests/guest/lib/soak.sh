#!/bin/sh
# irqstorm reconnect soak: the guest side of `cargo xtask soak reconnect`.
#
# Booted as rdinit=/tests/lib/soak.sh. Loads the driver, storms itself with
# irqstorm_soak_events=N events (source 0, irqstorm_soak_rate=HZ, bursts of
# 4), waits until the driver has received them all, prints one line
#   IRQSTORM_SOAK_GOT raises R records N seq_gap G bad B
# and waits: the host then kills QEMU (the "kill" of a kill/reconnect cycle).
# On a failure it prints IRQSTORM_SOAK_GOT error WHAT.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
dmesg -n 1
D=/sys/kernel/debug/irqstorm
want=2000
rate=20000
for w in $(cat /proc/cmdline); do
	case "$w" in
	irqstorm_soak_events=*) want="${w#irqstorm_soak_events=}" ;;
	irqstorm_soak_rate=*) rate="${w#irqstorm_soak_rate=}" ;;
	esac
done
hold() {
	while :; do sleep 1000; done
}
fail() {
	echo "IRQSTORM_SOAK_GOT error $*"
	hold
}
counter() { grep "^$1 " $D/counters | cut -d' ' -f2; }

insmod /lib/modules/irqstorm.ko || fail "insmod irqstorm.ko"
i=0
while [ ! -e $D/storm ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -e $D/storm ] || fail "no $D (device not bound?)"
echo "0 $rate 4 0 $want" > $D/storm || fail "storm 0 $rate 4 0 $want"
i=0
while [ "$(counter raises)" -lt "$want" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
bad=0
for c in bad_id bad_len bad_source bad_count; do bad=$((bad + $(counter $c))); done
echo "IRQSTORM_SOAK_GOT raises $(counter raises) records $(counter records) seq_gap $(counter seq_gap) bad $bad"
hold
