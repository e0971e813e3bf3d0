// SPDX-License-Identifier: GPL-2.0

//! The character device's records and ioctls (`/dev/irqstormN`, mechanism `user`): the
//! driver's copy of protocol/src/uapi.rs (offsets are normative there; the guest test
//! 55-user runs the guest program built from that crate against this). Little-endian.

use kernel::ioctl::{_IOR, _IOW};

pub(crate) const EVENT_SIZE: usize = 64;
pub(crate) const ACK_SIZE: usize = 48;
pub(crate) const MAX_OUTSTANDING: usize = 256;
pub(crate) const INFO_SIZE: usize = 32;
pub(crate) const PROGRAM_SIZE: usize = 32;
pub(crate) const SMALL_SIZE: usize = 8;

const MAGIC: u32 = 0xb5;
pub(crate) const IOC_INFO: u32 = _IOR::<[u8; INFO_SIZE]>(MAGIC, 1);
pub(crate) const IOC_SET_MECH: u32 = _IOW::<[u8; SMALL_SIZE]>(MAGIC, 2);
pub(crate) const IOC_PROGRAM: u32 = _IOW::<[u8; PROGRAM_SIZE]>(MAGIC, 3);
pub(crate) const IOC_STOP: u32 = _IOW::<[u8; SMALL_SIZE]>(MAGIC, 4);

/// `EPOLL*` bits (include/uapi/linux/eventpoll.h; bindgen cannot see their casts).
pub(crate) const EPOLLIN: u32 = 0x0001;
pub(crate) const EPOLLOUT: u32 = 0x0004;
pub(crate) const EPOLLERR: u32 = 0x0008;
pub(crate) const EPOLLHUP: u32 = 0x0010;
pub(crate) const EPOLLRDNORM: u32 = 0x0040;
pub(crate) const EPOLLWRNORM: u32 = 0x0100;

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

pub(crate) fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
pub(crate) fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// An event record for `read()`.
pub(crate) struct Event {
    pub(crate) seq: u64,
    pub(crate) count: u32,
    pub(crate) source: u16,
    pub(crate) hard_cpu: u16,
    pub(crate) hardirq_ns: u64,
    pub(crate) hardirq_tsc: u64,
    pub(crate) handed_ns: u64,
    pub(crate) handed_tsc: u64,
    pub(crate) flags: u8,
    pub(crate) handed_cpu: u16,
    pub(crate) waiting: u32,
}

impl Event {
    pub(crate) fn encode(&self) -> [u8; EVENT_SIZE] {
        let mut b = [0u8; EVENT_SIZE];
        put(&mut b, 0, &self.seq.to_le_bytes());
        put(&mut b, 8, &self.count.to_le_bytes());
        put(&mut b, 12, &self.source.to_le_bytes());
        put(&mut b, 14, &self.hard_cpu.to_le_bytes());
        put(&mut b, 16, &self.hardirq_ns.to_le_bytes());
        put(&mut b, 24, &self.hardirq_tsc.to_le_bytes());
        put(&mut b, 32, &self.handed_ns.to_le_bytes());
        put(&mut b, 40, &self.handed_tsc.to_le_bytes());
        b[48] = self.flags;
        put(&mut b, 50, &self.handed_cpu.to_le_bytes());
        put(&mut b, 52, &self.waiting.to_le_bytes());
        b
    }
}

/// A user ack taken by `write()`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Ack {
    pub(crate) seq: u64,
    pub(crate) woke_ns: u64,
    pub(crate) woke_tsc: u64,
    pub(crate) done_ns: u64,
    pub(crate) done_tsc: u64,
    pub(crate) cpu: u16,
}

impl Ack {
    pub(crate) fn decode(b: &[u8; ACK_SIZE]) -> Self {
        Self {
            seq: u64_at(b, 0),
            woke_ns: u64_at(b, 8),
            woke_tsc: u64_at(b, 16),
            done_ns: u64_at(b, 24),
            done_tsc: u64_at(b, 32),
            cpu: u16_at(b, 40),
        }
    }
}

/// The INFO reply.
pub(crate) fn info(spec_version: u16, num_sources: u16, max_rate_hz: u32, min_period_ns: u32, max_burst: u32, index: u32) -> [u8; INFO_SIZE] {
    let mut b = [0u8; INFO_SIZE];
    put(&mut b, 0, &spec_version.to_le_bytes());
    put(&mut b, 2, &num_sources.to_le_bytes());
    put(&mut b, 4, &max_rate_hz.to_le_bytes());
    put(&mut b, 8, &(EVENT_SIZE as u32).to_le_bytes());
    put(&mut b, 12, &(ACK_SIZE as u32).to_le_bytes());
    put(&mut b, 16, &(MAX_OUTSTANDING as u32).to_le_bytes());
    put(&mut b, 20, &min_period_ns.to_le_bytes());
    put(&mut b, 24, &max_burst.to_le_bytes());
    put(&mut b, 28, &index.to_le_bytes());
    b
}

#[kernel::prelude::kunit_tests(irqstorm_uapi)]
mod tests {
    use super::*;

    /// The numbers protocol/src/uapi.rs computes by hand (asm-generic/ioctl.h).
    #[test]
    fn ioctl_numbers_match_the_host_crate() {
        assert_eq!(IOC_INFO, 0x8020_b501);
        assert_eq!(IOC_SET_MECH, 0x4008_b502);
        assert_eq!(IOC_PROGRAM, 0x4020_b503);
        assert_eq!(IOC_STOP, 0x4008_b504);
    }

    #[test]
    fn ack_decodes_at_its_offsets() {
        let mut b = [0u8; ACK_SIZE];
        b[0] = 7;
        b[8] = 1;
        b[24] = 2;
        b[40] = 1;
        let a = Ack::decode(&b);
        assert_eq!((a.seq, a.woke_ns, a.done_ns, a.cpu), (7, 1, 2, 1));
    }
}
