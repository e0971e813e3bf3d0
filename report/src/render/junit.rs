//! JUnit XML of a run (`junit.xml`).

use std::fmt::Write as _;

use super::{count_outcomes, effective_checks, xml_escape};
use crate::model::{Check, CheckKind, Outcome, RunResult};
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
    let i = result.interference.as_ref();
    let disturbed = i.map_or("not measured".into(), |i| i.disturbed.to_string());
    let wait = i
        .and_then(|i| i.max_vcpu_wait_share)
        .map_or_else(String::new, |w| format!("{w:.4}"));
    o.push_str("    <properties>\n");
    for (k, v) in [
        ("scenario", m.scenario.as_str()),
        ("scenario_file", &m.scenario_file),
        ("accelerator", &m.accelerator),
        ("qemu_version", &m.qemu_version),
        ("kernel_version", &m.kernel_version),
        ("kernel_variant", &m.kernel_variant),
        ("devices", &m.devices.join(",")),
        ("disturbed", &disturbed),
        ("max_vcpu_wait_share", &wait),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::conservation_checks;
    use crate::render::tests::sample_result;

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
}
