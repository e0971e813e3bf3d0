//! Gating: conservation checks and the scenario's thresholds evaluated
//! against a run result. Every failure names the mechanism, the figure, the
//! measured value and the limit.

use crate::hist::LatencySummary;
use crate::model::{conservation, Check, CheckKind, MechanismResult, Outcome, RunResult};
use crate::render::fmt_ns;
use crate::scenario::{
    baseline_metric, Baseline, Figure, FigureKind, Limit, Metric, Scenario, Stat, ThresholdSpec,
};

mod disturbed;
pub use disturbed::{is_not_judged, is_tail_gate, judge_interference, NOT_JUDGED};

/// A statistic of a summary, ns.
pub fn stat_of(s: &LatencySummary, stat: Stat) -> f64 {
    match stat {
        Stat::Min => s.min_ns as f64,
        Stat::P50 => s.p50_ns as f64,
        Stat::P90 => s.p90_ns as f64,
        Stat::P99 => s.p99_ns as f64,
        Stat::P999 => s.p999_ns as f64,
        Stat::Max => s.max_ns as f64,
        Stat::Mean => s.mean_ns,
    }
}

fn nonempty(s: Option<&LatencySummary>) -> Option<&LatencySummary> {
    s.filter(|s| s.count > 0)
}

/// The summary of a latency metric of a row.
pub fn metric_summary(row: &MechanismResult, m: Metric) -> Option<&LatencySummary> {
    nonempty(match m {
        Metric::RaiseToAck => row.raise_to_ack.as_ref().map(|d| &d.summary),
        Metric::HardirqToBh => row.hardirq_to_bh.as_ref().map(|d| &d.summary),
        Metric::BhRun => row.bh_run.as_ref().map(|d| &d.summary),
        Metric::RaiseToHardirq => row
            .raise_to_hardirq
            .as_ref()
            .map(|o| &o.distribution.summary),
    })
}

/// The value of a figure for a row (ns, ratio or count), if measured.
pub fn figure_value(row: &MechanismResult, f: Figure) -> Option<f64> {
    match f {
        Figure::Latency(m, s) => metric_summary(row, m).map(|x| stat_of(x, s)),
        Figure::CoalescedRatio => Some(row.coalesced_ratio()),
        Figure::LossRatio => Some(row.loss_ratio()),
        Figure::Coalesced => Some(row.host.coalesced as f64),
        Figure::Dropped => Some(row.host.dropped as f64),
        Figure::Pending => Some(row.host.pending as f64),
        Figure::BadAcks => Some(row.host.bad_acks as f64),
    }
}

/// The baseline's counterpart of a latency figure (see
/// [`baseline_metric`]), ns.
pub fn baseline_value(
    result: &RunResult,
    row: &MechanismResult,
    m: Metric,
    s: Stat,
    b: Baseline,
) -> Option<f64> {
    let which = baseline_metric(m, b)?;
    let summary = match b {
        Baseline::RefHrtimer => {
            let r = row.reference.as_ref()?;
            match which {
                "hardirq_to_bh" => r.hardirq_to_bh.as_ref(),
                "bh_run" => r.bh_run.as_ref(),
                _ => r.timer_to_hardirq.as_ref(),
            }
        }
        Baseline::HostEventfd => {
            let e = result.baselines.host_eventfd.as_ref()?;
            Some(if which == "round_trip" {
                &e.round_trip
            } else {
                &e.one_way
            })
        }
    };
    nonempty(summary.map(|d| &d.summary)).map(|x| stat_of(x, s))
}

/// Format a figure value in its unit.
pub fn fmt_value(v: f64, kind: FigureKind) -> String {
    match kind {
        FigureKind::Duration => fmt_ns(v),
        FigureKind::Ratio => format!("{v:.4}"),
        FigureKind::Count => format!("{v:.0}"),
    }
}

fn unit(kind: FigureKind) -> &'static str {
    match kind {
        FigureKind::Duration => "ns",
        FigureKind::Ratio => "ratio",
        FigureKind::Count => "count",
    }
}

/// Conservation checks, one per merged row and per device row.
pub fn conservation_checks(result: &RunResult) -> Vec<Check> {
    result
        .mechanisms
        .iter()
        .chain(result.per_device.iter())
        .map(|row| {
            let v = conservation(row);
            let label = row_label(row);
            let (outcome, message) = if v.is_empty() {
                (
                    Outcome::Pass,
                    format!(
                        "{label}: conservation holds (raised {} = records {} + coalesced {} + pending {} + dropped {}){}",
                        row.host.raised, row.host.records, row.host.coalesced, row.host.pending, row.host.dropped,
                        row.guest.map(|g| format!("; guest records {} and raises {} agree", g.records, g.events)).unwrap_or_default()
                    ),
                )
            } else {
                (
                    Outcome::Fail,
                    format!(
                        "{label}: conservation violated: {}",
                        v.iter().map(|x| x.message.as_str()).collect::<Vec<_>>().join("; ")
                    ),
                )
            };
            Check {
                kind: CheckKind::Conservation,
                name: "conservation".into(),
                mechanism: row.mechanism.clone(),
                device: row.device.clone(),
                figure: "conservation".into(),
                outcome,
                measured: None,
                limit: None,
                unit: String::new(),
                message,
            }
        })
        .collect()
}

fn row_label(row: &MechanismResult) -> String {
    match &row.device {
        Some(d) => format!("{} [{d}]", row.mechanism),
        None => row.mechanism.clone(),
    }
}

/// Evaluate one threshold on one row.
pub fn check_threshold(result: &RunResult, row: &MechanismResult, t: &ThresholdSpec) -> Check {
    let fname = t.figure.name();
    let kind = t.figure.kind();
    let label = row_label(row);
    let accel = result.meta.accelerator.as_str();
    let mut c = Check {
        kind: CheckKind::Threshold,
        name: String::new(),
        mechanism: row.mechanism.clone(),
        device: row.device.clone(),
        figure: fname.clone(),
        outcome: Outcome::Fail,
        measured: None,
        limit: None,
        unit: unit(kind).into(),
        message: String::new(),
    };
    let value = figure_value(row, t.figure);
    match &t.limit {
        Limit::Absolute(_) => {
            let Some(limit) = t.absolute_for(accel) else {
                c.name = format!("{fname} (no limit for {accel})");
                c.outcome = Outcome::Skip;
                c.message = format!("{label}: {fname}: no limit for accelerator `{accel}`");
                return c;
            };
            c.name = format!("{fname} <= {}", fmt_value(limit, kind));
            c.limit = Some(limit);
            c.measured = value;
            match value {
                None => {
                    c.message = format!(
                        "{label}: {fname} was not measured (limit {})",
                        fmt_value(limit, kind)
                    )
                }
                Some(v) if v > limit => {
                    c.message = format!(
                        "{label}: {fname} = {} exceeds the limit {} ({accel})",
                        fmt_value(v, kind),
                        fmt_value(limit, kind)
                    )
                }
                Some(v) => {
                    c.outcome = Outcome::Pass;
                    c.message = format!(
                        "{label}: {fname} = {} within the limit {} ({accel})",
                        fmt_value(v, kind),
                        fmt_value(limit, kind)
                    );
                }
            }
        }
        Limit::Ratio { max, baseline } => {
            c.name = format!("{fname} <= {max}x {}", baseline.name());
            c.unit = format!("x {}", baseline.name());
            c.limit = Some(*max);
            let Figure::Latency(m, s) = t.figure else {
                c.message = format!("{label}: {fname} cannot be compared with a baseline");
                return c;
            };
            let base = baseline_value(result, row, m, s, *baseline);
            match (value, base) {
                (None, _) => {
                    c.message = format!(
                        "{label}: {fname} was not measured (limit {max}x {})",
                        baseline.name()
                    )
                }
                (_, None) => {
                    c.message = format!(
                        "{label}: {fname}: baseline {} was not measured (limit {max}x)",
                        baseline.name()
                    )
                }
                (Some(v), Some(b)) => {
                    let r = if b > 0.0 { v / b } else { f64::INFINITY };
                    c.measured = Some(r);
                    let detail = format!(
                        "{fname} = {} is {r:.2}x {} ({})",
                        fmt_ns(v),
                        baseline.name(),
                        fmt_ns(b)
                    );
                    if r > *max {
                        c.message = format!("{label}: {detail}, exceeds the limit {max}x");
                    } else {
                        c.outcome = Outcome::Pass;
                        c.message = format!("{label}: {detail}, within the limit {max}x");
                    }
                }
            }
        }
    }
    c
}

/// The value at 1-based rank `k` of ascending `(value, count)` points.
fn rank_value(points: &[(u64, u64)], k: u64) -> Option<u64> {
    let mut seen = 0u64;
    for &(v, c) in points {
        seen += c;
        if seen >= k {
            return Some(v);
        }
    }
    None
}

/// HDR quantization allowance for comparing two re-bucketed figures: the
/// back ends keep 3 significant digits (bucket width <= value / 1024), and
/// the one-way value went through two HDR recordings (raw difference in the
/// back end, estimate in the report), raise->ack through one.
fn hdr_slack_ns(one_way_ns: u64, ack_ns: u64) -> u64 {
    one_way_ns / 500 + ack_ns / 1000 + 2
}

/// Consistency of the one-way estimate, one check per row (merged and per
/// device) with raise->ack figures: a hard IRQ precedes its ack, so every
/// event's true one-way raise->hardirq latency is <= its raise->ack
/// latency, and every estimate is within `+/- error_bound_ns` of the truth.
/// Hence `one_way.max <= raise_to_ack.max + bound`; and, when the one-way
/// distribution plus `below_base` holds the same events as raise->ack,
/// also p50 and p99 (ranks shifted by `below_base`, which are the lowest). A failure points at the offset's sign or
/// the base, not at noise. Rows without an estimate get a skipped check.
pub fn one_way_consistency_checks(result: &RunResult) -> Vec<Check> {
    let mut out = Vec::new();
    for row in result.mechanisms.iter().chain(result.per_device.iter()) {
        let Some(ack) = row.raise_to_ack.as_ref().filter(|d| d.count() > 0) else {
            continue;
        };
        let label = row_label(row);
        let mut c = Check {
            kind: CheckKind::Consistency,
            name: "raise_to_hardirq <= raise_to_ack".into(),
            mechanism: row.mechanism.clone(),
            device: row.device.clone(),
            figure: "raise_to_hardirq".into(),
            outcome: Outcome::Skip,
            measured: None,
            limit: None,
            unit: "ns".into(),
            message: format!(
                "{label}: one-way raise->hardirq not measured: nothing to compare with raise->ack"
            ),
        };
        let Some(ow) = row
            .raise_to_hardirq
            .as_ref()
            .filter(|o| o.distribution.count() > 0)
        else {
            out.push(c);
            continue;
        };
        // Every stored one-way value is >= base + offset and every event
        // below the base is < it, so below-base events are the lowest ranks
        // of the full set: with the same events on both sides (one-way
        // count + below_base == acks), the full set's rank k is the stored
        // rank k - below_base.
        let below = ow.below_base;
        let n = ack.count();
        let same_events = ow.distribution.count() + below == n;
        let (opts, apts) = (ow.distribution.points(), ack.points());
        let mut stats = Vec::new();
        if same_events {
            for (name, q) in [("p50", 0.50), ("p99", 0.99)] {
                let k = ((q * n as f64).ceil() as u64).clamp(1, n);
                if k > below {
                    if let (Some(ov), Some(av)) =
                        (rank_value(&opts, k - below), rank_value(&apts, k))
                    {
                        stats.push((name, ov, av));
                    }
                }
            }
        }
        stats.push(("max", ow.distribution.summary.max_ns, ack.summary.max_ns));
        let bound = ow.error_bound_ns;
        let mut worst: Option<(i64, &str)> = None;
        let mut parts = Vec::new();
        for (name, ov, av) in &stats {
            // excess over raise->ack beyond the HDR allowance, ns
            let excess = *ov as i64 - *av as i64 - hdr_slack_ns(*ov, *av) as i64;
            if worst.is_none_or(|(w, _)| excess > w) {
                worst = Some((excess, name));
            }
            parts.push(format!(
                "{name} {} vs {}",
                fmt_ns(*ov as f64),
                fmt_ns(*av as f64)
            ));
        }
        let (excess, name) = worst.expect("max is always compared");
        c.measured = Some(excess as f64);
        c.limit = Some(bound as f64);
        let detail = format!(
            "one-way raise->hardirq vs raise->ack: {} (bound +/- {}{})",
            parts.join(", "),
            fmt_ns(bound as f64),
            if same_events {
                String::new()
            } else {
                format!(
                    "; only max compared: {} one-way events + {} below base vs {} acks",
                    ow.distribution.count(),
                    ow.below_base,
                    ack.count()
                )
            }
        );
        if excess > bound as i64 {
            c.outcome = Outcome::Fail;
            c.message = format!(
                "{label}: {detail}: one-way {name} exceeds raise->ack {name} by more than the bound \
                 (check the offset sign: host - guest)"
            );
        } else {
            c.outcome = Outcome::Pass;
            c.message = format!("{label}: {detail}: consistent");
        }
        out.push(c);
    }
    out
}

/// Evaluate conservation and every threshold of `scenario` on `result`'s
/// merged rows. On a disturbed run (`result.interference.disturbed`, set by
/// [`judge_interference`]) latency thresholds are not judged.
pub fn evaluate(scenario: &Scenario, result: &RunResult) -> Vec<Check> {
    let disturbed = result
        .interference
        .as_ref()
        .filter(|i| i.disturbed)
        .map(|i| i.disturbed_reason.clone().unwrap_or_default());
    let mut checks = conservation_checks(result);
    checks.extend(one_way_consistency_checks(result));
    for t in scenario.threshold_specs() {
        let rows: Vec<&MechanismResult> = result
            .mechanisms
            .iter()
            .filter(|r| t.mechanism.as_ref().is_none_or(|m| *m == r.mechanism))
            .collect();
        if rows.is_empty() {
            let mech = t.mechanism.clone().unwrap_or_else(|| "*".into());
            checks.push(Check {
                kind: CheckKind::Threshold,
                name: t.figure.name(),
                mechanism: mech.clone(),
                device: None,
                figure: t.figure.name(),
                outcome: Outcome::Fail,
                measured: None,
                limit: None,
                unit: unit(t.figure.kind()).into(),
                message: format!("{mech}: {}: no results for this mechanism", t.figure.name()),
            });
        }
        for row in rows {
            let mut c = check_threshold(result, row, &t);
            if let Some(reason) = disturbed.as_deref().filter(|_| is_tail_gate(&t.figure)) {
                disturbed::not_judged(&mut c, reason);
            }
            checks.push(c);
        }
    }
    checks
}

/// Judge the interference, evaluate, store the checks in `result.checks`,
/// and return the failures.
pub fn apply(scenario: &Scenario, result: &mut RunResult) -> Vec<Check> {
    judge_interference(scenario, result);
    result.checks = evaluate(scenario, result);
    result.failures().cloned().collect()
}

/// The message to print before exiting non-zero (`None` when all passed).
pub fn exit_message(failures: &[Check]) -> Option<String> {
    if failures.is_empty() {
        return None;
    }
    let mut s = format!("FAIL: {} check(s) failed:\n", failures.len());
    for f in failures {
        s.push_str("  ");
        s.push_str(&f.message);
        s.push('\n');
    }
    Some(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hist::Distribution;
    use crate::model::tests::row;
    use crate::model::{EventfdBaseline, ReferenceResult, RunMeta};
    use crate::scenario::parse;

    pub(crate) fn result(accel: &str) -> RunResult {
        let mut r = RunResult::new(RunMeta {
            scenario: "g".into(),
            accelerator: accel.into(),
            start_time: "2026-11-22T06:40:00Z".into(),
            duration_ns: 1,
            devices: vec!["dev0".into()],
            ..Default::default()
        });
        let mut t = row("tasklet", None, 1);
        let mut refc = vec![0u64; 16];
        refc[11] = 10; // ref p99 = 4096 ns; row hardirq_to_bh p99 = 65536
        t.reference = Some(ReferenceResult {
            timer_to_hardirq: None,
            hardirq_to_bh: Some(Distribution::from_log2(&refc, None).unwrap()),
            bh_run: None,
        });
        r.mechanisms.push(t);
        r.mechanisms.push(row("threaded", None, 10));
        r.baselines.host_eventfd = Some(EventfdBaseline {
            round_trips: 1,
            one_way: Distribution::from_buckets([(10_000, 1)]).unwrap(),
            round_trip: Distribution::from_buckets([(20_000, 1)]).unwrap(),
        });
        r.finalize().unwrap();
        r
    }

    const SC: &str = r#"
name = "g"
duration_ms = 100
[[sources]]
id = 0
mechanism = "tasklet"
program = { mode = "periodic", period_us = 1000 }
[[sources]]
id = 1
mechanism = "threaded"
program = { mode = "periodic", period_us = 1000 }
"#;

    pub(crate) fn sc(extra: &str) -> Scenario {
        parse(&format!("{SC}{extra}"), "g.toml").unwrap()
    }

    #[test]
    fn passing_run_has_only_passes() {
        let s = sc(
            "[[thresholds]]\nmechanism = \"*\"\nfigure = \"raise_to_ack.p99\"\nmax = \"10ms\"\n",
        );
        let mut r = result("kvm");
        let f = apply(&s, &mut r);
        assert!(f.is_empty(), "{f:?}");
        // 2 conservation + 2 one-way consistency (skipped: not measured) + 2 threshold
        assert_eq!(r.checks.len(), 6);
        assert_eq!(
            r.checks
                .iter()
                .filter(|c| c.kind == CheckKind::Consistency && c.outcome == Outcome::Skip)
                .count(),
            2
        );
        assert!(exit_message(&f).is_none());
    }

    #[test]
    fn absolute_failure_names_mechanism_figure_value_limit() {
        // threaded's raise_to_ack p99 is ~4 ms (scale 10)
        let s = sc("[[thresholds]]\nmechanism = \"*\"\nfigure = \"raise_to_ack.p99\"\nmax = { kvm = \"1ms\", tcg = \"10ms\" }\n");
        let mut r = result("kvm");
        let f = apply(&s, &mut r);
        assert_eq!(f.len(), 1, "{f:?}");
        let m = &f[0].message;
        assert!(
            m.starts_with("threaded: raise_to_ack.p99 = 4.00 ms exceeds the limit 1.00 ms (kvm)"),
            "{m}"
        );
        assert_eq!(f[0].limit, Some(1e6));
        assert!(exit_message(&f)
            .unwrap()
            .contains("threaded: raise_to_ack.p99"));
        // same threshold under tcg passes
        let mut r = result("tcg");
        assert!(apply(&s, &mut r).is_empty());
    }

    #[test]
    fn accelerator_without_limit_is_skipped() {
        let s = sc("[[thresholds]]\nmechanism = \"tasklet\"\nfigure = \"bh_run.max\"\nmax = { kvm = \"1us\" }\n");
        let mut r = result("tcg");
        assert!(apply(&s, &mut r).is_empty());
        let c = r
            .checks
            .iter()
            .find(|c| c.kind == CheckKind::Threshold)
            .unwrap();
        assert_eq!(c.outcome, Outcome::Skip);
    }

    #[test]
    fn ratio_failure_names_baseline() {
        let s = sc(concat!(
            "[[thresholds]]\nmechanism = \"tasklet\"\nfigure = \"hardirq_to_bh.p99\"\nmax_ratio = 4.0\nbaseline = \"ref_hrtimer\"\n",
            "[[thresholds]]\nmechanism = \"*\"\nfigure = \"raise_to_ack.p99\"\nmax_ratio = 100.0\nbaseline = \"host_eventfd\"\n",
        ));
        let mut r = result("kvm");
        let f = apply(&s, &mut r);
        let msgs: Vec<&str> = f.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(f.len(), 2, "{msgs:?}");
        assert_eq!(
            msgs[0],
            "tasklet: hardirq_to_bh.p99 = 65.5 us is 16.00x ref_hrtimer (4.10 us), exceeds the limit 4x"
        );
        assert!(
            msgs[1].starts_with("threaded: raise_to_ack.p99 = 4.00 ms is 199.9"),
            "{}",
            msgs[1]
        );
        assert!(
            msgs[1].ends_with("host_eventfd (20.0 us), exceeds the limit 100x"),
            "{}",
            msgs[1]
        );
        // threaded has no reference: a ref_hrtimer threshold on it fails as unmeasured
        let s = sc("[[thresholds]]\nmechanism = \"threaded\"\nfigure = \"bh_run.p99\"\nmax_ratio = 4.0\nbaseline = \"ref_hrtimer\"\n");
        let f = apply(&s, &mut result("kvm"));
        assert_eq!(
            f[0].message,
            "threaded: bh_run.p99: baseline ref_hrtimer was not measured (limit 4x)"
        );
    }

    #[test]
    fn counts_ratios_and_unmeasured() {
        let s = sc(concat!(
            "[[thresholds]]\nmechanism = \"tasklet\"\nfigure = \"coalesced_ratio\"\nmax = 0.05\n",
            "[[thresholds]]\nmechanism = \"tasklet\"\nfigure = \"dropped\"\nmax = 0\n",
            "[[thresholds]]\nmechanism = \"tasklet\"\nfigure = \"raise_to_hardirq.p99\"\nmax = \"1ms\"\n",
        ));
        let f = apply(&s, &mut result("kvm"));
        let msgs: Vec<&str> = f.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(
            msgs,
            vec![
                "tasklet: coalesced_ratio = 0.0900 exceeds the limit 0.0500 (kvm)",
                "tasklet: dropped = 4 exceeds the limit 0 (kvm)",
                "tasklet: raise_to_hardirq.p99 was not measured (limit 1.00 ms)",
            ]
        );
    }

    #[test]
    fn conservation_failure_is_a_check_failure() {
        let s = sc("");
        let mut r = result("kvm");
        r.mechanisms[1].host.pending += 5;
        let f = apply(&s, &mut r);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, CheckKind::Conservation);
        assert!(
            f[0].message
                .starts_with("threaded: conservation violated: raised 1000 != records 900"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn missing_mechanism_row_fails() {
        let s = sc(
            "[[thresholds]]\nmechanism = \"threaded\"\nfigure = \"bh_run.p99\"\nmax = \"1ms\"\n",
        );
        let mut r = result("kvm");
        r.mechanisms.retain(|m| m.mechanism != "threaded");
        let f = apply(&s, &mut r);
        assert_eq!(
            f[0].message,
            "threaded: bh_run.p99: no results for this mechanism"
        );
    }

    #[test]
    fn one_way_must_not_exceed_raise_to_ack() {
        use crate::model::OneWay;
        let mut r = result("tcg");
        let ack = r.mechanisms[0].raise_to_ack.clone().unwrap();
        let n = ack.count();
        let (amin, amax) = (ack.summary.min_ns, ack.summary.max_ns);
        let ow = |v: u64, count: u64, below: u64, bound: u64| OneWay {
            distribution: Distribution::from_buckets([(v, count)]).unwrap(),
            negative_samples: 0,
            error_bound_ns: bound,
            below_base: below,
            method: crate::model::METHOD_PING.into(),
            after_irq_start: 0,
            past_budget: 0,
            uncalibrated: 0,
            unchecked: 0,
        };
        let checks = |r: &RunResult| -> Vec<Check> {
            one_way_consistency_checks(r)
                .into_iter()
                .filter(|c| c.mechanism == "tasklet")
                .collect()
        };
        // not measured: a skipped testcase, no figure
        let c = checks(&r);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].kind, c[0].outcome),
            (CheckKind::Consistency, Outcome::Skip)
        );
        // below raise->ack: passes
        r.mechanisms[0].raise_to_hardirq = Some(ow(amin / 2, n, 0, 1_000));
        r.finalize().unwrap();
        let c = checks(&r);
        assert_eq!(c[0].outcome, Outcome::Pass, "{}", c[0].message);
        assert!(c[0].message.contains("p50"), "{}", c[0].message);
        // above raise->ack max by more than the bound: fails, names the sign
        r.mechanisms[0].raise_to_hardirq = Some(ow(amax * 2, n, 0, 1_000));
        r.finalize().unwrap();
        let c = checks(&r);
        assert_eq!(c[0].outcome, Outcome::Fail);
        assert!(c[0].message.contains("host - guest"), "{}", c[0].message);
        // within the bound: passes
        r.mechanisms[0].raise_to_hardirq = Some(ow(amax + 1_000, n, 0, amax));
        r.finalize().unwrap();
        assert_eq!(checks(&r)[0].outcome, Outcome::Pass);
        // one event below base: the lowest rank, quantiles still compared
        r.mechanisms[0].raise_to_hardirq = Some(ow(amin / 2, n - 1, 1, 1_000));
        r.finalize().unwrap();
        let c = checks(&r);
        assert_eq!(c[0].outcome, Outcome::Pass);
        assert!(c[0].message.contains("p50"), "{}", c[0].message);
        // events missing (no hardirq stamp): only max is compared
        r.mechanisms[0].raise_to_hardirq = Some(ow(amin / 2, n - 5, 1, 1_000));
        r.finalize().unwrap();
        let c = checks(&r);
        assert_eq!(c[0].outcome, Outcome::Pass);
        assert!(
            c[0].message.contains("only max compared"),
            "{}",
            c[0].message
        );
        assert_eq!(rank_value(&[(5, 2), (9, 1)], 2), Some(5));
        assert_eq!(rank_value(&[(5, 2), (9, 1)], 3), Some(9));
        assert_eq!(rank_value(&[(5, 2)], 3), None);
        assert!(!c[0].message.contains("p50"), "{}", c[0].message);
    }
}
