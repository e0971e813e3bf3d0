// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Whole-message relay between a front end and the vhost-user daemon.
//!
//! The daemon (vhost-user-backend) reads its socket with blocking calls, so a
//! front end that connects and stays silent, or sends a header whose payload
//! never comes, would hold the device, and every front end queued behind it,
//! forever. So the back end accepts front ends itself and relays whole
//! messages to the daemon over a private socket: the first message must be
//! complete within [`Timeouts::first_message`] of connecting and every
//! message within [`Timeouts::message`] of its first byte, else the front end
//! is disconnected and counted. Between messages a front end may stay idle
//! as long as it likes: a paused or idle QEMU sends nothing for hours.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use irqstorm_protocol::control::FrontEndStats;
use thiserror::Error as ThisError;
use vhost::vhost_user::message::{MAX_ATTACHED_FD_ENTRIES, MAX_MSG_SIZE};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// Size of a vhost-user message header (request, flags, size: 3 x u32 LE).
pub const HEADER_SIZE: usize = 12;

/// How long a front end may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From connecting to its first complete message.
    pub first_message: Duration,
    /// From a message's first byte to its last.
    pub message: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            first_message: Duration::from_secs(10),
            message: Duration::from_secs(5),
        }
    }
}

/// Why a relayed connection ended.
#[derive(Debug, ThisError)]
pub enum End {
    /// The front end hung up.
    #[error("the front end closed the connection")]
    FrontEndClosed,
    /// The daemon hung up (it ends a connection on a request it refuses).
    #[error("the daemon closed the connection")]
    DaemonClosed,
    /// No complete first message in time.
    #[error("no complete message from the front end within {0:?} of connecting")]
    Silent(Duration),
    /// A message started and did not complete in time.
    #[error("a front-end message stalled: {got} of {want} bytes after {limit:?}")]
    Stalled {
        /// Bytes received.
        got: usize,
        /// Bytes announced (header + payload; the header size while the
        /// header itself is incomplete).
        want: usize,
        /// The limit.
        limit: Duration,
    },
    /// A header announces a payload larger than vhost-user allows.
    #[error("a front-end message header announces {0} payload bytes (at most {MAX_MSG_SIZE})")]
    Oversized(u32),
    /// A socket call failed.
    #[error("{side}: {source}")]
    Io {
        /// `front end` or `daemon`.
        side: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Counters of one device's front-end connections and of what its front
/// ends did wrong (never reset: they outlive connections and `reset_stats`).
#[derive(Debug, Default)]
pub struct Counters {
    connections: AtomicU64,
    silent: AtomicU64,
    stalled: AtomicU64,
    malformed: AtomicU64,
    io_errors: AtomicU64,
    memory_tables_refused: AtomicU64,
    memory_faults: AtomicU64,
}

impl Counters {
    /// Counts a connection that could not be set up (it is dropped).
    pub fn setup_failed(&self) {
        self.io_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a SET_MEM_TABLE refused (a region not backed by its file).
    pub fn memory_table_refused(&self) {
        self.memory_tables_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts faults caught on guest memory (its file shrank under it).
    pub fn memory_faults(&self, n: u64) {
        self.memory_faults.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts an accepted connection.
    pub fn accepted(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts how a connection ended (clean hang-ups count nothing).
    pub fn ended(&self, end: &End) {
        let c = match end {
            End::FrontEndClosed | End::DaemonClosed => return,
            End::Silent(_) => &self.silent,
            End::Stalled { .. } => &self.stalled,
            End::Oversized(_) => &self.malformed,
            End::Io { .. } => &self.io_errors,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters for a `stats` reply.
    pub fn snapshot(&self) -> FrontEndStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FrontEndStats {
            connections: get(&self.connections),
            silent: get(&self.silent),
            stalled: get(&self.stalled),
            malformed: get(&self.malformed),
            io_errors: get(&self.io_errors),
            memory_tables_refused: get(&self.memory_tables_refused),
            memory_faults: get(&self.memory_faults),
        }
    }
}

/// Receives up to `buf.len()` bytes and the fds that came with them.
fn recv_with_owned_fds(sock: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut raw = [-1 as RawFd; MAX_ATTACHED_FD_ENTRIES];
    let mut iov = [libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }];
    // SAFETY: the only iovec points into `buf`, borrowed mutably for the
    // call, so the kernel may write any bytes there.
    let (n, nfds) = unsafe { sock.recv_with_fds(&mut iov, &mut raw) }?;
    let fds = raw[..nfds]
        .iter()
        .map(|&fd| {
            // SAFETY: recvmsg has just installed this fd in the process and
            // nothing else refers to it, so it is ours to own and close.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .collect();
    Ok((n, fds))
}

/// One message being read from a socket: the header, then the payload it
/// announces, and the fds that came with them.
#[derive(Debug, Default)]
struct Frame {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    first_byte: Option<Instant>,
}

/// What one read of a [`Frame`] gave.
enum Read {
    /// More bytes are needed.
    Partial,
    /// The message is complete.
    Complete,
    /// The peer hung up.
    Closed,
}

impl Frame {
    /// Bytes announced so far: the header, then header + payload.
    fn want(&self) -> Result<usize, End> {
        let Some(size) = self.bytes.get(8..HEADER_SIZE) else {
            return Ok(HEADER_SIZE);
        };
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
        if size as usize > MAX_MSG_SIZE {
            return Err(End::Oversized(size));
        }
        Ok(HEADER_SIZE + size as usize)
    }

    /// Reads what is there, never past the end of this message (so fds stay
    /// with the message they came with).
    fn read_from(&mut self, sock: &UnixStream, side: &'static str) -> Result<Read, End> {
        let missing = self.want()? - self.bytes.len();
        let mut buf = [0u8; HEADER_SIZE + MAX_MSG_SIZE];
        let (n, fds) = match recv_with_owned_fds(sock, &mut buf[..missing]) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Read::Partial),
            Err(source) => return Err(End::Io { side, source }),
        };
        if n == 0 {
            return Ok(Read::Closed);
        }
        self.first_byte.get_or_insert_with(Instant::now);
        self.bytes.extend_from_slice(&buf[..n]);
        self.fds.extend(fds);
        if self.bytes.len() == self.want()? {
            Ok(Read::Complete)
        } else {
            Ok(Read::Partial)
        }
    }

    /// Sends the whole message, its fds with the first byte.
    fn send_to(self, sock: &UnixStream, side: &'static str) -> Result<(), End> {
        let raw: Vec<RawFd> = self.fds.iter().map(AsRawFd::as_raw_fd).collect();
        let mut sent = 0;
        while sent < self.bytes.len() {
            let fds = if sent == 0 { &raw[..] } else { &[][..] };
            match sock.send_with_fds(&[&self.bytes[sent..]], fds) {
                Ok(n) => sent += n,
                Err(e) if e.errno() == libc::EINTR => {}
                Err(e) => {
                    return Err(End::Io {
                        side,
                        source: e.into(),
                    })
                }
            }
        }
        Ok(())
    }
}

const FRONT: u64 = 0;
const DAEMON: u64 = 1;

/// Relays messages between `front` and `daemon` until one side hangs up, a
/// limit of `t` is broken or a call fails; both sockets are shut down then.
pub fn relay(front: &UnixStream, daemon: &UnixStream, t: Timeouts) -> End {
    let end = relay_until_end(front, daemon, t);
    let _ = front.shutdown(std::net::Shutdown::Both);
    let _ = daemon.shutdown(std::net::Shutdown::Both);
    end
}

fn relay_until_end(front: &UnixStream, daemon: &UnixStream, t: Timeouts) -> End {
    let io_end = |side| move |source| End::Io { side, source };
    let setup = || -> Result<Epoll, End> {
        // A front end that does not read its replies must not block us.
        front
            .set_write_timeout(Some(t.message))
            .map_err(io_end("front end"))?;
        let epoll = Epoll::new().map_err(io_end("epoll"))?;
        for (sock, id) in [(front, FRONT), (daemon, DAEMON)] {
            epoll
                .ctl(
                    ControlOperation::Add,
                    sock.as_raw_fd(),
                    EpollEvent::new(EventSet::IN, id),
                )
                .map_err(io_end("epoll"))?;
        }
        Ok(epoll)
    };
    let epoll = match setup() {
        Ok(e) => e,
        Err(e) => return e,
    };
    let connected = Instant::now();
    let mut first_done = false;
    let mut from_front = Frame::default();
    let mut from_daemon = Frame::default();
    let mut events = [EpollEvent::default(); 2];
    loop {
        let deadline = front_deadline(connected, first_done, &from_front, t);
        let now = Instant::now();
        let timeout_ms = match deadline {
            Some((d, _)) if d <= now => {
                return deadline_end(deadline.map(|x| x.1), &from_front, t);
            }
            Some((d, _)) => i32::try_from((d - now).as_millis() + 1).unwrap_or(i32::MAX),
            None => -1,
        };
        let n = match epoll.wait(timeout_ms, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return End::Io {
                    side: "epoll",
                    source: e,
                }
            }
        };
        for ev in &events[..n] {
            let (frame, from, to, side, closed) = if ev.data() == FRONT {
                (
                    &mut from_front,
                    front,
                    daemon,
                    "front end",
                    End::FrontEndClosed,
                )
            } else {
                (&mut from_daemon, daemon, front, "daemon", End::DaemonClosed)
            };
            match frame.read_from(from, side) {
                Err(e) => return e,
                Ok(Read::Closed) if ev.data() == FRONT => {
                    // The front end is done sending; it may still read the
                    // answers to what it sent: pass the end on and drain.
                    return drain_daemon(front, daemon, &mut from_daemon, t);
                }
                Ok(Read::Closed) => return closed,
                Ok(Read::Partial) => {}
                Ok(Read::Complete) => {
                    let to_side = if ev.data() == FRONT {
                        "daemon"
                    } else {
                        "front end"
                    };
                    if let Err(e) = std::mem::take(frame).send_to(to, to_side) {
                        return e;
                    }
                    first_done |= ev.data() == FRONT;
                }
            }
        }
    }
}

/// After the front end's end of sending: the daemon sees the end too, its
/// last answers still reach the front end, and the connection ends when the
/// daemon closes (within `t.message`).
fn drain_daemon(front: &UnixStream, daemon: &UnixStream, f: &mut Frame, t: Timeouts) -> End {
    let _ = daemon.shutdown(std::net::Shutdown::Write);
    if let Err(e) = daemon.set_read_timeout(Some(t.message)) {
        return End::Io {
            side: "daemon",
            source: e,
        };
    }
    let end = Instant::now() + t.message;
    while Instant::now() < end {
        match f.read_from(daemon, "daemon") {
            Ok(Read::Closed) => break,
            Ok(Read::Partial) => {}
            // A front end that closed both ways reads nothing: no matter.
            Ok(Read::Complete) => drop(std::mem::take(f).send_to(front, "front end")),
            Err(End::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return e,
        }
    }
    End::FrontEndClosed
}

/// Which limit applies to the front end now, if any.
#[derive(Debug, Clone, Copy)]
enum Limit {
    FirstMessage,
    Message,
}

fn front_deadline(
    connected: Instant,
    first_done: bool,
    f: &Frame,
    t: Timeouts,
) -> Option<(Instant, Limit)> {
    let first = (!first_done).then(|| (connected + t.first_message, Limit::FirstMessage));
    let message = f.first_byte.map(|b| (b + t.message, Limit::Message));
    match (first, message) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn deadline_end(limit: Option<Limit>, f: &Frame, t: Timeouts) -> End {
    match limit {
        Some(Limit::Message) => End::Stalled {
            got: f.bytes.len(),
            want: f.want().unwrap_or(HEADER_SIZE),
            limit: t.message,
        },
        _ => End::Silent(t.first_message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write};
    use std::thread;

    /// Limits for tests: the one a test is about is short, the other one so
    /// long that a loaded machine cannot reach it.
    const SHORT_FIRST: Timeouts = Timeouts {
        first_message: Duration::from_millis(300),
        message: Duration::from_secs(600),
    };
    const SHORT_MESSAGE: Timeouts = Timeouts {
        first_message: Duration::from_secs(600),
        message: Duration::from_millis(300),
    };
    const LONG: Timeouts = Timeouts {
        first_message: Duration::from_secs(600),
        message: Duration::from_secs(600),
    };

    fn header(req: u32, size: u32) -> Vec<u8> {
        [req.to_le_bytes(), 1u32.to_le_bytes(), size.to_le_bytes()].concat()
    }

    /// Runs a relay between a test "front end" and a test "daemon".
    fn run(t: Timeouts) -> (UnixStream, UnixStream, thread::JoinHandle<End>) {
        let (front, front_peer) = UnixStream::pair().unwrap();
        let (daemon, daemon_peer) = UnixStream::pair().unwrap();
        let h = thread::spawn(move || relay(&front_peer, &daemon_peer, t));
        (front, daemon, h)
    }

    #[test]
    fn whole_messages_pass_both_ways_with_their_fds() {
        let (front, mut daemon, h) = run(LONG);
        let memfd = tempfile_fd();
        let msg = [header(5, 8), 7u64.to_le_bytes().to_vec()].concat();
        front
            .send_with_fds(&[&msg[..]], &[memfd.as_raw_fd()])
            .unwrap();
        let mut got = vec![0u8; msg.len()];
        let mut raw = [-1; 4];
        let mut iov = [libc::iovec {
            iov_base: got.as_mut_ptr().cast(),
            iov_len: got.len(),
        }];
        // SAFETY: the iovec points into `got`, borrowed mutably for the call.
        let (n, nfds) = unsafe { daemon.recv_with_fds(&mut iov, &mut raw) }.unwrap();
        assert_eq!((n, nfds), (msg.len(), 1));
        assert_eq!(got, msg);
        // SAFETY: the fd was just received and is owned by nobody else.
        drop(unsafe { OwnedFd::from_raw_fd(raw[0]) });
        // A reply goes back.
        daemon.write_all(&header(5, 0)).unwrap();
        let mut b = [0u8; HEADER_SIZE];
        (&front).read_exact(&mut b).unwrap();
        assert_eq!(b.to_vec(), header(5, 0));
        drop(front);
        // The daemon sees the end, closes, and the relay is over.
        assert_eq!(daemon.read(&mut b).unwrap(), 0);
        drop(daemon);
        assert!(matches!(h.join().unwrap(), End::FrontEndClosed));
    }

    fn tempfile_fd() -> OwnedFd {
        OwnedFd::from(std::fs::File::open("/dev/null").unwrap())
    }

    #[test]
    fn no_limit_applies_between_messages_after_the_first() {
        let t = LONG;
        let at = Instant::now();
        let idle = Frame::default();
        assert!(matches!(
            front_deadline(at, false, &idle, t),
            Some((d, Limit::FirstMessage)) if d == at + t.first_message
        ));
        assert!(front_deadline(at, true, &idle, t).is_none());
        let started = Frame {
            first_byte: Some(at),
            ..Frame::default()
        };
        assert!(matches!(
            front_deadline(at, true, &started, t),
            Some((d, Limit::Message)) if d == at + t.message
        ));
    }

    #[test]
    fn answers_still_reach_a_front_end_that_is_done_sending() {
        let (mut front, mut daemon, h) = run(LONG);
        front.write_all(&header(1, 0)).unwrap();
        front.shutdown(std::net::Shutdown::Write).unwrap();
        // The daemon gets the message, then the end of the stream.
        let mut got = Vec::new();
        daemon.read_to_end(&mut got).unwrap();
        assert_eq!(got, header(1, 0));
        // Its answer, sent after that, still reaches the front end.
        daemon.write_all(&header(1, 8)).unwrap();
        daemon.write_all(&[7u8; 8]).unwrap();
        drop(daemon);
        assert!(matches!(h.join().unwrap(), End::FrontEndClosed));
        let mut answer = Vec::new();
        front.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, [header(1, 8), vec![7u8; 8]].concat());
    }

    #[test]
    fn a_silent_front_end_is_dropped() {
        let (_front, mut daemon, h) = run(SHORT_FIRST);
        assert!(matches!(h.join().unwrap(), End::Silent(_)));
        let mut b = [0u8; 1];
        assert_eq!(daemon.read(&mut b).unwrap(), 0);
    }

    #[test]
    fn a_header_without_its_payload_is_dropped() {
        let (mut front, daemon, h) = run(SHORT_MESSAGE);
        // One good message first: the limit holds after it too.
        front.write_all(&header(1, 0)).unwrap();
        front.write_all(&header(2, 40)).unwrap();
        front.write_all(&[0u8; 10]).unwrap();
        match h.join().unwrap() {
            End::Stalled { got, want, .. } => assert_eq!((got, want), (22, 52)),
            e => panic!("{e}"),
        }
        // The daemon got only the complete message.
        let mut all = Vec::new();
        (&daemon).read_to_end(&mut all).unwrap();
        assert_eq!(all, header(1, 0));
    }

    #[test]
    fn a_partial_header_is_dropped() {
        let (mut front, _daemon, h) = run(SHORT_MESSAGE);
        front.write_all(&header(1, 0)).unwrap();
        front.write_all(&[1, 0, 0]).unwrap();
        assert!(matches!(
            h.join().unwrap(),
            End::Stalled {
                got: 3,
                want: HEADER_SIZE,
                ..
            }
        ));
    }

    #[test]
    fn a_first_message_that_never_completes_is_silence() {
        let (mut front, _daemon, h) = run(SHORT_FIRST);
        front.write_all(&[1, 0, 0]).unwrap();
        assert!(matches!(h.join().unwrap(), End::Silent(_)));
    }

    #[test]
    fn an_oversized_header_is_refused() {
        let (mut front, _daemon, h) = run(LONG);
        front.write_all(&header(1, 0x10_0000)).unwrap();
        assert!(matches!(h.join().unwrap(), End::Oversized(0x10_0000)));
    }

    #[test]
    fn counters_name_each_end() {
        let c = Counters::default();
        c.accepted();
        c.ended(&End::Silent(Duration::ZERO));
        c.ended(&End::Oversized(1));
        c.ended(&End::FrontEndClosed);
        let s = c.snapshot();
        assert_eq!(
            (s.connections, s.silent, s.stalled, s.malformed, s.io_errors),
            (1, 1, 0, 1, 0)
        );
    }
}
