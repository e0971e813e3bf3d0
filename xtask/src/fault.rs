//! Host side of guest test `50-fault-injection` (spec §7/§8).
//!
//! The guest script starts a storm and prints [`READY_MARKER`]; the console
//! hook then arms every fault kind of the back end in turn (the back end
//! holds one armed fault at a time) and waits until each was written. After
//! the boot, the host's `faults_injected` must equal the bad-record total the
//! guest driver counted ([`GUEST_TOTAL`] line): every injected fault was
//! detected and skipped, none slipped through, none was invented.

use irqstorm_harness::boot::{Evaluation, LineHook};
use irqstorm_protocol::client::{Client, DEFAULT_TIMEOUT};
use irqstorm_protocol::control::{FaultReply, Request, StatsReply};
use irqstorm_protocol::wire::FaultKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Printed by the guest when its storm runs and faults may be injected.
pub const READY_MARKER: &str = "IRQSTORM_FAULT_READY";
/// Printed by the guest with the driver's bad-record total.
pub const GUEST_TOTAL: &str = "IRQSTORM_GUEST_BAD_TOTAL=";
/// Every fault kind the back end can inject.
pub const KINDS: [FaultKind; 6] = FaultKind::ALL;
/// Faults of each kind.
pub const PER_KIND: u32 = 5;
/// How long one kind may take to be written (the guest storm runs at 2 kHz).
const KIND_TIMEOUT: Duration = Duration::from_secs(15);

type Outcome = Result<u64, String>;

/// Arms faults once the guest is ready; checks the totals after the boot.
pub struct FaultInjector {
    ctl: PathBuf,
    worker: Arc<Mutex<Option<JoinHandle<Outcome>>>>,
}

impl FaultInjector {
    pub fn new(control_socket: &Path) -> Self {
        FaultInjector {
            ctl: control_socket.to_path_buf(),
            worker: Arc::new(Mutex::new(None)),
        }
    }

    /// The console hook: the first [`READY_MARKER`] line starts the injection
    /// in a thread of its own (the console must keep flowing meanwhile).
    pub fn hook(&self) -> LineHook {
        let ctl = self.ctl.clone();
        let worker = self.worker.clone();
        LineHook(Arc::new(move |line: &str| {
            if !line.contains(READY_MARKER) {
                return;
            }
            let Ok(mut w) = worker.lock() else { return };
            if w.is_none() {
                let ctl = ctl.clone();
                *w = Some(std::thread::spawn(move || inject_all(&ctl)));
            }
        }))
    }

    /// Adds the host-side check to `ev`: skipped (nothing added) when the
    /// guest never asked for faults (no device, or fault injection not
    /// offered), else one passed or failed check comparing the host's
    /// injected count with the guest's detected count.
    pub fn finish(self, ev: &mut Evaluation, console: &str) {
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        let Some(handle) = handle else { return };
        let outcome = handle
            .join()
            .unwrap_or_else(|_| Err("fault injection thread panicked".into()));
        match check(outcome, guest_total(console)) {
            Ok(msg) => {
                eprintln!("  ok      {msg}");
                ev.passed += 1;
            }
            Err(msg) => {
                eprintln!("  FAIL    {msg}");
                ev.failed += 1;
                ev.failures.push(msg);
            }
        }
    }
}

/// The guest's last reported bad-record total, if it printed one.
fn guest_total(console: &str) -> Option<u64> {
    console
        .lines()
        .filter_map(|l| l.split(GUEST_TOTAL).nth(1))
        .filter_map(|rest| rest.trim().parse().ok())
        .next_back()
}

fn check(injected: Outcome, detected: Option<u64>) -> Result<String, String> {
    let injected = injected.map_err(|e| format!("fault injection (host): {e}"))?;
    let Some(detected) = detected else {
        return Err(format!(
            "fault injection: host injected {injected} fault(s) but the guest printed no {GUEST_TOTAL} line"
        ));
    };
    if injected == 0 || injected != detected {
        return Err(format!(
            "fault injection: host injected {injected}, guest driver detected {detected} (must be equal and non-zero)"
        ));
    }
    Ok(format!(
        "fault injection: {injected} injected by the host = {detected} detected by the guest driver"
    ))
}

fn faults_injected(ctl: &Path) -> Result<u64, String> {
    let stats = Request::Stats {
        device: None,
        buckets: None,
    };
    let r: StatsReply = call(ctl, &stats)?;
    Ok(r.stats.device.faults_injected)
}

/// One request on a new connection; a refusal is an error with its reason.
fn call<T: serde::de::DeserializeOwned>(ctl: &Path, req: &Request) -> Result<T, String> {
    Client::connect(ctl, DEFAULT_TIMEOUT)
        .and_then(|mut c| c.call(req))
        .map_err(|e| e.to_string())
}

/// Arms each kind and waits until the back end wrote it; returns how many
/// faults were injected in all.
fn inject_all(ctl: &Path) -> Outcome {
    let before = faults_injected(ctl)?;
    let mut want = before;
    for kind in KINDS {
        let arm = Request::Fault {
            device: None,
            kind,
            count: Some(PER_KIND),
        };
        call::<FaultReply>(ctl, &arm)?;
        want += u64::from(PER_KIND);
        let deadline = Instant::now() + KIND_TIMEOUT;
        loop {
            let n = faults_injected(ctl)?;
            if n >= want {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{kind}: {} of {PER_KIND} written after {}s (is the guest storm running?)",
                    u64::from(PER_KIND) - (want - n),
                    KIND_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(faults_injected(ctl)? - before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_total_takes_the_last_line() {
        let c = "x\n# IRQSTORM_GUEST_BAD_TOTAL=3\n[  1.0] noise\n# IRQSTORM_GUEST_BAD_TOTAL=30\r\n";
        assert_eq!(guest_total(c), Some(30));
        assert_eq!(guest_total("nothing here"), None);
    }

    #[test]
    fn check_needs_equal_non_zero_counts() {
        assert!(check(Ok(30), Some(30)).is_ok());
        let e = check(Ok(30), Some(29)).unwrap_err();
        assert!(
            e.contains("injected 30") && e.contains("detected 29"),
            "{e}"
        );
        assert!(check(Ok(0), Some(0)).is_err());
        assert!(check(Ok(30), None).unwrap_err().contains(GUEST_TOTAL));
        assert!(check(Err("refused".into()), Some(30))
            .unwrap_err()
            .contains("refused"));
    }

    #[test]
    fn hook_ignores_other_lines_and_starts_once() {
        // An unreachable socket: the worker fails fast, which finish() reports.
        let dir = std::env::temp_dir().join(format!("irqstorm-fault-{}", std::process::id()));
        let inj = FaultInjector::new(&dir.join("no-such.sock"));
        let h = inj.hook();
        (h.0)("plain console line");
        assert!(inj.worker.lock().unwrap().is_none());
        (h.0)("# IRQSTORM_FAULT_READY: host may inject now");
        (h.0)("IRQSTORM_FAULT_READY again");
        let mut ev = Evaluation {
            console_log: PathBuf::new(),
            ktap: None,
            failures: vec![],
            crashes: vec![],
            passed: 0,
            failed: 0,
            skipped: 0,
            timed_out: false,
            duration_s: 0.0,
            exit_code: None,
        };
        inj.finish(&mut ev, "# IRQSTORM_GUEST_BAD_TOTAL=5\n");
        assert_eq!(ev.failed, 1);
        assert!(
            ev.failures[0].contains("fault injection (host)"),
            "{:?}",
            ev.failures
        );
    }
}
