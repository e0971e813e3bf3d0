// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Wire formats of the irqstorm device (docs/device-spec.md §4 and §6).
//!
//! Every record is little-endian with a fixed size; the byte offsets below are
//! the normative ones of the spec. Encoding and decoding are explicit, so the
//! layout does not depend on any Rust struct layout.

mod calibrate;
mod codes;

use thiserror::Error as ThisError;

pub use calibrate::{CalibrateReply, CalibrateRequest, CalibrateResult, CalibrationPage};
pub use codes::{CodeError, FaultKind, Jitter, Mode, Opcode, Status};

/// `magic` in the device configuration: bytes "IRQS".
pub const MAGIC: u32 = 0x5351_5249;
/// `spec_version` in the device configuration.
pub const SPEC_VERSION: u16 = 4;

/// Size of the device configuration space.
pub const CONFIG_SIZE: usize = 32;
/// Size of a control request.
pub const CTRL_REQ_SIZE: usize = 64;
/// Size of a control reply.
pub const CTRL_RESP_SIZE: usize = 64;
/// Size of an event record.
pub const EVENT_SIZE: usize = 48;
/// Size of an ack record (48 in spec version 1; version 2 added the TSC stamps,
/// version 3 the CPUs and the requested delay).
pub const ACK_SIZE: usize = 88;
/// Most ack records in one ackq buffer.
pub const MAX_ACKS_PER_BUFFER: usize = 64;
/// Most descriptors in a controlq or eventq chain.
pub const MAX_CHAIN_DESCS: usize = 4;
/// Most descriptors in an ackq chain (one per record at most).
pub const MAX_ACK_CHAIN_DESCS: usize = MAX_ACKS_PER_BUFFER;

/// Virtqueue indices.
pub const CONTROLQ: u16 = 0;
/// Event queue index.
pub const EVENTQ: u16 = 1;
/// Ack queue index.
pub const ACKQ: u16 = 2;
/// Number of virtqueues.
pub const NUM_QUEUES: usize = 3;

/// Device feature bit: per-source interrupt moderation.
pub const IRQSTORM_F_MODERATION: u32 = 0;
/// Device feature bit: fault injection may be used.
pub const IRQSTORM_F_FAULT_INJECT: u32 = 1;

/// `source` value naming every source.
pub const SOURCE_ALL: u16 = 0xffff;

/// Event record flag: the record was latched (written later than raised).
pub const EVT_F_LATCHED: u16 = 1 << 0;
/// Event record flag: the last record of a program.
pub const EVT_F_FINAL: u16 = 1 << 1;
/// Ack flag (§6.4): the first record a bottom-half run processed after it was
/// scheduled; `bh_start_*` is the woken context's own first stamp, so
/// `bh_start - hardirq` is the per-interrupt latency (hard IRQ -> first
/// record's bottom half). Other acks' `bh_start` is per record.
pub const ACK_F_FIRST: u8 = 1 << 0;
/// Ack flag: the IRQ thread drained the record past the hard IRQ handler's
/// budget; its `hardirq_*` stamps are those of the hard IRQ that started the
/// drain.
pub const ACK_F_PAST_BUDGET: u8 = 1 << 1;
/// Ack flag: the record's bottom half was cancelled before it ran (the
/// driver's `cancel MECH`): returned, counted `cancelled`, no bottom-half
/// stamps.
pub const ACK_F_CANCELLED: u8 = 1 << 2;

/// STATS request flag: reset the counters after reading.
pub const STATS_F_RESET: u32 = 1 << 0;

/// Names of the bottom-half mechanisms (§6.5), indexed by id.
pub const MECHANISM_NAMES: [&str; 20] = [
    "hardirq",
    "threaded",
    "tasklet",
    "tasklet_hi",
    "bh_wq",
    "bh_wq_highpri",
    "wq_system",
    "wq_highpri",
    "wq_unbound",
    "wq_dedicated",
    "kthread",
    "completion",
    "timer_list",
    "hrtimer",
    "wq_delayed",
    "kthread_msleep",
    "kthread_usleep",
    "wq_ordered",
    "wq_cpu_intensive",
    "user",
];
/// Number of mechanism ids.
pub const NUM_MECHANISMS: usize = MECHANISM_NAMES.len();

/// Errors decoding wire records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ThisError)]
pub enum Error {
    /// The buffer has the wrong length for the record.
    #[error("record length {got}, expected {expected}")]
    BadLength {
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}
fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Device configuration space (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Number of sources.
    pub num_sources: u16,
    /// Cap on the sum of all running sources' rates.
    pub max_rate_hz: u32,
    /// Size of the unacked-record table.
    pub max_outstanding: u32,
    /// Smallest accepted period / inter-burst gap.
    pub min_period_ns: u32,
    /// Largest accepted burst.
    pub max_burst: u32,
}

impl DeviceConfig {
    /// Encodes the 32-byte configuration space.
    pub fn encode(&self) -> [u8; CONFIG_SIZE] {
        let mut b = [0u8; CONFIG_SIZE];
        put_u32(&mut b, 0, MAGIC);
        put_u16(&mut b, 4, SPEC_VERSION);
        put_u16(&mut b, 6, self.num_sources);
        put_u32(&mut b, 8, self.max_rate_hz);
        put_u32(&mut b, 12, self.max_outstanding);
        put_u16(&mut b, 16, CTRL_REQ_SIZE as u16);
        put_u16(&mut b, 18, CTRL_RESP_SIZE as u16);
        put_u16(&mut b, 20, EVENT_SIZE as u16);
        put_u16(&mut b, 22, ACK_SIZE as u16);
        put_u32(&mut b, 24, self.min_period_ns);
        put_u32(&mut b, 28, self.max_burst);
        b
    }

    /// Decodes a configuration space (used by front ends and tests).
    pub fn decode(b: &[u8]) -> Result<(u32, u16, Self), Error> {
        check_len(b, CONFIG_SIZE)?;
        Ok((
            u32_at(b, 0),
            u16_at(b, 4),
            Self {
                num_sources: u16_at(b, 6),
                max_rate_hz: u32_at(b, 8),
                max_outstanding: u32_at(b, 12),
                min_period_ns: u32_at(b, 24),
                max_burst: u32_at(b, 28),
            },
        ))
    }
}

fn check_len(b: &[u8], expected: usize) -> Result<(), Error> {
    if b.len() != expected {
        return Err(Error::BadLength {
            got: b.len(),
            expected,
        });
    }
    Ok(())
}

/// Body of a CONFIGURE request (§6.1.2), raw values as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigureBody {
    /// Mode (0..=3).
    pub mode: u8,
    /// Jitter distribution (0..=2).
    pub jitter: u8,
    /// Events per due time (STORM).
    pub burst: u16,
    /// Mean events/s (STORM).
    pub rate_hz: u32,
    /// ONESHOT delay / PERIODIC period.
    pub period_ns: u64,
    /// Events after which the program ends (0 = no limit).
    pub count: u64,
    /// Program length (0 = no limit).
    pub duration_ns: u64,
    /// UNIFORM jitter bound.
    pub jitter_ns: u64,
    /// Records per notification.
    pub moderation_events: u32,
    /// Max notification delay.
    pub moderation_delay_us: u32,
    /// PRNG seed (0 = default).
    pub seed: u64,
}

/// A control request (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtrlReq {
    /// Raw opcode.
    pub opcode: u16,
    /// Source index or `SOURCE_ALL`.
    pub source: u16,
    /// Per-opcode flags.
    pub flags: u32,
    /// Raw 64 bytes (body at offset 8).
    pub raw: [u8; CTRL_REQ_SIZE],
}

impl CtrlReq {
    /// Decodes a 64-byte request.
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        check_len(b, CTRL_REQ_SIZE)?;
        let mut raw = [0u8; CTRL_REQ_SIZE];
        raw.copy_from_slice(b);
        Ok(Self {
            opcode: u16_at(b, 0),
            source: u16_at(b, 2),
            flags: u32_at(b, 4),
            raw,
        })
    }

    /// Builds a request with a zero body.
    pub fn new(opcode: u16, source: u16, flags: u32) -> Self {
        let mut raw = [0u8; CTRL_REQ_SIZE];
        put_u16(&mut raw, 0, opcode);
        put_u16(&mut raw, 2, source);
        put_u32(&mut raw, 4, flags);
        Self {
            opcode,
            source,
            flags,
            raw,
        }
    }

    /// The u64 at body offset 8 (START delay, PING guest_ns).
    pub fn arg_u64(&self) -> u64 {
        u64_at(&self.raw, 8)
    }

    /// Sets the u64 at offset 8.
    pub fn set_arg_u64(&mut self, v: u64) {
        put_u64(&mut self.raw, 8, v);
    }

    /// True if bytes `from..64` are all zero (reserved / unused body).
    pub fn zero_from(&self, from: usize) -> bool {
        self.raw[from.min(CTRL_REQ_SIZE)..].iter().all(|&x| x == 0)
    }

    /// Decodes the CONFIGURE body.
    pub fn configure_body(&self) -> ConfigureBody {
        let b = &self.raw;
        ConfigureBody {
            mode: b[8],
            jitter: b[9],
            burst: u16_at(b, 10),
            rate_hz: u32_at(b, 12),
            period_ns: u64_at(b, 16),
            count: u64_at(b, 24),
            duration_ns: u64_at(b, 32),
            jitter_ns: u64_at(b, 40),
            moderation_events: u32_at(b, 48),
            moderation_delay_us: u32_at(b, 52),
            seed: u64_at(b, 56),
        }
    }

    /// Builds a CONFIGURE request.
    pub fn configure(source: u16, c: &ConfigureBody) -> Self {
        let mut r = Self::new(Opcode::Configure as u16, source, 0);
        let b = &mut r.raw;
        b[8] = c.mode;
        b[9] = c.jitter;
        put_u16(b, 10, c.burst);
        put_u32(b, 12, c.rate_hz);
        put_u64(b, 16, c.period_ns);
        put_u64(b, 24, c.count);
        put_u64(b, 32, c.duration_ns);
        put_u64(b, 40, c.jitter_ns);
        put_u32(b, 48, c.moderation_events);
        put_u32(b, 52, c.moderation_delay_us);
        put_u64(b, 56, c.seed);
        r
    }
}

/// GET_INFO reply body (§6.1.1, reply offsets 16..40).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InfoBody {
    /// Number of sources.
    pub num_sources: u16,
    /// Spec version.
    pub spec_version: u16,
    /// Cap on the sum of running sources' rates.
    pub max_rate_hz: u32,
    /// Size of the unacked-record table.
    pub max_outstanding: u32,
    /// Smallest accepted period / gap.
    pub min_period_ns: u32,
    /// Largest accepted burst.
    pub max_burst: u32,
    /// Negotiated device feature bits 0..31.
    pub features_lo: u32,
}

/// STATS reply body (§6.1.1, reply offsets 16..64), summed over the sources named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsBody {
    /// Raises.
    pub raised: u64,
    /// Records written.
    pub records: u64,
    /// Raises merged into earlier records.
    pub coalesced: u64,
    /// Raises latched now.
    pub pending: u64,
    /// Records acknowledged.
    pub acked: u64,
    /// Device-wide guest input errors.
    pub malformed: u64,
}

/// A control reply (§6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtrlResp {
    /// Status code.
    pub status: u16,
    /// Echoed opcode.
    pub opcode: u16,
    /// Echoed source.
    pub source: u16,
    /// Host time the request was read.
    pub host_ns: u64,
    /// Body, reply offsets 16..64.
    pub body: [u8; 48],
}

impl CtrlResp {
    /// A reply with an empty body.
    pub fn new(status: Status, req: &CtrlReq, host_ns: u64) -> Self {
        Self {
            status: status as u16,
            opcode: req.opcode,
            source: req.source,
            host_ns,
            body: [0u8; 48],
        }
    }

    /// Puts a u16 at reply offset `off` (16..=62).
    pub fn put_u16(&mut self, off: usize, v: u16) {
        put_u16(&mut self.body, off - 16, v);
    }
    /// Puts a u32 at reply offset `off` (16..=60).
    pub fn put_u32(&mut self, off: usize, v: u32) {
        put_u32(&mut self.body, off - 16, v);
    }
    /// Puts a u64 at reply offset `off` (16..=56).
    pub fn put_u64(&mut self, off: usize, v: u64) {
        put_u64(&mut self.body, off - 16, v);
    }
    /// Reads a u16 at reply offset `off`.
    pub fn u16_at(&self, off: usize) -> u16 {
        u16_at(&self.body, off - 16)
    }
    /// Reads a u32 at reply offset `off`.
    pub fn u32_at(&self, off: usize) -> u32 {
        u32_at(&self.body, off - 16)
    }
    /// Reads a u64 at reply offset `off`.
    pub fn u64_at(&self, off: usize) -> u64 {
        u64_at(&self.body, off - 16)
    }

    /// Writes a GET_INFO body (§6.1.1).
    pub fn set_info(&mut self, i: &InfoBody) {
        self.put_u16(16, i.num_sources);
        self.put_u16(18, i.spec_version);
        self.put_u32(20, i.max_rate_hz);
        self.put_u32(24, i.max_outstanding);
        self.put_u32(28, i.min_period_ns);
        self.put_u32(32, i.max_burst);
        self.put_u32(36, i.features_lo);
    }
    /// Reads a GET_INFO body.
    pub fn info(&self) -> InfoBody {
        InfoBody {
            num_sources: self.u16_at(16),
            spec_version: self.u16_at(18),
            max_rate_hz: self.u32_at(20),
            max_outstanding: self.u32_at(24),
            min_period_ns: self.u32_at(28),
            max_burst: self.u32_at(32),
            features_lo: self.u32_at(36),
        }
    }
    /// Writes a STATS body (§6.1.1).
    pub fn set_stats(&mut self, c: &StatsBody) {
        self.put_u64(16, c.raised);
        self.put_u64(24, c.records);
        self.put_u64(32, c.coalesced);
        self.put_u64(40, c.pending);
        self.put_u64(48, c.acked);
        self.put_u64(56, c.malformed);
    }
    /// Reads a STATS body.
    pub fn stats(&self) -> StatsBody {
        StatsBody {
            raised: self.u64_at(16),
            records: self.u64_at(24),
            coalesced: self.u64_at(32),
            pending: self.u64_at(40),
            acked: self.u64_at(48),
            malformed: self.u64_at(56),
        }
    }
    /// Sets the u64 result at offset 16: START `t0`, STOP raised so far,
    /// PING `guest_ns` echo.
    pub fn set_result(&mut self, v: u64) {
        self.put_u64(16, v);
    }
    /// The u64 result at offset 16.
    pub fn result(&self) -> u64 {
        self.u64_at(16)
    }
    /// Sets PING's `host_send_ns` (offset 24).
    pub fn set_host_send_ns(&mut self, v: u64) {
        self.put_u64(24, v);
    }
    /// PING's `host_send_ns`.
    pub fn host_send_ns(&self) -> u64 {
        self.u64_at(24)
    }

    /// Encodes the 64-byte reply.
    pub fn encode(&self) -> [u8; CTRL_RESP_SIZE] {
        let mut b = [0u8; CTRL_RESP_SIZE];
        put_u16(&mut b, 0, self.status);
        put_u16(&mut b, 2, self.opcode);
        put_u16(&mut b, 4, self.source);
        put_u64(&mut b, 8, self.host_ns);
        b[16..].copy_from_slice(&self.body);
        b
    }

    /// Decodes a 64-byte reply.
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        check_len(b, CTRL_RESP_SIZE)?;
        let mut body = [0u8; 48];
        body.copy_from_slice(&b[16..]);
        Ok(Self {
            status: u16_at(b, 0),
            opcode: u16_at(b, 2),
            source: u16_at(b, 4),
            host_ns: u64_at(b, 8),
            body,
        })
    }
}

/// An event record (§6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventRecord {
    /// Device-wide record number.
    pub seq: u64,
    /// Per-source number of the last raise in the record.
    pub source_seq: u64,
    /// Due time of the first raise.
    pub due_ns: u64,
    /// Raise time of the first raise.
    pub raise_ns: u64,
    /// Time the record was written.
    pub write_ns: u64,
    /// Raises the record stands for.
    pub count: u32,
    /// Source index.
    pub source: u16,
    /// LATCHED / FINAL.
    pub flags: u16,
}

impl EventRecord {
    /// Encodes the 48-byte record.
    pub fn encode(&self) -> [u8; EVENT_SIZE] {
        let mut b = [0u8; EVENT_SIZE];
        put_u64(&mut b, 0, self.seq);
        put_u64(&mut b, 8, self.source_seq);
        put_u64(&mut b, 16, self.due_ns);
        put_u64(&mut b, 24, self.raise_ns);
        put_u64(&mut b, 32, self.write_ns);
        put_u32(&mut b, 40, self.count);
        put_u16(&mut b, 44, self.source);
        put_u16(&mut b, 46, self.flags);
        b
    }

    /// Decodes a 48-byte record.
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        check_len(b, EVENT_SIZE)?;
        Ok(Self {
            seq: u64_at(b, 0),
            source_seq: u64_at(b, 8),
            due_ns: u64_at(b, 16),
            raise_ns: u64_at(b, 24),
            write_ns: u64_at(b, 32),
            count: u32_at(b, 40),
            source: u16_at(b, 44),
            flags: u16_at(b, 46),
        })
    }
}

/// An ack record (§6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckRecord {
    /// The event record's seq.
    pub seq: u64,
    /// The event record's source.
    pub source: u16,
    /// Bottom-half mechanism id.
    pub mechanism: u8,
    /// [`ACK_F_FIRST`], [`ACK_F_PAST_BUDGET`].
    pub flags: u8,
    /// The event record's count.
    pub count: u32,
    /// Guest time of the hard IRQ.
    pub hardirq_ns: u64,
    /// Guest time the bottom half started.
    pub bh_start_ns: u64,
    /// Guest time the bottom half finished.
    pub bh_end_ns: u64,
    /// Guest time the ack was queued.
    pub post_ns: u64,
    /// Guest TSC at the hard IRQ (0: the guest has no usable TSC).
    pub hardirq_tsc: u64,
    /// Guest TSC when the bottom half started (0: none).
    pub bh_start_tsc: u64,
    /// Guest TSC when the bottom half finished (0: none).
    pub bh_end_tsc: u64,
    /// Guest CPU that took the hard IRQ.
    pub hard_cpu: u16,
    /// Guest CPU the bottom half ran the record on (when it began it).
    pub bh_cpu: u16,
    /// Delay mechanisms (§6.5), first record of a run: the delay (us) the
    /// timer, delayed work or sleep that ran it was asked for.
    pub delay_us: u32,
    /// Guest time that delay was armed (0: not a delay run's first record).
    pub armed_ns: u64,
}

impl AckRecord {
    /// Encodes the record.
    pub fn encode(&self) -> [u8; ACK_SIZE] {
        let mut b = [0u8; ACK_SIZE];
        put_u64(&mut b, 0, self.seq);
        put_u16(&mut b, 8, self.source);
        b[10] = self.mechanism;
        b[11] = self.flags;
        put_u32(&mut b, 12, self.count);
        put_u64(&mut b, 16, self.hardirq_ns);
        put_u64(&mut b, 24, self.bh_start_ns);
        put_u64(&mut b, 32, self.bh_end_ns);
        put_u64(&mut b, 40, self.post_ns);
        put_u64(&mut b, 48, self.hardirq_tsc);
        put_u64(&mut b, 56, self.bh_start_tsc);
        put_u64(&mut b, 64, self.bh_end_tsc);
        put_u16(&mut b, 72, self.hard_cpu);
        put_u16(&mut b, 74, self.bh_cpu);
        put_u32(&mut b, 76, self.delay_us);
        put_u64(&mut b, 80, self.armed_ns);
        b
    }

    /// Decodes a record.
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        check_len(b, ACK_SIZE)?;
        Ok(Self {
            seq: u64_at(b, 0),
            source: u16_at(b, 8),
            mechanism: b[10],
            flags: b[11],
            count: u32_at(b, 12),
            hardirq_ns: u64_at(b, 16),
            bh_start_ns: u64_at(b, 24),
            bh_end_ns: u64_at(b, 32),
            post_ns: u64_at(b, 40),
            hardirq_tsc: u64_at(b, 48),
            bh_start_tsc: u64_at(b, 56),
            bh_end_tsc: u64_at(b, 64),
            hard_cpu: u16_at(b, 72),
            bh_cpu: u16_at(b, 74),
            delay_us: u32_at(b, 76),
            armed_ns: u64_at(b, 80),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_layout() {
        let c = DeviceConfig {
            num_sources: 8,
            max_rate_hz: 0x0102_0304,
            max_outstanding: 16384,
            min_period_ns: 2000,
            max_burst: 1024,
        };
        let b = c.encode();
        assert_eq!(&b[0..4], b"IRQS");
        assert_eq!(u16_at(&b, 4), 4);
        assert_eq!(u16_at(&b, 6), 8);
        assert_eq!(&b[8..12], &[4, 3, 2, 1]);
        assert_eq!(u32_at(&b, 12), 16384);
        assert_eq!(
            [
                u16_at(&b, 16),
                u16_at(&b, 18),
                u16_at(&b, 20),
                u16_at(&b, 22)
            ],
            [64, 64, 48, 88]
        );
        assert_eq!(u32_at(&b, 24), 2000);
        assert_eq!(u32_at(&b, 28), 1024);
        let (magic, ver, d) = DeviceConfig::decode(&b).unwrap();
        assert_eq!((magic, ver, d), (MAGIC, SPEC_VERSION, c));
        assert!(DeviceConfig::decode(&b[..31]).is_err());
    }

    #[test]
    fn event_record_layout() {
        let r = EventRecord {
            seq: 1,
            source_seq: 2,
            due_ns: 3,
            raise_ns: 4,
            write_ns: 5,
            count: 6,
            source: 7,
            flags: EVT_F_LATCHED | EVT_F_FINAL,
        };
        let b = r.encode();
        assert_eq!(b[0], 1);
        assert_eq!(b[8], 2);
        assert_eq!(b[16], 3);
        assert_eq!(b[24], 4);
        assert_eq!(b[32], 5);
        assert_eq!(b[40], 6);
        assert_eq!(b[44], 7);
        assert_eq!(b[46], 3);
        assert_eq!(EventRecord::decode(&b).unwrap(), r);
        assert_eq!(
            EventRecord::decode(&b[..47]),
            Err(Error::BadLength {
                got: 47,
                expected: 48
            })
        );
    }

    #[test]
    fn ack_record_layout() {
        let a = AckRecord {
            seq: 0x1122_3344_5566_7788,
            source: 0x0a0b,
            mechanism: 4,
            flags: 0,
            count: 9,
            hardirq_ns: 10,
            bh_start_ns: 11,
            bh_end_ns: 12,
            post_ns: 13,
            hardirq_tsc: 14,
            bh_start_tsc: 15,
            bh_end_tsc: 16,
            hard_cpu: 0x0102,
            bh_cpu: 3,
            delay_us: 1000,
            armed_ns: 17,
        };
        let b = a.encode();
        assert_eq!(b.len(), 88);
        assert_eq!(b[0], 0x88);
        assert_eq!(b[7], 0x11);
        assert_eq!(&b[8..10], &[0x0b, 0x0a]);
        assert_eq!(b[10], 4);
        assert_eq!(b[12], 9);
        assert_eq!(b[16], 10);
        assert_eq!(b[24], 11);
        assert_eq!(b[32], 12);
        assert_eq!(b[40], 13);
        assert_eq!((b[48], b[56], b[64]), (14, 15, 16));
        assert_eq!((&b[72..74], b[74]), (&[0x02, 0x01][..], 3));
        assert_eq!((u32_at(&b, 76), b[80]), (1000, 17));
        assert_eq!(AckRecord::decode(&b).unwrap(), a);
    }

    #[test]
    fn reply_bodies_at_the_spec_offsets() {
        let req = CtrlReq::new(Opcode::GetInfo as u16, 0, 0);
        let mut r = CtrlResp::new(Status::Ok, &req, 1);
        let info = InfoBody {
            num_sources: 8,
            spec_version: SPEC_VERSION,
            max_rate_hz: 500_000,
            max_outstanding: 1024,
            min_period_ns: 2_000,
            max_burst: 64,
            features_lo: 0b11,
        };
        r.set_info(&info);
        let b = r.encode();
        assert_eq!(u16_at(&b, 16), 8);
        assert_eq!(u16_at(&b, 18), SPEC_VERSION);
        assert_eq!(u32_at(&b, 20), 500_000);
        assert_eq!(u32_at(&b, 24), 1024);
        assert_eq!(u32_at(&b, 28), 2_000);
        assert_eq!(u32_at(&b, 32), 64);
        assert_eq!(u32_at(&b, 36), 0b11);
        assert_eq!(CtrlResp::decode(&b).unwrap().info(), info);

        let mut r = CtrlResp::new(Status::Ok, &req, 1);
        let st = StatsBody {
            raised: 1,
            records: 2,
            coalesced: 3,
            pending: 4,
            acked: 5,
            malformed: 6,
        };
        r.set_stats(&st);
        let b = r.encode();
        for (i, off) in [16, 24, 32, 40, 48, 56].into_iter().enumerate() {
            assert_eq!(u64_at(&b, off), i as u64 + 1);
        }
        assert_eq!(CtrlResp::decode(&b).unwrap().stats(), st);

        let mut r = CtrlResp::new(Status::Ok, &req, 1);
        r.set_result(42);
        r.set_host_send_ns(43);
        let b = r.encode();
        assert_eq!((u64_at(&b, 16), u64_at(&b, 24)), (42, 43));
        let d = CtrlResp::decode(&b).unwrap();
        assert_eq!((d.result(), d.host_send_ns()), (42, 43));
    }

    #[test]
    fn ctrl_layouts() {
        let body = ConfigureBody {
            mode: 3,
            jitter: 2,
            burst: 4,
            rate_hz: 100_000,
            period_ns: 5,
            count: 6,
            duration_ns: 7,
            jitter_ns: 8,
            moderation_events: 9,
            moderation_delay_us: 10,
            seed: 11,
        };
        let r = CtrlReq::configure(3, &body);
        assert_eq!(r.raw[0], 2);
        assert_eq!(r.raw[2], 3);
        assert_eq!(r.raw[8], 3);
        assert_eq!(r.raw[9], 2);
        assert_eq!(r.raw[10], 4);
        assert_eq!(u32_at(&r.raw, 12), 100_000);
        assert_eq!(r.raw[16], 5);
        assert_eq!(r.raw[24], 6);
        assert_eq!(r.raw[32], 7);
        assert_eq!(r.raw[40], 8);
        assert_eq!(r.raw[48], 9);
        assert_eq!(r.raw[52], 10);
        assert_eq!(r.raw[56], 11);
        let d = CtrlReq::decode(&r.raw).unwrap();
        assert_eq!(d.configure_body(), body);
        assert!(CtrlReq::decode(&r.raw[..63]).is_err());

        let mut resp = CtrlResp::new(Status::Busy, &d, 77);
        resp.put_u64(16, 0xdead);
        resp.put_u32(36, 5);
        let b = resp.encode();
        assert_eq!(u16_at(&b, 0), 3);
        assert_eq!(u16_at(&b, 2), 2);
        assert_eq!(u16_at(&b, 4), 3);
        assert_eq!(u16_at(&b, 6), 0);
        assert_eq!(u64_at(&b, 8), 77);
        assert_eq!(u64_at(&b, 16), 0xdead);
        assert_eq!(u32_at(&b, 36), 5);
        assert_eq!(CtrlResp::decode(&b).unwrap(), resp);
    }
}
