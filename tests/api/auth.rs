//! Authentication: sources, passwords, tokens (rotation, expiry, reset) and rate limits.

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_elector_becomes_an_unverified_source_and_a_known_one_gets_200() {
    let app = TestApp::spawn().await;
    let first = app.login("02-12-069-0080-16-000700", "PO-001", None).await;
    assert_eq!(first.status, 201);
    let b = &first.body;
    assert_eq!(b["poll_office_id"], "PO-001");
    assert_eq!(b["source"], json!({"elector_id": "02-12-069-0080-16-000700", "status": "unverified"}));
    assert!(first.token.len() >= 22, "at least 128 bits");
    assert!(b["expires_at"].as_str().unwrap().ends_with('Z'));
    let s3 = &b["s3"];
    assert_eq!(s3["base_path"], "s3://ufrecs-media/PO-001/source-02-12-069-0080-16-000700/");
    assert_eq!(s3["credentials"]["prefix"], "PO-001/source-02-12-069-0080-16-000700");
    assert_eq!(s3["error"], "unconfigured");
    for k in ["access_key", "secret_key", "session_token", "accessKeyId", "secretAccessKey", "sessionToken"] {
        assert_eq!(s3["credentials"][k], "", "{k}");
    }
    for k in ["expiration", "bucket", "region", "endpoint"] {
        assert!(s3["credentials"][k].is_string(), "{k}");
    }
    let again = app.login("02-12-069-0080-16-000700", "PO-001", None).await;
    assert_eq!(again.status, 200);
    assert_ne!(again.token, first.token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let s = app.login("E-1", "PO-1", Some("secret-pw")).await;
    let dump = app.fingerprint();
    assert!(!dump.contains(&s.token));
    assert!(!dump.contains("secret-pw"));
    let hashes: i64 =
        app.db().query_row("SELECT COUNT(*) FROM tokens WHERE length(token_hash) = 64", [], |r| r.get(0)).unwrap();
    assert_eq!(hashes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_password_sticks_and_is_then_always_required() {
    let app = TestApp::spawn().await;
    app.login("E-1", "PO-1", None).await;
    app.login("E-1", "PO-1", Some("first-pw")).await;
    let r = app.authenticate_with("E-1", "PO-1", None).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    let r = app.authenticate_with("E-1", "PO-1", Some("")).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"), "empty is absent");
    let r = app.authenticate_with("E-1", "PO-1", Some("other")).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    assert_eq!(app.login("E-1", "PO-1", Some("first-pw")).await.status, 200);
    let hash: String = app.db().query_row("SELECT password_hash FROM sources", [], |r| r.get(0)).unwrap();
    assert!(hash.starts_with("$argon2id$"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_source_without_a_password_cannot_be_taken_over() {
    let app = TestApp::spawn().await;
    let r = app.admin_post("/api/reporters/", json!({"elector_id": "OFF-1", "type": "official"})).await;
    assert_eq!(r.status, 201);
    let r = app.authenticate_with("OFF-1", "PO-1", Some("attacker")).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    let r = app.authenticate_with("OFF-1", "PO-1", None).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    app.admin_patch("/api/sources/OFF-1/", json!({"password": "set-by-operator"})).await;
    assert_eq!(app.login("OFF-1", "PO-1", Some("set-by-operator")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticating_again_rotates_that_offices_token_only() {
    let app = TestApp::spawn().await;
    let old = app.login("E-1", "PO-1", None).await;
    let other_office = app.login("E-1", "PO-2", None).await;
    let new = app.login("E-1", "PO-1", None).await;
    let r = app.vote(&old, 1, "male", "less_30", false).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    assert_eq!(app.vote(&new, 1, "male", "less_30", false).await.status, 201);
    assert_eq!(app.vote(&other_office, 1, "male", "less_30", false).await.status, 201);
    assert_eq!(app.stats("PO-2").await["totals"]["votes"], 1, "the token's office is where it votes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_revokes_every_token_of_the_source() {
    let app = TestApp::spawn().await;
    let a = app.login("E-1", "PO-1", None).await;
    let b = app.login("E-1", "PO-2", None).await;
    let r = app.admin_patch("/api/sources/E-1/", json!({"password": "new-pw"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["source"]["has_password"], true);
    for s in [&a, &b] {
        let r = app.vote(s, 1, "male", "less_30", false).await;
        assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_told_apart() {
    let app = TestApp::spawn_with(|s| s.auth.token_ttl_secs = 60).await;
    let a = app.login("E-1", "PO-1", None).await;
    app.advance(59);
    assert_eq!(app.vote(&a, 1, "male", "less_30", false).await.status, 201);
    app.advance(2);
    let r = app.vote(&a, 2, "male", "less_30", false).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "token_expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_an_elector_out_without_flooding_the_audit_log() {
    let app = TestApp::spawn().await;
    app.login("E-1", "PO-1", Some("right")).await;
    for _ in 0..5 {
        let r = app.authenticate_with("E-1", "PO-1", Some("wrong")).await;
        assert_eq!(r.status, 401);
    }
    let audited = || -> i64 {
        app.db().query_row("SELECT COUNT(*) FROM audit_log WHERE kind = 'auth_failed'", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(audited(), 5);
    let r = app.authenticate_with("E-1", "PO-1", Some("right")).await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"), "even the right password waits");
    assert_eq!(r.headers["retry-after"], "60");
    assert_eq!(audited(), 5, "429s are not audited");
    assert_eq!(app.login("E-2", "PO-1", None).await.status, 201, "others are not locked out");
    app.advance(61);
    assert_eq!(app.login("E-1", "PO-1", Some("right")).await.status, 200);
    assert!(app.metric("ufrecs_rate_limited_total").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_limited_per_client_address_behind_a_trusted_proxy_but_successes_never_are() {
    let app = TestApp::spawn_with(|s| s.auth.failed_per_address_per_min = 3).await;
    for i in 0..4 {
        app.login(&format!("E-{i}"), "PO-1", Some("pw")).await;
    }
    let attempt = |elector: &str, password: &str, xff: &str| {
        let req = app
            .client
            .post(app.url("/api/authenticate/"))
            .header("x-forwarded-for", xff)
            .body(json!({"elector_id": elector, "poll_office_id": "PO-1", "password": password}).to_string());
        app.send(req)
    };
    let audited = || -> i64 {
        app.db().query_row("SELECT COUNT(*) FROM audit_log WHERE kind = 'auth_failed'", [], |r| r.get(0)).unwrap()
    };
    for i in 0..3 {
        assert_eq!(attempt(&format!("E-{i}"), "bad", "198.51.100.7").await.status, 401);
    }
    let r = attempt("E-3", "bad", "198.51.100.7").await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(audited(), 3, "refused failures are not audited");
    assert_eq!(attempt("E-3", "pw", "198.51.100.7").await.status, 200, "a reporter sharing the address still gets in");
    assert_eq!(attempt("E-NEW", "", "198.51.100.7").await.status, 201);
    assert_eq!(attempt("E-3", "bad", "198.51.100.8").await.status, 401, "another client behind the proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_from_untrusted_peers_are_ignored() {
    let app = TestApp::spawn_with(|s| {
        s.auth.failed_per_address_per_min = 2;
        s.server.trusted_proxies = vec![];
    })
    .await;
    app.login("E-1", "PO-1", Some("pw")).await;
    let attempt = |password: &str, xff: &str| {
        let req = app
            .client
            .post(app.url("/api/authenticate/"))
            .header("x-forwarded-for", xff)
            .body(json!({"elector_id": "E-1", "poll_office_id": "PO-1", "password": password}).to_string());
        app.send(req)
    };
    assert_eq!(attempt("bad", "198.51.100.1").await.status, 401);
    assert_eq!(attempt("bad", "198.51.100.2").await.status, 401);
    let r = attempt("bad", "198.51.100.3").await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"), "all failures counted against the real peer");
    assert_eq!(attempt("pw", "198.51.100.3").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_endpoint_answers_the_s3_off_shape_on_get_and_post() {
    let app = TestApp::spawn().await;
    let a = app.login("E-1", "PO-1", None).await;
    for req in [
        app.client.get(app.url("/api/refresh-s3-credentials/")),
        app.client.post(app.url("/api/refresh-s3-credentials")),
    ] {
        let r = app.send(req.basic_auth(&a.elector_id, Some(&a.token))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["secretAccessKey"], "");
        assert_eq!(r.body["bucket"], "ufrecs-media");
        assert_eq!(r.body["base_path"], "s3://ufrecs-media/PO-1/source-E-1/");
        assert_eq!(r.body["credentials"]["prefix"], "PO-1/source-E-1");
        assert_eq!(r.body["error"], "unconfigured");
    }
    let r = app.get("/api/refresh-s3-credentials/").await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_required"));
}
