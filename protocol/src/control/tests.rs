// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
use serde_json::json;

use super::*;
use crate::stats::tests::stats_json;

fn err(line: &str) -> String {
    Request::from_line(line.as_bytes()).unwrap_err().to_string()
}

fn every_request() -> Vec<Request> {
    let configure = Configure {
        device: Some(1),
        source: 2,
        mode: Mode::Storm,
        jitter: Some(Jitter::Exponential),
        burst: Some(4),
        rate_hz: Some(1000),
        period_ns: Some(5),
        count: Some(6),
        duration_ns: Some(7),
        jitter_ns: Some(8),
        moderation_events: Some(9),
        moderation_delay_us: Some(10),
        seed: Some(11),
    };
    vec![
        Request::Info { device: None },
        Request::Info { device: Some(3) },
        Request::Configure(configure),
        Request::Configure(Configure {
            device: None,
            jitter: None,
            burst: None,
            rate_hz: None,
            period_ns: None,
            count: None,
            duration_ns: None,
            jitter_ns: None,
            moderation_events: None,
            moderation_delay_us: None,
            seed: None,
            ..configure
        }),
        Request::Start {
            device: None,
            source: Some(Sources::All),
            start_delay_ns: Some(5),
        },
        Request::Start {
            device: Some(1),
            source: Some(Sources::One(3)),
            start_delay_ns: None,
        },
        Request::Stop {
            device: None,
            source: None,
        },
        Request::Stats {
            device: Some(0),
            buckets: Some(true),
        },
        Request::ResetStats { device: None },
        Request::Fault {
            device: None,
            kind: FaultKind::SeqGap,
            count: Some(2),
        },
    ]
}

#[test]
fn every_request_round_trips() {
    for r in every_request() {
        let line = r.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        assert_eq!(Request::from_line(line.as_bytes()).unwrap(), r, "{line}");
        assert_eq!(serde_json::to_value(r).unwrap()["cmd"], r.cmd());
    }
}

#[test]
fn requests_are_spelt_as_before() {
    let r = Request::Start {
        device: Some(2),
        source: Some(Sources::One(3)),
        start_delay_ns: Some(5),
    };
    assert_eq!(
        serde_json::to_value(r).unwrap(),
        json!({"cmd":"start","source":3,"start_delay_ns":5,"device":2})
    );
    let r = Request::from_line(br#"{"cmd":"stop","source":"all"}"#).unwrap();
    assert_eq!(
        r,
        Request::Stop {
            device: None,
            source: Some(Sources::All)
        }
    );
    assert_eq!(r.device(), 0);
    let c = Request::from_line(br#"{"cmd":"configure","source":1,"mode":"storm"}"#).unwrap();
    let Request::Configure(c) = c else {
        panic!("{c:?}")
    };
    // Defaults of §9: burst 1 for storm, jitter none.
    assert_eq!((c.body().burst, c.body().jitter), (1, 0));
    let body = ConfigureBody {
        mode: 2,
        period_ns: 1000,
        ..ConfigureBody::default()
    };
    assert_eq!(Configure::from_body(None, 0, &body).unwrap().body(), body);
    let bad = ConfigureBody { mode: 9, ..body };
    assert_eq!(
        Configure::from_body(None, 0, &bad).unwrap_err().to_string(),
        "CONFIGURE body: no mode has code 9"
    );
}

#[test]
fn bad_requests_say_what_is_wrong() {
    assert!(err("not json").starts_with("bad JSON: "));
    assert_eq!(err("[1,2]"), "request must be a JSON object");
    assert_eq!(err(r#"{"nocmd":1}"#), "missing \"cmd\"");
    assert_eq!(err(r#"{"cmd":"nope"}"#), "unknown cmd \"nope\"");
    assert_eq!(
        err(r#"{"cmd":"info","extra":true}"#),
        "info: unknown field `extra`, expected `device`"
    );
    let e = err(r#"{"cmd":"stats","bucket":true}"#);
    assert!(e.starts_with("stats: unknown field `bucket`"), "{e}");
    assert_eq!(
        err(r#"{"cmd":"configure","mode":"storm"}"#),
        "configure: missing field `source`"
    );
    let e = err(r#"{"cmd":"configure","source":0,"mode":"fast"}"#);
    assert!(
        e.contains(r#""mode" must be off|oneshot|periodic|storm (got "fast")"#),
        "{e}"
    );
    let e = err(r#"{"cmd":"configure","source":70000,"mode":"storm"}"#);
    assert!(e.contains("70000"), "{e}");
    let e = err(r#"{"cmd":"start","source":"some"}"#);
    assert!(e.contains(r#""source" must be an index or "all""#), "{e}");
    let e = err(r#"{"cmd":"fault","kind":"melt"}"#);
    assert!(e.contains(r#""kind" must be dup_used_id|"#), "{e}");
    assert!(err(r#"{"cmd":"info","device":-1}"#).starts_with("info: "));
}

fn every_reply() -> Vec<(Request, Reply<Response>)> {
    let stats: Stats = serde_json::from_value(stats_json()).unwrap();
    let info = InfoReply {
        device: 1,
        devices: 2,
        virtio_id: 21,
        connected: true,
        num_sources: 8,
        max_rate_hz: 1000,
        max_outstanding: 16,
        min_period_ns: 2000,
        max_burst: 8,
        device_features: 3,
        negotiated_features: 1,
        host_ns: 99,
        spin: Some(SpinInfo {
            requested: "auto".into(),
            us: 0,
            reason: "2 host cores, 2 guest vCPUs + 1 for the back end: none to spare".into(),
        }),
    };
    let reqs = every_request();
    let find = |cmd: &str| *reqs.iter().find(|r| r.cmd() == cmd).unwrap();
    vec![
        (find("info"), Reply::Ok(Response::Info(info))),
        (find("configure"), Reply::Ok(Response::Done(Done {}))),
        (
            find("start"),
            Reply::Ok(Response::Start(StartReply { t0: 5 })),
        ),
        (
            find("stop"),
            Reply::Ok(Response::Stop(StopReply { raised: 6 })),
        ),
        (
            find("stats"),
            Reply::Ok(Response::Stats(Box::new(StatsReply {
                device: 0,
                stats,
                control: ControlStats {
                    requests: 1,
                    malformed: 2,
                    refused: 3,
                    evicted: 4,
                    slow_lines: 5,
                },
                front_end: FrontEndStats {
                    connections: 6,
                    silent: 7,
                    stalled: 8,
                    malformed: 9,
                    io_errors: 10,
                    memory_tables_refused: 11,
                    memory_faults: 12,
                },
            }))),
        ),
        (find("reset_stats"), Reply::Ok(Response::Done(Done {}))),
        (
            find("fault"),
            Reply::Ok(Response::Fault(FaultReply {
                kind: FaultKind::ShortLen,
                count: 2,
            })),
        ),
        (find("start"), Reply::Refused(Refusal::status(Status::Busy))),
        (
            find("info"),
            Reply::Refused(Refusal::new("no device 3 (have 2)")),
        ),
    ]
}

#[test]
fn every_reply_round_trips() {
    for (req, reply) in every_reply() {
        let line = reply.to_line();
        assert_eq!(req.parse_reply(&line).unwrap(), reply, "{line}");
    }
}

#[test]
fn replies_are_spelt_as_before() {
    let ok = |r: Response| Reply::Ok(r).to_line();
    assert_eq!(ok(Response::Done(Done {})), "{\"ok\":true}\n");
    assert_eq!(
        ok(Response::Start(StartReply { t0: 5 })),
        "{\"ok\":true,\"t0\":5}\n"
    );
    assert_eq!(
        ok(Response::Fault(FaultReply {
            kind: FaultKind::ZeroCount,
            count: 1
        })),
        "{\"count\":1,\"kind\":\"zero_count\",\"ok\":true}\n"
    );
    assert_eq!(
        Reply::<Done>::Refused(Refusal::status(Status::OutOfRange)).to_line(),
        "{\"error\":\"out_of_range\",\"ok\":false,\"status\":2}\n"
    );
    assert_eq!(
        Reply::<Done>::Refused(Refusal::new("line too long")).to_line(),
        "{\"error\":\"line too long\",\"ok\":false}\n"
    );
    // The stats reply carries the stats object unchanged, keys sorted.
    let (_, stats) = every_reply().swap_remove(4);
    let v: Value = serde_json::from_str(&stats.to_line()).unwrap();
    assert_eq!(v["stats"], stats_json());
    assert_eq!(
        v["control"],
        json!({"requests": 1, "malformed": 2, "refused": 3, "evicted": 4, "slow_lines": 5})
    );
    assert_eq!(
        v["front_end"],
        json!({"connections": 6, "silent": 7, "stalled": 8, "malformed": 9, "io_errors": 10,
               "memory_tables_refused": 11, "memory_faults": 12})
    );
    let line = stats.to_line();
    assert_eq!(line, format!("{v}\n"));
}

#[test]
fn bad_replies_are_rejected() {
    let stop = Request::Stop {
        device: None,
        source: None,
    };
    let e = |line: &str| stop.parse_reply(line).unwrap_err().to_string();
    assert!(e("{").starts_with("bad JSON"));
    assert!(e(r#"{"raised":1}"#).contains("missing field `ok`"));
    assert!(e(r#"{"ok":"yes"}"#).contains("\"ok\" must be a boolean"));
    assert!(e(r#"{"ok":true,"raised":1,"extra":2}"#).contains("stop reply: unknown field `extra`"));
    assert!(e(r#"{"ok":true}"#).contains("stop reply: missing field `raised`"));
    assert!(e(r#"{"ok":false,"error":"x","why":1}"#).contains("unknown field `why`"));
    // A typo'd stats field is an error, not a silent zero.
    let stats = Request::Stats {
        device: None,
        buckets: None,
    };
    let mut v = stats_json();
    let s = v["sources"][0].as_object_mut().unwrap();
    let n = s.remove("raised").unwrap();
    s.insert("rasied".into(), n);
    let line = json!({"ok": true, "device": 0, "stats": v,
                      "control": {"requests": 0, "malformed": 0, "refused": 0, "evicted": 0, "slow_lines": 0},
                      "front_end": {"connections": 1, "silent": 0, "stalled": 0, "malformed": 0, "io_errors": 0, "memory_tables_refused": 0, "memory_faults": 0}})
    .to_string();
    let e = stats.parse_reply(&line).unwrap_err().to_string();
    assert!(e.contains("unknown field `rasied`"), "{e}");
}
