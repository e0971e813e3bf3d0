// SPDX-License-Identifier: GPL-2.0

//! ackq: ack records (§6.4) batched into buffers of up to 64, one kick per batch. Driver
//! to device only; interrupts are suppressed and used buffers are reclaimed by polling.

use crate::{kwrap::clock::now_ns, protocol::*, shared::Shared, virtio_pci::Transport, virtqueue::{Pop, Virtqueue}};
use kernel::{
    device::{Bound, Device},
    dma::Coherent,
    io::io_write,
    prelude::*,
    sync::atomic::Relaxed,
};

/// Queue size we ask for.
const ACKQ_SIZE: u16 = 64;

/// ackq state (under `Shared::ackq`).
pub(crate) struct AckQ {
    pub(crate) vq: Virtqueue,
    bufs: Coherent<[u64]>,
    free: KVec<u16>,
    cur: Option<u16>,
    fill: usize,
}

impl AckQ {
    /// Allocates and programs the ackq (not yet enabled): descriptor i <-> buffer of up to 64
    /// ack records, device-readable.
    pub(crate) fn new(dev: &Device<Bound>, t: &Transport, event_idx: bool) -> Result<Self> {
        let mut avq = Virtqueue::new(dev, t, VQ_ACK, ACKQ_SIZE, event_idx)?;
        let n = avq.size as usize;
        let abuf = Coherent::<u64>::zeroed_slice(dev, n * ACKS_PER_BUF * ACK_WORDS, GFP_KERNEL)?;
        let base = abuf.dma_address();
        let mut free = KVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..n {
            avq.set_desc(i as u16, base + (i * ACKS_PER_BUF * ACK_SIZE) as u64, ACK_SIZE as u32, 0, 0)?;
            free.push(i as u16, GFP_KERNEL)?;
        }
        Ok(Self { vq: avq, bufs: abuf, free, cur: None, fill: 0 })
    }
}

impl Shared {
    pub(crate) fn push_ack(&self, rec: &AckRecord) {
        if self.is_stopping() {
            self.cnt.acks_dropped.add(1, Relaxed);
            return;
        }
        let mut g = self.ackq.lock();
        let a = &mut *g;
        if a.cur.is_none() {
            loop {
                match a.vq.pop() {
                    Pop::Empty => break,
                    Pop::Ok(u) => {
                        let _ = a.free.push(u.id, GFP_ATOMIC);
                    }
                    Pop::BadId => {
                        self.cnt.ack_bad_id.add(1, Relaxed);
                    }
                }
            }
            a.vq.disable_cb();
            match a.free.pop() {
                Some(h) => {
                    a.cur = Some(h);
                    a.fill = 0;
                }
                None => {
                    self.cnt.acks_dropped.add(1, Relaxed);
                    return;
                }
            }
        }
        let Some(cur) = a.cur else { return };
        let mut r = *rec;
        r.post_ns = now_ns();
        let w = r.encode();
        let base = (cur as usize * ACKS_PER_BUF + a.fill) * ACK_WORDS;
        let ok = (|| -> Result {
            for (k, x) in w.iter().enumerate() {
                io_write!(a.bufs, [try: base + k], *x);
            }
            Ok(())
        })();
        if ok.is_err() {
            self.cnt.acks_dropped.add(1, Relaxed);
            return;
        }
        a.fill += 1;
        if a.fill == ACKS_PER_BUF {
            self.submit_acks(a);
        }
    }

    fn submit_acks(&self, a: &mut AckQ) {
        let Some(cur) = a.cur.take() else { return };
        let n = a.fill;
        a.fill = 0;
        if n == 0 {
            let _ = a.free.push(cur, GFP_ATOMIC);
            return;
        }
        if a.vq.set_desc_len(cur, (n * ACK_SIZE) as u32, 0, 0).is_err() || a.vq.add(cur).is_err() {
            self.cnt.acks_dropped.add(n as u64, Relaxed);
            return;
        }
        let _ = a.vq.kick(&self.t);
        self.cnt.acks_posted.add(n as u64, Relaxed);
        self.cnt.ack_bufs.add(1, Relaxed);
    }

    /// Posts the partially filled ack buffer, if any (one kick per batch).
    pub(crate) fn flush_acks(&self) {
        let mut g = self.ackq.lock();
        if g.cur.is_some() && g.fill > 0 {
            self.submit_acks(&mut g);
        }
    }
}
