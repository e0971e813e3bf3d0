//! Scenario files (`tests/scenarios/*.toml`, format in `docs/scenarios.md`):
//! parsing and full validation against the device contract
//! (`docs/device-spec.md` §4, §5, §6.1.2, §6.5).
//!
//! [`load`] reads and validates a file; [`parse`] does the same for a
//! string. Unknown keys are rejected; every problem found is reported with
//! the file and the field path (`sources[3].program.period_us: ...`).
//!
//! - [`schema`]: the file's types, their defaults and derived figures.
//! - [`validate`]: every check against the device contract.
//! - [`threshold`]: the threshold grammar (figures, limits, baselines).
//! - [`plan`]: the run as phases.
//! - [`control`]: the back end's host control socket views (spec §9).

use std::fmt;
use std::path::Path;

pub mod control;
pub mod plan;
pub mod schema;
pub mod threshold;
pub mod validate;

pub use control::{ConfigureBody, ConfigureBodyExt};
pub use plan::{Phase, PhasePlan, SourceStart};
pub use schema::{
    AccelRequirement, DeviceLimits, DrivenBy, Gates, Guest, Jitter, Mode, Moderation, Program,
    Ramp, Reference, Scenario, Source, TimeBase, Timerlat, Work, WorkKind, CALIBRATE_EVERY_MS,
    DEFAULT_MAX_BURST, DEFAULT_MAX_RATE_HZ, DEFAULT_MAX_VCPU_WAIT_SHARE, DEFAULT_MIN_PERIOD_NS,
    DEFAULT_NUM_SOURCES, MAX_PERIOD_US, MAX_RAMP_STEPS, MAX_WORK_US, TIMERLAT_PERIOD_US,
};
pub use threshold::{
    baseline_metric, parse_duration_ns, threshold_spec, Baseline, Figure, FigureKind, Limit,
    LimitSpec, LimitValue, Metric, Stat, Threshold, ThresholdSpec, ACCEL_KEYS, SCALAR_FIGURES,
};

/// Errors of scenario loading.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: invalid scenario:\n{}", list(.problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

fn list(p: &[Problem]) -> String {
    p.iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ScenarioError {
    /// The validation problems (empty for I/O and syntax errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ScenarioError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// One validation problem: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Parse and validate scenario text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
    let sc: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
        path: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    sc.validate().map_err(|problems| ScenarioError::Invalid {
        path: origin.to_string(),
        problems,
    })?;
    Ok(sc)
}

/// Read, parse and validate a scenario file.
pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: shown.clone(),
        source,
    })?;
    parse(&text, &shown)
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::parse;

    /// The smallest valid scenario: one periodic tasklet source.
    pub const MINIMAL: &str = r#"
name = "t"
duration_ms = 1000

[[sources]]
id = 0
mechanism = "tasklet"
program = { mode = "periodic", period_us = 1000 }
"#;

    /// Every problem `text` has, one line each (empty when it is valid).
    pub fn problems(text: &str) -> Vec<String> {
        match parse(text, "x.toml") {
            Ok(_) => Vec::new(),
            Err(e) => {
                let s = e.to_string();
                assert!(s.starts_with("x.toml: "), "{s}");
                if e.problems().is_empty() {
                    vec![s]
                } else {
                    e.problems().iter().map(|p| p.to_string()).collect()
                }
            }
        }
    }

    /// [`MINIMAL`] followed by `extra`.
    pub fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{problems, with, MINIMAL};
    use super::*;
    use crate::model::MECHANISMS;
    use std::collections::BTreeSet;

    #[test]
    fn minimal_parses_with_defaults() {
        let s = parse(MINIMAL, "m").unwrap();
        assert_eq!(s.guest.smp, 2);
        assert_eq!(s.device.num_sources, 8);
        assert!(s.reference.enabled);
        assert_eq!(s.reference_mechanisms(), vec!["tasklet".to_string()]);
        let b = s.sources[0].configure_body();
        assert_eq!(
            (b.mode, b.period_ns, b.burst, b.rate_hz),
            (2, 1_000_000, 0, 0)
        );
        assert_eq!(s.total_ms(), 1000);
    }

    #[test]
    fn every_scenario_file_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) == Some("toml") {
                let s = load(&p).unwrap_or_else(|e| panic!("{e}"));
                assert!(!s.description.is_empty(), "{}: no description", p.display());
                n += 1;
            }
        }
        assert!(n >= 4, "found {n} scenario files");
    }

    #[test]
    fn docs_example_validates() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenarios.md"),
        )
        .unwrap();
        let start = doc
            .find("## Example\n\n```toml\n")
            .expect("example section")
            + "## Example\n\n```toml\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let s = parse(&doc[start..end], "docs/scenarios.md").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.threshold_specs().len(), 3);
    }

    #[test]
    fn default_scenario_covers_every_mechanism_with_timer_and_storm() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let s = load(dir.join("default.toml")).unwrap();
        for m in MECHANISMS {
            let modes: BTreeSet<_> = s
                .sources
                .iter()
                .filter(|x| x.mechanism == m)
                .map(|x| format!("{:?}", x.program.mode))
                .collect();
            assert!(
                modes.contains("Periodic") && modes.contains("Storm"),
                "{m}: {modes:?}"
            );
        }
        assert!(s.total_ms() < 60_000, "{} ms of guest time", s.total_ms());
        let q = load(dir.join("ci-quick.toml")).unwrap();
        assert!(q.total_ms() <= 15_000);
        let r = load(dir.join("storm-ramp.toml")).unwrap();
        assert!(r.ramp.is_some() && !r.ramp_sources().is_empty());
    }

    #[test]
    fn unknown_keys_rejected_with_location() {
        let e = problems(&with("bogus = 1\n"));
        assert!(e[0].contains("unknown field `bogus`"), "{e:?}");
        let e = problems(&MINIMAL.replace("period_us = 1000", "period_us = 1000, perid = 3"));
        assert!(e[0].contains("unknown field `perid`"), "{e:?}");
        let e = problems(&MINIMAL.replace("\"periodic\"", "\"burst\""));
        assert!(e[0].contains("unknown variant `burst`"), "{e:?}");
    }

    #[test]
    fn io_and_syntax_errors_name_the_file() {
        let e = load("/nonexistent/x.toml").unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/x.toml: cannot read"), "{e}");
        let e = parse("name = \n", "f.toml").unwrap_err().to_string();
        assert!(e.starts_with("f.toml: TOML parse error at line 1"), "{e}");
    }
}
