// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The host TSC: reads, whether it is usable as a time base, and its
//! frequency (docs/clock-offset.md, "TSC method").
//!
//! Usable means x86_64 and the kernel's clocksource is `tsc`: the kernel
//! then trusts it to be invariant and synchronized across cores, which the
//! calibration (a back-end thread on one core, a vCPU on another) needs.

use std::sync::OnceLock;
use std::time::Duration;

use crate::device::now_ns;

/// Host TSC (not ordered against earlier loads).
#[inline]
pub fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions and touches no memory; user
        // space may execute it (CR4.TSD is not set by Linux by default).
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Host TSC read after every earlier load completed (LFENCE; RDTSC), so the
/// stamp is no earlier than a value read just before it.
#[inline]
pub fn now_ordered() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: LFENCE and RDTSC have no preconditions and touch no memory
        // (SSE2 is part of the x86_64 baseline).
        unsafe {
            core::arch::x86_64::_mm_lfence();
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Why the host TSC cannot serve as a time base, if it cannot.
pub fn unusable_reason() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            if !cfg!(target_arch = "x86_64") {
                return Some("not x86_64".into());
            }
            let p = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
            match std::fs::read_to_string(p) {
                Ok(s) if s.trim() == "tsc" => None,
                Ok(s) => Some(format!("host clocksource is {:?}, not tsc", s.trim())),
                Err(e) => Some(format!("{p}: {e}")),
            }
        })
        .clone()
}

/// A TSC reading next to a `CLOCK_MONOTONIC` one, read as close together as
/// this thread can (the pair with the shortest TSC gap of a few tries).
fn pair() -> (u64, u64) {
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..5 {
        let a = now_ordered();
        let ns = now_ns();
        let b = now_ordered();
        if b.wrapping_sub(a) < best.0 {
            best = (b.wrapping_sub(a), a + (b - a) / 2, ns);
        }
    }
    (best.1, best.2)
}

/// The TSC frequency (Hz), measured against `CLOCK_MONOTONIC` from the
/// first call of this function (or of [`start`]) to now; the first call
/// waits 50 ms to have a span to measure over. 0 if the TSC is unusable.
pub fn hz() -> u64 {
    if unusable_reason().is_some() {
        return 0;
    }
    let (t0, n0) = start();
    let span = now_ns().saturating_sub(n0);
    if span < 50_000_000 {
        std::thread::sleep(Duration::from_nanos(50_000_000 - span));
    }
    let (t1, n1) = pair();
    let dn = n1.saturating_sub(n0);
    if dn == 0 {
        return 0;
    }
    (u128::from(t1.wrapping_sub(t0)) * 1_000_000_000 / u128::from(dn)) as u64
}

/// The reference pair [`hz`] measures from, taken on first use (the back
/// end calls it at start so the span is its whole lifetime).
pub fn start() -> (u64, u64) {
    static START: OnceLock<(u64, u64)> = OnceLock::new();
    *START.get_or_init(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_reads_do_not_go_backwards_on_one_thread() {
        if unusable_reason().is_some() {
            return;
        }
        let mut last = now_ordered();
        for _ in 0..10_000 {
            let t = now_ordered();
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn frequency_matches_the_monotonic_clock_within_a_percent() {
        if let Some(why) = unusable_reason() {
            eprintln!("skipped: {why}");
            return;
        }
        let hz = hz();
        // Measure 20 ms independently; a frequency off by more than 1 %
        // would be a unit error, not noise (no timing threshold on speed).
        let (t0, n0) = pair();
        std::thread::sleep(Duration::from_millis(20));
        let (t1, n1) = pair();
        let direct = (t1 - t0) as f64 * 1e9 / (n1 - n0) as f64;
        assert!((hz as f64 / direct - 1.0).abs() < 0.01, "{hz} vs {direct}");
    }
}
