//! The replication lag (section 10 of the contract): how far the replica Litestream keeps
//! in S3 is behind the database, judged from what the server observed. Pure: the monitor
//! (`crate::replication`) gathers the observations.
//!
//! The lag is how long the oldest commit the replica lacks has waited: 0 while the
//! replica holds the newest commit (an idle, replicated box), growing while Litestream is
//! down or S3 unreachable. The replica's newest transaction is dated by its newest LTX
//! file, whose header carries the time Litestream read it from the WAL (the box's own
//! clock, the one commits are timed with): a transaction committed before that time is in
//! that file or an earlier one.

use serde::Serialize;

/// Beyond this lag the replica is `behind` (Litestream syncs every second).
pub const BEHIND_AFTER_MS: i64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Replication is not configured.
    Off,
    /// Litestream runs and the replica holds everything up to a few seconds ago.
    Ok,
    /// Litestream runs but the lag is over `BEHIND_AFTER_MS` (S3 slow or unreachable).
    Behind,
    /// Litestream does not run (or does not replicate this database).
    Stopped,
}

/// What the monitor knows, in ms since the epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed {
    /// Litestream answered on its metrics address, naming this database.
    pub litestream_running: bool,
    /// Now, on the clock commits are timed with.
    pub now_ms: i64,
    /// The newest committed transaction; `None` if none is known.
    pub last_commit_ms: Option<i64>,
    /// The first commit since the replica was last seen to hold every commit, if known.
    pub first_pending_ms: Option<i64>,
    /// The oldest committed transaction known (the database's first audit entry): what the
    /// replica may lack while it was never read.
    pub first_commit_ms: Option<i64>,
    /// The time of the replica's newest transaction; `None` while it holds none (or has
    /// not been read yet).
    pub replica_ms: Option<i64>,
    /// The replica's newest transaction id (Litestream's), from its newest file's name.
    pub replica_txid: Option<u64>,
    /// The newest transaction id Litestream has read from the WAL (its metrics'
    /// `litestream_txid`): the replica holds everything only once it holds that one too.
    pub local_txid: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Health {
    pub state: State,
    pub lag_secs: f64,
}

impl Health {
    pub const OFF: Health = Health { state: State::Off, lag_secs: 0.0 };
}

/// The lag and the state the observations give.
pub fn judge(o: &Observed) -> Health {
    // Litestream read more of the WAL than it uploaded (a backlog it sends in parts, each
    // file dated when it was read): the newest file's date does not cover what is missing.
    let uploading = matches!((o.local_txid, o.replica_txid), (Some(local), Some(replica)) if replica < local);
    let lag_ms = match (o.last_commit_ms, o.replica_ms) {
        (None, _) => 0,
        (Some(last), Some(replica)) if last <= replica && !uploading => 0,
        (Some(last), Some(replica)) if last <= replica => o.first_pending_ms.map_or(0, |p| o.now_ms - p),
        // The oldest commit it may lack: the first since it held every commit, and in any
        // case one after what it holds.
        (Some(last), Some(replica)) => o.now_ms - o.first_pending_ms.unwrap_or(replica).max(replica).min(last),
        (Some(last), None) => o.now_ms - o.first_commit_ms.unwrap_or(last).min(last),
    }
    .max(0);
    let state = if !o.litestream_running {
        State::Stopped
    } else if lag_ms > BEHIND_AFTER_MS {
        State::Behind
    } else {
        State::Ok
    };
    Health { state, lag_secs: lag_ms as f64 / 1000.0 }
}

/// An LTX file's header (Litestream 0.5, "LTX1"): 100 bytes, big-endian.
pub const LTX_HEADER_LEN: usize = 100;

/// The timestamp (ms since the epoch) an LTX header carries, or `None` if `header` is
/// not one.
pub fn ltx_timestamp(header: &[u8]) -> Option<i64> {
    if header.len() < LTX_HEADER_LEN || &header[..4] != b"LTX1" {
        return None;
    }
    Some(i64::from_be_bytes(header[32..40].try_into().ok()?))
}

/// The level-0 folder of a replica (`{path}/0000/`), where every sync lands first.
pub fn level0(replica_path: &str) -> String {
    format!("{replica_path}/0000/")
}

/// The newest transaction id an LTX file holds, from its name (`{min txid}-{max
/// txid}.ltx`, 16 hex digits each: names sort as the transactions do); `None` for a key
/// that is not an LTX file's.
pub fn ltx_max_txid(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next().unwrap_or("");
    let (min, max) = name.strip_suffix(".ltx")?.split_once('-')?;
    let hex = |s: &str| {
        (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| u64::from_str_radix(s, 16).ok()).flatten()
    };
    hex(min)?;
    hex(max)
}

/// Litestream's `litestream_txid` for the database its metrics name `label`
/// (`db="/path"`), from its Prometheus text.
pub fn litestream_txid(metrics: &str, label: &str) -> Option<u64> {
    let prefix = format!("litestream_txid{{{label}}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse::<f64>().ok()).map(|v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Observed at 10 s, the database's first entry at 0.
    fn seen(running: bool, last: Option<i64>, pending: Option<i64>, replica: Option<i64>) -> Health {
        judge(&Observed {
            litestream_running: running,
            now_ms: 10_000,
            last_commit_ms: last,
            first_pending_ms: pending,
            first_commit_ms: Some(0),
            replica_ms: replica,
            replica_txid: None,
            local_txid: None,
        })
    }

    #[test]
    fn a_fully_replicated_box_has_no_lag() {
        assert_eq!(seen(true, Some(5_000), None, Some(5_200)), Health { state: State::Ok, lag_secs: 0.0 });
        assert_eq!(seen(true, None, None, None), Health { state: State::Ok, lag_secs: 0.0 }, "nothing committed");
    }

    #[test]
    fn the_lag_is_how_long_the_oldest_missing_commit_waited() {
        // Commits since 8.5 s, the replica holding up to 6 s: the first missing one waited 1.5 s.
        assert_eq!(seen(true, Some(9_900), Some(8_500), Some(6_000)), Health { state: State::Ok, lag_secs: 1.5 });
        // An idle box long replicated, then one commit: only that commit waits.
        assert_eq!(seen(true, Some(9_800), Some(9_800), Some(1_000)).lag_secs, 0.2);
        // Nothing known of the first missing commit: everything after what the replica holds.
        assert_eq!(seen(true, Some(9_800), None, Some(4_000)).lag_secs, 6.0);
        // It grows with time, new commits or not (Litestream down, S3 unreachable).
        let later = judge(&Observed {
            litestream_running: true,
            now_ms: 30_000,
            last_commit_ms: Some(9_000),
            first_pending_ms: Some(8_000),
            first_commit_ms: Some(0),
            replica_ms: Some(7_000),
            replica_txid: None,
            local_txid: None,
        });
        assert_eq!(later, Health { state: State::Behind, lag_secs: 22.0 });
        let never_read = seen(true, Some(3_000), Some(3_000), None);
        assert_eq!((never_read.state, never_read.lag_secs), (State::Ok, 10.0), "the replica was never read");
    }

    #[test]
    fn a_backlog_sent_in_parts_is_not_replicated_until_its_last_part() {
        let o = |replica_txid| Observed {
            litestream_running: true,
            now_ms: 10_000,
            last_commit_ms: Some(9_000),
            first_pending_ms: Some(2_000),
            first_commit_ms: Some(0),
            replica_ms: Some(9_500),
            replica_txid: Some(replica_txid),
            local_txid: Some(40),
        };
        // The first part is dated after every commit, yet 30 more are to come.
        assert_eq!(judge(&o(10)).lag_secs, 8.0);
        assert_eq!(judge(&o(40)).lag_secs, 0.0);
        // Only Litestream's own transactions missing: no commit of ours waits.
        assert_eq!(judge(&Observed { first_pending_ms: None, ..o(39) }).lag_secs, 0.0);
    }

    #[test]
    fn litestreams_position_is_read_from_its_metrics_and_file_names() {
        let text =
            "# TYPE litestream_txid gauge\nlitestream_txid{db=\"/other\"} 3\nlitestream_txid{db=\"/var/db\"} 1234\n";
        assert_eq!(litestream_txid(text, "db=\"/var/db\""), Some(1234));
        assert_eq!(litestream_txid(text, "db=\"/none\""), None);
        assert_eq!(ltx_max_txid("p/0000/0000000000000001-00000000000000ff.ltx"), Some(255));
    }

    #[test]
    fn a_stopped_litestream_is_reported_whatever_the_lag() {
        assert_eq!(seen(false, Some(5_000), None, Some(5_200)).state, State::Stopped);
        assert_eq!(seen(false, Some(9_000), Some(6_000), Some(5_000)), Health { state: State::Stopped, lag_secs: 4.0 });
    }

    #[test]
    fn ltx_headers_give_their_timestamp() {
        let mut h = vec![0u8; LTX_HEADER_LEN];
        h[..4].copy_from_slice(b"LTX1");
        h[32..40].copy_from_slice(&1_796_183_238_954i64.to_be_bytes());
        assert_eq!(ltx_timestamp(&h), Some(1_796_183_238_954));
        assert_eq!(ltx_timestamp(&h[..99]), None);
        h[0] = b'X';
        assert_eq!(ltx_timestamp(&h), None);
    }

    #[test]
    fn only_ltx_names_are_read() {
        assert_eq!(ltx_max_txid("replica/box/0000/0000000000000004-0000000000000004.ltx"), Some(4));
        assert_eq!(ltx_max_txid("replica/box/0000/0000000000000004-0000000000000004.ltx.tmp"), None);
        assert_eq!(ltx_max_txid("replica/box/0000/4-4.ltx"), None);
        assert_eq!(level0("p/replica/b"), "p/replica/b/0000/");
    }
}
