//! The operator's commands run as the real binary against the database the real server is
//! serving; their effects show through the API within a second, in one audit chain.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::helpers::*;

fn ufrecs(db: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .args(args)
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_commands_take_effect_in_the_running_server() {
    let app = TestApp::spawn().await;
    let db = app.db_path();
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    app.vote(&b, 1, "female", "less_30", false).await;
    assert_eq!(app.stats("PO-1").await["totals"]["disputed"], 1);

    // A status change re-weighs the office: the trusted reporter's word is taken.
    let (code, out, err) = ufrecs(&db, &["source", "set-status", "E-1", "official"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("official"), "{out}");
    eventually("the server to follow the status change", || async {
        let t = app.stats("PO-1").await["totals"].clone();
        (t["male"] == 1 && t["disputed"] == 0 && t["sources"] == 1).then_some(())
    })
    .await;

    // A password reset revokes the source's tokens in the server's memory too.
    assert_eq!(app.vote(&b, 2, "female", "less_30", false).await.status, 201);
    let (code, _, err) = ufrecs(&db, &["source", "set-password", "E-2"], Some("new-secret\n"));
    assert_eq!(code, 0, "{err}");
    eventually("the old token to be refused", || async {
        (app.vote(&b, 3, "female", "less_30", false).await.status == 401).then_some(())
    })
    .await;
    assert_eq!(app.login("E-2", "PO-1", Some("new-secret")).await.status, 200);

    // A source enrolled on the box, then given a password.
    let (code, out, _) =
        ufrecs(&db, &["source", "add", "OFF-7", "--status", "political_party", "--full-name", "Awa N."], None);
    assert_eq!(code, 0);
    assert!(out.contains("no password"), "{out}");
    assert_eq!(app.authenticate_with("OFF-7", "PO-2", Some("x")).await.status, 401, "trusted without a password");
    ufrecs(&db, &["source", "set-password", "OFF-7"], Some("pp\n"));
    assert_eq!(app.login("OFF-7", "PO-2", Some("pp")).await.status, 200);

    // Mistakes: one line on standard error, exit status 1; nothing stored changed.
    let before = app.fingerprint();
    for (args, input, says) in [
        (vec!["source", "add", "OFF-7"], None, "already exists"),
        (vec!["source", "set-status", "NOBODY", "official"], None, "no such source"),
        (vec!["source", "set-status", "E-1", "boss"], None, "status"),
        (vec!["source", "add", "a/b"], None, "elector_id"),
        (vec!["source", "set-password", "E-1"], Some(""), "password"),
    ] {
        let (code, _, err) = ufrecs(&db, &args, input);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(app.fingerprint(), before);
    let (code, out, _) = ufrecs(&db, &["source", "--help"], None);
    assert_eq!(code, 0);
    assert!(out.contains("set-password"));

    // One audit chain, written by both processes.
    let (code, out, err) = ufrecs(&db, &["check"], None);
    assert_eq!(code, 0, "{out} {err}");
    let actors: Vec<String> = app
        .db()
        .prepare("SELECT DISTINCT actor FROM audit_log WHERE actor IN ('cli', 'admin') ORDER BY actor")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(actors, ["cli"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_cli_survives_an_entry_it_cannot_read_and_says_so_meanwhile() {
    let app = TestApp::spawn().await;
    let db = app.db_path();
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    app.vote(&b, 1, "female", "less_30", false).await;
    // Another process commits an entry the server cannot read (an integrator's hand on
    // the file): following fails, is retried, and /healthz says so instead of "ok".
    let rw = rusqlite::Connection::open(&db).unwrap();
    rw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    rw.execute(
        "INSERT INTO audit_log (seq, at, kind, actor, poll_office_id, detail, hash)
         SELECT MAX(seq) + 1, '2025-08-15T14:00:00Z', 'source_updated', 'cli', NULL, 'not json', '' FROM audit_log",
        [],
    )
    .unwrap();
    let health = eventually("/healthz to report the follower retrying", || async {
        let r = app.get("/healthz").await;
        (r.body["follow"] == "retrying").then_some(r)
    })
    .await;
    assert_eq!((health.status.as_u16(), health.body["status"].as_str()), (503, Some("degraded")));
    assert_eq!(health.body["database"], "ok");
    assert!(app.metric("ufrecs_follow_failures_total").await >= 1);
    // The entry is mended: following resumes from it, and what the CLI writes next shows.
    rw.execute("UPDATE audit_log SET detail = '{}' WHERE detail = 'not json'", []).unwrap();
    let (code, _, err) = ufrecs(&db, &["source", "set-status", "E-1", "official"], None);
    assert_eq!(code, 0, "{err}");
    eventually("the follower to recover and reload", || async {
        let ok = app.get("/healthz").await.body["follow"] == "ok";
        let t = app.stats("PO-1").await["totals"].clone();
        (ok && t["male"] == 1 && t["disputed"] == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_while_the_server_runs_opens_the_office_under_the_strict_registry() {
    let app = TestApp::spawn_with(|s| s.registry.strict = ufrecs::config::Strict::Yes).await;
    let r = app.authenticate_with("E-1", "PO-NEW", None).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "unknown_poll_office"));
    let csv = app.dir.path().join("offices.csv");
    std::fs::write(&csv, "identifier,name\nPO-NEW,Mairie de Bafia\n").unwrap();
    let (code, out, err) = ufrecs(&app.db_path(), &["import", "poll-offices", csv.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 created"), "{out}");
    eventually("the server to load the new office", || async {
        (app.authenticate_with("E-1", "PO-NEW", None).await.status == 201).then_some(())
    })
    .await;
    let bad = app.dir.path().join("bad.csv");
    std::fs::write(&bad, "identifier,name\nPO-OK,Fine\nPO/BAD,Broken\n").unwrap();
    let (code, _, err) = ufrecs(&app.db_path(), &["import", "poll-offices", bad.to_str().unwrap()], None);
    assert_eq!(code, 1);
    assert!(err.contains("line 3"), "{err}");
    let n: i64 =
        app.db().query_row("SELECT COUNT(*) FROM poll_offices WHERE identifier = 'PO-OK'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "nothing of a bad file is imported");
}

#[test]
fn every_subcommand_has_help_and_a_usage_mistake_is_one_line() {
    let db = Path::new("/nonexistent/ufrecs.sqlite3");
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["backup", "--help"],
        &["check", "--help"],
        &["import", "--help"],
        &["import", "poll-offices", "--help"],
        &["import", "parties", "--help"],
        &["source", "add", "--help"],
        &["source", "set-status", "--help"],
        &["source", "set-password", "--help"],
        &["simulate", "--help"],
    ] {
        let (code, out, _) = ufrecs(db, args, None);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage: ufrecs"), "{args:?}: {out}");
    }
    for (args, says) in [
        (&["frobnicate"][..], "frobnicate"),
        (&["source", "add"], "<ELECTOR_ID>"),
        (&["import", "parties"], "<FILE>"),
        (&["check", "--nope"], "--nope"),
    ] {
        let (code, out, err) = ufrecs(db, args, None);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty());
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Without the database, no subcommand but serve creates one: an operator who forgot
    // --config learns where it looked instead of writing into a stray new file.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("parties.csv");
    std::fs::write(&csv, "identifier,party_name\nPA,Parti A\n").unwrap();
    let backup = dir.path().join("copy.sqlite3");
    for args in [
        vec!["check"],
        vec!["import", "parties", csv.to_str().unwrap()],
        vec!["source", "add", "E-1"],
        vec!["source", "set-status", "E-1", "official"],
        vec!["backup", backup.to_str().unwrap()],
    ] {
        let (code, out, err) = ufrecs(db, &args, None);
        assert_eq!((code, out.as_str(), err.trim().lines().count()), (1, "", 1), "{args:?}: {err}");
        assert!(err.contains(db.to_str().unwrap()) && err.contains("--config"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_election_day_ends_with_every_total_as_sent() {
    let app = crate::directory::with_demo_directory().await;
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ufrecs"))
            .arg("simulate")
            .args(["--url", &app.base])
            .args(args)
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| {
        run(&["--offices", "4", "--voters", "25", "--seconds", "3", "--readers", "3", "--verify-share", "0.3"])
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("totals checked: 4 offices, 0 wrong"), "{stdout}");
    assert!(stdout.contains("vote/batch") && stdout.contains("ws connect"), "{stdout}");
    let national = app.get("/api/pollofficestats/").await.body;
    assert_eq!(national["totals"]["votes"], 100);
    // A day compressed into seconds still carries a day's passage times: no office looks
    // like stuffing.
    let flags = app.get("/api/flags/").await.body.to_string();
    assert!(!flags.contains("fast_voting"), "{flags}");
    assert!(national["totals"]["verified"].as_u64().unwrap() > 0);

    // The offices it used have data now: another run looks for fresh ones, and there are
    // not enough of them.
    let again = tokio::task::block_in_place(|| run(&["--offices", "17", "--voters", "2", "--seconds", "1"]));
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("16 offices without data"));
    // Never a target off this machine.
    let remote = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_ufrecs"))
            .args(["simulate", "--url", "http://192.0.2.1:8000"])
            .output()
            .unwrap()
    });
    assert_eq!(remote.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&remote.stderr).contains("loopback"));
}
