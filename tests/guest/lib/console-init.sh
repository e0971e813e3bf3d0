# The start of a guest script booted as rdinit= that the host drives over the serial console
# (scenario.sh, hotplug.sh): file systems, the console as stdin/stdout, no echo of what the
# host sends, kernel messages off the console. Source it with the script's name:
#   . /tests/lib/console-init.sh "scenario runner"
# shellcheck shell=sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
echo "irqstorm-init: start ($1)"
stty -echo 2>/dev/null
dmesg -n 1
