// SPDX-License-Identifier: GPL-2.0

//! `timer_list` (mechanism 12): deferred processing at the next jiffy, in the timer softirq.

use crate::{
    kwrap::clock::Stamp,
    kwrap::timer_list::{impl_has_timer, Timer, TimerCallback},
    mech::Mech,
    shared::Shared,
};
use kernel::sync::{Arc, ArcBorrow};

/// Timer id of the bottom-half timer (the mechanism id).
const ID: u64 = Mech::TimerList as u64;

impl_has_timer! {
    impl HasTimer<ID> for Shared { self.bh.timer }
}

impl TimerCallback<ID> for Shared {
    fn run(this: ArcBorrow<'_, Self>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::TimerList, Some(woke));
    }
}

pub(super) fn schedule(s: &Arc<Shared>) {
    Timer::<Shared, ID>::arm_in_jiffies(s, 0);
}

/// Deactivates the timer for good (teardown). Process context.
pub(super) fn shutdown(s: &Arc<Shared>) {
    Timer::<Shared, ID>::shutdown(s);
}
