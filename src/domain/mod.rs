//! The domain rules of UFRECS, free of I/O: what a valid identifier, vote or ballot is,
//! how proposals are cross-checked into accepted values, and how the audit log is hashed.
//! Everything here is a pure function with unit tests beside it; `store/` and `http/`
//! call into it and never re-implement a rule.

pub mod audit;
pub mod change;
pub mod crosscheck;
pub mod directory;
pub mod evidence;
pub mod flags;
pub mod ids;
pub mod input;
pub mod note;
pub mod replication;
pub mod source;
pub mod time;
pub mod tlog;
pub mod vote;
