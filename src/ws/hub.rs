//! Matching voters to votes (spec section 7), as a state machine without I/O: every event
//! (a voter connects, a vote is reported, a voter answers, time passes) returns the
//! actions to perform (messages to send, connections to close, verifications to write).
//!
//! Invariants:
//! - per office, waiting voters form a FIFO queue; a voter keeps its place while shown a
//!   vote and after answering `not_mine`;
//! - a vote is offered only to voters connected before it was first reported, only if it
//!   was reported live (not in a batch) and counts, and with no `observed_at` older than
//!   the voter's connection; it is shown to one voter at a time, never again to a voter
//!   who said `not_mine`;
//! - a vote shown to a voter whose connection drops is held for that voter until the
//!   answer timeout, and shown again if they reconnect;
//! - votes nobody connected could ever be offered are forgotten, so memory follows the
//!   number of connected voters, not the number of votes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::domain::change::Receipt;
use crate::domain::time::Timestamp;
use crate::domain::vote::{Accepted, Age, Decided, Gender, VoteAttrs};

pub type ConnId = u64;

/// A message to a voter.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    Waiting { poll_office_id: String, timeout_secs: u64 },
    Vote { vote_id: i64, index: u32, accepted: Accepted },
    Recorded { vote_id: i64, receipt: Receipt },
    Timeout,
    Error { code: &'static str, message: Option<String> },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Send(ConnId, Out),
    Close(ConnId, u16),
    /// Write the verification; answer with `Hub::verified`.
    Verify {
        conn: ConnId,
        vote_id: i64,
        voter_hash: String,
        attrs: VoteAttrs,
    },
}

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_BUSY: u16 = 1013;
pub const CLOSE_REPLACED: u16 = 4000;
pub const CLOSE_ALREADY_VERIFIED: u16 = 4409;
const MAX_BAD_MESSAGES: u32 = 5;

/// What a voter sent, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Confirm {
        gender: Option<Gender>,
        age: Option<Age>,
        has_torn: Option<bool>,
    },
    NotMine,
    /// Malformed or unknown: the reason is sent back.
    Bad(String),
}

/// The outcome of writing a verification.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Written {
    /// Recorded, by the log entry of this receipt.
    Recorded(Receipt),
    /// Someone else verified the vote first.
    AlreadyVerified,
    /// The database could not commit.
    Failed,
}

/// A vote as the hub learns it from a committed write.
#[derive(Clone, Debug)]
pub struct ReportedVote {
    pub id: i64,
    pub poll_office_id: String,
    pub index: u32,
    pub live: bool,
    /// `None` while no proposal counts.
    pub accepted: Option<Accepted>,
    pub verified: bool,
    /// When it was first reported, as stored (second precision).
    pub first_reported_at: Timestamp,
    pub observed_at: Option<Timestamp>,
}

/// A vote shown to a voter, with what made it eligible (it may go back to pending).
type Shown = PendingVote;

struct Voter {
    office: String,
    voter_hash: String,
    connected_at: Instant,
    connected_wall: Timestamp,
    shown: Option<Shown>,
    verifying: bool,
    rejected: HashSet<i64>,
    deadline: Instant,
    bad_messages: u32,
}

#[derive(Clone, Debug)]
struct PendingVote {
    id: i64,
    index: u32,
    accepted: Accepted,
    seen_at: Instant,
    first_reported_at: Timestamp,
    observed_at: Option<Timestamp>,
}

struct Held {
    office: String,
    shown: Shown,
    until: Instant,
}

#[derive(Default)]
struct Office {
    queue: VecDeque<ConnId>,
    pending: VecDeque<PendingVote>,
}

pub struct Hub {
    wait_timeout: Duration,
    answer_timeout: Duration,
    max_waiting: usize,
    offices: HashMap<String, Office>,
    voters: HashMap<ConnId, Voter>,
    by_voter: HashMap<String, ConnId>,
    held: HashMap<String, Held>,
    /// Votes whose voter left while their confirmation was being written, by connection:
    /// back to pending only if the write fails (the commit may reach the hub before the
    /// writer's answer or after it).
    in_flight: HashMap<ConnId, (String, Shown)>,
}

fn floor_secs(t: Timestamp) -> Timestamp {
    t - chrono::Duration::nanoseconds(t.timestamp_subsec_nanos() as i64)
}

impl Hub {
    pub fn new(wait_timeout: Duration, answer_timeout: Duration, max_waiting: usize) -> Self {
        Hub {
            wait_timeout,
            answer_timeout,
            max_waiting,
            offices: HashMap::new(),
            voters: HashMap::new(),
            by_voter: HashMap::new(),
            held: HashMap::new(),
            in_flight: HashMap::new(),
        }
    }

    pub fn waiting(&self) -> usize {
        self.voters.len()
    }

    /// A voter opens the socket. `already_verified`: their keyed hash has a verification.
    pub fn connect(
        &mut self,
        conn: ConnId,
        office: &str,
        voter_hash: &str,
        already_verified: bool,
        now: Instant,
        wall: Timestamp,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if already_verified {
            out.push(Action::Send(conn, Out::Error { code: "already_verified", message: None }));
            out.push(Action::Close(conn, CLOSE_ALREADY_VERIFIED));
            return out;
        }
        // A second connection of the same voter replaces the first (and inherits its vote).
        if let Some(old) = self.by_voter.get(voter_hash).copied() {
            out.push(Action::Send(old, Out::Error { code: "replaced", message: None }));
            out.push(Action::Close(old, CLOSE_REPLACED));
            self.drop_voter(old, now, true);
        }
        if self.offices.get(office).is_some_and(|o| o.queue.len() >= self.max_waiting) {
            out.push(Action::Send(conn, Out::Error { code: "busy", message: None }));
            out.push(Action::Close(conn, CLOSE_BUSY));
            return out;
        }
        let mut voter = Voter {
            office: office.to_owned(),
            voter_hash: voter_hash.to_owned(),
            connected_at: now,
            connected_wall: wall,
            shown: None,
            verifying: false,
            rejected: HashSet::new(),
            deadline: now + self.wait_timeout,
            bad_messages: 0,
        };
        out.push(Action::Send(
            conn,
            Out::Waiting { poll_office_id: office.to_owned(), timeout_secs: self.wait_timeout.as_secs() },
        ));
        if let Some(held) = self.held.remove(voter_hash).filter(|h| h.office == office && h.until > now) {
            out.push(Action::Send(conn, vote_message(&held.shown)));
            voter.shown = Some(held.shown);
            voter.deadline = held.until;
        }
        self.voters.insert(conn, voter);
        self.by_voter.insert(voter_hash.to_owned(), conn);
        self.offices.entry(office.to_owned()).or_default().queue.push_back(conn);
        self.rematch(office, now, &mut out);
        out
    }

    /// A committed write touched a vote.
    pub fn vote(&mut self, v: &ReportedVote, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(office) = self.offices.get(&v.poll_office_id) else { return out };
        let known = office.pending.iter().position(|p| p.id == v.id);
        // A vote already shown (or held) is not offered twice.
        let shown = office.queue.iter().any(|c| self.voters[c].shown.as_ref().is_some_and(|s| s.id == v.id))
            || self.held.values().any(|h| h.shown.id == v.id);
        let office = self.offices.get_mut(&v.poll_office_id).expect("checked above");
        match (known, v.accepted) {
            (Some(i), Some(accepted)) if !v.verified => office.pending[i].accepted = accepted,
            (Some(i), _) => {
                office.pending.remove(i);
            }
            (None, Some(accepted)) if v.live && !v.verified && !shown => office.pending.push_back(PendingVote {
                id: v.id,
                index: v.index,
                accepted,
                seen_at: now,
                first_reported_at: v.first_reported_at,
                observed_at: v.observed_at,
            }),
            _ => {}
        }
        if v.verified {
            self.held.retain(|_, h| h.shown.id != v.id);
        }
        self.rematch(&v.poll_office_id, now, &mut out);
        out
    }

    /// A voter sent a message.
    pub fn message(&mut self, conn: ConnId, msg: Incoming, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(voter) = self.voters.get_mut(&conn) else { return out };
        let bad = |voter: &mut Voter, out: &mut Vec<Action>, why: String| {
            voter.bad_messages += 1;
            if voter.bad_messages >= MAX_BAD_MESSAGES {
                out.push(Action::Close(conn, CLOSE_POLICY));
                true
            } else {
                out.push(Action::Send(conn, Out::Error { code: "invalid_message", message: Some(why) }));
                false
            }
        };
        let closed = match msg {
            Incoming::Bad(why) => bad(voter, &mut out, why),
            _ if voter.verifying => bad(voter, &mut out, "a confirmation is being recorded".into()),
            Incoming::NotMine | Incoming::Confirm { .. } if voter.shown.is_none() => {
                bad(voter, &mut out, "no vote has been shown yet".into())
            }
            Incoming::NotMine => {
                let shown = voter.shown.take().expect("checked above");
                voter.rejected.insert(shown.id);
                voter.deadline = now + self.wait_timeout;
                let office = voter.office.clone();
                self.return_to_pending(&office, shown);
                self.rematch(&office, now, &mut out);
                false
            }
            Incoming::Confirm { gender, age, has_torn } => {
                let shown = voter.shown.as_ref().expect("checked above");
                let gender = gender.or(match shown.accepted.gender {
                    Decided::Value(g) => Some(g),
                    Decided::Undecided => None,
                });
                let age = age.or(match shown.accepted.age {
                    Decided::Value(a) => Some(a),
                    Decided::Undecided => None,
                });
                match (gender, age) {
                    (Some(gender), Some(age)) => {
                        voter.verifying = true;
                        let attrs = VoteAttrs { gender, age, has_torn: has_torn.unwrap_or(shown.accepted.has_torn) };
                        out.push(Action::Verify {
                            conn,
                            vote_id: shown.id,
                            voter_hash: voter.voter_hash.clone(),
                            attrs,
                        });
                        false
                    }
                    _ => bad(voter, &mut out, "a field shown as undecided must be given".into()),
                }
            }
        };
        if closed {
            self.drop_voter(conn, now, false);
        }
        out
    }

    /// The verification a voter confirmed was written (or not).
    pub fn verified(&mut self, conn: ConnId, written: Written, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some((office, shown)) = self.in_flight.remove(&conn) {
            // Its voter left meanwhile: a vote that was not recorded goes to the next one.
            if written == Written::Failed {
                self.return_to_pending(&office, shown);
                self.rematch(&office, now, &mut out);
            }
            return out;
        }
        let Some(voter) = self.voters.get_mut(&conn) else { return out };
        voter.verifying = false;
        match written {
            Written::Recorded(receipt) => {
                let vote_id = voter.shown.as_ref().map_or(0, |s| s.id);
                out.push(Action::Send(conn, Out::Recorded { vote_id, receipt }));
                out.push(Action::Close(conn, CLOSE_NORMAL));
                voter.shown = None;
                self.drop_voter(conn, now, false);
            }
            Written::AlreadyVerified => {
                voter.shown = None;
                voter.deadline = now + self.wait_timeout;
                out.push(Action::Send(conn, Out::Error { code: "already_verified", message: None }));
                let office = voter.office.clone();
                self.rematch(&office, now, &mut out);
            }
            Written::Failed => {
                out.push(Action::Send(
                    conn,
                    Out::Error { code: "unavailable", message: Some("could not record: confirm again".into()) },
                ));
            }
        }
        out
    }

    /// The voter's connection ended.
    pub fn disconnect(&mut self, conn: ConnId, now: Instant) -> Vec<Action> {
        let office = self.voters.get(&conn).map(|v| v.office.clone());
        self.drop_voter(conn, now, true);
        let mut out = Vec::new();
        if let Some(office) = office {
            self.rematch(&office, now, &mut out);
        }
        out
    }

    /// Time passed: timeouts, and held votes whose voter did not come back.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let expired: Vec<ConnId> = self.voters.iter().filter(|(_, v)| v.deadline <= now).map(|(c, _)| *c).collect();
        let mut offices: HashSet<String> = HashSet::new();
        for conn in expired {
            out.push(Action::Send(conn, Out::Timeout));
            out.push(Action::Close(conn, CLOSE_NORMAL));
            if let Some(v) = self.voters.get(&conn) {
                offices.insert(v.office.clone());
            }
            self.drop_voter(conn, now, false);
        }
        let lapsed: Vec<String> = self.held.iter().filter(|(_, h)| h.until <= now).map(|(k, _)| k.clone()).collect();
        for key in lapsed {
            if let Some(h) = self.held.remove(&key) {
                offices.insert(h.office.clone());
                self.return_to_pending(&h.office, h.shown);
            }
        }
        for office in offices {
            self.rematch(&office, now, &mut out);
        }
        out
    }

    /// Removes a voter; a vote it was shown is held for it (`hold`) or goes back to pending.
    fn drop_voter(&mut self, conn: ConnId, now: Instant, hold: bool) {
        let Some(voter) = self.voters.remove(&conn) else { return };
        if self.by_voter.get(&voter.voter_hash) == Some(&conn) {
            self.by_voter.remove(&voter.voter_hash);
        }
        if let Some(office) = self.offices.get_mut(&voter.office) {
            office.queue.retain(|c| *c != conn);
        }
        if let Some(shown) = voter.shown {
            if voter.verifying {
                self.in_flight.insert(conn, (voter.office, shown));
            } else if hold && voter.deadline > now {
                self.held.insert(voter.voter_hash, Held { office: voter.office, shown, until: voter.deadline });
            } else {
                self.return_to_pending(&voter.office, shown);
            }
        }
    }

    /// A vote shown but not verified goes back to the front of its office's pending votes:
    /// it was reported before anything still pending.
    fn return_to_pending(&mut self, office: &str, shown: Shown) {
        self.offices.entry(office.to_owned()).or_default().pending.push_front(shown);
    }

    /// Offers pending votes to free, eligible voters in FIFO order; forgets votes no
    /// connected voter can ever be offered.
    fn rematch(&mut self, office_id: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(office) = self.offices.get_mut(office_id) else { return };
        let mut i = 0;
        while i < office.pending.len() {
            let vote = &office.pending[i];
            let taker = office.queue.iter().copied().find(|c| {
                let v = &self.voters[c];
                v.shown.is_none() && !v.verifying && eligible(v, vote)
            });
            match taker {
                Some(conn) => {
                    let shown = office.pending.remove(i).expect("index in range");
                    out.push(Action::Send(conn, vote_message(&shown)));
                    let v = self.voters.get_mut(&conn).expect("in the queue");
                    v.shown = Some(shown);
                    v.deadline = now + self.answer_timeout;
                }
                None => i += 1,
            }
        }
        let voters = &self.voters;
        let queue = &office.queue;
        office.pending.retain(|p| queue.iter().any(|c| eligible(&voters[c], p)));
        if office.queue.is_empty() && office.pending.is_empty() {
            self.offices.remove(office_id);
        }
    }
}

fn eligible(v: &Voter, p: &PendingVote) -> bool {
    !v.rejected.contains(&p.id)
        && v.connected_at < p.seen_at
        && p.first_reported_at >= floor_secs(v.connected_wall)
        && p.observed_at.is_none_or(|o| o >= floor_secs(v.connected_wall))
}

fn vote_message(s: &Shown) -> Out {
    Out::Vote { vote_id: s.id, index: s.index, accepted: s.accepted }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIPT: Receipt = Receipt { seq: 7, leaf_hash: crate::domain::tlog::Hash([1; 32]) };

    const WAIT: Duration = Duration::from_secs(900);
    const ANSWER: Duration = Duration::from_secs(300);

    struct T {
        hub: Hub,
        t0: Instant,
        wall0: Timestamp,
    }

    fn accepted(g: Decided<Gender>) -> Accepted {
        Accepted { gender: g, age: Decided::Value(Age::Less30), has_torn: false }
    }

    impl T {
        fn new() -> T {
            T {
                hub: Hub::new(WAIT, ANSWER, 3),
                t0: Instant::now(),
                wall0: crate::domain::time::parse("2025-08-15T14:00:00Z").unwrap(),
            }
        }
        fn at(&self, secs: u64) -> Instant {
            self.t0 + Duration::from_secs(secs)
        }
        fn wall(&self, secs: i64) -> Timestamp {
            self.wall0 + chrono::Duration::seconds(secs)
        }
        fn connect(&mut self, conn: ConnId, office: &str, secs: u64) -> Vec<Action> {
            let (now, wall) = (self.at(secs), self.wall(secs as i64));
            self.hub.connect(conn, office, &format!("voter-{conn}"), false, now, wall)
        }
        fn report(&mut self, id: i64, office: &str, secs: u64) -> Vec<Action> {
            let v = ReportedVote {
                id,
                poll_office_id: office.into(),
                index: id as u32,
                live: true,
                accepted: Some(accepted(Decided::Value(Gender::Male))),
                verified: false,
                first_reported_at: self.wall(secs as i64),
                observed_at: None,
            };
            self.hub.vote(&v, self.at(secs))
        }
    }

    fn shown(actions: &[Action]) -> Vec<(ConnId, i64)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(c, Out::Vote { vote_id, .. }) => Some((*c, *vote_id)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn votes_go_to_the_longest_waiting_voter_of_their_office_only() {
        let mut t = T::new();
        assert!(matches!(t.connect(1, "A", 1)[0], Action::Send(1, Out::Waiting { .. })));
        t.connect(2, "A", 2);
        t.connect(3, "B", 3);
        assert_eq!(shown(&t.report(10, "A", 5)), [(1, 10)]);
        assert_eq!(shown(&t.report(11, "A", 6)), [(2, 11)]);
        assert_eq!(shown(&t.report(12, "B", 7)), [(3, 12)]);
        assert!(shown(&t.report(13, "C", 8)).is_empty(), "nobody waits there");
    }

    #[test]
    fn a_voter_who_connected_after_the_report_never_gets_that_vote() {
        let mut t = T::new();
        t.connect(1, "A", 1);
        t.report(10, "A", 5);
        t.report(11, "A", 6);
        assert!(shown(&t.connect(2, "A", 10)).is_empty(), "11 was reported before voter 2 came");
        assert_eq!(shown(&t.report(12, "A", 11)), [(2, 12)]);
    }

    #[test]
    fn not_mine_passes_the_vote_on_and_the_voter_keeps_its_place() {
        let mut t = T::new();
        t.connect(1, "A", 1);
        t.connect(2, "A", 2);
        assert_eq!(shown(&t.report(10, "A", 5)), [(1, 10)]);
        let a = t.hub.message(1, Incoming::NotMine, t.at(6));
        assert_eq!(shown(&a), [(2, 10)]);
        // Voter 1 is first again for the next vote, and never sees 10 again.
        assert_eq!(shown(&t.report(11, "A", 7)), [(1, 11)]);
        let a = t.hub.message(2, Incoming::NotMine, t.at(8));
        assert!(shown(&a).is_empty(), "voter 1 already refused 10 and is busy");
    }

    #[test]
    fn confirming_writes_what_was_shown_with_corrections_and_undecided_must_be_given() {
        let mut t = T::new();
        t.connect(1, "A", 1);
        let v = ReportedVote {
            id: 10,
            poll_office_id: "A".into(),
            index: 4,
            live: true,
            accepted: Some(Accepted { gender: Decided::Undecided, age: Decided::Value(Age::More60), has_torn: true }),
            verified: false,
            first_reported_at: t.wall(5),
            observed_at: None,
        };
        t.hub.vote(&v, t.at(5));
        let a = t.hub.message(1, Incoming::Confirm { gender: None, age: None, has_torn: None }, t.at(6));
        assert!(matches!(&a[0], Action::Send(1, Out::Error { code: "invalid_message", .. })));
        let a = t.hub.message(
            1,
            Incoming::Confirm { gender: Some(Gender::Female), age: None, has_torn: Some(false) },
            t.at(7),
        );
        assert_eq!(
            a,
            [Action::Verify {
                conn: 1,
                vote_id: 10,
                voter_hash: "voter-1".into(),
                attrs: VoteAttrs { gender: Gender::Female, age: Age::More60, has_torn: false }
            }]
        );
        let a = t.hub.verified(1, Written::Recorded(RECEIPT), t.at(8));
        assert_eq!(
            a,
            [Action::Send(1, Out::Recorded { vote_id: 10, receipt: RECEIPT }), Action::Close(1, CLOSE_NORMAL)]
        );
        assert_eq!(t.hub.waiting(), 0);
    }

    #[test]
    fn a_vote_being_verified_when_its_voter_leaves_goes_back_only_if_the_write_fails() {
        let verified = |t: &T, id: i64| ReportedVote {
            id,
            poll_office_id: "A".into(),
            index: id as u32,
            live: true,
            accepted: Some(accepted(Decided::Value(Gender::Male))),
            verified: true,
            first_reported_at: t.wall(5),
            observed_at: None,
        };
        // Two voters wait; vote 10 is shown to the first, who confirms it.
        let confirming = || {
            let mut t = T::new();
            t.connect(1, "A", 1);
            t.connect(2, "A", 2);
            assert_eq!(shown(&t.report(10, "A", 5)), [(1, 10)]);
            t.hub.message(1, Incoming::Confirm { gender: None, age: None, has_torn: None }, t.at(6));
            t
        };
        // The commit reaches the hub, then the voter leaves, then the writer answers.
        let mut t = confirming();
        assert!(shown(&t.hub.vote(&verified(&t, 10), t.at(7))).is_empty());
        assert!(shown(&t.hub.disconnect(1, t.at(8))).is_empty(), "not offered to voter 2");
        assert!(t.hub.verified(1, Written::Recorded(RECEIPT), t.at(9)).is_empty());
        assert!(shown(&t.hub.tick(t.at(400))).is_empty());
        // The voter leaves, then the commit reaches the hub, then the writer answers.
        let mut t = confirming();
        assert!(shown(&t.hub.disconnect(1, t.at(7))).is_empty(), "not offered while being written");
        assert!(shown(&t.hub.vote(&verified(&t, 10), t.at(8))).is_empty());
        assert!(t.hub.verified(1, Written::Recorded(RECEIPT), t.at(9)).is_empty());
        assert!(shown(&t.hub.tick(t.at(400))).is_empty());
        // The voter leaves and the write fails: the vote goes to the next voter.
        let mut t = confirming();
        t.hub.disconnect(1, t.at(7));
        assert_eq!(shown(&t.hub.verified(1, Written::Failed, t.at(8))), [(2, 10)]);
    }

    #[test]
    fn losing_a_race_sends_already_verified_and_waits_for_the_next_vote() {
        let mut t = T::new();
        t.connect(1, "A", 1);
        t.report(10, "A", 5);
        t.hub.message(1, Incoming::Confirm { gender: None, age: None, has_torn: None }, t.at(6));
        let a = t.hub.verified(1, Written::AlreadyVerified, t.at(7));
        assert!(matches!(a[0], Action::Send(1, Out::Error { code: "already_verified", .. })));
        assert_eq!(shown(&t.report(11, "A", 8)), [(1, 11)]);
    }

    #[test]
    fn a_reconnecting_voter_gets_the_same_vote_within_the_answer_timeout() {
        let mut t = T::new();
        t.connect(1, "A", 1);
        t.connect(2, "A", 2);
        t.report(10, "A", 5);
        t.hub.disconnect(1, t.at(6));
        assert!(shown(&t.hub.tick(t.at(7))).is_empty(), "held for voter 1, not passed to voter 2");
        let a = t.hub.connect(5, "A", "voter-1", false, t.at(20), t.wall(20));
        assert_eq!(shown(&a), [(5, 10)]);
        // Gone again past the answer timeout: the vote goes to the next voter.
        t.hub.disconnect(5, t.at(21));
        assert_eq!(shown(&t.hub.tick(t.at(5 + 300))), [(2, 10)]);
    }

    #[test]
    fn timeouts_close_waiting_and_silent_voters() {
        let mut t = T::new();
        t.connect(1, "A", 0);
        t.connect(2, "A", 0);
        t.report(10, "A", 5);
        assert!(t.hub.tick(t.at(300)).is_empty());
        let a = t.hub.tick(t.at(305));
        assert_eq!(&a[..2], [Action::Send(1, Out::Timeout), Action::Close(1, CLOSE_NORMAL)]);
        assert_eq!(shown(&a), [(2, 10)], "the unanswered vote moves on");
        let a = t.hub.tick(t.at(305 + 300));
        assert!(a.contains(&Action::Close(2, CLOSE_NORMAL)));
        assert_eq!(t.hub.waiting(), 0);
    }

    #[test]
    fn a_second_connection_replaces_the_first_and_a_full_queue_is_busy() {
        let mut t = T::new();
        t.connect(1, "A", 1);
        let a = t.hub.connect(2, "A", "voter-1", false, t.at(2), t.wall(2));
        assert_eq!(a[0], Action::Send(1, Out::Error { code: "replaced", message: None }));
        assert_eq!(a[1], Action::Close(1, CLOSE_REPLACED));
        t.connect(3, "A", 3);
        t.connect(4, "A", 4);
        let a = t.connect(5, "A", 5);
        assert_eq!(a, [Action::Send(5, Out::Error { code: "busy", message: None }), Action::Close(5, CLOSE_BUSY)]);
        let a = t.hub.connect(6, "A", "v", true, t.at(6), t.wall(6));
        assert_eq!(a[1], Action::Close(6, CLOSE_ALREADY_VERIFIED));
    }

    #[test]
    fn five_bad_messages_close_the_connection() {
        let mut t = T::new();
        t.connect(1, "A", 1);
        for _ in 0..4 {
            let a = t.hub.message(1, Incoming::Bad("?".into()), t.at(2));
            assert!(matches!(a[0], Action::Send(1, Out::Error { code: "invalid_message", .. })));
        }
        assert_eq!(t.hub.message(1, Incoming::Bad("?".into()), t.at(2)), [Action::Close(1, CLOSE_POLICY)]);
        assert_eq!(t.hub.waiting(), 0);
    }

    #[test]
    fn batched_uncounted_verified_or_old_observed_votes_are_never_offered() {
        let mut t = T::new();
        t.connect(1, "A", 10);
        let base = ReportedVote {
            id: 10,
            poll_office_id: "A".into(),
            index: 1,
            live: true,
            accepted: Some(accepted(Decided::Value(Gender::Male))),
            verified: false,
            first_reported_at: t.wall(20),
            observed_at: None,
        };
        let cases = [
            ReportedVote { live: false, ..base.clone() },
            ReportedVote { accepted: None, ..base.clone() },
            ReportedVote { verified: true, ..base.clone() },
            ReportedVote { observed_at: Some(t.wall(5)), ..base.clone() },
        ];
        for v in cases {
            assert!(shown(&t.hub.vote(&v, t.at(20))).is_empty(), "{v:?}");
        }
        assert_eq!(shown(&t.hub.vote(&base, t.at(21))), [(1, 10)]);
    }
}
