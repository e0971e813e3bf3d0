//! `cargo xtask run`: run a scenario file end to end (back end, one or more
//! guests, phases over the control socket) and write the report directory
//! with irqstorm-report.
//!
//! Host/guest coordination: the guest boots `rdinit=/tests/lib/scenario.sh`
//! with the scenario's guest-side settings on the kernel command line
//! (`irqstorm_sc_*`, see that script); it applies them through debugfs,
//! prints `IRQSTORM_SC_READY`, and then obeys one-line commands the host
//! writes to the serial console (`reset`, `w FILE ARGS`, `dump`, `done`).

use crate::guest::{qemu_args, Accel, Device, Guest};
use crate::util::{self, step};
use anyhow::{anyhow, bail, Context, Result};
use irqstorm_harness::args::shell_quote;
use irqstorm_harness::boot::{self, Backend, BackendSpec};
use irqstorm_report::model::{self, Check, RampStep, RunResult};
use irqstorm_report::scenario::{self as sc, ConfigureBodyExt as _, DrivenBy, Phase, Scenario};
use irqstorm_report::{aggregate, baseline, gate, input, offset, render};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const READY: &str = "IRQSTORM_SC_READY";
const FAIL: &str = "IRQSTORM_SC_FAIL";
const NAK: &str = "IRQSTORM_SC_NAK";
const PINGS: u32 = 16;

pub struct Opts<'a> {
    pub scenario: &'a Path,
    pub report_dir: Option<PathBuf>,
    pub socket_count: u32,
    pub accel: Accel,
    pub timeout: Duration,
    pub echo: bool,
    pub device: &'a Device,
    /// Extra kernel command line, appended last (`--cmdline`).
    pub extra_cmdline: Option<&'a str>,
}

/// What a scenario run produced (gated).
pub struct Outcome {
    pub result: RunResult,
    pub failures: Vec<Check>,
    pub dir: PathBuf,
}

/// The kernel command line words carrying the scenario's guest side.
pub fn guest_cmdline(s: &Scenario) -> String {
    let src: Vec<String> = s
        .sources
        .iter()
        .map(|x| {
            let kind = serde_json::to_value(x.work.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "none".into());
            format!("{}:{}:{}:{}", x.id, x.mechanism, kind, x.work.us)
        })
        .collect();
    // The local reference source cycles through a mask of mechanism ids
    // (every reference mechanism, `threaded` included: the driver's eventq
    // drain-continuation race that stalled it is fixed).
    let mask: u32 = s
        .reference_mechanisms()
        .iter()
        .filter_map(|m| model::mechanism_id(m))
        .fold(0, |a, id| a | (1u32 << id));
    let reference = if mask == 0 {
        "off".to_string()
    } else {
        format!("{}:{mask:x}", s.reference.period_us)
    };
    format!(
        "irqstorm_sc_src={} irqstorm_sc_ref={reference} irqstorm_sc_pings={PINGS}",
        src.join(",")
    )
}

/// The debugfs write (file, arguments) that starts a guest-driven source.
pub fn guest_start_line(s: &sc::SourceStart) -> Result<(String, String)> {
    let b = &s.body;
    if b.jitter_name() == "uniform" || b.moderation_events > 0 || b.moderation_delay_us > 0 {
        bail!(
            "source {}: the driver's debugfs timer/storm interface has no uniform jitter or \
             moderation; use driven_by = \"host\" for this source",
            s.id
        );
    }
    match b.mode_name() {
        "periodic" => Ok((
            "timer".into(),
            format!(
                "{} periodic {}{}",
                s.id,
                b.period_ns,
                if b.count > 0 {
                    format!(" {}", b.count)
                } else {
                    String::new()
                }
            ),
        )),
        "oneshot" => Ok(("timer".into(), format!("{} oneshot {}", s.id, b.period_ns))),
        "storm" => Ok((
            "storm".into(),
            format!(
                "{} {} {} {} {}{}",
                s.id,
                b.rate_hz,
                b.burst.max(1),
                b.duration_ns / 1_000_000,
                b.count,
                if b.jitter_name() == "exponential" {
                    " exp"
                } else {
                    ""
                }
            ),
        )),
        m => bail!("source {}: mode {m} cannot be guest-driven", s.id),
    }
}

/// Line-delimited JSON client of the back end's control socket (spec §9).
struct Ctl {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Ctl {
    fn connect(p: &Path) -> Result<Ctl> {
        let w = UnixStream::connect(p).with_context(|| format!("connect {}", p.display()))?;
        w.set_read_timeout(Some(Duration::from_secs(15)))?;
        Ok(Ctl {
            r: BufReader::new(w.try_clone()?),
            w,
        })
    }

    fn raw(&mut self, req: &serde_json::Value) -> Result<String> {
        let mut line = serde_json::to_string(req)?;
        line.push('\n');
        self.w.write_all(line.as_bytes())?;
        let mut reply = String::new();
        self.r
            .read_line(&mut reply)
            .context("control socket reply")?;
        Ok(reply)
    }

    fn req(&mut self, req: serde_json::Value) -> Result<serde_json::Value> {
        let text = self.raw(&req)?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("control reply {text:?}"))?;
        if v["ok"] != serde_json::Value::Bool(true) {
            bail!("control request {req} failed: {}", text.trim());
        }
        Ok(v)
    }

    fn totals(&mut self, n: u32) -> Result<[u64; 5]> {
        let mut t = [0u64; 5];
        for d in 0..n {
            let v = self.req(serde_json::json!({"cmd": "stats", "device": d}))?;
            let x = &v["stats"]["totals"];
            for (i, k) in ["raised", "coalesced", "acked", "records", "pending"]
                .iter()
                .enumerate()
            {
                t[i] += x[k].as_u64().unwrap_or(0);
            }
        }
        Ok(t)
    }
}

enum Msg {
    Line(usize, String),
    Eof(usize),
}

struct GuestProc {
    child: Child,
    stdin: Option<ChildStdin>,
    log: std::fs::File,
    console: String,
    eof: bool,
}

/// The running guests; console lines of all of them arrive on one channel.
struct Guests {
    procs: Vec<GuestProc>,
    rx: Receiver<Msg>,
    echo: bool,
}

impl Guests {
    fn spawn(
        program: &Path,
        argvs: Vec<Vec<String>>,
        logs: &[PathBuf],
        echo: bool,
    ) -> Result<Guests> {
        let (tx, rx) = mpsc::channel();
        let mut procs = Vec::new();
        for (i, args) in argvs.into_iter().enumerate() {
            let mut child = Command::new(program)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("cannot run {}", program.display()))?;
            let out = child.stdout.take().expect("piped");
            let err = child.stderr.take().expect("piped");
            let tx1 = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(out);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let s = String::from_utf8_lossy(&buf).replace('\r', "");
                            if tx1.send(Msg::Line(i, s)).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = tx1.send(Msg::Eof(i));
            });
            let tx2 = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(err).lines().map_while(|l| l.ok()) {
                    let _ = tx2.send(Msg::Line(i, format!("[qemu stderr] {l}\n")));
                }
            });
            procs.push(GuestProc {
                stdin: child.stdin.take(),
                child,
                log: std::fs::File::create(&logs[i])
                    .with_context(|| format!("create {}", logs[i].display()))?,
                console: String::new(),
                eof: false,
            });
        }
        Ok(Guests { procs, rx, echo })
    }

    /// Take one message (until `deadline`); false on timeout.
    fn pump(&mut self, deadline: Instant) -> Option<(usize, Option<String>)> {
        let now = Instant::now();
        match self
            .rx
            .recv_timeout(deadline.saturating_duration_since(now))
        {
            Ok(Msg::Line(i, l)) => {
                let p = &mut self.procs[i];
                let _ = p.log.write_all(l.as_bytes());
                if self.echo {
                    if self.procs.len() > 1 {
                        eprint!("[guest {i}] {l}");
                    } else {
                        eprint!("{l}");
                    }
                }
                self.procs[i].console.push_str(&l);
                Some((i, Some(l)))
            }
            Ok(Msg::Eof(i)) => {
                self.procs[i].eof = true;
                Some((i, None))
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Drain whatever arrived, without waiting.
    fn drain(&mut self) {
        while self.pump(Instant::now()).is_some() {}
    }

    /// Wait until every guest printed a line starting with `marker`.
    fn wait_all(&mut self, marker: &str, timeout: Duration, what: &str) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut seen = vec![false; self.procs.len()];
        while !seen.iter().all(|s| *s) {
            match self.pump(deadline) {
                None => bail!(
                    "guest(s) {:?}: no `{marker}` within {}s ({what}); see the console log",
                    seen.iter()
                        .enumerate()
                        .filter(|(_, s)| !**s)
                        .map(|(i, _)| i)
                        .collect::<Vec<_>>(),
                    timeout.as_secs()
                ),
                Some((i, None)) => bail!("guest {i} exited while waiting for `{marker}` ({what})"),
                Some((i, Some(l))) => {
                    let t = l.trim();
                    if t.starts_with(FAIL) || t.starts_with(NAK) {
                        bail!("guest {i}: {t}");
                    }
                    if t.contains("Kernel panic") {
                        bail!("guest {i}: {t}");
                    }
                    if t.starts_with(marker) {
                        seen[i] = true;
                    }
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, i: usize, line: &str) -> Result<()> {
        let p = &mut self.procs[i];
        let s = p
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("guest {i}: console input closed"))?;
        s.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| s.flush())
            .with_context(|| format!("guest {i}: write console"))
    }

    fn send_all(&mut self, line: &str) -> Result<()> {
        for i in 0..self.procs.len() {
            self.send(i, line)?;
        }
        Ok(())
    }

    /// Wait for every QEMU to exit (or kill it after `limit`).
    fn finish(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.procs.iter().all(|p| p.eof) {
            if self.pump(deadline).is_none() {
                break;
            }
        }
        for p in &mut self.procs {
            p.stdin = None;
            let end = Instant::now() + Duration::from_secs(5);
            loop {
                match p.child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        break;
                    }
                }
            }
        }
        self.drain();
    }
}

impl Drop for Guests {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Ok(None) = p.child.try_wait() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}

/// The text between `IRQSTORM_SC_BEGIN name` and `IRQSTORM_SC_END name`
/// (the last such section of the console).
pub fn section(console: &str, name: &str) -> Option<String> {
    let begin = format!("IRQSTORM_SC_BEGIN {name}");
    let end = format!("IRQSTORM_SC_END {name}");
    let mut out: Option<String> = None;
    let mut cur: Option<String> = None;
    for l in console.lines() {
        if l.trim() == begin {
            cur = Some(String::new());
        } else if l.trim() == end {
            out = cur.take();
        } else if let Some(c) = cur.as_mut() {
            // Kernel messages that reach the console start with "[ time]".
            if !l.starts_with('[') {
                c.push_str(l);
                c.push('\n');
            }
        }
    }
    out
}

/// The device-events summary table of debugfs `stats` (between the
/// `# device events` and `# local` headings).
pub fn device_summary(stats: &str) -> Option<String> {
    let mut on = false;
    let mut out = String::new();
    for l in stats.lines() {
        if l.starts_with("# device events") {
            on = true;
            continue;
        }
        if l.starts_with("# local") {
            break;
        }
        if on {
            out.push_str(l);
            out.push('\n');
        }
    }
    on.then_some(out)
}

/// PING exchanges printed by the guest.
pub fn pings(console: &str) -> Vec<offset::PingSample> {
    console
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("IRQSTORM_SC_PING ")?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            (v.len() == 4).then(|| offset::PingSample {
                t1_guest_send_ns: v[0],
                t2_host_recv_ns: v[1],
                t3_host_send_ns: v[2],
                t4_guest_recv_ns: v[3],
            })
        })
        .collect()
}

/// `7.3.4` from the guest's "Linux version 7.3.4 (...)" boot line.
pub fn kernel_version(console: &str) -> Option<String> {
    console.lines().find_map(|l| {
        let i = l.find("Linux version ")?;
        l[i + 14..].split_whitespace().next().map(str::to_string)
    })
}

fn accel_name(a: Accel) -> &'static str {
    match a {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    }
}

/// Run the scenario, build, gate and write the report.
pub fn run(repo: &Path, g: &Guest, o: &Opts) -> Result<Outcome> {
    let t0 = Instant::now();
    let start_time = irqstorm_report::utc::UtcTime::now().rfc3339();
    let s = sc::load(o.scenario).map_err(|e| anyhow!("{e}"))?;
    s.check_accel(accel_name(o.accel)).map_err(|e| anyhow!(e))?;
    // Guest-driven sources must be expressible in debugfs before we boot.
    for p in s.plan() {
        for st in p.starts.iter().filter(|x| x.driven_by == DrivenBy::Guest) {
            guest_start_line(st).with_context(|| format!("{}", o.scenario.display()))?;
        }
    }
    let n = o.socket_count.max(1);
    let dir = match &o.report_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => crate::guest::new_run_dir(repo)?,
    };
    step(&format!(
        "scenario {} ({}): {} source(s), {} guest(s), {:.1} s of device time; report: {}",
        s.name,
        o.scenario.display(),
        s.sources.len(),
        n,
        s.total_ms() as f64 / 1e3,
        dir.display()
    ));
    let sock_dir = dir.join("sockets");
    let mut extra = vec![
        "--virtio-id".to_string(),
        o.device.virtio_id.to_string(),
        "--sources".to_string(),
        s.device.num_sources.to_string(),
        "--socket-count".to_string(),
        n.to_string(),
    ];
    extra.extend(o.device.backend_args.iter().cloned());
    let spec = BackendSpec {
        binary: o.device.backend.clone(),
        dir: sock_dir.clone(),
        extra_args: extra,
        log: dir.join("backend.log"),
        startup_timeout: Duration::from_secs(10),
    };
    let mut backend = Backend::start(&spec)?;
    let r = run_with_backend(repo, g, o, &s, &spec, n, &dir, (t0, start_time));
    backend.stop();
    let (result, failures) = r?;
    Ok(Outcome {
        result,
        failures,
        dir,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_with_backend(
    repo: &Path,
    g: &Guest,
    o: &Opts,
    s: &Scenario,
    spec: &BackendSpec,
    n: u32,
    dir: &Path,
    (t0, start_time): (Instant, String),
) -> Result<(RunResult, Vec<Check>)> {
    let mut ctl = Ctl::connect(&spec.control_socket_path())?;
    for d in 0..n {
        let info = ctl.req(serde_json::json!({"cmd": "info", "device": d}))?;
        let limits = s.device.with_info(&info).map_err(|e| anyhow!(e))?;
        if let Err(p) = s.validate_against(&limits) {
            let msgs: Vec<String> = p
                .iter()
                .map(|x| format!("{}: {}", x.field, x.message))
                .collect();
            bail!("scenario does not fit device {d}: {}", msgs.join("; "));
        }
    }
    let mut cmdline = format!(
        "{} rdinit=/tests/lib/scenario.sh {}",
        crate::guest::BASE_CMDLINE,
        guest_cmdline(s)
    );
    if let Some(x) = o.extra_cmdline.filter(|x| !x.is_empty()) {
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
        let args = qemu_args(repo, g, o.accel, "stdio", &cmdline, Some((o.device, &p)))?;
        std::fs::write(
            dir.join(if n == 1 {
                "qemu-command.sh".to_string()
            } else {
                format!("qemu-command-{i}.sh")
            }),
            format!(
                "#!/bin/sh\nexec {} {}\n",
                shell_quote(&[g.qemu.program.display().to_string()]),
                shell_quote(&args)
            ),
        )?;
        argvs.push(args);
        logs.push(if n == 1 {
            dir.join("console.log")
        } else {
            dir.join(format!("console-{i}.log"))
        });
    }
    step(&format!(
        "booting {n} guest(s) ({}, {})",
        accel_name(o.accel),
        g.qemu.version
    ));
    let mut guests = Guests::spawn(&g.qemu.program, argvs, &logs, o.echo)?;
    guests.wait_all(READY, o.timeout, "boot and scenario set-up")?;
    step(&format!(
        "guest(s) ready after {}; running phases",
        util::fmt_dur(t0.elapsed())
    ));

    let total_ms = s.total_ms();
    let run_start = Instant::now();
    let mut measured: Vec<String> = Vec::new();
    let mut ramp = model::RampResult::default();
    let mut guest_starts = 0usize;
    let mut run_notes: Vec<String> = Vec::new();
    for phase in s.plan() {
        let name = match phase.phase {
            Phase::Warmup => "warm-up".to_string(),
            Phase::Measure => "measure".to_string(),
            Phase::RampStep { index, rate_hz } => format!("ramp {index} ({rate_hz}/s)"),
        };
        if matches!(phase.phase, Phase::RampStep { .. }) {
            for d in 0..n {
                ctl.req(serde_json::json!({"cmd": "reset_stats", "device": d}))?;
            }
        }
        let pstart = Instant::now();
        let mut pending: Vec<(Duration, sc::SourceStart)> = Vec::new();
        for st in &phase.starts {
            match st.driven_by {
                DrivenBy::Host => {
                    for d in 0..n {
                        ctl.req(st.body.control_configure(st.id, d))?;
                        ctl.req(st.control_start(d))?;
                    }
                }
                DrivenBy::Guest => {
                    pending.push((Duration::from_millis(st.start_delay_ms), *st));
                }
            }
        }
        let dur = Duration::from_millis(phase.duration_ms);
        let mut next_progress = Instant::now();
        while pstart.elapsed() < dur {
            let mut i = 0;
            while i < pending.len() {
                if pstart.elapsed() >= pending[i].0 {
                    let (_, st) = pending.remove(i);
                    let (file, args) = guest_start_line(&st)?;
                    guests.send_all(&format!("w {file} {args}"))?;
                    guests.wait_all(
                        "IRQSTORM_SC_ACK w",
                        Duration::from_secs(20),
                        "guest-driven source start",
                    )?;
                    guest_starts += 1;
                } else {
                    i += 1;
                }
            }
            if Instant::now() >= next_progress {
                let t = ctl.totals(n)?;
                eprintln!(
                    "  {}",
                    render::progress_line(
                        &name,
                        run_start.elapsed().as_millis() as u64,
                        total_ms,
                        t[0],
                        t[1],
                        t[2]
                    )
                );
                next_progress += Duration::from_secs(1);
            }
            guests.drain();
            let left = dur.saturating_sub(pstart.elapsed());
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        for d in 0..n {
            ctl.req(serde_json::json!({"cmd": "stop", "device": d, "source": "all"}))?;
        }
        // Let the device and the guests settle: nothing pending on the device
        // and every record acked, or records/acks unchanged for 500 ms (acks are batched by the
        // driver, so acked < records can be final; the conservation check
        // compares the guest's own counters with the records later).
        let drain_end = Instant::now() + Duration::from_secs(10);
        let mut last = [u64::MAX; 5];
        let mut stable = 0;
        loop {
            let t = ctl.totals(n)?;
            if t[4] == 0 && t[3] == last[3] && t[2] == last[2] {
                stable += 1;
            } else {
                stable = 0;
            }
            last = t;
            if t[4] == 0 && (t[2] >= t[3] || stable >= 5) {
                break;
            }
            if Instant::now() >= drain_end {
                let msg = format!(
                    "{name}: 10 s after stop the device still had {} raise(s) pending and {} \
                     record(s) unacked (the guest was not consuming events); counters taken as they were",
                    t[4],
                    t[3].saturating_sub(t[2])
                );
                eprintln!("  warning: {msg}");
                run_notes.push(msg);
                break;
            }
            guests.drain();
            std::thread::sleep(Duration::from_millis(100));
        }
        match phase.phase {
            Phase::Warmup => {
                for d in 0..n {
                    ctl.req(serde_json::json!({"cmd": "reset_stats", "device": d}))?;
                }
                guests.send_all("reset")?;
                guests.wait_all(
                    "IRQSTORM_SC_ACK reset",
                    Duration::from_secs(30),
                    "reset after warm-up",
                )?;
            }
            Phase::Measure => {
                for d in 0..n {
                    let text = ctl
                        .raw(&serde_json::json!({"cmd": "stats", "device": d, "buckets": true}))?;
                    std::fs::write(
                        dir.join(if n == 1 {
                            "backend-stats.json".to_string()
                        } else {
                            format!("backend-stats-{d}.json")
                        }),
                        &text,
                    )?;
                    measured.push(text);
                }
                step("measured phase done: guest(s) dump their tables");
                guests.send_all("dump")?;
                guests.wait_all(
                    "IRQSTORM_SC_ACK dump",
                    Duration::from_secs(120),
                    "debugfs dump",
                )?;
            }
            Phase::RampStep { rate_hz, .. } => {
                let mut host = model::HostCounters::default();
                let mut p99: Option<u64> = None;
                for d in 0..n {
                    let text = ctl
                        .raw(&serde_json::json!({"cmd": "stats", "device": d, "buckets": true}))?;
                    let st = input::parse_backend_stats(&text)?;
                    for row in st.rows(s, None)? {
                        host.raised += row.host.raised;
                        host.records += row.host.records;
                        host.coalesced += row.host.coalesced;
                        host.pending += row.host.pending;
                        host.dropped += row.host.dropped;
                        host.acked += row.host.acked;
                        if let Some(x) = model::summary(&row.raise_to_ack) {
                            p99 = Some(p99.unwrap_or(0).max(x.p99_ns));
                        }
                    }
                }
                let stepr = RampStep {
                    rate_hz: u64::from(rate_hz) * u64::from(n),
                    duration_ns: pstart.elapsed().as_nanos() as u64,
                    host,
                    raise_to_ack_p99_ns: p99,
                };
                eprintln!(
                    "  ramp step {rate_hz}/s: raised {} coalesced {} pending {} dropped {}",
                    host.raised, host.coalesced, host.pending, host.dropped
                );
                let r = s.ramp.as_ref().expect("ramp phase without ramp");
                if !ramp.record(stepr, r) {
                    break;
                }
            }
        }
    }
    if guest_starts > 0 {
        log::info!("{guest_starts} guest-driven start(s)");
    }
    guests.send_all("done")?;
    guests.finish(Duration::from_secs(60));
    step(&format!(
        "guest(s) done after {}; host eventfd baseline",
        util::fmt_dur(t0.elapsed())
    ));
    let evfd = baseline::host_eventfd_pingpong(10_000)?;

    let mut per = Vec::new();
    for (i, p) in guests.procs.iter().enumerate() {
        let label = format!("irqstorm{i}");
        let dev_label = (n > 1).then_some(label.as_str());
        let stats = input::parse_backend_stats(&measured[i])?;
        let mut rows = stats.rows(s, dev_label)?;
        let stats_text = section(&p.console, "stats");
        let summary = stats_text.as_deref().and_then(device_summary);
        let (lat, work, rlat) = (
            section(&p.console, "hist"),
            section(&p.console, "hist_work"),
            section(&p.console, "hist_local"),
        );
        if summary.is_none() {
            bail!(
                "guest {i}: no debugfs stats dump on the console ({})",
                logs[i].display()
            );
        }
        input::apply_guest(
            &mut rows,
            &input::GuestTexts {
                summary: summary.as_deref(),
                latency: lat.as_deref(),
                work: work.as_deref(),
                ref_latency: rlat.as_deref(),
                ref_work: None,
            },
        )?;
        let mut result = RunResult::new(model::RunMeta {
            scenario: s.name.clone(),
            scenario_file: o.scenario.display().to_string(),
            accelerator: accel_name(o.accel).into(),
            qemu_version: g.qemu.version.clone(),
            kernel_version: kernel_version(&p.console).unwrap_or_else(|| g.kernel_key.clone()),
            host_kernel: util::output(Command::new("uname").arg("-r")).unwrap_or_default(),
            start_time: start_time.clone(),
            duration_ns: s.duration_ms * 1_000_000,
            warmup_ns: s.warmup_ms * 1_000_000,
            devices: vec![label.clone()],
            tool_version: env!("CARGO_PKG_VERSION").into(),
            notes: run_notes.clone(),
        });
        result.mechanisms = rows;
        result.baselines.host_eventfd = Some(evfd.clone());
        let samples = pings(&p.console);
        let est = match offset::estimate(&samples) {
            Ok(est) => {
                result.clock_offsets.push(model::DeviceOffset {
                    device: label.clone(),
                    estimate: est,
                });
                Some(est)
            }
            Err(e) => {
                result.meta.notes.push(format!(
                    "{label}: clock offset not measured ({} PING exchanges: {e})",
                    samples.len()
                ));
                None
            }
        };
        // One-way raise->hardirq: this device's raw differences, its base
        // and its own offset (converted per device; aggregate() merges).
        let notes = stats.apply_one_way(&mut result.mechanisms, est.as_ref(), &label)?;
        result.meta.notes.extend(notes);
        if let Some(e) = est.filter(|_| {
            result
                .mechanisms
                .iter()
                .any(|r| r.raise_to_hardirq.is_some())
        }) {
            let chosen = samples[e.chosen].t2_host_recv_ns;
            let unc = offset::drift_uncertainty_ppm(&samples);
            // The offset is that of one PING; elsewhere in the phase it is off
            // by up to (|drift| + its uncertainty) x the distance to that PING.
            // That goes into each row's bound, so the bound stated is a bound.
            if let (Some(d), Some(u)) = (e.drift_ppm, unc) {
                let worst = offset::OffsetEstimate {
                    drift_ppm: Some(d.abs() + u),
                    ..e
                };
                if let Some(a) =
                    offset::drift_allowance_ns(&worst, chosen, stats.since_ns, stats.now_ns)
                {
                    for ow in result
                        .mechanisms
                        .iter_mut()
                        .filter_map(|r| r.raise_to_hardirq.as_mut())
                    {
                        ow.error_bound_ns = ow.error_bound_ns.saturating_add(a);
                    }
                    result.meta.notes.push(format!(
                        "{label}: one-way raise->hardirq: bound = PING bound {} us + drift allowance \
                         {} us: the offset is that of the PING at host {:.1} s, the measured phase \
                         spans {:.1}..{:.1} s, drift {d:.1} +/- {u:.1} ppm (docs/clock-offset.md)",
                        e.error_bound_ns.div_ceil(1000),
                        a.div_ceil(1000),
                        chosen as f64 / 1e9,
                        stats.since_ns as f64 / 1e9,
                        stats.now_ns as f64 / 1e9,
                    ));
                }
            } else {
                result.meta.notes.push(format!(
                    "{label}: one-way raise->hardirq: too few PINGs for a drift figure; the bound \
                     covers the offset at the chosen PING only (docs/clock-offset.md)"
                ));
            }
        }
        if !ramp.steps.is_empty() {
            result.ramp = Some(ramp.clone());
        }
        result.finalize()?;
        per.push(result);
    }
    let mut result = if per.len() == 1 {
        per.pop().expect("one")
    } else {
        let mut r = aggregate::aggregate(&per)?;
        r.meta.notes = per[0].meta.notes.clone();
        for p in &per[1..] {
            for n in &p.meta.notes {
                if !r.meta.notes.contains(n) {
                    r.meta.notes.push(n.clone());
                }
            }
        }
        if r.ramp.is_none() && !ramp.steps.is_empty() {
            r.ramp = Some(ramp.clone());
        }
        for m in &r.mechanisms {
            let some = r
                .per_device
                .iter()
                .any(|d| d.mechanism == m.mechanism && d.raise_to_hardirq.is_some());
            if m.raise_to_hardirq.is_none() && some {
                r.meta.notes.push(format!(
                    "one-way raise->hardirq: {}: no merged figure, not measured on every device \
                     (per-device figures above)",
                    m.mechanism
                ));
            }
        }
        // One host baseline per run, not one per guest.
        r.baselines.host_eventfd = Some(evfd.clone());
        r.finalize()?;
        r
    };
    let mut failures = gate::apply(s, &mut result);
    // Kernel problems on any guest console are failures too.
    for (i, p) in guests.procs.iter().enumerate() {
        let crashes = boot::scan_crashes(&p.console);
        if let Some(first) = crashes.first() {
            let c = Check {
                kind: model::CheckKind::Guest,
                name: "guest kernel".into(),
                mechanism: "*".into(),
                device: (n > 1).then(|| format!("irqstorm{i}")),
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
    Ok((result, failures))
}

/// Print the table, write the report directory; returns the exit message
/// when checks failed.
pub fn report(out: &Outcome, console: Option<&Path>) -> Result<Option<String>> {
    print!("{}", render::table(&out.result));
    let written = render::write_report_dir(&out.dir, &out.result, console)?;
    eprintln!(
        "report: {} ({} files: report.json, junit.xml, summary.md, table.txt, SVG plots, console.log)",
        out.dir.display(),
        written.len()
    );
    Ok(gate::exit_message(&out.failures))
}

/// Re-gate a collected result with another scenario's thresholds (same
/// sources): used by `cargo xtask test` to check the failing-threshold path
/// without a second boot.
pub fn regate(s: &Scenario, result: &RunResult) -> (RunResult, Vec<Check>) {
    let mut r = result.clone();
    let f = gate::apply(s, &mut r);
    (r, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_carries_sources_and_reference_mask() {
        let s = sc::parse(
            r#"
name = "t"
duration_ms = 100
[reference]
period_us = 500
[[sources]]
id = 0
mechanism = "tasklet"
program = { mode = "periodic", period_us = 1000 }
work = { kind = "busy", us = 5 }
[[sources]]
id = 1
mechanism = "threaded"
program = { mode = "storm", rate_hz = 1000, burst = 2, duration_ms = 10 }
"#,
            "t",
        )
        .unwrap();
        let c = guest_cmdline(&s);
        assert!(
            c.contains("irqstorm_sc_src=0:tasklet:busy:5,1:threaded:none:0"),
            "{c}"
        );
        // threaded = 1, tasklet = 2.
        assert!(c.contains("irqstorm_sc_ref=500:6"), "{c}");
        let plan = s.plan();
        let st = plan[0].starts[1];
        assert_eq!(
            guest_start_line(&st).unwrap(),
            ("storm".to_string(), "1 1000 2 10 0".to_string())
        );
    }

    /// The non-kernel console lines of a real `cargo xtask run --scenario
    /// tests/scenarios/impossible.toml` (TCG, 2026-11-22): the guest
    /// script's markers, PINGs and debugfs dumps, as the driver prints them.
    const REAL_CONSOLE: &str = include_str!("../tests/data/console-impossible.log");

    #[test]
    fn real_console_dump_parses_into_rows() {
        let sc = sc::load(util::repo_root().join("tests/scenarios/impossible.toml")).unwrap();
        let stats = section(REAL_CONSOLE, "stats").expect("stats dump");
        let summary = device_summary(&stats).expect("device events table");
        let (lat, work, rlat) = (
            section(REAL_CONSOLE, "hist").expect("hist"),
            section(REAL_CONSOLE, "hist_work").expect("hist_work"),
            section(REAL_CONSOLE, "hist_local").expect("hist_local"),
        );
        let mut rows: Vec<model::MechanismResult> = sc
            .mechanisms()
            .iter()
            .map(|m| model::MechanismResult::new(m, None))
            .collect();
        input::apply_guest(
            &mut rows,
            &input::GuestTexts {
                summary: Some(&summary),
                latency: Some(&lat),
                work: Some(&work),
                ref_latency: Some(&rlat),
                ref_work: None,
            },
        )
        .unwrap();
        // The guest's device-wide counter equals the sum of the rows.
        let records: u64 = stats
            .lines()
            .find_map(|l| l.strip_prefix("records "))
            .and_then(|v| v.trim().parse().ok())
            .expect("records counter");
        let sum: u64 = rows.iter().map(|r| r.guest.unwrap().records).sum();
        assert_eq!(sum, records);
        for r in &rows {
            assert!(r.hardirq_to_bh.is_some(), "{}", r.mechanism);
            assert!(r.bh_run.is_some(), "{}", r.mechanism);
            assert!(r.reference.is_some(), "{}", r.mechanism);
        }
        let p = pings(REAL_CONSOLE);
        assert_eq!(p.len(), 2 * PINGS as usize);
        let est = offset::estimate(&p).unwrap();
        assert!(est.error_bound_ns > 0);
    }

    #[test]
    fn console_sections_and_pings() {
        let console = "x\nIRQSTORM_SC_PING 10 20 25 40\nIRQSTORM_SC_BEGIN stats\n# device events\nmechanism events raises\n[  1.0] kernel says\ntasklet 5 5\n# local reference\nmechanism events raises\nIRQSTORM_SC_END stats\nIRQSTORM_SC_PING 1 2\n";
        let st = section(console, "stats").unwrap();
        assert!(!st.contains("kernel says"));
        let sum = device_summary(&st).unwrap();
        assert_eq!(sum, "mechanism events raises\ntasklet 5 5\n");
        let p = pings(console);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].t3_host_send_ns, 25);
        assert!(section(console, "hist").is_none());
        assert_eq!(
            kernel_version("[    0.000000] Linux version 7.3.4 (root@x) #1\n").as_deref(),
            Some("7.3.4")
        );
    }
}
