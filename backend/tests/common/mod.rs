// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A small vhost-user front end ("guest") for tests and benchmarks: memfd
//! guest memory, split rings written by hand, real kick/call eventfds, and
//! the `vhost` crate's `Frontend` for the protocol.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use irqstorm_backend::protocol::{AckRecord, CtrlReq, CtrlResp, EventRecord, ACK_SIZE, EVENT_SIZE};
use irqstorm_protocol::client::{Client, DEFAULT_TIMEOUT};
use serde_json::Value;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::bindings::virtio_ring::{
    VIRTIO_RING_F_EVENT_IDX, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub const MEM_SIZE: usize = 8 << 20;
pub const QSIZE: [u16; 3] = [16, 256, 64];
const RING_BASE: u64 = 0x1_0000;
const CTRL_BUF: u64 = 0x8_0000;
const EVENT_BUF: u64 = 0x10_0000;
const ACK_BUF: u64 = 0x20_0000;
const ACK_SLOT: u64 = (ACK_SIZE * 64) as u64;

/// Shared guest memory backed by a memfd.
pub fn guest_memory() -> (GuestMemoryMmap, File) {
    let file = memfd(MEM_SIZE as u64);
    let mem = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(0),
        MEM_SIZE,
        Some(FileOffset::new(file.try_clone().unwrap(), 0)),
    )])
    .unwrap();
    (mem, file)
}

/// A memfd of `len` bytes.
pub fn memfd(len: u64) -> File {
    // SAFETY: memfd_create with a valid C string; the fd is checked below.
    let fd = unsafe { libc::memfd_create(c"irqstorm-test".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create failed");
    // SAFETY: fd is a fresh, owned file descriptor.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len).unwrap();
    file
}

/// Where a test front end puts things in guest memory, and what memory
/// table it sends.
pub struct Layout {
    /// The front end's own view of guest memory.
    pub mem: GuestMemoryMmap,
    /// The file behind it.
    pub file: File,
    /// The region sent with SET_MEM_TABLE.
    pub region: VhostUserMemoryRegionInfo,
    /// GPA of the first ring (ring i at `ring_base * (i + 1)`).
    pub ring_base: u64,
}

impl Layout {
    /// The usual layout: 8 MiB of memfd, rings from GPA 64 KiB.
    pub fn standard() -> Self {
        let (mem, file) = guest_memory();
        let region =
            VhostUserMemoryRegionInfo::from_guest_region(mem.iter().next().unwrap()).unwrap();
        Self {
            mem,
            file,
            region,
            ring_base: RING_BASE,
        }
    }
}

/// Driver side of one split ring.
pub struct Ring {
    pub idx: usize,
    pub size: u16,
    base: u64,
    avail_idx: u16,
    last_used: u16,
}

impl Ring {
    fn new(idx: usize, size: u16, ring_base: u64) -> Self {
        Self {
            idx,
            size,
            base: ring_base * (idx as u64 + 1),
            avail_idx: 0,
            last_used: 0,
        }
    }
    pub fn desc(&self) -> u64 {
        self.base
    }
    pub fn avail(&self) -> u64 {
        self.base + 16 * u64::from(self.size)
    }
    pub fn used(&self) -> u64 {
        self.base + 0x8000
    }
    /// Writes a chain at descriptor ids `first..` and makes it available.
    pub fn post(&mut self, m: &GuestMemoryMmap, first: u16, descs: &[(u64, u32, bool)]) {
        let n = descs.len();
        for (i, &(addr, len, w)) in descs.iter().enumerate() {
            let id = first + i as u16;
            let mut flags = if w { VRING_DESC_F_WRITE as u16 } else { 0 };
            if i + 1 < n {
                flags |= VRING_DESC_F_NEXT as u16;
            }
            let a = GuestAddress(self.desc() + 16 * u64::from(id));
            m.write_obj(addr.to_le(), a).unwrap();
            m.write_obj(len.to_le(), GuestAddress(a.0 + 8)).unwrap();
            m.write_obj(flags.to_le(), GuestAddress(a.0 + 12)).unwrap();
            m.write_obj((id + 1).to_le(), GuestAddress(a.0 + 14))
                .unwrap();
        }
        let slot = u64::from(self.avail_idx % self.size);
        m.write_obj(first.to_le(), GuestAddress(self.avail() + 4 + 2 * slot))
            .unwrap();
        fence(Ordering::SeqCst);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        m.write_obj(self.avail_idx.to_le(), GuestAddress(self.avail() + 2))
            .unwrap();
        fence(Ordering::SeqCst);
    }
    /// New used entries (id, len).
    pub fn take_used(&mut self, m: &GuestMemoryMmap) -> Vec<(u32, u32)> {
        fence(Ordering::SeqCst);
        let idx: u16 = u16::from_le(m.read_obj(GuestAddress(self.used() + 2)).unwrap());
        let mut v = Vec::new();
        while self.last_used != idx {
            let slot = u64::from(self.last_used % self.size);
            let a = self.used() + 4 + 8 * slot;
            let id: u32 = u32::from_le(m.read_obj(GuestAddress(a)).unwrap());
            let len: u32 = u32::from_le(m.read_obj(GuestAddress(a + 4)).unwrap());
            v.push((id, len));
            self.last_used = self.last_used.wrapping_add(1);
        }
        // Ask for an interrupt on the next used entry (EVENT_IDX).
        m.write_obj(
            self.last_used.to_le(),
            GuestAddress(self.avail() + 4 + 2 * u64::from(self.size)),
        )
        .unwrap();
        v
    }
    /// Avail index as last published.
    pub fn avail_idx(&self) -> u16 {
        self.avail_idx
    }
    /// Whether the device wants a kick after the avail index moved from
    /// `old` to the current value (`avail_event` with EVENT_IDX, else the
    /// used ring's NO_NOTIFY flag).
    pub fn needs_kick(&self, m: &GuestMemoryMmap, old: u16, event_idx: bool) -> bool {
        fence(Ordering::SeqCst);
        if event_idx {
            let ev: u16 = u16::from_le(
                m.read_obj(GuestAddress(self.used() + 4 + 8 * u64::from(self.size)))
                    .unwrap(),
            );
            let new = self.avail_idx;
            new.wrapping_sub(ev).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            let flags: u16 = u16::from_le(m.read_obj(GuestAddress(self.used())).unwrap());
            flags & 1 == 0
        }
    }
    /// Outstanding buffers (posted, not used yet).
    pub fn in_flight(&self) -> u16 {
        self.avail_idx.wrapping_sub(self.last_used)
    }
}

/// A connected front end with three started queues.
pub struct Front {
    pub fe: Frontend,
    pub mem: GuestMemoryMmap,
    /// The memfd behind `mem`.
    pub file: File,
    pub rings: Vec<Ring>,
    pub kicks: Vec<EventFd>,
    pub calls: Vec<EventFd>,
    pub features: u64,
    next_event_id: u16,
    next_ack_id: u16,
}

pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

impl Front {
    /// Connects (retrying while the socket appears) and negotiates.
    pub fn connect(path: &Path, event_idx: bool, extra_features: u64) -> Self {
        let fe = wait_for("vhost-user socket", Duration::from_secs(20), || {
            Frontend::connect(path, 3).ok()
        });
        Self::setup(fe, event_idx, extra_features)
    }

    pub fn setup(fe: Frontend, event_idx: bool, extra_features: u64) -> Self {
        Self::setup_with(fe, event_idx, extra_features, Layout::standard())
    }

    /// As [`Front::setup`], with guest memory and rings laid out by `l`.
    pub fn setup_with(mut fe: Frontend, event_idx: bool, extra_features: u64, l: Layout) -> Self {
        fe.set_owner().unwrap();
        let offered = fe.get_features().unwrap();
        assert_ne!(offered & (1 << VIRTIO_F_VERSION_1), 0, "VERSION_1 offered");
        assert_ne!(
            offered & (1 << VIRTIO_RING_F_EVENT_IDX),
            0,
            "EVENT_IDX offered"
        );
        let mut want = (1u64 << VIRTIO_F_VERSION_1)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
            | (offered & extra_features);
        if event_idx {
            want |= 1 << VIRTIO_RING_F_EVENT_IDX;
        }
        let pf = fe.get_protocol_features().unwrap();
        assert!(pf.contains(VhostUserProtocolFeatures::CONFIG));
        fe.set_protocol_features(
            pf & (VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ),
        )
        .unwrap();
        assert_eq!(fe.get_queue_num().unwrap(), 3);
        fe.set_features(want).unwrap();
        let Layout {
            mem,
            file,
            region,
            ring_base,
        } = l;
        fe.set_mem_table(std::slice::from_ref(&region)).unwrap();
        // Host addresses as the back end translates them (the region may be
        // larger than what this front end mapped).
        let hva = |gpa: u64| region.userspace_addr + (gpa - region.guest_phys_addr);
        let mut rings = Vec::new();
        let mut kicks = Vec::new();
        let mut calls = Vec::new();
        for (i, &size) in QSIZE.iter().enumerate() {
            let r = Ring::new(i, size, ring_base);
            fe.set_vring_num(i, size).unwrap();
            fe.set_vring_addr(
                i,
                &VringConfigData {
                    queue_max_size: size,
                    queue_size: size,
                    flags: 0,
                    desc_table_addr: hva(r.desc()),
                    used_ring_addr: hva(r.used()),
                    avail_ring_addr: hva(r.avail()),
                    log_addr: None,
                },
            )
            .unwrap();
            fe.set_vring_base(i, 0).unwrap();
            let call = EventFd::new(EFD_NONBLOCK).unwrap();
            let kick = EventFd::new(EFD_NONBLOCK).unwrap();
            fe.set_vring_call(i, &call).unwrap();
            fe.set_vring_kick(i, &kick).unwrap();
            fe.set_vring_enable(i, true).unwrap();
            rings.push(r);
            kicks.push(kick);
            calls.push(call);
        }
        // A request with a reply: the back end has handled everything before it.
        fe.get_features().unwrap();
        Self {
            fe,
            mem,
            file,
            rings,
            kicks,
            calls,
            features: want,
            next_event_id: 0,
            next_ack_id: 0,
        }
    }

    /// Replays what QEMU 11.1 sends when it stops the vhost device (monitor
    /// `stop`, or the guest writing status 0): SET_VRING_ENABLE 0 on every
    /// ring, then GET_VRING_BASE on every ring. Returns the bases.
    pub fn vhost_stop(&mut self) -> Vec<u16> {
        for i in 0..self.rings.len() {
            self.fe.set_vring_enable(i, false).unwrap();
        }
        (0..self.rings.len())
            .map(|i| self.fe.get_vring_base(i).unwrap() as u16)
            .collect()
    }

    /// Replays what QEMU 11.1 sends when it starts the vhost device again
    /// (monitor `cont`, or the driver setting DRIVER_OK after a reset):
    /// SET_FEATURES, SET_MEM_TABLE, per ring SET_VRING_NUM, SET_VRING_BASE
    /// (`bases`), SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL; then
    /// SET_VRING_ENABLE 1 on every ring and SET_VRING_CALL again (QEMU's
    /// unmask). Ends with a request that has a reply, so the back end has
    /// handled everything.
    pub fn vhost_start(&mut self, bases: &[u16]) {
        self.fe.set_features(self.features).unwrap();
        let region = self.mem.iter().next().unwrap();
        let info = VhostUserMemoryRegionInfo::from_guest_region(region).unwrap();
        self.fe.set_mem_table(&[info]).unwrap();
        let hva = |gpa: u64| self.mem.get_host_address(GuestAddress(gpa)).unwrap() as u64;
        for (i, r) in self.rings.iter().enumerate() {
            self.fe.set_vring_num(i, r.size).unwrap();
            self.fe.set_vring_base(i, bases[i]).unwrap();
            self.fe
                .set_vring_addr(
                    i,
                    &VringConfigData {
                        queue_max_size: r.size,
                        queue_size: r.size,
                        flags: 0,
                        desc_table_addr: hva(r.desc()),
                        used_ring_addr: hva(r.used()),
                        avail_ring_addr: hva(r.avail()),
                        log_addr: None,
                    },
                )
                .unwrap();
            self.fe.set_vring_kick(i, &self.kicks[i]).unwrap();
            self.fe.set_vring_call(i, &self.calls[i]).unwrap();
        }
        for i in 0..self.rings.len() {
            self.fe.set_vring_enable(i, true).unwrap();
        }
        for i in 0..self.rings.len() {
            self.fe.set_vring_call(i, &self.calls[i]).unwrap();
        }
        self.fe.get_features().unwrap();
    }

    /// What a guest driver does between the stop and the start of a device
    /// reset: it rebuilds its rings from scratch (zeroed, here at the same
    /// guest addresses), so QEMU starts them at base 0.
    pub fn rebuild_rings(&mut self) {
        for r in &mut self.rings {
            let zero = vec![0u8; RING_BASE as usize];
            self.mem.write_slice(&zero, GuestAddress(r.base)).unwrap();
            *r = Ring {
                avail_idx: 0,
                last_used: 0,
                ..*r
            };
        }
        self.next_event_id = 0;
        self.next_ack_id = 0;
    }

    pub fn event_idx(&self) -> bool {
        self.features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0
    }

    pub fn kick(&self, q: usize) {
        self.kicks[q].write(1).unwrap();
    }

    /// Drains a call eventfd; returns how many signals were pending.
    pub fn calls(&self, q: usize) -> u64 {
        self.calls[q].read().unwrap_or(0)
    }

    /// One control request, answered within 10 s.
    pub fn ctrl(&mut self, req: &CtrlReq) -> CtrlResp {
        self.mem
            .write_slice(&req.raw, GuestAddress(CTRL_BUF))
            .unwrap();
        self.mem
            .write_slice(&[0xeeu8; 64], GuestAddress(CTRL_BUF + 0x100))
            .unwrap();
        self.rings[0].post(
            &self.mem,
            0,
            &[(CTRL_BUF, 64, false), (CTRL_BUF + 0x100, 64, true)],
        );
        self.kick(0);
        let (id, len) = wait_for("control reply", Duration::from_secs(10), || {
            self.rings[0].take_used(&self.mem).pop()
        });
        assert_eq!((id, len), (0, 64));
        let mut b = [0u8; 64];
        self.mem
            .read_slice(&mut b, GuestAddress(CTRL_BUF + 0x100))
            .unwrap();
        CtrlResp::decode(&b).unwrap()
    }

    /// Posts `n` event buffers (one 48-byte descriptor each).
    pub fn post_events(&mut self, n: u16) {
        let old = self.rings[1].avail_idx();
        for _ in 0..n {
            let id = self.next_event_id;
            self.next_event_id = (id + 1) % QSIZE[1];
            let addr = EVENT_BUF + u64::from(id) * 64;
            self.rings[1].post(&self.mem, id, &[(addr, EVENT_SIZE as u32, true)]);
        }
        if self.rings[1].needs_kick(&self.mem, old, self.event_idx()) {
            self.kick(1);
        }
    }

    /// Posts `n` event buffers without kicking.
    pub fn post_events_no_kick(&mut self, n: u16) {
        for _ in 0..n {
            let id = self.next_event_id;
            self.next_event_id = (id + 1) % QSIZE[1];
            let addr = EVENT_BUF + u64::from(id) * 64;
            self.rings[1].post(&self.mem, id, &[(addr, EVENT_SIZE as u32, true)]);
        }
    }

    /// Reads the event records the device put on the used ring.
    pub fn take_events(&mut self) -> Vec<(u32, u32, EventRecord)> {
        let used = self.rings[1].take_used(&self.mem);
        used.into_iter()
            .map(|(id, len)| {
                let mut b = [0u8; EVENT_SIZE];
                self.mem
                    .read_slice(&mut b, GuestAddress(EVENT_BUF + u64::from(id) * 64))
                    .unwrap();
                (id, len, EventRecord::decode(&b).unwrap())
            })
            .collect()
    }

    /// Posts one ack buffer (1..=64 records) on ackq and kicks.
    pub fn post_acks(&mut self, acks: &[AckRecord]) {
        assert!(!acks.is_empty() && acks.len() <= 64);
        // Reclaim used ack buffers first.
        self.rings[2].take_used(&self.mem);
        let id = self.next_ack_id;
        self.next_ack_id = (id + 1) % QSIZE[2];
        let addr = ACK_BUF + u64::from(id) * ACK_SLOT;
        let bytes: Vec<u8> = acks.iter().flat_map(|a| a.encode()).collect();
        self.mem.write_slice(&bytes, GuestAddress(addr)).unwrap();
        let old = self.rings[2].avail_idx();
        self.rings[2].post(&self.mem, id, &[(addr, bytes.len() as u32, false)]);
        if self.rings[2].needs_kick(&self.mem, old, self.event_idx()) {
            self.kick(2);
        }
    }
}

/// Builds the ack for a record.
pub fn ack_for(r: &EventRecord, mechanism: u8) -> AckRecord {
    AckRecord {
        seq: r.seq,
        source: r.source,
        mechanism,
        flags: 0,
        count: r.count,
        hardirq_ns: 1_000,
        bh_start_ns: 1_500,
        bh_end_ns: 2_000,
        post_ns: 2_100,
        // No TSC stamps: these tests do not calibrate.
        hardirq_tsc: 0,
        bh_start_tsc: 0,
        bh_end_tsc: 0,
        hard_cpu: 0,
        bh_cpu: 0,
        delay_us: 0,
        armed_ns: 0,
    }
}

/// The back end binary, killed on drop.
pub struct Backend {
    pub child: Child,
    pub dir: PathBuf,
}

impl Backend {
    pub fn spawn(tag: &str, extra: &[&str]) -> Self {
        Self::spawn_with_umask(tag, None, extra)
    }
    /// As [`Backend::spawn`], with the process umask set to `umask` first.
    pub fn spawn_with_umask(tag: &str, umask: Option<&str>, extra: &[&str]) -> Self {
        Self::spawn_in_shell(tag, umask.map(|m| format!("umask {m}")), extra)
    }

    /// As [`Backend::spawn`], started by `sh -c "<prefix> && exec ..."`.
    pub fn spawn_in_shell(tag: &str, prefix: Option<String>, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("irqstorm-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bin = env!("CARGO_BIN_EXE_irqstorm-backend");
        let mut cmd = match prefix {
            None => Command::new(bin),
            Some(p) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("{p} && exec \"$0\" \"$@\""), bin]);
                c
            }
        };
        let child = cmd
            .arg("-s")
            .arg(dir.join("vu.sock"))
            .arg("--control-socket")
            .arg(dir.join("ctl.sock"))
            .args(["--sources", "4"])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, dir }
    }
    pub fn sock(&self) -> PathBuf {
        self.dir.join("vu.sock")
    }
    /// Sends `v` (any JSON, malformed on purpose or not) on a new
    /// connection; returns the reply as JSON.
    pub fn ctl(&self, v: Value) -> Value {
        let p = self.dir.join("ctl.sock");
        wait_for("control socket", Duration::from_secs(20), || {
            let reply = Client::connect(&p, DEFAULT_TIMEOUT)
                .ok()?
                .call_value(&v)
                .ok()?;
            serde_json::to_value(reply).ok()
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
