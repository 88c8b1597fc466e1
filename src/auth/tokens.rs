//! Reporter tokens. A token is 256 random bits, URL-safe base64; only its SHA-256 is
//! stored (in `tokens`) and kept here, mapped to the source and office it is bound to.
//! Changed only by committed effects (issue, rotation, password reset), and by `prune`,
//! which forgets expired tokens (the writer deletes their rows, `store::ops::prune_tokens`);
//! rebuilt at start. A source's tokens are found by source and office, never by a scan.

use std::collections::HashMap;

use base64::Engine;
use parking_lot::RwLock;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::domain::change::{Effect, TokenRow};
use crate::domain::ids::{ElectorId, PollOfficeId};
use crate::domain::time::Timestamp;

/// A freshly minted token and the hash that is stored.
pub fn mint() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    (token, hash)
}

pub fn hash(token: &str) -> String {
    hex::encode(digest(token))
}

/// Who a valid token speaks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Reporter {
    pub source_n: i64,
    pub elector_id: ElectorId,
    pub poll_office_id: PollOfficeId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Unknown, revoked, or another source's token.
    Failed,
    Expired,
}

#[derive(Default)]
pub struct Tokens {
    inner: RwLock<Inner>,
}

/// A token's SHA-256, as the key of memory (the table keeps it in hex).
type Digest32 = [u8; 32];

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

/// What memory keeps of a token: 32 bytes of key, and this.
#[derive(Clone, Debug)]
struct Held {
    source_n: i64,
    elector_id: ElectorId,
    poll_office_id: PollOfficeId,
    expires_at: Timestamp,
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<Digest32, Held>,
    /// (source, office) -> its tokens there (one, but for a race): one flat map, where a
    /// map per source cost a national box 20 MB.
    by_office: HashMap<(i64, PollOfficeId), Vec<Digest32>>,
}

impl Tokens {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a token; with Basic auth, `elector_id` is the user name, which must be the
    /// token's source.
    pub fn check(&self, token: &str, elector_id: Option<&str>, now: Timestamp) -> Result<Reporter, TokenError> {
        let h = digest(token);
        let inner = self.inner.read();
        let row = inner.by_hash.get(&h).ok_or(TokenError::Failed)?;
        if elector_id.is_some_and(|e| e != row.elector_id.as_str()) {
            return Err(TokenError::Failed);
        }
        if row.expires_at <= now {
            return Err(TokenError::Expired);
        }
        Ok(Reporter {
            source_n: row.source_n,
            elector_id: row.elector_id.clone(),
            poll_office_id: row.poll_office_id.clone(),
        })
    }

    pub fn apply(&self, effects: &[Effect]) {
        let mut inner = self.inner.write();
        for effect in effects {
            match effect {
                Effect::TokenIssued(row) => inner.insert(row.clone()),
                Effect::TokensExpired(now) => inner.prune(*now),
                Effect::TokensRevoked { source_n, poll_office_id } => {
                    let Inner { by_hash, by_office } = &mut *inner;
                    match poll_office_id {
                        // A rotation at one office: one lookup.
                        Some(o) => {
                            for h in by_office.remove(&(*source_n, o.clone())).unwrap_or_default() {
                                by_hash.remove(&h);
                            }
                        }
                        // A password reset (an operator's act): one pass over the tokens.
                        None => by_office.retain(|(n, _), hashes| {
                            if n != source_n {
                                return true;
                            }
                            for h in hashes.iter() {
                                by_hash.remove(h);
                            }
                            false
                        }),
                    }
                }
                _ => {}
            }
        }
    }

    /// Tokens held in memory.
    pub fn len(&self) -> usize {
        self.inner.read().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn load(&self, rows: Vec<TokenRow>) {
        let mut inner = self.inner.write();
        for row in rows {
            inner.insert(row);
        }
    }
}

impl Inner {
    fn insert(&mut self, row: TokenRow) {
        // A hash that is not 64 hex digits (an integrator's row) matches no token.
        let Some(h) = hex::decode(&row.token_hash).ok().and_then(|h| Digest32::try_from(h).ok()) else { return };
        self.by_office.entry((row.source_n, row.poll_office_id.clone())).or_default().push(h);
        let held = Held {
            source_n: row.source_n,
            elector_id: row.elector_id,
            poll_office_id: row.poll_office_id,
            expires_at: row.expires_at,
        };
        self.by_hash.insert(h, held);
    }

    /// Forgets the tokens that expired by `now`: one pass over them.
    fn prune(&mut self, now: Timestamp) {
        let mut expired = Vec::new();
        self.by_hash.retain(|h, t| {
            let keep = t.expires_at > now;
            if !keep {
                expired.push((*h, t.source_n, t.poll_office_id.clone()));
            }
            keep
        });
        for (h, n, office) in expired {
            let key = (n, office);
            if let Some(hashes) = self.by_office.get_mut(&key) {
                hashes.retain(|x| *x != h);
                if hashes.is_empty() {
                    self.by_office.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time;

    fn row(hash: &str, n: i64, office: &str) -> TokenRow {
        TokenRow {
            token_hash: hash.into(),
            source_n: n,
            elector_id: ElectorId::parse(&format!("E{n}")).unwrap(),
            poll_office_id: PollOfficeId::parse(office).unwrap(),
            expires_at: time::parse("2025-08-15T20:00:00Z").unwrap(),
        }
    }

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let (a, ha) = mint();
        let (b, _) = mint();
        assert_ne!(a, b);
        assert!(a.len() >= 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(ha, hash(&a));
    }

    #[test]
    fn rotation_revokes_only_that_office_and_reset_revokes_all() {
        let t = Tokens::new();
        let before = time::parse("2025-08-15T14:00:00Z").unwrap();
        t.apply(&[Effect::TokenIssued(row(&hash("a"), 1, "PO-1")), Effect::TokenIssued(row(&hash("b"), 1, "PO-2"))]);
        assert_eq!(t.check("a", Some("E1"), before).unwrap().poll_office_id.as_str(), "PO-1");
        assert_eq!(t.check("a", Some("E2"), before), Err(TokenError::Failed));
        assert_eq!(t.check("a", None, time::parse("2025-08-15T20:00:00Z").unwrap()), Err(TokenError::Expired));
        t.apply(&[Effect::TokensRevoked { source_n: 1, poll_office_id: Some(PollOfficeId::parse("PO-1").unwrap()) }]);
        assert_eq!(t.check("a", None, before), Err(TokenError::Failed));
        assert!(t.check("b", None, before).is_ok());
        t.apply(&[Effect::TokensRevoked { source_n: 1, poll_office_id: None }]);
        assert_eq!(t.check("b", None, before), Err(TokenError::Failed));
        assert!(t.is_empty());
    }

    #[test]
    fn expired_tokens_leave_memory() {
        let t = Tokens::new();
        t.apply(&[Effect::TokenIssued(row(&hash("a"), 1, "PO-1")), Effect::TokenIssued(row(&hash("b"), 2, "PO-1"))]);
        t.apply(&[Effect::TokensExpired(time::parse("2025-08-15T19:59:59Z").unwrap())]);
        assert_eq!(t.len(), 2);
        t.apply(&[Effect::TokensExpired(time::parse("2025-08-15T20:00:00Z").unwrap())]);
        assert!(t.is_empty());
        assert!(t.inner.read().by_office.is_empty());
    }
}
