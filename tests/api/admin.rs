//! The admin API and /metrics access.

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_creates_and_updates_sources() {
    let app = TestApp::spawn().await;
    let r = app
        .admin_post(
            "/api/reporters/",
            json!({"elector_id": "OFF-1", "type": "political_party", "full_name": "Awa N.", "official_org": "Parti Alpha",
                   "email": "a@example.org", "phone_number": "+237 600", "password": "pw"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body,
        json!({"status": "created", "source": {"elector_id": "OFF-1", "status": "political_party", "full_name": "Awa N.",
                "official_org": "Parti Alpha", "has_password": true}})
    );
    let before = app.fingerprint();
    let r = app.admin_post("/api/reporters/", json!({"elector_id": "OFF-1", "type": "official"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "conflict"));
    let r = app.admin_post("/api/reporters/", json!({"elector_id": "OFF-2", "type": "boss"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"));
    assert!(r.body["errors"]["type"].is_string());
    let r = app.admin_patch("/api/sources/NOBODY/", json!({"status": "official"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = app.admin_patch("/api/sources/OFF-1/", json!({})).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"));
    assert_eq!(app.fingerprint(), before);
    let r = app.admin_patch("/api/sources/OFF-1", json!({"status": "independent", "full_name": "Awa Ndiaye"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "updated");
    assert_eq!(r.body["source"]["status"], "independent");
    assert_eq!(r.body["source"]["full_name"], "Awa Ndiaye");
    // The public log names the source by number, never by name, id, e-mail or phone.
    let log = app.get("/api/audit/?limit=1000").await.body.to_string();
    for private in ["OFF-1", "Awa", "example.org", "+237"] {
        assert!(!log.contains(private), "{private} leaked into the audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_want_the_admin_token_and_refuse_reporters() {
    let app = TestApp::spawn().await;
    let reporter = app.reporter("E-1", "PO-1").await;
    let body = json!({"elector_id": "X-1", "type": "official"}).to_string();
    let url = app.url("/api/reporters/");
    let r = app.send(app.client.post(&url).body(body.clone())).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_required"));
    let r = app.send(app.client.post(&url).bearer_auth("wrong").body(body.clone())).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    let r = app
        .send(app.client.post(&url).basic_auth(&reporter.elector_id, Some(&reporter.token)).body(body.clone()))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let r = app.send(app.client.post(&url).bearer_auth(&reporter.token).body(body)).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    // Size first, then authentication, then the body.
    let big = "x".repeat(17 * 1024);
    let r = app.send(app.client.post(&url).body(big.clone())).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "payload_too_large"));
    let r = app.send(app.client.patch(app.url("/api/sources/E-1/")).body(big)).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "payload_too_large"));
    let r = app.send(app.client.post(&url).body("not json")).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_required"));
    let r = app.send(app.client.post(&url).bearer_auth(ADMIN).body("not json")).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_admin_api_does_not_exist() {
    let app = TestApp::spawn_with(|s| s.auth.admin_token = String::new().into()).await;
    let r = app.admin_post("/api/reporters/", json!({"elector_id": "X-1", "type": "official"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = app.admin_patch("/api/sources/X-1/", json!({"status": "official"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_open_on_loopback_and_closed_to_forwarded_clients() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(text.contains("# TYPE ufrecs_commits_total counter"));
    let through_proxy = app.client.get(app.url("/metrics")).header("x-forwarded-for", "203.0.113.5");
    let r = app.send(through_proxy).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_required"));
    let with_token = app.client.get(app.url("/metrics")).header("x-forwarded-for", "203.0.113.5").bearer_auth(ADMIN);
    assert_eq!(app.send(with_token).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_the_database_and_s3() {
    let app = TestApp::spawn().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"status": "ok", "database": "ok", "s3": "unconfigured", "follow": "ok",
               "replication": {"state": "off", "lag_secs": 0.0}})
    );
}
