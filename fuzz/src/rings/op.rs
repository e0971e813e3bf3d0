// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The `rings` input format: a set-up header, then operations, each a tag
//! byte and fixed little-endian fields (byte strings are length-prefixed).
//! Decoding never fails: an input that ends mid-operation just ends.

use crate::input::{Input, Writer};

/// Device and queue set-up (the first 6 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Setup {
    /// Bit 0 EVENT_IDX, bit 1 IRQSTORM_F_MODERATION, bit 2 IRQSTORM_F_FAULT_INJECT.
    pub features: u8,
    /// Sources: `sources % 8 + 1`.
    pub sources: u8,
    /// Outstanding-table size: `[0, 2, 16, 1024][outstanding % 4]`.
    pub outstanding: u8,
    /// Queue sizes (controlq, eventq, ackq): `1 << (size % 9)`.
    pub sizes: [u8; 3],
}

/// One acknowledgement in an [`Op::Acks`] buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckSel {
    /// Below 0x80: ack the `pick`-th record seen (modulo how many were);
    /// else a record made up from the fields.
    pub pick: u8,
    /// Mechanism id (14 and up are invalid).
    pub mech: u8,
    /// Guest time spread: hardirq = raise + delta, bottom half after it.
    pub delta: u16,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Raw bytes anywhere in (or beyond) guest memory.
    Poke { off: u32, data: Vec<u8> },
    /// A raw descriptor.
    RawDesc {
        q: u8,
        id: u16,
        addr: u32,
        len: u32,
        flags: u16,
        next: u16,
    },
    /// A raw avail entry (any head id).
    RawAvail { q: u8, head: u16 },
    /// A raw avail index.
    AvailIdx { q: u8, idx: u16 },
    /// A well-formed control request chain (`shape` picks the split).
    Ctrl {
        opcode: u8,
        source: u8,
        flags: u8,
        shape: u8,
        body: Vec<u8>,
    },
    /// A malformed controlq chain of kind `kind % 7`.
    BadCtrl { kind: u8 },
    /// `n % 8 + 1` well-formed event buffers.
    Events { n: u8, shape: u8 },
    /// A malformed eventq buffer of kind `kind % 5`.
    BadEvent { kind: u8 },
    /// One well-formed ack buffer (1..=64 records).
    Acks { shape: u8, recs: Vec<AckSel> },
    /// A malformed ackq buffer of kind `kind % 4`.
    BadAck { kind: u8 },
    /// Controlq kick.
    ProcessCtrl,
    /// Ackq kick.
    ProcessAck,
    /// Eventq kick.
    FlushEvents,
    /// Move the clock on by `ns` and run the generator step.
    Advance { ns: u32 },
    /// Configure a storm on `src` and start it after `delay` ns (host API).
    Storm {
        src: u8,
        rate: u32,
        burst: u16,
        delay: u32,
    },
    /// Stop `src` (host API).
    Stop { src: u8 },
    /// Arm fault `kind % 6` for `count` records (host API).
    Inject { kind: u8, count: u8 },
    /// Device reset.
    Reset,
    /// Statistics reset.
    ResetStats,
    /// Queue control: `sub % 4` = toggle ready, toggle EVENT_IDX, size `a`,
    /// addresses (desc `a`, avail `b`, used `c`).
    QueueCtl {
        q: u8,
        sub: u8,
        a: u32,
        b: u32,
        c: u32,
    },
}

/// Tags in encoding order.
const TAGS: u8 = 20;
/// Longest control request body (bytes 8..64).
pub const CTRL_BODY: usize = 56;
/// Most records in one ack buffer.
pub const MAX_ACK_RECS: usize = 64;

impl Setup {
    /// Reads the header; `None` if the input is shorter.
    pub fn decode(i: &mut Input) -> Option<Self> {
        Some(Self {
            features: i.u8()?,
            sources: i.u8()?,
            outstanding: i.u8()?,
            sizes: [i.u8()?, i.u8()?, i.u8()?],
        })
    }
    /// Writes the header.
    pub fn encode(&self, w: &mut Writer) {
        w.u8(self.features).u8(self.sources).u8(self.outstanding);
        for s in self.sizes {
            w.u8(s);
        }
    }
}

impl Op {
    /// Reads one operation; `None` at the end of the input.
    pub fn decode(i: &mut Input) -> Option<Self> {
        Some(match i.u8()? % TAGS {
            0 => {
                let off = i.u32()?;
                let n = i.u8()?;
                Op::Poke {
                    off,
                    data: i.bytes_up_to(usize::from(n)).to_vec(),
                }
            }
            1 => Op::RawDesc {
                q: i.u8()?,
                id: i.u16()?,
                addr: i.u32()?,
                len: i.u32()?,
                flags: i.u16()?,
                next: i.u16()?,
            },
            2 => Op::RawAvail {
                q: i.u8()?,
                head: i.u16()?,
            },
            3 => Op::AvailIdx {
                q: i.u8()?,
                idx: i.u16()?,
            },
            4 => {
                let (opcode, source, flags, shape) = (i.u8()?, i.u8()?, i.u8()?, i.u8()?);
                let n = usize::from(i.u8()?).min(CTRL_BODY);
                Op::Ctrl {
                    opcode,
                    source,
                    flags,
                    shape,
                    body: i.bytes_up_to(n).to_vec(),
                }
            }
            5 => Op::BadCtrl { kind: i.u8()? },
            6 => Op::Events {
                n: i.u8()?,
                shape: i.u8()?,
            },
            7 => Op::BadEvent { kind: i.u8()? },
            8 => {
                let shape = i.u8()?;
                let n = usize::from(i.u8()?) % MAX_ACK_RECS + 1;
                let mut recs = Vec::with_capacity(n);
                for _ in 0..n {
                    let Some((pick, mech, delta)) = (|| Some((i.u8()?, i.u8()?, i.u16()?)))()
                    else {
                        break;
                    };
                    recs.push(AckSel { pick, mech, delta });
                }
                if recs.is_empty() {
                    return None;
                }
                Op::Acks { shape, recs }
            }
            9 => Op::BadAck { kind: i.u8()? },
            10 => Op::ProcessCtrl,
            11 => Op::ProcessAck,
            12 => Op::FlushEvents,
            13 => Op::Advance { ns: i.u32()? },
            14 => Op::Storm {
                src: i.u8()?,
                rate: i.u32()?,
                burst: i.u16()?,
                delay: i.u32()?,
            },
            15 => Op::Stop { src: i.u8()? },
            16 => Op::Inject {
                kind: i.u8()?,
                count: i.u8()?,
            },
            17 => Op::Reset,
            18 => Op::ResetStats,
            _ => Op::QueueCtl {
                q: i.u8()?,
                sub: i.u8()?,
                a: i.u32()?,
                b: i.u32()?,
                c: i.u32()?,
            },
        })
    }

    /// Writes the operation in the format [`Op::decode`] reads.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Op::Poke { off, data } => {
                let n = data.len().min(255);
                w.u8(0).u32(*off).u8(n as u8).bytes(&data[..n]);
            }
            Op::RawDesc {
                q,
                id,
                addr,
                len,
                flags,
                next,
            } => {
                w.u8(1)
                    .u8(*q)
                    .u16(*id)
                    .u32(*addr)
                    .u32(*len)
                    .u16(*flags)
                    .u16(*next);
            }
            Op::RawAvail { q, head } => {
                w.u8(2).u8(*q).u16(*head);
            }
            Op::AvailIdx { q, idx } => {
                w.u8(3).u8(*q).u16(*idx);
            }
            Op::Ctrl {
                opcode,
                source,
                flags,
                shape,
                body,
            } => {
                let n = body.len().min(CTRL_BODY);
                w.u8(4).u8(*opcode).u8(*source).u8(*flags).u8(*shape);
                w.u8(n as u8).bytes(&body[..n]);
            }
            Op::BadCtrl { kind } => {
                w.u8(5).u8(*kind);
            }
            Op::Events { n, shape } => {
                w.u8(6).u8(*n).u8(*shape);
            }
            Op::BadEvent { kind } => {
                w.u8(7).u8(*kind);
            }
            Op::Acks { shape, recs } => {
                let recs = &recs[..recs.len().clamp(1, MAX_ACK_RECS)];
                w.u8(8).u8(*shape).u8((recs.len() - 1) as u8);
                for r in recs {
                    w.u8(r.pick).u8(r.mech).u16(r.delta);
                }
            }
            Op::BadAck { kind } => {
                w.u8(9).u8(*kind);
            }
            Op::ProcessCtrl => {
                w.u8(10);
            }
            Op::ProcessAck => {
                w.u8(11);
            }
            Op::FlushEvents => {
                w.u8(12);
            }
            Op::Advance { ns } => {
                w.u8(13).u32(*ns);
            }
            Op::Storm {
                src,
                rate,
                burst,
                delay,
            } => {
                w.u8(14).u8(*src).u32(*rate).u16(*burst).u32(*delay);
            }
            Op::Stop { src } => {
                w.u8(15).u8(*src);
            }
            Op::Inject { kind, count } => {
                w.u8(16).u8(*kind).u8(*count);
            }
            Op::Reset => {
                w.u8(17);
            }
            Op::ResetStats => {
                w.u8(18);
            }
            Op::QueueCtl { q, sub, a, b, c } => {
                w.u8(19).u8(*q).u8(*sub).u32(*a).u32(*b).u32(*c);
            }
        }
    }
}

/// Encodes a whole input.
pub fn encode(setup: &Setup, ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    setup.encode(&mut w);
    for op in ops {
        op.encode(&mut w);
    }
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips() {
        let ops = vec![
            Op::Poke {
                off: 0x9_0000,
                data: vec![1, 2, 3],
            },
            Op::RawDesc {
                q: 1,
                id: 3,
                addr: 0x1000,
                len: 48,
                flags: 3,
                next: 9,
            },
            Op::RawAvail { q: 2, head: 7 },
            Op::AvailIdx { q: 0, idx: 300 },
            Op::Ctrl {
                opcode: 2,
                source: 1,
                flags: 0,
                shape: 1,
                body: vec![3; 56],
            },
            Op::BadCtrl { kind: 4 },
            Op::Events { n: 3, shape: 1 },
            Op::BadEvent { kind: 2 },
            Op::Acks {
                shape: 0,
                recs: vec![
                    AckSel {
                        pick: 0,
                        mech: 4,
                        delta: 100,
                    };
                    3
                ],
            },
            Op::BadAck { kind: 1 },
            Op::ProcessCtrl,
            Op::ProcessAck,
            Op::FlushEvents,
            Op::Advance { ns: 1_000_000 },
            Op::Storm {
                src: 0,
                rate: 1000,
                burst: 2,
                delay: 0,
            },
            Op::Stop { src: 0 },
            Op::Inject { kind: 1, count: 2 },
            Op::Reset,
            Op::ResetStats,
            Op::QueueCtl {
                q: 1,
                sub: 3,
                a: 1,
                b: 2,
                c: 3,
            },
        ];
        let setup = Setup {
            features: 7,
            sources: 3,
            outstanding: 1,
            sizes: [4, 8, 6],
        };
        let bytes = encode(&setup, &ops);
        let mut i = Input::new(&bytes);
        assert_eq!(Setup::decode(&mut i), Some(setup));
        let mut back = Vec::new();
        while let Some(op) = Op::decode(&mut i) {
            back.push(op);
        }
        assert_eq!(back, ops);
    }
}
