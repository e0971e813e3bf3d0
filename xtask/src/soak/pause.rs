//! `cargo xtask soak pause`: the pause soak of the harness
//! ([`irqstorm_harness::pause_soak`]) with this lab's guest, QEMU arguments
//! and run directory.

use crate::guest::{qemu_args, Accel, Device, Guest};
use anyhow::{Context, Result};
use irqstorm_harness::pause_soak::{self, Outcome, Spec};
use irqstorm_harness::scenario::BackendOpts;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of the pause soak (`cargo xtask soak pause`).
#[derive(clap::Args, Clone, Debug)]
pub struct PauseArgs {
    /// QMP stop/cont cycles.
    #[arg(long, default_value_t = 100)]
    pub cycles: u32,
    /// Seed of the pause and run lengths.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Pause length range in ms, MIN-MAX (drawn uniformly per cycle).
    #[arg(long, default_value = "20-300", value_parser = parse_range)]
    pub pause_ms: RangeInclusive<u64>,
    /// Running time between pauses in ms, MIN-MAX.
    #[arg(long, default_value = "100-400", value_parser = parse_range)]
    pub run_ms: RangeInclusive<u64>,
    /// Storm rate of the guest's storm program (events/s).
    #[arg(long, default_value_t = 20_000)]
    pub storm_hz: u32,
    /// Period of the guest's periodic timer (us).
    #[arg(long, default_value_t = 1000)]
    pub timer_us: u64,
    /// Run directory (default: target/irqstorm/runs/<stamp>/).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl PauseArgs {
    /// The short version `cargo xtask test` runs.
    pub fn quick() -> Self {
        Self {
            cycles: 5,
            seed: 1,
            pause_ms: 20..=300,
            run_ms: 100..=400,
            storm_hz: 20_000,
            timer_us: 1000,
            dir: None,
        }
    }
}

/// "MIN-MAX" (ms) with MIN <= MAX.
fn parse_range(s: &str) -> Result<RangeInclusive<u64>, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}`: expected MIN-MAX, e.g. 20-300"))?;
    let p = |x: &str| {
        x.trim()
            .parse::<u64>()
            .map_err(|e| format!("`{s}`: `{x}`: {e}"))
    };
    let (a, b) = (p(a)?, p(b)?);
    if a > b {
        return Err(format!("`{s}`: MIN {a} is above MAX {b}"));
    }
    Ok(a..=b)
}

/// Runs the pause soak and prints its figures and failures.
#[allow(clippy::too_many_arguments)]
pub fn pause(
    repo: &Path,
    g: &Guest,
    accel: Accel,
    dev: &Device,
    o: &PauseArgs,
    timeout: Duration,
    echo: bool,
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
    let out = pause_soak::run(&Spec {
        cycles: o.cycles,
        seed: o.seed,
        pause_ms: o.pause_ms.clone(),
        run_ms: o.run_ms.clone(),
        storm_hz: o.storm_hz,
        timer_period_us: o.timer_us,
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
    .with_context(|| format!("pause soak (run directory {})", dir.display()))?;
    print!("{}", out.figures);
    println!(
        "  run directory: {} (console.log, backend.log, qemu-command.sh)",
        dir.display()
    );
    for f in &out.failures {
        println!("  FAIL: {f}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_or_say_why_not() {
        assert_eq!(parse_range("20-300"), Ok(20..=300));
        assert_eq!(parse_range("5-5"), Ok(5..=5));
        assert!(parse_range("300-20").unwrap_err().contains("above MAX"));
        assert!(parse_range("20").unwrap_err().contains("MIN-MAX"));
        assert!(parse_range("a-3").is_err());
    }
}
