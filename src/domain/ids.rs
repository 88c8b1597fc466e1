//! Identifiers parsed at the edge. `elector_id`, `poll_office_id` and `party_id` end up in
//! S3 keys and IAM policy documents, so only `A-Z a-z 0-9 . _ -` get through, 1 to 64 of
//! them, never starting with `.` and never containing `..`. Once parsed, they are trusted.

use std::fmt;

/// Why a string is not an identifier (the message names no field: the caller does).
pub fn check_identifier(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 64 {
        return Err("must be 1 to 64 characters");
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return Err("may only contain A-Z, a-z, 0-9, '.', '_' and '-'");
    }
    if s.starts_with('.') || s.contains("..") {
        return Err("must not start with '.' or contain '..'");
    }
    Ok(())
}

/// The operator's folders in the bucket (`{s3.prefix}backups/`, `log/`, `replica/`): no
/// office may be named like one, or its reporters' keys would land among them.
pub const RESERVED_OFFICES: [&str; 3] = ["backups", "log", "replica"];

/// Why a string is not a poll office identifier.
pub fn check_poll_office(s: &str) -> Result<(), &'static str> {
    check_identifier(s)?;
    if RESERVED_OFFICES.contains(&s) {
        return Err("backups, log and replica are reserved");
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, &'static str> {
                $check(s).map(|()| Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier!(
    /// A reporter's or a voter's national voter number: personal data, never published.
    ElectorId,
    check_identifier
);
identifier!(
    /// A poll office's public identifier.
    PollOfficeId,
    check_poll_office
);
impl PollOfficeId {
    /// An office identifier read back from storage: the identifier's shape is checked,
    /// not the folder names reserved since (an office stored before that rule must still
    /// load; new ones are refused at the edge by `parse`).
    pub fn stored(s: &str) -> Result<Self, &'static str> {
        check_identifier(s).map(|()| Self(s.to_owned()))
    }
}

identifier!(
    /// A party's identifier in the directory.
    PartyId,
    check_identifier
);

/// A voter's or a ballot's rank in its office: 1 to 1,000,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Index(u32);

impl Index {
    pub const MAX: i64 = 1_000_000;

    pub fn new(n: i64) -> Result<Self, &'static str> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n as u32))
        } else {
            Err("must be an integer from 1 to 1000000")
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_identifiers_are_accepted() {
        for ok in ["PO-001", "02-12-069-0080-16-000700", "a", "A.b_c-d", "x.y", &"a".repeat(64)] {
            assert!(check_identifier(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn identifiers_that_could_escape_a_key_or_policy_are_refused() {
        for bad in [
            "", "a/b", "a*", "a b", "a?", "..", "a..b", ".hidden", "é", "a\nb", "a\u{0}", "%2F", "a+b", "a:b", "a\\b",
            "a\"b",
        ] {
            assert!(check_identifier(bad).is_err(), "{bad:?}");
        }
        assert!(check_identifier(&"a".repeat(65)).is_err());
    }

    #[test]
    fn the_operators_bucket_folders_are_no_office() {
        for reserved in RESERVED_OFFICES {
            assert!(PollOfficeId::parse(reserved).is_err());
            assert!(ElectorId::parse(reserved).is_ok());
        }
        assert!(PollOfficeId::parse("Backups").is_ok(), "compared case-sensitively");
    }

    #[test]
    fn indexes_are_bounded() {
        assert!(Index::new(0).is_err());
        assert!(Index::new(-1).is_err());
        assert!(Index::new(1_000_001).is_err());
        assert_eq!(Index::new(1).unwrap().get(), 1);
        assert_eq!(Index::new(1_000_000).unwrap().get(), 1_000_000);
    }
}
