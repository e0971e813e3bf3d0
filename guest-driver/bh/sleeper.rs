// SPDX-License-Identifier: GPL-2.0

//! The sleeper kthread (mechanisms 15 `kthread_msleep`, 16 `kthread_usleep`): woken from the
//! hard IRQ handler like `kthread`, it sleeps the requested delay of the first waiting
//! record's source, `msleep(ceil(d / 1000))` or `usleep_range(d, d + d / 4 + 1)`, then runs
//! that mechanism's queue. Armed just before the sleep, so the lateness of the run's first
//! record is the sleep's own (the classic "msleep(1) sleeps a jiffy or more").

use crate::{
    kwrap::{
        clock::{now_ns, Stamp},
        delay::{msleep, usleep_range},
        kthread::KThread,
    },
    mech::Mech,
    shared::Shared,
};
use kernel::{prelude::*, sync::Arc};

const SLEEPERS: [Mech; 2] = [Mech::KthreadMsleep, Mech::KthreadUsleep];

pub(super) fn schedule(s: &Shared) {
    s.bh.sl_wait.notify_one();
}

pub(super) fn spawn(s: &Arc<Shared>) -> Result<KThread> {
    KThread::spawn(s.clone(), run, c"irqstorm_sleep", crate::params::kthread_fifo.value())
}

/// Sleeps what `m` asks for a delay of `delay_us`; returns the delay asked of the kernel (us).
fn sleep(m: Mech, delay_us: u32) -> u32 {
    if m == Mech::KthreadMsleep {
        let ms = delay_us.div_ceil(1000);
        msleep(ms);
        ms * 1000
    } else {
        let us = u64::from(delay_us);
        usleep_range(us, us + us / 4 + 1);
        delay_us
    }
}

/// One iteration of the thread loop (`kwrap::kthread` repeats it until `kthread_stop`).
fn run(s: &Shared) {
    let ready = || {
        let f = s.bh.fifos.lock();
        SLEEPERS.iter().any(|m| !f[*m as usize].is_empty()) || s.is_stopping()
    };
    let _ = s.bh.sl_wait.wait_until(ready);
    for m in SLEEPERS {
        let head = s.bh.fifos.lock()[m as usize].front().map(|it| it.source);
        let Some(source) = head else { continue };
        if s.is_stopping() {
            // Teardown: drain without sleeping.
            super::run(s, m, None);
            continue;
        }
        let armed = now_ns();
        let asked = sleep(m, s.delay_of(source));
        // First statement after the sleep: the bottom-half start of the run's first record.
        let woke = Stamp::now();
        super::run_armed(s, m, Some(woke), Some((armed, asked)));
    }
}
