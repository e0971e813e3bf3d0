// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The shared TSC time base (docs/clock-offset.md, "TSC method"): interval
//! arithmetic on CALIBRATE results and the linear fit the device converts
//! guest TSC stamps with.
//!
//! A calibration bounds `host TSC - guest TSC` at one host instant by
//! causality alone (each side reads the other's freshest TSC and stamps its
//! own after the read), so `[lower, upper]` holds whatever the delays were.
//! Between calibrations the relation is assumed linear (a constant offset
//! under TCG; KVM's offset and optional scaling): the fit through the first
//! and last calibration of a segment gives the slope, and the bound at a
//! later instant grows by the slope's own uncertainty times the distance.

use serde::{Deserialize, Serialize};

/// One calibration: `host TSC - guest TSC` lies in `[lower, upper]` at host
/// TSC `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    /// Host TSC in the middle of the calibration.
    pub at: u64,
    /// Lower bound of the offset (ticks).
    pub lower: i64,
    /// Upper bound of the offset (ticks).
    pub upper: i64,
}

impl Interval {
    /// True if the bounds are ordered (a crossed pair means a broken channel).
    pub fn is_valid(&self) -> bool {
        self.lower <= self.upper
    }

    /// The midpoint (rounded towards minus infinity).
    pub fn offset(&self) -> i64 {
        ((i128::from(self.lower) + i128::from(self.upper)).div_euclid(2)) as i64
    }

    /// Half the width, rounded up: `|offset - true| <= bound_ticks`.
    pub fn bound_ticks(&self) -> u64 {
        let w = i128::from(self.upper) - i128::from(self.lower);
        ((w + 1) / 2).max(0) as u64
    }
}

/// Where the offset is at a host instant, and how well it is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// `host TSC - guest TSC` (ticks).
    pub offset: i64,
    /// Bound on its error (ticks).
    pub bound_ticks: u64,
}

/// The linear fit of one segment of consistent calibrations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Fit {
    /// The segment's calibrations, oldest first.
    pub intervals: Vec<Interval>,
    /// Shortest span (host ticks) over which a slope is measured: two
    /// calibrations closer than this would give a slope whose uncertainty
    /// (`(b1 + b2) / span`) swamps every later bound, so the second only
    /// checks the first. 0: any span.
    #[serde(default)]
    pub min_span: u64,
}

/// What adding a calibration did to the fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The segment grew. `miss_ticks`: how far the calibration fell outside
    /// what the fit predicted (0 if inside). With one calibration before,
    /// the prediction assumed equal TSC rates, so a miss is the error that
    /// assumption put into estimates made since.
    Extended {
        /// Distance from the prediction interval.
        miss_ticks: u64,
    },
    /// The first of a segment.
    Started,
    /// Too close to the segment's first calibration to measure a slope
    /// from (`Fit::min_span`): it checks the equal-rate prediction
    /// (`miss_ticks` as for `Extended`), and if it missed, the segment
    /// restarts from it (the newest anchor); else it is kept out.
    Checked {
        /// Distance from the prediction interval.
        miss_ticks: u64,
    },
    /// Outside a fitted (two-point) prediction: the relation changed (a
    /// pause, a migration). The segment restarted from this calibration;
    /// `miss_ticks` is how far outside it was.
    Jumped {
        /// Distance from the prediction interval.
        miss_ticks: u64,
    },
    /// A crossed interval, or not later than the last one; ignored.
    Invalid,
}

impl Fit {
    /// Adds a calibration (it must be later than the last one).
    pub fn add(&mut self, iv: Interval) -> Added {
        if !iv.is_valid() || self.intervals.last().is_some_and(|l| iv.at <= l.at) {
            return Added::Invalid;
        }
        if self.intervals.is_empty() {
            self.intervals.push(iv);
            return Added::Started;
        }
        let miss = self.miss(&iv);
        if miss > 0 && self.slope_measured() {
            self.intervals.clear();
            self.intervals.push(iv);
            return Added::Jumped { miss_ticks: miss };
        }
        let first = self.intervals[0];
        if !self.slope_measured() && iv.at - first.at < self.min_span {
            if miss > 0 {
                // The equal-rate assumption failed: anchor on the newer one (under
                // TCG's tick ratchet the relation moves irregularly, and the
                // latest calibration is the best estimate of it).
                self.intervals.clear();
                self.intervals.push(iv);
            }
            return Added::Checked { miss_ticks: miss };
        }
        self.intervals.push(iv);
        Added::Extended { miss_ticks: miss }
    }

    /// How far `iv` lies outside the fit's prediction at `iv.at` (ticks; 0
    /// inside, or without a calibration).
    pub fn miss(&self, iv: &Interval) -> u64 {
        let Some(pred) = self.at(iv.at) else { return 0 };
        let lo = i128::from(pred.offset) - i128::from(pred.bound_ticks);
        let hi = i128::from(pred.offset) + i128::from(pred.bound_ticks);
        let (l, u) = (i128::from(iv.lower), i128::from(iv.upper));
        let d = if u < lo {
            lo - u
        } else if l > hi {
            l - hi
        } else {
            0
        };
        u64::try_from(d).unwrap_or(u64::MAX)
    }

    /// Forgets every calibration (device reset, resume).
    pub fn clear(&mut self) {
        self.intervals.clear();
    }

    /// True if the slope was measured (two or more calibrations); with one,
    /// the guest TSC is assumed to run at the host TSC's rate.
    pub fn slope_measured(&self) -> bool {
        self.intervals.len() >= 2
    }

    /// Slope of the offset (ticks per host tick) and its uncertainty, from
    /// the first and last calibration; `(0, 0)` with fewer than two.
    pub fn slope(&self) -> (f64, f64) {
        match (self.intervals.first(), self.intervals.last()) {
            (Some(f), Some(l)) if l.at > f.at => {
                let dt = (l.at - f.at) as f64;
                let s = (l.offset() as f64 - f.offset() as f64) / dt;
                let u = (f.bound_ticks() + l.bound_ticks()) as f64 / dt;
                (s, u)
            }
            _ => (0.0, 0.0),
        }
    }

    /// The offset at host TSC `t`, or `None` without a calibration.
    ///
    /// Between the first and the last calibration the bound is the
    /// interpolated half-width (the true line lies between the two
    /// intervals); before or after, it grows by the slope's uncertainty
    /// times the distance to the nearest end.
    pub fn at(&self, t: u64) -> Option<Estimate> {
        let f = *self.intervals.first()?;
        let l = *self.intervals.last()?;
        let (s, u) = self.slope();
        let (anchor, dist) = if t >= l.at {
            (l, (t - l.at) as f64)
        } else if t <= f.at {
            (f, (f.at - t) as f64)
        } else {
            let w = (t - f.at) as f64 / (l.at - f.at) as f64;
            let off = f.offset() as f64 + w * (l.offset() as f64 - f.offset() as f64);
            let b = f.bound_ticks() as f64 + w * (l.bound_ticks() as f64 - f.bound_ticks() as f64);
            return Some(Estimate {
                offset: off.round() as i64,
                bound_ticks: b.ceil() as u64 + 1,
            });
        };
        let signed = if t >= anchor.at { dist } else { -dist };
        let off = anchor.offset() as f64 + s * signed;
        Some(Estimate {
            offset: off.round() as i64,
            bound_ticks: anchor.bound_ticks()
                + (u * dist).ceil() as u64
                + u64::from(dist > 0.0 && self.slope_measured()),
        })
    }
}

/// Host TSC ticks to nanoseconds at `tsc_hz`, rounding to nearest.
pub fn ticks_to_ns(ticks: u64, tsc_hz: u64) -> u64 {
    if tsc_hz == 0 {
        return 0;
    }
    ((u128::from(ticks) * 1_000_000_000 + u128::from(tsc_hz / 2)) / u128::from(tsc_hz))
        .min(u128::from(u64::MAX)) as u64
}

/// One-way raise -> guest hard IRQ in host ticks: `guest_tsc + offset -
/// raise_tsc` (signed: negative only within the bound).
pub fn one_way_ticks(raise_tsc: u64, guest_tsc: u64, offset: i64) -> i128 {
    i128::from(guest_tsc) + i128::from(offset) - i128::from(raise_tsc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic channel: host = guest + off0 + slope * host_t, each side
    /// seeing the other `lag` ticks late.
    fn calib(at: u64, off0: i64, slope: f64, lag: i64) -> Interval {
        let truth = off0 + (slope * at as f64).round() as i64;
        Interval {
            at,
            lower: truth - lag,
            upper: truth + lag,
        }
    }

    #[test]
    fn midpoint_and_bound_round_conservatively() {
        let iv = Interval {
            at: 0,
            lower: -5,
            upper: 2,
        };
        assert_eq!(iv.offset(), -2); // -1.5 towards -inf
        assert_eq!(iv.bound_ticks(), 4); // 3.5 up
        assert!((iv.offset() - iv.lower).unsigned_abs() <= iv.bound_ticks());
        assert!((iv.upper - iv.offset()).unsigned_abs() <= iv.bound_ticks());
        assert!(!Interval {
            at: 0,
            lower: 3,
            upper: 2
        }
        .is_valid());
    }

    #[test]
    fn constant_offset_is_recovered_within_the_bound() {
        let off0 = -7_000_000_123_456;
        let mut fit = Fit::default();
        assert_eq!(fit.add(calib(1_000_000, off0, 0.0, 150)), Added::Started);
        assert!(!fit.slope_measured());
        let e = fit.at(9_000_000_000).unwrap();
        assert_eq!(e.offset, off0);
        assert_eq!(e.bound_ticks, 150);
        assert_eq!(
            fit.add(calib(2_000_000_000, off0, 0.0, 100)),
            Added::Extended { miss_ticks: 0 }
        );
        let (s, u) = fit.slope();
        assert_eq!(s, 0.0);
        assert!(u > 0.0 && u < 1e-6);
    }

    #[test]
    fn slope_is_fitted_and_the_bound_holds_when_extrapolating() {
        // 50 ppm: the offset moves 50 ticks per million host ticks.
        let (off0, slope) = (123_456_789, 50e-6);
        let mut fit = Fit::default();
        fit.add(calib(1_000_000_000, off0, slope, 80));
        // One calibration assumed equal rates: 4e9 ticks at 50 ppm later the
        // offset is 200_000 ticks away, 199_840 outside the +/-80 + 80.
        assert_eq!(
            fit.add(calib(5_000_000_000, off0, slope, 80)),
            Added::Extended {
                miss_ticks: 199_840
            }
        );
        let (s, _) = fit.slope();
        assert!((s - slope).abs() < 1e-7, "{s}");
        for t in [
            2_000_000_000u64,
            5_000_000_000,
            6_000_000_000,
            20_000_000_000,
            500_000_000,
        ] {
            let truth = off0 + (slope * t as f64).round() as i64;
            let e = fit.at(t).unwrap();
            assert!(
                (e.offset - truth).unsigned_abs() <= e.bound_ticks,
                "t {t}: {e:?} vs {truth}"
            );
        }
        // Extrapolating far costs bound: 15e9 ticks past the last at
        // (160 / 4e9) ticks per tick of slope uncertainty = +600.
        assert_eq!(fit.at(20_000_000_000).unwrap().bound_ticks, 80 + 600 + 1);
    }

    #[test]
    fn a_jump_restarts_the_segment_and_says_by_how_much() {
        let mut fit = Fit::default();
        fit.add(calib(1_000, 10_000, 0.0, 10));
        fit.add(calib(1_000_000, 10_000, 0.0, 10));
        // Paused and resumed: the offset moved by 5000 ticks.
        let r = fit.add(calib(2_000_000, 15_000, 0.0, 10));
        // Predicted 10_000 +/- (10 + 20/999_000 * 1e6 + 1) = +/- 32.
        assert_eq!(r, Added::Jumped { miss_ticks: 4_958 });
        assert_eq!(fit.intervals.len(), 1);
        assert_eq!(fit.at(3_000_000).unwrap().offset, 15_000);
        assert_eq!(fit.add(calib(1_500_000, 15_000, 0.0, 10)), Added::Invalid);
        assert_eq!(
            fit.add(Interval {
                at: 4_000_000,
                lower: 1,
                upper: 0
            }),
            Added::Invalid
        );
    }

    #[test]
    fn a_calibration_too_soon_after_the_first_only_checks_it() {
        let mut fit = Fit {
            min_span: 1_000_000,
            ..Fit::default()
        };
        fit.add(calib(1_000, 500, 0.0, 60));
        // 0.3 of the span later: kept out; the equal-rate prediction held.
        assert_eq!(
            fit.add(calib(300_000, 500, 0.0, 60)),
            Added::Checked { miss_ticks: 0 }
        );
        assert!(!fit.slope_measured());
        // A check that misses says by how much, and becomes the anchor:
        // estimates after it use its offset, not the first one's.
        assert_eq!(
            fit.add(calib(400_000, 900, 0.0, 60)),
            Added::Checked { miss_ticks: 280 }
        );
        assert_eq!(fit.intervals.len(), 1);
        assert_eq!(fit.at(500_000).unwrap().offset, 900);
        // Far enough from the new anchor: the slope is measured.
        assert_eq!(
            fit.add(calib(2_000_000, 900, 0.0, 60)),
            Added::Extended { miss_ticks: 0 }
        );
        assert!(fit.slope_measured());
    }

    #[test]
    fn one_way_and_tick_conversion() {
        // Guest TSC 1000 behind the host; event raised at host 5000, taken at
        // guest 4500 (host 5500): 500 ticks = 238 ns at 2.1 GHz.
        let w = one_way_ticks(5_000, 4_500, 1_000);
        assert_eq!(w, 500);
        assert_eq!(ticks_to_ns(500, 2_100_000_000), 238);
        assert_eq!(ticks_to_ns(2_100_000_000, 2_100_000_000), 1_000_000_000);
        assert_eq!(ticks_to_ns(5, 0), 0);
        assert!(one_way_ticks(5_000, 3_000, 1_000) < 0);
    }
}
