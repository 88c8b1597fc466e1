//! The compatibility forms (spec section 5): what the earlier backend's apps parse. Per
//! office, `last_vote` and `last_paper` keyed by source display name beside `"Accepted"`
//! (and `"Verified"`); and the national views, summed over every office.

use std::collections::{BTreeMap, HashMap, HashSet};

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

/// A keyed object in the order the spec fixes: the fixed keys first, in the order given,
/// then the sources by display name (the citizen app titles its table with the first).
fn keyed<'a, T>(
    fixed: Vec<(&str, Value)>,
    book: &'a SourceBook,
    lasts: &'a HashMap<i64, T>,
    entry: impl Fn(&'a T) -> Value,
) -> Map<String, Value> {
    let mut sources: Vec<(String, Value)> =
        book.counted(lasts).map(|(n, last)| (book.name(n).into_owned(), entry(last))).collect();
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    fixed.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(sources).collect()
}

pub(super) fn stats(office: &Office, poll_office_id: &str, book: &SourceBook) -> Value {
    let verified = office.top_verified.get().and_then(|idx| {
        let (a, at) = office.votes.get(&idx)?.verification?;
        Some(vote_entry(idx, a.gender.as_str(), a.age.as_str(), a.has_torn, &at.to_rfc3339()))
    });
    let fixed = vec![("Accepted", office.last_vote().map(with_created_at).into()), ("Verified", verified.into())];
    let last_vote = keyed(fixed, book, &office.vote_lasts, |last| {
        let a = last.value;
        vote_entry(last.idx, a.gender.as_str(), a.age.as_str(), a.has_torn, &last.reported_at.to_rfc3339())
    });
    let mut totals = office.totals.to_json(office.vote_sources);
    totals["total_sources"] = json!(office.vote_sources);
    json!({
        "poll_office_id": poll_office_id,
        "totals": totals,
        "last_vote": last_vote,
        "flags": office.flags_json(),
        "log_seq": office.vote_log_seq,
    })
}

pub(super) fn results(office: &Office, poll_office_id: &str, book: &SourceBook) -> Value {
    // The top-level `index` is the highest counted ballot, decided or not: the reporter
    // app resumes the count after it, so a tied last ballot must not send it back.
    let highest = office.last_counted_ballot();
    let fixed = vec![
        ("Accepted", office.last_paper().map(|(idx, p)| json!({"index": idx, "party_id": p})).into()),
        ("index", highest.map(|(idx, _)| idx).into()),
        ("party_id", highest.and_then(|(_, p)| p).into()),
    ];
    let last_paper =
        keyed(fixed, book, &office.count().ballot_lasts, |last| json!({"index": last.idx, "party_id": last.value}));
    json!({
        "poll_office_id": poll_office_id,
        "last_paper": last_paper,
        "results": office.results(),
        "total_ballots": office.count().total_ballots,
        "undecided_ballots": office.count().undecided_ballots,
        "sources": office.count().ballot_sources,
        "totals": {"total_ballots": office.count().total_ballots, "total_sources": office.count().ballot_sources},
        "log_seq": office.count().ballot_log_seq,
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
    let mut latest_paper: Option<(i64, &str, &Office, u32)> = None;
    for (id, o) in offices {
        totals.add(o.totals, 1);
        covered_votes += (o.totals.votes > 0) as usize;
        covered_ballots += (o.count().total_ballots > 0) as usize;
        outside_directory += !(dir.contains)(id) as usize;
        vote_sources.extend(book.counted(&o.vote_lasts).map(|(n, _)| n));
        ballot_sources.extend(book.counted(&o.count().ballot_lasts).map(|(n, _)| n));
        for (p, n) in &o.count().parties {
            *parties.entry(p.clone()).or_default() += n;
        }
        total_ballots += o.count().total_ballots;
        undecided_ballots += o.count().undecided_ballots;
        if let Some((vote_id, idx)) = o.latest() {
            if latest.is_none_or(|(l, ..)| vote_id > l) {
                latest = Some((vote_id, id, o, idx));
            }
        }
        if let Some((ballot_id, idx)) = o.latest_paper() {
            if latest_paper.is_none_or(|(l, ..)| ballot_id > l) {
                latest_paper = Some((ballot_id, id, o, idx));
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
    let accepted_paper = latest_paper.and_then(|(_, id, o, idx)| {
        let party = o.count().ballots.get(&idx)?.as_ref()?.party.as_deref()?;
        Some(json!({"index": idx, "party_id": party, "poll_office_id": id}))
    });
    let results = json!({
        "last_paper": {"Accepted": accepted_paper},
        "results": results_of(&parties, total_ballots),
        "total_ballots": total_ballots,
        "undecided_ballots": undecided_ballots,
        "covered_poll_offices": covered_ballots,
        "totals": {"total_ballots": total_ballots, "total_sources": ballot_sources.len()},
    });
    (stats, results)
}
