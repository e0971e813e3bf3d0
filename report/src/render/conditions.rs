//! The interference and run-conditions lines of the table header and the
//! "Run conditions" section of `summary.md`.

use std::fmt::Write as _;

use super::fmt_ns;
use crate::gate::is_not_judged;
use crate::model::{Check, GuestConditions, Interference, RunConditions};

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn loadavg(l: &[f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
}

/// `interference: vCPU wait max 3.2 % (CPU 1/TCG of irqstorm0, limit
/// 5.0 %) | back end 41.0 % of a core, 38.1 us per event | host busy 87.0 %
/// of 2 cores, load 2.15`, and a `DISTURBED` line when it is.
pub(super) fn interference_lines(i: &Interference) -> String {
    let mut parts = Vec::new();
    match i.worst_vcpu() {
        Some(v) => parts.push(format!(
            "vCPU wait max {} ({} of {}{})",
            pct(v.wait_share),
            v.name,
            v.device,
            i.max_vcpu_wait_share_limit
                .map_or_else(String::new, |l| format!(", limit {}", pct(l)))
        )),
        None => parts.push("vCPU wait not measured (no vCPU thread found)".into()),
    }
    if let Some(b) = &i.backend {
        parts.push(format!(
            "back end {} of a core, {} per event",
            pct(b.cpu_share),
            b.cpu_ns_per_event.map_or("-".into(), fmt_ns)
        ));
    }
    if let Some(f) = &i.wake_floor {
        parts.push(format!(
            "host wake-up floor {} per wake-up ({} Hz probe)",
            f.cpu_ns_per_wake.map_or("-".into(), fmt_ns),
            f.hz
        ));
    }
    parts.push(format!(
        "host busy {} of {} cores, load {:.2}",
        pct(i.host.busy_share),
        i.host_cores,
        i.host.loadavg_end[0]
    ));
    let mut s = format!("interference: {}\n", parts.join(" | "));
    if let Some(r) = i.disturbed_reason.as_deref().filter(|_| i.disturbed) {
        let _ = writeln!(s, "DISTURBED: {r}; latency thresholds not judged");
    }
    s
}

/// `, irq 24 -> CPUs 0-1 (effective 1), HZ 250`, or what of it was recorded.
fn irq(g: &GuestConditions) -> String {
    let mut s = g
        .irq
        .as_ref()
        .map(|i| format!(", {}", i.describe()))
        .unwrap_or_default();
    if let Some(hz) = g.hz {
        s.push_str(&format!(", HZ {hz}"));
    }
    if let Some(p) = &g.user_reader {
        s.push_str(&format!(", user reader irqstorm-wait at {p}"));
    }
    s
}

fn tsc_flags(g: &GuestConditions) -> String {
    if g.tsc_flags.is_empty() {
        return "-".into();
    }
    let (has, not): (Vec<_>, Vec<_>) = g.tsc_flags.iter().partition(|f| f.present);
    let names = |v: Vec<&crate::model::CpuFlag>| {
        v.iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match (has.is_empty(), not.is_empty()) {
        (_, true) => names(has),
        (true, false) => format!("none of {}", names(not)),
        (false, false) => format!("{} (no {})", names(has), names(not)),
    }
}

fn clocksource(g: &GuestConditions) -> String {
    let now = g.clocksource.as_deref().unwrap_or("-");
    match &g.clocksource_at_start {
        Some(s) => format!("{now} (was {s} at set-up)"),
        None => now.into(),
    }
}

/// `conditions: tcg, 2 vCPUs, 2 host cores (Intel Xeon) | back end
/// --spin-us default | guest irqstorm0: clocksource tsc, TSC flags tsc
/// rdtscp (no constant_tsc ...) | time base ping`
pub(super) fn conditions_line(c: &RunConditions) -> String {
    let mut parts = vec![format!(
        "{}, {} vCPUs, {} host cores ({})",
        c.accelerator,
        c.vcpus.map_or("?".into(), |v| v.to_string()),
        c.host_cores,
        if c.host_cpu_model.is_empty() {
            "-"
        } else {
            &c.host_cpu_model
        }
    )];
    parts.push(format!("back end {}", spin(c)));
    for g in &c.guests {
        parts.push(format!(
            "guest {}: clocksource {}, TSC flags {}{}",
            g.device,
            clocksource(g),
            tsc_flags(g),
            irq(g)
        ));
    }
    parts.push(format!("time base {}", time_base(c)));
    format!("conditions: {}\n", parts.join(" | "))
}

/// The spin window: what the back end chose (and why) when it said so,
/// else the flag given.
fn spin(c: &RunConditions) -> String {
    match &c.backend_spin {
        Some(s) => format!("spin {} us (--spin-us {}: {})", s.us, s.requested, s.reason),
        None => format!(
            "--spin-us {}",
            c.backend_spin_us.as_deref().unwrap_or("default")
        ),
    }
}

/// The time base and its widest bound.
fn time_base(c: &RunConditions) -> String {
    let t = &c.time_base;
    let every = match t.calibrate_every_ms {
        Some(ms) if t.method.contains("tsc") => format!(", calibrated every {ms} ms"),
        _ => String::new(),
    };
    // Why a TSC bound is wide, where the cause is known (docs/clock-offset.md):
    // under TCG two vCPU threads reading the TSC at once step QEMU's tick ratchet.
    let why = match (t.error_bound_ns, c.vcpus) {
        (Some(b), Some(n))
            if b > RATCHET_HINT_NS
                && n > 1
                && t.method.contains("tsc")
                && c.accelerator == "tcg" =>
        {
            format!(
                "; TCG with {n} vCPUs: QEMU's tick ratchet moves the guest TSC when two read it at \
                 once, docs/clock-offset.md"
            )
        }
        _ => String::new(),
    };
    match t.error_bound_ns {
        Some(b) => format!("{} (+/- {b} ns at most{every}{why})", t.method),
        None => format!("{}{every}", t.method),
    }
}

/// A TSC bound above this under TCG with several vCPUs gets the ratchet's
/// explanation (with one vCPU bounds stay near 100 ns).
const RATCHET_HINT_NS: u64 = 1000;

/// `" (2 not judged: disturbed run)"` or nothing.
pub(super) fn not_judged_note(checks: &[Check]) -> String {
    match checks.iter().filter(|c| is_not_judged(c)).count() {
        0 => String::new(),
        n => format!(" ({n} not judged: disturbed run)"),
    }
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

/// An argument vector as one shell command line (words quoted when needed).
fn shell_words(v: &[String]) -> String {
    v.iter()
        .map(|a| {
            let plain = a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
            if plain && !a.is_empty() {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn argv(v: &[String]) -> String {
    code(&md(&shell_words(v)))
}

/// The "Run conditions" section of `summary.md` (empty when neither was
/// recorded).
pub(super) fn markdown_section(c: Option<&RunConditions>, i: Option<&Interference>) -> String {
    if c.is_none() && i.is_none() {
        return String::new();
    }
    let mut o = String::from("\n## Run conditions\n\n| | |\n|---|---|\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(o, "| {k} | {v} |");
    };
    if let Some(c) = c {
        row("accelerator", md(&c.accelerator));
        row("vCPUs", c.vcpus.map_or("-".into(), |v| v.to_string()));
        row("host cores", c.host_cores.to_string());
        row("host CPU", md(&c.host_cpu_model));
        row("back end", argv(&c.backend_argv));
        row("back end spin", md(&spin(c)));
        for g in &c.guests {
            row(&format!("QEMU ({})", md(&g.device)), argv(&g.qemu_argv));
            row(
                &format!("guest {}", md(&g.device)),
                md(&format!(
                    "{} CPUs, clocksource {}, TSC flags {}{}",
                    g.cpus.map_or("?".into(), |n| n.to_string()),
                    clocksource(g),
                    tsc_flags(g),
                    irq(g)
                )),
            );
        }
        row("time base", md(&time_base(c)));
    }
    if let Some(i) = i {
        row("measured phase (wall)", fmt_ns(i.phase_ns as f64));
        row(
            "max vCPU wait share",
            i.max_vcpu_wait_share.map_or("-".into(), pct)
                + &i.max_vcpu_wait_share_limit
                    .map_or_else(String::new, |l| format!(" (limit {})", pct(l))),
        );
        row(
            "disturbed",
            match (&i.disturbed_reason, i.disturbed) {
                (Some(r), true) => format!("**yes**: {}", md(r)),
                _ => "no".into(),
            },
        );
        for v in &i.vcpus {
            row(
                &format!("vCPU {} ({}, tid {})", md(&v.name), md(&v.device), v.tid),
                format!(
                    "waited {} ({}), ran {}, {} timeslices",
                    fmt_ns(v.wait_ns as f64),
                    pct(v.wait_share),
                    fmt_ns(v.cpu_ns as f64),
                    v.timeslices
                ),
            );
        }
        if let Some(b) = &i.backend {
            row(
                "back end CPU",
                format!(
                    "{} over {} threads ({} of a core), {} delivered events, {} per event",
                    fmt_ns(b.cpu_ns as f64),
                    b.threads,
                    pct(b.cpu_share),
                    b.delivered_events,
                    b.cpu_ns_per_event.map_or("-".into(), fmt_ns)
                ),
            );
        }
        if let Some(f) = &i.wake_floor {
            row(
                "host wake-up floor",
                format!(
                    "{} per wake-up: a {} Hz timerfd thread writing an eventfd another thread \
                     waits on, {} wake-ups, {} CPU, {} timeslices",
                    f.cpu_ns_per_wake.map_or("-".into(), fmt_ns),
                    f.hz,
                    f.wakes,
                    fmt_ns(f.cpu_ns as f64),
                    f.timeslices
                ),
            );
        }
        row(
            "host busy",
            format!(
                "{} (per core: {})",
                pct(i.host.busy_share),
                i.host
                    .busy_share_per_core
                    .iter()
                    .map(|x| pct(*x))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        row(
            "host load",
            format!(
                "{} at start, {} at end",
                loadavg(&i.host.loadavg_start),
                loadavg(&i.host.loadavg_end)
            ),
        );
        for n in &i.notes {
            row("note", md(n));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use crate::model::{
        BackendCpu, CpuFlag, GuestConditions, HostLoad, Interference, RunConditions, RunResult,
        TimeBase, VcpuInterference,
    };
    use crate::render::tests::sample_result;
    use crate::render::{junit, markdown, table};

    fn with_conditions(wait_share: f64) -> RunResult {
        let mut r = sample_result();
        let phase_ns = 3_000_000_000;
        r.interference = Some(Interference {
            phase_ns,
            host_cores: 2,
            vcpus: [0.01, wait_share]
                .iter()
                .enumerate()
                .map(|(k, s)| VcpuInterference {
                    device: "irqstorm0".into(),
                    qemu_pid: 10,
                    tid: 11 + k as u32,
                    name: format!("CPU {k}/TCG"),
                    cpu_ns: 1_000_000_000,
                    wait_ns: (s * phase_ns as f64) as u64,
                    timeslices: 500,
                    wait_share: *s,
                })
                .collect(),
            max_vcpu_wait_share: Some(wait_share),
            backend: Some(BackendCpu {
                pid: 9,
                threads: 4,
                cpu_ns: 1_200_000_000,
                wait_ns: 5_000_000,
                cpu_share: 0.4,
                delivered_events: 30_000,
                cpu_ns_per_event: Some(40_000.0),
                ..Default::default()
            }),
            host: HostLoad {
                loadavg_start: [1.0, 0.5, 0.25],
                loadavg_end: [2.15, 1.0, 0.5],
                busy_share_per_core: vec![0.9, 0.8],
                busy_share: 0.85,
            },
            ..Default::default()
        });
        r.run_conditions = Some(RunConditions {
            backend_argv: vec!["irqstorm-backend".into(), "--spin-us=0".into()],
            backend_spin_us: Some("0".into()),
            backend_spin: Some(irqstorm_protocol::control::SpinInfo {
                requested: "0".into(),
                us: 0,
                reason: "given".into(),
            }),
            accelerator: "tcg".into(),
            vcpus: Some(2),
            host_cores: 2,
            host_cpu_model: "Intel(R) Xeon(R) Processor".into(),
            guests: vec![GuestConditions {
                device: "irqstorm0".into(),
                qemu_argv: vec!["qemu".into(), "-append".into(), "console=ttyS0 a|b".into()],
                cpus: Some(2),
                clocksource: Some("tsc".into()),
                clocksource_at_start: Some("tsc-early".into()),
                tsc_flags: ["tsc", "constant_tsc", "rdtscp"]
                    .iter()
                    .map(|n| CpuFlag {
                        name: n.to_string(),
                        present: *n != "constant_tsc",
                    })
                    .collect(),
                irq: Some(crate::model::IrqPlacement {
                    irq: 24,
                    affinity: "1".into(),
                    effective: "1".into(),
                }),
                hz: Some(250),
                user_reader: None,
            }],
            time_base: TimeBase {
                method: "tsc".into(),
                error_bound_ns: Some(63),
                calibrate_every_ms: Some(100),
            },
        });
        r
    }

    const GATED: &str = "name = \"demo\"\nduration_ms = 100\n[[sources]]\nid = 0\nmechanism = \"tasklet\"\nprogram = { mode = \"periodic\", period_us = 1000 }\n[[thresholds]]\nmechanism = \"*\"\nfigure = \"raise_to_ack.p99\"\nmax = \"10s\"\n";

    #[test]
    fn header_lines_name_conditions_and_interference() {
        let mut r = with_conditions(0.02);
        let s = crate::scenario::parse(GATED, "g").unwrap();
        crate::gate::apply(&s, &mut r);
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("irqstorm: scenario demo<&>"));
        assert_eq!(
            lines[1],
            "conditions: tcg, 2 vCPUs, 2 host cores (Intel(R) Xeon(R) Processor) | back end \
             spin 0 us (--spin-us 0: given) | guest irqstorm0: clocksource tsc (was tsc-early at \
             set-up), TSC flags tsc rdtscp (no constant_tsc), irq 24 -> CPUs 1 (effective 1), HZ 250 | \
             time base tsc (+/- 63 ns at most, calibrated every 100 ms)"
        );
        assert_eq!(
            lines[2],
            "interference: vCPU wait max 2.0 % (CPU 1/TCG of irqstorm0, limit 5.0 %) | back end \
             40.0 % of a core, 40.0 us per event | host busy 85.0 % of 2 cores, load 2.15"
        );
        assert_eq!(lines[3], "");
        assert!(!t.contains("DISTURBED") && !t.contains("not judged"), "{t}");
        let md = markdown(&r, &[]);
        assert!(md.contains("\n## Run conditions\n"), "{md}");
        assert!(
            md.contains("| QEMU (irqstorm0) | `qemu -append 'console=ttyS0 a\\|b'` |"),
            "{md}"
        );
        assert!(md.contains("| back end CPU | 1.20 s over 4 threads (40.0 % of a core), 30000 delivered events, 40.0 us per event |"), "{md}");
        assert!(md.contains("| disturbed | no |"), "{md}");
        assert!(
            md.contains("| host busy | 85.0 % (per core: 90.0 %, 80.0 %) |"),
            "{md}"
        );
    }

    #[test]
    fn a_wide_tsc_bound_under_tcg_with_two_vcpus_names_the_ratchet() {
        let mut r = with_conditions(0.02);
        r.run_conditions.as_mut().unwrap().time_base.error_bound_ns = Some(5498);
        let t = table(&r);
        assert!(
            t.contains(
                "time base tsc (+/- 5498 ns at most, calibrated every 100 ms; TCG with 2 vCPUs: \
                 QEMU's tick ratchet moves the guest TSC when two read it at once, \
                 docs/clock-offset.md)"
            ),
            "{t}"
        );
        // Not under KVM, not with one vCPU, not for a narrow bound.
        for change in [
            |c: &mut RunConditions| c.accelerator = "kvm".into(),
            |c: &mut RunConditions| c.vcpus = Some(1),
            |c: &mut RunConditions| c.time_base.error_bound_ns = Some(1000),
        ] {
            let mut q = r.clone();
            change(q.run_conditions.as_mut().unwrap());
            assert!(!table(&q).contains("ratchet"), "{}", table(&q));
        }
    }

    #[test]
    fn a_measured_wake_up_floor_is_shown_beside_the_back_end_and_kept_in_json() {
        let mut r = with_conditions(0.02);
        r.interference.as_mut().unwrap().wake_floor = Some(crate::model::WakeFloorCpu {
            hz: 1000,
            wakes: 3000,
            cpu_ns: 90_000_000,
            timeslices: 3010,
            cpu_ns_per_wake: Some(30_000.0),
        });
        let t = table(&r);
        assert!(
            t.contains(
                "back end 40.0 % of a core, 40.0 us per event | host wake-up floor 30.0 us per \
                 wake-up (1000 Hz probe) | host busy"
            ),
            "{t}"
        );
        let md = markdown(&r, &[]);
        assert!(
            md.contains("| host wake-up floor | 30.0 us per wake-up: a 1000 Hz timerfd thread"),
            "{md}"
        );
        let back: RunResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        // An older report.json has no `wake_floor`: it reads as not measured.
        let mut v = serde_json::to_value(&r).unwrap();
        v["interference"]
            .as_object_mut()
            .unwrap()
            .remove("wake_floor")
            .expect("written");
        let old: RunResult = serde_json::from_value(v).unwrap();
        assert_eq!(old.interference.unwrap().wake_floor, None);
        // Without the probe nothing is said about a floor.
        assert!(!table(&with_conditions(0.02)).contains("floor"));
    }

    #[test]
    fn disturbed_run_is_flagged_everywhere() {
        let mut r = with_conditions(0.3);
        let s = crate::scenario::parse(GATED, "g").unwrap();
        let f = crate::gate::apply(&s, &mut r);
        assert!(f.is_empty(), "{f:?}");
        let t = table(&r);
        assert!(
            t.lines().any(
                |l| l.starts_with("DISTURBED: vCPU thread `CPU 1/TCG` of irqstorm0")
                    && l.ends_with("; latency thresholds not judged")
            ),
            "{t}"
        );
        // 4 thresholds not judged (skipped), never passed
        assert!(
            t.contains("checks: 5 passed, 0 failed, 7 skipped (4 not judged: disturbed run)"),
            "{t}"
        );
        let md = markdown(&r, &[]);
        assert!(
            md.starts_with(
                "# irqstorm: demo<&> — PASS (disturbed run: latency thresholds not judged)"
            ),
            "{md}"
        );
        assert!(md.contains("| disturbed | yes: vCPU thread"), "{md}");
        assert!(md.contains("| disturbed | **yes**: vCPU thread"), "{md}");
        let x = junit(&r);
        assert!(x.contains("skipped=\"7\""), "{x}");
        assert!(
            x.contains("<property name=\"disturbed\" value=\"true\"/>"),
            "{x}"
        );
        assert!(
            x.contains("<skipped message=\"not judged: disturbed run (vCPU thread"),
            "{x}"
        );
        // report.json keeps both objects; a report without them still parses
        let text = serde_json::to_string(&r).unwrap();
        let back: RunResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("interference");
        o.remove("run_conditions");
        let old: RunResult = serde_json::from_value(v).unwrap();
        assert!(old.interference.is_none() && old.run_conditions.is_none());
        assert!(!table(&old).contains("interference:"));
    }
}
