//! The tamper-evident audit log (section 6c). Each entry is hashed together with the hash
//! of the entry before it: `hash = hex(SHA-256(prev_hash + "\n" + canonical entry))`, the
//! canonical entry being what Python's
//! `json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` prints, so
//! anyone can verify the chain without Rust. The log is public: details never carry an
//! `elector_id`, a name, a contact, a token, a password or a secret.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry, as hashed and as served.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub poll_office_id: Option<String>,
    pub detail: Value,
}

impl Entry {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "poll_office_id": self.poll_office_id,
            "detail": self.detail,
        })
    }

    /// The canonical form, written field by field (keys in sorted order) rather than by
    /// building and cloning a JSON value: this runs once per write.
    pub fn canonical(&self) -> String {
        self.canonical_with_detail(&canonical(&self.detail))
    }

    /// The canonical form, given the detail's canonical form (already computed to be stored).
    pub fn canonical_with_detail(&self, detail: &str) -> String {
        let mut out = String::with_capacity(128 + detail.len());
        let fields = Fields {
            seq: self.seq,
            at: &self.at,
            kind: &self.kind,
            actor: &self.actor,
            poll_office_id: self.poll_office_id.as_deref(),
            detail,
        };
        fields.write_canonical(&mut out);
        out
    }

    pub fn hash(&self, prev_hash: &str) -> String {
        chain_hash(prev_hash, &self.canonical())
    }
}

/// An entry's fields as read from a row, the detail already canonical: what the start-up's
/// scan of a national log writes a million times, into one reused buffer.
pub struct Fields<'a> {
    pub seq: i64,
    pub at: &'a str,
    pub kind: &'a str,
    pub actor: &'a str,
    pub poll_office_id: Option<&'a str>,
    pub detail: &'a str,
}

impl Fields<'_> {
    /// Appends the entry's canonical form to `out`.
    pub fn write_canonical(&self, out: &mut String) {
        out.push_str("{\"actor\":");
        push_str_json(self.actor, out);
        out.push_str(",\"at\":");
        push_str_json(self.at, out);
        out.push_str(",\"detail\":");
        out.push_str(self.detail);
        out.push_str(",\"kind\":");
        push_str_json(self.kind, out);
        out.push_str(",\"poll_office_id\":");
        match self.poll_office_id {
            Some(o) => push_str_json(o, out),
            None => out.push_str("null"),
        }
        out.push_str(",\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push('}');
    }
}

fn push_str_json(s: &str, out: &mut String) {
    // serde_json escapes exactly as Python's json.dumps(ensure_ascii=False) does: only
    // the quote, the backslash and control characters; a string without them is copied.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut buf = Vec::with_capacity(s.len() + 2);
    serde_json::to_writer(&mut buf, s).expect("writing to a Vec cannot fail");
    out.push_str(std::str::from_utf8(&buf).expect("serde_json writes UTF-8"));
}

pub fn chain_hash(prev_hash: &str, canonical_entry: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical_entry.as_bytes());
    hex::encode(h.finalize())
}

/// Canonical JSON: keys sorted at every level (by code point, which is UTF-8 byte order),
/// no white space, non-ASCII left as is. Written by hand rather than trusting the map
/// order of `serde_json`, which a dependency's `preserve_order` feature would change.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str_json(k, out);
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The longest canonical entry the log takes: what a C2SP entry bundle's 16-bit length
/// can carry (section 6e).
pub const MAX_ENTRY_BYTES: usize = 65_535;

/// Splits `items` into parts whose canonical JSON arrays are at most `budget` bytes each
/// (an item longer than that alone makes a part of its own): the rows of an import are
/// logged in several entries, each within `MAX_ENTRY_BYTES`.
pub fn parts(items: Vec<Value>, budget: usize) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = Vec::new();
    let mut size = 2;
    for item in items {
        let len = canonical(&item).len() + 1;
        match out.last_mut() {
            Some(part) if size + len <= budget => part.push(item),
            _ => {
                out.push(vec![item]);
                size = 2;
            }
        }
        size += len;
    }
    out
}

/// Where a chain first breaks: the `seq` of the first entry whose hash (or numbering) is
/// wrong, or `None` when the whole chain verifies.
pub fn first_break<'a>(entries: impl IntoIterator<Item = (&'a Entry, &'a str)>) -> Option<i64> {
    let mut chain = Chain::default();
    entries.into_iter().find(|(entry, hash)| !chain.extend(entry, hash)).map(|(entry, _)| entry.seq)
}

/// A chain verified one entry at a time (so a national log is checked in constant memory).
pub struct Chain {
    prev: String,
    next_seq: i64,
}

impl Default for Chain {
    fn default() -> Self {
        Chain { prev: GENESIS.to_owned(), next_seq: 1 }
    }
}

impl Chain {
    /// Whether `entry`, stored with `hash`, follows the entries before it.
    pub fn extend(&mut self, entry: &Entry, hash: &str) -> bool {
        if entry.seq != self.next_seq || entry.hash(&self.prev) != hash {
            return false;
        }
        self.prev = hash.to_owned();
        self.next_seq += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Produced by Python's json.dumps(e, sort_keys=True, separators=(",", ":"),
    /// ensure_ascii=False) and hashlib.sha256, chained from GENESIS.
    fn golden() -> Vec<(Entry, &'static str, &'static str)> {
        vec![
            (
                Entry {
                    seq: 1,
                    at: "2025-08-15T14:02:11Z".into(),
                    kind: "source_created".into(),
                    actor: "source-1".into(),
                    poll_office_id: Some("PO-001".into()),
                    detail: json!({"status": "unverified"}),
                },
                r#"{"actor":"source-1","at":"2025-08-15T14:02:11Z","detail":{"status":"unverified"},"kind":"source_created","poll_office_id":"PO-001","seq":1}"#,
                "7c699d5a8b2e515fa5ee20737e8f9bc37243d37cff553a66722b8702349c303f",
            ),
            (
                Entry {
                    seq: 2,
                    at: "2025-08-15T14:02:12Z".into(),
                    kind: "vote_corrected".into(),
                    actor: "source-1".into(),
                    poll_office_id: Some("PO-001".into()),
                    detail: json!({"index": 3, "vote_id": "7",
                        "old": {"gender": "male", "age": "less_30", "has_torn": false},
                        "new": {"gender": "female", "age": "less_30", "has_torn": true}}),
                },
                r#"{"actor":"source-1","at":"2025-08-15T14:02:12Z","detail":{"index":3,"new":{"age":"less_30","gender":"female","has_torn":true},"old":{"age":"less_30","gender":"male","has_torn":false},"vote_id":"7"},"kind":"vote_corrected","poll_office_id":"PO-001","seq":2}"#,
                "1e7b24340e5997791795c2a5c2b53b993e47fec7cae5ac3976ba48560e07c991",
            ),
            (
                Entry {
                    seq: 3,
                    at: "2025-08-15T14:02:13Z".into(),
                    kind: "import".into(),
                    actor: "cli".into(),
                    poll_office_id: None,
                    detail: json!({"file": "Yaoundé \"centre\"\n\t\u{1}", "rows": 2,
                        "z": [1, {"b": null, "a": "é"}]}),
                },
                r#"{"actor":"cli","at":"2025-08-15T14:02:13Z","detail":{"file":"Yaoundé \"centre\"\n\t\u0001","rows":2,"z":[1,{"a":"é","b":null}]},"kind":"import","poll_office_id":null,"seq":3}"#,
                "575b895bff7c68df4cb151b9b8dd2ae7fdc4a23ff7c25fe1d362c08b476c1a5a",
            ),
        ]
    }

    #[test]
    fn canonical_entries_match_pythons_json_dumps() {
        for (entry, canon, _) in golden() {
            assert_eq!(canonical(&entry.to_json()), canon);
            assert_eq!(entry.canonical(), canon);
        }
    }

    #[test]
    fn hashes_chain_like_the_python_verifier() {
        let mut prev = GENESIS.to_owned();
        for (entry, _, hash) in golden() {
            assert_eq!(entry.hash(&prev), hash);
            prev = hash.to_owned();
        }
    }

    #[test]
    fn parts_stay_within_their_budget_and_keep_every_item_in_order() {
        let items: Vec<Value> =
            (0..5000).map(|i| json!({"identifier": format!("PO-{i:06}"), "voters_count": i})).collect();
        let parts = parts(items.clone(), 60_000);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(canonical(&Value::Array(p.clone())).len() <= 60_000);
        }
        assert_eq!(parts.concat(), items);
        assert!(super::parts(Vec::new(), 10).is_empty());
    }

    #[test]
    fn a_rewritten_entry_breaks_the_chain_at_that_entry() {
        let g = golden();
        let pairs: Vec<(Entry, String)> = g.iter().map(|(e, _, h)| (e.clone(), h.to_string())).collect();
        assert_eq!(first_break(pairs.iter().map(|(e, h)| (e, h.as_str()))), None);
        let mut tampered = pairs.clone();
        tampered[1].0.detail = json!({"index": 4});
        assert_eq!(first_break(tampered.iter().map(|(e, h)| (e, h.as_str()))), Some(2));
        let mut gap = pairs;
        gap.remove(0);
        assert_eq!(first_break(gap.iter().map(|(e, h)| (e, h.as_str()))), Some(2));
    }
}
