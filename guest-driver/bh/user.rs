// SPDX-License-Identifier: GPL-2.0

//! Mechanism 19 `user`: a user thread is the bottom half (issue 11 item 4). The hard IRQ
//! queues the record and wakes the readers of `/dev/irqstormN` (`userdev.rs`); a `read()`
//! takes records, the thread stamps its wake-up and acks each with `write()`, and the ack to
//! the device carries the user's stamps as the bottom half's start and end. A record a reader
//! took and never acked is handed back cancelled when it closes (`user_unacked`); records no
//! reader took are handed back cancelled at teardown.

use super::{account, account_cancelled, fifo::Item};
use crate::{
    kwrap::clock::Stamp,
    mech::Mech,
    protocol::ACK_F_FIRST,
    shared::Shared,
    uapi::Ack,
};
use kernel::{prelude::*, sync::atomic::Relaxed};

const M: usize = Mech::User as usize;

/// Hard IRQ side: a record was queued for `user`; wake one reader (and every poller).
pub(super) fn schedule(s: &Shared) {
    s.bh.user_wait.notify_one();
}

/// Takes up to `out.len()` records for a reader; waits for the first unless `nonblock`.
/// `idle_since`: when the reader began waiting in `poll()` (ns; 0 = it did not). Returns how
/// many, when it took them and how many still wait. Process context.
pub(crate) fn take(s: &Shared, out: &mut [Item], nonblock: bool, idle_since: u64) -> Result<(usize, Stamp, u32)> {
    let mut q = s.bh.fifos.lock();
    let mut waited = false;
    while q[M].is_empty() {
        if s.is_stopping() {
            return Err(ENODEV);
        }
        if nonblock {
            return Err(EAGAIN);
        }
        if s.bh.user_wait.wait_interruptible(&mut q) {
            return Err(ERESTARTSYS);
        }
        waited = true;
    }
    // First statement after the wait: the kernel side of the wake-up.
    let handed = Stamp::now();
    let mut n = 0;
    while n < out.len() {
        let Some(mut it) = q[M].pop() else { break };
        it.flags &= !ACK_F_FIRST;
        if n == 0 && woke_for(waited, idle_since, it.hard_ns, handed.ns) {
            // The wake-up was for this record: its ack's user stamp is the wake-up.
            it.flags |= ACK_F_FIRST;
        }
        out[n] = it;
        n += 1;
    }
    let waiting = q[M].len() as u32;
    Ok((n, handed, waiting))
}

/// Whether the reader was woken for a record of hard IRQ `hard_ns` taken at `handed_ns`: it
/// came while the reader waited, in this `read()` (`waited`) or in a `poll()` since
/// `idle_since` (not a record already queued when the reader came back for more).
fn woke_for(waited: bool, idle_since: u64, hard_ns: u64, handed_ns: u64) -> bool {
    hard_ns <= handed_ns && (waited || (idle_since != 0 && hard_ns >= idle_since))
}

/// Why a user ack of record `it` is refused (`None`: it is good). Both stamps on the
/// CLOCK_MONOTONIC timeline the driver's stamps use: woken after the hard IRQ, done after
/// woken, neither in the future.
pub(crate) fn ack_problem(it: &Item, a: &Ack, now_ns: u64, nr_cpus: u32) -> Option<&'static str> {
    if a.woke_ns < it.hard_ns {
        Some("woke before the hard IRQ")
    } else if a.done_ns < a.woke_ns {
        Some("done before woke")
    } else if a.done_ns > now_ns {
        Some("stamp in the future")
    } else if u32::from(a.cpu) >= nr_cpus {
        Some("no such CPU")
    } else {
        None
    }
}

/// Accounts record `it` acked by the user thread with `a`.
pub(crate) fn acked(s: &Shared, it: Item, a: &Ack) {
    let start = Stamp { ns: a.woke_ns, tsc: a.woke_tsc };
    let end = Stamp { ns: a.done_ns, tsc: a.done_tsc };
    account(s, it, Mech::User, (start, end, a.cpu), start.tsc);
    s.cnt.user_acks.add(1, Relaxed);
}

/// Hands back records a reader took and did not ack (its file closed). After teardown the
/// device is reset and its back end has accounted them already: only counted.
pub(crate) fn abandon(s: &Shared, items: &[Item]) {
    if s.is_stopping() {
        s.cnt.user_unacked.add(items.len() as u64, Relaxed);
        return;
    }
    for it in items {
        account_cancelled(s, *it, Mech::User);
        s.cnt.user_unacked.add(1, Relaxed);
    }
    s.flush_acks();
}

/// Teardown: wakes every reader (they see the device stopping) and hands back what no
/// reader took.
pub(crate) fn release(s: &Shared) {
    {
        let _q = s.bh.fifos.lock();
        s.bh.user_wait.notify_all();
    }
    super::cancel::drain_cancelled(s, Mech::User);
}

#[kernel::prelude::kunit_tests(irqstorm_user)]
mod tests {
    use super::*;
    use crate::stats::Origin;

    fn rec(hard_ns: u64) -> Item {
        Item::stamped(Stamp { ns: hard_ns, tsc: 0 }, 0, 0, Origin::Device)
    }

    fn ack(woke_ns: u64, done_ns: u64, cpu: u16) -> Ack {
        Ack { seq: 1, woke_ns, woke_tsc: 0, done_ns, done_tsc: 0, cpu }
    }

    #[test]
    fn only_a_record_that_came_while_the_reader_waited_is_a_wake_up() {
        // Waited in read(): the record came during the wait.
        assert!(woke_for(true, 0, 100, 150));
        // Waited in poll() from 90: came at 100, after it began.
        assert!(woke_for(false, 90, 100, 150));
        // Queued at 80, before the poll began at 90: a backlog, not a wake-up.
        assert!(!woke_for(false, 90, 80, 150));
        // Neither waited.
        assert!(!woke_for(false, 0, 100, 150));
        // Queued after the read took its stamp (cannot be the one it woke for).
        assert!(!woke_for(true, 0, 160, 150));
    }

    #[test]
    fn a_good_ack_is_taken() {
        assert_eq!(ack_problem(&rec(100), &ack(150, 160, 1), 200, 2), None);
        assert_eq!(ack_problem(&rec(100), &ack(100, 100, 0), 100, 1), None);
    }

    #[test]
    fn stamps_out_of_order_or_in_the_future_are_refused() {
        assert_eq!(ack_problem(&rec(100), &ack(99, 160, 0), 200, 2), Some("woke before the hard IRQ"));
        assert_eq!(ack_problem(&rec(100), &ack(150, 149, 0), 200, 2), Some("done before woke"));
        assert_eq!(ack_problem(&rec(100), &ack(150, 201, 0), 200, 2), Some("stamp in the future"));
        assert_eq!(ack_problem(&rec(100), &ack(150, 160, 2), 200, 2), Some("no such CPU"));
    }
}
