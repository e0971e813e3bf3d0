// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! How acks reach the device (spec §6.4.1) and when an ack counts as arrived.
//!
//! Kicked: the driver notifies every ack buffer and the vring worker wakes
//! for it, a second host wake-up per isolated event beside the generator's.
//! Polled: while the generator wakes again soon anyway, it drains the ackq
//! on each wake-up, and the device asks (EVENT_IDX `avail_event`) for a kick
//! only once half the ring waits, so a burst of acks never runs the driver
//! out of buffers. Going idle, the device returns to kicks.
//!
//! Polling delays the device's read of an ack, so raise->ack ends at the
//! guest's post instead: the ack's `bh_end_tsc` on the host TSC through the
//! time base, plus the guest's bh end -> post time. Without a usable time
//! base the device's read time is used (and `auto` does not poll).

use std::str::FromStr;

use irqstorm_protocol::stats::AckPathStats;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{Device, QueueOutcome};
use crate::protocol::AckRecord;

/// `auto` polls while the generator's next deadline is at most this far.
pub const ACK_POLL_WINDOW_NS: u64 = 2_000_000;

/// `--acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckPolicy {
    /// Poll while events are due soon and the TSC time base is calibrated.
    #[default]
    Auto,
    /// Always kicked (one vring-worker wake-up per ack buffer).
    Kick,
    /// Polled whenever the driver negotiated EVENT_IDX.
    Poll,
}

impl AckPolicy {
    pub fn name(self) -> &'static str {
        match self {
            AckPolicy::Auto => "auto",
            AckPolicy::Kick => "kick",
            AckPolicy::Poll => "poll",
        }
    }
}

impl FromStr for AckPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AckPolicy::Auto),
            "kick" => Ok(AckPolicy::Kick),
            "poll" => Ok(AckPolicy::Poll),
            _ => Err(format!("{s:?}: expected auto, kick or poll")),
        }
    }
}

/// The ack path's state and counters.
#[derive(Debug, Default)]
pub(super) struct AckPath {
    pub(super) policy: AckPolicy,
    polled: bool,
    c: AckPathStats,
}

impl AckPath {
    pub(super) fn stats(&self) -> AckPathStats {
        AckPathStats {
            policy: self.policy.name().into(),
            mode: if self.polled { "poll" } else { "kick" }.into(),
            ..self.c.clone()
        }
    }

    /// Back to kicks (device reset): the next driver sets the ring up anew.
    pub(super) fn reset(&mut self) {
        self.polled = false;
    }

    pub(super) fn reset_epoch(&mut self) {
        self.c = AckPathStats::default();
    }
}

/// Publishes `avail_event` = `next_avail + size / 2`: the driver kicks once
/// half the ring waits (EVENT_IDX, spec §2.7.10 of virtio 1.2).
fn ask_kick_at_half_ring(q: &Queue, mem: &GuestMemoryMmap) -> bool {
    let at = q.next_avail().wrapping_add((q.size() / 2).max(1));
    let addr = q.used_ring().wrapping_add(4 + 8 * u64::from(q.size()));
    mem.write_obj(at.to_le(), GuestAddress(addr)).is_ok()
}

impl Device {
    /// The `--acks` policy.
    pub fn set_ack_policy(&mut self, p: AckPolicy) {
        self.acks.policy = p;
    }

    /// Whether acks are polled now.
    pub fn acks_polled(&self) -> bool {
        self.acks.polled
    }

    /// Whether acks should be polled, the generator's next deadline being
    /// `next` at `now`.
    pub fn want_ack_poll(&self, now: u64, next: Option<u64>) -> bool {
        if !self.has_event_idx() {
            return false;
        }
        match self.acks.policy {
            AckPolicy::Kick => false,
            AckPolicy::Poll => true,
            AckPolicy::Auto => {
                next.is_some_and(|t| t.saturating_sub(now) <= ACK_POLL_WINDOW_NS)
                    && self.tb.calibrated(crate::tsc::now())
            }
        }
    }

    /// Takes every ack buffer; in polled mode asks for a kick at half a ring,
    /// in kicked mode re-enables the kick and takes what arrived meanwhile.
    pub fn take_acks(&mut self, q: &mut Queue, mem: &GuestMemoryMmap) -> QueueOutcome {
        let mut out = QueueOutcome::default();
        for _ in 0..=q.size() {
            if !self.acks.polled {
                // Without EVENT_IDX: no kicks while the device is reading anyway.
                let _ = q.disable_notification(mem);
            }
            let o = self.process_ackq(q, mem);
            out.used += o.used;
            out.signal |= o.signal;
            if self.acks.polled {
                self.acks.c.polled_buffers += o.used as u64;
                if !ask_kick_at_half_ring(q, mem) {
                    self.c.queue_errors += 1;
                }
                break;
            }
            self.acks.c.kicked_buffers += o.used as u64;
            if !q.enable_notification(mem).unwrap_or(false) {
                break;
            }
        }
        out
    }

    /// Switches the ack path to polled (`true`) or kicked, and takes what
    /// waits on the ackq.
    pub fn set_acks_polled(
        &mut self,
        polled: bool,
        q: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> QueueOutcome {
        if polled != self.acks.polled {
            self.acks.polled = polled;
            if polled {
                self.acks.c.to_poll += 1;
            } else {
                self.acks.c.to_kick += 1;
            }
        }
        self.take_acks(q, mem)
    }

    /// Host time at which ack `a` of a record raised at host `raise_ns` /
    /// TSC `raise_tsc` counts as arrived: the guest's post on the host clock
    /// when the time base places it, else `read_ns` (the device's read).
    pub(super) fn ack_time(
        &mut self,
        a: &AckRecord,
        raise_ns: u64,
        raise_tsc: u64,
        read_ns: u64,
        now_tsc: u64,
    ) -> u64 {
        let post = (a.bh_end_tsc != 0 && a.bh_end_ns != 0 && a.post_ns >= a.bh_end_ns)
            .then(|| {
                self.tb
                    .host_ns_after(raise_tsc, a.bh_end_tsc, now_tsc, self.tsc_hz)
            })
            .flatten()
            .map(|to_bh_end| {
                raise_ns
                    .saturating_add(to_bh_end)
                    .saturating_add(a.post_ns - a.bh_end_ns)
            })
            // An ack is never posted after the device read it.
            .filter(|t| *t <= read_ns);
        match post {
            Some(t) => {
                self.acks.c.time_guest_post += 1;
                t
            }
            None => {
                self.acks.c.time_device_read += 1;
                read_ns
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

    fn avail_event(vq: &MockSplitQueue<GuestMemoryMmap>, m: &GuestMemoryMmap, size: u16) -> u16 {
        let addr = vq.used_addr().0 + 4 + 8 * u64::from(size);
        u16::from_le(m.read_obj(GuestAddress(addr)).unwrap())
    }

    /// Two ack buffers for the device's two storm records.
    fn ack_ring<'a>(
        m: &'a GuestMemoryMmap,
        recs: &[EventRecord],
    ) -> (MockSplitQueue<'a, GuestMemoryMmap>, Queue) {
        let vq = MockSplitQueue::new(m, 16);
        for (i, r) in recs.iter().enumerate() {
            let a = AckRecord {
                seq: r.seq,
                source: r.source,
                mechanism: 2,
                count: r.count,
                ..Default::default()
            };
            let addr = 0x8000 + i as u64 * 0x100;
            m.write_slice(&a.encode(), GuestAddress(addr)).unwrap();
            add_chain(&vq, i as u16, &[(addr, ACK_SIZE as u32, false)]);
        }
        let mut q: Queue = vq.create_queue().unwrap();
        q.set_event_idx(true);
        (vq, q)
    }

    #[test]
    fn polled_acks_ask_for_a_kick_only_at_half_a_ring() {
        let m = mem();
        let (mut d, recs) = storm_records(&m, 2);
        let (vq, mut q) = ack_ring(&m, &recs);
        let out = d.set_acks_polled(true, &mut q, &m);
        assert_eq!(out.used, 2);
        assert!(d.acks_polled());
        // next_avail is 2: the driver kicks once 8 more buffers wait.
        assert_eq!(avail_event(&vq, &m, 16), 10);
        let st = d.acks.stats();
        assert_eq!(
            (st.mode.as_str(), st.to_poll, st.polled_buffers),
            ("poll", 1, 2)
        );
        assert_eq!(d.outstanding.len(), 0, "both records acked");
    }

    #[test]
    fn back_to_kicks_asks_for_the_next_buffer() {
        let m = mem();
        let (mut d, recs) = storm_records(&m, 2);
        let (vq, mut q) = ack_ring(&m, &recs);
        d.set_acks_polled(true, &mut q, &m);
        let out = d.set_acks_polled(false, &mut q, &m);
        assert_eq!(out.used, 0);
        // Kicked: the driver's next buffer (index 2) is kicked.
        assert_eq!(avail_event(&vq, &m, 16), 2);
        let st = d.acks.stats();
        assert_eq!((st.mode.as_str(), st.to_poll, st.to_kick), ("kick", 1, 1));
    }

    #[test]
    fn auto_polls_only_with_event_idx_a_calibrated_time_base_and_a_near_deadline() {
        let mut d = device(0);
        let now = T0;
        let soon = Some(now + ACK_POLL_WINDOW_NS);
        // No EVENT_IDX: never polled, whatever the policy.
        d.set_ack_policy(AckPolicy::Poll);
        assert!(!d.want_ack_poll(now, soon));
        let mut d = device(1 << VIRTIO_RING_F_EVENT_IDX);
        d.set_ack_policy(AckPolicy::Poll);
        assert!(d.want_ack_poll(now, None));
        d.set_ack_policy(AckPolicy::Kick);
        assert!(!d.want_ack_poll(now, soon));
        // Auto without a calibration: kicked, so raise->ack is never a poll's delay.
        d.set_ack_policy(AckPolicy::Auto);
        assert!(!d.want_ack_poll(now, soon));
        d.tb.calibrate_for_test(0);
        assert!(d.want_ack_poll(now, soon));
        assert!(!d.want_ack_poll(now, Some(now + ACK_POLL_WINDOW_NS + 1)));
        assert!(!d.want_ack_poll(now, None));
    }

    #[test]
    fn raise_to_ack_ends_at_the_guest_post_when_the_time_base_places_it() {
        let mut d = device(0);
        d.tsc_hz = 1_000_000_000; // 1 tick = 1 ns
                                  // Guest TSC = host TSC + 5000.
        d.tb.calibrate_for_test(-5000);
        let a = AckRecord {
            bh_end_ns: 70_000,
            post_ns: 70_300,
            bh_end_tsc: 20_000 + 5000, // host TSC 20_000
            ..Default::default()
        };
        let now_tsc = crate::tsc::now().max(100_000);
        // Raised at host TSC 10_000 = host ns 1_000_000: bh end 10 us later,
        // posted 300 ns after that.
        let t = d.ack_time(&a, 1_000_000, 10_000, 2_000_000, now_tsc);
        assert_eq!(t, 1_010_300);
        // A post "after" the device's read is impossible: the read time is used.
        assert_eq!(
            d.ack_time(&a, 1_000_000, 10_000, 1_005_000, now_tsc),
            1_005_000
        );
        // No TSC stamp: the read time.
        let plain = AckRecord {
            post_ns: 5,
            ..Default::default()
        };
        assert_eq!(
            d.ack_time(&plain, 1_000_000, 10_000, 1_500_000, now_tsc),
            1_500_000
        );
        let st = d.acks.stats();
        assert_eq!((st.time_guest_post, st.time_device_read), (1, 2));
    }

    #[test]
    fn policies_parse_and_name_themselves() {
        for p in [AckPolicy::Auto, AckPolicy::Kick, AckPolicy::Poll] {
            assert_eq!(p.name().parse::<AckPolicy>(), Ok(p));
        }
        assert!("often"
            .parse::<AckPolicy>()
            .unwrap_err()
            .contains("auto, kick or poll"));
    }
}
