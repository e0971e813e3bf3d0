//! The threshold grammar: figures (`<metric>.<stat>` or a scalar), absolute
//! limits (durations, ratios, counts, per accelerator) and ratios to a
//! baseline; [`threshold_spec`] validates one threshold as written.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::schema::Reference;
use crate::model::{mechanism_id, MECHANISMS};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::fixtures::{problems, with};
    use crate::scenario::parse;

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
    fn durations_parse() {
        assert_eq!(parse_duration_ns("500us"), Ok(500_000.0));
        assert_eq!(parse_duration_ns("1.5ms"), Ok(1_500_000.0));
        assert_eq!(parse_duration_ns("2 s"), Ok(2e9));
        assert_eq!(parse_duration_ns("800ns"), Ok(800.0));
        assert!(parse_duration_ns("12").is_err());
        assert!(parse_duration_ns("ms").is_err());
        assert!(parse_duration_ns("3h").is_err());
    }
}
