// SPDX-License-Identifier: GPL-2.0

//! Re-arming an `Arc`-owned hrtimer from any context.
//!
//! `kernel::time::hrtimer` starts an `Arc<T>` timer through `HrTimerPointer::start`, which
//! returns a handle that cancels the timer when dropped; dropping (cancelling) is not allowed
//! in hard IRQ context, where the driver arms its soft hrtimer for every event. [`HrTimerArm`]
//! keeps one such handle; while it is kept, the timer's owner is alive and will be cancelled
//! before it is released, so starting the timer again is safe. No `bindings` are used here.

use kernel::{
    new_spinlock_irq,
    prelude::*,
    sync::{Arc, SpinLockIrq},
    time::hrtimer::{ArcHrTimerHandle, HasHrTimer, HrTimerCallback, HrTimerMode, HrTimerPointer},
};

type Expires<T> = <<T as HasHrTimer<T>>::TimerMode as HrTimerMode>::Expires;

/// The right to start `T`'s hrtimer, from a kept handle.
///
/// # Invariants
///
/// When `kept` is `Some((handle, owner))`, `handle` was returned by starting the timer of
/// `*owner`; it holds a reference to `*owner` and cancels that timer when dropped, which only
/// happens after it was taken out of `kept`.
#[pin_data]
pub(crate) struct HrTimerArm<T: HasHrTimer<T>> {
    #[pin]
    kept: SpinLockIrq<Option<(ArcHrTimerHandle<T>, Arc<T>)>>,
}

impl<T> HrTimerArm<T>
where
    T: HasHrTimer<T> + Send + Sync + 'static,
    T: for<'a> HrTimerCallback<Pointer<'a> = Arc<T>>,
{
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { kept <- new_spinlock_irq!(None, "irqstorm_hrtimer_arm") })
    }

    /// Keeps a handle of `owner`'s timer (started at `initial` and cancelled right away), so
    /// that [`HrTimerArm::start`] works. Process context.
    pub(crate) fn install(&self, owner: Arc<T>, initial: Expires<T>) {
        let mut handle = owner.clone().start(initial);
        kernel::time::hrtimer::HrTimerHandle::cancel(&mut handle);
        let old = self.kept.lock().replace((handle, owner));
        drop(old);
    }

    /// Starts (or restarts) the timer; a no-op unless a handle is installed (returns whether
    /// it started). Any context.
    pub(crate) fn start(&self, expires: Expires<T>) -> bool {
        let kept = self.kept.lock();
        if let Some((_, owner)) = kept.as_ref() {
            // SAFETY: by the type invariant the kept handle keeps `*owner` alive and cancels its
            // timer before releasing it; the handle cannot leave `kept` while we hold the lock,
            // so this start happens before that cancel.
            unsafe { T::start(Arc::as_ptr(owner), expires) };
            true
        } else {
            false
        }
    }

    /// `hrtimer_cancel()`: a pending expiry is dropped, a running callback waited for; the
    /// timer can be started again afterwards. Process context. Returns whether it was active.
    /// (Starts meanwhile are no-ops: the handle is taken out for the wait, which spins.)
    pub(crate) fn cancel(&self) -> bool {
        let taken = self.kept.lock().take();
        let Some((mut handle, owner)) = taken else { return false };
        let was_active = kernel::time::hrtimer::HrTimerHandle::cancel(&mut handle);
        let old = self.kept.lock().replace((handle, owner));
        drop(old);
        was_active
    }

    /// Drops the handle: cancels the timer, waiting for a running callback. Process context.
    pub(crate) fn release(&self) {
        let kept = self.kept.lock().take();
        drop(kept);
    }
}
