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
//! ```
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

use irqstorm_report::scenario::ConfigureBodyExt as _;
use irqstorm_report::{aggregate, baseline, gate, input, model, render, scenario, utc};

const USAGE: &str = "usage:
  irqstorm-report validate FILE.toml...
  irqstorm-report render --scenario F --stats STATS.json --out DIR [--device-label L] [--accel tcg|kvm]
      [--summary F] [--latency F] [--work F] [--ref-latency F] [--ref-work F] [--eventfd N] [--console LOG]
  irqstorm-report aggregate --scenario F --out DIR REPORT.json...
  irqstorm-report plan --scenario F [--device N]";

type Res<T> = Result<T, String>;

/// `--key value` options and positional arguments.
struct Opts {
    kv: Vec<(String, String)>,
    pos: Vec<String>,
}

impl Opts {
    fn parse(args: &[String], keys: &[&str]) -> Res<Opts> {
        let mut o = Opts {
            kv: Vec::new(),
            pos: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if let Some(k) = a.strip_prefix("--") {
                if !keys.contains(&k) {
                    return Err(format!("unknown option --{k}"));
                }
                let v = it.next().ok_or_else(|| format!("--{k} needs a value"))?;
                o.kv.push((k.to_string(), v.clone()));
            } else {
                o.pos.push(a.clone());
            }
        }
        Ok(o)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.kv
            .iter()
            .rev()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    fn need(&self, k: &str) -> Res<&str> {
        self.get(k).ok_or_else(|| format!("--{k} is required"))
    }
    fn file(&self, k: &str) -> Res<Option<String>> {
        self.get(k)
            .map(|p| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}")))
            .transpose()
    }
}

fn validate(files: &[String]) -> Res<ExitCode> {
    if files.is_empty() {
        return Err("validate: no files".into());
    }
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

fn render_cmd(args: &[String]) -> Res<ExitCode> {
    let o = Opts::parse(
        args,
        &[
            "scenario",
            "stats",
            "out",
            "device-label",
            "accel",
            "summary",
            "latency",
            "work",
            "ref-latency",
            "ref-work",
            "eventfd",
            "console",
        ],
    )?;
    let sc_path = o.need("scenario")?;
    let sc = scenario::load(sc_path).map_err(|e| e.to_string())?;
    let accel = o.get("accel").unwrap_or("tcg").to_string();
    sc.check_accel(&accel)?;
    let stats_path = o.need("stats")?;
    let text = std::fs::read_to_string(stats_path).map_err(|e| format!("{stats_path}: {e}"))?;
    let stats = input::parse_backend_stats(&text).map_err(|e| format!("{stats_path}: {e}"))?;
    let label = o.get("device-label").unwrap_or("irqstorm0").to_string();
    let mut rows = stats
        .rows(&sc, None)
        .map_err(|e| format!("{stats_path}: {e}"))?;
    let (summary, lat, work) = (o.file("summary")?, o.file("latency")?, o.file("work")?);
    let (rlat, rwork) = (o.file("ref-latency")?, o.file("ref-work")?);
    input::apply_guest(
        &mut rows,
        &input::GuestTexts {
            summary: summary.as_deref(),
            latency: lat.as_deref(),
            work: work.as_deref(),
            ref_latency: rlat.as_deref(),
            ref_work: rwork.as_deref(),
        },
    )
    .map_err(|e| e.to_string())?;
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
    let n: usize = o
        .get("eventfd")
        .unwrap_or("10000")
        .parse()
        .map_err(|_| "--eventfd takes a number".to_string())?;
    if n > 0 {
        result.baselines.host_eventfd =
            Some(baseline::host_eventfd_pingpong(n).map_err(|e| e.to_string())?);
    }
    result.finalize().map_err(|e| e.to_string())?;
    let console = o.get("console").map(PathBuf::from);
    finish(&sc, result, Path::new(o.need("out")?), console.as_deref())
}

fn aggregate_cmd(args: &[String]) -> Res<ExitCode> {
    let o = Opts::parse(args, &["scenario", "out"])?;
    let sc = scenario::load(o.need("scenario")?).map_err(|e| e.to_string())?;
    if o.pos.is_empty() {
        return Err("aggregate: no report.json files".into());
    }
    let mut results = Vec::new();
    for p in &o.pos {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
        let r: model::RunResult = serde_json::from_str(&text).map_err(|e| format!("{p}: {e}"))?;
        results.push(r);
    }
    let merged = aggregate::aggregate(&results).map_err(|e| e.to_string())?;
    finish(&sc, merged, Path::new(o.need("out")?), None)
}

fn plan_cmd(args: &[String]) -> Res<ExitCode> {
    let o = Opts::parse(args, &["scenario", "device"])?;
    let sc = scenario::load(o.need("scenario")?).map_err(|e| e.to_string())?;
    let device: u32 = o
        .get("device")
        .unwrap_or("0")
        .parse()
        .map_err(|_| "--device takes a number".to_string())?;
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
            let _ = writeln!(out, "{}", s.body.control_configure(s.id, device));
        }
        for s in &phase.starts {
            let _ = writeln!(out, "{}", s.control_start(device));
        }
        let _ = writeln!(out, "# wait {} ms, then", phase.duration_ms);
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"cmd": "stop", "device": device})
        );
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"cmd": "stats", "device": device, "buckets": true})
        );
        if phase.phase == scenario::Phase::Warmup {
            let _ = writeln!(
                out,
                "{}",
                serde_json::json!({"cmd": "reset_stats", "device": device})
            );
        }
    }
    // a closed pipe (`| head`) is not an error
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("validate") => validate(&args[1..]),
        Some("render") => render_cmd(&args[1..]),
        Some("aggregate") => aggregate_cmd(&args[1..]),
        Some("plan") => plan_cmd(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(USAGE.to_string()),
    };
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("irqstorm-report: {e}");
            ExitCode::from(2)
        }
    }
}
