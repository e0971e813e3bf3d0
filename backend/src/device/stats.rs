// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Histograms and the host control API's `stats` reply.

use hdrhistogram::Histogram;
use log::warn;

use crate::protocol::MECHANISM_NAMES;

use irqstorm_protocol::stats::{
    CpuStats, Hist, HistSummary, MechanismStats, RawRaiseToHardirq, SourceStats, Stats, Totals,
};

use super::{now_ns, Device, Source};

/// Histogram range: 1 ns .. 60 s, 3 significant digits.
const HIST_MAX_NS: u64 = 60_000_000_000;

/// CPUs counted one by one; an ack naming one at or above is counted
/// `beyond_limit` (the CPU ids are the driver's word).
pub(super) const MAX_CPUS: usize = 256;

/// Acks by hard-IRQ CPU and bottom-half CPU, for one mechanism.
#[derive(Debug, Default)]
pub(super) struct CpuCounts {
    hard: Vec<u64>,
    bh: Vec<u64>,
    cross: u64,
    beyond: u64,
}

impl CpuCounts {
    pub(super) fn record(&mut self, hard: u16, bh: u16) {
        let (h, b) = (usize::from(hard), usize::from(bh));
        if h >= MAX_CPUS || b >= MAX_CPUS {
            self.beyond += 1;
            return;
        }
        for (v, i) in [(&mut self.hard, h), (&mut self.bh, b)] {
            if v.len() <= i {
                v.resize(i + 1, 0);
            }
            v[i] += 1;
        }
        self.cross += u64::from(h != b);
    }

    pub(super) fn stats(&self) -> CpuStats {
        let by = |v: &[u64]| {
            (0u16..)
                .zip(v)
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| (c, *n))
                .collect()
        };
        CpuStats {
            hard: by(&self.hard),
            bh: by(&self.bh),
            cross_cpu: self.cross,
            beyond_limit: self.beyond,
        }
    }
}

pub(super) fn record(h: &mut Option<Histogram<u64>>, v: u64) {
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

impl Device {
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
                guest_irq_to_first_bh_ns: hist_stats(&m.first_bh_delay, buckets),
                past_budget: m.past_budget,
                guest_bh_run_ns: hist_stats(&m.bh_run, buckets),
                raw_raise_to_hardirq: Some(RawRaiseToHardirq {
                    base_ns: self.clock_diff_base,
                    below_base: m.raw_below_base,
                    diff_minus_base_ns: hist_stats(&m.raw_raise_to_hardirq, buckets),
                }),
                raise_to_hardirq_tsc: m.tsc_one_way.stats(buckets),
                cpus: m.cpus.stats(),
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
            device: self.counters(),
            sources,
            mechanisms,
            time_base: Some(self.tb.stats(self.tsc_hz)),
            acks: Some(self.acks.stats()),
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
            self.counters().malformed,
            self.c.bad_acks
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_counts_by_cpu_and_across() {
        let mut c = CpuCounts::default();
        c.record(0, 0);
        c.record(0, 1);
        c.record(1, 1);
        c.record(3, 0);
        // A CPU id past the limit: counted, not indexed.
        c.record(0, u16::MAX);
        let s = c.stats();
        assert_eq!(s.hard, [(0, 2), (1, 1), (3, 1)]);
        assert_eq!(s.bh, [(0, 2), (1, 2)]);
        assert_eq!((s.cross_cpu, s.beyond_limit), (2, 1));
    }
}
