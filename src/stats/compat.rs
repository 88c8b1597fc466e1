//! The compatibility forms (spec section 5): what the earlier backend's apps parse. Per
//! office, `last_vote` and `last_paper` keyed by source display name beside `"Accepted"`
//! (and `"Verified"`); and the national views, summed over every office.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use super::office::{results_of, Office, Totals};
use super::sources::SourceBook;

/// `{index, gender, age, has_torn, timestamp, created_at}` (`created_at` = `timestamp`).
fn vote_entry(idx: u32, gender: &str, age: &str, has_torn: bool, at: &str) -> Value {
    json!({"index": idx, "gender": gender, "age": age, "has_torn": has_torn, "timestamp": at, "created_at": at})
}

fn with_created_at(mut v: Value) -> Value {
    v["created_at"] = v["timestamp"].clone();
    v
}

pub(super) fn stats(office: &Office, poll_office_id: &str, book: &SourceBook) -> Value {
    let mut last_vote = Map::new();
    for (n, last) in book.counted(&office.vote_lasts) {
        let a = last.value;
        last_vote.insert(
            book.name(n).into_owned(),
            vote_entry(last.idx, a.gender.as_str(), a.age.as_str(), a.has_torn, &last.reported_at),
        );
    }
    let verified = office.counted.iter().rev().find_map(|idx| {
        let (a, at) = office.votes.get(idx)?.verification?;
        Some(vote_entry(*idx, a.gender.as_str(), a.age.as_str(), a.has_torn, &at.to_rfc3339()))
    });
    last_vote.insert("Verified".into(), verified.into());
    last_vote.insert("Accepted".into(), office.last_vote().map(with_created_at).into());
    let mut totals = office.totals.to_json(office.vote_sources);
    totals["total_sources"] = json!(office.vote_sources);
    json!({"poll_office_id": poll_office_id, "totals": totals, "last_vote": last_vote, "flags": office.flags_json()})
}

pub(super) fn results(office: &Office, poll_office_id: &str, book: &SourceBook) -> Value {
    let accepted = office.last_paper();
    let mut last_paper = Map::new();
    for (n, last) in book.counted(&office.ballot_lasts) {
        last_paper.insert(book.name(n).into_owned(), json!({"index": last.idx, "party_id": last.value}));
    }
    last_paper.insert("Accepted".into(), accepted.map(|(idx, p)| json!({"index": idx, "party_id": p})).into());
    last_paper.insert("index".into(), accepted.map(|(idx, _)| idx).into());
    last_paper.insert("party_id".into(), accepted.map(|(_, p)| p).into());
    json!({
        "poll_office_id": poll_office_id,
        "last_paper": last_paper,
        "results": office.results(),
        "total_ballots": office.total_ballots,
        "undecided_ballots": office.undecided_ballots,
        "sources": office.ballot_sources,
        "totals": {"total_ballots": office.total_ballots, "total_sources": office.ballot_sources},
    })
}

/// What the national views count beyond the offices with data.
pub(super) struct DirectoryView<'a> {
    pub offices: usize,
    pub contains: &'a dyn Fn(&str) -> bool,
}

/// The national stats and results bodies.
pub(super) fn national<'a>(
    offices: impl Iterator<Item = (&'a str, &'a Office)>,
    book: &SourceBook,
    dir: DirectoryView,
) -> (Value, Value) {
    let mut totals = Totals::default();
    let mut vote_sources = HashSet::new();
    let mut ballot_sources = HashSet::new();
    let mut parties: BTreeMap<String, i64> = BTreeMap::new();
    let (mut total_ballots, mut undecided_ballots) = (0, 0);
    let (mut covered_votes, mut covered_ballots, mut outside_directory) = (0, 0, 0);
    let mut latest: Option<(i64, &str, &Office, u32)> = None;
    for (id, o) in offices {
        totals.add(o.totals, 1);
        covered_votes += (o.totals.votes > 0) as usize;
        covered_ballots += (o.total_ballots > 0) as usize;
        outside_directory += !(dir.contains)(id) as usize;
        vote_sources.extend(book.counted(&o.vote_lasts).map(|(n, _)| n));
        ballot_sources.extend(book.counted(&o.ballot_lasts).map(|(n, _)| n));
        for (p, n) in &o.parties {
            *parties.entry(p.clone()).or_default() += n;
        }
        total_ballots += o.total_ballots;
        undecided_ballots += o.undecided_ballots;
        if let Some((vote_id, idx)) = o.latest() {
            if latest.is_none_or(|(l, ..)| vote_id > l) {
                latest = Some((vote_id, id, o, idx));
            }
        }
    }
    let accepted = latest.and_then(|(_, id, o, idx)| {
        let mut v = with_created_at(o.votes.get(&idx)?.accepted_json(idx)?);
        v["poll_office_id"] = json!(id);
        Some(v)
    });
    let mut stats_totals = totals.to_json(vote_sources.len() as u32);
    stats_totals["total_sources"] = json!(vote_sources.len());
    stats_totals["total_poll_offices"] = json!(dir.offices + outside_directory);
    stats_totals["covered_poll_offices"] = json!(covered_votes);
    let stats = json!({"totals": stats_totals, "last_vote": {"Accepted": accepted}});
    let results = json!({
        "results": results_of(&parties, total_ballots),
        "total_ballots": total_ballots,
        "undecided_ballots": undecided_ballots,
        "covered_poll_offices": covered_ballots,
        "totals": {"total_ballots": total_ballots, "total_sources": ballot_sources.len()},
    });
    (stats, results)
}
