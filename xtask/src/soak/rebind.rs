//! `cargo xtask soak rebind`: tests/guest/40-teardown.sh with many cycles:
//! unbind/bind and rmmod/insmod of the driver while the device storms the
//! guest, then the same checks as in `cargo xtask test` (no WARN/BUG/Oops,
//! the device works afterwards) and the back end's ledger.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::guest::{self, Accel, Device, Guest, RunOpts};

/// What to run.
pub struct Opts {
    /// Cycles of each kind.
    pub cycles: u32,
    /// Storm rate over the two storming sources (events/s).
    pub rate_hz: u32,
}

/// Runs the soak; `Ok(true)` when every check held.
pub fn run(repo: &Path, g: &Guest, accel: Accel, d: &Device, o: &Opts, echo: bool) -> Result<bool> {
    let cmdline = format!(
        "IRQSTORM_TEARDOWN_CYCLES={} IRQSTORM_TEARDOWN_RATE_HZ={}",
        o.cycles, o.rate_hz
    );
    // Generous: ~1 s per cycle pair under TCG on 2 shared cores, plus boot.
    let timeout = Duration::from_secs(300 + 3 * u64::from(o.cycles));
    let ev = guest::run_tests(
        repo,
        g,
        &RunOpts {
            accel,
            timeout,
            only: Some("40-teardown"),
            extra_cmdline: Some(&cmdline),
            device: Some(d),
            echo,
        },
    )?;
    Ok(ev.ok())
}
