use super::*;
use std::time::Duration;

/// `grep ^cpu /proc/stat` and `/proc/loadavg` of this lab's 2-core host
/// (2026-12-02), the `intr` line cut short.
const PROC_STAT: &str = "cpu  105744 16338 16881 91655 602 0 147 235 0 0
cpu0 50773 9216 8106 47489 101 0 15 111 0 0
cpu1 54970 7122 8774 44165 501 0 131 124 0 0
intr 523115 0 0 0 0 0
ctxt 1234567
btime 1764650000
";
const LOADAVG: &str = "4.12 3.37 1.83 3/103 29910\n";

#[test]
fn schedstat_lines_parse_and_bad_ones_are_errors() {
    assert_eq!(
        parse_schedstat("212422907 16574436 368\n").unwrap(),
        SchedStat {
            cpu_ns: 212_422_907,
            wait_ns: 16_574_436,
            timeslices: 368
        }
    );
    for bad in ["", "1 2", "1 2 3 4", "a b c", "-1 2 3"] {
        let e = parse_schedstat(bad).unwrap_err().to_string();
        assert!(e.starts_with("schedstat"), "{bad}: {e}");
    }
    let a = parse_schedstat("10 20 3").unwrap();
    let b = parse_schedstat("15 18 5").unwrap();
    assert_eq!(
        b.since(&a),
        SchedStat {
            cpu_ns: 5,
            wait_ns: 0,
            timeslices: 2
        }
    );
}

#[test]
fn proc_stat_gives_per_core_busy_and_total() {
    let c = parse_proc_stat(PROC_STAT).unwrap();
    assert_eq!(c.len(), 2);
    // user nice system idle iowait irq softirq steal (guest columns left out)
    assert_eq!(c[0].name, "cpu0");
    assert_eq!(c[0].total, 50773 + 9216 + 8106 + 47489 + 101 + 15 + 111);
    assert_eq!(c[0].busy, c[0].total - 47489 - 101);
    assert_eq!(c[1].busy, 54970 + 7122 + 8774 + 131 + 124);
    assert!(parse_proc_stat("cpu  1 2 3 4\nintr 5\n").is_err());
    assert!(parse_proc_stat("cpu0 1 2 x 4\n").is_err());
    assert!(parse_proc_stat("cpu0 1 2 3\n").is_err());
    assert_eq!(parse_loadavg(LOADAVG).unwrap(), [4.12, 3.37, 1.83]);
    assert!(parse_loadavg("4.12 x 1\n").is_err());
    assert!(parse_loadavg("4.12\n").is_err());
}

#[test]
fn vcpu_threads_by_name_and_cpu_model() {
    for yes in ["CPU 0/TCG", "CPU 1/KVM", "CPU 12/KVM\n"] {
        assert!(is_vcpu_thread(yes), "{yes}");
    }
    for no in [
        "qemu-system-x86",
        "CPU",
        "CPU 0",
        "CPU x/TCG",
        "CPU 0/",
        "call_rcu",
        "vhost-1234",
    ] {
        assert!(!is_vcpu_thread(no), "{no}");
    }
    let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n\nprocessor\t: 1\nmodel name\t: other\n";
    assert_eq!(
        cpu_model(info).as_deref(),
        Some("Intel(R) Xeon(R) Processor")
    );
    assert_eq!(cpu_model("processor : 0\n"), None);
}

/// A `/proc`-shaped tree: `stat`, `loadavg` and `<pid>/task/<tid>/{comm,schedstat}`.
struct FakeProc(PathBuf);

impl FakeProc {
    fn new(tag: &str) -> FakeProc {
        let d = std::env::temp_dir().join(format!("irqstorm-proc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        FakeProc(d)
    }
    fn host(&self, stat: &str, loadavg: &str) {
        std::fs::write(self.0.join("stat"), stat).unwrap();
        std::fs::write(self.0.join("loadavg"), loadavg).unwrap();
    }
    fn task(&self, pid: u32, tid: u32, comm: &str, schedstat: &str) {
        let d = self.0.join(format!("{pid}/task/{tid}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(d.join("schedstat"), format!("{schedstat}\n")).unwrap();
    }
    fn exit(&self, pid: u32, tid: u32) {
        std::fs::remove_dir_all(self.0.join(format!("{pid}/task/{tid}"))).unwrap();
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn figures_from_two_samples_of_a_recorded_proc_tree() {
    let p = FakeProc::new("fig");
    p.host(PROC_STAT, LOADAVG);
    p.task(100, 100, "qemu-system-x86", "50000000 1000000 40");
    p.task(100, 101, "CPU 0/TCG", "1000000000 100000000 500");
    p.task(100, 102, "CPU 1/TCG", "900000000 20000000 400");
    p.task(100, 103, "worker", "1000 10 1");
    p.task(200, 200, "irqstorm-backen", "5000000 0 10");
    p.task(200, 201, "irqstorm-gen0", "300000000 1000000 1000");
    p.task(200, 202, "irqstorm-conn", "7000000 0 5");
    let probe = Probe::with_root(&p.0, vec![100], 200);
    let a = probe.sample().unwrap();
    assert_eq!(a.vcpus[0].len(), 2, "{:?}", a.vcpus);
    assert_eq!(a.backend.len(), 3);
    // 2 s later: CPU 0 waited 300 ms more, CPU 1 40 ms; the back end's
    // generator ran 800 ms, a new thread 50 ms, one thread exited.
    p.task(100, 101, "CPU 0/TCG", "2500000000 400000000 1500");
    p.task(100, 102, "CPU 1/TCG", "2000000000 60000000 900");
    p.task(200, 201, "irqstorm-gen0", "1100000000 3000000 5000");
    p.task(200, 203, "irqstorm-new", "50000000 0 3");
    p.exit(200, 202);
    p.host(
        "cpu  1 1 1 1\ncpu0 50873 9216 8156 47539 101 0 15 111 0 0\ncpu1 55070 7122 8774 44265 501 0 131 124 0 0\n",
        "5.00 3.50 1.90 4/110 30000\n",
    );
    let mut b = probe.sample().unwrap();
    b.at = a.at + Duration::from_secs(2);
    let f = figures(&probe, &a, &b, 17_000);
    assert_eq!(f.phase_ns, 2_000_000_000);
    assert_eq!(f.host_cores, 2);
    assert_eq!(f.vcpus.len(), 2);
    let v0 = &f.vcpus[0];
    assert_eq!(
        (v0.device.as_str(), v0.qemu_pid, v0.tid, v0.name.as_str()),
        ("irqstorm0", 100, 101, "CPU 0/TCG")
    );
    assert_eq!(
        (v0.cpu_ns, v0.wait_ns, v0.timeslices),
        (1_500_000_000, 300_000_000, 1000)
    );
    assert!((v0.wait_share - 0.15).abs() < 1e-12);
    assert!((f.vcpus[1].wait_share - 0.02).abs() < 1e-12);
    assert_eq!(f.max_vcpu_wait_share, Some(v0.wait_share));
    let be = f.backend.as_ref().unwrap();
    assert_eq!((be.pid, be.threads), (200, 3));
    assert_eq!(be.cpu_ns, 850_000_000);
    assert_eq!(be.wait_ns, 2_000_000);
    assert!((be.cpu_share - 0.425).abs() < 1e-12);
    assert_eq!(be.cpu_ns_per_event, Some(50_000.0));
    assert_eq!(be.timeslices, 4003);
    let by: Vec<_> = be
        .by_thread
        .iter()
        .map(|t| (t.name.as_str(), t.threads, t.cpu_ns, t.timeslices))
        .collect();
    assert_eq!(
        by,
        vec![
            ("irqstorm-backen", 1, 0, 0),
            ("irqstorm-gen0", 1, 800_000_000, 4000),
            ("irqstorm-new", 1, 50_000_000, 3),
        ]
    );
    // cpu0: 150 busy of 200 ticks; cpu1: 100 of 200
    assert_eq!(f.host.busy_share_per_core, vec![0.75, 0.5]);
    assert!((f.host.busy_share - 0.625).abs() < 1e-12);
    assert_eq!(f.host.loadavg_start, [4.12, 3.37, 1.83]);
    assert_eq!(f.host.loadavg_end[0], 5.0);
    assert_eq!(
        f.notes,
        vec!["back end: 1 thread(s) exited during the phase; their CPU time is not counted"]
    );
    assert!(!f.disturbed && f.max_vcpu_wait_share_limit.is_none());
    // nothing delivered: no per-event figure
    let f0 = figures(&probe, &a, &b, 0);
    assert_eq!(f0.backend.unwrap().cpu_ns_per_event, None);
}

#[test]
fn a_failed_wake_floor_probe_is_noted_and_the_rest_of_the_figures_stand() {
    let p = FakeProc::new("floorfail");
    p.host(PROC_STAT, LOADAVG);
    p.task(100, 101, "CPU 0/TCG", "1000 2000 3");
    p.task(200, 200, "irqstorm-backen", "5000 0 1");
    let probe = Probe::with_root(&p.0, vec![100], 200);
    let mut a = probe.sample().unwrap();
    let mut b = probe.sample().unwrap();
    let ok = |wakes, cpu_ns| {
        Ok(super::wake_floor::FloorSample {
            hz: 8000,
            stat: SchedStat {
                cpu_ns,
                wait_ns: 0,
                timeslices: wakes,
            },
            wakes,
        })
    };
    a.floor = Some(ok(10, 1_000));
    b.floor = Some(Err("wake floor: timer thread: timerfd read: boom".into()));
    let f = figures(&probe, &a, &b, 5);
    assert_eq!(f.wake_floor, None);
    assert_eq!(f.vcpus.len(), 1, "the vCPU figures stand");
    assert!(f.backend.is_some());
    assert!(
        f.notes.iter().any(|n| n
            == "host wake-up floor not measured: wake floor: timer thread: timerfd read: boom"),
        "{:?}",
        f.notes
    );
    b.floor = Some(ok(30, 41_000));
    let f = figures(&probe, &a, &b, 5);
    let w = f.wake_floor.unwrap();
    assert_eq!(
        (w.hz, w.wakes, w.cpu_ns_per_wake),
        (8000, 20, Some(2_000.0))
    );
    assert!(
        !f.notes.iter().any(|n| n.contains("floor")),
        "{:?}",
        f.notes
    );
}

#[test]
fn missing_vcpus_are_noted_and_a_missing_process_is_an_error() {
    let p = FakeProc::new("miss");
    p.host(PROC_STAT, LOADAVG);
    p.task(100, 100, "qemu-system-x86", "1 2 3");
    p.task(200, 200, "irqstorm-backen", "1 2 3");
    let probe = Probe::with_root(&p.0, vec![100], 200);
    let a = probe.sample().unwrap();
    let f = figures(&probe, &a, &a, 5);
    assert!(f.vcpus.is_empty() && f.max_vcpu_wait_share.is_none());
    assert!(
        f.notes[0].starts_with("irqstorm0: no QEMU vCPU thread"),
        "{:?}",
        f.notes
    );
    let gone = Probe::with_root(&p.0, vec![300], 200);
    let e = gone.sample().unwrap_err().to_string();
    assert!(e.contains("300/task"), "{e}");
    std::fs::write(p.0.join("200/task/200/schedstat"), "garbage\n").unwrap();
    let e = probe.sample().unwrap_err().to_string();
    assert!(e.starts_with("schedstat: cannot parse `garbage`"), "{e}");
}

#[test]
fn live_proc_of_this_process() {
    // this test process stands in for both QEMU and the back end
    let me = std::process::id();
    let probe = Probe::new(vec![me], me);
    let a = probe.sample().unwrap();
    assert!(!a.backend.is_empty());
    assert!(!a.cores.is_empty());
    let b = probe.sample().unwrap();
    let f = figures(&probe, &a, &b, 1);
    assert_eq!(f.host_cores as usize, b.cores.len());
    assert!(f.host.busy_share >= 0.0 && f.host.busy_share <= 1.0);
}
