// SPDX-License-Identifier: GPL-2.0

//! A completion with a waiter thread (mechanism 11 `completion`): the hard IRQ handler calls
//! `complete()`, the waiter returns from `wait_for_completion_timeout()` and drains.

use crate::{
    kwrap::{
        clock::{msecs_to_jiffies, Stamp},
        kthread::KThread,
    },
    mech::Mech,
    shared::Shared,
};
use kernel::{prelude::*, sync::Arc};

pub(super) fn schedule(s: &Shared) {
    s.bh.comp.complete();
}

pub(super) fn spawn(s: &Arc<Shared>) -> Result<KThread> {
    KThread::spawn(s.clone(), run, c"irqstorm_compl", crate::params::kthread_fifo.value())
}

/// One iteration of the waiter loop.
fn run(s: &Shared) {
    // Timed out or completed: drain either way (a timeout only bounds stop latency).
    let _ = s.bh.comp.wait_timeout(msecs_to_jiffies(100));
    // First statement after the wait: the bottom-half start of the run's first record.
    let woke = Stamp::now();
    super::run(s, Mech::Completion, Some(woke));
}
