// SPDX-License-Identifier: GPL-2.0

//! The IRQ handler (MSI-X entry 0 serves config changes and every queue), mechanisms 0
//! `hardirq` and 1 `threaded`.
//!
//! The hard handler stamps the guest time (ns and TSC), takes controlq replies, drains the
//! eventq with a budget and hands every event to the bottom half of its source
//! ([`bh::dispatch`]); it returns `WakeThread` when the threaded path was chosen for some
//! event or the budget ran out (the thread then continues draining the eventq). Records the
//! thread drains carry the stamp of the last hard IRQ ([`LastHard`]): the interrupt that
//! found the ring non-empty, not the thread's own time; they are counted in `past_budget`.

use crate::{
    bh::{self, fifo::Item},
    eventq::IRQ_BUDGET,
    kwrap::clock::Stamp,
    mech::Mech,
    protocol::{ACK_F_FIRST, ACK_F_PAST_BUDGET},
    shared::Shared,
    stats::Origin,
};
use kernel::{
    irq::{IrqReturn, ThreadedHandler, ThreadedIrqReturn},
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        Arc,
    },
};

/// The stamp of the last hard IRQ, published for the IRQ thread. One writer (the hard
/// handler of the one vector never runs concurrently with itself), readers in the thread: a
/// sequence count keeps the (ns, tsc) pair from tearing.
pub(crate) struct LastHard {
    seq: Atomic<u64>,
    ns: Atomic<u64>,
    tsc: Atomic<u64>,
    cpu: Atomic<u32>,
}

impl LastHard {
    pub(crate) fn new() -> Self {
        Self { seq: Atomic::new(0), ns: Atomic::new(0), tsc: Atomic::new(0), cpu: Atomic::new(0) }
    }

    fn publish(&self, t: Stamp, cpu: u16) {
        let q = self.seq.load(Relaxed);
        self.seq.store(q.wrapping_add(1), Relaxed);
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        self.ns.store(t.ns, Relaxed);
        self.tsc.store(t.tsc, Relaxed);
        self.cpu.store(u32::from(cpu), Relaxed);
        self.seq.store(q.wrapping_add(2), Release);
    }

    fn read(&self) -> (Stamp, u16) {
        loop {
            let q = self.seq.load(Acquire);
            if q & 1 == 0 {
                let t = Stamp { ns: self.ns.load(Relaxed), tsc: self.tsc.load(Relaxed) };
                let cpu = self.cpu.load(Relaxed) as u16;
                core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
                if self.seq.load(Relaxed) == q {
                    return (t, cpu);
                }
            }
            core::hint::spin_loop();
        }
    }
}

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
        // The first thing the woken thread does: the bottom-half start of its first record.
        let woke = Stamp::now();
        let s = &self.shared;
        // Continue a drain the hard handler left because of its budget. `evq_more` is written
        // only under the eventq lock by the drain that just ran, so it is `false` only once
        // some drain emptied the ring and re-armed `used_event` (with EVENT_IDX nothing else
        // brings the eventq back). A hard IRQ that exhausts its budget while this thread runs
        // sets it and returns `WakeThread` (IRQTF_RUNTHREAD): the thread then runs again. The
        // local reference source may wake this thread at any time; that is harmless.
        while s.evq_more.load(Relaxed) && !s.is_stopping() {
            let (t, cpu) = s.last_hard.read();
            let (_, n) = poll_eventq(s, Item::stamped(t, cpu, ACK_F_PAST_BUDGET, Origin::Device));
            s.cnt.past_budget.add(n as u64, Relaxed);
        }
        bh::threaded::run(s, woke);
        IrqReturn::Handled
    }
}

/// Hard IRQ handler body (MSI-X entry 0: config, controlq, eventq, ackq).
/// Returns `true` if the IRQ thread must run.
fn hardirq(s: &Arc<Shared>) -> bool {
    let t = Stamp::now();
    let cpu = current_cpu();
    s.cnt.irqs.add(1, Relaxed);
    if s.is_stopping() {
        return false;
    }
    // Before the drain: a thread already draining takes this stamp for what it finds next.
    s.last_hard.publish(t, cpu);
    s.poll_ctrlq(t.ns);
    let (wake, _) = poll_eventq(s, Item::stamped(t, cpu, 0, Origin::Device));
    s.flush_acks();
    wake || bh::threaded::pending(s) || s.evq_more.load(Relaxed)
}

/// The CPU this code runs on (a hard IRQ handler or bottom half: it cannot migrate while
/// it stamps; elsewhere the value is only informative).
pub(crate) fn current_cpu() -> u16 {
    kernel::cpu::CpuId::current().as_u32() as u16
}

/// Drains up to `IRQ_BUDGET` eventq records and dispatches them; `hard` carries the hard IRQ
/// stamp, CPU and flags they get. Returns whether the IRQ thread must run, and how many
/// records it took.
fn poll_eventq(s: &Arc<Shared>, hard: Item) -> (bool, usize) {
    let mut items = [hard; IRQ_BUDGET];
    let (n, more) = s.drain_eventq(&mut items);
    let mut wake = more;
    // The hardirq mechanism's per-interrupt record: the first one this hard IRQ handles.
    let mut first_hardirq = hard.flags & ACK_F_PAST_BUDGET == 0;
    for it in &items[..n] {
        s.cnt.records.add(1, Relaxed);
        s.cnt.raises.add(u64::from(it.count), Relaxed);
        let m = s.mech_of(it.source);
        let mut it = *it;
        if first_hardirq && m == Mech::Hardirq {
            it.flags |= ACK_F_FIRST;
            first_hardirq = false;
        }
        wake |= bh::dispatch(s, it, m);
    }
    (wake, n)
}
