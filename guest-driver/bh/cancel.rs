// SPDX-License-Identifier: GPL-2.0

//! Cancelling and flushing a bottom half under a storm (debugfs `bh`, issue 11 item 3).
//!
//! `cancel MECH` closes the mechanism (from then on the hard IRQ hands its records back at
//! once, acked `ACK_F_CANCELLED`), cancels its pending instance with the kernel's own call
//! (`tasklet_kill`, `cancel_work_sync`, `cancel_delayed_work_sync`, `timer_delete_sync`,
//! `hrtimer_cancel`), which also waits for a running one, then hands back what still waits in
//! its queue. A run that starts while it is closed hands its records back too; one that starts
//! after the cancel returned is counted `ran_after_cancel` (never, if the kernel's cancel keeps
//! its word). `reopen MECH` undoes it. `flush MECH` (`flush_work`, `flush_delayed_work`,
//! `flush_workqueue`) waits for the pending instance to run; nothing is handed back.
//! Conservation: every record is processed or acked cancelled (`cancelled` on both sides).

use super::{account_cancelled, fifo_len, work_pool};
use crate::{
    kwrap::{
        timer_list::Timer,
        workqueue::{cancel_delayed_work_sync, cancel_work_sync, flush_delayed_work, flush_work},
    },
    mech::Mech,
    shared::Shared,
};
use kernel::{
    prelude::*,
    sync::{
        atomic::{Acquire, Full, Relaxed, Release},
        Arc,
    },
};

/// Whether `m` has a kernel call that cancels a pending instance: every work item, the
/// tasklets and the two timers.
pub(crate) fn cancellable(m: Mech) -> bool {
    flushable(m) || matches!(m, Mech::Tasklet | Mech::TaskletHi | Mech::TimerList | Mech::Hrtimer)
}

/// Whether `m` is a work item that `flush_work` / `flush_delayed_work` / `flush_workqueue` waits for.
pub(crate) fn flushable(m: Mech) -> bool {
    m.pooled() || matches!(m, Mech::BhWq | Mech::BhWqHighpri | Mech::WqDelayed)
}

/// Closes `m`, cancels its pending instance and hands back what waits. Process context.
/// Returns the records handed back from its queue.
pub(crate) fn cancel(s: &Arc<Shared>, m: Mech) -> Result<u64> {
    if !cancellable(m) {
        s.cnt.cancel_refused.add(1, Relaxed);
        return Err(EINVAL);
    }
    let i = m as usize;
    s.bh.cancel_done[i].store(false, Relaxed);
    {
        // Under the queues' lock, which `dispatch` holds from its check to its scheduling: a
        // hard IRQ that found `m` open has queued and scheduled before this, so the cancel
        // below sees its run; any later one finds `m` closed.
        let _q = s.bh.fifos.lock();
        let _ = s.bh.closed[i].xchg(true, Full);
    }
    match m {
        Mech::Tasklet => s.bh.tasklet.kill(),
        Mech::TaskletHi => s.bh.tasklet_hi.kill(),
        Mech::BhWq => drop(cancel_work_sync::<Shared, 4>(s)),
        Mech::BhWqHighpri => drop(cancel_work_sync::<Shared, 5>(s)),
        m if m.pooled() => work_pool::cancel(s, m)?,
        Mech::WqDelayed => drop(cancel_delayed_work_sync::<Shared, 14>(s)),
        Mech::TimerList => drop(Timer::<Shared, 12>::delete_sync(s)),
        _ => drop(s.bh.hrt_arm.cancel()),
    }
    // No run is pending or running now: a delay slot left armed would keep the mechanism
    // from arming again after `reopen`.
    super::take_armed(s, m);
    let n = drain_cancelled(s, m);
    s.bh.cancel_done[i].store(true, Release);
    s.cnt.cancels.add(1, Relaxed);
    Ok(n)
}

/// Opens `m` again after [`cancel`].
pub(crate) fn reopen(s: &Shared, m: Mech) {
    let _ = s.bh.closed[m as usize].xchg(false, Full);
    s.bh.cancel_done[m as usize].store(false, Relaxed);
}

/// Waits for `m`'s pending instance to run. Process context. Returns the records waiting
/// after it (those that came meanwhile).
pub(crate) fn flush(s: &Arc<Shared>, m: Mech) -> Result<usize> {
    if !flushable(m) {
        s.cnt.cancel_refused.add(1, Relaxed);
        return Err(EINVAL);
    }
    match m {
        Mech::BhWq => drop(flush_work(&s.w_bh)),
        Mech::BhWqHighpri => drop(flush_work(&s.w_bh_hi)),
        Mech::WqDedicated => s.bh.wq.flush(),
        Mech::WqOrdered => s.bh.wq_ordered.flush(),
        Mech::WqCpuIntensive => s.bh.wq_intensive.flush(),
        m if m.pooled() => work_pool::flush(s, m)?,
        _ => drop(flush_delayed_work(&s.w_delayed)),
    }
    s.cnt.flushes.add(1, Relaxed);
    Ok(fifo_len(s, m))
}

/// Hands back every record waiting for `m`, acked cancelled. Returns how many.
pub(crate) fn drain_cancelled(s: &Shared, m: Mech) -> u64 {
    let mut n = 0;
    loop {
        let it = s.bh.fifos.lock()[m as usize].pop();
        let Some(it) = it else { break };
        account_cancelled(s, it, m);
        n += 1;
    }
    s.flush_acks();
    n
}

/// At the start of a run of `m`: `true` if `m` is closed (the run hands its records back
/// instead); a run after the cancel returned is counted.
pub(crate) fn closed_run(s: &Shared, m: Mech) -> bool {
    if !s.bh.closed[m as usize].load(Acquire) {
        return false;
    }
    if s.bh.cancel_done[m as usize].load(Acquire) {
        s.cnt.ran_after_cancel.add(1, Relaxed);
    }
    drain_cancelled(s, m);
    true
}

/// Whether `m` is closed: the hard IRQ hands its records back at once.
pub(crate) fn is_closed(s: &Shared, m: Mech) -> bool {
    s.bh.closed[m as usize].load(Acquire)
}

#[kernel::prelude::kunit_tests(irqstorm_cancel)]
mod tests {
    use super::*;

    #[test]
    fn every_work_item_tasklet_and_timer_can_be_cancelled_and_only_work_items_flushed() {
        assert_eq!(Mech::ALL.iter().filter(|m| flushable(**m)).count(), 9);
        for m in Mech::ALL.into_iter().filter(|m| flushable(*m)) {
            assert!(m.can_sleep() || matches!(m, Mech::BhWq | Mech::BhWqHighpri));
        }
        assert_eq!(Mech::ALL.iter().filter(|m| cancellable(**m)).count(), 13);
        for m in [Mech::Hardirq, Mech::Threaded, Mech::Kthread, Mech::Completion, Mech::User, Mech::KthreadMsleep] {
            assert!(!cancellable(m) && !flushable(m));
        }
    }
}
