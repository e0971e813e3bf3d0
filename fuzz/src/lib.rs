// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fuzzing the irqstorm back end (issue 10): the input formats, the drivers
//! and the invariant checks of the two libFuzzer targets in `fuzz_targets/`.
//! Everything is a library so the workspace's clippy and tests cover it and
//! a crashing input can be replayed as an ordinary test.
//!
//! - [`rings`]: the device model through controlq/eventq/ackq rings in
//!   guest memory.
//! - [`vhost_user`]: vhost-user messages through a real Unix socket into the
//!   back end's daemon.

pub mod input;
pub mod rings;
pub mod vhost_user;

/// The fuzz targets, as `cargo fuzz` names them.
pub const TARGETS: [&str; 2] = ["rings", "vhost_user"];

/// The seed inputs of a target (`None` for an unknown target).
pub fn target_seeds(target: &str) -> Option<Vec<(&'static str, Vec<u8>)>> {
    match target {
        "rings" => Some(rings::seeds::seeds()),
        "vhost_user" => Some(vhost_user::seeds::seeds()),
        _ => None,
    }
}
