// SPDX-License-Identifier: GPL-2.0

//! `hrtimer` in soft mode (mechanism 13): deferred processing in `HRTIMER_SOFTIRQ`, armed with
//! a zero relative expiry from the hard IRQ handler.

use crate::{
    kwrap::clock::Stamp,mech::Mech, shared::Shared};
use kernel::{
    sync::{Arc, ArcBorrow},
    time::{
        hrtimer::{HrTimerCallback, HrTimerCallbackContext, HrTimerRestart, RelativeSoftMode},
        Delta, Monotonic,
    },
};

kernel::impl_has_hr_timer! {
    impl HasHrTimer<Self> for Shared {
        mode: RelativeSoftMode<Monotonic>,
        field: self.hrt
    }
}

impl HrTimerCallback for Shared {
    type Pointer<'a> = Arc<Self>;

    fn run(this: ArcBorrow<'_, Self>, _ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        // First statement: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run(&this, Mech::Hrtimer, Some(woke));
        HrTimerRestart::NoRestart
    }
}

/// Keeps the handle that allows re-arming from hard IRQ context (released in teardown).
pub(super) fn install(s: &Arc<Shared>) {
    s.bh.hrt_arm.install(s.clone(), Delta::from_secs(3600));
}

pub(super) fn schedule(s: &Shared) {
    s.bh.hrt_arm.start(Delta::ZERO);
}
