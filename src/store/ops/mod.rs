//! Write operations as data, and `apply`, the one function that performs them inside a
//! transaction. Every operation that changes what is accepted recomputes it at once, in
//! the same transaction (section 6), appends its audit entry to the chain, and reports the
//! rows it touched as `Effect`s, which the in-memory aggregates take in after the commit.
//! `apply` is used by the server's writer thread and by the CLI alike.

mod audit;
mod auth;
mod cache;
mod directory;
mod proposals;
mod sources;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use crate::domain::change::{
    BallotRow, Effect, Kind, ProposalRow, Proposed, Receipt, Shared, SourceRow, TokenRow, Verification, VoteRow,
};
use crate::domain::directory::{OfficeRow, PartyRow};
use crate::domain::ids::{ElectorId, PollOfficeId};
use crate::domain::input::{BallotInput, FieldErrors, NewSource, VoteInput};
use crate::domain::source::{self, Status};
use crate::domain::time::{self, Timestamp};
use crate::domain::vote::{Age, Gender, VoteAttrs};

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
        batch: bool,
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
    /// S3 credentials minted for a source at an office (the secrets are not recorded).
    CredentialsMinted {
        source_n: i64,
        poll_office_id: PollOfficeId,
        expiration: Timestamp,
    },
    ImportPollOffices {
        rows: Vec<OfficeRow>,
        actor: Actor,
    },
    ImportParties {
        rows: Vec<PartyRow>,
        actor: Actor,
    },
    /// A checkpoint the log signed, with the full tiles completed since the one before
    /// (derived data: neither is an audit entry).
    LogCheckpoint {
        signed: crate::store::tlog::Signed,
        tiles: Vec<crate::domain::tlog::FullTile>,
    },
    /// A witness's cosignature of a checkpoint the log signed (not an audit entry).
    Cosignature(crate::store::tlog::StoredCosignature),
    /// Rereads what another process's commit touched, in this writer's order: whatever
    /// this writer commits after the reload is applied after it, so the memory never
    /// goes back to an older state (section 9). Writes nothing.
    Reload(Reload),
}

/// What to reread after another process's commit (`follow`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reload {
    pub directory: bool,
    /// Sources whose status or names changed.
    pub sources: Vec<i64>,
    /// Sources whose offices were re-weighed (a status change).
    pub offices_of: Vec<i64>,
    /// Sources whose tokens were all revoked (a password reset).
    pub tokens_of: Vec<i64>,
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
        receipt: Receipt,
    },
    /// The source's password changed between the caller's check and the write.
    CheckAgain,
    /// An event written to the audit log only.
    Recorded,
    /// A vote or ballot proposal: `created` the first time this source proposed it.
    Proposed {
        created: bool,
        id: i64,
        receipt: Option<Receipt>,
    },
    Verified {
        vote_id: i64,
        receipt: Receipt,
    },
    Source(SourceRecord),
    Imported {
        created: usize,
        updated: usize,
    },
}

/// What a proposal answers: `created` the first time this source proposed it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proposal {
    pub created: bool,
    pub id: i64,
    /// The entry that recorded the value (section 6e); `None` only for a resend of a
    /// proposal stored before schema version 4 that the log does not name.
    pub receipt: Option<Receipt>,
}

/// What an authentication answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Authentication {
    Done {
        created: bool,
        source_n: i64,
        status: Status,
        /// Its `auth_succeeded` entry.
        receipt: Receipt,
    },
    /// The source's password changed between the caller's check and the write.
    CheckAgain,
}

impl Outcome {
    // Each operation answers one shape (`apply`): these are its answers, typed, for the
    // writer's callers. A mismatch is a bug in `apply`, not a condition to handle.
    pub fn proposal(self) -> Proposal {
        match self {
            Outcome::Proposed { created, id, receipt } => Proposal { created, id, receipt },
            other => unreachable!("a proposal answered {other:?}"),
        }
    }

    pub fn authentication(self) -> Authentication {
        match self {
            Outcome::Authenticated { created, source_n, status, receipt } => {
                Authentication::Done { created, source_n, status, receipt }
            }
            Outcome::CheckAgain => Authentication::CheckAgain,
            other => unreachable!("an authentication answered {other:?}"),
        }
    }

    pub fn verified(self) -> Receipt {
        match self {
            Outcome::Verified { receipt, .. } => receipt,
            other => unreachable!("a verification answered {other:?}"),
        }
    }

    pub fn source(self) -> SourceRecord {
        match self {
            Outcome::Source(s) => s,
            other => unreachable!("a source operation answered {other:?}"),
        }
    }

    /// `(created, updated)` rows of an import.
    pub fn imported(self) -> (usize, usize) {
        match self {
            Outcome::Imported { created, updated } => (created, updated),
            other => unreachable!("an import answered {other:?}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("invalid data")]
    Invalid(FieldErrors),
    /// A source with this `elector_id` exists already.
    #[error("this source already exists")]
    SourceExists,
    #[error("no such source")]
    NoSuchSource,
    #[error("no such vote")]
    NoSuchVote,
    #[error("already verified")]
    AlreadyVerified,
    /// A database failure: the whole transaction is abandoned.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

impl From<&SourceRecord> for SourceRow {
    fn from(r: &SourceRecord) -> Self {
        SourceRow { n: r.n, status: r.status, full_name: r.full_name.clone(), official_org: r.official_org.clone() }
    }
}

/// One operation's place in a transaction: the connection (a savepoint of the group
/// commit, or the CLI's own transaction), the time of the write (and its stored text, to
/// the second), the effects it reports, and what the writer remembers of the tables.
pub(super) struct Tx<'a> {
    pub conn: &'a Connection,
    pub now: Timestamp,
    pub now_s: &'a str,
    pub effects: &'a mut Vec<Effect>,
    pub cache: &'a mut Cache,
}

/// Performs one operation on `conn` (a transaction or savepoint) at time `now`, reading
/// everything from the tables (the CLI's operations, tests).
pub fn apply(conn: &Connection, op: &WriteOp, now: Timestamp, effects: &mut Vec<Effect>) -> Result<Outcome, OpError> {
    apply_with(conn, op, now, effects, &mut Cache::default())
}

/// `apply` with what the writer remembers of the tables (`Cache`): the caller forgets it
/// when the operation fails or the transaction does not commit.
pub fn apply_with(
    conn: &Connection,
    op: &WriteOp,
    now: Timestamp,
    effects: &mut Vec<Effect>,
    cache: &mut Cache,
) -> Result<Outcome, OpError> {
    // A status change rewrites the tiers of every office of its source in SQL; a reload
    // follows another process's commit.
    if matches!(op, WriteOp::UpdateSource { .. } | WriteOp::Reload(_)) {
        cache.forget_tiers();
    }
    let now_s = time::format(now);
    let mut tx = Tx { conn, now, now_s: &now_s, effects, cache };
    let head = &mut tx.cache.head;
    match op {
        WriteOp::Authenticate(a) => authenticate(conn, head, &now_s, a, tx.effects),
        WriteOp::AuthFailed { source_n, poll_office_id, reason } => {
            append_audit(
                conn,
                head,
                tx.effects,
                &now_s,
                "auth_failed",
                &source::actor(*source_n),
                Some(poll_office_id.as_str()),
                json!({ "reason": reason }),
            )?;
            Ok(Outcome::Recorded)
        }
        WriteOp::ProposeVote { source_n, poll_office_id, input, batch } => {
            propose_vote(&mut tx, *source_n, poll_office_id, input, *batch)
        }
        WriteOp::ProposeBallot { source_n, poll_office_id, input, batch } => {
            propose_ballot(&mut tx, *source_n, poll_office_id, input, *batch)
        }
        WriteOp::Verify { vote_id, voter_hash, attrs } => verify(&mut tx, *vote_id, voter_hash, *attrs),
        WriteOp::CreateSource { source, password_hash, actor } => {
            create_source(conn, head, &now_s, source, password_hash.as_deref(), *actor, tx.effects)
        }
        WriteOp::UpdateSource { elector_id, update, actor } => {
            update_source(conn, head, &now_s, elector_id, update, *actor, tx.effects)
        }
        WriteOp::CredentialsMinted { source_n, poll_office_id, expiration } => {
            append_audit(
                conn,
                head,
                tx.effects,
                &now_s,
                "credentials_minted",
                &source::actor(*source_n),
                Some(poll_office_id.as_str()),
                json!({"expiration": time::format(*expiration)}),
            )?;
            Ok(Outcome::Recorded)
        }
        WriteOp::ImportPollOffices { rows, actor } => import_poll_offices(conn, head, &now_s, rows, *actor, tx.effects),
        WriteOp::ImportParties { rows, actor } => import_parties(conn, head, &now_s, rows, *actor, tx.effects),
        WriteOp::LogCheckpoint { signed, tiles } => {
            crate::store::tlog::write_tiles(conn, tiles)?;
            crate::store::tlog::write_checkpoint(conn, signed)?;
            Ok(Outcome::Recorded)
        }
        WriteOp::Cosignature(c) => {
            if crate::store::tlog::checkpoint(conn, c.size)?.is_none() {
                return Err(bad("cosignature", "names a checkpoint this log never signed"));
            }
            crate::store::tlog::write_cosignature(conn, c, &now_s)?;
            Ok(Outcome::Recorded)
        }
        WriteOp::Reload(r) => {
            reload(conn, r, tx.effects)?;
            Ok(Outcome::Recorded)
        }
    }
}

/// How long an expired token is kept, so that it is still told apart as `token_expired`
/// (the app's signal to re-authenticate) by a phone that was offline for a day.
pub const EXPIRED_TOKENS_KEPT_SECS: i64 = 24 * 3600;

/// Deletes the tokens that expired more than `EXPIRED_TOKENS_KEPT_SECS` before `now`.
pub fn prune_tokens(conn: &Connection, now: Timestamp, effects: &mut Vec<Effect>) -> rusqlite::Result<usize> {
    let before = now - chrono::Duration::seconds(EXPIRED_TOKENS_KEPT_SECS);
    let deleted = conn.prepare_cached("DELETE FROM tokens WHERE expires_at <= ?1")?.execute([time::format(before)])?;
    effects.push(Effect::TokensExpired(before));
    Ok(deleted)
}

fn reload(conn: &Connection, r: &Reload, effects: &mut Vec<Effect>) -> rusqlite::Result<()> {
    use crate::store::reads;
    if r.directory {
        effects.push(Effect::Directory(Shared(std::sync::Arc::new(reads::directory(conn)?))));
        effects.extend(reads::office_logs(conn, None)?);
    }
    for n in &r.sources {
        effects.extend(reads::sources(conn, Some(*n))?);
    }
    for n in &r.offices_of {
        for office in reads::source_offices(conn, *n)? {
            effects.extend(reads::office_effects(conn, &office)?);
        }
    }
    // The source's tokens as the table has them now: those the reset revoked leave, and
    // one this writer issued since (a login with the new password) stays.
    for n in &r.tokens_of {
        effects.push(Effect::TokensRevoked { source_n: *n, poll_office_id: None });
        effects.extend(reads::live_tokens(conn, Some(*n))?.into_iter().map(Effect::TokenIssued));
    }
    Ok(())
}

fn parse_status(s: &str) -> rusqlite::Result<Status> {
    Status::parse(s)
        .ok_or_else(|| rusqlite::Error::InvalidColumnType(0, format!("status {s}"), rusqlite::types::Type::Text))
}

fn bad(field: &str, msg: &str) -> OpError {
    OpError::Invalid(FieldErrors::from([(field.to_owned(), msg.to_owned())]))
}

/// A proposal's or a verification's attributes, as stored.
pub(crate) fn vote_attrs_from(gender: &str, age: &str, has_torn: bool) -> rusqlite::Result<VoteAttrs> {
    let bad = |what: &str| rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text);
    Ok(VoteAttrs {
        gender: Gender::parse(gender).ok_or_else(|| bad(gender))?,
        age: Age::parse(age).ok_or_else(|| bad(age))?,
        has_torn,
    })
}

/// A vote's verification from four columns starting at `first` (gender, age, has_torn,
/// created_at of `vote_verifications`, NULL when there is none).
pub(crate) fn verification_from(r: &rusqlite::Row, first: usize) -> rusqlite::Result<Option<Verification>> {
    match r.get::<_, Option<String>>(first)? {
        Some(g) => Ok(Some(Verification {
            attrs: vote_attrs_from(&g, &r.get::<_, String>(first + 1)?, r.get(first + 2)?)?,
            at: super::columns::timestamp(r, first + 3)?,
        })),
        None => Ok(None),
    }
}

pub use audit::{append_audit, receipt_of};
use auth::authenticate;
pub use cache::{Cache, Head};
pub use directory::log_directory_snapshot;
use directory::{import_parties, import_poll_offices};
use proposals::{propose_ballot, propose_vote, verify};
pub use proposals::{recompute_ballot, recompute_office, recompute_vote};

/// SQL that is 1 where the `status` column holds a trusted status: `Status::is_trusted`,
/// the one rule, written out as the list of those statuses.
pub(super) fn trusted_sql(column: &str) -> String {
    let trusted: Vec<String> =
        Status::ALL.iter().filter(|s| s.is_trusted()).map(|s| format!("'{}'", s.as_str())).collect();
    format!("{column} IN ({})", trusted.join(", "))
}

/// `office_tiers` recounted from `office_sources` and the statuses (`check` compares them).
fn office_tiers_recount() -> String {
    format!(
        "SELECT o.poll_office_id, o.kind, COUNT(*), SUM({})
           FROM office_sources o JOIN sources s ON s.n = o.source_n GROUP BY o.poll_office_id, o.kind",
        trusted_sql("s.status")
    )
}

/// Rows of `office_tiers` that differ from a recount, either way.
pub fn office_tiers_mismatches(conn: &Connection) -> rusqlite::Result<i64> {
    let recount = office_tiers_recount();
    conn.query_row(
        &format!(
            "SELECT (SELECT COUNT(*) FROM (SELECT poll_office_id, kind, sources, trusted FROM office_tiers
                                           EXCEPT {recount}))
                  + (SELECT COUNT(*) FROM ({recount}
                                           EXCEPT SELECT poll_office_id, kind, sources, trusted FROM office_tiers))"
        ),
        [],
        |r| r.get(0),
    )
}

/// Rebuilds `office_tiers` (a migration from a database without it).
pub fn rebuild_office_tiers(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM office_tiers", [])?;
    conn.execute(
        &format!("INSERT INTO office_tiers (poll_office_id, kind, sources, trusted) {}", office_tiers_recount()),
        [],
    )?;
    Ok(())
}

/// Replays the report times of section 6b from the audit log, which holds every logged
/// vote and ballot report with its time: `votes.timed` (with `votes.live` for whether the
/// first report was a batch item, which logs before schema version 3 do not say) and
/// `office_sources.last_at`. Schema version 3's migration; streamed, one entry at a time.
pub fn replay_report_times(conn: &Connection) -> rusqlite::Result<()> {
    use std::collections::HashMap;
    let mut last: HashMap<(String, String, Kind), String> = HashMap::new();
    let mut timed: HashMap<i64, bool> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT kind, actor, poll_office_id, at, detail FROM audit_log
          WHERE kind IN ('vote_proposed', 'vote_corrected', 'ballot_proposed', 'ballot_corrected') ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (kind, actor, office, at): (String, String, Option<String>, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        let Some(office) = office else { continue };
        let k = if kind.starts_with("vote_") { Kind::Vote } else { Kind::Ballot };
        let previous = last.insert((actor, office, k), at.clone());
        if kind == "vote_proposed" {
            let detail: serde_json::Value = serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default();
            if let Some(vote_id) = detail["vote_id"].as_str().and_then(|v| v.parse::<i64>().ok()) {
                let batch = detail["batch"] == json!(true);
                timed
                    .entry(vote_id)
                    .or_insert_with(|| crate::domain::flags::timed_report(batch, previous.as_deref(), &at));
            }
        }
    }
    let mut set_timed = conn.prepare("UPDATE votes SET timed = live AND ?2 WHERE id = ?1")?;
    for (vote_id, t) in timed {
        set_timed.execute(params![vote_id, t])?;
    }
    let mut set_last = conn
        .prepare("UPDATE office_sources SET last_at = ?4 WHERE poll_office_id = ?1 AND kind = ?2 AND source_n = ?3")?;
    for ((actor, office, k), at) in last {
        if let Some(n) = actor.strip_prefix("source-").and_then(|n| n.parse::<i64>().ok()) {
            set_last.execute(params![office, k.as_str(), n, at])?;
        }
    }
    Ok(())
}

/// Finds in the audit log, in one pass, the entry that recorded each proposal's current
/// value (a resend's receipt), and the last status change that concerns each office
/// (`office_log`): schema version 4 on a file written before it.
pub fn replay_log_seqs(conn: &Connection) -> rusqlite::Result<()> {
    use std::collections::HashMap;
    let mut proposals: HashMap<(String, String, Kind, i64), i64> = HashMap::new();
    // Where each source had reported, by then: the offices a status change re-weighed.
    let mut joined: HashMap<String, std::collections::HashSet<(String, Kind)>> = HashMap::new();
    let mut status_changes: HashMap<(String, Kind), i64> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT seq, kind, actor, poll_office_id, json_extract(detail, '$.index'), json_extract(detail, '$.source')
           FROM audit_log
          WHERE (kind IN ('vote_proposed', 'vote_corrected', 'ballot_proposed', 'ballot_corrected')
                 AND poll_office_id IS NOT NULL)
             OR (kind = 'source_updated' AND json_extract(detail, '$.status') IS NOT NULL)
          ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (seq, kind, actor, office, idx, source): (
            i64,
            String,
            String,
            Option<String>,
            Option<i64>,
            Option<String>,
        ) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
        if kind == "source_updated" {
            for (office, k) in source.and_then(|s| joined.get(&s)).into_iter().flatten() {
                status_changes.insert((office.clone(), *k), seq);
            }
            continue;
        }
        let (Some(office), Some(idx)) = (office, idx) else { continue };
        let k = if kind.starts_with("vote_") { Kind::Vote } else { Kind::Ballot };
        joined.entry(actor.clone()).or_default().insert((office.clone(), k));
        proposals.insert((actor, office, k, idx), seq);
    }
    for ((office, k), seq) in status_changes {
        for d in k.dates() {
            let known: Option<i64> = conn
                .prepare_cached("SELECT log_seq FROM office_log WHERE poll_office_id = ?1 AND kind = ?2")?
                .query_row(params![office, d.as_str()], |r| r.get(0))
                .optional()?;
            if known.is_none_or(|s| s < seq) {
                set_office_log(conn, &office, *d, seq)?;
            }
        }
    }
    for ((actor, office, k, idx), seq) in proposals {
        let Some(n) = actor.strip_prefix("source-").and_then(|n| n.parse::<i64>().ok()) else { continue };
        let table = match k {
            Kind::Vote => "vote_proposals",
            Kind::Ballot => "ballot_proposals",
        };
        conn.prepare_cached(&format!(
            "UPDATE {table} SET log_seq = ?4 WHERE poll_office_id = ?1 AND idx = ?2 AND source_n = ?3 AND log_seq IS NULL"
        ))?
        .execute(params![office, idx, n, seq])?;
    }
    Ok(())
}

fn set_office_log(conn: &Connection, office: &str, kind: Kind, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO office_log (poll_office_id, kind, log_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (poll_office_id, kind) DO UPDATE SET log_seq = excluded.log_seq",
    )?
    .execute(params![office, kind.as_str(), seq])?;
    Ok(())
}

/// The entry `seq`, which names no office (a status change, directory rows), is the last
/// one that concerns this office's numbers of this kind: kept in `office_log`, since the
/// start-up's scan of the log finds only the entries that name their office.
pub(super) fn office_logged(
    conn: &Connection,
    office: &PollOfficeId,
    kind: Kind,
    seq: i64,
    effects: &mut Vec<Effect>,
) -> rusqlite::Result<()> {
    if crate::store::tlog::bench_off() {
        return Ok(());
    }
    for k in kind.dates() {
        set_office_log(conn, office.as_str(), *k, seq)?;
    }
    dated(office, kind, seq, effects);
    Ok(())
}

/// The entry `seq` concerns this office's numbers of this kind: the bodies it dates take
/// it as `log_seq`.
pub(super) fn dated(office: &PollOfficeId, kind: Kind, seq: i64, effects: &mut Vec<Effect>) {
    for k in kind.dates() {
        effects.push(Effect::OfficeLogged { poll_office_id: office.clone(), kind: *k, seq });
    }
}

pub use sources::load_source;
use sources::{create_source, update_source};

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
        let Outcome::Proposed { created: true, id, receipt: Some(first) } = o1 else { panic!() };
        assert_eq!(first.seq, 2);
        // The resend carries the receipt of the entry that recorded its value.
        assert_eq!(o2, Outcome::Proposed { created: false, id, receipt: Some(first) });
        assert!(e2.is_empty());
        let Outcome::Proposed { created: false, receipt: Some(corrected), .. } = o3 else { panic!() };
        assert_eq!(corrected.seq, 3);
        let (o4, _) = vote(&conn, a, 1, Gender::Female);
        assert_eq!(o4, Outcome::Proposed { created: false, id, receipt: Some(corrected) });
        // The receipt's leaf hash is the entry's canonical form as the log serves it.
        let canonical: String = conn
            .query_row("SELECT seq, at, kind, actor, poll_office_id, detail FROM audit_log WHERE seq = 3", [], |r| {
                Ok(crate::domain::audit::Entry {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    kind: r.get(2)?,
                    actor: r.get(3)?,
                    poll_office_id: r.get(4)?,
                    detail: serde_json::from_str(&r.get::<_, String>(5)?).unwrap(),
                }
                .canonical())
            })
            .unwrap();
        assert_eq!(corrected.leaf_hash, crate::domain::tlog::leaf_hash(canonical.as_bytes()));
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
        let (Outcome::Proposed { id: id2, created, .. }, e) = vote(&conn, b, 5, Gender::Female) else { panic!() };
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
        assert!(e.contains(&Effect::OfficeSources {
            poll_office_id: PollOfficeId::parse("PO-1").unwrap(),
            kind: Kind::Vote,
            counted: 1
        }));
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
        assert!(last_vote_effect(&e).verification.is_some());
        assert!(last_vote_effect(&e).decision.unwrap().disputed);
        assert!(matches!(apply(&conn, &op(v1, "h2"), now(), &mut vec![]), Err(OpError::AlreadyVerified)));
        assert!(matches!(apply(&conn, &op(v2, "h1"), now(), &mut vec![]), Err(OpError::AlreadyVerified)));
        assert!(matches!(apply(&conn, &op(999, "h3"), now(), &mut vec![]), Err(OpError::NoSuchVote)));
    }
}
