//! `cargo xtask soak ...`: long runs that print their figures (the short
//! versions run in `cargo xtask test`).

pub mod hotplug;
pub mod pause;
pub mod rebind;
pub mod reconnect;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use irqstorm_harness::scenario::BackendOpts;
use irqstorm_harness::soak_guest::SoakGuest;

use crate::guest::{qemu_args, Accel, Device, Guest};

/// Where and how a QMP soak boots its guest.
pub struct GuestSetup<'a> {
    pub guest: &'a Guest,
    pub accel: Accel,
    pub dev: &'a Device,
    /// Boot timeout and console echo.
    pub timeout: Duration,
    pub echo: bool,
    /// `--cmdline`.
    pub extra_cmdline: Option<&'a str>,
}

/// Hands `f` the soak's guest (this lab's QEMU arguments and kernel command line) in `dir`
/// (default: a new run directory); returns the directory and what `f` returned. `what` names
/// the soak in errors.
pub fn with_soak_guest<T, E>(
    repo: &Path,
    s: &GuestSetup<'_>,
    (dir, what): (Option<&PathBuf>, &str),
    f: impl FnOnce(&SoakGuest<'_>) -> std::result::Result<T, E>,
) -> Result<(PathBuf, T)>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let dir = match dir {
        Some(d) => d.clone(),
        None => crate::guest::new_run_dir(repo)?,
    };
    let args = |cmdline: &str, sock: &Path, smp: u32| {
        qemu_args(
            repo,
            s.guest,
            (s.accel, smp),
            "stdio",
            cmdline,
            Some((s.dev, sock)),
        )
        .map_err(Into::into)
    };
    let mut base = crate::guest::BASE_CMDLINE.to_string();
    if let Some(x) = s.extra_cmdline.filter(|x| !x.is_empty()) {
        base.push(' ');
        base.push_str(x);
    }
    let g = SoakGuest {
        dir: dir.clone(),
        boot_timeout: s.timeout,
        echo: s.echo,
        backend: BackendOpts {
            binary: &s.dev.backend,
            virtio_id: s.dev.virtio_id,
            args: &s.dev.backend_args,
        },
        qemu: &s.guest.qemu.program,
        base_cmdline: &base,
        qemu_args: &args,
    };
    let r = f(&g).with_context(|| format!("{what} (run directory {})", dir.display()))?;
    Ok((dir, r))
}

/// The lines after a soak's figures: its run directory and each failure.
pub fn print_run(dir: &Path, failures: &[String]) {
    println!(
        "  run directory: {} (console.log, backend.log, qemu-command.sh)",
        dir.display()
    );
    for f in failures {
        println!("  FAIL: {f}");
    }
}

/// The soaks.
#[derive(Subcommand, Clone)]
pub enum Soak {
    /// QEMU kill/reconnect cycles against one back end: every cycle's guest
    /// gets all its events; back end fds and RSS stay flat.
    Reconnect {
        /// Cycles.
        #[arg(long, default_value_t = 1000)]
        cycles: u32,
        /// Events per cycle.
        #[arg(long, default_value_t = 2000)]
        events: u64,
        /// Their rate (events/s).
        #[arg(long, default_value_t = 20_000)]
        rate_hz: u32,
    },
    /// QMP stop/cont cycles of a guest whose driver runs a storm and a
    /// periodic timer on the device: zero events dropped, the programs still
    /// running after every resume, conservation exact (docs/device-spec.md 5.5).
    Pause(pause::PauseArgs),
    /// Hot add/remove cycles of the device behind a PCIe root port (QMP
    /// chardev-add + device_add, device_del under a storm) in one boot:
    /// probe, uevents, no leftovers, the back end's ledger per cycle.
    Hotplug(hotplug::HotplugArgs),
    /// unbind/bind and rmmod/insmod cycles of the driver under a storm.
    Rebind {
        /// Cycles of each kind.
        #[arg(long, default_value_t = 1000)]
        cycles: u32,
        /// Storm rate (events/s, over two sources).
        #[arg(long, default_value_t = 100_000)]
        rate_hz: u32,
    },
}
