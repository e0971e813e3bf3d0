//! Prerequisites: check (doctor), install (as root), or print the fix.

use crate::util::{self, step};
use anyhow::{anyhow, bail, Result};
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
        "libclang for the kernel's bindgen (>= 17.0.1)",
    ),
    ("busybox-static", "guest userland"),
    (
        "debian-archive-keyring",
        "private apt for trixie(-backports)",
    ),
    ("apt", "private apt downloads"),
    ("dpkg", "dpkg-deb to unpack downloaded packages"),
    ("tar", "unpacking the kernel source"),
    (
        "python3-venv",
        "venvs for kcidb-io and actionlint (`cargo xtask test`)",
    ),
    (
        "shellcheck",
        "actionlint's check of run: scripts, docs/ci/*.sh",
    ),
    ("rsync", "gitlab-ci-local (the GitLab example's check)"),
];

/// Node.js with npm for gitlab-ci-local (>= 18; Debian 12's nodejs is 18).
pub const NODE_MIN_MAJOR: u32 = 18;

/// Versions that key the kernel build (bindgen's is the kernel build's
/// choice: crate::bindgen).
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub gcc: String,
    pub rustc: String,
    pub libclang: String,
    pub make: String,
}

impl Toolchain {
    pub fn detect() -> Toolchain {
        let pk = dpkg_versions(&["libclang-19-dev"]);
        Toolchain {
            gcc: util::version_of("gcc", &["--version"]).unwrap_or_default(),
            rustc: util::version_of("rustc", &["--version"]).unwrap_or_default(),
            libclang: pk.get("libclang-19-dev").cloned().unwrap_or_default(),
            make: util::version_of("make", &["--version"]).unwrap_or_default(),
        }
    }
    /// With `bindgen`'s version text (`bindgen --version`).
    pub fn fingerprint(&self, bindgen: &str) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            self.gcc, self.rustc, bindgen, self.libclang, self.make
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

/// How to fix a missing prerequisite: a command set-up can run (as argv,
/// never through a shell), or advice for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// `apt-get install --no-install-recommends PKG...`
    AptInstall(Vec<String>),
    /// `rustup component add NAME`
    RustupComponent(String),
    /// Not a command (e.g. "install rustup: <https://rustup.rs>").
    Advice(String),
}

impl Fix {
    /// The command as argv; `None` for advice.
    pub fn argv(&self) -> Option<Vec<String>> {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Some(match self {
            Fix::AptInstall(pkgs) => {
                let mut a = v(&["apt-get", "install", "--no-install-recommends"]);
                a.extend(pkgs.iter().cloned());
                a
            }
            Fix::RustupComponent(c) => v(&["rustup", "component", "add", c]),
            Fix::Advice(_) => return None,
        })
    }
}

impl std::fmt::Display for Fix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fix::Advice(a) => f.write_str(a),
            cmd => f.write_str(&cmd.argv().unwrap_or_default().join(" ")),
        }
    }
}

/// One line of the doctor's report.
pub struct Check {
    pub name: String,
    pub version: Option<String>,
    pub ok: bool,
    pub fix: Option<Fix>,
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
        fix: (!ok).then(|| Fix::RustupComponent(name.to_string())),
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
            fix: v.is_none().then(|| Fix::AptInstall(vec![p.to_string()])),
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
            .then(|| Fix::Advice("install rustup: https://rustup.rs".to_string())),
        version: rustc,
        info: false,
    });
    for c in ["rust-src", "rustfmt", "clippy"] {
        out.push(rustup_component(c));
    }
    out.push(node_check());
    let lc = Path::new(util::LIBCLANG_PATH).join("libclang.so");
    out.push(Check {
        name: format!("libclang at {}", util::LIBCLANG_PATH),
        version: None,
        ok: lc.exists(),
        fix: (!lc.exists()).then(|| Fix::AptInstall(vec!["libclang-19-dev".to_string()])),
        info: false,
    });
    out
}

/// `node` >= NODE_MIN_MAJOR and `npm`: present on a machine with
/// NodeSource's nodejs (npm inside), else Debian's nodejs + npm.
fn node_check() -> Check {
    let node = util::version_of("node", &["--version"]);
    let npm = util::version_of("npm", &["--version"]);
    let major = node.as_deref().and_then(|v| {
        v.trim_start_matches('v')
            .split('.')
            .next()?
            .parse::<u32>()
            .ok()
    });
    let ok = npm.is_some() && major.is_some_and(|m| m >= NODE_MIN_MAJOR);
    Check {
        name: format!("node >= {NODE_MIN_MAJOR} and npm (gitlab-ci-local)"),
        version: node.map(|n| format!("node {n}, npm {}", npm.as_deref().unwrap_or("missing"))),
        ok,
        fix: (!ok).then(|| Fix::AptInstall(vec!["nodejs".into(), "npm".into()])),
        info: false,
    }
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

/// The fixes for everything missing: one apt-get install with every
/// package first, then the others, each once.
fn fix_commands(missing: &[&Check]) -> Vec<Fix> {
    let pkgs: Vec<String> = missing
        .iter()
        .filter_map(|c| match &c.fix {
            Some(Fix::AptInstall(p)) => Some(p.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cmds = Vec::new();
    if !pkgs.is_empty() {
        cmds.push(Fix::AptInstall(pkgs));
    }
    for f in missing.iter().filter_map(|c| c.fix.as_ref()) {
        if !matches!(f, Fix::AptInstall(_)) && !cmds.contains(f) {
            cmds.push(f.clone());
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
            match c {
                Fix::AptInstall(_) => eprintln!("  sudo {c}"),
                _ => eprintln!("  {c}"),
            }
        }
        bail!(
            "{} prerequisite(s) missing (not root: not installing)",
            missing.len()
        );
    }
    // Every fix must be a command before any runs.
    let runs = cmds
        .iter()
        .map(|c| {
            c.argv()
                .map(|argv| (c, argv))
                .ok_or_else(|| anyhow!("cannot set up automatically: {c}"))
        })
        .collect::<Result<Vec<_>>>()?;
    // rustup first (the toolchain must not change under a build), then the
    // packages.
    for (c, argv) in &runs {
        match c {
            Fix::RustupComponent(_) => {
                step(&format!("set-up: {c}"));
                // With PATH changed, the child's PATH finds the program too.
                util::run(
                    Command::new(&argv[0])
                        .args(&argv[1..])
                        .env("PATH", util::tool_path()),
                )?;
            }
            Fix::AptInstall(_) | Fix::Advice(_) => {}
        }
    }
    for (c, _) in &runs {
        if let Fix::AptInstall(pkgs) = c {
            install_packages(pkgs)?;
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
fn install_packages(pkgs: &[String]) -> Result<()> {
    step(&format!("set-up: apt-get install {}", pkgs.join(" ")));
    let simulate = |pkgs: &[String]| {
        Command::new("apt-get")
            .args(["-s", "install", "--no-install-recommends"])
            .args(pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
    };
    let mut sim = simulate(pkgs)?;
    if !sim.status.success() {
        step("set-up: apt-get update (package lists missing or stale)");
        util::run(Command::new("apt-get").arg("update"))?;
        sim = simulate(pkgs)?;
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
            .args(pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(name: &str, fix: Fix) -> Check {
        Check {
            name: name.into(),
            version: None,
            ok: false,
            fix: Some(fix),
            info: false,
        }
    }

    fn apt(p: &str) -> Fix {
        Fix::AptInstall(vec![p.into()])
    }

    #[test]
    fn fix_commands_group_packages_first() {
        let a = missing("bc", apt("bc"));
        let b = missing("rust-src", Fix::RustupComponent("rust-src".into()));
        let c = missing("flex", apt("flex"));
        let d = missing("libclang", apt("libclang-19-dev"));
        let e = missing("libclang pkg", apt("libclang-19-dev"));
        let cmds = fix_commands(&[&a, &b, &c, &d, &e]);
        assert_eq!(
            cmds.iter().map(Fix::to_string).collect::<Vec<_>>(),
            vec![
                "apt-get install --no-install-recommends bc flex libclang-19-dev".to_string(),
                "rustup component add rust-src".to_string()
            ]
        );
        assert_eq!(
            cmds[0].argv().unwrap(),
            [
                "apt-get",
                "install",
                "--no-install-recommends",
                "bc",
                "flex",
                "libclang-19-dev"
            ]
        );
    }

    #[test]
    fn fixes_are_argv_not_shell_text() {
        assert_eq!(
            Fix::RustupComponent("clippy".into()).argv().unwrap(),
            ["rustup", "component", "add", "clippy"]
        );
        let advice = Fix::Advice("install rustup: https://rustup.rs".into());
        assert_eq!(advice.argv(), None);
        assert_eq!(advice.to_string(), "install rustup: https://rustup.rs");
    }
}
