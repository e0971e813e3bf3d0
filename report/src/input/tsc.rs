//! One-way raise -> guest hard IRQ on the shared TSC time base: the back
//! end's `raise_to_hardirq_tsc` per mechanism and its `time_base`
//! (device spec §6.1.3, docs/clock-offset.md "TSC method").
//!
//! The back end already converted every ack with the calibration fit that
//! held when it arrived, and held each estimate until the next calibration
//! checked that fit: an estimate's bound is the larger of the fit's bound at
//! its ack and how far the fit's prediction was from that calibration
//! (`bound_ns` per estimate, `max_bound_ns` the largest). Where the TSC
//! method cannot give a figure the caller falls back to the PING method
//! ([`BackendStats::apply_one_way`]).

use irqstorm_protocol::stats::TimeBaseStats;

use super::{BackendStats, HistExt, InputError};
use crate::model::{MechanismResult, OneWay, METHOD_TSC};

/// Largest bound (ns) the TSC method may state; above it (a channel so
/// disturbed that its residual is large) the PING method is used. Set high:
/// a TSC bound of tens of microseconds (QEMU's TCG tick ratchet in a burst,
/// docs/clock-offset.md) is still a true bound, while the PING method's
/// one-way estimate ends at the hard IRQ's ns stamp, which a vCPU preempted
/// between the TSC and the ns reads takes late by the preemption (one ci-quick
/// event: 2.5 ms past its TSC stamp, beyond a PING bound of 137 us).
pub const TSC_MAX_BOUND_NS: u64 = 1_000_000;

/// Why the device's TSC time base cannot be used, if it cannot.
pub fn unusable(tb: Option<&TimeBaseStats>) -> Option<String> {
    let Some(tb) = tb else {
        return Some("the back end has no TSC time base (spec version 1)".into());
    };
    if let Some(why) = &tb.host_tsc_unusable {
        return Some(format!("host TSC unusable: {why}"));
    }
    if !tb.calibrations.iter().any(|c| c.result == "ok") {
        let results: Vec<&str> = tb.calibrations.iter().map(|c| c.result.as_str()).collect();
        return Some(if results.is_empty() {
            "no calibration (the driver never sent CALIBRATE)".into()
        } else {
            format!("no calibration succeeded ({})", results.join(", "))
        });
    }
    None
}

impl BackendStats {
    /// Fill `raise_to_hardirq` of this device's `rows` with the TSC
    /// method's estimate where it holds. Returns notes for `meta.notes`
    /// (labelled with `device`): the time base used, or why a row was left
    /// for the PING method.
    pub fn apply_tsc_one_way(
        &self,
        rows: &mut [MechanismResult],
        device: &str,
    ) -> Result<Vec<String>, InputError> {
        let tb = self.stats.time_base.as_ref();
        if let Some(why) = unusable(tb) {
            return Ok(vec![format!(
                "{device}: one-way raise->hardirq: TSC method not used ({why}); PING method"
            )]);
        }
        let tb = tb.expect("checked by unusable");
        let mut used: Vec<String> = Vec::new();
        let mut left: Vec<String> = Vec::new();
        for row in rows.iter_mut().filter(|r| r.raise_to_ack.is_some()) {
            let n = row.mechanism.clone();
            let Some(t) = self
                .stats
                .mechanisms
                .iter()
                .find(|m| m.name == n)
                .and_then(|m| m.raise_to_hardirq_tsc.as_ref())
            else {
                left.push(format!("{n} (no TSC stamps in its acks)"));
                continue;
            };
            let bound = t.max_bound_ns;
            if bound > TSC_MAX_BOUND_NS {
                left.push(format!(
                    "{n} (TSC bound {bound} ns > {TSC_MAX_BOUND_NS} ns)"
                ));
                continue;
            }
            let Some(dist) = t
                .estimates_ns
                .distribution(&format!("{n}.raise_to_hardirq_tsc.estimates_ns"))?
            else {
                left.push(format!(
                    "{n} (no checked estimate: {} acks arrived uncalibrated, {} await a \
                     calibration after them, {} were never checked)",
                    t.uncalibrated, t.awaiting_check, t.unchecked
                ));
                continue;
            };
            let (p50, p99) = t
                .bound_ns
                .summary
                .map_or((bound, bound), |b| (b.p50, b.p99));
            used.push(format!(
                "{n} bound p50 {p50} ns, p99 {p99} ns, max {bound} ns; {} negative, {} raised \
                 after their interrupt began, {} past the IRQ budget, {} uncalibrated, {} \
                 unchecked",
                t.negative,
                t.after_irq_start,
                t.past_budget,
                t.uncalibrated,
                t.awaiting_check + t.unchecked
            ));
            row.raise_to_hardirq = Some(OneWay {
                distribution: dist,
                negative_samples: t.negative,
                error_bound_ns: bound,
                below_base: 0,
                method: METHOD_TSC.into(),
                after_irq_start: t.after_irq_start,
                past_budget: t.past_budget,
                uncalibrated: t.uncalibrated,
                unchecked: t.awaiting_check + t.unchecked,
            });
        }
        let mut notes = Vec::new();
        if !used.is_empty() {
            let ok: Vec<_> = tb
                .calibrations
                .iter()
                .filter(|c| c.result == "ok")
                .collect();
            let best = ok.iter().map(|c| c.bound_ns).min().unwrap_or(0);
            notes.push(format!(
                "{device}: one-way raise->hardirq by the TSC method: host TSC {:.3} MHz, {} \
                 calibrations ok of {} (bounds {}..{} ns), fit of {} ({}slope {:.4} +/- {:.4} \
                 ppm), largest miss {} ns, {} jumps, {} crossed (allowance {} ns, inside \
                 every bound); each estimate bounded by the calibration after it; {} \
                 (negative: estimate in [-bound, 0), recorded as 0; the other counts are not in \
                 the distribution)",
                tb.tsc_hz as f64 / 1e6,
                ok.len(),
                tb.calibrations.len(),
                best,
                ok.iter().map(|c| c.bound_ns).max().unwrap_or(0),
                tb.fit_len,
                if tb.slope_measured {
                    ""
                } else {
                    "single calibration, equal rates assumed; "
                },
                tb.slope_ppm,
                tb.slope_uncertainty_ppm,
                tb.max_miss_ns,
                tb.jumps,
                tb.crossed,
                tb.allowance_ns,
                used.join("; ")
            ));
        }
        if !left.is_empty() {
            notes.push(format!(
                "{device}: one-way raise->hardirq: PING method for {}",
                left.join(", ")
            ));
        }
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use irqstorm_protocol::stats::{CalibrationStats, Hist, TscOneWay};
    use irqstorm_protocol::timebase::Interval;

    use super::*;
    use crate::input::backend::tests::{est, stats_with_raw, SCENARIO};
    use crate::input::parse_backend_stats;
    use crate::model::METHOD_PING;
    use crate::scenario::parse;

    fn calib(result: &str, bound_ns: u64) -> CalibrationStats {
        CalibrationStats {
            host_ns: 1,
            interval: Interval {
                at: 10,
                lower: -100,
                upper: 100,
            },
            bound_ns,
            host_samples: 9,
            guest_samples: 9,
            result: result.into(),
            fit: "started".into(),
            miss_ns: 0,
        }
    }

    fn time_base(calibrations: Vec<CalibrationStats>, max_miss_ns: u64) -> TimeBaseStats {
        TimeBaseStats {
            tsc_hz: 2_100_000_000,
            host_tsc_unusable: None,
            calibrations,
            fit_len: 1,
            slope_ppm: 0.0,
            slope_uncertainty_ppm: 0.0,
            slope_measured: false,
            max_miss_ns,
            jumps: 0,
            failed: 0,
            loose: 0,
            loose_limit_ns: 2_000,
            invalidated: 0,
            crossed: 0,
            abandoned: 0,
            allowance_ns: 0,
        }
    }

    /// Back-end stats whose tasklet row has TSC estimates of 12 us (x1980)
    /// and 300 us (x10), 5 of them negative, with the given bound.
    fn stats(tb: Option<TimeBaseStats>, bound_ns: u64, after_irq_start: u64) -> BackendStats {
        let mut st = parse_backend_stats(&stats_with_raw()).unwrap();
        let hist: Hist = serde_json::from_str(
            r#"{"count": 1990, "min": 1, "p50": 12000, "p90": 12000, "p99": 12000,
                "p999": 300000, "max": 300000, "mean": 13500.0,
                "buckets": [[1, 5], [12000, 1975], [300000, 10]]}"#,
        )
        .unwrap();
        st.stats.mechanisms[0].raise_to_hardirq_tsc = Some(TscOneWay {
            estimates_ns: hist,
            negative: 5,
            after_irq_start,
            past_budget: 3,
            uncalibrated: 7,
            max_bound_ns: bound_ns,
            bound_ns: serde_json::from_str(&format!(
                r#"{{"count": 1990, "min": 40, "p50": 40, "p90": 40, "p99": 40,
                    "p999": {bound_ns}, "max": {bound_ns}, "mean": 41.0}}"#
            ))
            .unwrap(),
            awaiting_check: 2,
            unchecked: 1,
        });
        st.stats.time_base = tb;
        st
    }

    #[test]
    fn tsc_rows_first_and_ping_for_the_rest() {
        let sc = parse(SCENARIO, "in.toml").unwrap();
        // 4 records raised after their interrupt began: counted, still TSC.
        let st = stats(Some(time_base(vec![calib("ok", 80)], 20)), 90, 4);
        let mut rows = st.rows(&sc, None).unwrap();
        let notes = st.apply_tsc_one_way(&mut rows, "irqstorm0").unwrap();
        let ow = rows[0].raise_to_hardirq.clone().unwrap();
        assert_eq!(ow.method, METHOD_TSC);
        // The largest per-event bound (each already checked by the calibration
        // after it: the epoch's largest miss is not added again).
        assert_eq!(ow.error_bound_ns, 90);
        assert_eq!(
            (
                ow.negative_samples,
                ow.uncalibrated,
                ow.past_budget,
                ow.unchecked
            ),
            (5, 7, 3, 3)
        );
        assert_eq!(ow.distribution.count(), 1990);
        assert_eq!(ow.after_irq_start, 4);
        let p50 = ow.distribution.summary.p50_ns;
        assert!(p50.abs_diff(12_000) <= 12, "{p50}");
        assert!(rows[1].raise_to_hardirq.is_none());
        assert!(
            notes[0].contains("TSC method: host TSC 2100.000 MHz, 1 calibrations ok of 1"),
            "{notes:?}"
        );
        assert!(
            notes[0].contains("tasklet bound p50 40 ns, p99 40 ns, max 90 ns"),
            "{notes:?}"
        );
        assert!(
            notes[1].contains("PING method for bh_wq (no TSC stamps"),
            "{notes:?}"
        );
        // The PING method leaves the TSC row alone and fills only bh_wq
        // (which has no raw data either here: not measured, nothing invented).
        let ping_notes = st
            .apply_one_way(&mut rows, Some(&est(-5_000_000_000, 2_000)), "irqstorm0")
            .unwrap();
        assert_eq!(rows[0].raise_to_hardirq.as_ref().unwrap(), &ow);
        assert!(
            ping_notes
                .iter()
                .any(|n| n.contains("not measured for bh_wq")),
            "{ping_notes:?}"
        );
    }

    #[test]
    fn the_ping_method_is_used_when_the_tsc_cannot_be() {
        let sc = parse(SCENARIO, "in.toml").unwrap();
        let cases = [
            (stats(None, 90, 0), "spec version 1"),
            (
                stats(Some(time_base(vec![], 0)), 90, 0),
                "never sent CALIBRATE",
            ),
            (
                stats(Some(time_base(vec![calib("no_guest", 0)], 0)), 90, 0),
                "no calibration succeeded (no_guest)",
            ),
            (
                stats(
                    Some(time_base(vec![calib("ok", 80)], 0)),
                    TSC_MAX_BOUND_NS + 1,
                    0,
                ),
                "TSC bound 1000001 ns > 1000000 ns",
            ),
        ];
        for (st, why) in cases {
            let mut rows = st.rows(&sc, None).unwrap();
            let notes = st.apply_tsc_one_way(&mut rows, "d").unwrap();
            assert!(rows[0].raise_to_hardirq.is_none(), "{why}");
            assert!(notes.iter().any(|n| n.contains(why)), "{why}: {notes:?}");
            st.apply_one_way(&mut rows, Some(&est(-5_000_000_000, 2_000)), "d")
                .unwrap();
            let ow = rows[0].raise_to_hardirq.as_ref().unwrap();
            assert_eq!(
                (ow.method.as_str(), ow.error_bound_ns),
                (METHOD_PING, 2_000)
            );
        }
        let mut unusable_host = time_base(vec![calib("ok", 80)], 0);
        unusable_host.host_tsc_unusable = Some("host clocksource is \"hpet\", not tsc".into());
        assert!(unusable(Some(&unusable_host)).unwrap().contains("hpet"));
    }
}
