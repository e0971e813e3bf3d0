// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The `stats` object of the host control socket (docs/device-spec.md §9),
//! written by the back end and read by the report.
//!
//! Every field the back end always sends is required and no unknown field is
//! accepted, so a renamed or misspelt field is an error instead of a silent
//! zero. Optional on the wire: a histogram's summary (absent when empty) and
//! buckets (only on request), and `raw_raise_to_hardirq` (absent from older
//! back ends' saved stats, which the report still reads).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::Mode;

/// One HDR bucket: `[value_ns, count]` (the bucket's highest value).
pub type Bucket = (u64, u64);

/// Summary of a non-empty histogram, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistSummary {
    /// Smallest value.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// A histogram: `{"count": 0}` when empty, else the count, the summary
/// fields and, when requested, `buckets` (those with a non-zero count).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hist {
    /// Values recorded.
    pub count: u64,
    /// `None` exactly when `count` is 0.
    pub summary: Option<HistSummary>,
    /// Present when the request asked for buckets and `count` > 0.
    pub buckets: Option<Vec<Bucket>>,
}

/// The histogram as it is spelt on the wire (flat, summary fields optional).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistWire {
    count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p50: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p90: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p99: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p999: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    buckets: Option<Vec<Bucket>>,
}

impl Serialize for Hist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.summary;
        HistWire {
            count: self.count,
            min: m.map(|m| m.min),
            p50: m.map(|m| m.p50),
            p90: m.map(|m| m.p90),
            p99: m.map(|m| m.p99),
            p999: m.map(|m| m.p999),
            max: m.map(|m| m.max),
            mean: m.map(|m| m.mean),
            buckets: self.buckets.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = HistWire::deserialize(d)?;
        let fields = [
            ("min", w.min),
            ("p50", w.p50),
            ("p90", w.p90),
            ("p99", w.p99),
            ("p999", w.p999),
            ("max", w.max),
        ];
        if w.count == 0 {
            let extra = fields
                .iter()
                .find(|(_, v)| v.is_some())
                .map(|(k, _)| *k)
                .or(w.mean.map(|_| "mean"))
                .or(w.buckets.as_ref().map(|_| "buckets"));
            return match extra {
                Some(k) => Err(de::Error::custom(format!(
                    "empty histogram (count 0) with field `{k}`"
                ))),
                None => Ok(Self::default()),
            };
        }
        let need = |(k, v): (&str, Option<u64>)| {
            v.ok_or_else(|| {
                de::Error::custom(format!(
                    "histogram with count {} lacks field `{k}`",
                    w.count
                ))
            })
        };
        let [min, p50, p90, p99, p999, max] = fields;
        let summary = HistSummary {
            min: need(min)?,
            p50: need(p50)?,
            p90: need(p90)?,
            p99: need(p99)?,
            p999: need(p999)?,
            max: need(max)?,
            mean: w.mean.ok_or_else(|| {
                de::Error::custom(format!(
                    "histogram with count {} lacks field `mean`",
                    w.count
                ))
            })?,
        };
        Ok(Self {
            count: w.count,
            summary: Some(summary),
            buckets: w.buckets,
        })
    }
}

/// Sums over all sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Raises.
    pub raised: u64,
    /// Records written.
    pub records: u64,
    /// `records + coalesced`: raises that reached the driver.
    pub delivered: u64,
    /// Sum of `count - 1` over written records.
    pub coalesced: u64,
    /// Raises latched and not yet written.
    pub pending: u64,
    /// Raises lost to a device reset while latched.
    pub dropped_on_reset: u64,
    /// Records acknowledged.
    pub acked: u64,
    /// The §5.2 conservation equation holds for every source.
    pub conserved: bool,
}

/// Device-wide counters.
/// The device keeps its live counters in this type too (one field list);
/// `malformed` is derived, see [`DeviceStats::with_malformed`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceStats {
    /// Malformed controlq chains / requests.
    pub malformed_ctrl: u64,
    /// Malformed eventq buffers.
    pub malformed_event: u64,
    /// Malformed ackq buffers.
    pub malformed_ack: u64,
    /// Sum of the three `malformed_*` counters.
    pub malformed: u64,
    /// Control requests answered.
    pub ctrl_requests: u64,
    /// Acks that matched no outstanding record, or named an unknown mechanism.
    pub bad_acks: u64,
    /// Unacked records evicted from the outstanding table.
    pub ack_evicted: u64,
    /// Used-buffer notifications sent on eventq.
    pub notifications: u64,
    /// Notifications suppressed by the driver (EVENT_IDX / NO_INTERRUPT).
    pub suppressed: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// Queue access errors.
    pub queue_errors: u64,
    /// Device resets.
    pub resets: u64,
    /// Front-end stop/start cycles that continued the rings where they
    /// stopped (a VM pause/resume): the device state was kept (§5.5).
    pub resumes: u64,
}

impl DeviceStats {
    /// The counters with `malformed` set to the sum of the three
    /// `malformed_*` counters.
    pub fn with_malformed(self) -> Self {
        Self {
            malformed: self.malformed_ctrl + self.malformed_event + self.malformed_ack,
            ..self
        }
    }
}

/// Per-source counters (§5.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceStats {
    /// Source index.
    pub source: u16,
    /// Configured mode.
    pub mode: Mode,
    /// A program is running.
    pub running: bool,
    /// Raises.
    pub raised: u64,
    /// Records written.
    pub records: u64,
    /// `records + coalesced`.
    pub delivered: u64,
    /// Sum of `count - 1` over written records.
    pub coalesced: u64,
    /// Records written with the LATCHED flag.
    pub latched_records: u64,
    /// Raises latched and not yet written.
    pub pending: u64,
    /// Raises lost to a device reset while latched.
    pub dropped_on_reset: u64,
    /// Records acknowledged.
    pub acked: u64,
    /// Raises covered by acknowledged records.
    pub acked_raises: u64,
    /// Last per-source number given out.
    pub source_seq: u64,
    /// `raised = records + coalesced + pending + dropped_on_reset`.
    pub conserved: bool,
    /// Host raise -> ack arrival latency.
    pub latency_ns: Hist,
}

/// Raw cross-clock raise -> hardirq differences of a mechanism: `hardirq_ns`
/// (guest clock) `- raise_ns` (host clock), stored as `diff - base_ns`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRaiseToHardirq {
    /// Per-device base; `null` until an ack with a hardirq stamp arrived
    /// (always sent: required, but nullable).
    #[serde(deserialize_with = "Option::deserialize")]
    pub base_ns: Option<i64>,
    /// Differences below the base (counted, value unknown).
    pub below_base: u64,
    /// `diff - base_ns` of every other ack with a hardirq stamp.
    pub diff_minus_base_ns: Hist,
}

/// One-way raise -> guest hard IRQ on the shared TSC time base, per
/// mechanism (spec §6.1.3, docs/clock-offset.md "TSC method").
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TscOneWay {
    /// Estimates `hardirq_tsc + offset - raise_tsc`, in ns; those within
    /// the bound below 0 are recorded as 0 (and counted in `negative`).
    pub estimates_ns: Hist,
    /// Estimates in `[-bound, 0)`.
    pub negative: u64,
    /// Estimates below `-bound`: the record was raised after the hard IRQ
    /// that found it had started (that interrupt's drain picked it up; it
    /// had no interrupt of its own). Counted, not in the histogram.
    pub after_irq_start: u64,
    /// Acks flagged `ACK_F_PAST_BUDGET` (drained by the IRQ thread with the
    /// stamp of an earlier interrupt): counted, not estimated.
    pub past_budget: u64,
    /// Acks with a TSC stamp that arrived while no calibration was valid.
    pub uncalibrated: u64,
    /// Largest error bound (ns) of any recorded estimate: the bound of its
    /// interval between two calibrations (docs/clock-offset.md "Per-event
    /// estimate").
    pub max_bound_ns: u64,
    /// The error bound (ns) of each recorded estimate.
    #[serde(default)]
    pub bound_ns: Hist,
    /// Estimates made since the last usable calibration: their bound is
    /// known once the next one checks the fit; not yet in `estimates_ns`.
    #[serde(default)]
    pub awaiting_check: u64,
    /// Estimates never checked: the fit was dropped (a reset or a resume)
    /// before a calibration followed them, or more than the device keeps
    /// were waiting. Counted, not in the histogram.
    #[serde(default)]
    pub unchecked: u64,
}

/// Per-mechanism statistics (only mechanisms that have acks are listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MechanismStats {
    /// Mechanism id (§6.5).
    pub id: u8,
    /// Mechanism name ([`crate::wire::MECHANISM_NAMES`]).
    pub name: String,
    /// Records acknowledged.
    pub acked: u64,
    /// Raises covered by them.
    pub acked_raises: u64,
    /// Host raise -> ack arrival latency.
    pub latency_ns: Hist,
    /// Guest hardirq -> bottom-half start, per record (every ack).
    pub guest_bh_delay_ns: Hist,
    /// Guest hardirq -> bottom-half start of the first record a bottom-half
    /// run processed (acks with `ACK_F_FIRST`): the per-interrupt latency.
    /// Absent from older back ends' stats.
    #[serde(default)]
    pub guest_irq_to_first_bh_ns: Hist,
    /// Acks with `ACK_F_PAST_BUDGET` (drained by the IRQ thread past the hard
    /// IRQ's budget). Absent from older back ends' stats.
    #[serde(default)]
    pub past_budget: u64,
    /// Guest bottom-half run time.
    pub guest_bh_run_ns: Hist,
    /// Always sent by this back end; absent from older back ends' stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_raise_to_hardirq: Option<RawRaiseToHardirq>,
    /// Always sent by a spec-version-2 back end for mechanisms whose acks
    /// carry TSC stamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raise_to_hardirq_tsc: Option<TscOneWay>,
    /// Where its records ran (spec version 3 acks).
    #[serde(default)]
    pub cpus: CpuStats,
    /// Acks flagged `ACK_F_CANCELLED` (in `acked`, not in the histograms).
    #[serde(default)]
    pub cancelled: u64,
    /// Delay mechanisms: lateness (bottom-half start - armed - requested
    /// delay) of each run's first record, by requested delay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lateness: Vec<LatenessStats>,
}

/// Lateness of one mechanism at one requested delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatenessStats {
    /// The requested delay (us).
    pub delay_us: u32,
    /// `bh_start - armed - delay` (ns) of the runs that were not early.
    pub lateness_ns: Hist,
    /// Runs that started before the delay had passed (a kernel that fires
    /// early, or stamps out of order): counted, not in the histogram.
    pub early: u64,
}

/// CPU placement of one mechanism's acked records.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuStats {
    /// `[cpu, acks]` by the CPU of the hard IRQ, ascending.
    pub hard: Vec<(u16, u64)>,
    /// `[cpu, acks]` by the CPU the bottom half began the record on.
    pub bh: Vec<(u16, u64)>,
    /// Acks whose bottom half began on another CPU than their hard IRQ.
    pub cross_cpu: u64,
    /// Acks naming a CPU at or above the device's limit (256): counted
    /// here, not by CPU.
    pub beyond_limit: u64,
}

/// One CALIBRATE exchange as the device saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationStats {
    /// Host `CLOCK_MONOTONIC` when it ended.
    pub host_ns: u64,
    /// The interval (host TSC at its middle, bounds of host - guest TSC).
    pub interval: crate::timebase::Interval,
    /// Half its width in ns.
    pub bound_ns: u64,
    /// Device loop iterations that read a guest value.
    pub host_samples: u32,
    /// Driver loop iterations that read a host value.
    pub guest_samples: u32,
    /// `ok`, `no_guest`, `host_tsc_unusable`, `bad_page`.
    pub result: String,
    /// What it did to the fit: `started`, `extended`, `checked` (too soon
    /// after the segment's first to measure a slope: a check of it),
    /// `jumped`, `loose`, `invalid`, `failed`.
    pub fit: String,
    /// How far (ns) it fell outside the fit's prediction (0 if inside).
    pub miss_ns: u64,
}

/// The device's TSC time base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeBaseStats {
    /// Host TSC frequency used to convert ticks (Hz; 0 if unusable).
    pub tsc_hz: u64,
    /// Why the host TSC is not used, if it is not.
    #[serde(default)]
    pub host_tsc_unusable: Option<String>,
    /// Calibrations since the device started (the last 64).
    pub calibrations: Vec<CalibrationStats>,
    /// Calibrations in the current fit.
    pub fit_len: u64,
    /// Slope of host - guest TSC over the fit, ppm, and its uncertainty.
    pub slope_ppm: f64,
    /// Uncertainty of `slope_ppm`.
    pub slope_uncertainty_ppm: f64,
    /// False with a single calibration: equal TSC rates were assumed.
    pub slope_measured: bool,
    /// Largest `miss_ns` of any calibration in this stats epoch: estimates
    /// made before it may be off by up to this much beyond their bound.
    pub max_miss_ns: u64,
    /// Calibrations that restarted the fit (`jumped`).
    pub jumps: u64,
    /// Calibrations that failed (no guest, bad page, not later than the last).
    pub failed: u64,
    /// Calibrations whose bound exceeded `loose_limit_ns`: logged, kept out
    /// of the fit (a disturbed channel would widen every bound after it).
    pub loose: u64,
    /// The limit for `loose`.
    pub loose_limit_ns: u64,
    /// Times the fit was dropped (device reset, VM resume).
    pub invalidated: u64,
    /// Calibrations whose bounds crossed (lower > upper): the channel's
    /// stamps are off by at least the crossing (under TCG the guest's
    /// `lfence; rdtsc` is a host RDTSC that may run ahead of the guest's
    /// preceding load). Each widens later bounds (`allowance_ns`).
    #[serde(default)]
    pub crossed: u64,
    /// Calibrations whose answer was dropped: the device was reset or
    /// resumed while their loop ran (it runs without the device lock).
    #[serde(default)]
    pub abandoned: u64,
    /// Largest crossing since the fit started (kept over stats epochs,
    /// dropped with the fit): already inside every per-event bound made
    /// after it (`max_bound_ns`). A crossing is also its calibration's miss.
    #[serde(default)]
    pub allowance_ns: u64,
}

/// How acks reached the device and when they counted as arrived (§6.4.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckPathStats {
    /// `--acks`: `auto`, `kick` or `poll`.
    pub policy: String,
    /// The mode at the reply: `kick` or `poll`.
    pub mode: String,
    /// Switches from kicked to polled acks, and back.
    pub to_poll: u64,
    pub to_kick: u64,
    /// Ack buffers the device took while acks were polled (drained by the
    /// generator's wake-ups, or by a kick the driver sent at half a ring).
    pub polled_buffers: u64,
    /// Ack buffers taken in kicked mode (one wake-up of the vring worker each).
    pub kicked_buffers: u64,
    /// Acks whose raise->ack time ends at the guest's post, put on the host
    /// clock through the TSC time base (exact up to its bound).
    pub time_guest_post: u64,
    /// Acks whose raise->ack time ends when the device read them (no usable
    /// TSC time base for that ack): includes the kick's delivery, and any
    /// polling delay.
    pub time_device_read: u64,
}

/// The `stats` object of a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Time the current stats epoch began.
    pub since_ns: u64,
    /// Time of the reply.
    pub now_ns: u64,
    /// Features the driver negotiated.
    pub negotiated_features: u64,
    /// Unacked records.
    pub outstanding: u64,
    /// Sums over the sources.
    pub totals: Totals,
    /// Device-wide counters.
    pub device: DeviceStats,
    /// One entry per source, by index.
    pub sources: Vec<SourceStats>,
    /// Mechanisms with acks, by id.
    pub mechanisms: Vec<MechanismStats>,
    /// The TSC time base (absent from spec-version-1 back ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_base: Option<TimeBaseStats>,
    /// The ack path (absent from older back ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acks: Option<AckPathStats>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn hist(count: u64) -> serde_json::Value {
        if count == 0 {
            return json!({"count": 0});
        }
        json!({"count": count, "min": 1, "p50": 2, "p90": 3, "p99": 4, "p999": 5,
               "max": 6, "mean": 2.5, "buckets": [[2, count]]})
    }

    /// Shaped exactly like the back end's `stats` object.
    pub(crate) fn stats_json() -> serde_json::Value {
        json!({
            "since_ns": 1, "now_ns": 2, "negotiated_features": 3, "outstanding": 0,
            "totals": {"raised": 4, "records": 4, "delivered": 4, "coalesced": 0,
                       "pending": 0, "dropped_on_reset": 0, "acked": 4, "conserved": true},
            "device": {"malformed_ctrl": 0, "malformed_event": 0, "malformed_ack": 0,
                       "malformed": 0, "ctrl_requests": 1, "bad_acks": 0, "ack_evicted": 0,
                       "notifications": 4, "suppressed": 0, "faults_injected": 0,
                       "queue_errors": 0, "resets": 0, "resumes": 0},
            "sources": [{"source": 0, "mode": "storm", "running": false, "raised": 4,
                         "records": 4, "delivered": 4, "coalesced": 0, "latched_records": 0,
                         "pending": 0, "dropped_on_reset": 0, "acked": 4, "acked_raises": 4,
                         "source_seq": 4, "conserved": true, "latency_ns": hist(0)}],
            "mechanisms": [{"id": 4, "name": "bh_wq", "acked": 4, "acked_raises": 4,
                            "latency_ns": hist(4), "guest_bh_delay_ns": hist(4),
                            "guest_irq_to_first_bh_ns": hist(3), "past_budget": 1,
                            "guest_bh_run_ns": hist(0),
                            "raw_raise_to_hardirq": {"base_ns": null, "below_base": 0,
                                                     "diff_minus_base_ns": hist(0)},
                            "cpus": {"hard": [[1, 4]], "bh": [[0, 1], [1, 3]],
                                     "cross_cpu": 1, "beyond_limit": 0},
                            "cancelled": 0}]
        })
    }

    #[test]
    fn stats_round_trip_unchanged() {
        let v = stats_json();
        let s: Stats = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(s.mechanisms[0].latency_ns.summary.unwrap().mean, 2.5);
        assert_eq!(s.mechanisms[0].latency_ns.buckets, Some(vec![(2, 4)]));
        assert_eq!(s.sources[0].mode, Mode::Storm);
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        // Older back ends: no raw_raise_to_hardirq.
        let mut old = v;
        old["mechanisms"][0]
            .as_object_mut()
            .unwrap()
            .remove("raw_raise_to_hardirq");
        let s: Stats = serde_json::from_value(old.clone()).unwrap();
        assert!(s.mechanisms[0].raw_raise_to_hardirq.is_none());
        assert_eq!(serde_json::to_value(&s).unwrap(), old);
        // Back ends before ACK_F_FIRST: no per-interrupt histogram, no past_budget.
        let m = old["mechanisms"][0].as_object_mut().unwrap();
        m.remove("guest_irq_to_first_bh_ns");
        m.remove("past_budget");
        let s: Stats = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(s.mechanisms[0].guest_irq_to_first_bh_ns, Hist::default());
        assert_eq!(s.mechanisms[0].past_budget, 0);
        // Spec version 2 back ends: no CPUs, no cancelled count.
        old["mechanisms"][0].as_object_mut().unwrap().remove("cpus");
        old["mechanisms"][0]
            .as_object_mut()
            .unwrap()
            .remove("cancelled");
        let s: Stats = serde_json::from_value(old).unwrap();
        assert_eq!(s.mechanisms[0].cpus, CpuStats::default());
    }

    fn err(v: serde_json::Value) -> String {
        serde_json::from_value::<Stats>(v).unwrap_err().to_string()
    }

    #[test]
    fn typos_and_missing_fields_are_rejected() {
        let mut v = stats_json();
        let d = v["device"].as_object_mut().unwrap();
        let n = d.remove("faults_injected").unwrap();
        d.insert("fault_injected".into(), n);
        assert!(err(v).contains("unknown field `fault_injected`"));

        let mut v = stats_json();
        v["sources"][0].as_object_mut().unwrap().remove("pending");
        assert!(err(v).contains("missing field `pending`"));

        let mut v = stats_json();
        v["mechanisms"][0]["latency_ns"]
            .as_object_mut()
            .unwrap()
            .remove("p99");
        assert!(err(v).contains("histogram with count 4 lacks field `p99`"));

        let mut v = stats_json();
        v["mechanisms"][0]["guest_bh_run_ns"]["p50"] = json!(1);
        assert!(err(v).contains("empty histogram (count 0) with field `p50`"));

        let mut v = stats_json();
        v["mechanisms"][0]["raw_raise_to_hardirq"]
            .as_object_mut()
            .unwrap()
            .remove("base_ns");
        assert!(err(v).contains("missing field `base_ns`"));

        let mut v = stats_json();
        v["sources"][0]["mode"] = json!("fast");
        assert!(err(v).contains(r#""mode" must be off|oneshot|periodic|storm"#));
    }
}
