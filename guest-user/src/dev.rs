//! `/dev/irqstormN` as the guest program uses it: std's `File` for
//! `read()` / `write()`, libc for `poll()` and the ioctls.

use irqstorm_protocol::uapi::{
    set_mech_request, stop_request, UserInfo, UserProgram, IOC_INFO, IOC_PROGRAM, IOC_SET_MECH,
    IOC_STOP, USER_INFO_SIZE,
};
use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::Path,
};

/// An open character device.
pub struct Dev {
    f: File,
}

impl Dev {
    pub fn open(path: &Path, nonblock: bool) -> io::Result<Self> {
        let flags = if nonblock { libc::O_NONBLOCK } else { 0 };
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(path)?;
        Ok(Self { f })
    }

    /// `ioctl(fd, cmd, buf)`: `buf` is read or written by the driver as
    /// `cmd` says; its length must be the size `cmd` encodes.
    pub fn ioctl(&self, cmd: u32, buf: &mut [u8]) -> io::Result<()> {
        debug_assert_eq!(buf.len(), ((cmd >> 16) & 0x3fff) as usize);
        // SAFETY: `buf` is valid for reads and writes of its whole length,
        // which is the size the command encodes, for the whole call; the fd
        // is open.
        let r = unsafe {
            libc::ioctl(
                self.f.as_raw_fd(),
                cmd as libc::Ioctl,
                buf.as_mut_ptr() as libc::c_ulong,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// `ioctl(fd, cmd, addr)` with a raw address (the self test passes
    /// unmapped ones: the kernel must answer EFAULT).
    pub fn ioctl_addr(&self, cmd: u32, addr: usize) -> io::Result<()> {
        // SAFETY: the kernel reads or writes user memory at `addr` only
        // through copy_{from,to}_user, which fail on a bad address instead
        // of touching it; nothing of this process is aliased by the call.
        let r = unsafe { libc::ioctl(self.f.as_raw_fd(), cmd as libc::Ioctl, addr) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn info(&self) -> io::Result<UserInfo> {
        let mut b = [0u8; USER_INFO_SIZE];
        self.ioctl(IOC_INFO, &mut b)?;
        Ok(UserInfo::decode(&b))
    }

    pub fn set_mech(&self, source: u16, mechanism: u16) -> io::Result<()> {
        self.ioctl(IOC_SET_MECH, &mut set_mech_request(source, mechanism))
    }

    pub fn program(&self, p: &UserProgram) -> io::Result<()> {
        self.ioctl(IOC_PROGRAM, &mut p.encode())
    }

    pub fn stop(&self, source: u16) -> io::Result<()> {
        self.ioctl(IOC_STOP, &mut stop_request(source))
    }

    /// Waits up to `timeout_ms` for records; `Ok(revents)` (0: timed out).
    pub fn poll(&self, timeout_ms: i32) -> io::Result<i16> {
        let mut p = libc::pollfd {
            fd: self.f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        match r {
            r if r < 0 => Err(io::Error::last_os_error()),
            0 => Ok(0),
            _ => Ok(p.revents),
        }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.f.read(buf)
    }

    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.f.write(buf)
    }
}
