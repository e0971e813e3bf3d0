// SPDX-License-Identifier: GPL-2.0

//! controlq: one request/reply chain (§6.1, §6.2); requests wait on a completion with a 2 s
//! timeout, the hard IRQ handler takes the reply off the used ring.

use crate::{
    calibrate::CalPage,
    kwrap::{clock::jiffies, completion::Completion},
    protocol::*,
    shared::Shared,
    virtio_pci::Transport,
    virtqueue::{Pop, Virtqueue, DESC_F_NEXT, DESC_F_WRITE},
};
use kernel::{
    device::{Bound, Device},
    dma::Coherent,
    io::{io_read, io_write},
    new_mutex, new_spinlock_irq,
    prelude::*,
    sync::{atomic::Relaxed, Mutex, SpinLockIrq},
};

/// Queue size we ask for.
const CTRLQ_SIZE: u16 = 4;

/// controlq state (under `Shared::ctrlq`).
pub(crate) struct CtrlQ {
    pub(crate) vq: Virtqueue,
    buf: Coherent<[u64]>,
    busy: bool,
    done: bool,
    used_len: u32,
    /// Hard IRQ time stamp of the last reply (see `CtrlReply::recv_ns`).
    done_ns: u64,
}

impl CtrlQ {
    /// Allocates and programs the controlq (not yet enabled): one chain, desc 0 (64-byte
    /// request, RO) -> desc 1 (64-byte reply, WO).
    pub(crate) fn new(dev: &Device<Bound>, t: &Transport, event_idx: bool) -> Result<Self> {
        let mut cvq = Virtqueue::new(dev, t, VQ_CONTROL, CTRLQ_SIZE, event_idx)?;
        if cvq.size < 2 {
            return Err(ENODEV);
        }
        let cbuf = Coherent::<u64>::zeroed_slice(dev, 2 * CTRL_WORDS, GFP_KERNEL)?;
        let base = cbuf.dma_address();
        cvq.set_desc(0, base, CTRL_SIZE as u32, DESC_F_NEXT, 1)?;
        cvq.set_desc(1, base + CTRL_SIZE as u64, CTRL_SIZE as u32, DESC_F_WRITE, 0)?;
        Ok(Self { vq: cvq, buf: cbuf, busy: false, done: false, used_len: 0, done_ns: 0 })
    }
}

/// The control channel: the queue, the last reply (also serialises requests), the
/// completion the hard IRQ handler signals, and the CALIBRATE page (used only by the request
/// that holds `last`).
#[pin_data]
pub(crate) struct ControlChannel {
    #[pin]
    pub(crate) q: SpinLockIrq<CtrlQ>,
    #[pin]
    pub(crate) last: Mutex<CtrlReply>,
    #[pin]
    pub(crate) done: Completion,
    /// Locked for a whole calibration (taken before `last`).
    #[pin]
    pub(crate) cal: Mutex<CalPage>,
}

impl ControlChannel {
    pub(crate) fn new(q: CtrlQ, cal: CalPage) -> impl PinInit<Self> {
        pin_init!(Self {
            q <- new_spinlock_irq!(q, "irqstorm_ctrlq"),
            last <- new_mutex!(CtrlReply::default(), "irqstorm_ctrl"),
            done <- Completion::new(),
            cal <- new_mutex!(cal, "irqstorm_cal"),
        })
    }

    /// Whether the reply to the request in flight has arrived.
    pub(crate) fn replied(&self) -> bool {
        self.q.lock().done
    }
}

impl Shared {
    /// Sends a control request and waits (with a timeout) for the reply. Process context.
    pub(crate) fn ctrl(&self, req: &CtrlRequest) -> Result<CtrlReply> {
        self.ctrl_during(req, || ())
    }

    /// [`Self::ctrl`], running `during` after the kick and before waiting for the reply
    /// (CALIBRATE: the driver's half of the loop runs while the device runs its own). Nothing
    /// else uses the control channel meanwhile; `during` is not run if the request was not
    /// sent.
    pub(crate) fn ctrl_during(&self, req: &CtrlRequest, during: impl FnOnce()) -> Result<CtrlReply> {
        let mut last = self.control.last.lock();
        if self.is_stopping() {
            return Err(ENODEV);
        }
        self.cnt.ctrl_requests.add(1, Relaxed);
        {
            let mut g = self.control.q.lock();
            let c = &mut *g;
            if c.busy && !c.done {
                // A previous request timed out and the device still holds the buffer.
                return Err(EBUSY);
            }
            for k in 0..CTRL_WORDS {
                io_write!(c.buf, [try: k], req.words[k]);
                io_write!(c.buf, [try: CTRL_WORDS + k], 0u64);
            }
            c.busy = true;
            c.done = false;
            c.used_len = 0;
            c.vq.add(0)?;
            c.vq.kick(&self.t)?;
        }
        during();
        let deadline = jiffies() + crate::kwrap::clock::msecs_to_jiffies(2000);
        loop {
            let now = jiffies();
            let left = deadline.saturating_sub(now);
            let got = left > 0 && self.control.done.wait_timeout(left);
            let g = self.control.q.lock();
            if g.done {
                break;
            }
            drop(g);
            if !got {
                self.cnt.ctrl_timeouts.add(1, Relaxed);
                pr_warn!("controlq request (opcode {}) timed out\n", req.words[0] as u16);
                return Err(ETIMEDOUT);
            }
        }
        let mut reply = CtrlReply::default();
        {
            let mut g = self.control.q.lock();
            g.busy = false;
            if (g.used_len as usize) < CTRL_SIZE {
                self.cnt.ctrl_errors.add(1, Relaxed);
                return Err(EIO);
            }
            for k in 0..CTRL_WORDS {
                reply.words[k] = io_read!(g.buf, [try: CTRL_WORDS + k]);
            }
            reply.recv_ns = g.done_ns;
        }
        *last = reply;
        if reply.status() != 0 {
            self.cnt.ctrl_errors.add(1, Relaxed);
            pr_info!(
                "controlq: opcode {} source {} -> {}\n",
                reply.opcode(),
                (req.words[0] >> 16) as u16,
                status_name(reply.status())
            );
        }
        status_to_result(reply.status())?;
        Ok(reply)
    }

    /// `t` is the hard IRQ time stamp, kept with the reply.
    pub(crate) fn poll_ctrlq(&self, t: u64) {
        let mut c = self.control.q.lock();
        loop {
            match c.vq.pop() {
                Pop::Empty => {
                    if !c.vq.enable_cb() {
                        break;
                    }
                }
                Pop::Ok(u) => {
                    c.done = true;
                    c.used_len = u.len;
                    c.done_ns = t;
                    self.control.done.complete();
                }
                Pop::BadId => {
                    self.cnt.bad_id.add(1, Relaxed);
                }
            }
        }
    }
}
