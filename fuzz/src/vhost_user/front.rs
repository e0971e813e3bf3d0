// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The liveness check: a well-formed front end (vhost crate's `Frontend`,
//! memfd guest memory, a real controlq) must still be served after the
//! fuzzed connections, within a bound, and the device's books must balance.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use irqstorm_backend::protocol::{
    CtrlReq, CtrlResp, DeviceConfig, Opcode, Status, CONFIG_SIZE, CTRL_RESP_SIZE, MAGIC,
    SPEC_VERSION,
};
use irqstorm_protocol::client::Client;
use irqstorm_protocol::control::{Request, StatsReply};
use vhost::vhost_user::message::{
    VhostUserConfigFlags, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::rings::{Expect, Ring};

const MEM_SIZE: usize = 1 << 20;
const QSIZE: u16 = 16;
const REQ: u64 = 0x8000;
const REPLY: u64 = 0x8100;

fn guest_memory() -> Result<(GuestMemoryMmap, File), String> {
    // SAFETY: memfd_create with a valid NUL-terminated name; checked below.
    let fd = unsafe { libc::memfd_create(c"irqstorm-fuzz-front".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(MEM_SIZE as u64).map_err(|e| e.to_string())?;
    let dup = file.try_clone().map_err(|e| e.to_string())?;
    let mem = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(0),
        MEM_SIZE,
        Some(FileOffset::new(dup, 0)),
    )])
    .map_err(|e| e.to_string())?;
    Ok((mem, file))
}

/// Connects as a well-formed front end, checks the configuration space and
/// answers one GET_INFO on controlq within `timeout`, then checks through
/// the control socket that conservation holds. Returns the controlq round
/// trip time.
pub fn check(
    vu: &Path,
    ctl: &Path,
    num_sources: u16,
    timeout: Duration,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    let s = UnixStream::connect(vu).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut fe = Frontend::from_stream(s, 3);
    let e = |what: &'static str| move |err: vhost::Error| format!("{what}: {err}");
    fe.set_owner().map_err(e("SET_OWNER"))?;
    let offered = fe.get_features().map_err(e("GET_FEATURES"))?;
    if offered & (1 << VIRTIO_F_VERSION_1) == 0 {
        return Err(format!("VERSION_1 not offered ({offered:#x})"));
    }
    let pf = fe
        .get_protocol_features()
        .map_err(e("GET_PROTOCOL_FEATURES"))?;
    let want = VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ;
    if !pf.contains(want) {
        return Err(format!("protocol features {pf:?} lack CONFIG | MQ"));
    }
    fe.set_protocol_features(want)
        .map_err(e("SET_PROTOCOL_FEATURES"))?;
    let nq = fe.get_queue_num().map_err(e("GET_QUEUE_NUM"))?;
    if nq != 3 {
        return Err(format!("{nq} queues, want 3"));
    }
    fe.set_features((1 << VIRTIO_F_VERSION_1) | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits())
        .map_err(e("SET_FEATURES"))?;
    let (_, cfg) = fe
        .get_config(
            0,
            CONFIG_SIZE as u32,
            VhostUserConfigFlags::WRITABLE,
            &[0u8; CONFIG_SIZE],
        )
        .map_err(e("GET_CONFIG"))?;
    let (magic, ver, cfg) = DeviceConfig::decode(&cfg).map_err(|e| e.to_string())?;
    if (magic, ver, cfg.num_sources) != (MAGIC, SPEC_VERSION, num_sources) {
        return Err(format!(
            "config space magic {magic:#x} version {ver} sources {}",
            cfg.num_sources
        ));
    }
    let (mem, _file) = guest_memory()?;
    let region = mem.iter().next().ok_or("no guest region")?;
    let info = VhostUserMemoryRegionInfo::from_guest_region(region).map_err(e("region"))?;
    fe.set_mem_table(&[info]).map_err(e("SET_MEM_TABLE"))?;
    let hva = |gpa: u64| -> Result<u64, String> {
        mem.get_host_address(GuestAddress(gpa))
            .map(|p| p as u64)
            .map_err(|e| e.to_string())
    };
    let mut ring = Ring::new(QSIZE, 0x1000, 0x2000, 0x3000, false);
    fe.set_vring_num(0, QSIZE).map_err(e("SET_VRING_NUM"))?;
    fe.set_vring_addr(
        0,
        &VringConfigData {
            queue_max_size: QSIZE,
            queue_size: QSIZE,
            flags: 0,
            desc_table_addr: hva(ring.desc)?,
            used_ring_addr: hva(ring.used)?,
            avail_ring_addr: hva(ring.avail)?,
            log_addr: None,
        },
    )
    .map_err(e("SET_VRING_ADDR"))?;
    fe.set_vring_base(0, 0).map_err(e("SET_VRING_BASE"))?;
    let call = EventFd::new(EFD_NONBLOCK).map_err(|e| e.to_string())?;
    let kick = EventFd::new(EFD_NONBLOCK).map_err(|e| e.to_string())?;
    fe.set_vring_call(0, &call).map_err(e("SET_VRING_CALL"))?;
    fe.set_vring_kick(0, &kick).map_err(e("SET_VRING_KICK"))?;
    fe.set_vring_enable(0, true)
        .map_err(e("SET_VRING_ENABLE"))?;
    let req = CtrlReq::new(Opcode::GetInfo as u16, 0, 0);
    mem.write_slice(&req.raw, GuestAddress(REQ))
        .map_err(|e| e.to_string())?;
    let t_req = Instant::now();
    ring.post(
        &mem,
        &[(REQ, 64, false), (REPLY, 64, true)],
        None,
        Expect::Good,
    )
    .ok_or("posting the request")?;
    kick.write(1).map_err(|e| e.to_string())?;
    let end = Instant::now() + timeout;
    let (id, len) = loop {
        if let Some(u) = ring.take_used(&mem).pop() {
            break u;
        }
        if Instant::now() > end {
            return Err(format!("no GET_INFO reply on controlq within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let rtt = t_req.elapsed();
    let mut b = [0u8; CTRL_RESP_SIZE];
    mem.read_slice(&mut b, GuestAddress(REPLY))
        .map_err(|e| e.to_string())?;
    let r = CtrlResp::decode(&b).map_err(|e| e.to_string())?;
    if (id, len, r.status, r.info().num_sources) != (0, 64, Status::Ok as u16, num_sources) {
        return Err(format!(
            "GET_INFO: used ({id}, {len}), status {}, {} sources",
            r.status,
            r.info().num_sources
        ));
    }
    drop(fe);
    let left = timeout
        .saturating_sub(t0.elapsed())
        .max(Duration::from_secs(1));
    let reply = stats(ctl, left)?;
    if !reply.stats.totals.conserved {
        return Err(format!("conservation broken: {:?}", reply.stats.totals));
    }
    Ok(rtt)
}

/// Device 0's statistics from the control socket.
pub fn stats(ctl: &Path, timeout: Duration) -> Result<StatsReply, String> {
    Client::connect(ctl, timeout)
        .and_then(|mut c| {
            c.call(&Request::Stats {
                device: Some(0),
                buckets: Some(false),
            })
        })
        .map_err(|e| e.to_string())
}
