//! The benchmark's yardstick for durable writes: the least a durable `POST /api/vote/` can
//! cost with this stack. A warp handler parses the vote's JSON and hands it to one SQLite
//! writer thread (WAL, `synchronous=FULL`), which commits whatever is queued in one
//! transaction (group commit), runs one `INSERT … RETURNING id` per request, and answers
//! each request after the commit. No authentication, cross-checking, audit or memory:
//! `bench/http` compares UFRECS's durable votes against it.
//! Usage: write_ceiling [database file, default a temporary one]

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use warp::Filter;

#[derive(Deserialize)]
#[allow(dead_code)] // parsed as UFRECS parses a vote; only the index is stored
struct Vote {
    index: u32,
    gender: String,
    age: String,
    has_torn: bool,
    #[serde(default)]
    observed_at: Option<String>,
}

struct Job {
    reporter: String,
    vote: Vote,
    reply: oneshot::Sender<i64>,
}

fn writer(path: std::path::PathBuf, mut jobs: mpsc::Receiver<Job>) {
    let mut conn = rusqlite::Connection::open(path).expect("open the database");
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS votes (id INTEGER PRIMARY KEY, reporter TEXT NOT NULL, idx INTEGER NOT NULL,
           gender TEXT NOT NULL, age TEXT NOT NULL, has_torn INTEGER NOT NULL, UNIQUE (reporter, idx))",
    )
    .unwrap();
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let tx = conn.transaction().unwrap();
        let mut ids = Vec::with_capacity(batch.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO votes (reporter, idx, gender, age, has_torn) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (reporter, idx) DO UPDATE SET gender = excluded.gender RETURNING id",
                )
                .unwrap();
            for job in &batch {
                let v = &job.vote;
                ids.push(
                    insert
                        .query_row(rusqlite::params![job.reporter, v.index, v.gender, v.age, v.has_torn], |r| r.get(0))
                        .unwrap(),
                );
            }
        }
        tx.commit().unwrap();
        for (job, id) in batch.into_iter().zip(ids) {
            let _ = job.reply.send(id);
        }
    }
}

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("write-ceiling-{}", std::process::id()));
    let path = std::env::args().nth(1).map(Into::into).unwrap_or_else(|| {
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("db.sqlite3")
    });
    let (jobs, receiver) = mpsc::channel::<Job>(4096);
    std::thread::spawn(move || writer(path, receiver));
    let route = warp::path!("api" / "vote")
        .and(warp::post())
        .and(warp::header::<String>("authorization"))
        .and(warp::body::json())
        .then(move |reporter: String, vote: Vote| {
            let jobs = jobs.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                let sent = jobs.send(Job { reporter, vote, reply }).await;
                let id = match (sent, answer.await) {
                    (Ok(()), Ok(id)) => id,
                    _ => return warp::reply::with_status(String::new(), warp::http::StatusCode::SERVICE_UNAVAILABLE),
                };
                warp::reply::with_status(format!(r#"{{"id":"{id}"}}"#), warp::http::StatusCode::CREATED)
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    warp::serve(route).incoming(listener).run().await;
    let _ = std::fs::remove_dir_all(dir);
}
