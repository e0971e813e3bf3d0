// SPDX-License-Identifier: GPL-2.0

//! `hrtimer` in soft mode (mechanism 13): deferred processing in `HRTIMER_SOFTIRQ`, armed from
//! the hard IRQ handler with the source's requested delay as relative expiry (0 by default).

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
        let armed = super::take_armed(&this, Mech::Hrtimer);
        super::run_armed(&this, Mech::Hrtimer, Some(woke), armed);
        HrTimerRestart::NoRestart
    }
}

/// Keeps the handle that allows re-arming from hard IRQ context (released in teardown).
pub(super) fn install(s: &Arc<Shared>) {
    s.bh.hrt_arm.install(s.clone(), Delta::from_secs(3600));
}

/// Arms the timer `delay_us` from now; `false` if it cannot be armed (not installed yet, or
/// torn down).
pub(super) fn schedule(s: &Shared, delay_us: u32) -> bool {
    s.bh.hrt_arm.start(Delta::from_micros(i64::from(delay_us)))
}
