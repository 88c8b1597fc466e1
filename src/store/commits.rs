//! When this process's commits happened, for the replication lag (section 10): SQLite's
//! WAL hook on a replicated write connection times each commit that wrote to the WAL, and
//! the monitor (`crate::replication`) says when the replica holds them. SQLite's hook takes
//! a plain function, so these are the process's one such clock: a process has one write
//! connection to its database.

use std::sync::atomic::{AtomicI64, Ordering};

/// When (ms since the epoch, the system clock) this process last committed a transaction
/// that wrote to the WAL through a replicated connection; 0 before the first.
static LAST_WAL_COMMIT_MS: AtomicI64 = AtomicI64::new(0);
/// The first such commit since the replica was last seen to hold every commit; 0 if none.
static FIRST_PENDING_MS: AtomicI64 = AtomicI64::new(0);

pub fn last_wal_commit_ms() -> i64 {
    LAST_WAL_COMMIT_MS.load(Ordering::Relaxed)
}

/// The first commit the replica may lack (see `replica_holds`); 0 if none.
pub fn first_pending_ms() -> i64 {
    FIRST_PENDING_MS.load(Ordering::Relaxed)
}

/// A commit at `ms` (the WAL hook's, or another process's).
pub fn note_commit_ms(ms: i64) {
    LAST_WAL_COMMIT_MS.fetch_max(ms, Ordering::Relaxed);
    let _ = FIRST_PENDING_MS.compare_exchange(0, ms, Ordering::Relaxed, Ordering::Relaxed);
}

/// The file's newest entry, at start: a commit the replica may lack, with older ones.
pub fn note_newest_entry_ms(ms: i64) {
    LAST_WAL_COMMIT_MS.fetch_max(ms, Ordering::Relaxed);
}

/// The replica holds every transaction up to `ms`: if that is every commit, none is
/// pending any more (a commit racing this is pending again).
pub fn replica_holds(ms: i64) {
    if last_wal_commit_ms() <= ms {
        FIRST_PENDING_MS.store(0, Ordering::Relaxed);
        let last = last_wal_commit_ms();
        if last > ms {
            let _ = FIRST_PENDING_MS.compare_exchange(0, last, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// Called by SQLite after each commit that appended frames to the WAL. Registering it
/// also turns SQLite's automatic checkpoints off (they are the default WAL hook).
pub(super) fn wal_committed(_: &rusqlite::hooks::Wal, _frames: std::os::raw::c_int) -> rusqlite::Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    note_commit_ms(now);
    Ok(())
}
