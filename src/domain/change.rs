//! The change feed: what a committed write changed, as typed rows. The writer reports
//! them after each commit (and a rebuild reads them from the tables at start); the
//! in-memory aggregates (`stats`), the reporters' tokens (`auth::tokens`) and the
//! verification hub (`ws`) take them in. They depend on this module, not on the store.

use crate::domain::crosscheck::{BallotDecision, VoteDecision};
use crate::domain::directory::Directory;
use crate::domain::ids::{ElectorId, PartyId, PollOfficeId};
use crate::domain::source::Status;
use crate::domain::time::Timestamp;
use crate::domain::vote::VoteAttrs;

/// A vote's state after a write, as the aggregates need it.
#[derive(Clone, Debug, PartialEq)]
pub struct VoteRow {
    pub id: i64,
    pub poll_office_id: PollOfficeId,
    pub idx: u32,
    /// When any source first reported it (second precision, as stored).
    pub first_reported_at: Timestamp,
    /// First reported by a single post, not in a batch (section 7: offered to voters).
    pub live: bool,
    /// Its first report's time is an observation time (section 6b, `flags::timed_report`).
    pub timed: bool,
    /// `None` when no proposal counts.
    pub decision: Option<VoteDecision>,
    pub verification: Option<Verification>,
    /// The earliest counted `observed_at` of its proposals.
    pub observed_at: Option<Timestamp>,
}

/// What a voter confirmed about their vote, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    pub attrs: VoteAttrs,
    pub at: Timestamp,
}

/// A source as the public sees it: its status and what its display name is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRow {
    pub n: i64,
    pub status: Status,
    pub full_name: Option<String>,
    pub official_org: Option<String>,
}

/// One source's proposal for one index at an office, as it now stands (the aggregates
/// keep each source's highest index, for the compatibility forms).
#[derive(Clone, Debug, PartialEq)]
pub struct ProposalRow {
    pub poll_office_id: PollOfficeId,
    pub source_n: i64,
    pub idx: u32,
    /// When this source first reported this index.
    pub reported_at: Timestamp,
    pub value: Proposed,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Proposed {
    Vote(VoteAttrs),
    Ballot(PartyId),
}

#[derive(Clone, Debug, PartialEq)]
pub struct BallotRow {
    pub id: i64,
    pub poll_office_id: PollOfficeId,
    pub idx: u32,
    pub decision: Option<BallotDecision>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Vote,
    Ballot,
}

impl Kind {
    /// The bodies a change of votes dates (section 6e's `log_seq`): the stats.
    pub fn dated_by_votes() -> &'static [Kind] {
        &[Kind::Vote]
    }

    /// The bodies a change of ballots dates: the results, and the stats too, whose
    /// flags compare ballots with votes and registered voters.
    pub fn dated_by_ballots() -> &'static [Kind] {
        &[Kind::Ballot, Kind::Vote]
    }

    /// The bodies a change of this kind dates.
    pub fn dates(self) -> &'static [Kind] {
        match self {
            Kind::Vote => Self::dated_by_votes(),
            Kind::Ballot => Self::dated_by_ballots(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vote => "vote",
            Kind::Ballot => "ballot",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TokenRow {
    pub token_hash: String,
    pub source_n: i64,
    pub elector_id: ElectorId,
    pub poll_office_id: PollOfficeId,
    pub expires_at: Timestamp,
}

/// An audit entry appended by a write (section 6e): its `seq` and its leaf hash in the
/// transparency log, what a write answer carries as its receipt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Receipt {
    pub seq: i64,
    pub leaf_hash: crate::domain::tlog::Hash,
}

impl Receipt {
    /// `{"seq": N, "leaf_hash": "<hex>"}`, as write answers carry it.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({"seq": self.seq, "leaf_hash": hex::encode(self.leaf_hash.0)})
    }
}

/// Adds `"receipt"` to a write answer's body, when the write has one.
pub fn with_receipt(mut body: serde_json::Value, receipt: Option<Receipt>) -> serde_json::Value {
    if let Some(r) = receipt {
        body["receipt"] = r.to_json();
    }
    body
}

/// What a committed write changed, for the in-memory state.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Vote(VoteRow),
    Ballot(BallotRow),
    Proposal(ProposalRow),
    /// A source created or changed.
    Source(SourceRow),
    /// The number of sources whose proposals of this kind count at this office.
    OfficeSources {
        poll_office_id: PollOfficeId,
        kind: Kind,
        counted: u32,
    },
    /// Revokes a source's tokens: for one office, or all of them.
    TokensRevoked {
        source_n: i64,
        poll_office_id: Option<PollOfficeId>,
    },
    TokenIssued(TokenRow),
    /// Every token that expired by then is gone (their rows deleted).
    TokensExpired(Timestamp),
    /// The directory as it now stands (after an import by another process).
    Directory(Shared<Directory>),
    /// An entry appended to the audit log (the transparency log's next leaf).
    Logged(Receipt),
    /// The entry `seq` is now the last one that concerns this office's numbers of this
    /// kind: its stats (votes) or results (ballots) carry it as `log_seq`.
    OfficeLogged {
        poll_office_id: PollOfficeId,
        kind: Kind,
        seq: i64,
    },
}

/// A value shared with the effect's readers without copying; equal when it is the same.
#[derive(Clone)]
pub struct Shared<T>(pub std::sync::Arc<T>);

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared(..)")
    }
}
