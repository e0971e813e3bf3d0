//! Paths, hashing, command helpers, cache locking, progress display.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use irqstorm_harness::progress::{fmt_dur, step, with_label};

/// The repository root (parent of xtask/): of the checkout `cargo run`
/// started this binary from (cargo sets CARGO_MANIFEST_DIR at run time),
/// else of the one it was built from. Cargo reuses a build across
/// checkouts that share a target directory (its fingerprints are relative
/// to the workspace), so the built-in path can name another checkout.
pub fn repo_root() -> PathBuf {
    repo_root_from(std::env::var_os("CARGO_MANIFEST_DIR"))
}

fn repo_root_from(run_time: Option<std::ffi::OsString>) -> PathBuf {
    let here = run_time
        .filter(|p| Path::new(p).join("Cargo.toml").exists())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    here.parent().expect("xtask has a parent").to_path_buf()
}

/// The last `n` lines of `text` (a failed command's log, for its error).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A tool installed once into the cache directory `name` by `install`
/// (given the fresh, empty directory): its directory. A marker written
/// after `install` succeeded tells a finished install from an interrupted
/// one, which is redone.
pub fn installed_once(
    name: &str,
    what: &str,
    install: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = cache_root().join(name);
    let marker = dir.join(".installed");
    if marker.exists() {
        return Ok(dir);
    }
    step(&format!("installing {what} into {} (once)", dir.display()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    install(&dir)?;
    std::fs::write(&marker, what)?;
    Ok(dir)
}

/// A venv in the cache with one PyPI requirement installed (`python3 -m
/// venv`, then `pip install REQ`), made on first use; its directory.
pub fn pip_venv(name: &str, requirement: &str) -> Result<PathBuf> {
    installed_once(name, requirement, |dir| {
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        run(Command::new(python).args(["-m", "venv"]).arg(dir))
            .context("python3 -m venv (Debian: apt-get install python3-venv)")?;
        run(Command::new(dir.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(requirement))
        .with_context(|| format!("pip install {requirement} (needs PyPI)"))
    })
}

/// `$IRQSTORM_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/irqstorm`.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("IRQSTORM_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"));
    base.join("irqstorm")
}

/// Makes `dir` the empty report directory of a new run: created if
/// missing; a non-empty one is refused (its files would pass for this
/// run's: a failed run would publish an earlier run's summary) unless
/// `force`, which removes what is in it.
pub fn claim_report_dir(dir: &Path, force: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    if !force {
        bail!(
            "report directory {} is not empty ({} entries): its files would pass for this run's; \
             give a new or empty directory, or --force to empty it",
            dir.display(),
            entries.len()
        );
    }
    for p in entries {
        let r = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.with_context(|| format!("remove {}", p.display()))?;
    }
    Ok(())
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

pub fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cargo"))
        .join("bin")
}

/// PATH with ~/.cargo/bin first (rustc, cargo-fuzz, a user's bindgen).
pub fn tool_path() -> String {
    let old = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    format!("{}:{old}", cargo_bin().display())
}

pub const LIBCLANG_PATH: &str = "/usr/lib/llvm-19/lib";

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub struct Hasher(Sha256);

impl Hasher {
    pub fn new(domain: &str) -> Self {
        let mut h = Sha256::new();
        h.update(domain.as_bytes());
        h.update([0]);
        Hasher(h)
    }
    pub fn add(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        let b = bytes.as_ref();
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }
    /// First 16 hex digits: enough for cache keys.
    pub fn short(&self) -> String {
        self.full()[..16].to_string()
    }
    pub fn full(&self) -> String {
        irqstorm_harness::cpio::hex(&self.0.clone().finalize())
    }
}

pub fn sha256_file(p: &Path) -> Result<String> {
    let mut f = File::open(p).with_context(|| format!("open {}", p.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(irqstorm_harness::cpio::hex(&h.finalize()))
}

/// Run a command, return trimmed stdout; error includes stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// First line of `prog args` stdout, or None if it cannot run.
pub fn version_of(prog: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog)
        .args(args)
        .env("PATH", tool_path())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|s| s.trim().to_string())
}

/// Run a command with its output going to our terminal; fail on non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    log::debug!("running {cmd:?}");
    let st = cmd
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

/// Run a long command with output to `log` and a one-line progress display.
/// `label` names the step. Lines matching `counts` (Kbuild's "  CC  foo.o"
/// style) are counted as steps.
pub fn run_logged(cmd: &mut Command, label: &str, log: &Path) -> Result<usize> {
    run_logged_expect(cmd, label, log, None)
}

/// As [`run_logged`], showing a rough percentage if the usual number of
/// steps is known. Returns the number of steps seen.
pub fn run_logged_expect(
    cmd: &mut Command,
    label: &str,
    log: &Path,
    expected: Option<usize>,
) -> Result<usize> {
    let mut logf = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    writeln!(logf, "\n### {cmd:?}")?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ]
    .into_iter()
    .map(|r| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(r);
            loop {
                let mut buf = Vec::new();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(buf).is_err() {
                            break;
                        }
                    }
                }
            }
        })
    })
    .collect();
    drop(tx);
    let start = Instant::now();
    // A labelled (background) thread prints whole lines: a rewritten one
    // would garble the other thread's output.
    let tty = std::io::stderr().is_terminal() && irqstorm_harness::progress::label().is_none();
    let interval = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(30)
    };
    let mut last_print = Instant::now();
    let mut steps = 0usize;
    let mut last = String::new();
    loop {
        let buf = match rx.recv_timeout(interval) {
            Ok(b) => Some(b),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(buf) = buf {
            logf.write_all(&buf)?;
            let line = String::from_utf8_lossy(&buf);
            let t = line.trim();
            let first = t.split_whitespace().next().unwrap_or("");
            if line.starts_with("  ")
                && first.len() >= 2
                && first
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                steps += 1;
                last = t.split_whitespace().collect::<Vec<_>>().join(" ");
            }
        }
        if last_print.elapsed() >= interval {
            last_print = Instant::now();
            let msg = with_label(&format!(
                "{label}: {steps} steps{}, {} elapsed (last: {})",
                expected
                    .filter(|&e| e > 0)
                    .map(|e| format!(" (~{}%)", (steps * 100 / e).min(99)))
                    .unwrap_or_default(),
                fmt_dur(start.elapsed()),
                trunc(&last, 50)
            ));
            if tty {
                eprint!("\r\x1b[K  {msg}");
            } else {
                eprintln!("  {msg}");
            }
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let st = child.wait()?;
    if tty {
        eprint!("\r\x1b[K");
    }
    if !st.success() {
        bail!(
            "{label} failed ({st}) after {}; full log: {}",
            fmt_dur(start.elapsed()),
            log.display()
        );
    }
    eprintln!(
        "  {}",
        with_label(&format!(
            "{label}: done, {steps} steps in {}",
            fmt_dur(start.elapsed())
        ))
    );
    Ok(steps)
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// An exclusive lock on the cache (several xtasks share one cache).
pub struct CacheLock(#[allow(dead_code)] File);

pub fn lock_cache(root: &Path) -> Result<CacheLock> {
    std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
    let p = root.join(".lock");
    let f = File::create(&p).with_context(|| format!("create {}", p.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        eprintln!(
            "waiting for another cargo xtask using the cache ({})",
            p.display()
        );
        // SAFETY: as above, blocking this time.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if r != 0 {
            bail!("cannot lock {}", p.display());
        }
    }
    Ok(CacheLock(f))
}

/// Write a file atomically (tmp + rename).
pub fn write_atomic(p: &Path, data: &[u8]) -> Result<()> {
    let tmp = p.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, data).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, p).with_context(|| format!("rename to {}", p.display()))?;
    Ok(())
}

/// A fresh temporary directory next to `final_dir`, for build-then-rename.
pub fn fresh_tmp_dir(final_dir: &Path) -> Result<PathBuf> {
    let tmp = final_dir.with_extension(format!("tmp.{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    Ok(tmp)
}

/// Run `f` on a fresh temporary directory next to `final_dir`; the directory
/// is removed if `f` fails (so a failed download leaves nothing behind).
pub fn with_tmp_dir<T>(final_dir: &Path, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let tmp = fresh_tmp_dir(final_dir)?;
    let r = f(&tmp);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn the_checkout_cargo_ran_is_the_repository() {
        // Another checkout sharing this target directory: cargo ran its
        // xtask, so its paths are the ones to use.
        let other = std::env::temp_dir().join(format!("irqstorm-root-{}", std::process::id()));
        std::fs::create_dir_all(other.join("xtask")).unwrap();
        std::fs::write(other.join("xtask/Cargo.toml"), "").unwrap();
        assert_eq!(repo_root_from(Some(other.join("xtask").into())), other);
        // Not a manifest directory, or not set: the built-in one.
        let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let built = built.parent().unwrap();
        assert_eq!(repo_root_from(Some("/nonexistent".into())), built);
        assert_eq!(repo_root_from(None), built);
        std::fs::remove_dir_all(&other).unwrap();
    }

    #[test]
    fn a_report_dir_must_be_empty_unless_forced() {
        let d = std::env::temp_dir().join(format!("irqstorm-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        // New: created.
        claim_report_dir(&d, false).unwrap();
        assert!(d.is_dir());
        // An earlier run's files: refused, nothing touched.
        std::fs::write(d.join("summary.md"), "old").unwrap();
        std::fs::create_dir_all(d.join("runs/1")).unwrap();
        let e = claim_report_dir(&d, false).unwrap_err().to_string();
        assert!(
            e.contains("not empty (2 entries)") && e.contains("--force"),
            "{e}"
        );
        assert!(d.join("summary.md").exists());
        // Forced: emptied, the directory kept.
        claim_report_dir(&d, true).unwrap();
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
