//! Following another process's commits. The CLI writes the same file directly (same
//! operations, same audit chain); the server notices within a second: a connection of its
//! own polls `PRAGMA data_version` (it changes when another connection commits), reads the
//! audit entries it has not seen — the audit log is the change feed — and reloads what the
//! CLI's entries touched: the directory, a source's name and status, its offices (after a
//! status change, already recomputed by the CLI's transaction), its tokens (after a
//! password reset).

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::app::App;
use crate::store::ops::Effect;
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
        version = now;
        let (entries, last) = reads::cli_entries_after(conn, seen)?;
        seen = last;
        for entry in entries {
            follow(conn, &app, &entry)?;
        }
    }
}

fn source_n(entry: &AuditRow) -> Option<i64> {
    entry.entry.detail["source"].as_str()?.strip_prefix("source-")?.parse().ok()
}

fn follow(conn: &Connection, app: &App, entry: &AuditRow) -> rusqlite::Result<()> {
    let detail = &entry.entry.detail;
    match entry.entry.kind.as_str() {
        "import" => {
            let directory = reads::directory(conn)?;
            app.stats.set_directory(&directory);
            *app.directory.write() = directory;
        }
        "source_created" => {
            let Some(n) = source_n(entry) else { return Ok(()) };
            app.stats.apply(&reads::sources(conn, Some(n))?);
        }
        "source_updated" => {
            let Some(n) = source_n(entry) else { return Ok(()) };
            app.stats.apply(&reads::sources(conn, Some(n))?);
            if detail.get("status").is_some() {
                for office in reads::source_offices(conn, n)? {
                    app.stats.apply(&reads::office_effects(conn, &office)?);
                }
            }
            if detail.get("password_reset").is_some() {
                app.tokens.apply(&[Effect::TokensRevoked { source_n: n, poll_office_id: None }]);
            }
        }
        _ => {}
    }
    log::info!("followed {} #{} written by another process", entry.entry.kind, entry.entry.seq);
    Ok(())
}
