// SPDX-License-Identifier: GPL-2.0

//! One MSI-X vector with a threaded IRQ handler, owned together.
//!
//! `ThreadedRegistration<'a, H>` borrows the `IrqVectorRegistration` it was created from, so
//! storing both in the driver data would be self-referential. [`MsixIrq`] keeps the vector
//! registration in a heap box (stable address) and drops the IRQ registration first
//! (`free_irq` before `pci_free_irq_vectors`). No `bindings` are touched here.

use kernel::{
    bindings,
    device::Bound,
    irq::{Flags, IrqRequest, ThreadedHandler, ThreadedRegistration},
    pci,
    prelude::*,
};

/// Wakes the IRQ thread of an [`MsixIrq`] from any context (`irq_wake_thread`), e.g. from the
/// local reference hrtimer, as if the hard handler had returned `WakeThread`.
#[derive(Clone, Copy)]
pub(crate) struct ThreadWaker {
    irq: u32,
    cookie: usize,
}

impl ThreadWaker {
    pub(crate) const NONE: Self = Self { irq: 0, cookie: 0 };

    pub(crate) fn from_raw_parts(irq: u32, cookie: u64) -> Self {
        Self { irq, cookie: cookie as usize }
    }

    pub(crate) fn raw_parts(self) -> (u32, u64) {
        (self.irq, self.cookie as u64)
    }

    pub(crate) fn wake(self) {
        if self.cookie == 0 {
            return;
        }
        // SAFETY: `irq_wake_thread` only compares `dev_id` with the cookies of the actions
        // registered on `irq` (never dereferences it) and returns if the descriptor is gone,
        // so a stale waker is a no-op; it takes the descriptor lock irqsave (any context).
        unsafe { bindings::irq_wake_thread(self.irq, self.cookie as *mut c_void) };
    }
}

/// A single MSI-X vector (entry 0) with a registered threaded handler `H`.
///
/// # Invariants
///
/// `reg` was created from a vector of `*vectors`; field order guarantees `reg` is dropped
/// (the IRQ freed) before `vectors` (the vectors freed). `vectors` is never moved out of its box.
pub(crate) struct MsixIrq<'bound, H: ThreadedHandler + 'bound> {
    reg: Pin<KBox<ThreadedRegistration<'bound, H>>>,
    irq: u32,
    #[allow(dead_code)]
    vectors: KBox<pci::IrqVectorRegistration<'bound>>,
}

impl<'bound, H: ThreadedHandler + 'bound> MsixIrq<'bound, H> {
    /// Allocates exactly one MSI-X vector and requests it with `handler`.
    pub(crate) fn new(
        pdev: &'bound pci::Device<Bound>,
        name: &'static CStr,
        handler: impl PinInit<H, Error> + 'bound,
    ) -> Result<Self> {
        let vectors = KBox::new(
            pdev.alloc_irq_vectors(1, 1, pci::IrqTypes::default().with(pci::IrqType::MsiX))?,
            GFP_KERNEL,
        )?;
        let vptr: *const pci::IrqVectorRegistration<'bound> = &raw const *vectors;
        // SAFETY: the registration lives in a heap allocation that is neither moved nor freed
        // until `Self` is dropped, and `reg` (the only borrower) is dropped before it (field
        // order), so extending the borrow to `'bound` never lets it dangle.
        let vref: &'bound pci::IrqVectorRegistration<'bound> = unsafe { &*vptr };
        let req: IrqRequest<'bound> = vref.index(0)?.into();
        let irq = req.irq();
        // SAFETY: the registration is stored in `Self` and dropped normally, never forgotten.
        let reg = KBox::pin_init(
            unsafe { ThreadedRegistration::new(req, Flags::TRIGGER_NONE, name, handler) },
            GFP_KERNEL,
        )?;
        Ok(Self { reg, irq, vectors })
    }

    /// A waker for the IRQ thread (the cookie is the registration's address, as passed to
    /// `request_threaded_irq`).
    pub(crate) fn waker(&self) -> ThreadWaker {
        let cookie = core::ptr::from_ref::<ThreadedRegistration<'bound, H>>(&self.reg).addr();
        ThreadWaker { irq: self.irq, cookie }
    }

    /// `synchronize_irq()`: wait for running hard and threaded handlers to finish.
    pub(crate) fn synchronize(&self) {
        self.reg.synchronize()
    }
}
