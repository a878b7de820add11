//! UTC instants as TUF writes them (`2026-12-01T18:00:00Z`), without a date library.
//!
//! Everything that signs or checks an expiry takes its "now" as a [`UtcTime`]
//! argument; nothing here reads the clock, so tests and reproducible builds
//! (`SOURCE_DATE_EPOCH`) choose the time.

use std::fmt;

/// Seconds since the Unix epoch, UTC, with whole-second precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime(i64);

/// A timestamp or duration that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not an RFC 3339 date-time.
    #[error("{input:?} is not an RFC 3339 date-time like 2026-12-01T18:00:00Z ({reason})")]
    BadDateTime {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not a duration like `90s`, `30m`, `12h`, `7d`, `2w`.
    #[error("{input:?} is not a duration like 90s, 30m, 12h, 7d or 2w")]
    BadDuration {
        /// What was given.
        input: String,
    },
    /// The instant is outside years 1970–9999.
    #[error("time {seconds} is outside the years 1970 to 9999")]
    OutOfRange {
        /// Seconds since the epoch.
        seconds: i64,
    },
}

const MAX_SECONDS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

impl UtcTime {
    /// An instant from seconds since the epoch (1970 to 9999).
    pub fn from_unix(seconds: i64) -> Result<Self, TimeError> {
        if (0..=MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(TimeError::OutOfRange { seconds })
        }
    }

    /// An instant from seconds since the epoch, clamped to 1970–9999 (for the system
    /// clock, which cannot be outside that range on any machine that runs us).
    pub fn saturating_from_unix(seconds: i64) -> Self {
        Self(seconds.clamp(0, MAX_SECONDS))
    }

    /// Seconds since the epoch.
    pub fn unix(self) -> i64 {
        self.0
    }

    /// This instant plus `seconds`, saturating at the year 9999.
    pub fn plus_seconds(self, seconds: u64) -> Self {
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(seconds).min(MAX_SECONDS))
    }

    /// Parses RFC 3339 (`Z` or a `±hh:mm` offset; fractional seconds are dropped).
    pub fn parse(input: &str) -> Result<Self, TimeError> {
        let bad = |reason| TimeError::BadDateTime {
            input: input.to_owned(),
            reason,
        };
        let b = input.as_bytes();
        if b.len() < 20 {
            return Err(bad("too short"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimeError> {
            let part = &b[range];
            if part.iter().all(u8::is_ascii_digit) {
                Ok(part
                    .iter()
                    .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
            } else {
                Err(bad("expected digits"))
            }
        };
        if b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad("expected YYYY-MM-DDTHH:MM:SS"));
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(bad("no such date"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(bad("no such time of day"));
        }
        let mut rest = &b[19..];
        if rest.first() == Some(&b'.') {
            let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(bad("empty fraction of a second"));
            }
            rest = &rest[1 + digits..];
        }
        let offset = match rest {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let digits = [*h1, *h2, *m1, *m2];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return Err(bad("bad offset"));
                }
                let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
                let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
                if hours > 23 || minutes > 59 {
                    return Err(bad("bad offset"));
                }
                let magnitude = hours * 3600 + minutes * 60;
                if *sign == b'+' {
                    magnitude
                } else {
                    -magnitude
                }
            }
            _ => return Err(bad("expected Z or an offset like +02:00")),
        };
        let second = second.min(59); // a leap second counts as the second before it
        let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        Self::from_unix(local - offset).map_err(|_| bad("outside 1970 to 9999"))
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }
}

impl serde::Serialize for UtcTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for UtcTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        UtcTime::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses a duration like `90s`, `30m`, `12h`, `7d` or `2w` into seconds.
pub fn parse_duration(input: &str) -> Result<u64, TimeError> {
    let bad = || TimeError::BadDuration {
        input: input.to_owned(),
    };
    let split = input.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = input.split_at(split);
    let count: u64 = digits.parse().map_err(|_| bad())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    count.checked_mul(unit_seconds).ok_or_else(bad)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(UtcTime::parse("1970-01-01T00:00:00Z").unwrap().unix(), 0);
        let t = UtcTime::parse("2026-12-01T18:00:00Z").unwrap();
        assert_eq!(t.unix(), 1_796_148_000);
        assert_eq!(t.to_string(), "2026-12-01T18:00:00Z");
        assert_eq!(UtcTime::parse("2026-12-01T20:00:00.123+02:00").unwrap(), t);
        assert_eq!(
            UtcTime::parse("2024-02-29T00:00:00Z").unwrap().to_string(),
            "2024-02-29T00:00:00Z"
        );
    }

    #[test]
    fn bad_instants_are_named() {
        for input in [
            "2026-02-30T00:00:00Z",
            "2026-12-01 18:00:00Z",
            "2026-12-01T18:00:00",
            "2026-13-01T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "soon",
        ] {
            let err = UtcTime::parse(input).unwrap_err();
            assert!(err.to_string().contains(input), "{err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("2w").unwrap(), 1_209_600);
        for bad in ["", "d", "7", "7y", "-1d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(seconds in 0i64..=MAX_SECONDS) {
            let t = UtcTime::from_unix(seconds).unwrap();
            prop_assert_eq!(UtcTime::parse(&t.to_string()).unwrap(), t);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = UtcTime::parse(&s);
        }
    }
}
