//! What the guest's scenario script prints on the console: its debugfs
//! dumps between `IRQSTORM_SC_BEGIN`/`END` markers, PING exchanges and the
//! kernel version.

use irqstorm_report::input::GuestDump;
use irqstorm_report::offset;

/// The text between `IRQSTORM_SC_BEGIN name` and `IRQSTORM_SC_END name`
/// (the last such section of the console).
pub fn section(console: &str, name: &str) -> Option<String> {
    let begin = format!("IRQSTORM_SC_BEGIN {name}");
    let end = format!("IRQSTORM_SC_END {name}");
    let mut out: Option<String> = None;
    let mut cur: Option<String> = None;
    for l in console.lines() {
        if l.trim() == begin {
            cur = Some(String::new());
        } else if l.trim() == end {
            out = cur.take();
        } else if let Some(c) = cur.as_mut() {
            // Kernel messages that reach the console start with "[ time]".
            if !l.starts_with('[') {
                c.push_str(l);
                c.push('\n');
            }
        }
    }
    out
}

/// The device-events summary table of debugfs `stats` (between the
/// `# device events` and `# local` headings).
pub fn device_summary(stats: &str) -> Option<String> {
    let mut on = false;
    let mut out = String::new();
    for l in stats.lines() {
        if l.starts_with("# device events") {
            on = true;
            continue;
        }
        if l.starts_with("# local") {
            break;
        }
        if on {
            out.push_str(l);
            out.push('\n');
        }
    }
    on.then_some(out)
}

/// The guest's debugfs dumps on the console: the device-events summary
/// (of `stats`), the `hist`, `hist_work` and `hist_local` tables.
pub fn guest_dump(console: &str) -> GuestDump {
    GuestDump {
        summary: section(console, "stats")
            .as_deref()
            .and_then(device_summary),
        latency: section(console, "hist"),
        work: section(console, "hist_work"),
        ref_latency: section(console, "hist_local"),
        ref_work: None,
    }
}

/// PING exchanges printed by the guest.
pub fn pings(console: &str) -> Vec<offset::PingSample> {
    console
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("IRQSTORM_SC_PING ")?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            (v.len() == 4).then(|| offset::PingSample {
                t1_guest_send_ns: v[0],
                t2_host_recv_ns: v[1],
                t3_host_send_ns: v[2],
                t4_guest_recv_ns: v[3],
            })
        })
        .collect()
}

/// `7.3.4` from the guest's "Linux version 7.3.4 (...)" boot line.
pub fn kernel_version(console: &str) -> Option<String> {
    console.lines().find_map(|l| {
        let i = l.find("Linux version ")?;
        l[i + 14..].split_whitespace().next().map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::guest_side::PINGS;
    use irqstorm_report::{input, model, scenario as sc};
    use std::path::Path;

    /// The non-kernel console lines of a real `cargo xtask run --scenario
    /// tests/scenarios/impossible.toml` (TCG, 2026-11-22): the guest
    /// script's markers, PINGs and debugfs dumps, as the driver prints them.
    const REAL_CONSOLE: &str = include_str!("../../tests/data/console-impossible.log");

    #[test]
    fn real_console_dump_parses_into_rows() {
        let sc = sc::load(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/impossible.toml"),
        )
        .unwrap();
        let stats = section(REAL_CONSOLE, "stats").expect("stats dump");
        let dump = guest_dump(REAL_CONSOLE);
        assert!(dump.summary.is_some(), "device events table");
        assert!(dump.latency.is_some() && dump.work.is_some() && dump.ref_latency.is_some());
        let mut rows: Vec<model::MechanismResult> = sc
            .mechanisms()
            .iter()
            .map(|m| model::MechanismResult::new(m, None))
            .collect();
        input::apply_guest(&mut rows, &dump.texts()).unwrap();
        // The guest's device-wide counter equals the sum of the rows.
        let records: u64 = stats
            .lines()
            .find_map(|l| l.strip_prefix("records "))
            .and_then(|v| v.trim().parse().ok())
            .expect("records counter");
        let sum: u64 = rows.iter().map(|r| r.guest.unwrap().records).sum();
        assert_eq!(sum, records);
        for r in &rows {
            assert!(r.hardirq_to_bh.is_some(), "{}", r.mechanism);
            assert!(r.bh_run.is_some(), "{}", r.mechanism);
            assert!(r.reference.is_some(), "{}", r.mechanism);
        }
        let p = pings(REAL_CONSOLE);
        assert_eq!(p.len(), 2 * PINGS as usize);
        let est = offset::estimate(&p).unwrap();
        assert!(est.error_bound_ns > 0);
    }

    #[test]
    fn console_sections_and_pings() {
        let console = "x\nIRQSTORM_SC_PING 10 20 25 40\nIRQSTORM_SC_BEGIN stats\n# device events\nmechanism events raises\n[  1.0] kernel says\ntasklet 5 5\n# local reference\nmechanism events raises\nIRQSTORM_SC_END stats\nIRQSTORM_SC_PING 1 2\n";
        let st = section(console, "stats").unwrap();
        assert!(!st.contains("kernel says"));
        let sum = device_summary(&st).unwrap();
        assert_eq!(sum, "mechanism events raises\ntasklet 5 5\n");
        let p = pings(console);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].t3_host_send_ns, 25);
        assert!(section(console, "hist").is_none());
        assert_eq!(
            kernel_version("[    0.000000] Linux version 7.3.4 (root@x) #1\n").as_deref(),
            Some("7.3.4")
        );
    }
}
