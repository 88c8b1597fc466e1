//! Reporters' S3 credentials, minted by a real STS (moto): usable inside the reporter's
//! own folder only, with the exact policy of the spec, cached, and never blocking
//! authentication when STS refuses or is down.

use std::time::Instant;

use serde_json::{json, Value};

use crate::helpers::*;

const OFFICE: &str = "PO-S3";
const REPORTER: &str = "UP-1";

async fn with_s3(resources: &[&str]) -> (Moto, Operator, TestApp) {
    let moto = Moto::start().await;
    let op = moto.setup(resources).await;
    let app = TestApp::spawn_with(|s| use_moto(s, &moto, &op)).await;
    (moto, op, app)
}

pub fn bucket_for(endpoint: &str, creds: &Value) -> Box<::s3::Bucket> {
    let region = ::s3::Region::Custom { region: "us-east-1".into(), endpoint: endpoint.into() };
    let c = ::s3::creds::Credentials::new(
        creds["access_key"].as_str(),
        creds["secret_key"].as_str(),
        creds["session_token"].as_str(),
        None,
        None,
    )
    .unwrap();
    ::s3::Bucket::new(BUCKET, region, c).unwrap().with_path_style()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_credentials_upload_inside_the_reporters_folder_and_nowhere_else() {
    let (moto, _, app) = with_s3(&[&format!("arn:aws:s3:::{BUCKET}/{OFFICE}/source-{REPORTER}/*")]).await;
    let s = app.login(REPORTER, OFFICE, None).await;
    let s3 = &s.body["s3"];
    assert_eq!(s3.get("error"), None, "{s3}");
    let creds = &s3["credentials"];
    for k in ["access_key", "secret_key", "session_token"] {
        assert!(!creds[k].as_str().unwrap().is_empty(), "{k}");
    }
    assert_eq!(creds["accessKeyId"], creds["access_key"]);
    assert_eq!(creds["secretAccessKey"], creds["secret_key"]);
    assert_eq!(creds["sessionToken"], creds["session_token"]);
    assert_eq!(creds["endpoint"], moto.endpoint.as_str());
    assert_eq!(creds["prefix"], format!("{OFFICE}/source-{REPORTER}"));
    let expiration = ufrecs::domain::time::parse(creds["expiration"].as_str().unwrap()).unwrap();
    assert!(expiration > app.now() + chrono::Duration::minutes(50));

    let bucket = bucket_for(&moto.endpoint, creds);
    let inside = format!("{OFFICE}/source-{REPORTER}/votes/vote-1-1-20250815T140211.jpeg");
    bucket.put_object(&inside, b"jpeg bytes").await.expect("an upload inside the folder");
    assert!(bucket.put_object(format!("{OFFICE}/source-OTHER/x.jpeg"), b"x").await.is_err(), "another folder");
    assert!(bucket.put_object("backups/x", b"x").await.is_err(), "the operator's folder");
    assert!(bucket.get_object(&inside).await.is_err(), "no reading back");
    assert!(bucket.delete_object(&inside).await.is_err(), "no erasing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_policy_sent_is_exactly_the_specs_and_is_cached() {
    let (moto, _, app) = with_s3(&[]).await;
    let first = app.login(REPORTER, OFFICE, None).await;
    let again = app.login(REPORTER, OFFICE, None).await;
    assert_eq!(
        first.body["s3"]["credentials"]["access_key"], again.body["s3"]["credentials"]["access_key"],
        "from the cache"
    );
    let refresh = app
        .send(app.client.post(app.url("/api/refresh-s3-credentials/")).basic_auth(REPORTER, Some(&again.token)))
        .await;
    assert_eq!(refresh.status, 200);
    assert_eq!(refresh.body["access_key"], first.body["s3"]["credentials"]["access_key"]);
    assert_eq!(refresh.body["sessionToken"], first.body["s3"]["credentials"]["session_token"]);
    assert_eq!(refresh.body["credentials"]["prefix"], format!("{OFFICE}/source-{REPORTER}"));
    assert_eq!(refresh.body.get("error"), None);

    let assumed = moto.assumed().await;
    assert_eq!(assumed.len(), 1, "one AssumeRole for two authentications and a refresh: {assumed:?}");
    let (session, policy) = &assumed[0];
    assert_eq!(session, "ufrecs-source-1");
    let prefix = format!("{OFFICE}/source-{REPORTER}/");
    assert_eq!(
        policy,
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
             "Resource": [format!("arn:aws:s3:::{BUCKET}/{prefix}*")]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [format!("arn:aws:s3:::{BUCKET}")],
             "Condition": {"StringLike": {"s3:prefix": [format!("{prefix}*")]}}}]})
    );
    // Another office is another folder, so other credentials.
    app.login(REPORTER, "PO-S3-B", None).await;
    assert_eq!(moto.assumed().await.len(), 2);
    let minted: i64 = app
        .db()
        .query_row("SELECT COUNT(*) FROM audit_log WHERE kind = 'credentials_minted'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(minted, 2, "each mint is audited");
    assert_eq!(app.get("/healthz").await.body["s3"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_that_would_widen_the_policy_never_reach_sts() {
    let (moto, _, app) = with_s3(&[]).await;
    for (elector, office) in [("E*", OFFICE), ("E-1", "PO/../*"), ("E-1", "*"), ("a b", OFFICE)] {
        let r = app.authenticate_with(elector, office, None).await;
        assert_eq!(r.status, 400, "{elector} {office}");
    }
    assert!(moto.assumed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_operator_secret_still_authenticates_with_a_clear_error() {
    let moto = Moto::start().await;
    let mut op = moto.setup(&[]).await;
    op.secret_key = "not-the-secret".into();
    let app = TestApp::spawn_with(|s| use_moto(s, &moto, &op)).await;
    let r = app.authenticate_with(REPORTER, OFFICE, None).await;
    assert_eq!(r.status, 201);
    let s3 = &r.body["s3"];
    assert_eq!(s3["error"], "sts_refused: SignatureDoesNotMatch", "{s3}");
    assert_eq!(s3["credentials"]["secret_key"], "");
    assert_eq!(s3["credentials"]["expiration"].as_str().unwrap(), ufrecs::domain::time::format(app.now()));
    assert!(!r.body.to_string().contains("not-the-secret"));
    let token = r.body["token"].as_str().unwrap();
    let vote = app
        .send(
            app.client
                .post(app.url("/api/vote/"))
                .bearer_auth(token)
                .body(r#"{"index":1,"gender":"male","age":"less_30"}"#),
        )
        .await;
    assert_eq!(vote.status, 201, "voting is never blocked by S3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sts_down_authentication_answers_within_the_retry_budget() {
    let (moto, _, app) = with_s3(&[]).await;
    moto.stop();
    let started = Instant::now();
    let r = app.authenticate_with(REPORTER, OFFICE, None).await;
    let took = started.elapsed();
    assert_eq!(r.status, 201);
    assert_eq!(r.body["s3"]["error"], "sts_unreachable");
    assert_eq!(r.body["s3"]["credentials"]["session_token"], "");
    assert!(took.as_secs_f64() < 8.0, "took {took:?}: the budget is 3 s of retries");
    let h = app.get("/healthz").await.body;
    assert_eq!(h["s3"], "unreachable");
    assert_eq!(h["status"], "ok", "S3 being down does not make the database degraded");
    assert!(app.metric("ufrecs_sts_failures_total").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_the_operator_secret_nor_minted_secrets_reach_the_log() {
    let moto = Moto::start().await;
    let op = moto.setup(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let env = [
        ("UFRECS_S3_ENDPOINT", moto.endpoint.clone()),
        ("UFRECS_S3_ACCESS_KEY", op.access_key.clone()),
        ("UFRECS_S3_SECRET_KEY", op.secret_key.clone()),
        ("UFRECS_S3_ROLE_ARN", op.role_arn.clone()),
    ];
    let server =
        Process::spawn_with(dir.path(), "debug", std::process::Stdio::from(std::fs::File::create(&log).unwrap()), &env);
    let client = reqwest::Client::new();
    let auth: Value = client
        .post(format!("{}/api/authenticate/", server.base))
        .body(json!({"elector_id": REPORTER, "poll_office_id": OFFICE}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let creds = auth["s3"]["credentials"].clone();
    assert!(!creds["secret_key"].as_str().unwrap().is_empty(), "{auth}");
    let refresh = client
        .get(format!("{}/api/refresh-s3-credentials/", server.base))
        .basic_auth(REPORTER, auth["token"].as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 200);
    let health: Value = client.get(format!("{}/healthz", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["s3"], "ok");
    server.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("[REDACTED]"));
    for secret in
        [op.secret_key.as_str(), creds["secret_key"].as_str().unwrap(), creds["session_token"].as_str().unwrap()]
    {
        assert!(!text.contains(secret), "a secret leaked into the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_index_counts_uploads_per_reporter_and_folder_without_naming_electors() {
    let (moto, _, app) = with_s3(&[]).await;
    let r = app
        .admin_post(
            "/api/reporters/",
            json!({"elector_id": REPORTER, "type": "official", "full_name": "Awa N.", "password": "pw-awa"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let awa = app.login(REPORTER, OFFICE, Some("pw-awa")).await;
    let other = app.login("UP-2", OFFICE, None).await;
    app.vote(&awa, 1, "female", "less_30", false).await;
    let put = |s: &Session, key: &str, bytes: usize| {
        let bucket = bucket_for(&moto.endpoint, &s.body["s3"]["credentials"]);
        let key = format!("{OFFICE}/source-{}/{key}", s.elector_id);
        async move { bucket.put_object(key, &vec![7u8; bytes]).await.unwrap() }
    };
    put(&awa, "votes/vote-1-1-a.jpeg", 100).await;
    put(&awa, "votes/vote-2-2-a.jpeg", 50).await;
    put(&awa, "verbal_process/pv-1.jpeg", 10).await;
    put(&other, "counting-proof/count.mp4", 1000).await;

    let r = app.get(&format!("/api/pollofficeevidence/{OFFICE}/")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.body.to_string();
    assert!(!text.contains(REPORTER) && !text.contains("UP-2"), "no elector_id is published: {text}");
    let sources = r.body["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{text}");
    assert_eq!(sources[0]["source"], "Awa N.");
    assert_eq!((sources[0]["objects"].as_u64(), sources[0]["bytes"].as_u64()), (Some(3), Some(160)));
    assert_eq!(
        sources[0]["folders"][1],
        json!({"folder": "votes/", "objects": 2, "bytes": 150, "latest_upload": sources[0]["folders"][1]["latest_upload"]})
    );
    assert_eq!(sources[1]["source"], "source-2");
    assert_eq!(sources[1]["folders"][0]["folder"], "counting-proof/");

    // Cached for 60 s; then served stale once while a fresh listing runs.
    put(&other, "counting-proof/count-2.mp4", 5).await;
    let cached = app.get(&format!("/api/pollofficeevidence/{OFFICE}/")).await.body;
    assert_eq!(cached["sources"][1]["objects"], 1);
    app.advance(61);
    let stale = app.get(&format!("/api/pollofficeevidence/{OFFICE}/")).await.body;
    assert_eq!(stale["listed_at"], cached["listed_at"]);
    let fresh = eventually("a fresh listing", || {
        let url = format!("/api/pollofficeevidence/{OFFICE}/");
        let app = &app;
        async move {
            let b = app.get(&url).await.body;
            (b["sources"][1]["objects"] == 2).then_some(b)
        }
    })
    .await;
    assert_ne!(fresh["listed_at"], cached["listed_at"]);

    let r = app.get("/api/pollofficeevidence/PO-NOWHERE/").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = app.get("/api/pollofficeevidence/a*b/").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_s3_the_evidence_index_says_so() {
    let app = TestApp::spawn().await;
    let r = app.get("/api/pollofficeevidence/PO-1/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"s3": "unconfigured"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_from_sts_is_retried_within_the_budget_then_reported_unreachable() {
    let moto = Moto::start().await;
    let mut op = moto.setup(&[]).await;
    // moto answers 500 to an AssumeRole without a RoleArn: a real server error.
    op.role_arn = String::new();
    let app = TestApp::spawn_with(|s| use_moto(s, &moto, &op)).await;
    let started = Instant::now();
    let r = app.authenticate_with(REPORTER, OFFICE, None).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["s3"]["error"], "sts_unreachable", "{}", r.body);
    assert!(started.elapsed().as_secs_f64() < 8.0);
    assert_eq!(app.metric("ufrecs_sts_calls_total").await, 3, "three tries");
    assert_eq!(app.metric("ufrecs_sts_failures_total").await, 3);
}
