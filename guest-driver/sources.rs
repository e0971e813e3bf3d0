// SPDX-License-Identifier: GPL-2.0

//! Per-source configuration: the mechanism each source's events go to and the simulated work
//! their bottom half does (sysfs `mechanism` / `work`, debugfs `sources`).

use crate::{mech::Mech, protocol::MAX_SOURCES, shared::Shared};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// Simulated work per source.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkKind {
    None = 0,
    /// `udelay`.
    Busy = 1,
    /// `usleep_range` below 20 ms, `msleep` from there (the kernel's advice for each range).
    Sleep = 2,
    /// `msleep(ceil(us / 1000))`: jiffy based, at least one jiffy more than asked.
    Msleep = 3,
    /// `usleep_range(us, us + us / 4 + 1)`: hrtimer based.
    Usleep = 4,
    /// `schedule_timeout_uninterruptible(usecs_to_jiffies(us))`: the classic timed sleep.
    Timeout = 5,
}

impl WorkKind {
    pub(crate) const ALL: [WorkKind; 6] =
        [WorkKind::None, WorkKind::Busy, WorkKind::Sleep, WorkKind::Msleep, WorkKind::Usleep, WorkKind::Timeout];

    pub(crate) fn name(self) -> &'static str {
        match self {
            WorkKind::None => "none",
            WorkKind::Busy => "busy",
            WorkKind::Sleep => "sleep",
            WorkKind::Msleep => "msleep",
            WorkKind::Usleep => "usleep",
            WorkKind::Timeout => "timeout",
        }
    }
    pub(crate) fn from_u32(v: u32) -> WorkKind {
        WorkKind::ALL.get(v as usize).copied().unwrap_or(WorkKind::None)
    }
    pub(crate) fn parse(name: &str) -> Option<WorkKind> {
        WorkKind::ALL.into_iter().find(|w| w.name() == name)
    }
    /// Whether the work sleeps (refused in atomic contexts).
    pub(crate) fn sleeps(self) -> bool {
        matches!(self, WorkKind::Sleep | WorkKind::Msleep | WorkKind::Usleep | WorkKind::Timeout)
    }
}

/// Mechanism and simulated work (kind, microseconds) of every source.
pub(crate) struct SourceConfig {
    pub(crate) mech: [Atomic<u32>; MAX_SOURCES],
    pub(crate) work: [Atomic<u32>; MAX_SOURCES],
    pub(crate) work_us: [Atomic<u32>; MAX_SOURCES],
    /// Requested delay (us) of delay mechanisms' runs.
    pub(crate) delay_us: [Atomic<u32>; MAX_SOURCES],
}

impl SourceConfig {
    pub(crate) fn new() -> Self {
        Self {
            mech: [const { Atomic::new(0) }; MAX_SOURCES],
            work: [const { Atomic::new(0) }; MAX_SOURCES],
            work_us: [const { Atomic::new(0) }; MAX_SOURCES],
            delay_us: [const { Atomic::new(0) }; MAX_SOURCES],
        }
    }
}

/// Whether `w` cannot run in mechanism `m` (sleeping in a context that must not sleep).
pub(crate) fn refuses_sleep(m: Mech, w: WorkKind) -> bool {
    w.sleeps() && !m.can_sleep()
}

/// Largest requested delay (us): 1 s (a sleeping kthread delays teardown by up to that).
pub(crate) const MAX_DELAY_US: u32 = 1_000_000;

/// Why a delay of `us` cannot be asked of mechanism `m` (`None`: it can).
pub(crate) fn delay_refusal(m: Mech, us: u32) -> Option<Error> {
    if us > MAX_DELAY_US {
        Some(ERANGE)
    } else if us != 0 && !m.takes_delay() {
        Some(EINVAL)
    } else {
        None
    }
}

/// Bounds of the simulated work: busy-wait at most 10 ms, sleep at most 1 s.
pub(crate) fn work_in_range(w: WorkKind, us: u32) -> bool {
    match w {
        WorkKind::None => true,
        WorkKind::Busy => us <= 10_000,
        _ => us <= 1_000_000,
    }
}

impl Shared {
    pub(crate) fn mech_of(&self, source: u16) -> Mech {
        Mech::from_u32(self.sources.mech[source as usize % MAX_SOURCES].load(Relaxed)).unwrap_or(Mech::Hardirq)
    }

    /// Sets the mechanism of `source`; refuses a non-sleepable one if the source sleeps.
    pub(crate) fn set_mech(&self, source: usize, m: Mech) -> Result {
        if source >= self.info.num_sources as usize {
            return Err(EINVAL);
        }
        let w = WorkKind::from_u32(self.sources.work[source].load(Relaxed));
        if delay_refusal(m, self.sources.delay_us[source].load(Relaxed)).is_some() {
            self.cnt.delay_refused.add(1, Relaxed);
            pr_warn!(
                "source {}: refusing mechanism {}: the source asks for a delay, and {} takes none (set `delay 0` first)\n",
                source, m.name(), m.name()
            );
            return Err(EINVAL);
        }
        if !m.takes_work() && w != WorkKind::None {
            self.cnt.work_refused.add(1, Relaxed);
            pr_warn!(
                "source {}: refusing mechanism {}: its bottom half is a user thread and runs no simulated work (set `none` first)\n",
                source, m.name()
            );
            return Err(EINVAL);
        }
        if refuses_sleep(m, w) {
            self.cnt.sleep_refused.add(1, Relaxed);
            pr_warn!(
                "source {}: refusing mechanism {}: the source's work sleeps, and {} runs in {}, which must not sleep\n",
                source, m.name(), m.name(), m.context()
            );
            return Err(EINVAL);
        }
        self.sources.mech[source].store(m as u32, Relaxed);
        Ok(())
    }

    /// Sets the simulated work of `source`; refuses to sleep in a non-sleepable mechanism.
    pub(crate) fn set_work(&self, source: usize, w: WorkKind, us: u32) -> Result {
        if source >= self.info.num_sources as usize {
            return Err(EINVAL);
        }
        let m = self.mech_of(source as u16);
        if !m.takes_work() && w != WorkKind::None {
            self.cnt.work_refused.add(1, Relaxed);
            pr_warn!(
                "source {}: refusing {} work: mechanism {} is a user thread and runs no simulated work\n",
                source, w.name(), m.name()
            );
            return Err(EINVAL);
        }
        if refuses_sleep(m, w) {
            self.cnt.sleep_refused.add(1, Relaxed);
            pr_warn!(
                "source {}: refusing to sleep: mechanism {} runs in {}, which must not sleep (use busy-wait, or a threaded/workqueue/kthread/completion mechanism)\n",
                source, m.name(), m.context()
            );
            return Err(EINVAL);
        }
        if !work_in_range(w, us) {
            return Err(ERANGE);
        }
        self.sources.work_us[source].store(us, Relaxed);
        self.sources.work[source].store(w as u32, Relaxed);
        Ok(())
    }

    /// Sets the requested delay of `source` (delay mechanisms only; 0 always accepted).
    pub(crate) fn set_delay(&self, source: usize, us: u32) -> Result {
        if source >= self.info.num_sources as usize {
            return Err(EINVAL);
        }
        let m = self.mech_of(source as u16);
        if let Some(e) = delay_refusal(m, us) {
            self.cnt.delay_refused.add(1, Relaxed);
            pr_warn!(
                "source {}: refusing a delay of {} us: {} takes {} (timer_list, hrtimer, wq_delayed, kthread_msleep and kthread_usleep take at most {} us)\n",
                source, us, m.name(), if m.takes_delay() { "less" } else { "none" }, MAX_DELAY_US
            );
            return Err(e);
        }
        self.sources.delay_us[source].store(us, Relaxed);
        Ok(())
    }

    /// The requested delay of `source` (us).
    pub(crate) fn delay_of(&self, source: u16) -> u32 {
        self.sources.delay_us[source as usize % MAX_SOURCES].load(Relaxed)
    }

    pub(crate) fn work_of(&self, source: usize) -> (WorkKind, u32) {
        (
            WorkKind::from_u32(self.sources.work[source].load(Relaxed)),
            self.sources.work_us[source].load(Relaxed),
        )
    }
}

#[kernel::prelude::kunit_tests(irqstorm_sources)]
mod tests {
    use super::*;

    #[test]
    fn work_kind_ids_round_trip() {
        for w in WorkKind::ALL {
            assert!(WorkKind::from_u32(w as u32) == w);
            assert!(WorkKind::parse(w.name()) == Some(w));
        }
        assert!(WorkKind::from_u32(7) == WorkKind::None);
        assert!(WorkKind::parse("Sleep").is_none());
        assert_eq!(WorkKind::Sleep.name(), "sleep");
        assert_eq!(WorkKind::ALL.iter().filter(|w| w.sleeps()).count(), 4);
    }

    #[test]
    fn delays_only_for_delay_mechanisms_and_at_most_a_second() {
        for m in Mech::ALL {
            assert!(delay_refusal(m, 0).is_none());
            assert_eq!(delay_refusal(m, 1000).is_none(), m.takes_delay());
        }
        assert!(delay_refusal(Mech::Hrtimer, MAX_DELAY_US).is_none());
        assert!(delay_refusal(Mech::Hrtimer, MAX_DELAY_US + 1) == Some(ERANGE));
        assert!(delay_refusal(Mech::Tasklet, 1) == Some(EINVAL));
    }

    #[test]
    fn sleeping_is_refused_outside_process_context() {
        for m in Mech::ALL {
            for w in [WorkKind::Sleep, WorkKind::Msleep, WorkKind::Usleep, WorkKind::Timeout] {
                assert_eq!(refuses_sleep(m, w), !m.can_sleep());
            }
            assert!(!refuses_sleep(m, WorkKind::Busy));
            assert!(!refuses_sleep(m, WorkKind::None));
        }
    }

    #[test]
    fn work_bounds() {
        assert!(work_in_range(WorkKind::Busy, 10_000));
        assert!(!work_in_range(WorkKind::Busy, 10_001));
        assert!(work_in_range(WorkKind::Sleep, 1_000_000));
        assert!(!work_in_range(WorkKind::Sleep, 1_000_001));
        assert!(!work_in_range(WorkKind::Timeout, 1_000_001));
        assert!(work_in_range(WorkKind::Msleep, 1_000_000));
        assert!(work_in_range(WorkKind::None, u32::MAX));
    }
}
