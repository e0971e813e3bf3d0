#!/bin/sh
# Smoke test: the irqstorm module loads and unloads cleanly.
. /tests/lib/ktap.sh
mod="${IRQSTORM_MODULE:-/lib/modules/irqstorm.ko}"

ktap_plan 6

dmesg_problems() {
	dmesg | grep -cE '(WARNING:|BUG:|Oops|general protection fault|Call Trace:)'
}
before=$(dmesg_problems)

if [ -f "$mod" ]; then ktap_ok "module file present"; else ktap_fail "module file present" "$mod missing"; fi
ktap_check "insmod" insmod "$mod"
if grep -q '^irqstorm ' /proc/modules && [ -d /sys/module/irqstorm ]; then
	ktap_ok "loaded (/proc/modules, /sys/module/irqstorm)"
else
	ktap_fail "loaded (/proc/modules, /sys/module/irqstorm)" "not listed"
fi
ktap_check "rmmod" rmmod irqstorm
if grep -q '^irqstorm ' /proc/modules || [ -d /sys/module/irqstorm ]; then
	ktap_fail "unloaded" "still listed after rmmod"
else
	ktap_ok "unloaded"
fi
after=$(dmesg_problems)
if [ "$after" -eq "$before" ]; then
	ktap_ok "no WARN/BUG/Oops in dmesg"
else
	dmesg | tail -n 40 | sed 's/^/# /'
	ktap_fail "no WARN/BUG/Oops in dmesg" "$((after - before)) new problem line(s)"
fi
ktap_finish
