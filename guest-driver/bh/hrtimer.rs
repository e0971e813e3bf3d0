// SPDX-License-Identifier: GPL-2.0

//! `hrtimer` in soft mode (mechanism 13): deferred processing in `HRTIMER_SOFTIRQ`, armed with
//! a zero relative expiry from the hard IRQ handler.

use crate::dispatch::{Mech, Shared};
use kernel::{
    sync::{Arc, ArcBorrow},
    time::{
        hrtimer::{HrTimerCallback, HrTimerCallbackContext, HrTimerRestart, RelativeSoftMode},
        Monotonic,
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
        this.run_bh(Mech::Hrtimer);
        HrTimerRestart::NoRestart
    }
}
