//! Wall-clock instants as stored in the database: milliseconds since the Unix
//! epoch (UTC), an integer column that sorts and subtracts without parsing.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub unix_ms: i64,
}

impl Timestamp {
    pub fn now() -> Self {
        let unix_ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => since.as_millis() as i64,
            Err(before) => -(before.duration().as_millis() as i64),
        };
        Self { unix_ms }
    }

    /// `self - duration`, for "older than" limits.
    pub fn minus(self, duration: Duration) -> Self {
        Self { unix_ms: self.unix_ms.saturating_sub(duration.as_millis().min(i64::MAX as u128) as i64) }
    }

    /// Time from `earlier` to `self`; zero when `earlier` is later (clock steps).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.unix_ms.saturating_sub(earlier.unix_ms).max(0) as u64)
    }
}

/// ISO 8601 in UTC with milliseconds: `2026-11-25T12:11:29.123Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.unix_ms.div_euclid(86_400_000);
        let ms_of_day = self.unix_ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
        let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
        write!(f, "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
    }
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01,
/// counting in 400-year eras of 146,097 days that start on 1 March.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants_in_utc() {
        assert_eq!(Timestamp { unix_ms: 0 }.to_string(), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year) 23:59:59.999.
        assert_eq!(Timestamp { unix_ms: 951_868_799_999 }.to_string(), "2000-02-29T23:59:59.999Z");
        assert_eq!(Timestamp { unix_ms: 1_795_609_889_123 }.to_string(), "2026-11-25T12:31:29.123Z");
        assert_eq!(Timestamp { unix_ms: -1 }.to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn differences_never_go_negative() {
        let t = Timestamp { unix_ms: 10_000 };
        assert_eq!(t.since(t.minus(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(t.minus(Duration::from_secs(3)).since(t), Duration::ZERO);
    }
}
