// SPDX-License-Identifier: GPL-2.0

//! BH workqueues (mechanisms 4 `bh_wq` = `system_bh`, 5 `bh_wq_highpri` =
//! `system_bh_highpri`): work items executed in softirq context, the tasklet replacement.

use crate::dispatch::{Mech, Shared};
use kernel::{sync::Arc, workqueue::WorkItem};

impl WorkItem<4> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        this.run_bh(Mech::BhWq);
    }
}

impl WorkItem<5> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        this.run_bh(Mech::BhWqHighpri);
    }
}
