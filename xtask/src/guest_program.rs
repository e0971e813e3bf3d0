//! The guest's user-space program `irqstorm-wait` (guest-user/): built
//! static for the guest by cargo, put in the initramfs as /bin/irqstorm-wait.

use crate::cargo;
use crate::util::{self, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's target: the VM is x86_64 (q35) whatever the host runs.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Its own target directory (under `CARGO_TARGET_DIR` when set, as the
/// CI examples set it to a cached path), so the flags it needs do not
/// invalidate the host build.
pub const TARGET_SUBDIR: &str = "guest-user";

/// The directories of that target directory that hold its builds (the host
/// build scripts', the guest target's), for copying them elsewhere.
pub const BUILD_DIRS: [&str; 2] = [
    "guest-user/release",
    "guest-user/x86_64-unknown-linux-gnu/release",
];

/// Builds `irqstorm-wait` statically linked (glibc's libc.a, from
/// libc6-dev) into [`TARGET_SUBDIR`]. Cargo's fingerprints make a rebuild a
/// no-op.
pub fn build(repo: &Path) -> Result<PathBuf> {
    let target_dir = crate::target_dir(repo).join(TARGET_SUBDIR);
    step("guest program: cargo build --release -p irqstorm-wait (static)");
    util::run(
        Command::new(cargo())
            .args([
                "build",
                "--release",
                "-p",
                "irqstorm-wait",
                "--target",
                TARGET,
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
            .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
            .current_dir(repo),
    )
    .context("building the guest program irqstorm-wait (needs libc6-dev for a static glibc)")?;
    let bin = target_dir.join(TARGET).join("release/irqstorm-wait");
    let data = std::fs::read(&bin).with_context(|| format!("read {}", bin.display()))?;
    if crate::initramfs::elf_is_dynamic(&data) != Some(false) {
        bail!(
            "{} is not a static x86_64 executable: the guest has no libc",
            bin.display()
        );
    }
    Ok(bin)
}
