//! Many reporters at once: one vote id per index, exact totals, and shared commits.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_reporters_posting_the_same_forty_indexes_at_once_get_one_id_per_index_and_exact_totals() {
    let app = TestApp::spawn().await;
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
