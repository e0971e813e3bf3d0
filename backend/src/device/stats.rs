// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Histograms and the host control API's `stats` reply.

use hdrhistogram::Histogram;
use log::warn;
use serde_json::{json, Value};

use crate::protocol::MECHANISM_NAMES;

use super::{now_ns, Device, Source};

/// Histogram range: 1 ns .. 60 s, 3 significant digits.
const HIST_MAX_NS: u64 = 60_000_000_000;

pub(super) fn record(h: &mut Option<Histogram<u64>>, v: u64) {
    if h.is_none() {
        // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2*low, sigfig <= 5).
        *h = Histogram::new_with_bounds(1, HIST_MAX_NS, 3).ok();
    }
    if let Some(h) = h {
        h.saturating_record(v.max(1));
    }
}

/// Summary of a histogram as JSON (count, min, p50, p90, p99, p99.9, max, mean).
pub fn hist_json(h: &Option<Histogram<u64>>, buckets: bool) -> Value {
    match h {
        None => json!({"count": 0}),
        Some(h) if h.is_empty() => json!({"count": 0}),
        Some(h) => {
            let mut v = json!({
                "count": h.len(),
                "min": h.min(),
                "p50": h.value_at_quantile(0.5),
                "p90": h.value_at_quantile(0.9),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
                "mean": h.mean(),
            });
            if buckets {
                let b: Vec<Value> = h
                    .iter_recorded()
                    .map(|x| json!([x.value_iterated_to(), x.count_at_value()]))
                    .collect();
                v["buckets"] = Value::Array(b);
            }
            v
        }
    }
}

impl Device {
    /// Statistics as JSON (host control API `stats`).
    pub fn stats_json(&self, buckets: bool) -> Value {
        let sources: Vec<Value> = self
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({
                    "source": i,
                    "mode": s.program.mode.name(),
                    "running": s.running(),
                    "raised": s.c.raised,
                    "records": s.c.records,
                    "delivered": s.c.records + s.c.coalesced,
                    "coalesced": s.c.coalesced,
                    "latched_records": s.c.latched_records,
                    "pending": s.latch.pending,
                    "dropped_on_reset": s.c.dropped_on_reset,
                    "acked": s.c.acked,
                    "acked_raises": s.c.acked_raises,
                    "source_seq": s.source_seq,
                    "conserved": s.c.raised == s.c.records + s.c.coalesced + s.latch.pending + s.c.dropped_on_reset,
                    "latency_ns": hist_json(&s.lat, buckets),
                })
            })
            .collect();
        let mechs: Vec<Value> = self
            .mechs
            .iter()
            .enumerate()
            .filter(|(_, m)| m.acked > 0)
            .map(|(i, m)| {
                json!({
                    "id": i,
                    "name": MECHANISM_NAMES[i],
                    "acked": m.acked,
                    "acked_raises": m.acked_raises,
                    "latency_ns": hist_json(&m.lat, buckets),
                    "guest_bh_delay_ns": hist_json(&m.bh_delay, buckets),
                    "guest_bh_run_ns": hist_json(&m.bh_run, buckets),
                    "raw_raise_to_hardirq": {
                        "base_ns": self.clock_diff_base,
                        "below_base": m.raw_below_base,
                        "diff_minus_base_ns": hist_json(&m.raw_raise_to_hardirq, buckets),
                    },
                })
            })
            .collect();
        let tot = |f: &dyn Fn(&Source) -> u64| self.sources.iter().map(f).sum::<u64>();
        let mut c = serde_json::to_value(self.c).unwrap_or(Value::Null);
        c["malformed"] = json!(self.c.malformed());
        json!({
            "since_ns": self.stats_since_ns,
            "now_ns": now_ns(),
            "negotiated_features": self.negotiated,
            "outstanding": self.outstanding.iter().filter(|o| !o.acked).count(),
            "totals": {
                "raised": tot(&|s| s.c.raised),
                "records": tot(&|s| s.c.records),
                "delivered": tot(&|s| s.c.records + s.c.coalesced),
                "coalesced": tot(&|s| s.c.coalesced),
                "pending": tot(&|s| s.latch.pending),
                "dropped_on_reset": tot(&|s| s.c.dropped_on_reset),
                "acked": tot(&|s| s.c.acked),
                "conserved": self.conservation_holds(),
            },
            "device": c,
            "sources": sources,
            "mechanisms": mechs,
        })
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
