// SPDX-License-Identifier: GPL-2.0

//! `timer_list` (mechanism 12): deferred processing in the timer softirq, at the next jiffy or
//! after the source's requested delay (`mod_timer(jiffies + delay_jiffies(delay))`: never
//! before it).

use crate::{
    kwrap::clock::{jiffies, time_after_eq, Stamp},
    kwrap::timer_list::{impl_has_timer, Timer, TimerCallback},
    mech::Mech,
    shared::Shared,
};
use kernel::sync::{atomic::Relaxed, Arc, ArcBorrow};

/// Timer id of the bottom-half timer (the mechanism id).
const ID: u64 = Mech::TimerList as u64;

impl_has_timer! {
    impl HasTimer<ID> for Shared { self.bh.timer }
}

impl TimerCallback<ID> for Shared {
    fn run(this: ArcBorrow<'_, Self>) {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        let armed = super::take_armed(&this, Mech::TimerList);
        // The timer code runs a timer at or after its expiry; counted if not (wrap-safe).
        if armed.is_some() && !time_after_eq(jiffies(), this.bh.timer_expires.load(Relaxed)) {
            this.cnt.delay_early.add(1, Relaxed);
        }
        super::run_armed(&this, Mech::TimerList, Some(woke), armed);
    }
}

/// Arms the timer for a run `delay_us` from now (0: the next jiffy).
pub(super) fn schedule(s: &Arc<Shared>, delay_us: u32) {
    let delta = super::delay_jiffies(delay_us);
    s.bh.timer_expires.store(jiffies().wrapping_add(delta), Relaxed);
    Timer::<Shared, ID>::arm_in_jiffies(s, delta);
}

/// Deactivates the timer for good (teardown). Process context.
pub(super) fn shutdown(s: &Arc<Shared>) {
    Timer::<Shared, ID>::shutdown(s);
}
