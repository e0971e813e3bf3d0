// SPDX-License-Identifier: GPL-2.0

//! Storm detector: a `timer_list` samples the device event rate every 100 ms; crossing the
//! threshold emits a `KOBJ_CHANGE` uevent with the rate on the class device `irqstormN` (so it
//! carries the class's variables too, `SUBSYSTEM=irqstorm`; on the PCI function if the class
//! device could not be made) and, if a helper path is set, runs it with `call_usermodehelper`
//! (both from a work item: process context). Falling below half the threshold ends the storm
//! (uevent "calm").

use crate::{
    kwrap::{
        clock::{msecs_to_jiffies, now_ns},
        timer_list::{impl_has_timer, Timer, TimerCallback},
        usermode,
    },
    shared::Shared,
};
use kernel::{
    device::Device,
    new_mutex,
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow, Mutex,
    },
    workqueue::{self, WorkItem},
};

const SAMPLE_MS: u32 = 100;

/// Timer id of the sampling timer (distinct from the bottom halves' mechanism ids).
const TIMER_ID: u64 = 21;

#[pin_data]
pub(crate) struct StormDetector {
    #[pin]
    timer: Timer<Shared, TIMER_ID>,
    /// Events/s that start a storm; 0 disables the detector.
    pub(crate) threshold: Atomic<u64>,
    last_records: Atomic<u64>,
    last_ns: Atomic<u64>,
    pub(crate) rate: Atomic<u64>,
    pub(crate) peak: Atomic<u64>,
    pub(crate) in_storm: Atomic<bool>,
    pub(crate) storms: Atomic<u64>,
    /// Rate reported by the pending uevent (0 = none pending).
    report_rate: Atomic<u64>,
    report_storm: Atomic<bool>,
    #[pin]
    pub(crate) helper: Mutex<KVec<u8>>,
    /// The class device the uevents go to: set once it exists, taken at unbind before it is
    /// deleted (the lock orders that against a uevent being sent). `None`: the PCI function.
    #[pin]
    uevent_dev: Mutex<Option<ARef<Device>>>,
}

impl StormDetector {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            timer <- Timer::new(c"irqstorm_storm_detect", kernel::static_lock_class!()),
            threshold: Atomic::new(5000),
            last_records: Atomic::new(0),
            last_ns: Atomic::new(0),
            rate: Atomic::new(0),
            peak: Atomic::new(0),
            in_storm: Atomic::new(false),
            storms: Atomic::new(0),
            report_rate: Atomic::new(0),
            report_storm: Atomic::new(false),
            helper <- new_mutex!(KVec::new(), "irqstorm_helper"),
            uevent_dev <- new_mutex!(None, "irqstorm_uevent_dev"),
        })
    }

    pub(crate) fn start(s: &Arc<Shared>) {
        s.storm.last_ns.store(now_ns(), Relaxed);
        Timer::<Shared, TIMER_ID>::arm_in_jiffies(s, msecs_to_jiffies(SAMPLE_MS));
    }

    /// Where the storm uevents go from now on (`None`: the PCI function).
    pub(crate) fn set_uevent_device(&self, dev: Option<ARef<Device>>) {
        *self.uevent_dev.lock() = dev;
    }

    pub(crate) fn shutdown(s: &Arc<Shared>) {
        Timer::<Shared, TIMER_ID>::shutdown(s);
    }
}

kernel::impl_has_work! {
    impl HasWork<Self, 20> for Shared { self.w_storm }
}

impl_has_timer! {
    impl HasTimer<TIMER_ID> for Shared { self.storm.timer }
}

impl TimerCallback<TIMER_ID> for Shared {
    fn run(this: ArcBorrow<'_, Self>) {
        sample(&this.into());
    }
}

/// Timer callback (softirq): compute the rate, detect edges, defer the reporting.
fn sample(s: &Arc<Shared>) {
    let d = &s.storm;
    let now = now_ns();
    let rec = s.cnt.records.load(Relaxed);
    let dt = now.saturating_sub(d.last_ns.load(Relaxed)).max(1);
    let de = rec.saturating_sub(d.last_records.load(Relaxed));
    d.last_ns.store(now, Relaxed);
    d.last_records.store(rec, Relaxed);
    let rate = de.saturating_mul(1_000_000_000) / dt;
    d.rate.store(rate, Relaxed);
    if rate > d.peak.load(Relaxed) {
        d.peak.store(rate, Relaxed);
    }
    let th = d.threshold.load(Relaxed);
    let storm = d.in_storm.load(Relaxed);
    let edge = if th > 0 && !storm && rate >= th {
        d.storms.add(1, Relaxed);
        Some(true)
    } else if storm && rate < th / 2 {
        Some(false)
    } else {
        None
    };
    if let Some(st) = edge {
        d.in_storm.store(st, Relaxed);
        d.report_storm.store(st, Relaxed);
        d.report_rate.store(rate.max(1), Relaxed);
        let _ = workqueue::system_unbound().enqueue::<Arc<Shared>, 20>(s.clone());
    }
    if !s.is_stopping() {
        Timer::<Shared, TIMER_ID>::arm_in_jiffies(s, msecs_to_jiffies(SAMPLE_MS));
    }
}

impl WorkItem<20> for Shared {
    type Pointer = Arc<Shared>;

    /// Process context: uevent and user-mode helper.
    fn run(this: Arc<Shared>) {
        let d = &this.storm;
        let rate = d.report_rate.xchg(0, Relaxed);
        if rate == 0 || this.is_stopping() {
            return;
        }
        let storm = d.report_storm.load(Relaxed);
        let state = if storm { "storm" } else { "calm" };
        let (Ok(ev), Ok(r), Ok(th)) = (
            CString::try_from_fmt(fmt!("IRQSTORM_STATE={}", state)),
            CString::try_from_fmt(fmt!("IRQSTORM_RATE={}", rate)),
            CString::try_from_fmt(fmt!("IRQSTORM_THRESHOLD={}", d.threshold.load(Relaxed))),
        ) else {
            return;
        };
        let dev: &Device = this.pdev.as_ref();
        let sent = {
            let target = d.uevent_dev.lock();
            usermode::uevent_change(target.as_deref().unwrap_or(dev), &[&ev, &r, &th])
        };
        match sent {
            Ok(()) => this.cnt.uevents.add(1, Relaxed),
            Err(e) => dev_warn!(dev, "storm uevent failed: {:?}\n", e),
        }
        dev_info!(dev, "interrupt {}: {} events/s (threshold {})\n", state, rate, d.threshold.load(Relaxed));
        let path = {
            let h = d.helper.lock();
            if h.is_empty() {
                return;
            }
            let mut v = KVec::new();
            if v.extend_from_slice(&h, GFP_KERNEL).is_err() || v.push(0, GFP_KERNEL).is_err() {
                return;
            }
            v
        };
        let Ok(path) = CStr::from_bytes_with_nul(&path) else { return };
        let (Ok(a1), Ok(a2)) = (
            CString::try_from_fmt(fmt!("{}", state)),
            CString::try_from_fmt(fmt!("{}", rate)),
        ) else {
            return;
        };
        match usermode::run_helper(path, &[path, &a1, &a2]) {
            Ok(()) => this.cnt.helper_runs.add(1, Relaxed),
            Err(e) => {
                this.cnt.helper_errors.add(1, Relaxed);
                dev_warn!(dev, "storm helper failed: {:?}\n", e);
            }
        }
    }
}
