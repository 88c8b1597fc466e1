//! The compatibility forms the existing apps call (spec section 5): query-string offices
//! (identifiers or numeric directory ids), the alias path, entries keyed by display name,
//! and the national views.

use serde_json::{json, Value};

use crate::directory::with_demo_directory;
use crate::helpers::*;

const OFFICE: &str = "CM-AD-000001";

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_forms_key_each_source_by_its_display_name() {
    let app = with_demo_directory().await;
    let numeric = app.get(&format!("/api/polloffices/?search={OFFICE}")).await.body["results"][0]["id"].clone();
    // A reporter whose full name is one of the reserved keys, and an anonymous one.
    let r = app
        .admin_post(
            "/api/reporters/",
            json!({"elector_id": "E-ACC", "type": "unverified", "full_name": "Accepted", "password": "pw"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let named = app.login("E-ACC", OFFICE, Some("pw")).await;
    let anon = app.reporter("E-ANON", OFFICE).await;
    let n_of = |elector: &str| -> i64 {
        app.db().query_row("SELECT n FROM sources WHERE elector_id = ?1", [elector], |r| r.get(0)).unwrap()
    };
    let (named_key, anon_key) = (format!("Accepted ({})", n_of("E-ACC")), format!("source-{}", n_of("E-ANON")));
    app.vote(&named, 1, "male", "less_30", false).await;
    app.vote(&named, 2, "female", "more_60", true).await;
    app.vote(&anon, 1, "male", "less_30", false).await;

    let by_identifier = app.get(&format!("/api/pollofficestats/?poll_office={OFFICE}")).await;
    assert_eq!(by_identifier.status, 200);
    let body = &by_identifier.body;
    // "Accepted" first (the citizen app titles its table with the first key), then
    // "Verified", then the sources by display name.
    let mut sources = vec![named_key.clone(), anon_key.clone()];
    sources.sort();
    let expected_keys = [vec!["Accepted".to_owned(), "Verified".into()], sources].concat();
    assert_eq!(keys(&body["last_vote"]), expected_keys, "{body}");
    assert!(!body.to_string().contains("E-ACC") && !body.to_string().contains("E-ANON"), "no elector_id shows");
    assert_eq!(body["last_vote"]["Accepted"]["index"], 2);
    assert_eq!(body["last_vote"]["Accepted"]["created_at"], body["last_vote"]["Accepted"]["timestamp"]);
    assert_eq!(body["last_vote"][&named_key]["index"], 2);
    assert_eq!(body["last_vote"][&named_key]["age"], "more_60");
    assert_eq!(body["last_vote"][&anon_key]["index"], 1);
    assert_eq!(body["last_vote"]["Verified"], Value::Null);
    assert_eq!(body["totals"]["total_sources"], 2);
    assert_eq!(body["totals"]["sources"], 2);
    assert_eq!(body["totals"]["votes"], 2);
    assert_eq!(body["flags"], json!([]));

    // The same office by the other parameter, the other path, and its numeric directory id.
    for path in [
        format!("/api/pollofficesstats/?poll_office_id={OFFICE}"),
        format!("/api/pollofficestats/?poll_office={numeric}"),
        format!("/api/pollofficesstats/?poll_office_id={numeric}"),
    ] {
        assert_eq!(&app.get(&path).await.body, body, "{path}");
    }
    let etag = by_identifier.headers["etag"].to_str().unwrap();
    let again = app
        .send(
            app.client
                .get(app.url(&format!("/api/pollofficestats/?poll_office={OFFICE}")))
                .header("if-none-match", etag),
        )
        .await;
    assert_eq!(again.status, 304);

    // Ballots: the accepted paper at the top level (the reporter app) and by name (the citizen app).
    app.ballot(&named, 1, "PA").await;
    app.ballot(&anon, 1, "PA").await;
    app.ballot(&anon, 2, "PB").await;
    let results = app.get(&format!("/api/pollofficeresults/?poll_office={numeric}")).await.body;
    let paper = &results["last_paper"];
    assert_eq!((&paper["index"], &paper["party_id"]), (&json!(2), &json!("PB")), "{results}");
    assert_eq!(paper["Accepted"], json!({"index": 2, "party_id": "PB"}));
    assert_eq!(paper[&named_key], json!({"index": 1, "party_id": "PA"}));
    assert_eq!(paper[&anon_key], json!({"index": 2, "party_id": "PB"}));
    assert_eq!(results["totals"], json!({"total_ballots": 2, "total_sources": 2}));
    assert_eq!(results["total_ballots"], 2);
    assert_eq!(results["results"][0]["party_id"], "PA");

    // A rename shows at once; a trusted source silences the opportunistic one's key.
    let r = app.admin_patch("/api/sources/E-ANON/", json!({"full_name": "Awa N.", "status": "independent"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = app.get(&format!("/api/pollofficestats/?poll_office={OFFICE}")).await.body;
    assert_eq!(keys(&body["last_vote"]), ["Accepted", "Verified", "Awa N."], "{body}");
    assert_eq!(body["last_vote"]["Accepted"]["index"], 1, "only the trusted source's vote counts");
    assert_eq!(body["totals"]["total_sources"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_national_views_sum_every_office() {
    let app = TestApp::spawn().await;
    let a1 = app.reporter("E-1", "PO-1").await;
    let a2 = app.reporter("E-1", "PO-2").await;
    let b = app.reporter("E-2", "PO-1").await;
    app.vote(&a1, 1, "male", "less_30", false).await;
    app.vote(&b, 1, "male", "less_30", false).await;
    app.vote(&b, 2, "female", "less_60", false).await;
    app.vote(&a2, 9, "female", "more_60", true).await;
    app.ballot(&a1, 1, "PA").await;
    app.ballot(&a2, 1, "PB").await;
    app.ballot(&a2, 2, "PB").await;

    for path in ["/api/pollofficesstats/", "/api/pollofficestats/", "/api/pollofficestats/?poll_office="] {
        let body = eventually("the national stats to catch up", || async {
            let body = app.get(path).await.body;
            (body["totals"]["votes"] == 3).then_some(body)
        })
        .await;
        let t = &body["totals"];
        assert_eq!((&t["male"], &t["female"], &t["has_torn"]), (&json!(1), &json!(2), &json!(1)), "{body}");
        assert_eq!(t["total_sources"], 2, "E-1 reports at two offices and counts once");
        assert_eq!(t["total_poll_offices"], 2);
        assert_eq!(t["covered_poll_offices"], 2);
        let accepted = &body["last_vote"]["Accepted"];
        assert_eq!((&accepted["poll_office_id"], &accepted["index"]), (&json!("PO-2"), &json!(9)), "{body}");
    }
    let results = app.get("/api/pollofficeresults/").await.body;
    assert_eq!(results["total_ballots"], 3, "{results}");
    assert_eq!(results["results"][0], json!({"party_id": "PB", "ballots": 2, "share": 2.0 / 3.0}));
    assert_eq!(results["covered_poll_offices"], 2);
    assert_eq!(results["totals"], json!({"total_ballots": 3, "total_sources": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_forms_refuse_bad_and_unknown_offices() {
    let app = with_demo_directory().await;
    let before = app.fingerprint();
    for path in ["/api/pollofficestats/?poll_office=a%2Fb", "/api/pollofficeresults/?poll_office_id=%20x%20y"] {
        let r = app.get(path).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{path}");
    }
    // With a directory (registry.strict = auto), an unknown office, or a numeric id nobody
    // has, is not in it.
    let r = app.get("/api/pollofficestats/?poll_office=999999").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "unknown_poll_office"));
    assert_eq!(app.fingerprint(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strict_registry_refuses_unknown_offices_in_the_query_forms() {
    let app = TestApp::spawn_with(|s| s.registry.strict = ufrecs::config::Strict::Yes).await;
    for path in ["/api/pollofficestats/?poll_office=PO-X", "/api/pollofficeresults/?poll_office=42"] {
        let r = app.get(path).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "unknown_poll_office"), "{path}");
    }
    assert_eq!(app.get("/api/pollofficestats/").await.status, 200, "the national view needs no office");
}
