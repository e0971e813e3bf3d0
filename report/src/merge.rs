//! Fan-in of reports from many jobs (`irqstorm-report merge`): runners,
//! kernels, variants or accelerators side by side in one directory, with
//! the compare verdicts against a baseline when one is named.
//!
//! Writes `merge.json` (the inputs' conditions and figures, and the
//! verdicts), `table.txt` and `summary.md` (one column per input for each
//! figure), `cdf-<metric>-<mechanism>.svg` (one curve per input) and, with
//! a baseline, `compare-<label>.txt` per other input.

use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::compare::{self, Comparison};
use crate::hist::Distribution;
use crate::model::{mechanism_id, MechanismResult, RunResult};
use crate::render::fmt_ns;
use crate::render::svg::{cdf_svg, file_stem};

/// Errors of a merge; each names the input.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{0}: no report.json (a report directory or a report.json file)")]
    NoReport(String),
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("labels must differ: `{0}` twice (name them with LABEL=PATH)")]
    DuplicateLabel(String),
    #[error("baseline `{0}` is none of the inputs' labels")]
    NoBaseline(String),
    #[error("merge needs at least two reports")]
    TooFew,
    #[error("compare {label}: {source}")]
    Compare {
        label: String,
        source: compare::CompareError,
    },
    #[error("compare {label}: {source}")]
    Load {
        label: String,
        source: compare::load::LoadError,
    },
}

/// One input: a single run's report, or the runs of a `--repeat N`
/// directory (its table cells are the medians over the runs).
pub struct Input {
    pub label: String,
    /// What was given.
    pub path: PathBuf,
    /// The report of a single run (`None` for a repeat directory).
    pub result: Option<RunResult>,
    /// Its per-run figures, for the comparisons (and a repeat's cells).
    pub set: compare::load::RunSet,
    /// A run's report for the conditions (a repeat's first).
    pub meta_of: Option<RunResult>,
}

fn read_result(file: &Path) -> Result<RunResult, MergeError> {
    let text = std::fs::read_to_string(file).map_err(|e| MergeError::Read {
        path: file.display().to_string(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| MergeError::Parse {
        path: file.display().to_string(),
        source: e,
    })
}

/// `[LABEL=]PATH`: a report directory, a report.json or a `--repeat N`
/// directory; the label is the directory's name unless given.
pub fn load_input(arg: &str) -> Result<Input, MergeError> {
    let (label, path) = match arg.split_once('=') {
        Some((l, p)) if !l.is_empty() && !l.contains('/') => (Some(l.to_string()), p),
        _ => (None, arg),
    };
    let p = Path::new(path);
    let file = if p.is_dir() {
        p.join("report.json")
    } else {
        p.to_path_buf()
    };
    let repeat = p.is_dir() && !file.is_file() && p.join("runs").is_dir();
    if !file.is_file() && !repeat {
        return Err(MergeError::NoReport(path.to_string()));
    }
    let label = label.unwrap_or_else(|| {
        let named = if repeat { Some(p) } else { file.parent() };
        named
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.to_string())
    });
    let set = compare::load::load(p).map_err(|e| MergeError::Load {
        label: label.clone(),
        source: e,
    })?;
    let (result, meta_of) = if repeat {
        let first = std::fs::read_dir(p.join("runs"))
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("report.json")))
            .filter(|f| f.is_file())
            .min();
        (None, first.map(|f| read_result(&f)).transpose()?)
    } else {
        let r = read_result(&file)?;
        (Some(r.clone()), Some(r))
    };
    Ok(Input {
        label,
        path: p.to_path_buf(),
        result,
        set,
        meta_of,
    })
}

/// Median of the per-run values of `figure` for `mech` (ns).
fn median_over_runs(set: &compare::load::RunSet, mech: &str, figure: &str) -> Option<u64> {
    let mut v: Vec<f64> = set
        .runs
        .iter()
        .filter_map(|r| r.figures.get(mech)?.get(figure).copied())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let m = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(m.max(0.0) as u64)
}

/// The figures the table shows: (metric, stat, heading).
pub const FIGURES: [(&str, &str, &str); 5] = [
    ("hardirq_to_bh", "p50", "hardirq->bh p50"),
    ("hardirq_to_bh", "p99", "hardirq->bh p99"),
    ("irq_to_first_bh", "p50", "irq->1st bh p50"),
    ("raise_to_ack", "p50", "raise->ack p50"),
    ("raise_to_ack", "p99", "raise->ack p99"),
];

fn dist<'a>(m: &'a MechanismResult, metric: &str) -> Option<&'a Distribution> {
    match metric {
        "hardirq_to_bh" => m.hardirq_to_bh.as_ref(),
        "irq_to_first_bh" => m.irq_to_first_bh.as_ref(),
        "raise_to_ack" => m.raise_to_ack.as_ref(),
        "bh_run" => m.bh_run.as_ref(),
        "raise_to_hardirq" => m.raise_to_hardirq.as_ref().map(|o| &o.distribution),
        _ => None,
    }
}

fn stat_ns(d: &Distribution, stat: &str) -> Option<u64> {
    let s = &d.summary;
    (s.count > 0).then_some(match stat {
        "p50" => s.p50_ns,
        "p90" => s.p90_ns,
        "p99" => s.p99_ns,
        "max" => s.max_ns,
        _ => return None,
    })
}

/// "7.3.4 (rt)": the kernel's version, with its variant when known.
fn kernel_text(i: &InputInfo) -> String {
    let v = if i.kernel_version.is_empty() {
        "?"
    } else {
        &i.kernel_version
    };
    if i.kernel_variant.is_empty() {
        v.to_string()
    } else {
        format!("{v} ({})", i.kernel_variant)
    }
}

/// An input's conditions, for the header lines and merge.json.
#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    pub label: String,
    pub path: String,
    pub scenario: String,
    pub accelerator: String,
    pub kernel_version: String,
    pub kernel_variant: String,
    pub vcpus: Option<u32>,
    pub host_cores: Option<u32>,
    pub start_time: String,
    /// Any run of it disturbed.
    pub disturbed: bool,
    pub checks_failed: usize,
    /// Runs (1 for a single report; a repeat's cells are their medians).
    pub runs: usize,
}

fn info(i: &Input) -> InputInfo {
    let empty = RunResult::new(Default::default());
    let r = i.meta_of.as_ref().unwrap_or(&empty);
    let rc = r.run_conditions.as_ref();
    let runs = i.set.runs.len();
    InputInfo {
        label: i.label.clone(),
        path: i.path.display().to_string(),
        scenario: r.meta.scenario.clone(),
        accelerator: r.meta.accelerator.clone(),
        kernel_version: r.meta.kernel_version.clone(),
        kernel_variant: r.meta.kernel_variant.clone(),
        vcpus: rc.and_then(|c| c.vcpus),
        host_cores: rc.map(|c| c.host_cores),
        start_time: r.meta.start_time.clone(),
        disturbed: i.set.runs.iter().any(|x| x.disturbed),
        checks_failed: i.set.runs.iter().map(|x| x.failed_checks.len()).sum(),
        runs,
    }
}

/// One cell: a figure of one mechanism in one input (ns; `None`: not in it).
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub mechanism: String,
    pub figure: String,
    pub values_ns: Vec<Option<u64>>,
}

/// A compare verdict of one input against the baseline.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub label: String,
    pub regressions: usize,
    pub improvements: usize,
    pub comparison: Comparison,
}

/// The merged view.
#[derive(Debug, Serialize)]
pub struct Merged {
    pub inputs: Vec<InputInfo>,
    pub mechanisms: Vec<String>,
    pub cells: Vec<Cell>,
    pub baseline: Option<String>,
    pub verdicts: Vec<Verdict>,
}

/// Merges `inputs` (labels distinct); with `baseline` (a label), compares
/// every other input against it with `o`.
pub fn merge(
    inputs: &[Input],
    baseline: Option<&str>,
    o: &compare::Options,
) -> Result<Merged, MergeError> {
    if inputs.len() < 2 {
        return Err(MergeError::TooFew);
    }
    let mut seen = BTreeSet::new();
    for i in inputs {
        if !seen.insert(i.label.as_str()) {
            return Err(MergeError::DuplicateLabel(i.label.clone()));
        }
    }
    let mut mechs: Vec<String> = inputs
        .iter()
        .flat_map(|i| i.set.runs.iter().flat_map(|r| r.figures.keys().cloned()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    mechs.sort_by_key(|m| mechanism_id(m).unwrap_or(u8::MAX));
    let mut cells = Vec::new();
    for m in &mechs {
        for (metric, stat, _) in FIGURES {
            let values_ns = inputs
                .iter()
                .map(|i| match &i.result {
                    Some(res) => res
                        .mechanisms
                        .iter()
                        .find(|r| &r.mechanism == m)
                        .and_then(|r| dist(r, metric))
                        .and_then(|d| stat_ns(d, stat)),
                    None => median_over_runs(&i.set, m, &format!("{metric}.{stat}")),
                })
                .collect();
            cells.push(Cell {
                mechanism: m.clone(),
                figure: format!("{metric}.{stat}"),
                values_ns,
            });
        }
    }
    let mut verdicts = Vec::new();
    if let Some(b) = baseline {
        let base = inputs
            .iter()
            .find(|i| i.label == b)
            .ok_or_else(|| MergeError::NoBaseline(b.to_string()))?;
        for i in inputs.iter().filter(|i| i.label != b) {
            let c = compare::compare(&base.set, &i.set, o).map_err(|e| MergeError::Compare {
                label: i.label.clone(),
                source: e,
            })?;
            verdicts.push(Verdict {
                label: i.label.clone(),
                regressions: c.regressions,
                improvements: c.improvements,
                comparison: c,
            });
        }
    }
    Ok(Merged {
        inputs: inputs.iter().map(info).collect(),
        mechanisms: mechs,
        cells,
        baseline: baseline.map(str::to_string),
        verdicts,
    })
}

fn cell_text(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |ns| fmt_ns(ns as f64))
}

/// One block of the table: a figure's heading and, per mechanism, the
/// inputs' cells as text.
type Block<'a> = (&'static str, Vec<(&'a str, Vec<String>)>);

/// The table's blocks, one per figure (what `table` and `markdown` lay out).
fn blocks(m: &Merged) -> Vec<Block<'_>> {
    FIGURES
        .iter()
        .map(|(metric, stat, heading)| {
            let fig = format!("{metric}.{stat}");
            let rows = m
                .cells
                .iter()
                .filter(|c| c.figure == fig)
                .map(|c| {
                    let cells = c.values_ns.iter().map(|v| cell_text(*v)).collect();
                    (c.mechanism.as_str(), cells)
                })
                .collect();
            (*heading, rows)
        })
        .collect()
}

fn header_lines(m: &Merged) -> String {
    let mut s = String::new();
    for i in &m.inputs {
        let _ = writeln!(
            s,
            "  {} = {}{} @ {}, kernel {}, {} vCPUs on {} host cores, {}{}{} ({})",
            i.label,
            if i.runs > 1 {
                format!("{} runs (medians) of ", i.runs)
            } else {
                String::new()
            },
            i.scenario,
            i.accelerator,
            kernel_text(i),
            i.vcpus.map_or("?".into(), |v| v.to_string()),
            i.host_cores.map_or("?".into(), |v| v.to_string()),
            i.start_time,
            if i.disturbed { ", DISTURBED" } else { "" },
            if i.checks_failed > 0 {
                format!(", {} checks failed", i.checks_failed)
            } else {
                String::new()
            },
            i.path
        );
    }
    s
}

/// The side-by-side table: a block per figure, a column per input.
pub fn table(m: &Merged) -> String {
    let mut s = format!("merge of {} reports\n", m.inputs.len());
    s.push_str(&header_lines(m));
    let w = m
        .inputs
        .iter()
        .map(|i| i.label.len())
        .max()
        .unwrap_or(0)
        .max(9);
    let mw = m
        .mechanisms
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(9)
        .max(9);
    for (heading, rows) in blocks(m) {
        let _ = write!(s, "\n{:<mw$} | {heading}\n{:<mw$} |", "", "mechanism");
        for i in &m.inputs {
            let _ = write!(s, " {:>w$}", i.label);
        }
        s.push('\n');
        for (mech, cells) in rows {
            let _ = write!(s, "{mech:<mw$} |");
            for c in cells {
                let _ = write!(s, " {c:>w$}");
            }
            s.push('\n');
        }
    }
    if let Some(b) = &m.baseline {
        let _ = writeln!(s, "\nagainst baseline {b} (irqstorm-report compare):");
        for v in &m.verdicts {
            let _ = writeln!(
                s,
                "  {}: {} regressions, {} improvements (compare-{}.txt)",
                v.label,
                v.regressions,
                v.improvements,
                file_stem(&v.label)
            );
        }
    }
    s
}

/// summary.md: the same as Markdown tables.
pub fn markdown(m: &Merged) -> String {
    let mut s = format!("# irqstorm merge of {} reports\n\n", m.inputs.len());
    for i in &m.inputs {
        let _ = writeln!(
            s,
            "- **{}**: {} @ {}, kernel {}, {} vCPUs, {}{}",
            i.label,
            i.scenario,
            i.accelerator,
            kernel_text(i),
            i.vcpus.map_or("?".into(), |v| v.to_string()),
            i.start_time,
            if i.disturbed { " — disturbed" } else { "" }
        );
    }
    for (heading, rows) in blocks(m) {
        let labels: Vec<&str> = m.inputs.iter().map(|i| i.label.as_str()).collect();
        let _ = writeln!(
            s,
            "\n## {heading}\n\n| mechanism | {} |",
            labels.join(" | ")
        );
        let _ = writeln!(s, "|---|{}", "---:|".repeat(labels.len()));
        for (mech, cells) in rows {
            let _ = writeln!(s, "| {mech} | {} |", cells.join(" | "));
        }
    }
    if let Some(b) = &m.baseline {
        let _ = writeln!(s, "\n## Against baseline {b}\n");
        for v in &m.verdicts {
            let _ = writeln!(
                s,
                "- {}: {} regressions, {} improvements",
                v.label, v.regressions, v.improvements
            );
        }
    }
    s
}

/// One CDF per metric and mechanism, a curve per input.
pub fn plots(inputs: &[Input], m: &Merged) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for metric in ["hardirq_to_bh", "raise_to_ack"] {
        for mech in &m.mechanisms {
            let series: Vec<(String, Vec<(u64, u64)>)> = inputs
                .iter()
                .filter_map(|i| {
                    let r = i
                        .result
                        .as_ref()?
                        .mechanisms
                        .iter()
                        .find(|r| &r.mechanism == mech)?;
                    let p = dist(r, metric)?.points();
                    (!p.is_empty()).then(|| (i.label.clone(), p))
                })
                .collect();
            if series.len() < 2 {
                continue;
            }
            let title = format!("{mech} — {metric} CDF, {} reports", series.len());
            out.push((
                format!("cdf-{metric}-{}.svg", file_stem(mech)),
                cdf_svg(&title, metric, &series),
            ));
        }
    }
    out
}

/// Writes the merge into `dir` (created); returns the files written.
pub fn write(dir: &Path, inputs: &[Input], m: &Merged) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = vec![
        (
            "merge.json".to_string(),
            serde_json::to_string_pretty(m)? + "\n",
        ),
        ("table.txt".to_string(), table(m)),
        ("summary.md".to_string(), markdown(m)),
    ];
    files.extend(plots(inputs, m));
    for v in &m.verdicts {
        files.push((
            format!("compare-{}.txt", file_stem(&v.label)),
            compare::render::table(&v.comparison),
        ));
    }
    let mut written = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inputs_kernel_shows_its_variant_when_known() {
        let mut i = InputInfo {
            label: "a".into(),
            path: "/a".into(),
            scenario: "s".into(),
            accelerator: "tcg".into(),
            kernel_version: "7.3.4".into(),
            kernel_variant: String::new(),
            vcpus: None,
            host_cores: None,
            start_time: String::new(),
            disturbed: false,
            checks_failed: 0,
            runs: 1,
        };
        assert_eq!(kernel_text(&i), "7.3.4");
        i.kernel_variant = "rt".into();
        assert_eq!(kernel_text(&i), "7.3.4 (rt)");
        i.kernel_version.clear();
        assert_eq!(kernel_text(&i), "? (rt)");
    }

    fn input(label: &str, scale: u64) -> Input {
        let mut r = crate::render::tests::sample_result();
        for m in &mut r.mechanisms {
            if let Some(d) = m.hardirq_to_bh.as_mut() {
                d.summary.p50_ns *= scale;
            }
        }
        let v = serde_json::to_value(&r).unwrap();
        let figures = compare::load::figures_of(&v, label, label).unwrap();
        Input {
            label: label.into(),
            path: PathBuf::from(format!("/x/{label}")),
            result: Some(r.clone()),
            set: compare::load::RunSet {
                source: label.into(),
                runs: vec![figures],
                missing: Vec::new(),
            },
            meta_of: Some(r),
        }
    }

    #[test]
    fn inputs_stand_side_by_side_per_figure() {
        let ins = [input("kvm", 1), input("tcg", 3)];
        let m = merge(&ins, None, &compare::Options::default()).unwrap();
        assert_eq!(m.inputs.len(), 2);
        assert_eq!(m.mechanisms[0], "hardirq");
        let c = m
            .cells
            .iter()
            .find(|c| c.mechanism == "tasklet" && c.figure == "hardirq_to_bh.p50")
            .unwrap();
        let (a, b) = (c.values_ns[0].unwrap(), c.values_ns[1].unwrap());
        assert_eq!(b, 3 * a);
        let t = table(&m);
        assert!(t.contains("merge of 2 reports"), "{t}");
        assert!(
            t.contains("hardirq->bh p50") && t.contains("kvm") && t.contains("tcg"),
            "{t}"
        );
        assert!(markdown(&m).contains("| tasklet |"));
        assert!(!plots(&ins, &m).is_empty());
    }

    #[test]
    fn a_repeat_shows_the_median_of_its_runs() {
        let mut a = input("rep", 1);
        let b = input("x", 5);
        a.set.runs.push(b.set.runs[0].clone());
        a.set.runs.push(input("y", 3).set.runs[0].clone());
        a.result = None;
        let want = {
            let v = &a.set.runs;
            let mut x: Vec<f64> = v
                .iter()
                .map(|r| r.figures["tasklet"]["hardirq_to_bh.p50"])
                .collect();
            x.sort_by(f64::total_cmp);
            x[1] as u64
        };
        assert_eq!(
            median_over_runs(&a.set, "tasklet", "hardirq_to_bh.p50"),
            Some(want)
        );
        let m = merge(&[a, b], None, &compare::Options::default()).unwrap();
        assert_eq!(m.inputs[0].runs, 3);
        assert!(table(&m).contains("3 runs (medians)"));
    }

    #[test]
    fn labels_must_differ_and_the_baseline_must_be_one_of_them() {
        let ins = [input("a", 1), input("a", 2)];
        assert!(matches!(
            merge(&ins, None, &compare::Options::default()),
            Err(MergeError::DuplicateLabel(_))
        ));
        let ins = [input("a", 1), input("b", 2)];
        assert!(matches!(
            merge(&ins, Some("c"), &compare::Options::default()),
            Err(MergeError::NoBaseline(_))
        ));
        assert!(matches!(
            merge(&ins[..1], None, &compare::Options::default()),
            Err(MergeError::TooFew)
        ));
    }
}
