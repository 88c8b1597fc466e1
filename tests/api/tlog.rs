//! The transparency log (section 6e) against the real server: checkpoints, tiles, proofs
//! and receipts, each checked with the verifier side of the formats.

use serde_json::{json, Value};
use ufrecs::domain::note::{self, Checkpoint};
use ufrecs::domain::tlog::{self, Hash};

use crate::helpers::*;

fn hash(hex_str: &str) -> Hash {
    Hash(hex::decode(hex_str).unwrap().try_into().unwrap())
}

async fn text(app: &TestApp, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.text().await.unwrap(), headers)
}

async fn bytes(app: &TestApp, path: &str) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.bytes().await.unwrap().to_vec(), headers)
}

/// The latest checkpoint once it covers `size` entries, opened with the log's key.
pub async fn checkpoint_covering(app: &TestApp, size: u64) -> (Checkpoint, String) {
    let (_, vkey, _) = text(app, "/log/vkey").await;
    eventually("a checkpoint covering the writes", || async {
        let (_, served, _) = text(app, "/log/checkpoint").await;
        let c = note::open_checkpoint(&served, vkey.trim()).unwrap();
        (c.size >= size).then_some((c, served))
    })
    .await
}

#[tokio::test]
async fn receipts_are_included_in_a_later_signed_checkpoint() {
    let app = TestApp::spawn().await;
    let s = app.reporter("E-1", "PO-1").await;
    let auth_receipt = s.body["receipt"].clone();
    let r = app.vote(&s, 1, "male", "less_30", false).await;
    assert_eq!(r.status, 201);
    let receipt = r.body["receipt"].clone();
    let again = app.vote(&s, 1, "male", "less_30", false).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["receipt"], receipt, "a resend carries the original receipt");
    let ballot = app.ballot(&s, 1, "P1").await;
    let batch = app
        .post(
            "/api/vote/batch/",
            Some(&s),
            json!({"votes": [
        {"index": 2, "gender": "female", "age": "less_60", "has_torn": false}]}),
        )
        .await;
    let batch_receipt = batch.body["results"][0]["receipt"].clone();
    let seqs: Vec<u64> = [&auth_receipt, &receipt, &ballot.body["receipt"], &batch_receipt]
        .iter()
        .map(|r| r["seq"].as_u64().unwrap_or_else(|| panic!("a receipt: {r}")))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let (_, vkey, _) = text(&app, "/log/vkey").await;
    assert!(vkey.starts_with("ufrecs.localhost/dev+"), "{vkey}");
    let (checkpoint, _) = checkpoint_covering(&app, seqs[3]).await;
    for r in [&auth_receipt, &receipt, &ballot.body["receipt"], &batch_receipt] {
        let seq = r["seq"].as_u64().unwrap();
        let proof = app.get(&format!("/api/log/inclusion/?seq={seq}&size={}", checkpoint.size)).await;
        assert_eq!(proof.status, 200, "{}", proof.body);
        assert_eq!(proof.body["leaf_hash"], r["leaf_hash"]);
        assert_eq!(proof.body["leaf_index"], seq - 1);
        let hashes: Vec<Hash> =
            proof.body["hashes"].as_array().unwrap().iter().map(|h| hash(h.as_str().unwrap())).collect();
        let leaf = hash(r["leaf_hash"].as_str().unwrap());
        assert!(tlog::verify_inclusion(&hashes, seq - 1, checkpoint.size, leaf, checkpoint.root), "entry {seq}");
    }
    // The entries as served hash to the receipts: the leaf is the entry's canonical form.
    let (status, bundle, headers) = bytes(&app, &format!("/log/tile/entries/000.p/{}", checkpoint.size)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, max-age=1");
    let entries = tlog::unbundle(&bundle).unwrap();
    assert_eq!(entries.len() as u64, checkpoint.size);
    let leaf = tlog::leaf_hash(entries[seqs[1] as usize - 1]);
    assert_eq!(hex::encode(leaf.0), receipt["leaf_hash"].as_str().unwrap());
    let entry: Value = serde_json::from_slice(entries[seqs[1] as usize - 1]).unwrap();
    assert_eq!(entry["kind"], "vote_proposed");
    // The hash tile is the entries' leaf hashes, and gives the checkpoint's root.
    let (status, tile, _) = bytes(&app, &format!("/log/tile/0/000.p/{}", checkpoint.size)).await;
    assert_eq!(status, 200);
    let leaves: Vec<u8> = entries.iter().flat_map(|e| tlog::leaf_hash(e).0).collect();
    assert_eq!(tile, leaves);
    // A status change, then a verification-free stats body: log_seq names the last entry.
    let stats = app.stats("PO-1").await;
    assert_eq!(stats["log_seq"], batch_receipt["seq"]);
    assert_eq!(app.results("PO-1").await["log_seq"], ballot.body["receipt"]["seq"]);
}

#[tokio::test]
async fn consistency_proofs_link_successive_checkpoints_across_a_restart() {
    let mut app = TestApp::spawn().await;
    let s = app.reporter("E-1", "PO-1").await;
    for i in 1..=300 {
        app.vote(&s, i, "male", "less_30", false).await;
    }
    let (first, _) = checkpoint_covering(&app, 301).await;
    app.restart().await;
    let s = app.reporter("E-2", "PO-2").await;
    for i in 1..=20 {
        app.vote(&s, i, "female", "more_60", true).await;
    }
    let (second, _) = checkpoint_covering(&app, first.size + 21).await;
    let proof = app.get(&format!("/api/log/consistency/?from={}&to={}", first.size, second.size)).await;
    assert_eq!(proof.status, 200, "{}", proof.body);
    let hashes: Vec<Hash> =
        proof.body["hashes"].as_array().unwrap().iter().map(|h| hash(h.as_str().unwrap())).collect();
    assert!(tlog::verify_consistency(&hashes, first.size, first.root, second.size, second.root));
    // The first full tile is immutable, and the same after the restart.
    let (status, full, headers) = bytes(&app, "/log/tile/0/000").await;
    assert_eq!(status, 200);
    assert_eq!(full.len(), 256 * 32);
    assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
    let (_, bundle, _) = bytes(&app, "/log/tile/entries/000").await;
    let leaves: Vec<u8> = tlog::unbundle(&bundle).unwrap().iter().flat_map(|e| tlog::leaf_hash(e).0).collect();
    assert_eq!(full, leaves);
}

#[tokio::test]
async fn bad_log_requests_get_the_spec_errors_and_store_nothing() {
    let app = TestApp::spawn().await;
    let s = app.reporter("E-1", "PO-1").await;
    app.vote(&s, 1, "male", "less_30", false).await;
    let (checkpoint, served) = checkpoint_covering(&app, 2).await;
    let before = app.fingerprint();
    for path in [
        "/api/log/inclusion/?seq=0",
        "/api/log/inclusion/?seq=x",
        "/api/log/inclusion/",
        "/api/log/inclusion/?seq=1&size=999999",
        "/api/log/inclusion/?seq=5&size=2",
        "/api/log/consistency/?from=3&to=2",
        "/api/log/consistency/?to=2",
        "/api/log/consistency/?from=1&to=999999",
    ] {
        let r = app.get(path).await;
        assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_data"), "{path}: {}", r.body);
    }
    for tile in ["0/001", "0/000.p/256", "0/0", "9/000", "entries/000.p/200", "entries/x001/000", "0/000.p/7/x", "../x"]
    {
        let r = app.get(&format!("/log/tile/{tile}")).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"), "{tile}");
    }
    // Cosignatures: garbage, the log's own note with no witness line, a note it never signed.
    let garbage = app.post_raw("/log/cosignature", None, "hello").await;
    assert_eq!((garbage.status.as_u16(), garbage.code()), (400, "invalid_data"));
    let bare = app.post_raw("/log/cosignature", None, served.clone()).await;
    assert_eq!((bare.status.as_u16(), bare.code()), (400, "invalid_data"), "{}", bare.body);
    let (w, _) = note::WitnessKey::generate("witness.example/unknown").unwrap();
    let line = w.cosign(note::note_body(&served).unwrap(), 1_700_000_000);
    let unknown = app.post_raw("/log/cosignature", None, format!("{served}{line}")).await;
    assert_eq!((unknown.status.as_u16(), unknown.code()), (400, "invalid_data"));
    let (forger, _) = note::LogKey::generate("ufrecs.localhost/dev").unwrap();
    let forged = forger.sign(&Checkpoint { size: checkpoint.size + 5, ..checkpoint.clone() });
    let never = app.post_raw("/log/cosignature", None, forged).await;
    assert_eq!((never.status.as_u16(), never.code()), (400, "invalid_data"));
    assert_eq!(app.fingerprint(), before, "nothing stored");
    let n: i64 = app.db().query_row("SELECT COUNT(*) FROM log_cosignatures", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0);
}

/// Runs the Go verifier (`tests/interop/verify.go`, on golang.org/x/mod as Debian ships it).
fn go_verify(base: &str, vkey: &str, seq: u64, old_checkpoint: &std::path::Path) -> std::process::Output {
    let gocache = tempfile::tempdir().unwrap();
    std::process::Command::new("go")
        .args(["run", "verify.go", base, vkey, &seq.to_string()])
        .arg(old_checkpoint)
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop"))
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", gocache.path())
        .output()
        .expect("go is installed by setup-dev-mode.sh")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gos_sumdb_note_and_tlog_verify_the_live_log() {
    let app = TestApp::spawn().await;
    let s = app.reporter("E-1", "PO-1").await;
    let votes: Vec<serde_json::Value> =
        (1..=300).map(|i| json!({"index": i, "gender": "male", "age": "less_30", "has_torn": false})).collect();
    app.post("/api/vote/batch/", Some(&s), json!({"votes": votes})).await;
    let (old, old_note) = checkpoint_covering(&app, 301).await;
    let votes: Vec<serde_json::Value> =
        (301..=600).map(|i| json!({"index": i, "gender": "female", "age": "less_60", "has_torn": true})).collect();
    let batch = app.post("/api/vote/batch/", Some(&s), json!({"votes": votes})).await;
    let seq = batch.body["results"][123]["receipt"]["seq"].as_u64().unwrap();
    let (new, _) = checkpoint_covering(&app, 601).await;
    assert!(new.size > old.size);
    let old_file = app.dir.path().join("old.checkpoint");
    std::fs::write(&old_file, old_note).unwrap();
    let (_, vkey, _) = text(&app, "/log/vkey").await;
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking({
        let (base, vkey, old_file) = (base.clone(), vkey.trim().to_owned(), old_file.clone());
        move || go_verify(&base, &vkey, seq, &old_file)
    })
    .await
    .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("go: {said}");
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("entry {seq}")), "{said}");
    // Another key (the same origin) is refused by Go's note package.
    let (other, _) = note::LogKey::generate("ufrecs.localhost/dev").unwrap();
    let out = tokio::task::spawn_blocking({
        let vkey = other.vkey().to_owned();
        move || go_verify(&base, &vkey, seq, &old_file)
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
}

/// A new witness key named `name` in `key` (`ufrecs witness keygen`): its verifier key.
async fn witness_keygen(name: &str, key: &std::path::Path) -> String {
    let args = ["witness", "keygen", "--name", name, "--key", key.to_str().unwrap()];
    let (code, vkey) = ufrecs(args.iter().map(|a| a.to_string()).collect()).await;
    assert_eq!(code, 0, "{vkey}");
    vkey.trim().to_owned()
}

/// `ufrecs witness verify-evidence --vkey VKEY DIR`: its exit status and output.
async fn verify_evidence(vkey: &str, dir: &std::path::Path) -> (i32, String) {
    ufrecs(vec!["witness".into(), "verify-evidence".into(), "--vkey".into(), vkey.into(), dir.to_str().unwrap().into()])
        .await
}

/// Runs `ufrecs ARGS` (the real binary) off the runtime; its exit status and output.
async fn ufrecs(args: Vec<String>) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ufrecs")).args(&args).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), said)
    })
    .await
    .unwrap()
}

fn witness_args(app: &TestApp, vkey: &str, key: &std::path::Path, state: &std::path::Path) -> Vec<String> {
    [
        "witness",
        "--log",
        &app.base,
        "--vkey",
        vkey,
        "--key",
        key.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--submit",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What a dishonest holder of the box does with the file: rewrites an entry and
/// re-hashes the 6c chain after it, so `ufrecs check` finds nothing.
fn rewrite_history(db: &rusqlite::Connection, seq: i64) {
    let detail: String = db.query_row("SELECT detail FROM audit_log WHERE seq = ?1", [seq], |r| r.get(0)).unwrap();
    assert!(detail.contains("\"gender\":\"male\""), "{detail}");
    db.execute(
        "UPDATE audit_log SET detail = ?2 WHERE seq = ?1",
        rusqlite::params![seq, detail.replace("\"male\"", "\"female\"")],
    )
    .unwrap();
    rehash_chain(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_a_growing_log_and_catches_a_rewritten_history_with_offline_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("witness.key");
    let vkey_w = witness_keygen("newsroom.example/w1", &key).await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let mut app = TestApp::spawn_with(|s| s.log.witnesses = vec![vkey_w.clone()]).await;
    let (_, vkey, _) = text(&app, "/log/vkey").await;
    let vkey = vkey.trim().to_owned();
    let state = dir.path().join("state");
    let s = app.reporter("E-1", "PO-1").await;
    for i in 1..=10 {
        app.vote(&s, i, "male", "less_30", false).await;
    }
    let (first, _) = checkpoint_covering(&app, 12).await;
    let (code, said) = ufrecs(witness_args(&app, &vkey, &key, &state)).await;
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("submitted"), "{said}");
    let (_, served, _) = text(&app, "/log/checkpoint").await;
    assert!(served.contains("— newsroom.example/w1 "), "the cosignature is served: {served}");
    let cosignature = note::WitnessVerifier::parse(&vkey_w).unwrap().find(&served).unwrap().unwrap();
    assert_eq!(cosignature.witness, "newsroom.example/w1");
    // Writes across a tile boundary, and a second pass from the mirror it keeps.
    let votes: Vec<Value> =
        (11..=400).map(|i| json!({"index": i, "gender": "male", "age": "less_30", "has_torn": false})).collect();
    app.post("/api/vote/batch/", Some(&s), json!({"votes": votes})).await;
    let (second, _) = checkpoint_covering(&app, first.size + 390).await;
    let (code, said) = ufrecs(witness_args(&app, &vkey, &key, &state)).await;
    assert_eq!(code, 0, "{said}");
    assert!(said.contains(&format!("verified {}", second.size)), "{said}");
    assert!(state.join("tile/entries/000").exists() && state.join("tile/0/000").exists(), "a C2SP mirror");
    // The operator rewrites an old vote in the file, re-hashes the chain, restarts.
    app.stop().await;
    rewrite_history(&rusqlite::Connection::open(app.db_path()).unwrap(), 5);
    app.start_again().await;
    let (code, said) = ufrecs(witness_args(&app, &vkey, &key, &state)).await;
    assert_eq!(code, 3, "{said}");
    let evidence = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("evidence-"))
        .expect("an evidence folder");
    for f in ["old.checkpoint", "new.checkpoint", "proof.json", "README"] {
        assert!(evidence.join(f).exists(), "{f}");
    }
    let (code, said) = verify_evidence(&vkey, &evidence).await;
    assert_eq!(code, 0, "the evidence proves it offline: {said}");
    let (code, _) = verify_evidence(note::LogKey::generate("ufrecs.localhost/dev").unwrap().0.vkey(), &evidence).await;
    assert_eq!(code, 1, "not against another key");
    // A witness with no history sees a consistent log: that is what cosignatures are for.
    let (code, said) = ufrecs(witness_args(&app, &vkey, &key, &dir.path().join("fresh"))).await;
    assert_eq!(code, 0, "{said}");
}

/// Runs the docs' Python verifier (standard library and `cryptography`, from the venv).
async fn python_verify(base: &str, vkey: &str, witnesses: &[&str]) -> (i32, String) {
    let mut cmd = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python3"));
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/verify_log.py")).args([base, vkey]);
    for w in witnesses {
        cmd.args(["--witness", w]);
    }
    tokio::task::spawn_blocking(move || {
        let out = cmd.output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), said)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_python_verifier_recomputes_a_simulated_day_and_names_an_edited_office() {
    let mut app = crate::directory::with_demo_directory().await;
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ufrecs"))
            .args(["simulate", "--url", &app.base, "--offices", "4", "--voters", "30", "--seconds", "3"])
            .args(["--readers", "2", "--verify-share", "0.3", "--admin-token", ADMIN])
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Opportunistic sources disagreeing (ties), at an office with few registered voters,
    // then one of them made official (a status change re-weighs the office).
    let office = "CM-AD-024821";
    let a = app.reporter("OPP-A", office).await;
    let b = app.reporter("OPP-B", office).await;
    for i in 1..=125 {
        app.vote(&a, i, "male", "less_30", i % 3 == 0).await;
        let g = if i % 4 == 0 { "female" } else { "male" };
        app.vote(&b, i, g, "more_60", false).await;
        app.ballot(&a, i, "RDPC").await;
        app.ballot(&b, i, if i % 5 == 0 { "SDF" } else { "RDPC" }).await;
    }
    let r = app.admin_patch("/api/sources/OPP-B/", json!({"status": "official"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let flags = app.stats(office).await["flags"].to_string();
    assert!(flags.contains("votes_exceed_registered"), "{flags}");
    let (_, vkey, _) = text(&app, "/log/vkey").await;
    let vkey = vkey.trim().to_owned();
    let size = app.get("/api/audit/head/").await.body["seq"].as_u64().unwrap();
    checkpoint_covering(&app, size).await;
    let (code, said) = python_verify(&app.base, &vkey, &[]).await;
    println!("{said}");
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("every figure matches"), "{said}");
    let offices: u64 = said.split("recomputed ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(offices >= 4, "{said}");
    // Edit an accepted value by hand in the file: the verifier names the office.
    app.stop().await;
    let db = rusqlite::Connection::open(app.db_path()).unwrap();
    let edited = db
        .execute("UPDATE votes SET gender = CASE gender WHEN 'male' THEN 'female' ELSE 'male' END WHERE poll_office_id = ?1 AND idx = 1 AND counted = 1", [office])
        .unwrap();
    assert_eq!(edited, 1);
    drop(db);
    app.start_again().await;
    let (code, said) = python_verify(&app.base, &vkey, &[]).await;
    assert_eq!(code, 1, "{said}");
    assert!(said.contains(&format!("office {office}")), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_s3_the_full_tiles_and_the_checkpoint_go_to_the_bucket_and_verify_from_there() {
    let moto = Moto::start().await;
    let op = moto.setup(&["arn:aws:s3:::ufrecs-media/*"]).await;
    let app = TestApp::spawn_with(|s| {
        use_moto(s, &moto, &op);
        s.s3.prefix = "region-1/".into();
    })
    .await;
    let s = app.reporter("E-1", "PO-1").await;
    let votes: Vec<Value> =
        (1..=300).map(|i| json!({"index": i, "gender": "male", "age": "less_30", "has_torn": false})).collect();
    app.post("/api/vote/batch/", Some(&s), json!({"votes": votes})).await;
    let (checkpoint, _) = checkpoint_covering(&app, 302).await;
    let bucket = ufrecs::s3::operator_bucket(&app.settings.s3).unwrap();
    let served = eventually("the checkpoint in the bucket", || async {
        let r = bucket.get_object("region-1/log/checkpoint").await.ok()?;
        let text = String::from_utf8(r.as_slice().to_vec()).ok()?;
        text.starts_with(&format!("ufrecs.localhost/dev\n{}\n", checkpoint.size)).then_some(text)
    })
    .await;
    let (_, vkey, _) = text(&app, "/log/vkey").await;
    assert_eq!(note::open_checkpoint(&served, vkey.trim()).unwrap(), checkpoint);
    // Every tile that checkpoint covers is in the bucket, as the box serves it: the
    // bucket's copy verifies on its own.
    for tile in ufrecs::mirror::tiles_of(checkpoint.size) {
        let object = bucket.get_object(format!("region-1/log/{tile}")).await.unwrap();
        assert_eq!(object.status_code(), 200, "{tile}");
        let (_, from_box, _) = bytes(&app, &format!("/log/{tile}")).await;
        assert_eq!(object.as_slice(), from_box.as_slice(), "{tile}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_mirror_holds_the_files_the_box_serves() {
    let app = TestApp::spawn().await;
    let s = app.reporter("E-1", "PO-1").await;
    let votes: Vec<Value> =
        (1..=300).map(|i| json!({"index": i, "gender": "male", "age": "less_30", "has_torn": false})).collect();
    app.post("/api/vote/batch/", Some(&s), json!({"votes": votes})).await;
    let (checkpoint, served) = checkpoint_covering(&app, 302).await;
    let dir = app.dir.path().join("mirror");
    app.cli_ok(&["log", "export", dir.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(dir.join("checkpoint")).unwrap(), served);
    for tile in ufrecs::mirror::tiles_of(checkpoint.size) {
        let (status, from_box, _) = bytes(&app, &format!("/log/{tile}")).await;
        assert_eq!(status, 200, "{tile}");
        assert_eq!(std::fs::read(dir.join(tile.to_string())).unwrap(), from_box, "{tile}");
    }
    // Exporting again keeps the full tiles and writes the partial ones.
    app.cli_ok(&["log", "export", dir.to_str().unwrap()]);
    assert!(dir.join("tile/0/000").exists() && dir.join("tile/entries/000").exists());
}

/// The witness's evidence folder in `state`, once there is one.
fn evidence_in(state: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("evidence-"))
        .expect("an evidence folder")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_pass_resumes_and_a_rewritten_recent_entry_or_a_truncated_log_is_proven() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("witness.key");
    witness_keygen("w.example/w", &key).await;
    let mut app = TestApp::spawn().await;
    let (_, vkey, _) = text(&app, "/log/vkey").await;
    let vkey = vkey.trim().to_owned();
    let state = dir.path().join("state");
    let args = |app: &TestApp, state: &std::path::Path| {
        let mut a = witness_args(app, &vkey, &key, state);
        a.pop(); // no --submit: the log lists no witness here
        a
    };
    let s = app.reporter("E-1", "PO-1").await;
    // Passes at many sizes (partial bundles pile up), one of them interrupted before its
    // commit: the next pass resumes, and never accuses an honest log.
    for i in 1..=12 {
        app.vote(&s, i, "male", "less_30", false).await;
        checkpoint_covering(&app, i as u64 + 2).await;
        let blocker = state.join("witness.tmp-write");
        if i == 6 {
            std::fs::create_dir_all(&blocker).unwrap();
        }
        let (code, said) = ufrecs(args(&app, &state)).await;
        if i == 6 {
            assert_eq!(code, 1, "the interrupted pass fails: {said}");
            std::fs::remove_dir(&blocker).unwrap();
        } else {
            assert_eq!(code, 0, "pass {i}: {said}");
        }
    }
    // A recent entry rewritten (and the chain re-hashed): exit 3, and proven offline.
    app.stop().await;
    rewrite_history(&rusqlite::Connection::open(app.db_path()).unwrap(), 10);
    app.start_again().await;
    let (code, said) = ufrecs(args(&app, &state)).await;
    assert_eq!(code, 3, "{said}");
    let evidence = evidence_in(&state);
    let (code, said) = verify_evidence(&vkey, &evidence).await;
    assert_eq!(code, 0, "{said}");
    // Another witness, then the log truncated and an old entry rewritten.
    let second = dir.path().join("second");
    let (code, said) = ufrecs(args(&app, &second)).await;
    assert_eq!(code, 0, "{said}");
    app.stop().await;
    let db = rusqlite::Connection::open(app.db_path()).unwrap();
    let last: i64 = db.query_row("SELECT MAX(seq) FROM audit_log", [], |r| r.get(0)).unwrap();
    db.execute("DELETE FROM audit_log WHERE seq > ?1", [last - 4]).unwrap();
    rewrite_history(&db, 5);
    drop(db);
    app.start_again().await;
    let (code, said) = ufrecs(args(&app, &second)).await;
    assert_eq!(code, 3, "{said}");
    let (code, said) = verify_evidence(&vkey, &evidence_in(&second)).await;
    assert_eq!(code, 0, "a truncated, rewritten history is proven too: {said}");
}
