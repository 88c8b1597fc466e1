//! Sources created and changed by an operator; a status change re-weighs every office
//! the source reports at.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::*;

pub(super) fn create_source(
    conn: &Connection,
    head: &mut Head,
    now: &str,
    s: &NewSource,
    password_hash: Option<&str>,
    actor: Actor,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sources WHERE elector_id = ?1)")?
        .query_row([s.elector_id.as_str()], |r| r.get(0))?;
    if exists {
        return Err(OpError::SourceExists);
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
        head,
        effects,
        now,
        "source_created",
        actor.as_str(),
        None,
        json!({"source": source::actor(n), "status": s.status.as_str(), "has_password": password_hash.is_some()}),
    )?;
    let record = load_source(conn, n)?;
    effects.push(Effect::Source(SourceRow::from(&record)));
    Ok(Outcome::Source(record))
}

pub(super) fn update_source(
    conn: &Connection,
    head: &mut Head,
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
    let (n, old_status) = found.ok_or(OpError::NoSuchSource)?;
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
        let shift = i64::from(status.is_trusted()) - i64::from(old_status.is_trusted());
        if shift != 0 {
            conn.prepare_cached(
                "UPDATE office_tiers SET trusted = trusted + ?1
                  WHERE (poll_office_id, kind) IN (SELECT poll_office_id, kind FROM office_sources WHERE source_n = ?2)",
            )?
            .execute(params![shift, n])?;
        }
        detail["status"] = json!({"old": old_status.as_str(), "new": status.as_str()});
    }
    conn.prepare_cached("UPDATE sources SET updated_at = ?1 WHERE n = ?2")?.execute(params![now, n])?;
    let receipt = append_audit(conn, head, effects, now, "source_updated", actor.as_str(), None, detail)?;
    let record = load_source(conn, n)?;
    effects.push(Effect::Source(SourceRow::from(&record)));
    if status_changed {
        let places: Vec<(PollOfficeId, String)> = conn
            .prepare_cached("SELECT poll_office_id, kind FROM office_sources WHERE source_n = ?1")?
            .query_map([n], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (office, kind) in places {
            let kind = if kind == "vote" { Kind::Vote } else { Kind::Ballot };
            let counted = recompute_office(conn, &office, kind, effects)?;
            office_logged(conn, &office, kind, receipt.seq, effects)?;
            effects.push(Effect::OfficeSources { poll_office_id: office, kind, counted });
        }
    }
    Ok(Outcome::Source(record))
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
