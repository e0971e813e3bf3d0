// SPDX-License-Identifier: GPL-2.0

//! Wire format of the irqstorm device (docs/device-spec.md §3-§6). Offsets are normative.
//!
//! Records are handled as arrays of little-endian `u64` words in DMA memory (x86 is LE).

/// Feature bits (§3).
pub(crate) const F_MODERATION: u64 = 1 << 0;
pub(crate) const F_FAULT_INJECT: u64 = 1 << 1;
pub(crate) const F_EVENT_IDX: u64 = 1 << 29;
pub(crate) const F_VERSION_1: u64 = 1 << 32;

/// Virtqueue indices (§2).
pub(crate) const VQ_CONTROL: u16 = 0;
pub(crate) const VQ_EVENT: u16 = 1;
pub(crate) const VQ_ACK: u16 = 2;

/// Device configuration (§4).
pub(crate) const CFG_MAGIC: usize = 0;
pub(crate) const CFG_SPEC_VERSION: usize = 4;
pub(crate) const CFG_NUM_SOURCES: usize = 6;
pub(crate) const CFG_MAX_RATE_HZ: usize = 8;
pub(crate) const CFG_MAX_OUTSTANDING: usize = 12;
pub(crate) const CFG_CTRL_REQ_SIZE: usize = 16;
pub(crate) const CFG_CTRL_RESP_SIZE: usize = 18;
pub(crate) const CFG_EVENT_SIZE: usize = 20;
pub(crate) const CFG_ACK_SIZE: usize = 22;
pub(crate) const CFG_MIN_PERIOD_NS: usize = 24;
pub(crate) const CFG_MAX_BURST: usize = 28;
pub(crate) const MAGIC: u32 = 0x5351_5249;
/// Spec version 4 (§4 version history): mechanisms 17-19.
pub(crate) const SPEC_VERSION: u16 = 4;
pub(crate) const MAX_SOURCES: usize = 64;

pub(crate) const CTRL_SIZE: usize = 64;
pub(crate) const EVENT_SIZE: usize = 48;
/// 48 in spec version 1; version 2 added the three TSC stamps.
pub(crate) const ACK_SIZE: usize = 88;
pub(crate) const EVENT_WORDS: usize = EVENT_SIZE / 8;
pub(crate) const ACK_WORDS: usize = ACK_SIZE / 8;
pub(crate) const CTRL_WORDS: usize = CTRL_SIZE / 8;
/// Ack records per ackq buffer (§2: 1..=64).
pub(crate) const ACKS_PER_BUF: usize = 64;
/// Ack `flags` (§6.4): the first record a bottom-half run processed after it was scheduled;
/// its `bh_start` stamps are the run's own start (hard IRQ -> bottom half, per interrupt).
pub(crate) const ACK_F_FIRST: u8 = 1;
/// Ack `flags`: drained by the IRQ thread past the hard IRQ's budget (stamps of that IRQ).
pub(crate) const ACK_F_CANCELLED: u8 = 1 << 2;
pub(crate) const ACK_F_PAST_BUDGET: u8 = 2;

/// Control opcodes (§6.1.1).
pub(crate) const OP_GET_INFO: u16 = 1;
pub(crate) const OP_CONFIGURE: u16 = 2;
pub(crate) const OP_START: u16 = 3;
pub(crate) const OP_STOP: u16 = 4;
pub(crate) const OP_STATS: u16 = 5;
pub(crate) const OP_PING: u16 = 6;
pub(crate) const OP_CALIBRATE: u16 = 7;
pub(crate) const SOURCE_ALL: u16 = 0xffff;

/// Program modes (§5.1).
pub(crate) const MODE_ONESHOT: u8 = 1;
pub(crate) const MODE_PERIODIC: u8 = 2;
pub(crate) const MODE_STORM: u8 = 3;

/// Control status (§6.2) -> errno for callers.
pub(crate) fn status_to_result(status: u16) -> kernel::error::Result {
    use kernel::error::code::*;
    match status {
        0 => Ok(()),
        1 => Err(EINVAL),
        2 => Err(ERANGE),
        3 => Err(EBUSY),
        4 => Err(EOPNOTSUPP),
        _ => Err(EIO),
    }
}

pub(crate) fn status_name(status: u16) -> &'static str {
    match status {
        0 => "OK",
        1 => "INVALID",
        2 => "OUT_OF_RANGE",
        3 => "BUSY",
        4 => "UNSUPPORTED",
        _ => "?",
    }
}

/// Event record flags (§6.3).
pub(crate) const EV_LATCHED: u16 = 1 << 0;
pub(crate) const EV_FINAL: u16 = 1 << 1;

/// A decoded event record (§6.3).
/// (`due_ns`, `raise_ns`, `write_ns` are host stamps, decoded but not used by the guest.)
#[allow(dead_code)]
#[derive(Clone, Copy, Default)]
pub(crate) struct EventRecord {
    pub(crate) seq: u64,
    pub(crate) source_seq: u64,
    pub(crate) due_ns: u64,
    pub(crate) raise_ns: u64,
    pub(crate) write_ns: u64,
    pub(crate) count: u32,
    pub(crate) source: u16,
    pub(crate) flags: u16,
}

impl EventRecord {
    pub(crate) fn decode(w: &[u64; EVENT_WORDS]) -> Self {
        Self {
            seq: w[0],
            source_seq: w[1],
            due_ns: w[2],
            raise_ns: w[3],
            write_ns: w[4],
            count: w[5] as u32,
            source: (w[5] >> 32) as u16,
            flags: (w[5] >> 48) as u16,
        }
    }
}

/// An ack record (§6.4).
#[derive(Clone, Copy, Default)]
pub(crate) struct AckRecord {
    pub(crate) seq: u64,
    pub(crate) source: u16,
    pub(crate) mechanism: u8,
    /// `ACK_F_*`.
    pub(crate) flags: u8,
    pub(crate) count: u32,
    pub(crate) hardirq_ns: u64,
    pub(crate) bh_start_ns: u64,
    pub(crate) bh_end_ns: u64,
    pub(crate) post_ns: u64,
    /// Guest TSC at the hard IRQ, the bottom half's start and end (0 = no usable TSC).
    pub(crate) hardirq_tsc: u64,
    pub(crate) bh_start_tsc: u64,
    pub(crate) bh_end_tsc: u64,
    /// The CPU of the hard IRQ, and the one the bottom half began the record on (spec 3).
    pub(crate) hard_cpu: u16,
    pub(crate) bh_cpu: u16,
    /// Delay mechanisms, a run's first record: the delay asked for (us) and when it was armed
    /// (guest ns; 0 = none).
    pub(crate) delay_us: u32,
    pub(crate) armed_ns: u64,
}

impl AckRecord {
    pub(crate) fn encode(&self) -> [u64; ACK_WORDS] {
        [
            self.seq,
            u64::from(self.source)
                | u64::from(self.mechanism) << 16
                | u64::from(self.flags) << 24
                | u64::from(self.count) << 32,
            self.hardirq_ns,
            self.bh_start_ns,
            self.bh_end_ns,
            self.post_ns,
            self.hardirq_tsc,
            self.bh_start_tsc,
            self.bh_end_tsc,
            u64::from(self.hard_cpu) | u64::from(self.bh_cpu) << 16 | u64::from(self.delay_us) << 32,
            self.armed_ns,
        ]
    }
}

/// A control request (§6.1): 8 words.
#[derive(Clone, Copy, Default)]
pub(crate) struct CtrlRequest {
    pub(crate) words: [u64; CTRL_WORDS],
}

impl CtrlRequest {
    pub(crate) fn new(opcode: u16, source: u16, flags: u32) -> Self {
        let mut r = Self::default();
        r.words[0] = u64::from(opcode) | u64::from(source) << 16 | u64::from(flags) << 32;
        r
    }
}

/// CONFIGURE body (§6.1.2).
#[derive(Clone, Copy, Default)]
pub(crate) struct Program {
    pub(crate) mode: u8,
    pub(crate) jitter: u8,
    pub(crate) burst: u16,
    pub(crate) rate_hz: u32,
    pub(crate) period_ns: u64,
    pub(crate) count: u64,
    pub(crate) duration_ns: u64,
    pub(crate) jitter_ns: u64,
    pub(crate) moderation_events: u32,
    pub(crate) moderation_delay_us: u32,
    pub(crate) seed: u64,
}

impl Program {
    pub(crate) fn to_request(self, source: u16) -> CtrlRequest {
        let mut r = CtrlRequest::new(OP_CONFIGURE, source, 0);
        r.words[1] = u64::from(self.mode)
            | u64::from(self.jitter) << 8
            | u64::from(self.burst) << 16
            | u64::from(self.rate_hz) << 32;
        r.words[2] = self.period_ns;
        r.words[3] = self.count;
        r.words[4] = self.duration_ns;
        r.words[5] = self.jitter_ns;
        r.words[6] = u64::from(self.moderation_events) | u64::from(self.moderation_delay_us) << 32;
        r.words[7] = self.seed;
        r
    }
}

/// A control reply (§6.2).
#[derive(Clone, Copy, Default)]
pub(crate) struct CtrlReply {
    pub(crate) words: [u64; CTRL_WORDS],
    /// Guest time of the hard IRQ that took the reply off the used ring (not
    /// part of the wire record): a PING's t4, free of wake-up and user-space
    /// delays that would bias the clock-offset estimate.
    pub(crate) recv_ns: u64,
}

impl CtrlReply {
    pub(crate) fn status(&self) -> u16 {
        self.words[0] as u16
    }
    pub(crate) fn opcode(&self) -> u16 {
        (self.words[0] >> 16) as u16
    }
    /// Body word at reply byte offset `off` (16, 24, ... 56).
    pub(crate) fn word(&self, off: usize) -> u64 {
        self.words[off / 8]
    }
}

/// CALIBRATE (§6.1.3): the 64-byte calibration page, as byte offsets of its u64 fields.
pub(crate) const CAL_PAGE_SIZE: usize = 64;
pub(crate) const CAL_PAGE_WORDS: usize = CAL_PAGE_SIZE / 8;
/// Device writes its TSC here in a tight loop.
pub(crate) const CAL_HOST_TSC: usize = 0;
/// Device writes 1 once its loop ended.
pub(crate) const CAL_HOST_DONE: usize = 8;
/// Driver writes its TSC here in a tight loop.
pub(crate) const CAL_GUEST_TSC: usize = 16;
/// Driver: its lower bound of `host TSC - guest TSC` (i64).
pub(crate) const CAL_GUEST_LOWER: usize = 24;
/// Driver: how many host values its loop read.
pub(crate) const CAL_GUEST_SAMPLES: usize = 32;
/// Driver writes 1 last, once `GUEST_LOWER` and `GUEST_SAMPLES` are final.
pub(crate) const CAL_GUEST_DONE: usize = 40;
/// Accepted `duration_us` range.
pub(crate) const CAL_MIN_US: u32 = 10;
pub(crate) const CAL_MAX_US: u32 = 100_000;

/// A CALIBRATE request: 8: u64 `page_addr` (DMA address, 64-byte aligned), 16: u32
/// `duration_us`, bytes 20..63 zero, source 0, flags 0.
pub(crate) fn calibrate_request(page_addr: u64, duration_us: u32) -> CtrlRequest {
    let mut r = CtrlRequest::new(OP_CALIBRATE, 0, 0);
    r.words[1] = page_addr;
    r.words[2] = u64::from(duration_us);
    r
}

/// CALIBRATE result codes (reply offset 60).
pub(crate) const CAL_OK: u32 = 0;
pub(crate) const CAL_NO_GUEST: u32 = 1;

pub(crate) fn cal_result_name(result: u32) -> &'static str {
    match result {
        0 => "ok",
        1 => "no_guest",
        2 => "host_tsc_unusable",
        3 => "bad_page",
        _ => "?",
    }
}

/// A decoded CALIBRATE reply body (§6.1.3). `lower..=upper` bounds `host TSC - guest TSC`
/// (ticks) around host TSC `host_tsc_mid`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct CalibrateReply {
    pub(crate) lower: i64,
    pub(crate) upper: i64,
    pub(crate) host_tsc_mid: u64,
    pub(crate) host_samples: u32,
    pub(crate) guest_samples: u32,
    pub(crate) tsc_khz: u32,
    pub(crate) result: u32,
}

impl CalibrateReply {
    /// Reply offsets 16 lower, 24 upper, 32 host_tsc_mid, 40 host_samples, 44 guest_samples,
    /// 48 tsc_khz, 60 result.
    pub(crate) fn decode(r: &CtrlReply) -> Self {
        Self {
            lower: r.word(16) as i64,
            upper: r.word(24) as i64,
            host_tsc_mid: r.word(32),
            host_samples: r.word(40) as u32,
            guest_samples: (r.word(40) >> 32) as u32,
            tsc_khz: r.word(48) as u32,
            result: (r.word(56) >> 32) as u32,
        }
    }

    /// The midpoint of the interval (rounded towards minus infinity), as the host's fit.
    /// (Shifts, not `/ 2`: an i128 division may need a libcall the kernel does not have.)
    pub(crate) fn offset(&self) -> i64 {
        ((i128::from(self.lower) + i128::from(self.upper)) >> 1) as i64
    }

    /// Half the width, rounded up: `|offset - true offset| <= bound_ticks` (0 if crossed).
    pub(crate) fn bound_ticks(&self) -> u64 {
        let w = i128::from(self.upper) - i128::from(self.lower);
        ((w + 1) >> 1).max(0) as u64
    }
}

#[kernel::prelude::kunit_tests(irqstorm_protocol)]
mod tests {
    use super::*;

    #[test]
    fn event_record_decodes_the_packed_word() {
        let w = [7, 9, 100, 200, 300, 3 | 5 << 32 | (EV_LATCHED as u64 | EV_FINAL as u64) << 48];
        let r = EventRecord::decode(&w);
        assert_eq!(r.seq, 7);
        assert_eq!(r.source_seq, 9);
        assert_eq!(r.due_ns, 100);
        assert_eq!(r.raise_ns, 200);
        assert_eq!(r.write_ns, 300);
        assert_eq!(r.count, 3);
        assert_eq!(r.source, 5);
        assert_eq!(r.flags, EV_LATCHED | EV_FINAL);
    }

    #[test]
    fn ack_record_encodes_source_mechanism_count() {
        let a = AckRecord {
            seq: 1,
            source: 2,
            mechanism: 13,
            flags: ACK_F_FIRST | ACK_F_PAST_BUDGET,
            count: 4,
            hardirq_ns: 5,
            bh_start_ns: 6,
            bh_end_ns: 7,
            post_ns: 8,
            hardirq_tsc: 9,
            bh_start_tsc: 10,
            bh_end_tsc: 11,
            hard_cpu: 1,
            bh_cpu: 3,
            delay_us: 1000,
            armed_ns: 12,
        };
        // Flags at byte 11 (bits 24..32 of word 1); TSC stamps at byte offsets 48, 56, 64
        // (§6.4): words 6, 7, 8; the CPUs at bytes 72 and 74 and the delay at 76: word 9;
        // armed_ns at 80: word 10.
        assert_eq!(
            a.encode(),
            [1, 2 | 13 << 16 | 3 << 24 | 4 << 32, 5, 6, 7, 8, 9, 10, 11, 1 | 3 << 16 | 1000 << 32, 12]
        );
        assert_eq!(ACK_WORDS * 8, 88);
    }

    #[test]
    fn control_request_and_program_layout() {
        let r = CtrlRequest::new(OP_STATS, SOURCE_ALL, 1);
        assert_eq!(r.words[0], 5 | 0xffff << 16 | 1 << 32);
        let p = Program { mode: MODE_STORM, jitter: 2, burst: 4, rate_hz: 10_000, ..Default::default() };
        let q = p.to_request(1);
        assert_eq!(q.words[0], u64::from(OP_CONFIGURE) | 1 << 16);
        assert_eq!(q.words[1], 3 | 2 << 8 | 4 << 16 | 10_000 << 32);
    }

    #[test]
    fn calibrate_request_layout() {
        let r = calibrate_request(0x1234_5640, 2000);
        assert_eq!(r.words[0], 7);
        assert_eq!(r.words[1], 0x1234_5640);
        assert_eq!(r.words[2], 2000);
        assert!(r.words[3..].iter().all(|&w| w == 0));
    }

    #[test]
    fn calibrate_reply_decodes_negative_bounds() {
        let mut r = CtrlReply::default();
        r.words[0] = u64::from(OP_CALIBRATE) << 16;
        r.words[2] = (-1_000_123i64) as u64;
        r.words[3] = (-999_900i64) as u64;
        r.words[4] = 77;
        r.words[5] = 5000 | 4000 << 32;
        r.words[6] = 2_100_000;
        r.words[7] = 3 << 32;
        let c = CalibrateReply::decode(&r);
        assert_eq!(c.lower, -1_000_123);
        assert_eq!(c.upper, -999_900);
        assert_eq!(c.host_tsc_mid, 77);
        assert_eq!((c.host_samples, c.guest_samples), (5000, 4000));
        assert_eq!(c.tsc_khz, 2_100_000);
        assert_eq!(cal_result_name(c.result), "bad_page");
        // Midpoint and half width, as the host's `Interval`.
        assert_eq!(c.offset(), -1_000_012);
        assert_eq!(c.bound_ticks(), 112);
        let crossed = CalibrateReply { lower: 5, upper: 3, ..c };
        assert_eq!(crossed.bound_ticks(), 0);
        assert_eq!(CalibrateReply { lower: -3, upper: 0, ..c }.offset(), -2);
    }

    #[test]
    fn status_codes() {
        assert!(status_to_result(0).is_ok());
        assert!(status_to_result(1) == Err(kernel::error::code::EINVAL));
        assert!(status_to_result(2) == Err(kernel::error::code::ERANGE));
        assert!(status_to_result(3) == Err(kernel::error::code::EBUSY));
        assert!(status_to_result(4) == Err(kernel::error::code::EOPNOTSUPP));
        assert!(status_to_result(9) == Err(kernel::error::code::EIO));
        assert_eq!(status_name(2), "OUT_OF_RANGE");
        assert_eq!(status_name(9), "?");
    }
}
