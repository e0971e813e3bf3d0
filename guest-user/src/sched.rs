//! The thread's scheduling: SCHED_FIFO at a priority, a CPU.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGTERM / SIGINT: the wait loop ends and prints its summary.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGTERM and SIGINT set [`STOP`]; without SA_RESTART a blocked poll() or
/// read() returns EINTR, so the loop sees it at once.
pub fn stop_on_signals() -> io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: an all-zero sigaction is valid (empty mask, no flags).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        // SAFETY: `sa` is a valid sigaction whose handler only stores to an
        // atomic (async-signal-safe); the old action is not asked for.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Puts this thread at SCHED_FIFO `prio` (1..=99).
pub fn set_fifo(prio: i32) -> io::Result<()> {
    let p = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: `p` is a valid sched_param; pid 0 is this thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins this thread to CPU `cpu`.
pub fn pin(cpu: usize) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes inside `set` (it checks `cpu` against the set's size).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// This thread's policy and priority, as `ps` names them ("FF 50", "TS 0").
pub fn describe() -> String {
    // SAFETY: no preconditions.
    let pol = unsafe { libc::sched_getscheduler(0) };
    let mut p = libc::sched_param { sched_priority: 0 };
    // SAFETY: `p` is a valid sched_param to write.
    unsafe { libc::sched_getparam(0, &mut p) };
    let name = match pol {
        libc::SCHED_FIFO => "FF",
        libc::SCHED_RR => "RR",
        libc::SCHED_OTHER => "TS",
        _ => "?",
    };
    format!("{name} {}", p.sched_priority)
}
