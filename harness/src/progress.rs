//! Progress lines on stderr, shared by the harness and `cargo xtask`.

use std::time::Duration;

/// One `==> msg` progress line.
pub fn step(msg: &str) {
    eprintln!("==> {msg}");
}

/// A duration for people: `12.3s`, or `4m05s` from a minute on.
pub fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
