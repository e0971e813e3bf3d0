// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Source programs and their due-time sequences (docs/device-spec.md §5.1).
//!
//! A program is validated once (CONFIGURE) and turned into a [`Schedule`] at
//! START. A schedule yields absolute CLOCK_MONOTONIC due times one event at a
//! time, so a storm of any rate needs no timer per event: the generator asks
//! for the next due time, sleeps (or spins) until then, and takes every event
//! whose due time has passed.

use crate::protocol::{ConfigureBody, Jitter, Mode, Status};

/// The PRNG seed used when a program gives seed 0.
pub const DEFAULT_SEED: u64 = 0x1a2b_3c4d_5e6f_7081;
/// Longest ONESHOT delay, PERIODIC period and START delay accepted (1 hour).
pub const MAX_DELAY_NS: u64 = 3_600_000_000_000;
/// Largest `moderation_events`.
pub const MAX_MODERATION_EVENTS: u32 = 1024;
/// Largest `moderation_delay_us`.
pub const MAX_MODERATION_DELAY_US: u32 = 1_000_000;
/// Delay bound used when `moderation_events > 1` and `moderation_delay_us == 0`.
pub const DEFAULT_MODERATION_DELAY_US: u32 = 1_000;

const NS_PER_S: u128 = 1_000_000_000;

/// Device limits (the values published in the configuration space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Number of sources.
    pub num_sources: u16,
    /// Cap on the sum of running sources' rates (events/s).
    pub max_rate_hz: u32,
    /// Unacked-record table size.
    pub max_outstanding: u32,
    /// Smallest period / inter-burst gap.
    pub min_period_ns: u32,
    /// Largest burst.
    pub max_burst: u32,
}

/// SplitMix64: a small, well-mixed PRNG that replays from its seed.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    /// Seeds the generator (0 selects [`DEFAULT_SEED`]).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { DEFAULT_SEED } else { seed })
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in `[0, n]`.
    pub fn upto(&mut self, n: u64) -> u64 {
        if n == u64::MAX {
            return self.next_u64();
        }
        self.next_u64() % (n + 1)
    }
}

/// A validated program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    /// Mode.
    pub mode: Mode,
    /// Jitter distribution.
    pub jitter: Jitter,
    /// Events per due time (>= 1).
    pub burst: u32,
    /// STORM rate.
    pub rate_hz: u32,
    /// ONESHOT delay / PERIODIC period.
    pub period_ns: u64,
    /// Event limit (0 = none).
    pub count: u64,
    /// Time limit (0 = none).
    pub duration_ns: u64,
    /// UNIFORM bound.
    pub jitter_ns: u64,
    /// Records per notification (0/1 = every record).
    pub moderation_events: u32,
    /// Notification delay bound in us.
    pub moderation_delay_us: u32,
    /// Seed.
    pub seed: u64,
}

impl Default for Program {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            jitter: Jitter::None,
            burst: 1,
            rate_hz: 0,
            period_ns: 0,
            count: 0,
            duration_ns: 0,
            jitter_ns: 0,
            moderation_events: 0,
            moderation_delay_us: 0,
            seed: 0,
        }
    }
}

impl Program {
    /// Validates a CONFIGURE body against the limits (§6.1.2).
    ///
    /// `moderation_ok` tells whether `IRQSTORM_F_MODERATION` may be used.
    pub fn validate(b: &ConfigureBody, lim: &Limits, moderation_ok: bool) -> Result<Self, Status> {
        let mode = Mode::from_u8(b.mode).ok_or(Status::Invalid)?;
        let jitter = Jitter::from_u8(b.jitter).ok_or(Status::Invalid)?;
        if b.moderation_events > MAX_MODERATION_EVENTS
            || b.moderation_delay_us > MAX_MODERATION_DELAY_US
        {
            return Err(Status::OutOfRange);
        }
        if (b.moderation_events > 1 || b.moderation_delay_us > 0) && !moderation_ok {
            return Err(Status::Unsupported);
        }
        let mut p = Program {
            mode,
            jitter,
            burst: 1,
            rate_hz: 0,
            period_ns: b.period_ns,
            count: b.count,
            duration_ns: b.duration_ns,
            jitter_ns: b.jitter_ns,
            moderation_events: b.moderation_events,
            moderation_delay_us: b.moderation_delay_us,
            seed: b.seed,
        };
        match mode {
            Mode::Off => return Ok(Program::default()),
            Mode::Oneshot => {
                if b.burst > 1 || b.period_ns > MAX_DELAY_NS {
                    return Err(Status::OutOfRange);
                }
                if jitter != Jitter::None || b.rate_hz != 0 || b.jitter_ns != 0 {
                    return Err(Status::Invalid);
                }
            }
            Mode::Periodic => {
                if b.burst > 1
                    || b.period_ns < u64::from(lim.min_period_ns)
                    || b.period_ns > MAX_DELAY_NS
                {
                    return Err(Status::OutOfRange);
                }
                if b.rate_hz != 0 {
                    return Err(Status::Invalid);
                }
            }
            Mode::Storm => {
                if b.burst == 0
                    || u32::from(b.burst) > lim.max_burst
                    || b.rate_hz == 0
                    || b.rate_hz > lim.max_rate_hz
                {
                    return Err(Status::OutOfRange);
                }
                if b.period_ns != 0 {
                    return Err(Status::Invalid);
                }
                p.burst = u32::from(b.burst);
                p.rate_hz = b.rate_hz;
                p.period_ns = 0;
                if p.gap_ns() < u64::from(lim.min_period_ns) {
                    return Err(Status::OutOfRange);
                }
            }
        }
        if jitter == Jitter::Uniform && b.jitter_ns >= p.gap_ns() {
            return Err(Status::OutOfRange);
        }
        if jitter != Jitter::Uniform && b.jitter_ns != 0 {
            return Err(Status::Invalid);
        }
        Ok(p)
    }

    /// Nominal gap between due times in ns (period, or burst/rate).
    pub fn gap_ns(&self) -> u64 {
        match self.mode {
            Mode::Storm if self.rate_hz > 0 => {
                let g = u128::from(self.burst) * NS_PER_S / u128::from(self.rate_hz);
                u64::try_from(g).unwrap_or(u64::MAX)
            }
            _ => self.period_ns,
        }
    }

    /// Long-run event rate (events/s) for the max-rate check; 0 for ONESHOT.
    pub fn rate(&self) -> u64 {
        match self.mode {
            Mode::Off | Mode::Oneshot => 0,
            Mode::Periodic => 1_000_000_000u64.div_ceil(self.period_ns.max(1)),
            Mode::Storm => u64::from(self.rate_hz),
        }
    }

    /// Whether moderation changes anything for this program.
    pub fn moderated(&self) -> bool {
        self.moderation_events > 1
    }

    /// Effective moderation delay in ns.
    pub fn moderation_delay_ns(&self) -> u64 {
        let us = if self.moderation_delay_us == 0 {
            DEFAULT_MODERATION_DELAY_US
        } else {
            self.moderation_delay_us
        };
        u64::from(us) * 1000
    }
}

/// A running program: its due-time sequence.
#[derive(Debug, Clone)]
pub struct Schedule {
    prog: Program,
    t0: u64,
    end_ns: Option<u64>,
    /// Index of the current grid point (k >= 1).
    k: u64,
    /// Due time of the current grid point, `None` once the program ended.
    due: Option<u64>,
    /// Events left at the current due time.
    burst_left: u32,
    taken: u64,
    rng: Prng,
}

impl Schedule {
    /// Starts `prog` at `t0` (absolute host ns).
    pub fn new(prog: Program, t0: u64) -> Self {
        let end_ns = (prog.duration_ns > 0).then(|| t0.saturating_add(prog.duration_ns));
        let mut s = Self {
            prog,
            t0,
            end_ns,
            k: 0,
            due: Some(t0),
            burst_left: 0,
            taken: 0,
            rng: Prng::new(prog.seed),
        };
        if prog.mode == Mode::Off {
            s.due = None;
        } else {
            s.advance();
        }
        s
    }

    /// Program start time.
    pub fn t0(&self) -> u64 {
        self.t0
    }

    /// The program being run.
    pub fn program(&self) -> &Program {
        &self.prog
    }

    fn grid(&self, k: u64) -> u64 {
        let off: u128 = match self.prog.mode {
            Mode::Storm => {
                u128::from(k) * u128::from(self.prog.burst) * NS_PER_S
                    / u128::from(self.prog.rate_hz.max(1))
            }
            _ => u128::from(k) * u128::from(self.prog.period_ns),
        };
        u64::try_from(u128::from(self.t0) + off).unwrap_or(u64::MAX)
    }

    /// Moves to the next grid point (or ends the program).
    fn advance(&mut self) {
        let Some(prev) = self.due else { return };
        if self.prog.mode == Mode::Oneshot && self.k >= 1 {
            self.due = None;
            return;
        }
        self.k += 1;
        let next = match self.prog.jitter {
            Jitter::None => self.grid(self.k),
            Jitter::Uniform => {
                let j = self.prog.jitter_ns;
                let g = self.grid(self.k);
                let off = self.rng.upto(j.saturating_mul(2));
                // Never earlier than the previous due time (keeps the sequence ordered).
                g.saturating_sub(j).saturating_add(off).max(prev)
            }
            Jitter::Exponential => {
                let mean = self.prog.gap_ns() as f64;
                let gap = -self.rng.unit().ln() * mean;
                let gap = if gap.is_finite() && gap < 1e18 {
                    gap as u64
                } else {
                    u64::MAX / 4
                };
                prev.saturating_add(gap)
            }
        };
        if self.end_ns.is_some_and(|e| next > e) {
            self.due = None;
            return;
        }
        self.due = Some(next);
        self.burst_left = self.prog.burst.max(1);
    }

    /// Due time of the next event, `None` once the program ended.
    pub fn next_due(&self) -> Option<u64> {
        if self.prog.count > 0 && self.taken >= self.prog.count {
            return None;
        }
        self.due
    }

    /// Takes the next event: its due time and whether it is the program's last.
    pub fn take(&mut self) -> Option<(u64, bool)> {
        let due = self.next_due()?;
        self.taken += 1;
        self.burst_left = self.burst_left.saturating_sub(1);
        if self.burst_left == 0 {
            self.advance();
        }
        Some((due, self.next_due().is_none()))
    }

    /// Events taken so far.
    pub fn taken(&self) -> u64 {
        self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        num_sources: 8,
        max_rate_hz: 500_000,
        max_outstanding: 1024,
        min_period_ns: 2_000,
        max_burst: 1024,
    };

    fn storm(rate: u32, burst: u16) -> ConfigureBody {
        ConfigureBody {
            mode: Mode::Storm as u8,
            burst,
            rate_hz: rate,
            ..Default::default()
        }
    }

    #[test]
    fn validate_ranges() {
        let ok = Program::validate(&storm(100_000, 4), &LIM, false).unwrap();
        assert_eq!(ok.gap_ns(), 40_000);
        assert_eq!(
            Program::validate(&storm(600_000, 4), &LIM, false),
            Err(Status::OutOfRange)
        );
        assert_eq!(
            Program::validate(&storm(100_000, 0), &LIM, false),
            Err(Status::OutOfRange)
        );
        assert_eq!(
            Program::validate(&storm(100_000, 2000), &LIM, false),
            Err(Status::OutOfRange)
        );
        // gap 1 us < min_period 2 us
        assert_eq!(
            Program::validate(&storm(500_000, 0x1), &LIM, false),
            Ok(Program::validate(&storm(500_000, 1), &LIM, false).unwrap())
        );
        let mut b = storm(400_000, 1);
        b.jitter = 1;
        b.jitter_ns = 2_500;
        assert_eq!(Program::validate(&b, &LIM, false), Err(Status::OutOfRange));
        b.jitter_ns = 2_000;
        assert!(Program::validate(&b, &LIM, false).is_ok());
        b.mode = 9;
        assert_eq!(Program::validate(&b, &LIM, false), Err(Status::Invalid));
        let mut b = storm(1000, 1);
        b.jitter = 3;
        assert_eq!(Program::validate(&b, &LIM, false), Err(Status::Invalid));
        let mut b = storm(1000, 1);
        b.moderation_events = 8;
        assert_eq!(Program::validate(&b, &LIM, false), Err(Status::Unsupported));
        assert!(Program::validate(&b, &LIM, true).is_ok());
        b.moderation_events = 2000;
        assert_eq!(Program::validate(&b, &LIM, true), Err(Status::OutOfRange));
        let per = ConfigureBody {
            mode: Mode::Periodic as u8,
            period_ns: 1_000,
            ..Default::default()
        };
        assert_eq!(
            Program::validate(&per, &LIM, false),
            Err(Status::OutOfRange)
        );
        let per = ConfigureBody {
            period_ns: 1_000_000,
            ..per
        };
        assert_eq!(Program::validate(&per, &LIM, false).unwrap().rate(), 1000);
    }

    #[test]
    fn periodic_grid_and_count() {
        let p = Program {
            mode: Mode::Periodic,
            period_ns: 1000,
            count: 3,
            ..Program::default()
        };
        let mut s = Schedule::new(p, 10_000);
        assert_eq!(s.take(), Some((11_000, false)));
        assert_eq!(s.take(), Some((12_000, false)));
        assert_eq!(s.take(), Some((13_000, true)));
        assert_eq!(s.take(), None);
    }

    #[test]
    fn storm_bursts_and_duration() {
        let p = Program {
            mode: Mode::Storm,
            burst: 3,
            rate_hz: 3_000,
            duration_ns: 2_000_000,
            ..Program::default()
        };
        let mut s = Schedule::new(p, 0);
        let v: Vec<_> = std::iter::from_fn(|| s.take()).collect();
        assert_eq!(
            v,
            vec![
                (1_000_000, false),
                (1_000_000, false),
                (1_000_000, false),
                (2_000_000, false),
                (2_000_000, false),
                (2_000_000, true)
            ]
        );
    }

    #[test]
    fn oneshot_once() {
        let p = Program {
            mode: Mode::Oneshot,
            period_ns: 5,
            ..Program::default()
        };
        let mut s = Schedule::new(p, 100);
        assert_eq!(s.take(), Some((105, true)));
        assert_eq!(s.take(), None);
    }

    #[test]
    fn jitter_replays_and_stays_bounded() {
        let p = Program {
            mode: Mode::Periodic,
            period_ns: 10_000,
            jitter: Jitter::Uniform,
            jitter_ns: 3_000,
            count: 1000,
            seed: 42,
            ..Program::default()
        };
        let a: Vec<_> = {
            let mut s = Schedule::new(p, 0);
            std::iter::from_fn(|| s.take()).collect()
        };
        let b: Vec<_> = {
            let mut s = Schedule::new(p, 0);
            std::iter::from_fn(|| s.take()).collect()
        };
        assert_eq!(a, b);
        for (i, (d, _)) in a.iter().enumerate() {
            let g = (i as u64 + 1) * 10_000;
            assert!(*d + 3_000 >= g && *d <= g + 3_000, "{i} {d}");
        }
        let e = Program {
            jitter: Jitter::Exponential,
            jitter_ns: 0,
            ..p
        };
        let mut s = Schedule::new(e, 0);
        let v: Vec<_> = std::iter::from_fn(|| s.take()).collect();
        assert_eq!(v.len(), 1000);
        assert!(v.windows(2).all(|w| w[0].0 <= w[1].0));
        // Not the grid: an exponential schedule is not periodic.
        assert!(v
            .iter()
            .enumerate()
            .any(|(i, (d, _))| *d != (i as u64 + 1) * 10_000));
    }
}
