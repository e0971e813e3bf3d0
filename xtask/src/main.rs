//! `cargo xtask`: set-up, build and boot the irqstorm guest lab.

mod apt;
mod bench;
mod bindgen;
mod ci_examples;
mod conservation;
mod docs;
mod fault;
mod fuzz;
mod guest;
mod guest_program;
mod initramfs;
mod kcidb;
mod kernel;
mod qemu;
mod repeat;
mod scenario;
mod setup;
mod soak;
mod test_cmd;
mod tsc_ratchet;
mod util;

use anyhow::{Context, Result};
use clap::builder::TypedValueParser as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use guest::{AccelOpt, Device, Guest};
use irqstorm_harness::interference::wake_floor::HZ_RANGE;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use util::step;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "irqstorm lab: set-up, build, boot, test"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Global {
    /// QEMU binary (or launcher script) to use instead of the system's or the provisioned one.
    #[arg(long, global = true, env = "IRQSTORM_QEMU", value_name = "PATH")]
    qemu: Option<PathBuf>,
    /// Use your own kernel tree: a configured+built tree (used as is) or a source tree (built into the cache).
    #[arg(long, global = true, env = "IRQSTORM_KERNEL_TREE", value_name = "DIR")]
    kernel_tree: Option<PathBuf>,
    /// Accelerator: auto probes KVM (cached) and falls back to TCG.
    #[arg(
        long,
        global = true,
        env = "IRQSTORM_ACCEL",
        value_enum,
        default_value = "auto"
    )]
    accel: AccelOpt,
    /// Guest boot timeout in seconds (QEMU is killed after it).
    #[arg(
        long,
        global = true,
        env = "IRQSTORM_TIMEOUT",
        default_value_t = 300,
        value_name = "SECS"
    )]
    timeout: u64,
    /// Kernel variant: preempt (images/kernel.config) or one of
    /// images/kernel-variants/NAME.config merged on top (rt: PREEMPT_RT);
    /// each is built and cached on its own.
    #[arg(
        long,
        global = true,
        env = "IRQSTORM_KERNEL_VARIANT",
        default_value = kernel::DEFAULT_VARIANT,
        value_name = "NAME"
    )]
    kernel_variant: String,
    /// Module source directory (default: guest-driver/).
    #[arg(long, global = true, env = "IRQSTORM_MODULE_SRC", value_name = "DIR")]
    module_src: Option<PathBuf>,
    /// Echo the guest console while it runs.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Args, Clone, Default)]
struct GuestOpts {
    /// Run only these guest scripts (comma-separated, e.g. "00-module" or "module").
    #[arg(long, value_name = "NAMES")]
    only: Option<String>,
    /// Device mode: start the vhost-user back end and add the irqstorm device
    /// [env: IRQSTORM_DEVICE=]
    #[arg(long)]
    device: bool,
    /// Back end binary (default: build target/release/irqstorm-backend).
    #[arg(long, env = "IRQSTORM_BACKEND", value_name = "PATH")]
    backend: Option<PathBuf>,
    /// virtio device id (QEMU and back end).
    #[arg(long, default_value_t = 21)]
    virtio_id: u32,
    /// Virtqueue size.
    #[arg(long, default_value_t = 256)]
    vq_size: u32,
    /// Extra argument for the back end (repeatable), e.g. --backend-arg=--sources=4.
    #[arg(long = "backend-arg", value_name = "ARG", allow_hyphen_values = true)]
    backend_args: Vec<String>,
    /// Extra kernel command line (e.g. "irqstorm.foo=1").
    #[arg(long, value_name = "ARGS")]
    cmdline: Option<String>,
}

/// The variable that turns device mode on like `--device` does.
const DEVICE_ENV: &str = "IRQSTORM_DEVICE";

impl GuestOpts {
    /// Apply `IRQSTORM_DEVICE` (a bool-ish value, as clap takes it: 1/0,
    /// true/false, yes/no, on/off) when `--device` is not given. The value
    /// is passed in, so tests need not touch the process environment.
    fn with_device_env(mut self, value: Option<&OsStr>) -> Result<GuestOpts, clap::Error> {
        if let (false, Some(v)) = (self.device, value) {
            let mut cmd = Cli::command();
            cmd.build();
            // `--device` of `run`, built, so errors name it as clap does.
            let arg = cmd
                .find_subcommand("run")
                .and_then(|c| c.get_arguments().find(|a| a.get_id() == "device"));
            self.device = clap::builder::BoolishValueParser::new().parse_ref(&cmd, arg, v)?;
        }
        Ok(self)
    }
}

impl Cmd {
    /// [`GuestOpts::with_device_env`] on the command's guest options.
    fn with_device_env(self, value: Option<&OsStr>) -> Result<Cmd, clap::Error> {
        Ok(match self {
            Cmd::Run { guest, sc } => Cmd::Run {
                guest: guest.with_device_env(value)?,
                sc,
            },
            Cmd::Test {
                guest,
                guest_only,
                no_scenario,
                no_soak,
            } => Cmd::Test {
                guest: guest.with_device_env(value)?,
                guest_only,
                no_scenario,
                no_soak,
            },
            Cmd::Shell(o) => Cmd::Shell(o.with_device_env(value)?),
            Cmd::Soak { guest, soak } => Cmd::Soak {
                guest: guest.with_device_env(value)?,
                soak,
            },
            Cmd::Bench { mut bench } => {
                if let BenchKind::Backend { guest, .. } = &mut bench {
                    *guest = guest.clone().with_device_env(value)?;
                }
                Cmd::Bench { bench }
            }
            c @ (Cmd::Doctor | Cmd::Docs { .. } | Cmd::Fuzz { .. } | Cmd::CiExamples { .. }) => c,
        })
    }
}

#[derive(Args, Clone, Default)]
struct ScenarioOpts {
    /// Scenario file (TOML, docs/scenarios.md).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "tests/scenarios/default.toml"
    )]
    scenario: PathBuf,
    /// Report directory (default: target/irqstorm/runs/<stamp>/, always new).
    /// A given one must be empty or new, so that no file of an earlier run
    /// passes for this one's; --force empties it first.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Empty a non-empty --report-dir before the run.
    #[arg(long, requires = "report_dir")]
    force: bool,
    /// Guests at once, each its own QEMU and device socket of one back end
    /// process (`-c N`), aggregated into one report.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
    socket_count: u32,
    /// Mark the run disturbed (latency thresholds not judged) when a QEMU
    /// vCPU thread waited for a host core more than this share of the
    /// measured phase; overrides the scenario's [gates] max_vcpu_wait_share
    /// (default 0.05).
    #[arg(long, value_name = "SHARE")]
    max_vcpu_wait_share: Option<f64>,
    /// Run the scenario N times (a fresh guest boot each, the same back end
    /// options) into one report directory: `runs/<k>/` per run, plus
    /// `repeats.json` and `repeats.txt` (docs/report.md).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Guest driver module parameter (repeatable), passed as
    /// `irqstorm.NAME=VALUE` on the kernel command line (guest-driver/README.md);
    /// `*_mech` parameters take a mechanism name or id.
    #[arg(long = "module-param", value_name = "NAME=VALUE")]
    module_params: Vec<String>,
    /// With --repeat N: interleave a second configuration B (these options
    /// plus every --b-module-param) with A (these options), run by run in
    /// ABBA order (A B, B A, A B, ...) so both meet the same host
    /// conditions, into DIR/A and DIR/B, then compare B against A
    /// (compare.txt, compare.json, compare.xml; exit 1 on a significant
    /// regression). Without --b-module-param both sides are the same:
    /// clean against clean.
    #[arg(long, requires = "repeat")]
    ab: bool,
    /// A module parameter only configuration B has (see --ab; repeatable).
    #[arg(long = "b-module-param", value_name = "NAME=VALUE", requires = "ab")]
    b_module_params: Vec<String>,
    /// Trace the run in the guest (irq_handler_entry, softirq_entry,
    /// workqueue_execute_start, sched_switch; x86-tsc clock) with the driver's
    /// events log on; keep trace.txt and events.txt in the report directory.
    #[arg(long)]
    trace: bool,
    /// Run the kernel's timerlat tracer in the guest over the measured phase
    /// (the scenario's `[timerlat]`, turned on; period from it, default
    /// 1000 us): its IRQ and thread latency become a baseline beside the
    /// driver's hrtimer reference; timerlat-hist.txt keeps its histogram.
    #[arg(long)]
    timerlat: bool,
    /// Measure the host's wake-up floor beside the run: a thread woken by a
    /// timerfd at HZ that writes an eventfd another thread waits on, its CPU
    /// time per wake-up over the measured phase (report.json
    /// interference.wake_floor; `bench backend` runs it at each case's own
    /// wake-up rate, 8000 Hz isolated and 1250 Hz for bursts of 16).
    #[arg(long, value_name = "HZ", value_parser = clap::value_parser!(u32).range(
        i64::from(*HZ_RANGE.start())..=i64::from(*HZ_RANGE.end())
    ))]
    wake_floor_hz: Option<u32>,
}

#[derive(Subcommand, Clone)]
enum BenchKind {
    /// Back end CPU per delivered event, isolated events and bursts; use
    /// --backend PATH to measure another build (e.g. main's) the same way.
    Backend {
        #[command(flatten)]
        guest: GuestOpts,
        /// Runs per case (a fresh back end and guest boot each).
        #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
        repeat: u32,
        /// Report directory (default: target/irqstorm/bench/<stamp>/, always
        /// new); a given one must be empty or new (--force empties it).
        #[arg(long, value_name = "DIR")]
        report_dir: Option<PathBuf>,
        /// Empty a non-empty --report-dir first.
        #[arg(long, requires = "report_dir")]
        force: bool,
        /// Exit 1 when a median misses its goal.
        #[arg(long)]
        check: bool,
        /// Run the back end alone: no wake-up floor probe beside it (the
        /// probe wakes as often as the case's back end must, doubling the
        /// host's wake-ups).
        #[arg(long)]
        no_floor: bool,
    },
    /// How far QEMU TCG's tick ratchet can move a guest TSC on this host:
    /// two threads on two CPUs take turns reading the TSC through QEMU's
    /// accounting, with QEMU's plain read and with an lfence-ordered one
    /// (no guest boot).
    TscRatchet {
        /// TSC reads per thread and run.
        #[arg(long, default_value_t = 1_000_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1000..=100_000_000))]
        reads: u64,
        /// Runs per kind of read, interleaved.
        #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeat: u32,
        /// Also write every run as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Set up, build, boot and run a scenario (default tests/scenarios/default.toml) in
    /// device mode; print the side-by-side table and write the report directory.
    /// With --only NAMES: boot once running those guest test scripts instead.
    Run {
        #[command(flatten)]
        guest: GuestOpts,
        #[command(flatten)]
        sc: ScenarioOpts,
    },
    /// All tests: fmt, clippy, cargo test, a short fuzz run of each target,
    /// the guest boot running the guest scripts, then the short scenario
    /// tests/scenarios/ci-quick.toml with its gates and the
    /// impossible-threshold check.
    Test {
        #[command(flatten)]
        guest: GuestOpts,
        /// Skip fmt/clippy/cargo test; only the guest.
        #[arg(long)]
        guest_only: bool,
        /// Skip the scenario run (and the CI examples, which boot one too).
        #[arg(long)]
        no_scenario: bool,
        /// Skip the short soaks (pause, reconnect).
        #[arg(long)]
        no_soak: bool,
    },
    /// Long runs that print their figures (device mode): `soak reconnect`,
    /// `soak rebind`.
    Soak {
        #[command(flatten)]
        guest: GuestOpts,
        #[command(subcommand)]
        soak: soak::Soak,
    },
    /// Benchmarks that print their figures: `bench backend` runs
    /// tests/scenarios/bench-isolated.toml and bench-bursts.toml and prints
    /// the back end's CPU time per delivered event (median over --repeat
    /// runs) beside its goal and the host's wake-up floor measured beside
    /// each run; `bench tsc-ratchet` shows how far QEMU TCG's
    /// tick ratchet can move a guest TSC on this host.
    Bench {
        #[command(subcommand)]
        bench: BenchKind,
    },
    /// The CI examples (docs/ci/): actionlint on the GitHub workflow,
    /// shellcheck on their scripts, and the GitLab pipeline's jobs run for
    /// real by gitlab-ci-local's shell executor (default: the quick job).
    CiExamples {
        /// A GitLab job to run (repeatable; default irqstorm-quick).
        #[arg(long = "gitlab-job", value_name = "JOB")]
        gitlab_jobs: Vec<String>,
    },
    /// Check every prerequisite: version, OK/missing, and the exact fix.
    Doctor,
    /// Rewrite the README's generated blocks (the mechanism teaching table,
    /// from protocol/src/mechanisms.rs); --check: exit 1 if they are stale.
    Docs {
        /// Only check.
        #[arg(long)]
        check: bool,
    },
    /// Fuzz the back end (cargo-fuzz / libFuzzer, fuzz/): build the targets,
    /// run each for --seconds from its seeds and kept corpus, print the
    /// figures (executions, coverage, features, corpus, crashes) per target.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// Stop a target after this many executions (default: the time only).
        #[arg(long, value_name = "N")]
        runs: Option<u64>,
        /// One target (rings, vhost_user) or all.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Build the targets in cargo's dev profile (overflow checks and
        /// debug assertions, half the compile, fewer executions per second),
        /// as the short run of `cargo xtask test` does.
        #[arg(long)]
        dev: bool,
    },
    /// Boot the guest with an interactive shell on the console.
    Shell(GuestOpts),
}

fn main() -> ExitCode {
    irqstorm_harness::progress::start_clock();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let mut cli = Cli::parse();
    cli.cmd = match cli
        .cmd
        .with_device_env(std::env::var_os(DEVICE_ENV).as_deref())
    {
        Ok(cmd) => cmd,
        Err(e) => e.exit(),
    };
    let r = match &cli.cmd {
        Cmd::Run { guest, sc } => cmd_run(&cli.global, guest, sc),
        Cmd::Test {
            guest,
            guest_only,
            no_scenario,
            no_soak,
        } => test_cmd::cmd_test(&cli.global, guest, *guest_only, (*no_scenario, *no_soak)),
        Cmd::Soak { guest, soak } => cmd_soak(&cli.global, guest, soak),
        Cmd::Bench {
            bench:
                BenchKind::Backend {
                    guest,
                    repeat,
                    report_dir,
                    force,
                    check,
                    no_floor,
                },
        } => report_dir
            .as_deref()
            .map_or(Ok(()), |d| util::claim_report_dir(d, *force))
            .and_then(|()| {
                bench::run(
                    &cli.global,
                    guest,
                    *repeat,
                    report_dir.clone(),
                    (*check, !*no_floor),
                )
            }),
        Cmd::Bench {
            bench:
                BenchKind::TscRatchet {
                    reads,
                    repeat,
                    json,
                },
        } => tsc_ratchet::run(*reads, *repeat, json.as_deref()).map(|()| ExitCode::SUCCESS),
        Cmd::CiExamples { gitlab_jobs } => {
            let jobs = if gitlab_jobs.is_empty() {
                vec![ci_examples::GITLAB_QUICK_JOB.to_string()]
            } else {
                gitlab_jobs.clone()
            };
            match setup::ensure() {
                Ok(()) => {
                    let (p, f) = ci_examples::check_all(&util::repo_root(), &jobs);
                    Ok(summary(p, f, 0))
                }
                Err(e) => Err(e),
            }
        }
        Cmd::Doctor => cmd_doctor(&cli.global),
        Cmd::Docs { check } => docs::run(&util::repo_root(), *check).map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Cmd::Fuzz {
            seconds,
            runs,
            target,
            dev,
        } => {
            let profile = if *dev {
                fuzz::Profile::Dev
            } else {
                fuzz::Profile::Release
            };
            cmd_fuzz(*seconds, *runs, target.as_deref(), profile)
        }
        Cmd::Shell(o) => cmd_shell(&cli.global, o),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Set-up and all artifacts; the cache lock is held only while building.
fn prepare(g: &Global) -> Result<Guest> {
    let repo = util::repo_root();
    let t0 = Instant::now();
    setup::ensure()?;
    let (q, k, ko) = prepare_kernel(g)?;
    let wait = guest_program::build(&repo)?;
    let cache = util::cache_root();
    let initrd = {
        let _lock = util::lock_cache(&cache)?;
        initramfs::build(&repo, &cache, &ko, &wait)?
    };
    step(&format!("prepared in {}", util::fmt_dur(t0.elapsed())));
    Ok(Guest {
        qemu: q,
        kernel: k.bzimage,
        kernel_key: k.key,
        kernel_variant: k.variant,
        initrd,
    })
}

/// The artifacts that need no cargo build (QEMU, kernel, module), under
/// the cache lock: what `cargo xtask test` builds in the background beside
/// its host checks.
fn prepare_kernel(g: &Global) -> Result<(qemu::Qemu, kernel::Kernel, PathBuf)> {
    let repo = util::repo_root();
    let cache = util::cache_root();
    let _lock = util::lock_cache(&cache)?;
    let mut apt = apt::PrivateApt::new(&cache);
    let q = qemu::resolve(&cache, g.qemu.as_deref(), &mut apt, true)?;
    step(&format!(
        "QEMU: {} [{}] ({})",
        q.version,
        q.origin,
        q.program.display()
    ));
    let tools = setup::Toolchain::detect();
    let source = match &g.kernel_tree {
        Some(d) => kernel::Source::Tree(d.clone()),
        None => kernel::Source::Pinned,
    };
    let variant = kernel::Variant::load(&repo, &g.kernel_variant)?;
    let k = kernel::prepare(&repo, &cache, &source, &tools, &variant, &mut apt)?;
    let msrc = g
        .module_src
        .clone()
        .unwrap_or_else(|| repo.join("guest-driver"));
    let ko = kernel::build_module(&cache, &k, &msrc)?;
    Ok((q, k, ko))
}

fn device(o: &GuestOpts) -> Result<Option<Device>> {
    if !o.device {
        return Ok(None);
    }
    let repo = util::repo_root();
    let backend = match &o.backend {
        Some(p) => p.clone(),
        None => {
            step("device mode: building the back end (cargo build --release -p irqstorm-backend)");
            util::run(
                Command::new(cargo())
                    .args(["build", "--release", "-p", "irqstorm-backend"])
                    .current_dir(&repo),
            )?;
            target_dir(&repo).join("release/irqstorm-backend")
        }
    };
    if !backend.exists() {
        anyhow::bail!("back end binary {} does not exist", backend.display());
    }
    Ok(Some(Device {
        backend,
        virtio_id: o.virtio_id,
        num_vqs: 3,
        vq_size: o.vq_size,
        config_size: 32,
        backend_args: o.backend_args.clone(),
    }))
}

fn target_dir(repo: &Path) -> PathBuf {
    target_dir_from(repo, std::env::var_os("CARGO_TARGET_DIR"))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if given, else `repo/target`.
fn target_dir_from(repo: &Path, cargo_target_dir: Option<std::ffi::OsString>) -> PathBuf {
    cargo_target_dir
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"))
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn guest_run(g: &Global, o: &GuestOpts) -> Result<irqstorm_harness::boot::Evaluation> {
    let repo = util::repo_root();
    let guest = prepare(g)?;
    let dev = device(o)?;
    let accel = guest::choose_accel(&repo, &util::cache_root(), &guest, g.accel)?;
    guest::run_tests(
        &repo,
        &guest,
        &guest::RunOpts {
            accel,
            timeout: Duration::from_secs(g.timeout),
            only: o.only.as_deref(),
            extra_cmdline: o.cmdline.as_deref(),
            device: dev.as_ref(),
            echo: g.verbose,
        },
    )
}

/// The last line of `test`, `run --only` and `soak`: `N passed, N failed, N
/// skipped` (a skip is never counted as passed; each is named above it).
fn summary(passed: usize, failed: usize, skipped: usize) -> ExitCode {
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line per skipped guest script, with its reason.
fn print_skipped(ev: &irqstorm_harness::boot::Evaluation) {
    let Some(k) = &ev.ktap else { return };
    for t in k
        .tests
        .iter()
        .filter(|t| t.outcome == irqstorm_harness::ktap::Outcome::Skip)
    {
        println!(
            "  skipped {}: {}",
            t.name,
            t.directive.as_deref().unwrap_or("SKIP")
        );
    }
}

fn cmd_run(g: &Global, o: &GuestOpts, so: &ScenarioOpts) -> Result<ExitCode> {
    if o.only.is_some() {
        let ev = guest_run(g, o)?;
        print_skipped(&ev);
        return Ok(summary(ev.passed, ev.failed, ev.skipped));
    }
    if let Some(d) = &so.report_dir {
        util::claim_report_dir(d, so.force)?;
    }
    if so.ab {
        return repeat::run_ab(g, o, so);
    }
    if so.repeat > 1 {
        return repeat::run(g, o, so);
    }
    let t0 = Instant::now();
    let out = scenario_run(g, o, so)?;
    let console = out.dir.join("console.log");
    let msg = scenario::report(&out, console.exists().then_some(console.as_path()))?;
    eprintln!("total time {}", util::fmt_dur(t0.elapsed()));
    match msg {
        Some(m) => {
            eprint!("{m}");
            Ok(ExitCode::FAILURE)
        }
        None => {
            eprintln!("all checks passed");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A scenario run in device mode (the back end is always needed).
fn scenario_run(g: &Global, o: &GuestOpts, so: &ScenarioOpts) -> Result<scenario::Outcome> {
    let p = scenario::prepare(g, o, so)?;
    p.run(g, so, so.report_dir.clone())
}

fn cmd_soak(g: &Global, o: &GuestOpts, which: &soak::Soak) -> Result<ExitCode> {
    let ok = run_soak(g, o, which)?;
    Ok(summary(usize::from(ok), usize::from(!ok), 0))
}

/// Runs one soak in device mode; `Ok(true)` when every check held.
fn run_soak(g: &Global, o: &GuestOpts, which: &soak::Soak) -> Result<bool> {
    let repo = util::repo_root();
    let guest = prepare(g)?;
    let mut od = o.clone();
    od.device = true;
    let Some(dev) = device(&od)? else {
        anyhow::bail!("soak needs the device");
    };
    let accel = guest::choose_accel(&repo, &util::cache_root(), &guest, g.accel)?;
    let setup = soak::GuestSetup {
        guest: &guest,
        accel,
        dev: &dev,
        timeout: Duration::from_secs(g.timeout),
        echo: g.verbose,
        extra_cmdline: o.cmdline.as_deref(),
    };
    let ok = match which {
        soak::Soak::Hotplug(args) => soak::hotplug::hotplug(&repo, &setup, args)?.passed(),
        soak::Soak::Pause(args) => soak::pause::pause(&repo, &setup, args)?.passed(),
        &soak::Soak::Reconnect {
            cycles,
            events,
            rate_hz,
        } => soak::reconnect::run(
            &repo,
            &guest,
            accel,
            &dev,
            &soak::reconnect::Opts {
                cycles,
                events,
                rate_hz,
            },
        )?,
        &soak::Soak::Rebind { cycles, rate_hz } => soak::rebind::run(
            &repo,
            &guest,
            accel,
            &dev,
            &soak::rebind::Opts { cycles, rate_hz },
            g.verbose,
        )?,
    };
    Ok(ok)
}

fn cmd_fuzz(
    seconds: u64,
    runs: Option<u64>,
    target: Option<&str>,
    profile: fuzz::Profile,
) -> Result<ExitCode> {
    let targets = fuzz::pick(target)?;
    setup::ensure()?;
    let repo = util::repo_root();
    let budget = fuzz::Budget { seconds, runs };
    let (passed, failed) = fuzz::run_all(&repo, &target_dir(&repo), &targets, budget, profile);
    Ok(summary(passed, failed, 0))
}

fn cmd_shell(g: &Global, o: &GuestOpts) -> Result<ExitCode> {
    let repo = util::repo_root();
    let guest = prepare(g)?;
    let dev = device(o)?;
    let accel = guest::choose_accel(&repo, &util::cache_root(), &guest, g.accel)?;
    guest::shell(&repo, &guest, accel, dev.as_ref())?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_doctor(g: &Global) -> Result<ExitCode> {
    let repo = util::repo_root();
    let cache = util::cache_root();
    eprintln!("prerequisites:");
    let mut checks = setup::checks();
    // QEMU
    let mut apt = apt::PrivateApt::new(&cache);
    let q = qemu::resolve(&cache, g.qemu.as_deref(), &mut apt, false);
    checks.push(match q {
        Ok(q) => setup::Check {
            name: format!("QEMU with {} [{}]", qemu::DEVICE, q.origin),
            version: Some(format!("{} ({})", q.version, q.program.display())),
            ok: true,
            fix: None,
            info: false,
        },
        Err(e) if g.qemu.is_some() => setup::Check {
            name: format!("QEMU with {}", qemu::DEVICE),
            version: None,
            ok: false,
            fix: Some(setup::Fix::Advice(format!("{e:#}"))),
            info: false,
        },
        Err(_) => setup::Check {
            name: format!("QEMU with {} ({})", qemu::DEVICE, qemu::NEEDED),
            version: None,
            ok: false,
            fix: Some(setup::Fix::Advice(format!(
                "none yet: `cargo xtask run` provisions trixie-backports QEMU into {}",
                qemu::provisioned_dir(&cache).display()
            ))),
            info: true,
        },
    });
    // bindgen (the kernel's minimum is checked when the kernel is built)
    let provisioned = bindgen::provisioned_dir(&cache).join("bindgen");
    let bg = util::version_of("bindgen", &["--version"])
        .map(|v| (v, "PATH".to_string()))
        .or_else(|| {
            util::version_of(&provisioned.to_string_lossy(), &["--version"])
                .map(|v| (v, format!("provisioned: {}", provisioned.display())))
        });
    checks.push(setup::Check {
        name: "bindgen for the kernel's Rust (PATH, else Debian trixie's)".into(),
        ok: bg.is_some(),
        version: bg.map(|(v, from)| format!("{v} ({from})")),
        fix: Some(setup::Fix::Advice(format!(
            "none yet: the kernel build provisions Debian trixie's into {}",
            provisioned.display()
        ))),
        info: true,
    });
    let cached = util::cache_root().join(fuzz::VENV).join("bin/cargo-fuzz");
    let cf = util::version_of("cargo", &["fuzz", "--version"])
        .map(|v| format!("{v} (PATH)"))
        .or_else(|| {
            util::version_of(&cached.to_string_lossy(), &["--version"])
                .map(|v| format!("{v} (cached: {})", cached.display()))
        });
    checks.push(setup::Check {
        name: format!(
            "cargo-fuzz {} (PATH, else Astral's wheel from PyPI)",
            fuzz::CARGO_FUZZ_VERSION
        ),
        ok: cf.is_some(),
        version: cf,
        fix: Some(setup::Fix::Advice(
            "none yet: `cargo xtask fuzz`/`test` installs the wheel into the cache".into(),
        )),
        info: true,
    });
    // Kernel
    match &g.kernel_tree {
        Some(t) => checks.push(setup::Check {
            name: "kernel: your tree (--kernel-tree)".into(),
            version: Some(t.display().to_string()),
            ok: t.join("Makefile").exists(),
            fix: (!t.join("Makefile").exists())
                .then(|| setup::Fix::Advice(format!("{} is not a kernel tree", t.display()))),
            info: false,
        }),
        None => {
            let pin = kernel::load_pin(&repo)?;
            let cached = std::fs::read_dir(&cache)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .any(|e| e.file_name().to_string_lossy().starts_with("kernel-"))
                })
                .unwrap_or(false);
            checks.push(setup::Check {
                name: format!("kernel source {} {} (pinned)", pin.package, pin.version),
                version: cached.then(|| "a kernel build is cached".into()),
                ok: cached,
                fix: (!cached).then(|| {
                    setup::Fix::Advice(
                        "none needed: `cargo xtask run` downloads and builds it (~6 min on 2 cores)"
                            .into(),
                    )
                }),
                info: true,
            });
        }
    }
    let kvm = std::path::Path::new("/dev/kvm").exists();
    checks.push(setup::Check {
        name: "KVM (/dev/kvm; --accel auto probes it, TCG otherwise)".into(),
        version: None,
        ok: kvm,
        fix: (!kvm).then(|| setup::Fix::Advice("none needed: guests run under TCG".into())),
        info: true,
    });
    setup::print_checks(&checks);
    eprintln!("cache: {}", cache.display());
    eprintln!(
        "root: {}",
        if util::is_root() {
            "yes (set-up installs what is missing)"
        } else {
            "no (set-up prints the commands)"
        }
    );
    let missing = checks.iter().filter(|c| !c.ok && !c.info).count();
    if missing > 0 {
        eprintln!("{missing} prerequisite(s) missing");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("all prerequisites present");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ab_needs_a_repeat_and_b_params_need_ab() {
        let cli = Cli::try_parse_from([
            "xtask",
            "run",
            "--repeat",
            "10",
            "--ab",
            "--b-module-param",
            "inject_delay_us=20",
        ])
        .unwrap();
        let Cmd::Run { sc, .. } = cli.cmd else {
            panic!("not run")
        };
        assert!(sc.ab);
        assert_eq!(sc.b_module_params, vec!["inject_delay_us=20"]);
        assert!(Cli::try_parse_from(["xtask", "run", "--ab"]).is_err());
        // --force only with a report directory to empty.
        assert!(Cli::try_parse_from(["xtask", "run", "--force"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "run", "--report-dir", "r", "--force"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "run", "--b-module-param", "x=1"]).is_err());
    }

    #[test]
    fn bench_backend_takes_guest_options() {
        let cli = Cli::try_parse_from([
            "xtask",
            "bench",
            "backend",
            "--repeat",
            "2",
            "--backend",
            "/x/irqstorm-backend",
            "--backend-arg=--acks=kick",
            "--check",
        ])
        .unwrap();
        let Cmd::Bench {
            bench:
                BenchKind::Backend {
                    guest,
                    repeat,
                    check,
                    no_floor,
                    ..
                },
        } = cli.cmd
        else {
            panic!("not bench")
        };
        assert_eq!((repeat, check, no_floor), (2, true, false));
        let cli = Cli::try_parse_from(["xtask", "bench", "backend", "--no-floor"]).unwrap();
        let Cmd::Bench {
            bench: BenchKind::Backend { no_floor, .. },
        } = cli.cmd
        else {
            panic!("not bench")
        };
        assert!(no_floor);
        assert_eq!(guest.backend_args, vec!["--acks=kick"]);
        assert_eq!(guest.backend.unwrap(), PathBuf::from("/x/irqstorm-backend"));
    }

    #[test]
    fn cli_parses_bench_tsc_ratchet_and_refuses_too_few_reads() {
        let cli = Cli::try_parse_from([
            "xtask",
            "bench",
            "tsc-ratchet",
            "--reads",
            "5000",
            "--repeat",
            "2",
            "--json",
            "/x.json",
        ])
        .unwrap();
        let Cmd::Bench {
            bench:
                BenchKind::TscRatchet {
                    reads,
                    repeat,
                    json,
                },
        } = cli.cmd
        else {
            panic!("not bench tsc-ratchet")
        };
        assert_eq!(
            (reads, repeat, json),
            (5000, 2, Some(PathBuf::from("/x.json")))
        );
        assert!(Cli::try_parse_from(["xtask", "bench", "tsc-ratchet", "--reads", "10"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "bench", "tsc-ratchet", "--repeat", "0"]).is_err());
    }

    #[test]
    fn cli_parses_device_mode_options() {
        let cli = Cli::try_parse_from([
            "xtask",
            "--accel",
            "tcg",
            "run",
            "--device",
            "--only",
            "module",
            "--backend-arg=--sources=4",
            "--backend-arg",
            "--fault-injection",
            "--timeout",
            "30",
        ])
        .unwrap();
        assert_eq!(cli.global.accel, AccelOpt::Tcg);
        assert_eq!(cli.global.timeout, 30);
        let Cmd::Run { guest: o, sc } = cli.cmd else {
            panic!("not run")
        };
        assert_eq!(sc.socket_count, 1);
        assert!(o.device);
        assert_eq!(o.only.as_deref(), Some("module"));
        assert_eq!(o.backend_args, vec!["--sources=4", "--fault-injection"]);
        assert_eq!(o.virtio_id, 21);
    }

    #[test]
    fn device_env_accepts_1() {
        let device = |args: &[&str], env: Option<&str>| {
            let cli = Cli::try_parse_from(args).unwrap();
            match cli.cmd.with_device_env(env.map(OsStr::new)) {
                Ok(Cmd::Run { guest, .. }) => Ok(guest.device),
                Ok(_) => panic!("not run"),
                Err(e) => Err(e.kind()),
            }
        };
        assert_eq!(device(&["xtask", "run"], Some("1")), Ok(true));
        assert_eq!(device(&["xtask", "run"], Some("off")), Ok(false));
        assert_eq!(device(&["xtask", "run"], None), Ok(false));
        assert_eq!(device(&["xtask", "run", "--device"], Some("0")), Ok(true));
        assert_eq!(
            device(&["xtask", "run"], Some("maybe")),
            Err(clap::error::ErrorKind::ValueValidation)
        );
    }

    #[test]
    fn run_scenario_options() {
        let cli = Cli::try_parse_from([
            "xtask",
            "run",
            "--scenario",
            "x.toml",
            "--report-dir",
            "r",
            "--socket-count",
            "3",
        ])
        .unwrap();
        let Cmd::Run { sc, .. } = cli.cmd else {
            panic!("not run")
        };
        assert_eq!(sc.scenario, PathBuf::from("x.toml"));
        assert_eq!(sc.report_dir, Some(PathBuf::from("r")));
        assert_eq!(sc.socket_count, 3);
        assert_eq!(sc.repeat, 1);
        assert!(Cli::try_parse_from(["xtask", "run", "--socket-count", "0"]).is_err());
        let cli = Cli::try_parse_from([
            "xtask",
            "run",
            "--repeat",
            "5",
            "--module-param",
            "inject_delay_us=20",
            "--module-param=inject_delay_mech=bh_wq",
        ])
        .unwrap();
        let Cmd::Run { sc, .. } = cli.cmd else {
            panic!("not run")
        };
        assert_eq!(sc.repeat, 5);
        assert_eq!(
            sc.module_params,
            vec!["inject_delay_us=20", "inject_delay_mech=bh_wq"]
        );
        assert!(Cli::try_parse_from(["xtask", "run", "--repeat", "0"]).is_err());
        assert_eq!(sc.wake_floor_hz, None);
        let cli = Cli::try_parse_from(["xtask", "run", "--wake-floor-hz", "8000"]).unwrap();
        let Cmd::Run { sc, .. } = cli.cmd else {
            panic!("not run")
        };
        assert_eq!(sc.wake_floor_hz, Some(8000));
        for hz in ["5", "20000", "x"] {
            assert!(Cli::try_parse_from(["xtask", "run", "--wake-floor-hz", hz]).is_err());
        }
    }

    #[test]
    fn impossible_threshold_parses_on_ci_quick() {
        let p = util::repo_root().join("tests/scenarios/ci-quick.toml");
        let text = std::fs::read_to_string(p).unwrap() + test_cmd::IMPOSSIBLE;
        irqstorm_report::scenario::parse(&text, "t").unwrap();
    }
}
