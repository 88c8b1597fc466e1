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
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
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
