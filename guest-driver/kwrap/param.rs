// SPDX-License-Identifier: GPL-2.0

//! Module parameters that show in sysfs (`/sys/module/<module>/parameters/<name>`, mode 0444)
//! and in `modinfo`: the `module!` macro of Linux 7.3 registers its parameters with permission
//! 0 ("Will not appear in sysfs") and no `get` operation.
//!
//! [`module_params!`](crate::module_params) declares each parameter as a [`Param`] in
//! `crate::params` (read with `.value()`), and a `kernel_param` in the `__param`
//! section that points the kernel's own `param_ops_uint` / `param_ops_int` / `param_ops_bool`
//! at its storage, so the kernel parses `insmod` arguments into it and formats it for sysfs.

use core::cell::UnsafeCell;
use kernel::{bindings, prelude::*};

/// The C types the kernel's parameter operations read and write.
pub(crate) trait ParamValue: Copy + Send + Sync + 'static {}
impl ParamValue for u32 {}
impl ParamValue for i32 {}
impl ParamValue for bool {}

/// A parameter's storage.
///
/// # Invariants
///
/// Written only by the kernel's parameter parser (`param_ops_*.set`) while the module loads,
/// before its init runs: the sysfs file is read-only (0444), so nothing writes it later.
#[repr(transparent)]
pub(crate) struct Param<T: ParamValue>(UnsafeCell<T>);

// SAFETY: after load the value is only read (type invariant).
unsafe impl<T: ParamValue> Sync for Param<T> {}

impl<T: ParamValue> Param<T> {
    pub(crate) const fn new(default: T) -> Self {
        Self(UnsafeCell::new(default))
    }

    /// The value given at load time, or the default.
    pub(crate) fn value(&self) -> T {
        // SAFETY: no writer after load (type invariant); `T` is a plain value.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }

    /// The storage the kernel's `param_ops_*` read and write (`kernel_param.arg`).
    pub(crate) const fn arg(&self) -> *mut c_void {
        self.0.get().cast()
    }
}

/// A `kernel_param` (the `__param` section entry), shareable as a `static`.
#[repr(transparent)]
pub(crate) struct KernelParam(pub(crate) bindings::kernel_param);

// SAFETY: the kernel only reads the entry (and the storage it points to follows `Param`'s rules).
unsafe impl Sync for KernelParam {}

/// `len` bytes of `s`, for `.modinfo` entries sized at compile time.
pub(crate) const fn bytes<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N && i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// Declares the module's parameters:
///
/// ```ignore
/// module_params! {
///     default_mech: u32 = 1, uint, "Bottom half ...";
/// }
/// ```
///
/// `uint` / `int` / `bool` name the kernel's `param_ops_*` for the type (`u32`, `i32`, `bool`).
#[macro_export]
macro_rules! module_params {
    ($($name:ident: $ty:ty = $default:expr, $kind:ident, $desc:literal;)*) => {
        /// The module's parameters (`/sys/module/irqstorm/parameters/`, read-only).
        #[allow(non_upper_case_globals)]
        pub(crate) mod params {
            $(
                pub(crate) static $name: $crate::kwrap::param::Param<$ty> =
                    $crate::kwrap::param::Param::new($default);
            )*
        }
        // `used(compiler)` as the `module!` macro: `used` (SHF_GNU_RETAIN) would put each entry in
        // a `.modinfo` section of its own, and modpost reads only one of them.
        $(
            const _: () = {
                const NAME: &str = concat!(stringify!($name), "\0");
                #[link_section = "__param"]
                #[used(compiler)]
                static ENTRY: $crate::kwrap::param::KernelParam = $crate::kwrap::param::KernelParam(
                    ::kernel::bindings::kernel_param {
                        name: NAME.as_ptr().cast(),
                        // The module's own `struct module`, alive while its parameters exist
                        // (only its address is taken).
                        mod_: &raw mut ::kernel::bindings::__this_module,
                        ops: &raw const $crate::kwrap::param::ops::$kind,
                        perm: 0o444,
                        level: -1,
                        flags: 0,
                        __bindgen_anon_1: ::kernel::bindings::kernel_param__bindgen_ty_1 {
                            arg: params::$name.arg(),
                        },
                    },
                );
                const PARM: &str = concat!("parm=", stringify!($name), ":", $desc, "\0");
                #[link_section = ".modinfo"]
                #[used(compiler)]
                static PARM_INFO: [u8; PARM.len()] = $crate::kwrap::param::bytes(PARM);
                const TYPE: &str = concat!("parmtype=", stringify!($name), ":", stringify!($kind), "\0");
                #[link_section = ".modinfo"]
                #[used(compiler)]
                static TYPE_INFO: [u8; TYPE.len()] = $crate::kwrap::param::bytes(TYPE);
            };
        )*
    };
}

/// The kernel's parameter operations, by the name `module_params!` takes.
pub(crate) mod ops {
    pub(crate) use kernel::bindings::{
        param_ops_bool as bool, param_ops_int as int, param_ops_uint as uint,
    };
}
