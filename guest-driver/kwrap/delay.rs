// SPDX-License-Identifier: GPL-2.0

//! Sleeping delays missing from `kernel::time::delay` (which has `fsleep` and `udelay`).

use kernel::{bindings, ffi::c_ulong};

/// Sleep for at least `ms` milliseconds. Must only be called from process context.
///
/// The callers in this driver only reach it from sleepable mechanisms (threads, workqueues);
/// the driver refuses sleep requests for atomic mechanisms (see `sources.rs`, `refuses_sleep`).
pub(crate) fn msleep(ms: u32) {
    // SAFETY: `msleep` has no memory-safety preconditions; sleeping in atomic context would be a
    // bug (caught by `might_sleep`), not undefined behaviour, and callers are process context.
    unsafe { bindings::msleep(ms) };
}

/// Sleep between `min_us` and `max_us` microseconds (hrtimer based). Process context only.
pub(crate) fn usleep_range(min_us: u64, max_us: u64) {
    // SAFETY: as for `msleep`; `usleep_range` is `usleep_range_state(.., TASK_UNINTERRUPTIBLE)`.
    unsafe {
        bindings::usleep_range_state(
            min_us as c_ulong,
            max_us as c_ulong,
            bindings::TASK_UNINTERRUPTIBLE,
        )
    };
}

/// `schedule_timeout_uninterruptible(jiffies)`: sleep at least `jiffies` ticks (the classic
/// timed sleep; `msleep` is built on it). Process context only.
pub(crate) fn schedule_timeout_uninterruptible(jiffies: u64) {
    let j = kernel::ffi::c_long::try_from(jiffies).unwrap_or(kernel::ffi::c_long::MAX);
    // SAFETY: as for `msleep`; it sets the task state itself before sleeping.
    unsafe { bindings::schedule_timeout_uninterruptible(j) };
}
