//! The public directory listings, from memory: search, pagination, parties.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::*;

pub async fn with_demo_directory() -> TestApp {
    let app = TestApp::spawn().await;
    for (what, file) in [("poll-offices", "poll-offices-demo.csv"), ("parties", "parties-cm.csv")] {
        app.cli_ok(&["import", what, &format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"))]);
    }
    eventually("the server to load the directory", || async {
        (app.get("/api/polloffices/").await.body["count"] == 20).then_some(())
    })
    .await;
    app
}

fn identifiers(page: &Value) -> Vec<String> {
    page["results"].as_array().unwrap().iter().map(|r| r["identifier"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_is_searched_without_case_or_accent_trouble_and_paged() {
    let app = with_demo_directory().await;
    let all = app.get("/api/polloffices/").await.body;
    let ids = identifiers(&all);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ordered by identifier");
    let first = &all["results"][0];
    for k in ["id", "identifier", "name", "country", "state", "region", "city", "county", "district", "voters_count"] {
        assert!(first.get(k).is_some(), "{k}");
    }
    assert!(first["id"].is_i64());

    let lower = app.get("/api/polloffices/?search=ngaoundéré").await.body;
    let upper = app.get("/api/polloffices/?search=NGAOUNDÉRÉ").await.body;
    assert!(lower["count"].as_u64().unwrap() >= 1);
    assert_eq!(identifiers(&lower), identifiers(&upper));
    let by_id = app.get("/api/polloffices/?search=cm-ad-000001").await.body;
    assert_eq!(identifiers(&by_id), ["CM-AD-000001"]);
    assert_eq!(app.get("/api/polloffices/?search=nowhere-at-all").await.body["count"], 0);

    let p1 = app.get("/api/polloffices/?limit=8").await.body;
    assert_eq!(p1["count"], 20);
    assert_eq!(p1["previous"], Value::Null);
    let next = p1["next"].as_str().unwrap();
    assert!(next.starts_with("http://127.0.0.1:") && next.contains("limit=8&offset=8"), "{next}");
    let p2 = app.send(app.client.get(next)).await.body;
    let p3 = app.send(app.client.get(p2["next"].as_str().unwrap())).await.body;
    assert_eq!(p3["next"], Value::Null);
    assert!(p3["previous"].as_str().unwrap().contains("offset=8"));
    let mut paged = identifiers(&p1);
    paged.extend(identifiers(&p2));
    paged.extend(identifiers(&p3));
    assert_eq!(paged, ids);

    let huge = app.get("/api/polloffices/?limit=99999999999999999999").await;
    assert_eq!(
        (huge.status.as_u16(), huge.body["results"].as_array().unwrap().len()),
        (200, 20),
        "lowered, not refused"
    );
    for q in ["limit=0", "limit=000", "limit=x", "limit=-1", "limit=", "offset=-1"] {
        let r = app.get(&format!("/api/polloffices/?{q}")).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{q}");
    }
    let parties = app.get("/api/candidateparties/").await.body;
    assert_eq!(parties["count"], 10);
    assert_eq!(parties["results"][0]["identifier"], "PA");
    assert_eq!(parties["results"][1]["party_name"], "Parti Bêta");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_directory_imports_while_the_server_runs_and_is_searched_from_memory() {
    let app = TestApp::spawn().await;
    let csv = app.dir.path().join("national.csv");
    let cities = ["Yaoundé", "Ébolowa", "Douala", "Garoua", "Bafoussam"];
    let mut text = String::from("voters_count,name,identifier,city,region,unknown_column\n");
    for i in 1..=50_000 {
        let city = cities[i % cities.len()];
        text.push_str(&format!("{},École {city} {i},CM-{i:06},{city},Région {},x\n", 150 + i % 500, i % 10));
    }
    std::fs::write(&csv, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .args(["import", "poll-offices", csv.to_str().unwrap()])
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", app.db_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("50000 created"));
    eventually("the server to load the directory", || async {
        (app.get("/api/polloffices/?limit=1").await.body["count"] == 50_000).then_some(())
    })
    .await;
    let found = app.get("/api/polloffices/?search=YAOUNDÉ&limit=1000").await.body;
    assert_eq!(found["count"], 10_000);
    // The citizen app asks for 1,000: it gets 500, as from Django REST framework, and a
    // `next` that goes on from there.
    assert_eq!(found["results"].as_array().unwrap().len(), 500);
    assert!(found["next"].as_str().unwrap().ends_with("limit=500&offset=500"), "{}", found["next"]);
    assert!(found["results"].as_array().unwrap().iter().all(|r| r["city"] == "Yaoundé"));
    let last = app.get("/api/polloffices/?search=cm-050000").await.body;
    assert_eq!(last["results"][0]["voters_count"], 150);
    // The citizen app's numeric id reaches the office's stats.
    let id = &last["results"][0]["id"];
    let stats = app.get(&format!("/api/pollofficestats/?poll_office={id}")).await.body;
    assert_eq!(stats["poll_office_id"], "CM-050000");
    // Every row flags read is in the log (section 6e), in entries a tile can carry, and
    // the office's stats name the entry that set its voters_count.
    let entries: Vec<(i64, String, usize)> = app
        .db()
        .prepare("SELECT seq, detail, length(detail) FROM audit_log WHERE kind = 'directory_rows' ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(entries.len() > 10);
    assert!(entries.iter().all(|(_, _, len)| *len < 65_000));
    let mut rows = Vec::new();
    for (_, detail, _) in &entries {
        let d: Value = serde_json::from_str(detail).unwrap();
        rows.extend(d["rows"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(rows.len(), 50_000);
    assert_eq!(rows[49_999], json!({"identifier": "CM-050000", "voters_count": 150}));
    let import: Value = serde_json::from_str(
        &app.db()
            .query_row("SELECT detail FROM audit_log WHERE kind = 'import'", [], |r| r.get::<_, String>(0))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(import["parts"], entries.len());
    let canonical = ufrecs::domain::audit::canonical(&Value::Array(rows));
    use sha2::Digest;
    assert_eq!(import["rows_sha256"], hex::encode(sha2::Sha256::digest(canonical.as_bytes())));
    let stats = eventually("the office's log_seq", || async {
        let s = app.stats("CM-050000").await;
        (s["log_seq"] != 0).then_some(s)
    })
    .await;
    assert_eq!(stats["log_seq"], entries.last().unwrap().0);
}
