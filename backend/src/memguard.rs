// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Guest memory that is not (or no longer) backed by its file.
//!
//! A front end hands its guest RAM over as file descriptors (SET_MEM_TABLE)
//! and the back end maps them. Touching a mapped page past the end of its
//! file raises SIGBUS, which kills the process and every device it serves.
//! Two defences:
//! - [`check_backed`]: a memory table whose regions reach past the end of
//!   their files is refused before anything touches it.
//! - A SIGBUS handler for files that shrink later (a front end truncating
//!   its memfd): a fault inside a registered region replaces that region's
//!   mapping with private zero pages, so the faulting access completes, and
//!   is counted for the region's device, which then ends that front end's
//!   connection ([`DeviceRegions::take_faults`]). Faults anywhere else get
//!   the default action, as if no handler were installed.
//!
//! Registration follows the device lock: a device swaps its regions only
//! while it holds its device mutex and its calibration mutex, and every
//! guest-memory access of the device model happens under one of them (a
//! CALIBRATE loop runs under the calibration mutex alone), so no access to
//! a region is in flight when it stops being registered.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use log::error;
use thiserror::Error as ThisError;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Regions registered at once over all devices (64 devices x 8 regions).
pub const SLOTS: usize = 512;

/// Errors of this module.
#[derive(Debug, ThisError, PartialEq, Eq)]
pub enum Error {
    /// A region reaches past the end of its file.
    #[error(
        "memory region at GPA {gpa:#x} ({size} bytes) maps file bytes {offset}..{end} \
         of a file of {file_len} bytes: refused (touching it would raise SIGBUS)"
    )]
    PastEndOfFile {
        /// Guest physical address.
        gpa: u64,
        /// Region size.
        size: u64,
        /// File offset of the region.
        offset: u64,
        /// `offset + size`.
        end: u64,
        /// File size.
        file_len: u64,
    },
    /// The file's size could not be read.
    #[error("memory region at GPA {gpa:#x}: fstat of its file: {reason}")]
    Stat {
        /// Guest physical address.
        gpa: u64,
        /// The error.
        reason: String,
    },
    /// Every slot is taken.
    #[error("more than {SLOTS} guest memory regions registered")]
    TooManyRegions,
}

/// Refuses a memory table whose regions are not backed by their files.
pub fn check_backed(mem: &GuestMemoryMmap) -> Result<(), Error> {
    for r in mem.iter() {
        let Some(fo) = r.file_offset() else {
            continue;
        };
        let gpa = r.start_addr().0;
        let file_len = fo
            .file()
            .metadata()
            .map_err(|e| Error::Stat {
                gpa,
                reason: e.to_string(),
            })?
            .len();
        let end = fo.start().saturating_add(r.len());
        if end > file_len {
            return Err(Error::PastEndOfFile {
                gpa,
                size: r.len(),
                offset: fo.start(),
                end,
                file_len,
            });
        }
    }
    Ok(())
}

/// One registered region. `seq` is odd while the slot is being written
/// (a seqlock: the signal handler never blocks, it re-reads instead).
struct Slot {
    seq: AtomicU64,
    owner: AtomicUsize,
    start: AtomicUsize,
    len: AtomicUsize,
    faults: AtomicU64,
}

impl Slot {
    const fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            owner: AtomicUsize::new(FREE),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            faults: AtomicU64::new(0),
        }
    }

    /// Start and length if the slot holds a region, read consistently.
    fn read(&self) -> Option<(usize, usize)> {
        loop {
            let s0 = self.seq.load(Ordering::Acquire);
            if s0 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let owner = self.owner.load(Ordering::Acquire);
            let start = self.start.load(Ordering::Acquire);
            let len = self.len.load(Ordering::Acquire);
            if self.seq.load(Ordering::Acquire) == s0 {
                return (owner != FREE).then_some((start, len));
            }
        }
    }

    fn write(&self, owner: usize, start: usize, len: usize) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        self.start.store(start, Ordering::Release);
        self.len.store(len, Ordering::Release);
        self.owner.store(owner, Ordering::Release);
        self.seq.fetch_add(1, Ordering::AcqRel);
    }
}

const FREE: usize = usize::MAX;
/// Slots being claimed by a writer (never matched by the handler).
const CLAIMED: usize = usize::MAX - 1;

static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
/// Faults caught so far, over all devices (a cheap "anything new?" check).
static CAUGHT: AtomicU64 = AtomicU64::new(0);
/// Serialises writers (the handler never takes it).
static WRITERS: Mutex<()> = Mutex::new(());

/// Faults caught so far over all devices: a caller that saw the same
/// number before has nothing new to take (a lock-free check for hot paths;
/// a fault is counted on its slot before it is counted here).
pub fn caught() -> u64 {
    CAUGHT.load(Ordering::Acquire)
}

/// Installs the SIGBUS handler once per process.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = vmm_sys_util::signal::register_signal_handler(libc::SIGBUS, on_sigbus) {
            error!("installing the guest-memory SIGBUS handler: {e}");
        }
    });
}

extern "C" fn on_sigbus(_num: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler;
    // si_addr is defined for SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &TABLE {
        let Some((start, len)) = slot.read() else {
            continue;
        };
        if addr < start || addr - start >= len {
            continue;
        }
        // SAFETY: [start, start + len) is a guest memory mapping of this
        // process that is registered, so it is mapped and no longer used
        // for anything but guest memory; replacing it by private anonymous
        // memory changes only what the device reads and writes there. mmap
        // is a plain system call (async-signal-safe in practice on Linux).
        let p = unsafe {
            libc::mmap(
                start as *mut c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            slot.faults.fetch_add(1, Ordering::AcqRel);
            CAUGHT.fetch_add(1, Ordering::AcqRel);
            return;
        }
        break;
    }
    // Not guest memory (or it could not be replaced): the default action,
    // exactly as without this handler.
    // SAFETY: signal and raise are async-signal-safe; SIGBUS is blocked
    // while this handler runs, so the raised one is delivered (with the
    // default action: terminate) as soon as it returns.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
        libc::raise(libc::SIGBUS);
    }
}

/// The regions of one device's current guest memory.
#[derive(Debug)]
pub struct DeviceRegions {
    device: usize,
    slots: Vec<usize>,
}

impl DeviceRegions {
    /// No regions yet for `device`.
    pub fn new(device: usize) -> Self {
        install();
        Self {
            device,
            slots: Vec::new(),
        }
    }

    /// Registers the regions of `mem` in place of the previous ones.
    pub fn replace(&mut self, mem: &GuestMemoryMmap) -> Result<(), Error> {
        self.clear();
        let _w = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
        for r in mem.iter() {
            let Some(idx) = TABLE.iter().position(|s| {
                s.owner
                    .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            }) else {
                drop(_w);
                self.clear();
                return Err(Error::TooManyRegions);
            };
            let start = r.as_ptr() as usize;
            TABLE[idx].faults.store(0, Ordering::Release);
            TABLE[idx].write(self.device, start, r.len() as usize);
            self.slots.push(idx);
        }
        Ok(())
    }

    /// Unregisters every region (the memory is gone or about to be).
    pub fn clear(&mut self) {
        let _w = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
        for idx in self.slots.drain(..) {
            TABLE[idx].write(FREE, 0, 0);
        }
    }

    /// Faults caught on this device's regions since the last call.
    pub fn take_faults(&mut self) -> u64 {
        self.slots
            .iter()
            .map(|&i| TABLE[i].faults.swap(0, Ordering::AcqRel))
            .sum()
    }
}

impl Drop for DeviceRegions {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::FromRawFd;
    use vm_memory::{Bytes, FileOffset, GuestAddress};

    fn memfd(len: u64) -> File {
        // SAFETY: memfd_create with a valid C string; the fd is checked.
        let fd = unsafe { libc::memfd_create(c"irqstorm-memguard".as_ptr(), 0) };
        assert!(fd >= 0);
        // SAFETY: a fresh fd that nothing else owns.
        let f = unsafe { File::from_raw_fd(fd) };
        f.set_len(len).unwrap();
        f
    }

    fn map(file: &File, size: usize) -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges_with_files([(
            GuestAddress(0x1000_0000),
            size,
            Some(FileOffset::new(file.try_clone().unwrap(), 0)),
        )])
        .unwrap()
    }

    #[test]
    fn regions_past_the_end_of_their_file_are_refused() {
        let f = memfd(1 << 20);
        assert_eq!(check_backed(&map(&f, 1 << 20)), Ok(()));
        let e = check_backed(&map(&f, 16 << 20)).unwrap_err();
        assert_eq!(
            e,
            Error::PastEndOfFile {
                gpa: 0x1000_0000,
                size: 16 << 20,
                offset: 0,
                end: 16 << 20,
                file_len: 1 << 20,
            }
        );
        assert!(e.to_string().contains("SIGBUS"), "{e}");
    }

    #[test]
    fn a_file_truncated_under_a_registered_region_is_caught_and_counted() {
        let f = memfd(1 << 20);
        let mem = map(&f, 1 << 20);
        let mut regs = DeviceRegions::new(7);
        regs.replace(&mem).unwrap();
        mem.write_obj(0x55u8, GuestAddress(0x1000_0000 + 8192))
            .unwrap();
        f.set_len(4096).unwrap();
        // Without the handler this write kills the test process (SIGBUS).
        mem.write_obj(0xaau8, GuestAddress(0x1000_0000 + 8192))
            .unwrap();
        assert_eq!(regs.take_faults(), 1);
        // The region is private zero pages now: the access completed there
        // and later ones no longer fault.
        let v: u8 = mem.read_obj(GuestAddress(0x1000_0000 + 8192)).unwrap();
        assert_eq!(v, 0xaa);
        assert_eq!(regs.take_faults(), 0);
        regs.clear();
    }

    #[test]
    fn slots_are_given_back() {
        let f = memfd(1 << 16);
        let mem = map(&f, 1 << 16);
        let mut regs = DeviceRegions::new(3);
        for _ in 0..(2 * SLOTS) {
            regs.replace(&mem).unwrap();
        }
        drop(regs);
        let used = TABLE
            .iter()
            .filter(|s| s.owner.load(Ordering::Acquire) == 3)
            .count();
        assert_eq!(used, 0);
    }
}
