// SPDX-License-Identifier: GPL-2.0

//! A kthread sleeping on a wait queue (mechanism 10 `kthread`): `CondVar` over the fifo lock,
//! woken by `notify_one()` from the hard IRQ handler (or `notify_all()` to stop).

use crate::{
    kwrap::{clock::Stamp, kthread::KThread},
    mech::Mech,
    shared::Shared,
};
use kernel::{prelude::*, sync::Arc};

pub(super) fn schedule(s: &Shared) {
    s.bh.kt_wait.notify_one();
}

pub(super) fn spawn(s: &Arc<Shared>) -> Result<KThread> {
    KThread::spawn(s.clone(), run, c"irqstorm_kthread", false)
}

/// One iteration of the thread loop (`kwrap::kthread` repeats it until `kthread_stop`).
fn run(s: &Shared) {
    let woke = {
        let mut g = s.bh.fifos.lock();
        if g[Mech::Kthread as usize].is_empty() && !s.is_stopping() {
            // No timeout: every stop (`bh::quiesce`, also on a failed probe) sets `stopping`
            // first and then notifies under this lock, so it cannot be missed; a timed wait
            // would put `schedule_timeout`'s timer deletion on the wake-up path (~4 us under
            // TCG between the sched_switch into this thread and its first stamp).
            let _ = s.bh.kt_wait.wait_interruptible(&mut g);
            // First statement after the wait: the bottom-half start of the run's first record.
            Some(Stamp::now())
        } else {
            // Work was already queued: this run was not woken for it (per-record stamps).
            None
        }
    };
    super::run(s, Mech::Kthread, woke);
}
