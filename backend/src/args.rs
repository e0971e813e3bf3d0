// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Command line (vhost-device style) and its conversion into a [`Config`].

use std::os::fd::RawFd;
use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};
use thiserror::Error as ThisError;

use crate::device::AckPolicy;
use crate::protocol::{FaultKind, Jitter, Mode};
use crate::relay::Timeouts;
use crate::schedule::Limits;
use irqstorm_protocol::control::SpinInfo;

/// Most devices per process.
pub const MAX_SOCKET_COUNT: u32 = 64;
/// Most sources per device.
pub const MAX_SOURCES: u16 = 64;
/// Highest `--max-rate`.
pub const MAX_MAX_RATE: u32 = 10_000_000;
/// Highest `--max-outstanding`.
pub const MAX_MAX_OUTSTANDING: u32 = 1 << 20;
/// Highest `--spin-us`.
pub const MAX_SPIN_US: u32 = 1000;
/// Highest front-end timeout (ms): one hour.
pub const MAX_TIMEOUT_MS: u32 = 3_600_000;

fn ms(v: u32) -> std::time::Duration {
    std::time::Duration::from_millis(u64::from(v))
}

/// Virtio device ids QEMU names (others abort QEMU; see LAB-NOTES).
pub fn qemu_named_id(id: u32) -> bool {
    matches!(id, 1..=13 | 16..=41 | 45)
}

/// Errors in the command line.
#[derive(Debug, ThisError, PartialEq, Eq)]
pub enum Error {
    /// Neither or both socket options.
    #[error("give exactly one of --socket-path and --socket-fd")]
    SocketChoice,
    /// `--socket-fd` with more than one device.
    #[error("--socket-fd serves exactly one device (--socket-count 1)")]
    FdWithCount,
    /// Out of range value.
    #[error("{0} out of range ({1})")]
    Range(&'static str, String),
}

/// irqstorm vhost-user back end: a timer / interrupt-storm virtio device.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Args {
    /// vhost-user Unix socket path; with --socket-count N > 1 the sockets are PATH0..PATH{N-1}.
    #[arg(short = 's', long)]
    pub socket_path: Option<PathBuf>,
    /// An already listening vhost-user socket file descriptor (one device).
    #[arg(long)]
    pub socket_fd: Option<RawFd>,
    /// Number of independent devices (one per guest).
    #[arg(short = 'c', long, default_value_t = 1)]
    pub socket_count: u32,
    /// Event sources per device (1..=64).
    #[arg(long, default_value_t = 8)]
    pub sources: u16,
    /// Virtio device id the front end uses (must be one QEMU names; informative for the back end).
    #[arg(long, default_value_t = 21)]
    pub virtio_id: u32,
    /// Host control socket (line-delimited JSON, mode 0600).
    #[arg(long)]
    pub control_socket: Option<PathBuf>,
    /// Cap on the sum of running sources' rates per device (events/s).
    #[arg(long, default_value_t = 500_000)]
    pub max_rate: u32,
    /// Delivered-but-unacked records tracked per device.
    #[arg(long, default_value_t = 16384)]
    pub max_outstanding: u32,
    /// Smallest timer period / storm inter-burst gap (ns).
    #[arg(long, default_value_t = 2_000)]
    pub min_period_ns: u32,
    /// Largest storm burst.
    #[arg(long, default_value_t = 1024)]
    pub max_burst: u32,
    /// Busy-wait the last N microseconds before a deadline (0 = timerfd
    /// only); `auto` spins 50 us only if the host has a core to spare for
    /// it beside the guests' vCPUs (see --guest-vcpus) and this process.
    #[arg(long, default_value = "auto")]
    pub spin_us: String,
    /// How acks reach the device (spec §6.4.1): `kick` (one wake-up per ack
    /// buffer), `poll` (the generator drains them on its wake-ups; a kick
    /// only at half a ring), or `auto`: poll while events are due within
    /// 2 ms and the TSC time base is calibrated, else kick.
    #[arg(long, default_value = "auto", value_name = "auto|kick|poll")]
    pub acks: AckPolicy,
    /// vCPUs the guests served by this back end run in total, for
    /// `--spin-us auto` (default: one per device).
    #[arg(long)]
    pub guest_vcpus: Option<u32>,
    /// Offer IRQSTORM_F_FAULT_INJECT and accept `fault` commands on the control socket.
    #[arg(long)]
    pub fault_injection: bool,
    /// A front end must send its first whole vhost-user message within this many ms of connecting.
    #[arg(long, default_value_t = 10_000)]
    pub first_message_timeout_ms: u32,
    /// Every vhost-user message must be whole within this many ms of its first byte.
    #[arg(long, default_value_t = 5_000)]
    pub message_timeout_ms: u32,
    /// Test hook: wait this many ms between a front end's end and the device reset it causes
    /// (tests/vhost_user.rs holds that window open to check that `info` says disconnected only
    /// once the reset has settled the ledger).
    #[arg(long, default_value_t = 0, hide = true)]
    pub test_reset_delay_ms: u32,
    /// Client mode.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a command to a running back end's control socket and print the reply.
    Ctl(CtlArgs),
}

/// `ctl` arguments.
#[derive(ClapArgs, Debug, Clone, PartialEq, Eq)]
pub struct CtlArgs {
    /// Control socket path.
    #[arg(long)]
    pub control_socket: PathBuf,
    /// Device index.
    #[arg(long, default_value_t = 0)]
    pub device: u32,
    /// The command.
    #[command(subcommand)]
    pub cmd: CtlCmd,
}

/// Control commands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum CtlCmd {
    /// Device information and limits.
    Info,
    /// Configure a source (it must be stopped).
    Configure {
        /// Source index.
        #[arg(long)]
        source: u16,
        /// off | oneshot | periodic | storm
        #[arg(long)]
        mode: Mode,
        /// none | uniform | exponential
        #[arg(long, default_value = "none")]
        jitter: Jitter,
        /// STORM: events per due time.
        #[arg(long)]
        burst: Option<u16>,
        /// STORM: mean events/s.
        #[arg(long)]
        rate_hz: Option<u32>,
        /// ONESHOT delay / PERIODIC period (ns).
        #[arg(long)]
        period_ns: Option<u64>,
        /// Event limit (0 = none).
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Time limit in ns (0 = none).
        #[arg(long, default_value_t = 0)]
        duration_ns: u64,
        /// UNIFORM jitter bound (ns).
        #[arg(long, default_value_t = 0)]
        jitter_ns: u64,
        /// Records per notification.
        #[arg(long, default_value_t = 0)]
        moderation_events: u32,
        /// Notification delay bound (us).
        #[arg(long, default_value_t = 0)]
        moderation_delay_us: u32,
        /// PRNG seed (0 = default).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Start a source, or all configured ones.
    Start {
        /// Source index (omit for all).
        #[arg(long)]
        source: Option<u16>,
        /// Delay before t0 (ns).
        #[arg(long, default_value_t = 0)]
        start_delay_ns: u64,
    },
    /// Stop a source, or all.
    Stop {
        /// Source index (omit for all).
        #[arg(long)]
        source: Option<u16>,
    },
    /// Statistics (JSON).
    Stats {
        /// Include full histogram buckets.
        #[arg(long)]
        buckets: bool,
    },
    /// Zero the statistics.
    ResetStats,
    /// Inject faults (needs --fault-injection and a driver that negotiated it).
    Fault {
        /// dup_used_id | short_len | long_len | bad_source | zero_count | seq_gap
        #[arg(long)]
        kind: FaultKind,
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Send one raw JSON line.
    Raw {
        /// The JSON request.
        json: String,
    },
}

/// Where the vhost-user socket(s) come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSource {
    /// Paths to listen on, one per device.
    Paths(Vec<PathBuf>),
    /// An inherited listening fd (one device).
    Fd(RawFd),
}

/// Validated back end configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Sockets.
    pub sockets: SocketSource,
    /// Per-device limits.
    pub limits: Limits,
    /// Virtio id (informative).
    pub virtio_id: u32,
    /// Control socket.
    pub control_socket: Option<PathBuf>,
    /// Spin window (ns).
    pub spin_ns: u64,
    /// How the spin window was chosen (reported by `info`).
    pub spin: SpinInfo,
    /// `--acks`.
    pub acks: AckPolicy,
    /// Fault injection offered.
    pub fault_injection: bool,
    /// Limits on front ends' vhost-user messages.
    pub front_end_timeouts: Timeouts,
    /// `--test-reset-delay-ms`.
    pub test_reset_delay: std::time::Duration,
}

impl Config {
    /// Number of devices.
    pub fn device_count(&self) -> usize {
        match &self.sockets {
            SocketSource::Paths(p) => p.len(),
            SocketSource::Fd(_) => 1,
        }
    }
}

/// The spin window `auto` picks when it spins.
pub const AUTO_SPIN_US: u32 = 50;

/// `--spin-us`: a number, or `auto`: spin [`AUTO_SPIN_US`] only if `cores`
/// leave at least one core beside `vcpus` and one for this process (the
/// spin busy-waits on a core the vCPUs would otherwise use: on 2 cores
/// with 2 vCPUs it measured a third of a core taken from them).
pub fn choose_spin(arg: &str, vcpus: u32, cores: u32) -> Result<SpinInfo, Error> {
    if arg != "auto" {
        let us: u32 = arg.parse().map_err(|_| {
            Error::Range("--spin-us", format!("{arg:?} is neither auto nor a number"))
        })?;
        let us = range("--spin-us", us, 0, MAX_SPIN_US)?;
        return Ok(SpinInfo {
            requested: arg.to_string(),
            us,
            reason: "given".into(),
        });
    }
    let spare = i64::from(cores) - i64::from(vcpus) - 1;
    let us = if spare >= 1 { AUTO_SPIN_US } else { 0 };
    Ok(SpinInfo {
        requested: "auto".into(),
        us,
        reason: format!(
            "{cores} host cores, {vcpus} guest vCPUs + 1 for the back end: {}",
            if spare >= 1 {
                format!("{spare} to spare")
            } else {
                "none to spare".to_string()
            }
        ),
    })
}

fn range<T: PartialOrd + std::fmt::Display>(
    name: &'static str,
    v: T,
    lo: T,
    hi: T,
) -> Result<T, Error> {
    if v < lo || v > hi {
        return Err(Error::Range(name, format!("{v} not in {lo}..={hi}")));
    }
    Ok(v)
}

impl TryFrom<Args> for Config {
    type Error = Error;

    fn try_from(a: Args) -> Result<Self, Error> {
        let count = range("--socket-count", a.socket_count, 1, MAX_SOCKET_COUNT)?;
        let sockets = match (a.socket_path, a.socket_fd) {
            (Some(p), None) => {
                if count == 1 {
                    SocketSource::Paths(vec![p])
                } else {
                    SocketSource::Paths(
                        (0..count)
                            .map(|i| {
                                let mut s = p.clone().into_os_string();
                                s.push(i.to_string());
                                PathBuf::from(s)
                            })
                            .collect(),
                    )
                }
            }
            (None, Some(fd)) => {
                if count != 1 {
                    return Err(Error::FdWithCount);
                }
                if fd < 0 {
                    return Err(Error::Range("--socket-fd", fd.to_string()));
                }
                SocketSource::Fd(fd)
            }
            _ => return Err(Error::SocketChoice),
        };
        if !qemu_named_id(a.virtio_id) {
            return Err(Error::Range(
                "--virtio-id",
                format!("{} is not an id QEMU names (1-13, 16-41, 45)", a.virtio_id),
            ));
        }
        let devices = match &sockets {
            SocketSource::Paths(p) => p.len() as u32,
            SocketSource::Fd(_) => 1,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let spin = choose_spin(&a.spin_us, a.guest_vcpus.unwrap_or(devices), cores)?;
        let limits = Limits {
            num_sources: range("--sources", a.sources, 1, MAX_SOURCES)?,
            max_rate_hz: range("--max-rate", a.max_rate, 1, MAX_MAX_RATE)?,
            max_outstanding: range(
                "--max-outstanding",
                a.max_outstanding,
                0,
                MAX_MAX_OUTSTANDING,
            )?,
            min_period_ns: range("--min-period-ns", a.min_period_ns, 1_000, 1_000_000_000)?,
            max_burst: range("--max-burst", a.max_burst, 1, u32::from(u16::MAX))?,
        };
        Ok(Config {
            sockets,
            limits,
            virtio_id: a.virtio_id,
            control_socket: a.control_socket,
            spin_ns: u64::from(spin.us) * 1000,
            spin,
            acks: a.acks,
            fault_injection: a.fault_injection,
            front_end_timeouts: Timeouts {
                first_message: ms(range(
                    "--first-message-timeout-ms",
                    a.first_message_timeout_ms,
                    10,
                    MAX_TIMEOUT_MS,
                )?),
                message: ms(range(
                    "--message-timeout-ms",
                    a.message_timeout_ms,
                    10,
                    MAX_TIMEOUT_MS,
                )?),
            },
            test_reset_delay: ms(range(
                "--test-reset-delay-ms",
                a.test_reset_delay_ms,
                0,
                MAX_TIMEOUT_MS,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Config, Error> {
        let a = Args::try_parse_from(std::iter::once("irqstorm-backend").chain(v.iter().copied()))
            .map_err(|e| Error::Range("clap", e.to_string()))?;
        Config::try_from(a)
    }

    #[test]
    fn spin_auto_spins_only_with_a_core_to_spare() {
        let s = choose_spin("auto", 2, 2).unwrap();
        assert_eq!((s.us, s.requested.as_str()), (0, "auto"));
        assert_eq!(
            s.reason,
            "2 host cores, 2 guest vCPUs + 1 for the back end: none to spare"
        );
        assert_eq!(choose_spin("auto", 2, 3).unwrap().us, 0);
        let s = choose_spin("auto", 2, 4).unwrap();
        assert_eq!(s.us, AUTO_SPIN_US);
        assert!(s.reason.ends_with("1 to spare"), "{}", s.reason);
        let s = choose_spin("20", 2, 2).unwrap();
        assert_eq!((s.us, s.reason.as_str()), (20, "given"));
        assert!(choose_spin("1001", 1, 8).is_err());
        let e = choose_spin("fast", 1, 8).unwrap_err().to_string();
        assert!(e.contains("neither auto nor a number"), "{e}");
    }

    #[test]
    fn socket_naming() {
        let c = parse(&["-s", "/tmp/x.sock"]).unwrap();
        assert_eq!(c.sockets, SocketSource::Paths(vec!["/tmp/x.sock".into()]));
        let c = parse(&["-s", "/tmp/x.sock", "-c", "3"]).unwrap();
        assert_eq!(
            c.sockets,
            SocketSource::Paths(vec![
                "/tmp/x.sock0".into(),
                "/tmp/x.sock1".into(),
                "/tmp/x.sock2".into()
            ])
        );
        assert_eq!(c.device_count(), 3);
        assert_eq!(c.limits.num_sources, 8);
        assert_eq!(c.virtio_id, 21);
        assert_eq!(
            parse(&["--socket-fd", "3"]).unwrap().sockets,
            SocketSource::Fd(3)
        );
    }

    #[test]
    fn bad_arguments() {
        assert_eq!(parse(&[]), Err(Error::SocketChoice));
        assert_eq!(
            parse(&["--socket-fd", "3", "-c", "2"]),
            Err(Error::FdWithCount)
        );
        assert!(matches!(
            parse(&["-s", "x", "--sources", "65"]),
            Err(Error::Range("--sources", _))
        ));
        assert!(matches!(
            parse(&["-s", "x", "--sources", "0"]),
            Err(Error::Range("--sources", _))
        ));
        assert!(matches!(
            parse(&["-s", "x", "--virtio-id", "14"]),
            Err(Error::Range("--virtio-id", _))
        ));
        assert!(matches!(
            parse(&["-s", "x", "-c", "0"]),
            Err(Error::Range("--socket-count", _))
        ));
        assert!(matches!(
            parse(&["-s", "x", "--max-rate", "-1"]),
            Err(Error::Range("clap", _))
        ));
    }

    #[test]
    fn ctl_subcommand_parses() {
        let a = Args::try_parse_from([
            "irqstorm-backend",
            "ctl",
            "--control-socket",
            "/tmp/c",
            "configure",
            "--source",
            "2",
            "--mode",
            "storm",
            "--rate-hz",
            "1000",
        ])
        .unwrap();
        match a.command {
            Some(Command::Ctl(c)) => {
                assert_eq!(c.device, 0);
                assert!(matches!(c.cmd, CtlCmd::Configure { source: 2, .. }));
            }
            other => panic!("{other:?}"),
        }
    }
}
