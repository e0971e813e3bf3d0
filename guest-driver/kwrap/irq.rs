// SPDX-License-Identifier: GPL-2.0

//! One MSI-X vector with a threaded IRQ handler, owned together.
//!
//! `ThreadedRegistration<'a, H>` borrows the `IrqVectorRegistration` it was created from, so
//! storing both in the driver data would be self-referential. [`MsixIrq`] keeps the vector
//! registration in a heap box (stable address) and drops the IRQ registration first
//! (`free_irq` before `pci_free_irq_vectors`). No `bindings` are touched here.

use kernel::{
    device::Bound,
    irq::{Flags, ThreadedHandler, ThreadedRegistration},
    pci,
    prelude::*,
};

/// A single MSI-X vector (entry 0) with a registered threaded handler `H`.
///
/// # Invariants
///
/// `reg` was created from a vector of `*vectors`; field order guarantees `reg` is dropped
/// (the IRQ freed) before `vectors` (the vectors freed). `vectors` is never moved out of its box.
pub(crate) struct MsixIrq<'bound, H: ThreadedHandler + 'bound> {
    reg: Pin<KBox<ThreadedRegistration<'bound, H>>>,
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
        let vector = vref.index(0)?;
        // SAFETY: the registration is stored in `Self` and dropped normally, never forgotten.
        let reg = KBox::pin_init(
            unsafe { ThreadedRegistration::new(vector.into(), Flags::TRIGGER_NONE, name, handler) },
            GFP_KERNEL,
        )?;
        Ok(Self { reg, vectors })
    }

    /// `synchronize_irq()`: wait for running hard and threaded handlers to finish.
    pub(crate) fn synchronize(&self) {
        self.reg.synchronize()
    }
}
