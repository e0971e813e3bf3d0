// SPDX-License-Identifier: GPL-2.0

//! A wait queue whose waiter stamps the time as the first thing it does when it runs again.
//!
//! `kernel::sync::CondVar` re-takes the caller's lock and finishes the wait before returning,
//! so the first stamp a woken thread can take comes after that path (~4 us under TCG after the
//! `sched_switch` into it). The `kthread` mechanism's "bottom-half start" must be the first
//! thing the woken context does (issue 9 item 3), so this wait takes the stamp right after
//! `schedule()` returns and only then finishes the wait.

use super::clock::Stamp;
use kernel::{
    bindings,
    prelude::*,
    task::{TASK_INTERRUPTIBLE, TASK_NORMAL},
    types::Opaque,
};

/// A `struct wait_queue_head` with exclusive waits.
#[pin_data]
pub(crate) struct WaitQueue {
    #[pin]
    head: Opaque<bindings::wait_queue_head>,
}

// SAFETY: a `wait_queue_head` has its own spinlock; every method takes `&self`.
unsafe impl Send for WaitQueue {}
// SAFETY: as above.
unsafe impl Sync for WaitQueue {}

impl WaitQueue {
    pub(crate) fn new(name: &'static CStr, key: Pin<&'static kernel::sync::LockClassKey>) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid memory for a `wait_queue_head`; `name` and `key` are
            // static, so they outlive it.
            head <- Opaque::ffi_init(|slot| unsafe {
                bindings::__init_waitqueue_head(slot, name.as_char_ptr(), key.as_ptr())
            }),
        })
    }

    /// Wakes one exclusive waiter. Any context (hard IRQ included).
    pub(crate) fn notify_one(&self) {
        // SAFETY: the head is initialised; `__wake_up` locks it itself.
        unsafe { bindings::__wake_up(self.head.get(), TASK_NORMAL, 1, core::ptr::null_mut()) };
    }

    /// Wakes every waiter. Any context.
    pub(crate) fn notify_all(&self) {
        // SAFETY: as in `notify_one`; 0 = wake all exclusive waiters.
        unsafe { bindings::__wake_up(self.head.get(), TASK_NORMAL, 0, core::ptr::null_mut()) };
    }

    /// Sleeps until `ready()` is true (checked after the task is on the queue, so a wake-up
    /// between the check and the sleep is not lost). Returns the stamp taken right after the
    /// sleep that ended with `ready()` true, or `None` if `ready()` held without sleeping.
    /// A signal ends a sleep like a wake-up. Process context only.
    pub(crate) fn wait_until(&self, mut ready: impl FnMut() -> bool) -> Option<Stamp> {
        let wait = Opaque::<bindings::wait_queue_entry>::uninit();
        // SAFETY: `wait` is valid memory for a `wait_queue_entry` for the whole function.
        unsafe { bindings::init_wait(wait.get()) };
        let mut woke = None;
        loop {
            // SAFETY: head and entry are initialised; the entry lives on this stack frame and is
            // removed by `finish_wait` below before it goes out of scope.
            unsafe { bindings::prepare_to_wait_exclusive(self.head.get(), wait.get(), TASK_INTERRUPTIBLE) };
            if ready() {
                break;
            }
            // SAFETY: process context (callers' contract); the task state was set above.
            unsafe { bindings::schedule() };
            woke = Some(Stamp::now());
            if kernel::current!().signal_pending() {
                break;
            }
        }
        // SAFETY: as for `prepare_to_wait_exclusive`; this also restores TASK_RUNNING.
        unsafe { bindings::finish_wait(self.head.get(), wait.get()) };
        if ready() { woke } else { None }
    }
}
