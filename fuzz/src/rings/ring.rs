// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The driver side of one split ring in the fuzzed guest memory: where its
//! parts live, raw writes into them, chains posted by the harness (with what
//! the device must do with each), and the used entries read back.

use std::collections::VecDeque;

use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Largest queue size the harness programs.
pub const MAX_QSIZE: u16 = 256;

/// What the device must do with a chain the harness posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A well-formed buffer: controlq answers with 64 bytes, eventq writes
    /// a 48-byte record, ackq consumes it (used length 0).
    Good,
    /// Malformed: counted, returned with used length 0.
    Malformed,
    /// Malformed, but controlq still answers INVALID (64 bytes): a
    /// readable part of the wrong length.
    MalformedAnswered,
}

/// A chain the harness posted and the device has not returned yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// Head descriptor id.
    pub head: u16,
    /// Descriptors it occupies.
    pub descs: u16,
    /// What must happen to it.
    pub expect: Expect,
    /// Its writable pieces `(addr, len)`, in order (reply / record).
    pub writes: [(u64, u32); 2],
}

/// One descriptor as the harness writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawDesc {
    /// Buffer address.
    pub addr: u64,
    /// Buffer length.
    pub len: u32,
    /// `VRING_DESC_F_*` flags.
    pub flags: u16,
    /// Next descriptor id.
    pub next: u16,
}

/// The driver side of one queue.
#[derive(Debug)]
pub struct Ring {
    /// The device's view, programmed like a transport would.
    pub q: Queue,
    /// Queue size as programmed (may be one virtio-queue refuses).
    pub size: u16,
    /// Descriptor table address.
    pub desc: u64,
    /// Avail ring address.
    pub avail: u64,
    /// Used ring address.
    pub used: u64,
    avail_idx: u16,
    last_used: u16,
    next_id: u16,
    /// Chains posted by the harness, in avail order, not returned yet.
    pub posted: VecDeque<Posted>,
}

impl Ring {
    /// A ready queue of `size` at the given addresses.
    pub fn new(size: u16, desc: u64, avail: u64, used: u64, event_idx: bool) -> Self {
        // 256 is a power of two: Queue::new cannot fail.
        let mut q = Queue::new(MAX_QSIZE).expect("256 is a valid maximum queue size");
        q.set_size(size);
        let lo_hi = |a: u64| (Some(a as u32), Some((a >> 32) as u32));
        let (l, h) = lo_hi(desc);
        q.set_desc_table_address(l, h);
        let (l, h) = lo_hi(avail);
        q.set_avail_ring_address(l, h);
        let (l, h) = lo_hi(used);
        q.set_used_ring_address(l, h);
        q.set_event_idx(event_idx);
        q.set_ready(true);
        Self {
            q,
            size,
            desc,
            avail,
            used,
            avail_idx: 0,
            last_used: 0,
            next_id: 0,
            posted: VecDeque::new(),
        }
    }

    /// Whether virtio-queue accepts the programmed size (a power of two
    /// up to the maximum; a refused size leaves the queue at the maximum).
    pub fn size_valid(&self) -> bool {
        self.size.is_power_of_two() && self.size <= MAX_QSIZE
    }

    /// The size the device uses.
    pub fn effective_size(&self) -> u16 {
        self.q.size()
    }

    /// Writes descriptor `id` (ignored outside guest memory).
    pub fn write_desc(&self, m: &GuestMemoryMmap, id: u16, d: RawDesc) {
        let a = self.desc.wrapping_add(16 * u64::from(id));
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&d.addr.to_le_bytes());
        b[8..12].copy_from_slice(&d.len.to_le_bytes());
        b[12..14].copy_from_slice(&d.flags.to_le_bytes());
        b[14..].copy_from_slice(&d.next.to_le_bytes());
        let _ = m.write_slice(&b, GuestAddress(a));
    }

    /// Publishes `head` in the next avail slot and moves the avail index.
    pub fn push_avail(&mut self, m: &GuestMemoryMmap, head: u16) {
        let size = self.effective_size().max(1);
        let slot = u64::from(self.avail_idx % size);
        let _ = m.write_obj(
            head.to_le(),
            GuestAddress(self.avail.wrapping_add(4 + 2 * slot)),
        );
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.set_avail_idx(m, self.avail_idx);
    }

    /// Writes the avail index as given (a driver may lie).
    pub fn set_avail_idx(&mut self, m: &GuestMemoryMmap, idx: u16) {
        self.avail_idx = idx;
        let _ = m.write_obj(idx.to_le(), GuestAddress(self.avail.wrapping_add(2)));
    }

    /// The head id the next posted chain gets.
    pub fn next_head(&self) -> u16 {
        self.next_id % self.effective_size().max(1)
    }

    /// Descriptors the harness's posted chains still hold.
    fn in_flight(&self) -> u16 {
        self.posted.iter().map(|p| p.descs).sum()
    }

    /// Posts a chain of `(addr, len, writable)` descriptors at the next free
    /// ids; `None` (nothing written) if they do not fit beside the chains
    /// still in flight. `link` overrides the last descriptor's successor
    /// (a broken chain).
    pub fn post(
        &mut self,
        m: &GuestMemoryMmap,
        descs: &[(u64, u32, bool)],
        link: Option<u16>,
        expect: Expect,
    ) -> Option<Posted> {
        let size = self.effective_size();
        let n = u16::try_from(descs.len()).ok()?;
        if n == 0 || self.in_flight().checked_add(n)? > size {
            return None;
        }
        let head = self.next_id % size;
        let mut writes = [(0, 0); 2];
        let mut nw = 0;
        for (i, &(addr, len, w)) in descs.iter().enumerate() {
            let id = (head + i as u16) % size;
            let last = i + 1 == descs.len();
            let mut flags = if w { VRING_DESC_F_WRITE as u16 } else { 0 };
            let mut next = (id + 1) % size;
            if !last {
                flags |= VRING_DESC_F_NEXT as u16;
            } else if let Some(l) = link {
                flags |= VRING_DESC_F_NEXT as u16;
                next = l;
            }
            if w && nw < writes.len() {
                writes[nw] = (addr, len);
                nw += 1;
            }
            self.write_desc(
                m,
                id,
                RawDesc {
                    addr,
                    len,
                    flags,
                    next,
                },
            );
        }
        self.next_id = (head + n) % size;
        let p = Posted {
            head,
            descs: n,
            expect,
            writes,
        };
        self.push_avail(m, head);
        self.posted.push_back(p.clone());
        Some(p)
    }

    /// Used entries `(id, len)` the device added since the last call
    /// (empty if the used ring is outside guest memory).
    pub fn take_used(&mut self, m: &GuestMemoryMmap) -> Vec<(u32, u32)> {
        let Ok(idx) = m.read_obj::<u16>(GuestAddress(self.used.wrapping_add(2))) else {
            return Vec::new();
        };
        let idx = u16::from_le(idx);
        let size = self.effective_size().max(1);
        let mut v = Vec::new();
        while self.last_used != idx {
            let a = self
                .used
                .wrapping_add(4 + 8 * u64::from(self.last_used % size));
            let id = m.read_obj::<u32>(GuestAddress(a)).map(u32::from_le);
            let len = m
                .read_obj::<u32>(GuestAddress(a.wrapping_add(4)))
                .map(u32::from_le);
            if let (Ok(id), Ok(len)) = (id, len) {
                v.push((id, len));
            }
            self.last_used = self.last_used.wrapping_add(1);
        }
        v
    }
}
