// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Target `rings`: the device model (`irqstorm_backend::device`) driven
//! through controlq, eventq and ackq split rings in guest memory, with
//! fuzzed descriptor tables, avail rings, chains and buffer contents.
//!
//! After every operation: conservation (`Device::conservation_holds`).
//! After every kick: each consumed controlq chain was either answered or
//! counted malformed; ackq never counts more malformed buffers than it
//! consumed. While the rings hold only chains the harness built (no raw
//! write touched a ring), each chain must come back as built: well-formed
//! ones answered / filled, malformed ones returned with length 0 and counted,
//! event records numbered without gaps per source.

mod op;
mod ring;
pub mod seeds;

pub use op::{encode, AckSel, Op, Setup, CTRL_BODY, MAX_ACK_RECS};
pub use ring::{Expect, Posted, RawDesc, Ring, MAX_QSIZE};

use irqstorm_backend::device::{now_ns, Device, DeviceCounters, FaultKind};
use irqstorm_backend::protocol::{
    AckRecord, ConfigureBody, CtrlReq, CtrlResp, EventRecord, Mode, Opcode, ACK_SIZE,
    CTRL_RESP_SIZE, EVENT_SIZE, IRQSTORM_F_FAULT_INJECT, IRQSTORM_F_MODERATION, SOURCE_ALL,
};
use irqstorm_backend::schedule::Limits;
use thiserror::Error as ThisError;
use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::input::Input;

/// Guest memory: region 0 `[0, REGION0)`, a hole, region 1.
pub const REGION0: u64 = 0x10_0000;
/// Region 1 (start, length).
pub const REGION1: (u64, u64) = (0x20_0000, 0x1_0000);
/// Rings live below this address, buffer contents above it.
pub const STRUCTURE_END: u64 = 0x8_0000;
const RING_BASE: u64 = 0x1_0000;
const CTRL_BUF: u64 = 0x8_0000;
const EVENT_BUF: u64 = 0x9_0000;
const ACK_BUF: u64 = 0xA_0000;
const ACK_SLOT: u64 = (ACK_SIZE * MAX_ACK_RECS) as u64;
/// Well outside guest memory.
const NOWHERE: u64 = 0x4000_0000;
/// Event records kept for [`Op::Acks`].
const SEEN_MAX: usize = 256;

const CTRLQ: usize = 0;
const EVENTQ: usize = 1;
const ACKQ: usize = 2;

/// A broken invariant (the fuzz target panics with it).
#[derive(Debug, ThisError, PartialEq, Eq)]
pub enum Violation {
    /// raised != records + coalesced + pending + dropped_on_reset.
    #[error("op {op} ({name}): conservation broken")]
    Conservation {
        /// Operation index.
        op: usize,
        /// Operation name.
        name: &'static str,
    },
    /// A counter or used entry disagrees with what the ring held.
    #[error("op {op} ({name}): {what}")]
    Accounting {
        /// Operation index.
        op: usize,
        /// Operation name.
        name: &'static str,
        /// What disagrees.
        what: String,
    },
}

/// What one input reached (for tests and seeds).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Operations run.
    pub ops: usize,
    /// The device's counters at the end.
    pub counters: DeviceCounters,
    /// Event records read back from harness buffers.
    pub records: usize,
    /// Whether the exact (untainted) checks stayed on to the end.
    pub exact: bool,
}

/// The set-up and operations an input decodes to (a default set-up if the
/// input is shorter than the header).
pub fn decode(data: &[u8]) -> (Setup, Vec<Op>) {
    let mut i = Input::new(data);
    let Some(setup) = Setup::decode(&mut i) else {
        return (Setup::default(), Vec::new());
    };
    let mut ops = Vec::new();
    while let Some(op) = Op::decode(&mut i) {
        ops.push(op);
    }
    (setup, ops)
}

/// Runs one input; `Err` names the first broken invariant.
pub fn run(data: &[u8]) -> Result<Summary, Violation> {
    let mut i = Input::new(data);
    let Some(setup) = Setup::decode(&mut i) else {
        return Ok(Summary::default());
    };
    let mut h = Harness::new(&setup);
    let mut n = 0;
    while let Some(op) = Op::decode(&mut i) {
        h.apply(n, &op)?;
        n += 1;
    }
    Ok(Summary {
        ops: n,
        counters: h.dev.counters(),
        records: h.records,
        exact: !h.tainted,
    })
}

struct Harness {
    mem: GuestMemoryMmap,
    dev: Device,
    rings: [Ring; 3],
    /// Virtual time ahead of the host clock.
    offset: u64,
    /// A raw write touched the rings: only the always-true equations hold.
    tainted: bool,
    /// A fault was armed: eventq output is not the model's.
    faulted: bool,
    /// Negotiated features.
    features: u64,
    /// Last per-source number seen, per source.
    last_seq: Vec<u64>,
    /// Records seen (for acks).
    seen: Vec<EventRecord>,
    records: usize,
    num_sources: u16,
}

fn desc_of(i: usize) -> (u64, u64, u64) {
    let base = RING_BASE * (i as u64 + 1);
    (base, base + 0x1000, base + 0x2000)
}

impl Harness {
    fn new(s: &Setup) -> Self {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), REGION0 as usize),
            (GuestAddress(REGION1.0), REGION1.1 as usize),
        ])
        .expect("fixed, non-overlapping regions");
        let num_sources = u16::from(s.sources % 8) + 1;
        let limits = Limits {
            num_sources,
            max_rate_hz: 500_000,
            max_outstanding: [0, 2, 16, 1024][usize::from(s.outstanding % 4)],
            min_period_ns: 2_000,
            max_burst: 1024,
        };
        let mut dev = Device::new(limits, true);
        let event_idx = s.features & 1 != 0;
        let mut f = 1u64 << VIRTIO_F_VERSION_1;
        if event_idx {
            f |= 1 << VIRTIO_RING_F_EVENT_IDX;
        }
        if s.features & 2 != 0 {
            f |= 1 << IRQSTORM_F_MODERATION;
        }
        if s.features & 4 != 0 {
            f |= 1 << IRQSTORM_F_FAULT_INJECT;
        }
        dev.set_negotiated(f);
        let ring = |i: usize| {
            let (d, a, u) = desc_of(i);
            Ring::new(1 << (s.sizes[i] % 9), d, a, u, event_idx)
        };
        Self {
            mem,
            dev,
            rings: [ring(0), ring(1), ring(2)],
            offset: 0,
            tainted: false,
            faulted: false,
            features: f,
            last_seq: vec![0; usize::from(num_sources)],
            seen: Vec::new(),
            records: 0,
            num_sources,
        }
    }

    fn now(&self) -> u64 {
        now_ns().saturating_add(self.offset)
    }

    /// What the exact checks of ring `q` expect: `None` when a raw write
    /// touched the rings (only the always-true equations apply), else
    /// whether the device may consume the posted chains (a ready queue) or
    /// must leave them alone.
    fn exact(&self, q: usize) -> Option<bool> {
        let r = &self.rings[q];
        (!self.tainted).then(|| r.q.ready() && r.size_valid())
    }

    /// The posted chains the device must have consumed now: all of them on a
    /// usable queue; none on a queue that is not ready. Forgotten (and
    /// `None`) when tainted.
    fn take_posted(&mut self, q: usize) -> Option<Vec<Posted>> {
        let e = self.exact(q);
        let r = &mut self.rings[q];
        match e {
            None => {
                r.posted.clear();
                None
            }
            Some(true) => Some(r.posted.drain(..).collect()),
            Some(false) => Some(Vec::new()),
        }
    }

    fn apply(&mut self, n: usize, op: &Op) -> Result<(), Violation> {
        let name = op_name(op);
        let fail = |what: String| Violation::Accounting { op: n, name, what };
        match op {
            Op::Poke { off, data } => {
                let off = u64::from(*off) % (REGION1.0 + REGION1.1 + 0x1000);
                for (k, b) in data.iter().enumerate() {
                    let _ = self.mem.write_obj(*b, GuestAddress(off + k as u64));
                }
                if off < STRUCTURE_END {
                    self.tainted = true;
                }
            }
            Op::RawDesc {
                q,
                id,
                addr,
                len,
                flags,
                next,
            } => {
                let d = RawDesc {
                    addr: u64::from(*addr),
                    len: *len,
                    flags: *flags,
                    next: *next,
                };
                self.rings[qi(*q)].write_desc(&self.mem, *id, d);
                self.tainted = true;
            }
            Op::RawAvail { q, head } => {
                self.rings[qi(*q)].push_avail(&self.mem, *head);
                self.tainted = true;
            }
            Op::AvailIdx { q, idx } => {
                self.rings[qi(*q)].set_avail_idx(&self.mem, *idx);
                self.tainted = true;
            }
            Op::Ctrl {
                opcode,
                source,
                flags,
                shape,
                body,
            } => self.post_ctrl(*opcode, *source, *flags, *shape, body),
            Op::BadCtrl { kind } => self.post_bad_ctrl(*kind),
            Op::Events { n, shape } => {
                for _ in 0..=(n % 8) {
                    self.post_event(*shape);
                }
            }
            Op::BadEvent { kind } => self.post_bad_event(*kind),
            Op::Acks { shape, recs } => self.post_acks(*shape, recs),
            Op::BadAck { kind } => self.post_bad_ack(*kind),
            Op::ProcessCtrl => self.process_ctrl().map_err(fail)?,
            Op::ProcessAck => self.process_ack().map_err(fail)?,
            Op::FlushEvents => {
                let before = self.dev.counters();
                let now = self.now();
                let r = &mut self.rings[EVENTQ];
                self.dev.flush(now, Some((&mut r.q, &self.mem)));
                self.check_events(&before).map_err(fail)?;
            }
            Op::Advance { ns } => {
                self.offset = self.offset.saturating_add(u64::from(*ns));
                let before = self.dev.counters();
                let now = self.now();
                let r = &mut self.rings[EVENTQ];
                self.dev.service(now, Some((&mut r.q, &self.mem)));
                self.check_events(&before).map_err(fail)?;
            }
            Op::Storm {
                src,
                rate,
                burst,
                delay,
            } => {
                let src = self.source(*src);
                let body = ConfigureBody {
                    mode: Mode::Storm as u8,
                    rate_hz: *rate % 600_000,
                    burst: *burst,
                    ..Default::default()
                };
                self.dev.configure(src, &body, false);
                let _ = self.dev.start(src, u64::from(*delay), self.now());
            }
            Op::Stop { src } => {
                let _ = self.dev.stop(self.source(*src));
            }
            Op::Inject { kind, count } => {
                let k = FaultKind::ALL[usize::from(*kind) % FaultKind::ALL.len()];
                if self.dev.inject(k, u32::from(*count)).is_ok() {
                    self.faulted = true;
                }
            }
            Op::Reset => {
                self.dev.reset();
                // A reset forgets the negotiation and the per-source
                // numbers; the transport negotiates again before the rings
                // are used.
                self.dev.set_negotiated(self.features);
                self.last_seq.iter_mut().for_each(|s| *s = 0);
            }
            Op::ResetStats => self.dev.reset_stats(),
            Op::QueueCtl { q, sub, a, b, c } => {
                let r = &mut self.rings[qi(*q)];
                match sub % 4 {
                    0 => {
                        let ready = r.q.ready();
                        r.q.set_ready(!ready);
                    }
                    1 => {
                        let on = r.q.event_idx_enabled();
                        r.q.set_event_idx(!on);
                    }
                    2 => {
                        r.size = *a as u16;
                        r.q.set_size(r.size);
                        self.tainted = true;
                    }
                    _ => {
                        let (d, av, u) = (u64::from(*a), u64::from(*b), u64::from(*c));
                        r.desc = d;
                        r.avail = av;
                        r.used = u;
                        r.q.set_desc_table_address(Some(*a), Some(0));
                        r.q.set_avail_ring_address(Some(*b), Some(0));
                        r.q.set_used_ring_address(Some(*c), Some(0));
                        self.tainted = true;
                    }
                }
            }
        }
        if !self.dev.conservation_holds() {
            return Err(Violation::Conservation { op: n, name });
        }
        Ok(())
    }

    /// Records acknowledged, over all sources.
    fn acked(&self) -> u64 {
        (0..self.num_sources)
            .filter_map(|s| self.dev.source_counters(s))
            .map(|c| c.acked)
            .sum()
    }

    fn source(&self, s: u8) -> u16 {
        if s == 0xff {
            SOURCE_ALL
        } else {
            u16::from(s) % (self.num_sources + 1)
        }
    }

    fn post_ctrl(&mut self, opcode: u8, source: u8, flags: u8, shape: u8, body: &[u8]) {
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

    fn post_bad_ctrl(&mut self, kind: u8) {
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

    fn post_event(&mut self, shape: u8) {
        let r = &mut self.rings[EVENTQ];
        let a = EVENT_BUF + u64::from(r.next_head()) * 0x40;
        let chain: &[(u64, u32, bool)] = match shape % 3 {
            0 => &[(a, EVENT_SIZE as u32, true)],
            1 => &[(a, 20, true), (a + 0x20, 28, true)],
            _ => &[(a, 0x40, true)],
        };
        r.post(&self.mem, chain, None, Expect::Good);
    }

    fn post_bad_event(&mut self, kind: u8) {
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

    fn post_acks(&mut self, shape: u8, recs: &[AckSel]) {
        let bytes: Vec<u8> = recs
            .iter()
            .flat_map(|s| {
                let a = match self.seen.get(usize::from(s.pick) % self.seen.len().max(1)) {
                    Some(r) if s.pick < 0x80 => AckRecord {
                        seq: r.seq,
                        source: r.source,
                        mechanism: s.mech % 16,
                        flags: 0,
                        count: r.count,
                        hardirq_ns: r.raise_ns.wrapping_add(u64::from(s.delta)),
                        bh_start_ns: r.raise_ns.wrapping_add(u64::from(s.delta) * 2),
                        bh_end_ns: r.raise_ns.wrapping_add(u64::from(s.delta) * 3),
                        post_ns: r.raise_ns.wrapping_add(u64::from(s.delta) * 4),
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

    fn post_bad_ack(&mut self, kind: u8) {
        let r = &mut self.rings[ACKQ];
        let a = ACK_BUF + u64::from(r.next_head() % 64) * ACK_SLOT;
        let chain: &[(u64, u32, bool)] = match kind % 4 {
            0 => &[(a, 48, true)],
            1 => &[(a, 47, false)],
            2 => &[(a, 48 * 65, false)],
            _ => &[(a, 0, false)],
        };
        r.post(&self.mem, chain, None, Expect::Malformed);
    }

    fn process_ctrl(&mut self) -> Result<(), String> {
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

    fn process_ack(&mut self) -> Result<(), String> {
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
    fn check_events(&mut self, before: &DeviceCounters) -> Result<(), String> {
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

fn qi(q: u8) -> usize {
    usize::from(q % 3)
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Poke { .. } => "poke",
        Op::RawDesc { .. } => "raw descriptor",
        Op::RawAvail { .. } => "raw avail entry",
        Op::AvailIdx { .. } => "avail index",
        Op::Ctrl { .. } => "control request",
        Op::BadCtrl { .. } => "malformed control chain",
        Op::Events { .. } => "event buffers",
        Op::BadEvent { .. } => "malformed event buffer",
        Op::Acks { .. } => "ack buffer",
        Op::BadAck { .. } => "malformed ack buffer",
        Op::ProcessCtrl => "controlq kick",
        Op::ProcessAck => "ackq kick",
        Op::FlushEvents => "eventq kick",
        Op::Advance { .. } => "generator step",
        Op::Storm { .. } => "storm",
        Op::Stop { .. } => "stop",
        Op::Inject { .. } => "inject",
        Op::Reset => "device reset",
        Op::ResetStats => "stats reset",
        Op::QueueCtl { .. } => "queue control",
    }
}
