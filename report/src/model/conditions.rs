//! What a run ran under: host interference sampled over the measured phase
//! (`interference`) and the run conditions (`run_conditions`) of
//! `report.json` (docs/report.md). Both are optional: older reports and
//! runs that could not sample them have `null`.

use serde::{Deserialize, Serialize};

/// Host interference over the measured phase (sampled by the harness from
/// `/proc` at the phase's start and end, `harness/src/interference.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interference {
    /// Wall time between the two samples, ns.
    pub phase_ns: u64,
    /// Host cores (`cpuN` lines of `/proc/stat`).
    pub host_cores: u32,
    /// Every QEMU vCPU thread found at both samples.
    #[serde(default)]
    pub vcpus: Vec<VcpuInterference>,
    /// Largest `wait_share` over `vcpus`; `null` when no vCPU thread was found.
    #[serde(default)]
    pub max_vcpu_wait_share: Option<f64>,
    /// The back end's threads; `null` when its tasks could not be read.
    #[serde(default)]
    pub backend: Option<BackendCpu>,
    pub host: HostLoad,
    /// The limit the gate compared `max_vcpu_wait_share` with (scenario
    /// `[gates] max_vcpu_wait_share` or `--max-vcpu-wait-share`); `null`
    /// until gated.
    #[serde(default)]
    pub max_vcpu_wait_share_limit: Option<f64>,
    /// The vCPUs waited for a host core longer than the limit allows: the
    /// latency thresholds were not judged.
    #[serde(default)]
    pub disturbed: bool,
    /// Why the run is disturbed (names the vCPU, its share and the limit).
    #[serde(default)]
    pub disturbed_reason: Option<String>,
    /// What could not be sampled (e.g. a back end thread that exited).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The host's wake-up floor over the same phase, when the run measured
    /// it (`--wake-floor-hz`, `cargo xtask bench backend`); `null` otherwise.
    #[serde(default)]
    pub wake_floor: Option<WakeFloorCpu>,
}

/// A minimal event source beside the run (`harness/src/interference/wake_floor.rs`):
/// one thread woken by a periodic timerfd that writes an eventfd a second
/// thread blocks on, the least an event source that wakes once per isolated
/// event does. Its CPU time over the phase, counted like the back end's
/// (`schedstat`), per wake-up: what one such wake-up costs on this host
/// under the run's own load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakeFloorCpu {
    /// Timer rate, Hz.
    pub hz: u32,
    /// Times the timer thread woke in the phase.
    pub wakes: u64,
    /// The timer thread's time on a host CPU, ns.
    pub cpu_ns: u64,
    /// Times it was scheduled in.
    pub timeslices: u64,
    /// `cpu_ns / wakes`; `null` when it never woke.
    #[serde(default)]
    pub cpu_ns_per_wake: Option<f64>,
}

/// One QEMU vCPU thread over the phase (`/proc/<pid>/task/<tid>/schedstat`
/// differences).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VcpuInterference {
    /// Device label of the guest (`irqstorm0`, ...).
    pub device: String,
    pub qemu_pid: u32,
    pub tid: u32,
    /// Thread name (`comm`), e.g. `CPU 0/TCG`.
    pub name: String,
    /// Time on a host CPU, ns.
    pub cpu_ns: u64,
    /// Time runnable but waiting for a host CPU (run-queue wait), ns.
    pub wait_ns: u64,
    /// Times it was scheduled in.
    pub timeslices: u64,
    /// `wait_ns / phase_ns`.
    pub wait_share: f64,
}

/// The back end process's threads over the phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendCpu {
    pub pid: u32,
    /// Threads counted (present at the end sample).
    pub threads: u32,
    /// Their time on a host CPU, ns.
    pub cpu_ns: u64,
    /// Their run-queue wait, ns.
    pub wait_ns: u64,
    /// `cpu_ns / phase_ns`: 1.0 is one host core busy the whole phase.
    pub cpu_share: f64,
    /// Events delivered in the measured phase (`records + coalesced` over
    /// the merged rows).
    pub delivered_events: u64,
    /// `cpu_ns / delivered_events`; `null` when nothing was delivered.
    #[serde(default)]
    pub cpu_ns_per_event: Option<f64>,
    /// Times its threads were scheduled in (about one per wake-up).
    #[serde(default)]
    pub timeslices: u64,
    /// The same figures per thread name (`irqstorm-gen0`, the vring
    /// workers, the control thread...), by name.
    #[serde(default)]
    pub by_thread: Vec<BackendThreadCpu>,
}

/// The back end's threads of one name over the phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendThreadCpu {
    /// `/proc/<pid>/task/<tid>/comm`.
    pub name: String,
    /// Threads of that name.
    pub threads: u32,
    pub cpu_ns: u64,
    pub timeslices: u64,
}

/// Host load over the phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostLoad {
    /// `/proc/loadavg` 1, 5 and 15 minute figures at the phase's start.
    pub loadavg_start: [f64; 3],
    /// The same at its end.
    pub loadavg_end: [f64; 3],
    /// Per host core, the busy share of its time over the phase
    /// (`/proc/stat`: everything but idle and iowait).
    #[serde(default)]
    pub busy_share_per_core: Vec<f64>,
    /// Busy share of all host cores together.
    pub busy_share: f64,
}

impl Interference {
    /// The vCPU with the largest wait share.
    pub fn worst_vcpu(&self) -> Option<&VcpuInterference> {
        self.vcpus
            .iter()
            .max_by(|a, b| a.wait_share.total_cmp(&b.wait_share))
    }
}

/// Time base method the one-way figures use today: the PING clock-offset
/// estimate (`crate::offset`, docs/clock-offset.md).
pub const TIME_BASE_PING: &str = "ping";

fn time_base_ping() -> String {
    TIME_BASE_PING.to_string()
}

/// How host and guest times are related in this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeBase {
    /// What the one-way figures used: `tsc` (the shared TSC time base),
    /// `ping` ([`TIME_BASE_PING`], the PING offset of each device,
    /// `clock_offsets`), `tsc+ping` when rows differ, `none` without one-way
    /// figures. Reports written before the TSC method read as `ping`.
    #[serde(default = "time_base_ping")]
    pub method: String,
    /// The widest `raise_to_hardirq.error_bound_ns` of the merged rows.
    #[serde(default)]
    pub error_bound_ns: Option<u64>,
    /// The guest's calibration interval in the measured phase (scenario
    /// `[time_base] calibrate_every_ms`); absent in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrate_every_ms: Option<u64>,
}

impl Default for TimeBase {
    fn default() -> Self {
        TimeBase {
            method: time_base_ping(),
            error_bound_ns: None,
            calibrate_every_ms: None,
        }
    }
}

impl TimeBase {
    /// The time base the one-way figures of `rows` used.
    pub fn of_rows(rows: &[crate::model::MechanismResult]) -> Self {
        let ows: Vec<&crate::model::OneWay> = rows
            .iter()
            .filter_map(|r| r.raise_to_hardirq.as_ref())
            .collect();
        let mut methods: Vec<&str> = ows.iter().map(|o| o.method.as_str()).collect();
        methods.sort_unstable();
        methods.dedup();
        TimeBase {
            method: if methods.is_empty() {
                "none".to_string()
            } else {
                methods.join("+")
            },
            error_bound_ns: ows.iter().map(|o| o.error_bound_ns).max(),
            calibrate_every_ms: None,
        }
    }
}

/// What the run ran under: the back end, QEMU, the host and the guests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConditions {
    /// The back end's full argument vector (program first).
    pub backend_argv: Vec<String>,
    /// The `--spin-us` value given to the back end; `null`: not given (the
    /// back end's own default).
    #[serde(default)]
    pub backend_spin_us: Option<String>,
    /// The spin window the back end chose and why (its `info` reply; absent
    /// from older back ends).
    #[serde(default)]
    pub backend_spin: Option<irqstorm_protocol::control::SpinInfo>,
    /// `tcg` or `kvm`.
    pub accelerator: String,
    /// vCPUs per guest (QEMU `-smp`, else what the guest reported).
    #[serde(default)]
    pub vcpus: Option<u32>,
    pub host_cores: u32,
    /// `model name` of the host's `/proc/cpuinfo`.
    #[serde(default)]
    pub host_cpu_model: String,
    /// One per guest.
    #[serde(default)]
    pub guests: Vec<GuestConditions>,
    #[serde(default)]
    pub time_base: TimeBase,
}

/// One guest's conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestConditions {
    pub device: String,
    /// QEMU's full argument vector (program first).
    pub qemu_argv: Vec<String>,
    /// CPUs the guest saw (`/proc/cpuinfo` processors).
    #[serde(default)]
    pub cpus: Option<u32>,
    /// The guest's clocksource after the measured phase
    /// (`/sys/devices/system/clocksource/clocksource0/current_clocksource`).
    #[serde(default)]
    pub clocksource: Option<String>,
    /// Its clocksource at set-up, when it differed (e.g. `tsc-early`).
    #[serde(default)]
    pub clocksource_at_start: Option<String>,
    /// TSC flags of the guest's `/proc/cpuinfo`, by name.
    #[serde(default)]
    pub tsc_flags: Vec<CpuFlag>,
    /// The device IRQ: its number, the CPUs it may run on and those it is
    /// routed to (`/proc/irq/N/{smp,effective}_affinity_list` at set-up).
    #[serde(default)]
    pub irq: Option<IrqPlacement>,
    /// The guest kernel's `HZ` (jiffies per second; debugfs `timing`): a
    /// `timer_list`, `msleep` or delayed work waits in whole jiffies.
    #[serde(default)]
    pub hz: Option<u32>,
    /// The reader of mechanism `user` (the guest program irqstorm-wait):
    /// its scheduling policy and priority as `ps` names them (`FF 50`,
    /// `TS 0`); `None` when no source used `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_reader: Option<String>,
}

/// Where the device's interrupt goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrqPlacement {
    pub irq: u32,
    /// `smp_affinity_list`.
    pub affinity: String,
    /// `effective_affinity_list` (empty if the kernel has none).
    pub effective: String,
}

impl IrqPlacement {
    /// `irq 24 -> CPUs 0-1 (effective 1)`.
    pub fn describe(&self) -> String {
        format!(
            "irq {} -> CPUs {} (effective {})",
            self.irq,
            self.affinity,
            if self.effective.is_empty() {
                "-"
            } else {
                &self.effective
            }
        )
    }
}

/// One CPU flag and whether the guest has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuFlag {
    pub name: String,
    pub present: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::Distribution;
    use crate::model::{MechanismResult, OneWay, METHOD_PING, METHOD_TSC};

    fn row(method: Option<(&str, u64)>) -> MechanismResult {
        let mut r = MechanismResult::new("tasklet", None);
        r.raise_to_hardirq = method.map(|(m, b)| OneWay {
            distribution: Distribution::from_buckets([(1_000, 1)]).unwrap(),
            negative_samples: 0,
            error_bound_ns: b,
            below_base: 0,
            method: m.into(),
            after_irq_start: 0,
            past_budget: 0,
            uncalibrated: 0,
            unchecked: 0,
        });
        r
    }

    #[test]
    fn the_time_base_names_every_method_the_rows_used() {
        let tb = TimeBase::of_rows(&[row(Some((METHOD_TSC, 63))), row(None)]);
        assert_eq!((tb.method.as_str(), tb.error_bound_ns), ("tsc", Some(63)));
        let tb = TimeBase::of_rows(&[
            row(Some((METHOD_TSC, 63))),
            row(Some((METHOD_PING, 211_000))),
        ]);
        assert_eq!(
            (tb.method.as_str(), tb.error_bound_ns),
            ("ping+tsc", Some(211_000))
        );
        let tb = TimeBase::of_rows(&[row(None)]);
        assert_eq!((tb.method.as_str(), tb.error_bound_ns), ("none", None));
    }
}
