//! Production setup for real: `install-home-prod` into a scratch root, the installed binary
//! and a real nginx (Debian's package) with the installed configuration, on free loopback
//! ports; then the API through nginx.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

fn nginx_bin() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"].iter().map(PathBuf::from).find(|p| p.exists()).expect("nginx is installed")
}

/// A child stopped with SIGTERM when dropped (nginx's master then stops its workers too).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // SAFETY: signalling a child of ours that has not been reaped yet.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

struct Box_ {
    root: PathBuf,
    front: String,
    back: String,
    _server: Killed,
    _nginx: Killed,
}

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `install-home-prod` from `from` (the repository, or a copy with another template)
/// into the scratch `root`, with `args`.
fn install_from(from: &Path, root: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("bash")
        .arg(from.join("install-home-prod"))
        .args(["--root", root.to_str().unwrap(), "--no-systemd", "--binary", env!("CARGO_BIN_EXE_ufrecs")])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn install(root: &Path, front: u16, back: u16) -> std::process::Output {
    let (listen, backend) = (format!("127.0.0.1:{front}"), format!("127.0.0.1:{back}"));
    install_from(Path::new(REPO), root, &["--listen", &listen, "--backend", &backend])
}

/// Debian's main nginx.conf as the package installs it (768 connections a worker), with
/// this root's paths, for the installer to find and raise.
fn debian_main_conf(root: &Path, prefix: &Path) -> PathBuf {
    std::fs::create_dir_all(root.join("etc/nginx")).unwrap();
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let main = root.join("etc/nginx/nginx.conf");
    std::fs::write(
        &main,
        format!(
            "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
             events {{\n\tworker_connections 768;\n}}\n\
             http {{\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  \
             uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  include {conf_d}/*.conf;\n}}\n",
            p = prefix.display(),
            conf_d = root.join("etc/nginx/conf.d").display()
        ),
    )
    .unwrap();
    main
}

/// Installs into `dir/root` and starts the installed binary and nginx.
fn install_and_start(dir: &Path) -> Box_ {
    let root = dir.join("root");
    let prefix = dir.join("nginx");
    let main = debian_main_conf(&root, &prefix);
    let (front, back) = (free_port(), free_port());
    install(&root, front, back);
    let main_text = std::fs::read_to_string(&main).unwrap();
    assert!(main_text.contains("worker_connections 8192;"), "{main_text}");
    assert!(main_text.contains("worker_rlimit_nofile"), "{main_text}");
    let etc = root.join("etc/ufrecs");
    let mut server = Command::new(root.join("usr/local/bin/ufrecs"))
        .arg("serve")
        .env("UFRECS_CONFIG", etc.join("ufrecs.toml"))
        .env("UFRECS_AUTH_ADMIN_TOKEN_FILE", etc.join("admin-token"))
        .env("UFRECS_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let test = Command::new(nginx_bin())
        .args(["-p", prefix.to_str().unwrap(), "-c", main.to_str().unwrap(), "-t"])
        .output()
        .unwrap();
    assert!(test.status.success(), "nginx -t: {}", String::from_utf8_lossy(&test.stderr));
    let nginx = Command::new(nginx_bin())
        .args(["-p", prefix.to_str().unwrap(), "-c", main.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Box_ {
        root,
        front: format!("http://127.0.0.1:{front}"),
        back: format!("http://127.0.0.1:{back}"),
        _server: Killed(server),
        _nginx: Killed(nginx),
    }
}

async fn wait_up(base: &str) {
    let client = reqwest::Client::new();
    eventually("nginx to answer", || async {
        client.get(format!("{base}/healthz")).send().await.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message, within 10 s.
async fn next_text(socket: &mut Socket) -> Value {
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await.expect("a message");
        if let Message::Text(t) = m.expect("open").expect("no error") {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

fn count(metrics: &str, route: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("ufrecs_requests_total{") && l.contains(&format!("route=\"{route}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_box_serves_the_api_through_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let b = install_and_start(dir.path());
    wait_up(&b.front).await;
    let front = remote(&b.front);
    let client = reqwest::Client::new();

    // A vote through nginx, and its stats.
    let s = front.login("E-1", "PO-1").await;
    let reporter3 = front.login("E-3", "PO-3").await;
    let (status, _) = front.vote(&s, 1).await.unwrap();
    assert_eq!(status, 201);
    let stats: Value =
        client.get(format!("{}/api/pollofficesstats/PO-1/", b.front)).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["totals"]["votes"], 1);
    // The log's key was created by the server at first start, with the data, mode 0600;
    // its checkpoints (and their origin, the box's name) go through nginx.
    let key = b.root.join("var/lib/ufrecs/log-key");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions()) & 0o777, 0o600);
    let checkpoint = client.get(format!("{}/log/checkpoint", b.front)).send().await.unwrap().text().await.unwrap();
    assert!(checkpoint.lines().next().unwrap().ends_with("/ufrecs"), "{checkpoint}");

    // The micro-cache: 40 GETs of one office within a second reach the binary about once.
    let metrics = || async { client.get(format!("{}/metrics", b.back)).send().await.unwrap().text().await.unwrap() };
    let before = count(&metrics().await, "pollofficesstats");
    let mut hits = 0;
    for _ in 0..40 {
        let r = client.get(format!("{}/api/pollofficestats/?poll_office=PO-2", b.front)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        hits += (r.headers()["x-cache-status"] == "HIT") as u32;
    }
    let reached = count(&metrics().await, "pollofficesstats") - before;
    assert!(reached <= 3 && hits >= 37, "{reached} requests reached the binary, {hits} cache hits");
    // Different offices never share an entry.
    let other: Value = client
        .get(format!("{}/api/pollofficestats/?poll_office=PO-1", b.front))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["poll_office_id"], "PO-1");

    // A 20 KiB body is refused by nginx before the binary sees it.
    let before = count(&metrics().await, "vote");
    let r = client
        .post(format!("{}/api/vote/", b.front))
        .bearer_auth(&s.token)
        .body(format!("{{\"pad\": \"{}\"}}", "x".repeat(20 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(count(&metrics().await, "vote"), before, "the binary never saw it");

    // A forged X-Forwarded-For does not pass nginx: every failure counts for the one real
    // client address, so a burst of them is rate limited.
    let mut limited = 0;
    for i in 0..40 {
        let r = client
            .post(format!("{}/api/authenticate/", b.front))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"elector_id": "E-1", "poll_office_id": "PO-1", "password": format!("wrong-{i}")}))
            .send()
            .await
            .unwrap();
        limited += (r.status() == 429) as u32;
    }
    assert!(limited > 0, "a burst of failed authentications is rate limited");

    // The verification WebSocket end to end through nginx: wait, see the vote, confirm.
    let url = format!(
        "{}/ws/vote-verification?poll_office_id=PO-3&elector_id=SECRET-VOTER-42",
        b.front.replace("http", "ws")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next_text(&mut socket).await["type"], "waiting");
    front.vote(&reporter3, 1).await.unwrap();
    let shown = next_text(&mut socket).await;
    assert_eq!((&shown["type"], &shown["index"]), (&json!("vote"), &json!(1)), "{shown}");
    let confirm = json!({"type": "confirm"}).to_string();
    socket.send(Message::Text(confirm.into())).await.unwrap();
    assert_eq!(next_text(&mut socket).await["type"], "recorded");
    let stats: Value =
        client.get(format!("{}/api/pollofficesstats/PO-3/", b.back)).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["totals"]["verified"], 1);

    drop(socket);

    // The access log never records a query string (the WebSocket's carries the voter id);
    // nginx writes the socket's line once it has closed.
    let path = b.root.join("var/log/nginx/ufrecs.access.log");
    let log = eventually("the socket's log line", || async {
        let log = std::fs::read_to_string(&path).unwrap();
        log.contains("/ws/vote-verification").then_some(log)
    })
    .await;
    assert!(!log.contains("SECRET-VOTER-42"), "{log}");

    // The micro-cache key holds the host: a request with a forged Host gets links to that
    // host, and nobody else gets them from the cache.
    let (bin, config) = (b.root.join("usr/local/bin/ufrecs"), b.root.join("etc/ufrecs/ufrecs.toml"));
    let import = Command::new(&bin)
        .args(["--config", config.to_str().unwrap(), "import", "parties", &format!("{REPO}/tests/data/parties-cm.csv")])
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let parties = format!("{}/api/candidateparties/?limit=1", b.front);
    eventually("the parties to be served", || async {
        let page: Value = client.get(&parties).send().await.unwrap().json().await.unwrap();
        (page["count"].as_u64() > Some(1)).then_some(())
    })
    .await;
    let attacker: Value =
        client.get(&parties).header("host", "attacker.example").send().await.unwrap().json().await.unwrap();
    assert!(attacker["next"].as_str().unwrap().starts_with("http://attacker.example/"), "{attacker}");
    for _ in 0..3 {
        let r = client.get(&parties).send().await.unwrap();
        let page: Value = r.json().await.unwrap();
        let next = page["next"].as_str().unwrap();
        assert!(next.starts_with("http://127.0.0.1:"), "a visitor got {next}");
    }

    // Through /ws/ the binary sees the client's real address, never one it forged: six
    // sockets from one address at one office, each claiming another, and the sixth is busy.
    let mut sockets = Vec::new();
    let mut busy = 0;
    for i in 0..6 {
        let url =
            format!("{}/ws/vote-verification?poll_office_id=PO-9&elector_id=V-{i}", b.front.replace("http", "ws"));
        let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
        request.headers_mut().insert("x-forwarded-for", format!("198.51.100.{i}").parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let first = next_text(&mut socket).await;
        busy += (first["type"] == "error" && first["code"] == "busy") as u32;
        sockets.push(socket);
    }
    assert_eq!(busy, 1, "ws.max_waiting_per_address_per_office counts the real address");
    drop(sockets);

    // The backup checks the copy it made, and keeps what a restore needs beside it.
    let backup = Command::new(b.root.join("usr/local/lib/ufrecs/backup")).output().unwrap();
    let said = String::from_utf8_lossy(&backup.stdout);
    assert!(backup.status.success(), "{said} {}", String::from_utf8_lossy(&backup.stderr));
    let backups = b.root.join("var/backups/ufrecs");
    let copy = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite3"))
        .expect("a copy");
    assert!(said.contains(&format!("{}: ok: integrity", copy.display())), "the copy was checked: {said}");
    let secret = backups.join("secret");
    assert_eq!(std::fs::read(&secret).unwrap(), std::fs::read(b.root.join("etc/ufrecs/secret")).unwrap());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions()) & 0o777,
        0o600
    );
}

/// A copy of the installer beside a changed nginx template (a newer release's).
fn newer_release(dir: &Path) -> PathBuf {
    let from = dir.join("newer");
    std::fs::create_dir_all(&from).unwrap();
    for f in ["install-home-prod", "ufrecs.toml"] {
        std::fs::copy(Path::new(REPO).join(f), from.join(f)).unwrap();
    }
    let template = std::fs::read_to_string(Path::new(REPO).join("nginx.conf")).unwrap();
    std::fs::write(from.join("nginx.conf"), format!("{template}\n# a newer template\n")).unwrap();
    from
}

#[test]
fn an_upgrade_keeps_the_site_as_certbot_left_it_and_the_first_runs_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    install(&root, 18091, 18092);
    let site = root.join("etc/nginx/conf.d/ufrecs.conf");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    // An untouched site follows the template, and the first run's options are kept even
    // when the upgrade does not repeat them.
    let newer = newer_release(dir.path());
    install_from(&newer, &root, &[]);
    let text = read(&site);
    assert!(text.contains("# a newer template"), "an untouched site is upgraded");
    assert!(text.contains("listen 127.0.0.1:18091;") && text.contains("server 127.0.0.1:18092;"), "{text}");
    assert!(!root.join("etc/nginx/conf.d/ufrecs.conf.new").exists());
    // certbot's edit: TLS lines, the name and the listen lines.
    let certbot = text.replace("server_name _;", "server_name observe.example.org;").replace(
        "listen 127.0.0.1:18091;",
        "listen 127.0.0.1:18091;\n    listen 443 ssl; # managed by Certbot\n    \
             ssl_certificate /etc/letsencrypt/live/observe.example.org/fullchain.pem; # managed by Certbot",
    );
    std::fs::write(&site, &certbot).unwrap();
    // The same release again, without options: nothing of it changes.
    install_from(&newer, &root, &[]);
    assert_eq!(read(&site), certbot);
    assert!(!root.join("etc/nginx/conf.d/ufrecs.conf.new").exists(), "the template did not change");
    // A newer template still: the live site is kept, the template goes beside it.
    let install = install_from(Path::new(REPO), &root, &[]);
    assert_eq!(read(&site), certbot, "certbot's lines survive the upgrade");
    let new = read(&root.join("etc/nginx/conf.d/ufrecs.conf.new"));
    assert!(new.contains("server 127.0.0.1:18092;") && !new.contains("# a newer template"));
    assert!(String::from_utf8_lossy(&install.stdout).contains("ufrecs.conf.new"), "the note says so");
    assert!(read(&root.join("etc/ufrecs/ufrecs.toml")).contains("listen = \"127.0.0.1:18092\""));
    // The operator merges the new template, keeping certbot's lines: the next upgrade of
    // the same release keeps the site and says nothing more.
    let new_path = root.join("etc/nginx/conf.d/ufrecs.conf.new");
    let merged = read(&new_path)
        .replace("server_name _;", "server_name observe.example.org;")
        .replace("listen 127.0.0.1:18091;", "listen 127.0.0.1:18091;\n    listen 443 ssl; # managed by Certbot");
    std::fs::write(&site, &merged).unwrap();
    std::fs::remove_file(&new_path).unwrap();
    let install = install_from(Path::new(REPO), &root, &[]);
    assert_eq!(read(&site), merged);
    assert!(!new_path.exists() && !String::from_utf8_lossy(&install.stdout).contains(".new"));
    // A box installed before the options were remembered: they are read from its files.
    std::fs::remove_file(root.join("etc/ufrecs/install.conf")).unwrap();
    install_from(Path::new(REPO), &root, &[]);
    let remembered = read(&root.join("etc/ufrecs/install.conf"));
    assert!(
        remembered.contains("server_name=observe.example.org")
            && remembered.contains("listen=127.0.0.1:18091")
            && remembered.contains("backend=127.0.0.1:18092"),
        "{remembered}"
    );
}

#[test]
fn the_earlier_apps_option_writes_their_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    install_from(Path::new(REPO), &root, &["--earlier-apps"]);
    let config = root.join("etc/ufrecs/ufrecs.toml");
    let settings = ufrecs::config::load(Some(&config), &Default::default()).unwrap();
    assert!(settings.compat.numeric_vote_ids);
    assert_eq!(settings.auth.token_ttl_secs, 16 * 3600, "a 16 h day");
    assert_eq!(settings.s3.credentials_ttl_secs, 12 * 3600, "the longest S3 credentials");
    // Asked for again over a file written by hand: a key without spaces is set, a missing
    // one is added.
    let by_hand = std::fs::read_to_string(&config)
        .unwrap()
        .replace("numeric_vote_ids = true", "numeric_vote_ids=false")
        .replace("token_ttl_secs = 57600\n", "");
    std::fs::write(&config, &by_hand).unwrap();
    install_from(Path::new(REPO), &root, &["--earlier-apps"]);
    let settings = ufrecs::config::load(Some(&config), &Default::default()).unwrap();
    assert!(settings.compat.numeric_vote_ids);
    assert_eq!(settings.auth.token_ttl_secs, 16 * 3600);
    // An operator's later edit survives an upgrade that does not ask again.
    let edited = std::fs::read_to_string(&config).unwrap().replace("token_ttl_secs = 57600", "token_ttl_secs = 50000");
    std::fs::write(&config, &edited).unwrap();
    install_from(Path::new(REPO), &root, &[]);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
}

#[test]
fn reinstalling_keeps_data_secrets_and_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    assert!(install(&root, 18081, 18082).status.success());
    let etc = root.join("etc/ufrecs");
    let read = |f: &str| std::fs::read_to_string(etc.join(f)).unwrap();
    let (secret, token) = (read("secret"), read("admin-token"));
    let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777;
    assert_eq!(mode(&etc.join("secret")), 0o600);
    assert_eq!(mode(&etc.join("admin-token")), 0o600);
    assert_eq!(mode(&root.join("var/lib/ufrecs")), 0o700);
    std::fs::write(root.join("var/lib/ufrecs/ufrecs.sqlite3"), b"data").unwrap();
    // The transparency log's origin names the box, its key lives with the data.
    let host = std::process::Command::new("hostname").arg("-f").output().unwrap();
    let host: String = String::from_utf8_lossy(&host.stdout)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-".contains(*c))
        .collect();
    let config = read("ufrecs.toml");
    assert!(config.contains(&format!("origin = \"{host}/ufrecs\"")), "{config}");
    assert!(config.contains(&format!("key_file = \"{}\"", root.join("var/lib/ufrecs/log-key").display())), "{config}");
    let edited = config.replace("strict = false", "strict = true");
    std::fs::write(etc.join("ufrecs.toml"), &edited).unwrap();
    assert!(install(&root, 18081, 18082).status.success());
    assert_eq!((read("secret"), read("admin-token")), (secret, token));
    assert_eq!(read("ufrecs.toml"), edited);
    // A configuration from before the log gets its origin and key on the upgrade, once.
    let start = edited.find("\n[log]").unwrap();
    let old = edited[..start].to_owned();
    std::fs::write(etc.join("ufrecs.toml"), &old).unwrap();
    assert!(install(&root, 18081, 18082).status.success());
    let upgraded = read("ufrecs.toml");
    assert!(upgraded.starts_with(&old) && upgraded.contains("[log]") && upgraded.contains("/ufrecs\""), "{upgraded}");
    assert_eq!(std::fs::read(root.join("var/lib/ufrecs/ufrecs.sqlite3")).unwrap(), b"data");
}

#[test]
fn the_installer_writes_the_replication_unit_and_keeps_the_box_id() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let litestream = venv_bin("litestream");
    let run = || {
        let out = Command::new("bash")
            .arg(Path::new(REPO).join("install-home-prod"))
            .args(["--root", root.to_str().unwrap(), "--binary", env!("CARGO_BIN_EXE_ufrecs")])
            .args(["--litestream", litestream.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let said = run();
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/ufrecs-replicate.service")).unwrap();
    let bin = root.join("usr/local/bin/ufrecs");
    for line in [
        format!("ExecStart={} replication run", bin.display()),
        format!("ExecCondition={} replication enabled", bin.display()),
        "After=ufrecs.service network-online.target".into(),
        "Restart=always".into(),
        "User=ufrecs".into(),
        "NoNewPrivileges=true".into(),
        "ProtectSystem=strict".into(),
        "ReadWritePaths=/var/lib/ufrecs".into(),
        "CapabilityBoundingSet=".into(),
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in\n{unit}");
    }
    let config_path = root.join("etc/ufrecs/ufrecs.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let box_id = config
        .lines()
        .find_map(|l| l.strip_prefix("box_id = \"").and_then(|v| v.strip_suffix('"')))
        .unwrap_or_else(|| panic!("a box id in\n{config}"))
        .to_owned();
    assert!(box_id.len() > 9 && said.contains(&box_id), "{box_id}: {said}");
    let installed = root.join("usr/local/lib/ufrecs/litestream");
    assert!(config.contains(&format!("litestream = \"{}\"", installed.display())), "{config}");
    let version = Command::new(&installed).arg("version").env_remove("AWS_CA_BUNDLE").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("0.5."), "Litestream 0.5 installed");
    // Off until the operator enables it; its configuration names this box's replica.
    let ufrecs = |args: &[&str]| {
        Command::new(&bin)
            .args(["--config", config_path.to_str().unwrap()])
            .args(args)
            .env("UFRECS_S3_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap()
    };
    assert_eq!(ufrecs(&["replication", "enabled"]).status.code(), Some(1));
    let yaml = String::from_utf8_lossy(&ufrecs(&["replication", "config"]).stdout).to_string();
    assert!(yaml.contains(&format!("path: \"replica/{box_id}\"")), "{yaml}");
    assert!(yaml.contains(&format!("- path: \"{}\"", root.join("var/lib/ufrecs/ufrecs.sqlite3").display())), "{yaml}");
    // An upgrade keeps the box id.
    run();
    assert!(std::fs::read_to_string(&config_path).unwrap().contains(&format!("box_id = \"{box_id}\"")));
}
