//! The Markdown summary (`summary.md`).

use std::fmt::Write as _;

use super::table::{
    cpu_rows, guest_is_log2, lateness_rows, main_table, one_way_rows, timer_baseline_note,
    timer_baseline_rows, CPU_HEADERS, LATENESS_HEADERS, ONE_WAY_HEADERS, TIMER_BASELINE_HEADERS,
};
use super::{conditions, count_outcomes, effective_checks, fmt_ns};
use crate::model::{Outcome, RunResult};

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Short Markdown summary (verdict, metadata, table, failures, plots).
pub fn markdown(result: &RunResult, plots: &[String]) -> String {
    let m = &result.meta;
    let checks = effective_checks(result);
    let (p, f, s) = count_outcomes(&checks);
    let disturbed = result.interference.as_ref().is_some_and(|i| i.disturbed);
    let verdict = match (f == 0, disturbed) {
        (true, false) => "PASS",
        (true, true) => "PASS (disturbed run: latency thresholds not judged)",
        (false, false) => "FAIL",
        (false, true) => "FAIL (disturbed run: latency thresholds not judged)",
    };
    let mut o = format!("# irqstorm: {} — {verdict}\n\n", md_cell(&m.scenario));
    o.push_str("| | |\n|---|---|\n");
    for (k, v) in [
        ("scenario file", m.scenario_file.clone()),
        ("accelerator", m.accelerator.clone()),
        ("QEMU", m.qemu_version.clone()),
        ("guest kernel", m.kernel_version.clone()),
        ("kernel variant", m.kernel_variant.clone()),
        ("start", m.start_time.clone()),
        ("measured", fmt_ns(m.duration_ns as f64)),
        ("devices", m.devices.join(", ")),
        (
            "checks",
            format!(
                "{p} passed, {f} failed, {s} skipped{}",
                conditions::not_judged_note(&checks)
            ),
        ),
        (
            "disturbed",
            result
                .interference
                .as_ref()
                .filter(|i| i.disturbed)
                .map_or_else(String::new, |i| {
                    format!(
                        "yes: {}; latency thresholds not judged",
                        i.disturbed_reason.as_deref().unwrap_or("-")
                    )
                }),
        ),
    ] {
        if !v.is_empty() {
            let _ = writeln!(o, "| {k} | {} |", md_cell(&v));
        }
    }
    o.push_str("\n## Latency by mechanism (us)\n\n");
    let tlat = !result.baselines.timerlat.is_empty();
    let _ = writeln!(
        o,
        "| mechanism | events | coalesced | raise→ack p50 | p99 | p99.9 | max | hardirq→bh p50 | p99 | max | bh run p50 | max | ×ref |{} ×evfd |",
        if tlat { " ×tlat |" } else { "" }
    );
    let _ = writeln!(
        o,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}---:|",
        if tlat { "---:|" } else { "" }
    );
    md_rows(&mut o, main_table(&result.mechanisms, false).rows);
    let timer = timer_baseline_rows(result);
    if !timer.is_empty() {
        o.push_str(
            "\n## Timer baselines in the guest (µs)\n\n\
             The kernel's timerlat tracer ran in the same guest over the same measured phase \
             (×tlat above: hardirq→bh p99 over timerlat irq→thread p99).\n\n",
        );
        let _ = writeln!(o, "| {} |", TIMER_BASELINE_HEADERS.join(" | "));
        o.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        md_rows(&mut o, timer);
        o.push('\n');
        for l in timer_baseline_note(result).lines() {
            let _ = writeln!(o, "- {l}");
        }
    }
    if guest_is_log2(&result.mechanisms) {
        o.push_str("\nGuest figures (hardirq→bh, bh run) are log2 bucket upper edges.\n");
    }
    let ow = one_way_rows(result);
    if !ow.is_empty() {
        o.push_str(
            "\n## One-way raise→hardirq (µs, ± bound)\n\n\
             Device raise (host) → guest hard IRQ (guest), through the shared TSC \
             time base (method `tsc`: CALIBRATE) or the PING clock-offset estimate \
             (method `ping`); every value is within ± bound of the true latency \
             (docs/clock-offset.md).\n\n",
        );
        let _ = writeln!(o, "| {} |", ONE_WAY_HEADERS.join(" | "));
        o.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        md_rows(&mut o, ow);
    }
    let late = lateness_rows(&result.mechanisms);
    if !late.is_empty() {
        o.push_str(
            "\n## Timer lateness: actual − requested (µs)\n\n\
             Per delay mechanism and requested delay: the first record of each run started this \
             long after its timer, delayed work or sleep was armed plus the delay asked for.\n\n",
        );
        let _ = writeln!(o, "| {} |", LATENESS_HEADERS.join(" | "));
        o.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        md_rows(&mut o, late);
    }
    let cpus = cpu_rows(&result.mechanisms);
    if !cpus.is_empty() {
        o.push_str(
            "\n## CPU placement\n\n\
             Records by the guest CPU of their hard IRQ and the CPU their bottom half began \
             them on (ack record, device spec 6.4).\n\n",
        );
        let _ = writeln!(o, "| {} |", CPU_HEADERS.join(" | "));
        o.push_str("|---|---|---|---:|\n");
        md_rows(&mut o, cpus);
    }
    if f > 0 {
        o.push_str("\n## Failures\n\n");
        for c in checks.iter().filter(|c| c.outcome == Outcome::Fail) {
            let _ = writeln!(o, "- {}", md_cell(&c.message));
        }
    }
    o.push_str(&conditions::markdown_section(
        result.run_conditions.as_ref(),
        result.interference.as_ref(),
    ));
    if !result.clock_offsets.is_empty() {
        o.push_str("\n## Clock offset\n\n");
        for d in &result.clock_offsets {
            let _ = writeln!(
                o,
                "- {}: host − guest = {} ns ± {} ns",
                md_cell(&d.device),
                d.estimate.host_minus_guest_ns,
                d.estimate.error_bound_ns
            );
        }
    }
    if !result.meta.notes.is_empty() {
        o.push_str("\n## Notes\n\n");
        for n in &result.meta.notes {
            let _ = writeln!(o, "- {}", md_cell(n));
        }
    }
    if !plots.is_empty() {
        o.push_str("\n## Plots\n\n");
        for p in plots {
            let _ = writeln!(o, "- [{p}]({p})");
        }
    }
    o
}

/// Appends `rows` as Markdown table rows (cells escaped).
fn md_rows(o: &mut String, rows: impl IntoIterator<Item = Vec<String>>) {
    for r in rows {
        let _ = writeln!(
            o,
            "| {} |",
            r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::sample_result;

    #[test]
    fn markdown_summary_has_verdict_and_rows() {
        let mut r = sample_result();
        let md = markdown(&r, &["cdf-raise_to_ack.svg".into()]);
        assert!(md.starts_with("# irqstorm: demo<&> — PASS"));
        assert!(md.contains("| tasklet | 1000 | 90 |"));
        assert!(md.contains("[cdf-raise_to_ack.svg](cdf-raise_to_ack.svg)"));
        r.mechanisms[0].host.raised = 5;
        let md = markdown(&r, &[]);
        assert!(md.contains("— FAIL"));
        assert!(md.contains("## Failures\n\n- hardirq: conservation violated: raised 5"));
    }
}
