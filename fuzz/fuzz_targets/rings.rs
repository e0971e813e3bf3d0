// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! libFuzzer target: the device model through fuzzed rings in guest memory
//! (format and checks: `irqstorm_fuzz::rings`). A broken invariant panics,
//! which libFuzzer reports as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(v) = irqstorm_fuzz::rings::run(data) {
        panic!("rings: {v}");
    }
});
