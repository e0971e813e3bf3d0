// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The guest driver's character device `/dev/irqstormN` (mechanism `user`,
//! guest-driver/README.md "User space as the bottom half"): the records
//! `read()` returns, the acks `write()` takes and the ioctls, as the guest
//! program `irqstorm-wait` uses them. Little-endian, fixed offsets; the
//! driver's copy is guest-driver/uapi.rs (the guest test 55-user runs one
//! against the other).

/// Size of an event record returned by `read()`.
pub const USER_EVENT_SIZE: usize = 64;
/// Size of an ack record taken by `write()`.
pub const USER_ACK_SIZE: usize = 48;
/// Records a file may hold unacked; `read()` fails with ENOBUFS beyond.
pub const USER_MAX_OUTSTANDING: usize = 256;
/// `flags` bits of an event record (the ack record's, spec §6.4): the first
/// record a waiting `read()` took after its wake-up, whose ack's `woke`
/// stamps are the wake-up (`ACK_F_FIRST`); a record the IRQ thread drained
/// past the hard IRQ's budget (`ACK_F_PAST_BUDGET`).
pub const USER_F_FIRST: u8 = 1;
pub const USER_F_PAST_BUDGET: u8 = 2;

/// ioctl type byte.
pub const IOC_MAGIC: u32 = 0xb5;
/// Size of the INFO reply.
pub const USER_INFO_SIZE: usize = 32;
/// Size of a PROGRAM request.
pub const USER_PROGRAM_SIZE: usize = 32;
/// Size of SET_MECH and STOP requests.
pub const USER_SMALL_SIZE: usize = 8;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (IOC_MAGIC << 8) | nr
}
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// `_IOR(0xb5, 1, [u8; 32])`: device facts (`UserInfo`).
pub const IOC_INFO: u32 = ioc(IOC_READ, 1, USER_INFO_SIZE);
/// `_IOW(0xb5, 2, [u8; 8])`: a source's mechanism (`SetMech`).
pub const IOC_SET_MECH: u32 = ioc(IOC_WRITE, 2, USER_SMALL_SIZE);
/// `_IOW(0xb5, 3, [u8; 32])`: program and start a source (`UserProgram`).
pub const IOC_PROGRAM: u32 = ioc(IOC_WRITE, 3, USER_PROGRAM_SIZE);
/// `_IOW(0xb5, 4, [u8; 8])`: stop a source, or all (0xffff).
pub const IOC_STOP: u32 = ioc(IOC_WRITE, 4, USER_SMALL_SIZE);

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// One event as `read()` hands it over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserEvent {
    pub seq: u64,
    pub count: u32,
    pub source: u16,
    pub hard_cpu: u16,
    /// The hard IRQ's stamps (CLOCK_MONOTONIC ns and TSC).
    pub hardirq_ns: u64,
    pub hardirq_tsc: u64,
    /// When the `read()` took it, in the kernel after its wait.
    pub handed_ns: u64,
    pub handed_tsc: u64,
    pub flags: u8,
    pub handed_cpu: u16,
    /// Records still waiting for a reader after this `read()`.
    pub waiting: u32,
}

impl UserEvent {
    /// Decodes one record (`b` is exactly [`USER_EVENT_SIZE`] bytes).
    pub fn decode(b: &[u8]) -> Option<Self> {
        (b.len() == USER_EVENT_SIZE).then(|| Self {
            seq: u64_at(b, 0),
            count: u32_at(b, 8),
            source: u16_at(b, 12),
            hard_cpu: u16_at(b, 14),
            hardirq_ns: u64_at(b, 16),
            hardirq_tsc: u64_at(b, 24),
            handed_ns: u64_at(b, 32),
            handed_tsc: u64_at(b, 40),
            flags: b[48],
            handed_cpu: u16_at(b, 50),
            waiting: u32_at(b, 52),
        })
    }

    pub fn encode(&self) -> [u8; USER_EVENT_SIZE] {
        let mut b = [0u8; USER_EVENT_SIZE];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..12].copy_from_slice(&self.count.to_le_bytes());
        b[12..14].copy_from_slice(&self.source.to_le_bytes());
        b[14..16].copy_from_slice(&self.hard_cpu.to_le_bytes());
        b[16..24].copy_from_slice(&self.hardirq_ns.to_le_bytes());
        b[24..32].copy_from_slice(&self.hardirq_tsc.to_le_bytes());
        b[32..40].copy_from_slice(&self.handed_ns.to_le_bytes());
        b[40..48].copy_from_slice(&self.handed_tsc.to_le_bytes());
        b[48] = self.flags;
        b[50..52].copy_from_slice(&self.handed_cpu.to_le_bytes());
        b[52..56].copy_from_slice(&self.waiting.to_le_bytes());
        b
    }
}

/// The user thread's ack of one event: when it woke and when it was done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserAck {
    pub seq: u64,
    pub woke_ns: u64,
    pub woke_tsc: u64,
    pub done_ns: u64,
    pub done_tsc: u64,
    pub cpu: u16,
}

impl UserAck {
    pub fn encode(&self) -> [u8; USER_ACK_SIZE] {
        let mut b = [0u8; USER_ACK_SIZE];
        for (i, w) in [
            self.seq,
            self.woke_ns,
            self.woke_tsc,
            self.done_ns,
            self.done_tsc,
        ]
        .iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        b[40..42].copy_from_slice(&self.cpu.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        (b.len() == USER_ACK_SIZE).then(|| Self {
            seq: u64_at(b, 0),
            woke_ns: u64_at(b, 8),
            woke_tsc: u64_at(b, 16),
            done_ns: u64_at(b, 24),
            done_tsc: u64_at(b, 32),
            cpu: u16_at(b, 40),
        })
    }
}

/// The INFO reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub spec_version: u16,
    pub num_sources: u16,
    pub max_rate_hz: u32,
    pub event_size: u32,
    pub ack_size: u32,
    pub max_outstanding: u32,
    pub min_period_ns: u32,
    pub max_burst: u32,
    /// N of /dev/irqstormN.
    pub index: u32,
}

impl UserInfo {
    pub fn decode(b: &[u8; USER_INFO_SIZE]) -> Self {
        Self {
            spec_version: u16_at(b, 0),
            num_sources: u16_at(b, 2),
            max_rate_hz: u32_at(b, 4),
            event_size: u32_at(b, 8),
            ack_size: u32_at(b, 12),
            max_outstanding: u32_at(b, 16),
            min_period_ns: u32_at(b, 20),
            max_burst: u32_at(b, 24),
            index: u32_at(b, 28),
        }
    }
}

/// Program modes of [`UserProgram`] (the device's, spec §6.1.2).
pub const USER_MODE_ONESHOT: u8 = 1;
pub const USER_MODE_PERIODIC: u8 = 2;
pub const USER_MODE_STORM: u8 = 3;

/// A PROGRAM request: configure source `source` and start it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserProgram {
    pub source: u16,
    /// [`USER_MODE_ONESHOT`], [`USER_MODE_PERIODIC`] or [`USER_MODE_STORM`].
    pub mode: u8,
    /// 0 fixed, 2 exponential gaps (storms).
    pub jitter: u8,
    pub burst: u32,
    /// Oneshot delay / periodic period (ns).
    pub period_ns: u64,
    pub rate_hz: u32,
    /// Events (0 = unbounded).
    pub count: u32,
    pub duration_ns: u64,
}

impl UserProgram {
    pub fn encode(&self) -> [u8; USER_PROGRAM_SIZE] {
        let mut b = [0u8; USER_PROGRAM_SIZE];
        b[0..2].copy_from_slice(&self.source.to_le_bytes());
        b[2] = self.mode;
        b[3] = self.jitter;
        b[4..8].copy_from_slice(&self.burst.to_le_bytes());
        b[8..16].copy_from_slice(&self.period_ns.to_le_bytes());
        b[16..20].copy_from_slice(&self.rate_hz.to_le_bytes());
        b[20..24].copy_from_slice(&self.count.to_le_bytes());
        b[24..32].copy_from_slice(&self.duration_ns.to_le_bytes());
        b
    }
}

/// A SET_MECH request.
pub fn set_mech_request(source: u16, mechanism: u16) -> [u8; USER_SMALL_SIZE] {
    let mut b = [0u8; USER_SMALL_SIZE];
    b[0..2].copy_from_slice(&source.to_le_bytes());
    b[2..4].copy_from_slice(&mechanism.to_le_bytes());
    b
}

/// A STOP request (`source` 0xffff: every source).
pub fn stop_request(source: u16) -> [u8; USER_SMALL_SIZE] {
    let mut b = [0u8; USER_SMALL_SIZE];
    b[0..2].copy_from_slice(&source.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_follow_the_linux_encoding() {
        // _IOR(0xb5, 1, 32 bytes) as asm-generic/ioctl.h computes it.
        assert_eq!(IOC_INFO, 0x8020_b501);
        assert_eq!(IOC_SET_MECH, 0x4008_b502);
        assert_eq!(IOC_PROGRAM, 0x4020_b503);
        assert_eq!(IOC_STOP, 0x4008_b504);
    }

    #[test]
    fn records_round_trip_at_their_offsets() {
        let e = UserEvent {
            seq: 7,
            count: 2,
            source: 3,
            hard_cpu: 1,
            hardirq_ns: 100,
            hardirq_tsc: 200,
            handed_ns: 300,
            handed_tsc: 400,
            flags: USER_F_FIRST,
            handed_cpu: 1,
            waiting: 5,
        };
        let b = e.encode();
        assert_eq!(u64_at(&b, 16), 100);
        assert_eq!(b[48], USER_F_FIRST);
        assert_eq!(UserEvent::decode(&b), Some(e));
        assert_eq!(UserEvent::decode(&b[..63]), None);
        let a = UserAck {
            seq: 7,
            woke_ns: 350,
            woke_tsc: 450,
            done_ns: 360,
            done_tsc: 470,
            cpu: 1,
        };
        assert_eq!(UserAck::decode(&a.encode()), Some(a));
        assert_eq!(u64_at(&a.encode(), 8), 350);
    }

    #[test]
    fn program_request_layout() {
        let p = UserProgram {
            source: 2,
            mode: USER_MODE_PERIODIC,
            period_ns: 1_000_000,
            count: 10,
            ..Default::default()
        };
        let b = p.encode();
        assert_eq!((u16_at(&b, 0), b[2]), (2, 2));
        assert_eq!(u64_at(&b, 8), 1_000_000);
        assert_eq!(u32_at(&b, 20), 10);
    }
}
