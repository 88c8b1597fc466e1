//! Rate limits on failed authentications (section 4): per client address, a number of
//! failures a minute; per `elector_id`, after N failures within 10 minutes a lock-out of
//! one minute, doubling at each further failure up to 15 minutes. Successes are not
//! limited (many reporters share a carrier's address), but authentications that create a
//! source are, per address. IPv6 addresses count by their /64: one subscriber's prefix
//! holds more addresses than anyone could list. Pure bookkeeping over an injected time, so
//! the rules are tested without waiting.

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

/// The unit an address limit counts: an IPv4 address, or an IPv6 address's /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressKey(u128);

impl AddressKey {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => AddressKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey(u128::from(u32::from(v4))),
                // The /64, tagged apart from every IPv4 key.
                None => AddressKey((u128::from(v6) >> 64) | (1 << 127)),
            },
        }
    }
}

/// Events of each address within the last minute, capped at `per_min`.
struct PerMinute {
    per_min: usize,
    times: Mutex<HashMap<AddressKey, VecDeque<Timestamp>>>,
}

impl PerMinute {
    fn new(per_min: u32) -> Self {
        Self { per_min: per_min.max(1) as usize, times: Mutex::default() }
    }

    fn check(&self, addr: IpAddr, now: Timestamp) -> Result<(), u64> {
        match self.times.lock().get_mut(&AddressKey::of(addr)) {
            Some(times) => {
                prune(times, now - Duration::minutes(1));
                if times.len() >= self.per_min {
                    Err(secs_until(times[0] + Duration::minutes(1), now))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    fn record(&self, addr: IpAddr, now: Timestamp) {
        let mut times = self.times.lock();
        if times.len() > PRUNE_ABOVE {
            times.retain(|_, f| f.back().is_some_and(|t| *t > now - Duration::minutes(1)));
        }
        let mine = times.entry(AddressKey::of(addr)).or_default();
        prune(mine, now - Duration::minutes(1));
        // Never more than the limit kept: a refused address cannot grow its own queue.
        if mine.len() < self.per_min {
            mine.push_back(now);
        }
    }
}

pub struct RateLimits {
    failures_before_lockout: usize,
    failures: PerMinute,
    new_sources: PerMinute,
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
    pub fn new(per_address_per_min: u32, failures_before_lockout: u32, new_sources_per_min: u32) -> Self {
        Self {
            failures_before_lockout: failures_before_lockout.max(1) as usize,
            failures: PerMinute::new(per_address_per_min),
            new_sources: PerMinute::new(new_sources_per_min),
            electors: Mutex::default(),
        }
    }

    /// `Err(retry_after_secs)` when this address created its share of sources this
    /// minute; otherwise counts one more (checked before any password is hashed).
    pub fn new_source(&self, addr: IpAddr, now: Timestamp) -> Result<(), u64> {
        self.new_sources.check(addr, now)?;
        self.new_sources.record(addr, now);
        Ok(())
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
        self.failures.check(addr, now)
    }

    pub fn failed(&self, addr: IpAddr, elector_id: &str, now: Timestamp) {
        self.failures.record(addr, now);
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
        let r = RateLimits::new(1000, 5, 30);
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
        let r = RateLimits::new(3, 100, 30);
        let now = t0();
        for i in 0..3 {
            r.failed(A, &format!("E{i}"), now);
        }
        assert_eq!(r.check_address(A, now), Err(60));
        assert_eq!(r.check_address(B, now), Ok(()));
        assert_eq!(r.check_address(A, now + Duration::seconds(60)), Ok(()));
        let r = RateLimits::new(1000, 2, 30);
        r.failed(A, "E", now);
        r.succeeded("E");
        r.failed(A, "E", now);
        assert_eq!(r.check_elector("E", now), Ok(()));
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let r = RateLimits::new(3, 100, 30);
        let now = t0();
        for i in 0..3u16 {
            let addr: IpAddr = format!("2001:db8:1:2:{i}::{i}").parse().unwrap();
            r.failed(addr, "E", now);
        }
        assert!(r.check_address("2001:db8:1:2:ffff::1".parse().unwrap(), now).is_err());
        assert_eq!(r.check_address("2001:db8:1:3::1".parse().unwrap(), now), Ok(()));
        assert_eq!(AddressKey::of("::ffff:10.0.0.1".parse().unwrap()), AddressKey::of(A));
        assert_ne!(AddressKey::of("::a00:1".parse().unwrap()), AddressKey::of(A));
    }

    #[test]
    fn an_address_creates_a_bounded_number_of_sources_a_minute() {
        let r = RateLimits::new(30, 5, 2);
        let now = t0();
        assert_eq!(r.new_source(A, now), Ok(()));
        assert_eq!(r.new_source(A, now), Ok(()));
        assert_eq!(r.new_source(A, now), Err(60));
        assert_eq!(r.new_source(B, now), Ok(()));
        assert_eq!(r.new_source(A, now + Duration::seconds(60)), Ok(()));
    }
}
