//! The transparency log's tables (section 6e): full hash tiles, signed checkpoints and
//! witnesses' cosignatures, and the entries read back as the tree's leaves.

use rusqlite::{params, Connection, OptionalExtension};

use super::columns::{opt_text, text};
use crate::domain::audit::Fields;
use crate::domain::tlog::{self, FullTile, Hash, TileStore};

/// For the benchmark only (`bench/http` measures durable votes with the transparency log
/// on and off in one run): `UFRECS_BENCH_LOG_OFF=1` in the server's environment stops
/// everything section 6e adds to the write path (leaf hashes, `office_log`, the tree,
/// checkpoints). Not a setting: a box always runs its log.
pub fn bench_off() -> bool {
    static OFF: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var("UFRECS_BENCH_LOG_OFF").is_ok_and(|v| v == "1"));
    *OFF
}

/// The full tiles as the database holds them, and those not yet written (`pending`).
pub struct Tiles<'a> {
    pub conn: &'a Connection,
    pub pending: &'a [FullTile],
}

impl TileStore for Tiles<'_> {
    fn full_tile(&self, level: u8, n: u64) -> Option<Vec<u8>> {
        if let Some(t) = self.pending.iter().find(|t| t.level == level && t.n == n) {
            return Some(t.data.clone());
        }
        self.conn
            .prepare_cached("SELECT hashes FROM log_tiles WHERE level = ?1 AND n = ?2")
            .and_then(|mut s| s.query_row(params![level, n as i64], |r| r.get(0)).optional())
            .ok()
            .flatten()
    }
}

pub fn write_tiles(conn: &Connection, tiles: &[FullTile]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("INSERT OR REPLACE INTO log_tiles (level, n, hashes) VALUES (?1, ?2, ?3)")?;
    for t in tiles {
        stmt.execute(params![t.level, t.n as i64, t.data])?;
    }
    Ok(())
}

/// The tiles of `tiles` (rebuilt from `audit_log`) that are stored differently or not at
/// all: read only, so the start-up's scan never holds a write.
pub fn differing_tiles(conn: &Connection, tiles: &[FullTile]) -> rusqlite::Result<Vec<FullTile>> {
    let mut read = conn.prepare_cached("SELECT hashes FROM log_tiles WHERE level = ?1 AND n = ?2")?;
    let mut differing = Vec::new();
    for t in tiles {
        let stored: Option<Vec<u8>> = read.query_row(params![t.level, t.n as i64], |r| r.get(0)).optional()?;
        if stored.as_deref() != Some(t.data.as_slice()) {
            differing.push(t.clone());
        }
    }
    Ok(differing)
}

/// Deletes the stored tiles a tree of `size` leaves does not have (left by entries that
/// were removed from `audit_log`); how many.
pub fn drop_tiles_beyond(conn: &Connection, size: u64) -> rusqlite::Result<usize> {
    let levels: Vec<u8> = conn
        .prepare("SELECT DISTINCT level FROM log_tiles")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut deleted = 0;
    let mut delete = conn.prepare("DELETE FROM log_tiles WHERE level = ?1 AND n >= ?2")?;
    for level in levels {
        deleted += delete.execute(params![level, crate::domain::tlog::Tree::full_tiles(size, level) as i64])?;
    }
    Ok(deleted)
}

/// An entry as the tree and the start-up read it.
pub struct Leaf<'a> {
    pub seq: i64,
    pub kind: &'a str,
    pub poll_office_id: Option<&'a str>,
    /// The canonical form: the leaf's data.
    pub canonical: &'a str,
}

/// The entries after `after` (seq), up to `until` included, in order, streamed (a
/// national log is rebuilt in constant memory).
pub fn each_entry(conn: &Connection, after: i64, until: i64, mut each: impl FnMut(Leaf)) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, kind, actor, poll_office_id, detail FROM audit_log WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
    )?;
    let mut rows = stmt.query(params![after, until])?;
    // The columns are read in place and the canonical form written into one buffer: no
    // allocation per entry.
    let mut canonical = String::new();
    while let Some(r) = rows.next()? {
        let fields = Fields {
            seq: r.get(0)?,
            at: text(r, 1)?,
            kind: text(r, 2)?,
            actor: text(r, 3)?,
            poll_office_id: opt_text(r, 4)?,
            detail: text(r, 5)?,
        };
        canonical.clear();
        fields.write_canonical(&mut canonical);
        each(Leaf { seq: fields.seq, kind: fields.kind, poll_office_id: fields.poll_office_id, canonical: &canonical });
    }
    Ok(())
}

/// The leaf hashes of the entries after `after`, up to `until`.
pub fn leaves(conn: &Connection, after: i64, until: i64) -> rusqlite::Result<Vec<(i64, Hash)>> {
    let mut out = Vec::new();
    each_entry(conn, after, until, |e| out.push((e.seq, tlog::leaf_hash(e.canonical.as_bytes()))))?;
    Ok(out)
}

/// The canonical forms of the entries after `after`, up to `until`: a bundle's entries.
pub fn entries(conn: &Connection, after: i64, until: i64) -> rusqlite::Result<Vec<String>> {
    let mut out = Vec::new();
    each_entry(conn, after, until, |e| out.push(e.canonical.to_owned()))?;
    Ok(out)
}

/// The last seq of the log (0 when empty).
pub fn last_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM audit_log", [], |r| r.get(0))
}

/// A checkpoint the log signed: its size and its note.
#[derive(Clone, Debug, PartialEq)]
pub struct Signed {
    pub size: u64,
    pub at: String,
    pub note: String,
}

pub fn latest_checkpoint(conn: &Connection) -> rusqlite::Result<Option<Signed>> {
    conn.prepare_cached("SELECT size, at, note FROM log_checkpoints ORDER BY size DESC LIMIT 1")?
        .query_row([], |r| Ok(Signed { size: r.get::<_, i64>(0)? as u64, at: r.get(1)?, note: r.get(2)? }))
        .optional()
}

pub fn checkpoint(conn: &Connection, size: u64) -> rusqlite::Result<Option<Signed>> {
    conn.prepare_cached("SELECT size, at, note FROM log_checkpoints WHERE size = ?1")?
        .query_row([size as i64], |r| Ok(Signed { size: r.get::<_, i64>(0)? as u64, at: r.get(1)?, note: r.get(2)? }))
        .optional()
}

pub fn write_checkpoint(conn: &Connection, signed: &Signed) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO log_checkpoints (size, at, note) VALUES (?1, ?2, ?3)")?
        .execute(params![signed.size as i64, signed.at, signed.note])?;
    Ok(())
}

/// A witness's cosignature as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCosignature {
    pub witness: String,
    pub key_id: u32,
    pub size: u64,
    pub time: u64,
    pub line: String,
}

/// Keeps a witness's cosignature unless it already has one for a larger checkpoint.
pub fn write_cosignature(conn: &Connection, c: &StoredCosignature, at: &str) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO log_cosignatures (witness, key_id, size, time, line, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (witness, key_id) DO UPDATE SET size = excluded.size, time = excluded.time,
                line = excluded.line, at = excluded.at
             WHERE excluded.size > log_cosignatures.size
                OR (excluded.size = log_cosignatures.size AND excluded.time > log_cosignatures.time)",
        )?
        .execute(params![c.witness, c.key_id, c.size as i64, c.time as i64, c.line, at])?;
    Ok(n > 0)
}

pub fn cosignatures(conn: &Connection) -> rusqlite::Result<Vec<StoredCosignature>> {
    conn.prepare_cached("SELECT witness, key_id, size, time, line FROM log_cosignatures ORDER BY witness, key_id")?
        .query_map([], |r| {
            Ok(StoredCosignature {
                witness: r.get(0)?,
                key_id: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                time: r.get::<_, i64>(3)? as u64,
                line: r.get(4)?,
            })
        })?
        .collect()
}
