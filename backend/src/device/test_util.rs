// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fixtures shared by the device model's unit tests: a guest memory, a device
//! with features negotiated, and chain builders on virtio-queue's MockSplitQueue.

pub use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
pub use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
pub use virtio_queue::desc::split::Descriptor as SplitDescriptor;
pub use virtio_queue::desc::RawDescriptor;
pub use virtio_queue::mock::MockSplitQueue;
pub use virtio_queue::{Queue, QueueT};
pub use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

pub use crate::protocol::*;
pub use crate::schedule::{Limits, MAX_DELAY_NS};

pub use super::{Device, DeviceCounters};

pub const LIM: Limits = Limits {
    num_sources: 8,
    max_rate_hz: 500_000,
    max_outstanding: 1024,
    min_period_ns: 2_000,
    max_burst: 1024,
};
pub const T0: u64 = 1_000_000_000;
pub const MS: u64 = 1_000_000;

pub fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
}

pub fn device(extra: u64) -> Device {
    let mut d = Device::new(LIM, true);
    d.set_negotiated((1u64 << VIRTIO_F_VERSION_1) | extra);
    d
}

/// Adds one chain of (addr, len, writable) descriptors at descriptor index `at`.
pub fn add_chain(vq: &MockSplitQueue<GuestMemoryMmap>, at: u16, descs: &[(u64, u32, bool)]) {
    let n = descs.len();
    let raw: Vec<RawDescriptor> = descs
        .iter()
        .enumerate()
        .map(|(i, &(a, l, w))| {
            let mut f = if w { VRING_DESC_F_WRITE as u16 } else { 0 };
            if i + 1 < n {
                f |= VRING_DESC_F_NEXT as u16;
            }
            RawDescriptor::from(SplitDescriptor::new(a, l, f, at + i as u16 + 1))
        })
        .collect();
    vq.add_desc_chains(&raw, at).unwrap();
}

pub fn used(vq: &MockSplitQueue<GuestMemoryMmap>, i: u16) -> (u32, u32) {
    let e = vq.used().ring().ref_at(usize::from(i)).unwrap().load();
    (e.id(), e.len())
}

pub fn used_idx(vq: &MockSplitQueue<GuestMemoryMmap>) -> u16 {
    vq.used().idx().load()
}

pub fn read_event(m: &GuestMemoryMmap, addr: u64) -> EventRecord {
    let mut b = [0u8; EVENT_SIZE];
    m.read_slice(&mut b, GuestAddress(addr)).unwrap();
    EventRecord::decode(&b).unwrap()
}

pub fn ctrl_roundtrip(d: &mut Device, req: &CtrlReq) -> (u32, Option<CtrlResp>) {
    let m = mem();
    let vq = MockSplitQueue::new(&m, 16);
    m.write_slice(&req.raw, GuestAddress(0x1000)).unwrap();
    add_chain(&vq, 0, &[(0x1000, 64, false), (0x2000, 64, true)]);
    let mut q: Queue = vq.create_queue().unwrap();
    let out = d.process_ctrlq(&mut q, &m);
    assert_eq!(out.q.used, 1);
    let (id, len) = used(&vq, 0);
    assert_eq!(id, 0);
    if len == 0 {
        return (0, None);
    }
    let mut b = [0u8; 64];
    m.read_slice(&mut b, GuestAddress(0x2000)).unwrap();
    (len, Some(CtrlResp::decode(&b).unwrap()))
}

pub fn storm(rate: u32, burst: u16) -> ConfigureBody {
    ConfigureBody {
        mode: Mode::Storm as u8,
        rate_hz: rate,
        burst,
        ..Default::default()
    }
}

/// A device whose 1 kHz storm on source 0 wrote `n` records, one per 48-byte
/// buffer at 0x1000 + i * 0x100 of `m`.
pub fn storm_records(m: &GuestMemoryMmap, n: u16) -> (Device, Vec<EventRecord>) {
    let vq = MockSplitQueue::new(m, 16);
    for i in 0..n {
        add_chain(&vq, i, &[(0x1000 + u64::from(i) * 0x100, 48, true)]);
    }
    let mut q: Queue = vq.create_queue().unwrap();
    let mut d = device(0);
    d.configure(0, &storm(1000, 1), false);
    d.start(0, 0, T0).unwrap();
    d.service(T0 + u64::from(n) * MS, Some((&mut q, m)));
    let recs = (0..u64::from(n))
        .map(|i| read_event(m, 0x1000 + i * 0x100))
        .collect();
    (d, recs)
}
