//! Many reporters at once: one vote id per index, exact totals, and shared commits.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_reporters_posting_the_same_forty_indexes_at_once_get_one_id_per_index_and_exact_totals() {
    // No checkpoint is signed meanwhile: every write counted is a report.
    let app = TestApp::spawn_with(|s| s.log.checkpoint_interval_ms = 3_600_000).await;
    let mut reporters = Vec::new();
    for i in 0..8 {
        reporters.push(app.reporter(&format!("R-{i}"), "PO-C").await);
    }
    let commits_before = app.metric("ufrecs_commits_total").await;
    let writes_before = app.metric("ufrecs_writes_total").await;
    let mut posts = Vec::new();
    let app = &app;
    for r in &reporters {
        for index in 1..=40i64 {
            let gender = if index % 2 == 0 { "male" } else { "female" };
            posts.push(async move { (index, app.vote(r, index, gender, "less_60", index % 5 == 0).await) });
        }
    }
    let replies = join_all(posts).await;
    let mut ids: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (index, reply) in replies {
        assert_eq!(reply.status, 201, "{}", reply.body);
        ids.entry(index).or_default().insert(reply.body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 40);
    assert!(ids.values().all(|s| s.len() == 1), "one id per index: {ids:?}");
    let distinct: BTreeSet<_> = ids.values().flatten().collect();
    assert_eq!(distinct.len(), 40);
    let s = app.stats("PO-C").await;
    let t = &s["totals"];
    assert_eq!(t["votes"], 40);
    assert_eq!(t["male"], 20);
    assert_eq!(t["female"], 20);
    assert_eq!(t["less_60"], 40);
    assert_eq!(t["has_torn"], 8);
    assert_eq!(t["disputed"], 0);
    assert_eq!(t["sources"], 8);
    assert_eq!(s["last_vote"]["index"], 40);
    let commits = app.metric("ufrecs_commits_total").await - commits_before;
    let writes = app.metric("ufrecs_writes_total").await - writes_before;
    assert_eq!(writes, 320);
    assert!(commits < writes, "group commit: {commits} commits for {writes} writes");
    let rows: i64 = app.db().query_row("SELECT COUNT(*) FROM vote_proposals", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 320);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_inside_a_shared_commit_fails_alone() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let too_old = (app.now() - chrono::Duration::days(2)).to_rfc3339();
    let app = &app;
    let a = &a;
    let too_old = &too_old;
    let replies = join_all((1..=60i64).map(|index| async move {
        // Every third vote carries an observed_at the writer refuses when storing it.
        let mut body = serde_json::json!({"index": index, "gender": "male", "age": "less_30"});
        if index % 3 == 0 {
            body["observed_at"] = serde_json::json!(too_old);
        }
        (index, app.post("/api/vote/", Some(a), body).await)
    }))
    .await;
    for (index, r) in replies {
        if index % 3 == 0 {
            assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{index}");
        } else {
            assert_eq!(r.status, 201, "{index}: {}", r.body);
        }
    }
    assert_eq!(app.stats("PO-1").await["totals"]["votes"], 40);
    let stored: i64 = app.db().query_row("SELECT COUNT(*) FROM votes", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, 40, "the refused votes left no row behind");
    assert!(app.metric("ufrecs_commits_total").await < app.metric("ufrecs_writes_total").await);
}
