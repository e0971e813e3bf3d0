// SPDX-License-Identifier: GPL-2.0

//! An owned workqueue (`alloc_workqueue` / `destroy_workqueue`) and `flush_work`.

use core::ptr::NonNull;
use kernel::{
    bindings,
    prelude::*,
    sync::Arc,
    workqueue::{DelayedWork, HasWork, Queue, RawWorkItem, Work, WorkItem},
};

/// `queue_work_on(cpu, q, w)`: as `Queue::enqueue`, on CPU `cpu` (`None`: `WORK_CPU_UNBOUND`,
/// the queueing CPU for a per-CPU queue). `cpu` must be below `nr_cpu_ids`, else the work is
/// queued unbound. Fails (returns the item) if it is queued already.
pub(crate) fn enqueue_on<W, const ID: u64>(q: &Queue, cpu: Option<u32>, w: W) -> W::EnqueueOutput
where
    W: RawWorkItem<ID> + Send + 'static,
{
    let cpu = match cpu {
        Some(c) if c < kernel::cpu::nr_cpu_ids() => c as kernel::ffi::c_int,
        _ => bindings::wq_misc_consts_WORK_CPU_UNBOUND as kernel::ffi::c_int,
    };
    // CAST: `Queue` is `repr(transparent)` over `Opaque<workqueue_struct>`.
    let queue_ptr = core::ptr::from_ref(q).cast::<bindings::workqueue_struct>().cast_mut();
    // SAFETY: as in `Queue::enqueue`: the closure returns false only if the work is queued
    // already; `W` is `Send + 'static`; `queue_work_on` dereferences the pointer `__enqueue`
    // keeps valid for the call (and, once queued, until the work function runs); `cpu` is a
    // possible CPU id or `WORK_CPU_UNBOUND`.
    unsafe { w.__enqueue(move |work_ptr| bindings::queue_work_on(cpu, queue_ptr, work_ptr)) }
}

/// `WQ_PERCPU`: per-CPU worker pools, like `system_wq`.
pub(crate) const WQ_PERCPU: u32 = bindings::wq_flags_WQ_PERCPU;
/// `WQ_UNBOUND`: the unbound pools.
pub(crate) const WQ_UNBOUND: u32 = bindings::wq_flags_WQ_UNBOUND;
/// `__WQ_ORDERED`: with `WQ_UNBOUND` and `max_active` 1, `alloc_ordered_workqueue()` (a C
/// macro bindgen cannot see).
pub(crate) const WQ_ORDERED: u32 = bindings::wq_flags___WQ_ORDERED;
/// `WQ_CPU_INTENSIVE`: work items that do not count for concurrency management.
pub(crate) const WQ_CPU_INTENSIVE: u32 = bindings::wq_flags_WQ_CPU_INTENSIVE;

/// Workqueues of this module alive now (allocated, not yet destroyed): what a leak would
/// raise (`/sys/class/irqstorm/live`).
pub(crate) static LIVE: kernel::sync::atomic::Atomic<u32> = kernel::sync::atomic::Atomic::new(0);

/// A workqueue allocated by this driver; destroyed (after draining) on drop.
pub(crate) struct OwnedQueue {
    ptr: NonNull<bindings::workqueue_struct>,
}

// SAFETY: workqueues are thread safe.
unsafe impl Send for OwnedQueue {}
// SAFETY: as above.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// `alloc_workqueue("%s", flags, max_active, name)`.
    pub(crate) fn new(name: &'static CStr, flags: u32, max_active: i32) -> Result<Self> {
        // SAFETY: "%s" with a static NUL-terminated string argument.
        let p = unsafe {
            bindings::alloc_workqueue_noprof(
                c"%s".as_char_ptr(),
                flags,
                max_active,
                name.as_char_ptr(),
            )
        };
        let ptr = NonNull::new(p).ok_or(ENOMEM)?;
        LIVE.add(1, kernel::sync::atomic::Relaxed);
        Ok(Self { ptr })
    }

    /// The queue, to enqueue work items on.
    pub(crate) fn queue(&self) -> &Queue {
        // SAFETY: `ptr` is a live workqueue until `self` is dropped, which outlives the borrow.
        unsafe { Queue::from_raw(self.ptr.as_ptr()) }
    }

    /// `flush_workqueue()`.
    pub(crate) fn flush(&self) {
        // SAFETY: `ptr` is a live workqueue.
        unsafe { bindings::__flush_workqueue(self.ptr.as_ptr()) };
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_workqueue` and is destroyed once; destroy drains it.
        unsafe { bindings::destroy_workqueue(self.ptr.as_ptr()) };
        LIVE.fetch_sub(1, kernel::sync::atomic::Relaxed);
    }
}

/// `flush_work()`: wait for the last queued instance of `w` to finish. Process context only.
pub(crate) fn flush_work<T: ?Sized, const ID: u64>(w: &Work<T, ID>) -> bool {
    // SAFETY: `w` is a valid, initialised work item (it is pinned inside its owner).
    unsafe { bindings::flush_work(Work::raw_get(w)) }
}

/// `flush_delayed_work()`: a pending delayed work is queued at once, then waited for (its
/// wait cut short; teardown). Process context only.
pub(crate) fn flush_delayed_work<T: ?Sized, const ID: u64>(w: &DelayedWork<T, ID>) -> bool {
    // CAST: `DelayedWork` is `repr(transparent)` over `Opaque<delayed_work>`, itself
    // `repr(transparent)` over the C struct.
    let dw = core::ptr::from_ref(w).cast::<bindings::delayed_work>().cast_mut();
    // SAFETY: `dw` points to a valid, initialised `delayed_work` (pinned inside its owner);
    // `flush_delayed_work` may be called on it from process context at any time.
    unsafe { bindings::flush_delayed_work(dw) }
}

/// Releases the reference a dequeued `Arc<T>` work item held.
///
/// # Safety
///
/// `owner`'s work `ID` was queued (as an `Arc<T>`) and has just been dequeued without running.
unsafe fn release_dequeued<T>(owner: &Arc<T>) {
    // SAFETY: kernel::workqueue's `RawWorkItem for Arc<T>` leaks one reference with
    // `Arc::into_raw` when it queues and takes it back in its run; the caller says the run will
    // not happen, so this reference is ours to release. The caller holds `owner`: not the last.
    drop(unsafe { Arc::from_raw(Arc::as_ptr(owner)) });
}

/// `cancel_work_sync()` on `owner`'s work item `ID`: a queued instance is dequeued (and the
/// reference it held released), a running one waited for. Process context only. Returns
/// whether one was queued.
pub(crate) fn cancel_work_sync<T, const ID: u64>(owner: &Arc<T>) -> bool
where
    T: HasWork<T, ID> + WorkItem<ID, Pointer = Arc<T>>,
{
    // SAFETY: `owner` points to a live `T`; `raw_get_work` returns its `Work` field.
    let work = unsafe { T::raw_get_work(Arc::as_ptr(owner).cast_mut()) };
    // SAFETY: the work item is initialised (it is pinned inside `owner`); process context.
    let was_queued = unsafe { bindings::cancel_work_sync(Work::raw_get(work)) };
    if was_queued {
        // SAFETY: it was queued and is now dequeued without running.
        unsafe { release_dequeued(owner) };
    }
    was_queued
}

/// `cancel_delayed_work_sync()` on `owner`'s delayed work item `ID` (as
/// [`cancel_work_sync`], its timer stopped too).
pub(crate) fn cancel_delayed_work_sync<T, const ID: u64>(owner: &Arc<T>) -> bool
where
    T: HasWork<T, ID> + WorkItem<ID, Pointer = Arc<T>>,
{
    // SAFETY: as in `cancel_work_sync`; for a delayed work item the `Work` is the `work` field
    // of its `delayed_work` (`impl_has_delayed_work!`).
    let work = unsafe { Work::raw_get(T::raw_get_work(Arc::as_ptr(owner).cast_mut())) };
    // SAFETY: `work` is the `work` field of a `struct delayed_work`.
    let dw = unsafe { kernel::container_of!(work, bindings::delayed_work, work) };
    // SAFETY: `dw` is an initialised delayed work item pinned inside `owner`; process context.
    let was_queued = unsafe { bindings::cancel_delayed_work_sync(dw) };
    if was_queued {
        // SAFETY: it was queued and is now dequeued without running.
        unsafe { release_dequeued(owner) };
    }
    was_queued
}

/// `system_percpu_wq`: the per-CPU system workqueue. In 7.3 `system_wq` (what
/// `kernel::workqueue::system()` returns) is its deprecated alias and warns once per work
/// function, so the driver uses the new name for mechanism 6 (`wq_system`).
pub(crate) fn system_percpu() -> &'static Queue {
    // SAFETY: `system_percpu_wq` is initialised at boot (before modules load) and never freed;
    // reading the pointer races with nothing.
    unsafe { Queue::from_raw(bindings::system_percpu_wq) }
}
