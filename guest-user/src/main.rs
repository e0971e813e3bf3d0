//! irqstorm-wait: the guest's user-space bottom half (mechanism `user`).
//!
//! Waits on `/dev/irqstormN` (`poll()` then `read()`, or a blocking
//! `read()`), stamps each wake-up (CLOCK_MONOTONIC and TSC, the driver's
//! timeline) and acks every record with `write()`; the driver forwards the
//! stamps to the device, so the host's report shows hard IRQ -> user
//! wake-up as mechanism `user`, beside the kernel's bottom halves. ioctls
//! set mechanisms and program timers and storms. Runs optionally at
//! SCHED_FIFO, like cyclictest's and `rtla timerlat -u`'s threads.

mod dev;
mod sched;
mod selftest;
mod stamp;

use clap::{Parser, ValueEnum};
use dev::Dev;
use irqstorm_protocol::{
    mechanisms::MECHANISMS,
    uapi::{
        UserAck, UserEvent, UserProgram, USER_ACK_SIZE, USER_EVENT_SIZE, USER_F_FIRST,
        USER_MODE_ONESHOT, USER_MODE_PERIODIC, USER_MODE_STORM,
    },
};
use stamp::Stamp;
use std::{path::PathBuf, process::ExitCode, sync::atomic::Ordering, time::Duration};
use thiserror::Error;

#[derive(Debug, Error)]
enum Error {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Arg(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |e| Error::Io(what, e)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Wait {
    /// poll() for POLLIN, then read().
    Poll,
    /// A blocking read().
    Read,
}

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The character device.
    #[arg(long, default_value = "/dev/irqstorm0")]
    dev: PathBuf,
    /// How the thread waits.
    #[arg(long, value_enum, default_value = "poll")]
    wait: Wait,
    /// Run at SCHED_FIFO with this priority (1..=99).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=99))]
    fifo: Option<i32>,
    /// Pin the thread to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// SRC:MECH (name or id) before waiting; repeatable.
    #[arg(long = "set-mech", value_name = "SRC:MECH")]
    set_mech: Vec<String>,
    /// SRC:PERIOD_NS:COUNT, a periodic timer started before waiting.
    #[arg(long, value_name = "SRC:PERIOD_NS:COUNT")]
    periodic: Vec<String>,
    /// SRC:DELAY_NS, a one-shot timer.
    #[arg(long, value_name = "SRC:DELAY_NS")]
    oneshot: Vec<String>,
    /// SRC:RATE_HZ:BURST:DURATION_MS, a storm.
    #[arg(long, value_name = "SRC:RATE_HZ:BURST:DURATION_MS")]
    storm: Vec<String>,
    /// Stop after this many records (0: no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Stop after this long (0: no limit; one of --count, --duration-ms or
    /// the device going away ends the run).
    #[arg(long = "duration-ms", default_value_t = 0)]
    duration_ms: u64,
    /// Stop every source when done.
    #[arg(long = "stop-all")]
    stop_all: bool,
    /// Bad-argument checks on every entry point (KTAP lines), then exit.
    #[arg(long)]
    selftest: bool,
}

fn num<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, Error> {
    s.parse()
        .map_err(|_| Error::Arg(format!("{what}: `{s}` is not a number")))
}

fn fields<'a>(opt: &str, v: &'a str, n: usize) -> Result<Vec<&'a str>, Error> {
    let f: Vec<&str> = v.split(':').collect();
    if f.len() != n {
        return Err(Error::Arg(format!(
            "--{opt} {v}: want {n} fields separated by ':'"
        )));
    }
    Ok(f)
}

fn mechanism_id(name: &str) -> Result<u16, Error> {
    if let Ok(id) = name.parse::<u16>() {
        return Ok(id);
    }
    MECHANISMS
        .iter()
        .position(|m| m.name == name)
        .map(|i| i as u16)
        .ok_or_else(|| Error::Arg(format!("no mechanism `{name}`")))
}

/// The programs the command line asks for.
fn programs(a: &Args) -> Result<Vec<UserProgram>, Error> {
    let mut v = Vec::new();
    for p in &a.periodic {
        let f = fields("periodic", p, 3)?;
        v.push(UserProgram {
            source: num("source", f[0])?,
            mode: USER_MODE_PERIODIC,
            period_ns: num("period", f[1])?,
            count: num("count", f[2])?,
            ..Default::default()
        });
    }
    for p in &a.oneshot {
        let f = fields("oneshot", p, 2)?;
        v.push(UserProgram {
            source: num("source", f[0])?,
            mode: USER_MODE_ONESHOT,
            period_ns: num("delay", f[1])?,
            count: 1,
            ..Default::default()
        });
    }
    for p in &a.storm {
        let f = fields("storm", p, 4)?;
        v.push(UserProgram {
            source: num("source", f[0])?,
            mode: USER_MODE_STORM,
            rate_hz: num("rate", f[1])?,
            burst: num("burst", f[2])?,
            duration_ns: num::<u64>("duration", f[3])? * 1_000_000,
            ..Default::default()
        });
    }
    Ok(v)
}

/// Latencies seen by this thread (exact: every sample is kept).
#[derive(Default)]
struct Seen {
    /// hard IRQ -> user wake-up (ns), FIRST records only (per wake-up).
    irq_to_user: Vec<u64>,
    /// The kernel's read() taking the record -> user wake-up (ns).
    kernel_to_user: Vec<u64>,
    records: u64,
    first: u64,
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i] as f64 / 1000.0
}

fn summary(s: &mut Seen, policy: &str) -> String {
    let (a50, a99, amax) = (
        pct(&mut s.irq_to_user, 0.5),
        pct(&mut s.irq_to_user, 0.99),
        pct(&mut s.irq_to_user, 1.0),
    );
    let (k50, k99) = (
        pct(&mut s.kernel_to_user, 0.5),
        pct(&mut s.kernel_to_user, 0.99),
    );
    format!(
        "irqstorm-wait: records {} first {} policy {policy} hardirq_to_user_us p50 {a50:.1} p99 {a99:.1} max {amax:.1} read_to_user_us p50 {k50:.1} p99 {k99:.1}",
        s.records, s.first
    )
}

/// One wake-up: read what is there, stamp, ack it all. Returns the records,
/// or `None` once the device went away (unbound: ENODEV).
fn serve(dev: &mut Dev, buf: &mut [u8], seen: &mut Seen) -> Result<Option<usize>, Error> {
    let n = match dev.read(buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Some(0)),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(Some(0)),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
        Err(e) => return Err(Error::Io("read".into(), e)),
    };
    // First thing after the read returns: the user-space wake-up.
    let woke = Stamp::now();
    let cpu = stamp::cpu();
    let mut acks = Vec::with_capacity(n / USER_EVENT_SIZE * USER_ACK_SIZE);
    for rec in buf[..n].chunks_exact(USER_EVENT_SIZE) {
        let Some(ev) = UserEvent::decode(rec) else {
            continue;
        };
        if ev.flags & USER_F_FIRST != 0 {
            seen.first += 1;
            seen.irq_to_user.push(woke.ns.saturating_sub(ev.hardirq_ns));
        }
        seen.kernel_to_user
            .push(woke.ns.saturating_sub(ev.handed_ns));
        let done = Stamp::now();
        acks.extend_from_slice(
            &UserAck {
                seq: ev.seq,
                woke_ns: woke.ns,
                woke_tsc: woke.tsc,
                done_ns: done.ns,
                done_tsc: done.tsc,
                cpu,
            }
            .encode(),
        );
    }
    let recs = n / USER_EVENT_SIZE;
    seen.records += recs as u64;
    match dev.write(&acks) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
        r => r.map_err(io("write (acks)"))?,
    };
    Ok(Some(recs))
}

fn run(a: &Args) -> Result<bool, Error> {
    let mut dev = Dev::open(&a.dev, false).map_err(io(a.dev.display().to_string()))?;
    let info = dev.info().map_err(io("INFO ioctl"))?;
    if a.selftest {
        let failed = selftest::run(&mut dev, &a.dev, info.num_sources);
        return Ok(failed == 0);
    }
    sched::stop_on_signals().map_err(io("sigaction"))?;
    if let Some(c) = a.cpu {
        sched::pin(c).map_err(io(format!("pin to CPU {c}")))?;
    }
    if let Some(p) = a.fifo {
        sched::set_fifo(p).map_err(io(format!("SCHED_FIFO {p}")))?;
    }
    for m in &a.set_mech {
        let f = fields("set-mech", m, 2)?;
        dev.set_mech(num("source", f[0])?, mechanism_id(f[1])?)
            .map_err(io(format!("SET_MECH {m}")))?;
    }
    for p in programs(a)? {
        dev.program(&p)
            .map_err(io(format!("PROGRAM source {}", p.source)))?;
    }
    let policy = sched::describe();
    let deadline = (a.duration_ms > 0)
        .then(|| std::time::Instant::now() + Duration::from_millis(a.duration_ms));
    let mut buf = vec![0u8; 16 * USER_EVENT_SIZE];
    let mut seen = Seen::default();
    let mut gone = false;
    loop {
        if (a.count > 0 && seen.records >= a.count) || sched::STOP.load(Ordering::Relaxed) {
            break;
        }
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left == Some(Duration::ZERO) {
            break;
        }
        if a.wait == Wait::Poll {
            let ms = left.map_or(1000, |l| l.as_millis().clamp(1, 1000) as i32);
            let rev = match dev.poll(ms) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.map_err(io("poll"))?,
            };
            if rev & (libc::POLLHUP | libc::POLLERR) != 0 {
                gone = true;
                break;
            }
            if rev & libc::POLLIN == 0 {
                continue;
            }
        }
        if serve(&mut dev, &mut buf, &mut seen)?.is_none() {
            gone = true;
            break;
        }
    }
    if gone {
        println!("irqstorm-wait: the device went away");
    } else if a.stop_all {
        dev.stop(0xffff).map_err(io("STOP ioctl"))?;
    }
    println!("{}", summary(&mut seen, &policy));
    Ok(true)
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("irqstorm-wait: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v = vec![5000, 1000, 3000, 2000, 4000];
        assert_eq!(pct(&mut v, 0.5), 3.0);
        assert_eq!(pct(&mut v, 1.0), 5.0);
        assert_eq!(pct(&mut v, 0.0), 1.0);
        assert_eq!(pct(&mut [], 0.5), 0.0);
    }

    #[test]
    fn command_line_programs_are_parsed_and_checked() {
        let a = Args::parse_from([
            "irqstorm-wait",
            "--periodic",
            "2:1000000:50",
            "--storm",
            "1:10000:4:200",
        ]);
        let p = programs(&a).unwrap();
        assert_eq!(
            (p[0].source, p[0].mode, p[0].count),
            (2, USER_MODE_PERIODIC, 50)
        );
        assert_eq!((p[1].burst, p[1].duration_ns), (4, 200_000_000));
        let bad = Args::parse_from(["irqstorm-wait", "--periodic", "2:1000000"]);
        assert!(programs(&bad).is_err());
        assert_eq!(mechanism_id("user").unwrap(), 19);
        assert_eq!(mechanism_id("7").unwrap(), 7);
        assert!(mechanism_id("nope").is_err());
    }
}
