//! Quality flags (spec section 6b): each raised by a scenario built through the API, and
//! cleared when the data no longer supports it; `GET /api/flags/` lists them nationally.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::*;

fn codes(stats: &Value) -> Vec<String> {
    stats["flags"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect()
}

async fn flagged(app: &TestApp) -> Vec<(String, Vec<String>)> {
    let body = app.get("/api/flags/").await.body;
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["poll_office_id"].as_str().unwrap().to_owned(), codes(r)))
        .collect()
}

async fn vote_at(app: &TestApp, s: &Session, index: i64, gender: &str, observed_at: &str) -> u16 {
    let body = json!({"index": index, "gender": gender, "age": "less_30", "observed_at": observed_at});
    app.post("/api/vote/", Some(s), body).await.status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_voter_flags_follow_the_counted_votes_and_ballots() {
    let app = TestApp::spawn().await;
    let csv = app.dir.path().join("offices.csv");
    std::fs::write(&csv, "identifier,name,voters_count\nPO-F,Small office,3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .args(["import", "poll-offices", csv.to_str().unwrap()])
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", app.db_path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let a = app.reporter("E-A", "PO-F").await;
    for i in 1..=4 {
        app.vote(&a, i, "male", "less_30", false).await;
    }
    // The server follows the import within a second; the flag then shows.
    eventually("votes_exceed_registered", || async {
        (codes(&app.stats("PO-F").await) == ["votes_exceed_registered"]).then_some(())
    })
    .await;
    for i in 1..=5 {
        app.ballot(&a, i, "PA").await;
    }
    assert_eq!(
        codes(&app.stats("PO-F").await),
        ["votes_exceed_registered", "ballots_exceed_votes", "ballots_exceed_registered"]
    );
    let flag = &app.stats("PO-F").await["flags"][0];
    assert_eq!(flag["message"], "4 votes recorded for 3 registered voters");
    assert_eq!(flagged(&app).await, [("PO-F".to_owned(), codes(&app.stats("PO-F").await))]);
    let compat = app.get("/api/pollofficestats/?poll_office=PO-F").await.body;
    assert_eq!(compat["flags"], app.stats("PO-F").await["flags"]);

    // An official reporter arrives: only their 2 votes and 1 ballot count, the flags clear.
    let t = app.official("E-T", "PO-F").await;
    app.vote(&t, 1, "male", "less_30", false).await;
    app.vote(&t, 2, "male", "less_30", false).await;
    assert_eq!(codes(&app.stats("PO-F").await), ["ballots_exceed_votes", "ballots_exceed_registered"]);
    app.ballot(&t, 1, "PA").await;
    assert!(codes(&app.stats("PO-F").await).is_empty());
    assert!(flagged(&app).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_voting_uses_observation_times_and_clears_when_they_stop_counting() {
    let app = TestApp::spawn().await;
    let at = |secs: i64| (app.now() - chrono::Duration::hours(1) + chrono::Duration::seconds(secs)).to_rfc3339();
    let a = app.reporter("E-A", "PO-1").await;
    // An offline queue flushed at once: the passage times it recorded are what count.
    for i in 0..10 {
        assert_eq!(vote_at(&app, &a, i + 1, "male", &at(i * 5)).await, 201);
    }
    assert!(codes(&app.stats("PO-1").await).is_empty(), "10 votes in 45 s are not fast");
    vote_at(&app, &a, 11, "male", &at(59)).await;
    assert_eq!(codes(&app.stats("PO-1").await), ["fast_voting"], "11 votes within 60 s");
    assert_eq!(flagged(&app).await, [("PO-1".to_owned(), vec!["fast_voting".to_owned()])]);
    // A trusted reporter's times, two minutes apart, replace the opportunistic ones.
    let t = app.official("E-T", "PO-1").await;
    for i in 0..11 {
        vote_at(&app, &t, i + 1, "male", &at(i * 120 - 1800)).await;
    }
    assert!(codes(&app.stats("PO-1").await).is_empty());
    // Without observed_at, a live vote is observed when first reported: eleven 2 s apart
    // are fast.
    let b = app.reporter("E-B", "PO-2").await;
    for i in 1..=11 {
        app.advance(2);
        app.vote(&b, i, "male", "less_30", false).await;
    }
    assert_eq!(codes(&app.stats("PO-2").await), ["fast_voting"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_resending_its_failed_queue_post_after_post_raises_no_fast_voting() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-A", "PO-1").await;
    // The earlier reporter app: votes queued while offline, sent again one after the other
    // without observed_at once the network is back (under a second apart).
    app.advance(2);
    for i in 1..=30 {
        assert_eq!(app.vote(&a, i, "male", "less_30", false).await.status, 201);
    }
    let stats = app.stats("PO-1").await;
    assert_eq!(stats["totals"]["votes"], 30);
    assert!(codes(&stats).is_empty(), "{stats}");
    // Nor does a batch: its items are no passage times either.
    let b = app.reporter("E-B", "PO-2").await;
    let votes: Vec<Value> = (1..=30).map(|i| json!({"index": i, "gender": "female", "age": "less_60"})).collect();
    let r = app.post("/api/vote/batch/", Some(&b), json!({ "votes": votes })).await;
    assert_eq!(r.status, 200);
    assert!(codes(&app.stats("PO-2").await).is_empty());
    // The log says which reports were passage times: the batch items carry `batch: true`.
    let batch_entries: i64 = app
        .db()
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE kind = 'vote_proposed' AND detail LIKE '%\"batch\":true%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(batch_entries, 30);
    let timed: i64 = app.db().query_row("SELECT COUNT(*) FROM votes WHERE timed", [], |r| r.get(0)).unwrap();
    assert_eq!(timed, 1, "the first vote of the resend alone was a passage time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_rate_and_index_gaps_clear_after_corrections_and_late_reports() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-A", "PO-1").await;
    let b = app.reporter("E-B", "PO-1").await;
    // Spread the reports over time so that fast_voting stays out of the way.
    for i in 1..=20 {
        app.advance(30);
        app.vote(&a, i, "male", "less_30", false).await;
        app.vote(&b, i, if i <= 5 { "female" } else { "male" }, "less_30", false).await;
    }
    let stats = app.stats("PO-1").await;
    assert_eq!(stats["totals"]["disputed"], 5);
    assert_eq!(codes(&stats), ["high_dispute_rate"]);
    assert_eq!(stats["flags"][0]["message"], "5 of 20 votes disputed");
    // B corrects two of them: 3 of 20 is not more than 20 %.
    app.vote(&b, 1, "male", "less_30", false).await;
    app.vote(&b, 2, "male", "less_30", false).await;
    assert!(codes(&app.stats("PO-1").await).is_empty());

    let c = app.reporter("E-C", "PO-2").await;
    for i in (1..=10).chain([20]) {
        app.advance(30);
        app.vote(&c, i, "female", "less_60", false).await;
    }
    assert_eq!(codes(&app.stats("PO-2").await), ["index_gaps"], "index 20 for 11 votes");
    for i in 11..=19 {
        app.advance(30);
        app.vote(&c, i, "female", "less_60", false).await;
    }
    assert!(codes(&app.stats("PO-2").await).is_empty(), "the gap is filled");
    assert!(flagged(&app).await.is_empty());
}
