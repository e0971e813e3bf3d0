// SPDX-License-Identifier: GPL-2.0

//! Legacy tasklets (`tasklet_struct`).
//!
//! Tasklets are deprecated upstream in favour of BH workqueues (`system_bh`,
//! `system_bh_highpri`, since 6.9); the driver shows both side by side.

use core::{marker::PhantomPinned, sync::atomic::{AtomicUsize, Ordering}};
use kernel::{bindings, prelude::*, types::Opaque};

/// A tasklet that calls `func(owner)` in softirq context.
///
/// # Invariants
///
/// `raw` was initialised by `tasklet_setup` with [`Tasklet::callback`]; `owner` points to the
/// pinned object that contains this tasklet and outlives it.
#[pin_data(PinnedDrop)]
pub(crate) struct Tasklet<T: Sync> {
    #[pin]
    raw: Opaque<bindings::tasklet_struct>,
    owner: *const T,
    func: fn(&T),
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the tasklet only hands out `&T` with `T: Sync`; the C side is thread safe.
unsafe impl<T: Sync> Send for Tasklet<T> {}
// SAFETY: as above; all methods take `&self` and are safe to call concurrently.
unsafe impl<T: Sync> Sync for Tasklet<T> {}

impl<T: Sync> Tasklet<T> {
    /// Creates a tasklet that runs `func(&*owner)`.
    ///
    /// # Safety
    ///
    /// `owner` must point to the pinned object that contains the returned tasklet, so that it is
    /// valid whenever the tasklet can run (the tasklet is killed in its destructor).
    pub(crate) unsafe fn new(owner: *const T, func: fn(&T)) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid uninitialised memory for a `tasklet_struct`.
            raw <- Opaque::ffi_init(|slot: *mut bindings::tasklet_struct| unsafe {
                bindings::tasklet_setup(slot, Some(Self::callback))
            }),
            owner,
            func,
            _pin: PhantomPinned,
        })
    }

    /// Tasklet callback.
    ///
    /// # Safety
    ///
    /// Only called by the softirq core for a tasklet set up by [`Tasklet::new`].
    unsafe extern "C" fn callback(t: *mut bindings::tasklet_struct) {
        // SAFETY: `t` is the `raw` field of a `Tasklet<T>` (it was set up by `new`); `Opaque` is
        // `repr(transparent)`.
        let this = unsafe { &*kernel::container_of!(Opaque::cast_from(t).cast_mut(), Self, raw) };
        // SAFETY: by the type invariant `owner` is valid while the tasklet can run.
        (this.func)(unsafe { &*this.owner });
    }

    fn sched(&self, hi: bool) {
        let t = self.raw.get();
        let bit = 1usize << bindings::TASKLET_STATE_SCHED;
        // SAFETY: `state` is an aligned `unsigned long` of the initialised tasklet; C accesses it
        // only with atomic bit operations, so an atomic RMW from Rust is the same protocol as
        // the inline `tasklet_schedule()`: set SCHED, and queue only if it was clear.
        let state = unsafe { AtomicUsize::from_ptr((&raw mut (*t).state).cast::<usize>()) };
        if state.fetch_or(bit, Ordering::SeqCst) & bit == 0 {
            // SAFETY: the tasklet is initialised and we own the SCHED bit, as the C contract of
            // `__tasklet_schedule` requires.
            unsafe {
                if hi {
                    bindings::__tasklet_hi_schedule(t)
                } else {
                    bindings::__tasklet_schedule(t)
                }
            }
        }
    }

    /// `tasklet_schedule()`: run the tasklet once more on this CPU (normal priority).
    pub(crate) fn schedule(&self) {
        self.sched(false)
    }

    /// `tasklet_hi_schedule()`: run it from `HI_SOFTIRQ`.
    pub(crate) fn hi_schedule(&self) {
        self.sched(true)
    }

    /// `tasklet_kill()`: wait until it is neither scheduled nor running. Process context only.
    pub(crate) fn kill(&self) {
        // SAFETY: the tasklet is initialised; callers are in process context (teardown/drop).
        unsafe { bindings::tasklet_kill(self.raw.get()) };
    }
}

#[pinned_drop]
impl<T: Sync> PinnedDrop for Tasklet<T> {
    fn drop(self: Pin<&mut Self>) {
        self.kill();
    }
}
