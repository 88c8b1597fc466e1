//! The in-memory aggregates behind the public statistics and results: per office, every
//! vote's and ballot's accepted state, running totals, each source's last proposal, and
//! the JSON bodies already rendered with their ETags, so the busiest endpoints of the day
//! are a map lookup.
//!
//! Invariants: changed only by `apply`, with the effects of a committed transaction (or
//! all rows at start), so memory never shows what the database does not hold; totals are
//! kept by subtracting a row's old contribution and adding its new one, and always equal
//! a recount of the rows (the property test checks it).

mod compat;
mod office;
mod sources;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use sha2::{Digest, Sha256};
use warp::http::HeaderValue;

use crate::domain::change::{Effect, Kind, Proposed};
use crate::domain::directory::Directory;
use office::Office;
use sources::SourceBook;

/// A response body rendered once per change, with its ETag (a header value ready to send).
#[derive(Clone, Debug)]
pub struct Rendered {
    pub body: Bytes,
    pub etag: HeaderValue,
}

impl Rendered {
    pub fn of(value: &Value) -> Self {
        let body = serde_json::to_vec(value).expect("a JSON value serialises");
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", &hex::encode(digest)[..20]);
        Rendered { etag: HeaderValue::from_str(&etag).expect("hex is a valid header"), body: Bytes::from(body) }
    }
}

/// The bodies served per office.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// `GET /api/pollofficesstats/{id}/`
    Stats,
    /// `GET /api/pollofficeresults/{id}/`
    Results,
    /// `GET /api/pollofficesstats/?poll_office=` (and the alias path)
    CompatStats,
    /// `GET /api/pollofficeresults/?poll_office=`
    CompatResults,
}

impl Body {
    const ALL: [Body; 4] = [Body::Stats, Body::Results, Body::CompatStats, Body::CompatResults];

    fn render(self, office: &Office, id: &str, book: &SourceBook) -> Value {
        match self {
            Body::Stats => office.stats_json(id),
            Body::Results => office.results_json(id),
            Body::CompatStats => compat::stats(office, id, book),
            Body::CompatResults => compat::results(office, id, book),
        }
    }

    /// The bodies a change of this kind makes stale.
    fn of_kind(kind: Kind) -> [Body; 2] {
        match kind {
            Kind::Vote => [Body::Stats, Body::CompatStats],
            Kind::Ballot => [Body::Results, Body::CompatResults],
        }
    }
}

/// One office: its aggregates and the bodies rendered since its last change (on first
/// read after a change, so a burst of writes renders once). Boxed in the map, with each
/// body boxed too: at 50,000 offices, inline entries made the map's table alone 45 MB.
#[derive(Default)]
struct Entry {
    office: Office,
    cache: [Option<Box<Kept>>; 4],
    /// Counts the changes of its bodies: a body rendered under the read lock is kept only
    /// if none came in between.
    version: u64,
}

/// A rendered body, with the source book generation it was rendered at and its render's
/// number (its place in `State::kept`).
struct Kept {
    generation: u64,
    serial: u64,
    rendered: Rendered,
}

impl Entry {
    fn stale(&mut self, bodies: &[Body]) {
        self.version += 1;
        for b in bodies {
            self.cache[*b as usize] = None;
        }
    }

    fn cached(&self, body: Body, generation: u64) -> Option<&Rendered> {
        self.cache[body as usize].as_deref().filter(|k| k.generation == generation).map(|k| &k.rendered)
    }
}

#[derive(Default)]
struct State {
    offices: HashMap<String, Box<Entry>>,
    sources: SourceBook,
    /// Registered voters per office, from the directory (for the flags).
    registered: HashMap<String, i64>,
    /// Offices with at least one flag.
    flagged: BTreeSet<String>,
    /// The bodies kept, oldest render first: past `KEPT_BODIES` the oldest is dropped
    /// (rendered again on its next read), so a crawler asking for every office of the
    /// country once does not keep all their bodies.
    kept: VecDeque<(String, Body, u64)>,
    /// Renders kept so far (the serial of the next).
    renders: u64,
}

/// How many rendered bodies are kept at most (about half a kilobyte each).
const KEPT_BODIES: usize = 16_384;

impl State {
    /// Recomputes an office's lost maxima and its flags after a change; stale bodies if
    /// the flags changed.
    fn refresh_flags(&mut self, id: &str) -> bool {
        let Some(entry) = self.offices.get_mut(id) else { return false };
        entry.office.refresh();
        if !entry.office.refresh_flags(self.registered.get(id).copied()) {
            return false;
        }
        entry.stale(&Body::of_kind(Kind::Vote));
        if entry.office.flags.is_empty() {
            self.flagged.remove(id);
        } else {
            self.flagged.insert(id.to_owned());
        }
        true
    }
}

/// How often, at most, the national views are summed again over every office.
const NATIONAL_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct National {
    /// Rendered when, with how many directory offices, and the bodies.
    rendered: Option<(Instant, usize, Rendered, Rendered)>,
    changed: bool,
}

/// The aggregates of every office with data.
#[derive(Default)]
pub struct Stats {
    state: RwLock<State>,
    national: Mutex<National>,
    /// `GET /api/flags/`, rendered on first read after a change of any office's flags.
    flags: Mutex<Option<Rendered>>,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Packs every office's trees (after the start-up rebuild, when they were filled in
    /// order and left half full).
    pub fn compact(&self) {
        for entry in self.state.write().offices.values_mut() {
            entry.office.compact();
        }
    }

    /// Takes in the effects of one commit (or of a rebuild).
    pub fn apply(&self, effects: &[Effect]) {
        let mut state = self.state.write();
        let mut changed = false;
        let mut flags_changed = false;
        // Offices whose figures moved: refreshed once each, after all the effects.
        let mut touched: Vec<&str> = Vec::new();
        for effect in effects {
            let (office, kind) = match effect {
                Effect::Vote(row) => (&row.poll_office_id, Kind::Vote),
                Effect::Ballot(row) => (&row.poll_office_id, Kind::Ballot),
                Effect::Proposal(row) => (
                    &row.poll_office_id,
                    if matches!(row.value, Proposed::Vote(_)) { Kind::Vote } else { Kind::Ballot },
                ),
                Effect::OfficeSources { poll_office_id, kind, .. }
                | Effect::OfficeLogged { poll_office_id, kind, .. } => (poll_office_id, *kind),
                Effect::Source(row) => {
                    state.sources.apply(row);
                    changed = true;
                    continue;
                }
                Effect::TokenIssued(_)
                | Effect::TokensRevoked { .. }
                | Effect::TokensExpired(_)
                | Effect::Directory(_)
                | Effect::Logged(_) => continue,
            };
            let office = office.as_str();
            let entry = match state.offices.get_mut(office) {
                Some(e) => e,
                None => state.offices.entry(office.to_owned()).or_default(),
            };
            match effect {
                Effect::Vote(row) => entry.office.set_vote(row),
                Effect::Ballot(row) => entry.office.set_ballot(row),
                Effect::Proposal(row) => entry.office.set_proposal(row),
                Effect::OfficeSources { kind: Kind::Vote, counted, .. } => entry.office.vote_sources = *counted,
                Effect::OfficeSources { kind: Kind::Ballot, counted, .. } => {
                    entry.office.count_mut().ballot_sources = *counted
                }
                // The latest wins, whatever the order they arrive in (a reload of another
                // process's status change or import next to this writer's reports).
                Effect::OfficeLogged { kind: Kind::Vote, seq, .. } => {
                    entry.office.vote_log_seq = entry.office.vote_log_seq.max(*seq)
                }
                Effect::OfficeLogged { kind: Kind::Ballot, seq, .. } => {
                    entry.office.count_mut().ballot_log_seq = entry.office.count().ballot_log_seq.max(*seq)
                }
                _ => unreachable!("handled above"),
            }
            entry.stale(&Body::of_kind(kind));
            if matches!(effect, Effect::OfficeLogged { .. }) {
                // Only the bodies' log_seq: no figure or flag moved.
                continue;
            }
            changed = true;
            if touched.last() != Some(&office) {
                touched.push(office);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for office in touched {
            flags_changed |= state.refresh_flags(office);
        }
        drop(state);
        if changed {
            self.national.lock().changed = true;
        }
        if flags_changed {
            *self.flags.lock() = None;
        }
    }

    /// Takes in the directory's registered voters (at start and after an import) and
    /// re-decides every office's flags.
    pub fn set_directory(&self, directory: &Directory) {
        let mut state = self.state.write();
        state.registered =
            directory.offices.iter().filter_map(|(id, voters)| voters.map(|v| (id.clone(), v))).collect();
        let ids: Vec<String> = state.offices.keys().cloned().collect();
        let mut flags_changed = false;
        for id in ids {
            flags_changed |= state.refresh_flags(&id);
        }
        drop(state);
        // A re-import may rename offices or change which count as covered.
        self.national.lock().changed = true;
        if flags_changed {
            *self.flags.lock() = None;
        }
    }

    /// `GET /api/flags/`: every flagged office, by identifier.
    pub fn flagged(&self) -> Rendered {
        let mut cache = self.flags.lock();
        if let Some(r) = cache.as_ref() {
            return r.clone();
        }
        let state = self.state.read();
        let results: Vec<Value> = state
            .flagged
            .iter()
            .filter_map(|id| state.offices.get(id).map(|e| (id, e)))
            .map(|(id, e)| serde_json::json!({"poll_office_id": id, "flags": e.office.flags_json()}))
            .collect();
        let r = Rendered::of(&serde_json::json!({ "results": results }));
        *cache = Some(r.clone());
        r
    }

    /// A body of an office (zeros when it has no data), cached until the office changes.
    pub fn body(&self, poll_office_id: &str, body: Body) -> Rendered {
        // Rendered under the read lock: a miss (after a change, or for a body dropped from
        // `kept`) holds up neither other readers nor the writer's `apply`.
        let (rendered, version, generation) = {
            let state = self.state.read();
            match state.offices.get(poll_office_id) {
                None => return Rendered::of(&body.render(&Office::default(), poll_office_id, &state.sources)),
                Some(e) => {
                    if let Some(r) = e.cached(body, state.sources.generation) {
                        return r.clone();
                    }
                    let r = Rendered::of(&body.render(&e.office, poll_office_id, &state.sources));
                    (r, e.version, state.sources.generation)
                }
            }
        };
        let mut state = self.state.write();
        let State { offices, sources, kept, renders, .. } = &mut *state;
        // Kept only if nothing changed since it was rendered.
        let Some(entry) = offices.get_mut(poll_office_id).filter(|e| e.version == version) else { return rendered };
        if sources.generation != generation {
            return rendered;
        }
        *renders += 1;
        let serial = *renders;
        entry.cache[body as usize] = Some(Box::new(Kept { generation, serial, rendered: rendered.clone() }));
        kept.push_back((poll_office_id.to_owned(), body, serial));
        if kept.len() > KEPT_BODIES {
            // The oldest render leaves, unless its body was rendered again since.
            if let Some((oldest, b, serial)) = kept.pop_front() {
                if let Some(e) = offices.get_mut(&oldest) {
                    if e.cache[b as usize].as_ref().is_some_and(|k| k.serial == serial) {
                        e.cache[b as usize] = None;
                    }
                }
            }
        }
        rendered
    }

    /// The national stats (`results` false) or results body: summed over every office at
    /// most once a second, so a flood of requests during a flood of writes stays cheap.
    pub fn national(&self, directory: &Directory, results: bool) -> Rendered {
        let mut national = self.national.lock();
        let fresh = match &national.rendered {
            Some((at, offices, ..)) => {
                *offices == directory.offices.len() && (!national.changed || at.elapsed() < NATIONAL_EVERY)
            }
            None => false,
        };
        if !fresh {
            national.changed = false;
            let state = self.state.read();
            let contains = |id: &str| directory.offices.contains_key(id);
            let view = compat::DirectoryView { offices: directory.offices.len(), contains: &contains };
            let (stats, results) =
                compat::national(state.offices.iter().map(|(id, e)| (id.as_str(), &e.office)), &state.sources, view);
            national.rendered =
                Some((Instant::now(), directory.offices.len(), Rendered::of(&stats), Rendered::of(&results)));
        }
        let (_, _, stats, res) = national.rendered.as_ref().expect("rendered above");
        if results {
            res.clone()
        } else {
            stats.clone()
        }
    }

    /// Whether the office has any vote or ballot.
    pub fn has_office(&self, poll_office_id: &str) -> bool {
        self.state.read().offices.contains_key(poll_office_id)
    }

    /// Every office's bodies, parsed: for tests comparing two builds.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<Value>> {
        let state = self.state.read();
        state
            .offices
            .iter()
            .map(|(id, e)| (id.clone(), Body::ALL.iter().map(|b| b.render(&e.office, id, &state.sources)).collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::change::{BallotRow, ProposalRow, SourceRow, Verification, VoteRow};
    use crate::domain::crosscheck::{BallotDecision, VoteDecision};
    use crate::domain::source::Status;
    use crate::domain::vote::{Accepted, Age, Decided, Gender, VoteAttrs};

    const AT: &str = "2025-08-15T14:00:00Z";

    fn office_id(s: &str) -> crate::domain::ids::PollOfficeId {
        crate::domain::ids::PollOfficeId::parse(s).unwrap()
    }

    fn at(s: &str) -> crate::domain::time::Timestamp {
        crate::domain::time::parse(s).unwrap()
    }

    fn vote_in(office: &str, id: i64, idx: u32, gender: Decided<Gender>, disputed: bool) -> Effect {
        Effect::Vote(VoteRow {
            id,
            poll_office_id: office_id(office),
            idx,
            first_reported_at: at(AT),
            live: true,
            timed: true,
            decision: Some(VoteDecision {
                accepted: Accepted { gender, age: Decided::Value(Age::Less30), has_torn: false },
                disputed,
            }),
            verification: None,
            observed_at: None,
        })
    }

    fn vote(idx: u32, gender: Decided<Gender>, disputed: bool) -> Effect {
        vote_in("PO", idx as i64, idx, gender, disputed)
    }

    fn ballot(idx: u32, party: Option<&str>) -> Effect {
        Effect::Ballot(BallotRow {
            id: idx as i64,
            poll_office_id: office_id("PO"),
            idx,
            decision: Some(BallotDecision { party: party.map(str::to_owned), disputed: party.is_none() }),
        })
    }

    fn source(n: i64, status: Status, full_name: Option<&str>) -> Effect {
        Effect::Source(SourceRow { n, status, full_name: full_name.map(str::to_owned), official_org: None })
    }

    fn proposal(n: i64, idx: u32, value: Proposed) -> Effect {
        Effect::Proposal(ProposalRow {
            poll_office_id: office_id("PO"),
            source_n: n,
            idx,
            reported_at: at(&format!("2025-08-15T14:00:{idx:02}Z")),
            value,
        })
    }

    fn male() -> Proposed {
        Proposed::Vote(VoteAttrs { gender: Gender::Male, age: Age::Less30, has_torn: false })
    }

    fn body(s: &Stats, id: &str, b: Body) -> Value {
        serde_json::from_slice(&s.body(id, b).body).unwrap()
    }

    #[test]
    fn a_crawl_of_every_office_keeps_a_bounded_number_of_bodies() {
        let s = Stats::new();
        let offices = KEPT_BODIES + 10;
        let effects: Vec<Effect> = (0..offices)
            .map(|i| vote_in(&format!("PO-{i}"), i as i64 + 1, 1, Decided::Value(Gender::Male), false))
            .collect();
        s.apply(&effects);
        let first = s.body("PO-0", Body::Stats);
        for i in 1..offices {
            s.body(&format!("PO-{i}"), Body::Stats);
        }
        let state = s.state.read();
        let kept = state.offices.values().filter(|e| e.cache.iter().any(Option::is_some)).count();
        assert_eq!(kept, KEPT_BODIES);
        assert!(state.offices["PO-0"].cache[Body::Stats as usize].is_none(), "the oldest went first");
        drop(state);
        // Rendered again on its next read, the same body.
        let again = s.body("PO-0", Body::Stats);
        assert_eq!((again.body, again.etag), (first.body, first.etag));
    }

    #[test]
    fn a_hot_office_read_again_without_a_change_is_served_from_memory() {
        let s = Stats::new();
        for i in 1..=KEPT_BODIES as u32 + 1 {
            s.apply(&[vote_in("PO-HOT", i as i64, i, Decided::Value(Gender::Male), false)]);
            s.body("PO-HOT", Body::Stats);
        }
        s.body("PO-HOT", Body::Stats);
        s.body("PO-HOT", Body::Stats);
        assert!(
            s.state.read().offices["PO-HOT"].cache[Body::Stats as usize].is_some(),
            "its own older renders do not push out the body just rendered"
        );
    }

    #[test]
    fn a_replaced_vote_moves_between_buckets() {
        let s = Stats::new();
        s.apply(&[vote(1, Decided::Value(Gender::Male), false)]);
        s.apply(&[vote(1, Decided::Undecided, true)]);
        let stats = body(&s, "PO", Body::Stats);
        assert_eq!(stats["totals"]["votes"], 1);
        assert_eq!(stats["totals"]["male"], 0);
        assert_eq!(stats["totals"]["female"], 0);
        assert_eq!(stats["totals"]["disputed"], 1);
        assert_eq!(stats["last_vote"]["gender"], "undecided");
    }

    #[test]
    fn results_are_sorted_and_shares_are_unrounded() {
        let s = Stats::new();
        s.apply(&[ballot(1, Some("B")), ballot(2, Some("A")), ballot(3, Some("B")), ballot(4, None)]);
        let r = body(&s, "PO", Body::Results);
        assert_eq!(r["total_ballots"], 4);
        assert_eq!(r["undecided_ballots"], 1);
        assert_eq!(r["results"][0], json!({"party_id": "B", "ballots": 2, "share": 0.5}));
        assert_eq!(r["results"][1], json!({"party_id": "A", "ballots": 1, "share": 0.25}));
        assert_eq!(r["last_paper"], json!({"index": 3, "party_id": "B"}));
    }

    #[test]
    fn an_office_without_data_has_zeros_and_a_stable_etag() {
        let s = Stats::new();
        let a = s.body("PO-9", Body::Stats);
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["last_vote"], Value::Null);
        assert_eq!(v["flags"], json!([]));
        assert_eq!(a.etag, s.body("PO-9", Body::Stats).etag);
        let c = body(&s, "PO-9", Body::CompatStats);
        assert_eq!(c["last_vote"], json!({"Accepted": null, "Verified": null}));
        assert_eq!(c["totals"]["total_sources"], 0);
    }

    #[test]
    fn the_compat_form_keys_each_counted_source_by_display_name() {
        let s = Stats::new();
        s.apply(&[
            source(1, Status::Unverified, Some("Accepted")),
            source(2, Status::Unverified, None),
            vote(1, Decided::Value(Gender::Male), false),
            vote(2, Decided::Value(Gender::Male), false),
            proposal(1, 2, male()),
            proposal(1, 1, male()),
            proposal(2, 1, male()),
        ]);
        let c = body(&s, "PO", Body::CompatStats);
        let lv = &c["last_vote"];
        assert_eq!(lv["Accepted (1)"]["index"], 2, "{c}");
        assert_eq!(lv["Accepted (1)"]["timestamp"], "2025-08-15T14:00:02Z");
        assert_eq!(lv["Accepted (1)"]["created_at"], "2025-08-15T14:00:02Z");
        assert_eq!(lv["source-2"]["index"], 1);
        assert_eq!(lv["Accepted"]["index"], 2);
        assert_eq!(lv["Accepted"]["created_at"], AT);
        assert_eq!(lv["Verified"], Value::Null);
        // A trusted source arriving silences the opportunistic ones (section 6).
        // The citizen app titles its table with the first key: "Accepted", then "Verified",
        // then the sources by name, even one that sorts before them.
        s.apply(&[
            source(3, Status::Official, Some("Obs")),
            source(4, Status::Official, Some("Aaron")),
            proposal(3, 1, male()),
            proposal(4, 2, male()),
        ]);
        let c = body(&s, "PO", Body::CompatStats);
        let keys: Vec<&String> = c["last_vote"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Accepted", "Verified", "Aaron", "Obs"]);
        let text = serde_json::to_string(&c["last_vote"]).unwrap();
        assert!(text.starts_with(r#"{"Accepted":"#), "{text}");
        // A rename shows at once, though the office did not change.
        s.apply(&[source(3, Status::Official, Some("Observatoire"))]);
        assert!(body(&s, "PO", Body::CompatStats)["last_vote"]["Observatoire"].is_object());
    }

    #[test]
    fn verified_is_the_voters_word_on_the_highest_verified_counted_vote() {
        let s = Stats::new();
        let Effect::Vote(mut row) = vote(3, Decided::Value(Gender::Male), true) else { unreachable!() };
        row.verification = Some(Verification {
            attrs: VoteAttrs { gender: Gender::Female, age: Age::More60, has_torn: true },
            at: at("2025-08-15T15:00:00Z"),
        });
        s.apply(&[Effect::Vote(row), vote(4, Decided::Value(Gender::Male), false)]);
        let c = body(&s, "PO", Body::CompatStats);
        assert_eq!(
            c["last_vote"]["Verified"],
            json!({"index": 3, "gender": "female", "age": "more_60", "has_torn": true,
                   "timestamp": "2025-08-15T15:00:00Z", "created_at": "2025-08-15T15:00:00Z"})
        );
        assert_eq!(c["totals"]["verified"], 1);
    }

    #[test]
    fn the_compat_results_carry_the_accepted_paper_at_the_top_and_by_name() {
        let s = Stats::new();
        s.apply(&[
            source(1, Status::Unverified, Some("index")),
            ballot(1, Some("A")),
            ballot(2, None),
            proposal(1, 2, Proposed::Ballot(crate::domain::ids::PartyId::parse("B").unwrap())),
        ]);
        let r = body(&s, "PO", Body::CompatResults);
        // The highest counted ballot is a tie: the reporter app resumes after it, not
        // after the last decided one.
        assert_eq!(r["last_paper"]["index"], 2);
        assert_eq!(r["last_paper"]["party_id"], Value::Null);
        assert_eq!(r["last_paper"]["Accepted"], json!({"index": 1, "party_id": "A"}));
        let keys: Vec<&String> = r["last_paper"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Accepted", "index", "party_id", "index (1)"]);
        assert_eq!(r["last_paper"]["index (1)"], json!({"index": 2, "party_id": "B"}));
        assert_eq!(r["totals"], json!({"total_ballots": 2, "total_sources": 0}));
    }

    #[test]
    fn the_national_view_sums_offices_and_names_the_latest_vote() {
        let s = Stats::new();
        s.apply(&[
            vote_in("A", 1, 1, Decided::Value(Gender::Male), false),
            vote_in("B", 2, 7, Decided::Value(Gender::Female), false),
            vote_in("A", 3, 2, Decided::Value(Gender::Male), false),
        ]);
        let mut directory = Directory::default();
        directory.offices.insert("A".into(), None);
        directory.offices.insert("C".into(), None);
        let n: Value = serde_json::from_slice(&s.national(&directory, false).body).unwrap();
        assert_eq!(n["totals"]["votes"], 3);
        assert_eq!(n["totals"]["male"], 2);
        assert_eq!(n["totals"]["total_poll_offices"], 3);
        assert_eq!(n["totals"]["covered_poll_offices"], 2);
        assert_eq!(n["last_vote"]["Accepted"]["poll_office_id"], "A");
        assert_eq!(n["last_vote"]["Accepted"]["index"], 2);
        // The latest vote stops counting: the one before takes its place.
        let Effect::Vote(mut row) = vote_in("A", 3, 2, Decided::Value(Gender::Male), false) else { unreachable!() };
        row.decision = None;
        s.apply(&[Effect::Vote(row)]);
        let office_a = s.state.read().offices["A"].office.latest();
        assert_eq!(office_a, Some((1, 1)));
    }

    fn ballot_in(office: &str, id: i64, idx: u32, party: Option<&str>) -> Effect {
        Effect::Ballot(BallotRow {
            id,
            poll_office_id: office_id(office),
            idx,
            decision: Some(BallotDecision { party: party.map(str::to_owned), disputed: party.is_none() }),
        })
    }

    #[test]
    fn the_national_results_name_the_decided_ballot_first_reported_last() {
        let s = Stats::new();
        let national =
            |s: &Stats| -> Value { serde_json::from_slice(&s.national(&Directory::default(), true).body).unwrap() };
        assert_eq!(national(&Stats::new())["last_paper"], json!({"Accepted": null}));
        s.apply(&[ballot_in("A", 1, 5, Some("X")), ballot_in("B", 2, 1, Some("Y")), ballot_in("A", 3, 6, None)]);
        // Ballot 3 came last but is a tie: the citizen app's national table shows ballot 2.
        assert_eq!(
            national(&s)["last_paper"],
            json!({"Accepted": {"index": 1, "party_id": "Y", "poll_office_id": "B"}})
        );
        let Effect::Ballot(mut row) = ballot_in("B", 2, 1, None) else { unreachable!() };
        row.decision = None;
        s.apply(&[Effect::Ballot(row)]);
        assert_eq!(s.state.read().offices["B"].office.latest_paper(), None);
        assert_eq!(s.state.read().offices["A"].office.latest_paper(), Some((1, 5)));
    }
}
