// SPDX-License-Identifier: GPL-2.0

//! The events log (debugfs `events`, `events_enable`): the stamps of the last
//! [`EVENT_LOG_CAP`] device events, for joining with the kernel's trace (tests/guest/50-ftrace.sh,
//! `cargo xtask run --trace`). Off by default: a run that does not enable it pays one relaxed
//! atomic load per event. The ring is allocated on the first enable (process context) and
//! written under an IRQ-safe spinlock from every bottom half and the hard IRQ handler.

use crate::{bh::fifo::Item, mech::Mech, stats::Origin};
use core::fmt;
use kernel::{
    new_spinlock_irq,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        SpinLockIrq,
    },
};

/// Events the log keeps (the oldest are overwritten).
pub(crate) const EVENT_LOG_CAP: usize = 32768;

/// One device event's stamps (TSC ticks; 0 = no TSC).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Event {
    pub(crate) seq: u64,
    pub(crate) hardirq_tsc: u64,
    /// The ack's `bh_start_tsc` (for an `ACK_F_FIRST` record: the woken context's own stamp).
    pub(crate) bh_start_tsc: u64,
    pub(crate) bh_end_tsc: u64,
    /// TSC when processing of this record began (after the bottom half popped it): the
    /// bottom-half start as it was defined before spec §6.4 `ACK_F_FIRST`, kept for comparison.
    pub(crate) record_tsc: u64,
    pub(crate) hard_cpu: u16,
    pub(crate) bh_cpu: u16,
    pub(crate) mechanism: u8,
    pub(crate) flags: u8,
}

impl Event {
    /// Column names of [`Event`]'s `Display` line.
    pub(crate) const HEADER: &'static str =
        "seq mechanism hard_cpu bh_cpu hardirq_tsc bh_start_tsc bh_end_tsc record_tsc flags";
}

impl Event {
    /// Writes the event as one line of [`Event::HEADER`]'s columns (no newline).
    pub(crate) fn write_line(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let name = Mech::from_u32(u32::from(self.mechanism)).map_or("?", Mech::name);
        write!(
            f,
            "{} {} {} {} {} {} {} {} {}",
            self.seq,
            name,
            self.hard_cpu,
            self.bh_cpu,
            self.hardirq_tsc,
            self.bh_start_tsc,
            self.bh_end_tsc,
            self.record_tsc,
            self.flags
        )
    }
}

/// Fixed-capacity ring of events, oldest overwritten.
pub(crate) struct Ring {
    buf: KVVec<Event>,
    next: usize,
    len: usize,
    overwritten: u64,
}

impl Ring {
    pub(crate) fn new(cap: usize) -> Result<Self> {
        if cap == 0 {
            return Err(EINVAL);
        }
        let mut buf = KVVec::with_capacity(cap, GFP_KERNEL)?;
        for _ in 0..cap {
            buf.push(Event::default(), GFP_KERNEL)?;
        }
        Ok(Self { buf, next: 0, len: 0, overwritten: 0 })
    }

    pub(crate) fn push(&mut self, e: Event) {
        let cap = self.buf.len();
        self.buf[self.next] = e;
        self.next = (self.next + 1) % cap;
        if self.len < cap {
            self.len += 1;
        } else {
            self.overwritten += 1;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
        self.overwritten = 0;
    }

    /// The events, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Event> {
        let cap = self.buf.len();
        let first = (self.next + cap - self.len) % cap;
        (0..self.len).map(move |i| &self.buf[(first + i) % cap])
    }

    pub(crate) fn overwritten(&self) -> u64 {
        self.overwritten
    }
}

/// The log of one device.
#[pin_data]
pub(crate) struct EventLog {
    enabled: Atomic<bool>,
    #[pin]
    ring: SpinLockIrq<Option<Ring>>,
}

impl EventLog {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            enabled: Atomic::new(false),
            ring <- new_spinlock_irq!(None, "irqstorm_event_log"),
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// Turns logging on (allocating the ring the first time) or off. Process context.
    pub(crate) fn set_enabled(&self, on: bool) -> Result {
        if on && self.ring.lock().is_none() {
            let ring = Ring::new(EVENT_LOG_CAP)?;
            let mut g = self.ring.lock();
            if g.is_none() {
                *g = Some(ring);
            }
        }
        self.enabled.store(on, Relaxed);
        Ok(())
    }

    pub(crate) fn clear(&self) {
        let mut g = self.ring.lock();
        if let Some(r) = Option::as_mut(&mut *g) {
            r.clear();
        }
    }

    /// Logs a device event (one call from `bh::account`); the bottom-half CPU is this one.
    pub(crate) fn log(&self, it: &Item, m: Mech, bh_start_tsc: u64, bh_end_tsc: u64, record_tsc: u64, bh_cpu: u16) {
        if !self.enabled() || it.origin != Origin::Device {
            return;
        }
        let e = Event {
            seq: it.seq,
            hardirq_tsc: it.hard_tsc,
            bh_start_tsc,
            bh_end_tsc,
            record_tsc,
            hard_cpu: it.hard_cpu,
            bh_cpu,
            mechanism: m as u8,
            flags: it.flags,
        };
        let mut g = self.ring.lock();
        if let Some(r) = Option::as_mut(&mut *g) {
            r.push(e);
        }
    }

    /// `events`: a header, then one line per event, oldest first.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Copy under the lock, format outside it (interrupts stay off only for the copy).
        let (events, overwritten) = {
            let g = self.ring.lock();
            let Some(r) = g.as_ref() else {
                drop(g);
                writeln!(f, "# enabled {} events 0 overwritten 0", u8::from(self.enabled()))?;
                return writeln!(f, "# {}", Event::HEADER);
            };
            let mut v = KVVec::new();
            v.reserve(r.len, GFP_ATOMIC).map_err(|_| fmt::Error)?;
            for e in r.iter() {
                v.push(*e, GFP_ATOMIC).map_err(|_| fmt::Error)?;
            }
            (v, r.overwritten())
        };
        writeln!(f, "# enabled {} events {} overwritten {}", u8::from(self.enabled()), events.len(), overwritten)?;
        writeln!(f, "# {}", Event::HEADER)?;
        for e in events.iter() {
            e.write_line(f)?;
            writeln!(f)?;
        }
        Ok(())
    }
}

#[kernel::prelude::kunit_tests(irqstorm_event_log)]
mod tests {
    use super::*;

    struct Line(KVec<u8>);

    impl fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.extend_from_slice(s.as_bytes(), GFP_KERNEL).map_err(|_| fmt::Error)
        }
    }

    fn ev(seq: u64) -> Event {
        Event { seq, ..Event::default() }
    }

    fn seqs(r: &Ring) -> KVec<u64> {
        let mut v = KVec::new();
        for e in r.iter() {
            v.push(e.seq, GFP_KERNEL).unwrap();
        }
        v
    }

    #[test]
    fn ring_keeps_the_newest_oldest_first() -> Result {
        let mut r = Ring::new(4)?;
        assert!(r.iter().next().is_none());
        for s in 1..=3 {
            r.push(ev(s));
        }
        assert_eq!(&seqs(&r)[..], &[1, 2, 3]);
        assert_eq!(r.overwritten(), 0);
        for s in 4..=10 {
            r.push(ev(s));
        }
        assert_eq!(&seqs(&r)[..], &[7, 8, 9, 10]);
        assert_eq!(r.overwritten(), 6);
        r.clear();
        assert!(r.iter().next().is_none());
        assert_eq!(r.overwritten(), 0);
        r.push(ev(11));
        assert_eq!(&seqs(&r)[..], &[11]);
        Ok(())
    }

    #[test]
    fn ring_refuses_zero_capacity() {
        assert!(Ring::new(0).is_err());
    }

    #[test]
    fn event_line_has_every_header_column() {
        let e = Event {
            seq: 5,
            hardirq_tsc: 100,
            bh_start_tsc: 200,
            bh_end_tsc: 300,
            record_tsc: 250,
            hard_cpu: 1,
            bh_cpu: 0,
            mechanism: Mech::Kthread as u8,
            flags: 1,
        };
        let mut line = Line(KVec::new());
        e.write_line(&mut line).unwrap();
        let s = core::str::from_utf8(&line.0).unwrap();
        assert_eq!(s, "5 kthread 1 0 100 200 300 250 1");
        assert_eq!(Event::HEADER.split(' ').count(), s.split(' ').count());
    }
}
