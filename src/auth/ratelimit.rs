//! Rate limits on failed authentications (section 4): per client address, a number of
//! failures a minute; per `elector_id`, after N failures within 10 minutes a lock-out of
//! one minute, doubling at each further failure up to 15 minutes. Successes are not
//! limited (many reporters share a carrier's address). Pure bookkeeping over an injected
//! time, so the rules are tested without waiting.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use chrono::Duration;
use parking_lot::Mutex;

use crate::domain::time::Timestamp;

const ELECTOR_WINDOW_MINUTES: i64 = 10;
const FIRST_LOCKOUT_SECS: i64 = 60;
const MAX_LOCKOUT_SECS: i64 = 15 * 60;
/// Above this many tracked keys, stale ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

pub struct RateLimits {
    per_address_per_min: usize,
    failures_before_lockout: usize,
    addresses: Mutex<HashMap<IpAddr, VecDeque<Timestamp>>>,
    electors: Mutex<HashMap<String, Elector>>,
}

#[derive(Default)]
struct Elector {
    failures: VecDeque<Timestamp>,
    locked_until: Option<Timestamp>,
    /// 1 for the first lock-out, then one more per further failure.
    level: u32,
}

fn secs_until(t: Timestamp, now: Timestamp) -> u64 {
    (t - now).num_seconds().max(1) as u64
}

impl RateLimits {
    pub fn new(per_address_per_min: u32, failures_before_lockout: u32) -> Self {
        Self {
            per_address_per_min: per_address_per_min.max(1) as usize,
            failures_before_lockout: failures_before_lockout.max(1) as usize,
            addresses: Mutex::default(),
            electors: Mutex::default(),
        }
    }

    /// `Err(retry_after_secs)` while this `elector_id` is locked out: it may not try at all.
    pub fn check_elector(&self, elector_id: &str, now: Timestamp) -> Result<(), u64> {
        match self.electors.lock().get(elector_id).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(secs_until(until, now)),
            _ => Ok(()),
        }
    }

    /// `Err(retry_after_secs)` while this address is over its failures for the minute. It
    /// refuses that address's next failures, never its successes: many reporters share a
    /// carrier's address, and one of them guessing must not lock out the others.
    pub fn check_address(&self, addr: IpAddr, now: Timestamp) -> Result<(), u64> {
        match self.addresses.lock().get_mut(&addr) {
            Some(failures) => {
                prune(failures, now - Duration::minutes(1));
                if failures.len() >= self.per_address_per_min {
                    Err(secs_until(failures[0] + Duration::minutes(1), now))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    pub fn failed(&self, addr: IpAddr, elector_id: &str, now: Timestamp) {
        {
            let mut addresses = self.addresses.lock();
            if addresses.len() > PRUNE_ABOVE {
                addresses.retain(|_, f| f.back().is_some_and(|t| *t > now - Duration::minutes(1)));
            }
            addresses.entry(addr).or_default().push_back(now);
        }
        let mut electors = self.electors.lock();
        if electors.len() > PRUNE_ABOVE {
            let horizon = now - Duration::minutes(ELECTOR_WINDOW_MINUTES);
            electors.retain(|_, e| {
                e.failures.back().is_some_and(|t| *t > horizon) || e.locked_until.is_some_and(|u| u > now)
            });
        }
        let e = electors.entry(elector_id.to_owned()).or_default();
        let horizon = now - Duration::minutes(ELECTOR_WINDOW_MINUTES);
        prune(&mut e.failures, horizon);
        e.failures.push_back(now);
        // A failure within 10 minutes of the last lock-out's end escalates it.
        if e.level > 0 && e.locked_until.is_some_and(|u| u > horizon) {
            e.level += 1;
        } else if e.failures.len() >= self.failures_before_lockout {
            e.level = 1;
        } else {
            return;
        }
        let secs = FIRST_LOCKOUT_SECS.saturating_mul(1 << (e.level - 1).min(10)).min(MAX_LOCKOUT_SECS);
        e.locked_until = Some(now + Duration::seconds(secs));
    }

    /// A success forgets that `elector_id`'s failures.
    pub fn succeeded(&self, elector_id: &str) {
        self.electors.lock().remove(elector_id);
    }
}

fn prune(times: &mut VecDeque<Timestamp>, older_than: Timestamp) {
    while times.front().is_some_and(|t| *t <= older_than) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time;

    fn t0() -> Timestamp {
        time::parse("2025-08-15T14:00:00Z").unwrap()
    }
    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn an_elector_is_locked_out_after_five_failures_with_doubling_lockouts() {
        let r = RateLimits::new(1000, 5);
        let now = t0();
        for _ in 0..4 {
            r.failed(A, "E", now);
        }
        assert_eq!(r.check_elector("E", now), Ok(()));
        r.failed(A, "E", now);
        assert_eq!(r.check_elector("E", now), Err(60));
        assert_eq!(r.check_elector("F", now), Ok(()));
        let later = now + Duration::seconds(61);
        assert_eq!(r.check_elector("E", later), Ok(()));
        r.failed(A, "E", later);
        assert_eq!(r.check_elector("E", later), Err(120));
        let mut t = later;
        for expected in [240, 480, 900, 900] {
            t += Duration::seconds(r.check_elector("E", t).unwrap_err() as i64);
            r.failed(A, "E", t);
            assert_eq!(r.check_elector("E", t), Err(expected));
        }
        // Quiet for more than 10 minutes after the lock-out: one failure is just one again.
        t += Duration::seconds(900 + 601);
        r.failed(A, "E", t);
        assert_eq!(r.check_elector("E", t), Ok(()));
    }

    #[test]
    fn an_address_is_limited_per_minute_and_a_success_clears_an_elector() {
        let r = RateLimits::new(3, 100);
        let now = t0();
        for i in 0..3 {
            r.failed(A, &format!("E{i}"), now);
        }
        assert_eq!(r.check_address(A, now), Err(60));
        assert_eq!(r.check_address(B, now), Ok(()));
        assert_eq!(r.check_address(A, now + Duration::seconds(60)), Ok(()));
        let r = RateLimits::new(1000, 2);
        r.failed(A, "E", now);
        r.succeeded("E");
        r.failed(A, "E", now);
        assert_eq!(r.check_elector("E", now), Ok(()));
    }
}
