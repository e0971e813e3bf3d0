// SPDX-License-Identifier: GPL-2.0

//! Text commands shared by the debugfs control files and the sysfs attributes.

use crate::{
    local,
    mech::Mech,
    shared::Shared,
    sources::WorkKind,
    protocol::*,
};
use core::fmt::{self, Write};
use kernel::{
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

fn num<T: core::str::FromStr>(s: Option<&str>) -> Result<T> {
    s.ok_or(EINVAL)?.parse::<T>().map_err(|_| EINVAL)
}

fn num_or<T: core::str::FromStr>(s: Option<&str>, d: T) -> Result<T> {
    match s {
        None => Ok(d),
        Some(v) => v.parse::<T>().map_err(|_| EINVAL),
    }
}

/// "SRC" or "all" -> source index or `SOURCE_ALL`.
fn source(s: &Shared, w: Option<&str>) -> Result<u16> {
    match w {
        Some("all") => Ok(SOURCE_ALL),
        w => {
            let v: u16 = num(w)?;
            if v >= s.info.num_sources {
                return Err(EINVAL);
            }
            Ok(v)
        }
    }
}

/// Applies `f` to source `src`, or to every source for `SOURCE_ALL` (stopping at the first
/// error).
fn each_source(s: &Shared, src: u16, f: impl Fn(usize) -> Result) -> Result {
    if src == SOURCE_ALL {
        (0..s.info.num_sources as usize).try_for_each(f)
    } else {
        f(src as usize)
    }
}

/// `sources` / sysfs `mechanism`: "SRC|all MECH".
pub(crate) fn set_mechanism(s: &Shared, cmd: &str) -> Result {
    let mut w = cmd.split_whitespace();
    let src = source(s, w.next())?;
    let m = Mech::parse(w.next().ok_or(EINVAL)?).ok_or(EINVAL)?;
    each_source(s, src, |i| s.set_mech(i, m))
}

/// sysfs `work`: "SRC|all none|busy US|sleep US|msleep US|usleep US|timeout US".
pub(crate) fn set_work(s: &Shared, cmd: &str) -> Result {
    let mut w = cmd.split_whitespace();
    let src = source(s, w.next())?;
    let kind = WorkKind::parse(w.next().ok_or(EINVAL)?).ok_or(EINVAL)?;
    let us: u32 = num_or(w.next(), 0)?;
    each_source(s, src, |i| s.set_work(i, kind, us))
}

pub(crate) fn show_sources(s: &Shared, f: &mut dyn Write) -> fmt::Result {
    writeln!(f, "# source mechanism work us delay_us")?;
    for i in 0..s.info.num_sources as usize {
        let (w, us) = s.work_of(i);
        writeln!(f, "{} {} {} {} {}", i, s.mech_of(i as u16).name(), w.name(), us, s.delay_of(i as u16))?;
    }
    Ok(())
}

/// `sources`: "SRC|all delay US" (the requested delay of delay mechanisms' runs).
fn set_delay(s: &Shared, src: &str, us: Option<&str>) -> Result {
    let src = source(s, Some(src))?;
    let Some(us) = us.and_then(|v| v.parse::<u32>().ok()) else {
        // Missing or not a number: refused like any other bad delay, and counted.
        s.cnt.delay_refused.add(1, Relaxed);
        return Err(EINVAL);
    };
    each_source(s, src, |i| s.set_delay(i, us))
}

/// Writes to `sources`: "SRC|all MECH", "SRC|all work none|busy US|sleep US" or
/// "SRC|all delay US".
pub(crate) fn sources_cmd(s: &Shared, cmd: &str) -> Result {
    let mut w = cmd.split_whitespace();
    let first = w.next().ok_or(EINVAL)?;
    match w.next() {
        Some("work") => {
            let rest: KVec<&str> = {
                let mut v = KVec::new();
                v.push(first, GFP_KERNEL)?;
                for x in w {
                    v.push(x, GFP_KERNEL)?;
                }
                v
            };
            let mut line = KVec::<u8>::new();
            for (i, x) in rest.iter().enumerate() {
                if i > 0 {
                    line.push(b' ', GFP_KERNEL)?;
                }
                line.extend_from_slice(x.as_bytes(), GFP_KERNEL)?;
            }
            set_work(s, core::str::from_utf8(&line).map_err(|_| EINVAL)?)
        }
        Some("delay") => {
            let us = w.next();
            if w.next().is_some() {
                return Err(EINVAL);
            }
            set_delay(s, first, us)
        }
        _ => set_mechanism(s, cmd),
    }
}

pub(crate) fn configure_start(s: &Shared, src: u16, p: &Program) -> Result<u64> {
    s.ctrl(&p.to_request(src))?;
    let r = s.ctrl(&CtrlRequest::new(OP_START, src, 0))?;
    Ok(r.word(16))
}

/// The leading word of `timer` and `storm`: "stop SRC|all" is carried out
/// here (`None`); otherwise the one source the rest of the command programs.
fn stop_or_source(s: &Shared, w: &mut core::str::SplitWhitespace<'_>) -> Result<Option<u16>> {
    let a = w.next().ok_or(EINVAL)?;
    if a == "stop" {
        let src = source(s, w.next())?;
        s.ctrl(&CtrlRequest::new(OP_STOP, src, 0))?;
        return Ok(None);
    }
    let src = source(s, Some(a))?;
    if src == SOURCE_ALL {
        return Err(EINVAL);
    }
    Ok(Some(src))
}

/// `timer`: "SRC oneshot DELAY_NS" | "SRC periodic PERIOD_NS [COUNT]" | "stop SRC|all".
pub(crate) fn timer_cmd(s: &Shared, cmd: &str) -> Result {
    let mut w = cmd.split_whitespace();
    let Some(src) = stop_or_source(s, &mut w)? else {
        return Ok(());
    };
    let mut p = Program::default();
    match w.next().ok_or(EINVAL)? {
        "oneshot" => {
            p.mode = MODE_ONESHOT;
            p.period_ns = num(w.next())?;
            p.count = 1;
        }
        "periodic" => {
            p.mode = MODE_PERIODIC;
            p.period_ns = num(w.next())?;
            p.count = num_or(w.next(), 0)?;
        }
        _ => return Err(EINVAL),
    }
    configure_start(s, src, &p).map(|_| ())
}

/// `storm`: "SRC RATE_HZ [BURST [DURATION_MS [COUNT [exp]]]]" | "stop SRC|all".
pub(crate) fn storm_cmd(s: &Shared, cmd: &str) -> Result {
    let mut w = cmd.split_whitespace();
    let Some(src) = stop_or_source(s, &mut w)? else {
        return Ok(());
    };
    let mut p = Program { mode: MODE_STORM, ..Default::default() };
    p.rate_hz = num(w.next())?;
    p.burst = num_or(w.next(), 1)?;
    p.duration_ns = num_or::<u64>(w.next(), 0)? * 1_000_000;
    p.count = num_or(w.next(), 0)?;
    if w.next() == Some("exp") {
        p.jitter = 2;
    }
    configure_start(s, src, &p).map(|_| ())
}

/// `ctrl`: "ping" | "info" | "stats SRC|all [reset]" | "start SRC|all" | "stop SRC|all" |
/// "calibrate [US]" (EIO if the device's result is not ok; `cat ctrl` shows it).
pub(crate) fn ctrl_cmd(s: &Shared, cmd: &str) -> Result {
    let mut w = cmd.split_whitespace();
    match w.next().ok_or(EINVAL)? {
        "ping" => {
            let mut r = CtrlRequest::new(OP_PING, 0, 0);
            r.words[1] = crate::kwrap::clock::now_ns();
            s.ctrl(&r)?;
        }
        "info" => {
            s.ctrl(&CtrlRequest::new(OP_GET_INFO, 0, 0))?;
        }
        "stats" => {
            let src = source(s, w.next())?;
            let flags = if w.next() == Some("reset") { 1 } else { 0 };
            s.ctrl(&CtrlRequest::new(OP_STATS, src, flags))?;
        }
        "start" => {
            let src = source(s, w.next())?;
            s.ctrl(&CtrlRequest::new(OP_START, src, 0))?;
        }
        "stop" => {
            let src = source(s, w.next())?;
            s.ctrl(&CtrlRequest::new(OP_STOP, src, 0))?;
        }
        "calibrate" => {
            let us = num_or(w.next(), crate::calibrate::DEFAULT_US)?;
            if s.calibrate(us)?.result != CAL_OK {
                return Err(EIO);
            }
        }
        _ => return Err(EINVAL),
    }
    Ok(())
}

pub(crate) fn show_ctrl(s: &Shared, f: &mut dyn Write) -> fmt::Result {
    let r = *s.control.last.lock();
    writeln!(f, "opcode {}", r.opcode())?;
    writeln!(f, "status {} {}", r.status(), status_name(r.status()))?;
    writeln!(f, "host_ns {}", r.word(8))?;
    match r.opcode() {
        OP_GET_INFO => {
            let w2 = r.word(16);
            writeln!(f, "num_sources {}", w2 as u16)?;
            writeln!(f, "spec_version {}", (w2 >> 16) as u16)?;
            writeln!(f, "max_rate_hz {}", (w2 >> 32) as u32)?;
            let w3 = r.word(24);
            writeln!(f, "max_outstanding {}", w3 as u32)?;
            writeln!(f, "min_period_ns {}", (w3 >> 32) as u32)?;
            let w4 = r.word(32);
            writeln!(f, "max_burst {}", w4 as u32)?;
            writeln!(f, "features_lo {:#x}", (w4 >> 32) as u32)?;
        }
        OP_STATS => {
            for (n, off) in [("raised", 16), ("records", 24), ("coalesced", 32), ("pending", 40), ("acked", 48), ("malformed", 56)] {
                writeln!(f, "{} {}", n, r.word(off))?;
            }
        }
        OP_START => writeln!(f, "t0 {}", r.word(16))?,
        OP_STOP => writeln!(f, "raised {}", r.word(16))?,
        OP_PING => {
            writeln!(f, "guest_ns {}", r.word(16))?;
            writeln!(f, "host_send_ns {}", r.word(24))?;
            writeln!(f, "guest_recv_ns {}", r.recv_ns)?;
        }
        OP_CALIBRATE => {
            let c = CalibrateReply::decode(&r);
            writeln!(f, "lower {}", c.lower)?;
            writeln!(f, "upper {}", c.upper)?;
            writeln!(f, "host_tsc_mid {}", c.host_tsc_mid)?;
            writeln!(f, "host_samples {}", c.host_samples)?;
            writeln!(f, "guest_samples {}", c.guest_samples)?;
            writeln!(f, "tsc_khz {}", c.tsc_khz)?;
            writeln!(f, "result {}", cal_result_name(c.result))?;
            writeln!(f, "offset {}", c.offset())?;
            writeln!(f, "bound_ticks {}", c.bound_ticks())?;
        }
        _ => {}
    }
    Ok(())
}

/// `reset`: "stats" (guest statistics), "device" (device STATS with reset), "all".
pub(crate) fn reset_cmd(s: &Shared, cmd: &str) -> Result {
    let c = cmd.trim();
    if c == "stats" || c == "all" || c == "1" {
        s.stats.lock().reset();
        s.cnt.reset();
    }
    if c == "device" || c == "all" {
        s.ctrl(&CtrlRequest::new(OP_STATS, SOURCE_ALL, 1))?;
    }
    Ok(())
}

/// `local`: "start PERIOD_US [MASK]" | "stop".
pub(crate) fn local_cmd(s: &Arc<Shared>, cmd: &str) -> Result {
    let mut w = cmd.split_whitespace();
    match w.next().ok_or(EINVAL)? {
        "start" => {
            let p: u32 = num(w.next())?;
            let mask = match w.next() {
                Some(m) => Some(u32::from_str_radix(m.trim_start_matches("0x"), 16).map_err(|_| EINVAL)?),
                None => None,
            };
            local::start(s, p, mask)
        }
        "stop" => {
            local::stop(s);
            Ok(())
        }
        _ => Err(EINVAL),
    }
}

pub(crate) fn show_counters(s: &Shared, f: &mut dyn Write) -> fmt::Result {
    let c = &s.cnt;
    for (n, v) in [
        ("irqs", &c.irqs),
        ("records", &c.records),
        ("raises", &c.raises),
        ("latched", &c.latched),
        ("finals", &c.finals),
        ("bad_id", &c.bad_id),
        ("bad_len", &c.bad_len),
        ("bad_source", &c.bad_source),
        ("bad_count", &c.bad_count),
        ("seq_gap", &c.seq_gap),
        ("budget_exhausted", &c.budget_exhausted),
        ("past_budget", &c.past_budget),
        ("fifo_overflow", &c.fifo_overflow),
        ("acks_posted", &c.acks_posted),
        ("ack_bufs", &c.ack_bufs),
        ("acks_dropped", &c.acks_dropped),
        ("ack_bad_id", &c.ack_bad_id),
        ("ctrl_requests", &c.ctrl_requests),
        ("ctrl_errors", &c.ctrl_errors),
        ("ctrl_timeouts", &c.ctrl_timeouts),
        ("local_events", &c.local_events),
        ("local_skipped", &c.local_skipped),
        ("sleep_refused", &c.sleep_refused),
        ("delay_refused", &c.delay_refused),
        ("delay_early", &c.delay_early),
        ("cancelled", &c.cancelled),
        ("ran_after_cancel", &c.ran_after_cancel),
        ("cancels", &c.cancels),
        ("flushes", &c.flushes),
        ("cancel_refused", &c.cancel_refused),
        ("uevents", &c.uevents),
        ("helper_runs", &c.helper_runs),
        ("helper_errors", &c.helper_errors),
        ("calibrations", &c.calibrations),
        ("calibration_errors", &c.calibration_errors),
        ("wq_requeue", &c.wq_requeue),
        ("wq_all_busy", &c.wq_all_busy),
        ("work_refused", &c.work_refused),
        ("user_reads", &c.user_reads),
        ("user_acks", &c.user_acks),
        ("user_bad_acks", &c.user_bad_acks),
        ("user_unacked", &c.user_unacked),
        ("user_refused", &c.user_refused),
    ] {
        writeln!(f, "{} {}", n, v.load(Relaxed))?;
    }
    let bad = c.bad_id.load(Relaxed)
        + c.bad_len.load(Relaxed)
        + c.bad_source.load(Relaxed)
        + c.bad_count.load(Relaxed)
        + c.seq_gap.load(Relaxed);
    writeln!(f, "bad_total {}", bad)?;
    Ok(())
}
