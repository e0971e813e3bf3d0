// SPDX-License-Identifier: GPL-2.0

//! The threaded IRQ handler as a bottom half (mechanism 1 `threaded`): the hard handler
//! returns `WakeThread` (see `dispatch.rs`); the local reference source wakes the thread with
//! `irq_wake_thread()`.

use crate::{kwrap::irq::ThreadWaker, mech::Mech, shared::Shared};
use core::sync::atomic::Ordering;
use kernel::sync::atomic::Relaxed;

/// Marks work for the IRQ thread; `true`: the hard handler must return `WakeThread`.
pub(super) fn schedule(s: &Shared) -> bool {
    s.threaded_pending.store(true, Relaxed);
    true
}

/// The IRQ thread's share: everything queued for `threaded`.
pub(crate) fn run(s: &Shared) {
    s.threaded_pending.store(false, Relaxed);
    core::sync::atomic::fence(Ordering::SeqCst);
    super::run(s, Mech::Threaded);
}

/// Whether some event waits for the IRQ thread.
pub(crate) fn pending(s: &Shared) -> bool {
    s.threaded_pending.load(Relaxed)
}

pub(crate) fn set_waker(s: &Shared, w: ThreadWaker) {
    let (irq, cookie) = w.raw_parts();
    s.waker_irq.store(irq, Relaxed);
    s.waker_cookie.store(cookie, Relaxed);
}

/// Wakes the IRQ thread (used by the local reference source for `threaded`).
pub(crate) fn wake(s: &Shared) {
    ThreadWaker::from_raw_parts(s.waker_irq.load(Relaxed), s.waker_cookie.load(Relaxed)).wake();
}
