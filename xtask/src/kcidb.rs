//! The KCIDB check of `cargo xtask test`: the submission `irqstorm-report
//! kcidb` writes for the real ci-quick run (and the guest scripts' KTAP
//! results) must be accepted by KernelCI's own validator, and a copy with
//! a required field removed rejected. The validator is PyPI's kcidb-io,
//! in a venv cached by its version.

use crate::util::{self, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kcidb-io release (its schema v5.3 is the one the report declares).
pub const KCIDB_IO_VERSION: &str = "141";

/// Validates the file named by argv[1] against kcidb-io's schema v5.3:
/// exit 0 valid, 3 invalid (the reason on stdout), anything else: the
/// validator itself failed.
const VALIDATE: &str = "\
import json, sys
import jsonschema
import kcidb_io.schema as s
try:
    s.V5_3.validate(json.load(open(sys.argv[1])))
except jsonschema.ValidationError as e:
    print(str(e).splitlines()[0])
    sys.exit(3)
";

/// The venv's python, made on first use.
pub fn validator() -> Result<PathBuf> {
    let dir = util::pip_venv(
        &format!("kcidb-io-{KCIDB_IO_VERSION}"),
        &format!("kcidb-io=={KCIDB_IO_VERSION}"),
    )?;
    Ok(dir.join("bin/python"))
}

/// `Ok(None)`: valid; `Ok(Some(reason))`: rejected.
pub fn validate(py: &Path, file: &Path) -> Result<Option<String>> {
    let out = Command::new(py)
        .args(["-c", VALIDATE])
        .arg(file)
        .output()
        .with_context(|| format!("cannot run {}", py.display()))?;
    match out.status.code() {
        Some(0) => Ok(None),
        Some(3) => Ok(Some(
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )),
        _ => bail!(
            "the validator failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// The check on a real report directory (`ktap`: a guest run's
/// results.json to add). Writes `kcidb.json` there. Returns (passed, failed).
pub fn check(dir: &Path, ktap: Option<&Path>) -> (usize, usize) {
    step("kcidb: the ci-quick submission against kcidb-io's validator");
    let r = (|| -> Result<(usize, String)> {
        let py = validator()?;
        let sub = irqstorm_report::kcidb::from_dir(
            dir,
            ktap,
            &irqstorm_report::kcidb::Options::default(),
        )?;
        let tests = sub["tests"].as_array().map_or(0, Vec::len);
        let file = dir.join("kcidb.json");
        std::fs::write(&file, serde_json::to_string_pretty(&sub)? + "\n")?;
        if let Some(why) = validate(&py, &file)? {
            bail!("{} rejected: {why}", file.display());
        }
        // A test without its required `origin` must be refused.
        let mut broken = sub.clone();
        if let Some(t) = broken["tests"].get_mut(0).and_then(|t| t.as_object_mut()) {
            t.remove("origin");
        }
        let bad = dir.join("kcidb-broken.json");
        std::fs::write(&bad, serde_json::to_string(&broken)?)?;
        let Some(why) = validate(&py, &bad)? else {
            bail!("{} (a test without `origin`) was accepted", bad.display());
        };
        Ok((tests, why))
    })();
    match r {
        Ok((n, why)) => {
            eprintln!(
                "  ok      kcidb: {n} tests accepted; a test without origin rejected ({why})"
            );
            (1, 0)
        }
        Err(e) => {
            eprintln!("  FAIL: kcidb: {e:#}");
            (0, 1)
        }
    }
}
