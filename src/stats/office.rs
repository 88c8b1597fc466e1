//! One office's aggregates: every vote's and ballot's accepted state, running totals, each
//! source's last proposal, and the seed's bodies (`stats_json`, `results_json`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;

use serde_json::{json, Value};

use crate::domain::change::{BallotRow, ProposalRow, Proposed, VoteRow};
use crate::domain::crosscheck::{BallotDecision, VoteDecision};
use crate::domain::flags::{self, Density, Figures, Flag};
use crate::domain::vote::{Age, Decided, Gender, VoteAttrs};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Totals {
    pub votes: i64,
    pub male: i64,
    pub female: i64,
    pub less_30: i64,
    pub less_60: i64,
    pub more_60: i64,
    pub has_torn: i64,
    pub verified: i64,
    pub disputed: i64,
}

impl Totals {
    fn of(v: &VoteView) -> Totals {
        let Some(d) = v.decision else {
            return Totals::default();
        };
        let a = d.accepted;
        let b = |x: bool| x as i64;
        Totals {
            votes: 1,
            male: b(a.gender == Decided::Value(Gender::Male)),
            female: b(a.gender == Decided::Value(Gender::Female)),
            less_30: b(a.age == Decided::Value(Age::Less30)),
            less_60: b(a.age == Decided::Value(Age::Less60)),
            more_60: b(a.age == Decided::Value(Age::More60)),
            has_torn: b(a.has_torn),
            verified: b(v.verification.is_some()),
            disputed: b(d.disputed),
        }
    }

    pub fn add(&mut self, o: Totals, sign: i64) {
        self.votes += sign * o.votes;
        self.male += sign * o.male;
        self.female += sign * o.female;
        self.less_30 += sign * o.less_30;
        self.less_60 += sign * o.less_60;
        self.more_60 += sign * o.more_60;
        self.has_torn += sign * o.has_torn;
        self.verified += sign * o.verified;
        self.disputed += sign * o.disputed;
    }

    /// The spec's `totals` object, with `sources`.
    pub fn to_json(self, sources: u32) -> Value {
        json!({
            "votes": self.votes, "male": self.male, "female": self.female,
            "less_30": self.less_30, "less_60": self.less_60, "more_60": self.more_60,
            "has_torn": self.has_torn, "verified": self.verified, "disputed": self.disputed,
            "sources": sources,
        })
    }
}

/// A whole second in 4 bytes (and `Option<Secs>` too): every vote of the country keeps
/// two or three of these in memory, where a timestamp string would take 44 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Secs(NonZeroU32);

/// One second before the compact epoch: `Secs(1)` is the epoch itself.
const EPOCH: i64 = crate::domain::time::COMPACT_EPOCH - 1;

impl Secs {
    /// A timestamp, to the second; times before 2020 count as 2020-01-01.
    pub fn of(t: crate::domain::time::Timestamp) -> Secs {
        let n = (t.timestamp() - EPOCH).clamp(1, i64::from(u32::MAX)) as u32;
        Secs(NonZeroU32::new(n).expect("clamped to at least 1"))
    }

    pub fn unix(self) -> i64 {
        EPOCH + i64::from(self.0.get())
    }

    /// RFC 3339 UTC with second precision, as the API writes every timestamp.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp(self.unix(), 0).map(crate::domain::time::format).unwrap_or_default()
    }
}

/// What memory keeps of one vote: its accepted state and the times the public bodies show.
#[derive(Clone, Debug)]
pub(super) struct VoteView {
    /// The vote's global id (SQLite rowids: four billion votes before this saturates).
    pub id: u32,
    pub decision: Option<VoteDecision>,
    /// What the voter confirmed, and when.
    pub verification: Option<(VoteAttrs, Secs)>,
    pub first_reported: Secs,
    /// When a counted vote was observed (section 6b).
    pub observed: Option<Secs>,
}

impl VoteView {
    /// `{index, gender, age, has_torn, timestamp}` with the accepted attributes, if counted.
    pub fn accepted_json(&self, idx: u32) -> Option<Value> {
        self.decision.map(|d| {
            json!({
                "index": idx,
                "gender": d.accepted.gender.as_str(),
                "age": d.accepted.age.as_str(),
                "has_torn": d.accepted.has_torn,
                "timestamp": self.first_reported.to_rfc3339(),
            })
        })
    }
}

/// A source's proposal with the highest index at an office.
#[derive(Clone, Debug)]
pub(super) struct Last<T> {
    pub idx: u32,
    pub reported_at: Secs,
    pub value: T,
}

/// Keeps the highest index: a higher one replaces it, a correction of it updates it.
fn keep_last<T>(lasts: &mut HashMap<i64, Last<T>>, row: &ProposalRow, value: T) {
    let new = Last { idx: row.idx, reported_at: Secs::of(row.reported_at), value };
    match lasts.get(&row.source_n) {
        Some(cur) if cur.idx > row.idx => {}
        _ => {
            lasts.insert(row.source_n, new);
        }
    }
}

/// A maximum over an office's votes or ballots, kept as they change: a new row can only
/// raise it, and when the row holding it leaves, it is `Lost` until `Office::refresh`
/// looks for it again (one walk, after the commit that lost it: only a re-weigh of the
/// office does that, and it already reads every row).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Max<T> {
    Known(Option<T>),
    Lost,
}

impl<T> Default for Max<T> {
    fn default() -> Self {
        Max::Known(None)
    }
}

impl<T: Copy + Ord> Max<T> {
    fn add(&mut self, v: T) {
        if let Max::Known(m) = self {
            if m.is_none_or(|m| v > m) {
                *m = Some(v);
            }
        }
    }

    fn remove(&mut self, v: T) {
        if *self == Max::Known(Some(v)) {
            *self = Max::Lost;
        }
    }

    /// Found again by `find` if lost.
    fn refresh(&mut self, find: impl FnOnce() -> Option<T>) {
        if *self == Max::Lost {
            *self = Max::Known(find());
        }
    }

    pub fn get(self) -> Option<T> {
        match self {
            Max::Known(m) => m,
            Max::Lost => unreachable!("an office is refreshed after every change"),
        }
    }
}

/// An office's ballots and what is derived from them.
#[derive(Default)]
pub(super) struct Count {
    pub ballots: BTreeMap<u32, Option<BallotDecision>>,
    pub parties: BTreeMap<String, i64>,
    pub total_ballots: i64,
    pub undecided_ballots: i64,
    pub ballot_sources: u32,
    /// The seq of the last audit entry that concerns the office's ballots (`log_seq`).
    pub ballot_log_seq: i64,
    pub ballot_lasts: HashMap<i64, Last<String>>,
    /// The decided ballots as `(id, idx)`: the last is the decided ballot first reported
    /// most recently (the national `last_paper`). A set, not a `Max`: a correction can
    /// undecide a ballot (a tie) at any time, not only a re-weigh.
    pub decided_by_id: BTreeSet<(u32, u32)>,
}

static NO_COUNT: std::sync::LazyLock<Count> = std::sync::LazyLock::new(Count::default);

#[derive(Default)]
pub(super) struct Office {
    /// By index. Trees, not sorted vectors: a reporter posting indexes from 1,000,000 down
    /// to 1 would make each insertion into a vector move megabytes under the lock.
    pub votes: BTreeMap<u32, VoteView>,
    pub totals: Totals,
    pub vote_sources: u32,
    /// The count of the ballots, boxed: most of the day, and most offices, have none.
    count: Option<Box<Count>>,
    /// The seq of the last audit entry that concerns the office's votes, and its ballots
    /// (`log_seq`, section 6e; 0 before any).
    pub vote_log_seq: i64,
    pub vote_lasts: HashMap<i64, Last<VoteAttrs>>,
    /// The highest counted index (flags, `last_vote`), never looked for past uncounted
    /// votes, however many an opportunistic reporter posted.
    pub top: Max<u32>,
    /// The highest counted index with a verification (the apps' `Verified`).
    pub top_verified: Max<u32>,
    /// `(id, idx)` of the counted vote first reported most recently (vote ids grow with
    /// first reports): the national `last_vote`.
    pub latest: Max<(u32, u32)>,
    /// Observation times of the counted votes, for `fast_voting`: boxed, since only
    /// offices with live reports have any.
    density: Option<Box<Density>>,
    pub flags: Vec<Flag>,
}

impl Office {
    pub fn count(&self) -> &Count {
        self.count.as_deref().unwrap_or(&NO_COUNT)
    }

    pub fn count_mut(&mut self) -> &mut Count {
        self.count.get_or_insert_with(Default::default)
    }

    /// Rebuilds the office's trees in bulk, with full nodes: the start-up rebuild filled
    /// them in order, which leaves their nodes half full.
    pub fn compact(&mut self) {
        self.votes = std::mem::take(&mut self.votes).into_iter().collect();
        if let Some(c) = &mut self.count {
            c.decided_by_id = std::mem::take(&mut c.decided_by_id).into_iter().collect();
            c.ballots = std::mem::take(&mut c.ballots).into_iter().collect();
        }
        if let Some(d) = &mut self.density {
            d.compact();
        }
    }

    pub fn set_vote(&mut self, row: &VoteRow) {
        // Observed when the app says it was (the earliest counted `observed_at`), else
        // when first reported if that report was live (section 6b), else unknown.
        let first_reported = Secs::of(row.first_reported_at);
        let observed = row.decision.and_then(|_| match row.observed_at {
            Some(at) => Some(Secs::of(at)),
            None => row.timed.then_some(first_reported),
        });
        let view = VoteView {
            id: u32::try_from(row.id).unwrap_or(u32::MAX),
            decision: row.decision,
            verification: row.verification.as_ref().map(|v| (v.attrs, Secs::of(v.at))),
            first_reported,
            observed,
        };
        self.totals.add(Totals::of(&view), 1);
        if let Some(t) = observed {
            self.density.get_or_insert_with(Default::default).add(t.unix());
        }
        // A vote stops counting only when its office is re-weighed: only then is a
        // maximum lost.
        let (id, idx) = (view.id, row.idx);
        let counted = row.decision.is_some();
        let verified = counted && view.verification.is_some();
        if let Some(old) = self.votes.insert(idx, view) {
            self.totals.add(Totals::of(&old), -1);
            if let (Some(t), Some(d)) = (old.observed, &mut self.density) {
                d.remove(t.unix());
            }
            if old.decision.is_some() && !counted {
                self.top.remove(idx);
                self.latest.remove((old.id, idx));
            }
            if old.decision.is_some() && old.verification.is_some() && !verified {
                self.top_verified.remove(idx);
            }
        }
        if counted {
            self.top.add(idx);
            self.latest.add((id, idx));
        }
        if verified {
            self.top_verified.add(idx);
        }
    }

    /// Finds again the maxima the last changes lost (after each commit's changes).
    pub fn refresh(&mut self) {
        let counted = |v: &&VoteView| v.decision.is_some();
        let votes = &self.votes;
        self.top.refresh(|| votes.iter().rev().find(|(_, v)| counted(v)).map(|(idx, _)| *idx));
        self.top_verified
            .refresh(|| votes.iter().rev().find(|(_, v)| counted(v) && v.verification.is_some()).map(|(idx, _)| *idx));
        self.latest.refresh(|| votes.iter().filter(|(_, v)| counted(v)).map(|(idx, v)| (v.id, *idx)).max());
    }

    /// The counted vote first reported most recently, as `(id, idx)`.
    pub fn latest(&self) -> Option<(i64, u32)> {
        self.latest.get().map(|(id, idx)| (i64::from(id), idx))
    }

    pub fn set_ballot(&mut self, row: &BallotRow) {
        self.count_ballot(&row.decision, 1);
        let count = self.count_mut();
        if let Some(old) = count.ballots.insert(row.idx, row.decision.clone()) {
            self.count_ballot(&old, -1);
        }
        let count = self.count_mut();
        let key = (u32::try_from(row.id).unwrap_or(u32::MAX), row.idx);
        if row.decision.as_ref().is_some_and(|d| d.party.is_some()) {
            count.decided_by_id.insert(key);
        } else {
            count.decided_by_id.remove(&key);
        }
    }

    /// The decided ballot first reported most recently, as `(id, idx)`.
    pub fn latest_paper(&self) -> Option<(i64, u32)> {
        self.count().decided_by_id.last().map(|&(id, idx)| (i64::from(id), idx))
    }

    fn count_ballot(&mut self, decision: &Option<BallotDecision>, sign: i64) {
        let Some(d) = decision else { return };
        let count = self.count_mut();
        count.total_ballots += sign;
        match &d.party {
            Some(p) => {
                let n = count.parties.entry(p.clone()).or_default();
                *n += sign;
                if *n == 0 {
                    count.parties.remove(p);
                }
            }
            None => count.undecided_ballots += sign,
        }
    }

    pub fn set_proposal(&mut self, row: &ProposalRow) {
        match &row.value {
            Proposed::Vote(attrs) => keep_last(&mut self.vote_lasts, row, *attrs),
            Proposed::Ballot(party) => keep_last(&mut self.count_mut().ballot_lasts, row, party.as_str().to_owned()),
        }
    }

    /// Recomputes the quality flags; whether they changed.
    pub fn refresh_flags(&mut self, registered: Option<i64>) -> bool {
        let figures = Figures {
            votes: self.totals.votes,
            disputed: self.totals.disputed,
            max_index: self.top.get(),
            ballots: self.count().total_ballots,
            registered,
            fast: self.density.as_ref().is_some_and(|d| d.fast()),
        };
        let new = flags::flags(&figures);
        let changed = new != self.flags;
        self.flags = new;
        changed
    }

    pub fn flags_json(&self) -> Value {
        self.flags.iter().map(Flag::to_json).collect()
    }

    /// The counted vote with the highest index, with its accepted attributes.
    pub fn last_vote(&self) -> Option<Value> {
        let idx = self.top.get()?;
        self.votes.get(&idx)?.accepted_json(idx)
    }

    /// The counted ballot with the highest index, decided or not, with its accepted party.
    pub fn last_counted_ballot(&self) -> Option<(u32, Option<&str>)> {
        self.count().ballots.iter().rev().find_map(|(idx, b)| b.as_ref().map(|d| (*idx, d.party.as_deref())))
    }

    /// The decided ballot with the highest index.
    pub fn last_paper(&self) -> Option<(u32, &str)> {
        self.count()
            .ballots
            .iter()
            .rev()
            .find_map(|(idx, b)| b.as_ref().and_then(|d| d.party.as_deref()).map(|p| (*idx, p)))
    }

    /// Accepted parties, by ballots descending then `party_id`, with unrounded shares.
    pub fn results(&self) -> Vec<Value> {
        results_of(&self.count().parties, self.count().total_ballots)
    }

    pub fn stats_json(&self, poll_office_id: &str) -> Value {
        json!({
            "poll_office_id": poll_office_id,
            "totals": self.totals.to_json(self.vote_sources),
            "last_vote": self.last_vote(),
            "flags": self.flags_json(),
            "log_seq": self.vote_log_seq,
        })
    }

    pub fn results_json(&self, poll_office_id: &str) -> Value {
        json!({
            "poll_office_id": poll_office_id,
            "last_paper": self.last_paper().map(|(idx, p)| json!({"index": idx, "party_id": p})),
            "results": self.results(),
            "total_ballots": self.count().total_ballots,
            "undecided_ballots": self.count().undecided_ballots,
            "sources": self.count().ballot_sources,
            "log_seq": self.count().ballot_log_seq,
        })
    }
}

/// Parties by ballots descending then `party_id`, with unrounded shares of `total`.
pub(super) fn results_of(parties: &BTreeMap<String, i64>, total: i64) -> Vec<Value> {
    let mut results: Vec<(&String, i64)> = parties.iter().map(|(p, n)| (p, *n)).collect();
    results.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    results.into_iter().map(|(p, n)| json!({"party_id": p, "ballots": n, "share": n as f64 / total as f64})).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<VoteView>(), 24);
    }

    #[test]
    fn times_keep_their_second_and_their_text() {
        let secs = |t: &str| Secs::of(crate::domain::time::parse(t).unwrap());
        for t in ["2025-08-15T14:02:11Z", "2020-01-01T00:00:00Z", "2099-12-31T23:59:59Z"] {
            assert_eq!(secs(t).to_rfc3339(), t);
        }
        assert_eq!(secs("2025-08-15T16:02:11.9+02:00").to_rfc3339(), "2025-08-15T14:02:11Z");
        assert_eq!(secs("1999-01-01T00:00:00Z").to_rfc3339(), "2020-01-01T00:00:00Z");
    }
}
