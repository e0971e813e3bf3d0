// SPDX-License-Identifier: GPL-2.0

//! Per-mechanism statistics: log2 histograms (ns) with 4 linear sub-buckets per power of two,
//! for hardirq -> bottom-half-start latency and bottom-half run time.

use crate::mech::{Mech, NUM_MECH};
use core::fmt;
use kernel::prelude::*;

pub(crate) const NBUCKETS: usize = 256;

/// Bucket of `v` ns: exact below 4, else (log2, top two bits after the leading one).
pub(crate) fn bucket(v: u64) -> usize {
    if v < 4 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros() as usize;
    let sub = ((v >> (msb - 2)) & 3) as usize;
    ((msb - 1) * 4 + sub).min(NBUCKETS - 1)
}

/// Smallest value of bucket `i`.
pub(crate) fn bucket_lo(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let msb = i / 4 + 1;
    let sub = (i % 4) as u64;
    (4 + sub) << (msb - 2)
}

/// Statistics of one mechanism for one origin (device or local reference source).
#[derive(Clone, Copy)]
pub(crate) struct MechStats {
    pub(crate) events: u64,
    pub(crate) raises: u64,
    pub(crate) lat_sum: u64,
    pub(crate) lat_min: u64,
    pub(crate) lat_max: u64,
    pub(crate) work_sum: u64,
    pub(crate) work_max: u64,
    pub(crate) lat: [u32; NBUCKETS],
    pub(crate) work: [u32; NBUCKETS],
}

impl MechStats {
    pub(crate) const ZERO: Self = Self {
        events: 0,
        raises: 0,
        lat_sum: 0,
        lat_min: u64::MAX,
        lat_max: 0,
        work_sum: 0,
        work_max: 0,
        lat: [0; NBUCKETS],
        work: [0; NBUCKETS],
    };

    pub(crate) fn record(&mut self, count: u32, lat: u64, work: u64) {
        self.events += 1;
        self.raises += u64::from(count);
        self.lat_sum += lat;
        self.lat_min = self.lat_min.min(lat);
        self.lat_max = self.lat_max.max(lat);
        self.work_sum += work;
        self.work_max = self.work_max.max(work);
        let b = bucket(lat);
        self.lat[b] = self.lat[b].saturating_add(1);
        let b = bucket(work);
        self.work[b] = self.work[b].saturating_add(1);
    }

    /// Upper bound (ns) of the bucket holding the `pct`-th percentile of the latency, capped
    /// at the observed maximum.
    pub(crate) fn lat_pct(&self, pct: u64) -> u64 {
        pct_of(&self.lat, self.events, pct).min(self.lat_max)
    }
}

fn pct_of(h: &[u32; NBUCKETS], n: u64, pct: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let want = (n * pct).div_ceil(100).max(1);
    let mut acc = 0u64;
    for (i, c) in h.iter().enumerate() {
        acc += u64::from(*c);
        if acc >= want {
            return if i + 1 < NBUCKETS { bucket_lo(i + 1) - 1 } else { u64::MAX };
        }
    }
    u64::MAX
}

/// Origin of an event: the device or the guest-local reference hrtimer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Device = 0,
    Local = 1,
}

/// All statistics (kept under one IRQ-safe spinlock in `Shared`).
pub(crate) struct Stats {
    table: KVVec<MechStats>,
}

impl Stats {
    pub(crate) fn new() -> Result<Self> {
        let mut table = KVVec::with_capacity(2 * NUM_MECH, GFP_KERNEL)?;
        for _ in 0..2 * NUM_MECH {
            table.push(MechStats::ZERO, GFP_KERNEL)?;
        }
        Ok(Self { table })
    }

    pub(crate) fn get(&self, o: Origin, m: Mech) -> &MechStats {
        &self.table[o as usize * NUM_MECH + m as usize]
    }

    pub(crate) fn get_mut(&mut self, o: Origin, m: Mech) -> &mut MechStats {
        &mut self.table[o as usize * NUM_MECH + m as usize]
    }

    /// Copies `src` into `self` (both have the same shape). Used to take a snapshot under the
    /// IRQ-safe lock and format it afterwards, so readers never format with IRQs off.
    pub(crate) fn copy_from(&mut self, src: &Stats) {
        for (d, s) in self.table.iter_mut().zip(src.table.iter()) {
            *d = *s;
        }
    }

    pub(crate) fn reset(&mut self) {
        for s in self.table.iter_mut() {
            *s = MechStats::ZERO;
        }
    }
}

/// One line per mechanism: counts and latency summary (ns).
pub(crate) fn write_summary(st: &Stats, o: Origin, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    // The percentiles here come from 25%-wide buckets: say so in the header. The exact
    // figures (HDR, 3 significant digits) are the host report's, built from the acks.
    writeln!(f, "# lat_p50_ub/lat_p99_ub: upper edges of 25%-wide buckets, not exact (host report: exact)")?;
    writeln!(
        f,
        "{:<14} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "mechanism", "events", "raises", "lat_min", "lat_avg", "lat_p50_ub", "lat_p99_ub", "lat_max",
        "work_avg"
    )?;
    for m in Mech::ALL {
        let s = st.get(o, m);
        if s.events == 0 {
            writeln!(f, "{:<14} {:>9} {:>9}", m.name(), 0, 0)?;
            continue;
        }
        writeln!(
            f,
            "{:<14} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9}",
            m.name(),
            s.events,
            s.raises,
            s.lat_min,
            s.lat_sum / s.events.max(1),
            s.lat_pct(50),
            s.lat_pct(99),
            s.lat_max,
            s.work_sum / s.events.max(1)
        )?;
    }
    Ok(())
}

/// rtla-style histogram text: one row per log2 bucket (lower bound in ns), one column per
/// mechanism with events, then count/min/avg/p50/p99/max footers.
pub(crate) fn write_hist(st: &Stats, o: Origin, work: bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mechs: KVec<Mech> = {
        let mut v = KVec::new();
        for m in Mech::ALL {
            if st.get(o, m).events > 0 && v.push(m, GFP_KERNEL).is_err() {
                return Err(fmt::Error);
            }
        }
        v
    };
    writeln!(
        f,
        "# irqstorm {} histogram ({}), log2 buckets in ns",
        if work { "bottom-half run time" } else { "hardirq->bh-start latency" },
        if o == Origin::Device { "device events" } else { "local reference source" }
    )?;
    write!(f, "{:>12}", "Index(ns)")?;
    for m in mechs.iter() {
        write!(f, " {:>13}", m.name())?;
    }
    writeln!(f)?;
    // Log2 row p merges the sub-buckets whose lower bound is in [2^p, 2^(p+1)).
    // On the heap: 7 KiB is too much for a kernel stack.
    let mut rows = KVec::from_elem([0u64; NUM_MECH], 64, GFP_KERNEL).map_err(|_| fmt::Error)?;
    for (j, m) in mechs.iter().enumerate() {
        let s = st.get(o, *m);
        let h = if work { &s.work } else { &s.lat };
        for (i, c) in h.iter().enumerate() {
            if *c > 0 {
                let lo = bucket_lo(i);
                let lp = if lo == 0 { 0 } else { 63 - lo.leading_zeros() as usize };
                rows[lp.min(63)][j] += u64::from(*c);
            }
        }
    }
    for (p, row) in rows.iter().enumerate() {
        let any = row.iter().any(|c| *c > 0);
        if any {
            write!(f, "{:>12}", 1u64 << p)?;
            for c in row.iter().take(mechs.len()) {
                write!(f, " {:>13}", c)?;
            }
            writeln!(f)?;
        }
    }
    let foot = |f: &mut fmt::Formatter<'_>, name: &str, g: &dyn Fn(&MechStats) -> u64| -> fmt::Result {
        write!(f, "{:>12}", name)?;
        for m in mechs.iter() {
            write!(f, " {:>13}", g(st.get(o, *m)))?;
        }
        writeln!(f)
    };
    if work {
        foot(f, "count:", &|s| s.events)?;
        foot(f, "avg:", &|s| s.work_sum / s.events.max(1))?;
        foot(f, "max:", &|s| s.work_max)?;
    } else {
        foot(f, "count:", &|s| s.events)?;
        foot(f, "min:", &|s| s.lat_min)?;
        foot(f, "avg:", &|s| s.lat_sum / s.events.max(1))?;
        foot(f, "p50:", &|s| s.lat_pct(50))?;
        foot(f, "p99:", &|s| s.lat_pct(99))?;
        foot(f, "max:", &|s| s.lat_max)?;
    }
    Ok(())
}

#[kernel::prelude::kunit_tests(irqstorm_stats)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_four_then_four_per_power_of_two() {
        for v in 0..4u64 {
            assert_eq!(bucket(v), v as usize);
            assert_eq!(bucket_lo(v as usize), v);
        }
        assert_eq!(bucket(4), 4);
        assert_eq!(bucket(5), 5);
        assert_eq!(bucket(7), 7);
        assert_eq!(bucket(8), 8);
        assert_eq!(bucket(9), 8);
        assert_eq!(bucket(10), 9);
        // The largest value lands in bucket 62 * 4 + 3: the `NBUCKETS - 1` cap is never hit.
        assert_eq!(bucket(u64::MAX), 62 * 4 + 3);
        assert!(bucket(u64::MAX) < NBUCKETS);
    }

    #[test]
    fn bucket_lo_is_the_smallest_value_of_its_bucket() {
        for i in 0..(62 * 4) {
            let lo = bucket_lo(i);
            assert_eq!(bucket(lo), i);
            if lo > 0 {
                assert!(bucket(lo - 1) < i);
            }
        }
    }

    #[test]
    fn percentiles_are_bucket_upper_bounds_capped_at_max() {
        let mut s = MechStats::ZERO;
        assert_eq!(s.lat_pct(50), 0);
        for lat in [1000u64, 1000, 1000, 5000] {
            s.record(2, lat, 10);
        }
        assert_eq!(s.events, 4);
        assert_eq!(s.raises, 8);
        assert_eq!(s.lat_min, 1000);
        assert_eq!(s.lat_max, 5000);
        let p50 = s.lat_pct(50);
        assert!(p50 >= 1000 && p50 < 5000);
        assert_eq!(p50, bucket_lo(bucket(1000) + 1) - 1);
        assert_eq!(s.lat_pct(99), 5000);
    }
}
