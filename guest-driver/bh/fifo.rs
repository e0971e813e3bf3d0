// SPDX-License-Identifier: GPL-2.0

//! The per-mechanism queue of events waiting for their bottom half.

use crate::{kwrap::clock::Stamp, stats::Origin};
use kernel::prelude::*;

/// An event waiting for its bottom half.
#[derive(Clone, Copy)]
pub(crate) struct Item {
    pub(crate) seq: u64,
    pub(crate) count: u32,
    pub(crate) source: u16,
    pub(crate) hard_ns: u64,
    /// Guest TSC next to `hard_ns` (0 = no TSC).
    pub(crate) hard_tsc: u64,
    /// Guest TSC when the drain read this record (0 = no TSC): the ack's `hardirq_tsc`,
    /// where one-way raise -> hard IRQ ends (spec §6.4).
    pub(crate) found_tsc: u64,
    /// CPU the hard IRQ (or the local hrtimer) ran on.
    pub(crate) hard_cpu: u16,
    /// Ack flags known before the bottom half runs (`ACK_F_PAST_BUDGET`, `ACK_F_FIRST` for
    /// the hardirq mechanism); the bottom half adds `ACK_F_FIRST` (spec §6.4).
    pub(crate) flags: u8,
    pub(crate) origin: Origin,
    /// Set by a delay mechanism's run on its first record: the delay asked for (us) and when
    /// it was armed (ns; 0 = none), for the ack (spec §6.4).
    pub(crate) delay_us: u32,
    pub(crate) armed_ns: u64,
}

impl Item {
    /// An item stamped `t` on `cpu` with `flags`; `seq`, `count` and `source` still 0.
    pub(crate) const fn stamped(t: Stamp, cpu: u16, flags: u8, origin: Origin) -> Self {
        Self {
            seq: 0,
            count: 0,
            source: 0,
            hard_ns: t.ns,
            hard_tsc: t.tsc,
            found_tsc: t.tsc,
            hard_cpu: cpu,
            flags,
            origin,
            delay_us: 0,
            armed_ns: 0,
        }
    }
}

const FIFO_CAP: usize = 1024;

/// Fixed-capacity ring of pending items, one per mechanism.
pub(crate) struct Fifo {
    buf: KVec<Item>,
    head: usize,
    len: usize,
}

impl Fifo {
    pub(crate) fn new() -> Result<Self> {
        let mut buf = KVec::with_capacity(FIFO_CAP, GFP_KERNEL)?;
        for _ in 0..FIFO_CAP {
            buf.push(Item::stamped(Stamp::default(), 0, 0, Origin::Device), GFP_KERNEL)?;
        }
        Ok(Self { buf, head: 0, len: 0 })
    }
    pub(crate) fn push(&mut self, it: Item) -> bool {
        if self.len == FIFO_CAP {
            return false;
        }
        let i = (self.head + self.len) % FIFO_CAP;
        self.buf[i] = it;
        self.len += 1;
        true
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
    /// The oldest item, left in place.
    pub(crate) fn front(&self) -> Option<&Item> {
        (self.len > 0).then(|| &self.buf[self.head])
    }
    pub(crate) fn pop(&mut self) -> Option<Item> {
        if self.len == 0 {
            return None;
        }
        let it = self.buf[self.head];
        self.head = (self.head + 1) % FIFO_CAP;
        self.len -= 1;
        Some(it)
    }
}

#[kernel::prelude::kunit_tests(irqstorm_fifo)]
mod tests {
    use super::*;

    fn item(seq: u64) -> Item {
        Item { seq, count: 1, ..Item::stamped(Stamp::default(), 0, 0, Origin::Device) }
    }

    #[test]
    fn fifo_keeps_order_across_the_wrap() -> Result {
        let mut f = Fifo::new()?;
        assert!(f.is_empty());
        for round in 0..3u64 {
            for i in 0..700 {
                assert!(f.push(item(round * 1000 + i)));
            }
            for i in 0..700 {
                assert_eq!(f.pop().map(|it| it.seq), Some(round * 1000 + i));
            }
        }
        assert!(f.pop().is_none());
        Ok(())
    }

    #[test]
    fn fifo_refuses_when_full() -> Result {
        let mut f = Fifo::new()?;
        for i in 0..FIFO_CAP as u64 {
            assert!(f.push(item(i)));
        }
        assert_eq!(f.len(), FIFO_CAP);
        assert!(!f.push(item(9999)));
        assert_eq!(f.pop().map(|it| it.seq), Some(0));
        assert!(f.push(item(9999)));
        Ok(())
    }
}
