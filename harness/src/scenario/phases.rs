//! Running the phases of a scenario: host-driven sources over the control
//! socket, guest-driven ones through the guest's console, the settle after
//! each phase, and what each phase leaves (stats, dumps, ramp steps).

use std::path::Path;
use std::time::{Duration, Instant};

use irqstorm_protocol::client::Client;
use irqstorm_protocol::control::{Done, Request, Sources, StartReply, StatsReply, StopReply};
use irqstorm_report::model::{self, RampResult, RampStep};
use irqstorm_report::scenario::{DrivenBy, Phase, PhasePlan, Scenario, SourceStart};
use irqstorm_report::{input, render};

use super::guest_side::guest_start_line;
use super::guests::Guests;
use super::{per_device_name, RunError};
use crate::interference::{Probe, Sample};
use crate::progress::step;

/// What the phases collected.
pub struct Collected {
    /// The measured phase's `stats` reply (with buckets), per device.
    pub measured: Vec<String>,
    pub ramp: RampResult,
    /// Run-level notes (e.g. a device that did not settle).
    pub notes: Vec<String>,
    /// `/proc` at the start of the measured phase and after it settled
    /// (`None` when sampling failed; a note says why).
    pub interference: Option<(Sample, Sample)>,
}

/// Run every phase of `s` on devices `0..n`; the back end's `stats` replies
/// of the measured phase are also written to `dir`. `probe` samples host
/// interference around the measured phase (its start to its settled end,
/// the span the back end's counters cover).
pub fn run_phases(
    s: &Scenario,
    ctl: &mut Client,
    guests: &mut Guests,
    n: u32,
    dir: &Path,
    probe: &Probe,
    trace: bool,
) -> Result<Collected, RunError> {
    let total_ms = s.total_ms();
    let run_start = Instant::now();
    let mut out = Collected {
        measured: Vec::new(),
        ramp: RampResult::default(),
        notes: Vec::new(),
        interference: None,
    };
    let mut guest_starts = 0usize;
    for phase in s.plan() {
        let name = match phase.phase {
            Phase::Warmup => "warm-up".to_string(),
            Phase::Measure => "measure".to_string(),
            Phase::RampStep { index, rate_hz } => format!("ramp {index} ({rate_hz}/s)"),
        };
        if matches!(phase.phase, Phase::RampStep { .. }) {
            for d in 0..n {
                ctl.call::<Done>(&Request::ResetStats { device: Some(d) })?;
            }
        }
        let sample_start = (phase.phase == Phase::Measure).then(|| probe.sample());
        let pstart = Instant::now();
        guest_starts += run_sources(&phase, &name, ctl, guests, n, pstart, (run_start, total_ms))?;
        for d in 0..n {
            ctl.call::<StopReply>(&Request::Stop {
                device: Some(d),
                source: Some(Sources::All),
            })?;
        }
        if let Some(note) = settle(&name, ctl, guests, n)? {
            out.notes.push(note);
        }
        if let Some(a) = sample_start {
            match a.and_then(|a| Ok((a, probe.sample()?))) {
                Ok(pair) => out.interference = Some(pair),
                Err(e) => out
                    .notes
                    .push(format!("host interference not sampled: {e}")),
            }
        }
        match phase.phase {
            Phase::Warmup => {
                for d in 0..n {
                    ctl.call::<Done>(&Request::ResetStats { device: Some(d) })?;
                }
                guests.send_all("reset")?;
                guests.wait_all(
                    "IRQSTORM_SC_ACK reset",
                    Duration::from_secs(30),
                    "reset after warm-up",
                )?;
            }
            Phase::Measure => {
                // A calibration after the phase, before its stats: its miss
                // (if any) widens the bounds of the figures taken with the
                // one before (docs/clock-offset.md, "Fit and bound").
                guests.send_all("calibrate")?;
                guests.wait_all(
                    "IRQSTORM_SC_ACK calibrate",
                    Duration::from_secs(30),
                    "calibration after the measured phase",
                )?;
                for d in 0..n {
                    let text = stats_with_buckets(ctl, d)?;
                    let file = dir.join(per_device_name("backend-stats", "json", d, n));
                    std::fs::write(&file, &text).map_err(|source| RunError::Io {
                        what: format!("write {}", file.display()),
                        source,
                    })?;
                    out.measured.push(text);
                }
                step("measured phase done: guest(s) dump their tables");
                guests.send_all("dump")?;
                // A trace (--trace) adds megabytes of console output.
                let limit = if trace { 900 } else { 120 };
                guests.wait_all(
                    "IRQSTORM_SC_ACK dump",
                    Duration::from_secs(limit),
                    "debugfs dump",
                )?;
            }
            Phase::RampStep { rate_hz, .. } => {
                let stepr = ramp_step(s, ctl, n, rate_hz, pstart)?;
                let r = s.ramp.as_ref().expect("ramp phase without ramp");
                if !out.ramp.record(stepr, r) {
                    break;
                }
            }
        }
    }
    if guest_starts > 0 {
        log::info!("{guest_starts} guest-driven start(s)");
    }
    Ok(out)
}

/// Start the phase's sources (host-driven at once, guest-driven at their
/// delay) and let it run for its duration, printing progress each second.
/// Returns the number of guest-driven starts.
fn run_sources(
    phase: &PhasePlan,
    name: &str,
    ctl: &mut Client,
    guests: &mut Guests,
    n: u32,
    pstart: Instant,
    (run_start, total_ms): (Instant, u64),
) -> Result<usize, RunError> {
    let mut pending: Vec<(Duration, SourceStart)> = Vec::new();
    for st in &phase.starts {
        match st.driven_by {
            DrivenBy::Host => {
                for d in 0..n {
                    ctl.call::<Done>(&st.control_configure(d)?)?;
                    ctl.call::<StartReply>(&st.control_start(d))?;
                }
            }
            DrivenBy::Guest => {
                pending.push((Duration::from_millis(st.start_delay_ms), *st));
            }
        }
    }
    let mut guest_starts = 0;
    let dur = Duration::from_millis(phase.duration_ms);
    let mut next_progress = Instant::now();
    while pstart.elapsed() < dur {
        let mut i = 0;
        while i < pending.len() {
            if pstart.elapsed() >= pending[i].0 {
                let (_, st) = pending.remove(i);
                let (file, args) = guest_start_line(&st)?;
                guests.send_all(&format!("w {file} {args}"))?;
                guests.wait_all(
                    "IRQSTORM_SC_ACK w",
                    Duration::from_secs(20),
                    "guest-driven source start",
                )?;
                guest_starts += 1;
            } else {
                i += 1;
            }
        }
        if Instant::now() >= next_progress {
            let t = totals(ctl, n)?;
            eprintln!(
                "  {}",
                render::progress_line(
                    name,
                    run_start.elapsed().as_millis() as u64,
                    total_ms,
                    t[0],
                    t[1],
                    t[2]
                )
            );
            next_progress += Duration::from_secs(1);
        }
        guests.drain();
        let left = dur.saturating_sub(pstart.elapsed());
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    Ok(guest_starts)
}

/// Let the device and the guests settle after STOP: nothing pending on the
/// device and every record acked, or records/acks unchanged for 500 ms (acks
/// are batched by the driver, so acked < records can be final; the
/// conservation check compares the guest's own counters with the records
/// later). Returns a note when it did not settle within 10 s.
fn settle(
    name: &str,
    ctl: &mut Client,
    guests: &mut Guests,
    n: u32,
) -> Result<Option<String>, RunError> {
    let drain_end = Instant::now() + Duration::from_secs(10);
    let mut last = [u64::MAX; 5];
    let mut stable = 0;
    loop {
        let t = totals(ctl, n)?;
        if t[4] == 0 && t[3] == last[3] && t[2] == last[2] {
            stable += 1;
        } else {
            stable = 0;
        }
        last = t;
        if t[4] == 0 && (t[2] >= t[3] || stable >= 5) {
            return Ok(None);
        }
        if Instant::now() >= drain_end {
            let msg = format!(
                "{name}: 10 s after stop the device still had {} raise(s) pending and {} \
                 record(s) unacked (the guest was not consuming events); counters taken as they were",
                t[4],
                t[3].saturating_sub(t[2])
            );
            eprintln!("  warning: {msg}");
            return Ok(Some(msg));
        }
        guests.drain();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One ramp step's figures, summed over devices.
fn ramp_step(
    s: &Scenario,
    ctl: &mut Client,
    n: u32,
    rate_hz: u32,
    pstart: Instant,
) -> Result<RampStep, RunError> {
    let mut host = model::HostCounters::default();
    let mut p99: Option<u64> = None;
    for d in 0..n {
        let text = stats_with_buckets(ctl, d)?;
        let st = input::parse_backend_stats(&text)?;
        for row in st.rows(s, None)? {
            host.raised += row.host.raised;
            host.records += row.host.records;
            host.coalesced += row.host.coalesced;
            host.pending += row.host.pending;
            host.dropped += row.host.dropped;
            host.acked += row.host.acked;
            if let Some(x) = model::summary(&row.raise_to_ack) {
                p99 = Some(p99.unwrap_or(0).max(x.p99_ns));
            }
        }
    }
    let step = RampStep {
        rate_hz: u64::from(rate_hz) * u64::from(n),
        duration_ns: pstart.elapsed().as_nanos() as u64,
        host,
        raise_to_ack_p99_ns: p99,
    };
    eprintln!(
        "  ramp step {rate_hz}/s: raised {} coalesced {} pending {} dropped {}",
        host.raised, host.coalesced, host.pending, host.dropped
    );
    Ok(step)
}

/// Device `d`'s `stats` reply with buckets, the line as the back end wrote
/// it (saved verbatim; irqstorm-report reads it).
fn stats_with_buckets(ctl: &mut Client, d: u32) -> Result<String, RunError> {
    let req = Request::Stats {
        device: Some(d),
        buckets: Some(true),
    };
    Ok(ctl.send_line(&req.to_line(), req.cmd())?)
}

/// raised, coalesced, acked, records and pending, summed over devices `0..n`.
fn totals(ctl: &mut Client, n: u32) -> Result<[u64; 5], RunError> {
    let mut t = [0u64; 5];
    for d in 0..n {
        let r = ctl.call::<StatsReply>(&Request::Stats {
            device: Some(d),
            buckets: None,
        })?;
        let x = &r.stats.totals;
        for (sum, v) in t
            .iter_mut()
            .zip([x.raised, x.coalesced, x.acked, x.records, x.pending])
        {
            *sum += v;
        }
    }
    Ok(t)
}
