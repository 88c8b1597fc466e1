//! `TestApp`: the real server with a fresh database, a movable clock and typed helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use ufrecs::clock::ManualClock;
use ufrecs::config::Settings;
use ufrecs::http::server::Running;

pub const ADMIN: &str = "test-admin-token";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: TempDir,
    pub clock: Arc<ManualClock>,
    pub settings: Settings,
    running: Option<Running>,
}

/// A reporter's session: what authenticate answered.
#[derive(Clone, Debug)]
pub struct Session {
    pub elector_id: String,
    pub token: String,
    pub status: u16,
    pub body: Value,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

pub fn test_settings(dir: &Path) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".into();
    s.database.path = dir.join("ufrecs.sqlite3");
    s.auth.secret_file = dir.join("secret");
    s.auth.admin_token = ADMIN.into();
    s.log.key_file = dir.join("log-key");
    s.log.checkpoint_interval_ms = 50;
    s
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = test_settings(dir.path());
        configure(&mut settings);
        let clock = ManualClock::new(chrono::Utc::now());
        let mut app =
            TestApp { base: String::new(), client: reqwest::Client::new(), dir, clock, settings, running: None };
        app.start().await;
        app
    }

    async fn start(&mut self) {
        self.start_at("127.0.0.1:0").await;
    }

    async fn start_at(&mut self, addr: &str) {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let running = ufrecs::http::server::start(self.settings.clone(), self.clock.clone(), listener).await.unwrap();
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    /// Stops the server (the writer closes the database) and starts a new one on the same files.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Stops the server; `start_again` brings it back on the same address.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    pub async fn start_again(&mut self) {
        let addr = self.base.trim_start_matches("http://").to_owned();
        self.start_at(&addr).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    /// POSTs raw bytes (with curl's form content type, as the apps' tools do).
    pub async fn post_raw(&self, path: &str, auth: Option<&Session>, body: impl Into<reqwest::Body>) -> Reply {
        let mut req =
            self.client.post(self.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body);
        if let Some(s) = auth {
            req = req.basic_auth(&s.elector_id, Some(&s.token));
        }
        self.send(req).await
    }

    pub async fn post(&self, path: &str, auth: Option<&Session>, body: Value) -> Reply {
        self.post_raw(path, auth, body.to_string()).await
    }

    pub async fn authenticate_with(&self, elector_id: &str, office: &str, password: Option<&str>) -> Reply {
        let mut body = json!({"elector_id": elector_id, "poll_office_id": office});
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        self.post("/api/authenticate/", None, body).await
    }

    pub async fn login(&self, elector_id: &str, office: &str, password: Option<&str>) -> Session {
        let r = self.authenticate_with(elector_id, office, password).await;
        assert!(r.status.is_success(), "authenticate {elector_id}: {} {}", r.status, r.body);
        Session {
            elector_id: elector_id.into(),
            token: r.body["token"].as_str().unwrap().into(),
            status: r.status.as_u16(),
            body: r.body,
        }
    }

    /// A reporter of an office.
    pub async fn reporter(&self, elector_id: &str, office: &str) -> Session {
        self.login(elector_id, office, None).await
    }

    /// A trusted (official) reporter of an office, created through the admin API.
    pub async fn official(&self, elector_id: &str, office: &str) -> Session {
        let r = self
            .admin_post(
                "/api/reporters/",
                json!({"elector_id": elector_id, "type": "official", "password": "pw-official"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        self.login(elector_id, office, Some("pw-official")).await
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(self.url(path)).bearer_auth(ADMIN).body(body.to_string())).await
    }

    pub async fn admin_patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.patch(self.url(path)).bearer_auth(ADMIN).body(body.to_string())).await
    }

    pub async fn vote(&self, s: &Session, index: i64, gender: &str, age: &str, has_torn: bool) -> Reply {
        self.post("/api/vote/", Some(s), json!({"index": index, "gender": gender, "age": age, "has_torn": has_torn}))
            .await
    }

    pub async fn ballot(&self, s: &Session, index: i64, party: &str) -> Reply {
        self.post("/api/votingpaperresult/", Some(s), json!({"index": index, "party_id": party})).await
    }

    pub async fn stats(&self, office: &str) -> Value {
        let r = self.get(&format!("/api/pollofficesstats/{office}/")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    pub async fn results(&self, office: &str) -> Value {
        let r = self.get(&format!("/api/pollofficeresults/{office}/")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.client.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
        metric_value(&text, name)
    }

    pub fn db_path(&self) -> PathBuf {
        self.settings.database.path.clone()
    }

    pub fn db(&self) -> rusqlite::Connection {
        open_read_only(&self.db_path())
    }

    /// Runs `ufrecs ARGS` on this server's database, as an operator on the box would, and
    /// asserts it succeeded.
    pub fn cli_ok(&self, args: &[&str]) {
        let out = Command::new(env!("CARGO_BIN_EXE_ufrecs"))
            .args(args)
            .env("UFRECS_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/ufrecs.toml"))
            .env("UFRECS_DATABASE_PATH", self.db_path())
            .output()
            .unwrap();
        assert!(out.status.success(), "ufrecs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Every row of every table, for "nothing stored changed" checks.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.db_path())
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        ufrecs::clock::Clock::now(&*self.clock)
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }
}

pub fn metric_value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

pub fn open_read_only(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

pub const TABLES: [&str; 11] = [
    "sources",
    "tokens",
    "poll_offices",
    "parties",
    "votes",
    "vote_proposals",
    "vote_verifications",
    "ballots",
    "ballot_proposals",
    "office_sources",
    "audit_log",
];

pub fn fingerprint(path: &Path) -> String {
    let c = open_read_only(path);
    let mut out = String::new();
    for t in TABLES {
        let mut stmt = c.prepare(&format!("SELECT * FROM {t} ORDER BY 1, 2")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            out.push_str(t);
            for i in 0..n {
                out.push_str(&format!("|{:?}", r.get_ref(i).unwrap()));
            }
            out.push('\n');
        }
    }
    out
}

/// Polls `check` until it returns `Some`, for up to 10 s.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(10, what, check).await
}

/// `eventually`, for up to `secs` seconds (for what waits on another program's retries).
pub async fn eventually_within<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real `ufrecs` binary, serving a database in `dir` on a free port.
pub struct Process {
    pub child: Child,
    pub base: String,
}

impl Process {
    pub fn spawn(dir: &Path) -> Process {
        Self::spawn_with(dir, "warn", Stdio::inherit(), &[])
    }

    /// With a log level, where the log (standard error) goes, and more settings.
    pub fn spawn_with(dir: &Path, log: &str, stderr: Stdio, env: &[(&str, String)]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ufrecs"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("serve")
            .current_dir(dir)
            .env("UFRECS_CONFIG", Path::new(env!("CARGO_MANIFEST_DIR")).join("ufrecs.toml"))
            .env("UFRECS_SERVER_LISTEN", "127.0.0.1:0")
            .env("UFRECS_DATABASE_PATH", dir.join("ufrecs.sqlite3"))
            .env("UFRECS_AUTH_SECRET_FILE", dir.join("secret"))
            .env("UFRECS_AUTH_ADMIN_TOKEN", ADMIN)
            .env("UFRECS_LOG", log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        let addr =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Process { base: format!("http://{addr}"), child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `TestApp`-like client for a `Process`.
pub fn remote(base: &str) -> RemoteApp {
    RemoteApp { base: base.into(), client: reqwest::Client::new() }
}

pub struct RemoteApp {
    pub base: String,
    pub client: reqwest::Client,
}

impl RemoteApp {
    pub async fn login(&self, elector_id: &str, office: &str) -> Session {
        let res = self
            .client
            .post(format!("{}/api/authenticate/", self.base))
            .body(json!({"elector_id": elector_id, "poll_office_id": office}).to_string())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        Session { elector_id: elector_id.into(), token: body["token"].as_str().unwrap().into(), status, body }
    }

    pub async fn vote(&self, s: &Session, index: i64) -> Result<(u16, Value), reqwest::Error> {
        let res = self
            .client
            .post(format!("{}/api/vote/", self.base))
            .basic_auth(&s.elector_id, Some(&s.token))
            .body(json!({"index": index, "gender": "female", "age": "less_60"}).to_string())
            .send()
            .await?;
        let status = res.status().as_u16();
        let retry_after = res.headers().get("retry-after").is_some();
        let mut body: Value = res.json().await?;
        if retry_after {
            body["retry_after_header"] = json!(true);
        }
        Ok((status, body))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }
}

/// A real S3/STS service: moto in server mode, from the repository's venv, on a free
/// port, killed with the test (and with the test thread, should the test panic).
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

/// What `tests/moto_setup.py` prepared.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Operator {
    pub access_key: String,
    pub secret_key: String,
    pub role_arn: String,
    /// The replication user's key: put, get and list on `*replica/*`, no delete.
    pub replica_access_key: String,
    pub replica_secret_key: String,
}

pub const BUCKET: &str = "ufrecs-media";

pub fn venv_bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin").join(name);
    assert!(p.exists(), "{} is missing: run ./setup-dev-mode.sh", p.display());
    p
}

/// A free loopback port (for a service that must be told its port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a test's service process (quiet), killed with the test thread should it panic,
/// and waits until `probe` answers 2xx.
pub async fn spawn_service(mut cmd: Command, what: &str, probe: &str) -> Child {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: prctl in the child between fork and exec only sets its own death signal.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let client = reqwest::Client::new();
    eventually(what, || {
        let req = client.get(probe).send();
        async move { req.await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await;
    child
}

impl Moto {
    pub async fn start() -> Moto {
        Self::start_with(&[]).await
    }

    /// With environment variables for moto (its request recorder, say).
    pub async fn start_with(env: &[(&str, String)]) -> Moto {
        let port = free_port();
        let mut cmd = Command::new(venv_bin("moto_server"));
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let endpoint = format!("http://127.0.0.1:{port}");
        let child = spawn_service(cmd, "moto to listen", &format!("{endpoint}/moto-api/data.json")).await;
        Moto { child, endpoint }
    }

    /// Creates the operator, the role (allowed `resources`) and the bucket; turns auth on.
    pub async fn setup(&self, resources: &[&str]) -> Operator {
        let mut cmd = tokio::process::Command::new(venv_bin("python"));
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto_setup.py"))
            .arg(&self.endpoint)
            .arg(BUCKET)
            .args(resources);
        let out = cmd.output().await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every AssumeRole moto answered: (session name, the inline policy as sent).
    pub async fn assumed(&self) -> Vec<(String, Value)> {
        let data: Value =
            reqwest::get(format!("{}/moto-api/data.json", self.endpoint)).await.unwrap().json().await.unwrap();
        let mut out = Vec::new();
        // data.json keeps them per account and region, or flat, depending on moto's version.
        fn walk(v: &Value, out: &mut Vec<(String, Value)>) {
            match v {
                Value::Object(m) if m.contains_key("session_name") && m.contains_key("policy") => {
                    let policy = m["policy"].as_str().map(|p| serde_json::from_str(p).unwrap()).unwrap_or(Value::Null);
                    out.push((m["session_name"].as_str().unwrap_or("").to_owned(), policy));
                }
                Value::Object(m) => m.values().for_each(|x| walk(x, out)),
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        walk(&data["sts"], &mut out);
        out
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points a server's settings at moto with the operator's key.
pub fn use_moto(s: &mut Settings, moto: &Moto, op: &Operator) {
    s.s3.endpoint = moto.endpoint.clone();
    s.s3.sts_endpoint = moto.endpoint.clone();
    s.s3.access_key = op.access_key.clone();
    s.s3.secret_key = op.secret_key.clone().into();
    s.s3.role_arn = op.role_arn.clone();
    s.s3.credentials_ttl_secs = 3600;
}

/// Recomputes every hash of the 6c chain from the entries as they now stand: what a
/// careful rewriter of the file does after editing an entry.
pub fn rehash_chain(db: &rusqlite::Connection) {
    let rows: Vec<(i64, String, String, String, Option<String>, String)> = db
        .prepare("SELECT seq, at, kind, actor, poll_office_id, detail FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev = ufrecs::domain::audit::GENESIS.to_owned();
    for (seq, at, kind, actor, poll_office_id, detail) in rows {
        let entry = ufrecs::domain::audit::Entry { seq, at, kind, actor, poll_office_id, detail: Value::Null };
        prev = ufrecs::domain::audit::chain_hash(&prev, &entry.canonical_with_detail(&detail));
        db.execute("UPDATE audit_log SET hash = ?2 WHERE seq = ?1", rusqlite::params![seq, prev]).unwrap();
    }
}
