//! UTC calendar time from the system clock, without a date crate: report
//! start times (RFC 3339) and run directory names.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC date and time of day, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl UtcTime {
    /// The calendar time of `t` (times before 1970 count as 1970-01-01).
    pub fn of(t: SystemTime) -> UtcTime {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Civil-from-days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u32,
            day: day as u32,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// The current time.
    pub fn now() -> UtcTime {
        UtcTime::of(SystemTime::now())
    }

    /// `2026-11-22T06:35:00Z`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `20261122T063500Z`, for names that sort by time.
    pub fn stamp(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let t = |s| UtcTime::of(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0).stamp(), "19700101T000000Z");
        assert_eq!(t(951_782_400).stamp(), "20000229T000000Z");
        assert_eq!(t(1_795_329_296).stamp(), "20261122T063456Z");
        assert_eq!(t(1_795_329_296).rfc3339(), "2026-11-22T06:34:56Z");
        assert_eq!(t(4_107_542_399).rfc3339(), "2100-02-28T23:59:59Z");
        assert_eq!(
            UtcTime::of(UNIX_EPOCH - Duration::from_secs(5)).rfc3339(),
            "1970-01-01T00:00:00Z"
        );
    }
}
