// SPDX-License-Identifier: GPL-2.0

//! `timer_list` (jiffies timers, run from the timer softirq).

use super::clock::jiffies;
use core::marker::PhantomPinned;
use kernel::{bindings, ffi::c_ulong, prelude::*, types::Opaque};

/// A `timer_list` that calls `func(owner)` when it expires.
///
/// # Invariants
///
/// `raw` was initialised by `timer_init_key` with [`Timer::callback`]; `owner` points to the
/// pinned object that contains this timer and outlives it.
#[pin_data(PinnedDrop)]
pub(crate) struct Timer<T: Sync> {
    #[pin]
    raw: Opaque<bindings::timer_list>,
    owner: *const T,
    func: fn(&T),
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: only `&T` with `T: Sync` is handed out; the C timer API is thread safe.
unsafe impl<T: Sync> Send for Timer<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Timer<T> {}

impl<T: Sync> Timer<T> {
    /// Creates a timer (the C `timer_setup()`).
    ///
    /// # Safety
    ///
    /// `owner` must point to the pinned object that contains the returned timer.
    pub(crate) unsafe fn new(
        owner: *const T,
        func: fn(&T),
        name: &'static CStr,
        key: Pin<&'static kernel::sync::LockClassKey>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid memory for a `timer_list`; `name` and `key` are static.
            raw <- Opaque::ffi_init(move |slot: *mut bindings::timer_list| unsafe {
                bindings::timer_init_key(
                    slot,
                    Some(Self::callback),
                    0,
                    name.as_char_ptr(),
                    key.as_ptr(),
                )
            }),
            owner,
            func,
            _pin: PhantomPinned,
        })
    }

    /// Timer callback.
    ///
    /// # Safety
    ///
    /// Only called by the timer core for a timer set up by [`Timer::new`].
    unsafe extern "C" fn callback(t: *mut bindings::timer_list) {
        // SAFETY: `t` is the `raw` field of a `Timer<T>` set up by `new`.
        let this = unsafe { &*kernel::container_of!(Opaque::cast_from(t).cast_mut(), Self, raw) };
        // SAFETY: by the type invariant `owner` is valid while the timer can fire.
        (this.func)(unsafe { &*this.owner });
    }

    /// `mod_timer(t, jiffies + delta)`. Safe from any context. No-op after [`Timer::shutdown`].
    pub(crate) fn arm_in_jiffies(&self, delta: u64) {
        // SAFETY: the timer is initialised; `mod_timer` is IRQ-safe.
        unsafe { bindings::mod_timer(self.raw.get(), (jiffies() + delta) as c_ulong) };
    }

    /// `timer_shutdown_sync()`: deactivate, wait for a running callback, and make further
    /// `mod_timer` calls no-ops. Process context only.
    pub(crate) fn shutdown(&self) {
        // SAFETY: the timer is initialised; callers are in process context.
        unsafe { bindings::timer_shutdown_sync(self.raw.get()) };
    }
}

#[pinned_drop]
impl<T: Sync> PinnedDrop for Timer<T> {
    fn drop(self: Pin<&mut Self>) {
        self.shutdown();
    }
}
