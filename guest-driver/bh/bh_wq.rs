// SPDX-License-Identifier: GPL-2.0

//! BH workqueues (mechanisms 4 `bh_wq` = `system_bh`, 5 `bh_wq_highpri` =
//! `system_bh_highpri`): work items executed in softirq context, the tasklet replacement.

use crate::{
    kwrap::clock::Stamp,mech::Mech, shared::Shared};
use kernel::{
    sync::Arc,
    workqueue::{self, WorkItem},
};

kernel::impl_has_work! {
    impl HasWork<Self, 4> for Shared { self.w_bh }
    impl HasWork<Self, 5> for Shared { self.w_bh_hi }
}

impl WorkItem<4> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::BhWq, Some(woke));
    }
}

impl WorkItem<5> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::BhWqHighpri, Some(woke));
    }
}

pub(super) fn schedule(s: &Arc<Shared>, m: Mech) {
    if m == Mech::BhWqHighpri {
        let _ = workqueue::system_bh_highpri().enqueue::<Arc<Shared>, 5>(s.clone());
    } else {
        let _ = workqueue::system_bh().enqueue::<Arc<Shared>, 4>(s.clone());
    }
}
