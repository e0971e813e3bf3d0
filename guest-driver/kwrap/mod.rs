// SPDX-License-Identifier: GPL-2.0

//! Small safe wrappers over `kernel::bindings` for the kernel facilities that the Rust
//! kernel crate (7.3) does not abstract yet.
//!
//! This directory is the ONLY place in the driver that touches `kernel::bindings`.
//! Every `unsafe` block carries a `// SAFETY:` comment.

pub(crate) mod class;
pub(crate) mod clock;
pub(crate) mod completion;
pub(crate) mod delay;
pub(crate) mod hrtimer;
pub(crate) mod irq;
pub(crate) mod kthread;
pub(crate) mod miscdev;
pub(crate) mod param;
pub(crate) mod sysfs;
pub(crate) mod tasklet;
pub(crate) mod timer_list;
pub(crate) mod usermode;
pub(crate) mod waitq;
pub(crate) mod workqueue;
