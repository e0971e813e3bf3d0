// SPDX-License-Identifier: GPL-2.0

//! The catalogue of bottom-half mechanisms (spec §6.5): ids, names, execution contexts.
//! A leaf module: the bottom halves themselves are in `bh/`.

pub(crate) const NUM_MECH: usize = 20;

/// Bottom-half mechanism ids (spec §6.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Mech {
    Hardirq = 0,
    Threaded = 1,
    Tasklet = 2,
    TaskletHi = 3,
    BhWq = 4,
    BhWqHighpri = 5,
    WqSystem = 6,
    WqHighpri = 7,
    WqUnbound = 8,
    WqDedicated = 9,
    Kthread = 10,
    Completion = 11,
    TimerList = 12,
    Hrtimer = 13,
    WqDelayed = 14,
    KthreadMsleep = 15,
    KthreadUsleep = 16,
    WqOrdered = 17,
    WqCpuIntensive = 18,
    User = 19,
}

impl Mech {
    pub(crate) const ALL: [Mech; NUM_MECH] = [
        Mech::Hardirq,
        Mech::Threaded,
        Mech::Tasklet,
        Mech::TaskletHi,
        Mech::BhWq,
        Mech::BhWqHighpri,
        Mech::WqSystem,
        Mech::WqHighpri,
        Mech::WqUnbound,
        Mech::WqDedicated,
        Mech::Kthread,
        Mech::Completion,
        Mech::TimerList,
        Mech::Hrtimer,
        Mech::WqDelayed,
        Mech::KthreadMsleep,
        Mech::KthreadUsleep,
        Mech::WqOrdered,
        Mech::WqCpuIntensive,
        Mech::User,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mech::Hardirq => "hardirq",
            Mech::Threaded => "threaded",
            Mech::Tasklet => "tasklet",
            Mech::TaskletHi => "tasklet_hi",
            Mech::BhWq => "bh_wq",
            Mech::BhWqHighpri => "bh_wq_highpri",
            Mech::WqSystem => "wq_system",
            Mech::WqHighpri => "wq_highpri",
            Mech::WqUnbound => "wq_unbound",
            Mech::WqDedicated => "wq_dedicated",
            Mech::Kthread => "kthread",
            Mech::Completion => "completion",
            Mech::TimerList => "timer_list",
            Mech::Hrtimer => "hrtimer",
            Mech::WqDelayed => "wq_delayed",
            Mech::KthreadMsleep => "kthread_msleep",
            Mech::KthreadUsleep => "kthread_usleep",
            Mech::WqOrdered => "wq_ordered",
            Mech::WqCpuIntensive => "wq_cpu_intensive",
            Mech::User => "user",
        }
    }

    pub(crate) fn from_u32(v: u32) -> Option<Mech> {
        Mech::ALL.get(v as usize).copied()
    }

    /// Parses a name or a numeric id.
    pub(crate) fn parse(s: &str) -> Option<Mech> {
        if let Ok(v) = s.parse::<u32>() {
            return Mech::from_u32(v);
        }
        Mech::ALL.iter().copied().find(|m| m.name() == s)
    }

    /// Whether the mechanism runs in a context that may sleep.
    pub(crate) fn can_sleep(self) -> bool {
        matches!(
            self,
            Mech::Threaded
                | Mech::WqSystem
                | Mech::WqHighpri
                | Mech::WqUnbound
                | Mech::WqDedicated
                | Mech::Kthread
                | Mech::Completion
                | Mech::WqDelayed
                | Mech::KthreadMsleep
                | Mech::KthreadUsleep
                | Mech::WqOrdered
                | Mech::WqCpuIntensive
                | Mech::User
        )
    }

    /// Whether the driver runs the source's simulated work in this bottom half: every one but
    /// `user`, whose bottom half is a user thread (the driver only hands it the event).
    pub(crate) fn takes_work(self) -> bool {
        self != Mech::User
    }

    /// The process-context workqueues whose work items come from the pool
    /// (`bh/work_pool.rs`, module parameter `work_items`).
    pub(crate) fn pooled(self) -> bool {
        matches!(
            self,
            Mech::WqSystem | Mech::WqHighpri | Mech::WqUnbound | Mech::WqDedicated | Mech::WqOrdered | Mech::WqCpuIntensive
        )
    }

    /// Whether its runs wait for a requested delay (the source's `delay`): a timer, delayed
    /// work or a sleep; each run's first ack carries the delay and when it was armed.
    pub(crate) fn takes_delay(self) -> bool {
        matches!(
            self,
            Mech::TimerList | Mech::Hrtimer | Mech::WqDelayed | Mech::KthreadMsleep | Mech::KthreadUsleep
        )
    }

    /// The execution context's kind: `hardirq`, `softirq` or `process` (debugfs
    /// `mechanisms`; the host's table, protocol/src/mechanisms.rs, must agree: 10-mechanisms).
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Mech::Hardirq => "hardirq",
            Mech::User => "user",
            m if m.can_sleep() => "process",
            _ => "softirq",
        }
    }

    /// The execution context, for messages.
    pub(crate) fn context(self) -> &'static str {
        match self {
            Mech::Hardirq => "hard IRQ context",
            Mech::Tasklet | Mech::TaskletHi => "softirq context (tasklet)",
            Mech::BhWq | Mech::BhWqHighpri => "softirq context (BH workqueue)",
            Mech::TimerList => "softirq context (timer_list callback)",
            Mech::Hrtimer => "softirq context (hrtimer callback)",
            Mech::User => "user space (a thread reading /dev/irqstormN)",
            _ => "process context",
        }
    }
}

#[kernel::prelude::kunit_tests(irqstorm_mech)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_spec_order() {
        for (i, m) in Mech::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
            assert_eq!(Mech::from_u32(i as u32), Some(*m));
        }
        assert_eq!(Mech::from_u32(NUM_MECH as u32), None);
    }

    #[test]
    fn parse_accepts_names_and_ids() {
        for m in Mech::ALL {
            assert_eq!(Mech::parse(m.name()), Some(m));
        }
        assert_eq!(Mech::parse("0"), Some(Mech::Hardirq));
        assert_eq!(Mech::parse("13"), Some(Mech::Hrtimer));
        assert_eq!(Mech::parse("16"), Some(Mech::KthreadUsleep));
        assert_eq!(Mech::parse("19"), Some(Mech::User));
        assert_eq!(Mech::parse("tasklet_hi"), Some(Mech::TaskletHi));
        assert_eq!(Mech::parse("20"), None);
        assert_eq!(Mech::parse("-1"), None);
        assert_eq!(Mech::parse(""), None);
        assert_eq!(Mech::parse("Tasklet"), None);
        assert_eq!(Mech::parse("wq"), None);
    }

    #[test]
    fn only_process_context_mechanisms_sleep() {
        let sleepers = Mech::ALL.iter().filter(|m| m.can_sleep()).count();
        assert_eq!(sleepers, 13);
        assert_eq!(Mech::ALL.iter().filter(|m| m.pooled()).count(), 6);
        assert!(Mech::ALL.iter().all(|m| m.takes_work() != (*m == Mech::User)));
        assert_eq!(Mech::ALL.iter().filter(|m| m.takes_delay()).count(), 5);
        for m in Mech::ALL.into_iter().filter(|m| *m != Mech::User) {
            assert_eq!(m.can_sleep(), m.context() == "process context");
            assert_eq!(m.can_sleep(), m.kind() == "process");
        }
        assert_eq!(Mech::User.kind(), "user");
        assert_eq!(Mech::Hardirq.kind(), "hardirq");
        assert_eq!(Mech::TimerList.kind(), "softirq");
    }
}
