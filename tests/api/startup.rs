//! Start-up: the hashing secret, and what the log may never hold.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hashing_secret_is_generated_private_and_kept_across_restarts() {
    let mut app = TestApp::spawn().await;
    let path = app.dir.path().join("secret");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = std::fs::read_to_string(&path).unwrap();
    assert_eq!(first.trim().len(), 64);
    app.restart().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_to_start_without_its_secret_once_voters_have_verified() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    {
        let c = rusqlite::Connection::open(app.db_path()).unwrap();
        c.execute(
            "INSERT INTO vote_verifications (vote_id, voter_hash, gender, age, has_torn, created_at)
             SELECT id, 'h', 'male', 'less_30', 0, first_reported_at FROM votes",
            [],
        )
        .unwrap();
    }
    std::fs::remove_file(app.dir.path().join("secret")).unwrap();
    let serve = || {
        Command::new(env!("CARGO_BIN_EXE_ufrecs"))
            .arg("serve")
            .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
            .env("UFRECS_SERVER_LISTEN", "127.0.0.1:0")
            .env("UFRECS_DATABASE_PATH", app.db_path())
            .env("UFRECS_AUTH_SECRET_FILE", app.dir.path().join("secret"))
            .output()
            .unwrap()
    };
    let out = serve();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("verifications exist"), "{err}");
    assert!(!app.dir.path().join("secret").exists(), "no new secret was made");
    // Another box's secret in its place (a restore onto a new box that made its own): refused too.
    std::fs::write(app.dir.path().join("secret"), format!("{}\n", "ab".repeat(32))).unwrap();
    let out = serve();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not the secret this database's 1 verifications were hashed with"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_stops_the_start_with_a_one_line_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .arg("serve")
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_SYNCHRONOUS", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("synchronous"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_password_or_secret_reaches_the_log_even_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = Process::spawn_with(dir.path(), "debug", Stdio::from(std::fs::File::create(&log).unwrap()), &[]);
    let client = reqwest::Client::new();
    let password = "Very-Secret-Passphrase-42";
    let auth = client
        .post(format!("{}/api/authenticate/", server.base))
        .body(json!({"elector_id": "LOG-1", "poll_office_id": "PO-L", "password": password}).to_string())
        .send()
        .await
        .unwrap();
    let token = auth.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let vote = client
        .post(format!("{}/api/vote/", server.base))
        .basic_auth("LOG-1", Some(&token))
        .body(json!({"index": 1, "gender": "male", "age": "less_30"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(vote.status(), 201);
    client
        .post(format!("{}/api/authenticate/", server.base))
        .body(json!({"elector_id": "LOG-1", "poll_office_id": "PO-L", "password": "Wrong-Guess-99"}).to_string())
        .send()
        .await
        .unwrap();
    client
        .post(format!("{}/api/reporters/", server.base))
        .bearer_auth(ADMIN)
        .body(json!({"elector_id": "LOG-2", "type": "official"}).to_string())
        .send()
        .await
        .unwrap();
    server.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("POST /api/vote/ 201"), "requests are logged at debug level: {text}");
    assert!(text.contains("[REDACTED]"), "the admin token is shown redacted");
    let secret = std::fs::read_to_string(dir.path().join("secret")).unwrap();
    for leak in [token.as_str(), password, "Wrong-Guess-99", ADMIN, secret.trim()] {
        assert!(!text.contains(leak), "{leak} leaked into the log");
    }
}

/// `ufrecs serve` on the app's files with that log key: how it exited.
fn serve_with_key(app: &TestApp, key: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .arg("serve")
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_SERVER_LISTEN", "127.0.0.1:0")
        .env("UFRECS_DATABASE_PATH", app.db_path())
        .env("UFRECS_AUTH_SECRET_FILE", app.dir.path().join("secret"))
        .env("UFRECS_LOG_KEY_FILE", key)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_to_start_without_the_log_key_once_it_signed_checkpoints() {
    let mut app = TestApp::spawn().await;
    let key = app.settings.log.key_file.clone();
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "created 0600");
    app.stop().await;
    std::fs::remove_file(&key).unwrap();
    let out = serve_with_key(&app, &key);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signed checkpoints"), "{err}");
    assert!(!key.exists(), "no new key was made");
    // A key of another origin is refused too: a log's origin never changes.
    let (other, text) = ufrecs::domain::note::LogKey::generate("elsewhere.example/log").unwrap();
    drop(other);
    std::fs::write(&key, text).unwrap();
    let out = serve_with_key(&app, &key);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("origin"));
}
