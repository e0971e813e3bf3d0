// SPDX-License-Identifier: GPL-2.0

//! The `irqstorm` class: one device per bound PCI function, `/sys/class/irqstorm/irqstormN`
//! (its `device` link is the PCI function; `/sys/bus/pci/devices/<bdf>/irqstorm/irqstormN`
//! is the same directory), with the class's attribute group:
//! `mechanism` (rw), `work` (rw), `counters` (ro), `index`, `mechanism_mask`, `storm` (ro).
//! Every uevent of the device (ADD, CHANGE on a storm, REMOVE) and its `uevent` file carry
//! `IRQSTORM_INDEX`, `IRQSTORM_MECHANISMS` and `IRQSTORM_STORM`. The class itself has `live`.

use crate::{
    control,
    index_pool::{Index, IndexPool},
    kwrap::{
        self,
        class::{ClassAttrDef, ClassDevice, ClassOps, Global, UeventEnv},
        sysfs::{AttrDef, AttrOps, SysfsBuf},
    },
    shared::Shared,
};
use core::fmt::Write;
use kernel::{
    device::{Bound, Device},
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

pub(crate) static CLASS: Global<ClassView> = Global::new();
static INDICES: IndexPool = IndexPool::new(32);

/// `/sys/class/irqstorm/live`: the module's kernel objects alive now, over every device (a
/// leak shows as a count that does not return to 0 once no device is bound).
pub(crate) static CLASS_ATTRS: [ClassAttrDef; 1] = [ClassAttrDef { name: c"live", show: show_live }];

fn show_live(out: &mut SysfsBuf<'_>) -> core::fmt::Result {
    writeln!(out, "workqueues {}", kwrap::workqueue::LIVE.load(Relaxed))?;
    writeln!(out, "kthreads {}", kwrap::kthread::LIVE.load(Relaxed))
}

pub(crate) static ATTRS: [AttrDef; 6] = [
    AttrDef { name: c"mechanism", mode: 0o644 },
    AttrDef { name: c"work", mode: 0o644 },
    AttrDef { name: c"counters", mode: 0o444 },
    AttrDef { name: c"index", mode: 0o444 },
    AttrDef { name: c"mechanism_mask", mode: 0o444 },
    AttrDef { name: c"storm", mode: 0o444 },
];

/// What the class device shows of a bound device.
pub(crate) struct ClassView {
    s: Arc<Shared>,
    index: Index,
}

impl ClassView {
    /// Bit `m` set when some source uses mechanism id `m` (spec 6.5).
    fn mechanism_mask(&self) -> u32 {
        (0..self.s.info.num_sources).fold(0, |a, i| a | 1u32 << (self.s.mech_of(i) as u32))
    }

    fn storm(&self) -> &'static str {
        if self.s.storm.in_storm.load(Relaxed) { "storm" } else { "calm" }
    }
}

impl AttrOps for ClassView {
    fn show(&self, id: usize, out: &mut SysfsBuf<'_>) -> Result {
        let r = match id {
            0 | 1 => control::show_sources(&self.s, out),
            2 => control::show_counters(&self.s, out),
            3 => writeln!(out, "{}", self.index.get()),
            4 => writeln!(out, "{:#x}", self.mechanism_mask()),
            _ => writeln!(out, "{}", self.storm()),
        };
        r.map_err(|_| EINVAL)
    }

    fn store(&self, id: usize, input: &str) -> Result {
        match id {
            0 => control::set_mechanism(&self.s, input),
            1 => control::set_work(&self.s, input),
            _ => Err(EPERM),
        }
    }
}

impl ClassOps for ClassView {
    fn uevent(&self, env: &mut UeventEnv<'_>) -> Result {
        env.add(fmt!("IRQSTORM_INDEX={}", self.index.get()))?;
        env.add(fmt!("IRQSTORM_MECHANISMS={:#x}", self.mechanism_mask()))?;
        env.add(fmt!("IRQSTORM_STORM={}", self.storm()))
    }
}

/// `/sys/class/irqstorm/irqstormN` for `s` under `parent`.
pub(crate) fn add(parent: &Device<Bound>, s: &Arc<Shared>) -> Result<ClassDevice<ClassView>> {
    let index = INDICES.take().ok_or(EBUSY)?;
    let n = index.get();
    let view = Arc::new(ClassView { s: s.clone(), index }, GFP_KERNEL)?;
    CLASS.add_device(parent, view, fmt!("irqstorm{n}"))
}
