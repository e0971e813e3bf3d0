// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The irqstorm device model (docs/device-spec.md §5-§7), one job per file:
//! `sources` (programs, raising, latching), `eventq` (event records and
//! notification), `ctrlq` (control requests), `ackq` (ack accounting and the
//! cross-clock differences), `faults` (fault injection), `chain` (descriptor
//! chains) and `stats` (histograms and the `stats` reply).
//!
//! Everything here works on a `virtio_queue::Queue` and a `GuestMemoryMmap`
//! given by the caller, so the same code runs under the vhost-user daemon, the
//! generator thread, and the unit tests (virtio-queue's `MockSplitQueue`).

mod ackpath;
mod ackq;
mod chain;
mod ctrlq;
mod eventq;
mod faults;
mod sources;
mod stats;
#[cfg(test)]
mod test_util;
mod timebase;

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use thiserror::Error as ThisError;

use crate::protocol::{
    DeviceConfig, IRQSTORM_F_FAULT_INJECT, IRQSTORM_F_MODERATION, NUM_MECHANISMS,
};
use crate::schedule::{Limits, Program, Schedule};

pub use ackpath::{AckPolicy, ACK_POLL_WINDOW_NS};
pub use ctrlq::{run_pending_calibration, PendingCalibration};
pub use stats::hist_stats;

/// Kinds of injected faults (§7): defined with the wire formats.
pub use irqstorm_protocol::wire::FaultKind;

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
    /// Host TSC at the first raise (the TSC time base's raise stamp).
    first_raise_tsc: u64,
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
    /// Guest hardirq -> bottom-half start (every ack: per record).
    bh_delay: Option<Histogram<u64>>,
    /// The same for `ACK_F_FIRST` acks only (per interrupt).
    first_bh_delay: Option<Histogram<u64>>,
    /// Acks with `ACK_F_PAST_BUDGET`.
    past_budget: u64,
    /// Acks with `ACK_F_CANCELLED`.
    cancelled: u64,
    /// Guest bottom-half start -> end.
    bh_run: Option<Histogram<u64>>,
    /// Raw cross-clock differences `hardirq_guest - raise_host - base`
    /// (see [`Device::clock_diff_base`]); the report adds the base and the
    /// estimated host-guest offset to get device-raise -> guest-hardirq.
    raw_raise_to_hardirq: Option<Histogram<u64>>,
    /// Differences that fell below the base (clock drift); counted, not lost.
    raw_below_base: u64,
    /// One-way raise -> hard IRQ on the TSC time base.
    tsc_one_way: timebase::TscOneWayAcc,
    /// CPU placement of its records.
    cpus: stats::CpuCounts,
    /// Delay mechanisms: lateness of each run's first record.
    lateness: stats::LatenessAcc,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    seq: u64,
    source: u16,
    raise_ns: u64,
    raise_tsc: u64,
    count: u32,
    acked: bool,
}

/// Device-wide counters: the `stats` reply's field list, kept live; its
/// `malformed` is derived when read ([`Device::counters`]).
pub use irqstorm_protocol::stats::DeviceStats as DeviceCounters;

/// What a caller must do after a queue operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueOutcome {
    /// Buffers put on the used ring.
    pub used: usize,
    /// Send a used-buffer notification now.
    pub signal: bool,
}

/// Result of a control request, for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtrlOutcome {
    /// Queue outcome.
    pub q: QueueOutcome,
    /// Source programs changed: the generator must recompute its deadline.
    pub wake_generator: bool,
    /// A CALIBRATE to run without the device lock, then answer.
    pub calibrate: Option<ctrlq::PendingCalibration>,
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
    /// The shared TSC time base (§6.1.3).
    tb: timebase::TimeBase,
    /// Host TSC frequency, measured at each calibration (0 before the first).
    tsc_hz: u64,
    /// Kicked or polled acks (§6.4.1).
    acks: ackpath::AckPath,
    /// Bumped by every reset, resume and memory change: work begun before
    /// (a calibration running without the lock) is not answered after.
    ring_epoch: u64,
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
            tb: timebase::TimeBase::default(),
            tsc_hz: 0,
            acks: ackpath::AckPath::default(),
            ring_epoch: 0,
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

    /// Negotiated features.
    pub fn negotiated(&self) -> u64 {
        self.negotiated
    }

    /// Guest memory was replaced (SET_MEM_TABLE): a calibration running on
    /// the old mapping is not answered.
    pub fn memory_changed(&mut self) {
        self.ring_epoch += 1;
    }

    /// The driver negotiated VIRTIO_RING_F_EVENT_IDX.
    pub fn has_event_idx(&self) -> bool {
        self.negotiated & (1 << virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX)
            != 0
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
        self.c.with_malformed()
    }

    /// When the current statistics epoch began: moves on every statistics
    /// reset (`reset_stats`, STATS with `STATS_F_RESET`).
    pub fn stats_since_ns(&self) -> u64 {
        self.stats_since_ns
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
        self.tb.invalidate();
        self.settle_one_way(timebase::Check::Drop);
        self.acks.reset();
        self.ring_epoch += 1;
        self.c.resets += 1;
    }

    /// Counts a front-end stop/start that continued the rings (a VM pause):
    /// the device state was kept (§5.5).
    /// The TSC time base is dropped: QEMU re-bases the guest TSC when the VM
    /// restarts, so the driver must calibrate again.
    pub fn count_resume(&mut self) {
        self.c.resumes += 1;
        self.ring_epoch += 1;
        self.tb.invalidate();
        self.settle_one_way(timebase::Check::Drop);
    }

    /// Settles every mechanism's TSC estimates waiting for a calibration.
    fn settle_one_way(&mut self, check: timebase::Check) {
        for m in &mut self.mechs {
            m.tsc_one_way.settle(check, self.tsc_hz);
        }
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
        self.tb.reset_epoch();
        self.acks.reset_epoch();
        self.c = DeviceCounters::default();
        self.stats_since_ns = now_ns();
    }
}
