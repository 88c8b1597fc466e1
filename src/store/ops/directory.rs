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

pub(super) fn import_parties(
    conn: &Connection,
    now: &str,
    rows: &[PartyRow],
    actor: Actor,
) -> Result<Outcome, OpError> {
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
