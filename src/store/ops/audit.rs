//! Appending to the hash-chained audit log (spec section 6c), whose entries are the
//! transparency log's leaves (6e): each append reports its receipt as an effect, for the
//! tree kept in memory after the commit.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::domain::audit::{self, Entry};
use crate::domain::change::{Effect, Receipt};
use crate::domain::tlog;

/// Appends an entry after `head` (the log's last entry, read when not known), which then
/// becomes this entry.
#[allow(clippy::too_many_arguments)]
pub fn append_audit(
    conn: &Connection,
    head: &mut super::cache::Head,
    effects: &mut Vec<Effect>,
    at: &str,
    kind: &str,
    actor: &str,
    poll_office_id: Option<&str>,
    detail: Value,
) -> rusqlite::Result<Receipt> {
    let known = match head.take() {
        Some(known) => Some(known),
        None => conn
            .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    };
    let (seq, prev) = known.unwrap_or((0, audit::GENESIS.to_owned()));
    let entry = Entry {
        seq: seq + 1,
        at: at.to_owned(),
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        poll_office_id: poll_office_id.map(str::to_owned),
        detail,
    };
    let detail = audit::canonical(&entry.detail);
    let canonical = entry.canonical_with_detail(&detail);
    if canonical.len() > audit::MAX_ENTRY_BYTES {
        // A bug of the caller: entries are built within the tiles' limit (section 6e).
        let too_big = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG);
        return Err(rusqlite::Error::SqliteFailure(
            too_big,
            Some(format!("a {kind} entry of {} bytes", canonical.len())),
        ));
    }
    let hash = audit::chain_hash(&prev, &canonical);
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at, kind, actor, poll_office_id, detail, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![entry.seq, entry.at, entry.kind, entry.actor, entry.poll_office_id, detail, hash])?;
    *head = Some((entry.seq, hash));
    if crate::store::tlog::bench_off() {
        return Ok(Receipt { seq: entry.seq, leaf_hash: tlog::EMPTY_HASH });
    }
    let receipt = Receipt { seq: entry.seq, leaf_hash: tlog::leaf_hash(canonical.as_bytes()) };
    effects.push(Effect::Logged(receipt));
    Ok(receipt)
}

/// The receipt of an entry already in the log (a resend's).
pub fn receipt_of(conn: &Connection, seq: i64) -> rusqlite::Result<Receipt> {
    let entry = conn
        .prepare_cached("SELECT seq, at, kind, actor, poll_office_id, detail FROM audit_log WHERE seq = ?1")?
        .query_row([seq], |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, String>(5)?))
        })?;
    let (seq, at, kind, actor, poll_office_id, detail) = entry;
    let entry = Entry { seq, at, kind, actor, poll_office_id, detail: Value::Null };
    Ok(Receipt { seq, leaf_hash: tlog::leaf_hash(entry.canonical_with_detail(&detail).as_bytes()) })
}
