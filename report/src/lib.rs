//! # irqstorm-report
//!
//! Scenario files, end-to-end latency reports and CI gating for irqstorm
//! runs. This crate does no I/O to QEMU or the guest: the harness's runner
//! (`cargo xtask run`) drives the run and hands the numbers to it.
//!
//! ## Wiring it into `cargo xtask run --scenario F --report-dir D`
//!
//! The real wiring is `harness/src/scenario/` (guest side:
//! `tests/guest/lib/scenario.sh`); the sketch below shows the call sequence.
//! There, the one-way estimate comes from the back end's per-mechanism
//! `raw_raise_to_hardirq` histogram and each device's PING offset
//! ([`input::BackendStats::apply_one_way`]); when either is missing it is
//! reported as not measured (a note in `meta.notes`), never invented.
//!
//! ```no_run
//! use irqstorm_report::{aggregate, baseline, gate, input, model, offset, render, scenario};
//! # fn stats_reply() -> String { String::new() }
//! # fn debugfs(_: &str) -> Option<String> { None }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 1. Load and validate the scenario before booting anything (unknown
//! //    keys, ranges, mechanism names, sleep work on atomic mechanisms are
//! //    rejected with the file and the field path).
//! let sc = scenario::load("tests/scenarios/default.toml")?;
//! //    The back end needs sc.device.num_sources sources. After GET_INFO,
//! //    re-check against the limits the device reports:
//! //    sc.validate_against(&scenario::DeviceLimits { .. })
//!
//! // 2. The run, phase by phase: warm-up, measure, ramp steps.
//! let mut ramp = model::RampResult::default();
//! for phase in sc.plan() {
//!     for s in &phase.starts {
//!         // Host-driven: one request each to the control socket (spec §9;
//!         // irqstorm-protocol's `Request`, sent by its `Client`).
//!         // Guest-driven (s.driven_by == Guest): the driver sends s.body as
//!         // CONFIGURE (spec §6.1.2) and START with the same delay.
//!         let _configure = s.control_configure(0)?;
//!         let _start = s.control_start(0);
//!     }
//!     // ... every second print
//!     // render::progress_line(&phase.phase.name(), elapsed_ms, sc.total_ms(), raised, coalesced, acked)
//!     // then STOP all; after warm-up reset the stats; for a ramp step:
//!     // if !ramp.record(step, sc.ramp.as_ref().unwrap()) { break }
//! }
//!
//! // 3. Baseline measured in the same run: host eventfd ping-pong.
//! let evfd = baseline::host_eventfd_pingpong(10_000)?;
//!
//! // 4. Rows from the back end's `stats` reply (requested with
//! //    "buckets": true) and the guest's debugfs tables.
//! let stats = input::parse_backend_stats(&stats_reply())?;
//! let mut rows = stats.rows(&sc, None)?;
//! let (summary, lat, work) = (debugfs("summary"), debugfs("hist"), debugfs("work_hist"));
//! let (ref_lat, ref_work) = (debugfs("ref_hist"), debugfs("ref_work_hist"));
//! input::apply_guest(&mut rows, &input::GuestTexts {
//!     summary: summary.as_deref(),
//!     latency: lat.as_deref(),
//!     work: work.as_deref(),
//!     ref_latency: ref_lat.as_deref(),
//!     ref_work: ref_work.as_deref(),
//! })?;
//! //    One-way raise -> hardirq: offset from this device's PING exchanges,
//! //    applied to the back end's raw_raise_to_hardirq of each mechanism
//! //    (notes say what was not measured and count below-base/negative).
//! let pings = [offset::PingSample {
//!     t1_guest_send_ns: 0, t2_host_recv_ns: 5, t3_host_send_ns: 6, t4_guest_recv_ns: 11,
//! }];
//! let est = offset::estimate(&pings)?;
//! let notes = stats.apply_one_way(&mut rows, Some(&est), "irqstorm0")?;
//! //    (with per-event (raise_ns, hardirq_ns) pairs instead:
//! //    offset::one_way(&est, pairs))
//!
//! let mut result = model::RunResult::new(model::RunMeta {
//!     scenario: sc.name.clone(),
//!     scenario_file: "tests/scenarios/default.toml".into(),
//!     accelerator: "tcg".into(),
//!     start_time: "2026-11-22T06:40:00Z".into(),
//!     duration_ns: sc.duration_ms * 1_000_000,
//!     warmup_ns: sc.warmup_ms * 1_000_000,
//!     devices: vec!["irqstorm0".into()],
//!     tool_version: "0.1.0".into(),
//!     ..Default::default()
//! });
//! result.mechanisms = rows;
//! result.meta.notes.extend(notes);
//! result.baselines.host_eventfd = Some(evfd);
//! result.clock_offsets.push(model::DeviceOffset { device: "irqstorm0".into(), estimate: est });
//! if !ramp.steps.is_empty() {
//!     result.ramp = Some(ramp);
//! }
//! result.finalize()?; // summaries + ratios to the baselines
//! //    With several devices (--socket-count N): one RunResult per device,
//! //    then `let result = aggregate::aggregate(&per_device_results)?;`
//! # let _ = aggregate::aggregate;
//!
//! // 5. Gate, print the table, write the report directory, exit non-zero
//! //    on failures.
//! let failures = gate::apply(&sc, &mut result);
//! print!("{}", render::table(&result));
//! render::write_report_dir("target/irqstorm-report".as_ref(), &result, None)?;
//! if let Some(msg) = gate::exit_message(&failures) {
//!     eprint!("{msg}");
//!     std::process::exit(1);
//! }
//! # Ok(()) }
//! ```
//!
//! ## Modules
//! * [`scenario`]: TOML scenario files, validation, CONFIGURE bodies, the run's phases.
//! * [`model`]: the run result (`report.json` schema, `docs/report.md`),
//!   mechanism table (spec §6.5), conservation check.
//! * [`hist`]: HDR (bucket list or V2 base64) and log2 histograms, summaries.
//! * [`input`]: the back end's `stats` JSON and the guest's debugfs tables -> rows.
//! * [`offset`]: NTP-style clock offset and one-way estimate (`docs/clock-offset.md`).
//! * [`baseline`]: host eventfd ping-pong.
//! * [`gate`]: thresholds and conservation -> checks with messages.
//! * [`render`]: console table, JUnit XML, SVG plots, Markdown, report directory.
//! * [`aggregate`]: merge several devices' results.

pub mod aggregate;
pub mod baseline;
pub mod compare;
pub mod gate;
pub mod hist;
pub mod input;
pub mod kcidb;
pub mod merge;
pub mod model;
pub mod offset;
pub mod render;
pub mod scenario;
pub mod utc;
