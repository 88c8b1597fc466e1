//! `ufrecs witness`: what an observer organisation, a newsroom or a party runs on its own
//! machine against a box it does not control (section 6e). Each pass fetches the log's
//! checkpoint, checks its signature against the pinned key, downloads every new entry,
//! rebuilds the tree and the 6c chain from them (keeping a verified mirror of the public
//! log in the state folder, in the C2SP layout), checks that the new checkpoint extends
//! the last one it verified, then cosigns it (C2SP `cosignature/v1`) and, with
//! `--submit`, posts the cosignature to the log. On any inconsistency it stops, writes
//! the evidence to `evidence-<time>/` and exits with status 3.
//!
//! It is a client: it reads the log over HTTP only, never the box's files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::audit;
use crate::domain::evidence::{self, LeafProof, Proof, Verdict};
use crate::domain::note::{self, Checkpoint, WitnessKey};
use crate::domain::tlog::{self, MemoryTiles, TilePath, Tree};
use crate::mirror::{self, Mirror};

/// Exit status of a pass that found the log inconsistent.
pub const INCONSISTENT: i32 = 3;

pub struct Options {
    pub log: String,
    pub vkey: String,
    pub key: PathBuf,
    pub state: PathBuf,
    pub every: Option<u64>,
    pub submit: bool,
}

/// `ufrecs witness keygen`: a new witness key in `key` (mode 0600); returns its verifier key.
pub fn keygen(name: &str, key: &Path) -> Result<String, String> {
    let (w, text) =
        WitnessKey::generate(name).map_err(|_| format!("{name:?} is not a key name (no spaces, no '+')"))?;
    crate::secret_file::create(key, &text).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok(w.vkey())
}

/// `ufrecs witness verify-evidence`: 0 when the evidence proves misbehaviour by the
/// holder of `vkey`, 1 otherwise.
pub fn verify_evidence(vkey: &str, dir: &Path) -> i32 {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let proof: Proof = match serde_json::from_str(&read("proof.json")) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ufrecs: {}: no readable proof.json: {e}", dir.display());
            return 1;
        }
    };
    match evidence::judge(vkey.trim(), &read("old.checkpoint"), &read("new.checkpoint"), &proof) {
        Verdict::Misbehaviour(m) => {
            println!("proven: {m}");
            0
        }
        Verdict::NotProven(m) => {
            println!("not proven: {m}");
            1
        }
    }
}

/// `ufrecs witness --log URL …`: one pass, or one every `--every` seconds.
pub fn run(opts: Options) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ufrecs: cannot start the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async {
        let key = match std::fs::read_to_string(&opts.key)
            .map_err(|e| e.to_string())
            .and_then(|t| WitnessKey::parse(&t).map_err(|e| e.to_string()))
        {
            Ok(k) => k,
            Err(e) => {
                eprintln!("ufrecs: witness key {}: {e}", opts.key.display());
                return 1;
            }
        };
        let witness = Witness {
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("an HTTP client"),
            base: opts.log.trim_end_matches('/').to_owned(),
            vkey: opts.vkey.trim().to_owned(),
            key,
            mirror: Mirror::new(&opts.state),
            state: opts.state.clone(),
            submit: opts.submit,
        };
        loop {
            match witness.pass().await {
                Ok(said) => println!("{said}"),
                Err(PassError::Inconsistent(dir)) => {
                    eprintln!("ufrecs: THE LOG IS INCONSISTENT: evidence in {} (no more cosignatures)", dir.display());
                    return INCONSISTENT;
                }
                Err(PassError::Failed(e)) => {
                    eprintln!("ufrecs: witness pass failed: {e}");
                    if opts.every.is_none() {
                        return 1;
                    }
                }
            }
            match opts.every {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs.max(1))).await,
                None => return 0,
            }
        }
    })
}

enum PassError {
    Inconsistent(PathBuf),
    Failed(String),
}

impl From<String> for PassError {
    fn from(e: String) -> Self {
        PassError::Failed(e)
    }
}

struct Witness {
    http: reqwest::Client,
    base: String,
    vkey: String,
    key: WitnessKey,
    mirror: Mirror,
    state: PathBuf,
    submit: bool,
}

impl Witness {
    async fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}{path}", self.base);
        let res = self.http.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("GET {url}: {}", res.status()));
        }
        Ok(res.bytes().await.map_err(|e| format!("GET {url}: {e}"))?.to_vec())
    }

    /// The entries `from..to` (0-based, `to` excluded) as the log's bundles serve them.
    async fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        let mut n = from / tlog::WIDTH;
        while n * tlog::WIDTH < to {
            let width = (to - n * tlog::WIDTH).min(tlog::WIDTH);
            let tile = TilePath::Entries { n, width: (width < tlog::WIDTH).then_some(width) };
            let data = self.get(&format!("/log/{tile}")).await?;
            let entries = tlog::unbundle(&data).ok_or_else(|| format!("{tile} is truncated"))?;
            if entries.len() as u64 != width {
                return Err(format!("{tile} holds {} entries, not {width}", entries.len()));
            }
            let skip = from.saturating_sub(n * tlog::WIDTH) as usize;
            out.extend(entries.into_iter().skip(skip).map(<[u8]>::to_vec));
            n += 1;
        }
        Ok(out)
    }

    /// The tree this witness verified, from its mirror.
    fn local_tree(&self, size: u64) -> Result<Tree, String> {
        let full = size / tlog::WIDTH;
        let mut tree = Tree::resume(full * tlog::WIDTH, &self.mirror).map_err(|e| format!("the state folder: {e}"))?;
        if size % tlog::WIDTH != 0 {
            let tile = TilePath::Entries { n: full, width: Some(size % tlog::WIDTH) };
            let data = self.mirror.read(tile).ok_or_else(|| format!("the state folder lacks {tile}"))?;
            for e in tlog::unbundle(&data).ok_or("the state folder's bundle is truncated")? {
                tree.push(tlog::leaf_hash(e), &mut Vec::new());
            }
        }
        Ok(tree)
    }

    async fn pass(&self) -> Result<String, PassError> {
        std::fs::create_dir_all(&self.state).map_err(|e| format!("{}: {e}", self.state.display()))?;
        let served = String::from_utf8(self.get("/log/checkpoint").await?)
            .map_err(|_| "the checkpoint is not UTF-8".to_owned())?;
        let old_note = self.mirror.checkpoint();
        let new = match note::open_checkpoint(&served, &self.vkey) {
            Ok(c) => c,
            Err(e) => {
                let proof = Proof::BadSignature { error: e.to_string() };
                return Err(PassError::Inconsistent(self.evidence(old_note.as_deref(), &served, &proof)?));
            }
        };
        let old = match &old_note {
            Some(n) => {
                Some(note::open_checkpoint(n, &self.vkey).map_err(|e| format!("the state folder's checkpoint: {e}"))?)
            }
            None => None,
        };
        let have = old.as_ref().map_or(0, |c| c.size);
        let mut tree = self.local_tree(have)?;
        if new.size < have {
            if tree.root(new.size, &self.mirror).ok() != Some(new.root) {
                return Err(PassError::Inconsistent(
                    self.fork(old_note.as_deref(), old.as_ref(), &served, &new).await?,
                ));
            }
            return Ok(format!("the log served checkpoint {} (already verified up to {have})", new.size));
        }
        if new.size == have && old.as_ref().is_some_and(|o| o.root != new.root) {
            return Err(PassError::Inconsistent(self.evidence(old_note.as_deref(), &served, &Proof::SameSize)?));
        }
        let entries = self.entries(have, new.size).await?;
        let mut completed = Vec::new();
        for e in &entries {
            tree.push(tlog::leaf_hash(e), &mut completed);
        }
        let mut store = MemoryTiles::default();
        store.keep(completed.clone());
        let both = Both { first: &store, second: &self.mirror };
        if tree.root(new.size, &both).ok() != Some(new.root) {
            return Err(PassError::Inconsistent(self.fork(old_note.as_deref(), old.as_ref(), &served, &new).await?));
        }
        self.check_chain(have, &entries, &served).await?;
        self.save(&tree, &both, &completed, have, &entries, &served)?;
        let line = self.key.cosign(note::note_body(&served).map_err(|e| e.to_string())?, unix_now());
        // The note as served, without an earlier line of this witness's own, then its line.
        let own = format!("— {} ", self.key.name());
        let kept: String = served.split_inclusive('\n').filter(|l| !l.starts_with(&own)).collect();
        let cosigned = format!("{kept}{line}");
        self.mirror.write_file("cosigned.checkpoint", cosigned.as_bytes()).map_err(|e| e.to_string())?;
        let mut said =
            format!("verified {} entries ({} new); cosigned as {}", new.size, entries.len(), self.key.name());
        if self.submit {
            let url = format!("{}/log/cosignature", self.base);
            let res = self.http.post(&url).body(cosigned).send().await.map_err(|e| format!("POST {url}: {e}"))?;
            if res.status().as_u16() != 204 {
                let status = res.status();
                return Err(format!(
                    "the log refused the cosignature: {status} {}",
                    res.text().await.unwrap_or_default()
                )
                .into());
            }
            said.push_str("; submitted");
        }
        Ok(said)
    }

    /// The 6c chain through the new entries, against the hash the log gives the last one.
    async fn check_chain(&self, have: u64, entries: &[Vec<u8>], served: &str) -> Result<(), PassError> {
        let Some(last) = entries.len().checked_sub(1) else { return Ok(()) };
        let mut prev = std::fs::read_to_string(self.state.join("chain")).unwrap_or_else(|_| audit::GENESIS.to_owned());
        if have == 0 {
            prev = audit::GENESIS.to_owned();
        }
        for e in entries {
            prev =
                audit::chain_hash(prev.trim(), std::str::from_utf8(e).map_err(|_| "an entry is not UTF-8".to_owned())?);
        }
        let seq = have + last as u64 + 1;
        let page: serde_json::Value =
            serde_json::from_slice(&self.get(&format!("/api/audit/?after={}&limit=1", seq - 1)).await?)
                .map_err(|e| format!("the audit page: {e}"))?;
        if page["results"][0]["hash"].as_str() != Some(prev.as_str()) {
            let detail =
                format!("the 6c chain through entry {seq} is {prev}, the log says {}", page["results"][0]["hash"]);
            let dir = self.evidence(self.mirror.checkpoint().as_deref(), served, &Proof::Entries { detail })?;
            return Err(PassError::Inconsistent(dir));
        }
        std::fs::write(self.state.join("chain"), &prev).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Writes the verified entries and tiles, then the checkpoint (the pass's commit).
    fn save(
        &self,
        tree: &Tree,
        store: &impl tlog::TileStore,
        completed: &[tlog::FullTile],
        have: u64,
        entries: &[Vec<u8>],
        served: &str,
    ) -> Result<(), String> {
        let err = |e: std::io::Error| format!("the state folder: {e}");
        for t in completed {
            let tile = TilePath::Hashes { level: t.level, n: t.n, width: None };
            self.mirror.write(tile, &t.data).map_err(err)?;
            self.mirror.drop_partials(tile).map_err(err)?;
        }
        let size = tree.size();
        // Bundles from the first one that changed: the partial one this pass started in.
        let first = have / tlog::WIDTH;
        for n in first..size.div_ceil(tlog::WIDTH) {
            let start = n * tlog::WIDTH;
            let end = (start + tlog::WIDTH).min(size);
            let mut bundle: Vec<Vec<u8>> = Vec::new();
            if start < have {
                let tile = TilePath::Entries { n, width: Some(have - start) };
                let old = self.mirror.read(tile).ok_or_else(|| format!("the state folder lacks {tile}"))?;
                bundle.extend(tlog::unbundle(&old).ok_or("a truncated bundle")?.into_iter().map(<[u8]>::to_vec));
            }
            bundle.extend(entries[(start.max(have) - have) as usize..(end - have) as usize].iter().cloned());
            let width = end - start;
            let tile = TilePath::Entries { n, width: (width < tlog::WIDTH).then_some(width) };
            if width == tlog::WIDTH {
                self.mirror.drop_partials(tile).map_err(err)?;
            }
            self.mirror.write(tile, &tlog::bundle(bundle.iter().map(Vec::as_slice))).map_err(err)?;
        }
        for tile in mirror::tiles_of(size) {
            if let TilePath::Hashes { level, n, width: Some(w) } = tile {
                let data = tree.tile(level, n, Some(w), store).ok_or_else(|| format!("{tile} is missing"))?;
                self.mirror.drop_partials(TilePath::Hashes { level, n, width: None }).map_err(err)?;
                self.mirror.write(tile, &data).map_err(err)?;
            }
        }
        self.mirror.write_file("checkpoint", served.as_bytes()).map_err(err)
    }

    /// The new checkpoint does not follow from what this witness verified: rebuild the
    /// log's tree from everything it serves now and find the entry that changed.
    async fn fork(
        &self,
        old_note: Option<&str>,
        old: Option<&Checkpoint>,
        served: &str,
        new: &Checkpoint,
    ) -> Result<PathBuf, PassError> {
        let theirs_entries = self.entries(0, new.size).await?;
        let mut theirs = Tree::default();
        let mut store = MemoryTiles::default();
        let mut done = Vec::new();
        for e in &theirs_entries {
            theirs.push(tlog::leaf_hash(e), &mut done);
        }
        store.keep(done);
        if theirs.root(new.size, &store).ok() != Some(new.root) {
            let detail = format!("the {} entries served do not hash to the root the log signed", new.size);
            return Ok(self.evidence(old_note, served, &Proof::Entries { detail })?);
        }
        let Some(old) = old else {
            return Ok(self.evidence(old_note, served, &Proof::Entries { detail: "no earlier checkpoint".into() })?);
        };
        let ours = self.local_tree(old.size)?;
        let m = old.size.min(new.size);
        let mut index = None;
        for n in 0..m.div_ceil(tlog::WIDTH) {
            let width = (m - n * tlog::WIDTH).min(tlog::WIDTH);
            let mine = match self.mirror.read(TilePath::Entries { n, width: None }) {
                Some(d) => d,
                None => self.mirror.read(TilePath::Entries { n, width: Some(width) }).unwrap_or_default(),
            };
            let mine = tlog::unbundle(&mine).unwrap_or_default();
            for (k, e) in mine.iter().take(width as usize).enumerate() {
                let i = n * tlog::WIDTH + k as u64;
                if tlog::leaf_hash(e) != tlog::leaf_hash(&theirs_entries[i as usize]) {
                    index = Some(i);
                    break;
                }
            }
            if index.is_some() {
                break;
            }
        }
        let proof = match index {
            Some(i) => {
                let hex_all = |h: Vec<tlog::Hash>| h.into_iter().map(|h| hex::encode(h.0)).collect();
                let old_path = ours.inclusion(i, old.size, &self.mirror).map_err(|e| e.to_string())?;
                let new_path = theirs.inclusion(i, new.size, &store).map_err(|e| e.to_string())?;
                let mine = tlog::leaf_hash(&self.entries_of_mirror(i)?);
                Proof::DifferentLeaf {
                    index: i,
                    old: LeafProof { leaf_hash: hex::encode(mine.0), hashes: hex_all(old_path) },
                    new: LeafProof {
                        leaf_hash: hex::encode(tlog::leaf_hash(&theirs_entries[i as usize]).0),
                        hashes: hex_all(new_path),
                    },
                }
            }
            None if old.size == new.size => Proof::SameSize,
            None => Proof::Entries { detail: "the checkpoints differ but no verified entry changed".into() },
        };
        Ok(self.evidence(old_note, served, &proof)?)
    }

    fn entries_of_mirror(&self, i: u64) -> Result<Vec<u8>, String> {
        let n = i / tlog::WIDTH;
        let data = self
            .mirror
            .read(TilePath::Entries { n, width: None })
            .or_else(|| {
                let dir = self.mirror.path(TilePath::Entries { n, width: None });
                let partials = std::fs::read_dir(format!("{}.p", dir.display())).ok()?;
                partials.filter_map(Result::ok).find_map(|e| std::fs::read(e.path()).ok())
            })
            .ok_or("the mirror lacks the entry")?;
        let entries = tlog::unbundle(&data).ok_or("a truncated bundle")?;
        entries.get((i % tlog::WIDTH) as usize).map(|e| e.to_vec()).ok_or_else(|| "the mirror lacks the entry".into())
    }

    /// Writes `evidence-<time>/` and returns its path.
    fn evidence(&self, old_note: Option<&str>, new_note: &str, proof: &Proof) -> Result<PathBuf, String> {
        let dir = self.state.join(format!("evidence-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).map_err(|e| e.to_string());
        write("old.checkpoint", old_note.unwrap_or_default())?;
        write("new.checkpoint", new_note)?;
        write("proof.json", &serde_json::to_string_pretty(proof).expect("a proof serialises"))?;
        let verdict = match evidence::judge(&self.vkey, old_note.unwrap_or_default(), new_note, proof) {
            Verdict::Misbehaviour(m) => format!("This PROVES misbehaviour by the holder of the log's key: {m}."),
            Verdict::NotProven(m) => format!("This does not prove misbehaviour by the key holder on its own: {m}."),
        };
        write(
            "README",
            &format!(
                "Evidence gathered by a UFRECS witness of {} on {}.\n\n\
                 old.checkpoint is the last checkpoint this witness verified; new.checkpoint is what the\n\
                 log served next; proof.json is what was checked and failed.\n\n{verdict}\n\n\
                 Anyone can check it offline with the log's verifier key:\n\n    \
                 ufrecs witness verify-evidence --vkey '{}' {}\n",
                self.base,
                chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
                self.vkey,
                dir.display()
            ),
        )?;
        Ok(dir)
    }
}

/// Two tile stores, the first one first: this pass's new tiles, then the mirror's.
struct Both<'a, A, B> {
    first: &'a A,
    second: &'a B,
}

impl<A: tlog::TileStore, B: tlog::TileStore> tlog::TileStore for Both<'_, A, B> {
    fn full_tile(&self, level: u8, n: u64) -> Option<Vec<u8>> {
        self.first.full_tile(level, n).or_else(|| self.second.full_tile(level, n))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
