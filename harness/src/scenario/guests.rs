//! The running guests of a scenario: one QEMU each (started with the
//! harness's launcher, [`crate::boot`]), their console lines on one channel,
//! commands written to their console input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::RunError;
use crate::boot::{self, ConsoleMsg, Launched, StderrTo};

/// A line the guest script prints when a command fails.
const FAIL: &str = "IRQSTORM_SC_FAIL";
/// A line the guest script prints for a command it does not know.
const NAK: &str = "IRQSTORM_SC_NAK";

struct GuestProc {
    qemu: Launched,
    log: std::fs::File,
    console: String,
    eof: bool,
}

pub struct Guests {
    procs: Vec<GuestProc>,
    rx: Receiver<ConsoleMsg>,
    echo: bool,
}

impl Guests {
    /// Start one QEMU per argument vector, logging console `i` to `logs[i]`.
    pub fn spawn(
        program: &Path,
        argvs: Vec<Vec<String>>,
        logs: &[PathBuf],
        echo: bool,
    ) -> Result<Guests, RunError> {
        let (tx, rx) = mpsc::channel();
        let mut procs = Vec::new();
        for (i, (args, log)) in argvs.into_iter().zip(logs).enumerate() {
            let args: Vec<_> = args.into_iter().map(Into::into).collect();
            let qemu = boot::launch(program, &args, &[], i, true, StderrTo::Console, tx.clone())?;
            procs.push(GuestProc {
                qemu,
                log: std::fs::File::create(log).map_err(|source| RunError::Io {
                    what: format!("create {}", log.display()),
                    source,
                })?,
                console: String::new(),
                eof: false,
            });
        }
        Ok(Guests { procs, rx, echo })
    }

    /// Everything guest `i` printed so far.
    pub fn console(&self, i: usize) -> &str {
        &self.procs[i].console
    }

    /// The QEMU processes' pids (guest `i` at index `i`).
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.qemu.child.id()).collect()
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Take one message (until `deadline`): the guest and its line (`None`
    /// at the end of its console); `None` on timeout.
    fn pump(&mut self, deadline: Instant) -> Option<(usize, Option<String>)> {
        let now = Instant::now();
        match self
            .rx
            .recv_timeout(deadline.saturating_duration_since(now))
        {
            Ok(ConsoleMsg::Line(i, l)) => {
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
            Ok(ConsoleMsg::Eof(i)) => {
                self.procs[i].eof = true;
                Some((i, None))
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Drain whatever arrived, without waiting.
    pub fn drain(&mut self) {
        while self.pump(Instant::now()).is_some() {}
    }

    /// Wait until every guest printed a line starting with `marker`.
    pub fn wait_all(
        &mut self,
        marker: &str,
        timeout: Duration,
        what: &str,
    ) -> Result<(), RunError> {
        let deadline = Instant::now() + timeout;
        let mut seen = vec![false; self.procs.len()];
        while !seen.iter().all(|s| *s) {
            match self.pump(deadline) {
                None => {
                    return Err(RunError::Guest(format!(
                        "guest(s) {:?}: no `{marker}` within {}s ({what}); see the console log",
                        seen.iter()
                            .enumerate()
                            .filter(|(_, s)| !**s)
                            .map(|(i, _)| i)
                            .collect::<Vec<_>>(),
                        timeout.as_secs()
                    )))
                }
                Some((i, None)) => {
                    return Err(RunError::Guest(format!(
                        "guest {i} exited while waiting for `{marker}` ({what})"
                    )))
                }
                Some((i, Some(l))) => {
                    let t = l.trim();
                    if t.starts_with(FAIL) || t.starts_with(NAK) || t.contains("Kernel panic") {
                        return Err(RunError::Guest(format!("guest {i}: {t}")));
                    }
                    if t.starts_with(marker) {
                        seen[i] = true;
                    }
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, i: usize, line: &str) -> Result<(), RunError> {
        let s = self.procs[i]
            .qemu
            .stdin
            .as_mut()
            .ok_or_else(|| RunError::Guest(format!("guest {i}: console input closed")))?;
        s.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| s.flush())
            .map_err(|source| RunError::Io {
                what: format!("guest {i}: write console"),
                source,
            })
    }

    /// Write one command line to every guest's console.
    pub fn send_all(&mut self, line: &str) -> Result<(), RunError> {
        for i in 0..self.procs.len() {
            self.send(i, line)?;
        }
        Ok(())
    }

    /// Wait for every QEMU to exit (or kill it after `limit`).
    pub fn finish(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.procs.iter().all(|p| p.eof) {
            if self.pump(deadline).is_none() {
                break;
            }
        }
        for p in &mut self.procs {
            p.qemu.stdin = None;
            boot::wait_bounded(&mut p.qemu.child, Duration::from_secs(5));
        }
        self.drain();
    }
}

impl Drop for Guests {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Ok(None) = p.qemu.child.try_wait() {
                boot::kill_hard(&mut p.qemu.child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for QEMU: the guest script's handshake over the console.
    const FAKE_GUEST: &str = "echo IRQSTORM_SC_READY; read l; echo \"IRQSTORM_SC_ACK $l\"; \
                              echo oops >&2; read l; echo IRQSTORM_SC_FAIL $l";

    fn guests(n: usize, dir: &Path) -> Guests {
        let argvs = vec![vec!["-c".to_string(), FAKE_GUEST.to_string()]; n];
        let logs: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("c{i}.log"))).collect();
        Guests::spawn(Path::new("/bin/sh"), argvs, &logs, false).unwrap()
    }

    #[test]
    fn console_handshake_commands_and_logs() {
        let dir = std::env::temp_dir().join(format!("irqstorm-guests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut g = guests(2, &dir);
        let t = Duration::from_secs(10);
        g.wait_all("IRQSTORM_SC_READY", t, "set-up").unwrap();
        g.send_all("reset").unwrap();
        g.wait_all("IRQSTORM_SC_ACK reset", t, "reset").unwrap();
        // a failure line of the guest script ends the wait with its text
        g.send_all("dump").unwrap();
        let e = g.wait_all("IRQSTORM_SC_ACK dump", t, "dump").unwrap_err();
        assert!(e.to_string().contains("IRQSTORM_SC_FAIL dump"), "{e}");
        g.finish(Duration::from_secs(10));
        // stderr has its own reader thread: give its line time to arrive
        let deadline = Instant::now() + t;
        while !(0..g.len()).all(|i| g.console(i).contains("oops")) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            g.drain();
        }
        for i in 0..g.len() {
            // stderr lines are part of the console, as QEMU's are
            assert!(
                g.console(i).contains("[qemu stderr] oops\n"),
                "{}",
                g.console(i)
            );
            let log = std::fs::read_to_string(dir.join(format!("c{i}.log"))).unwrap();
            assert!(log.starts_with("IRQSTORM_SC_READY\n"), "{log}");
        }
        drop(g);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_guest_that_exits_ends_the_wait() {
        let dir = std::env::temp_dir().join(format!("irqstorm-guests-x-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let argvs = vec![vec!["-c".to_string(), "echo booting".to_string()]];
        let mut g =
            Guests::spawn(Path::new("/bin/sh"), argvs, &[dir.join("c.log")], false).unwrap();
        let e = g
            .wait_all("IRQSTORM_SC_READY", Duration::from_secs(10), "set-up")
            .unwrap_err();
        assert!(
            e.to_string().contains("guest 0 exited while waiting"),
            "{e}"
        );
        drop(g);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
