// SPDX-License-Identifier: GPL-2.0

//! irqstorm: a PCI driver for the irqstorm virtio device (see docs/device-spec.md).
//!
//! Every event the device raises is run through a chosen bottom half and each
//! stage is measured.

use kernel::{device::Core, pci, prelude::*};

/// Virtio PCI vendor is 0x1af4 (`REDHAT_QUMRANET`); modern device ids are 0x1040 + virtio id.
/// Default virtio device id of the irqstorm device (spec §1).
const IRQSTORM_VIRTIO_ID: u32 = 21;

struct IrqstormData<'bound> {
    pdev: &'bound pci::Device,
}

struct IrqstormDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    <IrqstormDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(
            pci::Vendor::REDHAT_QUMRANET,
            0x1040 + IRQSTORM_VIRTIO_ID
        ),
        ()
    )]
);

impl pci::Driver for IrqstormDriver {
    type IdInfo = ();
    type Data<'bound> = IrqstormData<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        dev_info!(pdev, "irqstorm probe (0x{:x})\n", pdev.device_id());
        Ok(IrqstormData { pdev })
    }
}

impl Drop for IrqstormData<'_> {
    fn drop(&mut self) {
        dev_info!(self.pdev, "irqstorm remove\n");
    }
}

kernel::module_pci_driver! {
    type: IrqstormDriver,
    name: "irqstorm",
    authors: ["irqstorm developers"],
    description: "irqstorm: deferred-work lab driver for the irqstorm virtio device",
    license: "GPL v2",
}
