//! Following another process's commits. The CLI writes the same file directly (same
//! operations, same audit chain); the server notices within a second: a connection of its
//! own polls `PRAGMA data_version` (it changes when another connection commits), reads the
//! audit entries it has not seen — the audit log is the change feed — and has the writer
//! reread, in the writer's own order, what the CLI's entries touched: the directory, a
//! source's name and status, its offices (after a status change, already recomputed by
//! the CLI's transaction), its tokens (after a password reset). Rereading on this thread
//! instead could overwrite what the writer committed in between with older rows.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::app::App;
use crate::store::ops::{Reload, WriteOp};
use crate::store::reads::{self, AuditRow};

const POLL: Duration = Duration::from_millis(250);

/// Starts following; the thread ends once the app is gone.
pub fn spawn(app: &Arc<App>, db: &Path) -> std::io::Result<()> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let weak = Arc::downgrade(app);
    std::thread::Builder::new().name("ufrecs-follow".into()).spawn(move || {
        if let Err(e) = run(&conn, &weak) {
            log::error!("stopped following other writers: {e}");
        }
    })?;
    Ok(())
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

fn run(conn: &Connection, app: &Weak<App>) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut version = data_version(conn)?;
    let mut seen: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM audit_log", [], |r| r.get(0))?;
    loop {
        std::thread::sleep(POLL);
        let Some(app) = app.upgrade() else { return Ok(()) };
        let now = data_version(conn)?;
        if now == version {
            continue;
        }
        let (entries, last) = reads::cli_entries_after(conn, seen)?;
        let reload = to_reload(&entries);
        if reload != Reload::default() {
            if let Err(e) = app.writer.submit_blocking(WriteOp::Reload(reload)) {
                // Tried again at the next poll.
                log::error!("could not reload what another process wrote: {e}");
                continue;
            }
        }
        version = now;
        seen = last;
    }
}

fn source_n(entry: &AuditRow) -> Option<i64> {
    entry.entry.detail["source"].as_str()?.strip_prefix("source-")?.parse().ok()
}

/// What the memory must reread after these entries of another process.
fn to_reload(entries: &[AuditRow]) -> Reload {
    let mut r = Reload::default();
    for entry in entries {
        let detail = &entry.entry.detail;
        match (entry.entry.kind.as_str(), source_n(entry)) {
            ("import", _) => r.directory = true,
            ("source_created", Some(n)) => r.sources.push(n),
            ("source_updated", Some(n)) => {
                r.sources.push(n);
                if detail.get("status").is_some() {
                    r.offices_of.push(n);
                }
                if detail.get("password_reset").is_some() {
                    r.tokens_of.push(n);
                }
            }
            _ => continue,
        }
        log::info!("following {} #{} written by another process", entry.entry.kind, entry.entry.seq);
    }
    r
}
