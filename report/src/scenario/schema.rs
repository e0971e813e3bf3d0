//! The scenario file's types (`docs/scenarios.md`), their defaults, and the
//! figures derived from them (rates, gaps, the CONFIGURE body, run length).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::control::ConfigureBody;
use super::threshold::{threshold_spec, Threshold, ThresholdSpec};

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
    pub timerlat: Timerlat,
    #[serde(default)]
    pub time_base: TimeBase,
    #[serde(default)]
    pub ramp: Option<Ramp>,
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    #[serde(default)]
    pub gates: Gates,
}

/// Default `[gates] max_vcpu_wait_share`: a vCPU that waited for a host
/// core more than 5 % of the measured phase makes the run disturbed.
pub const DEFAULT_MAX_VCPU_WAIT_SHARE: f64 = 0.05;

fn d_max_vcpu_wait_share() -> f64 {
    DEFAULT_MAX_VCPU_WAIT_SHARE
}

/// How the gate judges the run as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Largest share of the measured phase any QEMU vCPU thread may spend
    /// waiting for a host core (run-queue wait) before the run is
    /// disturbed and its latency thresholds are not judged; 0 < x <= 1
    /// (1: never disturbed).
    #[serde(default = "d_max_vcpu_wait_share")]
    pub max_vcpu_wait_share: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            max_vcpu_wait_share: d_max_vcpu_wait_share(),
        }
    }
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
    /// CPUs the device's IRQ may run on, a Linux CPU list (`1`, `0-1`,
    /// `0,2`) written to `/proc/irq/N/smp_affinity_list` after the module
    /// loads; unset: the kernel's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irq_affinity: Option<String>,
    /// The CPU `wq_system`, `wq_highpri` and `wq_dedicated` work is queued
    /// on (`queue_work_on`, the driver's `wq_cpu`); unset: the queueing CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wq_cpu: Option<u32>,
    /// Work items per process-context workqueue mechanism (the driver's
    /// `work_items`, 1..=16): how many of its records the queue may run at
    /// once. Unset: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_items: Option<u32>,
    /// `max_active` of the driver's `wq_dedicated` queue (`wq_max_active`,
    /// 0..=2048; 0 = the kernel's default). Unset: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wq_max_active: Option<u32>,
    /// SCHED_FIFO priority (1..=99) of the guest program `irqstorm-wait`,
    /// the reader of mechanism `user`; unset: SCHED_OTHER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_fifo: Option<u32>,
}

fn default_smp() -> u32 {
    2
}

impl Default for Guest {
    fn default() -> Self {
        Guest {
            smp: default_smp(),
            accel: AccelRequirement::Any,
            irq_affinity: None,
            wq_cpu: None,
            work_items: None,
            wq_max_active: None,
            user_fifo: None,
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
    /// Delay mechanisms (`timer_list`, `hrtimer`, `wq_delayed`,
    /// `kthread_msleep`, `kthread_usleep`): the delay each run asks for,
    /// us (0..=1000000); the report gives their lateness (actual - requested).
    #[serde(default)]
    pub delay_us: u32,
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
    /// Sleep for `us` (sleepable mechanisms only): `usleep_range` below
    /// 20 ms, `msleep` from there.
    Sleep,
    /// `msleep(ceil(us / 1000))`: whole jiffies, at least one more.
    Msleep,
    /// `usleep_range(us, us + us / 4 + 1)`: the hrtimer.
    Usleep,
    /// `schedule_timeout_uninterruptible(usecs_to_jiffies(us))`.
    Timeout,
}

impl WorkKind {
    /// Whether the work sleeps (refused in atomic contexts).
    pub fn sleeps(self) -> bool {
        !matches!(self, WorkKind::None | WorkKind::Busy)
    }
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

/// The kernel's timerlat tracer in the guest over the measured phase, as a
/// baseline beside the driver's hrtimer reference (`baselines.timerlat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timerlat {
    /// Off by default: its SCHED_FIFO:95 threads wake every period on every
    /// CPU, which the mechanisms then share the guest with.
    #[serde(default)]
    pub enabled: bool,
    /// `osnoise/timerlat_period_us`: the kernel takes 100..=1000000.
    #[serde(default = "d_timerlat_period")]
    pub period_us: u64,
}

fn d_timerlat_period() -> u64 {
    1000
}

/// The kernel's bounds of `osnoise/timerlat_period_us`.
pub const TIMERLAT_PERIOD_US: std::ops::RangeInclusive<u64> = 100..=1_000_000;

impl Default for Timerlat {
    fn default() -> Self {
        Timerlat {
            enabled: false,
            period_us: d_timerlat_period(),
        }
    }
}

impl Timerlat {
    /// Trace ring-buffer size per CPU (KiB) that holds every sample of a
    /// measured phase of `duration_ms`: two entries per activation, 64
    /// bytes each with the ring buffer's headers, plus a quarter spare.
    pub fn buffer_kb(&self, duration_ms: u64) -> u64 {
        let activations = duration_ms.saturating_mul(1000) / self.period_us.max(1) + 1;
        (activations * 2 * 64 * 5 / 4).div_ceil(1024).max(64)
    }
}

/// The shared TSC time base during the measured phase (docs/clock-offset.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeBase {
    /// Time between the guest's calibrations (1 ms windows each). Each
    /// one-way estimate is bounded by the calibrations around it, so under
    /// TCG, where the guest TSC gains on the host's irregularly, the bound
    /// grows with this interval.
    #[serde(default = "d_calibrate_every_ms")]
    pub calibrate_every_ms: u64,
}

fn d_calibrate_every_ms() -> u64 {
    250
}

/// What `time_base.calibrate_every_ms` may be: from 20 ms (each window
/// takes 1 ms of a vCPU and of the back end) to 10 s.
pub const CALIBRATE_EVERY_MS: std::ops::RangeInclusive<u64> = 20..=10_000;

impl Default for TimeBase {
    fn default() -> Self {
        TimeBase {
            calibrate_every_ms: d_calibrate_every_ms(),
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

impl Scenario {
    /// Every mechanism the sources use.
    pub fn mechanisms(&self) -> BTreeSet<String> {
        self.sources.iter().map(|s| s.mechanism.clone()).collect()
    }

    /// Mechanisms the reference source measures.
    /// `user` is left out: the reference is a kernel hrtimer feeding kernel
    /// bottom halves (the driver never hands it to a user reader).
    pub fn reference_mechanisms(&self) -> Vec<String> {
        if !self.reference.enabled {
            Vec::new()
        } else if self.reference.mechanisms.is_empty() {
            self.mechanisms()
                .into_iter()
                .filter(|m| m != "user")
                .collect()
        } else {
            self.reference.mechanisms.clone()
        }
    }

    /// The validated thresholds (those that fail validation are skipped;
    /// [`load`](super::load) and [`parse`](super::parse) already rejected them).
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::fixtures::{with, MINIMAL};
    use crate::scenario::parse;

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
    fn ramp_rates_and_stop_reason() {
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
    }
}
