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

# Sets P to the device; without it prints a KTAP skip and exits 4. Mounts
# debugfs if needed and loads the module if it is not loaded.
irqstorm_require_device() {
	P=$(irqstorm_find_dev)
	if [ -z "$P" ]; then
		ktap_plan 1
		ktap_skip "irqstorm device present" "no 1af4:1055 function (run with the device)"
		ktap_finish
	fi
	[ -d "$D" ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
	grep -q '^irqstorm ' /proc/modules || insmod "$mod"
}
