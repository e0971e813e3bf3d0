// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! CALIBRATE (opcode 7, spec version 2, §6.1.3): the request and reply
//! bodies and the layout of the calibration page the driver hands the
//! device. The interval arithmetic on the results is `crate::timebase`.

use super::{put_u32, put_u64, u32_at, u64_at, CtrlReq, CtrlResp, Opcode, CTRL_REQ_SIZE};

/// The calibration page: 64 bytes, 64-byte aligned, in guest memory the
/// driver owns; every field is a naturally aligned little-endian u64 that
/// one side writes and the other reads (§6.1.3).
pub struct CalibrationPage;

impl CalibrationPage {
    /// Size of the page.
    pub const SIZE: usize = 64;
    /// Required alignment of its guest-physical address.
    pub const ALIGN: u64 = 64;
    /// Device: its TSC, rewritten in a tight loop.
    pub const HOST_TSC: u64 = 0;
    /// Device: 1 once its loop ended.
    pub const HOST_DONE: u64 = 8;
    /// Driver: its TSC, rewritten in a tight loop.
    pub const GUEST_TSC: u64 = 16;
    /// Driver: max over its loop of `host_tsc read - guest TSC after the
    /// read` (i64): a lower bound of `host TSC - guest TSC`.
    pub const GUEST_LOWER: u64 = 24;
    /// Driver: how many host values it read (its loop iterations that saw one).
    pub const GUEST_SAMPLES: u64 = 32;
    /// Driver: 1 once `GUEST_LOWER` and `GUEST_SAMPLES` are final.
    pub const GUEST_DONE: u64 = 40;
}

/// Shortest and longest device loop a request may ask for.
pub const CALIBRATE_MIN_US: u32 = 10;
/// See [`CALIBRATE_MIN_US`].
pub const CALIBRATE_MAX_US: u32 = 100_000;

/// A CALIBRATE request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalibrateRequest {
    /// Guest-physical address of the calibration page.
    pub page_addr: u64,
    /// How long the device runs its loop, in microseconds.
    pub duration_us: u32,
}

impl CalibrateRequest {
    /// Encodes the request (source 0, flags 0).
    pub fn encode(&self) -> CtrlReq {
        let mut r = CtrlReq::new(Opcode::Calibrate as u16, 0, 0);
        put_u64(&mut r.raw, 8, self.page_addr);
        put_u32(&mut r.raw, 16, self.duration_us);
        r
    }

    /// Reads the body of `r`, or `None` if a reserved byte (20..64) is set.
    pub fn decode(r: &CtrlReq) -> Option<Self> {
        r.raw[20..CTRL_REQ_SIZE]
            .iter()
            .all(|&b| b == 0)
            .then(|| Self {
                page_addr: u64_at(&r.raw, 8),
                duration_us: u32_at(&r.raw, 16),
            })
    }

    /// True if the device accepts these values (§6.1.3 checks).
    pub fn in_range(&self) -> bool {
        self.page_addr.is_multiple_of(CalibrationPage::ALIGN)
            && (CALIBRATE_MIN_US..=CALIBRATE_MAX_US).contains(&self.duration_us)
    }
}

/// What a calibration found (reply offset 60).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CalibrateResult {
    /// Both bounds measured.
    Ok = 0,
    /// The driver never wrote its TSC or never finished (no lower bound).
    NoGuest = 1,
    /// The host has no usable TSC (not x86_64, or its clocksource is not tsc).
    HostTscUnusable = 2,
    /// The page could not be accessed in guest memory.
    BadPage = 3,
}

impl CalibrateResult {
    /// Decodes a result code.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::NoGuest,
            2 => Self::HostTscUnusable,
            3 => Self::BadPage,
            _ => return None,
        })
    }

    /// Short name (stats and logs).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NoGuest => "no_guest",
            Self::HostTscUnusable => "host_tsc_unusable",
            Self::BadPage => "bad_page",
        }
    }
}

/// A CALIBRATE reply body (reply offsets 16..64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalibrateReply {
    /// Lower bound of `host TSC - guest TSC` (the driver's).
    pub lower: i64,
    /// Upper bound of `host TSC - guest TSC` (the device's).
    pub upper: i64,
    /// Host TSC in the middle of the device's loop.
    pub host_tsc_mid: u64,
    /// Device loop iterations that read a guest value.
    pub host_samples: u32,
    /// Driver loop iterations that read a host value.
    pub guest_samples: u32,
    /// Host TSC frequency the device converts with, in kHz.
    pub tsc_khz: u32,
    /// [`CalibrateResult`] code.
    pub result: u32,
}

impl CalibrateReply {
    /// Writes the body into `resp`.
    pub fn put(&self, resp: &mut CtrlResp) {
        resp.put_u64(16, self.lower as u64);
        resp.put_u64(24, self.upper as u64);
        resp.put_u64(32, self.host_tsc_mid);
        resp.put_u32(40, self.host_samples);
        resp.put_u32(44, self.guest_samples);
        resp.put_u32(48, self.tsc_khz);
        resp.put_u32(60, self.result);
    }

    /// Reads the body of `resp`.
    pub fn get(resp: &CtrlResp) -> Self {
        Self {
            lower: resp.u64_at(16) as i64,
            upper: resp.u64_at(24) as i64,
            host_tsc_mid: resp.u64_at(32),
            host_samples: resp.u32_at(40),
            guest_samples: resp.u32_at(44),
            tsc_khz: resp.u32_at(48),
            result: resp.u32_at(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn request_layout_and_checks() {
        let q = CalibrateRequest {
            page_addr: 0x1234_5640,
            duration_us: 2000,
        };
        let r = q.encode();
        assert_eq!(u16::from_le_bytes([r.raw[0], r.raw[1]]), 7);
        assert_eq!(u64_at(&r.raw, 8), 0x1234_5640);
        assert_eq!(u32_at(&r.raw, 16), 2000);
        assert_eq!(CalibrateRequest::decode(&r), Some(q));
        assert!(q.in_range());
        let mut bad = r;
        bad.raw[40] = 1;
        assert_eq!(CalibrateRequest::decode(&bad), None);
        let unaligned = CalibrateRequest {
            page_addr: 0x1234_5648,
            ..q
        };
        assert!(!unaligned.in_range());
        for us in [0, 9, 100_001] {
            assert!(!CalibrateRequest {
                duration_us: us,
                ..q
            }
            .in_range());
        }
    }

    #[test]
    fn reply_round_trips_with_negative_bounds() {
        let req = CalibrateRequest {
            page_addr: 0x40,
            duration_us: 10,
        }
        .encode();
        let mut resp = CtrlResp::new(Status::Ok, &req, 5);
        let c = CalibrateReply {
            lower: -1_000_123,
            upper: -999_900,
            host_tsc_mid: 77,
            host_samples: 5000,
            guest_samples: 4000,
            tsc_khz: 2_100_000,
            result: CalibrateResult::Ok as u32,
        };
        c.put(&mut resp);
        let back = CtrlResp::decode(&resp.encode()).unwrap();
        assert_eq!(CalibrateReply::get(&back), c);
        assert_eq!(back.u32_at(60), 0);
        assert_eq!(CalibrateResult::from_u32(3), Some(CalibrateResult::BadPage));
        assert_eq!(CalibrateResult::from_u32(4), None);
    }
}
