//! The run as phases: warm-up, the measured run and the ramp steps, each a
//! list of sources to CONFIGURE and START.

use super::control::ConfigureBody;
use super::schema::{DrivenBy, Scenario};

/// Phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Replays the first `warmup_ms` of the measured schedule; counters and
    /// histograms are reset after it (STATS with the reset flag).
    Warmup,
    /// The measured run: every source, with its `start_delay_ms`.
    Measure,
    /// One ramp step: only the ramped sources, at `rate_hz` in total.
    RampStep { index: usize, rate_hz: u32 },
}

impl Phase {
    pub fn name(&self) -> String {
        match self {
            Phase::Warmup => "warm-up".into(),
            Phase::Measure => "measure".into(),
            Phase::RampStep { index, rate_hz } => format!("ramp {} @ {rate_hz}/s", index + 1),
        }
    }
}

/// One source to configure and start in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStart {
    pub id: u16,
    /// START's `start_delay_ns` is `start_delay_ms * 1_000_000`.
    pub start_delay_ms: u64,
    pub body: ConfigureBody,
    pub driven_by: DrivenBy,
}

/// What the xtask does in one phase: CONFIGURE and START `starts`, wait
/// `duration_ms`, STOP all, read the stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhasePlan {
    pub phase: Phase,
    pub duration_ms: u64,
    pub starts: Vec<SourceStart>,
}

impl Scenario {
    /// The run as phases: warm-up (if any), the measured run, and one phase
    /// per ramp step. A ramp step runs only the ramped sources, the step's
    /// rate split evenly between them (at least 1/s each), without count or
    /// duration limits (the step's end stops them); the ramp stops early
    /// when [`Ramp::stop_reason`](super::Ramp::stop_reason) says so.
    pub fn plan(&self) -> Vec<PhasePlan> {
        let all: Vec<SourceStart> = self
            .sources
            .iter()
            .map(|s| SourceStart {
                id: s.id,
                start_delay_ms: s.start_delay_ms,
                body: s.configure_body(),
                driven_by: s.driven_by,
            })
            .collect();
        let mut out = Vec::new();
        if self.warmup_ms > 0 {
            out.push(PhasePlan {
                phase: Phase::Warmup,
                duration_ms: self.warmup_ms,
                starts: all
                    .iter()
                    .filter(|s| s.start_delay_ms < self.warmup_ms)
                    .copied()
                    .collect(),
            });
        }
        out.push(PhasePlan {
            phase: Phase::Measure,
            duration_ms: self.duration_ms,
            starts: all,
        });
        if let Some(r) = &self.ramp {
            let ids = self.ramp_sources();
            for (index, rate_hz) in r.rates().into_iter().enumerate() {
                let per = (rate_hz / ids.len().max(1) as u32).max(1);
                let starts = self
                    .sources
                    .iter()
                    .filter(|s| ids.contains(&s.id))
                    .map(|s| {
                        let mut body = s.configure_body();
                        body.rate_hz = per;
                        body.count = 0;
                        body.duration_ns = 0;
                        SourceStart {
                            id: s.id,
                            start_delay_ms: 0,
                            body,
                            driven_by: s.driven_by,
                        }
                    })
                    .collect();
                out.push(PhasePlan {
                    phase: Phase::RampStep { index, rate_hz },
                    duration_ms: r.step_duration_ms,
                    starts,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load;
    use std::path::Path;

    #[test]
    fn plan_has_warmup_measure_and_ramp_steps() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let s = load(dir.join("storm-ramp.toml")).unwrap();
        let p = s.plan();
        assert_eq!(p[0].phase, Phase::Warmup);
        assert_eq!(p[1].phase, Phase::Measure);
        assert_eq!(p[1].starts.len(), s.sources.len());
        let steps = &p[2..];
        assert_eq!(steps.len(), s.ramp.as_ref().unwrap().rates().len());
        assert_eq!(
            steps[0].phase,
            Phase::RampStep {
                index: 0,
                rate_hz: 1000
            }
        );
        assert_eq!(steps[0].phase.name(), "ramp 1 @ 1000/s");
        // two ramped storm sources share the rate; the periodic source idles
        assert_eq!(steps[0].starts.len(), 2);
        assert!(steps[0]
            .starts
            .iter()
            .all(|x| x.body.rate_hz == 500 && x.body.mode == 3));
        assert_eq!(p.iter().map(|x| x.duration_ms).sum::<u64>(), s.total_ms());
        // warm-up replays only what starts within it
        let d = load(dir.join("default.toml")).unwrap();
        let dp = d.plan();
        assert_eq!(dp[0].starts.len(), 20); // the timers; storms start at >= 1000 ms
        assert!(dp[0].starts.iter().all(|x| x.body.mode == 2));
    }
}
