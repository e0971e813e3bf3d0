// SPDX-License-Identifier: GPL-2.0

//! The bottom halves, one file per mechanism family. Each file owns both halves of its
//! mechanism: `schedule` (what the hard IRQ side does for an event) and the deferred callback
//! (work item, tasklet, timer, thread loop), which ends in [`run`].
//!
//! The hard IRQ side reaches them only through [`dispatch`]; no file here imports it back.
//! [`run`] stamps start/end, runs the source's simulated work, updates the mechanism's
//! histograms and posts the acks (batched).

use crate::{
    dispatch::current_cpu,
    kwrap::{
        clock::{now_ns, tsc, usecs_to_jiffies, Stamp},
        completion::Completion,
        delay::{msleep, schedule_timeout_uninterruptible, usleep_range},
        hrtimer::HrTimerArm,
        kthread::KThread,
        tasklet::Tasklet,
        timer_list::Timer,
        waitq::WaitQueue,
        workqueue::{flush_delayed_work, flush_work, OwnedQueue, WQ_CPU_INTENSIVE, WQ_ORDERED, WQ_PERCPU, WQ_UNBOUND},
    },
    mech::NUM_MECH,
    mech::Mech,
    protocol::*,
    shared::Shared,
    sources::WorkKind,
    stats::Origin,
};
use fifo::{Fifo, Item};
use kernel::{
    new_mutex, new_spinlock_irq,
    prelude::*,
    sync::{
        atomic::{Atomic, Acquire, Relaxed, Release},
        poll::PollCondVar,
        Arc, Mutex, SpinLockIrq,
    },
    time::{delay::udelay, Delta},
};

pub(crate) mod bh_wq;
pub(crate) mod cancel;
pub(crate) mod completion;
pub(crate) mod fifo;
pub(crate) mod hrtimer;
pub(crate) mod kthread;
pub(crate) mod sleeper;
pub(crate) mod tasklet;
pub(crate) mod user;
pub(crate) mod threaded;
pub(crate) mod timer_list;
pub(crate) mod work_pool;
pub(crate) mod workqueue;

/// The bottom halves' part of the device state (the work items and the hrtimer are direct
/// fields of `Shared`, see there).
#[pin_data]
pub(crate) struct BhState {
    /// Events waiting for each mechanism.
    #[pin]
    pub(crate) fifos: SpinLockIrq<KVec<Fifo>>,
    #[pin]
    pub(crate) tasklet: Tasklet<Shared, 2>,
    #[pin]
    pub(crate) tasklet_hi: Tasklet<Shared, 3>,
    /// The driver's own queues: `wq_dedicated` (`WQ_PERCPU`, `wq_max_active`), `wq_ordered`
    /// (`alloc_ordered_workqueue`) and `wq_cpu_intensive` (`WQ_PERCPU | WQ_CPU_INTENSIVE`).
    pub(crate) wq: OwnedQueue,
    pub(crate) wq_ordered: OwnedQueue,
    pub(crate) wq_intensive: OwnedQueue,
    /// The pooled workqueue mechanisms' work items (`work_pool.rs`).
    #[pin]
    pub(crate) pools: SpinLockIrq<work_pool::Pools>,
    /// Records of each mechanism being processed now, and the most at once since load.
    pub(crate) running: [Atomic<u32>; NUM_MECH],
    pub(crate) max_running: [Atomic<u32>; NUM_MECH],
    #[pin]
    pub(crate) kt_wait: WaitQueue,
    #[pin]
    pub(crate) comp: Completion,
    #[pin]
    pub(crate) threads: Mutex<KVec<KThread>>,
    #[pin]
    pub(crate) timer: Timer<Shared, 12>,
    /// The jiffies the bottom-half timer was last armed to expire at.
    pub(crate) timer_expires: Atomic<u64>,
    #[pin]
    pub(crate) hrt_arm: HrTimerArm<Shared>,
    /// Readers and pollers of `/dev/irqstormN` wait here for `user` records (`user.rs`).
    #[pin]
    pub(crate) user_wait: PollCondVar,
    /// The sleeper kthread's wait queue (`kthread_msleep`, `kthread_usleep`).
    #[pin]
    pub(crate) sl_wait: WaitQueue,
    /// Delay mechanisms: when the pending timer / delayed work was armed (ns; 0 = none
    /// pending) and the delay it was asked for (us).
    pub(crate) armed: [Atomic<u64>; NUM_MECH],
    pub(crate) armed_delay: [Atomic<u32>; NUM_MECH],
    /// Mechanisms closed by `cancel` (`bh/cancel.rs`), and whether that cancel has returned.
    pub(crate) closed: [Atomic<bool>; NUM_MECH],
    pub(crate) cancel_done: [Atomic<bool>; NUM_MECH],
}

impl BhState {
    pub(crate) fn new() -> Result<impl PinInit<Self>> {
        let mut fifos = KVec::with_capacity(NUM_MECH, GFP_KERNEL)?;
        for _ in 0..NUM_MECH {
            fifos.push(Fifo::new()?, GFP_KERNEL)?;
        }
        let wq = OwnedQueue::new(c"irqstorm_wq", WQ_PERCPU, wq_max_active()?)?;
        let wq_ordered = OwnedQueue::new(c"irqstorm_ordered", WQ_UNBOUND | WQ_ORDERED, 1)?;
        let wq_intensive = OwnedQueue::new(c"irqstorm_cpu_intensive", WQ_PERCPU | WQ_CPU_INTENSIVE, 0)?;
        Ok(pin_init!(Self {
            fifos <- new_spinlock_irq!(fifos, "irqstorm_fifos"),
            tasklet <- Tasklet::new(),
            tasklet_hi <- Tasklet::new(),
            wq,
            wq_ordered,
            wq_intensive,
            pools <- new_spinlock_irq!(work_pool::Pools::new(), "irqstorm_pools"),
            running: [const { Atomic::new(0) }; NUM_MECH],
            max_running: [const { Atomic::new(0) }; NUM_MECH],
            kt_wait <- WaitQueue::new(c"irqstorm_kthread", kernel::static_lock_class!()),
            comp <- Completion::new(),
            threads <- new_mutex!(KVec::new(), "irqstorm_threads"),
            timer <- Timer::new(c"irqstorm_bh_timer", kernel::static_lock_class!()),
            timer_expires: Atomic::new(0),
            hrt_arm <- HrTimerArm::new(),
            user_wait <- kernel::new_poll_condvar!("irqstorm_user"),
            sl_wait <- WaitQueue::new(c"irqstorm_sleeper", kernel::static_lock_class!()),
            armed: [const { Atomic::new(0) }; NUM_MECH],
            armed_delay: [const { Atomic::new(0) }; NUM_MECH],
            closed: [const { Atomic::new(false) }; NUM_MECH],
            cancel_done: [const { Atomic::new(false) }; NUM_MECH],
        }))
    }
}

/// Largest `wq_max_active` (the kernel's `WQ_MAX_ACTIVE`).
const MAX_WQ_ACTIVE: i32 = 2048;

/// `wq_max_active`, checked: the probe refuses a value outside 0..=2048 (0: the kernel's
/// default, `WQ_DFL_ACTIVE`).
fn wq_max_active() -> Result<i32> {
    let n = crate::params::wq_max_active.value();
    if (0..=MAX_WQ_ACTIVE).contains(&n) {
        Ok(n)
    } else {
        pr_err!("wq_max_active={}: must be 0 (default) ..= {}\n", n, MAX_WQ_ACTIVE);
        Err(EINVAL)
    }
}

/// Hands `it` to mechanism `m`. Returns `true` if the IRQ thread must be woken.
/// Called from hard IRQ context (device IRQ or the local hard hrtimer).
pub(crate) fn dispatch(s: &Arc<Shared>, it: Item, m: Mech) -> bool {
    if m == Mech::Hardirq {
        // Its bottom half is the hard IRQ handler itself: per record, no wake-up.
        inject_delay(s, m);
        process(s, it, m);
        return false;
    }
    // The check, the queueing and the scheduling under the queues' lock, which `cancel` takes
    // to close `m`: a record either finds `m` closed, or is queued and its run scheduled
    // before the cancel starts (so the cancel's kernel call cancels or waits for that run).
    // Checked outside the lock, a hard IRQ on another CPU could queue and schedule between
    // the cancel's return and `reopen`: a run after the cancel (48-cancel, the race case).
    let mut q = s.bh.fifos.lock();
    if cancel::is_closed(s, m) {
        drop(q);
        // Cancelled: handed back at once (the hard IRQ posts the ack with the others).
        account_cancelled(s, it, m);
        return false;
    }
    dispatch_delay();
    if !q[m as usize].push(it) {
        drop(q);
        // Never lose an event: account for it right here.
        s.cnt.fifo_overflow.add(1, Relaxed);
        process_nowork(s, it, m);
        return false;
    }
    let wake = schedule(s, m, delay_for(it.origin, s.delay_of(it.source)));
    drop(q);
    wake
}

/// The test hook `dispatch_delay_us` (at most 1000 us): a busy wait between a record's
/// cancel check and its queueing.
fn dispatch_delay() {
    let us = crate::params::dispatch_delay_us.value().min(1000);
    if us > 0 {
        udelay(Delta::from_micros(i64::from(us)));
    }
}

/// Jiffies for a timer (timer_list, wq_delayed) that must not expire before `us` have passed
/// (0: the next tick). A delay of n jiffies counts from the current tick's start, so it can
/// end up to a tick early (10 ms at HZ 250: 3 jiffies, 8-12 ms); one more, as `msleep` adds.
pub(super) fn delay_jiffies(us: u32) -> u64 {
    if us == 0 {
        0
    } else {
        usecs_to_jiffies(us) + 1
    }
}

/// The delay a record asks of a delay mechanism, given its source's `configured` one: the
/// local reference source asks none (its items' `source` is not a device source).
fn delay_for(origin: Origin, configured: u32) -> u32 {
    if origin == Origin::Device { configured } else { 0 }
}

/// Claims delay mechanism `m`'s arm slot for a run asked to wait `delay_us`: `true` if the
/// caller must arm its timer or delayed work (none is pending, so the first record waiting
/// is this one or came after the last run began).
fn try_arm(s: &Shared, m: Mech, delay_us: u32) -> bool {
    if s.bh.armed[m as usize].cmpxchg(0, now_ns().max(1), Relaxed).is_err() {
        return false;
    }
    // Before the caller arms: the run that takes the slot comes after the arming (the timer
    // and workqueue code order the two).
    s.bh.armed_delay[m as usize].store(delay_us, Release);
    true
}

/// Takes mechanism `m`'s arm slot at the start of its run: `(armed_ns, delay_us)`, or `None`
/// when no delay was armed (a run for another reason).
pub(crate) fn take_armed(s: &Shared, m: Mech) -> Option<(u64, u32)> {
    let armed = s.bh.armed[m as usize].xchg(0, Acquire);
    (armed != 0).then(|| (armed, s.bh.armed_delay[m as usize].load(Acquire)))
}

/// Schedules the deferred part of `m`. Returns `true` if the IRQ thread must be woken.
fn schedule(s: &Arc<Shared>, m: Mech, delay_us: u32) -> bool {
    match m {
        Mech::Hardirq => {}
        Mech::Threaded => return threaded::schedule(s),
        Mech::Tasklet | Mech::TaskletHi => tasklet::schedule(s, m),
        Mech::BhWq | Mech::BhWqHighpri => bh_wq::schedule(s, m),
        Mech::WqSystem
        | Mech::WqHighpri
        | Mech::WqUnbound
        | Mech::WqDedicated
        | Mech::WqOrdered
        | Mech::WqCpuIntensive => work_pool::schedule(s, m),
        Mech::User => user::schedule(s),
        Mech::Kthread => kthread::schedule(s),
        Mech::Completion => completion::schedule(s),
        Mech::TimerList if try_arm(s, m, delay_us) => timer_list::schedule(s, delay_us),
        Mech::Hrtimer | Mech::WqDelayed if try_arm(s, m, delay_us) => {
            let armed = if m == Mech::Hrtimer {
                hrtimer::schedule(s, delay_us)
            } else {
                workqueue::schedule_delayed(s, delay_us)
            };
            if !armed {
                // Nothing will run to take the slot: give it back, so the next record arms.
                take_armed(s, m);
            }
        }
        // Armed already: the pending run takes this record too.
        Mech::TimerList | Mech::Hrtimer | Mech::WqDelayed => {}
        Mech::KthreadMsleep | Mech::KthreadUsleep => sleeper::schedule(s),
    }
    false
}

/// Runs bottom half `m`: processes everything queued for it, then posts the acks.
///
/// `woke` is the stamp the woken context took as its first statement (None: it was not woken
/// for this run, e.g. a thread that found work without waiting). The first record it
/// processes gets that stamp as its bottom-half start and `ACK_F_FIRST` (hard IRQ -> bottom
/// half per interrupt); later records get their own start stamp (per record).
pub(crate) fn run(s: &Shared, m: Mech, woke: Option<Stamp>) {
    run_armed(s, m, woke, None);
}

/// [`run`] of a delay mechanism whose wait (`armed`: when it was armed, ns, and for how long,
/// us) ended at `woke`: the first record's ack carries both, for its lateness.
pub(crate) fn run_armed(s: &Shared, m: Mech, woke: Option<Stamp>, mut armed: Option<(u64, u32)>) {
    if cancel::closed_run(s, m) {
        return;
    }
    if let (Some((at, us)), Some(w)) = (armed, woke) {
        if w.ns < at.saturating_add(u64::from(us) * 1000) {
            s.cnt.delay_early.add(1, Relaxed);
        }
    }
    // The demonstration delay comes before the bottom half's start stamp: a woken context's
    // stamp is retaken after it.
    let mut woke = if inject_delay(s, m) { woke.map(|_| Stamp::now()) } else { woke };
    loop {
        let it = s.bh.fifos.lock()[m as usize].pop();
        let Some(mut it) = it else { break };
        match first_start(woke.take(), it.hard_ns) {
            Some(start) => {
                it.flags |= ACK_F_FIRST;
                if let Some((at, us)) = armed.take() {
                    (it.armed_ns, it.delay_us) = (at, us);
                }
                // Where the start stamp was taken before ACK_F_FIRST: kept in the events log.
                let record_tsc = if s.events.enabled() { tsc() } else { start.tsc };
                process_from(s, it, m, start, record_tsc);
            }
            None => process(s, it, m),
        }
    }
    s.flush_acks();
}

/// Upper bound of `inject_delay_us` (the kernel's `MAX_UDELAY_MS`).
const MAX_INJECT_DELAY_US: u32 = 5000;

/// The demonstration delay (module parameters `inject_delay_us`, `inject_delay_mech`): a busy
/// wait at the start of mechanism `m`'s bottom half, before any of its start stamps, so that
/// mechanism's hardirq->bh grows by the delay (guest-driver/README.md). Skipped when nothing is
/// queued for `m` (the IRQ thread also runs for other reasons).
/// Returns whether it waited.
fn inject_delay(s: &Shared, m: Mech) -> bool {
    let us = crate::params::inject_delay_us.value().min(MAX_INJECT_DELAY_US);
    if us == 0 || crate::params::inject_delay_mech.value() != m as i32 {
        return false;
    }
    if m != Mech::Hardirq && fifo_len(s, m) == 0 {
        return false;
    }
    udelay(Delta::from_micros(i64::from(us)));
    true
}

/// The bottom-half start of a run's first record: the wake-up stamp, unless the record's
/// hard IRQ came after it (queued after the run began: the run was not scheduled for it).
fn first_start(woke: Option<Stamp>, hard_ns: u64) -> Option<Stamp> {
    woke.filter(|w| w.ns >= hard_ns)
}

pub(crate) fn fifo_len(s: &Shared, m: Mech) -> usize {
    s.bh.fifos.lock()[m as usize].len()
}

fn simulate(s: &Shared, it: &Item, m: Mech) {
    // No simulated work for local events, nor while tearing down (drain fast).
    if it.origin != Origin::Device || s.is_stopping() {
        return;
    }
    let (w, us) = s.work_of(it.source as usize % MAX_SOURCES);
    match w {
        WorkKind::None => {}
        WorkKind::Busy => udelay(Delta::from_micros(i64::from(us))),
        // Refused at configuration time for atomic mechanisms; re-checked here.
        w if w.sleeps() && !m.can_sleep() => {}
        WorkKind::Sleep if us >= 20_000 => msleep(us / 1000),
        WorkKind::Sleep | WorkKind::Usleep => {
            let us = u64::from(us);
            usleep_range(us, us + us / 4 + 1);
        }
        WorkKind::Msleep => msleep(us.div_ceil(1000)),
        WorkKind::Timeout => schedule_timeout_uninterruptible(usecs_to_jiffies(us)),
    }
}

/// Processes one item in mechanism `m`: stamps (ns and TSC), simulated work, statistics, ack.
fn process(s: &Shared, it: Item, m: Mech) {
    let start = Stamp::now();
    process_from(s, it, m, start, start.tsc);
}

/// As [`process`], its bottom half having started at `start`; `record_tsc`: when processing of
/// this record itself began (for the events log).
fn process_from(s: &Shared, it: Item, m: Mech, start: Stamp, record_tsc: u64) {
    // Before the work: a sleeping record may wake on another CPU.
    let cpu = current_cpu();
    let i = m as usize;
    let now = s.bh.running[i].fetch_add(1, Relaxed) + 1;
    let mut max = s.bh.max_running[i].load(Relaxed);
    while now > max {
        match s.bh.max_running[i].cmpxchg(max, now, Relaxed) {
            Ok(_) => break,
            Err(seen) => max = seen,
        }
    }
    simulate(s, &it, m);
    s.bh.running[i].fetch_sub(1, Relaxed);
    let end = Stamp::now();
    account(s, it, m, (start, end, cpu), record_tsc);
}

fn process_nowork(s: &Shared, it: Item, m: Mech) {
    let start = Stamp::now();
    account(s, it, m, (start, start, current_cpu()), start.tsc);
}

/// Accounts record `it` whose bottom half ran from `start` to `end` on `cpu`.
fn account(s: &Shared, it: Item, m: Mech, (start, end, cpu): (Stamp, Stamp, u16), record_tsc: u64) {
    s.events.log(&it, m, start.tsc, end.tsc, record_tsc, cpu);
    s.stats.lock().get_mut(it.origin, m).record(
        it.count,
        start.ns.saturating_sub(it.hard_ns),
        end.ns.saturating_sub(start.ns),
    );
    if it.origin == Origin::Device {
        s.push_ack(&AckRecord {
            seq: it.seq,
            source: it.source,
            mechanism: m as u8,
            flags: it.flags,
            count: it.count,
            hardirq_ns: it.hard_ns,
            bh_start_ns: start.ns,
            bh_end_ns: end.ns,
            post_ns: 0,
            hardirq_tsc: it.found_tsc,
            bh_start_tsc: start.tsc,
            bh_end_tsc: end.tsc,
            hard_cpu: it.hard_cpu,
            bh_cpu: cpu,
            delay_us: it.delay_us,
            armed_ns: it.armed_ns,
        });
    } else {
        s.cnt.local_events.add(1, Relaxed);
    }
}

/// Hands record `it` of mechanism `m` back without its bottom half: acked `ACK_F_CANCELLED`
/// (no bottom-half stamps), counted `cancelled`.
fn account_cancelled(s: &Shared, it: Item, m: Mech) {
    s.cnt.cancelled.add(1, Relaxed);
    if it.origin == Origin::Device {
        s.push_ack(&AckRecord {
            seq: it.seq,
            source: it.source,
            mechanism: m as u8,
            flags: (it.flags & !ACK_F_FIRST) | ACK_F_CANCELLED,
            count: it.count,
            hardirq_ns: it.hard_ns,
            hardirq_tsc: it.found_tsc,
            hard_cpu: it.hard_cpu,
            bh_cpu: current_cpu(),
            ..AckRecord::default()
        });
    } else {
        s.cnt.local_events.add(1, Relaxed);
    }
}

/// Process-context set-up once the device runs: the kthread and completion waiter threads,
/// and the hrtimer handle that makes re-arming from hard IRQ context safe.
pub(crate) fn start(s: &Arc<Shared>) -> Result {
    work_pool::fill(s, work_pool::work_items()?)?;
    let mut th = s.bh.threads.lock();
    th.push(kthread::spawn(s)?, GFP_KERNEL)?;
    th.push(completion::spawn(s)?, GFP_KERNEL)?;
    th.push(sleeper::spawn(s)?, GFP_KERNEL)?;
    drop(th);
    hrtimer::install(s);
    Ok(())
}

/// After the device is reset and the IRQ synchronized: kill/flush every bottom half.
pub(crate) fn quiesce(s: &Arc<Shared>) {
    s.bh.tasklet.kill();
    s.bh.tasklet_hi.kill();
    flush_work(&s.w_bh);
    flush_work(&s.w_bh_hi);
    work_pool::release(s);
    // A pending delayed work runs now (its wait cut short) and drains its queue.
    flush_delayed_work(&s.w_delayed);
    s.bh.wq.flush();
    s.bh.wq_ordered.flush();
    s.bh.wq_intensive.flush();
    user::release(s);
    flush_work(&s.w_storm);
    timer_list::shutdown(s);
    let mut th = s.bh.threads.lock();
    {
        // Wake the waiters so they see the stop request promptly.
        let _f = s.bh.fifos.lock();
        s.bh.kt_wait.notify_all();
        s.bh.sl_wait.notify_all();
    }
    s.bh.comp.complete();
    while let Some(mut k) = th.pop() {
        k.stop();
    }
    drop(th);
    s.bh.hrt_arm.release();
}

#[kernel::prelude::kunit_tests(irqstorm_bh)]
mod tests {
    use super::*;

    fn at(ns: u64) -> Stamp {
        Stamp { ns, tsc: ns * 2 }
    }

    /// Regression: the local reference source's items took device source 0's delay (their
    /// `source` field is 0), so a delay set on source 0 delayed the reference too.
    #[test]
    fn only_device_records_ask_for_a_delay() {
        assert_eq!(delay_for(Origin::Device, 1000), 1000);
        assert_eq!(delay_for(Origin::Local, 1000), 0);
    }

    /// Regression: timer_list armed `usecs_to_jiffies(delay)` jiffies ahead, which can expire
    /// a tick early (45-lateness saw a 10000 us delay run after 9711 us).
    #[test]
    fn a_timer_delay_is_never_cut_short_by_the_current_tick() {
        let tick_us = 1_000_000 / crate::kwrap::clock::hz();
        assert_eq!(delay_jiffies(0), 0);
        for us in [1, 100, 999, 1000, 1001, 3999, 4000, 4001, 10_000, 12_345, 1_000_000] {
            let j = delay_jiffies(us);
            // The shortest run: `j - 1` whole ticks (armed just before a tick).
            assert!((j - 1) * tick_us >= u64::from(us));
            // And no more than a tick beyond what the delay needs.
            assert!((j - 2) * tick_us < u64::from(us));
        }
    }

    #[test]
    fn jiffies_comparisons_survive_the_wrap() {
        use crate::kwrap::clock::time_after_eq;
        assert!(time_after_eq(10, 10));
        assert!(time_after_eq(11, 10));
        assert!(!time_after_eq(9, 10));
        // Expiry armed just before the counter wraps, checked just after.
        let expires = u64::MAX - 2;
        assert!(time_after_eq(expires.wrapping_add(5), expires));
        assert!(!time_after_eq(expires, expires.wrapping_add(5)));
    }

    #[test]
    fn first_record_takes_the_wake_up_stamp() {
        assert_eq!(first_start(Some(at(500)), 400).map(|s| s.tsc), Some(1000));
        assert_eq!(first_start(Some(at(500)), 500).map(|s| s.ns), Some(500));
    }

    #[test]
    fn no_wake_up_stamp_for_a_record_queued_after_it_or_without_wake_up() {
        assert!(first_start(Some(at(500)), 501).is_none());
        assert!(first_start(None, 0).is_none());
    }
}
