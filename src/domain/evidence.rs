//! What a witness's evidence proves (section 6e): given the log's verifier key, two
//! checkpoints the log served and what the witness checked, whether the holder of that
//! key signed two views of history that cannot both be true. Pure, so anyone can check
//! the evidence offline (`ufrecs witness verify-evidence`).

use serde::{Deserialize, Serialize};

use super::note::{self, Checkpoint};
use super::tlog::{self, Hash};

/// What the witness checked and found wrong, as `proof.json` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Proof {
    /// Both checkpoints have the same size and different roots.
    SameSize,
    /// The leaf `index` differs between the two trees: each with its inclusion proof.
    DifferentLeaf { index: u64, old: LeafProof, new: LeafProof },
    /// The new checkpoint is smaller, and its root is not the root of the old tree's
    /// first `new.size` leaves: `root_at_new_size` is that root, and `hashes` the RFC 6962
    /// consistency proof from it to the old root.
    Shrunk { root_at_new_size: String, hashes: Vec<String> },
    /// The new checkpoint's signature did not verify (no proof against the key holder).
    BadSignature { error: String },
    /// The entries served do not hash to the signed root, or break the 6c chain (what
    /// was served is wrong, but nothing the key holder signed proves it).
    Entries { detail: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeafProof {
    pub leaf_hash: String,
    pub hashes: Vec<String>,
}

/// The verdict on a piece of evidence, in words.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The key holder signed two inconsistent views: the evidence stands on its own.
    Misbehaviour(String),
    /// The evidence does not prove misbehaviour by the key holder.
    NotProven(String),
}

fn hash(hex_str: &str) -> Option<Hash> {
    Some(Hash(hex::decode(hex_str).ok()?.try_into().ok()?))
}

fn hashes(list: &[String]) -> Option<Vec<Hash>> {
    list.iter().map(|h| hash(h)).collect()
}

/// Checks evidence against the log's verifier key.
pub fn judge(vkey: &str, old_note: &str, new_note: &str, proof: &Proof) -> Verdict {
    let open = |n: &str| note::open_checkpoint(n, vkey);
    let (old, new): (Checkpoint, Checkpoint) = match (open(old_note), open(new_note)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) => return Verdict::NotProven(format!("old.checkpoint is not signed by that key: {e}")),
        (_, Err(e)) => return Verdict::NotProven(format!("new.checkpoint is not signed by that key: {e}")),
    };
    match proof {
        Proof::SameSize if old.size == new.size && old.root != new.root => Verdict::Misbehaviour(format!(
            "the key signed two different trees of {} entries: history was rewritten or forked",
            old.size
        )),
        Proof::SameSize => Verdict::NotProven("the checkpoints do not differ at the same size".into()),
        Proof::DifferentLeaf { index, old: o, new: n } => {
            let (Some(ol), Some(oh), Some(nl), Some(nh)) =
                (hash(&o.leaf_hash), hashes(&o.hashes), hash(&n.leaf_hash), hashes(&n.hashes))
            else {
                return Verdict::NotProven("proof.json holds malformed hashes".into());
            };
            let in_old = tlog::verify_inclusion(&oh, *index, old.size, ol, old.root);
            let in_new = tlog::verify_inclusion(&nh, *index, new.size, nl, new.root);
            if in_old && in_new && ol != nl {
                Verdict::Misbehaviour(format!(
                    "entry {} is one thing in the tree of {} and another in the tree of {}, both signed: history was rewritten",
                    index + 1,
                    old.size,
                    new.size
                ))
            } else {
                Verdict::NotProven("the inclusion proofs do not show two different entries at one place".into())
            }
        }
        Proof::Shrunk { root_at_new_size, hashes: proof } => {
            let (Some(root), Some(proof)) = (hash(root_at_new_size), hashes(proof)) else {
                return Verdict::NotProven("proof.json holds malformed hashes".into());
            };
            if new.size < old.size
                && root != new.root
                && tlog::verify_consistency(&proof, new.size, root, old.size, old.root)
            {
                Verdict::Misbehaviour(format!(
                    "the key signed a tree of {} entries whose first {} have another root than the tree of {} it also signed: history was rewritten",
                    old.size, new.size, new.size
                ))
            } else {
                Verdict::NotProven("the consistency proof does not show two different trees".into())
            }
        }
        Proof::BadSignature { error } => Verdict::NotProven(format!("a checkpoint that did not verify ({error})")),
        Proof::Entries { detail } => Verdict::NotProven(format!("served data did not match ({detail})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::note::LogKey;

    fn tree(leaves: &[&[u8]]) -> (tlog::Tree, Vec<tlog::FullTile>) {
        let mut t = tlog::Tree::default();
        let mut done = Vec::new();
        for l in leaves {
            t.push(tlog::leaf_hash(l), &mut done);
        }
        (t, done)
    }

    struct NoTiles;
    impl tlog::TileStore for NoTiles {
        fn full_tile(&self, _: u8, _: u64) -> Option<Vec<u8>> {
            None
        }
    }

    #[test]
    fn two_signed_views_prove_misbehaviour_and_nothing_else_does() {
        let (key, _) = LogKey::generate("log.example/x").unwrap();
        let honest: [&[u8]; 3] = [b"a", b"b", b"c"];
        let forged: [&[u8]; 4] = [b"a", b"B", b"c", b"d"];
        let (t1, _) = tree(&honest);
        let (t2, _) = tree(&forged);
        let sign = |t: &tlog::Tree, size| {
            key.sign(&Checkpoint { origin: "log.example/x".into(), size, root: t.root(size, &NoTiles).unwrap() })
        };
        let (old, new) = (sign(&t1, 3), sign(&t2, 4));
        let leaf = |t: &tlog::Tree, size, data: &[u8]| LeafProof {
            leaf_hash: hex::encode(tlog::leaf_hash(data).0),
            hashes: t.inclusion(1, size, &NoTiles).unwrap().iter().map(|h| hex::encode(h.0)).collect(),
        };
        let proof = Proof::DifferentLeaf { index: 1, old: leaf(&t1, 3, b"b"), new: leaf(&t2, 4, b"B") };
        assert!(matches!(judge(key.vkey(), &old, &new, &proof), Verdict::Misbehaviour(_)));
        // The same proof under another key, or with the same leaf twice, proves nothing.
        let (other, _) = LogKey::generate("log.example/x").unwrap();
        assert!(matches!(judge(other.vkey(), &old, &new, &proof), Verdict::NotProven(_)));
        let same = Proof::DifferentLeaf { index: 1, old: leaf(&t1, 3, b"b"), new: leaf(&t1, 3, b"b") };
        assert!(matches!(judge(key.vkey(), &old, &old, &same), Verdict::NotProven(_)));
        // Two roots for one size.
        let rewritten = sign(&t2, 3);
        assert!(matches!(judge(key.vkey(), &old, &rewritten, &Proof::SameSize), Verdict::Misbehaviour(_)));
        assert!(matches!(judge(key.vkey(), &old, &old, &Proof::SameSize), Verdict::NotProven(_)));
        // A smaller tree with another root: the old tree's own consistency proof shows it.
        let (t3, _) = tree(&forged[..2]);
        let shrunk = sign(&t3, 2);
        let shrunk_proof = Proof::Shrunk {
            root_at_new_size: hex::encode(t1.root(2, &NoTiles).unwrap().0),
            hashes: t1.consistency(2, 3, &NoTiles).unwrap().iter().map(|h| hex::encode(h.0)).collect(),
        };
        assert!(matches!(judge(key.vkey(), &old, &shrunk, &shrunk_proof), Verdict::Misbehaviour(_)));
        let honest_smaller = sign(&t1, 2);
        assert!(matches!(judge(key.vkey(), &old, &honest_smaller, &shrunk_proof), Verdict::NotProven(_)));
        let e = Proof::Entries { detail: "x".into() };
        assert!(matches!(judge(key.vkey(), &old, &new, &e), Verdict::NotProven(_)));
        let json = serde_json::to_value(&proof).unwrap();
        assert_eq!(json["check"], "different_leaf");
        assert_eq!(serde_json::from_value::<Proof>(json).unwrap(), proof);
    }
}
