// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Wire formats of the irqstorm device: defined in `irqstorm-protocol`.

pub use irqstorm_protocol::wire::*;
