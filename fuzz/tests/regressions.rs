// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Inputs the fuzzer found that crashed the back end, each replayed in a
//! child process (`irqstorm-fuzz show`): a crash kills the process it
//! happens in, so the test can report it instead of dying with it.

use std::process::Command;

#[test]
fn vhost_user_crashes_found_by_fuzzing_stay_fixed() {
    let dir = std::env::temp_dir().join(format!("irqstorm-fuzz-regr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in irqstorm_fuzz::vhost_user::seeds::regressions() {
        let f = dir.join(name);
        std::fs::write(&f, data).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_irqstorm-fuzz"))
            .args(["show", "vhost_user"])
            .arg(&f)
            // The input is only a crash with memfds as short as it says.
            .env("IRQSTORM_FUZZ_SHORT_MEMFDS", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: replay ended with {} (a signal is a crash); last output: {}",
            out.status,
            stdout.lines().last().unwrap_or_default()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
