// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! One fuzzed front-end connection: connect, send the messages with their
//! file descriptors, kick and poke as told, read the answers, close, and
//! wait (bounded) for the back end to end the connection.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use super::op::{Fd, Op, MAX_MEMFD};

/// vhost-user SET_MEM_TABLE.
pub const SET_MEM_TABLE: u32 = 5;
/// vhost-user ADD_MEM_REG.
pub const ADD_MEM_REG: u32 = 37;
/// Largest end (mmap offset + size) of a region whose file the harness
/// extends to cover it.
pub const COVER_CAP: u64 = 256 << 20;

/// How a connection is driven.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Send memfds as short as the input says, even shorter than the regions
    /// they back (issue 10 item 1: SIGBUS on the first access). Off: each
    /// memfd is extended to cover its regions (sparse).
    pub short_memfds: bool,
    /// Liveness bound: the back end must end a closed connection, and
    /// answer the well-formed front end, within this time.
    pub liveness: Duration,
}

/// Why a connection could not be run to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The back end did not end the connection in time, or stopped reading.
    Hang(String),
    /// The harness could not connect or make a descriptor (e.g. the process
    /// ran out of fds).
    Resources(String),
}

/// What one connection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Messages sent whole.
    pub sent: usize,
    /// Bytes the back end answered.
    pub answered: usize,
    /// The back end closed the connection before every message was sent.
    pub closed_early: bool,
}

/// The front end's end of the descriptors sent so far.
#[derive(Default)]
struct Held {
    memfds: Vec<(File, u64)>,
    eventfds: Vec<EventFd>,
    others: Vec<File>,
    sockets: Vec<UnixStream>,
}

fn memfd(size: u64) -> std::io::Result<File> {
    // SAFETY: memfd_create with a valid NUL-terminated name; the result is
    // checked before use.
    let fd = unsafe { libc::memfd_create(c"irqstorm-fuzz".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(size)?;
    Ok(f)
}

/// Makes the descriptors of one message; returns their raw numbers (owned by `held`).
fn make_fds(fds: &[Fd], held: &mut Held) -> std::io::Result<Vec<RawFd>> {
    let mut raw = Vec::with_capacity(fds.len());
    for f in fds {
        raw.push(match f {
            Fd::Memfd { size } => {
                let size = u64::from(*size) % (MAX_MEMFD + 1);
                let m = memfd(size)?;
                let r = m.as_raw_fd();
                held.memfds.push((m, size));
                r
            }
            Fd::Eventfd => {
                let e = EventFd::new(EFD_NONBLOCK)?;
                let r = e.as_raw_fd();
                held.eventfds.push(e);
                r
            }
            Fd::DevNull => {
                let n = File::open("/dev/null")?;
                let r = n.as_raw_fd();
                held.others.push(n);
                r
            }
            Fd::Socket => {
                let (mine, theirs) = UnixStream::pair()?;
                let r = theirs.as_raw_fd();
                held.sockets.push(mine);
                held.sockets.push(theirs);
                r
            }
        });
    }
    Ok(raw)
}

/// Regions `(body offset of the region, fd index)` a memory message names.
fn regions(request: u32, body: &[u8]) -> Vec<(usize, usize)> {
    match request {
        SET_MEM_TABLE => {
            let n = body
                .get(..4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            (0..n.min(8)).map(|i| (8 + 32 * i, i)).collect()
        }
        ADD_MEM_REG => vec![(8, 0)],
        _ => Vec::new(),
    }
}

/// Extends each memfd a memory message attaches to cover the region it
/// backs (clamping regions that end past [`COVER_CAP`]); returns the body
/// to send.
fn cover_regions(
    request: u32,
    body: &[u8],
    first_memfd: &[Option<usize>],
    held: &mut Held,
) -> Vec<u8> {
    let mut body = body.to_vec();
    for (at, fd) in regions(request, &body) {
        let Some(r) = body.get_mut(at..at + 32) else {
            break;
        };
        let Some(Some(m)) = first_memfd.get(fd) else {
            continue;
        };
        let u = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let (mut size, offset) = (u(&r[8..16]), u(&r[24..32]));
        if offset.saturating_add(size) > COVER_CAP {
            size = COVER_CAP.saturating_sub(offset);
            r[8..16].copy_from_slice(&size.to_le_bytes());
        }
        let need = offset.saturating_add(size);
        let (f, len) = &mut held.memfds[*m];
        if need > *len && f.set_len(need).is_ok() {
            *len = need;
        }
    }
    body
}

/// Reads whatever the back end has sent, without waiting.
fn drain(s: &mut UnixStream) -> usize {
    let mut total = 0;
    if s.set_nonblocking(true).is_err() {
        return 0;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n;
    }
    let _ = s.set_nonblocking(false);
    total
}

/// Runs one connection to its end: the back end must end it within the
/// liveness bound after the front end closed its side.
pub fn connect_and_send(path: &Path, ops: &[Op], o: &Options) -> Result<Outcome, SessionError> {
    let res = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| SessionError::Resources(format!("{what}: {e}"))
    };
    let mut s = UnixStream::connect(path).map_err(res("connect"))?;
    s.set_write_timeout(Some(o.liveness))
        .map_err(res("socket timeout"))?;
    let mut held = Held::default();
    let mut out = Outcome::default();
    for op in ops {
        match op {
            Op::Kick { which } => {
                let n = held.eventfds.len();
                if n > 0 {
                    let _ = held.eventfds[usize::from(*which) % n].write(1);
                }
            }
            Op::Poke { which, off, data } => {
                let n = held.memfds.len();
                if n > 0 {
                    let (f, len) = &held.memfds[usize::from(*which) % n];
                    if *len > 0 {
                        let off = u64::from(*off) % *len;
                        let k = data.len().min((*len - off) as usize);
                        let _ = f.write_at(&data[..k], off);
                    }
                }
            }
            Op::Wait { ms } => {
                let mut p = libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, owned by this frame.
                unsafe { libc::poll(&mut p, 1, i32::from(ms % 20)) };
                out.answered += drain(&mut s);
            }
            _ if out.closed_early => {}
            _ => {
                let Some((header, body, fds)) = op.message() else {
                    continue;
                };
                let before = held.memfds.len();
                let raw = make_fds(fds, &mut held).map_err(res("making fds"))?;
                let request = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
                let body = if o.short_memfds {
                    body.to_vec()
                } else {
                    // Which attached fd is which memfd (by index in `held`).
                    let mut k = before;
                    let map: Vec<Option<usize>> = fds
                        .iter()
                        .map(|f| {
                            matches!(f, Fd::Memfd { .. }).then(|| {
                                k += 1;
                                k - 1
                            })
                        })
                        .collect();
                    cover_regions(request, body, &map, &mut held)
                };
                match s.send_with_fds(&[&header[..], &body[..]], &raw) {
                    Ok(_) => out.sent += 1,
                    Err(e) if e.errno() == libc::EAGAIN => {
                        return Err(SessionError::Hang(format!(
                            "the back end stopped reading: a send blocked for {:?}",
                            o.liveness
                        )));
                    }
                    // The back end closed the connection (it may, on bad input).
                    Err(_) => out.closed_early = true,
                }
                out.answered += drain(&mut s);
            }
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let end = Instant::now() + o.liveness;
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Err(SessionError::Hang(format!(
                "the back end did not end the connection within {:?} after the front end closed it",
                o.liveness
            )));
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.answered += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Reset by the back end: it ended the connection.
            Err(_) => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_regions_are_covered_and_clamped() {
        let mut held = Held::default();
        let raw = make_fds(
            &[Fd::Memfd { size: 4096 }, Fd::Memfd { size: 0 }],
            &mut held,
        )
        .unwrap();
        assert_eq!(raw.len(), 2);
        // Two regions: 1 MiB at offset 0 (extends memfd 0), and one ending
        // past the cap (clamped, memfd 1 extended to the cap).
        let mut body = vec![0u8; 8 + 64];
        body[..4].copy_from_slice(&2u32.to_le_bytes());
        body[8 + 8..8 + 16].copy_from_slice(&(1u64 << 20).to_le_bytes());
        body[40 + 8..40 + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
        body[40 + 24..40 + 32].copy_from_slice(&4096u64.to_le_bytes());
        let out = cover_regions(SET_MEM_TABLE, &body, &[Some(0), Some(1)], &mut held);
        assert_eq!(held.memfds[0].0.metadata().unwrap().len(), 1 << 20);
        assert_eq!(held.memfds[1].0.metadata().unwrap().len(), COVER_CAP);
        let size1 = u64::from_le_bytes(out[48..56].try_into().unwrap());
        assert_eq!(size1, COVER_CAP - 4096);
        // Other requests are sent as they are.
        assert_eq!(cover_regions(1, &body, &[Some(0)], &mut held), body);
    }
}
