// SPDX-License-Identifier: GPL-2.0

//! The local reference source: a guest hrtimer in hard mode that feeds the same dispatch as
//! the device's hard IRQ, cycling through the mechanisms, so every mechanism gets a
//! device-free baseline in the same run. Local events are not acked to the device.
//!
//! Under PREEMPT_RT the timer is not in hard mode: the dispatch takes the queues' spinlocks,
//! which RT turns into sleeping locks, allowed in the thread a forced-threaded device IRQ runs
//! in but not in hard IRQ context. It expires in the timer softirq's thread there, as every
//! hrtimer not marked HARD does on RT (so the reference measures from that thread).
//!
//! For `threaded` the callback wakes the device's IRQ thread with `irq_wake_thread()`.

use crate::{
    dispatch::current_cpu,
    bh::{self, fifo::Item},
    mech::{Mech, NUM_MECH},
    shared::Shared,
    kwrap::clock::Stamp,
    stats::Origin,
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow, Mutex,
    },
    time::{
        hrtimer::{
            ArcHrTimerHandle, HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer,
            HrTimerRestart,
        },
        Delta, Monotonic,
    },
};

/// Every kernel mechanism: not `user`, whose reader matches its acks to the device's
/// sequence numbers (the reference's own would collide) and is no kernel baseline.
pub(crate) const DEFAULT_MASK: u32 = ((1 << NUM_MECH) - 1) & !(1 << Mech::User as u32);

/// The reference source's part of the device state.
#[pin_data]
pub(crate) struct LocalState {
    /// Mechanisms the local reference source cycles through (bit mask).
    pub(crate) mask: Atomic<u32>,
    next: Atomic<u32>,
    #[pin]
    handle: Mutex<Option<LocalHandle>>,
}

impl LocalState {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            mask: Atomic::new(DEFAULT_MASK),
            next: Atomic::new(0),
            handle <- new_mutex!(None, "irqstorm_local"),
        })
    }
}

#[pin_data]
pub(crate) struct LocalSrc {
    #[pin]
    timer: HrTimer<LocalSrc>,
    shared: Arc<Shared>,
    period_ns: i64,
    ticks: Atomic<u64>,
}

/// Hard IRQ context, as a device's interrupt (see the module comment for PREEMPT_RT).
#[cfg(not(CONFIG_PREEMPT_RT))]
type ReferenceMode = kernel::time::hrtimer::RelativeHardMode<Monotonic>;
/// The timer softirq's thread: RT allows no sleeping lock in hard IRQ context.
#[cfg(CONFIG_PREEMPT_RT)]
type ReferenceMode = kernel::time::hrtimer::RelativeMode<Monotonic>;

kernel::impl_has_hr_timer! {
    impl HasHrTimer<Self> for LocalSrc {
        mode: ReferenceMode,
        field: self.timer
    }
}

pub(crate) type LocalHandle = ArcHrTimerHandle<LocalSrc>;

fn next_mech(s: &Shared) -> Option<Mech> {
    let mask = s.local.mask.load(Relaxed) & DEFAULT_MASK;
    if mask == 0 {
        return None;
    }
    let start = s.local.next.load(Relaxed);
    for k in 0..NUM_MECH as u32 {
        let i = (start + k) % NUM_MECH as u32;
        if mask & (1 << i) != 0 {
            s.local.next.store((i + 1) % NUM_MECH as u32, Relaxed);
            return Mech::from_u32(i);
        }
    }
    None
}

impl HrTimerCallback for LocalSrc {
    type Pointer<'a> = Arc<Self>;

    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        let s = &this.shared;
        if s.is_stopping() {
            return HrTimerRestart::NoRestart;
        }
        let t = Stamp::now();
        let n = this.ticks.load(Relaxed) + 1;
        this.ticks.store(n, Relaxed);
        if let Some(m) = next_mech(s) {
            let it = Item { seq: n, count: 1, ..Item::stamped(t, current_cpu(), 0, Origin::Local) };
            if bh::dispatch(s, it, m) {
                bh::threaded::wake(s);
            }
        } else {
            s.cnt.local_skipped.add(1, Relaxed);
        }
        ctx.forward_now(Delta::from_nanos(this.period_ns));
        HrTimerRestart::Restart
    }
}

/// Starts the reference source with the given period.
pub(crate) fn start(s: &Arc<Shared>, period_us: u32, mask: Option<u32>) -> Result {
    if !(20..=1_000_000).contains(&period_us) {
        return Err(ERANGE);
    }
    if s.is_stopping() {
        return Err(ENODEV);
    }
    let mut l = s.local.handle.lock();
    if l.is_some() {
        return Err(EBUSY);
    }
    if let Some(m) = mask {
        s.local.mask.store(m & DEFAULT_MASK, Relaxed);
    }
    let period_ns = i64::from(period_us) * 1000;
    let src = Arc::pin_init(
        pin_init!(LocalSrc {
            timer <- HrTimer::new(),
            shared: s.clone(),
            period_ns,
            ticks: Atomic::new(0),
        }),
        GFP_KERNEL,
    )?;
    *l = Some(src.start(Delta::from_nanos(period_ns)));
    Ok(())
}

/// Stops it (dropping the handle cancels the timer and waits for a running callback).
pub(crate) fn stop(s: &Shared) {
    let h = s.local.handle.lock().take();
    drop(h);
}

pub(crate) fn running(s: &Shared) -> bool {
    s.local.handle.lock().is_some()
}

#[kernel::prelude::kunit_tests(irqstorm_local)]
mod tests {
    use super::*;
    use kernel::time::hrtimer::HrTimerMode;

    #[test]
    fn the_reference_timer_is_hard_only_where_hard_irq_may_take_sleeping_free_locks() {
        // PREEMPT_RT makes the dispatch's spinlocks sleeping locks: no HARD mode there.
        let hard = <ReferenceMode as HrTimerMode>::C_MODE
            & kernel::bindings::hrtimer_mode_HRTIMER_MODE_HARD
            != 0;
        assert_eq!(hard, !cfg!(CONFIG_PREEMPT_RT));
    }
}
