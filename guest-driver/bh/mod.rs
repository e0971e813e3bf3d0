// SPDX-License-Identifier: GPL-2.0

//! The bottom halves, one small file each. Every one of them ends in
//! [`crate::dispatch::Shared::run_bh`], which stamps start/end, runs the source's simulated
//! work, updates the mechanism's histograms and posts the acks (batched).

pub(crate) mod bh_wq;
pub(crate) mod completion;
pub(crate) mod hrtimer;
pub(crate) mod kthread;
pub(crate) mod tasklet;
pub(crate) mod threaded;
pub(crate) mod timer_list;
pub(crate) mod workqueue;
