//! Histogram helpers: summaries from HDR histograms (host side) and from
//! log2 bucket arrays (guest side), plus the serialized forms that travel in
//! the backend's JSON and in `report.json`.
//!
//! * Host: the back end keeps `hdrhistogram` histograms (3 significant
//!   digits). They travel either as a bucket list `[{value_ns, count}]`
//!   ([`hdr_from_buckets`], [`hdr_to_buckets`]) or as a base64 string of the
//!   HdrHistogram V2 encoding ([`hdr_from_v2_base64`], [`hdr_to_v2_base64`];
//!   the compressed V2+Deflate form is accepted too).
//! * Guest: the driver keeps log2 buckets: bucket `i` counts values in
//!   `[2^i, 2^(i+1))` ns (bucket 0 also holds 0). Percentiles from log2
//!   buckets can only be bounded by bucket edges; [`summary_from_log2`]
//!   reports the **upper edge** `2^(i+1)` of the bucket that holds the
//!   percentile, so a reported guest p99 of 65536 ns means "p99 < 65536 ns".

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant digits of every HDR histogram this crate creates.
pub const HDR_SIGFIG: u8 = 3;

/// Largest number of log2 buckets accepted (values up to 2^64 ns).
pub const LOG2_MAX_BUCKETS: usize = 64;

/// Errors from histogram conversion.
#[derive(Debug, thiserror::Error)]
pub enum HistError {
    #[error("histogram: {0}")]
    Record(String),
    #[error("histogram: bad base64: {0}")]
    Base64(String),
    #[error("histogram: bad V2 encoding: {0}")]
    Decode(String),
    #[error("histogram: {0} log2 buckets, at most {LOG2_MAX_BUCKETS} allowed")]
    TooManyBuckets(usize),
}

/// One bucket of a serialized HDR histogram: `count` values equivalent to
/// `value_ns` (the highest value of the HDR bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub value_ns: u64,
    pub count: u64,
}

/// How a summary's percentiles were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// HDR histogram: within 0.1 % of the true value.
    Hdr,
    /// log2 buckets: each figure is the upper edge of its bucket (a bound).
    Log2UpperEdge,
    /// Exact, from the raw samples.
    Exact,
}

/// Summary of one latency distribution. All values in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub resolution: Resolution,
}

impl LatencySummary {
    /// The summary of an empty distribution (all zeros).
    pub fn empty(resolution: Resolution) -> Self {
        LatencySummary {
            count: 0,
            min_ns: 0,
            mean_ns: 0.0,
            p50_ns: 0,
            p90_ns: 0,
            p99_ns: 0,
            p999_ns: 0,
            max_ns: 0,
            resolution,
        }
    }
}

/// A new empty HDR histogram with the crate's precision (auto-resizing).
pub fn new_hdr() -> Histogram<u64> {
    // 3 significant digits is always a valid precision.
    Histogram::new(HDR_SIGFIG).unwrap_or_else(|_| unreachable!("sigfig 3 is valid"))
}

/// Build an HDR histogram from `(value_ns, count)` pairs (a bucket list).
pub fn hdr_from_buckets<I>(buckets: I) -> Result<Histogram<u64>, HistError>
where
    I: IntoIterator<Item = (u64, u64)>,
{
    let mut h = new_hdr();
    for (value, count) in buckets {
        if count == 0 {
            continue;
        }
        h.record_n(value, count)
            .map_err(|e| HistError::Record(format!("value {value}: {e:?}")))?;
    }
    Ok(h)
}

/// The bucket list of an HDR histogram (only non-empty buckets, ascending).
/// `hdr_from_buckets(hdr_to_buckets(h))` reproduces `h`'s counts.
pub fn hdr_to_buckets(h: &Histogram<u64>) -> Vec<Bucket> {
    h.iter_recorded()
        .map(|v| Bucket {
            value_ns: v.value_iterated_to(),
            count: v.count_at_value(),
        })
        .collect()
}

/// Decode a base64 HdrHistogram V2 (or V2+Deflate) encoding.
pub fn hdr_from_v2_base64(text: &str) -> Result<Histogram<u64>, HistError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| HistError::Base64(e.to_string()))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| HistError::Decode(format!("{e:?}")))
}

/// Encode an HDR histogram as base64 of its V2 encoding.
pub fn hdr_to_v2_base64(h: &Histogram<u64>) -> String {
    use base64::Engine as _;
    let mut buf = Vec::new();
    // Serializing into a Vec cannot fail for a well-formed histogram.
    if V2Serializer::new().serialize(h, &mut buf).is_err() {
        buf.clear();
    }
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Summary of an HDR histogram.
pub fn summary_from_hdr(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::empty(Resolution::Hdr);
    }
    LatencySummary {
        count: h.len(),
        min_ns: h.min(),
        mean_ns: h.mean(),
        p50_ns: h.value_at_quantile(0.50),
        p90_ns: h.value_at_quantile(0.90),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
        resolution: Resolution::Hdr,
    }
}

/// Lower edge of log2 bucket `i` (bucket 0 starts at 0).
pub fn log2_lower_edge(i: usize) -> u64 {
    if i == 0 {
        0
    } else {
        1u64 << i.min(63)
    }
}

/// Upper edge of log2 bucket `i`: `2^(i+1)` (saturating at `u64::MAX`).
pub fn log2_upper_edge(i: usize) -> u64 {
    if i >= 63 {
        u64::MAX
    } else {
        1u64 << (i + 1)
    }
}

/// The log2 bucket index of a value (0 and 1 go to bucket 0).
pub fn log2_index(value: u64) -> usize {
    if value <= 1 {
        0
    } else {
        63 - value.leading_zeros() as usize
    }
}

/// Rank (1-based) of quantile `q` among `n` values: the smallest rank whose
/// cumulative fraction reaches `q`.
fn rank(q: f64, n: u64) -> u64 {
    ((q * n as f64).ceil() as u64).clamp(1, n.max(1))
}

/// Summary of guest log2 buckets (`counts[i]` values in `[2^i, 2^(i+1))` ns).
///
/// Percentiles, min and max are bucket edges: min is the lower edge of the
/// first non-empty bucket, every other figure the upper edge of the bucket
/// that holds it. The mean is exact when `sum_ns` is given, else estimated
/// from bucket midpoints.
pub fn summary_from_log2(counts: &[u64], sum_ns: Option<u64>) -> LatencySummary {
    summary_from_log2_exact(
        counts,
        Log2Exact {
            sum_ns,
            ..Default::default()
        },
    )
}

/// Exact side figures a log2 producer may report with its buckets (the
/// guest driver reports min, max and the mean).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Log2Exact {
    pub sum_ns: Option<u64>,
    pub min_ns: Option<u64>,
    pub max_ns: Option<u64>,
}

/// Summary of log2 buckets with exact side figures: `min_ns`/`max_ns`
/// replace the bucket edges, and every percentile is capped at `max_ns`
/// (still an upper bound).
pub fn summary_from_log2_exact(counts: &[u64], exact: Log2Exact) -> LatencySummary {
    let sum_ns = exact.sum_ns;
    let cap = exact.max_ns.unwrap_or(u64::MAX);
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return LatencySummary::empty(Resolution::Log2UpperEdge);
    }
    let at = |q: f64| -> u64 {
        let r = rank(q, n);
        let mut cum = 0u64;
        for (i, &c) in counts.iter().enumerate() {
            cum += c;
            if cum >= r {
                return log2_upper_edge(i).min(cap);
            }
        }
        log2_upper_edge(counts.len().saturating_sub(1)).min(cap)
    };
    let first = counts.iter().position(|&c| c > 0).unwrap_or(0);
    let last = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    let mean_ns = match sum_ns {
        Some(s) => s as f64 / n as f64,
        None => {
            let total: f64 = counts
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    c as f64 * (log2_lower_edge(i) as f64 + log2_upper_edge(i) as f64) / 2.0
                })
                .sum();
            total / n as f64
        }
    };
    LatencySummary {
        count: n,
        min_ns: exact.min_ns.unwrap_or(log2_lower_edge(first)),
        mean_ns,
        p50_ns: at(0.50),
        p90_ns: at(0.90),
        p99_ns: at(0.99),
        p999_ns: at(0.999),
        max_ns: exact.max_ns.unwrap_or(log2_upper_edge(last)),
        resolution: Resolution::Log2UpperEdge,
    }
}

/// Exact summary of raw samples (sorted in place).
pub fn summary_exact(samples: &mut [u64]) -> LatencySummary {
    if samples.is_empty() {
        return LatencySummary::empty(Resolution::Exact);
    }
    samples.sort_unstable();
    let n = samples.len() as u64;
    let at = |q: f64| samples[(rank(q, n) - 1) as usize];
    let sum: u128 = samples.iter().map(|&v| v as u128).sum();
    LatencySummary {
        count: n,
        min_ns: samples[0],
        mean_ns: sum as f64 / n as f64,
        p50_ns: at(0.50),
        p90_ns: at(0.90),
        p99_ns: at(0.99),
        p999_ns: at(0.999),
        max_ns: samples[samples.len() - 1],
        resolution: Resolution::Exact,
    }
}

/// A stored distribution: the full histogram, in the form its producer keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HistogramData {
    /// HDR bucket list (host side, and everything derived on the host).
    Hdr { buckets: Vec<Bucket> },
    /// Guest log2 buckets: `counts[i]` values in `[2^i, 2^(i+1))` ns.
    Log2 {
        counts: Vec<u64>,
        /// Exact sum of the values, when the producer reports it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sum_ns: Option<u64>,
        /// Exact smallest value, when reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_ns: Option<u64>,
        /// Exact largest value, when reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_ns: Option<u64>,
    },
}

/// A distribution: its histogram and the summary derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    pub summary: LatencySummary,
    pub histogram: HistogramData,
}

impl Distribution {
    /// From an HDR histogram.
    pub fn from_hdr(h: &Histogram<u64>) -> Self {
        Distribution {
            summary: summary_from_hdr(h),
            histogram: HistogramData::Hdr {
                buckets: hdr_to_buckets(h),
            },
        }
    }

    /// From a bucket list of `(value_ns, count)`.
    pub fn from_buckets<I>(buckets: I) -> Result<Self, HistError>
    where
        I: IntoIterator<Item = (u64, u64)>,
    {
        Ok(Self::from_hdr(&hdr_from_buckets(buckets)?))
    }

    /// From guest log2 buckets (trailing empty buckets are trimmed).
    pub fn from_log2(counts: &[u64], sum_ns: Option<u64>) -> Result<Self, HistError> {
        Self::from_log2_exact(
            counts,
            Log2Exact {
                sum_ns,
                ..Default::default()
            },
        )
    }

    /// From guest log2 buckets with exact side figures.
    pub fn from_log2_exact(counts: &[u64], exact: Log2Exact) -> Result<Self, HistError> {
        if counts.len() > LOG2_MAX_BUCKETS {
            return Err(HistError::TooManyBuckets(counts.len()));
        }
        let end = counts.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
        let counts = counts[..end].to_vec();
        Ok(Distribution {
            summary: summary_from_log2_exact(&counts, exact),
            histogram: HistogramData::Log2 {
                counts,
                sum_ns: exact.sum_ns,
                min_ns: exact.min_ns,
                max_ns: exact.max_ns,
            },
        })
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.summary.count
    }

    /// Recompute the summary from the histogram.
    pub fn resummarize(&mut self) -> Result<(), HistError> {
        self.summary = match &self.histogram {
            HistogramData::Hdr { buckets } => summary_from_hdr(&hdr_from_buckets(
                buckets.iter().map(|b| (b.value_ns, b.count)),
            )?),
            HistogramData::Log2 {
                counts,
                sum_ns,
                min_ns,
                max_ns,
            } => summary_from_log2_exact(
                counts,
                Log2Exact {
                    sum_ns: *sum_ns,
                    min_ns: *min_ns,
                    max_ns: *max_ns,
                },
            ),
        };
        Ok(())
    }

    /// Merge `other` into `self`. Two HDR or two log2 histograms merge
    /// exactly; a mix is merged in log2 form (HDR values re-binned).
    pub fn merge(&mut self, other: &Distribution) -> Result<(), HistError> {
        *self = match (&self.histogram, &other.histogram) {
            (HistogramData::Hdr { buckets: a }, HistogramData::Hdr { buckets: b }) => {
                Distribution::from_buckets(a.iter().chain(b.iter()).map(|x| (x.value_ns, x.count)))?
            }
            (
                HistogramData::Log2 {
                    sum_ns: sa,
                    min_ns: na,
                    max_ns: xa,
                    ..
                },
                HistogramData::Log2 {
                    sum_ns: sb,
                    min_ns: nb,
                    max_ns: xb,
                    ..
                },
            ) => {
                let both = |a: &Option<u64>, b: &Option<u64>, f: fn(u64, u64) -> u64| match (a, b) {
                    (Some(x), Some(y)) => Some(f(*x, *y)),
                    _ => None,
                };
                let exact = Log2Exact {
                    sum_ns: both(sa, sb, |x, y| x + y),
                    min_ns: both(na, nb, u64::min),
                    max_ns: both(xa, xb, u64::max),
                };
                Distribution::from_log2_exact(
                    &add_counts(self.log2_counts(), &other.log2_counts()),
                    exact,
                )?
            }
            _ => Distribution::from_log2(
                &add_counts(self.log2_counts(), &other.log2_counts()),
                None,
            )?,
        };
        Ok(())
    }

    /// Points `(upper value ns, count)` of the histogram, ascending; used for
    /// CDF and histogram plots. HDR buckets give their value; log2 buckets
    /// their upper edge.
    pub fn points(&self) -> Vec<(u64, u64)> {
        match &self.histogram {
            HistogramData::Hdr { buckets } => {
                buckets.iter().map(|b| (b.value_ns, b.count)).collect()
            }
            HistogramData::Log2 { counts, .. } => counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(i, &c)| (log2_upper_edge(i), c))
                .collect(),
        }
    }

    /// The distribution re-binned into log2 buckets.
    pub fn log2_counts(&self) -> Vec<u64> {
        log2_counts(&self.histogram)
    }
}

fn add_counts(mut a: Vec<u64>, b: &[u64]) -> Vec<u64> {
    if b.len() > a.len() {
        a.resize(b.len(), 0);
    }
    for (i, v) in b.iter().enumerate() {
        a[i] += v;
    }
    a
}

/// Re-bin any histogram into log2 buckets.
pub fn log2_counts(h: &HistogramData) -> Vec<u64> {
    match h {
        HistogramData::Log2 { counts, .. } => counts.clone(),
        HistogramData::Hdr { buckets } => {
            let mut c: Vec<u64> = Vec::new();
            for b in buckets {
                let i = log2_index(b.value_ns);
                if c.len() <= i {
                    c.resize(i + 1, 0);
                }
                c[i] += b.count;
            }
            c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdr_bucket_roundtrip_keeps_counts_and_percentiles() {
        let mut h = new_hdr();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let b = hdr_to_buckets(&h);
        let h2 = hdr_from_buckets(b.iter().map(|x| (x.value_ns, x.count))).unwrap();
        assert_eq!(h2.len(), 10_000);
        let (s1, s2) = (summary_from_hdr(&h), summary_from_hdr(&h2));
        assert_eq!(s1.p99_ns, s2.p99_ns);
        assert_eq!(s1.max_ns, s2.max_ns);
        // p50 of 100..=1_000_000 step 100 is ~500_000 within 0.1 %
        assert!(
            (s1.p50_ns as f64 - 500_000.0).abs() / 500_000.0 < 0.002,
            "{}",
            s1.p50_ns
        );
        assert_eq!(s1.resolution, Resolution::Hdr);
    }

    #[test]
    fn hdr_v2_base64_roundtrip() {
        let mut h = new_hdr();
        h.record_n(1234, 5).unwrap();
        h.record_n(987_654, 2).unwrap();
        let text = hdr_to_v2_base64(&h);
        let h2 = hdr_from_v2_base64(&text).unwrap();
        assert_eq!(h2.len(), 7);
        assert_eq!(h2.max(), h.max());
        assert!(hdr_from_v2_base64("not base64 !!").is_err());
        assert!(hdr_from_v2_base64("AAAA").is_err());
    }

    #[test]
    fn log2_percentiles_are_upper_edges() {
        // 90 values in [1024, 2048), 9 in [8192, 16384), 1 in [2^20, 2^21)
        let mut counts = vec![0u64; 21];
        counts[10] = 90;
        counts[13] = 9;
        counts[20] = 1;
        let s = summary_from_log2(&counts, None);
        assert_eq!(s.count, 100);
        assert_eq!(s.min_ns, 1024);
        assert_eq!(s.p50_ns, 2048);
        assert_eq!(s.p90_ns, 2048); // rank 90 is the last of bucket 10
        assert_eq!(s.p99_ns, 16384); // rank 99 is in bucket 13
        assert_eq!(s.p999_ns, 1 << 21); // rank 100
        assert_eq!(s.max_ns, 1 << 21);
        assert_eq!(s.resolution, Resolution::Log2UpperEdge);
        let exact = summary_from_log2(&counts, Some(500_000));
        assert_eq!(exact.mean_ns, 5000.0);
    }

    #[test]
    fn log2_exact_side_figures_tighten_the_summary() {
        let mut counts = vec![0u64; 12];
        counts[10] = 99; // [1024, 2048)
        counts[11] = 1; // [2048, 4096)
        let exact = Log2Exact {
            sum_ns: Some(130_000),
            min_ns: Some(1100),
            max_ns: Some(2500),
        };
        let s = summary_from_log2_exact(&counts, exact);
        assert_eq!(
            (s.min_ns, s.p50_ns, s.p99_ns, s.p999_ns, s.max_ns),
            (1100, 2048, 2048, 2500, 2500)
        );
        assert_eq!(s.mean_ns, 1300.0);
        let mut a = Distribution::from_log2_exact(&counts, exact).unwrap();
        let b = Distribution::from_log2_exact(
            &counts,
            Log2Exact {
                sum_ns: Some(1),
                min_ns: Some(1050),
                max_ns: Some(3000),
            },
        )
        .unwrap();
        a.merge(&b).unwrap();
        assert_eq!(
            (a.summary.min_ns, a.summary.max_ns, a.count()),
            (1050, 3000, 200)
        );
        // JSON keeps the side figures
        let j = serde_json::to_string(&a.histogram).unwrap();
        assert!(
            j.contains("\"min_ns\":1050") && j.contains("\"max_ns\":3000"),
            "{j}"
        );
    }

    #[test]
    fn log2_bucket_zero_and_empty() {
        let s = summary_from_log2(&[3], None);
        assert_eq!((s.min_ns, s.p50_ns, s.max_ns), (0, 2, 2));
        let e = summary_from_log2(&[0, 0, 0], None);
        assert_eq!(e.count, 0);
        assert_eq!(e.max_ns, 0);
        assert_eq!(log2_index(0), 0);
        assert_eq!(log2_index(1), 0);
        assert_eq!(log2_index(2), 1);
        assert_eq!(log2_index(1023), 9);
        assert_eq!(log2_index(1024), 10);
        assert_eq!(log2_index(u64::MAX), 63);
        assert_eq!(log2_upper_edge(63), u64::MAX);
    }

    #[test]
    fn exact_summary_ranks() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let s = summary_exact(&mut v);
        assert_eq!(
            (s.min_ns, s.p50_ns, s.p99_ns, s.p999_ns, s.max_ns),
            (1, 500, 990, 999, 1000)
        );
        assert_eq!(s.mean_ns, 500.5);
    }

    #[test]
    fn merge_hdr_and_log2() {
        let mut a = Distribution::from_buckets([(1000, 10), (2000, 5)]).unwrap();
        let b = Distribution::from_buckets([(1000, 1), (50_000, 2)]).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.count(), 18);
        assert_eq!(a.summary.max_ns, b.summary.max_ns);

        let mut g = Distribution::from_log2(&[0, 1, 2], Some(10)).unwrap();
        g.merge(&Distribution::from_log2(&[4, 0, 0, 1, 0], Some(20)).unwrap())
            .unwrap();
        assert_eq!(
            g.histogram,
            HistogramData::Log2 {
                counts: vec![4, 1, 2, 1],
                sum_ns: Some(30),
                min_ns: None,
                max_ns: None,
            }
        );
        assert_eq!(g.count(), 8);

        // mixed: re-binned to log2
        let mut m = Distribution::from_log2(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3], None).unwrap();
        m.merge(&Distribution::from_buckets([(1500, 2)]).unwrap())
            .unwrap();
        assert_eq!(m.log2_counts()[10], 5);
        assert!(Distribution::from_log2(&[0; 65], None).is_err());
    }
}
