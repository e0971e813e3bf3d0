// SPDX-License-Identifier: GPL-2.0

//! Mechanism 14 `wq_delayed`: `queue_delayed_work(system_percpu_wq)` with the source's
//! requested delay. The other process-context workqueues (6-9, 17, 18) take their work items
//! from `work_pool.rs`.

use crate::{
    kwrap::{
        clock::Stamp,
        workqueue::system_percpu,
    },
    mech::Mech,
    shared::Shared,
};
use kernel::{sync::Arc, workqueue::WorkItem};

kernel::workqueue::impl_has_delayed_work! {
    impl HasDelayedWork<Self, 14> for Shared { self.w_delayed }
}

impl WorkItem<14> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        let armed = super::take_armed(&this, Mech::WqDelayed);
        super::run_armed(&this, Mech::WqDelayed, Some(woke), armed);
    }
}

/// Queues the delayed work to run `delay_us` from now, never before (see `delay_jiffies`);
/// `false` if it was pending already.
pub(super) fn schedule_delayed(s: &Arc<Shared>, delay_us: u32) -> bool {
    system_percpu()
        .enqueue_delayed::<Arc<Shared>, 14>(s.clone(), super::delay_jiffies(delay_us) as _)
        .is_ok()
}
