//! The host's wake-up floor beside a run: a thread woken by a periodic
//! timerfd writes an eventfd that a second thread blocks on. That is the
//! least an event source does that wakes once per isolated event (the back
//! end's generator sleeps until the next raise, then signals QEMU's call
//! eventfd). Its CPU time is counted the way the back end's is
//! (`/proc/self/task/<tid>/schedstat`), at the two interference samples of
//! the measured phase, so its CPU per wake-up is what one such wake-up
//! costs on this host under the run's own load (`cargo xtask bench
//! backend` prints it beside the back end's cost per event).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use irqstorm_report::model::WakeFloorCpu;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

use super::{parse_schedstat, read, InterferenceError, SchedStat};

/// Rates the probe accepts, Hz: low enough not to load the host much, high
/// enough to give thousands of wake-ups in a few seconds.
pub const HZ_RANGE: std::ops::RangeInclusive<u32> = 10..=10_000;

/// The running probe; stopped and joined when dropped.
pub struct WakeFloor {
    hz: u32,
    /// The timer thread's tid (its `schedstat` is what is counted).
    tid: u32,
    wakes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// What ended a thread early, if anything did.
    failed: Arc<Mutex<Option<String>>>,
    /// Written once at stop to release the blocked reader.
    release: EventFd,
    threads: Vec<JoinHandle<()>>,
}

/// The timer thread at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorSample {
    /// The probe's rate, Hz.
    pub hz: u32,
    pub stat: SchedStat,
    pub wakes: u64,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> InterferenceError + '_ {
    move |source| InterferenceError::Io {
        path: what.to_string(),
        source,
    }
}

/// The calling thread's tid, from `/proc/thread-self` (`<pid>/task/<tid>`).
fn own_tid() -> Result<u32, String> {
    let link =
        std::fs::read_link("/proc/thread-self").map_err(|e| format!("/proc/thread-self: {e}"))?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("/proc/thread-self -> {}: no tid", link.display()))
}

fn record(failed: &Mutex<Option<String>>, e: String) {
    if let Ok(mut f) = failed.lock() {
        f.get_or_insert(e);
    }
}

impl WakeFloor {
    /// Start the two threads, the timer at `hz` (in [`HZ_RANGE`]).
    pub fn start(hz: u32) -> Result<WakeFloor, InterferenceError> {
        if !HZ_RANGE.contains(&hz) {
            return Err(InterferenceError::WakeFloor(format!(
                "rate {hz} Hz is outside {}..={} Hz",
                HZ_RANGE.start(),
                HZ_RANGE.end()
            )));
        }
        let evt = EventFd::new(0).map_err(io("wake floor: eventfd"))?;
        let evt_reader = evt.try_clone().map_err(io("wake floor: eventfd"))?;
        let release = evt.try_clone().map_err(io("wake floor: eventfd"))?;
        let mut timer = TimerFd::new().map_err(|e| io("wake floor: timerfd")(e.into()))?;
        let period = Duration::from_nanos(1_000_000_000 / u64::from(hz));
        let wakes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(Mutex::new(None));
        let (tid_tx, tid_rx) = mpsc::channel();

        let (w, s, f) = (Arc::clone(&wakes), Arc::clone(&stop), Arc::clone(&failed));
        let waker = std::thread::Builder::new()
            .name("irqstorm-floor".into())
            .spawn(move || {
                let _ = tid_tx.send(own_tid());
                let mut run = || -> Result<(), String> {
                    timer
                        .reset(period, Some(period))
                        .map_err(|e| format!("timerfd_settime: {e}"))?;
                    while !s.load(Ordering::Acquire) {
                        match timer.wait() {
                            Ok(_) => {}
                            Err(e) if e.errno() == libc::EINTR => continue,
                            Err(e) => return Err(format!("timerfd read: {e}")),
                        }
                        evt.write(1).map_err(|e| format!("eventfd write: {e}"))?;
                        w.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                };
                if let Err(e) = run() {
                    record(&f, format!("timer thread: {e}"));
                }
            })
            .map_err(io("wake floor: spawn"))?;
        let (s, f) = (Arc::clone(&stop), Arc::clone(&failed));
        let reader = std::thread::Builder::new()
            .name("irqstorm-floor-rx".into())
            .spawn(move || {
                while !s.load(Ordering::Acquire) {
                    if let Err(e) = evt_reader.read() {
                        record(&f, format!("reader thread: {e}"));
                        return;
                    }
                }
            });
        // From here on, dropping `probe` stops what has started.
        let mut probe = WakeFloor {
            hz,
            tid: 0,
            wakes,
            stop,
            failed,
            release,
            threads: vec![waker],
        };
        match reader {
            Ok(r) => probe.threads.push(r),
            Err(e) => return Err(io("wake floor: spawn")(e)),
        }
        probe.tid = tid_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| {
                InterferenceError::WakeFloor("the timer thread did not start within 10 s".into())
            })?
            .map_err(InterferenceError::WakeFloor)?;
        Ok(probe)
    }

    /// The timer thread's schedstat and wake-ups now; an error once a
    /// thread has failed (its figures would not be a floor).
    pub fn sample(&self) -> Result<FloorSample, InterferenceError> {
        if let Some(e) = self.failed.lock().ok().and_then(|f| f.clone()) {
            return Err(InterferenceError::WakeFloor(e));
        }
        let path = std::path::PathBuf::from(format!("/proc/self/task/{}/schedstat", self.tid));
        Ok(FloorSample {
            hz: self.hz,
            stat: parse_schedstat(&read(&path)?)?,
            wakes: self.wakes.load(Ordering::Relaxed),
        })
    }
}

impl std::fmt::Debug for WakeFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeFloor")
            .field("hz", &self.hz)
            .field("tid", &self.tid)
            .finish_non_exhaustive()
    }
}

impl Drop for WakeFloor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // The timer thread sees `stop` at its next expiry (one period); the
        // reader needs a count to return from its read.
        let _ = self.release.write(1);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The floor between two samples of one probe.
pub fn floor_figures(start: &FloorSample, end: &FloorSample) -> WakeFloorCpu {
    let d = end.stat.since(&start.stat);
    let wakes = end.wakes.saturating_sub(start.wakes);
    WakeFloorCpu {
        hz: end.hz,
        wakes,
        cpu_ns: d.cpu_ns,
        timeslices: d.timeslices,
        cpu_ns_per_wake: (wakes > 0).then(|| d.cpu_ns as f64 / wakes as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cpu_ns: u64, timeslices: u64, wakes: u64) -> FloorSample {
        FloorSample {
            hz: 1000,
            stat: SchedStat {
                cpu_ns,
                wait_ns: 0,
                timeslices,
            },
            wakes,
        }
    }

    #[test]
    fn the_floor_is_the_timer_threads_cpu_per_wake_between_the_samples() {
        let f = floor_figures(&at(5_000, 10, 10), &at(5_000 + 3_000 * 40, 52, 50));
        assert_eq!(f.wakes, 40);
        assert_eq!(f.cpu_ns, 120_000);
        assert_eq!(f.timeslices, 42);
        assert_eq!(f.cpu_ns_per_wake, Some(3_000.0));
        assert_eq!(f.hz, 1000);
    }

    #[test]
    fn no_wake_gives_no_figure() {
        let f = floor_figures(&at(5_000, 10, 10), &at(6_000, 11, 10));
        assert_eq!(f.wakes, 0);
        assert_eq!(f.cpu_ns_per_wake, None);
    }

    #[test]
    fn a_failed_probe_does_not_fail_the_interference_sample() {
        let p = WakeFloor::start(1000).expect("start");
        if let Ok(mut f) = p.failed.lock() {
            *f = Some("timer thread: timerfd read: injected".into());
        }
        let me = std::process::id();
        let probe =
            crate::interference::Probe::new(vec![me], me).with_wake_floor(Some(Arc::new(p)));
        let s = probe.sample().expect("the rest of the sample stands");
        assert_eq!(
            s.floor,
            Some(Err(
                "wake floor: timer thread: timerfd read: injected".into()
            ))
        );
        assert!(!s.backend.is_empty());
    }

    #[test]
    fn a_rate_out_of_range_is_refused_by_name() {
        for hz in [0, 9, 10_001] {
            let e = WakeFloor::start(hz).expect_err("refused").to_string();
            assert!(e.starts_with("wake floor: rate"), "{e}");
        }
    }

    #[test]
    fn the_probe_wakes_counts_its_cpu_and_stops() {
        let p = WakeFloor::start(1000).expect("start");
        let a = p.sample().expect("sample");
        // Wait for wake-ups, not for a time: a loaded host only makes this slower.
        let mut b = a;
        for _ in 0..1000 {
            std::thread::sleep(Duration::from_millis(10));
            b = p.sample().expect("sample");
            if b.wakes >= a.wakes + 5 {
                break;
            }
        }
        let f = floor_figures(&a, &b);
        assert!(f.wakes >= 5, "{f:?}");
        assert!(f.cpu_ns > 0 && f.timeslices > 0, "{f:?}");
        // Dropping it stops and joins both threads: the timer thread's task is gone.
        let task = std::path::PathBuf::from(format!("/proc/self/task/{}", p.tid));
        assert!(task.exists());
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            drop(p);
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the probe stops when dropped");
        assert!(!task.exists(), "{} still exists", task.display());
    }
}
