//! Batched writes (spec section 6d): each item answered and stored as if posted alone,
//! the whole batch in one commit; a malformed envelope stores nothing.

use serde_json::{json, Value};

use crate::helpers::*;

/// Rows that say what is stored, without the columns that differ by design between a
/// batch and single posts (`live`, `batch`) or by clock (`*_at` of the rows).
fn stored(app: &TestApp) -> Vec<String> {
    let db = app.db();
    let mut out = Vec::new();
    for sql in [
        "SELECT poll_office_id, idx, counted, gender, age, has_torn, disputed, observed_at FROM votes ORDER BY id",
        "SELECT source_n, poll_office_id, idx, gender, age, has_torn, observed_at FROM vote_proposals ORDER BY vote_id, source_n",
        "SELECT poll_office_id, idx, counted, party_id, disputed FROM ballots ORDER BY id",
        "SELECT source_n, idx, party_id FROM ballot_proposals ORDER BY ballot_id, source_n",
        "SELECT kind, actor, poll_office_id FROM audit_log ORDER BY seq",
    ] {
        let mut stmt = db.prepare(sql).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            out.push((0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join("|"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_answers_and_stores_exactly_what_single_posts_do() {
    let batched = TestApp::spawn().await;
    let single = TestApp::spawn().await;
    let observed = (batched.now() - chrono::Duration::minutes(10)).to_rfc3339();
    let future = (batched.now() + chrono::Duration::hours(2)).to_rfc3339();
    let items = vec![
        json!({"index": 1, "gender": "male", "age": "less_30"}),
        json!({"index": 2, "gender": "female", "age": "less_60", "has_torn": true}),
        json!({"index": 1, "gender": "male", "age": "less_30"}),
        json!({"index": 2, "gender": "male", "age": "less_60", "has_torn": true}),
        json!({"index": "x", "gender": "male", "age": "less_30"}),
        json!({"index": 3, "gender": "robot", "age": "less_30"}),
        json!(7),
        json!({"index": 4, "gender": "male", "age": "less_30", "observed_at": future}),
        json!({"index": 5, "gender": "female", "age": "more_60", "observed_at": observed}),
        json!({"index": 9, "gender": "female", "age": "more_60"}),
    ];
    let mut answers = Vec::new();
    for app in [&batched, &single] {
        let other = app.reporter("E-0", "PO-1").await;
        app.vote(&other, 9, "female", "more_60", false).await;
        let s = app.reporter("E-1", "PO-1").await;
        if std::ptr::eq(app, &batched) {
            let r = app.post("/api/vote/batch/", Some(&s), json!({ "votes": items })).await;
            assert_eq!(r.status, 200, "{}", r.body);
            answers = r.body["results"].as_array().unwrap().clone();
        } else {
            for (k, item) in items.iter().enumerate() {
                let r = app.post("/api/vote/", Some(&s), item.clone()).await;
                let a = &answers[k];
                assert_eq!(a["status"], r.status.as_u16(), "item {k}: {a} vs {}", r.body);
                if r.status.is_success() {
                    assert_eq!(a["id"], r.body["id"], "item {k}");
                    assert_eq!(a["index"], r.body["index"], "item {k}");
                } else {
                    assert_eq!(a["error"], r.body, "item {k}");
                }
            }
        }
    }
    let statuses: Vec<u64> = answers.iter().map(|a| a["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [201, 201, 200, 200, 400, 400, 400, 400, 201, 201]);
    let indexes: Vec<&Value> = answers.iter().map(|a| &a["index"]).collect();
    assert_eq!(indexes[4], &Value::Null, "a non-integer index is answered as null");
    assert_eq!(indexes[5], &json!(3));
    assert!(answers[7]["error"]["errors"]["observed_at"].is_string());
    assert_eq!(stored(&batched), stored(&single));
    let (b, s) = (batched.stats("PO-1").await, single.stats("PO-1").await);
    assert_eq!(b["totals"], s["totals"]);
    // The vote first reported in the batch is not live (no voter waits for a queued vote).
    let live: Vec<bool> = batched
        .db()
        .prepare("SELECT live FROM votes ORDER BY idx")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(live, [false, false, false, true], "indexes 1, 2, 5 came in the batch; 9 alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballot_batches_answer_per_paper() {
    let app = TestApp::spawn_with(|s| s.registry.strict = ufrecs::config::Strict::Yes).await;
    let csv = app.dir.path().join("parties.csv");
    std::fs::write(&csv, "identifier\nPA\nPB\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .args(["import", "parties", csv.to_str().unwrap()])
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", app.db_path())
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(app.dir.path().join("offices.csv"), "identifier,name\nPO-1,One\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .args(["import", "poll-offices", app.dir.path().join("offices.csv").to_str().unwrap()])
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", app.db_path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = eventually("the directory to load", || async {
        let r = app.authenticate_with("E-1", "PO-1", None).await;
        r.status.is_success().then(|| r.body["token"].as_str().unwrap().to_owned())
    })
    .await;
    let s = Session { elector_id: "E-1".into(), token: s, status: 201, body: Value::Null };
    eventually("the parties to load", || async { (app.ballot(&s, 100, "PB").await.status == 201).then_some(()) }).await;
    let papers = json!({"papers": [
        {"index": 1, "party_id": "PA"}, {"index": 1, "party_id": "PA"}, {"index": 1, "party_id": "PB"},
        {"index": 2, "party_id": "NOPE"}, {"index": 3}
    ]});
    let r = app.post("/api/votingpaperresult/batch/", Some(&s), papers).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answers = r.body["results"].as_array().unwrap();
    let statuses: Vec<u64> = answers.iter().map(|a| a["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [201, 200, 200, 400, 400]);
    assert_eq!(answers[3]["error"]["code"], "unknown_party");
    assert_eq!(answers[4]["error"]["code"], "invalid_data");
    assert_eq!(app.results("PO-1").await["results"][0], json!({"party_id": "PB", "ballots": 2, "share": 1.0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_envelope_or_too_many_items_stores_nothing() {
    let app = TestApp::spawn().await;
    let s = app.reporter("E-1", "PO-1").await;
    app.vote(&s, 1, "male", "less_30", false).await;
    let before = app.fingerprint();
    let item = json!({"index": 2, "gender": "male", "age": "less_30"});
    let too_many: Vec<Value> = (0..501).map(|i| json!({"index": i + 2, "gender": "male", "age": "less_30"})).collect();
    for (body, field) in [
        (json!({"votes": item}), "votes"),
        (json!({"items": [item]}), "votes"),
        (json!([item]), "body"),
        (json!({ "votes": too_many }), "votes"),
    ] {
        let r = app.post("/api/vote/batch/", Some(&s), body).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{}", r.body);
        assert!(r.body["errors"][field].is_string(), "{}", r.body);
    }
    let r = app.post_raw("/api/vote/batch/", Some(&s), "{\"votes\": [").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_json"));
    let r = app.post("/api/votingpaperresult/batch/", Some(&s), json!({"votes": []})).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "a ballot batch wants papers");
    // Over 256 KiB: 413; without a token: 401.
    let big = format!("{{\"votes\": [], \"pad\": \"{}\"}}", "x".repeat(256 * 1024));
    assert_eq!(app.post_raw("/api/vote/batch/", Some(&s), big).await.status, 413);
    assert_eq!(app.post("/api/vote/batch/", None, json!({"votes": [item]})).await.status, 401);
    assert_eq!(app.fingerprint(), before);
    // 500 items are fine, and 20 KiB (over the single-post limit) too.
    let five_hundred: Vec<Value> =
        (0..500).map(|i| json!({"index": i + 2, "gender": "male", "age": "less_30"})).collect();
    let r = app.post("/api/vote/batch/", Some(&s), json!({ "votes": five_hundred })).await;
    assert_eq!(r.status, 200);
    assert_eq!(app.stats("PO-1").await["totals"]["votes"], 501);
}
