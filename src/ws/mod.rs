//! The verification WebSocket (spec section 7): a voter in the booth confirms or corrects
//! what reporters recorded about them. `hub` decides (matching, timeouts); this module
//! runs it: one actor task owns the hub, each connection has a task that reads the
//! socket and one that writes it, and verifications go through the single writer like
//! every other write.

pub mod hub;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::auth::ratelimit::AddressKey;
use crate::clock::Clock;
use crate::domain::change::Effect;
use crate::domain::ids::{ElectorId, PollOfficeId};
use crate::domain::input::{Fields, InputError};
use crate::domain::vote::VoteAttrs;
use crate::domain::vote::{Age, Gender};
use crate::metrics::Metrics;
use hub::{Action, ConnId, Hub, Incoming, Out, ReportedVote, Written};

/// Messages larger than this close the connection with 1009.
pub const MAX_MESSAGE: usize = 4096;
const PING_EVERY: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(250);
const CLOSE_GOING_AWAY: u16 = 1001;

fn close(code: u16) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: Default::default() }))
}

/// Parses what a voter sent.
pub fn parse_incoming(text: &str) -> Incoming {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) else {
        return Incoming::Bad("not a JSON object".into());
    };
    match m.get("type").and_then(Value::as_str) {
        Some("not_mine") => Incoming::NotMine,
        Some("confirm") => {
            let field = |k: &str| m.get(k).filter(|v| !v.is_null());
            let gender = match field("gender").map(|v| v.as_str().and_then(Gender::parse)) {
                Some(None) => return Incoming::Bad(format!("gender {}", Gender::EXPECTED)),
                g => g.flatten(),
            };
            let age = match field("age").map(|v| v.as_str().and_then(Age::parse)) {
                Some(None) => return Incoming::Bad(format!("age {}", Age::EXPECTED)),
                a => a.flatten(),
            };
            let has_torn = match field("has_torn").map(Value::as_bool) {
                Some(None) => return Incoming::Bad("has_torn must be true or false".into()),
                t => t.flatten(),
            };
            Incoming::Confirm { gender, age, has_torn }
        }
        _ => Incoming::Bad("type must be confirm or not_mine".into()),
    }
}

fn out_json(o: &Out) -> Value {
    match o {
        Out::Waiting { poll_office_id, timeout_secs } => {
            json!({"type": "waiting", "poll_office_id": poll_office_id, "timeout_secs": timeout_secs})
        }
        Out::Vote { vote_id, index, accepted } => json!({
            "type": "vote", "vote_id": vote_id.to_string(), "index": index,
            "gender": accepted.gender.as_str(), "age": accepted.age.as_str(), "has_torn": accepted.has_torn,
        }),
        Out::Recorded { vote_id, receipt } => {
            json!({"type": "recorded", "vote_id": vote_id.to_string(), "receipt": receipt.to_json()})
        }
        Out::Timeout => json!({"type": "timeout"}),
        Out::Error { code, message } => match message {
            Some(m) => json!({"type": "error", "code": code, "message": m}),
            None => json!({"type": "error", "code": code}),
        },
    }
}

enum ToSocket {
    Send(Out),
    Close(u16),
}

enum Cmd {
    Connect {
        conn: ConnId,
        office: String,
        voter_hash: String,
        already_verified: bool,
        socket: mpsc::UnboundedSender<ToSocket>,
    },
    Message {
        conn: ConnId,
        msg: Incoming,
    },
    Disconnect {
        conn: ConnId,
    },
    Votes(Vec<ReportedVote>),
    Verified {
        conn: ConnId,
        written: Written,
    },
    Tick,
    /// The server stops: close every socket and end.
    Shutdown,
}

/// What the rest of the server holds of the hub.
#[derive(Clone)]
pub struct Hubs {
    tx: mpsc::UnboundedSender<Cmd>,
    next: Arc<AtomicU64>,
    per_address: Counts<AddressKey>,
    max_per_address: u32,
    per_address_office: Counts<(AddressKey, String)>,
    max_per_address_office: u32,
}

/// Hands committed effects to the hub.
pub type Feed = Box<dyn Fn(&[Effect]) + Send>;

/// Writes a voter's verification (vote id, voter's keyed hash, what they confirmed) and
/// says how it went: the single writer, given by the app.
pub type Verify = Arc<
    dyn Fn(i64, String, VoteAttrs) -> std::pin::Pin<Box<dyn std::future::Future<Output = Written> + Send>>
        + Send
        + Sync,
>;

/// The vote rows of committed effects, as the hub needs them.
pub fn reported_votes(effects: &[Effect]) -> Vec<ReportedVote> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Vote(v) => Some(ReportedVote {
                id: v.id,
                poll_office_id: v.poll_office_id.as_str().to_owned(),
                index: v.idx,
                live: v.live,
                accepted: v.decision.map(|d| d.accepted),
                verified: v.verification.is_some(),
                first_reported_at: v.first_reported_at,
                observed_at: v.observed_at,
            }),
            _ => None,
        })
        .collect()
}

impl Hubs {
    /// A channel whose sending half feeds committed votes to the hub (for the writer's
    /// sink) before the hub itself can start (it needs the writer).
    pub fn channel(settings: &crate::config::Ws) -> (Hubs, HubStarter) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hubs = Hubs {
            tx,
            next: Arc::new(AtomicU64::new(1)),
            per_address: Arc::default(),
            max_per_address: settings.max_connections_per_address,
            per_address_office: Arc::default(),
            max_per_address_office: settings.max_waiting_per_address_per_office,
        };
        let hub = Hub::new(
            Duration::from_secs(settings.wait_timeout_secs),
            Duration::from_secs(settings.answer_timeout_secs),
            settings.max_waiting_per_office as usize,
        );
        (hubs.clone(), HubStarter { hub, rx, hubs })
    }

    /// What the writer's sink feeds committed votes into. It holds the hub weakly: the
    /// hub holds the writer, and a strong reference each way would keep both alive forever.
    pub fn feed(&self) -> Feed {
        let weak = self.tx.downgrade();
        Box::new(move |effects: &[Effect]| {
            let votes = reported_votes(effects);
            if let (false, Some(tx)) = (votes.is_empty(), weak.upgrade()) {
                let _ = tx.send(Cmd::Votes(votes));
            }
        })
    }

    /// Closes every socket (1001) and ends the hub.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Shutdown);
    }
}

pub struct HubStarter {
    hub: Hub,
    rx: mpsc::UnboundedReceiver<Cmd>,
    hubs: Hubs,
}

impl HubStarter {
    /// Starts the hub's actor task. `clock` is the server's: votes are stamped with it.
    pub fn start(self, verify: Verify, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) {
        tokio::spawn(run(self.hub, self.rx, self.hubs.tx.downgrade(), verify, metrics, clock));
    }
}

async fn run(
    mut hub: Hub,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    tx: mpsc::WeakUnboundedSender<Cmd>,
    verify: Verify,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) {
    let mut sockets: HashMap<ConnId, mpsc::UnboundedSender<ToSocket>> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            cmd = rx.recv() => cmd,
            _ = tick.tick() => Some(Cmd::Tick),
        };
        let now = Instant::now();
        let actions = match event {
            None => break,
            Some(Cmd::Shutdown) => {
                for (_, socket) in sockets.drain() {
                    let _ = socket.send(ToSocket::Close(CLOSE_GOING_AWAY));
                }
                break;
            }
            Some(Cmd::Tick) => hub.tick(now),
            Some(Cmd::Connect { conn, office, voter_hash, already_verified, socket }) => {
                sockets.insert(conn, socket);
                hub.connect(conn, &office, &voter_hash, already_verified, now, clock.now())
            }
            Some(Cmd::Message { conn, msg }) => hub.message(conn, msg, now),
            Some(Cmd::Disconnect { conn }) => {
                sockets.remove(&conn);
                hub.disconnect(conn, now)
            }
            Some(Cmd::Votes(votes)) => votes.iter().flat_map(|v| hub.vote(v, now)).collect(),
            Some(Cmd::Verified { conn, written }) => hub.verified(conn, written, now),
        };
        for action in actions {
            match action {
                Action::Send(conn, out) => {
                    if let Some(s) = sockets.get(&conn) {
                        let _ = s.send(ToSocket::Send(out));
                    }
                }
                Action::Close(conn, code) => {
                    if let Some(s) = sockets.remove(&conn) {
                        let _ = s.send(ToSocket::Close(code));
                    }
                }
                Action::Verify { conn, vote_id, voter_hash, attrs } => {
                    let Some(tx) = tx.upgrade() else { continue };
                    let written = verify(vote_id, voter_hash, attrs);
                    tokio::spawn(async move {
                        let _ = tx.send(Cmd::Verified { conn, written: written.await });
                    });
                }
            }
        }
        metrics.ws_waiting.store(hub.waiting() as u64, Relaxed);
    }
}

/// Open connections per key (a client address, or an address at an office).
type Counts<K> = Arc<Mutex<HashMap<K, u32>>>;

/// One open connection counted under a key; the count drops with the guard.
struct Held<K: std::hash::Hash + Eq> {
    key: K,
    counts: Counts<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Held<K> {
    /// Counts one more under `key`; with whether that is over `max`.
    fn take(counts: &Counts<K>, key: K, max: u32) -> (Self, bool) {
        let mut map = counts.lock();
        let n = map.entry(key.clone()).or_default();
        *n += 1;
        let over = *n > max;
        drop(map);
        (Held { key, counts: counts.clone() }, over)
    }
}

impl<K: std::hash::Hash + Eq> Drop for Held<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Checked before the upgrade: what the socket needs.
pub struct Opening {
    pub office: String,
    pub voter_hash: String,
    pub already_verified: bool,
    pub client: IpAddr,
}

/// Runs one voter's socket until it closes.
pub async fn connection<S>(socket: WebSocketStream<S>, hubs: Hubs, open: Opening, metrics: Arc<Metrics>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    metrics.ws_connections.fetch_add(1, Relaxed);
    let (mut sink, mut stream) = socket.split();
    // One address (an IPv6 /64) may hold only so many sockets in all, and fewer at one
    // office: otherwise it could fill an office's queue and answer for its voters.
    let key = AddressKey::of(open.client);
    let (guard, over_all) = Held::take(&hubs.per_address, key, hubs.max_per_address);
    let (office_guard, over_office) =
        Held::take(&hubs.per_address_office, (key, open.office.clone()), hubs.max_per_address_office);
    if over_all || over_office {
        let busy = out_json(&Out::Error { code: "busy", message: None }).to_string();
        let _ = sink.send(Message::text(busy)).await;
        let _ = sink.send(close(hub::CLOSE_BUSY)).await;
        metrics.ws_connections.fetch_sub(1, Relaxed);
        return;
    }
    let conn = hubs.next.fetch_add(1, Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<ToSocket>();
    let own = tx.clone();
    let _ = hubs.tx.send(Cmd::Connect {
        conn,
        office: open.office,
        voter_hash: open.voter_hash,
        already_verified: open.already_verified,
        socket: tx,
    });
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(ToSocket::Send(out)) => {
                        if sink.send(Message::text(out_json(&out).to_string())).await.is_err() {
                            break;
                        }
                    }
                    Some(ToSocket::Close(code)) => {
                        let _ = sink.send(close(code)).await;
                        break;
                    }
                    None => break,
                },
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        if msg.is_close() {
            break;
        }
        if msg.is_ping() || msg.is_pong() {
            continue;
        }
        if msg.len() > MAX_MESSAGE {
            let _ = own.send(ToSocket::Close(hub::CLOSE_TOO_BIG));
            break;
        }
        let incoming = match &msg {
            Message::Text(text) => parse_incoming(text),
            _ => Incoming::Bad("messages are JSON text".into()),
        };
        let _ = hubs.tx.send(Cmd::Message { conn, msg: incoming });
    }
    let _ = hubs.tx.send(Cmd::Disconnect { conn });
    drop(own);
    let _ = writer.await;
    drop((guard, office_guard));
    metrics.ws_connections.fetch_sub(1, Relaxed);
}

/// The parameters of the socket's URL, checked before the upgrade with the same rules
/// (and messages) as a body's fields.
pub fn parameters(
    query: &HashMap<String, String>,
) -> Result<(PollOfficeId, ElectorId), crate::domain::input::FieldErrors> {
    let map: serde_json::Map<String, Value> =
        query.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let mut fields = Fields::new(&map);
    let office = fields.identifier("poll_office_id", PollOfficeId::parse);
    let elector = fields.identifier("elector_id", ElectorId::parse);
    fields.finish(office.zip(elector)).map_err(|e| match e {
        InputError::Fields(errors) => errors,
        InputError::Json => unreachable!("parameters are never JSON"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_parsed_and_bad_ones_say_why() {
        assert_eq!(parse_incoming(r#"{"type": "not_mine"}"#), Incoming::NotMine);
        assert_eq!(
            parse_incoming(r#"{"type": "confirm", "gender": "female"}"#),
            Incoming::Confirm { gender: Some(Gender::Female), age: None, has_torn: None }
        );
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"type": "hello"}"#,
            r#"{"type": "confirm", "gender": "x"}"#,
            r#"{"type": "confirm", "has_torn": "yes"}"#,
        ] {
            assert!(matches!(parse_incoming(bad), Incoming::Bad(_)), "{bad}");
        }
    }
}
