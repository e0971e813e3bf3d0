// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! irqstorm vhost-user back end (see docs/device-spec.md).
//!
//! One process serves `--socket-count` independent devices. Each device
//! accepts one front end at a time and relays its vhost-user messages to a
//! fresh vhost-user daemon over a private socket ([`relay`]: silent or
//! stalling front ends are dropped); when the connection ends the device is
//! reset and the next front end is accepted. Each device also has a
//! generator thread (event-manager loop over a timerfd). One control socket
//! serves all devices. Guest memory is guarded against SIGBUS ([`memguard`]).

pub mod args;
pub mod backend;
pub mod control;
pub mod device;
pub mod generator;
pub mod memguard;
pub mod protocol;
pub mod relay;
pub mod restart;
pub mod schedule;
pub mod socket;
pub mod tsc;

use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use log::{error, info, warn};
use thiserror::Error as ThisError;
use vhost::vhost_user::Listener;
use vhost_user_backend::VhostUserDaemon;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;

use crate::args::{Config, SocketSource};
use crate::backend::{IrqBackend, Shared};
use crate::generator::GeneratorThread;

/// Errors of the back end process.
#[derive(Debug, ThisError)]
pub enum Error {
    /// Back end construction failed.
    #[error("back end: {0}")]
    Backend(#[from] backend::Error),
    /// Generator failed.
    #[error("generator: {0}")]
    Generator(#[from] generator::Error),
    /// Control socket failed.
    #[error("{0}")]
    Control(#[from] control::Error),
    /// Creating a vhost-user listener failed.
    #[error("vhost-user socket {0}")]
    Listener(#[from] socket::Error),
    /// Creating the daemon failed.
    #[error("daemon: {0}")]
    Daemon(vhost_user_backend::Error),
    /// Spawning a thread failed.
    #[error("spawn: {0}")]
    Spawn(std::io::Error),
    /// Registering an event with the daemon's worker failed.
    #[error("registering a worker event: {0}")]
    Register(std::io::Error),
}

/// Result type of this crate's process-level functions.
pub type Result<T> = std::result::Result<T, Error>;

/// Serves front ends on `listener` forever, one connection at a time; after
/// each the device is reset, and only then shows as disconnected (`info`),
/// so a client that saw `connected: false` reads the reset's ledger: no
/// raise of the gone front end still pending. `reset_delay` is a test hook
/// (`--test-reset-delay-ms`) that widens the time before that reset.
pub fn serve_device(
    shared: Arc<Shared>,
    listener: UnixListener,
    timeouts: relay::Timeouts,
    reset_delay: std::time::Duration,
) -> Result<()> {
    loop {
        let front = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                error!("device {}: accepting a front end: {e}", shared.index);
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        shared.front_end.accepted();
        info!("device {}: front end connected", shared.index);
        let r = serve_connection(&shared, front, timeouts);
        shared.set_front_end(None);
        std::thread::sleep(reset_delay);
        shared.reset();
        shared.connected.store(false, Ordering::Release);
        if let Err(e) = r {
            // Out of fds or threads, say: this front end is dropped, the
            // device keeps listening.
            shared.front_end.setup_failed();
            error!("device {}: serving a front end: {e}", shared.index);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Serves one front end: a fresh daemon fed by the relay over a private
/// socket, until the connection ends.
fn serve_connection(shared: &Arc<Shared>, front: UnixStream, t: relay::Timeouts) -> Result<()> {
    let backend = Arc::new(IrqBackend::new(shared.clone())?);
    let mut daemon = VhostUserDaemon::new(
        format!("irqstorm-vu{}", shared.index),
        backend.clone(),
        GuestMemoryAtomic::new(GuestMemoryMmap::new()),
    )
    .map_err(Error::Daemon)?;
    // Declared after `daemon`, so dropped before it: the daemon's drop
    // joins the worker thread, which only a stop event ends.
    let _stop = StopWorkerOnDrop(&backend);
    if let Some(h) = daemon.get_epoll_handlers().first() {
        for (fd, ev) in [
            (backend.stop_fd(), backend::STOP_EVENT),
            // Let the worker thread hand us the vrings right away.
            (backend.attach_fd(), backend::ATTACH_EVENT),
        ] {
            h.register_listener(fd.as_raw_fd(), EventSet::IN, u64::from(ev))
                .map_err(Error::Register)?;
        }
    }
    let (private, to_daemon) = socket::private_listener_with_peer()?;
    daemon
        .start(&mut Listener::from(private))
        .map_err(Error::Daemon)?;
    shared.set_front_end(front.try_clone().ok());
    shared.connected.store(true, Ordering::Release);
    let relay_end = relay::relay(&front, &to_daemon, t);
    let r = daemon.wait();
    shared.front_end.ended(&relay_end);
    match (&relay_end, r) {
        (relay::End::FrontEndClosed, Ok(())) => {
            info!("device {}: front end disconnected", shared.index)
        }
        (_, Ok(())) => warn!("device {}: connection ended: {relay_end}", shared.index),
        (_, Err(e)) => warn!(
            "device {}: connection ended: {relay_end}; daemon: {e}",
            shared.index
        ),
    }
    Ok(())
}

/// Stops an [`IrqBackend`]'s worker thread when dropped.
struct StopWorkerOnDrop<'a>(&'a IrqBackend);

impl Drop for StopWorkerOnDrop<'_> {
    fn drop(&mut self) {
        self.0.exit();
    }
}

/// Runs the back end described by `config` (does not return unless setup fails).
pub fn run(config: Config) -> Result<()> {
    let n = config.device_count();
    let mut devices = Vec::with_capacity(n);
    let mut generators = Vec::with_capacity(n);
    for i in 0..n {
        let mut shared = Shared::new(i, config.limits, config.fault_injection, config.virtio_id)?;
        shared.spin = config.spin.clone();
        shared.device().set_ack_policy(config.acks);
        let shared = Arc::new(shared);
        generators.push(GeneratorThread::spawn(shared.clone(), config.spin_ns)?);
        devices.push(shared);
    }
    let listeners: Vec<UnixListener> = match &config.sockets {
        SocketSource::Paths(paths) => paths
            .iter()
            .map(|p| Ok(socket::bind_owner_only(p)?))
            .collect::<Result<_>>()?,
        SocketSource::Fd(fd) => {
            // SAFETY: the user passed this fd as a listening Unix socket that
            // this process owns from now on.
            vec![unsafe { UnixListener::from_raw_fd(*fd) }]
        }
    };
    if let Some(p) = &config.control_socket {
        control::spawn_server(p, devices.clone())?;
    }
    let mut handles = Vec::new();
    let timeouts = config.front_end_timeouts;
    let reset_delay = config.test_reset_delay;
    for (shared, listener) in devices.iter().cloned().zip(listeners) {
        let name = format!("irqstorm-dev{}", shared.index);
        let h = std::thread::Builder::new()
            .name(name)
            .spawn(move || serve_device(shared, listener, timeouts, reset_delay))
            .map_err(Error::Spawn)?;
        handles.push(h);
    }
    info!(
        "serving {n} device(s); spin {} us ({}: {})",
        config.spin.us, config.spin.requested, config.spin.reason
    );
    let mut result = Ok(());
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => error!("device thread panicked"),
        }
    }
    for g in generators {
        g.stop();
    }
    result
}
