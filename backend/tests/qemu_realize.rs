// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! QEMU (>= 10.2) realizes `vhost-user-test-device-pci` against the back end.
//!
//! The QEMU command comes from `IRQSTORM_QEMU` (an executable or launcher
//! script taking QEMU's arguments); without it the test prints
//! "SKIP: IRQSTORM_QEMU not set" and passes. Every wait is bounded: QEMU hangs
//! forever if a back end accepts but never answers.

mod common;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::Backend;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

struct Qemu {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Vec<u8>>,
    out: String,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Qemu {
    /// Sends an HMP command and waits until `pattern` occurs `nth` times in the output.
    fn cmd_until(&mut self, cmd: &str, pattern: &str, nth: usize) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let end = Instant::now() + TIMEOUT;
        while self.out.matches(pattern).count() < nth {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {pattern:?} after {cmd:?}; output:\n{}",
                self.out
            );
            if let Ok(chunk) = self.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                // Drop terminal escape sequences and carriage returns.
                let s = String::from_utf8_lossy(&chunk).replace('\r', "");
                self.out.push_str(&s);
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("QEMU exited ({st}); output:\n{}", self.out);
            }
        }
    }

    /// Reads a config-space dword of bus 0 device `dev` through ports 0xcf8/0xcfc.
    fn cfg_read(&mut self, dev: u32, reg: u32, nth: &mut usize) -> u32 {
        let addr = 0x8000_0000u32 | (dev << 11) | (reg & 0xfc);
        writeln!(self.stdin, "o /w 0xcf8 {addr:#x}").unwrap();
        *nth += 1;
        self.cmd_until("i /w 0xcfc", "portl[0x0cfc] = 0x", *nth);
        let last = self
            .out
            .rmatch_indices("portl[0x0cfc] = 0x")
            .next()
            .unwrap()
            .0;
        let hex: String = self.out[last + 18..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        u32::from_str_radix(&hex, 16).unwrap()
    }
}

#[test]
fn qemu_realizes_vhost_user_test_device() {
    let Some(qemu) = std::env::var_os("IRQSTORM_QEMU") else {
        println!("SKIP: IRQSTORM_QEMU not set");
        return;
    };
    let be = Backend::spawn("qemu", &[]);
    // Wait until the vhost-user socket exists (the control socket answers first).
    be.ctl(json!({"cmd": "info"}));
    let sock = be.sock();
    common::wait_for("vhost-user socket", Duration::from_secs(20), || {
        sock.exists().then_some(())
    });
    let mut child = Command::new(&qemu)
        .args(["-machine", "q35", "-accel", "tcg", "-nodefaults", "-display", "none", "-S"])
        .args(["-monitor", "stdio"])
        .args(["-object", "memory-backend-memfd,id=mem,size=256M,share=on"])
        .args(["-numa", "node,memdev=mem", "-m", "256M"])
        .arg("-chardev")
        .arg(format!("socket,id=c0,path={}", sock.display()))
        .args([
            "-device",
            "vhost-user-test-device-pci,chardev=c0,virtio-id=21,num_vqs=3,vq_size=256,config_size=32,addr=0x5",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting IRQSTORM_QEMU");
    let stdin = child.stdin.take().unwrap();
    let (tx, rx) = channel();
    for mut r in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    let mut q = Qemu {
        child,
        stdin,
        rx,
        out: String::new(),
    };
    q.cmd_until("info pci", "1af4:1055", 1);
    println!("info pci shows the device as 1af4:1055 (virtio-id 21)");
    assert_eq!(be.ctl(json!({"cmd": "info"}))["connected"], true);

    // Config space through the host bridge's 0xcf8/0xcfc ports (HMP `o`/`i`):
    // ids, the capability list and the MSI-X capability.
    let mut nth = 0;
    let id = q.cfg_read(5, 0x00, &mut nth);
    assert_eq!(id, 0x1055_1af4, "vendor/device");
    let status = q.cfg_read(5, 0x04, &mut nth) >> 16;
    assert_ne!(status & 0x10, 0, "capability list present");
    let mut ptr = q.cfg_read(5, 0x34, &mut nth) & 0xfc;
    let mut msix = None;
    let mut caps = Vec::new();
    for _ in 0..48 {
        if ptr < 0x40 {
            break;
        }
        let dw = q.cfg_read(5, ptr, &mut nth);
        caps.push(format!("{:#04x}@{ptr:#x}", dw & 0xff));
        if dw & 0xff == 0x11 {
            msix = Some(dw >> 16);
        }
        ptr = (dw >> 8) & 0xfc;
    }
    println!("capabilities: {}", caps.join(" "));
    let ctrl = msix.expect("MSI-X capability present");
    let table_size = (ctrl & 0x7ff) + 1;
    println!("MSI-X capability: table size {table_size}");
    assert!(table_size >= 1);
    writeln!(q.stdin, "quit").unwrap();
    let end = Instant::now() + TIMEOUT;
    while q.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "QEMU did not quit");
        std::thread::sleep(Duration::from_millis(50));
    }
}
