//! What an election day looks like, drawn from a seed before anything is sent: per office,
//! the voters who pass (and which of them verify), the ballots read at the count, and the
//! reporters with their flaws. The same seed gives the same day; the truth it holds is what
//! the server's totals are checked against at the end.

use rand::distributions::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const GENDERS: [&str; 2] = ["male", "female"];
pub const AGES: [&str; 3] = ["less_30", "less_60", "more_60"];

#[derive(Clone, Debug, PartialEq)]
pub struct Voter {
    pub gender: &'static str,
    pub age: &'static str,
    pub has_torn: bool,
    /// Opens the verification WebSocket before the vote is reported.
    pub verifies: bool,
    /// When the voter passed, in seconds after the polls opened: the day is drawn over
    /// `DAY_SECS` whatever the speed of the run, so simulated offices are not flagged
    /// `fast_voting`. `None` for a voter who verifies: they are in the booth as the vote is
    /// reported, so the report's own time is their passage (a vote observed before a
    /// voter's connection is never offered to them).
    pub passed_at: Option<u32>,
}

/// How long the simulated polls were open, ending when the run starts.
pub const DAY_SECS: u32 = 10 * 3600;

/// How one reporter reports one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Send {
    /// Posted once.
    Once,
    /// Posted, then posted again (a lost answer on a flaky link).
    Twice,
    /// A wrong value first, then the right one (a correction).
    Corrected,
    /// Queued while offline, flushed later in a batch with its observation time.
    Queued,
}

#[derive(Clone, Debug)]
pub struct Reporter {
    pub elector_id: String,
    /// Enrolled as `official` through the admin API (when the simulator has the admin token).
    pub official: bool,
    pub votes: Vec<Send>,
    pub ballots: Vec<Send>,
}

#[derive(Clone, Debug)]
pub struct Office {
    pub id: String,
    pub voters: Vec<Voter>,
    /// The party of each ballot read at the count, in order.
    pub ballots: Vec<String>,
    /// The first reporter never goes offline: it reports every vote live, first.
    pub reporters: Vec<Reporter>,
}

pub struct Params<'a> {
    pub seed: u64,
    /// Distinguishes this run's reporters from an earlier run's.
    pub run: &'a str,
    pub voters: usize,
    pub parties: &'a [String],
    pub verify_share: f64,
    pub officials: bool,
}

pub fn day(offices: &[String], p: &Params) -> Vec<Office> {
    let mut rng = StdRng::seed_from_u64(p.seed);
    offices.iter().enumerate().map(|(i, id)| office(&mut rng, i, id, p)).collect()
}

fn office(rng: &mut StdRng, i: usize, id: &str, p: &Params) -> Office {
    // Voters pass evenly over the day, each within its own slot.
    let slot = DAY_SECS / p.voters.max(1) as u32;
    let voters: Vec<Voter> = (0..p.voters)
        .map(|j| {
            let verifies = rng.gen_bool(p.verify_share);
            let passed_at = j as u32 * slot + rng.gen_range(0..slot.max(1));
            Voter {
                gender: GENDERS[rng.gen_range(0..2)],
                age: AGES[rng.gen_range(0..3)],
                has_torn: rng.gen_bool(0.05),
                verifies,
                passed_at: (!verifies).then_some(passed_at),
            }
        })
        .collect();
    // Turnout at the count: a few voters' ballots are spoiled or not read.
    let n_ballots = voters.len() - voters.len() / 20;
    // Parties listed first get more ballots, so results have a clear order.
    let weights =
        WeightedIndex::new((0..p.parties.len()).map(|i| (p.parties.len() - i) * 2 + 1)).expect("at least one party");
    let ballots = (0..n_ballots).map(|_| p.parties[rng.sample(&weights)].clone()).collect();
    let n_reporters = rng.gen_range(1..=3);
    let reporters = (0..n_reporters)
        .map(|k| {
            let offline = k > 0 && rng.gen_bool(0.4);
            Reporter {
                elector_id: format!("SIM-{}-{i}-{k}", p.run),
                official: p.officials && k == 0,
                votes: sends(rng, voters.len(), offline),
                ballots: sends(rng, n_ballots, offline),
            }
        })
        .collect();
    Office { id: id.to_owned(), voters, ballots, reporters }
}

/// A reporter's flaws over `n` items: resends and corrections, and for one that goes
/// offline, a stretch of queued items.
fn sends(rng: &mut StdRng, n: usize, offline: bool) -> Vec<Send> {
    let mut out: Vec<Send> = (0..n)
        .map(|_| match rng.gen_range(0..100) {
            0..=9 => Send::Twice,
            10..=14 => Send::Corrected,
            _ => Send::Once,
        })
        .collect();
    if offline && n > 0 {
        let start = rng.gen_range(0..n);
        let end = (start + rng.gen_range(1..=n.div_ceil(2))).min(n);
        out[start..end].fill(Send::Queued);
    }
    out
}

/// A wrong value for a correction to fix.
pub fn wrong(v: &Voter) -> (&'static str, &'static str) {
    let gender = if v.gender == "male" { "female" } else { "male" };
    let age = if v.age == "less_30" { "more_60" } else { "less_30" };
    (gender, age)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(parties: &'a [String]) -> Params<'a> {
        Params { seed: 7, run: "r", voters: 200, parties, verify_share: 0.2, officials: true }
    }

    #[test]
    fn the_same_seed_draws_the_same_day() {
        let parties = vec!["PA".to_owned(), "PB".to_owned()];
        let offices = vec!["A".to_owned(), "B".to_owned()];
        let (a, b) = (day(&offices, &params(&parties)), day(&offices, &params(&parties)));
        assert_eq!(a[1].voters, b[1].voters);
        assert_eq!(a[1].ballots, b[1].ballots);
    }

    #[test]
    fn a_day_has_every_flaw_and_a_first_reporter_that_never_goes_offline() {
        let parties = vec!["PA".to_owned(), "PB".to_owned(), "PC".to_owned()];
        let offices: Vec<String> = (0..30).map(|i| format!("O-{i}")).collect();
        let day = day(&offices, &params(&parties));
        let all: Vec<Send> = day.iter().flat_map(|o| o.reporters.iter().flat_map(|r| r.votes.clone())).collect();
        for s in [Send::Once, Send::Twice, Send::Corrected, Send::Queued] {
            assert!(all.contains(&s), "{s:?}");
        }
        for o in &day {
            assert!((1..=3).contains(&o.reporters.len()));
            assert!(!o.reporters[0].votes.contains(&Send::Queued));
            assert!(o.reporters[0].official && o.reporters[1..].iter().all(|r| !r.official));
            assert_eq!(o.ballots.len(), 190);
            assert!(o.ballots.iter().all(|b| parties.contains(b)));
        }
        let verifying = day.iter().flat_map(|o| &o.voters).filter(|v| v.verifies).count();
        assert!((900..1500).contains(&verifying), "{verifying}");
        // Passage times spread over the day: never more than 10 within a minute.
        for o in &day {
            let times: Vec<u32> = o.voters.iter().filter_map(|v| v.passed_at).collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]), "in order");
            assert!(times.windows(11).all(|w| w[10] - w[0] >= 60), "no fast_voting");
            assert!(times.iter().all(|t| *t < DAY_SECS));
        }
    }

    #[test]
    fn a_correction_starts_from_another_value() {
        for gender in GENDERS {
            for age in AGES {
                let v = Voter { gender, age, has_torn: false, verifies: false, passed_at: None };
                let (g, a) = wrong(&v);
                assert!(g != gender && a != age);
            }
        }
    }
}
