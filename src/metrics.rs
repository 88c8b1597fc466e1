//! Counters for `GET /metrics` (Prometheus text format). Plain atomics: the hot paths only
//! increment, the scrape reads.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::route::Route;

const STATUSES: [u16; 16] = [200, 201, 304, 400, 401, 403, 404, 405, 409, 413, 429, 500, 503, 101, 204, 0];

/// Commit latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; Route::ALL.len()],
    commits: AtomicU64,
    writes: AtomicU64,
    commit_failures: AtomicU64,
    /// Set when a commit fails, cleared by the next one that succeeds (for /healthz).
    last_commit_failed: AtomicBool,
    commit_micros: AtomicU64,
    commit_buckets: [AtomicU64; BUCKETS.len()],
    pub rate_limited: AtomicU64,
    pub auth_failures: AtomicU64,
    pub sts_calls: AtomicU64,
    pub sts_failures: AtomicU64,
    pub ws_connections: AtomicU64,
    pub ws_waiting: AtomicU64,
    /// Reporter tokens held in memory (expired ones leave within a minute).
    pub tokens: AtomicU64,
    follow_failures: AtomicU64,
    /// Set while following other processes' commits fails (for /healthz).
    follow_failing: AtomicBool,
}

impl Metrics {
    pub fn request(&self, route: Route, status: u16) {
        let s = STATUSES.iter().position(|s| *s == status).unwrap_or(STATUSES.len() - 1);
        self.requests[route.index()][s].fetch_add(1, Relaxed);
    }

    pub fn commit(&self, writes: u64, took: Duration) {
        self.commits.fetch_add(1, Relaxed);
        self.last_commit_failed.store(false, Relaxed);
        self.writes.fetch_add(writes, Relaxed);
        self.commit_micros.fetch_add(took.as_micros() as u64, Relaxed);
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.commit_buckets[i].fetch_add(1, Relaxed);
            }
        }
    }

    pub fn commit_failed(&self) {
        self.commit_failures.fetch_add(1, Relaxed);
        self.last_commit_failed.store(true, Relaxed);
    }

    pub fn last_commit_ok(&self) -> bool {
        !self.last_commit_failed.load(Relaxed)
    }

    /// How the last attempt to follow other processes' commits went.
    pub fn follow(&self, ok: bool) {
        if !ok {
            self.follow_failures.fetch_add(1, Relaxed);
        }
        self.follow_failing.store(!ok, Relaxed);
    }

    pub fn follow_ok(&self) -> bool {
        !self.follow_failing.load(Relaxed)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP ufrecs_requests_total HTTP requests by route and status.\n# TYPE ufrecs_requests_total counter\n",
        );
        for (r, route) in Route::ALL.iter().map(|r| r.label()).enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                let n = self.requests[r][s].load(Relaxed);
                if n > 0 {
                    let status = if *status == 0 { "other".to_owned() } else { status.to_string() };
                    let _ = writeln!(out, "ufrecs_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
                }
            }
        }
        let commits = self.commits.load(Relaxed);
        let counters = [
            ("ufrecs_commits_total", "Committed write transactions.", commits),
            (
                "ufrecs_writes_total",
                "Write operations committed (writes / commits = mean group size).",
                self.writes.load(Relaxed),
            ),
            (
                "ufrecs_commit_failures_total",
                "Write transactions that failed to commit.",
                self.commit_failures.load(Relaxed),
            ),
            ("ufrecs_rate_limited_total", "Requests refused with 429.", self.rate_limited.load(Relaxed)),
            ("ufrecs_auth_failures_total", "Failed authentications.", self.auth_failures.load(Relaxed)),
            ("ufrecs_sts_calls_total", "AssumeRole calls.", self.sts_calls.load(Relaxed)),
            ("ufrecs_sts_failures_total", "AssumeRole calls that failed.", self.sts_failures.load(Relaxed)),
            (
                "ufrecs_follow_failures_total",
                "Failed attempts to read another process's commits (retried with a backoff).",
                self.follow_failures.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let gauges = [
            ("ufrecs_ws_connections", "Open verification WebSocket connections.", self.ws_connections.load(Relaxed)),
            ("ufrecs_ws_waiting_voters", "Voters waiting for a vote.", self.ws_waiting.load(Relaxed)),
            ("ufrecs_tokens", "Reporter tokens held in memory.", self.tokens.load(Relaxed)),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out.push_str("# HELP ufrecs_commit_seconds Commit latency.\n# TYPE ufrecs_commit_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ =
                writeln!(out, "ufrecs_commit_seconds_bucket{{le=\"{le}\"}} {}", self.commit_buckets[i].load(Relaxed));
        }
        let _ = writeln!(out, "ufrecs_commit_seconds_bucket{{le=\"+Inf\"}} {commits}");
        let _ = writeln!(out, "ufrecs_commit_seconds_sum {}", self.commit_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "ufrecs_commit_seconds_count {commits}");
        out
    }
}

/// The replication gauges (printed when replication is configured).
pub fn replication(h: &crate::domain::replication::Health) -> String {
    use crate::domain::replication::State;
    format!(
        "# HELP ufrecs_replication_lag_seconds Time between the newest commit and the newest transaction the replica holds.\n\
         # TYPE ufrecs_replication_lag_seconds gauge\nufrecs_replication_lag_seconds {}\n\
         # HELP ufrecs_replication_up Whether Litestream runs and replicates this database.\n\
         # TYPE ufrecs_replication_up gauge\nufrecs_replication_up {}\n",
        h.lag_secs,
        u8::from(h.state != State::Stopped)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_and_writes_are_counted_apart() {
        let m = Metrics::default();
        m.commit(3, Duration::from_millis(2));
        m.commit(1, Duration::from_millis(2));
        let text = m.render();
        assert!(text.contains("ufrecs_commits_total 2\n"));
        assert!(text.contains("ufrecs_writes_total 4\n"));
    }

    #[test]
    fn replication_gauges_say_the_lag_and_whether_litestream_runs() {
        use crate::domain::replication::{Health, State};
        let text = replication(&Health { state: State::Stopped, lag_secs: 2.5 });
        assert!(text.contains("ufrecs_replication_lag_seconds 2.5\n") && text.contains("ufrecs_replication_up 0\n"));
        assert!(replication(&Health { state: State::Behind, lag_secs: 0.0 }).contains("ufrecs_replication_up 1\n"));
    }
}
