//! Tolerant KTAP parser.
//!
//! The guest console mixes KTAP with everything else that reaches ttyS0:
//! printk lines, shell noise, QEMU messages. Only lines that look like KTAP
//! at a consistent indentation are taken; everything else is ignored.
//!
//! Nesting follows KTAP/kselftest: a subtest's lines are indented by four
//! spaces more than its parent's result line, and come *before* it.

use serde::Serialize;

/// Result of one test line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    NotOk,
    Skip,
}

/// One `ok`/`not ok` line, with the subtests printed before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestCase {
    pub number: usize,
    pub name: String,
    pub outcome: Outcome,
    /// Text after `# SKIP` / `# TODO` etc.
    pub directive: Option<String>,
    /// Diagnostic (`# ...`) lines printed before this result at this level.
    pub diagnostics: Vec<String>,
    pub subtests: Option<Suite>,
}

/// A test plan and its results at one nesting level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Suite {
    pub plan: Option<usize>,
    pub tests: Vec<TestCase>,
    /// Diagnostics after the last result.
    pub trailing_diagnostics: Vec<String>,
}

/// Something that makes a KTAP run a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Problem {
    /// A `not ok` result; the path joins the names of nesting levels with `/`.
    NotOk { path: String },
    /// A level had results but no `1..N` line.
    MissingPlan { path: String },
    /// The plan announced more tests than were reported.
    MissingResults {
        path: String,
        planned: usize,
        reported: usize,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NotOk { path } => write!(f, "not ok: {path}"),
            Problem::MissingPlan { path } => write!(f, "missing KTAP plan in {path}"),
            Problem::MissingResults {
                path,
                planned,
                reported,
            } => write!(
                f,
                "{path}: plan 1..{planned} but only {reported} result(s) reported"
            ),
        }
    }
}

enum Line<'a> {
    Version,
    Plan(usize),
    Result {
        ok: bool,
        number: usize,
        name: &'a str,
        directive: Option<&'a str>,
    },
    Diagnostic(&'a str),
}

fn classify(content: &str) -> Option<Line<'_>> {
    if content == "KTAP version 1" || content == "TAP version 13" || content == "TAP version 14" {
        return Some(Line::Version);
    }
    if let Some(n) = content.strip_prefix("1..") {
        // "1..N" possibly followed by a comment.
        let n = n.split_whitespace().next().unwrap_or("");
        return n.parse().ok().map(Line::Plan);
    }
    if let Some(d) = content.strip_prefix('#') {
        return Some(Line::Diagnostic(d.trim()));
    }
    let (ok, rest) = if let Some(r) = content.strip_prefix("not ok ") {
        (false, r)
    } else if let Some(r) = content.strip_prefix("ok ") {
        (true, r)
    } else {
        return None;
    };
    let (num, rest) = match rest.find(' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let number = num.parse().ok()?;
    let (name, directive) = match rest.find(" # ") {
        Some(i) => (&rest[..i], Some(rest[i + 3..].trim())),
        None => match rest.strip_prefix("# ") {
            Some(d) => ("", Some(d.trim())),
            None => (rest, None),
        },
    };
    let name = name.trim().trim_start_matches("- ").trim();
    Some(Line::Result {
        ok,
        number,
        name,
        directive,
    })
}

#[derive(Default)]
struct Frame {
    suite: Suite,
    diags: Vec<String>,
}

/// Where a kernel message (`[ seconds.micros] ...`) starts inside `line`
/// after its first byte: the console interleaves printk output with a
/// script's writes, so a script line can run into a kernel line
/// (`    1..15[    2.046764] # irqstorm_fifo: ...`).
fn embedded_kernel_stamp(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    (1..b.len()).find(|&i| {
        if b[i] != b'[' {
            return false;
        }
        let rest = &line[i + 1..];
        let Some(end) = rest.find(']') else {
            return false;
        };
        let stamp = rest[..end].trim_start_matches(' ');
        let mut parts = stamp.splitn(2, '.');
        let (secs, frac) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        !secs.is_empty()
            && !frac.is_empty()
            && secs.bytes().all(|c| c.is_ascii_digit())
            && frac.bytes().all(|c| c.is_ascii_digit())
    })
}

/// The console lines of `text`, each split where a kernel message ran
/// into it.
fn console_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().flat_map(|l| {
        let mut out = Vec::new();
        let mut rest = l;
        while let Some(i) = embedded_kernel_stamp(rest) {
            out.push(&rest[..i]);
            rest = &rest[i..];
        }
        out.push(rest);
        out
    })
}

/// Parse the first top-level KTAP document found in `text`.
/// Returns `None` if no top-level `KTAP version 1` line was seen.
pub fn parse(text: &str) -> Option<Suite> {
    // frames[d] is the suite at nesting depth d (0 = top level).
    let mut frames: Vec<Frame> = Vec::new();
    let mut started = false;
    for raw in console_lines(text) {
        let raw = raw.trim_end_matches(['\r', '\n']);
        let trimmed = raw.trim_start_matches(' ');
        let indent = raw.len() - trimmed.len();
        if indent % 4 != 0 {
            continue;
        }
        let depth = indent / 4;
        let content = trimmed.trim_end();
        let Some(line) = classify(content) else {
            continue;
        };
        if !started {
            if depth == 0 && matches!(line, Line::Version) {
                started = true;
                frames.push(Frame::default());
            }
            continue;
        }
        // Lines deeper than one level below the open frames are tolerated by
        // opening the missing levels.
        match line {
            Line::Version => {
                if depth == 0 {
                    // A second top-level document: keep the first.
                    if !frames.is_empty() && frames[0].suite.plan.is_some() {
                        break;
                    }
                    continue;
                }
                frames.truncate(depth);
                while frames.len() <= depth {
                    frames.push(Frame::default());
                }
            }
            Line::Plan(n) => {
                frames.truncate(depth + 1);
                while frames.len() <= depth {
                    frames.push(Frame::default());
                }
                let f = &mut frames[depth];
                if f.suite.plan.is_none() {
                    f.suite.plan = Some(n);
                }
            }
            Line::Diagnostic(d) => {
                if depth < frames.len() {
                    frames[depth].diags.push(d.to_string());
                }
            }
            Line::Result {
                ok,
                number,
                name,
                directive,
            } => {
                if depth >= frames.len() {
                    // Result at a level we never saw open: open it.
                    while frames.len() <= depth {
                        frames.push(Frame::default());
                    }
                }
                let sub = if frames.len() > depth + 1 {
                    let mut child = frames.pop().expect("frame");
                    frames.truncate(depth + 1);
                    child.suite.trailing_diagnostics = std::mem::take(&mut child.diags);
                    Some(child.suite)
                } else {
                    None
                };
                let skip = directive
                    .map(|d| d.to_ascii_uppercase().starts_with("SKIP"))
                    .unwrap_or(false);
                let outcome = match (ok, skip) {
                    (true, true) => Outcome::Skip,
                    (true, false) => Outcome::Ok,
                    (false, _) => Outcome::NotOk,
                };
                let f = &mut frames[depth];
                f.suite.tests.push(TestCase {
                    number,
                    name: name.to_string(),
                    outcome,
                    directive: directive.map(str::to_string),
                    diagnostics: std::mem::take(&mut f.diags),
                    subtests: sub,
                });
            }
        }
    }
    if !started {
        return None;
    }
    // Close any frames left open (a crash in the middle of a subtest).
    while frames.len() > 1 {
        let child = frames.pop().expect("frame");
        if child.suite.plan.is_some() || !child.suite.tests.is_empty() {
            // Dangling subtest without its parent's result line: attach it
            // to a synthetic "not ok" so it is not lost.
            let parent = frames.last_mut().expect("frame");
            let number = parent.suite.tests.len() + 1;
            parent.suite.tests.push(TestCase {
                number,
                name: "(unfinished)".into(),
                outcome: Outcome::NotOk,
                directive: Some("no result line: the test did not finish".into()),
                diagnostics: Vec::new(),
                subtests: Some(child.suite),
            });
        }
    }
    let mut top = frames.pop().expect("top frame");
    top.suite.trailing_diagnostics = top.diags;
    Some(top.suite)
}

impl Suite {
    /// Everything that makes this suite a failure. Subtests are checked too.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        self.collect(None, &mut out);
        out
    }

    fn collect(&self, prefix: Option<&str>, out: &mut Vec<Problem>) {
        let here = prefix.unwrap_or("top level").to_string();
        match self.plan {
            // A subtest level without a plan is tolerated when it has no
            // results either (script printed nothing KTAP-like).
            None if prefix.is_none() || !self.tests.is_empty() => {
                out.push(Problem::MissingPlan { path: here.clone() });
            }
            Some(n) if self.tests.len() < n => out.push(Problem::MissingResults {
                path: here.clone(),
                planned: n,
                reported: self.tests.len(),
            }),
            _ => {}
        }
        for t in &self.tests {
            let name = if t.name.is_empty() {
                format!("#{}", t.number)
            } else {
                t.name.clone()
            };
            let path = match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name,
            };
            if let Some(s) = &t.subtests {
                s.collect(Some(&path), out);
            }
            if t.outcome == Outcome::NotOk {
                out.push(Problem::NotOk { path });
            }
        }
    }

    /// Counts of top-level results: (passed, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for t in &self.tests {
            match t.outcome {
                Outcome::Ok => c.0 += 1,
                Outcome::NotOk => c.1 += 1,
                Outcome::Skip => c.2 += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
[    0.000000] Linux version 7.3.4
KTAP version 1
1..2
    KTAP version 1
    1..2
    ok 1 insmod
[    1.234567] irqstorm: loaded
    ok 2 rmmod
ok 1 00-module
    KTAP version 1
    1..1
    ok 1 nothing # SKIP no device
ok 2 10-device # SKIP no device
";

    #[test]
    fn nested_ok_with_stray_printk() {
        let s = parse(GOOD).expect("ktap");
        assert_eq!(s.plan, Some(2));
        assert_eq!(s.tests.len(), 2);
        assert_eq!(s.tests[0].name, "00-module");
        assert_eq!(s.tests[0].outcome, Outcome::Ok);
        let sub = s.tests[0].subtests.as_ref().expect("subtests");
        assert_eq!(sub.plan, Some(2));
        assert_eq!(sub.tests[1].name, "rmmod");
        assert_eq!(s.tests[1].outcome, Outcome::Skip);
        assert_eq!(s.tests[1].directive.as_deref(), Some("SKIP no device"));
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        assert_eq!(s.counts(), (1, 0, 1));
    }

    /// A plan line that a kernel message ran into (seen in a CI run: the
    /// driver's KUnit suites print while the guest script writes).
    #[test]
    fn a_kernel_message_glued_to_a_plan_line_is_split_off() {
        let text = "KTAP version 1\n1..1\n    KTAP version 1\n    1..2[    2.046764] # irqstorm_fifo: \
                    pass:2 fail:0\n[    2.046799] ok 6 irqstorm_fifo\n    ok 1 a\n    ok 2 b\nok 1 10-mechanisms\n";
        let s = parse(text).expect("ktap");
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        let sub = s.tests[0].subtests.as_ref().unwrap();
        assert_eq!((sub.plan, sub.tests.len()), (Some(2), 2));
        assert_eq!(embedded_kernel_stamp("ok 1 [x] [1.5] a"), Some(9));
        assert_eq!(embedded_kernel_stamp("[ 1.0] at the start"), None);
        assert_eq!(
            embedded_kernel_stamp("ok 1 array[3] and [1.] and [a.1]"),
            None
        );
    }

    #[test]
    fn no_ktap_at_all() {
        assert!(parse("[ 0.1] booting\nok 1 stray\n").is_none());
    }

    #[test]
    fn missing_plan() {
        let s = parse("KTAP version 1\nok 1 a\n").expect("ktap");
        assert_eq!(
            s.problems(),
            vec![Problem::MissingPlan {
                path: "top level".into()
            }]
        );
    }

    #[test]
    fn not_ok_names_nested_path() {
        let text = "KTAP version 1\n1..1\n    KTAP version 1\n    1..2\n    ok 1 insmod\n    not ok 2 rmmod\nnot ok 1 00-module\n";
        let s = parse(text).expect("ktap");
        let p = s.problems();
        assert_eq!(
            p,
            vec![
                Problem::NotOk {
                    path: "00-module/rmmod".into()
                },
                Problem::NotOk {
                    path: "00-module".into()
                }
            ]
        );
        assert_eq!(s.counts(), (0, 1, 0));
    }

    #[test]
    fn crash_mid_run_reports_missing_results() {
        let text = "KTAP version 1\n1..3\nok 1 a\n    KTAP version 1\n    1..4\n    ok 1 x\n[ 2.0] Kernel panic - not syncing\n";
        let s = parse(text).expect("ktap");
        let p = s.problems();
        assert!(p.contains(&Problem::MissingResults {
            path: "top level".into(),
            planned: 3,
            reported: 2
        }));
        assert!(p.contains(&Problem::NotOk {
            path: "(unfinished)".into()
        }));
    }

    #[test]
    fn misindented_and_garbage_lines_are_ignored() {
        let text = "garbage ok 1\n  ok 7 two-space indent\nKTAP version 1\n1..1\n\tnot ok 9 tab\nok 1 - dashed name # TODO later\n";
        let s = parse(text).expect("ktap");
        assert_eq!(s.tests.len(), 1);
        assert_eq!(s.tests[0].name, "dashed name");
        assert_eq!(s.tests[0].outcome, Outcome::Ok);
        assert!(s.problems().is_empty());
    }

    #[test]
    fn diagnostics_attach_to_next_result() {
        let text = "KTAP version 1\n1..1\n# hello\nok 1 a\n# bye\n";
        let s = parse(text).expect("ktap");
        assert_eq!(s.tests[0].diagnostics, vec!["hello".to_string()]);
        assert_eq!(s.trailing_diagnostics, vec!["bye".to_string()]);
    }

    #[test]
    fn second_top_level_document_is_ignored() {
        let text = "KTAP version 1\n1..1\nok 1 a\nKTAP version 1\n1..1\nnot ok 1 b\n";
        let s = parse(text).expect("ktap");
        assert_eq!(s.tests.len(), 1);
        assert!(s.problems().is_empty());
    }
}
