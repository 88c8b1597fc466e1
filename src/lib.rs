//! UFRECS: the backend citizen election observers rely on.
//!
//! Reporters' phones post every voter's passage (`/api/vote/`) and every ballot read at
//! the count (`/api/votingpaperresult/`); several reporters may cover one office, and
//! their proposals are cross-checked into accepted values; the public reads live
//! statistics and results per office.
//!
//! The layout, by what each module owns:
//! - `domain`: the rules, pure and unit-tested: identifiers, inputs, cross-checking with
//!   trust tiers, flags and observation times, audit hashing, timestamps, privacy (the
//!   voter's keyed hash, public names); the change feed (`domain::change`: what a commit
//!   changed, as typed rows) and the directory (`domain::directory`).
//! - `store`: the SQLite file (WAL), the only module that touches rusqlite.
//!   `store::ops::apply` performs a write operation in a transaction; `store::writer` is
//!   the single writer thread that group-commits them and answers in types;
//!   `store::reads` loads state and serves the few SQL reads, through `store::Reader`.
//! - `stats`: the in-memory aggregates and pre-rendered public bodies, changed only after
//!   a commit, rebuilt from the tables at start.
//! - `auth`: tokens, argon2id passwords, rate limits.
//! - `ws`: the verification WebSocket's hub (a state machine) and its actor.
//! - `route`: the route table (labels, methods, paths), read by `http` and `metrics`.
//! - `http`: the filters, handlers and the one error shape; `http::server` serves `App`.
//! - `s3`: what reporters are told about their upload folder and credentials.
//! - `import`: directory CSV files parsed into rows (stored by a write operation).
//! - `backup`: consistent online copies of the database, locally or to S3.
//! - `check`: integrity, accepted values and the audit chain of a database file.
//! - `simulate`: `ufrecs simulate`, a client: an election day played against a running
//!   server, over HTTP and the WebSocket only (it imports nothing of the server's).
//! - `follow`: noticing other processes' commits to the same file and having the writer
//!   reload what they touched.
//! - `config`, `clock`, `metrics`, `app` (the state and its wiring), `cli` (the `ufrecs`
//!   command).
//!
//! Dependencies point one way: `http` -> `app` -> `store`, `stats`, `ws`, `auth`,
//! `follow`; `stats`, `ws` and `auth` know the domain, never the store.
//!
//! The write path: handler -> `WriteOp` -> writer thread (one transaction for whatever is
//! queued, a savepoint each) -> commit -> `app::Committed::apply` -> stats / tokens / hub
//! -> reply. The read path: stats and results come from memory; nothing public queries SQL
//! per request except the audit pages.

pub mod app;
pub mod auth;
pub mod backup;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod follow;
pub mod http;
pub mod import;
pub mod metrics;
pub mod mirror;
pub mod replication;
pub mod route;
pub mod s3;
pub mod secret_file;
pub mod simulate;
pub mod stats;
pub mod store;
pub mod transparency;
pub mod witness;
pub mod ws;
