// SPDX-License-Identifier: GPL-2.0

//! Tasklets (mechanisms 2 `tasklet` and 3 `tasklet_hi`): the legacy softirq bottom half.
//! Deprecated upstream; its replacement, the BH workqueue, is in `bh_wq.rs`.

use crate::dispatch::{Mech, Shared};

/// `TASKLET_SOFTIRQ` callback.
pub(crate) fn run(s: &Shared) {
    s.run_bh(Mech::Tasklet);
}

/// `HI_SOFTIRQ` callback.
pub(crate) fn run_hi(s: &Shared) {
    s.run_bh(Mech::TaskletHi);
}
