//! Prerequisites: check (doctor), install (as root), or print the fix.

use crate::util::{self, step};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// Debian packages the lab needs, with what each is for.
pub const PACKAGES: &[(&str, &str)] = &[
    ("gcc", "kernel C compiler"),
    ("libc6-dev", "headers for kernel host tools"),
    ("make", "kernel build"),
    ("flex", "kernel kconfig"),
    ("bison", "kernel kconfig"),
    ("bc", "kernel build"),
    ("libelf-dev", "kernel objtool"),
    ("libssl-dev", "kernel sign-file / certs"),
    ("cpio", "kernel build (kheaders)"),
    ("xz-utils", "unpacking the kernel source"),
    ("binutils", "kernel link"),
    (
        "libclang-19-dev",
        "bindgen for Rust-for-Linux (libclang >= 17.0.1)",
    ),
    ("busybox-static", "guest userland"),
    (
        "debian-archive-keyring",
        "private apt for trixie(-backports)",
    ),
    ("apt", "private apt downloads"),
    ("dpkg", "dpkg-deb to unpack downloaded packages"),
    ("tar", "unpacking the kernel source"),
];

pub const BINDGEN_VERSION: &str = "0.73.2";

/// Versions that key the kernel build.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub gcc: String,
    pub rustc: String,
    pub bindgen: String,
    pub libclang: String,
    pub make: String,
}

impl Toolchain {
    pub fn detect() -> Toolchain {
        let pk = dpkg_versions(&["libclang-19-dev"]);
        Toolchain {
            gcc: util::version_of("gcc", &["--version"]).unwrap_or_default(),
            rustc: util::version_of("rustc", &["--version"]).unwrap_or_default(),
            bindgen: util::version_of("bindgen", &["--version"]).unwrap_or_default(),
            libclang: pk.get("libclang-19-dev").cloned().unwrap_or_default(),
            make: util::version_of("make", &["--version"]).unwrap_or_default(),
        }
    }
    pub fn fingerprint(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            self.gcc, self.rustc, self.bindgen, self.libclang, self.make
        )
    }
}

/// Installed versions of the given packages (absent = not installed).
pub fn dpkg_versions(pkgs: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${db:Status-Abbrev} ${Version}\n")
        .args(pkgs)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let mut m = BTreeMap::new();
    if let Ok(o) = out {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 3 && f[1] == "ii" {
                m.insert(
                    f[0].split(':').next().unwrap_or(f[0]).to_string(),
                    f[2].to_string(),
                );
            }
        }
    }
    m
}

/// One line of the doctor's report.
pub struct Check {
    pub name: String,
    pub version: Option<String>,
    pub ok: bool,
    pub fix: Option<String>,
    /// Informational only: never blocks.
    pub info: bool,
}

fn rust_src_installed() -> bool {
    util::version_of("rustc", &["--print", "sysroot"])
        .map(|s| {
            Path::new(&s)
                .join("lib/rustlib/src/rust/library/core")
                .exists()
        })
        .unwrap_or(false)
}

fn rustup_component(name: &str) -> Check {
    let (ok, ver) = match name {
        "rust-src" => (rust_src_installed(), None),
        "rustfmt" => {
            let v = util::version_of("rustfmt", &["--version"]);
            (v.is_some(), v)
        }
        "clippy" => {
            let v = util::version_of("cargo", &["clippy", "--version"]);
            (v.is_some(), v)
        }
        _ => (false, None),
    };
    Check {
        name: format!("rustup component {name}"),
        version: ver,
        ok,
        fix: (!ok).then(|| format!("rustup component add {name}")),
        info: false,
    }
}

/// All prerequisite checks (packages, Rust bits). QEMU and KVM are reported
/// by the caller (they are provisioned or probed, not installed).
pub fn checks() -> Vec<Check> {
    let names: Vec<&str> = PACKAGES.iter().map(|p| p.0).collect();
    let have = dpkg_versions(&names);
    let mut out = Vec::new();
    for (p, why) in PACKAGES {
        let v = have.get(*p).cloned();
        out.push(Check {
            name: format!("{p} ({why})"),
            ok: v.is_some(),
            fix: v
                .is_none()
                .then(|| format!("apt-get install --no-install-recommends {p}")),
            version: v,
            info: false,
        });
    }
    let rustc = util::version_of("rustc", &["--version"]);
    out.push(Check {
        name: "rustc (Rust-for-Linux needs >= 1.78)".into(),
        ok: rustc.is_some(),
        fix: rustc
            .is_none()
            .then(|| "install rustup: https://rustup.rs".to_string()),
        version: rustc,
        info: false,
    });
    for c in ["rust-src", "rustfmt", "clippy"] {
        out.push(rustup_component(c));
    }
    let bg = util::version_of("bindgen", &["--version"]);
    let bg_ok = bg
        .as_deref()
        .is_some_and(|v| v.split_whitespace().nth(1) == Some(BINDGEN_VERSION));
    out.push(Check {
        name: format!("bindgen-cli {BINDGEN_VERSION} (in ~/.cargo/bin)"),
        version: bg,
        ok: bg_ok,
        fix: (!bg_ok).then(|| format!("cargo install --locked bindgen-cli@{BINDGEN_VERSION}")),
        info: false,
    });
    let lc = Path::new(util::LIBCLANG_PATH).join("libclang.so");
    out.push(Check {
        name: format!("libclang at {}", util::LIBCLANG_PATH),
        version: None,
        ok: lc.exists(),
        fix: (!lc.exists())
            .then(|| "apt-get install --no-install-recommends libclang-19-dev".to_string()),
        info: false,
    });
    out
}

pub fn print_checks(checks: &[Check]) {
    for c in checks {
        let status = match (c.ok, c.info) {
            (true, _) => "OK     ",
            (false, true) => "NOTE   ",
            (false, false) => "MISSING",
        };
        eprintln!(
            "  [{status}] {:<58} {}",
            c.name,
            c.version.as_deref().unwrap_or("")
        );
        if let (false, Some(f)) = (c.ok, &c.fix) {
            eprintln!("            fix: {f}");
        }
    }
}

/// The commands that fix everything missing.
fn fix_commands(missing: &[&Check]) -> Vec<String> {
    let pkgs: Vec<String> = missing
        .iter()
        .filter_map(|c| c.fix.as_deref())
        .filter_map(|f| f.strip_prefix("apt-get install --no-install-recommends "))
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cmds = Vec::new();
    if !pkgs.is_empty() {
        cmds.push(format!(
            "apt-get install --no-install-recommends {}",
            pkgs.join(" ")
        ));
    }
    for c in missing {
        if let Some(f) = &c.fix {
            if !f.starts_with("apt-get") && !cmds.contains(f) {
                cmds.push(f.clone());
            }
        }
    }
    cmds
}

/// Make sure every prerequisite is there: as root, install what is missing;
/// otherwise print the exact commands and fail.
pub fn ensure() -> Result<()> {
    let all = checks();
    let missing: Vec<&Check> = all.iter().filter(|c| !c.ok && !c.info).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let cmds = fix_commands(&missing);
    if !util::is_root() {
        eprintln!("missing prerequisites:");
        for c in &missing {
            eprintln!("  - {}", c.name);
        }
        eprintln!("run these commands, then try again:");
        for c in &cmds {
            if c.starts_with("apt-get") {
                eprintln!("  sudo {c}");
            } else {
                eprintln!("  {c}");
            }
        }
        bail!(
            "{} prerequisite(s) missing (not root: not installing)",
            missing.len()
        );
    }
    if let Some(c) = cmds.iter().find(|c| {
        !["apt-get ", "rustup ", "cargo "]
            .iter()
            .any(|p| c.starts_with(p))
    }) {
        bail!("cannot set up automatically: {c}");
    }
    for c in &cmds {
        if c.starts_with("apt-get install") {
            install_packages(c)?;
        } else {
            step(&format!("set-up: {c}"));
            util::run(
                Command::new("sh")
                    .arg("-c")
                    .arg(c)
                    .env("PATH", util::tool_path()),
            )?;
        }
    }
    let still: Vec<String> = checks()
        .into_iter()
        .filter(|c| !c.ok && !c.info)
        .map(|c| c.name)
        .collect();
    if !still.is_empty() {
        bail!("still missing after set-up: {}", still.join(", "));
    }
    Ok(())
}

/// Install Debian packages from the system's own sources, refusing any plan
/// that would upgrade libc6.
fn install_packages(cmd: &str) -> Result<()> {
    let pkgs: Vec<&str> = cmd
        .trim_start_matches("apt-get install --no-install-recommends ")
        .split_whitespace()
        .collect();
    step(&format!("set-up: apt-get install {}", pkgs.join(" ")));
    let simulate = |pkgs: &[&str]| {
        Command::new("apt-get")
            .args(["-s", "install", "--no-install-recommends"])
            .args(pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
    };
    let mut sim = simulate(&pkgs)?;
    if !sim.status.success() {
        step("set-up: apt-get update (package lists missing or stale)");
        util::run(Command::new("apt-get").arg("update"))?;
        sim = simulate(&pkgs)?;
    }
    let plan = String::from_utf8_lossy(&sim.stdout);
    if !sim.status.success() {
        bail!(
            "apt-get cannot install {}: {}",
            pkgs.join(" "),
            String::from_utf8_lossy(&sim.stderr).trim()
        );
    }
    if let Some(l) = plan
        .lines()
        .find(|l| l.starts_with("Inst libc6 ") || l.starts_with("Inst libc6:"))
    {
        bail!(
            "refusing to install {}: apt would change the system libc ({l}); install the packages by hand",
            pkgs.join(" ")
        );
    }
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(name: &str, fix: &str) -> Check {
        Check {
            name: name.into(),
            version: None,
            ok: false,
            fix: Some(fix.into()),
            info: false,
        }
    }

    #[test]
    fn fix_commands_group_packages_first() {
        let a = missing("bc", "apt-get install --no-install-recommends bc");
        let b = missing("rust-src", "rustup component add rust-src");
        let c = missing("flex", "apt-get install --no-install-recommends flex");
        let d = missing(
            "libclang",
            "apt-get install --no-install-recommends libclang-19-dev",
        );
        let e = missing(
            "libclang pkg",
            "apt-get install --no-install-recommends libclang-19-dev",
        );
        let cmds = fix_commands(&[&a, &b, &c, &d, &e]);
        assert_eq!(
            cmds,
            vec![
                "apt-get install --no-install-recommends bc flex libclang-19-dev".to_string(),
                "rustup component add rust-src".to_string()
            ]
        );
    }
}
