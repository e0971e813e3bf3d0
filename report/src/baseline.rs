//! Host eventfd ping-pong baseline: two threads wake each other through a
//! pair of eventfds. It measures what two thread wake-ups cost on this host
//! right now, the floor any raise -> guest -> ack round trip sits on.
//!
//! Thread A stamps `t_send`, writes eventfd `ping`; thread B wakes from
//! `read(ping)`, stamps `t_recv` (one way = `t_recv - t_send`), writes
//! `pong`; A wakes and stamps `t_back` (round trip = `t_back - t_send`).
//! All stamps are `CLOCK_MONOTONIC` (`std::time::Instant`) of one process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use vmm_sys_util::eventfd::EventFd;

use crate::hist::{new_hdr, Distribution, HistError};
use crate::model::EventfdBaseline;

/// Errors of the baseline measurement.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("eventfd: {0}")]
    Io(#[from] std::io::Error),
    #[error("ping-pong thread panicked")]
    Thread,
    #[error(transparent)]
    Hist(#[from] HistError),
    #[error("round_trips must be at least 1")]
    NoRoundTrips,
}

/// Raw samples of one ping-pong run, ns, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PingPongSamples {
    /// `(t_send, t_recv, t_back)` per round trip, ns since the run's epoch.
    pub stamps: Vec<(u64, u64, u64)>,
}

impl PingPongSamples {
    pub fn one_way(&self) -> impl Iterator<Item = u64> + '_ {
        self.stamps.iter().map(|(s, r, _)| r - s)
    }
    pub fn round_trip(&self) -> impl Iterator<Item = u64> + '_ {
        self.stamps.iter().map(|(s, _, b)| b - s)
    }
}

fn ns_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos().min(u64::MAX as u128) as u64
}

/// Run `round_trips` ping-pongs after `warmup` unrecorded ones and return
/// the raw stamps.
pub fn pingpong_samples(
    round_trips: usize,
    warmup: usize,
) -> Result<PingPongSamples, BaselineError> {
    if round_trips == 0 {
        return Err(BaselineError::NoRoundTrips);
    }
    let ping = EventFd::new(0)?;
    let pong = EventFd::new(0)?;
    let ping_b = ping.try_clone()?;
    let pong_b = pong.try_clone()?;
    let t_recv = Arc::new(AtomicU64::new(0));
    let t_recv_b = Arc::clone(&t_recv);
    let epoch = Instant::now();
    let total = round_trips + warmup;

    let echo = std::thread::Builder::new()
        .name("irqstorm-evfd-pong".into())
        .spawn(move || -> std::io::Result<()> {
            for _ in 0..total {
                ping_b.read()?;
                t_recv_b.store(ns_since(epoch), Ordering::Release);
                pong_b.write(1)?;
            }
            Ok(())
        })?;

    let mut stamps = Vec::with_capacity(round_trips);
    let mut run = || -> std::io::Result<()> {
        for i in 0..total {
            let t_send = ns_since(epoch);
            ping.write(1)?;
            pong.read()?;
            let t_back = ns_since(epoch);
            let t_r = t_recv.load(Ordering::Acquire);
            if i >= warmup {
                // the clock is monotonic; clamp to guard the subtraction
                let t_r = t_r.clamp(t_send, t_back);
                stamps.push((t_send, t_r, t_back));
            }
        }
        Ok(())
    };
    let result = run();
    if result.is_err() {
        // unblock the echo thread so it can be joined
        for _ in 0..total {
            let _ = ping.write(1);
        }
    }
    let joined = echo.join().map_err(|_| BaselineError::Thread)?;
    result?;
    joined?;
    Ok(PingPongSamples { stamps })
}

/// Measure the host eventfd ping-pong baseline: `round_trips` recorded
/// round trips (after 1/10 as many warm-up ones), as HDR distributions.
pub fn host_eventfd_pingpong(round_trips: usize) -> Result<EventfdBaseline, BaselineError> {
    let s = pingpong_samples(round_trips, round_trips / 10)?;
    let mut ow = new_hdr();
    let mut rt = new_hdr();
    for v in s.one_way() {
        ow.record(v)
            .map_err(|e| HistError::Record(format!("{e:?}")))?;
    }
    for v in s.round_trip() {
        rt.record(v)
            .map_err(|e| HistError::Record(format!("{e:?}")))?;
    }
    Ok(EventfdBaseline {
        round_trips: s.stamps.len() as u64,
        one_way: Distribution::from_hdr(&ow),
        round_trip: Distribution::from_hdr(&rt),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingpong_stamps_are_ordered_and_counted() {
        let s = pingpong_samples(200, 20).unwrap();
        assert_eq!(s.stamps.len(), 200);
        let mut prev_back = 0;
        for &(send, recv, back) in &s.stamps {
            assert!(send <= recv && recv <= back, "{send} {recv} {back}");
            assert!(send >= prev_back, "round trips overlap");
            prev_back = back;
        }
    }

    #[test]
    fn baseline_has_n_samples_and_consistent_summaries() {
        let b = host_eventfd_pingpong(100).unwrap();
        assert_eq!(b.round_trips, 100);
        assert_eq!(b.one_way.count(), 100);
        assert_eq!(b.round_trip.count(), 100);
        let (o, r) = (&b.one_way.summary, &b.round_trip.summary);
        assert!(o.min_ns <= o.p50_ns && o.p50_ns <= o.p99_ns && o.p99_ns <= o.max_ns);
        // each one-way leg is part of its round trip
        assert!(o.max_ns <= r.max_ns);
        assert!(matches!(
            host_eventfd_pingpong(0),
            Err(BaselineError::NoRoundTrips)
        ));
    }
}
