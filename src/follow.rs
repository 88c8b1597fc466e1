//! Following another process's commits. The CLI writes the same file directly (same
//! operations, same audit chain); the server notices within a second: a connection of its
//! own polls `PRAGMA data_version` (it changes when another connection commits), reads the
//! audit entries it has not seen — the audit log is the change feed — and has the writer
//! reread, in the writer's own order, what the CLI's entries touched: the directory, a
//! source's name and status, its offices (after a status change, already recomputed by
//! the CLI's transaction), its tokens (after a password reset). Rereading on this thread
//! instead could overwrite what the writer committed in between with older rows.
//!
//! A failure (the file busy during a large import, a reload the writer refused) is
//! retried with a backoff, from the same entry, and shows on `/healthz` until it passes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::metrics::Metrics;
use crate::store::ops::{Reload, WriteOp};
use crate::store::reads::{self, AuditRow};
use crate::store::{WeakWriter, Writer};

const POLL: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Starts following the commits to `db` after audit entry `seen` (read before the memory
/// was loaded, so a commit in between is reloaded, not missed): reloads go to `writer`,
/// whose sink applies them like its own commits; the thread ends once the writer is gone.
pub fn spawn(writer: WeakWriter, metrics: Arc<Metrics>, db: &Path, seen: i64) -> std::io::Result<()> {
    let mut follower = Follower { db: db.to_owned(), conn: None, version: None, seen };
    std::thread::Builder::new().name("ufrecs-follow".into()).spawn(move || {
        let mut delay = POLL;
        loop {
            std::thread::sleep(delay);
            let Some(writer) = writer.upgrade() else { return };
            let result = follower.poll(&writer);
            if let Err(e) = &result {
                if metrics.follow_ok() {
                    log::error!("cannot follow other processes' commits (retrying): {e}");
                }
                // The connection is opened again: the file may have been replaced.
                follower.conn = None;
            }
            delay = if result.is_ok() { POLL } else { (delay * 2).min(BACKOFF_MAX) };
            metrics.follow(result.is_ok());
        }
    })?;
    Ok(())
}

struct Follower {
    db: PathBuf,
    conn: Option<Connection>,
    /// `PRAGMA data_version` when last read through; `None` until the first poll, which
    /// always reads the entries after `seen`.
    version: Option<i64>,
    seen: i64,
}

impl Follower {
    fn poll(&mut self, writer: &Writer) -> Result<(), String> {
        let sql = |e: rusqlite::Error| e.to_string();
        let conn = match &mut self.conn {
            Some(c) => c,
            slot => {
                let c = Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql)?;
                c.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
                self.version = None;
                slot.insert(c)
            }
        };
        let now = conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(sql)?;
        if self.version == Some(now) {
            return Ok(());
        }
        let (entries, last) = reads::cli_entries_after(conn, self.seen).map_err(sql)?;
        let reload = to_reload(&entries);
        if reload != Reload::default() {
            writer.submit_blocking(WriteOp::Reload(reload)).map_err(|e| format!("reload refused: {e}"))?;
        }
        // Another process's commit is a commit the replica must hold too (its entries'
        // time: when that transaction began).
        if let Some(at) = entries.iter().filter_map(|e| crate::domain::time::parse(&e.entry.at)).max() {
            crate::store::note_commit_ms(at.timestamp_millis());
        }
        self.version = Some(now);
        self.seen = last;
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use parking_lot::Mutex;

    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::domain::change::Effect;
    use crate::domain::ids::ElectorId;
    use crate::domain::input::NewSource;
    use crate::domain::source::Status;
    use crate::store::ops::{Actor, SourceUpdate};

    #[test]
    fn another_processs_status_change_reaches_the_writers_sink() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("f.sqlite3");
        let mut cli = crate::store::open(&db, crate::store::Durability::FULL).unwrap();
        let elector_id = ElectorId::parse("E-1").unwrap();
        let source = NewSource {
            elector_id: elector_id.clone(),
            status: Status::Unverified,
            full_name: None,
            official_org: None,
            email: None,
            phone_number: None,
            password: None,
        };
        let create = WriteOp::CreateSource { source, password_hash: None, actor: Actor::Cli };
        crate::store::writer::apply_now(&mut cli, &create, SystemClock.now()).unwrap();
        let seen = reads::last_seq(&cli).unwrap();
        let committed: Arc<Mutex<Vec<Effect>>> = Arc::default();
        let sink = {
            let committed = committed.clone();
            Box::new(move |effects: &[Effect]| committed.lock().extend_from_slice(effects))
        };
        let metrics = Arc::new(Metrics::default());
        let (writer, handle) = Writer::start(
            crate::store::open(&db, crate::store::Durability::FULL).unwrap(),
            Arc::new(SystemClock),
            metrics.clone(),
            sink,
        );
        spawn(writer.downgrade(), metrics.clone(), &db, seen).unwrap();
        // The CLI, on the same file: a status change.
        let update = WriteOp::UpdateSource {
            elector_id,
            update: SourceUpdate { status: Some(Status::Official), ..Default::default() },
            actor: Actor::Cli,
        };
        crate::store::writer::apply_now(&mut cli, &update, SystemClock.now()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let reloaded =
            || committed.lock().iter().any(|e| matches!(e, Effect::Source(s) if s.status == Status::Official));
        while !reloaded() {
            assert!(Instant::now() < deadline, "the status change was never reloaded");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(metrics.follow_ok());
        // Dropping the last writer ends the writer thread and the follower with it.
        drop(writer);
        handle.join().unwrap();
    }
}
