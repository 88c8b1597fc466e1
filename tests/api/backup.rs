//! `ufrecs backup`: a consistent copy of the live database, locally and to S3.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;

fn ufrecs(db: &Path, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .args(args)
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", db)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn audit_head(db: &Path) -> (i64, String) {
    open_read_only(db)
        .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_server_writes_is_a_consistent_copy() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    for i in 1..=20 {
        app.vote(&a, i, "female", "less_60", false).await;
    }
    // Two reporters keep writing while the copy is taken.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load = {
        let (app, writing) = (app.clone(), writing.clone());
        tokio::spawn(async move {
            let mut i = 21;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                app.vote(&a, i, "female", "less_60", false).await;
                app.vote(&b, i, "male", "less_60", true).await;
                i += 1;
            }
            i
        })
    };
    let copy = app.dir.path().join("copy.sqlite3");
    let out = ufrecs(&app.db_path(), &[], &["backup", copy.to_str().unwrap()]);
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let written = load.await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(written > 21, "the load ran during the backup");
    // The copy is whole: integrity, accepted values and the audit chain all check out.
    let check = ufrecs(&copy, &[], &["check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(audit_head(&copy).0 >= 22);
    let again = ufrecs(&app.db_path(), &[], &["backup", copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let nothing = ufrecs(&app.db_path(), &[], &["backup"]);
    assert_eq!(nothing.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_to_s3_uploads_the_snapshot_under_the_backups_folder() {
    let moto = Moto::start().await;
    let op = moto.setup(&[]).await;
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    let env = [
        ("UFRECS_S3_ENDPOINT", moto.endpoint.clone()),
        ("UFRECS_S3_ACCESS_KEY", op.access_key.clone()),
        ("UFRECS_S3_SECRET_KEY", op.secret_key.clone()),
        ("UFRECS_S3_PREFIX", "region-centre".to_string()),
    ];
    let out = ufrecs(&app.db_path(), &env, &["backup", "--s3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let key = stdout.trim().rsplit(&format!("s3://{BUCKET}/")).next().unwrap().to_owned();
    assert!(key.starts_with("region-centre/backups/ufrecs-") && key.ends_with(".sqlite3"), "{key}");
    let s3 = ufrecs::config::S3 {
        endpoint: moto.endpoint.clone(),
        access_key: op.access_key.clone(),
        secret_key: op.secret_key.clone().into(),
        ..Default::default()
    };
    let bucket = ufrecs::s3::operator_bucket(&s3).unwrap();
    let object = bucket.get_object(&key).await.unwrap();
    let downloaded = app.dir.path().join("downloaded.sqlite3");
    std::fs::write(&downloaded, object.bytes()).unwrap();
    assert_eq!(audit_head(&downloaded), audit_head(&app.db_path()));
    let leftovers: Vec<_> = std::fs::read_dir(app.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("ufrecs-backup-"))
        .collect();
    assert!(leftovers.is_empty(), "the scratch copy is removed");
    let wrong = ufrecs(
        &app.db_path(),
        &[
            ("UFRECS_S3_SECRET_KEY", "wrong".into()),
            ("UFRECS_S3_ENDPOINT", moto.endpoint.clone()),
            ("UFRECS_S3_ACCESS_KEY", op.access_key.clone()),
        ],
        &["backup", "--s3"],
    );
    assert_eq!(wrong.status.code(), Some(1));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains("wrong"), "no secret in the error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_into_a_fresh_data_directory_serves_identical_figures() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    for i in 1..=12 {
        app.vote(&a, i, "female", "less_60", i % 3 == 0).await;
        app.vote(&b, i, if i % 4 == 0 { "male" } else { "female" }, "less_60", false).await;
        app.ballot(&a, i, if i % 2 == 0 { "PA" } else { "PB" }).await;
    }
    let copy = app.dir.path().join("backup.sqlite3");
    let out = ufrecs(&app.db_path(), &[], &["backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Restore as docs/operations.md says: the copy and the secret file into a new folder.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, fresh.path().join("ufrecs.sqlite3")).unwrap();
    std::fs::copy(&app.settings.auth.secret_file, fresh.path().join("secret")).unwrap();
    std::fs::copy(&app.settings.log.key_file, fresh.path().join("log-key")).unwrap();
    let restored = TestApp::spawn_with(|s| {
        s.database.path = fresh.path().join("ufrecs.sqlite3");
        s.auth.secret_file = fresh.path().join("secret");
        s.log.key_file = fresh.path().join("log-key");
    })
    .await;
    for path in [
        "/api/pollofficesstats/PO-1/",
        "/api/pollofficeresults/PO-1/",
        "/api/pollofficestats/?poll_office=PO-1",
        "/api/audit/head/",
    ] {
        let (x, y) = (app.get(path).await, restored.get(path).await);
        assert_eq!(x.body, y.body, "{path}");
        assert_eq!(x.headers["etag"], y.headers["etag"], "{path}");
    }
}
