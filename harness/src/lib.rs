//! Host harness for irqstorm guest runs.
//!
//! - [`ktap`]: tolerant KTAP parser (stray printk lines ignored, nested subtests).
//! - [`boot`]: boots QEMU with a timeout, captures the console, detects crashes,
//!   starts/stops the vhost-user back end in device mode, and judges a run.
//! - [`cpio`]: deterministic newc cpio + gzip writer for the initramfs.
//! - [`interference`]: host interference over a measured phase from `/proc`
//!   (vCPU run-queue wait, back end CPU, host load).
//! - [`args`]: the QEMU launch definition format of `qemu-config/irqstorm.args`.
//! - [`report`]: JSON and JUnit XML reports.
//! - [`scenario`]: runs a scenario file end to end (back end, guests, phases
//!   over the control socket) into a gated report.
//! - [`qmp`]: a small QMP client (pause, resume, run state of a guest).
//! - [`pause_soak`]: QMP stop/cont cycles under a storm, checked against the
//!   device's and the guest's counters.
//! - [`progress`]: `==> step` lines on stderr.

pub mod args;
pub mod boot;
pub mod cpio;
pub mod hotplug_soak;
pub mod interference;
pub mod ktap;
pub mod pause_soak;
pub mod progress;
pub mod qmp;
pub mod report;
pub mod scenario;
pub mod soak_guest;
