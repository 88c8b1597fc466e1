//! Votes and ballots: idempotency, corrections, shared ids, cross-checking with trust
//! tiers, and what the public stats and results show.

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_is_created_once_and_a_resend_changes_nothing() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let first = app.vote(&a, 1, "male", "less_30", false).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.body["index"], 1);
    let id = first.body["id"].as_str().expect("the vote id is a string").to_owned();
    assert!(id.bytes().all(|b| b.is_ascii_digit()));
    let before = app.fingerprint();
    let again = app.vote(&a, 1, "male", "less_30", false).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, json!({"id": id, "index": 1, "receipt": first.body["receipt"]}));
    assert_eq!(app.fingerprint(), before, "a resend stores nothing");
    assert_eq!(app.stats("PO-1").await["totals"]["votes"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_replaces_the_proposal_and_keeps_the_old_value_in_the_audit_log() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    let r = app.vote(&a, 1, "female", "more_60", true).await;
    assert_eq!(r.status, 200);
    let s = app.stats("PO-1").await;
    assert_eq!(s["totals"]["votes"], 1);
    assert_eq!(s["totals"]["female"], 1);
    assert_eq!(s["totals"]["male"], 0);
    assert_eq!(s["totals"]["has_torn"], 1);
    assert_eq!(s["last_vote"]["gender"], "female");
    let detail: String =
        app.db().query_row("SELECT detail FROM audit_log WHERE kind = 'vote_corrected'", [], |r| r.get(0)).unwrap();
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["old"]["gender"], "male");
    assert_eq!(detail["new"]["gender"], "female");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_reporting_an_index_gets_the_same_vote_id() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    let c = app.reporter("E-3", "PO-2").await;
    let ra = app.vote(&a, 7, "male", "less_30", false).await;
    let rb = app.vote(&b, 7, "male", "less_30", false).await;
    let rc = app.vote(&c, 7, "male", "less_30", false).await;
    assert_eq!(ra.status, 201);
    assert_eq!(rb.status, 201, "the first proposal of this source");
    assert_eq!(ra.body["id"], rb.body["id"]);
    assert_ne!(ra.body["id"], rc.body["id"], "another office, another vote");
    let s = app.stats("PO-1").await;
    assert_eq!(s["totals"]["votes"], 1);
    assert_eq!(s["totals"]["sources"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tie_is_undecided_and_disputed() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    app.vote(&a, 1, "male", "less_30", true).await;
    app.vote(&b, 1, "female", "less_30", false).await;
    let s = app.stats("PO-1").await;
    assert_eq!(s["totals"]["votes"], 1);
    assert_eq!(s["totals"]["male"], 0);
    assert_eq!(s["totals"]["female"], 0);
    assert_eq!(s["totals"]["less_30"], 1);
    assert_eq!(s["totals"]["has_torn"], 0, "a has_torn tie is false");
    assert_eq!(s["totals"]["disputed"], 1);
    assert_eq!(s["last_vote"]["gender"], "undecided");
    let (gender, disputed): (String, bool) =
        app.db().query_row("SELECT gender, disputed FROM votes", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((gender.as_str(), disputed), ("undecided", true), "accepted values are persisted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_sources_cannot_outvote_a_trusted_reporter() {
    let app = TestApp::spawn().await;
    let official = app.official("OFF-1", "PO-1").await;
    for i in 0..5 {
        let fake = app.reporter(&format!("FAKE-{i}"), "PO-1").await;
        app.vote(&fake, 1, "female", "more_60", true).await;
        app.vote(&fake, 2, "female", "more_60", true).await;
    }
    app.vote(&official, 1, "male", "less_30", false).await;
    let s = app.stats("PO-1").await;
    assert_eq!(s["totals"]["votes"], 1, "only the trusted source's votes count here");
    assert_eq!(s["totals"]["male"], 1);
    assert_eq!(s["totals"]["female"], 0);
    assert_eq!(s["totals"]["disputed"], 0);
    assert_eq!(s["totals"]["sources"], 1);
    // Elsewhere, the opportunistic sources still count.
    let lone = app.reporter("FAKE-0", "PO-2").await;
    app.vote(&lone, 1, "female", "more_60", true).await;
    assert_eq!(app.stats("PO-2").await["totals"]["votes"], 1);
    // Uncounted proposals are kept.
    let stored: i64 = app
        .db()
        .query_row("SELECT COUNT(*) FROM vote_proposals WHERE poll_office_id = 'PO-1'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_reweighs_the_offices_at_once() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    app.vote(&b, 1, "female", "less_30", false).await;
    app.vote(&b, 2, "female", "less_30", false).await;
    app.ballot(&a, 1, "PA").await;
    app.ballot(&b, 1, "PB").await;
    assert_eq!(app.stats("PO-1").await["totals"]["votes"], 2);
    assert_eq!(app.results("PO-1").await["undecided_ballots"], 1);
    let r = app.admin_patch("/api/sources/E-1/", json!({"status": "independent"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = app.stats("PO-1").await;
    assert_eq!(s["totals"]["votes"], 1, "only E-1 counts now");
    assert_eq!(s["totals"]["male"], 1);
    assert_eq!(s["totals"]["disputed"], 0);
    let res = app.results("PO-1").await;
    assert_eq!(res["results"], json!([{"party_id": "PA", "ballots": 1, "share": 1.0}]));
    assert_eq!(res["sources"], 1);
    // And back.
    app.admin_patch("/api/sources/E-1/", json!({"status": "unverified"})).await;
    assert_eq!(app.stats("PO-1").await["totals"]["votes"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_count_accepted_parties_with_unrounded_shares() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    for (i, p) in ["PA", "PB", "PA"].iter().enumerate() {
        let r = app.ballot(&a, i as i64 + 1, p).await;
        assert_eq!(r.status, 201);
        assert_eq!(r.body["status"], "ok");
        assert!(r.body["receipt"]["seq"].is_u64(), "{}", r.body);
    }
    assert_eq!(app.ballot(&a, 3, "PA").await.status, 200, "resend");
    assert_eq!(app.ballot(&a, 2, "PC").await.status, 200, "correction");
    let r = app.results("PO-1").await;
    assert_eq!(r["total_ballots"], 3);
    assert_eq!(r["undecided_ballots"], 0);
    assert_eq!(r["last_paper"], json!({"index": 3, "party_id": "PA"}));
    assert_eq!(r["results"][0]["party_id"], "PA");
    assert_eq!(r["results"][0]["share"].as_f64().unwrap(), 2.0 / 3.0);
    assert_eq!(r["results"][1], json!({"party_id": "PC", "ballots": 1, "share": 1.0 / 3.0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_of_an_office_without_data_are_zeros() {
    let app = TestApp::spawn().await;
    let s = app.stats("PO-EMPTY").await;
    assert_eq!(s["poll_office_id"], "PO-EMPTY");
    assert_eq!(s["totals"]["votes"], 0);
    assert_eq!(s["last_vote"], serde_json::Value::Null);
    assert_eq!(s["flags"], json!([]));
    let r = app.results("PO-EMPTY").await;
    assert_eq!(r["total_ballots"], 0);
    assert_eq!(r["last_paper"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_bodies_carry_an_etag_and_answer_304_until_they_change() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    let first = app.get("/api/pollofficesstats/PO-1").await;
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(first.headers["cache-control"], "public, max-age=1");
    let cached = app.send(app.client.get(app.url("/api/pollofficesstats/PO-1/")).header("if-none-match", &etag)).await;
    assert_eq!(cached.status, 304);
    assert_eq!(cached.body, serde_json::Value::Null);
    app.vote(&a, 2, "male", "less_30", false).await;
    let changed = app.send(app.client.get(app.url("/api/pollofficesstats/PO-1/")).header("if-none-match", &etag)).await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.headers["etag"].to_str().unwrap(), etag);
    let results = app.get("/api/pollofficeresults/PO-1/").await;
    assert!(results.headers.contains_key("etag"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_vote_ids_are_served_as_numbers_when_configured() {
    let app = TestApp::spawn_with(|s| s.compat.numeric_vote_ids = true).await;
    let a = app.reporter("E-1", "PO-1").await;
    let r = app.vote(&a, 1, "male", "less_30", false).await;
    assert!(r.body["id"].is_u64(), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strict_registry_refuses_unknown_offices_and_parties() {
    let app = TestApp::spawn_with(|s| s.registry.strict = ufrecs::config::Strict::Yes).await;
    let csv = app.dir.path().join("offices.csv");
    std::fs::write(&csv, "name,identifier,voters_count\nÉcole Publique Yaoundé,PO-1,300\n").unwrap();
    let parties = app.dir.path().join("parties.csv");
    std::fs::write(&parties, "identifier,party_name\nPA,Parti Alpha\n").unwrap();
    for (what, file) in [("poll-offices", &csv), ("parties", &parties)] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ufrecs"))
            .args(["import", what])
            .arg(file)
            .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
            .env("UFRECS_DATABASE_PATH", app.db_path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut app = app;
    app.restart().await;
    let r = app.authenticate_with("E-1", "PO-X", None).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "unknown_poll_office"));
    let r = app.get("/api/pollofficesstats/PO-X/").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "unknown_poll_office"));
    let r = app.get("/api/pollofficeresults/PO-X/").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "unknown_poll_office"));
    let a = app.reporter("E-1", "PO-1").await;
    let before = app.fingerprint();
    let r = app.ballot(&a, 1, "PZ").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "unknown_party"));
    assert_eq!(app.fingerprint(), before);
    assert_eq!(app.ballot(&a, 1, "PA").await.status, 201);
    assert_eq!(app.stats("PO-1").await["totals"]["votes"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_work_with_or_without_the_trailing_slash_and_any_content_type() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let r = app
        .send(
            app.client
                .post(app.url("/api/vote"))
                .basic_auth(&a.elector_id, Some(&a.token))
                .header("content-type", "text/plain")
                .body(r#"{"index": 1, "gender": "male", "age": "less_30"}"#),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .send(
            app.client
                .post(app.url("/api/vote/"))
                .bearer_auth(&a.token)
                .json(&json!({"index": 2, "gender": "male", "age": "less_30"})),
        )
        .await;
    assert_eq!(r.status, 201, "Bearer works too");
    assert_eq!(app.get("/api/pollofficesstats/PO-1").await.status, 200);
    assert_eq!(app.get("/healthz/").await.status, 200);
    assert_eq!(app.get("/api/audit/head").await.status, 200);
}
