//! The back end's `stats` reply (`{"ok": true, "stats": {...}, ...}`, or
//! the `stats` object alone), typed by `irqstorm_protocol::stats`.
//! Per-source counters are summed per mechanism using the scenario's
//! source -> mechanism map; the per-mechanism HDR histograms give
//! raise->ack and, from the ack records' guest timestamps, hardirq->bh and
//! bh run time.

use std::collections::BTreeMap;
use std::ops::Deref;

use irqstorm_protocol::control::{Reply, StatsReply};
use irqstorm_protocol::stats::{Hist, RawRaiseToHardirq, Stats};

use super::InputError;
use crate::hist::Distribution;
use crate::model::{mechanism_id, CpuPlacement, HostCounters, Lateness, MechanismResult, OneWay};
use crate::offset::{one_way_from_diffs, OffsetEstimate};
use crate::scenario::Scenario;

/// What the report reads from a back-end histogram.
pub trait HistExt {
    /// The distribution (`None` when empty); `what` names the histogram
    /// in errors.
    fn distribution(&self, what: &str) -> Result<Option<Distribution>, InputError>;
}

/// The buckets of a non-empty histogram (an error without them).
fn buckets<'a>(h: &'a Hist, what: &str) -> Result<&'a [(u64, u64)], InputError> {
    h.buckets.as_deref().ok_or_else(|| InputError::NoBuckets {
        what: what.to_string(),
        count: h.count,
    })
}

impl HistExt for Hist {
    fn distribution(&self, what: &str) -> Result<Option<Distribution>, InputError> {
        if self.count == 0 {
            return Ok(None);
        }
        let b = buckets(self, what)?;
        Ok(Some(Distribution::from_buckets(b.iter().copied())?))
    }
}

/// What the report makes of the back end's `raw_raise_to_hardirq`:
/// `hardirq_ns` (guest clock) `- raise_ns` (host clock) of every ack with
/// a hardirq stamp, stored as `diff - base_ns` (device spec §9).
pub trait RawRaiseToHardirqExt {
    /// The raw differences `hardirq_ns - raise_ns` with counts
    /// (`value + base_ns` per bucket), for
    /// [`crate::offset::one_way_from_diffs`]. `Ok(None)` when there is no
    /// base or no value.
    fn diffs(&self, what: &str) -> Result<Option<Vec<(i64, u64)>>, InputError>;

    /// The one-way device-raise -> guest-hardirq distribution with the
    /// device's offset estimate: each bucket is `value + base_ns +
    /// host_minus_guest_ns`. `Ok(None)` when there is nothing to convert.
    fn one_way(&self, estimate: &OffsetEstimate, what: &str) -> Result<Option<OneWay>, InputError>;
}

impl RawRaiseToHardirqExt for RawRaiseToHardirq {
    fn diffs(&self, what: &str) -> Result<Option<Vec<(i64, u64)>>, InputError> {
        let h = &self.diff_minus_base_ns;
        let Some(base) = self.base_ns else {
            return Ok(None);
        };
        if h.count == 0 {
            return Ok(None);
        }
        Ok(Some(
            buckets(h, what)?
                .iter()
                .map(|&(v, c)| {
                    let d = (i128::from(v) + i128::from(base))
                        .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                    (d as i64, c)
                })
                .collect(),
        ))
    }

    fn one_way(&self, estimate: &OffsetEstimate, what: &str) -> Result<Option<OneWay>, InputError> {
        let Some(d) = self.diffs(what)? else {
            return Ok(None);
        };
        let mut ow = one_way_from_diffs(estimate, d)?;
        ow.below_base = self.below_base;
        Ok(Some(ow))
    }
}

/// The back end's `stats` object of one device, as the report reads it:
/// the protocol's [`Stats`] (its fields through `Deref`) with the report's
/// views.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendStats {
    /// The object as the back end sent it.
    pub stats: Stats,
}

impl Deref for BackendStats {
    type Target = Stats;
    fn deref(&self) -> &Stats {
        &self.stats
    }
}

/// Parse a `stats` reply (or the bare `stats` object).
pub fn parse_backend_stats(text: &str) -> Result<BackendStats, InputError> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let stats = if v.get("ok").is_some() {
        match serde_json::from_value::<Reply<StatsReply>>(v)? {
            Reply::Ok(r) => r.stats,
            Reply::Refused(r) => {
                return Err(InputError::NotOk(
                    serde_json::Value::from(r.error).to_string(),
                ))
            }
        }
    } else {
        serde_json::from_value(v)?
    };
    Ok(BackendStats { stats })
}

impl BackendStats {
    /// Rows, one per mechanism the scenario uses (ordered by mechanism id),
    /// with host counters and the back end's histograms. `device` labels the
    /// rows (use `None` for a single device).
    pub fn rows(
        &self,
        scenario: &Scenario,
        device: Option<&str>,
    ) -> Result<Vec<MechanismResult>, InputError> {
        let mut by_mech: BTreeMap<(u8, String), MechanismResult> = BTreeMap::new();
        for s in &scenario.sources {
            let b = self
                .stats
                .sources
                .iter()
                .find(|x| x.source == s.id)
                .ok_or(InputError::MissingSource(s.id))?;
            let key = (
                mechanism_id(&s.mechanism).unwrap_or(u8::MAX),
                s.mechanism.clone(),
            );
            let row = by_mech
                .entry(key)
                .or_insert_with(|| MechanismResult::new(&s.mechanism, device));
            row.sources.push(s.id);
            row.host += HostCounters {
                raised: b.raised,
                records: b.records,
                coalesced: b.coalesced,
                pending: b.pending,
                dropped: b.dropped_on_reset,
                acked: b.acked,
                ..HostCounters::default()
            };
        }
        let mut rows: Vec<MechanismResult> = by_mech.into_values().collect();
        for row in &mut rows {
            let mechs = &self.stats.mechanisms;
            if let Some(m) = mechs.iter().find(|m| m.name == row.mechanism) {
                let n = &row.mechanism;
                row.raise_to_ack = m.latency_ns.distribution(&format!("{n}.latency_ns"))?;
                row.hardirq_to_bh = m
                    .guest_bh_delay_ns
                    .distribution(&format!("{n}.guest_bh_delay_ns"))?;
                row.bh_run = m
                    .guest_bh_run_ns
                    .distribution(&format!("{n}.guest_bh_run_ns"))?;
                row.irq_to_first_bh = m
                    .guest_irq_to_first_bh_ns
                    .distribution(&format!("{n}.guest_irq_to_first_bh_ns"))?;
                row.past_budget = m.past_budget;
                row.cancelled = m.cancelled;
                let c = &m.cpus;
                let records: u64 = c.hard.iter().map(|(_, n)| n).sum();
                row.cpus = (records > 0).then(|| CpuPlacement {
                    hard: c.hard.clone(),
                    bh: c.bh.clone(),
                    cross_cpu: c.cross_cpu,
                    records,
                });
                row.lateness = Vec::new();
                for l in &m.lateness {
                    let name = format!("{n}.lateness[{}].lateness_ns", l.delay_us);
                    let dist = l.lateness_ns.distribution(&name)?;
                    if dist.is_none() && l.early == 0 {
                        continue;
                    }
                    row.lateness.push(Lateness {
                        requested_us: l.delay_us,
                        distribution: dist,
                        early: l.early,
                    });
                }
            }
        }
        Ok(rows)
    }

    /// The raw raise -> hardirq data of a mechanism, if the back end sent it.
    pub fn raw_raise_to_hardirq(&self, mechanism: &str) -> Option<&RawRaiseToHardirq> {
        self.stats
            .mechanisms
            .iter()
            .find(|m| m.name == mechanism)?
            .raw_raise_to_hardirq
            .as_ref()
    }

    /// Fill `raise_to_hardirq` of this device's `rows` (from
    /// [`Self::rows`]) with the one-way estimate, using this device's
    /// offset estimate (`None`: not measured). Never fabricates: a row
    /// without data keeps `None`. Returns notes for `meta.notes`, labelled
    /// with `device`: why the estimate is missing, or the offset applied
    /// and the `below_base` / negative counts per mechanism.
    pub fn apply_one_way(
        &self,
        rows: &mut [MechanismResult],
        estimate: Option<&OffsetEstimate>,
        device: &str,
    ) -> Result<Vec<String>, InputError> {
        let acked: Vec<&str> = rows
            .iter()
            .filter(|r| r.raise_to_ack.is_some() && r.raise_to_hardirq.is_none())
            .map(|r| r.mechanism.as_str())
            .collect();
        if acked.is_empty() {
            return Ok(Vec::new());
        }
        let Some(est) = estimate else {
            return Ok(vec![format!(
                "{device}: one-way raise->hardirq: not measured: no clock offset estimate \
                 (docs/clock-offset.md)"
            )]);
        };
        let mut missing: Vec<String> = Vec::new();
        let mut counts: Vec<String> = Vec::new();
        // Rows the TSC method filled keep its figure.
        for row in rows
            .iter_mut()
            .filter(|r| r.raise_to_ack.is_some() && r.raise_to_hardirq.is_none())
        {
            let n = row.mechanism.clone();
            let raw = self.raw_raise_to_hardirq(&n);
            let ow = match raw {
                Some(raw) => raw.one_way(est, &format!("{n}.raw_raise_to_hardirq"))?,
                None => None,
            };
            match (raw, ow) {
                (None, _) => missing.push(format!(
                    "{n} (no `raw_raise_to_hardirq` in the back end's stats: older back end)"
                )),
                (Some(raw), None) => missing.push(format!(
                    "{n} (no ack with a hardirq stamp{})",
                    if raw.below_base > 0 {
                        format!("; {} below base", raw.below_base)
                    } else {
                        String::new()
                    }
                )),
                (Some(_), Some(ow)) => {
                    counts.push(format!(
                        "{n} {} below base, {} negative",
                        ow.below_base, ow.negative_samples
                    ));
                    row.raise_to_hardirq = Some(ow);
                }
            }
        }
        let mut notes = Vec::new();
        if !counts.is_empty() {
            notes.push(format!(
                "{device}: one-way raise->hardirq = back-end raw difference + base + \
                 (host - guest) {} ns, +/- {} ns; {} (below base: clock drift, not in the \
                 distribution; negative: estimate < 0, recorded as 0)",
                est.host_minus_guest_ns,
                est.error_bound_ns,
                counts.join("; ")
            ));
        }
        if !missing.is_empty() {
            notes.push(format!(
                "{device}: one-way raise->hardirq: not measured for {}",
                missing.join(", ")
            ));
        }
        Ok(notes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hist::Resolution;
    use crate::model::conservation;
    use crate::scenario::parse;

    pub(crate) const SCENARIO: &str = r#"
name = "in"
duration_ms = 1000
[[sources]]
id = 0
mechanism = "tasklet"
program = { mode = "periodic", period_us = 1000 }
[[sources]]
id = 1
mechanism = "bh_wq"
program = { mode = "storm", rate_hz = 1000, burst = 4 }
[[sources]]
id = 2
mechanism = "tasklet"
program = { mode = "storm", rate_hz = 1000, burst = 4 }
"#;

    /// Shaped like the back end's `stats` reply with buckets.
    pub(crate) const STATS: &str = r#"{
  "ok": true, "device": 0,
  "stats": {
    "since_ns": 1, "now_ns": 2, "negotiated_features": 3, "outstanding": 0,
    "totals": {"raised": 3100, "records": 2990, "delivered": 3095, "coalesced": 105, "pending": 5,
               "dropped_on_reset": 0, "acked": 2990, "conserved": true},
    "device": {"malformed_ctrl": 0, "malformed_event": 0, "malformed_ack": 0, "malformed": 0,
               "ctrl_requests": 0, "bad_acks": 2, "ack_evicted": 0, "notifications": 2990,
               "suppressed": 5, "faults_injected": 0, "queue_errors": 0, "resets": 0, "resumes": 0},
    "sources": [
      {"source": 0, "mode": "periodic", "running": false, "raised": 1000, "records": 1000, "delivered": 1000,
       "coalesced": 0, "latched_records": 0, "pending": 0, "dropped_on_reset": 0, "acked": 1000,
       "acked_raises": 1000, "source_seq": 1000, "conserved": true, "latency_ns": {"count": 0}},
      {"source": 1, "mode": "storm", "running": false, "raised": 1100, "records": 1000, "delivered": 1095,
       "coalesced": 95, "latched_records": 0, "pending": 5, "dropped_on_reset": 0, "acked": 1000,
       "acked_raises": 1095, "source_seq": 1095, "conserved": true, "latency_ns": {"count": 0}},
      {"source": 2, "mode": "storm", "running": false, "raised": 1000, "records": 990, "delivered": 1000,
       "coalesced": 10, "latched_records": 0, "pending": 0, "dropped_on_reset": 0, "acked": 990,
       "acked_raises": 1000, "source_seq": 1000, "conserved": true, "latency_ns": {"count": 0}},
      {"source": 3, "mode": "off", "running": false, "raised": 0, "records": 0, "delivered": 0,
       "coalesced": 0, "latched_records": 0, "pending": 0, "dropped_on_reset": 0, "acked": 0,
       "acked_raises": 0, "source_seq": 0, "conserved": true, "latency_ns": {"count": 0}}
    ],
    "mechanisms": [
      {"id": 2, "name": "tasklet", "acked": 1990, "acked_raises": 2000,
       "latency_ns": {"count": 1990, "min": 20000, "p50": 20015, "p90": 20015, "p99": 20015,
                      "p999": 400127, "max": 400127, "mean": 21920.0, "buckets": [[20015, 1980], [400127, 10]]},
       "guest_bh_delay_ns": {"count": 1990, "min": 3000, "p50": 3001, "p90": 3001, "p99": 3001,
                             "p999": 3001, "max": 3001, "mean": 3000.5, "buckets": [[3001, 1990]]},
       "guest_irq_to_first_bh_ns": {"count": 1500, "min": 2000, "p50": 2001, "p90": 2001, "p99": 2001,
                                    "p999": 2001, "max": 2001, "mean": 2000.5, "buckets": [[2001, 1500]]},
       "past_budget": 7,
       "guest_bh_run_ns": {"count": 0}},
      {"id": 4, "name": "bh_wq", "acked": 1000, "acked_raises": 1095,
       "latency_ns": {"count": 1000, "min": 30000, "p50": 30015, "p90": 30015, "p99": 30015,
                      "p999": 30015, "max": 30015, "mean": 30007.0, "buckets": [[30015, 1000]]},
       "guest_bh_delay_ns": {"count": 0}, "guest_bh_run_ns": {"count": 0}}
    ]
  },
  "control": {"requests": 1, "malformed": 0, "refused": 0, "evicted": 0, "slow_lines": 0},
  "front_end": {"connections": 1, "silent": 0, "stalled": 0, "malformed": 0, "io_errors": 0, "memory_tables_refused": 0, "memory_faults": 0}
}"#;

    #[test]
    fn backend_stats_become_rows() {
        let sc = parse(SCENARIO, "in.toml").unwrap();
        let st = parse_backend_stats(STATS).unwrap();
        assert_eq!(st.stats.device.bad_acks, 2);
        let rows = st.rows(&sc, None).unwrap();
        assert_eq!(rows.len(), 2);
        let (t, b) = (&rows[0], &rows[1]);
        assert_eq!(
            (t.mechanism.as_str(), b.mechanism.as_str()),
            ("tasklet", "bh_wq")
        );
        assert_eq!(t.sources, vec![0, 2]);
        assert_eq!(
            (
                t.host.raised,
                t.host.records,
                t.host.coalesced,
                t.host.acked
            ),
            (2000, 1990, 10, 1990)
        );
        assert_eq!((b.host.pending, b.host.coalesced), (5, 95));
        assert!(conservation(t).is_empty() && conservation(b).is_empty());
        let ra = t.raise_to_ack.as_ref().unwrap();
        assert_eq!(ra.count(), 1990);
        assert_eq!(ra.summary.max_ns, 400_127);
        assert_eq!(
            t.hardirq_to_bh.as_ref().unwrap().summary.resolution,
            Resolution::Hdr
        );
        assert!(t.bh_run.is_none());
        // Per interrupt (ACK_F_FIRST acks) apart from per record; bh_wq's back end
        // predates them.
        let first = t.irq_to_first_bh.as_ref().unwrap();
        assert_eq!((first.count(), first.summary.p50_ns), (1500, 2001));
        assert_eq!((t.past_budget, b.past_budget), (7, 0));
        assert!(b.irq_to_first_bh.is_none());
        // the bare stats object works too
        let inner = serde_json::from_str::<serde_json::Value>(STATS).unwrap()["stats"].to_string();
        assert_eq!(parse_backend_stats(&inner).unwrap().stats.sources.len(), 4);
    }

    #[test]
    fn backend_errors_are_explained() {
        let sc = parse(SCENARIO, "in.toml").unwrap();
        let no_buckets = STATS.replace(r#", "buckets": [[30015, 1000]]"#, "");
        let e = parse_backend_stats(&no_buckets)
            .unwrap()
            .rows(&sc, None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "back-end stats: bh_wq.latency_ns has 1000 values but no buckets (request stats with \"buckets\": true)"
        );
        let missing = STATS.replace(r#"{"source": 2,"#, r#"{"source": 9,"#);
        let e = parse_backend_stats(&missing)
            .unwrap()
            .rows(&sc, None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "back-end stats: scenario source 2 is missing"
        );
        let e = parse_backend_stats(r#"{"ok": false, "error": "BUSY"}"#).unwrap_err();
        assert!(e.to_string().contains("not ok: \"BUSY\""));
        assert!(parse_backend_stats("{").is_err());
        // A misspelt or missing field is an error, never a silent zero.
        let typo = STATS.replace(r#""coalesced": 95,"#, r#""coalesced_": 95,"#);
        let e = parse_backend_stats(&typo).unwrap_err().to_string();
        assert!(e.contains("unknown field `coalesced_`"), "{e}");
        let missing = STATS.replace(r#""acked": 990,"#, "");
        let e = parse_backend_stats(&missing).unwrap_err().to_string();
        assert!(e.contains("missing field `acked`"), "{e}");
    }

    /// STATS with `raw_raise_to_hardirq` for tasklet only (bh_wq is shaped
    /// like an older back end). Known clocks: guest ahead of the host by
    /// 5 s (`host - guest = -5e9`), base = hardirq - ack of the first ack
    /// = 5e9 - 40 us, so a stored value is `latency + 40 us`.
    pub(crate) fn stats_with_raw() -> String {
        STATS.replace(
            r#""guest_bh_run_ns": {"count": 0}},"#,
            r#""guest_bh_run_ns": {"count": 0},
       "raw_raise_to_hardirq": {"base_ns": 4999960000, "below_base": 3,
         "diff_minus_base_ns": {"count": 1990, "min": 60000, "p50": 60000, "p90": 60000,
           "p99": 60000, "p999": 340000, "max": 340000, "mean": 61407.0,
           "buckets": [[60000, 1980], [340000, 10]]}}},"#,
        )
    }

    pub(crate) fn est(host_minus_guest_ns: i64, bound: u64) -> OffsetEstimate {
        OffsetEstimate {
            host_minus_guest_ns,
            error_bound_ns: bound,
            delay_ns: 2 * bound,
            samples: 1,
            used: 1,
            chosen: 0,
            drift_ppm: None,
        }
    }

    #[test]
    fn raw_raise_to_hardirq_parses_and_is_optional() {
        // older stats (no field) still parse
        let old = parse_backend_stats(STATS).unwrap();
        assert!(old.raw_raise_to_hardirq("tasklet").is_none());
        let st = parse_backend_stats(&stats_with_raw()).unwrap();
        let raw = st.raw_raise_to_hardirq("tasklet").unwrap();
        assert_eq!((raw.base_ns, raw.below_base), (Some(4_999_960_000), 3));
        assert_eq!(raw.diff_minus_base_ns.count, 1990);
        // diff = value + base
        assert_eq!(
            raw.diffs("t").unwrap().unwrap(),
            vec![(5_000_020_000, 1980), (5_000_300_000, 10)]
        );
        assert!(st.raw_raise_to_hardirq("bh_wq").is_none());
        // null base (no hardirq stamp yet) and empty histogram: nothing
        let none: RawRaiseToHardirq = serde_json::from_str(
            r#"{"base_ns": null, "below_base": 0, "diff_minus_base_ns": {"count": 0}}"#,
        )
        .unwrap();
        assert_eq!(none.diffs("t").unwrap(), None);
        // values without buckets are an error, as for the other histograms
        let nb: RawRaiseToHardirq = serde_json::from_str(
            r#"{"base_ns": 1, "below_base": 0, "diff_minus_base_ns": {"count": 4, "min": 1,
                "p50": 1, "p90": 1, "p99": 1, "p999": 1, "max": 1, "mean": 1.0}}"#,
        )
        .unwrap();
        assert!(matches!(
            nb.diffs("t"),
            Err(InputError::NoBuckets { count: 4, .. })
        ));
    }

    #[test]
    fn one_way_with_a_known_offset() {
        let sc = parse(SCENARIO, "in.toml").unwrap();
        let st = parse_backend_stats(&stats_with_raw()).unwrap();
        let mut rows = st.rows(&sc, None).unwrap();
        let e = est(-5_000_000_000, 2_000);
        let notes = st.apply_one_way(&mut rows, Some(&e), "irqstorm0").unwrap();
        let ow = rows[0].raise_to_hardirq.as_ref().unwrap();
        let s = &ow.distribution.summary;
        // value + base + offset = latency (HDR keeps 3 significant digits)
        let close = |got: u64, want: u64| got.abs_diff(want) <= want / 500;
        assert!(close(s.p50_ns, 20_000), "{s:?}");
        assert!(close(s.max_ns, 300_000), "{s:?}");
        assert_eq!(ow.distribution.count(), 1990);
        assert_eq!(
            (ow.below_base, ow.negative_samples, ow.error_bound_ns),
            (3, 0, 2_000)
        );
        // bh_wq: older back end, so not measured, never invented
        assert!(rows[1].raise_to_hardirq.is_none());
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("-5000000000 ns, +/- 2000 ns"),
            "{}",
            notes[0]
        );
        assert!(
            notes[0].contains("tasklet 3 below base, 0 negative"),
            "{}",
            notes[0]
        );
        assert!(
            notes[1].starts_with("irqstorm0: one-way raise->hardirq: not measured for bh_wq"),
            "{}",
            notes[1]
        );

        // an offset 25 us too small makes the 20 us events negative: counted
        let mut rows = st.rows(&sc, None).unwrap();
        st.apply_one_way(&mut rows, Some(&est(-5_000_025_000, 30_000)), "d")
            .unwrap();
        let ow = rows[0].raise_to_hardirq.as_ref().unwrap();
        assert_eq!((ow.negative_samples, ow.distribution.count()), (1980, 1990));
        assert_eq!(ow.distribution.summary.min_ns, 0);

        // no offset estimate: not measured, nothing filled
        let mut rows = st.rows(&sc, None).unwrap();
        let notes = st.apply_one_way(&mut rows, None, "irqstorm1").unwrap();
        assert!(rows.iter().all(|r| r.raise_to_hardirq.is_none()));
        assert_eq!(
            notes,
            vec![
                "irqstorm1: one-way raise->hardirq: not measured: no clock offset estimate \
                  (docs/clock-offset.md)"
                    .to_string()
            ]
        );
    }
}
