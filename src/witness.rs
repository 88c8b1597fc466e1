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

/// The most a checkpoint (a signed note) or an audit page may weigh.
const MAX_NOTE: usize = 1 << 20;
/// The most an entry bundle may weigh: 256 entries of at most 65,535 bytes.
const MAX_BUNDLE: usize = tlog::WIDTH as usize * (2 + tlog::MAX_ENTRY);

/// What the witness verified: written last, in one atomic write, by a pass that succeeded.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    size: u64,
    /// The 6c chain's hash through entry `size`.
    chain: String,
    /// The checkpoint note as the log served it.
    checkpoint: String,
}

impl Witness {
    async fn get(&self, path: &str, max: usize) -> Result<Vec<u8>, String> {
        let url = format!("{}{path}", self.base);
        let mut res = self.http.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("GET {url}: {}", res.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            if body.len() + chunk.len() > max {
                return Err(format!("GET {url}: more than {max} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Bundle `n` as the log serves it at `width` entries.
    async fn bundle(&self, n: u64, width: u64) -> Result<Vec<Vec<u8>>, String> {
        let tile = TilePath::Entries { n, width: (width < tlog::WIDTH).then_some(width) };
        let data = self.get(&format!("/log/{tile}"), MAX_BUNDLE).await?;
        let entries = tlog::unbundle(&data).ok_or_else(|| format!("{tile} is truncated"))?;
        if entries.len() as u64 != width {
            return Err(format!("{tile} holds {} entries, not {width}", entries.len()));
        }
        Ok(entries.into_iter().map(<[u8]>::to_vec).collect())
    }

    /// The first `width` entries of bundle `n` as this witness keeps them (the full bundle,
    /// or its widest partial one).
    fn kept(&self, n: u64, width: u64) -> Result<Vec<Vec<u8>>, String> {
        let full = TilePath::Entries { n, width: None };
        let data = match self.mirror.read(full) {
            Some(d) => d,
            None => {
                let partials = std::fs::read_dir(format!("{}.p", self.mirror.path(full).display()))
                    .map_err(|_| format!("the state folder lacks {full}"))?;
                let widest = partials
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                    .filter(|w| *w >= width)
                    .max()
                    .ok_or_else(|| format!("the state folder lacks {full} up to {width} entries"))?;
                self.mirror.read(TilePath::Entries { n, width: Some(widest) }).ok_or("unreadable bundle")?
            }
        };
        let entries = tlog::unbundle(&data).ok_or("a truncated bundle in the state folder")?;
        Ok(entries.into_iter().take(width as usize).map(<[u8]>::to_vec).collect())
    }

    fn state(&self) -> Result<Option<State>, String> {
        match std::fs::read(self.state.join("witness.json")) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("the state folder's witness.json: {e}"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The tree this witness verified, from its mirror.
    fn local_tree(&self, size: u64) -> Result<Tree, String> {
        let full = size / tlog::WIDTH;
        let mut tree = Tree::resume(full * tlog::WIDTH, &self.mirror).map_err(|e| format!("the state folder: {e}"))?;
        if size % tlog::WIDTH != 0 {
            for e in self.kept(full, size % tlog::WIDTH)? {
                tree.push(tlog::leaf_hash(&e), &mut Vec::new());
            }
        }
        Ok(tree)
    }

    async fn pass(&self) -> Result<String, PassError> {
        std::fs::create_dir_all(&self.state).map_err(|e| format!("{}: {e}", self.state.display()))?;
        let served = String::from_utf8(self.get("/log/checkpoint", MAX_NOTE).await?)
            .map_err(|_| "the checkpoint is not UTF-8".to_owned())?;
        let state = self.state()?;
        let old_note = state.as_ref().map(|s| s.checkpoint.clone());
        let new = match note::open_checkpoint(&served, &self.vkey) {
            Ok(c) => c,
            // A signature line of the log's key that does not verify: the log (or someone
            // in its name) served a forged checkpoint.
            Err(note::NoteError::BadSignature) => {
                let proof = Proof::BadSignature { error: "the log's signature does not verify".into() };
                return Err(PassError::Inconsistent(self.evidence(old_note.as_deref(), &served, &proof)?));
            }
            // Not a note of this log at all (an error page, a cut body): try again later.
            Err(e) => return Err(format!("the log served no checkpoint of its key: {e}").into()),
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
            let root = tree.root(new.size, &self.mirror).map_err(|e| e.to_string())?;
            if root != new.root {
                // What this witness holds proves it, whatever the log serves now.
                let hashes = tree.consistency(new.size, have, &self.mirror).map_err(|e| e.to_string())?;
                let proof = Proof::Shrunk {
                    root_at_new_size: hex::encode(root.0),
                    hashes: hashes.iter().map(|h| hex::encode(h.0)).collect(),
                };
                return Err(PassError::Inconsistent(self.evidence(old_note.as_deref(), &served, &proof)?));
            }
            return Ok(format!("the log served checkpoint {} (already verified up to {have})", new.size));
        }
        if new.size == have && old.as_ref().is_some_and(|o| o.root != new.root) {
            return Err(PassError::Inconsistent(self.evidence(old_note.as_deref(), &served, &Proof::SameSize)?));
        }
        // The new entries, one bundle at a time: hashed into the tree, chained, and kept.
        let err = |e: std::io::Error| format!("the state folder: {e}");
        let mut chain = state.as_ref().map_or_else(|| audit::GENESIS.to_owned(), |s| s.chain.clone());
        let mut added = 0u64;
        for n in have / tlog::WIDTH..new.size.div_ceil(tlog::WIDTH) {
            let start = n * tlog::WIDTH;
            let width = (new.size - start).min(tlog::WIDTH);
            let entries = self.bundle(n, width).await?;
            let skip = have.saturating_sub(start);
            if skip > 0 && self.kept(n, skip)? != entries[..skip as usize] {
                // Entries this witness verified are served otherwise now.
                return Err(PassError::Inconsistent(
                    self.fork(old_note.as_deref(), old.as_ref(), &served, &new).await?,
                ));
            }
            let mut completed = Vec::new();
            for (k, e) in entries.iter().enumerate().skip(skip as usize) {
                let seq = start + k as u64 + 1;
                let text = std::str::from_utf8(e).map_err(|_| format!("entry {seq} is not UTF-8"))?;
                let parsed: Option<serde_json::Value> = serde_json::from_str(text).ok();
                if parsed.as_ref().and_then(|v| v["seq"].as_u64()) != Some(seq) {
                    let detail = format!("entry {seq} as served is not the canonical entry of seq {seq}");
                    return Err(PassError::Inconsistent(self.evidence(
                        old_note.as_deref(),
                        &served,
                        &Proof::Entries { detail },
                    )?));
                }
                chain = audit::chain_hash(&chain, text);
                tree.push(tlog::leaf_hash(e), &mut completed);
                added += 1;
            }
            for t in completed {
                let tile = TilePath::Hashes { level: t.level, n: t.n, width: None };
                self.mirror.write(tile, &t.data).map_err(err)?;
                self.mirror.drop_partials(tile).map_err(err)?;
            }
            let tile = TilePath::Entries { n, width: (width < tlog::WIDTH).then_some(width) };
            self.mirror.write(tile, &tlog::bundle(entries.iter().map(Vec::as_slice))).map_err(err)?;
            if width == tlog::WIDTH {
                self.mirror.drop_partials(tile).map_err(err)?;
            }
        }
        if tree.root(new.size, &self.mirror).ok() != Some(new.root) {
            return Err(PassError::Inconsistent(self.fork(old_note.as_deref(), old.as_ref(), &served, &new).await?));
        }
        if added > 0 {
            self.check_chain(new.size, &chain, old_note.as_deref(), &served).await?;
        }
        for tile in mirror::tiles_of(new.size) {
            if let TilePath::Hashes { level, n, width: Some(w) } = tile {
                let data = tree.tile(level, n, Some(w), &self.mirror).ok_or_else(|| format!("{tile} is missing"))?;
                self.mirror.write(tile, &data).map_err(err)?;
            }
        }
        // The pass's commit: what was verified, in one write.
        let verified = State { size: new.size, chain, checkpoint: served.clone() };
        let json = serde_json::to_vec(&verified).expect("the state serialises");
        self.mirror.write_file("witness.json", &json).map_err(err)?;
        self.mirror.write_file("checkpoint", served.as_bytes()).map_err(err)?;
        let line = self.key.cosign(note::note_body(&served).map_err(|e| e.to_string())?, unix_now());
        // The note as served, without an earlier line of this witness's own, then its line.
        let own = format!("— {} ", self.key.name());
        let kept: String = served.split_inclusive('\n').filter(|l| !l.starts_with(&own)).collect();
        let cosigned = format!("{kept}{line}");
        self.mirror.write_file("cosigned.checkpoint", cosigned.as_bytes()).map_err(err)?;
        let mut said = format!("verified {} entries ({added} new); cosigned as {}", new.size, self.key.name());
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

    /// The 6c chain through entry `size`, against the hash the log's audit API gives it.
    async fn check_chain(&self, size: u64, chain: &str, old_note: Option<&str>, served: &str) -> Result<(), PassError> {
        let page = self.get(&format!("/api/audit/?after={}&limit=1", size - 1), MAX_NOTE).await?;
        let page: serde_json::Value = serde_json::from_slice(&page).map_err(|e| format!("the audit page: {e}"))?;
        if page["results"][0]["hash"].is_null() {
            return Err(format!("the audit page after {} holds no entry", size - 1).into());
        }
        if page["results"][0]["hash"].as_str() != Some(chain) {
            let detail =
                format!("the 6c chain through entry {size} is {chain}, the log says {}", page["results"][0]["hash"]);
            return Err(PassError::Inconsistent(self.evidence(old_note, served, &Proof::Entries { detail })?));
        }
        Ok(())
    }

    /// The new checkpoint does not follow from what this witness verified: rebuild the
    /// log's tree from everything it serves now (one bundle at a time, keeping only hash
    /// tiles: 32 bytes an entry) and find the first entry that changed.
    async fn fork(
        &self,
        old_note: Option<&str>,
        old: Option<&Checkpoint>,
        served: &str,
        new: &Checkpoint,
    ) -> Result<PathBuf, PassError> {
        let m = old.map_or(0, |o| o.size.min(new.size));
        let mut theirs = Tree::default();
        let mut store = MemoryTiles::default();
        let mut changed: Option<(u64, Vec<u8>, Vec<u8>)> = None;
        for n in 0..new.size.div_ceil(tlog::WIDTH) {
            let width = (new.size - n * tlog::WIDTH).min(tlog::WIDTH);
            let entries = self.bundle(n, width).await?;
            let mine = if changed.is_none() && n * tlog::WIDTH < m {
                self.kept(n, (m - n * tlog::WIDTH).min(tlog::WIDTH))?
            } else {
                Vec::new()
            };
            let mut done = Vec::new();
            for (k, e) in entries.iter().enumerate() {
                theirs.push(tlog::leaf_hash(e), &mut done);
                if changed.is_none() && mine.get(k).is_some_and(|x| x != e) {
                    changed = Some((n * tlog::WIDTH + k as u64, mine[k].clone(), e.clone()));
                }
            }
            store.keep(done);
        }
        if theirs.root(new.size, &store).ok() != Some(new.root) {
            let detail = format!("the {} entries served do not hash to the root the log signed", new.size);
            return Ok(self.evidence(old_note, served, &Proof::Entries { detail })?);
        }
        let proof = match (old, changed) {
            (Some(old), Some((i, mine, their))) => {
                let hex_all = |h: Vec<tlog::Hash>| h.into_iter().map(|h| hex::encode(h.0)).collect();
                let ours = self.local_tree(old.size)?;
                let old_path = ours.inclusion(i, old.size, &self.mirror).map_err(|e| e.to_string())?;
                let new_path = theirs.inclusion(i, new.size, &store).map_err(|e| e.to_string())?;
                Proof::DifferentLeaf {
                    index: i,
                    old: LeafProof { leaf_hash: hex::encode(tlog::leaf_hash(&mine).0), hashes: hex_all(old_path) },
                    new: LeafProof { leaf_hash: hex::encode(tlog::leaf_hash(&their).0), hashes: hex_all(new_path) },
                }
            }
            (Some(old), None) if old.size == new.size => Proof::SameSize,
            _ => Proof::Entries { detail: "the checkpoints differ but no verified entry changed".into() },
        };
        Ok(self.evidence(old_note, served, &proof)?)
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

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
