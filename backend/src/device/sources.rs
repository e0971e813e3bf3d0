// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Source programs (CONFIGURE, START, STOP), raising and latching (§5.1-§5.2).

use crate::protocol::{Mode, Status, IRQSTORM_F_MODERATION, SOURCE_ALL};
use crate::schedule::{Program, Schedule, MAX_DELAY_NS};

use super::Device;

impl Device {
    /// Validates and stores a program (CONFIGURE). `host` requests skip the
    /// feature-negotiation check for moderation.
    pub fn configure(
        &mut self,
        source: u16,
        body: &crate::protocol::ConfigureBody,
        host: bool,
    ) -> Status {
        let moderation_ok = host || self.has(IRQSTORM_F_MODERATION);
        let Some(s) = self.sources.get(usize::from(source)) else {
            return Status::OutOfRange;
        };
        if s.running() {
            return Status::Busy;
        }
        match Program::validate(body, &self.limits, moderation_ok) {
            Ok(p) => {
                let s = &mut self.sources[usize::from(source)];
                s.program = p;
                s.sched = None;
                Status::Ok
            }
            Err(st) => st,
        }
    }

    pub(super) fn running_rate(&self) -> u64 {
        self.sources
            .iter()
            .filter(|s| s.running())
            .map(|s| s.program.rate())
            .sum()
    }

    /// Starts one source or all configured ones (START). Returns t0.
    pub fn start(&mut self, source: u16, delay_ns: u64, now: u64) -> Result<u64, Status> {
        if delay_ns > MAX_DELAY_NS {
            return Err(Status::OutOfRange);
        }
        let idx: Vec<usize> = if source == SOURCE_ALL {
            let v: Vec<usize> = (0..self.sources.len())
                .filter(|&i| self.sources[i].program.mode != Mode::Off)
                .collect();
            if v.is_empty() {
                return Err(Status::Invalid);
            }
            v
        } else {
            let i = usize::from(source);
            let Some(s) = self.sources.get(i) else {
                return Err(Status::OutOfRange);
            };
            if s.program.mode == Mode::Off {
                return Err(Status::Invalid);
            }
            vec![i]
        };
        if idx.iter().any(|&i| self.sources[i].running()) {
            return Err(Status::Busy);
        }
        let add: u64 = idx.iter().map(|&i| self.sources[i].program.rate()).sum();
        if self.running_rate() + add > u64::from(self.limits.max_rate_hz) {
            return Err(Status::OutOfRange);
        }
        let t0 = now.saturating_add(delay_ns);
        for i in idx {
            let s = &mut self.sources[i];
            s.sched = Some(Schedule::new(s.program, t0));
        }
        Ok(t0)
    }

    /// Stops one source or all (STOP). Returns the raises so far of the sources named.
    pub fn stop(&mut self, source: u16) -> Result<u64, Status> {
        if source == SOURCE_ALL {
            let mut n = 0;
            for s in &mut self.sources {
                s.sched = None;
                n += s.c.raised;
            }
            Ok(n)
        } else {
            let s = self
                .sources
                .get_mut(usize::from(source))
                .ok_or(Status::OutOfRange)?;
            s.sched = None;
            Ok(s.c.raised)
        }
    }

    pub(super) fn raise(&mut self, src: u16, due: u64, now: u64, final_: bool) {
        let s = &mut self.sources[usize::from(src)];
        s.source_seq += 1;
        s.c.raised += 1;
        if s.latch.pending == 0 {
            s.latch.first_due = due;
            s.latch.first_raise = now;
            s.latch.first_raise_tsc = crate::tsc::now();
            s.latch.latched = false;
            self.pending_order.push_back(src);
        }
        s.latch.pending += 1;
        s.latch.last_seq = s.source_seq;
        s.latch.final_ |= final_;
    }

    /// Earliest time the generator must act: a due event or a moderation deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        for s in &self.sources {
            let cand = s.sched.as_ref().and_then(Schedule::next_due);
            let md = s
                .oldest_unnotified_ns
                .map(|o| o.saturating_add(s.program.moderation_delay_ns()));
            for c in [cand, md].into_iter().flatten() {
                t = Some(t.map_or(c, |x: u64| x.min(c)));
            }
        }
        t
    }
}
