//! What the QMP soaks (`pause_soak`, `hotplug_soak`) share: a back end for the run directory,
//! one guest with its QEMU command kept and a QMP socket, and the end (power off, the console
//! scanned for kernel problems).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::args::shell_quote;
use crate::boot::{self, Backend, BackendSpec, BootError};
use crate::qmp::{self, Qmp, QmpError};
use crate::scenario::guests::Guests;
use crate::scenario::{BackendOpts, QemuArgs, RunError};

/// How long QEMU may take to open its QMP socket and answer.
const QMP_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors that end a soak before its checks.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error(transparent)]
    Control(#[from] irqstorm_protocol::client::Error),
    #[error("{0}")]
    Soak(String),
}

/// The guest of a soak.
pub struct SoakGuest<'a> {
    /// Run directory (logs, sockets, QEMU command).
    pub dir: PathBuf,
    /// Boot and set-up limit of the guest.
    pub boot_timeout: Duration,
    /// Echo the guest console.
    pub echo: bool,
    pub backend: BackendOpts<'a>,
    /// QEMU binary or launcher.
    pub qemu: &'a Path,
    /// The kernel command line before the guest script's words.
    pub base_cmdline: &'a str,
    /// Device-mode QEMU arguments (qemu-config/irqstorm.args).
    pub qemu_args: &'a QemuArgs<'a>,
}

impl SoakGuest<'_> {
    /// Runs `soak` with a back end of `num_sources` sources started in the run directory,
    /// stopped afterwards whatever the soak returned.
    pub fn with_backend<T>(
        &self,
        num_sources: u16,
        soak: impl FnOnce(&BackendSpec) -> Result<T, SoakError>,
    ) -> Result<T, SoakError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| RunError::Io {
            what: format!("create {}", self.dir.display()),
            source,
        })?;
        let spec = self.backend.spec(&self.dir, num_sources, &[]);
        let mut backend = Backend::start(&spec)?;
        let r = soak(&spec);
        backend.stop();
        r
    }

    /// The QEMU arguments of `smp` vCPUs with the device, `words` after the base command line.
    pub fn args(&self, spec: &BackendSpec, words: &str, smp: u32) -> Result<Vec<String>, RunError> {
        let cmdline = format!("{} {words}", self.base_cmdline);
        (self.qemu_args)(&cmdline, &spec.socket_path(), smp).map_err(RunError::QemuArgs)
    }

    /// Boots `args` plus a QMP socket (qemu-command.sh keeps the command, `comment` lines
    /// before it), waits for the console line `ready` (`what` names the wait) and connects QMP.
    pub fn boot(
        &self,
        spec: &BackendSpec,
        mut args: Vec<String>,
        comment: &str,
        (ready, what): (&str, &str),
    ) -> Result<(Guests, Qmp), SoakError> {
        let qmp_path = spec.dir.join("qmp.sock");
        args.extend(qmp::qemu_args(&qmp_path));
        let cmd_file = self.dir.join("qemu-command.sh");
        std::fs::write(
            &cmd_file,
            format!(
                "#!/bin/sh\n{comment}exec {} {}\n",
                shell_quote(&[self.qemu.display().to_string()]),
                shell_quote(&args)
            ),
        )
        .map_err(|source| RunError::Io {
            what: format!("write {}", cmd_file.display()),
            source,
        })?;
        let console_log = self.dir.join("console.log");
        let mut guests = Guests::spawn(self.qemu, vec![args], &[console_log], self.echo)?;
        guests.wait_all(ready, self.boot_timeout, what)?;
        let qmp = Qmp::connect(&qmp_path, QMP_TIMEOUT)?;
        Ok((guests, qmp))
    }
}

/// Powers the guest off (`done`) and adds what its console shows of kernel problems to
/// `failures`.
pub fn finish(guests: &mut Guests, failures: &mut Vec<String>) -> Result<(), SoakError> {
    guests.send_all("done")?;
    guests.finish(Duration::from_secs(60));
    let crashes = boot::scan_crashes(guests.console(0));
    if let Some(first) = crashes.first() {
        failures.push(format!(
            "guest kernel: {} problem line(s) on the console, first: {first}",
            crashes.len()
        ));
    }
    Ok(())
}
