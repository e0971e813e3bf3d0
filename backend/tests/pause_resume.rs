// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A VM pause is not a device reset (docs/device-spec.md §5.5, issue 10
//! item 4): the test front end replays what QEMU 11.1 sends on monitor
//! `stop`/`cont` (SET_VRING_ENABLE 0 and GET_VRING_BASE on every ring, then
//! SET_FEATURES, SET_MEM_TABLE and the rings again at the bases read back),
//! and, for contrast, a guest reset (the same stop, rings rebuilt, bases 0).
//! Waits are bounded by timeouts only; no timing thresholds are asserted.

mod common;

use std::time::Duration;

use common::{wait_for, Backend, Front};
use irqstorm_backend::protocol::{
    ConfigureBody, CtrlReq, EventRecord, Mode, Opcode, Status, EVT_F_FINAL, EVT_F_LATCHED,
};
use serde_json::{json, Value};

fn periodic_1khz() -> ConfigureBody {
    ConfigureBody {
        mode: Mode::Periodic as u8,
        period_ns: 1_000_000,
        ..Default::default()
    }
}

fn stats(be: &Backend) -> Value {
    let s = be.ctl(json!({"cmd": "stats"}));
    assert_eq!(s["ok"], true, "{s}");
    s["stats"].clone()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Per-source continuity over records; returns the raises covered.
fn continuity(recs: &[EventRecord], last: &mut [u64]) -> u64 {
    let mut n = 0;
    for r in recs {
        let first = r.source_seq - u64::from(r.count) + 1;
        assert_eq!(first, last[usize::from(r.source)] + 1, "continuity {r:?}");
        last[usize::from(r.source)] = r.source_seq;
        n += u64::from(r.count);
    }
    n
}

/// Takes records, keeps the eventq stocked; returns the new records.
fn pump(f: &mut Front) -> Vec<EventRecord> {
    let recs: Vec<EventRecord> = f.take_events().into_iter().map(|e| e.2).collect();
    let inflight = f.rings[1].in_flight();
    if inflight < 128 {
        f.post_events(128 - inflight);
    }
    recs
}

/// A front end with source 0 running a 1 kHz periodic timer, 20 of its
/// events received.
fn running_timer(be: &Backend) -> (Front, Vec<u64>, u64) {
    let mut f = Front::connect(&be.sock(), true, 0);
    f.post_events(128);
    let r = f.ctrl(&CtrlReq::configure(0, &periodic_1khz()));
    assert_eq!(r.status, Status::Ok as u16);
    let r = f.ctrl(&CtrlReq::new(Opcode::Start as u16, 0, 0));
    assert_eq!(r.status, Status::Ok as u16);
    let mut last = vec![0u64; 4];
    let mut got = 0;
    wait_for("20 timer events", Duration::from_secs(30), || {
        got += continuity(&pump(&mut f), &mut last);
        (got >= 20).then_some(())
    });
    (f, last, got)
}

/// Regression (issue 10 item 4): QEMU re-sends SET_FEATURES on `cont` and
/// the back end took it for a guest reset: the periodic program was gone
/// (mode off) and the raises latched during the pause were counted in
/// dropped_on_reset. Now the program keeps running, the pause's raises
/// arrive as one LATCHED record after the resume, and nothing is dropped.
#[test]
fn pause_resume_keeps_programs_and_loses_nothing() {
    let be = Backend::spawn("pause", &[]);
    let (mut f, mut last, mut got) = running_timer(&be);

    let bases = f.vhost_stop();
    // Records written before the stop.
    let recs: Vec<EventRecord> = f.take_events().into_iter().map(|e| e.2).collect();
    got += continuity(&recs, &mut last);
    let s1 = stats(&be);
    // The program keeps raising while the VM is paused; nothing is written.
    let s2 = wait_for(
        "raises latched in the pause",
        Duration::from_secs(30),
        || {
            let s = stats(&be);
            (u(&s["sources"][0]["raised"]) >= u(&s1["sources"][0]["raised"]) + 20).then_some(s)
        },
    );
    assert_eq!(
        s2["sources"][0]["records"], s1["sources"][0]["records"],
        "no record written while the rings are stopped"
    );
    assert!(u(&s2["sources"][0]["pending"]) > 0, "{s2}");
    assert!(f.take_events().is_empty(), "the used ring did not move");

    f.vhost_start(&bases);
    let s3 = stats(&be);
    let src = &s3["sources"][0];
    assert_eq!(
        src["mode"], "periodic",
        "the program survives the pause: {s3}"
    );
    assert_eq!(src["running"], true, "{s3}");
    assert_eq!(src["dropped_on_reset"], 0, "{s3}");
    assert_eq!(s3["device"]["resets"], 0, "a pause is not a reset: {s3}");
    assert_eq!(s3["device"]["resumes"], 1, "{s3}");

    // The pause's raises arrive (merged, LATCHED), then the timer goes on.
    let target = u(&s2["sources"][0]["raised"]) + 20;
    let mut saw_latched = false;
    wait_for("events after the resume", Duration::from_secs(30), || {
        let recs = pump(&mut f);
        saw_latched |= recs
            .iter()
            .any(|r| r.flags & EVT_F_LATCHED != 0 && r.count > 1);
        got += continuity(&recs, &mut last);
        (got >= target).then_some(())
    });
    assert!(
        saw_latched,
        "the pause's raises came as a merged LATCHED record"
    );

    // Stop the program; every raise is delivered, none dropped.
    let r = f.ctrl(&CtrlReq::new(Opcode::Stop as u16, 0, 0));
    assert_eq!(r.status, Status::Ok as u16);
    let s = wait_for("all delivered", Duration::from_secs(30), || {
        got += continuity(&pump(&mut f), &mut last);
        let s = stats(&be);
        (u(&s["sources"][0]["pending"]) == 0 && got == u(&s["sources"][0]["raised"])).then_some(s)
    });
    let src = &s["sources"][0];
    assert_eq!(u(&src["delivered"]), u(&src["raised"]));
    assert_eq!(src["dropped_on_reset"], 0);
    assert_eq!(src["conserved"], true);
    assert_eq!(
        last[0],
        u(&src["raised"]),
        "source_seq continuous across the pause"
    );
}

/// A program that raises and ends while the VM is paused (a host one-shot
/// started after the stop): its latched raise is delivered after the resume
/// although the front end never kicks and nothing else runs that would
/// touch the ring.
#[test]
fn raise_latched_in_a_pause_arrives_without_a_kick() {
    let be = Backend::spawn("pause-oneshot", &[]);
    let mut f = Front::connect(&be.sock(), true, 0);
    f.post_events(16);
    assert_eq!(
        f.ctrl(&CtrlReq::new(Opcode::GetInfo as u16, 0, 0)).status,
        0
    );
    let bases = f.vhost_stop();
    let r = be.ctl(json!({"cmd": "configure", "source": 2, "mode": "oneshot", "period_ns": 0}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(be.ctl(json!({"cmd": "start", "source": 2}))["ok"], true);
    wait_for(
        "the one-shot latched in the pause",
        Duration::from_secs(30),
        || (stats(&be)["sources"][2]["pending"] == 1).then_some(()),
    );
    assert!(f.take_events().is_empty(), "nothing written while stopped");
    f.vhost_start(&bases);
    let rec = wait_for(
        "the one-shot after the resume",
        Duration::from_secs(30),
        || f.take_events().pop(),
    );
    assert_eq!((rec.2.source, rec.2.count, rec.2.source_seq), (2, 1, 1));
    assert_eq!(rec.2.flags, EVT_F_LATCHED | EVT_F_FINAL, "{:?}", rec.2);
    let s = stats(&be);
    assert_eq!(s["sources"][2]["dropped_on_reset"], 0, "{s}");
    assert_eq!(s["device"]["resets"], 0, "{s}");
}

/// A guest reset between the stop and the start (rmmod/insmod, unbind/bind,
/// reboot: the driver rebuilds its rings and QEMU starts them at base 0)
/// still resets the device, even with the rings at the same addresses:
/// programs stop, the raises latched meanwhile move to dropped_on_reset,
/// source_seq starts again at 1.
#[test]
fn guest_reset_between_stop_and_start_resets_the_device() {
    let be = Backend::spawn("guest-reset", &[]);
    let (mut f, _, _) = running_timer(&be);
    let bases = f.vhost_stop();
    assert!(
        bases[0] > 0 && bases[1] > 0,
        "controlq and eventq were used: {bases:?}"
    );
    wait_for(
        "raises latched after the stop",
        Duration::from_secs(30),
        || (u(&stats(&be)["sources"][0]["pending"]) > 0).then_some(()),
    );
    f.rebuild_rings();
    f.vhost_start(&[0, 0, 0]);
    let s = stats(&be);
    let src = &s["sources"][0];
    assert_eq!(s["device"]["resets"], 1, "{s}");
    assert_eq!(s["device"]["resumes"], 0, "{s}");
    assert_eq!(src["mode"], "off", "{s}");
    assert_eq!(src["running"], false, "{s}");
    assert_eq!(src["pending"], 0, "{s}");
    assert!(u(&src["dropped_on_reset"]) > 0, "{s}");
    assert_eq!(src["conserved"], true, "{s}");
    assert_eq!(src["source_seq"], 0, "{s}");

    // The rebuilt rings work, numbering from 1 again.
    f.post_events(16);
    let one = ConfigureBody {
        mode: Mode::Oneshot as u8,
        ..Default::default()
    };
    assert_eq!(f.ctrl(&CtrlReq::configure(0, &one)).status, 0);
    assert_eq!(f.ctrl(&CtrlReq::new(Opcode::Start as u16, 0, 0)).status, 0);
    let rec = wait_for("a record after the reset", Duration::from_secs(30), || {
        f.take_events().pop()
    });
    assert_eq!((rec.2.source, rec.2.source_seq, rec.2.seq), (0, 1, 1));
}
