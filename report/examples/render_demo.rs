//! Write a report directory from SYNTHETIC demo data, to preview the
//! formats (table, JSON, JUnit, SVG, Markdown) without a VM:
//!
//!     cargo run -p irqstorm-report --example render_demo -- /tmp/irqstorm-demo
//!
//! The host eventfd baseline is measured for real; every other number is
//! made up by a fixed formula. Nothing here is a measurement of a guest.

use irqstorm_report::hist::Distribution;
use irqstorm_report::model::{
    DeviceOffset, GuestCounters, HostCounters, MechanismResult, RampResult, RampStep,
    ReferenceResult, RunMeta, RunResult, MECHANISMS,
};
use irqstorm_report::offset::{self, PingSample};
use irqstorm_report::{baseline, gate, render, scenario};

/// Log2 buckets of a made-up unimodal distribution around 2^centre ns.
fn log2_shape(centre: usize, n: u64) -> Vec<u64> {
    let mut c = vec![0u64; centre + 6];
    c[centre - 1] = n / 5;
    c[centre] = n / 2;
    c[centre + 1] = n / 5;
    c[centre + 2] = n / 20;
    c[centre + 4] = n - n / 5 - n / 2 - n / 5 - n / 20;
    c
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/irqstorm-demo".into());
    let sc = scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/scenarios/default.toml"
    ))?;
    let mut r = RunResult::new(RunMeta {
        scenario: format!("{} (synthetic demo)", sc.name),
        scenario_file: "tests/scenarios/default.toml".into(),
        accelerator: "tcg".into(),
        start_time: "2026-11-22T06:40:00Z".into(),
        duration_ns: sc.duration_ms * 1_000_000,
        warmup_ns: sc.warmup_ms * 1_000_000,
        devices: vec!["irqstorm0".into()],
        tool_version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    });
    let pings: Vec<PingSample> = (0..32u64)
        .map(|i| {
            let t1 = 1_000_000 + i * 1_000_000;
            let d1 = 20_000 + (i * 7919) % 30_000;
            let d2 = 20_000 + (i * 104_729) % 30_000;
            PingSample {
                t1_guest_send_ns: t1,
                t2_host_recv_ns: t1 + 5_000_000 + d1,
                t3_host_send_ns: t1 + 5_000_000 + d1 + 3_000,
                t4_guest_recv_ns: t1 + d1 + 3_000 + d2,
            }
        })
        .collect();
    let est = offset::estimate(&pings)?;
    for (i, m) in MECHANISMS.iter().enumerate() {
        let mut row = MechanismResult::new(m, None);
        row.sources = vec![i as u16, 14 + i as u16];
        let raised = 13_000 + 37 * i as u64;
        let coalesced = (i as u64 * 13) % 50;
        row.host = HostCounters {
            raised,
            records: raised - coalesced,
            coalesced,
            acked: raised - coalesced,
            ..Default::default()
        };
        row.guest = Some(GuestCounters {
            records: raised - coalesced,
            events: raised,
            acks_posted: Some(raised - coalesced),
            errors: 0,
        });
        let base = 40_000 + 9_000 * i as u64;
        row.raise_to_ack =
            Some(Distribution::from_buckets((0..200u64).map(|k| {
                (base + k * k * 40 * (i as u64 + 1), 1 + (200 - k) / 3)
            }))?);
        let centre = 8 + i / 2;
        row.hardirq_to_bh = Some(Distribution::from_log2(
            &log2_shape(centre, raised - coalesced),
            None,
        )?);
        row.bh_run = Some(Distribution::from_log2(
            &log2_shape(13, raised - coalesced),
            None,
        )?);
        row.reference = Some(ReferenceResult {
            timer_to_hardirq: Some(Distribution::from_log2(&log2_shape(12, 8000), None)?),
            hardirq_to_bh: Some(Distribution::from_log2(
                &log2_shape(centre.saturating_sub(1).max(2), 8000),
                None,
            )?),
            bh_run: Some(Distribution::from_log2(&log2_shape(13, 8000), None)?),
        });
        let pairs = (0..500u64).map(|k| {
            let raise = 100_000_000 + k * 2_000_000;
            let lat = 15_000 + (k * 31) % 20_000 + i as u64 * 1000;
            (
                raise,
                (raise as i64 + lat as i64 - est.host_minus_guest_ns) as u64,
            )
        });
        row.raise_to_hardirq = Some(offset::one_way(&est, pairs)?);
        r.mechanisms.push(row);
    }
    r.baselines.host_eventfd = Some(baseline::host_eventfd_pingpong(5000)?);
    r.clock_offsets.push(DeviceOffset {
        device: "irqstorm0".into(),
        estimate: est,
    });
    r.ramp = Some(RampResult {
        steps: (0..10u32)
            .map(|k| {
                let rate = (1000.0 * 1.5f64.powi(k as i32)) as u64;
                let raised = rate;
                let coalesced = if k > 6 {
                    raised * (k as u64 - 6) / 40
                } else {
                    0
                };
                RampStep {
                    rate_hz: rate,
                    duration_ns: 1_000_000_000,
                    host: HostCounters {
                        raised,
                        records: raised - coalesced,
                        coalesced,
                        acked: raised - coalesced,
                        ..Default::default()
                    },
                    raise_to_ack_p99_ns: Some(80_000 + 20_000 * k as u64 * k as u64),
                }
            })
            .collect(),
        stop_reason: "coalesced/raised 0.0250 > stop_coalesced_ratio 0.01".into(),
        sustained_rate_hz: Some(11_390),
    });
    r.finalize()?;
    let failures = gate::apply(&sc, &mut r);
    print!("{}", render::table(&r));
    let files = render::write_report_dir(dir.as_ref(), &r, None)?;
    println!("\nwrote {} files to {dir}", files.len());
    if let Some(msg) = gate::exit_message(&failures) {
        eprint!("{msg}");
    }
    Ok(())
}
