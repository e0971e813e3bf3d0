// SPDX-License-Identifier: GPL-2.0

//! virtio-pci modern transport (virtio 1.x §4.1): vendor capabilities, common configuration,
//! notification, device configuration. Implemented in the module (no CONFIG_VIRTIO_PCI).

use kernel::{
    device::Bound,
    io::Io,
    pci,
    prelude::*,
    time::{delay::fsleep, Delta},
};

/// `cfg_type` of the virtio vendor capabilities.
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;
const PCI_CAP_ID_VNDR: u8 = 0x09;

/// Common configuration structure offsets.
const COMMON_DFSELECT: usize = 0x00;
const COMMON_DF: usize = 0x04;
const COMMON_GFSELECT: usize = 0x08;
const COMMON_GF: usize = 0x0c;
const COMMON_MSIX: usize = 0x10;
const COMMON_NUMQ: usize = 0x12;
const COMMON_STATUS: usize = 0x14;
const COMMON_CFGGEN: usize = 0x15;
const COMMON_Q_SELECT: usize = 0x16;
const COMMON_Q_SIZE: usize = 0x18;
const COMMON_Q_MSIX: usize = 0x1a;
const COMMON_Q_ENABLE: usize = 0x1c;
const COMMON_Q_NOFF: usize = 0x1e;
const COMMON_Q_DESCLO: usize = 0x20;
const COMMON_Q_DESCHI: usize = 0x24;
const COMMON_Q_AVAILLO: usize = 0x28;
const COMMON_Q_AVAILHI: usize = 0x2c;
const COMMON_Q_USEDLO: usize = 0x30;
const COMMON_Q_USEDHI: usize = 0x34;
const COMMON_LEN: usize = 0x38;

/// Device status bits.
pub(crate) const S_ACKNOWLEDGE: u8 = 1;
pub(crate) const S_DRIVER: u8 = 2;
pub(crate) const S_DRIVER_OK: u8 = 4;
pub(crate) const S_FEATURES_OK: u8 = 8;
pub(crate) const S_FAILED: u8 = 0x80;

pub(crate) const NO_VECTOR: u16 = 0xffff;

#[derive(Clone, Copy, Default)]
struct Cap {
    bar: u8,
    offset: u32,
    length: u32,
}

/// The mapped transport. All register accesses are runtime bounds-checked (`try_*`) and
/// fail with `ENODEV` once the device is unbound (the BAR is a `Devres`).
pub(crate) struct Transport {
    bar: pci::DevresBar,
    common: usize,
    notify: usize,
    notify_len: usize,
    notify_mult: usize,
    device: usize,
    device_len: usize,
}

fn find_caps(pdev: &pci::Device<Bound>) -> Result<([Option<Cap>; 5], u32)> {
    let cfg = pdev.config_space();
    let mut caps: [Option<Cap>; 5] = [None; 5];
    let mut notify_mult = 0u32;
    // PCI_STATUS bit 4: capability list present.
    if cfg.try_read16(0x06)? & 0x10 == 0 {
        return Err(ENODEV);
    }
    let mut pos = (cfg.try_read8(0x34)? & 0xfc) as usize;
    let mut guard = 0;
    while pos != 0 && guard < 48 {
        guard += 1;
        let id = cfg.try_read8(pos)?;
        let next = (cfg.try_read8(pos + 1)? & 0xfc) as usize;
        if id == PCI_CAP_ID_VNDR {
            let cfg_type = cfg.try_read8(pos + 3)?;
            let bar = cfg.try_read8(pos + 4)?;
            let offset = cfg.try_read32(pos + 8)?;
            let length = cfg.try_read32(pos + 12)?;
            if (1..=4).contains(&cfg_type) && bar <= 5 && caps[cfg_type as usize].is_none() {
                caps[cfg_type as usize] = Some(Cap { bar, offset, length });
                if cfg_type == CAP_NOTIFY {
                    notify_mult = cfg.try_read32(pos + 16)?;
                }
            }
        }
        pos = next;
    }
    Ok((caps, notify_mult))
}

impl Transport {
    /// Walks the virtio vendor capabilities and maps the BAR holding them.
    pub(crate) fn new(pdev: &pci::Device<Bound>) -> Result<Self> {
        let (caps, notify_mult) = find_caps(pdev)?;
        let common = caps[CAP_COMMON as usize].ok_or(ENODEV)?;
        let notify = caps[CAP_NOTIFY as usize].ok_or(ENODEV)?;
        let isr = caps[CAP_ISR as usize].ok_or(ENODEV)?;
        let device = caps[CAP_DEVICE as usize].ok_or(ENODEV)?;
        if common.bar != notify.bar || common.bar != device.bar || common.bar != isr.bar {
            dev_err!(pdev.as_ref(), "virtio capabilities in different BARs: unsupported\n");
            return Err(ENODEV);
        }
        if (common.length as usize) < COMMON_LEN {
            return Err(ENODEV);
        }
        let bar_len = pdev.resource_len(u32::from(common.bar))? as usize;
        for c in [common, notify, isr, device] {
            if c.offset as usize + c.length as usize > bar_len {
                dev_err!(pdev.as_ref(), "virtio capability outside its BAR\n");
                return Err(ENODEV);
            }
        }
        let bar = pdev.iomap_region(u32::from(common.bar), c"irqstorm")?.into_devres()?;
        Ok(Self {
            bar,
            common: common.offset as usize,
            notify: notify.offset as usize,
            notify_len: notify.length as usize,
            notify_mult: notify_mult as usize,
            device: device.offset as usize,
            device_len: device.length as usize,
        })
    }

    fn with<R>(&self, f: impl FnOnce(&pci::Bar<'_>) -> Result<R>) -> Result<R> {
        let g = self.bar.try_access().ok_or(ENODEV)?;
        f(&g)
    }

    fn w8(&self, off: usize, v: u8) -> Result {
        self.with(|b| b.try_write8(v, self.common + off))
    }
    fn w16(&self, off: usize, v: u16) -> Result {
        self.with(|b| b.try_write16(v, self.common + off))
    }
    fn w32(&self, off: usize, v: u32) -> Result {
        self.with(|b| b.try_write32(v, self.common + off))
    }
    fn r8(&self, off: usize) -> Result<u8> {
        self.with(|b| b.try_read8(self.common + off))
    }
    fn r16(&self, off: usize) -> Result<u16> {
        self.with(|b| b.try_read16(self.common + off))
    }
    fn r32(&self, off: usize) -> Result<u32> {
        self.with(|b| b.try_read32(self.common + off))
    }

    pub(crate) fn status(&self) -> Result<u8> {
        self.r8(COMMON_STATUS)
    }

    pub(crate) fn add_status(&self, bits: u8) -> Result {
        let s = self.status()?;
        self.w8(COMMON_STATUS, s | bits)
    }

    /// Writes 0 to `device_status` and waits (bounded) for the device to read back 0.
    /// Process context only.
    pub(crate) fn reset(&self) -> Result {
        self.w8(COMMON_STATUS, 0)?;
        for _ in 0..2000 {
            if self.status()? == 0 {
                return Ok(());
            }
            fsleep(Delta::from_micros(500));
        }
        Err(ETIMEDOUT)
    }

    pub(crate) fn device_features(&self) -> Result<u64> {
        self.w32(COMMON_DFSELECT, 0)?;
        let lo = u64::from(self.r32(COMMON_DF)?);
        self.w32(COMMON_DFSELECT, 1)?;
        let hi = u64::from(self.r32(COMMON_DF)?);
        Ok(lo | hi << 32)
    }

    pub(crate) fn set_driver_features(&self, f: u64) -> Result {
        self.w32(COMMON_GFSELECT, 0)?;
        self.w32(COMMON_GF, f as u32)?;
        self.w32(COMMON_GFSELECT, 1)?;
        self.w32(COMMON_GF, (f >> 32) as u32)
    }

    pub(crate) fn num_queues(&self) -> Result<u16> {
        self.r16(COMMON_NUMQ)
    }

    /// Routes configuration-change interrupts to MSI-X entry `vec`; returns what the device
    /// accepted (`NO_VECTOR` on failure).
    pub(crate) fn set_config_vector(&self, vec: u16) -> Result<u16> {
        self.w16(COMMON_MSIX, vec)?;
        self.r16(COMMON_MSIX)
    }

    /// Selects queue `q` and returns its maximum size (0 = not available).
    pub(crate) fn queue_max_size(&self, q: u16) -> Result<u16> {
        self.w16(COMMON_Q_SELECT, q)?;
        self.r16(COMMON_Q_SIZE)
    }

    /// Programs queue `q` (size, ring addresses, MSI-X entry) and returns its notify offset.
    pub(crate) fn setup_queue(
        &self,
        q: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
        vec: u16,
    ) -> Result<usize> {
        self.w16(COMMON_Q_SELECT, q)?;
        self.w16(COMMON_Q_SIZE, size)?;
        self.w32(COMMON_Q_DESCLO, desc as u32)?;
        self.w32(COMMON_Q_DESCHI, (desc >> 32) as u32)?;
        self.w32(COMMON_Q_AVAILLO, avail as u32)?;
        self.w32(COMMON_Q_AVAILHI, (avail >> 32) as u32)?;
        self.w32(COMMON_Q_USEDLO, used as u32)?;
        self.w32(COMMON_Q_USEDHI, (used >> 32) as u32)?;
        self.w16(COMMON_Q_MSIX, vec)?;
        if self.r16(COMMON_Q_MSIX)? != vec {
            return Err(EBUSY);
        }
        let noff = self.r16(COMMON_Q_NOFF)? as usize;
        let off = noff * self.notify_mult;
        if off + 2 > self.notify_len {
            return Err(EINVAL);
        }
        Ok(self.notify + off)
    }

    pub(crate) fn enable_queue(&self, q: u16) -> Result {
        self.w16(COMMON_Q_SELECT, q)?;
        self.w16(COMMON_Q_ENABLE, 1)
    }

    /// Available-buffer notification for queue `q` at the offset from [`Transport::setup_queue`].
    pub(crate) fn notify(&self, notify_off: usize, q: u16) -> Result {
        self.with(|b| b.try_write16(q, notify_off))
    }

    pub(crate) fn config_generation(&self) -> Result<u8> {
        self.r8(COMMON_CFGGEN)
    }

    pub(crate) fn cfg8(&self, off: usize) -> Result<u8> {
        if off + 1 > self.device_len {
            return Err(EINVAL);
        }
        self.with(|b| b.try_read8(self.device + off))
    }
    pub(crate) fn cfg16(&self, off: usize) -> Result<u16> {
        if off + 2 > self.device_len {
            return Err(EINVAL);
        }
        self.with(|b| b.try_read16(self.device + off))
    }
    pub(crate) fn cfg32(&self, off: usize) -> Result<u32> {
        if off + 4 > self.device_len {
            return Err(EINVAL);
        }
        self.with(|b| b.try_read32(self.device + off))
    }
}
