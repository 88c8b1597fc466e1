//! SQLite storage. One file in WAL mode; `schema.sql` (embedded) is applied at every open.
//! Writes go through one connection owned by the writer thread (`writer`), which applies
//! `ops::WriteOp`s inside group-committed transactions; reads that need SQL use a pool of
//! read-only connections (`reads`). No other module touches rusqlite.

mod columns;
mod commits;
pub mod ops;
pub mod reads;
pub mod tlog;
pub mod writer;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub use commits::{first_pending_ms, last_wal_commit_ms, note_commit_ms, note_newest_entry_ms, replica_holds};
pub use ops::{apply, OpError, Outcome, WriteOp};
pub use writer::{WeakWriter, WriteError, Writer};

pub const SCHEMA: &str = include_str!("../../schema.sql");
/// Bumped when `schema.sql` changes in a way that needs a migration.
pub const SCHEMA_VERSION: i64 = 4;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the database folder {0}: {1}")]
    Folder(String, std::io::Error),
    #[error("cannot open the database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database has schema version {0}, newer than this binary's {SCHEMA_VERSION}")]
    TooNew(i64),
    #[error("cannot open the read pool: {0}")]
    Pool(#[from] r2d2::Error),
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_CACHE: usize = 128;

/// How a write connection treats the file.
#[derive(Clone, Copy, Debug)]
pub struct Durability {
    /// `synchronous=FULL` (else `NORMAL`).
    pub synchronous_full: bool,
    /// Litestream replicates the file: as its documentation asks, this connection never
    /// checkpoints the WAL (not after commits, not when it closes) and so never resets or
    /// deletes it; Litestream checkpoints once it has copied the frames. Its commits are
    /// timed for the replication lag (`last_wal_commit_ms`).
    pub replicated: bool,
}

impl Durability {
    /// Today's behaviour without replication, `synchronous=FULL` (tests and tools).
    pub const FULL: Durability = Durability { synchronous_full: true, replicated: false };
}

/// A passive checkpoint of the WAL from a connection of its own (it never blocks the
/// writer): for a replicated file whose Litestream is gone. Returns the frames copied.
pub fn checkpoint_passive(path: &Path) -> rusqlite::Result<i64> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(2))
}

/// Opens (creating if needed) the database for writing, with its pragmas and schema.
pub fn open(path: &Path, durability: Durability) -> Result<Connection, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| OpenError::Folder(dir.display().to_string(), e))?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The write path uses a few dozen statements; the default cache keeps 16.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!("journal_mode is {mode}, not wal");
    }
    conn.pragma_update(None, "synchronous", if durability.synchronous_full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if durability.replicated {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.wal_hook(Some(commits::wal_committed));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::TooNew(version));
    }
    conn.execute_batch(SCHEMA)?;
    if version < SCHEMA_VERSION {
        migrate(&conn, version)?;
    }
    Ok(conn)
}

/// What the server does at every start besides `open`: derived tables recounted from
/// their sources, and rewritten if they differ (an older binary may have written the file
/// since a newer CLI migrated it).
pub fn recount_derived(conn: &Connection) -> rusqlite::Result<()> {
    if ops::office_tiers_mismatches(conn)? == 0 {
        return Ok(());
    }
    log::warn!("office_tiers differed from office_sources: rebuilt");
    let tx = conn.unchecked_transaction()?;
    ops::rebuild_office_tiers(&tx)?;
    tx.commit()
}

/// Whether the hashing secret read at start is the one this file was written with:
/// `false` when verifications exist and the stored fingerprint is another's. Without a
/// stored one (a file from before it was kept), or without verifications (nothing hashed
/// yet), this secret's fingerprint is kept.
pub fn secret_matches(conn: &Connection, fingerprint: &str, verifications: i64) -> rusqlite::Result<bool> {
    let stored: Option<String> = conn
        .query_row("SELECT fingerprint FROM secret_fingerprints WHERE secret = 'hashing'", [], |r| r.get(0))
        .optional()?;
    match stored {
        Some(s) if s == fingerprint => Ok(true),
        Some(_) if verifications > 0 => Ok(false),
        _ => {
            conn.execute(
                "INSERT INTO secret_fingerprints (secret, fingerprint) VALUES ('hashing', ?1)
                 ON CONFLICT (secret) DO UPDATE SET fingerprint = excluded.fingerprint",
                [fingerprint],
            )?;
            Ok(true)
        }
    }
}

/// Brings a database of an older schema version up to this one, in one transaction.
fn migrate(conn: &Connection, from: i64) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    migrate_steps(&tx, from)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// The steps from schema version `from` to this one, inside the caller's transaction,
/// after `SCHEMA` was applied (`check` runs them on an old file in a transaction it rolls
/// back, so an old backup is checked as the server would open it).
pub fn migrate_steps(tx: &Connection, from: i64) -> rusqlite::Result<()> {
    if from < 2 {
        // office_tiers (version 2) is derived from office_sources and the statuses.
        ops::rebuild_office_tiers(tx)?;
    }
    if from < 3 {
        // votes.timed and office_sources.last_at (version 3): replayed from the log.
        if !has_column(tx, "office_sources", "last_at")? {
            tx.execute_batch("ALTER TABLE office_sources ADD COLUMN last_at TEXT")?;
        }
        if !has_column(tx, "votes", "timed")? {
            // A vote the log does not name keeps the rule before version 3 (observed when
            // first reported alone).
            tx.execute_batch(
                "ALTER TABLE votes ADD COLUMN timed INTEGER NOT NULL DEFAULT 0; UPDATE votes SET timed = live",
            )?;
        }
        ops::replay_report_times(tx)?;
    }
    if from < 4 {
        // Proposals' log_seq and office_log (version 4): found in the log.
        for table in ["vote_proposals", "ballot_proposals"] {
            if !has_column(tx, table, "log_seq")? {
                tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN log_seq INTEGER"))?;
            }
        }
        ops::replay_log_seqs(tx)?;
        // The directory rows the flags read, imported before the log took them.
        let now = crate::domain::time::format(chrono::Utc::now());
        ops::log_directory_snapshot(tx, &now).map_err(|e| match e {
            ops::OpError::Sql(e) => e,
            other => rusqlite::Error::InvalidColumnType(0, other.to_string(), rusqlite::types::Type::Null),
        })?;
    }
    Ok(())
}

/// Whether a table has a column (a database `schema.sql` just created has the newest ones).
fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?.exists([table, column])
}

/// An in-memory database with the schema, for unit tests of SQL.
pub fn open_in_memory() -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Why a read could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No connection, or the query failed: the database cannot be read now.
    #[error("the database cannot be read now: {0}")]
    Unavailable(String),
    /// The blocking task running the read failed.
    #[error("the read task failed: {0}")]
    Task(String),
}

/// The read-only side of the database, for the few requests that need SQL: each read runs
/// on a pooled connection, off the async runtime.
#[derive(Clone)]
pub struct Reader {
    pool: Pool,
}

impl Reader {
    pub fn new(pool: Pool) -> Self {
        Reader { pool }
    }

    pub async fn read<T, F>(&self, f: F) -> Result<T, ReadError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let result = tokio::task::spawn_blocking(move || {
            let conn = pool.get().map_err(|e| e.to_string())?;
            f(&conn).map_err(|e| e.to_string())
        })
        .await;
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ReadError::Unavailable(e)),
            Err(e) => Err(ReadError::Task(e.to_string())),
        }
    }
}

/// A pool of read-only connections to a database already opened (and so created) by `open`.
pub fn read_pool(path: &Path, size: u32) -> Result<Pool, OpenError> {
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            c.pragma_update(None, "query_only", "ON")
        });
    Ok(r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .build(manager)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_secret_is_refused_once_voters_verified() {
        let conn = open_in_memory().unwrap();
        assert!(secret_matches(&conn, "fp-a", 0).unwrap(), "the first secret is kept");
        assert!(secret_matches(&conn, "fp-a", 5).unwrap());
        assert!(!secret_matches(&conn, "fp-b", 5).unwrap(), "another one, with hashes made by the first");
        assert!(secret_matches(&conn, "fp-b", 0).unwrap(), "nothing hashed yet: the new one is kept");
        assert!(!secret_matches(&conn, "fp-a", 1).unwrap());
    }

    #[test]
    fn a_replicated_file_is_never_checkpointed_by_its_writer_and_its_commits_are_timed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ufrecs.sqlite3");
        let wal = dir.path().join("ufrecs.sqlite3-wal");
        let replicated = Durability { synchronous_full: true, replicated: true };
        let conn = open(&path, replicated).unwrap();
        let autocheckpoint: i64 = conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
        assert_eq!(autocheckpoint, 0);
        let before = last_wal_commit_ms();
        for i in 0..2_000 {
            conn.execute("INSERT INTO parties (identifier, party_name) VALUES (?1, 'x')", [format!("P{i}")]).unwrap();
        }
        assert!(last_wal_commit_ms() > before.max(0), "commits that wrote the WAL are timed");
        let frames = std::fs::metadata(&wal).unwrap().len();
        assert!(frames > 1000 * 4096, "2,000 commits and no checkpoint: the WAL holds them all ({frames} bytes)");
        drop(conn);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), frames, "closing neither checkpoints nor deletes the WAL");
        // Without replication, SQLite's own checkpoints keep the WAL small and closing removes it.
        let conn = open(&path, Durability::FULL).unwrap();
        conn.execute("INSERT INTO parties (identifier, party_name) VALUES ('Q', 'x')", []).unwrap();
        drop(conn);
        assert!(!wal.exists());
    }

    #[test]
    fn the_file_is_opened_in_wal_mode_with_its_pragmas_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ufrecs.sqlite3");
        let conn = open(&path, Durability::FULL).unwrap();
        let get = |p: &str| -> String {
            conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert_eq!(get("journal_mode"), "Text(\"wal\")");
        assert_eq!(get("foreign_keys"), "Integer(1)");
        assert_eq!(get("synchronous"), "Integer(2)", "FULL");
        assert_eq!(get("user_version"), format!("Integer({SCHEMA_VERSION})"));
        drop(conn);
        let conn = open(&path, Durability { synchronous_full: false, replicated: false }).unwrap();
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 1, "NORMAL");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        assert!(matches!(open(&path, Durability::FULL), Err(OpenError::TooNew(_))));
    }

    #[test]
    fn a_version_2_file_gets_its_report_times_replayed_from_the_log() {
        use crate::domain::ids::{ElectorId, Index, PollOfficeId};
        use crate::domain::input::{NewSource, VoteInput};
        use crate::domain::vote::{Age, Gender, VoteAttrs};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.sqlite3");
        let conn = open(&path, Durability::FULL).unwrap();
        let t0 = crate::domain::time::parse("2025-08-15T14:00:00Z").unwrap();
        let apply = |op: ops::WriteOp, secs: i64| {
            let tx = conn.unchecked_transaction().unwrap();
            ops::apply(&tx, &op, t0 + chrono::Duration::seconds(secs), &mut Vec::new()).unwrap();
            tx.commit().unwrap();
        };
        let source = NewSource {
            elector_id: ElectorId::parse("E-1").unwrap(),
            status: crate::domain::source::Status::Unverified,
            full_name: None,
            official_org: None,
            email: None,
            phone_number: None,
            password: None,
        };
        apply(ops::WriteOp::CreateSource { source, password_hash: None, actor: ops::Actor::Cli }, 0);
        let attrs = VoteAttrs { gender: Gender::Male, age: Age::Less30, has_torn: false };
        for (index, secs) in [(1, 10), (2, 11), (3, 15)] {
            let input = VoteInput { index: Index::new(index).unwrap(), attrs, observed_at: None };
            let office = PollOfficeId::parse("PO").unwrap();
            apply(ops::WriteOp::ProposeVote { source_n: 1, poll_office_id: office, input, batch: false }, secs);
        }
        let timed = |c: &Connection| -> Vec<bool> {
            c.prepare("SELECT timed FROM votes ORDER BY idx")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(timed(&conn), [true, false, true], "1 s after the last report is no passage time");
        // The same file as version 2 wrote it: no timed, no last_at.
        conn.execute_batch(
            "ALTER TABLE votes DROP COLUMN timed; ALTER TABLE office_sources DROP COLUMN last_at; PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(conn);
        let conn = open(&path, Durability::FULL).unwrap();
        assert_eq!(timed(&conn), [true, false, true], "replayed from the log");
        let last: String = conn.query_row("SELECT last_at FROM office_sources", [], |r| r.get(0)).unwrap();
        assert_eq!(last, "2025-08-15T14:00:15Z");
    }

    #[test]
    fn a_version_3_file_gets_its_receipts_and_its_status_changes_found_in_the_log() {
        use crate::domain::ids::{ElectorId, Index, PollOfficeId};
        use crate::domain::input::{NewSource, VoteInput};
        use crate::domain::source::Status;
        use crate::domain::vote::{Age, Gender, VoteAttrs};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.sqlite3");
        let conn = open(&path, Durability::FULL).unwrap();
        let t0 = crate::domain::time::parse("2025-08-15T14:00:00Z").unwrap();
        let apply = |op: ops::WriteOp| {
            let tx = conn.unchecked_transaction().unwrap();
            ops::apply(&tx, &op, t0, &mut Vec::new()).unwrap();
            tx.commit().unwrap();
        };
        let elector = ElectorId::parse("E-1").unwrap();
        let source = NewSource {
            elector_id: elector.clone(),
            status: Status::Unverified,
            full_name: None,
            official_org: None,
            email: None,
            phone_number: None,
            password: None,
        };
        apply(ops::WriteOp::CreateSource { source, password_hash: None, actor: ops::Actor::Cli });
        let attrs = VoteAttrs { gender: Gender::Male, age: Age::Less30, has_torn: false };
        let input = VoteInput { index: Index::new(1).unwrap(), attrs, observed_at: None };
        let office = PollOfficeId::parse("PO").unwrap();
        apply(ops::WriteOp::ProposeVote { source_n: 1, poll_office_id: office, input, batch: false });
        let update = ops::SourceUpdate { status: Some(Status::Official), ..Default::default() };
        apply(ops::WriteOp::UpdateSource { elector_id: elector, update, actor: ops::Actor::Cli });
        let status_seq: i64 =
            conn.query_row("SELECT seq FROM audit_log WHERE kind = 'source_updated'", [], |r| r.get(0)).unwrap();
        // The same file as version 3 wrote it.
        conn.execute_batch(
            "ALTER TABLE vote_proposals DROP COLUMN log_seq; ALTER TABLE ballot_proposals DROP COLUMN log_seq;
             DELETE FROM office_log; PRAGMA user_version = 3;",
        )
        .unwrap();
        drop(conn);
        let conn = open(&path, Durability::FULL).unwrap();
        let receipt: i64 = conn.query_row("SELECT log_seq FROM vote_proposals", [], |r| r.get(0)).unwrap();
        assert_eq!(receipt, 2, "the vote_proposed entry");
        let dated: i64 = conn
            .query_row("SELECT log_seq FROM office_log WHERE poll_office_id = 'PO' AND kind = 'vote'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(dated, status_seq, "the status change re-weighed the office");
    }

    #[test]
    fn a_version_3_directory_is_logged_once_on_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3dir.sqlite3");
        let conn = open(&path, Durability::FULL).unwrap();
        conn.execute_batch(
            "INSERT INTO poll_offices (identifier, name, voters_count) VALUES ('PO-1', 'A', 300), ('PO-2', 'B', NULL);
             ALTER TABLE vote_proposals DROP COLUMN log_seq; ALTER TABLE ballot_proposals DROP COLUMN log_seq;
             PRAGMA user_version = 3;",
        )
        .unwrap();
        drop(conn);
        let conn = open(&path, Durability::FULL).unwrap();
        let detail: String =
            conn.query_row("SELECT detail FROM audit_log WHERE kind = 'directory_rows'", [], |r| r.get(0)).unwrap();
        assert_eq!(
            detail,
            r#"{"part":1,"rows":[{"identifier":"PO-1","voters_count":300},{"identifier":"PO-2","voters_count":null}],"table":"poll_offices"}"#
        );
        let import: String =
            conn.query_row("SELECT detail FROM audit_log WHERE kind = 'import'", [], |r| r.get(0)).unwrap();
        assert!(import.contains("\"schema_upgrade\":true") && import.contains("\"parts\":1"), "{import}");
        drop(conn);
        let conn = open(&path, Durability::FULL).unwrap();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2, "once");
    }

    #[test]
    fn a_version_1_file_is_migrated_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let conn = open(&path, Durability::FULL).unwrap();
        conn.execute_batch(
            "INSERT INTO sources (n, elector_id, status, created_at, updated_at) VALUES (1, 'E', 'official', 't', 't');
             INSERT INTO office_sources (poll_office_id, kind, source_n, first_at) VALUES ('PO', 'vote', 1, 't');
             DROP TABLE office_tiers;
             INSERT INTO votes (poll_office_id, idx, first_reported_at, live) VALUES ('PO', 1, 't', 1);
             ALTER TABLE office_sources DROP COLUMN last_at;
             ALTER TABLE votes DROP COLUMN timed;
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(conn);
        let conn = open(&path, Durability::FULL).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let tier: (i64, i64) = conn
            .query_row("SELECT sources, trusted FROM office_tiers WHERE poll_office_id = 'PO'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(tier, (1, 1), "office_tiers rebuilt");
        let last: Option<String> = conn.query_row("SELECT last_at FROM office_sources", [], |r| r.get(0)).unwrap();
        assert_eq!(last, None, "last_at added, unknown for the old row");
        let timed: bool = conn.query_row("SELECT timed FROM votes", [], |r| r.get(0)).unwrap();
        assert!(timed, "a vote reported alone before version 3 keeps its observation time");
        drop(conn);
        // Opening again changes nothing.
        assert!(open(&path, Durability::FULL).is_ok());
    }
}
