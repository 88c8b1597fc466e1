//! Read queries: what the server loads at start (to rebuild its in-memory state) and the
//! few requests that need SQL (a source's password hash, audit pages).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::columns::{opt_timestamp, text, timestamp};
use super::ops::{verification_from, vote_attrs_from};
use crate::domain::audit::{self, Entry};
use crate::domain::change::{BallotRow, Effect, Kind, ProposalRow, Proposed, SourceRow, TokenRow, VoteRow};
use crate::domain::crosscheck::{self, BallotDecision, VoteDecision};
use crate::domain::directory::Directory;
use crate::domain::source::Status;
use crate::domain::vote::{Accepted, Age, Decided, Gender};

fn invalid(what: String) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what, rusqlite::types::Type::Text)
}

/// How many effects the start-up hands over at a time: a national file's million votes
/// never sit in memory as effects all at once.
const CHUNK: usize = 8192;

/// Every source, vote, ballot, each source's last proposal per office and office source
/// count, as effects handed to `each` in order, a chunk at a time: replaying them into
/// empty aggregates rebuilds what the server had in memory.
pub fn all_effects(conn: &Connection, each: &mut dyn FnMut(&[Effect])) -> rusqlite::Result<()> {
    let mut chunks = Chunks { effects: sources(conn, None)?, each };
    effects_of(conn, None, &mut chunks)?;
    chunks.flush();
    Ok(())
}

/// Effects gathered and handed on `CHUNK` at a time.
struct Chunks<'a> {
    effects: Vec<Effect>,
    each: &'a mut dyn FnMut(&[Effect]),
}

impl Chunks<'_> {
    fn push(&mut self, effect: Effect) {
        self.effects.push(effect);
        if self.effects.len() >= CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        (self.each)(&self.effects);
        self.effects.clear();
    }
}

/// Sources as the aggregates know them, in increasing `n`: all, or one.
pub fn sources(conn: &Connection, n: Option<i64>) -> rusqlite::Result<Vec<Effect>> {
    let filter = if n.is_some() { "WHERE n = ?1" } else { "WHERE ?1 IS NULL" };
    let mut stmt =
        conn.prepare_cached(&format!("SELECT n, status, full_name, official_org FROM sources {filter} ORDER BY n"))?;
    let rows = stmt.query_map([n], |r| {
        let status: String = r.get(1)?;
        Ok(Effect::Source(SourceRow {
            n: r.get(0)?,
            status: Status::parse(&status).ok_or_else(|| invalid(status))?,
            full_name: r.get(2)?,
            official_org: r.get(3)?,
        }))
    })?;
    rows.collect()
}

/// The same for one office: what another process's commit there changed.
pub fn office_effects(conn: &Connection, office: &str) -> rusqlite::Result<Vec<Effect>> {
    let mut all = Vec::new();
    let mut chunks = Chunks { effects: Vec::new(), each: &mut |chunk: &[Effect]| all.extend_from_slice(chunk) };
    effects_of(conn, Some(office), &mut chunks)?;
    chunks.flush();
    Ok(all)
}

/// `WHERE column = ?1` for one office, or a clause that keeps every row (and still binds
/// `?1`): one office's rows come through its index, never a scan of the table.
fn office_filter(office: Option<&str>, column: &str) -> String {
    match office {
        Some(_) => format!("WHERE {column} = ?1"),
        None => "WHERE ?1 IS NULL".into(),
    }
}

fn effects_of(conn: &Connection, office: Option<&str>, effects: &mut Chunks) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT v.id, v.poll_office_id, v.idx, v.first_reported_at, v.live, v.counted, v.gender, v.age, v.has_torn,
                v.disputed, v.observed_at, vv.gender, vv.age, vv.has_torn, vv.created_at, v.timed
           FROM votes v LEFT JOIN vote_verifications vv ON vv.vote_id = v.id {}",
        office_filter(office, "v.poll_office_id")
    ))?;
    let mut rows = stmt.query([office])?;
    while let Some(r) = rows.next()? {
        let counted: bool = r.get(5)?;
        let decision = if counted {
            let (gender, age) = (text(r, 6)?, text(r, 7)?);
            Some(VoteDecision {
                accepted: Accepted {
                    gender: Decided::<Gender>::parse(gender).ok_or_else(|| invalid(gender.to_owned()))?,
                    age: Decided::<Age>::parse(age).ok_or_else(|| invalid(age.to_owned()))?,
                    has_torn: r.get(8)?,
                },
                disputed: r.get(9)?,
            })
        } else {
            None
        };
        effects.push(Effect::Vote(VoteRow {
            id: r.get(0)?,
            poll_office_id: r.get(1)?,
            idx: r.get(2)?,
            first_reported_at: timestamp(r, 3)?,
            live: r.get(4)?,
            timed: r.get(15)?,
            decision,
            verification: verification_from(r, 11)?,
            observed_at: opt_timestamp(r, 10)?,
        }));
    }
    // Every proposal, which the aggregates take in keeping each source's highest index per
    // office: no sort of a national table (a GROUP BY took a second at a million votes).
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT poll_office_id, source_n, idx, gender, age, has_torn, created_at FROM vote_proposals {}",
        office_filter(office, "poll_office_id")
    ))?;
    let mut rows = stmt.query([office])?;
    while let Some(r) = rows.next()? {
        effects.push(Effect::Proposal(ProposalRow {
            poll_office_id: r.get(0)?,
            source_n: r.get(1)?,
            idx: r.get(2)?,
            reported_at: timestamp(r, 6)?,
            value: Proposed::Vote(vote_attrs_from(text(r, 3)?, text(r, 4)?, r.get(5)?)?),
        }));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT poll_office_id, source_n, idx, party_id, created_at FROM ballot_proposals {}",
        office_filter(office, "poll_office_id")
    ))?;
    let mut rows = stmt.query([office])?;
    while let Some(r) = rows.next()? {
        effects.push(Effect::Proposal(ProposalRow {
            poll_office_id: r.get(0)?,
            source_n: r.get(1)?,
            idx: r.get(2)?,
            reported_at: timestamp(r, 4)?,
            value: Proposed::Ballot(r.get(3)?),
        }));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, poll_office_id, idx, counted, party_id, disputed FROM ballots {}",
        office_filter(office, "poll_office_id")
    ))?;
    let mut rows = stmt.query([office])?;
    while let Some(r) = rows.next()? {
        let counted: bool = r.get(3)?;
        effects.push(Effect::Ballot(BallotRow {
            id: r.get(0)?,
            poll_office_id: r.get(1)?,
            idx: r.get(2)?,
            decision: counted
                .then(|| Ok::<_, rusqlite::Error>(BallotDecision { party: r.get(4)?, disputed: r.get(5)? }))
                .transpose()?,
        }));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT poll_office_id, kind, trusted, sources FROM office_tiers {}",
        office_filter(office, "poll_office_id")
    ))?;
    let mut rows = stmt.query([office])?;
    while let Some(r) = rows.next()? {
        let kind: String = r.get(1)?;
        effects.push(Effect::OfficeSources {
            poll_office_id: r.get(0)?,
            kind: if kind == "vote" { Kind::Vote } else { Kind::Ballot },
            counted: crosscheck::counted_sources(r.get(2)?, r.get(3)?),
        });
    }
    for e in office_logs(conn, office)? {
        effects.push(e);
    }
    Ok(())
}

/// The offices' `log_seq`s (`office_log`): one office's, or all (after an import by
/// another process, whose `directory_rows` entries re-date offices).
pub fn office_logs(conn: &Connection, office: Option<&str>) -> rusqlite::Result<Vec<Effect>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT poll_office_id, kind, log_seq FROM office_log {}",
        office_filter(office, "poll_office_id")
    ))?;
    let rows = stmt.query_map([office], |r| {
        let kind: String = r.get(1)?;
        Ok(Effect::OfficeLogged {
            poll_office_id: r.get(0)?,
            kind: if kind == "vote" { Kind::Vote } else { Kind::Ballot },
            seq: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Tokens not revoked (expired ones included, so they can be told apart as expired): all,
/// or one source's.
pub fn live_tokens(conn: &Connection, source_n: Option<i64>) -> rusqlite::Result<Vec<TokenRow>> {
    let filter = if source_n.is_some() { "AND t.source_n = ?1" } else { "AND ?1 IS NULL" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT t.token_hash, t.source_n, s.elector_id, t.poll_office_id, t.expires_at
           FROM tokens t JOIN sources s ON s.n = t.source_n WHERE t.revoked_at IS NULL {filter}"
    ))?;
    let rows = stmt.query_map([source_n], |r| {
        Ok(TokenRow {
            token_hash: r.get(0)?,
            source_n: r.get(1)?,
            elector_id: r.get(2)?,
            poll_office_id: r.get(3)?,
            expires_at: timestamp(r, 4)?,
        })
    })?;
    rows.collect()
}

pub fn directory(conn: &Connection) -> rusqlite::Result<Directory> {
    let mut d = Directory::default();
    let mut stmt = conn.prepare(
        "SELECT id, identifier, name, country, state, region, city, county, district, voters_count
           FROM poll_offices ORDER BY identifier",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let text = |i: usize| r.get::<_, Option<String>>(i);
        let (identifier, name, city, district): (String, String, Option<String>, Option<String>) =
            (r.get(1)?, r.get(2)?, text(6)?, text(8)?);
        let voters: Option<i64> = r.get(9)?;
        let id: i64 = r.get(0)?;
        let haystack = [Some(identifier.as_str()), Some(name.as_str()), city.as_deref(), district.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\u{1}")
            .to_lowercase();
        let row = serde_json::json!({
            "id": id, "identifier": identifier, "name": name, "country": text(3)?,
            "state": text(4)?, "region": text(5)?, "city": city, "county": text(7)?, "district": district,
            "voters_count": voters,
        });
        let row = serde_json::value::to_raw_value(&row).expect("a JSON object serializes");
        d.by_id.insert(id, identifier.clone());
        d.offices.insert(identifier, voters);
        d.office_rows.push((haystack.into_boxed_str(), row));
    }
    let mut stmt =
        conn.prepare("SELECT id, identifier, party_name, candidate_name FROM parties ORDER BY identifier")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let identifier: String = r.get(1)?;
        d.party_rows.push(serde_json::json!({
            "id": r.get::<_, i64>(0)?, "identifier": identifier,
            "party_name": r.get::<_, Option<String>>(2)?, "candidate_name": r.get::<_, Option<String>>(3)?,
        }));
        d.parties.insert(identifier);
    }
    Ok(d)
}

/// What authentication needs to know of a source.
#[derive(Clone, Debug)]
pub struct SourceAuth {
    pub n: i64,
    pub status: Status,
    pub password_hash: Option<String>,
}

pub fn source_auth(conn: &Connection, elector_id: &str) -> rusqlite::Result<Option<SourceAuth>> {
    conn.prepare_cached("SELECT n, status, password_hash FROM sources WHERE elector_id = ?1")?
        .query_row([elector_id], |r| {
            let status: String = r.get(1)?;
            Ok(SourceAuth {
                n: r.get(0)?,
                status: Status::parse(&status).ok_or_else(|| invalid(status))?,
                password_hash: r.get(2)?,
            })
        })
        .optional()
}

/// An audit entry with its stored hash.
#[derive(Clone, Debug)]
pub struct AuditRow {
    pub entry: Entry,
    pub hash: String,
}

const AUDIT_COLUMNS: &str = "seq, at, kind, actor, poll_office_id, detail, hash";

/// When the first and the newest audit entries were written.
pub fn audit_times(conn: &Connection) -> rusqlite::Result<(Option<String>, Option<String>)> {
    conn.prepare_cached(
        "SELECT (SELECT at FROM audit_log ORDER BY seq LIMIT 1), (SELECT at FROM audit_log ORDER BY seq DESC LIMIT 1)",
    )?
    .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
}

pub fn audit_head(conn: &Connection) -> rusqlite::Result<Option<AuditRow>> {
    conn.prepare_cached(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"))?
        .query_row([], audit_row)
        .optional()
}

/// Up to `limit` entries after `after`, in order.
pub fn audit_page(conn: &Connection, after: i64, limit: u32) -> rusqlite::Result<Vec<AuditRow>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"))?;
    let rows = stmt.query_map(params![after, limit], audit_row)?;
    rows.collect()
}

pub fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    let detail: String = r.get(5)?;
    Ok(AuditRow {
        entry: Entry {
            seq: r.get(0)?,
            at: r.get(1)?,
            kind: r.get(2)?,
            actor: r.get(3)?,
            poll_office_id: r.get(4)?,
            detail: serde_json::from_str(&detail).map_err(|e| invalid(e.to_string()))?,
        },
        hash: r.get(6)?,
    })
}

/// The first broken entry of the whole audit chain, if any.
pub fn audit_first_break(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let mut stmt =
        conn.prepare("SELECT seq, at, kind, actor, poll_office_id, detail, hash FROM audit_log ORDER BY seq")?;
    // Streamed: a national log holds millions of entries.
    let mut chain = audit::Chain::default();
    for row in stmt.query_map([], audit_row)? {
        let row = row?;
        if !chain.extend(&row.entry, &row.hash) {
            return Ok(Some(row.entry.seq));
        }
    }
    Ok(None)
}

pub fn count_verifications(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM vote_verifications", [], |r| r.get(0))
}

/// Every source's public display name, keyed by `elector_id` (to name S3 folders).
pub fn display_names_by_elector(conn: &Connection) -> rusqlite::Result<HashMap<String, String>> {
    let rows: Vec<(i64, String, Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT n, elector_id, full_name, official_org FROM sources")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let names = crate::domain::source::display_names(rows.iter().map(|(n, _, f, o)| (*n, f.as_deref(), o.as_deref())));
    Ok(rows.into_iter().filter_map(|(n, elector, _, _)| names.get(n).map(|name| (elector, name.to_owned()))).collect())
}

/// The offices a source reports at.
pub fn source_offices(conn: &Connection, source_n: i64) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT DISTINCT poll_office_id FROM office_sources WHERE source_n = ?1")?
        .query_map([source_n], |r| r.get(0))?
        .collect()
}

/// The seq of the last audit entry (0 when there is none).
pub fn last_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM audit_log")?.query_row([], |r| r.get(0))
}

/// The audit entries after `seq` written by the CLI (actor `cli`), and the last seq. Only
/// the CLI's are read: the server's own (tens of thousands a second under load) are not.
pub fn cli_entries_after(conn: &Connection, seq: i64) -> rusqlite::Result<(Vec<AuditRow>, i64)> {
    let last: i64 =
        conn.prepare_cached("SELECT COALESCE(MAX(seq), ?1) FROM audit_log")?.query_row([seq], |r| r.get(0))?;
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ?1 AND seq <= ?2 AND actor = 'cli' ORDER BY seq"
        ))?
        .query_map([seq, last], audit_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok((rows, last))
}

/// Whether a voter (by keyed hash) has verified a vote.
pub fn voter_has_verified(conn: &Connection, voter_hash: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM vote_verifications WHERE voter_hash = ?1)")?
        .query_row([voter_hash], |r| r.get(0))
}
