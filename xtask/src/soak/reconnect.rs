//! `cargo xtask soak reconnect`: QEMU kill/reconnect cycles against one back
//! end. Each cycle boots a guest that storms itself (tests/guest/lib/soak.sh),
//! checks it received every event, SIGKILLs QEMU, waits for the back end to
//! see the front end go, and samples the back end's open fds and RSS. The
//! back end must stay flat (fds within +/-2 of the warm-up sample) and its
//! ledger exact: every cycle's raises delivered, none dropped.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use irqstorm_harness::boot::{self, Backend, BootSpec};
use irqstorm_protocol::client::{Client, DEFAULT_TIMEOUT};
use irqstorm_protocol::control::{InfoReply, Request};

use crate::conservation;
use crate::guest::{self, Accel, Device, Guest, BASE_CMDLINE};
use crate::util::{fmt_dur, step};

/// What to run.
pub struct Opts {
    /// Kill/reconnect cycles.
    pub cycles: u32,
    /// Events each cycle's guest must receive.
    pub events: u64,
    /// Their rate (events/s).
    pub rate_hz: u32,
}

/// Cycles before the fd/RSS baseline is taken (first connections allocate
/// what later ones reuse).
const WARMUP: u32 = 3;
/// Allowed fd drift after warm-up.
const FD_SLACK: i64 = 2;
/// Allowed RSS growth after warm-up (allocator noise, not a leak per cycle).
const RSS_SLACK_KIB: i64 = 2048;

/// Process figures of the back end.
#[derive(Debug, Clone, Copy)]
struct Sample {
    fds: i64,
    rss_kib: i64,
}

/// The back end's steady state: the fewest open fds (and the RSS then)
/// over a few samples 50 ms apart. Connections just closed (the control
/// client's, the killed QEMU's) take a moment to be closed on the back
/// end's side and only ever add fds, so a leak still shows: it raises the
/// minimum for good.
fn settled_sample(pid: u32) -> Result<Sample> {
    let mut best = sample(pid)?;
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(50));
        let s = sample(pid)?;
        if s.fds < best.fds {
            best = s;
        }
    }
    Ok(best)
}

fn sample(pid: u32) -> Result<Sample> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("back end pid {pid}: /proc/{pid}/fd"))?
        .count() as i64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/<pid>/status")?;
    Ok(Sample { fds, rss_kib })
}

/// `IRQSTORM_SOAK_GOT raises R records N seq_gap G bad B` -> (R, N, G, B).
fn parse_got(console: &str) -> Result<(u64, u64, u64, u64), String> {
    let line = console
        .lines()
        .find_map(|l| l.trim().strip_prefix("IRQSTORM_SOAK_GOT "))
        .ok_or("the guest printed no IRQSTORM_SOAK_GOT line")?;
    let w: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| -> Result<u64, String> {
        w.iter()
            .position(|x| *x == name)
            .and_then(|i| w.get(i + 1))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("guest: {line}"))
    };
    Ok((
        field("raises")?,
        field("records")?,
        field("seq_gap")?,
        field("bad")?,
    ))
}

fn connected(ctl: &Path) -> Result<bool> {
    let r: InfoReply =
        Client::connect(ctl, DEFAULT_TIMEOUT)?.call(&Request::Info { device: None })?;
    Ok(r.connected)
}

/// Runs the soak; `Ok(true)` when every check held.
pub fn run(repo: &Path, g: &Guest, accel: Accel, d: &Device, o: &Opts) -> Result<bool> {
    let dir = guest::new_run_dir(repo)?;
    let spec = d.backend_spec(&dir);
    let mut backend = Backend::start(&spec)?;
    let ctl = spec.control_socket_path();
    let cmdline = format!(
        "{BASE_CMDLINE} rdinit=/tests/lib/soak.sh irqstorm_soak_events={} irqstorm_soak_rate={}",
        o.events, o.rate_hz
    );
    let args = guest::qemu_args(
        repo,
        g,
        (accel, guest::DEFAULT_SMP),
        "stdio",
        &cmdline,
        Some((d, &spec.socket_path())),
    )?;
    step(&format!(
        "soak reconnect: {} cycles of boot, {} events at {}/s, SIGKILL of QEMU; run dir {}",
        o.cycles,
        o.events,
        o.rate_hz,
        dir.display()
    ));
    let t0 = Instant::now();
    let mut baseline = None;
    let (mut min, mut max) = (None::<Sample>, None::<Sample>);
    let mut failures = Vec::new();
    let start_totals = conservation::totals(&ctl).map_err(anyhow::Error::msg)?;
    let mut last = start_totals;
    for cycle in 1..=o.cycles {
        let console_log = dir.join("console.log");
        let r = boot::boot(&BootSpec {
            program: g.qemu.program.clone(),
            args: args.iter().map(Into::into).collect(),
            env: vec![],
            console_log: console_log.clone(),
            timeout: Duration::from_secs(120),
            stop_marker: Some("IRQSTORM_SOAK_GOT".into()),
            echo: false,
            on_line: None,
            watch: Some(backend.watch()),
        })?;
        if let Some(d) = &r.died {
            bail!("cycle {cycle}: {d}");
        }
        let mut cycle_fail = |what: String| {
            let keep = dir.join(format!("console-cycle-{cycle}.log"));
            let _ = std::fs::copy(&console_log, &keep);
            failures.push(format!(
                "cycle {cycle}: {what}; console: {}",
                keep.display()
            ));
        };
        match parse_got(&r.console) {
            Ok((raises, _, gaps, bad)) if raises == o.events && gaps == 0 && bad == 0 => {}
            Ok((raises, records, gaps, bad)) => cycle_fail(format!(
                "guest received {raises} of {} raises ({records} records), seq_gap {gaps}, bad {bad}",
                o.events
            )),
            Err(e) => cycle_fail(if r.timed_out {
                format!("{e} within 120 s")
            } else {
                e
            }),
        }
        let end = Instant::now() + Duration::from_secs(20);
        while connected(&ctl)? {
            if Instant::now() > end {
                bail!(
                    "cycle {cycle}: the back end still shows the killed QEMU connected after 20 s"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = conservation::totals(&ctl).map_err(anyhow::Error::msg)?;
        if let Err(e) = conservation::judge(&t) {
            cycle_fail(e);
        }
        let (raised, delivered, dropped) = (
            t.raised - last.raised,
            t.delivered - last.delivered,
            t.dropped_on_reset - last.dropped_on_reset,
        );
        if (raised, delivered, dropped) != (o.events, o.events, 0) {
            cycle_fail(format!(
                "back end: raised {raised}, delivered {delivered}, dropped_on_reset {dropped} this cycle (want {0}, {0}, 0)",
                o.events
            ));
        }
        last = t;
        let s = settled_sample(backend.pid())?;
        if cycle == WARMUP.min(o.cycles) {
            baseline = Some(s);
        }
        if cycle >= WARMUP.min(o.cycles) {
            min = Some(min.map_or(s, |m| Sample {
                fds: m.fds.min(s.fds),
                rss_kib: m.rss_kib.min(s.rss_kib),
            }));
            max = Some(max.map_or(s, |m| Sample {
                fds: m.fds.max(s.fds),
                rss_kib: m.rss_kib.max(s.rss_kib),
            }));
        }
        if cycle % 10 == 0 || cycle == o.cycles {
            let (lo, hi) = (min.unwrap_or(s), max.unwrap_or(s));
            eprintln!(
                "  cycle {cycle}/{}: back end fds {} ({}..{} since warm-up) RSS {} KiB ({}..{}); {} failed cycle(s); {} elapsed, {:.1} s/cycle",
                o.cycles,
                s.fds,
                lo.fds,
                hi.fds,
                s.rss_kib,
                lo.rss_kib,
                hi.rss_kib,
                failures.len(),
                fmt_dur(t0.elapsed()),
                t0.elapsed().as_secs_f64() / f64::from(cycle)
            );
        }
    }
    let (Some(b), Some(lo), Some(hi)) = (baseline, min, max) else {
        bail!("no cycles ran");
    };
    let total = conservation::totals(&ctl).map_err(anyhow::Error::msg)?;
    backend.stop();
    eprintln!(
        "  soak reconnect: {} cycles in {}; back end fds {} after warm-up (min {}, max {}), RSS {} KiB (min {}, max {})",
        o.cycles,
        fmt_dur(t0.elapsed()),
        b.fds,
        lo.fds,
        hi.fds,
        b.rss_kib,
        lo.rss_kib,
        hi.rss_kib
    );
    eprintln!(
        "  soak reconnect: raised {} delivered {} dropped_on_reset {} over the soak; {}",
        total.raised - start_totals.raised,
        total.delivered - start_totals.delivered,
        total.dropped_on_reset - start_totals.dropped_on_reset,
        conservation::judge(&total).unwrap_or_else(|e| e)
    );
    if hi.fds - b.fds > FD_SLACK || b.fds - lo.fds > FD_SLACK {
        failures.push(format!(
            "back end fds drifted: {} after warm-up, {}..{} later (allowed +/-{FD_SLACK})",
            b.fds, lo.fds, hi.fds
        ));
    }
    if hi.rss_kib - b.rss_kib > RSS_SLACK_KIB {
        failures.push(format!(
            "back end RSS grew: {} KiB after warm-up, up to {} KiB (allowed +{RSS_SLACK_KIB} KiB)",
            b.rss_kib, hi.rss_kib
        ));
    }
    for f in &failures {
        eprintln!("  FAIL: {f}");
    }
    Ok(failures.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn got_lines_parse_and_errors_are_named() {
        assert_eq!(
            parse_got("x\nIRQSTORM_SOAK_GOT raises 2000 records 600 seq_gap 0 bad 0\n"),
            Ok((2000, 600, 0, 0))
        );
        assert_eq!(
            parse_got("IRQSTORM_SOAK_GOT error insmod irqstorm.ko"),
            Err("guest: error insmod irqstorm.ko".into())
        );
        assert!(parse_got("booting").is_err());
    }
}
