//! Sources (reporters): their statuses, which of them are trusted, their public names.

use std::collections::{HashMap, HashSet};

use crate::domain::ids::ElectorId;

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

/// The voter's keyed hash (HMAC-SHA256 with the server's secret): all that is ever stored
/// of a voter's `elector_id`, enough to allow one verification per voter.
pub fn voter_hash(secret: &[u8], elector_id: &ElectorId) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(elector_id.as_str().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// What the database keeps of the hashing secret, to know it at the next start (a box
/// restored with another box's secret would let every voter verify again). No
/// `elector_id` has this form, so it is no voter's hash.
pub fn secret_fingerprint(secret: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"ufrecs: the hashing secret's fingerprint");
    hex::encode(mac.finalize().into_bytes())
}

/// The name a source has in the public audit log: never its `elector_id`.
pub fn actor(n: i64) -> String {
    format!("source-{n}")
}

/// Names that always take their source's number: they are keys of the compatibility
/// forms (section 5) that a source must never overwrite. So does any `source-{digits}`,
/// the name of sources without one.
const RESERVED_NAMES: [&str; 4] = ["Accepted", "Verified", "index", "party_id"];

/// A full name or organisation as stored: NFC-normalised; `Err` when it holds a control
/// or format character (zero-width characters, bidirectional overrides), which could make
/// one name look like another.
pub fn name_text(s: &str) -> Result<String, &'static str> {
    use unicode_general_category::{get_general_category, GeneralCategory};
    use unicode_normalization::UnicodeNormalization;
    if s.chars().any(|c| matches!(get_general_category(c), GeneralCategory::Control | GeneralCategory::Format)) {
        return Err("must not contain control or format characters");
    }
    Ok(s.nfc().collect())
}

/// What two names are compared by: their confusable skeletons (Unicode TR39), so that a
/// Cyrillic `А` or a look-alike of another name counts as the same name.
fn skeleton(s: &str) -> String {
    unicode_security::skeleton(s).collect()
}

/// Whether a chosen name would pass for a reserved key or another source's default name.
fn reserved(skel: &str) -> bool {
    if RESERVED_NAMES.iter().any(|r| skeleton(r) == skel) {
        return true;
    }
    let digits: Vec<String> = ('0'..='9').map(|d| skeleton(&d.to_string())).collect();
    let Some(mut rest) = skel.strip_prefix(skeleton("source-").as_str()) else { return false };
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        match digits.iter().find(|d| rest.starts_with(d.as_str())) {
            Some(d) => rest = &rest[d.len()..],
            None => return false,
        }
    }
    true
}

/// Public display names (spec section 5): the full name, else the organisation, else
/// `source-{n}`; never the `elector_id`. Where two sources would share a name (by their
/// confusable skeletons), the lowest `n` keeps it and the others get ` ({n})`; reserved
/// names (and their look-alikes) always get it.
///
/// Names are given in increasing `n`, so a new source (the highest `n` so far) is named
/// without renaming anyone; any other change needs a rebuild (`display_names`).
#[derive(Clone, Debug, Default)]
pub struct DisplayNames {
    names: HashMap<i64, String>,
    /// Skeletons of the names given.
    taken: HashSet<String>,
    last: i64,
}

impl DisplayNames {
    /// The highest `n` named so far (0 when none).
    pub fn last(&self) -> i64 {
        self.last
    }

    /// Names source `n`, which must be higher than every source named so far.
    pub fn push(&mut self, n: i64, full_name: Option<&str>, official_org: Option<&str>) {
        debug_assert!(n > self.last, "display names are given in increasing n");
        let chosen = [full_name, official_org].into_iter().flatten().map(str::trim).find(|s| !s.is_empty());
        let mut name = chosen.map_or_else(|| actor(n), str::to_owned);
        let mut skel = skeleton(&name);
        if chosen.is_some() && reserved(&skel) {
            name = format!("{name} ({n})");
            skel = skeleton(&name);
        }
        // A suffixed name may itself be a lower source's literal name: suffix again.
        while self.taken.contains(&skel) {
            name = format!("{name} ({n})");
            skel = skeleton(&name);
        }
        self.taken.insert(skel);
        self.names.insert(n, name);
        self.last = n;
    }

    pub fn get(&self, n: i64) -> Option<&str> {
        self.names.get(&n).map(String::as_str)
    }
}

/// The display names of every source at once.
pub fn display_names<'a>(sources: impl IntoIterator<Item = (i64, Option<&'a str>, Option<&'a str>)>) -> DisplayNames {
    let mut sources: Vec<_> = sources.into_iter().collect();
    sources.sort_by_key(|s| s.0);
    let mut names = DisplayNames::default();
    for (n, full_name, org) in sources {
        names.push(n, full_name, org);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voter_hash_is_keyed_and_stable() {
        let e = ElectorId::parse("VOTER-1").unwrap();
        let a = voter_hash(b"secret-1", &e);
        assert_eq!(a, voter_hash(b"secret-1", &e));
        assert_ne!(a, voter_hash(b"secret-2", &e));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("VOTER"));
    }

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
        let name = |n| names.get(n).unwrap();
        assert_eq!(name(1), "Parti Alpha");
        assert_eq!(name(2), "Awa N.");
        assert_eq!(name(3), "Awa N. (3)");
        assert_eq!(name(4), "source-4");
        assert_eq!(name(5), "Accepted (5)");
        assert_eq!(name(6), "source-6");
        assert_eq!(name(7), "Parti Alpha (7)");
    }

    #[test]
    fn a_suffixed_name_never_takes_a_lower_sources_literal_name() {
        let names = display_names([
            (1, Some("Awa (3)"), None),
            (2, Some("Awa"), None),
            (3, Some("Awa"), None),
            (4, Some("Verified"), None),
            (5, Some("Verified (4)"), None),
            (6, Some("index"), None),
            (7, None, Some("party_id")),
        ]);
        let all: HashSet<&str> = (1..=7).map(|n| names.get(n).unwrap()).collect();
        assert_eq!(all.len(), 7, "{all:?}");
        assert_eq!(names.get(3), Some("Awa (3) (3)"));
        assert_eq!(names.get(4), Some("Verified (4)"));
        assert_eq!(names.get(5), Some("Verified (4) (5)"));
        assert_eq!(names.get(6), Some("index (6)"));
        assert_eq!(names.get(7), Some("party_id (7)"));
        assert_eq!(names.last(), 7);
    }

    #[test]
    fn look_alikes_of_reserved_and_taken_names_get_the_suffix() {
        let names = display_names([
            (1, Some("Awa"), None),
            (2, Some("\u{410}ccepted"), None),
            (3, Some("\u{410}wa"), None),
            (4, Some("source-1"), None),
            (5, None, Some("source-12")),
            (6, Some("source-x"), None),
            (7, None, None),
        ]);
        assert_eq!(names.get(2), Some("\u{410}ccepted (2)"), "a Cyrillic A");
        assert_eq!(names.get(3), Some("\u{410}wa (3)"), "a look-alike of source 1's name");
        assert_eq!(names.get(4), Some("source-1 (4)"), "source-{{digits}} is reserved");
        assert_eq!(names.get(5), Some("source-12 (5)"));
        assert_eq!(names.get(6), Some("source-x"));
        assert_eq!(names.get(7), Some("source-7"), "a default name is no choice");
    }

    #[test]
    fn names_are_stored_nfc_and_invisible_characters_are_refused() {
        assert_eq!(name_text("Yaounde\u{301}").unwrap(), "Yaound\u{e9}");
        for bad in ["Accepted\u{200b}", "a\u{202e}b", "a\u{7}b", "a\nb", "\u{feff}x"] {
            assert!(name_text(bad).is_err(), "{bad:?}");
        }
        assert_eq!(name_text("Parti Alpha").unwrap(), "Parti Alpha");
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
