// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! What the irqstorm host crates say to each other and to the device:
//!
//! * [`wire`]: the device's little-endian records and constants
//!   (docs/device-spec.md §4-§7);
//! * [`control`]: the host control socket's requests and replies (§9);
//! * [`stats`]: the `stats` object of that socket (§9);
//! * [`client`]: the one client of the control socket.

pub mod client;
pub mod control;
pub mod mechanisms;
pub mod stats;
pub mod timebase;
pub mod uapi;
pub mod wire;
