// SPDX-License-Identifier: GPL-2.0

//! `timer_list` (mechanism 12): deferred processing at the next jiffy, in the timer softirq.

use crate::dispatch::{Mech, Shared};

/// Timer callback.
pub(crate) fn run(s: &Shared) {
    s.run_bh(Mech::TimerList);
}
