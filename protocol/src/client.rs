// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The client of the host control socket: one connection, many requests,
//! each answered by one line.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use thiserror::Error as ThisError;

use crate::control::{self, Refusal, Reply, Request, Response};

/// How long a reply may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest reply line read (a `stats` reply with buckets is large).
pub const MAX_REPLY: u64 = 64 * 1024 * 1024;

/// Errors of the control client.
#[derive(Debug, ThisError)]
pub enum Error {
    /// The socket could not be connected.
    #[error("control socket {path}: connect: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Sending or receiving failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// No reply within the timeout.
    #[error("control socket {path}: no reply to {cmd} within {timeout:?}")]
    Timeout {
        /// The socket.
        path: PathBuf,
        /// The request's `cmd`.
        cmd: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The server closed the connection without answering.
    #[error("control socket {path}: connection closed without a reply to {cmd}")]
    Closed {
        /// The socket.
        path: PathBuf,
        /// The request's `cmd`.
        cmd: String,
    },
    /// The reply is not what the request expects.
    #[error("control socket {path}: {cmd}: {source}: {line:?}")]
    BadReply {
        /// The socket.
        path: PathBuf,
        /// The request's `cmd`.
        cmd: String,
        /// What is wrong.
        source: control::Error,
        /// The reply line.
        line: String,
    },
    /// The server refused the request (or the connection).
    #[error("control socket {path}: {cmd} refused: {refusal}")]
    Refused {
        /// The socket.
        path: PathBuf,
        /// The request's `cmd`.
        cmd: String,
        /// The server's reason.
        refusal: Refusal,
    },
}

/// A connection to the control socket.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    timeout: Duration,
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Client {
    /// Connects to the socket at `path`; each reply must arrive within `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, Error> {
        let connect_err = |source| Error::Connect {
            path: path.to_path_buf(),
            source,
        };
        let w = UnixStream::connect(path).map_err(connect_err)?;
        w.set_read_timeout(Some(timeout)).map_err(connect_err)?;
        w.set_write_timeout(Some(timeout)).map_err(connect_err)?;
        let r = BufReader::new(w.try_clone().map_err(connect_err)?);
        Ok(Self {
            path: path.to_path_buf(),
            timeout,
            r,
            w,
        })
    }

    /// Sends one line (newline included) and returns the reply line.
    ///
    /// A server that refuses a connection writes its reason and closes, so a
    /// failed write is followed by a read: the reason, if one came, is the
    /// reply (rather than "Broken pipe").
    pub fn send_line(&mut self, line: &str, cmd: &str) -> Result<String, Error> {
        let written = self.w.write_all(line.as_bytes());
        let mut reply = String::new();
        let read = self.r.by_ref().take(MAX_REPLY).read_line(&mut reply);
        match (written, read) {
            (_, Ok(n)) if n > 0 => Ok(reply),
            (Err(e), _) => Err(self.io_error(e, cmd)),
            (Ok(()), Ok(_)) => Err(Error::Closed {
                path: self.path.clone(),
                cmd: cmd.to_string(),
            }),
            (Ok(()), Err(e)) => Err(self.io_error(e, cmd)),
        }
    }

    fn io_error(&self, source: io::Error, cmd: &str) -> Error {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                path: self.path.clone(),
                cmd: cmd.to_string(),
                timeout: self.timeout,
            },
            _ => Error::Io {
                path: self.path.clone(),
                source,
            },
        }
    }

    fn bad_reply(&self, cmd: &str, source: control::Error, line: String) -> Error {
        Error::BadReply {
            path: self.path.clone(),
            cmd: cmd.to_string(),
            source,
            line: line.trim_end().to_string(),
        }
    }

    /// Sends `req`; returns the reply line as the server wrote it (to save
    /// it verbatim) and its typed reading.
    pub fn exchange(&mut self, req: &Request) -> Result<(String, Reply<Response>), Error> {
        let line = self.send_line(&req.to_line(), req.cmd())?;
        match req.parse_reply(&line) {
            Ok(reply) => Ok((line, reply)),
            Err(e) => Err(self.bad_reply(req.cmd(), e, line)),
        }
    }

    /// Sends `req` and returns the body of its successful reply; a refusal
    /// is an error that carries the server's reason.
    pub fn call<T: DeserializeOwned>(&mut self, req: &Request) -> Result<T, Error> {
        let line = self.send_line(&req.to_line(), req.cmd())?;
        match serde_json::from_str::<Reply<T>>(&line) {
            Ok(Reply::Ok(body)) => Ok(body),
            Ok(Reply::Refused(refusal)) => Err(Error::Refused {
                path: self.path.clone(),
                cmd: req.cmd().to_string(),
                refusal,
            }),
            Err(e) => Err(self.bad_reply(req.cmd(), control::Error::BadReply(e.to_string()), line)),
        }
    }

    /// Sends any JSON value (e.g. a deliberately malformed request) and
    /// returns the reply, which only has to be `{"ok": bool, ...}`.
    pub fn call_value(
        &mut self,
        req: &serde_json::Value,
    ) -> Result<Reply<serde_json::Value>, Error> {
        let cmd = req.get("cmd").and_then(|c| c.as_str()).unwrap_or("request");
        let mut line = req.to_string();
        line.push('\n');
        let reply = self.send_line(&line, cmd)?;
        serde_json::from_str(&reply)
            .map_err(|e| self.bad_reply(cmd, control::Error::BadReply(e.to_string()), reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Done, StopReply};
    use std::os::unix::net::UnixListener;

    /// A one-connection server that answers each line with `reply(line)`,
    /// or refuses the connection outright when `refuse` is given.
    fn serve(
        refuse: Option<&'static str>,
        reply: fn(&str) -> Option<String>,
    ) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.path().join("ctl");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut w = conn.try_clone().unwrap();
            if let Some(r) = refuse {
                let _ = w.write_all(r.as_bytes());
                return;
            }
            let mut r = BufReader::new(conn);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                match reply(&line) {
                    Some(a) => w.write_all(a.as_bytes()).unwrap(),
                    None => std::thread::sleep(Duration::from_secs(2)),
                }
                line.clear();
            }
        });
        (dir, path)
    }

    /// A private directory for a socket, removed on drop.
    mod tempdir {
        use std::path::{Path, PathBuf};

        pub struct Dir(PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "irqstorm-protocol-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn typed_calls_and_refusals() {
        let (_d, path) = serve(None, |l| {
            Some(if l.contains("\"stop\"") {
                "{\"ok\":true,\"raised\":7}\n".into()
            } else if l.contains("\"start\"") {
                "{\"error\":\"busy\",\"ok\":false,\"status\":3}\n".into()
            } else {
                "{\"ok\":true}\n".into()
            })
        });
        let mut c = Client::connect(&path, DEFAULT_TIMEOUT).unwrap();
        let stop = Request::Stop {
            device: None,
            source: None,
        };
        assert_eq!(c.call::<StopReply>(&stop).unwrap().raised, 7);
        let (line, reply) = c.exchange(&stop).unwrap();
        assert_eq!(line, "{\"ok\":true,\"raised\":7}\n");
        assert_eq!(reply, Reply::Ok(Response::Stop(StopReply { raised: 7 })));
        let start = Request::Start {
            device: Some(1),
            source: None,
            start_delay_ns: None,
        };
        let e = c.call::<Done>(&start).unwrap_err();
        assert!(e.to_string().ends_with("start refused: busy"), "{e}");
        // A reply of the wrong shape for the request is an error.
        let e = c.call::<StopReply>(&Request::ResetStats { device: None });
        assert!(matches!(e, Err(Error::BadReply { .. })), "{e:?}");
        let r = c.call_value(&serde_json::json!({"cmd": "x"})).unwrap();
        assert_eq!(r, Reply::Ok(serde_json::json!({})));
    }

    #[test]
    fn a_refused_connection_gives_the_servers_reason() {
        let (_d, path) = serve(
            Some("{\"ok\":false,\"error\":\"too many connections\"}\n"),
            |_| None,
        );
        let mut c = Client::connect(&path, DEFAULT_TIMEOUT).unwrap();
        // Let the server close first, so that the write may fail.
        std::thread::sleep(Duration::from_millis(50));
        let e = c
            .call::<Done>(&Request::ResetStats { device: None })
            .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("reset_stats refused: too many connections"),
            "{e}"
        );
    }

    #[test]
    fn silence_and_hang_ups_are_explained() {
        let (_d, path) = serve(None, |_| None);
        let mut c = Client::connect(&path, Duration::from_millis(100)).unwrap();
        let e = c.call::<Done>(&Request::Info { device: None }).unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
        assert!(e.to_string().contains("no reply to info within"), "{e}");

        let (_d, path) = serve(Some(""), |_| None);
        let mut c = Client::connect(&path, DEFAULT_TIMEOUT).unwrap();
        let e = c.call::<Done>(&Request::Info { device: None }).unwrap_err();
        assert!(
            matches!(e, Error::Closed { .. } | Error::Io { .. }),
            "{e:?}"
        );

        let e =
            Client::connect(Path::new("/nonexistent/irqstorm.sock"), DEFAULT_TIMEOUT).unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent/irqstorm.sock: connect:"),
            "{e}"
        );
    }
}
