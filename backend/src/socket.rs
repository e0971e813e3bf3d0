// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Owner-only Unix sockets, whatever the umask.
//!
//! `bind(2)` creates the socket file with mode `0777 & ~umask`, and a chmod
//! afterwards leaves a window in which another local user can connect. So the
//! socket is bound inside a fresh directory of mode 0700 (nobody else can
//! reach anything in it), set to 0600 there, and only then renamed onto its
//! final path: it appears there already owner-only.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error as ThisError;

/// Mode of every socket this back end listens on.
pub const SOCKET_MODE: u32 = 0o600;

/// Errors creating a listening socket.
#[derive(Debug, ThisError)]
pub enum Error {
    /// A file that is not a socket is in the way (never removed).
    #[error("{0}: exists and is not a socket")]
    NotSocket(PathBuf),
    /// The path has no file name or no parent directory.
    #[error("{0}: not a socket path")]
    BadPath(PathBuf),
    /// A step of the bind failed.
    #[error("{path}: {step}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Binds a listening Unix socket at `path` with mode [`SOCKET_MODE`]; a stale
/// socket there is replaced, any other file is an error.
pub fn bind_owner_only(path: &Path) -> Result<UnixListener, Error> {
    let io_err = |step| {
        move |source| Error::Io {
            path: path.to_path_buf(),
            step,
            source,
        }
    };
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if !md.file_type().is_socket() {
            return Err(Error::NotSocket(path.to_path_buf()));
        }
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::BadPath(path.to_path_buf()));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let private = dir.join(format!(
        ".{}.bind-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        next_bind_id()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_err("create private directory"))?;
    let staged = private.join("s");
    let result = UnixListener::bind(&staged)
        .map_err(io_err("bind"))
        .and_then(|l| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(SOCKET_MODE))
                .map_err(io_err("chmod"))?;
            // rename(2) replaces a stale socket atomically.
            std::fs::rename(&staged, path).map_err(io_err("rename into place"))?;
            Ok(l)
        });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    result
}

/// A listener with one connection already queued on it, and that
/// connection's other end. Nobody else can reach the listener: it is bound
/// in a fresh 0700 directory under the system temporary directory, and the
/// socket file and the directory are removed again before this returns (a
/// listener keeps working once its path is gone).
pub fn private_listener_with_peer() -> Result<(UnixListener, UnixStream), Error> {
    let private = std::env::temp_dir().join(format!(
        ".irqstorm-relay-{}-{}",
        std::process::id(),
        next_bind_id()
    ));
    let path = private.join("s");
    let io_err = |step| {
        let path = path.clone();
        move |source| Error::Io { path, step, source }
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_err("create private directory"))?;
    let result = UnixListener::bind(&path)
        .map_err(io_err("bind"))
        .and_then(|l| Ok((UnixStream::connect(&path).map_err(io_err("connect"))?, l)));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&private);
    result.map(|(peer, l)| (l, peer))
}

/// A process-wide counter, so concurrent binds never share a directory.
fn next_bind_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("irqstorm-sock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn socket_is_owner_only_and_reachable() {
        let d = tmp("mode");
        let p = d.join("a.sock");
        let l = bind_owner_only(&p).unwrap();
        let md = std::fs::symlink_metadata(&p).unwrap();
        assert!(md.file_type().is_socket());
        assert_eq!(md.permissions().mode() & 0o777, SOCKET_MODE);
        let _c = UnixStream::connect(&p).unwrap();
        l.accept().unwrap();
        // Nothing left behind but the socket.
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.sock")]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn stale_socket_replaced_other_file_refused() {
        let d = tmp("stale");
        let p = d.join("a.sock");
        drop(bind_owner_only(&p).unwrap());
        let _l = bind_owner_only(&p).unwrap();
        UnixStream::connect(&p).unwrap();
        let f = d.join("file");
        std::fs::write(&f, b"keep").unwrap();
        assert!(matches!(bind_owner_only(&f), Err(Error::NotSocket(_))));
        assert_eq!(std::fs::read(&f).unwrap(), b"keep");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn private_listener_has_its_peer_queued_and_leaves_nothing_behind() {
        use std::io::{Read, Write};
        let (l, mut peer) = private_listener_with_peer().unwrap();
        let (mut accepted, _) = l.accept().unwrap();
        peer.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        accepted.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
        let leftovers = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!(".irqstorm-relay-{}-", std::process::id()))
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
