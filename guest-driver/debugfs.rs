// SPDX-License-Identifier: GPL-2.0

//! debugfs tree `/sys/kernel/debug/irqstorm/`: statistics, rtla-style histograms and control
//! files (program device timers, request storms, reference source, reset).

use crate::{
    control,
    bh, local,
    mech::Mech,
    shared::Shared,
    stats::{write_hist, write_summary, Origin},
};
use core::fmt;
use kernel::{
    debugfs::{Dir, File},
    prelude::*,
    str::CString,
    sync::{
        atomic::{Atomic, Full, Relaxed, Release},
        Arc,
    },
    uaccess::UserSliceReader,
};

/// Set while some bound device owns the plain `irqstorm` directory name.
static PRIMARY: Atomic<bool> = Atomic::new(false);

/// The directory and its files; removed on drop. The first bound device gets
/// `/sys/kernel/debug/irqstorm/`, further ones `irqstorm-<pci name>/`.
pub(crate) struct DebugFs {
    files: KVec<Pin<KBox<File<Arc<Shared>>>>>,
    dir: Option<Dir>,
    primary: bool,
}

impl Drop for DebugFs {
    fn drop(&mut self) {
        // Remove the files and the directory before giving the name back.
        self.files.clear();
        drop(self.dir.take());
        if self.primary {
            PRIMARY.store(false, Release);
        }
    }
}

fn read_cmd(r: &mut UserSliceReader, buf: &mut [u8; 256]) -> Result<usize> {
    let n = r.len();
    if n == 0 || n > buf.len() {
        return Err(EINVAL);
    }
    r.read_slice(&mut buf[..n])?;
    Ok(n)
}

macro_rules! writer {
    ($name:ident, $f:path) => {
        fn $name(s: &Arc<Shared>, r: &mut UserSliceReader) -> Result {
            let mut buf = [0u8; 256];
            let n = read_cmd(r, &mut buf)?;
            let cmd = core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?;
            $f(s, cmd.trim())
        }
    };
}

writer!(w_sources, control::sources_cmd);
writer!(w_timer, control::timer_cmd);
writer!(w_storm, control::storm_cmd);
writer!(w_ctrl, control::ctrl_cmd);
writer!(w_reset, control::reset_cmd);
writer!(w_local, control::local_cmd);

fn w_threshold(s: &Arc<Shared>, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 256];
    let n = read_cmd(r, &mut buf)?;
    let v: u64 = core::str::from_utf8(&buf[..n])
        .map_err(|_| EINVAL)?
        .trim()
        .parse()
        .map_err(|_| EINVAL)?;
    s.storm.threshold.store(v, Relaxed);
    Ok(())
}

fn w_helper(s: &Arc<Shared>, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 256];
    let n = read_cmd(r, &mut buf)?;
    let p = core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?.trim();
    if p.bytes().any(|b| b == 0) || (!p.is_empty() && !p.starts_with('/')) {
        return Err(EINVAL);
    }
    let mut h = s.storm.helper.lock();
    h.clear();
    h.extend_from_slice(p.as_bytes(), GFP_KERNEL)?;
    Ok(())
}

fn r_stats(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let i = &s.info;
    writeln!(f, "num_sources {}", i.num_sources)?;
    writeln!(f, "max_rate_hz {}", i.max_rate_hz)?;
    writeln!(f, "max_outstanding {}", i.max_outstanding)?;
    writeln!(f, "min_period_ns {}", i.min_period_ns)?;
    writeln!(f, "max_burst {}", i.max_burst)?;
    writeln!(f, "features {:#x}", i.features)?;
    control::show_counters(s, f)?;
    {
        let e = s.evq.lock();
        writeln!(f, "eventq size {} in_flight {} pending {} kicks {} kicks_suppressed {} bad_ids {} bad_idx {}",
            e.vq.size, e.vq.in_flight(), e.vq.pending(), e.vq.kicks, e.vq.kicks_suppressed, e.vq.bad_ids, e.vq.bad_idx)?;
    }
    {
        let a = s.ackq.lock();
        writeln!(f, "ackq size {} in_flight {} kicks {} kicks_suppressed {} bad_ids {}",
            a.vq.size, a.vq.in_flight(), a.vq.kicks, a.vq.kicks_suppressed, a.vq.bad_ids)?;
    }
    {
        let c = s.control.q.lock();
        writeln!(f, "controlq size {} kicks {}", c.vq.size, c.vq.kicks)?;
    }
    writeln!(f, "storm rate {} peak {} threshold {} in_storm {} storms {}",
        s.storm.rate.load(Relaxed), s.storm.peak.load(Relaxed), s.storm.threshold.load(Relaxed),
        u8::from(s.storm.in_storm.load(Relaxed)), s.storm.storms.load(Relaxed))?;
    write!(f, "fifo")?;
    for m in Mech::ALL {
        write!(f, " {}", bh::fifo_len(s, m))?;
    }
    writeln!(f)?;
    writeln!(f, "local_running {}", u8::from(local::running(s)))?;
    writeln!(f, "\n# device events (latency = hardirq -> bottom-half start, ns)")?;
    let st = s.stats_snapshot().map_err(|_| fmt::Error)?;
    write_summary(&st, Origin::Device, f)?;
    writeln!(f, "\n# local reference source")?;
    write_summary(&st, Origin::Local, f)?;
    Ok(())
}

fn r_hist(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write_hist(&s.stats_snapshot().map_err(|_| fmt::Error)?, Origin::Device, false, f)
}
fn r_hist_local(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write_hist(&s.stats_snapshot().map_err(|_| fmt::Error)?, Origin::Local, false, f)
}
fn r_hist_work(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write_hist(&s.stats_snapshot().map_err(|_| fmt::Error)?, Origin::Device, true, f)
}
fn r_sources(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    control::show_sources(s, f)
}
fn r_ctrl(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    control::show_ctrl(s, f)
}
fn r_counters(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    control::show_counters(s, f)
}
fn r_threshold(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", s.storm.threshold.load(Relaxed))
}
fn r_helper(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let h = s.storm.helper.lock();
    writeln!(f, "{}", core::str::from_utf8(&h).unwrap_or("?"))
}
fn r_local(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "running {} mask {:#x} events {}", u8::from(local::running(s)),
        s.local.mask.load(Relaxed), s.cnt.local_events.load(Relaxed))
}
fn w_events(s: &Arc<Shared>, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 256];
    let n = read_cmd(r, &mut buf)?;
    match core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?.trim() {
        "clear" => {
            s.events.clear();
            Ok(())
        }
        _ => Err(EINVAL),
    }
}
fn r_events(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    s.events.show(f)
}
fn w_events_enable(s: &Arc<Shared>, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 256];
    let n = read_cmd(r, &mut buf)?;
    match core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?.trim() {
        "1" => s.events.set_enabled(true),
        "0" => s.events.set_enabled(false),
        _ => Err(EINVAL),
    }
}
fn r_events_enable(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", u8::from(s.events.enabled()))
}
/// `name kind may_sleep` per mechanism, by id (checked against the host's table by 10-mechanisms).
fn r_mechanisms(_s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for m in Mech::ALL {
        writeln!(f, "{} {} {}", m.name(), m.kind(), u8::from(m.can_sleep()))?;
    }
    Ok(())
}
/// `bh`: "cancel MECH", "reopen MECH", "flush MECH" (bh/cancel.rs). EINVAL for a mechanism
/// without that kernel call or a malformed command (counted `cancel_refused`).
fn w_bh(s: &Arc<Shared>, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 256];
    let n = read_cmd(r, &mut buf)?;
    let line = core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?;
    let mut w = line.split_whitespace();
    let (cmd, m) = match (w.next(), w.next().and_then(Mech::parse), w.next()) {
        (Some(c), Some(m), None) => (c, m),
        _ => {
            s.cnt.cancel_refused.add(1, Relaxed);
            return Err(EINVAL);
        }
    };
    match cmd {
        "cancel" => bh::cancel::cancel(s, m).map(|_| ()),
        "reopen" => {
            bh::cancel::reopen(s, m);
            Ok(())
        }
        "flush" => bh::cancel::flush(s, m).map(|_| ()),
        _ => {
            s.cnt.cancel_refused.add(1, Relaxed);
            Err(EINVAL)
        }
    }
}
fn r_bh(s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "closed")?;
    for m in Mech::ALL.into_iter().filter(|m| bh::cancel::is_closed(s, *m)) {
        write!(f, " {}", m.name())?;
    }
    writeln!(f)?;
    for m in Mech::ALL {
        writeln!(f, "queued {} {}", m.name(), bh::fifo_len(s, m))?;
    }
    // Records being processed now and the most at once since load (head-of-line blocking).
    for m in Mech::ALL {
        let i = m as usize;
        writeln!(f, "running {} {} max {}", m.name(), s.bh.running[i].load(Relaxed), s.bh.max_running[i].load(Relaxed))?;
    }
    for m in Mech::ALL.into_iter().filter(|m| m.pooled()) {
        let (items, busy) = bh::work_pool::occupancy(s, m);
        writeln!(f, "work_items {} {} busy {}", m.name(), items, busy)?;
    }
    Ok(())
}
/// The kernel's timer facts the delay mechanisms depend on (run conditions).
fn r_timing(_s: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "hz {}", crate::kwrap::clock::hz())?;
    writeln!(f, "msleep ceil(d/1000) ms (a jiffy timer: at least one jiffy more)")?;
    writeln!(f, "usleep_range d..d+d/4+1 us (hrtimer with that slack)")
}
fn r_none(_s: &Arc<Shared>, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
    Ok(())
}

impl DebugFs {
    pub(crate) fn new(s: &Arc<Shared>) -> Result<Self> {
        let primary = PRIMARY.cmpxchg(false, true, Full).is_ok();
        let dir = if primary {
            Dir::new(c"irqstorm")
        } else {
            let dev: &kernel::device::Device = s.pdev.as_ref();
            let name = CString::try_from_fmt(fmt!("irqstorm-{}", dev.name()))?;
            Dir::new(&name)
        };
        // From here on, an early return drops `this`, which releases the name.
        let mut this = Self { files: KVec::new(), dir: Some(dir), primary };
        let Some(dir) = this.dir.as_ref() else { return Err(EINVAL) };
        let mut files = KVec::new();
        macro_rules! ro {
            ($n:expr, $f:ident) => {
                files.push(KBox::pin_init(dir.read_callback_file($n, s.clone(), &$f), GFP_KERNEL)?, GFP_KERNEL)?;
            };
        }
        macro_rules! rw {
            ($n:expr, $f:ident, $w:ident) => {
                files.push(
                    KBox::pin_init(dir.read_write_callback_file($n, s.clone(), &$f, &$w), GFP_KERNEL)?,
                    GFP_KERNEL,
                )?;
            };
        }
        ro!(c"stats", r_stats);
        ro!(c"counters", r_counters);
        ro!(c"hist", r_hist);
        ro!(c"hist_local", r_hist_local);
        ro!(c"hist_work", r_hist_work);
        ro!(c"mechanisms", r_mechanisms);
        ro!(c"timing", r_timing);
        rw!(c"bh", r_bh, w_bh);
        rw!(c"sources", r_sources, w_sources);
        rw!(c"timer", r_none, w_timer);
        rw!(c"storm", r_none, w_storm);
        rw!(c"ctrl", r_ctrl, w_ctrl);
        rw!(c"reset", r_none, w_reset);
        rw!(c"local", r_local, w_local);
        rw!(c"storm_threshold", r_threshold, w_threshold);
        rw!(c"storm_helper", r_helper, w_helper);
        rw!(c"events", r_events, w_events);
        rw!(c"events_enable", r_events_enable, w_events_enable);
        this.files = files;
        Ok(this)
    }
}
