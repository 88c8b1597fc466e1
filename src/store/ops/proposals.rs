//! Vote and ballot proposals, voters' verifications, and the recomputation of accepted
//! values with the office's trust tier (spec section 6), in the write's transaction.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::*;
use crate::domain::{crosscheck, flags};

/// Whether the office is trusted for this kind, and how many sources count there: one
/// row of `office_tiers`, whatever the number of sources.
pub(super) fn office_tier(conn: &Connection, office: &PollOfficeId, kind: Kind) -> rusqlite::Result<(bool, u32)> {
    let (all, trusted) = tier_counts(conn, office, kind)?;
    Ok((trusted > 0, crosscheck::counted_sources(trusted, all)))
}

/// `(sources, trusted)` of the office's row of `office_tiers`.
fn tier_counts(conn: &Connection, office: &PollOfficeId, kind: Kind) -> rusqlite::Result<(u32, u32)> {
    Ok(conn
        .prepare_cached("SELECT sources, trusted FROM office_tiers WHERE poll_office_id = ?1 AND kind = ?2")?
        .query_row(params![office, kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

/// `office_tier` through what the writer remembers.
fn tier(tx: &mut Tx, office: &PollOfficeId, kind: Kind) -> rusqlite::Result<(bool, u32)> {
    let (all, trusted) = match tx.cache.tier(office, kind) {
        Some(known) => known,
        None => {
            let read = tier_counts(tx.conn, office, kind)?;
            tx.cache.keep_tier(office, kind, read);
            read
        }
    };
    Ok((trusted > 0, crosscheck::counted_sources(trusted, all)))
}

/// Records that a source reports this kind at this office now (a logged proposal or
/// correction): joins it once, with its tier counts, and returns when it last reported
/// this kind here before (`None` the first time, or before schema version 3).
fn report_at_office(tx: &mut Tx, office: &PollOfficeId, kind: Kind, source_n: i64) -> rusqlite::Result<Option<String>> {
    let (conn, now_s) = (tx.conn, tx.now_s);
    let before: Option<Option<String>> = conn
        .prepare_cached("SELECT last_at FROM office_sources WHERE poll_office_id = ?1 AND kind = ?2 AND source_n = ?3")?
        .query_row(params![office, kind.as_str(), source_n], |r| r.get(0))
        .optional()?;
    if let Some(last) = before {
        conn.prepare_cached(
            "UPDATE office_sources SET last_at = ?4 WHERE poll_office_id = ?1 AND kind = ?2 AND source_n = ?3",
        )?
        .execute(params![office, kind.as_str(), source_n, now_s])?;
        return Ok(last);
    }
    conn.prepare_cached(
        "INSERT INTO office_sources (poll_office_id, kind, source_n, first_at, last_at) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![office, kind.as_str(), source_n, now_s])?;
    static JOIN_TIER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO office_tiers (poll_office_id, kind, sources, trusted)
             SELECT ?1, ?2, 1, {} FROM sources WHERE n = ?3
             ON CONFLICT (poll_office_id, kind) DO UPDATE SET
               sources = sources + 1, trusted = trusted + excluded.trusted",
            super::trusted_sql("status")
        )
    });
    conn.prepare_cached(&JOIN_TIER)?.execute(params![office, kind.as_str(), source_n])?;
    tx.cache.forget_tier(office, kind);
    Ok(None)
}

/// A report's log detail, with `batch: true` when it was a batch item: the log alone then
/// tells which reports are passage times (section 6b).
fn with_batch(mut detail: serde_json::Value, batch: bool) -> serde_json::Value {
    if batch {
        detail["batch"] = json!(true);
    }
    detail
}

pub(super) fn propose_vote(
    tx: &mut Tx,
    source_n: i64,
    office: &PollOfficeId,
    input: &VoteInput,
    batch: bool,
) -> Result<Outcome, OpError> {
    let (conn, now, now_s) = (tx.conn, tx.now, tx.now_s);
    let idx = input.index.get();
    // The vote's id, and this source's proposal for it if any.
    type Existing = (i64, Option<(String, String, bool, Timestamp, Option<i64>)>);
    let existing: Option<Existing> = conn
        .prepare_cached(
            "SELECT v.id, p.gender, p.age, p.has_torn, p.created_at, p.log_seq FROM votes v
               LEFT JOIN vote_proposals p ON p.vote_id = v.id AND p.source_n = ?3
              WHERE v.poll_office_id = ?1 AND v.idx = ?2",
        )?
        .query_row(params![office, idx, source_n], |r| {
            let gender: Option<String> = r.get(1)?;
            Ok((
                r.get(0)?,
                match gender {
                    Some(g) => Some((g, r.get(2)?, r.get(3)?, crate::store::columns::timestamp(r, 4)?, r.get(5)?)),
                    None => None,
                },
            ))
        })
        .optional()?;
    let new = input.attrs;
    // A resend returns before anything else is read.
    if let Some((id, Some((g, a, t, _, log_seq)))) = &existing {
        if vote_attrs_from(g, a, *t)? == new {
            return resent(conn, *id, *log_seq);
        }
    }
    let (trusted_before, _) = tier(tx, office, Kind::Vote)?;
    let mut fresh = None;
    let (vote_id, created, reported_at, receipt) = match existing {
        Some((id, Some((g, a, t, reported_at, _)))) => {
            let old = vote_attrs_from(&g, &a, t)?;
            report_at_office(tx, office, Kind::Vote, source_n)?;
            let receipt = append_audit(
                conn,
                &mut tx.cache.head,
                tx.effects,
                now_s,
                "vote_corrected",
                &source::actor(source_n),
                Some(office.as_str()),
                with_batch(
                    json!({"vote_id": id.to_string(), "index": idx, "old": old.to_json(), "new": new.to_json()}),
                    batch,
                ),
            )?;
            conn.prepare_cached(
                "UPDATE vote_proposals SET gender = ?1, age = ?2, has_torn = ?3, updated_at = ?4, log_seq = ?7 WHERE vote_id = ?5 AND source_n = ?6",
            )?
            .execute(params![new.gender.as_str(), new.age.as_str(), new.has_torn, now_s, id, source_n, receipt.seq])?;
            (id, false, reported_at, receipt)
        }
        found => {
            let observed_at = match input.observed_at {
                Some(t) if !time::observed_at_acceptable(t, now) => {
                    return Err(bad(
                        "observed_at",
                        "must be at most 5 minutes ahead of and 24 hours behind the server's clock",
                    ))
                }
                t => t.map(time::format),
            };
            let previous = report_at_office(tx, office, Kind::Vote, source_n)?;
            let id = match found {
                Some((id, None)) => id,
                _ => {
                    let timed = flags::timed_report(batch, previous.as_deref(), now_s);
                    conn.prepare_cached(
                        "INSERT INTO votes (poll_office_id, idx, first_reported_at, live, timed) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![office, idx, now_s, !batch, timed])?;
                    let id = conn.last_insert_rowid();
                    fresh = Some(FreshVote {
                        row: VoteRow {
                            id,
                            poll_office_id: office.clone(),
                            idx,
                            first_reported_at: time::to_second(now),
                            live: !batch,
                            timed,
                            decision: None,
                            verification: None,
                            observed_at: None,
                        },
                        observed_at: observed_at.clone(),
                    });
                    id
                }
            };
            let mut detail = json!({"vote_id": id.to_string(), "index": idx, "new": new.to_json()});
            if let Some(o) = &observed_at {
                detail["observed_at"] = json!(o);
            }
            let receipt = append_audit(
                conn,
                &mut tx.cache.head,
                tx.effects,
                now_s,
                "vote_proposed",
                &source::actor(source_n),
                Some(office.as_str()),
                with_batch(detail, batch),
            )?;
            conn.prepare_cached(
                "INSERT INTO vote_proposals (vote_id, source_n, poll_office_id, idx, gender, age, has_torn, observed_at, batch, created_at, updated_at, log_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
            )?
            .execute(params![
                id,
                source_n,
                office,
                idx,
                new.gender.as_str(),
                new.age.as_str(),
                new.has_torn,
                observed_at,
                batch,
                now_s,
                receipt.seq
            ])?;
            (id, true, time::to_second(now), receipt)
        }
    };
    dated(office, Kind::Vote, receipt.seq, tx.effects);
    tx.effects.push(Effect::Proposal(ProposalRow {
        poll_office_id: office.clone(),
        source_n,
        idx,
        reported_at,
        value: Proposed::Vote(new),
    }));
    let new_row = fresh.map(|f| Fresh::Vote(f, new));
    settle(tx, office, Kind::Vote, trusted_before, created, vote_id, new_row, source_n)?;
    Ok(Outcome::Proposed { created, id: vote_id, receipt: Some(receipt) })
}

pub(super) fn propose_ballot(
    tx: &mut Tx,
    source_n: i64,
    office: &PollOfficeId,
    input: &BallotInput,
    batch: bool,
) -> Result<Outcome, OpError> {
    let (conn, now, now_s) = (tx.conn, tx.now, tx.now_s);
    let idx = input.index.get();
    let party = input.party_id.as_str();
    type Existing = (i64, Option<(String, Timestamp, Option<i64>)>);
    let existing: Option<Existing> = conn
        .prepare_cached(
            "SELECT b.id, p.party_id, p.created_at, p.log_seq FROM ballots b
               LEFT JOIN ballot_proposals p ON p.ballot_id = b.id AND p.source_n = ?3
              WHERE b.poll_office_id = ?1 AND b.idx = ?2",
        )?
        .query_row(params![office, idx, source_n], |r| {
            let party: Option<String> = r.get(1)?;
            let proposal = match party {
                Some(p) => Some((p, crate::store::columns::timestamp(r, 2)?, r.get(3)?)),
                None => None,
            };
            Ok((r.get(0)?, proposal))
        })
        .optional()?;
    if let Some((id, Some((old, _, log_seq)))) = &existing {
        if old == party {
            return resent(conn, *id, *log_seq);
        }
    }
    let (trusted_before, _) = tier(tx, office, Kind::Ballot)?;
    let mut fresh = None;
    let (ballot_id, created, reported_at, receipt) = match existing {
        Some((id, Some((old, reported_at, _)))) => {
            report_at_office(tx, office, Kind::Ballot, source_n)?;
            let receipt = append_audit(
                conn,
                &mut tx.cache.head,
                tx.effects,
                now_s,
                "ballot_corrected",
                &source::actor(source_n),
                Some(office.as_str()),
                with_batch(json!({"index": idx, "old": {"party_id": old}, "new": {"party_id": party}}), batch),
            )?;
            conn.prepare_cached(
                "UPDATE ballot_proposals SET party_id = ?1, updated_at = ?2, log_seq = ?5 WHERE ballot_id = ?3 AND source_n = ?4",
            )?
            .execute(params![party, now_s, id, source_n, receipt.seq])?;
            (id, false, reported_at, receipt)
        }
        found => {
            let id = match found {
                Some((id, None)) => id,
                _ => {
                    conn.prepare_cached(
                        "INSERT INTO ballots (poll_office_id, idx, first_reported_at) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![office, idx, now_s])?;
                    let id = conn.last_insert_rowid();
                    fresh = Some(BallotRow { id, poll_office_id: office.clone(), idx, decision: None });
                    id
                }
            };
            report_at_office(tx, office, Kind::Ballot, source_n)?;
            let receipt = append_audit(
                conn,
                &mut tx.cache.head,
                tx.effects,
                now_s,
                "ballot_proposed",
                &source::actor(source_n),
                Some(office.as_str()),
                with_batch(json!({"index": idx, "new": {"party_id": party}}), batch),
            )?;
            conn.prepare_cached(
                "INSERT INTO ballot_proposals (ballot_id, source_n, poll_office_id, idx, party_id, created_at, updated_at, log_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            )?
            .execute(params![id, source_n, office, idx, party, now_s, receipt.seq])?;
            (id, true, time::to_second(now), receipt)
        }
    };
    dated(office, Kind::Ballot, receipt.seq, tx.effects);
    tx.effects.push(Effect::Proposal(ProposalRow {
        poll_office_id: office.clone(),
        source_n,
        idx,
        reported_at,
        value: Proposed::Ballot(input.party_id.clone()),
    }));
    let new_row = fresh.map(|row| Fresh::Ballot(row, input.party_id.as_str().to_owned()));
    settle(tx, office, Kind::Ballot, trusted_before, created, ballot_id, new_row, source_n)?;
    Ok(Outcome::Proposed { created, id: ballot_id, receipt: Some(receipt) })
}

/// A resend that changes nothing: the receipt of the entry that recorded the value it
/// confirms (none for a proposal stored before schema version 4 that the log lacks).
fn resent(conn: &Connection, id: i64, log_seq: Option<i64>) -> Result<Outcome, OpError> {
    let receipt = log_seq.map(|seq| super::audit::receipt_of(conn, seq)).transpose()?;
    Ok(Outcome::Proposed { created: false, id, receipt })
}

/// A vote or ballot row this proposal just created, with the proposal (its only one):
/// deciding it needs nothing read back.
enum Fresh {
    Vote(FreshVote, VoteAttrs),
    Ballot(BallotRow, String),
}

struct FreshVote {
    row: VoteRow,
    observed_at: Option<String>,
}

/// After a proposal: a source new to the office may change its tier (then the whole
/// office is re-weighed) and its count of sources; otherwise only this vote or ballot
/// changes.
#[allow(clippy::too_many_arguments)]
fn settle(
    tx: &mut Tx,
    office: &PollOfficeId,
    kind: Kind,
    trusted_before: bool,
    new_proposal: bool,
    id: i64,
    fresh: Option<Fresh>,
    source_n: i64,
) -> rusqlite::Result<()> {
    let mut trusted = trusted_before;
    if new_proposal {
        let (trusted_after, counted) = tier(tx, office, kind)?;
        tx.effects.push(Effect::OfficeSources { poll_office_id: office.clone(), kind, counted });
        if trusted_after != trusted_before {
            recompute_office(tx.conn, office, kind, tx.effects)?;
            return Ok(());
        }
        trusted = trusted_after;
    }
    let conn = tx.conn;
    // Whether the proposing source counts: asked only where the office has a trusted one.
    let source_counts = || -> rusqlite::Result<bool> {
        if !trusted {
            return Ok(true);
        }
        let status: String =
            conn.prepare_cached("SELECT status FROM sources WHERE n = ?1")?.query_row([source_n], |r| r.get(0))?;
        Ok(parse_status(&status)?.is_trusted())
    };
    let effect = match fresh {
        Some(Fresh::Vote(f, attrs)) => {
            let proposal = (attrs, f.observed_at, source_counts()?);
            let stored = StoredVote { row: f.row, stored: (None, None, None, false, None) };
            Effect::Vote(settle_vote(conn, stored, &[proposal], trusted)?)
        }
        Some(Fresh::Ballot(row, party)) => {
            let proposal = (party, source_counts()?);
            Effect::Ballot(settle_ballot(conn, (row, (false, None, false)), &[proposal], trusted)?)
        }
        None => match kind {
            Kind::Vote => Effect::Vote(recompute_vote(conn, id, trusted)?),
            Kind::Ballot => Effect::Ballot(recompute_ballot(conn, id, trusted)?),
        },
    };
    tx.effects.push(effect);
    Ok(())
}

pub(super) fn verify(tx: &mut Tx, vote_id: i64, voter_hash: &str, attrs: VoteAttrs) -> Result<Outcome, OpError> {
    let (conn, now_s) = (tx.conn, tx.now_s);
    let vote: Option<(PollOfficeId, u32)> = conn
        .prepare_cached("SELECT poll_office_id, idx FROM votes WHERE id = ?1")?
        .query_row([vote_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (office, idx) = vote.ok_or(OpError::NoSuchVote)?;
    let taken: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM vote_verifications WHERE vote_id = ?1 OR voter_hash = ?2)")?
        .query_row(params![vote_id, voter_hash], |r| r.get(0))?;
    if taken {
        return Err(OpError::AlreadyVerified);
    }
    conn.prepare_cached(
        "INSERT INTO vote_verifications (vote_id, voter_hash, gender, age, has_torn, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![vote_id, voter_hash, attrs.gender.as_str(), attrs.age.as_str(), attrs.has_torn, now_s])?;
    let mut detail = attrs.to_json();
    detail["vote_id"] = json!(vote_id.to_string());
    detail["index"] = json!(idx);
    detail["voter"] = json!(voter_hash);
    let receipt = append_audit(
        conn,
        &mut tx.cache.head,
        tx.effects,
        now_s,
        "vote_verified",
        "voter",
        Some(office.as_str()),
        detail,
    )?;
    dated(&office, Kind::Vote, receipt.seq, tx.effects);
    let (trusted, _) = tier(tx, &office, Kind::Vote)?;
    tx.effects.push(Effect::Vote(recompute_vote(conn, vote_id, trusted)?));
    Ok(Outcome::Verified { vote_id, receipt })
}

/// The columns of a vote as stored, read by `stored_vote` (one vote or a whole office).
const VOTE_COLUMNS: &str = "v.id, v.poll_office_id, v.idx, v.first_reported_at, v.live, v.gender, v.age, v.has_torn,
    v.disputed, v.observed_at, vv.gender, vv.age, vv.has_torn, vv.created_at, v.timed
    FROM votes v LEFT JOIN vote_verifications vv ON vv.vote_id = v.id";

/// What a vote row holds of its accepted values: (gender, age, has_torn, disputed,
/// observed_at), compared before writing so an unchanged vote is not rewritten.
type StoredDecision = (Option<String>, Option<String>, Option<bool>, bool, Option<String>);

struct StoredVote {
    row: VoteRow,
    stored: StoredDecision,
}

fn stored_vote(r: &rusqlite::Row) -> rusqlite::Result<StoredVote> {
    let verification = verification_from(r, 10)?;
    Ok(StoredVote {
        row: VoteRow {
            id: r.get(0)?,
            poll_office_id: r.get(1)?,
            idx: r.get(2)?,
            first_reported_at: crate::store::columns::timestamp(r, 3)?,
            live: r.get(4)?,
            timed: r.get(14)?,
            decision: None,
            verification,
            observed_at: None,
        },
        stored: (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?),
    })
}

/// One vote proposal as cross-checking needs it: (attributes, observed_at, trusted source).
type VoteProposal = (VoteAttrs, Option<String>, bool);

fn vote_proposal(r: &rusqlite::Row) -> rusqlite::Result<VoteProposal> {
    Ok((
        vote_attrs_from(&r.get::<_, String>(0)?, &r.get::<_, String>(1)?, r.get(2)?)?,
        r.get(3)?,
        parse_status(&r.get::<_, String>(4)?)?.is_trusted(),
    ))
}

/// Decides a vote from its proposals (section 6) and stores the decision if it changed.
fn settle_vote(
    conn: &Connection,
    vote: StoredVote,
    proposals: &[VoteProposal],
    office_trusted: bool,
) -> rusqlite::Result<VoteRow> {
    let mut counted = Vec::with_capacity(proposals.len());
    let mut observed_at: Option<&String> = None;
    for (attrs, observed, trusted) in proposals {
        if !crosscheck::counts(office_trusted, *trusted) {
            continue;
        }
        counted.push(*attrs);
        if let Some(o) = observed {
            if observed_at.is_none_or(|cur| o < cur) {
                observed_at = Some(o);
            }
        }
    }
    let StoredVote { mut row, stored } = vote;
    let decision = crosscheck::decide_vote(&counted, row.verification.as_ref().map(|v| v.attrs));
    let new: StoredDecision = (
        decision.map(|d| d.accepted.gender.as_str().to_owned()),
        decision.map(|d| d.accepted.age.as_str().to_owned()),
        decision.map(|d| d.accepted.has_torn),
        decision.is_some_and(|d| d.disputed),
        observed_at.cloned(),
    );
    if new != stored {
        conn.prepare_cached(
            "UPDATE votes SET counted = ?1, gender = ?2, age = ?3, has_torn = ?4, disputed = ?5, observed_at = ?6 WHERE id = ?7",
        )?
        .execute(params![decision.is_some(), new.0, new.1, new.2, new.3, new.4, row.id])?;
    }
    row.decision = decision;
    row.observed_at = new.4.as_deref().and_then(time::parse);
    Ok(row)
}

/// A vote proposal's columns as `vote_proposal` reads them, then its index (column 5).
const VOTE_PROPOSAL_COLUMNS: &str = "p.gender, p.age, p.has_torn, p.observed_at, s.status, p.idx
    FROM vote_proposals p JOIN sources s ON s.n = p.source_n";

/// Recomputes a vote's accepted values from its proposals and verification, stores them
/// and returns the vote's new state.
pub fn recompute_vote(conn: &Connection, vote_id: i64, office_trusted: bool) -> rusqlite::Result<VoteRow> {
    let vote =
        conn.prepare_cached(&format!("SELECT {VOTE_COLUMNS} WHERE v.id = ?1"))?.query_row([vote_id], stored_vote)?;
    let proposals: Vec<VoteProposal> = conn
        .prepare_cached(&format!("SELECT {VOTE_PROPOSAL_COLUMNS} WHERE p.vote_id = ?1"))?
        .query_map([vote_id], vote_proposal)?
        .collect::<rusqlite::Result<_>>()?;
    settle_vote(conn, vote, &proposals, office_trusted)
}

/// Decides a ballot from its proposals (`(party, trusted source)`) and stores it if it
/// changed.
fn settle_ballot(
    conn: &Connection,
    (mut row, stored): StoredBallot,
    proposals: &[(String, bool)],
    office_trusted: bool,
) -> rusqlite::Result<BallotRow> {
    let refs: Vec<&str> = proposals
        .iter()
        .filter(|(_, trusted)| crosscheck::counts(office_trusted, *trusted))
        .map(|(p, _)| p.as_str())
        .collect();
    let decision = crosscheck::decide_ballot(&refs);
    let new = (
        decision.is_some(),
        decision.as_ref().and_then(|d| d.party.clone()),
        decision.as_ref().is_some_and(|d| d.disputed),
    );
    if new != stored {
        conn.prepare_cached("UPDATE ballots SET counted = ?1, party_id = ?2, disputed = ?3 WHERE id = ?4")?
            .execute(params![new.0, new.1, new.2, row.id])?;
    }
    row.decision = decision;
    Ok(row)
}

const BALLOT_COLUMNS: &str = "id, poll_office_id, idx, counted, party_id, disputed FROM ballots";

/// A ballot row and what it holds of its decision: (counted, party_id, disputed).
type StoredBallot = (BallotRow, (bool, Option<String>, bool));

fn stored_ballot(r: &rusqlite::Row) -> rusqlite::Result<StoredBallot> {
    Ok((
        BallotRow { id: r.get(0)?, poll_office_id: r.get(1)?, idx: r.get(2)?, decision: None },
        (r.get(3)?, r.get(4)?, r.get(5)?),
    ))
}

/// A ballot proposal's columns as `ballot_proposal` reads them, then its index (column 2).
const BALLOT_PROPOSAL_COLUMNS: &str =
    "p.party_id, s.status, p.idx FROM ballot_proposals p JOIN sources s ON s.n = p.source_n";

fn ballot_proposal(r: &rusqlite::Row) -> rusqlite::Result<(String, bool)> {
    Ok((r.get(0)?, parse_status(&r.get::<_, String>(1)?)?.is_trusted()))
}

/// Recomputes a ballot's accepted party from its proposals, stores it and returns it.
pub fn recompute_ballot(conn: &Connection, ballot_id: i64, office_trusted: bool) -> rusqlite::Result<BallotRow> {
    let ballot = conn
        .prepare_cached(&format!("SELECT {BALLOT_COLUMNS} WHERE id = ?1"))?
        .query_row([ballot_id], stored_ballot)?;
    let proposals: Vec<(String, bool)> = conn
        .prepare_cached(&format!("SELECT {BALLOT_PROPOSAL_COLUMNS} WHERE p.ballot_id = ?1"))?
        .query_map([ballot_id], ballot_proposal)?
        .collect::<rusqlite::Result<_>>()?;
    settle_ballot(conn, ballot, &proposals, office_trusted)
}

/// Re-weighs every vote or ballot of an office (its tier changed) in two ordered scans,
/// one of its rows and one of its proposals, merged by index: the cost is the office's
/// rows and proposals read once, never a query per vote.
pub fn recompute_office(
    conn: &Connection,
    office: &PollOfficeId,
    kind: Kind,
    effects: &mut Vec<Effect>,
) -> rusqlite::Result<u32> {
    let (trusted, counted) = office_tier(conn, office, kind)?;
    match kind {
        Kind::Vote => {
            let votes: Vec<StoredVote> = conn
                .prepare_cached(&format!("SELECT {VOTE_COLUMNS} WHERE v.poll_office_id = ?1 ORDER BY v.idx"))?
                .query_map([office], stored_vote)?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {VOTE_PROPOSAL_COLUMNS} WHERE p.poll_office_id = ?1 ORDER BY p.idx"
            ))?;
            let read = |r: &rusqlite::Row| Ok((r.get::<_, u32>(5)?, vote_proposal(r)?));
            merge_by_index(
                votes,
                |v| v.row.idx,
                &mut stmt.query([office])?,
                read,
                |vote, proposals| {
                    effects.push(Effect::Vote(settle_vote(conn, vote, proposals, trusted)?));
                    Ok(())
                },
            )?;
        }
        Kind::Ballot => {
            let ballots: Vec<StoredBallot> = conn
                .prepare_cached(&format!("SELECT {BALLOT_COLUMNS} WHERE poll_office_id = ?1 ORDER BY idx"))?
                .query_map([office], stored_ballot)?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {BALLOT_PROPOSAL_COLUMNS} WHERE p.poll_office_id = ?1 ORDER BY p.idx"
            ))?;
            let read = |r: &rusqlite::Row| Ok((r.get::<_, u32>(2)?, ballot_proposal(r)?));
            merge_by_index(
                ballots,
                |b| b.0.idx,
                &mut stmt.query([office])?,
                read,
                |ballot, proposals| {
                    effects.push(Effect::Ballot(settle_ballot(conn, ballot, proposals, trusted)?));
                    Ok(())
                },
            )?;
        }
    }
    Ok(counted)
}

/// Walks an office's rows (ordered by index) beside its proposals (ordered by index, read
/// by `read` as `(index, proposal)`), handing each row the proposals of its index: one
/// pass over each, whatever the number of sources.
fn merge_by_index<R, P>(
    rows: Vec<R>,
    index: impl Fn(&R) -> u32,
    proposals: &mut rusqlite::Rows,
    read: impl Fn(&rusqlite::Row) -> rusqlite::Result<(u32, P)>,
    mut each: impl FnMut(R, &[P]) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut next = proposals.next()?.map(&read).transpose()?;
    let mut of_row = Vec::new();
    for row in rows {
        of_row.clear();
        while let Some((idx, p)) = next.take() {
            if idx > index(&row) {
                next = Some((idx, p));
                break;
            }
            if idx == index(&row) {
                of_row.push(p);
            }
            next = proposals.next()?.map(&read).transpose()?;
        }
        each(row, &of_row)?;
    }
    Ok(())
}
