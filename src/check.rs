//! `ufrecs check`: is this database file sound? SQLite's integrity check; every accepted
//! value recomputed from the proposal tables equal to the stored one (the rules of
//! section 6, the same code the writer runs); the audit chain verified from its first
//! entry. The first fault found is the answer.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::domain::change::{Effect, Kind};
use crate::domain::ids::PollOfficeId;
use crate::store::ops;
use crate::store::reads;

/// `Ok(summary)` when the file is sound, `Err(first fault)` otherwise.
pub fn check(db: &Path) -> Result<String, String> {
    if !db.exists() {
        return Err(format!("no database at {}", db.display()));
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| e.to_string())?;
    // Closing never checkpoints: the WAL of a replicated file is Litestream's to reset.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(|e| e.to_string())?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| e.to_string())?;
    if integrity != "ok" {
        let one_line: String =
            integrity.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
        return Err(format!("integrity check: {}", one_line.chars().take(300).collect::<String>()));
    }
    let votes = recompute_matches(&conn)?;
    let entries: i64 = conn.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0)).map_err(|e| e.to_string())?;
    if let Some(seq) = reads::audit_first_break(&conn).map_err(|e| e.to_string())? {
        return Err(format!("the audit chain breaks at seq {seq}"));
    }
    Ok(format!("{}: ok: integrity, {votes} accepted values recomputed, {entries} audit entries chained", db.display()))
}

/// Recomputes every office's votes and ballots inside a transaction that is rolled back,
/// and compares with what is stored: one office in memory at a time (a national database
/// is checked in bounded memory), and `office_tiers` against a recount of its sources.
fn recompute_matches(conn: &Connection) -> Result<usize, String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let tx = conn.unchecked_transaction().map_err(sql)?;
    // A file of an older schema (an old backup) is checked as the server would migrate
    // it, in the transaction that is rolled back.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql)?;
    if version < crate::store::SCHEMA_VERSION {
        tx.execute_batch(crate::store::SCHEMA).map_err(sql)?;
        crate::store::migrate_steps(&tx, version).map_err(sql)?;
    }
    let tiers_differ = ops::office_tiers_mismatches(&tx).map_err(sql)?;
    if tiers_differ > 0 {
        return Err(format!("office_tiers differs from office_sources at {tiers_differ} rows"));
    }
    let offices: Vec<PollOfficeId> = conn
        .prepare("SELECT poll_office_id FROM votes UNION SELECT poll_office_id FROM ballots")
        .map_err(sql)?
        .query_map([], |r| r.get(0))
        .map_err(sql)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql)?;
    let mut checked = 0;
    for office in offices {
        let stored: Vec<Effect> = reads::office_effects(&tx, office.as_str())
            .map_err(sql)?
            .into_iter()
            .filter(|e| matches!(e, Effect::Vote(_) | Effect::Ballot(_)))
            .collect();
        let mut recomputed = Vec::new();
        ops::recompute_office(&tx, &office, Kind::Vote, &mut recomputed).map_err(sql)?;
        ops::recompute_office(&tx, &office, Kind::Ballot, &mut recomputed).map_err(sql)?;
        let key = |e: &Effect| match e {
            Effect::Vote(v) => (0, v.id),
            Effect::Ballot(b) => (1, b.id),
            _ => (2, 0),
        };
        let mut stored = stored;
        stored.sort_by_key(key);
        recomputed.sort_by_key(key);
        for (was, is) in stored.iter().zip(&recomputed) {
            if was != is {
                let what = match was {
                    Effect::Vote(v) => format!("vote {} (office {}, index {})", v.id, v.poll_office_id, v.idx),
                    Effect::Ballot(b) => format!("ballot {} (office {}, index {})", b.id, b.poll_office_id, b.idx),
                    _ => unreachable!("only votes and ballots are compared"),
                };
                return Err(format!("{what}: the stored accepted values differ from the proposals"));
            }
        }
        if stored.len() != recomputed.len() {
            return Err(format!("office {office}: rows and proposals disagree"));
        }
        checked += stored.len();
    }
    tx.rollback().map_err(sql)?;
    Ok(checked)
}
