// SPDX-License-Identifier: GPL-2.0

//! Device attributes backed by a Rust object: their definitions, the `show` page and the
//! callbacks' common part (the class's attribute group, `class.rs`, uses them).

use core::fmt;
use kernel::prelude::*;

/// Callbacks of a set of device attributes; `id` is the index in the [`AttrDef`] slice.
pub(crate) trait AttrOps: Send + Sync + 'static {
    fn show(&self, id: usize, out: &mut SysfsBuf<'_>) -> Result;
    fn store(&self, id: usize, input: &str) -> Result;
}

/// One attribute: name and mode (0o444 read-only, 0o644 read-write, 0o200 write-only).
pub(crate) struct AttrDef {
    pub(crate) name: &'static CStr,
    pub(crate) mode: u16,
}

/// The output buffer of a `show` callback (one page).
pub(crate) struct SysfsBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> SysfsBuf<'a> {
    pub(super) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }
}

impl fmt::Write for SysfsBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        // Keep one byte spare, like sysfs_emit.
        let room = self.buf.len().saturating_sub(self.len + 1);
        let n = b.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        if n < b.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// `owner.show(id)` into a sysfs `show` page: the byte count or a negative errno.
pub(super) fn page_show<T: AttrOps>(owner: &T, id: usize, page: &mut [u8]) -> isize {
    let mut out = SysfsBuf { buf: page, len: 0 };
    match owner.show(id, &mut out) {
        Ok(()) => out.len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `owner.store(id)` of a sysfs `store` buffer: `bytes.len()` or a negative errno.
pub(super) fn page_store<T: AttrOps>(owner: &T, id: usize, bytes: &[u8]) -> isize {
    let Ok(s) = core::str::from_utf8(bytes) else {
        return EINVAL.to_errno() as isize;
    };
    match owner.store(id, s.trim()) {
        Ok(()) => bytes.len() as isize,
        Err(e) => e.to_errno() as isize,
    }
}
