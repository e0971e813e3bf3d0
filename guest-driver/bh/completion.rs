// SPDX-License-Identifier: GPL-2.0

//! A completion with a waiter thread (mechanism 11 `completion`): the hard IRQ handler calls
//! `complete()`, the waiter returns from `wait_for_completion_timeout()` and drains.

use crate::{
    dispatch::{Mech, Shared},
    kwrap::clock::msecs_to_jiffies,
};

/// One iteration of the waiter loop.
pub(crate) fn run(s: &Shared) {
    // Timed out or completed: drain either way (a timeout only bounds stop latency).
    let _ = s.comp.wait_timeout(msecs_to_jiffies(100));
    s.run_bh(Mech::Completion);
}
