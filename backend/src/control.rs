// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host control API: a Unix socket (mode 0600) speaking line-delimited JSON
//! (docs/device-spec.md §9), and the client used by `irqstorm-backend ctl`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};
use serde_json::{json, Map, Value};
use thiserror::Error as ThisError;

use crate::args::CtlCmd;
use crate::backend::{lock, Shared};
use crate::device::{now_ns, FaultKind};
use crate::protocol::{ConfigureBody, Jitter, Mode, Status, SOURCE_ALL};

/// Longest request line (bytes, newline included).
pub const MAX_LINE: usize = 64 * 1024;
/// Most simultaneous control connections.
pub const MAX_CONNECTIONS: usize = 16;
/// Most requests on one connection.
pub const MAX_REQUESTS_PER_CONNECTION: u64 = 1_000_000;
/// Idle timeout of a control connection.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Errors of the control socket.
#[derive(Debug, ThisError)]
pub enum Error {
    /// Binding / chmod failed.
    #[error("control socket {0}: {1}")]
    Bind(PathBuf, std::io::Error),
    /// A non-socket file is in the way.
    #[error("control socket {0}: exists and is not a socket")]
    NotSocket(PathBuf),
    /// Client I/O.
    #[error("control client: {0}")]
    Io(#[from] std::io::Error),
    /// Client got a non-JSON reply.
    #[error("control client: bad reply: {0}")]
    BadReply(String),
}

/// Process-wide control-socket counters.
#[derive(Debug, Default)]
pub struct ControlCounters {
    /// Lines that were not valid requests.
    pub malformed: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Connections refused (limit).
    pub refused: AtomicU64,
}

struct Server {
    devices: Vec<Arc<Shared>>,
    counters: ControlCounters,
    conns: AtomicUsize,
}

/// Binds the control socket and serves it on a thread.
pub fn spawn_server(path: &Path, devices: Vec<Arc<Shared>>) -> Result<(), Error> {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if !md.file_type().is_socket() {
            return Err(Error::NotSocket(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::Bind(path.to_path_buf(), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::Bind(path.to_path_buf(), e))?;
    info!("control socket at {}", path.display());
    let server = Arc::new(Server {
        devices,
        counters: ControlCounters::default(),
        conns: AtomicUsize::new(0),
    });
    std::thread::Builder::new()
        .name("irqstorm-ctl".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if server.conns.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    server.conns.fetch_sub(1, Ordering::AcqRel);
                    server.counters.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = conn.write_all(b"{\"ok\":false,\"error\":\"too many connections\"}\n");
                    continue;
                }
                let s = server.clone();
                let spawned = std::thread::Builder::new()
                    .name("irqstorm-ctl-conn".into())
                    .spawn(move || {
                        s.serve(conn);
                        s.conns.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    server.conns.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })
        .map_err(|e| Error::Bind(path.to_path_buf(), e))?;
    Ok(())
}

enum Line {
    Data(Vec<u8>),
    TooLong,
    Eof,
}

fn read_line(r: &mut BufReader<UnixStream>) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    // A line without newline is still a request if it ended at EOF.
    if buf.last() != Some(&b'\n') && buf.len() >= MAX_LINE {
        return Ok(Line::TooLong);
    }
    Ok(Line::Data(buf))
}

impl Server {
    fn serve(&self, conn: UnixStream) {
        let _ = conn.set_read_timeout(Some(IDLE_TIMEOUT));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
        let Ok(mut w) = conn.try_clone() else { return };
        let mut r = BufReader::new(conn);
        for _ in 0..MAX_REQUESTS_PER_CONNECTION {
            let reply = match read_line(&mut r) {
                Ok(Line::Eof) | Err(_) => return,
                Ok(Line::TooLong) => {
                    self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    let _ = w.write_all(b"{\"ok\":false,\"error\":\"line too long\"}\n");
                    return;
                }
                Ok(Line::Data(d)) => {
                    if d.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    self.handle_line(&d)
                }
            };
            let mut s = reply.to_string();
            s.push('\n');
            if w.write_all(s.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn handle_line(&self, line: &[u8]) -> Value {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let req: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => return self.bad(format!("bad JSON: {e}")),
        };
        match self.handle(&req) {
            Ok(v) => v,
            Err(e) => self.bad(e),
        }
    }

    fn bad(&self, e: String) -> Value {
        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
        debug!("control: {e}");
        json!({"ok": false, "error": e})
    }

    fn handle(&self, req: &Value) -> Result<Value, String> {
        let obj = req.as_object().ok_or("request must be a JSON object")?;
        let cmd = obj
            .get("cmd")
            .and_then(Value::as_str)
            .ok_or("missing \"cmd\"")?;
        let di = opt_u64(obj, "device")?.unwrap_or(0);
        let dev = usize::try_from(di)
            .ok()
            .and_then(|i| self.devices.get(i))
            .ok_or_else(|| format!("no device {di} (have {})", self.devices.len()))?;
        match cmd {
            "info" => {
                only(obj, &["cmd", "device"])?;
                let d = lock(&dev.dev);
                let l = d.limits();
                Ok(json!({
                    "ok": true,
                    "device": dev.index,
                    "devices": self.devices.len(),
                    "virtio_id": dev.virtio_id,
                    "connected": dev.connected.load(Ordering::Acquire),
                    "num_sources": l.num_sources,
                    "max_rate_hz": l.max_rate_hz,
                    "max_outstanding": l.max_outstanding,
                    "min_period_ns": l.min_period_ns,
                    "max_burst": l.max_burst,
                    "device_features": d.device_features(),
                    "negotiated_features": d.negotiated(),
                    "host_ns": now_ns(),
                }))
            }
            "configure" => {
                only(
                    obj,
                    &[
                        "cmd",
                        "device",
                        "source",
                        "mode",
                        "jitter",
                        "burst",
                        "rate_hz",
                        "period_ns",
                        "count",
                        "duration_ns",
                        "jitter_ns",
                        "moderation_events",
                        "moderation_delay_us",
                        "seed",
                    ],
                )?;
                let source = req_u16(obj, "source")?;
                let mode = obj
                    .get("mode")
                    .and_then(Value::as_str)
                    .and_then(Mode::from_name)
                    .ok_or("\"mode\" must be off|oneshot|periodic|storm")?;
                let jitter = match obj.get("jitter") {
                    None => Jitter::None,
                    Some(v) => v
                        .as_str()
                        .and_then(Jitter::from_name)
                        .ok_or("\"jitter\" must be none|uniform|exponential")?,
                };
                let burst = match opt_u64(obj, "burst")? {
                    Some(b) => u16::try_from(b).map_err(|_| "\"burst\" out of range")?,
                    None if mode == Mode::Storm => 1,
                    None => 0,
                };
                let body = ConfigureBody {
                    mode: mode as u8,
                    jitter: jitter as u8,
                    burst,
                    rate_hz: opt_u32(obj, "rate_hz")?,
                    period_ns: opt_u64(obj, "period_ns")?.unwrap_or(0),
                    count: opt_u64(obj, "count")?.unwrap_or(0),
                    duration_ns: opt_u64(obj, "duration_ns")?.unwrap_or(0),
                    jitter_ns: opt_u64(obj, "jitter_ns")?.unwrap_or(0),
                    moderation_events: opt_u32(obj, "moderation_events")?,
                    moderation_delay_us: opt_u32(obj, "moderation_delay_us")?,
                    seed: opt_u64(obj, "seed")?.unwrap_or(0),
                };
                let st = lock(&dev.dev).configure(source, &body, true);
                dev.wake_generator();
                status_reply(st, json!({}))
            }
            "start" => {
                only(obj, &["cmd", "device", "source", "start_delay_ns"])?;
                let source = source_or_all(obj)?;
                let delay = opt_u64(obj, "start_delay_ns")?.unwrap_or(0);
                let r = lock(&dev.dev).start(source, delay, now_ns());
                dev.wake_generator();
                match r {
                    Ok(t0) => Ok(json!({"ok": true, "t0": t0})),
                    Err(st) => status_reply(st, json!({})),
                }
            }
            "stop" => {
                only(obj, &["cmd", "device", "source"])?;
                let source = source_or_all(obj)?;
                let r = lock(&dev.dev).stop(source);
                dev.wake_generator();
                match r {
                    Ok(n) => Ok(json!({"ok": true, "raised": n})),
                    Err(st) => status_reply(st, json!({})),
                }
            }
            "stats" => {
                only(obj, &["cmd", "device", "buckets"])?;
                let buckets = match obj.get("buckets") {
                    None => false,
                    Some(v) => v.as_bool().ok_or("\"buckets\" must be a boolean")?,
                };
                let stats = lock(&dev.dev).stats_json(buckets);
                Ok(json!({
                    "ok": true,
                    "device": dev.index,
                    "stats": stats,
                    "control": {
                        "requests": self.counters.requests.load(Ordering::Relaxed),
                        "malformed": self.counters.malformed.load(Ordering::Relaxed),
                        "refused": self.counters.refused.load(Ordering::Relaxed),
                    },
                }))
            }
            "reset_stats" => {
                only(obj, &["cmd", "device"])?;
                lock(&dev.dev).reset_stats();
                Ok(json!({"ok": true}))
            }
            "fault" => {
                only(obj, &["cmd", "device", "kind", "count"])?;
                let kind = obj
                    .get("kind")
                    .and_then(Value::as_str)
                    .and_then(FaultKind::from_name)
                    .ok_or("\"kind\" must be dup_used_id|short_len|long_len|bad_source|zero_count|seq_gap")?;
                let count = opt_u32(obj, "count")?.max(1);
                lock(&dev.dev).inject(kind, count)?;
                // Inject into buffers that are already posted.
                dev.with_eventq(|d, q| ((), d.flush(now_ns(), q)));
                Ok(json!({"ok": true, "kind": kind.name(), "count": count}))
            }
            other => Err(format!("unknown cmd {other:?}")),
        }
    }
}

fn status_reply(st: Status, extra: Value) -> Result<Value, String> {
    if st == Status::Ok {
        let mut v = json!({"ok": true});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        Ok(v)
    } else {
        Ok(json!({"ok": false, "error": st.name(), "status": st as u16}))
    }
}

fn only(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("unknown field {k:?}"));
        }
    }
    Ok(())
}

fn opt_u64(obj: &Map<String, Value>, k: &str) -> Result<Option<u64>, String> {
    match obj.get(k) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{k:?} must be a non-negative integer")),
    }
}

fn opt_u32(obj: &Map<String, Value>, k: &str) -> Result<u32, String> {
    match opt_u64(obj, k)? {
        None => Ok(0),
        Some(v) => u32::try_from(v).map_err(|_| format!("{k:?} out of range")),
    }
}

fn req_u16(obj: &Map<String, Value>, k: &str) -> Result<u16, String> {
    let v = opt_u64(obj, k)?.ok_or_else(|| format!("missing {k:?}"))?;
    u16::try_from(v).map_err(|_| format!("{k:?} out of range"))
}

fn source_or_all(obj: &Map<String, Value>) -> Result<u16, String> {
    match obj.get("source") {
        None => Ok(SOURCE_ALL),
        Some(Value::String(s)) if s == "all" => Ok(SOURCE_ALL),
        Some(_) => req_u16(obj, "source"),
    }
}

/// Sends one request line and returns the parsed reply.
pub fn request(path: &Path, req: &Value) -> Result<Value, Error> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = req.to_string();
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut reply = String::new();
    r.by_ref().take(64 * 1024 * 1024).read_line(&mut reply)?;
    serde_json::from_str(&reply).map_err(|_| Error::BadReply(reply))
}

/// Builds the JSON request of a `ctl` subcommand.
pub fn ctl_request(device: u32, cmd: &CtlCmd) -> Result<Value, String> {
    let v = match cmd {
        CtlCmd::Info => json!({"cmd": "info"}),
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
        } => {
            let mut v = json!({
                "cmd": "configure", "source": source, "mode": mode, "jitter": jitter,
                "count": count, "duration_ns": duration_ns, "jitter_ns": jitter_ns,
                "moderation_events": moderation_events,
                "moderation_delay_us": moderation_delay_us, "seed": seed,
            });
            if let Some(b) = burst {
                v["burst"] = json!(b);
            }
            if let Some(r) = rate_hz {
                v["rate_hz"] = json!(r);
            }
            if let Some(p) = period_ns {
                v["period_ns"] = json!(p);
            }
            v
        }
        CtlCmd::Start {
            source,
            start_delay_ns,
        } => {
            let mut v = json!({"cmd": "start", "start_delay_ns": start_delay_ns});
            if let Some(s) = source {
                v["source"] = json!(s);
            }
            v
        }
        CtlCmd::Stop { source } => {
            let mut v = json!({"cmd": "stop"});
            if let Some(s) = source {
                v["source"] = json!(s);
            }
            v
        }
        CtlCmd::Stats { buckets } => json!({"cmd": "stats", "buckets": buckets}),
        CtlCmd::ResetStats => json!({"cmd": "reset_stats"}),
        CtlCmd::Fault { kind, count } => json!({"cmd": "fault", "kind": kind, "count": count}),
        CtlCmd::Raw { json } => {
            return serde_json::from_str(json).map_err(|e| format!("bad JSON: {e}"));
        }
    };
    let mut v = v;
    if device != 0 {
        v["device"] = json!(device);
    }
    Ok(v)
}

/// Runs `irqstorm-backend ctl`: prints the reply, returns whether it was ok.
pub fn run_ctl(path: &Path, device: u32, cmd: &CtlCmd) -> Result<bool, String> {
    let req = ctl_request(device, cmd)?;
    let reply = request(path, &req).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&reply).unwrap_or_else(|_| reply.to_string())
    );
    if reply.get("ok") != Some(&Value::Bool(true)) {
        warn!("request failed");
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Limits;

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
            conns: AtomicUsize::new(0),
        }
    }

    fn call(s: &Server, line: &str) -> Value {
        s.handle_line(line.as_bytes())
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
        let bad = [
            "not json",
            "[1,2]",
            r#"{"nocmd":1}"#,
            r#"{"cmd":"nope"}"#,
            r#"{"cmd":"info","device":2}"#,
            r#"{"cmd":"info","device":-1}"#,
            r#"{"cmd":"info","extra":true}"#,
            r#"{"cmd":"configure","mode":"storm"}"#,
            r#"{"cmd":"configure","source":70000,"mode":"storm"}"#,
            r#"{"cmd":"configure","source":0,"mode":"fast"}"#,
            r#"{"cmd":"configure","source":0,"mode":"storm","jitter":"gauss"}"#,
            r#"{"cmd":"configure","source":0,"mode":"storm","rate_hz":5000000000}"#,
            r#"{"cmd":"configure","source":0,"mode":"storm","burst":70000}"#,
            r#"{"cmd":"configure","source":0,"mode":"storm","seed":1.5}"#,
            r#"{"cmd":"start","source":"some"}"#,
            r#"{"cmd":"stats","buckets":1}"#,
            r#"{"cmd":"fault","kind":"melt"}"#,
            r#"{"cmd":"fault","kind":"short_len","count":4294967296}"#,
        ];
        for (i, b) in bad.iter().enumerate() {
            let r = call(&s, b);
            assert_eq!(r["ok"], false, "{b}");
            assert!(r["error"].is_string());
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
        assert_eq!(s.handle_line(&bytes)["ok"], false);
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
            v,
            json!({"cmd":"start","source":3,"start_delay_ns":5,"device":2})
        );
        let v = ctl_request(0, &CtlCmd::Stop { source: None }).unwrap();
        assert_eq!(v, json!({"cmd":"stop"}));
        let v = ctl_request(
            0,
            &CtlCmd::Raw {
                json: r#"{"cmd":"info"}"#.into(),
            },
        )
        .unwrap();
        assert_eq!(v, json!({"cmd":"info"}));
        assert!(ctl_request(0, &CtlCmd::Raw { json: "{".into() }).is_err());
        let s = server(false);
        let v = ctl_request(
            0,
            &CtlCmd::Configure {
                source: 0,
                mode: "periodic".into(),
                jitter: "uniform".into(),
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
        assert_eq!(s.handle(&v).unwrap()["ok"], true);
    }
}
