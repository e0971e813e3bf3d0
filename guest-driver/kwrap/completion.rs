// SPDX-License-Identifier: GPL-2.0

//! `struct completion` with `complete()` (wake one) and `wait_for_completion_timeout()`.
//!
//! `kernel::sync::Completion` only offers `complete_all` and an untimed wait.

use kernel::{bindings, prelude::*, types::Opaque};

/// A completion (counting: every `complete()` releases one waiter/wait).
#[pin_data]
pub(crate) struct Completion {
    #[pin]
    raw: Opaque<bindings::completion>,
}

// SAFETY: `struct completion` is designed to be used from any thread.
unsafe impl Send for Completion {}
// SAFETY: as above; all methods take `&self` and the C side locks internally.
unsafe impl Sync for Completion {}

impl Completion {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid memory for a `struct completion`.
            raw <- Opaque::ffi_init(|slot: *mut bindings::completion| unsafe {
                bindings::init_completion(slot)
            }),
        })
    }

    /// `complete()`: wake one waiter. Safe from hard IRQ context.
    pub(crate) fn complete(&self) {
        // SAFETY: the completion is initialised.
        unsafe { bindings::complete(self.raw.get()) };
    }

    /// `wait_for_completion_timeout()`. Returns `true` if completed, `false` on timeout.
    /// Process context only.
    pub(crate) fn wait_timeout(&self, jiffies: u64) -> bool {
        // SAFETY: the completion is initialised; callers are in process context.
        unsafe { bindings::wait_for_completion_timeout(self.raw.get(), jiffies as c_ulong) != 0 }
    }
}
