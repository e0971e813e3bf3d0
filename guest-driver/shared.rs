// SPDX-License-Identifier: GPL-2.0

//! The device state shared by the hard IRQ handler, every bottom half and the control files:
//! device info, queues, counters, statistics, per-source configuration, bottom-half objects.
//! Each job's code lives with its job: `eventq`, `ackq`, `ctrlq`, `sources`, `dispatch` (hard
//! IRQ), `bh/` (bottom halves), `storm_detect`, `local`.

use crate::{
    ackq::AckQ,
    bh::{threaded::IrqThread, BhState},
    calibrate::CalPage,
    ctrlq::{ControlChannel, CtrlQ},
    dispatch::LastHard,
    event_log::EventLog,
    eventq::EventQ,
    local::LocalState,
    mech::Mech,
    sources::SourceConfig,
    stats::Stats,
    virtio_pci::Transport,
};
use kernel::{
    new_spinlock_irq, pci,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        aref::ARef,
        Arc, SpinLockIrq,
    },
    time::hrtimer::HrTimer,
    workqueue::{DelayedWork, Work},
};

/// Device-wide counters (guest side).
pub(crate) struct Counters {
    pub(crate) irqs: Atomic<u64>,
    pub(crate) records: Atomic<u64>,
    pub(crate) raises: Atomic<u64>,
    pub(crate) latched: Atomic<u64>,
    pub(crate) finals: Atomic<u64>,
    pub(crate) bad_id: Atomic<u64>,
    pub(crate) bad_len: Atomic<u64>,
    pub(crate) bad_source: Atomic<u64>,
    pub(crate) bad_count: Atomic<u64>,
    pub(crate) seq_gap: Atomic<u64>,
    pub(crate) budget_exhausted: Atomic<u64>,
    /// Records the IRQ thread drained past the hard IRQ's budget (they carry that IRQ's stamp).
    pub(crate) past_budget: Atomic<u64>,
    pub(crate) fifo_overflow: Atomic<u64>,
    pub(crate) acks_posted: Atomic<u64>,
    pub(crate) ack_bufs: Atomic<u64>,
    pub(crate) acks_dropped: Atomic<u64>,
    pub(crate) ack_bad_id: Atomic<u64>,
    pub(crate) ctrl_requests: Atomic<u64>,
    pub(crate) ctrl_errors: Atomic<u64>,
    pub(crate) ctrl_timeouts: Atomic<u64>,
    pub(crate) local_events: Atomic<u64>,
    pub(crate) local_skipped: Atomic<u64>,
    pub(crate) sleep_refused: Atomic<u64>,
    /// Delays refused: on a mechanism that takes none, or above the limit.
    pub(crate) delay_refused: Atomic<u64>,
    /// Delay-mechanism runs that began before their delay had passed (a kernel bug, or a
    /// jiffies comparison gone wrong): counted by the run.
    pub(crate) delay_early: Atomic<u64>,
    /// Records handed back by a cancelled bottom half (acked `ACK_F_CANCELLED`).
    pub(crate) cancelled: Atomic<u64>,
    /// Runs of a cancelled mechanism that began after its cancel returned (must stay 0).
    pub(crate) ran_after_cancel: Atomic<u64>,
    pub(crate) cancels: Atomic<u64>,
    pub(crate) flushes: Atomic<u64>,
    /// `bh` commands refused (a mechanism without that kernel call, a bad command).
    pub(crate) cancel_refused: Atomic<u64>,
    pub(crate) uevents: Atomic<u64>,
    pub(crate) helper_runs: Atomic<u64>,
    pub(crate) helper_errors: Atomic<u64>,
    pub(crate) calibrations: Atomic<u64>,
    /// CALIBRATE requests that failed (no reply, device error, or a result other than ok).
    pub(crate) calibration_errors: Atomic<u64>,
    /// A pooled work item found pending while idle (its pending run takes the record).
    pub(crate) wq_requeue: Atomic<u64>,
    /// Records that found every work item of their mechanism busy (one of them takes it).
    pub(crate) wq_all_busy: Atomic<u64>,
    /// Simulated work refused: `user` runs none (its bottom half is a user thread).
    pub(crate) work_refused: Atomic<u64>,
    /// Event records handed to user space by `read()` on the misc device.
    pub(crate) user_reads: Atomic<u64>,
    /// User acks (`write()`) that matched a record handed out.
    pub(crate) user_acks: Atomic<u64>,
    /// User acks refused: short, unknown or repeated sequence number, stamps out of order.
    pub(crate) user_bad_acks: Atomic<u64>,
    /// Records a reader took and closed without acking (acked cancelled to the device).
    pub(crate) user_unacked: Atomic<u64>,
    /// Character-device calls refused: a bad read size, a full outstanding table, an unknown ioctl or a bad argument.
    pub(crate) user_refused: Atomic<u64>,
}

macro_rules! zero_counters {
    ($($f:ident),*) => { Counters { $($f: Atomic::new(0)),* } };
}

impl Counters {
    pub(crate) fn reset(&self) {
        for c in [
            &self.irqs, &self.records, &self.raises, &self.latched, &self.finals, &self.bad_id,
            &self.bad_len, &self.bad_source, &self.bad_count, &self.seq_gap, &self.budget_exhausted,
            &self.past_budget, &self.fifo_overflow, &self.acks_posted, &self.ack_bufs,
            &self.acks_dropped, &self.ack_bad_id, &self.ctrl_requests, &self.ctrl_errors,
            &self.ctrl_timeouts, &self.local_events, &self.local_skipped, &self.sleep_refused,
            &self.delay_refused, &self.delay_early, &self.cancelled, &self.ran_after_cancel,
            &self.cancels, &self.flushes, &self.cancel_refused, &self.uevents, &self.helper_runs, &self.helper_errors, &self.calibrations,
            &self.calibration_errors, &self.wq_requeue, &self.wq_all_busy, &self.work_refused, &self.user_reads, &self.user_acks, &self.user_bad_acks, &self.user_unacked, &self.user_refused,
        ] {
            c.store(0, Relaxed);
        }
    }

    fn new() -> Self {
        zero_counters!(
            irqs, records, raises, latched, finals, bad_id, bad_len, bad_source, bad_count, seq_gap,
            budget_exhausted, past_budget, fifo_overflow, acks_posted, ack_bufs, acks_dropped,
            ack_bad_id, ctrl_requests, ctrl_errors, ctrl_timeouts, local_events, local_skipped,
            sleep_refused, delay_refused, delay_early, cancelled, ran_after_cancel, cancels, flushes,
            cancel_refused, uevents, helper_runs, helper_errors, calibrations, calibration_errors,
            wq_requeue, wq_all_busy, work_refused, user_reads, user_acks, user_bad_acks, user_unacked, user_refused
        )
    }
}


#[derive(Clone, Copy)]
pub(crate) struct DevInfo {
    pub(crate) num_sources: u16,
    pub(crate) max_rate_hz: u32,
    pub(crate) max_outstanding: u32,
    pub(crate) min_period_ns: u32,
    pub(crate) max_burst: u32,
    pub(crate) features: u64,
}

/// State shared by the IRQ handlers and all bottom halves.
#[pin_data]
pub(crate) struct Shared {
    pub(crate) pdev: ARef<pci::Device>,
    pub(crate) t: Transport,
    pub(crate) info: DevInfo,
    #[pin]
    pub(crate) evq: SpinLockIrq<EventQ>,
    #[pin]
    pub(crate) ackq: SpinLockIrq<AckQ>,
    #[pin]
    pub(crate) control: ControlChannel,
    #[pin]
    pub(crate) stats: SpinLockIrq<Stats>,
    pub(crate) cnt: Counters,
    pub(crate) sources: SourceConfig,
    pub(crate) stopping: Atomic<bool>,
    pub(crate) evq_more: Atomic<bool>,
    /// The last hard IRQ's stamp, for records the IRQ thread drains.
    pub(crate) last_hard: LastHard,
    pub(crate) irq_thread: IrqThread,
    #[pin]
    pub(crate) bh: BhState,
    // The bottom halves' work items and hrtimer are found back by `container_of` from their
    // field, and the kernel's `impl_has_work!` / `impl_has_hr_timer!` need direct fields.
    #[pin]
    pub(crate) w_bh: Work<Shared, 4>,
    #[pin]
    pub(crate) w_bh_hi: Work<Shared, 5>,
    #[pin]
    pub(crate) w_delayed: DelayedWork<Shared, 14>,
    #[pin]
    pub(crate) hrt: HrTimer<Shared>,
    // Storm detector.
    #[pin]
    pub(crate) storm: crate::storm_detect::StormDetector,
    #[pin]
    pub(crate) w_storm: Work<Shared, 20>,
    #[pin]
    pub(crate) local: LocalState,
    /// Per-event stamps for the ftrace cross-check (debugfs `events`; off by default).
    #[pin]
    pub(crate) events: EventLog,
}

pub(crate) struct Queues {
    evq: EventQ,
    ackq: AckQ,
    ctrlq: CtrlQ,
    cal: CalPage,
}

impl Queues {
    /// Allocates and programs the three virtqueues (not yet enabled) and the calibration page.
    pub(crate) fn new(pdev: &pci::Device<kernel::device::Bound>, t: &Transport, event_idx: bool) -> Result<Self> {
        let dev = pdev.as_ref();
        let ctrlq = CtrlQ::new(dev, t, event_idx)?;
        let evq = EventQ::new(dev, t, event_idx)?;
        let ackq = AckQ::new(dev, t, event_idx)?;
        let cal = CalPage::new(dev)?;
        Ok(Self { evq, ackq, ctrlq, cal })
    }
}

impl Shared {
    pub(crate) fn new(
        pdev: &pci::Device<kernel::device::Bound>,
        t: Transport,
        info: DevInfo,
        q: Queues,
        default_mech: Mech,
    ) -> Result<Arc<Self>> {
        let bh = BhState::new()?;
        let stats = Stats::new()?;
        let dm = default_mech as u32;
        Arc::pin_init(
            try_pin_init!(Self {
                pdev: pdev.into(),
                t,
                info,
                evq <- new_spinlock_irq!(q.evq, "irqstorm_evq"),
                ackq <- new_spinlock_irq!(q.ackq, "irqstorm_ackq"),
                control <- ControlChannel::new(q.ctrlq, q.cal),
                stats <- new_spinlock_irq!(stats, "irqstorm_stats"),
                cnt: Counters::new(),
                sources: SourceConfig::new(),
                stopping: Atomic::new(false),
                evq_more: Atomic::new(false),
                last_hard: LastHard::new(),
                irq_thread: IrqThread::new(),
                bh <- bh,
                w_bh <- kernel::new_work!("irqstorm::bh_wq"),
                w_bh_hi <- kernel::new_work!("irqstorm::bh_wq_highpri"),
                w_delayed <- kernel::workqueue::new_delayed_work!("irqstorm::wq_delayed"),
                hrt <- HrTimer::new(),
                storm <- crate::storm_detect::StormDetector::new(),
                w_storm <- kernel::new_work!("irqstorm::storm"),
                local <- LocalState::new(),
                events <- EventLog::new(),
            }? Error),
            GFP_KERNEL,
        )
        .inspect(|s| {
            for m in s.sources.mech.iter() {
                m.store(dm, Relaxed);
            }
        })
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    pub(crate) fn stats_snapshot(&self) -> Result<Stats> {
        let mut snap = Stats::new()?;
        snap.copy_from(&self.stats.lock());
        Ok(snap)
    }

    // ---------------------------------------------------------------- teardown

    /// Stops everything that can produce or run work. Process context; the caller then resets
    /// the device, synchronizes the IRQ and drops the handles.
    pub(crate) fn quiesce_sources(self: &Arc<Self>) {
        self.stopping.store(true, Relaxed);
        crate::storm_detect::StormDetector::shutdown(self);
        crate::local::stop(self);
        crate::bh::threaded::set_waker(self, crate::kwrap::irq::ThreadWaker::NONE);
    }

}
