# Shared prelude of the guest tests that need the irqstorm device.
# Source after ktap.sh, then call irqstorm_require_device.
# shellcheck shell=sh
mod="${IRQSTORM_MODULE:-/lib/modules/irqstorm.ko}"
D=/sys/kernel/debug/irqstorm

# The sysfs path of the irqstorm PCI function (1af4:1055), empty if absent.
irqstorm_find_dev() {
	for p in /sys/bus/pci/devices/*; do
		[ "$(cat "$p/vendor")" = 0x1af4 ] && [ "$(cat "$p/device")" = 0x1055 ] && { echo "$p"; return; }
	done
}

# The device's class directory (/sys/class/irqstorm/irqstormN, as <P>/irqstorm/irqstormN),
# empty if the driver is not bound.
irqstorm_class_dev() {
	for c in "$P"/irqstorm/irqstorm*; do [ -d "$c" ] && { echo "$c"; return; }; done
}

# Sets P to the device and C to its class directory; without the device prints a KTAP skip and
# exits 4. Mounts debugfs if needed and loads the module if it is not loaded.
irqstorm_require_device() {
	P=$(irqstorm_find_dev)
	if [ -z "$P" ]; then
		ktap_plan 1
		ktap_skip "irqstorm device present" "no 1af4:1055 function (run with the device)"
		ktap_finish
	fi
	[ -d "$D" ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
	grep -q '^irqstorm ' /proc/modules || insmod "$mod"
	i=0
	while [ -z "$(irqstorm_class_dev)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	C=$(irqstorm_class_dev)
}

# A driver counter (debugfs counters).
cnt() { grep "^$1 " $D/counters | cut -d' ' -f2; }

# Waits until the driver has posted $1 acks (at most ${2:-100} tenths of a second).
wait_acks() {
	i=0
	while [ "$(cnt acks_posted)" -lt "$1" ] && [ $i -lt "${2:-100}" ]; do sleep 0.1; i=$((i + 1)); done
}

# Reloads the module with parameters "$@" and waits for its debugfs.
irqstorm_reload() {
	rmmod irqstorm && insmod "$mod" "$@"
	i=0
	while [ ! -e $D/sources ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
}

# The guest TSC frequency in kHz (dmesg's refined calibration, else the detected one, else
# /proc/cpuinfo), empty if unknown.
irqstorm_tsc_khz() {
	k=$(dmesg | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -n 1)
	[ -n "$k" ] || k=$(dmesg | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz.*/\1/p' | tail -n 1)
	[ -n "$k" ] || k=$(awk -F': ' '/^cpu MHz/ { print $2; exit }' /proc/cpuinfo)
	[ -n "$k" ] && echo "$k" | awk '{ printf "%d\n", $1 * 1000 }'
}
