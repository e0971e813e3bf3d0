//! The comparison as a console table and as JUnit XML (the JSON is the
//! serde form of [`Comparison`]).

use std::fmt::Write as _;

use super::stats::Verdict;
use super::{Comparison, Correction, Side};
use crate::render::xml_escape;

fn us(ns: Option<f64>) -> String {
    ns.map_or_else(|| "-".into(), |v| format!("{:.1}", v / 1e3))
}

fn side_line(name: &str, s: &Side) -> String {
    let mut o = format!("{name} {}: {} run(s)", s.source, s.runs.len());
    if !s.disturbed.is_empty() {
        let _ = write!(
            o,
            ", {} disturbed run(s) excluded: {}",
            s.disturbed.len(),
            s.disturbed.join(" ")
        );
    }
    if !s.missing.is_empty() {
        let _ = write!(
            o,
            ", {} without a report: {}",
            s.missing.len(),
            s.missing.join(" ")
        );
    }
    if !s.failed.is_empty() {
        let _ = write!(
            o,
            ", {} failed their own checks (kept): {}",
            s.failed.len(),
            s.failed.join(" ")
        );
    }
    o
}

/// The console table: the method, the runs of each side, one row per
/// mechanism and figure, and the count of verdicts.
pub fn table(c: &Comparison) -> String {
    let m = &c.method;
    let pct = (m.confidence * 1e4).round() / 1e2;
    let mut o = String::new();
    let _ = writeln!(o, "{}", side_line("BASE", &c.base));
    let _ = writeln!(o, "{}", side_line("NEW ", &c.new));
    let _ = writeln!(o, "method: {}", m.test);
    let corr = match m.correction {
        Correction::None => format!(
            "no multiple-comparison correction ({} figures judged: with no change, about {:.2} of them are flagged significant by chance; --correction holm bounds the family)",
            m.judged,
            m.judged as f64 * m.alpha
        ),
        Correction::Holm => format!("Holm correction over the {} figures judged", m.judged),
    };
    let _ = writeln!(
        o,
        "        significant at p < {:.3} (confidence {pct}%), {corr}",
        m.alpha
    );
    let _ = writeln!(
        o,
        "        delta = median(NEW) - median(BASE), with its {pct}% {} ({} resamples, seed {})",
        m.interval, m.bootstrap.resamples, m.bootstrap.seed
    );
    let _ = writeln!(
        o,
        "        a change counts only when |delta| >= max({:.1} us, {:.0}% of the BASE median)",
        m.min_effect.abs_ns / 1e3,
        m.min_effect.rel * 100.0
    );
    o.push('\n');
    let ci_head = format!("{pct}% CI (us)");
    let _ = writeln!(
        o,
        "{:<14} {:<22} {:>5} {:>10} {:>10} {:>18} {:>8} {:>24}  verdict",
        "mechanism", "figure", "runs", "base (us)", "new (us)", "delta", "p", ci_head
    );
    for r in &c.rows {
        let delta = match (r.delta_ns, r.delta_rel) {
            (Some(d), Some(rel)) => format!("{:+.1} ({:+.0}%)", d / 1e3, rel * 100.0),
            (Some(d), None) => format!("{:+.1}", d / 1e3),
            _ => "-".into(),
        };
        let p = r.p_value.map_or_else(|| "-".into(), |p| format!("{p:.4}"));
        let ci = r.ci_ns.map_or_else(
            || "-".into(),
            |i| format!("[{:+.1}, {:+.1}]", i.lo / 1e3, i.hi / 1e3),
        );
        let verdict = if r.verdict == Verdict::NotEnoughRuns {
            "not enough runs to judge"
        } else {
            r.verdict.label()
        };
        let _ = writeln!(
            o,
            "{:<14} {:<22} {:>5} {:>10} {:>10} {:>18} {:>8} {:>24}  {verdict}",
            r.mechanism,
            r.figure,
            format!("{}+{}", r.base_runs, r.new_runs),
            us(r.base_median_ns),
            us(r.new_median_ns),
            delta,
            p,
            ci
        );
    }
    let not_enough = c
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::NotEnoughRuns)
        .count();
    let _ = writeln!(
        o,
        "\ncompare: {} figure(s): {} regression(s), {} improvement(s), {} same, {} not enough runs to judge",
        c.rows.len(),
        c.regressions,
        c.improvements,
        c.rows.len() - c.regressions - c.improvements - not_enough,
        not_enough
    );
    // Why figures could not be judged, once per distinct reason.
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for r in c
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::NotEnoughRuns)
    {
        match reasons.iter_mut().find(|(x, _)| *x == r.reason) {
            Some((_, n)) => *n += 1,
            None => reasons.push((&r.reason, 1)),
        }
    }
    for (reason, n) in reasons {
        let _ = writeln!(o, "note: {n} figure(s): {reason}");
    }
    for r in c.rows.iter().filter(|r| r.verdict == Verdict::Regression) {
        let _ = writeln!(o, "REGRESSION {}: {}: {}", r.mechanism, r.figure, r.reason);
    }
    o
}

/// JUnit XML: one testcase per mechanism x figure; a failure only for a
/// significant regression, *skipped* when there were not enough runs.
pub fn junit(c: &Comparison) -> String {
    let skipped = c
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::NotEnoughRuns)
        .count();
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<testsuites name=\"irqstorm-compare\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{skipped}\">",
        c.rows.len(),
        c.regressions
    );
    let _ = writeln!(
        o,
        "  <testsuite name=\"irqstorm.compare\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{skipped}\">",
        c.rows.len(),
        c.regressions
    );
    o.push_str("    <properties>\n");
    for (k, v) in [
        ("base", c.base.source.clone()),
        ("new", c.new.source.clone()),
        ("confidence", c.method.confidence.to_string()),
        (
            "correction",
            format!("{:?}", c.method.correction).to_lowercase(),
        ),
        (
            "min_effect_us",
            (c.method.min_effect.abs_ns / 1e3).to_string(),
        ),
        ("min_effect_rel", c.method.min_effect.rel.to_string()),
        ("base_disturbed_excluded", c.base.disturbed.join(" ")),
        ("new_disturbed_excluded", c.new.disturbed.join(" ")),
    ] {
        let _ = writeln!(
            o,
            "      <property name=\"{k}\" value=\"{}\"/>",
            xml_escape(&v)
        );
    }
    o.push_str("    </properties>\n");
    for r in &c.rows {
        let _ = write!(
            o,
            "    <testcase classname=\"irqstorm.compare.{}\" name=\"{}\" time=\"0\"",
            xml_escape(&r.mechanism),
            xml_escape(&r.figure)
        );
        let text = format!(
            "base {} us, new {} us ({} + {} runs): {}",
            us(r.base_median_ns),
            us(r.new_median_ns),
            r.base_runs,
            r.new_runs,
            r.reason
        );
        match r.verdict {
            Verdict::Regression => {
                let _ = writeln!(
                    o,
                    ">\n      <failure message=\"{}\" type=\"regression\"/>\n    </testcase>",
                    xml_escape(&format!("{}: {} regressed: {text}", r.mechanism, r.figure))
                );
            }
            Verdict::NotEnoughRuns => {
                let _ = writeln!(
                    o,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml_escape(&text)
                );
            }
            Verdict::Same | Verdict::Improvement => {
                let _ = writeln!(
                    o,
                    ">\n      <system-out>{}: {}</system-out>\n    </testcase>",
                    r.verdict.label(),
                    xml_escape(&text)
                );
            }
        }
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::super::load::{RunFigures, RunSet};
    use super::super::{compare, Options};
    use super::*;
    use std::collections::BTreeMap;

    fn set(us: &[(f64, f64)]) -> RunSet {
        RunSet {
            source: "s".into(),
            runs: us
                .iter()
                .enumerate()
                .map(|(i, (a, b))| RunFigures {
                    label: format!("runs/{}", i + 1),
                    disturbed: false,
                    failed_checks: Vec::new(),
                    figures: BTreeMap::from([
                        (
                            "bh_wq".to_string(),
                            BTreeMap::from([("hardirq_to_bh.p50".to_string(), a * 1e3)]),
                        ),
                        (
                            "tasklet".to_string(),
                            BTreeMap::from([("hardirq_to_bh.p50".to_string(), b * 1e3)]),
                        ),
                    ]),
                })
                .collect(),
            missing: vec!["runs/9".into()],
        }
    }

    #[test]
    fn junit_fails_only_regressions_and_parses() {
        let base = set(&[
            (80.0, 10.0),
            (82.0, 11.0),
            (79.0, 12.0),
            (85.0, 10.5),
            (81.0, 11.5),
        ]);
        let new = set(&[
            (101.0, 10.2),
            (99.0, 11.2),
            (103.0, 11.9),
            (100.0, 10.4),
            (98.0, 11.0),
        ]);
        let c = compare(&base, &new, &Options::default()).unwrap();
        let x = junit(&c);
        let doc = roxmltree::Document::parse(&x).unwrap_or_else(|e| panic!("{e}\n{x}"));
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 2);
        let failed: Vec<_> = cases
            .iter()
            .filter(|n| n.children().any(|c| c.has_tag_name("failure")))
            .map(|n| n.attribute("classname").unwrap())
            .collect();
        assert_eq!(failed, vec!["irqstorm.compare.bh_wq"]);
        let t = table(&c);
        assert!(
            t.contains("NEW  s: 5 run(s), 1 without a report: runs/9"),
            "{t}"
        );
        assert!(
            t.contains("1 regression(s), 0 improvement(s), 1 same, 0 not enough runs"),
            "{t}"
        );
        assert!(
            t.contains("REGRESSION bh_wq: hardirq_to_bh.p50: p = 0.0079 < "),
            "{t}"
        );
    }
}
