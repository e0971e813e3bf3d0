//! Progress lines on stderr, shared by the harness and `cargo xtask`.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

thread_local! {
    static LABEL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's progress lines labelled `[label]`: work in
/// the background whose lines interleave with another's.
pub fn labelled<T>(label: &str, f: impl FnOnce() -> T) -> T {
    LABEL.with(|l| *l.borrow_mut() = Some(label.to_string()));
    let r = f();
    LABEL.with(|l| *l.borrow_mut() = None);
    r
}

/// This thread's label, if it runs in the background.
pub fn label() -> Option<String> {
    LABEL.with(|l| l.borrow().clone())
}

/// `msg` with this thread's label in front, if it has one.
pub fn with_label(msg: &str) -> String {
    match label() {
        Some(l) => format!("[{l}] {msg}"),
        None => msg.to_string(),
    }
}

/// When this process's progress began: [`start_clock`], else its first step.
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Starts the clock the step lines show (call first thing in `main`; later calls do nothing).
pub fn start_clock() {
    STARTED.get_or_init(Instant::now);
}

/// One `==> +T msg` progress line, T the time since [`start_clock`] (`==> +T [label] msg` in
/// a labelled thread): a CI log then shows where a long run spent its time.
pub fn step(msg: &str) {
    let t0 = *STARTED.get_or_init(Instant::now);
    eprintln!("{}", step_line(t0.elapsed(), &with_label(msg)));
}

fn step_line(elapsed: Duration, msg: &str) -> String {
    format!("==> +{} {msg}", fmt_dur(elapsed))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_line_shows_the_time_since_the_start() {
        assert_eq!(
            step_line(Duration::from_millis(1234), "[kernel] x"),
            "==> +1.2s [kernel] x"
        );
        assert_eq!(step_line(Duration::from_secs(245), "y"), "==> +4m05s y");
    }

    #[test]
    fn a_labelled_thread_prefixes_its_lines_and_others_do_not() {
        assert_eq!(with_label("kernel: cached"), "kernel: cached");
        let inner = labelled("kernel", || with_label("kernel: cached"));
        assert_eq!(inner, "[kernel] kernel: cached");
        assert_eq!(label(), None);
        let other = std::thread::spawn(|| labelled("x", label)).join().unwrap();
        assert_eq!(other.as_deref(), Some("x"));
        assert_eq!(with_label("a"), "a");
    }
}
