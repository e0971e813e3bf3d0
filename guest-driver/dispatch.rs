// SPDX-License-Identifier: GPL-2.0

//! The IRQ handler (MSI-X entry 0 serves config changes and every queue), mechanisms 0
//! `hardirq` and 1 `threaded`.
//!
//! The hard handler stamps the guest time, takes controlq replies, drains the eventq with a
//! budget and hands every event to the bottom half of its source ([`bh::dispatch`]); it
//! returns `WakeThread` when the threaded path was chosen for some event or the budget ran
//! out (the thread then continues draining the eventq).

use crate::{
    bh::{self, fifo::Item},
    eventq::IRQ_BUDGET,
    kwrap::clock::now_ns,
    shared::Shared,
    stats::Origin,
};
use kernel::{
    irq::{IrqReturn, ThreadedHandler, ThreadedIrqReturn},
    sync::{atomic::Relaxed, Arc},
};

pub(crate) struct IrqHandler {
    pub(crate) shared: Arc<Shared>,
}

impl ThreadedHandler for IrqHandler {
    fn handle(&self) -> ThreadedIrqReturn {
        if hardirq(&self.shared) {
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
            poll_eventq(s, now_ns());
        }
        bh::threaded::run(s);
        IrqReturn::Handled
    }
}

/// Hard IRQ handler body (MSI-X entry 0: config, controlq, eventq, ackq).
/// Returns `true` if the IRQ thread must run.
fn hardirq(s: &Arc<Shared>) -> bool {
    let t = now_ns();
    s.cnt.irqs.add(1, Relaxed);
    if s.is_stopping() {
        return false;
    }
    s.poll_ctrlq(t);
    let wake = poll_eventq(s, t);
    s.flush_acks();
    wake || bh::threaded::pending(s) || s.evq_more.load(Relaxed)
}

/// Drains up to `IRQ_BUDGET` eventq records and dispatches them; `t` is the hard IRQ time
/// stamp. Returns `true` if the IRQ thread must run.
fn poll_eventq(s: &Arc<Shared>, t: u64) -> bool {
    let mut items = [Item { seq: 0, count: 0, source: 0, hard_ns: t, origin: Origin::Device }; IRQ_BUDGET];
    let (n, more) = s.drain_eventq(t, &mut items);
    let mut wake = more;
    for it in &items[..n] {
        s.cnt.records.add(1, Relaxed);
        s.cnt.raises.add(u64::from(it.count), Relaxed);
        wake |= bh::dispatch(s, *it, s.mech_of(it.source));
    }
    wake
}
