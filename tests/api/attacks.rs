//! What one client with a loop could do to the published numbers, the writer, the memory
//! and the public log, each reproduced against the real server with a bounded flood that
//! prints its figures (docs/security.md lists them with their bounds).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::helpers::*;

/// A flood's size: `default` in the test suite, larger when `bench/attacks` sets the
/// variable (the sizes the attacks were found with).
fn size(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The p99 of a set of latencies, in milliseconds.
fn p99(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ms.get((ms.len() * 99 / 100).min(ms.len().saturating_sub(1))).copied().unwrap_or(0.0)
}

/// A batch of votes `from..=to` for a session.
async fn batch(app: &TestApp, s: &Session, from: i64, to: i64, gender: &str) -> Reply {
    let votes: Vec<Value> = (from..=to).map(|i| json!({"index": i, "gender": gender, "age": "less_30"})).collect();
    let r = app.post("/api/vote/batch/", Some(s), json!({ "votes": votes })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

/// Votes of a reporter at another office while `flood` runs: their p99 in ms.
async fn bystander_p99<F: std::future::Future<Output = ()>>(app: &TestApp, office: &str, flood: F) -> f64 {
    let s = app.reporter(&format!("BYSTANDER-{office}"), office).await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut latencies = Vec::new();
    let watch = async {
        let mut i = 1;
        while !done.load(std::sync::atomic::Ordering::Relaxed) && i <= 2000 {
            let t = Instant::now();
            let r = app.vote(&s, i, "male", "less_30", false).await;
            assert!(r.status.is_success(), "{}", r.body);
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            i += 1;
        }
    };
    let flood = async {
        flood.await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(watch, flood);
    p99(latencies)
}

/// Every office's bodies as served, for comparing the live memory with a rebuild.
async fn bodies(app: &TestApp, office: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/api/pollofficesstats/{office}/"),
        format!("/api/pollofficeresults/{office}/"),
        format!("/api/pollofficesstats/?poll_office={office}"),
    ] {
        out.push(app.get(&path).await.body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_status_change_while_a_reporter_corrects_leaves_memory_equal_to_a_rebuild() {
    let mut app = TestApp::spawn().await;
    let official = app.official("E-OFF", "PO-1").await;
    let other = app.reporter("E-OPP", "PO-1").await;
    for from in (1..=2000).step_by(500) {
        batch(&app, &official, from, from + 499, "male").await;
        batch(&app, &other, from, from + 499, "female").await;
    }
    let db = app.db_path();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let corrections = async {
        let mut n = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 20_000 {
            let i = 1 + (n * 7919) % 2000;
            let gender = if n % 2 == 0 { "female" } else { "male" };
            let r = app.vote(&official, i, gender, if n % 3 == 0 { "less_60" } else { "less_30" }, false).await;
            assert!(r.status.is_success());
            n += 1;
        }
        n
    };
    let change = async {
        let db = db.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_ufrecs"))
                .args(["source", "set-status", "E-OFF", "unverified"])
                .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
                .env("UFRECS_DATABASE_PATH", &db)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Both reporters count once the server followed: two sources.
        eventually("the server to follow the status change", || async {
            (app.stats("PO-1").await["totals"]["sources"] == 2).then_some(())
        })
        .await;
        // Writes go on after the reload, then stop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (n, ()) = tokio::join!(corrections, change);
    println!("corrections during the status change: {n}");
    let live = bodies(&app, "PO-1").await;
    app.restart().await;
    let rebuilt = bodies(&app, "PO-1").await;
    assert_eq!(live, rebuilt, "the live memory equals a rebuild from the tables");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invented_office_never_shadows_a_directory_office_of_the_citizen_app() {
    // An open registry, so the invented office can exist at all.
    let app = TestApp::spawn_with(|s| s.registry.strict = ufrecs::config::Strict::No).await;
    let csv: String = std::iter::once("identifier,name\n".to_owned())
        .chain((1..=6).map(|i| format!("DIR-{i},Office {i}\n")))
        .collect();
    let file = app.dir.path().join("offices.csv");
    std::fs::write(&file, csv).unwrap();
    import_offices(&app, &file);
    eventually("the directory to be followed", || async {
        (app.get("/api/polloffices/").await.body["count"] == 6).then_some(())
    })
    .await;
    let id_of_dir5: i64 =
        app.db().query_row("SELECT id FROM poll_offices WHERE identifier = 'DIR-5'", [], |r| r.get(0)).unwrap();
    let real = app.reporter("E-REAL", "DIR-5").await;
    app.vote(&real, 1, "male", "less_30", false).await;
    let liar = app.reporter("E-LIAR", &id_of_dir5.to_string()).await;
    for i in 1..=30 {
        app.vote(&liar, i, "female", "less_30", false).await;
    }
    let r = app.get(&format!("/api/pollofficesstats/?poll_office={id_of_dir5}")).await;
    assert_eq!(r.body["totals"]["votes"], 1, "directory office #{id_of_dir5}, not the invented one: {}", r.body);
    let r = app.get(&format!("/api/pollofficeresults/?poll_office_id={id_of_dir5}")).await;
    assert_eq!(r.status, 200);
    // The invented office is still reachable by its path, where nobody mistakes it.
    assert_eq!(app.stats(&id_of_dir5.to_string()).await["totals"]["votes"], 30);
    println!("invented office {id_of_dir5}: 30 votes, shown 0 of them as directory office #{id_of_dir5}");
}

fn import_offices(app: &TestApp, file: &std::path::Path) {
    import(app, "poll-offices", file);
}

/// `ufrecs import WHAT FILE` on the running server's database.
fn import(app: &TestApp, what: &str, file: &std::path::Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ufrecs"))
        .args(["import", what, file.to_str().unwrap()])
        .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
        .env("UFRECS_DATABASE_PATH", app.db_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_directory_exists_invented_offices_and_parties_never_reach_the_log() {
    let app = TestApp::spawn().await;
    // No directory yet: an open registry (an election without one still works).
    let early = app.login("E-0", "ANY-OFFICE", None).await;
    assert_eq!(early.status, 201);
    let file = app.dir.path().join("offices.csv");
    std::fs::write(&file, "identifier,name\nPO-1,One\n").unwrap();
    import_offices(&app, &file);
    eventually("the directory to be followed", || async {
        (app.authenticate_with("E-1", "02-12-069-0080-16-000700", None).await.code() == "unknown_poll_office")
            .then_some(())
    })
    .await;
    let before = app.fingerprint();
    // A token taken before the import writes nothing more at its invented office.
    let r = app.vote(&early, 1, "male", "less_30", false).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "unknown_poll_office"));
    for id in ["Awa-Ndiaye-699123456", "02-12-069-0080-16-000701"] {
        let r = app.authenticate_with("E-2", id, None).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "unknown_poll_office"));
        let r = app.get(&format!("/api/pollofficesstats/{id}/")).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "unknown_poll_office"));
    }
    assert_eq!(app.fingerprint(), before, "nothing stored");
    let s = app.reporter("E-3", "PO-1").await;
    // No party imported: parties stay open; once one is, an invented one is refused.
    assert_eq!(app.ballot(&s, 1, "Jean-Phone-699").await.status, 201);
    let parties = app.dir.path().join("parties.csv");
    std::fs::write(&parties, "identifier,party_name\nABC,Alpha\n").unwrap();
    import(&app, "parties", &parties);
    eventually("the parties to be followed", || async {
        (app.ballot(&s, 2, "Voter-699123456").await.code() == "unknown_party").then_some(())
    })
    .await;
    assert_eq!(app.ballot(&s, 3, "ABC").await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_invented_sources_at_an_office_cost_its_writes_nothing() {
    let sources = size("ATTACK_SOURCES", 2000) as usize;
    let app = TestApp::spawn_with(|s| s.auth.new_sources_per_address_per_min = 1_000_000).await;
    let started = Instant::now();
    let creating = bystander_p99(&app, "PO-ELSEWHERE", async {
        futures_util::stream::iter(0..sources)
            .map(|i| {
                let app = &app;
                async move {
                    let s = app.reporter(&format!("INV-{i}"), "PO-CROWD").await;
                    app.vote(&s, 1, "male", "less_30", false).await;
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    })
    .await;
    println!(
        "{sources} invented sources with a vote each at PO-CROWD in {:.1} s; a reporter elsewhere meanwhile: p99 {creating:.1} ms",
        started.elapsed().as_secs_f64()
    );
    let crowded = app.reporter("E-REAL", "PO-CROWD").await;
    let alone = app.reporter("E-ALONE", "PO-ALONE").await;
    let time = |s: Session, from: i64| {
        let app = &app;
        async move {
            let t = Instant::now();
            batch(app, &s, from, from + 499, "female").await;
            t.elapsed().as_secs_f64() * 1000.0
        }
    };
    // Interleaved, twice each, the best of each.
    let (mut at_crowd, mut at_alone) = (f64::MAX, f64::MAX);
    for round in 0..2 {
        at_alone = at_alone.min(time(alone.clone(), 2 + round * 500).await);
        at_crowd = at_crowd.min(time(crowded.clone(), 2 + round * 500).await);
    }
    let mut resend = 0.0;
    let elsewhere = bystander_p99(&app, "PO-ELSEWHERE-2", async {
        let t = Instant::now();
        batch(&app, &crowded, 2, 501, "female").await;
        resend = t.elapsed().as_secs_f64() * 1000.0;
        for from in [1002, 1502, 2002] {
            batch(&app, &crowded, from, from + 499, "female").await;
        }
    })
    .await;
    println!(
        "batch of 500 at an office with {sources} sources: {at_crowd:.0} ms; alone: {at_alone:.0} ms (ratio {:.2}); identical resend {resend:.0} ms; a reporter elsewhere during more such batches: p99 {elsewhere:.1} ms",
        at_crowd / at_alone
    );
    // Scanning the crowd per item made it tens of times slower; now it is the same work.
    assert!(at_crowd < at_alone * 4.0 + 50.0, "crowded {at_crowd:.0} ms vs alone {at_alone:.0} ms");
    assert_eq!(app.stats("PO-CROWD").await["totals"]["sources"], sources as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_past_the_limit_is_refused_and_the_worst_reweigh_is_bounded() {
    let app = TestApp::spawn().await;
    let opp = app.reporter("E-OPP", "PO-STUFFED").await;
    let before = app.fingerprint();
    for path in ["/api/vote/", "/api/votingpaperresult/"] {
        let r = app
            .post(path, Some(&opp), json!({"index": 10_001, "gender": "male", "age": "less_30", "party_id": "ABC"}))
            .await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{}", r.body);
        assert_eq!(r.body["errors"]["index"], "must be an integer from 1 to 10000");
    }
    let r = app
        .post("/api/vote/batch/", Some(&opp), json!({"votes": [{"index": 10_001, "gender": "male", "age": "less_30"}]}))
        .await;
    assert_eq!(r.body["results"][0]["status"], 400);
    assert_eq!(app.fingerprint(), before, "nothing stored");
    // One opportunistic reporter fills the office to the limit...
    for from in (1..=10_000).step_by(500) {
        batch(&app, &opp, from, from + 499, "female").await;
    }
    assert_eq!(app.stats("PO-STUFFED").await["totals"]["votes"], 10_000);
    // ...then the official reporter's first vote re-weighs all of it, in one write.
    let official = app.official("E-OFF", "PO-STUFFED").await;
    let mut reweigh = 0.0;
    let p99 = bystander_p99(&app, "PO-ELSEWHERE", async {
        let t = Instant::now();
        assert_eq!(app.vote(&official, 1, "male", "less_30", false).await.status, 201);
        reweigh = t.elapsed().as_secs_f64() * 1000.0;
    })
    .await;
    println!("re-weigh of 10,000 votes by the official's first vote: {reweigh:.0} ms; a reporter elsewhere meanwhile: p99 {p99:.1} ms");
    let t = app.stats("PO-STUFFED").await["totals"].clone();
    assert_eq!((t["votes"].as_i64(), t["male"].as_i64(), t["sources"].as_i64()), (Some(1), Some(1), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncounted_votes_above_a_trusted_reporters_cost_nothing_per_write() {
    // Above the default index limit, so the uncounted votes are many enough that walking
    // them at every change (what the flags did) would show in a batch's time.
    let uncounted = size("ATTACK_UNCOUNTED", 30_000) as i64;
    let mut app = TestApp::spawn_with(|s| s.limits.max_index = uncounted as u32 + 10_000).await;
    let official = app.official("E-OFF", "PO-1").await;
    batch(&app, &official, 1, 10, "male").await;
    let opp = app.reporter("E-OPP", "PO-1").await;
    for from in (11..11 + uncounted).step_by(500) {
        batch(&app, &opp, from, from + 499, "female").await;
    }
    let plain = app.official("E-PLAIN", "PO-2").await;
    batch(&app, &plain, 1, 10, "male").await;
    // Batches of 500 the official posts above its own votes: every item changes the office.
    let time = |s: Session, from: i64| {
        let app = &app;
        async move {
            let t = Instant::now();
            batch(app, &s, from, from + 499, "male").await;
            t.elapsed().as_secs_f64() * 1000.0
        }
    };
    let (mut at_plain, mut at_crowded) = (f64::MAX, f64::MAX);
    for round in 0..2 {
        at_plain = at_plain.min(time(plain.clone(), 11 + round * 500).await);
        at_crowded = at_crowded.min(time(official.clone(), 11 + round * 500).await);
    }
    println!(
        "batch of 500 below {uncounted} uncounted votes: {at_crowded:.0} ms; at a plain office: {at_plain:.0} ms (ratio {:.2})",
        at_crowded / at_plain
    );
    assert!(at_crowded < at_plain * 3.0 + 50.0, "{at_crowded:.0} ms vs {at_plain:.0} ms");
    let elsewhere = bystander_p99(&app, "PO-ELSEWHERE", async {
        for from in [1011, 1511, 2011] {
            batch(&app, &official, from, from + 499, "male").await;
        }
    })
    .await;
    println!("a reporter elsewhere during more such batches: p99 {elsewhere:.1} ms");
    let stats = app.stats("PO-1").await;
    assert_eq!(stats["totals"]["votes"], 2510);
    assert_eq!(stats["last_vote"]["index"], 2510, "the highest counted vote, not the highest stored");
    let flags: Vec<&Value> = stats["flags"].as_array().unwrap().iter().map(|f| &f["code"]).collect();
    assert!(!flags.contains(&&json!("index_gaps")), "uncounted votes raise no index_gaps: {stats}");
    let t = Instant::now();
    app.restart().await;
    println!("restart with {uncounted} uncounted votes: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(app.stats("PO-1").await, stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_refused_by_a_bounded_queue_and_a_real_login_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::spawn_with(
        dir.path(),
        "error",
        std::process::Stdio::null(),
        &[("UFRECS_AUTH_NEW_SOURCES_PER_ADDRESS_PER_MIN", "1000000".into())],
    );
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let post = |body: Value| client.post(format!("{base}/api/authenticate/")).body(body.to_string()).send();
    let r = post(json!({"elector_id": "E-REAL", "poll_office_id": "PO-1", "password": "real-pass"})).await.unwrap();
    assert_eq!(r.status(), 201);
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()
            .unwrap()
    };
    let idle = rss();
    let flood_secs = size("ATTACK_FLOOD_SECS", 8);
    let deadline = Instant::now() + Duration::from_secs(flood_secs);
    let (mut refused, mut answered, mut peak) = (0u64, 0u64, idle);
    let flood = futures_util::future::join_all((0..100).map(|w| {
        let post = &post;
        async move {
            let (mut refused, mut answered) = (0, 0);
            let mut i = 0;
            while Instant::now() < deadline {
                let body = json!({"elector_id": format!("F-{w}-{i}"), "poll_office_id": "PO-1", "password": "x"});
                match post(body).await.map(|r| r.status().as_u16()) {
                    Ok(429) => refused += 1,
                    Ok(_) => answered += 1,
                    Err(_) => {}
                }
                i += 1;
            }
            (refused, answered)
        }
    }));
    let real = async {
        tokio::time::sleep(Duration::from_secs(flood_secs / 2)).await;
        let t = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let r =
                post(json!({"elector_id": "E-REAL", "poll_office_id": "PO-1", "password": "real-pass"})).await.unwrap();
            if r.status() == 200 {
                break;
            }
            assert_eq!(r.status(), 429, "only ever told to retry");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (t.elapsed().as_secs_f64() * 1000.0, tries)
    };
    let sample = async {
        while Instant::now() < deadline {
            peak = peak.max(rss());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    // A reporter elsewhere, logged in before the flood, votes all along.
    let remote = remote(&base);
    let bystander = remote.login("E-BY", "PO-2").await;
    let votes = async {
        let mut latencies = Vec::new();
        let mut i = 1;
        while Instant::now() < deadline {
            let t = Instant::now();
            let (status, _) = remote.vote(&bystander, i).await.unwrap();
            assert_eq!(status, 201);
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            i += 1;
        }
        p99(latencies)
    };
    let (results, (real_ms, tries), (), elsewhere) = tokio::join!(flood, real, sample, votes);
    for (r, a) in results {
        refused += r;
        answered += a;
    }
    let growth_mb = peak.saturating_sub(idle) as f64 / 1024.0;
    println!(
        "login flood, 100 connections for {flood_secs} s: {answered} answered, {refused} refused (429); RSS idle {:.0} MB, peak +{growth_mb:.0} MB; a real login took {real_ms:.0} ms ({tries} tries); a reporter's votes elsewhere: p99 {elsewhere:.1} ms",
        idle as f64 / 1024.0
    );
    assert!(refused > 0, "the hashing queue refused some");
    assert!(growth_mb < 300.0, "memory bounded: +{growth_mb:.0} MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_logins_of_one_source_keep_one_token_and_expired_ones_leave() {
    let app = TestApp::spawn().await;
    let mut first = Vec::new();
    let mut last = Vec::new();
    let elsewhere = bystander_p99(&app, "PO-ELSEWHERE", async {
        for i in 0..1000 {
            let t = Instant::now();
            app.login("E-1", "PO-1", None).await;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if i < 100 {
                first.push(ms);
            } else if i >= 900 {
                last.push(ms);
            }
        }
    })
    .await;
    let live: i64 = app
        .db()
        .query_row(
            "SELECT COUNT(*) FROM tokens t JOIN sources s ON s.n = t.source_n
              WHERE t.revoked_at IS NULL AND s.elector_id = 'E-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(live, 1);
    assert_eq!(app.metric("ufrecs_tokens").await, 2, "in memory, E-1's one token and the bystander's");
    let (a, b) = (p99(first), p99(last));
    println!("authentications 1-100: p99 {a:.1} ms; 901-1000: p99 {b:.1} ms; a reporter elsewhere meanwhile: p99 {elsewhere:.1} ms");
    // Just past its lifetime, a token is still told apart as expired (the app's signal to
    // log in again), even after the minute's prune ran.
    let old = app.login("E-1", "PO-1", None).await;
    app.advance(21_600 + 61);
    app.login("E-3", "PO-1", None).await;
    let r = app.vote(&old, 1, "male", "less_30", false).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "token_expired"));
    // A day later, the next commit deletes them and the memory forgets them.
    app.advance(24 * 3600);
    app.login("E-2", "PO-1", None).await;
    let rows: i64 = app
        .db()
        .query_row(
            "SELECT COUNT(*) FROM tokens t JOIN sources s ON s.n = t.source_n WHERE s.elector_id = 'E-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0, "E-1's 1,001 rows, expired for a day, are deleted");
    assert_eq!(app.metric("ufrecs_tokens").await, 2, "E-3's (expired for less than a day) and E-2's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_names_invisible_characters_and_reserved_folders_are_refused_or_suffixed() {
    let app = TestApp::spawn().await;
    for name in ["Accepted\u{200b}", "Obs\u{202e}ervatoire", "a\u{7}b"] {
        let r = app
            .admin_post("/api/reporters/", json!({"elector_id": "E-X", "type": "official", "full_name": name}))
            .await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{name:?}");
        assert!(r.body["errors"]["full_name"].is_string());
        let r = app.admin_patch("/api/sources/E-X/", json!({"official_org": name})).await;
        assert_eq!(r.status, 400, "{name:?}: checked before the source is looked up");
    }
    let s1 = app.official("E-1", "PO-1").await;
    let cyr = "\u{410}ccepted";
    let r = app.admin_patch("/api/sources/E-1/", json!({"full_name": cyr})).await;
    assert_eq!(r.status, 200);
    app.vote(&s1, 1, "male", "less_30", false).await;
    let s4 = app.official("E-4", "PO-1").await;
    app.admin_patch("/api/sources/E-4/", json!({"full_name": "source-1"})).await;
    app.vote(&s4, 2, "male", "less_30", false).await;
    let c = app.get("/api/pollofficesstats/?poll_office=PO-1").await.body;
    let keys: Vec<&String> = c["last_vote"].as_object().unwrap().keys().collect();
    assert!(keys.contains(&&format!("{cyr} (1)")), "{keys:?}");
    assert!(keys.contains(&&"source-1 (2)".to_owned()), "{keys:?}");
    let stored: String =
        app.db().query_row("SELECT full_name FROM sources WHERE elector_id = 'E-1'", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, cyr);
    // NFC: a decomposed é is stored composed.
    app.admin_patch("/api/sources/E-4/", json!({"full_name": "Yaounde\u{301}"})).await;
    let stored: String =
        app.db().query_row("SELECT full_name FROM sources WHERE elector_id = 'E-4'", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, "Yaound\u{e9}");
    // The operator's bucket folders are no office.
    for folder in ["backups", "log", "replica"] {
        let r = app.authenticate_with("E-9", folder, None).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"));
        assert!(r.body["errors"]["poll_office_id"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_stored_for_an_office_reserved_since_writes_nothing_and_loads() {
    let mut app = TestApp::spawn().await;
    let s = app.reporter("E-1", "PO-1").await;
    // A token from before `log` was reserved (as an older version stored it).
    let rw = rusqlite::Connection::open(app.db_path()).unwrap();
    rw.execute("UPDATE tokens SET poll_office_id = 'log'", []).unwrap();
    drop(rw);
    app.restart().await;
    assert_eq!(app.get("/healthz").await.status, 200, "the server starts with it");
    let before = app.fingerprint();
    let r = app.vote(&s, 1, "male", "less_30", false).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "auth_failed"));
    let r = app.send(app.client.post(app.url("/api/refresh-s3-credentials/")).basic_auth("E-1", Some(&s.token))).await;
    assert_eq!(r.status, 401, "no credentials for the operator's folder");
    assert_eq!(app.fingerprint(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_ipv6_64_are_counted_together() {
    let app = TestApp::spawn_with(|s| s.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    app.admin_post("/api/reporters/", json!({"elector_id": "E-1", "type": "official", "password": "right"})).await;
    let mut statuses = Vec::new();
    for i in 0..31 {
        // Each elector fails at most 5 times before its own lock-out: spread over many.
        let elector = format!("E-{}", 10 + i);
        app.admin_post("/api/reporters/", json!({"elector_id": elector, "type": "official", "password": "right"}))
            .await;
        let r = app
            .send(
                app.client
                    .post(app.url("/api/authenticate/"))
                    .header("x-forwarded-for", format!("2001:db8:1:2:{i:x}::1"))
                    .body(json!({"elector_id": elector, "poll_office_id": "PO-1", "password": "wrong"}).to_string()),
            )
            .await;
        statuses.push(r.status.as_u16());
    }
    println!("31 failures from 31 addresses of one /64: {:?}", &statuses[28..]);
    assert!(statuses[..30].iter().all(|s| *s == 401));
    assert_eq!(statuses[30], 429, "the /64 is one subscriber");
    let r = app
        .send(
            app.client
                .post(app.url("/api/authenticate/"))
                .header("x-forwarded-for", "2001:db8:1:3::1")
                .body(json!({"elector_id": "E-1", "poll_office_id": "PO-1", "password": "wrong"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 401, "another /64 is someone else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_on_the_logs_endpoints_stores_nothing_and_leaves_reporters_their_speed() {
    use ufrecs::domain::note;
    let (witness, _) = note::WitnessKey::generate("newsroom.example/w1").unwrap();
    let app = TestApp::spawn_with(|s| s.log.witnesses = vec![witness.vkey()]).await;
    let s = app.reporter("E-1", "PO-1").await;
    batch(&app, &s, 1, 500, "male").await;
    let served = crate::tlog::checkpoint_covering(&app, 502).await.1;
    let before = app.fingerprint();
    // Cosignatures the log must refuse, in a loop: garbage, the log's own note, another
    // witness's line, a forged line of the listed witness, a checkpoint it never signed.
    let body = note::note_body(&served).unwrap().to_owned();
    let (stranger, _) = note::WitnessKey::generate("stranger.example/w").unwrap();
    let forged = {
        let line = witness.cosign(&body.replace("\n502\n", "\n503\n"), 1);
        format!("{served}{line}")
    };
    let (other_log, _) = note::LogKey::generate("ufrecs.localhost/dev").unwrap();
    let never = other_log.sign(&note::Checkpoint::parse(&body).unwrap());
    let bad = [
        "x".repeat(16_000),
        served.clone(),
        format!("{served}{}", stranger.cosign(&body, 1)),
        forged,
        format!("{never}{}", witness.cosign(&body, 1)),
    ];
    let t = Instant::now();
    let n = 1000;
    let p99_posts = bystander_p99(&app, "PO-BYSTANDER", async {
        for i in 0..n {
            let r = app.post_raw("/log/cosignature", None, bad[i % bad.len()].clone()).await;
            assert_eq!(r.status, 400, "{}", r.body);
        }
    })
    .await;
    let per = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    // Proofs and tiles in a loop, every seq and both tile kinds.
    let t = Instant::now();
    let p99_reads = bystander_p99(&app, "PO-BYSTANDER-2", async {
        for i in 0..n {
            let seq = 1 + i % 500;
            let r = app.get(&format!("/api/log/inclusion/?seq={seq}")).await;
            assert_eq!(r.status, 200);
            let tile = if i % 2 == 0 { "/log/tile/0/000" } else { "/log/tile/entries/001.p/10" };
            assert_eq!(app.client.get(app.url(tile)).send().await.unwrap().status(), 200);
        }
    })
    .await;
    let reads = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    println!(
        "{n} refused cosignatures: {per:.2} ms each, a reporter meanwhile p99 {p99_posts:.1} ms; \
         {n} proofs + {n} tiles: {reads:.2} ms a pair, a reporter meanwhile p99 {p99_reads:.1} ms"
    );
    let cosignatures: i64 = app.db().query_row("SELECT COUNT(*) FROM log_cosignatures", [], |r| r.get(0)).unwrap();
    assert_eq!(cosignatures, 0, "nothing stored");
    let kinds: Vec<String> = app
        .db()
        .prepare("SELECT DISTINCT kind FROM audit_log WHERE seq > 502")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(kinds.iter().all(|k| k == "source_created" || k == "auth_succeeded" || k == "vote_proposed"), "{kinds:?}");
    assert_ne!(app.fingerprint(), before, "the bystanders' votes are stored");
    // A valid cosignature, replayed in a loop: accepted once, written once.
    let served = app.client.get(app.url("/log/checkpoint")).send().await.unwrap().text().await.unwrap();
    let cosigned = format!("{served}{}", witness.cosign(note::note_body(&served).unwrap(), 1_700_000_000));
    assert_eq!(app.post_raw("/log/cosignature", None, cosigned.clone()).await.status, 204);
    let commits = app.metric("ufrecs_commits_total").await;
    for _ in 0..300 {
        assert_eq!(app.post_raw("/log/cosignature", None, cosigned.clone()).await.status, 204);
    }
    let more = app.metric("ufrecs_commits_total").await - commits;
    println!("300 replays of an accepted cosignature: {more} commits");
    assert!(more < 30, "{more} commits for replays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversed_and_scattered_indexes_and_the_national_view_under_writes_stay_bounded() {
    // The same votes at three offices in three orders, in batches of 500: trees cost a
    // logarithmic insertion in any order (a sorted vector made the reversed order
    // quadratic under the aggregates' lock).
    let n = size("ATTACK_ORDER_VOTES", 2_000) as i64;
    let app = TestApp::spawn().await;
    let ascending: Vec<i64> = (1..=n).collect();
    let reversed: Vec<i64> = (1..=n).rev().collect();
    // 7919 is prime, so k -> k * 7919 mod n visits every index once.
    let scattered: Vec<i64> = (0..n).map(|k| k * 7919 % n + 1).collect();
    let mut took = Vec::new();
    for (name, order) in [("ascending", &ascending), ("reversed", &reversed), ("scattered", &scattered)] {
        let office = format!("PO-{name}");
        let s = app.reporter(&format!("E-{name}"), &office).await;
        let t = Instant::now();
        for chunk in order.chunks(500) {
            let votes: Vec<Value> =
                chunk.iter().map(|i| json!({"index": i, "gender": "male", "age": "less_30"})).collect();
            let r = app.post("/api/vote/batch/", Some(&s), json!({ "votes": votes })).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        took.push(t.elapsed().as_secs_f64() * 1000.0);
        let stats = app.stats(&office).await;
        assert_eq!((stats["totals"]["votes"].as_i64(), stats["last_vote"]["index"].as_i64()), (Some(n), Some(n)));
    }
    println!(
        "{n} votes at one office in batches of 500: ascending {:.0} ms, reversed {:.0} ms ({:.2} x), scattered {:.0} ms ({:.2} x)",
        took[0],
        took[1],
        took[1] / took[0],
        took[2],
        took[2] / took[0]
    );
    // The national view, summed over every office at most once a second, idle and while
    // a reporter floods another office with batches.
    let national = |rounds: usize| {
        let app = &app;
        async move {
            let mut ms = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                let r = app.get("/api/pollofficesstats/").await;
                assert_eq!(r.status, 200, "{}", r.body);
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            ms
        }
    };
    let idle = p99(national(200).await);
    let flooder = app.reporter("E-FLOOD", "PO-FLOOD").await;
    let flood = async {
        for from in (1..=n).step_by(500) {
            batch(&app, &flooder, from, (from + 499).min(n), "female").await;
        }
    };
    let (busy, ()) = tokio::join!(national(200), flood);
    let busy = p99(busy);
    // Summed again within a second of the last write: every office's votes.
    eventually("the national view counting every office", || async {
        (app.get("/api/pollofficesstats/").await.body["totals"]["votes"].as_i64() == Some(4 * n)).then_some(())
    })
    .await;
    println!("national view: p99 {idle:.1} ms idle, {busy:.1} ms during a flood of batches of 500");
}
