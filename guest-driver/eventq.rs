// SPDX-License-Identifier: GPL-2.0

//! eventq: the device's event records (§6.3). Set-up, the budgeted drain in hard IRQ context
//! and the checks every record must pass (§8) before it is dispatched.

use crate::{
    bh::fifo::Item,
    kwrap::clock::tsc_ordered,
    protocol::*,
    shared::Shared,
    virtio_pci::Transport,
    virtqueue::{Pop, Virtqueue, DESC_F_WRITE},
};
use kernel::{
    device::{Bound, Device},
    dma::Coherent,
    io::io_read,
    prelude::*,
    sync::atomic::Relaxed,
};

/// Queue size we ask for.
const EVENTQ_SIZE: u16 = 256;

/// Max event records handled per hard IRQ before the rest is left to the IRQ thread.
pub(crate) const IRQ_BUDGET: usize = 64;

/// eventq state (under `Shared::evq`).
pub(crate) struct EventQ {
    pub(crate) vq: Virtqueue,
    bufs: Coherent<[u64]>,
    last_seq: [u64; MAX_SOURCES],
}

impl EventQ {
    /// Allocates and programs the eventq (not yet enabled): descriptor i <-> 48-byte buffer i,
    /// device-writable.
    pub(crate) fn new(dev: &Device<Bound>, t: &Transport, event_idx: bool) -> Result<Self> {
        let mut evq = Virtqueue::new(dev, t, VQ_EVENT, EVENTQ_SIZE, event_idx)?;
        let n = evq.size as usize;
        let ebuf = Coherent::<u64>::zeroed_slice(dev, n * EVENT_WORDS, GFP_KERNEL)?;
        let base = ebuf.dma_address();
        for i in 0..n {
            evq.set_desc(i as u16, base + (i * EVENT_SIZE) as u64, EVENT_SIZE as u32, DESC_F_WRITE, 0)?;
        }
        Ok(Self { vq: evq, bufs: ebuf, last_seq: [0; MAX_SOURCES] })
    }
}

/// Why a well-formed record is not dispatched (each reason has its counter).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reject {
    BadSource,
    BadCount,
    SeqGap,
}

/// Checks `r` (§8): a known source, a non-zero count, and `source_seq` continuing the last
/// record of its source. Advances `last_seq` unless the source or count is bad (a gap
/// resynchronises on the new record).
pub(crate) fn check_record(r: &EventRecord, num_sources: u16, last_seq: &mut [u64; MAX_SOURCES]) -> Result<(), Reject> {
    if r.source >= num_sources || r.source as usize >= MAX_SOURCES {
        return Err(Reject::BadSource);
    }
    if r.count == 0 {
        return Err(Reject::BadCount);
    }
    let s = r.source as usize;
    let first = r.source_seq.wrapping_sub(u64::from(r.count)).wrapping_add(1);
    let expected = last_seq[s].wrapping_add(1);
    last_seq[s] = r.source_seq;
    if first != expected {
        return Err(Reject::SeqGap);
    }
    Ok(())
}

impl Shared {
    /// Drains up to `IRQ_BUDGET` eventq records into `items`, whose slots the caller filled
    /// with the hard IRQ's stamp, CPU and flags ([`Item::stamped`]). Returns how many items
    /// were filled and whether the drain is left unfinished.
    pub(crate) fn drain_eventq(&self, items: &mut [Item; IRQ_BUDGET]) -> (usize, bool) {
        let mut n = 0;
        let mut more = false;
        // Buffers go back to the device only after the drain: a duplicated used id that
        // follows its original is then still "not outstanding" and is caught.
        let mut repost = [0u16; 2 * IRQ_BUDGET];
        let mut nrep = 0;
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
            match check_record(&r, self.info.num_sources, &mut e.last_seq) {
                Err(Reject::BadSource) => self.cnt.bad_source.add(1, Relaxed),
                Err(Reject::BadCount) => self.cnt.bad_count.add(1, Relaxed),
                Err(Reject::SeqGap) => self.cnt.seq_gap.add(1, Relaxed),
                Ok(()) => {
                    if r.flags & EV_LATCHED != 0 {
                        self.cnt.latched.add(1, Relaxed);
                    }
                    if r.flags & EV_FINAL != 0 {
                        self.cnt.finals.add(1, Relaxed);
                    }
                    // The caller pre-filled the slots with the hard IRQ's stamp, CPU and flags.
                    // The TSC stamp is then taken per record, when this drain read it (after
                    // the read: lfence): never before the device wrote it, so one-way raise ->
                    // "found by the hard IRQ" is >= 0 up to the time base's bound, also for
                    // records written while this handler was already running. The ns stamp
                    // stays the interrupt's entry (hardirq -> bh per record, §6.4). A TSC-less
                    // guest keeps 0 (`tsc_ordered` returns 0).
                    let found = if items[n].hard_tsc == 0 { 0 } else { tsc_ordered() };
                    items[n] = Item { seq: r.seq, count: r.count, source: r.source, found_tsc: found, ..items[n] };
                    n += 1;
                }
            }
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
        drop(g);
        (n, more)
    }
}

#[kernel::prelude::kunit_tests(irqstorm_eventq)]
mod tests {
    use super::*;

    fn rec(source: u16, source_seq: u64, count: u32) -> EventRecord {
        EventRecord { source, source_seq, count, ..Default::default() }
    }

    #[test]
    fn continuous_records_pass() {
        let mut last = [0u64; MAX_SOURCES];
        assert_eq!(check_record(&rec(0, 1, 1), 4, &mut last), Ok(()));
        assert_eq!(check_record(&rec(0, 4, 3), 4, &mut last), Ok(()));
        assert_eq!(check_record(&rec(3, 2, 2), 4, &mut last), Ok(()));
        assert_eq!(last[0], 4);
        assert_eq!(last[3], 2);
    }

    #[test]
    fn bad_source_and_count_leave_the_sequence_alone() {
        let mut last = [0u64; MAX_SOURCES];
        assert_eq!(check_record(&rec(4, 1, 1), 4, &mut last), Err(Reject::BadSource));
        assert_eq!(check_record(&rec(0, 1, 0), 4, &mut last), Err(Reject::BadCount));
        assert_eq!(last[0], 0);
        assert_eq!(check_record(&rec(0, 1, 1), 4, &mut last), Ok(()));
    }

    #[test]
    fn a_gap_is_counted_and_resynchronises() {
        let mut last = [0u64; MAX_SOURCES];
        assert_eq!(check_record(&rec(1, 5, 1), 4, &mut last), Err(Reject::SeqGap));
        assert_eq!(last[1], 5);
        assert_eq!(check_record(&rec(1, 6, 1), 4, &mut last), Ok(()));
        // A duplicate is a gap too.
        assert_eq!(check_record(&rec(1, 6, 1), 4, &mut last), Err(Reject::SeqGap));
    }
}
