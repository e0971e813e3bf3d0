// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Telling a VM pause from a guest reset when the front end stops and
//! starts the device (docs/device-spec.md §5.5).
//!
//! QEMU 11.1 (vhost-user-test-device-pci, measured with its vhost_user_*
//! trace events) stops the vhost device the same way for a monitor `stop`,
//! a driver writing status 0 (rmmod, unbind) and a system reset:
//! SET_VRING_ENABLE 0 then GET_VRING_BASE on every ring. It starts it the
//! same way for `cont` and for a driver's DRIVER_OK: SET_FEATURES,
//! SET_MEM_TABLE, per ring SET_VRING_NUM/BASE/ADDR/KICK/CALL, then
//! SET_VRING_ENABLE 1 on every ring. No RESET_DEVICE is sent for a guest
//! reset. What differs is where the rings start again: after a pause QEMU
//! hands back the bases it read with GET_VRING_BASE and the guest's rings
//! are untouched (same addresses, used index where the device left it);
//! after a guest reset QEMU's virtio reset has zeroed its ring state, so the
//! bases are 0 and the driver's rebuilt rings have used index 0 (at new
//! addresses, as a rule).
//!
//! The rule: a start whose every ring continues exactly where the stop left
//! it (size, descriptor/avail/used addresses, next avail = the base read
//! back, next used = the guest's used index) with the same features is a
//! resume and keeps the device state; any other start is a guest reset.

use vhost_user_backend::{VringRwLock, VringT};
use virtio_queue::QueueT;

/// Where a ring is: the part the front end programs and the device moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingPos {
    /// Queue size.
    pub size: u16,
    /// Descriptor table (guest physical).
    pub desc: u64,
    /// Available ring.
    pub avail: u64,
    /// Used ring.
    pub used: u64,
    /// Next available entry the device reads (the vhost-user ring base).
    pub next_avail: u16,
    /// Next used entry the device writes.
    pub next_used: u16,
}

impl RingPos {
    /// Whether the front end has programmed this ring: its avail and used
    /// rings are distinct areas, so they cannot both be at address 0.
    pub fn programmed(&self) -> bool {
        self.avail != 0 || self.used != 0
    }
}

impl std::fmt::Display for RingPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "size {} desc {:#x} avail {:#x} used {:#x} next avail {} next used {}",
            self.size, self.desc, self.avail, self.used, self.next_avail, self.next_used
        )
    }
}

/// A ring as the back end sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingView {
    /// Its position.
    pub pos: RingPos,
    /// Started (kick and call fds given, no GET_VRING_BASE since).
    pub ready: bool,
    /// Enabled (SET_VRING_ENABLE 1).
    pub enabled: bool,
}

impl RingView {
    /// Reads a vring.
    pub fn of(v: &VringRwLock) -> Self {
        let st = v.get_ref();
        let q = st.get_queue();
        Self {
            pos: RingPos {
                size: q.size(),
                desc: q.desc_table(),
                avail: q.avail_ring(),
                used: q.used_ring(),
                next_avail: q.next_avail(),
                next_used: q.next_used(),
            },
            ready: q.ready(),
            enabled: st.is_enabled(),
        }
    }

    /// Whether the device may use the ring.
    pub fn running(&self) -> bool {
        self.ready && self.enabled
    }
}

/// What a start turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not every ring is back yet.
    Pending,
    /// The rings continue where they stopped: a pause ended.
    Resume,
    /// The rings start afresh: the guest reset the device (the reason).
    Reset(String),
}

/// A device its front end stopped and is starting again (from SET_FEATURES
/// until every ring is back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// The rings as the stop left them.
    before: Vec<RingPos>,
    /// Features negotiated before the stop.
    features_before: u64,
    /// Features of this start.
    features: u64,
}

impl Restart {
    /// At SET_FEATURES: a restart when the rings were programmed and none
    /// is running (the front end stopped them); `None` for the first start
    /// of a connection or a features change on running rings.
    pub fn begin(rings: &[RingView], features_before: u64, features: u64) -> Option<Self> {
        let programmed = rings.iter().any(|r| r.pos.programmed());
        let running = rings.iter().any(RingView::running);
        (programmed && !running).then(|| Self {
            before: rings.iter().map(|r| r.pos).collect(),
            features_before,
            features,
        })
    }

    /// Features of this start.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Another SET_FEATURES during the start: the stop's rings stay the
    /// reference.
    pub fn set_features(&mut self, features: u64) {
        self.features = features;
    }

    /// Judges the start by the rings now: a reset as soon as the features
    /// differ or a running ring does not continue; a resume once every ring
    /// programmed before runs again where it stopped.
    pub fn judge(&self, now: &[RingView]) -> Verdict {
        if self.features != self.features_before {
            return Verdict::Reset(format!(
                "features {:#x}, were {:#x}",
                self.features, self.features_before
            ));
        }
        if now.len() != self.before.len() {
            return Verdict::Reset(format!("{} rings, were {}", now.len(), self.before.len()));
        }
        let mut pending = false;
        for (i, (b, n)) in self.before.iter().zip(now).enumerate() {
            if n.running() {
                if n.pos != *b {
                    return Verdict::Reset(format!(
                        "ring {i} restarted at {}; stopped at {b}",
                        n.pos
                    ));
                }
            } else if b.programmed() {
                pending = true;
            }
        }
        if pending {
            Verdict::Pending
        } else {
            Verdict::Resume
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three rings of the QEMU trace (§5.5) at a stop after a pause.
    fn stopped() -> Vec<RingView> {
        [(4, 0xad2000, 3), (256, 0xadd000, 1207), (64, 0xae0000, 788)]
            .into_iter()
            .map(|(size, desc, idx)| RingView {
                pos: RingPos {
                    size,
                    desc,
                    avail: desc + 0x8000,
                    used: desc + 0x9000,
                    next_avail: idx,
                    next_used: idx,
                },
                ready: false,
                enabled: false,
            })
            .collect()
    }

    fn started(mut v: Vec<RingView>) -> Vec<RingView> {
        for r in &mut v {
            r.ready = true;
            r.enabled = true;
        }
        v
    }

    #[test]
    fn a_start_that_continues_every_ring_is_a_resume() {
        let r = Restart::begin(&stopped(), 0x1_6000_0001, 0x1_6000_0001).unwrap();
        let mut now = stopped();
        assert_eq!(r.judge(&now), Verdict::Pending);
        now[0].ready = true;
        now[0].enabled = true;
        now[1].ready = true;
        assert_eq!(r.judge(&now), Verdict::Pending, "ring 1 not enabled yet");
        assert_eq!(r.judge(&started(stopped())), Verdict::Resume);
    }

    #[test]
    fn rings_at_base_0_are_a_guest_reset_even_at_the_same_addresses() {
        let r = Restart::begin(&stopped(), 1, 1).unwrap();
        let mut now = stopped();
        now[0].pos.next_avail = 0;
        now[0].pos.next_used = 0;
        now[0].ready = true;
        now[0].enabled = true;
        // Decided as soon as one running ring does not continue.
        let Verdict::Reset(why) = r.judge(&now) else {
            panic!("not a reset")
        };
        assert_eq!(
            why,
            "ring 0 restarted at size 4 desc 0xad2000 avail 0xada000 used 0xadb000 next avail 0 \
             next used 0; stopped at size 4 desc 0xad2000 avail 0xada000 used 0xadb000 next avail 3 \
             next used 3"
        );
    }

    #[test]
    fn moved_rings_or_other_features_are_a_guest_reset() {
        let r = Restart::begin(&stopped(), 1, 1).unwrap();
        let mut now = started(stopped());
        now[2].pos.desc = 0xba4000;
        assert!(matches!(r.judge(&now), Verdict::Reset(_)));
        let mut now = started(stopped());
        now[1].pos.next_used = 1206;
        assert!(matches!(r.judge(&now), Verdict::Reset(_)));
        let r = Restart::begin(&stopped(), 1, 3).unwrap();
        assert_eq!(r.features(), 3);
        assert_eq!(
            r.judge(&started(stopped())),
            Verdict::Reset("features 0x3, were 0x1".into())
        );
    }

    #[test]
    fn first_start_and_running_rings_are_no_restart() {
        let fresh = vec![RingView::default(); 3];
        assert_eq!(Restart::begin(&fresh, 0, 1), None, "first start");
        assert_eq!(
            Restart::begin(&started(stopped()), 1, 1),
            None,
            "SET_FEATURES on running rings"
        );
        assert_eq!(Restart::begin(&[], 0, 1), None, "rings unknown");
    }

    #[test]
    fn a_ring_never_programmed_need_not_come_back() {
        let mut before = stopped();
        before[2] = RingView::default();
        let r = Restart::begin(&before, 1, 1).unwrap();
        let mut now = started(before.clone());
        now[2] = RingView::default();
        assert_eq!(r.judge(&now), Verdict::Resume);
    }
}
