//! Validation of a parsed scenario against device limits (spec §4, §5,
//! §6.1.2, §6.5): every problem is collected with its field path.

use std::collections::BTreeSet;

use super::schema::{
    DeviceLimits, DrivenBy, Jitter, Mode, Ramp, Scenario, Source, WorkKind, CALIBRATE_EVERY_MS,
    MAX_PERIOD_US, MAX_RAMP_STEPS, MAX_WORK_US, TIMERLAT_PERIOD_US,
};
use super::threshold::threshold_spec;
use super::Problem;
use crate::model::{is_sleepable, mechanism_id, MECHANISMS};

/// The scenario-file name of a work kind (`"msleep"`).
fn kind_name(k: WorkKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
}

impl Scenario {
    /// Validate against the device limits the scenario declares.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        self.validate_against(&self.device)
    }

    /// Validate against given device limits (e.g. those GET_INFO reported).
    pub fn validate_against(&self, dev: &DeviceLimits) -> Result<(), Vec<Problem>> {
        let mut p = Problems(Vec::new());
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            p.add(
                "name",
                format!("`{}`: use 1+ characters of [A-Za-z0-9_.-]", self.name),
            );
        }
        if self.duration_ms == 0 {
            p.add("duration_ms", "must be > 0");
        }
        if self.duration_ms > 3_600_000 {
            p.add("duration_ms", "at most 3600000 (1 h)");
        }
        if self.warmup_ms > 600_000 {
            p.add("warmup_ms", "at most 600000 (10 min)");
        }
        if !(1..=64).contains(&self.guest.smp) {
            p.add("guest.smp", format!("{}: must be 1..=64", self.guest.smp));
        }
        if let Some(n) = self.guest.work_items.filter(|n| !(1..=16).contains(n)) {
            p.add("guest.work_items", format!("{n}: 1..=16"));
        }
        if let Some(n) = self.guest.wq_max_active.filter(|n| *n > 2048) {
            p.add(
                "guest.wq_max_active",
                format!("{n}: 0..=2048 (0: the kernel's default)"),
            );
        }
        if let Some(n) = self.guest.user_fifo.filter(|n| !(1..=99).contains(n)) {
            p.add(
                "guest.user_fifo",
                format!("{n}: a SCHED_FIFO priority, 1..=99"),
            );
        }
        if let Some(c) = self.guest.wq_cpu.filter(|c| *c >= self.guest.smp) {
            p.add(
                "guest.wq_cpu",
                format!(
                    "{c}: not one of the guest's {} vCPUs (guest.smp)",
                    self.guest.smp
                ),
            );
        }
        if let Some(list) = &self.guest.irq_affinity {
            if let Err(why) = cpu_list(list, self.guest.smp) {
                p.add("guest.irq_affinity", format!("`{list}`: {why}"));
            }
        }
        if !(1..=64).contains(&dev.num_sources) {
            p.add(
                "device.num_sources",
                format!("{}: must be 1..=64 (spec §4)", dev.num_sources),
            );
        }
        if dev.max_rate_hz == 0 {
            p.add("device.max_rate_hz", "must be > 0");
        }
        if dev.max_burst == 0 || dev.max_burst > u16::MAX as u32 {
            p.add("device.max_burst", "must be 1..=65535 (a u16 on the wire)");
        }
        if self.sources.is_empty() {
            p.add("sources", "at least one source is needed");
        }
        let mut ids = BTreeSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            self.validate_source(i, s, dev, &mut ids, &mut p);
        }
        self.validate_rate_sum(dev, &mut p);
        // reference
        if self.reference.enabled {
            if self.reference.period_us == 0 || self.reference.period_us > 1_000_000 {
                p.add(
                    "reference.period_us",
                    format!("{}: must be 1..=1000000", self.reference.period_us),
                );
            }
            for (i, m) in self.reference.mechanisms.iter().enumerate() {
                if mechanism_id(m).is_none() {
                    p.add(
                        format!("reference.mechanisms[{i}]"),
                        format!("unknown mechanism `{m}`"),
                    );
                } else if m == "user" {
                    p.add(
                        format!("reference.mechanisms[{i}]"),
                        "`user`: the reference is a kernel hrtimer and feeds kernel bottom halves only",
                    );
                }
            }
        }
        if self.timerlat.enabled && !TIMERLAT_PERIOD_US.contains(&self.timerlat.period_us) {
            p.add(
                "timerlat.period_us",
                format!(
                    "{}: must be {}..={} (the kernel's bounds of osnoise/timerlat_period_us)",
                    self.timerlat.period_us,
                    TIMERLAT_PERIOD_US.start(),
                    TIMERLAT_PERIOD_US.end()
                ),
            );
        }
        let every = self.time_base.calibrate_every_ms;
        if !CALIBRATE_EVERY_MS.contains(&every) {
            p.add(
                "time_base.calibrate_every_ms",
                format!(
                    "{every}: must be {}..={} (each calibration takes a 1 ms window)",
                    CALIBRATE_EVERY_MS.start(),
                    CALIBRATE_EVERY_MS.end()
                ),
            );
        }
        if let Some(r) = &self.ramp {
            self.validate_ramp(r, dev, &mut p);
        }
        let w = self.gates.max_vcpu_wait_share;
        if !(w > 0.0 && w <= 1.0) {
            p.add(
                "gates.max_vcpu_wait_share",
                format!("{w}: must be in (0, 1]"),
            );
        }
        let mechs = self.mechanisms();
        for (i, t) in self.thresholds.iter().enumerate() {
            if let Err(errs) = threshold_spec(t, &mechs, &self.reference) {
                for (f, m) in errs {
                    p.add(format!("thresholds[{i}].{f}"), m);
                }
            }
        }
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(p.0)
        }
    }

    fn validate_source(
        &self,
        i: usize,
        s: &Source,
        dev: &DeviceLimits,
        ids: &mut BTreeSet<u16>,
        p: &mut Problems,
    ) {
        let f = |x: &str| format!("sources[{i}].{x}");
        if s.id >= dev.num_sources {
            p.add(
                f("id"),
                format!(
                    "{}: must be < device.num_sources ({})",
                    s.id, dev.num_sources
                ),
            );
        }
        if !ids.insert(s.id) {
            p.add(f("id"), format!("duplicate source id {}", s.id));
        }
        if mechanism_id(&s.mechanism).is_none() {
            p.add(
                f("mechanism"),
                format!(
                    "unknown mechanism `{}` (one of {})",
                    s.mechanism,
                    MECHANISMS.join(", ")
                ),
            );
        } else if s.delay_us != 0 && !irqstorm_protocol::mechanisms::takes_delay(&s.mechanism) {
            p.add(
                f("delay_us"),
                format!(
                    "`{}` takes no delay (timer_list, hrtimer, wq_delayed, kthread_msleep and kthread_usleep do)",
                    s.mechanism
                ),
            );
        } else if s.work.kind.sleeps() && !is_sleepable(&s.mechanism) {
            p.add(
                f("work.kind"),
                format!(
                    "`{}` work on `{}`: its bottom half runs in atomic context and cannot sleep (the driver refuses it); use `busy` or a sleepable mechanism",
                    kind_name(s.work.kind),
                    s.mechanism
                ),
            );
        } else if s.mechanism == "user" && s.work.kind != WorkKind::None {
            p.add(
                f("work.kind"),
                "`user`'s bottom half is the guest program irqstorm-wait: the driver runs no simulated work there (use kind = \"none\")",
            );
        }
        if s.delay_us > MAX_DELAY_US {
            p.add(
                f("delay_us"),
                format!("{}: at most {MAX_DELAY_US} (1 s)", s.delay_us),
            );
        }
        match s.work.kind {
            WorkKind::None if s.work.us != 0 => {
                p.add(f("work.us"), "must be 0 with kind = \"none\"")
            }
            k if k != WorkKind::None && s.work.us == 0 => {
                p.add(f("work.us"), "must be > 0 for busy and sleeping work")
            }
            _ => {}
        }
        if s.work.us > MAX_WORK_US {
            p.add(
                f("work.us"),
                format!("{}: at most {MAX_WORK_US}", s.work.us),
            );
        }
        let m = &s.moderation;
        if m.events > 1024 {
            p.add(
                f("moderation.events"),
                format!("{}: must be 0..=1024 (spec §6.1.2)", m.events),
            );
        }
        if m.delay_us > 1_000_000 {
            p.add(
                f("moderation.delay_us"),
                format!("{}: must be 0..=1000000 (spec §6.1.2)", m.delay_us),
            );
        }
        // the host control socket may use moderation without the feature
        // (spec §9); the guest driver needs it negotiated
        if (m.events > 1 || m.delay_us > 0) && !dev.moderation && s.driven_by == DrivenBy::Guest {
            p.add(
                f("moderation"),
                "needs device.moderation = true (IRQSTORM_F_MODERATION) for a guest-driven source",
            );
        }
        if m.events <= 1 && m.delay_us > 0 {
            p.add(
                f("moderation.delay_us"),
                "has no effect unless moderation.events > 1 (spec §5.3)",
            );
        }
        let g = &s.program;
        let pf = |x: &str| format!("sources[{i}].program.{x}");
        match g.mode {
            Mode::Oneshot | Mode::Periodic => {
                if g.period_us == 0 {
                    p.add(pf("period_us"), "required (> 0) for oneshot/periodic");
                } else if g.period_us > MAX_PERIOD_US {
                    p.add(
                        pf("period_us"),
                        format!(
                            "{}: at most {MAX_PERIOD_US} (1 hour, spec §6.1.2)",
                            g.period_us
                        ),
                    );
                } else if g.mode == Mode::Periodic
                    && g.period_us.saturating_mul(1000) < dev.min_period_ns as u64
                {
                    p.add(
                        pf("period_us"),
                        format!(
                            "{} us is below device.min_period_ns ({} ns)",
                            g.period_us, dev.min_period_ns
                        ),
                    );
                }
                if g.rate_hz != 0 {
                    p.add(pf("rate_hz"), "only for storm programs");
                }
                if g.burst > 1 {
                    p.add(pf("burst"), "only for storm programs (0 or 1 here)");
                }
                if g.mode == Mode::Oneshot && g.jitter != Jitter::None {
                    p.add(
                        pf("jitter"),
                        "jitter applies to periodic and storm programs only",
                    );
                }
            }
            Mode::Storm => {
                if g.period_us != 0 {
                    p.add(
                        pf("period_us"),
                        "not used by storm programs (use rate_hz and burst)",
                    );
                }
                if g.rate_hz == 0 {
                    p.add(pf("rate_hz"), "required (> 0) for storm");
                } else if g.rate_hz > dev.max_rate_hz {
                    p.add(
                        pf("rate_hz"),
                        format!(
                            "{}: above device.max_rate_hz ({})",
                            g.rate_hz, dev.max_rate_hz
                        ),
                    );
                }
                if g.burst > dev.max_burst {
                    p.add(
                        pf("burst"),
                        format!("{}: above device.max_burst ({})", g.burst, dev.max_burst),
                    );
                }
                if let Some(gap) = g.nominal_gap_ns() {
                    if gap < dev.min_period_ns as u64 {
                        p.add(
                            pf("rate_hz"),
                            format!(
                                "inter-burst gap burst/rate_hz = {gap} ns is below device.min_period_ns ({} ns): raise burst or lower rate_hz",
                                dev.min_period_ns
                            ),
                        );
                    }
                }
            }
        }
        match g.jitter {
            Jitter::Uniform => match g.nominal_gap_ns() {
                Some(gap) if g.jitter_us.saturating_mul(1000) >= gap => p.add(
                    pf("jitter_us"),
                    format!(
                        "{} us must be below the nominal gap ({gap} ns)",
                        g.jitter_us
                    ),
                ),
                _ if g.jitter_us == 0 => {
                    p.add(pf("jitter_us"), "uniform jitter needs jitter_us > 0")
                }
                _ => {}
            },
            _ if g.jitter_us != 0 => p.add(pf("jitter_us"), "only with jitter = \"uniform\""),
            _ => {}
        }
        if g.mode == Mode::Oneshot && (g.count > 1 || g.duration_ms != 0) {
            p.add(
                pf("count"),
                "a oneshot program raises one event; count/duration_ms do not apply",
            );
        }
        if s.start_delay_ms >= self.duration_ms && self.duration_ms > 0 {
            p.add(
                f("start_delay_ms"),
                format!("{} ms: starts after the run ends", s.start_delay_ms),
            );
        }
    }

    /// The sum of the rates of the sources running at the same time must stay
    /// within `max_rate_hz` (spec §4, §6.1.2).
    fn validate_rate_sum(&self, dev: &DeviceLimits, p: &mut Problems) {
        let end = |s: &Source| -> u64 {
            let d = if s.program.duration_ms == 0 {
                u64::MAX
            } else {
                s.program.duration_ms
            };
            s.start_delay_ms.saturating_add(d)
        };
        let mut worst = (0.0f64, 0u64);
        for a in &self.sources {
            let t = a.start_delay_ms;
            let sum: f64 = self
                .sources
                .iter()
                .filter(|s| s.start_delay_ms <= t && t < end(s))
                .map(|s| s.program.rate_hz())
                .sum();
            if sum > worst.0 {
                worst = (sum, t);
            }
        }
        if worst.0 > dev.max_rate_hz as f64 {
            p.add(
                "sources",
                format!(
                    "sources running together at t = {} ms raise {:.0} events/s, above device.max_rate_hz ({}); stagger them with start_delay_ms/duration_ms or lower the rates",
                    worst.1, worst.0, dev.max_rate_hz
                ),
            );
        }
    }

    fn validate_ramp(&self, r: &Ramp, dev: &DeviceLimits, p: &mut Problems) {
        if r.start_hz == 0 {
            p.add("ramp.start_hz", "must be > 0");
        }
        if r.max_hz < r.start_hz {
            p.add(
                "ramp.max_hz",
                format!("{} is below start_hz ({})", r.max_hz, r.start_hz),
            );
        }
        if r.max_hz > dev.max_rate_hz {
            p.add(
                "ramp.max_hz",
                format!(
                    "{}: above device.max_rate_hz ({})",
                    r.max_hz, dev.max_rate_hz
                ),
            );
        }
        match (r.step_hz, r.step_factor) {
            (Some(0), None) => p.add("ramp.step_hz", "must be > 0"),
            (None, Some(f)) if !(f.is_finite() && f > 1.0) => {
                p.add("ramp.step_factor", format!("{f}: must be > 1"))
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => p.add("ramp", "give exactly one of step_hz and step_factor"),
        }
        if r.step_duration_ms == 0 {
            p.add("ramp.step_duration_ms", "must be > 0");
        }
        for (k, v) in [
            ("stop_coalesced_ratio", r.stop_coalesced_ratio),
            ("stop_loss_ratio", r.stop_loss_ratio),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                p.add(format!("ramp.{k}"), format!("{v}: must be in (0, 1]"));
            }
        }
        let n = r.rates().len();
        if n >= MAX_RAMP_STEPS {
            p.add(
                "ramp",
                format!("more than {MAX_RAMP_STEPS} steps; use a larger step"),
            );
        }
        let targets = self.ramp_sources();
        if targets.is_empty() {
            p.add("ramp.sources", "the ramp needs at least one storm source");
        }
        for (i, id) in r.sources.iter().enumerate() {
            match self.sources.iter().find(|s| s.id == *id) {
                None => p.add(
                    format!("ramp.sources[{i}]"),
                    format!("no source with id {id}"),
                ),
                Some(s) if s.program.mode != Mode::Storm => p.add(
                    format!("ramp.sources[{i}]"),
                    format!("source {id} is not a storm source"),
                ),
                _ => {}
            }
        }
        // each step's per-source rate must keep the gap above min_period_ns
        if let (Some(&top), false) = (r.rates().last(), targets.is_empty()) {
            let per = top as u64 / targets.len() as u64;
            for id in &targets {
                if let Some(s) = self.sources.iter().find(|s| s.id == *id) {
                    let burst = s.program.burst.max(1) as u64;
                    if per > 0 && burst * 1_000_000_000 / per < dev.min_period_ns as u64 {
                        p.add(
                            "ramp.max_hz",
                            format!(
                                "at {top} events/s source {id} (burst {burst}) would need gaps below device.min_period_ns ({} ns)",
                                dev.min_period_ns
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Largest requested delay (us): the driver's limit.
pub const MAX_DELAY_US: u32 = 1_000_000;

/// The CPUs of a Linux CPU list (`0`, `0-3`, `0,2-3`), each below `smp`.
pub fn cpu_list(list: &str, smp: u32) -> Result<Vec<u32>, String> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let num = |x: &str| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{part}` is not a CPU or a range N-M"))
        };
        let (a, b) = (num(a)?, num(b)?);
        if a > b {
            return Err(format!("`{part}`: the range runs backwards"));
        }
        if b >= smp {
            return Err(format!(
                "CPU {b} is not in the guest's {smp} vCPUs (guest.smp)"
            ));
        }
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use crate::scenario::fixtures::{problems, with, MINIMAL};

    #[test]
    fn ranges_checked_against_device_limits() {
        let text = r#"
name = "bad name!"
duration_ms = 0
[guest]
smp = 0
[device]
num_sources = 2
max_burst = 16
min_period_ns = 50000
[[sources]]
id = 2
mechanism = "tasklet"
program = { mode = "periodic", period_us = 10, rate_hz = 5 }
moderation = { events = 2000, delay_us = 2000000 }
[[sources]]
id = 1
mechanism = "bogus"
program = { mode = "storm", rate_hz = 100000, burst = 32, jitter = "uniform", jitter_us = 400 }
[[sources]]
id = 1
mechanism = "threaded"
program = { mode = "storm" }
work = { kind = "busy" }
"#;
        let e = problems(text).join("\n");
        for want in [
            "name: `bad name!`",
            "duration_ms: must be > 0",
            "guest.smp: 0",
            "sources[0].id: 2: must be < device.num_sources (2)",
            "sources[0].program.period_us: 10 us is below device.min_period_ns (50000 ns)",
            "sources[0].program.rate_hz: only for storm",
            "sources[0].moderation.events: 2000",
            "sources[0].moderation.delay_us: 2000000",
            "sources[1].mechanism: unknown mechanism `bogus`",
            "sources[1].program.burst: 32: above device.max_burst (16)",
            "sources[1].program.jitter_us: 400 us must be below the nominal gap (320000 ns)",
            "sources[2].id: duplicate source id 1",
            "sources[2].program.rate_hz: required",
            "sources[2].work.us: must be > 0",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
    }

    #[test]
    fn storm_gap_and_rate_sum() {
        let t = with(
            r#"
[[sources]]
id = 1
mechanism = "bh_wq"
program = { mode = "storm", rate_hz = 450000 }
[device]
min_period_ns = 10000
"#,
        );
        let e = problems(&t).join("\n");
        assert!(
            e.contains(
                "inter-burst gap burst/rate_hz = 2222 ns is below device.min_period_ns (10000 ns)"
            ),
            "{e}"
        );
        assert!(!e.contains("above device.max_rate_hz"), "{e}");
        let t = with(
            r#"
[device]
max_rate_hz = 100000
[[sources]]
id = 1
mechanism = "bh_wq"
program = { mode = "storm", rate_hz = 60000, burst = 8 }
[[sources]]
id = 2
mechanism = "bh_wq"
program = { mode = "storm", rate_hz = 60000, burst = 8 }
"#,
        );
        let e = problems(&t).join("\n");
        assert!(
            e.contains("raise 121000 events/s, above device.max_rate_hz (100000)"),
            "{e}"
        );
        // staggered: no overlap, fine
        let t = t.replace(
            "rate_hz = 60000, burst = 8 }\n[[sources]]",
            "rate_hz = 60000, burst = 8, duration_ms = 200 }\n[[sources]]",
        ) + "start_delay_ms = 300\n";
        assert!(problems(&t).is_empty(), "{:?}", problems(&t));
    }

    #[test]
    fn sleep_on_atomic_mechanisms_rejected_with_reason() {
        for m in crate::model::NON_SLEEPABLE {
            let t = MINIMAL.replace("\"tasklet\"", &format!("\"{m}\""))
                + "work = { kind = \"sleep\", us = 50 }\n";
            let e = problems(&t).join("\n");
            assert!(
                e.contains("sources[0].work.kind: `sleep` work on"),
                "{m}: {e}"
            );
            assert!(e.contains("atomic context"), "{e}");
        }
        for m in [
            "threaded",
            "wq_system",
            "wq_dedicated",
            "kthread",
            "completion",
            "wq_unbound",
        ] {
            let t = MINIMAL.replace("\"tasklet\"", &format!("\"{m}\""))
                + "work = { kind = \"sleep\", us = 50 }\n";
            assert!(problems(&t).is_empty(), "{m}: {:?}", problems(&t));
        }
    }

    #[test]
    fn every_sleeping_kind_is_refused_in_atomic_context_and_user_takes_no_work() {
        for k in ["msleep", "usleep", "timeout"] {
            let t = MINIMAL.to_string() + &format!("work = {{ kind = \"{k}\", us = 50 }}\n");
            let e = problems(&t).join("\n");
            assert!(e.contains(&format!("`{k}` work on `tasklet`")), "{k}: {e}");
            let ok = MINIMAL.replace("\"tasklet\"", "\"wq_ordered\"")
                + &format!("work = {{ kind = \"{k}\", us = 50 }}\n");
            assert!(problems(&ok).is_empty(), "{k}: {:?}", problems(&ok));
        }
        let e = problems(&with("[reference]\nmechanisms = [\"user\"]\n")).join("\n");
        assert!(e.contains("reference.mechanisms[0]: `user`"), "{e}");
        let s = crate::scenario::parse(
            &(MINIMAL.replace("\"tasklet\"", "\"user\"")
                + "[[sources]]\nid = 1\nmechanism = \"tasklet\"\nprogram = { mode = \"periodic\", period_us = 1000 }\n"),
            "u",
        )
        .unwrap();
        assert_eq!(s.reference_mechanisms(), ["tasklet"]);
        let user = MINIMAL.replace("\"tasklet\"", "\"user\"");
        assert!(problems(&user).is_empty(), "{:?}", problems(&user));
        let e = problems(&(user + "work = { kind = \"busy\", us = 5 }\n")).join("\n");
        assert!(e.contains("irqstorm-wait"), "{e}");
    }

    #[test]
    fn the_calibration_interval_is_checked() {
        let e = problems(&with("[time_base]\ncalibrate_every_ms = 5\n")).join("\n");
        assert!(
            e.contains("time_base.calibrate_every_ms: 5: must be 20..=10000"),
            "{e}"
        );
        assert!(problems(&with("[time_base]\ncalibrate_every_ms = 100\n")).is_empty());
        let s = crate::scenario::parse(&with(""), "t").unwrap();
        assert_eq!(s.time_base.calibrate_every_ms, 250);
    }

    #[test]
    fn the_timerlat_period_is_checked_against_the_kernels_bounds_when_on() {
        let e = problems(&with("[timerlat]\nenabled = true\nperiod_us = 50\n")).join("\n");
        assert!(
            e.contains("timerlat.period_us: 50: must be 100..=1000000"),
            "{e}"
        );
        assert!(
            problems(&with("[timerlat]\nperiod_us = 50\n")).is_empty(),
            "off: not checked"
        );
        let s = crate::scenario::parse(&with("[timerlat]\nenabled = true\n"), "t").unwrap();
        assert_eq!(s.timerlat.period_us, 1000);
        // 3 s at 1 kHz: 3001 activations x 2 entries x 64 B x 5/4 = 469 KiB
        assert_eq!(s.timerlat.buffer_kb(3000), 469);
        assert_eq!(s.timerlat.buffer_kb(1), 64);
    }

    #[test]
    fn pool_queue_and_reader_settings_are_range_checked() {
        let ok = with("[guest]\nwork_items = 16\nwq_max_active = 2048\nuser_fifo = 99\n");
        assert!(problems(&ok).is_empty(), "{:?}", problems(&ok));
        let e = problems(&with(
            "[guest]\nwork_items = 17\nwq_max_active = 2049\nuser_fifo = 0\n",
        ))
        .join("\n");
        for want in [
            "guest.work_items: 17: 1..=16",
            "guest.wq_max_active: 2049",
            "guest.user_fifo: 0",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn moderation_and_period_limits() {
        let t = MINIMAL.replace("period_us = 1000 }", "period_us = 4000000000 }")
            + "moderation = { delay_us = 50 }\n";
        let e = problems(&t).join("\n");
        assert!(
            e.contains("program.period_us: 4000000000: at most 3600000000"),
            "{e}"
        );
        assert!(
            e.contains("moderation.delay_us: has no effect unless moderation.events > 1"),
            "{e}"
        );
        let t = with("[device]\nmoderation = false\n").replace(
            "period_us = 1000 }",
            "period_us = 1000 }\nmoderation = { events = 4 }\ndriven_by = \"guest\"",
        );
        let e = problems(&t).join("\n");
        assert!(
            e.contains("sources[0].moderation: needs device.moderation = true"),
            "{e}"
        );
        // the host may moderate without the feature
        assert!(problems(&t.replace("driven_by = \"guest\"", "driven_by = \"host\"")).is_empty());
    }

    #[test]
    fn ramp_validation() {
        let t = with(
            "[ramp]\nsources = [0, 7]\nstart_hz = 100\nmax_hz = 50\nstep_hz = 10\nstep_factor = 1.5\nstep_duration_ms = 0\nstop_coalesced_ratio = 2.0\n",
        );
        let e = problems(&t).join("\n");
        for want in [
            "ramp.max_hz: 50 is below start_hz (100)",
            "ramp: give exactly one of step_hz and step_factor",
            "ramp.step_duration_ms: must be > 0",
            "ramp.stop_coalesced_ratio: 2: must be in (0, 1]",
            "ramp.sources[0]: source 0 is not a storm source",
            "ramp.sources[1]: no source with id 7",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
    }

    #[test]
    fn gates_wait_share_must_be_a_share() {
        assert!(problems(&with("[gates]\nmax_vcpu_wait_share = 0.1\n")).is_empty());
        for bad in ["0", "1.5", "-0.1"] {
            let e = problems(&with(&format!("[gates]\nmax_vcpu_wait_share = {bad}\n"))).join("\n");
            assert!(
                e.contains("gates.max_vcpu_wait_share: ") && e.contains("must be in (0, 1]"),
                "{bad}: {e}"
            );
        }
        let s = crate::scenario::parse(MINIMAL, "m.toml").unwrap();
        assert_eq!(
            s.gates.max_vcpu_wait_share,
            crate::scenario::DEFAULT_MAX_VCPU_WAIT_SHARE
        );
    }

    #[test]
    fn irq_affinity_is_a_cpu_list_within_the_vcpus() {
        use super::cpu_list;
        assert_eq!(cpu_list("1", 2), Ok(vec![1]));
        assert_eq!(cpu_list("0-1", 2), Ok(vec![0, 1]));
        assert_eq!(cpu_list("0,2-3", 4), Ok(vec![0, 2, 3]));
        for bad in ["2", "", "x", "1-0", "0-", "0,,1"] {
            assert!(cpu_list(bad, 2).is_err(), "{bad}");
        }
        let e = problems(&with("[guest]\nsmp = 2\nirq_affinity = \"3\"\n")).join("\n");
        assert!(
            e.contains("guest.irq_affinity: `3`: CPU 3 is not in the guest's 2 vCPUs"),
            "{e}"
        );
        assert!(problems(&with("[guest]\nirq_affinity = \"0-1\"\n")).is_empty());
        let e = problems(&with("[guest]\nsmp = 2\nwq_cpu = 2\n")).join("\n");
        assert!(
            e.contains("guest.wq_cpu: 2: not one of the guest's 2 vCPUs"),
            "{e}"
        );
        assert!(problems(&with("[guest]\nwq_cpu = 1\n")).is_empty());
    }

    #[test]
    fn delays_only_on_delay_mechanisms_and_within_a_second() {
        let t = MINIMAL.to_string() + "delay_us = 1000\n";
        let e = problems(&t).join("\n");
        assert!(
            e.contains("sources[0].delay_us: `tasklet` takes no delay"),
            "{e}"
        );
        let t = MINIMAL.replace("\"tasklet\"", "\"hrtimer\"") + "delay_us = 1000\n";
        assert!(problems(&t).is_empty(), "{:?}", problems(&t));
        let t = MINIMAL.replace("\"tasklet\"", "\"kthread_msleep\"") + "delay_us = 2000000\n";
        let e = problems(&t).join("\n");
        assert!(
            e.contains("sources[0].delay_us: 2000000: at most 1000000"),
            "{e}"
        );
    }
}
