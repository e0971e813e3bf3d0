//! The rtla-style console table (`table.txt`): one row per mechanism, the
//! baselines, the one-way block, per-device rows and the check results.

use std::fmt::Write as _;

use super::{conditions, count_outcomes, effective_checks, fmt_ns, us};
use crate::hist::{LatencySummary, Resolution};
use crate::model::{summary, MechanismResult, Outcome, RunResult};

fn cell_us(s: Option<&LatencySummary>, f: impl Fn(&LatencySummary) -> u64) -> String {
    s.map_or_else(|| "-".to_string(), |s| us(f(s)))
}

fn cell_ratio(r: Option<f64>) -> String {
    // Two decimals below 0.1x, where one would print 0.0x.
    r.map_or_else(
        || "-".to_string(),
        |r| {
            if r < 0.095 {
                format!("{r:.2}x")
            } else {
                format!("{r:.1}x")
            }
        },
    )
}

/// A table with grouped column headers, right-aligned except column 0.
pub(super) struct Table {
    groups: Vec<(String, usize)>,
    headers: Vec<String>,
    pub(super) rows: Vec<Vec<String>>,
}

impl Table {
    fn render(&self) -> String {
        let n = self.headers.len();
        let mut w: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        // widen groups so their titles fit
        let mut col = 0;
        for (title, span) in &self.groups {
            let inner: usize = w[col..col + span].iter().sum::<usize>() + 2 * (span - 1);
            let need = title.chars().count();
            if need > inner {
                w[col + span - 1] += need - inner;
            }
            col += span;
        }
        let mut out = String::new();
        // group line
        let mut col = 0;
        let mut line = String::new();
        for (gi, (title, span)) in self.groups.iter().enumerate() {
            let width: usize = w[col..col + span].iter().sum::<usize>() + 2 * (span - 1);
            if gi > 0 {
                line.push_str(" | ");
            }
            let pad = width - title.chars().count();
            let left = if gi == 0 { 0 } else { pad / 2 };
            let _ = write!(
                line,
                "{}{}{}",
                " ".repeat(left),
                title,
                " ".repeat(pad - left)
            );
            col += span;
        }
        out.push_str(line.trim_end());
        out.push('\n');
        let fmt_row = |cells: &[String]| -> String {
            let mut line = String::new();
            let mut col = 0;
            for (gi, (_, span)) in self.groups.iter().enumerate() {
                if gi > 0 {
                    line.push_str(" | ");
                }
                for k in 0..*span {
                    let i = col + k;
                    let c = cells.get(i).map(String::as_str).unwrap_or("");
                    if k > 0 {
                        line.push_str("  ");
                    }
                    if i == 0 {
                        let _ = write!(line, "{c:<width$}", width = w[i]);
                    } else {
                        let _ = write!(line, "{c:>width$}", width = w[i]);
                    }
                }
                col += span;
            }
            line.trim_end().to_string()
        };
        out.push_str(&fmt_row(&self.headers));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&fmt_row(r));
            out.push('\n');
        }
        out
    }
}

pub(super) fn main_table(rows: &[MechanismResult], label_device: bool) -> Table {
    let first = if label_device {
        "mechanism@device"
    } else {
        "mechanism"
    };
    // The timerlat column only where timerlat ran (scenario `[timerlat]`).
    let tlat = rows
        .iter()
        .any(|r| r.ratios.hardirq_to_bh_p99_vs_timerlat.is_some());
    let groups = vec![
        ("".to_string(), 3),
        ("raise->ack (us)".to_string(), 4),
        ("hardirq->bh (us)".to_string(), 3),
        ("bh run (us)".to_string(), 2),
        ("p99 ratio".to_string(), 2 + usize::from(tlat)),
    ];
    let mut headers: Vec<String> = [
        first,
        "events",
        "coalesced",
        "p50",
        "p99",
        "p99.9",
        "max",
        "p50",
        "p99",
        "max",
        "p50",
        "max",
        "ref",
        "evfd",
    ]
    .map(String::from)
    .to_vec();
    if tlat {
        headers.insert(headers.len() - 1, "tlat".into());
    }
    let rows = rows
        .iter()
        .map(|r| {
            let ra = summary(&r.raise_to_ack);
            let hb = summary(&r.hardirq_to_bh);
            let br = summary(&r.bh_run);
            let name = match (&r.device, label_device) {
                (Some(d), true) => format!("{}@{d}", r.mechanism),
                _ => r.mechanism.clone(),
            };
            let mut row = vec![
                name,
                r.host.raised.to_string(),
                r.host.coalesced.to_string(),
                cell_us(ra, |s| s.p50_ns),
                cell_us(ra, |s| s.p99_ns),
                cell_us(ra, |s| s.p999_ns),
                cell_us(ra, |s| s.max_ns),
                cell_us(hb, |s| s.p50_ns),
                cell_us(hb, |s| s.p99_ns),
                cell_us(hb, |s| s.max_ns),
                cell_us(br, |s| s.p50_ns),
                cell_us(br, |s| s.max_ns),
                cell_ratio(r.ratios.hardirq_to_bh_p99_vs_ref_hrtimer),
                cell_ratio(r.ratios.raise_to_ack_p99_vs_host_eventfd),
            ];
            if tlat {
                row.insert(
                    row.len() - 1,
                    cell_ratio(r.ratios.hardirq_to_bh_p99_vs_timerlat),
                );
            }
            row
        })
        .collect();
    Table {
        groups,
        headers,
        rows,
    }
}

pub(super) fn guest_is_log2(rows: &[MechanismResult]) -> bool {
    rows.iter().any(|r| {
        [&r.hardirq_to_bh, &r.bh_run]
            .into_iter()
            .flatten()
            .any(|d| d.summary.resolution == Resolution::Log2UpperEdge)
    })
}

/// The rtla-style side-by-side table, one row per mechanism, plus the
/// baselines, the one-way estimates, per-device rows and check results.
pub fn table(result: &RunResult) -> String {
    let m = &result.meta;
    let warmup = if m.warmup_ns == 0 {
        "no warm-up".to_string()
    } else {
        format!("warm-up {}", fmt_ns(m.warmup_ns as f64))
    };
    let variant = if m.kernel_variant.is_empty() {
        String::new()
    } else {
        format!(" | kernel {}", m.kernel_variant)
    };
    let mut out = format!(
        "irqstorm: scenario {} | accel {}{variant} | {} device(s) | measured {} ({warmup})\n",
        m.scenario,
        m.accelerator,
        m.devices.len(),
        fmt_ns(m.duration_ns as f64),
    );
    if let Some(c) = &result.run_conditions {
        out.push_str(&conditions::conditions_line(c));
    }
    if let Some(i) = &result.interference {
        out.push_str(&conditions::interference_lines(i));
    }
    out.push('\n');
    out.push_str(&main_table(&result.mechanisms, false).render());
    if guest_is_log2(&result.mechanisms) {
        out.push_str("(guest hardirq->bh and bh run figures are log2 bucket upper edges: true value < shown)\n");
    }
    out.push_str(
        "ratios: ref = hardirq->bh p99 / guest hrtimer reference p99 (same mechanism); \
         evfd = raise->ack p99 / host eventfd round-trip p99\n",
    );
    if !result.baselines.timerlat.is_empty() {
        out.push_str(
            "        tlat = hardirq->bh p99 / timerlat irq->thread p99 (the kernel's timerlat tracer, same guest and phase)\n",
        );
    }
    if let Some(t) = block_table(
        "timer baselines in the guest, same measured phase (us)",
        &TIMER_BASELINE_HEADERS,
        timer_baseline_rows(result),
    ) {
        out.push('\n');
        out.push_str(&t.render());
        out.push_str(&timer_baseline_note(result));
    }
    if let Some(e) = &result.baselines.host_eventfd {
        let (o, r) = (&e.one_way.summary, &e.round_trip.summary);
        let _ = writeln!(
            out,
            "host eventfd ping-pong ({} round trips): one-way p50 {} p99 {} max {}; round trip p50 {} p99 {} max {}",
            e.round_trips,
            fmt_ns(o.p50_ns as f64),
            fmt_ns(o.p99_ns as f64),
            fmt_ns(o.max_ns as f64),
            fmt_ns(r.p50_ns as f64),
            fmt_ns(r.p99_ns as f64),
            fmt_ns(r.max_ns as f64)
        );
    }
    for n in &result.meta.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for o in &result.clock_offsets {
        let e = &o.estimate;
        let _ =
            writeln!(
            out,
            "clock offset {}: host - guest = {} ns +/- {} ns (min delay {} ns, {} of {} pings{})",
            o.device,
            e.host_minus_guest_ns,
            e.error_bound_ns,
            e.delay_ns,
            e.used,
            e.samples,
            e.drift_ppm.map(|d| format!(", drift {d:.1} ppm")).unwrap_or_default()
        );
    }
    if let Some(t) = one_way_table(result) {
        out.push('\n');
        out.push_str(&t.render());
    }
    if let Some(t) = first_bh_table(&result.mechanisms) {
        out.push('\n');
        out.push_str(&t.render());
        out.push_str(
            "per interrupt = hard IRQ -> bh start of the first record of each bottom-half run \
             (ACK_F_FIRST, device spec 6.4); per record = every record (includes the earlier \
             records' work); past budget = records the IRQ thread drained past the hard IRQ's budget\n",
        );
    }
    for r in result.mechanisms.iter().filter(|r| r.cancelled > 0) {
        let _ = writeln!(
            out,
            "cancelled: {} of {} {} records returned without their bottom half (the driver's \
             cancel; acked, not in the figures)",
            r.cancelled, r.host.acked, r.mechanism
        );
    }
    if let Some(t) = lateness_table(&result.mechanisms) {
        out.push('\n');
        out.push_str(&t.render());
        out.push_str(
            "lateness = bh start of a run's first record - when its timer/work/sleep was armed - \
             the delay asked for (device spec 6.4); early = runs that began before it\n",
        );
    }
    if let Some(t) = cpu_table(&result.mechanisms) {
        out.push('\n');
        out.push_str(&t.render());
    }
    if !result.per_device.is_empty() {
        out.push_str("\nper device:\n");
        out.push_str(&main_table(&result.per_device, true).render());
    }
    if let Some(ramp) = &result.ramp {
        let t = Table {
            groups: vec![("".into(), 1), ("rate ramp".into(), 5)],
            headers: [
                "rate_hz",
                "raised",
                "coalesced %",
                "loss %",
                "raise->ack p99 (us)",
                "step",
            ]
            .map(String::from)
            .to_vec(),
            rows: ramp
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    vec![
                        s.rate_hz.to_string(),
                        s.host.raised.to_string(),
                        format!("{:.2}", s.coalesced_ratio() * 100.0),
                        format!("{:.2}", s.loss_ratio() * 100.0),
                        s.raise_to_ack_p99_ns.map_or("-".into(), us),
                        (i + 1).to_string(),
                    ]
                })
                .collect(),
        };
        out.push('\n');
        out.push_str(&t.render());
        let _ = writeln!(
            out,
            "ramp stopped: {}; sustained rate: {}",
            if ramp.stop_reason.is_empty() {
                "-"
            } else {
                &ramp.stop_reason
            },
            ramp.sustained_rate_hz
                .map_or("-".into(), |r| format!("{r} events/s"))
        );
    }
    let checks = effective_checks(result);
    let (p, f, s) = count_outcomes(&checks);
    let _ = writeln!(
        out,
        "\nchecks: {p} passed, {f} failed, {s} skipped{}",
        conditions::not_judged_note(&checks)
    );
    for c in checks.iter().filter(|c| c.outcome == Outcome::Fail) {
        let _ = writeln!(out, "FAIL {}", c.message);
    }
    out
}

/// Rows of the one-way block: merged rows, then per-device rows of a
/// multi-device run (each converted with its own device's offset).
pub(super) fn one_way_rows(result: &RunResult) -> Vec<Vec<String>> {
    let per_device = result.per_device.iter().map(|r| (r, true));
    result
        .mechanisms
        .iter()
        .map(|r| (r, false))
        .chain(per_device)
        .filter_map(|(r, dev)| {
            let o = r.raise_to_hardirq.as_ref()?;
            let s = &o.distribution.summary;
            let name = match (&r.device, dev) {
                (Some(d), true) => format!("{}@{d}", r.mechanism),
                _ => r.mechanism.clone(),
            };
            Some(vec![
                name,
                o.method.clone(),
                o.distribution.count().to_string(),
                us(s.p50_ns),
                us(s.p99_ns),
                us(s.max_ns),
                us(o.error_bound_ns),
                (o.below_base + o.after_irq_start + o.past_budget + o.uncalibrated + o.unchecked)
                    .to_string(),
                o.negative_samples.to_string(),
            ])
        })
        .collect()
}

pub(super) const ONE_WAY_HEADERS: [&str; 9] = [
    "mechanism",
    "method",
    "count",
    "p50",
    "p99",
    "max",
    "+/- bound",
    "excluded",
    "negative",
];

/// Lateness rows: mechanism, requested delay, runs, p50, p99, max, early.
pub(super) fn lateness_rows(rows: &[MechanismResult]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for r in rows {
        for l in &r.lateness {
            let s = l.distribution.as_ref().map(|d| &d.summary);
            out.push(vec![
                r.mechanism.clone(),
                if l.requested_us == u32::MAX {
                    "others".into()
                } else {
                    us(u64::from(l.requested_us) * 1000)
                },
                l.distribution.as_ref().map_or(0, |d| d.count()).to_string(),
                s.map_or("-".into(), |s| us(s.p50_ns)),
                s.map_or("-".into(), |s| us(s.p99_ns)),
                s.map_or("-".into(), |s| us(s.max_ns)),
                l.early.to_string(),
            ]);
        }
    }
    out
}

pub(super) const LATENESS_HEADERS: [&str; 7] = [
    "mechanism",
    "requested",
    "runs",
    "p50",
    "p99",
    "max",
    "early",
];

/// `cpu:records` pairs, e.g. `0:812 1:4`.
fn by_cpu(v: &[(u16, u64)]) -> String {
    v.iter()
        .map(|(c, n)| format!("{c}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU placement: per mechanism, records by hard-IRQ CPU and bottom-half
/// CPU, and the share whose bottom half began on another CPU.
pub(super) fn cpu_rows(rows: &[MechanismResult]) -> Vec<Vec<String>> {
    rows.iter()
        .filter_map(|r| {
            let c = r.cpus.as_ref()?;
            Some(vec![
                r.mechanism.clone(),
                by_cpu(&c.hard),
                by_cpu(&c.bh),
                format!("{:.1}%", 100.0 * c.cross_cpu_share()),
            ])
        })
        .collect()
}

pub(super) const CPU_HEADERS: [&str; 4] = [
    "mechanism",
    "hard IRQ cpu:records",
    "bh cpu:records",
    "bh on another cpu",
];

/// Per-interrupt vs per-record hard IRQ -> bh start, for rows whose acks
/// carried `ACK_F_FIRST` or `ACK_F_PAST_BUDGET`.
fn first_bh_table(rows: &[MechanismResult]) -> Option<Table> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| r.irq_to_first_bh.is_some() || r.past_budget > 0)
        .map(|r| {
            let first = r.irq_to_first_bh.as_ref();
            let f = first.map(|d| &d.summary);
            let hb = summary(&r.hardirq_to_bh);
            vec![
                r.mechanism.clone(),
                first.map_or("0".into(), |d| d.count().to_string()),
                cell_us(f, |s| s.p50_ns),
                cell_us(f, |s| s.p99_ns),
                cell_us(f, |s| s.max_ns),
                cell_us(hb, |s| s.p50_ns),
                cell_us(hb, |s| s.p99_ns),
                r.past_budget.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    Some(Table {
        groups: vec![
            ("".into(), 1),
            ("hardirq->bh per interrupt (us)".into(), 4),
            ("per record (us)".into(), 2),
            ("".into(), 1),
        ],
        headers: [
            "mechanism",
            "runs",
            "irq->1st bh p50",
            "p99",
            "max",
            "p50",
            "p99",
            "past budget",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    })
}

/// Columns of the timer-baselines block (table and summary.md).
pub(super) const TIMER_BASELINE_HEADERS: [&str; 7] = [
    "baseline",
    "samples",
    "p50",
    "p99",
    "p99.9",
    "max",
    "p99 / tlat",
];

/// The timerlat tracer's figures and, beside them, the driver's hrtimer
/// reference per mechanism, each with its p99 over timerlat's irq->thread
/// p99 (all guests); no rows when timerlat did not run.
pub(super) fn timer_baseline_rows(result: &RunResult) -> Vec<Vec<String>> {
    let tl = &result.baselines.timerlat;
    if tl.is_empty() {
        return Vec::new();
    }
    let base = result.baselines.timerlat_irq_to_thread_p99().ok().flatten();
    let ratio = |s: Option<&LatencySummary>| {
        cell_ratio(match (s, base) {
            (Some(s), Some(b)) if b > 0 => Some(s.p99_ns as f64 / b as f64),
            _ => None,
        })
    };
    let row = |name: String, d: Option<&LatencySummary>, r: String| {
        vec![
            name,
            d.map_or(0, |s| s.count).to_string(),
            cell_us(d, |s| s.p50_ns),
            cell_us(d, |s| s.p99_ns),
            cell_us(d, |s| s.p999_ns),
            cell_us(d, |s| s.max_ns),
            r,
        ]
    };
    let mut rows = Vec::new();
    for t in tl {
        let who = if tl.len() > 1 {
            format!("{} ", t.guest)
        } else {
            String::new()
        };
        rows.push(row(
            format!("{who}timerlat irq"),
            nonempty(&t.irq),
            "-".into(),
        ));
        rows.push(row(
            format!("{who}timerlat thread"),
            nonempty(&t.thread),
            "-".into(),
        ));
        rows.push(row(
            format!("{who}timerlat irq->thread"),
            nonempty(&t.irq_to_thread),
            ratio(nonempty(&t.irq_to_thread)),
        ));
    }
    for m in &result.mechanisms {
        if let Some(r) = m.reference.as_ref().and_then(|r| summary(&r.hardirq_to_bh)) {
            rows.push(row(
                format!("ref hrtimer -> {}", m.mechanism),
                Some(r),
                ratio(Some(r)),
            ));
        }
    }
    rows
}

fn nonempty(d: &crate::hist::Distribution) -> Option<&LatencySummary> {
    Some(&d.summary).filter(|s| s.count > 0)
}

/// What the timer-baseline rows mean, and what timerlat lost.
pub(super) fn timer_baseline_note(result: &RunResult) -> String {
    let mut out = String::from(
        "timerlat irq = timer expiry -> timerlat's hard-IRQ handler; thread = expiry -> its \
         timerlat/N thread (SCHED_FIFO:95) running; irq->thread = thread - irq per activation: \
         the kernel's own hard IRQ -> woken-thread latency; ref hrtimer -> M = the driver's \
         reference hrtimer callback -> M's bh start (guest log2 buckets: upper edges)\n",
    );
    for t in &result.baselines.timerlat {
        let _ =
            writeln!(
            out,
            "timerlat {}: period {} us, CPUs {}, {} ring-buffer overruns, {} rejected lines, {} \
             activations with one sample (the tracer stopped between them); histogram: {}",
            t.guest,
            t.period_us,
            if t.cpus.is_empty() { "all" } else { &t.cpus },
            t.overrun,
            t.unparsed,
            t.unmatched,
            if result.baselines.timerlat.len() > 1 {
                format!("timerlat-hist-{}.txt", t.guest.trim_start_matches("irqstorm"))
            } else {
                "timerlat-hist.txt".into()
            }
        );
    }
    out
}

/// A block under the main table: the mechanism column, then `headers[1..]`
/// grouped under `title`; `None` without rows.
fn block_table(title: &str, headers: &[&str], rows: Vec<Vec<String>>) -> Option<Table> {
    (!rows.is_empty()).then(|| Table {
        groups: vec![("".into(), 1), (title.into(), headers.len() - 1)],
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows,
    })
}

/// The "one-way raise->hardirq (us, +/- bound)" block; `None` when no row has the estimate.
fn one_way_table(result: &RunResult) -> Option<Table> {
    block_table(
        "one-way raise->hardirq (us, +/- bound)",
        &ONE_WAY_HEADERS,
        one_way_rows(result),
    )
}

fn lateness_table(rows: &[MechanismResult]) -> Option<Table> {
    block_table(
        "timer lateness: actual - requested (us)",
        &LATENESS_HEADERS,
        lateness_rows(rows),
    )
}

fn cpu_table(rows: &[MechanismResult]) -> Option<Table> {
    block_table("CPU placement", &CPU_HEADERS, cpu_rows(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::Distribution;
    use crate::render::tests::sample_result;

    #[test]
    fn per_interrupt_block_only_with_first_acks() {
        let mut r = sample_result();
        assert!(!table(&r).contains("irq->1st bh p50"));
        let k = &mut r.mechanisms[3];
        k.irq_to_first_bh = Some(Distribution::from_buckets([(7_000, 90), (9_000, 10)]).unwrap());
        k.past_budget = 12;
        let t = table(&r);
        let line = t
            .lines()
            .find(|l| l.starts_with("kthread ") && l.ends_with(" 12"))
            .unwrap_or_else(|| panic!("{t}"));
        let cells: Vec<&str> = line.split(['|', ' ']).filter(|c| !c.is_empty()).collect();
        assert_eq!(&cells[..3], &["kthread", "100", "7.0"], "{line}");
        assert!(t.contains("hardirq->bh per interrupt (us)"));
    }

    #[test]
    fn timerlat_adds_its_ratio_column_and_the_timer_baselines_beside_the_reference() {
        let mut r = sample_result();
        let t = table(&r);
        assert!(!t.contains("tlat") && !t.contains("timer baselines"), "{t}");
        // irq->thread per activation: 3000 and 5000 ns
        let tl = crate::input::parse_timerlat(
            "period_us 1000\ncpus 0-1\ns 0 1 irq 2000\ns 0 1 thread 5000\ns 1 1 irq 1000\ns 1 1 thread 6000\n",
            "irqstorm0",
        )
        .unwrap();
        r.baselines.timerlat.push(tl.baseline);
        r.mechanisms[0].reference = Some(crate::model::ReferenceResult {
            timer_to_hardirq: None,
            hardirq_to_bh: Some(Distribution::from_buckets([(10_000, 1)]).unwrap()),
            bh_run: None,
        });
        r.finalize().unwrap();
        let t = table(&r);
        let head = t.lines().find(|l| l.starts_with("mechanism ")).unwrap();
        let words: Vec<&str> = head.split_whitespace().collect();
        assert_eq!(words[words.len() - 3..], ["ref", "tlat", "evfd"], "{head}");
        let row = t
            .lines()
            .find(|l| l.starts_with("timerlat irq->thread "))
            .unwrap_or_else(|| panic!("{t}"));
        let cells: Vec<&str> = row.split(['|', ' ']).filter(|c| !c.is_empty()).collect();
        assert_eq!(cells[2..4], ["2", "3.0"], "{row}");
        assert_eq!(cells.last(), Some(&"1.0x"), "{row}");
        // the mechanisms' reference rows sit beside it, with their ratio
        let refs: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with("ref hrtimer -> "))
            .collect();
        assert_eq!(refs.len(), 1, "{t}");
        // 10 us over a p99 of 5 us
        assert!(refs[0].ends_with(" 2.0x"), "{}", refs[0]);
        assert!(
            t.contains("timerlat irqstorm0: period 1000 us, CPUs 0-1, 0 ring-buffer overruns"),
            "{t}"
        );
        let md = crate::render::markdown(&r, &[]);
        assert!(md.contains("| ×ref | ×tlat | ×evfd |"), "{md}");
        assert!(md.contains("| timerlat irq->thread | 2 |"), "{md}");
    }

    #[test]
    fn the_header_names_the_kernel_variant_when_the_report_has_one() {
        let mut r = sample_result();
        assert!(!table(&r).lines().next().unwrap().contains("kernel"));
        r.meta.kernel_variant = "rt".into();
        let head = table(&r).lines().next().unwrap().to_string();
        assert!(
            head.contains("| accel tcg | kernel rt | 1 device(s)"),
            "{head}"
        );
    }

    #[test]
    fn table_columns_align() {
        let r = sample_result();
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        let hdr = lines
            .iter()
            .position(|l| l.starts_with("mechanism "))
            .unwrap();
        assert!(
            lines[hdr - 1].contains("raise->ack (us)")
                && lines[hdr - 1].contains("hardirq->bh (us)")
        );
        // every row has its separators at the header's positions
        let seps: Vec<usize> = lines[hdr].match_indices('|').map(|(i, _)| i).collect();
        assert_eq!(seps.len(), 4);
        for l in &lines[hdr + 1..hdr + 5] {
            let s: Vec<usize> = l.match_indices('|').map(|(i, _)| i).collect();
            assert_eq!(s, seps, "{l}");
        }
        assert!(lines[hdr + 1].starts_with("hardirq "));
        assert!(lines[hdr + 2].contains(" 1000 ") && lines[hdr + 2].contains(" 90 "));
        assert!(t.contains("host eventfd ping-pong (1000 round trips)"));
        assert!(t.contains("clock offset dev0: host - guest = -1234 ns +/- 3000 ns"));
        assert!(t.contains("one-way raise->hardirq (us, +/- bound)"));
        assert!(t.contains("ramp stopped: coalesced/raised"));
        // 4 conservation, 1 one-way consistency (tasklet), 3 skipped (not measured)
        assert!(t.contains("checks: 5 passed, 0 failed, 3 skipped"), "{t}");
    }
}
