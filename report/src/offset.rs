//! NTP-style host/guest clock offset estimation from PING exchanges (device
//! spec §6.1.1) and the one-way device-raise -> guest-hardirq estimate.
//! Method and error bound: `docs/clock-offset.md`.
//!
//! A PING exchange gives four timestamps:
//! `t1` guest send (guest clock), `t2` host receive (reply `host_ns`),
//! `t3` host send (`host_send_ns`), `t4` guest receive (guest clock).
//! With `theta = host_clock - guest_clock` and unknown one-way delays
//! `d1, d2 >= 0`: `t2 = t1 + theta + d1`, `t4 = t3 - theta + d2`, so
//!
//! * `offset = ((t2 - t1) + (t3 - t4)) / 2 = theta + (d1 - d2) / 2`
//! * `delay = (t4 - t1) - (t3 - t2) = d1 + d2`
//! * `|offset - theta| <= delay / 2`
//!
//! The sample with the least delay has the tightest bound (min filter).
//! A guest timestamp `g` maps to host time `g + theta`, so the one-way
//! latency of an event raised at host `r` and seen by the guest hard IRQ at
//! guest `h` is `(h + offset) - r`, within `+/- delay/2`.

use serde::{Deserialize, Serialize};

use crate::hist::{Distribution, HistError};
use crate::model::OneWay;

/// One PING exchange, all in ns of the named clock's `CLOCK_MONOTONIC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingSample {
    /// Guest time the request was sent (the echoed `guest_ns`).
    pub t1_guest_send_ns: u64,
    /// Host time the request was read (reply `host_ns`).
    pub t2_host_recv_ns: u64,
    /// Host time just before the reply was queued (`host_send_ns`).
    pub t3_host_send_ns: u64,
    /// Guest time the reply was seen.
    pub t4_guest_recv_ns: u64,
}

impl PingSample {
    /// Whether the timestamps are causally ordered on each clock.
    pub fn is_consistent(&self) -> bool {
        self.t4_guest_recv_ns >= self.t1_guest_send_ns
            && self.t3_host_send_ns >= self.t2_host_recv_ns
    }

    /// `((t2 - t1) + (t3 - t4)) / 2`, host minus guest, ns.
    pub fn offset_ns(&self) -> i64 {
        let s = (self.t2_host_recv_ns as i128 - self.t1_guest_send_ns as i128)
            + (self.t3_host_send_ns as i128 - self.t4_guest_recv_ns as i128);
        (s.div_euclid(2)) as i64
    }

    /// `(t4 - t1) - (t3 - t2)`: round-trip time outside the host, ns.
    pub fn delay_ns(&self) -> i64 {
        ((self.t4_guest_recv_ns as i128 - self.t1_guest_send_ns as i128)
            - (self.t3_host_send_ns as i128 - self.t2_host_recv_ns as i128)) as i64
    }
}

/// Errors of offset estimation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OffsetError {
    #[error("no usable PING exchange ({0} given, all inconsistent)")]
    NoSamples(usize),
}

/// The estimate: `host = guest + host_minus_guest_ns`, within
/// `+/- error_bound_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetEstimate {
    pub host_minus_guest_ns: i64,
    /// Half the delay of the chosen exchange (rounded up).
    pub error_bound_ns: u64,
    /// Delay of the chosen exchange.
    pub delay_ns: u64,
    /// Exchanges given / used (consistent ones).
    pub samples: usize,
    pub used: usize,
    /// Index of the chosen exchange.
    pub chosen: usize,
    /// Drift between the first and the last third of the exchanges,
    /// parts per million of elapsed host time (`None` with < 6 samples or
    /// when the thirds do not separate in time).
    #[serde(default)]
    pub drift_ppm: Option<f64>,
}

impl OffsetEstimate {
    /// Map a guest timestamp to host time.
    pub fn guest_to_host(&self, guest_ns: u64) -> i128 {
        guest_ns as i128 + self.host_minus_guest_ns as i128
    }

    /// One-way latency of an event raised at host `raise_host_ns` and taken
    /// by the guest hard IRQ at `hardirq_guest_ns`: `(hardirq + offset) -
    /// raise`, ns (may be negative when the offset error exceeds it).
    pub fn one_way_ns(&self, raise_host_ns: u64, hardirq_guest_ns: u64) -> i64 {
        (self.guest_to_host(hardirq_guest_ns) - raise_host_ns as i128) as i64
    }
}

fn min_filter(samples: &[(usize, PingSample)]) -> Option<(usize, PingSample)> {
    samples
        .iter()
        .min_by_key(|(i, s)| (s.delay_ns(), *i))
        .copied()
}

/// Estimate the offset from PING exchanges with the minimum-delay filter.
/// Inconsistent exchanges (a clock going backwards) are ignored.
pub fn estimate(samples: &[PingSample]) -> Result<OffsetEstimate, OffsetError> {
    let good: Vec<(usize, PingSample)> = samples
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| s.is_consistent() && s.delay_ns() >= 0)
        .collect();
    let (chosen, best) = min_filter(&good).ok_or(OffsetError::NoSamples(samples.len()))?;
    let delay = best.delay_ns().max(0) as u64;
    Ok(OffsetEstimate {
        host_minus_guest_ns: best.offset_ns(),
        error_bound_ns: delay.div_ceil(2),
        delay_ns: delay,
        samples: samples.len(),
        used: good.len(),
        chosen,
        drift_ppm: drift_ppm(&good),
    })
}

/// Offset drift: min-filtered offset of the last third minus that of the
/// first third, over the host time between the chosen exchanges.
fn drift_ppm(good: &[(usize, PingSample)]) -> Option<f64> {
    if good.len() < 6 {
        return None;
    }
    let third = good.len() / 3;
    let (_, a) = min_filter(&good[..third])?;
    let (_, b) = min_filter(&good[good.len() - third..])?;
    let dt = b.t2_host_recv_ns as f64 - a.t2_host_recv_ns as f64;
    if dt <= 0.0 {
        return None;
    }
    Some((b.offset_ns() - a.offset_ns()) as f64 / dt * 1e6)
}

/// Uncertainty of [`OffsetEstimate::drift_ppm`], ppm: the two offsets it
/// compares (min-filtered first and last thirds of the consistent
/// exchanges) are each only known within half their delay, so the drift is
/// known within `(bound_first + bound_last) / elapsed`. `None` when there
/// is no drift figure.
pub fn drift_uncertainty_ppm(samples: &[PingSample]) -> Option<f64> {
    let good: Vec<(usize, PingSample)> = samples
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| s.is_consistent() && s.delay_ns() >= 0)
        .collect();
    if good.len() < 6 {
        return None;
    }
    let third = good.len() / 3;
    let (_, a) = min_filter(&good[..third])?;
    let (_, b) = min_filter(&good[good.len() - third..])?;
    let dt = b.t2_host_recv_ns as f64 - a.t2_host_recv_ns as f64;
    if dt <= 0.0 {
        return None;
    }
    let half = |s: &PingSample| (s.delay_ns().max(0) as u64).div_ceil(2) as f64;
    Some((half(&a) + half(&b)) / dt * 1e6)
}

/// The error the estimate's drift figure could add to one-way estimates of
/// events in the host-time window `[from_ns, to_ns]` (e.g. the back end's
/// `since_ns`..`now_ns`), the offset having been measured at host time
/// `chosen_host_ns` (the chosen exchange's `t2`): `|drift| x` the longest
/// distance from the exchange to the window, ns. `None` without a drift
/// figure. Not part of `error_bound_ns`: the drift figure is itself the
/// difference of two offsets each within their own bound, so it is reported
/// beside the bound (docs/clock-offset.md), not added to it.
pub fn drift_allowance_ns(
    estimate: &OffsetEstimate,
    chosen_host_ns: u64,
    from_ns: u64,
    to_ns: u64,
) -> Option<u64> {
    let ppm = estimate.drift_ppm?;
    let span = chosen_host_ns
        .abs_diff(from_ns)
        .max(chosen_host_ns.abs_diff(to_ns));
    Some((ppm.abs() * span as f64 / 1e6).round() as u64)
}

/// Build the one-way raise -> hardirq distribution from `(raise_host_ns,
/// hardirq_guest_ns)` pairs. Negative estimates are counted and clamped to 0.
pub fn one_way<I>(estimate: &OffsetEstimate, pairs: I) -> Result<OneWay, HistError>
where
    I: IntoIterator<Item = (u64, u64)>,
{
    let mut h = crate::hist::new_hdr();
    let mut negative = 0u64;
    for (raise, hardirq) in pairs {
        let v = estimate.one_way_ns(raise, hardirq);
        if v < 0 {
            negative += 1;
        }
        h.record(v.max(0) as u64)
            .map_err(|e| HistError::Record(format!("{e:?}")))?;
    }
    Ok(OneWay {
        distribution: Distribution::from_hdr(&h),
        negative_samples: negative,
        error_bound_ns: estimate.error_bound_ns,
        below_base: 0,
        method: crate::model::METHOD_PING.into(),
        after_irq_start: 0,
        past_budget: 0,
        uncalibrated: 0,
        unchecked: 0,
    })
}

/// Build the one-way distribution from raw clock differences
/// `hardirq_guest_ns - raise_host_ns` (signed, ns) with counts, e.g. a
/// bucket list the back end keeps per mechanism without knowing the offset.
/// Each estimate is `diff + host_minus_guest_ns`.
pub fn one_way_from_diffs<I>(estimate: &OffsetEstimate, diffs: I) -> Result<OneWay, HistError>
where
    I: IntoIterator<Item = (i64, u64)>,
{
    let mut h = crate::hist::new_hdr();
    let mut negative = 0u64;
    for (diff, count) in diffs {
        if count == 0 {
            continue;
        }
        let v = diff as i128 + estimate.host_minus_guest_ns as i128;
        if v < 0 {
            negative += count;
        }
        let v = v.clamp(0, u64::MAX as i128) as u64;
        h.record_n(v, count)
            .map_err(|e| HistError::Record(format!("{e:?}")))?;
    }
    Ok(OneWay {
        distribution: Distribution::from_hdr(&h),
        negative_samples: negative,
        error_bound_ns: estimate.error_bound_ns,
        below_base: 0,
        method: crate::model::METHOD_PING.into(),
        after_irq_start: 0,
        past_budget: 0,
        uncalibrated: 0,
        unchecked: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exchange with true offset `theta` (host - guest), one-way delays
    /// d1 (guest->host) and d2 (host->guest), and host processing `p`.
    fn exchange(t1: u64, theta: i64, d1: u64, p: u64, d2: u64) -> PingSample {
        let t2 = (t1 as i64 + theta + d1 as i64) as u64;
        let t3 = t2 + p;
        let t4 = (t3 as i64 - theta + d2 as i64) as u64;
        PingSample {
            t1_guest_send_ns: t1,
            t2_host_recv_ns: t2,
            t3_host_send_ns: t3,
            t4_guest_recv_ns: t4,
        }
    }

    #[test]
    fn symmetric_exchange_gives_exact_offset() {
        let s = exchange(1_000_000, 5_000_000_000, 7_000, 3_000, 7_000);
        assert_eq!(s.offset_ns(), 5_000_000_000);
        assert_eq!(s.delay_ns(), 14_000);
        let e = estimate(&[s]).unwrap();
        assert_eq!(e.host_minus_guest_ns, 5_000_000_000);
        assert_eq!(e.error_bound_ns, 7_000);
    }

    #[test]
    fn negative_offset_guest_ahead() {
        // guest clock ahead of host by 2 s
        let s = exchange(9_000_000_000, -2_000_000_000, 1_000, 500, 3_000);
        let e = estimate(&[s]).unwrap();
        // offset = theta + (d1 - d2)/2 = theta - 1000
        assert_eq!(e.host_minus_guest_ns, -2_000_001_000);
        assert_eq!(e.error_bound_ns, 2_000);
        assert!((e.host_minus_guest_ns - -2_000_000_000).unsigned_abs() <= e.error_bound_ns);
    }

    #[test]
    fn min_filter_picks_least_delay_and_bound_holds() {
        let theta = 123_456_789i64;
        let mut v = Vec::new();
        // asymmetric, noisy delays; the least-delay one is index 3
        let delays = [
            (40_000, 9_000),
            (5_000, 60_000),
            (25_000, 25_000),
            (3_000, 4_000),
            (80_000, 1_000),
        ];
        for (i, (d1, d2)) in delays.iter().enumerate() {
            v.push(exchange(
                10_000_000 * (i as u64 + 1),
                theta,
                *d1,
                2_000,
                *d2,
            ));
        }
        let e = estimate(&v).unwrap();
        assert_eq!(e.chosen, 3);
        assert_eq!(e.delay_ns, 7_000);
        assert_eq!(e.host_minus_guest_ns, theta - 500);
        assert_eq!(e.error_bound_ns, 3_500);
        // the bound holds for every sample, tightest for the chosen one
        for s in &v {
            let err = (s.offset_ns() - theta).unsigned_abs();
            assert!(err <= (s.delay_ns() as u64).div_ceil(2), "{s:?}");
        }
    }

    #[test]
    fn inconsistent_samples_are_ignored() {
        let good = exchange(1_000, 50, 10, 1, 10);
        let bad = PingSample {
            t1_guest_send_ns: 100,
            t2_host_recv_ns: 200,
            t3_host_send_ns: 150, // host clock backwards
            t4_guest_recv_ns: 300,
        };
        let e = estimate(&[bad, good]).unwrap();
        assert_eq!((e.samples, e.used, e.chosen), (2, 1, 1));
        assert_eq!(estimate(&[bad]), Err(OffsetError::NoSamples(1)));
        assert_eq!(estimate(&[]), Err(OffsetError::NoSamples(0)));
    }

    #[test]
    fn one_way_recovers_true_latency_within_bound() {
        let theta = -7_777_777i64; // host - guest
        let e = estimate(&[exchange(50_000_000, theta, 4_000, 1_000, 6_000)]).unwrap();
        assert_eq!(e.error_bound_ns, 5_000);
        // events raised on host at r, true one-way latency L: guest hardirq
        // time = r + L - theta
        let truth = [12_000u64, 30_000, 250_000];
        let pairs: Vec<(u64, u64)> = truth
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let r = 1_000_000_000 + i as u64 * 1_000_000;
                (r, (r as i64 + *l as i64 - theta) as u64)
            })
            .collect();
        for ((r, h), l) in pairs.iter().zip(truth) {
            let est = e.one_way_ns(*r, *h);
            assert!(
                (est - l as i64).unsigned_abs() <= e.error_bound_ns,
                "{est} vs {l}"
            );
        }
        let ow = one_way(&e, pairs.clone()).unwrap();
        assert_eq!(ow.distribution.count(), 3);
        assert_eq!(ow.negative_samples, 0);
        assert_eq!(ow.error_bound_ns, 5_000);
        // an event whose estimate goes negative is counted, not lost
        let ow = one_way(
            &e,
            [(1_000_000_000, (1_000_000_000i64 - theta - 20_000) as u64)],
        )
        .unwrap();
        assert_eq!((ow.negative_samples, ow.distribution.count()), (1, 1));
    }

    #[test]
    fn one_way_from_diffs_matches_pairs() {
        let theta = 3_000_000_000i64;
        let e = estimate(&[exchange(1_000, theta, 2_000, 100, 2_000)]).unwrap();
        assert_eq!(e.host_minus_guest_ns, theta);
        // diffs = hardirq_guest - raise_host = latency - theta
        let lat = [10_000i64, 20_000, 20_000, 500_000];
        let pairs: Vec<(u64, u64)> = lat
            .iter()
            .map(|l| (4_000_000_000u64, (4_000_000_000i64 + l - theta) as u64))
            .collect();
        let a = one_way(&e, pairs).unwrap();
        let b = one_way_from_diffs(
            &e,
            [
                (10_000 - theta, 1),
                (20_000 - theta, 2),
                (500_000 - theta, 1),
                (0, 0),
            ],
        )
        .unwrap();
        assert_eq!(a, b);
        let n = one_way_from_diffs(&e, [(-theta - 5, 3)]).unwrap();
        assert_eq!(
            (
                n.negative_samples,
                n.distribution.count(),
                n.distribution.summary.max_ns
            ),
            (3, 3, 0)
        );
    }

    #[test]
    fn drift_allowance_spans_the_window() {
        let mut e = estimate(&[exchange(1_000, 0, 10, 1, 10)]).unwrap();
        assert_eq!(drift_allowance_ns(&e, 20_000_000_000, 0, 1), None);
        e.drift_ppm = Some(-5.0);
        // chosen exchange 16 s after the window start: 5 ppm of 16 s
        assert_eq!(
            drift_allowance_ns(&e, 20_000_000_000, 4_000_000_000, 19_900_000_000),
            Some(80_000)
        );
        // before the window: the far end counts
        assert_eq!(
            drift_allowance_ns(&e, 1_000_000_000, 2_000_000_000, 3_000_000_000),
            Some(10_000)
        );
    }

    #[test]
    fn drift_is_estimated() {
        // guest clock runs 100 ppm slow: theta grows by 100 ns per ms
        let v: Vec<PingSample> = (0..30u64)
            .map(|i| {
                let t1 = i * 10_000_000; // every 10 ms
                let theta = 1_000_000 + (i * 10_000_000 / 10_000) as i64; // +1000 ns / 10 ms
                exchange(t1, theta, 2_000, 500, 2_000)
            })
            .collect();
        let e = estimate(&v).unwrap();
        let d = e.drift_ppm.unwrap();
        assert!((d - 100.0).abs() < 1.0, "{d}");
        // bounds 2 us on each end, 200 ms apart (index 0 and 20): 20 ppm
        let u = drift_uncertainty_ppm(&v).unwrap();
        assert!((u - 20.0).abs() < 0.1, "{u}");
        assert_eq!(drift_uncertainty_ppm(&v[..5]), None);
        assert_eq!(estimate(&v[..5]).unwrap().drift_ppm, None);
    }
}
