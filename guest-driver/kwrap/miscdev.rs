// SPDX-License-Identifier: GPL-2.0

//! A misc character device whose files can be polled: `kernel::miscdevice` (open, read,
//! write, ioctl, release) plus the `poll` file operation it lacks in 7.3.
//!
//! [`MiscReg`] registers the device with the kernel's own miscdevice file operations for an
//! adapter type and `poll` added, and hands [`CharDev::open`] the data it was registered with
//! (for the driver: its device state). Callers implement [`CharDev`] and need no `unsafe`.

use core::marker::PhantomData;
use kernel::{
    bindings,
    error::to_result,
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::poll::PollTable,
    types::{ForeignOwnable, Opaque},
};

/// The file operations of a misc device; `Self` is the private data of an open file.
pub(crate) trait CharDev: Sized + Send + Sync + 'static {
    /// What the device was registered with, lent to every `open`.
    type Data: Send + Sync;
    fn open(data: &Self::Data, file: &File) -> Result<Pin<KBox<Self>>>;
    fn read(this: Pin<&Self>, out: &mut IovIterDest<'_>) -> Result<usize>;
    fn write(this: Pin<&Self>, src: &mut IovIterSource<'_>) -> Result<usize>;
    /// The `EPOLL*` mask now, after registering `table` on the wait queues a change would be
    /// notified on.
    fn poll(this: Pin<&Self>, file: &File, table: &PollTable<'_>) -> u32;
    fn ioctl(this: Pin<&Self>, cmd: u32, arg: usize) -> Result<isize>;
    /// The last close of the file.
    fn release(this: Pin<KBox<Self>>);
}

/// The kernel's `MiscDevice` for a [`CharDev`]; only [`MiscReg`] registers it.
struct Adapter<T>(PhantomData<T>);

#[vtable]
impl<T: CharDev> MiscDevice for Adapter<T> {
    type Ptr = Pin<KBox<T>>;

    fn open(file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Self::Ptr> {
        let raw = core::ptr::from_ref(misc).cast::<MiscReg<T>>();
        // SAFETY: `Adapter<T>` is private to this module and its file operations are only
        // registered by `MiscReg::<T>::register`, whose `struct miscdevice` is the first field
        // of a `repr(C)` `MiscReg<T>`; `misc_open` passed that `struct miscdevice` (the kernel's
        // open casts it to the `repr(transparent)` `MiscDeviceRegistration`), and keeps it
        // registered, hence alive, during the call.
        let reg = unsafe { &*raw };
        T::open(&reg.data, file)
    }

    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        T::read(kiocb.file(), iov)
    }

    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        T::write(kiocb.file(), iov)
    }

    fn ioctl(this: Pin<&T>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        T::ioctl(this, cmd, arg)
    }

    fn release(this: Self::Ptr, _file: &File) {
        T::release(this)
    }
}

/// `poll` for an open file of `MiscReg<T>`.
///
/// # Safety
///
/// `file` is an open file of a device registered by `MiscReg::<T>::register` (its private data
/// is the `Pin<KBox<T>>` the kernel's open stored), and `table` a valid `poll_table` or null,
/// both for the duration of the call (the VFS's `vfs_poll` contract).
unsafe extern "C" fn poll<T: CharDev>(file: *mut bindings::file, table: *mut bindings::poll_table_struct) -> bindings::__poll_t {
    // SAFETY: the caller's contract: the private data is a `Pin<KBox<T>>` owned by the file
    // until `release`, which cannot run while a `poll` of the file is in progress.
    let this = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*file).private_data) };
    // SAFETY: `file` is valid for the call; `poll` holds no `fdget_pos` region.
    let f = unsafe { File::from_raw_file(file) };
    // SAFETY: `table` is null or valid for the call.
    let table = unsafe { PollTable::from_raw(table) };
    T::poll(this, f, &table)
}

/// The kernel's miscdevice file operations for `Adapter<T>`, with `poll` added.
struct Fops<T>(PhantomData<T>);

impl<T: CharDev> Fops<T> {
    const FOPS: bindings::file_operations = {
        let raw = MiscDeviceOptions { name: c"irqstorm" }.into_raw::<Adapter<T>>();
        // SAFETY: `into_raw` points `fops` at the kernel's constant vtable for `Adapter<T>`,
        // a `'static` value read here at compile time.
        let mut f = unsafe { *raw.fops };
        f.poll = Some(poll::<T>);
        f
    };
}

/// A registered misc device `/dev/NAME` whose open files are `T`.
///
/// # Invariants
///
/// `misc` holds a `struct miscdevice` registered with `misc_register` (and `Fops::<T>::FOPS`)
/// until drop; `data` is initialised before registration and outlives it.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct MiscReg<T: CharDev> {
    /// First field: the kernel's open finds the registration from it.
    #[pin]
    misc: Opaque<bindings::miscdevice>,
    data: T::Data,
}

// SAFETY: `misc` is only touched by `misc_register` / `misc_deregister` (callable from any
// thread); `data` is `Send + Sync`.
unsafe impl<T: CharDev> Send for MiscReg<T> {}
// SAFETY: as above; `&self` gives access to nothing but `data`.
unsafe impl<T: CharDev> Sync for MiscReg<T> {}

impl<T: CharDev> MiscReg<T> {
    /// Registers `/dev/NAME` (dynamic minor) with `data`.
    pub(crate) fn register(name: &'static CStr, data: T::Data) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            // Listed first: initialised before the device node can be opened.
            data,
            misc <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                let mut m: bindings::miscdevice = pin_init::zeroed();
                m.minor = bindings::MISC_DYNAMIC_MINOR as kernel::ffi::c_int;
                m.name = name.as_char_ptr();
                m.fops = &Fops::<T>::FOPS;
                // SAFETY: `slot` is ours to write; the memory is pinned and `drop` deregisters
                // before it is freed.
                unsafe { slot.write(m) };
                // SAFETY: `slot` holds an initialised miscdevice with a static name and fops.
                to_result(unsafe { bindings::misc_register(slot) })
            }),
        }? Error)
    }
}

#[pinned_drop]
impl<T: CharDev> PinnedDrop for MiscReg<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered by the type invariant; deregistered once, here.
        unsafe { bindings::misc_deregister(self.misc.get()) };
    }
}
