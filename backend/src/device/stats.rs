// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Histograms and the host control API's `stats` reply.

use hdrhistogram::Histogram;
use log::warn;

use crate::protocol::MECHANISM_NAMES;

use irqstorm_protocol::stats::{
    CpuStats, Hist, HistSummary, LatenessStats, MechanismStats, RawRaiseToHardirq, SourceStats,
    Stats, Totals,
};

use super::{now_ns, Device, Source};

/// Histogram range: 1 ns .. 60 s, 3 significant digits.
const HIST_MAX_NS: u64 = 60_000_000_000;

/// CPUs counted one by one; an ack naming one at or above is counted
/// `beyond_limit` (the CPU ids are the driver's word).
pub(super) const MAX_CPUS: usize = 256;

/// Requested delays kept apart per mechanism; the runs of any further
/// delay share one entry, `delay_us` = `u32::MAX` (counted, not lost).
pub(super) const MAX_DELAYS: usize = 16;

/// Lateness of a delay mechanism's runs, by requested delay.
#[derive(Debug, Default)]
pub(super) struct LatenessAcc {
    by_delay: Vec<(u32, Option<Histogram<u64>>, u64)>,
}

impl LatenessAcc {
    /// A run asked for `delay_us`, armed at `armed_ns`, started at `start_ns`.
    pub(super) fn record(&mut self, delay_us: u32, armed_ns: u64, start_ns: u64) {
        let key = if self.by_delay.iter().any(|(d, _, _)| *d == delay_us)
            || self.by_delay.len() < MAX_DELAYS - 1
        {
            delay_us
        } else {
            u32::MAX
        };
        let i = match self.by_delay.iter().position(|(d, _, _)| *d == key) {
            Some(i) => i,
            None => {
                self.by_delay.push((key, None, 0));
                self.by_delay.len() - 1
            }
        };
        let due = armed_ns.saturating_add(u64::from(delay_us) * 1000);
        let e = &mut self.by_delay[i];
        match start_ns.checked_sub(due) {
            Some(late) => record(&mut e.1, late),
            None => e.2 += 1,
        }
    }

    pub(super) fn stats(&self, buckets: bool) -> Vec<LatenessStats> {
        let mut v: Vec<LatenessStats> = self
            .by_delay
            .iter()
            .map(|(d, h, early)| LatenessStats {
                delay_us: *d,
                lateness_ns: hist_stats(h, buckets),
                early: *early,
            })
            .collect();
        v.sort_by_key(|l| l.delay_us);
        v
    }
}

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
                lateness: m.lateness.stats(buckets),
                cancelled: m.cancelled,
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

    #[test]
    fn lateness_by_requested_delay() {
        let mut l = LatenessAcc::default();
        // Asked for 1 ms at t=10 us: started 1.5 ms later (0.5 ms late).
        l.record(1000, 10_000, 1_510_000);
        l.record(1000, 10_000, 1_010_000);
        // Started before its 100 us had passed: early, counted apart.
        l.record(100, 10_000, 50_000);
        let s = l.stats(false);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].delay_us, s[0].early, s[0].lateness_ns.count),
            (100, 1, 0)
        );
        assert_eq!((s[1].delay_us, s[1].lateness_ns.count), (1000, 2));
        let sum = s[1].lateness_ns.summary.unwrap();
        assert!(sum.max.abs_diff(500_000) <= 500 && sum.min == 1, "{sum:?}");
        // Past MAX_DELAYS distinct delays the rest share one entry.
        for d in 0..40u32 {
            l.record(d + 5000, 0, 1 << 40);
        }
        let s = l.stats(false);
        assert_eq!(s.len(), MAX_DELAYS);
        let other = s.last().unwrap();
        assert_eq!(other.delay_us, u32::MAX);
        let total: u64 = s.iter().map(|x| x.lateness_ns.count + x.early).sum();
        assert_eq!(total, 43);
    }
}
