//! A small QMP client (the QEMU Machine Protocol: JSON lines over a Unix
//! socket): enough to pause and resume a guest and ask its run state.
//!
//! QEMU is started with [`qemu_args`] (`-qmp unix:PATH,server=on,wait=off`);
//! [`Qmp::connect`] reads the greeting and leaves capabilities negotiation
//! mode with `qmp_capabilities`. Asynchronous events that arrive while a
//! command waits for its reply are kept ([`Qmp::take_events`]).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Errors of the QMP client.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP socket {path}: no QEMU listening within {}s", .timeout.as_secs())]
    NoQemu { path: PathBuf, timeout: Duration },
    #[error("QMP socket {0}: QEMU closed the connection")]
    Closed(PathBuf),
    #[error("QMP socket {path}: not QMP: {line}")]
    Protocol { path: PathBuf, line: String },
    #[error("QMP socket {path}: no `{name}` event within {}s", .timeout.as_secs())]
    NoEvent {
        path: PathBuf,
        name: String,
        timeout: Duration,
    },
    #[error("QMP `{cmd}` failed: {class}: {desc}")]
    Command {
        cmd: String,
        class: String,
        desc: String,
    },
}

/// The QEMU options that open a QMP server on `path` (QEMU does not wait
/// for a client).
pub fn qemu_args(path: &Path) -> [String; 2] {
    [
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", path.display()),
    ]
}

/// A QMP connection in command mode.
pub struct Qmp {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<Value>,
    /// The reply limit given to [`Qmp::connect`].
    timeout: Duration,
}

impl Qmp {
    /// Connects (retrying until `timeout` while QEMU creates the socket),
    /// reads the greeting and negotiates capabilities. Replies must come
    /// within `timeout` too.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let io = |source| QmpError::Io {
            path: path.to_path_buf(),
            source,
        };
        let end = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => {
                    return Err(QmpError::NoQemu {
                        path: path.to_path_buf(),
                        timeout,
                    })
                }
            }
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut q = Qmp {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
            timeout,
        };
        let greeting = q.read()?;
        if greeting.get("QMP").is_none() {
            return Err(q.protocol(&greeting));
        }
        q.execute("qmp_capabilities")?;
        Ok(q)
    }

    fn protocol(&self, v: &Value) -> QmpError {
        QmpError::Protocol {
            path: self.path.clone(),
            line: v.to_string(),
        }
    }

    fn read(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(QmpError::Closed(self.path.clone()));
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Protocol {
            path: self.path.clone(),
            line: line.trim_end().to_string(),
        })
    }

    /// Runs a command without arguments; returns its `return` value.
    pub fn execute(&mut self, cmd: &str) -> Result<Value, QmpError> {
        self.send(cmd, json!({ "execute": cmd }))
    }

    /// Runs a command with `arguments`; returns its `return` value.
    pub fn execute_with(&mut self, cmd: &str, arguments: Value) -> Result<Value, QmpError> {
        self.send(cmd, json!({ "execute": cmd, "arguments": arguments }))
    }

    /// Waits until an event `name` whose `data` satisfies `matches` has come
    /// (kept ones first; it and earlier ones are taken), or `timeout`.
    pub fn wait_event(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let hit = |v: &Value| v["event"] == name && matches(&v["data"]);
        if let Some(i) = self.events.iter().position(hit) {
            return Ok(self.events.drain(..=i).next_back().expect("one"));
        }
        let end = Instant::now() + timeout;
        let r = loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(QmpError::NoEvent {
                    path: self.path.clone(),
                    name: name.into(),
                    timeout,
                });
            }
            if let Err(source) = self.reader.get_ref().set_read_timeout(Some(left)) {
                break Err(QmpError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
            match self.read() {
                Ok(v) if hit(&v) => break Ok(v),
                Ok(v) if v.get("event").is_some() => self.events.push(v),
                Ok(v) => break Err(self.protocol(&v)),
                Err(QmpError::Io { source, .. })
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => break Err(e),
            }
        };
        // Replies keep the connection's own limit.
        let _ = self.reader.get_ref().set_read_timeout(Some(self.timeout));
        r
    }

    fn send(&mut self, cmd: &str, msg: Value) -> Result<Value, QmpError> {
        let mut line = msg.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .and_then(|_| self.writer.flush())
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        loop {
            let mut v = self.read()?;
            if let Some(r) = v.get_mut("return") {
                return Ok(r.take());
            }
            if let Some(e) = v.get("error") {
                let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
                return Err(QmpError::Command {
                    cmd: cmd.into(),
                    class: s("class"),
                    desc: s("desc"),
                });
            }
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            return Err(self.protocol(&v));
        }
    }

    /// `stop`: pauses the guest (QEMU returns once the VM is stopped, its
    /// vhost devices included).
    pub fn stop(&mut self) -> Result<(), QmpError> {
        self.execute("stop").map(drop)
    }

    /// `cont`: resumes the guest.
    pub fn cont(&mut self) -> Result<(), QmpError> {
        self.execute("cont").map(drop)
    }

    /// `query-status`: the run state ("running", "paused", ...).
    pub fn status(&mut self) -> Result<String, QmpError> {
        let r = self.execute("query-status")?;
        r.get("status")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.protocol(&r))
    }

    /// The events received so far (taken).
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A QMP server as QEMU 11.1 answers (greeting, capabilities, events
    /// before replies, errors), checking what the client sends.
    fn fake_qemu(path: &Path) -> std::thread::JoinHandle<Vec<String>> {
        let l = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            writeln!(w, r#"{{"QMP": {{"version": {{"qemu": {{"micro": 3, "minor": 1, "major": 11}}, "package": ""}}, "capabilities": ["oob"]}}}}"#).unwrap();
            let mut got = Vec::new();
            let mut line = String::new();
            while r.read_line(&mut line).unwrap() > 0 {
                let v: Value = serde_json::from_str(&line).unwrap();
                let cmd = v["execute"].as_str().unwrap().to_string();
                match cmd.as_str() {
                    "qmp_capabilities" | "cont" => writeln!(w, r#"{{"return": {{}}}}"#).unwrap(),
                    "stop" => {
                        writeln!(w, r#"{{"timestamp": {{"seconds": 1, "microseconds": 2}}, "event": "STOP"}}"#).unwrap();
                        writeln!(w, r#"{{"return": {{}}}}"#).unwrap();
                    }
                    // As QEMU 11.1: the reply, then the backend's and the device's events.
                    "device_del" => {
                        let id = v["arguments"]["id"].as_str().unwrap().to_string();
                        writeln!(w, r#"{{"return": {{}}}}"#).unwrap();
                        writeln!(w, r#"{{"event": "DEVICE_DELETED", "data": {{"path": "/machine/peripheral/{id}/virtio-backend"}}}}"#).unwrap();
                        writeln!(w, r#"{{"event": "DEVICE_DELETED", "data": {{"device": "{id}", "path": "/machine/peripheral/{id}"}}}}"#).unwrap();
                    }
                    "query-status" => writeln!(
                        w,
                        r#"{{"return": {{"status": "paused", "singlestep": false, "running": false}}}}"#
                    )
                    .unwrap(),
                    _ => writeln!(w, r#"{{"error": {{"class": "CommandNotFound", "desc": "The command {cmd} has not been found"}}}}"#).unwrap(),
                }
                got.push(cmd);
                line.clear();
            }
            got
        })
    }

    #[test]
    fn pause_resume_and_status_over_a_fake_qemu() {
        let dir = std::env::temp_dir().join(format!("irqstorm-qmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("qmp.sock");
        let server = fake_qemu(&p);
        let mut q = Qmp::connect(&p, Duration::from_secs(10)).unwrap();
        q.stop().unwrap();
        assert_eq!(q.status().unwrap(), "paused");
        let ev = q.take_events();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["event"], "STOP");
        q.cont().unwrap();
        q.execute_with("device_del", json!({ "id": "hp0" }))
            .unwrap();
        let ev = q
            .wait_event(
                "DEVICE_DELETED",
                |d| d["device"] == "hp0",
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(ev["data"]["path"], "/machine/peripheral/hp0");
        // the backend's event came first and is kept
        assert_eq!(q.take_events().len(), 1);
        let e = q
            .wait_event("DEVICE_DELETED", |_| true, Duration::from_millis(300))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("no `DEVICE_DELETED` event within 0s"),
            "{e}"
        );
        let e = q.execute("bogus").unwrap_err();
        assert_eq!(
            e.to_string(),
            "QMP `bogus` failed: CommandNotFound: The command bogus has not been found"
        );
        drop(q);
        assert_eq!(
            server.join().unwrap(),
            [
                "qmp_capabilities",
                "stop",
                "query-status",
                "cont",
                "device_del",
                "bogus"
            ]
        );
        assert_eq!(
            qemu_args(&p)[1],
            format!("unix:{},server=on,wait=off", p.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_qemu_and_not_qmp_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("irqstorm-qmp-x-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("none.sock");
        let e = Qmp::connect(&p, Duration::from_millis(200)).err().unwrap();
        assert!(e.to_string().contains("no QEMU listening"), "{e}");
        let p = dir.join("other.sock");
        let l = UnixListener::bind(&p).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            writeln!(s, "hello").unwrap();
        });
        let e = Qmp::connect(&p, Duration::from_secs(10)).err().unwrap();
        assert!(e.to_string().contains("not QMP: hello"), "{e}");
        t.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
