// SPDX-License-Identifier: GPL-2.0

//! Split virtqueues (virtio 1.x §2.7) in `kernel::dma` coherent memory.
//!
//! Every descriptor chain here is pre-bound to a fixed buffer (descriptor `i` <-> buffer `i`),
//! so "adding a buffer" is publishing a head index in the available ring. The used ring is
//! never trusted: ids out of range or not outstanding are counted and skipped.

use crate::virtio_pci::Transport;
use kernel::{
    device::{Bound, Device},
    dma::Coherent,
    io::{io_read, io_write},
    prelude::*,
    sync::barrier::{smp_mb, Full, Read, Write},
};

pub(crate) const DESC_F_NEXT: u16 = 1;
pub(crate) const DESC_F_WRITE: u16 = 2;
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const USED_F_NO_NOTIFY: u16 = 1;

/// A used-ring entry that passed the id checks.
pub(crate) struct Used {
    pub(crate) id: u16,
    pub(crate) len: u32,
}

/// Result of popping the used ring.
pub(crate) enum Pop {
    Empty,
    Ok(Used),
    /// An entry was consumed but its id was out of range or not outstanding.
    BadId,
}

/// One split virtqueue. Callers serialise access (it is kept under a lock).
pub(crate) struct Virtqueue {
    pub(crate) index: u16,
    pub(crate) size: u16,
    /// Descriptor table: two words per descriptor (addr; len | flags << 32 | next << 48).
    desc: Coherent<[u64]>,
    /// Available ring as u16: flags, idx, ring[size], used_event.
    avail: Coherent<[u16]>,
    /// Used ring as u16: flags, idx, size * (id lo, id hi, len lo, len hi), avail_event.
    used: Coherent<[u16]>,
    notify_off: usize,
    avail_idx: u16,
    last_used: u16,
    /// `avail_idx` at the last notification decision (for EVENT_IDX).
    kicked_idx: u16,
    outstanding: KVec<bool>,
    event_idx: bool,
    /// Counters.
    pub(crate) bad_ids: u64,
    /// Used-index jumps larger than the ring (impossible for a correct device).
    pub(crate) bad_idx: u64,
    pub(crate) kicks: u64,
    pub(crate) kicks_suppressed: u64,
}

fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

impl Virtqueue {
    /// Allocates the rings for queue `index` with at most `want` entries and programs the
    /// device. The caller enables the queue once buffers were added.
    pub(crate) fn new(
        dev: &Device<Bound>,
        t: &Transport,
        index: u16,
        want: u16,
        event_idx: bool,
    ) -> Result<Self> {
        let max = t.queue_max_size(index)?;
        if max == 0 {
            return Err(ENODEV);
        }
        let mut size = want.min(max);
        // Power of two (split ring requirement of this driver's index masking).
        while size & (size - 1) != 0 {
            size &= size - 1;
        }
        let n = size as usize;
        let desc = Coherent::<u64>::zeroed_slice(dev, 2 * n, GFP_KERNEL)?;
        let avail = Coherent::<u16>::zeroed_slice(dev, n + 3, GFP_KERNEL)?;
        let used = Coherent::<u16>::zeroed_slice(dev, 4 * n + 3, GFP_KERNEL)?;
        let notify_off = t.setup_queue(
            index,
            size,
            desc.dma_address(),
            avail.dma_address(),
            used.dma_address(),
            0,
        )?;
        let mut outstanding = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            outstanding.push(false, GFP_KERNEL)?;
        }
        Ok(Self {
            index,
            size,
            desc,
            avail,
            used,
            notify_off,
            avail_idx: 0,
            last_used: 0,
            kicked_idx: 0,
            outstanding,
            event_idx,
            bad_ids: 0,
            bad_idx: 0,
            kicks: 0,
            kicks_suppressed: 0,
        })
    }

    /// Writes descriptor `i`.
    pub(crate) fn set_desc(&mut self, i: u16, addr: u64, len: u32, flags: u16, next: u16) -> Result {
        let i = i as usize;
        io_write!(self.desc, [try: 2 * i], addr);
        io_write!(
            self.desc,
            [try: 2 * i + 1],
            u64::from(len) | u64::from(flags) << 32 | u64::from(next) << 48
        );
        Ok(())
    }

    /// Changes only the length of descriptor `i` (ackq buffers carry a variable record count).
    pub(crate) fn set_desc_len(&mut self, i: u16, len: u32, flags: u16, next: u16) -> Result {
        let i = i as usize;
        io_write!(
            self.desc,
            [try: 2 * i + 1],
            u64::from(len) | u64::from(flags) << 32 | u64::from(next) << 48
        );
        Ok(())
    }

    /// Publishes chain `head` in the available ring (no notification).
    pub(crate) fn add(&mut self, head: u16) -> Result {
        if head >= self.size || self.outstanding[head as usize] {
            return Err(EINVAL);
        }
        let slot = (self.avail_idx & (self.size - 1)) as usize;
        io_write!(self.avail, [try: 2 + slot], head);
        self.outstanding[head as usize] = true;
        // The ring entry must be visible before the index.
        smp_mb(Write);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        io_write!(self.avail, [try: 1], self.avail_idx);
        Ok(())
    }

    /// Notifies the device if it asked for it (EVENT_IDX `avail_event` or `NO_NOTIFY`).
    pub(crate) fn kick(&mut self, t: &Transport) -> Result {
        // Order the avail idx store before reading the device's suppression state.
        smp_mb(Full);
        let old = self.kicked_idx;
        let new = self.avail_idx;
        if old == new {
            return Ok(());
        }
        self.kicked_idx = new;
        let needed = if self.event_idx {
            let ev: u16 = io_read!(self.used, [try: 2 + 4 * self.size as usize]);
            need_event(ev, new, old)
        } else {
            let flags: u16 = io_read!(self.used, [try: 0]);
            flags & USED_F_NO_NOTIFY == 0
        };
        if needed {
            self.kicks += 1;
            t.notify(self.notify_off, self.index)
        } else {
            self.kicks_suppressed += 1;
            Ok(())
        }
    }

    /// Pops one used-ring entry, validating its id.
    pub(crate) fn pop(&mut self) -> Pop {
        let idx: u16 = match (|| -> Result<u16> { Ok(io_read!(self.used, [try: 1])) })() {
            Ok(v) => v,
            Err(_) => return Pop::Empty,
        };
        if idx == self.last_used {
            return Pop::Empty;
        }
        if idx.wrapping_sub(self.last_used) > self.size {
            // The device claims more used entries than the ring holds: count it and
            // resynchronise instead of walking stale entries.
            self.bad_idx += 1;
            self.last_used = idx;
            return Pop::BadId;
        }
        // Read the entry only after seeing the index.
        smp_mb(Read);
        let slot = (self.last_used & (self.size - 1)) as usize;
        self.last_used = self.last_used.wrapping_add(1);
        let r = (|| -> Result<(u32, u32)> {
            let b = 2 + 4 * slot;
            let id_lo: u16 = io_read!(self.used, [try: b]);
            let id_hi: u16 = io_read!(self.used, [try: b + 1]);
            let len_lo: u16 = io_read!(self.used, [try: b + 2]);
            let len_hi: u16 = io_read!(self.used, [try: b + 3]);
            Ok((u32::from(id_lo) | u32::from(id_hi) << 16, u32::from(len_lo) | u32::from(len_hi) << 16))
        })();
        let Ok((id, len)) = r else {
            return Pop::Empty;
        };
        if id >= u32::from(self.size) || !self.outstanding[id as usize] {
            self.bad_ids += 1;
            return Pop::BadId;
        }
        self.outstanding[id as usize] = false;
        Pop::Ok(Used { id: id as u16, len })
    }

    /// Asks for an interrupt at the next used entry and returns `true` if more entries arrived
    /// meanwhile (the caller must then poll again).
    pub(crate) fn enable_cb(&mut self) -> bool {
        if self.event_idx {
            let _ = (|| -> Result { io_write!(self.avail, [try: 2 + self.size as usize], self.last_used); Ok(()) })();
        } else {
            let _ = (|| -> Result { io_write!(self.avail, [try: 0], 0u16); Ok(()) })();
        }
        smp_mb(Full);
        let idx: u16 = (|| -> Result<u16> { Ok(io_read!(self.used, [try: 1])) })().unwrap_or(self.last_used);
        idx != self.last_used
    }

    /// Suppresses used-buffer interrupts for this queue (ackq is reclaimed by polling).
    pub(crate) fn disable_cb(&mut self) {
        if self.event_idx {
            let ev = self.last_used.wrapping_sub(1);
            let _ = (|| -> Result { io_write!(self.avail, [try: 2 + self.size as usize], ev); Ok(()) })();
        } else {
            let _ = (|| -> Result { io_write!(self.avail, [try: 0], AVAIL_F_NO_INTERRUPT); Ok(()) })();
        }
    }

    /// Number of entries the device has used but we have not popped (for debugfs).
    pub(crate) fn pending(&self) -> u16 {
        let idx: u16 = (|| -> Result<u16> { Ok(io_read!(self.used, [try: 1])) })().unwrap_or(self.last_used);
        idx.wrapping_sub(self.last_used)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.outstanding.iter().filter(|b| **b).count()
    }
}
