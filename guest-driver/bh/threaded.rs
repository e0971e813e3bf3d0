// SPDX-License-Identifier: GPL-2.0

//! Hard IRQ handler and threaded IRQ handler (mechanisms 0 `hardirq` and 1 `threaded`).
//!
//! The hard handler stamps the guest time, drains the eventq with a budget and dispatches;
//! it returns `WakeThread` when the threaded path was chosen for some event or the budget ran
//! out (the thread then continues draining the eventq).

use crate::{
    dispatch::{Mech, Shared},
    kwrap::clock::now_ns,
};
use core::sync::atomic::Ordering;
use kernel::{
    irq::{IrqReturn, ThreadedHandler, ThreadedIrqReturn},
    sync::{atomic::Relaxed, Arc},
};

/// The IRQ handler (MSI-X entry 0 serves config changes and every queue).
pub(crate) struct IrqHandler {
    pub(crate) shared: Arc<Shared>,
}

impl ThreadedHandler for IrqHandler {
    fn handle(&self) -> ThreadedIrqReturn {
        if self.shared.hardirq() {
            ThreadedIrqReturn::WakeThread
        } else {
            ThreadedIrqReturn::Handled
        }
    }

    fn handle_threaded(&self) -> IrqReturn {
        let s = &self.shared;
        // Continue a drain the hard handler left because of its budget. `evq_more` is written
        // only under the eventq lock by the drain that just ran, so it is `false` only once
        // some drain emptied the ring and re-armed `used_event` (with EVENT_IDX nothing else
        // brings the eventq back). A hard IRQ that exhausts its budget while this thread runs
        // sets it and returns `WakeThread` (IRQTF_RUNTHREAD): the thread then runs again. The
        // local reference source may wake this thread at any time; that is harmless.
        while s.evq_more.load(Relaxed) && !s.is_stopping() {
            s.poll_eventq(now_ns());
        }
        s.threaded_pending.store(false, Relaxed);
        core::sync::atomic::fence(Ordering::SeqCst);
        s.run_bh(Mech::Threaded);
        IrqReturn::Handled
    }
}
