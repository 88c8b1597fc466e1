//! What the simulator measured: per endpoint, the answers by status, network errors and
//! latencies, printed as one table.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

#[derive(Default)]
struct Series {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    network_errors: u64,
}

/// Shared by every simulated client; each record is a few instructions under the lock.
#[derive(Default)]
pub struct Recorder {
    series: Mutex<BTreeMap<&'static str, Series>>,
}

impl Recorder {
    /// One answer (`Some(status)`) or one request that got no answer (`None`).
    pub fn record(&self, endpoint: &'static str, status: Option<u16>, took: Duration) {
        let mut all = self.series.lock();
        let s = all.entry(endpoint).or_default();
        match status {
            Some(code) => {
                *s.statuses.entry(code).or_default() += 1;
                s.latencies_us.push(took.as_micros() as u64);
            }
            None => s.network_errors += 1,
        }
    }

    /// Answers other than 101 (a WebSocket upgrade), 2xx and 304, and requests without an
    /// answer, over every endpoint.
    pub fn failures(&self) -> u64 {
        self.series
            .lock()
            .values()
            .map(|s| {
                s.network_errors
                    + s.statuses
                        .iter()
                        .filter(|(c, _)| !matches!(**c, 101 | 200..=299 | 304))
                        .map(|(_, n)| n)
                        .sum::<u64>()
            })
            .sum()
    }

    pub fn table(&self, elapsed: Duration) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>9} {:>9} {:>9}  statuses",
            "endpoint", "requests", "req/s", "p50 ms", "p99 ms"
        );
        for (name, s) in self.series.lock().iter_mut() {
            s.latencies_us.sort_unstable();
            let n: u64 = s.statuses.values().sum::<u64>() + s.network_errors;
            let statuses: Vec<String> = s
                .statuses
                .iter()
                .map(|(c, n)| format!("{c}:{n}"))
                .chain((s.network_errors > 0).then(|| format!("no answer:{}", s.network_errors)))
                .collect();
            let _ = writeln!(
                out,
                "{name:<28} {n:>8} {:>9.1} {:>9.2} {:>9.2}  {}",
                n as f64 / elapsed.as_secs_f64().max(1e-9),
                percentile(&s.latencies_us, 0.50) as f64 / 1e3,
                percentile(&s.latencies_us, 0.99) as f64 / 1e3,
                statuses.join(" ")
            );
        }
        out
    }
}

/// The `q` quantile of sorted values (nearest rank), 0 when there are none.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn failures_count_errors_and_missing_answers_but_not_304s() {
        let r = Recorder::default();
        let ms = Duration::from_millis(1);
        r.record("vote", Some(201), ms);
        r.record("vote", Some(200), ms);
        r.record("ws connect", Some(101), ms);
        r.record("stats", Some(304), ms);
        r.record("stats", Some(503), ms);
        r.record("stats", None, ms);
        assert_eq!(r.failures(), 2);
        let table = r.table(Duration::from_secs(1));
        assert!(table.contains("503:1") && table.contains("no answer:1"), "{table}");
    }
}
