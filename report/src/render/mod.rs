//! Rendering a [`RunResult`]: the rtla-style console table, JUnit XML, SVG
//! plots, the Markdown summary, and the report directory.

mod conditions;
mod junit;
mod markdown;
pub mod svg;
mod table;
mod xml;

use std::io;
use std::path::{Path, PathBuf};

use crate::gate::conservation_checks;
use crate::model::{Check, Outcome, RunResult};

pub use junit::junit;
pub use markdown::markdown;
pub use table::table;
pub use xml::xml_escape;

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
                    method: crate::model::METHOD_PING.into(),
                    after_irq_start: 0,
                    past_budget: 0,
                    uncalibrated: 0,
                    unchecked: 0,
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
