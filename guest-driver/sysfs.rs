// SPDX-License-Identifier: GPL-2.0

//! sysfs attributes on the PCI device (`/sys/bus/pci/devices/<bdf>/`):
//! `mechanism` (rw), `work` (rw), `counters` (ro).

use crate::{control, shared::Shared, kwrap::sysfs::{AttrDef, AttrOps, SysfsBuf}};
use kernel::prelude::*;

pub(crate) static ATTRS: [AttrDef; 3] = [
    AttrDef { name: c"mechanism", mode: 0o644 },
    AttrDef { name: c"work", mode: 0o644 },
    AttrDef { name: c"counters", mode: 0o444 },
];

impl AttrOps for Shared {
    fn show(&self, id: usize, out: &mut SysfsBuf<'_>) -> Result {
        let r = match id {
            0 | 1 => control::show_sources(self, out),
            _ => control::show_counters(self, out),
        };
        r.map_err(|_| EINVAL)
    }

    fn store(&self, id: usize, input: &str) -> Result {
        match id {
            0 => control::set_mechanism(self, input),
            1 => control::set_work(self, input),
            _ => Err(EPERM),
        }
    }
}
