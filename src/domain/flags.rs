//! Quality flags (spec section 6b): signs that an office's figures deserve a second look.
//! `flags` decides them from an office's figures; `Density` keeps, incrementally, whether
//! more than 10 votes were observed within any 60 seconds.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::time;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    pub code: &'static str,
    pub message: String,
}

impl Flag {
    pub fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message})
    }
}

/// What the flags are decided from: counted votes and ballots of one office.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    pub votes: i64,
    pub disputed: i64,
    /// The highest index of a counted vote.
    pub max_index: Option<u32>,
    pub ballots: i64,
    /// Registered voters, when the directory knows them.
    pub registered: Option<i64>,
    /// More than `FAST_VOTES` votes observed within `FAST_WINDOW_SECS`.
    pub fast: bool,
}

/// Whether a vote's first report is a sign of when the voter passed: a single live post
/// (not a batch item) at least `TIMED_GAP_SECS` after the same source's previous logged vote
/// report at that office. A phone flushing a queue of failed posts one after the other
/// (the earlier reporter app, without `observed_at`) reports no passage times, so a resend
/// never raises `fast_voting`. Decided on the log's second-precision times.
pub fn timed_report(in_batch: bool, previous: Option<&str>, now: &str) -> bool {
    if in_batch {
        return false;
    }
    let Some(previous) = previous.and_then(time::parse) else { return true };
    time::parse(now).is_none_or(|now| (now - previous).num_seconds() >= TIMED_GAP_SECS)
}

pub const TIMED_GAP_SECS: i64 = 2;
pub const FAST_VOTES: u32 = 10;
pub const FAST_WINDOW_SECS: i64 = 60;
const DISPUTE_MIN_VOTES: i64 = 20;

/// The flags of an office, in the spec's order.
pub fn flags(f: &Figures) -> Vec<Flag> {
    let mut out = Vec::new();
    let mut flag = |code, message: String| out.push(Flag { code, message });
    if let Some(reg) = f.registered {
        if f.votes > reg {
            flag("votes_exceed_registered", format!("{} votes recorded for {reg} registered voters", f.votes));
        }
    }
    if f.votes > 0 && f.ballots > f.votes {
        flag("ballots_exceed_votes", format!("{} ballots counted for {} votes recorded", f.ballots, f.votes));
    }
    if let Some(reg) = f.registered {
        if f.ballots > reg {
            flag("ballots_exceed_registered", format!("{} ballots counted for {reg} registered voters", f.ballots));
        }
    }
    if f.fast {
        flag("fast_voting", format!("more than {FAST_VOTES} votes observed within {FAST_WINDOW_SECS} seconds"));
    }
    // More than 20 % disputed, in integers: disputed / votes > 1 / 5.
    if f.votes >= DISPUTE_MIN_VOTES && f.disputed * 5 > f.votes {
        flag("high_dispute_rate", format!("{} of {} votes disputed", f.disputed, f.votes));
    }
    // The highest index exceeds the votes by more than 10 %: max > votes * 1.1.
    if let Some(max) = f.max_index {
        if i64::from(max) * 10 > f.votes * 11 {
            flag("index_gaps", format!("highest index {max} for {} votes recorded", f.votes));
        }
    }
    out
}

/// Observation times (whole seconds) of an office's counted votes, and whether any window
/// of `FAST_WINDOW_SECS` seconds holds more than `FAST_VOTES` of them.
///
/// The densest window can always start at an observed second, so only windows starting
/// at one are checked: a change at `t` re-counts the windows starting in the minute before
/// `t`, and remembers the too-dense ones (normally none). Seconds are kept as u32 after
/// 2020 with a count each: about 15 bytes a vote, in a tree, so that times arriving in any
/// order cost a logarithmic insertion (a sorted vector would make a reversed flood
/// quadratic).
#[derive(Clone, Debug, Default)]
pub struct Density {
    /// Second -> votes observed in it.
    seconds: BTreeMap<u32, u32>,
    /// Seconds starting a window with more than `FAST_VOTES` votes.
    dense: BTreeSet<u32>,
}

/// Observation times are kept as u32 seconds after it.
const EPOCH: i64 = time::COMPACT_EPOCH;
const WINDOW: u32 = FAST_WINDOW_SECS as u32;

impl Density {
    pub fn fast(&self) -> bool {
        !self.dense.is_empty()
    }

    fn key(t: i64) -> u32 {
        (t - EPOCH).clamp(0, i64::from(u32::MAX - WINDOW)) as u32
    }

    /// Re-decides the windows that contain second `t` (and forgets `t` as a start if no
    /// vote is left in it).
    fn recount(&mut self, t: u32) {
        let Density { seconds, dense } = self;
        if !seconds.contains_key(&t) {
            dense.remove(&t);
        }
        for (&s, _) in seconds.range(t.saturating_sub(WINDOW - 1)..=t) {
            let votes: u32 = seconds.range(s..s + WINDOW).map(|(_, c)| c).sum();
            if votes > FAST_VOTES {
                dense.insert(s);
            } else {
                dense.remove(&s);
            }
        }
    }

    pub fn add(&mut self, t: i64) {
        let t = Self::key(t);
        *self.seconds.entry(t).or_insert(0) += 1;
        self.recount(t);
    }

    /// Rebuilds the tree of seconds in bulk, with full nodes (after the start-up rebuild).
    pub fn compact(&mut self) {
        self.seconds = std::mem::take(&mut self.seconds).into_iter().collect();
    }

    /// Removes one vote observed at `t` (which must have been added).
    pub fn remove(&mut self, t: i64) {
        let t = Self::key(t);
        let Some(count) = self.seconds.get_mut(&t) else { return };
        *count -= 1;
        if *count == 0 {
            self.seconds.remove(&t);
        }
        self.recount(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_post_spaced_from_the_sources_last_report_is_a_passage_time() {
        let at = "2025-08-15T14:00:10Z";
        assert!(timed_report(false, None, at), "its first report here");
        assert!(timed_report(false, Some("2025-08-15T14:00:08Z"), at), "2 s after the last");
        assert!(!timed_report(false, Some("2025-08-15T14:00:09Z"), at), "a queue flushed post after post");
        assert!(!timed_report(false, Some(at), at));
        assert!(!timed_report(true, None, at), "a batch item");
        assert!(timed_report(false, Some("2025-08-15T13:00:00Z"), at));
    }

    fn codes(f: &Figures) -> Vec<&'static str> {
        flags(f).into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn each_flag_has_its_threshold() {
        let ok = Figures {
            votes: 100,
            disputed: 20,
            max_index: Some(110),
            ballots: 100,
            registered: Some(100),
            fast: false,
        };
        assert!(codes(&ok).is_empty(), "{:?}", flags(&ok));
        assert_eq!(codes(&Figures { votes: 101, max_index: Some(101), ..ok }), ["votes_exceed_registered"]);
        assert_eq!(codes(&Figures { ballots: 101, ..ok }), ["ballots_exceed_votes", "ballots_exceed_registered"]);
        assert_eq!(codes(&Figures { registered: None, ballots: 101, ..ok }), ["ballots_exceed_votes"]);
        assert_eq!(codes(&Figures { fast: true, ..ok }), ["fast_voting"]);
        assert_eq!(codes(&Figures { disputed: 21, ..ok }), ["high_dispute_rate"]);
        assert_eq!(codes(&Figures { max_index: Some(111), ..ok }), ["index_gaps"]);
        // Few votes: no dispute rate; ballots without votes recorded: no comparison.
        let small = Figures { votes: 19, disputed: 19, max_index: Some(19), ..Figures::default() };
        assert!(codes(&small).is_empty());
        assert!(codes(&Figures { ballots: 5, ..Figures::default() }).is_empty());
    }

    /// The brute-force answer: any 11 times within a span of 59 seconds.
    fn brute(times: &[i64]) -> bool {
        let mut t = times.to_vec();
        t.sort();
        t.windows(FAST_VOTES as usize + 1).any(|w| w[FAST_VOTES as usize] - w[0] < FAST_WINDOW_SECS)
    }

    #[test]
    fn eleven_votes_within_sixty_seconds_are_fast_and_removing_one_clears_it() {
        let mut d = Density::default();
        let t0 = 1_755_266_531; // 2025-08-15T14:02:11Z
        let times: Vec<i64> = (0..11).map(|i| t0 + i * 5).collect(); // 0..=50 s
        for t in &times {
            d.add(*t);
        }
        assert!(d.fast());
        d.remove(t0 + 50);
        assert!(!d.fast());
        d.add(t0 + 59);
        assert!(d.fast(), "0 and 59 are within one window of 60 s");
        d.remove(t0 + 59);
        d.add(t0 + 60);
        assert!(!d.fast(), "0 and 60 are not");
    }

    #[test]
    fn the_incremental_answer_matches_brute_force() {
        // A deterministic pseudo-random walk of additions and removals.
        let mut seed: u64 = 7;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        let mut d = Density::default();
        let mut times: Vec<i64> = Vec::new();
        for _ in 0..3000 {
            if !times.is_empty() && next() % 3 == 0 {
                let i = (next() as usize) % times.len();
                d.remove(times.swap_remove(i));
            } else {
                let t = EPOCH + next() % 400;
                times.push(t);
                d.add(t);
            }
            assert_eq!(d.fast(), brute(&times), "{times:?}");
        }
    }
}
