// SPDX-License-Identifier: GPL-2.0

//! Tasklets (mechanisms 2 `tasklet` and 3 `tasklet_hi`): the legacy softirq bottom half.
//! Deprecated upstream; its replacement, the BH workqueue, is in `bh_wq.rs`.

use crate::{
    kwrap::clock::Stamp,
    kwrap::tasklet::{impl_has_tasklet, Tasklet, TaskletCallback},
    mech::Mech,
    shared::Shared,
};
use kernel::sync::{Arc, ArcBorrow};

impl_has_tasklet! {
    impl HasTasklet<2> for Shared { self.bh.tasklet }
    impl HasTasklet<3> for Shared { self.bh.tasklet_hi }
}

/// `TASKLET_SOFTIRQ` callback.
impl TaskletCallback<2> for Shared {
    fn run(this: ArcBorrow<'_, Self>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::Tasklet, Some(woke));
    }
}

/// `HI_SOFTIRQ` callback.
impl TaskletCallback<3> for Shared {
    fn run(this: ArcBorrow<'_, Self>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::TaskletHi, Some(woke));
    }
}

pub(super) fn schedule(s: &Arc<Shared>, m: Mech) {
    if m == Mech::TaskletHi {
        Tasklet::<Shared, 3>::hi_schedule(s);
    } else {
        Tasklet::<Shared, 2>::schedule(s);
    }
}
