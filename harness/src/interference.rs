//! Host interference over a scenario's measured phase, from `/proc`: each
//! QEMU vCPU thread's run-queue wait and CPU time
//! (`/proc/<pid>/task/<tid>/schedstat`: on-CPU ns, run-queue wait ns,
//! timeslices), the back end's threads' CPU time (same file), host load
//! (`/proc/loadavg`, per-core busy share from `/proc/stat`) and the host's
//! cores. [`Probe::sample`] reads a [`Sample`] at the phase's start and end;
//! [`figures`] turns the two into the report's [`Interference`]. Parsing
//! and differences are pure functions of the recorded text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use irqstorm_report::model::{
    BackendCpu, BackendThreadCpu, HostLoad, Interference, VcpuInterference,
};

/// Errors of sampling `/proc`.
#[derive(Debug, thiserror::Error)]
pub enum InterferenceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: cannot parse `{text}`")]
    Parse { what: String, text: String },
    /// The wake-up floor probe cannot run or stopped early.
    #[error("wake floor: {0}")]
    WakeFloor(String),
}

fn parse_err(what: &str, text: &str) -> InterferenceError {
    InterferenceError::Parse {
        what: what.to_string(),
        text: text.trim().chars().take(120).collect(),
    }
}

/// One task's `schedstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedStat {
    /// Time on a CPU, ns.
    pub cpu_ns: u64,
    /// Time runnable, waiting on a run queue, ns.
    pub wait_ns: u64,
    /// Times scheduled in.
    pub timeslices: u64,
}

impl SchedStat {
    /// `self - earlier`, field by field (0 where a counter went back).
    pub fn since(&self, earlier: &SchedStat) -> SchedStat {
        SchedStat {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
            timeslices: self.timeslices.saturating_sub(earlier.timeslices),
        }
    }
}

/// `/proc/<pid>/task/<tid>/schedstat`: three numbers.
pub fn parse_schedstat(text: &str) -> Result<SchedStat, InterferenceError> {
    let v: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| parse_err("schedstat", text))?;
    match v[..] {
        [cpu_ns, wait_ns, timeslices] => Ok(SchedStat {
            cpu_ns,
            wait_ns,
            timeslices,
        }),
        _ => Err(parse_err("schedstat (3 fields)", text)),
    }
}

/// One host core's `/proc/stat` times (USER_HZ ticks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreTimes {
    /// `cpu0`, `cpu1`, ...
    pub name: String,
    /// Everything but idle and iowait.
    pub busy: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest
    /// time is already inside user and nice).
    pub total: u64,
}

/// The per-core `cpuN` lines of `/proc/stat` (not the `cpu` total).
pub fn parse_proc_stat(text: &str) -> Result<Vec<CoreTimes>, InterferenceError> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut w = l.split_whitespace();
        let Some(name) = w.next() else { continue };
        let Some(n) = name.strip_prefix("cpu") else {
            continue;
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let v: Vec<u64> = w
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| parse_err("/proc/stat", l))?;
        if v.len() < 4 {
            return Err(parse_err("/proc/stat (4+ fields)", l));
        }
        let total: u64 = v.iter().sum();
        let idle = v[3] + v.get(4).copied().unwrap_or(0);
        out.push(CoreTimes {
            name: name.to_string(),
            busy: total - idle,
            total,
        });
    }
    if out.is_empty() {
        return Err(parse_err("/proc/stat (no cpuN line)", text));
    }
    Ok(out)
}

/// The 1, 5 and 15 minute load averages of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], InterferenceError> {
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| parse_err("/proc/loadavg", text))?;
    match v[..] {
        [a, b, c] => Ok([a, b, c]),
        _ => Err(parse_err("/proc/loadavg (3 figures)", text)),
    }
}

/// QEMU names its vCPU threads `CPU <n>/<accelerator>` (`CPU 0/TCG`,
/// `CPU 1/KVM`).
pub fn is_vcpu_thread(comm: &str) -> bool {
    let Some(rest) = comm.trim_end().strip_prefix("CPU ") else {
        return false;
    };
    match rest.split_once('/') {
        Some((n, accel)) => {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !accel.is_empty()
        }
        None => false,
    }
}

/// The first `model name` of `/proc/cpuinfo`.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

/// One thread of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub tid: u32,
    pub comm: String,
    pub stat: SchedStat,
}

fn read(path: &Path) -> Result<String, InterferenceError> {
    std::fs::read_to_string(path).map_err(|source| InterferenceError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The threads of `pid` under `proc_root` (normally `/proc`), by tid. A
/// thread that exits while being read is left out.
pub fn tasks(proc_root: &Path, pid: u32) -> Result<Vec<Task>, InterferenceError> {
    let dir = proc_root.join(pid.to_string()).join("task");
    let entries = std::fs::read_dir(&dir).map_err(|source| InterferenceError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let (Ok(comm), Ok(stat)) = (
            read(&e.path().join("comm")),
            read(&e.path().join("schedstat")),
        ) else {
            continue;
        };
        out.push(Task {
            tid,
            comm: comm.trim_end_matches('\n').to_string(),
            stat: parse_schedstat(&stat)?,
        });
    }
    out.sort_by_key(|t| t.tid);
    Ok(out)
}

/// `/proc` at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    /// Each QEMU's vCPU threads (guest `i` at index `i`).
    pub vcpus: Vec<Vec<Task>>,
    /// The back end's threads.
    pub backend: Vec<Task>,
    pub cores: Vec<CoreTimes>,
    pub loadavg: [f64; 3],
    /// The wake-up floor probe's timer thread, when the probe runs; why
    /// not, when it failed (the rest of the sample stands without it).
    pub floor: Option<Result<wake_floor::FloorSample, String>>,
}

/// What to sample: the QEMU processes (guest `i` is `qemu_pids[i]`) and the
/// back end.
#[derive(Debug, Clone)]
pub struct Probe {
    proc_root: PathBuf,
    pub qemu_pids: Vec<u32>,
    pub backend_pid: u32,
    /// Sampled beside the rest when set ([`Probe::with_wake_floor`]).
    pub wake_floor: Option<Arc<wake_floor::WakeFloor>>,
}

impl Probe {
    /// Sample the live `/proc`.
    pub fn new(qemu_pids: Vec<u32>, backend_pid: u32) -> Probe {
        Probe::with_root("/proc", qemu_pids, backend_pid)
    }

    /// Sample a `/proc`-shaped tree (tests use recorded text).
    pub fn with_root(root: impl Into<PathBuf>, qemu_pids: Vec<u32>, backend_pid: u32) -> Probe {
        Probe {
            proc_root: root.into(),
            qemu_pids,
            backend_pid,
            wake_floor: None,
        }
    }

    /// Also sample the wake-up floor probe `floor`.
    pub fn with_wake_floor(mut self, floor: Option<Arc<wake_floor::WakeFloor>>) -> Probe {
        self.wake_floor = floor;
        self
    }

    pub fn sample(&self) -> Result<Sample, InterferenceError> {
        let at = Instant::now();
        let vcpus = self
            .qemu_pids
            .iter()
            .map(|p| {
                let mut t = tasks(&self.proc_root, *p)?;
                t.retain(|t| is_vcpu_thread(&t.comm));
                Ok(t)
            })
            .collect::<Result<Vec<_>, InterferenceError>>()?;
        Ok(Sample {
            at,
            vcpus,
            backend: tasks(&self.proc_root, self.backend_pid)?,
            cores: parse_proc_stat(&read(&self.proc_root.join("stat"))?)?,
            loadavg: parse_loadavg(&read(&self.proc_root.join("loadavg"))?)?,
            floor: self
                .wake_floor
                .as_ref()
                .map(|f| f.sample().map_err(|e| e.to_string())),
        })
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The interference between `start` and `end`: per vCPU wait and CPU time
/// (threads present in both), the back end's CPU time over its threads
/// (threads started during the phase count whole; threads that exited are
/// lost and noted) per `delivered` event, and the host cores' busy share.
/// `probe` names the processes sampled.
pub fn figures(probe: &Probe, start: &Sample, end: &Sample, delivered: u64) -> Interference {
    let phase_ns = end.at.saturating_duration_since(start.at).as_nanos() as u64;
    let mut notes = Vec::new();
    let mut vcpus = Vec::new();
    for (i, (a, b)) in start.vcpus.iter().zip(&end.vcpus).enumerate() {
        let before: BTreeMap<u32, &Task> = a.iter().map(|t| (t.tid, t)).collect();
        let device = format!("irqstorm{i}");
        let mut found = 0;
        for t in b {
            let Some(s) = before.get(&t.tid) else {
                continue;
            };
            found += 1;
            let d = t.stat.since(&s.stat);
            vcpus.push(VcpuInterference {
                device: device.clone(),
                qemu_pid: probe.qemu_pids.get(i).copied().unwrap_or(0),
                tid: t.tid,
                name: t.comm.clone(),
                cpu_ns: d.cpu_ns,
                wait_ns: d.wait_ns,
                timeslices: d.timeslices,
                wait_share: share(d.wait_ns, phase_ns),
            });
        }
        if found == 0 {
            notes.push(format!(
                "{device}: no QEMU vCPU thread (`CPU <n>/<accel>`) at both samples"
            ));
        }
    }
    let before: BTreeMap<u32, &Task> = start.backend.iter().map(|t| (t.tid, t)).collect();
    let mut cpu = SchedStat::default();
    let mut by_name: BTreeMap<&str, BackendThreadCpu> = BTreeMap::new();
    for t in &end.backend {
        let d = match before.get(&t.tid) {
            Some(s) => t.stat.since(&s.stat),
            None => t.stat,
        };
        cpu.cpu_ns += d.cpu_ns;
        cpu.wait_ns += d.wait_ns;
        cpu.timeslices += d.timeslices;
        let n = by_name.entry(&t.comm).or_insert_with(|| BackendThreadCpu {
            name: t.comm.clone(),
            ..Default::default()
        });
        n.threads += 1;
        n.cpu_ns += d.cpu_ns;
        n.timeslices += d.timeslices;
    }
    let gone = start
        .backend
        .iter()
        .filter(|t| !end.backend.iter().any(|e| e.tid == t.tid))
        .count();
    if gone > 0 {
        notes.push(format!(
            "back end: {gone} thread(s) exited during the phase; their CPU time is not counted"
        ));
    }
    if let Some(e) = [&start.floor, &end.floor]
        .into_iter()
        .flatten()
        .find_map(|f| f.as_ref().err())
    {
        notes.push(format!("host wake-up floor not measured: {e}"));
    }
    let backend = BackendCpu {
        pid: probe.backend_pid,
        threads: end.backend.len() as u32,
        cpu_ns: cpu.cpu_ns,
        wait_ns: cpu.wait_ns,
        cpu_share: share(cpu.cpu_ns, phase_ns),
        delivered_events: delivered,
        cpu_ns_per_event: (delivered > 0).then(|| cpu.cpu_ns as f64 / delivered as f64),
        timeslices: cpu.timeslices,
        by_thread: by_name.into_values().collect(),
    };
    let (mut busy, mut total) = (0u64, 0u64);
    let busy_share_per_core = end
        .cores
        .iter()
        .map(|c| {
            let s = start.cores.iter().find(|s| s.name == c.name);
            let (db, dt) = s.map_or((0, 0), |s| {
                (
                    c.busy.saturating_sub(s.busy),
                    c.total.saturating_sub(s.total),
                )
            });
            busy += db;
            total += dt;
            share(db, dt)
        })
        .collect();
    let max_vcpu_wait_share = vcpus.iter().map(|v| v.wait_share).reduce(f64::max);
    Interference {
        phase_ns,
        host_cores: end.cores.len() as u32,
        vcpus,
        max_vcpu_wait_share,
        backend: Some(backend),
        host: HostLoad {
            loadavg_start: start.loadavg,
            loadavg_end: end.loadavg,
            busy_share_per_core,
            busy_share: share(busy, total),
        },
        notes,
        wake_floor: match (&start.floor, &end.floor) {
            (Some(Ok(a)), Some(Ok(b))) => Some(wake_floor::floor_figures(a, b)),
            _ => None,
        },
        ..Default::default()
    }
}

pub mod wake_floor;

#[cfg(test)]
mod tests;
