//! The property: after any sequence of proposals, corrections, status changes and
//! verifications, the in-memory aggregates equal a rebuild from the tables, which equals
//! a brute-force recount written here, independently, from section 6 of the spec.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use rusqlite::Connection;
use serde_json::{json, Value};
use ufrecs::domain::flags::{flags, Figures};
use ufrecs::domain::ids::{ElectorId, Index, PartyId, PollOfficeId};
use ufrecs::domain::input::{BallotInput, NewSource, VoteInput};
use ufrecs::domain::source::Status;
use ufrecs::domain::vote::{Age, Gender, VoteAttrs};
use ufrecs::stats::Stats;
use ufrecs::store::ops::{apply, apply_with, Actor, Cache, OpError, SourceUpdate, WriteOp};
use ufrecs::store::{self, reads};

const OFFICES: [&str; 3] = ["PO-A", "PO-B", "PO-C"];
const PARTIES: [&str; 3] = ["PA", "PB", "PC"];
const SOURCES: usize = 4;

#[derive(Clone, Debug)]
enum Step {
    Vote { source: usize, office: usize, index: i64, male: bool, age: usize, torn: bool, batch: bool },
    Ballot { source: usize, office: usize, index: i64, party: usize },
    Status { source: usize, trusted: bool },
    Verify { office: usize, index: i64, voter: u8, male: bool, age: usize, torn: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..SOURCES, 0..OFFICES.len(), 1..6i64, any::<bool>(), 0..3usize, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(source, office, index, male, age, torn, batch)| Step::Vote { source, office, index, male, age, torn, batch }),
        3 => (0..SOURCES, 0..OFFICES.len(), 1..5i64, 0..PARTIES.len())
            .prop_map(|(source, office, index, party)| Step::Ballot { source, office, index, party }),
        1 => (0..SOURCES, any::<bool>()).prop_map(|(source, trusted)| Step::Status { source, trusted }),
        2 => (0..OFFICES.len(), 1..6i64, 0..4u8, any::<bool>(), 0..3usize, any::<bool>())
            .prop_map(|(office, index, voter, male, age, torn)| Step::Verify { office, index, voter, male, age, torn }),
    ]
}

fn attrs(male: bool, age: usize, torn: bool) -> VoteAttrs {
    VoteAttrs { gender: if male { Gender::Male } else { Gender::Female }, age: Age::ALL[age], has_torn: torn }
}

fn elector(source: usize) -> String {
    format!("S-{source}")
}

fn to_op(conn: &Connection, step: &Step) -> Option<WriteOp> {
    Some(match step {
        Step::Vote { source, office, index, male, age, torn, batch } => WriteOp::ProposeVote {
            source_n: *source as i64 + 1,
            poll_office_id: PollOfficeId::parse(OFFICES[*office]).unwrap(),
            input: VoteInput {
                index: Index::new(*index).unwrap(),
                attrs: attrs(*male, *age, *torn),
                observed_at: None,
            },
            batch: *batch,
        },
        Step::Ballot { source, office, index, party } => WriteOp::ProposeBallot {
            source_n: *source as i64 + 1,
            poll_office_id: PollOfficeId::parse(OFFICES[*office]).unwrap(),
            input: BallotInput {
                index: Index::new(*index).unwrap(),
                party_id: PartyId::parse(PARTIES[*party]).unwrap(),
            },
            batch: false,
        },
        Step::Status { source, trusted } => WriteOp::UpdateSource {
            elector_id: ElectorId::parse(&elector(*source)).unwrap(),
            update: SourceUpdate {
                status: Some(if *trusted { Status::Official } else { Status::Unverified }),
                ..SourceUpdate::default()
            },
            actor: Actor::Cli,
        },
        Step::Verify { office, index, voter, male, age, torn } => {
            let vote_id: i64 = conn
                .query_row(
                    "SELECT id FROM votes WHERE poll_office_id = ?1 AND idx = ?2",
                    rusqlite::params![OFFICES[*office], index],
                    |r| r.get(0),
                )
                .ok()?;
            WriteOp::Verify { vote_id, voter_hash: format!("voter-{voter}"), attrs: attrs(*male, *age, *torn) }
        }
    })
}

/// The value with the highest weight, or None on a tie.
fn winner<T: Clone + Ord>(weights: &BTreeMap<T, f64>) -> Option<T> {
    let best = weights.values().cloned().fold(f64::MIN, f64::max);
    let top: Vec<&T> = weights.iter().filter(|(_, w)| **w == best).map(|(v, _)| v).collect();
    (top.len() == 1).then(|| top[0].clone())
}

/// Section 6b, replayed from the log alone: a vote's first report is a passage time when
/// it is not a batch item and comes at least 2 s after the same source's previous vote
/// report (proposal or correction) at that office.
fn passage_times(conn: &Connection) -> HashMap<i64, i64> {
    let entries: Vec<(String, String, String, String, String)> = conn
        .prepare("SELECT kind, actor, poll_office_id, at, detail FROM audit_log WHERE kind IN ('vote_proposed', 'vote_corrected') ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut last_report: HashMap<(String, String), i64> = HashMap::new();
    let mut seen = BTreeSet::new();
    let mut times = HashMap::new();
    for (kind, actor, office, at, detail) in entries {
        let detail: Value = serde_json::from_str(&detail).unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(&at).unwrap().timestamp();
        let vote_id: i64 = detail["vote_id"].as_str().unwrap().parse().unwrap();
        let previous = last_report.insert((actor, office), at);
        let batch = detail["batch"] == json!(true);
        if kind == "vote_proposed" && seen.insert(vote_id) && !batch && previous.is_none_or(|p| at - p >= 2) {
            times.insert(vote_id, at);
        }
    }
    times
}

/// The bodies a report of this kind dates.
fn dates(kind: &str) -> Vec<&'static str> {
    if kind == "ballot" {
        vec!["ballot", "vote"]
    } else {
        vec!["vote"]
    }
}

/// Section 6e's `log_seq`, replayed from the log: per office and kind, the last entry that
/// concerns those numbers (its proposals and verifications, and a status change of a
/// source that reported that kind there before it); ballots date the stats too, whose
/// flags read them.
fn log_seqs(conn: &Connection) -> HashMap<(String, &'static str), i64> {
    let mut out = HashMap::new();
    let mut joined: BTreeSet<(String, String, &'static str)> = BTreeSet::new();
    let mut stmt = conn.prepare("SELECT seq, kind, actor, poll_office_id, detail FROM audit_log ORDER BY seq").unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let (seq, kind, actor, office): (i64, String, String, Option<String>) =
            (r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap(), r.get(3).unwrap());
        let detail: Value = serde_json::from_str(&r.get::<_, String>(4).unwrap()).unwrap();
        let k = if kind.starts_with("ballot_") { "ballot" } else { "vote" };
        match (kind.as_str(), office) {
            ("vote_proposed" | "vote_corrected" | "ballot_proposed" | "ballot_corrected", Some(office)) => {
                joined.insert((actor, office.clone(), k));
                for d in dates(k) {
                    out.insert((office.clone(), d), seq);
                }
            }
            ("vote_verified", Some(office)) => {
                out.insert((office, "vote"), seq);
            }
            ("source_updated", _) if detail.get("status").is_some() => {
                let source = detail["source"].as_str().unwrap();
                for (_, office, k) in joined.iter().filter(|(a, _, _)| a == source) {
                    for d in dates(k) {
                        out.insert((office.clone(), d), seq);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Section 6, recounted from the raw tables.
fn brute_force(conn: &Connection) -> BTreeMap<String, (Value, Value)> {
    let log_seqs = log_seqs(conn);
    let trusted: HashMap<i64, bool> = conn
        .prepare("SELECT n, status FROM sources")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)? != "unverified")))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    type P = (String, u32, i64, String, String, bool, i64);
    let props: Vec<P> = conn
        .prepare("SELECT v.poll_office_id, v.idx, p.source_n, p.gender, p.age, p.has_torn, v.id FROM vote_proposals p JOIN votes v ON v.id = p.vote_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let verifications: HashMap<i64, (String, String, bool)> = conn
        .prepare("SELECT vote_id, gender, age, has_torn FROM vote_verifications")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let first_reported: HashMap<i64, String> = conn
        .prepare("SELECT id, first_reported_at FROM votes")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let passage_times = passage_times(conn);
    let ballots: Vec<(String, u32, i64, String)> = conn
        .prepare("SELECT b.poll_office_id, b.idx, p.source_n, p.party_id FROM ballot_proposals p JOIN ballots b ON b.id = p.ballot_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();

    let offices: BTreeSet<String> =
        props.iter().map(|p| p.0.clone()).chain(ballots.iter().map(|b| b.0.clone())).collect();
    let mut out = BTreeMap::new();
    for office in offices {
        // Votes.
        let here: Vec<&P> = props.iter().filter(|p| p.0 == office).collect();
        let tier = here.iter().any(|p| trusted[&p.2]);
        let counts = |source: i64| !tier || trusted[&source];
        let mut by_index: BTreeMap<u32, Vec<&P>> = BTreeMap::new();
        for p in &here {
            by_index.entry(p.1).or_default().push(p);
        }
        let mut t: BTreeMap<&str, i64> = BTreeMap::new();
        for k in ["votes", "male", "female", "less_30", "less_60", "more_60", "has_torn", "verified", "disputed"] {
            t.insert(k, 0);
        }
        let mut sources = BTreeSet::new();
        let mut last_vote = Value::Null;
        let (mut max_index, mut observed) = (None, Vec::new());
        for (idx, ps) in &by_index {
            let counted: Vec<&&P> = ps.iter().filter(|p| counts(p.2)).collect();
            if counted.is_empty() {
                continue;
            }
            let vote_id = counted[0].6;
            let verification = verifications.get(&vote_id);
            let mut g: BTreeMap<String, f64> = BTreeMap::new();
            let mut a: BTreeMap<String, f64> = BTreeMap::new();
            let mut h: BTreeMap<bool, f64> = BTreeMap::new();
            for p in &counted {
                sources.insert(p.2);
                *g.entry(p.3.clone()).or_default() += 1.0;
                *a.entry(p.4.clone()).or_default() += 1.0;
                *h.entry(p.5).or_default() += 1.0;
            }
            if let Some((vg, va, vt)) = verification {
                *g.entry(vg.clone()).or_default() += 0.5;
                *a.entry(va.clone()).or_default() += 0.5;
                *h.entry(*vt).or_default() += 0.5;
            }
            let gender = winner(&g).unwrap_or_else(|| "undecided".into());
            let age = winner(&a).unwrap_or_else(|| "undecided".into());
            let torn = winner(&h).unwrap_or(false);
            let unanimous = counted.iter().all(|p| (&p.3, &p.4, p.5) == (&counted[0].3, &counted[0].4, counted[0].5));
            let differs = verification.is_some_and(|(vg, va, vt)| *vg != gender || *va != age || *vt != torn);
            *t.get_mut("votes").unwrap() += 1;
            if let Some(n) = t.get_mut(gender.as_str()) {
                *n += 1;
            }
            if let Some(n) = t.get_mut(age.as_str()) {
                *n += 1;
            }
            *t.get_mut("has_torn").unwrap() += torn as i64;
            *t.get_mut("verified").unwrap() += verification.is_some() as i64;
            *t.get_mut("disputed").unwrap() += (!unanimous || differs) as i64;
            last_vote = json!({"index": idx, "gender": gender, "age": age, "has_torn": torn, "timestamp": first_reported[&vote_id]});
            max_index = Some(*idx);
            // No observed_at in these steps: observed when first reported, if timed.
            if let Some(t) = passage_times.get(&vote_id) {
                observed.push(*t);
            }
        }
        let mut totals = json!(t);
        totals["sources"] = json!(sources.len());
        let mut stats = json!({"poll_office_id": office, "totals": totals, "last_vote": last_vote,
                               "log_seq": log_seqs.get(&(office.clone(), "vote")).copied().unwrap_or(0)});

        // Ballots.
        let here: Vec<_> = ballots.iter().filter(|b| b.0 == office).collect();
        let tier = here.iter().any(|b| trusted[&b.2]);
        let counts = |source: i64| !tier || trusted[&source];
        let mut by_index: BTreeMap<u32, BTreeMap<String, f64>> = BTreeMap::new();
        let mut sources = BTreeSet::new();
        for b in here.iter().filter(|b| counts(b.2)) {
            sources.insert(b.2);
            *by_index.entry(b.1).or_default().entry(b.3.clone()).or_default() += 1.0;
        }
        let mut parties: BTreeMap<String, i64> = BTreeMap::new();
        let mut undecided = 0;
        let mut last_paper = Value::Null;
        for (idx, weights) in &by_index {
            match winner(weights) {
                Some(p) => {
                    *parties.entry(p.clone()).or_default() += 1;
                    last_paper = json!({"index": idx, "party_id": p});
                }
                None => undecided += 1,
            }
        }
        let total = by_index.len() as i64;
        let mut results: Vec<(String, i64)> = parties.into_iter().collect();
        results.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let results: Vec<Value> = results
            .into_iter()
            .map(|(p, n)| json!({"party_id": p, "ballots": n, "share": n as f64 / total as f64}))
            .collect();
        let res = json!({"poll_office_id": office, "last_paper": last_paper, "results": results, "total_ballots": total,
                         "undecided_ballots": undecided, "sources": sources.len(),
                         "log_seq": log_seqs.get(&(office.clone(), "ballot")).copied().unwrap_or(0)});
        // Flags (section 6b) from the recounted figures; the thresholds have unit tests.
        observed.sort();
        let figures = Figures {
            votes: stats["totals"]["votes"].as_i64().unwrap(),
            disputed: stats["totals"]["disputed"].as_i64().unwrap(),
            max_index,
            ballots: total,
            registered: None,
            fast: observed.windows(11).any(|w| w[10] - w[0] < 60),
        };
        stats["flags"] = flags(&figures).iter().map(|f| f.to_json()).collect();
        out.insert(office, (stats, res));
    }
    out
}

fn run(steps: &[Step]) {
    let conn = store::open_in_memory().unwrap();
    let now = chrono::Utc::now();
    let live = Stats::new();
    for s in 0..SOURCES {
        let source = NewSource {
            elector_id: ElectorId::parse(&elector(s)).unwrap(),
            status: if s == 0 { Status::Official } else { Status::Unverified },
            full_name: None,
            official_org: None,
            email: None,
            phone_number: None,
            password: None,
        };
        let mut effects = Vec::new();
        apply(&conn, &WriteOp::CreateSource { source, password_hash: None, actor: Actor::Cli }, now, &mut effects)
            .unwrap();
        live.apply(&effects);
    }
    // What the writer remembers across its commits (the audit head, the tiers), kept
    // and forgotten here as the writer does: the property covers it too.
    let mut cache = Cache::default();
    for (i, step) in steps.iter().enumerate() {
        // Reports 0 to 3 s apart: some are passage times (section 6b), some are not.
        let now = now + chrono::Duration::seconds(i as i64 * 3 / 4);
        let Some(op) = to_op(&conn, step) else {
            continue;
        };
        let tx = conn.unchecked_transaction().unwrap();
        cache.begin(&tx).unwrap();
        let mut effects = Vec::new();
        match apply_with(&tx, &op, now, &mut effects, &mut cache) {
            Ok(_) => {
                tx.commit().unwrap();
                live.apply(&effects);
            }
            Err(OpError::AlreadyVerified) => {
                cache.forget();
                drop(tx)
            }
            Err(e) => panic!("{step:?}: {e}"),
        }
    }
    let rebuilt = Stats::new();
    reads::all_effects(&conn, &mut |chunk| rebuilt.apply(chunk)).unwrap();
    let last = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM audit_log", [], |r| r.get::<_, i64>(0)).unwrap();
    rebuilt.apply(&ufrecs::transparency::rebuild(&conn, last as u64, &mut |_| Ok(())).unwrap().office_effects());
    let live = live.snapshot();
    // Every body, the compatibility forms included.
    assert_eq!(live, rebuilt.snapshot(), "memory differs from a rebuild from the tables");
    let seed_forms: BTreeMap<String, (Value, Value)> =
        live.into_iter().map(|(office, bodies)| (office, (bodies[0].clone(), bodies[1].clone()))).collect();
    assert_eq!(seed_forms, brute_force(&conn), "the tables differ from a recount by the rules");
    assert_eq!(reads::audit_first_break(&conn).unwrap(), None);
    let timed: BTreeSet<i64> = conn
        .prepare("SELECT id FROM votes WHERE timed")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let replayed: BTreeSet<i64> = passage_times(&conn).into_keys().collect();
    assert_eq!(timed, replayed, "votes.timed differs from the log's replay of section 6b");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn aggregates_equal_a_rebuild_and_a_brute_force_recount(steps in proptest::collection::vec(step(), 1..120)) {
        run(&steps);
    }
}

#[test]
fn a_fixed_busy_sequence_holds_too() {
    let mut steps = Vec::new();
    for i in 0..300i64 {
        let k = i as usize;
        steps.push(match k % 7 {
            0..=3 => Step::Vote {
                source: k % SOURCES,
                office: k % 3,
                index: i % 9 + 1,
                male: k % 3 == 0,
                age: k % 3,
                torn: k % 5 == 0,
                batch: k % 13 == 0,
            },
            4 => Step::Ballot { source: k % SOURCES, office: k % 3, index: i % 6 + 1, party: k % 3 },
            5 => Step::Verify {
                office: k % 3,
                index: i % 9 + 1,
                voter: (k % 11) as u8,
                male: k % 2 == 0,
                age: k % 3,
                torn: false,
            },
            _ => Step::Status { source: (k / 7) % SOURCES, trusted: k % 2 == 0 },
        });
    }
    run(&steps);
}
