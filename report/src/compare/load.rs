//! Per-run figures out of saved reports: a `report.json`, a report
//! directory (one run, or `runs/<k>/report.json` of `cargo xtask run
//! --repeat N`) or a `repeats.json`.
//!
//! `report.json` is read as plain JSON, not as [`crate::model::RunResult`]:
//! reports written by older or newer versions (fields added, such as
//! `disturbed`) still compare, and a field of the wrong type is named with
//! its path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::repeats::{RepeatsFile, RunOutcome, REPEATS_KIND};

/// Latency metrics with per-run figures, as `report.json` names them.
pub const METRICS: [&str; 4] = [
    "raise_to_ack",
    "hardirq_to_bh",
    "bh_run",
    "raise_to_hardirq",
];

/// Statistics of a metric (figure suffix, `LatencySummary` field).
pub const STATS: [(&str, &str); 7] = [
    ("min", "min_ns"),
    ("p50", "p50_ns"),
    ("p90", "p90_ns"),
    ("p99", "p99_ns"),
    ("p99.9", "p999_ns"),
    ("max", "max_ns"),
    ("mean", "mean_ns"),
];

/// The figures compared unless `--figures` says otherwise.
pub const DEFAULT_FIGURES: [&str; 8] = [
    "hardirq_to_bh.p50",
    "hardirq_to_bh.p99",
    "raise_to_ack.p50",
    "raise_to_ack.p99",
    "bh_run.p50",
    "bh_run.p99",
    "raise_to_hardirq.p50",
    "raise_to_hardirq.p99",
];

/// Whether `figure` (`metric.stat`) is one this module extracts.
pub fn is_known_figure(figure: &str) -> bool {
    figure
        .split_once('.')
        .is_some_and(|(m, s)| METRICS.contains(&m) && STATS.iter().any(|(name, _)| *name == s))
}

/// Errors of loading saved reports; each names the file and, for content
/// errors, the field.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: field `{field}`: {problem}")]
    Field {
        path: String,
        field: String,
        problem: String,
    },
    #[error("{path}: a directory with neither report.json nor runs/<k>/report.json")]
    NoReport { path: String },
    #[error("{path}: no run with a report.json")]
    NoRuns { path: String },
}

/// One run's figures: mechanism -> figure (`hardirq_to_bh.p50`) -> ns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    /// Short name of the run (`runs/3`, or the file).
    pub label: String,
    /// `disturbed: true` in the report (the host disturbed the run).
    #[serde(default)]
    pub disturbed: bool,
    /// Messages of the run's failed checks.
    #[serde(default)]
    pub failed_checks: Vec<String>,
    pub figures: BTreeMap<String, BTreeMap<String, f64>>,
}

/// The runs of one side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSet {
    /// What was given (file or directory).
    pub source: String,
    pub runs: Vec<RunFigures>,
    /// Runs that left no report (a run that failed to complete).
    pub missing: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Loads `path`: a `report.json` or `repeats.json` file, or a report
/// directory (`runs/<k>/report.json` when there is a `runs/` directory,
/// else its `report.json`).
pub fn load(path: &Path) -> Result<RunSet, LoadError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let mut set = RunSet {
        source: shown.clone(),
        runs: Vec::new(),
        missing: Vec::new(),
    };
    if !meta.is_dir() {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let v: Value = serde_json::from_str(&text).map_err(|source| LoadError::Json {
            path: shown.clone(),
            source,
        })?;
        if v.get("kind").and_then(Value::as_str) == Some(REPEATS_KIND) {
            from_repeats(&shown, v, &mut set)?;
        } else {
            set.runs.push(figures_of(&v, &shown, &shown)?);
        }
    } else {
        let runs = path.join("runs");
        if runs.is_dir() {
            for (label, dir) in run_dirs(&runs)? {
                let f = dir.join("report.json");
                if f.is_file() {
                    set.runs.push(read_report(&f, &label)?);
                } else {
                    set.missing.push(label);
                }
            }
        } else if path.join("report.json").is_file() {
            set.runs
                .push(read_report(&path.join("report.json"), &shown)?);
        } else {
            return Err(LoadError::NoReport { path: shown });
        }
    }
    if set.runs.is_empty() {
        return Err(LoadError::NoRuns { path: shown });
    }
    Ok(set)
}

/// The subdirectories of `runs/`, numbered ones in numeric order first.
fn run_dirs(runs: &Path) -> Result<Vec<(String, PathBuf)>, LoadError> {
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(runs).map_err(io(runs))? {
        let e = e.map_err(io(runs))?;
        if e.path().is_dir() {
            let name = e.file_name().to_string_lossy().into_owned();
            dirs.push((name.parse::<u64>().ok(), name, e.path()));
        }
    }
    dirs.sort_by(|a, b| (a.0.is_none(), a.0, &a.1).cmp(&(b.0.is_none(), b.0, &b.1)));
    Ok(dirs
        .into_iter()
        .map(|(_, name, p)| (format!("runs/{name}"), p))
        .collect())
}

/// One `report.json` file's figures.
pub fn read_report(file: &Path, label: &str) -> Result<RunFigures, LoadError> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(io(file))?;
    let v: Value = serde_json::from_str(&text).map_err(|source| LoadError::Json {
        path: shown.clone(),
        source,
    })?;
    figures_of(&v, &shown, label)
}

fn from_repeats(shown: &str, v: Value, set: &mut RunSet) -> Result<(), LoadError> {
    let rf: RepeatsFile = serde_json::from_value(v).map_err(|source| LoadError::Json {
        path: shown.to_string(),
        source,
    })?;
    for r in rf.runs {
        let label = format!("runs/{}", r.run);
        match (r.outcome, r.figures) {
            (RunOutcome::Error, _) | (_, None) => set.missing.push(label),
            (_, Some(figures)) => set.runs.push(RunFigures {
                label,
                disturbed: r.disturbed,
                failed_checks: r.failed_checks,
                figures,
            }),
        }
    }
    Ok(())
}

/// A field problem at `field` of file `path`.
fn bad(path: &str, field: &str, problem: &str) -> LoadError {
    LoadError::Field {
        path: path.to_string(),
        field: field.to_string(),
        problem: problem.to_string(),
    }
}

/// `v[key]`, `None` when absent or `null`.
fn opt<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// The figures of a parsed `report.json`.
pub fn figures_of(v: &Value, path: &str, label: &str) -> Result<RunFigures, LoadError> {
    if !v.is_object() {
        return Err(bad(
            path,
            "(top level)",
            "expected a JSON object (a report.json)",
        ));
    }
    let mut disturbed = false;
    for (field, node) in [
        ("disturbed", opt(v, "disturbed")),
        (
            "meta.disturbed",
            opt(v, "meta").and_then(|m| opt(m, "disturbed")),
        ),
        (
            "interference.disturbed",
            opt(v, "interference").and_then(|m| opt(m, "disturbed")),
        ),
    ] {
        if let Some(d) = node {
            disturbed |= d
                .as_bool()
                .ok_or_else(|| bad(path, field, "expected true or false"))?;
        }
    }
    let mechs = opt(v, "mechanisms")
        .ok_or_else(|| bad(path, "mechanisms", "missing (not a report.json?)"))?
        .as_array()
        .ok_or_else(|| bad(path, "mechanisms", "expected an array"))?;
    let mut figures = BTreeMap::new();
    for (i, m) in mechs.iter().enumerate() {
        let at = format!("mechanisms[{i}]");
        let name = opt(m, "mechanism")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(path, &format!("{at}.mechanism"), "expected a string"))?;
        let mut row = BTreeMap::new();
        for metric in METRICS {
            let Some(dist) = opt(m, metric) else { continue };
            let (summary, sfield) = if metric == "raise_to_hardirq" {
                (
                    opt(dist, "distribution").and_then(|d| opt(d, "summary")),
                    format!("{at}.{metric}.distribution.summary"),
                )
            } else {
                (opt(dist, "summary"), format!("{at}.{metric}.summary"))
            };
            let summary = summary
                .filter(|s| s.is_object())
                .ok_or_else(|| bad(path, &sfield, "expected an object"))?;
            let count = opt(summary, "count")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    bad(
                        path,
                        &format!("{sfield}.count"),
                        "expected an unsigned integer",
                    )
                })?;
            if count == 0 {
                continue; // an empty distribution: nothing measured
            }
            for (stat, key) in STATS {
                let Some(x) = opt(summary, key) else { continue };
                let x = x
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| bad(path, &format!("{sfield}.{key}"), "expected a number"))?;
                row.insert(format!("{metric}.{stat}"), x);
            }
        }
        figures.insert(name.to_string(), row);
    }
    let mut failed_checks = Vec::new();
    if let Some(checks) = opt(v, "checks") {
        let checks = checks
            .as_array()
            .ok_or_else(|| bad(path, "checks", "expected an array"))?;
        for (i, c) in checks.iter().enumerate() {
            if opt(c, "outcome").and_then(Value::as_str) == Some("fail") {
                let msg = opt(c, "message").and_then(Value::as_str).ok_or_else(|| {
                    bad(path, &format!("checks[{i}].message"), "expected a string")
                })?;
                failed_checks.push(msg.to_string());
            }
        }
    }
    Ok(RunFigures {
        label: label.to_string(),
        disturbed,
        failed_checks,
        figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(count: u64, p50: u64, p99: u64) -> Value {
        json!({"count": count, "min_ns": 1, "mean_ns": 2.5, "p50_ns": p50, "p90_ns": p50,
               "p99_ns": p99, "p999_ns": p99, "max_ns": p99, "resolution": "hdr"})
    }

    fn report(extra: Value) -> Value {
        let mut r = json!({
            "schema_version": 1,
            "meta": {"scenario": "t"},
            "mechanisms": [
                {"mechanism": "bh_wq", "hardirq_to_bh": {"summary": summary(10, 80_000, 120_000), "histogram": {}},
                 "raise_to_ack": null,
                 "raise_to_hardirq": {"distribution": {"summary": summary(10, 30_000, 40_000)}, "error_bound_ns": 500},
                 "bh_run": {"summary": summary(0, 0, 0)},
                 "a_future_field": [1, 2]}
            ],
            "checks": [{"outcome": "pass", "message": "ok"}, {"outcome": "fail", "message": "bh_wq: too slow"}]
        });
        if let (Some(o), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        r
    }

    #[test]
    fn figures_from_a_report_ignore_unknown_fields_and_empty_distributions() {
        let f = figures_of(&report(json!({})), "r.json", "r").unwrap();
        let bh = &f.figures["bh_wq"];
        assert_eq!(bh["hardirq_to_bh.p50"], 80_000.0);
        assert_eq!(bh["hardirq_to_bh.p99"], 120_000.0);
        assert_eq!(bh["hardirq_to_bh.mean"], 2.5);
        assert_eq!(bh["raise_to_hardirq.p50"], 30_000.0);
        assert!(!bh.contains_key("bh_run.p50"), "empty distribution skipped");
        assert!(!bh.contains_key("raise_to_ack.p50"), "null metric skipped");
        assert!(!f.disturbed);
        assert_eq!(f.failed_checks, vec!["bh_wq: too slow"]);
    }

    #[test]
    fn disturbed_flag_is_read_and_checked() {
        assert!(
            figures_of(&report(json!({"disturbed": true})), "r", "r")
                .unwrap()
                .disturbed
        );
        assert!(
            figures_of(
                &report(json!({"interference": {"disturbed": true}})),
                "r",
                "r"
            )
            .unwrap()
            .disturbed
        );
        let e = figures_of(&report(json!({"disturbed": "yes"})), "r.json", "r").unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.json: field `disturbed`: expected true or false"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let mut r = report(json!({}));
        r["mechanisms"][0]["hardirq_to_bh"]["summary"]["p99_ns"] = json!("fast");
        let e = figures_of(&r, "x/report.json", "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x/report.json: field `mechanisms[0].hardirq_to_bh.summary.p99_ns`: expected a number"
        );
        let e = figures_of(&json!({"meta": {}}), "s.json", "s").unwrap_err();
        assert!(e.to_string().contains("field `mechanisms`: missing"), "{e}");
        let e = figures_of(&json!({"mechanisms": [{"id": 1}]}), "s.json", "s").unwrap_err();
        assert!(e.to_string().contains("`mechanisms[0].mechanism`"), "{e}");
    }

    #[test]
    fn loads_files_directories_and_repeats_json() {
        let d = std::env::temp_dir().join(format!("irqstorm-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        // a repeat: runs/1 and runs/10 with reports, runs/2 without
        for k in ["1", "2", "10"] {
            std::fs::create_dir_all(d.join("runs").join(k)).unwrap();
        }
        let text = report(json!({})).to_string();
        std::fs::write(d.join("runs/1/report.json"), &text).unwrap();
        std::fs::write(d.join("runs/10/report.json"), &text).unwrap();
        let set = load(&d).unwrap();
        let labels: Vec<&str> = set.runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, vec!["runs/1", "runs/10"]);
        assert_eq!(set.missing, vec!["runs/2"]);
        // the same runs through a repeats.json
        let mut rf = RepeatsFile::new("s.toml", 3);
        rf.push(1, Ok(set.runs[0].clone()));
        rf.push(2, Err("boot failed".into()));
        rf.push(10, Ok(set.runs[1].clone()));
        let rj = d.join("repeats.json");
        std::fs::write(&rj, serde_json::to_string(&rf).unwrap()).unwrap();
        let from_file = load(&rj).unwrap();
        assert_eq!(from_file.runs, set.runs);
        assert_eq!(from_file.missing, vec!["runs/2"]);
        // a single report.json, and an empty directory
        assert_eq!(load(&d.join("runs/1/report.json")).unwrap().runs.len(), 1);
        let e = load(&d.join("runs/2")).unwrap_err();
        assert!(
            e.to_string()
                .contains("neither report.json nor runs/<k>/report.json"),
            "{e}"
        );
        std::fs::write(d.join("runs/1/report.json"), "{").unwrap();
        let e = load(&d.join("runs/1/report.json")).unwrap_err();
        assert!(
            e.to_string().contains("runs/1/report.json: not valid JSON"),
            "{e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn known_figures() {
        assert!(is_known_figure("hardirq_to_bh.p99.9"));
        assert!(is_known_figure("raise_to_hardirq.p50"));
        assert!(!is_known_figure("hardirq_to_bh.p42"));
        assert!(!is_known_figure("dropped"));
        assert!(DEFAULT_FIGURES.iter().all(|f| is_known_figure(f)));
    }
}
