// SPDX-License-Identifier: GPL-2.0

//! Legacy tasklets (`tasklet_struct`), in the style of `kernel::workqueue::Work`.
//!
//! The owner embeds a [`Tasklet<Self, ID>`] field, declares it with [`impl_has_tasklet!`] and
//! implements [`TaskletCallback<ID>`]. Scheduling takes an `Arc<Owner>`: every queued instance
//! holds one reference, which the callback releases after running, so the owner outlives every
//! pending or running callback and callers need no `unsafe`.
//! The owner's teardown kills the tasklet before dropping its last reference, so that the
//! owner is never dropped from a callback (softirq context).
//!
//! Tasklets are deprecated upstream in favour of BH workqueues (`system_bh`,
//! `system_bh_highpri`, since 6.9); the driver shows both side by side.

use core::{
    marker::{PhantomData, PhantomPinned},
    sync::atomic::{AtomicUsize, Ordering},
};
use kernel::{
    bindings,
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::Opaque,
};

/// What a tasklet runs, in softirq context (`TASKLET_SOFTIRQ` or `HI_SOFTIRQ`).
pub(crate) trait TaskletCallback<const ID: u64 = 0>: Sized + Send + Sync {
    /// Called once per successful [`Tasklet::schedule`] / [`Tasklet::hi_schedule`].
    fn run(this: ArcBorrow<'_, Self>);
}

/// Declares that a type contains a [`Tasklet<Self, ID>`]; implement it with
/// [`impl_has_tasklet!`].
///
/// # Safety
///
/// `raw_get_tasklet` and `tasklet_container_of` must address the same field of `Self` and be
/// inverses of each other.
pub(crate) unsafe trait HasTasklet<const ID: u64 = 0>: TaskletCallback<ID> {
    /// Pointer to the tasklet field of `*ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `Self`.
    unsafe fn raw_get_tasklet(ptr: *const Self) -> *const Tasklet<Self, ID>;

    /// Pointer to the `Self` containing the tasklet `*ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to the tasklet field of a `Self`.
    unsafe fn tasklet_container_of(ptr: *const Tasklet<Self, ID>) -> *const Self;
}

/// Implements [`HasTasklet`] for a field (a path such as `self.a.b` is accepted).
macro_rules! impl_has_tasklet {
    ($(impl HasTasklet<$id:tt> for $self:ty { self.$($field:ident).+ })*) => {$(
        // SAFETY: both methods address the same field; the compiler checks its type.
        unsafe impl $crate::kwrap::tasklet::HasTasklet<$id> for $self {
            #[inline]
            unsafe fn raw_get_tasklet(
                ptr: *const Self,
            ) -> *const $crate::kwrap::tasklet::Tasklet<Self, $id> {
                // SAFETY: the caller passes a valid pointer.
                unsafe { ::core::ptr::addr_of!((*ptr).$($field).+) }
            }

            #[inline]
            unsafe fn tasklet_container_of(
                ptr: *const $crate::kwrap::tasklet::Tasklet<Self, $id>,
            ) -> *const Self {
                // SAFETY: the caller passes a pointer to this field of a `Self`.
                unsafe { ::kernel::container_of!(ptr.cast_mut(), Self, $($field).+) }.cast_const()
            }
        }
    )*};
}
pub(crate) use impl_has_tasklet;

/// A tasklet embedded in `T`, calling `<T as TaskletCallback<ID>>::run`.
///
/// # Invariants
///
/// `raw` was initialised by `tasklet_setup` with [`Tasklet::callback`]. It is only ever
/// scheduled through [`Tasklet::schedule`] / [`Tasklet::hi_schedule`], which find it inside an
/// `Arc<T>` and leak one reference per queued instance for the callback to take back.
#[pin_data(PinnedDrop)]
pub(crate) struct Tasklet<T, const ID: u64 = 0> {
    #[pin]
    raw: Opaque<bindings::tasklet_struct>,
    _owner: PhantomData<T>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the tasklet only hands out `ArcBorrow<T>` with `T: Send + Sync`; the C side is
// thread safe.
unsafe impl<T: Send + Sync, const ID: u64> Send for Tasklet<T, ID> {}
// SAFETY: as above; all methods take `&self` and are safe to call concurrently.
unsafe impl<T: Send + Sync, const ID: u64> Sync for Tasklet<T, ID> {}

impl<T: HasTasklet<ID>, const ID: u64> Tasklet<T, ID> {
    /// `tasklet_setup()`.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid uninitialised memory for a `tasklet_struct`.
            raw <- Opaque::ffi_init(|slot: *mut bindings::tasklet_struct| unsafe {
                bindings::tasklet_setup(slot, Some(Self::callback))
            }),
            _owner: PhantomData,
            _pin: PhantomPinned,
        })
    }

    /// Tasklet callback.
    ///
    /// # Safety
    ///
    /// Only called by the softirq core for a tasklet set up by [`Tasklet::new`].
    unsafe extern "C" fn callback(t: *mut bindings::tasklet_struct) {
        // SAFETY: `t` is the `raw` field of a `Tasklet<T, ID>` (set up by `new`); `Opaque` is
        // `repr(transparent)`.
        let this = unsafe { kernel::container_of!(Opaque::cast_from(t).cast_mut(), Self, raw) };
        // SAFETY: by the type invariant the tasklet was scheduled from inside an `Arc<T>`, so it
        // is the field of that `T`.
        let owner = unsafe { T::tasklet_container_of(this) };
        // SAFETY: the scheduling that queued this run leaked one reference (type invariant);
        // the core clears TASKLET_STATE_SCHED before calling us, once per queued instance.
        let owner = unsafe { Arc::from_raw(owner) };
        T::run(owner.as_arc_borrow());
    }

    fn sched(this: &Arc<T>, hi: bool) {
        // SAFETY: `this` points to a valid `T`.
        let t = unsafe { T::raw_get_tasklet(Arc::as_ptr(this)) };
        // SAFETY: `t` points to an initialised tasklet inside the live `*this`.
        let raw = unsafe { (*t).raw.get() };
        let bit = 1usize << bindings::TASKLET_STATE_SCHED;
        // SAFETY: `state` is an aligned `unsigned long` of the initialised tasklet; C accesses it
        // only with atomic bit operations, so an atomic RMW from Rust is the same protocol as
        // the inline `tasklet_schedule()`: set SCHED, and queue only if it was clear.
        let state = unsafe { AtomicUsize::from_ptr((&raw mut (*raw).state).cast::<usize>()) };
        if state.fetch_or(bit, Ordering::SeqCst) & bit == 0 {
            // The queued instance owns one reference until its callback runs.
            let _ = Arc::into_raw(this.clone());
            // SAFETY: the tasklet is initialised and we own the SCHED bit, as the C contract of
            // `__tasklet_schedule` requires.
            unsafe {
                if hi {
                    bindings::__tasklet_hi_schedule(raw)
                } else {
                    bindings::__tasklet_schedule(raw)
                }
            }
        }
    }

    /// `tasklet_schedule()`: run the tasklet of `this` once more on this CPU (normal priority).
    pub(crate) fn schedule(this: &Arc<T>) {
        Self::sched(this, false)
    }

    /// `tasklet_hi_schedule()`: run it from `HI_SOFTIRQ`.
    pub(crate) fn hi_schedule(this: &Arc<T>) {
        Self::sched(this, true)
    }
}

impl<T, const ID: u64> Tasklet<T, ID> {
    /// `tasklet_kill()`: wait until it is neither scheduled nor running (a queued instance runs
    /// first and releases its reference). Process context only.
    pub(crate) fn kill(&self) {
        // SAFETY: the tasklet is initialised; callers are in process context (teardown/drop).
        unsafe { bindings::tasklet_kill(self.raw.get()) };
    }
}

#[pinned_drop]
impl<T, const ID: u64> PinnedDrop for Tasklet<T, ID> {
    fn drop(self: Pin<&mut Self>) {
        // A queued instance holds a reference to the owner, so none is queued once the owner is
        // dropped; this only guards against misuse of the C object.
        self.kill();
    }
}
