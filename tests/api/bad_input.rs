//! Every bad input the spec names: the spec's status and `code`, and nothing stored
//! changed (the database is fingerprinted before and after).

use std::io::{Read, Write};

use serde_json::{json, Value};

use crate::helpers::*;

async fn setup() -> (TestApp, Session) {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    assert_eq!(app.vote(&a, 1, "male", "less_30", false).await.status, 201);
    assert_eq!(app.ballot(&a, 1, "PA").await.status, 201);
    (app, a)
}

const BAD_IDENTIFIERS: [&str; 9] = ["a/b", "a*", "a b", "..", "a..b", ".x", "", "é", "a?b"];

fn long_id() -> String {
    "x".repeat(65)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_identifiers_are_refused_before_anything_is_stored() {
    let (app, a) = setup().await;
    let before = app.fingerprint();
    let mut bad: Vec<Value> = BAD_IDENTIFIERS.iter().map(|s| json!(s)).collect();
    bad.extend([json!(long_id()), json!(12345), json!(null), json!(["a"])]);
    for id in &bad {
        for field in ["elector_id", "poll_office_id"] {
            let mut body = json!({"elector_id": "E-2", "poll_office_id": "PO-1"});
            body[field] = id.clone();
            let r = app.post("/api/authenticate/", None, body).await;
            assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{field} = {id}");
            assert!(r.body["errors"][field].is_string(), "{}", r.body);
        }
        let r = app.post("/api/votingpaperresult/", Some(&a), json!({"index": 2, "party_id": id})).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "party_id = {id}");
        assert!(r.body["errors"]["party_id"].is_string());
    }
    for path in [
        "/api/pollofficesstats/a*b/",
        "/api/pollofficeresults/a%2Fb/",
        &format!("/api/pollofficesstats/{}/", long_id()),
    ] {
        let r = app.get(path).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{path}");
    }
    assert_eq!(app.fingerprint(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_vote_fields_name_the_field_and_store_nothing() {
    let (app, a) = setup().await;
    let before = app.fingerprint();
    let ok = json!({"index": 2, "gender": "male", "age": "less_30", "has_torn": false});
    let cases: Vec<(&str, Value)> = vec![
        ("index", json!(0)),
        ("index", json!(-1)),
        ("index", json!(1_000_001)),
        ("index", json!(1.5)),
        ("index", json!("2")),
        ("index", json!(null)),
        ("gender", json!("Male")),
        ("gender", json!("other")),
        ("gender", json!(1)),
        ("age", json!("less_20")),
        ("age", json!(null)),
        ("has_torn", json!("yes")),
        ("has_torn", json!(1)),
        ("observed_at", json!("yesterday")),
        ("observed_at", json!(12)),
    ];
    for (field, value) in cases {
        let mut body = ok.clone();
        body[field] = value.clone();
        let r = app.post("/api/vote/", Some(&a), body).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{field} = {value}");
        assert!(r.body["errors"][field].is_string(), "{field}: {}", r.body);
        assert!(r.body["message"].is_string());
    }
    for missing in ["index", "gender", "age"] {
        let mut body = ok.clone();
        body.as_object_mut().unwrap().remove(missing);
        let r = app.post("/api/vote/", Some(&a), body).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"));
        assert_eq!(r.body["errors"][missing], "is required");
    }
    for (field, value) in [("index", json!(0)), ("index", json!("1")), ("party_id", json!(null))] {
        let mut body = json!({"index": 3, "party_id": "PA"});
        body[field] = value;
        let r = app.post("/api/votingpaperresult/", Some(&a), body).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"));
    }
    assert_eq!(app.fingerprint(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_at_far_from_the_server_clock_is_refused_when_first_stored() {
    let app = TestApp::spawn_with(|s| s.auth.token_ttl_secs = 10 * 24 * 3600).await;
    let a = app.reporter("E-1", "PO-1").await;
    let before = app.fingerprint();
    let now = app.now();
    for t in [now + chrono::Duration::minutes(6), now - chrono::Duration::hours(25)] {
        let body = json!({"index": 5, "gender": "male", "age": "less_30", "observed_at": t.to_rfc3339()});
        let r = app.post("/api/vote/", Some(&a), body).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"));
        assert!(r.body["errors"]["observed_at"].is_string());
    }
    assert_eq!(app.fingerprint(), before);
    let t = (now - chrono::Duration::hours(1)).to_rfc3339();
    let body = json!({"index": 5, "gender": "male", "age": "less_30", "observed_at": t});
    assert_eq!(app.post("/api/vote/", Some(&a), body.clone()).await.status, 201);
    app.advance(2 * 24 * 3600);
    assert_eq!(app.post("/api/vote/", Some(&a), body).await.status, 200, "a resend is not checked again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_invalid_json() {
    let (app, a) = setup().await;
    let before = app.fingerprint();
    for raw in ["{", "index=1&gender=male", "", "nul", "\u{0}"] {
        let r = app.post_raw("/api/vote/", Some(&a), raw.to_owned()).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_json"), "{raw:?}");
        let r = app.post_raw("/api/authenticate/", None, raw.to_owned()).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_json"), "{raw:?}");
    }
    for not_object in ["[1]", "3", "\"x\"", "null"] {
        let r = app.post_raw("/api/vote/", Some(&a), not_object.to_owned()).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{not_object}");
    }
    assert_eq!(app.fingerprint(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413_before_authentication_chunked_or_not() {
    let (app, a) = setup().await;
    let before = app.fingerprint();
    let big =
        format!("{{\"index\": 2, \"gender\": \"male\", \"age\": \"less_30\", \"pad\": \"{}\"}}", "x".repeat(17 * 1024));
    let r = app.post_raw("/api/vote/", Some(&a), big.clone()).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "payload_too_large"));
    let r = app.post_raw("/api/vote/", None, big.clone()).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "payload_too_large"), "size is checked before authentication");
    let r = app.post_raw("/api/authenticate/", None, big.clone()).await;
    assert_eq!(r.status, 413);
    // Chunked, with no Content-Length.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let status = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let auth = base64_basic("E-1", "whatever");
        write!(s, "POST /api/vote/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
        for chunk in big.as_bytes().chunks(4096) {
            write!(s, "{:x}\r\n", chunk.len()).unwrap();
            s.write_all(chunk).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        s.write_all(b"0\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert!(status.contains("payload_too_large"));
    // A phone still sending a large body on a slow link reads its 413, not a reset
    // connection: the server reads and drops up to 1 MiB of a refused body before
    // answering and closing.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let len = 600 * 1024;
        write!(s, "POST /api/vote/batch/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n")
            .unwrap();
        for _ in 0..10 {
            std::thread::sleep(std::time::Duration::from_millis(30));
            s.write_all(&[b'x'; 60 * 1024]).expect("the server still reads the body");
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A small chunked body is fine.
    let app_base = app.base.trim_start_matches("http://").to_owned();
    let token = a.token.clone();
    let small = tokio::task::spawn_blocking(move || {
        let body = r#"{"index": 9, "gender": "male", "age": "less_30"}"#;
        let mut s = std::net::TcpStream::connect(app_base).unwrap();
        let auth = base64_basic("E-1", &token);
        write!(s, "POST /api/vote/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(small.starts_with("HTTP/1.1 201"), "{small}");
    assert_ne!(app.fingerprint(), before);
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_foreign_tokens_are_refused_without_an_audit_entry() {
    let (app, a) = setup().await;
    let b = app.reporter("E-2", "PO-1").await;
    let before = app.fingerprint();
    let body = json!({"index": 2, "gender": "male", "age": "less_30"}).to_string();
    let vote = |req: reqwest::RequestBuilder| app.send(req.body(body.clone()));
    let url = app.url("/api/vote/");
    let r = vote(app.client.post(&url)).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_required"));
    let r = vote(app.client.post(&url).basic_auth("E-1", Some("not-a-token"))).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    let r = vote(app.client.post(&url).basic_auth("E-1", Some(&b.token))).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"), "another source's token");
    let r = vote(app.client.post(&url).bearer_auth("nope")).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    let r = vote(app.client.post(&url).header("authorization", "Digest abc")).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    let r = vote(app.client.post(&url).header("authorization", "Basic !!!")).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    // Authentication is checked before the body.
    let r = app.post_raw("/api/vote/", None, "not json").await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_required"));
    assert_eq!(app.fingerprint(), before);
    let _ = a;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_wrong_methods_get_json_errors() {
    let (app, _) = setup().await;
    for path in ["/nope", "/api/", "/api/vote/extra", "/api/pollofficesstats/PO-1/x"] {
        let r = app.get(path).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"), "{path}");
    }
    // A 405 says which methods the path takes (Allow).
    let r = app.get("/api/vote/").await;
    assert_eq!(
        (r.status.as_u16(), r.code(), r.headers["allow"].to_str().unwrap()),
        (405, "method_not_allowed", "POST")
    );
    let r = app.send(app.client.delete(app.url("/api/pollofficesstats/PO-1/"))).await;
    assert_eq!((r.status.as_u16(), r.code(), r.headers["allow"].to_str().unwrap()), (405, "method_not_allowed", "GET"));
    let r = app.send(app.client.put(app.url("/api/authenticate"))).await;
    assert_eq!(
        (r.status.as_u16(), r.code(), r.headers["allow"].to_str().unwrap()),
        (405, "method_not_allowed", "POST")
    );
    let r = app.send(app.client.put(app.url("/api/refresh-s3-credentials/"))).await;
    assert_eq!(r.headers["allow"], "GET, POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_audit_queries_are_invalid_data() {
    let (app, _) = setup().await;
    for q in ["after=-1", "after=x", "limit=0", "limit=1001", "limit=ten"] {
        let r = app.get(&format!("/api/audit/?{q}")).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{q}");
    }
}
