//! Launching the guest: QEMU arguments from qemu-config/irqstorm.args, the
//! accelerator choice (KVM probe), device mode, reports.

use crate::conservation;
use crate::fault::FaultInjector;
use crate::qemu::Qemu;
use crate::util::{self, step, Hasher};
use anyhow::{bail, Context, Result};
use irqstorm_harness::args::{shell_quote, Template};
use irqstorm_harness::boot::{self, Backend, BackendSpec, BootSpec, Evaluation};
use irqstorm_harness::report;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelOpt {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// Device-mode parameters (the vhost-user back end).
#[derive(Debug, Clone)]
pub struct Device {
    pub backend: PathBuf,
    pub virtio_id: u32,
    pub num_vqs: u32,
    pub vq_size: u32,
    pub config_size: u32,
    pub backend_args: Vec<String>,
}

impl Device {
    /// The back end of a run in `run_dir`: sockets in `run_dir/sockets`,
    /// log `run_dir/backend.log`, `--virtio-id` and the extra arguments.
    pub fn backend_spec(&self, run_dir: &Path) -> BackendSpec {
        let mut extra = vec!["--virtio-id".to_string(), self.virtio_id.to_string()];
        extra.extend(self.backend_args.iter().cloned());
        BackendSpec {
            binary: self.backend.clone(),
            dir: run_dir.join("sockets"),
            extra_args: extra,
            log: run_dir.join("backend.log"),
            startup_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything needed to boot.
#[derive(Debug, Clone)]
pub struct Guest {
    pub qemu: Qemu,
    pub kernel: PathBuf,
    pub kernel_key: String,
    pub kernel_variant: String,
    pub initrd: PathBuf,
}

/// `no_timer_check`: under TCG on a loaded host the kernel's early IO-APIC
/// timer check can fail and panic the boot ("IO-APIC + timer doesn't
/// work!"; seen once in 207 soak boots at load 10 on 2 cores).
pub const BASE_CMDLINE: &str = "console=ttyS0 panic=-1 no_timer_check";
pub const START_MARKER: &str = "irqstorm-init: start";

pub fn load_template(repo: &Path) -> Result<Template> {
    let p = repo.join("qemu-config/irqstorm.args");
    let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
    Template::parse(&text).with_context(|| format!("{}", p.display()))
}

/// vCPUs of a guest boot unless a scenario says otherwise (`guest.smp`).
pub const DEFAULT_SMP: u32 = 2;

/// The QEMU argument vector for one boot of `smp` vCPUs.
pub fn qemu_args(
    repo: &Path,
    g: &Guest,
    (accel, smp): (Accel, u32),
    serial: &str,
    cmdline: &str,
    device: Option<(&Device, &Path)>,
) -> Result<Vec<String>> {
    let t = load_template(repo)?;
    let mut v: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, val: String| {
        v.insert(k.to_string(), val);
    };
    let (a, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    set("ACCEL", a.into());
    set("CPU", cpu.into());
    set("SMP", smp.to_string());
    set("MEM", "512M".into());
    set("SERIAL", serial.into());
    set("KERNEL", g.kernel.display().to_string());
    set("INITRD", g.initrd.display().to_string());
    set("CMDLINE", cmdline.into());
    let mut tags = Vec::new();
    if let Some((d, sock)) = device {
        set("VHOST_SOCKET", sock.display().to_string());
        set("VIRTIO_ID", d.virtio_id.to_string());
        set("NUM_VQS", d.num_vqs.to_string());
        set("VQ_SIZE", d.vq_size.to_string());
        set("CONFIG_SIZE", d.config_size.to_string());
        tags.push("device");
    }
    Ok(t.expand(&v, &tags)?)
}

fn kvm_usable() -> std::result::Result<(), String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("/dev/kvm: {e}")),
    }
}

/// Decide the accelerator. `auto` runs (once per kernel+QEMU, cached) a short
/// bounded KVM boot that must reach /init's start marker.
pub fn choose_accel(repo: &Path, cache: &Path, g: &Guest, opt: AccelOpt) -> Result<Accel> {
    match opt {
        AccelOpt::Kvm => return Ok(Accel::Kvm),
        AccelOpt::Tcg => return Ok(Accel::Tcg),
        AccelOpt::Auto => {}
    }
    if let Err(e) = kvm_usable() {
        eprintln!("KVM not usable ({e}): using TCG");
        return Ok(Accel::Tcg);
    }
    let mut h = Hasher::new("kvm-probe");
    h.add(&g.kernel_key)
        .add(g.qemu.program.as_os_str().as_encoded_bytes())
        .add(&g.qemu.version);
    let memo = cache.join(format!("kvm-probe-{}", h.short()));
    if let Ok(s) = std::fs::read_to_string(&memo) {
        return Ok(match s.lines().next() {
            Some("kvm") => {
                step(&format!(
                    "accel: KVM (probe passed earlier: {})",
                    memo.display()
                ));
                Accel::Kvm
            }
            _ => {
                eprintln!(
                    "KVM probe failed earlier ({}): using TCG",
                    s.lines().nth(1).unwrap_or("cached")
                );
                Accel::Tcg
            }
        });
    }
    step("accel: probing KVM with a short boot (result is cached)");
    let dir = cache.join("kvm-probe-logs");
    let log = dir.join(format!("{}.log", h.short()));
    let args = qemu_args(
        repo,
        g,
        (Accel::Kvm, DEFAULT_SMP),
        "stdio",
        &format!("{BASE_CMDLINE} irqstorm_tests=none"),
        None,
    )?;
    let r = boot::boot(&BootSpec {
        program: g.qemu.program.clone(),
        args: args.into_iter().map(Into::into).collect(),
        env: vec![],
        console_log: log.clone(),
        timeout: Duration::from_secs(20),
        stop_marker: Some(START_MARKER.into()),
        echo: false,
        on_line: None,
        watch: None,
    })?;
    let (accel, why) = if r.stop_marker_seen {
        (Accel::Kvm, String::new())
    } else if r.timed_out {
        (Accel::Tcg, "no /init marker within 20 s".to_string())
    } else {
        let last = r
            .stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("QEMU exited")
            .to_string();
        (Accel::Tcg, last)
    };
    let memo_text = match accel {
        Accel::Kvm => "kvm\n".to_string(),
        Accel::Tcg => format!("tcg\n{why}\n"),
    };
    util::write_atomic(&memo, memo_text.as_bytes())?;
    if accel == Accel::Tcg {
        eprintln!("KVM probe failed ({why}; log {}): using TCG", log.display());
    } else {
        step("accel: KVM works");
    }
    Ok(accel)
}

/// A new run directory under target/irqstorm/runs/ (and a `latest` link).
pub fn new_run_dir(repo: &Path) -> Result<PathBuf> {
    new_stamped_dir(&repo.join("target/irqstorm/runs"))
}

/// A new `<UTC stamp>[-n]` directory under `runs` (the newest 100 kept, and a
/// `latest` link).
pub fn new_stamped_dir(runs: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(runs)?;
    let stamp = irqstorm_report::utc::UtcTime::now().stamp();
    let mut dir = runs.join(&stamp);
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = runs.join(format!("{stamp}-{n}"));
    }
    std::fs::create_dir_all(&dir)?;
    prune_runs(runs, 100);
    let latest = runs.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().unwrap(), &latest);
    Ok(dir)
}

/// Keep the newest `keep` run directories (names sort by time).
fn prune_runs(runs: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(runs) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && !p.is_symlink()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.len() >= 16 && n.as_bytes()[8] == b'T')
        })
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep);
    for d in &dirs[..excess] {
        let _ = std::fs::remove_dir_all(d);
    }
}

pub struct RunOpts<'a> {
    pub accel: Accel,
    pub timeout: Duration,
    pub only: Option<&'a str>,
    pub extra_cmdline: Option<&'a str>,
    pub device: Option<&'a Device>,
    pub echo: bool,
}

/// Boot the guest once, running the test scripts; write reports.
pub fn run_tests(repo: &Path, g: &Guest, o: &RunOpts) -> Result<Evaluation> {
    let dir = new_run_dir(repo)?;
    let mut cmdline = format!(
        "{BASE_CMDLINE} irqstorm_tests={}",
        o.only.filter(|s| !s.is_empty()).unwrap_or("all")
    );
    if let Some(x) = o.extra_cmdline {
        cmdline.push(' ');
        cmdline.push_str(x);
    }
    let mut backend = None;
    let mut faults: Option<FaultInjector> = None;
    let sock_dir = dir.join("sockets");
    let sock = sock_dir.join("vhost.sock");
    if let Some(d) = o.device {
        step(&format!("device mode: starting {}", d.backend.display()));
        let mut spec = d.backend_spec(&dir);
        // Offer fault injection so 50-fault-injection runs; the back end only
        // injects what the host arms (crate::fault), never by itself.
        if !spec.extra_args.iter().any(|a| a == "--fault-injection") {
            spec.extra_args.push("--fault-injection".into());
        }
        backend = Some(Backend::start(&spec)?);
        faults = Some(FaultInjector::new(&spec.control_socket_path()));
    }
    let args = qemu_args(
        repo,
        g,
        (o.accel, DEFAULT_SMP),
        "stdio",
        &cmdline,
        o.device.map(|d| (d, sock.as_path())),
    )?;
    std::fs::write(
        dir.join("qemu-command.sh"),
        format!(
            "#!/bin/sh\n# the exact QEMU command of this run\nexec {} {}\n",
            shell_quote(&[g.qemu.program.display().to_string()]),
            shell_quote(&args)
        ),
    )?;
    let info = serde_json::json!({
        "qemu": { "program": g.qemu.program, "version": g.qemu.version, "origin": g.qemu.origin },
        "accel": format!("{:?}", o.accel).to_lowercase(),
        "kernel": g.kernel,
        "kernel_key": g.kernel_key,
        "kernel_variant": g.kernel_variant,
        "initrd": g.initrd,
        "cmdline": cmdline,
        "timeout_s": o.timeout.as_secs(),
        "device": o.device.map(|d| serde_json::json!({
            "backend": d.backend, "virtio_id": d.virtio_id, "num_vqs": d.num_vqs,
            "vq_size": d.vq_size, "config_size": d.config_size, "backend_args": d.backend_args,
            "socket": sock, "control_socket": sock_dir.join("ctl.sock"),
        })),
    });
    std::fs::write(
        dir.join("run-info.json"),
        serde_json::to_string_pretty(&info)? + "\n",
    )?;
    let console_log = dir.join("console.log");
    step(&format!(
        "guest: booting ({:?}, {}, timeout {}s, tests: {}); console: {}",
        (o.accel, DEFAULT_SMP),
        g.qemu.version,
        o.timeout.as_secs(),
        o.only.unwrap_or("all"),
        console_log.display()
    ));
    let r = boot::boot(&BootSpec {
        program: g.qemu.program.clone(),
        args: args.into_iter().map(Into::into).collect(),
        env: vec![],
        console_log: console_log.clone(),
        timeout: o.timeout,
        stop_marker: None,
        echo: o.echo,
        on_line: Some(progress_hook(faults.as_ref().map(FaultInjector::hook))),
        watch: backend.as_ref().map(Backend::watch),
    });
    // The ledger, while the back end still runs (not after it died).
    let ledger = match &backend {
        Some(b) if b.died().is_none() => Some(conservation::totals(&sock_dir.join("ctl.sock"))),
        _ => None,
    };
    if let Some(mut b) = backend.take() {
        match b.stop() {
            Some(st) => log::info!("back end exited: {st}"),
            None => log::info!("back end killed"),
        }
        eprintln!("  back end log: {}", b.log.display());
    }
    let r = r?;
    let mut ev = boot::evaluate(&r);
    if let Some(f) = faults {
        f.finish(&mut ev, &r.console);
    }
    if let Some(l) = ledger {
        match l.and_then(|t| conservation::judge(&t)) {
            Ok(line) => eprintln!("  {line}"),
            Err(e) => {
                ev.failures.push(e);
                ev.failed += 1;
            }
        }
    }
    let (json, xml) = report::write(&dir, "irqstorm-guest", &ev)?;
    if let Some(s) = &ev.ktap {
        for t in &s.tests {
            let mark = match t.outcome {
                irqstorm_harness::ktap::Outcome::Ok => "ok     ",
                irqstorm_harness::ktap::Outcome::Skip => "skip   ",
                irqstorm_harness::ktap::Outcome::NotOk => "NOT OK ",
            };
            eprintln!("  {mark} {}", t.name);
        }
    }
    eprintln!(
        "  guest: {} passed, {} failed, {} skipped in {} (report: {}, {})",
        ev.passed,
        ev.failed,
        ev.skipped,
        util::fmt_dur(r.duration),
        json.display(),
        xml.display()
    );
    for f in &ev.failures {
        eprintln!("  FAIL: {f}");
    }
    Ok(ev)
}

/// Echoes the guest's `# progress:` lines (long scripts say how far they
/// are), then calls `inner`.
fn progress_hook(inner: Option<boot::LineHook>) -> boot::LineHook {
    boot::LineHook(std::sync::Arc::new(move |line: &str| {
        if let Some(p) = line.trim().strip_prefix("# progress:") {
            eprintln!("  guest:{p}");
        }
        if let Some(h) = &inner {
            (h.0)(line);
        }
    }))
}

/// Interactive boot: console on our terminal (Ctrl-A x quits QEMU).
pub fn shell(repo: &Path, g: &Guest, accel: Accel, device: Option<&Device>) -> Result<()> {
    let dir = new_run_dir(repo)?;
    let sock_dir = dir.join("sockets");
    let sock = sock_dir.join("vhost.sock");
    let mut backend = None;
    if let Some(d) = device {
        backend = Some(Backend::start(&d.backend_spec(&dir))?);
    }
    let args = qemu_args(
        repo,
        g,
        (accel, DEFAULT_SMP),
        "mon:stdio",
        &format!("{BASE_CMDLINE} irqstorm_shell=1"),
        device.map(|d| (d, sock.as_path())),
    )?;
    step("guest shell: Ctrl-A x quits QEMU, `poweroff -f` or exit ends the guest");
    let st = std::process::Command::new(&g.qemu.program)
        .args(&args)
        .status()
        .with_context(|| format!("cannot run {}", g.qemu.program.display()))?;
    drop(backend);
    if !st.success() {
        bail!("QEMU exited with {st}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest() -> Guest {
        Guest {
            qemu: Qemu {
                program: "/q".into(),
                version: "v".into(),
                origin: "test",
            },
            kernel: "/k/bzImage".into(),
            kernel_key: "k".into(),
            kernel_variant: "preempt".into(),
            initrd: "/i.cpio.gz".into(),
        }
    }

    fn pos(a: &[String], opt: &str) -> Vec<String> {
        a.windows(2)
            .filter(|w| w[0] == opt)
            .map(|w| w[1].clone())
            .collect()
    }

    #[test]
    fn repo_launch_definition_expands() {
        let repo = util::repo_root();
        let a = qemu_args(
            &repo,
            &guest(),
            (Accel::Tcg, DEFAULT_SMP),
            "stdio",
            "console=ttyS0 x=1",
            None,
        )
        .unwrap();
        assert_eq!(pos(&a, "-machine"), vec!["q35"]);
        assert!(a.contains(&"-nodefaults".to_string()));
        assert_eq!(pos(&a, "-accel"), vec!["tcg"]);
        assert_eq!(pos(&a, "-cpu"), vec!["max"]);
        assert_eq!(
            pos(&a, "-object"),
            vec!["memory-backend-memfd,id=mem,size=512M,share=on"]
        );
        assert_eq!(pos(&a, "-append"), vec!["console=ttyS0 x=1"]);
        assert_eq!(pos(&a, "-kernel"), vec!["/k/bzImage"]);
        assert!(
            pos(&a, "-device").is_empty(),
            "no device outside device mode"
        );
        let d = Device {
            backend: "/b".into(),
            virtio_id: 22,
            num_vqs: 3,
            vq_size: 128,
            config_size: 32,
            backend_args: vec![],
        };
        let a = qemu_args(
            &repo,
            &guest(),
            (Accel::Kvm, DEFAULT_SMP),
            "mon:stdio",
            "c",
            Some((&d, Path::new("/s/vhost.sock"))),
        )
        .unwrap();
        assert_eq!(pos(&a, "-cpu"), vec!["host"]);
        assert_eq!(pos(&a, "-smp"), vec!["2"]);
        assert_eq!(pos(&a, "-serial"), vec!["mon:stdio"]);
        assert_eq!(
            pos(&a, "-chardev"),
            vec!["socket,id=irqstorm0,path=/s/vhost.sock"]
        );
        assert_eq!(
            pos(&a, "-device"),
            vec!["vhost-user-test-device-pci,chardev=irqstorm0,virtio-id=22,num_vqs=3,vq_size=128,config_size=32"]
        );
    }

    /// Regression: the launch definition fixed `-smp 2`, so a scenario's
    /// `guest.smp = 1` booted two vCPUs (its run conditions said 2 vCPUs).
    #[test]
    fn the_vcpus_asked_for_reach_qemu() {
        let repo = util::repo_root();
        let a = qemu_args(&repo, &guest(), (Accel::Tcg, 1), "stdio", "c", None).unwrap();
        assert_eq!(pos(&a, "-smp"), vec!["1"]);
    }

    #[test]
    fn prune_keeps_newest_runs_only() {
        let d = std::env::temp_dir().join(format!("irqstorm-prune-{}", std::process::id()));
        let names = [
            "20261122T060000Z",
            "20261122T070000Z",
            "20261122T070000Z-2",
            "20261122T080000Z",
            "notarun",
        ];
        for n in names {
            std::fs::create_dir_all(d.join(n)).unwrap();
        }
        prune_runs(&d, 2);
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec!["20261122T070000Z-2", "20261122T080000Z", "notarun"]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
