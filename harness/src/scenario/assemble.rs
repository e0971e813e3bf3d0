//! Assembling the report: each guest's console dumps and its device's
//! stats into one [`RunResult`] per device (clock offset, one-way figures
//! with their drift allowance), merged when there are several.

use irqstorm_report::model::{self, EventfdBaseline, RampResult, RunMeta, RunResult};
use irqstorm_report::scenario::Scenario;
use irqstorm_report::{aggregate, input, offset};

use super::console::{guest_dump, kernel_version, pings, section};
use super::RunError;

/// What every device's result shares.
pub struct Shared<'a> {
    pub scenario: &'a Scenario,
    /// `meta` of the run; `devices` and `kernel_version` are set per device.
    pub meta: RunMeta,
    pub evfd: &'a EventfdBaseline,
    pub ramp: &'a RampResult,
}

/// The result of device `i` (`irqstorm{i}`) from its `stats` reply and its
/// guest's console (`console_log` names it in errors).
pub fn device_result(
    sh: &Shared,
    i: usize,
    n: u32,
    stats_text: &str,
    console: &str,
    console_log: &std::path::Path,
) -> Result<RunResult, RunError> {
    let s = sh.scenario;
    let label = format!("irqstorm{i}");
    let dev_label = (n > 1).then_some(label.as_str());
    let stats = input::parse_backend_stats(stats_text)?;
    let mut rows = stats.rows(s, dev_label)?;
    let dump = guest_dump(console);
    if dump.summary.is_none() {
        return Err(RunError::Guest(format!(
            "guest {i}: no debugfs stats dump on the console ({})",
            console_log.display()
        )));
    }
    input::apply_guest(&mut rows, &dump.texts())?;
    let mut result = RunResult::new(RunMeta {
        kernel_version: kernel_version(console).unwrap_or_else(|| sh.meta.kernel_version.clone()),
        devices: vec![label.clone()],
        ..sh.meta.clone()
    });
    result.mechanisms = rows;
    result.baselines.host_eventfd = Some(sh.evfd.clone());
    if let Some(t) = timerlat(s, console, &label, console_log)? {
        result.baselines.timerlat.push(t.baseline);
    }
    let samples = pings(console);
    let est = match offset::estimate(&samples) {
        Ok(est) => {
            result.clock_offsets.push(model::DeviceOffset {
                device: label.clone(),
                estimate: est,
            });
            Some(est)
        }
        Err(e) => {
            result.meta.notes.push(format!(
                "{label}: clock offset not measured ({} PING exchanges: {e})",
                samples.len()
            ));
            None
        }
    };
    // One-way raise->hardirq: this device's raw differences, its base
    // and its own offset (converted per device; aggregate() merges).
    // The TSC method first (exact up to its calibration bound); the PING
    // method for the rows it could not fill.
    let notes = stats.apply_tsc_one_way(&mut result.mechanisms, &label)?;
    result.meta.notes.extend(notes);
    let notes = stats.apply_one_way(&mut result.mechanisms, est.as_ref(), &label)?;
    result.meta.notes.extend(notes);
    let is_ping = |r: &model::MechanismResult| {
        r.raise_to_hardirq
            .as_ref()
            .is_some_and(|o| o.method == model::METHOD_PING)
    };
    if let Some(e) = est.filter(|_| result.mechanisms.iter().any(is_ping)) {
        add_drift_allowance(&mut result, &e, &samples, &stats, &label);
    }
    if !sh.ramp.steps.is_empty() {
        result.ramp = Some(sh.ramp.clone());
    }
    result.finalize()?;
    Ok(result)
}

/// Guest `label`'s timerlat samples when the scenario ran the tracer
/// (`[timerlat]`); a guest that printed none is an error.
pub fn timerlat(
    s: &Scenario,
    console: &str,
    label: &str,
    console_log: &std::path::Path,
) -> Result<Option<input::Timerlat>, RunError> {
    if !s.timerlat.enabled {
        return Ok(None);
    }
    let text = section(console, "timerlat").ok_or_else(|| {
        RunError::Guest(format!(
            "{label}: [timerlat] is on but the guest printed no `timerlat` section ({})",
            console_log.display()
        ))
    })?;
    Ok(Some(input::parse_timerlat(&text, label)?))
}

/// The offset is that of one PING; elsewhere in the phase it is off by up to
/// (|drift| + its uncertainty) x the distance to that PING. That goes into
/// each row's bound, so the bound stated is a bound.
fn add_drift_allowance(
    result: &mut RunResult,
    e: &offset::OffsetEstimate,
    samples: &[offset::PingSample],
    stats: &input::BackendStats,
    label: &str,
) {
    let chosen = samples[e.chosen].t2_host_recv_ns;
    let unc = offset::drift_uncertainty_ppm(samples);
    if let (Some(d), Some(u)) = (e.drift_ppm, unc) {
        let worst = offset::OffsetEstimate {
            drift_ppm: Some(d.abs() + u),
            ..*e
        };
        if let Some(a) = offset::drift_allowance_ns(&worst, chosen, stats.since_ns, stats.now_ns) {
            for ow in result
                .mechanisms
                .iter_mut()
                .filter_map(|r| r.raise_to_hardirq.as_mut())
                .filter(|o| o.method == model::METHOD_PING)
            {
                ow.error_bound_ns = ow.error_bound_ns.saturating_add(a);
            }
            result.meta.notes.push(format!(
                "{label}: one-way raise->hardirq: bound = PING bound {} us + drift allowance \
                 {} us: the offset is that of the PING at host {:.1} s, the measured phase \
                 spans {:.1}..{:.1} s, drift {d:.1} +/- {u:.1} ppm (docs/clock-offset.md)",
                e.error_bound_ns.div_ceil(1000),
                a.div_ceil(1000),
                chosen as f64 / 1e9,
                stats.since_ns as f64 / 1e9,
                stats.now_ns as f64 / 1e9,
            ));
        }
    } else {
        result.meta.notes.push(format!(
            "{label}: one-way raise->hardirq: too few PINGs for a drift figure; the bound \
             covers the offset at the chosen PING only (docs/clock-offset.md)"
        ));
    }
}

/// One result from the per-device ones: the only one, or their merge with
/// every device's notes, the ramp and one host baseline.
pub fn merge(mut per: Vec<RunResult>, sh: &Shared) -> Result<RunResult, RunError> {
    if per.len() == 1 {
        return Ok(per.pop().expect("one"));
    }
    let mut r = aggregate::aggregate(&per)?;
    r.meta.notes = per[0].meta.notes.clone();
    for p in &per[1..] {
        for n in &p.meta.notes {
            if !r.meta.notes.contains(n) {
                r.meta.notes.push(n.clone());
            }
        }
    }
    if r.ramp.is_none() && !sh.ramp.steps.is_empty() {
        r.ramp = Some(sh.ramp.clone());
    }
    for m in &r.mechanisms {
        let some = r
            .per_device
            .iter()
            .any(|d| d.mechanism == m.mechanism && d.raise_to_hardirq.is_some());
        if m.raise_to_hardirq.is_none() && some {
            r.meta.notes.push(format!(
                "one-way raise->hardirq: {}: no merged figure, not measured on every device \
                 (per-device figures above)",
                m.mechanism
            ));
        }
    }
    // One host baseline per run, not one per guest.
    r.baselines.host_eventfd = Some(sh.evfd.clone());
    r.finalize()?;
    Ok(r)
}
