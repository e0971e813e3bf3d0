#!/bin/sh
# User space as the bottom half (issue 11 item 4): /dev/irqstormN and the guest program
# /bin/irqstorm-wait (guest-user/).
#   - the character device exists (misc, one per device) and INFO answers through it;
#   - bad arguments to every entry point get their errno (irqstorm-wait --selftest), counted;
#   - 200 events of a 2 ms timer through mechanism `user`, programmed by ioctl from user space,
#     are read (poll + read), stamped and acked: the driver forwards every ack, the device
#     counts every event acked, and the first record of each wake-up is marked;
#   - the same with a blocking read() at SCHED_FIFO 50 (ps shows the policy);
#   - a reader that closes without acking: its records are handed back cancelled
#     (user_unacked), so conservation holds;
#   - unbinding the device wakes a blocked reader, which sees the device go away.
. /tests/lib/ktap.sh
. /tests/lib/irqstorm.sh
irqstorm_require_device

W=/bin/irqstorm-wait
dev=/dev/irqstorm0
dstat() { echo "stats 0" > $D/ctrl && grep "^$1 " $D/ctrl | cut -d' ' -f2; }
ktap_plan 7

# 1. The node.
i=0
while [ ! -c $dev ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
if [ -c $dev ] && [ -d /sys/class/misc/irqstorm0 ]; then
	ktap_ok "$dev is a misc character device ($(cat /sys/class/misc/irqstorm0/dev))"
else
	ktap_fail "$dev is a misc character device" "$(ls -l /dev | grep irqstorm)"
fi

# 2. Bad arguments.
echo "all work none" > $D/sources
echo "all threaded" > $D/sources
r0=$(cnt user_refused)
b0=$(cnt user_bad_acks)
out=$($W --dev $dev --selftest 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
nok=$(echo "$out" | grep -c '^ok - selftest')
nbad=$(echo "$out" | grep -c '^not ok')
dr=$(($(cnt user_refused) - r0))
db=$(($(cnt user_bad_acks) - b0))
if [ $rc -eq 0 ] && [ "$nbad" = 0 ] && [ "$nok" -ge 12 ] && [ $dr -ge 9 ] && [ $db -ge 1 ]; then
	ktap_ok "bad arguments: $nok entry points answer with their errno (user_refused +$dr, user_bad_acks +$db)"
else
	ktap_fail "bad arguments answer with their errno" "rc $rc, $nok ok, $nbad not ok, user_refused +$dr, user_bad_acks +$db"
fi

# 3. poll + read, programmed from user space.
echo "stats all reset" > $D/ctrl
a0=$(cnt user_acks)
out=$($W --dev $dev --set-mech 0:user --periodic 0:2000000:200 --count 200 --duration-ms 30000 2>&1)
rc=$?
echo "# $out"
acked=$(($(cnt user_acks) - a0))
raised=$(dstat raised)
dacked=$(dstat acked)
first=$(echo "$out" | sed -n 's/.* first \([0-9]*\) .*/\1/p')
if [ $rc -eq 0 ] && [ "$acked" = 200 ] && [ "$raised" = 200 ] && [ "$dacked" = 200 ] && [ "${first:-0}" -ge 1 ]; then
	ktap_ok "poll + read: 200 events woke the user thread, 200 acked to the device ($first first of a wake-up)"
else
	ktap_fail "poll + read: 200 events woke the user thread and were acked" "rc $rc, user_acks +$acked, device raised $raised acked $dacked, first $first"
fi

# 4. Blocking read at SCHED_FIFO 50.
echo "stats all reset" > $D/ctrl
$W --dev $dev --wait read --fifo 50 --periodic 0:2000000:300 --count 300 --duration-ms 30000 > /tmp/w.out 2>&1 &
pid=$!
sleep 0.3
pol=$(sed 's/^.*) //' /proc/$pid/stat 2>/dev/null | awk '{ print $39, $38 }')
wait $pid
rc=$?
echo "# $(cat /tmp/w.out)"
if [ $rc -eq 0 ] && [ "$pol" = "1 50" ] && grep -q "records 300 .*policy FF 50" /tmp/w.out && [ "$(dstat acked)" = 300 ]; then
	ktap_ok "blocking read at SCHED_FIFO 50: 300 events acked (policy $pol)"
else
	ktap_fail "blocking read at SCHED_FIFO 50" "rc $rc, policy '$pol', device acked $(dstat acked)"
fi

# 5. A reader that takes records and closes without acking.
echo "stats all reset" > $D/ctrl
u0=$(cnt user_unacked)
c0=$(cnt cancelled)
echo "0 periodic 2000000 5" > $D/timer
sleep 0.5
dd if=$dev of=/dev/null bs=64 count=2 2>/dev/null
sleep 0.2
du=$(($(cnt user_unacked) - u0))
dc=$(($(cnt cancelled) - c0))
# Whatever dd did not take is still queued; a reader acks it.
$W --dev $dev --count $((5 - du)) --duration-ms 5000 > /dev/null 2>&1
if [ "$du" = 2 ] && [ "$dc" = 2 ] && [ "$(dstat acked)" = 5 ] && [ "$(dstat raised)" = 5 ]; then
	ktap_ok "records a reader closed without acking are handed back cancelled (user_unacked +2)"
else
	ktap_fail "records a reader closed without acking are handed back cancelled" "user_unacked +$du, cancelled +$dc, device raised $(dstat raised) acked $(dstat acked)"
fi

# 6. The device counters balance: every ack the driver posted is one the device took.
c=$(cnt acks_dropped)
if [ "${c:-1}" = 0 ]; then ktap_ok "no ack dropped"; else ktap_fail "no ack dropped" "acks_dropped $c"; fi

# 7. Unbinding wakes a blocked reader.
bdf=$(basename "$P")
$W --dev $dev --wait read --duration-ms 20000 > /tmp/w.out 2>&1 &
pid=$!
sleep 0.3
echo "$bdf" > /sys/bus/pci/drivers/irqstorm/unbind
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $pid 2>/dev/null; then
	kill $pid
	ktap_fail "unbind wakes a blocked reader" "still blocked after 5 s"
else
	wait $pid
	rc=$?
	if [ $rc -eq 0 ] && grep -q "went away" /tmp/w.out; then
		ktap_ok "unbind wakes a blocked reader, which sees the device go away"
	else
		ktap_fail "unbind wakes a blocked reader" "rc $rc: $(cat /tmp/w.out)"
	fi
fi
echo "$bdf" > /sys/bus/pci/drivers/irqstorm/bind
i=0
while [ ! -e $D/sources ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ktap_finish
