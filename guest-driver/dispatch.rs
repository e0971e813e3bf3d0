// SPDX-License-Identifier: GPL-2.0

//! The device state shared by the hard IRQ handler and every bottom half, and the dispatch of
//! events to the bottom half chosen per source.

use crate::{
    kwrap::{
        clock::{jiffies, now_ns},
        completion::Completion,
        delay::{msleep, usleep_range},
        kthread::KThread,
        tasklet::Tasklet,
        timer_list::Timer,
        workqueue::OwnedQueue,
    },
    protocol::*,
    stats::{Origin, Stats},
    virtio_pci::Transport,
    virtqueue::{Pop, Virtqueue, DESC_F_NEXT, DESC_F_WRITE},
};
use kernel::{
    dma::Coherent,
    io::{io_read, io_write},
    new_condvar, new_mutex, new_spinlock_irq, pci,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        aref::ARef,
        Arc, CondVar, Mutex, SpinLockIrq,
    },
    time::{hrtimer::HasHrTimer, hrtimer::HrTimer, delay::udelay, Delta},
    workqueue::{self, Work},
};

pub(crate) const NUM_MECH: usize = 14;

/// Bottom-half mechanism ids (spec §6.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Mech {
    Hardirq = 0,
    Threaded = 1,
    Tasklet = 2,
    TaskletHi = 3,
    BhWq = 4,
    BhWqHighpri = 5,
    WqSystem = 6,
    WqHighpri = 7,
    WqUnbound = 8,
    WqDedicated = 9,
    Kthread = 10,
    Completion = 11,
    TimerList = 12,
    Hrtimer = 13,
}

impl Mech {
    pub(crate) const ALL: [Mech; NUM_MECH] = [
        Mech::Hardirq,
        Mech::Threaded,
        Mech::Tasklet,
        Mech::TaskletHi,
        Mech::BhWq,
        Mech::BhWqHighpri,
        Mech::WqSystem,
        Mech::WqHighpri,
        Mech::WqUnbound,
        Mech::WqDedicated,
        Mech::Kthread,
        Mech::Completion,
        Mech::TimerList,
        Mech::Hrtimer,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mech::Hardirq => "hardirq",
            Mech::Threaded => "threaded",
            Mech::Tasklet => "tasklet",
            Mech::TaskletHi => "tasklet_hi",
            Mech::BhWq => "bh_wq",
            Mech::BhWqHighpri => "bh_wq_highpri",
            Mech::WqSystem => "wq_system",
            Mech::WqHighpri => "wq_highpri",
            Mech::WqUnbound => "wq_unbound",
            Mech::WqDedicated => "wq_dedicated",
            Mech::Kthread => "kthread",
            Mech::Completion => "completion",
            Mech::TimerList => "timer_list",
            Mech::Hrtimer => "hrtimer",
        }
    }

    pub(crate) fn from_u32(v: u32) -> Option<Mech> {
        Mech::ALL.get(v as usize).copied()
    }

    /// Parses a name or a numeric id.
    pub(crate) fn parse(s: &str) -> Option<Mech> {
        if let Ok(v) = s.parse::<u32>() {
            return Mech::from_u32(v);
        }
        Mech::ALL.iter().copied().find(|m| m.name() == s)
    }

    /// Whether the mechanism runs in a context that may sleep.
    pub(crate) fn can_sleep(self) -> bool {
        matches!(
            self,
            Mech::Threaded
                | Mech::WqSystem
                | Mech::WqHighpri
                | Mech::WqUnbound
                | Mech::WqDedicated
                | Mech::Kthread
                | Mech::Completion
        )
    }

    /// The execution context, for messages.
    pub(crate) fn context(self) -> &'static str {
        match self {
            Mech::Hardirq => "hard IRQ context",
            Mech::Tasklet | Mech::TaskletHi => "softirq context (tasklet)",
            Mech::BhWq | Mech::BhWqHighpri => "softirq context (BH workqueue)",
            Mech::TimerList => "softirq context (timer_list callback)",
            Mech::Hrtimer => "softirq context (hrtimer callback)",
            _ => "process context",
        }
    }
}

/// Simulated work per source.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkKind {
    None = 0,
    Busy = 1,
    Sleep = 2,
}

impl WorkKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WorkKind::None => "none",
            WorkKind::Busy => "busy",
            WorkKind::Sleep => "sleep",
        }
    }
    fn from_u32(v: u32) -> WorkKind {
        match v {
            1 => WorkKind::Busy,
            2 => WorkKind::Sleep,
            _ => WorkKind::None,
        }
    }
}

/// An event waiting for its bottom half.
#[derive(Clone, Copy)]
pub(crate) struct Item {
    pub(crate) seq: u64,
    pub(crate) count: u32,
    pub(crate) source: u16,
    pub(crate) hard_ns: u64,
    pub(crate) origin: Origin,
}

const FIFO_CAP: usize = 1024;

/// Fixed-capacity ring of pending items, one per mechanism.
pub(crate) struct Fifo {
    buf: KVec<Item>,
    head: usize,
    len: usize,
}

impl Fifo {
    fn new() -> Result<Self> {
        let mut buf = KVec::with_capacity(FIFO_CAP, GFP_KERNEL)?;
        for _ in 0..FIFO_CAP {
            buf.push(
                Item { seq: 0, count: 0, source: 0, hard_ns: 0, origin: Origin::Device },
                GFP_KERNEL,
            )?;
        }
        Ok(Self { buf, head: 0, len: 0 })
    }
    fn push(&mut self, it: Item) -> bool {
        if self.len == FIFO_CAP {
            return false;
        }
        let i = (self.head + self.len) % FIFO_CAP;
        self.buf[i] = it;
        self.len += 1;
        true
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn pop(&mut self) -> Option<Item> {
        if self.len == 0 {
            return None;
        }
        let it = self.buf[self.head];
        self.head = (self.head + 1) % FIFO_CAP;
        self.len -= 1;
        Some(it)
    }
}

/// eventq state (under `Shared::evq`).
pub(crate) struct EventQ {
    pub(crate) vq: Virtqueue,
    bufs: Coherent<[u64]>,
    last_seq: [u64; MAX_SOURCES],
}

/// ackq state (under `Shared::ackq`).
pub(crate) struct AckQ {
    pub(crate) vq: Virtqueue,
    bufs: Coherent<[u64]>,
    free: KVec<u16>,
    cur: Option<u16>,
    fill: usize,
}

/// controlq state (under `Shared::ctrlq`).
pub(crate) struct CtrlQ {
    pub(crate) vq: Virtqueue,
    buf: Coherent<[u64]>,
    busy: bool,
    done: bool,
    used_len: u32,
    /// Hard IRQ time stamp of the last reply (see `CtrlReply::recv_ns`).
    done_ns: u64,
}

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
    pub(crate) uevents: Atomic<u64>,
    pub(crate) helper_runs: Atomic<u64>,
    pub(crate) helper_errors: Atomic<u64>,
}

macro_rules! zero_counters {
    ($($f:ident),*) => { Counters { $($f: Atomic::new(0)),* } };
}

impl Counters {
    pub(crate) fn reset(&self) {
        for c in [
            &self.irqs, &self.records, &self.raises, &self.latched, &self.finals, &self.bad_id,
            &self.bad_len, &self.bad_source, &self.bad_count, &self.seq_gap,
            &self.budget_exhausted, &self.fifo_overflow, &self.acks_posted, &self.ack_bufs,
            &self.acks_dropped, &self.ack_bad_id, &self.ctrl_requests, &self.ctrl_errors,
            &self.ctrl_timeouts, &self.local_events, &self.local_skipped, &self.sleep_refused,
            &self.uevents, &self.helper_runs, &self.helper_errors,
        ] {
            c.store(0, Relaxed);
        }
    }

    fn new() -> Self {
        zero_counters!(
            irqs, records, raises, latched, finals, bad_id, bad_len, bad_source, bad_count,
            seq_gap, budget_exhausted, fifo_overflow, acks_posted, ack_bufs, acks_dropped,
            ack_bad_id, ctrl_requests, ctrl_errors, ctrl_timeouts, local_events, local_skipped,
            sleep_refused, uevents, helper_runs, helper_errors
        )
    }
}

/// Values read from the device configuration (§4) and the negotiated features.
#[derive(Clone, Copy)]
pub(crate) struct DevInfo {
    pub(crate) num_sources: u16,
    pub(crate) max_rate_hz: u32,
    pub(crate) max_outstanding: u32,
    pub(crate) min_period_ns: u32,
    pub(crate) max_burst: u32,
    pub(crate) features: u64,
}

/// Max event records handled per hard IRQ before the rest is left to the IRQ thread.
pub(crate) const IRQ_BUDGET: usize = 64;

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
    pub(crate) ctrlq: SpinLockIrq<CtrlQ>,
    #[pin]
    pub(crate) ctrl_lock: Mutex<CtrlReply>,
    #[pin]
    pub(crate) ctrl_done: Completion,
    #[pin]
    pub(crate) fifos: SpinLockIrq<KVec<Fifo>>,
    #[pin]
    pub(crate) stats: SpinLockIrq<Stats>,
    pub(crate) cnt: Counters,
    pub(crate) src_mech: [Atomic<u32>; MAX_SOURCES],
    pub(crate) src_work: [Atomic<u32>; MAX_SOURCES],
    pub(crate) src_work_us: [Atomic<u32>; MAX_SOURCES],
    pub(crate) stopping: Atomic<bool>,
    pub(crate) evq_more: Atomic<bool>,
    pub(crate) threaded_pending: Atomic<bool>,
    /// Mechanisms the local reference source cycles through (bit mask).
    pub(crate) local_mask: Atomic<u32>,
    pub(crate) local_next: Atomic<u32>,
    /// IRQ-thread waker (irq, cookie); cookie 0 = none. Set after the IRQ is requested.
    waker_irq: Atomic<u32>,
    waker_cookie: Atomic<u64>,
    // Bottom halves.
    #[pin]
    pub(crate) tasklet: Tasklet<Shared>,
    #[pin]
    pub(crate) tasklet_hi: Tasklet<Shared>,
    #[pin]
    pub(crate) w_bh: Work<Shared, 4>,
    #[pin]
    pub(crate) w_bh_hi: Work<Shared, 5>,
    #[pin]
    pub(crate) w_sys: Work<Shared, 6>,
    #[pin]
    pub(crate) w_hi: Work<Shared, 7>,
    #[pin]
    pub(crate) w_unbound: Work<Shared, 8>,
    #[pin]
    pub(crate) w_ded: Work<Shared, 9>,
    pub(crate) wq: OwnedQueue,
    #[pin]
    pub(crate) kt_wait: CondVar,
    #[pin]
    pub(crate) comp: Completion,
    #[pin]
    pub(crate) threads: Mutex<KVec<KThread>>,
    #[pin]
    pub(crate) timer: Timer<Shared>,
    #[pin]
    pub(crate) hrt: HrTimer<Shared>,
    // Storm detector.
    #[pin]
    pub(crate) storm: crate::storm_detect::StormDetector,
    #[pin]
    pub(crate) w_storm: Work<Shared, 20>,
    #[pin]
    pub(crate) local: Mutex<Option<crate::local::LocalHandle>>,
}

kernel::impl_has_work! {
    impl HasWork<Self, 4> for Shared { self.w_bh }
    impl HasWork<Self, 5> for Shared { self.w_bh_hi }
    impl HasWork<Self, 6> for Shared { self.w_sys }
    impl HasWork<Self, 7> for Shared { self.w_hi }
    impl HasWork<Self, 8> for Shared { self.w_unbound }
    impl HasWork<Self, 9> for Shared { self.w_ded }
    impl HasWork<Self, 20> for Shared { self.w_storm }
}

/// Queue sizes we ask for.
const CTRLQ_SIZE: u16 = 4;
const EVENTQ_SIZE: u16 = 256;
const ACKQ_SIZE: u16 = 64;

pub(crate) struct Queues {
    evq: EventQ,
    ackq: AckQ,
    ctrlq: CtrlQ,
}

impl Queues {
    /// Allocates and programs the three virtqueues (not yet enabled).
    pub(crate) fn new(pdev: &pci::Device<kernel::device::Bound>, t: &Transport, event_idx: bool) -> Result<Self> {
        let dev = pdev.as_ref();
        // controlq: one chain, desc 0 (64-byte request, RO) -> desc 1 (64-byte reply, WO).
        let mut cvq = Virtqueue::new(dev, t, VQ_CONTROL, CTRLQ_SIZE, event_idx)?;
        if cvq.size < 2 {
            return Err(ENODEV);
        }
        let cbuf = Coherent::<u64>::zeroed_slice(dev, 2 * CTRL_WORDS, GFP_KERNEL)?;
        let base = cbuf.dma_address();
        cvq.set_desc(0, base, CTRL_SIZE as u32, DESC_F_NEXT, 1)?;
        cvq.set_desc(1, base + CTRL_SIZE as u64, CTRL_SIZE as u32, DESC_F_WRITE, 0)?;

        // eventq: descriptor i <-> 48-byte buffer i, device-writable.
        let mut evq = Virtqueue::new(dev, t, VQ_EVENT, EVENTQ_SIZE, event_idx)?;
        let n = evq.size as usize;
        let ebuf = Coherent::<u64>::zeroed_slice(dev, n * EVENT_WORDS, GFP_KERNEL)?;
        let base = ebuf.dma_address();
        for i in 0..n {
            evq.set_desc(i as u16, base + (i * EVENT_SIZE) as u64, EVENT_SIZE as u32, DESC_F_WRITE, 0)?;
        }

        // ackq: descriptor i <-> buffer of up to 64 ack records, device-readable.
        let mut avq = Virtqueue::new(dev, t, VQ_ACK, ACKQ_SIZE, event_idx)?;
        let n = avq.size as usize;
        let abuf = Coherent::<u64>::zeroed_slice(dev, n * ACKS_PER_BUF * ACK_WORDS, GFP_KERNEL)?;
        let base = abuf.dma_address();
        let mut free = KVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..n {
            avq.set_desc(i as u16, base + (i * ACKS_PER_BUF * ACK_SIZE) as u64, ACK_SIZE as u32, 0, 0)?;
            free.push(i as u16, GFP_KERNEL)?;
        }
        Ok(Self {
            evq: EventQ { vq: evq, bufs: ebuf, last_seq: [0; MAX_SOURCES] },
            ackq: AckQ { vq: avq, bufs: abuf, free, cur: None, fill: 0 },
            ctrlq: CtrlQ { vq: cvq, buf: cbuf, busy: false, done: false, used_len: 0, done_ns: 0 },
        })
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
        let fifos = {
            let mut v = KVec::with_capacity(NUM_MECH, GFP_KERNEL)?;
            for _ in 0..NUM_MECH {
                v.push(Fifo::new()?, GFP_KERNEL)?;
            }
            v
        };
        let stats = Stats::new()?;
        let wq = OwnedQueue::new(c"irqstorm_wq", crate::kwrap::workqueue::WQ_PERCPU, 0)?;
        let dm = default_mech as u32;
        Arc::pin_init(
            try_pin_init!(&this in Self {
                pdev: pdev.into(),
                t,
                info,
                evq <- new_spinlock_irq!(q.evq, "irqstorm_evq"),
                ackq <- new_spinlock_irq!(q.ackq, "irqstorm_ackq"),
                ctrlq <- new_spinlock_irq!(q.ctrlq, "irqstorm_ctrlq"),
                ctrl_lock <- new_mutex!(CtrlReply::default(), "irqstorm_ctrl"),
                ctrl_done <- Completion::new(),
                fifos <- new_spinlock_irq!(fifos, "irqstorm_fifos"),
                stats <- new_spinlock_irq!(stats, "irqstorm_stats"),
                cnt: Counters::new(),
                src_mech: [const { Atomic::new(0) }; MAX_SOURCES],
                src_work: [const { Atomic::new(0) }; MAX_SOURCES],
                src_work_us: [const { Atomic::new(0) }; MAX_SOURCES],
                stopping: Atomic::new(false),
                evq_more: Atomic::new(false),
                threaded_pending: Atomic::new(false),
                local_mask: Atomic::new(crate::local::DEFAULT_MASK),
                local_next: Atomic::new(0),
                waker_irq: Atomic::new(0),
                waker_cookie: Atomic::new(0),
                // SAFETY: `this` is the pinned `Shared` that contains the tasklets; they are
                // killed in their destructors, before `Shared` is freed.
                tasklet <- unsafe { Tasklet::new(this.as_ptr(), crate::bh::tasklet::run) },
                // SAFETY: as above.
                tasklet_hi <- unsafe { Tasklet::new(this.as_ptr(), crate::bh::tasklet::run_hi) },
                w_bh <- kernel::new_work!("irqstorm::bh_wq"),
                w_bh_hi <- kernel::new_work!("irqstorm::bh_wq_highpri"),
                w_sys <- kernel::new_work!("irqstorm::wq_system"),
                w_hi <- kernel::new_work!("irqstorm::wq_highpri"),
                w_unbound <- kernel::new_work!("irqstorm::wq_unbound"),
                w_ded <- kernel::new_work!("irqstorm::wq_dedicated"),
                wq,
                kt_wait <- new_condvar!("irqstorm_kthread"),
                comp <- Completion::new(),
                threads <- new_mutex!(KVec::new(), "irqstorm_threads"),
                // SAFETY: `this` contains the timer, which is shut down in its destructor.
                timer <- unsafe {
                    Timer::new(
                        this.as_ptr(),
                        crate::bh::timer_list::run,
                        c"irqstorm_bh_timer",
                        kernel::static_lock_class!(),
                    )
                },
                hrt <- HrTimer::new(),
                // SAFETY: `this` is the pinned, Arc-allocated `Shared` containing the detector.
                storm <- unsafe { crate::storm_detect::StormDetector::new(this.as_ptr()) },
                w_storm <- kernel::new_work!("irqstorm::storm"),
                local <- new_mutex!(None, "irqstorm_local"),
            }? Error),
            GFP_KERNEL,
        )
        .inspect(|s| {
            for m in s.src_mech.iter() {
                m.store(dm, Relaxed);
            }
        })
    }

    pub(crate) fn set_waker(&self, w: crate::kwrap::irq::ThreadWaker) {
        let (irq, cookie) = w.raw_parts();
        self.waker_irq.store(irq, Relaxed);
        self.waker_cookie.store(cookie, Relaxed);
    }

    /// Wakes the IRQ thread (used by the local reference source for `threaded`).
    pub(crate) fn wake_irq_thread(&self) {
        let w = crate::kwrap::irq::ThreadWaker::from_raw_parts(
            self.waker_irq.load(Relaxed),
            self.waker_cookie.load(Relaxed),
        );
        w.wake();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    pub(crate) fn mech_of(&self, source: u16) -> Mech {
        Mech::from_u32(self.src_mech[source as usize % MAX_SOURCES].load(Relaxed)).unwrap_or(Mech::Hardirq)
    }

    /// Sets the mechanism of `source`; refuses a non-sleepable one if the source sleeps.
    pub(crate) fn set_mech(&self, source: usize, m: Mech) -> Result {
        if source >= self.info.num_sources as usize {
            return Err(EINVAL);
        }
        let w = WorkKind::from_u32(self.src_work[source].load(Relaxed));
        if w == WorkKind::Sleep && !m.can_sleep() {
            self.cnt.sleep_refused.add(1, Relaxed);
            pr_warn!(
                "source {}: refusing mechanism {}: the source's work sleeps, and {} runs in {}, which must not sleep\n",
                source, m.name(), m.name(), m.context()
            );
            return Err(EINVAL);
        }
        self.src_mech[source].store(m as u32, Relaxed);
        Ok(())
    }

    /// Sets the simulated work of `source`; refuses to sleep in a non-sleepable mechanism.
    pub(crate) fn set_work(&self, source: usize, w: WorkKind, us: u32) -> Result {
        if source >= self.info.num_sources as usize {
            return Err(EINVAL);
        }
        let m = self.mech_of(source as u16);
        if w == WorkKind::Sleep && !m.can_sleep() {
            self.cnt.sleep_refused.add(1, Relaxed);
            pr_warn!(
                "source {}: refusing to sleep: mechanism {} runs in {}, which must not sleep (use busy-wait, or a threaded/workqueue/kthread/completion mechanism)\n",
                source, m.name(), m.context()
            );
            return Err(EINVAL);
        }
        if w == WorkKind::Busy && us > 10_000 {
            return Err(ERANGE);
        }
        if w == WorkKind::Sleep && us > 1_000_000 {
            return Err(ERANGE);
        }
        self.src_work_us[source].store(us, Relaxed);
        self.src_work[source].store(w as u32, Relaxed);
        Ok(())
    }

    pub(crate) fn work_of(&self, source: usize) -> (WorkKind, u32) {
        (
            WorkKind::from_u32(self.src_work[source].load(Relaxed)),
            self.src_work_us[source].load(Relaxed),
        )
    }

    // ---------------------------------------------------------------- hard IRQ side

    /// Hard IRQ handler body (MSI-X entry 0: config, controlq, eventq, ackq).
    /// Returns `true` if the IRQ thread must run.
    pub(crate) fn hardirq(self: &Arc<Self>) -> bool {
        let t = now_ns();
        self.cnt.irqs.add(1, Relaxed);
        if self.is_stopping() {
            return false;
        }
        self.poll_ctrlq(t);
        let wake = self.poll_eventq(t);
        self.flush_acks();
        wake || self.threaded_pending.load(Relaxed) || self.evq_more.load(Relaxed)
    }

    /// `t` is the hard IRQ time stamp, kept with the reply.
    fn poll_ctrlq(&self, t: u64) {
        let mut c = self.ctrlq.lock();
        loop {
            match c.vq.pop() {
                Pop::Empty => {
                    if !c.vq.enable_cb() {
                        break;
                    }
                }
                Pop::Ok(u) => {
                    c.done = true;
                    c.used_len = u.len;
                    c.done_ns = t;
                    self.ctrl_done.complete();
                }
                Pop::BadId => {
                    self.cnt.bad_id.add(1, Relaxed);
                }
            }
        }
    }

    /// Drains up to `IRQ_BUDGET` eventq records; `t` is the hard IRQ time stamp.
    pub(crate) fn poll_eventq(self: &Arc<Self>, t: u64) -> bool {
        let mut items = [Item { seq: 0, count: 0, source: 0, hard_ns: t, origin: Origin::Device }; IRQ_BUDGET];
        let mut n = 0;
        let mut more = false;
        // Buffers go back to the device only after the drain: a duplicated used id that
        // follows its original is then still "not outstanding" and is caught.
        let mut repost = [0u16; 2 * IRQ_BUDGET];
        let mut nrep = 0;
        {
            let mut g = self.evq.lock();
            let e = &mut *g;
            loop {
                if n == IRQ_BUDGET || nrep == repost.len() {
                    more = true;
                    self.cnt.budget_exhausted.add(1, Relaxed);
                    break;
                }
                let u = match e.vq.pop() {
                    Pop::Empty => {
                        if e.vq.enable_cb() {
                            continue;
                        }
                        break;
                    }
                    Pop::BadId => {
                        self.cnt.bad_id.add(1, Relaxed);
                        continue;
                    }
                    Pop::Ok(u) => u,
                };
                let id = u.id as usize;
                let rec = if u.len as usize == EVENT_SIZE {
                    let mut w = [0u64; EVENT_WORDS];
                    let ok = (|| -> Result {
                        for (k, x) in w.iter_mut().enumerate() {
                            *x = io_read!(e.bufs, [try: id * EVENT_WORDS + k]);
                        }
                        Ok(())
                    })();
                    ok.ok().map(|()| EventRecord::decode(&w))
                } else {
                    self.cnt.bad_len.add(1, Relaxed);
                    None
                };
                repost[nrep] = u.id;
                nrep += 1;
                let Some(r) = rec else { continue };
                if r.source >= self.info.num_sources {
                    self.cnt.bad_source.add(1, Relaxed);
                    continue;
                }
                if r.count == 0 {
                    self.cnt.bad_count.add(1, Relaxed);
                    continue;
                }
                let s = r.source as usize;
                let first = r.source_seq.wrapping_sub(u64::from(r.count)).wrapping_add(1);
                if first != e.last_seq[s].wrapping_add(1) {
                    self.cnt.seq_gap.add(1, Relaxed);
                    e.last_seq[s] = r.source_seq;
                    continue;
                }
                e.last_seq[s] = r.source_seq;
                if r.flags & EV_LATCHED != 0 {
                    self.cnt.latched.add(1, Relaxed);
                }
                if r.flags & EV_FINAL != 0 {
                    self.cnt.finals.add(1, Relaxed);
                }
                items[n] = Item { seq: r.seq, count: r.count, source: r.source, hard_ns: t, origin: Origin::Device };
                n += 1;
            }
            for id in &repost[..nrep] {
                let _ = e.vq.add(*id);
            }
            let _ = e.vq.kick(&self.t);
            // Publish "a drain is left unfinished" under the lock: the hard handler and the
            // IRQ thread drain concurrently, and a store after the unlock could overwrite the
            // `true` of a later, budget-exhausted drain with the `false` of this one. The ring
            // would then be left without `used_event` re-armed and without anyone to finish
            // it (EVENT_IDX sends no further interrupt): the eventq would stall.
            self.evq_more.store(more, Relaxed);
        }
        let mut wake = more;
        for it in &items[..n] {
            self.cnt.records.add(1, Relaxed);
            self.cnt.raises.add(u64::from(it.count), Relaxed);
            wake |= self.dispatch(*it, self.mech_of(it.source));
        }
        wake
    }

    /// Hands `it` to mechanism `m`. Returns `true` if the IRQ thread must be woken.
    /// Called from hard IRQ context (device IRQ or the local hard hrtimer).
    pub(crate) fn dispatch(self: &Arc<Self>, it: Item, m: Mech) -> bool {
        if m == Mech::Hardirq {
            self.process(it, m);
            return false;
        }
        if !self.fifos.lock()[m as usize].push(it) {
            // Never lose an event: account for it right here.
            self.cnt.fifo_overflow.add(1, Relaxed);
            self.process_nowork(it, m);
            return false;
        }
        self.trigger(m)
    }

    fn trigger(self: &Arc<Self>, m: Mech) -> bool {
        match m {
            Mech::Hardirq => {}
            Mech::Threaded => {
                self.threaded_pending.store(true, Relaxed);
                return true;
            }
            Mech::Tasklet => self.tasklet.schedule(),
            Mech::TaskletHi => self.tasklet_hi.hi_schedule(),
            Mech::BhWq => {
                let _ = workqueue::system_bh().enqueue::<Arc<Shared>, 4>(self.clone());
            }
            Mech::BhWqHighpri => {
                let _ = workqueue::system_bh_highpri().enqueue::<Arc<Shared>, 5>(self.clone());
            }
            Mech::WqSystem => {
                let _ = crate::kwrap::workqueue::system_percpu().enqueue::<Arc<Shared>, 6>(self.clone());
            }
            Mech::WqHighpri => {
                let _ = workqueue::system_highpri().enqueue::<Arc<Shared>, 7>(self.clone());
            }
            Mech::WqUnbound => {
                let _ = workqueue::system_unbound().enqueue::<Arc<Shared>, 8>(self.clone());
            }
            Mech::WqDedicated => {
                let _ = self.wq.queue().enqueue::<Arc<Shared>, 9>(self.clone());
            }
            Mech::Kthread => self.kt_wait.notify_one(),
            Mech::Completion => self.comp.complete(),
            Mech::TimerList => self.timer.arm_in_jiffies(0),
            Mech::Hrtimer => {
                // SAFETY: `Shared` lives at least until the timer is cancelled: teardown cancels
                // it through the `ArcHrTimerHandle` kept in the driver data (which also holds a
                // reference) before the last reference can go away.
                unsafe { <Shared as HasHrTimer<Shared>>::start(Arc::as_ptr(self), Delta::ZERO) };
            }
        }
        false
    }

    // ---------------------------------------------------------------- bottom half side

    /// Runs bottom half `m`: processes everything queued for it, then posts the acks.
    pub(crate) fn run_bh(&self, m: Mech) {
        loop {
            let it = self.fifos.lock()[m as usize].pop();
            let Some(it) = it else { break };
            self.process(it, m);
        }
        self.flush_acks();
    }

    /// A copy of the statistics, taken with the IRQ-safe lock held only for the copy.
    pub(crate) fn stats_snapshot(&self) -> Result<Stats> {
        let mut snap = Stats::new()?;
        snap.copy_from(&self.stats.lock());
        Ok(snap)
    }

    pub(crate) fn fifo_len(&self, m: Mech) -> usize {
        self.fifos.lock()[m as usize].len
    }

    fn simulate(&self, it: &Item, m: Mech) {
        // No simulated work for local events, nor while tearing down (drain fast).
        if it.origin != Origin::Device || self.is_stopping() {
            return;
        }
        let (w, us) = self.work_of(it.source as usize % MAX_SOURCES);
        match w {
            WorkKind::None => {}
            WorkKind::Busy => udelay(Delta::from_micros(i64::from(us))),
            WorkKind::Sleep => {
                // Refused at configuration time for atomic mechanisms; re-checked here.
                if m.can_sleep() {
                    if us >= 20_000 {
                        msleep(us / 1000);
                    } else {
                        let us = u64::from(us);
                        usleep_range(us, us + us / 4 + 1);
                    }
                }
            }
        }
    }

    /// Processes one item in mechanism `m`: stamps, simulated work, statistics, ack.
    pub(crate) fn process(&self, it: Item, m: Mech) {
        let start = now_ns();
        self.simulate(&it, m);
        let end = now_ns();
        self.account(it, m, start, end);
    }

    fn process_nowork(&self, it: Item, m: Mech) {
        let start = now_ns();
        self.account(it, m, start, start);
    }

    fn account(&self, it: Item, m: Mech, start: u64, end: u64) {
        self.stats.lock().get_mut(it.origin, m).record(
            it.count,
            start.saturating_sub(it.hard_ns),
            end.saturating_sub(start),
        );
        if it.origin == Origin::Device {
            self.push_ack(&AckRecord {
                seq: it.seq,
                source: it.source,
                mechanism: m as u8,
                count: it.count,
                hardirq_ns: it.hard_ns,
                bh_start_ns: start,
                bh_end_ns: end,
                post_ns: 0,
            });
        } else {
            self.cnt.local_events.add(1, Relaxed);
        }
    }

    // ---------------------------------------------------------------- ackq

    fn push_ack(&self, rec: &AckRecord) {
        if self.is_stopping() {
            self.cnt.acks_dropped.add(1, Relaxed);
            return;
        }
        let mut g = self.ackq.lock();
        let a = &mut *g;
        if a.cur.is_none() {
            loop {
                match a.vq.pop() {
                    Pop::Empty => break,
                    Pop::Ok(u) => {
                        let _ = a.free.push(u.id, GFP_ATOMIC);
                    }
                    Pop::BadId => {
                        self.cnt.ack_bad_id.add(1, Relaxed);
                    }
                }
            }
            a.vq.disable_cb();
            match a.free.pop() {
                Some(h) => {
                    a.cur = Some(h);
                    a.fill = 0;
                }
                None => {
                    self.cnt.acks_dropped.add(1, Relaxed);
                    return;
                }
            }
        }
        let Some(cur) = a.cur else { return };
        let mut r = *rec;
        r.post_ns = now_ns();
        let w = r.encode();
        let base = (cur as usize * ACKS_PER_BUF + a.fill) * ACK_WORDS;
        let ok = (|| -> Result {
            for (k, x) in w.iter().enumerate() {
                io_write!(a.bufs, [try: base + k], *x);
            }
            Ok(())
        })();
        if ok.is_err() {
            self.cnt.acks_dropped.add(1, Relaxed);
            return;
        }
        a.fill += 1;
        if a.fill == ACKS_PER_BUF {
            self.submit_acks(a);
        }
    }

    fn submit_acks(&self, a: &mut AckQ) {
        let Some(cur) = a.cur.take() else { return };
        let n = a.fill;
        a.fill = 0;
        if n == 0 {
            let _ = a.free.push(cur, GFP_ATOMIC);
            return;
        }
        if a.vq.set_desc_len(cur, (n * ACK_SIZE) as u32, 0, 0).is_err() || a.vq.add(cur).is_err() {
            self.cnt.acks_dropped.add(n as u64, Relaxed);
            return;
        }
        let _ = a.vq.kick(&self.t);
        self.cnt.acks_posted.add(n as u64, Relaxed);
        self.cnt.ack_bufs.add(1, Relaxed);
    }

    /// Posts the partially filled ack buffer, if any (one kick per batch).
    pub(crate) fn flush_acks(&self) {
        let mut g = self.ackq.lock();
        if g.cur.is_some() && g.fill > 0 {
            self.submit_acks(&mut g);
        }
    }

    // ---------------------------------------------------------------- controlq

    /// Sends a control request and waits (with a timeout) for the reply. Process context.
    pub(crate) fn ctrl(&self, req: &CtrlRequest) -> Result<CtrlReply> {
        let mut last = self.ctrl_lock.lock();
        if self.is_stopping() {
            return Err(ENODEV);
        }
        self.cnt.ctrl_requests.add(1, Relaxed);
        {
            let mut g = self.ctrlq.lock();
            let c = &mut *g;
            if c.busy && !c.done {
                // A previous request timed out and the device still holds the buffer.
                return Err(EBUSY);
            }
            for k in 0..CTRL_WORDS {
                io_write!(c.buf, [try: k], req.words[k]);
                io_write!(c.buf, [try: CTRL_WORDS + k], 0u64);
            }
            c.busy = true;
            c.done = false;
            c.used_len = 0;
            c.vq.add(0)?;
            c.vq.kick(&self.t)?;
        }
        let deadline = jiffies() + crate::kwrap::clock::msecs_to_jiffies(2000);
        loop {
            let now = jiffies();
            let left = deadline.saturating_sub(now);
            let got = left > 0 && self.ctrl_done.wait_timeout(left);
            let g = self.ctrlq.lock();
            if g.done {
                break;
            }
            drop(g);
            if !got {
                self.cnt.ctrl_timeouts.add(1, Relaxed);
                pr_warn!("controlq request (opcode {}) timed out\n", req.words[0] as u16);
                return Err(ETIMEDOUT);
            }
        }
        let mut reply = CtrlReply::default();
        {
            let mut g = self.ctrlq.lock();
            g.busy = false;
            if (g.used_len as usize) < CTRL_SIZE {
                self.cnt.ctrl_errors.add(1, Relaxed);
                return Err(EIO);
            }
            for k in 0..CTRL_WORDS {
                reply.words[k] = io_read!(g.buf, [try: CTRL_WORDS + k]);
            }
            reply.recv_ns = g.done_ns;
        }
        *last = reply;
        if reply.status() != 0 {
            self.cnt.ctrl_errors.add(1, Relaxed);
            pr_info!(
                "controlq: opcode {} source {} -> {}\n",
                reply.opcode(),
                (req.words[0] >> 16) as u16,
                status_name(reply.status())
            );
        }
        status_to_result(reply.status())?;
        Ok(reply)
    }

    // ---------------------------------------------------------------- teardown

    /// Stops everything that can produce or run work. Process context; the caller then resets
    /// the device, synchronizes the IRQ and drops the handles.
    pub(crate) fn quiesce_sources(&self) {
        self.stopping.store(true, Relaxed);
        self.storm.shutdown();
        crate::local::stop(self);
        self.set_waker(crate::kwrap::irq::ThreadWaker::NONE);
    }

    /// After the device is reset and the IRQ synchronized: kill/flush every bottom half.
    pub(crate) fn quiesce_bottom_halves(&self) {
        use crate::kwrap::workqueue::flush_work;
        self.tasklet.kill();
        self.tasklet_hi.kill();
        flush_work(&self.w_bh);
        flush_work(&self.w_bh_hi);
        flush_work(&self.w_sys);
        flush_work(&self.w_hi);
        flush_work(&self.w_unbound);
        flush_work(&self.w_ded);
        self.wq.flush();
        flush_work(&self.w_storm);
        self.timer.shutdown();
        let mut th = self.threads.lock();
        {
            // Wake the waiters so they see the stop request promptly.
            let _f = self.fifos.lock();
            self.kt_wait.notify_all();
        }
        self.comp.complete();
        while let Some(mut k) = th.pop() {
            k.stop();
        }
    }
}
