// SPDX-License-Identifier: GPL-2.0

//! Process-context workqueues: 6 `system_wq` (7.3 name: `system_percpu_wq`), 7 `system_highpri_wq`, 8 `system_unbound_wq`,
//! 9 the driver's own `alloc_workqueue` queue (`kwrap::workqueue::OwnedQueue`), and 14
//! `wq_delayed`: `queue_delayed_work(system_percpu_wq)` with the source's requested delay.

use crate::{
    kwrap::{
        clock::{usecs_to_jiffies, Stamp},
        workqueue::{enqueue_on, system_percpu},
    },
    mech::Mech,
    shared::Shared,
};
use kernel::{
    sync::Arc,
    workqueue::{self, WorkItem},
};

kernel::impl_has_work! {
    impl HasWork<Self, 6> for Shared { self.w_sys }
    impl HasWork<Self, 7> for Shared { self.w_hi }
    impl HasWork<Self, 8> for Shared { self.w_unbound }
    impl HasWork<Self, 9> for Shared { self.w_ded }
}

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

/// Queues the delayed work to run `delay_us` from now (rounded up to jiffies); `false` if it
/// was pending already.
pub(super) fn schedule_delayed(s: &Arc<Shared>, delay_us: u32) -> bool {
    system_percpu()
        .enqueue_delayed::<Arc<Shared>, 14>(s.clone(), usecs_to_jiffies(delay_us) as _)
        .is_ok()
}

impl WorkItem<6> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::WqSystem, Some(woke));
    }
}

impl WorkItem<7> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::WqHighpri, Some(woke));
    }
}

impl WorkItem<8> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::WqUnbound, Some(woke));
    }
}

impl WorkItem<9> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::WqDedicated, Some(woke));
    }
}

/// The CPU the per-CPU work items go to (module parameter `wq_cpu`; `None`: the queueing
/// CPU).
fn wq_cpu() -> Option<u32> {
    u32::try_from(crate::module_parameters::wq_cpu.value()).ok()
}

pub(super) fn schedule(s: &Arc<Shared>, m: Mech) {
    let cpu = wq_cpu();
    let _ = match m {
        Mech::WqSystem => enqueue_on::<Arc<Shared>, 6>(system_percpu(), cpu, s.clone()),
        Mech::WqHighpri => enqueue_on::<Arc<Shared>, 7>(workqueue::system_highpri(), cpu, s.clone()),
        Mech::WqUnbound => workqueue::system_unbound().enqueue::<Arc<Shared>, 8>(s.clone()),
        _ => enqueue_on::<Arc<Shared>, 9>(s.bh.wq.queue(), cpu, s.clone()),
    };
}
