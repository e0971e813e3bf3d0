// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fault injection (§7): malformed used entries, bad records, sequence gaps.

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use crate::protocol::{EventRecord, EVENT_SIZE, IRQSTORM_F_FAULT_INJECT};

use super::chain::{add_used, write_descs, Desc};
use super::{Device, FaultKind};

impl Device {
    /// Arms a fault injection (host control API).
    pub fn inject(&mut self, kind: FaultKind, count: u32) -> Result<(), &'static str> {
        if !self.fault_injection {
            return Err("fault injection is off (start the back end with --fault-injection)");
        }
        if !self.has(IRQSTORM_F_FAULT_INJECT) {
            return Err("IRQSTORM_F_FAULT_INJECT was not negotiated by the driver");
        }
        if count == 0 || count > 1_000_000 {
            return Err("count must be 1..=1000000");
        }
        self.fault = Some((kind, count));
        Ok(())
    }

    /// A fault that needs no real record is armed (and may be injected).
    pub(super) fn standalone_fault_armed(&self) -> bool {
        self.has(IRQSTORM_F_FAULT_INJECT)
            && matches!(
                self.fault,
                Some((
                    FaultKind::ShortLen
                        | FaultKind::LongLen
                        | FaultKind::BadSource
                        | FaultKind::ZeroCount,
                    _
                ))
            )
    }

    pub(super) fn inject_one(
        &mut self,
        q: &mut Queue,
        mem: &GuestMemoryMmap,
        head: u16,
        descs: &[Desc],
        now: u64,
    ) -> Option<usize> {
        let (kind, left) = self.fault?;
        let bogus = |source: u16, count: u32| EventRecord {
            seq: 0,
            source_seq: 0,
            due_ns: now,
            raise_ns: now,
            write_ns: now,
            count,
            source,
            flags: 0,
        };
        let buf_len: u32 = descs.iter().map(|d| d.len).fold(0u32, u32::saturating_add);
        let used = match kind {
            FaultKind::ShortLen => {
                write_descs(mem, descs, &bogus(0, 1).encode());
                add_used(q, mem, head, 16, &mut self.c);
                1
            }
            FaultKind::LongLen => {
                write_descs(mem, descs, &bogus(0, 1).encode());
                add_used(q, mem, head, buf_len.saturating_add(64), &mut self.c);
                1
            }
            FaultKind::BadSource => {
                write_descs(mem, descs, &bogus(self.limits.num_sources, 1).encode());
                add_used(q, mem, head, EVENT_SIZE as u32, &mut self.c);
                1
            }
            FaultKind::ZeroCount => {
                write_descs(mem, descs, &bogus(0, 0).encode());
                add_used(q, mem, head, EVENT_SIZE as u32, &mut self.c);
                1
            }
            FaultKind::DupUsedId => {
                // Needs a real record to carry; wait for one.
                let src = self.pending_order.pop_front()?;
                if self.write_record(q, mem, head, descs, src, now).is_some() {
                    self.note_written(src, now);
                }
                add_used(q, mem, head, EVENT_SIZE as u32, &mut self.c);
                1
            }
            FaultKind::SeqGap => {
                let src = *self.pending_order.front()?;
                let s = &mut self.sources[usize::from(src)];
                // Skip one number: the latched raises keep their count, their numbers move up.
                s.source_seq += 1;
                s.latch.last_seq += 1;
                self.pending_order.pop_front();
                if self.write_record(q, mem, head, descs, src, now).is_some() {
                    self.note_written(src, now);
                }
                1
            }
        };
        self.c.faults_injected += 1;
        self.fault = if left > 1 {
            Some((kind, left - 1))
        } else {
            None
        };
        Some(used)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn fault_injection_kinds() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        for i in 0..8u16 {
            add_chain(&vq, i, &[(0x1000 + u64::from(i) * 0x100, 48, true)]);
        }
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(0);
        assert!(d.inject(FaultKind::ShortLen, 1).is_err()); // not negotiated
        let mut d = device(1 << IRQSTORM_F_FAULT_INJECT);
        let mut off = Device::new(LIM, false);
        off.set_negotiated(1 << IRQSTORM_F_FAULT_INJECT);
        assert!(off.inject(FaultKind::ShortLen, 1).is_err()); // not enabled on the host
        d.inject(FaultKind::ShortLen, 1).unwrap();
        d.flush(T0, Some((&mut q, &m)));
        assert_eq!(used(&vq, 0), (0, 16));
        d.inject(FaultKind::LongLen, 1).unwrap();
        d.flush(T0, Some((&mut q, &m)));
        assert_eq!(used(&vq, 1), (1, 48 + 64));
        d.inject(FaultKind::BadSource, 1).unwrap();
        d.flush(T0, Some((&mut q, &m)));
        assert_eq!(read_event(&m, 0x1200).source, 8);
        d.inject(FaultKind::ZeroCount, 1).unwrap();
        d.flush(T0, Some((&mut q, &m)));
        assert_eq!(read_event(&m, 0x1300).count, 0);
        // Kinds that ride on a real record wait for one.
        d.inject(FaultKind::SeqGap, 1).unwrap();
        d.flush(T0, Some((&mut q, &m)));
        assert_eq!(used_idx(&vq), 4);
        d.configure(0, &storm(1000, 1), false);
        d.start(0, 0, T0).unwrap();
        d.service(T0 + MS, Some((&mut q, &m)));
        assert_eq!(read_event(&m, 0x1400).source_seq, 2);
        d.inject(FaultKind::DupUsedId, 1).unwrap();
        d.service(T0 + 2 * MS, Some((&mut q, &m)));
        assert_eq!(used(&vq, 5), (5, 48));
        assert_eq!(used(&vq, 6), (5, 48));
        assert_eq!(d.counters().faults_injected, 6);
        assert!(d.conservation_holds());
    }
}
