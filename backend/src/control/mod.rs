// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host control API: a Unix socket (mode 0600) speaking line-delimited JSON
//! (docs/device-spec.md §9), and `irqstorm-backend ctl`. The requests and
//! replies are the types of `irqstorm_protocol::control`.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use irqstorm_protocol::client::{Client, DEFAULT_TIMEOUT};
use irqstorm_protocol::control::{
    Configure, ControlStats, Done, FaultReply, InfoReply, Refusal, Reply, Request, Response,
    Sources, StartReply, StatsReply, StopReply,
};
use log::{debug, info, warn};
use serde_json::Value;
use thiserror::Error as ThisError;

use crate::args::CtlCmd;
use crate::backend::Shared;
use crate::device::now_ns;
use crate::protocol::{Status, SOURCE_ALL};

pub use irqstorm_protocol::control::MAX_LINE;

/// Most simultaneous control connections.
pub const MAX_CONNECTIONS: usize = 16;
/// Most requests on one connection.
pub const MAX_REQUESTS_PER_CONNECTION: u64 = 1_000_000;

mod conns;

use conns::{read_line, Conn, ConnTable, Line};
pub use conns::{IDLE_TIMEOUT, LINE_TIMEOUT};

/// Errors of the control socket.
#[derive(Debug, ThisError)]
pub enum Error {
    /// Binding the socket failed.
    #[error("control socket {0}")]
    Bind(#[from] crate::socket::Error),
    /// Spawning the server thread failed.
    #[error("control socket {0}: {1}")]
    Spawn(PathBuf, std::io::Error),
}

/// Process-wide control-socket counters.
#[derive(Debug, Default)]
pub struct ControlCounters {
    /// Lines that were not valid requests.
    pub malformed: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Connections refused (could not be set up).
    pub refused: AtomicU64,
    /// Connections shut down to make room for a new one (table full).
    pub evicted: AtomicU64,
    /// Request lines not complete within [`LINE_TIMEOUT`] (connection closed).
    pub slow_lines: AtomicU64,
}

struct Server {
    devices: Vec<Arc<Shared>>,
    counters: ControlCounters,
    conns: ConnTable,
}

/// Binds the control socket and serves it on a thread.
pub fn spawn_server(path: &Path, devices: Vec<Arc<Shared>>) -> Result<(), Error> {
    let listener = crate::socket::bind_owner_only(path)?;
    info!("control socket at {}", path.display());
    let server = Arc::new(Server {
        devices,
        counters: ControlCounters::default(),
        conns: ConnTable::new(MAX_CONNECTIONS),
    });
    std::thread::Builder::new()
        .name("irqstorm-ctl".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let slot = match server.conns.admit(&conn) {
                    Ok((slot, evicted)) => {
                        if evicted {
                            server.counters.evicted.fetch_add(1, Ordering::Relaxed);
                        }
                        slot
                    }
                    Err(e) => {
                        server.counters.refused.fetch_add(1, Ordering::Relaxed);
                        let why = format!("connection not set up: {e}");
                        let _ = conn.write_all(
                            Reply::<Done>::Refused(Refusal::new(why))
                                .to_line()
                                .as_bytes(),
                        );
                        continue;
                    }
                };
                let s = server.clone();
                let conn_slot = slot.clone();
                let spawned = std::thread::Builder::new()
                    .name("irqstorm-ctl-conn".into())
                    .spawn(move || {
                        s.serve(conn, &conn_slot);
                        s.conns.remove(&conn_slot);
                    });
                if spawned.is_err() {
                    server.counters.refused.fetch_add(1, Ordering::Relaxed);
                    server.conns.remove(&slot);
                }
            }
        })
        .map_err(|e| Error::Spawn(path.to_path_buf(), e))?;
    Ok(())
}

impl Server {
    fn serve(&self, conn: UnixStream, slot: &Conn) {
        let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
        let Ok(mut w) = conn.try_clone() else { return };
        let mut r = BufReader::new(conn);
        for _ in 0..MAX_REQUESTS_PER_CONNECTION {
            let reply = match read_line(&mut r, slot, IDLE_TIMEOUT, LINE_TIMEOUT) {
                Ok(Line::Eof) | Err(_) => return,
                Ok(Line::TooSlow) => {
                    self.counters.slow_lines.fetch_add(1, Ordering::Relaxed);
                    let why = format!("request line not complete within {LINE_TIMEOUT:?}");
                    let _ = w.write_all(
                        Reply::<Done>::Refused(Refusal::new(why))
                            .to_line()
                            .as_bytes(),
                    );
                    return;
                }
                Ok(Line::TooLong) => {
                    self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    let refusal = Reply::<Done>::Refused(Refusal::new("line too long"));
                    let _ = w.write_all(refusal.to_line().as_bytes());
                    return;
                }
                Ok(Line::Data(d)) => {
                    if d.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    self.handle_line(&d)
                }
            };
            if w.write_all(reply.to_line().as_bytes()).is_err() {
                return;
            }
            slot.line_done();
        }
    }

    fn handle_line(&self, line: &[u8]) -> Reply<Response> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let handled = Request::from_line(line)
            .map_err(|e| e.to_string())
            .and_then(|req| self.handle(&req));
        match handled {
            Ok(reply) => reply,
            Err(e) => self.bad(e),
        }
    }

    /// A malformed request or one the server cannot serve (counted).
    fn bad(&self, e: String) -> Reply<Response> {
        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
        debug!("control: {e}");
        Reply::Refused(Refusal::new(e))
    }

    /// Serves a request. `Err` is a malformed request (counted); a device
    /// that refuses answers `Ok(Reply::Refused)` with its status.
    fn handle(&self, req: &Request) -> Result<Reply<Response>, String> {
        let di = req.device();
        let dev = usize::try_from(di)
            .ok()
            .and_then(|i| self.devices.get(i))
            .ok_or_else(|| format!("no device {di} (have {})", self.devices.len()))?;
        let done = || Response::Done(Done {});
        Ok(match *req {
            Request::Info { .. } => {
                let d = dev.device();
                let l = d.limits();
                Reply::Ok(Response::Info(InfoReply {
                    device: di,
                    devices: self.devices.len() as u32,
                    virtio_id: dev.virtio_id,
                    connected: dev.connected.load(Ordering::Acquire),
                    num_sources: l.num_sources,
                    max_rate_hz: l.max_rate_hz,
                    max_outstanding: l.max_outstanding,
                    min_period_ns: l.min_period_ns,
                    max_burst: l.max_burst,
                    device_features: d.device_features(),
                    negotiated_features: d.negotiated(),
                    host_ns: now_ns(),
                    spin: Some(dev.spin.clone()),
                }))
            }
            Request::Configure(c) => {
                let st = dev.device().configure(c.source, &c.body(), true);
                dev.wake_generator();
                status_reply(st, done())
            }
            Request::Start {
                source,
                start_delay_ns,
                ..
            } => {
                let source = source.map_or(SOURCE_ALL, Sources::index);
                let r = dev
                    .device()
                    .start(source, start_delay_ns.unwrap_or(0), now_ns());
                dev.wake_generator();
                match r {
                    Ok(t0) => Reply::Ok(Response::Start(StartReply { t0 })),
                    Err(st) => status_reply(st, done()),
                }
            }
            Request::Stop { source, .. } => {
                let r = dev.device().stop(source.map_or(SOURCE_ALL, Sources::index));
                dev.wake_generator();
                match r {
                    Ok(raised) => Reply::Ok(Response::Stop(StopReply { raised })),
                    Err(st) => status_reply(st, done()),
                }
            }
            Request::Stats { buckets, .. } => {
                let stats = dev.device().stats(buckets.unwrap_or(false));
                Reply::Ok(Response::Stats(Box::new(StatsReply {
                    device: di,
                    stats,
                    control: ControlStats {
                        requests: self.counters.requests.load(Ordering::Relaxed),
                        malformed: self.counters.malformed.load(Ordering::Relaxed),
                        refused: self.counters.refused.load(Ordering::Relaxed),
                        evicted: self.counters.evicted.load(Ordering::Relaxed),
                        slow_lines: self.counters.slow_lines.load(Ordering::Relaxed),
                    },
                    front_end: dev.front_end.snapshot(),
                })))
            }
            Request::ResetStats { .. } => {
                dev.device().reset_stats();
                Reply::Ok(done())
            }
            Request::Fault { kind, count, .. } => {
                let count = count.unwrap_or(0).max(1);
                dev.device().inject(kind, count)?;
                // Inject into buffers that are already posted.
                dev.with_eventq(|d, q| ((), d.flush(now_ns(), q)));
                Reply::Ok(Response::Fault(FaultReply { kind, count }))
            }
        })
    }
}

/// The reply of a device request: `ok` for `Status::Ok`, else the status.
fn status_reply(st: Status, ok: Response) -> Reply<Response> {
    if st == Status::Ok {
        Reply::Ok(ok)
    } else {
        Reply::Refused(Refusal::status(st))
    }
}

/// What `irqstorm-backend ctl` sends: a typed request, or `raw` JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum CtlRequest {
    /// A request of one of the `ctl` subcommands.
    Typed(Request),
    /// The JSON of `ctl raw`, sent as given (it may be malformed on purpose).
    Raw(Value),
}

/// Builds the request of a `ctl` subcommand.
pub fn ctl_request(device: u32, cmd: &CtlCmd) -> Result<CtlRequest, String> {
    // Device 0 is the default: leave it out, as the line always was.
    let device = Some(device).filter(|&d| d != 0);
    let source = |s: Option<u16>| s.map(Sources::One);
    Ok(CtlRequest::Typed(match *cmd {
        CtlCmd::Info => Request::Info { device },
        CtlCmd::Configure {
            source,
            mode,
            jitter,
            burst,
            rate_hz,
            period_ns,
            count,
            duration_ns,
            jitter_ns,
            moderation_events,
            moderation_delay_us,
            seed,
        } => Request::Configure(Configure {
            device,
            source,
            mode,
            jitter: Some(jitter),
            burst,
            rate_hz,
            period_ns,
            count: Some(count),
            duration_ns: Some(duration_ns),
            jitter_ns: Some(jitter_ns),
            moderation_events: Some(moderation_events),
            moderation_delay_us: Some(moderation_delay_us),
            seed: Some(seed),
        }),
        CtlCmd::Start {
            source: s,
            start_delay_ns,
        } => Request::Start {
            device,
            source: source(s),
            start_delay_ns: Some(start_delay_ns),
        },
        CtlCmd::Stop { source: s } => Request::Stop {
            device,
            source: source(s),
        },
        CtlCmd::Stats { buckets } => Request::Stats {
            device,
            buckets: Some(buckets),
        },
        CtlCmd::ResetStats => Request::ResetStats { device },
        CtlCmd::Fault { kind, count } => Request::Fault {
            device,
            kind,
            count: Some(count),
        },
        // Sent as given: `--device` does not apply to `raw`.
        CtlCmd::Raw { ref json } => {
            let v = serde_json::from_str(json).map_err(|e| format!("bad JSON: {e}"))?;
            return Ok(CtlRequest::Raw(v));
        }
    }))
}

/// Runs `irqstorm-backend ctl`: prints the reply, returns whether it was ok.
pub fn run_ctl(path: &Path, device: u32, cmd: &CtlCmd) -> Result<bool, String> {
    fn print<T: serde::Serialize>(reply: &Reply<T>) -> bool {
        match serde_json::to_string_pretty(reply) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("irqstorm-backend ctl: reply: {e}"),
        }
        matches!(reply, Reply::Ok(_))
    }
    let req = ctl_request(device, cmd)?;
    let mut client = Client::connect(path, DEFAULT_TIMEOUT).map_err(|e| e.to_string())?;
    let ok = match req {
        CtlRequest::Typed(req) => print(&client.exchange(&req).map_err(|e| e.to_string())?.1),
        CtlRequest::Raw(v) => print(&client.call_value(&v).map_err(|e| e.to_string())?),
    };
    if !ok {
        warn!("request failed");
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::lock;
    use crate::protocol::{FaultKind, Jitter, Mode};
    use crate::schedule::Limits;
    use serde_json::json;

    fn server(fault: bool) -> Server {
        let lim = Limits {
            num_sources: 4,
            max_rate_hz: 1000,
            max_outstanding: 16,
            min_period_ns: 2000,
            max_burst: 8,
        };
        Server {
            devices: vec![
                Arc::new(Shared::new(0, lim, fault, 21).unwrap()),
                Arc::new(Shared::new(1, lim, fault, 21).unwrap()),
            ],
            counters: ControlCounters::default(),
            conns: ConnTable::new(MAX_CONNECTIONS),
        }
    }

    /// The reply line to `line`, as the client reads it.
    fn call(s: &Server, line: &str) -> Value {
        serde_json::from_str(&s.handle_line(line.as_bytes()).to_line()).unwrap()
    }

    #[test]
    fn commands_and_replies() {
        let s = server(false);
        let r = call(&s, r#"{"cmd":"info","device":1}"#);
        assert_eq!(r["ok"], true);
        assert_eq!(r["device"], 1);
        assert_eq!(r["num_sources"], 4);
        assert_eq!(r["connected"], false);
        let r = call(
            &s,
            r#"{"cmd":"configure","source":1,"mode":"storm","rate_hz":500,"burst":2,"jitter":"exponential"}"#,
        );
        assert_eq!(r, json!({"ok": true}));
        let r = call(
            &s,
            r#"{"cmd":"start","source":1,"start_delay_ns":1000000000}"#,
        );
        assert_eq!(r["ok"], true);
        assert!(r["t0"].as_u64().unwrap() > 0);
        assert!(lock(&s.devices[0].dev).is_running(1));
        // Busy, out of range (rate cap), invalid (OFF source), unsupported never for host.
        let r = call(&s, r#"{"cmd":"configure","source":1,"mode":"oneshot"}"#);
        assert_eq!(r["error"], "busy");
        assert_eq!(r["status"], 3);
        let r = call(
            &s,
            r#"{"cmd":"configure","source":2,"mode":"storm","rate_hz":600}"#,
        );
        assert_eq!(r["ok"], true);
        let r = call(&s, r#"{"cmd":"start","source":2}"#);
        assert_eq!(r["error"], "out_of_range");
        let r = call(&s, r#"{"cmd":"start","source":3}"#);
        assert_eq!(r["error"], "invalid");
        let r = call(
            &s,
            r#"{"cmd":"configure","source":3,"mode":"periodic","period_ns":1000000,"moderation_events":4}"#,
        );
        assert_eq!(r["ok"], true);
        let r = call(&s, r#"{"cmd":"stop","source":"all"}"#);
        assert_eq!(r["ok"], true);
        assert_eq!(r["raised"], 0);
        let r = call(&s, r#"{"cmd":"stats","buckets":true}"#);
        assert_eq!(r["ok"], true);
        assert_eq!(r["stats"]["sources"].as_array().unwrap().len(), 4);
        assert_eq!(r["stats"]["sources"][1]["mode"], "storm");
        assert_eq!(r["stats"]["totals"]["conserved"], true);
        assert_eq!(call(&s, r#"{"cmd":"reset_stats"}"#)["ok"], true);
        // Fault injection is off.
        let r = call(&s, r#"{"cmd":"fault","kind":"zero_count","count":3}"#);
        assert_eq!(r["ok"], false);
        assert_eq!(s.counters.malformed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn malformed_requests_are_answered_and_counted() {
        let s = server(true);
        // Each line with a fragment of the error it must get.
        let bad = [
            ("not json", "bad JSON: "),
            ("[1,2]", "request must be a JSON object"),
            (r#"{"nocmd":1}"#, "missing \"cmd\""),
            (r#"{"cmd":"nope"}"#, "unknown cmd \"nope\""),
            (r#"{"cmd":"info","device":2}"#, "no device 2 (have 2)"),
            (
                r#"{"cmd":"info","device":-1}"#,
                "info: invalid value: integer `-1`",
            ),
            (
                r#"{"cmd":"info","extra":true}"#,
                "info: unknown field `extra`",
            ),
            (
                r#"{"cmd":"configure","mode":"storm"}"#,
                "missing field `source`",
            ),
            (
                r#"{"cmd":"configure","source":70000,"mode":"storm"}"#,
                "`70000`",
            ),
            (
                r#"{"cmd":"configure","source":0,"mode":"fast"}"#,
                "\"mode\" must be off|oneshot|periodic|storm",
            ),
            (
                r#"{"cmd":"configure","source":0,"mode":"storm","jitter":"gauss"}"#,
                "\"jitter\" must be none|uniform|exponential",
            ),
            (
                r#"{"cmd":"configure","source":0,"mode":"storm","rate_hz":5000000000}"#,
                "`5000000000`",
            ),
            (
                r#"{"cmd":"configure","source":0,"mode":"storm","burst":70000}"#,
                "`70000`",
            ),
            (
                r#"{"cmd":"configure","source":0,"mode":"storm","seed":1.5}"#,
                "`1.5`",
            ),
            (
                r#"{"cmd":"start","source":"some"}"#,
                "\"source\" must be an index or \"all\"",
            ),
            (r#"{"cmd":"stats","buckets":1}"#, "expected a boolean"),
            (
                r#"{"cmd":"fault","kind":"melt"}"#,
                "\"kind\" must be dup_used_id|",
            ),
            (
                r#"{"cmd":"fault","kind":"short_len","count":4294967296}"#,
                "`4294967296`",
            ),
        ];
        for (i, (b, want)) in bad.iter().enumerate() {
            let r = call(&s, b);
            assert_eq!(r["ok"], false, "{b}");
            let e = r["error"].as_str().unwrap();
            assert!(e.contains(want), "{b}: {e:?} lacks {want:?}");
            assert_eq!(s.counters.malformed.load(Ordering::Relaxed), i as u64 + 1);
        }
        // Valid request, device rejects: not a malformed line.
        let r = call(
            &s,
            r#"{"cmd":"configure","source":9,"mode":"storm","rate_hz":1}"#,
        );
        assert_eq!(r["error"], "out_of_range");
        // Armed fault needs the driver to have negotiated it.
        let r = call(&s, r#"{"cmd":"fault","kind":"short_len"}"#);
        assert_eq!(r["ok"], false);
        lock(&s.devices[0].dev).set_negotiated(1 << crate::protocol::IRQSTORM_F_FAULT_INJECT);
        let r = call(&s, r#"{"cmd":"fault","kind":"short_len","count":2}"#);
        assert_eq!(r["ok"], true, "{r}");
    }

    #[test]
    fn random_lines_never_panic() {
        let s = server(true);
        let mut rng = crate::schedule::Prng::new(3);
        let words = [
            "{",
            "}",
            "\"cmd\"",
            ":",
            "\"configure\"",
            ",",
            "\"source\"",
            "1",
            "-1",
            "1e30",
            "\"mode\"",
            "\"storm\"",
            "\"rate_hz\"",
            "null",
            "[",
            "]",
            "true",
            "\"device\"",
            "\"start\"",
            "\"fault\"",
            "\"kind\"",
            "\"seq_gap\"",
            "18446744073709551616",
            "\"\\u0000\"",
            "\u{fffd}",
        ];
        for _ in 0..3000 {
            let n = rng.next_u64() % 12;
            let mut line = String::new();
            for _ in 0..n {
                line.push_str(words[(rng.next_u64() % words.len() as u64) as usize]);
            }
            let r = call(&s, &line);
            assert!(r["ok"].is_boolean());
        }
        let bytes: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
        assert!(matches!(s.handle_line(&bytes), Reply::Refused(_)));
    }

    /// The JSON a `ctl` request puts on the wire.
    fn wire(r: CtlRequest) -> Value {
        match r {
            CtlRequest::Typed(r) => serde_json::from_str(&r.to_line()).unwrap(),
            CtlRequest::Raw(v) => v,
        }
    }

    #[test]
    fn ctl_builds_requests() {
        let v = ctl_request(
            2,
            &CtlCmd::Start {
                source: Some(3),
                start_delay_ns: 5,
            },
        )
        .unwrap();
        assert_eq!(
            wire(v),
            json!({"cmd":"start","source":3,"start_delay_ns":5,"device":2})
        );
        let v = ctl_request(0, &CtlCmd::Stop { source: None }).unwrap();
        assert_eq!(wire(v), json!({"cmd":"stop"}));
        let v = ctl_request(
            0,
            &CtlCmd::Raw {
                json: r#"{"cmd":"info"}"#.into(),
            },
        )
        .unwrap();
        assert_eq!(wire(v), json!({"cmd":"info"}));
        let raw = CtlCmd::Raw {
            json: r#"{"cmd":"info"}"#.into(),
        };
        assert_eq!(wire(ctl_request(1, &raw).unwrap()), json!({"cmd":"info"}));
        let v = ctl_request(
            1,
            &CtlCmd::Fault {
                kind: FaultKind::SeqGap,
                count: 2,
            },
        )
        .unwrap();
        assert_eq!(
            wire(v),
            json!({"cmd":"fault","kind":"seq_gap","count":2,"device":1})
        );
        assert!(ctl_request(0, &CtlCmd::Raw { json: "{".into() }).is_err());
        let s = server(false);
        let v = ctl_request(
            0,
            &CtlCmd::Configure {
                source: 0,
                mode: Mode::Periodic,
                jitter: Jitter::Uniform,
                burst: None,
                rate_hz: None,
                period_ns: Some(1_000_000),
                count: 10,
                duration_ns: 0,
                jitter_ns: 1000,
                moderation_events: 0,
                moderation_delay_us: 0,
                seed: 7,
            },
        )
        .unwrap();
        let CtlRequest::Typed(v) = v else {
            panic!("{v:?}")
        };
        assert!(matches!(s.handle(&v), Ok(Reply::Ok(Response::Done(_)))));
    }
}
