//! Reading what the back end and the guest driver report, into
//! [`MechanismResult`] rows.
//!
//! * Back end: the reply of the control socket's `stats` command, requested
//!   with `"buckets": true` (`{"ok": true, "stats": {...}}`, or the `stats`
//!   object alone). Per-source counters are summed per mechanism using the
//!   scenario's source -> mechanism map; the per-mechanism HDR histograms
//!   give raise->ack and, from the ack records' guest timestamps,
//!   hardirq->bh and bh run time. Buckets may be `[value, count]` pairs or
//!   `{"value_ns", "count"}` objects.
//! * Guest driver (debugfs text): the summary table (`mechanism events
//!   raises ...`) gives the guest counters; the rtla-style log2 histogram
//!   tables (`Index(ns)` rows, one column per mechanism, `count:`/`min:`/
//!   `avg:`/`max:` footers) give guest-side distributions, and those of the
//!   local reference source give the `ref_hrtimer` baseline.
//!
//! Field names follow `backend/src/device.rs` (`stats_json`) and
//! `guest-driver/stats.rs`; unknown fields are ignored so that additions on
//! either side do not break reports.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::hist::{log2_index, Distribution, HistError, Log2Exact};
use crate::model::{
    mechanism_id, GuestCounters, HostCounters, MechanismResult, OneWay, ReferenceResult,
};
use crate::offset::{one_way_from_diffs, OffsetEstimate};
use crate::scenario::Scenario;

/// Errors reading back-end or guest output.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("back-end stats: {0}")]
    Json(#[from] serde_json::Error),
    #[error("back-end stats: reply not ok: {0}")]
    NotOk(String),
    #[error("back-end stats: {what} has {count} values but no buckets (request stats with \"buckets\": true)")]
    NoBuckets { what: String, count: u64 },
    #[error("back-end stats: scenario source {0} is missing")]
    MissingSource(u16),
    #[error("guest {what}: line {line}: {message}")]
    Guest {
        what: &'static str,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Hist(#[from] HistError),
}

/// One bucket as the back end writes it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum BucketIn {
    Pair([u64; 2]),
    Object { value_ns: u64, count: u64 },
}

impl BucketIn {
    fn pair(self) -> (u64, u64) {
        match self {
            BucketIn::Pair([v, c]) => (v, c),
            BucketIn::Object { value_ns, count } => (value_ns, count),
        }
    }
}

/// A back-end histogram: summary fields and, on request, the buckets.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BackendHist {
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub buckets: Option<Vec<BucketIn>>,
}

impl BackendHist {
    /// The distribution (`None` when empty).
    pub fn distribution(&self, what: &str) -> Result<Option<Distribution>, InputError> {
        if self.count == 0 {
            return Ok(None);
        }
        let b = self.buckets.as_ref().ok_or_else(|| InputError::NoBuckets {
            what: what.to_string(),
            count: self.count,
        })?;
        Ok(Some(Distribution::from_buckets(
            b.iter().map(|x| x.pair()),
        )?))
    }
}

/// Per-source counters of the back end (spec §5.2).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BackendSource {
    pub source: u16,
    #[serde(default)]
    pub raised: u64,
    #[serde(default)]
    pub records: u64,
    #[serde(default)]
    pub coalesced: u64,
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub dropped_on_reset: u64,
    #[serde(default)]
    pub acked: u64,
}

/// Per-mechanism histograms of the back end.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BackendMechanism {
    pub name: String,
    #[serde(default)]
    pub acked: u64,
    #[serde(default)]
    pub latency_ns: BackendHist,
    #[serde(default)]
    pub guest_bh_delay_ns: BackendHist,
    #[serde(default)]
    pub guest_bh_run_ns: BackendHist,
    /// Raw cross-clock raise -> hardirq differences (device spec §9);
    /// absent from older back ends.
    #[serde(default)]
    pub raw_raise_to_hardirq: Option<RawRaiseToHardirq>,
}

/// The back end's `raw_raise_to_hardirq`: `hardirq_ns` (guest clock) `-
/// raise_ns` (host clock) of every ack with a hardirq stamp, stored as
/// `diff - base_ns` (device spec §9).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawRaiseToHardirq {
    /// Per-device base; `null` until an ack with a hardirq stamp arrived.
    #[serde(default)]
    pub base_ns: Option<i64>,
    /// Differences below the base (counted, value unknown).
    #[serde(default)]
    pub below_base: u64,
    #[serde(default)]
    pub diff_minus_base_ns: BackendHist,
}

impl RawRaiseToHardirq {
    /// The raw differences `hardirq_ns - raise_ns` with counts
    /// (`value + base_ns` per bucket), for
    /// [`crate::offset::one_way_from_diffs`]. `Ok(None)` when there is no
    /// base or no value.
    pub fn diffs(&self, what: &str) -> Result<Option<Vec<(i64, u64)>>, InputError> {
        let h = &self.diff_minus_base_ns;
        let Some(base) = self.base_ns else {
            return Ok(None);
        };
        if h.count == 0 {
            return Ok(None);
        }
        let b = h.buckets.as_ref().ok_or_else(|| InputError::NoBuckets {
            what: what.to_string(),
            count: h.count,
        })?;
        Ok(Some(
            b.iter()
                .map(|x| {
                    let (v, c) = x.pair();
                    let d = (i128::from(v) + i128::from(base))
                        .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                    (d as i64, c)
                })
                .collect(),
        ))
    }

    /// The one-way device-raise -> guest-hardirq distribution with the
    /// device's offset estimate: each bucket is `value + base_ns +
    /// host_minus_guest_ns`. `Ok(None)` when there is nothing to convert.
    pub fn one_way(
        &self,
        estimate: &OffsetEstimate,
        what: &str,
    ) -> Result<Option<OneWay>, InputError> {
        let Some(d) = self.diffs(what)? else {
            return Ok(None);
        };
        let mut ow = one_way_from_diffs(estimate, d)?;
        ow.below_base = self.below_base;
        Ok(Some(ow))
    }
}

/// Device-wide counters of the back end.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BackendDevice {
    #[serde(default)]
    pub bad_acks: u64,
    #[serde(default)]
    pub ack_evicted: u64,
    #[serde(default)]
    pub suppressed: u64,
    #[serde(default)]
    pub malformed: u64,
    #[serde(default)]
    pub faults_injected: u64,
}

/// The back end's `stats` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BackendStats {
    #[serde(default)]
    pub since_ns: u64,
    #[serde(default)]
    pub now_ns: u64,
    #[serde(default)]
    pub device: BackendDevice,
    #[serde(default)]
    pub sources: Vec<BackendSource>,
    #[serde(default)]
    pub mechanisms: Vec<BackendMechanism>,
}

/// Parse a `stats` reply (or the bare `stats` object).
pub fn parse_backend_stats(text: &str) -> Result<BackendStats, InputError> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    if v.get("ok").and_then(|o| o.as_bool()) == Some(false) {
        let e = v.get("error").map(|e| e.to_string()).unwrap_or_default();
        return Err(InputError::NotOk(e));
    }
    let inner = match v.get("stats") {
        Some(s) => s.clone(),
        None => v,
    };
    Ok(serde_json::from_value(inner)?)
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
            let h: &mut HostCounters = &mut row.host;
            h.raised += b.raised;
            h.records += b.records;
            h.coalesced += b.coalesced;
            h.pending += b.pending;
            h.dropped += b.dropped_on_reset;
            h.acked += b.acked;
        }
        let mut rows: Vec<MechanismResult> = by_mech.into_values().collect();
        for row in &mut rows {
            if let Some(m) = self.mechanisms.iter().find(|m| m.name == row.mechanism) {
                let n = &row.mechanism;
                row.raise_to_ack = m.latency_ns.distribution(&format!("{n}.latency_ns"))?;
                row.hardirq_to_bh = m
                    .guest_bh_delay_ns
                    .distribution(&format!("{n}.guest_bh_delay_ns"))?;
                row.bh_run = m
                    .guest_bh_run_ns
                    .distribution(&format!("{n}.guest_bh_run_ns"))?;
            }
        }
        Ok(rows)
    }

    /// The raw raise -> hardirq data of a mechanism, if the back end sent it.
    pub fn raw_raise_to_hardirq(&self, mechanism: &str) -> Option<&RawRaiseToHardirq> {
        self.mechanisms
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
            .filter(|r| r.raise_to_ack.is_some())
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
        for row in rows.iter_mut().filter(|r| r.raise_to_ack.is_some()) {
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

/// One row of the guest's summary table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSummaryRow {
    pub mechanism: String,
    /// Records handled.
    pub events: u64,
    /// Raises those records stand for.
    pub raises: u64,
}

/// Parse the guest's summary table (`mechanism events raises ...`).
pub fn parse_guest_summary(text: &str) -> Result<Vec<GuestSummaryRow>, InputError> {
    let err = |line: usize, message: String| InputError::Guest {
        what: "summary",
        line,
        message,
    };
    let mut cols: Option<(usize, usize)> = None;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let t: Vec<&str> = l.split_whitespace().collect();
        if t.is_empty() || t[0].starts_with('#') {
            continue;
        }
        if t[0] == "mechanism" {
            let find = |name: &str| t.iter().position(|x| *x == name);
            match (find("events"), find("raises")) {
                (Some(e), Some(r)) => cols = Some((e, r)),
                _ => return Err(err(i + 1, "header lacks `events`/`raises`".into())),
            }
            continue;
        }
        let (e, r) = cols.ok_or_else(|| err(i + 1, "data before the header line".into()))?;
        if mechanism_id(t[0]).is_none() {
            return Err(err(i + 1, format!("unknown mechanism `{}`", t[0])));
        }
        let num = |k: usize| -> Result<u64, InputError> {
            t.get(k)
                .ok_or_else(|| err(i + 1, format!("missing column {k}")))?
                .parse()
                .map_err(|_| err(i + 1, format!("`{}` is not a number", t[k])))
        };
        out.push(GuestSummaryRow {
            mechanism: t[0].to_string(),
            events: num(e)?,
            raises: num(r)?,
        });
    }
    if cols.is_none() {
        return Err(err(0, "no header line".into()));
    }
    Ok(out)
}

/// One mechanism column of a guest histogram table.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestHistColumn {
    pub mechanism: String,
    /// log2 counts: `counts[i]` values in `[2^i, 2^(i+1))` ns.
    pub counts: Vec<u64>,
    /// Footer values by name (`count`, `min`, `avg`, `p50`, `p99`, `max`).
    pub footer: BTreeMap<String, u64>,
}

impl GuestHistColumn {
    /// The distribution, with the footer's exact min/max and the mean
    /// (`avg`, an integer) as side figures.
    pub fn distribution(&self) -> Result<Distribution, HistError> {
        let n: u64 = self.counts.iter().sum();
        let exact = Log2Exact {
            sum_ns: self.footer.get("avg").map(|a| a.saturating_mul(n)),
            min_ns: self.footer.get("min").copied(),
            max_ns: self.footer.get("max").copied(),
        };
        Distribution::from_log2_exact(&self.counts, exact)
    }
}

/// A guest histogram table.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestHistTable {
    /// The `#` title line(s).
    pub title: String,
    /// Whether the table is of the local reference source.
    pub local: bool,
    pub columns: Vec<GuestHistColumn>,
}

impl GuestHistTable {
    pub fn column(&self, mechanism: &str) -> Option<&GuestHistColumn> {
        self.columns.iter().find(|c| c.mechanism == mechanism)
    }
}

/// Parse an rtla-style guest histogram table.
pub fn parse_guest_hist(text: &str) -> Result<GuestHistTable, InputError> {
    let err = |line: usize, message: String| InputError::Guest {
        what: "histogram",
        line,
        message,
    };
    let mut title = String::new();
    let mut columns: Vec<GuestHistColumn> = Vec::new();
    let mut header = false;
    for (i, l) in text.lines().enumerate() {
        let t: Vec<&str> = l.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        if t[0].starts_with('#') {
            if !title.is_empty() {
                title.push(' ');
            }
            title.push_str(l.trim_start_matches('#').trim());
            continue;
        }
        if t[0] == "Index(ns)" {
            for m in &t[1..] {
                if mechanism_id(m).is_none() {
                    return Err(err(i + 1, format!("unknown mechanism `{m}`")));
                }
                columns.push(GuestHistColumn {
                    mechanism: m.to_string(),
                    counts: Vec::new(),
                    footer: BTreeMap::new(),
                });
            }
            header = true;
            continue;
        }
        if !header {
            return Err(err(i + 1, "data before the `Index(ns)` header".into()));
        }
        if t.len() != columns.len() + 1 {
            return Err(err(
                i + 1,
                format!("{} values for {} mechanisms", t.len() - 1, columns.len()),
            ));
        }
        let vals: Vec<u64> = t[1..]
            .iter()
            .map(|x| {
                x.parse::<u64>()
                    .map_err(|_| err(i + 1, format!("`{x}` is not a number")))
            })
            .collect::<Result<_, _>>()?;
        if let Some(name) = t[0].strip_suffix(':') {
            for (c, v) in columns.iter_mut().zip(vals) {
                c.footer.insert(name.to_string(), v);
            }
            continue;
        }
        let lower: u64 = t[0]
            .parse()
            .map_err(|_| err(i + 1, format!("`{}` is not a bucket bound", t[0])))?;
        if !lower.is_power_of_two() {
            return Err(err(
                i + 1,
                format!("bucket bound {lower} is not a power of two"),
            ));
        }
        let idx = log2_index(lower);
        for (c, v) in columns.iter_mut().zip(vals) {
            if c.counts.len() <= idx {
                c.counts.resize(idx + 1, 0);
            }
            c.counts[idx] += v;
        }
    }
    if !header {
        return Err(err(0, "no `Index(ns)` header".into()));
    }
    let local = title.contains("local reference");
    Ok(GuestHistTable {
        title,
        local,
        columns,
    })
}

/// Guest debugfs texts of one device (each optional).
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestTexts<'a> {
    /// Summary table of device events.
    pub summary: Option<&'a str>,
    /// hardirq->bh-start histogram, device events.
    pub latency: Option<&'a str>,
    /// Bottom-half run-time histogram, device events.
    pub work: Option<&'a str>,
    /// hardirq->bh-start histogram of the local reference source.
    pub ref_latency: Option<&'a str>,
    /// Bottom-half run-time histogram of the local reference source.
    pub ref_work: Option<&'a str>,
}

/// [`GuestTexts`], owned: read from files or cut from a guest console.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestDump {
    pub summary: Option<String>,
    pub latency: Option<String>,
    pub work: Option<String>,
    pub ref_latency: Option<String>,
    pub ref_work: Option<String>,
}

impl GuestDump {
    pub fn texts(&self) -> GuestTexts<'_> {
        GuestTexts {
            summary: self.summary.as_deref(),
            latency: self.latency.as_deref(),
            work: self.work.as_deref(),
            ref_latency: self.ref_latency.as_deref(),
            ref_work: self.ref_work.as_deref(),
        }
    }
}

/// Add what the guest reports to the rows: guest counters from the
/// summary; hardirq->bh and bh run time from the guest's histograms where
/// the back end gave none; the reference source as `reference`.
pub fn apply_guest(rows: &mut [MechanismResult], texts: &GuestTexts<'_>) -> Result<(), InputError> {
    let summary = texts.summary.map(parse_guest_summary).transpose()?;
    let lat = texts.latency.map(parse_guest_hist).transpose()?;
    let work = texts.work.map(parse_guest_hist).transpose()?;
    let rlat = texts.ref_latency.map(parse_guest_hist).transpose()?;
    let rwork = texts.ref_work.map(parse_guest_hist).transpose()?;
    let col = |t: &Option<GuestHistTable>, m: &str| -> Result<Option<Distribution>, InputError> {
        match t.as_ref().and_then(|t| t.column(m)) {
            Some(c) => Ok(Some(c.distribution()?)),
            None => Ok(None),
        }
    };
    for row in rows.iter_mut() {
        let m = row.mechanism.clone();
        if let Some(s) = summary
            .as_ref()
            .and_then(|s| s.iter().find(|r| r.mechanism == m))
        {
            row.guest = Some(GuestCounters {
                records: s.events,
                events: s.raises,
                acks_posted: None,
                errors: 0,
            });
        }
        if row.hardirq_to_bh.is_none() {
            row.hardirq_to_bh = col(&lat, &m)?;
        }
        if row.bh_run.is_none() {
            row.bh_run = col(&work, &m)?;
        }
        let (rl, rw) = (col(&rlat, &m)?, col(&rwork, &m)?);
        if rl.is_some() || rw.is_some() {
            row.reference = Some(ReferenceResult {
                timer_to_hardirq: None,
                hardirq_to_bh: rl,
                bh_run: rw,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::Resolution;
    use crate::model::conservation;
    use crate::scenario::parse;

    const SCENARIO: &str = r#"
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
    const STATS: &str = r#"{
  "ok": true, "device": 0,
  "stats": {
    "since_ns": 1, "now_ns": 2, "negotiated_features": 3, "outstanding": 0,
    "totals": {"raised": 3100},
    "device": {"malformed_ctrl": 0, "bad_acks": 2, "ack_evicted": 0, "suppressed": 5, "malformed": 0},
    "sources": [
      {"source": 0, "mode": "periodic", "running": false, "raised": 1000, "records": 1000, "delivered": 1000,
       "coalesced": 0, "latched_records": 0, "pending": 0, "dropped_on_reset": 0, "acked": 1000,
       "acked_raises": 1000, "source_seq": 1000, "conserved": true, "latency_ns": {"count": 0}},
      {"source": 1, "raised": 1100, "records": 1000, "coalesced": 95, "pending": 5, "dropped_on_reset": 0, "acked": 1000},
      {"source": 2, "raised": 1000, "records": 990, "coalesced": 10, "pending": 0, "dropped_on_reset": 0, "acked": 990},
      {"source": 3, "raised": 0}
    ],
    "mechanisms": [
      {"id": 2, "name": "tasklet", "acked": 1990, "acked_raises": 2000,
       "latency_ns": {"count": 1990, "p99": 0, "buckets": [[20015, 1980], [400127, 10]]},
       "guest_bh_delay_ns": {"count": 1990, "buckets": [{"value_ns": 3001, "count": 1990}]},
       "guest_bh_run_ns": {"count": 0}},
      {"id": 4, "name": "bh_wq", "acked": 1000,
       "latency_ns": {"count": 1000, "buckets": [[30015, 1000]]},
       "guest_bh_delay_ns": {"count": 0}, "guest_bh_run_ns": {"count": 0}}
    ]
  },
  "control": {"requests": 1}
}"#;

    /// Shaped like guest-driver/stats.rs `write_summary`.
    const SUMMARY: &str = "\
mechanism         events    raises   lat_min   lat_avg   lat_p50   lat_p99   lat_max  work_avg
hardirq                0         0
tasklet             1990      2000       900      2500      3071      6143      9000      1000
bh_wq               1000      1095      1200      2600      3071      4095      5000      1000
";

    /// Shaped like guest-driver/stats.rs `write_hist`.
    const HIST: &str = "\
# irqstorm hardirq->bh-start latency histogram (device events), log2 buckets in ns
   Index(ns)       tasklet         bh_wq
         512            10             0
        1024          1900           990
        8192            80            10
      count:          1990          1000
        min:           900          1200
        avg:          2500          2600
        p50:          3071          3071
        p99:          6143          4095
        max:          9000          5000
";

    const REF_HIST: &str = "\
# irqstorm bottom-half run time histogram (local reference source), log2 buckets in ns
   Index(ns)       tasklet
           1             5
         256            95
      count:           100
        avg:           300
        max:           400
";

    #[test]
    fn backend_stats_become_rows() {
        let sc = parse(SCENARIO, "in.toml").unwrap();
        let st = parse_backend_stats(STATS).unwrap();
        assert_eq!(st.device.bad_acks, 2);
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
        // the bare stats object works too
        let inner = serde_json::from_str::<serde_json::Value>(STATS).unwrap()["stats"].to_string();
        assert_eq!(parse_backend_stats(&inner).unwrap().sources.len(), 4);
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
    }

    #[test]
    fn guest_summary_and_histograms_parse() {
        let s = parse_guest_summary(SUMMARY).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[1],
            GuestSummaryRow {
                mechanism: "tasklet".into(),
                events: 1990,
                raises: 2000
            }
        );
        let h = parse_guest_hist(HIST).unwrap();
        assert!(!h.local);
        let t = h.column("tasklet").unwrap();
        assert_eq!(t.counts[9], 10);
        assert_eq!(t.counts[10], 1900);
        assert_eq!(t.counts[13], 80);
        let d = t.distribution().unwrap();
        assert_eq!(d.count(), 1990);
        assert_eq!(d.summary.min_ns, 900);
        assert_eq!(d.summary.max_ns, 9000);
        assert_eq!(d.summary.p50_ns, 2048);
        assert_eq!(d.summary.p99_ns, 9000); // bucket edge 16384 capped at the max
        assert_eq!(d.summary.mean_ns, 2500.0);
        let r = parse_guest_hist(REF_HIST).unwrap();
        assert!(r.local);
        assert_eq!(r.column("tasklet").unwrap().counts, {
            let mut v = vec![0u64; 9];
            v[0] = 5;
            v[8] = 95;
            v
        });
    }

    #[test]
    fn guest_parse_errors_name_the_line() {
        let e = parse_guest_hist("   Index(ns)  tasklet\n  1024  1  2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "guest histogram: line 2: 2 values for 1 mechanisms"
        );
        let e = parse_guest_hist("   Index(ns)  tasklet\n  1000  1\n").unwrap_err();
        assert!(e
            .to_string()
            .contains("line 2: bucket bound 1000 is not a power of two"));
        let e = parse_guest_hist("   Index(ns)  nope\n").unwrap_err();
        assert!(e.to_string().contains("unknown mechanism `nope`"));
        assert!(parse_guest_hist("").is_err());
        let e = parse_guest_summary("tasklet 1 2\n").unwrap_err();
        assert!(e
            .to_string()
            .contains("line 1: data before the header line"));
        let e = parse_guest_summary("mechanism events raises\ntasklet x 2\n").unwrap_err();
        assert!(e.to_string().contains("line 2: `x` is not a number"));
    }

    #[test]
    fn guest_data_completes_the_rows() {
        let sc = parse(SCENARIO, "in.toml").unwrap();
        let mut rows = parse_backend_stats(STATS).unwrap().rows(&sc, None).unwrap();
        apply_guest(
            &mut rows,
            &GuestTexts {
                summary: Some(SUMMARY),
                latency: Some(HIST),
                work: None,
                ref_latency: None,
                ref_work: Some(REF_HIST),
            },
        )
        .unwrap();
        let (t, b) = (&rows[0], &rows[1]);
        assert_eq!(t.guest.unwrap().events, 2000);
        // guest records and events agree with the host: conservation holds
        assert!(conservation(t).is_empty(), "{:?}", conservation(t));
        assert!(conservation(b).is_empty(), "{:?}", conservation(b));
        // the back end's HDR hardirq->bh is kept for tasklet; bh_wq takes the guest's
        assert_eq!(
            t.hardirq_to_bh.as_ref().unwrap().summary.resolution,
            Resolution::Hdr
        );
        assert_eq!(
            b.hardirq_to_bh.as_ref().unwrap().summary.resolution,
            Resolution::Log2UpperEdge
        );
        let r = t.reference.as_ref().unwrap();
        assert_eq!(r.bh_run.as_ref().unwrap().count(), 100);
        assert!(b.reference.is_none());
    }

    /// STATS with `raw_raise_to_hardirq` for tasklet only (bh_wq is shaped
    /// like an older back end). Known clocks: guest ahead of the host by
    /// 5 s (`host - guest = -5e9`), base = hardirq - ack of the first ack
    /// = 5e9 - 40 us, so a stored value is `latency + 40 us`.
    fn stats_with_raw() -> String {
        STATS.replace(
            r#""guest_bh_run_ns": {"count": 0}},"#,
            r#""guest_bh_run_ns": {"count": 0},
       "raw_raise_to_hardirq": {"base_ns": 4999960000, "below_base": 3,
         "diff_minus_base_ns": {"count": 1990, "min": 60000, "max": 340000,
           "buckets": [[60000, 1980], [340000, 10]]}}},"#,
        )
    }

    fn est(host_minus_guest_ns: i64, bound: u64) -> OffsetEstimate {
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
            r#"{"base_ns": 1, "below_base": 0, "diff_minus_base_ns": {"count": 4}}"#,
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
