//! Write operations as data, and `apply`, the one function that performs them inside a
//! transaction. Every operation that changes what is accepted recomputes it at once, in
//! the same transaction (section 6), appends its audit entry to the chain, and reports the
//! rows it touched as `Effect`s, which the in-memory aggregates take in after the commit.
//! `apply` is used by the server's writer thread and by the CLI alike.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::domain::audit::{self, Entry};
use crate::domain::crosscheck::{self, BallotDecision, VoteDecision};
use crate::domain::ids::{ElectorId, PollOfficeId};
use crate::domain::input::{BallotInput, FieldErrors, NewSource, VoteInput};
use crate::domain::source::{self, Status};
use crate::domain::time::{self, Timestamp};
use crate::domain::vote::{Age, Gender, VoteAttrs};
use crate::import::{OfficeRow, PartyRow};

/// Who performs an administrative operation, as named in the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    Admin,
    Cli,
}

impl Actor {
    fn as_str(self) -> &'static str {
        match self {
            Actor::Admin => "admin",
            Actor::Cli => "cli",
        }
    }
}

#[derive(Clone, Debug)]
pub enum WriteOp {
    /// A successful authentication (the password, if any, was checked by the caller).
    Authenticate(AuthOp),
    /// A failed authentication of a known source, for the audit log.
    AuthFailed {
        source_n: i64,
        poll_office_id: PollOfficeId,
        reason: &'static str,
    },
    ProposeVote {
        source_n: i64,
        poll_office_id: PollOfficeId,
        input: VoteInput,
        batch: bool,
    },
    ProposeBallot {
        source_n: i64,
        poll_office_id: PollOfficeId,
        input: BallotInput,
    },
    /// A voter's verification, keyed by the HMAC of their `elector_id`.
    Verify {
        vote_id: i64,
        voter_hash: String,
        attrs: VoteAttrs,
    },
    CreateSource {
        source: NewSource,
        password_hash: Option<String>,
        actor: Actor,
    },
    UpdateSource {
        elector_id: ElectorId,
        update: SourceUpdate,
        actor: Actor,
    },
    ImportPollOffices {
        rows: Vec<OfficeRow>,
        actor: Actor,
    },
    ImportParties {
        rows: Vec<PartyRow>,
        actor: Actor,
    },
}

#[derive(Clone, Debug)]
pub struct AuthOp {
    pub elector_id: ElectorId,
    pub poll_office_id: PollOfficeId,
    pub token_hash: String,
    pub expires_at: Timestamp,
    /// The password hash the caller checked the password against (`None`: the source
    /// had none, or did not exist). If it changed since, the caller must check again.
    pub checked_hash: Option<String>,
    /// A hash to set: the first password an opportunistic source authenticates with.
    pub new_password_hash: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct SourceUpdate {
    pub status: Option<Status>,
    pub password_hash: Option<String>,
    pub full_name: Option<String>,
    pub official_org: Option<String>,
}

/// A source as the admin API shows it (never its password hash).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    pub n: i64,
    pub elector_id: String,
    pub status: Status,
    pub full_name: Option<String>,
    pub official_org: Option<String>,
    pub has_password: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Authenticated {
        created: bool,
        source_n: i64,
        status: Status,
    },
    /// The source's password changed between the caller's check and the write.
    CheckAgain,
    AuthFailureRecorded,
    /// A vote or ballot proposal: `created` the first time this source proposed it.
    Proposed {
        created: bool,
        id: i64,
    },
    Verified {
        vote_id: i64,
    },
    Source(SourceRecord),
    Imported {
        created: usize,
        updated: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("invalid data")]
    Invalid(FieldErrors),
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("already verified")]
    AlreadyVerified,
    /// A database failure: the whole transaction is abandoned.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// A vote's state after a write, as the aggregates need it.
#[derive(Clone, Debug, PartialEq)]
pub struct VoteRow {
    pub id: i64,
    pub poll_office_id: String,
    pub idx: u32,
    pub first_reported_at: String,
    pub live: bool,
    /// `None` when no proposal counts.
    pub decision: Option<VoteDecision>,
    pub verified: bool,
    pub observed_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BallotRow {
    pub id: i64,
    pub poll_office_id: String,
    pub idx: u32,
    pub decision: Option<BallotDecision>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Vote,
    Ballot,
}

impl Kind {
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
    pub elector_id: String,
    pub poll_office_id: String,
    pub expires_at: Timestamp,
}

/// What a committed write changed, for the in-memory state.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Vote(VoteRow),
    Ballot(BallotRow),
    /// The number of sources whose proposals of this kind count at this office.
    OfficeSources {
        poll_office_id: String,
        kind: Kind,
        counted: u32,
    },
    /// Revokes a source's tokens: for one office, or all of them.
    TokensRevoked {
        source_n: i64,
        poll_office_id: Option<String>,
    },
    TokenIssued(TokenRow),
}

/// Performs one operation on `conn` (a transaction or savepoint) at time `now`.
pub fn apply(conn: &Connection, op: &WriteOp, now: Timestamp, effects: &mut Vec<Effect>) -> Result<Outcome, OpError> {
    let now_s = time::format(now);
    match op {
        WriteOp::Authenticate(a) => authenticate(conn, &now_s, a, effects),
        WriteOp::AuthFailed { source_n, poll_office_id, reason } => {
            append_audit(
                conn,
                &now_s,
                "auth_failed",
                &source::actor(*source_n),
                Some(poll_office_id.as_str()),
                json!({ "reason": reason }),
            )?;
            Ok(Outcome::AuthFailureRecorded)
        }
        WriteOp::ProposeVote { source_n, poll_office_id, input, batch } => {
            propose_vote(conn, now, &now_s, *source_n, poll_office_id.as_str(), input, *batch, effects)
        }
        WriteOp::ProposeBallot { source_n, poll_office_id, input } => {
            propose_ballot(conn, &now_s, *source_n, poll_office_id.as_str(), input, effects)
        }
        WriteOp::Verify { vote_id, voter_hash, attrs } => verify(conn, &now_s, *vote_id, voter_hash, *attrs, effects),
        WriteOp::CreateSource { source, password_hash, actor } => {
            create_source(conn, &now_s, source, password_hash.as_deref(), *actor)
        }
        WriteOp::UpdateSource { elector_id, update, actor } => {
            update_source(conn, &now_s, elector_id, update, *actor, effects)
        }
        WriteOp::ImportPollOffices { rows, actor } => import_poll_offices(conn, &now_s, rows, *actor),
        WriteOp::ImportParties { rows, actor } => import_parties(conn, &now_s, rows, *actor),
    }
}

/// Appends one entry to the audit chain. The head is read here, inside the transaction,
/// so another process writing the same file cannot fork the chain.
pub fn append_audit(
    conn: &Connection,
    at: &str,
    kind: &str,
    actor: &str,
    poll_office_id: Option<&str>,
    detail: Value,
) -> rusqlite::Result<()> {
    let head: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = head.unwrap_or((0, audit::GENESIS.to_owned()));
    let entry = Entry {
        seq: seq + 1,
        at: at.to_owned(),
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        poll_office_id: poll_office_id.map(str::to_owned),
        detail,
    };
    let detail = audit::canonical(&entry.detail);
    let hash = audit::chain_hash(&prev, &entry.canonical_with_detail(&detail));
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at, kind, actor, poll_office_id, detail, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![entry.seq, entry.at, entry.kind, entry.actor, entry.poll_office_id, detail, hash])?;
    Ok(())
}

fn authenticate(conn: &Connection, now: &str, a: &AuthOp, effects: &mut Vec<Effect>) -> Result<Outcome, OpError> {
    let found: Option<(i64, String, Option<String>)> = conn
        .prepare_cached("SELECT n, status, password_hash FROM sources WHERE elector_id = ?1")?
        .query_row([a.elector_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let office = a.poll_office_id.as_str();
    let (n, status, created, password_set) = match found {
        None => {
            if a.checked_hash.is_some() {
                return Ok(Outcome::CheckAgain);
            }
            conn.prepare_cached(
                "INSERT INTO sources (elector_id, status, password_hash, created_at, updated_at) VALUES (?1, 'unverified', ?2, ?3, ?3)",
            )?
            .execute(params![a.elector_id.as_str(), a.new_password_hash, now])?;
            let n = conn.last_insert_rowid();
            append_audit(
                conn,
                now,
                "source_created",
                &source::actor(n),
                Some(office),
                json!({"status": "unverified"}),
            )?;
            (n, Status::Unverified, true, a.new_password_hash.is_some())
        }
        Some((n, status, hash)) => {
            let status = parse_status(&status)?;
            if hash != a.checked_hash || (hash.is_none() && status.is_trusted()) {
                return Ok(Outcome::CheckAgain);
            }
            let set = hash.is_none() && a.new_password_hash.is_some();
            if set {
                conn.prepare_cached("UPDATE sources SET password_hash = ?1, updated_at = ?2 WHERE n = ?3")?
                    .execute(params![a.new_password_hash, now, n])?;
            }
            (n, status, false, set)
        }
    };
    let revoked = conn
        .prepare_cached(
            "UPDATE tokens SET revoked_at = ?1 WHERE source_n = ?2 AND poll_office_id = ?3 AND revoked_at IS NULL",
        )?
        .execute(params![now, n, office])?;
    let expires_at = time::format(a.expires_at);
    conn.prepare_cached(
        "INSERT INTO tokens (token_hash, source_n, poll_office_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![a.token_hash, n, office, now, expires_at])?;
    append_audit(
        conn,
        now,
        "auth_succeeded",
        &source::actor(n),
        Some(office),
        json!({"expires_at": expires_at, "revoked_tokens": revoked, "password_set": password_set}),
    )?;
    effects.push(Effect::TokensRevoked { source_n: n, poll_office_id: Some(office.to_owned()) });
    effects.push(Effect::TokenIssued(TokenRow {
        token_hash: a.token_hash.clone(),
        source_n: n,
        elector_id: a.elector_id.as_str().to_owned(),
        poll_office_id: office.to_owned(),
        expires_at: a.expires_at,
    }));
    Ok(Outcome::Authenticated { created, source_n: n, status })
}

fn parse_status(s: &str) -> rusqlite::Result<Status> {
    Status::parse(s)
        .ok_or_else(|| rusqlite::Error::InvalidColumnType(0, format!("status {s}"), rusqlite::types::Type::Text))
}

fn bad(field: &str, msg: &str) -> OpError {
    OpError::Invalid(FieldErrors::from([(field.to_owned(), msg.to_owned())]))
}

/// An office's trust tier for one kind, and how many sources count there.
fn office_tier(conn: &Connection, office: &str, kind: Kind) -> rusqlite::Result<(bool, u32)> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(s.status <> 'unverified'), 0), COUNT(*)
           FROM office_sources o JOIN sources s ON s.n = o.source_n
          WHERE o.poll_office_id = ?1 AND o.kind = ?2",
    )?
    .query_row(params![office, kind.as_str()], |r| {
        let trusted: u32 = r.get(0)?;
        let all: u32 = r.get(1)?;
        Ok((trusted > 0, crosscheck::counted_sources(trusted, all)))
    })
}

fn vote_attrs_from(gender: &str, age: &str, has_torn: bool) -> rusqlite::Result<VoteAttrs> {
    let bad = |what: &str| rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text);
    Ok(VoteAttrs {
        gender: Gender::parse(gender).ok_or_else(|| bad(gender))?,
        age: Age::parse(age).ok_or_else(|| bad(age))?,
        has_torn,
    })
}

#[allow(clippy::too_many_arguments)]
fn propose_vote(
    conn: &Connection,
    now: Timestamp,
    now_s: &str,
    source_n: i64,
    office: &str,
    input: &VoteInput,
    batch: bool,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
    let idx = input.index.get();
    // The vote's id, and this source's proposal for it if any.
    type Existing = (i64, Option<(String, String, bool)>);
    let existing: Option<Existing> = conn
        .prepare_cached(
            "SELECT v.id, p.gender, p.age, p.has_torn FROM votes v
               LEFT JOIN vote_proposals p ON p.vote_id = v.id AND p.source_n = ?3
              WHERE v.poll_office_id = ?1 AND v.idx = ?2",
        )?
        .query_row(params![office, idx, source_n], |r| {
            let gender: Option<String> = r.get(1)?;
            Ok((
                r.get(0)?,
                match gender {
                    Some(g) => Some((g, r.get(2)?, r.get(3)?)),
                    None => None,
                },
            ))
        })
        .optional()?;
    let new = input.attrs;
    let (trusted_before, _) = office_tier(conn, office, Kind::Vote)?;
    let (vote_id, created) = match existing {
        Some((id, Some((g, a, t)))) => {
            let old = vote_attrs_from(&g, &a, t)?;
            if old == new {
                return Ok(Outcome::Proposed { created: false, id });
            }
            conn.prepare_cached(
                "UPDATE vote_proposals SET gender = ?1, age = ?2, has_torn = ?3, updated_at = ?4 WHERE vote_id = ?5 AND source_n = ?6",
            )?
            .execute(params![new.gender.as_str(), new.age.as_str(), new.has_torn, now_s, id, source_n])?;
            append_audit(
                conn,
                now_s,
                "vote_corrected",
                &source::actor(source_n),
                Some(office),
                json!({"vote_id": id.to_string(), "index": idx, "old": old.to_json(), "new": new.to_json()}),
            )?;
            (id, false)
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
            let id = match found {
                Some((id, None)) => id,
                _ => {
                    conn.prepare_cached(
                        "INSERT INTO votes (poll_office_id, idx, first_reported_at, live) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![office, idx, now_s, !batch])?;
                    conn.last_insert_rowid()
                }
            };
            conn.prepare_cached(
                "INSERT INTO vote_proposals (vote_id, source_n, poll_office_id, idx, gender, age, has_torn, observed_at, batch, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
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
                now_s
            ])?;
            conn.prepare_cached(
                "INSERT OR IGNORE INTO office_sources (poll_office_id, kind, source_n, first_at) VALUES (?1, 'vote', ?2, ?3)",
            )?
            .execute(params![office, source_n, now_s])?;
            let mut detail = json!({"vote_id": id.to_string(), "index": idx, "new": new.to_json()});
            if let Some(o) = &observed_at {
                detail["observed_at"] = json!(o);
            }
            append_audit(conn, now_s, "vote_proposed", &source::actor(source_n), Some(office), detail)?;
            (id, true)
        }
    };
    settle(conn, office, Kind::Vote, trusted_before, created, vote_id, effects)?;
    Ok(Outcome::Proposed { created, id: vote_id })
}

fn propose_ballot(
    conn: &Connection,
    now_s: &str,
    source_n: i64,
    office: &str,
    input: &BallotInput,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
    let idx = input.index.get();
    let party = input.party_id.as_str();
    let existing: Option<(i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT b.id, p.party_id FROM ballots b
               LEFT JOIN ballot_proposals p ON p.ballot_id = b.id AND p.source_n = ?3
              WHERE b.poll_office_id = ?1 AND b.idx = ?2",
        )?
        .query_row(params![office, idx, source_n], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (trusted_before, _) = office_tier(conn, office, Kind::Ballot)?;
    let (ballot_id, created) = match existing {
        Some((id, Some(old))) => {
            if old == party {
                return Ok(Outcome::Proposed { created: false, id });
            }
            conn.prepare_cached(
                "UPDATE ballot_proposals SET party_id = ?1, updated_at = ?2 WHERE ballot_id = ?3 AND source_n = ?4",
            )?
            .execute(params![party, now_s, id, source_n])?;
            append_audit(
                conn,
                now_s,
                "ballot_corrected",
                &source::actor(source_n),
                Some(office),
                json!({"index": idx, "old": {"party_id": old}, "new": {"party_id": party}}),
            )?;
            (id, false)
        }
        found => {
            let id = match found {
                Some((id, None)) => id,
                _ => {
                    conn.prepare_cached(
                        "INSERT INTO ballots (poll_office_id, idx, first_reported_at) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![office, idx, now_s])?;
                    conn.last_insert_rowid()
                }
            };
            conn.prepare_cached(
                "INSERT INTO ballot_proposals (ballot_id, source_n, poll_office_id, idx, party_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?
            .execute(params![id, source_n, office, idx, party, now_s])?;
            conn.prepare_cached(
                "INSERT OR IGNORE INTO office_sources (poll_office_id, kind, source_n, first_at) VALUES (?1, 'ballot', ?2, ?3)",
            )?
            .execute(params![office, source_n, now_s])?;
            append_audit(
                conn,
                now_s,
                "ballot_proposed",
                &source::actor(source_n),
                Some(office),
                json!({"index": idx, "new": {"party_id": party}}),
            )?;
            (id, true)
        }
    };
    settle(conn, office, Kind::Ballot, trusted_before, created, ballot_id, effects)?;
    Ok(Outcome::Proposed { created, id: ballot_id })
}

/// After a proposal: a source new to the office may change its tier (then the whole
/// office is re-weighed) and its count of sources; otherwise only this vote or ballot
/// changes.
fn settle(
    conn: &Connection,
    office: &str,
    kind: Kind,
    trusted_before: bool,
    new_proposal: bool,
    id: i64,
    effects: &mut Vec<Effect>,
) -> rusqlite::Result<()> {
    let mut trusted = trusted_before;
    if new_proposal {
        let (trusted_after, counted) = office_tier(conn, office, kind)?;
        effects.push(Effect::OfficeSources { poll_office_id: office.to_owned(), kind, counted });
        if trusted_after != trusted_before {
            recompute_office(conn, office, kind, effects)?;
            return Ok(());
        }
        trusted = trusted_after;
    }
    effects.push(match kind {
        Kind::Vote => Effect::Vote(recompute_vote(conn, id, trusted)?),
        Kind::Ballot => Effect::Ballot(recompute_ballot(conn, id, trusted)?),
    });
    Ok(())
}

fn verify(
    conn: &Connection,
    now_s: &str,
    vote_id: i64,
    voter_hash: &str,
    attrs: VoteAttrs,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
    let vote: Option<(String, u32)> = conn
        .prepare_cached("SELECT poll_office_id, idx FROM votes WHERE id = ?1")?
        .query_row([vote_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (office, idx) = vote.ok_or(OpError::NotFound)?;
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
    append_audit(conn, now_s, "vote_verified", "voter", Some(&office), detail)?;
    let (trusted, _) = office_tier(conn, &office, Kind::Vote)?;
    effects.push(Effect::Vote(recompute_vote(conn, vote_id, trusted)?));
    Ok(Outcome::Verified { vote_id })
}

/// Recomputes a vote's accepted values from its proposals and verification, stores them
/// and returns the vote's new state.
pub fn recompute_vote(conn: &Connection, vote_id: i64, office_trusted: bool) -> rusqlite::Result<VoteRow> {
    type Stored = (Option<String>, Option<String>, Option<bool>, bool, Option<String>);
    let (poll_office_id, idx, first_reported_at, live, stored, verification): (
        String,
        u32,
        String,
        bool,
        Stored,
        Option<VoteAttrs>,
    ) = conn
        .prepare_cached(
            "SELECT v.poll_office_id, v.idx, v.first_reported_at, v.live, v.gender, v.age, v.has_torn, v.disputed,
                    v.observed_at, vv.gender, vv.age, vv.has_torn
               FROM votes v LEFT JOIN vote_verifications vv ON vv.vote_id = v.id WHERE v.id = ?1",
        )?
        .query_row([vote_id], |r| {
            let verification = match r.get::<_, Option<String>>(9)? {
                Some(g) => Some(vote_attrs_from(&g, &r.get::<_, String>(10)?, r.get(11)?)?),
                None => None,
            };
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                (r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
                verification,
            ))
        })?;
    let mut counted = Vec::new();
    let mut observed_at: Option<String> = None;
    {
        let mut stmt = conn.prepare_cached(
            "SELECT p.gender, p.age, p.has_torn, p.observed_at, s.status
               FROM vote_proposals p JOIN sources s ON s.n = p.source_n WHERE p.vote_id = ?1",
        )?;
        let mut rows = stmt.query([vote_id])?;
        while let Some(r) = rows.next()? {
            let status = parse_status(&r.get::<_, String>(4)?)?;
            if !crosscheck::counts(office_trusted, status.is_trusted()) {
                continue;
            }
            counted.push(vote_attrs_from(&r.get::<_, String>(0)?, &r.get::<_, String>(1)?, r.get(2)?)?);
            if let Some(o) = r.get::<_, Option<String>>(3)? {
                if observed_at.as_ref().is_none_or(|cur| o < *cur) {
                    observed_at = Some(o);
                }
            }
        }
    }
    let decision = crosscheck::decide_vote(&counted, verification);
    let new: Stored = (
        decision.map(|d| d.accepted.gender.as_str().to_owned()),
        decision.map(|d| d.accepted.age.as_str().to_owned()),
        decision.map(|d| d.accepted.has_torn),
        decision.is_some_and(|d| d.disputed),
        observed_at.clone(),
    );
    if new != stored {
        conn.prepare_cached(
            "UPDATE votes SET counted = ?1, gender = ?2, age = ?3, has_torn = ?4, disputed = ?5, observed_at = ?6 WHERE id = ?7",
        )?
        .execute(params![decision.is_some(), new.0, new.1, new.2, new.3, new.4, vote_id])?;
    }
    Ok(VoteRow {
        id: vote_id,
        poll_office_id,
        idx,
        first_reported_at,
        live,
        decision,
        verified: verification.is_some(),
        observed_at,
    })
}

/// Recomputes a ballot's accepted party from its proposals, stores it and returns it.
pub fn recompute_ballot(conn: &Connection, ballot_id: i64, office_trusted: bool) -> rusqlite::Result<BallotRow> {
    let (poll_office_id, idx, stored): (String, u32, (bool, Option<String>, bool)) = conn
        .prepare_cached("SELECT poll_office_id, idx, counted, party_id, disputed FROM ballots WHERE id = ?1")?
        .query_row([ballot_id], |r| Ok((r.get(0)?, r.get(1)?, (r.get(2)?, r.get(3)?, r.get(4)?))))?;
    let mut parties: Vec<String> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT p.party_id, s.status FROM ballot_proposals p JOIN sources s ON s.n = p.source_n WHERE p.ballot_id = ?1",
        )?;
        let mut rows = stmt.query([ballot_id])?;
        while let Some(r) = rows.next()? {
            let status = parse_status(&r.get::<_, String>(1)?)?;
            if crosscheck::counts(office_trusted, status.is_trusted()) {
                parties.push(r.get(0)?);
            }
        }
    }
    let refs: Vec<&str> = parties.iter().map(String::as_str).collect();
    let decision = crosscheck::decide_ballot(&refs);
    let new = (
        decision.is_some(),
        decision.as_ref().and_then(|d| d.party.clone()),
        decision.as_ref().is_some_and(|d| d.disputed),
    );
    if new != stored {
        conn.prepare_cached("UPDATE ballots SET counted = ?1, party_id = ?2, disputed = ?3 WHERE id = ?4")?
            .execute(params![new.0, new.1, new.2, ballot_id])?;
    }
    Ok(BallotRow { id: ballot_id, poll_office_id, idx, decision })
}

/// Re-weighs every vote or ballot of an office (its tier changed).
fn recompute_office(conn: &Connection, office: &str, kind: Kind, effects: &mut Vec<Effect>) -> rusqlite::Result<u32> {
    let (trusted, counted) = office_tier(conn, office, kind)?;
    let sql = match kind {
        Kind::Vote => "SELECT id FROM votes WHERE poll_office_id = ?1 ORDER BY idx",
        Kind::Ballot => "SELECT id FROM ballots WHERE poll_office_id = ?1 ORDER BY idx",
    };
    let ids: Vec<i64> =
        conn.prepare_cached(sql)?.query_map([office], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    for id in ids {
        effects.push(match kind {
            Kind::Vote => Effect::Vote(recompute_vote(conn, id, trusted)?),
            Kind::Ballot => Effect::Ballot(recompute_ballot(conn, id, trusted)?),
        });
    }
    Ok(counted)
}

fn create_source(
    conn: &Connection,
    now: &str,
    s: &NewSource,
    password_hash: Option<&str>,
    actor: Actor,
) -> Result<Outcome, OpError> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sources WHERE elector_id = ?1)")?
        .query_row([s.elector_id.as_str()], |r| r.get(0))?;
    if exists {
        return Err(OpError::Conflict);
    }
    conn.prepare_cached(
        "INSERT INTO sources (elector_id, status, password_hash, full_name, official_org, email, phone_number, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?
    .execute(params![
        s.elector_id.as_str(),
        s.status.as_str(),
        password_hash,
        s.full_name,
        s.official_org,
        s.email,
        s.phone_number,
        now
    ])?;
    let n = conn.last_insert_rowid();
    append_audit(
        conn,
        now,
        "source_created",
        actor.as_str(),
        None,
        json!({"source": source::actor(n), "status": s.status.as_str(), "has_password": password_hash.is_some()}),
    )?;
    Ok(Outcome::Source(load_source(conn, n)?))
}

fn update_source(
    conn: &Connection,
    now: &str,
    elector_id: &ElectorId,
    u: &SourceUpdate,
    actor: Actor,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
    let found: Option<(i64, String)> = conn
        .prepare_cached("SELECT n, status FROM sources WHERE elector_id = ?1")?
        .query_row([elector_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (n, old_status) = found.ok_or(OpError::NotFound)?;
    let old_status = parse_status(&old_status)?;
    let mut detail = json!({"source": source::actor(n)});
    if let Some(name) = &u.full_name {
        conn.prepare_cached("UPDATE sources SET full_name = ?1 WHERE n = ?2")?.execute(params![name, n])?;
        detail["full_name_changed"] = json!(true);
    }
    if let Some(org) = &u.official_org {
        conn.prepare_cached("UPDATE sources SET official_org = ?1 WHERE n = ?2")?.execute(params![org, n])?;
        detail["official_org_changed"] = json!(true);
    }
    if let Some(hash) = &u.password_hash {
        conn.prepare_cached("UPDATE sources SET password_hash = ?1 WHERE n = ?2")?.execute(params![hash, n])?;
        let revoked = conn
            .prepare_cached("UPDATE tokens SET revoked_at = ?1 WHERE source_n = ?2 AND revoked_at IS NULL")?
            .execute(params![now, n])?;
        detail["password_reset"] = json!(true);
        detail["revoked_tokens"] = json!(revoked);
        effects.push(Effect::TokensRevoked { source_n: n, poll_office_id: None });
    }
    let status_changed = u.status.is_some_and(|s| s != old_status);
    if let Some(status) = u.status.filter(|_| status_changed) {
        conn.prepare_cached("UPDATE sources SET status = ?1 WHERE n = ?2")?.execute(params![status.as_str(), n])?;
        detail["status"] = json!({"old": old_status.as_str(), "new": status.as_str()});
    }
    conn.prepare_cached("UPDATE sources SET updated_at = ?1 WHERE n = ?2")?.execute(params![now, n])?;
    append_audit(conn, now, "source_updated", actor.as_str(), None, detail)?;
    if status_changed {
        let places: Vec<(String, String)> = conn
            .prepare_cached("SELECT poll_office_id, kind FROM office_sources WHERE source_n = ?1")?
            .query_map([n], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (office, kind) in places {
            let kind = if kind == "vote" { Kind::Vote } else { Kind::Ballot };
            let counted = recompute_office(conn, &office, kind, effects)?;
            effects.push(Effect::OfficeSources { poll_office_id: office, kind, counted });
        }
    }
    Ok(Outcome::Source(load_source(conn, n)?))
}

fn count(conn: &Connection, table: &str) -> rusqlite::Result<usize> {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
}

fn import_poll_offices(conn: &Connection, now: &str, rows: &[OfficeRow], actor: Actor) -> Result<Outcome, OpError> {
    let before = count(conn, "poll_offices")?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO poll_offices (identifier, name, country, state, region, city, county, district, voters_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (identifier) DO UPDATE SET name = excluded.name, country = excluded.country, state = excluded.state,
            region = excluded.region, city = excluded.city, county = excluded.county, district = excluded.district,
            voters_count = excluded.voters_count",
    )?;
    for r in rows {
        stmt.execute(params![
            r.identifier.as_str(),
            r.name,
            r.country,
            r.state,
            r.region,
            r.city,
            r.county,
            r.district,
            r.voters_count
        ])?;
    }
    let created = count(conn, "poll_offices")? - before;
    let updated = rows.len() - created;
    append_audit(
        conn,
        now,
        "import",
        actor.as_str(),
        None,
        json!({"table": "poll_offices", "created": created, "updated": updated}),
    )?;
    Ok(Outcome::Imported { created, updated })
}

fn import_parties(conn: &Connection, now: &str, rows: &[PartyRow], actor: Actor) -> Result<Outcome, OpError> {
    let before = count(conn, "parties")?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO parties (identifier, party_name, candidate_name) VALUES (?1, ?2, ?3)
         ON CONFLICT (identifier) DO UPDATE SET party_name = excluded.party_name, candidate_name = excluded.candidate_name",
    )?;
    for r in rows {
        stmt.execute(params![r.identifier.as_str(), r.party_name, r.candidate_name])?;
    }
    let created = count(conn, "parties")? - before;
    let updated = rows.len() - created;
    append_audit(
        conn,
        now,
        "import",
        actor.as_str(),
        None,
        json!({"table": "parties", "created": created, "updated": updated}),
    )?;
    Ok(Outcome::Imported { created, updated })
}

pub fn load_source(conn: &Connection, n: i64) -> rusqlite::Result<SourceRecord> {
    conn.prepare_cached(
        "SELECT n, elector_id, status, full_name, official_org, password_hash IS NOT NULL FROM sources WHERE n = ?1",
    )?
    .query_row([n], |r| {
        Ok(SourceRecord {
            n: r.get(0)?,
            elector_id: r.get(1)?,
            status: parse_status(&r.get::<_, String>(2)?)?,
            full_name: r.get(3)?,
            official_org: r.get(4)?,
            has_password: r.get(5)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Index;
    use crate::domain::vote::Decided;

    fn now() -> Timestamp {
        time::parse("2025-08-15T14:00:00Z").unwrap()
    }

    fn source(conn: &Connection, id: &str, status: Status) -> i64 {
        let s = NewSource {
            elector_id: ElectorId::parse(id).unwrap(),
            status,
            full_name: None,
            official_org: None,
            email: None,
            phone_number: None,
            password: None,
        };
        match apply(
            conn,
            &WriteOp::CreateSource { source: s, password_hash: None, actor: Actor::Admin },
            now(),
            &mut vec![],
        ) {
            Ok(Outcome::Source(r)) => r.n,
            other => panic!("{other:?}"),
        }
    }

    fn vote(conn: &Connection, n: i64, idx: i64, gender: Gender) -> (Outcome, Vec<Effect>) {
        let mut effects = vec![];
        let op = WriteOp::ProposeVote {
            source_n: n,
            poll_office_id: PollOfficeId::parse("PO-1").unwrap(),
            input: VoteInput {
                index: Index::new(idx).unwrap(),
                attrs: VoteAttrs { gender, age: Age::Less30, has_torn: false },
                observed_at: None,
            },
            batch: false,
        };
        (apply(conn, &op, now(), &mut effects).unwrap(), effects)
    }

    fn last_vote_effect(effects: &[Effect]) -> &VoteRow {
        effects.iter().rev().find_map(|e| if let Effect::Vote(v) = e { Some(v) } else { None }).unwrap()
    }

    #[test]
    fn a_resend_changes_nothing_and_a_correction_is_audited() {
        let conn = crate::store::open_in_memory().unwrap();
        let a = source(&conn, "A", Status::Unverified);
        let (o1, _) = vote(&conn, a, 1, Gender::Male);
        let (o2, e2) = vote(&conn, a, 1, Gender::Male);
        let (o3, _) = vote(&conn, a, 1, Gender::Female);
        let Outcome::Proposed { created: true, id } = o1 else { panic!() };
        assert_eq!(o2, Outcome::Proposed { created: false, id });
        assert!(e2.is_empty());
        assert_eq!(o3, Outcome::Proposed { created: false, id });
        let kinds: Vec<String> = conn
            .prepare("SELECT kind FROM audit_log ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kinds, ["source_created", "vote_proposed", "vote_corrected"]);
    }

    #[test]
    fn two_sources_share_the_vote_id_and_a_tie_is_undecided() {
        let conn = crate::store::open_in_memory().unwrap();
        let a = source(&conn, "A", Status::Unverified);
        let b = source(&conn, "B", Status::Unverified);
        let (Outcome::Proposed { id: id1, .. }, _) = vote(&conn, a, 5, Gender::Male) else { panic!() };
        let (Outcome::Proposed { id: id2, created }, e) = vote(&conn, b, 5, Gender::Female) else { panic!() };
        assert_eq!(id1, id2);
        assert!(created);
        let row = last_vote_effect(&e);
        assert_eq!(row.decision.unwrap().accepted.gender, Decided::Undecided);
        assert!(row.decision.unwrap().disputed);
    }

    #[test]
    fn a_trusted_source_arriving_silences_the_opportunistic_ones_at_that_office() {
        let conn = crate::store::open_in_memory().unwrap();
        let a = source(&conn, "A", Status::Unverified);
        let b = source(&conn, "B", Status::Unverified);
        let t = source(&conn, "T", Status::Official);
        vote(&conn, a, 1, Gender::Male);
        vote(&conn, b, 1, Gender::Male);
        vote(&conn, a, 2, Gender::Male);
        let (_, e) = vote(&conn, t, 1, Gender::Female);
        // Both votes were re-weighed: 1 now follows the official, 2 has no counted proposal.
        let rows: Vec<&VoteRow> =
            e.iter().filter_map(|e| if let Effect::Vote(v) = e { Some(v) } else { None }).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].decision.unwrap().accepted.gender, Decided::Value(Gender::Female));
        assert!(!rows[0].decision.unwrap().disputed);
        assert_eq!(rows[1].decision, None);
        assert!(e.contains(&Effect::OfficeSources { poll_office_id: "PO-1".into(), kind: Kind::Vote, counted: 1 }));
    }

    #[test]
    fn a_verification_is_refused_twice_for_a_vote_or_a_voter() {
        let conn = crate::store::open_in_memory().unwrap();
        let a = source(&conn, "A", Status::Unverified);
        let (Outcome::Proposed { id: v1, .. }, _) = vote(&conn, a, 1, Gender::Male) else { panic!() };
        let (Outcome::Proposed { id: v2, .. }, _) = vote(&conn, a, 2, Gender::Male) else { panic!() };
        let attrs = VoteAttrs { gender: Gender::Female, age: Age::Less30, has_torn: false };
        let op = |vote_id, h: &str| WriteOp::Verify { vote_id, voter_hash: h.into(), attrs };
        let mut e = vec![];
        apply(&conn, &op(v1, "h1"), now(), &mut e).unwrap();
        assert!(last_vote_effect(&e).verified);
        assert!(last_vote_effect(&e).decision.unwrap().disputed);
        assert!(matches!(apply(&conn, &op(v1, "h2"), now(), &mut vec![]), Err(OpError::AlreadyVerified)));
        assert!(matches!(apply(&conn, &op(v2, "h1"), now(), &mut vec![]), Err(OpError::AlreadyVerified)));
        assert!(matches!(apply(&conn, &op(999, "h3"), now(), &mut vec![]), Err(OpError::NotFound)));
    }
}
