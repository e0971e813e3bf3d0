// SPDX-License-Identifier: GPL-2.0

//! The process-context workqueue mechanisms' work items (issue 11 item 1): `work_items`
//! (module parameter, 1..=16) work items per mechanism, so that a queue can run several of one
//! mechanism's records at once and its own rules decide how many: `wq_system`, `wq_highpri`
//! (per-CPU pools under concurrency management: another worker starts when one sleeps),
//! `wq_unbound`, `wq_dedicated` (`alloc_workqueue(WQ_PERCPU, wq_max_active)`), `wq_ordered`
//! (`alloc_ordered_workqueue`: one at a time, in order) and `wq_cpu_intensive`
//! (`WQ_PERCPU | WQ_CPU_INTENSIVE`: outside concurrency management). With one item (the
//! default) every queue runs the mechanism's records one after the other.
//!
//! Claiming: the hard IRQ queues the first idle item (`busy` false -> true). An item stays
//! busy from then until its run has found the mechanism's queue empty; it then goes idle and
//! looks once more, so a record that found every item busy is taken by one of them.

use super::fifo_len;
use crate::{
    kwrap::{
        clock::Stamp,
        workqueue::{cancel_work_sync, enqueue_on, flush_work, system_percpu},
    },
    mech::Mech,
    shared::Shared,
};
use kernel::{
    prelude::*,
    sync::{
        atomic::{Atomic, Full, Relaxed},
        barrier::smp_mb,
        Arc,
    },
    workqueue::{self, Work, WorkItem},
};

/// Largest `work_items`.
pub(crate) const MAX_WORK_ITEMS: u32 = 16;
/// The pooled mechanisms, in pool order.
const POOLED: [Mech; 6] =
    [Mech::WqSystem, Mech::WqHighpri, Mech::WqUnbound, Mech::WqDedicated, Mech::WqOrdered, Mech::WqCpuIntensive];

fn pool_index(m: Mech) -> Option<usize> {
    POOLED.iter().position(|p| *p == m)
}

/// One work item of a pooled mechanism.
#[pin_data]
pub(crate) struct PoolItem {
    #[pin]
    work: Work<PoolItem>,
    shared: Arc<Shared>,
    mech: Mech,
    /// Queued, or running and not yet past its last look at the queue.
    busy: Atomic<bool>,
}

kernel::impl_has_work! {
    impl HasWork<Self> for PoolItem { self.work }
}

impl WorkItem for PoolItem {
    type Pointer = Arc<PoolItem>;
    fn run(this: Arc<PoolItem>) {
        // First statement: the bottom-half start of the run's first record.
        let mut woke = Some(Stamp::now());
        let (s, m) = (&this.shared, this.mech);
        loop {
            super::run(s, m, woke.take());
            // Full: pairs with the barrier in `schedule` (a record pushed before it saw this
            // item busy is seen by the look below).
            let _ = this.busy.xchg(false, Full);
            if fifo_len(s, m) == 0 || this.busy.cmpxchg(false, true, Full).is_err() {
                break;
            }
        }
    }
}

/// Every pooled mechanism's items (empty until `fill`, emptied by `release`).
pub(crate) struct Pools {
    items: [KVec<Arc<PoolItem>>; POOLED.len()],
}

impl Pools {
    pub(crate) const fn new() -> Self {
        Self { items: [const { KVec::new() }; POOLED.len()] }
    }
}

/// `work_items`, checked: the probe refuses a value outside 1..=16.
pub(crate) fn work_items() -> Result<u32> {
    let n = crate::params::work_items.value();
    if (1..=MAX_WORK_ITEMS).contains(&n) {
        Ok(n)
    } else {
        pr_err!("work_items={}: must be 1..={}\n", n, MAX_WORK_ITEMS);
        Err(EINVAL)
    }
}

/// Creates `n` items per pooled mechanism (process context, once the device runs).
pub(crate) fn fill(s: &Arc<Shared>, n: u32) -> Result {
    let mut all: [KVec<Arc<PoolItem>>; POOLED.len()] = [const { KVec::new() }; POOLED.len()];
    for (i, m) in POOLED.iter().enumerate() {
        for _ in 0..n {
            let it = Arc::pin_init(
                pin_init!(PoolItem {
                    work <- kernel::new_work!("irqstorm::pool"),
                    shared: s.clone(),
                    mech: *m,
                    busy: Atomic::new(false),
                }),
                GFP_KERNEL,
            )?;
            all[i].push(it, GFP_KERNEL)?;
        }
    }
    s.bh.pools.lock().items = all;
    Ok(())
}

/// The items of `m`, cloned out of the lock (to cancel or flush, which sleep).
fn items_of(s: &Shared, m: Mech) -> Result<KVec<Arc<PoolItem>>> {
    let Some(i) = pool_index(m) else { return Ok(KVec::new()) };
    let p = s.bh.pools.lock();
    let mut v = KVec::with_capacity(p.items[i].len(), GFP_ATOMIC)?;
    for it in p.items[i].iter() {
        v.push(it.clone(), GFP_ATOMIC)?;
    }
    Ok(v)
}

/// The CPU the per-CPU work items go to (module parameter `wq_cpu`; `None`: the queueing
/// CPU).
fn wq_cpu() -> Option<u32> {
    u32::try_from(crate::params::wq_cpu.value()).ok()
}

fn enqueue(s: &Shared, m: Mech, it: Arc<PoolItem>) -> bool {
    let cpu = wq_cpu();
    match m {
        Mech::WqSystem => enqueue_on::<Arc<PoolItem>, 0>(system_percpu(), cpu, it).is_ok(),
        Mech::WqHighpri => enqueue_on::<Arc<PoolItem>, 0>(workqueue::system_highpri(), cpu, it).is_ok(),
        Mech::WqUnbound => workqueue::system_unbound().enqueue::<Arc<PoolItem>, 0>(it).is_ok(),
        Mech::WqDedicated => enqueue_on::<Arc<PoolItem>, 0>(s.bh.wq.queue(), cpu, it).is_ok(),
        Mech::WqOrdered => s.bh.wq_ordered.queue().enqueue::<Arc<PoolItem>, 0>(it).is_ok(),
        _ => enqueue_on::<Arc<PoolItem>, 0>(s.bh.wq_intensive.queue(), cpu, it).is_ok(),
    }
}

/// Hard IRQ side: a record was queued for pooled mechanism `m`; queue an idle item for it.
pub(super) fn schedule(s: &Shared, m: Mech) {
    let Some(i) = pool_index(m) else { return };
    // Pairs with the items' `busy` release in `PoolItem::run`: either an item going idle sees
    // the record, or this sees it idle.
    smp_mb(Full);
    let p = s.bh.pools.lock();
    for it in p.items[i].iter() {
        if it.busy.cmpxchg(false, true, Full).is_ok() {
            if !enqueue(s, m, it.clone()) {
                // Pending already (cannot happen while idle): that run takes the record.
                s.cnt.wq_requeue.add(1, Relaxed);
            }
            return;
        }
    }
    // Every item busy: the first to go idle looks at the queue again.
    s.cnt.wq_all_busy.add(1, Relaxed);
}

/// `cancel_work_sync` on every item of `m`: queued ones dequeued, running ones waited for.
pub(crate) fn cancel(s: &Shared, m: Mech) -> Result {
    for it in items_of(s, m)? {
        if cancel_work_sync::<PoolItem, 0>(&it) {
            // Dequeued before it ran: it never reaches its idle store.
            let _ = it.busy.xchg(false, Full);
        }
    }
    Ok(())
}

/// `flush_work` on every item of `m`.
pub(crate) fn flush(s: &Shared, m: Mech) -> Result {
    for it in items_of(s, m)? {
        flush_work(&it.work);
    }
    Ok(())
}

/// Teardown (nothing queues any more): waits for every item, then drops them, which drops
/// their references to the device state.
pub(crate) fn release(s: &Shared) {
    for m in POOLED {
        if let Ok(v) = items_of(s, m) {
            for it in v {
                flush_work(&it.work);
            }
        }
    }
    let all = core::mem::replace(&mut s.bh.pools.lock().items, [const { KVec::new() }; POOLED.len()]);
    drop(all);
}

/// `(items, busy)` of `m` (debugfs `bh`).
pub(crate) fn occupancy(s: &Shared, m: Mech) -> (usize, usize) {
    let Some(i) = pool_index(m) else { return (0, 0) };
    let p = s.bh.pools.lock();
    (p.items[i].len(), p.items[i].iter().filter(|it| it.busy.load(Relaxed)).count())
}
