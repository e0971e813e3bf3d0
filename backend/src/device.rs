// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The irqstorm device model: sources, raising, latching, event writing,
//! control requests, ack accounting and statistics (docs/device-spec.md §5-§7).
//!
//! Everything here works on a `virtio_queue::Queue` and a `GuestMemoryMmap`
//! given by the caller, so the same code runs under the vhost-user daemon, the
//! generator thread, and the unit tests (virtio-queue's `MockSplitQueue`).

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use log::{debug, warn};
use thiserror::Error as ThisError;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestMemoryBackend, GuestMemoryMmap};

use crate::protocol::{
    AckRecord, CtrlReq, CtrlResp, DeviceConfig, EventRecord, Mode, Opcode, Status, ACK_SIZE,
    CTRL_REQ_SIZE, CTRL_RESP_SIZE, EVENT_SIZE, EVT_F_FINAL, EVT_F_LATCHED, IRQSTORM_F_FAULT_INJECT,
    IRQSTORM_F_MODERATION, MAX_ACKS_PER_BUFFER, MAX_ACK_CHAIN_DESCS, MAX_CHAIN_DESCS,
    MECHANISM_NAMES, NUM_MECHANISMS, SOURCE_ALL, SPEC_VERSION, STATS_F_RESET,
};
use crate::schedule::{Limits, Program, Schedule, MAX_DELAY_NS};

/// Kinds of injected faults (§7): defined with the wire formats.
pub use irqstorm_protocol::wire::FaultKind;

use irqstorm_protocol::stats::{
    DeviceStats, Hist, HistSummary, MechanismStats, RawRaiseToHardirq, SourceStats, Stats, Totals,
};

/// Histogram range: 1 ns .. 60 s, 3 significant digits.
const HIST_MAX_NS: u64 = 60_000_000_000;
/// Most raises taken in one `service` call (bounds the time the lock is held).
pub const SERVICE_BUDGET: usize = 4096;

/// Errors of the device model.
#[derive(Debug, ThisError)]
pub enum Error {
    /// The queue could not be iterated (not ready or bad avail index).
    #[error("queue error: {0}")]
    Queue(#[from] virtio_queue::Error),
}

/// Reads `CLOCK_MONOTONIC` in ns.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC
    // is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn record(h: &mut Option<Histogram<u64>>, v: u64) {
    if h.is_none() {
        // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2*low, sigfig <= 5).
        *h = Histogram::new_with_bounds(1, HIST_MAX_NS, 3).ok();
    }
    if let Some(h) = h {
        h.saturating_record(v.max(1));
    }
}

/// A histogram for the `stats` reply: count, summary (count, min, p50, p90,
/// p99, p99.9, max, mean) and, on request, the non-empty buckets.
pub fn hist_stats(h: &Option<Histogram<u64>>, buckets: bool) -> Hist {
    match h {
        Some(h) if !h.is_empty() => Hist {
            count: h.len(),
            summary: Some(HistSummary {
                min: h.min(),
                p50: h.value_at_quantile(0.5),
                p90: h.value_at_quantile(0.9),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
                mean: h.mean(),
            }),
            buckets: buckets.then(|| {
                h.iter_recorded()
                    .map(|x| (x.value_iterated_to(), x.count_at_value()))
                    .collect()
            }),
        },
        _ => Hist::default(),
    }
}

/// Per-source counters (§5.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceCounters {
    /// Raises.
    pub raised: u64,
    /// Records written.
    pub records: u64,
    /// Sum of `count - 1` over written records.
    pub coalesced: u64,
    /// Raises lost to a device reset while latched.
    pub dropped_on_reset: u64,
    /// Records acknowledged.
    pub acked: u64,
    /// Raises covered by acknowledged records.
    pub acked_raises: u64,
    /// Records written with the LATCHED flag.
    pub latched_records: u64,
}

#[derive(Debug, Default)]
struct Latched {
    pending: u64,
    first_due: u64,
    first_raise: u64,
    last_seq: u64,
    final_: bool,
    latched: bool,
}

#[derive(Debug)]
struct Source {
    program: Program,
    sched: Option<Schedule>,
    /// Last per-source number given out.
    source_seq: u64,
    latch: Latched,
    c: SourceCounters,
    unnotified: u32,
    oldest_unnotified_ns: Option<u64>,
    lat: Option<Histogram<u64>>,
}

impl Source {
    fn new() -> Self {
        Self {
            program: Program::default(),
            sched: None,
            source_seq: 0,
            latch: Latched::default(),
            c: SourceCounters::default(),
            unnotified: 0,
            oldest_unnotified_ns: None,
            lat: None,
        }
    }
    fn running(&self) -> bool {
        self.sched.as_ref().is_some_and(|s| s.next_due().is_some())
    }
}

#[derive(Debug, Default)]
struct Mechanism {
    acked: u64,
    acked_raises: u64,
    /// Host raise -> host ack arrival.
    lat: Option<Histogram<u64>>,
    /// Guest hardirq -> bottom-half start.
    bh_delay: Option<Histogram<u64>>,
    /// Guest bottom-half start -> end.
    bh_run: Option<Histogram<u64>>,
    /// Raw cross-clock differences `hardirq_guest - raise_host - base`
    /// (see [`Device::clock_diff_base`]); the report adds the base and the
    /// estimated host-guest offset to get device-raise -> guest-hardirq.
    raw_raise_to_hardirq: Option<Histogram<u64>>,
    /// Differences that fell below the base (clock drift); counted, not lost.
    raw_below_base: u64,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    seq: u64,
    source: u16,
    raise_ns: u64,
    count: u32,
    acked: bool,
}

/// Device-wide counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceCounters {
    /// Malformed controlq chains / requests.
    pub malformed_ctrl: u64,
    /// Malformed eventq buffers.
    pub malformed_event: u64,
    /// Malformed ackq buffers.
    pub malformed_ack: u64,
    /// Control requests answered.
    pub ctrl_requests: u64,
    /// Acks that matched no outstanding record, or named an unknown mechanism.
    pub bad_acks: u64,
    /// Unacked records evicted from the outstanding table.
    pub ack_evicted: u64,
    /// Used-buffer notifications sent on eventq.
    pub notifications: u64,
    /// Notifications suppressed by the driver (EVENT_IDX / NO_INTERRUPT).
    pub suppressed: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// Queue access errors (not-ready queue, bad avail index, used ring write failure).
    pub queue_errors: u64,
    /// Device resets.
    pub resets: u64,
}

impl DeviceCounters {
    fn malformed(&self) -> u64 {
        self.malformed_ctrl + self.malformed_event + self.malformed_ack
    }

    /// The counters as the `stats` reply spells them.
    fn stats(&self) -> DeviceStats {
        DeviceStats {
            malformed_ctrl: self.malformed_ctrl,
            malformed_event: self.malformed_event,
            malformed_ack: self.malformed_ack,
            malformed: self.malformed(),
            ctrl_requests: self.ctrl_requests,
            bad_acks: self.bad_acks,
            ack_evicted: self.ack_evicted,
            notifications: self.notifications,
            suppressed: self.suppressed,
            faults_injected: self.faults_injected,
            queue_errors: self.queue_errors,
            resets: self.resets,
        }
    }
}

/// What a caller must do after a queue operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueOutcome {
    /// Buffers put on the used ring.
    pub used: usize,
    /// Send a used-buffer notification now.
    pub signal: bool,
}

/// Result of a control request, for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtrlOutcome {
    /// Queue outcome.
    pub q: QueueOutcome,
    /// Source programs changed: the generator must recompute its deadline.
    pub wake_generator: bool,
}

/// The device state (one per vhost-user socket).
#[derive(Debug)]
pub struct Device {
    limits: Limits,
    fault_injection: bool,
    negotiated: u64,
    sources: Vec<Source>,
    pending_order: VecDeque<u16>,
    next_seq: u64,
    outstanding: VecDeque<Outstanding>,
    mechs: Vec<Mechanism>,
    /// Base of the raw raise->hardirq differences: `hardirq_guest - ack_host`
    /// of the first ack with a hardirq stamp. Since a hardirq precedes its
    /// ack, every later `hardirq - raise - base` is >= that event's true
    /// one-way latency (up to drift), so values stay at latency magnitudes
    /// (precise in an HDR histogram) whatever the clock offset is.
    clock_diff_base: Option<i64>,
    c: DeviceCounters,
    fault: Option<(FaultKind, u32)>,
    total_unnotified: u32,
    /// Time the current stats epoch began.
    stats_since_ns: u64,
}

/// Chain validation failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChainError {
    TooLong,
    Broken,
    BadAddress,
    Direction,
    Length,
}

/// Collects the descriptors of a chain; detects over-long, broken and out-of-memory chains.
fn collect_chain(
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    max: usize,
) -> Result<Vec<(u64, u32, bool)>, ChainError> {
    let mut v = Vec::with_capacity(max);
    let mut last_has_next = false;
    for d in chain {
        if v.len() == max {
            return Err(ChainError::TooLong);
        }
        let len = d.len();
        if !GuestMemoryBackend::check_range(mem, d.addr(), len as usize) && len > 0 {
            return Err(ChainError::BadAddress);
        }
        last_has_next = d.has_next();
        v.push((d.addr().0, len, d.is_write_only()));
    }
    // The iterator stops early (yielding nothing more) on an out-of-range next
    // index, a loop (ttl exhausted) or a malformed indirect table: the last
    // descriptor then still claims a successor.
    if v.is_empty() || last_has_next {
        return Err(ChainError::Broken);
    }
    Ok(v)
}

fn write_descs(mem: &GuestMemoryMmap, descs: &[(u64, u32, bool)], data: &[u8]) -> bool {
    let mut off = 0usize;
    for &(addr, len, _) in descs {
        if off >= data.len() {
            break;
        }
        let n = (len as usize).min(data.len() - off);
        if mem
            .write_slice(&data[off..off + n], vm_memory::GuestAddress(addr))
            .is_err()
        {
            return false;
        }
        off += n;
    }
    off == data.len()
}

fn read_descs(mem: &GuestMemoryMmap, descs: &[(u64, u32, bool)], out: &mut [u8]) -> bool {
    let mut off = 0usize;
    for &(addr, len, _) in descs {
        if off >= out.len() {
            break;
        }
        let n = (len as usize).min(out.len() - off);
        if mem
            .read_slice(&mut out[off..off + n], vm_memory::GuestAddress(addr))
            .is_err()
        {
            return false;
        }
        off += n;
    }
    off == out.len()
}

/// The next available chain, if any; a ring the driver left inconsistent
/// (e.g. an avail index too far ahead) counts as a queue error.
fn next_chain<'a>(
    q: &mut Queue,
    mem: &'a GuestMemoryMmap,
    c: &mut DeviceCounters,
) -> Option<DescriptorChain<&'a GuestMemoryMmap>> {
    match q.iter(mem) {
        Ok(mut it) => it.next(),
        Err(_) => {
            c.queue_errors += 1;
            None
        }
    }
}

fn add_used(q: &mut Queue, mem: &GuestMemoryMmap, head: u16, len: u32, c: &mut DeviceCounters) {
    if q.add_used(mem, head, len).is_err() {
        c.queue_errors += 1;
    }
}

/// `VRING_AVAIL_F_NO_INTERRUPT`.
const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Used-buffer notification suppression (§5.3): `used_event` with EVENT_IDX,
/// else the avail ring's `VRING_AVAIL_F_NO_INTERRUPT` flag (virtio-queue's
/// `needs_notification` implements only the former).
fn driver_wants_interrupt(q: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, Error> {
    if q.event_idx_enabled() {
        return Ok(q.needs_notification(mem)?);
    }
    let flags: u16 = mem
        .read_obj(vm_memory::GuestAddress(q.avail_ring()))
        .map_err(|e| Error::Queue(virtio_queue::Error::GuestMemory(e)))?;
    Ok(u16::from_le(flags) & VRING_AVAIL_F_NO_INTERRUPT == 0)
}

impl Device {
    /// A device with `limits`; `fault_injection` enables `IRQSTORM_F_FAULT_INJECT`.
    pub fn new(limits: Limits, fault_injection: bool) -> Self {
        Self {
            limits,
            fault_injection,
            negotiated: 0,
            sources: (0..limits.num_sources).map(|_| Source::new()).collect(),
            pending_order: VecDeque::new(),
            next_seq: 1,
            outstanding: VecDeque::new(),
            mechs: (0..NUM_MECHANISMS).map(|_| Mechanism::default()).collect(),
            clock_diff_base: None,
            c: DeviceCounters::default(),
            fault: None,
            total_unnotified: 0,
            stats_since_ns: now_ns(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Device feature bits offered (device-specific ones only).
    pub fn device_features(&self) -> u64 {
        let mut f = 1u64 << IRQSTORM_F_MODERATION;
        if self.fault_injection {
            f |= 1 << IRQSTORM_F_FAULT_INJECT;
        }
        f
    }

    /// Records the negotiated features.
    pub fn set_negotiated(&mut self, f: u64) {
        self.negotiated = f;
    }

    /// True if nothing happened since the last reset (no record written, no
    /// program configured, nothing latched).
    pub fn is_pristine(&self) -> bool {
        self.next_seq == 1
            && self.pending_order.is_empty()
            && self
                .sources
                .iter()
                .all(|s| s.program.mode == Mode::Off && s.source_seq == 0)
    }

    /// Negotiated features.
    pub fn negotiated(&self) -> u64 {
        self.negotiated
    }

    fn has(&self, bit: u32) -> bool {
        self.negotiated & (1u64 << bit) != 0
    }

    /// The configuration space.
    pub fn config(&self) -> DeviceConfig {
        DeviceConfig {
            num_sources: self.limits.num_sources,
            max_rate_hz: self.limits.max_rate_hz,
            max_outstanding: self.limits.max_outstanding,
            min_period_ns: self.limits.min_period_ns,
            max_burst: self.limits.max_burst,
        }
    }

    /// Device-wide counters.
    pub fn counters(&self) -> DeviceCounters {
        self.c
    }

    /// Counters of one source.
    pub fn source_counters(&self, s: u16) -> Option<SourceCounters> {
        self.sources.get(usize::from(s)).map(|x| x.c)
    }

    /// Raises latched on a source now.
    pub fn pending(&self, s: u16) -> u64 {
        self.sources
            .get(usize::from(s))
            .map_or(0, |x| x.latch.pending)
    }

    /// Whether written records wait for a moderated notification (the
    /// generator then has a moderation deadline).
    pub fn has_unnotified(&self) -> bool {
        self.total_unnotified > 0
    }

    /// Whether a source is running.
    pub fn is_running(&self, s: u16) -> bool {
        self.sources
            .get(usize::from(s))
            .is_some_and(Source::running)
    }

    /// Conservation check of §5.2 for every source.
    pub fn conservation_holds(&self) -> bool {
        self.sources.iter().all(|s| {
            s.c.raised == s.c.records + s.c.coalesced + s.latch.pending + s.c.dropped_on_reset
        })
    }

    /// Device reset (vhost-user reset or disconnect): stops every source,
    /// counts latched raises in `dropped_on_reset`, forgets programs,
    /// per-source numbers, the outstanding table and pending faults.
    pub fn reset(&mut self) {
        for s in &mut self.sources {
            s.sched = None;
            s.program = Program::default();
            s.c.dropped_on_reset += s.latch.pending;
            s.latch = Latched::default();
            s.source_seq = 0;
            s.unnotified = 0;
            s.oldest_unnotified_ns = None;
        }
        self.pending_order.clear();
        self.outstanding.clear();
        self.next_seq = 1;
        self.fault = None;
        self.total_unnotified = 0;
        self.negotiated = 0;
        self.c.resets += 1;
    }

    /// Zeroes the counters and histograms. Raises still latched stay counted
    /// as raised, so conservation keeps holding.
    pub fn reset_stats(&mut self) {
        for s in &mut self.sources {
            s.c = SourceCounters {
                raised: s.latch.pending,
                ..SourceCounters::default()
            };
            s.lat = None;
        }
        for m in &mut self.mechs {
            *m = Mechanism::default();
        }
        self.clock_diff_base = None;
        self.c = DeviceCounters::default();
        self.stats_since_ns = now_ns();
    }

    // ---------------------------------------------------------------- sources

    /// Validates and stores a program (CONFIGURE). `host` requests skip the
    /// feature-negotiation check for moderation.
    pub fn configure(
        &mut self,
        source: u16,
        body: &crate::protocol::ConfigureBody,
        host: bool,
    ) -> Status {
        let moderation_ok = host || self.has(IRQSTORM_F_MODERATION);
        let Some(s) = self.sources.get(usize::from(source)) else {
            return Status::OutOfRange;
        };
        if s.running() {
            return Status::Busy;
        }
        match Program::validate(body, &self.limits, moderation_ok) {
            Ok(p) => {
                let s = &mut self.sources[usize::from(source)];
                s.program = p;
                s.sched = None;
                Status::Ok
            }
            Err(st) => st,
        }
    }

    fn running_rate(&self) -> u64 {
        self.sources
            .iter()
            .filter(|s| s.running())
            .map(|s| s.program.rate())
            .sum()
    }

    /// Starts one source or all configured ones (START). Returns t0.
    pub fn start(&mut self, source: u16, delay_ns: u64, now: u64) -> Result<u64, Status> {
        if delay_ns > MAX_DELAY_NS {
            return Err(Status::OutOfRange);
        }
        let idx: Vec<usize> = if source == SOURCE_ALL {
            let v: Vec<usize> = (0..self.sources.len())
                .filter(|&i| self.sources[i].program.mode != Mode::Off)
                .collect();
            if v.is_empty() {
                return Err(Status::Invalid);
            }
            v
        } else {
            let i = usize::from(source);
            let Some(s) = self.sources.get(i) else {
                return Err(Status::OutOfRange);
            };
            if s.program.mode == Mode::Off {
                return Err(Status::Invalid);
            }
            vec![i]
        };
        if idx.iter().any(|&i| self.sources[i].running()) {
            return Err(Status::Busy);
        }
        let add: u64 = idx.iter().map(|&i| self.sources[i].program.rate()).sum();
        if self.running_rate() + add > u64::from(self.limits.max_rate_hz) {
            return Err(Status::OutOfRange);
        }
        let t0 = now.saturating_add(delay_ns);
        for i in idx {
            let s = &mut self.sources[i];
            s.sched = Some(Schedule::new(s.program, t0));
        }
        Ok(t0)
    }

    /// Stops one source or all (STOP). Returns the raises so far of the sources named.
    pub fn stop(&mut self, source: u16) -> Result<u64, Status> {
        if source == SOURCE_ALL {
            let mut n = 0;
            for s in &mut self.sources {
                s.sched = None;
                n += s.c.raised;
            }
            Ok(n)
        } else {
            let s = self
                .sources
                .get_mut(usize::from(source))
                .ok_or(Status::OutOfRange)?;
            s.sched = None;
            Ok(s.c.raised)
        }
    }

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

    fn raise(&mut self, src: u16, due: u64, now: u64, final_: bool) {
        let s = &mut self.sources[usize::from(src)];
        s.source_seq += 1;
        s.c.raised += 1;
        if s.latch.pending == 0 {
            s.latch.first_due = due;
            s.latch.first_raise = now;
            s.latch.latched = false;
            self.pending_order.push_back(src);
        }
        s.latch.pending += 1;
        s.latch.last_seq = s.source_seq;
        s.latch.final_ |= final_;
    }

    /// Earliest time the generator must act: a due event or a moderation deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        for s in &self.sources {
            let cand = s.sched.as_ref().and_then(Schedule::next_due);
            let md = s
                .oldest_unnotified_ns
                .map(|o| o.saturating_add(s.program.moderation_delay_ns()));
            for c in [cand, md].into_iter().flatten() {
                t = Some(t.map_or(c, |x: u64| x.min(c)));
            }
        }
        t
    }

    /// Raises every event due at `now` (at most `SERVICE_BUDGET`), writing
    /// records into `q` when it has buffers, and decides about notification.
    pub fn service(
        &mut self,
        now: u64,
        mut q: Option<(&mut Queue, &GuestMemoryMmap)>,
    ) -> QueueOutcome {
        let mut out = QueueOutcome::default();
        let mut notify = false;
        let mut starved = false;
        for _ in 0..SERVICE_BUDGET {
            // The source whose next event is due first.
            let mut best: Option<(u64, u16)> = None;
            for (i, s) in self.sources.iter().enumerate() {
                if let Some(d) = s.sched.as_ref().and_then(Schedule::next_due) {
                    if d <= now && best.is_none_or(|(bd, _)| d < bd) {
                        best = Some((d, i as u16));
                    }
                }
            }
            let Some((_, src)) = best else { break };
            let Some((due, fin)) = self.sources[usize::from(src)]
                .sched
                .as_mut()
                .and_then(Schedule::take)
            else {
                break;
            };
            self.raise(src, due, now, fin);
            if !starved {
                let (n, nf) = self.flush_inner(&mut q, now);
                out.used += n;
                notify |= nf;
                // No buffer left: latch the rest of this pass without
                // touching the ring again; the flush below re-checks.
                starved = !self.pending_order.is_empty();
            }
        }
        let (n, nf) = self.flush_inner(&mut q, now);
        out.used += n;
        notify |= nf;
        out.signal = self.finish_notify(&mut q, notify, now);
        out
    }

    /// Writes latched raises into newly available buffers (eventq kick).
    pub fn flush(
        &mut self,
        now: u64,
        mut q: Option<(&mut Queue, &GuestMemoryMmap)>,
    ) -> QueueOutcome {
        let (used, nf) = self.flush_inner(&mut q, now);
        let signal = self.finish_notify(&mut q, nf, now);
        QueueOutcome { used, signal }
    }

    /// Decides whether to notify: moderation first, then driver suppression.
    fn finish_notify(
        &mut self,
        q: &mut Option<(&mut Queue, &GuestMemoryMmap)>,
        mut notify: bool,
        now: u64,
    ) -> bool {
        if !notify && self.total_unnotified > 0 {
            notify = self.sources.iter().any(|s| {
                s.oldest_unnotified_ns
                    .is_some_and(|o| o.saturating_add(s.program.moderation_delay_ns()) <= now)
            });
        }
        if !notify {
            return false;
        }
        for s in &mut self.sources {
            s.unnotified = 0;
            s.oldest_unnotified_ns = None;
        }
        self.total_unnotified = 0;
        let Some((q, mem)) = q else { return false };
        match driver_wants_interrupt(q, mem) {
            Ok(true) => {
                self.c.notifications += 1;
                true
            }
            Ok(false) => {
                self.c.suppressed += 1;
                false
            }
            Err(_) => {
                self.c.queue_errors += 1;
                false
            }
        }
    }

    /// Writes records for latched raises while buffers are available.
    /// Returns (buffers used, notification wanted by moderation).
    fn flush_inner(
        &mut self,
        q: &mut Option<(&mut Queue, &GuestMemoryMmap)>,
        now: u64,
    ) -> (usize, bool) {
        let mut used = 0usize;
        let mut notify = false;
        let Some((q, mem)) = q else {
            self.mark_latched();
            return (0, false);
        };
        let mem: &GuestMemoryMmap = mem;
        if !q.ready() {
            self.mark_latched();
            return (0, false);
        }
        // True once notifications were re-enabled and no buffer was taken
        // since: a second empty ring then really is empty.
        let mut rechecked = false;
        while !self.pending_order.is_empty() || self.standalone_fault_armed() {
            let chain = next_chain(q, mem, &mut self.c);
            let Some(chain) = chain else {
                // No buffer: ask for a kick when one arrives (with EVENT_IDX this
                // publishes avail_event = next_avail), then re-check for buffers
                // posted meanwhile. Every time the ring runs dry after progress,
                // not just once: a stale avail_event would make the driver
                // suppress its kicks and latched raises would wait forever once
                // the sources stop. Bounded: each retry needs a buffer taken.
                if !rechecked && !self.pending_order.is_empty() {
                    rechecked = true;
                    if let Ok(true) = q.enable_notification(mem) {
                        continue;
                    }
                }
                self.mark_latched();
                break;
            };
            rechecked = false;
            let head = chain.head_index();
            let descs = match collect_chain(chain, mem, MAX_CHAIN_DESCS).and_then(|d| {
                if d.iter().any(|x| !x.2) {
                    Err(ChainError::Direction)
                } else if d.iter().map(|x| u64::from(x.1)).sum::<u64>() < EVENT_SIZE as u64 {
                    Err(ChainError::Length)
                } else {
                    Ok(d)
                }
            }) {
                Ok(d) => d,
                Err(e) => {
                    debug!("eventq: malformed buffer {head}: {e:?}");
                    self.c.malformed_event += 1;
                    add_used(q, mem, head, 0, &mut self.c);
                    used += 1;
                    continue;
                }
            };
            if self.fault.is_some() && self.has(IRQSTORM_F_FAULT_INJECT) {
                if let Some(n) = self.inject_one(q, mem, head, &descs, now) {
                    used += n;
                    notify = true;
                    continue;
                }
            }
            let Some(src) = self.pending_order.pop_front() else {
                // Only reached for a fault that could not be injected: give the buffer back
                // to the avail position it came from.
                q.go_to_previous_position();
                break;
            };
            if let Some(fin) = self.write_record(q, mem, head, &descs, src, now) {
                notify |= self.note_written(src, now) || fin;
            }
            used += 1;
        }
        (used, notify)
    }

    /// A fault that needs no real record is armed (and may be injected).
    fn standalone_fault_armed(&self) -> bool {
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

    fn mark_latched(&mut self) {
        for &s in &self.pending_order {
            self.sources[usize::from(s)].latch.latched = true;
        }
    }

    /// Writes one record for the latched raises of `src` (already popped from
    /// `pending_order`). Returns `Some(final)` if written, `None` if the write
    /// failed (the raises stay latched).
    fn write_record(
        &mut self,
        q: &mut Queue,
        mem: &GuestMemoryMmap,
        head: u16,
        descs: &[(u64, u32, bool)],
        src: u16,
        now: u64,
    ) -> Option<bool> {
        let seq = self.next_seq;
        let l = &self.sources[usize::from(src)].latch;
        let count = u32::try_from(l.pending).unwrap_or(u32::MAX);
        // A latched run longer than u32::MAX raises is split: the rest stays latched.
        let rest = l.pending - u64::from(count);
        let mut flags = 0u16;
        if l.latched || count > 1 {
            flags |= EVT_F_LATCHED;
        }
        if l.final_ && rest == 0 {
            flags |= EVT_F_FINAL;
        }
        let rec = EventRecord {
            seq,
            source_seq: l.last_seq - rest,
            due_ns: l.first_due,
            raise_ns: l.first_raise,
            write_ns: now_ns().max(now),
            count,
            source: src,
            flags,
        };
        if !write_descs(mem, descs, &rec.encode()) {
            // Checked ranges should not fail to write; if one does, count it
            // and keep the raises latched.
            self.c.queue_errors += 1;
            self.pending_order.push_front(src);
            add_used(q, mem, head, 0, &mut self.c);
            return None;
        }
        self.next_seq += 1;
        let s = &mut self.sources[usize::from(src)];
        if rest > 0 {
            s.latch.pending = rest;
            s.latch.latched = true;
            self.pending_order.push_front(src);
        } else {
            s.latch = Latched::default();
        }
        s.c.records += 1;
        s.c.coalesced += u64::from(count.saturating_sub(1));
        if flags & EVT_F_LATCHED != 0 {
            s.c.latched_records += 1;
        }
        add_used(q, mem, head, EVENT_SIZE as u32, &mut self.c);
        if self.limits.max_outstanding > 0 {
            if self.outstanding.len() >= self.limits.max_outstanding as usize {
                if let Some(o) = self.outstanding.pop_front() {
                    if !o.acked {
                        self.c.ack_evicted += 1;
                    }
                }
            }
            self.outstanding.push_back(Outstanding {
                seq,
                source: src,
                raise_ns: rec.raise_ns,
                count,
                acked: false,
            });
        }
        Some(flags & EVT_F_FINAL != 0)
    }

    /// Moderation bookkeeping after a record of `src` was written; returns
    /// whether a notification is due now.
    fn note_written(&mut self, src: u16, now: u64) -> bool {
        let s = &mut self.sources[usize::from(src)];
        if !s.program.moderated() {
            return true;
        }
        s.unnotified += 1;
        self.total_unnotified += 1;
        if s.oldest_unnotified_ns.is_none() {
            s.oldest_unnotified_ns = Some(now);
        }
        s.unnotified >= s.program.moderation_events
    }

    fn inject_one(
        &mut self,
        q: &mut Queue,
        mem: &GuestMemoryMmap,
        head: u16,
        descs: &[(u64, u32, bool)],
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
        let buf_len: u32 = descs.iter().map(|d| d.1).fold(0u32, u32::saturating_add);
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

    // --------------------------------------------------------------- controlq

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
                r.put_u16(16, self.limits.num_sources);
                r.put_u16(18, SPEC_VERSION);
                r.put_u32(20, self.limits.max_rate_hz);
                r.put_u32(24, self.limits.max_outstanding);
                r.put_u32(28, self.limits.min_period_ns);
                r.put_u32(32, self.limits.max_burst);
                r.put_u32(36, self.negotiated as u32);
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
                    Ok(t0) => r.put_u64(16, t0),
                    Err(s) => st(&mut r, s),
                }
            }
            Opcode::Stop => {
                if req.flags != 0 || !req.zero_from(8) {
                    st(&mut r, Status::Invalid);
                    return r;
                }
                match self.stop(req.source) {
                    Ok(n) => r.put_u64(16, n),
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
                r.put_u64(16, sum(&|s| s.c.raised));
                r.put_u64(24, sum(&|s| s.c.records));
                r.put_u64(32, sum(&|s| s.c.coalesced));
                r.put_u64(40, sum(&|s| s.latch.pending));
                r.put_u64(48, sum(&|s| s.c.acked));
                r.put_u64(56, self.c.malformed());
                if req.flags & STATS_F_RESET != 0 {
                    self.reset_stats();
                }
            }
            Opcode::Ping => {
                if req.flags != 0 || !req.zero_from(16) {
                    st(&mut r, Status::Invalid);
                    return r;
                }
                r.put_u64(16, req.arg_u64());
                // host_send_ns is filled in just before the reply goes on the used ring.
            }
        }
        r
    }

    /// Processes every available controlq buffer.
    pub fn process_ctrlq(&mut self, q: &mut Queue, mem: &GuestMemoryMmap) -> CtrlOutcome {
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
            let nread = descs.iter().take_while(|d| !d.2).count();
            let (rd, wr) = descs.split_at(nread);
            let rlen: u64 = rd.iter().map(|d| u64::from(d.1)).sum();
            let wlen: u64 = wr.iter().map(|d| u64::from(d.1)).sum();
            if wr.iter().any(|d| !d.2) || wlen < CTRL_RESP_SIZE as u64 {
                // Readable after writable, or no usable reply buffer.
                self.c.malformed_ctrl += 1;
                add_used(q, mem, head, 0, &mut self.c);
                continue;
            }
            let mut raw = [0u8; CTRL_REQ_SIZE];
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
                                Some(Opcode::Ping) => r.put_u64(24, now_ns()),
                                _ => {}
                            }
                        }
                        r
                    }
                    Err(_) => CtrlResp::new(Status::Invalid, &CtrlReq::new(0, 0, 0), now),
                }
            };
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

    // ------------------------------------------------------------------- ackq

    /// Applies one ack record arriving at `ack_ns`.
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
        let lat = ack_ns.saturating_sub(o.raise_ns);
        if let Some(s) = self.sources.get_mut(usize::from(o.source)) {
            s.c.acked += 1;
            s.c.acked_raises += u64::from(o.count);
            record(&mut s.lat, lat);
        }
        let m = &mut self.mechs[usize::from(a.mechanism)];
        m.acked += 1;
        m.acked_raises += u64::from(o.count);
        record(&mut m.lat, lat);
        if a.bh_start_ns >= a.hardirq_ns && a.hardirq_ns != 0 {
            record(&mut m.bh_delay, a.bh_start_ns - a.hardirq_ns);
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
                let len: u64 = d.iter().map(|x| u64::from(x.1)).sum();
                if d.iter().any(|x| x.2) {
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

    // ------------------------------------------------------------------ stats

    /// Statistics (host control API `stats`).
    pub fn stats(&self, buckets: bool) -> Stats {
        let sources = self
            .sources
            .iter()
            .zip(0u16..)
            .map(|(s, i)| {
                let c = &s.c;
                SourceStats {
                    source: i,
                    mode: s.program.mode,
                    running: s.running(),
                    raised: c.raised,
                    records: c.records,
                    delivered: c.records + c.coalesced,
                    coalesced: c.coalesced,
                    latched_records: c.latched_records,
                    pending: s.latch.pending,
                    dropped_on_reset: c.dropped_on_reset,
                    acked: c.acked,
                    acked_raises: c.acked_raises,
                    source_seq: s.source_seq,
                    conserved: c.raised
                        == c.records + c.coalesced + s.latch.pending + c.dropped_on_reset,
                    latency_ns: hist_stats(&s.lat, buckets),
                }
            })
            .collect();
        let mechanisms = self
            .mechs
            .iter()
            .zip(MECHANISM_NAMES)
            .zip(0u8..)
            .filter(|((m, _), _)| m.acked > 0)
            .map(|((m, name), id)| MechanismStats {
                id,
                name: name.to_string(),
                acked: m.acked,
                acked_raises: m.acked_raises,
                latency_ns: hist_stats(&m.lat, buckets),
                guest_bh_delay_ns: hist_stats(&m.bh_delay, buckets),
                guest_bh_run_ns: hist_stats(&m.bh_run, buckets),
                raw_raise_to_hardirq: Some(RawRaiseToHardirq {
                    base_ns: self.clock_diff_base,
                    below_base: m.raw_below_base,
                    diff_minus_base_ns: hist_stats(&m.raw_raise_to_hardirq, buckets),
                }),
            })
            .collect();
        let tot = |f: &dyn Fn(&Source) -> u64| self.sources.iter().map(f).sum::<u64>();
        Stats {
            since_ns: self.stats_since_ns,
            now_ns: now_ns(),
            negotiated_features: self.negotiated,
            outstanding: self.outstanding.iter().filter(|o| !o.acked).count() as u64,
            totals: Totals {
                raised: tot(&|s| s.c.raised),
                records: tot(&|s| s.c.records),
                delivered: tot(&|s| s.c.records + s.c.coalesced),
                coalesced: tot(&|s| s.c.coalesced),
                pending: tot(&|s| s.latch.pending),
                dropped_on_reset: tot(&|s| s.c.dropped_on_reset),
                acked: tot(&|s| s.c.acked),
                conserved: self.conservation_holds(),
            },
            device: self.c.stats(),
            sources,
            mechanisms,
        }
    }

    /// Logs a one-line summary (used on disconnect).
    pub fn log_summary(&self) {
        let raised: u64 = self.sources.iter().map(|s| s.c.raised).sum();
        let records: u64 = self.sources.iter().map(|s| s.c.records).sum();
        if !self.conservation_holds() {
            warn!("conservation violated");
        }
        log::info!(
            "raised {raised} records {records} malformed {} bad_acks {}",
            self.c.malformed(),
            self.c.bad_acks
        );
    }
}

#[cfg(test)]
mod tests {
    use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::split::Descriptor as SplitDescriptor;
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::GuestAddress;

    use super::*;
    use crate::protocol::{ConfigureBody, Jitter, CONFIG_SIZE};

    const LIM: Limits = Limits {
        num_sources: 8,
        max_rate_hz: 500_000,
        max_outstanding: 1024,
        min_period_ns: 2_000,
        max_burst: 1024,
    };
    const T0: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    fn device(extra: u64) -> Device {
        let mut d = Device::new(LIM, true);
        d.set_negotiated((1u64 << VIRTIO_F_VERSION_1) | extra);
        d
    }

    /// Adds one chain of (addr, len, writable) descriptors at descriptor index `at`.
    fn add_chain(vq: &MockSplitQueue<GuestMemoryMmap>, at: u16, descs: &[(u64, u32, bool)]) {
        let n = descs.len();
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(i, &(a, l, w))| {
                let mut f = if w { VRING_DESC_F_WRITE as u16 } else { 0 };
                if i + 1 < n {
                    f |= VRING_DESC_F_NEXT as u16;
                }
                RawDescriptor::from(SplitDescriptor::new(a, l, f, at + i as u16 + 1))
            })
            .collect();
        vq.add_desc_chains(&raw, at).unwrap();
    }

    fn used(vq: &MockSplitQueue<GuestMemoryMmap>, i: u16) -> (u32, u32) {
        let e = vq.used().ring().ref_at(usize::from(i)).unwrap().load();
        (e.id(), e.len())
    }

    fn used_idx(vq: &MockSplitQueue<GuestMemoryMmap>) -> u16 {
        vq.used().idx().load()
    }

    fn read_event(m: &GuestMemoryMmap, addr: u64) -> EventRecord {
        let mut b = [0u8; EVENT_SIZE];
        m.read_slice(&mut b, GuestAddress(addr)).unwrap();
        EventRecord::decode(&b).unwrap()
    }

    fn ctrl_roundtrip(d: &mut Device, req: &CtrlReq) -> (u32, Option<CtrlResp>) {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        m.write_slice(&req.raw, GuestAddress(0x1000)).unwrap();
        add_chain(&vq, 0, &[(0x1000, 64, false), (0x2000, 64, true)]);
        let mut q: Queue = vq.create_queue().unwrap();
        let out = d.process_ctrlq(&mut q, &m);
        assert_eq!(out.q.used, 1);
        let (id, len) = used(&vq, 0);
        assert_eq!(id, 0);
        if len == 0 {
            return (0, None);
        }
        let mut b = [0u8; 64];
        m.read_slice(&mut b, GuestAddress(0x2000)).unwrap();
        (len, Some(CtrlResp::decode(&b).unwrap()))
    }

    fn storm(rate: u32, burst: u16) -> ConfigureBody {
        ConfigureBody {
            mode: Mode::Storm as u8,
            rate_hz: rate,
            burst,
            ..Default::default()
        }
    }

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
        assert_eq!(d.counters().malformed(), 0);
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

    #[test]
    fn events_written_one_per_raise() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        for i in 0..4u16 {
            add_chain(&vq, i, &[(0x1000 + u64::from(i) * 0x100, 64, true)]);
        }
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(0);
        assert_eq!(d.configure(1, &storm(1000, 1), false), Status::Ok);
        assert_eq!(d.start(1, 0, T0), Ok(T0));
        assert_eq!(d.next_deadline(), Some(T0 + MS));
        let out = d.service(T0 + 3 * MS, Some((&mut q, &m)));
        assert_eq!(out.used, 3);
        assert!(out.signal);
        assert_eq!(d.next_deadline(), Some(T0 + 4 * MS));
        for i in 0..3u16 {
            assert_eq!(used(&vq, i), (u32::from(i), 48));
            let r = read_event(&m, 0x1000 + u64::from(i) * 0x100);
            assert_eq!(r.seq, u64::from(i) + 1);
            assert_eq!(r.source_seq, u64::from(i) + 1);
            assert_eq!(r.source, 1);
            assert_eq!(r.count, 1);
            assert_eq!(r.flags, 0);
            assert_eq!(r.due_ns, T0 + (u64::from(i) + 1) * MS);
            assert_eq!(r.raise_ns, T0 + 3 * MS);
            assert!(r.write_ns >= r.raise_ns);
        }
        let c = d.source_counters(1).unwrap();
        assert_eq!((c.raised, c.records, c.coalesced), (3, 3, 0));
        assert_eq!(d.counters().notifications, 1);
    }

    #[test]
    fn latching_merges_and_conserves() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(0);
        assert_eq!(d.configure(0, &storm(1000, 1), false), Status::Ok);
        assert_eq!(d.configure(5, &storm(500, 1), false), Status::Ok);
        d.start(SOURCE_ALL, 0, T0).unwrap();
        // No buffers: everything latches.
        let out = d.service(T0 + 5 * MS, Some((&mut q, &m)));
        assert_eq!(out.used, 0);
        assert_eq!(d.pending(0), 5);
        assert_eq!(d.pending(5), 2);
        assert!(d.conservation_holds());
        // Still no buffers, more raises merge.
        d.service(T0 + 6 * MS, Some((&mut q, &m)));
        assert_eq!(d.pending(0), 6);
        assert_eq!(d.pending(5), 3);
        // One buffer: the oldest latched source gets it.
        add_chain(&vq, 0, &[(0x1000, 48, true)]);
        let out = d.flush(T0 + 6 * MS, Some((&mut q, &m)));
        assert_eq!(out.used, 1);
        let r = read_event(&m, 0x1000);
        assert_eq!((r.source, r.count, r.source_seq), (0, 6, 6));
        assert_eq!(r.flags, EVT_F_LATCHED);
        assert_eq!(r.due_ns, T0 + MS);
        assert_eq!(r.raise_ns, T0 + 5 * MS);
        assert_eq!(d.pending(0), 0);
        assert!(d.conservation_holds());
        // A buffer split over two descriptors takes the other source.
        add_chain(&vq, 1, &[(0x2000, 20, true), (0x3000, 28, true)]);
        d.flush(T0 + 6 * MS, Some((&mut q, &m)));
        let mut b = [0u8; 48];
        m.read_slice(&mut b[..20], GuestAddress(0x2000)).unwrap();
        m.read_slice(&mut b[20..], GuestAddress(0x3000)).unwrap();
        let r = EventRecord::decode(&b).unwrap();
        assert_eq!((r.source, r.count, r.source_seq, r.seq), (5, 3, 3, 2));
        let c0 = d.source_counters(0).unwrap();
        assert_eq!((c0.raised, c0.records, c0.coalesced), (6, 1, 5));
        assert!(d.conservation_holds());
        // Reset counts what is still latched.
        d.service(T0 + 8 * MS, Some((&mut q, &m)));
        assert_eq!(d.pending(0), 2);
        d.reset();
        let c0 = d.source_counters(0).unwrap();
        assert_eq!(c0.dropped_on_reset, 2);
        assert!(d.conservation_holds());
        assert!(!d.is_running(0));
        // Reset of the statistics keeps conservation too.
        d.reset_stats();
        assert!(d.conservation_holds());
    }

    #[test]
    fn many_sources_in_due_order_with_continuity() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 256);
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(0);
        for s in 0..8u16 {
            let b = ConfigureBody {
                jitter: Jitter::Exponential as u8,
                seed: u64::from(s) + 1,
                ..storm(10_000 + u32::from(s) * 1000, 1 + s)
            };
            assert_eq!(d.configure(s, &b, false), Status::Ok);
        }
        d.start(SOURCE_ALL, 0, T0).unwrap();
        // 100 buffers, then 20 ms of events: some written, the rest latched.
        for i in 0..100u16 {
            add_chain(&vq, i, &[(0x1_0000 + u64::from(i) * 64, 48, true)]);
        }
        let mut last_due = 0;
        let mut recs = Vec::new();
        for step in 1..=20 {
            d.service(T0 + step * MS, Some((&mut q, &m)));
        }
        for i in 0..used_idx(&vq) {
            let (id, len) = used(&vq, i);
            assert_eq!(len, 48);
            recs.push(read_event(&m, 0x1_0000 + u64::from(id) * 64));
        }
        assert_eq!(recs.len(), 100);
        let mut next = [1u64; 8];
        for r in &recs {
            if r.flags & EVT_F_LATCHED == 0 {
                // Unlatched records come out in due-time order across sources.
                assert!(r.due_ns >= last_due);
                last_due = r.due_ns;
            }
            let s = usize::from(r.source);
            assert_eq!(r.source_seq - u64::from(r.count) + 1, next[s]);
            next[s] = r.source_seq + 1;
        }
        assert!(d.conservation_holds());
        let raised: u64 = (0..8).map(|s| d.source_counters(s).unwrap().raised).sum();
        let pending: u64 = (0..8).map(|s| d.pending(s)).sum();
        let delivered: u64 = recs.iter().map(|r| u64::from(r.count)).sum();
        assert_eq!(raised, delivered + pending);
        assert!(pending > 0);
    }

    /// Random descriptor tables, avail rings and buffer contents: the device
    /// must neither panic nor lose a raise.
    #[test]
    fn garbage_rings_never_panic() {
        let mut rng = crate::schedule::Prng::new(7);
        let mut seen = DeviceCounters::default();
        for round in 0..300u64 {
            let m = mem();
            let vq = MockSplitQueue::new(&m, 16);
            let mut q: Queue = vq.create_queue().unwrap();
            // Random descriptors: addresses mostly near real memory, random
            // flags (NEXT, WRITE, INDIRECT), random next indices.
            for i in 0..16u16 {
                let addr = match rng.next_u64() % 4 {
                    0 => rng.next_u64(),
                    _ => rng.next_u64() % 0x12_0000,
                };
                let len = (rng.next_u64() % 200) as u32;
                let flags = (rng.next_u64() % 8) as u16;
                let next = (rng.next_u64() % 20) as u16;
                let raw = RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next));
                vq.desc_table().store(i, raw).unwrap();
            }
            let n_avail = (rng.next_u64() % 24) as u16;
            for k in 0..16u64 {
                m.write_obj(
                    (rng.next_u64() % 18) as u16,
                    GuestAddress(vq.avail_addr().0 + 4 + 2 * k),
                )
                .unwrap();
            }
            m.write_obj(n_avail, GuestAddress(vq.avail_addr().0 + 2))
                .unwrap();
            for a in (0x1000u64..0x2000).step_by(8) {
                m.write_obj(rng.next_u64(), GuestAddress(a)).unwrap();
            }
            let mut d = device((1 << IRQSTORM_F_FAULT_INJECT) | (1 << 29));
            q.set_event_idx(round % 2 == 0);
            match round % 3 {
                0 => {
                    d.process_ctrlq(&mut q, &m);
                }
                1 => {
                    d.process_ackq(&mut q, &m);
                }
                _ => {
                    d.configure(0, &storm(1000, 4), false);
                    d.start(0, 0, T0).unwrap();
                    if round % 5 == 0 {
                        d.inject(FaultKind::ShortLen, 2).unwrap();
                    }
                    d.service(T0 + 3 * MS, Some((&mut q, &m)));
                    d.flush(T0 + 3 * MS, Some((&mut q, &m)));
                    assert!(d.conservation_holds());
                }
            }
            let c = d.counters();
            seen.malformed_ctrl += c.malformed_ctrl;
            seen.malformed_ack += c.malformed_ack;
            seen.malformed_event += c.malformed_event;
            seen.ctrl_requests += c.ctrl_requests;
            seen.queue_errors += c.queue_errors;
            seen.notifications += c.notifications;
        }
        // The garbage reached every validation path.
        assert!(seen.malformed_ctrl > 0 && seen.malformed_ack > 0 && seen.malformed_event > 0);
        assert!(seen.queue_errors > 0);
    }

    #[test]
    fn malformed_event_buffers_are_returned_and_counted() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        add_chain(&vq, 0, &[(0x1000, 48, false)]); // read-only
        add_chain(&vq, 1, &[(0x1000, 47, true)]); // short
        add_chain(&vq, 2, &[(0x7fff_0000, 48, true)]); // outside memory
        add_chain(
            &vq,
            3,
            &[
                (0x1000, 10, true),
                (0x1100, 10, true),
                (0x1200, 10, true),
                (0x1300, 10, true),
                (0x1400, 10, true),
            ],
        ); // 5 descriptors
        add_chain(&vq, 8, &[(0x2000, 48, true)]);
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(0);
        d.configure(0, &storm(1000, 1), false);
        d.start(0, 0, T0).unwrap();
        let out = d.service(T0 + MS, Some((&mut q, &m)));
        assert_eq!(out.used, 5);
        assert_eq!(
            (0..5).map(|i| used(&vq, i)).collect::<Vec<_>>(),
            vec![(0, 0), (1, 0), (2, 0), (3, 0), (8, 48)]
        );
        assert_eq!(d.counters().malformed_event, 4);
        assert_eq!(read_event(&m, 0x2000).source_seq, 1);
        assert!(d.conservation_holds());
    }

    #[test]
    fn final_flag_and_oneshot() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        add_chain(&vq, 0, &[(0x1000, 48, true)]);
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(0);
        let b = ConfigureBody {
            mode: Mode::Oneshot as u8,
            period_ns: 7,
            ..Default::default()
        };
        assert_eq!(d.configure(3, &b, false), Status::Ok);
        d.start(3, 0, T0).unwrap();
        assert_eq!(d.next_deadline(), Some(T0 + 7));
        let out = d.service(T0 + 7, Some((&mut q, &m)));
        assert_eq!(out.used, 1);
        let r = read_event(&m, 0x1000);
        assert_eq!(r.flags, EVT_F_FINAL);
        assert_eq!(r.due_ns, T0 + 7);
        assert!(!d.is_running(3));
        assert_eq!(d.next_deadline(), None);
    }

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
        let b1 = ack_bytes(&[ack(&r1, 4), ack(&r1, 4), wrong, ack(&r2, 14)]);
        aq_mem.write_slice(&b1, GuestAddress(0x1000)).unwrap();
        add_chain(&avq, 0, &[(0x1000, b1.len() as u32, false)]);
        let b2 = ack_bytes(&[ack(&r2, 1)]);
        aq_mem.write_slice(&b2, GuestAddress(0x2000)).unwrap();
        add_chain(&avq, 1, &[(0x2000, 16, false), (0x2010, 32, false)]);
        add_chain(&avq, 3, &[(0x2000, 47, false)]); // not a multiple of 48
        add_chain(&avq, 4, &[(0x2000, 48, true)]); // writable
        add_chain(&avq, 5, &[(0x2000, 48 * 65, false)]); // too many records
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

    /// Writes `used_event` (the word after the avail ring) of a queue of `size`.
    fn set_used_event(
        m: &GuestMemoryMmap,
        vq: &MockSplitQueue<GuestMemoryMmap>,
        size: u64,
        v: u16,
    ) {
        m.write_obj(v, GuestAddress(vq.avail_addr().0 + 4 + 2 * size))
            .unwrap();
    }

    #[test]
    fn event_idx_on_suppresses_until_used_event() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        for i in 0..4u16 {
            add_chain(&vq, i, &[(0x1000 + u64::from(i) * 0x100, 48, true)]);
        }
        let mut q: Queue = vq.create_queue().unwrap();
        // MockSplitQueue places the used ring over the avail ring's used_event
        // word; move the used ring out of the way for this test.
        q.set_used_ring_address(Some(0x800), Some(0));
        q.set_event_idx(true);
        // The driver wants an interrupt only after used index passes 2.
        set_used_event(&m, &vq, 16, 2);
        let mut d = device(1 << 29);
        d.configure(0, &storm(1000, 1), false);
        d.start(0, 0, T0).unwrap();
        let out = d.service(T0 + MS, Some((&mut q, &m)));
        assert_eq!((out.used, out.signal), (1, false));
        assert_eq!(d.counters().suppressed, 1);
        let out = d.service(T0 + 3 * MS, Some((&mut q, &m)));
        assert_eq!((out.used, out.signal), (2, true));
        assert_eq!(d.counters().notifications, 1);
    }

    #[test]
    fn event_idx_off_honours_no_interrupt() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        for i in 0..4u16 {
            add_chain(&vq, i, &[(0x1000 + u64::from(i) * 0x100, 48, true)]);
        }
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(0);
        d.configure(0, &storm(1000, 1), false);
        d.start(0, 0, T0).unwrap();
        // VRING_AVAIL_F_NO_INTERRUPT
        m.write_obj(1u16, vq.avail_addr()).unwrap();
        let out = d.service(T0 + MS, Some((&mut q, &m)));
        assert_eq!((out.used, out.signal), (1, false));
        assert_eq!(d.counters().suppressed, 1);
        m.write_obj(0u16, vq.avail_addr()).unwrap();
        let out = d.service(T0 + 2 * MS, Some((&mut q, &m)));
        assert_eq!((out.used, out.signal), (1, true));
    }

    #[test]
    fn moderation_batches_notifications() {
        let m = mem();
        let vq = MockSplitQueue::new(&m, 16);
        for i in 0..8u16 {
            add_chain(&vq, i, &[(0x1000 + u64::from(i) * 0x100, 48, true)]);
        }
        let mut q: Queue = vq.create_queue().unwrap();
        let mut d = device(1 << IRQSTORM_F_MODERATION);
        let mut b = storm(1000, 1);
        b.moderation_events = 3;
        b.moderation_delay_us = 10_000;
        assert_eq!(d.configure(0, &b, false), Status::Ok);
        d.start(0, 0, T0).unwrap();
        let mut signals = vec![];
        for k in 1..=4 {
            signals.push(d.service(T0 + k * MS, Some((&mut q, &m))).signal);
        }
        assert_eq!(signals, vec![false, false, true, false]);
        // Record 4 waits; the delay bound is a deadline for the generator.
        assert_eq!(d.next_deadline(), Some(T0 + 5 * MS));
        d.stop(0).unwrap();
        assert_eq!(d.next_deadline(), Some(T0 + 4 * MS + 10 * MS));
        let out = d.service(T0 + 14 * MS, Some((&mut q, &m)));
        assert_eq!((out.used, out.signal), (0, true));
        assert_eq!(d.next_deadline(), None);
    }

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
