//! Run reports: JSON and JUnit XML of guest KTAP results.

use crate::boot::Evaluation;
use crate::ktap::{Outcome, Suite};
use irqstorm_report::render::xml_escape;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Write `results.json` and `junit.xml` into `dir`; returns their paths.
pub fn write(dir: &Path, name: &str, ev: &Evaluation) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let json = dir.join("results.json");
    let xml = dir.join("junit.xml");
    let body = serde_json::to_string_pretty(ev).map_err(std::io::Error::other)?;
    std::fs::write(&json, body + "\n")?;
    std::fs::write(&xml, junit(name, ev))?;
    Ok((json, xml))
}

struct Case {
    class: String,
    name: String,
    outcome: Outcome,
    message: Option<String>,
}

fn flatten(s: &Suite, prefix: &str, out: &mut Vec<Case>) {
    for t in &s.tests {
        let name = if t.name.is_empty() {
            format!("#{}", t.number)
        } else {
            t.name.clone()
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if let Some(sub) = &t.subtests {
            flatten(sub, &path, out);
        }
        out.push(Case {
            class: if prefix.is_empty() {
                "guest".into()
            } else {
                format!("guest.{prefix}")
            },
            name,
            outcome: t.outcome,
            message: t
                .directive
                .clone()
                .or_else(|| t.diagnostics.last().cloned()),
        });
    }
}

/// JUnit XML: one testcase per KTAP result (nested ones with the parent path
/// as class name) plus a `boot` case carrying run-level failures.
pub fn junit(name: &str, ev: &Evaluation) -> String {
    let mut cases = Vec::new();
    if let Some(s) = &ev.ktap {
        flatten(s, "", &mut cases);
    }
    let boot_fail = ev
        .failures
        .iter()
        .filter(|f| !f.starts_with("KTAP not ok"))
        .cloned()
        .collect::<Vec<_>>();
    let failures = cases.iter().filter(|c| c.outcome == Outcome::NotOk).count()
        + usize::from(!boot_fail.is_empty());
    let skipped = cases.iter().filter(|c| c.outcome == Outcome::Skip).count();
    let mut x = String::new();
    let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        x,
        r#"<testsuite name="{}" tests="{}" failures="{}" skipped="{}" time="{:.3}">"#,
        xml_escape(name),
        cases.len() + 1,
        failures,
        skipped,
        ev.duration_s
    );
    let _ = write!(
        x,
        r#"  <testcase classname="guest" name="boot" time="{:.3}">"#,
        ev.duration_s
    );
    if !boot_fail.is_empty() {
        let _ = write!(
            x,
            r#"<failure message="{}">{}</failure>"#,
            xml_escape(&boot_fail[0]),
            xml_escape(&boot_fail.join("\n"))
        );
    }
    let _ = writeln!(x, "</testcase>");
    for c in &cases {
        let _ = write!(
            x,
            r#"  <testcase classname="{}" name="{}">"#,
            xml_escape(&c.class),
            xml_escape(&c.name)
        );
        match c.outcome {
            Outcome::Ok => {}
            Outcome::Skip => {
                let _ = write!(
                    x,
                    r#"<skipped message="{}"/>"#,
                    xml_escape(c.message.as_deref().unwrap_or(""))
                );
            }
            Outcome::NotOk => {
                let _ = write!(
                    x,
                    r#"<failure message="not ok{}"/>"#,
                    xml_escape(
                        &c.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    )
                );
            }
        }
        let _ = writeln!(x, "</testcase>");
    }
    let _ = writeln!(
        x,
        "  <system-out>console log: {}</system-out>",
        xml_escape(&ev.console_log.display().to_string())
    );
    let _ = writeln!(x, "</testsuite>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::evaluate;
    use crate::boot::tests::result;

    #[test]
    fn junit_lists_nested_results_and_failures() {
        let ev = evaluate(&result(
            "KTAP version 1\n1..2\n    KTAP version 1\n    1..1\n    not ok 1 rm<mod>\nnot ok 1 00-module\nok 2 10-x # SKIP none\n",
        ));
        let x = junit("irqstorm", &ev);
        assert!(
            x.contains(r#"<testcase classname="guest.00-module" name="rm&lt;mod&gt;"><failure"#)
        );
        assert!(x.contains(r#"name="10-x"><skipped message="SKIP none"/>"#));
        assert!(x.contains(r#"tests="4" failures="2" skipped="1""#), "{x}");
    }
}
