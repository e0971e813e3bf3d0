//! `cargo xtask run`: a scenario run (the runner is the harness's,
//! [`irqstorm_harness::scenario`]) with this lab's guest, QEMU arguments and
//! run directory; then the table and the report directory.

use crate::guest::{qemu_args, Accel, Device, Guest};
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
    /// Keep the guest's trace and the driver's events log (`--trace`).
    pub trace: bool,
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
    let args = |cmdline: &str, sock: &Path| {
        qemu_args(repo, g, o.accel, "stdio", cmdline, Some((o.device, sock))).map_err(Into::into)
    };
    Ok(runner::run(&RunSpec {
        scenario: o.scenario,
        dir,
        socket_count: o.socket_count,
        accel: accel_name(o.accel),
        timeout: o.timeout,
        echo: o.echo,
        trace: o.trace,
        backend: BackendOpts {
            binary: &o.device.backend,
            virtio_id: o.device.virtio_id,
            args: &o.device.backend_args,
        },
        guest: GuestOpts {
            qemu: &g.qemu.program,
            qemu_version: &g.qemu.version,
            kernel_key: &g.kernel_key,
            base_cmdline: crate::guest::BASE_CMDLINE,
            extra_cmdline: o.extra_cmdline,
            qemu_args: &args,
        },
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
