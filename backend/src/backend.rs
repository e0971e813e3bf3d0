// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The vhost-user side: `VhostUserBackend` for one irqstorm device, and the
//! state it shares with the generator thread and the control socket.

use std::io::Result as IoResult;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use irqstorm_protocol::control::SpinInfo;
use log::{debug, error, info, warn};
use thiserror::Error as ThisError;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::QueueT;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::device::{now_ns, run_pending_calibration, Device, QueueOutcome};
use crate::memguard::{self, DeviceRegions};
use crate::protocol::{ACKQ, CONFIG_SIZE, CONTROLQ, EVENTQ, NUM_QUEUES};
use crate::relay;
use crate::restart::{Restart, RingView, Verdict};
use crate::schedule::Limits;

/// Largest queue size accepted.
pub const MAX_QUEUE_SIZE: usize = 1024;

/// How often the generator looks at the rings while a restart is being
/// judged (QEMU sends the whole start within a millisecond or so; raises
/// latched in a pause must go out even if nothing else wakes the device).
pub const RESTART_POLL_NS: u64 = 1_000_000;

/// Errors of the vhost-user back end.
#[derive(Debug, ThisError)]
pub enum Error {
    /// An event other than EPOLLIN arrived.
    #[error("unexpected event set {0:?}")]
    NotEpollIn(EventSet),
    /// An event for an unknown queue / device event.
    #[error("unknown device event {0}")]
    UnknownEvent(u16),
    /// Creating an eventfd failed.
    #[error("eventfd: {0}")]
    EventFd(std::io::Error),
    /// Signalling the driver failed.
    #[error("signal used queue: {0}")]
    Signal(std::io::Error),
    /// The connection is over: the worker thread is asked to exit.
    #[error("connection over: worker thread stopped")]
    Stopped,
    /// A memory table was refused.
    #[error("SET_MEM_TABLE: {0}")]
    MemoryTable(memguard::Error),
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::other(e)
    }
}

/// Locks a mutex, recovering the data of a poisoned one (a panic elsewhere
/// must not take the device down with it).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The vrings of the current connection and what the front end is doing
/// with them.
#[derive(Default)]
struct Rings {
    /// Known after the first event of the connection's worker thread.
    vrings: Vec<VringRwLock>,
    /// The front end stopped the device and is starting it again: no ring is
    /// touched until the start is judged a resume or a guest reset (§5.5).
    restart: Option<Restart>,
    /// A RESET_DEVICE came: the next start is a first start.
    after_reset: bool,
}

impl Rings {
    fn views(&self) -> Vec<RingView> {
        self.vrings.iter().map(RingView::of).collect()
    }
}

/// State shared by the vhost-user handler, the generator and the control socket.
pub struct Shared {
    /// Device index (socket number).
    pub index: usize,
    /// The device model.
    pub dev: Mutex<Device>,
    /// Lock order: `dev`, then `rings`, then a vring's own lock.
    rings: Mutex<Rings>,
    /// Guest memory of the current connection.
    pub mem: Mutex<Option<GuestMemoryAtomic<GuestMemoryMmap>>>,
    /// Written to make the generator recompute its deadline.
    pub wake: EventFd,
    /// Whether a front end is connected.
    pub connected: AtomicBool,
    /// The virtio device id the back end is meant for.
    pub virtio_id: u32,
    /// Front-end connection counters.
    pub front_end: relay::Counters,
    /// The current front end's socket, to end its connection from here.
    front_conn: Mutex<Option<UnixStream>>,
    /// Guest memory regions guarded against SIGBUS (swapped under `dev` and
    /// `calibrating`).
    regions: Mutex<DeviceRegions>,
    /// Held by a CALIBRATE loop, which touches guest memory without `dev`
    /// (§6.1.3); taken after `dev` wherever the regions are swapped, so no
    /// region stops being guarded under a running loop.
    calibrating: Mutex<()>,
    /// `memguard::caught()` when this device last looked for faults.
    faults_seen: AtomicU64,
    /// The generator's spin window (reported by `info`).
    pub spin: SpinInfo,
}

impl Shared {
    /// Shared state for a device.
    pub fn new(
        index: usize,
        limits: Limits,
        fault_injection: bool,
        virtio_id: u32,
    ) -> Result<Self, Error> {
        Ok(Self {
            index,
            dev: Mutex::new(Device::new(limits, fault_injection)),
            rings: Mutex::new(Rings::default()),
            mem: Mutex::new(None),
            wake: EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?,
            connected: AtomicBool::new(false),
            virtio_id,
            front_end: relay::Counters::default(),
            front_conn: Mutex::new(None),
            regions: Mutex::new(DeviceRegions::new(index)),
            calibrating: Mutex::new(()),
            faults_seen: AtomicU64::new(0),
            spin: SpinInfo::default(),
        })
    }

    /// Remembers the socket of the front end being served (`None` when the
    /// connection is over).
    pub fn set_front_end(&self, conn: Option<UnixStream>) {
        *lock(&self.front_conn) = conn;
    }

    /// Ends the current front end's connection (the relay sees it close).
    pub fn end_front_end(&self) {
        if let Some(c) = lock(&self.front_conn).as_ref() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Installs a new memory table: refused (and counted) if a region is
    /// not backed by its file. Called with no device lock held.
    pub fn set_memory(&self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> Result<(), Error> {
        let mut dev = lock(&self.dev);
        let _calibrating = lock(&self.calibrating);
        dev.memory_changed();
        let checked = memguard::check_backed(&mem.memory())
            .and_then(|()| lock(&self.regions).replace(&mem.memory()));
        if let Err(e) = checked {
            self.front_end.memory_table_refused();
            lock(&self.regions).clear();
            *lock(&self.mem) = None;
            error!("device {}: SET_MEM_TABLE: {e}", self.index);
            return Err(Error::MemoryTable(e));
        }
        *lock(&self.mem) = Some(mem);
        Ok(())
    }

    /// After the device model touched guest memory (the device lock held):
    /// if it faulted, stop using it and end the front end's connection.
    fn after_memory_access(&self) {
        // Runs after every access: no lock unless some device faulted.
        let caught = memguard::caught();
        if self.faults_seen.swap(caught, Ordering::AcqRel) == caught {
            return;
        }
        let n = lock(&self.regions).take_faults();
        if n == 0 {
            return;
        }
        self.front_end.memory_faults(n);
        error!(
            "device {}: guest memory faulted ({n}x): the front end's memory file shrank \
             after SET_MEM_TABLE; the device stops using it and ends the connection",
            self.index
        );
        // Without memory no ring is touched again (with_eventq, process_queue).
        *lock(&self.mem) = None;
        self.end_front_end();
    }

    /// Wakes the generator.
    pub fn wake_generator(&self) {
        if let Err(e) = self.wake.write(1) {
            warn!("device {}: waking the generator: {e}", self.index);
        }
    }

    /// Runs `f` with the device and, if known, the eventq queue and memory,
    /// then signals the driver if `f` asks for it.
    pub fn with_eventq<R>(
        &self,
        f: impl FnOnce(
            &mut Device,
            Option<(&mut virtio_queue::Queue, &GuestMemoryMmap)>,
        ) -> (R, QueueOutcome),
    ) -> R {
        self.with_queues(false, |dev, evq, _| {
            let (r, out) = f(dev, evq);
            (r, out, QueueOutcome::default())
        })
    }

    /// [`Shared::with_eventq`], with the ackq too when `ackq` is set (the
    /// generator's polled acks, §6.4.1); signals each queue `f` asks to.
    fn with_queues<R>(
        &self,
        ackq: bool,
        f: impl FnOnce(
            &mut Device,
            Option<(&mut virtio_queue::Queue, &GuestMemoryMmap)>,
            Option<&mut virtio_queue::Queue>,
        ) -> (R, QueueOutcome, QueueOutcome),
    ) -> R {
        let mut dev = lock(&self.dev);
        let (vring, ack_vring) = {
            let mut rings = lock(&self.rings);
            self.settle(&mut dev, &mut rings);
            match rings.restart {
                Some(_) => (None, None),
                None => (
                    rings.vrings.get(usize::from(EVENTQ)).cloned(),
                    ackq.then(|| rings.vrings.get(usize::from(ACKQ)).cloned())
                        .flatten(),
                ),
            }
        };
        let mem = lock(&self.mem).clone();
        match (vring, mem) {
            (Some(vring), Some(mem)) => {
                let guard = mem.memory();
                let mut st = vring.get_mut();
                let mut ack_st = ack_vring.as_ref().map(|v| v.get_mut());
                // A stopped (GET_VRING_BASE) or disabled (SET_VRING_ENABLE 0)
                // ring must not be touched: raises latch until it runs again.
                let evq = (st.is_enabled() && st.get_queue().ready())
                    .then(|| (st.get_queue_mut(), &*guard));
                let ackq = ack_st
                    .as_mut()
                    .filter(|a| a.is_enabled() && a.get_queue().ready())
                    .map(|a| a.get_queue_mut());
                let (r, out, ack_out) = f(&mut dev, evq, ackq);
                if out.signal {
                    if let Err(e) = st.signal_used_queue() {
                        debug!("eventq signal: {e}");
                    }
                }
                if let (true, Some(a)) = (ack_out.signal, &ack_st) {
                    if let Err(e) = a.signal_used_queue() {
                        debug!("ackq signal: {e}");
                    }
                }
                drop(ack_st);
                drop(st);
                drop(guard);
                self.after_memory_access();
                r
            }
            _ => f(&mut dev, None, None).0,
        }
    }

    /// Generator step: take polled acks, raise what is due, write, notify,
    /// then choose kicked or polled acks for the time until the next
    /// deadline; returns that deadline (at most [`RESTART_POLL_NS`] away while
    /// a restart is judged).
    pub fn service(&self, now: u64) -> Option<u64> {
        let next = self.with_queues(true, |dev, mut evq, ackq| {
            let mut ack_out = QueueOutcome::default();
            let mem = evq.as_ref().map(|(_, m)| *m);
            if let (Some(q), Some(mem)) = (ackq, mem) {
                if dev.acks_polled() {
                    ack_out = dev.take_acks(q, mem);
                }
                let out = dev.service(now, evq.take());
                let next = dev.next_deadline();
                let want = dev.want_ack_poll(now, next);
                if want != dev.acks_polled() {
                    let o = dev.set_acks_polled(want, q, mem);
                    ack_out.used += o.used;
                    ack_out.signal |= o.signal;
                }
                return (next, out, ack_out);
            }
            let out = dev.service(now, evq);
            (dev.next_deadline(), out, ack_out)
        });
        if self.restarting() {
            let poll = now.saturating_add(RESTART_POLL_NS);
            return Some(next.map_or(poll, |n| n.min(poll)));
        }
        next
    }

    /// The device, any restart in progress judged first: every reader sees
    /// the verdict as soon as the front end has brought the rings back.
    pub fn device(&self) -> MutexGuard<'_, Device> {
        let mut dev = lock(&self.dev);
        self.settle(&mut dev, &mut lock(&self.rings));
        dev
    }

    /// Whether a restart is being judged (no ring is touched meanwhile).
    pub fn restarting(&self) -> bool {
        lock(&self.rings).restart.is_some()
    }

    /// Remembers the vrings of the connection (its worker's first event).
    fn attach_vrings(&self, vrings: &[VringRwLock]) {
        let mut rings = lock(&self.rings);
        if rings.vrings.is_empty() {
            rings.vrings = vrings.to_vec();
        }
    }

    /// SET_FEATURES: the first start of a connection, or the front end
    /// starting the device again after stopping it (a VM pause or a guest
    /// reset; judged by the rings, [`Shared::settle`]).
    fn features_set(&self, features: u64) {
        let mut dev = lock(&self.dev);
        let mut rings = lock(&self.rings);
        if let Some(r) = rings.restart.as_mut() {
            r.set_features(features);
        } else if std::mem::take(&mut rings.after_reset) {
            dev.set_negotiated(features);
        } else {
            match Restart::begin(&rings.views(), dev.negotiated(), features) {
                Some(r) => {
                    debug!(
                        "device {}: started again by the front end; judging its rings",
                        self.index
                    );
                    rings.restart = Some(r);
                }
                None => dev.set_negotiated(features),
            }
        }
        self.settle(&mut dev, &mut rings);
        drop(rings);
        drop(dev);
        // The generator polls the rings until the restart is judged.
        self.wake_generator();
    }

    /// Judges a restart in progress by the rings now (§5.5): a resume keeps
    /// the device state and lets the latched raises out; a guest reset
    /// resets the device.
    fn settle(&self, dev: &mut Device, rings: &mut Rings) {
        let Some(r) = &rings.restart else { return };
        let verdict = r.judge(&rings.views());
        let features = r.features();
        match verdict {
            Verdict::Pending => return,
            Verdict::Resume => {
                info!(
                    "device {}: resumed by the front end (every ring continues where it stopped): state kept",
                    self.index
                );
                dev.count_resume();
            }
            Verdict::Reset(why) => {
                info!(
                    "device {}: restarted by the front end with fresh rings ({why}): guest reset",
                    self.index
                );
                dev.log_summary();
                dev.reset();
            }
        }
        dev.set_negotiated(features);
        rings.restart = None;
        self.wake_generator();
    }

    /// vhost-user RESET_DEVICE.
    fn reset_by_front_end(&self) {
        let mut dev = lock(&self.dev);
        dev.reset();
        let mut rings = lock(&self.rings);
        rings.restart = None;
        rings.after_reset = true;
        drop(rings);
        drop(dev);
        self.wake_generator();
    }

    /// Device reset when the front end is gone.
    pub fn reset(&self) {
        let mut dev = lock(&self.dev);
        dev.log_summary();
        dev.reset();
        *lock(&self.rings) = Rings::default();
        *lock(&self.mem) = None;
        // Faults the library's own accesses may have caught.
        let calibrating = lock(&self.calibrating);
        let mut regions = lock(&self.regions);
        let n = regions.take_faults();
        if n > 0 {
            self.front_end.memory_faults(n);
        }
        regions.clear();
        drop(regions);
        drop(calibrating);
        drop(dev);
        self.wake_generator();
    }
}

/// The `VhostUserBackend` of one device for one front-end connection.
pub struct IrqBackend {
    shared: Arc<Shared>,
    /// Written to end the worker thread (device event `STOP_EVENT`).
    ///
    /// Not the library's exit event: vhost-user-backend 0.23 turns the fd
    /// that `exit_event` returns into a raw fd and never closes it, one
    /// leaked eventfd per connection (the back end died at ~1006
    /// connections under a 1024-fd limit). This one is owned here and
    /// closed with the back end.
    stop: EventFd,
    /// Written once per connection so the worker hands us the vrings
    /// (device event `ATTACH_EVENT`) before any queue is kicked.
    attach: EventFd,
}

/// Custom epoll event id (above the queue ids and the reserved exit event).
pub const ATTACH_EVENT: u16 = NUM_QUEUES as u16 + 1;
/// Custom epoll event id that ends the worker thread.
pub const STOP_EVENT: u16 = NUM_QUEUES as u16 + 2;

impl IrqBackend {
    /// A back end for a new connection.
    pub fn new(shared: Arc<Shared>) -> Result<Self, Error> {
        Ok(Self {
            shared,
            stop: EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?,
            attach: EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?,
        })
    }

    /// The eventfd to register as `STOP_EVENT` with the daemon's epoll
    /// handler.
    pub fn stop_fd(&self) -> &EventFd {
        &self.stop
    }

    /// The eventfd to register as `ATTACH_EVENT` with the daemon's epoll
    /// handler; it is signalled already.
    pub fn attach_fd(&self) -> &EventFd {
        if let Err(e) = self.attach.write(1) {
            warn!("attach eventfd: {e}");
        }
        &self.attach
    }

    /// Tells the worker thread to exit (it must, before the daemon is
    /// dropped: the daemon's drop joins it).
    pub fn exit(&self) {
        if let Err(e) = self.stop.write(1) {
            warn!("worker stop: {e}");
        }
    }

    fn memory(&self) -> Option<GuestMemoryAtomic<GuestMemoryMmap>> {
        lock(&self.shared.mem).clone()
    }

    /// The controlq: requests in order. A CALIBRATE's loop runs with the
    /// device lock released (the generator raises and takes polled acks
    /// meanwhile; §6.1.3) and the ring's lock kept (the front end cannot
    /// stop or reset this ring before the answer is on it); the device lock
    /// is taken again only after the ring's (lock order: device, rings,
    /// vring), then the requests after it are served.
    fn process_controlq(&self, vring: &VringRwLock) -> IoResult<()> {
        let mut wake = false;
        for _ in 0..MAX_QUEUE_SIZE {
            let mut dev = lock(&self.shared.dev);
            let Some(mem) = self.memory() else { break };
            let guard = mem.memory();
            {
                let mut rings = lock(&self.shared.rings);
                self.shared.settle(&mut dev, &mut rings);
                if rings.restart.is_some() {
                    debug!(
                        "device {}: controlq kicked during a restart",
                        self.shared.index
                    );
                    break;
                }
            }
            let mut st = vring.get_mut();
            let mut out = QueueOutcome::default();
            let mut pending = None;
            // Until no buffer arrived while notifications were off (with
            // EVENT_IDX this also moves avail_event forward).
            for _ in 0..MAX_QUEUE_SIZE {
                let q = st.get_queue_mut();
                let _ = q.disable_notification(&*guard);
                let o = dev.process_ctrlq_until_calibrate(q, &guard);
                out.used += o.q.used;
                out.signal |= o.q.signal;
                wake |= o.wake_generator;
                if o.calibrate.is_some() {
                    pending = o.calibrate;
                    break;
                }
                if !q.enable_notification(&*guard).unwrap_or(false) {
                    break;
                }
            }
            let Some(mut p) = pending else {
                drop(guard);
                self.shared.after_memory_access();
                drop(dev);
                if out.signal {
                    st.signal_used_queue().map_err(Error::Signal)?;
                }
                break;
            };
            let calibrating = lock(&self.shared.calibrating);
            drop(dev);
            let body = run_pending_calibration(&p, &guard);
            let (a, errors) = p.answer(&body, st.get_queue_mut(), &guard);
            drop(calibrating);
            drop(guard);
            if out.signal || a.signal {
                st.signal_used_queue().map_err(Error::Signal)?;
            }
            drop(st);
            let mut dev = lock(&self.shared.dev);
            dev.calibration_answered(&p, &body, errors);
            self.shared.after_memory_access();
        }
        if wake {
            self.shared.wake_generator();
        }
        Ok(())
    }

    fn process_queue(&self, idx: u16, vring: &VringRwLock) -> IoResult<()> {
        if idx == CONTROLQ {
            return self.process_controlq(vring);
        }
        // The device lock first: memory is swapped only under it.
        let mut dev = lock(&self.shared.dev);
        let Some(mem) = self.memory() else {
            return Ok(());
        };
        let guard = mem.memory();
        {
            let mut rings = lock(&self.shared.rings);
            self.shared.settle(&mut dev, &mut rings);
            if rings.restart.is_some() {
                // Not every ring is back: leave the buffers for the next kick.
                debug!(
                    "device {}: queue {idx} kicked during a restart",
                    self.shared.index
                );
                return Ok(());
            }
        }
        let mut st = vring.get_mut();
        let (out, wake) = match idx {
            // Kicked, or polled acks at half a ring: the device's ack path decides
            // what the driver kicks next.
            ACKQ => (dev.take_acks(st.get_queue_mut(), &guard), false),
            _ => {
                let out = dev.flush(now_ns(), Some((st.get_queue_mut(), &guard)));
                // Records written here may open a moderation window: the
                // generator must then arm its deadline.
                (out, dev.has_unnotified())
            }
        };
        drop(guard);
        self.shared.after_memory_access();
        drop(dev);
        if out.signal {
            st.signal_used_queue().map_err(Error::Signal)?;
        }
        drop(st);
        if wake {
            self.shared.wake_generator();
        }
        Ok(())
    }
}

impl VhostUserBackend for IrqBackend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | lock(&self.shared.dev).device_features()
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&self, features: u64) {
        debug!("device {}: acked features {features:#x}", self.shared.index);
        // QEMU sends SET_FEATURES each time it starts the device: after a
        // VM pause as after a guest reset (§5.5).
        self.shared
            .features_set(features & !VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits());
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::RESET_DEVICE
    }

    fn reset_device(&self) {
        info!("device {}: reset by the front end", self.shared.index);
        self.shared.reset_by_front_end();
    }

    fn set_event_idx(&self, enabled: bool) {
        debug!("device {}: event_idx {enabled}", self.shared.index);
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let cfg = lock(&self.shared.dev).config().encode();
        let mut out = vec![0u8; (size as usize).min(CONFIG_SIZE)];
        let start = (offset as usize).min(CONFIG_SIZE);
        let end = start.saturating_add(out.len()).min(CONFIG_SIZE);
        out[..end - start].copy_from_slice(&cfg[start..end]);
        out
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> IoResult<()> {
        Ok(self.shared.set_memory(mem)?)
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> IoResult<()> {
        if evset != EventSet::IN {
            return Err(Error::NotEpollIn(evset).into());
        }
        self.shared.attach_vrings(vrings);
        if device_event == STOP_EVENT {
            let _ = self.stop.read();
            // An error is the one way to end the library's worker loop
            // without its exit event (see `IrqBackend::stop`).
            return Err(Error::Stopped.into());
        }
        if device_event == ATTACH_EVENT {
            let _ = self.attach.read();
            // Deliver what was latched before we knew the ring.
            self.shared.wake_generator();
            return Ok(());
        }
        let Some(vring) = vrings.get(usize::from(device_event)) else {
            return Err(Error::UnknownEvent(device_event).into());
        };
        match device_event {
            CONTROLQ | EVENTQ | ACKQ => self.process_queue(device_event, vring),
            _ => Err(Error::UnknownEvent(device_event).into()),
        }
    }

    /// None: the library would leak the fd (see `IrqBackend::stop`).
    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        None
    }
}
