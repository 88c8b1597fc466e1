//! The earlier Flutter apps (osscameroon/votashot, `reporter_clients/default_flutter` and
//! `citizen_clients/default_flutter`): their requests replayed as their Dart code sends
//! them, and the answers decoded with the apps' own casts (`as int`, `as String`,
//! `?? default`), so that a break shows as the cast that would throw in the app. The
//! server runs with the configuration docs/operations.md gives for these apps.

use serde_json::{json, Map, Value};

use crate::helpers::*;
use crate::s3::bucket_for;

/// One decoded answer, read the way Dart reads a `jsonDecode`d map. Each cast panics with
/// the app's expression when it would throw in the app.
#[derive(Clone, Copy)]
struct Dart<'a>(&'a Value);

impl<'a> Dart<'a> {
    fn get(self, key: &str) -> Dart<'a> {
        Dart(self.0.get(key).unwrap_or(&Value::Null))
    }
    /// `x as int`: a JSON integer (not `1.0`, not null).
    fn int(self, expr: &str) -> i64 {
        self.0.as_i64().unwrap_or_else(|| panic!("`{expr} as int` throws on {}", self.0))
    }
    /// `(x ?? 0) as int`.
    fn int_or_0(self, expr: &str) -> i64 {
        if self.0.is_null() {
            0
        } else {
            self.int(expr)
        }
    }
    /// `(x as num).toInt()`.
    fn num(self, expr: &str) -> f64 {
        self.0.as_f64().unwrap_or_else(|| panic!("`{expr} as num` throws on {}", self.0))
    }
    /// `(x as num?)?.toInt() ?? 0`.
    fn num_or_0(self, expr: &str) -> f64 {
        if self.0.is_null() {
            0.0
        } else {
            self.num(expr)
        }
    }
    /// `x as String`.
    fn string(self, expr: &str) -> &'a str {
        self.0.as_str().unwrap_or_else(|| panic!("`{expr} as String` throws on {}", self.0))
    }
    /// `x as String?` (and `(x ?? '') as String`).
    fn opt_string(self, expr: &str) -> Option<&'a str> {
        if self.0.is_null() {
            None
        } else {
            Some(self.string(expr))
        }
    }
    /// `x as bool`.
    fn bool(self, expr: &str) -> bool {
        self.0.as_bool().unwrap_or_else(|| panic!("`{expr} as bool` throws on {}", self.0))
    }
    /// `x as Map<String, dynamic>`.
    fn map(self, expr: &str) -> &'a Map<String, Value> {
        self.0.as_object().unwrap_or_else(|| panic!("`{expr} as Map` throws on {}", self.0))
    }
    /// `(x as List?) ?? []`.
    fn list_or_empty(self, expr: &str) -> &'a [Value] {
        if self.0.is_null() {
            return &[];
        }
        self.0.as_array().unwrap_or_else(|| panic!("`{expr} as List` throws on {}", self.0))
    }
}

/// The configuration docs/operations.md gives for the earlier apps.
fn earlier_apps(s: &mut ufrecs::config::Settings) {
    s.compat.numeric_vote_ids = true;
    s.auth.token_ttl_secs = 16 * 3600;
    s.s3.credentials_ttl_secs = 12 * 3600;
}

/// What Dio hands the app: the decoded body, only if the answer says it is JSON.
async fn dio(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let json = res.headers().get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
    assert!(json, "Dio would hand the app a String: {:?}", res.headers().get("content-type"));
    (status, res.json().await.unwrap())
}

/// `S3Credentials.fromJson` (`models/auth.dart`).
fn s3_credentials(c: Dart) -> (String, String) {
    c.get("region").string("json['region']");
    c.get("endpoint").opt_string("json['endpoint']");
    c.get("bucket").string("json['bucket']");
    for k in ["accessKeyId", "secretAccessKey", "sessionToken"] {
        c.get(k).string(k);
    }
    let expiration = c.get("expiration").string("json['expiration']");
    assert!(chrono::DateTime::parse_from_rfc3339(expiration).is_ok(), "DateTime.parse({expiration})");
    (c.get("prefix").string("json['prefix']").to_owned(), expiration.to_owned())
}

/// `_joinKey` of `services/s3_uploader.dart`: the prefix trimmed of its outer slashes, then
/// `/`, then the name.
fn join_key(key_prefix: &str, object: &str) -> String {
    format!("{}/{}", key_prefix.trim().trim_matches('/'), object.trim_start_matches('/'))
}

/// `votes_session_page.dart`: the count resumes after `last_vote.Accepted.index`, or at 1
/// when anything throws.
fn vote_resume(stats: &Value) -> i64 {
    let last = Dart(stats).get("last_vote");
    if last.0.is_null() {
        return 1;
    }
    let Some(accepted) = last.get("Accepted").0.as_object() else { return 1 };
    let a = Dart(stats).get("last_vote").get("Accepted");
    a.get("gender").opt_string("json['gender']");
    a.get("age").opt_string("json['age']");
    a.get("has_torn").bool("json['has_torn']");
    let index = a.get("index").num_or_0("json['index']") as i64;
    assert!(!accepted.is_empty());
    if index == 0 {
        1
    } else {
        index + 1
    }
}

/// `results_session_page.dart` with `LastPaper.fromJson`: flat `index` and `party_id`.
fn ballot_resume(results: &Value) -> i64 {
    let r = Dart(results);
    for item in r.get("results").list_or_empty("json['results']") {
        let item = Dart(item);
        item.map("e");
        item.get("party_id").opt_string("json['party_id']");
        item.get("ballots").num_or_0("json['ballots']");
        item.get("share").num_or_0("json['share']");
    }
    r.get("total_ballots").num_or_0("json['total_ballots']");
    let paper = r.get("last_paper");
    if paper.0.is_null() {
        return 1;
    }
    paper.map("json['last_paper']");
    paper.get("party_id").opt_string("json['party_id']");
    let index = paper.get("index").num_or_0("json['index']") as i64;
    if index == 0 {
        1
    } else {
        index + 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reporter_apps_day_decodes_with_its_own_casts() {
    let moto = Moto::start().await;
    let op = moto.setup(&[]).await;
    let app = TestApp::spawn_with(|s| {
        use_moto(s, &moto, &op);
        earlier_apps(s);
    })
    .await;
    let client = reqwest::Client::new();
    let (office, elector) = ("PO-APP", "02-12-069-0080-16-000700");

    // Login (`api_client.dart` authenticate): password '' when none, the office identifier.
    let (status, auth) = dio(client
        .post(app.url("/api/authenticate/"))
        .json(&json!({"elector_id": elector, "password": "", "poll_office_id": office}))
        .send()
        .await
        .unwrap())
    .await;
    assert!((200..300).contains(&status), "{auth}");
    let a = Dart(&auth);
    let token = a.get("token").string("json['token']").to_owned();
    assert_eq!(a.get("poll_office_id").string("json['poll_office_id']"), office);
    let s3 = a.get("s3");
    s3.map("json['s3']");
    s3.get("base_path").string("json['base_path']");
    let (prefix, _) = s3_credentials(s3.get("credentials"));
    let expires = chrono::DateTime::parse_from_rfc3339(a.get("expires_at").string("expires_at")).unwrap();
    assert!(expires.timestamp() - app.now().timestamp() >= 16 * 3600 - 5, "the token outlives a 16 h day");
    let bearer = format!("Bearer {token}");
    let get = |path: &str| client.get(app.url(path)).header("authorization", &bearer).send();

    // The parties, first page only (`CandidateParty.fromJson`).
    let (_, parties) = dio(get("/api/candidateparties/").await.unwrap()).await;
    for p in Dart(&parties).get("results").list_or_empty("data['results']") {
        let p = Dart(p);
        p.get("id").num("json['id']");
        for k in ["party_name", "candidate_name", "identifier", "created_at"] {
            p.get(k).opt_string(k);
        }
    }

    // The vote count resumes at 1 on a new office, then after the last accepted vote.
    let stats_path = format!("/api/pollofficestats/?poll_office={office}");
    assert_eq!(vote_resume(&dio(get(&stats_path).await.unwrap()).await.1), 1);
    let vote = |index: i64| {
        client
            .post(app.url("/api/vote/"))
            .header("authorization", &bearer)
            .json(&json!({"index": index, "gender": "female", "age": "less_60", "has_torn": false}))
            .send()
    };
    for index in 1..=5 {
        let (status, v) = dio(vote(index).await.unwrap()).await;
        assert_eq!(status, 201);
        // `VoteResponse((json['id'] as num).toInt(), (json['index'] as num).toInt())`.
        Dart(&v).get("id").num("json['id']");
        assert_eq!(Dart(&v).get("index").num("json['index']"), index as f64);
    }
    let (_, stats) = dio(get(&stats_path).await.unwrap()).await;
    assert_eq!(vote_resume(&stats), 6);
    // Votes whose answer was lost are resent (200, nothing changes); votes 6 to 20 failed
    // on a dead link and the queue is flushed post after post, without observed_at: all
    // stored, and no fast_voting on an honest office.
    for index in 1..=5 {
        assert_eq!(vote(index).await.unwrap().status(), 200);
    }
    for index in 6..=20 {
        assert_eq!(vote(index).await.unwrap().status(), 201);
    }
    let (_, stats) = dio(get(&stats_path).await.unwrap()).await;
    assert_eq!(stats["totals"]["votes"], 20);
    assert_eq!(stats["flags"], json!([]), "{stats}");
    assert_eq!(vote_resume(&stats), 21);

    // The count: the last ballot read is a tie between two reporters; the app resumes
    // after it, not back over it.
    let other = app.reporter("E-OTHER", office).await;
    let paper = |index: i64, party: &str| {
        client
            .post(app.url("/api/votingpaperresult/"))
            .header("authorization", &bearer)
            .json(&json!({"index": index, "party_id": party}))
            .send()
    };
    for (index, party) in [(1, "PA"), (2, "PB"), (3, "PA")] {
        assert_eq!(paper(index, party).await.unwrap().status(), 201);
    }
    app.ballot(&other, 3, "PB").await;
    let results_path = format!("/api/pollofficeresults/?poll_office={office}");
    let (_, results) = dio(get(&results_path).await.unwrap()).await;
    assert_eq!(results["last_paper"]["Accepted"]["index"], 2, "ballot 3 is undecided");
    assert_eq!(ballot_resume(&results), 4);

    // Fresh S3 credentials (POST, the fields at the top level), then an upload to the key
    // the app builds: `${prefix}/minutes/<file name>`.
    let (status, refreshed) = dio(client
        .post(app.url("/api/refresh-s3-credentials/"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(status, 200);
    let (refreshed_prefix, _) = s3_credentials(Dart(&refreshed));
    assert_eq!(refreshed_prefix, prefix);
    let key = join_key(&format!("{prefix}/minutes"), "IMG_0001.jpg");
    assert_eq!(key, format!("{office}/source-{elector}/minutes/IMG_0001.jpg"));
    let bucket = bucket_for(&moto.endpoint, &refreshed["credentials"]);
    bucket.put_object(&key, b"jpeg").await.expect("the app's key is inside the reporter's folder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_seeds_defaults_the_reporter_app_queues_every_vote() {
    // Why docs/operations.md has a configuration for the earlier apps: the vote id is a
    // string by default, and `(json['id'] as num)` throws, so the app files the vote as
    // failed although it was stored.
    let app = TestApp::spawn().await;
    let s = app.reporter("E-1", "PO-1").await;
    let r = app.vote(&s, 1, "male", "less_30", false).await;
    assert_eq!(r.status, 201);
    assert!(Dart(&r.body).get("id").0.as_f64().is_none(), "{}", r.body);
    assert_eq!(app.stats("PO-1").await["totals"]["votes"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_citizen_apps_views_decode_with_its_own_casts() {
    let app = TestApp::spawn_with(earlier_apps).await;
    let csv = app.dir.path().join("offices.csv");
    let mut text = String::from("identifier,name,city\n");
    for i in 1..=1234 {
        text.push_str(&format!("CM-{i:05},École {i},Ville {}\n", i % 7));
    }
    std::fs::write(&csv, text).unwrap();
    app.cli_ok(&["import", "poll-offices", csv.to_str().unwrap()]);
    eventually("the directory to be served", || async {
        (app.get("/api/polloffices/?limit=1").await.body["count"] == 1234).then_some(())
    })
    .await;
    let client = reqwest::Client::new();
    let get = |path: String| client.get(app.url(&path)).header("accept", "application/json").send();

    // `getPollOffices`: limit=1000, offset by what was received, until `next` is null.
    let (mut offset, mut ids, mut pages) = (0usize, Vec::new(), 0);
    loop {
        let (_, page) = dio(get(format!("/api/polloffices/?limit=1000&offset={offset}")).await.unwrap()).await;
        let results = Dart(&page).get("results").list_or_empty("data['results']");
        for o in results {
            let o = Dart(o);
            ids.push(o.get("id").int_or_0("json['id']"));
            o.get("name").string("json['name']");
            o.get("identifier").string("json['identifier']");
            for k in ["country", "state", "region", "city", "county", "district"] {
                o.get(k).opt_string(k);
            }
        }
        pages += 1;
        offset += results.len();
        if results.is_empty() || Dart(&page).get("next").opt_string("data['next']").is_none() {
            break;
        }
        assert!(pages < 10, "the loop ends");
    }
    assert_eq!((ids.len(), pages), (1234, 3), "500 a page");
    let office = ids[41];

    // A reporter's votes and ballots at that office (found by its numeric id).
    let identifier = format!("CM-{:05}", 42);
    let s = app.reporter("E-1", &identifier).await;
    for i in 1..=3 {
        app.vote(&s, i, "male", "less_30", false).await;
        app.ballot(&s, i, "PA").await;
    }

    // `Stats.fromJson`, nationally and for the office: `(totals[k] ?? 0) as int`, the
    // Map-valued entries of last_vote, and the table titled with the first of them.
    for path in ["/api/pollofficestats/".to_owned(), format!("/api/pollofficestats/?poll_office={office}")] {
        let (_, stats) = dio(get(path.clone()).await.unwrap()).await;
        let totals = Dart(&stats).get("totals");
        totals.map("json['totals']");
        for k in [
            "total_poll_offices",
            "covered_poll_offices",
            "total_sources",
            "votes",
            "male",
            "female",
            "less_30",
            "less_60",
            "more_60",
            "has_torn",
        ] {
            totals.get(k).int_or_0(k);
        }
        let last_vote = Dart(&stats).get("last_vote").map("json['last_vote']");
        let entries: Vec<(&String, Dart)> =
            last_vote.iter().filter(|(_, v)| v.is_object()).map(|(k, v)| (k, Dart(v))).collect();
        for (_, e) in &entries {
            e.get("index").int_or_0("json['index']");
            e.get("gender").opt_string("json['gender']");
            e.get("age").opt_string("json['age']");
            if !e.get("has_torn").0.is_null() {
                e.get("has_torn").bool("json['has_torn']");
            }
            let at = e.get("created_at").opt_string("json['created_at']").unwrap_or("");
            assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{path}: created_at {at}");
        }
        // 'Last Vote - ${entries.values.first.index}': the first entry is Accepted.
        let (first, e) = entries.first().unwrap_or_else(|| panic!("{path}: `entries.values.first` throws"));
        assert_eq!(first.as_str(), "Accepted", "{path}");
        assert_eq!(e.get("index").int_or_0("index"), 3, "{path}");
    }

    // `Results.fromJson`: Map-valued entries of last_paper, results and totals. Nationally,
    // `last_paper.Accepted` is the decided ballot reported last, anywhere.
    let elsewhere = app.reporter("E-2", "CM-00007").await;
    app.ballot(&elsewhere, 9, "PB").await;
    // (The national view is summed at most once a second.)
    let national = eventually("the national view to take the new ballot", || async {
        let (_, national) = dio(get("/api/pollofficeresults/".into()).await.unwrap()).await;
        (national["last_paper"]["Accepted"]["index"] == 9).then_some(national)
    })
    .await;
    let accepted = Dart(&national).get("last_paper").get("Accepted");
    assert_eq!(accepted.get("index").int_or_0("json['index']"), 9);
    assert_eq!(accepted.get("poll_office_id").opt_string("poll_office_id"), Some("CM-00007"));
    {
        let path = format!("/api/pollofficeresults/?poll_office={office}");
        let (_, results) = dio(get(path.clone()).await.unwrap()).await;
        let papers = Dart(&results).get("last_paper").map("json['last_paper']");
        let accepted = Dart(&papers["Accepted"]);
        assert_eq!(accepted.get("index").int_or_0("json['index']"), 3, "{path}");
        assert_eq!(accepted.get("party_id").opt_string("json['party_id']"), Some("PA"));
        for item in Dart(&results).get("results").list_or_empty("json['results']") {
            let item = Dart(item);
            item.get("party_id").opt_string("json['party_id']");
            item.get("ballots").int_or_0("json['ballots']");
            item.get("share").num_or_0("json['share']");
        }
        let totals = Dart(&results).get("totals");
        assert_eq!(totals.get("total_ballots").int_or_0("totals['total_ballots']"), 3, "{path}");
        assert_eq!(Dart(&results).get("last_paper").get("index").int_or_0("index"), 3, "the reporter app's resume");
        totals.get("total_sources").int_or_0("totals['total_sources']");
    }

    // `getCandidateParties`: limit=100 pages, and `(json['id'] ?? 0) as int`.
    let (_, parties) = dio(get("/api/candidateparties/?limit=100&offset=0".into()).await.unwrap()).await;
    Dart(&parties).get("results").list_or_empty("data['results']");
}
