//! The back end's ledger at the end of a device-mode run: every raise was
//! delivered, coalesced, is still latched, or was dropped by a device reset
//! (counted), for every source (docs/device-spec.md §5.2).

use std::path::Path;

use irqstorm_protocol::client::{Client, DEFAULT_TIMEOUT};
use irqstorm_protocol::control::{Request, StatsReply};
use irqstorm_protocol::stats::Totals;

/// Fetches device 0's totals from the control socket at `ctl`.
pub fn totals(ctl: &Path) -> Result<Totals, String> {
    let r: StatsReply = Client::connect(ctl, DEFAULT_TIMEOUT)
        .and_then(|mut c| {
            c.call(&Request::Stats {
                device: None,
                buckets: None,
            })
        })
        .map_err(|e| format!("back end stats: {e}"))?;
    Ok(r.stats.totals)
}

/// One line for the run's summary, `Err` when conservation does not hold.
pub fn judge(t: &Totals) -> Result<String, String> {
    let line = format!(
        "back end ledger: raised {} = delivered {} (records {} + coalesced {}) + pending {} + dropped_on_reset {}",
        t.raised, t.delivered, t.records, t.coalesced, t.pending, t.dropped_on_reset
    );
    let sum = t.delivered + t.pending + t.dropped_on_reset;
    if t.conserved && sum == t.raised && t.delivered == t.records + t.coalesced {
        Ok(line)
    } else {
        Err(format!("conservation violated: {line} (sum {sum})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raised: u64, records: u64, coalesced: u64, pending: u64, dropped: u64) -> Totals {
        Totals {
            raised,
            records,
            delivered: records + coalesced,
            coalesced,
            pending,
            dropped_on_reset: dropped,
            acked: 0,
            conserved: raised == records + coalesced + pending + dropped,
        }
    }

    #[test]
    fn the_ledger_must_add_up() {
        assert!(judge(&t(10, 5, 2, 1, 2)).is_ok());
        let e = judge(&t(10, 5, 2, 1, 1)).unwrap_err();
        assert!(
            e.starts_with("conservation violated: back end ledger: raised 10"),
            "{e}"
        );
        // A per-source violation shows in `conserved` even if the sums match.
        let mut x = t(10, 5, 2, 1, 2);
        x.conserved = false;
        assert!(judge(&x).is_err());
    }
}
