//! Line-delimited JSON client of the back end's host control socket
//! (spec §9).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::RunError;

/// Counters summed over devices, in this order.
pub const TOTALS: [&str; 5] = ["raised", "coalesced", "acked", "records", "pending"];

pub struct Ctl {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RunError {
    move |source| RunError::Io { what, source }
}

impl Ctl {
    pub fn connect(p: &Path) -> Result<Ctl, RunError> {
        let what = || format!("connect {}", p.display());
        let w = UnixStream::connect(p).map_err(io(what()))?;
        w.set_read_timeout(Some(Duration::from_secs(15)))
            .map_err(io(what()))?;
        Ok(Ctl {
            r: BufReader::new(w.try_clone().map_err(io(what()))?),
            w,
        })
    }

    /// Send one request; the reply line as it came.
    pub fn raw(&mut self, req: &serde_json::Value) -> Result<String, RunError> {
        let mut line = req.to_string();
        line.push('\n');
        self.w
            .write_all(line.as_bytes())
            .map_err(io("control socket request".into()))?;
        let mut reply = String::new();
        self.r
            .read_line(&mut reply)
            .map_err(io("control socket reply".into()))?;
        Ok(reply)
    }

    /// Send one request; the reply, which must say `"ok": true`.
    pub fn req(&mut self, req: serde_json::Value) -> Result<serde_json::Value, RunError> {
        let text = self.raw(&req)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| RunError::Control(format!("control reply {text:?}: {e}")))?;
        if v["ok"] != serde_json::Value::Bool(true) {
            return Err(RunError::Control(format!(
                "control request {req} failed: {}",
                text.trim()
            )));
        }
        Ok(v)
    }

    /// The [`TOTALS`] counters summed over devices `0..n`.
    pub fn totals(&mut self, n: u32) -> Result<[u64; 5], RunError> {
        let mut t = [0u64; 5];
        for d in 0..n {
            let v = self.req(serde_json::json!({"cmd": "stats", "device": d}))?;
            let x = &v["stats"]["totals"];
            for (i, k) in TOTALS.iter().enumerate() {
                t[i] += x[k].as_u64().unwrap_or(0);
            }
        }
        Ok(t)
    }
}
