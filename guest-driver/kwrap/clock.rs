// SPDX-License-Identifier: GPL-2.0

//! Raw `CLOCK_MONOTONIC` nanoseconds (`ktime_get`), `jiffies` and the TSC.
//!
//! `kernel::time::Instant` keeps its nanosecond value crate-private; the wire format
//! (spec §6.4) needs plain `u64` nanoseconds.

use kernel::bindings;

/// Guest `CLOCK_MONOTONIC` in nanoseconds. Callable from any context.
#[inline]
pub(crate) fn now_ns() -> u64 {
    // SAFETY: `ktime_get` has no preconditions and is safe in any context (NMI excluded).
    let t = unsafe { bindings::ktime_get() };
    t as u64
}

/// Current value of `jiffies`.
#[inline]
pub(crate) fn jiffies() -> u64 {
    // SAFETY: `jiffies` is a valid, always-mapped global updated by the timer interrupt;
    // a volatile read of an aligned machine word is how C reads it (READ_ONCE).
    unsafe { core::ptr::read_volatile(&raw const bindings::jiffies) as u64 }
}

/// `time_after_eq(a, b)`: jiffies value `a` is at or after `b`, across the counter's wrap
/// (the difference read as signed, as the kernel's macro does).
#[inline]
pub(crate) fn time_after_eq(a: u64, b: u64) -> bool {
    a.wrapping_sub(b) as i64 >= 0
}

/// Jiffies for a delay of `us` microseconds, rounded up to whole milliseconds first (a jiffy
/// is 1-10 ms): what `mod_timer` and `queue_delayed_work` are given.
pub(crate) fn usecs_to_jiffies(us: u32) -> u64 {
    msecs_to_jiffies(us.div_ceil(1000))
}

/// `HZ` (`CONFIG_HZ`): jiffies per second.
pub(crate) fn hz() -> u64 {
    msecs_to_jiffies(1000)
}

/// Milliseconds to jiffies.
pub(crate) fn msecs_to_jiffies(ms: u32) -> u64 {
    kernel::time::msecs_to_jiffies(ms) as u64
}

/// Whether [`tsc`] and [`tsc_ordered`] read a real TSC (x86_64 only). Elsewhere they
/// return 0, which the wire format reads as "no usable TSC" (spec §6.4).
pub(crate) const HAVE_TSC: bool = cfg!(target_arch = "x86_64");

/// The TSC (`rdtsc`), unordered: the CPU may execute it before earlier loads complete.
/// Cheap enough for every time stamp. 0 without a TSC.
#[inline]
pub(crate) fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let (lo, hi): (u32, u32);
        // SAFETY: `rdtsc` only reads the time-stamp counter into edx:eax; the kernel leaves
        // CR4.TSD clear, and at CPL 0 it never faults. It touches no memory.
        unsafe {
            core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
        };
        u64::from(hi) << 32 | u64::from(lo)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// The TSC after every earlier load has completed (`lfence; rdtsc`, the kernel's
/// `rdtsc_ordered`): a stamp taken after reading a value is later than that read. Without
/// `nomem` the compiler keeps memory accesses on their side of it too. 0 without a TSC.
#[inline]
pub(crate) fn tsc_ordered() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let (lo, hi): (u32, u32);
        // SAFETY: `lfence` and `rdtsc` have no operands in memory and cannot fault at CPL 0
        // (CR4.TSD is clear); the asm block is a compiler barrier for memory (no `nomem`).
        unsafe { core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nostack, preserves_flags)) };
        u64::from(hi) << 32 | u64::from(lo)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// A hard IRQ time stamp on both clocks.
#[derive(Clone, Copy, Default)]
pub(crate) struct Stamp {
    pub(crate) ns: u64,
    pub(crate) tsc: u64,
}

impl Stamp {
    /// The TSC, then `ktime_get`, side by side. The TSC first: it is the stamp compared
    /// with the kernel's trace (x86-tsc clock) and the host's TSC, and `ktime_get` costs
    /// 0.4-1.1 us under TCG (cold), which would otherwise sit between the event and its stamp.
    #[inline]
    pub(crate) fn now() -> Self {
        let tsc = tsc();
        Self { ns: now_ns(), tsc }
    }
}
