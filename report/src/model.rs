//! The run result data model: what one `cargo xtask run` measured. This is
//! the schema of `report.json` (documented field by field in
//! `docs/report.md`); field names are stable, additions bump nothing,
//! renames or removals bump [`SCHEMA_VERSION`].

use serde::{Deserialize, Serialize};

use crate::hist::{Distribution, HistError, LatencySummary};

mod conditions;
mod timerlat;
pub use conditions::{
    BackendCpu, BackendThreadCpu, CpuFlag, GuestConditions, HostLoad, Interference, IrqPlacement,
    RunConditions, TimeBase, VcpuInterference, WakeFloorCpu, TIME_BASE_PING,
};
pub use timerlat::{TimerlatBaseline, TimerlatCpu};

/// Version of the `report.json` schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Bottom-half mechanisms, indexed by their id (device spec §6.5): the
/// back end's table, so both sides name them alike.
pub use irqstorm_protocol::wire::MECHANISM_NAMES as MECHANISMS;

/// Mechanisms whose bottom half runs in atomic context: the driver refuses
/// `sleep` work on them.
pub const NON_SLEEPABLE: [&str; 7] = [
    "hardirq",
    "tasklet",
    "tasklet_hi",
    "bh_wq",
    "bh_wq_highpri",
    "timer_list",
    "hrtimer",
];

/// The id of a mechanism name (spec §6.5).
pub fn mechanism_id(name: &str) -> Option<u8> {
    MECHANISMS.iter().position(|m| *m == name).map(|i| i as u8)
}

/// The name of a mechanism id (spec §6.5).
pub fn mechanism_name(id: u8) -> Option<&'static str> {
    MECHANISMS.get(id as usize).copied()
}

/// Whether a mechanism's bottom half may sleep.
pub fn is_sleepable(name: &str) -> bool {
    !NON_SLEEPABLE.contains(&name)
}

/// Everything one run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    pub schema_version: u32,
    pub meta: RunMeta,
    /// One row per mechanism (all devices merged when there are several).
    pub mechanisms: Vec<MechanismResult>,
    /// Per-device rows when several devices/guests ran (`--socket-count`);
    /// empty for a single device.
    #[serde(default)]
    pub per_device: Vec<MechanismResult>,
    pub baselines: Baselines,
    /// Host-to-guest clock offset estimates, one per device.
    #[serde(default)]
    pub clock_offsets: Vec<DeviceOffset>,
    /// The rate ramp, when the scenario has one.
    #[serde(default)]
    pub ramp: Option<RampResult>,
    /// Gate results (conservation and thresholds); filled by
    /// [`crate::gate::apply`].
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Host interference over the measured phase; `null` when not sampled.
    #[serde(default)]
    pub interference: Option<Interference>,
    /// Back end, QEMU, host and guest conditions; `null` when not recorded.
    #[serde(default)]
    pub run_conditions: Option<RunConditions>,
}

/// Run metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunMeta {
    /// Scenario `name`.
    pub scenario: String,
    /// Path of the scenario file as given.
    #[serde(default)]
    pub scenario_file: String,
    /// `tcg` or `kvm`.
    pub accelerator: String,
    #[serde(default)]
    pub qemu_version: String,
    #[serde(default)]
    pub kernel_version: String,
    /// The guest kernel's variant (`--kernel-variant`: preempt, rt); empty
    /// in reports from before variants.
    #[serde(default)]
    pub kernel_variant: String,
    #[serde(default)]
    pub host_kernel: String,
    /// Start of the run, RFC 3339 UTC (e.g. `2026-11-22T06:40:00Z`).
    pub start_time: String,
    /// Measured part of the run (after warm-up), ns.
    pub duration_ns: u64,
    /// Warm-up, ns.
    #[serde(default)]
    pub warmup_ns: u64,
    /// Device labels (one per vhost-user socket / guest).
    pub devices: Vec<String>,
    /// Version of this crate that wrote the report.
    #[serde(default)]
    pub tool_version: String,
    /// Notes on the run, e.g. a figure that was not measured and why.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Host (device) counters for one row; sums over the row's sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCounters {
    pub raised: u64,
    pub records: u64,
    pub coalesced: u64,
    pub pending: u64,
    /// `dropped_on_reset` of the spec.
    pub dropped: u64,
    pub acked: u64,
    #[serde(default)]
    pub bad_acks: u64,
    #[serde(default)]
    pub ack_evicted: u64,
    #[serde(default)]
    pub suppressed: u64,
}

/// Counters of several rows (devices, sources) add up field by field.
impl std::ops::AddAssign for HostCounters {
    fn add_assign(&mut self, b: Self) {
        self.raised += b.raised;
        self.records += b.records;
        self.coalesced += b.coalesced;
        self.pending += b.pending;
        self.dropped += b.dropped;
        self.acked += b.acked;
        self.bad_acks += b.bad_acks;
        self.ack_evicted += b.ack_evicted;
        self.suppressed += b.suppressed;
    }
}

/// Guest (driver) counters for one row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestCounters {
    /// Event records the driver consumed.
    pub records: u64,
    /// Raises those records stand for (sum of `count`).
    pub events: u64,
    /// Ack records the driver posted, when the driver reports it.
    #[serde(default)]
    pub acks_posted: Option<u64>,
    /// Records skipped as malformed / discontinuous (spec §8).
    #[serde(default)]
    pub errors: u64,
}

/// Latency ratios of one row to the baselines measured in the same run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ratios {
    /// `hardirq_to_bh.p99 / reference.hardirq_to_bh.p99` (same mechanism).
    pub hardirq_to_bh_p99_vs_ref_hrtimer: Option<f64>,
    /// `raise_to_ack.p99 / host_eventfd.round_trip.p99`.
    pub raise_to_ack_p99_vs_host_eventfd: Option<f64>,
    /// `hardirq_to_bh.p99 / timerlat irq_to_thread.p99` (every guest's
    /// timerlat samples together); `null` without `[timerlat]`.
    #[serde(default)]
    pub hardirq_to_bh_p99_vs_timerlat: Option<f64>,
}

/// The guest's local hrtimer reference source dispatched through the same
/// mechanism: no device involved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceResult {
    /// hrtimer expiry -> hard IRQ (timer interrupt) latency.
    #[serde(default)]
    pub timer_to_hardirq: Option<Distribution>,
    pub hardirq_to_bh: Option<Distribution>,
    pub bh_run: Option<Distribution>,
}

/// One-way device-raise -> guest-hardirq estimate (docs/clock-offset.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneWay {
    /// Distribution of the estimate, negative estimates clamped to 0.
    pub distribution: Distribution,
    /// Samples whose estimate was negative (offset error larger than the
    /// true latency).
    pub negative_samples: u64,
    /// Every value is within +/- this of the true one-way latency.
    pub error_bound_ns: u64,
    /// Events whose raw clock difference fell below the back end's base
    /// (`raw_raise_to_hardirq.below_base`, clock drift): counted, but their
    /// value is unknown, so they are not in `distribution`.
    #[serde(default)]
    pub below_base: u64,
    /// How the host-guest relation was obtained: `tsc` (the shared TSC time
    /// base, CALIBRATE) or `ping` (the NTP-style PING offset). Reports
    /// written before the TSC method read as `ping`.
    #[serde(default = "ping_method")]
    pub method: String,
    /// TSC method: records raised after the hard IRQ that found them had
    /// started (estimate below `-error_bound_ns`: that interrupt's drain
    /// picked them up): counted, not in `distribution`.
    #[serde(default)]
    pub after_irq_start: u64,
    /// TSC method: records the IRQ thread drained past the hard-IRQ budget
    /// (stamped with an earlier interrupt): counted, not in `distribution`.
    #[serde(default)]
    pub past_budget: u64,
    /// TSC method: acks that arrived while the device had no valid
    /// calibration (after a reset or a VM resume): counted, not in
    /// `distribution`.
    #[serde(default)]
    pub uncalibrated: u64,
    /// TSC method: estimates no calibration checked after them (the fit
    /// was dropped first, or the run ended without one): counted, not in
    /// `distribution`.
    #[serde(default)]
    pub unchecked: u64,
}

/// `OneWay::method` of the PING offset.
pub const METHOD_PING: &str = "ping";
/// `OneWay::method` of the shared TSC time base.
pub const METHOD_TSC: &str = "tsc";

fn ping_method() -> String {
    METHOD_PING.to_string()
}

/// Results for one mechanism (and device, in `per_device`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MechanismResult {
    pub mechanism: String,
    pub mechanism_id: u8,
    /// Device label; `null` in merged rows.
    #[serde(default)]
    pub device: Option<String>,
    /// Source ids that used this mechanism.
    #[serde(default)]
    pub sources: Vec<u16>,
    pub host: HostCounters,
    #[serde(default)]
    pub guest: Option<GuestCounters>,
    /// Host raise -> ack (HDR, ns).
    pub raise_to_ack: Option<Distribution>,
    /// Guest hard IRQ -> bottom-half start (log2, ns).
    pub hardirq_to_bh: Option<Distribution>,
    /// Guest bottom-half run time (log2, ns).
    pub bh_run: Option<Distribution>,
    /// Guest hard IRQ -> bottom-half start of the first record of each
    /// bottom-half run (acks with `ACK_F_FIRST`, HDR, ns): the per-interrupt
    /// latency, next to the per-record `hardirq_to_bh`. Null from back ends
    /// or drivers without the flag.
    #[serde(default)]
    pub irq_to_first_bh: Option<Distribution>,
    /// Records the IRQ thread drained past the hard IRQ's budget (acks with
    /// `ACK_F_PAST_BUDGET`).
    #[serde(default)]
    pub past_budget: u64,
    /// Device raise -> guest hard IRQ, via the clock-offset estimate.
    #[serde(default)]
    pub raise_to_hardirq: Option<OneWay>,
    #[serde(default)]
    pub reference: Option<ReferenceResult>,
    #[serde(default)]
    pub ratios: Ratios,
    /// Where its records ran: CPUs of the hard IRQ and of the bottom half
    /// (spec version 3 acks); null from older back ends.
    #[serde(default)]
    pub cpus: Option<CpuPlacement>,
    /// Delay mechanisms: lateness (actual - requested) of each run, by
    /// requested delay; empty for the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lateness: Vec<Lateness>,
    /// Records whose bottom half was cancelled before it ran (acks with
    /// `ACK_F_CANCELLED`): in `host.acked`, not in the distributions.
    #[serde(default)]
    pub cancelled: u64,
}

/// Lateness of one mechanism's runs at one requested delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lateness {
    /// The requested delay (us; `4294967295`: the runs of delays past the
    /// back end's 16 per mechanism, together).
    pub requested_us: u32,
    /// Bottom-half start - armed - requested (HDR, ns), first record of each
    /// run; null when every run was early.
    pub distribution: Option<Distribution>,
    /// Runs that began before their delay had passed (not in `distribution`).
    pub early: u64,
}

/// CPU placement of a mechanism's acked records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CpuPlacement {
    /// `[cpu, records]` by the hard IRQ's CPU.
    pub hard: Vec<(u16, u64)>,
    /// `[cpu, records]` by the CPU the bottom half began the record on.
    pub bh: Vec<(u16, u64)>,
    /// Records whose bottom half began on another CPU than their hard IRQ.
    pub cross_cpu: u64,
    /// Records counted (CPU ids past the back end's limit are not).
    pub records: u64,
}

impl CpuPlacement {
    /// `cross_cpu / records` (0 without records).
    pub fn cross_cpu_share(&self) -> f64 {
        ratio(self.cross_cpu, self.records)
    }
}

impl MechanismResult {
    /// An empty row for a mechanism.
    pub fn new(mechanism: &str, device: Option<&str>) -> Self {
        MechanismResult {
            mechanism: mechanism.to_string(),
            mechanism_id: mechanism_id(mechanism).unwrap_or(u8::MAX),
            device: device.map(str::to_string),
            sources: Vec::new(),
            host: HostCounters::default(),
            guest: None,
            raise_to_ack: None,
            hardirq_to_bh: None,
            bh_run: None,
            irq_to_first_bh: None,
            past_budget: 0,
            raise_to_hardirq: None,
            reference: None,
            ratios: Ratios::default(),
            cpus: None,
            lateness: Vec::new(),
            cancelled: 0,
        }
    }

    /// `coalesced / raised` (0 when nothing was raised).
    pub fn coalesced_ratio(&self) -> f64 {
        ratio(self.host.coalesced, self.host.raised)
    }

    /// `(pending + dropped) / raised`: raises never delivered.
    pub fn loss_ratio(&self) -> f64 {
        ratio(self.host.pending + self.host.dropped, self.host.raised)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Host eventfd ping-pong between two threads (crate::baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventfdBaseline {
    pub round_trips: u64,
    /// Writer's `write()` -> reader woken, same clock.
    pub one_way: Distribution,
    /// Full ping -> pong round trip.
    pub round_trip: Distribution,
}

/// Baselines measured in the same run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baselines {
    pub host_eventfd: Option<EventfdBaseline>,
    /// The kernel's timerlat tracer in each guest over the measured phase
    /// (scenario `[timerlat]` or `--timerlat`); empty when it did not run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timerlat: Vec<TimerlatBaseline>,
}

impl Baselines {
    /// p99 of timerlat's irq->thread over every guest's samples together.
    pub fn timerlat_irq_to_thread_p99(&self) -> Result<Option<u64>, HistError> {
        if self.timerlat.is_empty() {
            return Ok(None);
        }
        let mut all = Distribution::from_buckets(std::iter::empty())?;
        for t in &self.timerlat {
            all.merge(&t.irq_to_thread)?;
        }
        Ok((all.count() > 0).then_some(all.summary.p99_ns))
    }
}

/// One device's clock offset estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceOffset {
    pub device: String,
    pub estimate: crate::offset::OffsetEstimate,
}

/// One step of a rate ramp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampStep {
    /// Offered rate (sum over the ramped sources), events/s.
    pub rate_hz: u64,
    pub duration_ns: u64,
    pub host: HostCounters,
    #[serde(default)]
    pub raise_to_ack_p99_ns: Option<u64>,
}

impl RampStep {
    pub fn coalesced_ratio(&self) -> f64 {
        ratio(self.host.coalesced, self.host.raised)
    }
    pub fn loss_ratio(&self) -> f64 {
        ratio(self.host.pending + self.host.dropped, self.host.raised)
    }
}

/// The rate ramp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampResult {
    pub steps: Vec<RampStep>,
    /// Why the ramp stopped (`max_hz reached`, or the ratio that tripped).
    #[serde(default)]
    pub stop_reason: String,
    /// Highest rate whose coalesced ratio stayed under the scenario's
    /// `stop_coalesced_ratio`.
    #[serde(default)]
    pub sustained_rate_hz: Option<u64>,
}

impl RampResult {
    /// Record a finished step; returns whether the ramp goes on (the step
    /// stayed within the ramp's stop ratios). Keeps `stop_reason` and
    /// `sustained_rate_hz` up to date.
    pub fn record(&mut self, step: RampStep, ramp: &crate::scenario::Ramp) -> bool {
        let reason = ramp.stop_reason(step.coalesced_ratio(), step.loss_ratio());
        if step.coalesced_ratio() <= ramp.stop_coalesced_ratio
            && step.loss_ratio() <= ramp.stop_loss_ratio
        {
            self.sustained_rate_hz = Some(self.sustained_rate_hz.unwrap_or(0).max(step.rate_hz));
        }
        let last = ramp.rates().last().copied().map(u64::from);
        self.steps.push(step);
        match reason {
            Some(r) => {
                self.stop_reason = format!(
                    "at {} events/s: {r}",
                    self.steps[self.steps.len() - 1].rate_hz
                );
                false
            }
            None if last == Some(self.steps[self.steps.len() - 1].rate_hz) => {
                self.stop_reason = "max_hz reached".into();
                false
            }
            None => true,
        }
    }
}

/// What kind of check a [`Check`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Conservation,
    Threshold,
    /// The guest itself: a kernel WARNING/BUG/Oops/panic on its console.
    Guest,
    /// Agreement between figures of one row, e.g. one-way raise->hardirq
    /// <= raise->ack (up to the one-way error bound).
    Consistency,
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not applicable (e.g. no limit for this accelerator).
    Skip,
}

/// One check: conservation of a row, or one threshold on one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub kind: CheckKind,
    /// Short name, e.g. `conservation` or `raise_to_ack.p99 <= 2ms`.
    pub name: String,
    pub mechanism: String,
    #[serde(default)]
    pub device: Option<String>,
    /// Figure checked (`conservation` for conservation checks).
    pub figure: String,
    pub outcome: Outcome,
    /// Measured value in `unit` (ns, ratio, count or x-baseline).
    pub measured: Option<f64>,
    pub limit: Option<f64>,
    pub unit: String,
    /// Human-readable message; names mechanism, figure, value and limit.
    pub message: String,
}

/// A violation of the conservation law of spec §5.2 or of guest/host
/// agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConservationViolation {
    pub mechanism: String,
    pub device: Option<String>,
    pub message: String,
}

/// Check one row: `raised == records + coalesced + pending + dropped`; and
/// when guest counters are present: guest records == host records, guest
/// events == host records + coalesced, guest acks posted == host acked +
/// bad acks.
pub fn conservation(row: &MechanismResult) -> Vec<ConservationViolation> {
    let h = &row.host;
    let mut out = Vec::new();
    let mut v = |message: String| {
        out.push(ConservationViolation {
            mechanism: row.mechanism.clone(),
            device: row.device.clone(),
            message,
        })
    };
    let accounted = h.records as u128 + h.coalesced as u128 + h.pending as u128 + h.dropped as u128;
    if h.raised as u128 != accounted {
        v(format!(
            "raised {} != records {} + coalesced {} + pending {} + dropped {} (= {accounted})",
            h.raised, h.records, h.coalesced, h.pending, h.dropped
        ));
    }
    if let Some(g) = &row.guest {
        if g.records != h.records {
            v(format!(
                "guest consumed {} records, host wrote {}",
                g.records, h.records
            ));
        }
        let delivered = h.records as u128 + h.coalesced as u128;
        if g.events as u128 != delivered {
            v(format!(
                "guest saw {} events, host delivered {delivered} (records {} + coalesced {})",
                g.events, h.records, h.coalesced
            ));
        }
        let received = h.acked as u128 + h.bad_acks as u128;
        if let Some(posted) = g.acks_posted {
            if posted as u128 != received {
                v(format!(
                    "guest posted {posted} acks, host received {received} (acked {} + bad {})",
                    h.acked, h.bad_acks
                ));
            }
        }
    }
    out
}

impl RunResult {
    /// A result with no rows, for the given metadata.
    pub fn new(meta: RunMeta) -> Self {
        RunResult {
            schema_version: SCHEMA_VERSION,
            meta,
            mechanisms: Vec::new(),
            per_device: Vec::new(),
            baselines: Baselines::default(),
            clock_offsets: Vec::new(),
            ramp: None,
            checks: Vec::new(),
            interference: None,
            run_conditions: None,
        }
    }

    /// Recompute every summary from its histogram and the ratios from the
    /// baselines. Call after filling histograms or merging.
    pub fn finalize(&mut self) -> Result<(), HistError> {
        let evfd_rt = self
            .baselines
            .host_eventfd
            .as_mut()
            .map(|b| -> Result<u64, HistError> {
                b.one_way.resummarize()?;
                b.round_trip.resummarize()?;
                Ok(b.round_trip.summary.p99_ns)
            })
            .transpose()?;
        for t in &mut self.baselines.timerlat {
            t.resummarize()?;
        }
        let tlat = self.baselines.timerlat_irq_to_thread_p99()?;
        for row in self.mechanisms.iter_mut().chain(self.per_device.iter_mut()) {
            for d in [
                &mut row.raise_to_ack,
                &mut row.hardirq_to_bh,
                &mut row.bh_run,
                &mut row.irq_to_first_bh,
            ]
            .into_iter()
            .flatten()
            {
                d.resummarize()?;
            }
            if let Some(ow) = &mut row.raise_to_hardirq {
                ow.distribution.resummarize()?;
            }
            if let Some(r) = &mut row.reference {
                for d in [&mut r.timer_to_hardirq, &mut r.hardirq_to_bh, &mut r.bh_run]
                    .into_iter()
                    .flatten()
                {
                    d.resummarize()?;
                }
            }
            row.ratios = compute_ratios(row, evfd_rt, tlat);
        }
        Ok(())
    }

    /// The rows the gate and the table use: merged rows.
    pub fn rows(&self) -> &[MechanismResult] {
        &self.mechanisms
    }

    /// Failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }
}

fn p99(d: &Option<Distribution>) -> Option<u64> {
    d.as_ref()
        .filter(|d| d.count() > 0)
        .map(|d| d.summary.p99_ns)
}

fn div(a: Option<u64>, b: Option<u64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
        _ => None,
    }
}

fn compute_ratios(
    row: &MechanismResult,
    evfd_rt_p99: Option<u64>,
    tlat_p99: Option<u64>,
) -> Ratios {
    Ratios {
        hardirq_to_bh_p99_vs_timerlat: div(p99(&row.hardirq_to_bh), tlat_p99),
        hardirq_to_bh_p99_vs_ref_hrtimer: div(
            p99(&row.hardirq_to_bh),
            row.reference.as_ref().and_then(|r| p99(&r.hardirq_to_bh)),
        ),
        raise_to_ack_p99_vs_host_eventfd: div(p99(&row.raise_to_ack), evfd_rt_p99),
    }
}

/// A latency summary of an optional distribution, if it has values.
pub fn summary(d: &Option<Distribution>) -> Option<&LatencySummary> {
    d.as_ref().map(|d| &d.summary).filter(|s| s.count > 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plausible row with consistent counters and histograms.
    pub(crate) fn row(mech: &str, device: Option<&str>, scale: u64) -> MechanismResult {
        let mut r = MechanismResult::new(mech, device);
        r.sources = vec![mechanism_id(mech).unwrap_or(0) as u16];
        r.host = HostCounters {
            raised: 1000,
            records: 900,
            coalesced: 90,
            pending: 6,
            dropped: 4,
            acked: 900,
            ..Default::default()
        };
        r.guest = Some(GuestCounters {
            records: 900,
            events: 990,
            acks_posted: Some(900),
            errors: 0,
        });
        r.raise_to_ack = Some(
            Distribution::from_buckets([(20_000 * scale, 890), (400_000 * scale, 10)]).unwrap(),
        );
        let mut g = vec![0u64; 16];
        g[12] = 880;
        g[15] = 20;
        r.hardirq_to_bh = Some(Distribution::from_log2(&g, None).unwrap());
        let mut b = vec![0u64; 12];
        b[10] = 900;
        r.bh_run = Some(Distribution::from_log2(&b, None).unwrap());
        r
    }

    #[test]
    fn mechanism_table_matches_spec() {
        assert_eq!(mechanism_id("hardirq"), Some(0));
        assert_eq!(mechanism_id("hrtimer"), Some(13));
        assert_eq!(mechanism_id("wq_dedicated"), Some(9));
        assert_eq!(mechanism_name(11), Some("completion"));
        assert_eq!(mechanism_name(14), Some("wq_delayed"));
        assert_eq!(mechanism_name(16), Some("kthread_usleep"));
        assert_eq!(mechanism_name(17), Some("wq_ordered"));
        assert_eq!(mechanism_name(19), Some("user"));
        assert_eq!(mechanism_name(20), None);
        assert!(!is_sleepable("tasklet_hi"));
        assert!(is_sleepable("threaded"));
        assert!(is_sleepable("kthread"));
    }

    #[test]
    fn consistent_row_conserves() {
        assert!(conservation(&row("tasklet", None, 1)).is_empty());
    }

    #[test]
    fn conservation_violations_detected() {
        let mut r = row("tasklet", Some("dev0"), 1);
        r.host.raised += 1;
        let v = conservation(&r);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("raised 1001"), "{}", v[0].message);
        assert_eq!(v[0].device.as_deref(), Some("dev0"));

        let mut r = row("bh_wq", None, 1);
        if let Some(g) = &mut r.guest {
            g.records -= 1;
            g.events -= 2;
            g.acks_posted = Some(897);
        }
        let v = conservation(&r);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0]
            .message
            .contains("guest consumed 899 records, host wrote 900"));
        assert!(v[1]
            .message
            .contains("guest saw 988 events, host delivered 990"));
        assert!(v[2].message.contains("guest posted 897 acks"));

        // bad acks count as received
        let mut r = row("kthread", None, 1);
        r.host.acked = 898;
        r.host.bad_acks = 2;
        assert!(conservation(&r).is_empty());
    }

    #[test]
    fn ramp_record_stops_and_tracks_sustained_rate() {
        let ramp = crate::scenario::Ramp {
            sources: vec![],
            start_hz: 1000,
            max_hz: 8000,
            step_hz: None,
            step_factor: Some(2.0),
            step_duration_ms: 100,
            stop_coalesced_ratio: 0.01,
            stop_loss_ratio: 0.01,
        };
        let step = |rate: u64, coalesced: u64| RampStep {
            rate_hz: rate,
            duration_ns: 1,
            host: HostCounters {
                raised: 1000,
                records: 1000 - coalesced,
                coalesced,
                ..Default::default()
            },
            raise_to_ack_p99_ns: None,
        };
        let mut r = RampResult::default();
        assert!(r.record(step(1000, 0), &ramp));
        assert!(r.record(step(2000, 10), &ramp)); // exactly 1 %: still sustained
        assert!(!r.record(step(4000, 50), &ramp));
        assert_eq!(r.sustained_rate_hz, Some(2000));
        assert!(
            r.stop_reason
                .starts_with("at 4000 events/s: coalesced/raised 0.0500"),
            "{}",
            r.stop_reason
        );
        let mut r = RampResult::default();
        for rate in [1000, 2000, 4000] {
            assert!(r.record(step(rate, 0), &ramp));
        }
        assert!(!r.record(step(8000, 0), &ramp));
        assert_eq!(
            (r.stop_reason.as_str(), r.sustained_rate_hz),
            ("max_hz reached", Some(8000))
        );
    }

    #[test]
    fn finalize_computes_ratios_and_json_roundtrips() {
        let mut res = RunResult::new(RunMeta {
            scenario: "t".into(),
            accelerator: "tcg".into(),
            start_time: "2026-11-22T06:40:00Z".into(),
            duration_ns: 1_000_000_000,
            devices: vec!["dev0".into()],
            ..Default::default()
        });
        let mut r = row("tasklet", None, 1);
        let mut refc = vec![0u64; 16];
        refc[10] = 100;
        r.reference = Some(ReferenceResult {
            timer_to_hardirq: None,
            hardirq_to_bh: Some(Distribution::from_log2(&refc, None).unwrap()),
            bh_run: None,
        });
        res.mechanisms.push(r);
        res.baselines.host_eventfd = Some(EventfdBaseline {
            round_trips: 10,
            one_way: Distribution::from_buckets([(5_000, 10)]).unwrap(),
            round_trip: Distribution::from_buckets([(10_000, 10)]).unwrap(),
        });
        res.finalize().unwrap();
        let ratios = res.mechanisms[0].ratios;
        // guest p99 is in bucket 15 -> 65536; ref p99 bucket 10 -> 2048
        assert_eq!(ratios.hardirq_to_bh_p99_vs_ref_hrtimer, Some(32.0));
        let rt = ratios.raise_to_ack_p99_vs_host_eventfd.unwrap();
        let expect = res.mechanisms[0]
            .raise_to_ack
            .as_ref()
            .unwrap()
            .summary
            .p99_ns as f64
            / res
                .baselines
                .host_eventfd
                .as_ref()
                .unwrap()
                .round_trip
                .summary
                .p99_ns as f64;
        assert_eq!(rt, expect);
        let text = serde_json::to_string_pretty(&res).unwrap();
        assert!(text.contains("\"schema_version\": 1"));
        assert!(text.contains("\"kind\": \"log2\""));
        let back: RunResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back, res);
    }
}
