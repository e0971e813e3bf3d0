//! Boot a guest (or anything that behaves like QEMU), capture its console,
//! enforce a timeout, and judge the result.

use crate::ktap::{self, Suite};
use serde::Serialize;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("back end {binary} {msg}; its log: {log}")]
    Backend {
        binary: String,
        msg: String,
        log: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BootError + '_ {
    move |source| BootError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How to run one guest boot.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// QEMU binary or launcher script.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// The guest console (QEMU's stdout, `-serial stdio`) is written here.
    pub console_log: PathBuf,
    /// Hard limit for the whole boot; QEMU is killed after it.
    pub timeout: Duration,
    /// Stop (kill QEMU) as soon as a console line contains this.
    pub stop_marker: Option<String>,
    /// Echo console lines to our stderr as they arrive.
    pub echo: bool,
    /// Called with every console line as it arrives (e.g. to act on a marker
    /// the guest prints). It must return quickly: long host-side work belongs
    /// in a thread of its own.
    pub on_line: Option<LineHook>,
    /// A process the guest depends on (the back end): polled during the
    /// boot; once it is gone QEMU is killed and the run ends naming it.
    pub watch: Option<Watch>,
}

/// Tells whether a process the run depends on is gone: `Some(message)`
/// naming it, else `None`. Cheap; polled a few times a second.
#[derive(Clone)]
pub struct Watch(pub std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

/// How often [`BootSpec::watch`] is polled.
const WATCH_PERIOD: Duration = Duration::from_millis(200);

/// A console-line callback for [`BootSpec::on_line`].
#[derive(Clone)]
pub struct LineHook(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for LineHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineHook")
    }
}

/// What happened during a boot.
#[derive(Debug, Clone)]
pub struct BootResult {
    pub console: String,
    pub stderr: String,
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub stop_marker_seen: bool,
    pub duration: Duration,
    pub console_log: PathBuf,
    /// What [`BootSpec::watch`] reported gone (the run was ended for it).
    pub died: Option<String>,
}

/// A console line (`\r` removed), or the end of a console, from the QEMU
/// with this index.
pub(crate) enum ConsoleMsg {
    Line(usize, String),
    Eof(usize),
}

/// Where QEMU's stderr goes.
pub(crate) enum StderrTo {
    /// Read whole, returned by [`Launched::finish_stderr`].
    Collect,
    /// Sent as console lines `[qemu stderr] ...`.
    Console,
}

/// A started QEMU whose console lines arrive on the channel given to
/// [`launch`].
pub(crate) struct Launched {
    pub child: Child,
    /// The console input, when launched with `interactive`.
    pub stdin: Option<ChildStdin>,
    reader: std::thread::JoinHandle<()>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Launched {
    /// Wait for the console reader; the collected stderr ([`StderrTo::Collect`]).
    pub fn finish_stderr(self) -> String {
        let _ = self.reader.join();
        self.stderr.and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

/// Start `program args` (QEMU with `-serial stdio`) with its console piped
/// to `tx` as QEMU number `index`; `interactive` keeps its stdin open.
pub(crate) fn launch(
    program: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
    index: usize,
    interactive: bool,
    stderr_to: StderrTo,
    tx: mpsc::Sender<ConsoleMsg>,
) -> Result<Launched, BootError> {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if interactive {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BootError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_tx = tx.clone();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    // Serial output uses \r\n; keep the log plain.
                    let s = String::from_utf8_lossy(&buf).replace('\r', "");
                    if out_tx.send(ConsoleMsg::Line(index, s)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = out_tx.send(ConsoleMsg::Eof(index));
    });
    let stderr = match stderr_to {
        StderrTo::Collect => Some(std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })),
        StderrTo::Console => {
            std::thread::spawn(move || {
                for l in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    let _ = tx.send(ConsoleMsg::Line(index, format!("[qemu stderr] {l}\n")));
                }
            });
            None
        }
    };
    Ok(Launched {
        stdin: child.stdin.take(),
        child,
        reader,
        stderr,
    })
}

/// Run QEMU as described. Returns `Err` only if it could not be started or
/// the log could not be written; a guest failure is in the `BootResult`.
pub fn boot(spec: &BootSpec) -> Result<BootResult, BootError> {
    if let Some(dir) = spec.console_log.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut log = File::create(&spec.console_log).map_err(io_err(&spec.console_log))?;
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let mut qemu = launch(
        &spec.program,
        &spec.args,
        &spec.env,
        0,
        false,
        StderrTo::Collect,
        tx,
    )?;

    let deadline = start + spec.timeout;
    let mut console = String::new();
    let mut timed_out = false;
    let mut marker_seen = false;
    let mut died = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        if let Some(gone) = spec.watch.as_ref().and_then(|w| (w.0)()) {
            died = Some(gone);
            break;
        }
        let slice = if spec.watch.is_some() {
            (deadline - now).min(WATCH_PERIOD)
        } else {
            deadline - now
        };
        match rx.recv_timeout(slice) {
            Ok(ConsoleMsg::Line(_, clean)) => {
                log.write_all(clean.as_bytes())
                    .map_err(io_err(&spec.console_log))?;
                if spec.echo {
                    eprint!("{clean}");
                }
                console.push_str(&clean);
                if let Some(h) = &spec.on_line {
                    (h.0)(&clean);
                }
                if let Some(m) = &spec.stop_marker {
                    if clean.contains(m.as_str()) {
                        marker_seen = true;
                        break;
                    }
                }
            }
            Ok(ConsoleMsg::Eof(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    if died.is_none() {
        // The watched process may have died just as QEMU gave up.
        died = spec.watch.as_ref().and_then(|w| (w.0)());
    }
    let status = if timed_out || marker_seen || died.is_some() {
        kill_hard(&mut qemu.child);
        None
    } else {
        // stdout closed: QEMU is exiting. Bound the wait anyway.
        wait_bounded(&mut qemu.child, Duration::from_secs(10))
    };
    // The reader ends once the channel is gone (a stop marker or timeout).
    drop(rx);
    let stderr = qemu.finish_stderr();
    if timed_out {
        let _ = writeln!(
            log,
            "\n[irqstorm-harness] TIMEOUT after {}s: QEMU killed",
            spec.timeout.as_secs()
        );
    }
    if let Some(d) = &died {
        let _ = writeln!(log, "\n[irqstorm-harness] {d}: run ended, QEMU killed");
    }
    if !stderr.is_empty() {
        let _ = writeln!(log, "\n[irqstorm-harness] QEMU stderr:\n{stderr}");
    }
    Ok(BootResult {
        console,
        stderr,
        status,
        timed_out,
        stop_marker_seen: marker_seen,
        duration: start.elapsed(),
        console_log: spec.console_log.clone(),
        died,
    })
}

pub(crate) fn kill_hard(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                kill_hard(child);
                return None;
            }
        }
    }
}

/// Kernel console lines that mean the guest kernel is in trouble.
/// Only lines with a printk timestamp count, so test output that merely
/// mentions these words does not.
pub fn scan_crashes(console: &str) -> Vec<String> {
    const PATTERNS: &[&str] = &[
        "Kernel panic",
        "Oops",
        "BUG:",
        "WARNING:",
        "general protection fault",
        "Call Trace:",
        "RIP:",
    ];
    let mut out = Vec::new();
    for line in console.lines() {
        let l = line.trim_start();
        let Some(rest) = l.strip_prefix('[') else {
            continue;
        };
        let Some(close) = rest.find(']') else {
            continue;
        };
        let stamp = rest[..close].trim();
        if !stamp.contains('.') || !stamp.chars().all(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        let msg = rest[close + 1..].trim_start();
        if PATTERNS.iter().any(|p| msg.starts_with(p)) {
            out.push(line.trim().to_string());
        }
    }
    out
}

/// The verdict on one guest run.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub console_log: PathBuf,
    pub ktap: Option<Suite>,
    /// One line per reason the run failed; empty means it passed.
    pub failures: Vec<String>,
    pub crashes: Vec<String>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub timed_out: bool,
    pub duration_s: f64,
    pub exit_code: Option<i32>,
}

impl Evaluation {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// One line per failed top-level test: nested `not ok`s are folded into
/// their failed parent ("not ok: 00-module (insmod, rmmod)").
fn summarize(problems: &[ktap::Problem]) -> Vec<String> {
    use ktap::Problem;
    let failed_top: Vec<&str> = problems
        .iter()
        .filter_map(|p| match p {
            Problem::NotOk { path } if !path.contains('/') => Some(path.as_str()),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for p in problems {
        match p {
            Problem::NotOk { path } if path.contains('/') => {
                let top = path.split('/').next().unwrap_or("");
                if !failed_top.contains(&top) {
                    out.push(p.to_string());
                }
            }
            Problem::NotOk { path } => {
                let prefix = format!("{path}/");
                let subs: Vec<&str> = problems
                    .iter()
                    .filter_map(|q| match q {
                        Problem::NotOk { path: sp } => sp.strip_prefix(&prefix),
                        _ => None,
                    })
                    .collect();
                if subs.is_empty() {
                    out.push(p.to_string());
                } else {
                    out.push(format!("{p} (failed: {})", subs.join(", ")));
                }
            }
            other => out.push(other.to_string()),
        }
    }
    out
}

/// Judge a boot: KTAP present and complete, no `not ok`, no crash, no timeout.
pub fn evaluate(r: &BootResult) -> Evaluation {
    let log = r.console_log.display();
    let mut ktap = ktap::parse(&r.console);
    // The script /init was running when the output stopped, if it has no result.
    let running: Option<String> = r
        .console
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("# irqstorm-init: running "))
        .map(str::to_string)
        .filter(|name| {
            !ktap
                .as_ref()
                .is_some_and(|s| s.tests.iter().any(|t| t.name == *name))
        });
    if let (Some(s), Some(name)) = (ktap.as_mut(), running.as_ref()) {
        if let Some(t) = s.tests.last_mut().filter(|t| t.name == "(unfinished)") {
            t.name = name.clone();
        }
    }
    let crashes = scan_crashes(&r.console);
    let mut failures = Vec::new();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    if let Some(s) = &ktap {
        (passed, failed, skipped) = s.counts();
    }
    if r.timed_out {
        let what = match &ktap {
            None => "without printing KTAP",
            Some(_) => "before finishing its KTAP run",
        };
        let running = running
            .as_ref()
            .map(|name| format!(" while running {name}"))
            .unwrap_or_default();
        failures.push(format!(
            "guest timed out after {}s {what}{running} (QEMU killed); console log: {log}",
            r.duration.as_secs()
        ));
    }
    if let Some(first) = crashes.first() {
        failures.push(format!(
            "guest kernel reported a problem ({} line(s)), first: {first}; console log: {log}",
            crashes.len()
        ));
    }
    match &ktap {
        None if !r.timed_out && crashes.is_empty() => {
            let mut m = format!(
                "guest never printed KTAP (QEMU exited: {}); console log: {log}",
                r.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "killed".into())
            );
            if !r.stderr.trim().is_empty() {
                m.push_str(&format!("; QEMU said: {}", tail(&r.stderr, 3)));
            }
            failures.push(m);
        }
        None => {}
        Some(s) => {
            let mut problems = s.problems();
            if r.timed_out || !crashes.is_empty() {
                // An unfinished run is already reported as timeout/crash:
                // keep only genuine `not ok` results.
                problems.retain(|p| {
                    matches!(p, ktap::Problem::NotOk { path }
                        if !path.starts_with("(unfinished)")
                            && running.as_ref().is_none_or(|n| !path.starts_with(n.as_str())))
                });
            }
            failures.extend(
                summarize(&problems)
                    .into_iter()
                    .map(|p| format!("KTAP {p}; console log: {log}")),
            );
            // Missing results in the plan count as failures.
            if let Some(n) = s.plan {
                failed += n.saturating_sub(s.tests.len());
            }
        }
    }
    if let Some(st) = r.status {
        if !st.success() && !r.timed_out {
            let mut m = format!("QEMU exited with {st}; console log: {log}");
            if !r.stderr.trim().is_empty() {
                m.push_str(&format!("; QEMU said: {}", tail(&r.stderr, 3)));
            }
            failures.push(m);
        }
    }
    if failures.is_empty() && passed + skipped == 0 {
        failures.push(format!("guest ran no tests; console log: {log}"));
    }
    if let Some(d) = &r.died {
        // Everything after the death follows from it: one message says it.
        failures = vec![format!("{d}: run ended, QEMU killed; console log: {log}")];
    }
    if !failures.is_empty() && failed == 0 {
        // The run failed for a reason outside the KTAP results (timeout, crash):
        // count it so the summary is never "0 failed" for a failed run.
        failed = 1;
    }
    Evaluation {
        console_log: r.console_log.clone(),
        ktap,
        failures,
        crashes,
        passed,
        failed,
        skipped,
        timed_out: r.timed_out,
        duration_s: r.duration.as_secs_f64(),
        exit_code: r.status.and_then(|s| s.code()),
    }
}

/// A running vhost-user back end (device mode).
pub struct Backend {
    child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
    binary: PathBuf,
}

/// How to start the back end.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    pub binary: PathBuf,
    /// Directory for `vhost.sock` and `ctl.sock`.
    pub dir: PathBuf,
    pub extra_args: Vec<String>,
    pub log: PathBuf,
    pub startup_timeout: Duration,
}

impl BackendSpec {
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("vhost.sock")
    }
    pub fn control_socket_path(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }
}

impl Backend {
    /// Start the back end and wait until its vhost-user socket(s) and its
    /// control socket exist (it binds the control socket after the
    /// vhost-user ones: a caller that talked to it at once lost that race
    /// on a loaded machine).
    pub fn start(spec: &BackendSpec) -> Result<Backend, BootError> {
        std::fs::create_dir_all(&spec.dir).map_err(io_err(&spec.dir))?;
        let socket = spec.socket_path();
        let ctl = spec.control_socket_path();
        for p in [&socket, &ctl] {
            let _ = std::fs::remove_file(p);
        }
        let log = File::create(&spec.log).map_err(io_err(&spec.log))?;
        let log2 = log.try_clone().map_err(io_err(&spec.log))?;
        let child = Command::new(&spec.binary)
            .arg("--socket-path")
            .arg(&socket)
            .arg("--control-socket")
            .arg(&ctl)
            .args(&spec.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|source| BootError::Spawn {
                program: spec.binary.display().to_string(),
                source,
            })?;
        let mut b = Backend {
            child,
            socket: socket.clone(),
            log: spec.log.clone(),
            binary: spec.binary.clone(),
        };
        let end = Instant::now() + spec.startup_timeout;
        loop {
            // With --socket-count N > 1 the sockets are PATH0..PATH{N-1}.
            let vhost = socket.exists() || PathBuf::from(format!("{}0", socket.display())).exists();
            if vhost && ctl.exists() {
                return Ok(b);
            }
            if let Ok(Some(st)) = b.child.try_wait() {
                return Err(b.error(format!(
                    "exited ({st}) before creating {}",
                    socket.display()
                )));
            }
            if Instant::now() >= end {
                b.stop();
                return Err(b.error(format!(
                    "did not create {} within {}s",
                    socket.display(),
                    spec.startup_timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn error(&self, msg: String) -> BootError {
        BootError::Backend {
            binary: self.binary.display().to_string(),
            msg,
            log: self.log.display().to_string(),
        }
    }

    /// `Some(message)` naming the back end, how it ended and its log once it
    /// has exited (it is not reaped: [`Backend::stop`] still gets its status).
    pub fn died(&self) -> Option<String> {
        died_message(self.child.id(), &self.binary, &self.log)
    }

    /// The back end's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A [`Watch`] for [`BootSpec::watch`].
    pub fn watch(&self) -> Watch {
        let (pid, binary, log) = (self.child.id(), self.binary.clone(), self.log.clone());
        Watch(std::sync::Arc::new(move || {
            died_message(pid, &binary, &log)
        }))
    }

    /// SIGTERM, then SIGKILL after 3 s. Returns the exit status if it exited.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let st = wait_bounded(&mut self.child, Duration::from_secs(3));
        if st.is_none() {
            log::warn!("back end ignored SIGTERM; killed");
        }
        st
    }
}

/// How child `pid` ended, if it has, without reaping it.
fn exit_of(pid: u32) -> Option<String> {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child with WNOHANG | WNOWAIT only writes
    // `info` (a valid, exclusively borrowed siginfo_t) and leaves the child
    // waitable, so `Child::wait` still reaps it later.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: after a successful waitid, si_pid and si_status are set (si_pid
    // stays 0 when the child has not exited yet).
    let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
    if r != 0 || child == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => format!("exited with status {status}"),
        _ => format!("was killed by signal {status} ({})", signal_name(status)),
    })
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGBUS => "SIGBUS",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        _ => "signal",
    }
}

fn died_message(pid: u32, binary: &Path, log: &Path) -> Option<String> {
    exit_of(pid).map(|how| {
        format!(
            "the back end {} (pid {pid}) {how} during the run; its log: {}",
            binary.display(),
            log.display()
        )
    })
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A finished boot with this console (1 s, log `/tmp/c.log`).
    pub(crate) fn result(console: &str) -> BootResult {
        BootResult {
            console: console.into(),
            stderr: String::new(),
            status: None,
            timed_out: false,
            stop_marker_seen: false,
            duration: Duration::from_secs(1),
            console_log: "/tmp/c.log".into(),
            died: None,
        }
    }

    #[test]
    fn nested_failures_fold_into_one_line_per_script() {
        let ev = evaluate(&result(
            "KTAP version 1\n1..2\n    KTAP version 1\n    1..3\n    not ok 1 insmod\n    ok 2 x\n    not ok 3 rmmod\nnot ok 1 00-module\n    KTAP version 1\n    1..1\n    not ok 1 odd\nok 2 10-other\n",
        ));
        assert_eq!(
            ev.failures,
            vec![
                "KTAP not ok: 00-module (failed: insmod, rmmod); console log: /tmp/c.log",
                "KTAP not ok: 10-other/odd; console log: /tmp/c.log",
            ]
        );
        assert_eq!((ev.passed, ev.failed), (1, 1));
    }

    #[test]
    fn crash_scan_needs_printk_timestamp() {
        let c = "[    1.000000] WARNING: CPU: 0 PID: 1 at foo.c:1\n# WARNING: in a test\nBUG: no stamp\n[ 2.5] Oops: 0000 [#1]\n[  3.0] irqstorm: fine\n";
        assert_eq!(
            scan_crashes(c),
            vec![
                "[    1.000000] WARNING: CPU: 0 PID: 1 at foo.c:1",
                "[ 2.5] Oops: 0000 [#1]"
            ]
        );
    }

    #[test]
    fn timeout_names_the_running_script() {
        let mut r = result("KTAP version 1\n1..2\n# irqstorm-init: running 00-a\nok 1 00-a\n# irqstorm-init: running 10-hang\n    KTAP version 1\n    1..3\n    ok 1 x\n");
        r.timed_out = true;
        let ev = evaluate(&r);
        assert_eq!(ev.failures.len(), 1, "{:?}", ev.failures);
        assert!(ev.failures[0].contains("before finishing its KTAP run while running 10-hang"));
        assert_eq!((ev.passed, ev.failed), (1, 1));
        let names: Vec<&str> = ev
            .ktap
            .as_ref()
            .unwrap()
            .tests
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec!["00-a", "10-hang"],
            "the unfinished test is named"
        );
    }

    #[test]
    fn a_dead_back_end_is_the_one_failure() {
        let mut r = result("KTAP version 1\n1..3\nok 1 a\n");
        r.died = Some(
            "the back end /b (pid 9) was killed by signal 7 (SIGBUS) during the run; its log: /l"
                .into(),
        );
        let ev = evaluate(&r);
        assert_eq!(
            ev.failures,
            vec!["the back end /b (pid 9) was killed by signal 7 (SIGBUS) during the run; its log: /l: run ended, QEMU killed; console log: /tmp/c.log"]
        );
        assert_eq!((ev.passed, ev.failed), (1, 2));
    }

    #[test]
    fn a_child_that_died_is_named_and_still_waitable() {
        let mut c = Command::new("sh")
            .args(["-c", "kill -BUS $$"])
            .spawn()
            .unwrap();
        let msg = loop {
            if let Some(m) = died_message(c.id(), Path::new("/bin/be"), Path::new("/l")) {
                break m;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            msg.contains("/bin/be") && msg.contains("SIGBUS") && msg.contains("/l"),
            "{msg}"
        );
        // Not reaped by the check: the status is still there.
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGBUS));
        let alive = Command::new("sleep").arg("5").spawn().unwrap();
        assert_eq!(
            died_message(alive.id(), Path::new("/b"), Path::new("/l")),
            None
        );
        kill_hard(&mut { alive });
    }

    #[test]
    fn timeout_after_complete_ktap_still_fails() {
        let mut r = result("KTAP version 1\n1..1\nok 1 a\n");
        r.timed_out = true;
        let ev = evaluate(&r);
        assert!(!ev.ok());
        assert!(ev.failures[0].contains("before finishing"));
        assert_eq!(ev.failed, 1);
    }
}
