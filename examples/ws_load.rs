//! The WebSocket benchmark's client (run by `bench/ws`): holds VOTERS waiting voters over
//! OFFICES offices, then posts VOTES_PER_OFFICE votes per office and measures, for each,
//! the delay from the vote's HTTP answer to its voter's `vote` message; prints the
//! server's RSS (from /proc) before the voters, with them waiting, and at the end.
//!
//! Usage: ws_load BASE_URL SERVER_PID [VOTERS] [OFFICES] [VOTES_PER_OFFICE]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn rss_mb(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args[1].clone();
    let pid = args[2].clone();
    let voters: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let offices: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(500);
    let per_office: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(4);
    let ws_base = base.replace("http", "ws");
    let office = |i: usize| format!("BENCH-{i:04}");

    let rss_before = rss_mb(&pid);
    // vote id -> when its voter got the `vote` message.
    let received: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let started = Instant::now();
    for v in 0..voters {
        let url =
            format!("{ws_base}/ws/vote-verification?poll_office_id={}&elector_id=BENCH-VOTER-{v}", office(v % offices));
        let (received, ready) = (received.clone(), ready_tx.clone());
        tokio::spawn(async move {
            let (mut socket, _) = match tokio_tungstenite::connect_async(url).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("connect: {e}");
                    return;
                }
            };
            while let Some(Ok(m)) = socket.next().await {
                let Message::Text(t) = m else { continue };
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                match v["type"].as_str() {
                    Some("waiting") => {
                        let _ = ready.send(());
                    }
                    Some("vote") => {
                        received.lock().insert(v["vote_id"].as_str().unwrap_or("").to_owned(), Instant::now());
                        let _ = socket.send(Message::text(r#"{"type":"confirm"}"#)).await;
                    }
                    _ => {}
                }
            }
        });
        if v % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(ready_tx);
    let mut waiting = 0;
    while waiting < voters {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(())) => waiting += 1,
            _ => break,
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_waiting = rss_mb(&pid);

    let http = reqwest::Client::new();
    let mut tokens = Vec::with_capacity(offices);
    for o in 0..offices {
        let r: Value = http
            .post(format!("{base}/api/authenticate/"))
            .body(json!({"elector_id": format!("BENCH-REPORTER-{o}"), "poll_office_id": office(o)}).to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(r["token"].as_str().unwrap().to_owned());
    }
    // Votes: every office in turn, 32 in flight.
    let answered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let jobs: Vec<(usize, usize)> = (1..=per_office).flat_map(|i| (0..offices).map(move |o| (o, i))).collect();
    let votes_started = Instant::now();
    futures_util::stream::iter(jobs)
        .for_each_concurrent(32, |(o, i)| {
            let (http, token, base, answered) = (http.clone(), tokens[o].clone(), base.clone(), answered.clone());
            async move {
                let r = http
                    .post(format!("{base}/api/vote/"))
                    .bearer_auth(token)
                    .body(json!({"index": i, "gender": "female", "age": "less_60"}).to_string())
                    .send()
                    .await
                    .unwrap();
                let at = Instant::now();
                let v: Value = r.json().await.unwrap();
                answered.lock().insert(v["id"].as_str().unwrap_or("").to_owned(), at);
            }
        })
        .await;
    let expected = (offices * per_office).min(voters);
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_end = rss_mb(&pid);
    let received = received.lock();
    let answered = answered.lock();
    let mut delays: Vec<f64> = answered
        .iter()
        .filter_map(|(id, sent)| received.get(id).map(|got| got.saturating_duration_since(*sent).as_secs_f64() * 1e3))
        .collect();
    delays.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("voters waiting: {waiting} of {voters} over {offices} offices (connected in {connect_secs:.1} s)");
    println!("server RSS: {rss_before:.1} MB before, {rss_waiting:.1} MB with the voters waiting (growth {:.1} MB), {rss_end:.1} MB at the end", rss_waiting - rss_before);
    println!("votes delivered: {} of {} posted", delays.len(), answered.len());
    if let Some(last) = received.values().max() {
        let secs = last.saturating_duration_since(votes_started).as_secs_f64();
        println!(
            "matching: {} votes posted, offered and confirmed in {secs:.2} s = {:.0} votes/s",
            received.len(),
            received.len() as f64 / secs
        );
    }
    println!(
        "delay from the vote's HTTP answer to the voter's message: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or(f64::NAN)
    );
}
