//! `ufrecs check`: is this database file sound? SQLite's integrity check; every accepted
//! value recomputed from the proposal tables equal to the stored one (the rules of
//! section 6, the same code the writer runs); the audit chain verified from its first
//! entry. The first fault found is the answer.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::store::ops::{self, Effect};
use crate::store::reads;

/// `Ok(summary)` when the file is sound, `Err(first fault)` otherwise.
pub fn check(db: &Path) -> Result<String, String> {
    if !db.exists() {
        return Err(format!("no database at {}", db.display()));
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| e.to_string())?;
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
    Ok(format!("ok: integrity, {votes} accepted values recomputed, {entries} audit entries chained"))
}

/// Recomputes every vote and ballot inside a transaction that is rolled back, and
/// compares with what is stored.
fn recompute_matches(conn: &Connection) -> Result<usize, String> {
    let stored = reads::all_effects(conn).map_err(|e| e.to_string())?;
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    let mut checked = 0;
    for effect in &stored {
        let (recomputed, what) = match effect {
            Effect::Vote(v) => {
                let trusted =
                    ops::office_trusted(&tx, &v.poll_office_id, ops::Kind::Vote).map_err(|e| e.to_string())?;
                let r = ops::recompute_vote(&tx, v.id, trusted).map_err(|e| e.to_string())?;
                (Effect::Vote(r), format!("vote {} (office {}, index {})", v.id, v.poll_office_id, v.idx))
            }
            Effect::Ballot(b) => {
                let trusted =
                    ops::office_trusted(&tx, &b.poll_office_id, ops::Kind::Ballot).map_err(|e| e.to_string())?;
                let r = ops::recompute_ballot(&tx, b.id, trusted).map_err(|e| e.to_string())?;
                (Effect::Ballot(r), format!("ballot {} (office {}, index {})", b.id, b.poll_office_id, b.idx))
            }
            _ => continue,
        };
        if &recomputed != effect {
            return Err(format!("{what}: the stored accepted values differ from the proposals"));
        }
        checked += 1;
    }
    tx.rollback().map_err(|e| e.to_string())?;
    Ok(checked)
}
