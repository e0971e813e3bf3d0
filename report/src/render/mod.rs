//! Rendering a [`RunResult`]: the rtla-style console table, JUnit XML, SVG
//! plots, the Markdown summary, and the report directory.

pub mod svg;

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::gate::conservation_checks;
use crate::hist::{LatencySummary, Resolution};
use crate::model::{summary, Check, CheckKind, MechanismResult, Outcome, RunResult};

/// Format nanoseconds with a unit and 3 significant digits
/// (`812 ns`, `4.10 us`, `65.5 us`, `1.00 ms`, `2.50 s`).
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        return "inf".into();
    }
    let (v, u) = if ns.abs() < 1e3 {
        return format!("{ns:.0} ns");
    } else if ns.abs() < 1e6 {
        (ns / 1e3, "us")
    } else if ns.abs() < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let a = v.abs();
    if a < 9.995 {
        format!("{v:.2} {u}")
    } else if a < 99.95 {
        format!("{v:.1} {u}")
    } else {
        format!("{v:.0} {u}")
    }
}

/// Nanoseconds as microseconds for table cells (1 decimal).
pub fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

fn cell_us(s: Option<&LatencySummary>, f: impl Fn(&LatencySummary) -> u64) -> String {
    s.map_or_else(|| "-".to_string(), |s| us(f(s)))
}

fn cell_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.1}x"))
}

/// A table with grouped column headers, right-aligned except column 0.
struct Table {
    groups: Vec<(String, usize)>,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
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

fn main_table(rows: &[MechanismResult], label_device: bool) -> Table {
    let first = if label_device {
        "mechanism@device"
    } else {
        "mechanism"
    };
    let groups = vec![
        ("".to_string(), 3),
        ("raise->ack (us)".to_string(), 4),
        ("hardirq->bh (us)".to_string(), 3),
        ("bh run (us)".to_string(), 2),
        ("p99 ratio".to_string(), 2),
    ];
    let headers = [
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
            vec![
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
            ]
        })
        .collect();
    Table {
        groups,
        headers,
        rows,
    }
}

fn guest_is_log2(rows: &[MechanismResult]) -> bool {
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
    let mut out = format!(
        "irqstorm: scenario {} | accel {} | {} device(s) | measured {} ({warmup})\n\n",
        m.scenario,
        m.accelerator,
        m.devices.len(),
        fmt_ns(m.duration_ns as f64),
    );
    out.push_str(&main_table(&result.mechanisms, false).render());
    if guest_is_log2(&result.mechanisms) {
        out.push_str("(guest hardirq->bh and bh run figures are log2 bucket upper edges: true value < shown)\n");
    }
    out.push_str(
        "ratios: ref = hardirq->bh p99 / guest hrtimer reference p99 (same mechanism); \
         evfd = raise->ack p99 / host eventfd round-trip p99\n",
    );
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
    let _ = writeln!(out, "\nchecks: {p} passed, {f} failed, {s} skipped");
    for c in checks.iter().filter(|c| c.outcome == Outcome::Fail) {
        let _ = writeln!(out, "FAIL {}", c.message);
    }
    out
}

fn count_outcomes(checks: &[Check]) -> (usize, usize, usize) {
    let n = |o| checks.iter().filter(|c| c.outcome == o).count();
    (n(Outcome::Pass), n(Outcome::Fail), n(Outcome::Skip))
}

/// The checks to report: `result.checks`, or the conservation checks when
/// the gate was not run.
pub fn effective_checks(result: &RunResult) -> Vec<Check> {
    if result.checks.is_empty() {
        let mut c = conservation_checks(result);
        c.extend(crate::gate::one_way_consistency_checks(result));
        c
    } else {
        result.checks.clone()
    }
}

/// One progress line for the console while a run goes on, e.g.
/// `[  5.2 s / 17.0 s] measure   raised 12345  coalesced 12  acked 12300`.
pub fn progress_line(
    phase: &str,
    elapsed_ms: u64,
    total_ms: u64,
    raised: u64,
    coalesced: u64,
    acked: u64,
) -> String {
    format!(
        "[{:>6.1} s / {:.1} s] {phase:<9} raised {raised}  coalesced {coalesced}  acked {acked}",
        elapsed_ms as f64 / 1e3,
        total_ms as f64 / 1e3
    )
}

/// Escape text for XML content and attribute values; characters XML 1.0
/// cannot carry (most C0 controls) become `\u{..}` text.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// Rows of the one-way block: merged rows, then per-device rows of a
/// multi-device run (each converted with its own device's offset).
fn one_way_rows(result: &RunResult) -> Vec<Vec<String>> {
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
                o.distribution.count().to_string(),
                us(s.p50_ns),
                us(s.p99_ns),
                us(s.max_ns),
                us(o.error_bound_ns),
                o.below_base.to_string(),
                o.negative_samples.to_string(),
            ])
        })
        .collect()
}

const ONE_WAY_HEADERS: [&str; 8] = [
    "mechanism",
    "count",
    "p50",
    "p99",
    "max",
    "+/- bound",
    "below base",
    "negative",
];

/// The "one-way raise->hardirq (us, +/- bound)" block under the main
/// table; `None` when no row has the estimate.
fn one_way_table(result: &RunResult) -> Option<Table> {
    let rows = one_way_rows(result);
    if rows.is_empty() {
        return None;
    }
    Some(Table {
        groups: vec![
            ("".into(), 1),
            ("one-way raise->hardirq (us, +/- bound)".into(), 7),
        ],
        headers: ONE_WAY_HEADERS.map(String::from).to_vec(),
        rows,
    })
}

/// JUnit XML: one testsuite per run, one testcase per mechanism x check
/// (conservation, each threshold); failures carry the gate's message.
pub fn junit(result: &RunResult) -> String {
    let checks = effective_checks(result);
    let (_, failures, skipped) = count_outcomes(&checks);
    let m = &result.meta;
    let secs = m.duration_ns as f64 / 1e9;
    let suite = format!("irqstorm.{}", m.scenario);
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<testsuites name=\"irqstorm\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{secs:.3}\">",
        checks.len()
    );
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{secs:.3}\" timestamp=\"{}\">",
        xml_escape(&suite),
        checks.len(),
        xml_escape(&m.start_time)
    );
    o.push_str("    <properties>\n");
    for (k, v) in [
        ("scenario", m.scenario.as_str()),
        ("scenario_file", &m.scenario_file),
        ("accelerator", &m.accelerator),
        ("qemu_version", &m.qemu_version),
        ("kernel_version", &m.kernel_version),
        ("devices", &m.devices.join(",")),
    ] {
        let _ = writeln!(
            o,
            "      <property name=\"{k}\" value=\"{}\"/>",
            xml_escape(v)
        );
    }
    o.push_str("    </properties>\n");
    for c in &checks {
        let class = match &c.device {
            Some(d) => format!("{suite}.{}.{d}", c.mechanism),
            None => format!("{suite}.{}", c.mechanism),
        };
        let _ = write!(
            o,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
            xml_escape(&class),
            xml_escape(&c.name)
        );
        let ty = match c.kind {
            CheckKind::Conservation => "conservation",
            CheckKind::Threshold => "threshold",
            CheckKind::Guest => "guest",
            CheckKind::Consistency => "consistency",
        };
        match c.outcome {
            Outcome::Pass => {
                let _ = writeln!(
                    o,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    xml_escape(&c.message)
                );
            }
            Outcome::Skip => {
                let _ = writeln!(
                    o,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml_escape(&c.message)
                );
            }
            Outcome::Fail => {
                let _ = writeln!(
                    o,
                    ">\n      <failure message=\"{}\" type=\"{ty}\">{}</failure>\n    </testcase>",
                    xml_escape(&c.message),
                    xml_escape(&failure_detail(c))
                );
            }
        }
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

fn failure_detail(c: &Check) -> String {
    let mut s = c.message.clone();
    s.push('\n');
    let _ = write!(s, "figure: {}", c.figure);
    if let Some(v) = c.measured {
        let _ = write!(s, "\nmeasured: {v} {}", c.unit);
    }
    if let Some(v) = c.limit {
        let _ = write!(s, "\nlimit: {v} {}", c.unit);
    }
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Short Markdown summary (verdict, metadata, table, failures, plots).
pub fn markdown(result: &RunResult, plots: &[String]) -> String {
    let m = &result.meta;
    let checks = effective_checks(result);
    let (p, f, s) = count_outcomes(&checks);
    let verdict = if f == 0 { "PASS" } else { "FAIL" };
    let mut o = format!("# irqstorm: {} — {verdict}\n\n", md_cell(&m.scenario));
    o.push_str("| | |\n|---|---|\n");
    for (k, v) in [
        ("scenario file", m.scenario_file.clone()),
        ("accelerator", m.accelerator.clone()),
        ("QEMU", m.qemu_version.clone()),
        ("guest kernel", m.kernel_version.clone()),
        ("start", m.start_time.clone()),
        ("measured", fmt_ns(m.duration_ns as f64)),
        ("devices", m.devices.join(", ")),
        ("checks", format!("{p} passed, {f} failed, {s} skipped")),
    ] {
        if !v.is_empty() {
            let _ = writeln!(o, "| {k} | {} |", md_cell(&v));
        }
    }
    o.push_str("\n## Latency by mechanism (us)\n\n");
    o.push_str(
        "| mechanism | events | coalesced | raise→ack p50 | p99 | p99.9 | max | hardirq→bh p50 | p99 | max | bh run p50 | max | ×ref | ×evfd |\n",
    );
    o.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in main_table(&result.mechanisms, false).rows {
        let _ = writeln!(
            o,
            "| {} |",
            r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    if guest_is_log2(&result.mechanisms) {
        o.push_str("\nGuest figures (hardirq→bh, bh run) are log2 bucket upper edges.\n");
    }
    let ow = one_way_rows(result);
    if !ow.is_empty() {
        o.push_str(
            "\n## One-way raise→hardirq (µs, ± bound)\n\n\
             Device raise (host clock) → guest hard IRQ (guest clock), through the \
             PING clock-offset estimate; every value is within ± bound of the true \
             latency (docs/clock-offset.md).\n\n",
        );
        let _ = writeln!(o, "| {} |", ONE_WAY_HEADERS.join(" | "));
        o.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in ow {
            let _ = writeln!(
                o,
                "| {} |",
                r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
            );
        }
    }
    if f > 0 {
        o.push_str("\n## Failures\n\n");
        for c in checks.iter().filter(|c| c.outcome == Outcome::Fail) {
            let _ = writeln!(o, "- {}", md_cell(&c.message));
        }
    }
    if !result.clock_offsets.is_empty() {
        o.push_str("\n## Clock offset\n\n");
        for d in &result.clock_offsets {
            let _ = writeln!(
                o,
                "- {}: host − guest = {} ns ± {} ns",
                md_cell(&d.device),
                d.estimate.host_minus_guest_ns,
                d.estimate.error_bound_ns
            );
        }
    }
    if !result.meta.notes.is_empty() {
        o.push_str("\n## Notes\n\n");
        for n in &result.meta.notes {
            let _ = writeln!(o, "- {}", md_cell(n));
        }
    }
    if !plots.is_empty() {
        o.push_str("\n## Plots\n\n");
        for p in plots {
            let _ = writeln!(o, "- [{p}]({p})");
        }
    }
    o
}

/// Files written by [`write_report_dir`].
pub const REPORT_JSON: &str = "report.json";
pub const JUNIT_XML: &str = "junit.xml";
pub const SUMMARY_MD: &str = "summary.md";
pub const TABLE_TXT: &str = "table.txt";
pub const CONSOLE_LOG: &str = "console.log";

/// Write the report directory: `report.json`, `junit.xml`, `summary.md`,
/// `table.txt`, the SVG plots, and a copy of the console log as
/// `console.log` (when given and not already that file). Returns the paths
/// written.
pub fn write_report_dir(
    dir: &Path,
    result: &RunResult,
    console_log: Option<&Path>,
) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str| -> io::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        written.push(p);
        Ok(())
    };
    let json = serde_json::to_string_pretty(result).map_err(io::Error::other)?;
    put(REPORT_JSON, &(json + "\n"))?;
    put(JUNIT_XML, &junit(result))?;
    put(TABLE_TXT, &table(result))?;
    let plots = svg::plots(result);
    let names: Vec<String> = plots.iter().map(|(n, _)| n.clone()).collect();
    for (name, text) in &plots {
        put(name, text)?;
    }
    put(SUMMARY_MD, &markdown(result, &names))?;
    if let Some(src) = console_log {
        let dst = dir.join(CONSOLE_LOG);
        let same = match (src.canonicalize(), dst.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            std::fs::copy(src, &dst)?;
        }
        written.push(dst);
    }
    Ok(written)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hist::Distribution;
    use crate::model::tests::row;
    use crate::model::{DeviceOffset, EventfdBaseline, OneWay, RampResult, RampStep, RunMeta};
    use crate::offset::OffsetEstimate;

    pub(crate) fn sample_result() -> RunResult {
        let mut r = RunResult::new(RunMeta {
            scenario: "demo<&>".into(),
            scenario_file: "tests/scenarios/demo.toml".into(),
            accelerator: "tcg".into(),
            qemu_version: "9.2.0".into(),
            kernel_version: "6.12.0".into(),
            start_time: "2026-11-22T06:40:00Z".into(),
            duration_ns: 10_000_000_000,
            warmup_ns: 1_000_000_000,
            devices: vec!["dev0".into()],
            ..Default::default()
        });
        for (i, m) in ["hardirq", "tasklet", "wq_system", "kthread"]
            .iter()
            .enumerate()
        {
            let mut x = row(m, None, i as u64 + 1);
            if i == 1 {
                x.raise_to_hardirq = Some(OneWay {
                    distribution: Distribution::from_buckets([(15_000, 900)]).unwrap(),
                    negative_samples: 0,
                    error_bound_ns: 3_000,
                    below_base: 0,
                });
            }
            r.mechanisms.push(x);
        }
        r.baselines.host_eventfd = Some(EventfdBaseline {
            round_trips: 1000,
            one_way: Distribution::from_buckets([(4_000, 990), (30_000, 10)]).unwrap(),
            round_trip: Distribution::from_buckets([(9_000, 990), (60_000, 10)]).unwrap(),
        });
        r.clock_offsets.push(DeviceOffset {
            device: "dev0".into(),
            estimate: OffsetEstimate {
                host_minus_guest_ns: -1234,
                error_bound_ns: 3000,
                delay_ns: 6000,
                samples: 64,
                used: 64,
                chosen: 7,
                drift_ppm: Some(0.5),
            },
        });
        r.ramp = Some(RampResult {
            steps: (0..5)
                .map(|i| {
                    let raised = 10_000 * (i + 1);
                    let coalesced = if i >= 3 { raised / 20 * (i - 2) } else { 0 };
                    RampStep {
                        rate_hz: 1000 << i,
                        duration_ns: 1_000_000_000,
                        host: crate::model::HostCounters {
                            raised,
                            records: raised - coalesced,
                            coalesced,
                            ..Default::default()
                        },
                        raise_to_ack_p99_ns: Some(50_000 * (i + 1)),
                    }
                })
                .collect(),
            stop_reason: "coalesced/raised 0.1000 > stop_coalesced_ratio 0.01".into(),
            sustained_rate_hz: Some(4000),
        });
        r.finalize().unwrap();
        r
    }

    #[test]
    fn fmt_ns_three_digits() {
        assert_eq!(fmt_ns(812.0), "812 ns");
        assert_eq!(fmt_ns(4096.0), "4.10 us");
        assert_eq!(fmt_ns(65536.0), "65.5 us");
        assert_eq!(fmt_ns(999_999.0), "1000 us");
        assert_eq!(fmt_ns(1e6), "1.00 ms");
        assert_eq!(fmt_ns(2.5e9), "2.50 s");
    }

    #[test]
    fn progress_line_format() {
        assert_eq!(
            progress_line("measure", 5200, 17000, 12345, 12, 12300),
            "[   5.2 s / 17.0 s] measure   raised 12345  coalesced 12  acked 12300"
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

    #[test]
    fn junit_is_well_formed_and_escaped() {
        let mut r = sample_result();
        r.checks = conservation_checks(&r);
        r.checks[1].outcome = Outcome::Fail;
        r.checks[1].message = "tasklet: a<b & \"c\" 'd' \u{1} done".into();
        r.checks.push(Check {
            kind: CheckKind::Threshold,
            name: "bh_run.max (no limit for tcg)".into(),
            mechanism: "kthread".into(),
            device: Some("dev1".into()),
            figure: "bh_run.max".into(),
            outcome: Outcome::Skip,
            measured: None,
            limit: None,
            unit: "ns".into(),
            message: "skip".into(),
        });
        let x = junit(&r);
        let doc = roxmltree::Document::parse(&x).unwrap_or_else(|e| panic!("{e}\n{x}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("tests"), Some("5"));
        assert_eq!(root.attribute("failures"), Some("1"));
        assert_eq!(root.attribute("skipped"), Some("1"));
        let suite = root
            .children()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        assert_eq!(suite.attribute("name"), Some("irqstorm.demo<&>"));
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 5);
        let failure = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failure.attribute("message"),
            Some("tasklet: a<b & \"c\" 'd' \\u{1} done")
        );
        assert_eq!(
            cases[1].attribute("classname"),
            Some("irqstorm.demo<&>.tasklet")
        );
        assert_eq!(
            cases[4].attribute("classname"),
            Some("irqstorm.demo<&>.kthread.dev1")
        );
        assert!(cases[4].children().any(|n| n.has_tag_name("skipped")));
        assert!(doc
            .descendants()
            .any(|n| n.has_tag_name("property") && n.attribute("value") == Some("tcg")));
    }

    #[test]
    fn markdown_summary_has_verdict_and_rows() {
        let mut r = sample_result();
        let md = markdown(&r, &["cdf-raise_to_ack.svg".into()]);
        assert!(md.starts_with("# irqstorm: demo<&> — PASS"));
        assert!(md.contains("| tasklet | 1000 | 90 |"));
        assert!(md.contains("[cdf-raise_to_ack.svg](cdf-raise_to_ack.svg)"));
        r.mechanisms[0].host.raised = 5;
        let md = markdown(&r, &[]);
        assert!(md.contains("— FAIL"));
        assert!(md.contains("## Failures\n\n- hardirq: conservation violated: raised 5"));
    }

    #[test]
    fn report_dir_has_every_file() {
        let dir = std::env::temp_dir().join(format!("irqstorm-report-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = std::env::temp_dir().join(format!("irqstorm-console-{}.log", std::process::id()));
        std::fs::write(&log, "boot ok\n").unwrap();
        let r = sample_result();
        let files = write_report_dir(&dir, &r, Some(&log)).unwrap();
        for f in [
            REPORT_JSON,
            JUNIT_XML,
            SUMMARY_MD,
            TABLE_TXT,
            CONSOLE_LOG,
            "cdf-raise_to_ack.svg",
            "ramp.svg",
        ] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
        assert!(files.iter().any(|p| p.ends_with("hist-tasklet.svg")));
        let back: RunResult =
            serde_json::from_str(&std::fs::read_to_string(dir.join(REPORT_JSON)).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            std::fs::read_to_string(dir.join(CONSOLE_LOG)).unwrap(),
            "boot ok\n"
        );
        // the log already in the directory is not copied onto itself
        write_report_dir(&dir, &r, Some(&dir.join(CONSOLE_LOG))).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(CONSOLE_LOG)).unwrap(),
            "boot ok\n"
        );
        for f in &files {
            if f.extension().is_some_and(|e| e == "svg" || e == "xml") {
                let text = std::fs::read_to_string(f).unwrap();
                roxmltree::Document::parse(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_file(&log).unwrap();
    }
}
