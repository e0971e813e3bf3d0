//! The hotplug soak (issue 12): the guest boots without the irqstorm device;
//! per cycle the harness hot-adds it behind a PCIe root port over QMP
//! (`chardev-add` of the running back end's socket, `device_add`), the guest
//! sees probe, the ADD/BIND uevents and records from a storm it starts, then
//! `device_del` removes the device under that storm. Checked per cycle: the
//! guest's driver let go of the device (no workqueue or kthread of its own by its count,
//! /sys/class/irqstorm/live; no IRQ line, no irqstorm thread, no debugfs directory, no
//! reference on the module), its uevent helper saw add, bind, unbind and
//! remove, dmesg has no WARN/BUG/Oops, and the back end accounts every event
//! it raised for the removed device (delivered, coalesced or dropped by the
//! reset its disconnect caused; nothing pending).
//!
//! q35 hot-plugs a root port's slot through ACPI (QEMU's default since 6.1;
//! the guest's `CONFIG_HOTPLUG_PCI_ACPI`): `device_del` asks the guest to
//! eject, acpiphp runs the driver's remove and then ejects, and QEMU sends
//! `DEVICE_DELETED`. That is an orderly removal; QEMU has no surprise
//! removal for it (README, "Hotplug").

use std::path::Path;
use std::time::{Duration, Instant};

use irqstorm_protocol::client::Client;
use irqstorm_protocol::control::{InfoReply, Request, StatsReply};
use irqstorm_protocol::stats::Totals;
use serde_json::{json, Map, Value};

use crate::boot::BackendSpec;
use crate::progress::step;
use crate::qmp::Qmp;
use crate::scenario::guests::Guests;
use crate::soak_guest::{self, SoakError, SoakGuest};

/// The root port the device is plugged into (`-device pcie-root-port`).
pub const ROOT_PORT: &str = "rp0";
/// QEMU ids of the hot-plugged chardev and device.
const CHARDEV_ID: &str = "irqstorm-hp";
const DEVICE_ID: &str = "irqstorm-hp0";
/// The bottom halves the cycles go through, one per cycle, in turn.
pub const MECHANISMS: [&str; 8] = [
    "threaded",
    "tasklet",
    "bh_wq",
    "wq_system",
    "kthread",
    "hardirq",
    "wq_unbound",
    "completion",
];
/// How long a hot-add may take to bind, a removal to finish, a reply to come.
const SETTLE: Duration = Duration::from_secs(60);
const SOAK_SMP: u32 = 2;

/// One hotplug soak.
pub struct Spec<'a> {
    /// Add/remove cycles.
    pub cycles: u32,
    /// The storm the guest runs while the device is removed (events/s).
    pub rate_hz: u32,
    /// The guest; its device-mode QEMU arguments lose the device's `-chardev`/`-device` pair,
    /// which is hot-plugged instead.
    pub guest: &'a SoakGuest<'a>,
}

/// One cycle's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cycle {
    pub mechanism: String,
    /// `device_add` sent -> the guest's driver bound and storming.
    pub add_to_bound: Duration,
    /// `device_del` sent -> QEMU's `DEVICE_DELETED`.
    pub del_to_deleted: Duration,
    /// Records the guest had when the removal started.
    pub records: u64,
    /// The back end's ledger of the cycle.
    pub raised: u64,
    pub delivered: u64,
    pub dropped_on_reset: u64,
}

/// The soak's figures and the checks that failed (none: passed).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub cycles: Vec<Cycle>,
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The irqstorm device in a device-mode argument list: its `-chardev` and
/// `-device` options taken out, as QMP `chardev-add` and `device_add`
/// arguments for `bus`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hotpluggable {
    pub rest: Vec<String>,
    pub chardev_add: Value,
    pub device_add: Value,
}

/// Splits `args` (the device option pairs of qemu-config/irqstorm.args).
pub fn split_device(args: &[String], socket: &Path, bus: &str) -> Result<Hotpluggable, String> {
    let path = format!("path={}", socket.display());
    let pos = |opt: &str, pred: &dyn Fn(&str) -> bool| {
        args.windows(2)
            .position(|w| w[0] == opt && pred(&w[1]))
            .ok_or_else(|| {
                format!(
                    "no `{opt}` for the device socket {} in the QEMU arguments",
                    socket.display()
                )
            })
    };
    let c = pos("-chardev", &|v| {
        v.starts_with("socket,") && v.split(',').any(|p| p == path)
    })?;
    let chardev = args[c + 1].clone();
    let id = chardev
        .split(',')
        .find_map(|p| p.strip_prefix("id="))
        .ok_or_else(|| format!("`-chardev {chardev}` has no id"))?
        .to_string();
    let d = pos("-device", &|v| {
        v.split(',').any(|p| p == format!("chardev={id}"))
    })?;
    let mut props = Map::new();
    let mut parts = args[d + 1].split(',');
    let driver = parts.next().unwrap_or_default().to_string();
    props.insert("driver".into(), json!(driver));
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("`-device {}`: `{p}` is not KEY=VALUE", args[d + 1]))?;
        // QMP takes the JSON types of the properties.
        let v = match v {
            "on" | "true" => json!(true),
            "off" | "false" => json!(false),
            _ => v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)),
        };
        props.insert(k.into(), v);
    }
    props.insert("chardev".into(), json!(CHARDEV_ID));
    props.insert("id".into(), json!(DEVICE_ID));
    props.insert("bus".into(), json!(bus));
    let rest = args
        .iter()
        .enumerate()
        .filter(|(i, _)| ![c, c + 1, d, d + 1].contains(i))
        .map(|(_, a)| a.clone())
        .collect();
    Ok(Hotpluggable {
        rest,
        chardev_add: json!({
            "id": CHARDEV_ID,
            "backend": { "type": "socket", "data": {
                "addr": { "type": "unix", "data": { "path": socket.display().to_string() } },
                "server": false
            } }
        }),
        device_add: Value::Object(props),
    })
}

/// `KEY=VALUE` of a guest status line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The last console line starting with `marker`.
fn last_line(g: &Guests, marker: &str) -> Result<String, SoakError> {
    g.console(0)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with(marker))
        .map(str::to_string)
        .ok_or_else(|| SoakError::Soak(format!("no `{marker}` line on the console")))
}

/// What a `IRQSTORM_HP_REMOVED` line says is wrong (empty: nothing).
pub fn removal_problems(line: &str) -> Vec<String> {
    let mut p = Vec::new();
    let num = |k: &str| field(line, k).and_then(|v| v.parse::<i64>().ok());
    for (k, want, what) in [
        (
            "workqueues",
            0,
            "workqueue(s) of the driver left (/sys/class/irqstorm/live)",
        ),
        (
            "kthreads",
            0,
            "kthread(s) of the driver left (/sys/class/irqstorm/live)",
        ),
        (
            "irq_lines",
            0,
            "IRQ line(s) of irqstorm left in /proc/interrupts",
        ),
        (
            "threads",
            0,
            "irqstorm thread(s) more than before the device came",
        ),
        ("debugfs", 0, "debugfs directory left"),
        ("problems", 0, "new WARN/BUG/Oops line(s) in dmesg"),
        (
            "refcnt",
            0,
            "reference(s) still held on the irqstorm module",
        ),
    ] {
        match num(k) {
            Some(v) if v == want => {}
            Some(v) => p.push(format!("{v} {what}")),
            None => p.push(format!("no `{k}=` in `{line}`")),
        }
    }
    if field(line, "bound") != Some("none") {
        p.push(format!("the driver still has a device: {line}"));
    }
    let ev: Vec<&str> = field(line, "uevents")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    // In this order; others (change: the storm detector) may come between.
    let mut it = ev.iter();
    for want in ["add", "bind", "unbind", "remove"] {
        if !it.any(|e| *e == want) {
            p.push(format!(
                "uevents {ev:?}: no `{want}` in order add, bind, unbind, remove"
            ));
            break;
        }
    }
    p
}

fn totals(ctl: &mut Client) -> Result<Totals, SoakError> {
    let r: StatsReply = ctl.call(&Request::Stats {
        device: None,
        buckets: None,
    })?;
    Ok(r.stats.totals)
}

/// Runs the soak: the back end, the guest without the device, the cycles.
pub fn run(o: &Spec) -> Result<Outcome, SoakError> {
    o.guest.with_backend(1, |spec| with_backend(o, spec))
}

fn with_backend(o: &Spec, spec: &BackendSpec) -> Result<Outcome, SoakError> {
    let mut ctl = Client::connect(&spec.control_socket_path(), SETTLE)?;
    let full = o.guest.args(
        spec,
        &format!(
            "rdinit=/tests/lib/hotplug.sh irqstorm_hp_rate={}",
            o.rate_hz
        ),
        SOAK_SMP,
    )?;
    let hp = split_device(&full, &spec.socket_path(), ROOT_PORT).map_err(SoakError::Soak)?;
    let mut args = hp.rest.clone();
    args.extend([
        "-device".to_string(),
        format!("pcie-root-port,id={ROOT_PORT},bus=pcie.0,chassis=1,slot=1"),
    ]);
    let comment = format!(
        "# then, over QMP: chardev-add {}\n#                device_add {}\n",
        hp.chardev_add, hp.device_add
    );
    let (mut guests, mut qmp) = o.guest.boot(
        spec,
        args,
        &comment,
        ("IRQSTORM_HP_READY", "boot without the device"),
    )?;
    step(&format!(
        "hotplug soak: {} hot add/remove cycles behind root port {ROOT_PORT}, removal under a {}/s storm",
        o.cycles, o.rate_hz
    ));
    let mut out = Outcome::default();
    let t0 = Instant::now();
    for i in 1..=o.cycles {
        let mech = MECHANISMS[(i as usize - 1) % MECHANISMS.len()];
        match cycle(i, mech, &hp, &mut ctl, &mut qmp, &mut guests) {
            Ok((c, problems)) => {
                let bad = !problems.is_empty();
                for p in problems {
                    out.failures.push(format!("cycle {i} ({mech}): {p}"));
                }
                eprintln!(
                    "  cycle {i}/{} {mech}: bound in {} ms, {} records, removed in {} ms; back end raised {} = delivered {} + dropped by the reset {}{}",
                    o.cycles,
                    c.add_to_bound.as_millis(),
                    c.records,
                    c.del_to_deleted.as_millis(),
                    c.raised,
                    c.delivered,
                    c.dropped_on_reset,
                    if bad { " FAILED" } else { "" }
                );
                out.cycles.push(c);
                if bad {
                    break;
                }
            }
            Err(e) => {
                out.failures.push(format!("cycle {i} ({mech}): {e}"));
                break;
            }
        }
    }
    eprintln!(
        "  hotplug soak: {} of {} cycles in {:.1} s",
        out.cycles.len(),
        o.cycles,
        t0.elapsed().as_secs_f64()
    );
    soak_guest::finish(&mut guests, &mut out.failures)?;
    Ok(out)
}

fn connected(ctl: &mut Client) -> Result<bool, SoakError> {
    Ok(ctl
        .call::<InfoReply>(&Request::Info { device: None })?
        .connected)
}

/// One add/remove cycle: its figures and what its checks found.
fn cycle(
    i: u32,
    mech: &str,
    hp: &Hotpluggable,
    ctl: &mut Client,
    qmp: &mut Qmp,
    g: &mut Guests,
) -> Result<(Cycle, Vec<String>), SoakError> {
    let before = totals(ctl)?;
    let t = Instant::now();
    qmp.execute_with("chardev-add", hp.chardev_add.clone())?;
    qmp.execute_with("device_add", hp.device_add.clone())?;
    g.send_all(&format!("added {i} {mech}"))?;
    g.wait_all(
        &format!("IRQSTORM_HP_BOUND {i} "),
        SETTLE,
        "hot-added device bound",
    )?;
    let add_to_bound = t.elapsed();
    let bound = last_line(g, &format!("IRQSTORM_HP_BOUND {i} "))?;
    let records = field(&bound, "records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let t = Instant::now();
    qmp.execute_with("device_del", json!({ "id": DEVICE_ID }))?;
    qmp.wait_event("DEVICE_DELETED", |d| d["device"] == DEVICE_ID, SETTLE)?;
    let del_to_deleted = t.elapsed();
    qmp.execute_with("chardev-remove", json!({ "id": CHARDEV_ID }))?;
    let end = Instant::now() + SETTLE;
    while connected(ctl)? {
        if Instant::now() > end {
            return Err(SoakError::Soak(format!(
                "the back end still shows the removed device's front end connected after {} s",
                SETTLE.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = totals(ctl)?;
    g.send_all(&format!("removed {i}"))?;
    g.wait_all(
        &format!("IRQSTORM_HP_REMOVED {i} "),
        SETTLE,
        "removal seen by the guest",
    )?;
    let mut problems = removal_problems(&last_line(g, &format!("IRQSTORM_HP_REMOVED {i} "))?);
    let c = Cycle {
        mechanism: mech.into(),
        add_to_bound,
        del_to_deleted,
        records,
        raised: after.raised - before.raised,
        delivered: after.delivered - before.delivered,
        dropped_on_reset: after.dropped_on_reset - before.dropped_on_reset,
    };
    if records == 0 {
        problems.push(format!("no records reached the guest: {bound}"));
    }
    if !after.conserved || after.pending != 0 || c.raised != c.delivered + c.dropped_on_reset {
        problems.push(format!(
            "back end ledger after the removal: raised {} = delivered {} + dropped_on_reset {} + pending {} does not hold (conserved {})",
            c.raised, c.delivered, c.dropped_on_reset, after.pending, after.conserved
        ));
    }
    Ok((c, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv() -> Vec<String> {
        [
            "-machine",
            "q35",
            "-chardev",
            "socket,id=irqstorm0,path=/r/sockets/vhost.sock",
            "-device",
            "vhost-user-test-device-pci,chardev=irqstorm0,virtio-id=21,num_vqs=3,vq_size=256,config_size=32",
            "-append",
            "x",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn the_device_options_become_qmp_arguments_for_the_root_port() {
        let h = split_device(&argv(), Path::new("/r/sockets/vhost.sock"), "rp0").unwrap();
        assert_eq!(h.rest, ["-machine", "q35", "-append", "x"]);
        assert_eq!(
            h.device_add,
            json!({"driver": "vhost-user-test-device-pci", "chardev": CHARDEV_ID, "id": DEVICE_ID,
                   "bus": "rp0", "virtio-id": 21, "num_vqs": 3, "vq_size": 256, "config_size": 32})
        );
        assert_eq!(
            h.chardev_add["backend"]["data"]["addr"]["data"]["path"],
            "/r/sockets/vhost.sock"
        );
        assert_eq!(h.chardev_add["backend"]["data"]["server"], false);
        let e = split_device(&argv(), Path::new("/other.sock"), "rp0").unwrap_err();
        assert!(
            e.contains("no `-chardev` for the device socket /other.sock"),
            "{e}"
        );
    }

    #[test]
    fn a_removal_is_checked_for_leftovers_and_the_uevents_in_order() {
        let ok = "IRQSTORM_HP_REMOVED 3 workqueues=0 kthreads=0 irq_lines=0 threads=0 debugfs=0 uevents=add,bind,change,unbind,remove problems=0 refcnt=0 bound=none";
        assert!(
            removal_problems(ok).is_empty(),
            "{:?}",
            removal_problems(ok)
        );
        let bad = "IRQSTORM_HP_REMOVED 3 workqueues=3 kthreads=0 irq_lines=1 threads=2 debugfs=1 uevents=add,unbind,bind,remove problems=0 refcnt=1 bound=0000:01:00.0";
        let p = removal_problems(bad).join("; ");
        for want in [
            "3 workqueue(s) of the driver left",
            "1 IRQ line(s) of irqstorm left",
            "2 irqstorm thread(s) more",
            "1 debugfs directory left",
            "1 reference(s) still held",
            "the driver still has a device",
            "no `unbind` in order add, bind, unbind, remove",
        ] {
            assert!(p.contains(want), "{want}: {p}");
        }
        assert!(removal_problems("IRQSTORM_HP_REMOVED 3")
            .join(" ")
            .contains("no `irq_lines=`"));
    }
}
