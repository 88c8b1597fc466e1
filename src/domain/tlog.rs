//! The audit log as a transparency log (section 6e): the RFC 6962 Merkle tree over the
//! entries' canonical forms, kept as C2SP `tlog-tiles` (height 8), and its proofs.
//!
//! The hashing and the proofs are `tlog_tiles`, Cloudflare's port of Go's
//! `golang.org/x/mod/sumdb/tlog` (the implementation the C2SP specifications grew from);
//! this module owns only how the tree is held: the full tiles somewhere else (a
//! `TileStore`: the database, or a witness's folder), and in memory the one partial tile
//! of each level. Everything a proof or a tile needs is read from those two, and the
//! memory a national log needs is a few kilobytes.

use tlog_tiles::{HashReader, Tile};

pub use tlog_tiles::{record_hash as leaf_hash, Hash, EMPTY_HASH, HASH_SIZE};

/// The tiles' height: 2^8 hashes (or entries) a full tile.
pub const HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const WIDTH: u64 = 1 << HEIGHT;
/// The longest entry an entry bundle can carry (its 16-bit length prefix).
pub const MAX_ENTRY: usize = u16::MAX as usize;

/// A hash tile that just became full: level `level`, number `n`, its 256 hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct FullTile {
    pub level: u8,
    pub n: u64,
    pub data: Vec<u8>,
}

/// Where the full hash tiles live. `None` when the tile is not there (never written, or
/// lost): the tree is then rebuilt from the entries.
pub trait TileStore {
    fn full_tile(&self, level: u8, n: u64) -> Option<Vec<u8>>;
}

/// Full tiles kept in memory (a tree built from entries just downloaded).
#[derive(Default)]
pub struct MemoryTiles(pub std::collections::HashMap<(u8, u64), Vec<u8>>);

impl MemoryTiles {
    pub fn keep(&mut self, tiles: Vec<FullTile>) {
        for t in tiles {
            self.0.insert((t.level, t.n), t.data);
        }
    }
}

impl TileStore for MemoryTiles {
    fn full_tile(&self, level: u8, n: u64) -> Option<Vec<u8>> {
        self.0.get(&(level, n)).cloned()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TreeError {
    /// A size, index or range the tree never reached.
    #[error("out of range: {0}")]
    Range(String),
    /// A full tile the store should hold is missing or malformed.
    #[error("tile {level}/{n} is missing or damaged")]
    Tile { level: u8, n: u64 },
}

/// The tree of `size` leaves, without its full tiles: for each tile level `l`, the hashes
/// of level `8 l` past the last full tile (fewer than 256).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tree {
    size: u64,
    partial: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Full tiles of tile level `level` in a tree of `size` leaves.
    pub fn full_tiles(size: u64, level: u8) -> u64 {
        level_width(size, level) >> HEIGHT
    }

    /// Appends a leaf; the tiles it completed are added to `completed`, lowest level first.
    pub fn push(&mut self, leaf: Hash, completed: &mut Vec<FullTile>) {
        let mut hash = leaf;
        let mut level = 0u8;
        loop {
            if self.partial.len() <= level as usize {
                self.partial.push(Vec::new());
            }
            let tile = &mut self.partial[level as usize];
            tile.push(hash);
            if tile.len() < WIDTH as usize {
                break;
            }
            let data: Vec<u8> = tile.drain(..).flat_map(|h| h.0).collect();
            hash = Tile::subtree_hash(&data);
            let n = Self::full_tiles(self.size + 1, level) - 1;
            completed.push(FullTile { level, n, data });
            level += 1;
        }
        self.size += 1;
    }

    /// The tree of `size` leaves, `size` a multiple of 256 whose full level-0 tiles (and
    /// the full tiles above them) are in `store`: the partial tiles of the levels above
    /// are re-derived from the full tiles below them, at most 255 a level.
    pub fn resume(size: u64, store: &impl TileStore) -> Result<Tree, TreeError> {
        if size % WIDTH != 0 {
            return Err(TreeError::Range(format!("{size} is not a whole number of tiles")));
        }
        let mut partial = Vec::new();
        let mut level = 1u8;
        while level_width(size, level) > 0 {
            let first = Self::full_tiles(size, level) << HEIGHT;
            let mut hashes = Vec::new();
            for n in first..level_width(size, level) {
                let data = full(store, level - 1, n)?;
                hashes.push(Tile::subtree_hash(&data));
            }
            partial.push(hashes);
            level += 1;
        }
        // Level 0 holds nothing past the last full tile.
        partial.insert(0, Vec::new());
        Ok(Tree { size, partial })
    }

    /// The root hash of the tree's first `size` leaves.
    pub fn root(&self, size: u64, store: &impl TileStore) -> Result<Hash, TreeError> {
        self.check_size(size)?;
        self.with_reader(store, |r| tlog_tiles::tree_hash(size, r))
    }

    /// The RFC 6962 audit path of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64, store: &impl TileStore) -> Result<Vec<Hash>, TreeError> {
        self.check_size(size)?;
        if index >= size {
            return Err(TreeError::Range(format!("leaf {index} is not in a tree of {size}")));
        }
        self.with_reader(store, |r| tlog_tiles::prove_record(size, index, r))
    }

    /// The RFC 6962 consistency proof from the tree of `from` leaves to that of `to`.
    pub fn consistency(&self, from: u64, to: u64, store: &impl TileStore) -> Result<Vec<Hash>, TreeError> {
        self.check_size(to)?;
        if from > to {
            return Err(TreeError::Range(format!("{from} is larger than {to}")));
        }
        if from == 0 || from == to {
            return Ok(Vec::new());
        }
        self.with_reader(store, |r| tlog_tiles::prove_tree(to, from, r))
    }

    /// The hash tile `level`/`n` of width `width` (`None`: the full tile), as served: the
    /// tile's first `width` hashes, if the tree has them.
    pub fn tile(&self, level: u8, n: u64, width: Option<u64>, store: &impl TileStore) -> Option<Vec<u8>> {
        let full_tiles = Self::full_tiles(self.size, level);
        let width = width.unwrap_or(WIDTH);
        if n < full_tiles {
            let data = store.full_tile(level, n)?;
            return Some(data[..(width as usize * HASH_SIZE)].to_vec());
        }
        let partial = self.partial.get(level as usize)?;
        if n != full_tiles || width == WIDTH || width as usize > partial.len() {
            return None;
        }
        Some(partial[..width as usize].iter().flat_map(|h| h.0).collect())
    }

    fn check_size(&self, size: u64) -> Result<(), TreeError> {
        if size > self.size {
            return Err(TreeError::Range(format!("the tree has {} leaves, not {size}", self.size)));
        }
        Ok(())
    }

    fn read_error(&self, e: tlog_tiles::Error, missing: Option<(u8, u64)>) -> TreeError {
        match (e, missing) {
            (_, Some((level, n))) => TreeError::Tile { level, n },
            (tlog_tiles::Error::InvalidInput(s), None) => TreeError::Range(s),
            (e, None) => TreeError::Range(e.to_string()),
        }
    }

    /// Runs one of `tlog_tiles`' functions over this tree's hashes.
    fn with_reader<T, S: TileStore>(
        &self,
        store: &S,
        f: impl FnOnce(&Reader<'_, S>) -> Result<T, tlog_tiles::Error>,
    ) -> Result<T, TreeError> {
        let reader = Reader { tree: self, store, missing: std::cell::Cell::new(None) };
        f(&reader).map_err(|e| self.read_error(e, reader.missing.get()))
    }
}

/// How many hashes tile level `level` has in a tree of `size` leaves.
fn level_width(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(HEIGHT)).unwrap_or(0)
}

fn full(store: &impl TileStore, level: u8, n: u64) -> Result<Vec<u8>, TreeError> {
    match store.full_tile(level, n) {
        Some(data) if data.len() == WIDTH as usize * HASH_SIZE => Ok(data),
        _ => Err(TreeError::Tile { level, n }),
    }
}

/// The tree's hashes for `tlog_tiles`' proofs, by stored-hash index.
struct Reader<'a, S> {
    tree: &'a Tree,
    store: &'a S,
    missing: std::cell::Cell<Option<(u8, u64)>>,
}

impl<S: TileStore> HashReader for Reader<'_, S> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let mut out = Vec::with_capacity(indexes.len());
        let mut cached: Option<(u8, u64, Vec<u8>)> = None;
        for &index in indexes {
            let needed = Tile::from_index(HEIGHT, index);
            let (level, n) = (needed.level(), needed.level_index());
            let full_tiles = Tree::full_tiles(self.tree.size, level);
            if !matches!(&cached, Some((l, m, _)) if *l == level && *m == n) {
                let data = if n < full_tiles {
                    full(self.store, level, n).map_err(|_| {
                        self.missing.set(Some((level, n)));
                        tlog_tiles::Error::InvalidTile
                    })?
                } else {
                    let partial = self.tree.partial.get(level as usize).ok_or(tlog_tiles::Error::IndexesNotInTree)?;
                    partial.iter().flat_map(|h| h.0).collect()
                };
                cached = Some((level, n, data));
            }
            let data = cached.as_ref().map(|(_, _, d)| d.as_slice()).unwrap_or_default();
            let width = (data.len() / HASH_SIZE) as u32;
            if width == 0 {
                return Err(tlog_tiles::Error::IndexesNotInTree);
            }
            let tile = Tile::new(HEIGHT, level, n, width, false);
            out.push(tile.hash_at_index(data, index).map_err(|_| tlog_tiles::Error::IndexesNotInTree)?);
        }
        Ok(out)
    }
}

/// Whether `proof` shows leaf `index`, hashing to `leaf`, in the tree of `size` leaves
/// whose root is `root`.
pub fn verify_inclusion(proof: &[Hash], index: u64, size: u64, leaf: Hash, root: Hash) -> bool {
    index < size && tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).is_ok()
}

/// Whether `proof` shows the tree of `from` leaves (root `old`) to be a prefix of the tree
/// of `to` leaves (root `new`).
pub fn verify_consistency(proof: &[Hash], from: u64, old: Hash, to: u64, new: Hash) -> bool {
    match (from, to) {
        (0, _) => proof.is_empty(),
        (f, t) if f == t => proof.is_empty() && old == new,
        (f, t) if f > t => false,
        _ => tlog_tiles::check_tree(&proof.to_vec(), to, new, from, old).is_ok(),
    }
}

/// A tile path under `tile/`, as C2SP `tlog-tiles` writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`: hashes.
    Hashes { level: u8, n: u64, width: Option<u64> },
    /// `tile/entries/<N>[.p/<W>]`: an entry bundle.
    Entries { n: u64, width: Option<u64> },
}

impl TilePath {
    /// Parses what follows `tile/`; `None` for anything C2SP would not write.
    pub fn parse(path: &str) -> Option<TilePath> {
        let (head, rest) = path.split_once('/')?;
        let (digits, width) = match rest.split_once(".p/") {
            Some((digits, w)) => (digits, Some(w)),
            None => (rest, None),
        };
        let width = match width {
            None => None,
            Some(w)
                if !w.is_empty() && w.len() <= 3 && w.bytes().all(|b| b.is_ascii_digit()) && !w.starts_with('0') =>
            {
                let w: u64 = w.parse().ok()?;
                if w >= WIDTH {
                    return None;
                }
                Some(w)
            }
            Some(_) => return None,
        };
        let n = parse_index(digits)?;
        let path = if head == "entries" {
            TilePath::Entries { n, width }
        } else {
            if head.is_empty()
                || head.len() > 2
                || !head.bytes().all(|b| b.is_ascii_digit())
                || (head.len() > 1 && head.starts_with('0'))
            {
                return None;
            }
            let level: u8 = head.parse().ok()?;
            if level > 63 / HEIGHT {
                return None;
            }
            TilePath::Hashes { level, n, width }
        };
        Some(path)
    }
}

impl std::fmt::Display for TilePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (head, n, width) = match *self {
            TilePath::Hashes { level, n, width } => (level.to_string(), n, width),
            TilePath::Entries { n, width } => ("entries".to_owned(), n, width),
        };
        write!(f, "tile/{head}/{}", format_index(n))?;
        if let Some(w) = width {
            write!(f, ".p/{w}")?;
        }
        Ok(())
    }
}

/// `1234067` as `x001/x234/067`: groups of three digits, all but the last prefixed `x`.
fn format_index(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn parse_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    let mut n: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() { part.strip_prefix('x')? } else { part };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    (format_index(n) == s).then_some(n)
}

/// An entry bundle: each entry prefixed with its length as a big-endian 16-bit integer.
pub fn bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).expect("entries are at most 65,535 bytes (section 6e)");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// The entries of a bundle; `None` when it is truncated.
pub fn unbundle(mut data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([data[0], data[1]]) as usize;
        let entry = data.get(2..2 + len)?;
        out.push(entry);
        data = &data[2 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Memory = MemoryTiles;

    fn tree_of(leaves: &[Hash]) -> (Tree, Memory) {
        let mut tree = Tree::default();
        let mut store = Memory::default();
        let mut done = Vec::new();
        for l in leaves {
            tree.push(*l, &mut done);
        }
        for t in done {
            store.0.insert((t.level, t.n), t.data);
        }
        (tree, store)
    }

    fn h(s: &str) -> Hash {
        Hash(hex::decode(s).unwrap().try_into().unwrap())
    }

    // The Certificate Transparency test vectors (RFC 6962 leaves and tree heads).
    const CT_LEAVES: [&str; 8] =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn ct_tree() -> (Tree, Memory) {
        let leaves: Vec<Hash> = CT_LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).unwrap())).collect();
        tree_of(&leaves)
    }

    #[test]
    fn roots_match_the_certificate_transparency_vectors() {
        let (tree, store) = ct_tree();
        assert_eq!(tree.root(0, &store).unwrap(), EMPTY_HASH);
        assert_eq!(hex::encode(EMPTY_HASH.0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        for (i, root) in CT_ROOTS.iter().enumerate() {
            assert_eq!(tree.root(i as u64 + 1, &store).unwrap(), h(root), "size {}", i + 1);
        }
    }

    #[test]
    fn proofs_match_the_certificate_transparency_vectors() {
        let (tree, store) = ct_tree();
        let inclusion = [
            (
                0,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                vec![
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (index, want) in inclusion {
            let want: Vec<Hash> = want.into_iter().map(h).collect();
            assert_eq!(tree.inclusion(index, 8, &store).unwrap(), want, "leaf {index}");
        }
        let consistency = [
            (
                2,
                vec![
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                vec![
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (from, want) in consistency {
            let want: Vec<Hash> = want.into_iter().map(h).collect();
            assert_eq!(tree.consistency(from, 8, &store).unwrap(), want, "{from} -> 8");
        }
        assert!(matches!(tree.inclusion(8, 8, &store), Err(TreeError::Range(_))));
        assert!(matches!(tree.consistency(2, 9, &store), Err(TreeError::Range(_))));
    }

    fn synthetic(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn every_proof_verifies_across_tile_boundaries_and_edits_fail() {
        let leaves = synthetic(70_000);
        let (tree, store) = tree_of(&leaves);
        let mut rng = 0x9e3779b97f4a7c15u64;
        let mut next = |m: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % m
        };
        for _ in 0..300 {
            let size = 1 + next(70_000);
            let index = next(size);
            let root = tree.root(size, &store).unwrap();
            let proof = tree.inclusion(index, size, &store).unwrap();
            assert!(verify_inclusion(&proof, index, size, leaves[index as usize], root), "{index} in {size}");
            assert!(!verify_inclusion(&proof, index, size, leaves[(index as usize + 1) % leaves.len()], root));
            let from = 1 + next(size);
            let old = tree.root(from, &store).unwrap();
            let proof = tree.consistency(from, size, &store).unwrap();
            assert!(verify_consistency(&proof, from, old, size, root), "{from} -> {size}");
            if !proof.is_empty() {
                let mut bad = proof.clone();
                bad[0].0[0] ^= 1;
                assert!(!verify_consistency(&bad, from, old, size, root));
            }
        }
    }

    #[test]
    fn an_edited_entry_or_tile_fails_every_check() {
        let leaves = synthetic(1000);
        let (tree, store) = tree_of(&leaves);
        let root = tree.root(1000, &store).unwrap();
        let proof = tree.inclusion(300, 1000, &store).unwrap();
        let edited = leaf_hash(b"an entry rewritten");
        assert!(!verify_inclusion(&proof, 300, 1000, edited, root), "an edited entry");
        let mut tampered = MemoryTiles(store.0.clone());
        tampered.0.get_mut(&(0, 1)).unwrap()[(300 - 256) * 32] ^= 1;
        // The root comes from the tiles above (kept when the tile was full); a proof that
        // reads the edited tile no longer verifies against it.
        let from_tampered = tree.inclusion(301, 1000, &tampered).unwrap();
        assert!(!verify_inclusion(&from_tampered, 301, 1000, leaves[301], root), "and proofs that fail");
        let mut missing = MemoryTiles(store.0.clone());
        missing.0.remove(&(0, 1));
        assert_eq!(tree.inclusion(301, 1000, &missing), Err(TreeError::Tile { level: 0, n: 1 }));
    }

    #[test]
    fn a_tree_resumed_from_its_tiles_is_the_tree() {
        let leaves = synthetic(66_000);
        let (whole, store) = tree_of(&leaves);
        let cut = 65_792; // 257 full tiles: level 1 has one full tile and one hash
        let mut resumed = Tree::resume(cut, &store).unwrap();
        let mut done = Vec::new();
        for l in &leaves[cut as usize..] {
            resumed.push(*l, &mut done);
        }
        assert_eq!(resumed.size, whole.size);
        assert_eq!(
            resumed.partial.iter().map(Vec::len).collect::<Vec<_>>(),
            whole.partial.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(resumed, whole);
        let mut damaged = MemoryTiles(store.0.clone());
        damaged.0.get_mut(&(0, 256)).unwrap().truncate(10);
        assert_eq!(Tree::resume(cut, &damaged), Err(TreeError::Tile { level: 0, n: 256 }));
    }

    #[test]
    fn tiles_are_served_full_or_as_the_partial_prefix() {
        let leaves = synthetic(600);
        let (tree, store) = tree_of(&leaves);
        let full = tree.tile(0, 1, None, &store).unwrap();
        assert_eq!(full.len(), 256 * 32);
        assert_eq!(&full[..32], &leaves[256].0);
        assert_eq!(tree.tile(0, 1, Some(3), &store).unwrap(), full[..96].to_vec(), "an old partial stays served");
        assert_eq!(tree.tile(0, 2, Some(88), &store).unwrap().len(), 88 * 32);
        assert_eq!(tree.tile(0, 2, Some(89), &store), None, "wider than the tree");
        assert_eq!(tree.tile(0, 2, None, &store), None, "not full yet");
        assert_eq!(tree.tile(0, 3, Some(1), &store), None);
        let level1 = tree.tile(1, 0, Some(2), &store).unwrap();
        assert_eq!(&level1[32..], &Tile::subtree_hash(&full).0);
    }

    #[test]
    fn tile_paths_are_c2sps() {
        let cases = [
            ("0/000", TilePath::Hashes { level: 0, n: 0, width: None }),
            ("1/x001/x234/067.p/8", TilePath::Hashes { level: 1, n: 1_234_067, width: Some(8) }),
            ("entries/x001/000", TilePath::Entries { n: 1000, width: None }),
            ("entries/005.p/255", TilePath::Entries { n: 5, width: Some(255) }),
        ];
        for (path, tile) in cases {
            assert_eq!(TilePath::parse(path), Some(tile), "{path}");
            assert_eq!(tile.to_string(), format!("tile/{path}"));
        }
        for bad in [
            "0/0",
            "0/0000",
            "0/x000/001",
            "0/001/002",
            "0/001.p/0",
            "0/001.p/256",
            "0/001.p/07",
            "00/001",
            "8/001",
            "data/001",
            "0/-01",
            "0/001.p/",
            "entries/x1/001",
            "0/001/",
            "0",
            "",
        ] {
            assert_eq!(TilePath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn bundles_carry_a_16_bit_length_before_each_entry() {
        let entries: [&[u8]; 3] = [b"", b"a", &[7u8; 300]];
        let b = bundle(entries);
        assert_eq!(&b[..5], &[0, 0, 0, 1, b'a']);
        assert_eq!(unbundle(&b).unwrap(), entries.to_vec());
        assert_eq!(unbundle(&b[..b.len() - 1]), None);
    }
}
