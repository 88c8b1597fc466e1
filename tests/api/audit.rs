//! The audit chain: served head and pages, no personal data, and the Python verifier of
//! docs/integrators.md run against a real database file.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::*;

async fn busy_app() -> TestApp {
    let app = TestApp::spawn().await;
    let a = app.login("02-12-069-0080-16-000700", "CM-CE-000001", Some("S3cret-Pw")).await;
    let b = app.reporter("VOTER-LIKE-ID-9", "CM-CE-000001").await;
    app.authenticate_with("02-12-069-0080-16-000700", "CM-CE-000001", Some("Guess-123")).await;
    for i in 1..=5 {
        app.vote(&a, i, "female", "less_60", i % 2 == 0).await;
        app.vote(&b, i, "male", "less_60", false).await;
    }
    app.vote(&a, 1, "male", "less_30", false).await;
    app.ballot(&a, 1, "PB").await;
    app.ballot(&a, 1, "PA").await;
    app.admin_patch("/api/sources/VOTER-LIKE-ID-9/", json!({"status": "independent"})).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_and_pages_expose_a_verifiable_chain_without_personal_data() {
    let app = TestApp::spawn().await;
    let empty = app.get("/api/audit/head/").await.body;
    assert_eq!(empty, json!({"seq": 0, "hash": "0".repeat(64), "at": null}));
    drop(app);
    let app = busy_app().await;
    let head = app.get("/api/audit/head/").await.body;
    let n = head["seq"].as_i64().unwrap();
    assert!(n > 15);
    let mut all: Vec<Value> = Vec::new();
    let mut next = Some(app.url("/api/audit/?limit=4"));
    while let Some(url) = next {
        let page = app.send(app.client.get(&url)).await.body;
        all.extend(page["results"].as_array().unwrap().iter().cloned());
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(all.len() as i64, n);
    let whole = app.get("/api/audit/?after=0&limit=1000").await.body;
    assert_eq!(whole["results"].as_array().unwrap().len() as i64, n);
    assert_eq!(whole["next"], Value::Null, "no link past the last entry");
    let exact = app.get(&format!("/api/audit/?after=0&limit={n}")).await.body;
    assert_eq!(exact["next"], Value::Null, "a full last page has no next either");
    // Cacheable: a complete page for a day, the head and the last page briefly; ETags.
    let complete = app.get("/api/audit/?after=0&limit=4").await;
    assert_eq!(complete.headers["cache-control"], "public, max-age=86400");
    let last = app.get(&format!("/api/audit/?after={}&limit=4", n - 1)).await;
    assert_eq!(last.headers["cache-control"], "public, max-age=1");
    let h = app.get("/api/audit/head/").await;
    assert_eq!(h.headers["cache-control"], "public, max-age=1");
    let etag = h.headers["etag"].to_str().unwrap().to_owned();
    let again = app.send(app.client.get(app.url("/api/audit/head/")).header("if-none-match", &etag)).await;
    assert_eq!(again.status, 304);
    assert_eq!(all.last().unwrap()["hash"], head["hash"]);
    let mut prev = "0".repeat(64);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["seq"], i as i64 + 1);
        let mut entry = e.clone();
        entry.as_object_mut().unwrap().remove("hash");
        let canonical = ufrecs::domain::audit::canonical(&entry);
        assert_eq!(ufrecs::domain::audit::chain_hash(&prev, &canonical), e["hash"].as_str().unwrap());
        prev = e["hash"].as_str().unwrap().to_owned();
    }
    let text = serde_json::to_string(&all).unwrap();
    for private in ["02-12-069-0080-16-000700", "VOTER-LIKE-ID-9", "S3cret-Pw", "Guess-123"] {
        assert!(!text.contains(private), "{private} in the audit log");
    }
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for k in [
        "source_created",
        "auth_succeeded",
        "auth_failed",
        "vote_proposed",
        "vote_corrected",
        "ballot_proposed",
        "ballot_corrected",
        "source_updated",
    ] {
        assert!(kinds.contains(&k), "{k} missing");
    }
}

/// The Python block that follows the "Verifying the audit chain" heading of the doc.
fn documented_verifier() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/integrators.md")).unwrap();
    let section = doc.split("## Verifying the audit chain").nth(1).expect("the doc has the section");
    let code = section.split("```python\n").nth(1).expect("a python block");
    code.split("```").next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_python_verifier_accepts_the_chain_and_finds_a_rewrite() {
    let app = busy_app().await;
    let script = app.dir.path().join("verify.py");
    std::fs::write(&script, documented_verifier()).unwrap();
    let run = |source: &std::ffi::OsStr| Command::new("python3").arg(&script).arg(source).output().unwrap();
    let head = app.get("/api/audit/head/").await.body;
    // From the file and from the API alike.
    for source in [app.db_path().into_os_string(), app.base.clone().into()] {
        let ok = run(&source);
        let stdout = String::from_utf8_lossy(&ok.stdout);
        assert!(ok.status.success(), "{source:?}: {stdout} {}", String::from_utf8_lossy(&ok.stderr));
        assert!(stdout.contains(head["hash"].as_str().unwrap()), "prints the head: {stdout}");
    }
    // Rewrite history in a copy: the verifier names the entry.
    let copy = app.dir.path().join("copy.sqlite3");
    app.db().execute(&format!("VACUUM INTO '{}'", copy.display()), []).unwrap();
    let c = rusqlite::Connection::open(&copy).unwrap();
    c.execute("UPDATE audit_log SET detail = '{\"reason\":\"none\"}' WHERE seq = 5", []).unwrap();
    drop(c);
    let bad = run(copy.as_os_str());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("seq 5"), "{}", String::from_utf8_lossy(&bad.stdout));

    // Whoever runs the box edits a row of the live table by hand: the API now serves the
    // rewritten entry, and both the script (through the API) and `ufrecs check` name it.
    let live = rusqlite::Connection::open(app.db_path()).unwrap();
    live.execute("UPDATE audit_log SET actor = 'system' WHERE seq = 7", []).unwrap();
    drop(live);
    let bad = run(std::ffi::OsStr::new(&app.base));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("broken at seq 7"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    assert_eq!(bad.status.code(), Some(1));
    let check = Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .arg("check")
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", app.db_path())
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(err.contains("seq 7") && err.trim().lines().count() == 1, "{err}");

    // A careful rewriter recomputes every later hash: the chain verifies again, and only
    // the head an observer recorded earlier shows the rewrite (docs/security.md).
    rehash_chain(&rusqlite::Connection::open(app.db_path()).unwrap());
    assert!(run(std::ffi::OsStr::new(&app.base)).status.success(), "a recomputed chain verifies");
    assert_ne!(app.get("/api/audit/head/").await.body["hash"], head["hash"], "but the recorded head differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_example_queries_run_against_a_real_database() {
    let app = busy_app().await;
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/integrators.md")).unwrap();
    let sql = doc.split("```sql\n").nth(1).expect("a sql block").split("```").next().unwrap();
    let db = app.db();
    let mut ran = 0;
    for statement in sql.split(';').map(str::trim).filter(|s| s.lines().any(|l| !l.trim_start().starts_with("--"))) {
        let mut stmt = db.prepare(statement).unwrap_or_else(|e| panic!("{statement}: {e}"));
        let mut rows = stmt.query([]).unwrap();
        while rows.next().unwrap().is_some() {}
        ran += 1;
    }
    assert_eq!(ran, 7);
    let votes: i64 = db.query_row(sql.split(';').next().unwrap(), [], |r| r.get(0)).unwrap();
    assert_eq!(votes, app.stats("CM-CE-000001").await["totals"]["votes"].as_i64().unwrap());
}
