// SPDX-License-Identifier: GPL-2.0

//! `timer_list` (jiffies timers, run from the timer softirq), in the style of
//! `kernel::time::hrtimer::HasHrTimer`.
//!
//! The owner embeds a [`Timer<Self, ID>`] field, declares it with [`impl_has_timer!`] and
//! implements [`TimerCallback<ID>`]. Arming takes an `Arc<Owner>`: a pending timer holds one
//! reference, released by its callback or by [`Timer::shutdown`], so the owner outlives every
//! pending or running callback and callers need no `unsafe`.
//! The owner's teardown shuts the timer down before dropping its last reference, so that the
//! owner is never dropped from a callback (softirq context).

use super::clock::jiffies;
use core::marker::{PhantomData, PhantomPinned};
use kernel::{
    bindings,
    ffi::c_ulong,
    new_spinlock_irq,
    prelude::*,
    sync::{Arc, ArcBorrow, SpinLockIrq},
    types::Opaque,
};

/// What a timer runs when it expires (timer softirq).
pub(crate) trait TimerCallback<const ID: u64 = 0>: Sized + Send + Sync {
    /// Called once per expiry of an armed timer.
    fn run(this: ArcBorrow<'_, Self>);
}

/// Declares that a type contains a [`Timer<Self, ID>`]; implement it with [`impl_has_timer!`].
///
/// # Safety
///
/// `raw_get_timer` and `timer_container_of` must address the same field of `Self` and be
/// inverses of each other.
pub(crate) unsafe trait HasTimer<const ID: u64 = 0>: TimerCallback<ID> {
    /// Pointer to the timer field of `*ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `Self`.
    unsafe fn raw_get_timer(ptr: *const Self) -> *const Timer<Self, ID>;

    /// Pointer to the `Self` containing the timer `*ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to the timer field of a `Self`.
    unsafe fn timer_container_of(ptr: *const Timer<Self, ID>) -> *const Self;
}

/// Implements [`HasTimer`] for a field (a path such as `self.a.b` is accepted).
macro_rules! impl_has_timer {
    ($(impl HasTimer<$id:tt> for $self:ty { self.$($field:ident).+ })*) => {$(
        // SAFETY: both methods address the same field; the compiler checks its type.
        unsafe impl $crate::kwrap::timer_list::HasTimer<$id> for $self {
            #[inline]
            unsafe fn raw_get_timer(
                ptr: *const Self,
            ) -> *const $crate::kwrap::timer_list::Timer<Self, $id> {
                // SAFETY: the caller passes a valid pointer.
                unsafe { ::core::ptr::addr_of!((*ptr).$($field).+) }
            }

            #[inline]
            unsafe fn timer_container_of(
                ptr: *const $crate::kwrap::timer_list::Timer<Self, $id>,
            ) -> *const Self {
                // SAFETY: the caller passes a pointer to this field of a `Self`.
                unsafe { ::kernel::container_of!(ptr.cast_mut(), Self, $($field).+) }.cast_const()
            }
        }
    )*};
}
pub(crate) use impl_has_timer;

/// A `timer_list` embedded in `T`, calling `<T as TimerCallback<ID>>::run`.
///
/// # Invariants
///
/// `raw` was initialised by `timer_init_key` with [`Timer::callback`]. It is only ever armed
/// through [`Timer::arm_in_jiffies`], which finds it inside an `Arc<T>`; while it is pending it
/// owns exactly one leaked reference to that `T`. `shut_down` is set (under its lock) before
/// `timer_shutdown_sync`, and no arming happens once it is set.
#[pin_data(PinnedDrop)]
pub(crate) struct Timer<T, const ID: u64 = 0> {
    #[pin]
    raw: Opaque<bindings::timer_list>,
    /// Orders arming against shutdown: after shutdown `mod_timer` is a silent no-op, which
    /// must not be mistaken for "now pending" (that would leak the reference).
    #[pin]
    shut_down: SpinLockIrq<bool>,
    _owner: PhantomData<T>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: only `ArcBorrow<T>` with `T: Send + Sync` is handed out; the C timer API is thread
// safe.
unsafe impl<T: Send + Sync, const ID: u64> Send for Timer<T, ID> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync, const ID: u64> Sync for Timer<T, ID> {}

impl<T: HasTimer<ID>, const ID: u64> Timer<T, ID> {
    /// Creates a timer (the C `timer_setup()`).
    pub(crate) fn new(
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
            shut_down <- new_spinlock_irq!(false, "irqstorm_timer_shutdown"),
            _owner: PhantomData,
            _pin: PhantomPinned,
        })
    }

    /// Timer callback.
    ///
    /// # Safety
    ///
    /// Only called by the timer core for a timer set up by [`Timer::new`].
    unsafe extern "C" fn callback(t: *mut bindings::timer_list) {
        // SAFETY: `t` is the `raw` field of a `Timer<T, ID>` set up by `new`.
        let this = unsafe { kernel::container_of!(Opaque::cast_from(t).cast_mut(), Self, raw) };
        // SAFETY: by the type invariant the timer was armed from inside an `Arc<T>`.
        let owner = unsafe { T::timer_container_of(this) };
        // SAFETY: the expired (no longer pending) timer owned one leaked reference.
        let owner = unsafe { Arc::from_raw(owner) };
        T::run(owner.as_arc_borrow());
    }

    /// `mod_timer(t, jiffies + delta)` on the timer of `this`. Safe from any context. No-op
    /// after [`Timer::shutdown`].
    pub(crate) fn arm_in_jiffies(this: &Arc<T>, delta: u64) {
        // SAFETY: `this` points to a valid `T`.
        let timer = unsafe { &*T::raw_get_timer(Arc::as_ptr(this)) };
        let shut_down = timer.shut_down.lock();
        if *shut_down {
            return;
        }
        let reference = Arc::into_raw(this.clone());
        // SAFETY: the timer is initialised; `mod_timer` is IRQ-safe.
        let was_pending =
            unsafe { bindings::mod_timer(timer.raw.get(), (jiffies() + delta) as c_ulong) } != 0;
        if was_pending {
            // The pending timer already owns a reference: give ours back. Not the last one,
            // since the caller holds `this`.
            // SAFETY: `reference` came from `Arc::into_raw` just above.
            drop(unsafe { Arc::from_raw(reference) });
        }
        drop(shut_down);
    }
}

impl<T, const ID: u64> Timer<T, ID> {
    /// `timer_shutdown_sync()`: mark shut down, deactivate, wait for a running callback; further
    /// arming is a no-op. Process context only.
    fn shutdown_raw(&self) -> bool {
        *self.shut_down.lock() = true;
        // SAFETY: the timer is initialised; callers are in process context.
        unsafe { bindings::timer_shutdown_sync(self.raw.get()) != 0 }
    }
}

impl<T: HasTimer<ID>, const ID: u64> Timer<T, ID> {
    /// Shuts the timer of `this` down (see `timer_shutdown_sync()`), releasing the reference a
    /// pending timer held. Process context only.
    pub(crate) fn shutdown(this: &Arc<T>) {
        // SAFETY: `this` points to a valid `T`.
        let timer = unsafe { &*T::raw_get_timer(Arc::as_ptr(this)) };
        if timer.shutdown_raw() {
            // SAFETY: the timer was pending, so by the type invariant it owned one leaked
            // reference to `*this`, which nobody else releases now. It is not the last one:
            // the caller holds `this`.
            drop(unsafe { Arc::from_raw(Arc::as_ptr(this)) });
        }
    }
}

impl<T: HasTimer<ID>, const ID: u64> Timer<T, ID> {
    /// `timer_delete_sync()` on the timer of `this`: a pending expiry is dropped (and the
    /// reference it held released), a running callback waited for; the timer can be armed
    /// again. Process context only. Returns whether it was pending.
    pub(crate) fn delete_sync(this: &Arc<T>) -> bool {
        // SAFETY: `this` points to a valid `T`.
        let timer = unsafe { &*T::raw_get_timer(Arc::as_ptr(this)) };
        // SAFETY: the timer is initialised; callers are in process context. Every pending
        // state owns exactly one reference (`arm_in_jiffies` gives back its own when the
        // timer was pending already), so a concurrent arm keeps the count right.
        let was_pending = unsafe { bindings::timer_delete_sync(timer.raw.get()) } != 0;
        if was_pending {
            // SAFETY: as in `shutdown`: a pending timer owned one leaked reference.
            drop(unsafe { Arc::from_raw(Arc::as_ptr(this)) });
        }
        was_pending
    }
}

#[pinned_drop]
impl<T, const ID: u64> PinnedDrop for Timer<T, ID> {
    fn drop(self: Pin<&mut Self>) {
        // A pending timer holds a reference to the owner, so none is pending once the owner is
        // dropped: there is no reference to release here.
        let _ = self.shutdown_raw();
    }
}
