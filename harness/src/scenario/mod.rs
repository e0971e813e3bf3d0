//! Running a scenario file end to end: the back end, one or more guests,
//! the phases over the control socket, and the gated report (used by
//! `cargo xtask run` and `cargo xtask test`).
//!
//! Host/guest coordination: the guest boots `rdinit=/tests/lib/scenario.sh`
//! with the scenario's guest-side settings on the kernel command line
//! (`irqstorm_sc_*`, see that script); it applies them through debugfs,
//! prints `IRQSTORM_SC_READY`, and then obeys one-line commands the host
//! writes to the serial console (`reset`, `w FILE ARGS`, `dump`, `done`).
//!
//! The stages: [`phases::run_phases`] (collect), [`assemble`] (one result
//! per device, merged), [`gate`] (thresholds, conservation, guest kernel
//! problems).

pub mod assemble;
pub mod conditions;
pub mod console;
pub mod guest_side;
pub(crate) mod guests;
pub mod phases;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use irqstorm_report::model::{self, Check, RunResult};
use irqstorm_report::scenario::{self as sc, DrivenBy, Scenario};
use irqstorm_report::{baseline, gate as report_gate};

use irqstorm_protocol::client::Client;
use irqstorm_protocol::control::{InfoReply, Request};

use crate::args::shell_quote;
use crate::boot::{self, Backend, BackendSpec, BootError};
use crate::interference::{self, Probe};
use crate::progress::{fmt_dur, step};
use guest_side::{guest_cmdline, guest_start_line};
use guests::Guests;

/// How long a control-socket reply may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);

/// What the guest prints when its scenario set-up is done.
pub const READY: &str = "IRQSTORM_SC_READY";

/// The QEMU argument vector of one guest, given its kernel command line,
/// its vhost-user socket and its vCPUs (the scenario's `guest.smp`).
pub type QemuArgs<'a> =
    dyn Fn(&str, &Path, u32) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> + 'a;

/// Errors of a scenario run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Load(#[from] sc::ScenarioError),
    /// The scenario cannot run as asked (accelerator, device limits, a
    /// guest-driven source the driver cannot start).
    #[error("{0}")]
    Scenario(String),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error("QEMU arguments: {0}")]
    QemuArgs(Box<dyn std::error::Error + Send + Sync>),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Control(#[from] irqstorm_protocol::client::Error),
    /// A request the control socket cannot carry.
    #[error(transparent)]
    Request(#[from] irqstorm_protocol::control::Error),
    #[error("{0}")]
    Guest(String),
    /// The back end died during the run (the message names it).
    #[error("{0}")]
    BackendDied(String),
    #[error(transparent)]
    Input(#[from] irqstorm_report::input::InputError),
    #[error(transparent)]
    Hist(#[from] irqstorm_report::hist::HistError),
    #[error(transparent)]
    Aggregate(#[from] irqstorm_report::aggregate::AggregateError),
    #[error(transparent)]
    Baseline(#[from] irqstorm_report::baseline::BaselineError),
    #[error(transparent)]
    Interference(#[from] interference::InterferenceError),
}

/// The device's back end.
pub struct BackendOpts<'a> {
    pub binary: &'a Path,
    pub virtio_id: u32,
    /// Extra arguments (`--backend-arg`).
    pub args: &'a [String],
}

impl BackendOpts<'_> {
    /// The back end of a run in `run_dir` (sockets in `run_dir/sockets`,
    /// log `run_dir/backend.log`) with `num_sources` sources, `--virtio-id`,
    /// then `extra`, then the user's arguments.
    pub fn spec(&self, run_dir: &Path, num_sources: u16, extra: &[String]) -> BackendSpec {
        let mut args = vec![
            "--virtio-id".to_string(),
            self.virtio_id.to_string(),
            "--sources".to_string(),
            num_sources.to_string(),
        ];
        args.extend(extra.iter().cloned());
        args.extend(self.args.iter().cloned());
        BackendSpec {
            binary: self.binary.to_path_buf(),
            dir: run_dir.join("sockets"),
            extra_args: args,
            log: run_dir.join("backend.log"),
            startup_timeout: Duration::from_secs(10),
        }
    }
}

/// The guest image and QEMU.
pub struct GuestOpts<'a> {
    pub qemu: &'a Path,
    pub qemu_version: &'a str,
    /// Kernel version when the console does not say it.
    pub kernel_key: &'a str,
    /// The kernel's variant (preempt, rt), for the run's metadata.
    pub kernel_variant: &'a str,
    /// The kernel command line before the scenario's words.
    pub base_cmdline: &'a str,
    /// Extra kernel command line, appended last (`--cmdline`).
    pub extra_cmdline: Option<&'a str>,
    pub qemu_args: &'a QemuArgs<'a>,
}

/// One scenario run.
pub struct RunSpec<'a> {
    pub scenario: &'a Path,
    /// The report directory (created if missing).
    pub dir: PathBuf,
    pub socket_count: u32,
    /// `tcg` or `kvm`.
    pub accel: &'a str,
    /// Boot and set-up limit of the guests.
    pub timeout: Duration,
    /// `--trace`: the guests trace (irq, softirq, workqueue, sched_switch on
    /// the x86-tsc clock) and log the driver's events; the report directory
    /// keeps `trace.txt` and `events.txt` (per device: `trace-N.txt`, ...).
    pub trace: bool,
    /// `--timerlat`: run the kernel's timerlat tracer in the guests over the
    /// measured phase even if the scenario's `[timerlat]` is off.
    pub timerlat: bool,
    /// Echo the guest consoles.
    pub echo: bool,
    pub backend: BackendOpts<'a>,
    pub guest: GuestOpts<'a>,
    /// Overrides the scenario's `[gates] max_vcpu_wait_share`
    /// (`--max-vcpu-wait-share`).
    pub max_vcpu_wait_share: Option<f64>,
    /// `--wake-floor-hz`: run the host wake-up floor probe
    /// ([`interference::wake_floor`]) at this rate beside the guests and
    /// report it with the interference of the measured phase.
    pub wake_floor_hz: Option<u32>,
}

/// What a scenario run produced (gated).
pub struct Outcome {
    pub result: RunResult,
    pub failures: Vec<Check>,
    pub dir: PathBuf,
}

/// `{stem}.{ext}` for a one-device run, `{stem}-{d}.{ext}` otherwise.
pub(crate) fn per_device_name(stem: &str, ext: &str, d: u32, n: u32) -> String {
    if n == 1 {
        format!("{stem}.{ext}")
    } else {
        format!("{stem}-{d}.{ext}")
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RunError {
    move |source| RunError::Io { what, source }
}

/// Run the scenario, build, gate and return the report (not yet written).
pub fn run(o: &RunSpec) -> Result<Outcome, RunError> {
    let t0 = Instant::now();
    let start_time = irqstorm_report::utc::UtcTime::now().rfc3339();
    let mut s = sc::load(o.scenario)?;
    s.check_accel(o.accel).map_err(RunError::Scenario)?;
    if let Some(w) = o.max_vcpu_wait_share {
        if !(w > 0.0 && w <= 1.0) {
            return Err(RunError::Scenario(format!(
                "--max-vcpu-wait-share {w}: must be in (0, 1]"
            )));
        }
        s.gates.max_vcpu_wait_share = w;
    }
    if o.timerlat {
        s.timerlat.enabled = true;
    }
    // Guest-driven sources must be expressible in debugfs before we boot.
    for p in s.plan() {
        for st in p.starts.iter().filter(|x| x.driven_by == DrivenBy::Guest) {
            guest_start_line(st)
                .map_err(|e| RunError::Scenario(format!("{}: {e}", o.scenario.display())))?;
        }
    }
    let n = o.socket_count.max(1);
    std::fs::create_dir_all(&o.dir).map_err(io(format!("create {}", o.dir.display())))?;
    step(&format!(
        "scenario {} ({}): {} source(s), {} guest(s), {:.1} s of device time; report: {}",
        s.name,
        o.scenario.display(),
        s.sources.len(),
        n,
        s.total_ms() as f64 / 1e3,
        o.dir.display()
    ));
    let spec = o.backend.spec(
        &o.dir,
        s.device.num_sources,
        &[
            "--socket-count".to_string(),
            n.to_string(),
            // For `--spin-us auto`: every guest's vCPUs.
            "--guest-vcpus".to_string(),
            (s.guest.smp * n).to_string(),
        ],
    );
    let mut backend = Backend::start(&spec)?;
    let r = run_with_backend(o, &s, &spec, (n, backend.pid()), (t0, start_time));
    // A dead back end explains whatever failed after it died.
    let r = match (r, backend.died()) {
        (Err(_), Some(d)) => Err(RunError::BackendDied(d)),
        (r, _) => r,
    };
    backend.stop();
    let (result, failures) = r?;
    Ok(Outcome {
        result,
        failures,
        dir: o.dir.clone(),
    })
}

/// Check the scenario against every device's `info` limits.
fn check_devices(s: &Scenario, ctl: &mut Client, n: u32) -> Result<(), RunError> {
    for d in 0..n {
        let info = ctl.call::<InfoReply>(&Request::Info { device: Some(d) })?;
        let limits = s.device.with_info(&info);
        if let Err(p) = s.validate_against(&limits) {
            let msgs: Vec<String> = p
                .iter()
                .map(|x| format!("{}: {}", x.field, x.message))
                .collect();
            return Err(RunError::Scenario(format!(
                "scenario does not fit device {d}: {}",
                msgs.join("; ")
            )));
        }
    }
    Ok(())
}

/// The started guests, their console logs and their full QEMU command
/// lines (program first).
type Booted = (Guests, Vec<PathBuf>, Vec<Vec<String>>);

/// Write the QEMU commands and start the guests.
fn boot_guests(o: &RunSpec, s: &Scenario, spec: &BackendSpec, n: u32) -> Result<Booted, RunError> {
    let g = &o.guest;
    let mut cmdline = format!(
        "{} rdinit=/tests/lib/scenario.sh {}",
        g.base_cmdline,
        guest_cmdline(s)
    );
    if o.trace {
        cmdline.push_str(" irqstorm_sc_trace=1");
    }
    if let Some(x) = g.extra_cmdline.filter(|x| !x.is_empty()) {
        cmdline.push(' ');
        cmdline.push_str(x);
    }
    let sock = spec.socket_path();
    let mut argvs = Vec::new();
    let mut logs = Vec::new();
    for i in 0..n {
        let p = if n == 1 {
            sock.clone()
        } else {
            PathBuf::from(format!("{}{i}", sock.display()))
        };
        let args = (g.qemu_args)(&cmdline, &p, s.guest.smp).map_err(RunError::QemuArgs)?;
        let file = o.dir.join(per_device_name("qemu-command", "sh", i, n));
        std::fs::write(
            &file,
            format!(
                "#!/bin/sh\nexec {} {}\n",
                shell_quote(&[g.qemu.display().to_string()]),
                shell_quote(&args)
            ),
        )
        .map_err(io(format!("write {}", file.display())))?;
        argvs.push(args);
        logs.push(o.dir.join(per_device_name("console", "log", i, n)));
    }
    step(&format!(
        "booting {n} guest(s) ({}, {})",
        o.accel, g.qemu_version
    ));
    let commands = argvs
        .iter()
        .map(|a| {
            let mut c = vec![g.qemu.display().to_string()];
            c.extend(a.iter().cloned());
            c
        })
        .collect();
    let guests = Guests::spawn(g.qemu, argvs, &logs, o.echo)?;
    Ok((guests, logs, commands))
}

fn host_kernel() -> String {
    std::process::Command::new("uname")
        .arg("-r")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn run_with_backend(
    o: &RunSpec,
    s: &Scenario,
    spec: &BackendSpec,
    (n, backend_pid): (u32, u32),
    (t0, start_time): (Instant, String),
) -> Result<(RunResult, Vec<Check>), RunError> {
    let mut ctl = Client::connect(&spec.control_socket_path(), CONTROL_TIMEOUT)?;
    check_devices(s, &mut ctl, n)?;
    let spin = ctl
        .call::<InfoReply>(&Request::Info { device: Some(0) })?
        .spin;
    // Before the boot, so that a probe that cannot start costs no boot; only
    // the measured phase's two samples count.
    let floor = o
        .wake_floor_hz
        .map(interference::wake_floor::WakeFloor::start)
        .transpose()?
        .map(std::sync::Arc::new);
    let (mut guests, logs, commands) = boot_guests(o, s, spec, n)?;
    guests.wait_all(READY, o.timeout, "boot and scenario set-up")?;
    step(&format!(
        "guest(s) ready after {}; running phases",
        fmt_dur(t0.elapsed())
    ));
    let probe = Probe::new(guests.pids(), backend_pid).with_wake_floor(floor);
    let mut collected = phases::run_phases(s, &mut ctl, &mut guests, n, &o.dir, &probe, o.trace)?;
    // The floor counts only between the phase's two samples; stop its threads now.
    let probe = probe.with_wake_floor(None);
    guests.send_all("done")?;
    guests.finish(Duration::from_secs(60));
    if o.trace {
        let consoles: Vec<&str> = (0..guests.len()).map(|i| guests.console(i)).collect();
        collected.notes.extend(keep_trace(&o.dir, &consoles)?);
    }
    step(&format!(
        "guest(s) done after {}; host eventfd baseline",
        fmt_dur(t0.elapsed())
    ));
    let evfd = baseline::host_eventfd_pingpong(10_000)?;
    let shared = assemble::Shared {
        scenario: s,
        meta: model::RunMeta {
            scenario: s.name.clone(),
            scenario_file: o.scenario.display().to_string(),
            accelerator: o.accel.into(),
            qemu_version: o.guest.qemu_version.into(),
            kernel_version: o.guest.kernel_key.into(),
            kernel_variant: o.guest.kernel_variant.into(),
            host_kernel: host_kernel(),
            start_time,
            duration_ns: s.duration_ms * 1_000_000,
            warmup_ns: s.warmup_ms * 1_000_000,
            devices: Vec::new(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            notes: collected.notes.clone(),
        },
        evfd: &evfd,
        ramp: &collected.ramp,
    };
    let per = (0..guests.len())
        .map(|i| {
            assemble::device_result(
                &shared,
                i,
                n,
                &collected.measured[i],
                guests.console(i),
                &logs[i],
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut result = assemble::merge(per, &shared)?;
    for (i, log) in logs.iter().enumerate() {
        let label = format!("irqstorm{i}");
        if let Some(t) = assemble::timerlat(s, guests.console(i), &label, log)? {
            let file = o
                .dir
                .join(per_device_name("timerlat-hist", "txt", i as u32, n));
            std::fs::write(&file, t.rtla_hist())
                .map_err(io(format!("write {}", file.display())))?;
        }
    }
    let guest_conds = commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| conditions::guest_conditions(&format!("irqstorm{i}"), c, guests.console(i)))
        .collect();
    let mut rc = conditions::run_conditions(
        conditions::backend_argv(spec),
        o.accel,
        guest_conds,
        conditions::host_cpus(),
    );
    rc.time_base = model::TimeBase::of_rows(&result.mechanisms);
    rc.time_base.calibrate_every_ms = Some(s.time_base.calibrate_every_ms);
    rc.backend_spin = spin;
    result.run_conditions = Some(rc);
    if let Some((a, b)) = &collected.interference {
        // Events the guests were given in the measured phase.
        let delivered = result
            .mechanisms
            .iter()
            .map(|r| r.host.records + r.host.coalesced)
            .sum();
        let i = interference::figures(&probe, a, b, delivered);
        step(&format!(
            "host interference: max vCPU wait share {}, back end {:.1} % of a core{}{}",
            i.max_vcpu_wait_share
                .map_or("-".into(), |w| format!("{:.1} %", w * 100.0)),
            i.backend.as_ref().map_or(0.0, |b| b.cpu_share * 100.0),
            i.backend
                .as_ref()
                .and_then(|b| b.cpu_ns_per_event)
                .map_or(String::new(), |e| format!(", {:.1} us per event", e / 1e3)),
            i.wake_floor
                .as_ref()
                .and_then(|f| f.cpu_ns_per_wake)
                .map_or(String::new(), |f| format!(
                    "; host wake-up floor {:.1} us per wake-up",
                    f / 1e3
                ))
        ));
        result.interference = Some(i);
    }
    let consoles: Vec<&str> = (0..guests.len()).map(|i| guests.console(i)).collect();
    let failures = gate(s, &mut result, &consoles);
    Ok((result, failures))
}

/// Writes each guest's `trace` and `events` sections (`--trace`) into `dir`
/// as `trace.txt` / `events.txt` (`trace-N.txt`, ... with several guests).
/// Returns notes for what a guest did not send.
pub fn keep_trace(dir: &Path, consoles: &[&str]) -> Result<Vec<String>, RunError> {
    let n = consoles.len() as u32;
    let mut notes = Vec::new();
    for (i, console) in (0u32..).zip(consoles) {
        if let Some(why) = console
            .lines()
            .find_map(|l| l.trim().strip_prefix("IRQSTORM_SC_TRACE unavailable: "))
        {
            notes.push(format!("guest {i}: --trace: {why}"));
        }
        for name in ["trace", "events"] {
            match console::section(console, name) {
                Some(text) => {
                    let path = dir.join(per_device_name(name, "txt", i, n));
                    std::fs::write(&path, text).map_err(io(format!("write {}", path.display())))?;
                }
                None => notes.push(format!(
                    "guest {i}: --trace: no `{name}` section on the console"
                )),
            }
        }
    }
    Ok(notes)
}

/// Gate a result: the scenario's checks, then kernel problems on any guest
/// console (`consoles[i]` of device `irqstorm{i}`). Returns the failures.
pub fn gate(s: &Scenario, result: &mut RunResult, consoles: &[&str]) -> Vec<Check> {
    let mut failures = report_gate::apply(s, result);
    let multi = consoles.len() > 1;
    for (i, console) in consoles.iter().enumerate() {
        let crashes = boot::scan_crashes(console);
        if let Some(first) = crashes.first() {
            let c = Check {
                kind: model::CheckKind::Guest,
                name: "guest kernel".into(),
                mechanism: "*".into(),
                device: multi.then(|| format!("irqstorm{i}")),
                figure: "kernel_problems".into(),
                outcome: model::Outcome::Fail,
                measured: Some(crashes.len() as f64),
                limit: Some(0.0),
                unit: "count".into(),
                message: format!(
                    "guest {i}: {} kernel problem line(s) on the console, first: {first}",
                    crashes.len()
                ),
            };
            result.checks.push(c.clone());
            failures.push(c);
        }
    }
    failures
}

/// Re-gate a collected result with another scenario's thresholds (same
/// sources): used by `cargo xtask test` to check the failing-threshold path
/// without a second boot.
pub fn regate(s: &Scenario, result: &RunResult) -> (RunResult, Vec<Check>) {
    let mut r = result.clone();
    let f = report_gate::apply(s, &mut r);
    (r, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_sections_are_kept_per_device() {
        let dir = std::env::temp_dir().join(format!("irqstorm-keep-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c0 = "IRQSTORM_SC_BEGIN events\n# enabled 0 events 1\n5 tasklet 0 0 1 2 3 2 1\nIRQSTORM_SC_END events\n\
                  IRQSTORM_SC_BEGIN trace\n  <idle>-0 [000] d.h1. 100: irq_handler_entry: irq=24\nIRQSTORM_SC_END trace\n";
        let c1 = "IRQSTORM_SC_TRACE unavailable: no x86-tsc trace clock\n";
        let notes = keep_trace(&dir, &[c0, c1]).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(
            read("events-0.txt"),
            "# enabled 0 events 1\n5 tasklet 0 0 1 2 3 2 1\n"
        );
        assert!(read("trace-0.txt").contains("irq_handler_entry: irq=24"));
        assert!(!dir.join("trace-1.txt").exists());
        assert_eq!(
            notes,
            [
                "guest 1: --trace: no x86-tsc trace clock",
                "guest 1: --trace: no `trace` section on the console",
                "guest 1: --trace: no `events` section on the console",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kernel_problems_on_a_console_fail_the_gate() {
        let s = sc::parse(
            "name = \"t\"\nduration_ms = 10\n[[sources]]\nid = 0\nmechanism = \"tasklet\"\nprogram = { mode = \"periodic\", period_us = 1000 }\n",
            "t",
        )
        .unwrap();
        let mut r = RunResult::new(model::RunMeta::default());
        let f = gate(
            &s,
            &mut r,
            &["[    1.0] fine\n", "[    2.5] BUG: bad\n[ 3.0] Oops: x\n"],
        );
        let k: Vec<&Check> = f
            .iter()
            .filter(|c| c.kind == model::CheckKind::Guest)
            .collect();
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].device.as_deref(), Some("irqstorm1"));
        assert_eq!(k[0].measured, Some(2.0));
        assert!(k[0]
            .message
            .starts_with("guest 1: 2 kernel problem line(s)"));
        assert!(r.checks.iter().any(|c| c.figure == "kernel_problems"));
        assert_eq!(per_device_name("console", "log", 0, 1), "console.log");
        assert_eq!(per_device_name("console", "log", 1, 2), "console-1.log");
    }
}
