//! Disturbed runs: when a QEMU vCPU thread waited for a host core longer
//! than the scenario allows (`[gates] max_vcpu_wait_share`), the host, not
//! the mechanism, set the latency tail; such a run's latency thresholds are
//! reported "not judged" (skipped, with the reason) while conservation,
//! count and consistency checks still gate.

use crate::model::{Check, CheckKind, Outcome, RunResult};
use crate::scenario::{Figure, Scenario};

/// Marks a threshold check that was not judged on a disturbed run: the end
/// of its `name`, and the start of the reason in its `message`.
pub const NOT_JUDGED: &str = "not judged";

/// Judge the run's interference against the scenario's limit: records the
/// limit, `disturbed` and its reason in `result.interference`. Returns the
/// reason when the run is disturbed (`None` also when nothing was sampled).
pub fn judge_interference(scenario: &Scenario, result: &mut RunResult) -> Option<String> {
    let limit = scenario.gates.max_vcpu_wait_share;
    let i = result.interference.as_mut()?;
    i.max_vcpu_wait_share_limit = Some(limit);
    let reason = i.worst_vcpu().filter(|v| v.wait_share > limit).map(|v| {
        format!(
            "vCPU thread `{}` of {} (tid {}) waited for a host core {:.1} % of the measured \
             phase ({:.1} ms of {:.1} ms), above the limit {:.1} % ([gates] max_vcpu_wait_share)",
            v.name,
            v.device,
            v.tid,
            v.wait_share * 100.0,
            v.wait_ns as f64 / 1e6,
            i.phase_ns as f64 / 1e6,
            limit * 100.0
        )
    });
    i.disturbed = reason.is_some();
    i.disturbed_reason = reason.clone();
    reason
}

/// Whether a check is a threshold on a latency figure (the tail gates a
/// disturbed run does not judge).
pub fn is_tail_gate(figure: &Figure) -> bool {
    matches!(figure, Figure::Latency(..))
}

/// Turn an evaluated tail-gate check into "not judged": skipped, its
/// measured value and limit kept, the reason in the message.
pub fn not_judged(c: &mut Check, reason: &str) {
    if c.outcome == Outcome::Skip {
        return;
    }
    c.outcome = Outcome::Skip;
    c.name = format!("{} ({NOT_JUDGED}: disturbed run)", c.name);
    c.message = format!(
        "{NOT_JUDGED}: disturbed run ({reason}); the figure was: {}",
        c.message
    );
}

/// Whether a check was not judged because the run was disturbed.
pub fn is_not_judged(c: &Check) -> bool {
    c.kind == CheckKind::Threshold
        && c.outcome == Outcome::Skip
        && c.message.starts_with(NOT_JUDGED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::apply;
    use crate::gate::tests::{result, sc};
    use crate::model::{Interference, VcpuInterference};

    fn interference(shares: &[f64]) -> Interference {
        let phase_ns = 3_000_000_000u64;
        Interference {
            phase_ns,
            host_cores: 2,
            vcpus: shares
                .iter()
                .enumerate()
                .map(|(k, s)| VcpuInterference {
                    device: "irqstorm0".into(),
                    qemu_pid: 100,
                    tid: 101 + k as u32,
                    name: format!("CPU {k}/TCG"),
                    cpu_ns: phase_ns / 2,
                    wait_ns: (s * phase_ns as f64) as u64,
                    timeslices: 10,
                    wait_share: *s,
                })
                .collect(),
            max_vcpu_wait_share: shares.iter().copied().reduce(f64::max),
            ..Default::default()
        }
    }

    /// Thresholds that fail on `result()`: a latency one (threaded's
    /// raise->ack p99 is ~4 ms) and a count one (4 dropped).
    const FAILING: &str = concat!(
        "[[thresholds]]\nmechanism = \"*\"\nfigure = \"raise_to_ack.p99\"\nmax = \"1ms\"\n",
        "[[thresholds]]\nmechanism = \"tasklet\"\nfigure = \"dropped\"\nmax = 0\n",
        "[[thresholds]]\nmechanism = \"tasklet\"\nfigure = \"bh_run.max\"\nmax = { tcg = \"1us\" }\n",
    );

    #[test]
    fn disturbed_run_does_not_judge_tail_gates_but_gates_counts_and_conservation() {
        let s = sc(&format!("{FAILING}[gates]\nmax_vcpu_wait_share = 0.1\n"));
        let mut r = result("kvm");
        r.interference = Some(interference(&[0.02, 0.25]));
        r.mechanisms[1].host.pending += 5; // threaded: conservation broken
        let f = apply(&s, &mut r);
        let i = r.interference.as_ref().unwrap();
        assert!(i.disturbed);
        assert_eq!(i.max_vcpu_wait_share_limit, Some(0.1));
        let reason = i.disturbed_reason.as_deref().unwrap();
        assert!(
            reason.starts_with(
                "vCPU thread `CPU 1/TCG` of irqstorm0 (tid 102) waited for a host core 25.0 %"
            ),
            "{reason}"
        );
        assert!(reason.contains("above the limit 10.0 %"), "{reason}");
        // Failures: the count threshold and conservation, no latency figure.
        let kinds: Vec<(CheckKind, &str)> = f.iter().map(|c| (c.kind, c.figure.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (CheckKind::Conservation, "conservation"),
                (CheckKind::Threshold, "dropped")
            ],
            "{f:?}"
        );
        let nj: Vec<&Check> = r.checks.iter().filter(|c| is_not_judged(c)).collect();
        // raise_to_ack.p99 on both rows (one of them would have failed)
        assert_eq!(nj.len(), 2, "{:?}", r.checks);
        for c in &nj {
            assert_eq!(c.outcome, Outcome::Skip);
            assert!(
                c.name.ends_with("(not judged: disturbed run)"),
                "{}",
                c.name
            );
            assert!(c.message.contains(reason), "{}", c.message);
            assert!(c.measured.is_some() && c.limit == Some(1e6));
        }
        assert!(nj
            .iter()
            .any(|c| c.message.contains("exceeds the limit 1.00 ms")));
        // "no limit for this accelerator" stays an ordinary skip
        let other = r.checks.iter().find(|c| c.figure == "bh_run.max").unwrap();
        assert_eq!(other.outcome, Outcome::Skip);
        assert!(!is_not_judged(other), "{}", other.message);
    }

    #[test]
    fn quiet_run_judges_everything_and_records_the_limit() {
        let s = sc(FAILING);
        let mut r = result("kvm");
        r.interference = Some(interference(&[0.01, 0.049]));
        let f = apply(&s, &mut r);
        let i = r.interference.as_ref().unwrap();
        assert!(!i.disturbed && i.disturbed_reason.is_none());
        assert_eq!(
            i.max_vcpu_wait_share_limit,
            Some(crate::scenario::DEFAULT_MAX_VCPU_WAIT_SHARE)
        );
        assert!(f.iter().any(|c| c.figure == "raise_to_ack.p99"), "{f:?}");
        assert!(!r.checks.iter().any(is_not_judged));
        // the same run with a lower limit is disturbed; re-gating with a
        // higher one clears it again
        let mut r2 = r.clone();
        let low = sc(&format!("{FAILING}[gates]\nmax_vcpu_wait_share = 0.04\n"));
        apply(&low, &mut r2);
        assert!(r2.interference.as_ref().unwrap().disturbed);
        apply(&s, &mut r2);
        assert!(!r2.interference.as_ref().unwrap().disturbed);
        // nothing sampled: judged as before, no interference invented
        let mut r3 = result("kvm");
        let f3 = apply(&s, &mut r3);
        assert!(r3.interference.is_none());
        assert_eq!(f3.len(), f.len());
    }
}
