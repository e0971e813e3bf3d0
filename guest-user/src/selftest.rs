//! `--selftest`: bad arguments through every entry point of the character
//! device, each of which must fail with its errno (never a crash, never a
//! success). KTAP lines; the guest test 55-user counts them.

use crate::dev::Dev;
use irqstorm_protocol::uapi::{
    UserAck, UserProgram, IOC_INFO, IOC_MAGIC, IOC_PROGRAM, IOC_SET_MECH, USER_ACK_SIZE,
    USER_EVENT_SIZE, USER_MODE_PERIODIC,
};
use std::{io, path::Path};

fn errno_of(r: io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

/// Runs the checks (no source may be on mechanism `user`: a non-blocking
/// read must find nothing); returns how many failed.
pub fn run(dev: &mut Dev, path: &Path, num_sources: u16) -> usize {
    let unknown = (2u32 << 30) | (8 << 16) | (IOC_MAGIC << 8) | 99;
    let bad_mode = UserProgram {
        source: 0,
        mode: 9,
        period_ns: 1_000_000,
        ..Default::default()
    };
    let bad_source = UserProgram {
        source: num_sources,
        mode: USER_MODE_PERIODIC,
        period_ns: 1_000_000,
        ..Default::default()
    };
    let bad_period = UserProgram {
        source: 0,
        mode: USER_MODE_PERIODIC,
        period_ns: 1,
        count: 1,
        ..Default::default()
    };
    let stray_ack = UserAck {
        seq: u64::MAX,
        ..Default::default()
    };
    let nonblock = Dev::open(path, true).and_then(|mut d| d.read(&mut [0u8; USER_EVENT_SIZE]));
    let cases: Vec<(&str, i32, Option<i32>)> = vec![
        (
            "non-blocking read() with nothing queued",
            libc::EAGAIN,
            errno_of(nonblock),
        ),
        (
            "unknown ioctl",
            libc::ENOTTY,
            errno_of(dev.ioctl(unknown, &mut [0u8; 8])),
        ),
        (
            "INFO to an unmapped address",
            libc::EFAULT,
            errno_of(dev.ioctl_addr(IOC_INFO, 8)),
        ),
        (
            "SET_MECH from an unmapped address",
            libc::EFAULT,
            errno_of(dev.ioctl_addr(IOC_SET_MECH, 8)),
        ),
        (
            "SET_MECH of a source the device lacks",
            libc::EINVAL,
            errno_of(dev.set_mech(num_sources, 1)),
        ),
        (
            "SET_MECH of mechanism 200",
            libc::EINVAL,
            errno_of(dev.set_mech(0, 200)),
        ),
        (
            "PROGRAM with mode 9",
            libc::EINVAL,
            errno_of(dev.program(&bad_mode)),
        ),
        (
            "PROGRAM of a source the device lacks",
            libc::EINVAL,
            errno_of(dev.program(&bad_source)),
        ),
        (
            "PROGRAM with a 1 ns period (the device: out of range)",
            libc::ERANGE,
            errno_of(dev.program(&bad_period)),
        ),
        (
            "PROGRAM from an unmapped address",
            libc::EFAULT,
            errno_of(dev.ioctl_addr(IOC_PROGRAM, 8)),
        ),
        (
            "read() into less than one record",
            libc::EINVAL,
            errno_of(dev.read(&mut [0u8; USER_EVENT_SIZE - 1])),
        ),
        (
            "write() of a partial ack",
            libc::EINVAL,
            errno_of(dev.write(&[0u8; USER_ACK_SIZE - 1])),
        ),
        (
            "write() acking a record never handed out",
            libc::EINVAL,
            errno_of(dev.write(&stray_ack.encode())),
        ),
    ];
    let mut failed = 0;
    for (name, want, got) in cases {
        if got == Some(want) {
            println!("ok - selftest: {name}: errno {want}");
        } else {
            failed += 1;
            println!("not ok - selftest: {name}: want errno {want}, got {got:?}");
        }
    }
    failed
}
