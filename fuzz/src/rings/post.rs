// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The chains the harness builds: well-formed and malformed controlq,
//! eventq and ackq buffers, each posted with what the device must do with it.

use irqstorm_backend::protocol::{
    AckRecord, CtrlReq, Opcode, ACK_F_FIRST, ACK_SIZE, EVENT_SIZE, MAX_ACKS_PER_BUFFER, SOURCE_ALL,
};
use vm_memory::{Bytes, GuestAddress};

use super::{
    AckSel, Expect, Harness, ACKQ, ACK_BUF, ACK_SLOT, CTRLQ, CTRL_BODY, CTRL_BUF, EVENTQ,
    EVENT_BUF, NOWHERE,
};

impl Harness {
    pub(super) fn post_ctrl(&mut self, opcode: u8, source: u8, flags: u8, shape: u8, body: &[u8]) {
        let r = &mut self.rings[CTRLQ];
        let slot = CTRL_BUF + u64::from(r.next_head()) * 0x100;
        let source = if source == 0xff {
            SOURCE_ALL
        } else {
            u16::from(source % 10)
        };
        let mut raw = CtrlReq::new(u16::from(opcode % 8), source, u32::from(flags & 3)).raw;
        let n = body.len().min(CTRL_BODY);
        raw[8..8 + n].copy_from_slice(&body[..n]);
        let _ = self.mem.write_slice(&raw, GuestAddress(slot));
        let (rq, rp) = (slot, slot + 0x80);
        let chain: &[(u64, u32, bool)] = match shape % 3 {
            0 => &[(rq, 64, false), (rp, 64, true)],
            1 => &[(rq, 32, false), (rq + 32, 32, false), (rp, 64, true)],
            _ => &[(rq, 64, false), (rp, 32, true), (rp + 32, 32, true)],
        };
        r.post(&self.mem, chain, None, Expect::Good);
    }

    pub(super) fn post_bad_ctrl(&mut self, kind: u8) {
        let r = &mut self.rings[CTRLQ];
        let slot = CTRL_BUF + u64::from(r.next_head()) * 0x100;
        let req = CtrlReq::new(Opcode::GetInfo as u16, 0, 0);
        let _ = self.mem.write_slice(&req.raw, GuestAddress(slot));
        let (rq, rp) = (slot, slot + 0x80);
        let size = r.effective_size();
        let (chain, link, expect): (&[(u64, u32, bool)], _, _) = match kind % 7 {
            0 => (
                &[(rq, 32, false), (rp, 64, true)],
                None,
                Expect::MalformedAnswered,
            ),
            1 => (&[(rq, 64, false), (rp, 64, false)], None, Expect::Malformed),
            2 => (&[(rq, 64, false), (rp, 32, true)], None, Expect::Malformed),
            3 => (
                &[
                    (rq, 16, false),
                    (rq + 16, 16, false),
                    (rq + 32, 16, false),
                    (rq + 48, 16, false),
                    (rp, 64, true),
                ],
                None,
                Expect::Malformed,
            ),
            4 => (
                &[(rq, 64, false), (NOWHERE, 64, true)],
                None,
                Expect::Malformed,
            ),
            5 => (&[(rp, 64, true), (rq, 64, false)], None, Expect::Malformed),
            // The last descriptor links past the table.
            _ => (&[(rq, 64, false)], Some(size), Expect::Malformed),
        };
        r.post(&self.mem, chain, link, expect);
    }

    pub(super) fn post_event(&mut self, shape: u8) {
        let r = &mut self.rings[EVENTQ];
        let a = EVENT_BUF + u64::from(r.next_head()) * 0x40;
        let chain: &[(u64, u32, bool)] = match shape % 3 {
            0 => &[(a, EVENT_SIZE as u32, true)],
            1 => &[(a, 20, true), (a + 0x20, 28, true)],
            _ => &[(a, 0x40, true)],
        };
        r.post(&self.mem, chain, None, Expect::Good);
    }

    pub(super) fn post_bad_event(&mut self, kind: u8) {
        let r = &mut self.rings[EVENTQ];
        let a = EVENT_BUF + u64::from(r.next_head()) * 0x40;
        let chain: &[(u64, u32, bool)] = match kind % 5 {
            0 => &[(a, 48, false)],
            1 => &[(a, 47, true)],
            2 => &[(NOWHERE, 48, true)],
            3 => &[
                (a, 10, true),
                (a + 10, 10, true),
                (a + 20, 10, true),
                (a + 30, 10, true),
                (a + 40, 10, true),
            ],
            // Wraps around the address space.
            _ => &[(u64::MAX - 15, 48, true)],
        };
        r.post(&self.mem, chain, None, Expect::Malformed);
    }

    pub(super) fn post_acks(&mut self, shape: u8, recs: &[AckSel]) {
        let bytes: Vec<u8> = recs
            .iter()
            .flat_map(|s| {
                let a = match self.seen.get(usize::from(s.pick) % self.seen.len().max(1)) {
                    Some(r) if s.pick < 0x80 => AckRecord {
                        seq: r.seq,
                        source: r.source,
                        mechanism: s.mech % 16,
                        flags: s.pick & ACK_F_FIRST,
                        count: r.count,
                        hardirq_ns: r.raise_ns.wrapping_add(u64::from(s.delta)),
                        bh_start_ns: r.raise_ns.wrapping_add(u64::from(s.delta) * 2),
                        bh_end_ns: r.raise_ns.wrapping_add(u64::from(s.delta) * 3),
                        post_ns: r.raise_ns.wrapping_add(u64::from(s.delta) * 4),
                        // Any TSC value: the device has no calibration to
                        // trust it with, or a fuzzed one (CALIBRATE below).
                        hardirq_tsc: u64::from(s.delta).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                        bh_start_tsc: u64::from(s.delta) << 7,
                        bh_end_tsc: u64::from(s.pick),
                        // Any CPU ids, past the device's limit too.
                        hard_cpu: s.delta,
                        bh_cpu: s.delta.rotate_left(8),
                        // Any delay and arming time; FIRST or not (lateness is taken from FIRST acks).
                        delay_us: u32::from(s.delta) << 4,
                        armed_ns: r.raise_ns.wrapping_sub(u64::from(s.pick)),
                    },
                    _ => AckRecord {
                        seq: u64::from(s.delta),
                        source: u16::from(s.pick & 0x7f),
                        mechanism: s.mech,
                        count: 1,
                        hardirq_ns: u64::from(s.delta) << 20,
                        ..Default::default()
                    },
                };
                a.encode()
            })
            .collect();
        let r = &mut self.rings[ACKQ];
        let a = ACK_BUF + u64::from(r.next_head() % 64) * ACK_SLOT;
        let _ = self.mem.write_slice(&bytes, GuestAddress(a));
        let len = bytes.len() as u32;
        let cut = (len / 2) & !7;
        let chain: &[(u64, u32, bool)] = if shape % 2 == 1 && cut > 0 {
            &[(a, cut, false), (a + u64::from(cut), len - cut, false)]
        } else {
            &[(a, len, false)]
        };
        r.post(&self.mem, chain, None, Expect::Good);
    }

    pub(super) fn post_bad_ack(&mut self, kind: u8) {
        let r = &mut self.rings[ACKQ];
        let a = ACK_BUF + u64::from(r.next_head() % 64) * ACK_SLOT;
        // Writable; not a multiple of the record; more records than a buffer holds; empty.
        let size = ACK_SIZE as u32;
        let chain: &[(u64, u32, bool)] = match kind % 4 {
            0 => &[(a, size, true)],
            1 => &[(a, size - 1, false)],
            2 => &[(a, size * (MAX_ACKS_PER_BUFFER as u32 + 1), false)],
            _ => &[(a, 0, false)],
        };
        r.post(&self.mem, chain, None, Expect::Malformed);
    }
}
