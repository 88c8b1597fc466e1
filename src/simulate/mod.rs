//! `ufrecs simulate`: an election day against a running server, over HTTP and the
//! verification WebSocket, for organisers to rehearse on their own box.
//!
//! It takes offices with no data yet from the imported directory, draws a day from a seed
//! (`plan`), and plays it in real time: per office, one to three reporters post every
//! voter's passage (some resend, some correct a mistake, some go offline and flush a batch
//! later), some voters verify their vote over the WebSocket, then the reporters post the
//! count; meanwhile public readers poll stats and results with `If-None-Match`. At the end
//! every office's totals and results are checked against what was sent. Loopback only, and
//! bounded: each office's requests are fixed by the plan, and the run by `--seconds`.

pub mod plan;
pub mod report;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use plan::{Office, Send};
use report::Recorder;

pub struct Options {
    pub url: String,
    pub offices: usize,
    pub voters: usize,
    pub seconds: u64,
    pub readers: usize,
    pub verify_share: f64,
    pub seed: u64,
    pub admin_token: Option<String>,
}

/// Runs the day; `Ok` with the report when every total matched, `Err` otherwise (the
/// report is printed either way).
pub fn run(opts: Options) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(simulate(opts))
}

/// Only loopback targets: the simulator is a load generator.
fn loopback_base(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("--url {url}: {e}"))?;
    let loopback = parsed.host_str().is_some_and(|h| {
        h == "localhost" || h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    });
    if !loopback || parsed.scheme() != "http" {
        return Err(format!("--url {url}: only http:// on a loopback address (127.0.0.1, ::1, localhost)"));
    }
    Ok(parsed)
}

struct Sim {
    base: String,
    ws_base: String,
    http: reqwest::Client,
    rec: Recorder,
    /// The WebSocket caps connections per client address; stay well under it.
    sockets: Arc<Semaphore>,
    pace: Duration,
    parties: Vec<String>,
    /// When the simulated polls opened: `plan::DAY_SECS` before the run started.
    opened: chrono::DateTime<chrono::Utc>,
}

struct Outcome {
    verified: u64,
}

async fn simulate(opts: Options) -> Result<String, String> {
    let base = loopback_base(&opts.url)?;
    let base = base.as_str().trim_end_matches('/').to_owned();
    if !(1..=5000).contains(&opts.offices) || !(1..=2000).contains(&opts.voters) || !(1..=3600).contains(&opts.seconds)
    {
        return Err("--offices 1..5000, --voters 1..2000, --seconds 1..3600".into());
    }
    let http =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| format!("http client: {e}"))?;
    let (offices, parties) = directory(&http, &base, opts.offices).await?;
    let run = format!("{:x}", chrono::Utc::now().timestamp_millis() % 0xfff_ffff);
    let day = plan::day(
        &offices,
        &plan::Params {
            seed: opts.seed,
            run: &run,
            voters: opts.voters,
            parties: &parties,
            verify_share: opts.verify_share,
            officials: opts.admin_token.is_some(),
        },
    );
    let sim = Arc::new(Sim {
        ws_base: base.replacen("http://", "ws://", 1),
        base,
        http,
        rec: Recorder::default(),
        sockets: Arc::new(Semaphore::new(150)),
        pace: Duration::from_secs(opts.seconds) / opts.voters as u32,
        parties,
        opened: chrono::Utc::now() - chrono::Duration::seconds(plan::DAY_SECS.into()),
    });

    // Enrolment first, a few offices at a time (passwords are hashed two at a time on the
    // server); the day's clock starts when every reporter holds a token.
    let enrolled: Vec<Result<Vec<String>, String>> = futures_util::stream::iter(&day)
        .map(|o| enrol(&sim, o, opts.admin_token.as_deref(), &run))
        .buffered(8)
        .collect()
        .await;
    let tokens = enrolled.into_iter().collect::<Result<Vec<_>, _>>()?;

    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let day = Arc::new(day);
    let readers: Vec<_> = (0..opts.readers)
        .map(|r| tokio::spawn(reader(sim.clone(), day.clone(), done.clone(), opts.seed ^ r as u64)))
        .collect();
    let mut offices = Vec::new();
    for (i, tokens) in tokens.into_iter().enumerate() {
        let (sim, day, run) = (sim.clone(), day.clone(), run.clone());
        offices.push(tokio::spawn(async move { office(&sim, &day[i], &tokens, start, &run).await }));
    }
    let mut outcomes = Vec::new();
    for task in offices {
        outcomes.push(task.await.map_err(|e| format!("an office's task failed: {e}"))?);
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
    let elapsed = start.elapsed();

    let mut faults = Vec::new();
    for (o, outcome) in day.iter().zip(&outcomes) {
        faults.extend(check(&sim, o, outcome).await);
    }
    let sent_verified: u64 = outcomes.iter().map(|o| o.verified).sum();
    let mut out = format!(
        "simulated {} offices, {} voters each ({} verified over the WebSocket), {} reporters, {} readers, in {:.1} s\n\n{}",
        day.len(),
        opts.voters,
        sent_verified,
        day.iter().map(|o| o.reporters.len()).sum::<usize>(),
        opts.readers,
        elapsed.as_secs_f64(),
        sim.rec.table(elapsed)
    );
    let failures = sim.rec.failures();
    out.push_str(&format!(
        "\nrequests that failed: {failures}\ntotals checked: {} offices, {} wrong\n",
        day.len(),
        faults.len()
    ));
    for f in faults.iter().take(20) {
        out.push_str(&format!("  {f}\n"));
    }
    if faults.is_empty() && failures == 0 {
        Ok(out)
    } else {
        println!("{out}");
        Err(format!("{} offices with wrong totals, {failures} failed requests", faults.len()))
    }
}

/// The first `n` offices of the directory with no data yet, and the parties.
async fn directory(http: &reqwest::Client, base: &str, n: usize) -> Result<(Vec<String>, Vec<String>), String> {
    let get = |url: String| async move {
        let res = http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
        let body = res.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        serde_json::from_slice::<Value>(&body).map_err(|e| format!("{url}: {e}"))
    };
    let mut offices = Vec::new();
    let mut offset = 0;
    while offices.len() < n {
        let page = get(format!("{base}/api/polloffices/?limit=500&offset={offset}")).await?;
        let ids: Vec<String> = page["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["identifier"].as_str().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            break;
        }
        offset += ids.len();
        for id in ids {
            let stats = get(format!("{base}/api/pollofficesstats/{id}/")).await?;
            let results = get(format!("{base}/api/pollofficeresults/{id}/")).await?;
            if stats["totals"]["votes"] == 0 && results["total_ballots"] == 0 && offices.len() < n {
                offices.push(id);
            }
        }
    }
    if offices.len() < n {
        return Err(format!(
            "the directory has {} offices without data, {n} wanted: import more (ufrecs import poll-offices FILE)",
            offices.len()
        ));
    }
    let page = get(format!("{base}/api/candidateparties/?limit=500")).await?;
    let mut parties: Vec<String> = page["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["identifier"].as_str().map(str::to_owned))
        .collect();
    if parties.is_empty() {
        parties = vec!["PA".into(), "PB".into(), "PC".into()];
    }
    parties.truncate(8);
    Ok((offices, parties))
}

impl Sim {
    /// A request, recorded under `endpoint`; the answer's status and JSON body.
    async fn send(&self, endpoint: &'static str, req: reqwest::RequestBuilder) -> Option<(u16, Value)> {
        let t = Instant::now();
        match req.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res.bytes().await.ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
                self.rec.record(endpoint, Some(status), t.elapsed());
                Some((status, body))
            }
            Err(_) => {
                self.rec.record(endpoint, None, t.elapsed());
                None
            }
        }
    }

    async fn post(
        &self,
        endpoint: &'static str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: &Value,
    ) -> Option<(u16, Value)> {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body.to_string());
        if let Some((user, token)) = auth {
            req = req.basic_auth(user, Some(token));
        }
        self.send(endpoint, req).await
    }

    /// Posts until the server answers (a reporter's app retries a lost answer), at most 5 times.
    async fn post_retrying(&self, endpoint: &'static str, path: &str, auth: (&str, &str), body: &Value) {
        for attempt in 0..5u32 {
            match self.post(endpoint, path, Some(auth), body).await {
                Some((s, _)) if s != 503 && s != 429 => return,
                _ => tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await,
            }
        }
    }
}

/// A vote as a reporter sends it, with the voter's passage time when the day gives one.
fn vote_body(sim: &Sim, index: usize, voter: &plan::Voter, gender: &str, age: &str) -> Value {
    let mut body = json!({"index": index, "gender": gender, "age": age, "has_torn": voter.has_torn});
    if let Some(secs) = voter.passed_at {
        let at = sim.opened + chrono::Duration::seconds(secs.into());
        body["observed_at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    body
}

/// Enrols an office's reporters (official ones through the admin API) and signs them in.
async fn enrol(sim: &Sim, o: &Office, admin: Option<&str>, run: &str) -> Result<Vec<String>, String> {
    let password = format!("sim-{run}");
    let mut tokens = Vec::new();
    for r in &o.reporters {
        if r.official {
            let body = json!({"elector_id": r.elector_id, "type": "official", "password": password});
            let req = sim
                .http
                .post(format!("{}/api/reporters/", sim.base))
                .bearer_auth(admin.unwrap_or(""))
                .body(body.to_string());
            match sim.send("reporters (admin)", req).await {
                Some((201, _)) => {}
                other => return Err(format!("enrolling an official reporter at {}: {other:?}", o.id)),
            }
        }
        let body = json!({"elector_id": r.elector_id, "poll_office_id": o.id, "password": if r.official { password.as_str() } else { "" }});
        // Passwords are hashed two at a time, and nginx limits authentications: retry.
        let mut answer = None;
        for attempt in 0..6u32 {
            answer = sim.post("authenticate", "/api/authenticate/", None, &body).await;
            if !matches!(answer, None | Some((429 | 503, _))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt))).await;
        }
        match answer {
            Some((200 | 201, b)) => tokens.push(b["token"].as_str().unwrap_or_default().to_owned()),
            other => return Err(format!("authenticating at {}: {other:?}", o.id)),
        }
    }
    Ok(tokens)
}

/// One office's day, from `start`: the voters, then the count.
async fn office(sim: &Sim, o: &Office, tokens: &[String], start: Instant, run: &str) -> Outcome {
    let voters = Arc::new(o.voters.clone());
    let mut queued: Vec<Vec<Value>> = vec![Vec::new(); o.reporters.len()];
    let mut verifiers = Vec::new();
    for (j, voter) in o.voters.iter().enumerate() {
        tokio::time::sleep_until((start + sim.pace * j as u32).into()).await;
        if voter.verifies {
            if let Some(v) =
                verifier(sim, &o.id, &format!("VOTER-{run}-{}-{j}", o.reporters[0].elector_id), voters.clone()).await
            {
                verifiers.push(tokio::spawn(v));
            }
        }
        let index = j + 1;
        for (k, r) in o.reporters.iter().enumerate() {
            let auth = (r.elector_id.as_str(), tokens[k].as_str());
            let right = vote_body(sim, index, voter, voter.gender, voter.age);
            match r.votes[j] {
                Send::Queued => {
                    queued[k].push(right);
                    continue;
                }
                Send::Once => sim.post_retrying("vote", "/api/vote/", auth, &right).await,
                Send::Twice => {
                    sim.post_retrying("vote", "/api/vote/", auth, &right).await;
                    sim.post_retrying("vote (resent)", "/api/vote/", auth, &right).await;
                }
                Send::Corrected => {
                    let (g, a) = plan::wrong(voter);
                    sim.post_retrying("vote", "/api/vote/", auth, &vote_body(sim, index, voter, g, a)).await;
                    sim.post_retrying("vote (corrected)", "/api/vote/", auth, &right).await;
                }
            }
            flush(sim, auth, "/api/vote/batch/", "votes", &mut queued[k]).await;
        }
    }
    for (k, r) in o.reporters.iter().enumerate() {
        flush(sim, (r.elector_id.as_str(), tokens[k].as_str()), "/api/vote/batch/", "votes", &mut queued[k]).await;
    }

    for (b, party) in o.ballots.iter().enumerate() {
        let index = b + 1;
        for (k, r) in o.reporters.iter().enumerate() {
            let auth = (r.elector_id.as_str(), tokens[k].as_str());
            let right = json!({"index": index, "party_id": party});
            match r.ballots[b] {
                Send::Queued => {
                    queued[k].push(right);
                    continue;
                }
                Send::Once => sim.post_retrying("votingpaperresult", "/api/votingpaperresult/", auth, &right).await,
                Send::Twice => {
                    sim.post_retrying("votingpaperresult", "/api/votingpaperresult/", auth, &right).await;
                    sim.post_retrying("votingpaperresult (resent)", "/api/votingpaperresult/", auth, &right).await;
                }
                Send::Corrected => {
                    let other = sim.parties.iter().find(|p| *p != party).unwrap_or(party);
                    let wrong = json!({"index": index, "party_id": other});
                    sim.post_retrying("votingpaperresult", "/api/votingpaperresult/", auth, &wrong).await;
                    sim.post_retrying("votingpaperresult (corrected)", "/api/votingpaperresult/", auth, &right).await;
                }
            }
            flush(sim, auth, "/api/votingpaperresult/batch/", "papers", &mut queued[k]).await;
        }
    }
    for (k, r) in o.reporters.iter().enumerate() {
        let auth = (r.elector_id.as_str(), tokens[k].as_str());
        flush(sim, auth, "/api/votingpaperresult/batch/", "papers", &mut queued[k]).await;
    }

    let mut verified = 0;
    for v in verifiers {
        verified += u64::from(v.await.unwrap_or(false));
    }
    Outcome { verified }
}

/// A reporter back online sends what it queued, in batches of at most 500.
async fn flush(sim: &Sim, auth: (&str, &str), path: &str, key: &str, queue: &mut Vec<Value>) {
    let endpoint = if key == "votes" { "vote/batch" } else { "votingpaperresult/batch" };
    for chunk in queue.chunks(500) {
        sim.post_retrying(endpoint, path, auth, &json!({ key: chunk })).await;
    }
    queue.clear();
}

/// A voter entering the booth: connected and waiting before the vote is reported. The
/// returned task answers the vote it is shown with the truth about that index, and tells
/// whether the server recorded it.
async fn verifier(
    sim: &Sim,
    office: &str,
    voter: &str,
    voters: Arc<Vec<plan::Voter>>,
) -> Option<impl std::future::Future<Output = bool> + std::marker::Send + 'static> {
    let permit = sim.sockets.clone().try_acquire_owned().ok()?;
    let url = format!("{}/ws/vote-verification?poll_office_id={office}&elector_id={voter}", sim.ws_base);
    let t = Instant::now();
    let connected = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url)).await;
    let Ok(Ok((mut ws, _))) = connected else {
        sim.rec.record("ws connect", None, t.elapsed());
        return None;
    };
    let first = next_json(&mut ws, Duration::from_secs(10)).await;
    let waiting = first.as_ref().is_some_and(|m| m["type"] == "waiting");
    sim.rec.record("ws connect", waiting.then_some(101), t.elapsed());
    if !waiting {
        return None;
    }
    let wait_for = sim.pace * 4 + Duration::from_secs(30);
    Some(async move {
        let _permit = permit;
        let Some(shown) = next_json(&mut ws, wait_for).await.filter(|m| m["type"] == "vote") else {
            return false;
        };
        let index = shown["index"].as_u64().unwrap_or(0) as usize;
        let Some(truth) = index.checked_sub(1).and_then(|i| voters.get(i)) else {
            return false;
        };
        let confirm = json!({"type": "confirm", "gender": truth.gender, "age": truth.age, "has_torn": truth.has_torn});
        if ws.send(Message::text(confirm.to_string())).await.is_err() {
            return false;
        }
        let recorded = next_json(&mut ws, Duration::from_secs(10)).await.is_some_and(|m| m["type"] == "recorded");
        let _ = ws.close(None).await;
        recorded
    })
}

async fn next_json<S>(ws: &mut S, within: Duration) -> Option<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??.ok()?;
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// A journalist's browser: polls an office's stats and results with the ETags it holds.
async fn reader(sim: Arc<Sim>, day: Arc<Vec<Office>>, done: Arc<AtomicBool>, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut etags: HashMap<String, String> = HashMap::new();
    while !done.load(Ordering::Relaxed) {
        let o = &day[rng.gen_range(0..day.len())];
        for (endpoint, path) in [("stats", "pollofficesstats"), ("results", "pollofficeresults")] {
            let url = format!("{}/api/{path}/{}/", sim.base, o.id);
            let mut req = sim.http.get(&url);
            if let Some(etag) = etags.get(&url) {
                req = req.header("if-none-match", etag);
            }
            let t = Instant::now();
            match req.send().await {
                Ok(res) => {
                    sim.rec.record(endpoint, Some(res.status().as_u16()), t.elapsed());
                    if let Some(e) = res.headers().get("etag").and_then(|e| e.to_str().ok()) {
                        etags.insert(url, e.to_owned());
                    }
                    let _ = res.bytes().await;
                }
                Err(_) => sim.rec.record(endpoint, None, t.elapsed()),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the server publishes for an office against what was sent: every reporter ends up
/// truthful, so the accepted values are the plan's, with no dispute.
async fn check(sim: &Sim, o: &Office, outcome: &Outcome) -> Vec<String> {
    let mut faults = Vec::new();
    let get = |path: String| async move {
        let res = sim.http.get(format!("{}{path}", sim.base)).send().await.ok()?;
        serde_json::from_slice::<Value>(&res.bytes().await.ok()?).ok()
    };
    let (Some(stats), Some(results)) =
        (get(format!("/api/pollofficesstats/{}/", o.id)).await, get(format!("/api/pollofficeresults/{}/", o.id)).await)
    else {
        return vec![format!("{}: stats or results could not be read", o.id)];
    };
    let count = |f: &dyn Fn(&plan::Voter) -> bool| o.voters.iter().filter(|v| f(v)).count() as u64;
    let counting = if o.reporters[0].official { 1 } else { o.reporters.len() as u64 };
    let expected = [
        ("votes", o.voters.len() as u64),
        ("male", count(&|v| v.gender == "male")),
        ("female", count(&|v| v.gender == "female")),
        ("less_30", count(&|v| v.age == "less_30")),
        ("less_60", count(&|v| v.age == "less_60")),
        ("more_60", count(&|v| v.age == "more_60")),
        ("has_torn", count(&|v| v.has_torn)),
        ("verified", outcome.verified),
        ("disputed", 0),
        ("sources", counting),
    ];
    for (key, want) in expected {
        let got = stats["totals"][key].as_u64();
        if got != Some(want) {
            faults.push(format!("{}: totals.{key} is {got:?}, {want} sent", o.id));
        }
    }
    let mut by_party: HashMap<&str, u64> = HashMap::new();
    for p in &o.ballots {
        *by_party.entry(p.as_str()).or_default() += 1;
    }
    if results["total_ballots"].as_u64() != Some(o.ballots.len() as u64) {
        faults.push(format!("{}: total_ballots is {}, {} sent", o.id, results["total_ballots"], o.ballots.len()));
    }
    let got: HashMap<&str, u64> = results["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["party_id"].as_str()?, r["ballots"].as_u64()?)))
        .collect();
    if got != by_party {
        faults.push(format!("{}: results {got:?}, {by_party:?} sent", o.id));
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_targets() {
        for ok in ["http://127.0.0.1:8000", "http://localhost:8000/", "http://[::1]:8000", "http://127.9.9.9"] {
            assert!(loopback_base(ok).is_ok(), "{ok}");
        }
        for bad in
            ["http://10.0.0.1:8000", "http://example.org", "https://127.0.0.1", "127.0.0.1:8000", "http://192.168.1.2"]
        {
            assert!(loopback_base(bad).is_err(), "{bad}");
        }
    }
}
