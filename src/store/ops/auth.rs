//! A successful authentication: the source (created if new), its password when first
//! given, the token (rotating the earlier ones for that office) and the audit entry.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::*;

pub(super) fn authenticate(
    conn: &Connection,
    head: &mut Head,
    now: &str,
    a: &AuthOp,
    effects: &mut Vec<Effect>,
) -> Result<Outcome, OpError> {
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
                "INSERT INTO sources (elector_id, status, password_hash, created_at, updated_at) VALUES (?1, ?4, ?2, ?3, ?3)",
            )?
            .execute(params![a.elector_id.as_str(), a.new_password_hash, now, Status::Unverified.as_str()])?;
            let n = conn.last_insert_rowid();
            append_audit(
                conn,
                head,
                effects,
                now,
                "source_created",
                &source::actor(n),
                Some(office),
                json!({"status": Status::Unverified.as_str()}),
            )?;
            effects.push(Effect::Source(SourceRow {
                n,
                status: Status::Unverified,
                full_name: None,
                official_org: None,
            }));
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
    let receipt = append_audit(
        conn,
        head,
        effects,
        now,
        "auth_succeeded",
        &source::actor(n),
        Some(office),
        json!({"expires_at": expires_at, "revoked_tokens": revoked, "password_set": password_set}),
    )?;
    effects.push(Effect::TokensRevoked { source_n: n, poll_office_id: Some(a.poll_office_id.clone()) });
    effects.push(Effect::TokenIssued(TokenRow {
        token_hash: a.token_hash.clone(),
        source_n: n,
        elector_id: a.elector_id.clone(),
        poll_office_id: a.poll_office_id.clone(),
        expires_at: a.expires_at,
    }));
    Ok(Outcome::Authenticated { created, source_n: n, status, receipt })
}
