//! Appending to the hash-chained audit log (spec section 6c).

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::domain::audit::{self, Entry};

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
