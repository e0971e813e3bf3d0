//! `cargo xtask bench tsc-ratchet`: how far QEMU TCG's tick ratchet can move
//! a guest's TSC on this host when two vCPU threads read it at once.
//!
//! Under TCG a guest `rdtsc` is QEMU's `cpu_get_ticks()`: the host TSC plus
//! an offset, read under one spinlock, and a read below the previous one
//! (any vCPU's) moves the offset up by the difference, so the guest TSC
//! never goes back. The host read is a plain `rdtsc`, which the CPU may run
//! before the lock handoff from the other thread has completed; two threads
//! reading back to back on two cores then see "backward" reads of tens of
//! nanoseconds, and each one becomes a permanent forward step of the guest
//! TSC. This command runs that accounting with the same kind of read (two
//! threads, one per CPU, reading by strict turns: the worst case of two
//! vCPUs reading at once) beside a control whose read is `lfence`-ordered,
//! and prints what the offset gained. It is the
//! host-side cause of the time base's offset steps (docs/clock-offset.md,
//! "TCG: what limits the bound"); a guest that runs TSC-heavy loops on two
//! vCPUs at once (udelay busy work, the calibration loop) drives it.
//! Figures, not asserts: nothing here is judged.

use crate::bench::Spread;
use anyhow::{bail, Result};
use serde::Serialize;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// How a thread reads the host TSC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    /// A plain `rdtsc`, as QEMU's `cpu_get_host_ticks()` on x86-64.
    Plain,
    /// `lfence; rdtsc`: not started before earlier instructions are done.
    Ordered,
}

impl Read {
    fn name(self) -> &'static str {
        match self {
            Read::Plain => "plain rdtsc (QEMU's read)",
            Read::Ordered => "lfence; rdtsc (control)",
        }
    }
}

/// The ratchet's accounting: ticks = host + offset, never below the last
/// ticks handed out; a read below it moves the offset up by the deficit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ratchet {
    prev: u64,
    offset: u64,
    pub reads: u64,
    /// Reads below the previous one.
    pub backward: u64,
    pub largest_deficit: u64,
    /// Reads by another thread than the read before (a handoff).
    pub handoffs: u64,
    last_reader: Option<usize>,
}

impl Ratchet {
    /// One read of `host` ticks by thread `who`; returns the ticks handed out.
    pub fn read(&mut self, who: usize, host: u64) -> u64 {
        self.reads += 1;
        if self.last_reader.is_some_and(|w| w != who) {
            self.handoffs += 1;
        }
        self.last_reader = Some(who);
        let mut ticks = host.wrapping_add(self.offset);
        if self.reads > 1 && ticks < self.prev {
            let deficit = self.prev - ticks;
            self.offset += deficit;
            self.backward += 1;
            self.largest_deficit = self.largest_deficit.max(deficit);
            ticks = self.prev;
        }
        self.prev = ticks;
        ticks
    }

    /// How far the offset moved: what a guest TSC gained on the host's.
    pub fn gained(&self) -> u64 {
        self.offset
    }
}

/// The ratchet shared by two threads that take strict turns: every read
/// follows the other thread's, on the other CPU, as when two vCPU threads
/// both wait for QEMU's tick lock. Nothing but the load that sees the turn
/// comes before the TSC read (another locked instruction there, a `Mutex`,
/// would hold the read back and hide the effect this measures).
struct Alternating {
    turn: AtomicUsize,
    inner: UnsafeCell<Ratchet>,
}

// SAFETY: `inner` is only touched in `read` by the thread whose turn it is,
// between seeing `turn == who` (Acquire) and handing the turn on (Release).
unsafe impl Sync for Alternating {}

impl Alternating {
    fn read(&self, who: usize, how: Read) {
        while self.turn.load(Ordering::Acquire) != who {
            std::hint::spin_loop();
        }
        let host = host_ticks(how);
        // SAFETY: it is this thread's turn (above), so no other reference to
        // `inner` exists until the turn is handed on below.
        unsafe { (*self.inner.get()).read(who, host) };
        self.turn.store(1 - who, Ordering::Release);
    }
}

#[cfg(target_arch = "x86_64")]
fn host_ticks(how: Read) -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    match how {
        // SAFETY: RDTSC exists on every x86-64 CPU and only reads the counter.
        Read::Plain => unsafe { _rdtsc() },
        // SAFETY: LFENCE (SSE2, part of x86-64) and RDTSC only order and read.
        Read::Ordered => unsafe {
            _mm_lfence();
            _rdtsc()
        },
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn host_ticks(_: Read) -> u64 {
    0
}

/// One run: two threads, `reads` reads each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub read: Read,
    pub reads: u64,
    pub handoffs: u64,
    pub backward: u64,
    pub gained_ticks: u64,
    pub largest_deficit_ticks: u64,
    pub elapsed_ticks: u64,
    pub elapsed_ns: u64,
}

impl Run {
    pub fn gained_ppm(&self) -> f64 {
        self.gained_ticks as f64 * 1e6 / self.elapsed_ticks.max(1) as f64
    }

    fn ticks_to_ns(&self, t: u64) -> f64 {
        t as f64 * self.elapsed_ns as f64 / self.elapsed_ticks.max(1) as f64
    }
}

/// The first two CPUs this process may run on.
fn two_cpus() -> Result<[usize; 2]> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most `size_of::<cpu_set_t>()` bytes into the set we own.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
        }
        set
    };
    let usable: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET only reads the set, and `c` is below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .take(2)
        .collect();
    match usable[..] {
        [a, b] => Ok([a, b]),
        _ => bail!(
            "bench tsc-ratchet needs 2 CPUs (this process may use {}): two threads take turns reading the TSC, one per CPU",
            usable.len()
        ),
    }
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only touch the set we own (pid 0: this thread).
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn one_run(how: Read, reads: u64, cpus: [usize; 2]) -> Result<Run> {
    // Pinned before the turns start: two threads taking strict turns on one
    // CPU would wait a time slice per read.
    let pinned = std::sync::Barrier::new(2);
    let shared = Alternating {
        turn: AtomicUsize::new(0),
        inner: UnsafeCell::new(Ratchet::default()),
    };
    let t0 = Instant::now();
    let k0 = host_ticks(Read::Ordered);
    std::thread::scope(|s| -> Result<()> {
        let threads: Vec<_> = (0..2)
            .map(|who| {
                let (shared, pinned) = (&shared, &pinned);
                s.spawn(move || -> std::io::Result<()> {
                    let pin = pin_to(cpus[who]);
                    pinned.wait();
                    // Both go on either way, so neither waits for a turn forever.
                    for _ in 0..reads {
                        shared.read(who, how);
                    }
                    pin
                })
            })
            .collect();
        for (who, t) in threads.into_iter().enumerate() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bail!("cannot pin thread {who} to CPU {}: {e}", cpus[who]),
                Err(_) => bail!("thread {who} panicked"),
            }
        }
        Ok(())
    })?;
    let elapsed_ticks = host_ticks(Read::Ordered).wrapping_sub(k0);
    let elapsed_ns = t0.elapsed().as_nanos() as u64;
    let r = shared.inner.into_inner();
    Ok(Run {
        read: how,
        reads: r.reads,
        handoffs: r.handoffs,
        backward: r.backward,
        gained_ticks: r.gained(),
        largest_deficit_ticks: r.largest_deficit,
        elapsed_ticks,
        elapsed_ns,
    })
}

/// The summary table of both kinds of read.
pub fn table(runs: &[Run]) -> String {
    let mut out = String::from(
        "read                       runs  handoffs/run  backward/run  gained us/run median [max]  ppm median [max]  largest step\n",
    );
    for how in [Read::Plain, Read::Ordered] {
        let rs: Vec<&Run> = runs.iter().filter(|r| r.read == how).collect();
        if rs.is_empty() {
            continue;
        }
        // `rs` is not empty, so every spread exists.
        let spread = |f: &dyn Fn(&Run) -> f64| Spread::of(rs.iter().map(|r| f(r)).collect());
        let (Some(handoffs), Some(backward), Some(us), Some(ppm), Some(step_ns)) = (
            spread(&|r| r.handoffs as f64),
            spread(&|r| r.backward as f64),
            spread(&|r| r.ticks_to_ns(r.gained_ticks) / 1e3),
            spread(&|r| r.gained_ppm()),
            spread(&|r| r.ticks_to_ns(r.largest_deficit_ticks)),
        ) else {
            continue;
        };
        out += &format!(
            "{:<26} {:>4}  {:>12.0}  {:>12.0}  {:>13.2} [{:.2}]  {:>9.1} [{:.1}]  {:>9.0} ns\n",
            how.name(),
            rs.len(),
            handoffs.median,
            backward.median,
            us.median,
            us.max,
            ppm.median,
            ppm.max,
            step_ns.max,
        );
    }
    out
}

/// `cargo xtask bench tsc-ratchet`.
pub fn run(reads: u64, repeat: u32, json: Option<&std::path::Path>) -> Result<()> {
    if !cfg!(target_arch = "x86_64") {
        bail!("bench tsc-ratchet reads the x86 TSC: x86-64 hosts only");
    }
    let cpus = two_cpus()?;
    let mut runs = Vec::new();
    for k in 1..=repeat {
        // Interleaved, so a busy stretch of the host falls on both kinds.
        for how in [Read::Plain, Read::Ordered] {
            let r = one_run(how, reads, cpus)?;
            eprintln!(
                "  run {k}/{repeat} {:<26} {} backward of {} reads, gained {:.2} us ({:.1} ppm)",
                how.name(),
                r.backward,
                r.reads,
                r.ticks_to_ns(r.gained_ticks) / 1e3,
                r.gained_ppm()
            );
            runs.push(r);
        }
    }
    println!(
        "QEMU TCG tick ratchet on this host: 2 threads on CPUs {} and {} reading the TSC by turns, {reads} reads each, {repeat} runs per kind of read",
        cpus[0], cpus[1]
    );
    print!("{}", table(&runs));
    println!("gained = how far the ratchet moved the offset: what a guest TSC would gain on the host's while two vCPUs read it this way (docs/clock-offset.md)");
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&runs)? + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("json: {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backward_read_moves_the_offset_by_its_deficit_and_ticks_never_go_back() {
        let mut r = Ratchet::default();
        let ticks: Vec<u64> = [(0, 100), (1, 90), (0, 120), (1, 115), (1, 130)]
            .iter()
            .map(|&(who, host)| r.read(who, host))
            .collect();
        // 90 < 100: held at 100, offset 10; 120 + 10 = 130; 115 + 10 < 130: held, offset 15.
        assert_eq!(ticks, vec![100, 100, 130, 130, 145]);
        assert_eq!(r.gained(), 15);
        assert_eq!((r.backward, r.largest_deficit, r.handoffs), (2, 10, 3));
    }

    #[test]
    fn forward_reads_gain_nothing() {
        let mut r = Ratchet::default();
        for (i, host) in [5u64, 6, 6, 9].into_iter().enumerate() {
            r.read(i % 2, host);
        }
        assert_eq!((r.gained(), r.backward, r.handoffs), (0, 0, 3));
    }

    #[test]
    fn the_table_gives_gain_in_time_and_ppm_per_kind_of_read() {
        let run = |read, gained_ticks| Run {
            read,
            reads: 2000,
            handoffs: 500,
            backward: 10,
            gained_ticks,
            largest_deficit_ticks: 200,
            elapsed_ticks: 2_000_000,
            elapsed_ns: 1_000_000,
        };
        let t = table(&[run(Read::Plain, 2000), run(Read::Ordered, 0)]);
        let plain = t.lines().nth(1).unwrap();
        // 2000 ticks at 2 ticks/ns = 1 us; 2000 / 2e6 = 1000 ppm; 200 ticks = 100 ns.
        assert!(plain.starts_with("plain rdtsc"), "{t}");
        assert!(plain.contains(" 1.00 [1.00]"), "{t}");
        assert!(plain.contains("1000.0 [1000.0]"), "{t}");
        assert!(plain.contains("100 ns"), "{t}");
        assert!(t.lines().nth(2).unwrap().contains(" 0.00 [0.00]"), "{t}");
    }
}
