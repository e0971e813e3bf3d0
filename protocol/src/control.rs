// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Requests and replies of the host control socket (docs/device-spec.md §9):
//! one JSON object per line each way.
//!
//! A request is `{"cmd": ..., "device"?: N, ...}` ([`Request`]); a reply is
//! `{"ok": true, ...}` or `{"ok": false, "error": ..., "status"?: N}`
//! ([`Reply`]). Replies are written through `serde_json::Value`, whose
//! objects keep their keys sorted: that is the byte layout the socket has
//! always had.

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use thiserror::Error as ThisError;

use crate::stats::Stats;
use crate::wire::{ConfigureBody, FaultKind, Jitter, Mode, Status, SOURCE_ALL};

/// Longest request line (bytes, newline included).
pub const MAX_LINE: usize = 64 * 1024;

/// Errors of this module: a request line that is not a valid request, a
/// reply line that is not a valid reply, a body the wire cannot carry.
#[derive(Debug, ThisError)]
pub enum Error {
    /// Not JSON at all.
    #[error("bad JSON: {0}")]
    Json(serde_json::Error),
    /// JSON, but not an object.
    #[error("request must be a JSON object")]
    NotObject,
    /// No string `cmd`.
    #[error("missing \"cmd\"")]
    MissingCmd,
    /// A `cmd` the server does not know.
    #[error("unknown cmd {0:?}")]
    UnknownCmd(String),
    /// A known `cmd` with an unknown field, a wrong type or a missing field.
    #[error("{cmd}: {source}")]
    Invalid {
        /// The request's `cmd`.
        cmd: String,
        /// What is wrong.
        source: serde_json::Error,
    },
    /// A reply that is not `{"ok": bool, ...}` of the expected shape.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// A CONFIGURE body with a mode or jitter code that has no name.
    #[error("CONFIGURE body: no {what} has code {code}")]
    BadCode {
        /// `mode` or `jitter`.
        what: &'static str,
        /// The raw code.
        code: u8,
    },
}

/// The sources a `start` or `stop` names: one index or `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// Every source.
    All,
    /// One source.
    One(u16),
}

impl Sources {
    /// The wire's `source` value (`SOURCE_ALL` for all).
    pub fn index(self) -> u16 {
        match self {
            Self::All => SOURCE_ALL,
            Self::One(i) => i,
        }
    }
}

impl Serialize for Sources {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => s.serialize_str("all"),
            Self::One(i) => s.serialize_u16(*i),
        }
    }
}

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if s == "all" => Ok(Self::All),
            v => u16::deserialize(v).map(Self::One).map_err(|e| {
                de::Error::custom(format!("\"source\" must be an index or \"all\": {e}"))
            }),
        }
    }
}

/// The fields of a `configure` request; absent ones take the §9 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Configure {
    /// Device index (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<u32>,
    /// Source index.
    pub source: u16,
    /// Mode.
    pub mode: Mode,
    /// Jitter (default none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Jitter>,
    /// Events per due time (default 1 for storm, else 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u16>,
    /// Mean events/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_hz: Option<u32>,
    /// ONESHOT delay / PERIODIC period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_ns: Option<u64>,
    /// Event limit (0 = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Time limit (0 = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ns: Option<u64>,
    /// UNIFORM jitter bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ns: Option<u64>,
    /// Records per notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moderation_events: Option<u32>,
    /// Notification delay bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moderation_delay_us: Option<u32>,
    /// PRNG seed (0 = default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Configure {
    /// The CONFIGURE body, defaults applied.
    pub fn body(&self) -> ConfigureBody {
        let default_burst = if self.mode == Mode::Storm { 1 } else { 0 };
        ConfigureBody {
            mode: self.mode as u8,
            jitter: self.jitter.unwrap_or_default() as u8,
            burst: self.burst.unwrap_or(default_burst),
            rate_hz: self.rate_hz.unwrap_or(0),
            period_ns: self.period_ns.unwrap_or(0),
            count: self.count.unwrap_or(0),
            duration_ns: self.duration_ns.unwrap_or(0),
            jitter_ns: self.jitter_ns.unwrap_or(0),
            moderation_events: self.moderation_events.unwrap_or(0),
            moderation_delay_us: self.moderation_delay_us.unwrap_or(0),
            seed: self.seed.unwrap_or(0),
        }
    }

    /// The request that configures `source` of `device` with `body`, every
    /// field given.
    pub fn from_body(
        device: Option<u32>,
        source: u16,
        body: &ConfigureBody,
    ) -> Result<Self, Error> {
        let bad = |what, code| Error::BadCode { what, code };
        Ok(Self {
            device,
            source,
            mode: Mode::from_u8(body.mode).ok_or(bad("mode", body.mode))?,
            jitter: Some(Jitter::from_u8(body.jitter).ok_or(bad("jitter", body.jitter))?),
            burst: Some(body.burst),
            rate_hz: Some(body.rate_hz),
            period_ns: Some(body.period_ns),
            count: Some(body.count),
            duration_ns: Some(body.duration_ns),
            jitter_ns: Some(body.jitter_ns),
            moderation_events: Some(body.moderation_events),
            moderation_delay_us: Some(body.moderation_delay_us),
            seed: Some(body.seed),
        })
    }
}

/// A request (§9 table). `device` is the device index (default 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Device information and limits; replied with [`InfoReply`].
    Info {
        /// Device index.
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<u32>,
    },
    /// Configure a stopped source; replied with [`Done`].
    Configure(Configure),
    /// Start sources (default all); replied with [`StartReply`].
    Start {
        /// Device index.
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<u32>,
        /// Sources (default all).
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<Sources>,
        /// Delay before t0 (default 0).
        #[serde(skip_serializing_if = "Option::is_none")]
        start_delay_ns: Option<u64>,
    },
    /// Stop sources (default all); replied with [`StopReply`].
    Stop {
        /// Device index.
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<u32>,
        /// Sources (default all).
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<Sources>,
    },
    /// Statistics; replied with [`StatsReply`].
    Stats {
        /// Device index.
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<u32>,
        /// Include histogram buckets (default false).
        #[serde(skip_serializing_if = "Option::is_none")]
        buckets: Option<bool>,
    },
    /// Zero the statistics; replied with [`Done`].
    ResetStats {
        /// Device index.
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<u32>,
    },
    /// Arm fault injection; replied with [`FaultReply`].
    Fault {
        /// Device index.
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<u32>,
        /// Kind of fault.
        kind: FaultKind,
        /// How many (default 1; 0 means 1).
        #[serde(skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
    },
}

impl Request {
    /// The `cmd` values, in §9 order.
    pub const COMMANDS: [&'static str; 7] = [
        "info",
        "configure",
        "start",
        "stop",
        "stats",
        "reset_stats",
        "fault",
    ];

    /// Parses a request line. Errors name what is wrong in words a client
    /// can act on (`unknown cmd "x"`, `info: unknown field `y`, ...`).
    pub fn from_line(line: &[u8]) -> Result<Self, Error> {
        let v: Value = serde_json::from_slice(line).map_err(Error::Json)?;
        let cmd = v
            .as_object()
            .ok_or(Error::NotObject)?
            .get("cmd")
            .and_then(Value::as_str)
            .ok_or(Error::MissingCmd)?
            .to_string();
        if !Self::COMMANDS.contains(&cmd.as_str()) {
            return Err(Error::UnknownCmd(cmd));
        }
        Self::deserialize(v).map_err(|source| Error::Invalid { cmd, source })
    }

    /// The request's `cmd`.
    pub fn cmd(&self) -> &'static str {
        let i = match self {
            Self::Info { .. } => 0,
            Self::Configure(_) => 1,
            Self::Start { .. } => 2,
            Self::Stop { .. } => 3,
            Self::Stats { .. } => 4,
            Self::ResetStats { .. } => 5,
            Self::Fault { .. } => 6,
        };
        Self::COMMANDS[i]
    }

    /// The device the request is for (default 0).
    pub fn device(&self) -> u32 {
        match *self {
            Self::Configure(Configure { device, .. })
            | Self::Info { device }
            | Self::Start { device, .. }
            | Self::Stop { device, .. }
            | Self::Stats { device, .. }
            | Self::ResetStats { device }
            | Self::Fault { device, .. } => device.unwrap_or(0),
        }
    }

    /// The request as one line, newline included.
    pub fn to_line(&self) -> String {
        line_of(serde_json::to_value(self))
    }

    /// Parses the reply to this request.
    pub fn parse_reply(&self, line: &str) -> Result<Reply<Response>, Error> {
        let v: Value = serde_json::from_str(line).map_err(Error::Json)?;
        let body =
            match Reply::<Value>::deserialize(v).map_err(|e| Error::BadReply(e.to_string()))? {
                Reply::Ok(body) => body,
                Reply::Refused(r) => return Ok(Reply::Refused(r)),
            };
        fn take<T: DeserializeOwned>(v: Value) -> Result<T, serde_json::Error> {
            T::deserialize(v)
        }
        let r = match self {
            Self::Info { .. } => take(body).map(Response::Info),
            Self::Configure(_) | Self::ResetStats { .. } => take(body).map(Response::Done),
            Self::Start { .. } => take(body).map(Response::Start),
            Self::Stop { .. } => take(body).map(Response::Stop),
            Self::Stats { .. } => take(body).map(|s| Response::Stats(Box::new(s))),
            Self::Fault { .. } => take(body).map(Response::Fault),
        };
        r.map(Reply::Ok)
            .map_err(|e| Error::BadReply(format!("{} reply: {e}", self.cmd())))
    }
}

/// A JSON value as one line. Serializing these types to a `Value` cannot
/// fail (string keys, finite numbers); `null` stands in if it ever did.
fn line_of(v: Result<Value, serde_json::Error>) -> String {
    let mut s = v.unwrap_or(Value::Null).to_string();
    s.push('\n');
    s
}

/// Why the server refused a request: `{"ok": false, "error": ..., "status"?: N}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ThisError)]
#[serde(deny_unknown_fields)]
#[error("{error}")]
pub struct Refusal {
    /// What went wrong (a device status name, or a sentence).
    pub error: String,
    /// The §6.2 status code, when the device refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl Refusal {
    /// A refusal that is not a device status (malformed request, limits).
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            status: None,
        }
    }

    /// The device answered `st` (not `Ok`).
    pub fn status(st: Status) -> Self {
        Self {
            error: st.name().to_string(),
            status: Some(st as u16),
        }
    }
}

/// A reply line: `Ok(body)` is `{"ok": true, ...body}`, `Refused` is
/// `{"ok": false, ...refusal}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<T> {
    /// The request succeeded.
    Ok(T),
    /// The request was refused.
    Refused(Refusal),
}

impl<T: Serialize> Reply<T> {
    /// The reply as one line, newline included.
    pub fn to_line(&self) -> String {
        line_of(serde_json::to_value(self))
    }
}

fn with_ok<S: Serializer, B: Serialize>(s: S, ok: bool, body: &B) -> Result<S::Ok, S::Error> {
    use serde::ser::Error as _;
    let mut v = serde_json::to_value(body).map_err(S::Error::custom)?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| S::Error::custom("reply body must be an object"))?;
    obj.insert("ok".into(), Value::Bool(ok));
    v.serialize(s)
}

impl<T: Serialize> Serialize for Reply<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Ok(body) => with_ok(s, true, body),
            Self::Refused(r) => with_ok(s, false, r),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Reply<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut obj = Map::<String, Value>::deserialize(d)?;
        let ok = match obj.remove("ok") {
            Some(Value::Bool(ok)) => ok,
            Some(v) => {
                return Err(de::Error::custom(format!(
                    "\"ok\" must be a boolean, not {v}"
                )))
            }
            None => return Err(de::Error::missing_field("ok")),
        };
        let body = Value::Object(obj);
        if ok {
            T::deserialize(body)
                .map(Self::Ok)
                .map_err(de::Error::custom)
        } else {
            Refusal::deserialize(body)
                .map(Self::Refused)
                .map_err(de::Error::custom)
        }
    }
}

/// Reply body of `configure` and `reset_stats`: nothing but `"ok": true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {}

/// Reply body of `info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoReply {
    /// Device index.
    pub device: u32,
    /// Devices the process serves.
    pub devices: u32,
    /// The virtio device id the back end is meant for.
    pub virtio_id: u32,
    /// A front end is connected.
    pub connected: bool,
    /// Number of sources.
    pub num_sources: u16,
    /// Cap on the sum of running sources' rates.
    pub max_rate_hz: u32,
    /// Unacked-record table size.
    pub max_outstanding: u32,
    /// Smallest period / inter-burst gap.
    pub min_period_ns: u32,
    /// Largest burst.
    pub max_burst: u32,
    /// Feature bits offered.
    pub device_features: u64,
    /// Feature bits the driver negotiated.
    pub negotiated_features: u64,
    /// Host `CLOCK_MONOTONIC` of the reply.
    pub host_ns: u64,
    /// The generator's spin window (absent from older back ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spin: Option<SpinInfo>,
}

/// The generator's spin window as the back end chose it (`--spin-us`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpinInfo {
    /// What was asked: `auto` or a number of microseconds.
    pub requested: String,
    /// The window used, in microseconds (0: timerfd only).
    pub us: u32,
    /// Why (for `auto`: the cores and the load it counted).
    pub reason: String,
}

/// Reply body of `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartReply {
    /// Host time of the first due time.
    pub t0: u64,
}

/// Reply body of `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopReply {
    /// Raises so far over the sources named.
    pub raised: u64,
}

/// Process-wide control-socket counters in a `stats` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlStats {
    /// Requests answered.
    pub requests: u64,
    /// Lines that were not valid requests.
    pub malformed: u64,
    /// Connections refused (could not be set up).
    pub refused: u64,
    /// Connections shut down to make room for a new one (table full).
    pub evicted: u64,
    /// Request lines not complete in time (connection closed).
    pub slow_lines: u64,
}

/// Per-device counters of front-end connections and of front-end
/// misbehaviour in a `stats` reply (never reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontEndStats {
    /// Front-end connections accepted.
    pub connections: u64,
    /// Dropped: no complete first message in time.
    pub silent: u64,
    /// Dropped: a message did not complete in time.
    pub stalled: u64,
    /// Dropped: a malformed message header (oversized payload).
    pub malformed: u64,
    /// Ended by a socket error, or could not be set up (e.g. out of fds).
    pub io_errors: u64,
    /// SET_MEM_TABLE refused: a region larger than the file behind it.
    pub memory_tables_refused: u64,
    /// Faults caught on guest memory whose file shrank after SET_MEM_TABLE
    /// (the connection is then ended).
    pub memory_faults: u64,
}

/// Reply body of `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsReply {
    /// Device index.
    pub device: u32,
    /// The device's statistics.
    pub stats: Stats,
    /// The control socket's counters.
    pub control: ControlStats,
    /// The device's front-end connection counters.
    pub front_end: FrontEndStats,
}

/// Reply body of `fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultReply {
    /// Kind armed.
    pub kind: FaultKind,
    /// How many.
    pub count: u32,
}

/// The body of a successful reply, whichever the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// `info`.
    Info(InfoReply),
    /// `configure`, `reset_stats`.
    Done(Done),
    /// `start`.
    Start(StartReply),
    /// `stop`.
    Stop(StopReply),
    /// `stats`.
    Stats(Box<StatsReply>),
    /// `fault`.
    Fault(FaultReply),
}

#[cfg(test)]
mod tests;
