//! The transparency log at run time (section 6e): the tree over the audit entries, kept
//! up to date after each commit (a leaf hash and a few node hashes: microseconds on the
//! writer thread), a checkpoint signed at most once per `log.checkpoint_interval_ms`
//! while the log grows, and the witnesses' cosignatures served with it. The tree's full
//! tiles are written to the database with the checkpoints (derived data, rebuilt from
//! `audit_log` when missing or damaged); what is in memory is one partial tile a level.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rusqlite::Connection;

use crate::clock::Clock;
use crate::config;
use crate::domain::change::{Effect, Kind};
use crate::domain::note::{self, Checkpoint, LogKey, WitnessVerifier};
use crate::domain::time;
use crate::domain::tlog::{self, FullTile, TilePath, Tree, TreeError};
use crate::store::tlog::{self as tables, Signed, StoredCosignature, Tiles};
use crate::store::{ops::WriteOp, Pool, WeakWriter};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log key file {0}: {1}")]
    Key(String, String),
    #[error("cannot read the log: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] r2d2::Error),
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// The latest signed checkpoint, as `GET /log/checkpoint` serves it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Published {
    pub size: u64,
    pub at: String,
    /// The signed note followed by the cosignature lines gathered for it.
    pub served: String,
    /// The witnesses that cosigned it.
    pub cosigners: Vec<String>,
}

struct State {
    tree: Tree,
    /// Full tiles not yet in the database (written with the next checkpoint).
    pending: Vec<FullTile>,
}

pub struct Log {
    key: LogKey,
    witnesses: Vec<WitnessVerifier>,
    state: Mutex<State>,
    signed: RwLock<Signed>,
    published: RwLock<Arc<Published>>,
    cosignatures: Mutex<Vec<StoredCosignature>>,
    pool: Pool,
}

/// A snapshot of the tree for a read: what a proof or a tile needs.
pub struct Snapshot {
    pub tree: Tree,
    pub pending: Vec<FullTile>,
    pub checkpoint_size: u64,
}

impl Snapshot {
    pub fn tiles<'a>(&'a self, conn: &'a Connection) -> Tiles<'a> {
        Tiles { conn, pending: &self.pending }
    }
}

impl Log {
    /// Loads the tree from its tiles and the entries after them (rebuilding it from
    /// `audit_log` when the tiles are missing, damaged or do not give the last signed
    /// root), loads or creates the key, and signs a checkpoint of the log as it stands.
    /// Runs on the write connection before the writer starts. Also returns, as effects,
    /// the last entry of each office's reports found on the way (its `log_seq`).
    pub fn open(
        conn: &Connection,
        settings: &config::Log,
        pool: Pool,
        now: time::Timestamp,
    ) -> Result<(Log, Vec<Effect>), LogError> {
        let latest = tables::latest_checkpoint(conn)?;
        let key = load_key(&settings.key_file, &settings.origin, latest.is_some())?;
        if let Some(cp) = &latest {
            if note::open_checkpoint(&cp.note, key.vkey()).is_err() {
                return Err(LogError::Key(
                    settings.key_file.display().to_string(),
                    format!("does not verify checkpoint {} that this log signed: restore this log's key", cp.size),
                ));
            }
        }
        let last = tables::last_seq(conn)? as u64;
        // The tree is derived from audit_log at every start, never read back from its
        // tiles: what is served and signed is what the entries give.
        let started = std::time::Instant::now();
        // The stored tiles are compared with the rebuilt ones as the scan goes, which
        // writes nothing (another process may commit meanwhile: a write begun from the
        // scan's snapshot would fail); what differs is written after it, in one short
        // transaction.
        let mut differing = Vec::new();
        let rebuilt = rebuild(conn, last, &mut |tiles| {
            differing.extend(tables::differing_tiles(conn, tiles)?);
            Ok(())
        })?;
        let offices = rebuilt.office_effects();
        let tree = rebuilt.tree;
        let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        tables::write_tiles(&tx, &differing)?;
        let rewritten = differing.len() + tables::drop_tiles_beyond(&tx, tree.size())?;
        tx.commit()?;
        log::info!(
            "rebuilt the log's tree of {} entries from audit_log in {:.2} s",
            tree.size(),
            started.elapsed().as_secs_f64()
        );
        if rewritten > 0 {
            log::warn!("{rewritten} stored tiles of the log were missing or differed from audit_log: rewritten");
        }
        let store = Tiles { conn, pending: &[] };
        let mut forked = false;
        if let Some(cp) = &latest {
            let signed_root = note::note_body(&cp.note).ok().and_then(|b| Checkpoint::parse(b).ok()).map(|c| c.root);
            if cp.size > tree.size() {
                log::error!(
                    "the log has {} entries but checkpoint {} was signed: entries were removed from audit_log",
                    tree.size(),
                    cp.size
                );
                forked = true;
            } else if tree.root(cp.size, &store).ok() != signed_root {
                log::error!(
                    "audit_log no longer gives the root of checkpoint {} that this log signed: its history was rewritten (witnesses hold the evidence)",
                    cp.size
                );
                forked = true;
            }
        }
        let pending = Vec::new();
        let cosignatures = tables::cosignatures(conn)?;
        let witnesses = settings.witnesses.iter().filter_map(|w| WitnessVerifier::parse(w).ok()).collect();
        let signed = match latest {
            // What is served from now on is signed as it is: a witness that saw the
            // earlier checkpoint holds both.
            Some(cp) if cp.size == tree.size() && !forked => cp,
            _ => {
                let root = tree.root(tree.size(), &store)?;
                let signed = sign(&key, tree.size(), root, now);
                tables::write_checkpoint(conn, &signed)?;
                signed
            }
        };
        let log = Log {
            key,
            witnesses,
            state: Mutex::new(State { tree, pending }),
            published: RwLock::new(Arc::new(Published::default())),
            signed: RwLock::new(signed),
            cosignatures: Mutex::new(cosignatures),
            pool,
        };
        log.republish();
        Ok((log, offices))
    }

    pub fn vkey(&self) -> &str {
        self.key.vkey()
    }

    pub fn size(&self) -> u64 {
        self.state.lock().tree.size()
    }

    pub fn published(&self) -> Arc<Published> {
        self.published.read().clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state.lock();
        Snapshot { tree: state.tree.clone(), pending: state.pending.clone(), checkpoint_size: self.signed.read().size }
    }

    /// Takes in a commit's new entries (on the writer thread, after the commit). An entry
    /// past the next one means another process wrote to the file: its entries are read.
    pub fn apply(&self, effects: &[Effect]) {
        if tables::bench_off() {
            return;
        }
        for effect in effects {
            if let Effect::Logged(receipt) = effect {
                let seq = receipt.seq as u64;
                if seq > self.size() + 1 {
                    if let Err(e) = self.catch_up(seq - 1) {
                        log::error!("the transparency log cannot read entries before {seq}: {e}");
                    }
                }
                self.push(&[(receipt.seq, receipt.leaf_hash)]);
            }
        }
    }

    /// Adds leaves in order, skipping those the tree has and stopping at a gap.
    fn push(&self, leaves: &[(i64, tlog::Hash)]) {
        let mut state = self.state.lock();
        let State { tree, pending } = &mut *state;
        for (seq, leaf) in leaves {
            match (*seq as u64).cmp(&(tree.size() + 1)) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => tree.push(*leaf, pending),
                std::cmp::Ordering::Greater => break,
            }
        }
    }

    /// Reads the entries the tree lacks, up to `until` (another process's commits).
    pub fn catch_up(&self, until: u64) -> Result<(), LogError> {
        let size = self.size();
        if until <= size {
            return Ok(());
        }
        let conn = self.pool.get()?;
        let leaves = tables::leaves(&conn, size as i64, until as i64)?;
        self.push(&leaves);
        Ok(())
    }

    /// The checkpoint of the tree as it stands, if it grew since the last one, with the
    /// full tiles to write with it.
    fn prepare(&self, now: time::Timestamp) -> Result<Option<(Signed, Vec<FullTile>)>, LogError> {
        let snapshot = self.snapshot();
        if snapshot.tree.size() == snapshot.checkpoint_size {
            return Ok(None);
        }
        let conn = self.pool.get()?;
        let size = snapshot.tree.size();
        let root = snapshot.tree.root(size, &snapshot.tiles(&conn))?;
        Ok(Some((sign(&self.key, size, root, now), snapshot.pending)))
    }

    /// The checkpoint and tiles are in the database: serve it, forget the tiles.
    fn committed(&self, signed: Signed, tiles: &[FullTile]) {
        self.state.lock().pending.retain(|p| !tiles.iter().any(|t| t.level == p.level && t.n == p.n));
        *self.signed.write() = signed;
        self.republish();
    }

    fn republish(&self) {
        let signed = self.signed.read().clone();
        let cosignatures = self.cosignatures.lock();
        // Only cosignatures of this very checkpoint: one of the same size over another
        // root (a history rewritten since) no longer verifies, and is not served.
        let mine: Vec<&StoredCosignature> = cosignatures
            .iter()
            .filter(|c| c.size == signed.size)
            .filter(|c| {
                let with = format!("{}{}\n", signed.note, c.line);
                self.witnesses.iter().any(|w| w.find(&with).is_ok_and(|found| found.is_some_and(|f| f.line == c.line)))
            })
            .collect();
        let mut served = signed.note.clone();
        for c in &mine {
            served.push_str(&c.line);
            served.push('\n');
        }
        *self.published.write() = Arc::new(Published {
            size: signed.size,
            at: signed.at.clone(),
            served,
            cosigners: mine.iter().map(|c| c.witness.clone()).collect(),
        });
    }

    /// Signs a checkpoint at most once per `interval` while the log grows, until the
    /// writer is gone; with S3 configured, uploads each new full tile and the latest
    /// checkpoint under `{s3.prefix}log/` (retried at the next tick when S3 is down).
    pub fn spawn_checkpoints(
        self: &Arc<Self>,
        writer: WeakWriter,
        clock: Arc<dyn Clock>,
        interval: Duration,
        s3: Option<config::S3>,
    ) {
        if tables::bench_off() {
            return;
        }
        if let Some(s3) = s3 {
            // Its own task: a slow or unreachable S3 never holds up signing.
            let (log, writer) = (self.clone(), writer.clone());
            tokio::spawn(async move {
                let mut upload = Upload { s3, uploaded: None, failing: false };
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while writer.upgrade().is_some() {
                    ticks.tick().await;
                    upload.run(&log).await;
                }
            });
        }
        let log = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(writer) = writer.upgrade() else { return };
                let (l, now) = (log.clone(), clock.now());
                let prepared = tokio::task::spawn_blocking(move || {
                    let conn = l.pool.get()?;
                    l.catch_up(tables::last_seq(&conn)? as u64)?;
                    l.prepare(now)
                })
                .await;
                let (signed, tiles) = match prepared {
                    Ok(Ok(Some(p))) => p,
                    Ok(Ok(None)) => continue,
                    Ok(Err(e)) => {
                        log::error!("cannot sign a checkpoint: {e}");
                        continue;
                    }
                    Err(e) => {
                        log::error!("the checkpoint task failed: {e}");
                        continue;
                    }
                };
                let op = WriteOp::LogCheckpoint { signed: signed.clone(), tiles: tiles.clone() };
                if writer.record(op).await.is_ok() {
                    log.committed(signed, &tiles);
                }
            }
        });
    }
}

/// The upload of the log to the operator's bucket: what it holds, as far as known.
struct Upload {
    s3: config::S3,
    /// The size of the checkpoint the bucket holds with all full tiles below it.
    uploaded: Option<u64>,
    failing: bool,
}

impl Upload {
    fn key(&self, path: &str) -> String {
        format!("{}log/{path}", self.s3.prefix)
    }

    async fn run(&mut self, log: &Arc<Log>) {
        let published = log.published();
        if self.uploaded == Some(published.size) {
            return;
        }
        match self.upload(log, &published).await {
            Ok(()) => {
                if self.failing {
                    log::info!("the log's upload to S3 works again");
                }
                self.failing = false;
                self.uploaded = Some(published.size);
            }
            Err(e) => {
                if !self.failing {
                    log::warn!("the log's upload to S3 failed ({e}); retrying at every checkpoint");
                }
                self.failing = true;
            }
        }
    }

    async fn upload(&mut self, log: &Arc<Log>, published: &Published) -> Result<(), String> {
        let bucket = crate::s3::operator_bucket(&self.s3)?
            .with_request_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        if self.uploaded.is_none() {
            // What an earlier run uploaded: its checkpoint names the size.
            self.uploaded = Some(match bucket.get_object(self.key("checkpoint")).await {
                Ok(r) if r.status_code() == 200 => std::str::from_utf8(r.as_slice())
                    .ok()
                    .and_then(|n| note::open_checkpoint(n, log.vkey()).ok())
                    .map_or(0, |c| c.size.min(published.size)),
                _ => 0,
            });
        }
        let from = self.uploaded.unwrap_or(0);
        let new: Vec<TilePath> = crate::mirror::tiles_of(published.size)
            .into_iter()
            .filter(|t| match *t {
                TilePath::Hashes { level, n, width: None } => n >= Tree::full_tiles(from, level),
                TilePath::Entries { n, width: None } => n >= from / tlog::WIDTH,
                // The checkpoint's partial tiles (one a level and one bundle): without them
                // the bucket's copy could not be checked against its checkpoint.
                _ => true,
            })
            .collect();
        for tile in new {
            let (l, snapshot) = (log.clone(), log.snapshot());
            let data = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, LogError> {
                let conn = l.pool.get()?;
                Ok(crate::mirror::tile_data(&conn, &snapshot.tree, &snapshot.tiles(&conn), tile))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{tile} is missing"))?;
            let key = self.key(&tile.to_string());
            bucket
                .put_object_with_content_type(&key, &data, "application/octet-stream")
                .await
                .map_err(|e| format!("{key}: {}", crate::backup::upload_error(&e)))?;
        }
        let key = self.key("checkpoint");
        bucket
            .put_object_with_content_type(&key, published.served.as_bytes(), "text/plain; charset=utf-8")
            .await
            .map_err(|e| format!("{key}: {}", crate::backup::upload_error(&e)))?;
        Ok(())
    }
}

/// Why a cosignature was refused (400, nothing stored).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CosignError {
    #[error("not a checkpoint signed by this log: {0}")]
    NotOurs(String),
    #[error("this log never signed that checkpoint")]
    NeverSigned,
    #[error("no cosignature of a witness in log.witnesses")]
    UnknownWitness,
    #[error("a cosignature does not verify")]
    BadCosignature,
}

impl Log {
    /// Checks a checkpoint note posted with witnesses' cosignature lines appended: it must
    /// be a checkpoint this log signed, and carry at least one valid cosignature of a key
    /// in `log.witnesses` (any line of such a key that does not verify refuses it all).
    pub fn check_cosigned(&self, note: &str, signed: Option<Signed>) -> Result<Vec<StoredCosignature>, CosignError> {
        let checkpoint = note::open_checkpoint(note, self.vkey()).map_err(|e| CosignError::NotOurs(e.to_string()))?;
        let ours = signed.filter(|s| s.size == checkpoint.size).ok_or(CosignError::NeverSigned)?;
        if note::note_body(&ours.note).ok() != note::note_body(note).ok() {
            return Err(CosignError::NeverSigned);
        }
        let mut found = Vec::new();
        for w in &self.witnesses {
            match w.find(note) {
                Ok(Some(c)) => found.push(StoredCosignature {
                    witness: c.witness,
                    key_id: c.key_id,
                    size: checkpoint.size,
                    time: c.time,
                    line: c.line,
                }),
                Ok(None) => {}
                Err(_) => return Err(CosignError::BadCosignature),
            }
        }
        if found.is_empty() {
            return Err(CosignError::UnknownWitness);
        }
        Ok(found)
    }

    /// The size a posted note claims (to find the checkpoint it should be).
    pub fn claimed_size(note: &str) -> Option<u64> {
        note::note_body(note).ok().and_then(|b| Checkpoint::parse(b).ok()).map(|c| c.size)
    }

    /// Whether a cosignature is newer than the one this log holds for its witness key (a
    /// replayed one is accepted again without being written again).
    pub fn is_new(&self, c: &StoredCosignature) -> bool {
        let held = self.cosignatures.lock();
        held.iter()
            .find(|o| o.witness == c.witness && o.key_id == c.key_id)
            .is_none_or(|o| (c.size, c.time) > (o.size, o.time))
    }

    /// Cosignatures now stored: served with their checkpoint.
    pub fn cosigned(&self, stored: Vec<StoredCosignature>) {
        {
            let mut all = self.cosignatures.lock();
            for c in stored {
                match all.iter_mut().find(|o| o.witness == c.witness && o.key_id == c.key_id) {
                    Some(o) if (c.size, c.time) > (o.size, o.time) => *o = c,
                    Some(_) => {}
                    None => all.push(c),
                }
            }
        }
        self.republish();
    }
}

fn sign(key: &LogKey, size: u64, root: tlog::Hash, now: time::Timestamp) -> Signed {
    let note = key.sign(&Checkpoint { origin: key.name().to_owned(), size, root });
    Signed { size, at: time::format(now), note }
}

/// What the start-up reads from `audit_log` in one pass: the tree of its first `last`
/// entries with all its full tiles, and the last entry of each office's reports and
/// verifications (its `log_seq` but for status changes and directory rows: `office_log`).
pub struct Rebuilt {
    pub tree: Tree,
    pub office_seqs: std::collections::HashMap<(String, Kind), i64>,
}

impl Rebuilt {
    /// The offices' `log_seq`s found, as the aggregates take them in.
    pub fn office_effects(&self) -> Vec<Effect> {
        let stored = |o: &str| crate::domain::ids::PollOfficeId::stored(o).ok();
        self.office_seqs
            .iter()
            .filter_map(|((office, kind), seq)| {
                Some(Effect::OfficeLogged { poll_office_id: stored(office)?, kind: *kind, seq: *seq })
            })
            .collect()
    }
}

/// How many full tiles the rebuild hands over at a time (a national log's 34 MB of tiles
/// never sit in memory at once).
const TILES_AT_ONCE: usize = 64;

/// The tree of the entries up to `last`, rebuilt from `audit_log`; the full tiles go to
/// `tiles` as they complete, a few at a time.
pub fn rebuild(
    conn: &Connection,
    last: u64,
    tiles: &mut dyn FnMut(&[FullTile]) -> rusqlite::Result<()>,
) -> Result<Rebuilt, LogError> {
    let mut r = Rebuilt { tree: Tree::default(), office_seqs: Default::default() };
    let mut completed = Vec::new();
    let mut failed = None;
    tables::each_entry(conn, 0, last as i64, |e| {
        r.tree.push(tlog::leaf_hash(e.canonical.as_bytes()), &mut completed);
        if completed.len() >= TILES_AT_ONCE {
            if failed.is_none() {
                failed = tiles(&completed).err();
            }
            completed.clear();
        }
        if let Some(office) = e.poll_office_id {
            for kind in bodies_of(e.kind) {
                r.office_seqs.insert((office.to_owned(), *kind), e.seq);
            }
        }
    })?;
    match failed {
        Some(e) => Err(e.into()),
        None => {
            tiles(&completed)?;
            Ok(r)
        }
    }
}

/// The bodies whose numbers an entry naming an office concerns.
fn bodies_of(kind: &str) -> &'static [Kind] {
    match kind {
        "vote_proposed" | "vote_corrected" | "vote_verified" => Kind::dated_by_votes(),
        "ballot_proposed" | "ballot_corrected" => Kind::dated_by_ballots(),
        _ => &[],
    }
}

/// Reads the log's key, creating it (mode 0600) when missing, unless checkpoints were
/// signed: a new key would disown every checkpoint the witnesses hold.
fn load_key(path: &Path, origin: &str, signed: bool) -> Result<LogKey, LogError> {
    let err = |e: String| LogError::Key(path.display().to_string(), e);
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = LogKey::parse(&text).map_err(|e| err(e.to_string()))?;
            if key.name() != origin {
                return Err(err(format!(
                    "is the key of {:?}, not of log.origin {origin:?}: a log's origin never changes",
                    key.name()
                )));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if signed {
                return Err(err(
                    "is missing but this log has signed checkpoints: restore it from the backup (a new key would disown them)"
                        .into(),
                ));
            }
            let (key, text) = LogKey::generate(origin).map_err(|e| err(e.to_string()))?;
            crate::secret_file::create(path, &text).map_err(|e| err(e.to_string()))?;
            log::info!("generated a new log key in {}: its verifier key is {}", path.display(), key.vkey());
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start on a file another process commits to while the log's scan runs (the CLI,
    /// Litestream's own table after each checkpoint): the scan holds no write, so the
    /// start goes through.
    #[test]
    fn another_process_committing_during_the_scan_does_not_fail_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let conn = crate::store::open(&path, crate::store::Durability::FULL).unwrap();
        let (mut head, mut effects) = (None, Vec::new());
        let tx = conn.unchecked_transaction().unwrap();
        for _ in 0..2000 {
            let detail = serde_json::json!({"reason": "wrong_password"});
            let at = "2025-08-15T14:00:00Z";
            crate::store::ops::append_audit(
                &tx,
                &mut head,
                &mut effects,
                at,
                "auth_failed",
                "source-1",
                Some("PO-1"),
                detail,
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let settings = config::Log { key_file: dir.path().join("log-key"), ..Default::default() };
        let pool = crate::store::read_pool(&path, 1).unwrap();
        let now = chrono::Utc::now();
        // The first start stores the tiles and a checkpoint.
        Log::open(&conn, &settings, pool.clone(), now).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("CREATE TABLE elsewhere (n INTEGER); INSERT INTO elsewhere VALUES (0);").unwrap();
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = commits.clone();
        conn.progress_handler(
            1000,
            Some(move || {
                if other.execute("UPDATE elsewhere SET n = n + 1", []).is_ok() {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                false
            }),
        );
        let started = Log::open(&conn, &settings, pool, now);
        conn.progress_handler(0, None::<fn() -> bool>);
        assert!(commits.load(std::sync::atomic::Ordering::Relaxed) > 0, "the other process committed during the scan");
        let (log, _) = started.unwrap();
        assert_eq!(log.size(), 2000);
    }
}
