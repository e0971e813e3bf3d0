//! `cargo xtask soak hotplug`: the hotplug soak of the harness
//! ([`irqstorm_harness::hotplug_soak`]) with this lab's guest, QEMU
//! arguments and run directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use irqstorm_harness::hotplug_soak::{self, Outcome, Spec};
use irqstorm_harness::scenario::BackendOpts;

use crate::guest::{qemu_args, Accel, Device, Guest};

#[derive(clap::Args, Clone, Debug)]
pub struct HotplugArgs {
    /// Hot add/remove cycles in one boot.
    #[arg(long, default_value_t = 20)]
    pub cycles: u32,
    /// The storm the device is removed under (events/s).
    #[arg(long, default_value_t = 50_000)]
    pub rate_hz: u32,
    /// Run directory (default: a new one under target/irqstorm/runs/).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl HotplugArgs {
    /// What `cargo xtask test` runs: the 20 cycles under 50k/s.
    pub fn quick() -> Self {
        Self {
            cycles: 20,
            rate_hz: 50_000,
            dir: None,
        }
    }
}

pub fn hotplug(
    repo: &Path,
    (g, accel, dev): (&Guest, Accel, &Device),
    o: &HotplugArgs,
    (timeout, echo): (Duration, bool),
    extra_cmdline: Option<&str>,
) -> Result<Outcome> {
    let dir = match &o.dir {
        Some(d) => d.clone(),
        None => crate::guest::new_run_dir(repo)?,
    };
    let args = |cmdline: &str, sock: &Path, smp: u32| {
        qemu_args(repo, g, (accel, smp), "stdio", cmdline, Some((dev, sock))).map_err(Into::into)
    };
    let mut base = crate::guest::BASE_CMDLINE.to_string();
    if let Some(x) = extra_cmdline.filter(|x| !x.is_empty()) {
        base.push(' ');
        base.push_str(x);
    }
    let out = hotplug_soak::run(&Spec {
        cycles: o.cycles,
        rate_hz: o.rate_hz,
        dir: dir.clone(),
        boot_timeout: timeout,
        echo,
        backend: BackendOpts {
            binary: &dev.backend,
            virtio_id: dev.virtio_id,
            args: &dev.backend_args,
        },
        qemu: &g.qemu.program,
        base_cmdline: &base,
        qemu_args: &args,
    })
    .with_context(|| format!("hotplug soak (run directory {})", dir.display()))?;
    println!(
        "  run directory: {} (console.log, backend.log, qemu-command.sh)",
        dir.display()
    );
    for f in &out.failures {
        println!("  FAIL: {f}");
    }
    Ok(out)
}
