//! Merge the results of several devices/guests of one run
//! (`cargo xtask run --socket-count N`) into one report: counters are
//! summed, histograms merged, and each input row is kept, labelled with its
//! device, in `per_device`.

use std::collections::BTreeMap;

use crate::hist::{Distribution, HistError};
use crate::model::{
    mechanism_id, GuestCounters, MechanismResult, OneWay, RampResult, ReferenceResult, RunResult,
};

/// Errors of aggregation.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("nothing to aggregate")]
    Empty,
    #[error("results come from different scenarios: `{0}` and `{1}`")]
    Scenario(String, String),
    #[error("results come from different accelerators: `{0}` and `{1}`")]
    Accelerator(String, String),
    #[error(transparent)]
    Hist(#[from] HistError),
    #[error("{0}")]
    Timerlat(String),
}

fn add_guest(a: &mut GuestCounters, b: &GuestCounters) {
    a.records += b.records;
    a.events += b.events;
    a.acks_posted = match (a.acks_posted, b.acks_posted) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
    a.errors += b.errors;
}

fn merge_dist(a: &mut Option<Distribution>, b: &Option<Distribution>) -> Result<(), HistError> {
    match (a.as_mut(), b) {
        (Some(x), Some(y)) => x.merge(y)?,
        (None, Some(y)) => *a = Some(y.clone()),
        _ => {}
    }
    Ok(())
}

fn add_by_cpu(a: &mut Vec<(u16, u64)>, b: &[(u16, u64)]) {
    for &(cpu, n) in b {
        match a.iter_mut().find(|(c, _)| *c == cpu) {
            Some((_, m)) => *m += n,
            None => a.push((cpu, n)),
        }
    }
    a.sort_unstable();
}

fn merge_row(a: &mut MechanismResult, b: &MechanismResult) -> Result<(), HistError> {
    a.host += b.host;
    // guest counters are kept only when every input has them
    a.guest = match (a.guest, b.guest) {
        (Some(mut x), Some(y)) => {
            add_guest(&mut x, &y);
            Some(x)
        }
        _ => None,
    };
    for s in &b.sources {
        if !a.sources.contains(s) {
            a.sources.push(*s);
        }
    }
    a.sources.sort_unstable();
    // The one-way estimate of each device was converted with that device's
    // own base and clock offset; the merged row merges those distributions
    // (bound: the widest). A row with acks but no estimate makes the merged
    // estimate incomplete, so it is left out rather than shown for a subset
    // of the devices.
    let incomplete = |r: &MechanismResult| r.raise_to_ack.is_some() && r.raise_to_hardirq.is_none();
    let (a_incomplete, b_incomplete) = (incomplete(a), incomplete(b));
    merge_dist(&mut a.raise_to_ack, &b.raise_to_ack)?;
    merge_dist(&mut a.hardirq_to_bh, &b.hardirq_to_bh)?;
    merge_dist(&mut a.bh_run, &b.bh_run)?;
    merge_dist(&mut a.irq_to_first_bh, &b.irq_to_first_bh)?;
    a.past_budget += b.past_budget;
    a.cancelled += b.cancelled;
    a.raise_to_hardirq = match (a.raise_to_hardirq.take(), &b.raise_to_hardirq) {
        _ if a_incomplete || b_incomplete => None,
        (Some(mut x), Some(y)) => {
            x.distribution.merge(&y.distribution)?;
            x.negative_samples += y.negative_samples;
            x.below_base += y.below_base;
            x.after_irq_start += y.after_irq_start;
            x.past_budget += y.past_budget;
            x.uncalibrated += y.uncalibrated;
            x.unchecked += y.unchecked;
            x.error_bound_ns = x.error_bound_ns.max(y.error_bound_ns);
            if x.method != y.method {
                // Devices measured differently: the merged row says both.
                x.method = format!("{}+{}", x.method, y.method);
            }
            Some(x)
        }
        (None, Some(y)) => Some(OneWay { ..y.clone() }),
        (x, None) => x,
    };
    // CPU ids of different guests are different CPUs: by-id counts add up
    // as "CPU n of its guest"; the cross-CPU share is exact.
    a.cpus = match (a.cpus.take(), &b.cpus) {
        (Some(mut x), Some(y)) => {
            add_by_cpu(&mut x.hard, &y.hard);
            add_by_cpu(&mut x.bh, &y.bh);
            x.cross_cpu += y.cross_cpu;
            x.records += y.records;
            Some(x)
        }
        (x, y) => x.or_else(|| y.clone()),
    };
    for l in &b.lateness {
        match a
            .lateness
            .iter_mut()
            .find(|x| x.requested_us == l.requested_us)
        {
            Some(x) => {
                merge_dist(&mut x.distribution, &l.distribution)?;
                x.early += l.early;
            }
            None => a.lateness.push(l.clone()),
        }
    }
    a.lateness.sort_by_key(|l| l.requested_us);
    a.reference = match (a.reference.take(), &b.reference) {
        (Some(mut x), Some(y)) => {
            merge_dist(&mut x.timer_to_hardirq, &y.timer_to_hardirq)?;
            merge_dist(&mut x.hardirq_to_bh, &y.hardirq_to_bh)?;
            merge_dist(&mut x.bh_run, &y.bh_run)?;
            Some(x)
        }
        (None, Some(y)) => Some(ReferenceResult { ..y.clone() }),
        (x, None) => x,
    };
    Ok(())
}

/// The device label of input `i`.
fn label(r: &RunResult, i: usize) -> String {
    match r.meta.devices.as_slice() {
        [one] => one.clone(),
        _ => format!("dev{i}"),
    }
}

fn merge_ramps(inputs: &[&RampResult]) -> Option<RampResult> {
    let first = *inputs.first()?;
    let same_shape = inputs.iter().all(|r| {
        r.steps.len() == first.steps.len()
            && r.steps
                .iter()
                .zip(&first.steps)
                .all(|(a, b)| a.rate_hz == b.rate_hz)
    });
    if !same_shape {
        return Some(first.clone());
    }
    let mut out = first.clone();
    for r in &inputs[1..] {
        for (a, b) in out.steps.iter_mut().zip(&r.steps) {
            a.host += b.host;
            a.raise_to_ack_p99_ns = match (a.raise_to_ack_p99_ns, b.raise_to_ack_p99_ns) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
        }
        if out.stop_reason.is_empty() {
            out.stop_reason = r.stop_reason.clone();
        }
        out.sustained_rate_hz = match (out.sustained_rate_hz, r.sustained_rate_hz) {
            (Some(x), Some(y)) => Some(x.min(y)),
            _ => None,
        };
    }
    Some(out)
}

/// Merge several devices' results of the same scenario into one.
/// Rows are merged by mechanism; input rows are kept in `per_device` with
/// their device label; checks are cleared (run the gate on the result).
pub fn aggregate(results: &[RunResult]) -> Result<RunResult, AggregateError> {
    let first = results.first().ok_or(AggregateError::Empty)?;
    if results.len() == 1 {
        let mut r = first.clone();
        r.checks.clear();
        r.finalize()?;
        return Ok(r);
    }
    for r in &results[1..] {
        if r.meta.scenario != first.meta.scenario {
            return Err(AggregateError::Scenario(
                first.meta.scenario.clone(),
                r.meta.scenario.clone(),
            ));
        }
        if r.meta.accelerator != first.meta.accelerator {
            return Err(AggregateError::Accelerator(
                first.meta.accelerator.clone(),
                r.meta.accelerator.clone(),
            ));
        }
    }
    let mut out = RunResult::new(first.meta.clone());
    out.meta.devices = Vec::new();
    for (i, r) in results.iter().enumerate() {
        if r.meta.devices.len() > 1 && !r.per_device.is_empty() {
            out.meta.devices.extend(r.meta.devices.iter().cloned());
        } else {
            out.meta.devices.push(label(r, i));
        }
        out.meta.duration_ns = out.meta.duration_ns.max(r.meta.duration_ns);
        if !r.meta.start_time.is_empty() && r.meta.start_time < out.meta.start_time {
            out.meta.start_time = r.meta.start_time.clone();
        }
    }
    // per-device rows
    for (i, r) in results.iter().enumerate() {
        if !r.per_device.is_empty() {
            out.per_device.extend(r.per_device.iter().cloned());
        } else {
            let dev = label(r, i);
            out.per_device.extend(r.mechanisms.iter().map(|m| {
                let mut m = m.clone();
                m.device.get_or_insert_with(|| dev.clone());
                m
            }));
        }
    }
    // merged rows, ordered by mechanism id
    let mut merged: BTreeMap<(u8, String), MechanismResult> = BTreeMap::new();
    for row in &out.per_device {
        let key = (
            mechanism_id(&row.mechanism).unwrap_or(u8::MAX),
            row.mechanism.clone(),
        );
        match merged.get_mut(&key) {
            Some(acc) => merge_row(acc, row)?,
            None => {
                let mut acc = row.clone();
                acc.device = None;
                merged.insert(key, acc);
            }
        }
    }
    out.mechanisms = merged.into_values().collect();
    // baselines
    for r in results {
        if let Some(b) = &r.baselines.host_eventfd {
            match &mut out.baselines.host_eventfd {
                Some(a) => {
                    a.round_trips += b.round_trips;
                    a.one_way.merge(&b.one_way)?;
                    a.round_trip.merge(&b.round_trip)?;
                }
                None => out.baselines.host_eventfd = Some(b.clone()),
            }
        }
        // One timerlat baseline per guest; the same guest's runs add up.
        for t in &r.baselines.timerlat {
            match out
                .baselines
                .timerlat
                .iter_mut()
                .find(|x| x.guest == t.guest)
            {
                Some(x) => x.merge(t).map_err(AggregateError::Timerlat)?,
                None => out.baselines.timerlat.push(t.clone()),
            }
        }
    }
    for (i, r) in results.iter().enumerate() {
        for o in &r.clock_offsets {
            let mut o = o.clone();
            if o.device.is_empty() {
                o.device = label(r, i);
            }
            out.clock_offsets.push(o);
        }
    }
    let ramps: Vec<&RampResult> = results.iter().filter_map(|r| r.ramp.as_ref()).collect();
    out.ramp = merge_ramps(&ramps);
    out.finalize()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conservation;
    use crate::model::tests::row;
    use crate::model::{EventfdBaseline, RunMeta};

    fn one(dev: &str, mechs: &[&str], scale: u64) -> RunResult {
        let mut r = RunResult::new(RunMeta {
            scenario: "s".into(),
            accelerator: "tcg".into(),
            start_time: format!("2026-11-22T06:4{scale}:00Z"),
            duration_ns: 1_000 * scale,
            devices: vec![dev.into()],
            ..Default::default()
        });
        for m in mechs {
            r.mechanisms.push(row(m, None, scale));
        }
        r.baselines.host_eventfd = Some(EventfdBaseline {
            round_trips: 10,
            one_way: Distribution::from_buckets([(1_000 * scale, 10)]).unwrap(),
            round_trip: Distribution::from_buckets([(2_000 * scale, 10)]).unwrap(),
        });
        r.finalize().unwrap();
        r
    }

    #[test]
    fn sums_counters_and_merges_histograms() {
        let a = one("sock0", &["tasklet", "hardirq"], 1);
        let b = one("sock1", &["tasklet", "kthread"], 2);
        let m = aggregate(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(m.meta.devices, vec!["sock0", "sock1"]);
        assert_eq!(m.meta.start_time, "2026-11-22T06:41:00Z");
        assert_eq!(m.meta.duration_ns, 2_000);
        let names: Vec<&str> = m.mechanisms.iter().map(|r| r.mechanism.as_str()).collect();
        assert_eq!(names, vec!["hardirq", "tasklet", "kthread"]);
        let t = &m.mechanisms[1];
        assert_eq!(t.device, None);
        assert_eq!(t.host.raised, 2000);
        assert_eq!(t.host.coalesced, 180);
        assert_eq!(t.guest.unwrap().events, 1980);
        assert_eq!(t.raise_to_ack.as_ref().unwrap().count(), 1800);
        assert_eq!(t.hardirq_to_bh.as_ref().unwrap().count(), 1800);
        // max of the merged histogram is the larger input's max
        assert_eq!(
            t.raise_to_ack.as_ref().unwrap().summary.max_ns,
            b.mechanisms[0]
                .raise_to_ack
                .as_ref()
                .unwrap()
                .summary
                .max_ns
        );
        assert!(conservation(t).is_empty());
        // per-device rows keep their labels
        assert_eq!(m.per_device.len(), 4);
        assert_eq!(m.per_device[0].device.as_deref(), Some("sock0"));
        assert_eq!(m.per_device[3].device.as_deref(), Some("sock1"));
        let e = m.baselines.host_eventfd.as_ref().unwrap();
        assert_eq!((e.round_trips, e.round_trip.count()), (20, 20));
        // ratios recomputed against the merged baseline
        assert!(t.ratios.raise_to_ack_p99_vs_host_eventfd.is_some());
    }

    #[test]
    fn aggregated_report_renders_per_device_rows() {
        let m = aggregate(&[one("sock0", &["tasklet"], 1), one("sock1", &["tasklet"], 2)]).unwrap();
        let t = crate::render::table(&m);
        assert!(t.contains("2 device(s)"), "{t}");
        assert!(t.contains("per device:"));
        assert!(t.contains("tasklet@sock0") && t.contains("tasklet@sock1"));
        // conservation is checked on the merged row and on each device row
        let x = crate::render::junit(&m);
        let doc = roxmltree::Document::parse(&x).unwrap();
        let classes: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .filter_map(|n| n.attribute("classname"))
            .collect();
        assert_eq!(
            classes,
            // conservation, then one-way consistency (skipped: not measured)
            [
                "irqstorm.s.tasklet",
                "irqstorm.s.tasklet.sock0",
                "irqstorm.s.tasklet.sock1"
            ]
            .repeat(2)
        );
    }

    #[test]
    fn missing_guest_counters_drop_the_merged_guest_counters() {
        let a = one("d0", &["tasklet"], 1);
        let mut b = one("d1", &["tasklet"], 1);
        b.mechanisms[0].guest = None;
        let m = aggregate(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(m.mechanisms[0].guest, None);
        let m = aggregate(&[b, a]).unwrap();
        assert_eq!(m.mechanisms[0].guest, None);
    }

    #[test]
    fn refuses_mixed_runs() {
        let a = one("d0", &["tasklet"], 1);
        let mut b = one("d1", &["tasklet"], 1);
        b.meta.scenario = "other".into();
        assert!(matches!(
            aggregate(&[a.clone(), b]),
            Err(AggregateError::Scenario(..))
        ));
        let mut c = one("d1", &["tasklet"], 1);
        c.meta.accelerator = "kvm".into();
        assert!(matches!(
            aggregate(&[a.clone(), c]),
            Err(AggregateError::Accelerator(..))
        ));
        assert!(matches!(aggregate(&[]), Err(AggregateError::Empty)));
        assert_eq!(
            aggregate(std::slice::from_ref(&a)).unwrap().mechanisms,
            a.mechanisms
        );
    }

    #[test]
    fn one_way_is_converted_per_device_then_merged() {
        use crate::offset::{one_way_from_diffs, OffsetEstimate};
        let est = |theta: i64, bound: u64| OffsetEstimate {
            host_minus_guest_ns: theta,
            error_bound_ns: bound,
            delay_ns: 2 * bound,
            samples: 1,
            used: 1,
            chosen: 0,
            drift_ppm: None,
        };
        // two devices, two guests: different clock offsets, same latencies
        let (e0, e1) = (est(7_000_000_000, 1_000), est(-3_000_000_000, 4_000));
        let mut a = one("sock0", &["tasklet"], 1);
        let mut b = one("sock1", &["tasklet"], 1);
        let mut ow0 = one_way_from_diffs(&e0, [(10_000 - 7_000_000_000, 5)]).unwrap();
        ow0.below_base = 2;
        let ow1 = one_way_from_diffs(&e1, [(50_000 + 3_000_000_000, 5)]).unwrap();
        a.mechanisms[0].raise_to_hardirq = Some(ow0);
        b.mechanisms[0].raise_to_hardirq = Some(ow1);
        let m = aggregate(&[a.clone(), b.clone()]).unwrap();
        let ow = m.mechanisms[0].raise_to_hardirq.as_ref().unwrap();
        assert_eq!(ow.distribution.count(), 10);
        assert_eq!(ow.distribution.summary.min_ns, 10_000);
        assert!(ow.distribution.summary.max_ns.abs_diff(50_000) <= 100);
        assert_eq!((ow.below_base, ow.error_bound_ns), (2, 4_000));
        // a device with acks but no estimate: no merged figure (not a subset)
        b.mechanisms[0].raise_to_hardirq = None;
        for inputs in [[a.clone(), b.clone()], [b, a]] {
            let m = aggregate(&inputs).unwrap();
            assert!(m.mechanisms[0].raise_to_hardirq.is_none());
            assert_eq!(
                m.per_device
                    .iter()
                    .filter(|r| r.raise_to_hardirq.is_some())
                    .count(),
                1
            );
        }
    }
}
