//! The guest initramfs: busybox-static, /init, the module, the guest program
//! `irqstorm-wait`, the guest tests.

use crate::util::{self, step};
use anyhow::{bail, Context, Result};
use irqstorm_harness::cpio::Archive;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BUSYBOX: &str = "/bin/busybox";

/// True if `data` is an ELF file with a PT_INTERP (dynamically linked).
pub fn elf_is_dynamic(data: &[u8]) -> Option<bool> {
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return None;
    }
    let u16at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u64at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64at(32), u16at(54), u16at(56));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > data.len() {
            return None;
        }
        if u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) == 3 {
            return Some(true);
        }
    }
    Some(false)
}

fn add_tree(a: &mut Archive, src: &Path, dest: &str) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(src)
        .with_context(|| format!("read {}", src.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let d = format!("{dest}/{name}");
        if p.is_dir() {
            a.dir(&d);
            add_tree(a, &p, &d)?;
        } else if p.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p)?.permissions().mode();
            let perm = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
            a.file(&d, std::fs::read(&p)?, perm);
        }
    }
    Ok(())
}

/// Assemble the archive (not yet written).
pub fn assemble(repo: &Path, module: &Path, wait: &Path) -> Result<Archive> {
    let bb = std::fs::read(BUSYBOX)
        .with_context(|| format!("{BUSYBOX} (apt-get install busybox-static)"))?;
    if elf_is_dynamic(&bb) != Some(false) {
        bail!("{BUSYBOX} is not a static x86_64 binary: apt-get install busybox-static");
    }
    let list = util::output(Command::new(BUSYBOX).arg("--list"))?;
    let mut a = Archive::new();
    for d in [
        "bin",
        "dev",
        "etc",
        "lib/modules",
        "proc",
        "run",
        "sys",
        "tmp",
        "tests",
    ] {
        a.dir(d);
    }
    a.char_dev("dev/console", 5, 1, 0o600);
    a.char_dev("dev/null", 1, 3, 0o666);
    a.file("bin/busybox", bb, 0o755);
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if applet != "busybox" && !applet.contains('/') {
            a.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    for l in ["sbin", "usr/bin", "usr/sbin"] {
        let up = "../".repeat(l.matches('/').count());
        a.symlink(l, &format!("{up}bin"));
    }
    a.file(
        "init",
        std::fs::read(repo.join("images/init")).context("read images/init")?,
        0o755,
    );
    a.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        0o644,
    );
    a.file("lib/modules/irqstorm.ko", std::fs::read(module)?, 0o644);
    a.file(
        "bin/irqstorm-wait",
        std::fs::read(wait).with_context(|| format!("read {}", wait.display()))?,
        0o755,
    );
    // Optional overlay: images/rootfs/ is copied to / (e.g. a uevent helper
    // in images/rootfs/bin/). Note /sbin, /usr/bin, /usr/sbin link to /bin.
    let overlay = repo.join("images/rootfs");
    if overlay.is_dir() {
        add_tree(&mut a, &overlay, "")?;
    }
    // $IRQSTORM_GUEST_TESTS replaces tests/guest/ (ad-hoc experiments).
    let tests = std::env::var_os("IRQSTORM_GUEST_TESTS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("tests/guest"));
    add_tree(&mut a, &tests, "tests")?;
    // The host's mechanism table, which the driver's debugfs `mechanisms` must match
    // (10-mechanisms).
    a.file(
        "tests/lib/mechanisms.txt",
        irqstorm_protocol::mechanisms::driver_listing().into_bytes(),
        0o644,
    );
    Ok(a)
}

/// Build (or reuse) the compressed initramfs; cached by content.
pub fn build(repo: &Path, cache: &Path, module: &Path, wait: &Path) -> Result<PathBuf> {
    let a = assemble(repo, module, wait)?;
    let hash = a.content_hash();
    let out = cache.join(format!("initramfs-{}.cpio.gz", &hash[..16]));
    if out.exists() {
        step(&format!("initramfs: cached ({})", out.display()));
        return Ok(out);
    }
    let gz = a.to_cpio_gz()?;
    util::write_atomic(&out, &gz)?;
    step(&format!(
        "initramfs: {} entries, {} KiB ({})",
        a.len(),
        gz.len() / 1024,
        out.display()
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_detection() {
        assert_eq!(elf_is_dynamic(b"#!/bin/sh\n"), None);
        // The test binary itself is dynamically linked.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(elf_is_dynamic(&me), Some(true));
    }

    #[test]
    fn initramfs_content_and_determinism() {
        let repo = util::repo_root();
        let dir =
            std::env::temp_dir().join(format!("irqstorm-initramfs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ko = dir.join("irqstorm.ko");
        std::fs::write(&ko, b"fake module").unwrap();
        let wait = dir.join("irqstorm-wait");
        std::fs::write(&wait, b"fake program").unwrap();
        let a = assemble(&repo, &ko, &wait).unwrap();
        let b = assemble(&repo, &ko, &wait).unwrap();
        assert_eq!(a.to_cpio_gz().unwrap(), b.to_cpio_gz().unwrap());
        let raw = a.to_cpio();
        let has = |name: &str| {
            let mut n = name.as_bytes().to_vec();
            n.push(0);
            raw.windows(n.len()).any(|w| w == n.as_slice())
        };
        for p in [
            "init",
            "bin/busybox",
            "bin/sh",
            "dev/console",
            "lib/modules/irqstorm.ko",
            "bin/irqstorm-wait",
            "tests/00-module.sh",
            "tests/lib/ktap.sh",
        ] {
            assert!(has(p), "{p} missing from the initramfs");
        }
        std::fs::write(&ko, b"other module").unwrap();
        let c = assemble(&repo, &ko, &wait).unwrap();
        assert_ne!(a.content_hash(), c.content_hash());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
