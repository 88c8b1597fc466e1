//! Directory imports: poll offices and parties, updated by identifier.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::*;

pub(super) fn count(conn: &Connection, table: &str) -> rusqlite::Result<usize> {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
}

pub(super) fn import_poll_offices(
    conn: &Connection,
    head: &mut Head,
    now: &str,
    rows: &[OfficeRow],
    actor: Actor,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
    let before = count(conn, "poll_offices")?;
    // The rows flags read (identifier, voters_count), where new or changed, go to the log.
    let mut changed = Vec::new();
    {
        let mut old = conn.prepare_cached("SELECT voters_count FROM poll_offices WHERE identifier = ?1")?;
        for r in rows {
            let was: Option<Option<i64>> = old.query_row([r.identifier.as_str()], |x| x.get(0)).optional()?;
            if was != Some(r.voters_count) {
                changed.push(r);
            }
        }
    }
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
    drop(stmt);
    let logged = log_directory_rows(conn, head, now, &changed, actor, effects)?;
    let detail = json!({"parts": logged.parts, "rows_sha256": logged.rows_sha256});
    imported(conn, head, now, "poll_offices", (before, rows.len()), actor, detail, effects)
}

/// Schema version 4 on a file whose directory was imported before the log took its rows:
/// logs what the table holds once, as an import of every row (so that the flags of an
/// upgraded box follow from its log too).
pub fn log_directory_snapshot(conn: &Connection, now: &str) -> Result<(), OpError> {
    let rows: Vec<OfficeRow> = conn
        .prepare("SELECT identifier, voters_count FROM poll_offices ORDER BY id")?
        .query_map([], |r| {
            Ok(OfficeRow {
                identifier: r.get(0)?,
                name: String::new(),
                country: None,
                state: None,
                region: None,
                city: None,
                county: None,
                district: None,
                voters_count: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut effects = Vec::new();
    let refs: Vec<&OfficeRow> = rows.iter().collect();
    let head = &mut None;
    let logged = log_directory_rows(conn, head, now, &refs, Actor::Cli, &mut effects)?;
    let detail = json!({"parts": logged.parts, "rows_sha256": logged.rows_sha256, "schema_upgrade": true});
    imported(conn, head, now, "poll_offices", (rows.len(), rows.len()), Actor::Cli, detail, &mut effects)?;
    Ok(())
}

/// What an import logged of its rows: how many `directory_rows` entries, and the SHA-256
/// of all their rows (the canonical JSON array of them, in order).
struct Logged {
    parts: usize,
    rows_sha256: String,
}

/// Logs the offices' `identifier` and `voters_count` in `directory_rows` entries of at
/// most 64 KiB (section 6e), each office's stats then naming its entry as `log_seq`.
fn log_directory_rows(
    conn: &Connection,
    head: &mut Head,
    now: &str,
    rows: &[&OfficeRow],
    actor: Actor,
    effects: &mut Vec<Effect>,
) -> Result<Logged, OpError> {
    use crate::domain::audit;
    let items: Vec<serde_json::Value> =
        rows.iter().map(|r| json!({"identifier": r.identifier.as_str(), "voters_count": r.voters_count})).collect();
    let rows_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(audit::canonical(&serde_json::Value::Array(items.clone())).as_bytes()))
    };
    // Room for the entry's other fields within the 64 KiB.
    let parts = audit::parts(items, audit::MAX_ENTRY_BYTES - 1024);
    let mut at = 0;
    for (i, part) in parts.iter().enumerate() {
        let detail = json!({"table": "poll_offices", "part": i + 1, "rows": part});
        let receipt = append_audit(conn, head, effects, now, "directory_rows", actor.as_str(), None, detail)?;
        for r in &rows[at..at + part.len()] {
            office_logged(conn, &r.identifier, Kind::Vote, receipt.seq, effects)?;
        }
        at += part.len();
    }
    Ok(Logged { parts: parts.len(), rows_sha256 })
}

pub(super) fn import_parties(
    conn: &Connection,
    head: &mut Head,
    now: &str,
    rows: &[PartyRow],
    actor: Actor,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
    let before = count(conn, "parties")?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO parties (identifier, party_name, candidate_name) VALUES (?1, ?2, ?3)
         ON CONFLICT (identifier) DO UPDATE SET party_name = excluded.party_name, candidate_name = excluded.candidate_name",
    )?;
    for r in rows {
        stmt.execute(params![r.identifier.as_str(), r.party_name, r.candidate_name])?;
    }
    imported(conn, head, now, "parties", (before, rows.len()), actor, json!({}), effects)
}

/// Counts what an import created and updated (rows are upserted by identifier: `(rows
/// before, rows imported)`), and audits it with `more` in its detail.
#[allow(clippy::too_many_arguments)]
fn imported(
    conn: &Connection,
    head: &mut Head,
    now: &str,
    table: &str,
    (before, rows): (usize, usize),
    actor: Actor,
    more: serde_json::Value,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
    let created = count(conn, table)? - before;
    let updated = rows - created;
    let mut detail = json!({"table": table, "created": created, "updated": updated});
    for (k, v) in more.as_object().into_iter().flatten() {
        detail[k] = v.clone();
    }
    append_audit(conn, head, effects, now, "import", actor.as_str(), None, detail)?;
    Ok(Outcome::Imported { created, updated })
}
