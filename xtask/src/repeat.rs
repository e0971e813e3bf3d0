//! `cargo xtask run --repeat N`: the scenario N times, a fresh back end and
//! guest boot each, into one report directory: `runs/<k>/` holds run k's
//! full report directory; `repeats.json` (docs/report.md) lists every run's
//! outcome and per-mechanism figures, `repeats.txt` their spread.

use crate::{scenario, util, Global, GuestOpts, ScenarioOpts};
use anyhow::{Context, Result};
use irqstorm_report::compare::load::{self, RunFigures};
use irqstorm_report::compare::repeats::{summary_line, RepeatsFile, RunOutcome};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// Runs the repeat; exit 1 when a run failed a check or did not complete
/// (each named).
pub fn run(g: &Global, o: &GuestOpts, so: &ScenarioOpts) -> Result<ExitCode> {
    let t0 = Instant::now();
    let top = match &so.report_dir {
        Some(d) => d.clone(),
        None => crate::guest::new_run_dir(&util::repo_root())?,
    };
    let runs = top.join("runs");
    // Old runs there would be compared as if they were this repeat's.
    if runs.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        anyhow::bail!(
            "{} is not empty: give --report-dir a new directory for a repeat",
            runs.display()
        );
    }
    let p = scenario::prepare(g, o, so)?;
    std::fs::create_dir_all(&runs).with_context(|| format!("cannot create {}", runs.display()))?;
    let n = so.repeat;
    let mut file = RepeatsFile::new(&so.scenario.display().to_string(), n);
    for k in 1..=n {
        util::step(&format!("run {k}/{n}: {} ...", so.scenario.display()));
        let t = Instant::now();
        let figures = one_run(&p, g, so, &runs, k);
        let r = file.push(k, figures);
        eprintln!("{} [{}]", summary_line(r, n), util::fmt_dur(t.elapsed()));
        for m in &r.failed_checks {
            eprintln!("  run {k}: FAIL {m}");
        }
        // After every run: an interrupted repeat keeps what it measured.
        write(&top, &file)?;
    }
    let spread = file.spread_table();
    print!("\nspread over the runs:\n{spread}");
    let count = |w: RunOutcome| file.runs.iter().filter(|r| r.outcome == w).count();
    eprintln!(
        "repeat: {n} runs in {}: {} passed, {} failed a check, {} did not complete; report {} (runs/<k>/, repeats.json, repeats.txt)",
        util::fmt_dur(t0.elapsed()),
        count(RunOutcome::Passed),
        count(RunOutcome::Failed),
        count(RunOutcome::Error),
        top.display()
    );
    let bad: Vec<_> = file.bad_runs().collect();
    if bad.is_empty() {
        eprintln!("all checks passed in every run");
        return Ok(ExitCode::SUCCESS);
    }
    for r in &bad {
        match (&r.error, r.failed_checks.first()) {
            (Some(e), _) => eprintln!("FAIL run {}/{n}: did not complete: {e}", r.run),
            (None, Some(m)) => eprintln!(
                "FAIL run {}/{n}: {} check(s) failed, first: {m}",
                r.run,
                r.failed_checks.len()
            ),
            (None, None) => eprintln!("FAIL run {}/{n}", r.run),
        }
    }
    Ok(ExitCode::FAILURE)
}

/// `--ab`: configurations A and B interleaved run by run in ABBA order
/// (a slow stretch of the host falls on both), each side's runs and
/// repeats.json under `DIR/A` and `DIR/B`, then B compared against A. Exit
/// 1 on a significant regression or a run that did not complete.
pub fn run_ab(g: &Global, o: &GuestOpts, so: &ScenarioOpts) -> Result<ExitCode> {
    let t0 = Instant::now();
    let top = match &so.report_dir {
        Some(d) => d.clone(),
        None => crate::guest::new_run_dir(&util::repo_root())?,
    };
    let mut b_opts = so.clone();
    b_opts
        .module_params
        .extend(so.b_module_params.iter().cloned());
    let sides = [("A", so), ("B", &b_opts)];
    let mut prepared = Vec::new();
    for (name, opts) in sides {
        let runs = top.join(name).join("runs");
        if runs.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            anyhow::bail!(
                "{} is not empty: give --report-dir a new directory for --ab",
                runs.display()
            );
        }
        std::fs::create_dir_all(&runs)
            .with_context(|| format!("cannot create {}", runs.display()))?;
        let file = RepeatsFile::new(&opts.scenario.display().to_string(), opts.repeat);
        prepared.push((name, opts, scenario::prepare(g, o, opts)?, file));
    }
    let n = so.repeat;
    let mut incomplete = 0;
    for k in 1..=n {
        // ABBA: A first in odd runs, B first in even ones.
        let order: [usize; 2] = if k % 2 == 1 { [0, 1] } else { [1, 0] };
        for i in order {
            let (name, opts, p, file) = &mut prepared[i];
            util::step(&format!("--ab run {k}/{n}, side {name} ..."));
            let t = Instant::now();
            let figures = one_run(p, g, opts, &top.join(*name).join("runs"), k);
            let r = file.push(k, figures);
            if r.outcome == RunOutcome::Error {
                incomplete += 1;
            }
            eprintln!(
                "{name}: {} [{}]",
                summary_line(r, n),
                util::fmt_dur(t.elapsed())
            );
            write(&top.join(*name), file)?;
        }
    }
    let base = load::load(&top.join("A")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let new = load::load(&top.join("B")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let c = irqstorm_report::compare::compare(&base, &new, &Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let table = irqstorm_report::compare::render::table(&c);
    print!("\nB against A:\n{table}");
    for (name, text) in [
        ("compare.txt", table),
        ("compare.json", serde_json::to_string_pretty(&c)? + "\n"),
        ("compare.xml", irqstorm_report::compare::render::junit(&c)),
    ] {
        let p = top.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    eprintln!(
        "--ab: {n} runs a side in {}, interleaved ABBA; {} regression(s), {} improvement(s); {} run(s) did not complete; report {} (A/, B/, compare.*)",
        util::fmt_dur(t0.elapsed()),
        c.regressions,
        c.improvements,
        incomplete,
        top.display()
    );
    Ok(if c.regressions > 0 || incomplete > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Run `k` of `p` into `runs/<k>/`: its report directory, then its figures
/// read back (or why there are none).
fn one_run(
    p: &scenario::Prepared,
    g: &Global,
    so: &ScenarioOpts,
    runs: &Path,
    k: u32,
) -> Result<RunFigures, String> {
    let dir = runs.join(k.to_string());
    p.run(g, so, Some(dir.clone()))
        .and_then(|out| {
            let console = out.dir.join("console.log");
            scenario::report(&out, console.exists().then_some(console.as_path()))
        })
        .map_err(|e| format!("{e:#}"))
        .and_then(|_| {
            load::read_report(&dir.join("report.json"), &format!("runs/{k}"))
                .map_err(|e| e.to_string())
        })
}

fn write(top: &Path, file: &RepeatsFile) -> Result<()> {
    let json = serde_json::to_string_pretty(file)? + "\n";
    for (name, text) in [("repeats.json", json), ("repeats.txt", file.spread_table())] {
        let p = top.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}
