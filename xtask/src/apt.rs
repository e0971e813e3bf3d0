//! A private apt configuration in the cache, for downloading (never
//! installing) packages from Debian trixie / trixie-backports: the kernel
//! source, QEMU and bindgen. The system's apt sources, lists and dpkg status are never
//! read or touched.

use crate::util::{self, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
pub const MIRROR: &str = "http://deb.debian.org/debian";

pub struct PrivateApt {
    root: PathBuf,
    updated: bool,
}

impl PrivateApt {
    pub fn new(cache: &Path) -> Self {
        PrivateApt {
            root: cache.join("apt"),
            updated: false,
        }
    }

    pub fn sources_list() -> String {
        let mirror = std::env::var("IRQSTORM_DEBIAN_MIRROR").unwrap_or_else(|_| MIRROR.into());
        format!(
            "deb [signed-by={KEYRING}] {mirror} trixie main\n\
             deb [signed-by={KEYRING}] {mirror} trixie-backports main\n"
        )
    }

    fn init(&self) -> Result<()> {
        for d in [
            "etc/preferences.d",
            "lists/partial",
            "cache/archives/partial",
        ] {
            std::fs::create_dir_all(self.root.join(d))?;
        }
        std::fs::write(self.root.join("etc/sources.list"), Self::sources_list())?;
        // Empty dpkg status: apt resolves the complete dependency closure.
        std::fs::write(self.root.join("status"), "")?;
        if !Path::new(KEYRING).exists() {
            bail!("{KEYRING} is missing: apt-get install debian-archive-keyring");
        }
        Ok(())
    }

    /// apt-get with the private configuration.
    pub fn apt_get(&self) -> Command {
        let r = &self.root;
        let mut c = Command::new("apt-get");
        let opts = [
            format!(
                "Dir::Etc::SourceList={}",
                r.join("etc/sources.list").display()
            ),
            "Dir::Etc::SourceParts=/dev/null".into(),
            format!("Dir::State::Lists={}", r.join("lists").display()),
            format!("Dir::Cache={}", r.join("cache").display()),
            format!("Dir::State::Status={}", r.join("status").display()),
            "Dir::Etc::Preferences=/dev/null".into(),
            format!(
                "Dir::Etc::PreferencesParts={}",
                r.join("etc/preferences.d").display()
            ),
            "APT::Install-Recommends=false".into(),
            "Debug::NoLocking=true".into(),
        ];
        for o in opts {
            c.arg("-o").arg(o);
        }
        if util::is_root() {
            // The cache is usually not readable by _apt; download as root.
            c.arg("-o").arg("APT::Sandbox::User=root");
        }
        c.arg("-q").env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// `apt-get update` on the private lists, once per process.
    pub fn update(&mut self) -> Result<()> {
        if self.updated {
            return Ok(());
        }
        self.init()?;
        step("updating private apt lists (trixie, trixie-backports)");
        let out = self
            .apt_get()
            .arg("update")
            .stdin(Stdio::null())
            .output()
            .context("cannot run apt-get (is this Debian?)")?;
        if !out.status.success() {
            bail!(
                "private apt-get update failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        self.updated = true;
        Ok(())
    }

    /// Download one package version into `dir`; returns the .deb path.
    /// `Ok(None)` means the mirror does not serve that version.
    pub fn download(&mut self, pkg: &str, version: &str, dir: &Path) -> Result<Option<PathBuf>> {
        self.update()?;
        std::fs::create_dir_all(dir)?;
        let out = self
            .apt_get()
            .arg("download")
            .arg(format!("{pkg}={version}"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .context("cannot run apt-get download")?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if err.contains("not found") || err.contains("Unable to locate") {
                return Ok(None);
            }
            bail!("apt-get download {pkg}={version} failed: {}", err.trim());
        }
        let found = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            });
        match found {
            Some(p) => Ok(Some(p)),
            None => bail!(
                "apt-get download {pkg}={version} produced no .deb in {}",
                dir.display()
            ),
        }
    }

    /// Download just these packages (no dependencies) from `release` into
    /// `dir`; returns one .deb per package.
    pub fn download_packages(
        &mut self,
        pkgs: &[&str],
        release: &str,
        dir: &Path,
    ) -> Result<Vec<PathBuf>> {
        self.update()?;
        std::fs::create_dir_all(dir)?;
        let out = self
            .apt_get()
            .arg("download")
            .args(pkgs.iter().map(|p| format!("{p}/{release}")))
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .context("cannot run apt-get download")?;
        if !out.status.success() {
            bail!(
                "apt-get download {} from {release} failed: {}",
                pkgs.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let debs = debs_in(dir)?;
        if debs.len() != pkgs.len() {
            bail!(
                "apt-get download {} from {release} gave {} .deb file(s) in {}",
                pkgs.join(" "),
                debs.len(),
                dir.display()
            );
        }
        Ok(debs)
    }

    /// Download `pkg` from `release` with its whole dependency closure into `dir`.
    pub fn download_closure(
        &mut self,
        pkg: &str,
        release: &str,
        dir: &Path,
    ) -> Result<Vec<PathBuf>> {
        self.update()?;
        std::fs::create_dir_all(dir.join("partial"))?;
        let out = self
            .apt_get()
            .arg("-o")
            .arg(format!("Dir::Cache::archives={}", dir.display()))
            .args(["--download-only", "-y", "-t", release, "install", pkg])
            .stdin(Stdio::null())
            .output()
            .context("cannot run apt-get")?;
        if !out.status.success() {
            bail!(
                "downloading {pkg} from {release} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let debs = debs_in(dir)?;
        if debs.is_empty() {
            bail!("downloading {pkg} from {release} produced no .deb files");
        }
        Ok(debs)
    }
}

/// The .deb files in `dir`, sorted.
fn debs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    Ok(debs)
}

/// `dpkg-deb -x deb dir`.
pub fn extract_deb(deb: &Path, dir: &Path) -> Result<()> {
    util::output(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir))
        .with_context(|| format!("extracting {}", deb.display()))?;
    Ok(())
}
