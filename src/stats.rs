//! The in-memory aggregates behind the public statistics and results: per office, every
//! vote's and ballot's accepted state, running totals, and the JSON bodies already
//! rendered with their ETags, so the busiest endpoint of the day is a map lookup.
//!
//! Invariants: changed only by `apply`, with the effects of a committed transaction (or
//! all rows at start), so memory never shows what the database does not hold; totals are
//! kept by subtracting a row's old contribution and adding its new one, and always equal
//! a recount of the rows (the property test checks it).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warp::http::HeaderValue;

use crate::domain::crosscheck::{BallotDecision, VoteDecision};
use crate::domain::vote::{Age, Decided, Gender};
use crate::store::ops::{Effect, Kind};

/// A response body rendered once per change, with its ETag (a header value ready to send).
#[derive(Clone, Debug)]
pub struct Rendered {
    pub body: Bytes,
    pub etag: HeaderValue,
}

impl Rendered {
    fn of(value: &Value) -> Self {
        let body = serde_json::to_vec(value).expect("a JSON value serialises");
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", &hex::encode(digest)[..20]);
        Rendered { etag: HeaderValue::from_str(&etag).expect("hex is a valid header"), body: Bytes::from(body) }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    votes: i64,
    male: i64,
    female: i64,
    less_30: i64,
    less_60: i64,
    more_60: i64,
    has_torn: i64,
    verified: i64,
    disputed: i64,
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
            verified: b(v.verified),
            disputed: b(d.disputed),
        }
    }

    fn add(&mut self, o: Totals, sign: i64) {
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
}

#[derive(Clone, Debug)]
struct VoteView {
    decision: Option<VoteDecision>,
    verified: bool,
    first_reported_at: String,
}

#[derive(Default)]
struct Office {
    votes: BTreeMap<u32, VoteView>,
    totals: Totals,
    vote_sources: u32,
    ballots: BTreeMap<u32, Option<BallotDecision>>,
    parties: BTreeMap<String, i64>,
    total_ballots: i64,
    undecided_ballots: i64,
    ballot_sources: u32,
    /// Rendered on first read after a change, so a burst of writes renders once.
    stats: Option<Rendered>,
    results: Option<Rendered>,
}

impl Office {
    fn set_ballot(&mut self, idx: u32, decision: Option<BallotDecision>, sign: i64) {
        if let Some(d) = &decision {
            self.total_ballots += sign;
            match &d.party {
                Some(p) => {
                    let n = self.parties.entry(p.clone()).or_default();
                    *n += sign;
                    if *n == 0 {
                        self.parties.remove(p);
                    }
                }
                None => self.undecided_ballots += sign,
            }
        }
        if sign > 0 {
            self.ballots.insert(idx, decision);
        }
    }

    fn stats_json(&self, poll_office_id: &str) -> Value {
        let t = &self.totals;
        let last_vote = self.votes.iter().rev().find_map(|(idx, v)| {
            v.decision.map(|d| {
                json!({
                    "index": idx,
                    "gender": d.accepted.gender.as_str(),
                    "age": d.accepted.age.as_str(),
                    "has_torn": d.accepted.has_torn,
                    "timestamp": v.first_reported_at,
                })
            })
        });
        json!({
            "poll_office_id": poll_office_id,
            "totals": {
                "votes": t.votes, "male": t.male, "female": t.female,
                "less_30": t.less_30, "less_60": t.less_60, "more_60": t.more_60,
                "has_torn": t.has_torn, "verified": t.verified, "disputed": t.disputed,
                "sources": self.vote_sources,
            },
            "last_vote": last_vote,
            "flags": [],
        })
    }

    fn results_json(&self, poll_office_id: &str) -> Value {
        let last_paper = self.ballots.iter().rev().find_map(|(idx, b)| {
            b.as_ref().and_then(|d| d.party.as_ref()).map(|p| json!({"index": idx, "party_id": p}))
        });
        let mut results: Vec<(&String, i64)> = self.parties.iter().map(|(p, n)| (p, *n)).collect();
        results.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let total = self.total_ballots;
        let results: Vec<Value> = results
            .into_iter()
            .map(|(p, n)| json!({"party_id": p, "ballots": n, "share": n as f64 / total as f64}))
            .collect();
        json!({
            "poll_office_id": poll_office_id,
            "last_paper": last_paper,
            "results": results,
            "total_ballots": total,
            "undecided_ballots": self.undecided_ballots,
            "sources": self.ballot_sources,
        })
    }
}

#[derive(Clone, Copy)]
enum Body {
    Stats,
    Results,
}

impl Body {
    fn cached(self, office: &Office) -> Option<&Rendered> {
        match self {
            Body::Stats => office.stats.as_ref(),
            Body::Results => office.results.as_ref(),
        }
    }

    fn render(self, office: &Office, id: &str) -> Value {
        match self {
            Body::Stats => office.stats_json(id),
            Body::Results => office.results_json(id),
        }
    }
}

/// The aggregates of every office with data.
#[derive(Default)]
pub struct Stats {
    offices: RwLock<HashMap<String, Office>>,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in the effects of one commit (or of a rebuild).
    pub fn apply(&self, effects: &[Effect]) {
        let mut offices = self.offices.write();
        for effect in effects {
            match effect {
                Effect::Vote(row) => {
                    let office = offices.entry(row.poll_office_id.clone()).or_default();
                    let view = VoteView {
                        decision: row.decision,
                        verified: row.verified,
                        first_reported_at: row.first_reported_at.clone(),
                    };
                    office.totals.add(Totals::of(&view), 1);
                    if let Some(old) = office.votes.insert(row.idx, view) {
                        office.totals.add(Totals::of(&old), -1);
                    }
                    office.stats = None;
                }
                Effect::Ballot(row) => {
                    let office = offices.entry(row.poll_office_id.clone()).or_default();
                    if let Some(old) = office.ballots.remove(&row.idx) {
                        office.set_ballot(row.idx, old, -1);
                    }
                    office.set_ballot(row.idx, row.decision.clone(), 1);
                    office.results = None;
                }
                Effect::OfficeSources { poll_office_id, kind, counted } => {
                    let office = offices.entry(poll_office_id.clone()).or_default();
                    match kind {
                        Kind::Vote => {
                            office.vote_sources = *counted;
                            office.stats = None;
                        }
                        Kind::Ballot => {
                            office.ballot_sources = *counted;
                            office.results = None;
                        }
                    }
                }
                Effect::TokenIssued(_) | Effect::TokensRevoked { .. } => {}
            }
        }
    }

    /// The stats body of an office (zeros when it has no data).
    pub fn stats(&self, poll_office_id: &str) -> Rendered {
        self.rendered(poll_office_id, Body::Stats)
    }

    /// The results body of an office (zeros when it has no data).
    pub fn results(&self, poll_office_id: &str) -> Rendered {
        self.rendered(poll_office_id, Body::Results)
    }

    /// The cached body, or renders it (once, under the write lock) after a change.
    fn rendered(&self, id: &str, body: Body) -> Rendered {
        if let Some(office) = self.offices.read().get(id) {
            if let Some(r) = body.cached(office) {
                return r.clone();
            }
        } else {
            return Rendered::of(&body.render(&Office::default(), id));
        }
        let mut offices = self.offices.write();
        let Some(office) = offices.get_mut(id) else { return Rendered::of(&body.render(&Office::default(), id)) };
        if let Some(r) = body.cached(office) {
            return r.clone();
        }
        let r = Rendered::of(&body.render(office, id));
        match body {
            Body::Stats => office.stats = Some(r.clone()),
            Body::Results => office.results = Some(r.clone()),
        }
        r
    }

    /// Whether the office has any vote or ballot.
    pub fn has_office(&self, poll_office_id: &str) -> bool {
        self.offices.read().contains_key(poll_office_id)
    }

    /// Every office's stats and results bodies, parsed: for tests comparing two builds.
    pub fn snapshot(&self) -> BTreeMap<String, (Value, Value)> {
        let offices = self.offices.read();
        offices.iter().map(|(id, o)| (id.clone(), (o.stats_json(id), o.results_json(id)))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::vote::Accepted;
    use crate::store::ops::{BallotRow, VoteRow};

    fn vote(idx: u32, gender: Decided<Gender>, disputed: bool) -> Effect {
        Effect::Vote(VoteRow {
            id: idx as i64,
            poll_office_id: "PO".into(),
            idx,
            first_reported_at: "2025-08-15T14:00:00Z".into(),
            live: true,
            decision: Some(VoteDecision {
                accepted: Accepted { gender, age: Decided::Value(Age::Less30), has_torn: false },
                disputed,
            }),
            verified: false,
            observed_at: None,
        })
    }

    fn ballot(idx: u32, party: Option<&str>) -> Effect {
        Effect::Ballot(BallotRow {
            id: idx as i64,
            poll_office_id: "PO".into(),
            idx,
            decision: Some(BallotDecision { party: party.map(str::to_owned), disputed: party.is_none() }),
        })
    }

    #[test]
    fn a_replaced_vote_moves_between_buckets() {
        let s = Stats::new();
        s.apply(&[vote(1, Decided::Value(Gender::Male), false)]);
        s.apply(&[vote(1, Decided::Undecided, true)]);
        let (stats, _) = s.snapshot().remove("PO").unwrap();
        assert_eq!(stats["totals"]["votes"], 1);
        assert_eq!(stats["totals"]["male"], 0);
        assert_eq!(stats["totals"]["female"], 0);
        assert_eq!(stats["totals"]["disputed"], 1);
        assert_eq!(stats["last_vote"]["gender"], "undecided");
    }

    #[test]
    fn results_are_sorted_and_shares_are_unrounded() {
        let s = Stats::new();
        s.apply(&[ballot(1, Some("B")), ballot(2, Some("A")), ballot(3, Some("B")), ballot(4, None)]);
        let (_, r) = s.snapshot().remove("PO").unwrap();
        assert_eq!(r["total_ballots"], 4);
        assert_eq!(r["undecided_ballots"], 1);
        assert_eq!(r["results"][0], json!({"party_id": "B", "ballots": 2, "share": 0.5}));
        assert_eq!(r["results"][1], json!({"party_id": "A", "ballots": 1, "share": 0.25}));
        assert_eq!(r["last_paper"], json!({"index": 3, "party_id": "B"}));
    }

    #[test]
    fn an_office_without_data_has_zeros_and_a_stable_etag() {
        let s = Stats::new();
        let a = s.stats("PO-9");
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["last_vote"], Value::Null);
        assert_eq!(v["flags"], json!([]));
        assert_eq!(a.etag, s.stats("PO-9").etag);
    }
}
