// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! irqstorm vhost-user back end (see docs/device-spec.md).
//!
//! One process serves `--socket-count` independent devices. Each device has a
//! vhost-user daemon loop (serve a front end; on disconnect reset the device,
//! rebuild and listen again) and a generator thread (event-manager loop over a
//! timerfd). One control socket serves all devices.

pub mod args;
pub mod backend;
pub mod control;
pub mod device;
pub mod generator;
pub mod protocol;
pub mod restart;
pub mod schedule;
pub mod socket;

use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
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
}

/// Result type of this crate's process-level functions.
pub type Result<T> = std::result::Result<T, Error>;

/// Serves front ends on `listener` forever: one connection at a time; after
/// each disconnect the device is reset and the daemon is rebuilt.
pub fn serve_device(shared: Arc<Shared>, mut listener: Listener) -> Result<()> {
    loop {
        let backend = Arc::new(IrqBackend::new(shared.clone())?);
        let mut daemon = VhostUserDaemon::new(
            format!("irqstorm-vu{}", shared.index),
            backend.clone(),
            GuestMemoryAtomic::new(GuestMemoryMmap::new()),
        )
        .map_err(Error::Daemon)?;
        if let Err(e) = daemon.start(&mut listener) {
            error!("device {}: accepting a front end: {e}", shared.index);
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        info!("device {}: front end connected", shared.index);
        // Let the worker thread hand us the vrings right away.
        if let Some(h) = daemon.get_epoll_handlers().first() {
            if let Err(e) = h.register_listener(
                backend.attach_fd().as_raw_fd(),
                EventSet::IN,
                u64::from(backend::ATTACH_EVENT),
            ) {
                warn!("device {}: registering the attach event: {e}", shared.index);
            }
        }
        shared.connected.store(true, Ordering::Release);
        let r = daemon.wait();
        shared.connected.store(false, Ordering::Release);
        backend.exit();
        match r {
            Ok(()) => info!("device {}: front end disconnected", shared.index),
            Err(e) => warn!("device {}: connection ended: {e}", shared.index),
        }
        shared.reset();
    }
}

/// Runs the back end described by `config` (does not return unless setup fails).
pub fn run(config: Config) -> Result<()> {
    let n = config.device_count();
    let mut devices = Vec::with_capacity(n);
    let mut generators = Vec::with_capacity(n);
    for i in 0..n {
        let shared = Arc::new(Shared::new(
            i,
            config.limits,
            config.fault_injection,
            config.virtio_id,
        )?);
        generators.push(GeneratorThread::spawn(shared.clone(), config.spin_ns)?);
        devices.push(shared);
    }
    let listeners: Vec<Listener> = match &config.sockets {
        SocketSource::Paths(paths) => paths
            .iter()
            .map(|p| Ok(socket::bind_owner_only(p)?.into()))
            .collect::<Result<_>>()?,
        SocketSource::Fd(fd) => {
            // SAFETY: the user passed this fd as a listening Unix socket that
            // this process owns from now on.
            vec![unsafe { UnixListener::from_raw_fd(*fd) }.into()]
        }
    };
    if let Some(p) = &config.control_socket {
        control::spawn_server(p, devices.clone())?;
    }
    let mut handles = Vec::new();
    for (shared, listener) in devices.iter().cloned().zip(listeners) {
        let name = format!("irqstorm-dev{}", shared.index);
        let h = std::thread::Builder::new()
            .name(name)
            .spawn(move || serve_device(shared, listener))
            .map_err(Error::Spawn)?;
        handles.push(h);
    }
    info!("serving {n} device(s)");
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
