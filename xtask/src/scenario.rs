//! `cargo xtask run`: a scenario run (the runner is the harness's,
//! [`irqstorm_harness::scenario`]) with this lab's guest, QEMU arguments and
//! run directory; then the table and the report directory.

use crate::guest::{qemu_args, Accel, Device, Guest};
use crate::{Global, GuestOpts as CliGuestOpts, ScenarioOpts};
use anyhow::Result;
use irqstorm_harness::scenario::{self as runner, BackendOpts, GuestOpts, RunSpec};
use irqstorm_report::{gate, render};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use runner::{regate, Outcome};

pub struct Opts<'a> {
    pub scenario: &'a Path,
    pub report_dir: Option<PathBuf>,
    pub socket_count: u32,
    pub accel: Accel,
    pub timeout: Duration,
    pub echo: bool,
    pub device: &'a Device,
    /// Extra kernel command line, appended last (`--cmdline`).
    pub extra_cmdline: Option<&'a str>,
    /// Overrides `[gates] max_vcpu_wait_share` (`--max-vcpu-wait-share`).
    pub max_vcpu_wait_share: Option<f64>,
    /// Keep the guest's trace and the driver's events log (`--trace`).
    pub trace: bool,
    /// Run timerlat in the guest whatever the scenario says (`--timerlat`).
    pub timerlat: bool,
    /// Run the wake-up floor probe at this rate (`--wake-floor-hz`).
    pub wake_floor_hz: Option<u32>,
}

fn accel_name(a: Accel) -> &'static str {
    match a {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    }
}

/// Run the scenario, build, gate and collect the report.
pub fn run(repo: &Path, g: &Guest, o: &Opts) -> Result<Outcome> {
    let dir = match &o.report_dir {
        Some(d) => d.clone(),
        None => crate::guest::new_run_dir(repo)?,
    };
    let args = |cmdline: &str, sock: &Path, smp: u32| {
        qemu_args(
            repo,
            g,
            (o.accel, smp),
            "stdio",
            cmdline,
            Some((o.device, sock)),
        )
        .map_err(Into::into)
    };
    Ok(runner::run(&RunSpec {
        scenario: o.scenario,
        dir,
        socket_count: o.socket_count,
        accel: accel_name(o.accel),
        timeout: o.timeout,
        echo: o.echo,
        trace: o.trace,
        timerlat: o.timerlat,
        backend: BackendOpts {
            binary: &o.device.backend,
            virtio_id: o.device.virtio_id,
            args: &o.device.backend_args,
        },
        guest: GuestOpts {
            qemu: &g.qemu.program,
            qemu_version: &g.qemu.version,
            kernel_key: &g.kernel_key,
            kernel_variant: &g.kernel_variant,
            base_cmdline: crate::guest::BASE_CMDLINE,
            extra_cmdline: o.extra_cmdline,
            qemu_args: &args,
        },
        max_vcpu_wait_share: o.max_vcpu_wait_share,
        wake_floor_hz: o.wake_floor_hz,
    })?)
}

/// Print the table, write the report directory; returns the exit message
/// when checks failed.
pub fn report(out: &Outcome, console: Option<&Path>) -> Result<Option<String>> {
    print!("{}", render::table(&out.result));
    let written = render::write_report_dir(&out.dir, &out.result, console)?;
    eprintln!(
        "report: {} ({} files: report.json, junit.xml, summary.md, table.txt, SVG plots, console.log)",
        out.dir.display(),
        written.len()
    );
    Ok(gate::exit_message(&out.failures))
}

/// What every run of a scenario shares: built once (`--repeat` boots it N times).
pub struct Prepared {
    path: PathBuf,
    /// The scenario, loaded and validated.
    scenario: irqstorm_report::scenario::Scenario,
    guest: Guest,
    dev: Device,
    accel: Accel,
    /// `--cmdline` plus the `--module-param` words.
    cmdline: Option<String>,
}

impl Prepared {
    /// The back end binary every run starts.
    pub fn backend_path(&self) -> &Path {
        &self.dev.backend
    }

    /// The scenario every run runs.
    pub fn scenario(&self) -> &irqstorm_report::scenario::Scenario {
        &self.scenario
    }

    /// One run (a fresh back end and guest boot) into `report_dir`.
    pub fn run(
        &self,
        g: &Global,
        so: &ScenarioOpts,
        report_dir: Option<PathBuf>,
    ) -> Result<Outcome> {
        run(
            &crate::util::repo_root(),
            &self.guest,
            &Opts {
                scenario: &self.path,
                report_dir,
                socket_count: so.socket_count,
                accel: self.accel,
                timeout: Duration::from_secs(g.timeout),
                echo: g.verbose,
                device: &self.dev,
                extra_cmdline: self.cmdline.as_deref(),
                max_vcpu_wait_share: so.max_vcpu_wait_share,
                trace: so.trace,
                timerlat: so.timerlat,
                wake_floor_hz: so.wake_floor_hz,
            },
        )
    }
}

/// Validates the scenario and the module parameters, then builds
/// everything a scenario run needs.
pub fn prepare(g: &Global, o: &CliGuestOpts, so: &ScenarioOpts) -> Result<Prepared> {
    let repo = crate::util::repo_root();
    let path = if so.scenario.is_relative() && !so.scenario.exists() {
        repo.join(&so.scenario)
    } else {
        so.scenario.clone()
    };
    // Validate before building or booting anything.
    let scenario = irqstorm_report::scenario::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let params = module_param_words(&so.module_params)?;
    let cmdline = [o.cmdline.clone().unwrap_or_default(), params]
        .join(" ")
        .trim()
        .to_string();
    let guest = crate::prepare(g)?;
    let mut od = o.clone();
    od.device = true;
    let dev = crate::device(&od)?.expect("device mode");
    let accel = crate::guest::choose_accel(&repo, &crate::util::cache_root(), &guest, g.accel)?;
    Ok(Prepared {
        path,
        scenario,
        guest,
        dev,
        accel,
        cmdline: (!cmdline.is_empty()).then_some(cmdline),
    })
}

/// The kernel command line words of `--module-param NAME=VALUE`s:
/// `irqstorm.NAME=VALUE` each (tests/guest/lib/scenario.sh hands them to
/// insmod). A `*_mech` parameter given a mechanism name gets its id.
pub fn module_param_words(params: &[String]) -> Result<String> {
    let mut words = Vec::new();
    for p in params {
        let Some((name, value)) = p.split_once('=') else {
            anyhow::bail!("--module-param {p:?}: expected NAME=VALUE");
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            anyhow::bail!("--module-param {p:?}: NAME must be lower-case letters, digits and _");
        }
        if value.is_empty() || value.bytes().any(|b| b.is_ascii_whitespace() || b == b'"') {
            anyhow::bail!("--module-param {p:?}: VALUE must be one word");
        }
        let value = if name.ends_with("_mech") && value.parse::<i64>().is_err() {
            match irqstorm_report::model::mechanism_id(value) {
                Some(id) => id.to_string(),
                None => anyhow::bail!(
                    "--module-param {p:?}: unknown mechanism {value:?} (one of {})",
                    irqstorm_report::model::MECHANISMS.join(", ")
                ),
            }
        } else {
            value.to_string()
        };
        words.push(format!("irqstorm.{name}={value}"));
    }
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_params_become_cmdline_words() {
        let w =
            |v: &[&str]| module_param_words(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            w(&["inject_delay_us=20", "inject_delay_mech=bh_wq"]).unwrap(),
            "irqstorm.inject_delay_us=20 irqstorm.inject_delay_mech=4"
        );
        assert_eq!(
            w(&["inject_delay_mech=6"]).unwrap(),
            "irqstorm.inject_delay_mech=6"
        );
        assert_eq!(w(&[]).unwrap(), "");
        assert!(w(&["inject_delay_mech=bogus"])
            .unwrap_err()
            .to_string()
            .contains("unknown mechanism"));
        assert!(w(&["x"]).unwrap_err().to_string().contains("NAME=VALUE"));
        assert!(w(&["Bad=1"]).is_err());
        assert!(w(&["a=1 b=2"]).is_err());
    }
}
