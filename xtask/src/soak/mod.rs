//! `cargo xtask soak ...`: long runs that print their figures (the short
//! versions run in `cargo xtask test`).

pub mod hotplug;
pub mod pause;
pub mod rebind;
pub mod reconnect;

use clap::Subcommand;

/// The soaks.
#[derive(Subcommand, Clone)]
pub enum Soak {
    /// QEMU kill/reconnect cycles against one back end: every cycle's guest
    /// gets all its events; back end fds and RSS stay flat.
    Reconnect {
        /// Cycles.
        #[arg(long, default_value_t = 1000)]
        cycles: u32,
        /// Events per cycle.
        #[arg(long, default_value_t = 2000)]
        events: u64,
        /// Their rate (events/s).
        #[arg(long, default_value_t = 20_000)]
        rate_hz: u32,
    },
    /// QMP stop/cont cycles of a guest whose driver runs a storm and a
    /// periodic timer on the device: zero events dropped, the programs still
    /// running after every resume, conservation exact (docs/device-spec.md 5.5).
    Pause(pause::PauseArgs),
    /// Hot add/remove cycles of the device behind a PCIe root port (QMP
    /// chardev-add + device_add, device_del under a storm) in one boot:
    /// probe, uevents, no leftovers, the back end's ledger per cycle.
    Hotplug(hotplug::HotplugArgs),
    /// unbind/bind and rmmod/insmod cycles of the driver under a storm.
    Rebind {
        /// Cycles of each kind.
        #[arg(long, default_value_t = 1000)]
        cycles: u32,
        /// Storm rate (events/s, over two sources).
        #[arg(long, default_value_t = 100_000)]
        rate_hz: u32,
    },
}
