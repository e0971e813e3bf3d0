// SPDX-License-Identifier: GPL-2.0

//! Kernel threads (`kthread_create_on_node`, `wake_up_process`, `kthread_stop`).

use kernel::{bindings, error::from_err_ptr, prelude::*, sync::Arc};

/// A running kernel thread that calls `func(&ctx)` until it is asked to stop.
///
/// # Invariants
///
/// `task` is a thread created by `kthread_create_on_node` running [`thread_fn`], which does not
/// return before `kthread_should_stop()` is true; so `task` stays valid until `kthread_stop`.
/// Kernel threads of this module not yet stopped (`/sys/class/irqstorm/live`).
pub(crate) static LIVE: kernel::sync::atomic::Atomic<u32> = kernel::sync::atomic::Atomic::new(0);

pub(crate) struct KThread {
    task: *mut bindings::task_struct,
    stopped: bool,
}

// SAFETY: the task pointer may be used (stopped) from any thread.
unsafe impl Send for KThread {}
// SAFETY: `&KThread` exposes nothing.
unsafe impl Sync for KThread {}

struct Ctx<T> {
    arg: Arc<T>,
    func: fn(&T),
}

/// `kthread_should_stop()` for the current kthread.
pub(crate) fn should_stop() -> bool {
    // SAFETY: only called from threads started by `KThread::spawn` (kthreads).
    unsafe { bindings::kthread_should_stop() }
}

/// Thread entry.
///
/// # Safety
///
/// Only called by the kthread core with the `data` passed to `kthread_create_on_node`.
unsafe extern "C" fn thread_fn<T: Send + Sync>(data: *mut c_void) -> c_int {
    // SAFETY: `data` is the `KBox<Ctx<T>>` leaked in `spawn`; ownership passes to this thread.
    let ctx = unsafe { KBox::from_raw(data.cast::<Ctx<T>>()) };
    while !should_stop() {
        (ctx.func)(&ctx.arg);
    }
    0
}

impl KThread {
    /// Starts a kthread named `name` that loops `func(&arg)` until [`KThread::stop`].
    /// `func` must return periodically (e.g. wait with a timeout) so the loop can see the stop
    /// request.
    pub(crate) fn spawn<T: Send + Sync + 'static>(
        arg: Arc<T>,
        func: fn(&T),
        name: &'static CStr,
        fifo: bool,
    ) -> Result<Self> {
        let ctx = KBox::new(Ctx { arg, func }, GFP_KERNEL)?;
        let data = KBox::into_raw(ctx);
        // SAFETY: `thread_fn::<T>` matches the thread function ABI and takes ownership of
        // `data`; the format is "%s" with a static NUL-terminated name.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(thread_fn::<T>),
                data.cast(),
                bindings::NUMA_NO_NODE,
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        let task = match from_err_ptr(task) {
            Ok(t) => t,
            Err(e) => {
                // SAFETY: the thread was not created, so `data` is still ours.
                drop(unsafe { KBox::from_raw(data) });
                return Err(e);
            }
        };
        if fifo {
            // SAFETY: `task` is a valid, not yet running kthread.
            unsafe { bindings::sched_set_fifo(task) };
        }
        // SAFETY: `task` is a valid new kthread.
        unsafe { bindings::wake_up_process(task) };
        LIVE.add(1, kernel::sync::atomic::Relaxed);
        Ok(Self { task, stopped: false })
    }

    /// `kthread_stop()`: set should_stop, wake the thread and wait for it to exit.
    pub(crate) fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            // SAFETY: by the type invariant the task is still valid (it cannot exit before
            // `kthread_should_stop()`), and this is called once.
            unsafe { bindings::kthread_stop(self.task) };
            LIVE.fetch_sub(1, kernel::sync::atomic::Relaxed);
        }
    }
}

impl Drop for KThread {
    fn drop(&mut self) {
        self.stop();
    }
}
