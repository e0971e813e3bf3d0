//! The wake-up stamps: CLOCK_MONOTONIC (the driver's `ktime_get()`
//! timeline) and the TSC, side by side, and the CPU.

/// CLOCK_MONOTONIC in ns.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The TSC (0 off x86_64, as the driver's stamps).
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// The CPU this thread runs on.
pub fn cpu() -> u16 {
    // SAFETY: no arguments, no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    u16::try_from(c).unwrap_or(0)
}

/// A stamp pair.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub ns: u64,
    pub tsc: u64,
}

impl Stamp {
    pub fn now() -> Self {
        // TSC first: it is the cheaper one, and the closer to the wake-up.
        let tsc = tsc();
        Self { ns: now_ns(), tsc }
    }
}
