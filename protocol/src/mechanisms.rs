//! The bottom-half mechanisms (spec §6.5, §6.6) as data: the execution
//! context, whether the work may sleep, where it runs, the kernel API and
//! what the driver's bh-start stamp is checked against. One table: the
//! README's teaching table is generated from it (`cargo xtask docs`), and
//! the guest test `10-mechanisms` compares it with the driver's own
//! (debugfs `mechanisms`).

use crate::wire::MECHANISM_NAMES;

/// Where a bottom half runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Inside the hard IRQ handler, interrupts off.
    Hardirq,
    /// Softirq context (a tasklet, the BH workqueue, a timer callback).
    Softirq,
    /// A kernel thread or a kworker: may sleep.
    Process,
    /// A user-space thread woken by `read()` / `poll()` on the misc device.
    User,
}

impl Context {
    /// The name the driver's debugfs `mechanisms` file uses.
    pub fn name(self) -> &'static str {
        match self {
            Context::Hardirq => "hardirq",
            Context::Softirq => "softirq",
            Context::Process => "process",
            Context::User => "user",
        }
    }
}

/// One mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mechanism {
    /// Name (`MECHANISM_NAMES[id]`).
    pub name: &'static str,
    /// Execution context.
    pub context: Context,
    /// The kernel API the driver uses.
    pub api: &'static str,
    /// On which CPU the bottom half runs.
    pub cpu: &'static str,
    /// The trace event the driver's bh-start stamp of a FIRST record is
    /// compared with (tests/guest/50-ftrace.sh, spec §6.6).
    pub trace: &'static str,
}

impl Mechanism {
    /// Whether its work may sleep: process context and user space.
    pub fn may_sleep(&self) -> bool {
        matches!(self.context, Context::Process | Context::User)
    }
}

const fn m(
    name: &'static str,
    context: Context,
    api: &'static str,
    cpu: &'static str,
    trace: &'static str,
) -> Mechanism {
    Mechanism {
        name,
        context,
        api,
        cpu,
        trace,
    }
}

use Context::{Hardirq, Process, Softirq, User};

/// Every mechanism, indexed by id.
pub const MECHANISMS: [Mechanism; MECHANISM_NAMES.len()] = [
    m(
        "hardirq",
        Hardirq,
        "the hard IRQ handler itself",
        "the CPU that took the interrupt (its `smp_affinity`)",
        "`irq_handler_entry`",
    ),
    m(
        "threaded",
        Process,
        "`request_threaded_irq` thread function",
        "the IRQ thread `irq/N-irqstorm`, moved to the IRQ's affinity",
        "`sched_switch` to `irq/N-irqstorm`",
    ),
    m(
        "tasklet",
        Softirq,
        "`tasklet_schedule` (legacy)",
        "the CPU that scheduled it (the hard IRQ's)",
        "`softirq_entry` vec 6 (TASKLET)",
    ),
    m(
        "tasklet_hi",
        Softirq,
        "`tasklet_hi_schedule` (legacy)",
        "the CPU that scheduled it (the hard IRQ's)",
        "`softirq_entry` vec 0 (HI)",
    ),
    m(
        "bh_wq",
        Softirq,
        "`queue_work(system_bh_wq)`",
        "the queueing CPU (per-CPU BH pool)",
        "`workqueue_execute_start`",
    ),
    m(
        "bh_wq_highpri",
        Softirq,
        "`queue_work(system_bh_highpri_wq)`",
        "the queueing CPU (per-CPU BH pool)",
        "`workqueue_execute_start`",
    ),
    m(
        "wq_system",
        Process,
        "`queue_work(system_wq)`",
        "a kworker of the queueing CPU's pool",
        "`workqueue_execute_start`",
    ),
    m(
        "wq_highpri",
        Process,
        "`queue_work(system_highpri_wq)`",
        "a nice -20 kworker of the queueing CPU's pool",
        "`workqueue_execute_start`",
    ),
    m(
        "wq_unbound",
        Process,
        "`queue_work(system_unbound_wq)`",
        "a kworker of the unbound pool: any CPU of the unbound cpumask",
        "`workqueue_execute_start`",
    ),
    m(
        "wq_dedicated",
        Process,
        "`alloc_workqueue` (the driver's own queue)",
        "a kworker of the queueing CPU's pool",
        "`workqueue_execute_start`",
    ),
    m(
        "kthread",
        Process,
        "`kthread_run` + a wait queue",
        "where the scheduler wakes it (no affinity set)",
        "`sched_switch` to `irqstorm_kthread`",
    ),
    m(
        "completion",
        Process,
        "`complete` / `wait_for_completion_timeout` in a kthread",
        "where the scheduler wakes the waiter",
        "`sched_switch` to `irqstorm_compl`",
    ),
    m(
        "timer_list",
        Softirq,
        "`timer_setup` + `mod_timer`, the source's delay (at least the next jiffy)",
        "the arming CPU, or another if timer migration moves it",
        "`softirq_entry` vec 1 (TIMER)",
    ),
    m(
        "hrtimer",
        Softirq,
        "`hrtimer_start` (soft mode), the source's delay",
        "the arming CPU",
        "`softirq_entry` vec 8 (HRTIMER)",
    ),
    m(
        "wq_delayed",
        Process,
        "`queue_delayed_work(system_percpu_wq)`, the source's delay",
        "a kworker of the queueing CPU's pool",
        "`workqueue_execute_start`",
    ),
    m(
        "kthread_msleep",
        Process,
        "`msleep` of the source's delay (ms, rounded up) in the sleeper kthread",
        "where the scheduler wakes the sleeper kthread",
        "`sched_switch` to `irqstorm_sleep`",
    ),
    m(
        "kthread_usleep",
        Process,
        "`usleep_range(d, d + d/4)` of the source's delay in the sleeper kthread",
        "where the scheduler wakes the sleeper kthread",
        "`sched_switch` to `irqstorm_sleep`",
    ),
    m(
        "wq_ordered",
        Process,
        "`alloc_ordered_workqueue` (one work item at a time, in queueing order)",
        "a kworker of the unbound pool: any CPU of the unbound cpumask",
        "`workqueue_execute_start`",
    ),
    m(
        "wq_cpu_intensive",
        Process,
        "`alloc_workqueue(WQ_PERCPU \\| WQ_CPU_INTENSIVE)` (outside concurrency management)",
        "a kworker of the queueing CPU's pool",
        "`workqueue_execute_start`",
    ),
    m(
        "user",
        User,
        "`read()` / `poll()` on `/dev/irqstormN` (misc device) in a user thread",
        "where the scheduler wakes the reading thread (its affinity)",
        "`sched_switch` to the reader (`irqstorm-wait`)",
    ),
];

/// Whether the mechanism takes a requested delay (its figure: lateness =
/// actual - requested).
pub fn takes_delay(name: &str) -> bool {
    matches!(
        name,
        "timer_list" | "hrtimer" | "wq_delayed" | "kthread_msleep" | "kthread_usleep"
    )
}

/// The README's teaching table (Markdown), generated from [`MECHANISMS`].
pub fn teaching_table() -> String {
    let mut s = String::from(
        "| mechanism | context | may sleep | kernel API | CPU placement | measured against (ftrace) |\n\
         |---|---|---|---|---|---|\n",
    );
    for m in &MECHANISMS {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            m.name,
            m.context.name(),
            if m.may_sleep() { "yes" } else { "no" },
            m.api,
            m.cpu,
            m.trace
        ));
    }
    s
}

/// The driver's debugfs `mechanisms` file as it must read: `name context
/// may_sleep` per line, by id.
pub fn driver_listing() -> String {
    MECHANISMS
        .iter()
        .map(|m| {
            format!(
                "{} {} {}\n",
                m.name,
                m.context.name(),
                u8::from(m.may_sleep())
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_follows_the_wire_ids() {
        let names: Vec<&str> = MECHANISMS.iter().map(|m| m.name).collect();
        assert_eq!(names, MECHANISM_NAMES);
    }

    #[test]
    fn process_context_mechanisms_may_sleep() {
        let sleepers: Vec<&str> = MECHANISMS
            .iter()
            .filter(|m| m.may_sleep())
            .map(|m| m.name)
            .collect();
        assert_eq!(
            sleepers,
            [
                "threaded",
                "wq_system",
                "wq_highpri",
                "wq_unbound",
                "wq_dedicated",
                "kthread",
                "completion",
                "wq_delayed",
                "kthread_msleep",
                "kthread_usleep",
                "wq_ordered",
                "wq_cpu_intensive",
                "user"
            ]
        );
        assert!(driver_listing().starts_with("hardirq hardirq 0\nthreaded process 1\n"));
        assert_eq!(teaching_table().lines().count(), 2 + MECHANISMS.len());
    }
}
