//! `irqstorm-report compare` on recorded runs: `report/tests/data/compare/`
//! holds the report.json files of real `cargo xtask run --scenario
//! tests/scenarios/ci-quick.toml --repeat 5` runs (TCG, 2 shared cores at
//! load 10-14, 2026-12-02; histograms, per-device rows and baselines removed
//! to keep them small): `base` (no injected delay), `slow20` and `slow2000`
//! (`--module-param inject_delay_us=20|2000 --module-param
//! inject_delay_mech=bh_wq`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_irqstorm-report"))
}

fn data(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/compare")
        .join(f)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("irqstorm-compare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn compare(args: &[&std::ffi::OsStr]) -> (Output, String, String) {
    let out = bin().arg("compare").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `(mechanism, figure)` of every row with this verdict.
fn rows_with(c: &serde_json::Value, verdict: &str) -> Vec<(String, String)> {
    c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["verdict"] == verdict)
        .map(|r| {
            (
                r["mechanism"].as_str().unwrap().to_string(),
                r["figure"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_large_injected_delay_is_a_regression() {
    let d = tmp("large");
    std::fs::create_dir_all(&d).unwrap();
    let (j, x) = (d.join("c.json"), d.join("c.xml"));
    let (out, stdout, stderr) = compare(&[
        data("base").as_os_str(),
        data("slow2000").as_os_str(),
        "--json".as_ref(),
        j.as_os_str(),
        "--junit".as_ref(),
        x.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let c = json(&j);
    // 6 mechanisms x 8 figures, 5 runs a side: every figure judged
    assert_eq!(c["rows"].as_array().unwrap().len(), 48);
    assert_eq!(c["method"]["judged"], 48);
    // 2 ms busy in bh_wq's softirq also holds up the tasklets behind it
    assert_eq!(
        rows_with(&c, "regression"),
        vec![
            ("tasklet".to_string(), "hardirq_to_bh.p50".to_string()),
            ("bh_wq".to_string(), "hardirq_to_bh.p50".to_string())
        ]
    );
    let bh = c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["mechanism"] == "bh_wq" && r["figure"] == "hardirq_to_bh.p50")
        .unwrap();
    assert_eq!(bh["p_method"], "exact");
    assert!((bh["p_value"].as_f64().unwrap() - 2.0 / 252.0).abs() < 1e-9);
    assert!(bh["ci_ns"]["lo"].as_f64().unwrap() > 0.0);
    assert!(
        stdout.contains("2 regression(s), 0 improvement(s), 46 same"),
        "{stdout}"
    );
    assert!(
        stdout.contains("REGRESSION bh_wq: hardirq_to_bh.p50: p = 0.0079 < 0.01"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 failed their own checks (kept): runs/2 runs/3"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&x).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!((cases, failures), (48, 2));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_20us_delay_is_below_this_hosts_noise_and_nothing_is_flagged() {
    // At load 10-14 bh_wq's hardirq->bh p50 spread over 0.2-5 ms between
    // runs: a 20 us shift cannot be told from that with 5 runs a side, and
    // none of the 40 figures of the other mechanisms (no delay) is flagged.
    let d = tmp("small");
    std::fs::create_dir_all(&d).unwrap();
    let j = d.join("c.json");
    let (out, stdout, stderr) = compare(&[
        data("base").as_os_str(),
        data("slow20").as_os_str(),
        "--json".as_ref(),
        j.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let c = json(&j);
    assert_eq!(rows_with(&c, "same").len(), 48);
    assert!(
        stdout.contains("0 regression(s), 0 improvement(s), 48 same"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn one_run_a_side_is_not_enough() {
    let (out, stdout, _) = compare(&[
        data("base/runs/1/report.json").as_os_str(),
        data("slow2000/runs/1/report.json").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("0 regression(s), 0 improvement(s), 0 same, 48 not enough runs to judge"),
        "{stdout}"
    );
    assert!(stdout.contains("not enough runs to judge"), "{stdout}");
    // Even at 0.95 one run a side cannot be significant.
    let (_, stdout, _) = compare(&[
        data("base/runs/1").as_os_str(),
        data("slow2000/runs/1").as_os_str(),
        "--confidence".as_ref(),
        "0.95".as_ref(),
    ]);
    assert!(stdout.contains("48 not enough runs to judge"), "{stdout}");
}

/// Copies a recorded side into `dir` (runs/<k>/report.json).
fn copy_side(name: &str, dir: &Path) {
    for k in 1..=5 {
        let to = dir.join(format!("runs/{k}"));
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(
            data(&format!("{name}/runs/{k}/report.json")),
            to.join("report.json"),
        )
        .unwrap();
    }
}

#[test]
fn disturbed_runs_are_excluded_and_counted() {
    let d = tmp("disturbed");
    copy_side("slow2000", &d);
    let f = d.join("runs/4/report.json");
    let mut r = json(&f);
    r["disturbed"] = serde_json::Value::Bool(true);
    std::fs::write(&f, r.to_string()).unwrap();
    // a run that left no report
    std::fs::create_dir_all(d.join("runs/6")).unwrap();
    let (out, stdout, _) = compare(&[data("base").as_os_str(), d.as_os_str()]);
    assert!(
        stdout.contains(&format!(
            "NEW  {}: 4 run(s), 1 disturbed run(s) excluded: runs/4, 1 without a report: runs/6",
            d.display()
        )),
        "{stdout}"
    );
    // 5+4 runs: the smallest possible p is 2/126 > 0.01
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("needs at least 5 runs per side"),
        "{stdout}"
    );
    // at 0.95 it can judge again, without the disturbed run
    let (out, stdout, _) = compare(&[
        data("base").as_os_str(),
        d.as_os_str(),
        "--confidence".as_ref(),
        "0.95".as_ref(),
        "--figures".as_ref(),
        "hardirq_to_bh.p50".as_ref(),
        "--mechanisms".as_ref(),
        "bh_wq".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("5+4"), "{stdout}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_input_exits_2_naming_file_and_field() {
    let d = tmp("bad");
    copy_side("base", &d);
    let f = d.join("runs/2/report.json");
    let mut r = json(&f);
    r["mechanisms"][3]["raise_to_ack"]["summary"]["p99_ns"] = serde_json::json!("slow");
    std::fs::write(&f, r.to_string()).unwrap();
    let (out, _, stderr) = compare(&[d.as_os_str(), data("base").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&format!(
            "{}: field `mechanisms[3].raise_to_ack.summary.p99_ns`: expected a number",
            f.display()
        )),
        "{stderr}"
    );
    let (out, _, stderr) = compare(&["/nonexistent/x".as_ref(), data("base").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("/nonexistent/x: No such file"), "{stderr}");
    let (out, _, stderr) = compare(&[
        data("base").as_os_str(),
        data("base").as_os_str(),
        "--figures".as_ref(),
        "hardirq_to_bh.p42".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("unknown figure `hardirq_to_bh.p42`"),
        "{stderr}"
    );
    let (out, _, stderr) = compare(&[
        data("base").as_os_str(),
        data("base").as_os_str(),
        "--min-effect".as_ref(),
        "lots".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("minimum effect `lots`"), "{stderr}");
    std::fs::remove_dir_all(&d).unwrap();
}
