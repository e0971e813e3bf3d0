//! `repeats.json`: the top-level summary of `cargo xtask run --repeat N`
//! (each run's own report directory is `runs/<k>/`). Lists every run's
//! outcome and per-mechanism figures, and their spread over the runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::load::{RunFigures, DEFAULT_FIGURES};
use super::stats::median;

/// `kind` of a `repeats.json` (how `compare` tells it from a report.json).
pub const REPEATS_KIND: &str = "irqstorm-repeats";

/// Version of the `repeats.json` layout.
pub const REPEATS_SCHEMA_VERSION: u32 = 1;

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every check passed.
    Passed,
    /// A check failed (`failed_checks`).
    Failed,
    /// The run did not complete (`error`); no report.
    Error,
}

/// One run of the repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatRun {
    /// 1-based run number.
    pub run: u32,
    /// Its report directory, relative to the top-level one (`runs/<k>`).
    pub dir: String,
    pub outcome: RunOutcome,
    #[serde(default)]
    pub failed_checks: Vec<String>,
    /// Why the run did not complete.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub disturbed: bool,
    /// mechanism -> figure -> ns (`None` for a run without a report).
    #[serde(default)]
    pub figures: Option<BTreeMap<String, BTreeMap<String, f64>>>,
}

/// One figure's spread over the runs that measured it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mechanism: String,
    pub figure: String,
    pub runs: usize,
    pub median_ns: f64,
    pub min_ns: f64,
    pub max_ns: f64,
}

/// The file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatsFile {
    pub schema_version: u32,
    /// Always [`REPEATS_KIND`].
    pub kind: String,
    pub scenario_file: String,
    /// Runs asked for.
    pub repeat: u32,
    pub runs: Vec<RepeatRun>,
    /// Spread of the default comparison figures (every run with a report).
    #[serde(default)]
    pub spread: Vec<Spread>,
}

impl RepeatsFile {
    pub fn new(scenario_file: &str, repeat: u32) -> Self {
        RepeatsFile {
            schema_version: REPEATS_SCHEMA_VERSION,
            kind: REPEATS_KIND.into(),
            scenario_file: scenario_file.into(),
            repeat,
            runs: Vec::new(),
            spread: Vec::new(),
        }
    }

    /// Adds a finished run: its figures (read back from its report.json)
    /// or why it did not complete; and updates the spread.
    pub fn push(&mut self, run: u32, figures: Result<RunFigures, String>) -> &RepeatRun {
        let dir = format!("runs/{run}");
        let r = match figures {
            Ok(f) => RepeatRun {
                run,
                dir,
                outcome: if f.failed_checks.is_empty() {
                    RunOutcome::Passed
                } else {
                    RunOutcome::Failed
                },
                failed_checks: f.failed_checks,
                error: None,
                disturbed: f.disturbed,
                figures: Some(f.figures),
            },
            Err(e) => RepeatRun {
                run,
                dir,
                outcome: RunOutcome::Error,
                failed_checks: Vec::new(),
                error: Some(e),
                disturbed: false,
                figures: None,
            },
        };
        self.runs.push(r);
        self.spread = spread(&self.runs);
        &self.runs[self.runs.len() - 1]
    }

    /// Runs that failed a check or did not complete.
    pub fn bad_runs(&self) -> impl Iterator<Item = &RepeatRun> {
        self.runs.iter().filter(|r| r.outcome != RunOutcome::Passed)
    }

    /// The spread as a table (us): one row per mechanism and figure.
    pub fn spread_table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{:<14} {:<22} {:>4} {:>10} {:>10} {:>10}",
            "mechanism", "figure (us)", "runs", "median", "min", "max"
        );
        for s in &self.spread {
            let _ = writeln!(
                o,
                "{:<14} {:<22} {:>4} {:>10.1} {:>10.1} {:>10.1}",
                s.mechanism,
                s.figure,
                s.runs,
                s.median_ns / 1e3,
                s.min_ns / 1e3,
                s.max_ns / 1e3
            );
        }
        o
    }
}

/// The one-line summary of a finished run: outcome, then hardirq->bh
/// p50/p99 per mechanism (us).
pub fn summary_line(r: &RepeatRun, of: u32) -> String {
    let mut o = format!("run {}/{of}: ", r.run);
    match r.outcome {
        RunOutcome::Passed => o.push_str("passed"),
        RunOutcome::Failed => {
            let _ = write!(o, "FAILED {} check(s)", r.failed_checks.len());
        }
        RunOutcome::Error => {
            let _ = write!(o, "ERROR {}", r.error.as_deref().unwrap_or("?"));
        }
    }
    if r.disturbed {
        o.push_str(" (disturbed)");
    }
    if let Some(figs) = &r.figures {
        o.push_str("; hardirq->bh p50/p99 us:");
        for (mech, f) in figs {
            if let (Some(a), Some(b)) = (f.get("hardirq_to_bh.p50"), f.get("hardirq_to_bh.p99")) {
                let _ = write!(o, " {mech} {:.1}/{:.1}", a / 1e3, b / 1e3);
            }
        }
    }
    o
}

fn spread(runs: &[RepeatRun]) -> Vec<Spread> {
    let mut by: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    for figs in runs.iter().filter_map(|r| r.figures.as_ref()) {
        for (mech, f) in figs {
            for (i, name) in DEFAULT_FIGURES.iter().enumerate() {
                if let Some(v) = f.get(*name) {
                    by.entry((mech.clone(), i)).or_default().push(*v);
                }
            }
        }
    }
    by.into_iter()
        .map(|((mechanism, i), v)| Spread {
            mechanism,
            figure: DEFAULT_FIGURES[i].into(),
            runs: v.len(),
            median_ns: median(&v).unwrap_or(0.0),
            min_ns: v.iter().copied().fold(f64::INFINITY, f64::min),
            max_ns: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figs(p50: f64, failed: &[&str]) -> RunFigures {
        let mut f = BTreeMap::new();
        f.insert("hardirq_to_bh.p50".to_string(), p50);
        f.insert("hardirq_to_bh.p99".to_string(), p50 * 2.0);
        RunFigures {
            label: "x".into(),
            disturbed: false,
            failed_checks: failed.iter().map(|s| s.to_string()).collect(),
            figures: BTreeMap::from([("bh_wq".to_string(), f)]),
        }
    }

    #[test]
    fn runs_outcomes_spread_and_roundtrip() {
        let mut r = RepeatsFile::new("tests/scenarios/ci-quick.toml", 3);
        let line = summary_line(r.push(1, Ok(figs(80_000.0, &[]))), 3);
        assert_eq!(
            line,
            "run 1/3: passed; hardirq->bh p50/p99 us: bh_wq 80.0/160.0"
        );
        r.push(2, Ok(figs(100_000.0, &["bh_wq: too slow"])));
        let line = summary_line(r.push(3, Err("guest timed out".into())), 3);
        assert_eq!(line, "run 3/3: ERROR guest timed out");
        let bad: Vec<u32> = r.bad_runs().map(|x| x.run).collect();
        assert_eq!(bad, vec![2, 3]);
        assert_eq!(r.runs[1].outcome, RunOutcome::Failed);
        let s = &r.spread[0];
        assert_eq!(
            (s.figure.as_str(), s.runs, s.median_ns, s.min_ns, s.max_ns),
            ("hardirq_to_bh.p50", 2, 90_000.0, 80_000.0, 100_000.0)
        );
        assert!(r.spread_table().contains(
            "bh_wq          hardirq_to_bh.p50         2       90.0       80.0      100.0"
        ));
        let text = serde_json::to_string_pretty(&r).unwrap();
        let back: RepeatsFile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
