//! Timestamps: RFC 3339 UTC with a `Z` and second precision on the way out (and in the
//! database, where that format sorts as text); any RFC 3339 time on the way in.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn format(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// 2020-01-01T00:00:00Z: the compact second counters of the in-memory state (`u32`
/// seconds, four bytes a time) count from it; earlier times count as it.
pub const COMPACT_EPOCH: i64 = 1_577_836_800;

/// `t` as it is stored and served: to the second.
pub fn to_second(t: Timestamp) -> Timestamp {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

pub fn parse(s: &str) -> Option<Timestamp> {
    parse_stored(s).or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form `format` writes, read without the general RFC 3339
/// parser (a national start-up reads millions of them); `None` for any other form,
/// which `parse` hands to chrono.
fn parse_stored(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    Some(date.and_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)?.and_utc())
}

/// How far an `observed_at` may lie from the server's clock when it is first stored.
pub fn observed_at_acceptable(observed: Timestamp, now: Timestamp) -> bool {
    let ahead = chrono::Duration::minutes(5);
    let behind = chrono::Duration::hours(24);
    observed <= now + ahead && observed >= now - behind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_is_read_as_chrono_reads_it() {
        let chrono = |s: &str| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc));
        for s in [
            "2025-08-15T14:02:11Z",
            "2024-02-29T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-12-31T23:59:60Z",
            "2025-13-01T00:00:00Z",
            "2025-08-15T24:00:00Z",
            "2025-08-15t14:02:11z",
            "2025-08-15T14:02:11+00:00",
            "2025-08-15T14:02:1xZ",
            "+025-08-15T14:02:11Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(parse(s), chrono(s), "{s}");
            if let Some(t) = parse_stored(s) {
                assert_eq!(Some(t), chrono(s), "{s}");
            }
        }
        assert!(parse_stored("2025-08-15T14:02:11Z").is_some());
    }

    #[test]
    fn timestamps_are_written_with_seconds_and_z() {
        let t = parse("2025-08-15T16:02:11.789+02:00").unwrap();
        assert_eq!(format(t), "2025-08-15T14:02:11Z");
    }

    #[test]
    fn observed_at_must_be_near_the_server_clock() {
        let now = parse("2025-08-15T14:00:00Z").unwrap();
        assert!(observed_at_acceptable(parse("2025-08-15T14:05:00Z").unwrap(), now));
        assert!(!observed_at_acceptable(parse("2025-08-15T14:05:01Z").unwrap(), now));
        assert!(observed_at_acceptable(parse("2025-08-14T14:00:00Z").unwrap(), now));
        assert!(!observed_at_acceptable(parse("2025-08-14T13:59:59Z").unwrap(), now));
    }
}
