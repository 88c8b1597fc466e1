//! Continuous replication (section 10 of the contract) with the real things: the server
//! binary, real Litestream (`ufrecs replication run`), real moto (its IAM on, its request
//! recorder on), `kill -9`, and a real restore into a fresh folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::helpers::*;

/// One replicated box: its folder, moto (recording every request), and the settings the
/// server, Litestream and the CLI share.
struct Boxed {
    dir: PathBuf,
    moto: Moto,
    recording: PathBuf,
    op: Operator,
    box_id: String,
    env: Vec<(&'static str, String)>,
}

impl Boxed {
    async fn new(dir: &Path) -> Boxed {
        let recording = dir.join("moto-recording.jsonl");
        let moto = Moto::start_with(&[
            ("MOTO_ENABLE_RECORDING", "True".into()),
            ("MOTO_RECORDER_FILEPATH", recording.display().to_string()),
        ])
        .await;
        let op = moto.setup(&[]).await;
        let endpoint = moto.endpoint.clone();
        let box_id = format!("box-{}", std::process::id());
        let env = vec![
            ("UFRECS_S3_ENDPOINT", endpoint),
            ("UFRECS_S3_ACCESS_KEY", op.access_key.clone()),
            ("UFRECS_S3_SECRET_KEY", op.secret_key.clone()),
            ("UFRECS_S3_PREFIX", "region-1".into()),
            ("UFRECS_REPLICATION_ENABLED", "true".into()),
            ("UFRECS_REPLICATION_BOX_ID", box_id.clone()),
            ("UFRECS_REPLICATION_ACCESS_KEY", op.replica_access_key.clone()),
            ("UFRECS_REPLICATION_SECRET_KEY", op.replica_secret_key.clone()),
            ("UFRECS_REPLICATION_LITESTREAM", venv_bin("litestream").display().to_string()),
            ("UFRECS_REPLICATION_METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
            ("UFRECS_LOG_CHECKPOINT_INTERVAL_MS", "200".into()),
        ];
        Boxed { dir: dir.to_owned(), moto, recording, op, box_id, env }
    }

    /// Where the box reaches S3 (a proxy in front of moto, say).
    fn reach_s3_at(&mut self, endpoint: &str) {
        self.env[0].1 = endpoint.to_owned();
    }

    fn server(&self) -> Process {
        Process::spawn_with(&self.dir, "warn", Stdio::inherit(), &self.env)
    }

    /// `ufrecs` with this box's settings and `db` as its database.
    fn ufrecs(&self, db_dir: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ufrecs"));
        cmd.current_dir(db_dir)
            .env("UFRECS_CONFIG", Path::new(env!("CARGO_MANIFEST_DIR")).join("ufrecs.toml"))
            .env("UFRECS_DATABASE_PATH", db_dir.join("ufrecs.sqlite3"))
            .env("UFRECS_AUTH_SECRET_FILE", db_dir.join("secret"))
            .env("UFRECS_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    }

    /// `ufrecs replication run`: it becomes Litestream (killed with the test should it fail).
    fn litestream(&self) -> Child {
        let mut cmd = self.ufrecs(&self.dir);
        cmd.args(["replication", "run"]).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: prctl in the child between fork and exec only sets its own death signal.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        cmd.spawn().unwrap()
    }

    /// `ufrecs restore --from-replica` into `into` (a fresh folder).
    fn restore(&self, into: &Path, box_id: &str) -> std::process::Output {
        std::fs::create_dir_all(into).unwrap();
        self.ufrecs(into).args(["restore", "--from-replica", "--box-id", box_id]).output().unwrap()
    }

    /// The requests moto received that delete something.
    fn deletes(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| {
                r["method"] == "DELETE"
                    || (r["method"] == "POST" && r["url"].as_str().unwrap_or("").contains("?delete"))
            })
            .map(|r| format!("{} {}", r["method"], r["url"]))
            .collect()
    }

    /// How many requests moto received whose URL names the replica folder.
    fn replica_requests(&self, method: &str) -> usize {
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["method"] == method && r["url"].as_str().unwrap_or("").contains("replica"))
            .count()
    }
}

async fn health(base: &str) -> (u16, Value) {
    let res = reqwest::get(format!("{base}/healthz")).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn replication(base: &str) -> (String, f64) {
    let (_, h) = health(base).await;
    (h["replication"]["state"].as_str().unwrap().to_owned(), h["replication"]["lag_secs"].as_f64().unwrap())
}

/// Waits until the replica holds every commit (state ok, lag 0).
async fn caught_up(base: &str, secs: u64) {
    eventually_within(secs, "the replica to hold every commit", || async {
        (replication(base).await == ("ok".into(), 0.0)).then_some(())
    })
    .await;
}

/// An acknowledged vote: who, where, what, and when its answer came.
#[derive(Clone)]
struct Acked {
    elector: String,
    office: String,
    index: i64,
    gender: &'static str,
    at: Instant,
}

const GENDERS: [&str; 2] = ["male", "female"];

/// Reporters voting in a loop until `stop`, each at its own office; returns what was acked.
fn load(base: &str, reporters: usize, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Acked>> {
    let base = base.to_owned();
    tokio::spawn(async move {
        let app = remote(&base);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for r in 0..reporters {
            let (app, acked, stop) = (remote(&app.base), acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (elector, office) = (format!("LOAD-{r}"), format!("PO-LOAD-{}", r % 4));
                let s = app.login(&elector, &office).await;
                let mut index = 1 + (r / 4) as i64 * 5000;
                while !stop.load(Ordering::Relaxed) {
                    let gender = GENDERS[(index % 2) as usize];
                    let sent = app
                        .client
                        .post(format!("{}/api/vote/", app.base))
                        .basic_auth(&s.elector_id, Some(&s.token))
                        .body(json!({"index": index, "gender": gender, "age": "less_60"}).to_string())
                        .send()
                        .await;
                    match sent {
                        Ok(res) if res.status() == 201 => acked.lock().push(Acked {
                            elector: elector.clone(),
                            office: office.clone(),
                            index,
                            gender,
                            at: Instant::now(),
                        }),
                        Ok(res) => panic!("vote {index}: {}", res.status()),
                        Err(_) => return, // the server was killed
                    }
                    index += 1;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let out = acked.lock().clone();
        out
    })
}

/// The votes (elector, office, index) -> gender a database holds.
fn votes_in(db: &Path) -> std::collections::HashMap<(String, String, i64), String> {
    let conn = open_read_only(db);
    let mut stmt = conn
        .prepare(
            "SELECT s.elector_id, p.poll_office_id, p.idx, p.gender FROM vote_proposals p JOIN sources s ON s.n = p.source_n",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_box_killed_under_load_is_restored_from_its_replica_with_every_write_but_the_last_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let b = Boxed::new(dir.path()).await;
    let server = b.server();
    let base = server.base.clone();
    let (status, h) = health(&base).await;
    assert_eq!((status, h["replication"]["state"].as_str()), (503, Some("stopped")), "no Litestream yet: {h}");
    let mut litestream = b.litestream();
    eventually_within(60, "Litestream to replicate", || async { (replication(&base).await.0 == "ok").then_some(()) })
        .await;

    // Offices written first, then left alone: their bodies must come back byte for byte.
    let app = remote(&base);
    let mut early = Vec::new();
    for o in 0..3 {
        let office = format!("PO-EARLY-{o}");
        let s = app.login(&format!("EARLY-{o}"), &office).await;
        for i in 1..=5 {
            assert_eq!(app.vote(&s, i).await.unwrap().0, 201);
        }
        early.push(office);
    }
    let mut bodies = Vec::new();
    for office in &early {
        bodies.push(app.get(&format!("/api/pollofficesstats/{office}/")).await.1);
        bodies.push(app.get(&format!("/api/pollofficeresults/{office}/")).await.1);
    }

    // Several reporters under load; the lag watched meanwhile; kill -9 at a random moment.
    let stop = Arc::new(AtomicBool::new(false));
    let loaded = load(&base, 8, stop.clone());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let run_for = Duration::from_millis(4000 + u64::from(nanos % 2000));
    let started = Instant::now();
    let mut lags = Vec::new();
    while started.elapsed() < run_for {
        let (state, lag) = replication(&base).await;
        assert_ne!(state, "stopped");
        lags.push(lag);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed_at = Instant::now();
    // SAFETY: signalling children of ours that have not been reaped.
    unsafe {
        libc::kill(server.pid(), libc::SIGKILL);
        libc::kill(litestream.id() as i32, libc::SIGKILL);
    }
    let _ = litestream.wait();
    stop.store(true, Ordering::Relaxed);
    let acked = loaded.await.unwrap();
    drop(server);
    lags.sort_by(f64::total_cmp);
    let max_lag = lags.last().copied().unwrap_or(0.0);
    println!(
        "replication under load: {} writes acked in {run_for:?}; lag while replicating p50 {:.3} s, max {max_lag:.3} s",
        acked.len(),
        lags[lags.len() / 2]
    );
    assert!(acked.len() > 50, "the load wrote: {}", acked.len());
    assert!(max_lag < 5.0, "the lag stays small while replicating: {max_lag}");

    // A fresh box: refused over an existing file, then restored, then checked.
    let fresh = dir.path().join("fresh");
    let out = b.restore(&fresh, "no-such-box");
    assert!(!out.status.success(), "no replica for that id");
    for bad in ["", "../box", "a/b"] {
        let out = b.restore(&fresh, bad);
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--box-id"), "{bad:?}");
    }
    assert!(!fresh.join("ufrecs.sqlite3").exists() || votes_in(&fresh.join("ufrecs.sqlite3")).is_empty());
    std::fs::remove_dir_all(&fresh).unwrap();
    let out = b.restore(&fresh, &b.box_id);
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ok: integrity"), "the restore checks the copy: {said}");
    assert!(said.contains("copy the old box's hashing secret"), "and names what the backups folder must give: {said}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(fresh.join("ufrecs.sqlite3")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "private records: the server's account only");
    let restored_db = fresh.join("ufrecs.sqlite3");
    let before = std::fs::read(&restored_db).unwrap();
    let again = b.restore(&fresh, &b.box_id);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    assert_eq!(std::fs::read(&restored_db).unwrap(), before, "the existing file is left as it was");
    let check = b.ufrecs(&fresh).arg("check").output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // Every write acknowledged more than 2 s before the kill is there, with its attributes.
    let held = votes_in(&restored_db);
    let cutoff = killed_at - Duration::from_secs(2);
    let (old, recent): (Vec<_>, Vec<_>) = acked.iter().partition(|a| a.at < cutoff);
    for a in &old {
        let key = (a.elector.clone(), a.office.clone(), a.index);
        assert_eq!(held.get(&key).map(String::as_str), Some(a.gender), "vote {key:?} acked before the last 2 s");
    }
    let missing = recent.iter().filter(|a| !held.contains_key(&(a.elector.clone(), a.office.clone(), a.index))).count();
    println!(
        "restore after kill -9: {} writes older than 2 s all present; of the last 2 s's {}, {missing} missing",
        old.len(),
        recent.len()
    );

    // The restored box, with the secret and the log key from the backups, serves the same bodies.
    std::fs::copy(dir.path().join("secret"), fresh.join("secret")).unwrap();
    std::fs::create_dir_all(fresh.join("data")).unwrap();
    std::fs::copy(dir.path().join("data/log-key"), fresh.join("data/log-key")).unwrap();
    let restored = Process::spawn(&fresh);
    let again = remote(&restored.base);
    let mut served = Vec::new();
    for office in &early {
        served.push(again.get(&format!("/api/pollofficesstats/{office}/")).await.1);
        served.push(again.get(&format!("/api/pollofficeresults/{office}/")).await.1);
    }
    assert_eq!(served, bodies);
    assert_eq!(b.deletes(), Vec::<String>::new(), "nothing on S3 was ever deleted");
    assert!(b.replica_requests("PUT") > 3, "the recorder saw Litestream's uploads");
}

/// A TCP proxy in front of moto that can refuse service: S3 unreachable without losing
/// what moto holds.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, generation) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(0)));
        let (up2, gen2) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::Relaxed) {
                    continue; // dropped: connection reset
                }
                let (upstream, generation, born) = (upstream.clone(), gen2.clone(), gen2.load(Ordering::Relaxed));
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while generation.load(Ordering::Relaxed) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = cut => {} }
                });
            }
        });
        Proxy { port, up, generation }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        if !up {
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_s3_down_voting_goes_on_the_lag_grows_and_replication_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Boxed::new(dir.path()).await;
    b.env.push(("UFRECS_REPLICATION_CHECKPOINT_AFTER_STOPPED_SECS", "2".into()));
    let proxy = Proxy::start(&b.moto.endpoint).await;
    b.reach_s3_at(&format!("http://127.0.0.1:{}", proxy.port));
    let server = b.server();
    let base = server.base.clone();
    let mut litestream = b.litestream();
    let app = remote(&base);
    let s = app.login("R-1", "PO-1").await;
    for i in 1..=10 {
        assert_eq!(app.vote(&s, i).await.unwrap().0, 201);
    }
    caught_up(&base, 60).await;

    // S3 goes away: every vote is still answered at once; the lag grows until "behind".
    proxy.set_up(false);
    let mut index = 10;
    let mut slowest = Duration::ZERO;
    let mut lag_seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        index += 1;
        let t = Instant::now();
        assert_eq!(app.vote(&s, index).await.unwrap().0, 201, "voting goes on without S3");
        slowest = slowest.max(t.elapsed());
        let (state, lag) = replication(&base).await;
        assert_ne!(state, "stopped", "Litestream runs; S3 is what is down");
        lag_seen.push(lag);
        if state == "behind" {
            break;
        }
        assert!(Instant::now() < deadline, "the replica was never reported behind: {lag_seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last_lag = *lag_seen.last().unwrap();
    assert!(last_lag > 10.0 && lag_seen.iter().any(|l| *l < last_lag), "the lag grows: {lag_seen:?}");
    assert!(slowest < Duration::from_secs(5), "nothing blocks on S3: {slowest:?}");
    let (status, h) = health(&base).await;
    assert_eq!(status, 200, "S3 down is not a fault of the box: {h}");

    // S3 returns: the replica catches up, and holds every vote.
    proxy.set_up(true);
    caught_up(&base, 120).await;
    println!("replication with S3 down: {index} votes, the slowest answer {slowest:?}, the lag reached {last_lag} s");

    // Litestream dies: reported at once as stopped, /healthz degraded.
    // SAFETY: signalling a child of ours that has not been reaped.
    unsafe { libc::kill(litestream.id() as i32, libc::SIGKILL) };
    let _ = litestream.wait();
    eventually("the stop to be reported", || async {
        let (status, h) = health(&base).await;
        (status == 503 && h["status"] == "degraded" && h["replication"]["state"] == "stopped").then_some(())
    })
    .await;
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ufrecs_replication_up 0\n") && metrics.contains("ufrecs_replication_lag_seconds 0\n"));
    assert_eq!(app.vote(&s, index + 1).await.unwrap().0, 201, "votes still go in");
    // Nobody checkpoints for a dead Litestream: after a while the server does (in WAL mode
    // only a checkpoint writes the database file itself).
    let db = dir.path().join("ufrecs.sqlite3");
    let written = || std::fs::metadata(&db).unwrap().modified().unwrap();
    let before = written();
    eventually_within(30, "the server to checkpoint for the stopped Litestream", || async {
        (written() > before).then_some(())
    })
    .await;

    // An attacker hammering /healthz costs S3 nothing: the monitor's one task reads it at
    // most twice a second, whatever the requests.
    let requests_before = std::fs::read_to_string(&b.recording).unwrap().lines().count();
    let t = Instant::now();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url) = (client.clone(), format!("{base}/healthz"));
        tasks.push(tokio::spawn(async move {
            for _ in 0..250 {
                assert_eq!(client.get(&url).send().await.unwrap().status(), 503);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let took = t.elapsed();
    let s3_requests = std::fs::read_to_string(&b.recording).unwrap().lines().count() - requests_before;
    println!("2,000 /healthz requests in {took:?}: {s3_requests} S3 requests");
    // Two looks a second at most, each a LIST and at most one ranged GET.
    assert!(s3_requests as f64 <= took.as_secs_f64() * 4.0 + 4.0, "{s3_requests} S3 requests in {took:?}");

    let fresh = dir.path().join("fresh");
    let out = b.restore(&fresh, &b.box_id);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let held = votes_in(&fresh.join("ufrecs.sqlite3"));
    assert_eq!(held.len() as i64, index, "every vote made while S3 was down was replicated after");
    assert_eq!(b.deletes(), Vec::<String>::new(), "nothing on S3 was ever deleted");
    drop(server);
}

#[tokio::test]
async fn the_replication_key_cannot_delete_and_bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = Boxed::new(dir.path()).await;
    // The key the tests give Litestream may write and read the replica, never delete it.
    let region = s3::Region::Custom { region: "us-east-1".into(), endpoint: b.moto.endpoint.clone() };
    let creds =
        s3::creds::Credentials::new(Some(&b.op.replica_access_key), Some(&b.op.replica_secret_key), None, None, None)
            .unwrap();
    let bucket = s3::Bucket::new(BUCKET, region, creds).unwrap().with_path_style();
    let key = "region-1/replica/x/0000/0000000000000001-0000000000000001.ltx";
    assert_eq!(bucket.put_object(key, b"LTX1").await.unwrap().status_code(), 200);
    assert!(bucket.delete_object(key).await.is_err(), "the replication key cannot delete");
    assert_eq!(bucket.get_object(key).await.unwrap().as_slice(), b"LTX1", "still there");
    // It may put over a file, but with the bucket versioned the earlier content stays.
    assert_eq!(bucket.put_object(key, b"").await.unwrap().status_code(), 200);
    let versions = std::process::Command::new(venv_bin("python"))
        .args(["-c", "import boto3, sys; c = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3]); print(sorted(c.get_object(Bucket=sys.argv[4], Key=sys.argv[5], VersionId=v['VersionId'])['Body'].read().decode() for v in c.list_object_versions(Bucket=sys.argv[4], Prefix=sys.argv[5])['Versions']))"])
        .args([&b.moto.endpoint, &b.op.access_key, &b.op.secret_key, BUCKET, key])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&versions.stdout).trim(),
        "['', 'LTX1']",
        "{}",
        String::from_utf8_lossy(&versions.stderr)
    );

    // Replication on without a box id, or with a bad one: the server does not start.
    for (box_id, said) in [("", "box_id"), ("../up", "box_id")] {
        let out = b.ufrecs(dir.path()).env("UFRECS_REPLICATION_BOX_ID", box_id).arg("serve").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(said));
    }
    let out =
        b.ufrecs(dir.path()).env("UFRECS_REPLICATION_ENABLED", "false").args(["replication", "run"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("replication.enabled is false"));
    // `replication config` prints what Litestream runs with, without a key.
    let out = b.ufrecs(dir.path()).args(["replication", "config"]).output().unwrap();
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && yaml.contains(&format!("path: \"region-1/replica/{}\"", b.box_id)), "{yaml}");
    assert!(!yaml.contains(&b.op.replica_secret_key) && !yaml.contains(&b.op.secret_key));
}
