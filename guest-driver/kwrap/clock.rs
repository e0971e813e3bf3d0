// SPDX-License-Identifier: GPL-2.0

//! Raw `CLOCK_MONOTONIC` nanoseconds (`ktime_get`) and `jiffies`.
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

/// Milliseconds to jiffies.
pub(crate) fn msecs_to_jiffies(ms: u32) -> u64 {
    kernel::time::msecs_to_jiffies(ms) as u64
}
