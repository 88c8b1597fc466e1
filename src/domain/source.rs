//! Sources (reporters): their statuses, which of them are trusted, their public names.

use std::collections::{HashMap, HashSet};

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

/// Names that always take their source's number: they are keys of the compatibility
/// forms (section 5) that a source must never overwrite.
const RESERVED_NAMES: [&str; 4] = ["Accepted", "Verified", "index", "party_id"];

/// Public display names (spec section 5): the full name, else the organisation, else
/// `source-{n}`; never the `elector_id`. Where two sources would share a name, the lowest
/// `n` keeps it and the others get ` ({n})`; reserved names always get it.
pub fn display_names<'a>(
    sources: impl IntoIterator<Item = (i64, Option<&'a str>, Option<&'a str>)>,
) -> HashMap<i64, String> {
    let mut sources: Vec<_> = sources.into_iter().collect();
    sources.sort_by_key(|s| s.0);
    let mut taken: HashSet<String> = HashSet::new();
    let mut names = HashMap::with_capacity(sources.len());
    for (n, full_name, org) in sources {
        let base = [full_name, org]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map_or_else(|| actor(n), str::to_owned);
        let name = if RESERVED_NAMES.contains(&base.as_str()) || taken.contains(&base) {
            format!("{base} ({n})")
        } else {
            base
        };
        taken.insert(name.clone());
        names.insert(n, name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_never_collide_and_never_show_an_elector_id() {
        let names = display_names([
            (3, Some("Awa N."), None),
            (1, None, Some("Parti Alpha")),
            (2, Some("Awa N."), Some("X")),
            (4, None, None),
            (5, Some("Accepted"), None),
            (6, Some("  "), Some("")),
            (7, None, Some("Parti Alpha")),
        ]);
        assert_eq!(names[&1], "Parti Alpha");
        assert_eq!(names[&2], "Awa N.");
        assert_eq!(names[&3], "Awa N. (3)");
        assert_eq!(names[&4], "source-4");
        assert_eq!(names[&5], "Accepted (5)");
        assert_eq!(names[&6], "source-6");
        assert_eq!(names[&7], "Parti Alpha (7)");
    }

    #[test]
    fn only_unverified_sources_are_opportunistic() {
        for s in Status::ALL {
            assert_eq!(s.is_trusted(), s != Status::Unverified);
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("unknown"), None);
    }
}
