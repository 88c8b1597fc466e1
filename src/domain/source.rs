//! Sources (reporters): their statuses, which of them are trusted, their public names.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Unverified,
    Independent,
    Official,
    PoliticalParty,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Unverified, Status::Independent, Status::Official, Status::PoliticalParty];
    pub const EXPECTED: &'static str = "must be one of unverified, independent, official, political_party";

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unverified => "unverified",
            Status::Independent => "independent",
            Status::Official => "official",
            Status::PoliticalParty => "political_party",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Trusted sources outrank opportunistic (`unverified`) ones at an office (section 6).
    pub fn is_trusted(self) -> bool {
        self != Status::Unverified
    }
}

/// The name a source has in the public audit log: never its `elector_id`.
pub fn actor(n: i64) -> String {
    format!("source-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unverified_sources_are_opportunistic() {
        for s in Status::ALL {
            assert_eq!(s.is_trusted(), s != Status::Unverified);
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("unknown"), None);
    }
}
