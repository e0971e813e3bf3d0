// SPDX-License-Identifier: GPL-2.0

//! `kobject_uevent_env(KOBJ_CHANGE)` and `call_usermodehelper`.

use kernel::{bindings, device::Device, prelude::*};

/// Max number of environment/argument strings accepted.
const MAX_STRS: usize = 8;

fn fill(list: &[&CStr], out: &mut [*mut c_char; MAX_STRS + 1]) -> Result {
    if list.len() > MAX_STRS {
        return Err(EINVAL);
    }
    for (i, s) in list.iter().enumerate() {
        out[i] = s.as_char_ptr().cast_mut();
    }
    out[list.len()] = core::ptr::null_mut();
    Ok(())
}

/// Emits a `KOBJ_CHANGE` uevent on `dev` with the extra `KEY=value` strings in `env`.
/// Process context only.
pub(crate) fn uevent_change(dev: &Device, env: &[&CStr]) -> Result {
    let mut envp = [core::ptr::null_mut(); MAX_STRS + 1];
    fill(env, &mut envp)?;
    // `kernel::device::Device` is `repr(transparent)` over `Opaque<bindings::device>`.
    let raw = core::ptr::from_ref(dev).cast::<bindings::device>().cast_mut();
    // SAFETY: `raw` is the live `struct device` behind `dev`; `envp` is a NULL-terminated array
    // of NUL-terminated strings that outlive the call (the kernel copies them).
    let ret = unsafe {
        bindings::kobject_uevent_env(
            &raw mut (*raw).kobj,
            bindings::kobject_action_KOBJ_CHANGE,
            envp.as_mut_ptr(),
        )
    };
    kernel::error::to_result(ret)
}

/// Runs `path argv...` as a user-mode helper and waits until it was exec'ed (UMH_WAIT_EXEC).
/// Process context only.
pub(crate) fn run_helper(path: &CStr, argv: &[&CStr]) -> Result {
    let mut a = [core::ptr::null_mut(); MAX_STRS + 1];
    fill(argv, &mut a)?;
    let mut envp = [core::ptr::null_mut(); MAX_STRS + 1];
    fill(&[c"HOME=/", c"PATH=/sbin:/bin:/usr/sbin:/usr/bin"], &mut envp)?;
    // SAFETY: all pointers are NUL-terminated strings / NULL-terminated arrays that stay valid
    // until the helper has been exec'ed, which UMH_WAIT_EXEC waits for.
    let ret = unsafe {
        bindings::call_usermodehelper(
            path.as_char_ptr(),
            a.as_mut_ptr(),
            envp.as_mut_ptr(),
            bindings::UMH_WAIT_EXEC as c_int,
        )
    };
    kernel::error::to_result(ret)
}
