//! Scenario files (`tests/scenarios/*.toml`, format in `docs/scenarios.md`):
//! parsing and full validation against the device contract
//! (`docs/device-spec.md` §4, §5, §6.1.2, §6.5).
//!
//! [`load`] reads and validates a file; [`parse`] does the same for a
//! string. Unknown keys are rejected; every problem found is reported with
//! the file and the field path (`sources[3].program.period_us: ...`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{is_sleepable, mechanism_id, MECHANISMS};

/// Errors of scenario loading.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: invalid scenario:\n{}", list(.problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

fn list(p: &[Problem]) -> String {
    p.iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ScenarioError {
    /// The validation problems (empty for I/O and syntax errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ScenarioError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// One validation problem: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, `[A-Za-z0-9_.-]+`; used in report names.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Measured part of the run, after warm-up, ms.
    pub duration_ms: u64,
    /// Warm-up before measuring (counters reset after it), ms.
    #[serde(default)]
    pub warmup_ms: u64,
    #[serde(default)]
    pub guest: Guest,
    #[serde(default)]
    pub device: DeviceLimits,
    #[serde(default)]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub reference: Reference,
    #[serde(default)]
    pub ramp: Option<Ramp>,
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
}

/// Accelerator requirement of a scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccelRequirement {
    /// Runs under whatever the host has (KVM if usable, else TCG).
    #[default]
    Any,
    Kvm,
    Tcg,
}

/// Guest requirements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    /// vCPUs, 1..=64.
    #[serde(default = "default_smp")]
    pub smp: u32,
    #[serde(default)]
    pub accel: AccelRequirement,
}

fn default_smp() -> u32 {
    2
}

impl Default for Guest {
    fn default() -> Self {
        Guest {
            smp: default_smp(),
            accel: AccelRequirement::Any,
        }
    }
}

/// The device configuration the scenario needs (passed to the back end) and
/// validated against (spec §4). Defaults are the back end's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceLimits {
    /// 1..=64 (spec §4).
    #[serde(default = "d_num_sources")]
    pub num_sources: u16,
    /// Cap on the sum of all running sources' raise rates, events/s.
    #[serde(default = "d_max_rate")]
    pub max_rate_hz: u32,
    /// Smallest timer period / storm inter-burst gap, ns.
    #[serde(default = "d_min_period")]
    pub min_period_ns: u32,
    #[serde(default = "d_max_burst")]
    pub max_burst: u32,
    /// Whether the scenario needs `IRQSTORM_F_MODERATION`.
    #[serde(default = "d_true")]
    pub moderation: bool,
}

/// Default number of sources (spec §4).
pub const DEFAULT_NUM_SOURCES: u16 = 8;
/// Back-end default of `max_rate_hz` (`--max-rate`).
pub const DEFAULT_MAX_RATE_HZ: u32 = 500_000;
/// Back-end default of `min_period_ns` (`--min-period-ns`).
pub const DEFAULT_MIN_PERIOD_NS: u32 = 2_000;
/// Back-end default of `max_burst` (`--max-burst`).
pub const DEFAULT_MAX_BURST: u32 = 1024;

fn d_num_sources() -> u16 {
    DEFAULT_NUM_SOURCES
}
fn d_max_rate() -> u32 {
    DEFAULT_MAX_RATE_HZ
}
fn d_min_period() -> u32 {
    DEFAULT_MIN_PERIOD_NS
}
fn d_max_burst() -> u32 {
    DEFAULT_MAX_BURST
}
fn d_true() -> bool {
    true
}

impl Default for DeviceLimits {
    fn default() -> Self {
        DeviceLimits {
            num_sources: DEFAULT_NUM_SOURCES,
            max_rate_hz: DEFAULT_MAX_RATE_HZ,
            min_period_ns: DEFAULT_MIN_PERIOD_NS,
            max_burst: DEFAULT_MAX_BURST,
            moderation: true,
        }
    }
}

/// Who programs a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrivenBy {
    /// The host test, over the back end's control socket.
    #[default]
    Host,
    /// The guest driver, over controlq.
    Guest,
}

/// One event source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Source index, `< device.num_sources`.
    pub id: u16,
    /// Bottom-half mechanism name (spec §6.5).
    pub mechanism: String,
    pub program: Program,
    #[serde(default)]
    pub moderation: Moderation,
    #[serde(default)]
    pub work: Work,
    #[serde(default)]
    pub driven_by: DrivenBy,
    /// Delay of this source's start after the measured run starts, ms.
    #[serde(default)]
    pub start_delay_ms: u64,
}

/// Program modes (spec §5.1; OFF is not a scenario mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Oneshot,
    Periodic,
    Storm,
}

impl Mode {
    /// Wire value of `mode` (spec §5.1).
    pub fn wire(self) -> u8 {
        match self {
            Mode::Oneshot => 1,
            Mode::Periodic => 2,
            Mode::Storm => 3,
        }
    }
}

/// Jitter kinds (spec §5.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    #[default]
    None,
    Uniform,
    Exponential,
}

impl Jitter {
    /// Wire value of `jitter` (spec §5.1).
    pub fn wire(self) -> u8 {
        match self {
            Jitter::None => 0,
            Jitter::Uniform => 1,
            Jitter::Exponential => 2,
        }
    }
}

/// A source's program (spec §5.1, §6.1.2), in scenario units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    pub mode: Mode,
    /// ONESHOT delay / PERIODIC period, us.
    #[serde(default)]
    pub period_us: u64,
    /// STORM mean events/s.
    #[serde(default)]
    pub rate_hz: u32,
    /// STORM events per due time (default 1).
    #[serde(default)]
    pub burst: u32,
    /// Events after which the program ends; 0 = no limit.
    #[serde(default)]
    pub count: u64,
    /// Program length, ms; 0 = no limit (the run's end stops it).
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub jitter: Jitter,
    /// UNIFORM bound, us; must be below the nominal gap.
    #[serde(default)]
    pub jitter_us: u64,
    /// PRNG seed; 0 = the device's default.
    #[serde(default)]
    pub seed: u64,
}

/// The CONFIGURE body of a program (spec §6.1.2), in device units: the back
/// end's wire struct.
pub use irqstorm_protocol::wire::ConfigureBody;
use irqstorm_protocol::wire::{Jitter as WireJitter, Mode as WireMode};

/// Host-control-socket views of a CONFIGURE body (spec §9).
pub trait ConfigureBodyExt {
    /// Name of `mode` as the host control socket spells it.
    fn mode_name(&self) -> &'static str;
    /// Name of `jitter` as the host control socket spells it.
    fn jitter_name(&self) -> &'static str;
    /// The host control socket's `configure` request for `source` on
    /// `device`, one JSON line.
    fn control_configure(&self, source: u16, device: u32) -> serde_json::Value;
}

impl ConfigureBodyExt for ConfigureBody {
    fn mode_name(&self) -> &'static str {
        WireMode::from_u8(self.mode).map_or("off", WireMode::name)
    }

    fn jitter_name(&self) -> &'static str {
        WireJitter::from_u8(self.jitter).map_or("none", WireJitter::name)
    }

    fn control_configure(&self, source: u16, device: u32) -> serde_json::Value {
        serde_json::json!({
            "cmd": "configure",
            "device": device,
            "source": source,
            "mode": self.mode_name(),
            "jitter": self.jitter_name(),
            "burst": self.burst,
            "rate_hz": self.rate_hz,
            "period_ns": self.period_ns,
            "count": self.count,
            "duration_ns": self.duration_ns,
            "jitter_ns": self.jitter_ns,
            "moderation_events": self.moderation_events,
            "moderation_delay_us": self.moderation_delay_us,
            "seed": self.seed,
        })
    }
}

impl SourceStart {
    /// The host control socket's `start` request (spec §9).
    pub fn control_start(&self, device: u32) -> serde_json::Value {
        serde_json::json!({
            "cmd": "start",
            "device": device,
            "source": self.id,
            "start_delay_ns": self.start_delay_ms * 1_000_000,
        })
    }
}

impl DeviceLimits {
    /// The limits from the host control socket's `info` reply (spec §9);
    /// `moderation` is taken from `self` (the feature is negotiated later).
    pub fn with_info(&self, info: &serde_json::Value) -> Result<DeviceLimits, String> {
        let get = |k: &str| -> Result<u64, String> {
            info.get(k)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| format!("info reply lacks `{k}`"))
        };
        let narrow = |k: &str, max: u64| -> Result<u64, String> {
            let v = get(k)?;
            if v > max {
                Err(format!("info reply: `{k}` = {v} is out of range"))
            } else {
                Ok(v)
            }
        };
        Ok(DeviceLimits {
            num_sources: narrow("num_sources", u16::MAX as u64)? as u16,
            max_rate_hz: narrow("max_rate_hz", u32::MAX as u64)? as u32,
            min_period_ns: narrow("min_period_ns", u32::MAX as u64)? as u32,
            max_burst: narrow("max_burst", u32::MAX as u64)? as u32,
            moderation: self.moderation,
        })
    }
}

impl Program {
    /// Nominal gap between due times, ns (period, or `burst / rate_hz`).
    pub fn nominal_gap_ns(&self) -> Option<u64> {
        match self.mode {
            Mode::Oneshot | Mode::Periodic => Some(self.period_us.saturating_mul(1000)),
            Mode::Storm if self.rate_hz > 0 => {
                Some((self.burst.max(1) as u64).saturating_mul(1_000_000_000) / self.rate_hz as u64)
            }
            Mode::Storm => None,
        }
    }

    /// Mean raise rate, events/s (0 for ONESHOT).
    pub fn rate_hz(&self) -> f64 {
        match self.mode {
            Mode::Oneshot => 0.0,
            // the device counts ceil(10^9 / period_ns) (spec §6.1.2, START)
            Mode::Periodic if self.period_us > 0 => (1e9 / (self.period_us as f64 * 1e3)).ceil(),
            Mode::Periodic => 0.0,
            Mode::Storm => self.rate_hz as f64,
        }
    }
}

impl Source {
    /// The CONFIGURE body for this source.
    pub fn configure_body(&self) -> ConfigureBody {
        let p = &self.program;
        ConfigureBody {
            mode: p.mode.wire(),
            jitter: p.jitter.wire(),
            burst: match p.mode {
                Mode::Storm => p.burst.max(1) as u16,
                _ => 0,
            },
            rate_hz: if p.mode == Mode::Storm { p.rate_hz } else { 0 },
            period_ns: if p.mode == Mode::Storm {
                0
            } else {
                p.period_us * 1000
            },
            count: p.count,
            duration_ns: p.duration_ms * 1_000_000,
            jitter_ns: p.jitter_us * 1000,
            moderation_events: self.moderation.events,
            moderation_delay_us: self.moderation.delay_us,
            seed: p.seed,
        }
    }
}

/// Interrupt moderation (spec §5.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moderation {
    /// 0..=1024; 0 or 1 = notify after every record.
    #[serde(default)]
    pub events: u32,
    /// 0..=1_000_000.
    #[serde(default)]
    pub delay_us: u32,
}

/// Simulated bottom-half work kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkKind {
    #[default]
    None,
    /// Spin for `us` (any context).
    Busy,
    /// Sleep for `us` (sleepable mechanisms only).
    Sleep,
}

/// Simulated work the bottom half does per event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Work {
    #[serde(default)]
    pub kind: WorkKind,
    #[serde(default)]
    pub us: u32,
}

/// Longest ONESHOT delay / PERIODIC period, us (3.6e12 ns, spec §6.1.2).
pub const MAX_PERIOD_US: u64 = 3_600_000_000;

/// Largest simulated work per event, us.
pub const MAX_WORK_US: u32 = 100_000;

/// The guest's local hrtimer reference source (a baseline per mechanism).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// hrtimer period, us.
    #[serde(default = "d_ref_period")]
    pub period_us: u64,
    /// Mechanisms to measure; empty = every mechanism the sources use.
    #[serde(default)]
    pub mechanisms: Vec<String>,
}

fn d_ref_period() -> u64 {
    1000
}

impl Default for Reference {
    fn default() -> Self {
        Reference {
            enabled: true,
            period_us: d_ref_period(),
            mechanisms: Vec::new(),
        }
    }
}

/// A rate ramp: after the main run, the ramped storm sources are run at
/// rising rates, one step at a time, until coalescing or loss starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// Storm sources whose `rate_hz` the ramp sets (the rate is split evenly
    /// between them); empty = every storm source.
    #[serde(default)]
    pub sources: Vec<u16>,
    pub start_hz: u32,
    pub max_hz: u32,
    /// Additive step, events/s (exactly one of `step_hz`, `step_factor`).
    #[serde(default)]
    pub step_hz: Option<u32>,
    /// Multiplicative step, > 1.
    #[serde(default)]
    pub step_factor: Option<f64>,
    pub step_duration_ms: u64,
    /// Stop after a step whose coalesced/raised exceeds this (0 < x <= 1).
    #[serde(default = "d_stop_coalesced")]
    pub stop_coalesced_ratio: f64,
    /// Stop after a step whose (pending+dropped)/raised exceeds this.
    #[serde(default = "d_stop_loss")]
    pub stop_loss_ratio: f64,
}

fn d_stop_coalesced() -> f64 {
    0.01
}
fn d_stop_loss() -> f64 {
    0.01
}

/// Most steps a ramp may have.
pub const MAX_RAMP_STEPS: usize = 200;

impl Ramp {
    /// The offered rates of the steps, ascending, ending at or below
    /// `max_hz` (empty when the step definition is invalid).
    pub fn rates(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut r = self.start_hz as f64;
        while r <= self.max_hz as f64 && out.len() < MAX_RAMP_STEPS && r >= 1.0 {
            let v = r.round() as u32;
            if out.last() != Some(&v) {
                out.push(v);
            }
            r = match (self.step_hz, self.step_factor) {
                (Some(s), None) if s > 0 => r + s as f64,
                (None, Some(f)) if f > 1.0 => r * f,
                _ => break,
            };
        }
        out
    }

    /// Whether a step with these counters ends the ramp, and why.
    pub fn stop_reason(&self, coalesced_ratio: f64, loss_ratio: f64) -> Option<String> {
        if coalesced_ratio > self.stop_coalesced_ratio {
            Some(format!(
                "coalesced/raised {coalesced_ratio:.4} > stop_coalesced_ratio {}",
                self.stop_coalesced_ratio
            ))
        } else if loss_ratio > self.stop_loss_ratio {
            Some(format!(
                "(pending+dropped)/raised {loss_ratio:.4} > stop_loss_ratio {}",
                self.stop_loss_ratio
            ))
        } else {
            None
        }
    }
}

/// A threshold as written in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Mechanism name, or `"*"` for every row.
    pub mechanism: String,
    /// Figure, e.g. `raise_to_ack.p99`, `hardirq_to_bh.p99`, `bh_run.max`,
    /// `coalesced_ratio`.
    pub figure: String,
    /// Absolute limit: a duration string (`"500us"`), a number (counts and
    /// ratios), or a per-accelerator table `{ tcg = .., kvm = .., default = .. }`.
    #[serde(default)]
    pub max: Option<LimitSpec>,
    /// Limit as a multiple of the same figure of `baseline`.
    #[serde(default)]
    pub max_ratio: Option<f64>,
    /// `ref_hrtimer` or `host_eventfd` (with `max_ratio`).
    #[serde(default)]
    pub baseline: Option<String>,
}

/// An absolute limit value as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LimitSpec {
    Text(String),
    Number(f64),
    PerAccel(BTreeMap<String, LimitValue>),
}

/// One value of a per-accelerator table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LimitValue {
    Text(String),
    Number(f64),
}

/// Accelerator keys accepted in per-accelerator limits.
pub const ACCEL_KEYS: [&str; 3] = ["tcg", "kvm", "default"];

/// Latency metrics a threshold can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    RaiseToAck,
    HardirqToBh,
    BhRun,
    RaiseToHardirq,
}

impl Metric {
    pub const ALL: [Metric; 4] = [
        Metric::RaiseToAck,
        Metric::HardirqToBh,
        Metric::BhRun,
        Metric::RaiseToHardirq,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Metric::RaiseToAck => "raise_to_ack",
            Metric::HardirqToBh => "hardirq_to_bh",
            Metric::BhRun => "bh_run",
            Metric::RaiseToHardirq => "raise_to_hardirq",
        }
    }
}

/// Statistics of a latency metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stat {
    Min,
    P50,
    P90,
    P99,
    P999,
    Max,
    Mean,
}

impl Stat {
    pub fn name(self) -> &'static str {
        match self {
            Stat::Min => "min",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P99 => "p99",
            Stat::P999 => "p99.9",
            Stat::Max => "max",
            Stat::Mean => "mean",
        }
    }
    fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "min" => Stat::Min,
            "p50" => Stat::P50,
            "p90" => Stat::P90,
            "p99" => Stat::P99,
            "p99.9" | "p999" => Stat::P999,
            "max" => Stat::Max,
            "mean" => Stat::Mean,
            _ => return None,
        })
    }
}

/// A figure a threshold can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Figure {
    /// A latency statistic, ns.
    Latency(Metric, Stat),
    /// coalesced / raised.
    CoalescedRatio,
    /// (pending + dropped) / raised.
    LossRatio,
    /// Counts.
    Coalesced,
    Dropped,
    Pending,
    BadAcks,
}

/// What unit a figure's limit is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureKind {
    Duration,
    Ratio,
    Count,
}

/// Figure names accepted besides `<metric>.<stat>`.
pub const SCALAR_FIGURES: [&str; 6] = [
    "coalesced_ratio",
    "loss_ratio",
    "coalesced",
    "dropped",
    "pending",
    "bad_acks",
];

impl Figure {
    /// Parse a figure name.
    pub fn parse(s: &str) -> Result<Figure, String> {
        let scalar = match s {
            "coalesced_ratio" => Some(Figure::CoalescedRatio),
            "loss_ratio" => Some(Figure::LossRatio),
            "coalesced" => Some(Figure::Coalesced),
            "dropped" => Some(Figure::Dropped),
            "pending" => Some(Figure::Pending),
            "bad_acks" => Some(Figure::BadAcks),
            _ => None,
        };
        if let Some(f) = scalar {
            return Ok(f);
        }
        let expected = || {
            format!(
                "unknown figure `{s}`: expected <metric>.<stat> with metric one of {} and stat one of \
                 min, p50, p90, p99, p99.9, max, mean; or one of {}",
                Metric::ALL.map(Metric::name).join(", "),
                SCALAR_FIGURES.join(", ")
            )
        };
        let (m, st) = s.split_once('.').ok_or_else(expected)?;
        let metric = Metric::ALL
            .into_iter()
            .find(|x| x.name() == m)
            .ok_or_else(expected)?;
        let stat = Stat::parse(st).ok_or_else(expected)?;
        Ok(Figure::Latency(metric, stat))
    }

    pub fn kind(self) -> FigureKind {
        match self {
            Figure::Latency(..) => FigureKind::Duration,
            Figure::CoalescedRatio | Figure::LossRatio => FigureKind::Ratio,
            _ => FigureKind::Count,
        }
    }

    /// Canonical name.
    pub fn name(self) -> String {
        match self {
            Figure::Latency(m, s) => format!("{}.{}", m.name(), s.name()),
            Figure::CoalescedRatio => "coalesced_ratio".into(),
            Figure::LossRatio => "loss_ratio".into(),
            Figure::Coalesced => "coalesced".into(),
            Figure::Dropped => "dropped".into(),
            Figure::Pending => "pending".into(),
            Figure::BadAcks => "bad_acks".into(),
        }
    }
}

/// Baselines a ratio threshold can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The guest's local hrtimer source through the same mechanism.
    RefHrtimer,
    /// The host eventfd ping-pong.
    HostEventfd,
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::RefHrtimer => "ref_hrtimer",
            Baseline::HostEventfd => "host_eventfd",
        }
    }
    fn parse(s: &str) -> Option<Baseline> {
        match s {
            "ref_hrtimer" => Some(Baseline::RefHrtimer),
            "host_eventfd" => Some(Baseline::HostEventfd),
            _ => None,
        }
    }
}

/// The limit of a validated threshold.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// Absolute, in the figure's unit (ns, ratio or count), per
    /// accelerator: `tcg`, `kvm` and/or `default`.
    Absolute(BTreeMap<String, f64>),
    /// A multiple of the baseline's corresponding figure.
    Ratio { max: f64, baseline: Baseline },
}

/// A validated threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdSpec {
    /// `None` = every mechanism (`"*"`).
    pub mechanism: Option<String>,
    pub figure: Figure,
    pub limit: Limit,
}

impl ThresholdSpec {
    /// The absolute limit for an accelerator (its own, else `default`).
    pub fn absolute_for(&self, accel: &str) -> Option<f64> {
        match &self.limit {
            Limit::Absolute(m) => m.get(accel).or_else(|| m.get("default")).copied(),
            Limit::Ratio { .. } => None,
        }
    }
}

/// Which metric of a baseline a ratio threshold compares against, if any.
///
/// * `ref_hrtimer`: `hardirq_to_bh` and `bh_run` against the same metric of
///   the reference; `raise_to_hardirq` against its `timer_to_hardirq`.
/// * `host_eventfd`: `raise_to_ack` against the round trip; every other
///   latency metric against the one-way wake-up.
pub fn baseline_metric(metric: Metric, baseline: Baseline) -> Option<&'static str> {
    match (baseline, metric) {
        (Baseline::RefHrtimer, Metric::HardirqToBh) => Some("hardirq_to_bh"),
        (Baseline::RefHrtimer, Metric::BhRun) => Some("bh_run"),
        (Baseline::RefHrtimer, Metric::RaiseToHardirq) => Some("timer_to_hardirq"),
        (Baseline::RefHrtimer, Metric::RaiseToAck) => None,
        (Baseline::HostEventfd, Metric::RaiseToAck) => Some("round_trip"),
        (Baseline::HostEventfd, _) => Some("one_way"),
    }
}

/// Parse a duration with a unit (`ns`, `us`, `ms`, `s`) into ns.
pub fn parse_duration_ns(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{s}` has no unit (ns, us, ms or s)"))?;
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a number with a unit"))?;
    let mult = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        u => return Err(format!("`{s}`: unknown unit `{u}` (ns, us, ms or s)")),
    };
    Ok(v * mult)
}

fn limit_value(v: &LimitValue, kind: FigureKind) -> Result<f64, String> {
    let x = match (v, kind) {
        (LimitValue::Text(s), FigureKind::Duration) => parse_duration_ns(s)?,
        (LimitValue::Number(_), FigureKind::Duration) => {
            return Err("a latency limit needs a unit, e.g. \"500us\"".into())
        }
        (LimitValue::Text(s), _) => return Err(format!("`{s}`: this figure takes a plain number")),
        (LimitValue::Number(n), FigureKind::Count) if n.fract() != 0.0 => {
            return Err(format!("{n}: a count limit must be a whole number"))
        }
        (LimitValue::Number(n), _) => *n,
    };
    if !x.is_finite() || x < 0.0 {
        return Err(format!("{x}: limit must be a non-negative finite value"));
    }
    if kind == FigureKind::Ratio && x > 1.0 {
        return Err(format!("{x}: a ratio limit is at most 1"));
    }
    Ok(x)
}

/// Validate one threshold. `mechanisms` is the set the sources use.
pub fn threshold_spec(
    t: &Threshold,
    mechanisms: &BTreeSet<String>,
    reference: &Reference,
) -> Result<ThresholdSpec, Vec<(String, String)>> {
    let mut errs: Vec<(String, String)> = Vec::new();
    let mechanism = if t.mechanism == "*" {
        None
    } else {
        if mechanism_id(&t.mechanism).is_none() {
            errs.push((
                "mechanism".into(),
                format!(
                    "unknown mechanism `{}` (expected \"*\" or one of {})",
                    t.mechanism,
                    MECHANISMS.join(", ")
                ),
            ));
        } else if !mechanisms.contains(&t.mechanism) {
            errs.push((
                "mechanism".into(),
                format!("no source uses mechanism `{}`", t.mechanism),
            ));
        }
        Some(t.mechanism.clone())
    };
    let figure = match Figure::parse(&t.figure) {
        Ok(f) => Some(f),
        Err(e) => {
            errs.push(("figure".into(), e));
            None
        }
    };
    let limit = match (&t.max, t.max_ratio, &t.baseline) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
            errs.push((
                "max".into(),
                "give either `max`, or `max_ratio` with `baseline`, not both".into(),
            ));
            None
        }
        (None, None, _) => {
            errs.push((
                "max".into(),
                "missing limit: `max` or `max_ratio` + `baseline`".into(),
            ));
            None
        }
        (Some(spec), None, None) => figure.map(|f| {
            let kind = f.kind();
            let mut m = BTreeMap::new();
            match spec {
                LimitSpec::Text(s) => match limit_value(&LimitValue::Text(s.clone()), kind) {
                    Ok(v) => {
                        m.insert("default".to_string(), v);
                    }
                    Err(e) => errs.push(("max".into(), e)),
                },
                LimitSpec::Number(n) => match limit_value(&LimitValue::Number(*n), kind) {
                    Ok(v) => {
                        m.insert("default".to_string(), v);
                    }
                    Err(e) => errs.push(("max".into(), e)),
                },
                LimitSpec::PerAccel(table) => {
                    if table.is_empty() {
                        errs.push(("max".into(), "empty per-accelerator table".into()));
                    }
                    for (k, v) in table {
                        if !ACCEL_KEYS.contains(&k.as_str()) {
                            errs.push((
                                format!("max.{k}"),
                                format!("unknown accelerator `{k}` (tcg, kvm or default)"),
                            ));
                            continue;
                        }
                        match limit_value(v, kind) {
                            Ok(x) => {
                                m.insert(k.clone(), x);
                            }
                            Err(e) => errs.push((format!("max.{k}"), e)),
                        }
                    }
                }
            }
            Limit::Absolute(m)
        }),
        (None, Some(r), b) => {
            if !(r.is_finite() && r > 0.0) {
                errs.push((
                    "max_ratio".into(),
                    format!("{r}: must be a positive number"),
                ));
            }
            match b.as_deref().map(|s| (s, Baseline::parse(s))) {
                None => {
                    errs.push((
                        "baseline".into(),
                        "`max_ratio` needs `baseline` (ref_hrtimer or host_eventfd)".into(),
                    ));
                    None
                }
                Some((s, None)) => {
                    errs.push((
                        "baseline".into(),
                        format!("unknown baseline `{s}` (ref_hrtimer or host_eventfd)"),
                    ));
                    None
                }
                Some((_, Some(base))) => {
                    match figure {
                        Some(Figure::Latency(m, _)) if baseline_metric(m, base).is_none() => errs.push((
                            "baseline".into(),
                            format!("{} has no counterpart of `{}`", base.name(), m.name()),
                        )),
                        Some(Figure::Latency(..)) => {}
                        Some(f) => errs.push((
                            "max_ratio".into(),
                            format!("`{}` is not a latency figure; ratios to a baseline apply to latencies", f.name()),
                        )),
                        None => {}
                    }
                    if base == Baseline::RefHrtimer && !reference.enabled {
                        errs.push((
                            "baseline".into(),
                            "ref_hrtimer needs [reference] enabled = true".into(),
                        ));
                    }
                    Some(Limit::Ratio {
                        max: r,
                        baseline: base,
                    })
                }
            }
        }
    };
    match (figure, limit) {
        (Some(figure), Some(limit)) if errs.is_empty() => Ok(ThresholdSpec {
            mechanism,
            figure,
            limit,
        }),
        _ => Err(errs),
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
}

impl Scenario {
    /// Every mechanism the sources use.
    pub fn mechanisms(&self) -> BTreeSet<String> {
        self.sources.iter().map(|s| s.mechanism.clone()).collect()
    }

    /// Mechanisms the reference source measures.
    pub fn reference_mechanisms(&self) -> Vec<String> {
        if !self.reference.enabled {
            Vec::new()
        } else if self.reference.mechanisms.is_empty() {
            self.mechanisms().into_iter().collect()
        } else {
            self.reference.mechanisms.clone()
        }
    }

    /// The validated thresholds (those that fail validation are skipped;
    /// [`load`] and [`parse`] already rejected them).
    pub fn threshold_specs(&self) -> Vec<ThresholdSpec> {
        let m = self.mechanisms();
        self.thresholds
            .iter()
            .filter_map(|t| threshold_spec(t, &m, &self.reference).ok())
            .collect()
    }

    /// Source ids the ramp drives.
    pub fn ramp_sources(&self) -> Vec<u16> {
        match &self.ramp {
            None => Vec::new(),
            Some(r) if !r.sources.is_empty() => r.sources.clone(),
            Some(_) => self
                .sources
                .iter()
                .filter(|s| s.program.mode == Mode::Storm)
                .map(|s| s.id)
                .collect(),
        }
    }

    /// Guest time the run takes at least: warm-up + duration + ramp, ms.
    pub fn total_ms(&self) -> u64 {
        let ramp = self
            .ramp
            .as_ref()
            .map_or(0, |r| r.rates().len() as u64 * r.step_duration_ms);
        self.warmup_ms + self.duration_ms + ramp
    }

    /// Check the accelerator the run got (`tcg` or `kvm`) against
    /// `[guest] accel`; the error says why the run cannot go on.
    pub fn check_accel(&self, actual: &str) -> Result<(), String> {
        let want = match self.guest.accel {
            AccelRequirement::Any => return Ok(()),
            AccelRequirement::Kvm => "kvm",
            AccelRequirement::Tcg => "tcg",
        };
        if actual == want {
            Ok(())
        } else {
            Err(format!(
                "scenario `{}` requires accel = \"{want}\" ([guest] accel), but the run uses {actual}",
                self.name
            ))
        }
    }

    /// Validate against the device limits the scenario declares.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        self.validate_against(&self.device)
    }

    /// Validate against given device limits (e.g. those GET_INFO reported).
    pub fn validate_against(&self, dev: &DeviceLimits) -> Result<(), Vec<Problem>> {
        let mut p = Problems(Vec::new());
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            p.add(
                "name",
                format!("`{}`: use 1+ characters of [A-Za-z0-9_.-]", self.name),
            );
        }
        if self.duration_ms == 0 {
            p.add("duration_ms", "must be > 0");
        }
        if self.duration_ms > 3_600_000 {
            p.add("duration_ms", "at most 3600000 (1 h)");
        }
        if self.warmup_ms > 600_000 {
            p.add("warmup_ms", "at most 600000 (10 min)");
        }
        if !(1..=64).contains(&self.guest.smp) {
            p.add("guest.smp", format!("{}: must be 1..=64", self.guest.smp));
        }
        if !(1..=64).contains(&dev.num_sources) {
            p.add(
                "device.num_sources",
                format!("{}: must be 1..=64 (spec §4)", dev.num_sources),
            );
        }
        if dev.max_rate_hz == 0 {
            p.add("device.max_rate_hz", "must be > 0");
        }
        if dev.max_burst == 0 || dev.max_burst > u16::MAX as u32 {
            p.add("device.max_burst", "must be 1..=65535 (a u16 on the wire)");
        }
        if self.sources.is_empty() {
            p.add("sources", "at least one source is needed");
        }
        let mut ids = BTreeSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            self.validate_source(i, s, dev, &mut ids, &mut p);
        }
        self.validate_rate_sum(dev, &mut p);
        // reference
        if self.reference.enabled {
            if self.reference.period_us == 0 || self.reference.period_us > 1_000_000 {
                p.add(
                    "reference.period_us",
                    format!("{}: must be 1..=1000000", self.reference.period_us),
                );
            }
            for (i, m) in self.reference.mechanisms.iter().enumerate() {
                if mechanism_id(m).is_none() {
                    p.add(
                        format!("reference.mechanisms[{i}]"),
                        format!("unknown mechanism `{m}`"),
                    );
                }
            }
        }
        if let Some(r) = &self.ramp {
            self.validate_ramp(r, dev, &mut p);
        }
        let mechs = self.mechanisms();
        for (i, t) in self.thresholds.iter().enumerate() {
            if let Err(errs) = threshold_spec(t, &mechs, &self.reference) {
                for (f, m) in errs {
                    p.add(format!("thresholds[{i}].{f}"), m);
                }
            }
        }
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(p.0)
        }
    }

    fn validate_source(
        &self,
        i: usize,
        s: &Source,
        dev: &DeviceLimits,
        ids: &mut BTreeSet<u16>,
        p: &mut Problems,
    ) {
        let f = |x: &str| format!("sources[{i}].{x}");
        if s.id >= dev.num_sources {
            p.add(
                f("id"),
                format!(
                    "{}: must be < device.num_sources ({})",
                    s.id, dev.num_sources
                ),
            );
        }
        if !ids.insert(s.id) {
            p.add(f("id"), format!("duplicate source id {}", s.id));
        }
        if mechanism_id(&s.mechanism).is_none() {
            p.add(
                f("mechanism"),
                format!(
                    "unknown mechanism `{}` (one of {})",
                    s.mechanism,
                    MECHANISMS.join(", ")
                ),
            );
        } else if s.work.kind == WorkKind::Sleep && !is_sleepable(&s.mechanism) {
            p.add(
                f("work.kind"),
                format!(
                    "`sleep` work on `{}`: its bottom half runs in atomic context and cannot sleep (the driver refuses it); use `busy` or a sleepable mechanism",
                    s.mechanism
                ),
            );
        }
        match s.work.kind {
            WorkKind::None if s.work.us != 0 => {
                p.add(f("work.us"), "must be 0 with kind = \"none\"")
            }
            WorkKind::Busy | WorkKind::Sleep if s.work.us == 0 => {
                p.add(f("work.us"), "must be > 0 for busy/sleep work")
            }
            _ => {}
        }
        if s.work.us > MAX_WORK_US {
            p.add(
                f("work.us"),
                format!("{}: at most {MAX_WORK_US}", s.work.us),
            );
        }
        let m = &s.moderation;
        if m.events > 1024 {
            p.add(
                f("moderation.events"),
                format!("{}: must be 0..=1024 (spec §6.1.2)", m.events),
            );
        }
        if m.delay_us > 1_000_000 {
            p.add(
                f("moderation.delay_us"),
                format!("{}: must be 0..=1000000 (spec §6.1.2)", m.delay_us),
            );
        }
        // the host control socket may use moderation without the feature
        // (spec §9); the guest driver needs it negotiated
        if (m.events > 1 || m.delay_us > 0) && !dev.moderation && s.driven_by == DrivenBy::Guest {
            p.add(
                f("moderation"),
                "needs device.moderation = true (IRQSTORM_F_MODERATION) for a guest-driven source",
            );
        }
        if m.events <= 1 && m.delay_us > 0 {
            p.add(
                f("moderation.delay_us"),
                "has no effect unless moderation.events > 1 (spec §5.3)",
            );
        }
        let g = &s.program;
        let pf = |x: &str| format!("sources[{i}].program.{x}");
        match g.mode {
            Mode::Oneshot | Mode::Periodic => {
                if g.period_us == 0 {
                    p.add(pf("period_us"), "required (> 0) for oneshot/periodic");
                } else if g.period_us > MAX_PERIOD_US {
                    p.add(
                        pf("period_us"),
                        format!(
                            "{}: at most {MAX_PERIOD_US} (1 hour, spec §6.1.2)",
                            g.period_us
                        ),
                    );
                } else if g.mode == Mode::Periodic
                    && g.period_us.saturating_mul(1000) < dev.min_period_ns as u64
                {
                    p.add(
                        pf("period_us"),
                        format!(
                            "{} us is below device.min_period_ns ({} ns)",
                            g.period_us, dev.min_period_ns
                        ),
                    );
                }
                if g.rate_hz != 0 {
                    p.add(pf("rate_hz"), "only for storm programs");
                }
                if g.burst > 1 {
                    p.add(pf("burst"), "only for storm programs (0 or 1 here)");
                }
                if g.mode == Mode::Oneshot && g.jitter != Jitter::None {
                    p.add(
                        pf("jitter"),
                        "jitter applies to periodic and storm programs only",
                    );
                }
            }
            Mode::Storm => {
                if g.period_us != 0 {
                    p.add(
                        pf("period_us"),
                        "not used by storm programs (use rate_hz and burst)",
                    );
                }
                if g.rate_hz == 0 {
                    p.add(pf("rate_hz"), "required (> 0) for storm");
                } else if g.rate_hz > dev.max_rate_hz {
                    p.add(
                        pf("rate_hz"),
                        format!(
                            "{}: above device.max_rate_hz ({})",
                            g.rate_hz, dev.max_rate_hz
                        ),
                    );
                }
                if g.burst > dev.max_burst {
                    p.add(
                        pf("burst"),
                        format!("{}: above device.max_burst ({})", g.burst, dev.max_burst),
                    );
                }
                if let Some(gap) = g.nominal_gap_ns() {
                    if gap < dev.min_period_ns as u64 {
                        p.add(
                            pf("rate_hz"),
                            format!(
                                "inter-burst gap burst/rate_hz = {gap} ns is below device.min_period_ns ({} ns): raise burst or lower rate_hz",
                                dev.min_period_ns
                            ),
                        );
                    }
                }
            }
        }
        match g.jitter {
            Jitter::Uniform => match g.nominal_gap_ns() {
                Some(gap) if g.jitter_us.saturating_mul(1000) >= gap => p.add(
                    pf("jitter_us"),
                    format!(
                        "{} us must be below the nominal gap ({gap} ns)",
                        g.jitter_us
                    ),
                ),
                _ if g.jitter_us == 0 => {
                    p.add(pf("jitter_us"), "uniform jitter needs jitter_us > 0")
                }
                _ => {}
            },
            _ if g.jitter_us != 0 => p.add(pf("jitter_us"), "only with jitter = \"uniform\""),
            _ => {}
        }
        if g.mode == Mode::Oneshot && (g.count > 1 || g.duration_ms != 0) {
            p.add(
                pf("count"),
                "a oneshot program raises one event; count/duration_ms do not apply",
            );
        }
        if s.start_delay_ms >= self.duration_ms && self.duration_ms > 0 {
            p.add(
                f("start_delay_ms"),
                format!("{} ms: starts after the run ends", s.start_delay_ms),
            );
        }
    }

    /// The sum of the rates of the sources running at the same time must stay
    /// within `max_rate_hz` (spec §4, §6.1.2).
    fn validate_rate_sum(&self, dev: &DeviceLimits, p: &mut Problems) {
        let end = |s: &Source| -> u64 {
            let d = if s.program.duration_ms == 0 {
                u64::MAX
            } else {
                s.program.duration_ms
            };
            s.start_delay_ms.saturating_add(d)
        };
        let mut worst = (0.0f64, 0u64);
        for a in &self.sources {
            let t = a.start_delay_ms;
            let sum: f64 = self
                .sources
                .iter()
                .filter(|s| s.start_delay_ms <= t && t < end(s))
                .map(|s| s.program.rate_hz())
                .sum();
            if sum > worst.0 {
                worst = (sum, t);
            }
        }
        if worst.0 > dev.max_rate_hz as f64 {
            p.add(
                "sources",
                format!(
                    "sources running together at t = {} ms raise {:.0} events/s, above device.max_rate_hz ({}); stagger them with start_delay_ms/duration_ms or lower the rates",
                    worst.1, worst.0, dev.max_rate_hz
                ),
            );
        }
    }

    fn validate_ramp(&self, r: &Ramp, dev: &DeviceLimits, p: &mut Problems) {
        if r.start_hz == 0 {
            p.add("ramp.start_hz", "must be > 0");
        }
        if r.max_hz < r.start_hz {
            p.add(
                "ramp.max_hz",
                format!("{} is below start_hz ({})", r.max_hz, r.start_hz),
            );
        }
        if r.max_hz > dev.max_rate_hz {
            p.add(
                "ramp.max_hz",
                format!(
                    "{}: above device.max_rate_hz ({})",
                    r.max_hz, dev.max_rate_hz
                ),
            );
        }
        match (r.step_hz, r.step_factor) {
            (Some(0), None) => p.add("ramp.step_hz", "must be > 0"),
            (None, Some(f)) if !(f.is_finite() && f > 1.0) => {
                p.add("ramp.step_factor", format!("{f}: must be > 1"))
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => p.add("ramp", "give exactly one of step_hz and step_factor"),
        }
        if r.step_duration_ms == 0 {
            p.add("ramp.step_duration_ms", "must be > 0");
        }
        for (k, v) in [
            ("stop_coalesced_ratio", r.stop_coalesced_ratio),
            ("stop_loss_ratio", r.stop_loss_ratio),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                p.add(format!("ramp.{k}"), format!("{v}: must be in (0, 1]"));
            }
        }
        let n = r.rates().len();
        if n >= MAX_RAMP_STEPS {
            p.add(
                "ramp",
                format!("more than {MAX_RAMP_STEPS} steps; use a larger step"),
            );
        }
        let targets = self.ramp_sources();
        if targets.is_empty() {
            p.add("ramp.sources", "the ramp needs at least one storm source");
        }
        for (i, id) in r.sources.iter().enumerate() {
            match self.sources.iter().find(|s| s.id == *id) {
                None => p.add(
                    format!("ramp.sources[{i}]"),
                    format!("no source with id {id}"),
                ),
                Some(s) if s.program.mode != Mode::Storm => p.add(
                    format!("ramp.sources[{i}]"),
                    format!("source {id} is not a storm source"),
                ),
                _ => {}
            }
        }
        // each step's per-source rate must keep the gap above min_period_ns
        if let (Some(&top), false) = (r.rates().last(), targets.is_empty()) {
            let per = top as u64 / targets.len() as u64;
            for id in &targets {
                if let Some(s) = self.sources.iter().find(|s| s.id == *id) {
                    let burst = s.program.burst.max(1) as u64;
                    if per > 0 && burst * 1_000_000_000 / per < dev.min_period_ns as u64 {
                        p.add(
                            "ramp.max_hz",
                            format!(
                                "at {top} events/s source {id} (burst {burst}) would need gaps below device.min_period_ns ({} ns)",
                                dev.min_period_ns
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Replays the first `warmup_ms` of the measured schedule; counters and
    /// histograms are reset after it (STATS with the reset flag).
    Warmup,
    /// The measured run: every source, with its `start_delay_ms`.
    Measure,
    /// One ramp step: only the ramped sources, at `rate_hz` in total.
    RampStep { index: usize, rate_hz: u32 },
}

impl Phase {
    pub fn name(&self) -> String {
        match self {
            Phase::Warmup => "warm-up".into(),
            Phase::Measure => "measure".into(),
            Phase::RampStep { index, rate_hz } => format!("ramp {} @ {rate_hz}/s", index + 1),
        }
    }
}

/// One source to configure and start in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStart {
    pub id: u16,
    /// START's `start_delay_ns` is `start_delay_ms * 1_000_000`.
    pub start_delay_ms: u64,
    pub body: ConfigureBody,
    pub driven_by: DrivenBy,
}

/// What the xtask does in one phase: CONFIGURE and START `starts`, wait
/// `duration_ms`, STOP all, read the stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhasePlan {
    pub phase: Phase,
    pub duration_ms: u64,
    pub starts: Vec<SourceStart>,
}

impl Scenario {
    /// The run as phases: warm-up (if any), the measured run, and one phase
    /// per ramp step. A ramp step runs only the ramped sources, the step's
    /// rate split evenly between them (at least 1/s each), without count or
    /// duration limits (the step's end stops them); the ramp stops early
    /// when [`Ramp::stop_reason`] says so.
    pub fn plan(&self) -> Vec<PhasePlan> {
        let all: Vec<SourceStart> = self
            .sources
            .iter()
            .map(|s| SourceStart {
                id: s.id,
                start_delay_ms: s.start_delay_ms,
                body: s.configure_body(),
                driven_by: s.driven_by,
            })
            .collect();
        let mut out = Vec::new();
        if self.warmup_ms > 0 {
            out.push(PhasePlan {
                phase: Phase::Warmup,
                duration_ms: self.warmup_ms,
                starts: all
                    .iter()
                    .filter(|s| s.start_delay_ms < self.warmup_ms)
                    .copied()
                    .collect(),
            });
        }
        out.push(PhasePlan {
            phase: Phase::Measure,
            duration_ms: self.duration_ms,
            starts: all,
        });
        if let Some(r) = &self.ramp {
            let ids = self.ramp_sources();
            for (index, rate_hz) in r.rates().into_iter().enumerate() {
                let per = (rate_hz / ids.len().max(1) as u32).max(1);
                let starts = self
                    .sources
                    .iter()
                    .filter(|s| ids.contains(&s.id))
                    .map(|s| {
                        let mut body = s.configure_body();
                        body.rate_hz = per;
                        body.count = 0;
                        body.duration_ns = 0;
                        SourceStart {
                            id: s.id,
                            start_delay_ms: 0,
                            body,
                            driven_by: s.driven_by,
                        }
                    })
                    .collect();
                out.push(PhasePlan {
                    phase: Phase::RampStep { index, rate_hz },
                    duration_ms: r.step_duration_ms,
                    starts,
                });
            }
        }
        out
    }
}

/// Parse and validate scenario text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
    let sc: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
        path: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    sc.validate().map_err(|problems| ScenarioError::Invalid {
        path: origin.to_string(),
        problems,
    })?;
    Ok(sc)
}

/// Read, parse and validate a scenario file.
pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: shown.clone(),
        source,
    })?;
    parse(&text, &shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
duration_ms = 1000

[[sources]]
id = 0
mechanism = "tasklet"
program = { mode = "periodic", period_us = 1000 }
"#;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, "x.toml") {
            Ok(_) => Vec::new(),
            Err(e) => {
                let s = e.to_string();
                assert!(s.starts_with("x.toml: "), "{s}");
                if e.problems().is_empty() {
                    vec![s]
                } else {
                    e.problems().iter().map(|p| p.to_string()).collect()
                }
            }
        }
    }

    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    #[test]
    fn minimal_parses_with_defaults() {
        let s = parse(MINIMAL, "m").unwrap();
        assert_eq!(s.guest.smp, 2);
        assert_eq!(s.device.num_sources, 8);
        assert!(s.reference.enabled);
        assert_eq!(s.reference_mechanisms(), vec!["tasklet".to_string()]);
        let b = s.sources[0].configure_body();
        assert_eq!(
            (b.mode, b.period_ns, b.burst, b.rate_hz),
            (2, 1_000_000, 0, 0)
        );
        assert_eq!(s.total_ms(), 1000);
    }

    #[test]
    fn every_scenario_file_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) == Some("toml") {
                let s = load(&p).unwrap_or_else(|e| panic!("{e}"));
                assert!(!s.description.is_empty(), "{}: no description", p.display());
                n += 1;
            }
        }
        assert!(n >= 4, "found {n} scenario files");
    }

    #[test]
    fn docs_example_validates() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenarios.md"),
        )
        .unwrap();
        let start = doc
            .find("## Example\n\n```toml\n")
            .expect("example section")
            + "## Example\n\n```toml\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let s = parse(&doc[start..end], "docs/scenarios.md").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.threshold_specs().len(), 3);
    }

    #[test]
    fn default_scenario_covers_every_mechanism_with_timer_and_storm() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let s = load(dir.join("default.toml")).unwrap();
        for m in MECHANISMS {
            let modes: BTreeSet<_> = s
                .sources
                .iter()
                .filter(|x| x.mechanism == m)
                .map(|x| format!("{:?}", x.program.mode))
                .collect();
            assert!(
                modes.contains("Periodic") && modes.contains("Storm"),
                "{m}: {modes:?}"
            );
        }
        assert!(s.total_ms() < 60_000, "{} ms of guest time", s.total_ms());
        let q = load(dir.join("ci-quick.toml")).unwrap();
        assert!(q.total_ms() <= 15_000);
        let r = load(dir.join("storm-ramp.toml")).unwrap();
        assert!(r.ramp.is_some() && !r.ramp_sources().is_empty());
    }

    #[test]
    fn unknown_keys_rejected_with_location() {
        let e = problems(&with("bogus = 1\n"));
        assert!(e[0].contains("unknown field `bogus`"), "{e:?}");
        let e = problems(&MINIMAL.replace("period_us = 1000", "period_us = 1000, perid = 3"));
        assert!(e[0].contains("unknown field `perid`"), "{e:?}");
        let e = problems(&MINIMAL.replace("\"periodic\"", "\"burst\""));
        assert!(e[0].contains("unknown variant `burst`"), "{e:?}");
    }

    #[test]
    fn ranges_checked_against_device_limits() {
        let text = r#"
name = "bad name!"
duration_ms = 0
[guest]
smp = 0
[device]
num_sources = 2
max_burst = 16
min_period_ns = 50000
[[sources]]
id = 2
mechanism = "tasklet"
program = { mode = "periodic", period_us = 10, rate_hz = 5 }
moderation = { events = 2000, delay_us = 2000000 }
[[sources]]
id = 1
mechanism = "bogus"
program = { mode = "storm", rate_hz = 100000, burst = 32, jitter = "uniform", jitter_us = 400 }
[[sources]]
id = 1
mechanism = "threaded"
program = { mode = "storm" }
work = { kind = "busy" }
"#;
        let e = problems(text).join("\n");
        for want in [
            "name: `bad name!`",
            "duration_ms: must be > 0",
            "guest.smp: 0",
            "sources[0].id: 2: must be < device.num_sources (2)",
            "sources[0].program.period_us: 10 us is below device.min_period_ns (50000 ns)",
            "sources[0].program.rate_hz: only for storm",
            "sources[0].moderation.events: 2000",
            "sources[0].moderation.delay_us: 2000000",
            "sources[1].mechanism: unknown mechanism `bogus`",
            "sources[1].program.burst: 32: above device.max_burst (16)",
            "sources[1].program.jitter_us: 400 us must be below the nominal gap (320000 ns)",
            "sources[2].id: duplicate source id 1",
            "sources[2].program.rate_hz: required",
            "sources[2].work.us: must be > 0",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
    }

    #[test]
    fn storm_gap_and_rate_sum() {
        let t = with(
            r#"
[[sources]]
id = 1
mechanism = "bh_wq"
program = { mode = "storm", rate_hz = 450000 }
[device]
min_period_ns = 10000
"#,
        );
        let e = problems(&t).join("\n");
        assert!(
            e.contains(
                "inter-burst gap burst/rate_hz = 2222 ns is below device.min_period_ns (10000 ns)"
            ),
            "{e}"
        );
        assert!(!e.contains("above device.max_rate_hz"), "{e}");
        let t = with(
            r#"
[device]
max_rate_hz = 100000
[[sources]]
id = 1
mechanism = "bh_wq"
program = { mode = "storm", rate_hz = 60000, burst = 8 }
[[sources]]
id = 2
mechanism = "bh_wq"
program = { mode = "storm", rate_hz = 60000, burst = 8 }
"#,
        );
        let e = problems(&t).join("\n");
        assert!(
            e.contains("raise 121000 events/s, above device.max_rate_hz (100000)"),
            "{e}"
        );
        // staggered: no overlap, fine
        let t = t.replace(
            "rate_hz = 60000, burst = 8 }\n[[sources]]",
            "rate_hz = 60000, burst = 8, duration_ms = 200 }\n[[sources]]",
        ) + "start_delay_ms = 300\n";
        assert!(problems(&t).is_empty(), "{:?}", problems(&t));
    }

    #[test]
    fn sleep_on_atomic_mechanisms_rejected_with_reason() {
        for m in crate::model::NON_SLEEPABLE {
            let t = MINIMAL.replace("\"tasklet\"", &format!("\"{m}\""))
                + "work = { kind = \"sleep\", us = 50 }\n";
            let e = problems(&t).join("\n");
            assert!(
                e.contains("sources[0].work.kind: `sleep` work on"),
                "{m}: {e}"
            );
            assert!(e.contains("atomic context"), "{e}");
        }
        for m in [
            "threaded",
            "wq_system",
            "wq_dedicated",
            "kthread",
            "completion",
            "wq_unbound",
        ] {
            let t = MINIMAL.replace("\"tasklet\"", &format!("\"{m}\""))
                + "work = { kind = \"sleep\", us = 50 }\n";
            assert!(problems(&t).is_empty(), "{m}: {:?}", problems(&t));
        }
    }

    #[test]
    fn thresholds_validated() {
        let t = with(
            r#"
[[thresholds]]
mechanism = "*"
figure = "raise_to_ack.p99"
max = "2ms"
[[thresholds]]
mechanism = "tasklet"
figure = "hardirq_to_bh.p99.9"
max = { tcg = "20ms", kvm = "500us" }
[[thresholds]]
mechanism = "tasklet"
figure = "hardirq_to_bh.p99"
max_ratio = 4.0
baseline = "ref_hrtimer"
[[thresholds]]
mechanism = "*"
figure = "coalesced_ratio"
max = 0.05
[[thresholds]]
mechanism = "*"
figure = "dropped"
max = 0
"#,
        );
        let s = parse(&t, "t").unwrap();
        let specs = s.threshold_specs();
        assert_eq!(specs.len(), 5);
        assert_eq!(specs[0].absolute_for("kvm"), Some(2e6));
        assert_eq!(specs[1].absolute_for("kvm"), Some(500e3));
        assert_eq!(specs[1].absolute_for("tcg"), Some(20e6));
        assert_eq!(
            specs[1].figure,
            Figure::Latency(Metric::HardirqToBh, Stat::P999)
        );
        assert_eq!(
            specs[2].limit,
            Limit::Ratio {
                max: 4.0,
                baseline: Baseline::RefHrtimer
            }
        );
        assert_eq!(specs[3].absolute_for("tcg"), Some(0.05));
    }

    #[test]
    fn bad_thresholds_rejected() {
        let t = with(
            r#"
[reference]
enabled = false
[[thresholds]]
mechanism = "hrtimer"
figure = "raise_to_ack.p42"
max = "2 parsecs"
[[thresholds]]
mechanism = "tasklet"
figure = "raise_to_ack.p99"
max = 5
[[thresholds]]
mechanism = "tasklet"
figure = "coalesced_ratio"
max = "1ms"
[[thresholds]]
mechanism = "tasklet"
figure = "hardirq_to_bh.p99"
max_ratio = 2.0
baseline = "ref_hrtimer"
[[thresholds]]
mechanism = "tasklet"
figure = "raise_to_ack.p99"
max_ratio = 2.0
[[thresholds]]
mechanism = "tasklet"
figure = "raise_to_ack.max"
max = { tcg = "1ms", whpx = "1ms" }
[[thresholds]]
mechanism = "tasklet"
figure = "raise_to_ack.max"
max = "1ms"
max_ratio = 3.0
[[thresholds]]
mechanism = "tasklet"
figure = "coalesced_ratio"
max_ratio = 3.0
baseline = "host_eventfd"
[[thresholds]]
mechanism = "nope"
figure = "dropped"
max = 1.5
"#,
        );
        let e = problems(&t).join("\n");
        for want in [
            "thresholds[0].mechanism: no source uses mechanism `hrtimer`",
            "thresholds[0].figure: unknown figure `raise_to_ack.p42`",
            "thresholds[1].max: a latency limit needs a unit",
            "thresholds[2].max: `1ms`: this figure takes a plain number",
            "thresholds[3].baseline: ref_hrtimer needs [reference] enabled = true",
            "thresholds[4].baseline: `max_ratio` needs `baseline`",
            "thresholds[5].max.whpx: unknown accelerator `whpx`",
            "thresholds[6].max: give either `max`, or `max_ratio`",
            "thresholds[7].max_ratio: `coalesced_ratio` is not a latency figure",
            "thresholds[8].mechanism: unknown mechanism `nope`",
            "thresholds[8].max: 1.5: a count limit must be a whole number",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
        // raise_to_ack has no ref_hrtimer counterpart
        let t = with(
            "[[thresholds]]\nmechanism = \"*\"\nfigure = \"raise_to_ack.p99\"\nmax_ratio = 2.0\nbaseline = \"ref_hrtimer\"\n",
        );
        assert!(problems(&t)
            .join("\n")
            .contains("ref_hrtimer has no counterpart of `raise_to_ack`"));
    }

    #[test]
    fn plan_has_warmup_measure_and_ramp_steps() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let s = load(dir.join("storm-ramp.toml")).unwrap();
        let p = s.plan();
        assert_eq!(p[0].phase, Phase::Warmup);
        assert_eq!(p[1].phase, Phase::Measure);
        assert_eq!(p[1].starts.len(), s.sources.len());
        let steps = &p[2..];
        assert_eq!(steps.len(), s.ramp.as_ref().unwrap().rates().len());
        assert_eq!(
            steps[0].phase,
            Phase::RampStep {
                index: 0,
                rate_hz: 1000
            }
        );
        assert_eq!(steps[0].phase.name(), "ramp 1 @ 1000/s");
        // two ramped storm sources share the rate; the periodic source idles
        assert_eq!(steps[0].starts.len(), 2);
        assert!(steps[0]
            .starts
            .iter()
            .all(|x| x.body.rate_hz == 500 && x.body.mode == 3));
        assert_eq!(p.iter().map(|x| x.duration_ms).sum::<u64>(), s.total_ms());
        // warm-up replays only what starts within it
        let d = load(dir.join("default.toml")).unwrap();
        let dp = d.plan();
        assert_eq!(dp[0].starts.len(), 14); // the timers; storms start at >= 1000 ms
        assert!(dp[0].starts.iter().all(|x| x.body.mode == 2));
    }

    #[test]
    fn accel_requirement() {
        let any = parse(MINIMAL, "m").unwrap();
        assert!(any.check_accel("tcg").is_ok());
        let kvm = parse(&with("[guest]\naccel = \"kvm\"\n"), "m").unwrap();
        assert!(kvm.check_accel("kvm").is_ok());
        assert_eq!(
            kvm.check_accel("tcg").unwrap_err(),
            "scenario `t` requires accel = \"kvm\" ([guest] accel), but the run uses tcg"
        );
    }

    #[test]
    fn control_socket_requests() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let s = load(dir.join("default.toml")).unwrap();
        let plan = s.plan();
        let storm = plan[1].starts.iter().find(|x| x.id == 14).unwrap();
        let c = storm.body.control_configure(storm.id, 2);
        assert_eq!(c["cmd"], "configure");
        assert_eq!(c["device"], 2);
        assert_eq!(c["mode"], "storm");
        assert_eq!(c["jitter"], "exponential");
        assert_eq!(c["rate_hz"], 5000);
        assert_eq!(c["burst"], 8);
        assert_eq!(c["period_ns"], 0);
        assert_eq!(c["duration_ns"], 1_000_000_000u64);
        let st = storm.control_start(2);
        assert_eq!(st["start_delay_ns"], 1_000_000_000u64);
        let timer = plan[1].starts.iter().find(|x| x.id == 0).unwrap();
        let c = timer.body.control_configure(0, 0);
        assert_eq!(
            (
                c["mode"].as_str(),
                c["period_ns"].as_u64(),
                c["burst"].as_u64()
            ),
            (Some("periodic"), Some(2_000_000), Some(0))
        );
        assert_eq!(c["jitter_ns"], 100_000);

        let info = serde_json::json!({"num_sources": 4, "max_rate_hz": 1000, "min_period_ns": 2000, "max_burst": 8, "max_outstanding": 5});
        let lim = s.device.with_info(&info).unwrap();
        assert_eq!(
            (lim.num_sources, lim.max_rate_hz, lim.max_burst),
            (4, 1000, 8)
        );
        let e = s.validate_against(&lim).unwrap_err();
        assert!(e.iter().any(|p| p.field == "sources[4].id"), "{e:?}");
        assert!(s
            .device
            .with_info(&serde_json::json!({}))
            .unwrap_err()
            .contains("num_sources"));
    }

    #[test]
    fn moderation_and_period_limits() {
        let t = MINIMAL.replace("period_us = 1000 }", "period_us = 4000000000 }")
            + "moderation = { delay_us = 50 }\n";
        let e = problems(&t).join("\n");
        assert!(
            e.contains("program.period_us: 4000000000: at most 3600000000"),
            "{e}"
        );
        assert!(
            e.contains("moderation.delay_us: has no effect unless moderation.events > 1"),
            "{e}"
        );
        let t = with("[device]\nmoderation = false\n").replace(
            "period_us = 1000 }",
            "period_us = 1000 }\nmoderation = { events = 4 }\ndriven_by = \"guest\"",
        );
        let e = problems(&t).join("\n");
        assert!(
            e.contains("sources[0].moderation: needs device.moderation = true"),
            "{e}"
        );
        // the host may moderate without the feature
        assert!(problems(&t.replace("driven_by = \"guest\"", "driven_by = \"host\"")).is_empty());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_ns("500us"), Ok(500_000.0));
        assert_eq!(parse_duration_ns("1.5ms"), Ok(1_500_000.0));
        assert_eq!(parse_duration_ns("2 s"), Ok(2e9));
        assert_eq!(parse_duration_ns("800ns"), Ok(800.0));
        assert!(parse_duration_ns("12").is_err());
        assert!(parse_duration_ns("ms").is_err());
        assert!(parse_duration_ns("3h").is_err());
    }

    #[test]
    fn ramp_rates_and_validation() {
        let r = Ramp {
            sources: vec![],
            start_hz: 1000,
            max_hz: 10_000,
            step_hz: None,
            step_factor: Some(2.0),
            step_duration_ms: 500,
            stop_coalesced_ratio: 0.01,
            stop_loss_ratio: 0.01,
        };
        assert_eq!(r.rates(), vec![1000, 2000, 4000, 8000]);
        let add = Ramp {
            step_hz: Some(3000),
            step_factor: None,
            ..r.clone()
        };
        assert_eq!(add.rates(), vec![1000, 4000, 7000, 10_000]);
        assert!(r
            .stop_reason(0.02, 0.0)
            .unwrap()
            .contains("coalesced/raised 0.0200"));
        assert!(r.stop_reason(0.0, 0.5).unwrap().contains("stop_loss_ratio"));
        assert_eq!(r.stop_reason(0.001, 0.0), None);

        let t = with(
            "[ramp]\nsources = [0, 7]\nstart_hz = 100\nmax_hz = 50\nstep_hz = 10\nstep_factor = 1.5\nstep_duration_ms = 0\nstop_coalesced_ratio = 2.0\n",
        );
        let e = problems(&t).join("\n");
        for want in [
            "ramp.max_hz: 50 is below start_hz (100)",
            "ramp: give exactly one of step_hz and step_factor",
            "ramp.step_duration_ms: must be > 0",
            "ramp.stop_coalesced_ratio: 2: must be in (0, 1]",
            "ramp.sources[0]: source 0 is not a storm source",
            "ramp.sources[1]: no source with id 7",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
    }

    #[test]
    fn io_and_syntax_errors_name_the_file() {
        let e = load("/nonexistent/x.toml").unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/x.toml: cannot read"), "{e}");
        let e = parse("name = \n", "f.toml").unwrap_err().to_string();
        assert!(e.starts_with("f.toml: TOML parse error at line 1"), "{e}");
    }
}
