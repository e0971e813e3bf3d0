// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Seed inputs for the `vhost_user` target: the message sequence QEMU sends
//! to set the device up (features, config space, memory table, vrings with
//! kick/call eventfds), guest memory holding real requests, kicks, and a few
//! protocol oddities, so the fuzzer starts deep inside the protocol.

use irqstorm_backend::protocol::{ConfigureBody, CtrlReq, Mode, Opcode, EVENT_SIZE};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};

use super::op::{encode, Fd, Op};

// vhost-user requests used here.
const GET_FEATURES: u8 = 1;
const SET_FEATURES: u8 = 2;
const SET_OWNER: u8 = 3;
const SET_MEM_TABLE: u8 = 5;
const SET_VRING_NUM: u8 = 8;
const SET_VRING_ADDR: u8 = 9;
const SET_VRING_BASE: u8 = 10;
const GET_VRING_BASE: u8 = 11;
const SET_VRING_KICK: u8 = 12;
const SET_VRING_CALL: u8 = 13;
const GET_PROTOCOL_FEATURES: u8 = 15;
const SET_PROTOCOL_FEATURES: u8 = 16;
const GET_QUEUE_NUM: u8 = 17;
const SET_VRING_ENABLE: u8 = 18;
const GET_CONFIG: u8 = 24;
const RESET_DEVICE: u8 = 34;

/// Front-end address of guest physical 0 (any value: the back end only
/// translates vring addresses through it).
const UA: u64 = 0x7f00_0000_0000;
const MEM: u32 = 1 << 20;
const QSIZE: u32 = 16;
/// VERSION_1 | EVENT_IDX-less | PROTOCOL_FEATURES.
const FEATURES: u64 = (1 << 32) | (1 << 30);
/// MQ | CONFIG | RESET_DEVICE.
const PROTOCOL: u64 = (1 << 0) | (1 << 9) | (1 << 13);

fn msg(request: u8, body: Vec<u8>, fds: Vec<Fd>) -> Op {
    Op::Msg {
        request,
        need_reply: false,
        body,
        fds,
    }
}

fn u64s(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Ring `q`'s parts in guest memory.
fn ring_gpa(q: u32) -> (u64, u64, u64) {
    let base = 0x1_0000 * u64::from(q + 1);
    (base, base + 0x1000, base + 0x2000)
}

/// SET_OWNER through SET_MEM_TABLE (one 1 MiB memfd region, mapped from
/// `mmap_offset` in the file).
fn negotiate(mmap_offset: u64) -> Vec<Op> {
    let mut config = u32s(&[0, 32, 0]);
    config.extend_from_slice(&[0u8; 32]);
    vec![
        msg(SET_OWNER, vec![], vec![]),
        msg(GET_FEATURES, vec![], vec![]),
        msg(GET_PROTOCOL_FEATURES, vec![], vec![]),
        msg(SET_PROTOCOL_FEATURES, u64s(&[PROTOCOL]), vec![]),
        msg(GET_QUEUE_NUM, vec![], vec![]),
        msg(SET_FEATURES, u64s(&[FEATURES]), vec![]),
        msg(GET_CONFIG, config, vec![]),
        msg(
            SET_MEM_TABLE,
            [u32s(&[1, 0]), u64s(&[0, u64::from(MEM), UA, mmap_offset])].concat(),
            vec![Fd::Memfd { size: MEM }],
        ),
    ]
}

/// Sets up and enables vring `q` (its call then kick eventfds are sent).
fn vring(q: u32) -> Vec<Op> {
    let (d, a, u) = ring_gpa(q);
    vec![
        msg(SET_VRING_NUM, u32s(&[q, QSIZE]), vec![]),
        msg(
            SET_VRING_ADDR,
            [u32s(&[q, 0]), u64s(&[UA + d, UA + u, UA + a, 0])].concat(),
            vec![],
        ),
        msg(SET_VRING_BASE, u32s(&[q, 0]), vec![]),
        msg(SET_VRING_CALL, u64s(&[u64::from(q)]), vec![Fd::Eventfd]),
        msg(SET_VRING_KICK, u64s(&[u64::from(q)]), vec![Fd::Eventfd]),
        msg(SET_VRING_ENABLE, u32s(&[q, 1]), vec![]),
    ]
}

fn poke(off: u64, data: Vec<u8>) -> Op {
    Op::Poke {
        which: 0,
        off: off as u32,
        data,
    }
}

fn desc(addr: u64, len: u32, flags: u32, next: u16) -> Vec<u8> {
    let mut b = addr.to_le_bytes().to_vec();
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&(flags as u16).to_le_bytes());
    b.extend_from_slice(&next.to_le_bytes());
    b
}

/// Chains of `(addr, len, writable)` at descriptor ids from 0, published
/// in ring `q`'s avail ring.
fn post(q: u32, chains: &[&[(u64, u32, bool)]]) -> Vec<Op> {
    let (d, a, _) = ring_gpa(q);
    let mut table = Vec::new();
    let mut heads = Vec::new();
    let mut id = 0u16;
    for c in chains {
        heads.push(id);
        for (k, &(addr, len, w)) in c.iter().enumerate() {
            let mut f = if w { VRING_DESC_F_WRITE } else { 0 };
            if k + 1 < c.len() {
                f |= VRING_DESC_F_NEXT;
            }
            table.extend(desc(addr, len, f, id + 1));
            id += 1;
        }
    }
    let mut avail = vec![0u8, 0];
    avail.extend_from_slice(&(heads.len() as u16).to_le_bytes());
    for h in heads {
        avail.extend_from_slice(&h.to_le_bytes());
    }
    table
        .chunks(240)
        .enumerate()
        .map(|(k, c)| poke(d + 240 * k as u64, c.to_vec()))
        .chain([poke(a, avail)])
        .collect()
}

/// Named seed inputs.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let storm = ConfigureBody {
        mode: Mode::Storm as u8,
        rate_hz: 10_000,
        burst: 2,
        count: 20,
        ..Default::default()
    };
    let ctrl = |at: u64| [(at, 64, false), (at + 0x80, 64, true)];
    let info = CtrlReq::new(Opcode::GetInfo as u16, 0, 0).raw.to_vec();
    let configure = CtrlReq::configure(1, &storm).raw.to_vec();
    let start = CtrlReq::new(Opcode::Start as u16, 1, 0).raw.to_vec();
    let (c0, c1, c2) = (0x8_0000, 0x8_0100, 0x8_0200);

    let mut controlq = negotiate(0);
    controlq.extend(vring(0));
    controlq.push(poke(c0, info.clone()));
    controlq.extend(post(0, &[&ctrl(c0)]));
    // eventfds sent: [call 0, kick 0].
    controlq.push(Op::Kick { which: 1 });
    controlq.push(Op::Wait { ms: 10 });
    controlq.push(msg(GET_VRING_BASE, u32s(&[0, 0]), vec![]));

    let mut storm_q = negotiate(0);
    for q in 0..3 {
        storm_q.extend(vring(q));
    }
    storm_q.push(poke(c0, info));
    storm_q.push(poke(c1, configure));
    storm_q.push(poke(c2, start));
    storm_q.extend(post(0, &[&ctrl(c0), &ctrl(c1), &ctrl(c2)]));
    let ev: Vec<[(u64, u32, bool); 1]> = (0..8)
        .map(|k| [(0x9_0000 + 64 * k, EVENT_SIZE as u32, true)])
        .collect();
    let ev: Vec<&[(u64, u32, bool)]> = ev.iter().map(|c| &c[..]).collect();
    storm_q.extend(post(1, &ev));
    // eventfds sent: [call0, kick0, call1, kick1, call2, kick2].
    storm_q.push(Op::Kick { which: 3 });
    storm_q.push(Op::Kick { which: 1 });
    storm_q.push(Op::Wait { ms: 15 });
    storm_q.push(Op::Kick { which: 3 });
    storm_q.push(Op::Wait { ms: 5 });

    let mut odd = negotiate(0);
    odd.extend(vring(1));
    odd.extend([
        msg(SET_VRING_ENABLE, u32s(&[1, 0]), vec![]),
        msg(RESET_DEVICE, vec![], vec![]),
        msg(SET_FEATURES, u64s(&[FEATURES]), vec![]),
        Op::Msg {
            request: GET_FEATURES,
            need_reply: true,
            body: vec![],
            fds: vec![],
        },
        // Version 2 header.
        Op::Raw {
            request: u32::from(GET_FEATURES),
            flags: 2,
            size: 0,
            body: vec![],
            fds: vec![],
        },
        // A size larger than the body that follows.
        Op::Raw {
            request: u32::from(SET_FEATURES),
            flags: 1,
            size: 64,
            body: u64s(&[FEATURES]),
            fds: vec![Fd::DevNull, Fd::Socket],
        },
    ]);

    vec![
        ("controlq-get-info", encode(&controlq)),
        ("three-queues-storm", encode(&storm_q)),
        ("reset-and-odd-headers", encode(&odd)),
    ]
}

/// Inputs the fuzzer found that crashed the back end, as the operations
/// they decode to (replayed by `fuzz/tests/regressions.rs`).
pub fn regressions() -> Vec<(&'static str, Vec<u8>)> {
    // Found on main (55f2b34) with IRQSTORM_FUZZ_SHORT_MEMFDS=1 after 3,024
    // connections: a region mapped from 2^61 bytes into a 1 MiB memfd;
    // the first controlq kick touches it and SIGBUS kills the process.
    let mut past_eof = negotiate(1 << 61);
    past_eof.extend(vring(0));
    let info = CtrlReq::new(Opcode::GetInfo as u16, 0, 0).raw.to_vec();
    past_eof.push(poke(0x8_0000, info));
    past_eof.extend(post(0, &[&[(0x8_0000, 64, false), (0x8_0080, 64, true)]]));
    past_eof.push(Op::Kick { which: 1 });
    past_eof.push(Op::Wait { ms: 10 });
    vec![("sigbus-mmap-offset-past-eof", encode(&past_eof))]
}
