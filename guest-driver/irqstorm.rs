// SPDX-License-Identifier: GPL-2.0

//! irqstorm: a Rust-for-Linux PCI driver for the irqstorm virtio device
//! (docs/device-spec.md) that runs every event through a chosen bottom half and measures
//! each stage.
//!
//! Layout: `virtio_pci` (modern transport), `virtqueue` (split rings in DMA memory),
//! `protocol` (records), `calibrate` (the TSC time base, CALIBRATE), `shared` (the device state), `eventq` / `ackq` / `ctrlq` (one file
//! per virtqueue), `dispatch` (the IRQ handler), `mech` (the mechanism catalogue), `bh/` (one
//! file per bottom half), `sources` (per-source configuration), `stats`, `local` (reference
//! source), `storm_detect`,
//! `debugfs`, `sysfs` (the `irqstorm` class), `index_pool`, `control` (text commands), and `kwrap/`, the only place that touches
//! `kernel::bindings`.

use kernel::{
    device::Core,
    dma::{Device as _, DmaMask},
    pci,
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

mod ackq;
mod bh;
mod calibrate;
mod control;
mod ctrlq;
mod debugfs;
mod dispatch;
mod event_log;
mod eventq;
mod index_pool;
mod kwrap;
mod local;
mod mech;
mod protocol;
mod shared;
mod sources;
mod stats;
mod storm_detect;
mod sysfs;
mod uapi;
mod userdev;
mod virtio_pci;
mod virtqueue;

use dispatch::IrqHandler;
use mech::Mech;
use shared::{DevInfo, Queues, Shared};
use protocol::*;
use virtio_pci::*;

/// Default virtio device id of the irqstorm device (spec §1): PCI device 0x1040 + 21.
/// For other ids bind with `driver_override` or `new_id` (see README.md).
const IRQSTORM_VIRTIO_ID: u32 = 21;

struct IrqstormData<'bound> {
    pdev: &'bound pci::Device,
    shared: Arc<Shared>,
    // Drop order matters: files first, then the IRQ (free_irq).
    /// `/sys/class/irqstorm/irqstormN`.
    _class: Option<kwrap::class::ClassDevice<sysfs::ClassView>>,
    _debugfs: Option<debugfs::DebugFs>,
    /// `/dev/irqstormN` (mechanism `user`).
    _user: Option<Pin<KBox<kwrap::miscdev::MiscReg<userdev::UserFile>>>>,
    irq: kwrap::irq::MsixIrq<'bound, IrqHandler>,
}

struct IrqstormDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    <IrqstormDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(pci::Vendor::REDHAT_QUMRANET, 0x1040 + IRQSTORM_VIRTIO_ID),
        ()
    )]
);

fn negotiate(t: &Transport) -> Result<u64> {
    t.reset()?;
    t.add_status(S_ACKNOWLEDGE)?;
    t.add_status(S_DRIVER)?;
    let offered = t.device_features()?;
    if offered & F_VERSION_1 == 0 {
        pr_err!("device does not offer VIRTIO_F_VERSION_1\n");
        return Err(ENODEV);
    }
    let mut want = F_VERSION_1 | F_MODERATION | F_FAULT_INJECT;
    if params::event_idx.value() {
        want |= F_EVENT_IDX;
    }
    let features = offered & want;
    t.set_driver_features(features)?;
    t.add_status(S_FEATURES_OK)?;
    if t.status()? & S_FEATURES_OK == 0 {
        pr_err!("device rejected features {:#x}\n", features);
        return Err(ENODEV);
    }
    Ok(features)
}

fn read_info(t: &Transport, features: u64) -> Result<DevInfo> {
    loop {
        let gen = t.config_generation()?;
        let magic = t.cfg32(CFG_MAGIC)?;
        let ver = t.cfg16(CFG_SPEC_VERSION)?;
        let info = DevInfo {
            num_sources: t.cfg16(CFG_NUM_SOURCES)?,
            max_rate_hz: t.cfg32(CFG_MAX_RATE_HZ)?,
            max_outstanding: t.cfg32(CFG_MAX_OUTSTANDING)?,
            min_period_ns: t.cfg32(CFG_MIN_PERIOD_NS)?,
            max_burst: t.cfg32(CFG_MAX_BURST)?,
            features,
        };
        let sizes = [
            t.cfg16(CFG_CTRL_REQ_SIZE)?,
            t.cfg16(CFG_CTRL_RESP_SIZE)?,
            t.cfg16(CFG_EVENT_SIZE)?,
            t.cfg16(CFG_ACK_SIZE)?,
        ];
        let _ = t.cfg8(0)?;
        if gen != t.config_generation()? {
            continue;
        }
        if magic != MAGIC {
            pr_err!("bad device config: magic {:#x}, expected {:#x}\n", magic, MAGIC);
            return Err(ENODEV);
        }
        if ver != SPEC_VERSION {
            pr_err!("device speaks spec version {}, driver needs {}: refusing to bind\n", ver, SPEC_VERSION);
            return Err(ENODEV);
        }
        let want = [CTRL_SIZE as u16, CTRL_SIZE as u16, EVENT_SIZE as u16, ACK_SIZE as u16];
        for ((name, got), need) in ["ctrl_req_size", "ctrl_resp_size", "event_size", "ack_size"]
            .iter()
            .zip(sizes)
            .zip(want)
        {
            if got != need {
                pr_err!("device {} is {}, driver needs {}: refusing to bind\n", name, got, need);
                return Err(ENODEV);
            }
        }
        if info.num_sources == 0 || info.num_sources as usize > MAX_SOURCES {
            pr_err!("bad num_sources {}\n", info.num_sources);
            return Err(ENODEV);
        }
        return Ok(info);
    }
}

impl<'bound> IrqstormData<'bound> {
    fn setup(pdev: &'bound pci::Device<Core<'_>>) -> Result<Self> {
        pdev.enable_device_mem()?;
        pdev.set_master();
        // SAFETY: no DMA allocation or mapping for this device runs concurrently (probe).
        unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<64>())? };

        let t = Transport::new(pdev)?;
        let fail = |t: &Transport, e: Error| -> Error {
            // Forget any queue addresses already programmed, then give up.
            let _ = t.reset();
            let _ = t.add_status(S_FAILED);
            e
        };
        let features = negotiate(&t).map_err(|e| fail(&t, e))?;
        let info = read_info(&t, features).map_err(|e| fail(&t, e))?;
        if t.num_queues()? < 3 {
            return Err(fail(&t, ENODEV));
        }
        let q = Queues::new(pdev, &t, features & F_EVENT_IDX != 0).map_err(|e| fail(&t, e))?;
        let dm = Mech::from_u32(params::default_mech.value()).unwrap_or(Mech::Threaded);
        let shared = Shared::new(pdev, t, info, q, dm)?;
        let s = &shared;

        let irq = match kwrap::irq::MsixIrq::new(pdev, c"irqstorm", Ok::<_, Error>(IrqHandler { shared: s.clone() })) {
            Ok(i) => i,
            Err(e) => {
                dev_err!(pdev.as_ref(), "need one MSI-X vector: {:?}\n", e);
                let _ = s.t.reset();
                return Err(e);
            }
        };

        bh::threaded::set_waker(s, irq.waker());
        let r = (|| -> Result {
            if s.t.set_config_vector(0)? == NO_VECTOR {
                dev_warn!(pdev.as_ref(), "device refused the config vector\n");
            }
            {
                let mut c = s.control.q.lock();
                c.vq.enable_cb();
            }
            {
                let mut e = s.evq.lock();
                for i in 0..e.vq.size {
                    e.vq.add(i)?;
                }
                e.vq.enable_cb();
            }
            {
                let mut a = s.ackq.lock();
                a.vq.disable_cb();
            }
            for qi in [VQ_CONTROL, VQ_EVENT, VQ_ACK] {
                s.t.enable_queue(qi)?;
            }
            s.t.add_status(S_DRIVER_OK)?;
            {
                let mut e = s.evq.lock();
                e.vq.kick(&s.t)?;
            }
            Ok(())
        })();
        // Process-context bottom halves.
        let r = r.and_then(|()| bh::start(s));
        if let Err(e) = r {
            // The device may already DMA into our rings: stop it before anything is freed.
            let _ = s.t.add_status(S_FAILED);
            s.quiesce_sources();
            let _ = s.t.reset();
            irq.synchronize();
            bh::quiesce(s);
            return Err(e);
        }
        storm_detect::StormDetector::start(s);

        match s.ctrl(&CtrlRequest::new(OP_GET_INFO, 0, 0)) {
            Ok(r) => dev_info!(
                pdev.as_ref(),
                "irqstorm: {} sources, max {} events/s, features {:#x} (device features_lo {:#x})\n",
                r.word(16) as u16,
                (r.word(16) >> 32) as u32,
                features,
                (r.word(32) >> 32) as u32
            ),
            Err(e) => dev_warn!(pdev.as_ref(), "GET_INFO failed: {:?}\n", e),
        }
        // The shared TSC time base (§6.1.3); `calibrate` logs its result.
        if kwrap::clock::HAVE_TSC {
            let _ = s.calibrate(calibrate::DEFAULT_US);
        } else {
            dev_info!(pdev.as_ref(), "no TSC on this architecture: TSC stamps are 0, no calibration\n");
        }

        let dbg = debugfs::DebugFs::new(s)
            .inspect_err(|e| dev_warn!(pdev.as_ref(), "debugfs: {:?}\n", e))
            .ok();
        let class = sysfs::add(pdev.as_ref(), s)
            .inspect_err(|e| dev_warn!(pdev.as_ref(), "/sys/class/irqstorm: {:?}\n", e))
            .ok();
        s.storm.set_uevent_device(class.as_ref().map(|c| c.device()));

        let user = match userdev::register(s) {
            Ok(Some(u)) => Some(u),
            Ok(None) => {
                dev_warn!(pdev.as_ref(), "no /dev/irqstormN left (8 devices have one): mechanism `user` has no reader\n");
                None
            }
            Err(e) => {
                dev_warn!(pdev.as_ref(), "/dev/irqstormN: {:?}\n", e);
                None
            }
        };

        Ok(Self { pdev, shared, _class: class, _debugfs: dbg, _user: user, irq })
    }

    /// Teardown under load: stop sources, reset the device, synchronize the IRQ, then kill and
    /// flush every bottom half. The IRQ, vectors, timers and DMA memory are released on drop.
    fn shutdown(&self) {
        let s = &self.shared;
        // Before the class device goes (on drop, after this): no storm uevent to it after.
        s.storm.set_uevent_device(None);
        s.quiesce_sources();
        if let Err(e) = s.t.reset() {
            dev_warn!(self.pdev.as_ref(), "reset failed: {:?}\n", e);
        }
        self.irq.synchronize();
        bh::quiesce(s);
        dev_info!(
            self.pdev.as_ref(),
            "irqstorm: unbound after {} records ({} acks posted, {} dropped)\n",
            s.cnt.records.load(Relaxed),
            s.cnt.acks_posted.load(Relaxed),
            s.cnt.acks_dropped.load(Relaxed)
        );
    }
}

impl pci::Driver for IrqstormDriver {
    type IdInfo = ();
    type Data<'bound> = IrqstormData<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        IrqstormData::setup(pdev)
    }

    fn unbind<'bound>(_pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        this.shutdown();
    }
}

/// The module: the `irqstorm` class first (probe adds to it), then the PCI driver; dropped in
/// field order, so every device is unbound (and its class device gone) before the class.
#[pin_data]
struct IrqstormModule {
    #[pin]
    _driver: kernel::driver::Registration<pci::Adapter<IrqstormDriver>>,
    _class: kwrap::class::ClassReg<sysfs::ClassView>,
}

impl kernel::InPlaceModule for IrqstormModule {
    fn init(module: &'static kernel::ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _class: sysfs::CLASS.register(c"irqstorm", &sysfs::ATTRS, &sysfs::CLASS_ATTRS)?,
            _driver <- kernel::driver::Registration::new(<Self as kernel::ModuleMetadata>::NAME, module),
        })
    }
}

kernel::prelude::module! {
    type: IrqstormModule,
    name: "irqstorm",
    authors: ["irqstorm developers"],
    description: "irqstorm: deferred-work lab driver for the irqstorm virtio device",
    license: "GPL v2",
}

// Visible under /sys/module/irqstorm/parameters/ (read-only) and in modinfo; guest-driver/README.md.
crate::module_params! {
    default_mech: u32 = 1, uint, "Bottom half for every source at bind time (0..19, spec 6.5; default 1 = threaded)";
    event_idx: bool = true, bool, "Negotiate VIRTIO_RING_F_EVENT_IDX";
    inject_delay_us: u32 = 0, uint, "Busy-wait this many us (at most 5000) at the start of mechanism inject_delay_mech's bottom half, before its start stamp (demonstration; 0 = off)";
    inject_delay_mech: i32 = -1, int, "Mechanism id (0..19, spec 6.5) that inject_delay_us delays; -1 = none";
    wq_cpu: i32 = -1, int, "Queue wq_system, wq_highpri and wq_dedicated work on this CPU (queue_work_on); -1 or a CPU not below nr_cpu_ids = the queueing CPU";
    dispatch_delay_us: u32 = 0, uint, "Test hook: busy-wait this many us (at most 1000) in the hard IRQ between a record's cancel check and its queueing, for tests/guest/48-cancel.sh to widen the cancel race; 0 = off";
    work_items: u32 = 1, uint, "Work items per process-context workqueue mechanism (wq_system, wq_highpri, wq_unbound, wq_dedicated, wq_ordered, wq_cpu_intensive), 1..=16: how many of its records the queue may run at once (its own rules decide)";
    wq_max_active: i32 = 0, int, "max_active of the driver's wq_dedicated queue (alloc_workqueue), 0..=2048; 0 = the kernel's default";
    kthread_fifo: bool = false, bool, "Run the kthread and completion waiter at SCHED_FIFO (sched_set_fifo, priority 50) instead of SCHED_NORMAL";
}
