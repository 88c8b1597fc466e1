//! The one integration test binary: black-box tests against the real server (in this
//! process on port 0, or the real binary where a process must die), a real SQLite file in
//! a temp dir, and a real HTTP client.

mod helpers;

mod admin;
mod attacks;
mod audit;
mod auth;
mod backup;
mod bad_input;
mod batch;
mod check;
mod cli;
mod compat;
mod concurrency;
mod directory;
mod durability;
mod earlier_apps;
mod faults;
mod flags;
mod nginx;
mod page;
mod parsing;
mod property;
mod replication;
mod s3;
mod startup;
mod tlog;
mod votes;
mod ws;
