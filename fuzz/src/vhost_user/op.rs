// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The `vhost_user` input format: what one front-end connection sends.
//! Each operation is a tag byte and little-endian fields; byte strings are
//! length-prefixed; decoding never fails (a cut-off operation ends the input).

use crate::input::{Input, Writer};

/// vhost-user header flags: protocol version 1.
pub const VERSION: u32 = 0x1;
/// vhost-user header flags: the front end wants an ack.
pub const NEED_REPLY: u32 = 0x8;
/// vhost-user header size.
pub const HEADER_SIZE: usize = 12;
/// Most file descriptors attached to one message.
pub const MAX_FDS: usize = 4;
/// Largest memfd the harness makes (sparse: costs nothing until touched).
pub const MAX_MEMFD: u64 = 64 << 20;

/// A file descriptor attached to a message with SCM_RIGHTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fd {
    /// A memfd of this size (guest memory for SET_MEM_TABLE / ADD_MEM_REG).
    Memfd { size: u32 },
    /// An eventfd (kick / call / err); [`Op::Kick`] writes to it later.
    Eventfd,
    /// `/dev/null`, a file that is none of the above.
    DevNull,
    /// One end of a socket pair (SET_BACKEND_REQ_FD).
    Socket,
}

/// One step of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A message with a valid header: version 1, `size` = body length.
    Msg {
        request: u8,
        need_reply: bool,
        body: Vec<u8>,
        fds: Vec<Fd>,
    },
    /// A message whose header is taken as given (any flags, any size).
    Raw {
        request: u32,
        flags: u32,
        size: u32,
        body: Vec<u8>,
        fds: Vec<Fd>,
    },
    /// Writes 1 to the `which`-th eventfd sent so far (a queue kick).
    Kick { which: u8 },
    /// Writes bytes into the `which`-th memfd sent so far (guest memory).
    Poke { which: u8, off: u32, data: Vec<u8> },
    /// Waits up to `ms % 20` ms for the back end to answer, reading it.
    Wait { ms: u8 },
}

const TAGS: u8 = 5;

fn decode_fds(i: &mut Input) -> Option<Vec<Fd>> {
    let n = usize::from(i.u8()?) % (MAX_FDS + 1);
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(match i.u8()? % 4 {
            0 => Fd::Memfd { size: i.u32()? },
            1 => Fd::Eventfd,
            2 => Fd::DevNull,
            _ => Fd::Socket,
        });
    }
    Some(v)
}

fn encode_fds(w: &mut Writer, fds: &[Fd]) {
    let fds = &fds[..fds.len().min(MAX_FDS)];
    w.u8(fds.len() as u8);
    for f in fds {
        match f {
            Fd::Memfd { size } => {
                w.u8(0).u32(*size);
            }
            Fd::Eventfd => {
                w.u8(1);
            }
            Fd::DevNull => {
                w.u8(2);
            }
            Fd::Socket => {
                w.u8(3);
            }
        }
    }
}

impl Op {
    /// Reads one operation; `None` at the end of the input.
    pub fn decode(i: &mut Input) -> Option<Self> {
        Some(match i.u8()? % TAGS {
            0 => {
                let request = i.u8()?;
                let need_reply = i.u8()? & 1 != 0;
                let n = i.u16()?;
                let body = i.bytes_up_to(usize::from(n)).to_vec();
                Op::Msg {
                    request,
                    need_reply,
                    body,
                    fds: decode_fds(i)?,
                }
            }
            1 => {
                let (request, flags, size) = (i.u32()?, i.u32()?, i.u32()?);
                let n = i.u16()?;
                let body = i.bytes_up_to(usize::from(n)).to_vec();
                Op::Raw {
                    request,
                    flags,
                    size,
                    body,
                    fds: decode_fds(i)?,
                }
            }
            2 => Op::Kick { which: i.u8()? },
            3 => {
                let (which, off, n) = (i.u8()?, i.u32()?, i.u8()?);
                Op::Poke {
                    which,
                    off,
                    data: i.bytes_up_to(usize::from(n)).to_vec(),
                }
            }
            _ => Op::Wait { ms: i.u8()? },
        })
    }

    /// Writes the operation in the format [`Op::decode`] reads.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Op::Msg {
                request,
                need_reply,
                body,
                fds,
            } => {
                let n = body.len().min(usize::from(u16::MAX));
                w.u8(0).u8(*request).u8(u8::from(*need_reply)).u16(n as u16);
                w.bytes(&body[..n]);
                encode_fds(w, fds);
            }
            Op::Raw {
                request,
                flags,
                size,
                body,
                fds,
            } => {
                let n = body.len().min(usize::from(u16::MAX));
                w.u8(1).u32(*request).u32(*flags).u32(*size).u16(n as u16);
                w.bytes(&body[..n]);
                encode_fds(w, fds);
            }
            Op::Kick { which } => {
                w.u8(2).u8(*which);
            }
            Op::Poke { which, off, data } => {
                let n = data.len().min(255);
                w.u8(3).u8(*which).u32(*off).u8(n as u8).bytes(&data[..n]);
            }
            Op::Wait { ms } => {
                w.u8(4).u8(*ms);
            }
        }
    }

    /// The header and body this operation sends, if it sends a message.
    pub fn message(&self) -> Option<([u8; HEADER_SIZE], &[u8], &[Fd])> {
        let (request, flags, size, body, fds) = match self {
            Op::Msg {
                request,
                need_reply,
                body,
                fds,
            } => (
                u32::from(*request),
                VERSION | if *need_reply { NEED_REPLY } else { 0 },
                body.len() as u32,
                body,
                fds,
            ),
            Op::Raw {
                request,
                flags,
                size,
                body,
                fds,
            } => (*request, *flags, *size, body, fds),
            _ => return None,
        };
        let mut h = [0u8; HEADER_SIZE];
        h[..4].copy_from_slice(&request.to_le_bytes());
        h[4..8].copy_from_slice(&flags.to_le_bytes());
        h[8..].copy_from_slice(&size.to_le_bytes());
        Some((h, body, fds))
    }
}

/// The operations an input decodes to.
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut i = Input::new(data);
    std::iter::from_fn(|| Op::decode(&mut i)).collect()
}

/// Encodes a whole input.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    for op in ops {
        op.encode(&mut w);
    }
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_and_msg_headers_are_valid() {
        let ops = vec![
            Op::Msg {
                request: 5,
                need_reply: true,
                body: vec![1; 40],
                fds: vec![Fd::Memfd { size: 4096 }],
            },
            Op::Raw {
                request: 99,
                flags: 0x5,
                size: 1000,
                body: vec![2; 3],
                fds: vec![Fd::Eventfd, Fd::DevNull, Fd::Socket],
            },
            Op::Kick { which: 1 },
            Op::Poke {
                which: 0,
                off: 64,
                data: vec![9; 8],
            },
            Op::Wait { ms: 5 },
        ];
        let bytes = encode(&ops);
        assert_eq!(decode(&bytes), ops);
        let (h, body, fds) = ops[0].message().unwrap();
        assert_eq!(u32::from_le_bytes(h[..4].try_into().unwrap()), 5);
        assert_eq!(
            u32::from_le_bytes(h[4..8].try_into().unwrap()),
            VERSION | NEED_REPLY
        );
        assert_eq!(u32::from_le_bytes(h[8..].try_into().unwrap()), 40);
        assert_eq!((body.len(), fds.len()), (40, 1));
        assert!(ops[2].message().is_none());
    }
}
