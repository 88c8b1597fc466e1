//! A static copy of the transparency log on disk, in the C2SP `tlog-tiles` layout
//! (`checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`): what `ufrecs log
//! export DIR` writes for any web server or bucket to serve, and what a witness keeps of
//! the log it verified. Full tiles never change, so they are written once.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::domain::tlog::{self, TilePath, TileStore, Tree};
use crate::store::tlog as tables;

pub struct Mirror {
    dir: PathBuf,
}

impl Mirror {
    pub fn new(dir: &Path) -> Mirror {
        Mirror { dir: dir.to_path_buf() }
    }

    pub fn path(&self, tile: TilePath) -> PathBuf {
        self.dir.join(tile.to_string())
    }

    pub fn read(&self, tile: TilePath) -> Option<Vec<u8>> {
        std::fs::read(self.path(tile)).ok()
    }

    /// Writes a file atomically (a temporary file renamed), its folders created.
    pub fn write_file(&self, relative: &str, data: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("tmp-write");
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, &path)
    }

    pub fn write(&self, tile: TilePath, data: &[u8]) -> std::io::Result<()> {
        self.write_file(&tile.to_string(), data)
    }

    /// Removes the partial tiles of a tile that is now full (their content is its prefix).
    pub fn drop_partials(&self, full: TilePath) -> std::io::Result<()> {
        let path = self.path(full);
        let partials = PathBuf::from(format!("{}.p", path.display()));
        match std::fs::remove_dir_all(partials) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn checkpoint(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("checkpoint")).ok()
    }
}

impl TileStore for Mirror {
    fn full_tile(&self, level: u8, n: u64) -> Option<Vec<u8>> {
        self.read(TilePath::Hashes { level, n, width: None })
    }
}

/// Every tile of a tree of `size` entries: the full ones, and the partial one of each level.
pub fn tiles_of(size: u64) -> Vec<TilePath> {
    let mut out = Vec::new();
    let mut level = 0u8;
    loop {
        let width = size.checked_shr(u32::from(level) * u32::from(tlog::HEIGHT)).unwrap_or(0);
        if width == 0 {
            break;
        }
        for n in 0..width / tlog::WIDTH {
            out.push(TilePath::Hashes { level, n, width: None });
        }
        if width % tlog::WIDTH != 0 {
            out.push(TilePath::Hashes { level, n: width / tlog::WIDTH, width: Some(width % tlog::WIDTH) });
        }
        level += 1;
    }
    for n in 0..size / tlog::WIDTH {
        out.push(TilePath::Entries { n, width: None });
    }
    if size % tlog::WIDTH != 0 {
        out.push(TilePath::Entries { n: size / tlog::WIDTH, width: Some(size % tlog::WIDTH) });
    }
    out
}

/// `ufrecs log export DIR`: the latest checkpoint and every tile it covers, from the
/// database (read only). Full tiles already in `DIR` are not written again.
pub fn export(db: &Path, dir: &Path) -> Result<String, String> {
    let conn =
        Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| e.to_string())?;
    let signed = tables::latest_checkpoint(&conn)
        .map_err(|e| e.to_string())?
        .ok_or("this log has signed no checkpoint yet: start the server once")?;
    let last = tables::last_seq(&conn).map_err(|e| e.to_string())? as u64;
    let mut pending = Vec::new();
    let rebuilt = crate::transparency::rebuild(&conn, last, &mut |tiles| {
        pending.extend_from_slice(tiles);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let tree = rebuilt.tree;
    let size = signed.size.min(tree.size());
    let store = tables::Tiles { conn: &conn, pending: &pending };
    let mirror = Mirror::new(dir);
    let mut written = 0;
    for tile in tiles_of(size) {
        let full = matches!(tile, TilePath::Hashes { width: None, .. } | TilePath::Entries { width: None, .. });
        if full && mirror.path(tile).exists() {
            continue;
        }
        let data = tile_data(&conn, &tree, &store, tile).ok_or_else(|| format!("{tile} is missing"))?;
        mirror.write(tile, &data).map_err(|e| format!("{}: {e}", dir.display()))?;
        if full {
            mirror.drop_partials(tile).map_err(|e| e.to_string())?;
        }
        written += 1;
    }
    mirror.write_file("checkpoint", signed.note.as_bytes()).map_err(|e| e.to_string())?;
    Ok(format!("exported the checkpoint of {size} entries to {} ({written} tiles written)", dir.display()))
}

/// A tile's bytes from the database.
pub fn tile_data(conn: &Connection, tree: &Tree, store: &impl TileStore, tile: TilePath) -> Option<Vec<u8>> {
    match tile {
        TilePath::Hashes { level, n, width } => tree.tile(level, n, width, store),
        TilePath::Entries { n, width } => {
            let first = n.checked_mul(tlog::WIDTH)?;
            let end = first.checked_add(width.unwrap_or(tlog::WIDTH))?;
            if end > tree.size() {
                return None;
            }
            let entries = tables::entries(conn, first as i64, end as i64).ok()?;
            Some(tlog::bundle(entries.iter().map(|e| e.as_bytes())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_has_its_full_tiles_and_one_partial_a_level() {
        let tiles = tiles_of(600);
        let names: Vec<String> = tiles.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            names,
            [
                "tile/0/000",
                "tile/0/001",
                "tile/0/002.p/88",
                "tile/1/000.p/2",
                "tile/entries/000",
                "tile/entries/001",
                "tile/entries/002.p/88"
            ]
        );
        assert!(tiles_of(0).is_empty());
        assert_eq!(tiles_of(256).len(), 3, "tile/0/000, tile/1/000.p/1, tile/entries/000");
    }
}
