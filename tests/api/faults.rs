//! Hostile or broken surroundings (issue 10): slow clients holding connections, thousands
//! of idle verification sockets, an STS that accepts but never answers.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// Every request succeeds within `within`: what "others are not stopped" means here.
async fn reads_answer(app: &TestApp, n: usize, within: Duration) {
    let client = reqwest::Client::builder().timeout(within).build().unwrap();
    let replies =
        join_all((0..n).map(|i| client.get(app.url(&format!("/api/pollofficesstats/PO-{}/", i % 7))).send())).await;
    for r in replies {
        assert_eq!(r.expect("an answer while the server is under siege").status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_holding_connections_neither_stop_others_nor_stay_for_ever() {
    let app = TestApp::spawn_with(|s| s.http.header_timeout_secs = 2).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // 300 clients that start a request and never finish its headers, and 100 that
    // connect and say nothing at all.
    let mut slow = Vec::new();
    for i in 0..400 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        if i < 300 {
            c.write_all(b"GET /api/pollofficesstats/PO-1/ HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        }
        slow.push(c);
    }
    reads_answer(&app, 50, Duration::from_secs(5)).await;
    let s = app.reporter("E-1", "PO-1").await;
    assert_eq!(app.vote(&s, 1, "male", "less_30", false).await.status, 201);

    // After the header timeout the server has closed them (a read sees the end, or a reset).
    let deadline = Instant::now() + Duration::from_secs(15);
    for mut c in slow {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(left, async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(read.is_ok(), "a slow client's connection is still open after the header timeout");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_voters_do_not_starve_http() {
    let app = TestApp::spawn_with(|s| {
        s.ws.max_connections_per_address = 5000;
        s.ws.max_waiting_per_office = 100;
        // One test client stands for 2,000 voters' phones.
        s.ws.max_waiting_per_address_per_office = 5000;
    })
    .await;
    let ws_base = app.base.replace("http", "ws");
    // Small client buffers: 2,000 sockets in this process must stay cheap.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let mut voters = Vec::new();
    // The first voter of PO-0 connects alone, so that it is the longest waiting there
    // (the others connect 200 at a time, in no set order).
    let url = |i: usize| format!("{ws_base}/ws/vote-verification?poll_office_id=PO-{}&elector_id=V-{i}", i % 20);
    let (mut first, _) = tokio_tungstenite::connect_async_with_config(url(0), Some(config), false).await.unwrap();
    let m = first.next().await.unwrap().unwrap();
    assert!(m.to_text().unwrap().contains("waiting"), "{m}");
    voters.push(first);
    for chunk in (1..2000).collect::<Vec<_>>().chunks(200) {
        let opened =
            join_all(chunk.iter().map(|i| tokio_tungstenite::connect_async_with_config(url(*i), Some(config), false)))
                .await;
        voters.extend(opened.into_iter().map(|r| r.expect("a socket").0));
    }
    for v in voters.iter_mut().skip(1).take(20) {
        let m = v.next().await.unwrap().unwrap();
        assert!(m.to_text().unwrap().contains("waiting"), "{m}");
    }
    assert_eq!(app.metric("ufrecs_ws_connections").await, 2000);

    reads_answer(&app, 200, Duration::from_secs(5)).await;
    // Writes go through, and the hub still matches: the first voter of PO-0 gets the vote.
    let s = app.reporter("E-1", "PO-0").await;
    assert_eq!(app.vote(&s, 1, "female", "less_60", false).await.status, 201);
    let first = &mut voters[0];
    let shown = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Ok(Message::Text(t))) = first.next().await {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "vote" {
                    return v;
                }
            }
        }
    })
    .await
    .expect("the vote offered to the longest-waiting voter");
    assert_eq!(shown["index"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sts_that_never_answers_delays_authentication_by_the_budget_only() {
    // A service that accepts connections and then says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            held.push(c);
        }
    });
    let app = TestApp::spawn_with(|s| {
        s.s3.endpoint = endpoint.clone();
        s.s3.sts_endpoint = endpoint.clone();
        s.s3.access_key = "operator".into();
        s.s3.secret_key = "operator-secret".into();
    })
    .await;
    let voter = app.reporter("E-0", "PO-1").await;
    let started = Instant::now();
    let (slow, vote) = tokio::join!(app.authenticate_with("E-1", "PO-1", None), async {
        // Meanwhile, another reporter's vote is not held up by the hanging STS call.
        let t = Instant::now();
        let r = app.vote(&voter, 1, "male", "less_30", false).await;
        (r.status, t.elapsed())
    });
    let took = started.elapsed();
    assert_eq!(slow.status, 201);
    assert_eq!(slow.body["s3"]["error"], "sts_unreachable", "{}", slow.body);
    assert!(took < Duration::from_secs(8), "took {took:?}: the budget is 3 s");
    assert_eq!(vote.0, 201);
    assert!(vote.1 < took, "the vote did not wait for STS");
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_does_not_hold_up_a_restart() {
    let mut app = TestApp::spawn_with(|s| s.http.header_timeout_secs = 60).await;
    // Connected, and nothing sent: what a client's connection pool leaves open.
    let _silent = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let started = std::time::Instant::now();
    app.stop().await;
    let took = started.elapsed();
    println!("stop with a silent connection open: {:.2} s (header timeout 60 s)", took.as_secs_f64());
    assert!(took < Duration::from_secs(30), "the stop waited for the silent connection: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_database_refuses_fails_alone_in_its_group_commit() {
    let app = TestApp::spawn().await;
    let s = app.reporter("E-1", "PO-1").await;
    let other = app.reporter("E-2", "PO-2").await;
    // A deterministic SQL error inside one request (a trigger an integrator added).
    let rw = rusqlite::Connection::open(app.db_path()).unwrap();
    rw.execute_batch(
        "CREATE TRIGGER refuse_13 BEFORE INSERT ON vote_proposals WHEN NEW.idx = 13
         BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END;",
    )
    .unwrap();
    let votes: Vec<Value> =
        (11..=15).map(|i| serde_json::json!({"index": i, "gender": "male", "age": "less_30"})).collect();
    // The batch is one group commit; a vote at another office shares it or the next one.
    let (batch, alone) = tokio::join!(
        app.post("/api/vote/batch/", Some(&s), serde_json::json!({ "votes": votes })),
        app.vote(&other, 1, "female", "less_60", false)
    );
    assert_eq!(batch.status, 200, "{}", batch.body);
    let statuses: Vec<u64> =
        batch.body["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [201, 201, 500, 201, 201], "{}", batch.body);
    assert_eq!(batch.body["results"][2]["error"]["code"], "internal");
    assert_eq!(alone.status, 201);
    assert_eq!(app.stats("PO-1").await["totals"]["votes"], 4);
    assert_eq!(app.stats("PO-2").await["totals"]["votes"], 1);
    // Nothing of the refused vote was kept, in the tables or in memory.
    let kept: i64 = app.db().query_row("SELECT COUNT(*) FROM votes WHERE idx = 13", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, 0);
    assert_eq!(app.get("/healthz").await.body["status"], "ok", "a refused request is no database fault");
    assert_eq!(ufrecs::store::reads::audit_first_break(&app.db()).unwrap(), None, "the audit chain holds");
}
