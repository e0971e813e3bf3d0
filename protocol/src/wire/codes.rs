// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Codes of the device and their host-control-socket names: control opcodes
//! and status codes (§6.1.1, §6.2), source modes and jitter (§5.1), fault
//! kinds (§7).
//!
//! A named code has one spelling, `name()`; parsing (`from_name`,
//! [`FromStr`]) and serde both go through it.

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error as ThisError;

/// Errors parsing a code's name.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
pub enum CodeError {
    /// Not one of the names of the code.
    #[error("{what:?} must be {expected} (got {name:?})")]
    UnknownName {
        /// The field the name is for (`mode`, `jitter`, `kind`).
        what: &'static str,
        /// The name given.
        name: String,
        /// The accepted names, `|`-separated.
        expected: String,
    },
}

/// Host-control-socket names of a code: parsing, `Display` and serde.
macro_rules! named_code {
    ($ty:ident, $what:literal) => {
        impl $ty {
            /// Parses a host control API name.
            pub fn from_name(s: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|c| c.name() == s)
            }
        }

        impl FromStr for $ty {
            type Err = CodeError;
            fn from_str(s: &str) -> Result<Self, CodeError> {
                Self::from_name(s).ok_or_else(|| CodeError::UnknownName {
                    what: $what,
                    name: s.to_string(),
                    expected: Self::ALL.map(Self::name).join("|"),
                })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(de::Error::custom)
            }
        }
    };
}

/// Control opcodes (§6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Opcode {
    /// GET_INFO
    GetInfo = 1,
    /// CONFIGURE
    Configure = 2,
    /// START
    Start = 3,
    /// STOP
    Stop = 4,
    /// STATS
    Stats = 5,
    /// PING
    Ping = 6,
    /// CALIBRATE (spec version 2): the shared TSC time base (§6.1.3).
    Calibrate = 7,
}

impl Opcode {
    /// Decodes an opcode; `None` for unknown codes.
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::GetInfo,
            2 => Self::Configure,
            3 => Self::Start,
            4 => Self::Stop,
            5 => Self::Stats,
            6 => Self::Ping,
            7 => Self::Calibrate,
            _ => return None,
        })
    }
}

/// Control reply status codes (§6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// Malformed request.
    Invalid = 1,
    /// Parameter or source out of the device limits.
    OutOfRange = 2,
    /// The source is running.
    Busy = 3,
    /// Needs a feature that was not negotiated.
    Unsupported = 4,
}

impl Status {
    /// Short lower-case name (used by the host control API).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Invalid => "invalid",
            Self::OutOfRange => "out_of_range",
            Self::Busy => "busy",
            Self::Unsupported => "unsupported",
        }
    }
}

/// Source modes (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// No events.
    Off = 0,
    /// One event after `period_ns`.
    Oneshot = 1,
    /// One event every `period_ns`.
    Periodic = 2,
    /// Bursts at `rate_hz` on average.
    Storm = 3,
}

impl Mode {
    /// Every mode, in code order.
    pub const ALL: [Self; 4] = [Self::Off, Self::Oneshot, Self::Periodic, Self::Storm];

    /// Decodes a mode; `None` for unknown values.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }
    /// Name used by the host control API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Oneshot => "oneshot",
            Self::Periodic => "periodic",
            Self::Storm => "storm",
        }
    }
}

named_code!(Mode, "mode");

/// Jitter distributions (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Jitter {
    /// Nominal grid.
    #[default]
    None = 0,
    /// Uniform offset around each grid point.
    Uniform = 1,
    /// Exponential gaps (Poisson process of bursts).
    Exponential = 2,
}

impl Jitter {
    /// Every distribution, in code order.
    pub const ALL: [Self; 3] = [Self::None, Self::Uniform, Self::Exponential];

    /// Decodes a jitter value; `None` for unknown values.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }
    /// Name used by the host control API.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Uniform => "uniform",
            Self::Exponential => "exponential",
        }
    }
}

named_code!(Jitter, "jitter");

/// Kinds of injected faults (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A valid record whose head id is put on the used ring twice.
    DupUsedId,
    /// A bogus record returned with used length 16.
    ShortLen,
    /// A bogus record returned with a used length 64 bytes beyond the buffer.
    LongLen,
    /// A bogus record with `source = num_sources`.
    BadSource,
    /// A bogus record with `count = 0`.
    ZeroCount,
    /// The next per-source number of the source with the next real record skips one.
    SeqGap,
}

impl FaultKind {
    /// Every kind, in §7 order.
    pub const ALL: [Self; 6] = [
        Self::DupUsedId,
        Self::ShortLen,
        Self::LongLen,
        Self::BadSource,
        Self::ZeroCount,
        Self::SeqGap,
    ];

    /// Name used by the host control API.
    pub fn name(self) -> &'static str {
        match self {
            Self::DupUsedId => "dup_used_id",
            Self::ShortLen => "short_len",
            Self::LongLen => "long_len",
            Self::BadSource => "bad_source",
            Self::ZeroCount => "zero_count",
            Self::SeqGap => "seq_gap",
        }
    }
}

named_code!(FaultKind, "kind");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for m in Mode::ALL {
            assert_eq!(Mode::from_u8(m as u8), Some(m));
            assert_eq!(m.name().parse::<Mode>(), Ok(m));
            let j = serde_json::to_string(&m).unwrap();
            assert_eq!(j, format!("{:?}", m.name()));
            assert_eq!(serde_json::from_str::<Mode>(&j).unwrap(), m);
        }
        for j in Jitter::ALL {
            assert_eq!(Jitter::from_u8(j as u8), Some(j));
            assert_eq!(
                serde_json::from_value::<Jitter>(serde_json::json!(j)).unwrap(),
                j
            );
        }
        for k in FaultKind::ALL {
            assert_eq!(k.to_string().parse::<FaultKind>(), Ok(k));
        }
        assert_eq!((Mode::from_u8(4), Jitter::from_u8(3)), (None, None));
    }

    #[test]
    fn unknown_names_say_what_is_accepted() {
        assert_eq!(
            "fast".parse::<Mode>().unwrap_err().to_string(),
            r#""mode" must be off|oneshot|periodic|storm (got "fast")"#
        );
        let e = serde_json::from_str::<FaultKind>(r#""melt""#).unwrap_err();
        assert!(
            e.to_string().starts_with(
                r#""kind" must be dup_used_id|short_len|long_len|bad_source|zero_count|seq_gap"#
            ),
            "{e}"
        );
        assert!(serde_json::from_str::<Jitter>("1").is_err());
    }
}
