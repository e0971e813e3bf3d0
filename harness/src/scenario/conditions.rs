//! The run conditions of a scenario run (`run_conditions` of report.json):
//! the back end's and QEMU's argument vectors, accelerator, vCPUs, host
//! cores and CPU model, and what each guest's scenario script printed about
//! its clocksource and TSC flags (`IRQSTORM_SC_CLOCKSOURCE`,
//! `IRQSTORM_SC_CPUFLAGS`, see `tests/guest/lib/scenario.sh`).

use irqstorm_report::model::{CpuFlag, GuestConditions, IrqPlacement, RunConditions, TimeBase};

use crate::boot::BackendSpec;
use crate::interference::{cpu_model, parse_proc_stat};

/// The back end's full argument vector, as `Backend::start` passes it.
pub fn backend_argv(spec: &BackendSpec) -> Vec<String> {
    let mut v = vec![
        spec.binary.display().to_string(),
        "--socket-path".to_string(),
        spec.socket_path().display().to_string(),
        "--control-socket".to_string(),
        spec.control_socket_path().display().to_string(),
    ];
    v.extend(spec.extra_args.iter().cloned());
    v
}

/// The value of option `name` (`--name=V` or `--name V`; the last one wins).
fn option_value(argv: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    let mut out = None;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(&eq) {
            out = Some(v.to_string());
        } else if a == name {
            out = it.next().cloned();
        }
    }
    out
}

/// The `--spin-us` given to the back end, if any.
pub fn spin_us(backend_argv: &[String]) -> Option<String> {
    option_value(backend_argv, "--spin-us")
}

/// vCPUs of QEMU's `-smp` (`2`, `4,sockets=1`, `cpus=2,...`).
pub fn smp(qemu_argv: &[String]) -> Option<u32> {
    let v = option_value(qemu_argv, "-smp")?;
    v.split(',').find_map(|p| {
        let p = p.strip_prefix("cpus=").unwrap_or(p);
        p.parse().ok()
    })
}

/// The guest's clocksource lines: (first, last).
fn clocksources(console: &str) -> (Option<String>, Option<String>) {
    let all: Vec<&str> = console
        .lines()
        .filter_map(|l| l.trim().strip_prefix("IRQSTORM_SC_CLOCKSOURCE "))
        .map(str::trim)
        .collect();
    (
        all.first().map(|s| s.to_string()),
        all.last().map(|s| s.to_string()),
    )
}

/// The guest's `IRQSTORM_SC_CPUFLAGS` line: CPUs and flags in order.
fn cpu_flags(console: &str) -> (Option<u32>, Vec<CpuFlag>) {
    let Some(line) = console
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("IRQSTORM_SC_CPUFLAGS "))
    else {
        return (None, Vec::new());
    };
    let mut cpus = None;
    let mut flags = Vec::new();
    for (k, v) in line.split_whitespace().filter_map(|w| w.split_once('=')) {
        match (k, v) {
            ("cpus", n) => cpus = n.parse().ok(),
            (name, "0" | "1") => flags.push(CpuFlag {
                name: name.to_string(),
                present: v == "1",
            }),
            _ => {}
        }
    }
    (cpus, flags)
}

/// The guest's last `IRQSTORM_SC_IRQ irq=N affinity=LIST effective=LIST`
/// line (after the measured phase: x86 moves an IRQ at its next interrupt).
fn irq_placement(console: &str) -> Option<IrqPlacement> {
    let line = console
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("IRQSTORM_SC_IRQ "))?;
    let mut p = IrqPlacement {
        irq: u32::MAX,
        affinity: String::new(),
        effective: String::new(),
    };
    for (k, v) in line.split_whitespace().filter_map(|w| w.split_once('=')) {
        match k {
            "irq" => p.irq = v.parse().ok()?,
            "affinity" => p.affinity = v.to_string(),
            "effective" => p.effective = v.to_string(),
            _ => {}
        }
    }
    (p.irq != u32::MAX).then_some(p)
}

/// Guest `device`'s conditions from its console and its QEMU command.
pub fn guest_conditions(device: &str, qemu_argv: Vec<String>, console: &str) -> GuestConditions {
    let (first, last) = clocksources(console);
    let (cpus, tsc_flags) = cpu_flags(console);
    GuestConditions {
        device: device.to_string(),
        qemu_argv,
        cpus,
        clocksource_at_start: first.filter(|f| Some(f) != last.as_ref()),
        clocksource: last,
        tsc_flags,
        irq: irq_placement(console),
        hz: console
            .lines()
            .find_map(|l| l.trim().strip_prefix("IRQSTORM_SC_TIMING hz="))
            .and_then(|v| v.trim().parse().ok()),
        user_reader: user_reader(console),
    }
}

/// The policy of the `user` reader from its `IRQSTORM_SC_USER` summary
/// (`... policy FF 50 hardirq_to_user_us ...`).
fn user_reader(console: &str) -> Option<String> {
    let line = console
        .lines()
        .find_map(|l| l.trim().strip_prefix("IRQSTORM_SC_USER "))?;
    let w: Vec<&str> = line.split_whitespace().collect();
    let i = w.iter().position(|x| *x == "policy")?;
    Some(format!("{} {}", w.get(i + 1)?, w.get(i + 2)?))
}

/// The host's cores (`cpuN` lines of `/proc/stat`) and CPU model
/// (`/proc/cpuinfo`); 0 and "" when unreadable.
pub fn host_cpus() -> (u32, String) {
    let cores = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_proc_stat(&t).ok())
        .map_or(0, |c| c.len() as u32);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| cpu_model(&t))
        .unwrap_or_default();
    (cores, model)
}

/// Everything together; `guests[i]` is guest `i`'s conditions.
pub fn run_conditions(
    backend_argv: Vec<String>,
    accelerator: &str,
    guests: Vec<GuestConditions>,
    (host_cores, host_cpu_model): (u32, String),
) -> RunConditions {
    let vcpus = guests.first().and_then(|g| smp(&g.qemu_argv).or(g.cpus));
    RunConditions {
        backend_spin_us: spin_us(&backend_argv),
        backend_spin: None,
        backend_argv,
        accelerator: accelerator.to_string(),
        vcpus,
        host_cores,
        host_cpu_model,
        guests,
        time_base: TimeBase::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_options_spin_and_smp() {
        let spec = BackendSpec {
            binary: PathBuf::from("/b/irqstorm-backend"),
            dir: PathBuf::from("/r/sockets"),
            extra_args: v(&["--virtio-id", "21", "--spin-us=0"]),
            log: PathBuf::from("/r/backend.log"),
            startup_timeout: Duration::from_secs(1),
        };
        let a = backend_argv(&spec);
        assert_eq!(
            a,
            v(&[
                "/b/irqstorm-backend",
                "--socket-path",
                "/r/sockets/vhost.sock",
                "--control-socket",
                "/r/sockets/ctl.sock",
                "--virtio-id",
                "21",
                "--spin-us=0"
            ])
        );
        assert_eq!(spin_us(&a).as_deref(), Some("0"));
        assert_eq!(
            spin_us(&v(&["b", "--spin-us", "20"])).as_deref(),
            Some("20")
        );
        assert_eq!(spin_us(&v(&["b", "--sources", "4"])), None);
        assert_eq!(smp(&v(&["qemu", "-smp", "2", "-m", "256M"])), Some(2));
        assert_eq!(smp(&v(&["qemu", "-smp", "cpus=4,sockets=1"])), Some(4));
        assert_eq!(smp(&v(&["qemu", "-smp", "sockets=1,cpus=3"])), Some(3));
        assert_eq!(smp(&v(&["qemu", "-m", "256M"])), None);
    }

    /// The lines `tests/guest/lib/scenario.sh` prints under TCG with
    /// `-cpu max`: tsc-early at set-up, tsc after the run.
    const CONSOLE: &str = "[    0.9] clocksource: tsc-early\n\
        IRQSTORM_SC_CLOCKSOURCE tsc-early\n\
        IRQSTORM_SC_CPUFLAGS cpus=2 tsc=1 constant_tsc=0 nonstop_tsc=0 tsc_known_freq=0 rdtscp=1\n\
        IRQSTORM_SC_IRQ irq=24 affinity=0-1 effective=1\n\
        IRQSTORM_SC_TIMING hz=250\n\
        IRQSTORM_SC_USER irqstorm-wait: records 9 first 9 policy FF 50 hardirq_to_user_us p50 1.0\n\
        IRQSTORM_SC_READY\n\
        IRQSTORM_SC_PING 1 2 3 4\n\
        IRQSTORM_SC_CLOCKSOURCE tsc\n\
        IRQSTORM_SC_BEGIN stats\n";

    #[test]
    fn guest_lines_give_clocksource_and_tsc_flags() {
        let g = guest_conditions("irqstorm0", v(&["qemu", "-smp", "2"]), CONSOLE);
        assert_eq!(g.cpus, Some(2));
        assert_eq!(g.clocksource.as_deref(), Some("tsc"));
        assert_eq!(g.clocksource_at_start.as_deref(), Some("tsc-early"));
        assert_eq!(g.user_reader.as_deref(), Some("FF 50"));
        assert_eq!(
            guest_conditions("d", vec![], "IRQSTORM_SC_TIMING hz=250\n").user_reader,
            None
        );
        assert_eq!(
            g.irq.as_ref().map(|i| i.describe()).as_deref(),
            Some("irq 24 -> CPUs 0-1 (effective 1)")
        );
        let names: Vec<(&str, bool)> = g
            .tsc_flags
            .iter()
            .map(|f| (f.name.as_str(), f.present))
            .collect();
        assert_eq!(
            names,
            vec![
                ("tsc", true),
                ("constant_tsc", false),
                ("nonstop_tsc", false),
                ("tsc_known_freq", false),
                ("rdtscp", true)
            ]
        );
        // the same clocksource throughout: no "at start"
        let same = CONSOLE.replace("SOURCE tsc-early", "SOURCE tsc");
        let g2 = guest_conditions("irqstorm0", Vec::new(), &same);
        assert_eq!(g2.clocksource_at_start, None);
        // an older guest script prints neither line
        let none = guest_conditions("irqstorm1", Vec::new(), "IRQSTORM_SC_READY\n");
        assert!(none.clocksource.is_none() && none.cpus.is_none() && none.tsc_flags.is_empty());
        assert!(none.irq.is_none() && none.hz.is_none());
        assert_eq!(g.hz, Some(250));
        let rc = run_conditions(
            v(&["b", "--spin-us", "5"]),
            "tcg",
            vec![g, none],
            (2, "Xeon".into()),
        );
        assert_eq!(rc.vcpus, Some(2));
        assert_eq!(rc.backend_spin_us.as_deref(), Some("5"));
        assert_eq!(rc.time_base.method, "ping");
        assert_eq!(rc.guests.len(), 2);
    }
}
