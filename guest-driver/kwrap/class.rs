// SPDX-License-Identifier: GPL-2.0

//! A device class (`class_register`) whose devices get their attributes from the class's
//! attribute group (`dev_groups`) and their uevent variables from `dev_uevent`, and class
//! devices (`device_create_with_groups` / `device_unregister`) under a bound parent, each
//! backed by a Rust object.
//!
//! The class lives from [`Global::register`] (module init) until its [`ClassReg`] is dropped
//! (module exit, after the driver, so after every [`ClassDevice`]).

use core::{
    fmt,
    marker::PhantomData,
    ptr::{null, null_mut, NonNull},
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{
    bindings,
    device::{Bound, Device},
    page::PAGE_SIZE,
    prelude::*,
    str::CString,
    sync::{aref::ARef, Arc},
    types::Opaque,
};

use super::sysfs::{page_show, page_store, AttrDef, AttrOps, SysfsBuf};

/// What a class device shows beyond its attributes.
pub(crate) trait ClassOps: AttrOps {
    /// `KEY=value` variables of every uevent of the device (ADD, CHANGE, REMOVE) and of its
    /// `uevent` file.
    fn uevent(&self, env: &mut UeventEnv<'_>) -> Result;
}

/// The environment of a uevent being built.
pub(crate) struct UeventEnv<'a> {
    env: NonNull<bindings::kobj_uevent_env>,
    _env: PhantomData<&'a mut bindings::kobj_uevent_env>,
}

impl UeventEnv<'_> {
    /// Adds one `KEY=value` variable.
    pub(crate) fn add(&mut self, var: fmt::Arguments<'_>) -> Result {
        let v = CString::try_from_fmt(var)?;
        // SAFETY: `env` is the live environment the kernel passed to `dev_uevent`; "%s" with a
        // NUL-terminated string argument; the kernel copies it.
        let r = unsafe { bindings::add_uevent_var(self.env.as_ptr(), c"%s".as_char_ptr(), v.as_char_ptr()) };
        kernel::error::to_result(r)
    }
}

/// An attribute of the class itself (`/sys/class/<name>/<attr>`, read-only): module-wide.
pub(crate) struct ClassAttrDef {
    pub(crate) name: &'static CStr,
    pub(crate) show: fn(&mut SysfsBuf<'_>) -> fmt::Result,
}

#[repr(C)]
struct CAttr {
    attr: bindings::class_attribute,
    show: fn(&mut SysfsBuf<'_>) -> fmt::Result,
}

#[repr(C)]
struct Attr {
    attr: bindings::device_attribute,
    id: usize,
}

/// The registered `struct class`, its attributes and their group, at stable heap addresses.
///
/// # Invariants
///
/// After [`Global::register`], `class.dev_groups` points to `groups`, `groups[0]` to `group`,
/// `group.attrs` to `ptrs` (NULL-terminated), and each `ptrs[i]` to `attrs[i].attr.attr`; the
/// same for `class_groups` and the `class_*` fields; none of them moves or is reallocated until
/// the class is unregistered.
struct Inner<T> {
    class: Opaque<bindings::class>,
    attrs: KVec<Attr>,
    ptrs: KVec<*mut bindings::attribute>,
    group: Opaque<bindings::attribute_group>,
    groups: [*const bindings::attribute_group; 2],
    class_attrs: KVec<CAttr>,
    class_ptrs: KVec<*mut bindings::attribute>,
    class_group: Opaque<bindings::attribute_group>,
    class_groups: [*const bindings::attribute_group; 2],
    _owner: PhantomData<T>,
}

/// The class of a module, reachable from probe: a `static` of the driver.
pub(crate) struct Global<T: ClassOps>(AtomicPtr<Inner<T>>);

// SAFETY: the pointer is only dereferenced while the class is registered (see `ClassReg`), and the
// class's callbacks use `T: Sync` owners.
unsafe impl<T: ClassOps> Sync for Global<T> {}

/// Owns the registration; unregisters the class on drop.
pub(crate) struct ClassReg<T: ClassOps> {
    global: &'static Global<T>,
    inner: KBox<Inner<T>>,
}

// SAFETY: the class is a kernel object usable from any thread; `T: Send + Sync`.
unsafe impl<T: ClassOps> Send for ClassReg<T> {}
// SAFETY: as above.
unsafe impl<T: ClassOps> Sync for ClassReg<T> {}

/// The owner behind a class device: its drvdata.
///
/// # Safety
///
/// `dev` is a device of a class registered by [`Global::register`] for `T`, created by
/// [`Global::add_device`], whose owner outlives it (see [`ClassDevice`]).
unsafe fn owner<'a, T>(dev: *const bindings::device) -> Option<&'a T> {
    // SAFETY: `dev` is live (caller); `driver_data` is what `add_device` passed as drvdata, or
    // NULL once its `ClassDevice` is being dropped.
    let p = unsafe { core::ptr::read_volatile(&raw const (*dev).driver_data) }.cast::<T>();
    // SAFETY: non-NULL drvdata is `Arc::as_ptr` of the owner, alive while the device exists.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// sysfs `show` of a class attribute.
///
/// # Safety
///
/// Only called by sysfs for an attribute of a class registered for `T`.
unsafe extern "C" fn show_cb<T: ClassOps>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: `attr` is the `attr` field of one of the class's `Attr`s.
    let a = unsafe { &*kernel::container_of!(attr, Attr, attr) };
    // SAFETY: `dev` is one of the class's devices (the attribute is in its `dev_groups`).
    let Some(o) = (unsafe { owner::<T>(dev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: sysfs hands `show` a zeroed, writable page.
    let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), PAGE_SIZE) };
    page_show(o, a.id, page)
}

/// sysfs `store` of a class attribute.
///
/// # Safety
///
/// As [`show_cb`].
unsafe extern "C" fn store_cb<T: ClassOps>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: as in `show_cb`.
    let a = unsafe { &*kernel::container_of!(attr, Attr, attr) };
    // SAFETY: as in `show_cb`.
    let Some(o) = (unsafe { owner::<T>(dev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: sysfs passes `count` readable bytes at `buf`.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    page_store(o, a.id, bytes)
}

/// sysfs `show` of a class attribute.
///
/// # Safety
///
/// Only called by sysfs for an attribute in the `class_groups` of a class registered here.
unsafe extern "C" fn class_show_cb(
    _class: *const bindings::class,
    attr: *const bindings::class_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: `attr` is the `attr` field of one of the class's `CAttr`s.
    let a = unsafe { &*kernel::container_of!(attr, CAttr, attr) };
    // SAFETY: sysfs hands `show` a zeroed, writable page.
    let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), PAGE_SIZE) };
    let mut out = SysfsBuf::new(page);
    match (a.show)(&mut out) {
        Ok(()) => out.len() as isize,
        Err(_) => EINVAL.to_errno() as isize,
    }
}

/// `dev_uevent` of the class.
///
/// # Safety
///
/// Only called by the driver core for a device of a class registered for `T`, with a live `env`.
unsafe extern "C" fn uevent_cb<T: ClassOps>(
    dev: *const bindings::device,
    env: *mut bindings::kobj_uevent_env,
) -> c_int {
    // SAFETY: `dev` is one of the class's devices.
    let Some(o) = (unsafe { owner::<T>(dev) }) else {
        return 0;
    };
    let Some(env) = NonNull::new(env) else {
        return EINVAL.to_errno();
    };
    let mut e = UeventEnv { env, _env: PhantomData };
    match o.uevent(&mut e) {
        Ok(()) => 0,
        Err(err) => err.to_errno(),
    }
}

impl<T: ClassOps> Global<T> {
    pub(crate) const fn new() -> Self {
        Self(AtomicPtr::new(null_mut()))
    }

    /// Registers the class `name` (`/sys/class/<name>/`) with the class attributes `class_defs`,
    /// whose devices have one attribute per entry of `defs`.
    pub(crate) fn register(
        &'static self,
        name: &'static CStr,
        defs: &'static [AttrDef],
        class_defs: &'static [ClassAttrDef],
    ) -> Result<ClassReg<T>> {
        let mut attrs = KVec::with_capacity(defs.len(), GFP_KERNEL)?;
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
            attrs.push(Attr { attr, id }, GFP_KERNEL)?;
        }
        let mut class_attrs = KVec::with_capacity(class_defs.len(), GFP_KERNEL)?;
        for d in class_defs {
            let mut attr = bindings::class_attribute::default();
            attr.attr.name = d.name.as_char_ptr();
            attr.attr.mode = 0o444;
            attr.show = Some(class_show_cb);
            class_attrs.push(CAttr { attr, show: d.show }, GFP_KERNEL)?;
        }
        let mut inner = KBox::new(
            Inner {
                class: Opaque::new(bindings::class::default()),
                attrs,
                ptrs: KVec::with_capacity(defs.len() + 1, GFP_KERNEL)?,
                group: Opaque::new(bindings::attribute_group::default()),
                groups: [null(), null()],
                class_attrs,
                class_ptrs: KVec::with_capacity(class_defs.len() + 1, GFP_KERNEL)?,
                class_group: Opaque::new(bindings::attribute_group::default()),
                class_groups: [null(), null()],
                _owner: PhantomData,
            },
            GFP_KERNEL,
        )?;
        let i = &mut *inner;
        for a in i.attrs.iter_mut() {
            i.ptrs.push(&raw mut a.attr.attr, GFP_KERNEL)?;
        }
        i.ptrs.push(null_mut(), GFP_KERNEL)?;
        for a in i.class_attrs.iter_mut() {
            i.class_ptrs.push(&raw mut a.attr.attr, GFP_KERNEL)?;
        }
        i.class_ptrs.push(null_mut(), GFP_KERNEL)?;
        // SAFETY: `group` and `class` are ours and not yet shared with the kernel; every pointer
        // stored points into `inner`'s heap allocation, which stays put (type invariant).
        unsafe {
            (*i.group.get()).__bindgen_anon_2.attrs = i.ptrs.as_mut_ptr();
            i.groups[0] = i.group.get();
            let c = i.class.get();
            (*c).name = name.as_char_ptr();
            (*c).dev_groups = i.groups.as_ptr();
            (*c).dev_uevent = Some(uevent_cb::<T>);
            (*i.class_group.get()).__bindgen_anon_2.attrs = i.class_ptrs.as_mut_ptr();
            i.class_groups[0] = i.class_group.get();
            (*c).class_groups = i.class_groups.as_ptr();
        }
        // SAFETY: `class` is fully initialized and outlives the registration (unregistered in
        // `ClassReg::drop` before `inner` is freed).
        kernel::error::to_result(unsafe { bindings::class_register(i.class.get()) })?;
        self.0.store(core::ptr::from_mut(i), Ordering::Release);
        Ok(ClassReg { global: self, inner })
    }

    /// Creates `/sys/class/<class>/<name>` under `parent` (its `device` link), backed by
    /// `owner` until the returned device is dropped.
    pub(crate) fn add_device(&self, parent: &Device<Bound>, owner: Arc<T>, name: fmt::Arguments<'_>) -> Result<ClassDevice<T>> {
        let inner = self.0.load(Ordering::Acquire);
        if inner.is_null() {
            return Err(ENODEV);
        }
        let name = CString::try_from_fmt(name)?;
        let parent: &Device = parent;
        // `kernel::device::Device` is `repr(transparent)` over `Opaque<bindings::device>`.
        let raw_parent = core::ptr::from_ref(parent).cast::<bindings::device>().cast_mut();
        // SAFETY: the class is registered while `self` points to it (module init to exit, and
        // class devices exist only while the driver is bound); `raw_parent` is a live, bound
        // device; drvdata is the owner, kept alive by the returned `ClassDevice` until after
        // `device_unregister`; "%s" with a NUL-terminated string.
        let dev = unsafe {
            bindings::device_create_with_groups(
                (*inner).class.get(),
                raw_parent,
                0,
                Arc::as_ptr(&owner).cast_mut().cast(),
                null_mut(),
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        // `device_create_with_groups` returns an ERR_PTR on failure.
        let e = dev as isize;
        if (-4095..0).contains(&e) {
            return Err(Error::from_errno(e as i32));
        }
        let dev = NonNull::new(dev).ok_or(ENOMEM)?;
        Ok(ClassDevice { dev, _owner: owner })
    }
}

impl<T: ClassOps> Drop for ClassReg<T> {
    fn drop(&mut self) {
        self.global.0.store(null_mut(), Ordering::Release);
        // SAFETY: registered in `Global::register`; no class device is left (they are dropped
        // with the driver's devices, before the class).
        unsafe { bindings::class_unregister(self.inner.class.get()) };
    }
}

/// A class device; unregistered on drop.
///
/// # Invariants
///
/// `dev` was created by [`Global::add_device`] with `Arc::as_ptr(&_owner)` as drvdata.
pub(crate) struct ClassDevice<T: ClassOps> {
    dev: NonNull<bindings::device>,
    _owner: Arc<T>,
}

// SAFETY: a `struct device` may be unregistered from any thread; `T: Send + Sync`.
unsafe impl<T: ClassOps> Send for ClassDevice<T> {}
// SAFETY: as above.
unsafe impl<T: ClassOps> Sync for ClassDevice<T> {}

impl<T: ClassOps> ClassDevice<T> {
    /// Another reference to the class device's `struct device`, e.g. to send it a uevent from
    /// a work item. It keeps the memory, not the registration: whoever holds it must stop
    /// using it before this `ClassDevice` is dropped (a uevent on a deleted device is refused).
    pub(crate) fn device(&self) -> ARef<Device> {
        // SAFETY: `self.dev` is a live device this `ClassDevice` holds a reference to (type
        // invariant), so its count is not zero during the call; its release (the class core's
        // `device_create_release`, a kfree) may run on any thread.
        unsafe { Device::get_device(self.dev.as_ptr()) }
    }
}

impl<T: ClassOps> Drop for ClassDevice<T> {
    fn drop(&mut self) {
        let dev = self.dev.as_ptr();
        // SAFETY: created by `add_device` (type invariant). `device_del` sends REMOVE (with the
        // owner's variables) and removes the files, waiting for running `show`/`store` calls;
        // a `uevent` later, through a reference someone else still holds, sees no owner; then
        // our reference goes (`device_unregister` = `device_del` + `put_device`). The owner is
        // dropped after this.
        unsafe {
            bindings::device_del(dev);
            core::ptr::write_volatile(&raw mut (*dev).driver_data, null_mut());
            bindings::put_device(dev);
        }
    }
}
