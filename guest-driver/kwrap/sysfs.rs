// SPDX-License-Identifier: GPL-2.0

//! Device attributes (`device_create_file` / `device_remove_file`) backed by a Rust object.

use core::fmt;
use kernel::{
    bindings,
    device::{Bound, Device},
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc},
};

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

#[repr(C)]
struct Slot<T> {
    attr: bindings::device_attribute,
    owner: *const T,
    id: usize,
}

/// Attributes created on a device; removed on drop.
///
/// # Invariants
///
/// `slots` is not reallocated after the files were created; each `slot.owner` is
/// `Arc::as_ptr(&owner)`, kept alive by `owner` until the files are removed in `drop`.
pub(crate) struct DevAttrs<T: AttrOps> {
    dev: ARef<Device>,
    _owner: Arc<T>,
    slots: KVec<Slot<T>>,
    created: usize,
}

// SAFETY: the raw pointers in `slots` point to `T: Sync` kept alive by `_owner`.
unsafe impl<T: AttrOps> Send for DevAttrs<T> {}
// SAFETY: as above.
unsafe impl<T: AttrOps> Sync for DevAttrs<T> {}

fn raw_dev(dev: &Device) -> *mut bindings::device {
    // `kernel::device::Device` is `repr(transparent)` over `Opaque<bindings::device>`.
    core::ptr::from_ref(dev).cast::<bindings::device>().cast_mut()
}

/// sysfs `show`.
///
/// # Safety
///
/// Only called by sysfs for an attribute registered by [`DevAttrs::new`].
unsafe extern "C" fn show_cb<T: AttrOps>(
    _dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: `attr` is the `attr` field of one of our `Slot<T>` (registered in `new`).
    let slot = unsafe { &*kernel::container_of!(attr, Slot<T>, attr) };
    // SAFETY: sysfs hands `show` a zeroed, writable page.
    let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), PAGE_SIZE) };
    let mut out = SysfsBuf { buf: page, len: 0 };
    // SAFETY: by the type invariant the owner is alive while the file exists.
    let owner = unsafe { &*slot.owner };
    match owner.show(slot.id, &mut out) {
        Ok(()) => out.len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// sysfs `store`.
///
/// # Safety
///
/// Only called by sysfs for an attribute registered by [`DevAttrs::new`].
unsafe extern "C" fn store_cb<T: AttrOps>(
    _dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: as in `show_cb`.
    let slot = unsafe { &*kernel::container_of!(attr, Slot<T>, attr) };
    // SAFETY: sysfs passes `count` readable bytes at `buf`.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    let Ok(s) = core::str::from_utf8(bytes) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: by the type invariant the owner is alive while the file exists.
    let owner = unsafe { &*slot.owner };
    match owner.store(slot.id, s.trim()) {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

impl<T: AttrOps> DevAttrs<T> {
    /// Creates one sysfs file per entry of `defs` in `dev`'s directory.
    pub(crate) fn new(dev: &Device<Bound>, owner: Arc<T>, defs: &'static [AttrDef]) -> Result<Self> {
        let mut slots = KVec::with_capacity(defs.len(), GFP_KERNEL)?;
        for (id, d) in defs.iter().enumerate() {
            let mut attr = bindings::device_attribute::default();
            attr.attr.name = d.name.as_char_ptr();
            attr.attr.mode = d.mode;
            if d.mode & 0o444 != 0 {
                attr.__bindgen_anon_1.show = Some(show_cb::<T>);
            }
            if d.mode & 0o222 != 0 {
                attr.__bindgen_anon_2.store = Some(store_cb::<T>);
            }
            slots.push(Slot { attr, owner: Arc::as_ptr(&owner), id }, GFP_KERNEL)?;
        }
        let dev: &Device = dev;
        let mut this = Self { dev: dev.into(), _owner: owner, slots, created: 0 };
        for i in 0..this.slots.len() {
            // SAFETY: `raw_dev` is a live device; the attribute lives in `slots`, which is not
            // reallocated and outlives the file (removed in `drop`).
            let ret = unsafe { bindings::device_create_file(raw_dev(&this.dev), &this.slots[i].attr) };
            kernel::error::to_result(ret)?;
            this.created = i + 1;
        }
        Ok(this)
    }
}

impl<T: AttrOps> Drop for DevAttrs<T> {
    fn drop(&mut self) {
        for i in 0..self.created {
            // SAFETY: this file was created by `new` on the same device with the same attribute;
            // removal waits for running callbacks.
            unsafe { bindings::device_remove_file(raw_dev(&self.dev), &self.slots[i].attr) };
        }
    }
}
