//! What survives: a restart, repeated kill -9 under load, and a commit that fails on a
//! real I/O fault (a file-size limit on the server process: the disk is full).

use std::sync::Arc;

use futures_util::future::join_all;
use parking_lot::Mutex;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_results_and_tokens_are_identical_after_a_restart() {
    let mut app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    let official = app.official("OFF-1", "PO-2").await;
    for i in 1..=12 {
        app.vote(&a, i, if i % 3 == 0 { "female" } else { "male" }, "less_30", i % 4 == 0).await;
        app.vote(&b, i, "male", if i % 2 == 0 { "more_60" } else { "less_30" }, false).await;
        app.ballot(&a, i, if i % 2 == 0 { "PA" } else { "PB" }).await;
        app.vote(&official, i, "female", "less_60", true).await;
    }
    app.ballot(&b, 1, "PC").await;
    let offices = ["PO-1", "PO-2", "PO-3"];
    let mut before = Vec::new();
    for o in offices {
        let s = app.get(&format!("/api/pollofficesstats/{o}/")).await;
        let r = app.get(&format!("/api/pollofficeresults/{o}/")).await;
        before.push((s.body, s.headers["etag"].clone(), r.body, r.headers["etag"].clone()));
    }
    let head = app.get("/api/audit/head/").await.body;
    app.restart().await;
    for (o, expected) in offices.iter().zip(&before) {
        let s = app.get(&format!("/api/pollofficesstats/{o}/")).await;
        let r = app.get(&format!("/api/pollofficeresults/{o}/")).await;
        assert_eq!(
            (&s.body, &s.headers["etag"], &r.body, &r.headers["etag"]),
            (&expected.0, &expected.1, &expected.2, &expected.3),
            "{o}"
        );
    }
    assert_eq!(app.get("/api/audit/head/").await.body, head);
    assert_eq!(app.vote(&a, 1, "male", "less_30", false).await.status, 200, "the token survived");
    assert_eq!(app.vote(&official, 13, "female", "less_60", true).await.status, 201);
}

/// Writes from 4 reporters until `n` are acknowledged, then kill -9; what was acknowledged.
async fn kill_during_writes(server: Process, round: usize, n: usize) -> Vec<(String, i64)> {
    let app = remote(&server.base);
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(app.login(&format!("K-{round}-{i}"), "PO-K").await);
    }
    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let mut writers = Vec::new();
    for s in sessions {
        let acked = acked.clone();
        let app = remote(&server.base);
        writers.push(tokio::spawn(async move {
            for index in 1..=100_000 {
                match app.vote(&s, index).await {
                    Ok((201, _)) => acked.lock().push((s.elector_id.clone(), index)),
                    _ => break,
                }
            }
        }));
    }
    eventually("acknowledged writes", || {
        let k = acked.lock().len();
        async move { (k >= n).then_some(()) }
    })
    .await;
    server.kill();
    join_all(writers).await;
    let acked = acked.lock().clone();
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_repeated_kills_during_a_write_load() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("ufrecs.sqlite3");
    let mut acked = Vec::new();
    for round in 0..3 {
        acked.extend(kill_during_writes(Process::spawn(dir.path()), round, 150).await);
    }
    let db = open_read_only(&db_path);
    let mut stmt = db
        .prepare("SELECT COUNT(*) FROM vote_proposals p JOIN sources s ON s.n = p.source_n WHERE s.elector_id = ?1 AND p.idx = ?2")
        .unwrap();
    for (elector, index) in &acked {
        let n: i64 = stmt.query_row(rusqlite::params![elector, index], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "acknowledged vote {elector}/{index} lost");
    }
    drop(stmt);
    drop(db);
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .arg("check")
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", &db_path)
        .output()
        .unwrap();
    assert!(check.status.success(), "ufrecs check: {}", String::from_utf8_lossy(&check.stderr));

    let server = Process::spawn(dir.path());
    let app = remote(&server.base);
    let (_, stats) = app.get("/api/pollofficesstats/PO-K/").await;
    let max_acked = acked.iter().map(|(_, i)| *i).max().unwrap();
    assert!(stats["totals"]["votes"].as_i64().unwrap() >= max_acked, "{stats}");
    let stored: i64 =
        open_read_only(&db_path).query_row("SELECT COUNT(*) FROM votes WHERE counted = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(stats["totals"]["votes"], stored, "memory rebuilt from the tables");
    server.kill();
}

fn set_file_size_limit(pid: i32, bytes: u64) {
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: prlimit with a valid pid and a pointer to a live rlimit.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_answers_503_to_every_request_in_it_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::spawn(dir.path());
    let app = remote(&server.base);
    let s = app.login("F-1", "PO-F").await;
    assert_eq!(app.vote(&s, 1).await.unwrap().0, 201);
    let db = dir.path().join("ufrecs.sqlite3");
    let before = fingerprint(&db);
    let (_, stats_before) = app.get("/api/pollofficesstats/PO-F/").await;

    set_file_size_limit(server.pid(), 1);
    let replies = join_all((2..=9).map(|i| app.vote(&s, i))).await;
    for r in replies {
        let (status, body) = r.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "unavailable");
        assert_eq!(body["retry_after_header"], true);
    }
    let (status, health) = app.get("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (503, Some("degraded")));
    assert_eq!(fingerprint(&db), before, "nothing stored changed");
    assert_eq!(app.get("/api/pollofficesstats/PO-F/").await.1, stats_before, "nothing in memory changed");
    // Reads keep working, from memory and from SQL.
    let (status, head) = app.get("/api/audit/head/").await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(app.get("/api/audit/?limit=5").await.0, 200);
    assert_eq!(app.get("/api/pollofficeresults/PO-F/").await.0, 200);

    set_file_size_limit(server.pid(), libc::RLIM_INFINITY);
    assert_eq!(app.vote(&s, 2).await.unwrap().0, 201);
    assert_eq!(app.get("/healthz").await.0, 200);
    let (_, stats) = app.get("/api/pollofficesstats/PO-F/").await;
    assert_eq!(stats["totals"]["votes"], 2);
    assert_eq!(app.vote(&s, 1).await.unwrap().0, 200, "the earlier vote is intact");
    server.kill();
}
