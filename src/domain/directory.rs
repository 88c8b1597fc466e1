//! The directory (section 9): the poll offices and parties an operator imported, as rows
//! and as held in memory for `registry.strict` and the public listings.

use std::collections::{HashMap, HashSet};

use crate::domain::ids::{PartyId, PollOfficeId};

#[derive(Clone, Debug, PartialEq)]
pub struct OfficeRow {
    pub identifier: PollOfficeId,
    pub name: String,
    pub country: Option<String>,
    pub state: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub county: Option<String>,
    pub district: Option<String>,
    pub voters_count: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PartyRow {
    pub identifier: PartyId,
    pub party_name: Option<String>,
    pub candidate_name: Option<String>,
}

/// `registry.strict`: `true`, `false`, or `"auto"` (checked once the directory has an
/// entry of that kind: an election with a directory never takes invented identifiers into
/// its permanent public log).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strict {
    Yes,
    No,
    #[default]
    Auto,
}

impl Strict {
    /// Whether identifiers of a kind must be in the directory, given whether the
    /// directory holds any of that kind.
    pub fn applies(self, directory_has_any: bool) -> bool {
        match self {
            Strict::Yes => true,
            Strict::No => false,
            Strict::Auto => directory_has_any,
        }
    }
}

/// The directory, held in memory: identifiers for `registry.strict`, and the rows the
/// public listings page through (ordered by identifier, with a lowercase haystack for
/// search).
#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// Poll office identifier -> registered voters, when known.
    pub offices: HashMap<String, Option<i64>>,
    /// Numeric directory id -> identifier (the citizen app sends numeric ids).
    pub by_id: HashMap<i64, String>,
    pub parties: HashSet<String>,
    /// (lowercase haystack, the row's JSON): serialized once, 50,000 of them take a few
    /// MB, where `serde_json::Value`s took forty.
    pub office_rows: Vec<(Box<str>, Box<serde_json::value::RawValue>)>,
    pub party_rows: Vec<serde_json::Value>,
}

impl Directory {
    /// Whether `registry.strict` refuses this office (section 9: `auto` checks offices
    /// once any office is in the directory).
    pub fn refuses_office(&self, strict: Strict, id: &str) -> bool {
        strict.applies(!self.offices.is_empty()) && !self.offices.contains_key(id)
    }

    /// The same for a party.
    pub fn refuses_party(&self, strict: Strict, id: &str) -> bool {
        strict.applies(!self.parties.is_empty()) && !self.parties.contains(id)
    }
}
