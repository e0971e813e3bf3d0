// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The ack queue: matching ack records to outstanding records, raise->ack
//! latency, the guest's bottom-half times, and the raw raise->hardirq
//! cross-clock differences (§6.4).

use log::debug;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use crate::protocol::{
    AckRecord, ACK_F_CANCELLED, ACK_F_FIRST, ACK_F_PAST_BUDGET, ACK_SIZE, MAX_ACKS_PER_BUFFER,
    MAX_ACK_CHAIN_DESCS, NUM_MECHANISMS,
};

use super::chain::{
    add_used, collect_chain, driver_wants_interrupt, next_chain, read_descs, total_len, ChainError,
};
use super::stats::record;
use super::{now_ns, Device, QueueOutcome};

pub(super) fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl Device {
    /// Applies one ack record the device read at `ack_ns`.
    pub fn apply_ack(&mut self, a: &AckRecord, ack_ns: u64) -> bool {
        if usize::from(a.mechanism) >= NUM_MECHANISMS {
            self.c.bad_acks += 1;
            return false;
        }
        let Some(front) = self.outstanding.front().map(|o| o.seq) else {
            self.c.bad_acks += 1;
            return false;
        };
        let Some(idx) = a
            .seq
            .checked_sub(front)
            .and_then(|d| usize::try_from(d).ok())
        else {
            self.c.bad_acks += 1;
            return false;
        };
        let Some(o) = self.outstanding.get_mut(idx) else {
            self.c.bad_acks += 1;
            return false;
        };
        if o.seq != a.seq || o.acked || o.source != a.source {
            self.c.bad_acks += 1;
            return false;
        }
        o.acked = true;
        let o = *o;
        while self.outstanding.front().is_some_and(|o| o.acked) {
            self.outstanding.pop_front();
        }
        if a.flags & ACK_F_CANCELLED != 0 {
            // Returned without a bottom half: acked and counted, no figure.
            if let Some(s) = self.sources.get_mut(usize::from(o.source)) {
                s.c.acked += 1;
                s.c.acked_raises += u64::from(o.count);
            }
            let m = &mut self.mechs[usize::from(a.mechanism)];
            m.acked += 1;
            m.acked_raises += u64::from(o.count);
            m.cancelled += 1;
            return true;
        }
        let now_tsc = crate::tsc::now();
        let ack_ns = self.ack_time(a, o.raise_ns, o.raise_tsc, ack_ns, now_tsc);
        let lat = ack_ns.saturating_sub(o.raise_ns);
        if let Some(s) = self.sources.get_mut(usize::from(o.source)) {
            s.c.acked += 1;
            s.c.acked_raises += u64::from(o.count);
            record(&mut s.lat, lat);
        }
        let m = &mut self.mechs[usize::from(a.mechanism)];
        m.acked += 1;
        m.acked_raises += u64::from(o.count);
        m.cpus.record(a.hard_cpu, a.bh_cpu);
        record(&mut m.lat, lat);
        if a.bh_start_ns >= a.hardirq_ns && a.hardirq_ns != 0 {
            record(&mut m.bh_delay, a.bh_start_ns - a.hardirq_ns);
            if a.flags & ACK_F_FIRST != 0 {
                record(&mut m.first_bh_delay, a.bh_start_ns - a.hardirq_ns);
            }
        }
        if a.flags & ACK_F_PAST_BUDGET != 0 {
            m.past_budget += 1;
        }
        if a.armed_ns != 0 && a.flags & ACK_F_FIRST != 0 && a.bh_start_ns != 0 {
            m.lateness.record(a.delay_us, a.armed_ns, a.bh_start_ns);
        }
        if a.bh_end_ns >= a.bh_start_ns && a.bh_start_ns != 0 {
            record(&mut m.bh_run, a.bh_end_ns - a.bh_start_ns);
        }
        if a.hardirq_ns != 0 {
            let base = *self
                .clock_diff_base
                .get_or_insert_with(|| clamp_i64(i128::from(a.hardirq_ns) - i128::from(ack_ns)));
            let v = i128::from(a.hardirq_ns) - i128::from(o.raise_ns) - i128::from(base);
            let m = &mut self.mechs[usize::from(a.mechanism)];
            match u64::try_from(v) {
                Ok(v) => record(&mut m.raw_raise_to_hardirq, v),
                Err(_) => m.raw_below_base += 1,
            }
        }
        if a.flags & ACK_F_PAST_BUDGET != 0 {
            // Its hard-IRQ stamp is an earlier interrupt's: not a one-way figure.
            self.mechs[usize::from(a.mechanism)].tsc_one_way.past_budget += 1;
        } else if a.hardirq_tsc != 0 && o.raise_tsc != 0 {
            let m = &mut self.mechs[usize::from(a.mechanism)];
            self.tb
                .one_way(&mut m.tsc_one_way, o.raise_tsc, a.hardirq_tsc, now_tsc);
        }
        true
    }

    /// Processes every available ackq buffer.
    pub fn process_ackq(&mut self, q: &mut Queue, mem: &GuestMemoryMmap) -> QueueOutcome {
        let mut out = QueueOutcome::default();
        let mut buf = [0u8; ACK_SIZE * MAX_ACKS_PER_BUFFER];
        loop {
            let chain = next_chain(q, mem, &mut self.c);
            let Some(chain) = chain else { break };
            let ack_ns = now_ns();
            let head = chain.head_index();
            out.used += 1;
            let descs = collect_chain(chain, mem, MAX_ACK_CHAIN_DESCS).and_then(|d| {
                let len = total_len(&d);
                if d.iter().any(|x| x.write_only) {
                    Err(ChainError::Direction)
                } else if len == 0
                    || !len.is_multiple_of(ACK_SIZE as u64)
                    || len > (ACK_SIZE * MAX_ACKS_PER_BUFFER) as u64
                {
                    Err(ChainError::Length)
                } else {
                    Ok((d, len as usize))
                }
            });
            match descs {
                Ok((d, len)) if read_descs(mem, &d, &mut buf[..len]) => {
                    for rec in buf[..len].chunks_exact(ACK_SIZE) {
                        if let Ok(a) = AckRecord::decode(rec) {
                            self.apply_ack(&a, ack_ns);
                        }
                    }
                }
                other => {
                    debug!("ackq: malformed buffer {head}: {:?}", other.err());
                    self.c.malformed_ack += 1;
                }
            }
            add_used(q, mem, head, 0, &mut self.c);
        }
        if out.used > 0 {
            out.signal = driver_wants_interrupt(q, mem).unwrap_or(true);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    /// A device whose storm on source 0 wrote two records into two buffers.
    fn two_storm_records() -> (Device, [EventRecord; 2]) {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        for i in 0..2u16 {
            add_chain(&vq, i, &[(0x1000 + u64::from(i) * 0x100, 48, true)]);
        }
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(0);
        d.configure(0, &storm(1000, 1), false);
        d.start(0, 0, T0).unwrap();
        d.service(T0 + 2 * MS, Some((&mut q, &m)));
        (d, [read_event(&m, 0x1000), read_event(&m, 0x1100)])
    }

    /// Raw raise->hardirq difference + base + (host - guest offset) gives
    /// back each event's one-way latency, with no offset known to the device.
    #[test]
    fn raw_raise_to_hardirq_recovers_one_way_latency() {
        const THETA: u64 = 5_000_000_000; // guest clock = host clock + THETA
        let (mut d, recs) = two_storm_records();
        let one_way = [30_000u64, 70_000];
        for (r, l) in recs.iter().zip(one_way) {
            let hardirq_host = r.raise_ns + l;
            let ack_ns = hardirq_host + 50_000;
            let a = AckRecord {
                seq: r.seq,
                source: r.source,
                mechanism: 4,
                count: r.count,
                hardirq_ns: hardirq_host + THETA,
                bh_start_ns: hardirq_host + THETA + 10,
                bh_end_ns: hardirq_host + THETA + 20,
                post_ns: hardirq_host + THETA + 30,
                ..Default::default()
            };
            assert!(d.apply_ack(&a, ack_ns));
        }
        let st = d.stats(true);
        let mech = st.mechanisms.iter().find(|x| x.id == 4).unwrap();
        let raw = mech.raw_raise_to_hardirq.as_ref().unwrap();
        // Base = hardirq_guest - ack_host of the first ack.
        let base = raw.base_ns.unwrap();
        assert_eq!(base, THETA as i64 - 50_000);
        assert_eq!(raw.below_base, 0);
        let h = &raw.diff_minus_base_ns;
        assert_eq!(h.count, 2);
        // value + base - THETA = one-way latency, within HDR's 3 digits.
        let back = |v: u64| v as i64 + base - THETA as i64;
        let close = |got: i64, want: u64| (got - want as i64).unsigned_abs() <= want / 500;
        let sum = h.summary.unwrap();
        assert!(close(back(sum.min), one_way[0]), "{h:?}");
        assert!(close(back(sum.max), one_way[1]), "{h:?}");
        let buckets: u64 = h.buckets.as_ref().unwrap().iter().map(|b| b.1).sum();
        assert_eq!(buckets, 2);
    }

    fn ack_bytes(acks: &[AckRecord]) -> Vec<u8> {
        acks.iter().flat_map(|a| a.encode()).collect()
    }

    #[test]
    fn acks_parsed_matched_and_validated() {
        let (mut d, [r1, r2]) = two_storm_records();
        let ack = |r: &EventRecord, mech: u8| AckRecord {
            seq: r.seq,
            source: r.source,
            mechanism: mech,
            count: r.count,
            hardirq_ns: 100,
            bh_start_ns: 150,
            bh_end_ns: 190,
            post_ns: 200,
            ..Default::default()
        };
        // Ack queue: one buffer with [good r1 (mech 4), dup r1, wrong source r2, bad mech],
        // one good r2 split over two descriptors, then malformed buffers.
        let aq_mem = mem();
        let avq = MockSplitQueue::new(&aq_mem, 16);
        let mut wrong = ack(&r2, 1);
        wrong.source = 3;
        let b1 = ack_bytes(&[
            ack(&r1, 4),
            ack(&r1, 4),
            wrong,
            ack(&r2, NUM_MECHANISMS as u8),
        ]);
        aq_mem.write_slice(&b1, GuestAddress(0x1000)).unwrap();
        add_chain(&avq, 0, &[(0x1000, b1.len() as u32, false)]);
        let b2 = ack_bytes(&[ack(&r2, 1)]);
        aq_mem.write_slice(&b2, GuestAddress(0x2000)).unwrap();
        let size = ACK_SIZE as u32;
        add_chain(&avq, 1, &[(0x2000, 16, false), (0x2010, size - 16, false)]);
        add_chain(&avq, 3, &[(0x2000, size - 1, false)]); // not a multiple of the record
        add_chain(&avq, 4, &[(0x2000, size, true)]); // writable
        add_chain(&avq, 5, &[(0x2000, size * 65, false)]); // too many records
        add_chain(&avq, 6, &[(0x2000, 0, false)]); // empty
        let mut aq: Queue = avq.create_queue().unwrap();
        let out = d.process_ackq(&mut aq, &aq_mem);
        assert_eq!(out.used, 6);
        assert!((0..6).all(|i| used(&avq, i).1 == 0));
        let c = d.counters();
        assert_eq!(c.bad_acks, 3);
        assert_eq!(c.malformed_ack, 4);
        let s0 = d.source_counters(0).unwrap();
        assert_eq!((s0.acked, s0.acked_raises), (2, 2));
        let st = d.stats(false);
        let mechs = &st.mechanisms;
        assert_eq!(mechs.len(), 2);
        assert_eq!(mechs[0].name, "threaded");
        assert_eq!(mechs[1].name, "bh_wq");
        assert_eq!(mechs[1].acked, 1);
        assert_eq!(mechs[1].latency_ns.count, 1);
        assert_eq!(mechs[1].guest_bh_delay_ns.summary.unwrap().max, 50);
        assert_eq!(st.sources[0].latency_ns.count, 2);
        assert!(st.totals.conserved);
    }

    /// Per-interrupt (FIRST) and per-record bottom-half delays, and the
    /// past-budget count, from acks with known stamps and flags.
    /// Posts `acks` in one ackq buffer and has the device take it.
    fn post_acks(d: &mut Device, acks: &[AckRecord]) {
        let aq_mem = mem();
        let avq = MockSplitQueue::new(&aq_mem, 16);
        let b = ack_bytes(acks);
        aq_mem.write_slice(&b, GuestAddress(0x1000)).unwrap();
        add_chain(&avq, 0, &[(0x1000, b.len() as u32, false)]);
        let mut aq: Queue = avq.create_queue().unwrap();
        assert_eq!(d.process_ackq(&mut aq, &aq_mem).used, 1);
    }

    #[test]
    fn cancelled_acks_are_acked_and_counted_without_figures() {
        let m = mem();
        let (mut d, recs) = storm_records(&m, 3);
        let acks: Vec<AckRecord> = recs
            .iter()
            .zip([0, ACK_F_CANCELLED, ACK_F_CANCELLED])
            .map(|(r, flags)| AckRecord {
                seq: r.seq,
                source: r.source,
                mechanism: 2,
                flags,
                count: r.count,
                hardirq_ns: 1_000,
                bh_start_ns: if flags == 0 { 1_500 } else { 0 },
                bh_end_ns: if flags == 0 { 1_600 } else { 0 },
                ..Default::default()
            })
            .collect();
        post_acks(&mut d, &acks);
        let st = d.stats(false);
        let mech = st.mechanisms.iter().find(|x| x.id == 2).unwrap();
        assert_eq!((mech.acked, mech.cancelled), (3, 2));
        assert_eq!(
            (mech.latency_ns.count, mech.guest_bh_delay_ns.count),
            (1, 1)
        );
        assert_eq!(st.totals.acked, 3);
        assert_eq!(d.counters().bad_acks, 0);
    }

    #[test]
    fn first_and_past_budget_acks_counted_apart() {
        let m = mem();
        let (mut d, recs) = storm_records(&m, 4);
        // One interrupt at 1000 ns: its bottom half woke at 1300 (first record), then ran
        // records 2 and 3 at 1500 and 1900; record 4 came past the budget (FIRST of a new
        // run). Delays below 2048 ns are exact in a 3-digit HDR histogram.
        let plan = [
            (1_300, ACK_F_FIRST),
            (1_500, 0),
            (1_900, 0),
            (2_000, ACK_F_FIRST | ACK_F_PAST_BUDGET),
        ];
        let acks: Vec<AckRecord> = recs
            .iter()
            .zip(plan)
            .map(|(r, (start, flags))| AckRecord {
                seq: r.seq,
                source: r.source,
                mechanism: 1,
                flags,
                count: r.count,
                hardirq_ns: 1_000,
                bh_start_ns: start,
                bh_end_ns: start + 100,
                ..Default::default()
            })
            .collect();
        post_acks(&mut d, &acks);
        let st = d.stats(true);
        let mech = st.mechanisms.iter().find(|x| x.id == 1).unwrap();
        assert_eq!(mech.acked, 4);
        assert_eq!(mech.past_budget, 1);
        let per_record = mech.guest_bh_delay_ns.summary.unwrap();
        assert_eq!(mech.guest_bh_delay_ns.count, 4);
        assert_eq!((per_record.min, per_record.max), (300, 1_000));
        let first = &mech.guest_irq_to_first_bh_ns;
        assert_eq!(first.count, 2);
        let values: Vec<u64> = first
            .buckets
            .as_ref()
            .unwrap()
            .iter()
            .map(|b| b.0)
            .collect();
        assert_eq!(values, vec![300, 1_000]);
        // No flags at all (an older driver): no per-interrupt figure, nothing past budget.
        let (mut d, [r1, _]) = two_storm_records();
        let plain = AckRecord {
            seq: r1.seq,
            source: r1.source,
            mechanism: 1,
            count: r1.count,
            hardirq_ns: 1_000,
            bh_start_ns: 3_000,
            ..Default::default()
        };
        assert!(d.apply_ack(&plain, T0 + 5 * MS));
        let st = d.stats(false);
        let mech = st.mechanisms.iter().find(|x| x.id == 1).unwrap();
        assert_eq!(mech.guest_irq_to_first_bh_ns.count, 0);
        assert_eq!(mech.past_budget, 0);
    }

    #[test]
    fn outstanding_table_evicts_oldest() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        for i in 0..3u16 {
            add_chain(&vq, i, &[(0x1000 + u64::from(i) * 0x100, 48, true)]);
        }
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = Device::new(
            Limits {
                max_outstanding: 2,
                ..LIM
            },
            false,
        );
        d.configure(0, &storm(1000, 1), false);
        d.start(0, 0, T0).unwrap();
        d.service(T0 + 3 * MS, Some((&mut q, &m)));
        assert_eq!(d.counters().ack_evicted, 1);
        let a = |seq| AckRecord {
            seq,
            source: 0,
            count: 1,
            ..Default::default()
        };
        assert!(!d.apply_ack(&a(1), T0 + 4 * MS));
        assert!(d.apply_ack(&a(3), T0 + 4 * MS));
        assert!(d.apply_ack(&a(2), T0 + 4 * MS));
        assert!(!d.apply_ack(&a(2), T0 + 4 * MS));
        assert_eq!(d.counters().bad_acks, 2);
    }
}
