//! The guest's timerlat samples (`tests/guest/lib/scenario.sh`, section
//! `timerlat`): what the kernel's timerlat tracer wrote to its tracefs
//! instance over the measured phase, one line per sample, with the tracer's
//! settings and ring-buffer losses read back from tracefs:
//!
//! ```text
//! period_us 1000
//! cpus 0-1
//! overrun 0 0                      CPU, entries the ring buffer overwrote
//! s 0 17 irq 932                   sample: CPU, activation, context, ns
//! s 0 17 thread 11700
//! bad <the trace line>             a `timer_latency` line the guest could not split
//! ```
//!
//! The guest only splits the tracer's `timer_latency` lines into fields;
//! every figure is computed here, in HDR histograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::InputError;
use crate::hist::{new_hdr, Distribution, HistError};
use crate::model::{TimerlatBaseline, TimerlatCpu};

/// One timerlat sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerlatSample {
    pub cpu: u32,
    /// The tracer's activation id (per CPU): its irq and thread samples share it.
    pub activation: u64,
    pub thread: bool,
    pub ns: u64,
}

/// A parsed `timerlat` section: the baseline and the samples it came from.
#[derive(Debug, Clone)]
pub struct Timerlat {
    pub baseline: TimerlatBaseline,
    pub samples: Vec<TimerlatSample>,
}

fn err(line: usize, message: String) -> InputError {
    InputError::Guest {
        what: "timerlat",
        line,
        message,
    }
}

fn sample(rest: &str) -> Option<TimerlatSample> {
    let f: Vec<&str> = rest.split_whitespace().collect();
    let [cpu, act, ctx, ns] = f.as_slice() else {
        return None;
    };
    Some(TimerlatSample {
        cpu: cpu.parse().ok()?,
        activation: act.parse().ok()?,
        thread: match *ctx {
            "irq" => false,
            "thread" => true,
            _ => return None,
        },
        ns: ns.parse().ok()?,
    })
}

fn record(h: &mut hdrhistogram::Histogram<u64>, v: u64) -> Result<(), HistError> {
    h.record(v)
        .map_err(|e| HistError::Record(format!("value {v}: {e:?}")))
}

/// Parse the section of guest `guest` (`irqstorm0`, ...).
pub fn parse_timerlat(text: &str, guest: &str) -> Result<Timerlat, InputError> {
    let mut period_us = None;
    let mut cpus = None;
    let mut overrun = 0u64;
    let mut rejected = 0u64;
    let mut samples = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        let (key, rest) = l.split_once(' ').unwrap_or((l, ""));
        match key {
            "" => {}
            "period_us" => {
                period_us = Some(
                    rest.trim()
                        .parse::<u64>()
                        .map_err(|e| err(i + 1, format!("period_us {rest:?}: {e}")))?,
                )
            }
            "cpus" => cpus = Some(rest.trim().to_string()),
            "overrun" => {
                let n = rest
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| err(i + 1, format!("overrun {rest:?}: want `CPU COUNT`")))?;
                overrun += n;
            }
            "s" => match sample(rest) {
                Some(s) => samples.push(s),
                None => rejected += 1,
            },
            "bad" => rejected += 1,
            _ => return Err(err(i + 1, format!("unknown line {l:?}"))),
        }
    }
    let period_us = period_us.ok_or_else(|| err(0, "no `period_us` line".into()))?;
    let cpus = cpus.ok_or_else(|| err(0, "no `cpus` line".into()))?;
    // (cpu, activation) -> (irq, thread)
    let mut acts: BTreeMap<(u32, u64), (Option<u64>, Option<u64>)> = BTreeMap::new();
    samples.retain(|s| {
        let e = acts.entry((s.cpu, s.activation)).or_default();
        let slot = if s.thread { &mut e.1 } else { &mut e.0 };
        if slot.is_some() {
            rejected += 1; // the same sample twice: keep the first
            false
        } else {
            *slot = Some(s.ns);
            true
        }
    });
    let (mut irq, mut thread, mut i2t) = (new_hdr(), new_hdr(), new_hdr());
    let mut per_cpu: BTreeMap<u32, (hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>)> =
        BTreeMap::new();
    let mut unmatched = 0u64;
    for (&(cpu, _), &(a, b)) in &acts {
        let c = per_cpu.entry(cpu).or_insert_with(|| (new_hdr(), new_hdr()));
        if let Some(a) = a {
            record(&mut irq, a)?;
            record(&mut c.0, a)?;
        }
        if let Some(b) = b {
            record(&mut thread, b)?;
            record(&mut c.1, b)?;
        }
        match (a, b) {
            // Both count from the same expiry; the thread runs after the IRQ.
            (Some(a), Some(b)) if b >= a => record(&mut i2t, b - a)?,
            (Some(_), Some(_)) => rejected += 1,
            _ => unmatched += 1,
        }
    }
    let baseline = TimerlatBaseline {
        guest: guest.to_string(),
        period_us,
        cpus,
        irq: Distribution::from_hdr(&irq),
        thread: Distribution::from_hdr(&thread),
        irq_to_thread: Distribution::from_hdr(&i2t),
        per_cpu: per_cpu
            .into_iter()
            .map(|(cpu, (a, b))| TimerlatCpu {
                cpu,
                irq: Distribution::from_hdr(&a),
                thread: Distribution::from_hdr(&b),
            })
            .collect(),
        unmatched,
        overrun,
        unparsed: rejected,
    };
    Ok(Timerlat { baseline, samples })
}

/// Largest 1 us bucket of [`Timerlat::rtla_hist`]; longer samples go to `over:`.
pub const HIST_ENTRIES: u64 = 10_000;

impl Timerlat {
    /// The samples in the layout of `rtla timerlat hist` (1 us buckets,
    /// an `IRQ-NNN` and a `Thr-NNN` column per CPU, rows with a sample only,
    /// then `over:`, `count:`, `min:`, `avg:` and `max:`), so the file reads
    /// like the tool users know.
    pub fn rtla_hist(&self) -> String {
        let cpus: Vec<u32> = {
            let mut c: Vec<u32> = self.samples.iter().map(|s| s.cpu).collect();
            c.sort_unstable();
            c.dedup();
            c
        };
        // column k: cpu k/2, irq (even) or thread (odd)
        let col = |s: &TimerlatSample| {
            2 * cpus.binary_search(&s.cpu).unwrap_or_default() + usize::from(s.thread)
        };
        let ncol = 2 * cpus.len();
        let mut rows: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut over = vec![0u64; ncol];
        let mut count = vec![0u64; ncol];
        let mut sum = vec![0u128; ncol];
        let mut min = vec![u64::MAX; ncol];
        let mut max = vec![0u64; ncol];
        for s in &self.samples {
            let k = col(s);
            let us = s.ns / 1000;
            if us >= HIST_ENTRIES {
                over[k] += 1;
            } else {
                rows.entry(us).or_insert_with(|| vec![0; ncol])[k] += 1;
            }
            count[k] += 1;
            sum[k] += u128::from(s.ns);
            min[k] = min[k].min(s.ns);
            max[k] = max[k].max(s.ns);
        }
        let b = &self.baseline;
        let mut out = format!(
            "# timerlat histogram, guest {}, period {} us, CPUs `{}` (the layout of `rtla timerlat hist`)\n\
             # Time unit is microseconds (us): row N counts samples in [N, N+1) us; {} us and more are `over:`\n\
             # IRQ = timer expiry -> timerlat hard-IRQ handler; Thr = timer expiry -> timerlat/N thread (SCHED_FIFO:95)\n\
             # lost: {} ring-buffer overruns, {} rejected lines; {} activations with one sample only\n",
            b.guest, b.period_us, b.cpus, HIST_ENTRIES, b.overrun, b.unparsed, b.unmatched
        );
        out.push_str("Index");
        for c in &cpus {
            let _ = write!(out, "   IRQ-{c:03}   Thr-{c:03}");
        }
        out.push('\n');
        let line = |out: &mut String, label: &str, v: &[String]| {
            let _ = write!(out, "{label:<5}");
            for x in v {
                let _ = write!(out, " {x:>9}");
            }
            out.push('\n');
        };
        for (us, v) in &rows {
            line(
                &mut out,
                &us.to_string(),
                &v.iter().map(u64::to_string).collect::<Vec<_>>(),
            );
        }
        let us = |ns: u64| (ns / 1000).to_string();
        line(
            &mut out,
            "over:",
            &over.iter().map(u64::to_string).collect::<Vec<_>>(),
        );
        line(
            &mut out,
            "count:",
            &count.iter().map(u64::to_string).collect::<Vec<_>>(),
        );
        let per = |f: &dyn Fn(usize) -> String| (0..ncol).map(f).collect::<Vec<_>>();
        let empty = |k: usize| count[k] == 0;
        line(
            &mut out,
            "min:",
            &per(&|k| if empty(k) { "-".into() } else { us(min[k]) }),
        );
        line(
            &mut out,
            "avg:",
            &per(&|k| {
                if empty(k) {
                    "-".into()
                } else {
                    us((sum[k] / u128::from(count[k])) as u64)
                }
            }),
        );
        line(
            &mut out,
            "max:",
            &per(&|k| if empty(k) { "-".into() } else { us(max[k]) }),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTION: &str = "\
period_us 1000
cpus 0-1
overrun 0 0
overrun 1 3
s 0 1 irq 932
s 0 1 thread 11700
s 1 1 irq 2833
s 1 1 thread 9820
s 0 2 irq 769
s 0 2 thread 3070
s 1 2 irq 12000500
s 1 2 thread 12004500
s 0 3 irq 800
bad <...>-867 [000] .... 54.029339: #4 context thread something 11700 ns
s 0 4 irq x
";

    #[test]
    fn samples_pair_by_cpu_and_activation_and_lost_ones_are_counted() {
        let t = parse_timerlat(SECTION, "irqstorm0").unwrap();
        let b = &t.baseline;
        assert_eq!((b.period_us, b.cpus.as_str()), (1000, "0-1"));
        assert_eq!(b.irq.count(), 5);
        assert_eq!(b.thread.count(), 4);
        assert_eq!(b.irq_to_thread.count(), 4);
        // activation 3 of CPU 0 has no thread sample (the tracer stopped)
        assert_eq!(b.unmatched, 1);
        assert_eq!(b.overrun, 3);
        // the `bad` line and the non-numeric sample
        assert_eq!(b.unparsed, 2);
        assert_eq!(b.lost(), 5);
        // thread - irq: 10768, 6987, 2301, 4000 ns (HDR: 3 significant digits)
        let s = &b.irq_to_thread.summary;
        assert!((2_298..=2_302).contains(&s.min_ns), "{}", s.min_ns);
        assert!(
            (10_768..=10_779).contains(&s.max_ns),
            "within 0.1 %: {}",
            s.max_ns
        );
        assert!((12_000_500..=12_012_500).contains(&b.irq.summary.max_ns));
        assert_eq!(b.per_cpu.len(), 2);
        assert_eq!(b.per_cpu[1].irq.count(), 2);
        assert_eq!(b.per_cpu[0].thread.count(), 2);
    }

    #[test]
    fn a_thread_before_its_irq_and_a_sample_twice_are_rejected() {
        let t = parse_timerlat(
            "period_us 500\ncpus \ns 0 1 irq 5000\ns 0 1 thread 4000\ns 0 2 irq 1\ns 0 2 irq 2\ns 0 2 thread 9\n",
            "irqstorm1",
        )
        .unwrap();
        let b = &t.baseline;
        assert_eq!(b.cpus, "");
        assert_eq!(b.unparsed, 2);
        assert_eq!(b.irq_to_thread.count(), 1);
        assert_eq!(b.irq_to_thread.summary.max_ns, 8);
    }

    #[test]
    fn a_section_without_the_settings_or_with_an_unknown_line_is_an_error() {
        let e = parse_timerlat("cpus 0\ns 0 1 irq 5\n", "g")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `period_us` line"), "{e}");
        let e = parse_timerlat("period_us 1000\ncpus 0\nwhat 1\n", "g")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3: unknown line"), "{e}");
        let e = parse_timerlat("period_us 1000\ncpus 0\noverrun 0\n", "g")
            .unwrap_err()
            .to_string();
        assert!(e.contains("want `CPU COUNT`"), "{e}");
    }

    #[test]
    fn the_histogram_has_the_rtla_layout_with_one_us_rows_and_the_overflow() {
        let t = parse_timerlat(SECTION, "irqstorm0").unwrap();
        let h = t.rtla_hist();
        let lines: Vec<&str> = h.lines().filter(|l| !l.starts_with('#')).collect();
        let cols = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            cols(lines[0]),
            ["Index", "IRQ-000", "Thr-000", "IRQ-001", "Thr-001"]
        );
        // 0 us: CPU 0's irq samples 932, 769 and 800 ns
        assert_eq!(cols(lines[1]), ["0", "3", "0", "0", "0"]);
        let row = |k: &str| cols(lines.iter().find(|l| l.starts_with(k)).unwrap());
        assert_eq!(row("11 "), ["11", "0", "1", "0", "0"]);
        // 12000.5 us and 12004.5 us are past the last bucket
        assert_eq!(row("over:"), ["over:", "0", "0", "1", "1"]);
        assert_eq!(row("count:"), ["count:", "3", "2", "2", "2"]);
        assert_eq!(row("min:"), ["min:", "0", "3", "2", "9"]);
        assert_eq!(row("max:"), ["max:", "0", "11", "12000", "12004"]);
        assert!(
            h.contains("lost: 3 ring-buffer overruns, 2 rejected lines"),
            "{h}"
        );
    }
}
