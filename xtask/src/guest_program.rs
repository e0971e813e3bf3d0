//! The guest's user-space program `irqstorm-wait` (guest-user/): built
//! static for the guest by cargo, put in the initramfs as /bin/irqstorm-wait.

use crate::cargo;
use crate::util::{self, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's target: the VM is x86_64 (q35) whatever the host runs.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Its own target directory under cargo's (`CARGO_TARGET_DIR` when set, as
/// the CI examples set it to a cached path), so the flags it needs do not
/// invalidate the host build.
const TARGET_SUBDIR: &str = "guest-user";

/// Where it is built, given cargo's target directory.
pub fn dir(cargo_target: &Path) -> PathBuf {
    cargo_target.join(TARGET_SUBDIR)
}

/// The directories under cargo's target directory that hold its builds
/// (the host build scripts', the guest target's), for copying them elsewhere.
pub fn build_dirs() -> [String; 2] {
    [
        format!("{TARGET_SUBDIR}/release"),
        format!("{TARGET_SUBDIR}/{TARGET}/release"),
    ]
}

/// Builds `irqstorm-wait` statically linked (glibc's libc.a, from
/// libc6-dev) into [`dir`]. Cargo's fingerprints make a rebuild a no-op.
pub fn build(repo: &Path) -> Result<PathBuf> {
    let target_dir = dir(&crate::target_dir(repo));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_builds_under_cargos_target_directory_and_those_builds_are_listed() {
        // CARGO_TARGET_DIR set (the CI examples): there, not in the checkout.
        let t = crate::target_dir_from(Path::new("/src"), Some("/ci/target".into()));
        assert_eq!(dir(&t), Path::new("/ci/target/guest-user"));
        let t = crate::target_dir_from(Path::new("/src"), None);
        assert_eq!(dir(&t), Path::new("/src/target/guest-user"));
        for d in build_dirs() {
            assert!(Path::new(&d).starts_with(TARGET_SUBDIR), "{d}");
        }
    }
}
