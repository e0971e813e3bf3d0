//! `cargo xtask soak hotplug`: the hotplug soak of the harness
//! ([`irqstorm_harness::hotplug_soak`]) with this lab's guest, QEMU
//! arguments and run directory.

use std::path::{Path, PathBuf};

use anyhow::Result;
use irqstorm_harness::hotplug_soak::{self, Outcome, Spec};

use super::{print_run, with_soak_guest, GuestSetup};

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

/// Runs the hotplug soak and prints its failures (the cycles print as they go).
pub fn hotplug(repo: &Path, setup: &GuestSetup<'_>, o: &HotplugArgs) -> Result<Outcome> {
    let (dir, out) = with_soak_guest(repo, setup, (o.dir.as_ref(), "hotplug soak"), |guest| {
        hotplug_soak::run(&Spec {
            cycles: o.cycles,
            rate_hz: o.rate_hz,
            guest,
        })
    })?;
    print_run(&dir, &out.failures);
    Ok(out)
}
