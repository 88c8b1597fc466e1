//! Cross-checking (section 6): which proposals count at an office, and what is accepted
//! from them. Trust tiers are per office and per kind (votes, ballots): while any trusted
//! source has a proposal of that kind at the office, only trusted sources' proposals
//! count there; otherwise the opportunistic ones do. Each counted proposal weighs 1.0 and
//! the voter's verification 0.5 (integers here: 2 and 1), so a verification breaks ties
//! and reveals disagreement but never overrules a reporter.

use std::collections::HashMap;
use std::hash::Hash;

use super::vote::{Accepted, Decided, VoteAttrs};

/// Whether a proposal by a source counts at an office of the given tier.
pub fn counts(office_has_trusted: bool, source_trusted: bool) -> bool {
    source_trusted || !office_has_trusted
}

/// The number of sources whose proposals count at an office, given how many of the
/// sources with proposals there are trusted.
pub fn counted_sources(trusted: u32, all: u32) -> u32 {
    if trusted > 0 {
        trusted
    } else {
        all
    }
}

const PROPOSAL_WEIGHT: u32 = 2;
const VERIFICATION_WEIGHT: u32 = 1;

/// The value with the highest weight, or `None` on a tie for the highest.
fn weigh<T: Copy + Eq + Hash>(values: impl Iterator<Item = T>, verification: Option<T>) -> Option<T> {
    let mut weights: HashMap<T, u32> = HashMap::new();
    for v in values {
        *weights.entry(v).or_default() += PROPOSAL_WEIGHT;
    }
    if let Some(v) = verification {
        *weights.entry(v).or_default() += VERIFICATION_WEIGHT;
    }
    let best = weights.values().copied().max()?;
    let mut winners = weights.iter().filter(|(_, w)| **w == best).map(|(v, _)| *v);
    let first = winners.next();
    match winners.next() {
        Some(_) => None,
        None => first,
    }
}

fn decided<T: Copy + Eq + Hash>(values: impl Iterator<Item = T>, verification: Option<T>) -> Decided<T> {
    weigh(values, verification).map_or(Decided::Undecided, Decided::Value)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteDecision {
    pub accepted: Accepted,
    pub disputed: bool,
}

/// What is accepted for a vote from its counted proposals and its verification; `None`
/// when no proposal counts (the vote is then not counted, whatever its verification).
pub fn decide_vote(counted: &[VoteAttrs], verification: Option<VoteAttrs>) -> Option<VoteDecision> {
    let first = *counted.first()?;
    let accepted = Accepted {
        gender: decided(counted.iter().map(|p| p.gender), verification.map(|v| v.gender)),
        age: decided(counted.iter().map(|p| p.age), verification.map(|v| v.age)),
        has_torn: weigh(counted.iter().map(|p| p.has_torn), verification.map(|v| v.has_torn)).unwrap_or(false),
    };
    let unanimous = counted.iter().all(|p| *p == first);
    let verification_differs = verification.is_some_and(|v| {
        Decided::Value(v.gender) != accepted.gender
            || Decided::Value(v.age) != accepted.age
            || v.has_torn != accepted.has_torn
    });
    Some(VoteDecision { accepted, disputed: !unanimous || verification_differs })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BallotDecision {
    /// The accepted party, `None` when a tie for most leaves the ballot undecided.
    pub party: Option<String>,
    pub disputed: bool,
}

/// What is accepted for a ballot from its counted proposals; `None` when none counts.
pub fn decide_ballot(counted: &[&str]) -> Option<BallotDecision> {
    let first = *counted.first()?;
    Some(BallotDecision {
        party: weigh(counted.iter().copied(), None).map(str::to_owned),
        disputed: counted.iter().any(|p| *p != first),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::vote::{Age, Gender};

    fn attrs(gender: Gender, age: Age, has_torn: bool) -> VoteAttrs {
        VoteAttrs { gender, age, has_torn }
    }
    const M30: VoteAttrs = VoteAttrs { gender: Gender::Male, age: Age::Less30, has_torn: false };
    const F60: VoteAttrs = VoteAttrs { gender: Gender::Female, age: Age::Less60, has_torn: true };

    #[test]
    fn trusted_sources_silence_opportunistic_ones_only_where_they_stand() {
        assert!(counts(false, false));
        assert!(counts(false, true));
        assert!(counts(true, true));
        assert!(!counts(true, false));
        assert_eq!(counted_sources(0, 7), 7);
        assert_eq!(counted_sources(2, 7), 2);
    }

    #[test]
    fn a_vote_without_counted_proposals_is_not_counted_even_if_verified() {
        assert_eq!(decide_vote(&[], Some(M30)), None);
    }

    #[test]
    fn a_single_proposal_is_accepted_as_is() {
        let d = decide_vote(&[F60], None).unwrap();
        assert_eq!(d.accepted.gender, Decided::Value(Gender::Female));
        assert_eq!(d.accepted.age, Decided::Value(Age::Less60));
        assert!(d.accepted.has_torn);
        assert!(!d.disputed);
    }

    #[test]
    fn the_majority_wins_and_the_vote_is_disputed() {
        let d = decide_vote(&[M30, M30, F60], None).unwrap();
        assert_eq!(d.accepted.gender, Decided::Value(Gender::Male));
        assert_eq!(d.accepted.age, Decided::Value(Age::Less30));
        assert!(!d.accepted.has_torn);
        assert!(d.disputed);
    }

    #[test]
    fn a_tie_leaves_gender_and_age_undecided_and_has_torn_false() {
        let d = decide_vote(&[M30, F60], None).unwrap();
        assert_eq!(d.accepted.gender, Decided::Undecided);
        assert_eq!(d.accepted.age, Decided::Undecided);
        assert!(!d.accepted.has_torn);
        assert!(d.disputed);
    }

    #[test]
    fn a_verification_breaks_a_tie() {
        let d = decide_vote(&[M30, F60], Some(F60)).unwrap();
        assert_eq!(d.accepted.gender, Decided::Value(Gender::Female));
        assert_eq!(d.accepted.age, Decided::Value(Age::Less60));
        assert!(d.accepted.has_torn);
        assert!(d.disputed, "the reporters still disagree");
    }

    #[test]
    fn a_verification_never_overrules_a_reporter() {
        let d = decide_vote(&[M30], Some(F60)).unwrap();
        assert_eq!(d.accepted.gender, Decided::Value(Gender::Male));
        assert!(!d.accepted.has_torn);
        assert!(d.disputed, "the voter disagrees with what was accepted");
    }

    #[test]
    fn a_confirming_verification_leaves_the_vote_undisputed() {
        let d = decide_vote(&[M30, M30], Some(M30)).unwrap();
        assert!(!d.disputed);
        assert_eq!(d.accepted.gender, Decided::Value(Gender::Male));
    }

    #[test]
    fn a_three_way_age_split_with_a_verification_picks_the_verified_bracket() {
        let a = attrs(Gender::Male, Age::Less30, false);
        let b = attrs(Gender::Male, Age::Less60, false);
        let c = attrs(Gender::Male, Age::More60, false);
        let d = decide_vote(&[a, b, c], Some(c)).unwrap();
        assert_eq!(d.accepted.age, Decided::Value(Age::More60));
        assert_eq!(d.accepted.gender, Decided::Value(Gender::Male));
        let d = decide_vote(&[a, b, c], None).unwrap();
        assert_eq!(d.accepted.age, Decided::Undecided);
    }

    #[test]
    fn has_torn_tie_with_a_verification_of_true_becomes_true() {
        let t = attrs(Gender::Male, Age::Less30, true);
        let d = decide_vote(&[M30, t], Some(t)).unwrap();
        assert!(d.accepted.has_torn);
    }

    #[test]
    fn ballots_take_the_most_proposed_party_or_stay_undecided() {
        assert_eq!(decide_ballot(&[]), None);
        let d = decide_ballot(&["PA"]).unwrap();
        assert_eq!(d.party.as_deref(), Some("PA"));
        assert!(!d.disputed);
        let d = decide_ballot(&["PA", "PB", "PA"]).unwrap();
        assert_eq!(d.party.as_deref(), Some("PA"));
        assert!(d.disputed);
        let d = decide_ballot(&["PA", "PB"]).unwrap();
        assert_eq!(d.party, None);
        assert!(d.disputed);
    }
}
