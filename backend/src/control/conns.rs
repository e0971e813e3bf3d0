// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The control socket's connection table and request-line reading.
//!
//! The table is bounded, yet a new client always gets in: when it is full,
//! the least useful connection is shut down to make room. That is one that
//! never completed a request, else one stuck in the middle of a line, else
//! the one idle longest (oldest first within each), so clients that trickle
//! bytes or sit silent cannot lock a legitimate one out. A request line must
//! also be complete within [`LINE_TIMEOUT`] of its first byte.

use std::io::{self, BufRead, BufReader};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use irqstorm_protocol::control::MAX_LINE;

/// How long a connection may wait before sending a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long one request line may take from its first byte to its newline.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a connection is in its request/reply cycle.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Connected, no request completed and none started.
    Fresh,
    /// A line has begun (at this time) and is not complete.
    InLine(Instant),
    /// The last request completed at this time; nothing pending.
    Idle(Instant),
}

/// One admitted connection.
#[derive(Debug)]
pub struct Conn {
    /// A handle on the socket, to shut it down when evicted.
    stream: UnixStream,
    opened: Instant,
    /// Whether any request completed (a fresh line after one is not `Fresh`).
    phase: Mutex<(Phase, bool)>,
}

impl Conn {
    fn phase(&self) -> MutexGuard<'_, (Phase, bool)> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first byte of a request line arrived.
    pub fn line_started(&self) {
        self.phase().0 = Phase::InLine(Instant::now());
    }

    /// A request was answered.
    pub fn line_done(&self) {
        *self.phase() = (Phase::Idle(Instant::now()), true);
    }

    /// Smaller goes first: never served, then mid-line, then idle; oldest first.
    fn eviction_key(&self) -> (u8, Instant) {
        match *self.phase() {
            (Phase::Fresh, _) | (Phase::InLine(_), false) => (0, self.opened),
            (Phase::InLine(t), true) => (1, t),
            (Phase::Idle(t), _) => (2, t),
        }
    }
}

/// The bounded set of live connections.
#[derive(Debug)]
pub struct ConnTable {
    max: usize,
    conns: Mutex<Vec<Arc<Conn>>>,
}

impl ConnTable {
    /// A table of at most `max` connections (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            conns: Mutex::new(Vec::new()),
        }
    }

    fn conns(&self) -> MutexGuard<'_, Vec<Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits `stream`; when the table is full the least useful connection
    /// is shut down and removed first. Returns the new entry and whether a
    /// connection was evicted.
    pub fn admit(&self, stream: &UnixStream) -> io::Result<(Arc<Conn>, bool)> {
        let conn = Arc::new(Conn {
            stream: stream.try_clone()?,
            opened: Instant::now(),
            phase: Mutex::new((Phase::Fresh, false)),
        });
        let mut conns = self.conns();
        let mut evicted = false;
        while conns.len() >= self.max {
            let Some(i) = (0..conns.len()).min_by_key(|&i| conns[i].eviction_key()) else {
                break;
            };
            let victim = conns.swap_remove(i);
            // Its thread sees end-of-file or an error and ends.
            let _ = victim.stream.shutdown(Shutdown::Both);
            evicted = true;
        }
        conns.push(conn.clone());
        Ok((conn, evicted))
    }

    /// Forgets `conn` (its thread ended).
    pub fn remove(&self, conn: &Arc<Conn>) {
        self.conns().retain(|c| !Arc::ptr_eq(c, conn));
    }
}

/// One request line, or why there is none.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line (with its newline, or cut by end-of-file).
    Data(Vec<u8>),
    /// Longer than [`MAX_LINE`].
    TooLong,
    /// Not complete within [`LINE_TIMEOUT`] of its first byte.
    TooSlow,
    /// The peer closed (or nothing came within [`IDLE_TIMEOUT`]).
    Eof,
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads one request line: waits up to `idle` for its first byte, then up to
/// `line_timeout` in all for the rest, whatever the pace of the bytes.
pub fn read_line(
    r: &mut BufReader<UnixStream>,
    conn: &Conn,
    idle: Duration,
    line_timeout: Duration,
) -> io::Result<Line> {
    r.get_ref().set_read_timeout(Some(idle))?;
    match r.fill_buf() {
        Ok([]) => return Ok(Line::Eof),
        Ok(_) => {}
        Err(e) if timed_out(&e) => return Ok(Line::Eof),
        Err(e) => return Err(e),
    }
    conn.line_started();
    let deadline = Instant::now() + line_timeout;
    let mut buf = Vec::new();
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if timed_out(&e) => return Ok(Line::TooSlow),
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            // A line without newline is still a request if it ended at EOF.
            return Ok(Line::Data(buf));
        }
        let (n, complete) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        buf.extend_from_slice(&avail[..n]);
        r.consume(n);
        if buf.len() > MAX_LINE || (!complete && buf.len() >= MAX_LINE) {
            return Ok(Line::TooLong);
        }
        if complete {
            return Ok(Line::Data(buf));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Line::TooSlow);
        }
        r.get_ref().set_read_timeout(Some(left))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pair(table: &ConnTable) -> (UnixStream, UnixStream, Arc<Conn>, bool) {
        let (a, b) = UnixStream::pair().unwrap();
        let (c, ev) = table.admit(&b).unwrap();
        (a, b, c, ev)
    }

    #[test]
    fn full_table_evicts_the_least_useful() {
        let t = ConnTable::new(3);
        let (_a0, _s0, c0, _) = pair(&t);
        let (_a1, s1, c1, _) = pair(&t);
        let (_a2, _s2, c2, _) = pair(&t);
        // c0 and c2 have been served (c2 most recently); c1 never was.
        c0.line_done();
        c2.line_done();
        let (_a3, _s3, _c3, evicted) = pair(&t);
        assert!(evicted);
        assert_eq!(t.conns().len(), 3);
        // The never-served one went, and its socket was shut down.
        let mut b = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &s1, &mut b).unwrap(), 0);
        let left: Vec<_> = t.conns().iter().cloned().collect();
        assert!(left.iter().any(|c| Arc::ptr_eq(c, &c0)));
        assert!(!left.iter().any(|c| Arc::ptr_eq(c, &c1)));
        // Next: the fresh newcomer (never served), before the idle ones.
        let (_a4, _s4, _c4, _) = pair(&t);
        assert!(t.conns().iter().any(|c| Arc::ptr_eq(c, &c2)));
        assert!(t.conns().iter().any(|c| Arc::ptr_eq(c, &c0)));
        // A served connection stuck mid-line goes before an idle one.
        c2.line_started();
        let (_a5, _s5, c5, _) = pair(&t);
        c5.line_done();
        let (_a6, _s6, _c6, _) = pair(&t);
        assert!(!t.conns().iter().any(|c| Arc::ptr_eq(c, &c2)));
        t.remove(&c0);
        assert_eq!(t.conns().len(), 2);
    }

    #[test]
    fn a_trickled_line_times_out_from_its_first_byte() {
        let t = ConnTable::new(1);
        let (mut a, b, c, _) = pair(&t);
        let writer = std::thread::spawn(move || {
            for _ in 0..40 {
                if a.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let mut r = BufReader::new(b);
        let got = read_line(
            &mut r,
            &c,
            Duration::from_secs(5),
            Duration::from_millis(50),
        )
        .unwrap();
        assert_eq!(got, Line::TooSlow);
        drop(r);
        writer.join().unwrap();
    }

    #[test]
    fn lines_too_long_eof_and_complete() {
        let t = ConnTable::new(1);
        let (mut a, b, c, _) = pair(&t);
        a.write_all(b"{\"cmd\":\"info\"}\npartial").unwrap();
        drop(a);
        let mut r = BufReader::new(b);
        let idle = Duration::from_secs(5);
        let got = read_line(&mut r, &c, idle, idle).unwrap();
        assert_eq!(got, Line::Data(b"{\"cmd\":\"info\"}\n".to_vec()));
        assert_eq!(
            read_line(&mut r, &c, idle, idle).unwrap(),
            Line::Data(b"partial".to_vec())
        );
        assert_eq!(read_line(&mut r, &c, idle, idle).unwrap(), Line::Eof);

        let (mut a, b, c, _) = pair(&t);
        let long = vec![b'x'; MAX_LINE + 10];
        let w = std::thread::spawn(move || {
            let _ = a.write_all(&long);
        });
        let mut r = BufReader::new(b);
        assert_eq!(read_line(&mut r, &c, idle, idle).unwrap(), Line::TooLong);
        drop(r);
        w.join().unwrap();
    }
}
