//! The public page (section 9b) in a real browser: Debian's headless Chromium driven over
//! WebDriver (chromedriver), against the real server with data posted through the API.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::directory::with_demo_directory;
use crate::helpers::*;

const OFFICE: &str = "CM-AD-000001";

/// chromedriver and a Chromium session; both die with the test.
struct Browser {
    client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    async fn start(language: &str) -> Browser {
        let bin = Path::new("/usr/bin/chromedriver");
        assert!(bin.exists(), "chromedriver is missing: run ./setup-dev-mode.sh");
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--port={port}"));
        let webdriver = format!("http://127.0.0.1:{port}");
        let driver = spawn_service(cmd, "chromedriver to listen", &format!("{webdriver}/status")).await;
        let profile = tempfile::tempdir().unwrap();
        // The flags keep Chromium off the network it cannot reach (it only talks to loopback).
        let caps = json!({"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1000,1500", format!("--lang={language}"),
                     format!("--user-data-dir={}", profile.path().display())],
            "prefs": {"intl.accept_languages": language},
        }});
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&webdriver)
            .await
            .expect("a Chromium session");
        Browser { client, driver, _profile: profile }
    }

    /// Runs a script in the page and returns what it returns.
    async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    async fn text(&self, selector: &str) -> String {
        let s = json!(selector);
        self.eval(&format!("const e = document.querySelector({s}); return e ? e.textContent.trim() : null;"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits (up to 15 s: the page polls every second here) until `selector`'s text is `want`.
    async fn wait_text(&self, selector: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.text(selector).await;
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{selector}: {got:?}, expected {want:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_true(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.eval(script).await != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_page_shows_an_office_live_in_both_languages_and_survives_a_restart() {
    let mut app = with_demo_directory().await;
    let a = app.official("E-PAGE-1", OFFICE).await;
    for (i, (gender, age, torn)) in
        [("male", "less_30", false), ("female", "less_60", true), ("female", "more_60", false)].into_iter().enumerate()
    {
        assert_eq!(app.vote(&a, i as i64 + 1, gender, age, torn).await.status, 201);
    }
    for (i, party) in ["PA", "PA", "PB"].into_iter().enumerate() {
        assert_eq!(app.ballot(&a, i as i64 + 1, party).await.status, 201);
    }

    let browser = Browser::start("fr-FR").await;
    let page = app.url(&format!("/office/{OFFICE}?every=1"));
    browser.client.goto(&page).await.unwrap();

    // The office's figures, its name from the directory, in French (the browser's language).
    browser.wait_text("#office-totals [data-k=votes] dd", "3").await;
    assert_eq!(browser.eval("return document.documentElement.lang").await, "fr");
    assert_eq!(browser.text("#nation-title").await, "Au niveau national");
    assert_eq!(browser.text("#office-totals [data-k=has_torn] dd").await, "1");
    assert_eq!(browser.text("#office-people [data-k=female] td").await, "2");
    assert_eq!(browser.text("#office-people [data-k=less_30] td").await, "1");
    browser.wait_text("#office-title", &format!("École Publique Ngaoundéré Plateau 8 ({OFFICE})")).await;
    let pa = browser.text("#office-results [data-party=PA]").await;
    assert!(pa.starts_with("Parti Alpha (Candidate Alpha)") && pa.contains('2'), "{pa}");
    assert!(browser.text("#office-ballots").await.starts_with('3'));
    browser.wait_text("#nation-totals [data-k=votes] dd", "3").await;
    let hash = app.get("/api/audit/head/").await.body["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64);
    browser.wait_text("#audit-hash", &hash).await;
    // The transparency log: the signed checkpoint's size and that no witness cosigned it
    // yet, and the entry the office's figures rest on.
    let size = app.get("/api/audit/head/").await.body["seq"].as_u64().unwrap();
    let log_seq = app.results(OFFICE).await["log_seq"].as_u64().unwrap();
    browser.wait_text("#office-log", &format!("Chiffres fondés sur le journal jusqu'à l'entrée n° {log_seq}")).await;
    browser
        .wait_true(
            "the checkpoint line",
            &format!(
                "const t = document.getElementById('checkpoint').textContent; return t.startsWith('Point de contrôle signé — {size} entrées, signé il y a') && t.endsWith('aucun témoin pour l\\'instant')"
            ),
        )
        .await;

    // A quiet office costs a 304: the page asks again with the ETag it holds.
    let not_modified = "ufrecs_requests_total{route=\"pollofficesstats\",status=\"304\"}";
    let before = app.metric(not_modified).await;
    eventually("the page to revalidate", || async { (app.metric(not_modified).await > before).then_some(()) }).await;

    // A new vote shows without a reload.
    browser.eval("window.notReloaded = true; return null").await;
    assert_eq!(app.vote(&a, 4, "male", "more_60", false).await.status, 201);
    browser.wait_text("#office-totals [data-k=votes] dd", "4").await;
    assert_eq!(browser.eval("return window.notReloaded === true").await, true);

    // The search over the directory links to an office's page.
    let search = browser.client.find(Locator::Id("search")).await.unwrap();
    search.send_keys("meiganga").await.unwrap();
    browser
        .wait_true(
            "a search result",
            "return !!document.querySelector('#search-results a[href=\"/office/CM-AD-024821\"]')",
        )
        .await;

    // The language switch.
    browser.client.find(Locator::Id("lang")).await.unwrap().click().await.unwrap();
    browser.wait_text("#nation-title", "Nationwide").await;
    assert_eq!(browser.eval("return document.documentElement.lang").await, "en");
    assert_eq!(browser.text("#office-people [data-k=male] th").await, "Gender — Men");

    // The server goes away: the page says so, keeps what it showed, and recovers by itself.
    app.stop().await;
    browser.wait_true("the offline notice", "return !document.getElementById('status').hidden").await;
    assert!(browser.text("#status").await.starts_with("Server unreachable"));
    assert_eq!(browser.text("#office-totals [data-k=votes] dd").await, "4");
    app.start_again().await;
    assert_eq!(app.vote(&a, 5, "female", "less_30", false).await.status, 201);
    browser.wait_text("#office-totals [data-k=votes] dd", "5").await;
    browser.wait_true("the notice to go", "return document.getElementById('status').hidden").await;

    let shot = browser.client.screenshot().await.unwrap();
    std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join("page-office.png"), shot).unwrap();
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_with_validators_and_a_strict_policy() {
    let app = TestApp::spawn().await;
    for path in ["/", "/office/PO-1/", "/page/app.js", "/page/app.css"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers().clone();
        assert!(h["content-security-policy"].to_str().unwrap().starts_with("default-src 'self'"));
        let etag = h["etag"].to_str().unwrap().to_owned();
        let again = app.client.get(app.url(path)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let html = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<html lang=\"fr\">") && html.contains("/page/app.js"));
    assert_eq!(app.get("/page/nothing.js").await.code(), "not_found");
    assert_eq!(app.send(app.client.post(app.url("/"))).await.code(), "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_s3_on_the_office_page_counts_each_reporters_evidence() {
    let moto = Moto::start().await;
    let op = moto.setup(&[]).await;
    let app = TestApp::spawn_with(|s| use_moto(s, &moto, &op)).await;
    let r = app
        .admin_post(
            "/api/reporters/",
            json!({"elector_id": "E-EV", "type": "official", "full_name": "Awa N.", "password": "pw-awa"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let awa = app.login("E-EV", "PO-EV", Some("pw-awa")).await;
    assert_eq!(app.vote(&awa, 1, "female", "less_30", false).await.status, 201);
    let bucket = crate::s3::bucket_for(&moto.endpoint, &awa.body["s3"]["credentials"]);
    for (key, bytes) in [("votes/vote-1-1-a.jpeg", 2000), ("verbal_process/pv.jpeg", 3000)] {
        bucket.put_object(format!("PO-EV/source-E-EV/{key}"), &vec![7u8; bytes]).await.unwrap();
    }

    let browser = Browser::start("en-GB").await;
    browser.client.goto(&app.url("/office/PO-EV")).await.unwrap();
    browser.wait_true("the evidence table", "return !document.getElementById('office-evidence-box').hidden").await;
    let row = browser.text("#office-evidence tbody tr").await;
    assert!(row.starts_with("Awa N.") && row.contains('2') && row.contains("5 kB"), "{row}");
    assert!(!browser.eval("return document.body.innerText").await.as_str().unwrap().contains("E-EV"));
    browser.close().await;
}
