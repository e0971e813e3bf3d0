// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! What each kick must have done: the accounting equations that always
//! hold, and the exact outcome of every chain while the rings hold only
//! what the harness built.

use irqstorm_backend::device::DeviceCounters;
use irqstorm_backend::protocol::{CtrlResp, EventRecord, CTRL_RESP_SIZE, EVENT_SIZE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{Expect, Harness, ACKQ, CTRLQ, EVENTQ, SEEN_MAX};

impl Harness {
    pub(super) fn process_ctrl(&mut self) -> Result<(), String> {
        let (c0, e0) = (self.dev.counters(), self.dev.stats_since_ns());
        let r = &mut self.rings[CTRLQ];
        let out = self.dev.process_ctrlq(&mut r.q, &self.mem);
        let (c1, e1) = (self.dev.counters(), self.dev.stats_since_ns());
        let used = r.take_used(&self.mem);
        let posted = self.take_posted(CTRLQ);
        // A STATS request with STATS_F_RESET zeroes the counters mid-way.
        let same_epoch = e0 == e1;
        let requests = c1.ctrl_requests.wrapping_sub(c0.ctrl_requests);
        let malformed = c1.malformed_ctrl.wrapping_sub(c0.malformed_ctrl);
        if same_epoch && out.q.used as u64 != requests + malformed {
            return Err(format!(
                "controlq consumed {} chains but answered {requests} and counted {malformed} malformed",
                out.q.used
            ));
        }
        let Some(posted) = posted else {
            return Ok(());
        };
        if out.q.used != posted.len() || used.len() != posted.len() {
            return Err(format!(
                "controlq: {} chains posted, device reports {} used, used ring has {}",
                posted.len(),
                out.q.used,
                used.len()
            ));
        }
        for (p, &(id, len)) in posted.iter().zip(&used) {
            let want = match p.expect {
                Expect::Malformed => 0,
                _ => CTRL_RESP_SIZE as u32,
            };
            if id != u32::from(p.head) || len != want {
                return Err(format!(
                    "controlq chain {} ({:?}): used ({id}, {len}), want ({}, {want})",
                    p.head, p.expect, p.head
                ));
            }
            if want > 0 {
                let mut b = [0u8; CTRL_RESP_SIZE];
                let _ = self.mem.read_slice(&mut b, GuestAddress(p.writes[0].0));
                let resp = CtrlResp::decode(&b).map_err(|e| e.to_string())?;
                if resp.status > 4 {
                    return Err(format!("controlq reply status {}", resp.status));
                }
            }
        }
        let bad = posted.iter().filter(|p| p.expect != Expect::Good).count() as u64;
        let good = posted.len() as u64 - bad;
        if same_epoch && (malformed != bad || requests != good) {
            return Err(format!(
                "controlq: {good} good and {bad} malformed chains; counted {requests} requests and {malformed} malformed"
            ));
        }
        Ok(())
    }

    pub(super) fn process_ack(&mut self) -> Result<(), String> {
        let (c0, a0) = (self.dev.counters(), self.acked());
        let r = &mut self.rings[ACKQ];
        let out = self.dev.process_ackq(&mut r.q, &self.mem);
        let used = r.take_used(&self.mem);
        let (c1, a1) = (self.dev.counters(), self.acked());
        let posted = self.take_posted(ACKQ);
        let malformed = c1.malformed_ack - c0.malformed_ack;
        // Each well-formed buffer carries at least one record, and each
        // record is either applied or counted as a bad ack.
        let records = (c1.bad_acks - c0.bad_acks) + (a1 - a0);
        if malformed > out.used as u64 || out.used as u64 > malformed + records {
            return Err(format!(
                "ackq consumed {} buffers: {malformed} counted malformed, {records} records taken",
                out.used
            ));
        }
        let Some(posted) = posted else {
            return Ok(());
        };
        if out.used != posted.len() || used.len() != posted.len() {
            return Err(format!(
                "ackq: {} buffers posted, device reports {} used, used ring has {}",
                posted.len(),
                out.used,
                used.len()
            ));
        }
        for (p, &(id, len)) in posted.iter().zip(&used) {
            if id != u32::from(p.head) || len != 0 {
                return Err(format!(
                    "ackq buffer {} ({:?}): used ({id}, {len})",
                    p.head, p.expect
                ));
            }
        }
        let bad = posted.iter().filter(|p| p.expect != Expect::Good).count() as u64;
        if malformed != bad {
            return Err(format!(
                "ackq: {bad} malformed buffers posted, {malformed} counted"
            ));
        }
        Ok(())
    }

    /// After an eventq write pass: the used entries are the posted buffers
    /// in order, malformed ones counted, records numbered without gaps.
    pub(super) fn check_events(&mut self, before: &DeviceCounters) -> Result<(), String> {
        let exact = self.exact(EVENTQ).filter(|_| !self.faulted);
        let r = &mut self.rings[EVENTQ];
        let used = r.take_used(&self.mem);
        match exact {
            None => {
                r.posted.clear();
                return Ok(());
            }
            Some(false) if !used.is_empty() => {
                return Err(format!("eventq not ready, yet {} buffers used", used.len()));
            }
            _ => {}
        }
        let mut bad = 0u64;
        for &(id, len) in &used {
            let Some(p) = r.posted.pop_front() else {
                return Err(format!(
                    "eventq: used entry ({id}, {len}) for no posted buffer"
                ));
            };
            if id != u32::from(p.head) {
                return Err(format!(
                    "eventq: used id {id}, next posted buffer {}",
                    p.head
                ));
            }
            if p.expect != Expect::Good {
                if len != 0 {
                    return Err(format!(
                        "eventq: malformed buffer {id} used with length {len}"
                    ));
                }
                bad += 1;
                continue;
            }
            if len != EVENT_SIZE as u32 {
                return Err(format!("eventq: buffer {id} used with length {len}"));
            }
            let rec = read_record(&self.mem, &p.writes)?;
            let s = usize::from(rec.source);
            if rec.source >= self.num_sources || rec.count == 0 {
                return Err(format!("eventq: bad record {rec:?}"));
            }
            let first = (rec.source_seq + 1).checked_sub(u64::from(rec.count));
            if first != Some(self.last_seq[s] + 1) {
                return Err(format!(
                    "eventq: source {s} record {rec:?} does not follow {}",
                    self.last_seq[s]
                ));
            }
            self.last_seq[s] = rec.source_seq;
            self.records += 1;
            if self.seen.len() == SEEN_MAX {
                self.seen.remove(0);
            }
            self.seen.push(rec);
        }
        let c = self.dev.counters();
        let counted = c.malformed_event.wrapping_sub(before.malformed_event);
        if counted != bad {
            return Err(format!(
                "eventq: {bad} malformed buffers returned, {counted} counted"
            ));
        }
        Ok(())
    }
}

fn read_record(m: &GuestMemoryMmap, writes: &[(u64, u32); 2]) -> Result<EventRecord, String> {
    let mut b = [0u8; EVENT_SIZE];
    let mut off = 0;
    for &(a, l) in writes {
        let n = (l as usize).min(EVENT_SIZE - off);
        if n == 0 {
            continue;
        }
        m.read_slice(&mut b[off..off + n], GuestAddress(a))
            .map_err(|e| format!("reading a record: {e}"))?;
        off += n;
    }
    EventRecord::decode(&b).map_err(|e| e.to_string())
}
