// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Benchmark (not a test): `cargo bench -p irqstorm-backend --bench irqstorm_bench`.
//!
//! 1. Throughput: an in-process back end (daemon + generator threads, real
//!    vhost-user socket) storms into an eventq that an in-process front-end
//!    thread drains, re-posts and acks. Reports events/s, records/s and the
//!    back end's CPU time per event (from /proc/self/task/*/schedstat).
//! 2. Timer accuracy: a 1 kHz PERIODIC source of the back end (raise_ns -
//!    due_ns from the records) against a plain timerfd thread (absolute
//!    deadlines, default timer slack) measured in the same run, with the
//!    back end's spin window on (default 50 us) and off.
//!
//! Environment: IRQSTORM_BENCH_SECS (default 2); IRQSTORM_BENCH_RATE and
//! IRQSTORM_BENCH_BURST select one storm (default: 100k/1, 400k/4, 1M/8).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ack_for, Front};
use hdrhistogram::Histogram;
use irqstorm_backend::backend::Shared;
use irqstorm_backend::device::now_ns;
use irqstorm_backend::generator::{arm_abs, GeneratorThread};
use irqstorm_backend::protocol::{ConfigureBody, CtrlReq, Mode, Opcode, Status};
use irqstorm_backend::schedule::Limits;
use vmm_sys_util::timerfd::TimerFd;

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn gettid() -> i64 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// CPU ns of every thread of this process except `exclude`.
fn cpu_ns_except(exclude: &HashSet<i64>) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for e in rd.flatten() {
            let tid: i64 = e.file_name().to_string_lossy().parse().unwrap_or(-1);
            if exclude.contains(&tid) {
                continue;
            }
            if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// Starts an in-process back end on a fresh socket; returns its socket path.
fn start_backend(tag: &str, spin_us: u64, max_rate: u32) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("irqstorm-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let sock = dir.join("vu.sock");
    let limits = Limits {
        num_sources: 8,
        max_rate_hz: max_rate,
        max_outstanding: 65536,
        min_period_ns: 1000,
        max_burst: 1024,
    };
    let shared = Arc::new(Shared::new(0, limits, false, 21).unwrap());
    let g = GeneratorThread::spawn(shared.clone(), spin_us * 1000).unwrap();
    std::mem::forget(g);
    let listener = irqstorm_backend::socket::bind_owner_only(&sock).unwrap();
    std::thread::spawn(move || {
        irqstorm_backend::serve_device(shared, listener, Default::default(), Duration::ZERO)
    });
    sock
}

fn pct(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:>7} ns  p99 {:>8} ns  max {:>9} ns  (n={})",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max(),
        h.len()
    )
}

fn throughput(secs: u64, rate: u32, burst: u16, spin_us: u64) {
    let sock = start_backend(&format!("tput{rate}-{spin_us}"), spin_us, rate.max(1));
    let mut f = Front::connect(&sock, true, 0);
    let body = ConfigureBody {
        mode: Mode::Storm as u8,
        rate_hz: rate,
        burst,
        duration_ns: secs * 1_000_000_000,
        ..Default::default()
    };
    let r = f.ctrl(&CtrlReq::configure(0, &body));
    assert_eq!(r.status, Status::Ok as u16, "configure");
    f.post_events(256);
    let mut excl = HashSet::new();
    excl.insert(gettid());
    let cpu0 = cpu_ns_except(&excl);
    let t0 = Instant::now();
    let r = f.ctrl(&CtrlReq::new(Opcode::Start as u16, 0, 0));
    assert_eq!(r.status, Status::Ok as u16, "start");
    let (mut raises, mut records, mut latched, mut merged_raises) = (0u64, 0u64, 0u64, 0u64);
    let mut acks = Vec::with_capacity(64);
    let end = t0 + Duration::from_secs(secs) + Duration::from_secs(5);
    let expect = u64::from(rate) * secs;
    while Instant::now() < end {
        let ev = f.take_events();
        if ev.is_empty() {
            if raises >= expect {
                break;
            }
            std::hint::spin_loop();
            continue;
        }
        for (_, _, r) in &ev {
            raises += u64::from(r.count);
            records += 1;
            if r.count > 1 {
                latched += 1;
                merged_raises += u64::from(r.count);
            }
            acks.push(ack_for(r, 4));
            if acks.len() == 64 {
                f.post_acks(&acks);
                acks.clear();
            }
        }
        f.post_events(ev.len() as u16);
    }
    let wall = t0.elapsed();
    let cpu = cpu_ns_except(&excl) - cpu0;
    let s = wall.as_secs_f64();
    println!(
        "== throughput (storm {rate}/s, burst {burst}, spin {spin_us} us, {secs} s, ring 256, front end drains in-process)"
    );
    println!(
        "   raises delivered   {raises} in {s:.3} s  = {:.0} events/s",
        raises as f64 / s
    );
    println!(
        "   records written    {records}  = {:.0} records/s ({latched} merged records with count > 1 covering {merged_raises} raises)",
        records as f64 / s
    );
    println!(
        "   back-end CPU       {:.3} s  = {:.0} ns/event, {:.0} ns/record",
        cpu as f64 / 1e9,
        cpu as f64 / raises.max(1) as f64,
        cpu as f64 / records.max(1) as f64
    );
}

fn backend_timer(tag: &str, spin_us: u64, n: u64, period_ns: u64) -> Histogram<u64> {
    let sock = start_backend(tag, spin_us, 1_000_000);
    let mut f = Front::connect(&sock, true, 0);
    let body = ConfigureBody {
        mode: Mode::Periodic as u8,
        period_ns,
        count: n,
        ..Default::default()
    };
    assert_eq!(f.ctrl(&CtrlReq::configure(0, &body)).status, 0);
    f.post_events(256);
    assert_eq!(f.ctrl(&CtrlReq::new(Opcode::Start as u16, 0, 0)).status, 0);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let end = Instant::now() + Duration::from_nanos(n * period_ns) + Duration::from_secs(10);
    let mut got = 0;
    while got < n && Instant::now() < end {
        let ev = f.take_events();
        for (_, _, r) in &ev {
            got += u64::from(r.count);
            h.saturating_record(r.raise_ns.saturating_sub(r.due_ns).max(1));
        }
        if !ev.is_empty() {
            f.post_events(ev.len() as u16);
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    h
}

fn plain_timerfd(n: u64, period_ns: u64) -> Histogram<u64> {
    let t = TimerFd::new().unwrap();
    let mut t = t;
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let t0 = now_ns();
    for k in 1..=n {
        let due = t0 + k * period_ns;
        arm_abs(&t, Some(due)).unwrap();
        let _ = t.wait();
        h.saturating_record(now_ns().saturating_sub(due).max(1));
    }
    h
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env_u64("IRQSTORM_BENCH_SECS", 2);
    if let Ok(r) = std::env::var("IRQSTORM_BENCH_RATE") {
        let rate = r.parse().unwrap_or(1_000_000);
        let burst = env_u64("IRQSTORM_BENCH_BURST", 8) as u16;
        throughput(secs, rate, burst, env_u64("IRQSTORM_BENCH_SPIN_US", 50));
    } else {
        for (rate, burst) in [(100_000, 1), (400_000, 4), (1_000_000, 8)] {
            for spin in [50, 0] {
                throughput(secs, rate, burst, spin);
            }
        }
    }

    const N: u64 = 2000;
    const PERIOD: u64 = 1_000_000;
    println!("== timer firing error at 1 kHz, {N} events each, run concurrently");
    let plain = std::thread::spawn(move || plain_timerfd(N, PERIOD));
    let spin = backend_timer("spin", 50, N, PERIOD);
    let p = plain.join().unwrap();
    println!(
        "   back end (timerfd + 50 us spin, slack 1 ns): {}",
        pct(&spin)
    );
    println!(
        "   plain timerfd thread (default slack):        {}",
        pct(&p)
    );
    let plain2 = std::thread::spawn(move || plain_timerfd(N, PERIOD));
    let nospin = backend_timer("nospin", 0, N, PERIOD);
    let p2 = plain2.join().unwrap();
    println!(
        "   back end (timerfd only, slack 1 ns):         {}",
        pct(&nospin)
    );
    println!(
        "   plain timerfd thread (default slack):        {}",
        pct(&p2)
    );
    let ratio = |a: &Histogram<u64>, b: &Histogram<u64>, q: f64| {
        a.value_at_quantile(q) as f64 / b.value_at_quantile(q).max(1) as f64
    };
    println!(
        "   ratio plain/back end (spin):   p50 {:.1}x  p99 {:.1}x  max {:.1}x",
        ratio(&p, &spin, 0.5),
        ratio(&p, &spin, 0.99),
        p.max() as f64 / spin.max().max(1) as f64
    );
    println!(
        "   ratio plain/back end (nospin): p50 {:.1}x  p99 {:.1}x  max {:.1}x",
        ratio(&p2, &nospin, 0.5),
        ratio(&p2, &nospin, 0.99),
        p2.max() as f64 / nospin.max().max(1) as f64
    );
    std::process::exit(0);
}
