//! Directory imports: poll offices and parties, updated by identifier.

use rusqlite::{params, Connection};
use serde_json::json;

use super::*;

pub(super) fn count(conn: &Connection, table: &str) -> rusqlite::Result<usize> {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
}

pub(super) fn import_poll_offices(
    conn: &Connection,
    now: &str,
    rows: &[OfficeRow],
    actor: Actor,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
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
    imported(conn, now, "poll_offices", before, rows.len(), actor, effects)
}

pub(super) fn import_parties(
    conn: &Connection,
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
    imported(conn, now, "parties", before, rows.len(), actor, effects)
}

/// Counts what an import created and updated (rows are upserted by identifier), and
/// audits it.
fn imported(
    conn: &Connection,
    now: &str,
    table: &str,
    before: usize,
    rows: usize,
    actor: Actor,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
    let created = count(conn, table)? - before;
    let updated = rows - created;
    append_audit(
        conn,
        effects,
        now,
        "import",
        actor.as_str(),
        None,
        json!({"table": table, "created": created, "updated": updated}),
    )?;
    Ok(Outcome::Imported { created, updated })
}
