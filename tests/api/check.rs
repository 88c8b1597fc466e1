//! `ufrecs check` against a live database, and against copies corrupted three ways.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;

fn check(db: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .arg("check")
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", db)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn copy(app: &TestApp, name: &str) -> std::path::PathBuf {
    let path = app.dir.path().join(name);
    app.db().execute(&format!("VACUUM INTO '{}'", path.display()), []).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_a_live_database_and_names_the_first_fault_of_a_corrupted_copy() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    for i in 1..=30 {
        app.vote(&a, i, "male", "less_30", false).await;
        app.vote(&b, i, if i % 3 == 0 { "female" } else { "male" }, "less_30", false).await;
        app.ballot(&a, i, "PA").await;
    }
    let (code, out, err) = check(&app.db_path());
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains(": ok: integrity") && out.contains("60 accepted values"), "{out}");

    // A copy as the previous schema wrote it (an hourly backup from before an upgrade) is
    // checked as the server would migrate it, and left as it was.
    let old = copy(&app, "v2.sqlite3");
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute_batch(
            "ALTER TABLE votes DROP COLUMN timed; ALTER TABLE office_sources DROP COLUMN last_at; PRAGMA user_version = 2;",
        )
        .unwrap();
    let (code, out, err) = check(&old);
    assert_eq!(code, 0, "{out} {err}");
    let version: i64 =
        rusqlite::Connection::open(&old).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 2, "check changes nothing");

    let values = copy(&app, "values.sqlite3");
    rusqlite::Connection::open(&values)
        .unwrap()
        .execute("UPDATE votes SET gender = 'female' WHERE idx = 4", [])
        .unwrap();
    let (code, _, err) = check(&values);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("index 4") && err.contains("differ"), "{err}");
    let untouched: String = rusqlite::Connection::open(&values)
        .unwrap()
        .query_row("SELECT gender FROM votes WHERE idx = 4", [], |r| r.get(0))
        .unwrap();
    assert_eq!(untouched, "female", "check changes nothing");

    let audit = copy(&app, "audit.sqlite3");
    rusqlite::Connection::open(&audit)
        .unwrap()
        .execute("UPDATE audit_log SET actor = 'admin' WHERE seq = 7", [])
        .unwrap();
    let (code, _, err) = check(&audit);
    assert_eq!((code, err.trim()), (1, "ufrecs: the audit chain breaks at seq 7"));

    let bytes = copy(&app, "bytes.sqlite3");
    let mut data = std::fs::read(&bytes).unwrap();
    let middle = data.len() / 2;
    data[middle..middle + 4096].fill(0x5a);
    std::fs::write(&bytes, data).unwrap();
    let (code, _, err) = check(&bytes);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
