//! `irqstorm-report`: scenario checks and reports from saved run data,
//! without booting anything.
//!
//! ```text
//! irqstorm-report validate FILE.toml...
//! irqstorm-report render --scenario F --stats STATS.json --out DIR
//!     [--device-label L] [--accel tcg|kvm] [--summary F] [--latency F] [--work F]
//!     [--ref-latency F] [--ref-work F] [--eventfd N] [--console LOG]
//! irqstorm-report aggregate --scenario F --out DIR REPORT.json...
//! irqstorm-report plan --scenario F [--device N]
//! irqstorm-report compare BASE NEW [--confidence C] [--min-effect 10%,2us]
//!     [--figures F,..] [--mechanisms M,..] [--correction none|holm]
//!     [--resamples N] [--seed S] [--json F] [--junit F]
//! ```
//!
//! `compare` judges, per mechanism and figure, whether NEW differs from
//! BASE over their per-run figures (report directories of `cargo xtask run
//! --repeat N`, single report directories, `report.json` or `repeats.json`
//! files; docs/report.md "Comparing runs"). It exits 1 when a figure
//! regressed significantly, 0 otherwise.
//!
//! `plan` prints the run's phases as host control-socket requests (one JSON
//! line each, for `irqstorm-backend ctl raw`), `#` lines between them.
//!
//! `render` reads the back end's `stats` reply (with buckets) and, optionally,
//! the guest's debugfs tables, measures the host eventfd baseline (N round
//! trips, default 10000; 0 skips it), gates, prints the table and writes the
//! report directory. `aggregate` merges `report.json` files of several
//! devices. Both exit 1 when a check fails, 2 on usage or input errors.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use irqstorm_protocol::control::Request;
use irqstorm_report::compare::{self, stats::MinEffect, Correction};
use irqstorm_report::{aggregate, baseline, gate, input, model, render, scenario, utc};

#[derive(Parser)]
#[command(
    name = "irqstorm-report",
    about = "Scenario checks and reports from saved irqstorm run data",
    // A repeated option takes its last value.
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate scenario files.
    Validate {
        #[arg(required = true, value_name = "FILE.toml")]
        files: Vec<String>,
    },
    /// Report, gate and write the report directory from a back end `stats` reply.
    Render(RenderOpts),
    /// Merge the report.json files of several devices.
    Aggregate {
        /// Scenario file (TOML) whose gates apply.
        #[arg(long, value_name = "F")]
        scenario: String,
        /// Report directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(required = true, value_name = "REPORT.json")]
        reports: Vec<String>,
    },
    /// Print the run's phases as host control-socket requests.
    Plan {
        /// Scenario file (TOML).
        #[arg(long, value_name = "F")]
        scenario: String,
        /// Device index the requests name.
        #[arg(long, value_name = "N", default_value_t = 0)]
        device: u32,
    },
    /// Does NEW differ from BASE beyond run-to-run noise? Per mechanism and
    /// figure, over the per-run figures. Exit 1 on a significant regression.
    Compare(CompareOpts),
    /// A KCIDB submission (schema v5.3) of a report directory: every
    /// latency figure as a test with its value, every gate, and the guest
    /// KTAP results (`results.json`).
    Kcidb(KcidbOpts),
    /// Reports of many jobs (runners, kernels, variants, accelerators) side
    /// by side in one directory: table.txt, summary.md, merge.json, CDF
    /// plots; with --baseline, compare verdicts against it. Exit 1 on a
    /// significant regression against the baseline.
    Merge(MergeOpts),
}

#[derive(Args)]
struct MergeOpts {
    /// `[LABEL=]DIR` or `[LABEL=]report.json`, at least two (the label
    /// defaults to the directory's name).
    #[arg(required = true, num_args = 2.., value_name = "[LABEL=]REPORT")]
    reports: Vec<String>,
    /// Output directory (must be new or empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Label of the input the others are compared against.
    #[arg(long, value_name = "LABEL")]
    baseline: Option<String>,
    /// Confidence of the comparisons.
    #[arg(long, value_name = "C", default_value_t = 0.99)]
    confidence: f64,
    /// Smallest change that counts (as for compare).
    #[arg(long, value_name = "SPEC", default_value = "10%,2us")]
    min_effect: MinEffect,
}

#[derive(Args)]
struct KcidbOpts {
    /// A report directory: `report.json` of a scenario run, `results.json`
    /// of a guest script run, or both.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// A guest run's `results.json` to add (its KTAP results).
    #[arg(long, value_name = "FILE")]
    ktap: Option<PathBuf>,
    /// The CI system's name, the prefix of every id ([a-z0-9_]+).
    #[arg(long, default_value = "irqstorm")]
    origin: String,
    /// Git commit of the tested kernel tree.
    #[arg(long, value_name = "HASH")]
    git_commit: Option<String>,
    /// Name of the tested kernel tree.
    #[arg(long, value_name = "NAME")]
    tree_name: Option<String>,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct CompareOpts {
    /// Report directory (`--repeat N` or one run), report.json or repeats.json.
    #[arg(value_name = "BASE")]
    base: PathBuf,
    /// The same kinds as BASE.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// Confidence of the test and the interval (significant: p < 1 - C).
    #[arg(long, value_name = "C", default_value_t = 0.99)]
    confidence: f64,
    /// Smallest change that counts: a share of the BASE median and an
    /// absolute floor; the larger applies.
    #[arg(long, value_name = "SPEC", default_value = "10%,2us")]
    min_effect: MinEffect,
    /// Figures to compare (metric.stat; default the p50 and p99 of
    /// hardirq_to_bh, raise_to_ack, bh_run, raise_to_hardirq).
    #[arg(long, value_name = "F,..", value_delimiter = ',')]
    figures: Vec<String>,
    /// Mechanisms to compare (default: all).
    #[arg(long, value_name = "M,..", value_delimiter = ',')]
    mechanisms: Vec<String>,
    /// Multiple-comparison correction over the judged figures.
    #[arg(long, value_enum, default_value = "none")]
    correction: Correction,
    /// Bootstrap resamples.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    resamples: usize,
    /// Bootstrap seed (the same inputs and seed give the same interval).
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Write the comparison as JSON.
    #[arg(long, value_name = "F")]
    json: Option<PathBuf>,
    /// Write JUnit XML (one testcase per mechanism x figure).
    #[arg(long, value_name = "F")]
    junit: Option<PathBuf>,
}

#[derive(Args)]
struct RenderOpts {
    /// Scenario file (TOML).
    #[arg(long, value_name = "F")]
    scenario: String,
    /// The back end's `stats` reply (with buckets).
    #[arg(long, value_name = "STATS.json")]
    stats: String,
    /// Report directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Device label of the run.
    #[arg(long, value_name = "L", default_value = "irqstorm0")]
    device_label: String,
    /// Accelerator the run used.
    #[arg(long, value_name = "tcg|kvm", default_value = "tcg")]
    accel: String,
    /// The guest's debugfs device-events summary table.
    #[arg(long, value_name = "F")]
    summary: Option<String>,
    /// The guest's hardirq->bh histogram.
    #[arg(long, value_name = "F")]
    latency: Option<String>,
    /// The guest's bottom-half run-time histogram.
    #[arg(long, value_name = "F")]
    work: Option<String>,
    /// The hardirq->bh histogram of the guest's local reference source.
    #[arg(long, value_name = "F")]
    ref_latency: Option<String>,
    /// The bottom-half run-time histogram of the local reference source.
    #[arg(long, value_name = "F")]
    ref_work: Option<String>,
    /// Host eventfd round trips for the baseline (0 skips it).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    eventfd: usize,
    /// Console log to copy into the report directory.
    #[arg(long, value_name = "LOG")]
    console: Option<PathBuf>,
}

type Res<T> = Result<T, String>;

/// The text of an optional input file.
fn read_opt(path: Option<&str>) -> Res<Option<String>> {
    path.map(|p| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}")))
        .transpose()
}

fn validate(files: &[String]) -> Res<ExitCode> {
    let mut bad = 0;
    for f in files {
        match scenario::load(f) {
            Ok(s) => println!(
                "{f}: OK ({} sources, {} thresholds, {} ms of guest time)",
                s.sources.len(),
                s.thresholds.len(),
                s.total_ms()
            ),
            Err(e) => {
                eprintln!("{e}");
                bad += 1;
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn finish(
    sc: &scenario::Scenario,
    mut result: model::RunResult,
    out: &Path,
    console: Option<&Path>,
) -> Res<ExitCode> {
    let failures = gate::apply(sc, &mut result);
    print!("{}", render::table(&result));
    render::write_report_dir(out, &result, console)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    println!("report: {}", out.display());
    Ok(match gate::exit_message(&failures) {
        Some(m) => {
            eprint!("{m}");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    })
}

fn render_cmd(o: &RenderOpts) -> Res<ExitCode> {
    let sc_path = o.scenario.as_str();
    let sc = scenario::load(sc_path).map_err(|e| e.to_string())?;
    let accel = o.accel.clone();
    sc.check_accel(&accel)?;
    let stats_path = o.stats.as_str();
    let text = std::fs::read_to_string(stats_path).map_err(|e| format!("{stats_path}: {e}"))?;
    let stats = input::parse_backend_stats(&text).map_err(|e| format!("{stats_path}: {e}"))?;
    let label = o.device_label.clone();
    let mut rows = stats
        .rows(&sc, None)
        .map_err(|e| format!("{stats_path}: {e}"))?;
    let dump = input::GuestDump {
        summary: read_opt(o.summary.as_deref())?,
        latency: read_opt(o.latency.as_deref())?,
        work: read_opt(o.work.as_deref())?,
        ref_latency: read_opt(o.ref_latency.as_deref())?,
        ref_work: read_opt(o.ref_work.as_deref())?,
    };
    input::apply_guest(&mut rows, &dump.texts()).map_err(|e| e.to_string())?;
    let mut result = model::RunResult::new(model::RunMeta {
        scenario: sc.name.clone(),
        scenario_file: sc_path.to_string(),
        accelerator: accel,
        start_time: utc::UtcTime::now().rfc3339(),
        duration_ns: sc.duration_ms * 1_000_000,
        warmup_ns: sc.warmup_ms * 1_000_000,
        devices: vec![label],
        tool_version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    });
    result.mechanisms = rows;
    let n = o.eventfd;
    if n > 0 {
        result.baselines.host_eventfd =
            Some(baseline::host_eventfd_pingpong(n).map_err(|e| e.to_string())?);
    }
    result.finalize().map_err(|e| e.to_string())?;
    finish(&sc, result, &o.out, o.console.as_deref())
}

fn aggregate_cmd(sc_path: &str, out: &Path, reports: &[String]) -> Res<ExitCode> {
    let sc = scenario::load(sc_path).map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for p in reports {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
        let r: model::RunResult = serde_json::from_str(&text).map_err(|e| format!("{p}: {e}"))?;
        results.push(r);
    }
    let merged = aggregate::aggregate(&results).map_err(|e| e.to_string())?;
    finish(&sc, merged, out, None)
}

fn plan_cmd(sc_path: &str, device: u32) -> Res<ExitCode> {
    let sc = scenario::load(sc_path).map_err(|e| e.to_string())?;
    let dev = Some(device);
    let mut out = String::new();
    for phase in sc.plan() {
        let _ = writeln!(out, "# {} for {} ms", phase.phase.name(), phase.duration_ms);
        for s in &phase.starts {
            if s.driven_by == scenario::DrivenBy::Guest {
                let _ = writeln!(
                    out,
                    "# source {} is guest-driven: the driver configures and starts it",
                    s.id
                );
            }
            let req = s
                .control_configure(device)
                .map_err(|e| format!("source {}: {e}", s.id))?;
            out.push_str(&req.to_line());
        }
        for s in &phase.starts {
            out.push_str(&s.control_start(device).to_line());
        }
        let _ = writeln!(out, "# wait {} ms, then", phase.duration_ms);
        let after = [
            Request::Stop {
                device: dev,
                source: None,
            },
            Request::Stats {
                device: dev,
                buckets: Some(true),
            },
        ];
        for req in &after {
            out.push_str(&req.to_line());
        }
        if phase.phase == scenario::Phase::Warmup {
            out.push_str(&Request::ResetStats { device: dev }.to_line());
        }
    }
    // a closed pipe (`| head`) is not an error
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn compare_cmd(o: &CompareOpts) -> Res<ExitCode> {
    let base = compare::load::load(&o.base).map_err(|e| e.to_string())?;
    let new = compare::load::load(&o.new).map_err(|e| e.to_string())?;
    let defaults = compare::Options::default();
    let opts = compare::Options {
        confidence: o.confidence,
        min_effect: o.min_effect,
        figures: if o.figures.is_empty() {
            defaults.figures
        } else {
            o.figures.clone()
        },
        mechanisms: o.mechanisms.clone(),
        correction: o.correction,
        bootstrap: compare::stats::Bootstrap {
            resamples: o.resamples,
            seed: o.seed,
        },
    };
    let c = compare::compare(&base, &new, &opts).map_err(|e| e.to_string())?;
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    if let Some(p) = &o.json {
        let text = serde_json::to_string_pretty(&c).map_err(|e| e.to_string())? + "\n";
        write(p, text)?;
    }
    if let Some(p) = &o.junit {
        write(p, compare::render::junit(&c))?;
    }
    let _ = std::io::stdout().write_all(compare::render::table(&c).as_bytes());
    Ok(if c.regressions > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn merge_cmd(o: &MergeOpts) -> Res<ExitCode> {
    use irqstorm_report::merge;
    if o.out.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{}: not empty; merge writes into a new or empty directory",
            o.out.display()
        ));
    }
    let inputs = o
        .reports
        .iter()
        .map(|r| merge::load_input(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let copts = compare::Options {
        confidence: o.confidence,
        min_effect: o.min_effect,
        ..Default::default()
    };
    let m = merge::merge(&inputs, o.baseline.as_deref(), &copts).map_err(|e| e.to_string())?;
    let written =
        merge::write(&o.out, &inputs, &m).map_err(|e| format!("{}: {e}", o.out.display()))?;
    print!("{}", merge::table(&m));
    eprintln!("merge: {} files in {}", written.len(), o.out.display());
    Ok(if m.verdicts.iter().any(|v| v.regressions > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn kcidb_cmd(o: &KcidbOpts) -> Res<ExitCode> {
    let opts = irqstorm_report::kcidb::Options {
        origin: o.origin.clone(),
        git_commit: o.git_commit.clone(),
        tree_name: o.tree_name.clone(),
    };
    let v = irqstorm_report::kcidb::from_dir(&o.dir, o.ktap.as_deref(), &opts)
        .map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n";
    match &o.output {
        Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // Usage errors exit 2 (clap's code), `--help` 0.
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Cmd::Validate { files } => validate(files),
        Cmd::Render(o) => render_cmd(o),
        Cmd::Aggregate {
            scenario,
            out,
            reports,
        } => aggregate_cmd(scenario, out, reports),
        Cmd::Plan { scenario, device } => plan_cmd(scenario, *device),
        Cmd::Compare(o) => compare_cmd(o),
        Cmd::Kcidb(o) => kcidb_cmd(o),
        Cmd::Merge(o) => merge_cmd(o),
    };
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("irqstorm-report: {e}");
            ExitCode::from(2)
        }
    }
}
