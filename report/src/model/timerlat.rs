//! The kernel's timerlat tracer as an in-guest baseline (`baselines.timerlat`
//! of `report.json`, docs/report.md): the tracer ran in the same guest over
//! the same measured phase as the mechanisms, so its figures and theirs met
//! the same host.
//!
//! timerlat arms a periodic hrtimer per CPU and wakes a SCHED_FIFO:95
//! kthread (`timerlat/N`) from it. Per activation it prints two samples of
//! the same expiry: `irq` (timer expiry -> its hard-IRQ handler) and
//! `thread` (timer expiry -> the thread running). Their difference is the
//! hard IRQ -> woken RT thread latency, the kernel's own figure for what
//! the driver measures as hardirq->bh.

use serde::{Deserialize, Serialize};

use crate::hist::{Distribution, HistError};

/// One guest's timerlat run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerlatBaseline {
    /// The guest (`irqstorm0`, ...).
    pub guest: String,
    /// `osnoise/timerlat_period_us` as read back.
    pub period_us: u64,
    /// `osnoise/cpus` as read back (a CPU list; empty means all CPUs).
    pub cpus: String,
    /// Timer expiry -> the timerlat hard-IRQ handler, every CPU.
    pub irq: Distribution,
    /// Timer expiry -> the `timerlat/N` thread running (cyclictest's figure).
    pub thread: Distribution,
    /// Per activation with both samples: thread - irq, i.e. the hard IRQ ->
    /// woken SCHED_FIFO:95 thread latency.
    pub irq_to_thread: Distribution,
    /// The same per CPU.
    pub per_cpu: Vec<TimerlatCpu>,
    /// Activations with only one of their two samples: the tracer stopped
    /// between them (at most one per CPU) or the ring buffer lost one.
    pub unmatched: u64,
    /// Ring-buffer entries overwritten before they were read
    /// (`per_cpu/cpuN/stats` "overrun"): samples lost, counted here.
    pub overrun: u64,
    /// `timer_latency` lines that did not parse (counted, not guessed).
    pub unparsed: u64,
}

/// One CPU's timerlat figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerlatCpu {
    pub cpu: u32,
    pub irq: Distribution,
    pub thread: Distribution,
}

impl TimerlatBaseline {
    /// Recompute the summaries from the histograms.
    pub fn resummarize(&mut self) -> Result<(), HistError> {
        for d in [&mut self.irq, &mut self.thread, &mut self.irq_to_thread] {
            d.resummarize()?;
        }
        for c in &mut self.per_cpu {
            c.irq.resummarize()?;
            c.thread.resummarize()?;
        }
        Ok(())
    }

    /// Add another run of the same guest (repeats, merged reports): the
    /// histograms and counts add up; a different period or CPU list is
    /// refused, their samples are not one distribution.
    pub fn merge(&mut self, other: &TimerlatBaseline) -> Result<(), String> {
        if (self.period_us, &self.cpus) != (other.period_us, &other.cpus) {
            return Err(format!(
                "timerlat of {}: period {} us, CPUs `{}` vs period {} us, CPUs `{}`",
                self.guest, self.period_us, self.cpus, other.period_us, other.cpus
            ));
        }
        let m = |a: &mut Distribution, b: &Distribution| a.merge(b).map_err(|e| e.to_string());
        m(&mut self.irq, &other.irq)?;
        m(&mut self.thread, &other.thread)?;
        m(&mut self.irq_to_thread, &other.irq_to_thread)?;
        for c in &other.per_cpu {
            match self.per_cpu.iter_mut().find(|x| x.cpu == c.cpu) {
                Some(x) => {
                    m(&mut x.irq, &c.irq)?;
                    m(&mut x.thread, &c.thread)?;
                }
                None => self.per_cpu.push(c.clone()),
            }
        }
        self.per_cpu.sort_by_key(|c| c.cpu);
        self.unmatched += other.unmatched;
        self.overrun += other.overrun;
        self.unparsed += other.unparsed;
        Ok(())
    }

    /// Samples lost or unusable: what makes the baseline incomplete.
    pub fn lost(&self) -> u64 {
        self.overrun + self.unparsed
    }
}

#[cfg(test)]
mod tests {
    use crate::input::parse_timerlat;

    fn one(period: u64, irq: u64) -> super::TimerlatBaseline {
        parse_timerlat(
            &format!("period_us {period}\ncpus 0-1\noverrun 1 2\ns 1 1 irq {irq}\ns 1 1 thread 9000\ns 0 7 irq 5\n"),
            "irqstorm0",
        )
        .unwrap()
        .baseline
    }

    #[test]
    fn runs_of_one_guest_add_up_and_other_settings_are_refused() {
        let mut a = one(1000, 1000);
        a.merge(&one(1000, 2000)).unwrap();
        assert_eq!(
            (a.irq.count(), a.thread.count(), a.irq_to_thread.count()),
            (4, 2, 2)
        );
        assert_eq!((a.unmatched, a.overrun), (2, 4));
        assert_eq!(a.per_cpu.iter().map(|c| c.cpu).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(a.per_cpu[1].irq.count(), 2);
        let e = a.merge(&one(500, 1000)).unwrap_err();
        assert!(
            e.contains("period 1000 us, CPUs `0-1` vs period 500 us"),
            "{e}"
        );
    }
}
