//! The verification WebSocket with a real client against the real server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Voter {
    socket: Socket,
}

impl Voter {
    async fn open(app: &TestApp, office: &str, elector: &str) -> Voter {
        Self::open_from(app, office, elector, None).await
    }

    /// Opens as a client of another address (through the trusted loopback proxy).
    async fn open_from(app: &TestApp, office: &str, elector: &str, address: Option<&str>) -> Voter {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/ws/vote-verification?poll_office_id={office}&elector_id={elector}",
            app.base.replace("http", "ws")
        );
        let mut req = url.into_client_request().unwrap();
        if let Some(a) = address {
            req.headers_mut().insert("x-forwarded-for", a.parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Voter { socket }
    }

    /// Opens and reads the `waiting` message.
    async fn waiting(app: &TestApp, office: &str, elector: &str) -> Voter {
        let mut v = Voter::open(app, office, elector).await;
        let m = v.next().await;
        assert_eq!(m["type"], "waiting", "{m}");
        assert_eq!(m["poll_office_id"], office);
        v
    }

    /// The next JSON message (pings skipped), within 10 s.
    async fn next(&mut self) -> Value {
        loop {
            let m =
                tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await.expect("a message within 10 s");
            match m.expect("the socket is open").expect("no error") {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The close code the server sends next.
    async fn closed(&mut self) -> u16 {
        loop {
            let m =
                tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await.expect("a close within 10 s");
            match m {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) | None => return 0,
                Some(Ok(Message::Text(t))) => panic!("expected a close, got {t}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("{e}"),
            }
        }
    }

    async fn send(&mut self, v: Value) {
        self.socket.send(Message::text(v.to_string())).await.unwrap();
    }

    /// Nothing arrives for a short while (used only where an absence is the point).
    async fn quiet(&mut self) -> bool {
        tokio::time::timeout(Duration::from_millis(300), self.socket.next()).await.is_err()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_confirms_with_a_correction_and_the_vote_is_recorded_and_reweighed() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let b = app.reporter("E-2", "PO-1").await;
    let mut voter = Voter::waiting(&app, "PO-1", "VOTER-1").await;
    let id = app.vote(&a, 1, "male", "less_30", false).await.body["id"].clone();
    let shown = voter.next().await;
    assert_eq!(
        shown,
        json!({"type": "vote", "vote_id": id, "index": 1, "gender": "male", "age": "less_30", "has_torn": false})
    );
    // A second reporter disagrees: the tie leaves gender undecided until the voter speaks.
    app.vote(&b, 1, "female", "less_30", false).await;
    assert_eq!(app.stats("PO-1").await["totals"]["male"], 0);
    voter.send(json!({"type": "confirm", "gender": "female"})).await;
    let recorded = voter.next().await;
    assert_eq!((&recorded["type"], &recorded["vote_id"]), (&json!("recorded"), &json!(id)));
    let seq = recorded["receipt"]["seq"].as_i64().expect("a receipt");
    let kind: String = app.db().query_row("SELECT kind FROM audit_log WHERE seq = ?1", [seq], |r| r.get(0)).unwrap();
    assert_eq!(kind, "vote_verified", "the receipt names the verification's entry");
    assert_eq!(voter.closed().await, 1000);
    let s = app.stats("PO-1").await;
    assert_eq!(s["totals"]["verified"], 1);
    assert_eq!(s["totals"]["female"], 1, "the verification broke the tie");
    assert_eq!(s["totals"]["disputed"], 1, "the reporters still disagree");
    let (hash, actor): (String, String) = app
        .db()
        .query_row(
            "SELECT v.voter_hash, a.actor FROM vote_verifications v, audit_log a WHERE a.kind = 'vote_verified'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(hash.len(), 64);
    assert_eq!(actor, "voter");
    // The raw voter id is nowhere in the file integrators copy.
    let mut bytes = std::fs::read(app.db_path()).unwrap();
    bytes.extend(std::fs::read(app.db_path().with_extension("sqlite3-wal")).unwrap_or_default());
    assert!(!bytes.windows(7).any(|w| w == b"VOTER-1"), "the raw voter id is stored");
    // The same voter cannot verify again.
    let mut again = Voter::open(&app, "PO-1", "VOTER-1").await;
    assert_eq!(again.next().await, json!({"type": "error", "code": "already_verified"}));
    assert_eq!(again.closed().await, 4409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_go_first_come_first_served_per_office_and_never_to_a_later_voter() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let other = app.reporter("E-9", "PO-2").await;
    let mut first = Voter::waiting(&app, "PO-1", "V-1").await;
    let mut second = Voter::waiting(&app, "PO-1", "V-2").await;
    let mut elsewhere = Voter::waiting(&app, "PO-2", "V-3").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    assert_eq!(first.next().await["index"], 1);
    app.vote(&a, 2, "female", "less_60", true).await;
    assert_eq!(second.next().await["index"], 2);
    assert!(elsewhere.quiet().await, "another office's votes are not offered");
    app.vote(&a, 3, "female", "less_60", false).await;
    let mut late = Voter::waiting(&app, "PO-1", "V-4").await;
    assert!(late.quiet().await, "vote 3 was reported before this voter came");
    app.vote(&other, 1, "male", "more_60", false).await;
    assert_eq!(elsewhere.next().await["gender"], "male");
    app.vote(&a, 4, "male", "more_60", false).await;
    assert_eq!(late.next().await["index"], 4);
    // Free again, the first voter gets vote 3, reported while it was busy.
    first.send(json!({"type": "not_mine"})).await;
    assert_eq!(first.next().await["index"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_mine_moves_the_vote_to_the_next_voter_who_keeps_the_order() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let mut first = Voter::waiting(&app, "PO-1", "V-1").await;
    let mut second = Voter::waiting(&app, "PO-1", "V-2").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    assert_eq!(first.next().await["index"], 1);
    first.send(json!({"type": "not_mine"})).await;
    assert_eq!(second.next().await["index"], 1);
    app.vote(&a, 2, "male", "less_30", false).await;
    assert_eq!(first.next().await["index"], 2, "the first voter kept its place");
    second.send(json!({"type": "confirm"})).await;
    assert_eq!(second.next().await["type"], "recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_voter_gets_the_same_vote_back_and_a_second_connection_replaces_the_first() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let mut voter = Voter::waiting(&app, "PO-1", "V-1").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    assert_eq!(voter.next().await["index"], 1);
    drop(voter);
    let mut back = Voter::waiting(&app, "PO-1", "V-1").await;
    assert_eq!(back.next().await["index"], 1, "the same vote again");
    let mut again = Voter::waiting(&app, "PO-1", "V-1").await;
    assert_eq!(back.next().await, json!({"type": "error", "code": "replaced"}));
    assert_eq!(back.closed().await, 4000);
    assert_eq!(again.next().await["index"], 1, "the new connection inherits the vote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_voters_time_out() {
    let app = TestApp::spawn_with(|s| {
        s.ws.wait_timeout_secs = 1;
        s.ws.answer_timeout_secs = 1;
    })
    .await;
    let a = app.reporter("E-1", "PO-1").await;
    let mut waiting = Voter::waiting(&app, "PO-1", "V-1").await;
    assert_eq!(waiting.next().await, json!({"type": "timeout"}));
    assert_eq!(waiting.closed().await, 1000);
    let mut shown = Voter::waiting(&app, "PO-1", "V-2").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    assert_eq!(shown.next().await["type"], "vote");
    assert_eq!(shown.next().await, json!({"type": "timeout"}));
    assert_eq!(shown.closed().await, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_invalid_message_then_the_door() {
    let app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let mut voter = Voter::waiting(&app, "PO-1", "V-1").await;
    voter.send(json!({"type": "confirm"})).await;
    let e = voter.next().await;
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("error"), Some("invalid_message")), "nothing shown yet");
    app.vote(&a, 1, "male", "less_30", false).await;
    assert_eq!(voter.next().await["type"], "vote");
    voter.socket.send(Message::text("not json")).await.unwrap();
    assert_eq!(voter.next().await["code"], "invalid_message");
    voter.send(json!({"type": "confirm", "gender": "robot"})).await;
    let e = voter.next().await;
    assert_eq!(e["code"], "invalid_message");
    assert!(e["message"].as_str().unwrap().contains("gender"));
    voter.send(json!({"type": "dance"})).await;
    assert_eq!(voter.next().await["code"], "invalid_message");
    voter.send(json!({"x": 1})).await;
    assert_eq!(voter.closed().await, 1008, "five bad messages");
    let mut big = Voter::waiting(&app, "PO-1", "V-2").await;
    big.socket.send(Message::text("x".repeat(5000))).await.unwrap();
    assert_eq!(big.closed().await, 1009);
    assert_eq!(app.stats("PO-1").await["totals"]["verified"], 0);
    let r = app.get("/ws/vote-verification?poll_office_id=PO-1&elector_id=V-1").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "not an upgrade");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_office_queue_is_busy() {
    let app = TestApp::spawn_with(|s| s.ws.max_waiting_per_office = 1).await;
    let _one = Voter::waiting(&app, "PO-1", "V-1").await;
    let mut two = Voter::open(&app, "PO-1", "V-2").await;
    assert_eq!(two.next().await, json!({"type": "error", "code": "busy"}));
    assert_eq!(two.closed().await, 1013);
    let _other_office = Voter::waiting(&app, "PO-2", "V-3").await;
    assert_eq!(app.metric("ufrecs_ws_waiting_voters").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowded_client_address_is_busy() {
    let app = TestApp::spawn_with(|s| s.ws.max_connections_per_address = 2).await;
    let _one = Voter::waiting(&app, "PO-1", "V-1").await;
    let _two = Voter::waiting(&app, "PO-2", "V-2").await;
    let mut three = Voter::open(&app, "PO-3", "V-3").await;
    assert_eq!(three.next().await, json!({"type": "error", "code": "busy"}));
    assert_eq!(three.closed().await, 1013);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_fill_an_offices_queue_and_answer_for_its_voters() {
    let app = TestApp::spawn().await;
    let mut held = Vec::new();
    let mut busy = 0;
    for i in 0..100 {
        let mut v = Voter::open_from(&app, "PO-1", &format!("FAKE-{i}"), Some("198.51.100.7")).await;
        match v.next().await["type"].as_str() {
            Some("waiting") => held.push(v),
            _ => {
                assert_eq!(v.closed().await, 1013);
                busy += 1;
            }
        }
    }
    println!("100 sockets from one address at one office: {} waiting, {busy} busy", held.len());
    assert_eq!(held.len(), 5, "ws.max_waiting_per_address_per_office");
    // The real voter, from their own address, still gets in and is offered the vote.
    let mut real = Voter::open_from(&app, "PO-1", "V-REAL", Some("203.0.113.9")).await;
    assert_eq!(real.next().await["type"], "waiting");
    // The attacker's sockets came first: they are offered the first votes in FIFO order;
    // a vote they pass on (not_mine) goes on, the next reaches the real voter.
    let s = app.reporter("E-1", "PO-1").await;
    for i in 1..=6 {
        app.vote(&s, i, "female", "less_30", false).await;
    }
    for v in held.iter_mut() {
        assert_eq!(v.next().await["type"], "vote");
    }
    assert_eq!(real.next().await["type"], "vote", "the sixth vote reaches the real voter");
    // Elsewhere the same address is welcome.
    let mut elsewhere = Voter::open_from(&app, "PO-2", "FAKE-X", Some("198.51.100.7")).await;
    assert_eq!(elsewhere.next().await["type"], "waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_before_the_upgrade() {
    let app = TestApp::spawn_with(|s| s.registry.strict = ufrecs::config::Strict::Yes).await;
    let ws = app.base.replace("http", "ws");
    for (query, status) in [
        ("poll_office_id=PO-1", 400),
        ("elector_id=V-1", 400),
        ("poll_office_id=PO-1&elector_id=a*b", 400),
        ("poll_office_id=a/b&elector_id=V-1", 400),
        ("poll_office_id=PO-UNKNOWN&elector_id=V-1", 404),
    ] {
        let err = tokio_tungstenite::connect_async(format!("{ws}/ws/vote-verification?{query}")).await.unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(res) => {
                assert_eq!(res.status().as_u16(), status, "{query}");
                let body: Value = serde_json::from_slice(res.body().as_deref().unwrap_or_default()).unwrap();
                assert!(body["code"] == "invalid_data" || body["code"] == "unknown_poll_office", "{body}");
            }
            other => panic!("{query}: {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_closes_open_sockets_and_restarts_cleanly() {
    let mut app = TestApp::spawn().await;
    let a = app.reporter("E-1", "PO-1").await;
    let mut voter = Voter::waiting(&app, "PO-1", "V-1").await;
    tokio::time::timeout(Duration::from_secs(10), app.restart()).await.expect("the server stops with a socket open");
    assert_eq!(voter.closed().await, 1001, "going away");
    let mut back = Voter::waiting(&app, "PO-1", "V-1").await;
    app.vote(&a, 1, "male", "less_30", false).await;
    assert_eq!(back.next().await["index"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_voter_id_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server =
        Process::spawn_with(dir.path(), "debug", std::process::Stdio::from(std::fs::File::create(&log).unwrap()), &[]);
    let remote = remote(&server.base);
    let s = remote.login("E-1", "PO-1").await;
    let url = format!(
        "{}/ws/vote-verification?poll_office_id=PO-1&elector_id=RAW-VOTER-77",
        server.base.replace("http", "ws")
    );
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut voter = Voter { socket };
    assert_eq!(voter.next().await["type"], "waiting");
    remote.vote(&s, 1).await.unwrap();
    assert_eq!(voter.next().await["type"], "vote");
    voter.send(json!({"type": "confirm"})).await;
    assert_eq!(voter.next().await["type"], "recorded");
    server.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("/ws/vote-verification"), "the socket's request is logged: {text}");
    assert!(!text.contains("RAW-VOTER-77"));
    let mut bytes = std::fs::read(dir.path().join("ufrecs.sqlite3")).unwrap();
    bytes.extend(std::fs::read(dir.path().join("ufrecs.sqlite3-wal")).unwrap_or_default());
    assert!(!bytes.windows(12).any(|w| w == b"RAW-VOTER-77"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_status_change_that_counts_a_vote_offers_it_to_a_waiting_voter() {
    let app = TestApp::spawn().await;
    let trusted = app.official("E-T", "PO-1").await;
    let a = app.reporter("E-A", "PO-1").await;
    assert_eq!(app.vote(&trusted, 1, "male", "less_30", false).await.status, 201);
    app.advance(5);
    // The voter comes after vote 1; A's vote 2 does not count (the office has a trusted
    // reporter), so nothing is offered.
    let mut voter = Voter::waiting(&app, "PO-1", "VOTER-1").await;
    assert_eq!(app.vote(&a, 2, "female", "more_60", false).await.status, 201);
    assert!(voter.quiet().await, "an uncounted vote is not offered");
    // On the box, A is made official: the re-weigh counts vote 2, and the hub hears of it
    // through the reload of the CLI's commit.
    app.cli_ok(&["source", "set-status", "E-A", "official"]);
    let shown = voter.next().await;
    assert_eq!(
        (&shown["type"], &shown["index"], &shown["gender"]),
        (&json!("vote"), &json!(2), &json!("female")),
        "{shown}"
    );
}
