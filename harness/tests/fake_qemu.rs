//! The harness against fake "QEMU" scripts: proves the timeout, crash,
//! missing-KTAP and `not ok` paths without booting anything.

use irqstorm_harness::boot::{boot, evaluate, Backend, BackendSpec, BootSpec};
use std::path::PathBuf;
use std::time::Duration;

fn fake(name: &str, script: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fake-qemu-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("qemu");
    std::fs::write(&prog, format!("#!/bin/sh\n{script}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    (prog, dir.join("console.log"))
}

fn spec(prog: PathBuf, log: PathBuf, timeout_ms: u64) -> BootSpec {
    BootSpec {
        program: prog,
        args: vec![],
        env: vec![],
        console_log: log,
        timeout: Duration::from_millis(timeout_ms),
        stop_marker: None,
        echo: false,
        on_line: None,
        watch: None,
    }
}

/// A back end that binds its control socket a moment after its vhost-user
/// socket: `Backend::start` returns only once both exist (a soak that
/// connected at once failed "ctl.sock: No such file" on a loaded machine).
#[test]
fn backend_start_waits_for_the_control_socket_too() {
    let (prog, _) = fake(
        "backend-late-ctl",
        r#"while [ $# -gt 0 ]; do
  case "$1" in --socket-path) s="$2"; shift;; --control-socket) c="$2"; shift;; esac; shift
done
touch "$s"; sleep 1; touch "$c"; sleep 30"#,
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fake-backend-late-ctl");
    let spec = BackendSpec {
        binary: prog,
        dir: dir.join("sockets"),
        extra_args: vec![],
        log: dir.join("backend.log"),
        startup_timeout: Duration::from_secs(10),
    };
    let mut b = Backend::start(&spec).expect("started");
    assert!(spec.control_socket_path().exists());
    b.stop();
}

#[test]
fn a_watched_process_that_dies_ends_the_boot_at_once() {
    use irqstorm_harness::boot::Watch;
    use std::sync::Arc;
    let (p, log) = fake("watch", "echo booting; exec sleep 60");
    let gone = std::env::temp_dir().join(format!("irqstorm-watch-{}", std::process::id()));
    let _ = std::fs::remove_file(&gone);
    let g2 = gone.clone();
    let mut s = spec(p, log, 60_000);
    s.watch = Some(Watch(Arc::new(move || {
        g2.exists().then(|| "the back end /b died".to_string())
    })));
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(&gone, b"").unwrap();
        gone
    });
    let r = boot(&s).unwrap();
    let _ = std::fs::remove_file(t.join().unwrap());
    assert_eq!(r.died.as_deref(), Some("the back end /b died"));
    assert!(!r.timed_out);
    assert!(r.duration < Duration::from_secs(30), "{:?}", r.duration);
    let ev = evaluate(&r);
    assert_eq!(ev.failures.len(), 1, "{:?}", ev.failures);
    assert!(ev.failures[0].starts_with("the back end /b died: run ended"));
}

#[test]
fn line_hook_sees_every_console_line_in_order() {
    use irqstorm_harness::boot::LineHook;
    use std::sync::{Arc, Mutex};
    let (p, log) = fake("hook", "printf 'one\\r\\nIRQSTORM_MARK\\nthree\\n'");
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    let mut sp = spec(p, log, 20_000);
    sp.on_line = Some(LineHook(Arc::new(move |l: &str| {
        s2.lock().unwrap().push(l.trim_end().to_string())
    })));
    boot(&sp).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["one", "IRQSTORM_MARK", "three"]);
}

#[test]
fn garbage_then_hang_times_out() {
    let (p, log) = fake("hang", "echo 'SeaBIOS garbage'\nexec sleep 600");
    let r = boot(&spec(p, log.clone(), 1000)).unwrap();
    assert!(r.timed_out);
    let ev = evaluate(&r);
    assert!(!ev.ok());
    assert!(ev.failures[0].contains("timed out"), "{:?}", ev.failures);
    assert!(ev.failures[0].contains("without printing KTAP"));
    assert!(ev.failures[0].contains(&log.display().to_string()));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("SeaBIOS garbage") && text.contains("TIMEOUT"));
}

#[test]
fn good_run_passes() {
    let (p, log) = fake(
        "good",
        "printf '[    0.1] Linux\\r\\nKTAP version 1\\r\\n1..1\\r\\n    KTAP version 1\\r\\n    1..1\\r\\n    ok 1 insmod\\r\\nok 1 00-module\\r\\n'",
    );
    let ev = evaluate(&boot(&spec(p, log, 20_000)).unwrap());
    assert!(ev.ok(), "{:?}", ev.failures);
    assert_eq!((ev.passed, ev.failed), (1, 0));
}

#[test]
fn not_ok_is_named() {
    let (p, log) = fake(
        "notok",
        "printf 'KTAP version 1\\n1..2\\nok 1 a\\nnot ok 2 00-module\\n'",
    );
    let ev = evaluate(&boot(&spec(p, log, 20_000)).unwrap());
    assert!(!ev.ok());
    assert_eq!((ev.passed, ev.failed), (1, 1));
    assert!(ev.failures.iter().any(|f| f.contains("not ok: 00-module")));
}

#[test]
fn exit_without_ktap_quotes_stderr() {
    let (p, log) = fake(
        "noktap",
        "echo 'qemu-system-x86_64: -device foo: Failed to connect' >&2\nexit 1",
    );
    let ev = evaluate(&boot(&spec(p, log, 20_000)).unwrap());
    assert!(!ev.ok());
    assert!(
        ev.failures[0].contains("never printed KTAP"),
        "{:?}",
        ev.failures
    );
    assert!(ev.failures[0].contains("Failed to connect"));
}

#[test]
fn kernel_crash_is_reported() {
    let (p, log) = fake(
        "panic",
        "printf 'KTAP version 1\\n1..1\\n[    2.5] BUG: kernel NULL pointer dereference\\n[    2.6] Kernel panic - not syncing: Fatal exception\\n'",
    );
    let ev = evaluate(&boot(&spec(p, log, 20_000)).unwrap());
    assert!(!ev.ok());
    assert_eq!(ev.crashes.len(), 2);
    // One message: the crash (the missing results are its consequence).
    assert_eq!(ev.failures.len(), 1, "{:?}", ev.failures);
    assert!(ev.failures[0].contains("BUG: kernel NULL"));
    assert_eq!(ev.failed, 1);
}

#[test]
fn stop_marker_ends_the_boot() {
    let (p, log) = fake("marker", "echo 'irqstorm-init: start'\nexec sleep 600");
    let mut s = spec(p, log, 60_000);
    s.stop_marker = Some("irqstorm-init: start".into());
    let r = boot(&s).unwrap();
    assert!(r.stop_marker_seen && !r.timed_out);
}

#[test]
fn panic_before_ktap_is_one_message() {
    let (p, log) = fake(
        "early-panic",
        "printf '[    1.0] Kernel panic - not syncing: Attempted to kill init!\\n'",
    );
    let ev = evaluate(&boot(&spec(p, log, 20_000)).unwrap());
    assert_eq!(ev.failures.len(), 1, "{:?}", ev.failures);
    assert!(ev.failures[0].contains("Attempted to kill init"));
    assert_eq!(ev.failed, 1);
}
