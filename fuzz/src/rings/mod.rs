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

mod check;
mod op;
mod post;
mod ring;
pub mod seeds;

pub use op::{encode, AckSel, Op, Setup, CTRL_BODY, MAX_ACK_RECS};
pub use ring::{Expect, Posted, RawDesc, Ring, MAX_QSIZE};

use irqstorm_backend::device::{now_ns, Device, DeviceCounters, FaultKind};
use irqstorm_backend::protocol::{
    ConfigureBody, EventRecord, Mode, ACK_SIZE, IRQSTORM_F_FAULT_INJECT, IRQSTORM_F_MODERATION,
    SOURCE_ALL,
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
