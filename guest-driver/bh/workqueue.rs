// SPDX-License-Identifier: GPL-2.0

//! Process-context workqueues: 6 `system_wq` (7.3 name: `system_percpu_wq`), 7 `system_highpri_wq`, 8 `system_unbound_wq`,
//! 9 the driver's own `alloc_workqueue` queue (`kwrap::workqueue::OwnedQueue`).

use crate::dispatch::{Mech, Shared};
use kernel::{sync::Arc, workqueue::WorkItem};

impl WorkItem<6> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        this.run_bh(Mech::WqSystem);
    }
}

impl WorkItem<7> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        this.run_bh(Mech::WqHighpri);
    }
}

impl WorkItem<8> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        this.run_bh(Mech::WqUnbound);
    }
}

impl WorkItem<9> for Shared {
    type Pointer = Arc<Shared>;
    fn run(this: Arc<Shared>) {
        this.run_bh(Mech::WqDedicated);
    }
}
