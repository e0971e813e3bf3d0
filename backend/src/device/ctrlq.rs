// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The control queue: one reply per request (§6.1-§6.2).

use log::debug;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use crate::protocol::{
    CalibrateReply, CalibrateRequest, CtrlReq, CtrlResp, InfoBody, Opcode, StatsBody, Status,
    CTRL_REQ_SIZE, CTRL_RESP_SIZE, MAX_CHAIN_DESCS, SOURCE_ALL, SPEC_VERSION, STATS_F_RESET,
};

use super::chain::Desc;
use super::chain::{
    add_used, collect_chain, driver_wants_interrupt, next_chain, read_descs, total_len, write_descs,
};
use super::timebase::run_calibration;
use super::{now_ns, CtrlOutcome, Device, DeviceCounters, QueueOutcome, Source};

/// A CALIBRATE the request checks accepted, not yet run: its loop needs no
/// device state, so the caller runs it without the device lock
/// ([`run_pending_calibration`]), answers it under the ring's lock
/// ([`PendingCalibration::answer`]) and then gives it to the fit
/// ([`Device::calibration_answered`]). The generator raises and takes polled
/// acks meanwhile; a device that spun with its lock held stalled every event
/// for the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCalibration {
    head: u16,
    reply: Vec<Desc>,
    resp: CtrlResp,
    req: CalibrateRequest,
    tsc_hz: u64,
    /// [`Device::ring_epoch`] when it was taken: a reset or resume since
    /// drops the answer (the ring it came from is gone).
    epoch: u64,
}

/// Runs the loop of `p` over guest memory `mem` (no device lock needed).
pub fn run_pending_calibration(p: &PendingCalibration, mem: &GuestMemoryMmap) -> CalibrateReply {
    run_calibration(mem, &p.req, p.tsc_hz)
}

impl PendingCalibration {
    /// Puts the answer `body` on `q`: the reply and the used entry (no
    /// device state needed: the caller holds the ring's lock, not the
    /// device's). Returns the queue outcome and the queue errors met.
    pub fn answer(
        &mut self,
        body: &CalibrateReply,
        q: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> (QueueOutcome, u64) {
        let mut c = DeviceCounters::default();
        body.put(&mut self.resp);
        if write_descs(mem, &self.reply, &self.resp.encode()) {
            add_used(q, mem, self.head, CTRL_RESP_SIZE as u32, &mut c);
        } else {
            c.queue_errors += 1;
            add_used(q, mem, self.head, 0, &mut c);
        }
        let out = QueueOutcome {
            used: 1,
            signal: driver_wants_interrupt(q, mem).unwrap_or(true),
        };
        (out, c.queue_errors)
    }
}

impl Device {
    /// Takes the answered calibration `p` into the fit, unless the device was
    /// reset or resumed (or its memory replaced) while its loop ran: then
    /// the offset it measured belongs to the VM state before, and it is
    /// counted `abandoned`.
    pub fn calibration_answered(
        &mut self,
        p: &PendingCalibration,
        body: &CalibrateReply,
        queue_errors: u64,
    ) {
        self.c.queue_errors += queue_errors;
        // The frequency the ack stamps are converted with from now on.
        self.tsc_hz = p.tsc_hz;
        if p.epoch != self.ring_epoch {
            self.tb.abandoned += 1;
            return;
        }
        let check = self.tb.add(body, p.tsc_hz);
        self.settle_one_way(check);
    }

    /// Processes every available controlq buffer, running calibrations in
    /// place (tests, fuzzing; the vhost-user path uses
    /// [`Device::process_ctrlq_until_calibrate`]).
    pub fn process_ctrlq(&mut self, q: &mut Queue, mem: &GuestMemoryMmap) -> CtrlOutcome {
        let mut out = CtrlOutcome::default();
        loop {
            let o = self.process_ctrlq_until_calibrate(q, mem);
            out.q.used += o.q.used;
            out.q.signal |= o.q.signal;
            out.wake_generator |= o.wake_generator;
            let Some(mut p) = o.calibrate else { break };
            let body = run_pending_calibration(&p, mem);
            let (f, errors) = p.answer(&body, q, mem);
            self.calibration_answered(&p, &body, errors);
            out.q.used += f.used;
            out.q.signal |= f.signal;
        }
        out
    }

    /// Answers one control request (§6.1).
    pub fn handle_ctrl(&mut self, req: &CtrlReq, now: u64) -> CtrlResp {
        self.c.ctrl_requests += 1;
        let mut r = CtrlResp::new(Status::Ok, req, now);
        let st = |r: &mut CtrlResp, s: Status| r.status = s as u16;
        let Some(op) = Opcode::from_u16(req.opcode) else {
            st(&mut r, Status::Invalid);
            return r;
        };
        match op {
            Opcode::GetInfo => {
                if req.flags != 0 || !req.zero_from(8) {
                    st(&mut r, Status::Invalid);
                    return r;
                }
                r.set_info(&InfoBody {
                    num_sources: self.limits.num_sources,
                    spec_version: SPEC_VERSION,
                    max_rate_hz: self.limits.max_rate_hz,
                    max_outstanding: self.limits.max_outstanding,
                    min_period_ns: self.limits.min_period_ns,
                    max_burst: self.limits.max_burst,
                    // features_lo: the low 32 feature bits by definition.
                    features_lo: self.negotiated as u32,
                });
            }
            Opcode::Configure => {
                if req.flags != 0 {
                    st(&mut r, Status::Invalid);
                    return r;
                }
                let s = self.configure(req.source, &req.configure_body(), false);
                st(&mut r, s);
            }
            Opcode::Start => {
                if req.flags != 0 || !req.zero_from(16) {
                    st(&mut r, Status::Invalid);
                    return r;
                }
                match self.start(req.source, req.arg_u64(), now) {
                    Ok(t0) => r.set_result(t0),
                    Err(s) => st(&mut r, s),
                }
            }
            Opcode::Stop => {
                if req.flags != 0 || !req.zero_from(8) {
                    st(&mut r, Status::Invalid);
                    return r;
                }
                match self.stop(req.source) {
                    Ok(n) => r.set_result(n),
                    Err(s) => st(&mut r, s),
                }
            }
            Opcode::Stats => {
                if req.flags & !STATS_F_RESET != 0 || !req.zero_from(8) {
                    st(&mut r, Status::Invalid);
                    return r;
                }
                let pick: Vec<&Source> = if req.source == SOURCE_ALL {
                    self.sources.iter().collect()
                } else if let Some(s) = self.sources.get(usize::from(req.source)) {
                    vec![s]
                } else {
                    st(&mut r, Status::OutOfRange);
                    return r;
                };
                let sum = |f: &dyn Fn(&Source) -> u64| pick.iter().map(|s| f(s)).sum::<u64>();
                r.set_stats(&StatsBody {
                    raised: sum(&|s| s.c.raised),
                    records: sum(&|s| s.c.records),
                    coalesced: sum(&|s| s.c.coalesced),
                    pending: sum(&|s| s.latch.pending),
                    acked: sum(&|s| s.c.acked),
                    malformed: self.counters().malformed,
                });
                if req.flags & STATS_F_RESET != 0 {
                    self.reset_stats();
                }
            }
            Opcode::Ping => {
                if req.flags != 0 || !req.zero_from(16) {
                    st(&mut r, Status::Invalid);
                    return r;
                }
                r.set_result(req.arg_u64());
                // host_send_ns is filled in just before the reply goes on the used ring.
            }
            Opcode::Calibrate => match CalibrateRequest::decode(req) {
                None => st(&mut r, Status::Invalid),
                Some(_) if req.flags != 0 => st(&mut r, Status::Invalid),
                Some(c) if !c.in_range() => st(&mut r, Status::OutOfRange),
                // The loop itself needs guest memory: `process_ctrlq` runs it.
                Some(_) => {}
            },
        }
        r
    }

    /// Processes controlq buffers until none is left or one is a CALIBRATE
    /// to run (`out.calibrate`; the buffers after it wait for the next call).
    pub fn process_ctrlq_until_calibrate(
        &mut self,
        q: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> CtrlOutcome {
        let mut out = CtrlOutcome::default();
        loop {
            let chain = next_chain(q, mem, &mut self.c);
            let Some(chain) = chain else { break };
            let head = chain.head_index();
            let now = now_ns();
            out.q.used += 1;
            let descs = match collect_chain(chain, mem, MAX_CHAIN_DESCS) {
                Ok(d) => d,
                Err(e) => {
                    debug!("controlq: malformed chain {head}: {e:?}");
                    self.c.malformed_ctrl += 1;
                    add_used(q, mem, head, 0, &mut self.c);
                    continue;
                }
            };
            let nread = descs.iter().take_while(|d| !d.write_only).count();
            let (rd, wr) = descs.split_at(nread);
            let rlen: u64 = total_len(rd);
            let wlen: u64 = total_len(wr);
            if wr.iter().any(|d| !d.write_only) || wlen < CTRL_RESP_SIZE as u64 {
                // Readable after writable, or no usable reply buffer.
                self.c.malformed_ctrl += 1;
                add_used(q, mem, head, 0, &mut self.c);
                continue;
            }
            let mut raw = [0u8; CTRL_REQ_SIZE];
            let mut calibrate = None;
            let resp = if rlen != CTRL_REQ_SIZE as u64 || !read_descs(mem, rd, &mut raw) {
                self.c.malformed_ctrl += 1;
                let mut r = CtrlResp::new(Status::Invalid, &CtrlReq::new(0, 0, 0), now);
                r.opcode = 0;
                r
            } else {
                match CtrlReq::decode(&raw) {
                    Ok(req) => {
                        let mut r = self.handle_ctrl(&req, now);
                        if r.status == Status::Ok as u16 {
                            match Opcode::from_u16(req.opcode) {
                                Some(Opcode::Configure | Opcode::Start | Opcode::Stop) => {
                                    out.wake_generator = true
                                }
                                Some(Opcode::Ping) => r.set_host_send_ns(now_ns()),
                                Some(Opcode::Calibrate) => {
                                    calibrate = CalibrateRequest::decode(&req)
                                }
                                _ => {}
                            }
                        }
                        r
                    }
                    Err(_) => CtrlResp::new(Status::Invalid, &CtrlReq::new(0, 0, 0), now),
                }
            };
            if let Some(req) = calibrate {
                // Counted used when answered (finish_calibration).
                out.q.used -= 1;
                out.calibrate = Some(PendingCalibration {
                    head,
                    reply: wr.to_vec(),
                    resp,
                    req,
                    tsc_hz: crate::tsc::hz(),
                    epoch: self.ring_epoch,
                });
                break;
            }
            if write_descs(mem, wr, &resp.encode()) {
                add_used(q, mem, head, CTRL_RESP_SIZE as u32, &mut self.c);
            } else {
                self.c.queue_errors += 1;
                add_used(q, mem, head, 0, &mut self.c);
            }
        }
        if out.q.used > 0 {
            out.q.signal = driver_wants_interrupt(q, mem).unwrap_or(true);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn ctrl_get_info_over_queue() {
        let mut d = device(1 << IRQSTORM_F_MODERATION);
        let (len, r) = ctrl_roundtrip(&mut d, &CtrlReq::new(Opcode::GetInfo as u16, 0, 0));
        let r = r.unwrap();
        assert_eq!(len, 64);
        assert_eq!(r.status, Status::Ok as u16);
        assert_eq!(r.opcode, 1);
        assert_eq!(r.u16_at(16), 8);
        assert_eq!(r.u16_at(18), SPEC_VERSION);
        assert_eq!(r.u32_at(20), 500_000);
        assert_eq!(r.u32_at(24), 1024);
        assert_eq!(r.u32_at(28), 2_000);
        assert_eq!(r.u32_at(32), 1024);
        assert_eq!(r.u32_at(36), 1 << IRQSTORM_F_MODERATION);
        assert!(r.host_ns > 0);
        assert_eq!(d.config().encode().len(), CONFIG_SIZE);
    }

    #[test]
    fn ctrl_every_request() {
        let mut d = device(0);
        let st = |r: CtrlResp| r.status;
        // CONFIGURE ok, then START/STOP/STATS/PING over the queue.
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::configure(2, &storm(1000, 1)));
        assert_eq!(st(r.unwrap()), Status::Ok as u16);
        let mut start = CtrlReq::new(Opcode::Start as u16, 2, 0);
        start.set_arg_u64(5 * MS);
        let (_, r) = ctrl_roundtrip(&mut d, &start);
        let r = r.unwrap();
        assert_eq!(r.status, Status::Ok as u16);
        assert!(r.u64_at(16) >= r.host_ns + 5 * MS);
        assert!(d.is_running(2));
        // Busy while running.
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::configure(2, &storm(10, 1)));
        assert_eq!(st(r.unwrap()), Status::Busy as u16);
        let (_, r) = ctrl_roundtrip(&mut d, &start);
        assert_eq!(st(r.unwrap()), Status::Busy as u16);
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::new(Opcode::Stop as u16, 2, 0));
        let r = r.unwrap();
        assert_eq!(r.status, Status::Ok as u16);
        assert_eq!(r.u64_at(16), 0);
        assert!(!d.is_running(2));
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::new(Opcode::Stats as u16, SOURCE_ALL, 1));
        assert_eq!(st(r.unwrap()), Status::Ok as u16);
        let mut ping = CtrlReq::new(Opcode::Ping as u16, 0, 0);
        ping.set_arg_u64(0xabcdef);
        let (_, r) = ctrl_roundtrip(&mut d, &ping);
        let r = r.unwrap();
        assert_eq!(r.status, Status::Ok as u16);
        assert_eq!(r.u64_at(16), 0xabcdef);
        assert!(r.u64_at(24) >= r.host_ns);
        // START of an OFF source, unknown opcode, bad source, nonzero flags.
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::new(Opcode::Start as u16, 0, 0));
        assert_eq!(st(r.unwrap()), Status::Invalid as u16);
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::new(99, 0, 0));
        assert_eq!(st(r.unwrap()), Status::Invalid as u16);
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::configure(8, &storm(10, 1)));
        assert_eq!(st(r.unwrap()), Status::OutOfRange as u16);
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::new(Opcode::Stop as u16, 9, 0));
        assert_eq!(st(r.unwrap()), Status::OutOfRange as u16);
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::new(Opcode::GetInfo as u16, 0, 4));
        assert_eq!(st(r.unwrap()), Status::Invalid as u16);
        // Out-of-range parameters.
        for b in [storm(600_000, 1), storm(1000, 0), storm(1000, 2000)] {
            let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::configure(1, &b));
            assert_eq!(st(r.unwrap()), Status::OutOfRange as u16);
        }
        let mut big = start;
        big.source = 2;
        big.set_arg_u64(MAX_DELAY_NS + 1);
        let (_, r) = ctrl_roundtrip(&mut d, &big);
        assert_eq!(st(r.unwrap()), Status::OutOfRange as u16);
        // Moderation without the feature.
        let mut m = storm(1000, 1);
        m.moderation_events = 4;
        let (_, r) = ctrl_roundtrip(&mut d, &CtrlReq::configure(1, &m));
        assert_eq!(st(r.unwrap()), Status::Unsupported as u16);
        // The sum of running rates is capped.
        assert_eq!(d.configure(3, &storm(400_000, 1), false), Status::Ok);
        assert_eq!(d.configure(4, &storm(200_000, 1), false), Status::Ok);
        assert!(d.start(3, 0, T0).is_ok());
        assert_eq!(d.start(4, 0, T0), Err(Status::OutOfRange));
        assert_eq!(d.counters().malformed, 0);
    }

    #[test]
    fn ctrl_malformed_chains() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 32);
        let req = CtrlReq::new(Opcode::GetInfo as u16, 0, 0);
        m.write_slice(&req.raw, GuestAddress(0x1000)).unwrap();
        // 0: short readable part -> INVALID reply.
        add_chain(&vq, 0, &[(0x1000, 32, false), (0x2000, 64, true)]);
        // 2: read-only response buffer -> used length 0.
        add_chain(&vq, 2, &[(0x1000, 64, false), (0x2000, 64, false)]);
        // 4: short writable part -> used length 0.
        add_chain(&vq, 4, &[(0x1000, 64, false), (0x2000, 32, true)]);
        // 6: oversized chain (5 descriptors) -> used length 0.
        add_chain(
            &vq,
            6,
            &[
                (0x1000, 16, false),
                (0x1010, 16, false),
                (0x1020, 16, false),
                (0x1030, 16, false),
                (0x2000, 64, true),
            ],
        );
        // 11: address outside guest memory -> used length 0.
        add_chain(&vq, 11, &[(0x1000, 64, false), (0x4000_0000, 64, true)]);
        // 13: readable after writable -> used length 0.
        add_chain(&vq, 13, &[(0x2000, 64, true), (0x1000, 64, false)]);
        // 15: broken link (next index out of the table) -> used length 0.
        let raw = [RawDescriptor::from(SplitDescriptor::new(
            0x1000,
            64,
            VRING_DESC_F_NEXT as u16,
            200,
        ))];
        vq.add_desc_chains(&raw, 15).unwrap();
        // 16: a good one after all that.
        add_chain(&vq, 16, &[(0x1000, 64, false), (0x3000, 64, true)]);
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(0);
        let out = d.process_ctrlq(&mut q, &m);
        assert_eq!(out.q.used, 8);
        assert_eq!(used_idx(&vq), 8);
        let lens: Vec<(u32, u32)> = (0..8).map(|i| used(&vq, i)).collect();
        assert_eq!(
            lens,
            vec![
                (0, 64),
                (2, 0),
                (4, 0),
                (6, 0),
                (11, 0),
                (13, 0),
                (15, 0),
                (16, 64)
            ]
        );
        let mut b = [0u8; 64];
        m.read_slice(&mut b, GuestAddress(0x2000)).unwrap();
        assert_eq!(CtrlResp::decode(&b).unwrap().status, Status::Invalid as u16);
        m.read_slice(&mut b, GuestAddress(0x3000)).unwrap();
        let r = CtrlResp::decode(&b).unwrap();
        assert_eq!(r.status, Status::Ok as u16);
        // STATS reports the device-wide malformed count at offset 56.
        assert_eq!(d.counters().malformed_ctrl, 7);
        let r = d.handle_ctrl(&CtrlReq::new(Opcode::Stats as u16, SOURCE_ALL, 0), 0);
        assert_eq!(r.u64_at(56), 7);
    }

    /// Regression: with the loop moved out of the device lock, the device's
    /// TSC frequency was no longer set by a calibration, so every one-way
    /// estimate converted ticks at 0 Hz and read 0 ns (ci-quick: 4600 of
    /// 4600 estimates at 1 ns, bound 0).
    #[test]
    fn a_calibration_over_the_controlq_sets_the_tsc_frequency() {
        let mut d = device(0);
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        let req = CalibrateRequest {
            page_addr: 0x4000,
            duration_us: 10,
        }
        .encode();
        m.write_slice(&req.raw, GuestAddress(0x1000)).unwrap();
        add_chain(&vq, 0, &[(0x1000, 64, false), (0x2000, 64, true)]);
        let mut q: Queue = vq.create_queue().unwrap();
        let out = d.process_ctrlq(&mut q, &m);
        assert_eq!(out.q.used, 1);
        assert_eq!(used(&vq, 0), (0, 64));
        // hz() measures anew each call: equal to 0.1 %, or both 0 without a usable TSC.
        let hz = crate::tsc::hz();
        assert_eq!(d.tsc_hz == 0, hz == 0);
        assert!(d.tsc_hz.abs_diff(hz) <= hz / 1000, "{} vs {hz}", d.tsc_hz);
    }
}
