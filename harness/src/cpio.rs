//! Deterministic newc ("070701") cpio archives for the guest initramfs.
//!
//! Entries are sorted by path, owned by 0:0, have mtime 0 and inode numbers
//! given by their position, so the same content always gives the same bytes.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// Character device (major, minor).
    CharDev(u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    /// Permission bits only (e.g. 0o755).
    perm: u32,
}

/// An in-memory archive. Paths are relative ("bin/busybox"), no leading '/'.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

fn normalize(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, path: &str, kind: Kind, perm: u32) {
        let path = normalize(path);
        // Create parent directories implicitly.
        let mut parent = String::new();
        for comp in path
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            self.entries.entry(parent.clone()).or_insert(Entry {
                kind: Kind::Dir,
                perm: 0o755,
            });
        }
        self.entries.insert(path, Entry { kind, perm });
    }

    pub fn dir(&mut self, path: &str) {
        self.add(path, Kind::Dir, 0o755);
    }

    pub fn file(&mut self, path: &str, data: Vec<u8>, perm: u32) {
        self.add(path, Kind::File(data), perm);
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.add(path, Kind::Symlink(target.to_string()), 0o777);
    }

    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32, perm: u32) {
        self.add(path, Kind::CharDev(major, minor), perm);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Hash of the complete content (paths, kinds, modes, data): the cache key.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        for (path, e) in &self.entries {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(e.perm.to_le_bytes());
            match &e.kind {
                Kind::Dir => h.update(b"d"),
                Kind::File(d) => {
                    h.update(b"f");
                    h.update((d.len() as u64).to_le_bytes());
                    h.update(d);
                }
                Kind::Symlink(t) => {
                    h.update(b"l");
                    h.update(t.as_bytes());
                    h.update([0]);
                }
                Kind::CharDev(a, b) => {
                    h.update(b"c");
                    h.update(a.to_le_bytes());
                    h.update(b.to_le_bytes());
                }
            }
        }
        hex(&h.finalize())
    }

    /// The uncompressed newc archive.
    pub fn to_cpio(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (path, e)) in self.entries.iter().enumerate() {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match &e.kind {
                Kind::Dir => (0o040000 | e.perm, &[], (0, 0)),
                Kind::File(d) => (0o100000 | e.perm, d, (0, 0)),
                Kind::Symlink(t) => (0o120000 | e.perm, t.as_bytes(), (0, 0)),
                Kind::CharDev(a, b) => (0o020000 | e.perm, &[], (*a, *b)),
            };
            let nlink = if matches!(e.kind, Kind::Dir) { 2 } else { 1 };
            write_entry(&mut out, (i + 1) as u32, mode, nlink, rdev, path, data);
        }
        write_entry(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
        out
    }

    /// The gzip-compressed archive (fixed gzip header: no name, mtime 0).
    pub fn to_cpio_gz(&self) -> std::io::Result<Vec<u8>> {
        let mut enc = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(3)
            .write(Vec::new(), flate2::Compression::default());
        enc.write_all(&self.to_cpio())?;
        enc.finish()
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn write_entry(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Archive {
        let mut a = Archive::new();
        a.file("init", b"#!/bin/sh\n".to_vec(), 0o755);
        a.file("bin/busybox", vec![1, 2, 3], 0o755);
        a.symlink("bin/sh", "busybox");
        a.char_dev("dev/console", 5, 1, 0o600);
        a
    }

    /// Minimal newc reader used to check the format.
    fn read(cpio: &[u8]) -> Vec<(String, u32, Vec<u8>, u32, u32, u32)> {
        let mut out = Vec::new();
        let mut off = 0;
        loop {
            assert_eq!(&cpio[off..off + 6], b"070701", "magic at {off}");
            let field = |i: usize| {
                let s = std::str::from_utf8(&cpio[off + 6 + i * 8..off + 14 + i * 8]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (ino, mode, mtime, size, namesize) =
                (field(0), field(1), field(5), field(6), field(11));
            let (rmaj, rmin) = (field(9), field(10));
            let name_start = off + 110;
            let name =
                String::from_utf8(cpio[name_start..name_start + namesize as usize - 1].to_vec())
                    .unwrap();
            assert_eq!(cpio[name_start + namesize as usize - 1], 0);
            let data_start = (name_start + namesize as usize).div_ceil(4) * 4;
            let data = cpio[data_start..data_start + size as usize].to_vec();
            off = (data_start + size as usize).div_ceil(4) * 4;
            assert_eq!(mtime, 0);
            if name == "TRAILER!!!" {
                assert_eq!(off, cpio.len());
                return out;
            }
            out.push((name, mode, data, ino, rmaj, rmin));
        }
    }

    #[test]
    fn format_and_order() {
        let entries = read(&sample().to_cpio());
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            vec!["bin", "bin/busybox", "bin/sh", "dev", "dev/console", "init"]
        );
        let by = |n: &str| entries.iter().find(|e| e.0 == n).unwrap().clone();
        assert_eq!(by("bin").1, 0o040755);
        assert_eq!(by("bin/busybox").2, vec![1, 2, 3]);
        assert_eq!(by("bin/sh").1, 0o120777);
        assert_eq!(by("bin/sh").2, b"busybox".to_vec());
        let con = by("dev/console");
        assert_eq!((con.1, con.4, con.5), (0o020600, 5, 1));
        let inos: Vec<u32> = entries.iter().map(|e| e.3).collect();
        assert_eq!(inos, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn deterministic_regardless_of_insertion_order() {
        let mut b = Archive::new();
        b.char_dev("/dev/console", 5, 1, 0o600);
        b.symlink("bin/sh", "busybox");
        b.file("bin/busybox", vec![1, 2, 3], 0o755);
        b.file("/init", b"#!/bin/sh\n".to_vec(), 0o755);
        let a = sample();
        assert_eq!(a.to_cpio(), b.to_cpio());
        assert_eq!(a.to_cpio_gz().unwrap(), b.to_cpio_gz().unwrap());
        assert_eq!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn content_change_changes_hash() {
        let a = sample();
        let mut b = sample();
        b.file("init", b"#!/bin/sh\necho\n".to_vec(), 0o755);
        assert_ne!(a.content_hash(), b.content_hash());
        let mut c = sample();
        c.file("init", b"#!/bin/sh\n".to_vec(), 0o644);
        assert_ne!(a.content_hash(), c.content_hash());
    }

    #[test]
    fn gzip_roundtrip() {
        use std::io::Read;
        let a = sample();
        let gz = a.to_cpio_gz().unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip mtime must be 0");
        let mut dec = flate2::read::GzDecoder::new(&gz[..]);
        let mut raw = Vec::new();
        dec.read_to_end(&mut raw).unwrap();
        assert_eq!(raw, a.to_cpio());
    }
}
