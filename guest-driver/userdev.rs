// SPDX-License-Identifier: GPL-2.0

//! `/dev/irqstormN`, one misc device per bound device (issue 11 item 4): `read()` / `poll()`
//! hand the events of mechanism `user` (`bh/user.rs`) to a user thread, `write()` takes its
//! acks, and ioctls set mechanisms and program timers and storms (uapi.rs,
//! protocol/src/uapi.rs). Bad arguments get an errno and count `user_refused`; a bad ack
//! counts `user_bad_acks`.

use crate::{
    bh::{self, fifo::Item},
    index_pool::{Index, IndexPool},
    control,
    dispatch::current_cpu,
    kwrap::{
        clock::{now_ns, Stamp},
        miscdev::{CharDev, MiscReg},
    },
    mech::Mech,
    protocol::*,
    shared::Shared,
    stats::Origin,
    uapi::{self, Ack, Event},
};
use kernel::{
    fs::File,
    iov::{IovIterDest, IovIterSource},
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        poll::PollTable,
        Arc, Mutex,
    },
    uaccess::{UserPtr, UserSlice},
};

/// Devices with a character device at once (`/dev/irqstorm0` .. `/dev/irqstorm7`).
const MAX_DEVICES: usize = 8;
const NAMES: [&CStr; MAX_DEVICES] =
    [c"irqstorm0", c"irqstorm1", c"irqstorm2", c"irqstorm3", c"irqstorm4", c"irqstorm5", c"irqstorm6", c"irqstorm7"];
/// Records a `read()` takes at most.
const READ_BATCH: usize = 16;

/// Which of `NAMES` are taken.
static TAKEN: IndexPool = IndexPool::new(MAX_DEVICES as u32);

/// The device a character device belongs to, and its index (given back on drop, after the misc
/// device is deregistered).
pub(crate) struct UserDevData {
    s: Arc<Shared>,
    index: Index,
}

/// Registers the next free `/dev/irqstormN` for `s`; `None` if all eight are taken.
pub(crate) fn register(s: &Arc<Shared>) -> Result<Option<Pin<KBox<MiscReg<UserFile>>>>> {
    let Some(index) = TAKEN.take() else { return Ok(None) };
    let name = NAMES[index.get() as usize];
    let data = UserDevData { s: s.clone(), index };
    Ok(Some(KBox::pin_init(MiscReg::register(name, data), GFP_KERNEL)?))
}

/// An open `/dev/irqstormN`.
#[pin_data]
pub(crate) struct UserFile {
    s: Arc<Shared>,
    index: u32,
    nonblock: bool,
    /// When a `poll()` found nothing to read and so began to wait (ns; 0: not waiting).
    idle_since: Atomic<u64>,
    /// Records this file's reads took, waiting for their ack.
    #[pin]
    out: Mutex<KVec<Item>>,
}

impl UserFile {
    fn refuse(&self, e: Error) -> Error {
        self.s.cnt.user_refused.add(1, Relaxed);
        e
    }
}

impl CharDev for UserFile {
    type Data = UserDevData;

    fn open(d: &UserDevData, file: &File) -> Result<Pin<KBox<Self>>> {
        if d.s.is_stopping() {
            return Err(ENODEV);
        }
        let out = KVec::with_capacity(uapi::MAX_OUTSTANDING, GFP_KERNEL)?;
        KBox::pin_init(
            pin_init!(UserFile {
                s: d.s.clone(),
                index: d.index.get(),
                nonblock: file.flags() & kernel::fs::file::flags::O_NONBLOCK != 0,
                idle_since: Atomic::new(0),
                out <- new_mutex!(out, "irqstorm_user_out"),
            }),
            GFP_KERNEL,
        )
    }

    fn read(this: Pin<&Self>, dst: &mut IovIterDest<'_>) -> Result<usize> {
        let want = dst.len() / uapi::EVENT_SIZE;
        if want == 0 {
            return Err(this.refuse(EINVAL));
        }
        let room = uapi::MAX_OUTSTANDING - this.out.lock().len();
        if room == 0 {
            // Every record it may hold is unacked: ack some first.
            return Err(this.refuse(ENOBUFS));
        }
        let mut batch = [Item::stamped(Stamp::default(), 0, 0, Origin::Device); READ_BATCH];
        let k = want.min(room).min(READ_BATCH);
        let idle_since = this.idle_since.xchg(0, Relaxed);
        let (n, handed, waiting) = bh::user::take(&this.s, &mut batch[..k], this.nonblock, idle_since)?;
        let cpu = current_cpu();
        {
            // Outstanding before user space sees them: an ack from another thread finds them.
            let mut out = this.out.lock();
            for it in &batch[..n] {
                out.push(*it, GFP_KERNEL)?;
            }
        }
        let mut copied = 0;
        for it in &batch[..n] {
            let ev = Event {
                seq: it.seq,
                count: it.count,
                source: it.source,
                hard_cpu: it.hard_cpu,
                hardirq_ns: it.hard_ns,
                hardirq_tsc: it.found_tsc,
                handed_ns: handed.ns,
                handed_tsc: handed.tsc,
                flags: it.flags,
                handed_cpu: cpu,
                waiting,
            };
            if dst.copy_to_iter(&ev.encode()) != uapi::EVENT_SIZE {
                break;
            }
            copied += 1;
        }
        this.s.cnt.user_reads.add(copied as u64, Relaxed);
        if copied < n {
            // User space never saw these: hand them back now.
            let lost = take_out(&this, |it| batch[copied..n].iter().any(|b| b.seq == it.seq && b.origin == it.origin));
            bh::user::abandon(&this.s, &lost);
            if copied == 0 {
                return Err(EFAULT);
            }
        }
        Ok(copied * uapi::EVENT_SIZE)
    }

    fn write(this: Pin<&Self>, src: &mut IovIterSource<'_>) -> Result<usize> {
        let len = src.len();
        if len == 0 || len % uapi::ACK_SIZE != 0 {
            return Err(this.refuse(EINVAL));
        }
        if this.s.is_stopping() {
            // Reset with the device: nothing to ack to any more.
            return Err(ENODEV);
        }
        let mut bad = 0u64;
        let mut done = 0;
        while done < len {
            let mut b = [0u8; uapi::ACK_SIZE];
            if src.copy_from_iter(&mut b) != uapi::ACK_SIZE {
                break;
            }
            done += uapi::ACK_SIZE;
            let a = Ack::decode(&b);
            let found = {
                let mut out = this.out.lock();
                match out.iter().position(|it| it.seq == a.seq) {
                    Some(i) => match bh::user::ack_problem(&out[i], &a, now_ns(), kernel::cpu::nr_cpu_ids()) {
                        None => out.remove(i).ok(),
                        Some(why) => {
                            pr_warn!("user ack of seq {} refused: {}\n", a.seq, why);
                            None
                        }
                    },
                    None => {
                        pr_warn!("user ack of seq {} refused: not a record this file holds\n", a.seq);
                        None
                    }
                }
            };
            match found {
                Some(it) => bh::user::acked(&this.s, it, &a),
                None => bad += 1,
            }
        }
        this.s.flush_acks();
        if bad > 0 {
            this.s.cnt.user_bad_acks.add(bad, Relaxed);
            return Err(EINVAL);
        }
        if done == 0 {
            return Err(EFAULT);
        }
        Ok(done)
    }

    fn poll(this: Pin<&Self>, file: &File, table: &PollTable<'_>) -> u32 {
        table.register_wait(file, &this.s.bh.user_wait);
        let mut mask = uapi::EPOLLOUT | uapi::EPOLLWRNORM;
        if bh::fifo_len(&this.s, Mech::User) > 0 {
            mask |= uapi::EPOLLIN | uapi::EPOLLRDNORM;
        } else {
            // Nothing to read: the caller waits from now (the first poll of a wait sets it).
            let _ = this.idle_since.cmpxchg(0, now_ns().max(1), Relaxed);
        }
        if this.s.is_stopping() {
            mask |= uapi::EPOLLHUP | uapi::EPOLLERR;
        }
        mask
    }

    fn ioctl(this: Pin<&Self>, cmd: u32, arg: usize) -> Result<isize> {
        let r = ioctl(&this, cmd, arg);
        r.map_err(|e| this.refuse(e))
    }

    fn release(this: Pin<KBox<Self>>) {
        let left = take_out(&this, |_| true);
        if !left.is_empty() {
            bh::user::abandon(&this.s, &left);
        }
    }
}

/// Removes and returns the outstanding records `pick` selects.
fn take_out(f: &UserFile, pick: impl Fn(&Item) -> bool) -> KVec<Item> {
    let mut out = f.out.lock();
    let mut taken = KVec::new();
    let mut i = 0;
    while i < out.len() {
        if pick(&out[i]) {
            if let Ok(it) = out.remove(i) {
                // Capacity: at most MAX_OUTSTANDING items, allocation may fail only then.
                if taken.push(it, GFP_KERNEL).is_err() {
                    f.s.cnt.user_unacked.add(1, Relaxed);
                }
            }
        } else {
            i += 1;
        }
    }
    taken
}

fn read_arg<const N: usize>(arg: usize) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    UserSlice::new(UserPtr::from_addr(arg), N).reader().read_slice(&mut b)?;
    Ok(b)
}

fn ioctl(f: &UserFile, cmd: u32, arg: usize) -> Result<isize> {
    let s = &f.s;
    match cmd {
        uapi::IOC_INFO => {
            let i = &s.info;
            let b = uapi::info(SPEC_VERSION, i.num_sources, i.max_rate_hz, i.min_period_ns, i.max_burst, f.index);
            UserSlice::new(UserPtr::from_addr(arg), uapi::INFO_SIZE).writer().write_slice(&b)?;
        }
        uapi::IOC_SET_MECH => {
            let b = read_arg::<{ uapi::SMALL_SIZE }>(arg)?;
            let m = Mech::from_u32(u32::from(uapi::u16_at(&b, 2))).ok_or(EINVAL)?;
            s.set_mech(usize::from(uapi::u16_at(&b, 0)), m)?;
        }
        uapi::IOC_PROGRAM => {
            let b = read_arg::<{ uapi::PROGRAM_SIZE }>(arg)?;
            let src = uapi::u16_at(&b, 0);
            if src >= s.info.num_sources {
                return Err(EINVAL);
            }
            let mode = b[2];
            if !matches!(mode, MODE_ONESHOT | MODE_PERIODIC | MODE_STORM) {
                return Err(EINVAL);
            }
            let burst = u16::try_from(uapi::u32_at(&b, 4)).map_err(|_| EINVAL)?;
            let p = Program {
                mode,
                jitter: b[3],
                burst: if mode == MODE_STORM { burst.max(1) } else { 0 },
                period_ns: uapi::u64_at(&b, 8),
                rate_hz: uapi::u32_at(&b, 16),
                count: if mode == MODE_ONESHOT { 1 } else { u64::from(uapi::u32_at(&b, 20)) },
                duration_ns: uapi::u64_at(&b, 24),
                ..Default::default()
            };
            // The device checks the rest; its refusal comes back as an error.
            control::configure_start(s, src, &p)?;
        }
        uapi::IOC_STOP => {
            let b = read_arg::<{ uapi::SMALL_SIZE }>(arg)?;
            let src = uapi::u16_at(&b, 0);
            if src != SOURCE_ALL && src >= s.info.num_sources {
                return Err(EINVAL);
            }
            s.ctrl(&CtrlRequest::new(OP_STOP, src, 0))?;
        }
        _ => return Err(ENOTTY),
    }
    Ok(0)
}
