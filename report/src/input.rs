//! Reading what the back end and the guest driver report, into
//! [`MechanismResult`](crate::model::MechanismResult) rows.
//!
//! * [`backend`]: the reply of the control socket's `stats` command,
//!   requested with `"buckets": true` (or the `stats` object alone), typed
//!   by `irqstorm_protocol::stats`: a missing or misspelt field is an error.
//! * [`guest`]: the guest driver's debugfs tables (summary and rtla-style
//!   log2 histograms, `guest-driver/stats.rs`).

pub mod backend;
pub mod guest;
pub mod timerlat;
pub mod tsc;

pub use backend::{parse_backend_stats, BackendStats, HistExt, RawRaiseToHardirqExt};
pub use guest::{
    apply_guest, parse_guest_hist, parse_guest_summary, GuestDump, GuestHistColumn, GuestHistTable,
    GuestSummaryRow, GuestTexts,
};
pub use timerlat::{parse_timerlat, Timerlat, TimerlatSample};

use crate::hist::HistError;

/// Errors reading back-end or guest output.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("back-end stats: {0}")]
    Json(#[from] serde_json::Error),
    #[error("back-end stats: reply not ok: {0}")]
    NotOk(String),
    #[error("back-end stats: {what} has {count} values but no buckets (request stats with \"buckets\": true)")]
    NoBuckets { what: String, count: u64 },
    #[error("back-end stats: scenario source {0} is missing")]
    MissingSource(u16),
    #[error("guest {what}: line {line}: {message}")]
    Guest {
        what: &'static str,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Hist(#[from] HistError),
}
