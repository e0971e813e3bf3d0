// SPDX-License-Identifier: GPL-2.0

//! A kthread sleeping on a wait queue (mechanism 10 `kthread`, `kwrap::waitq`), woken by
//! `notify_one()` from the hard IRQ handler (or `notify_all()` to stop).

use crate::{
    kwrap::kthread::KThread,
    mech::Mech,
    shared::Shared,
};
use kernel::{prelude::*, sync::Arc};

pub(super) fn schedule(s: &Shared) {
    s.bh.kt_wait.notify_one();
}

pub(super) fn spawn(s: &Arc<Shared>) -> Result<KThread> {
    KThread::spawn(s.clone(), run, c"irqstorm_kthread", crate::params::kthread_fifo.value())
}

/// One iteration of the thread loop (`kwrap::kthread` repeats it until `kthread_stop`).
fn run(s: &Shared) {
    // No timeout: every stop (`bh::quiesce`, also on a failed probe) sets `stopping` first and
    // then notifies, and the wait re-checks after queueing itself, so it cannot be missed. The
    // wait stamps right after `schedule()` returns: that is the bottom-half start of the run's
    // first record (`None`: work was already queued, per-record stamps).
    let ready = || !s.bh.fifos.lock()[Mech::Kthread as usize].is_empty() || s.is_stopping();
    let woke = s.bh.kt_wait.wait_until(ready);
    super::run(s, Mech::Kthread, woke);
}
