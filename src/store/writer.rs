//! The single writer. One thread owns the write connection; requests hand it operations
//! over a bounded channel and wait for the commit. Whatever is queued when the thread
//! wakes is applied in one transaction (group commit), each operation in its own savepoint
//! so a bad request fails alone (a deterministic SQL error included: only a fault of the
//! database itself fails the whole group). Only after the commit succeeds are the effects handed to
//! the sink (the in-memory state) and the requests answered; if the commit fails, every
//! request in it is answered `Unavailable` and nothing changes.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::ops::{apply, apply_with, Authentication, Cache, OpError, Outcome, Proposal, SourceRecord, WriteOp};
use crate::clock::Clock;
use crate::domain::change::Effect;
use crate::metrics::Metrics;

/// The most operations committed together.
const MAX_BATCH: usize = 512;
const QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Op(OpError),
    /// The database could not commit (or the writer is gone): retry later.
    #[error("the database cannot commit now")]
    Unavailable,
}

struct Job {
    ops: Vec<WriteOp>,
    reply: oneshot::Sender<Vec<Result<Outcome, WriteError>>>,
}

/// Where committed effects go (the in-memory aggregates, tokens, waiters).
pub type Sink = Box<dyn FnMut(&[Effect]) + Send>;

#[derive(Clone)]
pub struct Writer {
    sender: mpsc::Sender<Job>,
}

/// A handle that does not keep the writer alive: the writer stops once every `Writer`
/// is dropped, whoever still holds one of these.
#[derive(Clone)]
pub struct WeakWriter(mpsc::WeakSender<Job>);

impl WeakWriter {
    pub fn upgrade(&self) -> Option<Writer> {
        self.0.upgrade().map(|sender| Writer { sender })
    }
}

impl Writer {
    pub fn downgrade(&self) -> WeakWriter {
        WeakWriter(self.sender.downgrade())
    }

    pub fn start(
        conn: Connection,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        sink: Sink,
    ) -> (Writer, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let handle = std::thread::Builder::new()
            .name("ufrecs-writer".into())
            .spawn(move || run(conn, receiver, clock, metrics, sink))
            .expect("spawn the writer thread");
        (Writer { sender }, handle)
    }

    /// Performs one operation and waits for its commit.
    async fn submit(&self, op: WriteOp) -> Result<Outcome, WriteError> {
        self.submit_all(vec![op]).await.pop().unwrap_or(Err(WriteError::Unavailable))
    }

    /// A vote or ballot proposal.
    pub async fn propose(&self, op: WriteOp) -> Result<Proposal, WriteError> {
        self.submit(op).await.map(Outcome::proposal)
    }

    /// Proposals in order, in one commit (a batch).
    pub async fn propose_all(&self, ops: Vec<WriteOp>) -> Vec<Result<Proposal, WriteError>> {
        self.submit_all(ops).await.into_iter().map(|r| r.map(Outcome::proposal)).collect()
    }

    pub async fn authenticate(&self, op: super::ops::AuthOp) -> Result<Authentication, WriteError> {
        self.submit(WriteOp::Authenticate(op)).await.map(Outcome::authentication)
    }

    /// Creates or updates a source.
    pub async fn source(&self, op: WriteOp) -> Result<SourceRecord, WriteError> {
        self.submit(op).await.map(Outcome::source)
    }

    /// A voter's verification: the receipt of its log entry.
    pub async fn verify(&self, op: WriteOp) -> Result<crate::domain::change::Receipt, WriteError> {
        self.submit(op).await.map(Outcome::verified)
    }

    /// An operation answered by its commit alone (an audit entry).
    pub async fn record(&self, op: WriteOp) -> Result<(), WriteError> {
        self.submit(op).await.map(|_| ())
    }

    /// `submit` from a thread outside the async runtime (`follow`).
    pub fn submit_blocking(&self, op: WriteOp) -> Result<Outcome, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.sender.blocking_send(Job { ops: vec![op], reply }).map_err(|_| WriteError::Unavailable)?;
        answer.blocking_recv().ok().and_then(|mut a| a.pop()).unwrap_or(Err(WriteError::Unavailable))
    }

    /// Performs several operations in order, in the same commit, each in its own savepoint.
    async fn submit_all(&self, ops: Vec<WriteOp>) -> Vec<Result<Outcome, WriteError>> {
        let n = ops.len();
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Job { ops, reply }).await.is_err() {
            return (0..n).map(|_| Err(WriteError::Unavailable)).collect();
        }
        answer.await.unwrap_or_else(|_| (0..n).map(|_| Err(WriteError::Unavailable)).collect())
    }
}

fn run(
    mut conn: Connection,
    mut receiver: mpsc::Receiver<Job>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    mut sink: Sink,
) {
    let mut next_prune = clock.now();
    // What the writer remembers of the tables, for the length of its life.
    let mut cache = Cache::default();
    while let Some(first) = receiver.blocking_recv() {
        let mut jobs = vec![first];
        let mut ops = jobs[0].ops.len();
        while ops < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => {
                    ops += job.ops.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        match commit(&mut conn, &jobs, clock.as_ref(), &mut next_prune, &mut cache) {
            Ok((answers, effects)) => {
                metrics.commit(ops as u64, started.elapsed());
                sink(&effects);
                for (job, answer) in jobs.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(e) => {
                cache.forget();
                metrics.commit_failed();
                log::error!("commit of {ops} writes failed: {e}");
                for job in jobs {
                    let _ = job.reply.send(job.ops.iter().map(|_| Err(WriteError::Unavailable)).collect());
                }
            }
        }
    }
}

/// Applies one operation in its own transaction on a connection of this process (the
/// CLI's path: same operation, same audit chain, no writer thread).
pub fn apply_now(conn: &mut Connection, op: &WriteOp, now: crate::domain::time::Timestamp) -> Result<Outcome, OpError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcome = apply(&tx, op, now, &mut Vec::new())?;
    tx.commit()?;
    Ok(outcome)
}

type Answers = Vec<Vec<Result<Outcome, WriteError>>>;

/// Whether an SQL error inside one operation's savepoint can leave the transaction unsafe
/// to commit: I/O errors, a full disk, a lock not obtained, corruption, memory. A
/// deterministic error of that operation alone (a constraint or trigger refused it, a
/// value of an unexpected type) rolls back its savepoint, fails that request only, and
/// lets the others of the group commit.
fn poisons_transaction(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(ConstraintViolation | TypeMismatch | TooBig | ParameterOutOfRange) => false,
        Some(_) => true,
        // Conversions of values read (an integrator's odd row): nothing was written.
        None => !matches!(
            e,
            rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::IntegralValueOutOfRange(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::QueryReturnedNoRows
        ),
    }
}

/// How often expired tokens are deleted (and forgotten by the memory).
const PRUNE_EVERY_SECS: i64 = 60;

fn commit(
    conn: &mut Connection,
    jobs: &[Job],
    clock: &dyn Clock,
    next_prune: &mut crate::domain::time::Timestamp,
    cache: &mut Cache,
) -> rusqlite::Result<(Answers, Vec<Effect>)> {
    let now = clock.now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    cache.begin(&tx)?;
    let mut answers = Vec::with_capacity(jobs.len());
    let mut effects = Vec::new();
    if now >= *next_prune {
        super::ops::prune_tokens(&tx, now, &mut effects)?;
        *next_prune = now + chrono::Duration::seconds(PRUNE_EVERY_SECS);
    }
    for job in jobs {
        let mut job_answers = Vec::with_capacity(job.ops.len());
        for op in &job.ops {
            // Savepoints through cached statements: rusqlite's own parse SQL each time.
            tx.prepare_cached("SAVEPOINT op")?.execute([])?;
            let mut op_effects = Vec::new();
            match apply_with(&tx, op, now, &mut op_effects, cache) {
                Ok(outcome) => {
                    tx.prepare_cached("RELEASE op")?.execute([])?;
                    effects.append(&mut op_effects);
                    job_answers.push(Ok(outcome));
                }
                // A fault of the database itself (I/O, a full disk, a lock) poisons the
                // whole transaction; anything else is this request's alone.
                Err(OpError::Sql(e)) if poisons_transaction(&e) => return Err(e),
                Err(e) => {
                    // What it wrote is undone: so is what the memory learnt from it.
                    cache.forget();
                    tx.prepare_cached("ROLLBACK TO op")?.execute([])?;
                    tx.prepare_cached("RELEASE op")?.execute([])?;
                    job_answers.push(Err(WriteError::Op(e)));
                }
            }
        }
        answers.push(job_answers);
    }
    tx.commit()?;
    Ok((answers, effects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_faults_of_the_database_poison_a_group_commit() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER NOT NULL UNIQUE)").unwrap();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let constraint = conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert!(!poisons_transaction(&constraint), "{constraint}");
        let conversion = conn.query_row("SELECT 'x'", [], |r| r.get::<_, i64>(0)).unwrap_err();
        assert!(!poisons_transaction(&conversion), "{conversion}");
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert!(poisons_transaction(&full));
        let io = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR), None);
        assert!(poisons_transaction(&io));
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(poisons_transaction(&busy));
    }
}
