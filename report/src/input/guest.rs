//! The guest driver's debugfs tables (`guest-driver/stats.rs`): the summary
//! table (`mechanism events raises ...`) gives the guest counters; the
//! rtla-style log2 histogram tables (`Index(ns)` rows, one column per
//! mechanism, `count:`/`min:`/`avg:`/`max:` footers) give guest-side
//! distributions, and those of the local reference source give the
//! `ref_hrtimer` baseline.

use std::collections::BTreeMap;

use super::InputError;
use crate::hist::{log2_index, Distribution, HistError, Log2Exact};
use crate::model::{mechanism_id, GuestCounters, MechanismResult, ReferenceResult};

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
    use crate::input::backend::tests::{SCENARIO, STATS};
    use crate::input::parse_backend_stats;
    use crate::model::conservation;
    use crate::scenario::parse;

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
}
