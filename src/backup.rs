//! `ufrecs backup [FILE] [--s3]`: a consistent copy of the live database, taken while the
//! server runs (SQLite's online backup API, all pages in one step, so one read transaction
//! in WAL mode: the writer is never blocked), written next to its destination and
//! renamed into place; with `--s3`, uploaded to `{s3.prefix}backups/ufrecs-{timestamp}.sqlite3`
//! with the operator's key (no reporter's policy reaches it: their prefixes always hold a
//! poll office folder).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::config;
use crate::domain::time::Timestamp;

/// Copies the database at `db` to `dest` (which must not exist yet).
pub fn snapshot(db: &Path, dest: &Path) -> Result<(), String> {
    if dest.exists() {
        return Err(format!("{} already exists", dest.display()));
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    copy(&conn, &partial).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot copy the database: {e}")
    })?;
    std::fs::rename(&partial, dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))
}

fn copy(src: &Connection, to: &Path) -> rusqlite::Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let mut dst = Connection::open(to)?;
    let backup = Backup::new(src, &mut dst)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            // Another connection holds a lock it will release: try again shortly.
            StepResult::Busy | StepResult::Locked => std::thread::sleep(std::time::Duration::from_millis(50)),
            _ => {}
        }
    }
    Err(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None))
}

/// The object key of a backup taken at `at`.
pub fn s3_key(s3: &config::S3, at: Timestamp) -> String {
    format!("{}backups/ufrecs-{}.sqlite3", s3.prefix, at.format("%Y%m%dT%H%M%SZ"))
}

/// Uploads a snapshot file; returns its key.
pub async fn upload(s3: &config::S3, file: &Path, at: Timestamp) -> Result<String, String> {
    if s3.endpoint.is_empty() {
        return Err("S3 is not configured (s3.endpoint is empty)".into());
    }
    let bucket = crate::s3::operator_bucket(s3)?;
    let key = s3_key(s3, at);
    let mut reader = tokio::fs::File::open(file).await.map_err(|e| format!("{}: {e}", file.display()))?;
    // The error's text can carry the request; only its kind is reported.
    bucket
        .put_object_stream_with_content_type(&mut reader, &key, "application/vnd.sqlite3")
        .await
        .map_err(|e| format!("upload to {key} failed: {}", upload_error(&e)))?;
    Ok(key)
}

pub fn upload_error(e: &::s3::error::S3Error) -> String {
    match e {
        ::s3::error::S3Error::HttpFailWithBody(status, _) => format!("HTTP {status}"),
        ::s3::error::S3Error::Reqwest(_) => "S3 unreachable".into(),
        _ => "S3 error".into(),
    }
}

/// A temporary file beside the database for a snapshot that is only uploaded.
pub fn scratch_path(db: &Path, at: Timestamp) -> PathBuf {
    let name = format!("ufrecs-backup-{}.sqlite3", at.format("%Y%m%dT%H%M%SZ"));
    db.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from(&name), |p| p.join(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_go_under_the_configured_folder_with_a_sortable_name() {
        let mut s3 = config::S3::default();
        let at = crate::domain::time::parse("2025-08-15T14:02:11Z").unwrap();
        assert_eq!(s3_key(&s3, at), "backups/ufrecs-20250815T140211Z.sqlite3");
        s3.prefix = "media/".into();
        assert_eq!(s3_key(&s3, at), "media/backups/ufrecs-20250815T140211Z.sqlite3");
    }

    #[test]
    fn a_snapshot_copies_the_data_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite3");
        let conn = crate::store::open(&db, crate::store::Durability::FULL).unwrap();
        conn.execute("INSERT INTO parties (identifier) VALUES ('PA')", []).unwrap();
        let copy = dir.path().join("copy.sqlite3");
        snapshot(&db, &copy).unwrap();
        let n: i64 =
            Connection::open(&copy).unwrap().query_row("SELECT COUNT(*) FROM parties", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        assert!(snapshot(&db, &copy).unwrap_err().contains("already exists"));
    }
}
