//! The pause soak (issue 10): N QMP `stop`/`cont` cycles of a guest whose
//! driver runs a storm and a periodic timer on the device, then the proof
//! that a pause is not a reset (docs/device-spec.md §5.5): zero events
//! dropped, the programs still running after every resume, conservation
//! exact, the guest's counters equal to the device's.
//!
//! The guest boots `rdinit=/tests/lib/scenario.sh` (the scenario runner's
//! guest side: debugfs writes on console commands); the programs are the
//! guest's own (`timer`, `storm`), so they live in the device's state that a
//! reset would wipe. Per cycle, with a pause and a run length drawn from
//! the seed: `stop`, the device's stats (no record may be written while the
//! VM is paused, the programs keep raising and latch), `cont`, the stats
//! again (the device counted a resume, no reset, nothing dropped, both
//! sources running), and records flowing again before the next pause.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use irqstorm_protocol::client::Client;
use irqstorm_protocol::control::{Request, StatsReply};
use irqstorm_protocol::stats::{SourceStats, Stats};
use irqstorm_protocol::wire::Mode;

use crate::boot::BackendSpec;
use crate::progress::step;
use crate::qmp::Qmp;
use crate::scenario::guests::Guests;
use crate::scenario::{console, READY};
use crate::soak_guest::{self, SoakGuest};

/// Source 0: the periodic timer (tasklet bottom half).
pub const TIMER_SOURCE: u16 = 0;
/// Source 1: the storm (threaded IRQ bottom half).
pub const STORM_SOURCE: u16 = 1;
/// vCPUs of the soak's guest.
const SOAK_SMP: u32 = 2;
/// How long the device may take to deliver what is latched, and a control
/// or QMP reply to come.
const SETTLE: Duration = Duration::from_secs(30);

pub use crate::soak_guest::SoakError;

/// One pause soak.
pub struct Spec<'a> {
    /// Stop/cont cycles.
    pub cycles: u32,
    /// Seed of the pause and run lengths.
    pub seed: u64,
    /// Length of a pause (ms), drawn uniformly.
    pub pause_ms: RangeInclusive<u64>,
    /// Running time between pauses (ms), drawn uniformly.
    pub run_ms: RangeInclusive<u64>,
    /// Storm rate (events/s, bursts of 1).
    pub storm_hz: u32,
    /// Timer period (us).
    pub timer_period_us: u64,
    pub guest: &'a SoakGuest<'a>,
}

/// The figures of a soak.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Cycles asked for.
    pub cycles: u32,
    /// Cycles done (all of them unless one failed).
    pub cycles_done: u32,
    /// Measured pauses (`stop` returned to `cont` sent).
    pub pauses: Vec<Duration>,
    /// Raises while the VM was paused (they latch on their sources).
    pub raised_in_pauses: u64,
    /// The device at the end.
    pub device: Option<Stats>,
    /// The device's resets and resumes before the first cycle.
    pub resets_before: u64,
    pub resumes_before: u64,
    /// The guest driver's counters at the end (`records`, `raises`,
    /// `latched`, `seq_gap`, `bad_total`).
    pub guest: Option<GuestCounters>,
}

/// The guest driver's debugfs `counters` that the soak compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestCounters {
    pub records: u64,
    pub raises: u64,
    pub latched: u64,
    pub seq_gap: u64,
    pub bad_total: u64,
}

impl GuestCounters {
    /// Parses the `counters` file ("name value" lines); `None` if a field
    /// is missing.
    pub fn parse(text: &str) -> Option<Self> {
        let get = |k: &str| {
            text.lines().find_map(|l| {
                let (n, v) = l.trim().split_once(' ')?;
                (n == k).then(|| v.trim().parse().ok()).flatten()
            })
        };
        Some(Self {
            records: get("records")?,
            raises: get("raises")?,
            latched: get("latched")?,
            seq_gap: get("seq_gap")?,
            bad_total: get("bad_total")?,
        })
    }
}

/// A soak's figures and the checks that failed (none: passed).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub figures: Figures,
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A small deterministic generator for the pause and run lengths
/// (splitmix64).
struct Lengths(u64);

impl Lengths {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn ms(&mut self, r: &RangeInclusive<u64>) -> Duration {
        let span = r.end().saturating_sub(*r.start()) + 1;
        Duration::from_millis(r.start() + self.next() % span)
    }
}

fn stats(ctl: &mut Client) -> Result<Stats, SoakError> {
    let r: StatsReply = ctl.call(&Request::Stats {
        device: None,
        buckets: None,
    })?;
    Ok(r.stats)
}

fn source(s: &Stats, i: u16) -> Result<&SourceStats, SoakError> {
    s.sources
        .get(usize::from(i))
        .ok_or_else(|| SoakError::Soak(format!("the device has no source {i}")))
}

/// Runs the soak: starts the back end and the guest, cycles, checks.
pub fn run(o: &Spec) -> Result<Outcome, SoakError> {
    o.guest.with_backend(2, |spec| with_backend(o, spec))
}

fn with_backend(o: &Spec, spec: &BackendSpec) -> Result<Outcome, SoakError> {
    let mut ctl = Client::connect(&spec.control_socket_path(), SETTLE)?;
    let args = o.guest.args(
        spec,
        &format!(
            "rdinit=/tests/lib/scenario.sh irqstorm_sc_src={TIMER_SOURCE}:tasklet:none:0:0,{STORM_SOURCE}:threaded:none:0:0 irqstorm_sc_ref=off irqstorm_sc_pings=0"
        ),
        SOAK_SMP,
    )?;
    let (mut guests, mut qmp) = o.guest.boot(spec, args, "", (READY, "boot and set-up"))?;
    let r = soak(o, &mut ctl, &mut guests, &mut qmp);
    // Leave the guest running whatever happened, so it can power off.
    if qmp.status().is_ok_and(|s| s == "paused") {
        let _ = qmp.cont();
    }
    let mut out = r?;
    soak_guest::finish(&mut guests, &mut out.failures)?;
    Ok(out)
}

/// Writes `args` to debugfs `file` through the guest script.
fn guest_write(g: &mut Guests, file: &str, args: &str) -> Result<(), SoakError> {
    g.send_all(&format!("w {file} {args}"))?;
    g.wait_all(
        "IRQSTORM_SC_ACK w",
        SETTLE,
        &format!("echo {args} > {file}"),
    )?;
    Ok(())
}

/// The guest driver's counters now.
fn guest_counters(g: &mut Guests) -> Result<GuestCounters, SoakError> {
    g.send_all("show counters")?;
    g.wait_all("IRQSTORM_SC_ACK show", SETTLE, "show counters")?;
    console::section(g.console(0), "counters")
        .as_deref()
        .and_then(GuestCounters::parse)
        .ok_or_else(|| SoakError::Soak("the guest's counters did not parse".into()))
}

fn soak(o: &Spec, ctl: &mut Client, g: &mut Guests, qmp: &mut Qmp) -> Result<Outcome, SoakError> {
    let mut out = Outcome::default();
    let f = &mut out.figures;
    f.cycles = o.cycles;
    guest_write(
        g,
        "timer",
        &format!("{TIMER_SOURCE} periodic {}", o.timer_period_us * 1000),
    )?;
    guest_write(g, "storm", &format!("{STORM_SOURCE} {} 1", o.storm_hz))?;
    // Both programs deliver before the first pause.
    let end = Instant::now() + SETTLE;
    let s0 = loop {
        let s = stats(ctl)?;
        if [TIMER_SOURCE, STORM_SOURCE]
            .iter()
            .all(|&i| source(&s, i).is_ok_and(|x| x.running && x.records > 0))
        {
            break s;
        }
        if Instant::now() > end {
            return Err(SoakError::Soak(format!(
                "the guest's programs did not start delivering within {}s",
                SETTLE.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    f.resets_before = s0.device.resets;
    f.resumes_before = s0.device.resumes;
    step(&format!(
        "pause soak: {} stop/cont cycles (pauses {}..={} ms, runs {}..={} ms, seed {})",
        o.cycles,
        o.pause_ms.start(),
        o.pause_ms.end(),
        o.run_ms.start(),
        o.run_ms.end(),
        o.seed
    ));
    let mut len = Lengths(o.seed);
    for i in 1..=o.cycles {
        let (pause, run) = (len.ms(&o.pause_ms), len.ms(&o.run_ms));
        if let Err(e) = cycle(i, pause, run, ctl, qmp, g, f) {
            out.failures.push(format!("cycle {i}: {e}"));
            break;
        }
        f.cycles_done = i;
        if i % 10 == 0 || i == o.cycles {
            eprintln!("  cycle {i}/{}: ok", o.cycles);
        }
    }
    finish(o, ctl, g, &mut out)?;
    Ok(out)
}

/// One stop/cont cycle; `Err` names the first check that failed.
fn cycle(
    i: u32,
    pause: Duration,
    run: Duration,
    ctl: &mut Client,
    qmp: &mut Qmp,
    g: &mut Guests,
    f: &mut Figures,
) -> Result<(), SoakError> {
    let fail = |m: String| Err(SoakError::Soak(m));
    qmp.stop()?;
    let t = Instant::now();
    let st = qmp.status()?;
    if st != "paused" {
        return fail(format!("QMP status after stop: {st}"));
    }
    // `stop` returns once QEMU stopped the vhost device (GET_VRING_BASE).
    let s1 = stats(ctl)?;
    std::thread::sleep(pause.saturating_sub(t.elapsed()));
    let s2 = stats(ctl)?;
    qmp.cont()?;
    f.pauses.push(t.elapsed());
    if s2.totals.records != s1.totals.records {
        return fail(format!(
            "{} record(s) written while the VM was paused",
            s2.totals.records - s1.totals.records
        ));
    }
    f.raised_in_pauses += s2.totals.raised - s1.totals.raised;
    let st = qmp.status()?;
    if st != "running" {
        return fail(format!("QMP status after cont: {st}"));
    }
    // The resume is judged as soon as QEMU restarted the rings, which it
    // did before `cont` returned.
    let s3 = stats(ctl)?;
    let d = &s3.device;
    if d.resets != f.resets_before {
        return fail(format!(
            "the device was reset ({} resets, {} before the soak)",
            d.resets, f.resets_before
        ));
    }
    if d.resumes != f.resumes_before + u64::from(i) {
        return fail(format!(
            "the device counted {} resumes, expected {}",
            d.resumes - f.resumes_before,
            i
        ));
    }
    if s3.totals.dropped_on_reset != 0 {
        return fail(format!("dropped_on_reset {}", s3.totals.dropped_on_reset));
    }
    for (src, mode) in [(TIMER_SOURCE, Mode::Periodic), (STORM_SOURCE, Mode::Storm)] {
        let x = source(&s3, src)?;
        if !x.running || x.mode != mode {
            return fail(format!(
                "source {src}: {} and {}after the resume (a {} program was running)",
                x.mode.name(),
                if x.running {
                    "running "
                } else {
                    "not running "
                },
                mode.name()
            ));
        }
    }
    if !s3.totals.conserved {
        return fail("conservation broken after the resume".into());
    }
    std::thread::sleep(run);
    g.drain();
    let s4 = stats(ctl)?;
    if s4.totals.records <= s3.totals.records {
        return fail(format!(
            "no record written in the {} ms after the resume",
            run.as_millis()
        ));
    }
    Ok(())
}

/// Stops the programs, waits for everything latched to be delivered, and
/// checks the end state of the device and of the guest.
fn finish(o: &Spec, ctl: &mut Client, g: &mut Guests, out: &mut Outcome) -> Result<(), SoakError> {
    guest_write(g, "timer", "stop all")?;
    guest_write(g, "storm", "stop all")?;
    let end = Instant::now() + SETTLE;
    let s = loop {
        let s = stats(ctl)?;
        let idle = s.sources.iter().all(|x| !x.running);
        if idle && s.totals.pending == 0 {
            break s;
        }
        if Instant::now() > end {
            out.failures.push(format!(
                "{} raise(s) still latched {}s after the programs stopped",
                s.totals.pending,
                SETTLE.as_secs()
            ));
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The guest has taken every record once its count matches the device's.
    let end = Instant::now() + SETTLE;
    let gc = loop {
        let gc = guest_counters(g)?;
        if gc.records == s.totals.records || Instant::now() > end {
            break gc;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let f = &mut out.figures;
    let t = &s.totals;
    let fails = &mut out.failures;
    if t.raised != t.records + t.coalesced + t.pending + t.dropped_on_reset || !t.conserved {
        fails.push(format!(
            "conservation: raised {} != records {} + coalesced {} + pending {} + dropped_on_reset {}",
            t.raised, t.records, t.coalesced, t.pending, t.dropped_on_reset
        ));
    }
    if t.dropped_on_reset != 0 {
        fails.push(format!("{} event(s) dropped", t.dropped_on_reset));
    }
    if s.device.resets != f.resets_before {
        fails.push(format!(
            "{} device reset(s) during the soak",
            s.device.resets - f.resets_before
        ));
    }
    if s.device.resumes != f.resumes_before + u64::from(f.cycles_done) {
        fails.push(format!(
            "{} resume(s) counted for {} cycle(s)",
            s.device.resumes - f.resumes_before,
            f.cycles_done
        ));
    }
    if gc.records != t.records || gc.raises != t.delivered {
        fails.push(format!(
            "guest received {} records / {} raises, the device delivered {} / {}",
            gc.records, gc.raises, t.records, t.delivered
        ));
    }
    if gc.seq_gap != 0 || gc.bad_total != 0 {
        fails.push(format!(
            "guest driver saw {} sequence gap(s), {} bad record(s)",
            gc.seq_gap, gc.bad_total
        ));
    }
    if f.cycles_done < o.cycles {
        fails.push(format!("{} of {} cycles done", f.cycles_done, o.cycles));
    }
    f.device = Some(s);
    f.guest = Some(gc);
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pause soak: {}/{} QMP stop/cont cycles",
            self.cycles_done, self.cycles
        )?;
        let mut p = self.pauses.clone();
        p.sort();
        if let (Some(min), Some(max)) = (p.first(), p.last()) {
            let total: Duration = p.iter().sum();
            writeln!(
                f,
                "  pauses: min {}, p50 {}, max {}, total {:.1} s",
                ms(*min),
                ms(p[p.len() / 2]),
                ms(*max),
                total.as_secs_f64()
            )?;
        }
        if let Some(s) = &self.device {
            let t = &s.totals;
            writeln!(
                f,
                "  device: raised {}, delivered {} ({} records + {} coalesced), pending {}, dropped_on_reset {}",
                t.raised, t.delivered, t.records, t.coalesced, t.pending, t.dropped_on_reset
            )?;
            let latched: u64 = s.sources.iter().map(|x| x.latched_records).sum();
            writeln!(
                f,
                "  latched: {} raises while paused; {} LATCHED records written",
                self.raised_in_pauses, latched
            )?;
            writeln!(
                f,
                "  device: {} resumes, {} resets during the soak; conserved {}",
                s.device.resumes - self.resumes_before,
                s.device.resets - self.resets_before,
                t.conserved
            )?;
            for x in &s.sources {
                writeln!(
                    f,
                    "  source {} ({}): raised {}, delivered {}, coalesced {}, LATCHED records {}, dropped {}",
                    x.source,
                    x.mode.name(),
                    x.raised,
                    x.delivered,
                    x.coalesced,
                    x.latched_records,
                    x.dropped_on_reset
                )?;
            }
        }
        if let Some(g) = &self.guest {
            writeln!(
                f,
                "  guest: {} records, {} raises, {} LATCHED, {} sequence gaps, {} bad records",
                g.records, g.raises, g.latched, g.seq_gap, g.bad_total
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_counters_parse_the_debugfs_file() {
        let text = "irqs 10\nrecords 7\nraises 12\nlatched 2\nfinals 0\nseq_gap 0\nbad_total 0\n";
        assert_eq!(
            GuestCounters::parse(text),
            Some(GuestCounters {
                records: 7,
                raises: 12,
                latched: 2,
                seq_gap: 0,
                bad_total: 0
            })
        );
        assert_eq!(GuestCounters::parse("records 7\n"), None);
    }

    #[test]
    fn lengths_stay_in_range_and_follow_the_seed() {
        let r = 20..=300;
        let a: Vec<Duration> = {
            let mut l = Lengths(7);
            (0..1000).map(|_| l.ms(&r)).collect()
        };
        assert!(a
            .iter()
            .all(|d| (20..=300).contains(&(d.as_millis() as u64))));
        assert!(a.iter().any(|d| d.as_millis() < 60) && a.iter().any(|d| d.as_millis() > 260));
        let mut l = Lengths(7);
        assert_eq!(l.ms(&r), a[0]);
        let mut l = Lengths(7);
        assert_eq!(l.ms(&(5..=5)), Duration::from_millis(5));
    }

    #[test]
    fn figures_print_what_was_measured() {
        let f = Figures {
            cycles: 3,
            cycles_done: 3,
            pauses: vec![
                Duration::from_millis(30),
                Duration::from_millis(10),
                Duration::from_millis(20),
            ],
            raised_in_pauses: 60,
            ..Default::default()
        };
        let s = f.to_string();
        assert!(
            s.starts_with("pause soak: 3/3 QMP stop/cont cycles\n"),
            "{s}"
        );
        assert!(
            s.contains("pauses: min 10 ms, p50 20 ms, max 30 ms, total 0.1 s"),
            "{s}"
        );
    }
}
