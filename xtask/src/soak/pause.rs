//! `cargo xtask soak pause`: the pause soak of the harness
//! ([`irqstorm_harness::pause_soak`]) with this lab's guest, QEMU arguments
//! and run directory.

use super::{print_run, with_soak_guest, GuestSetup};
use anyhow::Result;
use irqstorm_harness::pause_soak::{self, Outcome, Spec};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

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
pub fn pause(repo: &Path, setup: &GuestSetup<'_>, o: &PauseArgs) -> Result<Outcome> {
    let (dir, out) = with_soak_guest(repo, setup, (o.dir.as_ref(), "pause soak"), |guest| {
        pause_soak::run(&Spec {
            cycles: o.cycles,
            seed: o.seed,
            pause_ms: o.pause_ms.clone(),
            run_ms: o.run_ms.clone(),
            storm_hz: o.storm_hz,
            timer_period_us: o.timer_us,
            guest,
        })
    })?;
    print!("{}", out.figures);
    print_run(&dir, &out.failures);
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
