//! KCIDB submissions (`irqstorm-report kcidb`): a run's figures and gates,
//! and the guest's KTAP results, as KernelCI's common reporting database
//! takes them (schema v5.3, `kcidb-io`'s latest; a test's `number` exists
//! from v4.4 on).
//!
//! One checkout (the kernel source the guest ran: its git commit when
//! given, else the kernel version), one build (the cached kernel build the
//! guest booted: its key is the hash of the kernel inputs, config
//! included), and the tests:
//! - `irqstorm.<scenario>.<mechanism>.<metric>.<stat>`, status `DONE`, with
//!   `number` {value in s, unit "s", prefix "metric"}: every latency figure
//!   of the table (p50, p90, p99, p99.9 as `p999`, max);
//! - `irqstorm.<scenario>.<mechanism>.events`: records acked (a count);
//! - `irqstorm.<scenario>.<mechanism>.gate.<figure>`: every gate, `PASS`,
//!   `FAIL` or `SKIP` (not judged), with its measured value;
//! - `irqstorm.guest.<script>[.<subtest>...]`: the guest KTAP results.

use serde::Serialize;
use serde_json::{json, Value};
use std::path::Path;

use crate::hist::LatencySummary;
use crate::model::{CheckKind, Outcome, RunResult};

/// The schema version the submission declares.
pub const VERSION: (u32, u32) = (5, 3);

/// Who submits, and what is known of the tested kernel beyond the report.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// The CI system's name, the prefix of every id (`[a-z0-9_]+`).
    pub origin: String,
    /// Git commit of the tested kernel tree, when known.
    pub git_commit: Option<String>,
    /// The tree's name (e.g. `mainline`, `debian-linux-source-7.3`).
    pub tree_name: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            origin: "irqstorm".into(),
            git_commit: None,
            tree_name: None,
        }
    }
}

/// Errors of building a submission.
#[derive(Debug, thiserror::Error)]
pub enum KcidbError {
    #[error("origin `{0}`: KCIDB wants [a-z0-9_]+")]
    BadOrigin(String),
    #[error("{0}: neither report.json nor results.json")]
    NothingToSubmit(String),
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

/// A KCIDB path component: what KCIDB allows (`[a-zA-Z0-9_-]`), the rest
/// as `_`.
pub fn component(s: &str) -> String {
    let c: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if c.is_empty() {
        "_".into()
    } else {
        c
    }
}

/// The cache key of the kernel the guest booted (`.../kernel-<key>/...`
/// on QEMU's `-kernel`), if the run conditions have it.
fn kernel_key(r: &RunResult) -> Option<String> {
    let argv = &r.run_conditions.as_ref()?.guests.first()?.qemu_argv;
    let i = argv.iter().position(|a| a == "-kernel")?;
    let p = Path::new(argv.get(i + 1)?);
    p.ancestors()
        .filter_map(|a| a.file_name()?.to_str())
        .find_map(|n| n.strip_prefix("kernel-").map(str::to_string))
}

fn seconds(ns: u64) -> Value {
    json!({ "value": ns as f64 / 1e9, "unit": "s", "prefix": "metric" })
}

/// The figures of one distribution summary, by KCIDB name.
fn stats(s: &LatencySummary) -> [(&'static str, u64); 5] {
    [
        ("p50", s.p50_ns),
        ("p90", s.p90_ns),
        ("p99", s.p99_ns),
        ("p999", s.p999_ns),
        ("max", s.max_ns),
    ]
}

struct Ids<'a> {
    origin: &'a str,
    build: String,
    run: String,
}

impl Ids<'_> {
    fn test(&self, path: &str) -> String {
        format!("{}:{}:{}", self.origin, self.run, path)
    }
}

fn test(ids: &Ids, path: &str, status: &str, start: Option<&str>) -> Value {
    let mut t = json!({
        "id": ids.test(path),
        "build_id": ids.build,
        "origin": ids.origin,
        "path": path,
        "status": status,
    });
    if let Some(s) = start.filter(|s| !s.is_empty()) {
        t["start_time"] = json!(s);
    }
    t
}

/// The tests of a scenario run's report.
fn report_tests(r: &RunResult, ids: &Ids) -> Vec<Value> {
    let sc = component(&r.meta.scenario);
    let start = Some(r.meta.start_time.as_str());
    let mut v = Vec::new();
    for m in &r.mechanisms {
        let base = format!("irqstorm.{sc}.{}", component(&m.mechanism));
        let dists = [
            ("raise_to_ack", m.raise_to_ack.as_ref().map(|d| &d.summary)),
            (
                "hardirq_to_bh",
                m.hardirq_to_bh.as_ref().map(|d| &d.summary),
            ),
            (
                "irq_to_first_bh",
                m.irq_to_first_bh.as_ref().map(|d| &d.summary),
            ),
            ("bh_run", m.bh_run.as_ref().map(|d| &d.summary)),
            (
                "raise_to_hardirq",
                m.raise_to_hardirq.as_ref().map(|o| &o.distribution.summary),
            ),
        ];
        for (metric, s) in dists {
            let Some(s) = s.filter(|s| s.count > 0) else {
                continue;
            };
            for (stat, ns) in stats(s) {
                let path = format!("{base}.{metric}.{stat}");
                let mut t = test(ids, &path, "DONE", start);
                t["number"] = seconds(ns);
                if metric == "raise_to_hardirq" {
                    if let Some(o) = &m.raise_to_hardirq {
                        t["misc"] =
                            json!({ "method": o.method, "error_bound_ns": o.error_bound_ns });
                    }
                }
                v.push(t);
            }
        }
        let mut t = test(ids, &format!("{base}.events"), "DONE", start);
        t["number"] = json!({ "value": m.host.acked as f64 });
        v.push(t);
    }
    // The timerlat baseline: irqstorm.<scenario>.timerlat[.<guest>].<context>.<stat>
    for tl in &r.baselines.timerlat {
        let base = if r.baselines.timerlat.len() > 1 {
            format!("irqstorm.{sc}.timerlat.{}", component(&tl.guest))
        } else {
            format!("irqstorm.{sc}.timerlat")
        };
        for (ctx, d) in [
            ("irq", &tl.irq),
            ("thread", &tl.thread),
            ("irq_to_thread", &tl.irq_to_thread),
        ] {
            if d.summary.count == 0 {
                continue;
            }
            for (stat, ns) in stats(&d.summary) {
                let mut t = test(ids, &format!("{base}.{ctx}.{stat}"), "DONE", start);
                t["number"] = seconds(ns);
                t["misc"] = json!({ "period_us": tl.period_us, "samples": d.summary.count });
                v.push(t);
            }
        }
    }
    for c in &r.checks {
        let figure = if c.kind == CheckKind::Conservation {
            "conservation".to_string()
        } else {
            c.figure.clone()
        };
        let path = format!(
            "irqstorm.{sc}.{}.gate.{}",
            component(&c.mechanism),
            figure
                .split('.')
                .map(component)
                .collect::<Vec<_>>()
                .join("_")
        );
        let status = match c.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        };
        let mut t = test(ids, &path, status, start);
        if let Some(x) = c.measured {
            t["number"] = if c.unit == "ns" {
                seconds(x.max(0.0) as u64)
            } else {
                json!({ "value": x })
            };
        }
        t["comment"] = json!(c.message);
        v.push(t);
    }
    v
}

/// The KTAP tests of a guest run's `results.json` (`ktap.tests`, nested
/// `subtests`), under `irqstorm.guest`.
fn ktap_tests(results: &Value, ids: &Ids) -> Vec<Value> {
    fn walk(tests: &Value, prefix: &str, ids: &Ids, out: &mut Vec<Value>) {
        for t in tests.as_array().into_iter().flatten() {
            let name = component(t["name"].as_str().unwrap_or("unnamed"));
            let path = format!("{prefix}.{name}");
            let skip = t["directive"]
                .as_str()
                .is_some_and(|d| d.to_ascii_uppercase().starts_with("SKIP"));
            let status = match (t["outcome"].as_str(), skip) {
                (_, true) => "SKIP",
                (Some("ok"), _) => "PASS",
                (Some("not ok"), _) => "FAIL",
                _ => "ERROR",
            };
            let mut v = test(ids, &path, status, None);
            if let Some(d) = t["directive"].as_str() {
                v["comment"] = json!(d);
            }
            out.push(v);
            walk(&t["subtests"]["tests"], &path, ids, out);
        }
    }
    let mut out = Vec::new();
    walk(&results["ktap"]["tests"], "irqstorm.guest", ids, &mut out);
    out
}

/// The submission for a scenario report and/or a guest run's KTAP results.
pub fn submission(
    report: Option<&RunResult>,
    ktap: Option<&Value>,
    o: &Options,
) -> Result<Value, KcidbError> {
    let origin = o.origin.as_str();
    if origin.is_empty()
        || !origin
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(KcidbError::BadOrigin(o.origin.clone()));
    }
    let key = report.and_then(kernel_key);
    let kernel = report
        .map(|r| r.meta.kernel_version.clone())
        .filter(|k| !k.is_empty());
    let checkout = component(
        o.git_commit
            .as_deref()
            .or(kernel.as_deref())
            .unwrap_or("unknown"),
    );
    let build = format!(
        "{origin}:{checkout}:{}",
        component(key.as_deref().unwrap_or("unknown"))
    );
    let run = report
        .map(|r| component(&format!("{}-{}", r.meta.scenario, r.meta.start_time)))
        .unwrap_or_else(|| "guest".into());
    let ids = Ids {
        origin,
        build: build.clone(),
        run,
    };
    let mut co = json!({ "id": format!("{origin}:{checkout}"), "origin": origin });
    if let Some(c) = &o.git_commit {
        co["git_commit_hash"] = json!(c);
    }
    if let Some(t) = &o.tree_name {
        co["tree_name"] = json!(t);
    }
    if let Some(k) = &kernel {
        co["misc"] = json!({ "kernel_version": k });
    }
    let mut b = json!({
        "id": build,
        "checkout_id": format!("{origin}:{checkout}"),
        "origin": origin,
        "architecture": "x86_64",
        "config_name": "irqstorm",
        "status": "PASS",
    });
    let mut misc = json!({ "config_hash": key, "variant": "default" });
    if let Some(r) = report.filter(|r| !r.meta.kernel_variant.is_empty()) {
        misc["variant"] = json!(r.meta.kernel_variant);
    }
    if let Some(r) = report {
        misc["accelerator"] = json!(r.meta.accelerator);
        misc["qemu_version"] = json!(r.meta.qemu_version);
        if let Some(i) = &r.interference {
            misc["disturbed"] = json!(i.disturbed);
        }
    }
    b["misc"] = misc;
    let mut tests = Vec::new();
    if let Some(r) = report {
        tests.extend(report_tests(r, &ids));
    }
    if let Some(k) = ktap {
        tests.extend(ktap_tests(k, &ids));
    }
    Ok(json!({
        "version": { "major": VERSION.0, "minor": VERSION.1 },
        "checkouts": [co],
        "builds": [b],
        "tests": tests,
    }))
}

fn read_json(p: &Path) -> Result<Option<Value>, KcidbError> {
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(p).map_err(|e| KcidbError::Read {
        path: p.display().to_string(),
        source: e,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| KcidbError::Parse {
            path: p.display().to_string(),
            source: e,
        })
}

/// The submission for a report directory (`report.json` of a scenario
/// run, `results.json` of a guest run, or both), plus an extra KTAP
/// `results.json`.
pub fn from_dir(dir: &Path, extra_ktap: Option<&Path>, o: &Options) -> Result<Value, KcidbError> {
    let report = match read_json(&dir.join("report.json"))? {
        Some(v) => Some(
            serde_json::from_value::<RunResult>(v).map_err(|e| KcidbError::Parse {
                path: dir.join("report.json").display().to_string(),
                source: e,
            })?,
        ),
        None => None,
    };
    let mut ktap = read_json(&dir.join("results.json"))?;
    if let Some(p) = extra_ktap {
        ktap = read_json(p)?.or(ktap);
    }
    if report.is_none() && ktap.is_none() {
        return Err(KcidbError::NothingToSubmit(dir.display().to_string()));
    }
    submission(report.as_ref(), ktap.as_ref(), o)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULTS: &str = r#"{"ktap": {"plan": 2, "tests": [
        {"number": 1, "name": "05-kunit", "outcome": "ok", "directive": null, "diagnostics": [],
         "subtests": {"plan": 1, "tests": [{"number": 1, "name": "irqstorm_mech", "outcome": "ok",
           "directive": null, "diagnostics": [], "subtests": null}]}},
        {"number": 2, "name": "50-ftrace", "outcome": "ok", "directive": "SKIP not in all",
         "diagnostics": [], "subtests": null}]}}"#;

    #[test]
    fn components_keep_what_kcidb_allows() {
        assert_eq!(component("ci-quick"), "ci-quick");
        assert_eq!(component("p99.9"), "p99_9");
        assert_eq!(component("a b/c"), "a_b_c");
        assert_eq!(component(""), "_");
    }

    #[test]
    fn ktap_results_become_nested_tests_with_their_status() {
        let k: Value = serde_json::from_str(RESULTS).unwrap();
        let s = submission(None, Some(&k), &Options::default()).unwrap();
        let tests = s["tests"].as_array().unwrap();
        let paths: Vec<(&str, &str)> = tests
            .iter()
            .map(|t| (t["path"].as_str().unwrap(), t["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            paths,
            [
                ("irqstorm.guest.05-kunit", "PASS"),
                ("irqstorm.guest.05-kunit.irqstorm_mech", "PASS"),
                ("irqstorm.guest.50-ftrace", "SKIP"),
            ]
        );
        assert!(tests
            .iter()
            .all(|t| t["id"].as_str().unwrap().starts_with("irqstorm:guest:")));
        assert_eq!(s["version"]["major"], 5);
        assert_eq!(s["builds"][0]["checkout_id"], s["checkouts"][0]["id"]);
    }

    #[test]
    fn a_bad_origin_is_refused() {
        let k: Value = serde_json::from_str(RESULTS).unwrap();
        let o = Options {
            origin: "Irq-Storm".into(),
            ..Default::default()
        };
        assert!(matches!(
            submission(None, Some(&k), &o),
            Err(KcidbError::BadOrigin(_))
        ));
    }

    #[test]
    fn a_report_gives_figures_in_seconds_and_gates_with_their_outcome() {
        let mut r = crate::render::tests::sample_result();
        r.checks = crate::render::effective_checks(&r);
        assert!(!r.checks.is_empty());
        let s = submission(Some(&r), None, &Options::default()).unwrap();
        let tests = s["tests"].as_array().unwrap();
        let m = &r.mechanisms[0];
        let p99 = tests
            .iter()
            .find(|t| {
                t["path"]
                    == format!(
                        "irqstorm.{}.{}.raise_to_ack.p99",
                        component(&r.meta.scenario),
                        m.mechanism
                    )
            })
            .expect("raise_to_ack.p99");
        let want = m.raise_to_ack.as_ref().unwrap().summary.p99_ns as f64 / 1e9;
        assert_eq!(p99["number"]["value"].as_f64().unwrap(), want);
        assert_eq!(p99["number"]["unit"], "s");
        assert_eq!(p99["status"], "DONE");
        let gates: Vec<&Value> = tests
            .iter()
            .filter(|t| t["path"].as_str().unwrap().contains(".gate."))
            .collect();
        assert_eq!(gates.len(), r.checks.len());
        assert!(gates
            .iter()
            .all(|t| ["PASS", "FAIL", "SKIP"].contains(&t["status"].as_str().unwrap())));
    }

    #[test]
    fn a_timerlat_baseline_becomes_tests_with_its_figures() {
        let mut r = crate::render::tests::sample_result();
        let t = crate::input::parse_timerlat(
            "period_us 1000\ncpus 0-1\ns 0 1 irq 1000\ns 0 1 thread 3000\n",
            "irqstorm0",
        )
        .unwrap();
        r.baselines.timerlat.push(t.baseline);
        let s = submission(Some(&r), None, &Options::default()).unwrap();
        let path = format!(
            "irqstorm.{}.timerlat.irq_to_thread.p99",
            component(&r.meta.scenario)
        );
        let t = s["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["path"] == path)
            .unwrap_or_else(|| panic!("no {path}"));
        assert_eq!(t["number"]["value"].as_f64().unwrap(), 2000e-9);
        assert_eq!(t["misc"]["period_us"], 1000);
    }
}
