//! Host harness for irqstorm guest runs.
//!
//! - [`ktap`]: tolerant KTAP parser (stray printk lines ignored, nested subtests).
//! - [`boot`]: boots QEMU with a timeout, captures the console, detects crashes,
//!   starts/stops the vhost-user back end in device mode, and judges a run.
//! - [`cpio`]: deterministic newc cpio + gzip writer for the initramfs.
//! - [`args`]: the QEMU launch definition format of `qemu-config/irqstorm.args`.
//! - [`report`]: JSON and JUnit XML reports.
//! - [`scenario`]: runs a scenario file end to end (back end, guests, phases
//!   over the control socket) into a gated report.
//! - [`progress`]: `==> step` lines on stderr.

pub mod args;
pub mod boot;
pub mod cpio;
pub mod ktap;
pub mod progress;
pub mod report;
pub mod scenario;
