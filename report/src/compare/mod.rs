//! `irqstorm-report compare BASE NEW`: does NEW differ from BASE, per
//! mechanism and figure, beyond run-to-run noise?
//!
//! Each side is a set of runs (`cargo xtask run --repeat N`, or single
//! reports); each run gives one value per mechanism and figure (e.g.
//! `hardirq_to_bh.p99`). Per figure: the two-sided Mann-Whitney U test over
//! those per-run values ([`stats::mann_whitney`]), the difference of
//! medians with a seeded bootstrap interval ([`stats::bootstrap_median_diff`]),
//! and the decision [`stats::judge`]: significant at `1 - confidence` and at
//! least the minimum effect. Runs marked `disturbed` are left out and
//! listed. The method is documented in `docs/report.md` ("Comparing runs").

pub mod load;
pub mod render;
pub mod repeats;
pub mod stats;

use serde::Serialize;

use crate::model::MECHANISMS;
use load::RunSet;
use stats::{Bootstrap, Interval, MinEffect, PMethod, Verdict};

/// Version of the comparison's JSON.
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

/// Errors of the comparison options.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    #[error("unknown figure `{0}` (metric.stat: metric raise_to_ack, hardirq_to_bh, bh_run or raise_to_hardirq; stat min, p50, p90, p99, p99.9, max or mean)")]
    Figure(String),
    #[error("confidence {0} is not within (0, 1)")]
    Confidence(f64),
    #[error("no figures to compare")]
    NoFigures,
    #[error(transparent)]
    Stats(#[from] stats::StatsError),
}

/// Multiple-comparison correction over the figures of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Each figure tested at `1 - confidence` on its own.
    None,
    /// Holm's step-down adjustment over every judged figure (family-wise).
    Holm,
}

/// How to compare.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Options {
    /// Confidence of the test and of the interval (significance level
    /// `1 - confidence`).
    pub confidence: f64,
    pub min_effect: MinEffect,
    /// Figures (`metric.stat`) to compare.
    pub figures: Vec<String>,
    /// Mechanisms to compare; empty: all.
    pub mechanisms: Vec<String>,
    pub correction: Correction,
    pub bootstrap: Bootstrap,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            confidence: 0.99,
            min_effect: MinEffect::default(),
            figures: load::DEFAULT_FIGURES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            mechanisms: Vec::new(),
            correction: Correction::None,
            bootstrap: Bootstrap::default(),
        }
    }
}

/// The runs one side contributed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub source: String,
    /// Runs in the statistics.
    pub runs: Vec<String>,
    /// Runs marked disturbed: listed, not used.
    pub disturbed: Vec<String>,
    /// Runs that left no report.
    pub missing: Vec<String>,
    /// Runs that failed a check of their own (still used).
    pub failed: Vec<String>,
}

/// The comparison of one mechanism's figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub mechanism: String,
    pub figure: String,
    /// Runs with a value, per side (disturbed ones left out).
    pub base_runs: usize,
    pub new_runs: usize,
    pub base_median_ns: Option<f64>,
    pub new_median_ns: Option<f64>,
    /// `new - base` medians.
    pub delta_ns: Option<f64>,
    /// `delta / base` median.
    pub delta_rel: Option<f64>,
    /// Mann-Whitney U of NEW against BASE.
    pub u: Option<f64>,
    /// Two-sided p-value of the test.
    pub p_value: Option<f64>,
    /// The p-value the decision used (Holm-adjusted under `holm`).
    pub p_decision: Option<f64>,
    pub p_method: Option<PMethod>,
    /// Bootstrap interval of `delta_ns` at the confidence.
    pub ci_ns: Option<Interval>,
    /// The minimum effect for this figure, ns.
    pub min_effect_ns: Option<f64>,
    pub verdict: Verdict,
    /// Why this verdict, in words.
    pub reason: String,
}

/// The method, as stated in the output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Method {
    pub test: &'static str,
    pub interval: &'static str,
    pub confidence: f64,
    pub alpha: f64,
    pub correction: Correction,
    pub min_effect: MinEffect,
    pub bootstrap: Bootstrap,
    /// Figures judged (not "not enough runs"): under `none`, up to
    /// `judged * alpha` of them may be flagged when nothing changed.
    pub judged: usize,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub method: Method,
    pub base: Side,
    pub new: Side,
    pub rows: Vec<Row>,
    pub regressions: usize,
    pub improvements: usize,
}

fn side(set: &RunSet) -> Side {
    let label = |r: &load::RunFigures| r.label.clone();
    Side {
        source: set.source.clone(),
        runs: set
            .runs
            .iter()
            .filter(|r| !r.disturbed)
            .map(label)
            .collect(),
        disturbed: set.runs.iter().filter(|r| r.disturbed).map(label).collect(),
        missing: set.missing.clone(),
        failed: set
            .runs
            .iter()
            .filter(|r| !r.failed_checks.is_empty())
            .map(label)
            .collect(),
    }
}

/// The undisturbed runs' values of one mechanism's figure.
fn values(set: &RunSet, mech: &str, figure: &str) -> Vec<f64> {
    set.runs
        .iter()
        .filter(|r| !r.disturbed)
        .filter_map(|r| r.figures.get(mech)?.get(figure).copied())
        .collect()
}

/// Mechanisms of either side, in the spec's order (unknown names last).
fn mechanisms(base: &RunSet, new: &RunSet, only: &[String]) -> Vec<String> {
    let mut names: Vec<String> = base
        .runs
        .iter()
        .chain(&new.runs)
        .flat_map(|r| r.figures.keys().cloned())
        .filter(|m| only.is_empty() || only.contains(m))
        .collect();
    let order = |m: &String| {
        MECHANISMS
            .iter()
            .position(|x| *x == m)
            .unwrap_or(usize::MAX)
    };
    names.sort_by(|a, b| (order(a), a).cmp(&(order(b), b)));
    names.dedup();
    names
}

/// Compare NEW with BASE.
pub fn compare(base: &RunSet, new: &RunSet, o: &Options) -> Result<Comparison, CompareError> {
    if !(o.confidence > 0.0 && o.confidence < 1.0) {
        return Err(CompareError::Confidence(o.confidence));
    }
    if o.figures.is_empty() {
        return Err(CompareError::NoFigures);
    }
    if let Some(f) = o.figures.iter().find(|f| !load::is_known_figure(f)) {
        return Err(CompareError::Figure(f.clone()));
    }
    // rounded, so 0.99 gives 0.01 and not 0.010000000000000009
    let alpha = ((1.0 - o.confidence) * 1e9).round() / 1e9;
    let mut rows = Vec::new();
    for mech in mechanisms(base, new, &o.mechanisms) {
        for fig in &o.figures {
            let (b, n) = (values(base, &mech, fig), values(new, &mech, fig));
            if b.is_empty() && n.is_empty() {
                continue; // neither side measured it
            }
            rows.push(row(&mech, fig, &b, &n, alpha, o)?);
        }
    }
    // The decision p-values, then the verdicts.
    let judged: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].p_value.is_some())
        .collect();
    let ps: Vec<f64> = judged.iter().filter_map(|&i| rows[i].p_value).collect();
    let adjusted = match o.correction {
        Correction::None => ps,
        Correction::Holm => stats::holm(&ps),
    };
    for (&i, p) in judged.iter().zip(adjusted) {
        let r = &mut rows[i];
        let (delta, thr) = (r.delta_ns.unwrap_or(0.0), r.min_effect_ns.unwrap_or(0.0));
        r.p_decision = Some(p);
        r.verdict = stats::judge(p, alpha, delta, thr);
        let adj = if o.correction == Correction::Holm {
            " (Holm)"
        } else {
            ""
        };
        r.reason = if !stats::significant(p, alpha) {
            format!("p{adj} = {p:.4} >= {alpha}: no significant difference")
        } else if delta.abs() < thr {
            format!(
                "p{adj} = {p:.4} < {alpha}, but |delta| {:.2} us < minimum effect {:.2} us",
                delta.abs() / 1e3,
                thr / 1e3
            )
        } else {
            format!(
                "p{adj} = {p:.4} < {alpha} and |delta| {:.2} us >= minimum effect {:.2} us",
                delta.abs() / 1e3,
                thr / 1e3
            )
        };
    }
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    Ok(Comparison {
        schema_version: COMPARE_SCHEMA_VERSION,
        method: Method {
            test: "two-sided Mann-Whitney U over per-run figures (exact without ties below 50 runs a side, else normal approximation with tie and continuity correction)",
            interval: "percentile bootstrap interval, both sides resampled with replacement at their own sizes",
            confidence: o.confidence,
            alpha,
            correction: o.correction,
            min_effect: o.min_effect,
            bootstrap: o.bootstrap,
            judged: judged.len(),
        },
        base: side(base),
        new: side(new),
        regressions: count(Verdict::Regression),
        improvements: count(Verdict::Improvement),
        rows,
    })
}

/// One row before the decision (which needs every row's p-value).
fn row(
    mech: &str,
    fig: &str,
    b: &[f64],
    n: &[f64],
    alpha: f64,
    o: &Options,
) -> Result<Row, CompareError> {
    let (bm, nm) = (stats::median(b), stats::median(n));
    let delta = bm.zip(nm).map(|(b, n)| n - b);
    let mut r = Row {
        mechanism: mech.to_string(),
        figure: fig.to_string(),
        base_runs: b.len(),
        new_runs: n.len(),
        base_median_ns: bm,
        new_median_ns: nm,
        delta_ns: delta,
        delta_rel: bm.zip(delta).and_then(|(b, d)| (b != 0.0).then_some(d / b)),
        u: None,
        p_value: None,
        p_decision: None,
        p_method: None,
        ci_ns: None,
        min_effect_ns: bm.map(|b| o.min_effect.threshold(b)),
        verdict: Verdict::NotEnoughRuns,
        reason: String::new(),
    };
    let min_p = stats::min_p_value(b.len(), n.len());
    if b.is_empty() || n.is_empty() {
        let which = if b.is_empty() { "BASE" } else { "NEW" };
        r.reason = format!("not enough runs to judge: no {which} run measured it");
        return Ok(r);
    }
    if !stats::significant(min_p, alpha) {
        r.reason = format!(
            "not enough runs to judge: with {}+{} runs the smallest possible p is {:.4} >= {alpha}; needs at least {} runs per side",
            b.len(),
            n.len(),
            min_p,
            stats::runs_needed(alpha)
        );
        return Ok(r);
    }
    let mw = stats::mann_whitney(n, b)?;
    r.u = Some(mw.u);
    r.p_value = Some(mw.p);
    r.p_method = Some(mw.method);
    r.ci_ns = Some(stats::bootstrap_median_diff(
        b,
        n,
        o.confidence,
        o.bootstrap,
    )?);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::load::RunFigures;
    use super::*;
    use std::collections::BTreeMap;

    /// A side whose runs have `hardirq_to_bh.p50` = the given us values for bh_wq.
    fn set(name: &str, us: &[f64], disturbed: &[usize]) -> RunSet {
        RunSet {
            source: name.into(),
            runs: us
                .iter()
                .enumerate()
                .map(|(i, v)| RunFigures {
                    label: format!("runs/{}", i + 1),
                    disturbed: disturbed.contains(&(i + 1)),
                    failed_checks: Vec::new(),
                    figures: BTreeMap::from([(
                        "bh_wq".to_string(),
                        BTreeMap::from([("hardirq_to_bh.p50".to_string(), v * 1e3)]),
                    )]),
                })
                .collect(),
            missing: Vec::new(),
        }
    }

    fn one(base: &RunSet, new: &RunSet, o: &Options) -> Row {
        let c = compare(base, new, o).unwrap();
        assert_eq!(c.rows.len(), 1, "{:?}", c.rows);
        c.rows[0].clone()
    }

    #[test]
    fn single_runs_are_not_enough() {
        let r = one(
            &set("a", &[80.0], &[]),
            &set("b", &[200.0], &[]),
            &Options::default(),
        );
        assert_eq!(r.verdict, Verdict::NotEnoughRuns);
        assert!(
            r.reason
                .starts_with("not enough runs to judge: with 1+1 runs"),
            "{}",
            r.reason
        );
        assert_eq!(r.p_value, None);
        assert_eq!(r.delta_ns, Some(120_000.0));
    }

    #[test]
    fn shift_is_a_regression_noise_is_not() {
        let o = Options::default();
        let base = set("a", &[80.0, 82.0, 79.0, 85.0, 81.0], &[]);
        let r = one(
            &base,
            &set("b", &[101.0, 99.0, 103.0, 100.0, 98.0], &[]),
            &o,
        );
        assert_eq!(r.verdict, Verdict::Regression, "{}", r.reason);
        assert_eq!(r.p_method, Some(PMethod::Exact));
        assert!((r.p_value.unwrap() - 2.0 / 252.0).abs() < 1e-12);
        assert_eq!(r.delta_ns, Some(19_000.0));
        let r = one(&base, &set("b", &[80.5, 83.0, 78.0, 84.0, 81.5], &[]), &o);
        assert_eq!(r.verdict, Verdict::Same, "{}", r.reason);
        let r = one(
            &set("b", &[101.0, 99.0, 103.0, 100.0, 98.0], &[]),
            &base,
            &o,
        );
        assert_eq!(r.verdict, Verdict::Improvement);
    }

    #[test]
    fn significant_but_small_is_same() {
        // complete separation, but 1 us on 80 us is below max(2 us, 10 %)
        let r = one(
            &set("a", &[80.0, 80.1, 80.2, 80.3, 80.4], &[]),
            &set("b", &[81.0, 81.1, 81.2, 81.3, 81.4], &[]),
            &Options::default(),
        );
        assert_eq!(r.verdict, Verdict::Same);
        assert!(
            r.reason.contains("< minimum effect 8.02 us"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn disturbed_runs_are_left_out_and_listed() {
        // 5 clean runs a side plus a wild disturbed run on NEW
        let base = set("a", &[80.0, 82.0, 79.0, 85.0, 81.0], &[]);
        let new = set("b", &[101.0, 99.0, 103.0, 100.0, 98.0, 10.0], &[6]);
        let c = compare(&base, &new, &Options::default()).unwrap();
        assert_eq!(c.new.disturbed, vec!["runs/6"]);
        assert_eq!(c.new.runs.len(), 5);
        assert_eq!(c.rows[0].new_runs, 5);
        assert_eq!(c.rows[0].verdict, Verdict::Regression);
        // all but 4 disturbed: too few left at 0.99
        let new = set("b", &[101.0, 99.0, 103.0, 100.0, 98.0], &[1]);
        let r = one(&base, &new, &Options::default());
        assert_eq!(r.verdict, Verdict::NotEnoughRuns);
        assert!(
            r.reason.contains("needs at least 5 runs per side"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn holm_makes_a_family_stricter() {
        let base = set("a", &[80.0, 82.0, 79.0, 85.0, 81.0], &[]);
        let new = set("b", &[101.0, 99.0, 103.0, 100.0, 98.0], &[]);
        let mut o = Options {
            confidence: 0.95,
            correction: Correction::Holm,
            ..Default::default()
        };
        // one figure: Holm changes nothing
        assert_eq!(one(&base, &new, &o).verdict, Verdict::Regression);
        // a family of 8 figures of which only one was measured: still 1 test
        o.figures = load::DEFAULT_FIGURES
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(compare(&base, &new, &o).unwrap().method.judged, 1);
    }

    #[test]
    fn bad_options_are_errors() {
        let a = set("a", &[1.0], &[]);
        let o = Options {
            figures: vec!["hardirq_to_bh.p42".into()],
            ..Default::default()
        };
        assert!(matches!(compare(&a, &a, &o), Err(CompareError::Figure(_))));
        let o = Options {
            confidence: 1.5,
            ..Default::default()
        };
        assert_eq!(compare(&a, &a, &o), Err(CompareError::Confidence(1.5)));
    }
}
