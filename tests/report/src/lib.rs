//! # irqstorm-report
//!
//! Scenario files, end-to-end latency reports and CI gating for irqstorm
//! runs. This crate does no I/O to QEMU or the guest: `cargo xtask run`
//! drives the run and hands the numbers to it.
//!
//! ## Wiring it into `cargo xtask run --scenario F --report-dir D`
//!
//! ```no_run
//! use irqstorm_report::{baseline, gate, model, offset, render, scenario};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 1. Load and validate the scenario (unknown keys, ranges, mechanism
//! //    names, sleep-on-atomic are rejected with file + field path).
//! let sc = scenario::load("tests/scenarios/default.toml")?;
//! //    Each source's CONFIGURE body (spec §6.1.2), ready to encode:
//! for s in &sc.sources {
//!     let _body = s.configure_body();
//! }
//! //    After GET_INFO, re-check against the device's real limits:
//! //    sc.validate_against(&scenario::DeviceLimits { .. })
//!
//! // 2. Baseline: host eventfd ping-pong between two threads.
//! let evfd = baseline::host_eventfd_pingpong(10_000)?;
//!
//! // 3. Build the result from the back end's JSON and the guest's debugfs.
//! let mut result = model::RunResult::new(model::RunMeta {
//!     scenario: sc.name.clone(),
//!     accelerator: "tcg".into(),
//!     start_time: "2026-11-22T06:40:00Z".into(),
//!     duration_ns: sc.duration_ms * 1_000_000,
//!     devices: vec!["irqstorm0".into()],
//!     ..Default::default()
//! });
//! let mut row = model::MechanismResult::new("tasklet", None);
//! row.host = model::HostCounters { raised: 10, records: 10, acked: 10, ..Default::default() };
//! //    host HDR histogram as a bucket list [(value_ns, count)] ...
//! row.raise_to_ack = Some(hist::Distribution::from_buckets([(25_000, 10)])?);
//! //    ... guest log2 buckets (bucket i = [2^i, 2^(i+1)) ns)
//! row.hardirq_to_bh = Some(hist::Distribution::from_log2(&[0; 12], None)?);
//! result.mechanisms.push(row);
//! result.baselines.host_eventfd = Some(evfd);
//! //    One-way raise -> hardirq: offset from PING exchanges, then pairs.
//! let pings = [offset::PingSample { t1_guest_send_ns: 0, t2_host_recv_ns: 5, t3_host_send_ns: 6, t4_guest_recv_ns: 11 }];
//! let est = offset::estimate(&pings)?;
//! result.mechanisms[0].raise_to_hardirq = Some(offset::one_way(&est, [(100, 120)])?);
//! //    With several devices (--socket-count): aggregate::aggregate(&[r0, r1, ..])
//! result.finalize()?; // summaries + ratios to the baselines
//!
//! // 4. Gate, write the report directory, exit non-zero on failures.
//! let failures = gate::apply(&sc, &mut result);
//! print!("{}", render::table(&result));
//! render::write_report_dir("target/irqstorm-report".as_ref(), &result, None)?;
//! if let Some(msg) = gate::exit_message(&failures) {
//!     eprint!("{msg}");
//!     std::process::exit(1);
//! }
//! # use irqstorm_report::hist;
//! # Ok(()) }
//! ```
//!
//! ## Modules
//! * [`scenario`]: TOML scenario files, validation, CONFIGURE bodies, ramp steps.
//! * [`model`]: the run result (`report.json` schema, `docs/report.md`),
//!   mechanism table (spec §6.5), conservation check.
//! * [`hist`]: HDR (bucket list or V2 base64) and log2 histograms, summaries.
//! * [`offset`]: NTP-style clock offset and one-way estimate (`docs/clock-offset.md`).
//! * [`baseline`]: host eventfd ping-pong.
//! * [`gate`]: thresholds and conservation -> checks with messages.
//! * [`render`]: console table, JUnit XML, SVG plots, Markdown, report directory.
//! * [`aggregate`]: merge several devices' results.

pub mod aggregate;
pub mod baseline;
pub mod gate;
pub mod hist;
pub mod input;
pub mod model;
pub mod offset;
pub mod render;
pub mod scenario;
