//! The guest's side of a scenario run: the kernel command line words the
//! guest script `tests/guest/lib/scenario.sh` reads, and the debugfs writes
//! that start guest-driven sources.

use irqstorm_report::model;
use irqstorm_report::scenario::{ConfigureBodyExt as _, Scenario, SourceStart};

use super::RunError;

/// PING exchanges the guest does for the clock offset.
pub const PINGS: u32 = 16;

/// The kernel command line words carrying the scenario's guest side.
pub fn guest_cmdline(s: &Scenario) -> String {
    let src: Vec<String> = s
        .sources
        .iter()
        .map(|x| {
            let kind = serde_json::to_value(x.work.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "none".into());
            format!(
                "{}:{}:{}:{}:{}",
                x.id, x.mechanism, kind, x.work.us, x.delay_us
            )
        })
        .collect();
    // The local reference source cycles through a mask of mechanism ids
    // (every reference mechanism, `threaded` included: the driver's eventq
    // drain-continuation race that stalled it is fixed).
    let mask: u32 = s
        .reference_mechanisms()
        .iter()
        .filter_map(|m| model::mechanism_id(m))
        .fold(0, |a, id| a | (1u32 << id));
    let reference = if mask == 0 {
        "off".to_string()
    } else {
        format!("{}:{mask:x}", s.reference.period_us)
    };
    let mut c = format!(
        "irqstorm_sc_src={} irqstorm_sc_ref={reference} irqstorm_sc_pings={PINGS} \
         irqstorm_sc_calib_ms={}",
        src.join(","),
        s.time_base.calibrate_every_ms
    );
    if let Some(list) = &s.guest.irq_affinity {
        c.push_str(&format!(" irqstorm_sc_irq_affinity={list}"));
    }
    if let Some(cpu) = s.guest.wq_cpu {
        // A module parameter: tests/guest/lib/scenario.sh hands irqstorm.* to insmod.
        c.push_str(&format!(" irqstorm.wq_cpu={cpu}"));
    }
    if let Some(n) = s.guest.work_items {
        c.push_str(&format!(" irqstorm.work_items={n}"));
    }
    if let Some(n) = s.guest.wq_max_active {
        c.push_str(&format!(" irqstorm.wq_max_active={n}"));
    }
    if let Some(p) = s.guest.user_fifo {
        c.push_str(&format!(" irqstorm_sc_user_fifo={p}"));
    }
    if s.timerlat.enabled {
        // The buffer holds warm-up and measured phase: nothing is overwritten.
        let kb = s.timerlat.buffer_kb(s.warmup_ms + s.duration_ms);
        c.push_str(&format!(
            " irqstorm_sc_timerlat={}:{kb}",
            s.timerlat.period_us
        ));
    }
    c
}

/// The debugfs write (file, arguments) that starts a guest-driven source.
pub fn guest_start_line(s: &SourceStart) -> Result<(String, String), RunError> {
    let b = &s.body;
    if b.jitter_name() == "uniform" || b.moderation_events > 0 || b.moderation_delay_us > 0 {
        return Err(RunError::Scenario(format!(
            "source {}: the driver's debugfs timer/storm interface has no uniform jitter or \
             moderation; use driven_by = \"host\" for this source",
            s.id
        )));
    }
    match b.mode_name() {
        "periodic" => Ok((
            "timer".into(),
            format!(
                "{} periodic {}{}",
                s.id,
                b.period_ns,
                if b.count > 0 {
                    format!(" {}", b.count)
                } else {
                    String::new()
                }
            ),
        )),
        "oneshot" => Ok(("timer".into(), format!("{} oneshot {}", s.id, b.period_ns))),
        "storm" => Ok((
            "storm".into(),
            format!(
                "{} {} {} {} {}{}",
                s.id,
                b.rate_hz,
                b.burst.max(1),
                b.duration_ns / 1_000_000,
                b.count,
                if b.jitter_name() == "exponential" {
                    " exp"
                } else {
                    ""
                }
            ),
        )),
        m => Err(RunError::Scenario(format!(
            "source {}: mode {m} cannot be guest-driven",
            s.id
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use irqstorm_report::scenario as sc;

    #[test]
    fn cmdline_carries_sources_and_reference_mask() {
        let s = sc::parse(
            r#"
name = "t"
duration_ms = 100
[reference]
period_us = 500
[[sources]]
id = 0
mechanism = "tasklet"
program = { mode = "periodic", period_us = 1000 }
work = { kind = "busy", us = 5 }
[[sources]]
id = 1
mechanism = "threaded"
program = { mode = "storm", rate_hz = 1000, burst = 2, duration_ms = 10 }
"#,
            "t",
        )
        .unwrap();
        let c = guest_cmdline(&s);
        assert!(
            c.contains("irqstorm_sc_src=0:tasklet:busy:5:0,1:threaded:none:0:0"),
            "{c}"
        );
        // threaded = 1, tasklet = 2.
        assert!(c.contains("irqstorm_sc_ref=500:6"), "{c}");
        assert!(!c.contains("timerlat"), "{c}");
        assert!(c.contains(" irqstorm_sc_calib_ms=250"), "{c}");
        let mut t = s.clone();
        t.time_base.calibrate_every_ms = 100;
        assert!(guest_cmdline(&t).contains(" irqstorm_sc_calib_ms=100"));
        t.timerlat.enabled = true;
        t.timerlat.period_us = 250;
        t.warmup_ms = 900;
        // 1 s at 4 kHz: 4001 activations x 2 x 64 B x 5/4 = 626 KiB per CPU
        assert!(
            guest_cmdline(&t).ends_with(" irqstorm_sc_timerlat=250:626"),
            "{}",
            guest_cmdline(&t)
        );
        let plan = s.plan();
        let st = plan[0].starts[1];
        assert_eq!(
            guest_start_line(&st).unwrap(),
            ("storm".to_string(), "1 1000 2 10 0".to_string())
        );
    }

    #[test]
    fn pool_queue_and_reader_settings_reach_the_guest() {
        let s = sc::parse(
            r#"
name = "t"
duration_ms = 100
[guest]
work_items = 4
wq_max_active = 1
user_fifo = 50
[[sources]]
id = 0
mechanism = "user"
program = { mode = "periodic", period_us = 1000 }
[[sources]]
id = 1
mechanism = "wq_ordered"
program = { mode = "periodic", period_us = 1000 }
work = { kind = "usleep", us = 500 }
"#,
            "t",
        )
        .unwrap();
        let c = guest_cmdline(&s);
        for want in [
            "irqstorm.work_items=4",
            "irqstorm.wq_max_active=1",
            "irqstorm_sc_user_fifo=50",
            "0:user:none:0:0,1:wq_ordered:usleep:500:0",
        ] {
            assert!(c.contains(want), "{want}: {c}");
        }
        assert!(!guest_cmdline(&sc::parse(
            "name = \"t\"\nduration_ms = 100\n[[sources]]\nid = 0\nmechanism = \"tasklet\"\nprogram = { mode = \"periodic\", period_us = 1000 }\n",
            "t"
        )
        .unwrap())
        .contains("work_items"));
    }
}
