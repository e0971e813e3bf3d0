// SPDX-License-Identifier: GPL-2.0

//! CALIBRATE (spec §6.1.3): the driver's half of the shared TSC time base.
//!
//! The driver owns a 64-byte page in DMA-coherent memory. It sends the request and, without
//! waiting for the reply, loops: stamp its TSC into `GUEST_TSC`, read `HOST_TSC`, stamp again
//! after the read (`lfence; rdtsc`). The host value was written before it was read, and the
//! second stamp is later than the read, so `host - stamp` is a lower bound of
//! `host TSC - guest TSC` by causality alone. The device does the mirror image (the upper
//! bound) and answers with both once the driver has written its result.

use crate::{
    kwrap::clock::{now_ns, tsc, tsc_ordered, HAVE_TSC},
    protocol::*,
    shared::Shared,
};
use kernel::{
    device::{Bound, Device},
    dma::Coherent,
    io::{io_read, io_write},
    prelude::*,
    sync::{
        atomic::Relaxed,
        barrier::{smp_mb, Write},
    },
};

/// Loop length of a calibration at probe and of `calibrate` without an argument.
pub(crate) const DEFAULT_US: u32 = 2000;
/// How much longer than the device's loop the driver's may run before it gives up waiting
/// for `HOST_DONE` (the device may start late: it serves the controlq between other work).
const SLACK_NS: u64 = 200_000_000;
/// Loop iterations between two looks at the clock and the control reply.
const CHECK_EVERY: u64 = 256;
/// Calibrations tried at most per request while the result is `no_guest`.
const ATTEMPTS: u32 = 3;

/// The calibration page (64 bytes; `dma_alloc_coherent` memory is page aligned).
pub(crate) struct CalPage {
    mem: Coherent<[u64]>,
}

impl CalPage {
    pub(crate) fn new(dev: &Device<Bound>) -> Result<Self> {
        let mem = Coherent::<u64>::zeroed_slice(dev, CAL_PAGE_WORDS, GFP_KERNEL)?;
        if mem.dma_address() % CAL_PAGE_SIZE as u64 != 0 {
            pr_err!("calibration page at {:#x} is not 64-byte aligned\n", mem.dma_address());
            return Err(EINVAL);
        }
        Ok(Self { mem })
    }

    /// The u64 field at byte offset `off` (volatile).
    fn load(&self, off: usize) -> Result<u64> {
        Ok(io_read!(self.mem, [try: off / 8]))
    }

    fn store(&self, off: usize, v: u64) -> Result {
        io_write!(self.mem, [try: off / 8], v);
        Ok(())
    }

    fn zero(&self) -> Result {
        for k in 0..CAL_PAGE_WORDS {
            io_write!(self.mem, [try: k], 0u64);
        }
        Ok(())
    }
}

/// Iterations of [`reorder_spacer`].
const SPACER_ITERATIONS: u64 = 24;

/// Work between the load of `HOST_TSC` and the stamp after it. Under TCG the guest's
/// `lfence; rdtsc` is a call to QEMU's RDTSC helper, and nothing in the translated code
/// orders the host RDTSC after the guest's load: it ran ahead of it, inflating the lower
/// bound by up to a few hundred ticks (calibrations whose bounds crossed by 52-884 ticks).
/// This loop translates to well over a host reorder buffer of instructions, so the load has
/// retired before the RDTSC can issue; on hardware (KVM) `lfence` alone orders it and the
/// loop only costs its few nanoseconds of bound.
#[inline(never)]
fn reorder_spacer(v: u64) -> u64 {
    let mut x = v;
    for i in 0..SPACER_ITERATIONS {
        x = core::hint::black_box(x.wrapping_add(i));
    }
    x
}

/// The driver's lower bound after one more sample: the host wrote `h` before the guest read
/// it, and the guest stamped `g2` after that read, so at the read host TSC >= `h` and guest
/// TSC <= `g2`: `host - guest >= h - g2`. Saturates instead of wrapping (as the device's clamp).
pub(crate) fn raise_lower(lower: i64, h: u64, g2: u64) -> i64 {
    let d = (i128::from(h) - i128::from(g2)).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    lower.max(d as i64)
}

/// What the driver's loop found (the last three only for the log of a failed one).
struct GuestHalf {
    lower: i64,
    samples: u64,
    /// The loop ended on `HOST_DONE` (not on the timeout or an early reply).
    host_done: bool,
    iterations: u64,
    /// ns from the loop's start to the first non-zero `HOST_TSC` (0: none) and to its end.
    first_host_ns: u64,
    loop_ns: u64,
}

impl Shared {
    /// Runs one calibration of `duration_us` (10..=100000) and logs its result. Process
    /// context. `EOPNOTSUPP` without a TSC (nothing is sent).
    ///
    /// A `no_guest` result is tried again, up to `ATTEMPTS` in all: the device's window is
    /// fixed, and a vCPU the host does not run during it (a loaded host, TCG) leaves the
    /// device without a single guest value. Every attempt is counted and logged (and the
    /// device logs each in its `time_base`).
    pub(crate) fn calibrate(&self, duration_us: u32) -> Result<CalibrateReply> {
        if !HAVE_TSC {
            return Err(EOPNOTSUPP);
        }
        if !(CAL_MIN_US..=CAL_MAX_US).contains(&duration_us) {
            return Err(ERANGE);
        }
        let mut attempt = 1;
        loop {
            let r = self.calibrate_logged(duration_us, attempt);
            match r {
                Ok(c) if c.result == CAL_NO_GUEST && attempt < ATTEMPTS => attempt += 1,
                r => return r,
            }
        }
    }

    fn calibrate_logged(&self, duration_us: u32, attempt: u32) -> Result<CalibrateReply> {
        self.cnt.calibrations.add(1, Relaxed);
        let dev: &Device = self.pdev.as_ref();
        let r = self.calibrate_once(duration_us);
        match &r {
            Ok((c, _)) if c.result == CAL_OK => {
                // Ticks to ns with the device's frequency (kHz): ticks * 10^6 / kHz.
                let bound_ns = c.bound_ticks().saturating_mul(1_000_000) / u64::from(c.tsc_khz.max(1));
                dev_info!(
                    dev,
                    "calibration {} us: ok, host-guest TSC offset {} +/- {} ticks (~{} ns), lower {} upper {}, samples host {} guest {}, tsc {} kHz\n",
                    duration_us,
                    c.offset(),
                    c.bound_ticks(),
                    bound_ns,
                    c.lower,
                    c.upper,
                    c.host_samples,
                    c.guest_samples,
                    c.tsc_khz
                );
            }
            Ok((c, h)) => {
                self.cnt.calibration_errors.add(1, Relaxed);
                dev_warn!(
                    dev,
                    "calibration {} us (attempt {} of {}): {}, device samples {}; driver loop {} iterations, {} host values (first after {} us), {} us, HOST_DONE {}\n",
                    duration_us,
                    attempt,
                    ATTEMPTS,
                    cal_result_name(c.result),
                    c.host_samples,
                    h.iterations,
                    h.samples,
                    h.first_host_ns / 1000,
                    h.loop_ns / 1000,
                    if h.host_done { "seen" } else { "not seen" }
                );
            }
            Err(e) => {
                self.cnt.calibration_errors.add(1, Relaxed);
                dev_warn!(dev, "calibration {} us failed: {:?}\n", duration_us, e);
            }
        }
        r.map(|(c, _)| c)
    }

    fn calibrate_once(&self, duration_us: u32) -> Result<(CalibrateReply, GuestHalf)> {
        // Held for the whole calibration: the page is zeroed, then shared with the device.
        let page = self.control.cal.lock();
        page.zero()?;
        let req = calibrate_request(page.mem.dma_address(), duration_us);
        let mut half = Err(EINVAL);
        let reply = self.ctrl_during(&req, || half = self.guest_loop(&page, duration_us))?;
        Ok((CalibrateReply::decode(&reply), half?))
    }

    /// The driver's loop (§6.1.3), bounded by the device's loop length plus `SLACK_NS`; it
    /// also ends early if the reply arrived (the device refused, or runs no loop).
    fn guest_loop(&self, page: &CalPage, duration_us: u32) -> Result<GuestHalf> {
        let t0 = now_ns();
        let deadline = t0 + u64::from(duration_us) * 1000 + SLACK_NS;
        let mut h =
            GuestHalf { lower: i64::MIN, samples: 0, host_done: false, iterations: 0, first_host_ns: 0, loop_ns: 0 };
        let mut k = 0u64;
        loop {
            page.store(CAL_GUEST_TSC, tsc())?;
            let host = page.load(CAL_HOST_TSC)?;
            reorder_spacer(host);
            // Executed only after the load above has completed.
            let g2 = tsc_ordered();
            if host != 0 {
                if h.samples == 0 {
                    h.first_host_ns = now_ns() - t0;
                }
                h.lower = raise_lower(h.lower, host, g2);
                h.samples += 1;
            }
            if page.load(CAL_HOST_DONE)? != 0 {
                h.host_done = true;
                break;
            }
            k = k.wrapping_add(1);
            if k % CHECK_EVERY == 0 && (now_ns() >= deadline || self.control.replied() || self.is_stopping()) {
                break;
            }
        }
        h.iterations = k;
        h.loop_ns = now_ns() - t0;
        page.store(CAL_GUEST_LOWER, h.lower as u64)?;
        page.store(CAL_GUEST_SAMPLES, h.samples)?;
        // GUEST_DONE last: the device reads the other two once it sees it.
        smp_mb(Write);
        page.store(CAL_GUEST_DONE, 1)?;
        Ok(h)
    }
}

#[kernel::prelude::kunit_tests(irqstorm_calibrate)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_bound_only_rises() {
        let mut l = i64::MIN;
        // Host 1000 read, guest stamped 1500 after: offset >= -500.
        l = raise_lower(l, 1000, 1500);
        assert_eq!(l, -500);
        // A looser sample leaves it.
        l = raise_lower(l, 1000, 1900);
        assert_eq!(l, -500);
        // A tighter one raises it, also across zero.
        l = raise_lower(l, 2000, 1990);
        assert_eq!(l, 10);
    }

    #[test]
    fn the_lower_bound_saturates_instead_of_wrapping() {
        assert_eq!(raise_lower(i64::MIN, 0, u64::MAX), i64::MIN);
        assert_eq!(raise_lower(i64::MIN, u64::MAX, 0), i64::MAX);
        // A guest TSC far ahead of the host: a large negative offset.
        let ahead = 1u64 << 62;
        assert_eq!(raise_lower(i64::MIN, 5, ahead + 5), -(ahead as i64));
    }
}
