// SPDX-License-Identifier: GPL-2.0

//! The threaded IRQ handler as a bottom half (mechanism 1 `threaded`): the hard handler
//! returns `WakeThread` (see `dispatch.rs`); the local reference source wakes the thread with
//! `irq_wake_thread()`.

use crate::{
    kwrap::{clock::Stamp, irq::ThreadWaker},
    mech::Mech,
    shared::Shared,
};
use core::sync::atomic::Ordering;
use kernel::sync::atomic::{Atomic, Relaxed};

/// The IRQ thread as a bottom half.
pub(crate) struct IrqThread {
    /// Some event waits for the thread.
    pending: Atomic<bool>,
    /// IRQ-thread waker (irq, cookie); cookie 0 = none. Set after the IRQ is requested.
    waker_irq: Atomic<u32>,
    waker_cookie: Atomic<u64>,
}

impl IrqThread {
    pub(crate) fn new() -> Self {
        Self { pending: Atomic::new(false), waker_irq: Atomic::new(0), waker_cookie: Atomic::new(0) }
    }
}

/// Marks work for the IRQ thread; `true`: the hard handler must return `WakeThread`.
pub(super) fn schedule(s: &Shared) -> bool {
    s.irq_thread.pending.store(true, Relaxed);
    true
}

/// The IRQ thread's share: everything queued for `threaded`. `woke` is the stamp the thread
/// took first thing in `handle_threaded`.
pub(crate) fn run(s: &Shared, woke: Stamp) {
    s.irq_thread.pending.store(false, Relaxed);
    core::sync::atomic::fence(Ordering::SeqCst);
    super::run(s, Mech::Threaded, Some(woke));
}

/// Whether some event waits for the IRQ thread.
pub(crate) fn pending(s: &Shared) -> bool {
    s.irq_thread.pending.load(Relaxed)
}

pub(crate) fn set_waker(s: &Shared, w: ThreadWaker) {
    let (irq, cookie) = w.raw_parts();
    s.irq_thread.waker_irq.store(irq, Relaxed);
    s.irq_thread.waker_cookie.store(cookie, Relaxed);
}

/// Wakes the IRQ thread (used by the local reference source for `threaded`).
pub(crate) fn wake(s: &Shared) {
    ThreadWaker::from_raw_parts(s.irq_thread.waker_irq.load(Relaxed), s.irq_thread.waker_cookie.load(Relaxed)).wake();
}
