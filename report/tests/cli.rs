//! The `irqstorm-report` command on fixture data shaped like the back end's
//! `stats` reply and the guest driver's debugfs tables.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_irqstorm-report"))
}

fn data(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(f)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("irqstorm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn validate_accepts_the_scenarios_and_rejects_bad_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let out = bin().arg("validate").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches(": OK (")
            .count(),
        files.len()
    );

    let bad = tmp("bad").with_extension("toml");
    std::fs::write(&bad, "name = \"x\"\nduration_ms = 10\nsurprise = 1\n").unwrap();
    let out = bin().arg("validate").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `surprise`"));
    std::fs::remove_file(&bad).unwrap();

    let out = bin().arg("bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn render_writes_the_report_and_gates() {
    let out_dir = tmp("render");
    let out = bin()
        .arg("render")
        .arg("--scenario")
        .arg(data("scenario.toml"))
        .arg("--stats")
        .arg(data("stats.json"))
        .arg("--summary")
        .arg(data("summary.txt"))
        .arg("--latency")
        .arg(data("latency.txt"))
        .arg("--ref-latency")
        .arg(data("ref-latency.txt"))
        .arg("--eventfd")
        .arg("50")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // bh_wq's raise->ack p99 (~250 us) breaks its 100 us limit
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("bh_wq: raise_to_ack.p99 = 250 us exceeds the limit 100 us (tcg)"),
        "{stderr}"
    );
    assert!(
        // + 2 skipped: one-way consistency, not measured (no PINGs, older stats)
        stdout.contains("checks: 4 passed, 1 failed, 2 skipped"),
        "{stdout}"
    );
    for f in [
        "report.json",
        "junit.xml",
        "summary.md",
        "table.txt",
        "cdf-raise_to_ack.svg",
        "hist-bh_wq.svg",
    ] {
        assert!(out_dir.join(f).is_file(), "{f}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    let rows = report["mechanisms"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["mechanism"], "tasklet");
    assert_eq!(rows[0]["guest"]["events"], 1000);
    // hardirq->bh from the back end (HDR) for tasklet, from the guest (log2) for bh_wq
    assert_eq!(rows[0]["hardirq_to_bh"]["summary"]["resolution"], "hdr");
    assert_eq!(
        rows[1]["hardirq_to_bh"]["summary"]["resolution"],
        "log2_upper_edge"
    );
    assert_eq!(rows[1]["hardirq_to_bh"]["summary"]["max_ns"], 5000);
    assert!(rows[0]["ratios"]["hardirq_to_bh_p99_vs_ref_hrtimer"].is_number());
    assert_eq!(report["baselines"]["host_eventfd"]["round_trips"], 50);
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("failures=\"1\""));

    // aggregate two copies: counters double, the same gate fails
    let agg_dir = tmp("aggregate");
    let rep = out_dir.join("report.json");
    let out = bin()
        .arg("aggregate")
        .arg("--scenario")
        .arg(data("scenario.toml"))
        .arg("--out")
        .arg(&agg_dir)
        .arg(&rep)
        .arg(&rep)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(agg_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(merged["mechanisms"][1]["host"]["raised"], 2200);
    assert_eq!(merged["per_device"].as_array().unwrap().len(), 4);

    // its KCIDB submission: the failed gate is a FAIL test, figures carry seconds
    let out = bin().arg("kcidb").arg(&out_dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tests = k["tests"].as_array().unwrap();
    let status_of = |suffix: &str| {
        tests
            .iter()
            .find(|t| t["path"].as_str().unwrap().ends_with(suffix))
            .map(|t| t["status"].as_str().unwrap().to_string())
    };
    assert_eq!(
        status_of(".bh_wq.gate.raise_to_ack_p99").as_deref(),
        Some("FAIL")
    );
    assert_eq!(
        status_of(".tasklet.raise_to_ack.p99").as_deref(),
        Some("DONE")
    );
    let empty = tmp("kcidb-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = bin().arg("kcidb").arg(&empty).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither report.json nor results.json"));
    std::fs::remove_dir_all(&empty).unwrap();

    // merge: the run and the aggregate side by side, against the run
    let merged_dir = tmp("merge");
    let out = bin()
        .arg("merge")
        .arg(format!("one={}", out_dir.display()))
        .arg(format!("two={}", agg_dir.display()))
        .arg("--baseline")
        .arg("one")
        .arg("--out")
        .arg(&merged_dir)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("merge of 2 reports") && table.contains("against baseline one"),
        "{table}"
    );
    for f in ["merge.json", "table.txt", "summary.md", "compare-two.txt"] {
        assert!(merged_dir.join(f).is_file(), "{f}");
    }
    // a second merge into the same directory is refused
    let again = bin()
        .arg("merge")
        .arg(&out_dir)
        .arg(&agg_dir)
        .arg("--out")
        .arg(&merged_dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    std::fs::remove_dir_all(&merged_dir).unwrap();
    std::fs::remove_dir_all(&out_dir).unwrap();
    std::fs::remove_dir_all(&agg_dir).unwrap();
}

#[test]
fn plan_prints_control_socket_requests() {
    let sc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/storm-ramp.toml");
    let out = bin()
        .arg("plan")
        .arg("--scenario")
        .arg(&sc)
        .arg("--device")
        .arg("3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let reqs: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(reqs.iter().all(|r| r["device"] == 3));
    let count = |cmd: &str| reqs.iter().filter(|r| r["cmd"] == cmd).count();
    // warm-up + measure run 3 sources each; 14 ramp steps run the 2 storm sources
    assert_eq!(count("configure"), 3 + 3 + 14 * 2);
    assert_eq!(count("start"), count("configure"));
    assert_eq!(count("stop"), 16);
    assert_eq!(count("reset_stats"), 1);
    assert!(text.contains("# source 2 is guest-driven"));
    assert!(text.contains("# ramp 14 @ "));
}
