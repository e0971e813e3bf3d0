// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Front ends that misbehave must not crash, freeze or leak the back end
//! (issue 10 items 1-3). Each test runs the real binary with two devices and
//! checks that the other device, and the next front end on the same one,
//! still work. Waits are bounded by timeouts only.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::{memfd, wait_for, Backend, Front, Layout};
use irqstorm_backend::protocol::{ConfigureBody, CtrlReq, Mode, Opcode, Status};
use serde_json::{json, Value};
use vhost::vhost_user::Frontend;
use vhost::VhostUserMemoryRegionInfo;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

fn sock(be: &Backend, device: u32) -> PathBuf {
    let mut s = be.sock().into_os_string();
    s.push(device.to_string());
    PathBuf::from(s)
}

fn alive(be: &mut Backend) -> bool {
    be.child.try_wait().unwrap().is_none()
}

fn assert_alive(be: &mut Backend) {
    let status = be.child.try_wait().unwrap();
    assert!(status.is_none(), "the back end died: {status:?}");
}

fn front_end_stats(be: &Backend, device: u32) -> Value {
    let s = be.ctl(json!({"cmd": "stats", "device": device}));
    assert_eq!(s["ok"], true, "{s}");
    s["front_end"].clone()
}

fn connected(be: &Backend, device: u32) -> bool {
    be.ctl(json!({"cmd": "info", "device": device}))["connected"] == true
}

/// A front end connects to `path` and must get its rings set up within
/// `limit` (run in a thread: a back end that never answers must fail the
/// test, not hang it).
fn connect_within(path: &Path, limit: Duration) -> Front {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(Front::connect(&p, false, 0));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("front end on {path:?} not set up within {limit:?}"))
}

/// One one-shot event through the device behind `f` (the device works).
fn one_event(f: &mut Front) {
    let r = f.ctrl(&CtrlReq::configure(
        0,
        &ConfigureBody {
            mode: Mode::Oneshot as u8,
            ..Default::default()
        },
    ));
    assert_eq!(r.status, Status::Ok as u16);
    f.post_events(4);
    assert_eq!(
        f.ctrl(&CtrlReq::new(Opcode::Start as u16, 0, 0)).status,
        Status::Ok as u16
    );
    let e = wait_for("one-shot event", Duration::from_secs(20), || {
        f.take_events().pop()
    });
    assert_eq!((e.2.source, e.2.count), (0, 1));
}

fn storm_on(be: &Backend, device: u32) {
    let r = be.ctl(json!({"cmd": "configure", "device": device, "source": 1,
                          "mode": "storm", "rate_hz": 20000, "burst": 4}));
    assert_eq!(r["ok"], true, "{r}");
    let r = be.ctl(json!({"cmd": "start", "device": device, "source": 1}));
    assert_eq!(r["ok"], true, "{r}");
}

/// The back end's open fds at rest: the fewest over a few samples (a
/// connection that just closed, the control client's or a front end's, is
/// closed on the back end's side a moment later and only adds fds).
fn open_fds(pid: u32) -> usize {
    (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(30));
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .count()
        })
        .min()
        .unwrap()
}

#[test]
fn fds_stay_flat_over_many_connections() {
    let mut be = Backend::spawn("fds", &["-c", "2"]);
    let path = sock(&be, 0);
    let cycle = |n: usize| {
        for _ in 0..n {
            let mut f = Front::connect(&path, false, 0);
            assert_eq!(
                f.ctrl(&CtrlReq::new(Opcode::GetInfo as u16, 0, 0)).status,
                Status::Ok as u16
            );
            drop(f);
            wait_for("disconnect", Duration::from_secs(20), || {
                (!connected(&be, 0)).then_some(())
            });
        }
    };
    cycle(3);
    let before = open_fds(be.child.id());
    const CYCLES: usize = 60;
    cycle(CYCLES);
    let after = open_fds(be.child.id());
    assert!(
        after <= before + 2,
        "{CYCLES} connections: open fds {before} -> {after}"
    );
    assert_eq!(front_end_stats(&be, 0)["connections"], 3 + CYCLES as u64);
    assert!(alive(&mut be));
}

#[test]
fn a_low_fd_limit_outlasts_many_connections() {
    // 64 fds: the back end starts with ~25 (two devices); one leaked per
    // connection ran it out after ~40 connections, and then it never
    // accepted again.
    let mut be = Backend::spawn_in_shell("nofile", Some("ulimit -n 64".into()), &["-c", "2"]);
    let path = sock(&be, 0);
    for i in 0..100 {
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let mut f = Front::connect(&p, false, 0);
            let st = f.ctrl(&CtrlReq::new(Opcode::GetInfo as u16, 0, 0)).status;
            let _ = tx.send(st);
        });
        let st = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("connection {i} under a 64-fd limit was not served"));
        assert_eq!(st, Status::Ok as u16);
        wait_for("disconnect", Duration::from_secs(20), || {
            (!connected(&be, 0)).then_some(())
        });
    }
    assert!(alive(&mut be));
    assert_eq!(front_end_stats(&be, 0)["io_errors"], 0);
}

#[test]
fn a_silent_client_does_not_block_the_next_front_end() {
    let mut be = Backend::spawn("silent", &["-c", "2"]);
    let path = sock(&be, 0);
    let silent = wait_for("socket", Duration::from_secs(20), || {
        UnixStream::connect(&path).ok()
    });
    // The default limit for a first message is 10 s.
    let mut f = connect_within(&path, Duration::from_secs(40));
    one_event(&mut f);
    let fe = front_end_stats(&be, 0);
    assert_eq!(
        (fe["silent"].as_u64(), fe["connections"].as_u64()),
        (Some(1), Some(2))
    );
    drop(silent);
    assert!(alive(&mut be));
}

#[test]
fn a_header_without_its_payload_does_not_block_the_next_front_end() {
    let mut be = Backend::spawn("stall", &["-c", "2"]);
    let path = sock(&be, 0);
    let mut stalling = wait_for("socket", Duration::from_secs(20), || {
        UnixStream::connect(&path).ok()
    });
    let header =
        |req: u32, size: u32| [req.to_le_bytes(), 1u32.to_le_bytes(), size.to_le_bytes()].concat();
    // GET_FEATURES (whole), then SET_FEATURES whose 8-byte payload never comes.
    stalling.write_all(&header(1, 0)).unwrap();
    stalling.write_all(&header(2, 8)).unwrap();
    // The default limit for a message is 5 s from its first byte.
    let mut f = connect_within(&path, Duration::from_secs(40));
    one_event(&mut f);
    assert_eq!(front_end_stats(&be, 0)["stalled"], 1);
    assert!(alive(&mut be));
}

#[test]
fn a_memory_table_larger_than_its_file_is_refused() {
    let mut be = Backend::spawn("pasteof", &["-c", "2"]);
    // 1 MiB of memfd announced as a 16 MiB region, rings at GPA 8 MiB.
    let file = memfd(1 << 20);
    let mem = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(0),
        1 << 20,
        Some(FileOffset::new(file.try_clone().unwrap(), 0)),
    )])
    .unwrap();
    let mut region =
        VhostUserMemoryRegionInfo::from_guest_region(mem.iter().next().unwrap()).unwrap();
    region.memory_size = 16 << 20;
    let layout = Layout {
        mem,
        file,
        region,
        ring_base: 8 << 20,
    };
    let path = sock(&be, 0);
    let fe = wait_for("socket", Duration::from_secs(20), || {
        Frontend::connect(&path, 3).ok()
    });
    // The back end ends the connection at SET_MEM_TABLE; the front end
    // finds out at its next request that waits for a reply.
    let setup = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let f = Front::setup_with(fe, false, 0, layout);
        f.kick(1);
        f
    }));
    std::thread::sleep(Duration::from_millis(500));
    assert_alive(&mut be);
    assert!(setup.is_err(), "set-up over a refused memory table went on");
    let fe = front_end_stats(&be, 0);
    assert_eq!(fe["memory_tables_refused"], 1, "{fe}");
    assert_eq!(fe["memory_faults"], 0, "{fe}");
    both_devices_still_serve(&mut be);
}

fn both_devices_still_serve(be: &mut Backend) {
    one_event(&mut Front::connect(&sock(be, 1), false, 0));
    one_event(&mut connect_within(&sock(be, 0), Duration::from_secs(20)));
    assert!(alive(be));
}

#[test]
fn a_memory_file_truncated_under_the_device_is_caught() {
    let mut be = Backend::spawn("truncate", &["-c", "2"]);
    let path = sock(&be, 0);
    let mut f = Front::connect(&path, false, 0);
    f.post_events(64);
    storm_on(&be, 0);
    wait_for("storm events", Duration::from_secs(20), || {
        (!f.take_events().is_empty()).then_some(())
    });
    // From here on the test must not touch its own mapping of the file.
    f.file.set_len(4096).unwrap();
    f.kick(1);
    std::thread::sleep(Duration::from_millis(500));
    assert_alive(&mut be);
    wait_for("the connection to end", Duration::from_secs(20), || {
        (!alive(&mut be) || !connected(&be, 0)).then_some(())
    });
    assert_alive(&mut be);
    let fe = front_end_stats(&be, 0);
    assert!(fe["memory_faults"].as_u64().unwrap() >= 1, "{fe}");
    drop(f);
    both_devices_still_serve(&mut be);
}
