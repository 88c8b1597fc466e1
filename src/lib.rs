//! UFRECS: the backend citizen election observers rely on.
//!
//! Reporters' phones post every voter's passage (`/api/vote/`) and every ballot read at
//! the count (`/api/votingpaperresult/`); several reporters may cover one office, and
//! their proposals are cross-checked into accepted values; the public reads live
//! statistics and results per office.
//!
//! The layout, by what each module owns:
//! - `domain`: the rules, pure and unit-tested: identifiers, inputs, cross-checking with
//!   trust tiers, audit hashing, timestamps.
//! - `store`: the SQLite file (WAL). `store::ops::apply` performs a write operation in a
//!   transaction; `store::writer` is the single writer thread that group-commits them;
//!   `store::reads` loads state and serves the few SQL reads.
//! - `stats`: the in-memory aggregates and pre-rendered public bodies, changed only after
//!   a commit, rebuilt from the tables at start.
//! - `auth`: tokens, argon2id passwords, rate limits.
//! - `http`: the route table, filters, handlers and the one error shape.
//! - `s3`: what reporters are told about their upload folder and credentials.
//! - `import`: directory CSV files parsed into rows (stored by a write operation).
//! - `backup`: consistent online copies of the database, locally or to S3.
//! - `check`: integrity, accepted values and the audit chain of a database file.
//! - `simulate`: `ufrecs simulate`, an election day played against a running server.
//! - `follow`: noticing the CLI's commits to the same file and reloading what they touched.
//! - `config`, `clock`, `metrics`, `app` (wiring), `cli` (the `ufrecs` command).
//!
//! The write path: handler -> `WriteOp` -> writer thread (one transaction for whatever is
//! queued, a savepoint each) -> commit -> effects into `stats` and `auth::tokens` -> reply.
//! The read path: stats and results come from memory; nothing public queries SQL per request
//! except the audit pages.

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
pub mod route;
pub mod s3;
pub mod simulate;
pub mod stats;
pub mod store;
pub mod ws;
