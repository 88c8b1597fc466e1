//! What the writer remembers of rows it read or wrote, so that a vote does not read them
//! again: the audit log's head (every entry reads it) and the offices' trust tiers (every
//! proposal reads its office's twice). The tables stay the truth, and the memory is only a
//! copy of them. It holds while no other connection commits (`PRAGMA data_version`,
//! checked when each transaction begins), and is forgotten when an operation or a
//! commit fails. It is also forgotten when an operation changes tiers in bulk (a status
//! change, a reload). A fresh `Cache` knows nothing and reads everything, so the CLI's
//! operations use one each.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::domain::change::Kind;
use crate::domain::ids::PollOfficeId;

/// The most offices' tiers kept: past it the map starts again empty (one read each).
const MAX_TIERS: usize = 4096;

/// The last entry of the audit log: `(seq, hash)`.
pub type Head = Option<(i64, String)>;

#[derive(Default)]
pub struct Cache {
    /// `PRAGMA data_version` when the memory was last checked; `None` before.
    data_version: Option<i64>,
    /// The audit log's head, when known.
    pub(super) head: Head,
    /// `(sources, trusted)` of `office_tiers`, by office and kind.
    tiers: HashMap<(PollOfficeId, Kind), (u32, u32)>,
}

impl Cache {
    /// At the start of a transaction: forgets everything if another connection committed
    /// since the last check.
    pub fn begin(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.data_version != Some(version) {
            self.forget();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// Forgets everything (an operation rolled back, a commit failed).
    pub fn forget(&mut self) {
        self.head = None;
        self.tiers.clear();
    }

    /// Forgets the tiers (an operation rewrote some of them in SQL).
    pub(super) fn forget_tiers(&mut self) {
        self.tiers.clear();
    }

    pub(super) fn tier(&self, office: &PollOfficeId, kind: Kind) -> Option<(u32, u32)> {
        self.tiers.get(&(office.clone(), kind)).copied()
    }

    pub(super) fn keep_tier(&mut self, office: &PollOfficeId, kind: Kind, tier: (u32, u32)) {
        if self.tiers.len() >= MAX_TIERS {
            self.tiers.clear();
        }
        self.tiers.insert((office.clone(), kind), tier);
    }

    /// The tier of this office changed in SQL (a source joined it).
    pub(super) fn forget_tier(&mut self, office: &PollOfficeId, kind: Kind) {
        self.tiers.remove(&(office.clone(), kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_connection_committing_makes_the_writer_forget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let ours = Connection::open(&path).unwrap();
        ours.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x)").unwrap();
        let theirs = Connection::open(&path).unwrap();
        let office = PollOfficeId::parse("PO-1").unwrap();
        let mut cache = Cache::default();
        cache.begin(&ours).unwrap();
        cache.head = Some((7, "h".into()));
        cache.keep_tier(&office, Kind::Vote, (2, 1));
        // Our own commits keep the memory.
        ours.execute("INSERT INTO t VALUES (1)", []).unwrap();
        cache.begin(&ours).unwrap();
        assert_eq!((cache.head.clone(), cache.tier(&office, Kind::Vote)), (Some((7, "h".into())), Some((2, 1))));
        // Another connection's commit makes it forget.
        theirs.execute("INSERT INTO t VALUES (2)", []).unwrap();
        cache.begin(&ours).unwrap();
        assert_eq!((cache.head.clone(), cache.tier(&office, Kind::Vote)), (None, None));
    }

    #[test]
    fn the_tiers_kept_are_bounded() {
        let mut cache = Cache::default();
        for i in 0..MAX_TIERS * 3 {
            cache.keep_tier(&PollOfficeId::parse(&format!("PO-{i}")).unwrap(), Kind::Ballot, (1, 0));
        }
        assert!(cache.tiers.len() <= MAX_TIERS);
    }
}
