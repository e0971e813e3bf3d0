// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Seed inputs for the `rings` target: one per path a driver takes, so the
//! fuzzer starts from inputs that already reach every queue handler.

use irqstorm_backend::protocol::{ConfigureBody, CtrlReq, Mode, Opcode, STATS_F_RESET};

use super::op::{encode, AckSel, Op, Setup};

/// EVENT_IDX + moderation, 8 sources, 1024 outstanding, queues 32/256/64.
const SETUP: Setup = Setup {
    features: 0b011,
    sources: 7,
    outstanding: 3,
    sizes: [5, 8, 6],
};

fn ctrl(opcode: Opcode, source: u8, flags: u8, body: &[u8]) -> Op {
    Op::Ctrl {
        opcode: opcode as u8,
        source,
        flags,
        shape: 0,
        body: body.to_vec(),
    }
}

fn configure_body(c: &ConfigureBody) -> Vec<u8> {
    CtrlReq::configure(0, c).raw[8..].to_vec()
}

fn acks(n: u8) -> Op {
    Op::Acks {
        shape: 1,
        recs: (0..n)
            .map(|k| AckSel {
                pick: k,
                mech: k % 14,
                delta: 1000 + u16::from(k),
            })
            .collect(),
    }
}

/// Named seed inputs.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let storm = ConfigureBody {
        mode: Mode::Storm as u8,
        rate_hz: 20_000,
        burst: 3,
        moderation_events: 2,
        moderation_delay_us: 100,
        ..Default::default()
    };
    let ms = 1_000_000;
    vec![
        (
            "ctrl-every-opcode",
            encode(
                &SETUP,
                &[
                    ctrl(Opcode::Stats, 1, STATS_F_RESET as u8, &[]),
                    ctrl(Opcode::GetInfo, 0, 0, &[]),
                    ctrl(Opcode::Configure, 1, 0, &configure_body(&storm)),
                    ctrl(Opcode::Start, 1, 0, &[]),
                    ctrl(Opcode::Stats, 0xff, 0, &[]),
                    ctrl(Opcode::Ping, 0, 0, &[42]),
                    Op::ProcessCtrl,
                    Op::Events { n: 7, shape: 0 },
                    Op::Advance { ns: ms },
                    ctrl(Opcode::Stop, 1, 0, &[]),
                    Op::ProcessCtrl,
                ],
            ),
        ),
        (
            "storm-events-acks",
            encode(
                &SETUP,
                &[
                    Op::Storm {
                        src: 0,
                        rate: 50_000,
                        burst: 2,
                        delay: 0,
                    },
                    Op::Events { n: 7, shape: 0 },
                    Op::Events { n: 7, shape: 1 },
                    Op::Advance { ns: ms / 5 },
                    Op::Events { n: 7, shape: 2 },
                    Op::FlushEvents,
                    acks(12),
                    Op::ProcessAck,
                    Op::Advance { ns: 2 * ms },
                    Op::Events { n: 7, shape: 0 },
                    Op::FlushEvents,
                    acks(40),
                    Op::ProcessAck,
                    Op::Stop { src: 0 },
                ],
            ),
        ),
        (
            "malformed-chains",
            encode(
                &SETUP,
                &[
                    Op::BadCtrl { kind: 0 },
                    Op::BadCtrl { kind: 1 },
                    Op::BadCtrl { kind: 2 },
                    Op::BadCtrl { kind: 3 },
                    ctrl(Opcode::GetInfo, 0, 0, &[]),
                    Op::BadCtrl { kind: 4 },
                    Op::BadCtrl { kind: 5 },
                    Op::BadCtrl { kind: 6 },
                    Op::ProcessCtrl,
                    Op::Storm {
                        src: 2,
                        rate: 100_000,
                        burst: 1,
                        delay: 0,
                    },
                    Op::BadEvent { kind: 0 },
                    Op::BadEvent { kind: 1 },
                    Op::BadEvent { kind: 2 },
                    Op::BadEvent { kind: 3 },
                    Op::BadEvent { kind: 4 },
                    Op::Events { n: 1, shape: 0 },
                    Op::Advance { ns: ms / 10 },
                    Op::BadAck { kind: 0 },
                    Op::BadAck { kind: 1 },
                    Op::BadAck { kind: 2 },
                    Op::BadAck { kind: 3 },
                    acks(2),
                    Op::ProcessAck,
                ],
            ),
        ),
        (
            "faults-injected",
            encode(
                &Setup {
                    features: 0b101,
                    ..SETUP
                },
                &[
                    Op::Storm {
                        src: 0,
                        rate: 100_000,
                        burst: 1,
                        delay: 0,
                    },
                    Op::Inject { kind: 0, count: 1 },
                    Op::Events { n: 7, shape: 0 },
                    Op::Advance { ns: ms / 10 },
                    Op::Inject { kind: 1, count: 2 },
                    Op::Events { n: 7, shape: 0 },
                    Op::FlushEvents,
                    Op::Inject { kind: 5, count: 1 },
                    Op::Advance { ns: ms / 10 },
                ],
            ),
        ),
        (
            "latch-reset-reuse",
            encode(
                &SETUP,
                &[
                    Op::Storm {
                        src: 3,
                        rate: 10_000,
                        burst: 4,
                        delay: 0,
                    },
                    Op::Advance { ns: 3 * ms },
                    Op::Events { n: 0, shape: 0 },
                    Op::FlushEvents,
                    Op::Reset,
                    Op::QueueCtl {
                        q: 1,
                        sub: 1,
                        a: 0,
                        b: 0,
                        c: 0,
                    },
                    Op::Storm {
                        src: 3,
                        rate: 10_000,
                        burst: 1,
                        delay: 0,
                    },
                    Op::Advance { ns: ms },
                    Op::Events { n: 3, shape: 1 },
                    Op::FlushEvents,
                    Op::ResetStats,
                    Op::Advance { ns: ms },
                ],
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::run;
    use super::*;

    /// Every seed passes every check with the exact checks on, and
    /// together they reach every queue handler and every malformed counter.
    #[test]
    fn seeds_pass_and_reach_every_handler() {
        let mut reached = irqstorm_backend::device::DeviceCounters::default();
        let mut records = 0;
        for (name, data) in seeds() {
            let s = run(&data).unwrap_or_else(|v| panic!("seed {name}: {v}"));
            assert!(s.exact, "seed {name} tainted");
            let c = s.counters;
            reached.malformed_ctrl += c.malformed_ctrl;
            reached.malformed_event += c.malformed_event;
            reached.malformed_ack += c.malformed_ack;
            reached.ctrl_requests += c.ctrl_requests;
            reached.faults_injected += c.faults_injected;
            reached.bad_acks += c.bad_acks;
            records += s.records;
        }
        assert_eq!(reached.malformed_ctrl, 7);
        assert_eq!(reached.malformed_event, 5);
        assert_eq!(reached.malformed_ack, 4);
        assert!(reached.ctrl_requests >= 5, "{reached:?}");
        assert!(reached.faults_injected > 0, "{reached:?}");
        assert!(records > 20, "{records} records");
    }
}
