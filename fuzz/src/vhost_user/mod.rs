// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Target `vhost_user`: the real back end (`irqstorm_backend::run`, its own
//! threads, its Unix sockets) started once in this process; each input is one
//! front-end connection over a real socket: vhost-user messages (header +
//! body, with memfds, eventfds and other fds attached by SCM_RIGHTS), queue
//! kicks and guest-memory writes, then close.
//!
//! Crashes are a panic or abort anywhere in the process (libFuzzer turns
//! both into a crash report), a back end that does not end a closed
//! connection within the liveness bound (a hang), and a back end that no
//! longer serves a well-formed front end (checked on the first input and
//! every [`CHECK_EVERY`] after it).

mod front;
mod op;
pub mod seeds;
mod session;

pub use op::{decode, encode, Fd, Op, HEADER_SIZE, MAX_FDS, NEED_REPLY, VERSION};
pub use session::{Options, Outcome, SessionError, ADD_MEM_REG, COVER_CAP, SET_MEM_TABLE};

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser as _;
use irqstorm_backend::args::{Args, Config};
use thiserror::Error as ThisError;

/// Sources of the device under test.
pub const SOURCES: u16 = 4;
/// Inputs between two well-formed front-end checks.
pub const CHECK_EVERY: u64 = 64;
/// Default liveness bound.
pub const LIVENESS: Duration = Duration::from_secs(10);

/// Starting the back end failed.
#[derive(Debug, ThisError)]
pub enum StartError {
    /// The command line the harness builds was refused.
    #[error("back end arguments: {0}")]
    Args(String),
    /// Making the socket directory or the thread failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The sockets did not appear.
    #[error("the back end's sockets did not appear within {0:?}")]
    NoSockets(Duration),
    /// The environment asks for something invalid.
    #[error("{0}")]
    Env(String),
}

/// A broken property (the fuzz target panics with it).
#[derive(Debug, ThisError, PartialEq, Eq)]
pub enum Violation {
    /// The fuzzed connection was not ended in time (or a send blocked).
    #[error("hang: {0}")]
    Hang(String),
    /// The harness could not run a connection (the process ran out of fds).
    #[error("after {execs} connections ({fds} fds open): {why}")]
    Resources {
        /// Connections so far.
        execs: u64,
        /// Open file descriptors of the process.
        fds: usize,
        /// What failed.
        why: String,
    },
    /// A well-formed front end is no longer served.
    #[error("after {execs} connections the back end no longer serves a well-formed front end ({fds} fds open): {why}")]
    NotServing {
        /// Connections so far.
        execs: u64,
        /// Open file descriptors of the process.
        fds: usize,
        /// What failed.
        why: String,
    },
    /// The process's open descriptors grew past the allowed bound.
    #[error("fd leak: {from} fds open after the first check, {to} after {execs} connections (bound +{bound})")]
    FdLeak {
        /// Baseline.
        from: usize,
        /// Now.
        to: usize,
        /// Connections so far.
        execs: u64,
        /// Allowed growth.
        bound: usize,
    },
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Variables that select optional checks (see [`Server::start`]).
pub const ENV_SHORT_MEMFDS: &str = "IRQSTORM_FUZZ_SHORT_MEMFDS";
/// See [`Server::start`].
pub const ENV_MAX_FD_GROWTH: &str = "IRQSTORM_FUZZ_MAX_FD_GROWTH";
/// Allowed fd growth over a run unless [`ENV_MAX_FD_GROWTH`] says otherwise.
pub const DEFAULT_MAX_FD_GROWTH: usize = 64;

/// The back end under test, running in this process.
pub struct Server {
    dir: PathBuf,
    vu: PathBuf,
    ctl: PathBuf,
    opts: Options,
    /// Allowed growth of open fds over the run (0: unchecked).
    max_fd_growth: usize,
    execs: AtomicU64,
    fd_base: Mutex<Option<usize>>,
}

fn env_flag(name: &str, default: bool) -> Result<bool, StartError> {
    match std::env::var(name).as_deref() {
        Err(_) | Ok("") => Ok(default),
        Ok("0") => Ok(false),
        Ok("1") => Ok(true),
        Ok(v) => Err(StartError::Env(format!("{name}={v}: want 0 or 1"))),
    }
}

/// The socket directory, removed when the process exits normally
/// (libFuzzer ends a bounded run with `exit`; statics are never dropped).
static SOCKET_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

extern "C" fn remove_socket_dir() {
    if let Some(d) = SOCKET_DIR.get() {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Ignores SIGPIPE like the back end binary's Rust runtime does (libFuzzer's
/// `main` is not Rust's), and lifts the fd limit as far as allowed (to
/// `fs.nr_open` as root, else the hard limit): one connection per input
/// runs through many descriptors, and until issue 10 item 2 is fixed on main
/// each connection leaks one.
fn process_setup() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<libc::rlim_t>().ok());
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit owned by this frame.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return;
        }
        if let Some(n) = nr_open.filter(|n| *n > l.rlim_max) {
            let up = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &up) == 0 {
                return;
            }
        }
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

impl Server {
    /// Starts the back end (4 sources, fault injection on, no busy-wait) on
    /// sockets in a private directory, and waits for them.
    ///
    /// `IRQSTORM_FUZZ_SHORT_MEMFDS=1` sends memfds as short as the input
    /// says (a region larger than its file must then be refused, issue 10
    /// item 1; the regression test replays that); by default they are
    /// extended to cover their regions, so most inputs get past
    /// SET_MEM_TABLE and reach the rings. The run fails when the
    /// process's open fds grow by more than `IRQSTORM_FUZZ_MAX_FD_GROWTH`
    /// (default 64; 0: unchecked) over the run (issue 10 item 2).
    pub fn start() -> Result<Self, StartError> {
        let short_memfds = env_flag(ENV_SHORT_MEMFDS, false)?;
        let max_fd_growth = match std::env::var(ENV_MAX_FD_GROWTH) {
            Err(_) => DEFAULT_MAX_FD_GROWTH,
            Ok(v) => v
                .parse()
                .map_err(|_| StartError::Env(format!("{ENV_MAX_FD_GROWTH}={v}: want a number")))?,
        };
        process_setup();
        let dir = std::env::temp_dir().join(format!("irqstorm-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        if SOCKET_DIR.set(dir.clone()).is_ok() {
            // SAFETY: registers a plain `extern "C" fn()` that only reads a
            // static and removes files.
            unsafe { libc::atexit(remove_socket_dir) };
        }
        let (vu, ctl) = (dir.join("vu.sock"), dir.join("ctl.sock"));
        let args = Args::try_parse_from([
            "irqstorm-backend".into(),
            "--socket-path".into(),
            vu.clone().into_os_string(),
            "--control-socket".into(),
            ctl.clone().into_os_string(),
            "--sources".into(),
            SOURCES.to_string().into(),
            "--fault-injection".into(),
            "--spin-us".into(),
            std::ffi::OsString::from("0"),
        ])
        .map_err(|e| StartError::Args(e.to_string()))?;
        let config = Config::try_from(args).map_err(|e| StartError::Args(e.to_string()))?;
        std::thread::Builder::new()
            .name("irqstorm-backend".into())
            .spawn(move || {
                if let Err(e) = irqstorm_backend::run(config) {
                    eprintln!("irqstorm-fuzz: the back end stopped: {e}");
                }
            })?;
        let wait = Duration::from_secs(20);
        let end = Instant::now() + wait;
        while UnixStream::connect(&ctl).is_err() || !vu.exists() {
            if Instant::now() > end {
                return Err(StartError::NoSockets(wait));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Self {
            dir,
            vu,
            ctl,
            opts: Options {
                short_memfds,
                liveness: LIVENESS,
            },
            max_fd_growth,
            execs: AtomicU64::new(0),
            fd_base: Mutex::new(None),
        })
    }

    /// Runs one input as one connection; checks the well-formed front end on
    /// the first input, every [`CHECK_EVERY`] inputs, and when `check` is set.
    pub fn run(&self, data: &[u8], check: bool) -> Result<Outcome, Violation> {
        let n = self.execs.fetch_add(1, Ordering::Relaxed);
        let ops = decode(data);
        let out = session::connect_and_send(&self.vu, &ops, &self.opts).map_err(|e| match e {
            SessionError::Hang(h) => Violation::Hang(h),
            SessionError::Resources(why) => Violation::Resources {
                execs: n + 1,
                fds: open_fds(),
                why,
            },
        })?;
        if check || n.is_multiple_of(CHECK_EVERY) {
            self.check(n + 1)?;
        }
        Ok(out)
    }

    /// Device 0's statistics from the control socket.
    pub fn stats(&self) -> Result<irqstorm_protocol::control::StatsReply, String> {
        front::stats(&self.ctl, self.opts.liveness)
    }

    /// The well-formed front-end check and the fd bound.
    pub fn check(&self, execs: u64) -> Result<Duration, Violation> {
        let rtt =
            front::check(&self.vu, &self.ctl, SOURCES, self.opts.liveness).map_err(|why| {
                Violation::NotServing {
                    execs,
                    fds: open_fds(),
                    why,
                }
            })?;
        if self.max_fd_growth > 0 {
            let now = open_fds();
            let mut base = self.fd_base.lock().unwrap_or_else(|e| e.into_inner());
            let from = *base.get_or_insert(now);
            if now > from + self.max_fd_growth {
                return Err(Violation::FdLeak {
                    from,
                    to: now,
                    execs,
                    bound: self.max_fd_growth,
                });
            }
        }
        Ok(rtt)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The back end's threads run on (they serve forever); only the
        // socket directory goes.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn server() -> &'static Server {
        static S: OnceLock<Server> = OnceLock::new();
        S.get_or_init(|| Server::start().expect("starting the back end"))
    }

    /// The seeds set the device up the way QEMU does: every message of the
    /// first two is taken, questions are answered, and a well-formed front
    /// end is served after each.
    #[test]
    fn seeds_are_served() {
        let s = server();
        for (name, data) in seeds::seeds() {
            let mut before = s.stats().unwrap().stats;
            let mut out = s
                .run(&data, true)
                .unwrap_or_else(|v| panic!("seed {name}: {v}"));
            let mut after = s.stats().unwrap().stats;
            // A seed's session ends with a disconnect, which resets the device:
            // work still queued for the vring worker then (the storm seed's
            // 20 ms of raising, a control request's answer) is dropped. A loaded
            // host runs those threads late (a cold CI run: a GET_INFO seed's
            // request was never counted). Retry a few times: the check is that
            // the seed is served, not how fast.
            let served = |b: &irqstorm_protocol::stats::Stats,
                          a: &irqstorm_protocol::stats::Stats| {
                a.device.ctrl_requests - b.device.ctrl_requests >= 2
                    && (name != "three-queues-storm" || a.totals.records > b.totals.records)
            };
            for _ in 0..4 {
                if name == "reset-and-odd-headers" || served(&before, &after) {
                    break;
                }
                before = after;
                out = s
                    .run(&data, true)
                    .unwrap_or_else(|v| panic!("seed {name}: {v}"));
                after = s.stats().unwrap().stats;
            }
            assert!(out.sent > 8 && out.answered > 0, "seed {name}: {out:?}");
            if name == "reset-and-odd-headers" {
                continue;
            }
            assert!(!out.closed_early, "seed {name}: {out:?}");
            // The seed's own control requests were answered (the check adds one).
            let requests = after.device.ctrl_requests - before.device.ctrl_requests;
            assert!(requests >= 2, "seed {name}: {requests} control requests");
            if name == "three-queues-storm" {
                assert!(
                    after.totals.raised > before.totals.raised,
                    "seed {name}: no storm"
                );
                assert!(
                    after.totals.records > before.totals.records,
                    "seed {name}: no record"
                );
            }
        }
    }

    /// Garbage, an empty connection and a header promising a body that
    /// never comes all end with the connection, and the device serves on.
    #[test]
    fn garbage_connections_end_and_device_serves_on() {
        let s = server();
        for data in [
            &b""[..],
            &[1, 1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0][..],
            &[0x55; 300][..],
        ] {
            s.run(data, true).unwrap();
        }
    }
}
