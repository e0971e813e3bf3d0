// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Descriptor chains: collecting and validating them, copying records in and
//! out of guest memory, used-ring entries and notification suppression.

use virtio_bindings::bindings::virtio_ring::VRING_AVAIL_F_NO_INTERRUPT;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestMemoryBackend, GuestMemoryMmap};

use super::{DeviceCounters, Error};

/// One descriptor of a chain, as the driver posted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Desc {
    /// Guest physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// Device-writable (`VIRTQ_DESC_F_WRITE`).
    pub write_only: bool,
}

/// Sum of the lengths of `descs`.
pub(super) fn total_len(descs: &[Desc]) -> u64 {
    descs.iter().map(|d| u64::from(d.len)).sum()
}

/// Chain validation failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChainError {
    TooLong,
    Broken,
    BadAddress,
    Direction,
    Length,
}

/// Collects the descriptors of a chain; detects over-long, broken and out-of-memory chains.
pub(super) fn collect_chain(
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    max: usize,
) -> Result<Vec<Desc>, ChainError> {
    let mut v = Vec::with_capacity(max);
    let mut last_has_next = false;
    for d in chain {
        if v.len() == max {
            return Err(ChainError::TooLong);
        }
        let len = d.len();
        if !GuestMemoryBackend::check_range(mem, d.addr(), len as usize) && len > 0 {
            return Err(ChainError::BadAddress);
        }
        last_has_next = d.has_next();
        v.push(Desc {
            addr: d.addr().0,
            len,
            write_only: d.is_write_only(),
        });
    }
    // The iterator stops early (yielding nothing more) on an out-of-range next
    // index, a loop (ttl exhausted) or a malformed indirect table: the last
    // descriptor then still claims a successor.
    if v.is_empty() || last_has_next {
        return Err(ChainError::Broken);
    }
    Ok(v)
}

pub(super) fn write_descs(mem: &GuestMemoryMmap, descs: &[Desc], data: &[u8]) -> bool {
    let mut off = 0usize;
    for d in descs {
        if off >= data.len() {
            break;
        }
        let n = (d.len as usize).min(data.len() - off);
        if mem
            .write_slice(&data[off..off + n], vm_memory::GuestAddress(d.addr))
            .is_err()
        {
            return false;
        }
        off += n;
    }
    off == data.len()
}

pub(super) fn read_descs(mem: &GuestMemoryMmap, descs: &[Desc], out: &mut [u8]) -> bool {
    let mut off = 0usize;
    for d in descs {
        if off >= out.len() {
            break;
        }
        let n = (d.len as usize).min(out.len() - off);
        if mem
            .read_slice(&mut out[off..off + n], vm_memory::GuestAddress(d.addr))
            .is_err()
        {
            return false;
        }
        off += n;
    }
    off == out.len()
}

/// The next available chain, if any; a ring the driver left inconsistent
/// (e.g. an avail index too far ahead) counts as a queue error.
pub(super) fn next_chain<'a>(
    q: &mut Queue,
    mem: &'a GuestMemoryMmap,
    c: &mut DeviceCounters,
) -> Option<DescriptorChain<&'a GuestMemoryMmap>> {
    match q.iter(mem) {
        Ok(mut it) => it.next(),
        Err(_) => {
            c.queue_errors += 1;
            None
        }
    }
}

pub(super) fn add_used(
    q: &mut Queue,
    mem: &GuestMemoryMmap,
    head: u16,
    len: u32,
    c: &mut DeviceCounters,
) {
    if q.add_used(mem, head, len).is_err() {
        c.queue_errors += 1;
    }
}

/// Used-buffer notification suppression (§5.3): `used_event` with EVENT_IDX,
/// else the avail ring's `VRING_AVAIL_F_NO_INTERRUPT` flag (virtio-queue's
/// `needs_notification` implements only the former).
pub(super) fn driver_wants_interrupt(q: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, Error> {
    if q.event_idx_enabled() {
        return Ok(q.needs_notification(mem)?);
    }
    let flags: u16 = mem
        .read_obj(vm_memory::GuestAddress(q.avail_ring()))
        .map_err(|e| Error::Queue(virtio_queue::Error::GuestMemory(e)))?;
    Ok(u16::from_le(flags) & VRING_AVAIL_F_NO_INTERRUPT as u16 == 0)
}
